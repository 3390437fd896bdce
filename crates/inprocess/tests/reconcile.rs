//! The reconciler and the manual commands against the emulator's world, in process and
//! on virtual time: etag conflicts, writes that do not land, frozen manifests, and one
//! rollout's failure beside another's success.

mod support;

use std::collections::BTreeMap;
use std::slice::from_ref;

use canary_core::decide::{Action, FROZEN, PassResult};
use canary_core::operate::{self, Command, Refusal};
use canary_core::reconcile::{ErrorKind, Invalid, Mode, PassError, pass, pass_with_invalid};
use canary_core::state::{Pause, Phase, RolloutState};
use serde_json::{Value, json};

use support::{Fixture, Meddler, PROJECT, Patch, PatchCall, REGION, build, failure, labelled, manifest, validate};

/// The first write was refused by the world as stale (409 ABORTED, a conflict to canary)
/// and the second, made on the service read again, landed.
fn refused_then_landed(calls: &[PatchCall]) {
    assert_eq!(calls.len(), 2, "one refused write and one that landed: {calls:#?}");
    let refused = calls[0].answer.clone().expect_err("the stale write is refused");
    assert_eq!((refused.status, refused.code.as_str()), (Some(409), "ABORTED"), "{refused}");
    assert!(refused.is_conflict(), "{refused}");
    assert_ne!(calls[1].body["etag"], calls[0].body["etag"], "the retry carries the etag read again");
    assert!(calls[1].answer.is_ok(), "{:?}", calls[1].answer);
}

/// Someone edits the service (a label, an annotation of their own, a tagged traffic
/// entry) between canary's read and its write: canary's write is refused, it reads the
/// service again, decides again, and its write lands on top of theirs.
#[tokio::test]
async fn a_competing_write_is_read_again_and_neither_write_is_lost() {
    let f = Fixture::new(1);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    f.to_first_stage(from_ref(&rollout)).await;
    let state = f.state(&name);
    let (stable, canary) = (state.stable.unwrap(), state.canary.unwrap());
    f.advance(21 * 60);
    let listed_etag = f.read(&name)["etag"].clone();
    let preview = stable.clone();
    let meddler = Meddler::new(&f, move |i, _| {
        if i > 0 {
            return Patch::Forward;
        }
        let preview = preview.clone();
        Patch::CompeteFirst(Box::new(move |service: &mut Value| {
            service["labels"]["team"] = "payments".into();
            service["annotations"]["example.com/on-call"] = "ada".into();
            service["traffic"].as_array_mut().unwrap().push(
                json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": preview, "tag": "preview"}),
            );
        }))
    });

    let outcome = pass(&meddler, from_ref(&rollout), Mode::Apply).await.remove(0);

    assert_eq!(outcome.error, None);
    let plan = outcome.plan.expect("a plan");
    assert_eq!((plan.action, plan.phase_after, plan.state.stage), (Action::SetTraffic, Phase::Progressing, 2));
    let calls = meddler.calls();
    refused_then_landed(&calls);
    assert_eq!(calls[0].body["etag"], listed_etag, "the first write carried the etag of the list");
    assert_eq!(calls[1].body["labels"]["team"], "payments", "the retry is built on the service read again");
    let service = f.read(&name);
    assert_eq!(service["labels"]["team"], "payments", "the other writer's label survives");
    assert_eq!(service["annotations"]["example.com/on-call"], "ada", "and their annotation");
    let preview_entries: Vec<&Value> =
        service["traffic"].as_array().unwrap().iter().filter(|t| t["tag"] == "preview").collect();
    assert_eq!(preview_entries.len(), 1, "{}", service["traffic"]);
    assert_eq!(preview_entries[0]["revision"], stable.as_str());
    let state = f.state(&name);
    assert_eq!((state.phase, state.stage), (Some(Phase::Progressing), 2), "canary's write landed too");
    f.advance(15);
    assert_eq!(f.serving(&name), BTreeMap::from([(stable, 50), (canary, 50)]));
}

