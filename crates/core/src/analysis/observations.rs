//! What canary asks Cloud Monitoring, and the periods its answers become: the queries
//! (request counts by response class, latency distributions, by revision) and the parse
//! of their series into [`Observations`]. No statistics here: the judge (`judge.rs`)
//! reads the periods.
//!
//! A pass reads a stage's history at three resolutions ([`ReadPlan`]): the newest
//! minutes one by one, the hour or two before them in 10-minute periods, and everything
//! older in hours, each aligned to the clock (periods end on a whole minute, 10 minutes
//! or hour). Cloud Monitoring adds them up server-side, so a pass 23 hours into a hold
//! reads about as much as one an hour in, and what it reads never depends on when the
//! previous pass ran.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::distribution::Distribution;
use super::wire::{Point, TimeSeries};
use crate::time::{epoch_secs, rfc3339};

/// One period of one revision: a minute, or an aligned 10 minutes or hour.
#[derive(Debug, Clone)]
pub struct Minute {
    pub total: u64,
    pub server_errors: u64,
    /// Boxed: most periods a pass holds have none (stable's older 10-minute counts), and
    /// a pass holds about a million periods at 10,000 rollouts.
    pub latency: Option<Box<Distribution>>,
    /// How long the period is, in seconds: 60 for a minute.
    pub span: u64,
}

impl Default for Minute {
    fn default() -> Self {
        Minute { total: 0, server_errors: 0, latency: None, span: MINUTE }
    }
}

impl Minute {
    /// One minute's counts.
    pub fn new(total: u64, server_errors: u64, latency: Option<Distribution>) -> Minute {
        Minute { total, server_errors, latency: latency.map(Box::new), span: MINUTE }
    }

    /// Adds `other`'s counts and latencies (not its span).
    pub(crate) fn add(&mut self, other: &Minute) {
        self.total += other.total;
        self.server_errors += other.server_errors;
        add_latency(&mut self.latency, other.latency.as_deref());
    }

    /// Takes away a part of these counts (a later sum out of an earlier one); latencies
    /// that cannot be taken apart are dropped rather than guessed.
    fn subtract(&mut self, part: &Minute) {
        self.total = self.total.saturating_sub(part.total);
        self.server_errors = self.server_errors.saturating_sub(part.server_errors);
        if let (Some(d), Some(p)) = (&mut self.latency, &part.latency)
            && !d.subtract(p)
        {
            self.latency = None;
        }
    }
}

/// Adds a latency distribution to a sum that may have none yet.
pub(crate) fn add_latency(sum: &mut Option<Box<Distribution>>, d: Option<&Distribution>) {
    if let Some(d) = d {
        match sum {
            Some(s) => {
                s.merge(d);
            }
            None => *sum = Some(Box::new(d.clone())),
        }
    }
}

/// Periods by revision, keyed by the period's end (epoch seconds).
pub type Observations = BTreeMap<String, BTreeMap<u64, Minute>>;

const MINUTE: u64 = 60;
const TEN_MINUTES: u64 = 600;
const HOUR: u64 = 3600;

/// Which periods a pass reads: minutes ending after `minutes_from`, 10-minute periods
/// ending in (`hours_until`, `minutes_from`], hours ending at or before `hours_until`.
/// Both bounds are aligned (to 10 minutes and to the hour) and depend only on the time
/// of the pass, so every pass at the same moment reads the same periods. Anchors lie on
/// 10-minute boundaries, unless `coarse`: then on hours (a project with more anchors
/// than [`MAX_HOUR_ANCHORS`] reads its older minutes hour by hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPlan {
    pub hours_until: u64,
    pub minutes_from: u64,
    pub coarse: bool,
}

/// Where a sample that should start at some moment does start, as a pass reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// At the minute itself (recent enough to be read minute by minute).
    Minute(u64),
    /// At the next 10-minute boundary: read from 10-minute periods, then from an
    /// anchor's sum, the same sample to the end of the stage.
    TenMinutes(u64),
    /// At the next hour, once older than the 10-minute periods, in a `coarse` plan.
    Hour(u64),
}

