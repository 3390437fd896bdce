//! `decide`, one row per situation, and properties over whole simulated rollouts.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::analysis::verdict::{Check, CheckKind, Outcome, Smoke, Verdict};
use crate::cloudrun::service::{Change, ServiceView};
use crate::manifest::types::CanaryRollout;
use crate::state::{Pause, Phase, RolloutState};

const T0: u64 = 1_795_000_000;
const STABLE: &str = "api-00001-abc";
const IMAGE: &str = "gcr.io/p/api:v2";

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn rollout(extra: &str) -> CanaryRollout {
    let text = format!(
        r#"
apiVersion: canary/v1alpha1
kind: CanaryRollout
metadata: {{name: api}}
spec:
  project: your-project-id
  region: us-central1
  service: api
  adopt: true
  template: {{image: "{IMAGE}"}}
  stages:
    - {{weight: 5, hold: 1h}}
    - {{weight: 25, hold: 6h}}
    - {{weight: 100, hold: 1h}}
  analysis:
    interval: 1m
    maxWait: 2h
    promotion: {{minRequests: 1000}}
    rollback:
      - {{metric: errorRate, above: 5%}}
{extra}
"#
    );
    let docs = crate::manifest::document::parse(&text).unwrap();
    crate::manifest::load::validate(&docs[0].value).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A settled service running `STABLE` (image v1) at 100%, with the given annotations.
fn service(annotations: Value) -> ServiceView {
    ServiceView::parse(json!({
        "name": "projects/your-project-id/locations/us-central1/services/api",
        "generation": "1", "observedGeneration": "1", "reconciling": false,
        "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
        "etag": "\"e1\"",
        "annotations": annotations,
        "template": {"revision": STABLE, "containers": [{"image": "gcr.io/p/api:v1"}], "vpcAccess": {"connector": "c"}},
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": STABLE, "percent": 100}, {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": STABLE, "tag": "team-preview"}],
        "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": STABLE, "percent": 100}],
        "latestReadyRevision": format!("projects/p/locations/l/services/api/revisions/{STABLE}"),
        "latestCreatedRevision": format!("projects/p/locations/l/services/api/revisions/{STABLE}")
    }))
}

fn observed(view: ServiceView) -> Observed {
    Observed::Service(Box::new(view))
}

fn gate(result: Outcome) -> Check {
    Check {
        kind: CheckKind::MinRequests,
        observed: Some(500.0),
        threshold: 1000.0,
        result,
        requests_needed: None,
        stable: None,
        shared: false,
    }
}

fn trigger(result: Outcome) -> Check {
    Check {
        kind: CheckKind::ErrorRate,
        observed: Some(0.12),
        threshold: 0.05,
        result,
        requests_needed: None,
        stable: None,
        shared: false,
    }
}

fn verdict(gates: Outcome, triggers: Outcome) -> Verdict {
    Verdict { triggers: vec![trigger(triggers)], gates: vec![gate(gates)], ..Verdict::default() }
}

/// Cloud Run applying a change: the new template's revision is created (Ready or still
/// starting), traffic and annotations are written, and the status follows.
fn apply(view: &ServiceView, change: &Change, ready: bool) -> ServiceView {
    let mut raw = change.apply(&view.value());
    let generation = view.generation + 1;
    raw["generation"] = generation.to_string().into();
    raw["observedGeneration"] = generation.to_string().into();
    if let Some(revision) = change.template.as_ref().and_then(|t| t.get("revision")).and_then(Value::as_str) {
        raw["latestCreatedRevision"] = format!("x/revisions/{revision}").into();
        if ready {
            raw["latestReadyRevision"] = format!("x/revisions/{revision}").into();
        } else {
            raw["reconciling"] = true.into();
            raw["terminalCondition"] = json!({"state": "CONDITION_RECONCILING"});
        }
    }
    let statuses: Vec<Value> = raw["traffic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut s = t.clone();
            if let Some(tag) = t.get("tag").and_then(Value::as_str) {
                s["uri"] = format!("http://emu/run/p/l/{tag}---api").into();
            }
            s
        })
        .collect();
    raw["trafficStatuses"] = Value::Array(statuses);
    ServiceView::parse(raw)
}

/// Runs `decide` and applies what it writes, the way a pass would.
fn step(rollout: &CanaryRollout, view: &ServiceView, verdict: &Verdict, now: SystemTime) -> (Plan, ServiceView) {
    let plan = decide(rollout, &observed(view.clone()), verdict, now);
    let next = match &plan.change {
        Some(change) => apply(view, change, true),
        None => view.clone(),
    };
    (plan, next)
}

fn split(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(r, p)| ((*r).to_owned(), *p)).collect()
}

/// A service already deployed and at stage `stage`, started at `started`.
fn at_stage(rollout: &CanaryRollout, stage: usize, started: u64) -> (ServiceView, String) {
    let (plan, deployed) = step(rollout, &service(json!({})), &Verdict::default(), at(0));
    assert_eq!(plan.action, Action::Deploy);
    let canary = plan.state.canary.clone().unwrap();
    let mut state = RolloutState::read(&deployed.annotations);
    state.stage = stage;
    state.stage_started = Some(at(started));
    state.enter(Phase::Progressing, "holding", at(started));
    let weight = u32::from(rollout.spec.stages[stage - 1].weight);
    let traffic = vec![
        crate::cloudrun::service::Target {
            revision: Some(STABLE.into()),
            percent: 100 - weight,
            tag: Some("stable".into()),
        },
        crate::cloudrun::service::Target {
            revision: Some(canary.clone()),
            percent: weight,
            tag: Some("canary".into()),
        },
    ];
    // As canary's own write at that stage would have recorded it.
    state.written = crate::cloudrun::service::entries(&traffic);
    state.written_at = Some(at(started));
    let change = Change { template: None, traffic: Some(traffic), annotations: state.annotations() };
    (apply(&deployed, &change, true), canary)
}

#[test]
fn a_missing_service_is_failed_with_nothing_written() {
    let plan = decide(&rollout(""), &Observed::Missing, &Verdict::default(), at(0));
    assert_eq!((plan.phase_after, plan.action, plan.result), (Phase::Failed, Action::None, PassResult::Blocked));
    assert_eq!(plan.reason, "ServiceNotFound: no Cloud Run service api in your-project-id/us-central1");
    assert!(plan.change.is_none());
}

#[test]
fn a_service_owned_by_another_rollout_is_left_alone() {
    let owned = json!({"canary/owner": "checkout", "canary/phase": "Progressing", "canary/stage": "2"});
    let plan = decide(&rollout(""), &observed(service(owned)), &Verdict::default(), at(0));
    assert_eq!((plan.action, plan.result), (Action::None, PassResult::Blocked));
    assert_eq!(plan.reason, "NotOwned: service api is managed by rollout `checkout`");
    // `checkout`'s phase is not this rollout's.
    assert_eq!(plan.phase_before, None);
    assert_eq!(plan.state.owner, None);
}

#[test]
fn an_unowned_service_needs_adopt() {
    let mut r = rollout("");
    r.spec.adopt = false;
    let plan = decide(&r, &observed(service(json!({}))), &Verdict::default(), at(0));
    assert_eq!(plan.result, PassResult::Blocked);
    assert!(
        plan.reason.starts_with("NotOwned: service api has no canary/owner annotation; set spec.adopt: true"),
        "{}",
        plan.reason
    );
}

