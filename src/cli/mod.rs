//! The command line: clap types and dispatch; each command runs in a module of its own.

mod common;
mod manual;
mod pass;
mod serve;
mod show;
mod validate;

use common::*;
use manual::operate;
use pass::run_pass;
use serve::{run_demo, run_emulator, run_watch};
use show::{report_command, status, status_watch};
use validate::{schema_command, validate};

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::demo;
use crate::error::{Error, Exit, print};
use crate::logging::{self, LogFormat};
use canary_core::decide::PassResult;
use canary_core::diagnostic::{self, Diagnostic};
use canary_core::error::Error as CoreError;
use canary_core::manifest::{self, schema};
use canary_core::operate;
use canary_core::output;
use canary_core::platform::Gcp;
use canary_core::reconcile::{self, Mode, Shard};
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
    Pause(Named),
    /// Carry on after `canary pause`, a failed gate, or a lack of data.
    Resume(Named),
    /// Finish the current stage now (its hold and gates; not the rollback triggers).
    Promote {
        #[command(flatten)]
        target: Named,
        /// Go straight to Promoted.
        #[arg(long)]
        full: bool,
    },
    /// Roll back now and reject the image.
    Abort(Named),
    /// Clear the rejection of the manifest's image, so it is deployed again.
    Retry(Named),
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

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text)
}

/// The rollout a manual command is for, by name (`Target` is a traffic target in the core).
#[derive(Debug, clap::Args)]
struct Named {
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
            print(&e);
            e.exit().code()
        }
    }
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration: {e}"))?;
    if interval < std::time::Duration::from_millis(100) {
        return Err(format!("`{text}` is too short: look at most every 100ms"));
    }
    Ok(interval)
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{text}` is not a duration: write one like 30s, 5m or 1h")),
    }
}
