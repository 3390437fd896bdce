//! `make bench`: `canary watch` (the release binary) against the HTTP emulator in this
//! process, on a real-time clock: a saved manifest to the first API write (median of
//! 15), an idle watch over 1,000 manifests (CPU and RSS over 20 s, two resyncs in it),
//! and SIGTERM to exit during a pass over 200 rollouts (median of 5).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod common;

use common::{signal, usage, wait_ready, watch};

use canary_emulator::Emulator;
use canary_emulator::clock::VirtualClock;
use canary_emulator::world::{ServiceName, WorldConfig};
use serde_json::json;

/// The emulator here runs with the allocator `canary emulator` has (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    save_to_write(&runtime);
    idle(&runtime);
    sigterm(&runtime);
}

/// An emulator serving `n` services `svc-00000…` running `gcr.io/b/app:v1`.
fn emulator(runtime: &tokio::runtime::Runtime, n: usize) -> (Arc<Emulator>, String) {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = WorldConfig { seed: 3, base_url: format!("http://{addr}"), ..WorldConfig::default() };
        let emulator = Arc::new(Emulator::new(
            config,
            VirtualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000), 1.0),
        ));
        for i in 0..n {
            let name = ServiceName::parse(&service(i)).unwrap();
            emulator
                .with_world(|w, now| {
                    w.seed_service(&name, json!({"template": {"containers": [{"image": "gcr.io/b/app:v1"}]}}), now)
                })
                .unwrap();
        }
        let served = emulator.clone();
        tokio::spawn(async move { axum::serve(listener, canary_emulator::http::router(served)).await });
        (emulator, addr.to_string())
    })
}

fn service(i: usize) -> String {
    format!("projects/bench-project/locations/us-central1/services/svc-{i:05}")
}

fn manifest(dir: &Path, i: usize, image: &str) {
    let text = format!(
        "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: svc-{i:05}}}\nspec:\n  project: bench-project\n  region: us-central1\n  service: svc-{i:05}\n  adopt: true\n  template: {{image: \"{image}\"}}\n  stages: [{{weight: 5, hold: 1h}}, {{weight: 100}}]\n  analysis:\n    promotion: {{minRequests: 100}}\n    rollback: [{{metric: errorRate, above: 5%}}]\n"
    );
    // Written aside and renamed in, as an editor saves.
    let temp = dir.join(format!(".svc-{i:05}.yaml.tmp"));
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, dir.join(format!("svc-{i:05}.yaml"))).unwrap();
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn save_to_write(runtime: &tokio::runtime::Runtime) {
    let n = 15;
    let (emulator, addr) = emulator(runtime, n + 10);
    let dir = tempfile::tempdir().unwrap();
    // Ten rollouts already managed, so each save joins a live watch, not an empty one.
    for i in n..n + 10 {
        manifest(dir.path(), i, "gcr.io/b/app:v1");
    }
    let (mut child, base) = watch(dir.path(), &addr, &[]);
    wait_ready(&base);
    let mut times = Vec::new();
    for i in 0..n {
        emulator.clear_requests();
        let target = format!("/v2/{}", service(i));
        let start = Instant::now();
        manifest(dir.path(), i, "gcr.io/b/app:v2");
        while !emulator.requests().iter().any(|r| r["method"] == "PATCH" && r["path"] == target.as_str()) {
            assert!(start.elapsed() < Duration::from_secs(10), "no write for {target}");
            std::thread::sleep(Duration::from_micros(500));
        }
        times.push(start.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "saved manifest → first API write: median {:.0} ms (min {:.0}, max {:.0}; {n} saves; target < 300 ms)",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().min().unwrap().as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3,
    );
}

fn idle(runtime: &tokio::runtime::Runtime) {
    let n = 1_000;
    let (_emulator, addr) = emulator(runtime, n);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        manifest(dir.path(), i, "gcr.io/b/app:v1");
    }
    let (mut child, base) = watch(dir.path(), &addr, &["--resync", "10s"]);
    let start = Instant::now();
    wait_ready(&base);
    let first_pass = start.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let window = Duration::from_secs(20);
    let (cpu0, _, _) = usage(child.id());
    std::thread::sleep(window);
    let (cpu1, rss, peak) = usage(child.id());
    signal(&child, "TERM");
    let _ = child.wait();
    println!(
        "idle watch over {n} manifests: CPU {:.2}% over {} s (2 resyncs) | RSS {rss:.1} MB (peak {peak:.1} MB) | first pass {:.2} s (targets < 1% CPU, < 100 MB)",
        (cpu1 - cpu0) / window.as_secs_f64() * 100.0,
        window.as_secs(),
        first_pass.as_secs_f64(),
    );
}

fn sigterm(runtime: &tokio::runtime::Runtime) {
    let n = 200;
    let mut times = Vec::new();
    let mut writes = Vec::new();
    for _ in 0..5 {
        let (emulator, addr) = emulator(runtime, n);
        let dir = tempfile::tempdir().unwrap();
        for i in 0..n {
            manifest(dir.path(), i, "gcr.io/b/app:v2");
        }
        emulator.clear_requests();
        let (mut child, _base) = watch(dir.path(), &addr, &[]);
        // The first pass (200 deploys) is under way: stop it mid-way.
        let start = Instant::now();
        while !emulator.requests().iter().any(|r| r["method"] == "PATCH") {
            assert!(start.elapsed() < Duration::from_secs(30), "the pass never wrote");
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        signal(&child, "TERM");
        let status = child.wait().unwrap();
        times.push(start.elapsed());
        assert_eq!(status.code(), Some(0));
        writes.push(emulator.requests().iter().filter(|r| r["method"] == "PATCH").count());
    }
    println!(
        "SIGTERM during a pass over {n} rollouts → exit: median {:.0} ms (max {:.0}; PATCHes done before exit {:?}; target < 2 s)",
        median(times.clone()).as_secs_f64() * 1e3,
        times.iter().max().unwrap().as_secs_f64() * 1e3,
        writes,
    );
}
