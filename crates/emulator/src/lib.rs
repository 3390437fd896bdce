//! A local, wire-compatible stand-in for the parts of Cloud Run Admin API v2 that
//! canary uses, so canary can be run, demonstrated and tested end to end over real
//! HTTP with no cloud account.
//!
//! The core — [`world::World`] (services, revisions, operations), [`clock::VirtualClock`] and
//! `faults::FaultPlan` — is a library that tests drive in-process and
//! deterministically from a seed; [`http`] is a thin axum layer on top; [`serve`] runs
//! it as `canary emulator`.
//!
//! # Public API, on purpose
//!
//! Everything is `pub(crate)` unless another crate of the workspace uses it:
//!
//! - the binary (src/): [`serve`] with [`ServeOptions`] and [`ServeError`] for
//!   `canary emulator`, and [`embedded`] for `canary demo`;
//! - canary-inprocess and its tests, which answer canary-core's platform traits from
//!   the world in-process: [`Emulator`], [`world`] ([`world::World`]'s service and
//!   profile calls, [`world::ServiceName`], [`world::WorldConfig`]), [`clock`],
//!   [`traffic::Load`], [`monitoring::list`] with [`monitoring::Query`],
//!   [`api_error::ApiError`] and [`profile::Profile`];
//! - benches/, which drive the world and serve it themselves: [`Emulator`],
//!   [`http::router`], [`world`], [`clock`], [`traffic::Load`] and [`monitoring`];
//! - tests/cli, which reads the emulator's timestamps: [`clock::parse_rfc3339`];
//! - examples/judge_eval.rs, which draws traffic from the emulator's model:
//!   [`profile::Behaviour`] and [`traffic`]'s `minute_rng`, `draw_counts` and
//!   `LatencyShapes`;
//! - canary-core's unit tests (a dev-dependency), which check its statistics against
//!   the emulator's sampler: [`ids::Rng`] and [`sampling::binomial`].
//!
//! Two types are `pub` inside a private module: `histogram::Histogram` (what
//! `LatencyShapes::draw` returns; judge_eval reads it with `to_wire`) and
//! `scenario::ScenarioError` (inside [`ServeError`]). They appear in public
//! signatures, but no other crate names them. `faults`, `histogram`, `proto` and
//! `scenario` are private modules.

pub mod api_error;
pub mod clock;
pub mod conditions;
mod faults;
mod histogram;
pub mod http;
pub mod ids;
pub mod monitoring;
pub mod profile;
mod proto;
pub mod sampling;
mod scenario;
pub mod traffic;
pub mod world;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use self::clock::VirtualClock;
use self::faults::{Fault, FaultPlan};
use self::world::{World, WorldConfig};

/// The emulator's shared state: the world, its clock, the fault plan and the request log.
#[derive(Debug)]
pub struct Emulator {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    world: World,
    clock: VirtualClock,
    faults: FaultPlan,
    log: Vec<Value>,
}

