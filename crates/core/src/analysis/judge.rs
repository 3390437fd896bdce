//! The judgement: a rollout's per-minute request counts and latency distributions
//! (from Cloud Monitoring) become rollback triggers and promotion gates, each pass,
//! fail or inconclusive, by sequential tests whose chance of failing a healthy canary
//! is bounded over the whole rollout — every look of every stage — not per look.
//! The method, its assumptions and its guarantee: README "How canary judges".
//!
//! - Budget: a rollout may roll back a healthy canary with probability at most
//!   [`FALSE_ROLLBACK_BUDGET`], shared equally by every (stage, check) pair.
//! - Triggers: without `for`, a `Detector` per alternative rate over the stage's
//!   minutes (evidence from any start minute, the newest always included); with
//!   `for: D`, a `WindowDetector` on the last D alone (the aggregate over the window).
//!   Error-rate and availability triggers count every minute of the stage (errors
//!   during warm-up are errors users saw); latency triggers leave warm-up out (cold
//!   starts are slow by nature). p95 > L is tested as "more than 5% of requests are
//!   slower than L", counting only requests in buckets wholly above L.
//! - Gates: canary against stable over the same minutes after warm-up (at 100%, stable's
//!   minutes from the stage before). A gate fails, at any moment of the hold, only when
//!   time-uniform confidence sequences show the difference beyond the allowed margin;
//!   it passes when the estimate is within the margin on enough requests; otherwise it
//!   is inconclusive and says how many more requests would settle it.
//! - Only minutes Cloud Monitoring has published are seen (it withholds the rest).
//!   Everything is recomputed from Cloud Monitoring each pass: no state of its own.

use crate::time::epoch_secs;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use super::distribution::Distribution;
use super::observations::{Anchor, Minute, ReadPlan};
use super::stats::{self, Detector, WindowDetector};
use super::verdict::{Check, CheckKind, Outcome};
use crate::manifest::quantity::Threshold;
use crate::manifest::types::{CanaryRollout, Metric, RollbackTrigger};

/// The most likely a rollout is to roll back (or pause on a failed gate) a canary that
/// meets every trigger and gate, over all its stages and looks.
pub const FALSE_ROLLBACK_BUDGET: f64 = 0.001;
/// A trigger whose window holds fewer requests than this, and has not fired, is
/// inconclusive (it shows no evidence either way).
pub(crate) const MIN_TRIGGER_REQUESTS: u64 = 20;
/// A comparison passes only on at least this many requests on each side.
pub(crate) const MIN_COMPARISON_REQUESTS: u64 = 100;
/// p95 means: at most this share of requests slower.
const TAIL: f64 = 0.05;

/// Which revisions and minutes a judgement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `key` of the canary revision.
    pub canary: String,
    /// `key` of the stable revision.
    pub stable: String,
    pub stage_started: SystemTime,
    pub previous_stage_started: Option<SystemTime>,
    pub weight: u8,
    /// How the pass read the minutes (what a sample starting at a given moment covers).
    pub plan: ReadPlan,
}

/// The earliest moment a judgement of `window` looks at: the stage's start (at 100%, the
/// stage before's), or the longest trigger window before now, whichever is earlier.
pub(crate) fn window_start(rollout: &CanaryRollout, window: &Window, now: SystemTime) -> SystemTime {
    let longest_for = rollout.spec.analysis.rollback.iter().map(|t| t.window.as_std()).max().unwrap_or_default();
    let from_stage = if window.weight >= 100 {
        window.previous_stage_started.unwrap_or(window.stage_started)
    } else {
        window.stage_started
    };
    let from_triggers = now.checked_sub(longest_for + Duration::from_secs(600)).unwrap_or(from_stage);
    from_stage.min(from_triggers)
}

/// The anchors a judgement of `window` needs its older minutes summed from (the pass
/// reads one sum from each, see `observations::HourSums`): the 10-minute boundaries (hours
/// in a `coarse` plan) where the triggers' minutes start (errors from the stage's start,
/// latency after warm-up), where the gates' sample starts, and at 100% where stable's
/// reference from the stage before starts and ends. Only those before the plan's
/// `hours_until` (later minutes are read finer).
pub fn hour_anchors(rollout: &CanaryRollout, window: &Window) -> BTreeSet<u64> {
    let grid = window.plan.anchor_grid();
    let up = |t: u64| t.div_ceil(grid) * grid;
    let warmup = rollout.spec.analysis.warmup.as_secs();
    let started = epoch_secs(window.stage_started);
    let warm = started + warmup;
    // A period counts for a trigger when its first minute ends after the trigger's start.
    let mut anchors = BTreeSet::from([up(started.saturating_sub(59)), up(warm)]);
    if let Anchor::Hour(h) | Anchor::TenMinutes(h) = window.plan.anchor(warm) {
        anchors.insert(h);
    }
    if window.weight >= 100 {
        let from = window.previous_stage_started.map_or(started, epoch_secs) + warmup;
        anchors.insert(up(window.plan.anchor(from).at()));
        anchors.insert(started / grid * grid);
    }
    anchors.retain(|a| *a < window.plan.hours_until);
    anchors
}

/// How many of the newest minutes judging `rollout` needs one by one: every trigger's
/// `for` window; ten for the newest starts of a trigger without one; while paused for a
/// shared incident, the minutes its end is judged on; plus the minutes Cloud Monitoring
/// withholds and one more. Gates and stable's variation need no minutes of their own
/// (10-minute periods serve them).
pub fn minutes_needed(rollout: &CanaryRollout, shared_incident: bool) -> Duration {
    let analysis = &rollout.spec.analysis;
    let windows = analysis.rollback.iter().map(|t| {
        let span = t.window.as_std();
        if span.as_secs() >= 120 { span } else { Duration::from_secs(600) }
    });
    let recovery = if shared_incident { analysis.incident_recovery.as_std() } else { Duration::ZERO };
    windows.max().unwrap_or_default().max(recovery) + Duration::from_secs(240)
}

/// Whether judging `rollout` needs latency distributions (a p95 gate or trigger).
pub(crate) fn needs_latency(rollout: &CanaryRollout) -> bool {
    rollout.spec.analysis.promotion.max_p95_increase.is_some()
        || rollout.spec.analysis.rollback.iter().any(|t| t.metric == Metric::P95Latency)
}

/// Sums of some minutes of one revision.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub total: u64,
    pub server_errors: u64,
    pub latency: Option<Box<Distribution>>,
}

impl Totals {
    pub fn add(&mut self, m: &Minute) {
        self.total += m.total;
        self.server_errors += m.server_errors;
        super::observations::add_latency(&mut self.latency, m.latency.as_deref());
    }

