use crate::support::{canary, code, repo, stderr, stdout};

/// The committed schema is what this build generates (CI fails on drift).
#[test]
fn committed_schema_is_current() {
    let out = canary(&repo(), &["schema", "--check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let printed = canary(&repo(), &["schema"]);
    let committed = std::fs::read_to_string(repo().join("schemas/canaryrollout.schema.json")).unwrap();
    assert_eq!(stdout(&printed), committed);
}

#[test]
fn schema_check_fails_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("old.json");
    std::fs::write(&stale, "{}\n").unwrap();
    let out = canary(&repo(), &["schema", "--check", "--file", stale.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("is out of date with this build's manifest types"), "{}", stderr(&out));
    assert!(stderr(&out).contains("make schema"), "{}", stderr(&out));
}

#[test]
fn schema_is_draft_2020_12_with_documented_examples() {
    let printed = canary(&repo(), &["schema"]);
    let schema: serde_json::Value = serde_json::from_str(&stdout(&printed)).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(schema["$id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(schema["title"], "CanaryRollout");
    let defs = &schema["$defs"];
    for quantity in ["Duration", "Percent", "Threshold"] {
        assert!(defs[quantity]["pattern"].is_string(), "{quantity} has a pattern");
        assert!(defs[quantity]["examples"].as_array().is_some_and(|e| !e.is_empty()), "{quantity} has examples");
    }
    assert_eq!(defs["Analysis"]["properties"]["interval"]["default"], "1m");
    assert_eq!(defs["RollbackTrigger"]["properties"]["for"]["default"], "0s");
}
