//! What a client may write: the client-owned part of a Service, update masks, Google's
//! field checks, and traffic in canonical form.

use super::*;

/// The client-owned part of a Service body: everything but output-only fields.
pub(super) fn input_spec(body: Value, name: &ServiceName) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid("service", "The request body must be a Service object."));
    };
    if let Some(given) = map.get("name").and_then(Value::as_str)
        && !given.is_empty()
        && given != name.full()
        && given != name.service
    {
        return Err(ApiError::invalid("service.name", format!("'{given}' does not match '{}'.", name.full())));
    }
    map.remove("name");
    for field in OUTPUT_ONLY {
        map.remove(field);
    }
    Ok(map)
}

/// Applies `updateMask` (comma-separated field paths) to the current spec.
pub(super) fn masked_spec(
    current: &Map<String, Value>,
    body: Value,
    mask: &str,
) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid("service", "The request body must be a Service object."));
    };
    let mut spec = current.clone();
    for path in mask.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let segments: Vec<String> = path.split('.').map(proto::camel).collect();
        if segments.first().is_some_and(|s| OUTPUT_ONLY.contains(&s.as_str()) || s == "name") {
            return Err(ApiError::invalid("update_mask", format!("Field '{path}' cannot be updated.")));
        }
        let mut source = Some(&body);
        let mut value = None;
        for (i, segment) in segments.iter().enumerate() {
            let here = source.and_then(|m| m.get(segment));
            if i + 1 == segments.len() {
                value = here.cloned();
            } else {
                source = here.and_then(Value::as_object);
            }
        }
        set_path(&mut spec, &segments, value);
    }
    Ok(spec)
}

pub(super) fn set_path(map: &mut Map<String, Value>, segments: &[String], value: Option<Value>) {
    let Some((last, parents)) = segments.split_last() else { return };
    let mut target = map;
    for segment in parents {
        let entry = target.entry(segment.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        target = next;
    }
    match value {
        Some(v) => {
            target.insert(last.clone(), v);
        }
        None => {
            target.remove(last);
        }
    }
}

pub(super) fn spec_traffic(spec: &Map<String, Value>) -> Vec<Value> {
    spec.get("traffic").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Checks what the emulator interprets in a Service, with Google's field names.
pub(super) fn check_spec(spec: &Map<String, Value>, name: &ServiceName) -> Result<(), ApiError> {
    for (field, value) in [("labels", spec.get("labels")), ("annotations", spec.get("annotations"))] {
        check_string_map(&format!("service.{field}"), value)?;
    }
    check_annotations("service.annotations", spec.get("annotations"))?;
    let Some(template) = spec.get("template") else {
        return Err(ApiError::invalid("service.template", "A revision template is required."));
    };
    let Some(template) = template.as_object() else {
        return Err(ApiError::invalid("service.template", "Must be an object."));
    };
    check_string_map("service.template.labels", template.get("labels"))?;
    check_string_map("service.template.annotations", template.get("annotations"))?;
    check_annotations("service.template.annotations", template.get("annotations"))?;
    if let Some(revision) = template.get("revision") {
        let Some(revision) = revision.as_str() else {
            return Err(ApiError::invalid("service.template.revision", "Must be a string."));
        };
        let prefix = format!("{}-", name.service);
        if !revision.is_empty() && (!revision.starts_with(&prefix) || !valid_id(revision, 63)) {
            return Err(ApiError::invalid(
                "service.template.revision",
                format!(
                    "Revision name '{revision}' must start with '{prefix}' and be a lowercase DNS label of at most 63 characters."
                ),
            ));
        }
    }
    let containers = template.get("containers").and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid("service.template.containers", "At least one container is required."));
    };
    for (i, container) in containers.iter().enumerate() {
        let image = container.get("image").and_then(Value::as_str).unwrap_or_default();
        if image.trim().is_empty() {
            return Err(ApiError::invalid(&format!("service.template.containers[{i}].image"), "An image is required."));
        }
    }
    if let Some(traffic) = spec.get("traffic")
        && !traffic.is_array()
    {
        return Err(ApiError::invalid("service.traffic", "Must be a list of traffic targets."));
    }
    Ok(())
}

