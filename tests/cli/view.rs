//! `canary status --watch`: the real binary against the emulator.

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use crate::reconcile::Rollout;

/// Reads `child`'s stdout on a thread, a block (lines up to a blank line) at a time.
fn blocks(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut block = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.is_empty() {
                if send.send(std::mem::take(&mut block)).is_err() {
                    return;
                }
            } else {
                block.push_str(&line);
                block.push('\n');
            }
        }
    });
    receive
}

#[test]
fn status_watch_piped_prints_plain_blocks_when_something_changes() {
    let r = Rollout::at_first_stage(20.0);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("canary"))
        .current_dir(r.dir.path())
        .env("CLOUD_RUN_EMULATOR_HOST", r.emulator.base.trim_start_matches("http://"))
        .env_remove("NO_COLOR")
        .args(["status", "api", "-f", "manifests", "--watch", "--interval", "100ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let received = blocks(child.stdout.take().unwrap());
    let wait = Duration::from_secs(30);
    let first = received.recv_timeout(wait).expect("a first block");
    // The stepped clock has not moved: several looks later, nothing new is printed.
    assert!(received.recv_timeout(Duration::from_millis(800)).is_err(), "no change, no block");
    r.advance(300);
    let second = received.recv_timeout(wait).expect("a block after the clock moved");
    let _ = child.kill();
    let _ = child.wait();
    for block in [&first, &second] {
        assert!(block.starts_with("canary status · 2026-11-26 "), "{block}");
        assert!(block.contains("\napi  Progressing  holding 5% (stage 1 of 4)\n"), "{block}");
        assert!(!block.contains('\x1b'), "piped output is plain: {block:?}");
    }
    assert!(first.contains("▶   5%  hold 30m     [░"), "{first}");
    assert!(second.contains("5m of 30m · 25m left"), "{second}");
    assert!(second.contains("stable  api-") && second.contains(" 95%"), "{second}");
}
