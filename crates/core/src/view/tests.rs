use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;

fn at(seconds: u64) -> SystemTime {
    // 2026-11-26T08:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_680_000 + seconds)
}

/// A rollout holding its second stage, 12 minutes into 30, with one gate short of data,
/// beside one that was rolled back.
fn statuses() -> Vec<Value> {
    vec![
        json!({
            "name": "api", "project": "demo-project", "region": "us-central1", "service": "api",
            "phase": "Progressing", "reason": "holding 25% (stage 2 of 4)",
            "stage": 2, "stages": 4, "weight": 25, "image": "gcr.io/demo/api:v2",
            "stableRevision": "api-00001-xyz", "canaryRevision": "api-3f9c2a1",
            "stageStartedAt": "2026-11-26T08:00:00Z", "holdRemainingSeconds": 1075,
            "stageWeights": [5, 25, 50, 100], "stageHoldSeconds": [1800, 1800, 1800, 600], "holdSeconds": 1800,
            "traffic": {"api-00001-xyz": 75, "api-3f9c2a1": 25},
            "triggers": [
                {"name": "errorRate", "observed": 0.0041, "threshold": 0.05, "result": "pass"},
                {"name": "p95Latency", "observed": 251.4, "threshold": 2000.0, "result": "pass"},
                {"name": "availability", "observed": null, "threshold": 0.99, "result": "inconclusive", "requestsNeeded": 20}
            ],
            "gates": [
                {"name": "minRequests", "observed": 640.0, "threshold": 1000.0, "result": "inconclusive", "requestsNeeded": 360},
                {"name": "errorRateIncrease", "observed": 0.0012, "threshold": 0.005, "result": "pass"},
                {"name": "p95Increase", "observed": 0.1523, "threshold": 0.1, "result": "fail"}
            ]
        }),
        json!({
            "name": "web", "project": "demo-project", "region": "europe-west4", "service": "web",
            "phase": "RolledBack", "reason": "rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%",
            "stage": 1, "stages": 2, "weight": 0, "image": "gcr.io/demo/web:v9",
            "stableRevision": "web-00004-abc", "canaryRevision": "web-77aa01b",
            "stageWeights": [10, 100], "stageHoldSeconds": [3600, 0], "holdSeconds": 3600,
            "traffic": {"web-00004-abc": 100}, "triggers": [], "gates": []
        }),
    ]
}

#[test]
fn the_plain_view_of_a_fixed_state() {
    let lines = render(&statuses(), at(725), Colour::Never);
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn colour_marks_results_and_plain_has_no_escapes() {
    let plain = render(&statuses(), at(0), Colour::Never).join("\n");
    assert!(!plain.contains('\x1b'));
    let coloured = render(&statuses(), at(0), Colour::Always).join("\n");
    assert!(coloured.contains("\x1b[31m✖ fail"), "{coloured}");
    assert!(coloured.contains("\x1b[32m✔ pass"), "{coloured}");
}

#[test]
fn time_left_moves_by_the_minute() {
    let mut s = statuses();
    let view = |s: &[Value]| render(s, at(0), Colour::Never)[1..].join("\n");
    let before = view(&s);
    s[0]["holdRemainingSeconds"] = json!(1062);
    assert_eq!(view(&s), before, "13 seconds later, still the same minute");
    s[0]["holdRemainingSeconds"] = json!(1000);
    assert_ne!(view(&s), before);
}

#[test]
fn nonsense_renders_without_panicking() {
    for junk in [
        json!(null),
        json!(42),
        json!({"stage": 99, "stageWeights": [5], "holdRemainingSeconds": 10_000, "stageHoldSeconds": [60]}),
        json!({"stage": -1, "stageWeights": "x", "traffic": {"a": "b"}, "gates": [{"name": 3}], "triggers": {}}),
        json!({"phase": "Progressing", "stage": 1, "stageWeights": [5, 100], "stageHoldSeconds": [0, 0]}),
        json!({"phase": "Waiting", "stage": 1, "stageWeights": [5, 100], "stageHoldSeconds": [u64::MAX, 0],
            "holdRemainingSeconds": u64::MAX - 1, "traffic": {"a": u64::MAX}}),
    ] {
        let lines = render(&[junk], at(0), Colour::Always);
        assert!(lines.len() > 1);
    }
    assert_eq!(render(&[], at(0), Colour::Never)[1], "no rollouts: no valid manifests");
}

#[test]
fn a_split_cloud_run_is_still_applying_is_shown_beside_the_one_serving() {
    let mut s = statuses();
    s[0]["settlingTo"] = json!({"api-00001-xyz": 50, "api-3f9c2a1": 50});
    let text = render(&s[..1], at(0), Colour::Never).join("\n");
    assert!(text.contains("settling → stable 50% · canary 50% (Cloud Run is applying the last change)"), "{text}");
    // Still the split that serves on the revision lines.
    assert!(text.contains(" 25%"), "{text}");
    let settled = render(&statuses()[..1], at(0), Colour::Never).join("\n");
    assert!(!settled.contains("settling"), "{settled}");
}
