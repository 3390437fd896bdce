//! `canary watch`: reconciling continuously. A loop over a pure `schedule`: each
//! rollout is passed again when its plan's requeue time comes (on the platform's
//! clock, see `pace`), when its manifest changes (`files`, and a periodic resync in
//! case an event was missed), or at once after a change seen while it was in a pass.
//!
//! Rollouts due together go through one `reconcile` pass (which lists each
//! project/region once for all of them); each rollout reports the moment its own
//! decision is carried out, so a slow one (a smoke test timing out, a slow write)
//! holds up no other rollout's next pass. Passes run as tasks, at most `max_passes` at
//! once, each working on up to `reconcile::CONCURRENCY` rollouts at a time.
//!
//! # Guarantees
//! - Nothing needed for correctness lives here: state is on the services, so a restart
//!   (or a crash) carries on where the last run left off.
//! - SIGINT / SIGTERM: no new pass starts; writes under way finish (up to
//!   `GRACE`), then the process exits 0. A second signal exits at once.
//! - A deleted manifest stops management and leaves traffic as it is.

pub(crate) mod desired;
pub(crate) mod files;
pub(crate) mod metrics;
pub(crate) mod notifications;
pub(crate) mod pace;
pub(crate) mod schedule;
pub(crate) mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::decide::PassResult;
use crate::diagnostic;
use crate::error::{Error, Exit};
use crate::manifest;
use crate::platform::Gcp;
use crate::reconcile::{self, Mode, RolloutOutcome};
use crate::style::Colour;
use crate::transport::ApiFailure;

use desired::Desired;
use metrics::{ErrorLabel, Health, Metered, Metrics};
use notifications::Outbox;
use pace::{Pace, TimeBase};
use schedule::Schedule;

/// How long a stop waits for writes under way and notifications queued: the process
/// is gone within 2 s of the signal.
pub(crate) const GRACE: Duration = Duration::from_millis(1500);
/// How soon to look again at a rollout whose pass failed (API error, conflict).
const ERROR_RETRY: Duration = Duration::from_secs(30);
/// How soon to look again at a rollout a pass did not decide on (an invalid edit of a
/// rollout not under way): an edit brings it back sooner.
const UNDECIDED_RETRY: Duration = Duration::from_secs(300);
/// Rollouts falling due this close together (platform time) share a pass.
const COALESCE: Duration = Duration::from_secs(2);

/// What `canary watch` was asked to do.
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub listen: Option<String>,
    /// How often the manifests are read again whatever the file events say.
    pub resync: Duration,
    /// At most this many passes at once.
    pub max_passes: usize,
    /// Which rollouts are this process's (`--shard`).
    pub mine: Box<dyn Fn(&str) -> bool + Send + Sync>,
    /// Ignore file events and rely on the resync alone (a test's missed events).
    pub file_events: bool,
    /// Stop as on a signal when this is notified (`canary demo` ends its watch so).
    pub stop: Option<Arc<tokio::sync::Notify>>,
}

/// What a pass task tells the loop.
enum Report {
    /// One rollout's decision, carried out.
    Outcome(Box<RolloutOutcome>, Duration),
    /// The pass is over: these rollouts were in it (some may not have reported: an
    /// invalid edit of a rollout not under way is not passed).
    Done(Vec<String>),
}

type Platform = Metered<Gcp>;

