//! A rollout's state, kept on the Cloud Run service as annotations under `canary/`,
//! written in the same PATCH that moves traffic. Nothing a pass needs for correctness
//! lives anywhere else, so any runner, after any crash, picks up where the last left off.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::time::{parse_rfc3339, rfc3339};

pub(crate) const PREFIX: &str = "canary/";
const OWNER: &str = "canary/owner";
const PHASE: &str = "canary/phase";
const REASON: &str = "canary/reason";
const STAGE: &str = "canary/stage";
const STAGE_STARTED: &str = "canary/stage-started";
const PREVIOUS_STAGE_STARTED: &str = "canary/previous-stage-started";
const STABLE: &str = "canary/stable";
const CANARY: &str = "canary/canary";
const IMAGE: &str = "canary/image";
const REJECTED: &str = "canary/rejected";
const HISTORY: &str = "canary/history";
const PAUSED_BY: &str = "canary/paused-by";
const PAUSED_AT: &str = "canary/paused-at";
const PAUSED_FOR: &str = "canary/paused-for";
const REQUEST: &str = "canary/request";
/// Shared incidents this rollout has paused for: the second is the canary's fault.
const INCIDENTS: &str = "canary/incidents";
/// The traffic entries canary last wrote (its own: `stable`, `canary`, anything at a
/// percentage), and when: what tells a person's change from canary's.
const TRAFFIC: &str = "canary/traffic";
const TRAFFIC_AT: &str = "canary/traffic-at";
/// The last valid manifest applied, compact: it keeps protecting a rollout whose
/// manifest has since become invalid.
pub(crate) const APPLIED_SPEC: &str = "canary/spec";
/// How many transitions the history keeps (the newest).
pub(crate) const HISTORY_CAP: usize = 30;

/// Where a rollout is. Each comes with a one-line reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Deploying,
    Verifying,
    Progressing,
    Waiting,
    Paused,
    Promoted,
    RolledBack,
    Failed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Verifying => "Verifying",
            Phase::Progressing => "Progressing",
            Phase::Waiting => "Waiting",
            Phase::Paused => "Paused",
            Phase::Promoted => "Promoted",
            Phase::RolledBack => "RolledBack",
            Phase::Failed => "Failed",
        }
    }

    /// Every phase, in lifecycle order.
    pub(crate) const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::Deploying,
        Phase::Verifying,
        Phase::Progressing,
        Phase::Waiting,
        Phase::Paused,
        Phase::Promoted,
        Phase::RolledBack,
        Phase::Failed,
    ];

    fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == text)
    }

    /// A rollout is under way: a canary exists that is not yet stable nor rejected.
    pub(crate) fn in_progress(self) -> bool {
        matches!(self, Phase::Deploying | Phase::Verifying | Phase::Progressing | Phase::Waiting | Phase::Paused)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a rollout is paused, which says who lifts the pause. Kept on the service
/// (`canary/paused-for`) beside the phase, so no reader tells pauses apart by their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// `spec.paused: true`: lifted when the manifest no longer says so.
    Spec,
    /// The manifest became invalid: held until it is valid again (the last valid
    /// manifest's triggers still apply).
    Frozen,
    /// `canary pause`: lifted by `canary resume`.
    Command,
    /// A promotion gate failed under `onGateFailure: pause`: a person decides.
    GateFailed,
    /// The gates stayed inconclusive past `maxWait`: a person decides.
    InsufficientData,
    /// Traffic, tags or template were changed by someone other than canary mid-rollout:
    /// a person decides (`canary resume` puts canary's split back, `abort` rolls back).
    ChangedOutside,
    /// A rollback trigger failed for stable too, the canary no worse: its traffic went
    /// back to stable and the stage starts again once stable has recovered for
    /// `analysis.incidentRecovery` (or on `canary resume`).
    SharedIncident,
    /// Paused with no cause on record (written before `canary/paused-for`, or edited
    /// by hand): a person lifts it, the safe reading.
    Unrecorded,
}

