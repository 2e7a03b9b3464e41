//! The working-set curve W(t, τ) (Denning): the distinct pages touched in
//! the window (t − τ, t]. This module computes it exactly from per-tick
//! touched sets (a recorded trace), and scores an estimated curve against
//! it, per window τ, with the same MAPE and band rule as the per-interval
//! estimate.
//!
//! The exact curve keeps, per page, the tick of its last touch, and per
//! tick how many pages were last touched in it: W(t, k ticks) is then the
//! sum of the last k per-tick counts. Pushing a tick costs its touched
//! pages; a query costs k.

use std::ops::Range;

use serde::Serialize;

use super::accuracy::{in_band, mean_relative_error};
use super::stats::mean;
use crate::estimate::Estimate;

/// The exact W(t, τ) over a stream of ticks, at the end t of the last tick
/// pushed.
#[derive(Debug, Clone)]
pub struct WindowCounter {
    /// Per page of the domain, 1 + the tick of its last touch; 0: never
    /// touched.
    last: Vec<usize>,
    /// Per tick, the pages whose last touch is in that tick.
    by_tick: Vec<u64>,
}

impl WindowCounter {
    /// A counter for pages `0..domain_pages`; touches outside it are
    /// ignored (no sample is drawn there to compare with).
    pub fn new(domain_pages: usize) -> Self {
        WindowCounter {
            last: vec![0; domain_pages],
            by_tick: Vec::new(),
        }
    }

    /// Adds a tick in which the pages of `runs` were touched.
    pub fn push(&mut self, runs: impl IntoIterator<Item = Range<u64>>) {
        self.by_tick.push(0);
        let now = self.by_tick.len();
        for run in runs {
            for page in run {
                let Some(slot) = usize::try_from(page)
                    .ok()
                    .and_then(|p| self.last.get_mut(p))
                else {
                    continue;
                };
                if *slot == now {
                    continue;
                }
                if let Some(prev) = slot.checked_sub(1) {
                    self.by_tick[prev] -= 1;
                }
                *slot = now;
                self.by_tick[now - 1] += 1;
            }
        }
    }

    /// Ticks pushed so far.
    pub fn ticks(&self) -> usize {
        self.by_tick.len()
    }

    /// W(t, `k` ticks): the distinct pages touched in the last `k` ticks;
    /// `None` when fewer than `k` ticks were pushed (the window reaches
    /// before the stream began) or `k` is 0.
    pub fn window(&self, k: usize) -> Option<u64> {
        let n = self.by_tick.len();
        if k == 0 || k > n {
            return None;
        }
        Some(self.by_tick[n - k..].iter().sum())
    }
}

/// An estimated point of the curve and the exact value at the same t and τ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveComparison {
    /// The window, in estimator ticks.
    pub tau_ticks: u32,
    pub estimate: Estimate,
    pub exact: u64,
}

/// How well the curve was estimated at one window τ, over the scored
/// points given.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TauAccuracy {
    pub tau_ticks: u32,
    pub points: usize,
    /// Mean |est − exact| / exact over points with exact > 0 (the MAPE of
    /// [`mean_relative_error`]), as a fraction.
    pub mape: Option<f64>,
    /// Share of the points whose exact value lies in the band (the rule of
    /// [`in_band`]).
    pub band_coverage: Option<f64>,
    pub exact_mean_pages: Option<f64>,
    pub est_mean_pages: Option<f64>,
}

