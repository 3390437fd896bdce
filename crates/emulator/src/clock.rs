//! The emulator's virtual clock: real time (`scale` 1), accelerated (`3600`: an hour a
//! second), or stepped (`0`: moves only when told). Everything in the emulator reads
//! time from here, so a test can replay a day in milliseconds.

use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone)]
pub struct VirtualClock {
    start_virtual: SystemTime,
    start_real: Instant,
    scale: f64,
    advanced: Duration,
}

impl VirtualClock {
    /// A clock that reads `start` now and runs `scale` times faster than real time.
    pub fn new(start: SystemTime, scale: f64) -> VirtualClock {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 0.0 };
        VirtualClock { start_virtual: start, start_real: Instant::now(), scale, advanced: Duration::ZERO }
    }

    pub(crate) fn now(&self) -> SystemTime {
        let real = self.start_real.elapsed().as_secs_f64() * self.scale;
        later(later(self.start_virtual, seconds(real)), self.advanced)
    }

    /// Moves the clock forward, whatever its scale.
    pub(crate) fn advance(&mut self, by: Duration) -> SystemTime {
        self.advanced = self.advanced.saturating_add(by);
        self.now()
    }

    pub(crate) fn scale(&self) -> f64 {
        self.scale
    }

    /// How long in real time `virtual_span` takes on this clock; `None` when stepped.
    pub(crate) fn real_duration(&self, virtual_span: Duration) -> Option<Duration> {
        (self.scale > 0.0).then(|| seconds(virtual_span.as_secs_f64() / self.scale))
    }
}

/// A span of simulated seconds from user input: negative, NaN or absurd values become
/// zero or a century rather than a panic.
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
    rfc3339_text(t).to_string()
}

/// [`rfc3339`] as text to write, not yet a string.
pub fn rfc3339_text(t: SystemTime) -> impl std::fmt::Display {
    humantime::format_rfc3339_micros(t)
}

/// Parses an RFC 3339 timestamp (fractional seconds optional).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z').replace('T', " ").as_str())
        .ok()
        .or_else(|| humantime::parse_rfc3339(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_clock_moves_only_when_advanced() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut clock = VirtualClock::new(start, 0.0);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.advance(Duration::from_secs(60)), start + Duration::from_secs(60));
        assert_eq!(clock.real_duration(Duration::from_secs(1)), None);
    }

    #[test]
    fn accelerated_clock_scales_real_time() {
        let clock = VirtualClock::new(SystemTime::UNIX_EPOCH, 3600.0);
        assert_eq!(clock.real_duration(Duration::from_secs(3600)), Some(Duration::from_secs(1)));
        assert!(clock.now() >= SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn hostile_numbers_never_panic() {
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-5.0), Duration::ZERO);
        assert!(seconds(1e300) > Duration::from_secs(3_000_000_000));
        let clock = VirtualClock::new(SystemTime::UNIX_EPOCH, 1e300);
        assert!(clock.now() >= SystemTime::UNIX_EPOCH);
        assert!(later(SystemTime::UNIX_EPOCH, Duration::MAX) > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn timestamps_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_214_405_123_456);
        let text = rfc3339(t);
        assert_eq!(text, "2025-11-27T03:33:25.123456Z");
        assert_eq!(parse_rfc3339(&text), Some(t));
        assert_eq!(
            parse_rfc3339("2025-11-27T03:33:25Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_214_405))
        );
    }
}
