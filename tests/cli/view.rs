//! `canary report` and `canary status --watch`: the real binary against the emulator.

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use crate::reconcile::Rollout;
use crate::support::{code, stderr, stdout};

#[test]
fn the_report_of_a_rolled_back_rollout_names_the_trigger_and_charts_both_revisions() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2", errorRate: 0.10, p50Ms: 80, p95Ms: 250}"#, 20.0);
    // Only a trigger can roll it back (no comparison gate to get there first).
    r.manifest_judged(
        "gcr.io/demo/api:v2",
        "    warmup: 2m\n    promotion: {minRequests: 500}\n    rollback:\n      - {metric: errorRate, above: 5%}\n",
    );
    let steps = r.run_until(120, 30, |res| res["phaseAfter"] == "RolledBack");
    assert_eq!(steps.last().unwrap()["result"]["phaseAfter"], "RolledBack", "{steps:#?}");
    // Ten minutes on, so the chart shows the canary gone and stable carrying on.
    r.advance(600);
    let out = r.canary(&["report", "api", "-f", "manifests", "--out", "reports"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let md_path = r.dir.path().join(stdout(&out).trim());
    assert!(md_path.starts_with(r.dir.path().join("reports")), "{}", stdout(&out));
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.starts_with("# Rollout report: api — rolled back\n"), "{md}");
    assert!(md.contains("**Cause:** rollback trigger `errorRate`: observed **"), "{md}");
    assert!(md.contains("against a threshold of **5.00%**"), "{md}");
    assert!(md.contains("## Root cause") && md.contains("## Action items"), "{md}");
    // The chart sits beside the Markdown and is linked relatively.
    let svg_name = md_path.with_extension("svg").file_name().unwrap().to_str().unwrap().to_owned();
    assert!(md.contains(&format!("]({svg_name})")), "{md}");
    let svg = std::fs::read_to_string(md_path.with_extension("svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut series: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("series"))
        .map(|n| (n.attribute("data-metric").unwrap().to_owned(), n.attribute("data-revision").unwrap().to_owned()))
        .collect();
    series.sort();
    assert_eq!(
        series,
        [
            ("error-rate".to_owned(), "canary".to_owned()),
            ("error-rate".to_owned(), "stable".to_owned()),
            ("p95-latency".to_owned(), "canary".to_owned()),
            ("p95-latency".to_owned(), "stable".to_owned()),
        ],
        "{svg}"
    );
    assert!(doc.descendants().any(|n| n.attribute("class") == Some("marker rollback")), "{svg}");
    assert!(doc.descendants().any(|n| n.attribute("class") == Some("stage")), "the 5% stage start is marked");
    // Reporting again writes the same files: the name comes from the rollout, not the clock.
    let again = r.canary(&["report", "api", "-f", "manifests", "--out", "reports"]);
    assert_eq!(stdout(&again), stdout(&out));
}

#[test]
fn a_rollout_that_never_started_has_no_report() {
    let r = Rollout::start(r#"  - {image: "gcr.io/demo/api:v2"}"#, 20.0);
    r.manifest("api.yaml", "gcr.io/demo/api:v2", "");
    let out = r.canary(&["report", "api", "-f", "manifests", "--out", "reports"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("rollout `api` has not started on service api"), "{}", stderr(&out));
    assert!(!r.dir.path().join("reports").exists(), "nothing is written");
    let unknown = r.canary(&["report", "nope", "-f", "manifests"]);
    assert_eq!(code(&unknown), 2);
}

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
    let mut child = r.spawn(&["status", "api", "-f", "manifests", "--watch", "--interval", "100ms"]);
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

#[test]
fn status_watch_json_prints_one_array_per_line() {
    let r = Rollout::at_first_stage(20.0);
    let mut child = r.spawn(&["status", "--watch", "-o", "json", "--interval", "100ms", "-f", "manifests"]);
    let (send, receive) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let line = receive.recv_timeout(Duration::from_secs(30)).expect("a first line");
    let _ = child.kill();
    let _ = child.wait();
    let statuses: serde_json::Value = serde_json::from_str(&line).expect("the line is one JSON value");
    let s = &statuses[0];
    assert_eq!((s["name"].as_str(), s["phase"].as_str()), (Some("api"), Some("Progressing")));
    assert_eq!(s["stageWeights"], serde_json::json!([5, 25, 50, 100]));
    assert_eq!(s["holdSeconds"], 1800);
    assert_eq!(s["traffic"].as_object().unwrap().values().filter_map(serde_json::Value::as_u64).sum::<u64>(), 100);
}
