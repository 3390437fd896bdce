//! The report's chart, as SVG: error rate and p95 latency per period for stable and
//! canary, one panel each, on one time axis (UTC), with each stage's start marked by a
//! labelled vertical line, the end (rollback, failure or promotion) marked, and the
//! rollback triggers' thresholds where they fit. Pure string building.
//!
//! Elements carry classes and `data-` attributes (`path.series[data-metric]
//! [data-revision]`, `g.marker.rollback`) so tests and tools can find them.

use std::fmt::Write as _;

use super::series::Point;
use super::timeline::Span;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const PANEL_HEIGHT: f64 = 200.0;
const PANEL_TOPS: [f64; 2] = [90.0, 360.0];
const HEIGHT: f64 = 640.0;
const STABLE: &str = "#1f77b4";
const CANARY: &str = "#ff7f0e";
const STAGE: &str = "#888888";
const THRESHOLD: &str = "#b22222";

/// How the rollout ended, for the end marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    RolledBack,
    Failed,
    Promoted,
}

/// Everything the chart shows.
#[derive(Debug, Clone)]
pub(crate) struct Chart<'a> {
    pub(crate) title: String,
    /// The time axis, epoch seconds.
    pub(crate) from: u64,
    pub(crate) to: u64,
    /// Seconds each point covers.
    pub(crate) period: u64,
    pub(crate) stable: &'a [Point],
    pub(crate) canary: &'a [Point],
    pub(crate) spans: &'a [Span],
    /// When the canary was deployed (at 0%), when known.
    pub(crate) deployed: Option<u64>,
    pub(crate) end: Option<(End, u64)>,
    /// The error-rate trigger's bound as a fraction (`errorRate above`, or 1 −
    /// `availability below`).
    pub(crate) error_threshold: Option<f64>,
    /// The p95 trigger's bound, ms.
    pub(crate) p95_threshold: Option<f64>,
    /// Shared incidents the rollout paused for, epoch seconds (start, end).
    pub(crate) incidents: &'a [(u64, u64)],
}

/// One panel: which metric, how to read it from a point, and its unit.
struct Panel {
    metric: &'static str,
    title: &'static str,
    value: fn(&Point) -> Option<f64>,
    threshold: Option<f64>,
    /// The smallest top of the axis, so flat zeros still draw an axis.
    floor: f64,
    /// Written after a threshold's value.
    unit: &'static str,
}

