//! What a running instance keeps so that its rules can be rebuilt from their sources at any
//! time, by itself or by `xdpsieve reload` after it died: the rule file (or the
//! configuration file that holds or names the rules), the command-line rule expressions in
//! order, and the flags that shape the program ([`Recipe`]); and what
//! `status` shows of the rule generations ([`ReloadState`]). Both live in the instance's
//! description ([`crate::instance::description`]).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::config::Config,
    configure::loader::Settings,
    configure::loader::Transport,
    configure::rules::{Action, Rate, RuleSet},
};

/// Where a run's rules come from: a reload reads them again from the same places.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSources {
    /// The rule file (made absolute for the description: a reload may run from another
    /// directory, see [`RuleSources::absolute`]).
    pub file: Option<PathBuf>,
    /// What `file` is: a rule file (`--rules`), or a configuration file (`--config`)
    /// whose rules are its own or those of the rule file it names, as it says at each read.
    /// Written only for a configuration file, so a rule file's description reads as before
    /// (and one written before configuration files existed names a rule file).
    #[serde(default, skip_serializing_if = "FileKind::is_rules")]
    pub file_kind: FileKind,
    /// `--drop`/`--pass` expressions, in command-line order, after the file's rules.
    pub expressions: Vec<(Action, String)>,
    /// `--default`, overriding the file's.
    pub default_action: Option<Action>,
}

impl RuleSources {
    /// `file`, then `expressions` as (action, expression) in order.
    pub fn new(
        file: Option<&Path>,
        expressions: Vec<(Action, String)>,
        default_action: Option<Action>,
    ) -> Self {
        RuleSources {
            file: file.map(Path::to_path_buf),
            file_kind: FileKind::Rules,
            expressions,
            default_action,
        }
    }

    /// The rules of the configuration file `config` (see [`FileKind::Config`]), then
    /// `expressions` as (action, expression) in order.
    pub fn from_config(
        config: &Path,
        expressions: Vec<(Action, String)>,
        default_action: Option<Action>,
    ) -> Self {
        RuleSources {
            file_kind: FileKind::Config,
            ..RuleSources::new(Some(config), expressions, default_action)
        }
    }

    /// The same sources with the rule file's path made absolute (messages at start name
    /// the file as the operator wrote it; a reload may run from another directory).
    pub fn absolute(mut self) -> Self {
        if let Some(file) = &self.file
            && let Ok(absolute) = std::path::absolute(file)
        {
            self.file = Some(absolute);
        }
        self
    }

    /// Reads the rules: the file's, then the expressions in order, then the default. A
    /// configuration file is read whole and checked key by key (see
    /// `crate::configure::config`): a reload refuses a file with an unknown key or a bad
    /// value, which a start would refuse too. Only its rules are taken.
    pub fn load(&self) -> Result<RuleSet> {
        let mut set = match (&self.file, self.file_kind) {
            (Some(path), FileKind::Rules) => RuleSet::from_file(path)?,
            (Some(path), FileKind::Config) => Config::read(path)?.rule_set()?,
            (None, _) => RuleSet::default(),
        };
        for (action, expr) in &self.expressions {
            set.push_expression(*action, expr)?;
        }
        if let Some(default) = self.default_action {
            set.default_action = default;
        }
        Ok(set)
    }
}

/// What the rule sources' file is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A rule file: `default`, `[[set]]`, `[[rule]]` and nothing else.
    #[default]
    Rules,
    /// A configuration file (`crate::configure::config`): its own rules, or those of the
    /// rule file its `rules` key names.
    Config,
}

impl FileKind {
    fn is_rules(&self) -> bool {
        *self == FileKind::Rules
    }
}

/// A filter expression of the description, compiled again.
fn compile_filter(expression: Option<&str>) -> Result<Option<CompiledFilter>> {
    match expression {
        Some(e) => CompiledFilter::compile(e).context("the description's capture filter"),
        None => Ok(None),
    }
}

