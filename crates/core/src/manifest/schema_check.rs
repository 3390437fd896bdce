//! Layer 2 of validation: a document checked against the JSON Schema, each error
//! re-phrased for the person who wrote the manifest.

use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use super::finding::{Finding, did_you_mean, dotted, join};
use super::quantity::{PERCENT_PATTERN, duration_pattern};
use super::schema::{known_fields, pattern_at, schema_at, validator};
use super::types::{API_VERSION, KIND};

/// Every schema error of `doc`, deduplicated and phrased for people.
pub(crate) fn check(doc: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    for err in validator().iter_errors(doc) {
        translate(&err, &mut findings);
    }
    drop_missing_fields_explained_by_typos(&mut findings);
    findings.dedup();
    findings
}

fn translate(err: &ValidationError<'_>, out: &mut Vec<Finding>) {
    let pointer = err.instance_path().as_str().to_owned();
    let instance = err.instance();
    let field = field_name(&pointer);
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_fields(&pointer);
            for name in unexpected {
                let mut finding =
                    Finding::at_key(join(&pointer, name), format!("unknown field `{name}`{}", within(&pointer)));
                finding = match did_you_mean(name, known.iter().copied()) {
                    Some(guess) => finding.label(format!("did you mean `{guess}`?")),
                    None if known.is_empty() => finding,
                    None => finding.hint(format!("fields allowed here: {}", quoted_list(&known))),
                };
                out.push(finding);
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let about = schema_at(&join(&pointer, name)).and_then(first_sentence);
            out.push(
                Finding::at_key(pointer.clone(), format!("missing required field `{name}`{}", within(&pointer)))
                    .maybe_hint(about.map(|a| format!("`{name}`: {a}"))),
            );
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => article(&t.to_string()),
                TypeKind::Multiple(set) => set.iter().map(|t| article(&t.to_string())).collect::<Vec<_>>().join(" or "),
            };
            out.push(
                Finding::at_value(
                    pointer.clone(),
                    format!("{} must be {expected}, not {}", shown(&pointer), describe(instance)),
                )
                .maybe_hint(type_hint(&pointer, instance)),
            );
        }
        ValidationErrorKind::Constant { expected_value } => {
            let expected = expected_value.as_str().unwrap_or_default();
            let finding = Finding::at_value(
                pointer.clone(),
                format!("`{}` must be `{expected}`, not {}", dotted(&pointer), describe(instance)),
            );
            out.push(match (field, expected) {
                ("kind", KIND) => finding.hint(
                    "canary reads only CanaryRollout manifests; keep other YAML files out of the manifest folders",
                ),
                ("apiVersion", API_VERSION) => {
                    finding.hint(format!("this version of canary understands `apiVersion: {API_VERSION}`"))
                }
                _ => finding,
            });
        }
        ValidationErrorKind::Enum { options } => {
            let names: Vec<&str> = options.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            out.push(not_one_of(&pointer, instance, &names));
        }
        ValidationErrorKind::Pattern { .. } => out.push(pattern_finding(&pointer, instance)),
        ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
            out.push(Finding::at_value(
                pointer.clone(),
                format!("`{}` must be at least {}, not {instance}", dotted(&pointer), bound(err.kind(), limit)),
            ))
        }
        ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
            out.push(Finding::at_value(
                pointer.clone(),
                format!("`{}` must be at most {}, not {instance}", dotted(&pointer), bound(err.kind(), limit)),
            ))
        }
        ValidationErrorKind::MinItems { limit } => out.push(
            Finding::at_value(
                pointer.clone(),
                format!("`{}` needs at least {limit} {}", dotted(&pointer), plural(field, *limit)),
            )
            .maybe_hint(schema_at(&pointer).and_then(first_sentence)),
        ),
        ValidationErrorKind::MaxItems { limit } => {
            out.push(Finding::at_value(
                pointer.clone(),
                format!("`{}` may have at most {limit} {}", dotted(&pointer), plural(field, *limit)),
            ));
        }
        ValidationErrorKind::MinLength { limit } => {
            out.push(Finding::at_value(
                pointer.clone(),
                format!("`{}` must be at least {limit} characters long", dotted(&pointer)),
            ));
        }
        ValidationErrorKind::MaxLength { limit } => {
            let length = instance.as_str().map_or(0, |s| s.chars().count());
            out.push(Finding::at_value(
                pointer.clone(),
                format!("`{}` must be at most {limit} characters long; it has {length}", dotted(&pointer)),
            ));
        }
        ValidationErrorKind::PropertyNames { error } => {
            let name = error.instance().as_str().unwrap_or_default().to_owned();
            out.push(
                Finding::at_key(join(&pointer, &name), format!("`{name}` is not a valid environment variable name"))
                    .hint("use letters, digits and `_`, not starting with a digit"),
            );
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let names = constants_at(&pointer);
            let variants = known_fields(&pointer);
            if !names.is_empty() {
                // A documented enum is a `oneOf` of constants.
                out.push(not_one_of(&pointer, instance, &names));
                return;
            }
            if let (Some(object), false) = (instance.as_object(), variants.is_empty())
                && object.keys().any(|k| !variants.contains(&k.as_str()))
                && schema_at(&pointer).is_some_and(|s| s.get("oneOf").is_some())
            {
                // An externally tagged enum (`notify: [{slack: …}]`) with a misspelt tag.
                for key in object.keys().filter(|k| !variants.contains(&k.as_str())) {
                    let finding =
                        Finding::at_key(join(&pointer, key), format!("unknown field `{key}`{}", within(&pointer)));
                    out.push(match did_you_mean(key, variants.iter().copied()) {
                        Some(guess) => finding.label(format!("did you mean `{guess}`?")),
                        None => finding.hint(format!("write one of {}", quoted_list(&variants))),
                    });
                }
                return;
            }
            match closest_branch(context, &pointer) {
                Some(branch) => branch.iter().for_each(|e| translate(e, out)),
                None => out.push(
                    Finding::at_value(pointer.clone(), format!("`{}` does not have an allowed form", dotted(&pointer)))
                        .maybe_hint(schema_at(&pointer).and_then(first_sentence)),
                ),
            }
        }
        _ => out.push(Finding::at_value(pointer.clone(), format!("`{}`: {err}", dotted(&pointer)))),
    }
}

