//! The decision: desired × observed × verdict × now → [`Plan`]. Pure and total: no I/O,
//! no clock, no panics; the same inputs give the same plan. All rollout logic lives here.
//!
//! # Guarantees
//! - At most one change to Cloud Run per plan (one PATCH: template, traffic and the
//!   `canary/` annotations together).
//! - Traffic in a plan adds up to 100.
//! - A failed rollback trigger sends the canary to 0% in that plan.
//! - A stage advances only after its hold, with every gate passing.
//! - Applying a plan and deciding again gives no change until time or data moves.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::analysis::verdict::{Check, Outcome, Smoke, Verdict};
use crate::cloudrun::service::{
    CANARY_TAG, Change, Readiness, STABLE_TAG, ServiceView, Target, canary_template, entries,
};
use crate::manifest::types::{CanaryRollout, GateFailurePolicy, SharedIncidentPolicy};
use crate::state::{Entry, Pause, Phase, Request, RolloutState};
use crate::time::rfc3339_seconds;

/// How long a new revision may take to become Ready.
pub(crate) const PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// How soon to look again while Cloud Run is busy.
const POLL: Duration = Duration::from_secs(10);
/// How soon to look again when nothing is going on.
const IDLE: Duration = Duration::from_secs(300);
pub(crate) const SPEC_PAUSE: &str = "paused by spec.paused";
/// The reason a rollout whose manifest became invalid is held with ([`decide_frozen`]).
pub const FROZEN: &str =
    "frozen: the manifest is invalid; traffic stays as it is and the last valid rollback triggers still apply";
pub(crate) const CLI_PAUSE: &str = "paused with `canary pause`";
/// How a reason for [`Pause::SharedIncident`] begins.
pub const SHARED_INCIDENT: &str = "SharedIncident";
/// How a reason for [`Pause::ChangedOutside`] begins.
pub const CHANGED_OUTSIDE: &str = "ChangedOutsideCanary";

/// What Cloud Run says about the service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observed {
    Missing,
    Service(Box<ServiceView>),
}

/// The kind of change a plan makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    None,
    Deploy,
    SetTraffic,
    Promote,
    Rollback,
    Annotate,
}

/// How a pass ended for one rollout, for exit codes and notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PassResult {
    /// Moving along, or nothing to do.
    Steady,
    /// Rolled back in this plan.
    RolledBack,
    /// Failed in this plan (deploy, smoke tests).
    Failed,
    /// Cannot act: the service is missing or belongs to someone else.
    Blocked,
}

/// One pass's decision for one rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub(crate) phase_before: Option<Phase>,
    pub phase_after: Phase,
    pub action: Action,
    pub reason: String,
    pub traffic_before: BTreeMap<String, u32>,
    pub traffic_after: BTreeMap<String, u32>,
    /// The one write to make, if any.
    pub change: Option<Change>,
    /// When to look again.
    pub(crate) requeue: Duration,
    pub result: PassResult,
    /// The state after the plan is applied.
    pub state: RolloutState,
}

/// What a pass must find out before deciding: the canary tag URL to smoke-test, and
/// whether metrics are needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub(crate) smoke_uri: Option<String>,
    pub(crate) metrics: bool,
}

/// Decides the next step of `rollout`.
pub(crate) fn decide(rollout: &CanaryRollout, observed: &Observed, verdict: &Verdict, now: SystemTime) -> Plan {
    decide_held(rollout, None, observed, verdict, now)
}

/// Decides for a rollout whose manifest is invalid now, under `applied`, the last valid
/// manifest it was applied with (`applied_text` is that manifest as recorded in
/// `canary/spec`): held where it is as `spec.paused` would hold it, with the cause
/// [`Pause::Frozen`] and the reason [`FROZEN`], while its rollback triggers still apply.
/// The recorded manifest stays as it was.
pub(crate) fn decide_frozen(
    applied: &CanaryRollout,
    applied_text: &str,
    observed: &Observed,
    verdict: &Verdict,
    now: SystemTime,
) -> Plan {
    decide_held(applied, Some(applied_text), observed, verdict, now)
}

fn decide_held(
    rollout: &CanaryRollout,
    frozen: Option<&str>,
    observed: &Observed,
    verdict: &Verdict,
    now: SystemTime,
) -> Plan {
    let Observed::Service(service) = observed else {
        let reason = format!(
            "ServiceNotFound: no Cloud Run service {} in {}/{}",
            rollout.spec.service, rollout.spec.project, rollout.spec.region
        );
        return Plan::blocked(None, reason, BTreeMap::new(), RolloutState::default());
    };
    Decision::new(rollout, frozen, service, verdict, now).run()
}

