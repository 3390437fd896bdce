//! One reconciler as the simulation runs it: canary's platform traits over the emulator's
//! world, with the scheduler's hand on every call. Before each call the reconciler may
//! yield to the others (so two or three passes interleave call by call), crash (every
//! later call of its pass fails, as a dead process makes none), or meet a fault: 429 or
//! 503 before a write, a 500 after the write happened, a competing writer (the etag
//! goes stale), a stale read, a Monitoring error, a smoke test with no answer. Every
//! write that lands is handed to the invariants with the service as it was before.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use canary_core::analysis::wire::TimeSeries;
use canary_core::cloudrun::service::ServiceView;
use canary_core::platform::{Clock, CloudRun, Monitoring, Probe, ProbeAnswer, Prober};
use canary_core::transport::ApiFailure;
use canary_inprocess::InProcess;
use rand::RngExt;
use rand_pcg::Pcg64Mcg;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::invariants::{self, Violation};
use crate::trace::Trace;

/// What every reconciler, person and check of one seed shares.
pub(crate) struct Shared {
    pub(crate) rng: Pcg64Mcg,
    pub(crate) trace: Trace,
    pub(crate) violations: Vec<Violation>,
    /// Faults (and stale reads) are served only while this is on.
    pub(crate) faults: bool,
    /// Each service's version before its newest write: what a stale read answers.
    pub(crate) previous: HashMap<String, Value>,
    /// Rollouts whose manifest is invalid now (frozen).
    pub(crate) frozen: BTreeSet<String>,
    /// Images so bad that no rollout may promote them unless a person asks.
    pub(crate) terrible: BTreeSet<String>,
    /// A service no rollout owns: canary must never write it.
    pub(crate) foreign: String,
    /// canary's writes that landed.
    pub(crate) writes: usize,
}

pub(crate) type Handle = Rc<RefCell<Shared>>;

impl Shared {
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub(crate) fn pick(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.rng.random_range(0..n) }
    }

    /// Records a broken rule, in the trace and among the seed's violations.
    pub(crate) fn violate(&mut self, v: Violation) {
        self.trace.line(format!("VIOLATION {}: {}", v.invariant, v.message));
        self.violations.push(v);
    }
}

/// Where a reconciler's pass dies, by the index of its API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    /// Before the call is made.
    Before(usize),
    /// After a write was applied, before its answer is read (a read just dies).
    AfterWrite(usize),
}

/// One reconciler process, for one pass.
pub(crate) struct Reconciler {
    world: InProcess,
    shared: Handle,
    id: usize,
    crash: Option<Crash>,
    calls: Cell<usize>,
    crashed: Cell<bool>,
    /// `timeSeries.list` calls made, by project.
    monitoring: RefCell<BTreeMap<String, usize>>,
}

fn failure(method: &str, path: &str, status: u16, code: &str, message: &str) -> ApiFailure {
    ApiFailure {
        method: method.to_owned(),
        path: path.to_owned(),
        status: Some(status),
        code: code.to_owned(),
        message: message.to_owned(),
        retry_after: (status == 429 || status == 503).then_some(Duration::from_secs(1)),
    }
}

fn dead(method: &str, path: &str) -> ApiFailure {
    ApiFailure {
        method: method.to_owned(),
        path: path.to_owned(),
        status: None,
        code: "CRASHED".to_owned(),
        message: "the reconciler crashed".to_owned(),
        retry_after: None,
    }
}

impl Reconciler {
    pub(crate) fn new(world: InProcess, shared: Handle, id: usize, crash: Option<Crash>) -> Reconciler {
        Reconciler {
            world,
            shared,
            id,
            crash,
            calls: Cell::new(0),
            crashed: Cell::new(false),
            monitoring: RefCell::default(),
        }
    }

    pub(crate) fn crashed(&self) -> bool {
        self.crashed.get()
    }

    /// The `timeSeries.list` calls this pass made, by project.
    pub(crate) fn monitoring_calls(&self) -> BTreeMap<String, usize> {
        self.monitoring.borrow().clone()
    }

    fn note(&self, line: String) {
        self.shared.borrow_mut().trace.call(self.id, line);
    }

    /// The scheduler's turn before a call: yield to the other reconcilers a few times,
    /// then die here if this is where the pass crashes. Returns the call's index.
    async fn turn(&self, method: &str, path: &str) -> Result<usize, ApiFailure> {
        let yields = self.shared.borrow_mut().pick(3);
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        if self.crashed.get() {
            return Err(dead(method, path));
        }
        let index = self.calls.get();
        self.calls.set(index + 1);
        if self.crash == Some(Crash::Before(index)) {
            self.crashed.set(true);
            self.note(format!("CRASH before call {index}: {method} {path}"));
            return Err(dead(method, path));
        }
        Ok(index)
    }

    /// A fault for this call, if the dice say so (and faults are on).
    fn roll(&self, p: f64) -> bool {
        let mut shared = self.shared.borrow_mut();
        shared.faults && shared.chance(p)
    }

    /// A read's answer, once the call returns: a crash after it is a crash before the
    /// next call, as far as the world can tell.
    fn after_read(&self, index: usize) {
        if self.crash == Some(Crash::AfterWrite(index)) {
            self.crashed.set(true);
        }
    }

