//! Cloud Monitoring API v3 `projects.timeSeries.list` over the simulated traffic:
//! `run.googleapis.com/request_count` and `run.googleapis.com/request_latencies` on
//! `cloud_run_revision`, with filters, alignment, cross-series reduction, paging, 60 s
//! resolution and the publishing delay.

use super::clock::epoch_secs;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::api_error::ApiError;
use super::clock::{parse_rfc3339, rfc3339_text};
use super::proto::camel;
use super::traffic::{MinuteCounts, at, minutes};
use super::world::{RevisionLabels, World};
use crate::histogram::Histogram;
use crate::proto::Text;
use serde::ser::{Serialize, SerializeMap, Serializer};

const REQUEST_COUNT: &str = "run.googleapis.com/request_count";
const REQUEST_LATENCIES: &str = "run.googleapis.com/request_latencies";
const RESOURCE_TYPE: &str = "cloud_run_revision";
const RESOURCE_LABELS: [&str; 5] = ["project_id", "service_name", "revision_name", "location", "configuration_name"];
/// Points per page when the query does not say (Cloud Monitoring's largest page).
const DEFAULT_PAGE: usize = 100_000;
/// How far back data is kept (Cloud Monitoring's retention for these metrics).
const MAX_SPAN: Duration = Duration::from_secs(42 * 86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    RequestCount,
    RequestLatencies,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
}

#[derive(Debug, Clone)]
struct Condition {
    field: String,
    op: Op,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aligner {
    None,
    Delta,
    Rate,
    Sum,
    Mean,
    Count,
    Min,
    Max,
    Percentile(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reducer {
    None,
    Sum,
    Mean,
    Min,
    Max,
    Count,
    Percentile(f64),
}

/// A parsed `timeSeries.list` request.
#[derive(Debug, Clone)]
pub struct Query {
    metric: Metric,
    conditions: Vec<Condition>,
    start: SystemTime,
    end: SystemTime,
    period: Option<u64>,
    aligner: Aligner,
    reducer: Reducer,
    group_by: Vec<String>,
    headers_only: bool,
    page_size: usize,
    /// The answer a later page continues ([`Cursors`]), and where in it.
    cursor: Option<u64>,
    offset: usize,
}

/// The answers of paged queries whose later pages have not all been asked for: a page
/// after the first is cut from the answer the first page was, not worked out again
/// (a query of a project with thousands of revisions is most of its cost, and Cloud
/// Monitoring's own page tokens are cursors too). The oldest go first; a page whose
/// answer is gone is worked out again from the query.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    next: u64,
    /// Id, the query it answers ([`Query::key`]), and the answer.
    kept: std::collections::VecDeque<(u64, String, std::sync::Arc<Vec<Series>>)>,
}

/// How many paged answers are kept.
const CURSORS_KEPT: usize = 32;

impl Cursors {
    fn keep(&mut self, key: String, output: std::sync::Arc<Vec<Series>>) -> u64 {
        self.next += 1;
        self.kept.push_back((self.next, key, output));
        while self.kept.len() > CURSORS_KEPT {
            self.kept.pop_front();
        }
        self.next
    }

    /// The answer `id` kept, if it answers the query `key` (a token sent with another
    /// query is worked out afresh).
    fn get(&self, id: u64, key: &str) -> Option<std::sync::Arc<Vec<Series>>> {
        self.kept.iter().find(|(i, k, _)| *i == id && k == key).map(|(_, _, o)| o.clone())
    }

    fn forget(&mut self, id: u64) {
        self.kept.retain(|(i, _, _)| *i != id);
    }
}

/// `c{cursor}.{offset}`: the kept answer and where in it the page starts (the offset
/// alone serves when that answer is gone).
fn parse_token(token: &str) -> Option<(u64, usize)> {
    let (id, offset) = token.strip_prefix('c')?.split_once('.')?;
    Some((id.parse().ok()?, offset.parse().ok()?))
}

#[derive(Debug, Clone)]
enum Val {
    Int(i64),
    Double(f64),
    Dist(Histogram),
}

impl Val {
    fn number(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Double(d) => Some(*d),
            Val::Dist(_) => None,
        }
    }
}

/// A series' labels, shared rather than copied between the series that carry them.
type Labels = std::sync::Arc<BTreeMap<String, String>>;

/// A series: its labels and its points (end time in epoch seconds → value).
#[derive(Debug, Clone)]
pub(crate) struct Series {
    metric_labels: BTreeMap<String, String>,
    /// Shared by a revision's series (one per response class, and latency).
    resource_labels: Labels,
    points: BTreeMap<u64, (u64, Val)>,
    kind: &'static str,
    value_type: &'static str,
}

impl Query {
    /// What an answer depends on: the query without its page.
    fn key(&self, project: &str) -> String {
        let whole = Query { page_size: 0, cursor: None, offset: 0, ..self.clone() };
        format!("{project} {whole:?}")
    }

