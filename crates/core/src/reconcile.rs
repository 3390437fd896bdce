//! One pass over every rollout: observe (list services once per project/region), judge
//! (smoke tests and metrics, only when a decision needs them), decide, and — unless
//! only planning — execute the one write and verify it took.
//!
//! # Guarantees
//! - At most one write per rollout per pass, carrying the etag it was read with; on a
//!   conflict the service is read again and the decision made again (up to 3 times).
//! - One rollout's error never stops another.
//! - A metrics error is not a failed check: nothing advances on missing data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;

use crate::analysis::judge::{self, Window};
use crate::analysis::observations::{self, HourSums, Minute, Observations, ReadPlan};
use crate::analysis::verdict::{Smoke, Verdict};
use crate::analysis::wire::TimeSeries;
use crate::cloudrun::service::ServiceView;
use crate::decide::{self, Observed, Plan};
use crate::manifest::ManifestSet;
use crate::manifest::types::{CanaryRollout, SmokeAuth};
use crate::platform::{Clock, CloudRun, Monitoring, Probe, ProbeAnswer, Prober};
use crate::state::{self, RolloutState};
use crate::transport::ApiFailure;

/// Whether a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide only (`canary plan`): no write, no smoke tests.
    Plan,
    /// Decide and write (`canary reconcile`).
    Apply,
}

/// Why a pass could not do its work for one rollout. Kept as a value, with the API
/// failure behind it, until a reader renders it (its `Display`) or counts it ([`kind`]).
///
/// [`kind`]: PassError::kind
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PassError {
    #[error("cannot read the clock: {0}")]
    Clock(ApiFailure),
    #[error("cannot list services in {project}/{region}: {failure}")]
    List { project: String, region: String, failure: Box<ApiFailure> },
    #[error("services in {project}/{region} were not listed")]
    NotListed { project: String, region: String },
    #[error("the write failed: {0}")]
    Write(ApiFailure),
    #[error("conflict, then could not read the service again: {0}")]
    Reread(ApiFailure),
    #[error("the service kept changing under this pass (3 etag conflicts); the next pass tries again")]
    KeptChanging,
    /// The write was accepted but what reads back is not what was written: `key` is the
    /// first `canary/` annotation that differs.
    #[error(
        "the service changed after this pass wrote it (another writer?): {key} reads back otherwise; the next pass decides again"
    )]
    NotLanded { key: String },
    #[error("the service disappeared right after the write")]
    Vanished,
    #[error("wrote, but could not read the service back: {0}")]
    ReadBack(ApiFailure),
}

/// What kind of trouble a [`PassError`] is, for `canary_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The clock could not be read.
    Clock,
    /// A write was refused, conflicted, or did not land.
    Write,
    /// Any other API call failed.
    Api,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Clock => "clock",
            ErrorKind::Write => "write",
            ErrorKind::Api => "api",
        }
    }
}

impl PassError {
    /// The failed call behind it, when there was one.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            PassError::Clock(f) | PassError::Write(f) | PassError::Reread(f) | PassError::ReadBack(f) => Some(f),
            PassError::List { failure, .. } => Some(failure),
            PassError::NotListed { .. }
            | PassError::KeptChanging
            | PassError::NotLanded { .. }
            | PassError::Vanished => None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            PassError::Clock(_) => ErrorKind::Clock,
            PassError::Write(_) | PassError::Reread(_) | PassError::KeptChanging | PassError::NotLanded { .. } => {
                ErrorKind::Write
            }
            PassError::List { .. } | PassError::NotListed { .. } | PassError::Vanished | PassError::ReadBack(_) => {
                ErrorKind::Api
            }
        }
    }
}

/// What a pass did for one rollout.
#[derive(Debug, Clone)]
pub struct RolloutOutcome {
    pub name: String,
    pub plan: Option<Plan>,
    pub(crate) verdict: Verdict,
    /// The service as last read (after the write, when there was one).
    pub service: Option<ServiceView>,
    pub error: Option<PassError>,
    pub now: SystemTime,
}

