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

/// A `canary emulator` process on an ephemeral loopback port, stopped when dropped.
pub struct EmulatorProcess {
    child: std::process::Child,
    pub base: String,
}

impl EmulatorProcess {
    pub fn start(args: &[&str]) -> EmulatorProcess {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
            .args(["emulator", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the emulator starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("the emulator prints its address");
        let base = line.trim().strip_prefix("canary emulator listening on ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!("unexpected first line from the emulator: {line:?}")
        });
        EmulatorProcess { base: base.to_owned(), child }
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        reqwest::blocking::get(format!("{}{path}", self.base))
            .and_then(|r| r.json())
            .expect("the emulator answers JSON")
    }

    /// A call to the control API (`/emulator/v1/…`) that must succeed.
    pub fn control(&self, method: reqwest::Method, path: &str, body: &serde_json::Value) {
        let r = reqwest::blocking::Client::new()
            .request(method, format!("{}/emulator/v1/{path}", self.base))
            .body(body.to_string())
            .send()
            .expect("the emulator answers");
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Moves the stepped clock on.
    pub fn advance(&self, seconds: u64) {
        self.control(reqwest::Method::POST, "clock:advance", &serde_json::json!({ "seconds": seconds }));
    }

    /// Adds a fault.
    pub fn fault(&self, fault: &serde_json::Value) {
        self.control(reqwest::Method::POST, "faults", fault);
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
