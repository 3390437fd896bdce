//! `make judge-eval`: thousands of simulated rollouts per class of canary, judged by
//! canary's sequential method and by the naive policy a runbook applies (raw
//! thresholds on whatever data there is), on the same traffic. Prints a Markdown table
//! (and writes it to `--out FILE`).
//!
//! The traffic is the emulator's model (Poisson request counts, binomial errors,
//! log-normal latencies in Cloud Monitoring's buckets, each minute seeded), published
//! with Cloud Monitoring's delay; the judge is canary's own [`Evidence`]; the stage
//! rules are `decide`'s (triggers at any time, a conclusive gate failure at any time,
//! advance after the hold when every gate passes, pause after `maxWait` without
//! enough data). The manifest is DESIGN.md's: 5/25/50/100% held 1h/6h/24h/1h.
//!
//! Usage: judge_eval [--rollouts N] [--out FILE] [--seed S]

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant, UNIX_EPOCH};

use canary_core::analysis::distribution::Distribution;
use canary_core::analysis::judge::{self, Blame, Dispersion, Evidence, Method, Totals, Window};
use canary_core::analysis::observations::{History, Minute, ReadPlan};
use canary_core::analysis::stats;
use canary_core::analysis::verdict::Outcome;
use canary_core::manifest::types::CanaryRollout;
use canary_emulator::conditions::{Conditions, MinuteContext};
use canary_emulator::profile::Behaviour;
use canary_emulator::traffic::{LatencyShapes, daily_factor, minute_rng};

/// The allocator the binary and the benches run with (see src/main.rs), so the time it
/// reports is comparable.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MANIFEST: &str = r#"
apiVersion: canary/v1alpha1
kind: CanaryRollout
metadata: {name: ion-api}
spec:
  project: p
  region: r
  service: ion-api
  template: {image: "example.com/ion-api@sha256:0000000000000000000000000000000000000000000000000000000000000000"}
  stages:
    - {weight: 5, hold: 1h}
    - {weight: 25, hold: 6h}
    - {weight: 50, hold: 24h}
    - {weight: 100, hold: 1h}
  analysis:
    interval: 1m
    warmup: 2m
    maxWait: 6h
    promotion: {maxErrorRateIncrease: 0.5%, maxP95Increase: 10%, minRequests: 1000}
    rollback:
      - {metric: errorRate, above: 5%}
      - {metric: p95Latency, above: 2s, for: 5m}
      - {metric: availability, below: 99%, for: 15m}
    onGateFailure: rollback
"#;

/// Cloud Monitoring publishes a minute this long after it ends.
const PUBLISH_DELAY: u64 = 180;
/// Serving starts here (2026-11-19, 00:00 UTC): an aligned minute.
const T0: u64 = 1_795_046_400;
/// A bad canary turns bad this long after it first serves, in the degrading class.
const DEGRADE_AFTER: u64 = 20 * 60;

const STABLE: Behaviour =
    Behaviour { error_rate: 0.005, client_error_rate: 0.01, p50_ms: 120.0, p95_ms: 450.0, health_status: 200 };

