//! The statistics behind the judgement, pure: per-minute likelihood ratios for counts,
//! a sequential detector whose false-alarm probability holds over every look, and
//! time-uniform confidence sequences for a rate. See README "How canary judges".
//!
//! Everything here is a statement about requests as independent Bernoulli trials (a
//! request fails, or is slower than a bound, with some probability). Two tools:
//!
//! - `Detector`: is a rate above a limit? For a fixed start minute k, the product of
//!   per-minute likelihood ratios (alternative over limit) is a non-negative
//!   supermartingale while the true rate is at or below the limit, so by Ville's
//!   inequality it ever reaches 1/a with probability at most a. The detector considers
//!   every start minute k (so a release that turns bad mid-stage is caught without
//!   first paying back the evidence of its healthy minutes) and gives start k the
//!   share a_k = α / (k(k+1)) of its budget; the shares sum to α, so the chance that
//!   any start ever fires on a rate at or below the limit is at most α, however many
//!   times it is looked at.
//! - `rate_bounds`: a confidence sequence for a rate, from a Beta(½, ½) mixture of
//!   likelihood ratios (a martingale for the true rate); it contains the true rate at
//!   every n simultaneously with probability at least 1 − α.

use std::collections::VecDeque;

use statrs::function::beta::ln_beta;

/// Rates are kept inside (0, 1) so logarithms stay finite.
const EDGE: f64 = 1e-12;

fn clamp_rate(p: f64) -> f64 {
    p.clamp(EDGE, 1.0 - EDGE)
}

/// The log-likelihood ratio of `x` events in `n` trials under rate `p1` against `p0`.
pub(crate) fn binomial_llr(x: u64, n: u64, p0: f64, p1: f64) -> f64 {
    LlrTerms::new(p0, p1).llr(x, n)
}

/// [`binomial_llr`] for one pair of rates, its two logarithms worked out once (a
/// trigger reads them for every period of every pass).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LlrTerms {
    per_failure: f64,
    per_success: f64,
}

impl LlrTerms {
    pub(crate) fn new(p0: f64, p1: f64) -> LlrTerms {
        let (p0, p1) = (clamp_rate(p0), clamp_rate(p1));
        LlrTerms { per_failure: (p1 / p0).ln(), per_success: ((1.0 - p1) / (1.0 - p0)).ln() }
    }

    pub(crate) fn llr(self, x: u64, n: u64) -> f64 {
        let (x, n) = (x as f64, n as f64);
        x * self.per_failure + (n - x) * self.per_success
    }
}

/// The rates a detector for "above `limit`" watches for: the limit's odds times 1.5, 2
/// and 4 (a mixture over a small grid, each alternative with a third of the budget), so
/// a rate anywhere from 1.5× to well past 4× the limit is caught near its fastest.
pub(crate) fn alternatives(limit: f64) -> Vec<f64> {
    let limit = clamp_rate(limit);
    let odds = limit / (1.0 - limit);
    [1.5, 2.0, 4.0].iter().map(|r| odds * r / (1.0 + odds * r)).collect()
}

/// A sequential test of "the rate is above a limit", fed one minute of evidence (a log-
/// likelihood ratio) at a time, with start points spread over the minutes.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    ln_alpha: f64,
    /// Σ of all evidence so far.
    total: f64,
    /// max over starts k so far of ln a_k − (evidence before start k).
    best: f64,
    starts: u64,
}

impl Detector {
    /// A detector with false-alarm probability at most `alpha`.
    pub(crate) fn new(alpha: f64) -> Detector {
        Detector { ln_alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0).ln(), total: 0.0, best: f64::NEG_INFINITY, starts: 0 }
    }

    /// Adds the next minute's log-likelihood ratio; the minute is also a new start.
    #[cfg(test)]
    pub(crate) fn push(&mut self, llr: f64) {
        self.push_at(llr, self.starts + 1);
    }

    /// Adds the log-likelihood ratio of the next period, whose start is start number
    /// `k` (from 1, increasing): the k-th minute of the test's minutes. A period longer
    /// than a minute is one start only (starts inside it are not tested), so reading
    /// older minutes in longer periods tests fewer starts with the same shares —
    /// conservative, never more false alarms.
    pub(crate) fn push_at(&mut self, llr: f64, k: u64) {
        self.starts = k.max(self.starts + 1);
        let k = self.starts as f64;
        self.best = self.best.max(self.ln_alpha - (k * (k + 1.0)).ln() - self.total);
        self.total += llr;
    }

    /// max over starts k of (ln a_k + evidence since k): at or above 0, the rate is
    /// above the limit with the promised confidence. −∞ before any minute.
    pub(crate) fn statistic(&self) -> f64 {
        self.total + self.best
    }

    pub(crate) fn fired(&self) -> bool {
        self.statistic() >= 0.0
    }
}