/// Runs until a signal; `Ok(Exit::Ok)` after a clean stop. Must run inside a
/// [`tokio::task::LocalSet`].
pub async fn run(options: Options, gcp: Gcp) -> Result<Exit, Error> {
    let usable: Vec<&PathBuf> = options.paths.iter().filter(|p| p.exists()).collect();
    if usable.is_empty() {
        return Err(Error::Usage(format!(
            "no manifests to watch: {} not found",
            options.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    for missing in options.paths.iter().filter(|p| !p.exists()) {
        tracing::warn!(path = %missing.display(), "not found; watching for it to appear");
    }
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    if let Some(listen) = &options.listen {
        let addr = serve::start(listen, metrics.clone(), health.clone()).await.map_err(Error::Runtime)?;
        // The first line on stdout, so a supervisor or a test can find a port 0 choice.
        println!("canary watch listening on http://{addr}");
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    }
    let emulator = gcp.is_emulator().then(|| gcp.endpoint().to_owned());
    let mut time = match &emulator {
        Some(base) => {
            let (pace, now) = read_emulator_clock(&gcp)
                .await
                .map_err(|e| Error::Runtime(format!("cannot read the emulator's clock at {base}: {e}")))?;
            TimeBase::new(pace, now, Instant::now())
        }
        None => TimeBase::new(Pace::Real, SystemTime::now(), Instant::now()),
    };
    let platform = Arc::new(Metered { inner: gcp, metrics: metrics.clone(), health: health.clone() });
    let mut watch = Watch {
        paths: options.paths.clone(),
        mine: options.mine,
        desired: Desired::default(),
        schedule: Schedule::new(options.max_passes, COALESCE),
        outbox: Outbox::new(metrics.clone()),
        metrics,
        health,
        platform,
        last: BTreeMap::new(),
        stamp: 0,
        problems: String::new(),
        first_pass: None,
    };

    let (changed_tx, mut changed) = mpsc::unbounded_channel();
    let mut files = if options.file_events {
        match files::FileWatch::start(&options.paths, changed_tx) {
            Ok(files) => Some(files),
            Err(e) => {
                tracing::warn!("{e}; relying on the periodic resync");
                None
            }
        }
    } else {
        None
    };
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Runtime(format!("cannot handle SIGTERM: {e}")))?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Runtime(format!("cannot handle SIGINT: {e}")))?;

    watch.reload(time.now(Instant::now()));
    let first: Vec<String> = watch.desired.rollouts.keys().cloned().collect();
    watch.first_pass = Some(first.into_iter().collect());
    watch.check_first_pass();
    tracing::info!(rollouts = watch.schedule.len(), "watching {}", list(&options.paths));
    let mut next_resync = Instant::now() + options.resync;
    let mut next_poll = time.poll().map(|p| Instant::now() + p);

    loop {
        let real = Instant::now();
        watch.dispatch(time.now(real), &report_tx);
        let mut wake = next_resync;
        if let Some(poll) = next_poll {
            wake = wake.min(poll);
        }
        // With every pass slot taken, a report (not the clock) frees the next one.
        if watch.schedule.has_room()
            && let Some(due) = watch.schedule.next_due()
            && let Some(wait) = time.real_wait(due, real)
        {
            wake = wake.min(real + wait);
        }
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            () = stopped(options.stop.as_deref()) => break,
            Some(()) = changed.recv() => {
                while changed.try_recv().is_ok() {}
                watch.reload(time.now(Instant::now()));
                if let Some(files) = &mut files {
                    files.follow(&options.paths);
                }
            }
            Some(report) = reports.recv() => watch.report(report, time.now(Instant::now())),
            () = tokio::time::sleep_until(wake.into()) => {
                let real = Instant::now();
                if let (Some(_), Some(poll)) = (&emulator, next_poll) && real >= poll {
                    // Bounded: the loop answers signals only between its arms, and a read
                    // that retries against a slow emulator must not hold a stop up.
                    match tokio::time::timeout(CLOCK_POLL_LIMIT, read_emulator_clock(&watch.platform.inner)).await {
                        Ok(Ok((pace, now))) => time.observe(pace, now, Instant::now()),
                        Ok(Err(e)) => tracing::warn!("cannot read the emulator's clock: {e}"),
                        Err(_) => tracing::warn!("the emulator's clock did not answer within {CLOCK_POLL_LIMIT:?}"),
                    }
                    next_poll = time.poll().map(|p| Instant::now() + p);
                }
                if real >= next_resync {
                    watch.resync(time.now(real));
                    if let Some(files) = &mut files {
                        files.follow(&options.paths);
                    }
                    next_resync = Instant::now() + options.resync;
                }
            }
        }
    }

    // Stopping: no new pass; wait for the ones under way and the notification queue.
    let deadline = tokio::time::Instant::now() + GRACE;
    tracing::info!(in_flight = watch.schedule.running(), "stopping: finishing writes under way");
    while watch.schedule.passes() > 0 || watch.outbox.pending() > 0 {
        tokio::select! {
            _ = terminate.recv() => return Ok(Exit::Ok),
            _ = interrupt.recv() => return Ok(Exit::Ok),
            Some(report) = reports.recv() => watch.report(report, time.now(Instant::now())),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    in_flight = watch.schedule.running(),
                    notifications = watch.outbox.pending(),
                    "stopped with work under way; the next run picks it up from the services' state"
                );
                break;
            }
        }
    }
    tracing::info!("stopped");
    Ok(Exit::Ok)
}

