//! A Cloud Run Service as canary reads it, and the one way canary changes it.
//!
//! The service is kept as the JSON Cloud Run sent; the typed view reads what canary
//! needs from it (accepting both enum names and numbers, int64 as strings or numbers,
//! short or full revision names). A [`Change`] is applied onto that same JSON, so every
//! field canary does not own — secrets, VPC access, volumes, probes, scaling, user tags
//! and traffic entries, fields newer than this code — goes back exactly as it came.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::hash::{canonical, fnv1a};
use crate::manifest::types::Template;
use crate::state::{Entry, PREFIX, RolloutState};

/// The tags canary owns in the traffic list.
pub(crate) const STABLE_TAG: &str = "stable";
pub(crate) const CANARY_TAG: &str = "canary";

/// A traffic target as written in the service spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `None` means "the latest Ready revision".
    pub(crate) revision: Option<String>,
    pub(crate) percent: u32,
    pub(crate) tag: Option<String>,
}

impl Target {
    /// A person's entry: tagged with a tag that is not canary's, at 0%.
    fn is_users(&self) -> bool {
        self.percent == 0 && self.tag.as_deref().is_some_and(|tag| tag != STABLE_TAG && tag != CANARY_TAG)
    }
}

/// The entries of `targets` canary answers for, sorted, as `canary/traffic` keeps them.
pub(crate) fn entries(targets: &[Target]) -> Vec<Entry> {
    let mut out: Vec<Entry> = targets
        .iter()
        .filter(|t| !t.is_users())
        .map(|t| Entry { revision: t.revision.clone(), percent: t.percent, tag: t.tag.clone() })
        .collect();
    out.sort();
    out
}

/// Where traffic actually goes (the service's `trafficStatuses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetStatus {
    pub(crate) revision: String,
    pub(crate) percent: u32,
    pub(crate) tag: Option<String>,
    pub(crate) uri: Option<String>,
}

/// The service's Ready condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    Reconciling,
    Failed(String),
}

/// What canary reads from a Service.
///
/// The service itself is kept as the text Cloud Run sent (`raw`), not as a JSON tree: a
/// pass holds every service of its projects at once, and a tree costs several times its
/// text. The fields canary reads are taken out once; the tree is built again only for a
/// write ([`ServiceView::value`]) or a deploy ([`ServiceView::template`]).
#[derive(Debug, Clone)]
pub struct ServiceView {
    raw: Box<RawValue>,
    pub name: String,
    pub(crate) short_name: String,
    pub(crate) generation: u64,
    pub(crate) observed_generation: u64,
    pub(crate) reconciling: bool,
    pub(crate) readiness: Readiness,
    pub annotations: BTreeMap<String, String>,
    pub(crate) traffic: Vec<Target>,
    pub(crate) statuses: Vec<TargetStatus>,
    pub(crate) latest_ready: Option<String>,
    pub(crate) latest_created: Option<String>,
    /// The service's own URL (`uri`).
    pub(crate) uri: Option<String>,
    /// The image of the template's first container.
    template_image: Option<String>,
    /// The revision name the template pins (`template.revision`), short.
    template_revision: Option<String>,
}

impl PartialEq for ServiceView {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

/// The top-level fields canary reads, each as whatever JSON it holds (a field of a
/// surprising type reads as empty below, it does not fail the read). Everything else in
/// the text is skipped without being built.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Fields {
    name: Value,
    generation: Value,
    observed_generation: Value,
    reconciling: Value,
    terminal_condition: Value,
    annotations: Value,
    template: Option<Box<RawValue>>,
    traffic: Value,
    traffic_statuses: Value,
    latest_ready_revision: Value,
    latest_created_revision: Value,
    uri: Value,
}

/// The template fields canary reads.
#[derive(Default, Deserialize)]
#[serde(default)]
struct TemplateFields {
    revision: Value,
    containers: Value,
}

