//! The traffic model: how many requests each revision gets in each minute, how many
//! fail, and how long they take. Derived on demand from a counter-based generator —
//! each (revision, minute) has its own seed — over the history of loads, traffic
//! splits and profiles, so nothing per minute is stored and a simulated day of
//! thousands of services costs only what is queried.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::ids::{Rng, fnv1a, mix};
use super::profile::Behaviour;
use super::sampling::{Z95, binomial, multinomial, normal_cdf, poisson};
use crate::histogram::Histogram;

/// A service's request rate: constant, or shaped by the daily curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    pub rps: f64,
    #[serde(default)]
    pub daily: bool,
}

/// The daily curve, by UTC hour: quiet nights, busy days, peaks at 09–11, 14–16 and
/// 21–23. Its mean over a day is 1, so `rps` is the day's average.
pub fn daily_factor(t: SystemTime) -> f64 {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    DAILY_SHAPE[((secs / 3600) % 24) as usize] / daily_mean()
}

const DAILY_SHAPE: [f64; 24] = [
    0.45, 0.35, 0.3, 0.3, 0.3, 0.35, 0.5, 0.75, 1.0, 1.6, 1.6, 1.1, 1.05, 1.0, 1.6, 1.6, 1.1, 1.0, 1.0, 1.0, 1.05, 1.5,
    1.5, 0.7,
];

fn daily_mean() -> f64 {
    DAILY_SHAPE.iter().sum::<f64>() / 24.0
}

/// The daily curve's busiest hour, relative to its mean.
pub fn daily_peak() -> f64 {
    DAILY_SHAPE.iter().copied().fold(0.0, f64::max) / daily_mean()
}

impl Load {
    pub(crate) fn rps_at(&self, t: SystemTime) -> f64 {
        if self.daily { self.rps * daily_factor(t) } else { self.rps }
    }
}

/// Values that change at points in time; the one in force at `t` is the newest set at
/// or before it.
#[derive(Debug, Clone)]
pub(crate) struct Timeline<T> {
    entries: Vec<(SystemTime, T)>,
}

impl<T> Default for Timeline<T> {
    fn default() -> Self {
        Timeline { entries: Vec::new() }
    }
}

impl<T> Timeline<T> {
    pub(crate) fn set(&mut self, at: SystemTime, value: T) {
        let i = self.entries.partition_point(|(t, _)| *t <= at);
        self.entries.insert(i, (at, value));
    }

    pub(crate) fn at(&self, t: SystemTime) -> Option<&T> {
        self.entry_at(t).map(|(_, v)| v)
    }

    /// The value in force at `t`, with when it was set.
    pub(crate) fn entry_at(&self, t: SystemTime) -> Option<&(SystemTime, T)> {
        let i = self.entries.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1).map(|i| &self.entries[i])
    }

    pub(crate) fn entries(&self) -> &[(SystemTime, T)] {
        &self.entries
    }

    pub(crate) fn last(&self) -> Option<&(SystemTime, T)> {
        self.entries.last()
    }
}

/// A revision's requests in one minute, by response class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    pub(crate) ok: u64,
    pub(crate) client_errors: u64,
    pub server_errors: u64,
}

impl MinuteCounts {
    pub fn total(&self) -> u64 {
        self.ok + self.client_errors + self.server_errors
    }

    pub(crate) fn add(&mut self, other: &MinuteCounts) {
        self.ok += other.ok;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
    }
}

/// The seed of one revision's one minute, for one stream (`counts`, `latency`).
pub fn minute_rng(seed: u64, revision: &str, minute: u64, stream: u64) -> Rng {
    Rng::new(mix(seed ^ mix(fnv1a(revision)) ^ mix(minute.wrapping_mul(0x9e37_79b9) ^ stream)))
}