#[test]
fn a_split_service_cannot_be_adopted() {
    let mut view = service(json!({}));
    view.statuses = vec![
        crate::cloudrun::service::TargetStatus { revision: "a".into(), percent: 50, tag: None, uri: None },
        crate::cloudrun::service::TargetStatus { revision: "b".into(), percent: 50, tag: None, uri: None },
    ];
    let plan = decide(&rollout(""), &observed(view), &Verdict::default(), at(0));
    assert_eq!(plan.result, PassResult::Blocked);
    assert!(plan.reason.starts_with("NotAdoptable"), "{}", plan.reason);
}

#[test]
fn adoption_deploys_the_canary_at_zero_beside_stable_keeping_user_tags() {
    let plan = decide(&rollout(""), &observed(service(json!({}))), &Verdict::default(), at(0));
    assert_eq!((plan.phase_before, plan.phase_after, plan.action), (None, Phase::Deploying, Action::Deploy));
    let change = plan.change.as_ref().unwrap();
    let template = change.template.as_ref().unwrap();
    let canary = plan.state.canary.clone().unwrap();
    assert_eq!(template["revision"], canary.as_str());
    assert_eq!(template["containers"][0]["image"], IMAGE);
    assert_eq!(template["vpcAccess"], json!({"connector": "c"}), "the stable template's other fields are kept");
    let traffic = change.traffic.as_ref().unwrap();
    assert_eq!(traffic.len(), 3);
    assert_eq!(
        (traffic[0].revision.as_deref(), traffic[0].percent, traffic[0].tag.as_deref()),
        (Some(STABLE), 100, Some("stable"))
    );
    assert_eq!(
        (traffic[1].revision.as_deref(), traffic[1].percent, traffic[1].tag.as_deref()),
        (Some(canary.as_str()), 0, Some("canary"))
    );
    assert_eq!(traffic[2].tag.as_deref(), Some("team-preview"), "user tags survive");
    assert_eq!(plan.traffic_after, split(&[(STABLE, 100)]));
    assert_eq!(change.annotations["canary/owner"], "api");
    assert_eq!(change.annotations["canary/phase"], "Deploying");
    assert_eq!(change.annotations["canary/stable"], STABLE);
    assert_eq!(plan.reason, format!("deploying {canary} ({IMAGE}) at 0% beside {STABLE}"));
}

#[test]
fn deploying_waits_for_readiness_then_fails_at_the_deadline() {
    let r = rollout("");
    let plan = decide(&r, &observed(service(json!({}))), &Verdict::default(), at(0));
    let starting = apply(&service(json!({})), plan.change.as_ref().unwrap(), false);
    let waiting = decide(&r, &observed(starting.clone()), &Verdict::default(), at(60));
    assert_eq!((waiting.phase_after, waiting.action), (Phase::Deploying, Action::None));
    let late = decide(&r, &observed(starting), &Verdict::default(), at(601));
    assert_eq!((late.phase_after, late.action, late.result), (Phase::Failed, Action::Annotate, PassResult::Failed));
    assert!(late.reason.starts_with("ProgressDeadlineExceeded"), "{}", late.reason);
    assert_eq!(late.state.rejected, vec![IMAGE.to_owned()]);
    assert!(late.change.unwrap().traffic.is_none(), "traffic untouched");
}

#[test]
fn a_revision_cloud_run_fails_fails_the_rollout_with_its_message() {
    let r = rollout("");
    let plan = decide(&r, &observed(service(json!({}))), &Verdict::default(), at(0));
    let mut raw = apply(&service(json!({})), plan.change.as_ref().unwrap(), false).value();
    raw["reconciling"] = false.into();
    raw["terminalCondition"] =
        json!({"state": "CONDITION_FAILED", "message": "Revision 'x' is not ready and cannot serve traffic."});
    let failed = decide(&r, &observed(ServiceView::parse(raw)), &Verdict::default(), at(30));
    assert_eq!((failed.phase_after, failed.result), (Phase::Failed, PassResult::Failed));
    assert_eq!(failed.reason, "RevisionFailed: Revision 'x' is not ready and cannot serve traffic.");
}

#[test]
fn smoke_tests_gate_the_first_stage() {
    let r = rollout("  smokeTests: [{path: /health}]");
    let (deploy, ready) = step(&r, &service(json!({})), &Verdict::default(), at(0));
    assert_eq!(deploy.action, Action::Deploy);
    assert_eq!(needs(&r, &observed(ready.clone())).smoke_uri.as_deref(), Some("http://emu/run/p/l/canary---api"));
    let pending = decide(&r, &observed(ready.clone()), &Verdict::default(), at(30));
    assert_eq!((pending.phase_after, pending.action), (Phase::Verifying, Action::None));
    let failed = Verdict { smoke: Some(Smoke::Failed("GET /health -> 503".into())), ..Verdict::default() };
    let plan = decide(&r, &observed(ready.clone()), &failed, at(30));
    assert_eq!((plan.phase_after, plan.result), (Phase::Failed, PassResult::Failed));
    assert_eq!(plan.reason, "SmokeTestFailed: GET /health -> 503");
    assert_eq!(plan.traffic_after, split(&[(STABLE, 100)]), "the canary never got traffic");
    let passed = Verdict { smoke: Some(Smoke::Passed), ..Verdict::default() };
    let plan = decide(&r, &observed(ready), &passed, at(30));
    assert_eq!((plan.phase_after, plan.action), (Phase::Progressing, Action::SetTraffic));
    assert_eq!(plan.traffic_after, split(&[(STABLE, 95), (deploy.state.canary.as_deref().unwrap(), 5)]));
    assert_eq!(plan.reason, "holding 5% (stage 1 of 3)");
}

#[test]
fn a_stage_holds_then_advances_when_every_gate_passes() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let holding = decide(&r, &observed(view.clone()), &verdict(Outcome::Pass, Outcome::Pass), at(3599));
    assert_eq!((holding.action, holding.phase_after), (Action::None, Phase::Progressing));
    assert_eq!(holding.requeue, Duration::from_secs(1), "the hold's last second");
    let early = decide(&r, &observed(view.clone()), &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!(early.requeue, Duration::from_secs(60), "one analysis interval");
    let next = decide(&r, &observed(view), &verdict(Outcome::Pass, Outcome::Pass), at(3600));
    assert_eq!((next.action, next.phase_after), (Action::SetTraffic, Phase::Progressing));
    assert_eq!(next.traffic_after, split(&[(STABLE, 75), (canary.as_str(), 25)]));
    assert_eq!(next.state.stage, 2);
    assert_eq!(next.state.stage_started, Some(at(3600)));
    assert_eq!(next.state.previous_stage_started, Some(at(0)));
}

#[test]
fn a_failed_trigger_rolls_back_at_once_in_any_stage() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 2, 0);
    let plan = decide(&r, &observed(view), &verdict(Outcome::Pass, Outcome::Fail), at(10));
    assert_eq!(
        (plan.action, plan.phase_after, plan.result),
        (Action::Rollback, Phase::RolledBack, PassResult::RolledBack)
    );
    assert_eq!(plan.traffic_after, split(&[(STABLE, 100)]));
    assert_eq!(plan.reason, "rolled back: rollback trigger errorRate failed: observed 12.00%, threshold 5.00%");
    assert_eq!(plan.state.rejected, vec![IMAGE.to_owned()]);
    let traffic = plan.change.unwrap().traffic.unwrap();
    assert!(traffic.iter().all(|t| t.tag.as_deref() != Some("canary")), "the canary tag goes with it");
}

