//! Revisions: made only by template changes; listed, read, and deleted when unused.

use super::*;

impl World {
    /// `GET …/services/S/revisions` (S may be `-` for every service in the location).
    pub fn list_revisions(
        &mut self,
        service: &str,
        page_size: Option<i64>,
        page_token: Option<&str>,
        now: SystemTime,
    ) -> Result<Value, ApiError> {
        let names = match service.strip_suffix("/services/-") {
            Some(parent) => keys_under(&self.revisions, &format!("{parent}/services/")),
            None => {
                if !self.services.contains_key(service) {
                    return Err(ApiError::not_found(service));
                }
                keys_under(&self.revisions, &format!("{service}/revisions/"))
            }
        };
        let (page, next) = paginate(&names, page_size, page_token)?;
        let revisions: Vec<Value> = page.iter().filter_map(|n| self.revision_output(n, now)).collect();
        let mut out = proto::object([("revisions", Value::Array(revisions))]);
        if let Some(next) = next {
            out["nextPageToken"] = Value::String(next);
        }
        Ok(out)
    }

    /// `GET …/revisions/R`.
    pub(crate) fn get_revision(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        self.revision_output(name, now).ok_or_else(|| ApiError::not_found(name))
    }

    /// `DELETE …/revisions/R`: refused while the revision serves traffic.
    pub fn delete_revision(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        let revision = self.revisions.get(name).ok_or_else(|| ApiError::not_found(name))?.clone();
        self.settle(&revision.service, now);
        if let Some(service) = self.services.get(&revision.service) {
            let in_spec = spec_traffic(&service.spec)
                .iter()
                .any(|t| t.get("revision").and_then(Value::as_str) == Some(&revision.short));
            let serving = service
                .status
                .traffic
                .iter()
                .any(|t| t.get("revision").and_then(Value::as_str) == Some(&revision.short));
            if in_spec || serving {
                return Err(ApiError::failed_precondition(format!(
                    "Revision '{}' cannot be deleted because it is serving traffic.",
                    revision.short
                )));
            }
        }
        let output = self.revision_output(name, now).unwrap_or(Value::Null);
        self.revisions.remove(name);
        self.forget_cells_of(name);
        let parent = ServiceName::parse(&revision.service).map(|n| n.parent()).unwrap_or_default();
        let op_name = format!("{parent}/operations/{}", self.rng.uuid());
        let mut op = proto::object([
            ("name", op_name.into()),
            ("done", true.into()),
            ("metadata", output.clone()),
            ("response", output),
        ]);
        op["metadata"]["@type"] = REVISION_TYPE.into();
        op["response"]["@type"] = REVISION_TYPE.into();
        Ok(op)
    }

    pub(super) fn revision_output(&self, name: &str, now: SystemTime) -> Option<Value> {
        let revision = self.revisions.get(name)?;
        let mut out = match &revision.template {
            Value::Object(t) => t.clone(),
            _ => Map::new(),
        };
        out.remove("revision");
        let ready = revision.ready(now);
        let mut condition = json!({"type": "Ready", "lastTransitionTime": rfc3339(revision.ready_at.min(now).max(revision.create_time))});
        condition["state"] = match &revision.outcome {
            _ if ready => "CONDITION_SUCCEEDED".into(),
            Outcome::Failed { reason, message } if now >= revision.ready_at => {
                condition["message"] = message.clone().into();
                condition["severity"] = "ERROR".into();
                if let Some(field) = proto::reason_field(reason) {
                    condition[field] = reason.clone().into();
                }
                "CONDITION_FAILED".into()
            }
            _ => "CONDITION_RECONCILING".into(),
        };
        out.insert("name".into(), name.into());
        out.insert("uid".into(), revision.uid.clone().into());
        out.insert("generation".into(), "1".into());
        out.insert("createTime".into(), rfc3339(revision.create_time).into());
        out.insert("updateTime".into(), rfc3339(revision.create_time).into());
        out.insert("launchStage".into(), "GA".into());
        out.insert("service".into(), revision.service.clone().into());
        out.insert("reconciling".into(), (!ready && !revision.failed(now)).into());
        out.insert("conditions".into(), json!([condition]));
        out.insert("observedGeneration".into(), "1".into());
        out.insert("etag".into(), format!("\"{}\"", &revision.uid[..8]).into());
        Some(Value::Object(out))
    }
}
