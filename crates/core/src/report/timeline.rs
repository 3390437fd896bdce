//! A rollout's story, rebuilt from the state canary keeps on the service: when it was
//! deployed, when each stage began, how it ended and why. Pure.
//!
//! The history annotation keeps the newest 30 transitions and may hold earlier
//! rollouts of the same service: this rollout's part starts at its last `Deploying`.
//! When the cap has cut that off, [`Timeline::capped`] says so, and the current and
//! previous stage's starts still come from their own annotations.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::manifest::types::CanaryRollout;
use crate::state::{HISTORY_CAP, Pause, Phase, RolloutState, Transition};
use crate::time::parse_rfc3339;

/// How the rollout ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Promoted,
    RolledBack,
    Failed,
    /// Still under way, in this phase.
    InProgress(Phase),
}

impl Outcome {
    pub(crate) fn words(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
            Outcome::InProgress(_) => "in progress",
        }
    }
}

/// One stage as it ran: from the moment its traffic was set until the next change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Span {
    /// 1-based.
    pub(crate) stage: usize,
    pub(crate) weight: u8,
    pub(crate) start: SystemTime,
    /// `None` while the stage is still running.
    pub(crate) end: Option<SystemTime>,
}

/// What ended the rollout, read from the reason canary recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cause {
    /// `rollback trigger`, `promotion gate`, or empty when the reason names neither.
    pub(crate) kind: String,
    /// The trigger or gate (`errorRate`), when one decided.
    pub(crate) check: Option<String>,
    pub(crate) observed: Option<String>,
    pub(crate) threshold: Option<String>,
    /// The reason as recorded.
    pub(crate) reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Timeline {
    pub(crate) outcome: Outcome,
    /// When the canary was deployed (its last `Deploying`), when the history reaches it.
    pub(crate) started: Option<SystemTime>,
    /// When the rollout was promoted, rolled back or failed.
    pub(crate) ended: Option<SystemTime>,
    /// The stage it ended in (or is in).
    pub(crate) stage: usize,
    pub(crate) spans: Vec<Span>,
    /// This rollout's transitions, oldest first.
    pub(crate) transitions: Vec<Transition>,
    /// The history's cap has dropped the start of this rollout.
    pub(crate) capped: bool,
    pub(crate) cause: Option<Cause>,
    pub(crate) stable: Option<String>,
    pub(crate) canary: Option<String>,
    pub(crate) image: Option<String>,
}

impl Timeline {
    /// The shared incidents this rollout paused for: from the `SharedIncident` pause to
    /// the next transition (the stage starting again, or the end), or open until now.
    pub(crate) fn incidents(&self) -> Vec<(SystemTime, Option<SystemTime>)> {
        let at = |t: &Transition| parse_rfc3339(&t.at);
        self.transitions
            .iter()
            .enumerate()
            .filter(|(_, t)| t.phase == Phase::Paused && t.reason.starts_with(crate::decide::SHARED_INCIDENT))
            .filter_map(|(i, t)| Some((at(t)?, self.transitions.get(i + 1).and_then(at))))
            .collect()
    }
}

/// Why a report cannot be written: the rollout has not deployed a canary yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotStarted(pub(crate) String);

