use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;
use crate::analysis::distribution::{BucketOptions, Distribution};
use crate::analysis::observations::Minute;
use crate::state::{Phase, Transition};

const T0: u64 = 1_795_680_000; // 2026-11-26T08:00:00Z

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
}

fn rollout() -> CanaryRollout {
    serde_json::from_value(json!({
        "apiVersion": "canary/v1alpha1", "kind": "CanaryRollout", "metadata": {"name": "api"},
        "spec": {"project": "demo-project", "region": "us-central1", "service": "api",
            "template": {"image": "gcr.io/demo/api:v2"},
            "stages": [{"weight": 5, "hold": "10m"}, {"weight": 25, "hold": "10m"}, {"weight": 100, "hold": "5m"}],
            "analysis": {"warmup": "2m",
                "promotion": {"maxErrorRateIncrease": "0.5%", "maxP95Increase": "10%", "minRequests": 500},
                "rollback": [{"metric": "errorRate", "above": "5%"}, {"metric": "p95Latency", "above": "2s", "for": "5m"}]}}
    }))
    .unwrap()
}

fn transition(seconds: u64, phase: Phase, stage: usize, reason: &str) -> Transition {
    Transition { at: rfc3339(at(seconds)), phase, stage, reason: reason.to_owned() }
}

/// Deployed at 08:00, 5% at 08:01, 25% at 08:11, rolled back at 08:16.
fn rolled_back() -> RolloutState {
    RolloutState {
        owner: Some("api".into()),
        phase: Some(Phase::RolledBack),
        reason: "rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%".into(),
        stage: 2,
        stage_started: Some(at(660)),
        previous_stage_started: Some(at(60)),
        stable: Some("api-00001-xyz".into()),
        canary: Some("api-3f9c2a1".into()),
        image: Some("gcr.io/demo/api:v2".into()),
        rejected: vec!["gcr.io/demo/api:v2".into()],
        history: vec![
            transition(0, Phase::Deploying, 0, "deploying api-3f9c2a1 (gcr.io/demo/api:v2) at 0% beside api-00001-xyz"),
            transition(60, Phase::Progressing, 1, "holding 5% (stage 1 of 3)"),
            transition(660, Phase::Progressing, 2, "holding 25% (stage 2 of 3)"),
            transition(
                960,
                Phase::RolledBack,
                2,
                "rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%",
            ),
        ],
        ..RolloutState::default()
    }
}

fn latency_around(ms: f64, count: u64) -> Distribution {
    let mut d = Distribution::empty(BucketOptions::latency());
    let bucket = (1..d.options.len()).find(|&i| d.options.bounds(i).1 > ms).unwrap_or(1);
    d.add_to_bucket(bucket, count);
    d.count = count;
    d.mean = ms;
    d
}

/// Stable at 1% errors and ~250 ms throughout; the canary at 1% until 08:12, then 10%
/// errors and ~900 ms.
fn metrics() -> Observations {
    let mut stable = BTreeMap::new();
    let mut canary = BTreeMap::new();
    for minute in 1..=30u64 {
        let end = T0 + minute * 60;
        stable.insert(end, Minute::new(1000, 10, Some(latency_around(250.0, 1000))));
        if (2..=16).contains(&minute) {
            let bad = minute > 12;
            let (errors, ms) = if bad { (10, 900.0) } else { (1, 250.0) };
            canary.insert(end, Minute::new(100, errors, Some(latency_around(ms, 100))));
        }
    }
    BTreeMap::from([("us-central1/api-00001-xyz".to_owned(), stable), ("us-central1/api-3f9c2a1".to_owned(), canary)])
}

#[test]
fn a_rolled_back_rollout_reads_as_a_story() {
    let t = timeline::timeline(&rollout(), &rolled_back()).unwrap();
    assert_eq!(t.outcome, timeline::Outcome::RolledBack);
    assert_eq!((t.started, t.ended), (Some(at(0)), Some(at(960))));
    let spans: Vec<(usize, u8, SystemTime, Option<SystemTime>)> =
        t.spans.iter().map(|s| (s.stage, s.weight, s.start, s.end)).collect();
    assert_eq!(spans, [(1, 5, at(60), Some(at(660))), (2, 25, at(660), Some(at(960)))]);
    let cause = t.cause.unwrap();
    assert_eq!(cause.check.as_deref(), Some("errorRate"));
    assert!(!t.capped);
}

#[test]
fn the_report_of_a_rollback() {
    let (r, state) = (rollout(), rolled_back());
    let t = timeline::timeline(&r, &state).unwrap();
    let now = at(3600);
    let range = range(&t, now);
    assert_eq!((range.from, range.to, range.period), (at(0) - BEFORE, at(960) + AFTER, Duration::from_secs(60)));
    let report = build(&r, &t, &metrics(), range, now);
    assert_eq!(report.stem, "api-20261126T080000Z");
    insta::assert_snapshot!(report.markdown);
    let svg = roxmltree::Document::parse(&report.svg).expect("well-formed SVG");
    let series: Vec<(&str, &str)> = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("series"))
        .map(|n| (n.attribute("data-metric").unwrap(), n.attribute("data-revision").unwrap()))
        .collect();
    assert_eq!(
        series,
        [("error-rate", "stable"), ("error-rate", "canary"), ("p95-latency", "stable"), ("p95-latency", "canary")]
    );
    let marker = svg.descendants().find(|n| n.attribute("class") == Some("marker rollback")).unwrap();
    assert_eq!(marker.attribute("data-at"), Some((T0 + 960).to_string().as_str()));
    let stages: Vec<&str> = svg
        .descendants()
        .filter(|n| n.attribute("class") == Some("stage"))
        .filter_map(|n| n.descendants().find(|c| c.is_text()).and_then(|c| c.text()))
        .collect();
    assert_eq!(stages, ["5%", "25%", "5%", "25%"], "each stage start, labelled, in both panels");
}

