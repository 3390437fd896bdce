//! Loading a manifest set: read the files, parse every document, validate each in
//! layers (YAML, schema, meaning), then check the set as a whole. One broken document
//! never hides another's errors or results.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::diagnostic::Diagnostic;

use super::document::{self, Document, Position};
use super::finding::Finding;
use super::source::{self, SourceFile, Unreadable};
use super::types::CanaryRollout;
use super::{rules, schema_check};

/// One document of the set, valid or not.
#[derive(Debug)]
pub struct Manifest {
    /// `metadata.name`, when the document has one, even if it is otherwise invalid (so
    /// a later pass can tell which rollout an invalid edit belongs to).
    pub name: Option<String>,
    /// The rollout, when the document has no problem at all.
    pub rollout: Option<CanaryRollout>,
    /// `spec.project`, `spec.region` and `spec.service`, when the document names them,
    /// valid or not: an invalid edit still says which service it is about.
    pub target: Option<(String, String, String)>,
}

/// Everything found under the named paths.
#[derive(Debug, Default)]
pub struct ManifestSet {
    pub manifests: Vec<Manifest>,
    /// Problems with the content of files, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Paths that could not be read at all.
    pub unreadable: Vec<Unreadable>,
    /// How many files were read.
    pub files: usize,
    /// The text of each file read, for source snippets.
    pub sources: HashMap<String, String>,
}

impl ManifestSet {
    pub fn valid(&self) -> impl Iterator<Item = &CanaryRollout> {
        self.manifests.iter().filter_map(|m| m.rollout.as_ref())
    }

    pub(crate) fn invalid_count(&self) -> usize {
        self.manifests.iter().filter(|m| m.rollout.is_none()).count()
    }
}

/// Loads and validates every manifest under `paths`.
pub fn load(paths: &[PathBuf]) -> ManifestSet {
    let sources = source::read_all(paths);
    let mut set = ManifestSet { unreadable: sources.unreadable, ..ManifestSet::default() };
    for rejected in sources.rejected {
        set.files += 1;
        set.diagnostics.push(Diagnostic {
            file: rejected.path.display().to_string(),
            line: rejected.line,
            column: rejected.column,
            path: String::new(),
            message: rejected.message,
            label: None,
            hint: rejected.hint,
        });
    }
    // Parsing and checking each file is independent of every other: spread over the
    // cores, each file's results kept in the order the files were read.
    let read = parallel_map(&sources.files, |file| match document::parse(&file.text) {
        Ok(docs) => Ok(docs
            .into_iter()
            .map(|doc| {
                let checked = check_document(&file.display(), &doc);
                (doc, checked)
            })
            .collect::<Vec<_>>()),
        Err(e) => Err(e),
    });
    let mut documents = Vec::new();
    for (file, read) in sources.files.into_iter().zip(read) {
        set.files += 1;
        let name = file.display();
        match read {
            Ok(docs) if docs.is_empty() => set.diagnostics.push(file_problem(
                &file,
                Position::START,
                "file contains no manifest",
                "write a CanaryRollout here (see manifests/minimal.yaml), or remove the file",
            )),
            Ok(docs) => {
                for (doc, (manifest, diagnostics)) in docs {
                    set.diagnostics.extend(diagnostics);
                    set.manifests.push(manifest);
                    documents.push((name.clone(), doc));
                }
            }
            Err(e) => set.diagnostics.push(file_problem(
                &file,
                e.position,
                &format!("invalid YAML: {}", e.message),
                e.hint.as_deref().unwrap_or_default(),
            )),
        }
        set.sources.insert(name, file.text);
    }
    check_set(&documents, &mut set);
    set.diagnostics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    set
}

/// `f` of each item, in order, computed on up to one thread per core.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Small sets are not worth a thread.
    let chunk = items.len().div_ceil(threads).max(64);
    if chunk >= items.len() {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> =
            items.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>())).collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