/// When the shared incidents start, after serving starts (mid-way through stage 1's hour).
const INCIDENT_AFTER: u64 = 30 * 60;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Healthy,
    /// Both revisions at 12% errors for 20 minutes.
    SharedErrors,
    /// Both revisions at p95 3 s for 20 minutes.
    SharedLatency,
    /// Per-minute 5xx counts with 3× the binomial standard deviation, both revisions.
    Variation,
    /// p95 3 s for the 2 minutes after each traffic increase.
    ColdStart,
    /// Load on the daily curve, both revisions' error rate doubled at its peaks.
    Daily,
    /// 1.5% errors: a point above stable's 0.5%, twice the 0.5-point margin.
    Marginal,
    Errors,
    Slow,
    Degrading,
    /// Canary at 30% errors from the start of a shared incident that puts stable at 12%.
    BadInIncident,
    NoTraffic,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Healthy => "healthy (0.5% errors, stable's latency)",
            Class::SharedErrors => "healthy, shared incident: both 12% errors for 20 min",
            Class::SharedLatency => "healthy, shared incident: both p95 3 s for 20 min",
            Class::Variation => "healthy, per-minute sd 3× binomial",
            Class::ColdStart => "healthy, cold starts (p95 3 s for 2 min after each step)",
            Class::Daily => "healthy, daily curve, errors ×2 at the peaks",
            Class::Marginal => "1.5% errors (margin 0.5 points)",
            Class::Errors => "10% errors",
            Class::Slow => "p95 3 s",
            Class::Degrading => "10% errors after 20 min",
            Class::BadInIncident => "30% errors in a shared incident (stable 12%)",
            Class::NoTraffic => "no traffic",
        }
    }

    const ALL: [Class; 12] = [
        Class::Healthy,
        Class::SharedErrors,
        Class::SharedLatency,
        Class::Variation,
        Class::ColdStart,
        Class::Daily,
        Class::Marginal,
        Class::Errors,
        Class::Slow,
        Class::Degrading,
        Class::BadInIncident,
        Class::NoTraffic,
    ];

    /// The name `--classes` takes.
    fn id(self) -> &'static str {
        match self {
            Class::Healthy => "healthy",
            Class::SharedErrors => "shared-errors",
            Class::SharedLatency => "shared-latency",
            Class::Variation => "variation",
            Class::ColdStart => "cold-start",
            Class::Daily => "daily",
            Class::Marginal => "marginal",
            Class::Errors => "errors",
            Class::Slow => "slow",
            Class::Degrading => "degrading",
            Class::BadInIncident => "bad-in-incident",
            Class::NoTraffic => "no-traffic",
        }
    }

    fn bad(self) -> bool {
        matches!(self, Class::Marginal | Class::Errors | Class::Slow | Class::Degrading | Class::BadInIncident)
    }

    /// When the first bad minute starts, seconds after serving starts.
    fn bad_from(self) -> Option<u64> {
        match self {
            Class::Marginal | Class::Errors | Class::Slow => Some(0),
            Class::Degrading => Some(DEGRADE_AFTER),
            Class::BadInIncident => Some(INCIDENT_AFTER),
            _ => None,
        }
    }

    /// The canary's own behaviour (before the service's conditions).
    fn canary(self, since_serving: u64) -> Behaviour {
        match self {
            Class::Errors => Behaviour { error_rate: 0.10, ..STABLE },
            Class::Marginal => Behaviour { error_rate: 0.015, ..STABLE },
            Class::Slow => Behaviour { p50_ms: 600.0, p95_ms: 3000.0, ..STABLE },
            Class::Degrading if since_serving >= DEGRADE_AFTER => Behaviour { error_rate: 0.10, ..STABLE },
            // 1 − (1 − 0.2045)(1 − 0.12) = 30% with the incident on top.
            Class::BadInIncident if since_serving >= INCIDENT_AFTER => Behaviour { error_rate: 0.2045, ..STABLE },
            _ => STABLE,
        }
    }

    /// What the service's revisions share, as the emulator's conditions.
    fn conditions(self) -> Conditions {
        let text = match self {
            Class::SharedErrors | Class::BadInIncident => {
                r#"{"incidents": [{"after": "30m", "lasts": "20m", "errorRate": 0.12}]}"#
            }
            Class::SharedLatency => r#"{"incidents": [{"after": "30m", "lasts": "20m", "p95Ms": 3000}]}"#,
            Class::Variation => r#"{"variation": {"dispersion": 3}}"#,
            Class::ColdStart => r#"{"coldStart": {"p95Ms": 3000, "minutes": 2}}"#,
            Class::Daily => r#"{"underLoad": {"errorRateAtPeak": 2}}"#,
            _ => "{}",
        };
        serde_json::from_str(text).expect("the classes' conditions parse")
    }

    fn daily(self) -> bool {
        self == Class::Daily
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    /// canary's judgement, each pass reading what `reconcile` reads (a `ReadPlan`: the
    /// newest minutes, 10-minute periods, hour sums from the rollout's anchors).
    Robust,
    /// The same judgement on every minute of the stage, as passes read before the
    /// read plan.
    EveryMinute,
    /// canary's judgement before this change: binomial evidence, every trigger the canary's.
    Binomial,
    Naive,
}

impl Policy {
    const ALL: [Policy; 4] = [Policy::Robust, Policy::EveryMinute, Policy::Binomial, Policy::Naive];

