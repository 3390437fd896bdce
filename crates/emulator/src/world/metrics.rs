//! What the world publishes to Cloud Monitoring: profiles by image, load by service,
//! metric gaps, and each revision's requests, errors and latencies per minute.

use super::*;

impl World {
    /// Sets how revisions of an image behave from `now` on (metrics for earlier minutes
    /// keep the behaviour that was in force then).
    pub fn put_profile(&mut self, profile: Profile, now: SystemTime) -> Result<(), String> {
        profile.validate()?;
        self.forget_cells_after(now);
        self.profile_history.entry(profile.image.clone()).or_default().set(now, profile.clone());
        self.profiles.insert(profile.image.clone(), profile);
        Ok(())
    }

    /// The profile in force for `image` at `t`; `None` means the default healthy one.
    pub(super) fn profile_at(&self, image: &str, t: SystemTime) -> Option<&Profile> {
        self.profile_history.get(image)?.at(t)
    }

    /// Sets a service's request rate from `now` on.
    pub(crate) fn set_load(&mut self, service: &str, load: Load, now: SystemTime) -> Result<(), String> {
        if ServiceName::parse(service).is_none() {
            return Err(format!("service: `{service}` is not projects/P/locations/L/services/S"));
        }
        if !(load.rps.is_finite() && load.rps >= 0.0 && load.rps <= 1_000_000.0) {
            return Err(format!("rps: {} is not a request rate from 0 to 1000000", load.rps));
        }
        self.forget_cells_after(now);
        self.loads.entry(service.to_owned()).or_default().set(now, load);
        Ok(())
    }

    /// Sets the production conditions every revision of `service` meets from `now` on
    /// (replacing any set before; incidents count from `now`).
    pub fn set_conditions(&mut self, service: &str, conditions: Conditions, now: SystemTime) -> Result<(), String> {
        if ServiceName::parse(service).is_none() {
            return Err(format!("service: `{service}` is not projects/P/locations/L/services/S"));
        }
        conditions.validate()?;
        self.forget_cells_after(now);
        self.conditions.entry(service.to_owned()).or_default().set(now, conditions);
        Ok(())
    }

