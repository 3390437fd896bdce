//! Production conditions: what happens to every revision of a service, whatever its
//! image — incidents in a shared dependency, minutes that vary more than independent
//! requests would, error rates and latency that rise with load, and cold starts after
//! each traffic increase. Set per service through the control API
//! (`PUT /emulator/v1/conditions`) or a scenario file's `conditions:`; README "The
//! emulator" documents the shape.
//!
//! Pure: [`Conditions::behaviour`] turns an image's behaviour into the behaviour seen in
//! one minute, and [`Conditions::draw_counts`] draws that minute's counts. The world and
//! the judge-eval call the same two functions, so both see the same production.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::Rng;
use super::profile::Behaviour;
use super::sampling::{beta, binomial, poisson};
use super::traffic::{MinuteCounts, draw_counts};

/// Everything a service's revisions share. Every field may be left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Conditions {
    /// Periods when every revision fails more, or is slower, for a cause they share (a
    /// downstream both call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<Incident>,
    /// Minutes that vary more than binomially, in every revision alike (independently).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<Variation>,
    /// Error rate and latency that rise with the daily curve's load (services with
    /// `daily: true` load; others are always at the mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_load: Option<UnderLoad>,
    /// Slow requests for the first minutes after a revision's traffic goes up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<ColdStart>,
}

/// A shared incident: from `after` (counted from when the conditions are set) for
/// `lasts`, every revision's requests also fail at `errorRate` (independently of their
/// own failures), and its latency is at least `p50Ms`/`p95Ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Incident {
    #[serde(default = "zero")]
    pub after: String,
    pub lasts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
}

/// Extra variation per minute, drawn for each revision on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variation {
    /// How much a revision's error rate wobbles from minute to minute: a revision serving
    /// all of the service's traffic has 5xx counts per minute whose standard deviation is
    /// this multiple of the binomial's (1 = binomial). Each revision's rate for the minute
    /// is drawn on its own from a beta distribution around its rate, with the same
    /// spread for every revision (ρ = (d² − 1) / (N − 1), N the service's requests that
    /// minute), so a revision with a small share varies less, relative to binomial.
    #[serde(default = "one")]
    pub dispersion: f64,
    /// One bad instance: some minutes, or some requests, fail at a high rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_instance: Option<BadInstance>,
}

/// A bad instance: `share` of minutes (`per: minutes`) or of requests
/// (`per: requests`) also fail at `errorRate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BadInstance {
    pub share: f64,
    pub error_rate: f64,
    #[serde(default)]
    pub per: Per,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Per {
    #[default]
    Minutes,
    Requests,
}

/// How much worse every revision is at the daily curve's peak load (factors; 1 = no
/// change). In between, the factor is `atPeak ^ ((load − mean) / (peak − mean))`:
/// above 1 when busier than average, below 1 at night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnderLoad {
    #[serde(default = "one")]
    pub error_rate_at_peak: f64,
    #[serde(default = "one")]
    pub latency_at_peak: f64,
}

/// For `minutes` after each increase of a revision's traffic, its latency is at least
/// `p95Ms` (and `p50Ms`, if given). A minute that overlaps the period is slow throughout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColdStart {
    pub p95_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default = "two")]
    pub minutes: f64,
}

fn zero() -> String {
    "0s".to_owned()
}

fn one() -> f64 {
    1.0
}

fn two() -> f64 {
    2.0
}

/// Where a minute stands, for [`Conditions::behaviour`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinuteContext {
    /// Seconds from when the conditions were set to the minute's start (negative before).
    pub since_set: i64,
    /// The service's load this minute relative to its mean (the daily curve's factor; 1
    /// for a constant load).
    pub load: f64,
    /// Seconds from the revision's latest traffic increase to the minute's start
    /// (negative when the increase came within the minute); `None` if it never had one.
    pub since_increase: Option<i64>,
}

/// A failure rate on top of another, independently: 1 − (1 − a)(1 − b).
fn compound(a: f64, b: f64) -> f64 {
    1.0 - (1.0 - a) * (1.0 - b)
}

/// Latency at least `p50`/`p95`, keeping p95 above p50.
fn at_least(b: &mut Behaviour, p50: Option<f64>, p95: Option<f64>) {
    if let Some(p95) = p95 {
        b.p95_ms = b.p95_ms.max(p95);
    }
    if let Some(p50) = p50 {
        b.p50_ms = b.p50_ms.max(p50);
    }
    if b.p50_ms >= b.p95_ms {
        b.p50_ms = b.p95_ms / 2.0;
    }
}