    /// Parses the query parameters (camelCase or snake_case; enums as names or numbers).
    pub fn parse(params: &[(String, String)]) -> Result<Query, ApiError> {
        let get = |key: &str| params.iter().find(|(k, _)| camel(k) == key).map(|(_, v)| v.as_str());
        let filter = get("filter").ok_or_else(|| ApiError::invalid("filter", "A filter is required."))?;
        let conditions = parse_filter(filter)?;
        let metric = match conditions.iter().find(|c| c.field == "metric.type") {
            Some(c) if c.op == Op::Eq && c.value == REQUEST_COUNT => Metric::RequestCount,
            Some(c) if c.op == Op::Eq && c.value == REQUEST_LATENCIES => Metric::RequestLatencies,
            Some(c) => {
                return Err(ApiError::invalid(
                    "filter",
                    format!(
                        "This emulator serves {REQUEST_COUNT} and {REQUEST_LATENCIES}; the filter asks for metric.type {} \"{}\".",
                        op_text(&c.op),
                        c.value
                    ),
                ));
            }
            None => return Err(ApiError::invalid("filter", "The filter must name exactly one metric.type.")),
        };
        if conditions.iter().filter(|c| c.field == "metric.type").count() > 1 {
            return Err(ApiError::invalid("filter", "The filter must name exactly one metric.type."));
        }
        let time = |key: &str| -> Result<Option<SystemTime>, ApiError> {
            get(key)
                .map(|v| {
                    parse_rfc3339(v)
                        .ok_or_else(|| ApiError::invalid(key, format!("'{v}' is not an RFC 3339 timestamp.")))
                })
                .transpose()
        };
        let end = time("interval.endTime")?
            .ok_or_else(|| ApiError::invalid("interval.endTime", "An end time is required."))?;
        let start = time("interval.startTime")?.unwrap_or(end);
        if start > end {
            return Err(ApiError::invalid("interval.startTime", "The start time must not be later than the end time."));
        }
        // Older data has expired, as it would in Cloud Monitoring.
        let start = start.max(end.checked_sub(MAX_SPAN).unwrap_or(start));
        let period = match get("aggregation.alignmentPeriod") {
            None => None,
            Some(text) => {
                let secs = text.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite());
                match secs {
                    Some(s) if s >= 60.0 && s.fract() == 0.0 && (s as u64).is_multiple_of(60) => Some(s as u64),
                    _ => {
                        return Err(ApiError::invalid(
                            "aggregation.alignmentPeriod",
                            format!(
                                "'{text}' must be a whole number of minutes of at least 60s, like \"60s\" or \"300s\"."
                            ),
                        ));
                    }
                }
            }
        };
        let aligner = parse_aligner(get("aggregation.perSeriesAligner").unwrap_or("ALIGN_NONE"))?;
        let reducer = parse_reducer(get("aggregation.crossSeriesReducer").unwrap_or("REDUCE_NONE"))?;
        if aligner != Aligner::None && period.is_none() {
            return Err(ApiError::invalid(
                "aggregation.alignmentPeriod",
                "An alignment period is required with an aligner.",
            ));
        }
        if reducer != Reducer::None && aligner == Aligner::None {
            return Err(ApiError::invalid(
                "aggregation.perSeriesAligner",
                "A cross-series reducer needs a per-series aligner.",
            ));
        }
        let group_by: Vec<String> = params
            .iter()
            .filter(|(k, _)| camel(k) == "aggregation.groupByFields")
            .map(|(_, v)| normalize_field(v))
            .collect();
        for field in &group_by {
            if !known_field(field) {
                return Err(ApiError::invalid(
                    "aggregation.groupByFields",
                    format!("'{field}' is not a label of this metric."),
                ));
            }
        }
        let headers_only = match get("view") {
            None | Some("FULL" | "0") => false,
            Some("HEADERS" | "1") => true,
            Some(other) => return Err(ApiError::invalid("view", format!("Invalid value '{other}'."))),
        };
        let page_size = match get("pageSize") {
            None | Some("0") => DEFAULT_PAGE,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::invalid("pageSize", format!("Invalid integer value \"{v}\".")))?,
        };
        let (cursor, offset) = match get("pageToken").filter(|t| !t.is_empty()) {
            None => (None, 0),
            Some(t) => parse_token(t)
                .map(|(id, offset)| (Some(id), offset))
                .ok_or_else(|| ApiError::invalid("pageToken", "Invalid page token."))?,
        };
        Ok(Query {
            metric,
            conditions,
            start,
            end,
            period,
            aligner,
            reducer,
            group_by,
            headers_only,
            page_size,
            cursor,
            offset,
        })
    }
}

