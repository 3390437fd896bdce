//! A stage read as a pass reads it (`ReadPlan`: hours, then 10-minute periods, then
//! minutes): the plan's bounds and queries, and the judgement over long periods — old
//! evidence still counts, a period reaching back before the stage never does, and `for`
//! windows see minutes only.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::judge::{self, Window};
use super::observations::{self, Anchor, Minute, Observations, ReadPlan};
use super::verdict::{Check, Outcome};
use crate::manifest::types::CanaryRollout;

const HOUR: u64 = 3600;
/// 2026-11-19 00:00 UTC.
const DAY: u64 = 1_795_046_400;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn a_plan_reads_minutes_then_ten_minutes_then_hours_all_aligned() {
    let now = DAY + 10 * HOUR + 37 * 60 + 20;
    let plan = ReadPlan::at(at(now), Duration::from_secs(20 * 60));
    assert_eq!(plan.minutes_from, DAY + 10 * HOUR + 10 * 60);
    assert_eq!(plan.hours_until, DAY + 9 * HOUR);
    assert_eq!(plan.anchor(DAY + 10 * HOUR + 15 * 60 + 30), Anchor::Minute(DAY + 10 * HOUR + 16 * 60));
    assert_eq!(plan.anchor(DAY + 9 * HOUR + 43 * 60 + 10), Anchor::TenMinutes(DAY + 9 * HOUR + 50 * 60));
    // Older than the 10-minute periods: the 10-minute boundary still (an anchor's sum
    // reads from it), or the next hour in a coarse plan (hours read one by one).
    assert_eq!(plan.anchor(DAY + 7 * HOUR + 5 * 60), Anchor::TenMinutes(DAY + 7 * HOUR + 10 * 60));
    let coarse = ReadPlan { coarse: true, ..plan };
    assert_eq!(coarse.anchor(DAY + 7 * HOUR + 5 * 60), Anchor::Hour(DAY + 8 * HOUR));
    assert_eq!(coarse.anchor(DAY + 9 * HOUR + 43 * 60 + 10), Anchor::TenMinutes(DAY + 9 * HOUR + 50 * 60));
    assert_eq!(ReadPlan::every_minute().anchor(DAY + 7), Anchor::Minute(DAY + 60));
    let shares: f64 = [Anchor::Minute(0), Anchor::TenMinutes(0), Anchor::Hour(0)].iter().map(|a| a.share()).sum();
    assert!((shares - 1.0).abs() < 1e-12, "one sample per kind of anchor: {shares}");
    assert_eq!(plan.share(Anchor::Hour(0)), Anchor::Hour(0).share());
    // Read every minute, a sample never moves: it has the whole budget.
    assert_eq!(ReadPlan::every_minute().share(ReadPlan::every_minute().anchor(DAY + 7)), 1.0);

    let anchors = std::collections::BTreeSet::from([DAY + 6 * HOUR, DAY + 7 * HOUR]);
    let mut queries: Vec<Vec<(String, String)>> =
        plan.hour_queries(&anchors, true).into_iter().map(|(_, q)| q).collect();
    queries.extend(plan.recent_queries(at(DAY + 6 * HOUR + 30 * 60), at(now), true));
    let param = |q: &Vec<(String, String)>, key: &str| q.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let read: Vec<(String, String, String)> = queries
        .iter()
        .map(|q| {
            (param(q, "interval.startTime"), param(q, "interval.endTime"), param(q, "aggregation.alignmentPeriod"))
        })
        .collect();
    let t = |h: u64, m: u64| crate::time::rfc3339(at(DAY + h * HOUR + m * 60));
    let (six, seven) = ((t(6, 0), t(9, 0), "10800s".to_owned()), (t(7, 0), t(9, 0), "7200s".to_owned()));
    let (tens, minutes) = ((t(9, 0), t(10, 10), "600s".to_owned()), (t(10, 10), t(10, 37), "60s".to_owned()));
    assert_eq!(read, vec![six.clone(), six, seven.clone(), seven, tens.clone(), tens, minutes.clone(), minutes]);
    assert!(param(&queries[1], "filter").contains("request_latencies"));
    // Without latency, one query per sum and resolution; a young stage reads minutes only.
    assert_eq!(plan.recent_queries(at(DAY + 6 * HOUR), at(now), false).len(), 2);
    assert_eq!(plan.recent_queries(at(DAY + 10 * HOUR + 20 * 60), at(now), true).len(), 2);
    // Past the most sums a pass reads, the hours one by one from the first anchor.
    let many: std::collections::BTreeSet<u64> = (1..=5).map(|h| DAY + h * HOUR).collect();
    let hours = plan.hour_queries(&many, false);
    assert_eq!(hours.len(), 1);
    assert_eq!((hours[0].0, param(&hours[0].1, "aggregation.alignmentPeriod")), (None, "3600s".to_owned()));
}

