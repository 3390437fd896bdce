//! Metrics → judgement: what Cloud Monitoring is asked and the minutes it answers
//! (`observations`), latency distributions and their percentiles, the statistics
//! (sequential tests, confidence sequences), and the judge that turns a rollout's
//! minutes into rollback triggers and promotion gates.

pub mod distribution;
pub mod judge;
pub mod observations;
pub mod stats;
pub mod verdict;
pub mod wire;

#[cfg(test)]
mod periods_tests;
