//! Proto3 JSON as Google's APIs speak it: lowerCamelCase names (snake_case accepted),
//! enums as names or, when a client asks with `$alt=json;enum-encoding=int`, numbers.
//! Input is normalised to camelCase and enum names before the emulator looks at it;
//! output is encoded the way the client asked.

use serde_json::{Map, Value};

use super::api_error::ApiError;

type Table = &'static [(&'static str, i64)];

/// Written as a JSON string of its `Display` text (an int64 as decimal, a timestamp),
/// without building the string first.
pub(crate) struct Text<T>(pub(crate) T);

impl<T: std::fmt::Display> serde::Serialize for Text<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A JSON object of owned values. `json!` copies every value it is given by serialising
/// it again (`to_value(&v)`), which for a page of services or time series is megabytes
/// copied per answer; this moves them in.
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

const TRAFFIC_TYPE: Table = &[
    ("TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED", 0),
    ("TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", 1),
    ("TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", 2),
];
const INGRESS: Table = &[
    ("INGRESS_TRAFFIC_UNSPECIFIED", 0),
    ("INGRESS_TRAFFIC_ALL", 1),
    ("INGRESS_TRAFFIC_INTERNAL_ONLY", 2),
    ("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", 3),
    ("INGRESS_TRAFFIC_NONE", 4),
];
const LAUNCH_STAGE: Table = &[
    ("LAUNCH_STAGE_UNSPECIFIED", 0),
    ("EARLY_ACCESS", 1),
    ("ALPHA", 2),
    ("BETA", 3),
    ("GA", 4),
    ("DEPRECATED", 5),
    ("UNIMPLEMENTED", 6),
    ("PRELAUNCH", 7),
];
const EXECUTION_ENVIRONMENT: Table =
    &[("EXECUTION_ENVIRONMENT_UNSPECIFIED", 0), ("EXECUTION_ENVIRONMENT_GEN1", 1), ("EXECUTION_ENVIRONMENT_GEN2", 2)];
const KEY_REVOCATION: Table =
    &[("ENCRYPTION_KEY_REVOCATION_ACTION_UNSPECIFIED", 0), ("PREVENT_NEW", 1), ("SHUTDOWN", 2)];
const VPC_EGRESS: Table = &[("VPC_EGRESS_UNSPECIFIED", 0), ("ALL_TRAFFIC", 1), ("PRIVATE_RANGES_ONLY", 2)];
const SCALING_MODE: Table = &[("SCALING_MODE_UNSPECIFIED", 0), ("AUTOMATIC", 1), ("MANUAL", 2)];
const CONDITION_STATE: Table = &[
    ("STATE_UNSPECIFIED", 0),
    ("CONDITION_PENDING", 1),
    ("CONDITION_RECONCILING", 2),
    ("CONDITION_FAILED", 3),
    ("CONDITION_SUCCEEDED", 4),
];
const SEVERITY: Table = &[("SEVERITY_UNSPECIFIED", 0), ("ERROR", 1), ("WARNING", 2), ("INFO", 3)];
const COMMON_REASON: Table = &[
    ("COMMON_REASON_UNDEFINED", 0),
    ("UNKNOWN", 1),
    ("ROUTE_MISSING", 2),
    ("REVISION_FAILED", 3),
    ("PROGRESS_DEADLINE_EXCEEDED", 4),
    ("BUILD_STEP_FAILED", 5),
    ("CONTAINER_MISSING", 6),
    ("CONTAINER_PERMISSION_DENIED", 7),
    ("CONTAINER_IMAGE_UNAUTHORIZED", 8),
    ("CONTAINER_IMAGE_AUTHORIZATION_CHECK_FAILED", 9),
    ("ENCRYPTION_KEY_PERMISSION_DENIED", 10),
    ("ENCRYPTION_KEY_CHECK_FAILED", 11),
    ("SECRETS_ACCESS_CHECK_FAILED", 12),
    ("WAITING_FOR_OPERATION", 13),
    ("IMMEDIATE_RETRY", 14),
    ("POSTPONED_RETRY", 15),
];
const REVISION_REASON: Table = &[
    ("REVISION_REASON_UNDEFINED", 0),
    ("PENDING", 1),
    ("RESERVE", 2),
    ("RETIRED", 3),
    ("RETIRING", 4),
    ("RECREATING", 5),
    ("HEALTH_CHECK_CONTAINER_ERROR", 6),
    ("CUSTOMIZED_PATH_RESPONSE_PENDING", 7),
    ("MIN_INSTANCES_NOT_PROVISIONED", 8),
    ("ACTIVE_REVISION_LIMIT_REACHED", 9),
    ("NO_DEPLOYMENT", 10),
    ("HEALTH_CHECK_SKIPPED", 11),
];
const INTERNAL_REASON: Table = &[
    ("INTERNAL_REASON_UNDEFINED", 0),
    ("CONFLICTING_REVISION_NAME", 1),
    ("REVISION_MISSING", 2),
    ("CONFIGURATION_MISSING", 3),
    ("ASSIGNING_TRAFFIC", 4),
    ("UPDATING_INGRESS_TRAFFIC_ALLOWED", 5),
    ("REVISION_ORG_POLICY_VIOLATION", 6),
    ("ENABLING_GCFV2_URI_SUPPORT", 7),
];