/// Answers a query against the world at `now`, as JSON.
pub fn list(world: &mut World, project: &str, query: &Query, now: SystemTime) -> Result<Value, ApiError> {
    page(world, project, query, now).map(|page| serde_json::to_value(&page).unwrap_or(Value::Null))
}

/// One page of a query's answer: the series it holds, shared with the kept answer,
/// and written out by [`Page`]'s `Serialize` — outside the world's lock, and straight
/// to text (a page can hold 100,000 points).
#[derive(Debug, Clone)]
pub struct Page {
    series: std::sync::Arc<Vec<Series>>,
    from: usize,
    taken: usize,
    metric: Metric,
    headers_only: bool,
    next_page_token: Option<String>,
}

impl Page {
    /// Points on the page (none with view=HEADERS).
    pub fn points(&self) -> u64 {
        if self.headers_only {
            return 0;
        }
        self.series().iter().map(|s| s.points.len() as u64).sum()
    }

    fn series(&self) -> &[Series] {
        &self.series[self.from..self.from + self.taken]
    }
}

/// Answers a query against the world at `now`, one page of it.
pub fn page(world: &mut World, project: &str, query: &Query, now: SystemTime) -> Result<Page, ApiError> {
    let empty = |query: &Query| Page {
        series: std::sync::Arc::new(Vec::new()),
        from: 0,
        taken: 0,
        metric: query.metric,
        headers_only: query.headers_only,
        next_page_token: None,
    };
    if let Some(c) = query.conditions.iter().find(|c| c.field == "resource.type")
        && (c.op == Op::Eq) != (c.value == RESOURCE_TYPE)
    {
        return Ok(empty(query));
    }
    let key = query.key(project);
    let kept = query.cursor.and_then(|id| world.cursors.get(id, &key).map(|o| (id, o)));
    let (cursor, output) = match kept {
        Some((id, output)) => (Some(id), output),
        None => (None, std::sync::Arc::new(answer(world, project, query, now)?)),
    };
    // A page holds at most `pageSize` points (series, with view=HEADERS), as Cloud
    // Monitoring counts them; a series is never split, and a page holds at least one.
    let limit = query.page_size.max(1);
    let from = query.offset.min(output.len());
    let (mut taken, mut used) = (0, 0);
    for s in &output[from..] {
        let size = if query.headers_only { 1 } else { s.points.len() };
        if taken > 0 && used + size > limit {
            break;
        }
        taken += 1;
        used += size;
    }
    let rest = from + taken;
    let mut next_page_token = None;
    if rest < output.len() {
        let id = match cursor {
            Some(id) => id,
            None => world.cursors.keep(key, output.clone()),
        };
        next_page_token = Some(format!("c{id}.{rest}"));
    } else if let Some(id) = cursor {
        world.cursors.forget(id);
    }
    Ok(Page { series: output, from, taken, metric: query.metric, headers_only: query.headers_only, next_page_token })
}

impl Serialize for Page {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let series: Vec<SeriesText<'_>> = self.series().iter().map(|s| SeriesText { s, page: self }).collect();
        map.serialize_entry("timeSeries", &series)?;
        map.serialize_entry("executionErrors", &[(); 0])?;
        if let Some(token) = &self.next_page_token {
            map.serialize_entry("nextPageToken", token)?;
        }
        map.end()
    }
}