/// A service that changes under every write: the pass tries its documented three times,
/// each on a fresh read, then says so, and the next pass tries again.
#[tokio::test]
async fn a_write_that_conflicts_every_time_is_given_up_after_three_attempts() {
    let f = Fixture::new(11);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    f.to_first_stage(from_ref(&rollout)).await;
    f.advance(21 * 60);
    let meddler = Meddler::new(&f, |i, _| {
        Patch::CompeteFirst(Box::new(move |service: &mut Value| {
            service["labels"]["writes"] = (i + 1).to_string().into();
        }))
    });

    let outcome = pass(&meddler, from_ref(&rollout), Mode::Apply).await.remove(0);

    assert_eq!(outcome.error, Some(PassError::KeptChanging));
    let error = outcome.error_text().expect("the pass reports that it gave up");
    assert!(error.contains("3 etag conflicts"), "{error}");
    assert!(outcome.plan.is_none(), "no plan is reported as carried out");
    let calls = meddler.calls();
    assert_eq!(calls.len(), 3, "three attempts, no more");
    for call in &calls {
        assert_eq!(call.answer.as_ref().map_err(|e| e.status), Err(Some(409)));
    }
    let etags: std::collections::BTreeSet<String> = calls.iter().map(|c| c.body["etag"].to_string()).collect();
    assert_eq!(etags.len(), 3, "each attempt on a fresh read");
    assert_eq!(f.state(&name).stage, 1, "nothing of canary's landed");
    assert_eq!(f.read(&name)["labels"]["writes"], "3", "every write of the other writer did");
    let outcome = f.pass(from_ref(&rollout)).await.remove(0);
    assert_eq!((outcome.error, f.state(&name).stage), (None, 2), "the next pass carries on");
}

