//! Services: create, read, list, replace and delete, with Cloud Run's etags, generations
//! and a reconciliation that settles after a delay.

use super::*;

impl World {
    /// `POST …/services?serviceId=ID`.
    pub(crate) fn create_service(
        &mut self,
        parent: &str,
        service_id: &str,
        mut body: Value,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let Some(name) = ServiceName::parse(&format!("{parent}/services/{service_id}")) else {
            return Err(ApiError::invalid("parent", format!("'{parent}' is not projects/PROJECT/locations/LOCATION")));
        };
        if !valid_id(service_id, 49) {
            return Err(ApiError::invalid(
                "service_id",
                "must be 1-49 lowercase letters, digits or '-', start with a letter and not end with '-'",
            ));
        }
        proto::normalize(&mut body, "service")?;
        let spec = input_spec(body, &name)?;
        if self.services.contains_key(&name.full()) {
            return Err(ApiError::already_exists(format!("Resource '{}' already exists.", name.full())));
        }
        let mut record = ServiceRecord {
            name: name.clone(),
            spec: Map::new(),
            uid: self.rng.uuid(),
            generation: 0,
            create_time: now,
            update_time: now,
            etag: String::new(),
            settle_at: now,
            pending_created: None,
            status: Status::default(),
            previous: None,
        };
        let planned = self.plan_write(&record, spec, true)?;
        if validate_only {
            return Ok(self.validated_operation(&mut record, planned));
        }
        self.commit(&mut record, planned, now);
        let op = self.start_operation(&record);
        self.services.insert(name.full(), record);
        Ok(op)
    }

    /// `GET …/services/S`.
    pub fn get_service(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        self.settle(name, now);
        let record = self.services.get(name).ok_or_else(|| ApiError::not_found(name))?;
        Ok(self.output(record))
    }

    /// What a reader saw before the newest write: the `staleRead` fault.
    pub(crate) fn stale_service(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        match self.services.get(name).and_then(|r| r.previous.clone()) {
            Some(previous) => Ok(previous),
            None => self.get_service(name, now),
        }
    }

    /// `GET …/services?pageSize&pageToken`.
    pub fn list_services(
        &mut self,
        parent: &str,
        page_size: Option<i64>,
        page_token: Option<&str>,
        stale: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let names = keys_under(&self.services, &format!("{parent}/services/"));
        let (page, next) = paginate(&names, page_size, page_token)?;
        let mut services = Vec::with_capacity(page.len());
        for name in page {
            services.push(if stale { self.stale_service(&name, now)? } else { self.get_service(&name, now)? });
        }
        let mut out = proto::object([("services", Value::Array(services))]);
        if let Some(next) = next {
            out["nextPageToken"] = Value::String(next);
        }
        Ok(out)
    }

    /// `PATCH …/services/S?updateMask&allowMissing&validateOnly`.
    pub fn update_service(
        &mut self,
        name: &str,
        mut body: Value,
        mask: Option<&str>,
        allow_missing: bool,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let Some(parsed) = ServiceName::parse(name) else {
            return Err(ApiError::invalid(
                "service.name",
                format!("'{name}' is not projects/P/locations/L/services/S"),
            ));
        };
        if !self.services.contains_key(name) {
            if allow_missing {
                return self.create_service(&parsed.parent(), &parsed.service, body, validate_only, now);
            }
            return Err(ApiError::not_found(name));
        }
        self.settle(name, now);
        proto::normalize(&mut body, "service")?;
        // Taken out of the map while the write is worked out (which needs `self` mutably)
        // and always put back: no copy of the record per write.
        let Some(mut record) = self.services.remove(name) else {
            return Err(ApiError::not_found(name));
        };
        let result = self.write_record(&mut record, &parsed, body, mask, validate_only, now);
        self.services.insert(name.to_owned(), record);
        result
    }

