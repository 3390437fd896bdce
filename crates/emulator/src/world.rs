//! The emulated Cloud Run world: services, revisions and long-running operations, with
//! Cloud Run's semantics (generations, etags, reconciliation that settles after a
//! delay, revisions only from template changes, traffic rules). Every method takes the
//! time as an argument: the world never reads a clock, so tests drive it exactly.
//!
//! Services are kept as the JSON their clients wrote (minus output-only fields), so
//! fields the emulator does not interpret — VPC access, volumes, secrets, probes,
//! anything newer than this code — survive every round trip.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use std::collections::HashMap;

use super::api_error::ApiError;
use super::clock::{later, rfc3339, seconds};
use super::ids::Rng;
use super::profile::Profile;
use super::proto;
use super::traffic::{LatencyShapes, Load, MinuteCounts, Timeline, at, draw_counts, minute_rng};
use crate::histogram::Histogram;

const LATEST: &str = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST";
const REVISION: &str = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION";
const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";
const REVISION_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Revision";
const RESERVED_PREFIXES: [&str; 4] =
    ["run.googleapis.com/", "cloud.googleapis.com/", "serving.knative.dev/", "autoscaling.knative.dev/"];
/// Fields of a Service that only the server sets; ignored when a client sends them.
const OUTPUT_ONLY: [&str; 19] = [
    "uid",
    "generation",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "creator",
    "lastModifier",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "uri",
    "urls",
    "reconciling",
    "etag",
    "satisfiesPzs",
];
const MAX_PAGE: usize = 1000;

/// How the world behaves.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    /// How long a write takes to settle (simulated).
    pub settle: Duration,
    /// The emulator's own address (`http://127.0.0.1:8085`), for the URLs it hands out.
    pub base_url: String,
    /// How long after a minute ends its metric points become visible (Cloud
    /// Monitoring's publishing delay).
    pub publish_delay: Duration,
    /// How many long-running operations are kept for `GET …/operations/ID` (the oldest
    /// go first), so a long-running emulator does not grow with every write.
    pub max_operations: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 0,
            settle: Duration::from_secs(10),
            base_url: "http://127.0.0.1:8085".to_owned(),
            publish_delay: Duration::from_secs(180),
            max_operations: 10_000,
        }
    }
}

/// A revision as Cloud Monitoring labels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionLabels {
    pub full: String,
    pub project: String,
    pub location: String,
    pub service: String,
    pub revision: String,
}

/// Minutes in which no metric points are published for matching revisions.
#[derive(Debug, Clone)]
struct Gap {
    matches: String,
    start: SystemTime,
    end: SystemTime,
}

/// `projects/P/locations/L/services/S`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName {
    pub project: String,
    pub location: String,
    pub service: String,
}

impl ServiceName {
    pub fn parse(name: &str) -> Option<ServiceName> {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["projects", p, "locations", l, "services", s] if !p.is_empty() && !l.is_empty() && !s.is_empty() => {
                Some(ServiceName { project: (*p).to_owned(), location: (*l).to_owned(), service: (*s).to_owned() })
            }
            _ => None,
        }
    }

    pub fn full(&self) -> String {
        format!("{}/services/{}", self.parent(), self.service)
    }

    pub fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project, self.location)
    }
}

#[derive(Debug, Clone, Default)]
struct Status {
    observed_generation: u64,
    latest_ready: Option<String>,
    latest_created: Option<String>,
    traffic: Vec<Value>,
    terminal: Value,
    conditions: Vec<Value>,
}

#[derive(Debug, Clone)]
struct ServiceRecord {
    name: ServiceName,
    spec: Map<String, Value>,
    uid: String,
    generation: u64,
    create_time: SystemTime,
    update_time: SystemTime,
    etag: String,
    settle_at: SystemTime,
    /// The revision created by the newest write, reported once the write settles.
    pending_created: Option<String>,
    status: Status,
    /// What a reader saw before the newest write (served by the `staleRead` fault).
    previous: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Ready,
    Failed { reason: String, message: String },
}

#[derive(Debug, Clone)]
struct RevisionRecord {
    short: String,
    service: String,
    template: Value,
    image: String,
    uid: String,
    create_time: SystemTime,
    ready_at: SystemTime,
    outcome: Outcome,
}

impl RevisionRecord {
    fn ready(&self, now: SystemTime) -> bool {
        self.outcome == Outcome::Ready && now >= self.ready_at
    }

    fn failed(&self, now: SystemTime) -> bool {
        matches!(self.outcome, Outcome::Failed { .. }) && now >= self.ready_at
    }
}

#[derive(Debug, Clone)]
struct OperationRecord {
    service: String,
    generation: u64,
    /// Set when the operation finished with the service gone (a delete).
    final_response: Option<Value>,
    metadata: Value,
}

/// What an app URL answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppResponse {
    pub status: u16,
    pub body: String,
    pub revision: Option<String>,
}

/// The whole emulated Cloud Run.
#[derive(Debug)]
pub struct World {
    config: WorldConfig,
    rng: Rng,
    services: BTreeMap<String, ServiceRecord>,
    revisions: BTreeMap<String, RevisionRecord>,
    operations: BTreeMap<String, OperationRecord>,
    /// Operation names, oldest first, to forget the oldest beyond `max_operations`.
    operation_order: VecDeque<String>,
    profiles: BTreeMap<String, Profile>,
    route_counter: u64,
    /// Per service: the traffic split in force from each moment on (revision, percent).
    splits: HashMap<String, Timeline<Vec<(String, u64)>>>,
    loads: HashMap<String, Timeline<Load>>,
    profile_history: HashMap<String, Timeline<Profile>>,
    gaps: Vec<Gap>,
    shapes: LatencyShapes,
}

