//! `make bench`: the cost of simulated traffic. 1,000 services at 20 rps on the daily
//! curve (half of them with a 10% canary from the second hour) are advanced through one
//! simulated day, then every one is queried for the whole day: request counts by
//! response class and p95 latency, hour by hour. Reports wall time and peak memory.

use std::time::{Duration, Instant, SystemTime};

use canary_emulator::Emulator;
use canary_emulator::clock::{VirtualClock, rfc3339};
use canary_emulator::monitoring::{Query, list};
use canary_emulator::traffic::Load;
use canary_emulator::world::{ServiceName, WorldConfig};
use serde_json::json;

/// The emulator here runs with the allocator `canary emulator` has (see src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERVICES: usize = 1_000;

fn main() {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000 / 86_400 * 86_400);
    let emulator = Emulator::new(WorldConfig { seed: 9, ..WorldConfig::default() }, VirtualClock::new(start, 0.0));
    let setup = Instant::now();
    let names: Vec<ServiceName> = (0..SERVICES)
        .map(|i| ServiceName::parse(&format!("projects/bench/locations/us-central1/services/svc-{i:04}")).unwrap())
        .collect();
    for name in &names {
        let body = json!({"template": {"containers": [{"image": "gcr.io/bench/app:v1"}]}});
        emulator.with_world(|w, now| w.seed_service(name, body, now)).unwrap();
        emulator.set_load(&name.full(), Load { rps: 20.0, daily: true }).unwrap();
    }
    emulator.advance(Duration::from_secs(3600));
    for name in names.iter().step_by(2) {
        let current = emulator.with_world(|w, now| w.get_service(&name.full(), now)).unwrap();
        let stable = current["latestReadyRevision"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
        let mut body = current.clone();
        body["template"]["containers"][0]["image"] = "gcr.io/bench/app:v2".into();
        body["template"]["revision"] = format!("{}-v2", name.service).into();
        body["traffic"] =
            json!([{"revision": stable, "percent": 90}, {"revision": format!("{}-v2", name.service), "percent": 10}]);
        emulator.with_world(|w, now| w.update_service(&name.full(), body, None, false, false, now)).unwrap();
    }
    let advance = Instant::now();
    emulator.advance(Duration::from_secs(23 * 3600));
    let advanced = advance.elapsed();
    let setup_time = setup.elapsed();
    let end = rfc3339(emulator.now());
    let begin = rfc3339(start);
    let mut per_service = Vec::with_capacity(SERVICES);
    let queries = Instant::now();
    let mut requests = 0u64;
    for name in &names {
        let one = Instant::now();
        for (metric, aligner, extra) in [
            (
                "run.googleapis.com/request_count",
                "ALIGN_DELTA",
                vec![
                    ("aggregation.crossSeriesReducer", "REDUCE_SUM"),
                    ("aggregation.groupByFields", "metric.labels.response_code_class"),
                ],
            ),
            ("run.googleapis.com/request_latencies", "ALIGN_PERCENTILE_95", vec![]),
        ] {
            let filter = format!("metric.type=\"{metric}\" AND resource.labels.service_name=\"{}\"", name.service);
            let mut params: Vec<(String, String)> = vec![
                ("filter".into(), filter),
                ("interval.startTime".into(), begin.clone()),
                ("interval.endTime".into(), end.clone()),
                ("aggregation.alignmentPeriod".into(), "3600s".into()),
                ("aggregation.perSeriesAligner".into(), aligner.into()),
            ];
            params.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
            let query = Query::parse(&params).unwrap();
            let answer = emulator.with_world(|w, now| list(w, "bench", &query, now)).unwrap();
            if metric.ends_with("request_count") {
                for series in answer["timeSeries"].as_array().unwrap() {
                    for point in series["points"].as_array().unwrap() {
                        requests += point["value"]["int64Value"].as_str().unwrap().parse::<u64>().unwrap();
                    }
                }
            }
        }
        per_service.push(one.elapsed());
    }
    let query_time = queries.elapsed();
    per_service.sort();
    println!("traffic model: {SERVICES} services, one simulated day at 20 rps (daily curve), half with a canary");
    println!(
        "  setup (create + canary writes): {:.2} s; advancing the clock 23 h: {:?}",
        setup_time.as_secs_f64(),
        advanced
    );
    println!(
        "  querying every service for the whole day (counts by class + p95, hourly): {:.2} s total, median {:.1} ms per service, p99 {:.1} ms",
        query_time.as_secs_f64(),
        per_service[SERVICES / 2].as_secs_f64() * 1000.0,
        per_service[SERVICES * 99 / 100].as_secs_f64() * 1000.0
    );
    println!("  simulated requests counted: {requests} (~{:.1} million)", requests as f64 / 1e6);
    println!("  peak RSS: {}", peak_rss());
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