/// A shared incident paused stage 1 from 08:05 until 08:25, when it started again: the
/// chart shades that period in both panels.
#[test]
fn the_chart_shows_a_shared_incident() {
    let r = rollout();
    let mut state = rolled_back();
    state.history.insert(
        2,
        transition(300, Phase::Paused, 1, "SharedIncident: rollback trigger errorRate failed: observed 12.00%"),
    );
    state.history.insert(3, transition(1500, Phase::Progressing, 1, "holding 5% (stage 1 of 3); started again"));
    for t in &mut state.history[4..] {
        t.at = rfc3339(crate::time::parse_rfc3339(&t.at).unwrap() + Duration::from_secs(1200));
    }
    let t = timeline::timeline(&r, &state).unwrap();
    assert_eq!(t.incidents(), vec![(at(300), Some(at(1500)))]);
    let report = build(&r, &t, &metrics(), range(&t, at(7200)), at(7200));
    let svg = roxmltree::Document::parse(&report.svg).expect("well-formed SVG");
    let band = svg.descendants().find(|n| n.attribute("class") == Some("marker incident")).expect("an incident band");
    assert_eq!(band.attribute("data-from"), Some((T0 + 300).to_string().as_str()));
    assert_eq!(band.attribute("data-to"), Some((T0 + 1500).to_string().as_str()));
    assert_eq!(band.children().filter(|c| c.has_tag_name("rect")).count(), 2, "one band per panel");
    // The rollback report above, with no incident, draws none.
    let plain = timeline::timeline(&r, &rolled_back()).unwrap();
    assert!(plain.incidents().is_empty());
}

#[test]
fn without_metrics_the_report_is_still_written_and_says_no_data() {
    let (r, state) = (rollout(), rolled_back());
    let t = timeline::timeline(&r, &state).unwrap();
    let report = build(&r, &t, &Observations::new(), range(&t, at(3600)), at(3600));
    let svg = roxmltree::Document::parse(&report.svg).unwrap();
    let no_data = svg.descendants().filter(|n| n.attribute("class") == Some("no-data")).count();
    assert_eq!(no_data, 2, "both panels say so");
    assert!(report.markdown.contains("Cloud Monitoring had no data"));
    assert!(report.markdown.contains("rollback trigger `errorRate`"));
}

#[test]
fn a_capped_history_still_places_the_stages_it_can() {
    let mut state = rolled_back();
    // Thirty pause/resume flips pushed the deploy and the first stage out of the history.
    state.history = (0..30)
        .map(|i| {
            let phase = if i % 2 == 0 { Phase::Paused } else { Phase::Progressing };
            transition(700 + i * 5, phase, 2, "flip")
        })
        .collect();
    let t = timeline::timeline(&rollout(), &state).unwrap();
    assert!(t.capped);
    assert_eq!(t.started, None);
    let starts: Vec<(usize, SystemTime)> = t.spans.iter().map(|s| (s.stage, s.start)).collect();
    assert_eq!(starts, [(1, at(60)), (2, at(660))], "from the stage annotations");
    let report = build(&rollout(), &t, &metrics(), range(&t, at(3600)), at(3600));
    assert!(report.markdown.contains("earlier ones of this rollout are gone"), "{}", report.markdown);
    assert_eq!(report.stem, "api-20261126T080100Z");
}

#[test]
fn a_rollout_that_never_started_has_no_report() {
    let never = RolloutState::default();
    let e = timeline::timeline(&rollout(), &never).unwrap_err();
    assert!(e.0.contains("canary has never acted on it"), "{e:?}");
    let theirs = RolloutState { owner: Some("web".into()), phase: Some(Phase::Promoted), ..RolloutState::default() };
    assert!(timeline::timeline(&rollout(), &theirs).unwrap_err().0.contains("belongs to rollout `web`"));
    let adopted = RolloutState {
        owner: Some("api".into()),
        phase: Some(Phase::Promoted),
        reason: "api is already serving gcr.io/demo/api:v1".into(),
        stable: Some("api-00001-xyz".into()),
        history: vec![transition(0, Phase::Promoted, 0, "api is already serving gcr.io/demo/api:v1")],
        ..RolloutState::default()
    };
    assert!(timeline::timeline(&rollout(), &adopted).unwrap_err().0.contains("no canary was ever deployed"));
}

#[test]
fn a_promoted_rollout_names_the_revisions_as_they_were() {
    let mut state = rolled_back();
    state.phase = Some(Phase::Promoted);
    state.stable = Some("api-3f9c2a1".into());
    state.canary = None;
    state.history.pop();
    state.history.push(transition(1300, Phase::Progressing, 3, "holding 100% (stage 3 of 3)"));
    state.history.push(transition(
        1600,
        Phase::Promoted,
        3,
        "promoted api-3f9c2a1 (gcr.io/demo/api:v2): it is now stable",
    ));
    let t = timeline::timeline(&rollout(), &state).unwrap();
    assert_eq!((t.stable.as_deref(), t.canary.as_deref()), (Some("api-00001-xyz"), Some("api-3f9c2a1")));
    assert_eq!(t.spans.last().map(|s| (s.weight, s.end)), Some((100, Some(at(1600)))));
    let figures = series::stage_figures(
        &rollout(),
        &t.spans,
        &metrics(),
        "us-central1/api-3f9c2a1",
        "us-central1/api-00001-xyz",
        at(3600),
    );
    // At 100%, stable's figures come from the stage before (08:11–08:21 after warm-up).
    assert_eq!(figures[2].stable, figures[1].stable);
}