impl World {
    pub fn new(config: WorldConfig) -> World {
        World {
            rng: Rng::new(config.seed),
            config,
            services: BTreeMap::new(),
            revisions: BTreeMap::new(),
            operations: BTreeMap::new(),
            operation_order: VecDeque::new(),
            profiles: BTreeMap::new(),
            route_counter: 0,
            splits: HashMap::new(),
            loads: HashMap::new(),
            profile_history: HashMap::new(),
            gaps: Vec::new(),
            shapes: LatencyShapes::default(),
        }
    }

    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    pub fn set_base_url(&mut self, base_url: String) {
        self.config.base_url = base_url;
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    // ---- profiles -------------------------------------------------------------------

    /// Sets how revisions of an image behave from `now` on (metrics for earlier minutes
    /// keep the behaviour that was in force then).
    pub fn put_profile(&mut self, profile: Profile, now: SystemTime) -> Result<(), String> {
        profile.validate()?;
        self.profile_history.entry(profile.image.clone()).or_default().set(now, profile.clone());
        self.profiles.insert(profile.image.clone(), profile);
        Ok(())
    }

    /// The profile in force for `image` at `t`; `None` means the default healthy one.
    fn profile_at(&self, image: &str, t: SystemTime) -> Option<&Profile> {
        self.profile_history.get(image)?.at(t)
    }

    // ---- traffic and metrics ----------------------------------------------------------

    /// Sets a service's request rate from `now` on.
    pub fn set_load(&mut self, service: &str, load: Load, now: SystemTime) -> Result<(), String> {
        if ServiceName::parse(service).is_none() {
            return Err(format!("service: `{service}` is not projects/P/locations/L/services/S"));
        }
        if !(load.rps.is_finite() && load.rps >= 0.0 && load.rps <= 1_000_000.0) {
            return Err(format!("rps: {} is not a request rate from 0 to 1000000", load.rps));
        }
        self.loads.entry(service.to_owned()).or_default().set(now, load);
        Ok(())
    }

    /// No metric points for revisions whose name contains `matches`, for minutes ending
    /// in `[start, end)`.
    pub fn add_gap(&mut self, matches: &str, start: SystemTime, end: SystemTime) {
        self.gaps.push(Gap { matches: matches.to_owned(), start, end });
    }

    pub fn publish_delay(&self) -> Duration {
        self.config.publish_delay
    }

    /// Every revision of `project` (services brought up to date first, so their traffic
    /// history is complete up to `now`).
    /// `service`, when given, narrows the search to services of that name (a filter on
    /// `resource.labels.service_name`), so a per-service query does not touch the others.
    pub fn revisions_in(&mut self, project: &str, service: Option<&str>, now: SystemTime) -> Vec<RevisionLabels> {
        let prefix = format!("projects/{project}/");
        let names: Vec<String> = self
            .services
            .keys()
            .filter(|k| k.starts_with(&prefix) && service.is_none_or(|s| k.ends_with(&format!("/services/{s}"))))
            .cloned()
            .collect();
        for name in &names {
            self.settle(name, now);
        }
        let revisions: Box<dyn Iterator<Item = (&String, &RevisionRecord)>> = if service.is_some() {
            Box::new(names.iter().flat_map(|n| {
                let start = format!("{n}/revisions/");
                self.revisions.range(start.clone()..).take_while(move |(k, _)| k.starts_with(&start))
            }))
        } else {
            Box::new(self.revisions.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)))
        };
        revisions
            .filter_map(|(full, r)| {
                let service = ServiceName::parse(&r.service)?;
                Some(RevisionLabels {
                    full: full.clone(),
                    project: service.project,
                    location: service.location,
                    service: service.service,
                    revision: r.short.clone(),
                })
            })
            .collect()
    }

    /// Whether a gap hides `revision`'s minute starting at `minute` (epoch seconds).
    pub fn in_gap(&self, revision: &str, minute: u64) -> bool {
        let end = at(minute + 60);
        self.gaps.iter().any(|g| revision.contains(&g.matches) && end > g.start && end <= g.end)
    }

    /// When a revision first received traffic.
    fn first_serving(&self, service: &str, short: &str) -> Option<SystemTime> {
        let history = self.splits.get(service)?;
        history.entries().iter().find(|(_, split)| split.iter().any(|(r, p)| r == short && *p > 0)).map(|(t, _)| *t)
    }

    /// The requests a revision is expected to get in the minute starting at `minute`:
    /// the service's rate times the revision's share, over each part of the minute with
    /// its own split.
    fn expected_requests(&self, service: &str, short: &str, minute: u64) -> f64 {
        let (Some(splits), Some(loads)) = (self.splits.get(service), self.loads.get(service)) else { return 0.0 };
        let (start, end) = (at(minute), at(minute + 60));
        let entries = splits.entries();
        let mut expected = 0.0;
        for (i, (from, split)) in entries.iter().enumerate() {
            let until = entries.get(i + 1).map_or(end, |(t, _)| *t);
            let (seg_start, seg_end) = ((*from).max(start), until.min(end));
            let Ok(span) = seg_end.duration_since(seg_start) else { continue };
            let Some(&(_, percent)) = split.iter().find(|(r, _)| r == short) else { continue };
            let rps = loads.at(seg_start).map_or(0.0, |l| l.rps_at(seg_start));
            expected += rps * percent as f64 / 100.0 * span.as_secs_f64();
        }
        expected
    }

    fn behaviour(&self, revision: &RevisionRecord, minute: u64) -> super::profile::Behaviour {
        let start = at(minute);
        match self.profile_at(&revision.image, start) {
            Some(profile) => {
                let elapsed =
                    self.first_serving(&revision.service, &revision.short).and_then(|f| start.duration_since(f).ok());
                profile.behaviour(elapsed)
            }
            None => super::profile::Behaviour::HEALTHY,
        }
    }

    /// A revision's request counts in the minute starting at `minute` (epoch seconds).
    pub fn minute_counts(&self, revision: &str, minute: u64) -> MinuteCounts {
        let Some(rev) = self.revisions.get(revision) else { return MinuteCounts::default() };
        let expected = self.expected_requests(&rev.service, &rev.short, minute);
        if expected <= 0.0 {
            return MinuteCounts::default();
        }
        let mut rng = minute_rng(self.config.seed, revision, minute, 1);
        draw_counts(&mut rng, expected, &self.behaviour(rev, minute))
    }

    /// A revision's request latencies in the minute starting at `minute`.
    pub fn minute_latency(&mut self, revision: &str, minute: u64) -> Option<Histogram> {
        let n = self.minute_counts(revision, minute).total();
        if n == 0 {
            return None;
        }
        let rev = self.revisions.get(revision)?;
        let behaviour = self.behaviour(rev, minute);
        let mut rng = minute_rng(self.config.seed, revision, minute, 2);
        Some(self.shapes.draw(&mut rng, n, &behaviour))
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles.values().cloned().collect()
    }

    pub fn profile(&self, image: &str) -> Profile {
        self.profiles.get(image).cloned().unwrap_or_else(|| Profile::healthy(image))
    }

    // ---- services -------------------------------------------------------------------

    /// `POST …/services?serviceId=ID`.
    pub fn create_service(
        &mut self,
        parent: &str,
        service_id: &str,
        mut body: Value,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let Some(name) = ServiceName::parse(&format!("{parent}/services/{service_id}")) else {
            return Err(ApiError::invalid("parent", format!("'{parent}' is not projects/PROJECT/locations/LOCATION")));
        };
        if !valid_id(service_id, 49) {
            return Err(ApiError::invalid(
                "service_id",
                "must be 1-49 lowercase letters, digits or '-', start with a letter and not end with '-'",
            ));
        }
        proto::normalize(&mut body, "service")?;
        let spec = input_spec(body, &name)?;
        if self.services.contains_key(&name.full()) {
            return Err(ApiError::already_exists(format!("Resource '{}' already exists.", name.full())));
        }
        let mut record = ServiceRecord {
            name: name.clone(),
            spec: Map::new(),
            uid: self.rng.uuid(),
            generation: 0,
            create_time: now,
            update_time: now,
            etag: String::new(),
            settle_at: now,
            pending_created: None,
            status: Status::default(),
            previous: None,
        };
        let planned = self.plan_write(&record, spec, true)?;
        if validate_only {
            return Ok(self.validated_operation(&mut record, planned));
        }
        self.commit(&mut record, planned, now);
        let op = self.start_operation(&record);
        self.services.insert(name.full(), record);
        Ok(op)
    }

    /// `GET …/services/S`.
    pub fn get_service(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        self.settle(name, now);
        let record = self.services.get(name).ok_or_else(|| ApiError::not_found(name))?;
        Ok(self.output(record))
    }

    /// What a reader saw before the newest write: the `staleRead` fault.
    pub fn stale_service(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        match self.services.get(name).and_then(|r| r.previous.clone()) {
            Some(previous) => Ok(previous),
            None => self.get_service(name, now),
        }
    }

    /// `GET …/services?pageSize&pageToken`.
    pub fn list_services(
        &mut self,
        parent: &str,
        page_size: Option<i64>,
        page_token: Option<&str>,
        stale: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let names = keys_under(&self.services, &format!("{parent}/services/"));
        let (page, next) = paginate(&names, page_size, page_token)?;
        let mut services = Vec::with_capacity(page.len());
        for name in page {
            services.push(if stale { self.stale_service(&name, now)? } else { self.get_service(&name, now)? });
        }
        let mut out = proto::object([("services", Value::Array(services))]);
        if let Some(next) = next {
            out["nextPageToken"] = Value::String(next);
        }
        Ok(out)
    }

    /// `PATCH …/services/S?updateMask&allowMissing&validateOnly`.
    pub fn update_service(
        &mut self,
        name: &str,
        mut body: Value,
        mask: Option<&str>,
        allow_missing: bool,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let Some(parsed) = ServiceName::parse(name) else {
            return Err(ApiError::invalid(
                "service.name",
                format!("'{name}' is not projects/P/locations/L/services/S"),
            ));
        };
        if !self.services.contains_key(name) {
            if allow_missing {
                return self.create_service(&parsed.parent(), &parsed.service, body, validate_only, now);
            }
            return Err(ApiError::not_found(name));
        }
        self.settle(name, now);
        proto::normalize(&mut body, "service")?;
        // Taken out of the map while the write is worked out (which needs `self` mutably)
        // and always put back: no copy of the record per write.
        let Some(mut record) = self.services.remove(name) else {
            return Err(ApiError::not_found(name));
        };
        let result = self.write_record(&mut record, &parsed, body, mask, validate_only, now);
        self.services.insert(name.to_owned(), record);
        result
    }

    /// [`World::update_service`] on a record already found.
    fn write_record(
        &mut self,
        record: &mut ServiceRecord,
        parsed: &ServiceName,
        body: Value,
        mask: Option<&str>,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let name = record.name.full();
        if let Some(etag) = body.get("etag").and_then(Value::as_str)
            && !etag.is_empty()
            && etag != record.etag
        {
            return Err(ApiError::aborted(format!(
                "The etag '{etag}' does not match the current etag of '{name}'; read the service again and retry."
            )));
        }
        let spec = match mask.map(str::trim).filter(|m| !m.is_empty() && *m != "*") {
            Some(mask) => masked_spec(&record.spec, body, mask)?,
            None => input_spec(body, parsed)?,
        };
        let planned = self.plan_write(record, spec, false)?;
        if validate_only {
            return Ok(self.validated_operation(record, planned));
        }
        record.previous = Some(self.output(record));
        self.commit(record, planned, now);
        Ok(self.start_operation(record))
    }

    /// `DELETE …/services/S?etag=`.
    pub fn delete_service(&mut self, name: &str, etag: Option<&str>, now: SystemTime) -> Result<Value, ApiError> {
        self.settle(name, now);
        let record = self.services.get(name).ok_or_else(|| ApiError::not_found(name))?;
        if let Some(etag) = etag.filter(|e| !e.is_empty())
            && etag != record.etag
        {
            return Err(ApiError::aborted(format!("The etag '{etag}' does not match the current etag of '{name}'.")));
        }
        let output = self.output(record);
        let record = self.services.remove(name).ok_or_else(|| ApiError::not_found(name))?;
        let prefix = format!("{name}/revisions/");
        self.revisions.retain(|k, _| !k.starts_with(&prefix));
        let op_name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        self.remember_operation(
            op_name.clone(),
            OperationRecord {
                service: name.to_owned(),
                generation: record.generation,
                final_response: Some(output.clone()),
                metadata: output.clone(),
            },
        );
        Ok(operation_json(&op_name, &output, Some(&output), None))
    }

    // ---- revisions ------------------------------------------------------------------

    /// `GET …/services/S/revisions` (S may be `-` for every service in the location).
    pub fn list_revisions(
        &mut self,
        service: &str,
        page_size: Option<i64>,
        page_token: Option<&str>,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let names = match service.strip_suffix("/services/-") {
            Some(parent) => keys_under(&self.revisions, &format!("{parent}/services/")),
            None => {
                if !self.services.contains_key(service) {
                    return Err(ApiError::not_found(service));
                }
                keys_under(&self.revisions, &format!("{service}/revisions/"))
            }
        };
        let (page, next) = paginate(&names, page_size, page_token)?;
        let revisions: Vec<Value> = page.iter().filter_map(|n| self.revision_output(n, now)).collect();
        let mut out = proto::object([("revisions", Value::Array(revisions))]);
        if let Some(next) = next {
            out["nextPageToken"] = Value::String(next);
        }
        Ok(out)
    }

    /// `GET …/revisions/R`.
    pub fn get_revision(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        self.revision_output(name, now).ok_or_else(|| ApiError::not_found(name))
    }

    /// `DELETE …/revisions/R`: refused while the revision serves traffic.
    pub fn delete_revision(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        let revision = self.revisions.get(name).ok_or_else(|| ApiError::not_found(name))?.clone();
        self.settle(&revision.service, now);
        if let Some(service) = self.services.get(&revision.service) {
            let in_spec = spec_traffic(&service.spec)
                .iter()
                .any(|t| t.get("revision").and_then(Value::as_str) == Some(&revision.short));
            let serving = service
                .status
                .traffic
                .iter()
                .any(|t| t.get("revision").and_then(Value::as_str) == Some(&revision.short));
            if in_spec || serving {
                return Err(ApiError::failed_precondition(format!(
                    "Revision '{}' cannot be deleted because it is serving traffic.",
                    revision.short
                )));
            }
        }
        let output = self.revision_output(name, now).unwrap_or(Value::Null);
        self.revisions.remove(name);
        let parent = ServiceName::parse(&revision.service).map(|n| n.parent()).unwrap_or_default();
        let op_name = format!("{parent}/operations/{}", self.rng.uuid());
        let mut op = proto::object([
            ("name", op_name.into()),
            ("done", true.into()),
            ("metadata", output.clone()),
            ("response", output),
        ]);
        op["metadata"]["@type"] = REVISION_TYPE.into();
        op["response"]["@type"] = REVISION_TYPE.into();
        Ok(op)
    }

    // ---- operations -----------------------------------------------------------------

    /// `GET …/operations/ID`: done once the service has settled at the write's generation.
    pub fn get_operation(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        let op = self.operations.get(name).cloned().ok_or_else(|| ApiError::not_found(name))?;
        if let Some(response) = &op.final_response {
            return Ok(operation_json(name, &op.metadata, Some(response), None));
        }
        self.settle(&op.service, now);
        let Some(record) = self.services.get(&op.service) else {
            return Ok(operation_json(name, &op.metadata, Some(&op.metadata), None));
        };
        if record.status.observed_generation < op.generation {
            return Ok(operation_json(name, &op.metadata, None, None));
        }
        let output = self.output(record);
        let error = (output.pointer("/terminalCondition/state").and_then(Value::as_str) == Some("CONDITION_FAILED"))
            .then(|| {
                let message = output.pointer("/terminalCondition/message").and_then(Value::as_str).unwrap_or_default();
                json!({"code": 9, "message": message})
            });
        Ok(operation_json(name, &op.metadata, Some(&output), error))
    }

    // ---- serving --------------------------------------------------------------------

    /// What `{uri}` of a service or `{tag uri}` answers: the revision the (settled) traffic
    /// split picks, answering as its image's profile says.
    pub fn route(&mut self, project: &str, location: &str, host: &str, path: &str, now: SystemTime) -> AppResponse {
        let (tag, service) = match host.split_once("---") {
            Some((tag, service)) => (Some(tag), service),
            None => (None, host),
        };
        let name = format!("projects/{project}/locations/{location}/services/{service}");
        self.settle(&name, now);
        let not_found = AppResponse { status: 404, body: "Page not found\n".to_owned(), revision: None };
        let Some(record) = self.services.get(&name) else { return not_found };
        let targets: Vec<(String, u64)> = record
            .status
            .traffic
            .iter()
            .filter(|t| tag.is_none_or(|tag| t.get("tag").and_then(Value::as_str) == Some(tag)))
            .filter_map(|t| {
                let revision = t.get("revision").and_then(Value::as_str)?.to_owned();
                let weight = if tag.is_some() { 1 } else { t.get("percent").and_then(Value::as_u64).unwrap_or(0) };
                Some((revision, weight))
            })
            .filter(|(_, w)| *w > 0)
            .collect();
        let total: u64 = targets.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return not_found;
        }
        // A deterministic weighted round robin: exact splits, no randomness to seed.
        self.route_counter = self.route_counter.wrapping_add(1);
        let mut pick = (self.route_counter.wrapping_mul(37)) % total;
        let mut chosen = &targets[0].0;
        for (revision, weight) in &targets {
            if pick < *weight {
                chosen = revision;
                break;
            }
            pick -= weight;
        }
        let full = format!("{name}/revisions/{chosen}");
        let Some(revision) = self.revisions.get(&full) else { return not_found };
        if !revision.ready(now) {
            return AppResponse {
                status: 503,
                body: "Service Unavailable\n".to_owned(),
                revision: Some(chosen.clone()),
            };
        }
        let chosen = chosen.clone();
        let minute = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() / 60 * 60;
        let behaviour = self.behaviour(revision, minute);
        // Health endpoints answer with the health status; anything else is a real request,
        // failing as often as the profile says.
        let status = if is_health_path(path) {
            behaviour.health_status
        } else {
            let draw = self.rng.unit();
            if draw < behaviour.error_rate {
                500
            } else if draw < behaviour.error_rate + behaviour.client_error_rate {
                404
            } else {
                behaviour.health_status
            }
        };
        AppResponse {
            status,
            body: format!("{{\"revision\":\"{chosen}\",\"status\":{status}}}\n"),
            revision: Some(chosen),
        }
    }

    // ---- internals ------------------------------------------------------------------

    /// Validates a write and works out what it creates, without changing anything.
    fn plan_write(
        &mut self,
        record: &ServiceRecord,
        mut spec: Map<String, Value>,
        creating: bool,
    ) -> Result<Planned, ApiError> {
        check_spec(&spec, &record.name)?;
        let service_full = record.name.full();
        let template = spec.get("template").cloned().unwrap_or(Value::Null);
        let template_changed = creating || record.spec.get("template") != Some(&template);
        let mut new_revision = None;
        if template_changed {
            let short = match template.get("revision").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                Some(pinned) => pinned.to_owned(),
                None => format!("{}-{:05}-{}", record.name.service, record.generation + 1, self.rng.letters(3)),
            };
            let full = format!("{service_full}/revisions/{short}");
            match self.revisions.get(&full) {
                Some(existing) if existing.template == template => {}
                Some(_) => {
                    return Err(ApiError::already_exists(format!(
                        "Revision named '{short}' with different configuration already exists."
                    )));
                }
                None => new_revision = Some(short),
            }
        }
        let traffic = normalize_traffic(&mut spec)?;
        let known = |short: &str| {
            new_revision.as_deref() == Some(short)
                || self.revisions.contains_key(&format!("{service_full}/revisions/{short}"))
        };
        for (i, target) in traffic.iter().enumerate() {
            if let Some(revision) = target.get("revision").and_then(Value::as_str)
                && !known(revision)
            {
                return Err(ApiError::invalid(
                    &format!("service.traffic[{i}].revision"),
                    format!("Revision '{revision}' does not exist in service '{}'.", record.name.service),
                ));
            }
        }
        Ok(Planned { spec, new_revision, template })
    }

    fn commit(&mut self, record: &mut ServiceRecord, planned: Planned, now: SystemTime) {
        record.spec = planned.spec;
        record.generation += 1;
        record.etag = format!("\"{}\"", self.rng.hex(24));
        record.update_time = now;
        record.settle_at = later(now, self.config.settle);
        if let Some(short) = planned.new_revision {
            let image =
                planned.template.pointer("/containers/0/image").and_then(Value::as_str).unwrap_or_default().to_owned();
            let profile = self.profile(&image);
            let delay = seconds(profile.ready_delay_seconds);
            let outcome = if profile.ready {
                Outcome::Ready
            } else {
                Outcome::Failed { reason: profile.fail_reason.clone(), message: profile.fail_message.clone() }
            };
            let full = format!("{}/revisions/{short}", record.name.full());
            self.revisions.insert(
                full,
                RevisionRecord {
                    short: short.clone(),
                    service: record.name.full(),
                    template: planned.template,
                    image,
                    uid: self.rng.uuid(),
                    create_time: now,
                    ready_at: later(later(now, self.config.settle), delay),
                    outcome,
                },
            );
            record.pending_created = Some(short);
        }
    }

    fn validated_operation(&mut self, record: &mut ServiceRecord, planned: Planned) -> Value {
        let mut preview = record.clone();
        preview.spec = planned.spec;
        let output = self.output(&preview);
        let name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        operation_json(&name, &output, Some(&output), None)
    }

    fn start_operation(&mut self, record: &ServiceRecord) -> Value {
        let name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        let metadata = self.output(record);
        let answer = operation_json(&name, &metadata, None, None);
        self.remember_operation(
            name,
            OperationRecord {
                service: record.name.full(),
                generation: record.generation,
                final_response: None,
                metadata,
            },
        );
        answer
    }

    fn remember_operation(&mut self, name: String, record: OperationRecord) {
        self.operation_order.push_back(name.clone());
        self.operations.insert(name, record);
        while self.operation_order.len() > self.config.max_operations.max(1) {
            if let Some(oldest) = self.operation_order.pop_front() {
                self.operations.remove(&oldest);
            }
        }
    }

    /// Brings a service's status up to date: once its settle time has passed and its
    /// newest revision has started (or failed), the status reflects the newest write.
    fn settle(&mut self, name: &str, now: SystemTime) {
        let Some(record) = self.services.get(name) else { return };
        if record.status.observed_generation >= record.generation || now < record.settle_at {
            return;
        }
        let service_full = record.name.full();
        let revision = |short: &str| self.revisions.get(&format!("{service_full}/revisions/{short}"));
        let created = record.pending_created.clone().or_else(|| record.status.latest_created.clone());
        if let Some(created) = &created
            && let Some(rev) = revision(created)
            && !rev.ready(now)
            && !rev.failed(now)
        {
            return; // still starting
        }
        // The moment the write took effect: its settle time, or when its revision started.
        let settled_at = created
            .as_deref()
            .and_then(revision)
            .filter(|r| r.create_time >= record.update_time)
            .map_or(record.settle_at, |r| r.ready_at.max(record.settle_at));
        let mut status = record.status.clone();
        status.observed_generation = record.generation;
        status.latest_created = created.clone();
        if let Some(created) = &created
            && revision(created).is_some_and(|r| r.ready(now))
        {
            status.latest_ready = Some(created.clone());
        }
        let base = &self.config.base_url;
        let traffic: Vec<Value> = spec_traffic(&record.spec)
            .iter()
            .map(|t| {
                let kind = t.get("type").and_then(Value::as_str).unwrap_or(LATEST);
                let revision = if kind == LATEST {
                    status.latest_ready.clone().unwrap_or_default()
                } else {
                    t.get("revision").and_then(Value::as_str).unwrap_or_default().to_owned()
                };
                let mut entry = json!({"type": kind, "revision": revision});
                if let Some(p) = t.get("percent").and_then(Value::as_u64).filter(|p| *p > 0) {
                    entry["percent"] = p.into();
                }
                if let Some(tag) = t.get("tag").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    entry["tag"] = tag.into();
                    entry["uri"] = format!(
                        "{base}/run/{}/{}/{tag}---{}",
                        record.name.project, record.name.location, record.name.service
                    )
                    .into();
                }
                entry
            })
            .collect();
        let failure = created
            .as_deref()
            .and_then(|c| revision(c).filter(|r| r.failed(now)).map(|r| (c.to_owned(), r.outcome.clone())))
            .map(|(c, outcome)| match outcome {
                Outcome::Failed { message, .. } => {
                    format!("Revision '{c}' is not ready and cannot serve traffic. {message}")
                }
                Outcome::Ready => String::new(),
            })
            .or_else(|| {
                traffic.iter().find_map(|t| {
                    let short = t.get("revision").and_then(Value::as_str)?;
                    let serves = t.get("percent").and_then(Value::as_u64).unwrap_or(0) > 0;
                    (serves && !revision(short).is_some_and(|r| r.ready(now)))
                        .then(|| format!("Revision '{short}' is not ready and cannot serve traffic."))
                })
            });
        let at = rfc3339(settled_at);
        let (state, message) = match &failure {
            Some(message) => ("CONDITION_FAILED", message.clone()),
            None => ("CONDITION_SUCCEEDED", String::new()),
        };
        status.terminal = json!({"type": "Ready", "state": state, "lastTransitionTime": at});
        if !message.is_empty() {
            status.terminal["message"] = message.into();
            status.terminal["severity"] = "ERROR".into();
        }
        status.conditions = vec![
            json!({"type": "RoutesReady", "state": state, "lastTransitionTime": at}),
            json!({"type": "ConfigurationsReady", "state": state, "lastTransitionTime": at}),
        ];
        let split: Vec<(String, u64)> = traffic
            .iter()
            .filter_map(|t| Some((t.get("revision")?.as_str()?.to_owned(), t.get("percent").and_then(Value::as_u64)?)))
            .collect();
        status.traffic = traffic;
        let history = self.splits.entry(name.to_owned()).or_default();
        if history.last().map(|(_, s)| s) != Some(&split) {
            let when = history.last().map_or(settled_at, |(t, _)| settled_at.max(*t));
            history.set(when, split);
        }
        if let Some(record) = self.services.get_mut(name) {
            record.status = status;
            record.pending_created = None;
        }
    }

    fn output(&self, record: &ServiceRecord) -> Value {
        let mut out = record.spec.clone();
        let name = record.name.full();
        let settled = record.status.observed_generation >= record.generation;
        let uri = format!(
            "{}/run/{}/{}/{}",
            self.config.base_url, record.name.project, record.name.location, record.name.service
        );
        out.insert("name".into(), name.clone().into());
        out.insert("uid".into(), record.uid.clone().into());
        out.insert("generation".into(), record.generation.to_string().into());
        out.insert("createTime".into(), rfc3339(record.create_time).into());
        out.insert("updateTime".into(), rfc3339(record.update_time).into());
        out.insert("creator".into(), "emulator@canary.local".into());
        out.insert("lastModifier".into(), "emulator@canary.local".into());
        out.entry("launchStage").or_insert_with(|| "GA".into());
        out.entry("ingress").or_insert_with(|| "INGRESS_TRAFFIC_ALL".into());
        out.insert("observedGeneration".into(), record.status.observed_generation.to_string().into());
        out.insert("reconciling".into(), (!settled).into());
        let terminal = if settled {
            record.status.terminal.clone()
        } else {
            json!({"type": "Ready", "state": "CONDITION_RECONCILING", "lastTransitionTime": rfc3339(record.update_time)})
        };
        out.insert("terminalCondition".into(), terminal);
        out.insert("conditions".into(), Value::Array(record.status.conditions.clone()));
        if let Some(r) = &record.status.latest_ready {
            out.insert("latestReadyRevision".into(), format!("{name}/revisions/{r}").into());
        }
        if let Some(r) = &record.status.latest_created {
            out.insert("latestCreatedRevision".into(), format!("{name}/revisions/{r}").into());
        }
        out.insert("trafficStatuses".into(), Value::Array(record.status.traffic.clone()));
        out.insert("uri".into(), uri.clone().into());
        out.insert("urls".into(), json!([uri]));
        out.insert("etag".into(), record.etag.clone().into());
        Value::Object(out)
    }

    fn revision_output(&self, name: &str, now: SystemTime) -> Option<Value> {
        let revision = self.revisions.get(name)?;
        let mut out = match &revision.template {
            Value::Object(t) => t.clone(),
            _ => Map::new(),
        };
        out.remove("revision");
        let ready = revision.ready(now);
        let mut condition = json!({"type": "Ready", "lastTransitionTime": rfc3339(revision.ready_at.min(now).max(revision.create_time))});
        condition["state"] = match &revision.outcome {
            _ if ready => "CONDITION_SUCCEEDED".into(),
            Outcome::Failed { reason, message } if now >= revision.ready_at => {
                condition["message"] = message.clone().into();
                condition["severity"] = "ERROR".into();
                if let Some(field) = proto::reason_field(reason) {
                    condition[field] = reason.clone().into();
                }
                "CONDITION_FAILED".into()
            }
            _ => "CONDITION_RECONCILING".into(),
        };
        out.insert("name".into(), name.into());
        out.insert("uid".into(), revision.uid.clone().into());
        out.insert("generation".into(), "1".into());
        out.insert("createTime".into(), rfc3339(revision.create_time).into());
        out.insert("updateTime".into(), rfc3339(revision.create_time).into());
        out.insert("launchStage".into(), "GA".into());
        out.insert("service".into(), revision.service.clone().into());
        out.insert("reconciling".into(), (!ready && !revision.failed(now)).into());
        out.insert("conditions".into(), json!([condition]));
        out.insert("observedGeneration".into(), "1".into());
        out.insert("etag".into(), format!("\"{}\"", &revision.uid[..8]).into());
        Some(Value::Object(out))
    }

    /// Loads a service that already exists, settled, with one revision at 100%: how a
    /// scenario describes the world before canary arrives.
    pub fn seed_service(&mut self, name: &ServiceName, body: Value, now: SystemTime) -> Result<(), ApiError> {
        self.create_service(&name.parent(), &name.service, body, false, now)?;
        let full = name.full();
        if let Some(record) = self.services.get_mut(&full) {
            record.settle_at = now;
        }
        if let Some(created) = self.services.get(&full).and_then(|r| r.pending_created.clone())
            && let Some(rev) = self.revisions.get_mut(&format!("{full}/revisions/{created}"))
        {
            rev.ready_at = now;
        }
        self.settle(&full, now);
        Ok(())
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }
}

