//! An independent validator (check-jsonschema, from PyPI) agrees with our schema.

use std::process::Command;

use crate::support::{fixtures, repo, tool};

fn check_jsonschema(files: &[std::path::PathBuf]) -> std::process::Output {
    Command::new(tool("check-jsonschema"))
        .arg("--schemafile")
        .arg(repo().join("schemas/canaryrollout.schema.json"))
        .args(files)
        .output()
        .expect("check-jsonschema runs")
}

#[test]
fn accepts_every_example() {
    let examples: Vec<_> = std::fs::read_dir(repo().join("manifests")).unwrap().map(|e| e.unwrap().path()).collect();
    let out = check_jsonschema(&examples);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Schema-level mistakes are refused by the independent validator too (meaning-level
/// ones, like decreasing weights, are canary's alone).
#[test]
fn refuses_schema_level_mistakes() {
    for name in [
        "wrong-kind",
        "wrong-api-version",
        "missing-required-field",
        "bad-duration",
        "bad-percentage",
        "weight-out-of-range",
        "typo-field",
        "typo-nested-field",
        "bad-name",
        "bad-region",
        "trigger-unknown-metric",
        "env-value-not-string",
        "notify-unknown-kind",
        "no-stages",
    ] {
        let file = fixtures().join("invalid").join(format!("{name}.yaml"));
        let out = check_jsonschema(&[file]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "check-jsonschema should refuse {name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