    /// The name `--policies` takes.
    fn id(self) -> &'static str {
        match self {
            Policy::Robust => "canary",
            Policy::EveryMinute => "every-minute",
            Policy::Binomial => "before",
            Policy::Naive => "naive",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Policy::Robust => "canary",
            Policy::EveryMinute => "canary, every minute",
            Policy::Binomial => "canary before",
            Policy::Naive => "naive",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum End {
    Promoted,
    /// When (seconds since serving started).
    RolledBack(u64),
    Paused,
}

/// One stage's judgement state under either policy.
#[allow(clippy::large_enum_variant)] // one per simulated rollout: size does not matter
enum Judge {
    Sequential(Evidence),
    /// Judged afresh each pass from what it reads of the two revisions' histories.
    Read(Window),
    Naive {
        canary: Vec<(u64, Minute)>,
        stable: Totals,
        reference: Option<Totals>,
    },
}

/// Stable's minutes before a stage that `reconcile` reads with it (the longest trigger
/// window and ten minutes), for the dispersion estimate.
const PRIMED_MINUTES: usize = 25;
/// How long stable serves alone before the rollout, as the passes reading by plan see
/// it: a production service has served for hours, and a pass reads hours of its older
/// counts for its variation (`observations::VARIATION_HOURS`).
const SERVED_BEFORE: u64 = 8 * 3600;

struct Sim<'a> {
    rollout: &'a CanaryRollout,
    class: Class,
    conditions: Conditions,
    rps: f64,
    seed: u64,
    shapes: LatencyShapes,
    /// Stable's newest published minutes, newest last.
    history: VecDeque<(u64, Minute)>,
    /// Every published minute of each revision, as a pass reads them.
    canary_read: History,
    stable_read: History,
}

impl Sim<'_> {
    fn minute(&mut self, who: &str, own: &Behaviour, share: f64, start: u64, increased: Option<u64>) -> Minute {
        let load = if self.class.daily() { daily_factor(UNIX_EPOCH + Duration::from_secs(start)) } else { 1.0 };
        let expected = self.rps * 60.0 * share * load;
        if expected <= 0.0 {
            return Minute::default();
        }
        let context = MinuteContext {
            since_set: start as i64 - T0 as i64,
            load,
            since_increase: increased.map(|t| start as i64 - t as i64),
        };
        let behaviour = self.conditions.behaviour(*own, context);
        let mut rng = minute_rng(self.seed, who, start, 1);
        let counts = self.conditions.draw_counts(&mut rng, expected, self.rps * 60.0 * load, &behaviour);
        let total = counts.total();
        let latency = (total > 0).then(|| {
            let mut rng = minute_rng(self.seed, who, start, 2);
            // The product reads the emulator's histogram as it would off the wire.
            let drawn = self.shapes.draw(&mut rng, total, &behaviour).to_wire();
            Distribution::from_wire(&drawn).expect("the emulator writes distributions canary reads")
        });
        Minute::new(total, counts.server_errors, latency)
    }

    /// Stable alone serving before the rollout: the minutes a first stage is primed with,
    /// and (for a judge reading by plan) the hours before, which a pass reads too.
    fn before_serving(&mut self, policy: Policy) {
        let minutes = if policy == Policy::Robust { SERVED_BEFORE / 60 } else { PRIMED_MINUTES as u64 };
        for i in (1..=minutes).rev() {
            let start = T0 - 60 * i;
            let m = self.minute("stable", &STABLE, 1.0, start, None);
            if policy == Policy::Robust {
                self.stable_read.push(start + 60, m.clone());
                self.canary_read.push(start + 60, Minute::default());
            }
            if i <= PRIMED_MINUTES as u64 {
                self.history.push_back((start + 60, m));
            }
        }
    }

