use serde_json::Value;

use crate::support::{canary, code, fixtures, repo, stderr, stdout};

/// Every invalid fixture, each pinned to its exact diagnostics: message, location,
/// snippet and hint, as a user sees them on a pipe.
#[test]
fn each_invalid_manifest_is_reported_exactly() {
    let dir = fixtures().join("invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 25, "the fixture table is missing files: {names:?}");
    for name in names {
        let out = canary(&dir, &["validate", &name]);
        assert_eq!(code(&out), 2, "{name} should be invalid (exit 2); stderr:\n{}", stderr(&out));
        let text = stderr(&out);
        // The first line of every error is `file:line:col: error:`.
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with(&format!("{name}:")) && first.contains(": error: "), "{name}: {first}");
        assert!(stdout(&out).is_empty(), "{name}: nothing on stdout when invalid");
        insta::with_settings!({snapshot_suffix => name.trim_end_matches(".yaml"), prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!("invalid", text);
        });
    }
}

#[test]
fn every_example_manifest_validates() {
    let out = canary(&repo(), &["validate", "manifests/"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let count = std::fs::read_dir(repo().join("manifests")).unwrap().count();
    assert_eq!(stdout(&out), format!("ok: {count} manifests valid ({count} files)\n"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn default_path_is_the_manifests_folder() {
    let out = canary(&repo(), &["validate"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ok: "));
}

#[test]
fn examples_start_with_the_schema_modeline() {
    for entry in std::fs::read_dir(repo().join("manifests")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/canaryrollout.schema.json\n"),
            "{} lacks the modeline",
            path.display()
        );
    }
}

#[test]
fn one_broken_manifest_never_hides_the_others() {
    let out = canary(&fixtures(), &["validate", "mixed"]);
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(text.contains("mixed/bad-one.yaml:13:16: error: stage 2 sends 10% of traffic"), "{text}");
    assert!(text.contains("mixed/bad-two.yaml:11:3: error: unknown field `stagse` in `spec`"), "{text}");
    assert!(!text.contains("good.yaml"), "{text}");
    assert!(text.ends_with("error: 2 problems found in 2 of 3 files\n"), "{text}");
}

#[test]
fn json_output_lists_every_problem_with_its_location() {
    let out = canary(&fixtures(), &["validate", "-o", "json", "mixed"]);
    assert_eq!(code(&out), 2);
    let found: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0],
        serde_json::json!({
            "file": "mixed/bad-one.yaml", "line": 13, "column": 16,
            "path": "spec.stages[1].weight",
            "message": "stage 2 sends 10% of traffic, which is not more than stage 1's 25%",
            "hint": "stage weights must strictly increase"
        })
    );
    for item in found {
        for key in ["file", "line", "column", "path", "message"] {
            assert!(item.get(key).is_some(), "{item} lacks {key}");
        }
    }
    let valid = canary(&repo(), &["validate", "-o", "json"]);
    assert_eq!(code(&valid), 0);
    assert_eq!(stdout(&valid).trim(), "[]");
}

#[test]
fn names_and_services_are_unique_across_the_set() {
    let out = canary(&fixtures(), &["validate", "set-conflicts"]);
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    assert!(
        text.contains(
            "set-conflicts/b.yaml:4:9: error: rollout name `shop` is already used at set-conflicts/a.yaml:4:9"
        ),
        "{text}"
    );
    assert!(
        text.contains("set-conflicts/c.yaml:8:12: error: service your-project-id/us-central1/shop is already rolled out by `shop` (set-conflicts/a.yaml:8:12)"),
        "{text}"
    );
    assert!(!text.contains("a.yaml:4:9: error"), "the first of a pair is not blamed: {text}");
}

#[test]
fn unreadable_path_exits_1_but_invalid_input_wins() {
    let out = canary(&repo(), &["validate", "no/such/folder"]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "error: cannot read no/such/folder\n  caused by: no such file or folder\n  = hint: name the files or folders that hold your manifests, like `canary validate deploy/manifests/`\n"
    );
    let both = canary(&fixtures(), &["validate", "no/such/folder", "invalid/typo-field.yaml"]);
    assert_eq!(code(&both), 2, "invalid input outranks a runtime error");
}

#[test]
fn several_documents_per_file_are_each_checked() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(repo().join("manifests/minimal.yaml")).unwrap();
    let bad = good
        .replace("name: hello", "name: hello-two")
        .replace("service: hello", "service: hello-two")
        .replace("weight: 10", "weight: 0");
    std::fs::write(dir.path().join("two.yml"), format!("{good}---\n{bad}")).unwrap();
    let out = canary(dir.path(), &["validate", "."]);
    assert_eq!(code(&out), 2);
    let text = stderr(&out);
    let line = good.lines().count() + 1 + good.lines().position(|l| l.contains("weight: 10")).unwrap() + 1;
    assert!(
        text.starts_with(&format!("./two.yml:{line}:16: error: `spec.stages[0].weight` must be at least 1, not 0")),
        "{text}"
    );
}

#[test]
fn folders_are_searched_recursively_for_yaml_only() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("team/a");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::copy(repo().join("manifests/minimal.yaml"), nested.join("hello.yml")).unwrap();
    std::fs::write(dir.path().join("README.md"), "# not a manifest: [").unwrap();
    std::fs::write(dir.path().join(".git/config.yaml"), "not: [a manifest").unwrap();
    let out = canary(dir.path(), &["validate", "."]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok: 1 manifest valid (1 file)\n");
}

#[test]
fn yaml_output_is_the_json_output_as_yaml() {
    let json = canary(&fixtures(), &["validate", "-o", "json", "mixed"]);
    let yaml = canary(&fixtures(), &["validate", "-o", "yaml", "mixed"]);
    assert_eq!(code(&yaml), 2);
    let text = stdout(&yaml);
    assert!(!text.trim_start().starts_with('['), "YAML, not JSON: {text}");
    let from_yaml: Value = serde_saphyr::from_str(&text).expect("stdout is YAML");
    let from_json: Value = serde_json::from_str(&stdout(&json)).expect("stdout is JSON");
    assert_eq!(from_yaml, from_json);
}

#[test]
fn a_folder_without_manifest_files_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not a manifest\n").unwrap();
    let out = canary(dir.path(), &["validate", "."]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(text.starts_with("error: no manifest files in ."), "{text}");
    assert!(text.contains("`.yaml` and `.yml`"), "{text}");
    let json = canary(dir.path(), &["validate", "-o", "json", "."]);
    assert_eq!(code(&json), 2);
    let found: Value = serde_json::from_str(&stdout(&json)).expect("stdout is JSON");
    assert_eq!(found[0]["message"], "no manifest files here", "{found}");
}