    fn of<'a>(minutes: impl Iterator<Item = &'a Minute>) -> Totals {
        let mut t = Totals::default();
        minutes.for_each(|m| t.add(m));
        t
    }

    fn error_rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.server_errors as f64 / self.total as f64)
    }

    fn p95(&self) -> Option<f64> {
        self.latency.as_ref().and_then(|d| d.percentile(1.0 - TAIL))
    }
}

/// Requests in buckets wholly above `limit` (conservative: a bucket straddling the limit
/// is not counted), and all requests.
fn slower_than(d: &Distribution, limit: f64) -> (u64, u64) {
    let first = d.options.first_at_or_above(limit);
    (d.in_buckets_from(first), d.in_buckets())
}

/// How a rollout's budget is shared: one equal part per (stage, check). The period
/// before stage 1 (the canary at 0%) counts as a stage, since triggers watch it too.
pub fn check_alpha(rollout: &CanaryRollout) -> f64 {
    let promotion = &rollout.spec.analysis.promotion;
    let gates =
        usize::from(promotion.max_error_rate_increase.is_some()) + usize::from(promotion.max_p95_increase.is_some());
    let checks = (rollout.spec.analysis.rollback.len() + gates).max(1);
    let stages = rollout.spec.stages.len() + 1;
    FALSE_ROLLBACK_BUDGET / (stages * checks) as f64
}

/// What a trigger tests: a rate of failing requests above a limit.
#[derive(Debug, Clone, Copy)]
enum Tested {
    /// 5xx ÷ requests above the limit (availability below 1 − limit).
    Errors,
    /// The share of requests slower than this many milliseconds above 5%.
    SlowerThan(f64),
}

/// What `rule` tests, the limit on the tested rate, and its threshold as the manifest
/// says it (a fraction, or milliseconds); `None` for a rule with no usable bound.
fn tested(rule: &RollbackTrigger) -> Option<(Tested, f64, f64)> {
    match (rule.metric, rule.above.as_ref().or(rule.below.as_ref())?) {
        (Metric::ErrorRate, Threshold::Percent(p)) => Some((Tested::Errors, p.fraction(), p.fraction())),
        (Metric::Availability, Threshold::Percent(p)) => Some((Tested::Errors, 1.0 - p.fraction(), p.fraction())),
        (Metric::P95Latency, Threshold::Latency(d)) => {
            let ms = d.as_std().as_secs_f64() * 1000.0;
            Some((Tested::SlowerThan(ms), TAIL, ms))
        }
        _ => None,
    }
}

/// The counts `tested` reads in `minute`: (failing, all).
fn tested_counts(tested: Tested, minute: &Minute) -> (u64, u64) {
    match tested {
        Tested::Errors => (minute.server_errors, minute.total),
        Tested::SlowerThan(limit) => minute.latency.as_ref().map_or((0, 0), |d| slower_than(d, limit)),
    }
}

/// A trigger's sequential test: without `for`, evidence from any start minute of the
/// stage (the newest minute always included); with `for: D` (2 minutes or more), the
/// last D alone.
#[derive(Debug, Clone)]
enum Test {
    Since(Detector),
    Window(WindowDetector),
}

impl Test {
    /// Adds the period ending at `end`, `span` seconds long, whose first minute is the
    /// k-th of the test's minutes.
    fn push(&mut self, end: u64, span: u64, llr: f64, k: u64) {
        match self {
            Test::Since(d) => d.push_at(llr, k),
            // A window is the newest minutes only; longer periods are older than it.
            Test::Window(d) if span <= 60 => d.push_at(end, llr, k),
            Test::Window(d) => d.seen_from(end + 60 - span),
        }
    }

    fn statistic(&self) -> f64 {
        match self {
            Test::Since(d) => d.statistic(),
            Test::Window(d) => d.statistic(),
        }
    }

    fn fired(&self) -> bool {
        self.statistic() >= 0.0
    }
}

/// One rollback trigger's evidence in the current stage.
#[derive(Debug, Clone)]
struct TriggerEvidence {
    tested: Tested,
    /// The limit on the tested rate.
    limit: f64,
    /// What the manifest says (a fraction, or milliseconds), and how to show the
    /// observed value against it.
    threshold: f64,
    metric: Metric,
    /// Only minutes ending after this (epoch seconds) count.
    after: u64,
    span: u64,
    detectors: Vec<(f64, Test)>,
    /// Each detector's log-likelihood ratio terms (its alternative against the limit).
    terms: Vec<stats::LlrTerms>,
    /// The minutes of the trigger's window, newest last, for the observed value.
    window: VecDeque<(u64, Minute)>,
    /// The newest minute with requests: what a window without any shows instead.
    last_with_data: Option<Minute>,
}

impl TriggerEvidence {
    /// The counts this trigger tests in `minute`: (failing, all).
    fn counts(&self, minute: &Minute) -> (u64, u64) {
        tested_counts(self.tested, minute)
    }

    /// The variance multiple this trigger's counts are discounted by, of `dispersion`.
    fn discount(&self, dispersion: f64) -> f64 {
        match self.tested {
            Tested::Errors => dispersion,
            // Latency is not estimated: slow requests are taken as independent.
            Tested::SlowerThan(_) => 1.0,
        }
    }

    /// The minute index (from 1) of the first minute of the period ending at `end`
    /// among this trigger's minutes; `None` for a period that starts before them (a
    /// period holding minutes from before the stage or from warm-up is left out).
    fn index(&self, end: u64, span: u64) -> Option<u64> {
        let first_end = (end + 60).checked_sub(span.max(60))?;
        (first_end > self.after).then(|| (first_end - self.after).div_ceil(60))
    }

    /// Adds the period ending at `end` (a minute, or an older 10 minutes or hour); its
    /// evidence is divided by `dispersion`, the multiple of the binomial variance that
    /// minutes show beyond it.
    fn push(&mut self, end: u64, minute: &Minute, dispersion: f64) {
        let Some(k) = self.index(end, minute.span) else { return };
        let (x, n) = self.counts(minute);
        let discount = self.discount(dispersion);
        if n > 0 {
            for ((_, d), terms) in self.detectors.iter_mut().zip(&self.terms) {
                d.push(end, minute.span, terms.llr(x, n) / discount, k);
            }
            self.last_with_data = Some(minute.clone());
        }
        if minute.span > 60 {
            return;
        }
        self.window.push_back((end, minute.clone()));
        while self.window.front().is_some_and(|(e, _)| *e + self.span.max(60) <= end) {
            self.window.pop_front();
        }
    }

