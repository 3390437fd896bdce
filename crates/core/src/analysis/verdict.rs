//! The judgement a pass hands to `decide`: smoke-test results, and each rollback
//! trigger and promotion gate as pass, fail or inconclusive, with the values behind it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

/// One trigger or gate, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    /// The value measured (a fraction for rates, milliseconds for latency, a count for
    /// requests), when there was data.
    pub observed: Option<f64>,
    pub threshold: f64,
    pub result: Outcome,
    /// When inconclusive, how many more requests would make it conclusive.
    #[serde(rename = "requestsNeeded", skip_serializing_if = "Option::is_none")]
    pub requests_needed: Option<u64>,
}

/// What the smoke tests found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Smoke {
    Passed,
    /// The failing request and what came back.
    Failed(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub smoke: Option<Smoke>,
    pub triggers: Vec<Check>,
    pub gates: Vec<Check>,
    /// Metrics could not be read this pass: nothing may advance on missing data.
    pub metrics_error: Option<String>,
}

impl Verdict {
    pub fn failed_trigger(&self) -> Option<&Check> {
        self.triggers.iter().find(|c| c.result == Outcome::Fail)
    }
}
