//! The command line: clap types, dispatch, and rendering results and errors.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::demo;
use crate::error::{Error, Exit};
use crate::logging::{self, LogFormat};
use canary_core::decide::PassResult;
use canary_core::diagnostic::{self, Diagnostic};
use canary_core::error::Error as CoreError;
use canary_core::manifest::{self, schema};
use canary_core::operate;
use canary_core::output;
use canary_core::platform::Gcp;
use canary_core::reconcile::{self, Mode};
use canary_core::report;
use canary_core::status;
use canary_core::style::Colour;
use canary_core::view;
use canary_core::watch;
use canary_emulator as emulator;

/// canary rolls new container images out to Google Cloud Run in traffic stages,
/// judges each stage against SLOs from Cloud Monitoring, and advances, holds or rolls
/// back on its own.
#[derive(Debug, Parser)]
#[command(name = "canary", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests: YAML, schema and meaning; every error as file:line:col.
    Validate {
        /// Manifest files or folders (searched recursively for *.yaml / *.yml).
        #[arg(default_value = "manifests/")]
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Run the local Cloud Run emulator (Admin API v2, a virtual clock, faults on demand).
    Emulator {
        /// Address to listen on; loopback only unless --allow-remote. Port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8085")]
        listen: String,
        /// Simulated seconds per real second: 1 real time, 3600 an hour a second, 0 stepped
        /// (moves only on POST /emulator/v1/clock:advance). Default 1, or the scenario's.
        #[arg(long)]
        time_scale: Option<f64>,
        /// YAML that pre-loads services, profiles and faults (see README, "The emulator").
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Seed for every id and random draw; the same seed replays the same run.
        #[arg(long)]
        seed: Option<u64>,
        /// Simulated seconds a write takes to settle (default 10).
        #[arg(long)]
        settle_seconds: Option<f64>,
        /// Simulated seconds before a minute's metric points are visible (default 180).
        #[arg(long)]
        publish_delay_seconds: Option<f64>,
        /// Allow a non-loopback listen address. The emulator has no authentication.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Show what one pass would change, and why; writes nothing.
    Plan(PassArgs),
    /// One pass over every manifest: at most one change per rollout, then exit.
    Reconcile {
        /// Run one pass and exit (continuous reconciling is `canary watch`).
        #[arg(long)]
        once: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Reconcile continuously: each rollout on its own schedule, re-run on file change.
    Watch {
        /// Manifest files or folders (watched recursively; symlinks followed).
        #[arg(default_value = "manifests/")]
        paths: Vec<PathBuf>,
        /// Serve /metrics, /healthz and /readyz here, like 127.0.0.1:9090 (port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
        /// Read every manifest again this often, whatever file events say.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        resync: std::time::Duration,
        /// At most this many passes at once (each works on up to 16 rollouts at a time).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        max_passes: u16,
        /// Only the rollouts of shard I of N (see `reconcile --shard`).
        #[arg(long, value_parser = parse_shard, value_name = "I/N")]
        shard: Option<Shard>,
        /// Log lines as text, or as JSON for Cloud Logging.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Ignore file events and rely on --resync alone (to test a missed event).
        #[arg(long, hide = true)]
        no_file_events: bool,
    },
    /// The whole story against an embedded emulator, in under a minute: one rollout
    /// promoted, one bad release rolled back, and the rollback report.
    Demo {
        /// `text`: the live view; `json`: only the final statuses (the `status -o json` shape).
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Emulated seconds per real second.
        #[arg(long, default_value_t = 3600.0)]
        speed: f64,
        /// Where the rollback report is written.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Give up after this long (real time).
        #[arg(long, default_value = "3m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Where each rollout is, read live from Cloud Run and Cloud Monitoring.
    Status {
        /// One rollout's name; all when left out.
        name: Option<String>,
        /// Where the manifests are.
        #[arg(short = 'f', long = "manifests", default_value = "manifests/")]
        manifests: PathBuf,
        #[arg(short, long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Keep looking and redraw (a new block per change when piped); Ctrl-C to quit.
        #[arg(short, long)]
        watch: bool,
        /// How often --watch looks (real time), like `2s` or `500ms`.
        #[arg(long, default_value = "2s", value_parser = parse_interval, requires = "watch")]
        interval: std::time::Duration,
    },
    /// Write a rollout or rollback report: Markdown, with an SVG chart of error rate
    /// and p95 for stable and canary (from Cloud Run's annotations and Cloud Monitoring).
    Report {
        /// The rollout's name (`metadata.name`).
        name: String,
        /// Where the manifests are.
        #[arg(short = 'f', long = "manifests", default_value = "manifests/")]
        manifests: PathBuf,
        /// The folder to write NAME-<start>.md and .svg into.
        #[arg(long, default_value = "reports/")]
        out: PathBuf,
    },
    /// Hold a rollout at its current stage (rollback triggers still apply).
    Pause(Target),
    /// Carry on after `canary pause`, a failed gate, or a lack of data.
    Resume(Target),
    /// Finish the current stage now (its hold and gates; not the rollback triggers).
    Promote {
        #[command(flatten)]
        target: Target,
        /// Go straight to Promoted.
        #[arg(long)]
        full: bool,
    },
    /// Roll back now and reject the image.
    Abort(Target),
    /// Clear the rejection of the manifest's image, so it is deployed again.
    Retry(Target),
    /// Print the manifest JSON Schema, or check that the committed copy is current.
    Schema {
        /// Fail if the committed schema differs from this build's.
        #[arg(long)]
        check: bool,
        /// The committed schema file, for --check.
        #[arg(long, default_value = schema::SCHEMA_PATH)]
        file: PathBuf,
    },
}

/// What `plan` and `reconcile` run over, and how they print it.
#[derive(Debug, clap::Args)]
struct PassArgs {
    /// Manifest files or folders.
    #[arg(default_value = "manifests/")]
    paths: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Only the rollouts of shard I of N (FNV-1a of the name, mod N): run N
    /// reconcilers, each with its own I, and every rollout has exactly one writer.
    #[arg(long, value_parser = parse_shard, value_name = "I/N")]
    shard: Option<Shard>,
}

/// One of N disjoint parts of the manifest set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    fn owns(self, name: &str) -> bool {
        canary_core::hash::fnv1a(name) % self.count == self.index
    }
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("`{text}` is not a shard: write I/N with 0 <= I < N, like 0/3");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) = (i.trim().parse::<u64>().map_err(|_| bad())?, n.trim().parse::<u64>().map_err(|_| bad())?);
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

/// Which rollout a manual command is for.
#[derive(Debug, clap::Args)]
struct Target {
    /// The rollout's name (`metadata.name`).
    name: String,
    /// Where the manifests are.
    #[arg(short = 'f', long = "manifests", default_value = "manifests/")]
    manifests: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Human-readable (diagnostics for `validate`, a table elsewhere).
    #[value(alias = "table")]
    Text,
    Json,
    Yaml,
}

/// Runs canary with `args` (the program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Invalid.code() } else { Exit::Ok.code() };
        }
    };
    let outcome = match cli.command {
        Command::Validate { paths, output } => Ok(validate(&paths, output)),
        Command::Schema { check, file } => schema_command(check, &file),
        Command::Plan(pass) => run_pass(&pass, Mode::Plan),
        Command::Reconcile { once, pass } => {
            if once {
                run_pass(&pass, Mode::Apply)
            } else {
                Err(Error::usage(
                    "`canary reconcile` needs `--once`; to reconcile continuously, run `canary watch`".to_owned(),
                ))
            }
        }
        Command::Watch { paths, listen, resync, max_passes, shard, log_format, no_file_events } => {
            logging::init(log_format);
            let options = watch::Options {
                paths,
                listen,
                resync,
                max_passes: usize::from(max_passes),
                mine: Box::new(move |name: &str| shard.is_none_or(|s| s.owns(name))),
                file_events: !no_file_events,
                stop: None,
            };
            run_watch(options)
        }
        Command::Status { name, manifests, output, watch: false, .. } => status(name.as_deref(), &manifests, output),
        Command::Status { name, manifests, output, watch: true, interval } => {
            status_watch(name.as_deref(), &manifests, output, interval)
        }
        Command::Report { name, manifests, out } => report_command(&name, &manifests, &out),
        Command::Demo { output, speed, out, timeout } => {
            if !(speed.is_finite() && speed >= 1.0) {
                Err(Error::usage(format!("--speed {speed}: give emulated seconds per real second, at least 1")))
            } else {
                run_demo(demo::Options { json: output != Format::Text, speed, out, timeout })
            }
        }
        Command::Pause(target) => operate(&target, operate::Command::Pause),
        Command::Resume(target) => operate(&target, operate::Command::Resume),
        Command::Promote { target, full } => operate(&target, operate::Command::Promote { full }),
        Command::Abort(target) => operate(&target, operate::Command::Abort),
        Command::Retry(target) => operate(&target, operate::Command::Retry),
        Command::Emulator {
            listen,
            time_scale,
            scenario,
            seed,
            settle_seconds,
            publish_delay_seconds,
            allow_remote,
        } => run_emulator(emulator::ServeOptions {
            listen,
            allow_remote,
            time_scale,
            seed,
            settle_seconds,
            publish_delay_seconds,
            scenario,
        }),
    };
    match outcome {
        Ok(exit) => exit.code(),
        Err(e) => {
            report(&e);
            e.exit().code()
        }
    }
}