fn shared(result: Outcome, stable_recovered: Option<bool>) -> Verdict {
    let check = Check { shared: true, stable: Some(0.118), ..trigger(result) };
    Verdict { triggers: vec![check], gates: vec![gate(Outcome::Inconclusive)], stable_recovered, ..Verdict::default() }
}

/// The issue's scenario: both revisions fail a shared dependency. The canary's traffic
/// goes back to stable at once, its image is kept, and once stable has recovered the
/// stage starts again with a fresh hold; a second shared incident is the canary's.
#[test]
fn a_shared_incident_pauses_with_the_canary_at_zero_and_the_stage_starts_again_once_stable_recovers() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 2, 0);
    let (plan, view) = step(&r, &view, &shared(Outcome::Fail, None), at(600));
    assert_eq!((plan.action, plan.phase_after, plan.result), (Action::SetTraffic, Phase::Paused, PassResult::Steady));
    assert_eq!(plan.state.pause, Some(crate::state::Pause::SharedIncident));
    assert_eq!(plan.traffic_after, split(&[(STABLE, 100)]));
    let written = plan.change.as_ref().and_then(|c| c.traffic.clone()).unwrap();
    assert!(
        written
            .iter()
            .any(|t| t.revision.as_deref() == Some(&canary) && t.percent == 0 && t.tag.as_deref() == Some("canary")),
        "the canary keeps its tag at 0%: {written:?}"
    );
    assert!(plan.state.rejected.is_empty(), "the image is not the canary's fault");
    assert!(
        plan.reason.starts_with("SharedIncident: rollback trigger errorRate failed: observed 12.00%"),
        "{}",
        plan.reason
    );
    assert!(plan.reason.contains("stable fails it too (11.80%)"), "{}", plan.reason);
    assert_eq!(RolloutState::read(&view.annotations).incidents, 1);
    // Stable not yet recovered: nothing is written, the evidence of the incident stays.
    let (plan, view) = step(&r, &view, &shared(Outcome::Fail, Some(false)), at(900));
    assert!(plan.change.is_none(), "{:?}: {}", plan.action, plan.reason);
    // Recovered: stage 2 again, at its weight, its hold counted from now.
    let (plan, view) = step(&r, &view, &shared(Outcome::Fail, Some(true)), at(2400));
    assert_eq!((plan.action, plan.phase_after), (Action::SetTraffic, Phase::Progressing));
    assert_eq!(plan.traffic_after, split(&[(STABLE, 75), (canary.as_str(), 25)]));
    assert_eq!((plan.state.stage, plan.state.stage_started), (2, Some(at(2400))));
    // A second shared incident in the rollout rolls back and rejects the image.
    let (plan, _) = step(&r, &view, &shared(Outcome::Fail, None), at(3000));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack));
    assert!(plan.reason.contains("second shared incident"), "{}", plan.reason);
    assert_eq!(plan.state.rejected, vec![IMAGE.to_owned()]);
}

/// Found in review: a recovery resume wrote canary's split over traffic a person had set
/// during the incident. Now the change outside canary pauses for a person instead.
#[test]
fn traffic_set_by_hand_during_a_shared_incident_is_not_undone_on_recovery() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let (_, view) = step(&r, &view, &shared(Outcome::Fail, None), at(600));
    let view = by_hand(&view, vec![(STABLE, 50, Some("stable")), (canary.as_str(), 50, Some("canary"))], None);
    let plan = decide(&r, &observed(view), &shared(Outcome::Pass, Some(true)), at(2400));
    assert_eq!((plan.action, plan.phase_after), (Action::Annotate, Phase::Paused), "{}", plan.reason);
    assert_eq!(plan.state.pause, Some(crate::state::Pause::ChangedOutside));
    assert!(plan.change.unwrap().traffic.is_none(), "the person's split stays");
}

/// Found by the simulation (seed 233): a rollout held by its manifest, or paused already,
/// must not be lifted by a recovery, so its failed trigger rolls back as before.
#[test]
fn a_held_or_paused_rollout_rolls_back_on_a_shared_trigger() {
    let mut r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    r.spec.paused = true;
    let plan = decide(&r, &observed(view.clone()), &shared(Outcome::Fail, None), at(600));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack), "{}", plan.reason);
    r.spec.paused = false;
    let paused = with_request(&view, crate::state::Request::Resume);
    let mut state = RolloutState::read(&paused.annotations);
    state.enter_pause(crate::state::Pause::GateFailed, "GateFailed: …", at(300));
    let change = Change { template: None, traffic: None, annotations: state.annotations() };
    let paused = apply(&view, &change, true);
    let plan = decide(&r, &observed(paused), &shared(Outcome::Fail, None), at(600));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack), "{}", plan.reason);
}

#[test]
fn a_shared_incident_is_the_canarys_fault_under_canary_fault_and_abort_still_rolls_back() {
    let strict = rollout("    sharedIncidents: canaryFault");
    let (view, _) = at_stage(&strict, 1, 0);
    let plan = decide(&strict, &observed(view), &shared(Outcome::Fail, None), at(600));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack));
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let (_, view) = step(&r, &view, &shared(Outcome::Fail, None), at(600));
    let aborted = with_request(&view, crate::state::Request::Abort);
    let plan = decide(&r, &observed(aborted), &shared(Outcome::Pass, Some(false)), at(700));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack));
    let resumed = with_request(&view, crate::state::Request::Resume);
    let plan = decide(&r, &observed(resumed), &shared(Outcome::Pass, Some(false)), at(700));
    assert_eq!((plan.action, plan.phase_after, plan.state.stage), (Action::SetTraffic, Phase::Progressing, 1));
}

#[test]
fn inconclusive_gates_wait_then_pause_after_max_wait() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let (waiting, after) = step(&r, &view, &verdict(Outcome::Inconclusive, Outcome::Pass), at(3600));
    assert_eq!((waiting.action, waiting.phase_after), (Action::Annotate, Phase::Waiting));
    assert_eq!(waiting.reason, "waiting for data: minRequests inconclusive: observed 500, threshold 1000");
    let still = decide(&r, &observed(after.clone()), &verdict(Outcome::Inconclusive, Outcome::Pass), at(5000));
    assert_eq!((still.action, still.phase_after), (Action::None, Phase::Waiting), "no write while nothing changes");
    let paused = decide(&r, &observed(after), &verdict(Outcome::Inconclusive, Outcome::Pass), at(3600 + 7201));
    assert_eq!((paused.action, paused.phase_after), (Action::Annotate, Phase::Paused));
    assert!(paused.reason.starts_with("InsufficientData"), "{}", paused.reason);
}

#[test]
fn a_failed_gate_rolls_back_or_pauses_as_the_policy_says() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let plan = decide(&r, &observed(view.clone()), &verdict(Outcome::Fail, Outcome::Pass), at(3600));
    assert_eq!((plan.action, plan.result), (Action::Rollback, PassResult::RolledBack));
    let mut pausing = rollout("    onGateFailure: pause");
    pausing.spec.analysis.on_gate_failure = crate::manifest::types::GateFailurePolicy::Pause;
    let plan = decide(&pausing, &observed(view), &verdict(Outcome::Fail, Outcome::Pass), at(3600));
    assert_eq!((plan.action, plan.phase_after, plan.result), (Action::Annotate, Phase::Paused, PassResult::Steady));
    assert_eq!(plan.traffic_after, plan.traffic_before, "pausing moves no traffic");
}

