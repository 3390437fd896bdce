//! Sums of a revision's published minutes over ranges, for aligned Monitoring queries.
//! Whole hours and whole 10 minutes are summed once and kept (a published minute never
//! changes), so a query over a day reads 24 hours instead of drawing 1,440 minutes, and
//! the emulator holds a few hundred bytes per revision-hour instead of every minute's
//! points.
//!
//! What would make a kept hour wrong is dropped: a gap added (it can hide past minutes),
//! a revision deleted (its name can come back with another history), or a world setter
//! called with a time before an hour already kept (tests drive the world's times).

use super::*;

/// The kept sums: an hour, or 10 minutes, of minutes starting at an aligned hour or 10
/// minutes (epoch seconds), the longer first.
pub(super) const CELLS: [u64; 3] = [3600, 600, 60];
/// How far back from the newest cell of its length a revision's 10-minute cells and
/// minutes are kept (hours are kept for as long as the revision is).
fn kept_for(span: u64) -> u64 {
    if span >= 600 { 8 * 3600 } else { 45 * 60 }
}

/// One revision-hour's sums, each worked out when first asked for.
#[derive(Debug, Clone, Default)]
pub(super) struct Cell {
    counts: Option<MinuteCounts>,
    latency: Option<Option<Compact>>,
    /// The latest end of a query it was read for: a cell queries keep asking for (the
    /// start of a sum off the hour, or 10-minute periods reaching hours back) stays
    /// however old it is.
    asked: u64,
}

/// A histogram without its leading and trailing empty buckets.
#[derive(Debug, Clone)]
struct Compact {
    first: usize,
    counts: Box<[u64]>,
    count: u64,
    mean: f64,
    sum_of_squared_deviation: f64,
}

impl Compact {
    fn of(h: &Histogram) -> Compact {
        let first = h.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let end = h.counts.iter().rposition(|&c| c > 0).map_or(first, |i| i + 1);
        Compact {
            first,
            counts: h.counts[first..end].into(),
            count: h.count,
            mean: h.mean,
            sum_of_squared_deviation: h.sum_of_squared_deviation,
        }
    }

    fn expand(&self) -> Histogram {
        let mut h = Histogram::latency();
        h.counts[self.first..self.first + self.counts.len()].copy_from_slice(&self.counts);
        h.count = self.count;
        h.mean = self.mean;
        h.sum_of_squared_deviation = self.sum_of_squared_deviation;
        h
    }
}

impl World {
    /// `revision`'s request counts over the minutes starting in `[from, to)` (aligned
    /// epoch seconds; gaps left out). `to` must not be later than the published minutes.
    /// `asked` is the end of the whole query the range is part of: the kept cells it uses
    /// are noted as asked for until then.
    pub(crate) fn range_counts(&mut self, revision: &str, from: u64, to: u64, asked: u64) -> MinuteCounts {
        let mut sum = MinuteCounts::default();
        let mut m = from;
        while m < to {
            if let Some(cell) = cell_at(m, to) {
                sum.add(&self.cell_counts(revision, m, cell));
                self.asked(revision, m, cell, asked);
                m += cell;
            } else {
                if !self.in_gap(revision, m) {
                    sum.add(&self.minute_counts(revision, m));
                }
                m += 60;
            }
        }
        sum
    }

    /// `revision`'s latency distribution over the minutes starting in `[from, to)`, as
    /// [`World::range_counts`]; `None` when no request was served.
    pub(crate) fn range_latency(&mut self, revision: &str, from: u64, to: u64, asked: u64) -> Option<Histogram> {
        let mut sum: Option<Histogram> = None;
        let mut add = |h: Histogram| match &mut sum {
            Some(s) => s.add(&h),
            None => sum = Some(h),
        };
        let mut m = from;
        while m < to {
            if let Some(cell) = cell_at(m, to) {
                if let Some(h) = self.cell_latency(revision, m, cell) {
                    add(h);
                }
                self.asked(revision, m, cell, asked);
                m += cell;
            } else {
                if !self.in_gap(revision, m)
                    && let Some(h) = self.minute_latency(revision, m)
                {
                    add(h);
                }
                m += 60;
            }
        }
        sum
    }

    /// A kept cell's counts: an hour summed from its 10-minute cells, those from minutes.
    fn cell_counts(&mut self, revision: &str, start: u64, span: u64) -> MinuteCounts {
        if let Some(c) = self.cells.get(revision).and_then(|c| c.get(&(start, span))).and_then(|c| c.counts) {
            return c;
        }
        let sum = match smaller(span) {
            // An hour or 10 minutes: its smaller cells where they are kept, else its minutes.
            Some(part) => {
                let mut sum = MinuteCounts::default();
                for m in (start..start + span).step_by(part as usize) {
                    match self.cells.get(revision).and_then(|c| c.get(&(m, part))).and_then(|c| c.counts) {
                        Some(kept) => sum.add(&kept),
                        None => sum.add(&self.range_counts_by_minute(revision, m, m + part)),
                    }
                }
                sum
            }
            None => self.range_counts_by_minute(revision, start, start + span),
        };
        self.keep(revision, start, span).counts = Some(sum);
        sum
    }

