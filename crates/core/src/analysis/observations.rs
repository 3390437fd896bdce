//! What canary asks Cloud Monitoring, and the minutes its answers become: the queries
//! (request counts by response class, latency distributions, by revision and minute)
//! and the parse of their series into [`Observations`]. No statistics here: the judge
//! (`judge.rs`) reads the minutes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::distribution::Distribution;
use crate::time::{parse_rfc3339, rfc3339};

/// One minute of one revision.
#[derive(Debug, Clone, Default)]
pub struct Minute {
    pub total: u64,
    pub server_errors: u64,
    pub latency: Option<Distribution>,
}

/// Minutes by revision, keyed by the minute's end (epoch seconds).
pub type Observations = BTreeMap<String, BTreeMap<u64, Minute>>;

/// The two `timeSeries.list` queries that serve every judgement in a project: request
/// counts by revision and response class, and latency distributions by revision, minute
/// by minute, across all services — one pair of calls per project, whatever the number
/// of rollouts.
pub(crate) fn project_queries(start: SystemTime, now: SystemTime) -> [Vec<(String, String)>; 2] {
    queries("", start, now, Duration::from_secs(60))
}

/// Request counts (by revision and response class) and latency distributions (by
/// revision) of Cloud Run revisions matching `filter` (extra ` AND …` terms, or empty),
/// over [`start`, `end`] in steps of `period`.
pub(crate) fn queries(
    filter: &str,
    start: SystemTime,
    end: SystemTime,
    period: Duration,
) -> [Vec<(String, String)>; 2] {
    let (start, end) = (rfc3339(start), rfc3339(end));
    let common = |metric: &str| -> Vec<(String, String)> {
        vec![
            ("filter".into(), format!("metric.type=\"{metric}\" AND resource.type=\"cloud_run_revision\"{filter}")),
            ("interval.startTime".into(), start.clone()),
            ("interval.endTime".into(), end.clone()),
            ("aggregation.alignmentPeriod".into(), format!("{}s", period.as_secs().max(60))),
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

/// How [`Observations`] names a revision: its region and its name.
pub(crate) fn key(location: &str, revision: &str) -> String {
    format!("{location}/{revision}")
}

/// Reads the two queries' series into minutes by revision.
pub(crate) fn parse(counts: &[Value], latencies: &[Value]) -> Observations {
    let mut metrics = Observations::new();
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