#[test]
fn the_last_stage_promotes_and_then_nothing_more_is_written() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 3, 0);
    let (plan, promoted) = step(&r, &view, &verdict(Outcome::Pass, Outcome::Pass), at(3600));
    assert_eq!((plan.action, plan.phase_after), (Action::Promote, Phase::Promoted));
    assert_eq!(plan.traffic_after, split(&[(canary.as_str(), 100)]));
    let traffic = plan.change.as_ref().unwrap().traffic.as_ref().unwrap();
    assert_eq!(
        (traffic[0].tag.as_deref(), traffic[0].percent),
        (Some("stable"), 100),
        "the stable tag moves to the canary"
    );
    assert_eq!(plan.state.stable.as_deref(), Some(canary.as_str()));
    let idle = decide(&r, &observed(promoted), &Verdict::default(), at(9000));
    assert_eq!((idle.action, idle.phase_after), (Action::None, Phase::Promoted));
    assert!(idle.change.is_none());
}

#[test]
fn a_rejected_image_is_not_deployed_again() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let (_, rolled_back) = step(&r, &view, &verdict(Outcome::Pass, Outcome::Fail), at(10));
    let later = decide(&r, &observed(rolled_back), &Verdict::default(), at(99_999));
    assert_eq!((later.action, later.phase_after), (Action::None, Phase::RolledBack));
    assert_eq!(later.reason, format!("image {IMAGE} was rejected; change the image or run `canary retry api`"));
}

#[test]
fn spec_paused_holds_the_stage_but_triggers_still_roll_back() {
    let mut r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    r.spec.paused = true;
    let (plan, paused) = step(&r, &view, &verdict(Outcome::Pass, Outcome::Pass), at(99_999));
    assert_eq!((plan.action, plan.phase_after), (Action::Annotate, Phase::Paused));
    assert_eq!(plan.traffic_after, plan.traffic_before);
    let again = decide(&r, &observed(paused.clone()), &verdict(Outcome::Pass, Outcome::Pass), at(99_999));
    assert_eq!(again.action, Action::None);
    let incident = decide(&r, &observed(paused.clone()), &verdict(Outcome::Pass, Outcome::Fail), at(99_999));
    assert_eq!(incident.action, Action::Rollback);
    r.spec.paused = false;
    let resumed = decide(&r, &observed(paused), &verdict(Outcome::Pass, Outcome::Pass), at(99_999));
    assert_eq!((resumed.action, resumed.phase_after), (Action::Annotate, Phase::Progressing));
}

/// Frozen under its last valid manifest, a rollout is held as `spec.paused` holds it,
/// but said as it is — in the reason, the cause and the recorded transition — with the
/// manifest recorded as it was; its triggers still roll it back, and a manifest that
/// validates again lifts the hold.
#[test]
fn a_frozen_rollout_is_held_and_says_so_everywhere() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let recorded = "{\"recorded\": \"as it was\"}";
    let frozen = |view: &ServiceView, v: &Verdict| decide_frozen(&r, recorded, &observed(view.clone()), v, at(600));
    let plan = frozen(&view, &verdict(Outcome::Pass, Outcome::Pass));
    assert_eq!((plan.action, plan.phase_after, plan.reason.as_str()), (Action::Annotate, Phase::Paused, FROZEN));
    assert_eq!(plan.traffic_after, plan.traffic_before);
    assert_eq!((plan.state.pause, plan.state.applied.as_deref()), (Some(Pause::Frozen), Some(recorded)));
    assert_eq!(plan.state.history.last().map(|t| t.reason.as_str()), Some(FROZEN));
    let held = apply(&view, plan.change.as_ref().unwrap(), true);
    let again = frozen(&held, &verdict(Outcome::Pass, Outcome::Pass));
    assert_eq!((again.action, again.reason.as_str()), (Action::None, FROZEN), "held: nothing more to write");
    assert_eq!(frozen(&held, &verdict(Outcome::Pass, Outcome::Fail)).action, Action::Rollback);
    let valid = decide(&r, &observed(held.clone()), &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!((valid.action, valid.phase_after), (Action::Annotate, Phase::Progressing));
    // Paused by spec.paused, then frozen: the cause on the service follows.
    let mut paused = r.clone();
    paused.spec.paused = true;
    let (_, by_spec) = step(&paused, &view, &verdict(Outcome::Pass, Outcome::Pass), at(600));
    let refrozen = frozen(&by_spec, &verdict(Outcome::Pass, Outcome::Pass));
    assert_eq!((refrozen.action, refrozen.state.pause), (Action::Annotate, Some(Pause::Frozen)));
}

/// `canary pause`, then `spec.paused` on top, then lifted: still paused, and the cause
/// on the service is the command's again (not spec's, which no longer holds it).
#[test]
fn a_command_pause_outliving_a_manifest_pause_says_whose_it_is() {
    let mut r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let mut state = RolloutState::read(&view.annotations);
    state.paused_by = Some("cli".into());
    let by_hand = apply(&view, &Change { template: None, traffic: None, annotations: state.annotations() }, true);
    let (plan, paused) = step(&r, &by_hand, &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::Command)));
    r.spec.paused = true;
    let (plan, by_spec) = step(&r, &paused, &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::Spec)));
    r.spec.paused = false;
    let (plan, after) = step(&r, &by_spec, &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!(
        (plan.action, plan.phase_after, plan.state.pause),
        (Action::Annotate, Phase::Paused, Some(Pause::Command))
    );
    assert_eq!(RolloutState::read(&after.annotations).reason, CLI_PAUSE);
    let again = decide(&r, &observed(after), &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!(again.action, Action::None, "and then nothing more to write");
}

#[test]
fn a_new_image_mid_rollout_restarts_at_deploy_while_stable_serves() {
    let r = rollout("");
    let (view, old_canary) = at_stage(&r, 2, 0);
    let mut newer = r.clone();
    newer.spec.template.image = "gcr.io/p/api:v3".into();
    let plan = decide(&newer, &observed(view), &verdict(Outcome::Pass, Outcome::Pass), at(60));
    assert_eq!((plan.action, plan.phase_after), (Action::Deploy, Phase::Deploying));
    let canary = plan.state.canary.clone().unwrap();
    assert_ne!(canary, old_canary);
    assert_eq!(plan.traffic_after, split(&[(STABLE, 100)]));
}

#[test]
fn metrics_errors_advance_nothing() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 1, 0);
    let broken =
        Verdict { metrics_error: Some("503 from Cloud Monitoring".into()), ..verdict(Outcome::Pass, Outcome::Pass) };
    let plan = decide(&r, &observed(view), &broken, at(4000));
    assert_eq!(plan.action, Action::None);
    assert!(plan.reason.starts_with("metrics unavailable"), "{}", plan.reason);
}

#[test]
fn an_unsettled_service_is_waited_for() {
    let mut view = service(json!({"canary/owner": "api"}));
    view.reconciling = true;
    let plan = decide(&rollout(""), &observed(view), &Verdict::default(), at(0));
    assert_eq!((plan.action, plan.requeue), (Action::None, Duration::from_secs(10)));
}