    fn check(&self) -> Check {
        let mut totals = Totals::of(self.window.iter().map(|(_, m)| m));
        if totals.total == 0
            && let Some(m) = &self.last_with_data
        {
            totals = Totals::of(std::iter::once(m));
        }
        let (observed, rate) = match self.tested {
            Tested::Errors => {
                let rate = totals.error_rate();
                (if self.metric == Metric::Availability { rate.map(|r| 1.0 - r) } else { rate }, rate)
            }
            Tested::SlowerThan(limit) => {
                let rate = totals
                    .latency
                    .as_ref()
                    .map(|d| slower_than(d, limit))
                    .and_then(|(x, n)| (n > 0).then(|| x as f64 / n as f64));
                (totals.p95(), rate)
            }
        };
        let fired = self.detectors.iter().any(|(_, d)| d.fired());
        let beyond = rate.is_some_and(|r| r > self.limit);
        let (result, needed) = if fired {
            (Outcome::Fail, None)
        } else if totals.total < MIN_TRIGGER_REQUESTS || observed.is_none() {
            (Outcome::Inconclusive, Some(MIN_TRIGGER_REQUESTS.saturating_sub(totals.total).max(1)))
        } else if beyond {
            // Over the limit, not yet conclusively: at the rate seen, how many more
            // requests until the nearest detector fires.
            let r = rate.unwrap_or_default();
            let needed = self
                .detectors
                .iter()
                .filter_map(|(p1, d)| {
                    let per_request = stats::binomial_llr(0, 1, self.limit, *p1) * (1.0 - r)
                        + stats::binomial_llr(1, 1, self.limit, *p1) * r;
                    let gap = -d.statistic();
                    (per_request > 0.0 && gap.is_finite()).then(|| (gap / per_request).ceil() as u64)
                })
                .min();
            (Outcome::Inconclusive, needed.map(|n| n.max(1)))
        } else {
            (Outcome::Pass, None)
        };
        Check {
            kind: self.metric.into(),
            observed,
            threshold: self.threshold,
            result,
            requests_needed: needed,
            stable: None,
            shared: false,
        }
    }

    fn fired(&self) -> bool {
        self.detectors.iter().any(|(_, d)| d.fired())
    }

    /// The observed value and the tested rate over the trigger's newest window.
    fn window_rate(&self) -> Option<f64> {
        let (x, n) = self.window.iter().fold((0, 0), |(x, n), (_, m)| {
            let (a, b) = self.counts(m);
            (x + a, n + b)
        });
        (n > 0).then(|| x as f64 / n as f64)
    }
}

/// How evidence is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Each request an independent trial, each revision judged on its own: the judgement
    /// before shared incidents and extra variation were accounted for, kept so that
    /// `make judge-eval` measures the change beside it.
    Binomial,
    /// Evidence on error counts discounted by the extra variation stable's minutes show,
    /// and a failed trigger blamed on the canary only when stable does not fail it too
    /// or the canary is conclusively worse than stable (see [`Blame`]).
    Robust,
}

/// Whose a failed rollback trigger is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The canary's: stable does not fail the trigger over the same minutes, or the
    /// canary is conclusively worse than stable.
    Canary,
    /// Shared: stable fails it too over the same minutes, and the canary's share of the
    /// failing requests is not conclusively above its share of the requests.
    Shared,
}

/// Stable's minutes show extra variation: the mean over pairs of consecutive minutes of
/// (difference of their rates)² ÷ its binomial variance, 1 for independent requests.
/// The variance is taken at stable's rate over the last [`DISPERSION_LEVEL_MINUTES`]
/// (a burst is measured against the level around it, not against itself), or at the
/// median of the last [`DISPERSION_SHIFT_MINUTES`] when that is higher (a level that
/// has moved). Successive
/// differences keep a level shift (an incident starting) from counting as variation
/// except at its edges, and each pair counts for at most [`DISPERSION_PAIR_CAP`] times
/// the estimate before it, so those edges move it little.
#[derive(Debug, Clone, Default)]
pub struct Dispersion {
    sum: f64,
    pairs: u64,
    /// The period before: its end, length, failing and all requests.
    last: Option<(u64, u64, u64, u64)>,
    /// The periods ending within the last [`DISPERSION_LEVEL_MINUTES`]: end, failing, all.
    level: VecDeque<(u64, u64, u64)>,
}

/// Pairs of 10-minute periods a pass estimates stable's variation from alone, when it
/// read that many (the variation query's four hours hold 23).
const MIN_TEN_MINUTE_PAIRS: u64 = 20;
/// Pairs of minutes a dispersion estimate needs before it is used (until then: 1).
const MIN_DISPERSION_PAIRS: u64 = 10;
/// The most one pair of minutes adds, as a multiple of the estimate so far.
const DISPERSION_PAIR_CAP: f64 = 25.0;
/// Minutes with fewer requests than this say little about variation and are skipped.
const MIN_DISPERSION_REQUESTS: u64 = 20;
/// The newest minutes whose median rate, when higher, is the level instead.
const DISPERSION_SHIFT_MINUTES: usize = 5;
/// The minutes whose pooled rate is the level a pair's variance is taken at.
const DISPERSION_LEVEL_MINUTES: u64 = 30;
/// Pairs of periods up to this long count (minutes, and the 10-minute periods of older
/// minutes); hours vary with the daily load far more than by chance, and are left out.
const DISPERSION_MAX_SPAN: u64 = 600;

impl Dispersion {
    /// Adds stable's period ending at `end` (in order); a pair is two adjacent periods
    /// of the same length.
    pub fn push(&mut self, end: u64, minute: &Minute) {
        let (x, n, span) = (minute.server_errors, minute.total, minute.span.max(60));
        if n < MIN_DISPERSION_REQUESTS || span > DISPERSION_MAX_SPAN {
            self.last = None;
            return;
        }
        self.level.push_back((end, x, n));
        while self.level.front().is_some_and(|(e, _, _)| e + DISPERSION_LEVEL_MINUTES * 60 <= end) {
            self.level.pop_front();
        }
        if let Some((last_end, last_span, x0, n0)) = self.last
            && last_span == span
            && last_end + span == end
        {
            let (lx, ln) = self.level.iter().fold((0, 0), |(a, b), (_, x, n)| (a + x, b + n));
            // A sustained shift (an incident) moves the median of the last minutes within
            // three of them, where the 30-minute level lags; a one-minute burst does not.
            let mut recent: Vec<f64> =
                self.level.iter().rev().take(DISPERSION_SHIFT_MINUTES).map(|(_, x, n)| *x as f64 / *n as f64).collect();
            recent.sort_by(f64::total_cmp);
            let median = recent.get(recent.len() / 2).copied().unwrap_or(0.0);
            let level = (lx as f64 / ln as f64).max(median);
            if level > 0.0 && level < 1.0 {
                let variance = level * (1.0 - level) * (1.0 / n as f64 + 1.0 / n0 as f64);
                let difference = x as f64 / n as f64 - x0 as f64 / n0 as f64;
                let cap = DISPERSION_PAIR_CAP * self.estimate().max(1.0);
                self.sum += (difference * difference / variance).min(cap);
                self.pairs += 1;
            }
        }
        self.last = Some((end, span, x, n));
    }

