//! YAML text → documents: a JSON value per `---` document, plus an index from every
//! node's JSON pointer to where it was written, built in the same single parse. The
//! schema and meaning checks work on the JSON value and use the index to turn a JSON
//! pointer into `line:col`.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    pub(crate) const START: Position = Position { line: 1, column: 1 };

    fn of<T>(spanned: &Spanned<T>) -> Position {
        let at = spanned.referenced;
        Position {
            line: usize::try_from(at.line()).unwrap_or(usize::MAX).max(1),
            column: usize::try_from(at.column()).unwrap_or(usize::MAX).max(1),
        }
    }
}

/// One YAML document of a file.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub(crate) index: LocationIndex,
}

/// Where each node of a document was written, keyed by JSON pointer (`/spec/stages/0`).
#[derive(Debug, Default)]
pub(crate) struct LocationIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl LocationIndex {
    /// Where the value at `pointer` starts; for a pointer that names nothing (a missing
    /// field), the nearest enclosing node that exists.
    pub(crate) fn value(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(cut) => p = &p[..cut],
                None => return Position::START,
            }
        }
    }

    /// Where the key that names the node at `pointer` is written (its value's position
    /// for sequence items and the document root).
    pub(crate) fn key(&self, pointer: &str) -> Position {
        self.keys.get(pointer).copied().unwrap_or_else(|| self.value(pointer))
    }
}

/// Limits for manifest-sized inputs: generous for any real manifest, small enough that
/// an alias bomb or a pathological nesting fails fast instead of eating memory.
fn options() -> serde_saphyr::Options {
    // YAML 1.2 core scalars (only `true`/`false` are booleans, so `n: 1` and `on: x` keep
    // their keys), as editors' YAML servers and check-jsonschema read them.
    serde_saphyr::options! {
        strict_booleans: true,
        reject_unsupported_tags: true,
        budget: serde_saphyr::budget! {
            max_depth: 48,
            max_nodes: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 1_000,
            max_total_scalar_bytes: 4 * 1024 * 1024,
        },
    }
}

/// Why a file's YAML could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub(crate) position: Position,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// Parses every document of `text`. Empty documents (`---` with nothing after it) are
/// skipped.
pub fn parse(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let nodes: Vec<Spanned<Node>> = serde_saphyr::from_multiple_with_options(text, options()).map_err(|e| {
        let position = e.location().map_or(Position::START, |at| Position {
            line: usize::try_from(at.line()).unwrap_or(1).max(1),
            column: usize::try_from(at.column()).unwrap_or(1).max(1),
        });
        let (message, hint) = syntax_message(&e);
        SyntaxError { position, message, hint }
    })?;
    Ok(nodes
        .into_iter()
        .filter(|n| !matches!(n.value, Node::Null))
        .map(|node| {
            let mut index = LocationIndex::default();
            let value = into_json(node, &mut String::new(), &mut index);
            Document { value, index }
        })
        .collect())
}

/// The parser's message without its own location and snippet, which the caller
/// renders, and a hint where canary knows better than the parser what to do.
fn syntax_message(e: &serde_saphyr::Error) -> (String, Option<String>) {
    use serde_saphyr::budget::BudgetBreach;
    let too_big = |what: &str| {
        (
            format!("the YAML {what} to be a manifest"),
            Some("a manifest is a small document; is this file really one?".to_owned()),
        )
    };
    match e.without_snippet() {
        serde_saphyr::Error::AliasError { error, .. } => syntax_message(error),
        serde_saphyr::Error::DuplicateMappingKey { key, .. } => (
            format!("duplicate key `{}`", key.as_deref().unwrap_or("?")),
            Some("a key may appear once in a mapping: remove one, or merge the two".to_owned()),
        ),
        serde_saphyr::Error::Budget { breach, .. } => {
            let what = match breach {
                BudgetBreach::Depth { .. } => "is nested too deeply",
                BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => "uses too many anchors or aliases",
                // Nodes run out first when aliases multiply a small text into a huge tree.
                BudgetBreach::Nodes { .. } => "expands to too many nodes (an alias bomb?)",
                BudgetBreach::Documents { .. } => "has too many documents",
                _ => "is too large",
            };
            too_big(what)
        }
        other => {
            let text = other.to_string();
            if text.contains("recursion limit") || text.contains("nesting limit") {
                return too_big("is nested too deeply");
            }
            let text = text.lines().next().unwrap_or("invalid YAML").trim();
            // The parser appends " at line L column C"; canary shows the location itself.
            let text = text.rfind(" at line ").map_or(text, |cut| &text[..cut]);
            (text.trim_end_matches(':').to_owned(), None)
        }
    }
}

