//! The report as Markdown: the outcome first (what, when, why, which decision), then
//! the facts, the chart, the timeline, each stage's gate values, and the sections a
//! person fills in. Pure.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::series::StageFigures;
use super::timeline::{Outcome, Timeline};
use crate::analysis::verdict::Unit;
use crate::manifest::types::CanaryRollout;
use crate::view::format::duration;

/// What the Markdown is made from.
#[derive(Debug, Clone)]
pub(crate) struct Document<'a> {
    pub(crate) rollout: &'a CanaryRollout,
    pub(crate) timeline: &'a Timeline,
    pub(crate) figures: &'a [StageFigures],
    /// The chart's file name, beside the Markdown.
    pub(crate) chart: &'a str,
    /// Whether Cloud Monitoring had any data for the two revisions.
    pub(crate) has_data: bool,
    pub(crate) now: SystemTime,
}

/// `2026-11-26 08:17:00 UTC`.
pub(crate) fn utc(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string().replace('T', " ").replace('Z', " UTC")
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'"))
}

/// A table cell: no pipes or line breaks from recorded reasons.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn markdown(doc: &Document) -> String {
    let (r, t) = (doc.rollout, doc.timeline);
    let name = &r.metadata.name;
    let mut out = String::new();
    let _ = writeln!(out, "# Rollout report: {name} — {}\n", t.outcome.words());
    let stage_words = |stage: usize| match r.spec.stages.get(stage.wrapping_sub(1)) {
        Some(s) => format!("stage {stage} of {} ({}% of traffic to the canary)", r.spec.stages.len(), s.weight),
        None => "before the first stage (0% of traffic to the canary)".to_owned(),
    };
    let when = t.ended.map_or_else(|| "-".to_owned(), utc);
    match t.outcome {
        Outcome::RolledBack => {
            let _ = writeln!(out, "**Outcome:** rolled back at {when}, in {}.  ", stage_words(t.stage));
        }
        Outcome::Failed => {
            let _ = writeln!(out, "**Outcome:** failed at {when}, in {}.  ", stage_words(t.stage));
        }
        Outcome::Promoted => {
            let _ = writeln!(out, "**Outcome:** promoted at {when}: the canary is the stable revision.  ");
        }
        Outcome::InProgress(phase) => {
            let _ = writeln!(
                out,
                "**Outcome:** in progress — {phase} in {} as of {}.  ",
                stage_words(t.stage),
                utc(doc.now)
            );
        }
    }
    if let Some(cause) = &t.cause {
        let what = match (&cause.check, cause.kind.as_str()) {
            (Some(check), kind) if !kind.is_empty() => {
                let values = match (&cause.observed, &cause.threshold) {
                    (Some(o), Some(th)) => format!(": observed **{o}** against a threshold of **{th}**"),
                    (None, Some(th)) => format!(" with no data, threshold {th}"),
                    _ => String::new(),
                };
                format!("{kind} {}{values}", code(check))
            }
            _ => cause.reason.clone(),
        };
        let _ = writeln!(out, "**Cause:** {what}.  ");
    }
    let stable = t.stable.as_deref().unwrap_or("-");
    let decision = match t.outcome {
        Outcome::RolledBack => format!(
            "rollback — all traffic back to the stable revision {}; the image is rejected until it changes or someone runs {}",
            code(stable),
            code(&format!("canary retry {name}"))
        ),
        Outcome::Failed => "fail — the canary's traffic is untouched at 0% and the image is rejected".to_owned(),
        Outcome::Promoted => format!("promote — 100% of traffic to {}", code(t.canary.as_deref().unwrap_or("-"))),
        Outcome::InProgress(_) => "none yet — the reconciler continues on its next passes".to_owned(),
    };
    let _ = writeln!(out, "**Decision:** {decision}.  ");
    let _ = writeln!(out, "**Reason recorded:** {}\n", t.transitions.last().map_or("-", |x| x.reason.as_str()));

    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Rollout | {} |", code(name));
    let _ = writeln!(
        out,
        "| Service | {} |",
        code(&format!("projects/{}/locations/{}/services/{}", r.spec.project, r.spec.region, r.spec.service))
    );
    let _ = writeln!(out, "| Image | {} |", code(t.image.as_deref().unwrap_or(&r.spec.template.image)));
    let _ = writeln!(out, "| Stable revision | {} |", code(stable));
    let _ = writeln!(out, "| Canary revision | {} |", code(t.canary.as_deref().unwrap_or("-")));
    let started = t.started.map_or_else(|| "- (before the kept history)".to_owned(), utc);
    let _ = writeln!(out, "| Deployed | {started} |");
    if let (Some(start), Some(end)) = (t.started, t.ended) {
        let took = end.duration_since(start).unwrap_or_default().as_secs();
        let _ = writeln!(out, "| Ended | {} (after {}) |", utc(end), duration(took));
    }
    let weights: Vec<String> = r.spec.stages.iter().map(|s| format!("{}%", s.weight)).collect();
    let _ = writeln!(out, "| Stages | {} |\n", weights.join(" → "));

    let _ = writeln!(out, "## Chart\n");
    let _ = writeln!(
        out,
        "![Error rate and p95 latency per minute, stable vs canary, with stage starts and the end marked]({})\n",
        doc.chart
    );
    if !doc.has_data {
        let _ =
            writeln!(out, "Cloud Monitoring had no data for these revisions over the rollout: the chart is empty.\n");
    }

    let _ = writeln!(out, "## Timeline\n");
    if t.capped {
        let _ = writeln!(
            out,
            "canary keeps the newest {} transitions; earlier ones of this rollout are gone, so the timeline starts late.\n",
            crate::state::HISTORY_CAP
        );
    }
    let _ = writeln!(out, "| time (UTC) | phase | stage | what happened |\n|---|---|---|---|");
    for x in &t.transitions {
        let at = x.at.get(..19).unwrap_or(&x.at).replace('T', " ");
        let stage = match r.spec.stages.get(x.stage.wrapping_sub(1)) {
            Some(s) => format!("{} ({}%)", x.stage, s.weight),
            None => "-".to_owned(),
        };
        let _ = writeln!(out, "| {at} | {} | {stage} | {} |", x.phase, cell(&x.reason));
    }
    out.push('\n');

    let _ = writeln!(out, "## Gate values at each stage\n");
    let p = &r.spec.analysis.promotion;
    let limit = |v: Option<f64>, unit: Unit| v.map_or_else(String::new, |v| format!(" (max {})", unit.show(v)));
    let _ = writeln!(
        out,
        "Recomputed from Cloud Monitoring over each stage's minutes after the {} warm-up: plain ratios, not the \
         sequential judgement that made the decisions. At 100% stable's figures come from the stage before.\n",
        duration(r.spec.analysis.warmup.as_secs())
    );
    let _ = writeln!(
        out,
        "| stage | from | to | canary requests{} | canary errors | stable errors | increase{} | canary p95 | stable p95 | p95 increase{} |",
        p.min_requests.map_or_else(String::new, |m| format!(" (min {m})")),
        limit(p.max_error_rate_increase.as_ref().map(|x| x.fraction()), Unit::Points),
        limit(p.max_p95_increase.as_ref().map(|x| x.fraction()), Unit::Relative),
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let show = |v: Option<f64>, unit: Unit| v.map_or_else(|| "-".to_owned(), |v| unit.show(v));
    for f in doc.figures {
        let hm = |t: SystemTime| utc(t).get(11..16).unwrap_or_default().to_owned();
        let _ = writeln!(
            out,
            "| {} ({}%) | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.span.stage,
            f.span.weight,
            hm(f.span.start),
            f.span.end.map_or_else(|| "now".to_owned(), hm),
            f.canary.requests,
            show(f.canary.error_rate, Unit::Rate),
            show(f.stable.error_rate, Unit::Rate),
            show(f.error_rate_increase, Unit::Points),
            show(f.canary.p95, Unit::Millis),
            show(f.stable.p95, Unit::Millis),
            show(f.p95_increase, Unit::Relative),
        );
    }
    if doc.figures.is_empty() {
        let _ = writeln!(out, "| - | | | | | | | | | |");
    }
    out.push('\n');

    let _ = writeln!(
        out,
        "## Root cause\n\n_To be filled in: what in the change made the canary behave this way, and how it was confirmed._\n"
    );
    let _ = writeln!(out, "## Action items\n\n- [ ] _Action — owner — due date_\n- [ ] _Action — owner — due date_\n");
    let _ = writeln!(
        out,
        "---\n_Written by {} at {} from the service's `canary/` annotations and Cloud Monitoring._",
        code(&format!("canary report {name}")),
        utc(doc.now)
    );
    out
}