/// Everything needed to build the program again: the rules' sources and the flags that
/// went into `Settings` (the interfaces come from the description's interface list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    pub sources: RuleSources,
    /// Bits of `xdpsieve_common::capture`.
    pub capture: u32,
    pub log: u32,
    pub snaplen: u32,
    /// `--sample`; descriptions written before sampling existed record all.
    #[serde(default = "record_all")]
    pub sample: u32,
    pub ring_bytes: u32,
    pub transport: Transport,
    /// `--log-rate`.
    pub default_rate: Rate,
    /// `--unclassifiable` when given.
    pub unclassifiable: Option<Action>,
    /// The capture filter's expression (`--filter`), compiled again by a reload.
    #[serde(default)]
    pub capture_filter: Option<String>,
    /// The event log's filter expression (the capture filter's unless `--log-filter`).
    #[serde(default)]
    pub log_filter: Option<String>,
    /// `--filter-engine` (`auto` when absent: descriptions written before it existed).
    #[serde(default)]
    pub filter_engine: FilterEngine,
}

impl Recipe {
    /// The settings of generation `generation` on `ifindexes`: `rules` (read from
    /// [`Recipe::sources`]) and the flags, the filters compiled from their expressions (a
    /// reload's, which has only the description).
    pub fn settings(
        &self,
        rules: RuleSet,
        ifindexes: Vec<u32>,
        generation: u32,
    ) -> Result<Settings> {
        let filters = (
            compile_filter(self.capture_filter.as_deref())?,
            compile_filter(self.log_filter.as_deref())?,
        );
        Ok(self.settings_with_filters(rules, ifindexes, generation, filters))
    }

    /// [`Recipe::settings`] with the capture and log filters compiled already (the start
    /// of a run, whose plan holds them): the one place the loader's [`Settings`] are made
    /// of what the operator asked for.
    pub fn settings_with_filters(
        &self,
        rules: RuleSet,
        ifindexes: Vec<u32>,
        generation: u32,
        (capture_filter, log_filter): (Option<CompiledFilter>, Option<CompiledFilter>),
    ) -> Settings {
        Settings {
            rules,
            capture: self.capture,
            log: self.log,
            snaplen: self.snaplen,
            sample: self.sample,
            ring_bytes: self.ring_bytes,
            transport: self.transport,
            default_rate: self.default_rate,
            ifindexes,
            unclassifiable: self.unclassifiable,
            generation,
            share_maps_from: None,
            set_runtime: Vec::new(),
            capture_filter,
            log_filter,
            filter_engine: self.filter_engine,
            // Compiled when that is cheaper; an operator has no reason to choose.
            rule_engine: crate::configure::matcher::RuleEngine::Auto,
        }
    }
}

/// The rule generation in force and how the last reload went (in the description).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadState {
    /// 1 for the rules a run started with, one more per reload (a takeover goes on from
    /// the old instance's); 0 in a description written before reloads existed.
    pub generation: u32,
    /// When the generation in force was loaded (Unix seconds).
    pub loaded_unix: u64,
    /// The last reload asked for, failed or not.
    pub last: Option<Box<ReloadOutcome>>,
    /// How to rebuild the rules; absent in a description written before reloads existed.
    pub recipe: Option<Box<Recipe>>,
    /// How the program in force finds the first matching rule (`configure::matcher`'s
    /// `Matching`, as text): compiled code, or the bitmaps and why. Absent in descriptions
    /// of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<String>,
}

impl ReloadState {
    /// A run's state at start: `generation` loaded now from `recipe`.
    pub fn at_start(generation: u32, recipe: Recipe, matching: String) -> Self {
        ReloadState {
            generation,
            loaded_unix: unix_ns() / 1_000_000_000,
            last: None,
            recipe: Some(Box::new(recipe)),
            matching: Some(matching),
        }
    }
}