    fn estimate(&self) -> f64 {
        if self.pairs == 0 { 1.0 } else { self.sum / self.pairs as f64 }
    }

    /// The multiple of the binomial variance minutes show, at least 1.
    pub fn factor(&self) -> f64 {
        if self.pairs < MIN_DISPERSION_PAIRS { 1.0 } else { self.estimate().max(1.0) }
    }
}

/// A test of "the canary's share of a minute's failing requests is above its share of
/// the minute's requests": anything that moves both revisions alike (an incident in a
/// shared dependency, load) leaves it alone. For a minute with x failing requests of
/// which the canary served x_c, and canary share π of the requests, x_c given x is
/// binomial(x, θ) with θ ≤ π while the canary is no worse than stable (Lindon & Malek
/// 2022); the alternatives are the canary failing 1.5, 2 and 4 times as often.
#[derive(Debug, Clone)]
struct Split {
    detectors: Vec<(f64, Detector)>,
}

impl Split {
    fn new(alpha: f64) -> Split {
        let ratios = [1.5, 2.0, 4.0];
        let share = alpha / ratios.len() as f64;
        Split { detectors: ratios.iter().map(|r| (*r, Detector::new(share))).collect() }
    }

    /// Adds a period's failing and all requests of each side; its first minute is the
    /// k-th of the trigger's minutes. A longer period's split is judged at its pooled
    /// share of the requests.
    fn push(&mut self, canary: (u64, u64), stable: (u64, u64), discount: f64, k: u64) {
        let ((xc, nc), (xs, ns)) = (canary, stable);
        if nc == 0 || ns == 0 || xc + xs == 0 {
            return;
        }
        let pi = nc as f64 / (nc + ns) as f64;
        for (ratio, d) in &mut self.detectors {
            let theta = *ratio * pi / (*ratio * pi + 1.0 - pi);
            d.push_at(stats::binomial_llr(xc, xc + xs, pi, theta) / discount, k);
        }
    }

    fn fired(&self) -> bool {
        self.detectors.iter().any(|(_, d)| d.fired())
    }
}

/// One stage's evidence for a rollout: fed minute by minute (in order), judged at any
/// moment. `judge` builds it from Cloud Monitoring's minutes each pass; the judge-eval
/// feeds it as minutes are published.
#[derive(Debug, Clone)]
pub struct Evidence {
    method: Method,
    alpha: f64,
    dispersion: Dispersion,
    /// Each trigger again, on stable's minutes, and the canary-against-stable split of
    /// its failing requests: what [`Evidence::blame`] reads.
    stable_triggers: Vec<TriggerEvidence>,
    splits: Vec<Split>,
    /// Stable's variation is set for the whole stage (estimated from the periods a pass
    /// read), not learnt minute by minute.
    dispersion_fixed: bool,
    /// Gate periods are those starting at or after this, as the pass read them.
    gates_from: Anchor,
    /// The share of a gate's budget the canary's side has (its sample's anchor's).
    gates_share: f64,
    /// The share of a gate's budget stable's side has (its reference's anchor at 100%).
    stable_share: f64,
    at_full_weight: bool,
    triggers: Vec<TriggerEvidence>,
    canary: Totals,
    stable: Totals,
    min_requests: Option<u64>,
    max_error_rate_increase: Option<f64>,
    max_p95_increase: Option<f64>,
}

impl Evidence {
    pub fn new(rollout: &CanaryRollout, window: &Window) -> Evidence {
        Evidence::with_method(rollout, window, Method::Robust)
    }

    pub fn with_method(rollout: &CanaryRollout, window: &Window, method: Method) -> Evidence {
        let analysis = &rollout.spec.analysis;
        let alpha = check_alpha(rollout);
        let started = epoch_secs(window.stage_started);
        let warm = started + analysis.warmup.as_secs();
        let gates_from = window.plan.anchor(warm);
        let gates_share = window.plan.share(gates_from);
        let triggers: Vec<TriggerEvidence> = analysis
            .rollback
            .iter()
            .filter_map(|rule| {
                let (tested, limit, threshold) = tested(rule)?;
                // Latency leaves warm-up out; errors in warm-up are errors users saw.
                let after = match tested {
                    Tested::Errors => started,
                    Tested::SlowerThan(_) => warm + 59,
                };
                // A limit of 100% (or availability below 0%) can never be exceeded.
                let detectors = if limit >= 1.0 {
                    Vec::new()
                } else {
                    let alternatives = stats::alternatives(limit);
                    let share = alpha / alternatives.len() as f64;
                    let span = rule.window.as_secs();
                    let test = || {
                        if span >= 120 {
                            Test::Window(WindowDetector::new(share, span))
                        } else {
                            Test::Since(Detector::new(share))
                        }
                    };
                    alternatives.into_iter().map(|p1| (p1, test())).collect()
                };
                let terms = detectors.iter().map(|(p1, _)| stats::LlrTerms::new(limit, *p1)).collect();
                Some(TriggerEvidence {
                    terms,
                    tested,
                    limit,
                    threshold,
                    metric: rule.metric,
                    after,
                    span: rule.window.as_secs().max(60),
                    detectors,
                    window: VecDeque::new(),
                    last_with_data: None,
                })
            })
            .collect();
        let promotion = &analysis.promotion;
        Evidence {
            method,
            alpha,
            dispersion: Dispersion::default(),
            stable_triggers: triggers.clone(),
            splits: triggers.iter().map(|_| Split::new(alpha)).collect(),
            dispersion_fixed: false,
            gates_from,
            gates_share,
            stable_share: gates_share,
            at_full_weight: window.weight >= 100,
            triggers,
            canary: Totals::default(),
            stable: Totals::default(),
            min_requests: promotion.min_requests,
            max_error_rate_increase: promotion.max_error_rate_increase.as_ref().map(|p| p.fraction()),
            max_p95_increase: promotion.max_p95_increase.as_ref().map(|p| p.fraction()),
        }
    }