fn any_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![Just(Outcome::Pass), Just(Outcome::Fail), Just(Outcome::Inconclusive)]
}

fn any_verdict() -> impl Strategy<Value = Verdict> {
    (
        (any_outcome(), any_outcome(), any::<bool>(), proptest::option::of(any::<bool>())),
        (any::<bool>(), proptest::option::of(any::<bool>())),
    )
        .prop_map(|((g, t, metrics_error, smoke), (shared, stable_recovered))| Verdict {
            smoke: smoke.map(|ok| if ok { Smoke::Passed } else { Smoke::Failed("GET /health -> 500".into()) }),
            triggers: vec![Check { shared: shared && t == Outcome::Fail, stable: Some(0.12), ..trigger(t) }],
            gates: vec![gate(g)],
            metrics_error: metrics_error.then(|| "timeout".to_owned()),
            stable_recovered,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whole rollouts with random verdicts, clock steps and revisions that start late:
    /// at every step the plan keeps its guarantees.
    #[test]
    fn every_plan_keeps_the_guarantees(steps in proptest::collection::vec((any_verdict(), 0u64..20_000, any::<bool>(), any::<bool>()), 1..40), smoke in any::<bool>()) {
        let r = rollout(if smoke { "  smokeTests: [{path: /health}]" } else { "" });
        let mut view = service(json!({}));
        let mut now = 0;
        for (verdict, dt, ready, paused) in steps {
            now += dt;
            let mut r = r.clone();
            r.spec.paused = paused;
            let plan = decide(&r, &observed(view.clone()), &verdict, at(now));
            // Deterministic.
            prop_assert_eq!(&plan, &decide(&r, &observed(view.clone()), &verdict, at(now)));
            // One write or none, and an action exactly when there is a write.
            prop_assert_eq!(plan.change.is_some(), plan.action != Action::None);
            if let Some(traffic) = plan.change.as_ref().and_then(|c| c.traffic.as_ref()) {
                prop_assert_eq!(traffic.iter().map(|t| t.percent).sum::<u32>(), 100);
            }
            let canary = plan.state.canary.clone().or_else(|| RolloutState::read(&view.annotations).canary);
            let phase = RolloutState::read(&view.annotations).phase;
            let canary_ready = view.latest_ready.is_some() && view.latest_ready == RolloutState::read(&view.annotations).canary && view.settled();
            let judged = phase.is_some_and(|p| matches!(p, Phase::Progressing | Phase::Waiting | Phase::Paused))
                || (phase.is_some_and(|p| matches!(p, Phase::Deploying | Phase::Verifying)) && canary_ready);
            // A failed trigger takes the canary's traffic away at once: rolled back, or,
            // a first shared incident in a stage, paused with the canary at 0%. Paused by a
            // shared incident already, the verdict is about minutes before the pause.
            let before_state = RolloutState::read(&view.annotations);
            let in_incident = before_state.phase == Some(Phase::Paused) && before_state.pause == Some(crate::state::Pause::SharedIncident);
            if let (Some(check), true, false) = (verdict.failed_trigger(), judged, in_incident) {
                let first_shared = check.shared
                    && before_state.incidents == 0
                    && before_state.stage >= 1
                    && before_state.phase != Some(Phase::Paused)
                    && !r.spec.paused;
                if first_shared {
                    prop_assert_eq!(plan.state.pause, Some(crate::state::Pause::SharedIncident));
                    prop_assert!(!plan.state.rejected.contains(&IMAGE.to_owned()));
                } else {
                    prop_assert_eq!(plan.action, Action::Rollback);
                }
                prop_assert_eq!(plan.traffic_after.get(canary.as_deref().unwrap_or_default()).copied().unwrap_or(0), 0);
            }
            // A stage advances only after its hold, with every gate passing.
            let before = RolloutState::read(&view.annotations);
            if plan.state.stage > before.stage && before.stage >= 1 {
                let hold = r.spec.stages[before.stage - 1].hold.as_ref().map_or(Duration::ZERO, |h| h.as_std());
                prop_assert!(at(now).duration_since(before.stage_started.unwrap()).unwrap() >= hold);
                prop_assert!(verdict.gates.iter().all(|g| g.result == Outcome::Pass));
            }
            // The revision name is stable for a template.
            if plan.action == Action::Deploy {
                let again = decide(&r, &observed(view.clone()), &verdict, at(now + 5));
                prop_assert_eq!(again.state.canary, plan.state.canary.clone());
            }
            view = match &plan.change {
                Some(change) => {
                    let next = apply(&view, change, ready || change.template.is_none());
                    // A fixpoint: once applied, deciding again at the same moment on the
                    // same data changes nothing (resuming from a spec pause restarts the
                    // clock of the stage, which is a move of time).
                    let resumed = plan.phase_before == Some(Phase::Paused)
                        && matches!(plan.phase_after, Phase::Progressing | Phase::Deploying);
                    let deployed_ready = plan.action == Action::Deploy && ready;
                    // A verdict is about one stage: a failed gate acts at once, so it
                    // cannot be carried into the stage just entered.
                    let new_stage = plan.state.stage != RolloutState::read(&view.annotations).stage
                        && verdict.gates.iter().any(|g| g.result == Outcome::Fail);
                    if !resumed && !deployed_ready && !new_stage {
                        let again = decide(&r, &observed(next.clone()), &verdict, at(now));
                        prop_assert!(again.change.is_none(), "{:?} then {:?}: {}", plan.action, again.action, again.reason);
                    }
                    next
                }
                None => view,
            };
        }
    }

    /// Random annotations and service JSON never make decide panic.
    #[test]
    fn decide_is_total(phase in "[A-Za-z]{0,12}", stage in "[0-9a-z]{0,3}", started in "[0-9TZ:-]{0,25}", image in "[a-z:/.0-9]{0,20}", reconciling in any::<bool>(), generation in 0u64..5, verdict in any_verdict()) {
        let annotations = json!({"canary/owner": "api", "canary/phase": phase, "canary/stage": stage, "canary/stage-started": started, "canary/image": image, "canary/canary": "api-1234567", "canary/stable": STABLE});
        let mut view = service(annotations);
        view.reconciling = reconciling;
        view.generation = generation;
        let _ = decide(&rollout(""), &observed(view), &verdict, at(100));
    }
}

/// Every combination of situation × verdict × `spec.paused`, and each kind of
/// ownership, each pinned to its plan: one line per row in a snapshot a reviewer reads.
#[test]
fn the_decision_table() {
    let r = rollout("  smokeTests: [{path: /health}]");
    let fresh = service(json!({}));
    let deploy = decide(&r, &observed(fresh.clone()), &Verdict::default(), at(0));
    let starting = apply(&fresh, deploy.change.as_ref().unwrap(), false);
    let ready = apply(&fresh, deploy.change.as_ref().unwrap(), true);
    let (stage1, _) = at_stage(&r, 1, 0);
    let (stage4, _) = at_stage(&rollout(""), 3, 0);
    let with_phase = |view: &ServiceView, phase: Phase, reason: &str, reject: bool| {
        let mut state = RolloutState::read(&view.annotations);
        state.enter(phase, reason, at(0));
        if reject {
            state.reject(IMAGE);
        }
        let change = Change { template: None, traffic: None, annotations: state.annotations() };
        apply(view, &change, true)
    };
    let paused_for = |view: &ServiceView, cause: Pause, reason: &str| {
        let mut state = RolloutState::read(&view.annotations);
        state.enter_pause(cause, reason, at(0));
        let change = Change { template: None, traffic: None, annotations: state.annotations() };
        apply(view, &change, true)
    };
    let situations: Vec<(&str, ServiceView, u64)> = vec![
        ("not deployed yet", fresh.clone(), 0),
        ("deploying, revision starting", starting.clone(), 60),
        ("deploying, revision starting past the deadline", starting, 700),
        ("deploying, revision ready", ready, 60),
        ("stage 1 of 3, within its hold", stage1.clone(), 600),
        ("stage 1 of 3, hold over", stage1.clone(), 3600),
        ("stage 3 of 3, hold over", stage4, 3600),
        ("waiting for data", with_phase(&stage1, Phase::Waiting, "waiting for data", false), 3700),
        ("paused by a failed gate", paused_for(&stage1, Pause::GateFailed, "GateFailed: x"), 3700),
        ("paused by spec.paused", paused_for(&stage1, Pause::Spec, "paused by spec.paused"), 3700),
        ("paused for too little data", paused_for(&stage1, Pause::InsufficientData, "InsufficientData: x"), 3700),
        ("paused, its cause not on record", paused_for(&stage1, Pause::Unrecorded, "held"), 3700),
        ("paused while its manifest was invalid", paused_for(&stage1, Pause::Frozen, FROZEN), 3700),
        ("rolled back", with_phase(&stage1, Phase::RolledBack, "rolled back: x", true), 3700),
        ("failed", with_phase(&stage1, Phase::Failed, "SmokeTestFailed: x", true), 3700),
    ];
    let verdicts: Vec<(&str, Verdict)> = vec![
        ("all pass", Verdict { smoke: Some(Smoke::Passed), ..verdict(Outcome::Pass, Outcome::Pass) }),
        ("trigger fails", Verdict { smoke: Some(Smoke::Passed), ..verdict(Outcome::Pass, Outcome::Fail) }),
        ("gate fails", Verdict { smoke: Some(Smoke::Passed), ..verdict(Outcome::Fail, Outcome::Pass) }),
        (
            "inconclusive",
            Verdict { smoke: Some(Smoke::Passed), ..verdict(Outcome::Inconclusive, Outcome::Inconclusive) },
        ),
        (
            "metrics error",
            Verdict { metrics_error: Some("timeout".into()), smoke: Some(Smoke::Passed), ..Verdict::default() },
        ),
        (
            "smoke test fails",
            Verdict { smoke: Some(Smoke::Failed("GET /health answered 503".into())), ..Verdict::default() },
        ),
    ];
    let show = |plan: &Plan| {
        let traffic = |s: &BTreeMap<String, u32>| {
            s.iter()
                .map(|(r, p)| format!("{}={p}", if r == STABLE { "stable" } else { "canary" }))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{:?} {} -> {} [{}] {:?}: {}",
            plan.action,
            plan.phase_before.map_or("-", |p| p.name()),
            plan.phase_after,
            traffic(&plan.traffic_after),
            plan.result,
            plan.reason.replace(plan.state.canary.as_deref().unwrap_or("\u{0}"), "CANARY"),
        )
    };
    let mut lines = Vec::new();
    for (situation, view, t) in &situations {
        for (name, v) in &verdicts {
            for paused in [false, true] {
                let mut r = if situation.starts_with("stage 3") { rollout("") } else { r.clone() };
                r.spec.paused = paused;
                let plan = decide(&r, &observed(view.clone()), v, at(*t));
                lines.push(format!("{situation} | {name} | paused={paused} => {}", show(&plan)));
            }
        }
    }
    let mut foreign = service(json!({"canary/owner": "checkout"}));
    lines.push(format!(
        "owned by another rollout => {}",
        show(&decide(&r, &observed(foreign.clone()), &Verdict::default(), at(0)))
    ));
    foreign.annotations.clear();
    let mut no_adopt = r.clone();
    no_adopt.spec.adopt = false;
    lines.push(format!(
        "unowned, adopt: false => {}",
        show(&decide(&no_adopt, &observed(foreign.clone()), &Verdict::default(), at(0)))
    ));
    lines.push(format!(
        "unowned, adopt: true => {}",
        show(&decide(&r, &observed(foreign.clone()), &Verdict::default(), at(0)))
    ));
    foreign.statuses.push(crate::cloudrun::service::TargetStatus {
        revision: "other".into(),
        percent: 0,
        tag: None,
        uri: None,
    });
    foreign.statuses[0].percent = 60;
    foreign.statuses[1].percent = 40;
    lines.push(format!(
        "unowned, traffic split => {}",
        show(&decide(&r, &observed(foreign), &Verdict::default(), at(0)))
    ));
    lines.push(format!("service missing => {}", show(&decide(&r, &Observed::Missing, &Verdict::default(), at(0)))));
    insta::assert_snapshot!(lines.join("\n"));
}

/// A person's write: `traffic` (and, if given, a template pinning `revision`) laid over
/// the service, canary's annotations left as they are.
fn by_hand(view: &ServiceView, traffic: Vec<(&str, u32, Option<&str>)>, revision: Option<&str>) -> ServiceView {
    let targets = traffic
        .into_iter()
        .map(|(r, percent, tag)| crate::cloudrun::service::Target {
            revision: Some(r.to_owned()),
            percent,
            tag: tag.map(str::to_owned),
        })
        .collect();
    let template = revision.map(|r| {
        let mut t = view.template();
        t["revision"] = r.into();
        t["containers"][0]["image"] = "gcr.io/p/api:hotfix".into();
        t
    });
    let change = Change { template, traffic: Some(targets), annotations: view.annotations.clone() };
    apply(view, &change, true)
}

/// The service with these `canary/` annotations gone, as a hand edit would leave it.
fn without(view: &ServiceView, keys: &[&str]) -> ServiceView {
    let mut annotations = view.annotations.clone();
    for key in keys {
        annotations.remove(*key);
    }
    apply(view, &Change { template: None, traffic: None, annotations }, true)
}

fn with_request(view: &ServiceView, request: crate::state::Request) -> ServiceView {
    let mut state = RolloutState::read(&view.annotations);
    state.request = Some(request);
    apply(view, &Change { template: None, traffic: None, annotations: state.annotations() }, true)
}

/// The bug the simulation issue opened with: a person sends 100% back to stable mid-stage.
/// canary neither reverts it nor carries on as if at 5%: it pauses, says what changed and
/// when it last wrote, the hold stops counting, and the triggers still apply.
#[test]
fn traffic_changed_outside_canary_pauses_without_undoing_it() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let all_stable = by_hand(&view, vec![(STABLE, 100, Some("stable")), (&canary, 0, Some("canary"))], None);
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let (plan, paused) = step(&r, &all_stable, &pass, at(600));
    assert_eq!(
        (plan.action, plan.phase_after, plan.state.pause),
        (Action::Annotate, Phase::Paused, Some(Pause::ChangedOutside))
    );
    assert!(plan.change.as_ref().unwrap().traffic.is_none(), "the person's split is not reverted");
    assert_eq!(
        plan.reason,
        format!(
            "ChangedOutsideCanary: traffic is {STABLE} 100% (stable), {canary} 0% (canary), canary last set \
             {STABLE} 95% (stable), {canary} 5% (canary) at 2026-11-18T11:06:40Z; `canary resume api` puts canary's \
             split back, `canary abort api` rolls back"
        )
    );
    assert_eq!(paused.split(), split(&[(STABLE, 100)]));
    // Held: past the hold nothing advances, and nothing more is written.
    let later = decide(&r, &observed(paused.clone()), &pass, at(7200));
    assert_eq!((later.action, later.phase_after), (Action::None, Phase::Paused));
    // A trigger still rolls back.
    let failing = decide(&r, &observed(paused.clone()), &verdict(Outcome::Pass, Outcome::Fail), at(7200));
    assert_eq!((failing.action, failing.result), (Action::Rollback, PassResult::RolledBack));
    // `canary abort` is a rollback, the image rejected.
    let aborted = decide(&r, &observed(with_request(&paused, crate::state::Request::Abort)), &pass, at(7200));
    assert_eq!((aborted.action, aborted.phase_after), (Action::Rollback, Phase::RolledBack));
    assert_eq!(aborted.state.rejected, [IMAGE]);
    // `canary resume` puts 95/5 back; the 6000 s paused do not count toward the hold.
    let (resumed, back) = step(&r, &with_request(&paused, crate::state::Request::Resume), &pass, at(6600));
    assert_eq!((resumed.action, resumed.phase_after), (Action::SetTraffic, Phase::Progressing));
    assert_eq!(resumed.traffic_after, split(&[(STABLE, 95), (&canary, 5)]));
    assert_eq!(resumed.state.stage_started, Some(at(6000)));
    let holding = decide(&r, &observed(back.clone()), &pass, at(6000 + 3500));
    assert_eq!((holding.action, holding.phase_after), (Action::None, Phase::Progressing), "{}", holding.reason);
    let next = decide(&r, &observed(back), &pass, at(6000 + 3600));
    assert_eq!((next.action, next.state.stage), (Action::SetTraffic, 2));
}

#[test]
fn other_changes_outside_canary_pause_too() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let changes = [
        ("another split", by_hand(&view, vec![(STABLE, 50, Some("stable")), (&canary, 50, Some("canary"))], None)),
        ("the canary tag removed", by_hand(&view, vec![(STABLE, 95, Some("stable")), (&canary, 5, None)], None)),
        (
            "a third revision",
            by_hand(
                &view,
                vec![(STABLE, 85, Some("stable")), (&canary, 5, Some("canary")), ("api-00003-xyz", 10, None)],
                None,
            ),
        ),
    ];
    for (what, changed) in changes {
        let plan = decide(&r, &observed(changed), &pass, at(600));
        assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::ChangedOutside)), "{what}");
        assert!(plan.change.unwrap().traffic.is_none(), "{what}: not reverted");
    }
    // A person's own tagged 0% entry is theirs: not a change canary minds.
    let preview = by_hand(
        &view,
        vec![(STABLE, 95, Some("stable")), (&canary, 5, Some("canary")), (STABLE, 0, Some("team-preview"))],
        None,
    );
    assert_eq!(decide(&r, &observed(preview), &pass, at(600)).phase_after, Phase::Progressing);
}

