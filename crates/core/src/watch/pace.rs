//! The platform's time as the watch loop sees it, and how long to really sleep for it.
//!
//! Requeue times are in the platform's clock. Against Google that is real time. The
//! emulator's clock may run faster (`--time-scale 3600`: an hour a second) or be
//! stepped (moves only when a test says so); the loop anchors the emulator's time to
//! a real instant at each reading and extrapolates by the scale in between, and on a
//! stepped clock it reads the clock again every [`STEPPED_POLL`].

use std::time::{Duration, Instant, SystemTime};

/// How often a stepped emulator clock is read again.
pub(crate) const STEPPED_POLL: Duration = Duration::from_millis(200);
/// How often an accelerated emulator clock is read again (someone may step it too).
pub(crate) const SCALED_POLL: Duration = Duration::from_secs(1);

/// How the platform's clock moves relative to real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Pace {
    /// Google: the system clock.
    Real,
    /// The emulator: `scale` platform seconds per real second.
    Scaled(f64),
    /// The emulator, moving only when advanced.
    Stepped,
}

impl Pace {
    /// From the emulator's `timeScale`: 0 (or nonsense) is stepped.
    pub(crate) fn from_scale(scale: f64) -> Pace {
        if scale.is_finite() && scale > 0.0 { Pace::Scaled(scale) } else { Pace::Stepped }
    }
}

/// A reading of the platform clock, extrapolated between readings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeBase {
    pace: Pace,
    platform: SystemTime,
    real: Instant,
}

impl TimeBase {
    pub(crate) fn new(pace: Pace, platform: SystemTime, real: Instant) -> TimeBase {
        TimeBase { pace, platform, real }
    }

    /// A new reading of the clock.
    pub(crate) fn observe(&mut self, pace: Pace, platform: SystemTime, real: Instant) {
        *self = TimeBase { pace, platform, real };
    }

    /// The platform's time at real instant `real`.
    pub(crate) fn now(&self, real: Instant) -> SystemTime {
        let elapsed = real.saturating_duration_since(self.real);
        let span = match self.pace {
            Pace::Real => elapsed,
            Pace::Scaled(scale) => crate::time::seconds(elapsed.as_secs_f64() * scale),
            Pace::Stepped => Duration::ZERO,
        };
        crate::time::later(self.platform, span)
    }

    /// How long to really wait, from `real`, until the platform's clock reaches `due`
    /// (`None` when it will not get there by itself: a stepped clock).
    pub(crate) fn real_wait(&self, due: SystemTime, real: Instant) -> Option<Duration> {
        let ahead = due.duration_since(self.now(real)).unwrap_or(Duration::ZERO);
        match self.pace {
            Pace::Real => Some(ahead),
            Pace::Scaled(scale) => Some(crate::time::seconds(ahead.as_secs_f64() / scale)),
            Pace::Stepped if ahead.is_zero() => Some(Duration::ZERO),
            Pace::Stepped => None,
        }
    }

    /// How often to read the clock again; `None` for the system clock.
    pub(crate) fn poll(&self) -> Option<Duration> {
        match self.pace {
            Pace::Real => None,
            Pace::Scaled(_) => Some(SCALED_POLL),
            Pace::Stepped => Some(STEPPED_POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn an_accelerated_clock_turns_an_hour_of_requeue_into_a_second() {
        let start = Instant::now();
        let base = TimeBase::new(Pace::from_scale(3600.0), t(0), start);
        assert_eq!(base.real_wait(t(3600), start), Some(Duration::from_secs(1)));
        assert_eq!(base.now(start + Duration::from_secs(2)), t(7200));
        assert_eq!(base.real_wait(t(3600), start + Duration::from_secs(2)), Some(Duration::ZERO));
    }

    #[test]
    fn a_stepped_clock_waits_for_a_reading_that_passes_the_due_time() {
        let start = Instant::now();
        let mut base = TimeBase::new(Pace::from_scale(0.0), t(0), start);
        assert_eq!(base.now(start + Duration::from_secs(100)), t(0));
        assert_eq!(base.real_wait(t(60), start), None);
        base.observe(Pace::Stepped, t(60), start + Duration::from_secs(1));
        assert_eq!(base.real_wait(t(60), start + Duration::from_secs(1)), Some(Duration::ZERO));
        assert_eq!(base.poll(), Some(STEPPED_POLL));
    }

    #[test]
    fn real_time_waits_the_difference() {
        let start = Instant::now();
        let base = TimeBase::new(Pace::Real, t(0), start);
        assert_eq!(base.real_wait(t(10), start), Some(Duration::from_secs(10)));
        assert_eq!(base.poll(), None);
        assert_eq!(Pace::from_scale(f64::NAN), Pace::Stepped);
    }
}
