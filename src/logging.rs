//! Logs on stderr through `tracing`: readable text for a person at a terminal, or one
//! JSON object a line in the shape Cloud Logging reads from a container's output
//! (`severity`, `message`, `time`, then the event's own fields such as `rollout`).
//!
//! The level comes from `CANARY_LOG` (an `EnvFilter` directive, default `info`).

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use canary_core::style::Colour;
use canary_core::time::rfc3339;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-11-26T10:00:00Z  INFO rollout=api: advanced to 25%`.
    Text,
    /// One JSON object a line, for Cloud Logging.
    Json,
}

/// The environment variable that sets which log lines are written.
pub const FILTER_ENV: &str = "CANARY_LOG";

/// Installs the global subscriber. A second call (tests running `run` twice in one
/// process) keeps the first.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => {
            let colour = Colour::for_stderr() == Colour::Always;
            builder.with_ansi(colour).with_target(false).try_init()
        }
        LogFormat::Json => builder.event_format(CloudLogging).try_init(),
    };
}

/// Cloud Logging's structured-logging line: its special fields, then the event's.
struct CloudLogging;

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert("severity".into(), severity(*event.metadata().level()).into());
        line.insert("message".into(), fields.0.remove("message").unwrap_or_default());
        line.insert("time".into(), rfc3339(SystemTime::now()).into());
        line.extend(fields.0);
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Cloud Logging's names for the levels.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_use_cloud_logging_names() {
        assert_eq!(severity(Level::WARN), "WARNING");
        assert_eq!(severity(Level::TRACE), "DEBUG");
        assert_eq!(severity(Level::ERROR), "ERROR");
    }
}
