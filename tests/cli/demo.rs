//! `canary demo`: the whole story, end to end, with its JSON output and the report.

use serde_json::Value;

use crate::support::{code, stderr, stdout};

#[test]
fn the_demo_promotes_one_rollout_rolls_the_other_back_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("canary")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("CLOUD_RUN_EMULATOR_HOST")
        .args(["demo", "-o", "json", "--speed", "7200", "--out", "reports"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let statuses: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    let phase = |name: &str| {
        statuses.as_array().unwrap().iter().find(|s| s["name"] == name).map(|s| s["phase"].as_str().unwrap().to_owned())
    };
    assert_eq!(phase("ion-api").as_deref(), Some("Promoted"), "{statuses:#}");
    assert_eq!(phase("checkout").as_deref(), Some("RolledBack"), "{statuses:#}");
    // The status shape: each has the documented fields.
    for s in statuses.as_array().unwrap() {
        for key in ["project", "region", "service", "reason", "stage", "stages", "weight", "image", "stableRevision"] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    let rolled_back = statuses.as_array().unwrap().iter().find(|s| s["name"] == "checkout").unwrap();
    assert!(rolled_back["reason"].as_str().unwrap().starts_with("rolled back: "), "{rolled_back}");
    // The report's path is on stderr (stdout is the JSON); it exists with its chart.
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("rollback report: ")).unwrap_or_else(|| panic!("{err}"));
    let path = dir.path().join(line.trim_start_matches("rollback report: ").trim());
    let md = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(md.starts_with("# Rollout report: checkout — rolled back"), "{md}");
    let svg = std::fs::read_to_string(path.with_extension("svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("the chart is well-formed");
}