    fn stale(&self, name: &str) -> Option<Value> {
        if !self.roll(0.05) {
            return None;
        }
        self.shared.borrow().previous.get(name).cloned()
    }
}

/// The service's short name, for the trace.
pub(crate) fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

impl CloudRun for Reconciler {
    async fn list_services(&self, project: &str, region: &str) -> Result<Vec<Box<RawValue>>, ApiFailure> {
        let path = format!("projects/{project}/locations/{region}/services");
        let index = self.turn("LIST", &path).await?;
        if self.roll(0.03) {
            self.note(format!("LIST {project}/{region} → 503"));
            return Err(failure("GET", &path, 503, "UNAVAILABLE", "the service is unavailable"));
        }
        let mut services = self.world.list_services(project, region).await?;
        for service in &mut services {
            let name = ServiceView::read(service.clone()).name;
            if let Some(old) = self.stale(&name)
                && let Ok(old) = serde_json::value::to_raw_value(&old)
            {
                self.note(format!("LIST: stale {}", short(&name)));
                *service = old;
            }
        }
        self.after_read(index);
        Ok(services)
    }

    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure> {
        let index = self.turn("GET", name).await?;
        if self.roll(0.03) {
            self.note(format!("GET {} → 503", short(name)));
            return Err(failure("GET", name, 503, "UNAVAILABLE", "the service is unavailable"));
        }
        let answer = match self.stale(name) {
            Some(old) => {
                self.note(format!("GET {} → stale", short(name)));
                Some(old)
            }
            None => self.world.get_service(name).await?,
        };
        self.after_read(index);
        Ok(answer)
    }

    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure> {
        let name = service["name"].as_str().unwrap_or_default().to_owned();
        let index = self.turn("PATCH", &name).await?;
        let who = short(&name).to_owned();
        if self.roll(0.03) {
            self.note(format!("PATCH {who} → 429 (not applied)"));
            return Err(failure("PATCH", &name, 429, "RESOURCE_EXHAUSTED", "quota exceeded"));
        }
        if self.roll(0.03) {
            // Someone else writes first: canary's etag is now stale.
            let bumped = self.world.with_world(|w, now| {
                let mut current = w.get_service(&name, now)?;
                current["labels"]["touched-by"] = "someone-else".into();
                w.update_service(&name, current, None, false, false, now)
            });
            if bumped.is_ok() {
                self.note(format!("PATCH {who}: another writer got there first"));
            }
        }
        let before = self.world.with_world(|w, now| w.get_service(&name, now).map(|s| (s, now)));
        let answer = self.world.patch_service(service).await;
        match (&answer, before) {
            (Ok(()), Ok((before, now))) => {
                let mut shared = self.shared.borrow_mut();
                shared.writes += 1;
                let found = invariants::check_write(&shared, &before, service, now);
                let phase = service["annotations"]["canary/phase"].as_str().unwrap_or("-").to_owned();
                let reason = service["annotations"]["canary/reason"].as_str().unwrap_or_default().to_owned();
                shared.trace.call(self.id, format!("PATCH {who} → ok: {phase}: {reason}"));
                found.into_iter().for_each(|v| shared.violate(v));
                shared.previous.insert(name.clone(), before);
            }
            (Err(e), _) => self.note(format!("PATCH {who} → {} {}: {}", e.status.unwrap_or(0), e.code, e.message)),
            (Ok(()), Err(_)) => {}
        }
        if answer.is_ok() && self.crash == Some(Crash::AfterWrite(index)) {
            self.crashed.set(true);
            self.note(format!("CRASH after the write to {who} landed, before its answer was read"));
            return Err(dead("PATCH", &name));
        }
        if answer.is_ok() && self.roll(0.03) {
            self.note(format!("PATCH {who}: applied, answered 500"));
            return Err(failure("PATCH", &name, 500, "INTERNAL", "internal error"));
        }
        answer
    }
}

impl Monitoring for Reconciler {
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure> {
        let path = format!("projects/{project}/timeSeries");
        *self.monitoring.borrow_mut().entry(project.to_owned()).or_default() += 1;
        let index = self.turn("GET", &path).await?;
        if self.roll(0.04) {
            self.note("timeSeries → 503".to_owned());
            return Err(failure("GET", &path, 503, "UNAVAILABLE", "the service is unavailable"));
        }
        let answer = self.world.time_series(project, query).await;
        self.after_read(index);
        answer.map(|series| series.into_iter().for_each(each))
    }
}

impl Clock for Reconciler {
    async fn now(&self) -> Result<SystemTime, ApiFailure> {
        let index = self.turn("GET", "clock").await?;
        let now = self.world.now().await;
        self.after_read(index);
        now
    }
}

impl Prober for Reconciler {
    async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        if self.turn("PROBE", &probe.url).await.is_err() {
            return ProbeAnswer::NoAnswer("the reconciler crashed".to_owned());
        }
        if self.roll(0.02) {
            self.note("smoke test: no answer".to_owned());
            return ProbeAnswer::NoAnswer("connection reset".to_owned());
        }
        self.world.probe(probe).await
    }
}
