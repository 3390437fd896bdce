//! `canary demo`: the whole story in under a minute, with no cloud account. An emulator
//! in this process (loopback, a port the OS picks) starts with two services on the
//! daily traffic curve; the bundled manifests roll `ion-api` v2 out through 5/25/50/100%
//! held 1 h/6 h/24 h/1 h, and `checkout` v2, which starts failing 15 minutes in, back.
//! The real watch loop reconciles on the emulator's accelerated clock while the live
//! view draws; at the end the rollback report is written and its path printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canary_core::state::Phase;
use canary_core::status::Status;

use crate::error::{Error, Exit};
use canary_core::auth::Auth;
use canary_core::manifest::{self, CanaryRollout};
use canary_core::platform::Gcp;
use canary_core::report;
use canary_core::view;
use canary_core::watch;
use canary_emulator as emulator;

const SCENARIO: &str = include_str!("../demo/scenario.yaml");
const MANIFESTS: [(&str, &str); 2] = [
    ("ion-api.yaml", include_str!("../demo/manifests/ion-api.yaml")),
    ("checkout.yaml", include_str!("../demo/manifests/checkout.yaml")),
];
/// How the story must end, rollout by rollout.
const EXPECTED: [(&str, Phase); 2] = [("ion-api", Phase::Promoted), ("checkout", Phase::RolledBack)];

/// What `canary demo` was asked for.
pub struct Options {
    /// Print the final statuses as JSON instead of the live view.
    pub json: bool,
    /// Emulated seconds per real second.
    pub speed: f64,
    /// Where the rollback report goes.
    pub out: PathBuf,
    /// Give up after this long (real time).
    pub timeout: Duration,
}

/// Runs the demo. Must run inside a [`tokio::task::LocalSet`] (the watch loop's passes
/// are local tasks).
pub async fn run(options: Options) -> Result<Exit, Error> {
    let began = Instant::now();
    let (_emulator, addr, server) = emulator::embedded(SCENARIO, "demo/scenario.yaml", options.speed)
        .await
        .map_err(|e| Error::runtime(format!("cannot start the demo's emulator: {e}")))?;
    let dir = Workspace::new()?;
    let base = format!("http://{addr}");
    let platform =
        |what: &str| Gcp::new(&base, &base, Auth::None, true).map_err(|e| Error::runtime(format!("{what}: {e}")));
    let set = manifest::load(std::slice::from_ref(&dir.path));
    let rollouts: Vec<CanaryRollout> = set.valid().cloned().collect();
    if rollouts.len() != MANIFESTS.len() {
        return Err(Error::runtime("the demo's bundled manifests do not validate".to_owned()));
    }
    if !options.json {
        eprintln!(
            "canary demo: an emulator on {base}, its clock at {}× (a day in {:.0} s); two rollouts from {}",
            options.speed,
            86_400.0 / options.speed,
            dir.path.display()
        );
    }

    let stop = Arc::new(tokio::sync::Notify::new());
    let watching = tokio::task::spawn_local(watch::run(
        watch::Options {
            paths: vec![dir.path.clone()],
            listen: None,
            resync: Duration::from_secs(5),
            max_passes: 4,
            mine: Box::new(|_: &str| true),
            file_events: false,
            stop: Some(stop.clone()),
        },
        platform("the watch loop")?,
    ));

    let viewer = platform("the live view")?;
    let look = || view::live::look(&viewer, &rollouts, &[]);
    let finished = |s: &view::live::Snapshot| s.statuses.iter().all(settled);
    let last = if options.json {
        quietly(look, finished, options.timeout).await
    } else {
        let interval = Duration::from_millis(250);
        match tokio::time::timeout(options.timeout, view::live::run(look, view::live::Output::Text, interval, finished))
            .await
        {
            Ok(Ok(last)) => last,
            Ok(Err(e)) => return Err(Error::runtime(format!("cannot write the view: {e}"))),
            Err(_) => None,
        }
    };
    stop.notify_one();
    let _ = watching.await;

    let statuses = match last {
        Some(s) if finished(&s) => s.statuses,
        Some(s) => {
            return Err(Error::runtime(format!(
                "the demo's story did not play out within {}: {}",
                humantime::format_duration(options.timeout),
                summary(&s.statuses)
            )));
        }
        None => return Err(Error::runtime("the demo was interrupted".to_owned())),
    };
    let mut reports = Vec::new();
    for (rollout, status) in rollouts.iter().zip(&statuses) {
        if status.phase == Some(Phase::RolledBack) {
            let written = report::write(&platform("the report")?, rollout, &options.out)
                .await
                .map_err(|e| Error::runtime(format!("cannot write the report for {}: {e}", rollout.metadata.name)))?;
            reports.push(written);
        }
    }
    server.abort();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&statuses).unwrap_or_default());
    } else {
        println!("{}", summary(&statuses));
    }
    for path in &reports {
        let line = format!("rollback report: {}", path.display());
        if options.json { eprintln!("{line}") } else { println!("{line}") }
    }
    let played_out =
        EXPECTED.iter().all(|(name, phase)| statuses.iter().any(|s| s.name == *name && s.phase == Some(*phase)));
    if !options.json {
        println!("{:.1} s of real time", began.elapsed().as_secs_f64());
    }
    if played_out {
        Ok(Exit::Ok)
    } else {
        Err(Error::runtime(format!("the demo's story did not play out: {}", summary(&statuses))))
    }
}

/// A rollout is settled when nothing more will happen to it without a person or a new
/// image.
fn settled(status: &Status) -> bool {
    matches!(status.phase, Some(Phase::Promoted | Phase::RolledBack | Phase::Failed))
}

fn summary(statuses: &[Status]) -> String {
    statuses
        .iter()
        .map(|s| format!("{}: {} ({})", s.name, s.phase.map_or("?", Phase::name), s.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Looks until `done`, the timeout or Ctrl-C, printing nothing.
async fn quietly<F, Fut>(
    mut look: F,
    done: impl Fn(&view::live::Snapshot) -> bool,
    timeout: Duration,
) -> Option<view::live::Snapshot>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = view::live::Snapshot>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        let snapshot = tokio::select! {
            _ = tokio::signal::ctrl_c() => return None,
            () = tokio::time::sleep_until(deadline) => return last,
            s = look() => s,
        };
        let finished = done(&snapshot);
        last = Some(snapshot);
        if finished {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The bundled manifests, written to a folder of their own for the watch loop, removed
/// at the end.
struct Workspace {
    path: PathBuf,
}

impl Workspace {
    fn new() -> Result<Workspace, Error> {
        let path = std::env::temp_dir().join(format!("canary-demo-{}", std::process::id()));
        let write = |path: &Path| -> std::io::Result<()> {
            std::fs::create_dir_all(path)?;
            for (name, text) in MANIFESTS {
                std::fs::write(path.join(name), text)?;
            }
            Ok(())
        };
        write(&path)
            .map_err(|e| Error::runtime(format!("cannot write the demo's manifests to {}: {e}", path.display())))?;
        Ok(Workspace { path })
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