impl Emulator {
    pub fn new(config: WorldConfig, clock: VirtualClock) -> Emulator {
        Emulator {
            state: Mutex::new(State {
                world: World::new(config),
                clock,
                faults: FaultPlan::default(),
                log: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the state itself stays usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the world at the current virtual time.
    pub fn with_world<T, E>(&self, f: impl FnOnce(&mut World, SystemTime) -> Result<T, E>) -> Result<T, E> {
        let mut state = self.lock();
        let now = state.clock.now();
        f(&mut state.world, now)
    }

    pub fn now(&self) -> SystemTime {
        self.lock().clock.now()
    }

    pub fn advance(&self, by: Duration) -> SystemTime {
        self.lock().clock.advance(by)
    }

    pub(crate) fn real_duration(&self, span: Duration) -> Option<Duration> {
        self.lock().clock.real_duration(span)
    }

    pub(crate) fn clock_json(&self) -> Value {
        let state = self.lock();
        json!({"now": clock::rfc3339(state.clock.now()), "timeScale": state.clock.scale()})
    }

    pub(crate) fn fire_faults(&self, method: &str, path: &str) -> Vec<Fault> {
        let state = &mut *self.lock();
        state.faults.fire(method, path, state.world.rng())
    }

    /// Adds a fault; a `metricGap` fault takes effect in the world's metrics at once.
    pub(crate) fn add_fault(&self, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        let state = &mut *self.lock();
        if fault.kind == faults::FaultKind::MetricGap {
            let now = state.clock.now();
            let minutes = fault.minutes.unwrap_or_default();
            state.world.add_gap(&fault.path_contains, now, clock::later(now, clock::seconds(minutes * 60.0)));
        } else {
            state.faults.add(fault);
        }
        Ok(())
    }

    /// Sets a service's request rate from now on.
    pub fn set_load(&self, service: &str, load: traffic::Load) -> Result<(), String> {
        self.with_world(|w, now| w.set_load(service, load, now))
    }

    pub(crate) fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub(crate) fn faults(&self) -> Vec<Fault> {
        self.lock().faults.list().to_vec()
    }

    pub(crate) fn log_request(&self, method: &str, path: &str, query: &str, status: u16, answered: Answered) {
        let mut entry = json!({"method": method, "path": path, "query": query, "status": status});
        if let Some(bytes) = answered.bytes {
            entry["bytes"] = bytes.into();
        }
        if let Some(points) = answered.points {
            entry["points"] = points.into();
        }
        self.lock().log.push(entry);
    }

    /// Every API call since the log was last cleared: method, path, query, status, and
    /// the answer's size in bytes and, for `timeSeries.list`, its points.
    pub fn requests(&self) -> Vec<Value> {
        self.lock().log.clone()
    }

    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }
}

/// What the request log keeps of an answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answered {
    pub(crate) bytes: Option<u64>,
    pub(crate) points: Option<u64>,
}

/// How `canary emulator` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    pub allow_remote: bool,
    pub time_scale: Option<f64>,
    pub seed: Option<u64>,
    pub settle_seconds: Option<f64>,
    pub publish_delay_seconds: Option<f64>,
    pub scenario: Option<std::path::PathBuf>,
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to listen on {addr}: it is not a loopback address")]
    NotLoopback { addr: String },
    #[error("cannot resolve listen address {addr}: {reason}")]
    BadAddress { addr: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Scenario(#[from] scenario::ScenarioError),
    #[error("emulator server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds, prints the address on stdout (`canary emulator listening on http://…`), and
/// serves until the process is interrupted.
pub async fn serve(options: ServeOptions) -> Result<(), ServeError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&options.listen)
        .await
        .map_err(|e| ServeError::BadAddress { addr: options.listen.clone(), reason: e.to_string() })?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        return Err(ServeError::BadAddress { addr: options.listen.clone(), reason: "no address".to_owned() });
    };
    if !options.allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(ServeError::NotLoopback { addr: options.listen.clone() });
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr: options.listen.clone(), source })?;
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    let loaded = match &options.scenario {
        Some(path) => Some(scenario::Scenario::load(path)?),
        None => None,
    };
    let start = loaded.as_ref().and_then(|s| s.start).unwrap_or_else(SystemTime::now);
    let scale = options.time_scale.or(loaded.as_ref().and_then(|s| s.time_scale)).unwrap_or(1.0);
    let config = world_config(
        options.seed.or(loaded.as_ref().and_then(|s| s.seed)),
        options.settle_seconds.or(loaded.as_ref().and_then(|s| s.settle_seconds)),
        options.publish_delay_seconds.or(loaded.as_ref().and_then(|s| s.publish_delay_seconds)),
        bound,
    );
    let emulator = Arc::new(Emulator::new(config, VirtualClock::new(start, scale)));
    if let Some(loaded) = loaded {
        loaded.apply(&emulator)?;
    }
    println!("canary emulator listening on http://{bound}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    axum::serve(listener, http::router(emulator))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(ServeError::Serve)
}

/// The world's settings, with the defaults for what neither flags nor scenario set.
fn world_config(seed: Option<u64>, settle: Option<f64>, publish_delay: Option<f64>, bound: SocketAddr) -> WorldConfig {
    WorldConfig {
        seed: seed.unwrap_or(0),
        settle: Duration::from_secs_f64(settle.unwrap_or(10.0).clamp(0.0, 86_400.0)),
        base_url: format!("http://{bound}"),
        publish_delay: Duration::from_secs_f64(publish_delay.unwrap_or(180.0).clamp(0.0, 86_400.0)),
        ..WorldConfig::default()
    }
}

/// An emulator in this process, serving on a loopback port the OS picks: what `canary
/// demo` runs against. `scenario` is a scenario file's text (shown as `source` in errors).
pub async fn embedded(
    scenario: &str,
    source: &str,
    time_scale: f64,
) -> Result<(Arc<Emulator>, SocketAddr, tokio::task::JoinHandle<()>), ServeError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| ServeError::Bind { addr: "127.0.0.1:0".to_owned(), source })?;
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    let loaded = scenario::Scenario::parse(scenario, source)?;
    let config = world_config(loaded.seed, loaded.settle_seconds, loaded.publish_delay_seconds, bound);
    let start = loaded.start.unwrap_or_else(SystemTime::now);
    let emulator = Arc::new(Emulator::new(config, VirtualClock::new(start, time_scale)));
    loaded.apply(&emulator)?;
    let router = http::router(emulator.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((emulator, bound, task))
}

#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod tests;
