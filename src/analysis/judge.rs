//! A first judgement, simple and honest (part 2 of the reconciler replaces it with
//! sequential tests): per-revision request counts and latency distributions from Cloud
//! Monitoring, over the right minutes, become rollback triggers and promotion gates,
//! each pass, fail or inconclusive. Too little data is inconclusive — never a failure,
//! never a pass.
//!
//! - Only minutes Cloud Monitoring has published are seen (it withholds the rest), and
//!   minutes that start within `warmup` of the stage's traffic change are left out.
//! - A trigger without `for` judges the newest published minute; with `for: D`, the
//!   minutes of the last D up to the newest.
//! - Gates compare canary with stable over the same minutes of the stage; at 100%,
//!   stable has no traffic, so its minutes come from the stage before.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::distribution::Distribution;
use super::verdict::{Check, Outcome};
use crate::emulator::clock::{parse_rfc3339, rfc3339};
use crate::manifest::quantity::Threshold;
use crate::manifest::types::{CanaryRollout, Metric};

/// Fewer requests than this in a trigger's window is inconclusive.
pub const MIN_TRIGGER_REQUESTS: u64 = 20;
/// Fewer requests than this on either side makes a comparison inconclusive.
pub const MIN_COMPARISON_REQUESTS: u64 = 100;

/// Which revisions and minutes a judgement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// [`key`] of the canary revision.
    pub canary: String,
    /// [`key`] of the stable revision.
    pub stable: String,
    pub stage_started: SystemTime,
    pub previous_stage_started: Option<SystemTime>,
    pub weight: u8,
}

/// One minute of one revision.
#[derive(Debug, Clone, Default)]
pub struct Minute {
    pub total: u64,
    pub server_errors: u64,
    pub latency: Option<Distribution>,
}

/// Minutes by revision, keyed by the minute's end (epoch seconds).
pub type Metrics = BTreeMap<String, BTreeMap<u64, Minute>>;

/// The earliest moment a judgement of `window` looks at: the stage's start (at 100%, the
/// stage before's), or the longest trigger window before now, whichever is earlier.
pub fn window_start(rollout: &CanaryRollout, window: &Window, now: SystemTime) -> SystemTime {
    let longest_for = rollout.spec.analysis.rollback.iter().map(|t| t.window.as_std()).max().unwrap_or_default();
    let from_stage = if window.weight >= 100 {
        window.previous_stage_started.unwrap_or(window.stage_started)
    } else {
        window.stage_started
    };
    let from_triggers = now.checked_sub(longest_for + Duration::from_secs(600)).unwrap_or(from_stage);
    from_stage.min(from_triggers)
}

/// The two `timeSeries.list` queries that serve every judgement in a project: request
/// counts by revision and response class, and latency distributions by revision, minute
/// by minute, across all services — one pair of calls per project, whatever the number
/// of rollouts.
pub fn project_queries(start: SystemTime, now: SystemTime) -> [Vec<(String, String)>; 2] {
    let (start, end) = (rfc3339(start), rfc3339(now));
    let common = |metric: &str| -> Vec<(String, String)> {
        vec![
            ("filter".into(), format!("metric.type=\"{metric}\" AND resource.type=\"cloud_run_revision\"")),
            ("interval.startTime".into(), start.clone()),
            ("interval.endTime".into(), end.clone()),
            ("aggregation.alignmentPeriod".into(), "60s".into()),
            ("aggregation.perSeriesAligner".into(), "ALIGN_DELTA".into()),
            ("aggregation.crossSeriesReducer".into(), "REDUCE_SUM".into()),
            ("aggregation.groupByFields".into(), "resource.labels.location".into()),
            ("aggregation.groupByFields".into(), "resource.labels.revision_name".into()),
        ]
    };
    let mut counts = common("run.googleapis.com/request_count");
    counts.push(("aggregation.groupByFields".into(), "metric.labels.response_code_class".into()));
    [counts, common("run.googleapis.com/request_latencies")]
}

