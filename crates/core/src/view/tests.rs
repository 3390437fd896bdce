use std::time::{Duration, SystemTime};

use std::collections::BTreeMap;

use super::*;
use crate::analysis::verdict::CheckKind;

fn at(seconds: u64) -> SystemTime {
    // 2026-11-26T08:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_680_000 + seconds)
}

fn check(kind: CheckKind, observed: Option<f64>, threshold: f64, result: Outcome, needed: Option<u64>) -> Check {
    Check { kind, observed, threshold, result, requests_needed: needed, stable: None, shared: false }
}

/// A status with nothing in it but its name, to build others from.
pub(super) fn blank(name: &str) -> Status {
    Status {
        name: name.to_owned(),
        project: "demo-project".to_owned(),
        region: "us-central1".to_owned(),
        service: name.to_owned(),
        phase: None,
        reason: String::new(),
        paused_for: None,
        stage: 0,
        stages: 0,
        weight: 0,
        image: String::new(),
        stable_revision: None,
        canary_revision: None,
        stage_started_at: None,
        hold_remaining_seconds: None,
        gates: Vec::new(),
        triggers: Vec::new(),
        stage_weights: Vec::new(),
        stage_hold_seconds: Vec::new(),
        hold_seconds: None,
        traffic: BTreeMap::new(),
        observed_at: String::new(),
        settling_to: None,
        error: None,
        frozen: false,
    }
}

/// A rollout holding its second stage, 12 minutes into 30, with one gate short of data,
/// beside one that was rolled back.
fn statuses() -> Vec<Status> {
    vec![
        Status {
            phase: Some(Phase::Progressing),
            reason: "holding 25% (stage 2 of 4)".into(),
            stage: 2,
            stages: 4,
            weight: 25,
            image: "gcr.io/demo/api:v2".into(),
            stable_revision: Some("api-00001-xyz".into()),
            canary_revision: Some("api-3f9c2a1".into()),
            stage_started_at: Some("2026-11-26T08:00:00Z".into()),
            hold_remaining_seconds: Some(1075),
            stage_weights: vec![5, 25, 50, 100],
            stage_hold_seconds: vec![1800, 1800, 1800, 600],
            hold_seconds: Some(1800),
            traffic: [("api-00001-xyz".to_owned(), 75), ("api-3f9c2a1".to_owned(), 25)].into(),
            triggers: vec![
                check(CheckKind::ErrorRate, Some(0.0041), 0.05, Outcome::Pass, None),
                check(CheckKind::P95Latency, Some(251.4), 2000.0, Outcome::Pass, None),
                check(CheckKind::Availability, None, 0.99, Outcome::Inconclusive, Some(20)),
            ],
            gates: vec![
                check(CheckKind::MinRequests, Some(640.0), 1000.0, Outcome::Inconclusive, Some(360)),
                check(CheckKind::ErrorRateIncrease, Some(0.0012), 0.005, Outcome::Pass, None),
                check(CheckKind::P95Increase, Some(0.1523), 0.1, Outcome::Fail, None),
            ],
            ..blank("api")
        },
        Status {
            region: "europe-west4".into(),
            phase: Some(Phase::RolledBack),
            reason: "rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%".into(),
            stage: 1,
            stages: 2,
            image: "gcr.io/demo/web:v9".into(),
            stable_revision: Some("web-00004-abc".into()),
            canary_revision: Some("web-77aa01b".into()),
            stage_weights: vec![10, 100],
            stage_hold_seconds: vec![3600, 0],
            hold_seconds: Some(3600),
            traffic: [("web-00004-abc".to_owned(), 100)].into(),
            ..blank("web")
        },
    ]
}

#[test]
fn the_plain_view_of_a_fixed_state() {
    let lines = render(&statuses(), at(725), Colour::Never);
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn colour_marks_results_and_plain_has_no_escapes() {
    let plain = render(&statuses(), at(0), Colour::Never).join("\n");
    assert!(!plain.contains('\x1b'));
    let coloured = render(&statuses(), at(0), Colour::Always).join("\n");
    assert!(coloured.contains("\x1b[31m✖ fail"), "{coloured}");
    assert!(coloured.contains("\x1b[32m✔ pass"), "{coloured}");
}

#[test]
fn time_left_moves_by_the_minute() {
    let mut s = statuses();
    let view = |s: &[Status]| render(s, at(0), Colour::Never)[1..].join("\n");
    let before = view(&s);
    s[0].hold_remaining_seconds = Some(1062);
    assert_eq!(view(&s), before, "13 seconds later, still the same minute");
    s[0].hold_remaining_seconds = Some(1000);
    assert_ne!(view(&s), before);
}

/// Numbers read from a server: a stage past the last, time left beyond the hold, holds
/// and shares as large as they come.
#[test]
fn extreme_numbers_render_without_panicking() {
    for junk in [
        blank("empty"),
        Status {
            stage: 99,
            stage_weights: vec![5],
            hold_remaining_seconds: Some(10_000),
            stage_hold_seconds: vec![60],
            ..blank("past")
        },
        Status {
            phase: Some(Phase::Progressing),
            stage: 1,
            stage_weights: vec![5, 100],
            stage_hold_seconds: vec![0, 0],
            ..blank("no-hold")
        },
        Status {
            phase: Some(Phase::Waiting),
            stage: 1,
            stage_weights: vec![5, 100],
            stage_hold_seconds: vec![u64::MAX, 0],
            hold_remaining_seconds: Some(u64::MAX - 1),
            traffic: [("a".to_owned(), u32::MAX)].into(),
            gates: vec![check(CheckKind::ErrorRate, Some(f64::NAN), f64::INFINITY, Outcome::Pass, None)],
            ..blank("huge")
        },
    ] {
        let name = junk.name.clone();
        let lines = render(&[junk], at(0), Colour::Never);
        assert!(lines[1].starts_with(&format!("{name}  ")), "{lines:?}");
        // The bars stay their width, however large the numbers.
        for line in lines.iter().filter(|l| l.contains('[')) {
            assert!(line.matches(['█', '░']).count() <= 24, "{line}");
        }
    }
    assert_eq!(render(&[], at(0), Colour::Never)[1], "no rollouts: no valid manifests");
}

#[test]
fn a_split_cloud_run_is_still_applying_is_shown_beside_the_one_serving() {
    let mut s = statuses();
    s[0].settling_to = Some([("api-00001-xyz".to_owned(), 50), ("api-3f9c2a1".to_owned(), 50)].into());
    let text = render(&s[..1], at(0), Colour::Never).join("\n");
    assert!(text.contains("settling → stable 50% · canary 50% (Cloud Run is applying the last change)"), "{text}");
    // Still the split that serves on the revision lines.
    assert!(text.contains(" 25%"), "{text}");
    let settled = render(&statuses()[..1], at(0), Colour::Never).join("\n");
    assert!(!settled.contains("settling"), "{settled}");
}
