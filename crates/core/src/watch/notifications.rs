//! Telling people: each phase change (and each stage advanced) goes to the Slack
//! incoming webhooks and JSON webhooks a manifest names in `spec.notify`, with the URL
//! read from the environment variable it names.
//!
//! # Guarantees
//! - A pass never waits for a notification: events go into a bounded queue per target
//!   and a task per target sends them in order, retrying with backoff.
//! - Each transition is sent once. Transitions come from the `canary/history`
//!   annotation (so one written by any writer is announced), keyed by rollout, time and
//!   phase. Those already there when this process first reads a rollout count as sent
//!   (bar the ones its own first write made), so a restart does not announce them
//!   again. The price: a transition written just before a crash and not yet delivered
//!   is not sent. A graceful stop delivers what it can in its grace period.
//! - A webhook URL is a secret: it is never logged, not even in an error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::analysis::verdict::{Check, Outcome};
use crate::manifest::types::{CanaryRollout, Notify};
use crate::reconcile::RolloutOutcome;
use crate::state::{Phase, RolloutState};
use crate::time::rfc3339;

use super::metrics::{ErrorLabel, Metrics};

/// Events waiting per target before new ones are dropped (and counted).
const QUEUE: usize = 1024;

/// One thing to announce.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) rollout: String,
    pub(crate) project: String,
    pub(crate) region: String,
    pub(crate) service: String,
    /// `phaseChanged` or `stageAdvanced`.
    pub(crate) kind: &'static str,
    pub(crate) phase: Phase,
    /// 1-based; 0 before the first stage.
    pub(crate) stage: usize,
    pub(crate) stages: usize,
    pub(crate) weight: Option<u32>,
    pub(crate) reason: String,
    /// When it happened, on the platform's clock (RFC 3339).
    pub(crate) at: String,
    /// The gates and failed triggers judged in the pass that saw it.
    pub(crate) checks: Vec<Check>,
}

impl Event {
    fn key(&self) -> (String, String, String) {
        (self.rollout.clone(), self.at.clone(), format!("{}/{}/{}", self.kind, self.phase, self.stage))
    }
}

/// Phases worth a message. `Pending` and `Verifying` are passed through in seconds.
fn announced(phase: Phase) -> bool {
    !matches!(phase, Phase::Pending | Phase::Verifying)
}

/// The events a pass's outcome shows: the transitions in the service's history (phase
/// changes and stage starts).
pub(crate) fn events(rollout: &CanaryRollout, outcome: &RolloutOutcome) -> Vec<Event> {
    let Some(service) = &outcome.service else { return Vec::new() };
    let state = RolloutState::read(&service.annotations);
    if state.owner.as_deref() != Some(rollout.metadata.name.as_str()) {
        return Vec::new();
    }
    let stages = rollout.spec.stages.len();
    let weight =
        |stage: usize| stage.checked_sub(1).and_then(|i| rollout.spec.stages.get(i)).map(|s| u32::from(s.weight));
    let checks: Vec<Check> = outcome
        .verdict
        .gates
        .iter()
        .chain(outcome.verdict.triggers.iter().filter(|t| t.result == Outcome::Fail))
        .cloned()
        .collect();
    let event = |kind, phase, stage, reason: &str, at: String| Event {
        rollout: rollout.metadata.name.clone(),
        project: rollout.spec.project.clone(),
        region: rollout.spec.region.clone(),
        service: rollout.spec.service.clone(),
        kind,
        phase,
        stage,
        stages,
        weight: if phase == Phase::RolledBack { Some(0) } else { weight(stage) },
        reason: reason.to_owned(),
        at,
        checks: checks.clone(),
    };
    // History records phase changes and stage starts; a new stage within Progressing is
    // an advance.
    let mut previous: Option<(Phase, usize)> = None;
    let mut out = Vec::new();
    for t in &state.history {
        let advanced = t.phase == Phase::Progressing
            && previous.is_some_and(|(phase, stage)| phase == Phase::Progressing && stage < t.stage);
        previous = Some((t.phase, t.stage));
        if announced(t.phase) {
            let kind = if advanced { "stageAdvanced" } else { "phaseChanged" };
            out.push(event(kind, t.phase, t.stage, &t.reason, t.at.clone()));
        }
    }
    out
}

/// Where a notification goes: a kind and the environment variable holding its URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Destination {
    pub(crate) slack: bool,
    pub(crate) url_from_env: String,
}

