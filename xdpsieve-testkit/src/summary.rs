//! Numbers read out of the exit summary `xdpsieve run` prints on standard error.

/// The number before `words` on the summary line that contains them.
pub fn summary_number<T: std::str::FromStr>(stderr: &str, words: &str) -> Option<T> {
    stderr.lines().find(|l| l.contains(words)).and_then(|l| {
        let before = &l[..l.find(words)?];
        before.split_whitespace().last()?.parse().ok()
    })
}
