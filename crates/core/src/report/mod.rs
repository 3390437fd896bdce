//! `canary report NAME`: a rollout or rollback report — Markdown with an SVG chart —
//! from what anyone with read access can see: the service's `canary/` annotations and
//! Cloud Monitoring. Nothing comes from the machine that ran the rollout.
//!
//! `build` is pure (state, metrics and "now" in; file names and contents out);
//! [`write`] reads the service and the metrics, builds, and writes the two files.
//!
//! # Errors
//! A rollout that never deployed a canary is [`Failure::NotStarted`]; a report with no
//! metrics is still written, its chart saying "no data".

pub(crate) mod chart;
pub(crate) mod markdown;
pub(crate) mod series;
pub(crate) mod timeline;

use crate::time::epoch_secs;
use crate::transport::ApiFailure;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::analysis::observations::{self, Observations};
use crate::cloudrun::service::ServiceView;
use crate::manifest::quantity::Threshold;
use crate::manifest::types::{CanaryRollout, Metric};
use crate::platform::{Clock, CloudRun, Monitoring};
use crate::state::RolloutState;
use crate::time::rfc3339;

/// Why no report was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The rollout has not deployed a canary (an input problem: nothing to report).
    #[error("{0}")]
    NotStarted(String),
    /// Cloud Run or Cloud Monitoring could not be read: what for, and why.
    #[error("cannot read {what}: {failure}")]
    Api { what: String, failure: ApiFailure },
    #[error("{0}")]
    Io(String),
}

impl Failure {
    /// The failed call behind it, when there was one.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            Failure::Api { failure, .. } => Some(failure),
            Failure::NotStarted(_) | Failure::Io(_) => None,
        }
    }
}

/// The minutes shown before the deploy and after the end, for context.
const BEFORE: Duration = Duration::from_secs(10 * 60);
const AFTER: Duration = Duration::from_secs(15 * 60);
/// At most this many points per series: long rollouts get longer periods.
const MAX_POINTS: u64 = 720;

/// What to ask Cloud Monitoring for: the time range and the period of each point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) from: SystemTime,
    pub(crate) to: SystemTime,
    pub(crate) period: Duration,
}

/// The range a report covers: from a little before the deploy (or the first stage
/// known) to a little after the end, never past `now`.
pub(crate) fn range(t: &timeline::Timeline, now: SystemTime) -> Range {
    let hour_ago = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
    let first = t.started.or_else(|| t.spans.first().map(|s| s.start)).unwrap_or(hour_ago);
    let from = first.checked_sub(BEFORE).unwrap_or(first);
    let to = t.ended.map_or(now, |e| (e + AFTER).min(now)).max(from + Duration::from_secs(60));
    let minutes = to.duration_since(from).unwrap_or_default().as_secs().div_ceil(60);
    let period = Duration::from_secs(minutes.div_ceil(MAX_POINTS).max(1) * 60);
    // Whole periods, so every point covers the same span.
    let from = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_secs(from) / period.as_secs() * period.as_secs());
    let to = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch_secs(to) / period.as_secs() * period.as_secs());
    Range { from, to: to.max(from + period), period }
}

/// The two `timeSeries.list` queries for one service's revisions over `range`: request
/// counts by revision and response class, and latency distributions by revision.
pub(crate) fn queries(rollout: &CanaryRollout, range: Range) -> [Vec<(String, String)>; 2] {
    let filter = format!(
        " AND resource.labels.service_name=\"{}\" AND resource.labels.location=\"{}\"",
        rollout.spec.service, rollout.spec.region
    );
    observations::queries(&filter, range.from, range.to, range.period)
}

/// A written-out report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// `NAME-20261126T080000Z`: the rollout's name and when its canary was deployed, so
    /// reporting the same rollout again replaces its files.
    pub(crate) stem: String,
    pub(crate) markdown: String,
    pub(crate) svg: String,
}

/// The manifest the rollout ran with: the applied one on the service when it is
/// readable (the local copy may have moved on), else the local one.
pub(crate) fn applied(local: &CanaryRollout, state: &RolloutState) -> CanaryRollout {
    state
        .applied
        .as_deref()
        .and_then(|text| serde_json::from_str::<CanaryRollout>(text).ok())
        .filter(|a| a.metadata.name == local.metadata.name)
        .unwrap_or_else(|| local.clone())
}