impl Destination {
    fn of(notify: &Notify) -> Destination {
        match notify {
            Notify::Slack(t) => Destination { slack: true, url_from_env: t.url_from_env.clone() },
            Notify::Webhook(t) => Destination { slack: false, url_from_env: t.url_from_env.clone() },
        }
    }

    fn kind(&self) -> &'static str {
        if self.slack { "slack" } else { "webhook" }
    }

    /// What is posted for `event`.
    pub(crate) fn body(&self, event: &Event) -> Value {
        if self.slack { json!({"text": slack_text(event)}) } else { webhook_json(event) }
    }
}

/// A Slack message a person reads at a glance.
pub(crate) fn slack_text(e: &Event) -> String {
    let what = match (e.kind, e.phase) {
        ("stageAdvanced", _) | (_, Phase::Progressing) => format!(
            "advanced to stage {} of {}{}",
            e.stage,
            e.stages,
            e.weight.map(|w| format!(" ({w}% of traffic)")).unwrap_or_default()
        ),
        (_, Phase::Deploying) => "deploying a new canary".to_owned(),
        (_, Phase::Waiting) => format!("waiting for enough data at stage {} of {}", e.stage, e.stages),
        (_, Phase::Paused) => format!("paused at stage {} of {}", e.stage, e.stages),
        (_, Phase::Promoted) => "promoted: the canary is now stable".to_owned(),
        (_, Phase::RolledBack) => "rolled back: all traffic is on stable".to_owned(),
        (_, Phase::Failed) => "failed".to_owned(),
        (_, other) => other.name().to_owned(),
    };
    let icon = match e.phase {
        Phase::RolledBack | Phase::Failed => ":rotating_light:",
        Phase::Paused | Phase::Waiting => ":double_vertical_bar:",
        Phase::Promoted => ":white_check_mark:",
        _ => ":arrow_forward:",
    };
    let mut text = format!("{icon} *{}* ({}/{}/{}) {what}\n>{}", e.rollout, e.project, e.region, e.service, e.reason);
    for c in &e.checks {
        let observed = c.observed.map_or_else(|| "no data".to_owned(), |v| c.kind.show(v));
        let result = match c.result {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Inconclusive => "inconclusive",
        };
        text.push_str(&format!("\n• {}: {observed} (limit {}) — {result}", c.kind, c.kind.show(c.threshold)));
    }
    text
}

/// The generic webhook's document.
pub(crate) fn webhook_json(e: &Event) -> Value {
    json!({
        "rollout": e.rollout, "project": e.project, "region": e.region, "service": e.service,
        "event": e.kind, "phase": e.phase.name(), "stage": e.stage, "stages": e.stages,
        "weight": e.weight, "reason": e.reason, "at": e.at, "checks": e.checks,
    })
}

/// Whether this pass wrote the service: the transitions stamped with its `now` are its.
fn wrote(outcome: &RolloutOutcome) -> bool {
    outcome.error.is_none() && outcome.plan.as_ref().is_some_and(|p| p.change.is_some())
}

/// The queues, one per target, and which events were already handed to them.
pub(crate) struct Outbox {
    /// Rollouts read at least once by this process.
    known: BTreeSet<String>,
    sent: BTreeSet<(String, String, String)>,
    queues: HashMap<Destination, mpsc::Sender<Event>>,
    pending: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    client: reqwest::Client,
}

impl Outbox {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Outbox {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Outbox {
            known: BTreeSet::new(),
            sent: BTreeSet::new(),
            queues: HashMap::new(),
            pending: Arc::default(),
            metrics,
            client,
        }
    }

    /// Queues what `outcome` shows that was not queued before. Never waits.
    pub(crate) fn offer(&mut self, rollout: &CanaryRollout, outcome: &RolloutOutcome) {
        let first_look = self.known.insert(rollout.metadata.name.clone());
        let this_pass = rfc3339(outcome.now);
        for event in events(rollout, outcome) {
            if !self.sent.insert(event.key()) {
                continue;
            }
            // History from before this process: announced by whoever wrote it.
            if first_look && !(wrote(outcome) && event.at == this_pass) {
                continue;
            }
            for notify in &rollout.spec.notify {
                let target = Destination::of(notify);
                let queue = self.queues.entry(target.clone()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(deliver(
                        target.clone(),
                        rx,
                        self.client.clone(),
                        self.metrics.clone(),
                        self.pending.clone(),
                    ));
                    tx
                });
                self.pending.fetch_add(1, Ordering::SeqCst);
                if queue.try_send(event.clone()).is_err() {
                    self.pending.fetch_sub(1, Ordering::SeqCst);
                    self.metrics.notification(target.kind(), "dropped");
                    self.metrics.error(ErrorLabel::Notification);
                    tracing::error!(rollout = %event.rollout, env = %target.url_from_env, "the notification queue is full; dropped one");
                }
            }
        }
    }

    /// Notifications queued or being sent.
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// Why one attempt failed; says nothing of the URL.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("answered {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
}