struct Planned {
    spec: Map<String, Value>,
    new_revision: Option<String>,
    template: Value,
}

fn operation_json(name: &str, metadata: &Value, response: Option<&Value>, error: Option<Value>) -> Value {
    let mut op =
        proto::object([("name", name.into()), ("metadata", metadata.clone()), ("done", response.is_some().into())]);
    op["metadata"]["@type"] = SERVICE_TYPE.into();
    if let Some(error) = error {
        op["error"] = error;
    } else if let Some(response) = response {
        op["response"] = response.clone();
        op["response"]["@type"] = SERVICE_TYPE.into();
    }
    op
}

/// The client-owned part of a Service body: everything but output-only fields.
fn input_spec(body: Value, name: &ServiceName) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("service", "The request body must be a Service object."));
    };
    if let Some(given) = map.get("name").and_then(Value::as_str)
        && !given.is_empty()
        && given != name.full()
        && given != name.service
    {
        return Err(ApiError::invalid("service.name", format!("'{given}' does not match '{}'.", name.full())));
    }
    map.remove("name");
    for field in OUTPUT_ONLY {
        map.remove(field);
    }
    Ok(map)
}

/// Applies `updateMask` (comma-separated field paths) to the current spec.
fn masked_spec(current: &Map<String, Value>, body: Value, mask: &str) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid("service", "The request body must be a Service object."));
    };
    let mut spec = current.clone();
    for path in mask.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let segments: Vec<String> = path.split('.').map(proto::camel).collect();
        if segments.first().is_some_and(|s| OUTPUT_ONLY.contains(&s.as_str()) || s == "name") {
            return Err(ApiError::invalid("update_mask", format!("Field '{path}' cannot be updated.")));
        }
        let mut source = Some(&body);
        let mut value = None;
        for (i, segment) in segments.iter().enumerate() {
            let here = source.and_then(|m| m.get(segment));
            if i + 1 == segments.len() {
                value = here.cloned();
            } else {
                source = here.and_then(Value::as_object);
            }
        }
        set_path(&mut spec, &segments, value);
    }
    Ok(spec)
}