/// `canary pause`, `resume` and `abort`, each racing another writer: refused once,
/// applied again to the service read again, landed, and acted on by the next pass.
#[tokio::test]
async fn pause_resume_and_abort_under_a_conflict_land_and_the_next_pass_acts_on_them() {
    let f = Fixture::new(2);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    let rollouts = from_ref(&rollout);
    f.to_first_stage(rollouts).await;
    f.advance(15);
    let first_stage = f.serving(&name);
    let started = f.state(&name).stage_started.unwrap();
    let stable = f.state(&name).stable.unwrap();
    let racing = |label: &'static str| {
        Meddler::new(&f, move |i, _| if i == 0 { Patch::CompeteFirst(labelled(label, "yes")) } else { Patch::Forward })
    };

    // Pause.
    let meddler = racing("edited-during-pause");
    let said = operate::run(&meddler, &rollout, Command::Pause).await.expect("the pause lands");
    assert!(said.contains("pause requested"), "{said}");
    refused_then_landed(&meddler.calls());
    assert_eq!(f.annotation(&name, "canary/paused-by").as_deref(), Some("cli"));
    let paused_at = f.now();
    let outcome = f.pass(rollouts).await.remove(0);
    assert_eq!(outcome.error, None);
    let plan = outcome.plan.unwrap();
    assert_eq!((plan.phase_after, plan.state.pause), (Phase::Paused, Some(Pause::Command)));
    assert_eq!(f.annotation(&name, "canary/paused-for").as_deref(), Some("command"));
    // Held well past the stage's 20-minute hold.
    f.advance(30 * 60);
    let outcome = f.pass(rollouts).await.remove(0);
    let plan = outcome.plan.unwrap();
    assert_eq!((plan.action, plan.phase_after, plan.state.stage), (Action::None, Phase::Paused, 1));
    assert_eq!(f.serving(&name), first_stage, "paused traffic stays");

    // Resume.
    let meddler = racing("edited-during-resume");
    let said = operate::run(&meddler, &rollout, Command::Resume).await.expect("the resume lands");
    assert!(said.contains("resume requested"), "{said}");
    refused_then_landed(&meddler.calls());
    assert_eq!(f.annotation(&name, "canary/request").as_deref(), Some("resume"));
    let resumed_at = f.now();
    let outcome = f.pass(rollouts).await.remove(0);
    assert_eq!(outcome.error, None);
    let state = f.state(&name);
    assert_eq!((state.phase, state.stage), (Some(Phase::Progressing), 1));
    assert_eq!((state.paused_by, state.request), (None, None), "the request is consumed");
    assert_eq!(
        state.stage_started,
        Some(started + resumed_at.duration_since(paused_at).unwrap()),
        "paused time does not count toward the hold"
    );

    // Abort.
    let meddler = racing("edited-during-abort");
    let said = operate::run(&meddler, &rollout, Command::Abort).await.expect("the abort lands");
    assert!(said.contains("abort requested"), "{said}");
    refused_then_landed(&meddler.calls());
    assert_eq!(f.annotation(&name, "canary/request").as_deref(), Some("abort"));
    let outcome = f.pass(rollouts).await.remove(0);
    assert_eq!(outcome.error, None);
    let plan = outcome.plan.unwrap();
    assert_eq!((plan.phase_after, plan.result), (Phase::RolledBack, PassResult::RolledBack));
    assert_eq!(plan.reason, "rolled back: aborted with `canary abort`");
    let state = f.state(&name);
    assert_eq!(state.phase, Some(Phase::RolledBack));
    assert_eq!(state.rejected, vec![rollout.spec.template.image.clone()]);
    f.advance(15);
    assert_eq!(f.serving(&name), BTreeMap::from([(stable, 100)]));
    let labels = &f.read(&name)["labels"];
    for label in ["edited-during-pause", "edited-during-resume", "edited-during-abort"] {
        assert_eq!(labels[label], "yes", "{label} was not lost: {labels}");
    }
    let outcome = f.pass(rollouts).await.remove(0);
    assert_eq!(outcome.plan.unwrap().action, Action::None, "the rejected image is not deployed again");
}

/// A write answered OK that changed nothing: the pass reads back, sees its state did not
/// land, reports an error rather than success, and does not write again in that pass.
#[tokio::test]
async fn a_write_that_answers_ok_but_does_not_land_is_reported_and_not_repeated() {
    let f = Fixture::new(3);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    let rollouts = from_ref(&rollout);
    let deployed = f.pass(rollouts).await.remove(0);
    assert_eq!(deployed.plan.unwrap().phase_after, Phase::Deploying);
    f.advance(15);
    let before = f.read(&name);
    let meddler = Meddler::new(&f, |_, _| Patch::SwallowOk);

    let outcome = pass(&meddler, rollouts, Mode::Apply).await.remove(0);

    assert!(
        matches!(&outcome.error, Some(PassError::NotLanded { key }) if key.starts_with("canary/")),
        "{:?}",
        outcome.error
    );
    let error = outcome.error_text().expect("a write that did not land is not reported as done");
    assert!(error.contains("the service changed after this pass wrote it"), "{error}");
    assert_eq!(outcome.plan.unwrap().phase_after, Phase::Progressing, "what it meant to write");
    let read_back = RolloutState::read(&outcome.service.expect("the service as read back").annotations);
    assert_eq!(read_back.phase, Some(Phase::Deploying), "the outcome shows what is there");
    assert_eq!(meddler.calls().len(), 1, "at most one write per rollout per pass");
    assert_eq!(f.read(&name)["etag"], before["etag"], "nothing was written");
    let outcome = f.pass(rollouts).await.remove(0);
    assert_eq!(outcome.error, None);
    let state = f.state(&name);
    assert_eq!((state.phase, state.stage), (Some(Phase::Progressing), 1), "the next pass decides again and lands");
}

