//! Which rollout is due when. Pure: time is an argument, in the platform's clock (the
//! emulator's when there is one), so tests replay days of schedule in microseconds.
//!
//! # Guarantees
//! - A rollout is never in two passes at once; a change seen while it is in one makes
//!   it due again the moment that pass reports.
//! - At most `max_passes` passes at once (each works on up to
//!   [`crate::reconcile::CONCURRENCY`] rollouts at a time). Rollouts that fall due while
//!   every slot is taken wait, and then share the next pass.
//! - Every rollout due (within `coalesce`) goes into one pass, which lists each
//!   project/region once for all of them: a first pass over 1,000 rollouts is one pass.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    entries: BTreeMap<String, Entry>,
    max_passes: usize,
    passes: usize,
    coalesce: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    due: SystemTime,
    running: bool,
    /// Changed while in a pass: due again as soon as that pass reports.
    again: bool,
}

impl Schedule {
    pub(crate) fn new(max_passes: usize, coalesce: Duration) -> Schedule {
        Schedule { entries: BTreeMap::new(), max_passes: max_passes.max(1), passes: 0, coalesce }
    }

    /// Makes `name` due at `now` (a new or changed manifest), adding it if new.
    pub(crate) fn due_now(&mut self, name: &str, now: SystemTime) {
        match self.entries.get_mut(name) {
            Some(entry) if entry.running => entry.again = true,
            Some(entry) => entry.due = entry.due.min(now),
            None => {
                self.entries.insert(name.to_owned(), Entry { due: now, running: false, again: false });
            }
        }
    }

    /// Stops scheduling `name` (its manifest is gone). A pass it is in still reports,
    /// and that report is then ignored.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.entries.remove(name).is_some()
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The rollouts for a new pass, marked as in it: every one due by `now + coalesce`;
    /// none while `max_passes` passes are under way. Call [`Schedule::pass_done`] when
    /// the pass is over.
    pub(crate) fn take(&mut self, now: SystemTime) -> Vec<String> {
        if self.passes >= self.max_passes {
            return Vec::new();
        }
        let horizon = now.checked_add(self.coalesce).unwrap_or(now);
        let mut due: Vec<(SystemTime, &String)> =
            self.entries.iter().filter(|(_, e)| !e.running && e.due <= horizon).map(|(n, e)| (e.due, n)).collect();
        due.sort();
        let names: Vec<String> = due.into_iter().map(|(_, n)| n.clone()).collect();
        for name in &names {
            if let Some(entry) = self.entries.get_mut(name) {
                entry.running = true;
            }
        }
        if !names.is_empty() {
            self.passes += 1;
        }
        names
    }

    /// A pass is over (each of its rollouts has reported through [`Schedule::finished`],
    /// or is finished here with `requeue`: a pass need not decide on every rollout).
    pub(crate) fn pass_done(&mut self, names: &[String], now: SystemTime, requeue: Duration) {
        for name in names {
            if self.is_running(name) {
                self.finished(name, now, requeue);
            }
        }
        self.passes = self.passes.saturating_sub(1);
    }

    /// Passes under way.
    pub(crate) fn passes(&self) -> usize {
        self.passes
    }

    /// Whether another pass may start now.
    pub(crate) fn has_room(&self) -> bool {
        self.passes < self.max_passes
    }

    /// A pass reported on `name` at `now`: look again after `requeue`, or at once if its
    /// manifest changed meanwhile.
    pub(crate) fn finished(&mut self, name: &str, now: SystemTime, requeue: Duration) {
        if let Some(entry) = self.entries.get_mut(name) {
            entry.due = if entry.again { now } else { now.checked_add(requeue).unwrap_or(now) };
            entry.running = false;
            entry.again = false;
        }
    }

    /// Whether `name` is in a pass now.
    pub(crate) fn is_running(&self, name: &str) -> bool {
        self.entries.get(name).is_some_and(|e| e.running)
    }

