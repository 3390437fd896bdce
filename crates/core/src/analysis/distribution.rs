//! Latency distributions as Cloud Monitoring sends them (`distributionValue`): bucket
//! bounds, counts, and percentiles interpolated inside the bucket that holds the rank.
//! Pure: no I/O, no clock.

use serde::Deserialize;
use serde_json::Value;
#[cfg(test)]
use serde_json::json;

/// How bucket bounds are laid out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BucketOptions {
    /// Bucket 0 is (−∞, scale); bucket i in 1..=n is [scale·g^(i−1), scale·g^i); the last
    /// is the overflow.
    Exponential { num_finite: usize, growth: f64, scale: f64 },
    /// Bucket 0 is (−∞, offset); bucket i in 1..=n is [offset + width·(i−1), offset + width·i).
    Linear { num_finite: usize, width: f64, offset: f64 },
    /// Bucket 0 is (−∞, b0); bucket i is [b(i−1), b(i)); the last is [b(n−1), +∞).
    Explicit { bounds: Vec<f64> },
}

impl BucketOptions {
    /// The buckets the emulator publishes Cloud Run latencies with: fine enough (20%
    /// wide) that an interpolated p95 sits within a few percent of the truth.
    #[cfg(test)]
    pub(crate) fn latency() -> BucketOptions {
        BucketOptions::Exponential { num_finite: 100, growth: 1.2, scale: 1.0 }
    }

    /// Number of buckets including underflow and overflow.
    pub(crate) fn len(&self) -> usize {
        match self {
            BucketOptions::Exponential { num_finite, .. } | BucketOptions::Linear { num_finite, .. } => num_finite + 2,
            BucketOptions::Explicit { bounds } => bounds.len() + 1,
        }
    }

    /// The lower and upper bound of bucket `i` (infinite at the ends).
    pub(crate) fn bounds(&self, i: usize) -> (f64, f64) {
        let edge = |k: usize| -> f64 {
            match self {
                BucketOptions::Exponential { growth, scale, .. } => {
                    scale * growth.powi(i32::try_from(k).unwrap_or(i32::MAX))
                }
                BucketOptions::Linear { width, offset, .. } => offset + width * k as f64,
                BucketOptions::Explicit { bounds } => bounds.get(k).copied().unwrap_or(f64::INFINITY),
            }
        };
        let last = self.len().saturating_sub(1);
        let lower = if i == 0 { f64::NEG_INFINITY } else { edge(i - 1) };
        let upper = if i >= last { f64::INFINITY } else { edge(i) };
        (lower, upper)
    }

    /// The first bucket whose lower bound is at or above `limit` (the buckets wholly at or
    /// above it start there): worked out from the layout, not bucket by bucket.
    pub(crate) fn first_at_or_above(&self, limit: f64) -> usize {
        let len = self.len();
        // Bucket i ≥ 1 starts at edge(i − 1); find the least k with edge(k) ≥ limit.
        let guess = match self {
            BucketOptions::Exponential { growth, scale, .. } if *growth > 1.0 && *scale > 0.0 && limit > 0.0 => {
                ((limit / scale).ln() / growth.ln()).ceil()
            }
            BucketOptions::Linear { width, offset, .. } if *width > 0.0 => ((limit - offset) / width).ceil(),
            BucketOptions::Explicit { bounds } => bounds.partition_point(|b| *b < limit) as f64,
            _ => 0.0,
        };
        let lower = |i: usize| self.bounds(i).0;
        let mut i = if guess.is_finite() { (guess.max(0.0) as usize).saturating_add(1).min(len) } else { 1 };
        // Rounding in the guess: step to the exact bucket.
        while i > 1 && lower(i - 1) >= limit {
            i -= 1;
        }
        while i < len && lower(i) < limit {
            i += 1;
        }
        if i == 1 && lower(0) >= limit { 0 } else { i }
    }

    #[cfg(test)]
    pub(crate) fn to_wire(&self) -> Value {
        match self {
            BucketOptions::Exponential { num_finite, growth, scale } => {
                json!({"exponentialBuckets": {"numFiniteBuckets": num_finite, "growthFactor": growth, "scale": scale}})
            }
            BucketOptions::Linear { num_finite, width, offset } => {
                json!({"linearBuckets": {"numFiniteBuckets": num_finite, "width": width, "offset": offset}})
            }
            BucketOptions::Explicit { bounds } => json!({"explicitBuckets": {"bounds": bounds}}),
        }
    }
}

/// A distribution of values (latencies in ms) over buckets.
///
/// Only the buckets from the first to the last that hold anything are kept
/// (`counts[k]` is bucket `first + k`): latencies fill a narrow band of a layout's
/// hundred-odd buckets, and a pass at 10,000 rollouts holds a few hundred thousand
/// distributions.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub(crate) options: BucketOptions,
    first: usize,
    counts: Vec<u64>,
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) sum_of_squared_deviation: f64,
}

