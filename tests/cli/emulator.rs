//! `canary emulator` as a process: Google's own Cloud Run client against it, scenario
//! files, and the loopback rule.

use std::process::Command;

use crate::support::{EmulatorProcess, canary, code, repo, stderr, tool};

/// Google's official Python client (google-cloud-run, REST transport, anonymous
/// credentials) runs a whole lifecycle against the emulator; see the script for steps.
#[test]
fn google_cloud_run_python_client_completes_a_lifecycle() {
    let emulator = EmulatorProcess::start(&["--time-scale", "100"]);
    let out = Command::new(tool("python"))
        .arg(repo().join("tests/clients/cloud_run_lifecycle.py"))
        .arg(&emulator.base)
        .output()
        .expect("python runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok: google-cloud-run completed the lifecycle"), "{text}");
    // The client asked for integer enums, and the emulator logged every call.
    let calls = emulator.requests();
    assert!(calls.iter().any(|c| c["query"].as_str().unwrap_or_default().contains("enum-encoding%3Dint")), "{calls:?}");
    assert!(calls.iter().any(|c| c["method"] == "DELETE"));
}

#[test]
fn refuses_a_non_loopback_address_unless_allowed() {
    let out = canary(&repo(), &["emulator", "--listen", "0.0.0.0:0"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "error: refusing to listen on 0.0.0.0:0: it is not a loopback address\n  = hint: the emulator has no authentication; listen on 127.0.0.1, or pass --allow-remote if you really mean to expose it\n"
    );
}

#[test]
fn a_scenario_preloads_services_profiles_and_faults() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("world.yaml");
    std::fs::write(
        &scenario,
        r#"
start: "2026-11-26T08:00:00Z"
timeScale: 0
seed: 42
profiles:
  - {image: "gcr.io/demo/api:v2", ready: false}
services:
  - name: projects/demo/locations/us-central1/services/api
    image: gcr.io/demo/api:v1
    revision: api-v1
    labels: {team: core}
faults:
  - {method: GET, pathContains: /services/api, status: 429, times: 1, retryAfterSeconds: 2}
"#,
    )
    .unwrap();
    let emulator = EmulatorProcess::start(&["--scenario", scenario.to_str().unwrap()]);
    assert_eq!(emulator.get("/emulator/v1/clock")["now"], "2026-11-26T08:00:00.000000Z");
    let limited =
        reqwest::blocking::get(format!("{}/v2/projects/demo/locations/us-central1/services/api", emulator.base))
            .unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "2");
    let service = emulator.get("/v2/projects/demo/locations/us-central1/services/api");
    assert_eq!(service["reconciling"], false, "{service}");
    assert_eq!(service["latestReadyRevision"], "projects/demo/locations/us-central1/services/api/revisions/api-v1");
    assert_eq!(service["labels"]["team"], "core");
    assert_eq!(emulator.get("/emulator/v1/profiles")["profiles"][0]["ready"], false);
    let app = reqwest::blocking::get(format!("{}/run/demo/us-central1/api/health", emulator.base)).unwrap();
    assert_eq!(app.status().as_u16(), 200);
}

#[test]
fn a_bad_scenario_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.yaml");
    std::fs::write(&scenario, "services:\n  - name: api\n    image: x:1\n").unwrap();
    let out = canary(dir.path(), &["emulator", "--listen", "127.0.0.1:0", "--scenario", "bad.yaml"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "error: scenario bad.yaml: service `api`: name must be projects/P/locations/L/services/S\n"
    );
}

/// Google's official Node client (@google-cloud/monitoring, REST fallback, pass-through
/// auth) reads request counts grouped by response_code_class and a p95 through
/// ALIGN_PERCENTILE_95 from the emulator.
#[test]
fn google_cloud_monitoring_node_client_reads_cloud_run_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("metrics.yaml");
    std::fs::write(
        &scenario,
        r#"
start: "2026-11-26T08:00:00Z"
timeScale: 0
seed: 3
profiles:
  - {image: "gcr.io/demo/api:v1", errorRate: 0.05, p50Ms: 100, p95Ms: 400}
services:
  - {name: projects/demo/locations/us-central1/services/api, image: "gcr.io/demo/api:v1"}
loads:
  - {service: projects/demo/locations/us-central1/services/api, rps: 10}
"#,
    )
    .unwrap();
    let emulator = EmulatorProcess::start(&["--scenario", scenario.to_str().unwrap()]);
    let client = reqwest::blocking::Client::new();
    client.post(format!("{}/emulator/v1/clock:advance", emulator.base)).body(r#"{"seconds": 7200}"#).send().unwrap();
    let script = repo().join("tests/clients/node/monitoring_client.js");
    assert!(repo().join("tests/clients/node/node_modules").exists(), "run `make tools` to install the Node client");
    let out = Command::new("node")
        .arg(&script)
        .args([&emulator.base, "2026-11-26T08:00:00Z", "2026-11-26T10:00:00Z"])
        .current_dir(repo().join("tests/clients/node"))
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script prints JSON");
    let ok = read["byClass"]["2xx"].as_f64().unwrap();
    let errors = read["byClass"]["5xx"].as_f64().unwrap();
    // Two hours at 10 rps, less the 3-minute publishing delay; 5% errors.
    let total = ok + errors;
    assert!((total - 10.0 * (7200.0 - 180.0)).abs() < 1500.0, "{read}");
    assert!((errors / total - 0.05).abs() < 0.005, "{read}");
    let p95 = read["p95"][0].as_f64().unwrap();
    assert!((p95 / 400.0 - 1.0).abs() < 0.05, "{read}");
    assert_eq!(read["kinds"], serde_json::json!(["DELTA", "DELTA"]));
    // The client sent numeric enums, which the emulator accepted.
    let log = emulator.requests();
    assert!(log[0]["query"].as_str().unwrap().contains("perSeriesAligner=1"), "{log:?}");
}
