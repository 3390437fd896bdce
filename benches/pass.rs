//! `make bench`: one `canary reconcile --once` pass (the release binary) over 1,000 and
//! 10,000 rollouts spread over 10 project/regions, against the HTTP emulator: wall time,
//! CPU per rollout, peak RSS, and the API calls each pass makes (from the emulator's
//! request log) — for a pass that deploys every rollout, and for an idle pass.
//! `CANARY_BENCH_SIZES=10000` (comma-separated) runs only the sizes named.
//!
//! Each size runs `CANARY_BENCH_RUNS` times (default 3) on a fresh emulator; the line
//! printed per pass is the median run by wall time (machines here are shared and noisy),
//! with the fastest and slowest beside it. `CANARY_BENCH_BIN=/path/to/canary` measures
//! another build of canary against the same emulator (to compare two builds).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod common;

use common::{canary, own_cpu_seconds};

use canary_emulator::Emulator;
use canary_emulator::clock::VirtualClock;
use canary_emulator::traffic::Load;
use canary_emulator::world::{ServiceName, WorldConfig};
use serde_json::json;

/// The emulator here runs with the allocator `canary emulator` has (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `CANARY_BENCH_SIZES=10000 cargo bench --bench pass` runs only the sizes named.
    let sizes: Vec<usize> = match std::env::var("CANARY_BENCH_SIZES") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1, 100, 1_000, 10_000],
    };
    let runs: usize = std::env::var("CANARY_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    for n in sizes {
        let mut all: Vec<Vec<Measured>> = (0..runs).map(|_| run(n)).collect();
        for pass in 0..all[0].len() {
            let mut these: Vec<Measured> = all.iter_mut().map(|r| r[pass].clone()).collect();
            these.sort_by(|a, b| a.wall.total_cmp(&b.wall));
            let (fastest, slowest) = (these[0].wall, these[these.len() - 1].wall);
            let m = &these[these.len() / 2];
            println!(
                "{n:>6} rollouts, {:<12} wall {:>6.2} s ({fastest:.2}–{slowest:.2}) | CPU {:>5.0} µs/rollout (emulator {:>4.0}) | peak RSS {:>6.1} MB | API calls {:>6} ({} GET of which {} timeSeries, {} PATCH)",
                m.label,
                m.wall,
                m.cpu * 1e6 / n as f64,
                m.emulator_cpu * 1e6 / n as f64,
                m.rss_mb,
                m.calls,
                m.gets,
                m.series,
                m.patches,
            );
        }
    }
}

/// One pass, as measured.
#[derive(Debug, Clone)]
struct Measured {
    label: &'static str,
    wall: f64,
    /// User + system CPU seconds of the `canary` process.
    cpu: f64,
    /// CPU seconds of this process (the emulator serving the pass) meanwhile.
    emulator_cpu: f64,
    rss_mb: f64,
    calls: usize,
    gets: usize,
    series: usize,
    patches: usize,
}

fn run(n: usize) -> Vec<Measured> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (emulator, addr) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = WorldConfig { seed: 2, base_url: format!("http://{addr}"), ..WorldConfig::default() };
        let emulator = Arc::new(Emulator::new(
            config,
            VirtualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000), 0.0),
        ));
        let served = emulator.clone();
        tokio::spawn(async move { axum::serve(listener, canary_emulator::http::router(served)).await });
        (emulator, addr)
    });
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let (project, region) = (format!("bench-project-{}", i % 5), ["us-central1", "europe-west4"][i / 5 % 2]);
        let name = ServiceName::parse(&format!("projects/{project}/locations/{region}/services/svc-{i:05}")).unwrap();
        emulator
            .with_world(|w, now| {
                w.seed_service(&name, json!({"template": {"containers": [{"image": "gcr.io/b/app:v1"}]}}), now)
            })
            .unwrap();
        emulator.set_load(&name.full(), Load { rps: 5.0, daily: false }).unwrap();
        let manifest = format!(
            "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: svc-{i:05}}}\nspec:\n  project: {project}\n  region: {region}\n  service: svc-{i:05}\n  adopt: true\n  template: {{image: \"gcr.io/b/app:v2\"}}\n  stages: [{{weight: 5, hold: 1h}}, {{weight: 100}}]\n  analysis:\n    promotion: {{minRequests: 100}}\n    rollback: [{{metric: errorRate, above: 5%}}]\n"
        );
        std::fs::write(dir.path().join(format!("svc-{i:05}.yaml")), manifest).unwrap();
    }
    let pass = |label: &'static str| {
        emulator.clear_requests();
        let emulator_cpu = own_cpu_seconds();
        let run = canary(&addr.to_string(), &["reconcile", "--once", "-o", "json"], dir.path());
        let emulator_cpu = own_cpu_seconds() - emulator_cpu;
        let requests = emulator.requests();
        let count = |m: &str| requests.iter().filter(|r| r["method"] == m).count();
        Measured {
            label,
            wall: run.wall,
            cpu: run.cpu,
            emulator_cpu,
            rss_mb: run.rss_mb,
            calls: requests.len(),
            gets: count("GET"),
            series: requests.iter().filter(|r| r["path"].as_str().unwrap_or_default().contains("timeSeries")).count(),
            patches: count("PATCH"),
        }
    };
    let deploy = pass("deploy pass");
    emulator.advance(Duration::from_secs(15));
    let to_five = pass("to 5% pass");
    emulator.advance(Duration::from_secs(600));
    let idle = pass("idle pass");
    drop(runtime);
    vec![deploy, to_five, idle]
}
