//! Metrics → judgement. This part holds the pure building blocks shared with the
//! emulator: latency distributions and their percentiles.

pub mod distribution;
pub mod judge;
pub mod verdict;
