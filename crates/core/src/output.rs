//! Results on stdout: pass results (`plan`, `reconcile`) and rollout status, as a
//! table for people or JSON / YAML for programs, in the shapes DESIGN.md fixes.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::analysis::verdict::Check;
use crate::cloudrun::service::ServiceView;
use crate::decide::Action;
use crate::manifest::types::CanaryRollout;
use crate::reconcile::RolloutOutcome;
use crate::state::RolloutState;
use crate::time::rfc3339;

fn action_name(action: Action) -> &'static str {
    match action {
        Action::None => "none",
        Action::Deploy => "deploy",
        Action::SetTraffic => "setTraffic",
        Action::Promote => "promote",
        Action::Rollback => "rollback",
        Action::Annotate => "annotate",
    }
}

/// `[{name, phaseBefore, phaseAfter, action, trafficBefore, trafficAfter, reason}]`.
pub fn pass_json(outcomes: &[RolloutOutcome]) -> Value {
    Value::Array(
        outcomes
            .iter()
            .map(|o| match &o.plan {
                Some(plan) => {
                    let mut out = json!({
                        "name": o.name,
                        "phaseBefore": plan.phase_before.map(|p| p.name()),
                        "phaseAfter": plan.phase_after.name(),
                        "action": action_name(plan.action),
                        "trafficBefore": plan.traffic_before,
                        "trafficAfter": plan.traffic_after,
                        "reason": plan.reason,
                    });
                    if let Some(error) = &o.error {
                        out["error"] = error.clone().into();
                    }
                    out
                }
                None => json!({"name": o.name, "phaseBefore": null, "phaseAfter": null, "action": "none",
                    "trafficBefore": {}, "trafficAfter": {}, "reason": o.error.clone().unwrap_or_default(), "error": o.error}),
            })
            .collect(),
    )
}

fn split_text(split: &BTreeMap<String, u32>) -> String {
    if split.is_empty() {
        return "-".to_owned();
    }
    split.iter().map(|(r, p)| format!("{r} {p}%")).collect::<Vec<_>>().join(", ")
}

