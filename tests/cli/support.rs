//! Running the real binary in a folder, and reading what it printed.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// Runs `canary ARGS` in `dir` with colour off, as a pipe would see it.
pub fn canary(dir: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("canary")
        .expect("the canary binary is built")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("canary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("canary exited, not killed by a signal")
}

/// Where the independent tools from tools/requirements.txt live (`make tools`).
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("CANARY_TOOLS").map_or_else(|| repo().join(".venv/bin"), PathBuf::from);
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `make tools` (or `make test`, which does)", path.display());
    path
}
