//! One seed's world and its scheduler: three services canary rolls out, a fourth that
//! belongs to another team (and a manifest that names it anyway), the manifests as
//! files, and the loop of steps — reconcile rounds, time, people, chaos — then a quiet
//! phase in which every rollout must come to rest.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use canary_core::manifest::{self, CanaryRollout};
use canary_core::reconcile::{self, Mode, Shard};
use canary_core::state::{Pause, Phase, RolloutState};
use canary_emulator::Emulator;
use canary_emulator::clock::VirtualClock;
use canary_emulator::profile::Profile;
use canary_emulator::traffic::Load;
use canary_emulator::world::{ServiceName, WorldConfig};
use canary_inprocess::InProcess;
use canary_testkit::{Manifest, PROJECT, service_name};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde_json::{Value, json};

use crate::Config;
use crate::invariants::{self, Violation};
use crate::platform::{Crash, Handle, Reconciler, Shared};
use crate::trace::Trace;

/// The services canary rolls out in every seed.
pub(crate) const SERVICES: [&str; 3] = ["alpha", "beta", "gamma"];
/// How many quiet passes (a minute apart) a canary failing half its requests may keep
/// serving users: a metric gap of up to 10 minutes, the 3-minute publishing delay, and
/// a few minutes of evidence.
const FAILING_PASSES: usize = 20;
/// The other team's service.
const FOREIGN: &str = "legacy";

/// Stage plans a manifest may have (weight, hold).
pub(crate) const STAGES: [&[(u8, &str)]; 3] = [
    &[(10, "5m"), (50, "5m"), (100, "")],
    &[(5, "10m"), (100, "5m")],
    &[(25, "3m"), (50, "3m"), (75, "3m"), (100, "")],
];

/// What the sim keeps of one rollout's manifest: its file is written from this.
#[derive(Debug, Clone)]
pub(crate) struct Desired {
    pub(crate) name: String,
    pub(crate) service: String,
    pub(crate) image: String,
    pub(crate) stages: usize,
    pub(crate) threshold: &'static str,
    pub(crate) paused: bool,
    /// The manifest does not validate (a stage over 100%), name and target intact.
    pub(crate) invalid: bool,
    pub(crate) deleted: bool,
}

impl Desired {
    pub(crate) fn text(&self) -> String {
        let stages: &[(u8, &str)] = if self.invalid { &[(150, "5m"), (100, "")] } else { STAGES[self.stages] };
        let analysis = format!(
            "    interval: 1m\n    warmup: 1m\n    maxWait: 20m\n    promotion: {{minRequests: 100, maxErrorRateIncrease: 2%}}\n    rollback:\n      - {{metric: errorRate, above: {}}}\n",
            self.threshold
        );
        let mut text =
            Manifest::new(&self.name, &self.image).service(&self.service).stages(stages).analysis(&analysis).text();
        text.push_str("  smokeTests: [{path: /health}]\n");
        if self.paused {
            text.push_str("  paused: true\n");
        }
        text
    }

    /// The rollout this manifest is, when it is valid and present.
    pub(crate) fn rollout(&self) -> Option<CanaryRollout> {
        if self.deleted || self.invalid {
            return None;
        }
        let docs = manifest::document::parse(&self.text()).ok()?;
        manifest::load::validate(&docs.first()?.value).ok()
    }
}

pub(crate) struct Sim {
    pub(crate) seed: u64,
    pub(crate) world: InProcess,
    shared: Handle,
    dir: tempfile::TempDir,
    pub(crate) desired: Vec<Desired>,
    pub(crate) passes: usize,
    /// Images made so far, for fresh names.
    pub(crate) images: u32,
    /// Each service's requests per second now.
    pub(crate) loads: std::collections::BTreeMap<String, f64>,
    runtime: tokio::runtime::Runtime,
}

impl Sim {
    pub(crate) fn new(seed: u64) -> Sim {
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let world = InProcess::new(Emulator::new(
            WorldConfig { seed, ..WorldConfig::default() },
            VirtualClock::new(start, 0.0),
        ));
        let shared = Rc::new(RefCell::new(Shared {
            rng: Pcg64Mcg::seed_from_u64(seed),
            trace: Trace::default(),
            violations: Vec::new(),
            faults: false,
            previous: Default::default(),
            frozen: BTreeSet::new(),
            terrible: BTreeSet::new(),
            foreign: service_name(PROJECT, FOREIGN),
            writes: 0,
        }));
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
        let dir = tempfile::tempdir().expect("a folder for the manifests");
        Sim { seed, world, shared, dir, desired: Vec::new(), passes: 0, images: 0, loads: Default::default(), runtime }
    }

    pub(crate) fn shared(&self) -> Handle {
        self.shared.clone()
    }

    pub(crate) fn writes(&self) -> usize {
        self.shared.borrow().writes
    }