/// Builds the report of `rollout` from its state and the metrics over `range`.
pub(crate) fn build(
    rollout: &CanaryRollout,
    t: &timeline::Timeline,
    metrics: &Observations,
    range: Range,
    now: SystemTime,
) -> Report {
    let key = |rev: &Option<String>| observations::key(&rollout.spec.region, rev.as_deref().unwrap_or_default());
    let (stable_key, canary_key) = (key(&t.stable), key(&t.canary));
    let stable = series::points(metrics, &stable_key);
    let canary = series::points(metrics, &canary_key);
    let has_data = stable.iter().chain(&canary).any(|p| p.requests > 0);
    let figures = series::stage_figures(rollout, &t.spans, metrics, &canary_key, &stable_key, now);
    let started = t.started.or_else(|| t.spans.first().map(|s| s.start)).unwrap_or(range.from);
    let stamp: String = rfc3339(started).chars().take(19).filter(|c| c.is_ascii_digit() || *c == 'T').collect();
    let stem = format!("{}-{stamp}Z", rollout.metadata.name);
    let end = match t.outcome {
        timeline::Outcome::RolledBack => Some(chart::End::RolledBack),
        timeline::Outcome::Failed => Some(chart::End::Failed),
        timeline::Outcome::Promoted => Some(chart::End::Promoted),
        timeline::Outcome::InProgress(_) => None,
    }
    .zip(t.ended.map(epoch_secs));
    let trigger = |metric: Metric| {
        rollout.spec.analysis.rollback.iter().filter(|r| r.metric == metric).find_map(|r| {
            match r.above.as_ref().or(r.below.as_ref())? {
                Threshold::Percent(p) => Some(p.fraction()),
                Threshold::Latency(d) => Some(d.as_std().as_secs_f64() * 1000.0),
            }
        })
    };
    let error_threshold = trigger(Metric::ErrorRate).or_else(|| trigger(Metric::Availability).map(|a| 1.0 - a));
    let title = format!(
        "{} — {} — {}",
        rollout.metadata.name,
        t.image.as_deref().unwrap_or(&rollout.spec.template.image),
        t.outcome.words()
    );
    let to = epoch_secs(range.to);
    let incidents: Vec<(u64, u64)> =
        t.incidents().into_iter().map(|(from, until)| (epoch_secs(from), until.map_or(to, epoch_secs))).collect();
    let svg = chart::svg(&chart::Chart {
        title,
        from: epoch_secs(range.from),
        to: epoch_secs(range.to),
        period: range.period.as_secs(),
        stable: &stable,
        canary: &canary,
        spans: &t.spans,
        deployed: t.started.map(epoch_secs),
        end,
        error_threshold,
        p95_threshold: trigger(Metric::P95Latency),
        incidents: &incidents,
    });
    let chart_file = format!("{stem}.svg");
    let markdown = markdown::markdown(&markdown::Document {
        rollout,
        timeline: t,
        figures: &figures,
        chart: &chart_file,
        has_data,
        now,
    });
    Report { stem, markdown, svg }
}

/// Reads the rollout's service and metrics, and writes `DIR/STEM.md` and `DIR/STEM.svg`.
/// Returns the Markdown's path.
pub async fn write<P: CloudRun + Monitoring + Clock>(
    platform: &P,
    local: &CanaryRollout,
    dir: &Path,
) -> Result<PathBuf, Failure> {
    let spec = &local.spec;
    let name = format!("projects/{}/locations/{}/services/{}", spec.project, spec.region, spec.service);
    let raw = platform.get_service(&name).await.map_err(|failure| Failure::Api { what: name.clone(), failure })?;
    let Some(raw) = raw else {
        return Err(Failure::NotStarted(format!(
            "rollout `{}` has not started: there is no Cloud Run service {name}",
            local.metadata.name
        )));
    };
    let state = RolloutState::read(&ServiceView::parse(raw).annotations);
    let rollout = applied(local, &state);
    let t = timeline::timeline(&rollout, &state).map_err(|e| Failure::NotStarted(e.0))?;
    let now = platform.now().await.map_err(|failure| Failure::Api { what: "the clock".to_owned(), failure })?;
    let range = range(&t, now);
    let [counts, latencies] = queries(&rollout, range);
    let counts = platform
        .time_series(&spec.project, &counts)
        .await
        .map_err(|failure| Failure::Api { what: "request counts from Cloud Monitoring".to_owned(), failure })?;
    let latencies = platform
        .time_series(&spec.project, &latencies)
        .await
        .map_err(|failure| Failure::Api { what: "latencies from Cloud Monitoring".to_owned(), failure })?;
    let metrics = observations::parse(&counts, &latencies);
    let report = build(&rollout, &t, &metrics, range, now);
    std::fs::create_dir_all(dir).map_err(|e| Failure::Io(format!("cannot create {}: {e}", dir.display())))?;
    let md = dir.join(format!("{}.md", report.stem));
    let svg = dir.join(format!("{}.svg", report.stem));
    std::fs::write(&svg, &report.svg).map_err(|e| Failure::Io(format!("cannot write {}: {e}", svg.display())))?;
    std::fs::write(&md, &report.markdown).map_err(|e| Failure::Io(format!("cannot write {}: {e}", md.display())))?;
    Ok(md)
}

#[cfg(test)]
mod tests;