impl Pause {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Pause::Spec => "spec",
            Pause::Frozen => "frozen",
            Pause::Command => "command",
            Pause::GateFailed => "gate-failed",
            Pause::InsufficientData => "insufficient-data",
            Pause::ChangedOutside => "changed-outside",
            Pause::SharedIncident => "shared-incident",
            Pause::Unrecorded => "unrecorded",
        }
    }

    const ALL: [Pause; 8] = [
        Pause::Spec,
        Pause::Frozen,
        Pause::Command,
        Pause::GateFailed,
        Pause::InsufficientData,
        Pause::ChangedOutside,
        Pause::SharedIncident,
        Pause::Unrecorded,
    ];

    fn parse(text: &str) -> Option<Pause> {
        Pause::ALL.into_iter().find(|p| p.name() == text)
    }

    /// The cause of a pause written with no `canary/paused-for`: by a canary from before
    /// the annotation existed (or one that still does not know it, whose writes drop
    /// it), read off the reasons those versions wrote, so their pauses lift as they did.
    /// Anything else is `canary pause`'s when someone paused by hand, and otherwise one a
    /// person lifts. The only place a reason's text is read; remove once no service can
    /// carry a pause from before.
    fn before_paused_for(reason: &str, paused_by_hand: bool) -> Pause {
        use crate::decide::{CLI_PAUSE, FROZEN, SPEC_PAUSE};
        match reason {
            r if r.starts_with(SPEC_PAUSE) => Pause::Spec,
            FROZEN => Pause::Frozen,
            CLI_PAUSE => Pause::Command,
            r if r.starts_with("GateFailed:") => Pause::GateFailed,
            r if r.starts_with("InsufficientData:") => Pause::InsufficientData,
            _ if paused_by_hand => Pause::Command,
            _ => Pause::Unrecorded,
        }
    }

    /// Only a person lifts this pause (`canary resume`, `promote` or `abort`): a failed
    /// gate, too little data, a change made outside canary, or a cause not on record.
    /// The manifest lifts `spec` and `frozen`; `canary resume` lifts `command`.
    pub fn waits_for_a_person(self) -> bool {
        matches!(self, Pause::GateFailed | Pause::InsufficientData | Pause::ChangedOutside | Pause::Unrecorded)
    }
}

/// One traffic entry as canary wrote it (`canary/traffic`): `revision` is `None` for
/// "the latest Ready revision".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub percent: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// One recorded transition, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub(crate) at: String,
    pub phase: Phase,
    pub(crate) stage: usize,
    pub reason: String,
}

/// The state canary keeps on a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutState {
    pub owner: Option<String>,
    pub phase: Option<Phase>,
    pub reason: String,
    /// 1-based; 0 before the first stage.
    pub stage: usize,
    pub stage_started: Option<SystemTime>,
    pub(crate) previous_stage_started: Option<SystemTime>,
    pub stable: Option<String>,
    pub canary: Option<String>,
    /// The image being rolled out (or last rolled out).
    pub(crate) image: Option<String>,
    /// Images rolled back or failed: not deployed again until they change or `retry`.
    pub rejected: Vec<String>,
    pub history: Vec<Transition>,
    /// Who paused the rollout by hand (`canary pause`), if someone did.
    pub paused_by: Option<String>,
    /// When the current pause began: paused time does not count toward a hold.
    pub(crate) paused_at: Option<SystemTime>,
    /// Why the rollout is paused, while its phase is `Paused`.
    pub pause: Option<Pause>,
    /// A manual command for the next pass to act on.
    pub request: Option<Request>,
    /// The last valid manifest applied, as compact JSON.
    pub applied: Option<String>,
    /// Canary's own traffic entries as it last wrote them, sorted; empty when none is
    /// on record (a service written by a canary from before `canary/traffic`).
    pub written: Vec<Entry>,
    /// When canary last wrote traffic.
    pub written_at: Option<SystemTime>,
    /// Shared incidents this rollout has paused for.
    pub incidents: u32,
}