/// Resolves when `stop` is notified; never without one.
async fn stopped(stop: Option<&tokio::sync::Notify>) {
    match stop {
        Some(stop) => stop.notified().await,
        None => std::future::pending().await,
    }
}

/// The loop's state between events.
struct Watch {
    paths: Vec<PathBuf>,
    mine: Box<dyn Fn(&str) -> bool + Send + Sync>,
    desired: Desired,
    schedule: Schedule,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    platform: Arc<Platform>,
    /// Each rollout's last logged decision (phase, reason) or error: a repeat is quiet.
    last: BTreeMap<String, String>,
    /// What the manifest files looked like at the last reload (see [`files::stamp`]).
    stamp: u64,
    /// The last problems reported for the manifest set: reported again only on change.
    problems: String,
    /// Rollouts the first pass has yet to report on; `None` once it has.
    first_pass: Option<std::collections::BTreeSet<String>>,
}

impl Watch {
    /// The periodic look: reloads only when the files changed on disk (a missed event).
    fn resync(&mut self, now: SystemTime) {
        if files::stamp(&self.paths) != self.stamp {
            tracing::debug!("resync: the manifests changed on disk");
            self.reload(now);
        }
    }

    /// Reads the manifests again and schedules what changed.
    fn reload(&mut self, now: SystemTime) {
        self.stamp = files::stamp(&self.paths);
        let set = manifest::load(&self.paths);
        self.report_problems(&set);
        let desired = Desired::from_set(&set, &self.mine);
        let changes = desired.changes_since(&self.desired);
        for name in &changes.removed {
            self.schedule.remove(name);
            self.metrics.forget(name);
            self.last.remove(name);
            if let Some(first) = &mut self.first_pass {
                first.remove(name);
            }
            tracing::info!(rollout = %name, "manifest removed: no longer managed; traffic is left as it is");
        }
        for name in &changes.changed {
            if self.desired.rollouts.contains_key(name) {
                tracing::info!(rollout = %name, "manifest changed");
            }
            self.schedule.due_now(name, now);
        }
        self.desired = desired;
        self.metrics.managed(self.desired.rollouts.len());
        self.check_first_pass();
    }

    /// Logs unreadable files and invalid manifests, once per change.
    fn report_problems(&mut self, set: &manifest::ManifestSet) {
        let mut text = String::new();
        for u in &set.unreadable {
            text.push_str(&format!("cannot read {}: {}\n", u.path, u.reason));
        }
        for d in &set.diagnostics {
            text.push_str(&diagnostic::render(d, set.sources.get(&d.file).map(String::as_str), Colour::Never));
        }
        if text != self.problems {
            if !text.is_empty() {
                self.metrics.error(ErrorLabel::Manifest);
                tracing::warn!(
                    invalid = set.invalid_count(),
                    "manifest problems (an invalid edit holds only its own rollout):\n{}",
                    text.trim_end()
                );
            } else if !self.problems.is_empty() {
                tracing::info!("every manifest is valid again");
            }
            self.problems = text;
        }
    }