/// The result of one reload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// When it started (Unix ns): `xdpsieve reload` waits for an outcome that started
    /// after it asked.
    pub started_unix_ns: u64,
    pub ok: bool,
    /// The generation in force afterwards (the old one when it failed).
    pub generation: u32,
    /// Milliseconds from reading the rules to the last interface swapped (load and
    /// verification included).
    pub took_ms: f64,
    /// Of `took_ms`: reading the rules and loading the program (the verifier's part), and
    /// copying the counters and swapping the links (0 when it failed).
    #[serde(default)]
    pub load_ms: f64,
    #[serde(default)]
    pub swap_ms: f64,
    /// What happened, for the operator: the reason of a failure.
    pub message: String,
    pub by: Reloader,
}

/// Who reloaded: the running instance's recorder (on SIGHUP), or `xdpsieve reload` on a
/// firewall whose recorder is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reloader {
    Recorder,
    Reload,
}

impl std::fmt::Display for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reloader::Recorder => "recorder",
            Reloader::Reload => "reload",
        })
    }
}

/// Now as Unix nanoseconds.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `Recipe::sample` of descriptions written before sampling existed: every packet.
fn record_all() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recipe a run with `settings`, its rules read from `sources`, describes itself
    /// with (a run builds it from its plan: `session::plan::RunPlan::recipe`).
    fn recipe_of(sources: RuleSources, settings: &Settings) -> Recipe {
        Recipe {
            sources,
            capture: settings.capture,
            log: settings.log,
            snaplen: settings.snaplen,
            sample: settings.sample,
            ring_bytes: settings.ring_bytes,
            transport: settings.transport,
            default_rate: settings.default_rate,
            unclassifiable: settings.unclassifiable,
            capture_filter: settings
                .capture_filter
                .as_ref()
                .map(|f| f.expression.clone()),
            log_filter: settings.log_filter.as_ref().map(|f| f.expression.clone()),
            filter_engine: settings.filter_engine,
        }
    }

    #[test]
    fn sources_rebuild_the_same_rules_and_a_broken_file_is_an_error() {
        let dir = xdpsieve_testkit::tempdir::TempDir::new("recipe");
        let file = dir.file("rules.toml");
        std::fs::write(
            &file,
            "[[rule]]\nname = \"a\"\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = 7\n",
        )
        .unwrap();
        let sources = RuleSources::new(
            Some(&file),
            vec![(Action::Pass, "tcp dst port 22".into())],
            Some(Action::Drop),
        );
        let set = sources.load().unwrap();
        let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "pass tcp dst port 22"]);
        assert_eq!(set.default_action, Action::Drop);
        let json = serde_json::to_string(&sources).unwrap();
        assert_eq!(serde_json::from_str::<RuleSources>(&json).unwrap(), sources);
        std::fs::write(&file, "[[rule]]\naction = \"dorp\"\n").unwrap();
        assert!(sources.load().is_err());
    }

    #[test]
    fn a_configuration_file_is_read_again_whole_for_its_rules() {
        let dir = std::env::temp_dir().join(format!("xdpsieve-recipe-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("xdpsieve.toml");
        let write = |text: &str| std::fs::write(&config, text).unwrap();
        write(
            "interfaces = [\"eth0\"]\n[capture]\nsnaplen = 64\n\
             [[rule]]\nname = \"a\"\naction = \"drop\"\nprotocol = \"udp\"\n",
        );
        let sources = RuleSources::from_config(
            &config,
            vec![(Action::Pass, "tcp dst port 22".into())],
            None,
        );
        let names =
            |set: RuleSet| -> Vec<String> { set.rules.into_iter().map(|r| r.name).collect() };
        assert_eq!(
            names(sources.load().unwrap()),
            ["a", "pass tcp dst port 22"]
        );
        // Edited: the new rules, here or in the rule file it now names.
        write(
            "default = \"drop\"\n[[rule]]\nname = \"b\"\naction = \"pass\"\nprotocol = \"tcp\"\n",
        );
        let set = sources.load().unwrap();
        assert_eq!(set.default_action, Action::Drop);
        assert_eq!(names(set), ["b", "pass tcp dst port 22"]);
        std::fs::write(
            dir.join("fw.toml"),
            "[[rule]]\nname = \"c\"\naction = \"drop\"\nprotocol = \"icmp\"\n",
        )
        .unwrap();
        write("rules = \"fw.toml\"\n");
        assert_eq!(
            names(sources.load().unwrap()),
            ["c", "pass tcp dst port 22"]
        );
        // A key the reader does not know, even outside the rules, fails the load: a typo
        // must not pass a reload that the next start would refuse.
        write(
            "[[rule]]\nname = \"b\"\naction = \"pass\"\nprotocol = \"tcp\"\n[capture]\nsnaplne = 1\n",
        );
        let e = format!("{:#}", sources.load().unwrap_err());
        assert!(
            e.contains("xdpsieve.toml:6:1: unknown key `snaplne`"),
            "{e}"
        );
        write("[[rules]]\nname = \"b\"\naction = \"pass\"\n");
        assert!(sources.load().is_err());
        // Kept in the description and read back; a description without the kind (written
        // before configuration files) names a rule file.
        let json = serde_json::to_value(&sources).unwrap();
        assert_eq!(json["file_kind"], "config");
        assert_eq!(
            serde_json::from_value::<RuleSources>(json.clone()).unwrap(),
            sources
        );
        let mut old = json;
        old.as_object_mut().unwrap().remove("file_kind");
        let old: RuleSources = serde_json::from_value(old).unwrap();
        assert_eq!(old.file_kind, FileKind::Rules);
        let rules = serde_json::to_value(&old).unwrap();
        assert!(rules.get("file_kind").is_none(), "{rules}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sampling_survives_a_reload_and_old_descriptions_record_all() {
        let settings = Settings {
            sample: 25,
            ..Settings::default()
        };
        let recipe = recipe_of(RuleSources::new(None, Vec::new(), None), &settings);
        let json = serde_json::to_value(&recipe).unwrap();
        let back: Recipe = serde_json::from_value(json.clone()).unwrap();
        let next = back.settings(RuleSet::default(), Vec::new(), 2).unwrap();
        assert_eq!(next.sample, 25);
        // A description written before sampling existed has no `sample`: record all.
        let mut old = json;
        old.as_object_mut().unwrap().remove("sample");
        let old: Recipe = serde_json::from_value(old).unwrap();
        assert_eq!(old.sample, 1);
    }

    #[test]
    fn a_reload_keeps_the_capture_and_log_filters() {
        let compile = |e: &str| CompiledFilter::compile(e).unwrap();
        let settings = Settings {
            capture_filter: compile("udp port 53"),
            log_filter: compile("icmp"),
            filter_engine: FilterEngine::Interpreter,
            ..Settings::default()
        };
        let recipe = recipe_of(RuleSources::default(), &settings);
        let json = serde_json::to_string(&recipe).unwrap();
        let recipe: Recipe = serde_json::from_str(&json).unwrap();
        let next = recipe.settings(RuleSet::default(), Vec::new(), 2).unwrap();
        assert_eq!(next.capture_filter, settings.capture_filter);
        assert_eq!(next.log_filter, settings.log_filter);
        assert_eq!(next.filter_engine, FilterEngine::Interpreter);
        // A description written before filters existed still reads: no filter, `auto`.
        let old = json
            .replace(",\"capture_filter\":\"udp port 53\"", "")
            .replace(",\"log_filter\":\"icmp\"", "")
            .replace(",\"filter_engine\":\"interpreter\"", "");
        assert!(!old.contains("filter"), "{old}");
        let recipe: Recipe = serde_json::from_str(&old).unwrap();
        let next = recipe.settings(RuleSet::default(), Vec::new(), 2).unwrap();
        assert_eq!((next.capture_filter, next.log_filter), (None, None));
        assert_eq!(next.filter_engine, FilterEngine::Auto);
    }
}
