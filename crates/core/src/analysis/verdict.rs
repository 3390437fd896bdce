//! The judgement a pass hands to `decide`: smoke-test results, and each rollback
//! trigger and promotion gate as pass, fail or inconclusive, with the values behind it.

use serde::Serialize;

use crate::manifest::types::Metric;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

/// What a check measures. It carries the check's unit, so every place that writes a
/// check's numbers (reasons, the table, the live view, notifications, reports) writes
/// them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckKind {
    /// Rollback trigger: 5xx ÷ all responses.
    ErrorRate,
    /// Rollback trigger: 1 − errorRate.
    Availability,
    /// Rollback trigger: the canary's p95 latency.
    P95Latency,
    /// Promotion gate: the canary's error rate less stable's.
    ErrorRateIncrease,
    /// Promotion gate: the canary's p95 over stable's, less one.
    P95Increase,
    /// Promotion gate: requests the canary served this stage.
    MinRequests,
}

/// What kind of number a check's observed value and threshold are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A fraction shown as a percentage (`errorRate`, `availability`).
    Rate,
    /// A difference of fractions, in percentage points (`errorRateIncrease`).
    Points,
    /// A relative increase (`p95Increase`: 0.1 is +10%).
    Relative,
    /// Milliseconds (`p95Latency`).
    Millis,
    /// A count (`minRequests`).
    Count,
}

impl Unit {
    /// `10.23%`, `+0.12 pts`, `-4.0%`, `2000 ms`, `640`; `-` for a value that is not a number.
    pub(crate) fn show(self, v: f64) -> String {
        if !v.is_finite() {
            return "-".to_owned();
        }
        match self {
            Unit::Rate => format!("{:.2}%", v * 100.0),
            Unit::Points => format!("{:+.2} pts", v * 100.0),
            Unit::Relative => format!("{:+.1}%", v * 100.0),
            Unit::Millis => format!("{v:.0} ms"),
            Unit::Count => format!("{v:.0}"),
        }
    }
}

impl CheckKind {
    #[cfg(test)]
    pub(crate) const ALL: [CheckKind; 6] = [
        CheckKind::ErrorRate,
        CheckKind::Availability,
        CheckKind::P95Latency,
        CheckKind::ErrorRateIncrease,
        CheckKind::P95Increase,
        CheckKind::MinRequests,
    ];

    /// The name people and programs see (`status -o json`'s `name`).
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::ErrorRate => "errorRate",
            CheckKind::Availability => "availability",
            CheckKind::P95Latency => "p95Latency",
            CheckKind::ErrorRateIncrease => "errorRateIncrease",
            CheckKind::P95Increase => "p95Increase",
            CheckKind::MinRequests => "minRequests",
        }
    }

    #[cfg(test)]
    pub(crate) fn parse(name: &str) -> Option<CheckKind> {
        CheckKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub(crate) fn unit(self) -> Unit {
        match self {
            CheckKind::ErrorRate | CheckKind::Availability => Unit::Rate,
            CheckKind::P95Latency => Unit::Millis,
            CheckKind::ErrorRateIncrease => Unit::Points,
            CheckKind::P95Increase => Unit::Relative,
            CheckKind::MinRequests => Unit::Count,
        }
    }

    /// A value of this check, in its unit.
    pub(crate) fn show(self, v: f64) -> String {
        self.unit().show(v)
    }

    /// Availability and request counts must stay at or above their bound; the rest at or below.
    pub(crate) fn at_least(self) -> bool {
        matches!(self, CheckKind::Availability | CheckKind::MinRequests)
    }

    /// The condition the check passes with, as a person reads it: `≤ 5.00%`, `≥ 99.00%`.
    pub(crate) fn condition(self, threshold: f64) -> String {
        format!("{} {}", if self.at_least() { "≥" } else { "≤" }, self.show(threshold))
    }
}

impl From<Metric> for CheckKind {
    fn from(metric: Metric) -> CheckKind {
        match metric {
            Metric::ErrorRate => CheckKind::ErrorRate,
            Metric::Availability => CheckKind::Availability,
            Metric::P95Latency => CheckKind::P95Latency,
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One trigger or gate, judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    #[serde(rename = "name")]
    pub(crate) kind: CheckKind,
    /// The value measured (a fraction for rates, milliseconds for latency, a count for
    /// requests), when there was data.
    pub(crate) observed: Option<f64>,
    pub(crate) threshold: f64,
    pub result: Outcome,
    /// When inconclusive, how many more requests would make it conclusive.
    #[serde(rename = "requestsNeeded", skip_serializing_if = "Option::is_none")]
    pub(crate) requests_needed: Option<u64>,
    /// For a rollback trigger: stable's value over the same minutes, when it served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stable: Option<f64>,
    /// A failed trigger that stable fails too, with the canary not conclusively worse:
    /// a shared incident, not the canary's fault.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) shared: bool,
}

/// What the smoke tests found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Smoke {
    Passed,
    /// The failing request and what came back.
    Failed(String),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) smoke: Option<Smoke>,
    pub(crate) triggers: Vec<Check>,
    pub(crate) gates: Vec<Check>,
    /// Metrics could not be read this pass: nothing may advance on missing data.
    pub(crate) metrics_error: Option<String>,
    /// Paused by a shared incident: whether stable has since been within every trigger
    /// for `analysis.incidentRecovery`.
    pub(crate) stable_recovered: Option<bool>,
}

impl Verdict {
    pub(crate) fn failed_trigger(&self) -> Option<&Check> {
        self.triggers.iter().find(|c| c.result == Outcome::Fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_writes_its_numbers_in_its_unit() {
        assert_eq!(CheckKind::ErrorRate.show(0.1023), "10.23%");
        assert_eq!(CheckKind::ErrorRateIncrease.show(0.0012), "+0.12 pts");
        assert_eq!(CheckKind::P95Increase.show(-0.04), "-4.0%");
        assert_eq!(CheckKind::P95Latency.show(1999.6), "2000 ms");
        assert_eq!(CheckKind::MinRequests.show(640.0), "640");
        assert_eq!(CheckKind::ErrorRate.show(f64::NAN), "-");
        assert_eq!(CheckKind::Availability.condition(0.99), "≥ 99.00%");
        assert_eq!(CheckKind::ErrorRate.condition(0.05), "≤ 5.00%");
    }

    #[test]
    fn names_round_trip_and_serialise_as_they_read() {
        for kind in CheckKind::ALL {
            assert_eq!(CheckKind::parse(kind.name()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        assert_eq!(CheckKind::parse("p99"), None);
    }
}