fn set_path(map: &mut Map<String, Value>, segments: &[String], value: Option<Value>) {
    let Some((last, parents)) = segments.split_last() else { return };
    let mut target = map;
    for segment in parents {
        let entry = target.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        target = next;
    }
    match value {
        Some(v) => {
            target.insert(last.clone(), v);
        }
        None => {
            target.remove(last);
        }
    }
}

fn spec_traffic(spec: &Map<String, Value>) -> Vec<Value> {
    spec.get("traffic").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Checks what the emulator interprets in a Service, with Google's field names.
fn check_spec(spec: &Map<String, Value>, name: &ServiceName) -> Result<(), ApiError> {
    for (field, value) in [("labels", spec.get("labels")), ("annotations", spec.get("annotations"))] {
        check_string_map(&format!("service.{field}"), value)?;
    }
    check_annotations("service.annotations", spec.get("annotations"))?;
    let Some(template) = spec.get("template") else {
        return Err(ApiError::invalid("service.template", "A revision template is required."));
    };
    let Some(template) = template.as_object() else {
        return Err(ApiError::invalid("service.template", "Must be an object."));
    };
    check_string_map("service.template.labels", template.get("labels"))?;
    check_string_map("service.template.annotations", template.get("annotations"))?;
    check_annotations("service.template.annotations", template.get("annotations"))?;
    if let Some(revision) = template.get("revision") {
        let Some(revision) = revision.as_str() else {
            return Err(ApiError::invalid("service.template.revision", "Must be a string."));
        };
        let prefix = format!("{}-", name.service);
        if !revision.is_empty() && (!revision.starts_with(&prefix) || !valid_id(revision, 63)) {
            return Err(ApiError::invalid(
                "service.template.revision",
                format!(
                    "Revision name '{revision}' must start with '{prefix}' and be a lowercase DNS label of at most 63 characters."
                ),
            ));
        }
    }
    let containers = template.get("containers").and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid("service.template.containers", "At least one container is required."));
    };
    for (i, container) in containers.iter().enumerate() {
        let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
        if image.trim().is_empty() {
            return Err(ApiError::invalid(&format!("service.template.containers[{i}].image"), "An image is required."));
        }
    }
    if let Some(traffic) = spec.get("traffic")
        && !traffic.is_array()
    {
        return Err(ApiError::invalid("service.traffic", "Must be a list of traffic targets."));
    }
    Ok(())
}