    /// How the rollout ended, its shared incidents, and when the canary's traffic first
    /// went to 0% (a rollback or a shared-incident pause), seconds after serving started.
    fn run(&mut self, policy: Policy) -> (End, u32, Option<u64>) {
        let stages = self.rollout.spec.stages.clone();
        let analysis = self.rollout.spec.analysis.clone();
        let warmup = analysis.warmup.as_secs();
        self.before_serving(policy);
        let mut stage = 0;
        let mut stage_start = T0;
        let mut previous_start = None;
        let mut judge = self.new_judge(policy, stage_start, previous_start, stages[0].weight, None);
        let mut next_minute = T0;
        let mut now = T0;
        // Shared incidents so far, and when the current one paused the rollout.
        let mut incidents = 0;
        let mut paused_since: Option<u64> = None;
        let mut stable_minutes: BTreeMap<u64, Minute> = BTreeMap::new();
        let mut off: Option<u64> = None;
        loop {
            now += 60;
            let weight = if paused_since.is_some() { 0.0 } else { f64::from(stages[stage].weight) / 100.0 };
            // Publish every minute Cloud Monitoring would have by now.
            while next_minute + 60 + PUBLISH_DELAY <= now {
                let start = next_minute;
                next_minute += 60;
                // The canary's share went up when its stage (or its restart) began.
                let canary_behaviour = self.class.canary(start - T0);
                let c = self.minute("canary", &canary_behaviour, weight, start, Some(stage_start));
                let s = self.minute("stable", &STABLE, 1.0 - weight, start, None);
                let end = start + 60;
                if policy == Policy::Robust {
                    self.canary_read.push(end, c.clone());
                    self.stable_read.push(end, s.clone());
                }
                self.history.push_back((end, s.clone()));
                while self.history.len() > PRIMED_MINUTES {
                    self.history.pop_front();
                }
                if paused_since.is_some() {
                    stable_minutes.insert(end, s);
                    continue;
                }
                match &mut judge {
                    Judge::Sequential(e) => e.push(end, &c, Some(&s)),
                    Judge::Read(_) => {}
                    Judge::Naive { canary, stable, .. } => {
                        if end >= stage_start + warmup + 60 && c.total > 0 {
                            stable.add(&s);
                        }
                        canary.push((end, c));
                    }
                }
            }
            if let Some(since) = paused_since {
                // Paused by a shared incident: the stage starts again, with a fresh hold,
                // once stable has been within every trigger for `incidentRecovery`.
                if judge::stable_recovered(self.rollout, &stable_minutes, UNIX_EPOCH + Duration::from_secs(since)) {
                    paused_since = None;
                    stable_minutes.clear();
                    stage_start = now;
                    next_minute = now;
                    judge = self.new_judge(policy, stage_start, previous_start, stages[stage].weight, None);
                } else if now - since > 24 * 3600 {
                    return (End::Paused, incidents, off);
                }
                continue;
            }
            // Decide, as `decide` does.
            let hold = stages[stage].hold.as_ref().map_or(0, |h| h.as_secs());
            let elapsed = now - stage_start;
            let read = match &judge {
                Judge::Read(window) => Some(self.as_read(window, now)),
                _ => None,
            };
            let verdict = match (&judge, &read) {
                (_, Some(e)) | (Judge::Sequential(e), _) => sequential(e, elapsed >= hold),
                (Judge::Naive { canary, stable, reference }, _) => {
                    naive(self.rollout, canary, reference.as_ref().unwrap_or(stable), stage_start, elapsed >= hold)
                }
                (Judge::Read(_), None) => unreachable!("a read judge is read above"),
            };
            match verdict {
                Verdict::SharedIncident if incidents == 0 => {
                    incidents += 1;
                    paused_since = Some(now);
                    off.get_or_insert(now - T0);
                }
                Verdict::SharedIncident | Verdict::RollBack => {
                    if std::env::var_os("JUDGE_EVAL_WHY").is_some()
                        && let Some(e) = read.as_ref().or(match &judge {
                            Judge::Sequential(e) => Some(e),
                            _ => None,
                        })
                    {
                        let failed: Vec<String> = e
                            .gates()
                            .iter()
                            .filter(|g| g.result == Outcome::Fail)
                            .map(|g| format!("{g:?}"))
                            .chain(e.blame().map(|(k, _)| k.name().to_owned()))
                            .collect();
                        eprintln!(
                            "why: {} {} {} stage {} after {} min, dispersion {:.2}: {failed:?}",
                            policy.label(),
                            self.class.id(),
                            self.rps,
                            stage + 1,
                            elapsed / 60,
                            e.dispersion_factor()
                        );
                    }
                    return (End::RolledBack(now - T0), incidents, Some(off.unwrap_or(now - T0)));
                }
                Verdict::Hold => {}
                Verdict::Inconclusive => {
                    if elapsed - hold > analysis.max_wait.as_secs() {
                        return (End::Paused, incidents, off);
                    }
                }
                Verdict::Advance => {
                    if stage + 1 >= stages.len() {
                        return (End::Promoted, incidents, off);
                    }
                    let carried = match &judge {
                        Judge::Sequential(e) => {
                            (e.stable_totals().clone(), e.stable_dispersion().clone(), e.gates_share())
                        }
                        _ => (stable_of(&judge), Default::default(), 1.0),
                    };
                    stage += 1;
                    previous_start = Some(stage_start);
                    stage_start = now;
                    next_minute = now;
                    let reference = (stages[stage].weight >= 100).then_some(carried);
                    judge = self.new_judge(policy, stage_start, previous_start, stages[stage].weight, reference);
                }
            }
        }
    }