fn int(v: Option<&Value>) -> u64 {
    v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(0)
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// `projects/…/revisions/NAME` or `NAME` → `NAME`.
pub(crate) fn short(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

fn is_latest(kind: Option<&Value>) -> bool {
    match kind {
        Some(Value::String(s)) => s == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

impl ServiceView {
    /// Reads a Service's JSON; never fails, missing fields read as empty.
    pub fn parse(raw: Value) -> ServiceView {
        ServiceView::read(serde_json::value::to_raw_value(&raw).unwrap_or_else(|_| null()))
    }

    /// Reads a Service as Cloud Run sent it; never fails: text that is not a JSON object,
    /// and missing fields, read as empty.
    pub fn read(raw: Box<RawValue>) -> ServiceView {
        let f: Fields = serde_json::from_str(raw.get()).unwrap_or_default();
        let name = text(Some(&f.name)).unwrap_or_default();
        let annotations = f
            .annotations
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        let traffic = f
            .traffic
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|t| Target {
                        revision: if is_latest(t.get("type")) {
                            None
                        } else {
                            text(t.get("revision")).map(|r| short(&r))
                        },
                        percent: u32::try_from(int(t.get("percent"))).unwrap_or(0),
                        tag: text(t.get("tag")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let statuses = f
            .traffic_statuses
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|t| TargetStatus {
                        revision: text(t.get("revision")).map(|r| short(&r)).unwrap_or_default(),
                        percent: u32::try_from(int(t.get("percent"))).unwrap_or(0),
                        tag: text(t.get("tag")),
                        uri: text(t.get("uri")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let condition = &f.terminal_condition;
        let readiness = match condition.get("state") {
            Some(Value::String(s)) if s == "CONDITION_SUCCEEDED" => Readiness::Ready,
            Some(Value::Number(n)) if n.as_u64() == Some(4) => Readiness::Ready,
            Some(Value::String(s)) if s == "CONDITION_FAILED" => {
                Readiness::Failed(text(condition.get("message")).unwrap_or_default())
            }
            Some(Value::Number(n)) if n.as_u64() == Some(3) => {
                Readiness::Failed(text(condition.get("message")).unwrap_or_default())
            }
            _ => Readiness::Reconciling,
        };
        let template: TemplateFields =
            f.template.as_ref().and_then(|t| serde_json::from_str(t.get()).ok()).unwrap_or_default();
        ServiceView {
            short_name: short(&name),
            name,
            generation: int(Some(&f.generation)),
            observed_generation: int(Some(&f.observed_generation)),
            reconciling: f.reconciling.as_bool().unwrap_or(false),
            readiness,
            annotations,
            traffic,
            statuses,
            latest_ready: text(Some(&f.latest_ready_revision)).map(|r| short(&r)),
            latest_created: text(Some(&f.latest_created_revision)).map(|r| short(&r)),
            uri: text(Some(&f.uri)),
            template_image: text(template.containers.pointer("/0/image")),
            template_revision: text(Some(&template.revision)).map(|r| short(&r)),
            raw,
        }
    }

    /// The service as JSON, for a write that sends it back with a change laid over it.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(self.raw.get()).unwrap_or(Value::Null)
    }

    /// The service's revision template as JSON (an empty object if it has none).
    pub(crate) fn template(&self) -> Value {
        match self.value().get_mut("template").map(Value::take) {
            Some(template @ Value::Object(_)) => template,
            _ => json!({}),
        }
    }

    /// Cloud Run has finished applying the newest write, so its status fields are current.
    pub(crate) fn settled(&self) -> bool {
        !self.reconciling && self.observed_generation == self.generation && self.readiness != Readiness::Reconciling
    }

    /// The single revision that serves 100% of traffic, if traffic is not split.
    pub(crate) fn sole_revision(&self) -> Option<&str> {
        // By revision: two entries of one revision (two tags, 50 + 50) are still one.
        let split = self.split();
        match split.iter().collect::<Vec<_>>().as_slice() {
            [(revision, 100)] if !revision.is_empty() => {
                self.statuses.iter().find(|s| &s.revision == *revision).map(|s| s.revision.as_str())
            }
            _ => None,
        }
    }

    /// The URI Cloud Run gives a tag.
    pub(crate) fn tag_uri(&self, tag: &str) -> Option<&str> {
        self.statuses.iter().find(|s| s.tag.as_deref() == Some(tag)).and_then(|s| s.uri.as_deref())
    }

    /// The image the template runs.
    pub(crate) fn template_image(&self) -> Option<&str> {
        self.template_image.as_deref()
    }

    /// Traffic entries that belong to people, not to canary: tagged entries with tags
    /// other than canary's, which canary keeps exactly as they are.
    pub(crate) fn user_targets(&self) -> Vec<Target> {
        self.traffic.iter().filter(|t| t.is_users()).cloned().collect()
    }

    /// The entries canary answers for (everything but [`ServiceView::user_targets`]), as
    /// `canary/traffic` records them: sorted, so two lists compare by content.
    pub(crate) fn canarys_entries(&self) -> Vec<Entry> {
        entries(&self.traffic)
    }

    /// The rollout's state on this service, with what a hand edit made unreadable taken
    /// back from canary's own traffic tags where they say it: the stable revision (tag
    /// `stable`) and, while a rollout is under way, the canary (tag `canary`). Without
    /// them a rollback would have nowhere to send traffic.
    pub fn state(&self) -> RolloutState {
        let mut state = RolloutState::read(&self.annotations);
        let tagged =
            |tag: &str| self.traffic.iter().find(|t| t.tag.as_deref() == Some(tag)).and_then(|t| t.revision.clone());
        if state.stable.is_none() {
            state.stable = tagged(STABLE_TAG);
        }
        if state.canary.is_none() && state.phase.is_some_and(crate::state::Phase::in_progress) {
            state.canary = tagged(CANARY_TAG);
        }
        state
    }

    /// The revision name the template pins (`template.revision`), if any.
    pub(crate) fn template_revision(&self) -> Option<String> {
        self.template_revision.clone()
    }

    /// Current traffic by revision (`LATEST` resolved through the statuses).
    /// The split Cloud Run was last asked for, while it is still applying it (the service
    /// is reconciling, or its spec names another split than the one serving); `None`
    /// once what serves is what was asked.
    pub(crate) fn settling_to(&self) -> Option<BTreeMap<String, u32>> {
        let mut asked = BTreeMap::new();
        for t in self.traffic.iter().filter(|t| t.percent > 0) {
            let revision = t.revision.clone().or_else(|| self.latest_ready.clone()).unwrap_or_else(|| "latest".into());
            *asked.entry(revision).or_insert(0) += t.percent;
        }
        let busy = self.reconciling || self.observed_generation < self.generation;
        (busy && !asked.is_empty() && asked != self.split()).then_some(asked)
    }

    pub fn split(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for s in self.statuses.iter().filter(|s| s.percent > 0) {
            *out.entry(s.revision.clone()).or_insert(0) += s.percent;
        }
        out
    }
}

/// The canary's template: the service's current template with the manifest's fields
/// laid over it (image, env merged by name, resources, service account), pinned to a
/// revision name derived from its content, so a retry can never create a second one.
pub(crate) fn canary_template(base: &Value, service: &str, overlay: &Template) -> (Value, String) {
    let mut template = match base {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    template.remove("revision");
    let containers = template.entry("containers").or_insert_with(|| json!([{}]));
    if containers.as_array().is_none_or(|c| c.is_empty()) {
        *containers = json!([{}]);
    }
    if let Some(container) = containers.get_mut(0).and_then(Value::as_object_mut) {
        container.insert("image".into(), overlay.image.clone().into());
        if !overlay.env.is_empty() {
            let env = container.entry("env").or_insert_with(|| json!([]));
            if !env.is_array() {
                *env = json!([]);
            }
            if let Some(list) = env.as_array_mut() {
                for (name, value) in &overlay.env {
                    let entry = json!({"name": name, "value": value});
                    match list.iter_mut().find(|e| e.get("name").and_then(Value::as_str) == Some(name)) {
                        Some(existing) => *existing = entry,
                        None => list.push(entry),
                    }
                }
            }
        }
        if let Some(resources) = &overlay.resources {
            let limits = container.entry("resources").or_insert_with(|| json!({}));
            if !limits.is_object() {
                *limits = json!({});
            }
            let limits = limits.as_object_mut().map(|r| r.entry("limits").or_insert_with(|| json!({})));
            if let Some(Value::Object(limits)) = limits {
                if let Some(cpu) = &resources.cpu {
                    limits.insert("cpu".into(), cpu.clone().into());
                }
                if let Some(memory) = &resources.memory {
                    limits.insert("memory".into(), memory.clone().into());
                }
            }
        }
    }
    if let Some(account) = &overlay.service_account {
        template.insert("serviceAccount".into(), account.clone().into());
    }
    let value = Value::Object(template);
    let name = revision_name(service, &value);
    let mut pinned = value;
    pinned["revision"] = name.clone().into();
    (pinned, name)
}

/// `SERVICE-` and seven hex digits of the template's hash.
pub(crate) fn revision_name(service: &str, template: &Value) -> String {
    let mut unpinned = template.clone();
    if let Some(m) = unpinned.as_object_mut() {
        m.remove("revision");
    }
    format!("{service}-{:07x}", fnv1a(&canonical(&unpinned)) & 0x0fff_ffff)
}

/// What canary changes in one write: the template (a deploy), the traffic list, and the
/// `canary/` annotations (the whole set: keys not in it are removed).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub(crate) template: Option<Value>,
    pub(crate) traffic: Option<Vec<Target>>,
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Change {
    /// The service JSON to PATCH back: `raw` with this change applied and nothing else
    /// touched. The etag read with `raw` goes back with it.
    pub(crate) fn apply(&self, raw: &Value) -> Value {
        let mut out = raw.clone();
        if let Some(template) = &self.template {
            out["template"] = template.clone();
        }
        if let Some(traffic) = &self.traffic {
            out["traffic"] = Value::Array(traffic.iter().map(target_json).collect());
        }
        let mut annotations: Map<String, Value> = out
            .get("annotations")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter(|(k, _)| !k.starts_with(PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (k, v) in &self.annotations {
            annotations.insert(k.clone(), v.clone().into());
        }
        out["annotations"] = Value::Object(annotations);
        out
    }
}

fn target_json(t: &Target) -> Value {
    let mut out = match &t.revision {
        Some(r) => json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": r}),
        None => json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}),
    };
    out["percent"] = t.percent.into();
    if let Some(tag) = &t.tag {
        out["tag"] = tag.clone().into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> Template {
        Template { image: image.into(), env: BTreeMap::new(), resources: None, service_account: None }
    }

    #[test]
    fn reads_enum_numbers_strings_and_full_names() {
        let view = ServiceView::parse(json!({
            "name": "projects/p/locations/l/services/api", "generation": "3", "observedGeneration": 3,
            "terminalCondition": {"state": 4}, "latestReadyRevision": "projects/p/locations/l/services/api/revisions/api-1",
            "traffic": [{"type": 1, "percent": 100}],
            "trafficStatuses": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "revision": "api-1", "percent": 100}]
        }));
        assert_eq!(view.short_name, "api");
        assert!(view.settled());
        assert_eq!(view.latest_ready.as_deref(), Some("api-1"));
        assert_eq!(view.traffic[0].revision, None);
        assert_eq!(view.sole_revision(), Some("api-1"));
        assert_eq!(ServiceView::parse(json!(null)).name, "");
    }

    #[test]
    fn reads_from_text_without_failing_on_surprises_and_gives_the_service_back_whole() {
        let text = r#"{"name": "projects/p/locations/l/services/api", "generation": 2, "observedGeneration": "2",
            "reconciling": "no", "terminalCondition": {"state": "CONDITION_FAILED", "message": "quota"},
            "annotations": {"canary/phase": "Progressing", "odd": 5}, "traffic": {"not": "a list"},
            "template": {"revision": "projects/p/locations/l/services/api/revisions/api-abc", "containers": [{"image": "gcr.io/p/api:v2"}], "vpcAccess": {"connector": "c"}},
            "uri": "https://api.example", "futureField": [1, 2, 3]}"#;
        let view = ServiceView::read(RawValue::from_string(text.to_owned()).unwrap());
        assert_eq!(view.short_name, "api");
        assert_eq!((view.generation, view.observed_generation, view.reconciling), (2, 2, false));
        assert_eq!(view.readiness, Readiness::Failed("quota".into()));
        assert_eq!(view.annotations, BTreeMap::from([("canary/phase".to_owned(), "Progressing".to_owned())]));
        assert!(view.traffic.is_empty(), "a traffic field that is not a list reads as none");
        assert_eq!(view.template_image(), Some("gcr.io/p/api:v2"));
        assert_eq!(view.template_revision().as_deref(), Some("api-abc"));
        assert_eq!(view.uri.as_deref(), Some("https://api.example"));
        // What goes back on a write is the service as it came, fields canary never reads included.
        let value = view.value();
        assert_eq!(value["futureField"], json!([1, 2, 3]));
        assert_eq!(view.template()["vpcAccess"], json!({"connector": "c"}));
        assert_eq!(value, serde_json::from_str::<Value>(text).unwrap());
        // Text that is not an object reads as an empty service.
        for odd in ["[1, 2]", "\"api\"", "null"] {
            let view = ServiceView::read(RawValue::from_string(odd.to_owned()).unwrap());
            assert_eq!((view.name.as_str(), view.template_image()), ("", None), "{odd}");
            assert_eq!(view.template(), json!({}));
        }
    }

    #[test]
    fn settling_is_the_asked_split_only_while_cloud_run_applies_it() {
        let service = |generation: u64, observed: u64, serving: u32| {
            ServiceView::parse(json!({
                "name": "projects/p/locations/l/services/api", "generation": generation.to_string(),
                "observedGeneration": observed, "latestReadyRevision": "api-2",
                "traffic": [{"revision": "api-1", "percent": 95}, {"revision": "api-2", "percent": 5}],
                "trafficStatuses": [{"revision": "api-1", "percent": serving}, {"revision": "api-2", "percent": 100 - serving}]
            }))
        };
        let asked = BTreeMap::from([("api-1".to_owned(), 95), ("api-2".to_owned(), 5)]);
        assert_eq!(service(4, 3, 100).settling_to(), Some(asked));
        assert_eq!(service(4, 4, 95).settling_to(), None, "applied");
        assert_eq!(service(4, 3, 95).settling_to(), None, "already serving what was asked");
        // "Latest" in the spec is the latest ready revision.
        let latest = ServiceView::parse(json!({
            "generation": "2", "observedGeneration": 1, "latestReadyRevision": "api-2",
            "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
            "trafficStatuses": [{"revision": "api-1", "percent": 100}]
        }));
        assert_eq!(latest.settling_to(), Some(BTreeMap::from([("api-2".to_owned(), 100)])));
    }

    #[test]
    fn canary_template_overlays_and_keeps_everything_else() {
        let base = json!({"revision": "api-old", "serviceAccount": "a@x", "vpcAccess": {"connector": "c"},
            "containers": [{"image": "gcr.io/p/api:v1", "env": [{"name": "A", "value": "1"}, {"name": "SECRET", "valueSource": {"secretKeyRef": {"secret": "s"}}}]}]});
        let mut overlay = template("gcr.io/p/api:v2");
        overlay.env.insert("A".into(), "2".into());
        overlay.env.insert("B".into(), "3".into());
        let (t, name) = canary_template(&base, "api", &overlay);
        assert_eq!(t["containers"][0]["image"], "gcr.io/p/api:v2");
        assert_eq!(
            t["containers"][0]["env"],
            json!([{"name": "A", "value": "2"}, {"name": "SECRET", "valueSource": {"secretKeyRef": {"secret": "s"}}}, {"name": "B", "value": "3"}])
        );
        assert_eq!(t["vpcAccess"], json!({"connector": "c"}));
        assert_eq!(t["revision"], name.as_str());
        assert!(name.starts_with("api-") && name.len() == "api-".len() + 7, "{name}");
        // Laying the same overlay over the result gives the same revision: retries converge.
        let (again, name_again) = canary_template(&t, "api", &overlay);
        assert_eq!((again, name_again), (t.clone(), name.clone()));
        let (_, other) = canary_template(&base, "api", &template("gcr.io/p/api:v3"));
        assert_ne!(other, name);
    }

    #[test]
    fn a_change_touches_only_what_canary_owns() {
        let raw = json!({"name": "n", "etag": "\"e1\"", "annotations": {"team": "x", "canary/phase": "Old", "canary/stale": "y"},
            "template": {"containers": [{"image": "a"}]}, "traffic": [], "futureField": {"keep": true}});
        let change = Change {
            template: None,
            traffic: Some(vec![Target { revision: Some("r1".into()), percent: 100, tag: Some(STABLE_TAG.into()) }]),
            annotations: BTreeMap::from([("canary/phase".to_owned(), "Progressing".to_owned())]),
        };
        let out = change.apply(&raw);
        assert_eq!(out["annotations"], json!({"team": "x", "canary/phase": "Progressing"}));
        assert_eq!(
            out["traffic"],
            json!([{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": "r1", "percent": 100, "tag": "stable"}])
        );
        assert_eq!(out["futureField"], json!({"keep": true}));
        assert_eq!(out["etag"], "\"e1\"");
        assert_eq!(out["template"], raw["template"]);
    }
}
