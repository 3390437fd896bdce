//! How the live view and the report write the numbers of a check: rates as
//! percentages, latencies in milliseconds, counts as counts, durations the short way.

/// What kind of number a check's observed value and threshold are, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A fraction shown as a percentage (`errorRate`, `availability`).
    Rate,
    /// A difference of fractions, in percentage points (`errorRateIncrease`).
    Points,
    /// A relative increase (`p95Increase`: 0.1 is +10%).
    Relative,
    /// Milliseconds (`p95Latency`).
    Millis,
    /// A count (`minRequests`).
    Count,
}

impl Unit {
    pub fn of(check: &str) -> Unit {
        match check {
            "errorRateIncrease" => Unit::Points,
            "p95Increase" => Unit::Relative,
            "p95Latency" => Unit::Millis,
            "minRequests" => Unit::Count,
            _ => Unit::Rate,
        }
    }

    pub fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".to_owned();
        }
        match self {
            Unit::Rate => format!("{:.2}%", v * 100.0),
            Unit::Points => format!("{:+.2} pts", v * 100.0),
            Unit::Relative => format!("{:+.1}%", v * 100.0),
            Unit::Millis => format!("{v:.0} ms"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

/// The condition a check passes with, as a person reads it: `≤ 5.00%`, `≥ 99.00%`.
pub fn condition(check: &str, threshold: f64) -> String {
    let unit = Unit::of(check);
    // Availability and request counts must stay above their bound; the rest below.
    let at_least = matches!(check, "availability" | "minRequests");
    format!("{} {}", if at_least { "≥" } else { "≤" }, unit.show(threshold))
}

/// `1h 30m`, `25m`, `40s`: the two largest units, for holds and time left.
pub fn duration(seconds: u64) -> String {
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
    fn numbers_are_written_in_their_units() {
        assert_eq!(Unit::of("errorRate").show(0.1023), "10.23%");
        assert_eq!(Unit::of("errorRateIncrease").show(0.0012), "+0.12 pts");
        assert_eq!(Unit::of("p95Increase").show(-0.04), "-4.0%");
        assert_eq!(Unit::of("p95Latency").show(1999.6), "2000 ms");
        assert_eq!(Unit::of("minRequests").show(640.0), "640");
        assert_eq!(Unit::of("errorRate").show(f64::NAN), "-");
        assert_eq!(condition("availability", 0.99), "≥ 99.00%");
        assert_eq!(condition("errorRate", 0.05), "≤ 5.00%");
    }

    #[test]
    fn durations_keep_the_two_largest_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(90), "1m 30s");
        assert_eq!(duration(5400), "1h 30m");
        assert_eq!(duration(86_400 + 7200 + 60), "1d 2h");
    }
}