proptest::proptest! {
    /// However many rollouts (anchors), however old their stages and whatever they need
    /// of the newest minutes, one project's read is at most `MAX_QUERIES_PER_PROJECT`
    /// queries — and exactly that many at the worst case.
    #[test]
    fn a_projects_read_is_a_bounded_number_of_queries(
        hours_in in 0u64..48,
        minutes in 1u64..120,
        anchors in proptest::collection::btree_set(0u64..48, 0..12),
        latency: bool,
    ) {
        let now = DAY + 2 * 24 * HOUR + 37 * 60 + 20;
        let plan = ReadPlan::at(at(now), Duration::from_secs(minutes * 60));
        let anchors: std::collections::BTreeSet<u64> = anchors.iter().map(|h| DAY + h * HOUR).collect();
        let start = at(now - hours_in * HOUR);
        let count = plan.hour_queries(&anchors, latency).len()
            + plan.recent_queries(start, at(now), latency).len()
            + plan.variation_query().len();
        proptest::prop_assert!(count <= observations::MAX_QUERIES_PER_PROJECT, "{count} queries");
    }
}

#[test]
fn the_worst_read_is_the_bound() {
    let now = DAY + 2 * 24 * HOUR + 37 * 60 + 20;
    let plan = ReadPlan::at(at(now), Duration::from_secs(20 * 60));
    let anchors: std::collections::BTreeSet<u64> = (1..=4).map(|h| DAY + h * HOUR).collect();
    let count = plan.hour_queries(&anchors, true).len()
        + plan.recent_queries(at(DAY), at(now), true).len()
        + plan.variation_query().len();
    assert_eq!(count, observations::MAX_QUERIES_PER_PROJECT);
}

#[test]
fn an_aligned_point_is_one_period_as_long_as_its_interval() {
    let series = json!({
        "resource": {"labels": {"location": "r", "revision_name": "api-1"}},
        "metric": {"labels": {"response_code_class": "5xx"}},
        "points": [
            {"interval": {"startTime": "2026-11-19T01:00:00Z", "endTime": "2026-11-19T02:00:00Z"}, "value": {"int64Value": "7"}},
            {"interval": {"endTime": "2026-11-19T02:01:00Z"}, "value": {"int64Value": "1"}},
        ],
    });
    let read = observations::parse(&[serde_json::from_value(series).unwrap()], &[]);
    let periods = &read["r/api-1"];
    assert_eq!(periods[&(DAY + 2 * HOUR)].span, 3600);
    assert_eq!(periods[&(DAY + 2 * HOUR)].server_errors, 7);
    assert_eq!(periods[&(DAY + 2 * HOUR + 60)].span, 60);
}

fn rollout(analysis: &str) -> CanaryRollout {
    let text = format!(
        "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: api}}\nspec:\n  project: p\n  \
         region: r\n  service: api\n  template: {{image: \"gcr.io/p/api:v2\"}}\n  stages:\n    - {{weight: 5, hold: 1h}}\n    \
         - {{weight: 50, hold: 24h}}\n    - {{weight: 100}}\n  analysis:\n    warmup: 2m\n{analysis}"
    );
    serde_saphyr::from_str(&text).unwrap()
}