    pub(crate) fn log(&self, text: String) {
        let mut shared = self.shared.borrow_mut();
        shared.trace.at(self.world.0.now());
        shared.trace.line(text);
    }

    pub(crate) fn chance(&self, p: f64) -> bool {
        self.shared.borrow_mut().chance(p)
    }

    pub(crate) fn pick(&self, n: usize) -> usize {
        self.shared.borrow_mut().pick(n)
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes (or removes) rollout `i`'s manifest file, as a person's commit would.
    pub(crate) fn write_manifest(&mut self, i: usize) {
        let d = &self.desired[i];
        let path = self.dir.path().join(format!("{}.yaml", d.name));
        if d.deleted {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, d.text()).expect("the manifest is written");
        }
        let mut shared = self.shared.borrow_mut();
        shared.frozen = self.desired.iter().filter(|d| d.invalid && !d.deleted).map(|d| d.name.clone()).collect();
    }

    fn setup(&mut self) {
        let seed = self.seed;
        let healthy = |image: &str| json!({"image": image, "errorRate": 0.005});
        for name in SERVICES.iter().chain([&FOREIGN]) {
            let full = service_name(PROJECT, name);
            let image = format!("gcr.io/demo/{name}:v1");
            let mut body = json!({"template": {"containers": [{"image": image}]}});
            if *name == FOREIGN {
                body["annotations"] = json!({"canary/owner": "other-team", "canary/phase": "Promoted"});
            }
            let parsed = ServiceName::parse(&full).expect("a service name");
            self.world.with_world(|w, now| w.seed_service(&parsed, body, now)).expect("the service is seeded");
            self.put_profile(healthy(&image));
            let rps = 10.0 + self.pick(30) as f64;
            self.world.set_load(&full, Load { rps, daily: false }).expect("the load is set");
            self.loads.insert((*name).to_owned(), rps);
        }
        for name in SERVICES {
            let image = self.new_image(name);
            let stages = self.pick(STAGES.len());
            self.desired.push(Desired {
                name: name.to_owned(),
                service: name.to_owned(),
                image,
                stages,
                threshold: "5%",
                paused: false,
                invalid: false,
                deleted: false,
            });
        }
        // Names a service another team owns: canary must leave it alone.
        self.desired.push(Desired {
            name: "intruder".to_owned(),
            service: FOREIGN.to_owned(),
            image: "gcr.io/demo/legacy:v2".to_owned(),
            stages: 0,
            threshold: "5%",
            paused: false,
            invalid: false,
            deleted: false,
        });
        for i in 0..self.desired.len() {
            self.write_manifest(i);
        }
        self.shared.borrow_mut().faults = self.chance(0.7);
        let faults = self.shared.borrow().faults;
        self.log(format!(
            "seed {seed}: {:?}, faults {}",
            self.desired.iter().map(|d| &d.image).collect::<Vec<_>>(),
            if faults { "on" } else { "off" }
        ));
    }

    pub(crate) fn put_profile(&self, profile: Value) {
        let profile: Profile = serde_json::from_value(profile).expect("a valid profile");
        self.world.with_world(|w, now| w.put_profile(profile, now)).expect("the profile is accepted");
    }

    /// A new image for `service`, with a behaviour drawn at random.
    pub(crate) fn new_image(&mut self, service: &str) -> String {
        self.images += 1;
        let image = format!("gcr.io/demo/{service}:v{}", self.images + 1);
        let kind = self.pick(100);
        let (what, profile) = match kind {
            0..45 => ("healthy", json!({"image": image, "errorRate": 0.005})),
            45..60 => {
                self.shared.borrow_mut().terrible.insert(image.clone());
                ("failing half its requests", json!({"image": image, "errorRate": 0.5}))
            }
            60..75 => (
                "turning bad after 8m",
                json!({"image": image, "errorRate": 0.005, "changes": [{"after": "8m", "errorRate": 0.4}]}),
            ),
            75..85 => (
                "flapping",
                json!({"image": image, "errorRate": 0.005, "changes": [
                    {"after": "3m", "errorRate": 0.3}, {"after": "6m", "errorRate": 0.005},
                    {"after": "9m", "errorRate": 0.3}, {"after": "12m", "errorRate": 0.005}]}),
            ),
            85..95 => ("never Ready", json!({"image": image, "ready": false})),
            _ => ("answering 503 on /health", json!({"image": image, "errorRate": 0.005, "healthStatus": 503})),
        };
        self.put_profile(profile);
        self.log(format!("image {image}: {what}"));
        image
    }

