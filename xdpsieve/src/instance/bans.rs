//! Automatic bans: a key over the budget of a limit rule with `ban` is added to the rule's
//! ban set for the ban time, through the live-set machinery (`instance::sets`), so the
//! drop rule that names the set (placed before the limit rule; the rule file is refused
//! otherwise) drops it from then on. A ban is a timed set entry marked as a ban
//! (`sets::ORIGIN_BAN`): it survives a reload and a takeover like every runtime entry, and
//! is removed on time by the recorder's expiry.
//!
//! The program tells the recorder of a key once per second at most (`LimitNotice`, see
//! `xdpsieve_common::walk`); the [`Banner`] turns notices into bans, bounded per rule by
//! `ban_rate` (bans per second) and `ban_max` (bans in the set at once), never for a key
//! that overlaps the rule's `allow_set` (the key's prefix, both ways: a /24 key holding an
//! allowed address is not banned), and counts every notice that led to no ban, by reason.
//!
//! Honest limits: bans need a running recorder (a firewall left alone goes on limiting but
//! bans nothing; its notices pile up in the ring and are counted lost), and without one a
//! ban outlives its time until the next `xdpsieve set` command expires it.

use std::{collections::HashMap, time::Instant};

use anyhow::Result;
use xdpsieve_common::{
    SetEntry,
    sets::{ENTRY_FREE, ENTRY_RUNTIME, ORIGIN_BAN},
    walk::LimitNotice,
};

use super::sets::{Generation, SignalsHeld, boottime_ns, commit::Editor, text::show};
use crate::{
    base::counters::WriterStats,
    configure::{rules::RuleSet, sets::kernel::entry_prefix, sets::trie::TriePrefix},
    read::notice,
};

/// Notices kept while the set lock is busy; beyond this the oldest are counted failed
/// (the keys are told again a second later if still over).
const MAX_PENDING: usize = 4096;

/// One banning rule of the generation in force.
#[derive(Clone, Debug)]
struct BanRule {
    name: String,
    set: u16,
    set_name: String,
    allow_set: Option<u16>,
    time_ns: u64,
    rate: u32,
    max: u32,
}

/// A ban made (or renewed), for the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct BanEvent {
    pub rule: String,
    pub rule_id: u32,
    pub set: String,
    /// The banned prefix, as `set list` shows it.
    pub key: String,
    /// Packets per second the key sent, from its first packet to the notice.
    pub rate_seen_pps: f64,
    /// `CLOCK_BOOTTIME` ns when the ban ends, and the time left then.
    pub expires_ns: u64,
    pub expires_in_ms: u64,
    pub renewed: bool,
}

/// Turns ban notices into bans (see the module doc).
pub struct Banner {
    generation: u32,
    rules: HashMap<u32, BanRule>,
    /// Per rule id: tokens of the `ban_rate` bucket and when it was last filled.
    buckets: HashMap<u32, (f64, Instant)>,
    pending: Vec<LimitNotice>,
    stats: WriterStats,
}

impl Banner {
    /// The banning rules of `rules`, rule generation `generation`.
    pub fn new(rules: &RuleSet, generation: u32) -> Banner {
        let mut banner = Banner {
            generation: 0,
            rules: HashMap::new(),
            buckets: HashMap::new(),
            pending: Vec::new(),
            stats: WriterStats::default(),
        };
        banner.set_rules(rules, generation);
        banner
    }

    /// A reload put `rules` (generation `generation`) in force.
    pub fn set_rules(&mut self, rules: &RuleSet, generation: u32) {
        self.generation = generation;
        self.rules = rules
            .rules
            .iter()
            .filter_map(|r| {
                let ban = r.limit?.ban?;
                let set_name = rules.sets.get(ban.set)?.name.clone();
                Some((
                    r.id,
                    BanRule {
                        name: r.name.clone(),
                        set: u16::try_from(ban.set).ok()?,
                        set_name,
                        allow_set: ban.allow_set.and_then(|s| u16::try_from(s).ok()),
                        time_ns: ban.time_ns,
                        rate: ban.rate,
                        max: ban.max,
                    },
                ))
            })
            .collect();
        self.buckets.clear();
    }