    pub(crate) fn running(&self) -> usize {
        self.entries.values().filter(|e| e.running).count()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When the next rollout not in a pass falls due.
    pub(crate) fn next_due(&self) -> Option<SystemTime> {
        self.entries.values().filter(|e| !e.running).map(|e| e.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn each_rollout_runs_on_its_own_requeue_not_a_global_tick() {
        let mut s = Schedule::new(16, Duration::ZERO);
        s.due_now("a", t(0));
        s.due_now("b", t(0));
        assert_eq!(s.take(t(0)), ["a", "b"]);
        s.finished("a", t(1), Duration::from_secs(10));
        s.finished("b", t(1), Duration::from_secs(300));
        assert_eq!(s.next_due(), Some(t(11)));
        assert!(s.take(t(10)).is_empty());
        assert_eq!(s.take(t(11)), ["a"]);
        s.finished("a", t(11), Duration::from_secs(10));
        assert_eq!(s.take(t(21)), ["a"]);
        assert_eq!(s.next_due(), Some(t(301)));
    }

    #[test]
    fn a_rollout_in_a_pass_is_not_taken_twice_and_a_change_meanwhile_runs_right_after() {
        let mut s = Schedule::new(16, Duration::ZERO);
        s.due_now("a", t(0));
        assert_eq!(s.take(t(0)), ["a"]);
        s.due_now("a", t(1));
        assert!(s.take(t(1)).is_empty(), "still in its first pass");
        assert_eq!(s.next_due(), None);
        s.finished("a", t(2), Duration::from_secs(300));
        assert_eq!(s.take(t(2)), ["a"], "the change is picked up at once, not after 300 s");
    }

    #[test]
    fn passes_are_bounded_and_what_falls_due_meanwhile_shares_the_next() {
        let mut s = Schedule::new(1, Duration::ZERO);
        s.due_now("c", t(0));
        assert_eq!(s.take(t(0)), ["c"]);
        s.due_now("a", t(5));
        s.due_now("b", t(3));
        assert!(!s.has_room());
        assert!(s.take(t(5)).is_empty(), "the one pass slot is taken");
        s.finished("c", t(6), Duration::from_secs(60));
        assert!(s.take(t(6)).is_empty(), "still taken until the pass is over");
        s.pass_done(&["c".to_owned()], t(6), Duration::from_secs(300));
        assert_eq!(s.next_due(), Some(t(3)));
        assert_eq!(s.take(t(6)), ["b", "a"], "earliest first, in one pass");
        assert_eq!((s.running(), s.passes()), (2, 1));
    }

    #[test]
    fn a_rollout_a_pass_did_not_decide_on_is_looked_at_again_later() {
        let mut s = Schedule::new(4, Duration::ZERO);
        s.due_now("held", t(0));
        let names = s.take(t(0));
        s.pass_done(&names, t(1), Duration::from_secs(300));
        assert_eq!((s.running(), s.passes(), s.next_due()), (0, 0, Some(t(301))));
    }

    #[test]
    fn rollouts_due_close_together_share_a_pass() {
        let mut s = Schedule::new(16, Duration::from_secs(2));
        for (name, at) in [("a", 10), ("b", 11), ("c", 13)] {
            s.due_now(name, t(0));
            assert_eq!(s.take(t(0)), [name]);
            s.finished(name, t(at), Duration::ZERO);
        }
        assert_eq!(s.take(t(10)), ["a", "b"]);
    }

    #[test]
    fn a_removed_rollout_is_forgotten_even_if_its_pass_reports_later() {
        let mut s = Schedule::new(16, Duration::ZERO);
        s.due_now("a", t(0));
        assert_eq!(s.take(t(0)), ["a"]);
        assert!(s.remove("a"));
        s.finished("a", t(1), Duration::ZERO);
        assert!(s.is_empty());
        assert!(s.take(t(100)).is_empty());
    }

    #[test]
    fn a_new_manifest_does_not_postpone_an_earlier_due_time() {
        let mut s = Schedule::new(16, Duration::ZERO);
        s.due_now("a", t(0));
        s.due_now("a", t(50));
        assert_eq!(s.next_due(), Some(t(0)));
    }

    #[test]
    fn absurd_requeues_saturate_instead_of_panicking() {
        let mut s = Schedule::new(0, Duration::MAX);
        s.due_now("a", t(0));
        assert_eq!(s.take(t(0)), ["a"]);
        s.finished("a", t(0), Duration::MAX);
        assert!(s.next_due().is_some());
    }
}
