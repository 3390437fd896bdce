//! The emulated Cloud Run world: services, revisions and long-running operations, with
//! Cloud Run's semantics (generations, etags, reconciliation that settles after a
//! delay, revisions only from template changes, traffic rules). Every method takes the
//! time as an argument: the world never reads a clock, so tests drive it exactly.
//!
//! Services are kept as the JSON their clients wrote (minus output-only fields), so
//! fields the emulator does not interpret — VPC access, volumes, secrets, probes,
//! anything newer than this code — survive every round trip.

mod cells;
mod metrics;
mod operations;
mod paging;
mod revisions;
mod services;
mod serving;
mod validation;

use operations::*;
use paging::*;
use services::*;
use validation::*;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use std::collections::HashMap;

use super::api_error::ApiError;
use super::clock::{later, rfc3339, seconds};
use super::conditions::{Conditions, MinuteContext};
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

/// A revision as Cloud Monitoring labels it: its full name, and its monitored
/// resource's labels (made once, with the revision, and shared by every answer's series).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RevisionLabels {
    pub(crate) full: String,
    pub(crate) resource: std::sync::Arc<BTreeMap<String, String>>,
}

impl RevisionLabels {
    fn new(service: &ServiceName, short: &str) -> RevisionLabels {
        let resource = BTreeMap::from([
            ("project_id".to_owned(), service.project.clone()),
            ("service_name".to_owned(), service.service.clone()),
            ("revision_name".to_owned(), short.to_owned()),
            ("location".to_owned(), service.location.clone()),
            ("configuration_name".to_owned(), service.service.clone()),
        ]);
        RevisionLabels { full: format!("{}/revisions/{short}", service.full()), resource: resource.into() }
    }
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
    pub(crate) project: String,
    pub(crate) location: String,
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

    pub(crate) fn parent(&self) -> String {
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
    labels: std::sync::Arc<RevisionLabels>,
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
    pub(crate) revision: Option<String>,
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
    conditions: HashMap<String, Timeline<Conditions>>,
    profile_history: HashMap<String, Timeline<Profile>>,
    gaps: Vec<Gap>,
    shapes: LatencyShapes,
    /// Per revision: the sums of its published hours and 10 minutes, by (start, length)
    /// (`cells.rs`).
    cells: HashMap<String, BTreeMap<(u64, u64), cells::Cell>>,
    /// Paged Monitoring answers whose later pages are still to be read.
    pub(crate) cursors: crate::monitoring::Cursors,
}

impl World {
    pub(crate) fn new(config: WorldConfig) -> World {
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
            conditions: HashMap::new(),
            profile_history: HashMap::new(),
            gaps: Vec::new(),
            shapes: LatencyShapes::default(),
            cells: HashMap::new(),
            cursors: crate::monitoring::Cursors::default(),
        }
    }

    pub(crate) fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}
