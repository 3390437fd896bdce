//! A rollout's status as every reader sees it: `status -o json|yaml`, the status table,
//! the live view of `status --watch`, and the demo. One type, so a renamed field is a
//! compile error in every reader rather than a silent `-` in one of them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::verdict::Check;
use crate::cloudrun::service::ServiceView;
use crate::decide::PassResult;
use crate::manifest::types::CanaryRollout;
use crate::reconcile::RolloutOutcome;
use crate::state::{Pause, Phase, RolloutState};
use crate::time::rfc3339;

/// One rollout's status (the `status -o json` shape; field order is the output's).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub name: String,
    pub(crate) project: String,
    pub(crate) region: String,
    pub(crate) service: String,
    /// What the service says; before canary has written anything, Pending (or Failed,
    /// when it cannot act). None when the service could not be read at all.
    pub phase: Option<Phase>,
    pub reason: String,
    /// While `Paused`: why (`canary/paused-for`: `spec`, `frozen`, `command`,
    /// `gate-failed`, `insufficient-data`, `changed-outside`, `unrecorded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) paused_for: Option<&'static str>,
    /// 1-based; 0 before the first stage.
    pub(crate) stage: usize,
    pub(crate) stages: usize,
    /// The canary's share of traffic now, in percent.
    pub(crate) weight: u32,
    pub(crate) image: String,
    pub(crate) stable_revision: Option<String>,
    pub(crate) canary_revision: Option<String>,
    pub(crate) stage_started_at: Option<String>,
    pub(crate) hold_remaining_seconds: Option<u64>,
    pub(crate) gates: Vec<Check>,
    pub(crate) triggers: Vec<Check>,
    /// Every stage's weight and hold, for the live view.
    pub(crate) stage_weights: Vec<u8>,
    pub(crate) stage_hold_seconds: Vec<u64>,
    /// The current stage's hold.
    pub(crate) hold_seconds: Option<u64>,
    /// The split Cloud Run serves now, revision → percent.
    pub(crate) traffic: BTreeMap<String, u32>,
    pub(crate) observed_at: String,
    /// Right after a write Cloud Run still serves the old split for a while: where it is
    /// going, so a status read then does not look as if the write was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) settling_to: Option<BTreeMap<String, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The manifest is invalid now: this is the status under the one last applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) frozen: bool,
}

impl Status {
    /// `rollout`'s status after a (planning) pass gave `outcome`.
    pub(crate) fn of(rollout: &CanaryRollout, outcome: &RolloutOutcome) -> Status {
        // What the service says, when it says it of this rollout (not of another that owns it).
        let state = outcome
            .service
            .as_ref()
            .map(ServiceView::state)
            .filter(|s| s.owner.as_deref().is_none_or(|owner| owner == rollout.metadata.name))
            .unwrap_or_default();
        let weight = match (&outcome.service, &state.canary) {
            (Some(s), Some(canary)) => s.split().get(canary).copied().unwrap_or(0),
            _ => 0,
        };
        let hold_remaining_seconds = state.stage_started.and_then(|started| {
            let hold = rollout.spec.stages.get(state.stage.checked_sub(1)?)?.hold.as_ref()?.as_std();
            let elapsed = outcome.now.duration_since(started).unwrap_or_default();
            Some(hold.saturating_sub(elapsed).as_secs())
        });
        let (phase, reason) = match (&outcome.plan, state.phase) {
            (_, Some(phase)) => (Some(phase), state.reason.clone()),
            (Some(plan), None) if plan.result == PassResult::Blocked => (Some(Phase::Failed), plan.reason.clone()),
            (Some(plan), None) => (Some(Phase::Pending), format!("next pass: {}", plan.reason)),
            (None, None) => (None, outcome.error_text().unwrap_or_default()),
        };
        let stage_hold_seconds: Vec<u64> =
            rollout.spec.stages.iter().map(|s| s.hold.as_ref().map_or(0, |h| h.as_secs())).collect();
        Status {
            name: rollout.metadata.name.clone(),
            project: rollout.spec.project.clone(),
            region: rollout.spec.region.clone(),
            service: rollout.spec.service.clone(),
            phase,
            reason,
            paused_for: state.pause.map(Pause::name),
            stage: state.stage,
            stages: rollout.spec.stages.len(),
            weight,
            image: state.image.clone().unwrap_or_else(|| rollout.spec.template.image.clone()),
            stable_revision: state.stable.clone(),
            canary_revision: state.canary.clone(),
            stage_started_at: state.stage_started.map(rfc3339),
            hold_remaining_seconds,
            gates: outcome.verdict.gates.clone(),
            triggers: outcome.verdict.triggers.clone(),
            stage_weights: rollout.spec.stages.iter().map(|s| s.weight).collect(),
            hold_seconds: state.stage.checked_sub(1).and_then(|i| stage_hold_seconds.get(i).copied()),
            stage_hold_seconds,
            traffic: outcome.service.as_ref().map(ServiceView::split).unwrap_or_default(),
            observed_at: rfc3339(outcome.now),
            settling_to: outcome.service.as_ref().and_then(ServiceView::settling_to),
            error: outcome.error_text(),
            frozen: false,
        }
    }
}

/// Each outcome's status: a valid rollout's from its manifest; a rollout whose manifest
/// is invalid now (the outcomes after `rollouts`, see `reconcile::pass_with_invalid`)
/// from the manifest it was last applied with, marked frozen — during an incident it is
/// the one people look for. A frozen one whose service says nothing usable is left out.
pub fn statuses(rollouts: &[CanaryRollout], outcomes: &[RolloutOutcome]) -> Vec<Status> {
    outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match rollouts.get(i) {
            Some(r) => Some(Status::of(r, o)),
            None => {
                let service = o.service.as_ref()?;
                let applied = RolloutState::read(&service.annotations).applied?;
                let applied: CanaryRollout = serde_json::from_str(&applied).ok()?;
                let mut status = Status::of(&applied, o);
                status.frozen = true;
                if let Some(plan) = &o.plan {
                    status.reason.clone_from(&plan.reason);
                }
                Some(status)
            }
        })
        .collect()
}