/// The pass results as an aligned table.
pub fn pass_table(outcomes: &[RolloutOutcome]) -> String {
    let mut rows = vec![[
        "ROLLOUT".to_owned(),
        "PHASE".to_owned(),
        "ACTION".to_owned(),
        "TRAFFIC".to_owned(),
        "REASON".to_owned(),
    ]];
    for o in outcomes {
        rows.push(match &o.plan {
            Some(plan) => {
                let before = plan.phase_before.map_or("-", |p| p.name());
                let phase = if before == plan.phase_after.name() {
                    before.to_owned()
                } else {
                    format!("{before} → {}", plan.phase_after)
                };
                let traffic = if plan.traffic_before == plan.traffic_after {
                    split_text(&plan.traffic_before)
                } else {
                    format!("{} → {}", split_text(&plan.traffic_before), split_text(&plan.traffic_after))
                };
                let mut reason = plan.reason.clone();
                if let Some(error) = &o.error {
                    reason = format!("{reason} (error: {error})");
                }
                [o.name.clone(), phase, action_name(plan.action).to_owned(), traffic, reason]
            }
            None => [
                o.name.clone(),
                "-".into(),
                "none".into(),
                "-".into(),
                format!("error: {}", o.error.clone().unwrap_or_default()),
            ],
        });
    }
    table(&rows)
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(
                |(i, c)| {
                    if i + 1 == N { c.clone() } else { format!("{c}{}", " ".repeat(widths[i] - c.chars().count())) }
                },
            )
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn check_json(c: &Check) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

/// One rollout's status, in the `status -o json` shape.
pub fn status_json(rollout: &CanaryRollout, outcome: &RolloutOutcome) -> Value {
    // What the service says, when it says it of this rollout (not of another that owns it).
    let state = outcome
        .service
        .as_ref()
        .map(|s| RolloutState::read(&s.annotations))
        .filter(|s| s.owner.as_deref().is_none_or(|owner| owner == rollout.metadata.name))
        .unwrap_or_default();
    let stages = rollout.spec.stages.len();
    let weight = match (&outcome.service, &state.canary) {
        (Some(s), Some(canary)) => s.split().get(canary).copied().unwrap_or(0),
        _ => 0,
    };
    let hold_remaining = state.stage_started.and_then(|started| {
        let hold = rollout.spec.stages.get(state.stage.checked_sub(1)?)?.hold.as_ref()?.as_std();
        let elapsed = outcome.now.duration_since(started).unwrap_or_default();
        Some(hold.saturating_sub(elapsed).as_secs())
    });
    // The phase is what the service says; before canary has written anything, it is
    // Pending with what the next pass would do (or Failed, when it cannot act).
    let (phase, reason) = match (&outcome.plan, state.phase) {
        (_, Some(phase)) => (Some(phase.name().to_owned()), state.reason.clone()),
        (Some(plan), None) if plan.result == crate::decide::PassResult::Blocked => {
            (Some("Failed".to_owned()), plan.reason.clone())
        }
        (Some(plan), None) => (Some("Pending".to_owned()), format!("next pass: {}", plan.reason)),
        (None, None) => (None, outcome.error.clone().unwrap_or_default()),
    };
    let holds: Vec<u64> = rollout.spec.stages.iter().map(|s| s.hold.as_ref().map_or(0, |h| h.as_secs())).collect();
    let mut out = json!({
        "name": rollout.metadata.name,
        "project": rollout.spec.project,
        "region": rollout.spec.region,
        "service": rollout.spec.service,
        "phase": phase,
        "reason": reason,
        "stage": state.stage,
        "stages": stages,
        "weight": weight,
        "image": state.image.clone().unwrap_or_else(|| rollout.spec.template.image.clone()),
        "stableRevision": state.stable,
        "canaryRevision": state.canary,
        "stageStartedAt": state.stage_started.map(rfc3339),
        "holdRemainingSeconds": hold_remaining,
        "gates": outcome.verdict.gates.iter().map(check_json).collect::<Vec<_>>(),
        "triggers": outcome.verdict.triggers.iter().map(check_json).collect::<Vec<_>>(),
        // For the live view: every stage, the current hold, and the split in force.
        "stageWeights": rollout.spec.stages.iter().map(|s| s.weight).collect::<Vec<_>>(),
        "stageHoldSeconds": holds,
        "holdSeconds": state.stage.checked_sub(1).and_then(|i| holds.get(i)),
        "traffic": outcome.service.as_ref().map(|s| s.split()).unwrap_or_default(),
        "observedAt": rfc3339(outcome.now),
    });
    // Right after a write Cloud Run still serves the old split for a while: say where it
    // is going, so a status read then does not look like the write was lost.
    if let Some(target) = outcome.service.as_ref().and_then(ServiceView::settling_to) {
        out["settlingTo"] = json!(target);
    }
    if let Some(error) = &outcome.error {
        out["error"] = error.clone().into();
    }
    out
}

/// Each outcome's status: a valid rollout's from its manifest; a rollout whose manifest
/// is invalid now (the outcomes after `rollouts`, see `reconcile::pass_with_invalid`)
/// from the manifest it was last applied with, marked `"frozen": true` — during an
/// incident it is the one people look for. A frozen one whose service says nothing
/// usable is left out.
pub fn statuses(rollouts: &[CanaryRollout], outcomes: &[RolloutOutcome]) -> Vec<Value> {
    outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match rollouts.get(i) {
            Some(r) => Some(status_json(r, o)),
            None => {
                let service = o.service.as_ref()?;
                let applied = RolloutState::read(&service.annotations).applied?;
                let applied: CanaryRollout = serde_json::from_str(&applied).ok()?;
                let mut status = status_json(&applied, o);
                status["frozen"] = true.into();
                if let Some(plan) = &o.plan {
                    status["reason"] = plan.reason.clone().into();
                }
                Some(status)
            }
        })
        .collect()
}