/// Prints an error the one way canary prints errors.
fn report(e: &Error) {
    let colour = Colour::for_stderr();
    let mut text = format!("{} {e}", colour.paint("1;31", "error:"));
    if let Some(cause) = e.cause() {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    if let Some(hint) = e.hint() {
        text.push_str(&format!("\n  = hint: {hint}"));
    }
    eprintln!("{text}");
}

fn validate(paths: &[PathBuf], output: Format) -> Exit {
    let set = manifest::load(paths);
    let mut exit = Exit::Ok;
    for unreadable in &set.unreadable {
        report(&Error::Core(CoreError::Unreadable(unreadable.clone())));
        exit = exit.and(Exit::Runtime);
    }
    if !set.diagnostics.is_empty() {
        exit = exit.and(Exit::Invalid);
    }
    // Readable paths with no manifest file at all: a check that checked nothing is a
    // wrong path (or a missing `.yaml` suffix), not a pass.
    let nothing = (set.files == 0 && set.unreadable.is_empty()).then(|| Diagnostic {
        file: list(paths),
        line: 0,
        column: 0,
        path: String::new(),
        message: "no manifest files here".to_owned(),
        label: None,
        hint: Some("canary reads the `.yaml` and `.yml` files under the paths it is given; check the path".to_owned()),
    });
    if nothing.is_some() {
        exit = exit.and(Exit::Invalid);
    }
    match output {
        Format::Json | Format::Yaml => {
            let mut all: Vec<Diagnostic> = set.diagnostics.clone();
            all.extend(set.unreadable.iter().map(|u| Diagnostic {
                file: u.path.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read: {}", u.reason),
                label: None,
                hint: None,
            }));
            all.extend(nothing);
            print_value(&serde_json::to_value(&all).unwrap_or_default(), output);
        }
        Format::Text => {
            let colour = Colour::for_stderr();
            let mut stderr = std::io::stderr().lock();
            for d in &set.diagnostics {
                let source = set.sources.get(&d.file).map(String::as_str);
                let _ = writeln!(stderr, "{}", diagnostic::render(d, source, colour));
            }
            let total = set.manifests.len();
            if !set.diagnostics.is_empty() {
                let errors = set.diagnostics.len();
                let mut bad_files: Vec<&str> = set.diagnostics.iter().map(|d| d.file.as_str()).collect();
                bad_files.dedup();
                let _ = writeln!(
                    stderr,
                    "{} {errors} {} found in {} of {} {}",
                    colour.paint("1;31", "error:"),
                    plural(errors, "problem"),
                    bad_files.len(),
                    set.files,
                    plural(set.files, "file"),
                );
            } else if let Some(d) = &nothing {
                let hint = d.hint.as_deref().unwrap_or_default();
                let _ = writeln!(
                    stderr,
                    "{} no manifest files in {}\n  = hint: {hint}",
                    colour.paint("1;31", "error:"),
                    d.file
                );
            } else if set.unreadable.is_empty() {
                println!(
                    "ok: {total} {} valid ({} {})",
                    plural(total, "manifest"),
                    set.files,
                    plural(set.files, "file")
                );
            }
        }
    }
    exit
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_owned() } else { format!("{word}s") }
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Loads the manifests, reporting invalid ones the way `validate` does (on stderr).
fn load_valid(paths: &[PathBuf]) -> (Vec<canary_core::manifest::CanaryRollout>, Exit) {
    report_set(&manifest::load(paths))
}

/// Reports a loaded set's problems on stderr; returns its valid rollouts.
fn report_set(set: &manifest::ManifestSet) -> (Vec<canary_core::manifest::CanaryRollout>, Exit) {
    let mut exit = Exit::Ok;
    for unreadable in &set.unreadable {
        report(&Error::Core(CoreError::Unreadable(unreadable.clone())));
        exit = exit.and(Exit::Runtime);
    }
    let colour = Colour::for_stderr();
    for d in &set.diagnostics {
        eprint!("{}", diagnostic::render(d, set.sources.get(&d.file).map(String::as_str), colour));
        exit = exit.and(Exit::Invalid);
    }
    (set.valid().cloned().collect(), exit)
}

/// The platform from the environment, made inside `rt` (Google's credential sources
/// start background refresh tasks, which need a runtime).
fn gcp(rt: &tokio::runtime::Runtime) -> Result<Gcp, Error> {
    let _inside = rt.enter();
    Gcp::from_environment().map_err(|e| Error::Core(CoreError::Credentials(e)))
}

/// The runtime of a one-shot command (a pass, status, a report, a manual command): one
/// thread. A pass is one future whose rollouts interleave on it; with worker threads
/// too, every HTTP answer crossed threads to reach it, which cost ~10–15% more time at
/// 10,000 rollouts (`make bench`) and bought nothing. Manifests are still parsed on every
/// core (plain threads, before the runtime starts).
fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the async runtime: {e}")))
}

