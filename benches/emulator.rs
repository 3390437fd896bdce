//! `make bench`: GET-service throughput of the emulator over loopback HTTP, with a
//! keep-alive client in the same process (client and server share this machine's two
//! cores, so the number is a floor). Prints the median of several runs.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use canary_emulator::Emulator;
use canary_emulator::clock::VirtualClock;
use canary_emulator::world::{ServiceName, WorldConfig};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The emulator here runs with the allocator `canary emulator` has (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 16;
const RUNS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = WorldConfig { seed: 1, base_url: format!("http://{addr}"), ..WorldConfig::default() };
        let emulator = Arc::new(Emulator::new(config, VirtualClock::new(SystemTime::now(), 0.0)));
        let name = ServiceName::parse("projects/bench/locations/us-central1/services/api").unwrap();
        let body = serde_json::json!({"template": {"containers": [{"image": "gcr.io/bench/api:v1", "env": [{"name": "A", "value": "1"}]}]}, "labels": {"team": "bench"}});
        emulator.with_world(|w, now| w.seed_service(&name, body, now)).unwrap();
        tokio::spawn(async move { axum::serve(listener, canary_emulator::http::router(emulator)).await });

        let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let uri: hyper::Uri = format!("http://{addr}/v2/{}", name.full()).parse().unwrap();
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..CONCURRENCY {
                let client = client.clone();
                let uri = uri.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in 0..REQUESTS / CONCURRENCY {
                        let response = client.get(uri.clone()).await.unwrap();
                        assert_eq!(response.status(), 200);
                        response.into_body().collect().await.unwrap();
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            rates.push(REQUESTS as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[RUNS / 2];
        println!("emulator GET service: median {median:.0} requests/s over {RUNS} runs of {REQUESTS} ({CONCURRENCY} concurrent, keep-alive)");
        println!("  runs: {}", rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(", "));
        println!("  target: >= 5000/s -> {}", if median >= 5000.0 { "met" } else { "NOT met" });
    });
}