/// A write answered OK that applied something else — canary's annotations dropped, or
/// another owner recorded: the read-back differs, the pass reports it, once.
#[tokio::test]
async fn a_write_applied_otherwise_than_sent_is_reported() {
    type Mangle = fn(&mut Value);
    let mangles: [(&str, Mangle); 2] = [
        ("annotations dropped", |body| {
            body["annotations"].as_object_mut().unwrap().retain(|k, _| !k.starts_with("canary/"));
        }),
        ("another owner", |body| body["annotations"]["canary/owner"] = "someone-else".into()),
    ];
    for (seed, (what, mangle)) in (30..).zip(mangles) {
        let f = Fixture::new(seed);
        let name = f.service("api", 20.0);
        let rollout = build(&manifest("api"));
        f.pass(from_ref(&rollout)).await;
        f.advance(15);
        let before = f.read(&name);
        let meddler = Meddler::new(&f, move |_, _| Patch::Mangle(Box::new(mangle)));

        let outcome = pass(&meddler, from_ref(&rollout), Mode::Apply).await.remove(0);

        let error = outcome.error_text().unwrap_or_else(|| panic!("{what}: reported as landed"));
        assert!(error.contains("the service changed after this pass wrote it"), "{what}: {error}");
        assert_eq!(meddler.calls().len(), 1, "{what}: written once");
        assert_ne!(f.read(&name)["etag"], before["etag"], "{what}: something was written");
    }
}

/// A command whose write never lands is tried its three times and refused, never
/// reported as done.
#[tokio::test]
async fn a_command_whose_write_never_lands_is_refused_after_three_attempts() {
    let f = Fixture::new(4);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    f.to_first_stage(from_ref(&rollout)).await;
    let meddler = Meddler::new(&f, |_, _| Patch::SwallowOk);

    let refused = operate::run(&meddler, &rollout, Command::Pause).await;

    assert_eq!(refused, Err(Refusal::KeptChanging { service: name.clone() }));
    assert_eq!(meddler.calls().len(), 3);
    assert_eq!(f.annotation(&name, "canary/paused-by"), None);
}