    /// [`World::update_service`] on a record already found.
    pub(super) fn write_record(
        &mut self,
        record: &mut ServiceRecord,
        parsed: &ServiceName,
        body: Value,
        mask: Option<&str>,
        validate_only: bool,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let name = record.name.full();
        if let Some(etag) = body.get("etag").and_then(Value::as_str)
            && !etag.is_empty()
            && etag != record.etag
        {
            return Err(ApiError::aborted(format!(
                "The etag '{etag}' does not match the current etag of '{name}'; read the service again and retry."
            )));
        }
        let spec = match mask.map(str::trim).filter(|m| !m.is_empty() && *m != "*") {
            Some(mask) => masked_spec(&record.spec, body, mask)?,
            None => input_spec(body, parsed)?,
        };
        let planned = self.plan_write(record, spec, false)?;
        if validate_only {
            return Ok(self.validated_operation(record, planned));
        }
        record.previous = Some(self.output(record));
        self.commit(record, planned, now);
        Ok(self.start_operation(record))
    }

    /// `DELETE …/services/S?etag=`.
    pub(crate) fn delete_service(
        &mut self,
        name: &str,
        etag: Option<&str>,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        self.settle(name, now);
        let record = self.services.get(name).ok_or_else(|| ApiError::not_found(name))?;
        if let Some(etag) = etag.filter(|e| !e.is_empty())
            && etag != record.etag
        {
            return Err(ApiError::aborted(format!("The etag '{etag}' does not match the current etag of '{name}'.")));
        }
        let output = self.output(record);
        let record = self.services.remove(name).ok_or_else(|| ApiError::not_found(name))?;
        let prefix = format!("{name}/revisions/");
        self.revisions.retain(|k, _| !k.starts_with(&prefix));
        self.forget_cells_of(&prefix);
        let op_name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        self.remember_operation(
            op_name.clone(),
            OperationRecord {
                service: name.to_owned(),
                generation: record.generation,
                final_response: Some(output.clone()),
                metadata: output.clone(),
            },
        );
        Ok(operation_json(&op_name, &output, Some(&output), None))
    }

