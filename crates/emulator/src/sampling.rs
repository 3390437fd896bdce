//! Seeded draws from the distributions the traffic model needs: Poisson request counts,
//! binomial error counts, and multinomial latency buckets. Exact where counts are
//! small (where a judgement's false alarms come from), a normal approximation only
//! for large counts spread across latency buckets.

use statrs::function::erf::erfc;
use statrs::function::gamma::ln_gamma;

use super::ids::Rng;

/// Below this mean, binomial draws are exact (inversion).
const EXACT_BINOMIAL_MEAN: f64 = 500.0;

/// A Poisson draw: Knuth's method for small means, Hörmann's PTRS above.
pub(crate) fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = rng.unit();
        while p > limit {
            k += 1;
            p *= rng.unit();
        }
        return k;
    }
    let slam = lambda.sqrt();
    let loglam = lambda.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.024_83 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.unit() - 0.5;
        let v = rng.unit();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= -lambda + k * loglam - ln_gamma(k + 1.0) {
            return k as u64;
        }
    }
}

/// A binomial draw: exact inversion for small means, normal approximation for large.
pub fn binomial(rng: &mut Rng, n: u64, p: f64) -> u64 {
    binomial_exact_below(rng, n, p, EXACT_BINOMIAL_MEAN)
}

/// Latency buckets need their totals, not exact tails: a normal approximation from a
/// mean of 30 keeps a day of thousands of services cheap.
const EXACT_BUCKET_MEAN: f64 = 30.0;

fn binomial_exact_below(rng: &mut Rng, n: u64, p: f64, exact_below: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial_exact_below(rng, n, 1.0 - p, exact_below);
    }
    let mean = n as f64 * p;
    if mean < exact_below {
        let q = 1.0 - p;
        let s = p / q;
        let a = (n as f64 + 1.0) * s;
        let mut r = q.powf(n as f64);
        let mut u = rng.unit();
        let mut x: u64 = 0;
        while u > r {
            u -= r;
            x += 1;
            if x > n {
                return n;
            }
            r *= a / x as f64 - s;
            if r <= 0.0 {
                break;
            }
        }
        return x.min(n);
    }
    let sd = (mean * (1.0 - p)).sqrt();
    let draw = (mean + sd * standard_normal(rng)).round();
    draw.clamp(0.0, n as f64) as u64
}