fn check_string_map(field: &str, value: Option<&Value>) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((key, _)) => Err(ApiError::invalid(&format!("{field}[{key}]"), "Values must be strings.")),
            None => Ok(()),
        },
        Some(_) => Err(ApiError::invalid(field, "Must be a map of strings.")),
    }
}

fn check_annotations(field: &str, value: Option<&Value>) -> Result<(), ApiError> {
    let Some(map) = value.and_then(Value::as_object) else { return Ok(()) };
    for key in map.keys() {
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| key.starts_with(*p)) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "Annotation '{key}' is not supported: the '{prefix}' namespace is reserved; use the matching API field."
                ),
            ));
        }
    }
    Ok(())
}

/// Validates traffic and writes it back in canonical form; an empty list means 100% to
/// the latest Ready revision.
fn normalize_traffic(spec: &mut Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let given = spec_traffic(spec);
    if given.is_empty() {
        let all = vec![json!({"type": LATEST, "percent": 100})];
        spec.insert("traffic".into(), Value::Array(all.clone()));
        return Ok(all);
    }
    let mut out = Vec::with_capacity(given.len());
    let mut total: u64 = 0;
    let mut tags: Vec<String> = Vec::new();
    for (i, target) in given.iter().enumerate() {
        let at = |f: &str| format!("service.traffic[{i}]{f}");
        let Some(target) = target.as_object() else {
            return Err(ApiError::invalid(&at(""), "Must be a traffic target object."));
        };
        let revision = match target.get("revision") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.is_empty() => None,
            Some(Value::String(r)) => Some(r.rsplit('/').next().unwrap_or(r).to_owned()),
            Some(_) => return Err(ApiError::invalid(&at(".revision"), "Must be a string.")),
        };
        let kind = match target.get("type").and_then(Value::as_str) {
            Some(LATEST) => LATEST,
            Some(REVISION) => REVISION,
            _ if revision.is_some() => REVISION,
            _ => LATEST,
        };
        if kind == LATEST && revision.is_some() {
            return Err(ApiError::invalid(&at(".revision"), "A LATEST traffic target must not name a revision."));
        }
        if kind == REVISION && revision.is_none() {
            return Err(ApiError::invalid(&at(".revision"), "A REVISION traffic target must name a revision."));
        }
        let percent = match target.get("percent") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_u64().filter(|p| *p <= 100).ok_or_else(|| {
                ApiError::invalid(&at(".percent"), format!("Percent must be a whole number from 0 to 100, not {n}."))
            })?,
            Some(Value::String(s)) => s.parse::<u64>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                ApiError::invalid(
                    &at(".percent"),
                    format!("Percent must be a whole number from 0 to 100, not \"{s}\"."),
                )
            })?,
            Some(_) => return Err(ApiError::invalid(&at(".percent"), "Must be a number.")),
        };
        total += percent;
        let tag = match target.get("tag") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(Value::String(t)) => {
                if !valid_id(t, 46) {
                    return Err(ApiError::invalid(&at(".tag"), format!("Tag '{t}' must be a lowercase DNS label.")));
                }
                if tags.contains(t) {
                    return Err(ApiError::invalid(&at(".tag"), format!("Tag '{t}' is used more than once.")));
                }
                tags.push(t.clone());
                Some(t.clone())
            }
            Some(_) => return Err(ApiError::invalid(&at(".tag"), "Must be a string.")),
        };
        let mut entry = json!({"type": kind});
        if let Some(r) = revision {
            entry["revision"] = r.into();
        }
        if percent > 0 {
            entry["percent"] = percent.into();
        }
        if let Some(t) = tag {
            entry["tag"] = t.into();
        }
        out.push(entry);
    }
    if total != 100 {
        return Err(ApiError::invalid(
            "service.traffic",
            format!("Traffic percentages must add up to 100, not {total}."),
        ));
    }
    spec.insert("traffic".into(), Value::Array(out.clone()));
    Ok(out)
}

