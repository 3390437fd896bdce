//! The safety rules, each a named predicate with a message that says what broke. Write
//! rules are checked on every write of canary's that lands, with the service as it was
//! just before; world rules after every step; settling rules once people and faults stop.
//! They read the service's JSON and annotations themselves (not canary's own readers of
//! traffic), so a bug in those readers is not mirrored here.

use std::collections::BTreeMap;
use std::time::SystemTime;

use canary_core::manifest::CanaryRollout;
use canary_core::state::{Phase, RolloutState};
use serde_json::Value;

use crate::platform::{Shared, short};

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub message: String,
}

fn violation(invariant: &'static str, message: String) -> Violation {
    Violation { invariant, message }
}

/// One traffic entry of a service's spec: (revision, percent, tag); `None` is LATEST.
type Entry = (Option<String>, u64, Option<String>);

fn traffic(service: &Value) -> Vec<Entry> {
    service["traffic"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|t| {
                    let latest = t["type"].as_str().is_some_and(|k| k.ends_with("LATEST")) || t["type"] == 1;
                    let revision = if latest { None } else { t["revision"].as_str().map(|r| short(r).to_owned()) };
                    let percent = t["percent"].as_u64().or_else(|| t["percent"].as_str()?.parse().ok()).unwrap_or(0);
                    (revision, percent, t["tag"].as_str().map(str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn annotations(service: &Value) -> BTreeMap<String, String> {
    service["annotations"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

fn image(service: &Value) -> Option<String> {
    service["annotations"]["canary/image"].as_str().map(str::to_owned)
}

fn template_image(service: &Value) -> Option<&str> {
    service["template"]["containers"][0]["image"].as_str()
}

fn in_progress(phase: Option<Phase>) -> bool {
    matches!(phase, Some(Phase::Deploying | Phase::Verifying | Phase::Progressing | Phase::Waiting | Phase::Paused))
}

/// The entries canary answers for: all but people's tagged 0% entries.
fn canarys(entries: &[Entry]) -> Vec<Entry> {
    let mut out: Vec<Entry> = entries
        .iter()
        .filter(|(_, percent, tag)| !(*percent == 0 && tag.as_deref().is_some_and(|t| t != "stable" && t != "canary")))
        .cloned()
        .collect();
    out.sort();
    out
}

/// Canary's record of its last traffic (`canary/traffic`), sorted; empty if none.
fn written(service: &Value) -> Vec<Entry> {
    let Some(text) = service["annotations"]["canary/traffic"].as_str() else { return Vec::new() };
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let mut out: Vec<Entry> = list
        .iter()
        .map(|e| {
            (
                e["revision"].as_str().map(str::to_owned),
                e["percent"].as_u64().unwrap_or(0),
                e["tag"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

fn percent_of(entries: &[Entry], revision: &str) -> u64 {
    entries.iter().filter(|(r, _, _)| r.as_deref() == Some(revision)).map(|(_, p, _)| p).sum()
}

/// Every rule about one of canary's writes that landed: `before` is the service as it was,
/// `body` what canary wrote, at `now`.
pub(crate) fn check_write(shared: &Shared, before: &Value, body: &Value, now: SystemTime) -> Vec<Violation> {
    let mut found = Vec::new();
    let name = short(body["name"].as_str().unwrap_or_default()).to_owned();
    let was = RolloutState::read(&annotations(before));
    let is = RolloutState::read(&annotations(body));
    let spec: Option<CanaryRollout> = is.applied.as_deref().and_then(|t| serde_json::from_str(t).ok());
    let old_traffic = traffic(before);
    let new_traffic = traffic(body);
    let moves_traffic = canarys(&old_traffic) != canarys(&new_traffic);
    let asked = was.request.is_some();
    let new_rollout = image(body) != image(before) || is.canary != was.canary;
    // A failed trigger takes the canary's traffic away: by a rollback, or by a pause for
    // a shared incident. Either may move traffic a person set, as a rollback always could.
    let shared_pause = is.phase == Some(Phase::Paused) && is.pause == Some(canary_core::state::Pause::SharedIncident);
    let takes_the_canary_off = is.phase == Some(Phase::RolledBack) || (shared_pause && was.pause != is.pause);

    // traffic sums to 100 in every write
    let sum: u64 = new_traffic.iter().map(|(_, p, _)| p).sum();
    if sum != 100 {
        found.push(violation(
            "traffic_sums_to_100",
            format!("{name}: a write's traffic sums to {sum}: {new_traffic:?}"),
        ));
    }

    // no write to a service the rollout does not own
    if body["name"] == shared.foreign.as_str() {
        found.push(violation("writes_only_owned_services", format!("{name} belongs to another team: {body}")));
    }
    if let Some(owner) = &was.owner
        && is.owner.as_deref() != Some(owner)
    {
        found.push(violation(
            "writes_only_owned_services",
            format!("{name} is owned by `{owner}`, and a write made it {:?}'s", is.owner),
        ));
    }

    // the canary never has more than its current stage's weight
    if moves_traffic
        && in_progress(is.phase)
        && let (Some(canary), Some(spec)) = (&is.canary, &spec)
    {
        let allowed = match is.stage {
            0 => 0,
            n => spec.spec.stages.get(n - 1).map_or(100, |s| u64::from(s.weight)),
        };
        let has = percent_of(&new_traffic, canary);
        if has > allowed {
            found.push(violation(
                "canary_within_its_stage_weight",
                format!("{name}: stage {} allows the canary {allowed}%, a write gave it {has}%", is.stage),
            ));
        }
    }

    // no stage starts (nor a promotion happens) before the hold elapsed, unless promoted by hand
    let same_canary = !new_rollout && in_progress(was.phase) && was.stage >= 1;
    if same_canary && !asked && (is.stage > was.stage || is.phase == Some(Phase::Promoted)) {
        let hold = spec
            .as_ref()
            .and_then(|s| s.spec.stages.get(was.stage - 1))
            .and_then(|s| s.hold.as_ref())
            .map_or(0, |h| h.as_secs());
        let held = was.stage_started.map(|t| now.duration_since(t).unwrap_or_default().as_secs());
        if held.is_none_or(|held| held < hold) {
            found.push(violation(
                "stages_wait_for_their_hold",
                format!(
                    "{name}: stage {} → {} ({:?}) after {held:?} s of a {hold} s hold, not asked by anyone",
                    was.stage, is.stage, is.phase
                ),
            ));
        }
    }

    // a rejected image is never deployed again without an image change or `retry`
    let deploys = body.get("template") != before.get("template") && is.phase == Some(Phase::Deploying);
    if deploys
        && let Some(image) = template_image(body)
        && was.rejected.iter().any(|r| r == image)
    {
        found.push(violation(
            "rejected_images_stay_rejected",
            format!("{name}: {image} was rejected ({:?}) and a write deployed it again", was.rejected),
        ));
    }

    // no write silently undoes a person's change
    let record = written(before);
    let changed_outside = in_progress(was.phase) && !record.is_empty() && canarys(&old_traffic) != record;
    if moves_traffic && changed_outside && !asked && !new_rollout && !takes_the_canary_off {
        found.push(violation(
            "people_changes_are_not_undone",
            format!(
                "{name}: a person set {:?}; canary had written {record:?} and now wrote {:?} ({:?}: {})",
                canarys(&old_traffic),
                canarys(&new_traffic),
                is.phase,
                is.reason
            ),
        ));
    }

    // canary/paused-for is there exactly while Paused
    let paused_for = body["annotations"].get("canary/paused-for").is_some();
    if paused_for != (is.phase == Some(Phase::Paused)) {
        found.push(violation(
            "paused_for_iff_paused",
            format!("{name}: phase {:?} written with canary/paused-for {paused_for}", is.phase),
        ));
    }

    // a pause that waits for a person lifts only when a person asks
    let held_for_a_person =
        was.phase == Some(Phase::Paused) && was.pause.is_some_and(canary_core::state::Pause::waits_for_a_person);
    if held_for_a_person
        && is.phase != Some(Phase::Paused)
        && !asked
        && !new_rollout
        && is.phase != Some(Phase::RolledBack)
    {
        found.push(violation(
            "person_held_pauses_wait_for_a_person",
            format!("{name}: paused for {:?} and went to {:?} with nobody asking", was.pause, is.phase),
        ));
    }

    // a shared incident takes the canary's traffic to 0% and rejects nothing
    if shared_pause
        && let Some(canary) = &is.canary
        && (percent_of(&new_traffic, canary) > 0 || is.rejected.len() > was.rejected.len())
    {
        found.push(violation(
            "shared_incidents_take_the_canary_to_zero",
            format!(
                "{name}: paused for a shared incident with the canary at {}% and rejected {:?}",
                percent_of(&new_traffic, canary),
                is.rejected
            ),
        ));
    }

    // a rollout pauses for one shared incident at most: the second is the canary's
    if !new_rollout && was.incidents >= 1 && is.incidents > was.incidents {
        found.push(violation(
            "one_shared_incident_per_rollout",
            format!("{name}: paused for shared incident {} of one rollout", is.incidents),
        ));
    }

    // a frozen rollout's traffic moves only by rollback
    if moves_traffic
        && is.owner.as_ref().is_some_and(|o| shared.frozen.contains(o))
        && is.phase != Some(Phase::RolledBack)
    {
        found.push(violation(
            "frozen_traffic_moves_only_by_rollback",
            format!("{name}: its manifest is invalid, and a write moved traffic ({:?}: {})", is.phase, is.reason),
        ));
    }

    // an image that fails its trigger badly is never promoted unless a person asks
    // (a promotion moves traffic; recording one that already happened does not)
    if is.phase == Some(Phase::Promoted)
        && moves_traffic
        && !asked
        && let Some(image) = image(body)
        && shared.terrible.contains(&image)
    {
        found.push(violation(
            "failing_canaries_are_never_promoted",
            format!("{name}: {image} fails half its requests and was promoted"),
        ));
    }
    found
}

/// Cloud Run's revisions of one service, by what they run: canary pins each template to
/// one revision name, so two revisions never run the same containers.
pub(crate) fn one_revision_per_template(service: &str, revisions: &[Value]) -> Option<Violation> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for r in revisions {
        let what = r["containers"].to_string();
        let name = r["name"].as_str().unwrap_or_default().to_owned();
        if let Some(first) = seen.insert(what.clone(), name.clone()) {
            return Some(violation(
                "one_revision_per_template",
                format!("{}: {} and {} run the same template {what}", short(service), short(&first), short(&name)),
            ));
        }
    }
    None
}
