//! The numbers behind a report: error rate and p95 per minute for stable and canary,
//! and each stage's gate values recomputed over the stage's minutes. Pure.
//!
//! These are plain ratios over the stage (after warm-up), what a person would check on
//! a dashboard — not the sequential judgement that decided the rollout.

use crate::time::epoch_secs;
use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::analysis::observations::{Minute, Observations};
use crate::manifest::types::CanaryRollout;

use super::timeline::Span;

/// One point of a revision's series: the period ending at `end` (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point {
    pub(crate) end: u64,
    pub(crate) requests: u64,
    /// 5xx ÷ all, when there were requests.
    pub(crate) error_rate: Option<f64>,
    /// Milliseconds, when there was a latency distribution.
    pub(crate) p95: Option<f64>,
}

/// A revision's points, oldest first.
pub(crate) fn points(metrics: &Observations, key: &str) -> Vec<Point> {
    metrics
        .get(key)
        .into_iter()
        .flatten()
        .map(|(end, m)| Point {
            end: *end,
            requests: m.total,
            error_rate: (m.total > 0).then(|| m.server_errors as f64 / m.total as f64),
            p95: m.latency.as_ref().and_then(|d| d.percentile(0.95)),
        })
        .collect()
}

/// Totals over some minutes of one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) requests: u64,
    pub(crate) error_rate: Option<f64>,
    pub(crate) p95: Option<f64>,
}

fn totals<'a>(minutes: impl Iterator<Item = &'a Minute>) -> Totals {
    let mut sum = Minute::default();
    minutes.for_each(|m| sum.add(m));
    let requests = sum.total;
    Totals {
        requests,
        error_rate: (requests > 0).then(|| sum.server_errors as f64 / requests as f64),
        p95: sum.latency.and_then(|d| d.percentile(0.95)),
    }
}

/// A stage's gate values, recomputed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StageFigures {
    pub(crate) span: Span,
    pub(crate) canary: Totals,
    pub(crate) stable: Totals,
    /// Canary minus stable error rate (a fraction).
    pub(crate) error_rate_increase: Option<f64>,
    /// Canary p95 ÷ stable p95 − 1.
    pub(crate) p95_increase: Option<f64>,
}

/// Each span's canary and stable figures over its minutes after warm-up, up to `now`
/// for a stage still running. At 100% stable has no traffic: its figures come from the
/// span before, as the gates judge it.
pub(crate) fn stage_figures(
    rollout: &CanaryRollout,
    spans: &[Span],
    metrics: &Observations,
    canary: &str,
    stable: &str,
    now: SystemTime,
) -> Vec<StageFigures> {
    let warmup = rollout.spec.analysis.warmup.as_secs();
    let empty = BTreeMap::new();
    let canary_minutes = metrics.get(canary).unwrap_or(&empty);
    let stable_minutes = metrics.get(stable).unwrap_or(&empty);
    // A minute counts when it began after the warm-up and ended by the span's end.
    let within = |span: &Span, end: u64| {
        let from = epoch_secs(span.start) + warmup + 60;
        let to = epoch_secs(span.end.unwrap_or(now));
        end >= from && end <= to
    };
    spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let canary = totals(canary_minutes.iter().filter(|(e, _)| within(span, **e)).map(|(_, m)| m));
            let stable = if span.weight >= 100 {
                let before = i.checked_sub(1).and_then(|j| spans.get(j));
                let minutes = stable_minutes.iter().filter(|(e, _)| before.is_some_and(|b| within(b, **e)));
                totals(minutes.map(|(_, m)| m))
            } else {
                totals(stable_minutes.iter().filter(|(e, _)| within(span, **e)).map(|(_, m)| m))
            };
            let error_rate_increase = canary.error_rate.zip(stable.error_rate).map(|(c, s)| c - s);
            let p95_increase = canary.p95.zip(stable.p95).filter(|(_, s)| *s > 0.0).map(|(c, s)| c / s - 1.0);
            StageFigures { span: span.clone(), canary, stable, error_rate_increase, p95_increase }
        })
        .collect()
}