/// A test of "the rate over the last `span` is above a limit" (a trigger's `for`): the
/// likelihood ratio of the window's minutes alone, looked at once per new minute. For
/// the window ending at the n-th minute, Markov's inequality bounds the chance its ratio
/// reaches 1/a_n by a_n = α / (n(n+1)) when the rate is at or below the limit; the
/// shares sum to α over every window the stage will ever have.
#[derive(Debug, Clone)]
pub(crate) struct WindowDetector {
    ln_alpha: f64,
    span: u64,
    window: VecDeque<(u64, f64)>,
    sum: f64,
    first_end: Option<u64>,
    looks: u64,
}

impl WindowDetector {
    pub(crate) fn new(alpha: f64, span: u64) -> WindowDetector {
        WindowDetector {
            ln_alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0).ln(),
            span: span.max(60),
            window: VecDeque::new(),
            sum: 0.0,
            first_end: None,
            looks: 0,
        }
    }

    /// Adds the minute ending at `end` with log-likelihood ratio `llr`, in order.
    #[cfg(test)]
    pub(crate) fn push(&mut self, end: u64, llr: f64) {
        self.push_at(end, llr, self.looks + 1);
    }

    /// Adds the minute ending at `end`, the n-th minute of the test's minutes (from 1,
    /// increasing), with log-likelihood ratio `llr`: the window ending there has share
    /// a/(n(n+1)).
    pub(crate) fn push_at(&mut self, end: u64, llr: f64, n: u64) {
        self.looks = n.max(self.looks + 1);
        self.first_end.get_or_insert(end);
        self.window.push_back((end, llr));
        while self.window.front().is_some_and(|&(old, _)| old + self.span <= end) {
            self.window.pop_front();
        }
        // Summed afresh (a window is at most a few hundred minutes): a running sum that
        // subtracts what leaves would carry rounding from minutes long gone.
        self.sum = self.window.iter().map(|(_, v)| v).sum();
    }

    /// Notes that the test's minutes began by `first_end` (the end of their first minute)
    /// in periods too long for a window, which count towards a whole window having been seen.
    pub(crate) fn seen_from(&mut self, first_end: u64) {
        self.first_end.get_or_insert(first_end);
    }

    /// ln a_n + the newest window's evidence; −∞ until a whole window has been seen.
    pub(crate) fn statistic(&self) -> f64 {
        let (Some(first), Some(&(newest, _))) = (self.first_end, self.window.back()) else {
            return f64::NEG_INFINITY;
        };
        if newest + 60 < first + self.span {
            return f64::NEG_INFINITY;
        }
        let n = self.looks as f64;
        self.sum + self.ln_alpha - (n * (n + 1.0)).ln()
    }

    #[cfg(test)]
    pub(crate) fn fired(&self) -> bool {
        self.statistic() >= 0.0
    }
}

/// ln of the Beta(½, ½) mixture likelihood ratio against rate `p`, after `x` events in
/// `n` trials: large when `p` explains the data badly.
fn ln_mixture_ratio(x: f64, n: f64, p: f64) -> f64 {
    ln_beta(0.5 + x, 0.5 + n - x) - ln_beta(0.5, 0.5) - x * p.ln() - (n - x) * (1.0 - p).ln()
}

/// A time-uniform confidence sequence for a rate after `x` events in `n` trials: with
/// probability at least 1 − `alpha` the true rate lies inside at every n at once.
/// `(0, 1)` when there is no data.
pub(crate) fn rate_bounds(x: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (x, n) = (x.min(n) as f64, n as f64);
    let limit = (1.0 / alpha.clamp(f64::MIN_POSITIVE, 1.0)).ln();
    let estimate = x / n;
    let outside = |p: f64| ln_mixture_ratio(x, n, p) >= limit;
    // The ratio is convex in p with its minimum near the estimate: bisect each side.
    let bisect = |mut inside: f64, mut out: f64| {
        for _ in 0..64 {
            let mid = (inside + out) / 2.0;
            if outside(mid) {
                out = mid;
            } else {
                inside = mid;
            }
        }
        inside
    };
    let centre = clamp_rate(estimate);
    let lower = if x == 0.0 || !outside(EDGE) { 0.0 } else { bisect(centre, EDGE) };
    let upper = if x == n || !outside(1.0 - EDGE) { 1.0 } else { bisect(centre, 1.0 - EDGE) };
    (lower, upper)
}

