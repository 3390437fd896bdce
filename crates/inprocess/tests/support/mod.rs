//! Shared setup for the in-process integration tests: a world on a stepped clock with
//! services seeded in it, manifests built in code, and [`Meddler`], a platform that
//! forwards to the world but can meddle with canary's writes (a competing writer, a
//! write that answers OK and does not land, a failing call).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use canary_core::analysis::wire::TimeSeries;
use canary_core::cloudrun::service::ServiceView;
use canary_core::manifest::CanaryRollout;
use canary_core::platform::{Clock, CloudRun, Monitoring, Probe, ProbeAnswer, Prober};
use canary_core::reconcile::{Mode, RolloutOutcome, pass};
use canary_core::state::{Phase, RolloutState};
use canary_core::transport::ApiFailure;
use canary_emulator::Emulator;
use canary_emulator::clock::VirtualClock;
use canary_emulator::profile::Profile;
use canary_emulator::traffic::Load;
use canary_emulator::world::{ServiceName, WorldConfig};
use canary_inprocess::InProcess;
use serde_json::{Value, json};

pub use canary_testkit::{PROJECT, REGION};
/// The image every seeded service runs before canary arrives.
pub const V1: &str = "gcr.io/demo/app:v1";

pub use canary_testkit::{Manifest, service_name};

/// An emulator world on a stepped clock (it moves only when [`Fixture::advance`]d), seen
/// as canary's platform in this process.
pub struct Fixture {
    pub platform: InProcess,
}

impl Fixture {
    pub fn new(seed: u64) -> Fixture {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        Fixture {
            platform: InProcess::new(Emulator::new(
                WorldConfig { seed, ..WorldConfig::default() },
                VirtualClock::new(start, 0.0),
            )),
        }
    }

    /// Seeds `service` in [`PROJECT`], settled, running [`V1`] at 100%, serving `rps`;
    /// returns its full name.
    pub fn service(&self, service: &str, rps: f64) -> String {
        self.service_in(PROJECT, service, rps)
    }

    pub fn service_in(&self, project: &str, service: &str, rps: f64) -> String {
        let full = service_name(project, service);
        let name = ServiceName::parse(&full).expect("a service name");
        self.platform
            .with_world(|w, now| w.seed_service(&name, json!({"template": {"containers": [{"image": V1}]}}), now))
            .expect("the service is seeded");
        self.platform.set_load(&full, Load { rps, daily: false }).expect("the load is set");
        full
    }

    /// Revisions of `image` answer `error_rate` of their requests with a 5xx from now on.
    pub fn error_rate(&self, image: &str, error_rate: f64) {
        let profile = Profile { error_rate, ..Profile::healthy(image) };
        self.platform.with_world(|w, now| w.put_profile(profile, now)).expect("the profile is valid");
    }

    pub fn advance(&self, seconds: u64) -> SystemTime {
        self.platform.advance(Duration::from_secs(seconds))
    }

    pub fn now(&self) -> SystemTime {
        self.platform.0.now()
    }

    /// The service as Cloud Run answers for it now.
    pub fn read(&self, name: &str) -> Value {
        self.platform.with_world(|w, now| w.get_service(name, now)).expect("the service exists")
    }

    pub fn annotations(&self, name: &str) -> BTreeMap<String, String> {
        ServiceView::parse(self.read(name)).annotations
    }

    pub fn annotation(&self, name: &str, key: &str) -> Option<String> {
        self.annotations(name).get(key).cloned()
    }

    pub fn state(&self, name: &str) -> RolloutState {
        RolloutState::read(&self.annotations(name))
    }

    /// Where traffic goes now (`trafficStatuses`), by revision.
    pub fn serving(&self, name: &str) -> BTreeMap<String, u32> {
        ServiceView::parse(self.read(name)).split()
    }

    /// One pass in Apply mode, on the plain platform.
    pub async fn pass(&self, rollouts: &[CanaryRollout]) -> Vec<RolloutOutcome> {
        pass(&self.platform, rollouts, Mode::Apply).await
    }

    /// Drives every rollout from adoption to holding its first stage: a pass deploys
    /// the canary at 0%, the next (once the revision is ready) gives it the stage's weight.
    pub async fn to_first_stage(&self, rollouts: &[CanaryRollout]) {
        for _ in 0..5 {
            let outcomes = self.pass(rollouts).await;
            for o in &outcomes {
                assert!(o.error.is_none(), "{}: {:?}", o.name, o.error);
            }
            let holding = outcomes
                .iter()
                .all(|o| o.plan.as_ref().is_some_and(|p| p.phase_after == Phase::Progressing && p.state.stage == 1));
            if holding {
                return;
            }
            self.advance(15);
        }
        panic!("the rollouts did not reach their first stage");
    }
}

/// This suite's manifest: rollout `name` of service `name` to `gcr.io/demo/NAME:v2`, in
/// stages 10% (20m), 50% (20m), 100%, with no gates and no triggers (the workspace's one
/// builder, `canary_testkit::Manifest`, with this suite's defaults).
pub fn manifest(name: &str) -> Manifest {
    Manifest::new(name, &format!("gcr.io/demo/{name}:v2")).stages(&[(10, "20m"), (50, "20m"), (100, "")])
}

/// The rollout `manifest` describes, validated as canary validates one; panics with the
/// findings when it is not valid.
pub fn build(manifest: &Manifest) -> CanaryRollout {
    let text = manifest.text();
    validate(&text).unwrap_or_else(|findings| panic!("{findings}\n{text}"))
}