fn duration(text: &str) -> Option<Duration> {
    humantime::parse_duration(text).ok()
}

impl Conditions {
    /// The behaviour of a revision whose image behaves as `own`, in the minute `at`.
    pub fn behaviour(&self, own: Behaviour, at: MinuteContext) -> Behaviour {
        let mut b = own;
        if let Some(load) = &self.under_load {
            let peak = crate::traffic::daily_peak();
            let exponent = if peak > 1.0 { (at.load - 1.0) / (peak - 1.0) } else { 0.0 };
            b.error_rate = (b.error_rate * load.error_rate_at_peak.powf(exponent)).min(1.0 - b.client_error_rate);
            let latency = load.latency_at_peak.powf(exponent);
            b.p50_ms *= latency;
            b.p95_ms *= latency;
        }
        for incident in &self.incidents {
            let (Some(after), Some(lasts)) = (duration(&incident.after), duration(&incident.lasts)) else { continue };
            let start = after.as_secs() as i64;
            if at.since_set >= start && at.since_set < start + lasts.as_secs() as i64 {
                if let Some(rate) = incident.error_rate {
                    b.error_rate = compound(b.error_rate, rate).min(1.0 - b.client_error_rate);
                }
                at_least(&mut b, incident.p50_ms, incident.p95_ms);
            }
        }
        if let (Some(cold), Some(since)) = (&self.cold_start, at.since_increase) {
            // The minute [0, 60) relative to its start overlaps [−since, −since + cold).
            if since > -60 && (since as f64) < cold.minutes * 60.0 {
                at_least(&mut b, cold.p50_ms, Some(cold.p95_ms));
            }
        }
        b
    }

    /// Draws a minute's counts around `expected` requests at behaviour `b`, for a
    /// service expecting `service_expected` requests in all: as [`draw_counts`] when
    /// there is no extra variation; otherwise the minute's 5xx rate is drawn first (a bad
    /// instance's minute, then the beta around it), from `rng`.
    pub fn draw_counts(&self, rng: &mut Rng, expected: f64, service_expected: f64, b: &Behaviour) -> MinuteCounts {
        let Some(variation) = &self.variation else { return draw_counts(rng, expected, b) };
        let total = poisson(rng, expected);
        let mut rate = b.error_rate;
        if let Some(bad) = &variation.bad_instance {
            match bad.per {
                Per::Minutes if rng.unit() < bad.share => rate = compound(rate, bad.error_rate),
                Per::Minutes => {}
                Per::Requests => rate = compound(rate, bad.share * bad.error_rate),
            }
        }
        let ceiling = 1.0 - b.client_error_rate;
        rate = rate.min(ceiling);
        let d = variation.dispersion;
        let service = service_expected.max(expected);
        if d > 1.0 && service > 1.0 && rate > 0.0 && rate < 1.0 {
            // Beta-binomial: Var = n p (1 − p) (1 + (n − 1) ρ), d² × binomial's at n = N.
            let rho = ((d * d - 1.0) / (service - 1.0)).min(0.999);
            let strength = 1.0 / rho - 1.0;
            rate = beta(rng, rate * strength, (1.0 - rate) * strength).min(ceiling);
        }
        let server_errors = binomial(rng, total, rate);
        let client_share = if rate < 1.0 { b.client_error_rate / (1.0 - rate) } else { 0.0 };
        let client_errors = binomial(rng, total - server_errors, client_share.clamp(0.0, 1.0));
        MinuteCounts { ok: total - server_errors - client_errors, client_errors, server_errors }
    }