    /// Every service's conditions in force at `now`.
    pub(crate) fn conditions_at(&self, now: SystemTime) -> Vec<(String, Conditions)> {
        let mut all: Vec<(String, Conditions)> =
            self.conditions.iter().filter_map(|(s, t)| Some((s.clone(), t.at(now)?.clone()))).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// When `short`'s share of `service`'s traffic last went up, at or before `t`.
    fn last_increase(&self, service: &str, short: &str, t: SystemTime) -> Option<SystemTime> {
        let history = self.splits.get(service)?;
        let share = |split: &Vec<(String, u64)>| split.iter().find(|(r, _)| r == short).map_or(0, |(_, p)| *p);
        let entries = history.entries();
        let mut last = None;
        for (i, (at, split)) in entries.iter().enumerate() {
            if *at > t {
                break;
            }
            let before = i.checked_sub(1).map_or(0, |j| share(&entries[j].1));
            if share(split) > before {
                last = Some(*at);
            }
        }
        last
    }

    /// No metric points for revisions whose name contains `matches`, for minutes ending
    /// in `[start, end)`.
    pub fn add_gap(&mut self, matches: &str, start: SystemTime, end: SystemTime) {
        self.forget_all_cells();
        self.gaps.push(Gap { matches: matches.to_owned(), start, end });
    }

    pub(crate) fn publish_delay(&self) -> Duration {
        self.config.publish_delay
    }

    /// Every revision of `project` (services brought up to date first, so their traffic
    /// history is complete up to `now`).
    /// `service`, when given, narrows the search to services of that name (a filter on
    /// `resource.labels.service_name`), so a per-service query does not touch the others.
    pub(crate) fn revisions_in(
        &mut self,
        project: &str,
        service: Option<&str>,
        now: SystemTime,
    ) -> Vec<std::sync::Arc<RevisionLabels>> {
        let prefix = format!("projects/{project}/");
        let names: Vec<String> = self
            .services
            .keys()
            .filter(|k| k.starts_with(&prefix) && service.is_none_or(|s| k.ends_with(&format!("/services/{s}"))))
            .cloned()
            .collect();
        for name in &names {
            self.settle(name, now);
        }
        let revisions: Box<dyn Iterator<Item = (&String, &RevisionRecord)>> = if service.is_some() {
            Box::new(names.iter().flat_map(|n| {
                let start = format!("{n}/revisions/");
                self.revisions.range(start.clone()..).take_while(move |(k, _)| k.starts_with(&start))
            }))
        } else {
            Box::new(self.revisions.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)))
        };
        revisions.map(|(_, r)| r.labels.clone()).collect()
    }

    /// Whether a gap hides `revision`'s minute starting at `minute` (epoch seconds).
    pub(crate) fn in_gap(&self, revision: &str, minute: u64) -> bool {
        let end = at(minute + 60);
        self.gaps.iter().any(|g| revision.contains(&g.matches) && end > g.start && end <= g.end)
    }

    /// When a revision first received traffic.
    pub(super) fn first_serving(&self, service: &str, short: &str) -> Option<SystemTime> {
        let history = self.splits.get(service)?;
        history.entries().iter().find(|(_, split)| split.iter().any(|(r, p)| r == short && *p > 0)).map(|(t, _)| *t)
    }

    /// The requests a revision is expected to get in the minute starting at `minute`:
    /// the service's rate times the revision's share, over each part of the minute with
    /// its own split.
    pub(super) fn expected_requests(&self, service: &str, short: &str, minute: u64) -> f64 {
        let (Some(splits), Some(loads)) = (self.splits.get(service), self.loads.get(service)) else { return 0.0 };
        let (start, end) = (at(minute), at(minute + 60));
        let entries = splits.entries();
        let mut expected = 0.0;
        for (i, (from, split)) in entries.iter().enumerate() {
            let until = entries.get(i + 1).map_or(end, |(t, _)| *t);
            let (seg_start, seg_end) = ((*from).max(start), until.min(end));
            let Ok(span) = seg_end.duration_since(seg_start) else { continue };
            let Some(&(_, percent)) = split.iter().find(|(r, _)| r == short) else { continue };
            let rps = loads.at(seg_start).map_or(0.0, |l| l.rps_at(seg_start));
            expected += rps * percent as f64 / 100.0 * span.as_secs_f64();
        }
        expected
    }

    pub(super) fn behaviour(&self, revision: &RevisionRecord, minute: u64) -> crate::profile::Behaviour {
        let start = at(minute);
        let own = match self.profile_at(&revision.image, start) {
            Some(profile) => {
                let elapsed =
                    self.first_serving(&revision.service, &revision.short).and_then(|f| start.duration_since(f).ok());
                profile.behaviour(elapsed)
            }
            None => crate::profile::Behaviour::HEALTHY,
        };
        match self.conditions_for(&revision.service, start) {
            Some((set, conditions)) => {
                let secs =
                    |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
                let load = self.loads.get(&revision.service).and_then(|l| l.at(start));
                let context = MinuteContext {
                    since_set: minute as i64 - secs(*set),
                    load: load.filter(|l| l.daily).map_or(1.0, |_| crate::traffic::daily_factor(start)),
                    since_increase: self
                        .last_increase(&revision.service, &revision.short, at(minute + 59))
                        .map(|t| minute as i64 - secs(t)),
                };
                conditions.behaviour(own, context)
            }
            None => own,
        }
    }

    fn conditions_for(&self, service: &str, t: SystemTime) -> Option<&(SystemTime, Conditions)> {
        self.conditions.get(service)?.entry_at(t)
    }

    /// A revision's request counts in the minute starting at `minute` (epoch seconds).
    pub(crate) fn minute_counts(&self, revision: &str, minute: u64) -> MinuteCounts {
        let Some(rev) = self.revisions.get(revision) else { return MinuteCounts::default() };
        let expected = self.expected_requests(&rev.service, &rev.short, minute);
        if expected <= 0.0 {
            return MinuteCounts::default();
        }
        let mut rng = minute_rng(self.config.seed, revision, minute, 1);
        let behaviour = self.behaviour(rev, minute);
        match self.conditions_for(&rev.service, at(minute)) {
            Some((_, conditions)) => {
                let start = at(minute);
                let service = self.loads.get(&rev.service).and_then(|l| l.at(start)).map_or(0.0, |l| l.rps_at(start));
                conditions.draw_counts(&mut rng, expected, service * 60.0, &behaviour)
            }
            None => draw_counts(&mut rng, expected, &behaviour),
        }
    }

    /// A revision's request latencies in the minute starting at `minute`.
    pub(crate) fn minute_latency(&mut self, revision: &str, minute: u64) -> Option<Histogram> {
        let n = self.minute_counts(revision, minute).total();
        if n == 0 {
            return None;
        }
        let rev = self.revisions.get(revision)?;
        let behaviour = self.behaviour(rev, minute);
        let mut rng = minute_rng(self.config.seed, revision, minute, 2);
        Some(self.shapes.draw(&mut rng, n, &behaviour))
    }

    pub(crate) fn profiles(&self) -> Vec<Profile> {
        self.profiles.values().cloned().collect()
    }

    pub(crate) fn profile(&self, image: &str) -> Profile {
        self.profiles.get(image).cloned().unwrap_or_else(|| Profile::healthy(image))
    }
}