/// Whether judging `rollout` needs latency distributions (a p95 gate or trigger).
pub fn needs_latency(rollout: &CanaryRollout) -> bool {
    rollout.spec.analysis.promotion.max_p95_increase.is_some()
        || rollout.spec.analysis.rollback.iter().any(|t| t.metric == Metric::P95Latency)
}

/// How [`Metrics`] names a revision: its region and its name.
pub fn key(location: &str, revision: &str) -> String {
    format!("{location}/{revision}")
}

/// Reads the two queries' series into minutes by revision.
pub fn parse(counts: &[Value], latencies: &[Value]) -> Metrics {
    let mut metrics = Metrics::new();
    let end_of = |point: &Value| -> Option<u64> {
        let end = parse_rfc3339(point.pointer("/interval/endTime")?.as_str()?)?;
        Some(end.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs())
    };
    for series in counts {
        let revision = series_key(series);
        let class = series.pointer("/metric/labels/response_code_class").and_then(Value::as_str).unwrap_or_default();
        for point in series.get("points").and_then(Value::as_array).into_iter().flatten() {
            let value =
                point.pointer("/value/int64Value").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            let (Some(end), Some(value)) = (end_of(point), value) else { continue };
            let minute = metrics.entry(revision.clone()).or_default().entry(end).or_default();
            minute.total += value;
            if class == "5xx" {
                minute.server_errors += value;
            }
        }
    }
    for series in latencies {
        let revision = series_key(series);
        for point in series.get("points").and_then(Value::as_array).into_iter().flatten() {
            let dist = point.pointer("/value/distributionValue").and_then(Distribution::from_wire);
            let (Some(end), Some(dist)) = (end_of(point), dist) else { continue };
            metrics.entry(revision.clone()).or_default().entry(end).or_default().latency = Some(dist);
        }
    }
    metrics
}

fn series_key(series: &Value) -> String {
    let label = |k: &str| series.pointer(&format!("/resource/labels/{k}")).and_then(Value::as_str).unwrap_or_default();
    key(label("location"), label("revision_name"))
}

/// Sums of some minutes of one revision.
#[derive(Debug, Default)]
struct Totals {
    total: u64,
    server_errors: u64,
    latency: Option<Distribution>,
}

