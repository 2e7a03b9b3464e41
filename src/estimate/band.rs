//! The 95% band of a sampled proportion: one definition, used by every sampling estimator.

/// Two-sided 95% normal quantile.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The effective sample size of `n` draws without replacement out of a population of `big_n`:
/// the finite-population correction scales the standard error by sqrt((N-n)/(N-1)), which is
/// the same as drawing n' = n (N-1)/(N-n) with replacement. Infinite for a census (n >= N).
pub fn effective_n(n: f64, big_n: f64) -> f64 {
    if n >= big_n {
        f64::INFINITY
    } else {
        n * (big_n - 1.0) / (big_n - n)
    }
}

/// 95% Wilson score interval for a proportion `p` from an effective sample size `n_eff` (see
/// `effective_n`; effective sizes of independent samples add), as fractions clamped to [0, 1].
/// An infinite `n_eff` (a census) yields the point itself.
pub fn wilson(p: f64, n_eff: f64) -> (f64, f64) {
    let p = p.clamp(0.0, 1.0);
    if n_eff.is_infinite() {
        return (p, p);
    }
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_eff;
    let centre = (p + z2 / (2.0 * n_eff)) / denom;
    let half = Z95 / denom * (p * (1.0 - p) / n_eff + z2 / (4.0 * n_eff * n_eff)).sqrt();
    // Wilson's interval always contains p; the min/max only absorb rounding.
    (
        (centre - half).clamp(0.0, 1.0).min(p),
        (centre + half).clamp(0.0, 1.0).max(p),
    )
}

/// 95% Wilson score interval for a proportion `p` estimated from `n` draws without replacement
/// out of a population of `big_n`, as fractions clamped to [0, 1].
///
/// The finite-population correction enters Wilson's formula as the effective sample size, which
/// multiplies the half-width's leading term by exactly sqrt((N-n)/(N-1)) and also shrinks
/// Wilson's pull of the centre towards 1/2, so that a census (n = N) yields the point itself.
pub fn wilson_fpc(p: f64, n: f64, big_n: f64) -> (f64, f64) {
    wilson(p, effective_n(n, big_n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_band_properties() {
        // Known value: p = 0.5, n = 100, infinite population → 0.5 ± 0.0962 (approx.).
        let (lo, hi) = wilson_fpc(0.5, 100.0, 1e15);
        assert!(
            (lo - 0.4038).abs() < 1e-3 && (hi - 0.5962).abs() < 1e-3,
            "{lo} {hi}"
        );
        // Stays inside [0, 1] and keeps p at the extremes.
        let (lo, hi) = wilson_fpc(0.0, 400.0, 131_072.0);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.02);
        let (lo, hi) = wilson_fpc(1.0, 400.0, 131_072.0);
        assert_eq!(hi, 1.0);
        assert!(lo > 0.98 && lo < 1.0);
        // The finite-population correction narrows the band as n approaches N.
        let width = |n: f64| {
            let (l, h) = wilson_fpc(0.3, n, 1000.0);
            h - l
        };
        assert!(width(100.0) > width(500.0));
        assert!(width(500.0) > width(990.0));
        assert_eq!(width(1000.0), 0.0);
    }

    #[test]
    fn effective_sizes_add_and_a_census_is_infinite() {
        assert_eq!(effective_n(10.0, 10.0), f64::INFINITY);
        assert!((effective_n(100.0, 1e15) - 100.0).abs() < 1e-9);
        // Half of a population of 1000: 500 × 999 / 500, about twice the draws' worth.
        assert!((effective_n(500.0, 1000.0) - 999.0).abs() < 1e-9);
        assert_eq!(wilson(0.3, f64::INFINITY), (0.3, 0.3));
    }
}
