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
    let log = emulator.get("/emulator/v1/requests");
    let calls = log.as_array().unwrap();
    assert!(calls.iter().any(|c| c["query"].as_str().unwrap_or_default().contains("enum-encoding%3Dint")), "{log}");
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