/// One series as the answer writes it.
struct SeriesText<'a> {
    s: &'a Series,
    page: &'a Page,
}

impl Serialize for SeriesText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Typed<'a>(&'a str, &'a BTreeMap<String, String>);
        impl Serialize for Typed<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", self.0)?;
                map.serialize_entry("labels", self.1)?;
                map.end()
            }
        }
        let (s, metric) = (self.s, self.page.metric);
        let metric_type = match metric {
            Metric::RequestCount => REQUEST_COUNT,
            Metric::RequestLatencies => REQUEST_LATENCIES,
        };
        let unit = if metric == Metric::RequestLatencies && s.value_type == "DISTRIBUTION" { "ms" } else { "1" };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("metric", &Typed(metric_type, &s.metric_labels))?;
        map.serialize_entry("resource", &Typed(RESOURCE_TYPE, &s.resource_labels))?;
        map.serialize_entry("metricKind", s.kind)?;
        map.serialize_entry("valueType", s.value_type)?;
        map.serialize_entry("unit", unit)?;
        if !self.page.headers_only {
            // Newest first, as Cloud Monitoring returns them.
            let points: Vec<PointText<'_>> = s
                .points
                .iter()
                .rev()
                .map(|(end, (start, value))| PointText { start: *start, end: *end, value })
                .collect();
            map.serialize_entry("points", &points)?;
        }
        map.end()
    }
}

/// `f` of epoch seconds `t` as RFC 3339 text: every series of an answer has points at the
/// same few times, so each is formatted once per thread, not once per point.
fn with_rfc3339<R>(t: u64, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static TEXT: std::cell::RefCell<std::collections::HashMap<u64, Box<str>>> = Default::default();
    }
    TEXT.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= 1 << 16 {
            cache.clear();
        }
        f(cache.entry(t).or_insert_with(|| rfc3339_text(at(t)).to_string().into_boxed_str()))
    })
}

/// One point as the answer writes it.
struct PointText<'a> {
    start: u64,
    end: u64,
    value: &'a Val,
}

impl Serialize for PointText<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Interval(u64, u64);
        impl Serialize for Interval {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                with_rfc3339(self.0, |text| map.serialize_entry("startTime", text))?;
                with_rfc3339(self.1, |text| map.serialize_entry("endTime", text))?;
                map.end()
            }
        }
        struct Measured<'a>(&'a Val);
        impl Serialize for Measured<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                match self.0 {
                    Val::Int(i) => map.serialize_entry("int64Value", &Text(i))?,
                    Val::Double(d) => map.serialize_entry("doubleValue", d)?,
                    Val::Dist(d) => map.serialize_entry("distributionValue", d)?,
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("interval", &Interval(self.start, self.end))?;
        map.serialize_entry("value", &Measured(self.value))?;
        map.end()
    }
}

/// Every series of a query's answer, in order, before paging.
fn answer(world: &mut World, project: &str, query: &Query, now: SystemTime) -> Result<Vec<Series>, ApiError> {
    let visible_until = now.checked_sub(world.publish_delay()).unwrap_or(SystemTime::UNIX_EPOCH);
    let until = query.end.min(visible_until);
    let mut raw: Vec<Series> = Vec::new();
    let service = query
        .conditions
        .iter()
        .find(|c| c.field == "resource.labels.service_name" && c.op == Op::Eq)
        .map(|c| c.value.clone());
    for revision in world.revisions_in(project, service.as_deref(), now) {
        let resource_labels = revision.resource.clone();
        if !query
            .conditions
            .iter()
            .filter(|c| c.field.starts_with("resource.labels."))
            .all(|c| matches(c, &resource_labels, "resource.labels."))
        {
            continue;
        }
        if let Some(period) = query.period.filter(|_| matches!(query.aligner, Aligner::Delta | Aligner::Sum)) {
            raw.extend(summed(world, &revision, resource_labels, query, period, until));
            continue;
        }
        let minute_list: Vec<u64> = minutes(query.start, until).filter(|m| !world.in_gap(&revision.full, *m)).collect();
        match query.metric {
            Metric::RequestCount => {
                let mut by_class: BTreeMap<&str, Series> = BTreeMap::new();
                for &m in &minute_list {
                    let counts = world.minute_counts(&revision.full, m);
                    add_counts(&mut by_class, &resource_labels, counts, (m, m + 60));
                }
                raw.extend(by_class.into_values());
            }
            Metric::RequestLatencies => {
                let mut series = Series {
                    metric_labels: BTreeMap::new(),
                    resource_labels: resource_labels.clone(),
                    points: BTreeMap::new(),
                    kind: "DELTA",
                    value_type: "DISTRIBUTION",
                };
                for &m in &minute_list {
                    if let Some(d) = world.minute_latency(&revision.full, m) {
                        series.points.insert(m + 60, (m, Val::Dist(d)));
                    }
                }
                if !series.points.is_empty() {
                    raw.push(series);
                }
            }
        }
    }
    raw.retain(|s| {
        query
            .conditions
            .iter()
            .filter(|c| c.field.starts_with("metric.labels."))
            .all(|c| matches(c, &s.metric_labels, "metric.labels."))
    });
    let aligned = match query.period {
        // Summed series are aligned already.
        Some(_) if matches!(query.aligner, Aligner::Delta | Aligner::Sum) => raw,
        Some(period) if query.aligner != Aligner::None => {
            raw.into_iter().map(|s| align(s, query, period)).collect::<Result<Vec<_>, _>>()?
        }
        _ => raw,
    };
    let mut output = reduce(aligned, query)?;
    output.retain(|s| !s.points.is_empty());
    Ok(output)
}

