//! Durations the short way, for the live view and the report. (A check's numbers are
//! written by its kind: `analysis::verdict::CheckKind`.)

/// `1h 30m`, `25m`, `40s`: the two largest units, for holds and time left.
pub(crate) fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() { "0s".to_owned() } else { parts.join(" ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_the_two_largest_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90), "1m 30s");
        assert_eq!(duration(5400), "1h 30m");
        assert_eq!(duration(86_400 + 7200 + 60), "1d 2h");
    }
}