    /// Whether any rule in force bans (else the notice ring need not be read).
    pub fn bans(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The counts so far (the `bans_*` fields).
    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Decodes a notice record into the pending batch.
    pub fn push_record(&mut self, bytes: &[u8]) {
        match notice::decode(bytes) {
            Ok(n) => self.push(n),
            Err(_) => self.stats.undecodable += 1,
        }
    }

    pub fn push(&mut self, n: LimitNotice) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
            self.stats.bans_failed += 1;
        }
        self.pending.push(n);
    }

    /// Applies the pending notices to the sets of the firewall on `iface`, under the set
    /// lock; with the lock busy they wait for the next call (counted deferred).
    pub fn tick(&mut self, iface: &str) -> Result<Vec<BanEvent>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let _signals = SignalsHeld::new();
        let Some(mut locked) = Generation::try_lock(iface)? else {
            self.stats.bans_deferred += 1;
            return Ok(Vec::new());
        };
        let events = self.apply(&mut locked.generation, boottime_ns(), Instant::now());
        Ok(events)
    }

    /// Applies the pending notices to `generation` (its lock held), at `now_ns`
    /// (`CLOCK_BOOTTIME`) and `now` (for `ban_rate`).
    pub fn apply(
        &mut self,
        generation: &mut Generation,
        now_ns: u64,
        now: Instant,
    ) -> Vec<BanEvent> {
        let notices = std::mem::take(&mut self.pending);
        let mut events = Vec::new();
        let mut editor = match Editor::new(generation) {
            Ok(editor) => editor,
            Err(e) => {
                self.stats.bans_failed += notices.len() as u64;
                crate::base::log::warning(format_args!(
                    "xdpsieve: warning: cannot ban: the sets cannot be changed: {e:#}"
                ));
                return events;
            }
        };
        for n in notices {
            if n.generation != self.generation {
                self.stats.bans_stale += 1;
                continue;
            }
            let (Some(rule), Some((addr, len))) = (self.rules.get(&n.rule_id), notice::key(&n))
            else {
                self.stats.bans_stale += 1;
                continue;
            };
            let rule = rule.clone();
            let key = TriePrefix::new(addr, len);
            let entries = editor.entries();
            if let Some(allow) = rule.allow_set
                && in_set(entries, allow, |p| p.covers(&key) || key.covers(p))
            {
                self.stats.bans_allow_skipped += 1;
                continue;
            }
            let existing = entries
                .iter()
                .find(|e| e.state != ENTRY_FREE && e.set == rule.set && entry_prefix(e) == key);
            let renewal = match existing {
                Some(e) if e.state == ENTRY_RUNTIME && e.origin == ORIGIN_BAN => true,
                Some(_) => {
                    // The operator's own entry (from the file or `set add`): left as it is.
                    self.stats.bans_already_listed += 1;
                    continue;
                }
                None => false,
            };
            if !renewal {
                let live = entries
                    .iter()
                    .filter(|e| {
                        e.state == ENTRY_RUNTIME
                            && e.origin == ORIGIN_BAN
                            && e.set == rule.set
                            && e.expires_ns > now_ns
                    })
                    .count();
                if live >= rule.max as usize {
                    self.stats.bans_total_capped += 1;
                    continue;
                }
                if !self.take_token(n.rule_id, rule.rate, now) {
                    self.stats.bans_rate_capped += 1;
                    continue;
                }
            }
            let expires_ns = now_ns.saturating_add(rule.time_ns);
            match editor.add_as(rule.set, &rule.set_name, &[key], expires_ns, ORIGIN_BAN) {
                Ok(_) => {
                    if renewal {
                        self.stats.bans_renewed += 1;
                    } else {
                        self.stats.bans_added += 1;
                    }
                    let secs = (n.timestamp_ns.saturating_sub(n.first_ns) as f64 / 1e9).max(1e-3);
                    events.push(BanEvent {
                        rule: rule.name.clone(),
                        rule_id: n.rule_id,
                        set: rule.set_name.clone(),
                        key: show(&key),
                        rate_seen_pps: (n.seen as f64 / secs).round(),
                        expires_ns,
                        expires_in_ms: rule.time_ns / 1_000_000,
                        renewed: renewal,
                    });
                }
                Err(e) => {
                    self.stats.bans_failed += 1;
                    crate::base::log::warning(format_args!(
                        "xdpsieve: warning: cannot ban {} into set {}: {e:#}",
                        show(&key),
                        crate::base::text::escape(&rule.set_name)
                    ));
                }
            }
        }
        events
    }

    /// One token of rule `id`'s `ban_rate` bucket (depth: one second's worth).
    fn take_token(&mut self, id: u32, rate: u32, now: Instant) -> bool {
        let rate = f64::from(rate.max(1));
        let (tokens, last) = self.buckets.entry(id).or_insert((rate, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Whether an entry of `set` has a prefix for which `hit` holds.
fn in_set(entries: &[SetEntry], set: u16, hit: impl Fn(&TriePrefix) -> bool) -> bool {
    entries
        .iter()
        .filter(|e| e.state != ENTRY_FREE && e.set == set)
        .any(|e| hit(&entry_prefix(e)))
}

#[cfg(test)]
mod tests;