impl Totals {
    fn of<'a>(minutes: impl Iterator<Item = &'a Minute>) -> Totals {
        let mut t = Totals::default();
        for m in minutes {
            t.total += m.total;
            t.server_errors += m.server_errors;
            if let Some(d) = &m.latency {
                match &mut t.latency {
                    Some(sum) => {
                        sum.merge(d);
                    }
                    None => t.latency = Some(d.clone()),
                }
            }
        }
        t
    }

    fn error_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.server_errors as f64 / self.total as f64)
    }

    fn p95(&self) -> Option<f64> {
        self.latency.as_ref().and_then(|d| d.percentile(0.95))
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Judges the rollback triggers and the promotion gates.
pub fn judge(rollout: &CanaryRollout, window: &Window, metrics: &Metrics) -> (Vec<Check>, Vec<Check>) {
    let analysis = &rollout.spec.analysis;
    let warm_from = secs(window.stage_started) + analysis.warmup.as_secs();
    let empty = BTreeMap::new();
    let canary = metrics.get(&window.canary).unwrap_or(&empty);
    // A minute counts once it started after the warm-up.
    let judged = |minutes: &'_ BTreeMap<u64, Minute>, from: u64, to: u64| -> Vec<(u64, Minute)> {
        minutes.iter().filter(|(end, _)| **end >= from + 60 && **end <= to).map(|(e, m)| (*e, m.clone())).collect()
    };
    let canary_minutes = judged(canary, warm_from, u64::MAX);
    let newest = canary_minutes.iter().map(|(end, _)| *end).max();
    let triggers = analysis
        .rollback
        .iter()
        .map(|rule| {
            let span = rule.window.as_secs().max(60);
            let in_window: Vec<&Minute> = match newest {
                Some(newest) => canary_minutes.iter().filter(|(end, _)| *end + span > newest).map(|(_, m)| m).collect(),
                None => Vec::new(),
            };
            let totals = Totals::of(in_window.into_iter());
            let (threshold, observed, fails) = match (rule.metric, rule.above.as_ref().or(rule.below.as_ref())) {
                (Metric::ErrorRate, Some(Threshold::Percent(p))) => {
                    let rate = totals.error_rate();
                    (p.fraction(), rate, rate.is_some_and(|r| r > p.fraction()))
                }
                (Metric::Availability, Some(Threshold::Percent(p))) => {
                    let availability = totals.error_rate().map(|r| 1.0 - r);
                    (p.fraction(), availability, availability.is_some_and(|a| a < p.fraction()))
                }
                (Metric::P95Latency, Some(Threshold::Latency(d))) => {
                    let limit = d.as_std().as_secs_f64() * 1000.0;
                    let p95 = totals.p95();
                    (limit, p95, p95.is_some_and(|v| v > limit))
                }
                _ => (0.0, None, false),
            };
            let enough = totals.total >= MIN_TRIGGER_REQUESTS;
            Check {
                name: rule.metric.name().to_owned(),
                observed,
                threshold,
                result: if !enough || observed.is_none() {
                    Outcome::Inconclusive
                } else if fails {
                    Outcome::Fail
                } else {
                    Outcome::Pass
                },
                requests_needed: (!enough).then(|| MIN_TRIGGER_REQUESTS - totals.total),
            }
        })
        .collect();

    // Gates: the stage's minutes after warm-up; stable over the same minutes, or over
    // the stage before when the canary has all the traffic.
    let stable_all = metrics.get(&window.stable).unwrap_or(&empty);
    let canary_totals = Totals::of(canary_minutes.iter().map(|(_, m)| m));
    let stable_totals = if window.weight >= 100 {
        let from = window.previous_stage_started.map_or(warm_from, |t| secs(t) + analysis.warmup.as_secs());
        Totals::of(judged(stable_all, from, secs(window.stage_started)).iter().map(|(_, m)| m))
    } else {
        let ends: Vec<u64> = canary_minutes.iter().map(|(e, _)| *e).collect();
        Totals::of(judged(stable_all, warm_from, u64::MAX).iter().filter(|(e, _)| ends.contains(e)).map(|(_, m)| m))
    };
    let promotion = &analysis.promotion;
    let mut gates = Vec::new();
    if let Some(min) = promotion.min_requests {
        let enough = canary_totals.total >= min;
        gates.push(Check {
            name: "minRequests".into(),
            observed: Some(canary_totals.total as f64),
            threshold: min as f64,
            result: if enough { Outcome::Pass } else { Outcome::Inconclusive },
            requests_needed: (!enough).then(|| min - canary_totals.total),
        });
    }
    let comparable = canary_totals.total >= MIN_COMPARISON_REQUESTS && stable_totals.total >= MIN_COMPARISON_REQUESTS;
    let needed = MIN_COMPARISON_REQUESTS.saturating_sub(canary_totals.total.min(stable_totals.total));
    if let Some(max) = &promotion.max_error_rate_increase {
        let increase = canary_totals.error_rate().zip(stable_totals.error_rate()).map(|(c, s)| c - s);
        gates.push(compare("errorRateIncrease", increase, max.fraction(), comparable, needed));
    }
    if let Some(max) = &promotion.max_p95_increase {
        let increase = canary_totals.p95().zip(stable_totals.p95()).filter(|(_, s)| *s > 0.0).map(|(c, s)| c / s - 1.0);
        gates.push(compare("p95Increase", increase, max.fraction(), comparable, needed));
    }
    (triggers, gates)
}

fn compare(name: &str, observed: Option<f64>, threshold: f64, comparable: bool, needed: u64) -> Check {
    let result = match observed {
        Some(v) if comparable => {
            if v > threshold {
                Outcome::Fail
            } else {
                Outcome::Pass
            }
        }
        _ => Outcome::Inconclusive,
    };
    Check {
        name: name.to_owned(),
        observed,
        threshold,
        result,
        requests_needed: (result == Outcome::Inconclusive).then_some(needed.max(1)),
    }
}