/// Status as a table.
pub fn status_table(statuses: &[Value]) -> String {
    let mut rows =
        vec![["ROLLOUT".to_owned(), "PHASE".to_owned(), "STAGE".to_owned(), "CANARY".to_owned(), "REASON".to_owned()]];
    for s in statuses {
        let text = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        rows.push([
            text("name"),
            text("phase"),
            format!("{}/{}", s["stage"], s["stages"]),
            format!("{}%", s["weight"]),
            text("reason"),
        ]);
    }
    table(&rows)
}

/// The commands canary's messages tell people to run by a rollout's name.
const NAMED_COMMANDS: [&str; 5] = ["retry", "resume", "pause", "promote", "abort"];

/// `text` with each copy-pasteable command (`` `canary retry api` ``) completed with
/// `-f MANIFESTS`, so it works as printed when the manifests are not in the default
/// `manifests/`. The reasons themselves are stored on the service and shared by every
/// reader, so the path is added where they are shown, not where they are written.
pub fn with_manifests(text: &str, manifests: &std::path::Path) -> String {
    let path = manifests.to_string_lossy();
    if path.trim_end_matches('/') == "manifests" {
        return text.to_owned();
    }
    let path = if path.contains(char::is_whitespace) { format!("'{path}'") } else { path.into_owned() };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("`canary ") {
        let (before, command) = rest.split_at(at);
        out.push_str(before);
        let Some(end) = command[1..].find('`').map(|i| i + 1) else {
            rest = command;
            break;
        };
        let inner = &command[1..end];
        let words: Vec<&str> = inner.split_whitespace().collect();
        let named = matches!(words.as_slice(), ["canary", verb, _name, ..] if NAMED_COMMANDS.contains(verb));
        if named && !words.contains(&"-f") {
            out.push_str(&format!("`{inner} -f {path}`"));
        } else {
            out.push_str(&command[..=end]);
        }
        rest = &command[end + 1..];
    }
    out.push_str(rest);
    out
}

/// [`with_manifests`] on each status's `reason`, for statuses about to be shown as text.
pub fn complete_commands(statuses: &mut [Value], manifests: &std::path::Path) {
    for status in statuses {
        if let Some(reason) = status.get("reason").and_then(Value::as_str) {
            status["reason"] = with_manifests(reason, manifests).into();
        }
    }
}

#[cfg(test)]
mod manifests_tests {
    use std::path::Path;

    use super::with_manifests;

    #[test]
    fn named_commands_get_the_manifests_path_and_nothing_else_changes() {
        let reason = "image a:2 was rejected; change the image or run `canary retry api`";
        assert_eq!(with_manifests(reason, Path::new("manifests/")), reason);
        assert_eq!(with_manifests(reason, Path::new("manifests")), reason);
        assert_eq!(
            with_manifests(reason, Path::new("deploy/rollouts")),
            "image a:2 was rejected; change the image or run `canary retry api -f deploy/rollouts`"
        );
        let pause = "api: pause requested. The next pass (`canary reconcile --once`, or `canary watch`) acts on it. `canary resume api` carries on.";
        assert_eq!(
            with_manifests(pause, Path::new("ops")),
            "api: pause requested. The next pass (`canary reconcile --once`, or `canary watch`) acts on it. `canary resume api -f ops` carries on."
        );
        assert_eq!(with_manifests("run `canary retry api -f x`", Path::new("ops")), "run `canary retry api -f x`");
        assert_eq!(with_manifests("run `canary retry api", Path::new("ops")), "run `canary retry api", "unclosed");
        assert_eq!(with_manifests("`canary retry api`", Path::new("my ops")), "`canary retry api -f 'my ops'`");
        assert_eq!(with_manifests("paused with `canary pause`", Path::new("ops")), "paused with `canary pause`");
    }
}