impl Anchor {
    /// Epoch seconds.
    pub fn at(self) -> u64 {
        match self {
            Anchor::Minute(t) | Anchor::TenMinutes(t) | Anchor::Hour(t) => t,
        }
    }

    /// The share of a check's budget the samples starting at this kind of anchor have
    /// when passes read by [`ReadPlan::at`]: one sample per kind may be read over a
    /// stage (whether a project's plan is `coarse` depends on its other rollouts, and can
    /// change over a stage), so their shares add up to 1. A sample read to the minute
    /// serves only a stage's first quarter of an hour, where what it catches is a canary
    /// far worse than stable, so a tenth does; the rest is split between the 10-minute
    /// sample (the rest of the stage, unless the plan is coarse) and the hour one (a long
    /// hold in a coarse plan). Measured by `make judge-eval`.
    pub fn share(self) -> f64 {
        match self {
            Anchor::Minute(_) => 0.1,
            Anchor::TenMinutes(_) | Anchor::Hour(_) => 0.45,
        }
    }
}

impl ReadPlan {
    /// The plan of a pass at `now` that needs at least `minutes` of the newest minutes
    /// one by one.
    pub fn at(now: SystemTime, minutes: Duration) -> ReadPlan {
        let end = epoch_secs(now) / MINUTE * MINUTE;
        let minutes_from = end.saturating_sub(minutes.as_secs()) / TEN_MINUTES * TEN_MINUTES;
        let hours_until = minutes_from.saturating_sub(HOUR) / HOUR * HOUR;
        ReadPlan { hours_until, minutes_from, coarse: false }
    }

    /// Every minute one by one (what a judge fed minute by minute sees).
    pub fn every_minute() -> ReadPlan {
        ReadPlan { hours_until: 0, minutes_from: 0, coarse: false }
    }

    /// The share of a check's budget a sample starting at `anchor` has under this plan:
    /// all of it when every minute is read one by one (the sample never moves), else
    /// [`Anchor::share`].
    pub fn share(&self, anchor: Anchor) -> f64 {
        if self.minutes_from == 0 { 1.0 } else { anchor.share() }
    }

    /// Where a sample of the minutes starting at or after `t` (epoch seconds) starts as
    /// this plan reads it: at `t` (to the minute) while it is read minute by minute, else
    /// at the next 10-minute boundary (for the rest of the stage), or, in a `coarse`
    /// plan once that is older than the 10-minute periods, at the next hour.
    pub fn anchor(&self, t: u64) -> Anchor {
        let minute = t.div_ceil(MINUTE) * MINUTE;
        if minute >= self.minutes_from {
            return Anchor::Minute(minute);
        }
        let ten = minute.div_ceil(TEN_MINUTES) * TEN_MINUTES;
        if ten >= self.hours_until || !self.coarse {
            return Anchor::TenMinutes(ten);
        }
        Anchor::Hour(minute.div_ceil(HOUR) * HOUR)
    }

    /// This plan for a project whose rollouts need `anchors_of(plan)`, and those anchors:
    /// on 10-minute boundaries while there are at most [`MAX_HOUR_ANCHORS`], else
    /// `coarse` (on hours, read hour by hour: 10-minute periods one by one would cost six
    /// points per hour and series).
    pub fn for_anchors(self, anchors_of: impl Fn(ReadPlan) -> BTreeSet<u64>) -> (ReadPlan, BTreeSet<u64>) {
        let fine = ReadPlan { coarse: false, ..self };
        let anchors = anchors_of(fine);
        if anchors.len() <= MAX_HOUR_ANCHORS {
            return (fine, anchors);
        }
        let coarse = ReadPlan { coarse: true, ..self };
        (coarse, anchors_of(coarse))
    }

    /// The boundaries anchors lie on: 10 minutes, or hours when `coarse`.
    pub fn anchor_grid(&self) -> u64 {
        if self.coarse { HOUR } else { TEN_MINUTES }
    }

