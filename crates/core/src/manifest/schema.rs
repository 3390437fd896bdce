//! The manifest's JSON Schema, generated from the Rust types. The same schema is
//! committed as `schemas/canaryrollout.schema.json` for editors and is what
//! `canary validate` checks documents against, so the two can never disagree.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::types::CanaryRollout;

/// Where the committed copy lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schemas/canaryrollout.schema.json";

/// The schema's identifier.
pub(crate) const SCHEMA_ID: &str = "urn:canary:schema:canaryrollout:v1alpha1";

/// The JSON Schema (draft 2020-12) of a `CanaryRollout` document.
pub(crate) fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(generate)
}

/// The schema as it is written to `schemas/`: pretty JSON with a final newline.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema()).unwrap_or_default();
    text.push('\n');
    text
}

fn generate() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().for_deserialize();
    let generated = settings.into_generator().into_root_schema_for::<CanaryRollout>();
    let mut value = generated.to_value();
    unwrap_descriptions(&mut value);
    let Value::Object(fields) = value else {
        return Value::Null;
    };
    // Put identity first, as a reader of the file expects.
    let mut ordered = Map::new();
    ordered.insert("$schema".into(), fields.get("$schema").cloned().unwrap_or(Value::Null));
    ordered.insert("$id".into(), SCHEMA_ID.into());
    ordered.insert("title".into(), "CanaryRollout".into());
    for (key, value) in fields {
        if key != "title" && key != "$schema" {
            ordered.insert(key, value);
        }
    }
    Value::Object(ordered)
}

/// Doc comments are wrapped at 90 columns; editors wrap hover text themselves, so keep
/// only paragraph breaks.
fn unwrap_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) if key == "description" => {
                        *text = text.split("\n\n").map(|p| p.replace('\n', " ")).collect::<Vec<_>>().join("\n\n");
                    }
                    _ => unwrap_descriptions(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

/// The compiled validator for [`schema`].
pub(crate) fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| match jsonschema::draft202012::new(schema()) {
        Ok(v) => v,
        // The schema is generated from our own types and tested; failing here is a bug
        // in canary, not something a user can cause.
        Err(e) => unreachable!("canary's own schema does not compile: {e}"),
    })
}

/// The sub-schema that describes the node at `pointer` in a document, following
/// `$ref`s and choosing, in a `oneOf` / `anyOf`, the branch that names the next key.
pub(crate) fn schema_at(pointer: &str) -> Option<&'static Value> {
    let root = schema();
    let mut node = resolve(root, root)?;
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        node = step(root, node, &segment)?;
    }
    Some(node)
}

fn step<'a>(root: &'a Value, node: &'a Value, segment: &str) -> Option<&'a Value> {
    if let Some(child) = node.get("properties").and_then(|p| p.get(segment)) {
        return resolve(root, child);
    }
    if segment.parse::<usize>().is_ok()
        && let Some(items) = node.get("items")
    {
        return resolve(root, items);
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        if let Some(branches) = node.get(keyword).and_then(Value::as_array) {
            for branch in branches {
                if let Some(found) = resolve(root, branch).and_then(|b| step(root, b, segment)) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    let mut node = node;
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => node = root.pointer(reference.strip_prefix('#')?)?,
            None => return Some(node),
        }
    }
    None
}

/// The `pattern` a string at `pointer` must match, looking inside `anyOf` / `oneOf`
/// (an optional field's schema is "this, or null").
pub(crate) fn pattern_at(pointer: &str) -> Option<&'static str> {
    fn find(node: &'static Value) -> Option<&'static str> {
        if let Some(p) = node.get("pattern").and_then(Value::as_str) {
            return Some(p);
        }
        ["oneOf", "anyOf"]
            .iter()
            .filter_map(|k| node.get(*k).and_then(Value::as_array))
            .flatten()
            .filter_map(|b| resolve(schema(), b))
            .find_map(find)
    }
    find(schema_at(pointer)?)
}

/// The field names a mapping at `pointer` may have, for "did you mean" hints.
pub(crate) fn known_fields(pointer: &str) -> Vec<&'static str> {
    let Some(node) = schema_at(pointer) else {
        return Vec::new();
    };
    let mut names: Vec<&'static str> = Vec::new();
    collect_fields(node, &mut names);
    names
}

fn collect_fields(node: &'static Value, names: &mut Vec<&'static str>) {
    let root = schema();
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        names.extend(props.keys().map(String::as_str));
    }
    for keyword in ["oneOf", "anyOf"] {
        for branch in node.get(keyword).and_then(Value::as_array).into_iter().flatten() {
            if let Some(b) = resolve(root, branch) {
                collect_fields(b, names);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_identifies_itself_as_draft_2020_12() {
        let s = schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["$id"], SCHEMA_ID);
        assert_eq!(s["title"], "CanaryRollout");
        assert_eq!(s["additionalProperties"], false);
    }

    #[test]
    fn finds_sub_schemas_through_refs_and_variants() {
        assert_eq!(known_fields("/spec/stages/3"), vec!["weight", "hold"]);
        assert!(known_fields("/spec").contains(&"stages"));
        assert_eq!(known_fields("/spec/notify/0"), vec!["slack", "webhook"]);
        assert_eq!(known_fields("/spec/notify/0/slack"), vec!["urlFromEnv"]);
        assert!(schema_at("/spec/nothing").is_none());
    }

    #[test]
    fn every_field_is_documented() {
        fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let described = prop.get("description").is_some()
                        || prop
                            .get("$ref")
                            .and_then(Value::as_str)
                            .and_then(|r| schema().pointer(&r[1..]))
                            .is_some_and(|d| d.get("description").is_some());
                    if !described {
                        missing.push(format!("{at}.{name}"));
                    }
                    walk(prop, &format!("{at}.{name}"), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(schema(), "", &mut missing);
        for (name, def) in schema()["$defs"].as_object().unwrap() {
            walk(def, name, &mut missing);
        }
        assert!(missing.is_empty(), "fields without a description: {missing:?}");
    }
}
