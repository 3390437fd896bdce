//! Faults on demand: scripted failures of API calls (errors with Retry-After, slow
//! responses, etag conflicts, stale reads), matched by method and path, fired a set
//! number of times or with a probability drawn from the seeded generator.

use serde::{Deserialize, Serialize};

use super::ids::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) enum FaultKind {
    /// Answer with `status` (and `Retry-After` when set) instead of serving the call.
    #[default]
    Status,
    /// Serve the previous version of a service (a replica that has not caught up).
    StaleRead,
    /// Refuse a write with 409 ABORTED, as if another writer had just changed the service.
    EtagConflict,
    /// Only delay the call by `delayMs`.
    Slow,
    /// Publish no metric points for `minutes` from now, for revisions whose name
    /// contains `pathContains`.
    MetricGap,
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Fault {
    #[serde(default)]
    pub(crate) kind: FaultKind,
    /// HTTP method to match (`GET`, `PATCH`, …); any when absent.
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// A substring the request path must contain; any path when empty.
    #[serde(default)]
    pub(crate) path_contains: String,
    /// For `status` faults: the HTTP status to answer with.
    #[serde(default = "unavailable")]
    pub(crate) status: u16,
    /// How many times the fault fires; unlimited when absent.
    #[serde(default)]
    pub(crate) times: Option<u32>,
    /// The chance (0–1) that a matching call is hit; every call when absent.
    #[serde(default)]
    pub(crate) probability: Option<f64>,
    /// Sent as `Retry-After` and `google.rpc.RetryInfo`.
    #[serde(default)]
    pub(crate) retry_after_seconds: Option<u64>,
    /// Real milliseconds to wait before answering (any kind).
    #[serde(default)]
    pub(crate) delay_ms: u64,
    /// For `metricGap` faults: how many minutes, from now, publish no points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) minutes: Option<f64>,
}

fn unavailable() -> u16 {
    503
}

impl Fault {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.kind == FaultKind::Status && !(400..=599).contains(&self.status) {
            return Err(format!("status: {} is not an error status (400-599)", self.status));
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability: {p} is not between 0 and 1"));
        }
        if self.delay_ms > 60_000 {
            return Err("delayMs: at most 60000".to_owned());
        }
        if self.kind == FaultKind::MetricGap && !self.minutes.is_some_and(|m| m.is_finite() && m > 0.0) {
            return Err("minutes: a metricGap fault needs the number of minutes without points".to_owned());
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)) && path.contains(&self.path_contains)
    }
}

/// The faults in force.
#[derive(Debug, Default)]
pub(crate) struct FaultPlan {
    faults: Vec<Fault>,
}

impl FaultPlan {
    pub(crate) fn add(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn list(&self) -> &[Fault] {
        &self.faults
    }

    /// The faults that fire for this call (at most one of each kind), counting them down.
    pub(crate) fn fire(&mut self, method: &str, path: &str, rng: &mut Rng) -> Vec<Fault> {
        let mut fired: Vec<Fault> = Vec::new();
        for fault in &mut self.faults {
            if !fault.matches(method, path) || fault.times == Some(0) || fired.iter().any(|f| f.kind == fault.kind) {
                continue;
            }
            if let Some(p) = fault.probability
                && rng.unit() >= p
            {
                continue;
            }
            if let Some(times) = &mut fault.times {
                *times -= 1;
            }
            fired.push(fault.clone());
        }
        self.faults.retain(|f| f.times != Some(0));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: &str) -> Fault {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fires_the_set_number_of_times_on_matching_calls() {
        let mut plan = FaultPlan::default();
        plan.add(fault(r#"{"method": "PATCH", "pathContains": "/services/a", "status": 503, "times": 2}"#));
        let mut rng = Rng::new(1);
        assert!(plan.fire("GET", "/v2/projects/p/locations/l/services/a", &mut rng).is_empty());
        assert!(plan.fire("PATCH", "/v2/projects/p/locations/l/services/b", &mut rng).is_empty());
        assert_eq!(plan.fire("PATCH", "/v2/projects/p/locations/l/services/a", &mut rng).len(), 1);
        assert_eq!(plan.fire("patch", "/v2/projects/p/locations/l/services/a", &mut rng).len(), 1);
        assert!(plan.fire("PATCH", "/v2/projects/p/locations/l/services/a", &mut rng).is_empty());
        assert!(plan.list().is_empty(), "spent faults are dropped");
    }

    #[test]
    fn probability_is_seeded_and_roughly_honoured() {
        let count = |seed| {
            let mut plan = FaultPlan::default();
            plan.add(fault(r#"{"status": 429, "probability": 0.3}"#));
            let mut rng = Rng::new(seed);
            (0..10_000).filter(|_| !plan.fire("GET", "/v2/x", &mut rng).is_empty()).count()
        };
        assert_eq!(count(5), count(5));
        assert!((2_800..3_200).contains(&count(5)), "{}", count(5));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(fault(r#"{"status": 200}"#).validate().is_err());
        assert!(fault(r#"{"probability": 2}"#).validate().is_err());
        assert!(serde_json::from_str::<Fault>(r#"{"stauts": 503}"#).is_err());
    }
}