    /// Adds the period ending at `end` (epoch seconds; a minute, or an older 10 minutes
    /// or hour, in order): the canary's, and stable's same period (ignored at 100%,
    /// where stable's reference comes from [`Evidence::set_reference`]).
    pub fn push(&mut self, end: u64, canary: &Minute, stable: Option<&Minute>) {
        let stable_serves = stable.filter(|s| !self.at_full_weight && s.total > 0);
        if let (Method::Robust, Some(s), false) = (self.method, stable_serves, self.dispersion_fixed) {
            self.dispersion.push(end, s);
        }
        let dispersion = self.dispersion_factor();
        for t in &mut self.triggers {
            t.push(end, canary, dispersion);
        }
        if let (Method::Robust, Some(s)) = (self.method, stable_serves) {
            for ((st, split), t) in self.stable_triggers.iter_mut().zip(&mut self.splits).zip(&self.triggers) {
                st.push(end, s, dispersion);
                if let Some(k) = t.index(end, canary.span) {
                    split.push(t.counts(canary), t.counts(s), t.discount(dispersion), k);
                }
            }
        }
        let start = end.saturating_sub(canary.span.max(60));
        if start >= self.gates_from.at() && canary.total > 0 {
            self.canary.add(canary);
            if let (Some(s), false) = (stable, self.at_full_weight) {
                self.stable.add(s);
            }
        }
    }

    /// Stable's minute ending at `end` from before the stage: it tells how much minutes
    /// vary, nothing else.
    pub fn prime(&mut self, end: u64, stable: &Minute) {
        if self.method == Method::Robust {
            self.dispersion.push(end, stable);
        }
    }

    /// The multiple of the binomial variance error counts are discounted by now.
    pub fn dispersion_factor(&self) -> f64 {
        match self.method {
            Method::Binomial => 1.0,
            Method::Robust => self.dispersion.factor(),
        }
    }

    /// Whose the first fired trigger is, when one has fired.
    pub fn blame(&self) -> Option<(CheckKind, Blame)> {
        let i = self.triggers.iter().position(TriggerEvidence::fired)?;
        Some((self.triggers[i].metric.into(), self.blame_of(i)))
    }

    fn blame_of(&self, i: usize) -> Blame {
        if self.method == Method::Binomial || self.at_full_weight {
            return Blame::Canary;
        }
        let stable = &self.stable_triggers[i];
        let stable_fails = stable.fired() || stable.window_rate().is_some_and(|r| r > stable.limit);
        if stable_fails && !self.splits[i].fired() { Blame::Shared } else { Blame::Canary }
    }

    /// Stable's minutes to compare with when the canary has all the traffic, and the
    /// share of a gate's budget their sample has (its anchor's, [`Anchor::share`]).
    pub fn set_reference(&mut self, stable: Totals, share: f64) {
        self.stable = stable;
        self.stable_share = share;
    }

    /// How much stable's minutes varied (what a stage at 100%, with no stable minutes of
    /// its own, carries from the stage before).
    pub fn stable_dispersion(&self) -> &Dispersion {
        &self.dispersion
    }

    /// Stable's variation as estimated for the whole stage (from the stage before, at
    /// 100%): pushed minutes no longer change it.
    pub fn set_dispersion(&mut self, dispersion: Dispersion) {
        self.dispersion = dispersion;
        self.dispersion_fixed = true;
    }

    /// The share of each gate's budget this stage's sample has (a reference taken from
    /// it carries it to the stage at 100%).
    pub fn gates_share(&self) -> f64 {
        self.gates_share
    }

    /// Stable's totals over the compared minutes (the next stage's reference at 100%).
    pub fn stable_totals(&self) -> &Totals {
        &self.stable
    }

    /// The first trigger whose detector has fired, without working out the values a
    /// status shows (what the judge-eval needs each simulated minute).
    pub fn fired_trigger(&self) -> Option<CheckKind> {
        self.triggers.iter().find(|t| t.detectors.iter().any(|(_, d)| d.fired())).map(|t| t.metric.into())
    }

    pub(crate) fn triggers(&self) -> Vec<Check> {
        self.triggers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut check = t.check();
                if self.method == Method::Robust && !self.at_full_weight {
                    let stable = self.stable_triggers[i].check();
                    check.stable = stable.observed;
                    check.shared = check.result == Outcome::Fail && self.blame_of(i) == Blame::Shared;
                }
                check
            })
            .collect()
    }

    pub fn gates(&self) -> Vec<Check> {
        let (canary, stable) = (&self.canary, &self.stable);
        let mut gates = Vec::new();
        if let Some(min) = self.min_requests {
            let enough = canary.total >= min;
            gates.push(Check {
                kind: CheckKind::MinRequests,
                observed: Some(canary.total as f64),
                threshold: min as f64,
                result: if enough { Outcome::Pass } else { Outcome::Inconclusive },
                requests_needed: (!enough).then(|| min - canary.total),
                stable: None,
                shared: false,
            });
        }
        let enough = canary.total.min(stable.total);
        let short = MIN_COMPARISON_REQUESTS.saturating_sub(enough);
        // Each side of a comparison gets half of the check's budget, times the share of
        // the sample its periods start at (one per kind of anchor may be read).
        let alpha = self.alpha / 2.0 * self.gates_share;
        let stable_alpha = self.alpha / 2.0 * self.stable_share;
        if let Some(margin) = self.max_error_rate_increase {
            let increase = canary.error_rate().zip(stable.error_rate()).map(|(c, s)| c - s);
            // Minutes that vary more than binomially carry less evidence: counts divided
            // by the variance multiple (an effective sample size).
            let dispersion = self.dispersion_factor();
            let conclusive = |f: f64| {
                let scale = |v: u64| (v as f64 * f / dispersion).round() as u64;
                let (low, _) = stats::rate_bounds(scale(canary.server_errors), scale(canary.total), alpha);
                let (_, high) = stats::rate_bounds(scale(stable.server_errors), scale(stable.total), stable_alpha);
                low - high > margin
            };
            gates.push(comparison(CheckKind::ErrorRateIncrease, increase, margin, short, canary.total, conclusive));
        }
        if let Some(margin) = self.max_p95_increase {
            let increase = canary.p95().zip(stable.p95()).filter(|(_, s)| *s > 0.0).map(|(c, s)| c / s - 1.0);
            let failing = increase.is_some_and(|i| i > margin);
            // p95 above (1 + margin) × stable's p95: more than 5% of canary requests are
            // slower than (1 + margin) × a bound stable's p95 is surely under.
            let bound =
                if failing { stable.latency.as_ref().and_then(|d| p95_upper_bound(d, stable_alpha)) } else { None };
            let slow = match (bound, &canary.latency) {
                (Some(b), Some(d)) => Some(slower_than(d, b * (1.0 + margin))),
                _ => None,
            };
            let conclusive = |f: f64| {
                slow.is_some_and(|(x, n)| {
                    let scale = |v: u64| (v as f64 * f).round() as u64;
                    stats::rate_bounds(scale(x), scale(n), alpha).0 > TAIL
                })
            };
            gates.push(comparison(CheckKind::P95Increase, increase, margin, short, canary.total, conclusive));
        }
        gates
    }
}