/// Draws a minute's counts: Poisson requests around `expected`, binomial 5xx and 4xx.
pub fn draw_counts(rng: &mut Rng, expected: f64, b: &Behaviour) -> MinuteCounts {
    let total = poisson(rng, expected);
    let server_errors = binomial(rng, total, b.error_rate);
    let client_share = if b.error_rate < 1.0 { b.client_error_rate / (1.0 - b.error_rate) } else { 0.0 };
    let client_errors = binomial(rng, total - server_errors, client_share.clamp(0.0, 1.0));
    MinuteCounts { ok: total - server_errors - client_errors, client_errors, server_errors }
}

/// Bucket probabilities of a log-normal latency, cached per (p50, p95), and the
/// buckets' midpoints.
#[derive(Debug, Default)]
pub struct LatencyShapes {
    cache: HashMap<(u64, u64), Vec<f64>>,
    mids: Vec<f64>,
}

impl LatencyShapes {
    /// Draws the latencies of `n` requests into buckets (multinomial over the
    /// log-normal's bucket probabilities); mean and squared deviation are taken from the
    /// bucket midpoints, so they agree with the counts.
    pub fn draw(&mut self, rng: &mut Rng, n: u64, b: &Behaviour) -> Histogram {
        let mut d = Histogram::latency();
        if n == 0 {
            return d;
        }
        if self.mids.is_empty() {
            self.mids = (0..Histogram::buckets())
                .map(|i| {
                    let (lower, upper) = Histogram::edges(i);
                    match (lower.is_finite() && lower > 0.0, upper.is_finite()) {
                        (true, true) => (lower * upper).sqrt(),
                        (false, _) => upper / 2.0,
                        (true, false) => lower,
                    }
                })
                .collect();
        }
        let probs = self.cache.entry((b.p50_ms.to_bits(), b.p95_ms.to_bits())).or_insert_with(|| {
            let mu = b.p50_ms.ln();
            let sigma = (b.p95_ms.ln() - mu) / Z95;
            let cdf = |x: f64| {
                if x <= 0.0 {
                    0.0
                } else if x.is_infinite() {
                    1.0
                } else {
                    normal_cdf((x.ln() - mu) / sigma)
                }
            };
            (0..Histogram::buckets())
                .map(|i| {
                    let (lower, upper) = Histogram::edges(i);
                    (cdf(upper) - cdf(lower.max(0.0))).max(0.0)
                })
                .collect()
        });
        d.counts = multinomial(rng, n, probs);
        d.count = n;
        let used: Vec<(usize, f64)> =
            d.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, &c)| (i, c as f64)).collect();
        let sum: f64 = used.iter().map(|&(i, c)| c * self.mids[i]).sum();
        d.mean = sum / n as f64;
        d.sum_of_squared_deviation = used.iter().map(|&(i, c)| c * (self.mids[i] - d.mean).powi(2)).sum();
        d
    }
}

/// The whole minutes (as seconds since the epoch, a multiple of 60) that start in
/// `[from, to)`.
pub(crate) fn minutes(from: SystemTime, to: SystemTime) -> impl Iterator<Item = u64> {
    let secs = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let first = secs(from).div_ceil(60) * 60;
    let end = secs(to);
    (first..).step_by(60).take_while(move |m| m + 60 <= end)
}

pub(crate) fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_curve_averages_one_with_peaks_where_promised() {
        let day: f64 = (0..24).map(|h| daily_factor(at(h * 3600))).sum::<f64>() / 24.0;
        assert!((day - 1.0).abs() < 1e-9, "{day}");
        for peak in [9, 10, 14, 15, 21, 22] {
            assert!(daily_factor(at(peak * 3600)) > 1.4, "{peak}h");
        }
        assert!(daily_factor(at(3 * 3600)) < 0.5);
    }

    #[test]
    fn timelines_answer_with_the_value_in_force() {
        let mut t = Timeline::default();
        t.set(at(100), "b");
        t.set(at(0), "a");
        assert_eq!(t.at(at(50)), Some(&"a"));
        assert_eq!(t.at(at(100)), Some(&"b"));
        assert_eq!(Timeline::<&str>::default().at(at(1)), None);
    }

    #[test]
    fn minutes_are_whole_and_aligned() {
        let got: Vec<u64> = minutes(at(30), at(200)).collect();
        assert_eq!(got, vec![60, 120]);
    }
}