/// One revision's minutes starting in [`from`, `to`), summed as a pass at `to` reads them.
fn read(plan: ReadPlan, from: u64, to: u64, minute: impl Fn(u64) -> (u64, u64)) -> BTreeMap<u64, Minute> {
    let mut out: BTreeMap<u64, Minute> = BTreeMap::new();
    for m in (from..to).step_by(60) {
        let span = if m + 60 <= plan.hours_until {
            HOUR
        } else if m + 60 <= plan.minutes_from {
            600
        } else {
            60
        };
        let end = m / span * span + span;
        let (total, errors) = minute(m);
        let period = out.entry(end).or_insert_with(|| Minute { span, ..Minute::default() });
        period.total += total;
        period.server_errors += errors;
    }
    out
}

struct Stage {
    started: u64,
    now: u64,
    plan: ReadPlan,
}

impl Stage {
    /// 20 hours into stage 2 (which started at 00:07), read as a pass then reads it.
    fn deep() -> Stage {
        let (started, now) = (DAY + 7 * 60, DAY + 20 * HOUR + 7 * 60 + 30);
        // Coarse, as a project with many rollouts reads it: its hours one by one.
        Stage { started, now, plan: ReadPlan { coarse: true, ..ReadPlan::at(at(now), Duration::from_secs(20 * 60)) } }
    }

    fn judge(
        &self,
        r: &CanaryRollout,
        canary: impl Fn(u64) -> (u64, u64),
        stable: impl Fn(u64) -> (u64, u64),
    ) -> (Vec<Check>, Vec<Check>) {
        let window = Window {
            canary: "r/c".into(),
            stable: "r/s".into(),
            stage_started: at(self.started),
            previous_stage_started: Some(at(self.started - HOUR)),
            weight: 50,
            plan: self.plan,
        };
        let from = DAY - 2 * HOUR;
        // As a pass reads them: hour sums from the anchors the judgement needs, then
        // 10-minute periods and minutes.
        let anchors = judge::hour_anchors(r, &window);
        let until = self.plan.hours_until;
        let as_read = |minute: &dyn Fn(u64) -> (u64, u64)| {
            let hours: Observations = BTreeMap::from([("x".to_owned(), read(self.plan, from, until, minute))]);
            let recent = read(self.plan, until, self.now - 180, minute);
            let sums = observations::sum_hours(&hours, &anchors, until);
            observations::periods(Some(&recent), sums.get("x"), &anchors, until)
        };
        judge::judge(r, &window, &as_read(&canary), &as_read(&stable), &BTreeMap::new())
    }
}

fn result(checks: &[Check], name: &str) -> Outcome {
    checks.iter().find(|c| c.kind.name() == name).unwrap_or_else(|| panic!("{name} in {checks:?}")).result
}