pub(crate) fn svg(chart: &Chart) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ =
        writeln!(out, r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#, escape(&chart.title));
    let panels = [
        Panel {
            metric: "error-rate",
            title: "error rate (%)",
            value: |p| p.error_rate.map(|r| r * 100.0),
            threshold: chart.error_threshold.map(|t| t * 100.0),
            floor: 1.0,
            unit: "%",
        },
        Panel {
            metric: "p95-latency",
            title: "p95 latency (ms)",
            value: |p| p.p95,
            threshold: chart.p95_threshold,
            floor: 100.0,
            unit: " ms",
        },
    ];
    let mut drawn = String::new();
    let mut thresholds = false;
    for (panel, top) in panels.iter().zip(PANEL_TOPS) {
        thresholds |= draw_panel(&mut drawn, chart, panel, top);
    }
    legend(&mut out, chart, thresholds);
    // Shared incidents: shaded behind the lines, labelled once.
    for &(start, end) in chart.incidents {
        // Within the axis: a hand-edited history can say anything.
        let start = start.clamp(chart.from, chart.to.max(chart.from));
        let end = end.clamp(start, chart.to.max(start));
        let (x1, x2) = (x_of(chart, start as f64), x_of(chart, end as f64));
        let _ = writeln!(out, r#"<g class="marker incident" data-from="{start}" data-to="{end}">"#);
        for top in PANEL_TOPS {
            let _ = writeln!(
                out,
                r#"<rect x="{x1:.1}" y="{top}" width="{:.1}" height="{PANEL_HEIGHT}" fill="{THRESHOLD}" fill-opacity="0.12"/>"#,
                (x2 - x1).max(1.0)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{x1:.1}" y="{:.1}" fill="{THRESHOLD}">shared incident {}</text>"#,
            PANEL_TOPS[1] - 6.0,
            clock(start)
        );
        let _ = writeln!(out, "</g>");
    }
    out.push_str(&drawn);
    if let Some((end, at)) = chart.end {
        let (class, colour, label) = match end {
            End::RolledBack => ("rollback", THRESHOLD, "rolled back"),
            End::Failed => ("failed", THRESHOLD, "failed"),
            End::Promoted => ("promoted", "#2ca02c", "promoted"),
        };
        let x = x_of(chart, at as f64);
        let _ = writeln!(out, r#"<g class="marker {class}" data-at="{at}">"#);
        for top in PANEL_TOPS {
            let _ = writeln!(
                out,
                r#"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
                top + PANEL_HEIGHT
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}" font-weight="bold" text-anchor="end">{label} {}</text>"#,
            x - 4.0,
            PANEL_TOPS[0] - 6.0,
            clock(at)
        );
        let _ = writeln!(out, "</g>");
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time (UTC) from {}</text>"#,
        LEFT + plot_width() / 2.0,
        HEIGHT - 12.0,
        day_and_clock(chart.from)
    );
    out.push_str("</svg>\n");
    out
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn x_of(chart: &Chart, t: f64) -> f64 {
    let span = (chart.to.saturating_sub(chart.from)).max(1) as f64;
    LEFT + ((t - chart.from as f64) / span).clamp(0.0, 1.0) * plot_width()
}

/// The legend; `thresholds`: a trigger's bound is drawn in some panel.
fn legend(out: &mut String, chart: &Chart, thresholds: bool) {
    let mut x = LEFT;
    let y = 50.0;
    let mut item = |out: &mut String, colour: &str, dash: &str, label: &str| {
        let _ = writeln!(
            out,
            r#"<g class="legend"><line x1="{x:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}">{label}</text></g>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0
        );
        x += 40.0 + 7.0 * label.chars().count() as f64;
    };
    item(out, STABLE, "none", "stable");
    item(out, CANARY, "none", "canary");
    item(out, STAGE, "4 3", "stage start (canary weight)");
    if thresholds {
        item(out, THRESHOLD, "2 3", "rollback trigger");
    }
    match chart.end.map(|(e, _)| e) {
        Some(End::RolledBack) => item(out, THRESHOLD, "none", "rollback"),
        Some(End::Failed) => item(out, THRESHOLD, "none", "failure"),
        Some(End::Promoted) => item(out, "#2ca02c", "none", "promotion"),
        None => {}
    }
}

/// Draws one panel; says whether it drew a trigger's bound.
fn draw_panel(out: &mut String, chart: &Chart, panel: &Panel, top: f64) -> bool {
    let bottom = top + PANEL_HEIGHT;
    let values: Vec<f64> =
        chart.stable.iter().chain(chart.canary).filter_map(panel.value).filter(|v| v.is_finite()).collect();
    let data_max = values.iter().copied().fold(0.0_f64, f64::max);
    // A trigger far above the data would flatten it: show the bound only when it is
    // within three times the data's range.
    let threshold =
        panel.threshold.filter(|t| t.is_finite() && *t > 0.0 && (values.is_empty() || *t <= data_max * 3.0));
    let top_value = data_max.max(threshold.unwrap_or(0.0)).max(panel.floor) * 1.1;
    // Absurd values from a server must not make an endless axis.
    let top_value = if top_value.is_finite() { top_value } else { f64::MAX / 10.0 };
    let step = nice_step(top_value / 4.0);
    let y_max = (top_value / step).ceil() * step;
    let y_of = |v: f64| bottom - (v / y_max).clamp(0.0, 1.0) * PANEL_HEIGHT;

    let _ = writeln!(out, r#"<g class="panel" data-metric="{}">"#, panel.metric);
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{:.1}" height="{PANEL_HEIGHT}" fill="none" stroke="#333333"/>"##,
        plot_width()
    );
    // Y ticks and grid.
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let y = y_of(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_width(),
            LEFT - 6.0,
            y + 4.0,
            tick_label(v, step)
        );
        v += step;
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        LEFT - 52.0,
        top + PANEL_HEIGHT / 2.0,
        panel.title
    );
    // X ticks.
    let minutes = chart.to.saturating_sub(chart.from) / 60;
    let every = [1u64, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10_080]
        .into_iter()
        .find(|m| minutes / m <= 8)
        .unwrap_or(10_080)
        * 60;
    let mut t = chart.from.div_ceil(every) * every;
    while t <= chart.to {
        let x = x_of(chart, t as f64);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{:.1}" stroke="#333333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 5.0,
            bottom + 18.0,
            clock(t)
        );
        t += every;
    }
    if let Some(at) = chart.deployed.filter(|at| (chart.from..=chart.to).contains(at)) {
        let x = x_of(chart, at as f64);
        let _ = writeln!(
            out,
            r##"<g class="deploy"><line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{STAGE}" stroke-dasharray="1 3"/><text x="{:.1}" y="{:.1}" fill="#555555" text-anchor="end">deploy</text></g>"##,
            x - 3.0,
            top + 13.0
        );
    }
    // Stage starts.
    for span in chart.spans {
        let at = span.start.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        if at < chart.from || at > chart.to {
            continue;
        }
        let x = x_of(chart, at as f64);
        let _ = writeln!(
            out,
            r##"<g class="stage" data-stage="{}"><line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="{STAGE}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#555555">{}%</text></g>"##,
            span.stage,
            x + 3.0,
            top + 13.0,
            span.weight
        );
    }
    if let Some(limit) = threshold {
        let y = y_of(limit);
        let _ = writeln!(
            out,
            r#"<g class="threshold"><line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{THRESHOLD}" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" fill="{THRESHOLD}" text-anchor="end">trigger {}{}</text></g>"#,
            LEFT + plot_width(),
            LEFT + plot_width() - 4.0,
            y - 4.0,
            tick_label(limit, step / 10.0),
            panel.unit
        );
    }
    if values.is_empty() {
        let _ = writeln!(
            out,
            r##"<text class="no-data" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="18" fill="#999999">no data</text>"##,
            LEFT + plot_width() / 2.0,
            top + PANEL_HEIGHT / 2.0
        );
    }
    for (revision, points, colour) in [("stable", chart.stable, STABLE), ("canary", chart.canary, CANARY)] {
        let d = path(chart, points, panel.value, &y_of);
        if !d.is_empty() {
            let _ = writeln!(
                out,
                r#"<path class="series" data-metric="{}" data-revision="{revision}" d="{d}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round"/>"#,
                panel.metric
            );
        }
    }
    let _ = writeln!(out, "</g>");
    threshold.is_some()
}

/// The series as one path; a gap in the data (a missing period) lifts the pen.
fn path(chart: &Chart, points: &[Point], value: fn(&Point) -> Option<f64>, y_of: &dyn Fn(f64) -> f64) -> String {
    let mut d = String::new();
    let mut last_end: Option<u64> = None;
    for p in points {
        if p.end < chart.from || p.end > chart.to + chart.period {
            continue;
        }
        let Some(v) = value(p).filter(|v| v.is_finite()) else {
            last_end = None;
            continue;
        };
        // Each point at the middle of the period it covers.
        let x = x_of(chart, p.end as f64 - chart.period as f64 / 2.0);
        let y = y_of(v);
        let joined = last_end.is_some_and(|e| p.end.saturating_sub(e) <= chart.period);
        if joined {
            let _ = write!(d, " L{x:.1},{y:.1}");
        } else {
            // A lone point still shows: a zero-length stroke with round caps is a dot.
            let _ = write!(d, "{}M{x:.1},{y:.1} l0.01,0", if d.is_empty() { "" } else { " " });
        }
        last_end = Some(p.end);
    }
    d
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

fn clock(t: u64) -> String {
    let s = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string();
    s.get(11..16).unwrap_or_default().to_owned()
}

fn day_and_clock(t: u64) -> String {
    let s = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string();
    format!("{} {}", s.get(..10).unwrap_or_default(), s.get(11..16).unwrap_or_default())
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_numbers() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(120.0), 200.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn absurd_values_still_make_a_finite_chart() {
        let point = |end: u64, v: f64| Point { end, requests: 1, error_rate: Some(v), p95: Some(v) };
        let stable = [point(60, f64::MAX), point(120, 1e300), point(180, f64::INFINITY)];
        let chart = Chart {
            title: "a <b> & \"c\"".to_owned(),
            from: 0,
            to: 240,
            period: 60,
            stable: &stable,
            canary: &[],
            spans: &[],
            deployed: Some(u64::MAX),
            end: Some((End::RolledBack, 10_000)),
            error_threshold: Some(f64::NAN),
            p95_threshold: Some(-1.0),
            incidents: &[(u64::MAX, 0), (30, 20)],
        };
        let text = svg(&chart);
        assert!(text.contains("a &lt;b&gt; &amp; &quot;c&quot;"));
        assert!(text.len() < 20_000, "a bounded number of ticks");
    }
}