#[test]
fn a_template_changed_outside_canary_pauses_and_resume_deploys_again() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let hotfix = by_hand(&view, vec![("api-hotfix", 100, None)], Some("api-hotfix"));
    let (plan, paused) = step(&r, &hotfix, &pass, at(600));
    assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::ChangedOutside)));
    assert!(
        plan.reason.contains(&format!("the template makes api-hotfix, not the canary {canary}")),
        "{}",
        plan.reason
    );
    assert!(plan.reason.contains("`canary resume api` deploys the canary again"), "{}", plan.reason);
    let (resumed, _) = step(&r, &with_request(&paused, crate::state::Request::Resume), &pass, at(900));
    assert_eq!((resumed.action, resumed.phase_after, resumed.state.stage), (Action::Deploy, Phase::Deploying, 0));
    assert_eq!(resumed.traffic_after, split(&[(STABLE, 100)]));
}

#[test]
fn a_change_outside_canary_while_deploying_pauses_before_the_first_stage() {
    let r = rollout("");
    let (deploy, deployed) = step(&r, &service(json!({})), &Verdict::default(), at(0));
    let canary = deploy.state.canary.clone().unwrap();
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let to_canary = by_hand(&deployed, vec![(STABLE, 0, Some("stable")), (&canary, 100, Some("canary"))], None);
    let (plan, paused) = step(&r, &to_canary, &pass, at(30));
    assert_eq!((plan.phase_after, plan.state.pause, plan.state.stage), (Phase::Paused, Some(Pause::ChangedOutside), 0));
    assert_eq!(decide(&r, &observed(paused.clone()), &pass, at(900)).action, Action::None, "held, not failed");
    let (resumed, back) = step(&r, &with_request(&paused, crate::state::Request::Resume), &pass, at(900));
    assert_eq!((resumed.action, resumed.phase_after), (Action::SetTraffic, Phase::Deploying));
    assert_eq!(resumed.traffic_after, split(&[(STABLE, 100)]));
    let first = decide(&r, &observed(back), &pass, at(960));
    assert_eq!((first.action, first.state.stage), (Action::SetTraffic, 1));
}

