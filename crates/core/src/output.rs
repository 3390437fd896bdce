//! Results on stdout: pass results (`plan`, `reconcile`) and rollout status, as a
//! table for people or JSON / YAML for programs (the shapes: docs/design.md and README).

use serde_json::{Value, json};
use std::collections::BTreeMap;

use crate::decide::Action;
use crate::reconcile::RolloutOutcome;
use crate::state::Phase;
use crate::status::Status;

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
                    if let Some(error) = o.error_text() {
                        out["error"] = error.into();
                    }
                    out
                }
                None => json!({"name": o.name, "phaseBefore": null, "phaseAfter": null, "action": "none",
                    "trafficBefore": {}, "trafficAfter": {}, "reason": o.error_text().unwrap_or_default(), "error": o.error_text()}),
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
                format!("error: {}", o.error_text().unwrap_or_default()),
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

/// Status as a table.
pub fn status_table(statuses: &[Status]) -> String {
    let mut rows =
        vec![["ROLLOUT".to_owned(), "PHASE".to_owned(), "STAGE".to_owned(), "CANARY".to_owned(), "REASON".to_owned()]];
    for s in statuses {
        rows.push([
            s.name.clone(),
            s.phase.map_or("-", Phase::name).to_owned(),
            format!("{}/{}", s.stage, s.stages),
            format!("{}%", s.weight),
            s.reason.clone(),
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
pub fn complete_commands(statuses: &mut [Status], manifests: &std::path::Path) {
    for status in statuses {
        status.reason = with_manifests(&status.reason, manifests);
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
