//! canary's deterministic simulation: the real product loop — manifests loaded from
//! files, reconcile passes, decide, the manual commands — against the emulator's world
//! in one process, on virtual time, driven by a seeded scheduler that interleaves
//! crashes at every API-call boundary, two or three reconcilers (with and without
//! shards), API faults, people (manifest edits, commands, hand changes to the service,
//! corrupted annotations) and traffic that is healthy, bad, turning bad, flapping or
//! absent. The safety rules ([`invariants`]) are checked after every step; a seed that
//! breaks one fails with a trace and the command that replays it.
//!
//! One seed is one thread's work, and the same seed always makes the same run.

mod invariants;
mod people;
mod platform;
mod trace;
mod world;

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

pub use invariants::Violation;

/// How long each seed runs.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Steps of the busy phase (passes, time, people, chaos).
    pub steps: usize,
    /// The most passes of the quiet phase (no faults, no people), one virtual minute
    /// apart, in which every rollout must come to rest.
    pub quiet_passes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { steps: 40, quiet_passes: 240 }
    }
}

/// A seed that kept every rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub steps: usize,
    pub passes: usize,
    pub writes: usize,
}

/// A seed that broke a rule (or panicked).
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub violations: Vec<Violation>,
    /// The newest lines of the run: steps, API calls, decisions, the rule broken.
    pub trace: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} broke {} rule(s):", self.seed, self.violations.len())?;
        for v in &self.violations {
            writeln!(f, "  {}: {}", v.invariant, v.message)?;
        }
        writeln!(f, "trace:\n{}", self.trace)?;
        write!(f, "replay: make sim SEED={}", self.seed)
    }
}

/// Runs one seed.
pub fn run(seed: u64, config: &Config) -> Result<Report, Failure> {
    let mut sim = world::Sim::new(seed);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| sim.run(config)));
    let writes = sim.writes();
    let shared: Rc<RefCell<platform::Shared>> = sim.shared();
    let mut shared = shared.borrow_mut();
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned());
        shared.violations.push(Violation { invariant: "nothing_panics", message });
    }
    if shared.violations.is_empty() {
        Ok(Report { seed, steps: config.steps, passes: sim.passes, writes })
    } else {
        Err(Failure { seed, violations: shared.violations.clone(), trace: shared.trace.tail() })
    }
}