fn file_problem(file: &SourceFile, at: Position, message: &str, hint: &str) -> Diagnostic {
    Diagnostic {
        file: file.display(),
        line: at.line,
        column: at.column,
        path: String::new(),
        message: message.to_owned(),
        label: None,
        hint: (!hint.is_empty()).then(|| hint.to_owned()),
    }
}

fn check_document(file: &str, doc: &Document) -> (Manifest, Vec<Diagnostic>) {
    let mut manifest = Manifest {
        name: doc.value.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned),
        rollout: None,
        target: None,
    };
    let text = |p: &str| doc.value.pointer(p).and_then(Value::as_str).map(str::to_owned);
    if let (Some(project), Some(region), Some(service)) =
        (text("/spec/project"), text("/spec/region"), text("/spec/service"))
    {
        manifest.target = Some((project, region, service));
    }
    let findings = validate(&doc.value);
    let diagnostics: Vec<Diagnostic> = match findings {
        Ok(rollout) => {
            manifest.rollout = Some(rollout);
            Vec::new()
        }
        Err(findings) => findings.into_iter().map(|f| f.locate(file, &doc.index)).collect(),
    };
    (manifest, diagnostics)
}

/// Validates one document's value: the schema first, then, on a document that matches
/// it, the rules of meaning.
pub fn validate(value: &Value) -> Result<CanaryRollout, Vec<Finding>> {
    let findings = schema_check::check(value);
    if !findings.is_empty() {
        return Err(findings);
    }
    let rollout: CanaryRollout = serde_json::from_value(value.clone())
        // The schema is generated from these types, so this means the two disagree: say
        // so plainly rather than guess.
        .map_err(|e| vec![Finding::at_value("", format!("manifest does not match canary's types: {e}"))])?;
    let findings = rules::check(&rollout);
    if findings.is_empty() { Ok(rollout) } else { Err(findings) }
}