/// One revision's series aligned by a summing aligner (`ALIGN_DELTA`, `ALIGN_SUM`):
/// each period's sum read straight from the world's range sums, so a long period
/// costs its whole hours, not every minute in it. Periods end at the query's end time,
/// as in [`align`]; a minute counts in the period that holds its end.
fn summed(
    world: &mut World,
    revision: &RevisionLabels,
    resource_labels: Labels,
    query: &Query,
    period: u64,
    until: SystemTime,
) -> Vec<Series> {
    let end = epoch_secs(query.end);
    let first = epoch_secs(query.start).div_ceil(60) * 60;
    let last = epoch_secs(until) / 60 * 60;
    let floor = |t: u64| t / 60 * 60;
    // Periods (end − k·P − P, end − k·P], newest first, while they reach the first minute.
    let periods = (0..).map(|k| end.saturating_sub(k * period)).take_while(|&b| b > first);
    let mut by_class: BTreeMap<&str, Series> = BTreeMap::new();
    let mut latency = Series {
        metric_labels: BTreeMap::new(),
        resource_labels: resource_labels.clone(),
        points: BTreeMap::new(),
        kind: "DELTA",
        value_type: "DISTRIBUTION",
    };
    for b in periods {
        let (from, to) = (floor(b.saturating_sub(period)).max(first), floor(b).min(last));
        if from >= to {
            continue;
        }
        match query.metric {
            Metric::RequestCount => {
                let counts = world.range_counts(&revision.full, from, to, last);
                add_counts(&mut by_class, &resource_labels, counts, (b.saturating_sub(period), b));
            }
            Metric::RequestLatencies => {
                if let Some(d) = world.range_latency(&revision.full, from, to, last) {
                    latency.points.insert(b, (b.saturating_sub(period), Val::Dist(d)));
                }
            }
        }
    }
    let mut out: Vec<Series> = by_class.into_values().collect();
    if !latency.points.is_empty() {
        out.push(latency);
    }
    out
}

/// Adds a period's counts to `revision`'s series by response class (2xx, 4xx, 5xx), as
/// points over (`start`, `end`]; a class with no requests gets no point.
fn add_counts(
    by_class: &mut BTreeMap<&'static str, Series>,
    resource_labels: &Labels,
    counts: MinuteCounts,
    (start, end): (u64, u64),
) {
    for (class, code, n) in
        [("2xx", "200", counts.ok), ("4xx", "404", counts.client_errors), ("5xx", "500", counts.server_errors)]
    {
        if n == 0 {
            continue;
        }
        let series = by_class.entry(class).or_insert_with(|| Series {
            metric_labels: BTreeMap::from([
                ("response_code".to_owned(), code.to_owned()),
                ("response_code_class".to_owned(), class.to_owned()),
            ]),
            resource_labels: resource_labels.clone(),
            points: BTreeMap::new(),
            kind: "DELTA",
            value_type: "INT64",
        });
        series.points.insert(end, (start, Val::Int(i64::try_from(n).unwrap_or(i64::MAX))));
    }
}