    /// The `timeSeries.list` queries that read the newest part of [`start`, `now`] by
    /// this plan — 10-minute periods, then minutes — for request counts (by revision and
    /// response class) and, when `latency`, latency distributions (by revision), across
    /// every service of a project. The older part is read as [`HourSums`].
    pub(crate) fn recent_queries(
        &self,
        start: SystemTime,
        now: SystemTime,
        latency: bool,
    ) -> Vec<Vec<(String, String)>> {
        let start = epoch_secs(start).max(self.hours_until);
        let end = epoch_secs(now) / MINUTE * MINUTE;
        let mut periods = Vec::new();
        if start < self.minutes_from {
            periods.push((start / TEN_MINUTES * TEN_MINUTES, self.minutes_from, TEN_MINUTES));
        }
        let fine_from = (start / MINUTE * MINUTE).max(self.minutes_from);
        if fine_from < end {
            periods.push((fine_from, end, MINUTE));
        }
        periods.into_iter().flat_map(|(from, to, period)| pair(from, to, period, latency)).collect()
    }

    /// The queries that read the minutes before `hours_until`: one sum per anchor (an
    /// aligned period from the anchor to `hours_until`) while there are at most
    /// [`MAX_HOUR_ANCHORS`], else every hour from the first anchor (summed here; the
    /// anchors are then a `coarse` plan's, on hours). Each comes with the anchor it sums
    /// from, `None` for the hours.
    pub(crate) fn hour_queries(&self, anchors: &BTreeSet<u64>, latency: bool) -> Vec<(Option<u64>, Query)> {
        let anchors: Vec<u64> = anchors.iter().copied().filter(|a| *a < self.hours_until).collect();
        match anchors.first() {
            None => Vec::new(),
            Some(&first) if anchors.len() > MAX_HOUR_ANCHORS => {
                pair(first, self.hours_until, HOUR, latency).into_iter().map(|q| (None, q)).collect()
            }
            Some(_) => anchors
                .iter()
                .flat_map(|&a| {
                    pair(a, self.hours_until, self.hours_until - a, latency).into_iter().map(move |q| (Some(a), q))
                })
                .collect(),
        }
    }
}

/// A `timeSeries.list` query's parameters.
pub(crate) type Query = Vec<(String, String)>;

impl ReadPlan {
    /// The request counts of the [`VARIATION_HOURS`] before `hours_until` in 10-minute
    /// periods, read for stable's variation alone (pairs of adjacent periods; the hour
    /// sums have none): one query, none when there is nothing before.
    pub(crate) fn variation_query(&self) -> Vec<Query> {
        if self.hours_until == 0 {
            return Vec::new();
        }
        let from = self.hours_until.saturating_sub(VARIATION_HOURS * HOUR);
        let [counts, _] = queries(
            "",
            SystemTime::UNIX_EPOCH + Duration::from_secs(from),
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.hours_until),
            Duration::from_secs(TEN_MINUTES),
        );
        vec![counts]
    }
}

/// How many hours of older 10-minute periods a pass reads for stable's variation.
pub const VARIATION_HOURS: u64 = 4;

/// How many hour anchors a project's pass reads one sum each for; beyond, it reads the
/// hours one by one (a query per metric, a point per hour and series) and sums them.
pub(crate) const MAX_HOUR_ANCHORS: usize = 4;

/// The most `timeSeries.list` queries one project's metrics cost a pass, however many
/// rollouts and hours: two per hour anchor (request counts and latencies) or two for
/// the hours one by one, two each for the recent 10-minute periods and minutes, and the
/// variation query. A large answer takes more than one page of its query.
pub const MAX_QUERIES_PER_PROJECT: usize = 2 * (MAX_HOUR_ANCHORS + 2) + 1;