/// The runtime of a long-running command (`watch`, `demo`, `emulator`): a worker per
/// core, so concurrent passes, the `/metrics` server and the emulator's requests use
/// them all.
fn server_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the async runtime: {e}")))
}

fn print_value(value: &impl serde::Serialize, output: Format) {
    match output {
        Format::Yaml => print!("{}", serde_saphyr::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

fn run_pass(args: &PassArgs, mode: Mode) -> Result<Exit, Error> {
    let (output, shard) = (args.output, args.shard);
    let set = manifest::load(&args.paths);
    let (rollouts, mut exit) = report_set(&set);
    let mine = |name: &str| shard.is_none_or(|s| s.owns(name));
    let rollouts: Vec<_> = rollouts.into_iter().filter(|r| mine(&r.metadata.name)).collect();
    // Invalid edits of rollouts under way are held, not dropped (see reconcile).
    let invalid = invalid_edits(&set, &rollouts, mine);
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let outcomes = rt.block_on(reconcile::pass_with_invalid(&platform, &rollouts, &invalid, mode));
    match output {
        // Commands in reasons completed with `-f` when one manifests path was given.
        Format::Text => match args.paths.as_slice() {
            [path] => print!("{}", output::with_manifests(&output::pass_table(&outcomes), path)),
            _ => print!("{}", output::pass_table(&outcomes)),
        },
        other => print_value(&output::pass_json(&outcomes), other),
    }
    for outcome in &outcomes {
        if let Some(error) = &outcome.error {
            eprintln!("error: {}: {error}", outcome.name);
            exit = exit.and(Exit::Runtime);
        }
        match outcome.plan.as_ref().map(|p| p.result) {
            Some(PassResult::RolledBack | PassResult::Failed) if mode == Mode::Apply => {
                exit = exit.and(Exit::RolledBack)
            }
            Some(PassResult::Blocked) => {
                eprintln!(
                    "error: {}: {}",
                    outcome.name,
                    outcome.plan.as_ref().map(|p| p.reason.as_str()).unwrap_or_default()
                );
                exit = exit.and(Exit::Runtime);
            }
            _ => {}
        }
    }
    Ok(exit)
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))?;
    if interval < std::time::Duration::from_millis(100) {
        return Err(format!("`{text}` is too short: look at most every 100ms"));
    }
    Ok(interval)
}

/// The manifests that do not validate now, for rollouts that no valid manifest names:
/// a pass holds those under way at their traffic (see reconcile).
fn invalid_edits(
    set: &manifest::ManifestSet,
    rollouts: &[canary_core::manifest::CanaryRollout],
    mine: impl Fn(&str) -> bool,
) -> Vec<reconcile::Invalid> {
    set.manifests
        .iter()
        .filter(|m| m.rollout.is_none())
        .filter_map(|m| {
            let name = m.name.clone()?;
            let (project, region, service) = m.target.clone()?;
            let taken =
                rollouts.iter().any(|r| r.metadata.name == name) || set.valid().any(|r| r.metadata.name == name);
            (!taken && mine(&name)).then_some(reconcile::Invalid { name, project, region, service })
        })
        .collect()
}

fn unknown_rollout(name: &str, manifests: &std::path::Path) -> Error {
    Error::Core(CoreError::UnknownRollout { name: name.to_owned(), manifests: manifests.display().to_string() })
}

/// The rollouts `status` shows (all, or the one named): the valid ones, and — so that
/// during an incident the one people look for is there — those whose manifest is
/// invalid now, to be shown frozen (see [`status::statuses`]).
fn status_rollouts(
    name: Option<&str>,
    manifests: &std::path::Path,
) -> Result<(Vec<canary_core::manifest::CanaryRollout>, Vec<reconcile::Invalid>, Exit), Error> {
    let set = manifest::load(&[manifests.to_path_buf()]);
    let (mut rollouts, exit) = report_set(&set);
    let wanted = |n: &str| name.is_none_or(|name| name == n);
    rollouts.retain(|r| wanted(&r.metadata.name));
    let invalid = invalid_edits(&set, &rollouts, wanted);
    if let Some(name) = name
        && rollouts.is_empty()
        && invalid.is_empty()
    {
        return Err(unknown_rollout(name, manifests));
    }
    Ok((rollouts, invalid, exit))
}

fn status_watch(
    name: Option<&str>,
    manifests: &std::path::Path,
    output: Format,
    interval: std::time::Duration,
) -> Result<Exit, Error> {
    let (rollouts, invalid, exit) = status_rollouts(name, manifests)?;
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let output = match output {
        Format::Text => view::live::Output::Text,
        Format::Json => view::live::Output::Json,
        Format::Yaml => view::live::Output::Yaml,
    };
    // As text, the commands in reasons are completed with `-f` (see output::with_manifests).
    let look = || async {
        let mut snapshot = view::live::look(&platform, &rollouts, &invalid).await;
        if output == view::live::Output::Text {
            output::complete_commands(&mut snapshot.statuses, manifests);
        }
        snapshot
    };
    rt.block_on(view::live::run(look, output, interval, |_| false))
        .map_err(|e| Error::runtime(format!("cannot write the view: {e}")))?;
    Ok(exit)
}

fn report_command(name: &str, manifests: &std::path::Path, out: &std::path::Path) -> Result<Exit, Error> {
    let (rollouts, exit) = load_valid(&[manifests.to_path_buf()]);
    let Some(rollout) = rollouts.iter().find(|r| r.metadata.name == name) else {
        return Err(unknown_rollout(name, manifests));
    };
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let written = rt.block_on(report::write(&platform, rollout, out)).map_err(|e| match e {
        report::Failure::NotStarted(why) => Error::usage(why),
        report::Failure::Api(why) | report::Failure::Io(why) => Error::runtime(why),
    })?;
    println!("{}", written.display());
    Ok(exit)
}

fn status(name: Option<&str>, manifests: &std::path::Path, output: Format) -> Result<Exit, Error> {
    let (rollouts, invalid, exit) = status_rollouts(name, manifests)?;
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let outcomes = rt.block_on(reconcile::pass_with_invalid(&platform, &rollouts, &invalid, Mode::Plan));
    let mut statuses = status::statuses(&rollouts, &outcomes);
    if output == Format::Text {
        output::complete_commands(&mut statuses, manifests);
    }
    match output {
        // One rollout: the whole picture (stages, revisions, each trigger and gate); all
        // of them: a table, a line each.
        Format::Text if name.is_some() => {
            let now = outcomes.first().map_or_else(std::time::SystemTime::now, |o| o.now);
            let lines = view::render(&statuses, now, Colour::for_stdout());
            println!("{}", lines.join("\n"));
        }
        Format::Text => print!("{}", output::status_table(&statuses)),
        other => print_value(&statuses, other),
    }
    Ok(exit.and(if outcomes.iter().any(|o| o.error.is_some()) { Exit::Runtime } else { Exit::Ok }))
}

fn operate(target: &Target, command: operate::Command) -> Result<Exit, Error> {
    let (rollouts, _) = load_valid(std::slice::from_ref(&target.manifests));
    let Some(rollout) = rollouts.into_iter().find(|r| r.metadata.name == target.name) else {
        return Err(unknown_rollout(&target.name, &target.manifests));
    };
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    match rt.block_on(operate::run(&platform, &rollout, command)) {
        Ok(message) => {
            println!("{}", output::with_manifests(&message, &target.manifests));
            Ok(Exit::Ok)
        }
        Err(operate::Refusal::Invalid(why)) => Err(Error::usage(why)),
        Err(operate::Refusal::Api(why)) => Err(Error::runtime(why)),
    }
}

fn run_watch(options: watch::Options) -> Result<Exit, Error> {
    let rt = server_runtime()?;
    let platform = gcp(&rt)?;
    let exit = rt.block_on(tokio::task::LocalSet::new().run_until(watch::run(options, platform)));
    // A task still waiting on the network must not hold up the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(exit?)
}

fn run_demo(options: demo::Options) -> Result<Exit, Error> {
    let runtime = server_runtime()?;
    let exit = runtime.block_on(tokio::task::LocalSet::new().run_until(demo::run(options)));
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    exit
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{text}` is not a duration: write one like 30s, 5m or 1h")),
    }
}

fn run_emulator(options: emulator::ServeOptions) -> Result<Exit, Error> {
    server_runtime()?.block_on(emulator::serve(options)).map_err(Error::Emulator)?;
    Ok(Exit::Ok)
}

fn schema_command(check: bool, file: &PathBuf) -> Result<Exit, Error> {
    let current = schema::schema_text();
    if !check {
        print!("{current}");
        return Ok(Exit::Ok);
    }
    let committed = std::fs::read_to_string(file).map_err(|e| {
        Error::Core(CoreError::Unreadable(manifest::source::Unreadable {
            path: file.display().to_string(),
            reason: e.to_string(),
        }))
    })?;
    if committed == current {
        println!("ok: {} is up to date", file.display());
        Ok(Exit::Ok)
    } else {
        Err(Error::Core(CoreError::StaleSchema { path: file.display().to_string() }))
    }
}