impl SendError {
    fn retryable(&self) -> bool {
        match self {
            SendError::Status(s) => *s == 429 || *s >= 500 || *s == 408,
            SendError::Transport(_) => true,
        }
    }
}

/// Sends one target's events in order, each retried with backoff.
async fn deliver(
    target: Destination,
    mut queue: mpsc::Receiver<Event>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    pending: Arc<AtomicUsize>,
) {
    let backoff = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(6);
    while let Some(event) = queue.recv().await {
        let result = match std::env::var(&target.url_from_env).ok().filter(|u| !u.trim().is_empty()) {
            None => Err(format!("the environment variable {} is not set", target.url_from_env)),
            Some(url) => {
                let body = target.body(&event);
                let attempt = || async {
                    let answer = client
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| SendError::Transport(e.without_url().to_string()))?;
                    let status = answer.status().as_u16();
                    if (200..300).contains(&status) { Ok(()) } else { Err(SendError::Status(status)) }
                };
                attempt
                    .retry(backoff)
                    .sleep(tokio::time::sleep)
                    .when(SendError::retryable)
                    .notify(|e, after| {
                        tracing::debug!(rollout = %event.rollout, env = %target.url_from_env, "notification failed ({e}); again in {after:?}");
                    })
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(()) => {
                metrics.notification(target.kind(), "sent");
                tracing::debug!(rollout = %event.rollout, phase = %event.phase, env = %target.url_from_env, "notified");
            }
            Err(why) => {
                metrics.notification(target.kind(), "failed");
                metrics.error(ErrorLabel::Notification);
                tracing::warn!(
                    rollout = %event.rollout,
                    phase = %event.phase,
                    env = %target.url_from_env,
                    "could not send a {} notification: {why}",
                    target.kind()
                );
            }
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::verdict::CheckKind;

    fn event(kind: &'static str, phase: Phase, stage: usize) -> Event {
        Event {
            rollout: "api".into(),
            project: "p".into(),
            region: "us-central1".into(),
            service: "api".into(),
            kind,
            phase,
            stage,
            stages: 4,
            weight: Some(25),
            reason: "holding 25% (stage 2 of 4)".into(),
            at: "2026-11-26T10:00:00Z".into(),
            checks: vec![Check {
                kind: CheckKind::ErrorRateIncrease,
                observed: Some(0.0012),
                threshold: 0.005,
                result: Outcome::Pass,
                requests_needed: None,
                stable: None,
                shared: false,
            }],
        }
    }

    #[test]
    fn slack_messages_say_the_rollout_stage_reason_and_gates() {
        let text = slack_text(&event("stageAdvanced", Phase::Progressing, 2));
        assert!(text.contains("*api*"), "{text}");
        assert!(text.contains("advanced to stage 2 of 4 (25% of traffic)"), "{text}");
        assert!(text.contains(">holding 25% (stage 2 of 4)"), "{text}");
        assert!(text.contains("errorRateIncrease: +0.12 pts (limit +0.50 pts) — pass"), "{text}");
        let rolled = slack_text(&event("phaseChanged", Phase::RolledBack, 2));
        assert!(rolled.contains(":rotating_light:") && rolled.contains("rolled back"), "{rolled}");
    }

    #[test]
    fn the_webhook_document_is_plain_json() {
        let doc = webhook_json(&event("phaseChanged", Phase::Waiting, 2));
        assert_eq!(doc["phase"], "Waiting");
        assert_eq!(doc["event"], "phaseChanged");
        assert_eq!(doc["checks"][0]["result"], "pass");
    }

    #[test]
    fn keys_tell_a_stage_advance_from_a_phase_change_at_the_same_time() {
        assert_ne!(
            event("stageAdvanced", Phase::Progressing, 2).key(),
            event("phaseChanged", Phase::Progressing, 2).key()
        );
    }

    #[test]
    fn only_client_errors_are_final() {
        assert!(SendError::Status(503).retryable());
        assert!(SendError::Status(429).retryable());
        assert!(!SendError::Status(404).retryable());
        assert!(SendError::Transport("connection refused".into()).retryable());
    }
}
