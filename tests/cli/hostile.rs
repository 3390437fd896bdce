//! Hostile input: each refused with a clear error, quickly, and never a panic.

use crate::support::{canary, code, stderr};

fn refused(file: &str, bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), bytes).unwrap();
    let out = canary(dir.path(), &["validate", file]);
    let text = stderr(&out);
    assert_eq!(code(&out), 2, "{file}: {text}");
    assert!(!text.contains("panicked"), "{file}: {text}");
    assert!(text.starts_with(&format!("{file}:")), "{file}: {text}");
    text
}

#[test]
fn a_20_mb_file_is_refused_by_size() {
    let big = "a: b\n".repeat(4 * 1024 * 1024);
    let text = refused("big.yaml", big.as_bytes());
    assert!(
        text.starts_with(
            "big.yaml:1:1: error: file is 20971520 bytes; a manifest file may be at most 1048576 bytes (1 MiB)"
        ),
        "{text}"
    );
}

#[test]
fn an_alias_bomb_is_refused() {
    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h", "i"].windows(2).map(|w| (w[0], w[1])) {
        bomb.push_str(&format!("{name}: &{name} [{}]\n", vec![format!("*{prev}"); 9].join(",")));
    }
    let text = refused("bomb.yaml", bomb.as_bytes());
    assert!(
        text.contains("error: invalid YAML: the YAML expands to too many nodes (an alias bomb?) to be a manifest"),
        "{text}"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let text = refused("deep.yaml", deep.as_bytes());
    assert!(text.contains("is nested too deeply"), "{text}");
    let deep_block: String = (0..200).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
    let text = refused("deep-block.yaml", deep_block.as_bytes());
    assert!(text.contains("is nested too deeply"), "{text}");
}

#[test]
fn binary_garbage_is_refused() {
    // A deterministic stream of bytes (xorshift), not valid UTF-8.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let text = refused("garbage.yaml", &bytes);
    assert!(text.contains("error: file is not valid UTF-8 text"), "{text}");
    let text = refused("nul.yaml", b"apiVersion: canary/v1alpha1\n\0\0\0");
    assert!(text.contains("error: file contains NUL bytes"), "{text}");
}

#[test]
fn an_empty_file_is_refused() {
    let text = refused("empty.yaml", b"");
    assert!(text.starts_with("empty.yaml:1:1: error: file contains no manifest"), "{text}");
}

#[test]
fn truncated_and_mangled_manifests_never_panic() {
    let good = std::fs::read_to_string(crate::support::repo().join("manifests/everything.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Every 97th prefix, and the text with every 89th byte replaced by YAML punctuation.
    let mut files = Vec::new();
    for (i, cut) in (0..good.len()).step_by(97).enumerate() {
        let cut = (0..=cut).rev().find(|c| good.is_char_boundary(*c)).unwrap_or(0);
        let name = format!("cut{i}.yaml");
        std::fs::write(dir.path().join(&name), &good[..cut]).unwrap();
        files.push(name);
    }
    let mangled: String = good
        .chars()
        .enumerate()
        .map(|(i, c)| if i % 89 == 0 { ['[', ':', '-', '{', '&', '*'][i % 6] } else { c })
        .collect();
    std::fs::write(dir.path().join("mangled.yaml"), mangled).unwrap();
    let out = canary(dir.path(), &["validate", "."]);
    let text = stderr(&out);
    assert_eq!(code(&out), 2, "{text}");
    assert!(!text.contains("panicked"), "{text}");
    for name in files.iter().skip(1) {
        assert!(text.contains(&format!("./{name}:")), "{name} is reported: {text}");
    }
}

/// Nothing listening at `CLOUD_RUN_EMULATOR_HOST`: said at once with what to do, not
/// after ~20 s of retrying a connection nobody will accept.
#[test]
fn an_emulator_address_nobody_listens_on_fails_at_once_with_a_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(crate::support::repo().join("manifests/ion-api.yaml"), dir.path().join("ion-api.yaml")).unwrap();
    let started = std::time::Instant::now();
    let out = assert_cmd::Command::cargo_bin("canary")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("CLOUD_RUN_EMULATOR_HOST", format!("127.0.0.1:{port}"))
        .args(["reconcile", "--once", "."])
        .output()
        .unwrap();
    let text = stderr(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains(&format!("could not reach http://127.0.0.1:{port}")), "{text}");
    assert!(text.contains("is `canary emulator` running there?"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // Retrying took ~19 s; not retrying takes milliseconds. The bound is loose on purpose.
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "took {:?}", started.elapsed());
}
