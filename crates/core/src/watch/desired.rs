//! What the manifests on disk ask for, by rollout name, and what changed since the last
//! look: the watch passes a rollout again at once when its manifest changed, and stops
//! managing one whose manifest is gone.

use std::collections::BTreeMap;

use crate::manifest::ManifestSet;
use crate::manifest::types::CanaryRollout;
use crate::reconcile::Invalid;

/// One rollout's manifest: valid, or an invalid edit that still names its service
/// (held at its current traffic by the pass; see `reconcile`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Wanted {
    Valid(Box<CanaryRollout>),
    Invalid(Invalid),
}

/// The manifest set, by rollout name.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Desired {
    pub(crate) rollouts: BTreeMap<String, Wanted>,
}

/// What differs between two looks at the manifests.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// New or edited: pass them now.
    pub(crate) changed: Vec<String>,
    /// Gone: no longer managed.
    pub(crate) removed: Vec<String>,
}

impl Desired {
    /// The rollouts of `set` that `mine` keeps (a shard), valid or invalid.
    pub(crate) fn from_set(set: &ManifestSet, mine: impl Fn(&str) -> bool) -> Desired {
        let mut rollouts = BTreeMap::new();
        for r in set.valid().filter(|r| mine(&r.metadata.name)) {
            rollouts.insert(r.metadata.name.clone(), Wanted::Valid(Box::new(r.clone())));
        }
        for m in set.manifests.iter().filter(|m| m.rollout.is_none()) {
            let (Some(name), Some((project, region, service))) = (&m.name, &m.target) else { continue };
            // A valid manifest of the same name wins; a duplicate name is reported by
            // the set's own checks.
            if !mine(name) || rollouts.contains_key(name) || set.valid().any(|r| &r.metadata.name == name) {
                continue;
            }
            let invalid = Invalid {
                name: name.clone(),
                project: project.clone(),
                region: region.clone(),
                service: service.clone(),
            };
            rollouts.insert(name.clone(), Wanted::Invalid(invalid));
        }
        Desired { rollouts }
    }

    /// What changed from `before` to `self`.
    pub(crate) fn changes_since(&self, before: &Desired) -> Changes {
        let changed = self.rollouts.iter().filter(|(n, w)| before.rollouts.get(*n) != Some(w)).map(|(n, _)| n.clone());
        let removed = before.rollouts.keys().filter(|n| !self.rollouts.contains_key(*n)).cloned();
        Changes { changed: changed.collect(), removed: removed.collect() }
    }

    /// The valid rollouts and invalid edits among `names`, for one pass.
    pub(crate) fn batch(&self, names: &[String]) -> (Vec<CanaryRollout>, Vec<Invalid>) {
        let (mut valid, mut invalid) = (Vec::new(), Vec::new());
        for name in names {
            match self.rollouts.get(name) {
                Some(Wanted::Valid(r)) => valid.push((**r).clone()),
                Some(Wanted::Invalid(i)) => invalid.push(i.clone()),
                None => {}
            }
        }
        (valid, invalid)
    }

    pub(crate) fn valid(&self, name: &str) -> Option<&CanaryRollout> {
        match self.rollouts.get(name) {
            Some(Wanted::Valid(r)) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, image: &str) {
        let text = format!(
            "apiVersion: canary/v1alpha1\nkind: CanaryRollout\nmetadata: {{name: {name}}}\nspec:\n  project: demo-project\n  region: us-central1\n  service: {name}\n  template: {{image: \"{image}\"}}\n  stages: [{{weight: 5, hold: 1h}}, {{weight: 100}}]\n  analysis:\n    promotion: {{minRequests: 100}}\n    rollback: [{{metric: errorRate, above: 5%}}]\n"
        );
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }

    fn load(dir: &std::path::Path) -> Desired {
        Desired::from_set(&crate::manifest::load(&[dir.to_path_buf()]), |_| true)
    }

    #[test]
    fn edits_additions_and_deletions_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "gcr.io/x/a:v1");
        write(dir.path(), "b", "gcr.io/x/b:v1");
        let first = load(dir.path());
        assert_eq!(first.changes_since(&Desired::default()).changed, ["a", "b"]);
        assert_eq!(load(dir.path()).changes_since(&first), Changes::default(), "nothing changed, nothing to do");
        write(dir.path(), "a", "gcr.io/x/a:v2");
        write(dir.path(), "c", "gcr.io/x/c:v1");
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        let second = load(dir.path());
        assert_eq!(
            second.changes_since(&first),
            Changes { changed: vec!["a".into(), "c".into()], removed: vec!["b".into()] }
        );
    }

    #[test]
    fn an_invalid_edit_stays_its_rollout_and_touches_no_other() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "gcr.io/x/a:v1");
        write(dir.path(), "b", "gcr.io/x/b:v1");
        let first = load(dir.path());
        let text = std::fs::read_to_string(dir.path().join("a.yaml")).unwrap().replace("weight: 5,", "weight: 500,");
        std::fs::write(dir.path().join("a.yaml"), text).unwrap();
        let second = load(dir.path());
        assert!(matches!(second.rollouts["a"], Wanted::Invalid(_)));
        assert_eq!(second.changes_since(&first), Changes { changed: vec!["a".into()], removed: vec![] });
        let (valid, invalid) = second.batch(&["a".into(), "b".into(), "gone".into()]);
        assert_eq!((valid.len(), invalid.len()), (1, 1));
    }
}