fn matches(c: &Condition, labels: &BTreeMap<String, String>, prefix: &str) -> bool {
    let value = labels.get(c.field.trim_start_matches(prefix)).map_or("", String::as_str);
    (value == c.value) == (c.op == Op::Eq)
}

/// Aligns one series to `period`-second buckets that end at the query's end time.
fn align(series: Series, query: &Query, period: u64) -> Result<Series, ApiError> {
    let end = epoch_secs(query.end);
    let mut buckets: BTreeMap<u64, Vec<Val>> = BTreeMap::new();
    for (point_end, (_, value)) in series.points {
        // The period (end − k·P, end − (k−1)·P] that holds this point's end.
        let k = end.saturating_sub(point_end) / period;
        buckets.entry(end - k * period).or_default().push(value);
    }
    let (kind, value_type) = match (query.aligner, series.value_type) {
        (Aligner::Delta | Aligner::Sum, t) => ("DELTA", t),
        (Aligner::Count, _) => ("GAUGE", "INT64"),
        (Aligner::Min | Aligner::Max, "INT64") => ("GAUGE", "INT64"),
        (Aligner::Percentile(_), "DISTRIBUTION") | (Aligner::Rate | Aligner::Mean, "INT64") => ("GAUGE", "DOUBLE"),
        (aligner, t) => {
            return Err(ApiError::invalid(
                "aggregation.perSeriesAligner",
                format!("{aligner:?} is not valid for {t} values."),
            ));
        }
    };
    let mut points = BTreeMap::new();
    for (period_end, values) in buckets {
        let value = match query.aligner {
            Aligner::Delta | Aligner::Sum => sum(&values),
            Aligner::Rate => Val::Double(numbers(&values).iter().sum::<f64>() / period as f64),
            Aligner::Mean => Val::Double(mean(&numbers(&values))),
            Aligner::Count => Val::Int(values.len() as i64),
            Aligner::Min => Val::Int(numbers(&values).into_iter().fold(f64::INFINITY, f64::min) as i64),
            Aligner::Max => Val::Int(numbers(&values).into_iter().fold(f64::NEG_INFINITY, f64::max) as i64),
            Aligner::Percentile(q) => match sum(&values) {
                Val::Dist(d) => match d.quantile(q) {
                    Some(p) => Val::Double(p),
                    None => continue,
                },
                _ => continue,
            },
            Aligner::None => continue,
        };
        points.insert(period_end, (period_end.saturating_sub(period), value));
    }
    Ok(Series { points, kind, value_type, ..series })
}

/// Reduces aligned series across `groupByFields`.
fn reduce(series: Vec<Series>, query: &Query) -> Result<Vec<Series>, ApiError> {
    if query.reducer == Reducer::None {
        return Ok(series);
    }
    let mut groups: BTreeMap<Vec<String>, Vec<Series>> = BTreeMap::new();
    for s in series {
        let key = query.group_by.iter().map(|f| label_of(&s, f)).collect();
        groups.entry(key).or_default().push(s);
    }
    let mut out = Vec::new();
    for (key, mut members) in groups {
        let value_type = members.first().map_or("INT64", |s| s.value_type);
        let (kind, out_type) = match (query.reducer, value_type) {
            (Reducer::Sum, t) => (members.first().map_or("GAUGE", |s| s.kind), t),
            (Reducer::Count, _) => ("GAUGE", "INT64"),
            (Reducer::Min | Reducer::Max, t) if t != "DISTRIBUTION" => ("GAUGE", t),
            (Reducer::Mean | Reducer::Percentile(_), _) => ("GAUGE", "DOUBLE"),
            (reducer, t) => {
                return Err(ApiError::invalid(
                    "aggregation.crossSeriesReducer",
                    format!("{reducer:?} is not valid for {t} values."),
                ));
            }
        };
        // A group of one summed is that series itself (the usual group by revision and
        // class): its points are moved, not copied.
        if query.reducer == Reducer::Sum && members.len() == 1 {
            let Some(only) = members.pop() else { continue };
            out.push(Series { points: only.points, ..grouped(query, key, kind, out_type) });
            continue;
        }
        let mut by_end: BTreeMap<u64, (u64, Vec<Val>)> = BTreeMap::new();
        for s in &members {
            for (end, (start, v)) in &s.points {
                by_end.entry(*end).or_insert_with(|| (*start, Vec::new())).1.push(v.clone());
            }
        }
        let mut points = BTreeMap::new();
        for (end, (start, values)) in by_end {
            let value = match query.reducer {
                Reducer::Sum => sum(&values),
                Reducer::Count => Val::Int(values.len() as i64),
                Reducer::Mean => Val::Double(mean(&numbers(&values))),
                Reducer::Min => Val::Double(numbers(&values).into_iter().fold(f64::INFINITY, f64::min)),
                Reducer::Max => Val::Double(numbers(&values).into_iter().fold(f64::NEG_INFINITY, f64::max)),
                Reducer::Percentile(q) => match sum(&values) {
                    Val::Dist(d) => match d.quantile(q) {
                        Some(p) => Val::Double(p),
                        None => continue,
                    },
                    _ => Val::Double(percentile_of(&numbers(&values), q)),
                },
                Reducer::None => continue,
            };
            let value = match (value, out_type) {
                (Val::Double(d), "INT64") => Val::Int(d as i64),
                (v, _) => v,
            };
            points.insert(end, (start, value));
        }
        out.push(Series { points, ..grouped(query, key, kind, out_type) });
    }
    Ok(out)
}