/// In a failed `oneOf` / `anyOf`, the branch the author evidently meant: the one whose
/// errors lie deepest in the document (it matched the most before failing), if only one
/// does.
fn closest_branch<'e>(
    context: &'e [Vec<ValidationError<'static>>],
    pointer: &str,
) -> Option<&'e [ValidationError<'static>]> {
    let depth = |errors: &[ValidationError<'_>]| {
        errors
            .iter()
            .map(|e| {
                let p = e.instance_path().as_str();
                // A branch that only failed `type` at this very node did not match at all.
                if p == pointer
                    && matches!(e.kind(), ValidationErrorKind::Type { .. } | ValidationErrorKind::Required { .. })
                {
                    0
                } else {
                    p.len() + 1
                }
            })
            .max()
            .unwrap_or(0)
    };
    // "This, or null" is how an optional field reads; a non-null value meant "this".
    let only_null = |errors: &[ValidationError<'_>]| {
        errors.len() == 1
            && matches!(errors[0].kind(), ValidationErrorKind::Type { kind: TypeKind::Single(t) } if t.to_string() == "null")
    };
    let candidates: Vec<&Vec<ValidationError<'static>>> = context.iter().filter(|b| !only_null(b)).collect();
    if candidates.len() == 1 {
        return Some(candidates[0].as_slice());
    }
    let scored: Vec<(usize, &Vec<ValidationError<'static>>)> = candidates.into_iter().map(|b| (depth(b), b)).collect();
    let best = scored.iter().map(|(d, _)| *d).max()?;
    let mut winners = scored.iter().filter(|(d, _)| *d == best);
    match (winners.next(), winners.next()) {
        (Some((d, branch)), None) if *d > 0 => Some(branch.as_slice()),
        _ => None,
    }
}

fn not_one_of(pointer: &str, instance: &Value, names: &[&str]) -> Finding {
    let finding = Finding::at_value(
        pointer,
        format!("`{}` must be one of {}, not {}", dotted(pointer), quoted_list(names), describe(instance)),
    );
    match instance.as_str().and_then(|s| did_you_mean(s, names.iter().copied())) {
        Some(guess) => finding.label(format!("did you mean `{guess}`?")),
        None => finding,
    }
}

/// The values an enum at `pointer` allows, when its schema is a list of constants.
fn constants_at(pointer: &str) -> Vec<&'static str> {
    let Some(node) = schema_at(pointer) else { return Vec::new() };
    let branches = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Value::as_array);
    let consts: Option<Vec<&str>> =
        branches.map(|bs| bs.iter().map(|b| b.get("const").and_then(Value::as_str)).collect()).unwrap_or_default();
    consts.unwrap_or_default()
}

