//! `make bench`: one `canary reconcile --once` pass (the release binary) over 1,000 and
//! 10,000 rollouts spread over 10 project/regions, against the HTTP emulator: wall time,
//! CPU per rollout, peak RSS, and the API calls each pass makes (from the emulator's
//! request log) — for a pass that deploys every rollout, and for an idle pass.
//! `CANARY_BENCH_SIZES=10000` (comma-separated) runs only the sizes named.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use canary::emulator::Emulator;
use canary::emulator::clock::Clock;
use canary::emulator::traffic::Load;
use canary::emulator::world::{ServiceName, WorldConfig};
use serde_json::json;

fn main() {
    // `CANARY_BENCH_SIZES=10000 cargo bench --bench pass` runs only the sizes named.
    let sizes: Vec<usize> = match std::env::var("CANARY_BENCH_SIZES") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1, 100, 1_000, 10_000],
    };
    for n in sizes {
        run(n);
    }
}

fn run(n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (emulator, addr) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = WorldConfig { seed: 2, base_url: format!("http://{addr}"), ..WorldConfig::default() };
        let emulator = Arc::new(Emulator::new(
            config,
            Clock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000), 0.0),
        ));
        let served = emulator.clone();
        tokio::spawn(async move { axum::serve(listener, canary::emulator::http::router(served)).await });
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
    let pass = |label: &str| {
        emulator.clear_requests();
        let start = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%e %U %S %M", env!("CARGO_BIN_EXE_canary"), "reconcile", "--once", "-o", "json"])
            .arg(dir.path())
            .env("CLOUD_RUN_EMULATOR_HOST", addr.to_string())
            .output()
            .unwrap();
        let wall = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stats: Vec<f64> =
            stderr.lines().last().unwrap_or_default().split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let (user, sys, rss_kb) = (
            stats.get(1).copied().unwrap_or(0.0),
            stats.get(2).copied().unwrap_or(0.0),
            stats.get(3).copied().unwrap_or(0.0),
        );
        let requests = emulator.requests();
        let count = |m: &str| requests.iter().filter(|r| r["method"] == m).count();
        let series = requests.iter().filter(|r| r["path"].as_str().unwrap_or_default().contains("timeSeries")).count();
        println!(
            "{n:>6} rollouts, {label:<14} wall {:>7.2} s | CPU {:>6.1} µs/rollout | peak RSS {:>6.1} MB | API calls {:>6} ({} GET of which {} timeSeries, {} PATCH)",
            wall.as_secs_f64(),
            (user + sys) * 1e6 / n as f64,
            rss_kb / 1024.0,
            requests.len(),
            count("GET"),
            series,
            count("PATCH"),
        );
    };
    pass("deploy pass");
    emulator.advance(Duration::from_secs(15));
    pass("to 5% pass");
    emulator.advance(Duration::from_secs(600));
    pass("idle pass");
    drop(runtime);
}