/// The smallest bucket bound that stable's p95 is, with confidence 1 − `alpha`, under:
/// the first bound with fewer than 5% of requests above it, by the confidence sequence.
fn p95_upper_bound(d: &Distribution, alpha: f64) -> Option<f64> {
    let n = d.in_buckets();
    let start = d.percentile(1.0 - TAIL)?;
    let mut above = n;
    // Empty buckets below the first used one have `above = n`: none can be the bound.
    for (i, c) in d.buckets() {
        above -= c;
        let upper = d.options.bounds(i).1;
        if upper.is_finite() && upper >= start && stats::rate_bounds(above, n, alpha).1 < TAIL {
            return Some(upper);
        }
    }
    None
}

/// A comparison gate: fails when `conclusive` (at the data seen), passes when the
/// estimate is within the margin on enough requests, and is otherwise inconclusive with
/// the requests still needed.
fn comparison(
    kind: CheckKind,
    observed: Option<f64>,
    margin: f64,
    short: u64,
    canary_requests: u64,
    conclusive: impl Fn(f64) -> bool,
) -> Check {
    let failing = observed.is_some_and(|v| v > margin);
    let (result, needed) = if failing && conclusive(1.0) {
        (Outcome::Fail, None)
    } else if failing {
        // At the rates seen, the least multiple of the data that would be conclusive;
        // none when no amount of data at these rates would be.
        let needed = scale_needed(&conclusive).map(|f| ((canary_requests as f64 * (f - 1.0)).ceil() as u64).max(short));
        (Outcome::Inconclusive, needed.map(|n| n.max(1)))
    } else if observed.is_some() && short == 0 {
        (Outcome::Pass, None)
    } else {
        (Outcome::Inconclusive, Some(short.max(1)))
    };
    Check { kind, observed, threshold: margin, result, requests_needed: needed, stable: None, shared: false }
}

/// The least factor f > 1 (to 1%) with `conclusive(f)`, if one up to 2^16 is.
fn scale_needed(conclusive: &impl Fn(f64) -> bool) -> Option<f64> {
    let mut high = 2.0;
    while !conclusive(high) {
        high *= 2.0;
        if high > 65_536.0 {
            return None;
        }
    }
    let mut low = 1.0;
    while high / low > 1.01 {
        let mid = (low * high).sqrt();
        if conclusive(mid) {
            high = mid;
        } else {
            low = mid;
        }
    }
    Some(high)
}

/// Judges the rollback triggers and the promotion gates of the current stage, on the
/// periods a pass read (`window.plan`).
pub(crate) fn judge(
    rollout: &CanaryRollout,
    window: &Window,
    canary: &BTreeMap<u64, Minute>,
    stable: &BTreeMap<u64, Minute>,
    variation: &BTreeMap<u64, Minute>,
) -> (Vec<Check>, Vec<Check>) {
    let evidence = evidence(rollout, window, (canary, stable), variation, Method::Robust);
    (evidence.triggers(), evidence.gates())
}

/// The evidence [`judge`] reads, by `method`, from the canary's and stable's periods
/// and stable's older 10-minute periods read for its variation alone
/// (`ReadPlan::variation_query`): what a simulation judging as a pass does reads too
/// (`examples/judge_eval.rs`).
pub fn evidence(
    rollout: &CanaryRollout,
    window: &Window,
    (canary, stable): (&BTreeMap<u64, Minute>, &BTreeMap<u64, Minute>),
    variation: &BTreeMap<u64, Minute>,
    method: Method,
) -> Evidence {
    let mut evidence = Evidence::with_method(rollout, window, method);
    let started = epoch_secs(window.stage_started);
    let at_full_weight = window.weight >= 100;
    // Stable's variation, from every period read and the older 10-minute periods (at
    // 100%, those before the stage, when it last served), estimated once and applied to
    // the whole stage. A few dozen periods a pass: the older ones are what keep the
    // estimate from being a fresh guess each pass on a quiet service.
    let until = if at_full_weight { started } else { u64::MAX };
    let hours = window.plan.hours_until;
    let older = variation.range(..=hours.min(until));
    // Pairs of 10-minute periods when there are enough of them: a minute of a quiet
    // service holds a fraction of an error, and its rare bursts, which carry its extra
    // variation, are what the cap on a pair cuts (a few dozen minute pairs then read a
    // heavy-tailed service as nearly binomial); a 10-minute period sums ten minutes'
    // variation into tamer pairs. Minutes only when there are too few of those.
    let (mut all, mut tens) = (Dispersion::default(), Dispersion::default());
    for (end, minute) in older.chain(stable.range(hours + 1..=until.max(hours + 1))) {
        all.push(*end, minute);
        if minute.span == 600 {
            tens.push(*end, minute);
        }
    }
    evidence.set_dispersion(if tens.pairs >= MIN_TEN_MINUTE_PAIRS { tens } else { all });
    if at_full_weight {
        // Stable has no traffic now: its periods from the stage before, after warm-up.
        let warmup = rollout.spec.analysis.warmup.as_secs();
        let anchor = window.plan.anchor(window.previous_stage_started.map_or(started, epoch_secs) + warmup);
        // The stage before may have ended within its warm-up (`canary promote`), or the
        // times on the service may be hand-edited: then there is no reference, never a
        // reversed range (which panics).
        let reference = if anchor.at() <= started {
            Totals::of(
                stable
                    .range(anchor.at()..=started)
                    .filter(|(end, m)| end.saturating_sub(m.span) >= anchor.at())
                    .map(|(_, m)| m),
            )
        } else {
            Totals::default()
        };
        evidence.set_reference(reference, window.plan.share(anchor));
    }
    for (end, minute) in canary.range(started + 1..) {
        evidence.push(*end, minute, stable.get(end));
    }
    evidence
}