/// Paths an app's health checks use.
fn is_health_path(path: &str) -> bool {
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    matches!(last, "health" | "healthz" | "ready" | "readyz" | "livez" | "ping" | "status")
}

/// A lowercase DNS-style id: letters, digits and `-`, starting with a letter.
fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One page of `names` (sorted), and the token for the next.
/// The keys of `map` that start with `prefix`, in order: a range of the sorted map, not
/// a scan of all of it (a page of 500 out of 10,000 services is read 20 times a pass).
fn keys_under<'a, V>(map: &'a BTreeMap<String, V>, prefix: &str) -> Vec<&'a str> {
    map.range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
        .map(|(k, _)| k.as_str())
        .take_while(|k| k.starts_with(prefix))
        .collect()
}

fn paginate(
    names: &[&str],
    page_size: Option<i64>,
    token: Option<&str>,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let size = match page_size {
        None | Some(0) => 100,
        Some(n) if n < 0 => return Err(ApiError::invalid("page_size", "Must not be negative.")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
    };
    let start = match token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => {
            let after = decode_token(token).ok_or_else(|| ApiError::invalid("page_token", "Invalid page token."))?;
            names.partition_point(|n| *n <= after.as_str())
        }
    };
    let page: Vec<String> = names.iter().skip(start).take(size).map(|n| (*n).to_owned()).collect();
    let next = (start + page.len() < names.len()).then(|| page.last().map(|n| encode_token(n))).flatten();
    Ok((page, next))
}

fn encode_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    String::from_utf8(bytes?).ok()
}