/// The counts query, and the latency one when `latency`, over (`from`, `to`] in
/// periods of `period` seconds.
fn pair(from: u64, to: u64, period: u64, latency: bool) -> Vec<Vec<(String, String)>> {
    let at = |t: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(t);
    let [counts, latencies] = queries("", at(from), at(to), Duration::from_secs(period));
    if latency { vec![counts, latencies] } else { vec![counts] }
}

/// Per revision, the sum of its whole hours from each anchor to the plan's
/// `hours_until` (epoch seconds → the sum, a period `hours_until − anchor` long).
pub type HourSums = BTreeMap<String, BTreeMap<u64, Minute>>;

/// [`HourSums`] for `anchors` out of hours read one by one.
pub(crate) fn sum_hours(hours: &Observations, anchors: &BTreeSet<u64>, until: u64) -> HourSums {
    let mut sums = HourSums::new();
    for (revision, periods) in hours {
        for &anchor in anchors.iter().filter(|a| **a < until) {
            let mut sum = Minute { span: until - anchor, ..Minute::default() };
            for (_, m) in periods.range(anchor + HOUR..=until) {
                sum.add(m);
            }
            if sum.total > 0 {
                sums.entry(revision.clone()).or_default().insert(anchor, sum);
            }
        }
    }
    sums
}

/// [`HourSums`] out of the answers to one sum per anchor.
pub(crate) fn sums_of(read: Vec<(u64, Observations)>) -> HourSums {
    let mut sums = HourSums::new();
    for (anchor, observations) in read {
        for (revision, periods) in observations {
            for (_, m) in periods {
                sums.entry(revision.clone()).or_default().insert(anchor, m);
            }
        }
    }
    sums
}

/// One revision's periods as a judgement reads them: its hours between consecutive
/// `anchors` (each the difference of two hour sums, so a sample starting at an anchor
/// is exact), then the 10-minute periods and minutes read after `until`.
pub(crate) fn periods(
    recent: Option<&BTreeMap<u64, Minute>>,
    sums: Option<&BTreeMap<u64, Minute>>,
    anchors: &BTreeSet<u64>,
    until: u64,
) -> BTreeMap<u64, Minute> {
    let mut out: BTreeMap<u64, Minute> =
        recent.map(|r| r.range(until + 1..).map(|(e, m)| (*e, m.clone())).collect()).unwrap_or_default();
    let Some(sums) = sums else { return out };
    let anchors: Vec<u64> = anchors.iter().copied().filter(|a| *a < until).collect();
    for (i, &anchor) in anchors.iter().enumerate() {
        let next = anchors.get(i + 1).copied().unwrap_or(until);
        let Some(mut period) = sums.get(&anchor).cloned() else { continue };
        if let Some(later) = sums.get(&next) {
            period.subtract(later);
        }
        period.span = next - anchor;
        if period.total > 0 {
            out.insert(next, period);
        }
    }
    out
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

/// One revision's minutes as they are published, and what a pass at any moment reads of
/// them by its [`ReadPlan`] (the same periods `reconcile` builds from Cloud Monitoring's
/// answers): for simulations that judge as passes do (`examples/judge_eval.rs`).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// By end; only the last few hours are kept (older minutes are read as sums).
    minutes: BTreeMap<u64, Minute>,
    /// 10-minute periods by end, the last few hours of them.
    tens: BTreeMap<u64, Minute>,
    /// At each 10-minute period's end: the sum of every period published up to it.
    cumulative: BTreeMap<u64, Minute>,
}

/// How long a [`History`] keeps minutes and 10-minute periods.
const HISTORY_KEPT: u64 = 8 * HOUR;

impl History {
    /// Adds the minute ending at `end` (aligned, in order, without gaps).
    pub fn push(&mut self, end: u64, minute: Minute) {
        self.minutes.insert(end, minute);
        if end.is_multiple_of(TEN_MINUTES) {
            let mut ten = Minute { span: TEN_MINUTES, ..Minute::default() };
            for (_, m) in self.minutes.range(end - TEN_MINUTES + 1..=end) {
                ten.add(m);
            }
            let mut sum = self.cumulative.values().next_back().cloned().unwrap_or_default();
            sum.add(&ten);
            self.cumulative.insert(end, sum);
            self.tens.insert(end, ten);
        }
        let keep = end.saturating_sub(HISTORY_KEPT);
        self.minutes = self.minutes.split_off(&keep);
        self.tens = self.tens.split_off(&keep);
    }

