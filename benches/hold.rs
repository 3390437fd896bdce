//! `make bench`: one `canary reconcile --once` pass deep in a long hold, the issue's
//! operator setting: rollouts at 20 rps each, in stage 2 of 3 (50%, hold 24h), gates on
//! error rate and p95, triggers on error rate and p95 `for: 5m`, against the HTTP
//! emulator in this process. For each size, a pass at hour 1 and at hour 23 of the hold:
//! wall time, canary's CPU and peak RSS, the emulator's CPU and peak RSS during the
//! pass, Monitoring calls per project, and the points and bytes of Monitoring answers per
//! rollout (from the emulator's request log).
//!
//! Then, at up to 1,000 rollouts (`CANARY_BENCH_WATCH=1` for more, `0` for none), `canary
//! watch` over them for three minutes with the emulator's clock moving at real speed:
//! its CPU and RSS.
//!
//! `CANARY_BENCH_SIZES` (comma-separated, default `1000,10000`) and
//! `CANARY_BENCH_HOURS` (default `1,23`) choose what runs; `CANARY_BENCH_STAGGER=1`
//! starts the rollouts' stage 2 in six 10-minute periods (more anchors than a pass sums
//! one by one); `CANARY_BENCH_BIN` measures
//! another build of canary (to compare two builds); `CANARY_BENCH_PERF=DIR` records each
//! timed pass machine-wide with `perf record` (canary and the emulator alike) into
//! `DIR/pass-N-hH.data`, for `perf report`.
//!
//! Before each timed pass the emulator is asked once for the hours, recent 10-minute
//! periods and minutes so far (what Cloud Monitoring has stored by then), so the pass measures
//! reading them, not the emulator drawing hours of simulated traffic for the first time.

mod common;

use common::{canary, own_cpu_seconds, own_peak_rss_mb, reset_own_peak_rss, signal, usage, wait_ready, watch};

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use canary_emulator::clock::VirtualClock;
use canary_emulator::traffic::Load;
use canary_emulator::world::{ServiceName, WorldConfig};
use canary_emulator::{Emulator, monitoring};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROJECTS: usize = 5;

fn main() {
    let list = |var: &str, default: &str| -> Vec<u64> {
        std::env::var(var)
            .unwrap_or_else(|_| default.to_owned())
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect()
    };
    let sizes = list("CANARY_BENCH_SIZES", "1000,10000");
    let hours = list("CANARY_BENCH_HOURS", "1,23");
    // `CANARY_BENCH_STAGGER=1`: the rollouts' stages start in six 10-minute periods.
    let staggered = std::env::var("CANARY_BENCH_STAGGER").is_ok_and(|v| v == "1");
    for n in sizes {
        run(n as usize, &hours, staggered);
    }
}