/// A reduced series without points: the group's labels (its `groupBy` fields' values).
fn grouped(query: &Query, key: Vec<String>, kind: &'static str, value_type: &'static str) -> Series {
    let mut metric_labels = BTreeMap::new();
    let mut resource_labels = BTreeMap::new();
    for (field, value) in query.group_by.iter().zip(key) {
        if let Some(name) = field.strip_prefix("metric.labels.") {
            metric_labels.insert(name.to_owned(), value);
        } else if let Some(name) = field.strip_prefix("resource.labels.") {
            resource_labels.insert(name.to_owned(), value);
        }
    }
    Series { metric_labels, resource_labels: Labels::new(resource_labels), points: BTreeMap::new(), kind, value_type }
}

fn label_of(s: &Series, field: &str) -> String {
    let found = match field.split_once(".labels.") {
        Some(("metric", name)) => s.metric_labels.get(name),
        Some(("resource", name)) => s.resource_labels.get(name),
        _ => None,
    };
    found.cloned().unwrap_or_default()
}

fn sum(values: &[Val]) -> Val {
    match values.first() {
        Some(Val::Dist(first)) => {
            let mut total = first.clone();
            for v in &values[1..] {
                if let Val::Dist(d) = v {
                    total.add(d);
                }
            }
            Val::Dist(total)
        }
        Some(Val::Int(_)) => Val::Int(values.iter().map(|v| if let Val::Int(i) = v { *i } else { 0 }).sum()),
        _ => Val::Double(numbers(values).iter().sum()),
    }
}