    /// Starts a pass over the rollouts due by `now`, if any.
    fn dispatch(&mut self, now: SystemTime, reports: &mpsc::UnboundedSender<Report>) {
        let names = self.schedule.take(now);
        if names.is_empty() {
            return;
        }
        let (rollouts, invalid) = self.desired.batch(&names);
        self.metrics.pass_started();
        let platform = self.platform.clone();
        let reports = reports.clone();
        tracing::debug!(rollouts = names.len(), "pass");
        // A local task: the pass's future is not `Send` (its per-rollout stream borrows
        // across awaits), and it needs no other thread.
        tokio::task::spawn_local(async move {
            let start = Instant::now();
            let report = |o: &RolloutOutcome| {
                let _ = reports.send(Report::Outcome(Box::new(o.clone()), start.elapsed()));
            };
            reconcile::pass_reporting(&*platform, &rollouts, &invalid, Mode::Apply, &report).await;
            let _ = reports.send(Report::Done(names));
        });
    }

    fn report(&mut self, report: Report, now: SystemTime) {
        match report {
            Report::Outcome(outcome, took) => self.outcome(&outcome, took, now),
            Report::Done(names) => {
                self.schedule.pass_done(&names, now, UNDECIDED_RETRY);
                if let Some(first) = &mut self.first_pass {
                    for name in &names {
                        first.remove(name);
                    }
                }
                self.check_first_pass();
            }
        }
    }

    fn check_first_pass(&mut self) {
        if self.first_pass.as_ref().is_some_and(std::collections::BTreeSet::is_empty) {
            self.first_pass = None;
            self.health.first_pass_done();
            tracing::debug!("first pass done");
        }
    }

    /// One rollout's decision: reschedule, count, log (once), notify.
    fn outcome(&mut self, o: &RolloutOutcome, took: Duration, now: SystemTime) {
        let name = o.name.as_str();
        if let Some(first) = &mut self.first_pass {
            first.remove(name);
        }
        if !self.schedule.contains(name) {
            return; // its manifest went away during the pass
        }
        self.metrics.decision(took.as_secs_f64());
        let requeue = match (&o.plan, &o.error) {
            (Some(plan), None) => plan.requeue,
            (Some(plan), Some(_)) => plan.requeue.min(ERROR_RETRY),
            (None, _) => ERROR_RETRY,
        };
        // The pass's own "now" (a clock error leaves it at the epoch: never earlier than ours).
        self.schedule.finished(name, o.now.max(now), requeue);
        let service = self.desired.valid(name).map(|r| r.spec.service.clone()).unwrap_or_default();
        if let Some(plan) = &o.plan {
            let canary = plan.state.canary.as_deref().and_then(|c| plan.traffic_after.get(c)).copied().unwrap_or(0);
            self.metrics.rollout(name, plan.phase_after, canary);
            let said = format!("{}: {}", plan.phase_after, plan.reason);
            if o.error.is_none() && self.last.get(name) != Some(&said) {
                let action = format!("{:?}", plan.action);
                let phase = plan.phase_after.name();
                match plan.result {
                    PassResult::RolledBack | PassResult::Failed | PassResult::Blocked => {
                        tracing::warn!(rollout = %name, %service, phase = %phase, action = %action, "{}", plan.reason);
                    }
                    PassResult::Steady => {
                        tracing::info!(rollout = %name, %service, phase = %phase, action = %action, "{}", plan.reason)
                    }
                }
                self.last.insert(name.to_owned(), said);
            }
        }
        if let Some(error) = &o.error {
            self.metrics.error(ErrorLabel::Pass(error.kind()));
            let said = format!("error: {error}");
            if self.last.get(name) != Some(&said) {
                tracing::error!(rollout = %name, %service, "{error}");
                self.last.insert(name.to_owned(), said);
            }
        }
        if let Some(rollout) = self.desired.valid(name) {
            let rollout = rollout.clone();
            self.outbox.offer(&rollout, o);
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// How long a poll of the emulator's clock may take before this round goes without it
/// (the watch was promised to stop within 2 s of a signal).
const CLOCK_POLL_LIMIT: Duration = Duration::from_secs(1);

/// The emulator's clock: how it moves, and what it reads now.
async fn read_emulator_clock(gcp: &Gcp) -> Result<(Pace, SystemTime), ApiFailure> {
    let clock = gcp.emulator_clock().await?;
    Ok((Pace::from_scale(clock.time_scale), clock.now))
}
