//! Long-running operations: what a write answers, kept (the newest) for clients to poll.

use super::*;

impl World {
    /// `GET …/operations/ID`: done once the service has settled at the write's generation.
    pub(crate) fn get_operation(&mut self, name: &str, now: SystemTime) -> Result<Value, ApiError> {
        let op = self.operations.get(name).cloned().ok_or_else(|| ApiError::not_found(name))?;
        if let Some(response) = &op.final_response {
            return Ok(operation_json(name, &op.metadata, Some(response), None));
        }
        self.settle(&op.service, now);
        let Some(record) = self.services.get(&op.service) else {
            return Ok(operation_json(name, &op.metadata, Some(&op.metadata), None));
        };
        if record.status.observed_generation < op.generation {
            return Ok(operation_json(name, &op.metadata, None, None));
        }
        let output = self.output(record);
        let error = (output.pointer("/terminalCondition/state").and_then(Value::as_str) == Some("CONDITION_FAILED"))
            .then(|| {
                let message = output.pointer("/terminalCondition/message").and_then(Value::as_str).unwrap_or_default();
                json!({"code": 9, "message": message})
            });
        Ok(operation_json(name, &op.metadata, Some(&output), error))
    }

    pub(super) fn validated_operation(&mut self, record: &mut ServiceRecord, planned: Planned) -> Value {
        let mut preview = record.clone();
        preview.spec = planned.spec;
        let output = self.output(&preview);
        let name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        operation_json(&name, &output, Some(&output), None)
    }

    pub(super) fn start_operation(&mut self, record: &ServiceRecord) -> Value {
        let name = format!("{}/operations/{}", record.name.parent(), self.rng.uuid());
        let metadata = self.output(record);
        let answer = operation_json(&name, &metadata, None, None);
        self.remember_operation(
            name,
            OperationRecord {
                service: record.name.full(),
                generation: record.generation,
                final_response: None,
                metadata,
            },
        );
        answer
    }

    pub(super) fn remember_operation(&mut self, name: String, record: OperationRecord) {
        self.operation_order.push_back(name.clone());
        self.operations.insert(name, record);
        while self.operation_order.len() > self.config.max_operations.max(1) {
            if let Some(oldest) = self.operation_order.pop_front() {
                self.operations.remove(&oldest);
            }
        }
    }
}

pub(super) fn operation_json(name: &str, metadata: &Value, response: Option<&Value>, error: Option<Value>) -> Value {
    let mut op =
        proto::object([("name", name.into()), ("metadata", metadata.clone()), ("done", response.is_some().into())]);
    op["metadata"]["@type"] = SERVICE_TYPE.into();
    if let Some(error) = error {
        op["error"] = error;
    } else if let Some(response) = response {
        op["response"] = response.clone();
        op["response"]["@type"] = SERVICE_TYPE.into();
    }
    op
}