/// No record of canary's last write (a service written by an older canary): nothing to
/// compare with, so no pause; the next write records it.
#[test]
fn without_a_record_of_canarys_traffic_nothing_is_outside() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 1, 0);
    let legacy = without(&view, &["canary/traffic"]);
    let changed = by_hand(&legacy, vec![(STABLE, 100, Some("stable")), (&canary, 0, Some("canary"))], None);
    let plan = decide(&r, &observed(changed), &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!(plan.phase_after, Phase::Progressing);
}

/// Found by the simulation (seeds 5 and 13): a new image committed while `spec.paused`
/// holds a rollout left the old canary reporting its old phase, unjudged, forever. Now it
/// is Paused where it is, its triggers still roll it back (rejecting the old image, not
/// the new one), and lifting the pause deploys the new image.
#[test]
fn a_new_image_while_spec_paused_holds_the_canary_under_way_and_keeps_judging_it() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 2, 0);
    let mut newer = r.clone();
    newer.spec.template.image = "gcr.io/p/api:v3".into();
    newer.spec.paused = true;
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let (plan, held) = step(&newer, &view, &pass, at(60));
    assert_eq!((plan.action, plan.phase_after, plan.state.pause), (Action::Annotate, Phase::Paused, Some(Pause::Spec)));
    assert!(plan.change.as_ref().unwrap().traffic.is_none());
    assert!(plan.reason.contains(&format!("{canary} stays where it is; gcr.io/p/api:v3 is not deployed yet")));
    assert_eq!(decide(&newer, &observed(held.clone()), &pass, at(120)).action, Action::None);
    assert!(needs(&newer, &observed(held.clone())).metrics, "the canary under way is still judged");
    let failing = decide(&newer, &observed(held.clone()), &verdict(Outcome::Pass, Outcome::Fail), at(120));
    assert_eq!((failing.action, failing.state.rejected.clone()), (Action::Rollback, vec![IMAGE.to_owned()]));
    newer.spec.paused = false;
    let lifted = decide(&newer, &observed(held), &pass, at(180));
    assert_eq!((lifted.action, lifted.phase_after), (Action::Deploy, Phase::Deploying));
}

