//! Scenario files: YAML that sets up the emulator's world before any client arrives —
//! the clock, image profiles, services already running, and faults. The format is
//! documented in the README ("The emulator").

use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Emulator;
use super::clock::parse_rfc3339;
use super::conditions::Conditions;
use super::faults::Fault;
use super::profile::Profile;
use super::traffic::Load;
use super::world::ServiceName;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    time_scale: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    settle_seconds: Option<f64>,
    #[serde(default)]
    publish_delay_seconds: Option<f64>,
    #[serde(default)]
    profiles: Vec<Profile>,
    #[serde(default)]
    loads: Vec<LoadSeed>,
    #[serde(default)]
    services: Vec<ServiceSeed>,
    #[serde(default)]
    faults: Vec<Fault>,
    #[serde(default)]
    conditions: Vec<ConditionsSeed>,
}

/// A service's production conditions from the start (incidents count from `start`).
/// Unknown fields are refused by `Conditions` (serde's `deny_unknown_fields` does not
/// combine with `flatten` on this side).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionsSeed {
    service: String,
    #[serde(flatten)]
    conditions: Conditions,
}

/// A service's request rate from the start.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LoadSeed {
    service: String,
    rps: f64,
    #[serde(default)]
    daily: bool,
}

/// A service that exists when the emulator starts: one Ready revision of `image`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServiceSeed {
    /// `projects/P/locations/L/services/S`.
    name: String,
    image: String,
    /// The revision's name (default `S-00001-abc`).
    #[serde(default)]
    revision: Option<String>,
    #[serde(default)]
    labels: Option<Value>,
    #[serde(default)]
    annotations: Option<Value>,
    /// Extra template fields (env, scaling, …), in Cloud Run's JSON form.
    #[serde(default)]
    template: Option<Value>,
}

/// A loaded scenario.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) start: Option<SystemTime>,
    pub(crate) time_scale: Option<f64>,
    pub(crate) seed: Option<u64>,
    pub(crate) settle_seconds: Option<f64>,
    pub(crate) publish_delay_seconds: Option<f64>,
    profiles: Vec<Profile>,
    loads: Vec<LoadSeed>,
    services: Vec<ServiceSeed>,
    faults: Vec<Fault>,
    conditions: Vec<ConditionsSeed>,
    path: String,
}

#[derive(Debug, thiserror::Error)]
#[error("scenario {path}: {message}")]
pub struct ScenarioError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl Scenario {
    pub(crate) fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let fail = |message: String| ScenarioError { path: shown.clone(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        Scenario::parse(&text, &shown)
    }

    pub(crate) fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let fail = |message: String| ScenarioError { path: path.to_owned(), message };
        let file: File = serde_saphyr::from_str(text).map_err(|e| fail(e.to_string()))?;
        let start = match &file.start {
            Some(text) => {
                Some(parse_rfc3339(text).ok_or_else(|| fail(format!("start: `{text}` is not an RFC 3339 time")))?)
            }
            None => None,
        };
        for profile in &file.profiles {
            profile.validate().map_err(|m| fail(format!("profile {}: {m}", profile.image)))?;
        }
        for fault in &file.faults {
            fault.validate().map_err(|m| fail(format!("fault: {m}")))?;
        }
        for seed in &file.conditions {
            seed.conditions.validate().map_err(|m| fail(format!("conditions {}: {m}", seed.service)))?;
        }
        for service in &file.services {
            if ServiceName::parse(&service.name).is_none() {
                return Err(fail(format!(
                    "service `{}`: name must be projects/P/locations/L/services/S",
                    service.name
                )));
            }
        }
        Ok(Scenario {
            start,
            time_scale: file.time_scale,
            seed: file.seed,
            settle_seconds: file.settle_seconds,
            publish_delay_seconds: file.publish_delay_seconds,
            profiles: file.profiles,
            loads: file.loads,
            services: file.services,
            faults: file.faults,
            conditions: file.conditions,
            path: path.to_owned(),
        })
    }

    /// Puts the scenario's profiles, services and faults into the emulator.
    pub(crate) fn apply(self, emulator: &Emulator) -> Result<(), ScenarioError> {
        let fail = |message: String| ScenarioError { path: self.path.clone(), message };
        for profile in self.profiles {
            emulator.with_world(|w, now| w.put_profile(profile, now)).map_err(&fail)?;
        }
        for seed in &self.services {
            let Some(name) = ServiceName::parse(&seed.name) else { continue };
            let mut template = seed.template.clone().unwrap_or_else(|| json!({}));
            if !template.is_object() {
                return Err(fail(format!("service {}: template must be a mapping", seed.name)));
            }
            let containers = template.get("containers").cloned().unwrap_or_else(|| json!([{}]));
            let mut containers = containers.as_array().cloned().unwrap_or_default();
            if containers.is_empty() {
                containers.push(json!({}));
            }
            containers[0]["image"] = seed.image.clone().into();
            template["containers"] = Value::Array(containers);
            if let Some(revision) = &seed.revision {
                template["revision"] = revision.clone().into();
            }
            let mut body = json!({"template": template});
            if let Some(labels) = &seed.labels {
                body["labels"] = labels.clone();
            }
            if let Some(annotations) = &seed.annotations {
                body["annotations"] = annotations.clone();
            }
            emulator
                .with_world(|w, now| w.seed_service(&name, body, now))
                .map_err(|e| fail(format!("service {}: {}", seed.name, e.message)))?;
        }
        for load in &self.loads {
            let setting = Load { rps: load.rps, daily: load.daily };
            emulator
                .with_world(|w, now| w.set_load(&load.service, setting, now))
                .map_err(|m| fail(format!("load {}: {m}", load.service)))?;
        }
        for seed in self.conditions {
            emulator
                .with_world(|w, now| w.set_conditions(&seed.service, seed.conditions, now))
                .map_err(|m| fail(format!("conditions {}: {m}", seed.service)))?;
        }
        for fault in self.faults {
            emulator.add_fault(fault).map_err(|m| fail(format!("fault: {m}")))?;
        }
        Ok(())
    }
}
