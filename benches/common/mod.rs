//! What the pass benchmarks share: running the release `canary` under `/usr/bin/time`
//! against an emulator in the benchmark's own process, and reading that process's CPU
//! and memory.

#![allow(dead_code)] // each benchmark uses part of it

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `canary` run, as measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub wall: f64,
    /// User + system CPU seconds of the `canary` process.
    pub cpu: f64,
    /// Peak RSS of the `canary` process, MB.
    pub rss_mb: f64,
    pub stdout: String,
}

/// Runs `canary ARGS…` against the emulator at `addr` (the build in `CANARY_BENCH_BIN`
/// when set), and fails the benchmark if it fails: a failed pass is not a measurement.
pub fn canary(addr: &str, args: &[&str], dir: &Path) -> Run {
    let canary = std::env::var("CANARY_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_canary").to_owned());
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", &canary])
        .args(args)
        .arg(dir)
        .env("CLOUD_RUN_EMULATOR_HOST", addr)
        .output()
        .unwrap();
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 3 is a pass that rolled something back: still a pass.
    assert!(
        out.status.success() || out.status.code() == Some(3),
        "canary {args:?} failed: {}",
        stderr.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    let stats: Vec<f64> =
        stderr.lines().last().unwrap_or_default().split_whitespace().filter_map(|v| v.parse().ok()).collect();
    let at = |i: usize| stats.get(i).copied().unwrap_or(0.0);
    Run { wall, cpu: at(1) + at(2), rss_mb: at(3) / 1024.0, stdout: String::from_utf8_lossy(&out.stdout).into_owned() }
}

/// User + system CPU seconds this process has used (Linux `/proc/self/stat`, in clock
/// ticks of 1/100 s), 0 where that cannot be read.
pub fn own_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Starts a new peak for [`own_peak_rss_mb`] (Linux: `5` to `/proc/self/clear_refs`).
pub fn reset_own_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This process's peak RSS since the last [`reset_own_peak_rss`], MB (`VmHWM`).
pub fn own_peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

/// Starts `canary watch DIR` (the build under test) against the emulator at `addr`,
/// listening on a free port; returns the child and its base URL.
pub fn watch(dir: &Path, addr: &str, extra: &[&str]) -> (Child, String) {
    let mut child =
        Command::new(std::env::var("CANARY_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_canary").to_owned()))
            .args(["watch", "--listen", "127.0.0.1:0"])
            .args(extra)
            .arg(dir)
            .env("CLOUD_RUN_EMULATOR_HOST", addr)
            .env("CANARY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("canary watch listening on ").unwrap().to_owned();
    (child, base)
}

/// Waits until the watch's first pass is done (`/readyz` answers 200).
pub fn wait_ready(base: &str) {
    let start = Instant::now();
    while reqwest::blocking::get(format!("{base}/readyz")).map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(start.elapsed() < Duration::from_secs(120), "the watch never became ready");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends the signal `name` (`TERM`, `INT`) to `child`.
pub fn signal(child: &Child, name: &str) {
    Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().unwrap();
}

/// A process's CPU seconds so far, RSS and peak RSS (MB), from `/proc`.
pub fn usage(pid: u32) -> (f64, f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    };
    (ticks / hz, kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}