/// What an operator asked for with `canary promote` / `canary abort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Finish the current stage now (its hold and gates; triggers still apply).
    Promote,
    /// Go straight to Promoted.
    PromoteFull,
    /// Roll back now and reject the image.
    Abort,
    /// Carry on after `canary pause`, a failed gate or a lack of data.
    Resume,
}

impl Request {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Request::Promote => "promote",
            Request::PromoteFull => "promote-full",
            Request::Abort => "abort",
            Request::Resume => "resume",
        }
    }

    fn parse(text: &str) -> Option<Request> {
        [Request::Promote, Request::PromoteFull, Request::Abort, Request::Resume].into_iter().find(|r| r.name() == text)
    }
}

impl RolloutState {
    /// Reads the state from a service's annotations; anything unreadable counts as unset.
    pub fn read(annotations: &BTreeMap<String, String>) -> RolloutState {
        let get = |k: &str| annotations.get(k).filter(|v| !v.is_empty()).cloned();
        let time = |k: &str| get(k).and_then(|v| parse_rfc3339(&v));
        let phase = get(PHASE).and_then(|p| Phase::parse(&p));
        let paused_by = get(PAUSED_BY);
        // A pause only means something in the Paused phase.
        let pause = (phase == Some(Phase::Paused)).then(|| {
            get(PAUSED_FOR).and_then(|p| Pause::parse(&p)).unwrap_or_else(|| {
                Pause::before_paused_for(get(REASON).as_deref().unwrap_or_default(), paused_by.is_some())
            })
        });
        let stage = get(STAGE).and_then(|s| s.parse().ok()).unwrap_or(0);
        let history: Vec<Transition> = get(HISTORY).and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default();
        let written_at = time(TRAFFIC_AT);
        // An unreadable start (edited by hand) is recovered from the newest transition
        // into this stage, else from canary's last traffic write, which began it.
        let stage_started = time(STAGE_STARTED).or_else(|| {
            history.iter().rev().find(|t| t.stage == stage).and_then(|t| parse_rfc3339(&t.at)).or(written_at)
        });
        RolloutState {
            owner: get(OWNER),
            phase,
            reason: get(REASON).unwrap_or_default(),
            stage,
            stage_started,
            previous_stage_started: time(PREVIOUS_STAGE_STARTED),
            stable: get(STABLE),
            canary: get(CANARY),
            image: get(IMAGE),
            rejected: get(REJECTED).and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default(),
            history,
            paused_by,
            paused_at: time(PAUSED_AT),
            pause,
            request: get(REQUEST).and_then(|r| Request::parse(&r)),
            applied: get(APPLIED_SPEC),
            written: get(TRAFFIC)
                .and_then(|v| serde_json::from_str::<Vec<Entry>>(&v).ok())
                .map(|mut entries| {
                    entries.sort();
                    entries
                })
                .unwrap_or_default(),
            written_at,
            incidents: get(INCIDENTS).and_then(|v| v.parse().ok()).unwrap_or(0),
        }
    }