    pub(crate) fn run(&mut self, config: &Config) {
        self.setup();
        for step in 0..config.steps {
            match self.pick(100) {
                0..45 => self.round(step),
                45..70 => {
                    let seconds = 30 + self.pick(571) as u64;
                    self.world.advance(Duration::from_secs(seconds));
                    self.log(format!("step {step}: {seconds} s pass"));
                }
                _ => crate::people::act(self, step),
            }
            self.check_world();
        }
        self.quiet(config.quiet_passes);
    }

    /// One round: one to three reconcilers, each a pass, interleaved call by call; some
    /// crash at a call chosen at random.
    fn round(&mut self, step: usize) {
        let n = match self.pick(100) {
            0..60 => 1,
            60..85 => 2,
            _ => 3,
        };
        let sharded = n >= 2 && self.chance(0.3);
        let set = manifest::load(&[self.manifests()]);
        let mut runs = Vec::new();
        for id in 0..n {
            let shard = sharded.then(|| Shard::parse(&format!("{id}/{n}")).expect("a shard"));
            let mine = |name: &str| shard.is_none_or(|s| s.owns(name));
            let rollouts: Vec<CanaryRollout> = set.valid().filter(|r| mine(&r.metadata.name)).cloned().collect();
            let invalid = reconcile::invalid_edits(&set, &rollouts, mine);
            let crash = if self.chance(0.25) {
                let at = self.pick(20);
                Some(if self.chance(0.5) { Crash::Before(at) } else { Crash::AfterWrite(at) })
            } else {
                None
            };
            runs.push((Reconciler::new(self.world.clone(), self.shared(), id, crash), rollouts, invalid, crash));
        }
        let what: Vec<String> = runs
            .iter()
            .map(|(_, r, i, crash)| {
                format!(
                    "{} rollouts + {} frozen{}",
                    r.len(),
                    i.len(),
                    crash.map(|c| format!(", {c:?}")).unwrap_or_default()
                )
            })
            .collect();
        self.log(format!(
            "step {step}: round of {n} reconciler(s){}: {what:?}",
            if sharded { " (sharded)" } else { "" }
        ));
        self.shared.borrow_mut().trace.at(self.world.0.now());
        let passes = runs.iter().map(|(platform, rollouts, invalid, _)| {
            reconcile::pass_with_invalid(platform, rollouts, invalid, Mode::Apply)
        });
        let outcomes = self.runtime.block_on(futures_util::future::join_all(passes));
        self.passes += n;
        for (platform, ..) in &runs {
            self.check_monitoring_calls(platform);
        }
        for ((platform, ..), outcomes) in runs.iter().zip(&outcomes) {
            if platform.crashed() {
                continue;
            }
            for o in outcomes {
                if let Some(plan) = &o.plan
                    && plan.action != canary_core::decide::Action::None
                {
                    self.log(format!("    {}: → {} {:?}: {}", o.name, plan.phase_after, plan.action, plan.reason));
                }
                if let Some(e) = &o.error {
                    self.log(format!("    {}: error {}", o.name, o.error_text().unwrap_or_else(|| format!("{e:?}"))));
                }
            }
        }
    }

    /// A pass reads each project's metrics in a bounded number of queries, however many
    /// rollouts it judges and however long their holds (the read quota is per project).
    fn check_monitoring_calls(&mut self, platform: &Reconciler) {
        let bound = canary_core::analysis::observations::MAX_QUERIES_PER_PROJECT;
        for (project, calls) in platform.monitoring_calls() {
            if calls > bound {
                let v = Violation {
                    invariant: "monitoring_calls_are_bounded",
                    message: format!("a pass made {calls} timeSeries.list calls for {project}, more than {bound}"),
                };
                self.shared.borrow_mut().violate(v);
            }
        }
    }

    /// Rules about the world as a whole, after every step.
    fn check_world(&mut self) {
        let mut found: Vec<Violation> = Vec::new();
        for name in SERVICES {
            let full = service_name(PROJECT, name);
            let revisions = self
                .world
                .with_world(|w, now| w.list_revisions(&full, Some(1000), None, now))
                .map(|mut v| v["revisions"].take())
                .unwrap_or_default();
            if let Some(v) =
                invariants::one_revision_per_template(&full, revisions.as_array().map_or(&[][..], Vec::as_slice))
            {
                found.push(v);
            }
        }
        let mut shared = self.shared.borrow_mut();
        for v in found {
            if !shared.violations.contains(&v) {
                shared.violate(v);
            }
        }
    }

    pub(crate) fn state(&self, service: &str) -> (RolloutState, Value) {
        let full = service_name(PROJECT, service);
        let raw = self.world.with_world(|w, now| w.get_service(&full, now)).unwrap_or(Value::Null);
        (RolloutState::read(&invariants::annotations(&raw)), raw)
    }