const METRIC_KIND: Table = &[("METRIC_KIND_UNSPECIFIED", 0), ("GAUGE", 1), ("DELTA", 2), ("CUMULATIVE", 3)];
const VALUE_TYPE: Table = &[
    ("VALUE_TYPE_UNSPECIFIED", 0),
    ("BOOL", 1),
    ("INT64", 2),
    ("DOUBLE", 3),
    ("STRING", 4),
    ("DISTRIBUTION", 5),
    ("MONEY", 6),
];

/// The proto enum type names, for error messages like Google's.
fn type_name(table: Table) -> &'static str {
    match table[0].0 {
        "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED" => "google.cloud.run.v2.TrafficTargetAllocationType",
        "INGRESS_TRAFFIC_UNSPECIFIED" => "google.cloud.run.v2.IngressTraffic",
        "LAUNCH_STAGE_UNSPECIFIED" => "google.api.LaunchStage",
        "EXECUTION_ENVIRONMENT_UNSPECIFIED" => "google.cloud.run.v2.ExecutionEnvironment",
        "ENCRYPTION_KEY_REVOCATION_ACTION_UNSPECIFIED" => "google.cloud.run.v2.EncryptionKeyRevocationAction",
        "VPC_EGRESS_UNSPECIFIED" => "google.cloud.run.v2.VpcAccess.VpcEgress",
        "SCALING_MODE_UNSPECIFIED" => "google.cloud.run.v2.ServiceScaling.ScalingMode",
        "METRIC_KIND_UNSPECIFIED" => "google.api.MetricDescriptor.MetricKind",
        "VALUE_TYPE_UNSPECIFIED" => "google.api.MetricDescriptor.ValueType",
        "STATE_UNSPECIFIED" => "google.cloud.run.v2.Condition.State",
        "SEVERITY_UNSPECIFIED" => "google.cloud.run.v2.Condition.Severity",
        "COMMON_REASON_UNDEFINED" => "google.cloud.run.v2.Condition.CommonReason",
        "REVISION_REASON_UNDEFINED" => "google.cloud.run.v2.Condition.RevisionReason",
        _ => "google.cloud.run.v2.Condition.InternalReason",
    }
}

/// The enum a field holds, from its last two path segments (so it applies equally to a
/// Service, a Revision, or a Service inside an Operation).
fn enum_for(parent: &str, field: &str) -> Option<Table> {
    Some(match (parent, field) {
        ("traffic" | "trafficStatuses", "type") => TRAFFIC_TYPE,
        (_, "ingress") => INGRESS,
        (_, "launchStage") => LAUNCH_STAGE,
        (_, "executionEnvironment") => EXECUTION_ENVIRONMENT,
        (_, "encryptionKeyRevocationAction") => KEY_REVOCATION,
        ("vpcAccess", "egress") => VPC_EGRESS,
        ("scaling", "scalingMode") => SCALING_MODE,
        ("terminalCondition" | "conditions", "state") => CONDITION_STATE,
        ("terminalCondition" | "conditions", "severity") => SEVERITY,
        ("terminalCondition" | "conditions", "reason") => COMMON_REASON,
        ("terminalCondition" | "conditions", "revisionReason") => REVISION_REASON,
        ("terminalCondition" | "conditions", "internalReason") => INTERNAL_REASON,
        ("timeSeries", "metricKind") => METRIC_KIND,
        ("timeSeries", "valueType") => VALUE_TYPE,
        _ => return None,
    })
}

/// Fields whose values are maps with user-chosen keys, which are never renamed.
fn is_map_field(name: &str) -> bool {
    matches!(name, "labels" | "annotations" | "limits" | "environmentVariables" | "nodeSelector")
}

/// snake_case → lowerCamelCase (`service_account` → `serviceAccount`).
pub(crate) fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises a request body: camelCase names, enum names. `root` names the message in
/// error messages (`service`).
pub(crate) fn normalize(value: &mut Value, root: &str) -> Result<(), ApiError> {
    walk_in(value, root, "", "")
}