/// What must be found out before [`decide`] can run for this rollout.
pub(crate) fn needs(rollout: &CanaryRollout, observed: &Observed) -> Needs {
    let Observed::Service(s) = observed else { return Needs::default() };
    let state = s.state();
    // A rollout held by its manifest keeps judging the canary under way, even once the
    // manifest names a newer image (see `Decision::held_before_a_new_image`).
    let same_image = state.image.as_deref() == Some(&rollout.spec.template.image);
    if state.owner.as_deref() != Some(rollout.metadata.name.as_str()) || !(same_image || rollout.spec.paused) {
        return Needs::default();
    }
    match state.phase {
        Some(Phase::Deploying | Phase::Verifying)
            if same_image
                && s.settled()
                && s.latest_ready.is_some()
                && s.latest_ready == state.canary
                && !rollout.spec.smoke_tests.is_empty() =>
        {
            Needs { smoke_uri: s.tag_uri(CANARY_TAG).map(str::to_owned), metrics: false }
        }
        // Paused before the first stage too: a person may have sent the canary traffic.
        Some(Phase::Paused) => Needs { smoke_uri: None, metrics: true },
        Some(Phase::Progressing | Phase::Waiting) if state.stage >= 1 => Needs { smoke_uri: None, metrics: true },
        _ => Needs::default(),
    }
}

impl Plan {
    fn blocked(before: Option<Phase>, reason: String, split: BTreeMap<String, u32>, state: RolloutState) -> Plan {
        Plan {
            phase_before: before,
            phase_after: Phase::Failed,
            action: Action::None,
            reason,
            traffic_before: split.clone(),
            traffic_after: split,
            change: None,
            requeue: IDLE,
            result: PassResult::Blocked,
            state,
        }
    }
}

struct Decision<'a> {
    rollout: &'a CanaryRollout,
    /// The manifest as recorded, when the rollout is frozen under it.
    frozen: Option<&'a str>,
    service: &'a ServiceView,
    verdict: &'a Verdict,
    now: SystemTime,
    before: Option<Phase>,
    state: RolloutState,
    split: BTreeMap<String, u32>,
}