#[test]
fn a_period_reaching_back_before_the_stage_is_left_out_and_old_hours_still_count() {
    let r = rollout("    promotion: {maxErrorRateIncrease: 0.5%}\n    rollback: [{metric: errorRate, above: 5%}]\n");
    let stage = Stage::deep();
    assert!(stage.plan.hours_until > stage.started + 17 * HOUR, "most of the stage is read in hours");
    // Every request failed in the minutes before the stage (in the hour the stage
    // started in); the canary is healthy since.
    let started = stage.started;
    let canary = |m: u64| if m < started { (60, 60) } else { (600, 3) };
    let (triggers, gates) = stage.judge(&r, canary, |_| (600, 3));
    assert_eq!(result(&triggers, "errorRate"), Outcome::Pass, "{triggers:?}");
    assert_eq!(result(&gates, "errorRateIncrease"), Outcome::Pass, "{gates:?}");

    // 3% against 0.5%, all stage long: the gate fails on the hours as it did on minutes.
    let (triggers, gates) = stage.judge(&r, |_| (600, 18), |_| (600, 3));
    assert_eq!(result(&gates, "errorRateIncrease"), Outcome::Fail, "{gates:?}");
    assert_eq!(result(&triggers, "errorRate"), Outcome::Pass, "3% is within a 5% trigger: {triggers:?}");
    // A quiet canary at 10% against a 5% trigger: an hour of it is not conclusive, the
    // stage's 20 hours (read in hours) are.
    let last_hour = stage.now - HOUR;
    let (triggers, _) = stage.judge(&r, |m| if m >= last_hour { (10, 1) } else { (10, 0) }, |_| (600, 3));
    assert_eq!(result(&triggers, "errorRate"), Outcome::Inconclusive, "{triggers:?}");
    let (triggers, _) = stage.judge(&r, |_| (10, 1), |_| (600, 3));
    assert_eq!(result(&triggers, "errorRate"), Outcome::Fail, "{triggers:?}");
}

#[test]
fn a_for_window_reads_the_newest_minutes_only() {
    let r = rollout("    rollback: [{metric: errorRate, above: 5%, for: 5m}]\n");
    let stage = Stage::deep();
    // Bad for the newest 8 minutes only, after 20 healthy hours.
    let recent = stage.now - 11 * 60;
    let (triggers, _) = stage.judge(&r, |m| if m >= recent { (600, 300) } else { (600, 3) }, |_| (600, 3));
    assert_eq!(result(&triggers, "errorRate"), Outcome::Fail, "{triggers:?}");
    // Bad for an hour long ago, healthy since: the window is over.
    let (old_from, old_to) = (stage.started + 5 * HOUR, stage.started + 6 * HOUR);
    let (triggers, _) =
        stage.judge(&r, |m| if (old_from..old_to).contains(&m) { (600, 300) } else { (600, 3) }, |_| (600, 3));
    assert_eq!(result(&triggers, "errorRate"), Outcome::Pass, "{triggers:?}");
}

#[test]
fn stable_variation_is_estimated_from_older_ten_minute_periods_too() {
    let plan = ReadPlan::at(at(DAY + 20 * HOUR), Duration::from_secs(10 * 60));
    let q = plan.variation_query();
    assert_eq!(q.len(), 1, "one query, counts only");
    let param = |key: &str| q[0].iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert!(param("filter").contains("request_count"));
    assert_eq!(param("aggregation.alignmentPeriod"), "600s");
    assert_eq!(param("interval.endTime"), crate::time::rfc3339(at(plan.hours_until)));
    assert_eq!(param("interval.startTime"), crate::time::rfc3339(at(plan.hours_until - 4 * HOUR)));
    assert!(ReadPlan::every_minute().variation_query().is_empty());

    let r = rollout("    rollback: [{metric: errorRate, above: 5%}]\n");
    let window = Window {
        canary: "c".into(),
        stable: "s".into(),
        stage_started: at(DAY + HOUR),
        previous_stage_started: None,
        weight: 50,
        plan,
    };
    // The newest periods read are steady; the older ones swing between 0.2% and 4%.
    let steady: BTreeMap<u64, Minute> = (plan.hours_until + 600..=plan.hours_until + 3600)
        .step_by(600)
        .map(|e| (e, Minute { span: 600, ..Minute::new(6000, 30, None) }))
        .collect();
    let swinging: BTreeMap<u64, Minute> = (plan.hours_until - 2 * HOUR + 600..=plan.hours_until)
        .step_by(600)
        .enumerate()
        .map(|(i, e)| (e, Minute { span: 600, ..Minute::new(6000, if i % 2 == 0 { 12 } else { 240 }, None) }))
        .collect();
    let factor = |variation: &BTreeMap<u64, Minute>| {
        judge::evidence(&r, &window, (&steady, &steady), variation, judge::Method::Robust).dispersion_factor()
    };
    assert_eq!(factor(&BTreeMap::new()), 1.0, "too few pairs of their own");
    assert!(factor(&swinging) > 10.0, "{}", factor(&swinging));
}

