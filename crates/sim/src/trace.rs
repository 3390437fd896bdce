//! What a failing seed prints: the steps, API calls and decisions, in order, each with
//! the virtual time since the start.

use std::time::{Duration, SystemTime};

#[derive(Debug, Default)]
pub(crate) struct Trace {
    lines: Vec<String>,
    start: Option<SystemTime>,
    now: Option<SystemTime>,
}

/// How many of the newest lines a failure prints.
const TAIL: usize = 120;

impl Trace {
    pub(crate) fn at(&mut self, now: SystemTime) {
        self.start.get_or_insert(now);
        self.now = Some(now);
    }

    fn stamp(&self) -> String {
        let since = match (self.start, self.now) {
            (Some(start), Some(now)) => now.duration_since(start).unwrap_or(Duration::ZERO).as_secs(),
            _ => 0,
        };
        format!("[{:>2}h{:02}m{:02}s]", since / 3600, since / 60 % 60, since % 60)
    }

    pub(crate) fn line(&mut self, text: String) {
        let line = format!("{} {text}", self.stamp());
        self.lines.push(line);
    }

    /// A call made by reconciler `id`.
    pub(crate) fn call(&mut self, id: usize, text: String) {
        self.line(format!("    r{id} {text}"));
    }

    /// The newest lines, with how many came before (all of them with `SIM_TRACE=full`).
    pub(crate) fn tail(&self) -> String {
        let keep = if std::env::var("SIM_TRACE").is_ok_and(|v| v == "full") { usize::MAX } else { TAIL };
        let skip = self.lines.len().saturating_sub(keep);
        let mut out = String::new();
        if skip > 0 {
            out.push_str(&format!("  … {skip} earlier lines\n"));
        }
        for l in &self.lines[skip..] {
            out.push_str("  ");
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}