    /// Notes that a query ending at `asked` used the cell at (`start`, `span`).
    fn asked(&mut self, revision: &str, start: u64, span: u64, asked: u64) {
        if let Some(cell) = self.cells.get_mut(revision).and_then(|c| c.get_mut(&(start, span))) {
            cell.asked = cell.asked.max(asked);
        }
    }

    /// The cell of `revision` at (`start`, `span`), made if new. Keeping a 10-minute cell
    /// or a minute drops that revision's cells of its length older than [`kept_for`] that
    /// no range has asked for since: older minutes are read in hours, and a long-running
    /// emulator must not grow with time.
    fn keep(&mut self, revision: &str, start: u64, span: u64) -> &mut Cell {
        let cells = self.cells.entry(revision.to_owned()).or_default();
        if span < CELLS[0] && !cells.contains_key(&(start, span)) {
            let horizon = start.saturating_sub(kept_for(span));
            let old: Vec<(u64, u64)> = cells
                .range(..(horizon, 0))
                .filter(|((_, s), c)| *s == span && c.asked < horizon)
                .map(|(k, _)| *k)
                .collect();
            for k in old {
                cells.remove(&k);
            }
        }
        cells.entry((start, span)).or_default()
    }

    fn range_counts_by_minute(&self, revision: &str, from: u64, to: u64) -> MinuteCounts {
        let mut sum = MinuteCounts::default();
        for m in (from..to).step_by(60) {
            if !self.in_gap(revision, m) {
                sum.add(&self.minute_counts(revision, m));
            }
        }
        sum
    }

    fn cell_latency(&mut self, revision: &str, start: u64, span: u64) -> Option<Histogram> {
        if let Some(kept) =
            self.cells.get(revision).and_then(|c| c.get(&(start, span))).and_then(|c| c.latency.as_ref())
        {
            return kept.as_ref().map(Compact::expand);
        }
        let mut sum: Option<Histogram> = None;
        let mut add = |h: Histogram| match &mut sum {
            Some(s) => s.add(&h),
            None => sum = Some(h),
        };
        // An hour or 10 minutes: its smaller cells where they are kept, else its minutes;
        // a minute: drawn.
        let part = smaller(span).unwrap_or(60);
        for m in (start..start + span).step_by(part as usize) {
            let kept = (part < span)
                .then(|| self.cells.get(revision).and_then(|c| c.get(&(m, part))).and_then(|c| c.latency.clone()))
                .flatten();
            match kept {
                Some(kept) => {
                    if let Some(h) = kept.map(|k| k.expand()) {
                        add(h);
                    }
                }
                None => {
                    for minute in (m..m + part).step_by(60) {
                        if !self.in_gap(revision, minute)
                            && let Some(h) = self.minute_latency(revision, minute)
                        {
                            add(h);
                        }
                    }
                }
            }
        }
        self.keep(revision, start, span).latency = Some(sum.as_ref().map(Compact::of));
        sum
    }

    /// Drops every kept hour (a gap can hide minutes of any of them).
    pub(super) fn forget_all_cells(&mut self) {
        self.cells.clear();
    }

    /// Drops the kept hours of revisions whose name starts with `prefix`.
    pub(super) fn forget_cells_of(&mut self, prefix: &str) {
        self.cells.retain(|revision, _| !revision.starts_with(prefix));
    }

    /// Drops kept cells that end after `t` (a change said to take effect at `t`).
    pub(super) fn forget_cells_after(&mut self, t: SystemTime) {
        let t = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        for cells in self.cells.values_mut() {
            cells.retain(|(start, span), _| start + span <= t);
        }
    }

    /// The starts of the kept cells `span` long, of every revision (for tests).
    pub fn kept_starts(&self, span: u64) -> std::collections::BTreeSet<u64> {
        self.cells.values().flat_map(|c| c.keys().filter(|(_, s)| *s == span).map(|(start, _)| *start)).collect()
    }

    /// How many revision-hours are kept (for tests and the emulator's own benchmarks).
    pub fn kept_hours(&self) -> usize {
        self.cells.values().map(|c| c.keys().filter(|(_, span)| *span == CELLS[0]).count()).sum()
    }
}

/// The longest kept cell that starts at `m` and ends by `to`.
fn cell_at(m: u64, to: u64) -> Option<u64> {
    CELLS.into_iter().find(|&span| m.is_multiple_of(span) && m + span <= to)
}

/// The kept cells a cell of `span` is made of, if any.
fn smaller(span: u64) -> Option<u64> {
    CELLS.into_iter().find(|&s| s < span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_histogram_expands_to_the_same_one() {
        let mut h = Histogram::latency();
        h.counts[7] = 3;
        h.counts[9] = 1;
        h.count = 4;
        h.mean = 5.5;
        h.sum_of_squared_deviation = 2.0;
        let c = Compact::of(&h);
        assert_eq!(c.counts.len(), 3);
        assert_eq!(c.expand(), h);
        assert_eq!(Compact::of(&Histogram::latency()).expand(), Histogram::latency());
    }
}