#[test]
fn a_project_with_more_anchors_than_it_sums_one_by_one_is_read_coarse() {
    let plan = ReadPlan::at(at(DAY + 20 * HOUR), Duration::from_secs(20 * 60));
    // One rollout's anchors per 10-minute slot, as `judge::hour_anchors` puts them.
    let slots = |n: u64| {
        move |p: ReadPlan| -> std::collections::BTreeSet<u64> {
            let grid = p.anchor_grid();
            (0..n).map(|i| (DAY + HOUR + i * 600 + 120).div_ceil(grid) * grid).collect()
        }
    };
    let (fine, anchors) = plan.for_anchors(slots(4));
    assert!(!fine.coarse);
    assert_eq!(anchors.len(), 4, "{anchors:?}");
    let (coarse, anchors) = plan.for_anchors(slots(5));
    assert!(coarse.coarse, "five anchors are more than a pass sums one by one");
    assert!(anchors.iter().all(|a| a % HOUR == 0), "on hours: {anchors:?}");
}

proptest::proptest! {
    /// However old the stage when a pass reads it, and whichever way its project's plan
    /// reads the older minutes (one sum per 10-minute anchor, or, `coarse`, the hours one
    /// by one summed from hour anchors), the gates' sample is exactly the minutes from
    /// where `ReadPlan::anchor` puts its start: stable's totals over it are the sum of
    /// those minutes.
    #[test]
    fn a_gate_sample_is_the_minutes_from_its_anchor_at_any_age(
        start_minute in 0u64..600,
        age_minutes in 1u64..(30 * 60),
        coarse: bool,
        counts in proptest::collection::vec((1u64..50, 0u64..3), 64),
    ) {
        let r = rollout("    promotion: {maxErrorRateIncrease: 0.5%}\n    rollback: [{metric: errorRate, above: 5%}]\n");
        let started = DAY + start_minute * 60;
        let now = started + age_minutes * 60 + 30;
        let plan = ReadPlan { coarse, ..ReadPlan::at(at(now), judge::minutes_needed(&r, false)) };
        let window = Window {
            canary: "r/c".into(),
            stable: "r/s".into(),
            stage_started: at(started),
            previous_stage_started: None,
            weight: 50,
            plan,
        };
        let minute = |m: u64| counts[(m / 60 % 64) as usize];
        let published = now / 60 * 60 - 180;
        let anchors = judge::hour_anchors(&r, &window);
        let until = plan.hours_until;
        let from = DAY - 2 * HOUR;
        let recent = read(plan, until.max(from), published, minute);
        let sums = if coarse {
            let hours: Observations = BTreeMap::from([("x".to_owned(), read(plan, from, until, minute))]);
            observations::sum_hours(&hours, &anchors, until).remove("x").unwrap_or_default()
        } else {
            anchors
                .iter()
                .map(|&a| {
                    let mut sum = Minute { span: until - a, ..Minute::default() };
                    for m in (a..until).step_by(60) {
                        let (total, errors) = minute(m);
                        sum.total += total;
                        sum.server_errors += errors;
                    }
                    (a, sum)
                })
                .collect()
        };
        let gate_from = plan.anchor(started + 120).at();
        let expected: u64 = (gate_from..published).step_by(60).map(|m| minute(m).0).sum();
        let periods = observations::periods(Some(&recent), Some(&sums), &anchors, until);
        let evidence = judge::evidence(&r, &window, (&periods, &periods), &BTreeMap::new(), judge::Method::Robust);
        proptest::prop_assert_eq!(evidence.stable_totals().total, expected, "coarse {} from {}", coarse, gate_from);
    }
}