/// A `missing field stages` next to `unknown field stagse` says the same thing twice;
/// keep the one with the suggestion.
fn drop_missing_fields_explained_by_typos(findings: &mut Vec<Finding>) {
    let suggestions: Vec<(String, String)> = findings
        .iter()
        .filter_map(|f| {
            let guess = f.label.as_deref()?.strip_prefix("did you mean `")?.strip_suffix("`?")?;
            let parent = &f.pointer[..f.pointer.rfind('/')?];
            Some((parent.to_owned(), guess.to_owned()))
        })
        .collect();
    findings.retain(|f| {
        let Some(name) = f.message.strip_prefix("missing required field `").and_then(|m| m.split('`').next()) else {
            return true;
        };
        !suggestions.iter().any(|(parent, guess)| *parent == f.pointer && guess == name)
    });
}

fn pattern_finding(pointer: &str, instance: &Value) -> Finding {
    let path = dotted(pointer);
    let text = instance.as_str().unwrap_or_default();
    let (what, hint) = match (quantity_at(pointer), field_name(pointer)) {
        ("Duration", _) => ("a duration", "write a whole number and a unit, like `90s`, `5m` or `1h 30m`".to_owned()),
        ("Percent", _) => ("a percentage", "write a number followed by `%`, like `0.5%` or `10%`".to_owned()),
        ("Threshold", _) => (
            "a threshold",
            "write a percentage for errorRate and availability (`5%`), a duration for p95Latency (`2s`)".to_owned(),
        ),
        (_, "name" | "service") => (
            "a valid name",
            "use lowercase letters, digits and `-`, starting with a letter and not ending with `-` (a DNS-1123 label)"
                .to_owned(),
        ),
        (_, "project") => {
            ("a project ID", "use the project's ID (like `my-project-123`), not its display name or number".to_owned())
        }
        (_, "region") => ("a Cloud Run region", "regions look like `us-central1` or `europe-west4`".to_owned()),
        (_, "serviceAccount") => {
            ("a service account email", "service accounts look like `NAME@PROJECT.iam.gserviceaccount.com`".to_owned())
        }
        (_, "cpu") => (
            "a CPU limit",
            "write a number of vCPUs as a string (`\"1\"`, `\"2\"`) or millicores (`\"500m\"`)".to_owned(),
        ),
        (_, "memory") => ("a memory limit", "write a size with a binary unit, like `512Mi` or `2Gi`".to_owned()),
        (_, "path") => {
            ("a request path", "start with `/`, without spaces, like `/health` or `/api/v1/ping?deep=true`".to_owned())
        }
        (_, "urlFromEnv") => (
            "an environment variable name",
            "name the variable that holds the URL, like `SLACK_WEBHOOK_URL`".to_owned(),
        ),
        _ => ("valid", String::new()),
    };
    let finding = Finding::at_value(pointer, format!("`{path}`: `{text}` is not {what}"));
    if hint.is_empty() { finding } else { finding.hint(hint) }
}

