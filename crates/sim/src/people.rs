//! People, and the world around canary: manifest commits (new images, stage and
//! threshold edits, invalid edits, `spec.paused`, deleted and restored manifests), the
//! manual commands at random moments, hand changes to the service (100% to stable,
//! another split, the canary tag removed, the canary revision deleted, a hotfix
//! deployed over the canary), hand-edited or corrupted `canary/` annotations, traffic
//! that stops, metric gaps, and shared incidents (every revision failing for a while).

use std::time::Duration;

use canary_core::operate::{self, Command};
use canary_emulator::traffic::Load;
use canary_testkit::{PROJECT, service_name};
use serde_json::{Value, json};

use crate::world::{SERVICES, STAGES, Sim};

/// One person's act at `step`, drawn at random.
pub(crate) fn act(sim: &mut Sim, step: usize) {
    let i = sim.pick(SERVICES.len());
    let name = SERVICES[i];
    let what = match sim.pick(20) {
        0 | 1 => {
            sim.desired[i].image = sim.new_image(name);
            sim.write_manifest(i);
            format!("commit: {name} to {}", sim.desired[i].image)
        }
        2 => {
            sim.desired[i].stages = sim.pick(STAGES.len());
            sim.write_manifest(i);
            format!("commit: {name} stages {:?}", STAGES[sim.desired[i].stages])
        }
        3 => {
            let d = &mut sim.desired[i];
            d.threshold = if d.threshold == "5%" { "8%" } else { "5%" };
            let t = d.threshold;
            sim.write_manifest(i);
            format!("commit: {name} errorRate above {t}")
        }
        4 => {
            sim.desired[i].invalid = !sim.desired[i].invalid;
            sim.write_manifest(i);
            format!("commit: {name} manifest {}", if sim.desired[i].invalid { "made invalid" } else { "fixed" })
        }
        5 => {
            sim.desired[i].paused = !sim.desired[i].paused;
            sim.write_manifest(i);
            format!("commit: {name} spec.paused {}", sim.desired[i].paused)
        }
        6 => {
            sim.desired[i].deleted = !sim.desired[i].deleted;
            sim.write_manifest(i);
            format!("commit: {name} manifest {}", if sim.desired[i].deleted { "deleted" } else { "restored" })
        }
        7..=11 => {
            let command = [
                Command::Pause,
                Command::Resume,
                Command::Promote { full: false },
                Command::Promote { full: true },
                Command::Abort,
                Command::Retry,
            ][sim.pick(6)];
            match sim.desired[i].rollout() {
                None => format!("{command:?} on {name}: no valid manifest to run it with"),
                Some(rollout) => {
                    let world = sim.world.clone();
                    let answer = tokio_free(operate::run(&world, &rollout, command));
                    match answer {
                        Ok(said) => format!("canary {command:?} {name}: {said}"),
                        Err(refused) => format!("canary {command:?} {name}: refused: {refused}"),
                    }
                }
            }
        }
        12 => by_hand(sim, name, "100% to stable (gcloud update-traffic)", |s| {
            let stable = s["annotations"]["canary/stable"].as_str()?.to_owned();
            for t in s["traffic"].as_array_mut()? {
                t["percent"] = if t["revision"] == stable.as_str() { 100 } else { 0 }.into();
            }
            Some(())
        }),
        13 => by_hand(sim, name, "a 50/50 split", |s| {
            let list = s["traffic"].as_array_mut()?;
            let serving: Vec<usize> = (0..list.len()).filter(|&k| list[k]["revision"].is_string()).take(2).collect();
            let [a, b] = serving[..] else { return None };
            for t in list.iter_mut() {
                t["percent"] = 0.into();
            }
            list[a]["percent"] = 50.into();
            list[b]["percent"] = 50.into();
            Some(())
        }),
        14 => by_hand(sim, name, "the canary tag removed", |s| {
            let list = s["traffic"].as_array_mut()?;
            let canary = list.iter_mut().find(|t| t["tag"] == "canary")?;
            canary.as_object_mut()?.remove("tag");
            Some(())
        }),
        15 => {
            let (state, _) = sim.state(name);
            match state.canary {
                Some(canary) => {
                    let revision = format!("{}/revisions/{canary}", service_name(PROJECT, name));
                    let answer = sim.world.with_world(|w, now| w.delete_revision(&revision, now));
                    format!(
                        "{name}: delete revision {canary} → {}",
                        answer.map_or_else(|e| e.message, |_| "deleted".into())
                    )
                }
                None => format!("{name}: no canary revision to delete"),
            }
        }
        16 => {
            sim.images += 1;
            let hotfix = format!("gcr.io/demo/{name}:hotfix-{}", sim.images);
            sim.put_profile(json!({"image": hotfix, "errorRate": 0.005}));
            by_hand(sim, name, &format!("{hotfix} deployed by hand (gcloud run deploy)"), |s| {
                let template = s["template"].as_object_mut()?;
                template.remove("revision");
                s["template"]["containers"][0]["image"] = hotfix.clone().into();
                s["traffic"] = json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]);
                Some(())
            })
        }
        17 => {
            let (key, value) = [
                ("canary/phase", Some("Exploding")),
                ("canary/stage", Some("two")),
                ("canary/stage-started", Some("yesterday")),
                ("canary/rejected", Some("[oops")),
                ("canary/traffic", Some("{not json")),
                ("canary/spec", Some("{")),
                ("canary/paused-for", Some("bored")),
                ("canary/request", Some("dance")),
                ("canary/history", None),
                ("canary/traffic", None),
                ("canary/stable", None),
                ("canary/stage-started", None),
            ][sim.pick(12)];
            by_hand(sim, name, &format!("annotation {key} set to {value:?} by hand"), |s| {
                let annotations = s["annotations"].as_object_mut()?;
                match value {
                    Some(v) => annotations.insert(key.to_owned(), v.into()),
                    None => annotations.remove(key),
                };
                Some(())
            })
        }
        18 if sim.chance(0.3) => {
            // A downstream every revision calls fails for a while: a shared incident.
            let minutes = 5 + sim.pick(25);
            let rate = [0.12, 0.3, 0.6][sim.pick(3)];
            let full = service_name(PROJECT, name);
            let conditions: canary_emulator::conditions::Conditions =
                serde_json::from_value(json!({"incidents": [{"lasts": format!("{minutes}m"), "errorRate": rate}]}))
                    .expect("the incident parses");
            sim.world.with_world(|w, now| w.set_conditions(&full, conditions, now)).expect("the incident is set");
            format!("{name}: shared incident, every revision {rate} errors for {minutes} min")
        }
        18 => {
            let rps = if sim.chance(0.5) { 0.0 } else { 10.0 + sim.pick(30) as f64 };
            let full = service_name(PROJECT, name);
            sim.world.set_load(&full, Load { rps, daily: false }).expect("the load is set");
            sim.loads.insert(name.to_owned(), rps);
            format!("{name}: load {rps} rps")
        }
        _ => {
            let minutes = 2 + sim.pick(8) as u64;
            let now = sim.world.0.now();
            sim.world
                .with_world(|w, _| {
                    w.add_gap(name, now, now + Duration::from_secs(minutes * 60));
                    Ok::<_, ()>(())
                })
                .ok();
            format!("{name}: Monitoring has a {minutes}-minute gap")
        }
    };
    sim.log(format!("step {step}: person: {what}"));
}

/// Runs a manual command: in-process, it never waits on anything.
fn tokio_free<T>(future: impl std::future::Future<Output = T>) -> T {
    futures_util::FutureExt::now_or_never(future).expect("an in-process command completes at once")
}

/// A person's write to the service, through the world (not canary's client): `edit`
/// changes the service as read; `None` means there was nothing to change.
fn by_hand(sim: &mut Sim, name: &str, what: &str, edit: impl FnOnce(&mut Value) -> Option<()>) -> String {
    let full = service_name(PROJECT, name);
    let shared = sim.shared();
    let answer = sim.world.with_world(|w, now| {
        let before = w.get_service(&full, now)?;
        let mut service = before.clone();
        if edit(&mut service).is_none() {
            return Ok(None);
        }
        w.update_service(&full, service, None, false, false, now)?;
        Ok::<_, canary_emulator::api_error::ApiError>(Some(before))
    });
    match answer {
        Ok(Some(before)) => {
            shared.borrow_mut().previous.insert(full, before);
            format!("{name}: {what}")
        }
        Ok(None) => format!("{name}: {what}: nothing to change"),
        Err(e) => format!("{name}: {what}: refused: {}", e.message),
    }
}