    /// Validates a write and works out what it creates, without changing anything.
    pub(super) fn plan_write(
        &mut self,
        record: &ServiceRecord,
        mut spec: Map<String, Value>,
        creating: bool,
    ) -> Result<Planned, ApiError> {
        check_spec(&spec, &record.name)?;
        let service_full = record.name.full();
        let template = spec.get("template").cloned().unwrap_or(Value::Null);
        let template_changed = creating || record.spec.get("template") != Some(&template);
        let mut new_revision = None;
        if template_changed {
            let short = match template.get("revision").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                Some(pinned) => pinned.to_owned(),
                None => format!("{}-{:05}-{}", record.name.service, record.generation + 1, self.rng.letters(3)),
            };
            let full = format!("{service_full}/revisions/{short}");
            match self.revisions.get(&full) {
                Some(existing) if existing.template == template => {}
                Some(_) => {
                    return Err(ApiError::already_exists(format!(
                        "Revision named '{short}' with different configuration already exists."
                    )));
                }
                None => new_revision = Some(short),
            }
        }
        let traffic = normalize_traffic(&mut spec)?;
        let known = |short: &str| {
            new_revision.as_deref() == Some(short)
                || self.revisions.contains_key(&format!("{service_full}/revisions/{short}"))
        };
        for (i, target) in traffic.iter().enumerate() {
            if let Some(revision) = target.get("revision").and_then(Value::as_str)
                && !known(revision)
            {
                return Err(ApiError::invalid(
                    &format!("service.traffic[{i}].revision"),
                    format!("Revision '{revision}' does not exist in service '{}'.", record.name.service),
                ));
            }
        }
        Ok(Planned { spec, new_revision, template })
    }

    pub(super) fn commit(&mut self, record: &mut ServiceRecord, planned: Planned, now: SystemTime) {
        record.spec = planned.spec;
        record.generation += 1;
        record.etag = format!("\"{}\"", self.rng.hex(24));
        record.update_time = now;
        record.settle_at = later(now, self.config.settle);
        if let Some(short) = planned.new_revision {
            let image =
                planned.template.pointer("/containers/0/image").and_then(Value::as_str).unwrap_or_default().to_owned();
            let profile = self.profile(&image);
            let delay = seconds(profile.ready_delay_seconds);
            let outcome = if profile.ready {
                Outcome::Ready
            } else {
                Outcome::Failed { reason: profile.fail_reason.clone(), message: profile.fail_message.clone() }
            };
            let full = format!("{}/revisions/{short}", record.name.full());
            self.revisions.insert(
                full,
                RevisionRecord {
                    labels: RevisionLabels::new(&record.name, &short).into(),
                    short: short.clone(),
                    service: record.name.full(),
                    template: planned.template,
                    image,
                    uid: self.rng.uuid(),
                    create_time: now,
                    ready_at: later(later(now, self.config.settle), delay),
                    outcome,
                },
            );
            record.pending_created = Some(short);
        }
    }

    /// Brings a service's status up to date: once its settle time has passed and its
    /// newest revision has started (or failed), the status reflects the newest write.
    pub(super) fn settle(&mut self, name: &str, now: SystemTime) {
        let Some(record) = self.services.get(name) else { return };
        if record.status.observed_generation >= record.generation || now < record.settle_at {
            return;
        }
        let service_full = record.name.full();
        let revision = |short: &str| self.revisions.get(&format!("{service_full}/revisions/{short}"));
        let created = record.pending_created.clone().or_else(|| record.status.latest_created.clone());
        if let Some(created) = &created
            && let Some(rev) = revision(created)
            && !rev.ready(now)
            && !rev.failed(now)
        {
            return; // still starting
        }
        // The moment the write took effect: its settle time, or when its revision started.
        let settled_at = created
            .as_deref()
            .and_then(revision)
            .filter(|r| r.create_time >= record.update_time)
            .map_or(record.settle_at, |r| r.ready_at.max(record.settle_at));
        let mut status = record.status.clone();
        status.observed_generation = record.generation;
        status.latest_created = created.clone();
        if let Some(created) = &created
            && revision(created).is_some_and(|r| r.ready(now))
        {
            status.latest_ready = Some(created.clone());
        }
        let base = &self.config.base_url;
        let traffic: Vec<Value> = spec_traffic(&record.spec)
            .iter()
            .map(|t| {
                let kind = t.get("type").and_then(Value::as_str).unwrap_or(LATEST);
                let revision = if kind == LATEST {
                    status.latest_ready.clone().unwrap_or_default()
                } else {
                    t.get("revision").and_then(Value::as_str).unwrap_or_default().to_owned()
                };
                let mut entry = json!({"type": kind, "revision": revision});
                if let Some(p) = t.get("percent").and_then(Value::as_u64).filter(|p| *p > 0) {
                    entry["percent"] = p.into();
                }
                if let Some(tag) = t.get("tag").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    entry["tag"] = tag.into();
                    entry["uri"] = format!(
                        "{base}/run/{}/{}/{tag}---{}",
                        record.name.project, record.name.location, record.name.service
                    )
                    .into();
                }
                entry
            })
            .collect();
        let failure = created
            .as_deref()
            .and_then(|c| revision(c).filter(|r| r.failed(now)).map(|r| (c.to_owned(), r.outcome.clone())))
            .map(|(c, outcome)| match outcome {
                Outcome::Failed { message, .. } => {
                    format!("Revision '{c}' is not ready and cannot serve traffic. {message}")
                }
                Outcome::Ready => String::new(),
            })
            .or_else(|| {
                traffic.iter().find_map(|t| {
                    let short = t.get("revision").and_then(Value::as_str)?;
                    let serves = t.get("percent").and_then(Value::as_u64).unwrap_or(0) > 0;
                    (serves && !revision(short).is_some_and(|r| r.ready(now)))
                        .then(|| format!("Revision '{short}' is not ready and cannot serve traffic."))
                })
            });
        let at = rfc3339(settled_at);
        let (state, message) = match &failure {
            Some(message) => ("CONDITION_FAILED", message.clone()),
            None => ("CONDITION_SUCCEEDED", String::new()),
        };
        status.terminal = json!({"type": "Ready", "state": state, "lastTransitionTime": at});
        if !message.is_empty() {
            status.terminal["message"] = message.into();
            status.terminal["severity"] = "ERROR".into();
        }
        status.conditions = vec![
            json!({"type": "RoutesReady", "state": state, "lastTransitionTime": at}),
            json!({"type": "ConfigurationsReady", "state": state, "lastTransitionTime": at}),
        ];
        let split: Vec<(String, u64)> = traffic
            .iter()
            .filter_map(|t| Some((t.get("revision")?.as_str()?.to_owned(), t.get("percent").and_then(Value::as_u64)?)))
            .collect();
        status.traffic = traffic;
        let history = self.splits.entry(name.to_owned()).or_default();
        if history.last().map(|(_, s)| s) != Some(&split) {
            let when = history.last().map_or(settled_at, |(t, _)| settled_at.max(*t));
            history.set(when, split);
        }
        if let Some(record) = self.services.get_mut(name) {
            record.status = status;
            record.pending_created = None;
        }
    }

    pub(super) fn output(&self, record: &ServiceRecord) -> Value {
        let mut out = record.spec.clone();
        let name = record.name.full();
        let settled = record.status.observed_generation >= record.generation;
        let uri = format!(
            "{}/run/{}/{}/{}",
            self.config.base_url, record.name.project, record.name.location, record.name.service
        );
        out.insert("name".into(), name.clone().into());
        out.insert("uid".into(), record.uid.clone().into());
        out.insert("generation".into(), record.generation.to_string().into());
        out.insert("createTime".into(), rfc3339(record.create_time).into());
        out.insert("updateTime".into(), rfc3339(record.update_time).into());
        out.insert("creator".into(), "emulator@canary.local".into());
        out.insert("lastModifier".into(), "emulator@canary.local".into());
        out.entry("launchStage").or_insert_with(|| "GA".into());
        out.entry("ingress").or_insert_with(|| "INGRESS_TRAFFIC_ALL".into());
        out.insert("observedGeneration".into(), record.status.observed_generation.to_string().into());
        out.insert("reconciling".into(), (!settled).into());
        let terminal = if settled {
            record.status.terminal.clone()
        } else {
            json!({"type": "Ready", "state": "CONDITION_RECONCILING", "lastTransitionTime": rfc3339(record.update_time)})
        };
        out.insert("terminalCondition".into(), terminal);
        out.insert("conditions".into(), Value::Array(record.status.conditions.clone()));
        if let Some(r) = &record.status.latest_ready {
            out.insert("latestReadyRevision".into(), format!("{name}/revisions/{r}").into());
        }
        if let Some(r) = &record.status.latest_created {
            out.insert("latestCreatedRevision".into(), format!("{name}/revisions/{r}").into());
        }
        out.insert("trafficStatuses".into(), Value::Array(record.status.traffic.clone()));
        out.insert("uri".into(), uri.clone().into());
        out.insert("urls".into(), json!([uri]));
        out.insert("etag".into(), record.etag.clone().into());
        Value::Object(out)
    }

    /// Loads a service that already exists, settled, with one revision at 100%: how a
    /// scenario describes the world before canary arrives.
    pub fn seed_service(&mut self, name: &ServiceName, body: Value, now: SystemTime) -> Result<(), ApiError> {
        self.create_service(&name.parent(), &name.service, body, false, now)?;
        let full = name.full();
        if let Some(record) = self.services.get_mut(&full) {
            record.settle_at = now;
        }
        if let Some(created) = self.services.get(&full).and_then(|r| r.pending_created.clone())
            && let Some(rev) = self.revisions.get_mut(&format!("{full}/revisions/{created}"))
        {
            rev.ready_at = now;
        }
        self.settle(&full, now);
        Ok(())
    }
}

pub(super) struct Planned {
    pub(super) spec: Map<String, Value>,
    pub(super) new_revision: Option<String>,
    pub(super) template: Value,
}