/// A rollout at 10% whose manifest becomes invalid is frozen: its traffic stays, it is
/// paused for `frozen` with the frozen reason, the last valid manifest stays the applied
/// one — and its rollback triggers still roll a bad canary back.
#[tokio::test]
async fn a_frozen_rollout_holds_its_traffic_and_its_last_valid_triggers_still_roll_it_back() {
    let f = Fixture::new(5);
    let name = f.service("api", 50.0);
    let manifest = manifest("api").rollback("{metric: errorRate, above: 5%}");
    let rollout = build(&manifest);
    f.to_first_stage(from_ref(&rollout)).await;
    f.advance(5 * 60);
    let state = f.state(&name);
    let (stable, canary) = (state.stable.unwrap(), state.canary.unwrap());
    let held = BTreeMap::from([(stable.clone(), 90), (canary, 10)]);
    assert_eq!(f.serving(&name), held);
    let applied = f.annotation(&name, "canary/spec").expect("the applied manifest is on the service");
    assert_eq!(applied, serde_json::to_string(&rollout).unwrap());
    // The manifest is edited and no longer validates.
    let edited = manifest.text().replace("stages:", "stagse:");
    assert!(validate(&edited).is_err(), "the edit is invalid");
    let invalid = Invalid { name: "api".into(), project: PROJECT.into(), region: REGION.into(), service: "api".into() };

    let outcomes = pass_with_invalid(&f.platform, &[], from_ref(&invalid), Mode::Apply).await;

    assert_eq!(outcomes.len(), 1);
    let outcome = &outcomes[0];
    assert_eq!((outcome.name.as_str(), &outcome.error), ("api", &None));
    let plan = outcome.plan.as_ref().unwrap();
    assert_eq!(
        (plan.action, plan.phase_after, plan.state.pause),
        (Action::Annotate, Phase::Paused, Some(Pause::Frozen))
    );
    assert_eq!(plan.reason, FROZEN);
    let annotations = f.annotations(&name);
    assert_eq!(annotations.get("canary/phase").map(String::as_str), Some("Paused"));
    assert_eq!(annotations.get("canary/paused-for").map(String::as_str), Some("frozen"));
    assert_eq!(annotations.get("canary/reason").map(String::as_str), Some(FROZEN));
    assert_eq!(annotations.get("canary/stage").map(String::as_str), Some("1"));
    assert_eq!(annotations.get("canary/spec"), Some(&applied), "the last valid manifest stays the applied one");
    f.advance(15);
    assert_eq!(f.serving(&name), held, "traffic stays");

    // Held well past the stage's hold, it writes nothing more.
    f.advance(3 * 3600);
    let etag = f.read(&name)["etag"].clone();
    let outcome = pass_with_invalid(&f.platform, &[], from_ref(&invalid), Mode::Apply).await.remove(0);
    let plan = outcome.plan.unwrap();
    assert_eq!((plan.action, plan.phase_after, plan.reason.as_str()), (Action::None, Phase::Paused, FROZEN));
    assert_eq!(f.read(&name)["etag"], etag);
    assert_eq!(f.serving(&name), held);

    // The canary goes bad: the last valid manifest's trigger rolls it back.
    f.error_rate(&rollout.spec.template.image, 0.4);
    f.advance(10 * 60);
    let outcome = pass_with_invalid(&f.platform, &[], from_ref(&invalid), Mode::Apply).await.remove(0);
    assert_eq!(outcome.error, None);
    let plan = outcome.plan.unwrap();
    assert_eq!((plan.phase_after, plan.result), (Phase::RolledBack, PassResult::RolledBack), "{}", plan.reason);
    assert!(plan.reason.starts_with("rolled back: rollback trigger errorRate failed"), "{}", plan.reason);
    let state = f.state(&name);
    assert_eq!(state.phase, Some(Phase::RolledBack));
    assert_eq!(state.rejected, vec![rollout.spec.template.image.clone()]);
    assert_eq!(state.applied.as_ref(), Some(&applied));
    f.advance(15);
    assert_eq!(f.serving(&name), BTreeMap::from([(stable, 100)]));
}

/// Two rollouts in one pass; one's write fails (403): it reports the error and changes
/// nothing, and the other's write lands as if alone.
#[tokio::test]
async fn one_rollouts_failed_write_does_not_affect_another_in_the_same_pass() {
    let f = Fixture::new(6);
    let alpha = f.service("alpha", 20.0);
    let beta = f.service("beta", 20.0);
    let rollouts = [build(&manifest("alpha")), build(&manifest("beta"))];
    f.to_first_stage(&rollouts).await;
    f.advance(21 * 60);
    let alpha_before = f.read(&alpha);
    let denied = alpha.clone();
    let meddler = Meddler::new(&f, move |_, body| {
        if body["name"] == denied.as_str() {
            Patch::Fail(failure(403, "PERMISSION_DENIED", "the caller may not update alpha"))
        } else {
            Patch::Forward
        }
    });

    let outcomes = pass(&meddler, &rollouts, Mode::Apply).await;

    assert_eq!(outcomes.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["alpha", "beta"]);
    assert_eq!(outcomes[0].error.as_ref().map(|e| e.kind()), Some(ErrorKind::Write));
    let error = outcomes[0].error_text().expect("alpha's error is reported");
    assert!(error.contains("the write failed") && error.contains("PERMISSION_DENIED"), "{error}");
    let plan = outcomes[0].plan.as_ref().unwrap();
    assert_eq!((plan.phase_after, plan.change.is_none()), (Phase::Progressing, true));
    assert_eq!(plan.traffic_after, plan.traffic_before, "reported as it stands, not as planned");
    assert_eq!(meddler.calls_to(&alpha).len(), 1, "a refused write is not retried in the pass");
    assert_eq!(f.read(&alpha)["etag"], alpha_before["etag"]);
    assert_eq!(f.state(&alpha).stage, 1);
    assert_eq!(outcomes[1].error, None);
    assert_eq!(outcomes[1].plan.as_ref().unwrap().action, Action::SetTraffic);
    assert_eq!(meddler.calls_to(&beta).len(), 1);
    assert_eq!(f.state(&beta).stage, 2, "beta advanced");
}

