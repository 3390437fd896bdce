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

pub use canary_testkit::PROJECT;

/// `projects/P/locations/R/services/NAME` in the test project.
pub fn service_path(name: &str) -> String {
    canary_testkit::service_name(PROJECT, name)
}

/// Polls `check` until it gives a value, failing after `timeout`: how every test waits
/// for a condition (never a bare sleep).
pub fn eventually<T>(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The workspace's one manifest builder, and how these tests write it.
pub use canary_testkit::Manifest;

/// Writes a manifest as `dir/file`.
pub fn write_manifest(manifest: &Manifest, dir: &Path, file: &str) {
    std::fs::write(dir.join(file), manifest.text()).expect("the manifest is written");
}

/// An emulator scenario in the test project, starting 2026-11-26 08:00 UTC: the one
/// scenario builder of the end-to-end tests.
#[derive(Debug, Clone)]
pub struct Scenario {
    scale: f64,
    seed: u64,
    profiles: Vec<String>,
    services: Vec<String>,
    loads: Vec<String>,
}

impl Scenario {
    /// A stepped clock (it moves only when a test advances it).
    pub fn new(seed: u64) -> Scenario {
        Scenario { scale: 0.0, seed, profiles: Vec::new(), services: Vec::new(), loads: Vec::new() }
    }

    /// `scale` simulated seconds a real second.
    pub fn time_scale(mut self, scale: f64) -> Scenario {
        self.scale = scale;
        self
    }

    /// A profile, as the flow mapping of a scenario's `profiles` entry.
    pub fn profile(mut self, profile: &str) -> Scenario {
        self.profiles.push(format!("  - {profile}"));
        self
    }

    /// Profiles as `profiles:` list entries, written out (`  - {image: …}` lines).
    pub fn profile_lines(mut self, lines: &str) -> Scenario {
        self.profiles.extend(lines.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
        self
    }

    /// Service `name` running `image`, with these extra lines under `template:` (indented
    /// six spaces), serving `rps` requests a second.
    pub fn service(mut self, name: &str, image: &str, template: &str, rps: f64) -> Scenario {
        let path = service_path(name);
        let template = if template.is_empty() { String::new() } else { format!("\n    template:\n{template}") };
        self.services.push(format!("  - name: {path}\n    image: {image}{template}"));
        self.loads.push(format!("  - {{service: {path}, rps: {rps}}}"));
        self
    }

    pub fn text(&self) -> String {
        let list =
            |items: &[String]| if items.is_empty() { " []".to_owned() } else { format!("\n{}", items.join("\n")) };
        format!(
            "start: \"2026-11-26T08:00:00Z\"\ntimeScale: {}\nseed: {}\nprofiles:{}\nservices:{}\nloads:{}\n",
            self.scale,
            self.seed,
            list(&self.profiles),
            list(&self.services),
            list(&self.loads)
        )
    }

    /// Writes the scenario into `dir` and starts an emulator on it, with `args` besides.
    pub fn start(&self, dir: &Path, args: &[&str]) -> EmulatorProcess {
        let path = dir.join("scenario.yaml");
        std::fs::write(&path, self.text()).expect("the scenario is written");
        let mut all = vec!["--scenario", path.to_str().expect("a UTF-8 temp path")];
        all.extend_from_slice(args);
        EmulatorProcess::start(&all)
    }
}

impl EmulatorProcess {
    /// The emulator's request log, oldest first: `{method, path, query, status}` per call.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let log = self.get("/emulator/v1/requests");
        log.as_array().cloned().unwrap_or_else(|| panic!("the request log is a JSON array: {log}"))
    }

    /// The calls in the request log that `keep` keeps.
    pub fn requests_where(&self, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<serde_json::Value> {
        self.requests().into_iter().filter(|r| keep(r)).collect()
    }

    /// Calls in the request log with this method whose path contains `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests_where(|r| r["method"] == method && r["path"].as_str().unwrap_or_default().contains(path_contains))
            .len()
    }
}