/// Parses and validates one manifest document; the findings, as text, when it is invalid.
pub fn validate(text: &str) -> Result<CanaryRollout, String> {
    let docs = canary_core::manifest::document::parse(text).map_err(|e| format!("{e:?}"))?;
    canary_core::manifest::load::validate(&docs[0].value).map_err(|findings| format!("{findings:?}"))
}

/// What [`Meddler`] does with one of canary's writes.
pub enum Patch {
    /// Hands it to the world as it is.
    Forward,
    /// Another writer edits the service through the world first (read, `edit`, write
    /// with the current etag), then canary's write goes to the world — with the etag
    /// canary read, now stale.
    CompeteFirst(Box<dyn FnOnce(&mut Value)>),
    /// Answers OK and applies nothing.
    SwallowOk,
    /// Writes the body as changed by `mangle` instead, and answers as the world does.
    Mangle(Box<dyn FnOnce(&mut Value)>),
    /// Answers with this failure and applies nothing.
    Fail(ApiFailure),
}

/// A write canary made through [`Meddler`], and what it was answered.
#[derive(Debug, Clone)]
pub struct PatchCall {
    pub body: Value,
    pub answer: Result<(), ApiFailure>,
}

type OnPatch = Box<dyn FnMut(usize, &Value) -> Patch>;
type OnList = Box<dyn Fn(&str, &str) -> Option<ApiFailure>>;

/// The emulator as canary's platform, with a hook on every write (given its index,
/// from 0, and the body canary sent) and on every list of services. Monitoring, the
/// clock, the prober and reads go straight to the world.
pub struct Meddler {
    inner: InProcess,
    on_patch: Mutex<OnPatch>,
    on_list: OnList,
    calls: Mutex<Vec<PatchCall>>,
}

impl Meddler {
    pub fn new(fixture: &Fixture, on_patch: impl FnMut(usize, &Value) -> Patch + 'static) -> Meddler {
        Meddler {
            inner: fixture.platform.clone(),
            on_patch: Mutex::new(Box::new(on_patch)),
            on_list: Box::new(|_, _| None),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Lists of services in a project/region answer `on_list`'s failure when it gives one.
    pub fn on_list(mut self, on_list: impl Fn(&str, &str) -> Option<ApiFailure> + 'static) -> Meddler {
        self.on_list = Box::new(on_list);
        self
    }

    /// Every write canary made, in order.
    pub fn calls(&self) -> Vec<PatchCall> {
        self.calls.lock().unwrap().clone()
    }

    /// The writes canary made to service `name`.
    pub fn calls_to(&self, name: &str) -> Vec<PatchCall> {
        self.calls().into_iter().filter(|c| c.body["name"] == name).collect()
    }
}

/// An edit by another writer: sets label `key` to `value`.
pub fn labelled(key: &'static str, value: &'static str) -> Box<dyn FnOnce(&mut Value)> {
    Box::new(move |service: &mut Value| {
        service["labels"][key] = value.into();
    })
}

/// A failure as the platform reports it.
pub fn failure(status: u16, code: &str, message: &str) -> ApiFailure {
    ApiFailure {
        method: "PATCH".into(),
        path: "test".into(),
        status: Some(status),
        code: code.into(),
        message: message.into(),
        retry_after: None,
    }
}

impl CloudRun for Meddler {
    async fn list_services(
        &self,
        project: &str,
        region: &str,
    ) -> Result<Vec<Box<serde_json::value::RawValue>>, ApiFailure> {
        match (self.on_list)(project, region) {
            Some(failure) => Err(failure),
            None => self.inner.list_services(project, region).await,
        }
    }

    async fn get_service(&self, name: &str) -> Result<Option<Value>, ApiFailure> {
        self.inner.get_service(name).await
    }

    async fn patch_service(&self, service: &Value) -> Result<(), ApiFailure> {
        let index = self.calls.lock().unwrap().len();
        let what = (self.on_patch.lock().unwrap())(index, service);
        let answer = match what {
            Patch::Forward => self.inner.patch_service(service).await,
            Patch::CompeteFirst(edit) => {
                let name = service["name"].as_str().unwrap_or_default().to_owned();
                self.inner
                    .with_world(|w, now| {
                        let mut current = w.get_service(&name, now)?;
                        edit(&mut current);
                        w.update_service(&name, current, None, false, false, now)
                    })
                    .expect("the other writer's write lands");
                self.inner.patch_service(service).await
            }
            Patch::SwallowOk => Ok(()),
            Patch::Mangle(mangle) => {
                let mut body = service.clone();
                mangle(&mut body);
                self.inner.patch_service(&body).await
            }
            Patch::Fail(failure) => Err(failure),
        };
        self.calls.lock().unwrap().push(PatchCall { body: service.clone(), answer: answer.clone() });
        answer
    }
}

impl Monitoring for Meddler {
    async fn time_series_each(
        &self,
        project: &str,
        query: &[(String, String)],
        each: &mut (dyn FnMut(TimeSeries) + Send),
    ) -> Result<(), ApiFailure> {
        self.inner.time_series_each(project, query, each).await
    }
}

impl Clock for Meddler {
    async fn now(&self) -> Result<SystemTime, ApiFailure> {
        self.inner.now().await
    }
}

impl Prober for Meddler {
    async fn probe(&self, probe: &Probe) -> ProbeAnswer {
        self.inner.probe(probe).await
    }
}