/// Rebuilds the story of `rollout` from `state`.
pub(crate) fn timeline(rollout: &CanaryRollout, state: &RolloutState) -> Result<Timeline, NotStarted> {
    let name = &rollout.metadata.name;
    let not_started = |why: String| {
        NotStarted(format!("rollout `{name}` has not started on service {}: {why}", rollout.spec.service))
    };
    if state.owner.as_deref() != Some(name.as_str()) {
        return Err(not_started(match &state.owner {
            None => "canary has never acted on it (run `canary reconcile --once` first)".to_owned(),
            Some(other) => format!("it belongs to rollout `{other}`"),
        }));
    }
    let Some(phase) = state.phase else {
        return Err(not_started("it has no canary phase yet (run `canary reconcile --once` first)".to_owned()));
    };
    let deployed_at = state.history.iter().rposition(|t| t.phase == Phase::Deploying);
    let capped = deployed_at.is_none() && state.history.len() >= HISTORY_CAP;
    if deployed_at.is_none() && !capped && state.stage == 0 && state.canary.is_none() {
        return Err(not_started(format!("no canary was ever deployed (phase {phase}: {})", state.reason)));
    }
    let transitions: Vec<Transition> = state.history[deployed_at.unwrap_or(0)..].to_vec();
    let at = |t: &Transition| parse_rfc3339(&t.at);
    let started = deployed_at.and_then(|i| at(&state.history[i]));
    let outcome = match phase {
        Phase::Promoted => Outcome::Promoted,
        Phase::RolledBack => Outcome::RolledBack,
        Phase::Failed => Outcome::Failed,
        other => Outcome::InProgress(other),
    };
    let ended = match outcome {
        Outcome::InProgress(_) => None,
        _ => transitions.iter().rev().find(|t| t.phase == phase).and_then(at),
    };
    // Each stage began at the first transition that names it, or at its start
    // annotation when that is earlier: the cap may have dropped the transition, and a
    // pause only ever moves the annotation later.
    let mut starts: BTreeMap<usize, SystemTime> = BTreeMap::new();
    let mut saw = |stage: usize, when: SystemTime| {
        starts.entry(stage).and_modify(|t| *t = (*t).min(when)).or_insert(when);
    };
    for t in transitions.iter().filter(|t| t.stage >= 1 && t.phase != Phase::Deploying) {
        if let Some(when) = at(t) {
            saw(t.stage, when);
        }
    }
    if state.stage >= 1 {
        if let Some(when) = state.stage_started {
            saw(state.stage, when);
        }
        if let (Some(when), true) = (state.previous_stage_started, state.stage >= 2) {
            saw(state.stage - 1, when);
        }
    }
    let starts: Vec<(usize, SystemTime)> = starts.into_iter().collect();
    let spans = starts
        .iter()
        .enumerate()
        .map(|(i, (stage, start))| Span {
            stage: *stage,
            weight: rollout.spec.stages.get(stage - 1).map_or(100, |s| s.weight),
            start: *start,
            end: starts.get(i + 1).map(|(_, next)| *next).or(ended),
        })
        .collect();
    let cause = match outcome {
        Outcome::RolledBack | Outcome::Failed => Some(cause(&state.reason)),
        Outcome::InProgress(Phase::Paused) if state.pause == Some(Pause::GateFailed) => Some(cause(&state.reason)),
        _ => None,
    };
    // "deploying CANARY (IMAGE) at 0% beside STABLE": the revisions as they were, even
    // after a promotion made the canary the stable one.
    let deploy_reason = deployed_at.map(|i| state.history[i].reason.as_str()).unwrap_or_default();
    let recorded = |prefix: &str, until: char| -> Option<String> {
        let rest = deploy_reason.split_once(prefix)?.1;
        Some(rest.split(until).next()?.trim().to_owned()).filter(|s| !s.is_empty())
    };
    let (canary, stable) = match outcome {
        Outcome::Promoted => (state.stable.clone().or_else(|| recorded("deploying ", ' ')), recorded(" beside ", ' ')),
        _ => (state.canary.clone().or_else(|| recorded("deploying ", ' ')), state.stable.clone()),
    };
    Ok(Timeline {
        outcome,
        started,
        ended,
        stage: state.stage,
        spans,
        transitions,
        capped,
        cause,
        stable,
        canary,
        image: state.image.clone(),
    })
}

/// `rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%`
/// → the trigger, its observed value and its threshold.
fn cause(reason: &str) -> Cause {
    let body = reason.strip_prefix("rolled back: ").or_else(|| reason.strip_prefix("GateFailed: ")).unwrap_or(reason);
    let (kind, rest) = ["rollback trigger ", "promotion gate "]
        .iter()
        .find_map(|k| body.strip_prefix(k).map(|rest| (k.trim().to_owned(), rest)))
        .unwrap_or_else(|| (String::new(), body));
    let check = (!kind.is_empty()).then(|| rest.split_whitespace().next().unwrap_or_default().to_owned());
    let value = |label: &str| -> Option<String> {
        let after = rest.split_once(label)?.1;
        Some(after.split(',').next()?.trim().to_owned()).filter(|v| !v.is_empty())
    };
    Cause {
        kind,
        check: check.filter(|c| !c.is_empty()),
        observed: value("observed "),
        threshold: value("threshold "),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_is_read_from_the_reason() {
        let c = cause("rolled back: rollback trigger errorRate failed: observed 10.20%, threshold 5.00%");
        assert_eq!(c.kind, "rollback trigger");
        assert_eq!(c.check.as_deref(), Some("errorRate"));
        assert_eq!((c.observed.as_deref(), c.threshold.as_deref()), (Some("10.20%"), Some("5.00%")));
        let abort = cause("rolled back: aborted with `canary abort`");
        assert_eq!((abort.kind.as_str(), abort.check, abort.observed), ("", None, None));
        let no_data = cause("rolled back: rollback trigger p95Latency failed: no data yet, threshold 2000 ms");
        assert_eq!((no_data.observed, no_data.threshold.as_deref()), (None, Some("2000 ms")));
    }
}