    /// The annotations that represent this state: every `canary/` key, empty ones left out.
    pub(crate) fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                out.insert(k.to_owned(), v);
            }
        };
        put(OWNER, self.owner.clone());
        put(PHASE, self.phase.map(|p| p.name().to_owned()));
        put(REASON, Some(self.reason.clone()));
        put(STAGE, Some(self.stage.to_string()));
        put(STAGE_STARTED, self.stage_started.map(rfc3339));
        put(PREVIOUS_STAGE_STARTED, self.previous_stage_started.map(rfc3339));
        put(STABLE, self.stable.clone());
        put(CANARY, self.canary.clone());
        put(IMAGE, self.image.clone());
        if !self.rejected.is_empty() {
            put(REJECTED, serde_json::to_string(&self.rejected).ok());
        }
        if !self.history.is_empty() {
            put(HISTORY, serde_json::to_string(&self.history).ok());
        }
        put(PAUSED_BY, self.paused_by.clone());
        put(PAUSED_AT, self.paused_at.map(rfc3339));
        put(PAUSED_FOR, self.pause.filter(|_| self.phase == Some(Phase::Paused)).map(|p| p.name().to_owned()));
        put(REQUEST, self.request.map(|r| r.name().to_owned()));
        put(APPLIED_SPEC, self.applied.clone());
        if !self.written.is_empty() {
            put(TRAFFIC, serde_json::to_string(&self.written).ok());
        }
        put(TRAFFIC_AT, self.written_at.map(rfc3339));
        put(INCIDENTS, (self.incidents > 0).then(|| self.incidents.to_string()));
        out
    }

    /// Moves to `phase` with `reason`, recording the transition when the phase or the
    /// stage changes (a report draws each stage's start from the history).
    pub(crate) fn enter(&mut self, phase: Phase, reason: impl Into<String>, now: SystemTime) {
        let reason = reason.into();
        let new_stage = self.history.last().is_some_and(|t| t.stage != self.stage);
        if self.phase != Some(phase) || new_stage {
            self.history.push(Transition { at: rfc3339(now), phase, stage: self.stage, reason: reason.clone() });
            let excess = self.history.len().saturating_sub(HISTORY_CAP);
            self.history.drain(..excess);
        }
        self.phase = Some(phase);
        self.reason = reason;
        if phase != Phase::Paused {
            self.pause = None;
        }
    }

    /// Moves to `Paused` for `cause`, with `reason` said to people.
    pub(crate) fn enter_pause(&mut self, cause: Pause, reason: impl Into<String>, now: SystemTime) {
        self.enter(Phase::Paused, reason, now);
        self.pause = Some(cause);
    }

    pub(crate) fn reject(&mut self, image: &str) {
        if !self.rejected.iter().any(|i| i == image) {
            self.rejected.push(image.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn state_round_trips_through_annotations() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut state = RolloutState {
            owner: Some("ion-api".into()),
            stage: 2,
            stage_started: Some(now),
            ..RolloutState::default()
        };
        state.stable = Some("ion-api-00001-abc".into());
        state.canary = Some("ion-api-1a2b3c4".into());
        state.image = Some("gcr.io/p/ion:v2".into());
        state.enter(Phase::Progressing, "holding 25% (stage 2 of 4)", now);
        state.reject("gcr.io/p/ion:v1");
        state.paused_by = Some("cli".into());
        state.paused_at = Some(now);
        state.request = Some(Request::Promote);
        state.written = vec![
            Entry { revision: Some("ion-api-00001-abc".into()), percent: 75, tag: Some("stable".into()) },
            Entry { revision: Some("ion-api-1a2b3c4".into()), percent: 25, tag: Some("canary".into()) },
        ];
        state.written_at = Some(now);
        let back = RolloutState::read(&state.annotations());
        assert_eq!(back, state);
        assert!(state.annotations().keys().all(|k| k.starts_with(PREFIX)));
    }

    #[test]
    fn garbage_annotations_read_as_unset() {
        let annotations: BTreeMap<String, String> = [
            (PHASE, "Exploding"),
            (STAGE, "two"),
            (STAGE_STARTED, "yesterday"),
            (REJECTED, "[oops"),
            (TRAFFIC, "{\"revision\": 3}"),
            (TRAFFIC_AT, "noon"),
            ("other/key", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let state = RolloutState::read(&annotations);
        assert_eq!(state, RolloutState::default());
    }

    #[test]
    fn a_pause_cause_round_trips_and_an_unreadable_one_waits_for_a_person() {
        let now = SystemTime::UNIX_EPOCH;
        for cause in Pause::ALL {
            let mut state = RolloutState::default();
            state.enter_pause(cause, "held", now);
            let annotations = state.annotations();
            assert_eq!(annotations.get(PAUSED_FOR).map(String::as_str), Some(cause.name()));
            assert_eq!(RolloutState::read(&annotations).pause, Some(cause));
            state.enter(Phase::Progressing, "on", now);
            assert_eq!(state.pause, None, "leaving Paused forgets the cause");
            assert!(!state.annotations().contains_key(PAUSED_FOR));
        }
        let mut annotations: BTreeMap<String, String> =
            [(PHASE, "Paused"), (PAUSED_FOR, "bored")].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        assert_eq!(RolloutState::read(&annotations).pause, Some(Pause::Unrecorded));
        // Written before canary/paused-for: the reason those versions wrote says the cause.
        for (reason, cause) in [
            ("paused by spec.paused", Pause::Spec),
            (crate::decide::FROZEN, Pause::Frozen),
            ("paused with `canary pause`", Pause::Command),
            ("GateFailed: errorRateIncrease failed: observed 2.00%, threshold 0.50%", Pause::GateFailed),
            ("InsufficientData: minRequests inconclusive after waiting 2h", Pause::InsufficientData),
        ] {
            let legacy: BTreeMap<String, String> =
                [(PHASE, "Paused"), (REASON, reason)].into_iter().map(|(k, v)| (k.into(), v.into())).collect();
            assert_eq!(RolloutState::read(&legacy).pause, Some(cause), "{reason}");
        }
        annotations.insert(PAUSED_BY.into(), "cli".into());
        assert_eq!(RolloutState::read(&annotations).pause, Some(Pause::Command));
        annotations.insert(PHASE.into(), "Progressing".into());
        assert_eq!(RolloutState::read(&annotations).pause, None, "a cause outside Paused means nothing");
    }

    /// Found by the simulation (seed 210): with `canary/stage-started` deleted by hand the
    /// stage's hold never ended and its triggers saw no minutes, so a failing canary kept
    /// its traffic. The start comes back from the history, else from canary's last
    /// traffic write.
    #[test]
    fn an_unreadable_stage_start_is_recovered_from_the_history_or_the_last_traffic_write() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s);
        let mut state = RolloutState { stage: 1, ..RolloutState::default() };
        state.enter(Phase::Progressing, "holding 10% (stage 1 of 3)", t(60));
        state.stage = 2;
        state.enter(Phase::Progressing, "holding 50% (stage 2 of 3)", t(600));
        state.written_at = Some(t(900));
        let mut annotations = state.annotations();
        annotations.insert(STAGE_STARTED.into(), "yesterday".into());
        assert_eq!(RolloutState::read(&annotations).stage_started, Some(t(600)));
        annotations.remove(HISTORY);
        assert_eq!(RolloutState::read(&annotations).stage_started, Some(t(900)));
    }

    #[test]
    fn history_is_capped_and_records_only_changes() {
        let now = SystemTime::UNIX_EPOCH;
        let mut state = RolloutState::default();
        state.enter(Phase::Waiting, "a", now);
        state.enter(Phase::Waiting, "b", now);
        assert_eq!(state.history.len(), 1);
        for i in 0..100 {
            state.enter(if i % 2 == 0 { Phase::Progressing } else { Phase::Waiting }, "x", now);
        }
        assert_eq!(state.history.len(), HISTORY_CAP);
    }

    #[test]
    fn a_new_stage_in_the_same_phase_is_a_transition() {
        let now = SystemTime::UNIX_EPOCH;
        let mut state = RolloutState { stage: 1, ..RolloutState::default() };
        state.enter(Phase::Progressing, "holding 5% (stage 1 of 4)", now);
        state.stage = 2;
        state.enter(Phase::Progressing, "holding 25% (stage 2 of 4)", now);
        state.enter(Phase::Progressing, "holding 25% (stage 2 of 4)", now);
        let stages: Vec<usize> = state.history.iter().map(|t| t.stage).collect();
        assert_eq!(stages, [1, 2]);
    }
}