fn run(n: usize, hours: &[u64], staggered: bool) {
    // A worker per core, as `canary emulator` serves (Cloud Monitoring answers a
    // project's concurrent queries concurrently): with one, the server's answers were
    // written out one at a time and the pass waited on them.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (emulator, addr) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = WorldConfig { seed: 3, base_url: format!("http://{addr}"), ..WorldConfig::default() };
        let emulator = Arc::new(Emulator::new(
            config,
            VirtualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_046_400), 0.0),
        ));
        let served = emulator.clone();
        tokio::spawn(async move { axum::serve(listener, canary_emulator::http::router(served)).await });
        (emulator, addr.to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let (project, region) =
            (format!("hold-project-{}", i % PROJECTS), ["us-central1", "europe-west4"][i / PROJECTS % 2]);
        let name = ServiceName::parse(&format!("projects/{project}/locations/{region}/services/svc-{i:05}")).unwrap();
        emulator
            .with_world(|w, now| {
                w.seed_service(&name, json!({"template": {"containers": [{"image": "gcr.io/b/app:v1"}]}}), now)
            })
            .unwrap();
        emulator.set_load(&name.full(), Load { rps: 20.0, daily: false }).unwrap();
        let manifest = format!(
            "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: svc-{i:05}}}\nspec:\n  project: {project}\n  region: {region}\n  service: svc-{i:05}\n  adopt: true\n  template: {{image: \"gcr.io/b/app:v2\"}}\n  stages: [{{weight: 5, hold: 10m}}, {{weight: 50, hold: 24h}}, {{weight: 100, hold: 1h}}]\n  analysis:\n    interval: 1m\n    warmup: 2m\n    maxWait: 2h\n    promotion: {{maxErrorRateIncrease: 1%, maxP95Increase: 25%, minRequests: 100}}\n    rollback:\n      - {{metric: errorRate, above: 5%, for: 5m}}\n      - {{metric: p95Latency, above: 2s, for: 5m}}\n"
        );
        std::fs::write(dir.path().join(format!("svc-{i:05}.yaml")), manifest).unwrap();
    }
    // The services have served for six hours before the rollout begins, as a service in
    // production has (a pass reads some of stable's history for its variation).
    emulator.advance(Duration::from_secs(6 * 3600));
    // Into stage 2: deploy, 5% once Ready, then 50% after stage 1's hold (and the
    // minutes Cloud Monitoring withholds), repeated for any still waiting on data.
    let once = ["reconcile", "--once", "-o", "json"];
    canary(&addr, &once, dir.path());
    emulator.advance(Duration::from_secs(15));
    canary(&addr, &once, dir.path());
    emulator.advance(Duration::from_secs(14 * 60));
    let mut started = emulator.now();
    let first_started = started;
    // Staggered: a sixth of the rollouts (`--shard`) enters stage 2 in each of six
    // 10-minute periods, as rollouts started at different times do, so a project's pass
    // has more anchors than it reads one sum each for and reads the older minutes in
    // 10-minute periods.
    if staggered {
        for shard in 0..6 {
            let only = format!("{shard}/6");
            canary(&addr, &["reconcile", "--once", "-o", "json", "--shard", &only], dir.path());
            emulator.advance(Duration::from_secs(600));
        }
    }
    for _ in 0..6 {
        started = emulator.now();
        canary(&addr, &once, dir.path());
        let status: Value =
            serde_json::from_str(&canary(&addr, &["status", "-o", "json", "-f"], dir.path()).stdout).unwrap();
        let at_stage_2 = status.as_array().unwrap().iter().filter(|s| s["stage"] == 2).count();
        if at_stage_2 == n {
            break;
        }
        emulator.advance(Duration::from_secs(300));
    }
    for &hour in hours {
        let at = started + Duration::from_secs(hour * 3600);
        let now = emulator.now();
        if at > now {
            emulator.advance(at.duration_since(now).unwrap());
        }
        warm(&emulator, n, (first_started, started), staggered);
        emulator.clear_requests();
        reset_own_peak_rss();
        let emulator_cpu = own_cpu_seconds();
        let profile = profile(n, hour);
        let run = canary(&addr, &once, dir.path());
        let emulator_cpu = own_cpu_seconds() - emulator_cpu;
        if let Some(perf) = profile {
            signal(&perf, "INT");
            perf.wait_with_output().unwrap();
        }
        let emulator_rss = own_peak_rss_mb();
        let requests = emulator.requests();
        let series: Vec<&Value> =
            requests.iter().filter(|r| r["path"].as_str().unwrap_or_default().contains("timeSeries")).collect();
        let sum = |key: &str| series.iter().map(|r| r[key].as_u64().unwrap_or(0)).sum::<u64>();
        let patches = requests.iter().filter(|r| r["method"] == "PATCH").count();
        let how = if staggered { ", staggered" } else { "" };
        println!(
            "{n:>6} rollouts{how}, hour {hour:>2}: wall {:>6.2} s | canary CPU {:>6.2} s, peak RSS {:>7.1} MB | emulator CPU {:>6.2} s, peak RSS {:>7.1} MB | Monitoring calls/project {:>4.1} | per rollout {:>6.0} points, {:>8.0} bytes | {} PATCH",
            run.wall,
            run.cpu,
            run.rss_mb,
            emulator_cpu,
            emulator_rss,
            series.len() as f64 / PROJECTS as f64,
            sum("points") as f64 / n as f64,
            sum("bytes") as f64 / n as f64,
            patches,
        );
    }
    // `watch` over the same rollouts, deep in the hold: its passes every analysis interval
    // (1m) read the same few periods a pass above does. The emulator's clock stands still,
    // so every pass judges the same moment (the emulator answers from what it keeps).
    if std::env::var("CANARY_BENCH_WATCH").map_or(n <= 1000, |v| v == "1") {
        let (mut child, base) = watch(dir.path(), &addr, &[]);
        wait_ready(&base);
        let window = Duration::from_secs(180);
        let (cpu0, _, _) = usage(child.id());
        // The clock moves as a real one does (a second a second), so each pass has new
        // minutes to read and, every 10 minutes and hour, new periods.
        let moving = std::sync::atomic::AtomicBool::new(true);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while moving.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    emulator.advance(Duration::from_secs(1));
                }
            });
            std::thread::sleep(window);
            moving.store(false, std::sync::atomic::Ordering::Relaxed);
        });
        let (cpu1, rss, peak) = usage(child.id());
        signal(&child, "TERM");
        let _ = child.wait();
        println!(
            "{n:>6} rollouts, watch from hour {}: CPU {:.2}% of a core over {} s (a pass a minute, the clock moving) | RSS {rss:.1} MB (peak {peak:.1} MB) (targets < 2%, < 150 MB)",
            hours.last().copied().unwrap_or(0),
            (cpu1 - cpu0) / window.as_secs_f64() * 100.0,
            window.as_secs(),
        );
    }
    drop(runtime);
}