fn into_json(node: Spanned<Node>, pointer: &mut String, index: &mut LocationIndex) -> Value {
    index.values.insert(pointer.clone(), Position::of(&node));
    match node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Number(n) => Value::Number(n),
        Node::String(s) => Value::String(s),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                index.keys.insert(pointer.clone(), Position::of(&item));
                out.push(into_json(item, pointer, index));
                pointer.truncate(len);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let mut out = serde_json::Map::with_capacity(entries.len());
            for (key, value) in entries {
                let name = key.value.key_text();
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                index.keys.insert(pointer.clone(), Position::of(&key));
                out.insert(name, into_json(value, pointer, index));
                pointer.truncate(len);
            }
            Value::Object(out)
        }
    }
}

/// A YAML node as the parser hands it over, with the span of every child.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl Node {
    /// JSON keys are strings; YAML's scalar keys (`1:`, `true:`) are spelt as text, and a
    /// collection used as a key (legal YAML, meaningless in a manifest) is shown as such
    /// so the schema reports it as an unknown field.
    fn key_text(&self) -> String {
        match self {
            Node::Null => "null".to_owned(),
            Node::Bool(b) => b.to_string(),
            Node::Number(n) => n.to_string(),
            Node::String(s) => s.clone(),
            Node::Seq(_) => "[sequence]".to_owned(),
            Node::Map(_) => "{mapping}".to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        i64::try_from(v).map(|v| Node::Number(v.into())).or_else(|_| Ok(Node::String(v.to_string())))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        u64::try_from(v).map(|v| Node::Number(v.into())).or_else(|_| Ok(Node::String(v.to_string())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        // Non-finite floats have no JSON form; keep the text so the schema can name it.
        Ok(serde_json::Number::from_f64(v).map_or_else(|| Node::String(v.to_string()), Node::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::String(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_and_values_by_pointer() {
        let text = "a: 1\nspec:\n  stages:\n    - weight: 5\n    - {weight: 100}\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc.value["spec"]["stages"][1]["weight"], 100);
        assert_eq!(doc.index.key("/spec"), Position { line: 2, column: 1 });
        assert_eq!(doc.index.key("/spec/stages/0/weight"), Position { line: 4, column: 7 });
        assert_eq!(doc.index.value("/spec/stages/0/weight"), Position { line: 4, column: 15 });
        assert_eq!(doc.index.value("/spec/stages/1/weight"), Position { line: 5, column: 16 });
        // A pointer to something absent falls back to its nearest existing parent.
        assert_eq!(doc.index.value("/spec/stages/1/hold"), doc.index.value("/spec/stages/1"));
    }

    #[test]
    fn splits_documents_and_skips_empty_ones() {
        let docs = parse("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index.key("/b"), Position { line: 4, column: 1 });
    }

    #[test]
    fn scalars_keep_their_yaml_types() {
        let docs = parse("s: 1h\nn: 5\non: x\nf: 0.5\nb: true\nq: \"5\"\nz: ~\np: 0.5%\n").unwrap();
        let v = &docs[0].value;
        assert_eq!(v["s"], "1h");
        assert_eq!(v["n"], 5);
        assert_eq!(v["on"], "x");
        assert_eq!(v["f"], 0.5);
        assert_eq!(v["b"], true);
        assert_eq!(v["q"], "5");
        assert_eq!(v["z"], Value::Null);
        assert_eq!(v["p"], "0.5%");
    }

    #[test]
    fn refuses_duplicate_keys_with_a_location() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.position.line, 3, "{err:?}");
        assert!(err.message.contains("duplicate"), "{err:?}");
    }

    #[test]
    fn reports_syntax_errors_with_a_location() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }
}