impl<'a> Decision<'a> {
    fn new(
        rollout: &'a CanaryRollout,
        frozen: Option<&'a str>,
        service: &'a ServiceView,
        verdict: &'a Verdict,
        now: SystemTime,
    ) -> Decision<'a> {
        let state = service.state();
        Decision { rollout, frozen, service, verdict, now, before: state.phase, state, split: service.split() }
    }

    /// Held by the manifest: `spec.paused`, or frozen under the last valid one.
    fn held(&self) -> bool {
        self.rollout.spec.paused || self.frozen.is_some()
    }

    /// The pause the manifest holds the rollout with, and its reason.
    fn hold(&self) -> (Pause, &'static str) {
        if self.frozen.is_some() { (Pause::Frozen, FROZEN) } else { (Pause::Spec, SPEC_PAUSE) }
    }

    fn name(&self) -> &str {
        &self.rollout.metadata.name
    }

    fn image(&self) -> &str {
        &self.rollout.spec.template.image
    }

    fn run(mut self) -> Plan {
        let name = self.name().to_owned();
        match self.state.owner.clone() {
            Some(owner) if owner == name => {}
            Some(owner) => {
                // The phase and state on the service are the owner's, not this rollout's.
                let reason = format!("NotOwned: service {} is managed by rollout `{owner}`", self.service.short_name);
                return Plan::blocked(None, reason, self.split, RolloutState::default());
            }
            None if !self.rollout.spec.adopt => {
                let reason = format!(
                    "NotOwned: service {} has no canary/owner annotation; set spec.adopt: true to let `{name}` take it over",
                    self.service.short_name
                );
                return Plan::blocked(self.before, reason, self.split, self.state);
            }
            None => {
                if !self.service.settled() {
                    return self.wait("waiting for Cloud Run to settle before adopting the service", POLL);
                }
                let Some(sole) = self.service.sole_revision().map(str::to_owned) else {
                    let reason = format!(
                        "NotAdoptable: service {} splits its traffic; adoption needs one revision at 100%",
                        self.service.short_name
                    );
                    return Plan::blocked(self.before, reason, self.split, self.state);
                };
                self.state.owner = Some(name);
                self.state.stable = Some(sole);
            }
        }
        let in_progress = self.state.phase.is_some_and(Phase::in_progress);
        let same_image = self.state.image.as_deref() == Some(self.image());
        if in_progress && same_image {
            return self.continue_rollout();
        }
        if in_progress && self.held() {
            return self.held_before_a_new_image();
        }
        if !self.service.settled() {
            return self.wait("waiting for Cloud Run to settle", POLL);
        }
        if !in_progress && self.state.rejected.iter().any(|i| i == self.image()) {
            let reason =
                format!("image {} was rejected; change the image or run `canary retry {}`", self.image(), self.name());
            return self.idle(reason);
        }
        // The desired image is what serves: the newest Ready revision runs it and takes all
        // the traffic (whatever the annotations say: they may be edited by hand).
        let sole = self.service.sole_revision().map(str::to_owned);
        let running = sole.is_some()
            && sole.as_deref() == self.service.latest_ready.as_deref()
            && self.service.template_image() == Some(self.image());
        if !in_progress && running {
            if self.state.phase == Some(Phase::Promoted) && self.before.is_some() {
                let reason = self.state.reason.clone();
                return self.idle(reason);
            }
            // Adopted (or recorded anew) while already running the desired image.
            return self.already_serving(sole);
        }
        let promoted_here = self.state.phase == Some(Phase::Promoted) && same_image;
        if promoted_here && self.service.template_image() != Some(self.image()) {
            // Someone deployed something else over what canary promoted: deploying the
            // manifest's image again would only pin the revision that already exists.
            // Git and the service disagree; a person settles it.
            let reason = format!(
                "{CHANGED_OUTSIDE}: {} runs {}, deployed outside canary after it promoted {}; commit the image that should run to roll it out",
                self.service.short_name,
                self.service.template_image().unwrap_or("an unnamed image"),
                self.image()
            );
            if self.state.reason == reason {
                return self.idle(reason);
            }
            self.state.reason = reason;
            return self.write(Action::Annotate, None, None, PassResult::Steady, IDLE);
        }
        if self.held() {
            let reason = match self.hold() {
                (Pause::Spec, why) => format!("{why}: {} is not deployed yet", self.image()),
                (_, why) => why.to_owned(),
            };
            return self.wait(reason, IDLE);
        }
        self.deploy()
    }

    /// Records that `stable` already runs the manifest's image: Promoted, nothing to
    /// deploy (adopted, recorded anew after a hand edit, or a template that is stable's).
    fn already_serving(mut self, stable: Option<String>) -> Plan {
        let reason = format!("{} is already serving {}", self.service.short_name, self.image());
        if self.state.phase == Some(Phase::Promoted) && self.state.reason == reason && self.state.stable == stable {
            return self.idle(reason);
        }
        self.state.owner = Some(self.name().to_owned());
        self.state.image = Some(self.image().to_owned());
        self.state.stable = stable;
        self.state.canary = None;
        self.state.enter(Phase::Promoted, reason, self.now);
        self.write(Action::Annotate, None, None, PassResult::Steady, IDLE)
    }

    fn deploy(mut self) -> Plan {
        // Stable is what serves all traffic now when nothing is under way (a person may
        // have deployed since canary last wrote), else the stable on record.
        // Failing both (a hand edit), whatever serves all traffic.
        let sole = self.service.sole_revision().map(str::to_owned);
        let under_way = self.state.phase.is_some_and(Phase::in_progress);
        let stable =
            if under_way { self.state.stable.clone().or(sole) } else { sole.or_else(|| self.state.stable.clone()) };
        let Some(stable) = stable else {
            let reason = "NoStableRevision: cannot tell which revision is stable; send 100% of traffic to one revision"
                .to_owned();
            return Plan::blocked(self.before, reason, self.split, self.state);
        };
        let (template, canary) =
            canary_template(&self.service.template(), &self.service.short_name, &self.rollout.spec.template);
        if canary == stable {
            // The manifest's template is the stable revision itself: nothing to deploy.
            return self.already_serving(Some(stable));
        }
        self.state.owner = Some(self.name().to_owned());
        self.state.stable = Some(stable.clone());
        self.state.canary = Some(canary.clone());
        self.state.image = Some(self.image().to_owned());
        self.state.stage = 0;
        self.state.incidents = 0;
        self.state.stage_started = Some(self.now);
        self.state.previous_stage_started = None;
        let reason = format!("deploying {canary} ({}) at 0% beside {stable}", self.image());
        self.state.enter(Phase::Deploying, reason, self.now);
        let traffic = self.traffic(&stable, Some((&canary, 0)));
        self.write(Action::Deploy, Some(template), Some(traffic), PassResult::Steady, POLL)
    }

    /// A new image while the manifest holds the rollout: the canary under way stays
    /// where it is, paused (not deployed over, not left reporting its old phase), and its
    /// rollback triggers still apply to it.
    fn held_before_a_new_image(mut self) -> Plan {
        let interval = self.interval();
        if let Some(why) = self.trigger_failed() {
            return self.roll_back(why);
        }
        let (cause, why) = self.hold();
        if self.state.phase == Some(Phase::Paused) && self.state.pause == Some(cause) {
            let reason = self.state.reason.clone();
            return self.wait(reason, interval);
        }
        let canary = self.state.canary.clone().unwrap_or_default();
        let reason = match cause {
            Pause::Spec => format!("{why}: {canary} stays where it is; {} is not deployed yet", self.image()),
            _ => why.to_owned(),
        };
        self.pause(cause, &reason);
        self.write(Action::Annotate, None, None, PassResult::Steady, interval)
    }

    fn continue_rollout(self) -> Plan {
        match self.state.phase {
            Some(Phase::Deploying | Phase::Verifying) => self.deploying(),
            // Paused before the first stage: only a change made outside canary does that.
            Some(Phase::Paused) if self.state.stage == 0 => self.deploying(),
            _ => self.progressing(),
        }
    }

    /// What someone other than canary changed since canary last wrote the service: its
    /// own traffic entries (split, tags) or the template (a revision that is not the
    /// canary's). `None` when nothing did, or when there is no record to compare with.
    fn changed_outside(&self) -> Option<Outside> {
        // With no record to compare (edited by hand), a canary whose `canary` tag is gone
        // from the traffic was still changed by someone: canary always writes it.
        let untagged = self.state.canary.as_ref().is_some_and(|c| {
            !self.service.traffic.iter().any(|t| t.revision.as_ref() == Some(c) && t.tag.as_deref() == Some(CANARY_TAG))
        });
        let traffic =
            if self.state.written.is_empty() { untagged } else { self.service.canarys_entries() != self.state.written };
        let made = self.service.template_revision();
        let template = self.state.canary.is_some() && made != self.state.canary;
        if !traffic && !template {
            return None;
        }
        let when = self.state.written_at.map(|t| format!(" at {}", rfc3339_seconds(t))).unwrap_or_default();
        let mut what = Vec::new();
        if traffic && self.state.written.is_empty() {
            what.push(format!(
                "traffic is {}, without the canary's tag",
                show_entries(&self.service.canarys_entries())
            ));
        } else if traffic {
            what.push(format!(
                "traffic is {}, canary last set {}{when}",
                show_entries(&self.service.canarys_entries()),
                show_entries(&self.state.written)
            ));
        }
        if template {
            let canary = self.state.canary.as_deref().unwrap_or_default();
            what.push(match made {
                Some(made) => format!("the template makes {made}, not the canary {canary}"),
                None => format!("the template no longer pins the canary {canary}"),
            });
        }
        let name = self.name();
        let resume = if template { "deploys the canary again" } else { "puts canary's split back" };
        let reason = format!(
            "{CHANGED_OUTSIDE}: {}; `canary resume {name}` {resume}, `canary abort {name}` rolls back",
            what.join("; ")
        );
        Some(Outside { template, reason })
    }

    fn deploying(mut self) -> Plan {
        if self.state.request == Some(Request::Abort) {
            self.state.request = None;
            return self.roll_back("aborted with `canary abort` before the canary got traffic".to_owned());
        }
        let canary = self.state.canary.clone().unwrap_or_default();
        let paused = self.state.phase == Some(Phase::Paused);
        let requeue = POLL.max(self.interval());
        // Paused before the first stage, the canary may serve (a person sent it traffic):
        // its triggers apply as in any stage.
        if paused && let Some(why) = self.trigger_failed() {
            return self.roll_back(why);
        }
        if let Some(outside) = self.changed_outside() {
            if self.state.request == Some(Request::Resume) && !self.held() {
                self.state.request = None;
                if outside.template {
                    return self.deploy();
                }
                self.unpause_clock();
                self.state.enter(Phase::Deploying, format!("waiting for {canary} to become ready"), self.now);
                let stable = self.state.stable.clone().unwrap_or_default();
                let traffic = self.traffic(&stable, Some((&canary, 0)));
                return self.write(Action::SetTraffic, None, Some(traffic), PassResult::Steady, POLL);
            }
            if paused && self.state.pause == Some(Pause::ChangedOutside) {
                let reason = self.state.reason.clone();
                return self.wait(reason, requeue);
            }
            self.pause(Pause::ChangedOutside, &outside.reason);
            return self.write(Action::Annotate, None, None, PassResult::Steady, requeue);
        }
        if paused {
            // Paused before the first stage: by the manifest, which lifts it when it no
            // longer holds; by `canary pause`, lifted by `resume`; or for a person (a
            // change made outside canary, since put back by hand).
            let resumed = self.state.request == Some(Request::Resume);
            let by_manifest = matches!(self.state.pause, Some(Pause::Spec | Pause::Frozen));
            if by_manifest && !self.held() && self.state.paused_by.is_some() {
                // The manifest let go, `canary pause` still holds: the pause is the command's.
                self.pause(Pause::Command, &format!("{CLI_PAUSE}: {canary} is ready and stays at 0%"));
                return self.write(Action::Annotate, None, None, PassResult::Steady, requeue);
            }
            if by_manifest && self.held() && self.state.pause != Some(self.hold().0) {
                // Held by the manifest's other cause now (fixed but `spec.paused`, or the
                // other way round): say which.
                let (cause, why) = self.hold();
                self.pause(cause, &format!("{why}: {canary} is ready and stays at 0%"));
                return self.write(Action::Annotate, None, None, PassResult::Steady, requeue);
            }
            let lift = match self.state.pause {
                Some(Pause::Spec | Pause::Frozen) => !self.held(),
                Some(Pause::Command) => self.state.paused_by.is_none() || resumed,
                // While the manifest holds, a person's resume waits for it to let go.
                _ => resumed && !self.held(),
            };
            if !lift {
                let reason = self.state.reason.clone();
                return self.wait(reason, requeue);
            }
            self.state.request = None;
            self.state.paused_by = None;
            self.unpause_clock();
            self.state.enter(Phase::Deploying, format!("waiting for {canary} to become ready"), self.now);
            return self.write(Action::Annotate, None, None, PassResult::Steady, POLL);
        }
        let Some(started) = self.state.stage_started else {
            // No readable start of the deploy (edited by hand): its deadline counts from
            // now, written so that it ends.
            self.state.stage_started = Some(self.now);
            return self.write(Action::Annotate, None, None, PassResult::Steady, POLL);
        };
        let waited = self.now.duration_since(started).unwrap_or_default();
        if !self.service.settled() || self.service.latest_created.as_deref() != Some(canary.as_str()) {
            if waited > PROGRESS_DEADLINE {
                return self.fail(format!("ProgressDeadlineExceeded: {canary} did not become ready within 10m"));
            }
            return self.wait(format!("waiting for {canary} to become ready"), POLL);
        }
        if self.service.latest_ready.as_deref() != Some(canary.as_str()) {
            if let Readiness::Failed(message) = &self.service.readiness {
                return self.fail(format!("RevisionFailed: {message}"));
            }
            if waited > PROGRESS_DEADLINE {
                return self.fail(format!("ProgressDeadlineExceeded: {canary} did not become ready within 10m"));
            }
            return self.wait(format!("waiting for {canary} to become ready"), POLL);
        }
        if let Some(why) = self.trigger_failed() {
            return self.roll_back(why);
        }
        if self.held() || self.state.paused_by.is_some() {
            // Held before the first stage: Paused, as the service then says, at 0%.
            let (cause, why) = if self.held() { self.hold() } else { (Pause::Command, CLI_PAUSE) };
            self.pause(cause, &format!("{why}: {canary} is ready and stays at 0%"));
            return self.write(Action::Annotate, None, None, PassResult::Steady, requeue);
        }
        if !self.rollout.spec.smoke_tests.is_empty() {
            match &self.verdict.smoke {
                None => {
                    let mut plan = self.wait(format!("smoke-testing {canary} on its tag URL"), Duration::ZERO);
                    plan.phase_after = Phase::Verifying;
                    return plan;
                }
                Some(Smoke::Failed(detail)) => return self.fail(format!("SmokeTestFailed: {detail}")),
                Some(Smoke::Passed) => {}
            }
        }
        self.advance_to(1)
    }

    fn progressing(mut self) -> Plan {
        let interval = self.interval();
        if self.state.phase == Some(Phase::Paused) && self.state.pause == Some(Pause::SharedIncident) {
            return self.after_shared_incident();
        }
        if let Some(check) = self.verdict.failed_trigger().cloned() {
            let why = format!("rollback trigger {}", describe(&check));
            // Only a rollout under way and free to move pauses for a shared incident. One
            // paused already (by a person or a change outside canary), or held by its
            // manifest (`spec.paused`, frozen), has a hold a recovery must not lift, so its
            // failed trigger rolls back as it always did.
            let pauses = self.rollout.spec.analysis.shared_incidents == SharedIncidentPolicy::Pause
                && self.state.phase != Some(Phase::Paused)
                && !self.held();
            return match (check.shared && pauses, self.state.incidents) {
                (true, 0) => self.shared_incident(&check),
                (true, _) => self.roll_back(format!(
                    "{why}; stable failed it too, but this is the rollout's second shared incident, so it counts as the canary's"
                )),
                (false, _) => self.roll_back(why),
            };
        }
        let stages = self.rollout.spec.stages.len().max(1);
        let stage = self.state.stage.clamp(1, stages);
        if self.state.request == Some(Request::Abort) {
            self.state.request = None;
            return self.roll_back("aborted with `canary abort`".to_owned());
        }
        let paused = self.state.phase == Some(Phase::Paused);
        if let Some(outside) = self.changed_outside() {
            match self.state.request {
                Some(Request::Resume) if !self.held() => {
                    self.state.request = None;
                    self.state.paused_by = None;
                    if outside.template {
                        return self.deploy();
                    }
                    if paused {
                        self.resume(stage);
                    }
                    let weight = self.weight(stage);
                    let stable = self.state.stable.clone().unwrap_or_default();
                    let canary = self.state.canary.clone().unwrap_or_default();
                    let traffic = self.traffic(&stable, Some((&canary, weight)));
                    return self.write(Action::SetTraffic, None, Some(traffic), PassResult::Steady, interval);
                }
                // `promote` writes canary's split itself, below, while the canary is still
                // what the template makes; after a new template it may be gone (a person
                // may delete a revision that serves nothing), so a promote is dropped and
                // the rollout waits for `resume` (deploy again) or `abort`.
                Some(Request::Promote | Request::PromoteFull) if !outside.template => {}
                Some(Request::Promote | Request::PromoteFull) => {
                    self.state.request = None;
                    self.pause(Pause::ChangedOutside, &outside.reason);
                    return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
                }
                _ if paused && self.state.pause == Some(Pause::ChangedOutside) => {
                    let reason = self.state.reason.clone();
                    return self.wait(reason, interval);
                }
                _ => {
                    self.pause(Pause::ChangedOutside, &outside.reason);
                    return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
                }
            }
        }
        // Paused by a failed gate or for lack of data: a person decides (resume, promote,
        // abort), and `spec.paused` coming or going does not change that.
        let held_for_a_person = paused && self.state.pause.is_none_or(Pause::waits_for_a_person);
        // A person's promote or resume waits while the manifest holds (git wins); only
        // abort, above, does not.
        if held_for_a_person && (self.state.request.is_none() || self.held()) {
            let reason = self.state.reason.clone();
            return self.wait(reason, interval);
        }
        if self.held() && !held_for_a_person {
            // The manifest holds the stage; manual requests wait until it lets go. Held
            // already by the same cause: nothing to write; by the other one (spec.paused
            // set on a manifest that was frozen, or the other way round): say which.
            let (cause, reason) = self.hold();
            if paused && self.state.pause == Some(cause) {
                let reason = self.state.reason.clone();
                return self.wait(reason, interval);
            }
            self.pause(cause, reason);
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        }
        if self.state.request == Some(Request::Resume) {
            self.state.request = None;
            self.state.paused_by = None;
            if paused {
                self.resume(stage);
            }
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        }
        if self.state.paused_by.is_some() && !held_for_a_person {
            // Still paused once the manifest lets go: the pause is the command's now, and
            // the service says so.
            if paused && self.state.pause == Some(Pause::Command) {
                return self.wait(CLI_PAUSE, interval);
            }
            self.pause(Pause::Command, CLI_PAUSE);
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        }
        match self.state.request.take() {
            Some(Request::PromoteFull) => return self.promote(),
            Some(Request::Promote) if stage >= stages => return self.promote(),
            Some(Request::Promote) => return self.advance_to(stage + 1),
            _ => {}
        }
        if paused {
            // `spec.paused` was lifted.
            self.resume(stage);
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        }
        // A gate fails only on conclusive evidence (see analysis::judge), so it acts at
        // once, mid-hold: waiting out the hold would only serve more users a bad canary.
        if let Some(check) = self.verdict.gates.iter().find(|c| c.result == Outcome::Fail).cloned() {
            return match self.rollout.spec.analysis.on_gate_failure {
                GateFailurePolicy::Rollback => self.roll_back(format!("promotion gate {}", describe(&check))),
                GateFailurePolicy::Pause => {
                    self.state.enter_pause(Pause::GateFailed, format!("GateFailed: {}", describe(&check)), self.now);
                    self.write(Action::Annotate, None, None, PassResult::Steady, interval)
                }
            };
        }
        let hold = self
            .rollout
            .spec
            .stages
            .get(stage - 1)
            .and_then(|s| s.hold.as_ref())
            .map_or(Duration::ZERO, |h| h.as_std());
        let Some(started) = self.state.stage_started else {
            // Nothing on the service says when the stage began (edited by hand): count
            // its hold from now, and say so, rather than hold forever unjudged.
            self.state.stage_started = Some(self.now);
            self.state.reason =
                format!("{}; its start was unreadable, so its hold counts from now", self.holding_reason(stage));
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        };
        let elapsed = self.now.duration_since(started).unwrap_or_default();
        if elapsed < hold {
            let left = hold - elapsed;
            let reason = self.holding_reason(stage);
            return self.wait(reason, left.min(interval));
        }
        if let Some(error) = &self.verdict.metrics_error {
            return self.wait(format!("metrics unavailable, nothing advances without data: {error}"), interval);
        }
        if let Some(check) = self.verdict.gates.iter().find(|c| c.result == Outcome::Inconclusive).cloned() {
            let waited = elapsed - hold;
            if waited > self.rollout.spec.analysis.max_wait.as_std() {
                let reason = format!(
                    "InsufficientData: {} after waiting {}",
                    describe(&check),
                    humantime::format_duration(waited)
                );
                self.state.enter_pause(Pause::InsufficientData, reason, self.now);
                return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
            }
            let reason = format!("waiting for data: {}", describe(&check));
            if self.state.phase == Some(Phase::Waiting) {
                return self.wait(reason, interval);
            }
            self.state.enter(Phase::Waiting, reason, self.now);
            return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
        }
        if stage >= stages {
            return self.promote();
        }
        self.advance_to(stage + 1)
    }

    /// A trigger failed that stable fails too, the canary no worse than stable: its
    /// traffic goes back to stable at once (the canary keeps its tag at 0%), its image is
    /// not rejected, and the stage waits for stable to recover.
    fn shared_incident(mut self, check: &Check) -> Plan {
        let stage = self.state.stage.max(1);
        let stable_value = check.stable.map(|v| check.kind.show(v)).unwrap_or_else(|| "-".to_owned());
        let recovery = humantime::format_duration(self.rollout.spec.analysis.incident_recovery.as_std());
        let reason = format!(
            "{SHARED_INCIDENT}: rollback trigger {}, and stable fails it too ({stable_value}) over the same minutes \
             with the canary no worse; the canary's traffic is back on stable and its image is not rejected; stage \
             {stage} starts again once stable has been within every trigger for {recovery}",
            describe(check)
        );
        self.state.incidents += 1;
        // Recovery counts from now (the stage starts afresh, so no earlier pause matters).
        self.state.paused_at = Some(self.now);
        self.pause(Pause::SharedIncident, &reason);
        let stable = self.state.stable.clone().unwrap_or_default();
        let canary = self.state.canary.clone().unwrap_or_default();
        let traffic = self.traffic(&stable, Some((&canary, 0)));
        let interval = self.interval();
        self.write(Action::SetTraffic, None, Some(traffic), PassResult::Steady, interval)
    }

    /// Paused by a shared incident, the canary at 0%: `abort` rolls back; once stable
    /// has recovered (or on `canary resume`) the stage starts again with a fresh hold.
    fn after_shared_incident(mut self) -> Plan {
        let interval = self.interval();
        let stage = self.state.stage.max(1);
        match self.state.request {
            Some(Request::Abort) => {
                self.state.request = None;
                return self.roll_back("aborted with `canary abort` during a shared incident".to_owned());
            }
            _ if let Some(outside) = self.changed_outside() => {
                // Someone moved traffic (or deployed) while the canary stood at 0%: canary
                // does not put it back on its own; a person decides.
                self.pause(Pause::ChangedOutside, &outside.reason);
                return self.write(Action::Annotate, None, None, PassResult::Steady, interval);
            }
            Some(Request::Resume) if !self.held() => self.state.paused_by = None,
            // Recovery is over minutes after the pause began: never in the pass that paused.
            _ if self.verdict.stable_recovered == Some(true)
                && !self.held()
                && self.state.paused_at.is_some_and(|t| t < self.now) => {}
            _ => {
                let reason = self.state.reason.clone();
                return self.wait(reason, interval);
            }
        }
        // A person's `canary pause` from before still holds: the next pass says so.
        self.state.request = None;
        self.state.paused_at = None;
        self.state.stage_started = Some(self.now);
        let reason = format!("{}; started again after a shared incident", self.holding_reason(stage));
        self.state.enter(Phase::Progressing, reason, self.now);
        let weight = self.weight(stage);
        let stable = self.state.stable.clone().unwrap_or_default();
        let canary = self.state.canary.clone().unwrap_or_default();
        let traffic = self.traffic(&stable, Some((&canary, weight)));
        self.write(Action::SetTraffic, None, Some(traffic), PassResult::Steady, interval)
    }

    /// Why to roll back now, when a rollback trigger failed.
    fn trigger_failed(&self) -> Option<String> {
        self.verdict.failed_trigger().map(|check| format!("rollback trigger {}", describe(check)))
    }

    /// The canary's weight at `stage` (1-based).
    fn weight(&self, stage: usize) -> u32 {
        u32::from(self.rollout.spec.stages.get(stage - 1).map_or(100, |s| s.weight))
    }

    fn advance_to(mut self, stage: usize) -> Plan {
        let weight = self.weight(stage);
        let stable = self.state.stable.clone().unwrap_or_default();
        let canary = self.state.canary.clone().unwrap_or_default();
        self.state.previous_stage_started = if self.state.stage >= 1 { self.state.stage_started } else { None };
        self.state.stage = stage;
        self.state.stage_started = Some(self.now);
        self.state.paused_at = None;
        let reason = self.holding_reason(stage);
        self.state.enter(Phase::Progressing, reason, self.now);
        let traffic = self.traffic(&stable, Some((&canary, weight)));
        let interval = self.interval();
        self.write(Action::SetTraffic, None, Some(traffic), PassResult::Steady, interval)
    }

    fn promote(mut self) -> Plan {
        let canary = self.state.canary.clone().unwrap_or_default();
        let reason = format!("promoted {canary} ({}): it is now stable", self.image());
        self.state.stable = Some(canary.clone());
        self.state.canary = None;
        self.state.enter(Phase::Promoted, reason, self.now);
        let mut traffic = vec![Target { revision: Some(canary), percent: 100, tag: Some(STABLE_TAG.to_owned()) }];
        traffic.extend(self.service.user_targets());
        self.write(Action::Promote, None, Some(traffic), PassResult::Steady, IDLE)
    }

    fn roll_back(mut self, why: String) -> Plan {
        // The image of the canary rolled back: the manifest's, unless it named a new
        // one while the rollout was held.
        let image = self.state.image.clone().unwrap_or_else(|| self.image().to_owned());
        let canary = self.state.canary.clone().unwrap_or_default();
        // Stable as recorded (or tagged); failing both (edited by hand), the revision
        // serving the most traffic that is not the canary.
        let serving_other =
            self.split.iter().filter(|(r, _)| **r != canary).max_by_key(|(_, p)| **p).map(|(r, _)| r.clone());
        let stable = self.state.stable.clone().or(serving_other);
        let canary_in_spec =
            self.service.traffic.iter().any(|t| t.revision.as_deref() == Some(&canary) && t.percent > 0);
        match stable {
            Some(stable) => {
                self.state.reject(&image);
                self.state.enter(Phase::RolledBack, format!("rolled back: {why}"), self.now);
                let traffic = self.traffic(&stable, None);
                self.write(Action::Rollback, None, Some(traffic), PassResult::RolledBack, IDLE)
            }
            None if !canary_in_spec => {
                // Nowhere to send traffic, and none to take away: the canary already
                // serves nothing (a person moved it all), so only the verdict is written.
                self.state.reject(&image);
                self.state.enter(Phase::RolledBack, format!("rolled back: {why}"), self.now);
                self.write(Action::Annotate, None, None, PassResult::RolledBack, IDLE)
            }
            None => {
                let reason = format!(
                    "NoStableRevision: {why}, but no revision but the canary serves and none is recorded as stable; send traffic to a good revision by hand"
                );
                Plan::blocked(self.before, reason, self.split, self.state)
            }
        }
    }

    fn fail(mut self, reason: String) -> Plan {
        let image = self.image().to_owned();
        self.state.reject(&image);
        self.state.enter(Phase::Failed, reason, self.now);
        self.write(Action::Annotate, None, None, PassResult::Failed, IDLE)
    }

    /// Holds the stage; the time until [`Decision::resume`] does not count toward its hold.
    fn pause(&mut self, cause: Pause, reason: &str) {
        if self.state.paused_at.is_none() {
            self.state.paused_at = Some(self.now);
        }
        self.state.enter_pause(cause, reason, self.now);
    }

    /// Carries on with the stage, its start moved later by the time spent paused.
    fn resume(&mut self, stage: usize) {
        self.unpause_clock();
        let reason = self.holding_reason(stage);
        self.state.enter(Phase::Progressing, reason, self.now);
    }

    /// Moves the stage's start later by the time spent paused, which does not count.
    fn unpause_clock(&mut self) {
        if let (Some(paused_at), Some(started)) = (self.state.paused_at.take(), self.state.stage_started) {
            let paused_for = self.now.duration_since(paused_at).unwrap_or_default();
            self.state.stage_started = Some(started + paused_for);
        }
    }

    fn holding_reason(&self, stage: usize) -> String {
        let weight = self.rollout.spec.stages.get(stage - 1).map_or(100, |s| s.weight);
        format!("holding {weight}% (stage {stage} of {})", self.rollout.spec.stages.len())
    }

    fn interval(&self) -> Duration {
        self.rollout.spec.analysis.interval.as_std().max(Duration::from_secs(60))
    }

    /// stable at 100 − w (tag stable), the canary at w (tag canary) when there is one, and
    /// the user's own tagged entries as they were.
    fn traffic(&self, stable: &str, canary: Option<(&str, u32)>) -> Vec<Target> {
        let weight = canary.map_or(0, |(_, w)| w.min(100));
        let mut out =
            vec![Target { revision: Some(stable.to_owned()), percent: 100 - weight, tag: Some(STABLE_TAG.to_owned()) }];
        if let Some((name, _)) = canary {
            out.push(Target { revision: Some(name.to_owned()), percent: weight, tag: Some(CANARY_TAG.to_owned()) });
        }
        out.extend(self.service.user_targets());
        out
    }

    fn wait(self, reason: impl Into<String>, requeue: Duration) -> Plan {
        let phase = self.state.phase.unwrap_or(Phase::Pending);
        Plan {
            phase_before: self.before,
            phase_after: phase,
            action: Action::None,
            reason: reason.into(),
            traffic_before: self.split.clone(),
            traffic_after: self.split,
            change: None,
            requeue,
            result: PassResult::Steady,
            state: self.state,
        }
    }

    fn idle(self, reason: String) -> Plan {
        self.wait(reason, IDLE)
    }

    fn write(
        mut self,
        action: Action,
        template: Option<serde_json::Value>,
        traffic: Option<Vec<Target>>,
        result: PassResult,
        requeue: Duration,
    ) -> Plan {
        if let Some(targets) = &traffic {
            self.state.written = entries(targets);
            self.state.written_at = Some(self.now);
        }
        let traffic_after = match &traffic {
            Some(targets) => {
                let mut split = BTreeMap::new();
                for t in targets.iter().filter(|t| t.percent > 0) {
                    *split.entry(t.revision.clone().unwrap_or_else(|| "LATEST".to_owned())).or_insert(0) += t.percent;
                }
                split
            }
            None => self.split.clone(),
        };
        // Frozen, the manifest recorded stays the one it was (not a copy of it made here).
        self.state.applied = match self.frozen {
            Some(text) => Some(text.to_owned()),
            None => serde_json::to_string(self.rollout).ok(),
        };
        let phase = self.state.phase.unwrap_or(Phase::Pending);
        Plan {
            phase_before: self.before,
            phase_after: phase,
            action,
            reason: self.state.reason.clone(),
            traffic_before: self.split,
            traffic_after,
            change: Some(Change { template, traffic, annotations: self.state.annotations() }),
            requeue,
            result,
            state: self.state,
        }
    }
}