/// Rules across the set: names are unique, and no two manifests own one service.
fn check_set(documents: &[(String, Document)], set: &mut ManifestSet) {
    let mut names: HashMap<&str, (&str, Position)> = HashMap::new();
    let mut services: HashMap<(&str, &str, &str), (&str, Position, &str)> = HashMap::new();
    let mut duplicates = Vec::new();
    for (i, (file, doc)) in documents.iter().enumerate() {
        let text = |p: &str| doc.value.pointer(p).and_then(Value::as_str);
        let Some(name) = text("/metadata/name") else { continue };
        if let Some((first_file, at)) = names.get(name) {
            duplicates.push((
                i,
                Finding::at_value(
                    "/metadata/name",
                    format!("rollout name `{name}` is already used at {first_file}:{}:{}", at.line, at.column),
                )
                .hint("names are unique across the manifest set; rename one of them"),
            ));
        } else {
            names.insert(name, (file, doc.index.value("/metadata/name")));
        }
        if let (Some(p), Some(r), Some(s)) = (text("/spec/project"), text("/spec/region"), text("/spec/service")) {
            if let Some((first_file, at, owner)) = services.get(&(p, r, s)) {
                duplicates.push((
                    i,
                    Finding::at_value(
                        "/spec/service",
                        format!(
                            "service {p}/{r}/{s} is already rolled out by `{owner}` ({first_file}:{}:{})",
                            at.line, at.column
                        ),
                    )
                    .hint("one manifest owns a service; merge the two or point this one at another service"),
                ));
            } else {
                services.insert((p, r, s), (file, doc.index.value("/spec/service"), name));
            }
        }
    }
    for (i, finding) in duplicates {
        let (file, doc) = &documents[i];
        set.diagnostics.push(finding.locate(file, &doc.index));
        set.manifests[i].rollout = None;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::manifest::document;
    use crate::manifest::quantity::{Duration, Percent, Threshold};
    use crate::manifest::types::*;

    fn minutes(m: u64) -> Duration {
        Duration::from_std(std::time::Duration::from_secs(m * 60))
    }

    fn valid_rollout() -> impl Strategy<Value = CanaryRollout> {
        let name = "[a-z][a-z0-9]{0,10}(-[a-z0-9]{1,8})?";
        let weights = proptest::collection::btree_set(1u8..100, 0..5);
        let env = proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[ -~]{0,12}", 0..4);
        let triggers = proptest::collection::vec((0u8..3, 1u32..1000, 0u64..4), 0..4);
        let gates =
            (proptest::option::of(0u32..500), proptest::option::of(1u32..50), proptest::option::of(0u64..100_000));
        (name, weights, env, triggers, gates, 1u64..4, 0u64..3, any::<bool>(), any::<bool>(), "[a-z0-9]{1,8}").prop_map(
            |(name, weights, env, triggers, gates, interval, warmup, adopt, paused, tag)| {
                let mut stages: Vec<Stage> = weights
                    .into_iter()
                    .map(|weight| Stage { weight, hold: Some(minutes(u64::from(weight) + 10)) })
                    .collect();
                stages.push(Stage { weight: 100, hold: None });
                let rollback = triggers
                    .into_iter()
                    .map(|(kind, value, windows)| {
                        let (metric, above, below) = match kind {
                            0 => (
                                Metric::ErrorRate,
                                Some(Threshold::Percent(Percent::from_points(f64::from(value % 100) / 10.0))),
                                None,
                            ),
                            1 => (
                                Metric::Availability,
                                None,
                                Some(Threshold::Percent(Percent::from_points(f64::from(value % 100)))),
                            ),
                            _ => (
                                Metric::P95Latency,
                                Some(Threshold::Latency(Duration::from_std(std::time::Duration::from_millis(
                                    u64::from(value),
                                )))),
                                None,
                            ),
                        };
                        RollbackTrigger { metric, above, below, window: minutes(interval * windows) }
                    })
                    .collect();
                CanaryRollout {
                    api_version: API_VERSION.to_owned(),
                    kind: KIND.to_owned(),
                    metadata: Metadata { name: name.clone() },
                    spec: RolloutSpec {
                        project: "your-project-id".to_owned(),
                        region: "us-central1".to_owned(),
                        service: name,
                        adopt,
                        template: Template {
                            image: format!("gcr.io/your-project-id/app:{tag}"),
                            env,
                            resources: None,
                            service_account: None,
                        },
                        smoke_tests: vec![SmokeTest {
                            path: "/health".to_owned(),
                            method: Method::Get,
                            headers: BTreeMap::new(),
                            json: None,
                            expect_status: None,
                            timeout: Duration::from_std(std::time::Duration::from_secs(10)),
                        }],
                        smoke_auth: SmokeAuth::None,
                        stages,
                        analysis: Analysis {
                            interval: minutes(interval),
                            warmup: minutes(warmup),
                            max_wait: minutes(360),
                            promotion: Promotion {
                                max_error_rate_increase: gates.0.map(|p| Percent::from_points(f64::from(p) / 100.0)),
                                max_p95_increase: gates.1.map(|p| Percent::from_points(f64::from(p))),
                                min_requests: gates.2,
                            },
                            rollback,
                            on_gate_failure: if paused {
                                GateFailurePolicy::Pause
                            } else {
                                GateFailurePolicy::Rollback
                            },
                            ..Analysis::default()
                        },
                        notify: vec![Notify::Slack(WebhookTarget { url_from_env: "SLACK_URL".to_owned() })],
                        paused,
                    },
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// A typed manifest written out as YAML loads back equal, and validates.
        #[test]
        fn typed_manifests_round_trip_through_yaml(rollout in valid_rollout()) {
            let yaml = serde_saphyr::to_string(&rollout).unwrap();
            let docs = document::parse(&yaml).map_err(|e| TestCaseError::fail(format!("{e:?}\n{yaml}")))?;
            prop_assert_eq!(docs.len(), 1);
            match validate(&docs[0].value) {
                Ok(back) => prop_assert_eq!(back, rollout),
                Err(findings) => prop_assert!(false, "{:?}\n{}", findings, yaml),
            }
        }
    }
}