    /// Whether rollout `d` has come to rest: nothing more will happen without a person.
    fn at_rest(&self, d: &Desired) -> Result<(), String> {
        let (state, _) = self.state(&d.service);
        if d.deleted || d.invalid || state.owner.as_deref() != Some(d.name.as_str()) {
            return Ok(());
        }
        let rejected = state.rejected.contains(&d.image);
        if d.paused && !matches!(state.phase, Some(Phase::Progressing | Phase::Waiting)) {
            // `spec.paused` holds it wherever it is (in those two it must say Paused).
            return Ok(());
        }
        match (state.phase, state.pause) {
            (Some(Phase::Promoted | Phase::RolledBack | Phase::Failed), _) => Ok(()),
            (Some(Phase::Paused), Some(Pause::Spec)) if d.paused => Ok(()),
            (Some(Phase::Paused), Some(Pause::Frozen | Pause::Spec)) => {
                Err(format!("{}: paused by a manifest that no longer holds it: {}", d.name, state.reason))
            }
            (Some(Phase::Paused), _) => Ok(()),
            // Unreadable (a hand edit) and the image rejected: canary waits for a new one.
            (None | Some(Phase::Pending), _) if rejected => Ok(()),
            (phase, pause) => Err(format!("{}: {phase:?} ({pause:?}): {}", d.name, state.reason)),
        }
    }

    /// People and faults stop; one reconciler runs a pass a minute until every rollout
    /// rests (three passes in a row), within `passes`. A canary failing half its
    /// requests must lose its traffic within a bounded number of passes.
    fn quiet(&mut self, passes: usize) {
        self.shared.borrow_mut().faults = false;
        self.log("quiet: no more faults or people".to_owned());
        let mut rested = 0;
        let mut failing_with_traffic = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..passes {
            self.world.advance(Duration::from_secs(60));
            self.round_quiet();
            let terrible = self.shared.borrow().terrible.clone();
            for d in self.desired.clone() {
                let (state, raw) = self.state(&d.service);
                let image = raw["annotations"]["canary/image"].as_str().unwrap_or_default().to_owned();
                let canary_serves = state.canary.as_ref().is_some_and(|c| {
                    raw["trafficStatuses"].as_array().is_some_and(|l| {
                        l.iter().any(|t| {
                            t["revision"].as_str().is_some_and(|r| r.ends_with(c.as_str()))
                                && t["percent"].as_u64().unwrap_or(0) > 0
                        })
                    })
                });
                let in_progress = matches!(state.phase, Some(Phase::Progressing | Phase::Waiting | Phase::Paused));
                let count = failing_with_traffic.entry(d.name.clone()).or_default();
                let users = self.loads.get(&d.service).is_some_and(|rps| *rps > 0.0);
                // A deleted manifest stops management and leaves traffic as it is (README).
                if terrible.contains(&image) && in_progress && canary_serves && users && !d.deleted {
                    *count += 1;
                    // A metric gap (up to 10 minutes) and the publishing delay come first.
                    if *count == FAILING_PASSES {
                        let v = Violation {
                            invariant: "failing_canaries_lose_their_traffic",
                            message: format!(
                                "{}: {image} fails half its requests and still serves after {FAILING_PASSES} passes ({:?}: {})",
                                d.name, state.phase, state.reason
                            ),
                        };
                        self.shared.borrow_mut().violate(v);
                    }
                } else {
                    *count = 0;
                }
            }
            let all = self.desired.iter().all(|d| self.at_rest(d).is_ok());
            rested = if all { rested + 1 } else { 0 };
            if rested >= 3 {
                self.log("quiet: every rollout rests".to_owned());
                return;
            }
        }
        let restless: Vec<String> = self.desired.iter().filter_map(|d| self.at_rest(d).err()).collect();
        let v = Violation {
            invariant: "rollouts_come_to_rest",
            message: format!("after {passes} quiet passes: {}", restless.join("; ")),
        };
        self.shared.borrow_mut().violate(v);
    }

    fn round_quiet(&mut self) {
        let set = manifest::load(&[self.manifests()]);
        let rollouts: Vec<CanaryRollout> = set.valid().cloned().collect();
        let invalid = reconcile::invalid_edits(&set, &rollouts, |_| true);
        let platform = Reconciler::new(self.world.clone(), self.shared(), 0, None);
        self.shared.borrow_mut().trace.at(self.world.0.now());
        let outcomes = self.runtime.block_on(reconcile::pass_with_invalid(&platform, &rollouts, &invalid, Mode::Apply));
        self.passes += 1;
        self.check_monitoring_calls(&platform);
        for o in &outcomes {
            if let Some(plan) = &o.plan
                && plan.action != canary_core::decide::Action::None
            {
                self.log(format!("    {}: → {} {:?}: {}", o.name, plan.phase_after, plan.action, plan.reason));
            }
            if let Some(text) = o.error_text() {
                self.log(format!("    {}: error {text}", o.name));
            }
        }
    }
}