    /// The older 10-minute periods (counts) a pass reading by `plan` reads for stable's
    /// variation ([`ReadPlan::variation_query`]).
    pub fn variation(&self, plan: &ReadPlan) -> BTreeMap<u64, Minute> {
        let from = plan.hours_until.saturating_sub(VARIATION_HOURS * HOUR);
        self.tens.range(from + 1..=plan.hours_until).map(|(e, m)| (*e, Minute { latency: None, ..m.clone() })).collect()
    }

    /// The periods a pass reading by `plan` sees, with its older minutes summed from
    /// each of `anchors` (`judge::hour_anchors`).
    pub fn read(&self, plan: &ReadPlan, anchors: &BTreeSet<u64>) -> BTreeMap<u64, Minute> {
        let until = plan.hours_until;
        let mut recent: BTreeMap<u64, Minute> =
            self.tens.range(until + 1..=plan.minutes_from).map(|(e, m)| (*e, m.clone())).collect();
        recent.extend(self.minutes.range(plan.minutes_from + 1..).map(|(e, m)| (*e, m.clone())));
        let total = self.cumulative.range(..=until).next_back().map(|(_, m)| m);
        let mut sums = BTreeMap::new();
        for &anchor in anchors.iter().filter(|a| **a < until) {
            let Some(total) = total else { break };
            let mut sum = total.clone();
            if let Some((_, before)) = self.cumulative.range(..=anchor).next_back() {
                sum.subtract(before);
            }
            sum.span = until - anchor;
            if sum.total > 0 {
                sums.insert(anchor, sum);
            }
        }
        periods(Some(&recent), Some(&sums), anchors, until)
    }
}

/// How [`Observations`] names a revision: its region and its name.
pub(crate) fn key(location: &str, revision: &str) -> String {
    format!("{location}/{revision}")
}

/// Reads the queries' series into periods by revision, keyed by each point's end; a
/// point's period runs from its start (a minute when it has none).
pub(crate) fn parse(counts: &[TimeSeries], latencies: &[TimeSeries]) -> Observations {
    let mut metrics = Observations::new();
    counts.iter().for_each(|s| add_series(&mut metrics, s, false));
    latencies.iter().for_each(|s| add_series(&mut metrics, s, true));
    metrics
}

/// Adds one series of request counts (by response class), or of latency
/// distributions when `latency`, to `metrics`: what [`parse`] does for each, and what
/// a pass does as each page arrives.
pub(crate) fn add_series(metrics: &mut Observations, series: &TimeSeries, latency: bool) {
    let span_of = |p: &Point, end: u64| p.interval.start_time.map_or(MINUTE, |s| end.saturating_sub(s).max(MINUTE));
    let periods = metrics.entry(series_key(series)).or_default();
    if latency {
        for point in &series.points {
            let dist = point.value.distribution_value.as_ref().and_then(Distribution::from_parts);
            let (Some(end), Some(dist)) = (point.interval.end_time, dist) else { continue };
            let minute = periods.entry(end).or_default();
            minute.span = span_of(point, end);
            minute.latency = Some(Box::new(dist));
        }
        return;
    }
    let errors = series.metric.labels.response_code_class.as_deref() == Some("5xx");
    for point in &series.points {
        let (Some(end), Some(value)) = (point.interval.end_time, point.value.int64_value) else { continue };
        let minute = periods.entry(end).or_default();
        minute.span = span_of(point, end);
        minute.total += value;
        if errors {
            minute.server_errors += value;
        }
    }
}

fn series_key(series: &TimeSeries) -> String {
    key(&series.resource.labels.location, &series.resource.labels.revision_name)
}
