//! Layer 3 of validation: what the schema cannot say. Runs on a document that
//! already matches the schema, so it works on typed values; each finding points at
//! the field to change.

use super::finding::Finding;
use super::image;
use super::quantity::{Duration, Threshold};
use super::types::{CanaryRollout, Method, Metric, RollbackTrigger};

/// Cloud Monitoring publishes one point a minute; judging more often sees nothing new.
const MIN_INTERVAL_SECS: u64 = 60;

/// Every rule one rollout breaks.
pub(crate) fn check(rollout: &CanaryRollout) -> Vec<Finding> {
    let mut out = Vec::new();
    stages(rollout, &mut out);
    analysis(rollout, &mut out);
    template(rollout, &mut out);
    smoke_tests(rollout, &mut out);
    out
}

fn stages(rollout: &CanaryRollout, out: &mut Vec<Finding>) {
    let stages = &rollout.spec.stages;
    for (i, pair) in stages.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        if after.weight <= before.weight {
            out.push(
                Finding::at_value(
                    format!("/spec/stages/{}/weight", i + 1),
                    format!(
                        "stage {} sends {}% of traffic, which is not more than stage {}'s {}%",
                        i + 2,
                        after.weight,
                        i + 1,
                        before.weight
                    ),
                )
                .hint("stage weights must strictly increase"),
            );
        }
    }
    if let Some(last) = stages.last()
        && last.weight != 100
    {
        out.push(
            Finding::at_value(
                format!("/spec/stages/{}/weight", stages.len() - 1),
                format!("the last stage sends {}% of traffic, not 100%", last.weight),
            )
            .hint("end with a stage at 100% (`- {weight: 100}`), after which the canary becomes stable"),
        );
    }
    for (i, stage) in stages.iter().enumerate().take(stages.len().saturating_sub(1)) {
        if stage.hold.is_none() {
            out.push(
                Finding::at_key(
                    format!("/spec/stages/{i}"),
                    format!("stage {} ({}%) has no `hold`", i + 1, stage.weight),
                )
                .hint(format!("say how long to stay at {}% before judging it, like `hold: 1h`", stage.weight)),
            );
        }
    }
}

fn analysis(rollout: &CanaryRollout, out: &mut Vec<Finding>) {
    let analysis = &rollout.spec.analysis;
    let interval = analysis.interval.as_secs();
    let interval_ok = interval >= MIN_INTERVAL_SECS && analysis.interval.as_std().subsec_nanos() == 0;
    if !interval_ok {
        out.push(
            Finding::at_value(
                "/spec/analysis/interval",
                format!("`analysis.interval` is {}, shorter than 1m or not whole seconds", analysis.interval),
            )
            .hint("Cloud Monitoring publishes one point a minute; use `1m` or longer"),
        );
    }
    // Only holds that have to contain judged data: every stage but the last, and the
    // last one's soak if it has one.
    let last = rollout.spec.stages.len().saturating_sub(1);
    if !analysis.warmup.is_zero() {
        for (i, stage) in rollout.spec.stages.iter().enumerate() {
            let Some(hold) = &stage.hold else { continue };
            if (i < last || !hold.is_zero()) && analysis.warmup.as_std() >= hold.as_std() {
                out.push(
                    Finding::at_value(
                        format!("/spec/stages/{i}/hold"),
                        format!(
                            "stage {} holds for {hold}, not longer than `analysis.warmup` ({})",
                            i + 1,
                            analysis.warmup
                        ),
                    )
                    .hint("warm-up is left out of judgement, so a hold must be longer than it"),
                );
            }
        }
    }
    for (i, trigger) in analysis.rollback.iter().enumerate() {
        rollback_trigger(i, trigger, interval_ok.then_some(&analysis.interval), out);
    }
    let promotion = &analysis.promotion;
    if let Some(p) = &promotion.max_error_rate_increase
        && p.points() > 100.0
    {
        out.push(Finding::at_value(
            "/spec/analysis/promotion/maxErrorRateIncrease",
            format!("`maxErrorRateIncrease` is {p}, more than 100%"),
        ));
    }
}