/// Two rollouts in two projects; the services of one project cannot be listed: that
/// rollout reports it, and the other is adopted and deployed in the same pass.
#[tokio::test]
async fn a_project_that_cannot_be_listed_does_not_stop_a_rollout_in_another() {
    let f = Fixture::new(7);
    let alpha = f.service_in("locked-project", "alpha", 20.0);
    let beta = f.service("beta", 20.0);
    let rollouts = [build(&manifest("alpha").project("locked-project")), build(&manifest("beta"))];
    let meddler = Meddler::new(&f, |_, _| Patch::Forward)
        .on_list(|project, _| (project == "locked-project").then(|| failure(503, "UNAVAILABLE", "try again later")));

    let outcomes = pass(&meddler, &rollouts, Mode::Apply).await;

    assert_eq!(outcomes[0].error.as_ref().map(|e| e.kind()), Some(ErrorKind::Api));
    let error = outcomes[0].error_text().expect("alpha's error is reported");
    assert!(error.contains("cannot list services in locked-project/us-central1"), "{error}");
    assert!(outcomes[0].plan.is_none());
    assert_eq!(f.state(&alpha), RolloutState::default(), "alpha is untouched");
    assert_eq!(outcomes[1].error, None);
    assert_eq!(outcomes[1].plan.as_ref().unwrap().phase_after, Phase::Deploying);
    let state = f.state(&beta);
    assert_eq!((state.owner.as_deref(), state.phase), (Some("beta"), Some(Phase::Deploying)));
    assert_eq!(meddler.calls().len(), 1, "only beta was written");
}

/// A stage advance stays Progressing: a write answered OK that never landed must still
/// be reported, not taken for done because the phase read back matches.
#[tokio::test]
async fn a_stage_advance_that_answers_ok_but_does_not_land_is_reported() {
    let f = Fixture::new(40);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    f.to_first_stage(from_ref(&rollout)).await;
    f.advance(21 * 60);
    let meddler = Meddler::new(&f, |_, _| Patch::SwallowOk);
    let outcome = pass(&meddler, from_ref(&rollout), Mode::Apply).await.remove(0);
    let plan = outcome.plan.as_ref().unwrap();
    assert_eq!((plan.phase_after, plan.state.stage), (Phase::Progressing, 2));
    assert_eq!(f.state(&name).stage, 1, "the write did not land");
    let error = outcome.error_text().unwrap_or_else(|| panic!("reported as done: {outcome:?}"));
    assert!(error.contains("the service changed after this pass wrote it"), "{error}");
}

/// The transition a frozen rollout records says frozen, as its reason does: reports and
/// notifications quote the history.
#[tokio::test]
async fn a_frozen_rollouts_recorded_transition_says_frozen() {
    let f = Fixture::new(41);
    let name = f.service("api", 20.0);
    let rollout = build(&manifest("api"));
    f.to_first_stage(from_ref(&rollout)).await;
    let invalid = Invalid { name: "api".into(), project: PROJECT.into(), region: REGION.into(), service: "api".into() };
    pass_with_invalid(&f.platform, &[], from_ref(&invalid), Mode::Apply).await;
    let state = f.state(&name);
    assert_eq!(state.reason, FROZEN);
    let last = state.history.last().unwrap();
    assert_eq!(last.phase, Phase::Paused);
    assert_eq!(last.reason, FROZEN, "history: {:?}", state.history);
}