/// Whether stable has been within every rollback trigger of `rollout` for
/// `analysis.incidentRecovery`, over minutes that all end after `since` (when a shared
/// incident paused the rollout), measured as the triggers measure (the tested rate
/// within its limit): each minute within the triggers without `for`, and the whole
/// period within every trigger. Minutes with fewer than [`MIN_TRIGGER_REQUESTS`]
/// requests say nothing on their own and count only in the whole.
pub fn stable_recovered(rollout: &CanaryRollout, stable: &BTreeMap<u64, Minute>, since: SystemTime) -> bool {
    let analysis = &rollout.spec.analysis;
    let minutes = (analysis.incident_recovery.as_secs() / 60).max(1) as usize;
    let since = epoch_secs(since);
    let recent: Vec<&Minute> =
        stable.range(since + 60..).rev().filter(|(_, m)| m.span <= 60).take(minutes).map(|(_, m)| m).collect();
    if recent.len() < minutes || recent.iter().any(|m| m.total == 0) {
        return false;
    }
    analysis.rollback.iter().filter_map(|rule| Some((rule, tested(rule)?))).all(|(rule, (what, limit, _))| {
        let within = |(x, n): (u64, u64)| n == 0 || x as f64 / n as f64 <= limit;
        let whole = recent.iter().fold((0, 0), |(x, n), m| {
            let (a, b) = tested_counts(what, m);
            (x + a, n + b)
        });
        let each = rule.window.as_secs() >= 120
            || recent.iter().all(|m| m.total < MIN_TRIGGER_REQUESTS || within(tested_counts(what, m)));
        each && within(whole)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rollout(analysis: &str) -> CanaryRollout {
        let text = format!(
            "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: api}}\nspec:\n  project: p\n  \
             region: r\n  service: api\n  template: {{image: \"gcr.io/p/api:v2\"}}\n  stages:\n    - {{weight: 5, hold: 1h}}\n    \
             - {{weight: 100}}\n  analysis:\n{analysis}"
        );
        serde_saphyr::from_str(&text).unwrap()
    }

    fn window() -> Window {
        Window {
            canary: "canary".into(),
            stable: "stable".into(),
            stage_started: SystemTime::UNIX_EPOCH,
            previous_stage_started: None,
            weight: 5,
            plan: ReadPlan::every_minute(),
        }
    }

    fn minute(total: u64, server_errors: u64) -> Minute {
        Minute::new(total, server_errors, None)
    }

    fn gate(e: &Evidence, name: &str) -> Check {
        e.gates().into_iter().find(|g| g.kind.name() == name).unwrap()
    }

    /// Found by the simulation (seed 80): `canary promote` ended a stage within its
    /// warm-up, so at 100% the reference minutes started after the stage did, and the
    /// reversed range panicked — taking every rollout of the pass down with it.
    #[test]
    fn a_stage_at_100_percent_right_after_a_short_one_has_no_reference_and_does_not_panic() {
        let r = rollout("    warmup: 2m\n    promotion: {maxErrorRateIncrease: 0.5%}\n");
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let window = Window {
            weight: 100,
            stage_started: start + Duration::from_secs(30),
            previous_stage_started: Some(start),
            ..window()
        };
        let minutes: BTreeMap<u64, Minute> = (1..=5).map(|m| (epoch_secs(start) + 60 * m, minute(100, 0))).collect();
        let (_, gates) = judge(&r, &window, &minutes, &minutes, &BTreeMap::new());
        let increase = gates.iter().find(|g| g.kind.name() == "errorRateIncrease").unwrap();
        assert_eq!(increase.result, Outcome::Inconclusive, "no reference is no evidence: {increase:?}");
    }

    /// The issue's scenario: at 10% of 50 rps both revisions return 12% errors. The
    /// canary's trigger fires — its users do see 12% — but stable fails it too and the
    /// split of the errors is the split of the requests: a shared incident.
    #[test]
    fn a_trigger_stable_fails_too_is_shared_unless_the_canary_is_conclusively_worse() {
        let r = rollout("    rollback:\n      - {metric: errorRate, above: 5%}\n");
        let run = |method, canary_errors: u64| {
            let mut e = Evidence::with_method(&r, &window(), method);
            for m in 1..=20u64 {
                e.prime(m * 60, &minute(2700, 13));
            }
            for m in 21..=27u64 {
                e.push(m * 60, &minute(300, canary_errors), Some(&minute(2700, 324)));
            }
            e
        };
        let same = run(Method::Robust, 36);
        assert_eq!(same.blame(), Some((CheckKind::ErrorRate, Blame::Shared)));
        let t = &same.triggers()[0];
        assert!(t.shared && t.result == Outcome::Fail, "{t:?}");
        assert!((t.stable.unwrap() - 0.12).abs() < 1e-9, "{t:?}");
        // 30% against stable's 12%: the canary's own fault.
        assert_eq!(run(Method::Robust, 90).blame(), Some((CheckKind::ErrorRate, Blame::Canary)));
        // The judgement before: every failed trigger the canary's.
        assert_eq!(run(Method::Binomial, 36).blame(), Some((CheckKind::ErrorRate, Blame::Canary)));
    }

    #[test]
    fn stable_recovers_after_incident_recovery_within_every_trigger() {
        let r = rollout("    incidentRecovery: 15m\n    rollback:\n      - {metric: errorRate, above: 5%}\n");
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(600);
        let minutes = |bad_until: u64, last: u64| -> BTreeMap<u64, Minute> {
            (1..=last).map(|m| (m * 60, if m <= bad_until { minute(1000, 120) } else { minute(1000, 5) })).collect()
        };
        assert!(!stable_recovered(&r, &minutes(20, 34), since), "14 good minutes are not 15");
        assert!(stable_recovered(&r, &minutes(20, 35), since));
        assert!(!stable_recovered(&r, &minutes(30, 40), since), "still failing in the window");
        assert!(!stable_recovered(&r, &BTreeMap::new(), since), "no data is no recovery");
    }

    #[test]
    fn the_budget_is_shared_by_every_stage_and_check() {
        let r = rollout(
            "    promotion: {maxErrorRateIncrease: 0.5%, maxP95Increase: 10%, minRequests: 10}\n    rollback:\n      - {metric: errorRate, above: 5%}\n",
        );
        // (2 stages + before stage 1) × (1 trigger + 2 comparison gates).
        assert!((check_alpha(&r) - FALSE_ROLLBACK_BUDGET / 9.0).abs() < 1e-15);
    }

    #[test]
    fn a_clearly_worse_canary_fails_its_gate_and_a_close_one_waits() {
        let r = rollout("    promotion: {maxErrorRateIncrease: 0.5%}\n");
        let mut bad = Evidence::new(&r, &window());
        let mut close = Evidence::new(&r, &window());
        for m in 1..=5u64 {
            bad.push(m * 60, &minute(100, 10), Some(&minute(1900, 10)));
            close.push(m * 60, &minute(100, 2), Some(&minute(1900, 10)));
        }
        assert_eq!(gate(&bad, "errorRateIncrease").result, Outcome::Fail);
        // 2% against 0.5%: over the margin, not yet conclusive; it says what would settle it.
        let c = gate(&close, "errorRateIncrease");
        assert_eq!(c.result, Outcome::Inconclusive);
        assert!(c.requests_needed.unwrap() > 0);
    }

    #[test]
    fn one_unlucky_error_on_thin_data_fails_nothing() {
        // 1 error in 6 requests is "17%" — far above 5% raw, but no evidence.
        let r = rollout("    rollback:\n      - {metric: errorRate, above: 5%}\n");
        let mut e = Evidence::new(&r, &window());
        e.push(60, &minute(6, 1), Some(&minute(114, 0)));
        let t = &e.triggers()[0];
        assert_eq!(t.result, Outcome::Inconclusive, "{t:?}");
        assert!(e.fired_trigger().is_none());
    }

    #[test]
    fn warm_up_is_left_out_of_gates_and_latency_but_not_error_triggers() {
        let r = rollout(
            "    warmup: 2m\n    promotion: {minRequests: 1}\n    rollback:\n      - {metric: errorRate, above: 5%}\n",
        );
        let mut e = Evidence::new(&r, &window());
        // The first two minutes: all errors.
        e.push(60, &minute(500, 500), None);
        e.push(120, &minute(500, 500), None);
        assert_eq!(gate(&e, "minRequests").result, Outcome::Inconclusive, "warm-up minutes are not the stage's");
        assert_eq!(e.fired_trigger(), Some(CheckKind::ErrorRate), "errors in warm-up still roll back");
    }

    proptest! {
        /// More canary errors never make a failed gate pass or a fired trigger quiet.
        #[test]
        fn more_canary_errors_never_make_a_rollback_less_likely(
            minutes in prop::collection::vec((1u64..300, 0u64..60, 100u64..3000, 0u64..30), 1..30),
            which in 0usize..30,
        ) {
            let r = rollout("    promotion: {maxErrorRateIncrease: 0.5%}\n    rollback:\n      - {metric: errorRate, above: 5%, for: 3m}\n");
            let which = which % minutes.len();
            let run = |extra: u64| {
                let mut e = Evidence::new(&r, &window());
                for (i, &(n, x, ns, xs)) in minutes.iter().enumerate() {
                    let x = if i == which { x + extra } else { x };
                    e.push(60 * (i as u64 + 1), &minute(n, x.min(n)), Some(&minute(ns, xs.min(ns))));
                }
                (e.fired_trigger().is_some(), gate(&e, "errorRateIncrease").result == Outcome::Fail)
            };
            let (trigger, gate_fails) = run(0);
            let (trigger_more, gate_fails_more) = run(5);
            prop_assert!(!trigger || trigger_more);
            prop_assert!(!gate_fails || gate_fails_more);
        }
    }
}

#[cfg(test)]
mod dispersion_tests {
    use super::*;
    use canary_emulator::conditions::Conditions;
    use canary_emulator::ids::Rng;
    use canary_emulator::profile::Behaviour;

    const OWN: Behaviour =
        Behaviour { error_rate: 0.005, client_error_rate: 0.0, p50_ms: 100.0, p95_ms: 300.0, health_status: 200 };

    fn estimate(conditions: &str, expected: f64, service: f64, minutes: u64) -> f64 {
        let c: Conditions = serde_json::from_str(conditions).unwrap();
        let mut rng = Rng::new(8);
        let mut d = Dispersion::default();
        for m in 1..=minutes {
            let counts = c.draw_counts(&mut rng, expected, service, &OWN);
            d.push(m * 60, &Minute::new(counts.total(), counts.server_errors, None));
        }
        d.factor()
    }

    /// What a pass has: four hours of stable's counts in 10-minute periods and its
    /// newest minutes. At 60 requests a minute and 3× binomial a minute holds 0.3
    /// errors; the bursts that carry the variance are what the cap on a pair cuts, so
    /// 40 minute pairs often read the service as nearly binomial, where the 10-minute
    /// pairs of the same draws do not. Binomial minutes read about 1 either way.
    #[test]
    fn stable_variation_is_read_from_ten_minute_pairs_on_a_quiet_service() {
        let (n, service) = (60.0, 120.0);
        let expected = 1.0 + (n - 1.0) * 8.0 / (service - 1.0);
        let both = |conditions: &str, seed: u64| {
            let c: Conditions = serde_json::from_str(conditions).unwrap();
            let mut rng = Rng::new(seed);
            let (mut minutes, mut tens) = (Dispersion::default(), Dispersion::default());
            let mut ten = Minute { span: 600, ..Minute::default() };
            for m in 1..=280u64 {
                let counts = c.draw_counts(&mut rng, n, service, &OWN);
                let minute = Minute::new(counts.total(), counts.server_errors, None);
                ten.add(&minute);
                if m % 10 == 0 {
                    tens.push(m * 60, &ten);
                    ten = Minute { span: 600, ..Minute::default() };
                }
                if m > 240 {
                    minutes.push(m * 60, &minute);
                }
            }
            (minutes.factor(), tens.factor())
        };
        let (mut low_minutes, mut low_tens) = (0, 0);
        for seed in 0..300 {
            let (m, t) = both(r#"{"variation": {"dispersion": 3}}"#, seed);
            low_minutes += usize::from(m < expected / 3.0);
            low_tens += usize::from(t < expected / 3.0);
        }
        assert!(low_tens * 3 < low_minutes, "low: {low_tens} of 300 from 10 minutes, {low_minutes} from minutes");
        for seed in 0..20 {
            let (_, t) = both("{}", seed);
            assert!(t < 2.0, "binomial, seed {seed}: {t}");
        }
    }

    #[test]
    fn stable_minutes_tell_how_much_more_than_binomial_they_vary() {
        // Binomial minutes: about 1, at every size.
        for (n, service) in [(60.0, 120.0), (1140.0, 1200.0), (11_400.0, 12_000.0)] {
            let f = estimate("{}", n, service, 2000);
            assert!(f < 1.3, "binomial at {n}: {f}");
        }
        // A wobble of 3× binomial at the service's size: 1 + (n − 1)ρ at stable's. At 60
        // requests a minute and 0.5% errors the beta is so skewed that the cap on one pair
        // trims the rare bursts that carry the variance: the estimate runs low there.
        for (n, service, at_least) in [(60.0, 120.0, 0.5), (1140.0, 1200.0, 0.7), (11_400.0, 12_000.0, 0.7)] {
            let expected = 1.0 + (n - 1.0) * 8.0 / (service - 1.0);
            let f = estimate(r#"{"variation": {"dispersion": 3}}"#, n, service, 2000);
            assert!(f > at_least * expected, "3× binomial at {n} of {service}: {f}, expected about {expected}");
            assert!(f < 1.5 * expected, "3× binomial at {n} of {service}: {f}, expected about {expected}");
        }
    }

    #[test]
    fn an_incident_starting_and_ending_is_not_taken_for_variation() {
        // Binomial minutes at 2,700 requests, 0.5% errors, then 12% for 20 minutes, then
        // 0.5% again: a level that moved, not minutes that vary.
        let mut rng = Rng::new(3);
        let mut d = Dispersion::default();
        let mut worst: f64 = 1.0;
        for m in 1..=90u64 {
            let rate = if (31..=50).contains(&m) { 0.12 } else { 0.005 };
            let errors = canary_emulator::sampling::binomial(&mut rng, 2700, rate);
            d.push(m * 60, &Minute::new(2700, errors, None));
            worst = worst.max(d.factor());
        }
        assert!(worst < 3.0, "the estimate reached {worst}");
    }
}