fn numbers(values: &[Val]) -> Vec<f64> {
    values.iter().filter_map(Val::number).collect()
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// The `q` quantile of plain numbers, linearly interpolated between order statistics.
fn percentile_of(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn op_text(op: &Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
    }
}

/// `resource.label.x` and `resource.labels.x` name the same label.
fn normalize_field(field: &str) -> String {
    let field = field.trim();
    for prefix in ["resource", "metric"] {
        if let Some(name) = field.strip_prefix(&format!("{prefix}.label.")) {
            return format!("{prefix}.labels.{name}");
        }
    }
    field.to_owned()
}

fn known_field(field: &str) -> bool {
    match field.split_once(".labels.") {
        Some(("resource", name)) => RESOURCE_LABELS.contains(&name),
        Some(("metric", name)) => matches!(name, "response_code" | "response_code_class"),
        _ => matches!(field, "metric.type" | "resource.type"),
    }
}

/// Parses `a = "x" AND b != "y"`: comparisons of a field with a (quoted) value.
fn parse_filter(filter: &str) -> Result<Vec<Condition>, ApiError> {
    let bad = |why: String| ApiError::invalid("filter", format!("Could not parse filter \"{filter}\": {why}"));
    let tokens = tokenize(filter).map_err(&bad)?;
    let mut conditions = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i > 0 {
            if tokens[i] != "AND" {
                return Err(bad(format!("expected AND, found '{}' (only AND is supported)", tokens[i])));
            }
            i += 1;
        }
        let (Some(field), Some(op), Some(value)) = (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) else {
            return Err(bad("expected FIELD = \"VALUE\"".to_owned()));
        };
        let op = match op.as_str() {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            other => return Err(bad(format!("unsupported operator '{other}' (use = or !=)"))),
        };
        let field = normalize_field(field);
        if !known_field(&field) {
            return Err(bad(format!("unknown field '{field}'")));
        }
        conditions.push(Condition { field, op, value: value.trim_matches('"').to_owned() });
        i += 3;
    }
    if conditions.is_empty() {
        return Err(bad("it is empty".to_owned()));
    }
    Ok(conditions)
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut value = String::from('"');
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".to_owned()),
                    Some('\\') => {
                        if let Some(next) = chars.get(i + 1) {
                            value.push(*next);
                        }
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            value.push('"');
            tokens.push(value);
        } else if c == '=' {
            tokens.push("=".to_owned());
            i += 1;
        } else if c == '!' && chars.get(i + 1) == Some(&'=') {
            tokens.push("!=".to_owned());
            i += 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '=' | '!' | '"') {
                i += 1;
            }
            if start == i {
                return Err(format!("unexpected '{c}'"));
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

fn parse_aligner(text: &str) -> Result<Aligner, ApiError> {
    Ok(match text {
        "ALIGN_NONE" | "0" => Aligner::None,
        "ALIGN_DELTA" | "1" => Aligner::Delta,
        "ALIGN_RATE" | "2" => Aligner::Rate,
        "ALIGN_MIN" | "10" => Aligner::Min,
        "ALIGN_MAX" | "11" => Aligner::Max,
        "ALIGN_MEAN" | "12" => Aligner::Mean,
        "ALIGN_COUNT" | "13" => Aligner::Count,
        "ALIGN_SUM" | "14" => Aligner::Sum,
        "ALIGN_PERCENTILE_99" | "18" => Aligner::Percentile(0.99),
        "ALIGN_PERCENTILE_95" | "19" => Aligner::Percentile(0.95),
        "ALIGN_PERCENTILE_50" | "20" => Aligner::Percentile(0.50),
        "ALIGN_PERCENTILE_05" | "21" => Aligner::Percentile(0.05),
        other => {
            return Err(ApiError::invalid("aggregation.perSeriesAligner", format!("Unsupported aligner '{other}'.")));
        }
    })
}

fn parse_reducer(text: &str) -> Result<Reducer, ApiError> {
    Ok(match text {
        "REDUCE_NONE" | "0" => Reducer::None,
        "REDUCE_MEAN" | "1" => Reducer::Mean,
        "REDUCE_MIN" | "2" => Reducer::Min,
        "REDUCE_MAX" | "3" => Reducer::Max,
        "REDUCE_SUM" | "4" => Reducer::Sum,
        "REDUCE_COUNT" | "6" => Reducer::Count,
        "REDUCE_PERCENTILE_99" | "9" => Reducer::Percentile(0.99),
        "REDUCE_PERCENTILE_95" | "10" => Reducer::Percentile(0.95),
        "REDUCE_PERCENTILE_50" | "11" => Reducer::Percentile(0.50),
        "REDUCE_PERCENTILE_05" | "12" => Reducer::Percentile(0.05),
        other => {
            return Err(ApiError::invalid("aggregation.crossSeriesReducer", format!("Unsupported reducer '{other}'.")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_conditions() {
        let c = parse_filter(r#"metric.type="run.googleapis.com/request_count" AND resource.label.service_name = "a b" AND metric.labels.response_code_class!="2xx""#).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].field, "resource.labels.service_name");
        assert_eq!(c[1].value, "a b");
        assert_eq!(c[2].op, Op::Ne);
        for bad in [
            "",
            "metric.type",
            "metric.type = \"x\" OR resource.type = \"y\"",
            "metric.type > \"x\"",
            "nope.field = \"x\"",
            "metric.type = \"x",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_percentiles_interpolate() {
        assert_eq!(percentile_of(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert!((percentile_of(&[10.0, 20.0], 0.95) - 19.5).abs() < 1e-9);
    }
}
