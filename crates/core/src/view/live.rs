//! The watch loop of `canary status --watch`: look, draw, wait, until Ctrl-C.
//!
//! On a terminal the view is redrawn in place (cursor home, each line cleared to its
//! end, the rest of the screen cleared), in colour unless `NO_COLOR` is set. Piped, a
//! new block is printed only when the view changed — plain lines, each block ending
//! with a blank line (there are none inside one) — or, with `-o json`, one JSON array
//! per line (`-o yaml`: one `---` document per change).
//!
//! # Errors
//! A closed stdout (the reader went away) ends the loop quietly; Ctrl-C ends it with
//! success. A look that fails is shown in the view (each status's `error`), not fatal.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, SystemTime};

use crate::status::Status;
use crate::style::Colour;

/// How the watch prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

/// One look at every rollout: their statuses and the pass's "now".
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub statuses: Vec<Status>,
    pub(crate) now: SystemTime,
}

/// One read-only look at `rollouts` (and, frozen, the rollouts whose manifests are
/// `invalid` now), as `status` shows them: a planning pass, nothing written.
pub async fn look<P>(
    platform: &P,
    rollouts: &[crate::manifest::CanaryRollout],
    invalid: &[crate::reconcile::Invalid],
) -> Snapshot
where
    P: crate::platform::CloudRun + crate::platform::Monitoring + crate::platform::Clock + crate::platform::Prober,
{
    let outcomes = crate::reconcile::pass_with_invalid(platform, rollouts, invalid, crate::reconcile::Mode::Plan).await;
    let now = outcomes.first().map_or_else(SystemTime::now, |o| o.now);
    Snapshot { statuses: crate::status::statuses(rollouts, &outcomes), now }
}

/// What to print for a snapshot, and what decides whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) text: String,
    /// Equal keys mean nothing a reader cares about changed (the header's clock and the
    /// seconds of time left do not count).
    pub(crate) key: String,
}

/// The frame for `snapshot`. `redraw`: drawn in place on a terminal.
pub(crate) fn frame(snapshot: &Snapshot, output: Output, colour: Colour, redraw: bool, interval: Duration) -> Frame {
    match output {
        Output::Text => {
            let lines = super::render(&snapshot.statuses, snapshot.now, colour);
            let key = lines.get(1..).unwrap_or_default().join("\n");
            let text = if redraw {
                let mut out = String::from("\x1b[H");
                for (i, line) in lines.iter().enumerate() {
                    // On a screen, air before each rollout (its line is not indented).
                    if i > 0 && !line.starts_with(' ') {
                        out.push_str("\x1b[K\n");
                    }
                    out.push_str(line);
                    out.push_str("\x1b[K\n");
                }
                let every = humantime::format_duration(interval);
                out.push_str(&format!(
                    "\x1b[K\n{}\x1b[K\n\x1b[J",
                    colour.paint("2", &format!("every {every} · Ctrl-C to quit"))
                ));
                out
            } else {
                format!("{}\n\n", lines.join("\n"))
            };
            Frame { text, key }
        }
        Output::Json | Output::Yaml => {
            let key = serde_json::to_string(&steady(&snapshot.statuses)).unwrap_or_default();
            let text = if output == Output::Json {
                format!("{}\n", serde_json::to_string(&snapshot.statuses).unwrap_or_default())
            } else {
                format!("---\n{}", serde_saphyr::to_string(&snapshot.statuses).unwrap_or_default())
            };
            Frame { text, key }
        }
    }
}

/// The statuses with the clock and the seconds of time left taken out.
fn steady(statuses: &[Status]) -> Vec<Status> {
    statuses
        .iter()
        .map(|s| Status {
            observed_at: String::new(),
            hold_remaining_seconds: s.hold_remaining_seconds.map(|left| left.div_ceil(60)),
            ..s.clone()
        })
        .collect()
}

/// Looks every `interval` and prints, until Ctrl-C, until stdout is closed, or until a
/// snapshot satisfies `done` (drawn first); returns the last snapshot.
pub async fn run<F, Fut>(
    mut look: F,
    output: Output,
    interval: Duration,
    done: impl Fn(&Snapshot) -> bool,
) -> std::io::Result<Option<Snapshot>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Snapshot>,
{
    let redraw = output == Output::Text && std::io::stdout().is_terminal();
    let colour = if output == Output::Text { Colour::for_stdout() } else { Colour::Never };
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let mut stdout = std::io::stdout();
    if redraw {
        // Hide the cursor and start from a clear screen; shown again on the way out.
        write_out(&mut stdout, "\x1b[?25l\x1b[H\x1b[2J")?;
    }
    let mut last: Option<String> = None;
    let mut seen: Option<Snapshot> = None;
    let result = loop {
        let snapshot = tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            snapshot = look() => snapshot,
        };
        let frame = frame(&snapshot, output, colour, redraw, interval);
        if redraw || last.as_ref() != Some(&frame.key) {
            if let Err(e) = write_out(&mut stdout, &frame.text) {
                break if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) };
            }
            last = Some(frame.key);
        }
        let finished = done(&snapshot);
        seen = Some(snapshot);
        if finished {
            break Ok(());
        }
        tokio::select! {
            _ = &mut ctrl_c => break Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
    };
    if redraw {
        let _ = write_out(&mut stdout, "\x1b[?25h");
    }
    result.map(|()| seen)
}

fn write_out(stdout: &mut std::io::Stdout, text: &str) -> std::io::Result<()> {
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())?;
    lock.flush()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::analysis::verdict::{Check, CheckKind, Outcome};
    use crate::state::Phase;

    fn snapshot(left: u64, observed: f64) -> Snapshot {
        let trigger = Check {
            kind: CheckKind::ErrorRate,
            observed: Some(observed),
            threshold: 0.05,
            result: Outcome::Pass,
            requests_needed: None,
            stable: None,
            shared: false,
        };
        Snapshot {
            statuses: vec![Status {
                phase: Some(Phase::Progressing),
                stage: 1,
                hold_remaining_seconds: Some(left),
                stage_weights: vec![5, 100],
                stage_hold_seconds: vec![1800, 0],
                triggers: vec![trigger],
                observed_at: format!("t{left}"),
                ..crate::view::tests::blank("api")
            }],
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(left),
        }
    }

    #[test]
    fn piped_frames_change_only_when_the_view_does() {
        let every = Duration::from_secs(2);
        for output in [Output::Text, Output::Json, Output::Yaml] {
            let a = frame(&snapshot(1200, 0.01), output, Colour::Never, false, every);
            let b = frame(&snapshot(1190, 0.01), output, Colour::Never, false, every);
            let c = frame(&snapshot(1190, 0.02), output, Colour::Never, false, every);
            assert_eq!(a.key, b.key, "{output:?}: ten seconds in the same minute");
            assert_ne!(b.key, c.key, "{output:?}: a new observed value");
        }
        let json = frame(&snapshot(1200, 0.01), Output::Json, Colour::Never, false, every).text;
        assert_eq!(json.lines().count(), 1, "one array per line");
        assert!(serde_json::from_str::<Value>(&json).unwrap().is_array());
    }

    #[test]
    fn a_terminal_frame_redraws_in_place() {
        let f = frame(&snapshot(1200, 0.01), Output::Text, Colour::Never, true, Duration::from_secs(2));
        assert!(f.text.starts_with("\x1b[H"));
        assert!(f.text.ends_with("\x1b[J"));
        assert!(f.text.contains("every 2s · Ctrl-C to quit"));
    }
}