/// Found by the simulation (seed 16): `canary pause` before the first stage held the
/// canary at 0% while the service still said Deploying. Now it says Paused (command)
/// until `resume`, which carries on to the first stage.
#[test]
fn a_pause_before_the_first_stage_is_paused_and_resume_carries_on() {
    let r = rollout("");
    let (_, deployed) = step(&r, &service(json!({})), &Verdict::default(), at(0));
    let mut state = RolloutState::read(&deployed.annotations);
    state.paused_by = Some("cli".into());
    let by_hand = apply(&deployed, &Change { template: None, traffic: None, annotations: state.annotations() }, true);
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let (plan, paused) = step(&r, &by_hand, &pass, at(30));
    assert_eq!(
        (plan.action, plan.phase_after, plan.state.pause, plan.state.stage),
        (Action::Annotate, Phase::Paused, Some(Pause::Command), 0)
    );
    // Held past the deadline a revision has to start: a pause, not a failure.
    assert_eq!(decide(&r, &observed(paused.clone()), &pass, at(3600)).action, Action::None);
    let mut state = RolloutState::read(&paused.annotations);
    state.paused_by = None;
    state.request = Some(crate::state::Request::Resume);
    let resumed = apply(&paused, &Change { template: None, traffic: None, annotations: state.annotations() }, true);
    let (plan, going) = step(&r, &resumed, &pass, at(3600));
    assert_eq!((plan.action, plan.phase_after), (Action::Annotate, Phase::Deploying));
    let first = decide(&r, &observed(going), &pass, at(3660));
    assert_eq!((first.action, first.state.stage), (Action::SetTraffic, 1));
}

/// Found by the simulation (seeds 66, 155): after a promotion a person deployed a hotfix
/// by hand; canary "deployed" the manifest's image again, which pinned the very revision
/// that was stable (a split of a revision with itself), and then failed it. Now it says
/// what happened and waits for git; a new image rolls out beside what serves now.
#[test]
fn a_hand_deploy_over_a_promoted_service_waits_for_git_and_the_next_image_starts_from_it() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 3, 0);
    let (promoted, done) = step(&r, &view, &verdict(Outcome::Pass, Outcome::Pass), at(3600));
    assert_eq!(promoted.phase_after, Phase::Promoted);
    let hotfix = by_hand(&done, vec![("api-hotfix", 100, None)], Some("api-hotfix"));
    let pass = verdict(Outcome::Pass, Outcome::Pass);
    let (plan, said) = step(&r, &hotfix, &pass, at(3700));
    assert_eq!((plan.action, plan.phase_after), (Action::Annotate, Phase::Promoted));
    let change = plan.change.as_ref().unwrap();
    assert!(change.template.is_none() && change.traffic.is_none(), "nothing but the reason is written");
    assert!(plan.reason.starts_with("ChangedOutsideCanary: api runs gcr.io/p/api:hotfix"), "{}", plan.reason);
    assert_eq!(decide(&r, &observed(said.clone()), &pass, at(3800)).action, Action::None);
    let mut newer = r.clone();
    newer.spec.template.image = "gcr.io/p/api:v3".into();
    let deploy = decide(&newer, &observed(said), &pass, at(3900));
    assert_eq!((deploy.action, deploy.state.stable.as_deref()), (Action::Deploy, Some("api-hotfix")));
    assert_ne!(deploy.state.canary.as_deref(), Some(canary.as_str()));
}

/// Found by the simulation (seeds 6476, 11216): with `canary/stable` deleted by hand and
/// a hotfix deployed over the service (traffic to LATEST, canary's tags gone), every
/// rollback was refused (a target with no revision) and a new image could not deploy.
/// The revision serving the traffic stands in for the stable one.
#[test]
fn with_no_stable_on_record_a_rollback_and_a_deploy_use_what_serves() {
    let r = rollout("");
    let (view, _) = at_stage(&r, 2, 0);
    let unrecorded = without(&view, &["canary/stable"]);
    let hotfix = by_hand(&unrecorded, vec![("api-hotfix", 100, None)], Some("api-hotfix"));
    let plan = decide(&r, &observed(hotfix.clone()), &verdict(Outcome::Pass, Outcome::Fail), at(600));
    assert_eq!((plan.action, plan.phase_after), (Action::Rollback, Phase::RolledBack));
    assert_eq!(plan.traffic_after, split(&[("api-hotfix", 100)]));
    let mut newer = r.clone();
    newer.spec.template.image = "gcr.io/p/api:v3".into();
    let deploy = decide(&newer, &observed(hotfix), &verdict(Outcome::Pass, Outcome::Pass), at(600));
    assert_eq!((deploy.action, deploy.state.stable.as_deref()), (Action::Deploy, Some("api-hotfix")));
}

/// Found by the simulation (seed 7154): a person's "50/50" between two entries of the
/// same revision (its stable and canary tags) left it serving everything, yet canary
/// no longer saw one revision at 100% and deployed the stable revision beside itself.
#[test]
fn one_revision_under_two_tags_is_still_the_sole_revision() {
    let r = rollout("");
    let (view, canary) = at_stage(&r, 3, 0);
    let (_, promoted) = step(&r, &view, &verdict(Outcome::Pass, Outcome::Pass), at(3600));
    let halves = by_hand(&promoted, vec![(&canary, 50, Some("stable")), (&canary, 50, Some("canary"))], None);
    assert_eq!(halves.sole_revision(), Some(canary.as_str()));
    let plan = decide(&r, &observed(halves), &verdict(Outcome::Pass, Outcome::Pass), at(3700));
    assert_ne!(plan.action, Action::Deploy, "{}", plan.reason);
}

/// Found by the simulation's 100,000 seeds (19 of them, e.g. 12972, 19817): with
/// `canary/traffic` unreadable and the canary's tag removed, or `canary/stage-started`
/// unreadable, a deploy waited forever (for a smoke test with no tag URL, or for a
/// deadline counted from each pass's now). The missing tag is a change outside canary;
/// a missing start is written as now, so the deadline ends.
#[test]
fn a_deploy_with_its_tag_or_its_start_edited_away_does_not_wait_forever() {
    let r = rollout("  smokeTests: [{path: /health}]");
    let (deploy, deployed) = step(&r, &service(json!({})), &Verdict::default(), at(0));
    let canary = deploy.state.canary.clone().unwrap();
    let unrecorded = without(&deployed, &["canary/traffic"]);
    let untagged = by_hand(&unrecorded, vec![(STABLE, 100, Some("stable")), (&canary, 0, None)], None);
    let plan = decide(&r, &observed(untagged), &Verdict::default(), at(60));
    assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::ChangedOutside)));
    assert!(plan.reason.contains("without the canary's tag"), "{}", plan.reason);
    // A revision still starting, with nothing left on the service that says since when.
    let starting = apply(&service(json!({})), deploy.change.as_ref().unwrap(), false);
    let mut annotations = starting.annotations.clone();
    annotations.remove("canary/stage-started");
    annotations.remove("canary/history");
    annotations.remove("canary/traffic-at");
    let mut raw = starting.value();
    raw["annotations"] = serde_json::to_value(&annotations).unwrap();
    let no_start = ServiceView::parse(raw);
    let (plan, written) = step(&r, &no_start, &Verdict::default(), at(60));
    assert_eq!((plan.action, plan.state.stage_started), (Action::Annotate, Some(at(60))));
    let late = decide(&r, &observed(written), &Verdict::default(), at(60 + 700));
    assert_eq!(late.phase_after, Phase::Failed, "{}", late.reason);
}