    fn new_judge(
        &self,
        policy: Policy,
        start: u64,
        previous: Option<u64>,
        weight: u8,
        reference: Option<(Totals, Dispersion, f64)>,
    ) -> Judge {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let window = Window {
            canary: "canary".into(),
            stable: "stable".into(),
            stage_started: at(start),
            previous_stage_started: previous.map(at),
            weight,
            plan: ReadPlan::every_minute(),
        };
        let method = match policy {
            Policy::Robust => return Judge::Read(window),
            Policy::EveryMinute => Method::Robust,
            Policy::Binomial => Method::Binomial,
            Policy::Naive => {
                return Judge::Naive {
                    canary: Vec::new(),
                    stable: Totals::default(),
                    reference: reference.map(|r| r.0),
                };
            }
        };
        let mut e = Evidence::with_method(self.rollout, &window, method);
        if weight < 100 {
            for (end, m) in self.history.iter().filter(|(end, _)| *end <= start) {
                e.prime(*end, m);
            }
        }
        if let Some((totals, dispersion, share)) = reference {
            e.set_reference(totals, share);
            e.set_dispersion(dispersion);
        }
        Judge::Sequential(e)
    }
}

impl Sim<'_> {
    /// The evidence a pass at `now` has: what it reads of both histories by its plan.
    fn as_read(&self, window: &Window, now: u64) -> Evidence {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        // As `reconcile` plans for a project of this one rollout.
        let (plan, anchors) = ReadPlan::at(at(now), judge::minutes_needed(self.rollout, false))
            .for_anchors(|plan| judge::hour_anchors(self.rollout, &Window { plan, ..window.clone() }));
        let window = Window { plan, ..window.clone() };
        let canary = self.canary_read.read(&plan, &anchors);
        let stable = self.stable_read.read(&plan, &anchors);
        let variation = self.stable_read.variation(&plan);
        judge::evidence(self.rollout, &window, (&canary, &stable), &variation, Method::Robust)
    }
}

/// Stable's totals a naive judge carries to the stage at 100%.
fn stable_of(judge: &Judge) -> Totals {
    match judge {
        Judge::Naive { stable, .. } => stable.clone(),
        _ => Totals::default(),
    }
}

enum Verdict {
    RollBack,
    /// A trigger failed that stable fails too, the canary no worse: traffic back to
    /// stable, the image kept, the stage again once stable recovers.
    SharedIncident,
    Hold,
    Inconclusive,
    Advance,
}

fn sequential(e: &Evidence, hold_over: bool) -> Verdict {
    match e.blame() {
        Some((_, Blame::Shared)) => return Verdict::SharedIncident,
        Some((_, Blame::Canary)) => return Verdict::RollBack,
        None => {}
    }
    let gates = e.gates();
    if gates.iter().any(|g| g.result == Outcome::Fail) {
        return Verdict::RollBack;
    }
    if !hold_over {
        Verdict::Hold
    } else if gates.iter().any(|g| g.result == Outcome::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Advance
    }
}

/// What a runbook does: the manifest's thresholds applied to the raw numbers on the
/// dashboard — the newest minute, the last 5 or 15 minutes, the stage's totals.
fn naive(rollout: &CanaryRollout, canary: &[(u64, Minute)], stable: &Totals, start: u64, hold_over: bool) -> Verdict {
    let warm = start + rollout.spec.analysis.warmup.as_secs() + 60;
    let last = |n: usize, from: u64| {
        let mut t = Totals::default();
        canary.iter().rev().take(n).filter(|(end, _)| *end >= from).for_each(|(_, m)| t.add(m));
        t
    };
    let rate = |t: &Totals| (t.total > 0).then(|| t.server_errors as f64 / t.total as f64);
    let p95 = |t: &Totals| t.latency.as_ref().and_then(|d| d.percentile(0.95));
    if rate(&last(1, 0)).is_some_and(|r| r > 0.05)
        || p95(&last(5, warm)).is_some_and(|p| p > 2000.0)
        || rate(&last(15, 0)).is_some_and(|r| r > 0.01)
    {
        return Verdict::RollBack;
    }
    if !hold_over {
        return Verdict::Hold;
    }
    let mut c = Totals::default();
    canary.iter().filter(|(end, _)| *end >= warm).for_each(|(_, m)| c.add(m));
    if c.total < 1000 {
        return Verdict::Inconclusive;
    }
    let worse_errors = rate(&c).zip(rate(stable)).is_some_and(|(c, s)| c - s > 0.005);
    let slower = p95(&c).zip(p95(stable)).is_some_and(|(c, s)| c > s * 1.10);
    if worse_errors || slower { Verdict::RollBack } else { Verdict::Advance }
}