impl RolloutOutcome {
    /// The error, as people and JSON read it.
    pub fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(ToString::to_string)
    }
}

/// Runs one pass over `rollouts`.
pub async fn pass<P: CloudRun + Monitoring + Clock + Prober>(
    platform: &P,
    rollouts: &[CanaryRollout],
    mode: Mode,
) -> Vec<RolloutOutcome> {
    pass_with_invalid(platform, rollouts, &[], mode).await
}

/// A manifest that is invalid now: which rollout and service it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub name: String,
    pub project: String,
    pub region: String,
    pub service: String,
}

/// The manifests that do not validate now, for rollouts that no valid manifest names
/// (and that `mine` takes): a pass holds those under way at their traffic
/// ([`pass_with_invalid`]).
pub fn invalid_edits(set: &ManifestSet, rollouts: &[CanaryRollout], mine: impl Fn(&str) -> bool) -> Vec<Invalid> {
    set.manifests
        .iter()
        .filter(|m| m.rollout.is_none())
        .filter_map(|m| {
            let name = m.name.clone()?;
            let (project, region, service) = m.target.clone()?;
            let taken =
                rollouts.iter().any(|r| r.metadata.name == name) || set.valid().any(|r| r.metadata.name == name);
            (!taken && mine(&name)).then_some(Invalid { name, project, region, service })
        })
        .collect()
}

/// One of N disjoint parts of the manifest set (`--shard I/N`): the rollouts whose
/// FNV-1a name hash is I mod N, so N reconcilers give each rollout one writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// `I/N`, with 0 <= I < N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, like 0/3");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    pub fn owns(self, name: &str) -> bool {
        crate::hash::fnv1a(name) % self.count == self.index
    }
}

/// Runs one pass over `rollouts`, and holds the rollouts whose manifests are `invalid`
/// (an edit that does not validate) at their current traffic, protected by the rollback
/// triggers of the last valid manifest they were applied with.
pub async fn pass_with_invalid<P: CloudRun + Monitoring + Clock + Prober>(
    platform: &P,
    rollouts: &[CanaryRollout],
    invalid: &[Invalid],
    mode: Mode,
) -> Vec<RolloutOutcome> {
    pass_reporting(platform, rollouts, invalid, mode, &|_| {}).await
}

/// [`pass_with_invalid`], handing each rollout's outcome to `report` as soon as it is
/// known, so a caller (`canary watch`) need not wait for the slowest rollout of the pass.
pub(crate) async fn pass_reporting<P: CloudRun + Monitoring + Clock + Prober, F: Fn(&RolloutOutcome) + Sync>(
    platform: &P,
    rollouts: &[CanaryRollout],
    invalid: &[Invalid],
    mode: Mode,
    report: &F,
) -> Vec<RolloutOutcome> {
    // Observe: one list per project/region, whatever the number of rollouts — valid
    // ones and invalid edits alike.
    let keys: std::collections::BTreeSet<(&String, &String)> = rollouts
        .iter()
        .map(|r| (&r.spec.project, &r.spec.region))
        .chain(invalid.iter().map(|i| (&i.project, &i.region)))
        .collect();
    // A few lists at a time: one's answer is read while the server works on the next.
    let listed: Listed = futures_util::stream::iter(keys)
        .map(|(project, region)| async move {
            // Each service read into its view as it comes: the pass holds views, never
            // a JSON tree per service.
            let services = platform.list_services(project, region).await.map(|list| {
                list.into_iter()
                    .map(ServiceView::read)
                    .filter(|view| !view.name.is_empty())
                    .map(|view| (view.name.clone(), view))
                    .collect::<BTreeMap<_, _>>()
            });
            ((project.clone(), region.clone()), services)
        })
        .buffer_unordered(LIST_CONCURRENCY)
        .collect()
        .await;
    // The last valid manifest of each invalid one whose rollout is under way, held.
    let mut frozen: Vec<(CanaryRollout, String)> = Vec::new();
    for i in invalid {
        let Some(Ok(services)) = listed.get(&(i.project.clone(), i.region.clone())) else { continue };
        let name = format!("projects/{}/locations/{}/services/{}", i.project, i.region, i.service);
        let Some(view) = services.get(&name) else { continue };
        let state = RolloutState::read(&view.annotations);
        if state.owner.as_deref() != Some(i.name.as_str()) || !state.phase.is_some_and(crate::state::Phase::in_progress)
        {
            continue;
        }
        let Some(text) = state.applied else { continue };
        let Ok(applied) = serde_json::from_str::<CanaryRollout>(&text) else { continue };
        frozen.push((applied, text));
    }
    let all: Vec<CanaryRollout> = rollouts.iter().cloned().chain(frozen.iter().map(|(r, _)| r.clone())).collect();
    let originals: Vec<Option<String>> =
        std::iter::repeat_n(None, rollouts.len()).chain(frozen.iter().map(|(_, t)| Some(t.clone()))).collect();
    run_pass(platform, &all, &originals, listed, mode, report).await
}