fn rollback_trigger(i: usize, trigger: &RollbackTrigger, interval: Option<&Duration>, out: &mut Vec<Finding>) {
    let at = format!("/spec/analysis/rollback/{i}");
    let (expected_bound, wants_percent, example) = match trigger.metric {
        Metric::ErrorRate => ("above", true, "{metric: errorRate, above: 5%}"),
        Metric::Availability => ("below", true, "{metric: availability, below: 99%, for: 15m}"),
        Metric::P95Latency => ("above", false, "{metric: p95Latency, above: 2s, for: 5m}"),
    };
    let metric = trigger.metric.name();
    let (bound_name, bound) = match (&trigger.above, &trigger.below) {
        (Some(_), Some(_)) => {
            out.push(
                Finding::at_key(format!("{at}/below"), format!("`{metric}` trigger has both `above` and `below`"))
                    .hint(format!("a trigger has one bound; write two triggers, like `{example}`")),
            );
            return;
        }
        (None, None) => {
            out.push(
                Finding::at_key(at.clone(), format!("`{metric}` trigger has no bound"))
                    .hint(format!("add `{expected_bound}`, like `{example}`")),
            );
            return;
        }
        (Some(b), None) => ("above", b),
        (None, Some(b)) => ("below", b),
    };
    let bound_at = format!("{at}/{bound_name}");
    if bound_name != expected_bound {
        out.push(
            Finding::at_key(bound_at.clone(), format!("`{metric}` takes `{expected_bound}`, not `{bound_name}`"))
                .hint(format!("write it like `{example}`")),
        );
    }
    match (bound, wants_percent) {
        (Threshold::Percent(p), true) if p.points() > 100.0 => {
            out.push(Finding::at_value(bound_at, format!("`{metric}` bound {p} is more than 100%")));
        }
        (Threshold::Latency(_), true) => out.push(
            Finding::at_value(
                bound_at,
                format!("`{metric}` is a rate: its bound is a percentage, not the duration `{bound}`"),
            )
            .hint(format!("write it like `{example}`")),
        ),
        (Threshold::Percent(_), false) => out.push(
            Finding::at_value(
                bound_at,
                format!("`{metric}` is a latency: its bound is a duration, not the percentage `{bound}`"),
            )
            .hint(format!("write it like `{example}`")),
        ),
        (Threshold::Latency(d), false) if d.is_zero() => {
            out.push(Finding::at_value(bound_at, format!("`{metric}` bound is 0, which every request exceeds")));
        }
        _ => {}
    }
    if let Some(interval) = interval {
        let window = &trigger.window;
        if !window.is_zero()
            && (window.as_std().subsec_nanos() != 0 || !window.as_secs().is_multiple_of(interval.as_secs()))
        {
            out.push(
                Finding::at_value(
                    format!("{at}/for"),
                    format!("`for: {window}` is not a multiple of `analysis.interval` ({interval})"),
                )
                .hint("windows are made of whole judgement intervals; use 0 or a multiple of the interval"),
            );
        }
    }
}

fn template(rollout: &CanaryRollout, out: &mut Vec<Finding>) {
    if let Err(e) = image::check(&rollout.spec.template.image) {
        out.push(Finding::at_value("/spec/template/image", e.message).hint(e.hint));
    }
}

fn smoke_tests(rollout: &CanaryRollout, out: &mut Vec<Finding>) {
    for (i, test) in rollout.spec.smoke_tests.iter().enumerate() {
        if test.json.is_some() && matches!(test.method, Method::Get | Method::Head) {
            out.push(
                Finding::at_key(
                    format!("/spec/smokeTests/{i}/json"),
                    format!("smoke test {} sends a JSON body with {}", i + 1, test.method.as_str()),
                )
                .hint("a body needs a method that takes one: add `method: POST`"),
            );
        }
        if test.timeout.is_zero() {
            out.push(Finding::at_value(
                format!("/spec/smokeTests/{i}/timeout"),
                "a smoke test's `timeout` must be more than 0",
            ));
        }
    }
}