    /// Checks what a client could get wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let fraction = |what: String, v: f64| {
            if (0.0..=1.0).contains(&v) { Ok(()) } else { Err(format!("{what}: {v} is not a fraction from 0 to 1")) }
        };
        let positive = |what: String, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{what}: {v} must be a positive number")) }
        };
        for (i, incident) in self.incidents.iter().enumerate() {
            let at = format!("incidents[{i}]");
            if duration(&incident.after).is_none() {
                return Err(format!("{at}.after: `{}` is not a duration like `30m`", incident.after));
            }
            if duration(&incident.lasts).is_none_or(|d| d.is_zero()) {
                return Err(format!("{at}.lasts: `{}` is not a duration like `20m`", incident.lasts));
            }
            if let Some(rate) = incident.error_rate {
                fraction(format!("{at}.errorRate"), rate)?;
            }
            if let Some(v) = incident.p50_ms {
                positive(format!("{at}.p50Ms"), v)?;
            }
            if let Some(v) = incident.p95_ms {
                positive(format!("{at}.p95Ms"), v)?;
            }
            if incident.error_rate.is_none() && incident.p50_ms.is_none() && incident.p95_ms.is_none() {
                return Err(format!("{at}: give errorRate, p95Ms or both: an incident must change something"));
            }
        }
        if let Some(v) = &self.variation {
            if !(v.dispersion.is_finite() && v.dispersion >= 1.0) {
                return Err(format!("variation.dispersion: {} must be 1 (binomial) or more", v.dispersion));
            }
            if let Some(bad) = &v.bad_instance {
                fraction("variation.badInstance.share".into(), bad.share)?;
                fraction("variation.badInstance.errorRate".into(), bad.error_rate)?;
            }
        }
        if let Some(load) = &self.under_load {
            positive("underLoad.errorRateAtPeak".into(), load.error_rate_at_peak)?;
            positive("underLoad.latencyAtPeak".into(), load.latency_at_peak)?;
        }
        if let Some(cold) = &self.cold_start {
            positive("coldStart.p95Ms".into(), cold.p95_ms)?;
            if let Some(p50) = cold.p50_ms {
                positive("coldStart.p50Ms".into(), p50)?;
            }
            if !(cold.minutes.is_finite() && cold.minutes >= 0.0) {
                return Err(format!("coldStart.minutes: {} must be 0 or more", cold.minutes));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Behaviour =
        Behaviour { error_rate: 0.005, client_error_rate: 0.01, p50_ms: 120.0, p95_ms: 450.0, health_status: 200 };

    fn calm() -> MinuteContext {
        MinuteContext { since_set: 3600, load: 1.0, since_increase: None }
    }

    fn parse(text: &str) -> Conditions {
        let c: Conditions = serde_json::from_str(text).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn an_incident_hits_only_its_period_and_adds_to_the_revisions_own_failures() {
        let c = parse(r#"{"incidents": [{"after": "30m", "lasts": "20m", "errorRate": 0.12}]}"#);
        let at = |min: i64| c.behaviour(OWN, MinuteContext { since_set: min * 60, ..calm() }).error_rate;
        assert_eq!(at(29), OWN.error_rate);
        assert!((at(30) - (1.0 - 0.995 * 0.88)).abs() < 1e-12);
        assert!((at(49) - at(30)).abs() < 1e-12);
        assert_eq!(at(50), OWN.error_rate);
    }

    #[test]
    fn a_latency_incident_raises_p95_and_keeps_p50_below_it() {
        let c = parse(r#"{"incidents": [{"lasts": "20m", "p95Ms": 3000}]}"#);
        let b = c.behaviour(OWN, MinuteContext { since_set: 0, ..calm() });
        assert_eq!(b.p95_ms, 3000.0);
        assert!(b.p50_ms < b.p95_ms);
        assert_eq!(b.error_rate, OWN.error_rate);
    }

    #[test]
    fn load_doubles_errors_at_the_peak_and_eases_them_at_night() {
        let c = parse(r#"{"underLoad": {"errorRateAtPeak": 2, "latencyAtPeak": 1.5}}"#);
        let peak = c.behaviour(OWN, MinuteContext { load: crate::traffic::daily_peak(), ..calm() });
        assert!((peak.error_rate - 2.0 * OWN.error_rate).abs() < 1e-12);
        assert!((peak.p95_ms - 1.5 * OWN.p95_ms).abs() < 1e-9);
        let mean = c.behaviour(OWN, calm());
        assert_eq!(mean, OWN);
        let night = c.behaviour(OWN, MinuteContext { load: 0.3, ..calm() });
        assert!(night.error_rate < OWN.error_rate);
    }

    #[test]
    fn cold_starts_slow_the_minutes_that_overlap_the_period_after_an_increase() {
        let c = parse(r#"{"coldStart": {"p95Ms": 3000, "minutes": 2}}"#);
        let p95 = |since: Option<i64>| c.behaviour(OWN, MinuteContext { since_increase: since, ..calm() }).p95_ms;
        assert_eq!(p95(None), OWN.p95_ms);
        assert_eq!(p95(Some(-30)), 3000.0, "the increase came within the minute");
        assert_eq!(p95(Some(60)), 3000.0);
        assert_eq!(p95(Some(119)), 3000.0);
        assert_eq!(p95(Some(120)), OWN.p95_ms);
        assert_eq!(p95(Some(-60)), OWN.p95_ms, "the increase came after the minute");
    }

    /// The sample variance of `draws` over the binomial's at the same mean.
    fn dispersion(draws: &[(u64, u64)]) -> f64 {
        let n = draws.len() as f64;
        let total: u64 = draws.iter().map(|(_, t)| t).sum();
        let errors: u64 = draws.iter().map(|(e, _)| e).sum();
        let p = errors as f64 / total as f64;
        let mean_n = total as f64 / n;
        let mean = errors as f64 / n;
        let var = draws.iter().map(|(e, _)| (*e as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        var / (mean_n * p * (1.0 - p))
    }

    #[test]
    fn dispersion_multiplies_the_standard_deviation_and_keeps_the_mean() {
        let c = parse(r#"{"variation": {"dispersion": 3}}"#);
        let plain = Conditions::default();
        for expected in [60.0, 600.0] {
            let draw = |c: &Conditions, seed| {
                let mut rng = Rng::new(seed);
                (0..40_000)
                    .map(|_| {
                        let m = c.draw_counts(&mut rng, expected, expected, &OWN);
                        (m.server_errors, m.total())
                    })
                    .collect::<Vec<_>>()
            };
            let (varied, binomial) = (draw(&c, 1), draw(&plain, 1));
            // Poisson totals add a little variance to both; the ratio of standard
            // deviations is what `dispersion` promises.
            let ratio = (dispersion(&varied) / dispersion(&binomial)).sqrt();
            assert!((ratio - 3.0).abs() < 0.3, "{expected} expected: sd ratio {ratio}");
            let rate = |d: &[(u64, u64)]| {
                d.iter().map(|(e, _)| *e).sum::<u64>() as f64 / d.iter().map(|(_, t)| *t).sum::<u64>() as f64
            };
            assert!((rate(&varied) - 0.005).abs() < 0.0005, "mean rate {}", rate(&varied));
        }
        // A revision with a twentieth of the service's requests: the same wobble in its
        // rate is a smaller multiple of its binomial spread, 1 + (n − 1)ρ.
        let mut rng = Rng::new(2);
        let small: Vec<(u64, u64)> = (0..40_000)
            .map(|_| {
                let m = c.draw_counts(&mut rng, 60.0, 1200.0, &OWN);
                (m.server_errors, m.total())
            })
            .collect();
        let expected = 1.0 + 59.0 * 8.0 / 1199.0;
        assert!((dispersion(&small) / expected - 1.0).abs() < 0.15, "{} vs {expected}", dispersion(&small));
    }

    #[test]
    fn a_bad_instance_fails_its_share_of_minutes() {
        let c = parse(r#"{"variation": {"badInstance": {"share": 0.1, "errorRate": 0.5}}}"#);
        let mut rng = Rng::new(4);
        let bad = (0..10_000).filter(|_| c.draw_counts(&mut rng, 200.0, 200.0, &OWN).server_errors > 50).count();
        assert!((800..1200).contains(&bad), "{bad} bad minutes of 10000");
        let c = parse(r#"{"variation": {"badInstance": {"share": 0.1, "errorRate": 0.5, "per": "requests"}}}"#);
        let mut rng = Rng::new(4);
        let errors: u64 = (0..10_000).map(|_| c.draw_counts(&mut rng, 200.0, 200.0, &OWN).server_errors).sum();
        let rate = errors as f64 / 2_000_000.0;
        assert!((rate - compound(0.005, 0.05)).abs() < 0.002, "{rate}");
    }

    #[test]
    fn without_variation_counts_are_the_plain_model_draw_for_draw() {
        let c = parse(r#"{"incidents": [{"lasts": "1m", "errorRate": 0.2}]}"#);
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        for _ in 0..100 {
            assert_eq!(c.draw_counts(&mut a, 300.0, 600.0, &OWN), draw_counts(&mut b, 300.0, &OWN));
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        for (text, field) in [
            (r#"{"incidents": [{"lasts": "soon", "errorRate": 0.1}]}"#, "incidents[0].lasts"),
            (r#"{"incidents": [{"lasts": "5m", "errorRate": 1.5}]}"#, "incidents[0].errorRate"),
            (r#"{"incidents": [{"lasts": "5m"}]}"#, "incidents[0]"),
            (r#"{"variation": {"dispersion": 0.5}}"#, "variation.dispersion"),
            (r#"{"coldStart": {"p95Ms": -1}}"#, "coldStart.p95Ms"),
        ] {
            let c: Conditions = serde_json::from_str(text).unwrap();
            let err = c.validate().unwrap_err();
            assert!(err.starts_with(field), "{text}: {err}");
        }
    }
}
