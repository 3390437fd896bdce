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

use std::fmt::Write as _;
use std::time::Instant;

use canary_core::analysis::distribution::Distribution;
use canary_core::analysis::judge::{self, Evidence, Totals, Window};
use canary_core::analysis::observations::Minute;
use canary_core::analysis::stats;
use canary_core::analysis::verdict::Outcome;
use canary_core::manifest::types::CanaryRollout;
use canary_emulator::profile::Behaviour;
use canary_emulator::traffic::{LatencyShapes, draw_counts, minute_rng};

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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Healthy,
    /// 1.5% errors: a point above stable's 0.5%, twice the 0.5-point margin.
    Marginal,
    Errors,
    Slow,
    Degrading,
    NoTraffic,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Healthy => "healthy (0.5% errors, stable's latency)",
            Class::Marginal => "1.5% errors (margin 0.5 points)",
            Class::Errors => "10% errors",
            Class::Slow => "p95 3 s",
            Class::Degrading => "10% errors after 20 min",
            Class::NoTraffic => "no traffic",
        }
    }

    fn bad(self) -> bool {
        matches!(self, Class::Marginal | Class::Errors | Class::Slow | Class::Degrading)
    }

    /// When the first bad minute starts, seconds after serving starts.
    fn bad_from(self) -> Option<u64> {
        match self {
            Class::Marginal | Class::Errors | Class::Slow => Some(0),
            Class::Degrading => Some(DEGRADE_AFTER),
            _ => None,
        }
    }

    fn canary(self, since_serving: u64) -> Behaviour {
        match self {
            Class::Errors => Behaviour { error_rate: 0.10, ..STABLE },
            Class::Marginal => Behaviour { error_rate: 0.015, ..STABLE },
            Class::Slow => Behaviour { p50_ms: 600.0, p95_ms: 3000.0, ..STABLE },
            Class::Degrading if since_serving >= DEGRADE_AFTER => Behaviour { error_rate: 0.10, ..STABLE },
            _ => STABLE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Policy {
    Sequential,
    Naive,
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
    Naive { canary: Vec<(u64, Minute)>, stable: Totals, reference: Option<Totals> },
}

struct Sim<'a> {
    rollout: &'a CanaryRollout,
    class: Class,
    rps: f64,
    seed: u64,
    shapes: LatencyShapes,
}

impl Sim<'_> {
    fn minute(&mut self, who: &str, behaviour: &Behaviour, expected: f64, start: u64) -> Minute {
        if expected <= 0.0 {
            return Minute::default();
        }
        let mut rng = minute_rng(self.seed, who, start, 1);
        let counts = draw_counts(&mut rng, expected, behaviour);
        let total = counts.total();
        let latency = (total > 0).then(|| {
            let mut rng = minute_rng(self.seed, who, start, 2);
            // The product reads the emulator's histogram as it would off the wire.
            let drawn = self.shapes.draw(&mut rng, total, behaviour).to_wire();
            Distribution::from_wire(&drawn).expect("the emulator writes distributions canary reads")
        });
        Minute { total, server_errors: counts.server_errors, latency }
    }

    fn run(&mut self, policy: Policy) -> End {
        let stages = self.rollout.spec.stages.clone();
        let analysis = self.rollout.spec.analysis.clone();
        let warmup = analysis.warmup.as_secs();
        let mut stage = 0;
        let mut stage_start = T0;
        let mut previous_start = None;
        let mut judge = self.new_judge(policy, stage_start, previous_start, stages[0].weight, None);
        let mut next_minute = T0;
        let mut now = T0;
        loop {
            now += 60;
            let weight = f64::from(stages[stage].weight) / 100.0;
            // Publish every minute Cloud Monitoring would have by now.
            while next_minute + 60 + PUBLISH_DELAY <= now {
                let start = next_minute;
                next_minute += 60;
                let canary_behaviour = self.class.canary(start - T0);
                let c = self.minute("canary", &canary_behaviour, self.rps * 60.0 * weight, start);
                let s = self.minute("stable", &STABLE, self.rps * 60.0 * (1.0 - weight), start);
                let end = start + 60;
                match &mut judge {
                    Judge::Sequential(e) => e.push(end, &c, Some(&s)),
                    Judge::Naive { canary, stable, .. } => {
                        if end >= stage_start + warmup + 60 && c.total > 0 {
                            stable.add(&s);
                        }
                        canary.push((end, c));
                    }
                }
            }
            // Decide, as `decide` does.
            let hold = stages[stage].hold.as_ref().map_or(0, |h| h.as_secs());
            let elapsed = now - stage_start;
            let verdict = match &judge {
                Judge::Sequential(e) => sequential(e, elapsed >= hold),
                Judge::Naive { canary, stable, reference } => {
                    naive(self.rollout, canary, reference.as_ref().unwrap_or(stable), stage_start, elapsed >= hold)
                }
            };
            match verdict {
                Verdict::RollBack => return End::RolledBack(now - T0),
                Verdict::Hold => {}
                Verdict::Inconclusive => {
                    if elapsed - hold > analysis.max_wait.as_secs() {
                        return End::Paused;
                    }
                }
                Verdict::Advance => {
                    if stage + 1 >= stages.len() {
                        return End::Promoted;
                    }
                    let carried = match &judge {
                        Judge::Sequential(e) => e.stable_totals().clone(),
                        Judge::Naive { stable, .. } => stable.clone(),
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
        reference: Option<Totals>,
    ) -> Judge {
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        match policy {
            Policy::Sequential => {
                let window = Window {
                    canary: "canary".into(),
                    stable: "stable".into(),
                    stage_started: at(start),
                    previous_stage_started: previous.map(at),
                    weight,
                };
                let mut e = Evidence::new(self.rollout, &window);
                if let Some(r) = reference {
                    e.set_reference(r);
                }
                Judge::Sequential(e)
            }
            Policy::Naive => Judge::Naive { canary: Vec::new(), stable: Totals::default(), reference },
        }
    }
}

enum Verdict {
    RollBack,
    Hold,
    Inconclusive,
    Advance,
}

fn sequential(e: &Evidence, hold_over: bool) -> Verdict {
    if e.fired_trigger().is_some() {
        return Verdict::RollBack;
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
    /// Seconds from the first bad minute being published to the rollback.
    detection: Vec<u64>,
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
                            rps,
                            seed: seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                            shapes: LatencyShapes::default(),
                        };
                        let end = sim.run(policy);
                        tally.runs += 1;
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
        all.detection.extend(t.detection);
    }
    all.detection.sort_unstable();
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
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rollouts" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--out" => out = args.next(),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            other => {
                eprintln!(
                    "judge_eval: unknown argument {other}; usage: judge_eval [--rollouts N] [--out FILE] [--seed S]"
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
        "| canary | rps | policy | rollouts | rolled back | promoted | paused | detection median | detection p99 |"
    );
    let _ = writeln!(table, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    let scenarios: Vec<(Class, f64)> = [Class::Healthy, Class::Marginal, Class::Errors, Class::Slow, Class::Degrading]
        .iter()
        .flat_map(|c| [2.0, 20.0, 200.0].map(|r| (*c, r)))
        .chain([(Class::NoTraffic, 0.0)])
        .collect();
    let mut healthy_false = (0, 0);
    for (class, rps) in scenarios {
        for policy in [Policy::Sequential, Policy::Naive] {
            let t = evaluate(&rollout, class, rps, policy, runs, seed);
            if class == Class::Healthy && policy == Policy::Sequential {
                healthy_false.0 += t.rolled_back;
                healthy_false.1 += t.runs;
            }
            let minutes = |q| quantile(&t.detection, q).map_or("-".to_owned(), |m| format!("{m:.1} min"));
            let (rolled, promoted) = if class.bad() {
                (percent(t.rolled_back, t.runs), format!("**{}**", percent(t.promoted, t.runs)))
            } else {
                (format!("**{}**", percent(t.rolled_back, t.runs)), percent(t.promoted, t.runs))
            };
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                class.label(),
                rps,
                if policy == Policy::Sequential { "canary" } else { "naive" },
                t.runs,
                rolled,
                promoted,
                percent(t.paused, t.runs),
                minutes(0.5),
                minutes(0.99),
            );
        }
        eprintln!("judge_eval: {} at {rps} rps done ({:.0?})", class.label(), began.elapsed());
    }
    // One-sided 95%: the two-sided interval at 90%.
    let (_, hi) = stats::clopper_pearson(healthy_false.0 as u64, healthy_false.1 as u64, 0.10);
    let alpha = judge::check_alpha(&rollout) / 2.0;
    let mut notes = String::new();
    let _ = writeln!(
        notes,
        "\nHealthy rollouts with traffic rolled back by canary: {} of {} (one-sided 95% upper bound {:.3}%; budget {:.1}%).",
        healthy_false.0,
        healthy_false.1,
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