fn walk_in(value: &mut Value, path: &str, parent: &str, field: &str) -> Result<(), ApiError> {
    match value {
        Value::Object(map) => {
            if is_map_field(field) {
                return Ok(());
            }
            let entries = std::mem::take(map);
            let mut renamed = Map::with_capacity(entries.len());
            for (key, mut child) in entries {
                let key = if key.starts_with('@') { key } else { camel(&key) };
                walk_in(&mut child, &format!("{path}.{key}"), field, &key)?;
                renamed.insert(key, child);
            }
            *map = renamed;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk_in(item, &format!("{path}[{i}]"), parent, field)?;
            }
        }
        Value::Number(n) => {
            if let Some(table) = enum_for(parent, field) {
                let name = n.as_i64().and_then(|n| table.iter().find(|(_, v)| *v == n)).map(|(name, _)| *name);
                match name {
                    Some(name) => *value = Value::String(name.to_owned()),
                    None => return Err(bad_enum(path, table, &n.to_string())),
                }
            }
        }
        Value::String(s) => {
            if let Some(table) = enum_for(parent, field)
                && !table.iter().any(|(name, _)| name == s)
            {
                return Err(bad_enum(path, table, &format!("\"{s}\"")));
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
    Ok(())
}

fn bad_enum(path: &str, table: Table, got: &str) -> ApiError {
    ApiError::invalid(path, format!("Invalid value at '{path}' (type.googleapis.com/{}), {got}", type_name(table)))
}

/// Which condition field a reason name belongs in (`revisionReason` or `reason`), if it
/// is a reason Cloud Run knows.
pub(crate) fn reason_field(name: &str) -> Option<&'static str> {
    if REVISION_REASON.iter().any(|(n, _)| *n == name) {
        Some("revisionReason")
    } else if COMMON_REASON.iter().any(|(n, _)| *n == name) {
        Some("reason")
    } else {
        None
    }
}

/// Encodes a response: enum names become numbers when the client asked for
/// `enum-encoding=int`.
pub(crate) fn encode(value: &mut Value, enums_as_ints: bool) {
    if enums_as_ints {
        encode_ints(value, "", "");
    }
}

fn encode_ints(value: &mut Value, parent: &str, field: &str) {
    match value {
        Value::Object(map) => {
            if is_map_field(field) {
                return;
            }
            for (key, child) in map.iter_mut() {
                encode_ints(child, field, key);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| encode_ints(i, parent, field)),
        Value::String(s) => {
            if let Some(n) = enum_for(parent, field).and_then(|t| t.iter().find(|(name, _)| name == s)) {
                *value = Value::from(n.1);
            }
        }
        _ => {}
    }
}

/// Whether a request's query asks for enums as numbers (`$alt=json;enum-encoding=int`).
pub(crate) fn wants_int_enums(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        let decoded = q.replace("%3B", ";").replace("%3b", ";").replace("%3D", "=").replace("%3d", "=");
        decoded.contains("enum-encoding=int")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_snake_case_and_numeric_enums() {
        let mut body = json!({
            "service_account": "x",
            "labels": {"team_name": "a"},
            "traffic": [{"type": 2, "revision": "r", "percent": 100}],
            "template": {"containers": [{"resources": {"limits": {"nvidia_gpu": "1"}}}], "execution_environment": 2}
        });
        normalize(&mut body, "service").unwrap();
        assert_eq!(body["serviceAccount"], "x");
        assert_eq!(body["labels"]["team_name"], "a", "map keys are the user's");
        assert_eq!(body["traffic"][0]["type"], "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION");
        assert_eq!(body["template"]["executionEnvironment"], "EXECUTION_ENVIRONMENT_GEN2");
        assert_eq!(body["template"]["containers"][0]["resources"]["limits"]["nvidia_gpu"], "1");
    }

    #[test]
    fn refuses_unknown_enum_values_naming_the_field() {
        let mut body = json!({"traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}, {"type": "SOMETIMES"}]});
        let err = normalize(&mut body, "service").unwrap_err();
        assert_eq!(err.http, 400);
        assert_eq!(err.details[0]["fieldViolations"][0]["field"], "service.traffic[1].type");
        let mut body = json!({"ingress": 9});
        assert!(normalize(&mut body, "service").is_err());
    }

    #[test]
    fn encodes_enums_as_numbers_on_request() {
        let mut out = json!({"ingress": "INGRESS_TRAFFIC_ALL", "terminalCondition": {"state": "CONDITION_SUCCEEDED"}, "labels": {"ingress": "INGRESS_TRAFFIC_ALL"}});
        encode(&mut out, true);
        assert_eq!(out["ingress"], 1);
        assert_eq!(out["terminalCondition"]["state"], 4);
        assert_eq!(out["labels"]["ingress"], "INGRESS_TRAFFIC_ALL");
        assert!(wants_int_enums(Some("%24alt=json%3Benum-encoding%3Dint")));
        assert!(wants_int_enums(Some("$alt=json;enum-encoding=int&serviceId=x")));
        assert!(!wants_int_enums(Some("serviceId=x")));
    }
}
