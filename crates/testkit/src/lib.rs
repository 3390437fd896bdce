//! What canary's integration tests share: the one builder of `CanaryRollout` manifest
//! text. `tests/cli` writes it to files for the real binary; `crates/inprocess/tests`
//! validates it into a rollout. Plain text, so it depends on nothing of the product.

/// The project and region every test world uses.
pub const PROJECT: &str = "demo-project";
pub const REGION: &str = "us-central1";

/// `projects/PROJECT/locations/REGION/services/SERVICE`, in [`REGION`].
pub fn service_name(project: &str, service: &str) -> String {
    format!("projects/{project}/locations/{REGION}/services/{service}")
}

/// A `CanaryRollout` manifest, built from a few parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    name: String,
    project: String,
    service: String,
    image: String,
    stages: Vec<(u8, String)>,
    analysis: String,
    rollback: Vec<String>,
}

impl Manifest {
    /// Rollout `name` of the service of the same name in [`PROJECT`]/[`REGION`], to
    /// `image`, adopting the service; no stages or analysis yet.
    pub fn new(name: &str, image: &str) -> Manifest {
        Manifest {
            name: name.to_owned(),
            project: PROJECT.to_owned(),
            service: name.to_owned(),
            image: image.to_owned(),
            stages: Vec::new(),
            analysis: String::new(),
            rollback: Vec::new(),
        }
    }

    pub fn project(mut self, project: &str) -> Manifest {
        project.clone_into(&mut self.project);
        self
    }

    /// Another service than the rollout's name.
    pub fn service(mut self, service: &str) -> Manifest {
        service.clone_into(&mut self.service);
        self
    }

    /// Stages as (weight, hold); an empty hold means none.
    pub fn stages(mut self, stages: &[(u8, &str)]) -> Manifest {
        self.stages = stages.iter().map(|(w, h)| (*w, (*h).to_owned())).collect();
        self
    }

    /// The lines under `analysis:`, indented four spaces (with no `rollback:` of their
    /// own when [`Manifest::rollback`] adds triggers).
    pub fn analysis(mut self, lines: &str) -> Manifest {
        lines.clone_into(&mut self.analysis);
        self
    }

    /// A rollback trigger, in flow style: `{metric: errorRate, above: 5%}`.
    pub fn rollback(mut self, trigger: &str) -> Manifest {
        self.rollback.push(trigger.to_owned());
        self
    }

    /// The manifest as YAML.
    pub fn text(&self) -> String {
        let stages: String = self
            .stages
            .iter()
            .map(|(w, h)| {
                if h.is_empty() {
                    format!("    - {{weight: {w}}}\n")
                } else {
                    format!("    - {{weight: {w}, hold: {h}}}\n")
                }
            })
            .collect();
        let mut analysis = self.analysis.clone();
        if !self.rollback.is_empty() {
            analysis.push_str("    rollback:\n");
            analysis.extend(self.rollback.iter().map(|t| format!("      - {t}\n")));
        }
        let analysis = if analysis.is_empty() { String::new() } else { format!("  analysis:\n{analysis}") };
        format!(
            "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: {}}}\nspec:\n  project: {}\n  \
             region: {REGION}\n  service: {}\n  adopt: true\n  template: {{image: \"{}\"}}\n  stages:\n{stages}{analysis}",
            self.name, self.project, self.service, self.image
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_has_each_part_where_the_schema_wants_it() {
        let text = Manifest::new("api", "gcr.io/p/api:v2")
            .project("other")
            .stages(&[(10, "20m"), (100, "")])
            .analysis("    warmup: 2m\n")
            .rollback("{metric: errorRate, above: 5%}")
            .text();
        assert!(text.contains("metadata: {name: api}\n"), "{text}");
        assert!(text.contains("  project: other\n  region: us-central1\n  service: api\n"), "{text}");
        assert!(text.contains("  template: {image: \"gcr.io/p/api:v2\"}\n"), "{text}");
        assert!(text.contains("  stages:\n    - {weight: 10, hold: 20m}\n    - {weight: 100}\n"), "{text}");
        assert!(
            text.ends_with("  analysis:\n    warmup: 2m\n    rollback:\n      - {metric: errorRate, above: 5%}\n"),
            "{text}"
        );
        assert!(Manifest::new("api", "x").service("web").text().contains("  service: web\n"));
        assert_eq!(service_name("p", "api"), "projects/p/locations/us-central1/services/api");
        assert!(!Manifest::new("api", "x").text().contains("analysis"));
    }
}