/// Box–Muller.
pub(crate) fn standard_normal(rng: &mut Rng) -> f64 {
    let u1 = rng.unit().max(f64::MIN_POSITIVE);
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Splits `n` over outcomes with probabilities `probs` (summing to at most 1; the rest
/// goes to the last outcome) by successive conditional binomials.
pub(crate) fn multinomial(rng: &mut Rng, n: u64, probs: &[f64]) -> Vec<u64> {
    let mut out = vec![0; probs.len()];
    let mut left = n;
    let mut mass = 1.0;
    for (i, &p) in probs.iter().enumerate() {
        if left == 0 {
            break;
        }
        if i + 1 == probs.len() || mass <= p {
            out[i] = left;
            left = 0;
            break;
        }
        let k = binomial_exact_below(rng, left, (p / mass).clamp(0.0, 1.0), EXACT_BUCKET_MEAN);
        out[i] = k;
        left -= k;
        mass -= p;
    }
    if left > 0
        && let Some(last) = out.last_mut()
    {
        *last += left;
    }
    out
}

/// A gamma draw with shape `k` and scale 1 (Marsaglia & Tsang 2000; shapes below 1
/// through k + 1 and a uniform power).
pub(crate) fn gamma(rng: &mut Rng, k: f64) -> f64 {
    if !(k > 0.0 && k.is_finite()) {
        return 0.0;
    }
    if k < 1.0 {
        let u = rng.unit().max(f64::MIN_POSITIVE);
        return gamma(rng, k + 1.0) * u.powf(1.0 / k);
    }
    let d = k - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.unit();
        if u < 1.0 - 0.0331 * x.powi(4) || u.max(f64::MIN_POSITIVE).ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// A Beta(a, b) draw, as the share of two gamma draws.
pub(crate) fn beta(rng: &mut Rng, a: f64, b: f64) -> f64 {
    let x = gamma(rng, a);
    let y = gamma(rng, b);
    if x + y > 0.0 { x / (x + y) } else { a / (a + b) }
}

/// The standard normal CDF.
pub(crate) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// z of the 95th percentile of the standard normal.
pub(crate) const Z95: f64 = 1.644_853_626_951_472_2;

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(draws: &[u64]) -> (f64, f64) {
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<u64>() as f64 / n;
        let var = draws.iter().map(|&d| (d as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn poisson_has_its_mean_and_variance_small_and_large() {
        for lambda in [0.3, 4.0, 29.0, 60.0, 1200.0] {
            let mut rng = Rng::new(11);
            let draws: Vec<u64> = (0..20_000).map(|_| poisson(&mut rng, lambda)).collect();
            let (mean, var) = moments(&draws);
            // Standard error of the mean is sqrt(lambda/20000).
            assert!((mean - lambda).abs() < 5.0 * (lambda / 20_000.0).sqrt(), "lambda {lambda}: mean {mean}");
            assert!((var / lambda - 1.0).abs() < 0.06, "lambda {lambda}: variance {var}");
        }
    }

    #[test]
    fn binomial_has_its_mean_and_variance() {
        for (n, p) in [(10, 0.5), (1000, 0.005), (12_000, 0.005), (12_000, 0.3), (50, 0.9)] {
            let mut rng = Rng::new(5);
            let draws: Vec<u64> = (0..20_000).map(|_| binomial(&mut rng, n, p)).collect();
            let (mean, var) = moments(&draws);
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!((mean - m).abs() < 5.0 * (v / 20_000.0).sqrt(), "n {n} p {p}: mean {mean} vs {m}");
            assert!((var / v - 1.0).abs() < 0.06, "n {n} p {p}: variance {var} vs {v}");
            assert!(draws.iter().all(|&d| d <= n));
        }
    }

    #[test]
    fn binomial_small_counts_match_exact_probabilities() {
        // P(X = 0) for Binomial(200, 0.005) is 0.995^200 = 0.3670.
        let mut rng = Rng::new(9);
        let zeros = (0..100_000).filter(|_| binomial(&mut rng, 200, 0.005) == 0).count() as f64 / 100_000.0;
        assert!((zeros - 0.995f64.powi(200)).abs() < 0.005, "{zeros}");
    }

    #[test]
    fn multinomial_keeps_every_draw() {
        let mut rng = Rng::new(3);
        let split = multinomial(&mut rng, 10_000, &[0.1, 0.2, 0.3, 0.4]);
        assert_eq!(split.iter().sum::<u64>(), 10_000);
        assert!((split[3] as f64 - 4000.0).abs() < 300.0, "{split:?}");
    }

    #[test]
    fn gamma_and_beta_have_their_means_and_variances() {
        let mut rng = Rng::new(21);
        for k in [0.3, 1.0, 4.5] {
            let draws: Vec<f64> = (0..40_000).map(|_| gamma(&mut rng, k)).collect();
            let mean = draws.iter().sum::<f64>() / 40_000.0;
            let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 39_999.0;
            assert!((mean - k).abs() < 0.05 * k.max(1.0), "shape {k}: mean {mean}");
            assert!((var / k - 1.0).abs() < 0.1, "shape {k}: variance {var}");
        }
        let (a, b) = (0.4, 70.0);
        let draws: Vec<f64> = (0..40_000).map(|_| beta(&mut rng, a, b)).collect();
        let mean = draws.iter().sum::<f64>() / 40_000.0;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / 39_999.0;
        let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
        assert!((mean / m - 1.0).abs() < 0.05, "beta mean {mean} vs {m}");
        assert!((var / v - 1.0).abs() < 0.15, "beta variance {var} vs {v}");
    }

    #[test]
    fn normal_cdf_matches_reference_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-12);
        assert!((normal_cdf(Z95) - 0.95).abs() < 1e-9);
        assert!((normal_cdf(-1.959_963_984_540_054) - 0.025).abs() < 1e-9);
    }
}