/// Every service of each project/region, by full name, or why it could not be listed.
type Listed = BTreeMap<(String, String), Result<BTreeMap<String, ServiceView>, ApiFailure>>;

async fn run_pass<P: CloudRun + Monitoring + Clock + Prober, F: Fn(&RolloutOutcome) + Sync>(
    platform: &P,
    rollouts: &[CanaryRollout],
    originals: &[Option<String>],
    mut listed: Listed,
    mode: Mode,
    report: &F,
) -> Vec<RolloutOutcome> {
    // "Now" after listing: against Google it is the time Cloud Run's answer carried.
    let now = match platform.now().await {
        Ok(now) => now,
        Err(e) => {
            let outcomes: Vec<RolloutOutcome> =
                rollouts.iter().map(|r| failed(r, PassError::Clock(e.clone()), SystemTime::UNIX_EPOCH)).collect();
            outcomes.iter().for_each(report);
            return outcomes;
        }
    };
    // Observed state per rollout, from the lists. A service is moved out of its list,
    // not copied, unless another rollout names it too (a conflict decide reports).
    let mut named: BTreeMap<String, usize> = BTreeMap::new();
    for r in rollouts {
        *named.entry(service_name(r)).or_default() += 1;
    }
    let observed: Vec<Result<Observed, PassError>> = rollouts
        .iter()
        .map(|r| {
            let key = (r.spec.project.clone(), r.spec.region.clone());
            let name = service_name(r);
            let last = named.get_mut(&name).is_some_and(|left| {
                *left -= 1;
                *left == 0
            });
            match listed.get_mut(&key) {
                Some(Err(e)) => Err(PassError::List { project: key.0, region: key.1, failure: Box::new(e.clone()) }),
                Some(Ok(services)) => {
                    let view = if last { services.remove(&name) } else { services.get(&name).cloned() };
                    Ok(view.map_or(Observed::Missing, |view| Observed::Service(Box::new(view))))
                }
                None => Err(PassError::NotListed { project: key.0, region: key.1 }),
            }
        })
        .collect();
    // Judge: metrics only where a decision needs them, a few aligned queries per project
    // (the newest minutes, 10-minute periods, hours: `observations::ReadPlan`).
    let mut needed: BTreeMap<&str, Needed> = BTreeMap::new();
    type Job = (usize, Result<Observed, PassError>, Option<Arc<Result<Read, String>>>);
    let mut waiting: BTreeMap<&str, Vec<Job>> = BTreeMap::new();
    let mut ready: Vec<Job> = Vec::new();
    for (i, (r, o)) in rollouts.iter().zip(observed).enumerate() {
        if let Ok(observed) = &o
            && let Some(window) = metrics_window(r, observed, now)
        {
            let n = needed.entry(r.spec.project.as_str()).or_insert_with(|| Needed {
                start: now,
                latency: false,
                minutes: Duration::ZERO,
                windows: Vec::new(),
            });
            n.start = n.start.min(judge::window_start(r, &window, now));
            n.latency |= judge::needs_latency(r);
            let shared =
                matches!(observed, Observed::Service(s) if s.state().pause == Some(state::Pause::SharedIncident));
            n.minutes = n.minutes.max(judge::minutes_needed(r, shared));
            n.windows.push((r, window));
            waiting.entry(r.spec.project.as_str()).or_default().push((i, o, None));
        } else {
            ready.push((i, o, None));
        }
    }
    // Decide and act: each rollout on its own, a bounded number at a time, so a slow
    // one never holds up the others for longer than its own calls take. A rollout that
    // needs no metrics goes at once; the others as soon as their project's metrics are
    // read, while the next projects are still being read.
    let (read_tx, read_rx) = tokio::sync::mpsc::unbounded_channel::<(&str, Result<Read, String>)>();
    let reads = futures_util::stream::iter(needed)
        .map(|(project, n)| async move { (project, read_project(platform, project, n, now).await) })
        .buffer_unordered(LIST_CONCURRENCY)
        .for_each(move |read| {
            // The receiver outlives the reads (both are joined below).
            let _ = read_tx.send(read);
            std::future::ready(())
        });
    let read_jobs = futures_util::stream::unfold((read_rx, waiting), |(mut rx, mut waiting)| async move {
        let (project, read) = rx.recv().await?;
        let read = Arc::new(read);
        let jobs = waiting.remove(project).unwrap_or_default();
        let jobs: Vec<Job> = jobs.into_iter().map(|(i, o, _)| (i, o, Some(read.clone()))).collect();
        Some((futures_util::stream::iter(jobs), (rx, waiting)))
    })
    .flatten();
    let decide = futures_util::stream::iter(ready)
        .chain(read_jobs)
        .map(|(i, o, read)| async move {
            let r = &rollouts[i];
            let frozen = originals.get(i).and_then(Option::as_deref);
            let outcome = match o {
                Err(e) => failed(r, e, now),
                Ok(o) => one(platform, r, o, read.as_deref(), frozen, mode, now).await,
            };
            report(&outcome);
            (i, outcome)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<(usize, RolloutOutcome)>>();
    let ((), mut outcomes) = futures_util::future::join(reads, decide).await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// What the rollouts of one project need read: from when, latency or not, how many of
/// the newest minutes one by one, and each rollout's window (for its hour anchors).
struct Needed<'a> {
    start: SystemTime,
    latency: bool,
    minutes: Duration,
    windows: Vec<(&'a CanaryRollout, Window)>,
}

/// One project's metrics as a pass read them: the newest minutes and 10-minute periods,
/// the hour sums from each anchor, and the plan they were read by.
pub(crate) struct Read {
    recent: Observations,
    /// Older 10-minute periods (request counts), read for stable's variation alone.
    variation: Observations,
    sums: HourSums,
    plan: ReadPlan,
}

impl Read {
    /// One revision's periods as `window`'s judgement reads them.
    fn periods(&self, rollout: &CanaryRollout, window: &Window, revision: &str) -> BTreeMap<u64, Minute> {
        let anchors = judge::hour_anchors(rollout, window);
        observations::periods(self.recent.get(revision), self.sums.get(revision), &anchors, self.plan.hours_until)
    }
}

/// Reads one project's metrics: a handful of aligned queries, whatever the number of
/// rollouts and hours (`ReadPlan`).
async fn read_project<P: Monitoring>(
    platform: &P,
    project: &str,
    n: Needed<'_>,
    now: SystemTime,
) -> Result<Read, String> {
    let (plan, anchors) = ReadPlan::at(now, n.minutes).for_anchors(|plan| {
        n.windows.iter().flat_map(|(r, w)| judge::hour_anchors(r, &Window { plan, ..w.clone() })).collect()
    });
    let hours = plan.hour_queries(&anchors, n.latency);
    let recent = plan.recent_queries(n.start, now, n.latency);
    let variation = plan.variation_query();
    let all: Vec<&Vec<(String, String)>> = hours.iter().map(|(_, q)| q).chain(&recent).chain(&variation).collect();
    let is_latency = |q: &[(String, String)]| q.iter().any(|(_, v)| v.contains("request_latencies"));
    // Each answer folded page by page straight into the periods of its group — each
    // anchor's sum, the hours one by one, the recent periods, the older 10-minute counts
    // — so a pass holds those periods once, never an answer's as well. A few queries at
    // once, so one's answer is read while the server works on the next.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Group {
        Hours(Option<u64>),
        Recent,
        Variation,
    }
    let group = |i: usize| match hours.get(i) {
        Some((anchor, _)) => Group::Hours(*anchor),
        None if i >= hours.len() + recent.len() => Group::Variation,
        None => Group::Recent,
    };
    let groups: std::sync::Mutex<BTreeMap<Group, Observations>> = std::sync::Mutex::default();
    let folded: Vec<Result<(), String>> = futures_util::stream::iter(all.iter().enumerate().map(|(i, q)| {
        let groups = &groups;
        async move {
            let latency = is_latency(q);
            let mut fold = |s: TimeSeries| {
                let mut groups = groups.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                observations::add_series(groups.entry(group(i)).or_default(), &s, latency);
            };
            platform.time_series_each(project, q, &mut fold).await.map_err(|e| e.to_string())
        }
    }))
    .buffered(QUERY_CONCURRENCY)
    .collect()
    .await;
    folded.into_iter().collect::<Result<(), String>>()?;
    let (mut fine, mut older) = (Observations::new(), Observations::new());
    let (mut sums, mut anchored) = (HourSums::new(), Vec::new());
    for (group, read) in groups.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        match group {
            Group::Hours(Some(anchor)) => anchored.push((anchor, read)),
            Group::Hours(None) => sums = observations::sum_hours(&read, &anchors, plan.hours_until),
            Group::Recent => fine = read,
            Group::Variation => older = read,
        }
    }
    if !anchored.is_empty() {
        sums = observations::sums_of(anchored);
    }
    Ok(Read { recent: fine, variation: older, sums, plan })
}

/// The revisions and minutes to judge, when the rollout has traffic to judge.
fn metrics_window(r: &CanaryRollout, observed: &Observed, now: SystemTime) -> Option<Window> {
    let Observed::Service(s) = observed else { return None };
    if !decide::needs(r, observed).metrics {
        return None;
    }
    let state = s.state();
    let stage = state.stage.clamp(1, r.spec.stages.len().max(1));
    Some(Window {
        canary: observations::key(&r.spec.region, state.canary.as_deref().unwrap_or_default()),
        stable: observations::key(&r.spec.region, state.stable.as_deref().unwrap_or_default()),
        stage_started: state.stage_started.unwrap_or(now),
        previous_stage_started: state.previous_stage_started,
        weight: r.spec.stages.get(stage - 1).map_or(100, |s| s.weight),
        plan: ReadPlan::every_minute(),
    })
}

/// How many rollouts a pass works on at once.
pub(crate) const CONCURRENCY: usize = 16;
/// How many lists (services of a project/region, a project's metrics) a pass reads at once.
const LIST_CONCURRENCY: usize = 4;
/// How many of a project's Monitoring queries a pass has under way at once (each holds
/// a page of up to 100,000 points while it is read).
const QUERY_CONCURRENCY: usize = 2;

fn service_name(r: &CanaryRollout) -> String {
    format!("projects/{}/locations/{}/services/{}", r.spec.project, r.spec.region, r.spec.service)
}

fn failed(r: &CanaryRollout, error: PassError, now: SystemTime) -> RolloutOutcome {
    RolloutOutcome {
        name: r.metadata.name.clone(),
        plan: None,
        verdict: Verdict::default(),
        service: None,
        error: Some(error),
        now,
    }
}

/// Judges, decides, and (in Apply mode) writes for one rollout.
async fn one<P: CloudRun + Prober>(
    platform: &P,
    r: &CanaryRollout,
    mut observed: Observed,
    metrics: Option<&Result<Read, String>>,
    frozen: Option<&str>,
    mode: Mode,
    now: SystemTime,
) -> RolloutOutcome {
    for _attempt in 0..3 {
        let verdict = judge_now(platform, r, &observed, metrics, mode, now).await;
        let plan = match frozen {
            Some(text) => decide::decide_frozen(r, text, &observed, &verdict, now),
            None => decide::decide(r, &observed, &verdict, now),
        };
        let writes = mode == Mode::Apply && plan.change.is_some();
        let (true, Observed::Service(service), Some(change)) = (writes, &observed, &plan.change) else {
            let service = match observed {
                Observed::Service(service) => Some(*service),
                _ => None,
            };
            return RolloutOutcome {
                name: r.metadata.name.clone(),
                plan: Some(plan),
                verdict,
                service,
                error: None,
                now,
            };
        };
        let body = change.apply(&service.value());
        match platform.patch_service(&body).await {
            Ok(()) => {
                // Write, then verify: read back and check our state landed.
                let after = platform.get_service(&service.name).await;
                let (service, error) = match after {
                    Ok(Some(raw)) => {
                        let view = ServiceView::parse(raw);
                        // Every `canary/` annotation as written, not just the phase: a stage
                        // advance stays Progressing, so a phase check alone would take a
                        // write that never landed for one that did.
                        let error = first_difference(&view.annotations, &change.annotations)
                            .map(|key| PassError::NotLanded { key });
                        (Some(view), error)
                    }
                    Ok(None) => (None, Some(PassError::Vanished)),
                    Err(e) => (Some((**service).clone()), Some(PassError::ReadBack(e))),
                };
                return RolloutOutcome {
                    name: r.metadata.name.clone(),
                    plan: Some(plan),
                    verdict,
                    service,
                    error,
                    now,
                };
            }
            Err(e) if e.is_conflict() => match platform.get_service(&service.name).await {
                Ok(Some(raw)) => observed = Observed::Service(Box::new(ServiceView::parse(raw))),
                Ok(None) => observed = Observed::Missing,
                Err(e) => {
                    return outcome_error(r, plan, verdict, PassError::Reread(e), now);
                }
            },
            Err(e) => return outcome_error(r, plan, verdict, PassError::Write(e), now),
        }
    }
    RolloutOutcome {
        name: r.metadata.name.clone(),
        plan: None,
        verdict: Verdict::default(),
        service: None,
        error: Some(PassError::KeptChanging),
        now,
    }
}

/// The first `canary/` annotation (in key order) that `read` does not hold as `written`.
fn first_difference(read: &BTreeMap<String, String>, written: &BTreeMap<String, String>) -> Option<String> {
    let ours = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter().filter(|(k, _)| k.starts_with(state::PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    let (read, written) = (ours(read), ours(written));
    read.keys().chain(written.keys()).filter(|k| read.get(*k) != written.get(*k)).min().cloned()
}

fn outcome_error(r: &CanaryRollout, plan: Plan, verdict: Verdict, error: PassError, now: SystemTime) -> RolloutOutcome {
    // The plan was not carried out: report the phase as it stands.
    let mut plan = plan;
    plan.phase_after = plan.phase_before.unwrap_or(plan.phase_after);
    plan.traffic_after = plan.traffic_before.clone();
    plan.change = None;
    RolloutOutcome { name: r.metadata.name.clone(), plan: Some(plan), verdict, service: None, error: Some(error), now }
}

/// Smoke tests and metrics, when the decision needs them.
async fn judge_now<P: Prober>(
    platform: &P,
    r: &CanaryRollout,
    observed: &Observed,
    metrics: Option<&Result<Read, String>>,
    mode: Mode,
    now: SystemTime,
) -> Verdict {
    let needs = decide::needs(r, observed);
    let mut verdict = Verdict::default();
    if let (Mode::Apply, Some(uri)) = (mode, &needs.smoke_uri) {
        verdict.smoke = Some(smoke(platform, r, uri, observed).await);
    }
    if let Some(window) = metrics_window(r, observed, now) {
        match metrics {
            Some(Ok(read)) => {
                let window = Window { plan: read.plan, ..window };
                let stable = read.periods(r, &window, &window.stable);
                let canary = read.periods(r, &window, &window.canary);
                let variation = read.variation.get(&window.stable).cloned().unwrap_or_default();
                let (triggers, gates) = judge::judge(r, &window, &canary, &stable, &variation);
                verdict.triggers = triggers;
                verdict.gates = gates;
                if let Observed::Service(service) = observed {
                    let state = service.state();
                    if let (Some(state::Pause::SharedIncident), Some(since)) = (state.pause, state.paused_at) {
                        verdict.stable_recovered = Some(judge::stable_recovered(r, &stable, since));
                    }
                }
            }
            Some(Err(e)) => verdict.metrics_error = Some(e.clone()),
            // Needed now but not read at the start of the pass (the service changed
            // under it): nothing advances on data that was not read.
            None => verdict.metrics_error = Some("metrics were not read in this pass".to_owned()),
        }
    }
    verdict
}

/// Runs the smoke tests in order against the canary's tag URL; the first failure
/// decides, quoting the request and the answer.
async fn smoke<P: Prober>(platform: &P, r: &CanaryRollout, uri: &str, observed: &Observed) -> Smoke {
    let audience = match (r.spec.smoke_auth, observed) {
        (SmokeAuth::IdToken, Observed::Service(s)) => s.uri.clone(),
        _ => None,
    };
    for test in &r.spec.smoke_tests {
        let probe = Probe {
            method: test.method.as_str().to_owned(),
            url: format!("{}{}", uri.trim_end_matches('/'), test.path),
            headers: test.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            json: test.json.clone(),
            timeout: test.timeout.as_std(),
            id_token_audience: audience.clone(),
        };
        let request = format!("{} {}", probe.method, test.path);
        match platform.probe(&probe).await {
            ProbeAnswer::Status(status, body) => {
                let ok = match test.expect_status {
                    Some(expected) => status == expected,
                    None => (200..300).contains(&status),
                };
                if !ok {
                    let expected = test.expect_status.map_or("a 2xx".to_owned(), |s| s.to_string());
                    let body = if body.is_empty() { String::new() } else { format!(": {body}") };
                    return Smoke::Failed(format!("{request} answered {status}, expected {expected}{body}"));
                }
            }
            ProbeAnswer::NoAnswer(why) => return Smoke::Failed(format!("{request}: {why}")),
        }
    }
    Smoke::Passed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_canary_annotation_read_back_otherwise_is_named() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let written = map(&[("canary/phase", "Progressing"), ("canary/stage", "2")]);
        let same = map(&[("canary/phase", "Progressing"), ("canary/stage", "2"), ("team", "core")]);
        assert_eq!(first_difference(&same, &written), None, "other annotations are not canary's");
        let behind = map(&[("canary/phase", "Progressing"), ("canary/stage", "1")]);
        assert_eq!(first_difference(&behind, &written).as_deref(), Some("canary/stage"));
        let extra = map(&[("canary/phase", "Progressing"), ("canary/request", "abort"), ("canary/stage", "2")]);
        assert_eq!(first_difference(&extra, &written).as_deref(), Some("canary/request"));
        assert_eq!(first_difference(&map(&[]), &written).as_deref(), Some("canary/phase"));
    }
}
