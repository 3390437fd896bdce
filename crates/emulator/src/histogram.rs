//! The latency histograms the emulator publishes, in Cloud Monitoring's
//! `distributionValue` form. The emulator only ever writes one bucket layout (exponential,
//! 20% wide), so this is its own small encoding, not the product's general reader: the two
//! meet only on the wire, which keeps the emulator an independent check of canary's parser.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::proto::Text;

/// Cloud Run latencies here: 100 finite buckets, each 1.2× the one before, from 1 ms.
const FINITE: usize = 100;
const GROWTH: f64 = 1.2;
const SCALE: f64 = 1.0;

/// A histogram of latencies (ms) over the emulator's exponential buckets: bucket 0 is
/// (−∞, 1), bucket i in 1..=100 is [1.2^(i−1), 1.2^i), bucket 101 the overflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub(crate) counts: Vec<u64>,
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) sum_of_squared_deviation: f64,
}

impl Histogram {
    /// An empty histogram over the latency buckets.
    pub(crate) fn latency() -> Histogram {
        Histogram { counts: vec![0; Histogram::buckets()], count: 0, mean: 0.0, sum_of_squared_deviation: 0.0 }
    }

    /// How many buckets, underflow and overflow included.
    pub(crate) fn buckets() -> usize {
        FINITE + 2
    }

    /// The lower and upper edge of bucket `i`; infinite at the two ends.
    pub(crate) fn edges(i: usize) -> (f64, f64) {
        let edge = |k: usize| SCALE * GROWTH.powi(i32::try_from(k).unwrap_or(i32::MAX));
        let lower = if i == 0 { f64::NEG_INFINITY } else { edge(i - 1) };
        let upper = if i > FINITE { f64::INFINITY } else { edge(i) };
        (lower, upper)
    }

    /// Adds another histogram (Chan et al.'s parallel update of mean and squared deviation).
    pub(crate) fn add(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        self.mean += delta * n2 / (n1 + n2);
        self.sum_of_squared_deviation += other.sum_of_squared_deviation + delta * delta * n1 * n2 / (n1 + n2);
        self.count += other.count;
    }

    /// The `q` quantile (0–1), as Monitoring's percentile aligners and reducers answer it:
    /// linear inside the bucket that holds rank q·count; an open bucket gives its finite edge.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0.0;
        let (i, c) = self.counts.iter().enumerate().find(|&(_, &c)| {
            seen += c as f64;
            c > 0 && seen >= rank
        })?;
        let below = seen - *c as f64;
        let (lower, upper) = Histogram::edges(i);
        Some(match (lower.is_finite(), upper.is_finite()) {
            (true, true) => lower + (upper - lower) * (rank - below) / *c as f64,
            (true, false) => lower,
            (false, _) => upper,
        })
    }

    /// The wire form; trailing empty buckets are left out, as Cloud Monitoring does.
    pub fn to_wire(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Written straight to the answer's text (a page can hold a hundred thousand of them):
/// counts as decimal strings, as int64 is sent in JSON.
impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Layout;
        impl Serialize for Layout {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut options = serializer.serialize_map(Some(1))?;
                options.serialize_entry("exponentialBuckets", &Exponential)?;
                options.end()
            }
        }
        struct Exponential;
        impl Serialize for Exponential {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut layout = serializer.serialize_map(Some(3))?;
                layout.serialize_entry("numFiniteBuckets", &FINITE)?;
                layout.serialize_entry("growthFactor", &GROWTH)?;
                layout.serialize_entry("scale", &SCALE)?;
                layout.end()
            }
        }
        struct Counts<'a>(&'a [u64]);
        impl Serialize for Counts<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|c| Text(*c)))
            }
        }
        let used = self.counts.iter().rposition(|&c| c > 0).map_or(0, |i| i + 1);
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("count", &Text(self.count))?;
        map.serialize_entry("mean", &self.mean)?;
        map.serialize_entry("sumOfSquaredDeviation", &self.sum_of_squared_deviation)?;
        map.serialize_entry("bucketOptions", &Layout)?;
        map.serialize_entry("bucketCounts", &Counts(&self.counts[..used]))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edges_follow_the_documented_exponential_layout() {
        assert_eq!(Histogram::buckets(), 102);
        assert_eq!(Histogram::edges(0), (f64::NEG_INFINITY, 1.0));
        assert_eq!(Histogram::edges(1), (1.0, 1.2));
        assert_eq!(Histogram::edges(101).1, f64::INFINITY);
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket_and_adding_combines_moments() {
        let mut a = Histogram::latency();
        a.counts[1] = 50;
        a.count = 50;
        a.mean = 1.1;
        let mut b = Histogram::latency();
        b.counts[2] = 50;
        b.count = 50;
        b.mean = 1.3;
        a.add(&b);
        assert_eq!(a.count, 100);
        assert!((a.mean - 1.2).abs() < 1e-12);
        assert!((a.sum_of_squared_deviation - 1.0).abs() < 1e-9, "{}", a.sum_of_squared_deviation);
        assert!((a.quantile(0.5).unwrap() - 1.2).abs() < 1e-12);
        assert!((a.quantile(0.75).unwrap() - 1.32).abs() < 1e-9);
        assert_eq!(Histogram::latency().quantile(0.95), None);
    }

    #[test]
    fn the_wire_form_leaves_out_trailing_empty_buckets() {
        let mut h = Histogram::latency();
        h.counts[3] = 2;
        h.count = 2;
        let wire = h.to_wire();
        assert_eq!(wire["bucketCounts"], json!(["0", "0", "0", "2"]));
        assert_eq!(wire["count"], "2");
        assert_eq!(wire["bucketOptions"]["exponentialBuckets"]["numFiniteBuckets"], 100);
    }
}