#[derive(Default)]
struct Tally {
    runs: usize,
    promoted: usize,
    rolled_back: usize,
    paused: usize,
    /// Rollouts paused at least once by a shared incident.
    shared_pauses: usize,
    /// Seconds from the first bad minute being published to the rollback.
    detection: Vec<u64>,
    /// Seconds from the first bad minute being published to the canary at 0%.
    traffic_off: Vec<u64>,
}

fn evaluate(rollout: &CanaryRollout, class: Class, rps: f64, policy: Policy, runs: usize, seed: u64) -> Tally {
    let threads = 2;
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for i in (t..runs).step_by(threads) {
                        let mut sim = Sim {
                            rollout,
                            class,
                            conditions: class.conditions(),
                            rps,
                            seed: seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                            shapes: LatencyShapes::default(),
                            history: VecDeque::new(),
                            canary_read: History::default(),
                            stable_read: History::default(),
                        };
                        let (end, incidents, off) = sim.run(policy);
                        if let (Some(bad), Some(off)) = (class.bad_from(), off)
                            && off >= bad
                        {
                            tally.traffic_off.push(off.saturating_sub(bad + 60 + PUBLISH_DELAY));
                        }
                        tally.runs += 1;
                        tally.shared_pauses += usize::from(incidents > 0);
                        match end {
                            End::Promoted => tally.promoted += 1,
                            End::Paused => tally.paused += 1,
                            End::RolledBack(at) => {
                                tally.rolled_back += 1;
                                if let Some(bad) = class.bad_from() {
                                    let published = bad + 60 + PUBLISH_DELAY;
                                    if at >= bad {
                                        tally.detection.push(at.saturating_sub(published));
                                    }
                                }
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut all = Tally::default();
    for t in tallies {
        all.runs += t.runs;
        all.promoted += t.promoted;
        all.rolled_back += t.rolled_back;
        all.paused += t.paused;
        all.shared_pauses += t.shared_pauses;
        all.detection.extend(t.detection);
        all.traffic_off.extend(t.traffic_off);
    }
    all.detection.sort_unstable();
    all.traffic_off.sort_unstable();
    all
}

fn quantile(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)] as f64 / 60.0)
}