/// Per window τ (ascending), the accuracy of the estimated points against
/// the exact ones. The caller passes only the points it scores (see
/// `accuracy::is_scored`).
pub fn per_tau(points: &[CurveComparison]) -> Vec<TauAccuracy> {
    let mut taus: Vec<u32> = points.iter().map(|p| p.tau_ticks).collect();
    taus.sort_unstable();
    taus.dedup();
    taus.into_iter()
        .map(|tau| {
            let at: Vec<&CurveComparison> = points.iter().filter(|p| p.tau_ticks == tau).collect();
            let pairs: Vec<(f64, u64)> = at
                .iter()
                .filter(|p| p.estimate.pages.is_finite())
                .map(|p| (p.estimate.pages, p.exact))
                .collect();
            let covered = at.iter().map(|p| {
                let covers = in_band(p.estimate.lo, p.estimate.hi, p.exact as f64);
                f64::from(u8::from(covers))
            });
            TauAccuracy {
                tau_ticks: tau,
                points: at.len(),
                mape: mean_relative_error(&pairs),
                band_coverage: mean(covered),
                exact_mean_pages: mean(at.iter().map(|p| p.exact as f64)),
                est_mean_pages: mean(at.iter().map(|p| p.estimate.pages)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// The definition, by brute force: the size of the union of the last
    /// `k` sets.
    fn brute(ticks: &[Vec<u64>], k: usize) -> Option<u64> {
        if k == 0 || k > ticks.len() {
            return None;
        }
        let mut all: Vec<u64> = ticks[ticks.len() - k..].concat();
        all.sort_unstable();
        all.dedup();
        Some(all.len() as u64)
    }

    fn runs(pages: &[u64]) -> Vec<Range<u64>> {
        pages.iter().map(|&p| p..p + 1).collect()
    }

    #[test]
    fn windows_equal_the_union_of_the_last_ticks_on_random_streams() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20 {
            let domain = rng.random_range(1..300usize);
            let mut counter = WindowCounter::new(domain);
            let mut ticks: Vec<Vec<u64>> = Vec::new();
            for _ in 0..40 {
                let n = rng.random_range(0..domain);
                let mut pages: Vec<u64> =
                    (0..n).map(|_| rng.random_range(0..domain as u64)).collect();
                pages.sort_unstable();
                counter.push(runs(&pages));
                ticks.push(pages);
                for k in 0..=ticks.len() + 1 {
                    assert_eq!(counter.window(k), brute(&ticks, k), "k {k}");
                }
            }
            assert_eq!(counter.ticks(), 40);
        }
    }

    #[test]
    fn runs_repeats_and_pages_outside_the_domain() {
        let mut c = WindowCounter::new(10);
        c.push([0..4, 2..6]);
        assert_eq!(c.window(1), Some(6));
        c.push(std::iter::once(8..14));
        // 8 and 9 are in the domain; 10..14 are not.
        assert_eq!(c.window(1), Some(2));
        assert_eq!(c.window(2), Some(8));
        c.push([]);
        assert_eq!(c.window(1), Some(0));
        assert_eq!(c.window(3), Some(8));
        assert_eq!(c.window(4), None);
    }

    #[test]
    fn per_tau_scores_each_window_with_the_one_mape_and_band_rule() {
        let p = |tau, pages, lo, hi, exact| CurveComparison {
            tau_ticks: tau,
            estimate: Estimate { pages, lo, hi },
            exact,
        };
        let acc = per_tau(&[
            p(4, 110.0, 100.0, 120.0, 100),
            p(1, 50.0, 45.0, 55.0, 40),
            p(4, 90.0, 85.0, 95.0, 100),
            p(1, 40.0, 40.0, 40.0, 40),
            p(1, 10.0, 5.0, 15.0, 0),
        ]);
        assert_eq!(acc.len(), 2);
        assert_eq!(acc[0].tau_ticks, 1);
        assert_eq!(acc[0].points, 3);
        // Exact 0 has no relative error: (0.25 + 0) / 2.
        assert_eq!(acc[0].mape, Some(0.125));
        assert_eq!(acc[0].band_coverage, Some(1.0 / 3.0));
        assert_eq!(acc[1].tau_ticks, 4);
        assert_eq!(acc[1].mape, Some(0.1));
        assert_eq!(acc[1].band_coverage, Some(0.5));
        assert_eq!(acc[1].exact_mean_pages, Some(100.0));
        assert_eq!(acc[1].est_mean_pages, Some(100.0));
        assert!(per_tau(&[]).is_empty());
    }
}
