//! Time as canary reads and writes it: RFC 3339 on the wire and in annotations, whole
//! epoch seconds to key minutes, and spans from user input that never panic. Every
//! module of the core takes its time helpers from here (the emulator keeps its own, so
//! the two check each other on the wire).

use std::time::{Duration, SystemTime};

/// A span of seconds from outside input: negative, NaN or absurd values become zero or
/// a century rather than a panic.
pub(crate) fn seconds(value: f64) -> Duration {
    const CENTURY: f64 = 100.0 * 365.25 * 86_400.0;
    if value.is_nan() || value <= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(value.min(CENTURY)) }
}

/// `t + d`, or a time far in the future when that overflows.
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d).unwrap_or_else(|| t + seconds(f64::INFINITY))
}

/// Whole seconds since the Unix epoch (0 before it): how minutes are keyed.
pub(crate) fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// RFC 3339 with microseconds, as Google's APIs write timestamps.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// RFC 3339 to the second, for text people read.
pub(crate) fn rfc3339_seconds(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses an RFC 3339 timestamp (fractional seconds optional).
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z').replace('T', " ").as_str())
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_spans_never_panic() {
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-5.0), Duration::ZERO);
        assert!(seconds(1e300) > Duration::from_secs(3_000_000_000));
        assert!(later(SystemTime::UNIX_EPOCH, Duration::MAX) > SystemTime::UNIX_EPOCH);
        assert_eq!(epoch_secs(SystemTime::UNIX_EPOCH - Duration::from_secs(5)), 0);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_214_405_123_456);
        assert_eq!(rfc3339(t), "2025-11-27T03:33:25.123456Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(
            parse_rfc3339("2025-11-27T03:33:25Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_214_405))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