pub(super) fn check_string_map(field: &str, value: Option<&Value>) -> Result<(), ApiError> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(map)) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((key, _)) => Err(ApiError::invalid(&format!("{field}[{key}]"), "Values must be strings.")),
            None => Ok(()),
        },
        Some(_) => Err(ApiError::invalid(field, "Must be a map of strings.")),
    }
}

pub(super) fn check_annotations(field: &str, value: Option<&Value>) -> Result<(), ApiError> {
    let Some(map) = value.and_then(Value::as_object) else { return Ok(()) };
    for key in map.keys() {
        if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| key.starts_with(*p)) {
            return Err(ApiError::invalid(
                field,
                format!(
                    "Annotation '{key}' is not supported: the '{prefix}' namespace is reserved; use the matching API field."
                ),
            ));
        }
    }
    Ok(())
}

/// Validates traffic and writes it back in canonical form; an empty list means 100% to
/// the latest Ready revision.
pub(super) fn normalize_traffic(spec: &mut Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let given = spec_traffic(spec);
    if given.is_empty() {
        let all = vec![json!({"type": LATEST, "percent": 100})];
        spec.insert("traffic".into(), Value::Array(all.clone()));
        return Ok(all);
    }
    let mut out = Vec::with_capacity(given.len());
    let mut total: u64 = 0;
    let mut tags: Vec<String> = Vec::new();
    for (i, target) in given.iter().enumerate() {
        let at = |f: &str| format!("service.traffic[{i}]{f}");
        let Some(target) = target.as_object() else {
            return Err(ApiError::invalid(&at(""), "Must be a traffic target object."));
        };
        let revision = match target.get("revision") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.is_empty() => None,
            Some(Value::String(r)) => Some(r.rsplit('/').next().unwrap_or(r).to_owned()),
            Some(_) => return Err(ApiError::invalid(&at(".revision"), "Must be a string.")),
        };
        let kind = match target.get("type").and_then(Value::as_str) {
            Some(LATEST) => LATEST,
            Some(REVISION) => REVISION,
            _ if revision.is_some() => REVISION,
            _ => LATEST,
        };
        if kind == LATEST && revision.is_some() {
            return Err(ApiError::invalid(&at(".revision"), "A LATEST traffic target must not name a revision."));
        }
        if kind == REVISION && revision.is_none() {
            return Err(ApiError::invalid(&at(".revision"), "A REVISION traffic target must name a revision."));
        }
        let percent = match target.get("percent") {
            None | Some(Value::Null) => 0,
            Some(Value::Number(n)) => n.as_u64().filter(|p| *p <= 100).ok_or_else(|| {
                ApiError::invalid(&at(".percent"), format!("Percent must be a whole number from 0 to 100, not {n}."))
            })?,
            Some(Value::String(s)) => s.parse::<u64>().ok().filter(|p| *p <= 100).ok_or_else(|| {
                ApiError::invalid(
                    &at(".percent"),
                    format!("Percent must be a whole number from 0 to 100, not \"{s}\"."),
                )
            })?,
            Some(_) => return Err(ApiError::invalid(&at(".percent"), "Must be a number.")),
        };
        total += percent;
        let tag = match target.get("tag") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(Value::String(t)) => {
                if !valid_id(t, 46) {
                    return Err(ApiError::invalid(&at(".tag"), format!("Tag '{t}' must be a lowercase DNS label.")));
                }
                if tags.contains(t) {
                    return Err(ApiError::invalid(&at(".tag"), format!("Tag '{t}' is used more than once.")));
                }
                tags.push(t.clone());
                Some(t.clone())
            }
            Some(_) => return Err(ApiError::invalid(&at(".tag"), "Must be a string.")),
        };
        let mut entry = json!({"type": kind});
        if let Some(r) = revision {
            entry["revision"] = r.into();
        }
        if percent > 0 {
            entry["percent"] = percent.into();
        }
        if let Some(t) = tag {
            entry["tag"] = t.into();
        }
        out.push(entry);
    }
    if total != 100 {
        return Err(ApiError::invalid(
            "service.traffic",
            format!("Traffic percentages must add up to 100, not {total}."),
        ));
    }
    spec.insert("traffic".into(), Value::Array(out.clone()));
    Ok(out)
}

/// A lowercase DNS-style id: letters, digits and `-`, starting with a letter.
pub(super) fn valid_id(id: &str, max: usize) -> bool {
    !id.is_empty()
        && id.len() <= max
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
