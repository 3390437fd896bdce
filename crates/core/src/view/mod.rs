//! The live view of `canary status --watch`: each rollout's stages (done, current,
//! pending) with a progress bar for the current hold, its revisions and their share of
//! traffic, and every trigger and gate with its observed value against its threshold.
//!
//! [`render`] is pure: the `status -o json` values and a "now" in, lines out. [`live`]
//! fetches, redraws and handles Ctrl-C.
//!
//! # Guarantees
//! - Nothing in a status value is trusted: a missing or mistyped field renders as `-`.
//! - Time left is shown to the minute, so piped output (a new block only when the
//!   rendering changes) prints at most about once a minute for a steady rollout.

pub mod format;
pub mod live;

use std::time::SystemTime;

use serde_json::Value;

use crate::analysis::verdict::CheckKind;
use crate::diagnostic::Colour;
use format::duration;

/// Cells in the hold's progress bar.
const BAR: usize = 24;
/// Cells in a revision's traffic bar.
const TRAFFIC_BAR: usize = 20;

/// The view of `statuses` at `now`: a header line, then a block per rollout.
pub fn render(statuses: &[Value], now: SystemTime, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| paint(colour, code, text);
    let when = humantime::format_rfc3339_seconds(now).to_string().replace('T', " ").replace('Z', " UTC");
    let count = match statuses.len() {
        1 => "1 rollout".to_owned(),
        n => format!("{n} rollouts"),
    };
    let mut lines = vec![format!("{} · {when} · {count}", paint("1", "canary status"))];
    if statuses.is_empty() {
        lines.push("no rollouts: no valid manifests".to_owned());
    }
    // No blank lines inside: piped, a blank line ends a block.
    for status in statuses {
        lines.extend(rollout(status, colour));
    }
    lines
}