impl Distribution {
    /// A distribution of `options`' buckets with bucket `i` holding `counts[i]`.
    pub(crate) fn new(options: BucketOptions, counts: &[u64], count: u64, mean: f64, ssd: f64) -> Distribution {
        let counts = &counts[..counts.len().min(options.len())];
        let first = counts.iter().position(|&c| c > 0).unwrap_or(0);
        let end = counts.iter().rposition(|&c| c > 0).map_or(first, |i| i + 1);
        Distribution { options, first, counts: counts[first..end].to_vec(), count, mean, sum_of_squared_deviation: ssd }
    }

    #[cfg(test)]
    pub(crate) fn empty(options: BucketOptions) -> Distribution {
        Distribution::new(options, &[], 0, 0.0, 0.0)
    }

    /// The buckets that hold anything (and any empty ones between them), as (bucket
    /// index, count), lowest first.
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts.iter().enumerate().map(|(k, &c)| (self.first + k, c))
    }

    /// How many values the buckets hold (the buckets' own sum, whatever `count` says).
    pub(crate) fn in_buckets(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Values in buckets `from` and above.
    pub(crate) fn in_buckets_from(&self, from: usize) -> u64 {
        self.counts.iter().skip(from.saturating_sub(self.first)).sum()
    }

    /// Every bucket's count, empty ones included, up to the last that holds anything.
    #[cfg(test)]
    pub(crate) fn dense(&self) -> Vec<u64> {
        let mut out = vec![0; self.first];
        out.extend(&self.counts);
        out
    }

    /// Adds `count` values to bucket `bucket`.
    #[cfg(test)]
    pub(crate) fn add_to_bucket(&mut self, bucket: usize, count: u64) {
        let mut dense = self.dense();
        if dense.len() <= bucket {
            dense.resize(bucket + 1, 0);
        }
        dense[bucket] += count;
        *self = Distribution::new(self.options.clone(), &dense, self.count, self.mean, self.sum_of_squared_deviation);
    }

    /// Adds another distribution with the same buckets (Chan et al.'s parallel update
    /// for mean and squared deviation). Returns false, changing nothing, if the buckets differ.
    pub(crate) fn merge(&mut self, other: &Distribution) -> bool {
        if other.options != self.options {
            return false;
        }
        if other.count == 0 {
            return true;
        }
        if self.counts.is_empty() {
            self.first = other.first;
        }
        // Widen the kept band to cover both.
        if other.first < self.first && !other.counts.is_empty() {
            let grow = self.first - other.first;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = other.first;
        }
        let end = (other.first + other.counts.len()).max(self.first + self.counts.len());
        self.counts.resize(end - self.first, 0);
        for (i, c) in other.buckets() {
            self.counts[i - self.first] += c;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let delta = other.mean - self.mean;
        let total = n1 + n2;
        self.mean += delta * n2 / total;
        self.sum_of_squared_deviation += other.sum_of_squared_deviation + delta * delta * n1 * n2 / total;
        self.count += other.count;
        true
    }

    /// The count of bucket `i`.
    fn bucket(&self, i: usize) -> u64 {
        i.checked_sub(self.first).and_then(|k| self.counts.get(k)).copied().unwrap_or(0)
    }

    /// Takes away a part of this distribution (what [`Distribution::merge`] added), as
    /// the sum of some periods less the sum of the later ones. Returns false, changing
    /// nothing, if the buckets differ or `part` is not within this one.
    pub(crate) fn subtract(&mut self, part: &Distribution) -> bool {
        let within = part.buckets().all(|(i, c)| self.bucket(i) >= c);
        if part.options != self.options || part.count > self.count || !within {
            return false;
        }
        for (i, c) in part.buckets() {
            if c > 0 {
                self.counts[i - self.first] -= c;
            }
        }
        // Keep the band tight: the part may have held the ends.
        let lead = self.counts.iter().position(|&c| c > 0).unwrap_or(self.counts.len());
        let end = self.counts.iter().rposition(|&c| c > 0).map_or(lead, |i| i + 1);
        self.counts.truncate(end);
        self.counts.drain(..lead);
        self.first = if self.counts.is_empty() { 0 } else { self.first + lead };
        let (n, n2) = (self.count as f64, part.count as f64);
        let n1 = n - n2;
        if n1 <= 0.0 {
            self.mean = 0.0;
            self.sum_of_squared_deviation = 0.0;
        } else {
            // Chan et al.'s update, solved for the first part.
            let mean1 = (n * self.mean - n2 * part.mean) / n1;
            let delta = part.mean - mean1;
            self.sum_of_squared_deviation =
                (self.sum_of_squared_deviation - part.sum_of_squared_deviation - delta * delta * n1 * n2 / n).max(0.0);
            self.mean = mean1;
        }
        self.count -= part.count;
        true
    }

    /// The `q` quantile (0–1): find the bucket holding rank q·count and interpolate
    /// linearly inside it. `None` when there is no data. An open-ended bucket answers
    /// with its finite bound.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total = self.in_buckets();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0.0;
        for (i, c) in self.buckets() {
            let c = c as f64;
            if c > 0.0 && below + c >= rank {
                let (lower, upper) = self.options.bounds(i);
                return Some(match (lower.is_finite(), upper.is_finite()) {
                    (true, true) => lower + (upper - lower) * ((rank - below) / c),
                    (true, false) => lower,
                    (false, true) => upper,
                    (false, false) => self.mean,
                });
            }
            below += c;
        }
        None
    }

    /// A `distributionValue` as [`crate::analysis::wire`] read it; `None` when its bucket
    /// layout is not one canary knows.
    pub fn from_parts(wire: &crate::analysis::wire::WireDistribution) -> Option<Distribution> {
        let options = wire.bucket_options.clone()?;
        let counts = &wire.bucket_counts.0;
        let in_buckets = || counts.iter().take(options.len()).sum();
        let count = wire.count.unwrap_or_else(in_buckets);
        Some(Distribution::new(
            options,
            counts,
            count,
            wire.mean.unwrap_or(0.0),
            wire.sum_of_squared_deviation.unwrap_or(0.0),
        ))
    }

    /// A `distributionValue` already read as JSON (the judge-eval, tests): read by the
    /// same reader as an answer's, so the two never disagree.
    pub fn from_wire(value: &Value) -> Option<Distribution> {
        let wire = crate::analysis::wire::WireDistribution::deserialize(value).ok()?;
        Distribution::from_parts(&wire)
    }

    #[cfg(test)]
    pub(crate) fn to_wire(&self) -> Value {
        // Trailing zero counts are left out, as Cloud Monitoring does.
        json!({
            "count": self.count.to_string(),
            "mean": self.mean,
            "sumOfSquaredDeviation": self.sum_of_squared_deviation,
            "bucketOptions": self.options.to_wire(),
            "bucketCounts": self.dense().iter().map(u64::to_string).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bucket counts as a dense list, leading and trailing empty buckets included.
    fn dense_counts() -> impl Strategy<Value = Vec<u64>> {
        (0usize..8, proptest::collection::vec(0u64..50, 0..12), 0usize..8).prop_map(|(lead, mid, trail)| {
            let mut v = vec![0; lead];
            v.extend(mid);
            v.extend(std::iter::repeat_n(0, trail));
            v
        })
    }

    fn of(counts: &[u64]) -> Distribution {
        let o = BucketOptions::Exponential { num_finite: 40, growth: 1.5, scale: 1.0 };
        Distribution::new(o, counts, counts.iter().sum(), 10.0, 1.0)
    }

    fn trimmed(mut v: Vec<u64>) -> Vec<u64> {
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    }

    proptest! {
        /// Keeping only the band of used buckets changes no answer: sums, counts from a
        /// bucket up, percentiles and a subtraction give what the dense lists give.
        #[test]
        fn the_band_of_used_buckets_answers_as_every_bucket_would(a in dense_counts(), b in dense_counts(), from in 0usize..25, q in 0.0f64..1.0) {
            let sum: Vec<u64> = (0..a.len().max(b.len()))
                .map(|i| a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0))
                .collect();
            let mut merged = of(&a);
            prop_assert!(merged.merge(&of(&b)));
            prop_assert_eq!(merged.dense(), trimmed(sum.clone()));
            prop_assert_eq!(merged.in_buckets(), sum.iter().sum::<u64>());
            prop_assert_eq!(merged.in_buckets_from(from), sum.iter().skip(from).sum::<u64>());
            let reference = Distribution { first: 0, counts: sum.clone(), ..merged.clone() };
            prop_assert_eq!(merged.percentile(q), reference.percentile(q));
            prop_assert!(merged.subtract(&of(&b)));
            prop_assert_eq!(merged.dense(), trimmed(a.clone()));
            let mut small = of(&a);
            prop_assert_eq!(small.subtract(&of(&sum)), trimmed(a.clone()) == trimmed(sum.clone()), "only a part is taken away");
        }
    }

    #[test]
    fn the_first_bucket_at_or_above_a_limit_is_the_one_a_scan_finds() {
        let layouts = [
            BucketOptions::latency(),
            BucketOptions::Exponential { num_finite: 40, growth: 2.0, scale: 0.5 },
            BucketOptions::Linear { num_finite: 50, width: 10.0, offset: 5.0 },
            BucketOptions::Explicit { bounds: vec![1.0, 5.0, 25.0, 100.0] },
        ];
        for options in &layouts {
            for limit in [-1.0, 0.0, 0.5, 1.0, 1.2, 1.44, 3.0, 99.9, 100.0, 450.0, 2000.0, 1e9] {
                let scan = (0..options.len()).find(|&i| options.bounds(i).0 >= limit).unwrap_or(options.len());
                assert_eq!(options.first_at_or_above(limit), scan, "{options:?} at {limit}");
            }
        }
    }

    /// canary reads what the emulator writes: a minute of latencies drawn for a profile
    /// (p50 120 ms, p95 450 ms), through the wire, gives canary's percentiles within 5%
    /// of the profile's. The two sides share no code, only the wire form.
    #[test]
    fn the_emulators_latencies_read_back_as_their_profile() {
        use canary_emulator::ids::Rng;
        use canary_emulator::profile::Behaviour;
        use canary_emulator::traffic::LatencyShapes;
        let behaviour =
            Behaviour { error_rate: 0.0, client_error_rate: 0.0, p50_ms: 120.0, p95_ms: 450.0, health_status: 200 };
        let drawn = LatencyShapes::default().draw(&mut Rng::new(7), 20_000, &behaviour).to_wire();
        let d = Distribution::from_wire(&drawn).expect("canary reads the emulator's distributionValue");
        assert_eq!(d.count, 20_000);
        let p95 = d.percentile(0.95).unwrap();
        let p50 = d.percentile(0.5).unwrap();
        assert!((p95 / 450.0 - 1.0).abs() < 0.05, "p95 {p95} vs 450");
        assert!((p50 / 120.0 - 1.0).abs() < 0.05, "p50 {p50} vs 120");
    }

    #[test]
    fn exponential_bounds_follow_the_documented_layout() {
        let o = BucketOptions::Exponential { num_finite: 3, growth: 2.0, scale: 1.0 };
        assert_eq!(o.len(), 5);
        assert_eq!(o.bounds(0), (f64::NEG_INFINITY, 1.0));
        assert_eq!(o.bounds(1), (1.0, 2.0));
        assert_eq!(o.bounds(3), (4.0, 8.0));
        assert_eq!(o.bounds(4), (8.0, f64::INFINITY));
    }

    #[test]
    fn percentile_interpolates_inside_the_bucket() {
        // 100 values: 50 in [1,2), 50 in [2,4). The median is the top of [1,2); p95 sits
        // 90% of the way into [2,4).
        let o = BucketOptions::Exponential { num_finite: 3, growth: 2.0, scale: 1.0 };
        let d = Distribution::new(o, &[0, 50, 50, 0, 0], 100, 2.0, 0.0);
        assert_eq!(d.percentile(0.5), Some(2.0));
        assert!((d.percentile(0.95).unwrap() - 3.8).abs() < 1e-9);
        assert_eq!(Distribution::empty(BucketOptions::latency()).percentile(0.95), None);
    }

    #[test]
    fn merging_adds_counts_and_combines_moments() {
        let o = BucketOptions::Linear { num_finite: 2, width: 10.0, offset: 0.0 };
        let mut a = Distribution::new(o.clone(), &[0, 2, 0, 0], 2, 4.0, 2.0);
        let b = Distribution::new(o, &[0, 0, 2, 0], 2, 14.0, 2.0);
        assert!(a.merge(&b));
        assert_eq!(a.dense(), vec![0, 2, 2]);
        assert_eq!(a.count, 4);
        assert!((a.mean - 9.0).abs() < 1e-9);
        // Values 3,5,13,15: squared deviations from 9 are 36+16+16+36.
        assert!((a.sum_of_squared_deviation - 104.0).abs() < 1e-9);
        let other = Distribution::empty(BucketOptions::latency());
        assert!(!a.clone().merge(&other), "different buckets do not merge");
    }

    #[test]
    fn wire_form_round_trips_and_only_the_band_of_used_buckets_is_kept() {
        let wire = json!({"count": "3", "mean": 1.5, "bucketOptions": {"exponentialBuckets": {"numFiniteBuckets": 4, "growthFactor": 2, "scale": 1}}, "bucketCounts": ["0", "3"]});
        let d = Distribution::from_wire(&wire).unwrap();
        assert_eq!(d.dense(), vec![0, 3]);
        assert_eq!(d.buckets().collect::<Vec<_>>(), vec![(1, 3)], "leading empty buckets are not kept");
        assert_eq!(d.count, 3);
        assert_eq!(Distribution::from_wire(&d.to_wire()).unwrap(), d);
    }
}
