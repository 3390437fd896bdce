//! The live view of `canary status --watch`: each rollout's stages (done, current,
//! pending) with a progress bar for the current hold, its revisions and their share of
//! traffic, and every trigger and gate with its observed value against its threshold.
//!
//! [`render`] is pure: the statuses and a "now" in, lines out. [`live`] fetches, redraws
//! and handles Ctrl-C.
//!
//! # Guarantees
//! - Numbers read from a server (holds, time left, shares) never panic the view.
//! - Time left is shown to the minute, so piped output (a new block only when the
//!   rendering changes) prints at most about once a minute for a steady rollout.

pub(crate) mod format;
pub mod live;

use std::time::SystemTime;

use crate::analysis::verdict::{Check, Outcome};
use crate::state::Phase;
use crate::status::Status;
use crate::style::Colour;
use format::duration;

/// Cells in the hold's progress bar.
const BAR: usize = 24;
/// Cells in a revision's traffic bar.
const TRAFFIC_BAR: usize = 20;

/// The view of `statuses` at `now`: a header line, then a block per rollout.
pub fn render(statuses: &[Status], now: SystemTime, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| colour.paint(code, text);
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

fn phase_colour(phase: Option<Phase>) -> &'static str {
    match phase {
        Some(Phase::Promoted) => "1;32",
        Some(Phase::RolledBack | Phase::Failed) => "1;31",
        Some(Phase::Paused | Phase::Waiting) => "1;33",
        _ => "1;36",
    }
}

fn rollout(s: &Status, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| colour.paint(code, text);
    let mut lines = vec![format!(
        "{}  {}  {}",
        paint("1", &s.name),
        paint(phase_colour(s.phase), s.phase.map_or("-", Phase::name)),
        s.reason
    )];
    lines.push(format!("  service    {}/{}/{}", s.project, s.region, s.service));
    lines.push(format!("  image      {}", s.image));
    if let Some(error) = &s.error {
        lines.push(format!("  {}      {error}", paint("31", "error")));
    }
    lines.extend(stages(s, colour));
    lines.extend(revisions(s, colour));
    for (title, checks) in [("triggers", &s.triggers), ("gates", &s.gates)] {
        if !checks.is_empty() {
            lines.push(format!("  {title}"));
            lines.extend(checks.iter().map(|c| check(c, colour)));
        }
    }
    lines
}

/// One row per stage: ✔ done, ▶ current (with the hold's progress), ✖ where it was
/// rolled back, ○ pending.
fn stages(s: &Status, colour: Colour) -> Vec<String> {
    let paint = |code: &str, text: &str| colour.paint(code, text);
    let (weights, holds) = (&s.stage_weights, &s.stage_hold_seconds);
    if weights.is_empty() {
        return Vec::new();
    }
    let phase = s.phase;
    let current = s.stage;
    let mut lines = vec!["  stages".to_owned()];
    for (i, weight) in weights.iter().enumerate() {
        let n = i + 1;
        let hold = holds.get(i).copied().unwrap_or(0);
        let hold_text = if hold == 0 { "no hold".to_owned() } else { format!("hold {}", duration(hold)) };
        let spec = format!("{:>4}  {hold_text:<12}", format!("{weight}%"));
        let (mark, note) = match phase {
            Some(Phase::Promoted) => (paint("32", "✔"), paint("2", "done")),
            Some(Phase::Failed) if n == current => (paint("31", "✖"), paint("31", "failed here")),
            Some(Phase::RolledBack) if n == current => (paint("31", "✖"), paint("31", "rolled back here")),
            _ if n < current => (paint("32", "✔"), paint("2", "done")),
            _ if n == current => (paint("36", "▶"), progress(s, hold, colour)),
            _ => (paint("2", "○"), String::new()),
        };
        lines.push(format!("    {mark} {spec} {note}").trim_end().to_owned());
    }
    lines
}

/// `[██████░░░░] 12m of 30m · 18m left`, or what the hold is waiting for.
fn progress(s: &Status, hold: u64, colour: Colour) -> String {
    let remaining = s.hold_remaining_seconds.unwrap_or(hold).min(hold);
    // Minutes, not seconds: a redraw changes only when the minute does.
    let elapsed_minutes = (hold - remaining) / 60;
    // In u128: a hold read from a server may be any u64.
    let cells = if hold == 0 { BAR as u128 } else { u128::from(elapsed_minutes * 60) * BAR as u128 / u128::from(hold) };
    let cells = usize::try_from(cells).unwrap_or(BAR).min(BAR);
    let bar = format!("[{}{}]", colour.paint("36", &"█".repeat(cells)), colour.paint("2", &"░".repeat(BAR - cells)));
    let left = match remaining {
        0 => "hold over".to_owned(),
        1..60 => "<1m left".to_owned(),
        r => format!("{} left", duration(r.div_ceil(60).saturating_mul(60))),
    };
    let state = match s.phase {
        Some(Phase::Paused) => " · paused",
        Some(Phase::Waiting) => " · waiting for data",
        _ => "",
    };
    format!("{bar} {} of {} · {left}{state}", duration(elapsed_minutes * 60), duration(hold))
}

/// Each revision serving traffic, stable and canary named, with its share.
fn revisions(s: &Status, colour: Colour) -> Vec<String> {
    let stable = s.stable_revision.as_deref();
    let canary = s.canary_revision.as_deref();
    let role = |rev: &str| match (Some(rev) == stable, Some(rev) == canary) {
        (true, _) => Some("stable"),
        (_, true) => Some("canary"),
        _ => None,
    };
    let mut rows: Vec<(String, String, u32)> = Vec::new();
    let percent = |rev: &str| s.traffic.get(rev).copied().unwrap_or(0);
    for (role, rev) in [("stable", stable), ("canary", canary)] {
        if let Some(rev) = rev {
            rows.push((role.to_owned(), rev.to_owned(), percent(rev)));
        }
    }
    for (rev, p) in &s.traffic {
        if role(rev).is_none() {
            rows.push(("other".to_owned(), rev.clone(), *p));
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
            colour.paint(code, &"█".repeat(cells)),
            colour.paint("2", &"░".repeat(TRAFFIC_BAR - cells))
        );
        lines.push(format!("    {role:<6}  {rev:<width$}  {bar} {p:>3}%"));
    }
    if let Some(target) = &s.settling_to {
        let parts: Vec<String> = target.iter().map(|(rev, p)| format!("{} {p}%", role(rev).unwrap_or(rev))).collect();
        lines.push(format!(
            "    {}",
            colour.paint("2", &format!("settling → {} (Cloud Run is applying the last change)", parts.join(" · ")))
        ));
    }
    lines
}

/// `✔ pass          errorRate          0.41%  ≤ 5.00%`, and for an inconclusive one how
/// many more requests it needs.
fn check(c: &Check, colour: Colour) -> String {
    let name = c.kind.name();
    let observed = c.observed.map_or_else(|| "no data".to_owned(), |v| c.kind.show(v));
    let threshold = c.kind.condition(c.threshold);
    let (mark, code, result) = match c.result {
        Outcome::Pass => ("✔", "32", "pass"),
        Outcome::Fail => ("✖", "31", "fail"),
        Outcome::Inconclusive => ("…", "33", "inconclusive"),
    };
    let needed = match c.requests_needed {
        Some(n) if c.result == Outcome::Inconclusive => format!("  {n} more requests needed"),
        _ => String::new(),
    };
    let head = colour.paint(code, &format!("{mark} {result:<12}"));
    format!("    {head}  {name:<18} {observed:>10}  {threshold}{needed}")
}

#[cfg(test)]
mod tests;
