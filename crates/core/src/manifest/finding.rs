//! A problem found in one document, pointed at by JSON pointer; turned into a
//! located [`Diagnostic`] once the document's location index is at hand.

use crate::diagnostic::Diagnostic;

use super::document::LocationIndex;

/// Which part of a `key: value` pair a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The key (unknown or missing fields, whole entries).
    Key,
    /// The value (wrong type, out of range).
    Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub(crate) pointer: String,
    pub(crate) anchor: Anchor,
    pub(crate) message: String,
    pub(crate) label: Option<String>,
    pub(crate) hint: Option<String>,
}

impl Finding {
    pub(crate) fn at_value(pointer: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding { pointer: pointer.into(), anchor: Anchor::Value, message: message.into(), label: None, hint: None }
    }

    pub(crate) fn at_key(pointer: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding { anchor: Anchor::Key, ..Finding::at_value(pointer, message) }
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Finding {
        self.label = Some(label.into());
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Finding {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn maybe_hint(mut self, hint: Option<String>) -> Finding {
        self.hint = hint;
        self
    }

    pub(crate) fn locate(self, file: &str, index: &LocationIndex) -> Diagnostic {
        let at = match self.anchor {
            Anchor::Key => index.key(&self.pointer),
            Anchor::Value => index.value(&self.pointer),
        };
        Diagnostic {
            file: file.to_owned(),
            line: at.line,
            column: at.column,
            path: dotted(&self.pointer),
            message: self.message,
            label: self.label,
            hint: self.hint,
        }
    }
}

/// A JSON pointer as a manifest author reads it: `/spec/stages/2/weight` →
/// `spec.stages[2].weight`.
pub(crate) fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// Appends a key to a JSON pointer, escaping it.
pub(crate) fn join(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The closest of `candidates` to a mistyped `word`, if any is close enough to be
/// what was meant.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let distance = strsim::damerau_levenshtein(&lower, &c.to_lowercase());
            (distance, c)
        })
        .filter(|(distance, c)| *distance <= (c.len().max(3) / 3).max(1) || c.to_lowercase() == lower)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_read_like_the_manifest() {
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/spec/stages/2/weight"), "spec.stages[2].weight");
        assert_eq!(dotted("/spec/template/env/A~1B"), "spec.template.env.A/B");
    }

    #[test]
    fn suggests_near_misses_only() {
        let fields = ["stages", "service", "smokeTests", "smokeAuth", "analysis"];
        assert_eq!(did_you_mean("stagse", fields), Some("stages"));
        assert_eq!(did_you_mean("smoketests", fields), Some("smokeTests"));
        assert_eq!(did_you_mean("servce", fields), Some("service"));
        assert_eq!(did_you_mean("banana", fields), None);
        assert_eq!(did_you_mean("x", ["for"]), None);
    }
}