/// The exact (Clopper–Pearson) two-sided interval at level 1 − `alpha` for a fixed
/// number of trials: the reference any sequential interval must contain, since it is
/// valid at one look only.
pub fn clopper_pearson(x: u64, n: u64, alpha: f64) -> (f64, f64) {
    use statrs::distribution::{Beta, ContinuousCDF};
    if n == 0 {
        return (0.0, 1.0);
    }
    let (xf, nf) = (x as f64, n as f64);
    let lower = if x == 0 { 0.0 } else { Beta::new(xf, nf - xf + 1.0).map_or(0.0, |b| b.inverse_cdf(alpha / 2.0)) };
    let upper =
        if x >= n { 1.0 } else { Beta::new(xf + 1.0, nf - xf).map_or(1.0, |b| b.inverse_cdf(1.0 - alpha / 2.0)) };
    (lower, upper)
}

/// The fewest requests at rate `rate` that could give a detector with budget `alpha`
/// its first conclusive look: ln(1/α) divided by the information per request
/// (Kullback–Leibler divergence from the limit). Wald's bound for any sequential test
/// with that error rate, up to the overshoot: no test can do better on average.
pub fn requests_to_detect(rate: f64, limit: f64, alpha: f64) -> Option<f64> {
    let (p, q) = (clamp_rate(rate), clamp_rate(limit));
    if p <= q {
        return None;
    }
    let kl = p * (p / q).ln() + (1.0 - p) * ((1.0 - p) / (1.0 - q)).ln();
    Some((1.0 / alpha).ln() / kl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_emulator::ids::Rng;
    use canary_emulator::sampling::binomial;
    use proptest::prelude::*;

    #[test]
    fn clopper_pearson_matches_published_values() {
        // Clopper & Pearson (1934) / standard tables, 95% two-sided.
        let (lo, hi) = clopper_pearson(0, 10, 0.05);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.3085).abs() < 1e-4, "{hi}");
        let (lo, hi) = clopper_pearson(5, 10, 0.05);
        assert!((lo - 0.1871).abs() < 1e-4 && (hi - 0.8129).abs() < 1e-4, "{lo} {hi}");
        let (lo, hi) = clopper_pearson(1, 20, 0.05);
        assert!((lo - 0.001265).abs() < 1e-5 && (hi - 0.2487).abs() < 1e-4, "{lo} {hi}");
    }

    #[test]
    fn confidence_sequence_contains_the_fixed_n_interval() {
        // A bound valid at every n must be at least as wide as the exact one-look bound.
        for &(x, n) in &[(0, 10), (1, 20), (5, 10), (3, 1000), (50, 1000), (999, 1000), (120, 120)] {
            for &alpha in &[0.05, 0.001] {
                let (clo, chi) = clopper_pearson(x, n, alpha);
                let (lo, hi) = rate_bounds(x, n, alpha);
                assert!(lo <= clo + 1e-9 && hi >= chi - 1e-9, "x={x} n={n}: cs [{lo}, {hi}] vs cp [{clo}, {chi}]");
                let estimate = x as f64 / n as f64;
                assert!(lo <= estimate && estimate <= hi);
            }
        }
    }

    #[test]
    fn confidence_sequence_shrinks_with_data() {
        let widths: Vec<f64> = [100, 1_000, 10_000, 100_000]
            .iter()
            .map(|&n| {
                let (lo, hi) = rate_bounds(n / 100, n, 0.001);
                hi - lo
            })
            .collect();
        assert!(widths.windows(2).all(|w| w[1] < w[0] * 0.5), "{widths:?}");
    }

    #[test]
    fn one_start_is_wald_one_sided_sprt() {
        // With a single start the detector is Wald's one-sided SPRT with β = 0: it fires
        // when the log-likelihood ratio reaches ln((1 − β)/α) = ln(1/α), here for start
        // 1's share of the budget, α/2.
        let alpha: f64 = 0.01;
        let boundary = (2.0 / alpha).ln();
        let mut d = Detector::new(alpha);
        d.push(boundary + 1e-9);
        assert!(d.fired());
        let mut d = Detector::new(alpha);
        d.push(boundary - 1e-6);
        assert!(!d.fired());
        // Evidence adds up across minutes.
        d.push(2e-6);
        assert!(d.fired());
    }

    #[test]
    fn a_window_must_be_spanned_before_firing() {
        let mut d = WindowDetector::new(0.001, 300);
        for minute in 1..=4 {
            d.push(minute * 60, 100.0);
            assert!(!d.fired(), "fired after {minute} minutes of a 5-minute window");
        }
        d.push(300, 100.0);
        assert!(d.fired());
    }

    #[test]
    fn a_window_judges_only_its_own_minutes() {
        // "for 5m": five bad minutes fire it; a bad minute followed by good ones does not
        // keep counting once it has left the window.
        let bad = binomial_llr(30, 100, 0.05, 0.10);
        let good = binomial_llr(2, 100, 0.05, 0.10);
        let mut d = WindowDetector::new(0.001, 300);
        for m in 1..=4 {
            d.push(m * 60, bad);
            assert!(!d.fired(), "fired before the window was whole ({m} min)");
        }
        d.push(300, bad);
        assert!(d.fired());
        let mut d = WindowDetector::new(0.001, 300);
        d.push(60, bad * 3.0);
        for m in 2..=10 {
            d.push(m * 60, good);
        }
        assert!(!d.fired(), "an old burst left the window");
    }

    #[test]
    fn a_late_change_is_found_without_repaying_early_evidence() {
        // 600 healthy minutes drive the cumulative ratio far below zero; a restart at the
        // change still fires within a few minutes of strong evidence.
        let mut d = Detector::new(0.001);
        let healthy = binomial_llr(3, 600, 0.05, 0.10);
        let bad = binomial_llr(60, 600, 0.05, 0.10);
        for _ in 0..600 {
            d.push(healthy);
        }
        let mut minutes = 0;
        while !d.fired() && minutes < 60 {
            minutes += 1;
            d.push(bad);
        }
        assert!(minutes <= 3, "took {minutes} minutes");
    }

    #[test]
    fn false_alarms_stay_within_budget_over_every_look() {
        // At the limit itself (the hardest healthy case), with a budget large enough to
        // measure: 2,000 streams of 300 looks each.
        let (alpha, limit) = (0.05, 0.05);
        let mut rng = Rng::new(7);
        let alts = alternatives(limit);
        let mut alarms = 0;
        for _ in 0..2_000 {
            let mut ds: Vec<Detector> = alts.iter().map(|_| Detector::new(alpha / 3.0)).collect();
            let mut fired = false;
            for _ in 0..300 {
                let x = binomial(&mut rng, 20, limit);
                for (d, &p1) in ds.iter_mut().zip(&alts) {
                    d.push(binomial_llr(x, 20, limit, p1));
                    fired |= d.fired();
                }
            }
            alarms += u32::from(fired);
        }
        // Binomial(2000, 0.05) exceeds 130 with probability < 1e-4.
        assert!(alarms <= 130, "{alarms} false alarms in 2000 (budget 5%)");
    }

    #[test]
    fn information_bound_is_wald_s() {
        // 10% against a 5% limit: KL = 0.1 ln 2 + 0.9 ln(0.9/0.95) = 0.020653 nats.
        let n = requests_to_detect(0.10, 0.05, 0.001).unwrap();
        assert!((n - 1000f64.ln() / 0.020_653).abs() < 1.0, "{n}");
        assert!(requests_to_detect(0.04, 0.05, 0.001).is_none());
    }

    proptest! {
        #[test]
        fn more_errors_never_make_firing_less_likely(
            minutes in prop::collection::vec((0u64..200, 0u64..200), 1..40),
            bump in 0usize..40,
            span in prop::sample::select(vec![0u64, 60, 300, 900]),
        ) {
            let minutes: Vec<(u64, u64)> = minutes.into_iter().map(|(x, n)| (x.min(n), n)).collect();
            let bump = bump % minutes.len();
            let run = |extra: u64| {
                // Both tests: since any start (no `for`) and over a window (`for`).
                let (mut since, mut window) = (Detector::new(0.001), WindowDetector::new(0.001, span));
                for (i, &(x, n)) in minutes.iter().enumerate() {
                    let x = if i == bump { (x + extra).min(n) } else { x };
                    let llr = binomial_llr(x, n, 0.05, 0.10);
                    since.push(llr);
                    window.push(60 * (i as u64 + 1), llr);
                }
                if span >= 120 { window.statistic() } else { since.statistic() }
            };
            let (base, more) = (run(0), run(1));
            // Monotone exactly in real arithmetic; in floating point a sum and a
            // difference of the same prefix may round an ulp apart.
            let slack = 1e-9 * base.abs().max(1.0);
            prop_assert!(more >= base - slack || (base == f64::NEG_INFINITY && more == f64::NEG_INFINITY), "{base} then {more}");
        }

        #[test]
        fn bounds_move_up_with_more_events(x in 0u64..500, n in 1u64..2000, alpha in 0.0001f64..0.1) {
            let x = x.min(n.saturating_sub(1));
            let (lo, hi) = rate_bounds(x, n, alpha);
            let (lo2, hi2) = rate_bounds(x + 1, n, alpha);
            prop_assert!(lo2 >= lo - 1e-12 && hi2 >= hi - 1e-12);
            prop_assert!(0.0 <= lo && lo <= hi && hi <= 1.0);
        }
    }
}
