//! Manual gates: `canary pause | resume | promote [--full] | abort | retry`. Each is
//! an etag-guarded write of canary's annotations on the service, checked by reading it
//! back; the next pass acts on it. Nothing else is changed.

use crate::cloudrun::service::{Change, ServiceView};
use crate::manifest::types::CanaryRollout;
use crate::platform::CloudRun;
use crate::state::{Phase, Request, RolloutState};
use crate::transport::ApiFailure;

/// What an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Promote { full: bool },
    Abort,
    Retry,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request makes no sense now (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// Cloud Run could not be read (exit 1, as every API failure below).
    #[error("{0}")]
    Read(ApiFailure),
    /// Cloud Run refused the write.
    #[error("{0}")]
    Write(ApiFailure),
    /// The write was accepted but could not be read back to check it.
    #[error("wrote, but could not read back: {0}")]
    ReadBack(ApiFailure),
    /// Three tries, and someone else's write came in between each time.
    #[error("service {service} kept changing under this command (3 etag conflicts); run it again")]
    KeptChanging { service: String },
}

impl Refusal {
    /// The request itself is at fault (exit 2), not Cloud Run (exit 1).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Refusal::Invalid(_))
    }

    /// The failed call behind it, when there was one.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            Refusal::Read(f) | Refusal::Write(f) | Refusal::ReadBack(f) => Some(f),
            Refusal::Invalid(_) | Refusal::KeptChanging { .. } => None,
        }
    }
}

/// Carries out `command` for `rollout`; returns what will happen, and when.
pub async fn run<P: CloudRun>(platform: &P, rollout: &CanaryRollout, command: Command) -> Result<String, Refusal> {
    let name = format!(
        "projects/{}/locations/{}/services/{}",
        rollout.spec.project, rollout.spec.region, rollout.spec.service
    );
    for _attempt in 0..3 {
        let raw = platform.get_service(&name).await.map_err(Refusal::Read)?;
        let Some(raw) = raw else {
            return Err(Refusal::Invalid(format!("no Cloud Run service {name}")));
        };
        let service = ServiceView::parse(raw);
        let (state, message) = apply(rollout, &service, command)?;
        let body = Change { template: None, traffic: None, annotations: state.annotations() }.apply(&service.value());
        match platform.patch_service(&body).await {
            Ok(()) => {
                let back = platform.get_service(&name).await.map_err(Refusal::ReadBack)?;
                let landed = back.as_ref().map(|raw| RolloutState::read(&ServiceView::parse(raw.clone()).annotations));
                if landed.as_ref().is_some_and(|l| {
                    l.request == state.request && l.paused_by == state.paused_by && l.rejected == state.rejected
                }) {
                    return Ok(message);
                }
                // Someone wrote in between: read and apply again.
            }
            Err(e) if e.is_conflict() => {}
            Err(e) => return Err(Refusal::Write(e)),
        }
    }
    Err(Refusal::KeptChanging { service: name })
}

/// The new state for `command`, and the message for the operator.
fn apply(rollout: &CanaryRollout, service: &ServiceView, command: Command) -> Result<(RolloutState, String), Refusal> {
    let name = &rollout.metadata.name;
    let mut state = RolloutState::read(&service.annotations);
    if state.owner.as_deref() != Some(name.as_str()) {
        let owner = state.owner.as_deref().map_or("no rollout".to_owned(), |o| format!("rollout `{o}`"));
        return Err(Refusal::Invalid(format!("service {} is managed by {owner}, not `{name}`", service.short_name)));
    }
    let phase = state.phase.unwrap_or(Phase::Pending);
    let stages = rollout.spec.stages.len();
    let here = match state.stage {
        0 => "the canary at 0%".to_owned(),
        k => format!("stage {k} of {stages} ({}%)", rollout.spec.stages.get(k - 1).map_or(100, |s| s.weight)),
    };
    let when = "The next pass (`canary reconcile --once`, or `canary watch`) acts on it";
    let in_progress = phase.in_progress();
    let message = match command {
        Command::Pause => {
            if !in_progress {
                return Err(Refusal::Invalid(format!("{name} is {phase}: there is no rollout to pause")));
            }
            state.paused_by = Some("cli".to_owned());
            format!(
                "{name}: pause requested. {when}: it holds {here}, and paused time does not count toward the hold; rollback triggers still apply. `canary resume {name}` carries on."
            )
        }
        Command::Resume => {
            if rollout.spec.paused {
                return Err(Refusal::Invalid(format!(
                    "{name} is paused by `spec.paused: true` in its manifest; set it to false there (a command cannot override git)"
                )));
            }
            if !in_progress || (phase != Phase::Paused && state.paused_by.is_none()) {
                return Err(Refusal::Invalid(format!("{name} is {phase}, not paused")));
            }
            state.request = Some(Request::Resume);
            format!(
                "{name}: resume requested. {when}: it carries on with {here}; the time spent paused does not count toward its hold."
            )
        }
        Command::Promote { full } => {
            if !matches!(phase, Phase::Progressing | Phase::Waiting | Phase::Paused) {
                return Err(Refusal::Invalid(format!(
                    "{name} is {phase}: only a rollout in its stages can be promoted"
                )));
            }
            if rollout.spec.paused {
                return Err(Refusal::Invalid(format!(
                    "{name} is paused by `spec.paused: true` in its manifest; lift it there first"
                )));
            }
            state.paused_by = None;
            if full {
                state.request = Some(Request::PromoteFull);
                format!(
                    "{name}: full promotion requested. {when}: the canary takes 100% and becomes stable, unless a rollback trigger fires first."
                )
            } else {
                state.request = Some(Request::Promote);
                let next = if state.stage >= stages {
                    "promotes the canary to stable".to_owned()
                } else {
                    format!("moves to stage {} ({}%)", state.stage + 1, rollout.spec.stages[state.stage].weight)
                };
                format!(
                    "{name}: promotion requested. {when}: it ends {here} now, skipping the rest of its hold and its gates, and {next}; rollback triggers still apply."
                )
            }
        }
        Command::Abort => {
            if !in_progress {
                return Err(Refusal::Invalid(format!("{name} is {phase}: there is no rollout to abort")));
            }
            state.request = Some(Request::Abort);
            let stable = state.stable.clone().unwrap_or_else(|| "the stable revision".to_owned());
            let image = state.image.clone().unwrap_or_default();
            format!("{name}: abort requested. {when}: it sends 100% back to {stable} and rejects {image}.")
        }
        Command::Retry => {
            let image = &rollout.spec.template.image;
            if !state.rejected.iter().any(|i| i == image) {
                return Err(Refusal::Invalid(format!("{name}: {image} is not rejected; nothing to retry")));
            }
            state.rejected.retain(|i| i != image);
            format!("{name}: {image} is no longer rejected. {when}: it deploys it again from the start.")
        }
    };
    Ok((state, message))
}