/// A change someone other than canary made mid-rollout, as [`Decision::changed_outside`]
/// found it.
struct Outside {
    /// The template no longer makes the canary: `resume` must deploy it again.
    template: bool,
    /// The `ChangedOutsideCanary: …` reason, for people.
    reason: String,
}

/// `svc-00001 95% (stable), svc-abc 5% (canary)`.
fn show_entries(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "empty".to_owned();
    }
    let one = |e: &Entry| {
        let revision = e.revision.as_deref().unwrap_or("LATEST");
        match &e.tag {
            Some(tag) => format!("{revision} {}% ({tag})", e.percent),
            None => format!("{revision} {}%", e.percent),
        }
    };
    entries.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// `errorRate failed: observed 12.00%, threshold 5.00%`, for reasons.
fn describe(check: &Check) -> String {
    let kind = check.kind;
    let result = match check.result {
        Outcome::Pass => "passed",
        Outcome::Fail => "failed",
        Outcome::Inconclusive => "inconclusive",
    };
    match check.observed {
        Some(observed) => {
            format!("{kind} {result}: observed {}, threshold {}", kind.show(observed), kind.show(check.threshold))
        }
        None => format!("{kind} {result}: no data yet, threshold {}", kind.show(check.threshold)),
    }
}

#[cfg(test)]
mod tests;