/// Which of canary's string quantities the field at `pointer` holds, if any.
fn quantity_at(pointer: &str) -> &'static str {
    match pattern_at(pointer) {
        Some(p) if p == duration_pattern() => "Duration",
        Some(PERCENT_PATTERN) => "Percent",
        Some(p) if p.starts_with(PERCENT_PATTERN) => "Threshold",
        _ => "",
    }
}

fn type_hint(pointer: &str, instance: &Value) -> Option<String> {
    if pointer.contains("/env/") || pointer.contains("/headers/") {
        return Some(format!("quote the value: `\"{}\"`", scalar_text(instance)));
    }
    let node = schema_at(pointer)?;
    let kind = quantity_at(pointer);
    if kind == "Duration" {
        return Some("write the unit too, like `90s`, `5m` or `1h 30m`".to_owned());
    }
    if kind == "Percent" {
        return Some(match instance {
            Value::Number(n) => format!("write it as a percentage, like `{n}%`"),
            _ => "write a percentage, like `0.5%`".to_owned(),
        });
    }
    if kind == "Threshold" {
        return Some(match instance {
            // A bare latency is more often milliseconds (`2000`) than seconds (`2`).
            Value::Number(n) => {
                let unit = if n.as_f64().is_some_and(|v| v >= 10.0) { "ms" } else { "s" };
                format!("write the unit too: `{n}%` for a rate, `{n}{unit}` for a latency")
            }
            _ => "write a percentage like `5%` or a duration like `2s`".to_owned(),
        });
    }
    if matches!(node.get("type").and_then(Value::as_str), Some("string"))
        && !instance.is_object()
        && !instance.is_array()
    {
        return Some(format!("quote the value: `\"{}\"`", scalar_text(instance)));
    }
    None
}

/// The field at `pointer` as a message names it: `` `spec.stages` `` or "the document".
fn shown(pointer: &str) -> String {
    if pointer.is_empty() { "the document".to_owned() } else { format!("`{}`", dotted(pointer)) }
}

fn field_name(pointer: &str) -> &str {
    pointer.rsplit('/').find(|s| s.parse::<usize>().is_err()).unwrap_or_default()
}

fn within(pointer: &str) -> String {
    if pointer.is_empty() { " at the top level".to_owned() } else { format!(" in `{}`", dotted(pointer)) }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "empty (null)".to_owned(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn article(json_type: &str) -> String {
    match json_type {
        "object" => "a mapping".to_owned(),
        "array" => "a list".to_owned(),
        "integer" => "a whole number".to_owned(),
        "null" => "empty".to_owned(),
        other => format!("a {other}"),
    }
}

fn bound(kind: &ValidationErrorKind, limit: &Value) -> String {
    match kind {
        ValidationErrorKind::ExclusiveMinimum { .. } => format!("more than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { .. } => format!("less than {limit}"),
        _ => limit.to_string(),
    }
}

fn plural(field: &str, n: u64) -> String {
    let singular = match field {
        "stages" => "stage",
        "smokeTests" => "smoke test",
        "rollback" => "trigger",
        _ => "item",
    };
    if n == 1 { singular.to_owned() } else { format!("{singular}s") }
}

fn quoted_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

/// The first sentence of a schema node's description, for hints.
fn first_sentence(node: &Value) -> Option<String> {
    let text = node.get("description").and_then(Value::as_str)?;
    let text = text.split("\n\n").next()?.replace('\n', " ");
    let end = text.find(". ").map_or(text.len(), |i| i + 1);
    Some(text[..end].trim().to_owned())
}