/// Asks the emulator once for every published hour of every revision, and the 10-minute
/// periods of the last hours and the last minutes, so the simulated traffic so far is drawn (and kept, as
/// Cloud Monitoring has it stored) before a pass is timed.
fn warm(emulator: &Emulator, n: usize, (first_started, stage_started): (SystemTime, SystemTime), staggered: bool) {
    // Hour-aligned, so each period is one whole hour the emulator keeps.
    let secs = emulator.now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let end = SystemTime::UNIX_EPOCH + Duration::from_secs(secs / 3600 * 3600);
    let start = end - Duration::from_secs(26 * 3600);
    let rfc = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    // And the 10-minute periods of the last seven hours, and the last minutes.
    let tens_end = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.saturating_sub(300) / 600 * 600);
    let minutes_end = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.saturating_sub(180) / 60 * 60);
    let mut reads = vec![
        (start, end, "3600s".to_owned()),
        // (From the first stage start, when rollouts started theirs at different times:
        // a project with many anchors reads its older minutes in 10-minute periods.)
        (
            if staggered {
                first_started - Duration::from_secs(1200)
            } else {
                tens_end - Duration::from_secs(7 * 3600)
            },
            tens_end,
            "600s".to_owned(),
        ),
        (minutes_end - Duration::from_secs(40 * 60), minutes_end, "60s".to_owned()),
    ];
    // And a sum to the hour from each 10-minute boundary around the stages' starts, where
    // a pass's anchors lie: the 10-minute periods a sum off the hour starts with stay
    // kept while passes ask for them, however old.
    let secs_of = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() / 600 * 600;
    let (first, started) = (secs_of(first_started), secs_of(stage_started));
    for anchor in (first.saturating_sub(600)..=started + 1200).step_by(600) {
        let anchor = SystemTime::UNIX_EPOCH + Duration::from_secs(anchor);
        if let Some(span) = end.duration_since(anchor).ok().map(|s| s.as_secs()).filter(|s| *s >= 60) {
            reads.push((anchor, end, format!("{span}s")));
        }
    }
    for project in 0..PROJECTS.min(n) {
        for metric in ["run.googleapis.com/request_count", "run.googleapis.com/request_latencies"] {
            for (from, to, period) in &reads {
                let params = vec![
                    ("filter".to_owned(), format!("metric.type=\"{metric}\"")),
                    ("interval.startTime".to_owned(), rfc(*from)),
                    ("interval.endTime".to_owned(), rfc(*to)),
                    ("aggregation.alignmentPeriod".to_owned(), period.clone()),
                    ("aggregation.perSeriesAligner".to_owned(), "ALIGN_DELTA".to_owned()),
                    ("pageSize".to_owned(), "100000".to_owned()),
                ];
                let query = monitoring::Query::parse(&params).unwrap();
                emulator
                    .with_world(|w, now| monitoring::list(w, &format!("hold-project-{project}"), &query, now))
                    .unwrap();
            }
        }
    }
}

/// `perf record` over the whole machine while the timed pass at `hour` of `n` rollouts
/// runs, when `CANARY_BENCH_PERF` names a directory.
fn profile(n: usize, hour: u64) -> Option<std::process::Child> {
    let dir = std::env::var("CANARY_BENCH_PERF").ok()?;
    let out = format!("{dir}/pass-{n}-h{hour}.data");
    let child = std::process::Command::new("perf")
        .args(["record", "-a", "-F", "199", "--call-graph", "dwarf,16384", "-o", &out])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("CANARY_BENCH_PERF needs `perf` on PATH");
    // perf takes a moment to start recording; a pass is seconds long.
    std::thread::sleep(Duration::from_millis(500));
    Some(child)
}