fn paint(colour: Colour, code: &str, text: &str) -> String {
    match colour {
        Colour::Always => format!("\x1b[{code}m{text}\x1b[0m"),
        Colour::Never => text.to_owned(),
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn number(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn phase_colour(phase: &str) -> &'static str {
    match phase {
        "Promoted" => "1;32",
        "RolledBack" | "Failed" => "1;31",
        "Paused" | "Waiting" => "1;33",
        _ => "1;36",
    }
}

fn rollout(s: &Value, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| paint(colour, code, text);
    let phase = text(s, "phase");
    let mut lines = vec![format!(
        "{}  {}  {}",
        paint("1", text(s, "name")),
        paint(phase_colour(phase), phase),
        s.get("reason").and_then(Value::as_str).unwrap_or_default()
    )];
    lines.push(format!("  service    {}/{}/{}", text(s, "project"), text(s, "region"), text(s, "service")));
    lines.push(format!("  image      {}", text(s, "image")));
    if let Some(error) = s.get("error").and_then(Value::as_str) {
        lines.push(format!("  {}      {error}", paint("31", "error")));
    }
    lines.extend(stages(s, colour));
    lines.extend(revisions(s, colour));
    for (title, key) in [("triggers", "triggers"), ("gates", "gates")] {
        let checks = s.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if !checks.is_empty() {
            lines.push(format!("  {title}"));
            lines.extend(checks.iter().map(|c| check(c, colour)));
        }
    }
    lines
}

/// One row per stage: ✔ done, ▶ current (with the hold's progress), ✖ where it was
/// rolled back, ○ pending.
fn stages(s: &Value, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| paint(colour, code, text);
    let weights: Vec<u64> = s
        .get("stageWeights")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let holds: Vec<u64> = s
        .get("stageHoldSeconds")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if weights.is_empty() {
        return Vec::new();
    }
    let phase = text(s, "phase");
    let current = usize::try_from(number(s, "stage").unwrap_or(0)).unwrap_or(0);
    let mut lines = vec!["  stages".to_owned()];
    for (i, weight) in weights.iter().enumerate() {
        let n = i + 1;
        let hold = holds.get(i).copied().unwrap_or(0);
        let hold_text = if hold == 0 { "no hold".to_owned() } else { format!("hold {}", duration(hold)) };
        let spec = format!("{:>4}  {hold_text:<12}", format!("{weight}%"));
        let (mark, note) = match phase {
            "Promoted" => (paint("32", "✔"), paint("2", "done")),
            "RolledBack" | "Failed" if n == current => (paint("31", "✖"), paint("31", &phase_word(phase))),
            _ if n < current => (paint("32", "✔"), paint("2", "done")),
            _ if n == current => (paint("36", "▶"), progress(s, phase, hold, colour)),
            _ => (paint("2", "○"), String::new()),
        };
        lines.push(format!("    {mark} {spec} {note}").trim_end().to_owned());
    }
    lines
}

fn phase_word(phase: &str) -> String {
    if phase == "Failed" { "failed here".to_owned() } else { "rolled back here".to_owned() }
}

/// `[██████░░░░] 12m of 30m · 18m left`, or what the hold is waiting for.
fn progress(s: &Value, phase: &str, hold: u64, colour: Colour) -> String {
    let remaining = number(s, "holdRemainingSeconds").unwrap_or(hold).min(hold);
    // Minutes, not seconds: a redraw changes only when the minute does.
    let elapsed_minutes = (hold - remaining) / 60;
    // In u128: a hold read from a server may be any u64.
    let cells = if hold == 0 { BAR as u128 } else { u128::from(elapsed_minutes * 60) * BAR as u128 / u128::from(hold) };
    let cells = usize::try_from(cells).unwrap_or(BAR).min(BAR);
    let bar = format!("[{}{}]", paint(colour, "36", &"█".repeat(cells)), paint(colour, "2", &"░".repeat(BAR - cells)));
    let left = match remaining {
        0 => "hold over".to_owned(),
        1..60 => "<1m left".to_owned(),
        r => format!("{} left", duration(r.div_ceil(60).saturating_mul(60))),
    };
    let state = match phase {
        "Paused" => " · paused".to_owned(),
        "Waiting" => " · waiting for data".to_owned(),
        _ => String::new(),
    };
    format!("{bar} {} of {} · {left}{state}", duration(elapsed_minutes * 60), duration(hold))
}

/// Each revision serving traffic, stable and canary named, with its share.
fn revisions(s: &Value, colour: Colour) -> Vec<String> {
    let stable = s.get("stableRevision").and_then(Value::as_str);
    let canary = s.get("canaryRevision").and_then(Value::as_str);
    let role = |rev: &str| match (Some(rev) == stable, Some(rev) == canary) {
        (true, _) => Some("stable"),
        (_, true) => Some("canary"),
        _ => None,
    };
    let mut rows: Vec<(String, String, u64)> = Vec::new();
    let traffic = s.get("traffic").and_then(Value::as_object);
    let percent = |rev: &str| traffic.and_then(|t| t.get(rev)).and_then(Value::as_u64).unwrap_or(0);
    for (role, rev) in [("stable", stable), ("canary", canary)] {
        if let Some(rev) = rev {
            rows.push((role.to_owned(), rev.to_owned(), percent(rev)));
        }
    }
    for (rev, p) in traffic.into_iter().flatten() {
        if role(rev).is_none() {
            rows.push(("other".to_owned(), rev.clone(), p.as_u64().unwrap_or(0)));
        }
    }
    if rows.is_empty() {
        return Vec::new();
    }
    let width = rows.iter().map(|(_, r, _)| r.chars().count()).max().unwrap_or(0);
    let mut lines = vec!["  revisions".to_owned()];
    for (role, rev, p) in rows {
        let cells = (usize::try_from(p.min(100)).unwrap_or(0) * TRAFFIC_BAR).div_ceil(100);
        let code = if role == "canary" { "33" } else { "34" };
        let bar = format!(
            "{}{}",
            paint(colour, code, &"█".repeat(cells)),
            paint(colour, "2", &"░".repeat(TRAFFIC_BAR - cells))
        );
        lines.push(format!("    {role:<6}  {rev:<width$}  {bar} {p:>3}%"));
    }
    if let Some(target) = s.get("settlingTo").and_then(Value::as_object) {
        let parts: Vec<String> = target
            .iter()
            .map(|(rev, p)| format!("{} {}%", role(rev).unwrap_or(rev), p.as_u64().unwrap_or(0)))
            .collect();
        lines.push(format!(
            "    {}",
            paint(colour, "2", &format!("settling → {} (Cloud Run is applying the last change)", parts.join(" · ")))
        ));
    }
    lines
}

/// `✔ pass          errorRate          0.41%  ≤ 5.00%`, and for an inconclusive one how
/// many more requests it needs.
fn check(c: &Value, colour: Colour) -> String {
    let name = text(c, "name");
    let kind = CheckKind::parse(name);
    let show = |v: f64| kind.map_or_else(|| v.to_string(), |k| k.show(v));
    let observed = c.get("observed").and_then(Value::as_f64).map_or_else(|| "no data".to_owned(), show);
    let threshold = c
        .get("threshold")
        .and_then(Value::as_f64)
        .map_or_else(|| "-".to_owned(), |t| kind.map_or_else(|| t.to_string(), |k| k.condition(t)));
    let result = text(c, "result");
    let (mark, code) = match result {
        "pass" => ("✔", "32"),
        "fail" => ("✖", "31"),
        _ => ("…", "33"),
    };
    let needed = match c.get("requestsNeeded").and_then(Value::as_u64) {
        Some(n) if result == "inconclusive" => format!("  {n} more requests needed"),
        _ => String::new(),
    };
    let head = paint(colour, code, &format!("{mark} {result:<12}"));
    format!("    {head}  {name:<18} {observed:>10}  {threshold}{needed}")
}

#[cfg(test)]
mod tests;