fn percent(n: usize, of: usize) -> String {
    if of == 0 { "-".into() } else { format!("{:.1}%", 100.0 * n as f64 / of as f64) }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut runs, mut out, mut seed) = (1000usize, None, 2026u64);
    let mut rates = vec![2.0, 20.0, 200.0];
    let mut classes: Vec<Class> = Class::ALL.to_vec();
    let mut policies: Vec<Policy> = Policy::ALL.to_vec();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rollouts" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--out" => out = args.next(),
            "--rps" => {
                let wanted = args.next().unwrap_or_default();
                rates = wanted.split(',').filter_map(|r| r.parse().ok()).collect();
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--policies" => {
                let wanted = args.next().unwrap_or_default();
                policies = Policy::ALL.into_iter().filter(|p| wanted.split(',').any(|w| w == p.id())).collect();
            }
            "--classes" => {
                let wanted = args.next().unwrap_or_default();
                classes = Class::ALL.into_iter().filter(|c| wanted.split(',').any(|w| w == c.id())).collect();
            }
            other => {
                let ids: Vec<&str> = Class::ALL.iter().map(|c| c.id()).collect();
                eprintln!(
                    "judge_eval: unknown argument {other}; usage: judge_eval [--rollouts N] [--out FILE] [--seed S] \
                     [--rps 2,20,200] [--classes {}] [--policies {}]",
                    ids.join(","),
                    Policy::ALL.map(Policy::id).join(",")
                );
                std::process::exit(2);
            }
        }
    }
    let rollout: CanaryRollout = match serde_saphyr::from_str(MANIFEST) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("judge_eval: the built-in manifest does not parse: {e}");
            std::process::exit(1);
        }
    };
    let began = Instant::now();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| canary | rps | policy | rollouts | rolled back | promoted | paused | shared-incident pause | detection median | detection p99 | traffic off median |"
    );
    let _ = writeln!(table, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let scenarios: Vec<(Class, f64)> = classes
        .iter()
        .flat_map(|c| if *c == Class::NoTraffic { vec![(*c, 0.0)] } else { rates.iter().map(|r| (*c, *r)).collect() })
        .collect();
    // Healthy rollouts rolled back, per class and in all, under canary's judgement.
    let mut healthy_false: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (class, rps) in scenarios {
        for &policy in &policies {
            let t = evaluate(&rollout, class, rps, policy, runs, seed);
            if !class.bad() && class != Class::NoTraffic && policy == Policy::Robust {
                let entry = healthy_false.entry(class.label()).or_default();
                entry.0 += t.rolled_back;
                entry.1 += t.runs;
            }
            let minutes = |q| quantile(&t.detection, q).map_or("-".to_owned(), |m| format!("{m:.1} min"));
            let (rolled, promoted) = if class.bad() {
                (percent(t.rolled_back, t.runs), format!("**{}**", percent(t.promoted, t.runs)))
            } else {
                (format!("**{}**", percent(t.rolled_back, t.runs)), percent(t.promoted, t.runs))
            };
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                class.label(),
                rps,
                policy.label(),
                t.runs,
                rolled,
                promoted,
                percent(t.paused, t.runs),
                percent(t.shared_pauses, t.runs),
                minutes(0.5),
                minutes(0.99),
                quantile(&t.traffic_off, 0.5).map_or("-".to_owned(), |m| format!("{m:.1} min")),
            );
        }
        eprintln!("judge_eval: {} at {rps} rps done ({:.0?})", class.label(), began.elapsed());
    }
    let alpha = judge::check_alpha(&rollout) / 2.0;
    let mut notes = String::new();
    let _ = writeln!(notes);
    let mut all = (0, 0);
    for (label, (rolled, runs)) in &healthy_false {
        // One-sided 95%: the two-sided interval at 90%.
        let (_, hi) = stats::clopper_pearson(*rolled as u64, *runs as u64, 0.10);
        let _ = writeln!(
            notes,
            "- {label}: {rolled} of {runs} rolled back by canary (one-sided 95% upper bound {:.3}%).",
            hi * 100.0
        );
        all = (all.0 + rolled, all.1 + runs);
    }
    let (_, hi) = stats::clopper_pearson(all.0 as u64, all.1 as u64, 0.10);
    let _ = writeln!(
        notes,
        "\nEvery healthy class together: {} of {} rolled back by canary (one-sided 95% upper bound {:.3}%; budget {:.1}%).",
        all.0,
        all.1,
        hi * 100.0,
        judge::FALSE_ROLLBACK_BUDGET * 100.0
    );
    for rps in [2.0, 20.0, 200.0] {
        let per_minute = rps * 60.0 * 0.05;
        if let Some(n) = stats::requests_to_detect(0.10, 0.01, alpha) {
            let _ = writeln!(
                notes,
                "At {rps} rps the canary sees {per_minute:.0} requests a minute at 5%: telling 10% errors from the \
                 allowed 1% (stable's 0.5% + 0.5 points) at canary's error budget per check needs \
                 {n:.0} requests on average for any sequential test of the error gate (Wald), {:.1} min of data after the \
                 {}-minute warm-up.",
                n / per_minute,
                rollout.spec.analysis.warmup.as_secs() / 60
            );
        }
    }
    let _ = writeln!(
        notes,
        "Detection counts from the first bad minute's publication ({} s after it ends) to the pass that rolls back; \
         passes every minute. {} rollouts per row, seed {seed}, {:.0?} in all.",
        PUBLISH_DELAY,
        runs,
        began.elapsed()
    );
    let report = format!("{table}{notes}");
    print!("{report}");
    if let Some(path) = out
        && let Err(e) = std::fs::write(&path, &report)
    {
        eprintln!("judge_eval: cannot write {path}: {e}");
        std::process::exit(1);
    }
}
