//! DAMON-style adaptive-region estimation (after Linux's Data Access MONitor).
//!
//! The domain is covered by contiguous regions. Every tick one random page per region is armed
//! and, if the guest touches it, the region's access count goes up; the page stands for the whole
//! region, so the cost per tick is one armed page per region whatever the domain size. At the end
//! of each aggregation interval adjacent regions with similar counts are merged and, while there
//! are few regions, each is split in two, so that regions refine where access density changes
//! and coarsen where it does not. The region count stays within [min_regions, max_regions],
//! both capped at the domain size.

use rand::RngExt;
use rand::rngs::StdRng;

use super::{DamonConfig, Estimate, Estimator, IntervalEstimate, PageIdx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    start: PageIdx,
    /// Exclusive.
    end: PageIdx,
    /// The page armed for the current tick, until observe_tick() has looked at it.
    sample: Option<PageIdx>,
    nr_accesses: u32,
}

impl Region {
    fn size(&self) -> u64 {
        self.end - self.start
    }
}

pub struct Damon {
    max_regions: usize,
    ticks: u32,
    /// Largest region a merge may produce: floor(domain / min_regions), as in DAMON. Initial
    /// regions have floor or ceil of that size and splits only shrink regions, so only the
    /// (domain mod min_regions) initial regions of ceil size can exceed the limit, and counting
    /// pages then shows that merging can never take the count below min_regions.
    merge_size_limit: u64,
    /// Sorted, contiguous, non-empty, covering [0, domain).
    regions: Vec<Region>,
    /// Splitting needs randomness, which only choose() receives, so end_interval() defers it.
    split_pending: bool,
    last: Estimate,
}

impl Damon {
    /// `build()` has checked `domain > 0`, `1 <= min_regions <= max_regions` and `ticks >= 1`.
    pub(super) fn new(domain: u64, cfg: DamonConfig) -> Self {
        let min = u64::from(cfg.min_regions).clamp(1, domain);
        let max = u64::from(cfg.max_regions).clamp(min, domain);
        let bound = |i: u64| -> u64 {
            // i * domain / min without overflow; the result is <= domain, so it fits.
            (u128::from(i) * u128::from(domain) / u128::from(min)) as u64
        };
        let regions = (0..min)
            .map(|i| Region {
                start: bound(i),
                end: bound(i + 1),
                sample: None,
                nr_accesses: 0,
            })
            .collect();
        Damon {
            max_regions: usize::try_from(max).unwrap_or(usize::MAX),
            ticks: cfg.ticks_per_interval.max(1),
            merge_size_limit: (domain / min).max(1),
            regions,
            split_pending: false,
            last: Estimate::exact(0.0),
        }
    }

    /// Merges each region into its left neighbour when their counts differ by at most
    /// `threshold` and the result stays within the size limit. The merged count is the
    /// size-weighted mean, so a chain of merges compares against the whole merged region.
    fn merge(&mut self, threshold: u32) {
        let mut merged: Vec<Region> = Vec::with_capacity(self.regions.len());
        for r in self.regions.drain(..) {
            if let Some(prev) = merged.last_mut()
                && prev.nr_accesses.abs_diff(r.nr_accesses) <= threshold
                && prev.size() + r.size() <= self.merge_size_limit
            {
                let weighted = u128::from(prev.nr_accesses) * u128::from(prev.size())
                    + u128::from(r.nr_accesses) * u128::from(r.size());
                let total = u128::from(prev.size() + r.size());
                // A mean of u32 counts fits u32.
                prev.nr_accesses = (weighted / total) as u32;
                prev.end = r.end;
            } else {
                merged.push(r);
            }
        }
        self.regions = merged;
    }

    /// Splits every region of two or more pages in two, at a random tenth between 10% and 90%
    /// of its size as DAMON does (so no split leaves a sliver), unless doubling the count could
    /// exceed max_regions.
    fn split(&mut self, rng: &mut StdRng) {
        if self.regions.len().saturating_mul(2) > self.max_regions {
            return;
        }
        let mut out = Vec::with_capacity(self.regions.len() * 2);
        for r in self.regions.drain(..) {
            let size = r.size();
            if size < 2 {
                out.push(r);
                continue;
            }
            let tenths: u64 = rng.random_range(1..10);
            let cut_len = (u128::from(size) * u128::from(tenths) / 10) as u64;
            let cut = r.start + cut_len.clamp(1, size - 1);
            out.push(Region { end: cut, ..r });
            out.push(Region { start: cut, ..r });
        }
        self.regions = out;
    }
}

impl Estimator for Damon {
    fn name(&self) -> &'static str {
        "damon"
    }

    fn ticks_per_interval(&self) -> u32 {
        self.ticks
    }

    fn choose(&mut self, rng: &mut StdRng) -> Vec<PageIdx> {
        if self.split_pending {
            self.split(rng);
            self.split_pending = false;
        }
        // Regions are sorted and disjoint, so the samples come out sorted and unique.
        self.regions
            .iter_mut()
            .map(|r| {
                let page = rng.random_range(r.start..r.end);
                r.sample = Some(page);
                page
            })
            .collect()
    }

    fn observe_tick(&mut self, touched: &[PageIdx]) {
        for &page in touched {
            let i = self.regions.partition_point(|r| r.end <= page);
            if let Some(r) = self.regions.get_mut(i)
                && r.sample == Some(page)
            {
                r.nr_accesses = r.nr_accesses.saturating_add(1);
                // Taken so that a repeat in `touched` does not count twice.
                r.sample = None;
            }
        }
        for r in &mut self.regions {
            r.sample = None;
        }
    }

    /// `pages` counts every region seen accessed at least once as wholly in the working set, as
    /// DAMON's region-granular view does. It is not a confidence interval: `lo` weights each
    /// region by its access frequency (nr_accesses / ticks), whose expectation is the number of
    /// the region's pages touched in an average tick, which cannot exceed the number touched over
    /// the whole interval. `hi` is `pages` itself: sampling cannot bound how much of a never-seen
    /// region was touched, and a seen region cannot hold more than its size. DAMON has no policy
    /// on top of this: the policy value is the measurement.
    fn end_interval(&mut self) -> IntervalEstimate {
        let ticks = f64::from(self.ticks);
        let mut pages = 0u64;
        let mut lo = 0.0;
        for r in &self.regions {
            if r.nr_accesses > 0 {
                pages += r.size();
                lo += r.size() as f64 * (f64::from(r.nr_accesses) / ticks).min(1.0);
            }
        }
        let pages = pages as f64;
        self.last = Estimate {
            pages,
            lo: lo.min(pages),
            hi: pages,
        };
        // DAMON merges regions whose counts differ by at most 10% of the largest possible count.
        self.merge(self.ticks / 10);
        for r in &mut self.regions {
            r.nr_accesses = 0;
            r.sample = None;
        }
        self.split_pending = true;
        IntervalEstimate::unsmoothed(self.last)
    }

    fn peek(&self, _touched_so_far: usize) -> Estimate {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn damon(domain: u64, min: u32, max: u32, ticks: u32) -> Damon {
        Damon::new(
            domain,
            DamonConfig {
                min_regions: min,
                max_regions: max,
                ticks_per_interval: ticks,
            },
        )
    }

    /// The structural invariants: sorted contiguous non-empty regions covering the domain,
    /// their number within the (domain-clamped) bounds.
    fn check(d: &Damon, (domain, min, max): (u64, u64, u64)) {
        let n = d.regions.len() as u64;
        let lo = min.min(domain);
        let hi = max.min(domain);
        assert!(lo <= n && n <= hi, "{n} regions outside [{lo}, {hi}]");
        assert_eq!(d.regions[0].start, 0);
        assert_eq!(d.regions[d.regions.len() - 1].end, domain);
        for w in d.regions.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert!(d.regions.iter().all(|r| r.start < r.end));
    }

    /// Runs one aggregation interval, checking the invariants after every step; `bounds` is
    /// (domain, min_regions, max_regions) and `touch(rng, page)` says whether an armed page is
    /// touched.
    fn interval(
        d: &mut Damon,
        rng: &mut StdRng,
        bounds: (u64, u64, u64),
        mut touch: impl FnMut(&mut StdRng, PageIdx) -> bool,
    ) -> Estimate {
        for _ in 0..d.ticks_per_interval() {
            let armed = d.choose(rng);
            check(d, bounds);
            assert!(armed.len() as u64 <= bounds.2);
            assert_eq!(armed.len(), d.regions.len());
            assert!(armed.windows(2).all(|w| w[0] < w[1]));
            assert!(armed.iter().all(|&p| p < bounds.0));
            let touched: Vec<PageIdx> = armed.into_iter().filter(|&p| touch(rng, p)).collect();
            d.observe_tick(&touched);
        }
        let est = d.end_interval();
        assert_eq!(est.policy_pages, est.raw.pages);
        let est = est.raw;
        check(d, bounds);
        assert!(0.0 <= est.lo && est.lo <= est.pages && est.pages <= est.hi);
        assert!(est.hi <= bounds.0 as f64);
        est
    }

    #[test]
    fn initial_regions_are_equal_and_min_in_number() {
        let d = damon(1000, 10, 1000, 20);
        assert_eq!(d.regions.len(), 10);
        assert!(d.regions.iter().all(|r| r.size() == 100));
        let d = damon(1003, 10, 1000, 20);
        assert_eq!(d.regions.len(), 10);
        assert!(d.regions.iter().all(|r| r.size() == 100 || r.size() == 101));
        check(&d, (1003, 10, 1000));
    }

    #[test]
    fn region_count_stays_within_bounds_for_all_patterns() {
        const DOMAIN: u64 = 1 << 16;
        let (min, max) = (10, 1000);
        let mut rng = StdRng::seed_from_u64(20);
        let fixed_hot: Vec<bool> = (0..DOMAIN).map(|_| rng.random_bool(0.2)).collect();
        type Pattern = Box<dyn FnMut(&mut StdRng, PageIdx) -> bool>;
        let patterns: Vec<(&str, Pattern)> = vec![
            ("all", Box::new(|_, _| true)),
            ("none", Box::new(|_, _| false)),
            ("block", Box::new(|_, p| (20_000..28_192).contains(&p))),
            ("fixed random", Box::new(move |_, p| fixed_hot[p as usize])),
            ("iid random", Box::new(|rng, _| rng.random_bool(0.3))),
        ];
        for (name, mut pattern) in patterns {
            let mut d = damon(DOMAIN, min, max, 20);
            let mut peak = 0;
            for _ in 0..500 {
                interval(
                    &mut d,
                    &mut rng,
                    (DOMAIN, min.into(), max.into()),
                    &mut pattern,
                );
                peak = peak.max(d.regions.len());
            }
            // Uniform patterns merge back to the minimum every interval.
            if name == "all" || name == "none" {
                assert!(peak <= 2 * min as usize, "{name}: peak {peak}");
            }
        }
    }

    #[test]
    fn all_and_none_are_exact() {
        let mut rng = StdRng::seed_from_u64(21);
        let mut d = damon(5000, 10, 1000, 20);
        for _ in 0..20 {
            let e = interval(&mut d, &mut rng, (5000, 10, 1000), |_, _| true);
            assert_eq!(e, Estimate::exact(5000.0));
        }
        let mut d = damon(5000, 10, 1000, 20);
        for _ in 0..20 {
            let e = interval(&mut d, &mut rng, (5000, 10, 1000), |_, _| false);
            assert_eq!(e, Estimate::exact(0.0));
        }
    }

    /// With a contiguous block touched every tick, regions inside and outside it saturate at
    /// 20 and 0 accesses and merge, while the two boundary regions keep being split until the
    /// boundaries are resolved to a few pages; from interval ~10 on `pages` is then usually
    /// within a few pages of the block. It still spikes at times: a boundary sliver that merged
    /// into a large cold region makes the whole region count once its sample lands on the
    /// sliver. Bounds, from a study of seeds 0..100 over intervals 100..500 (worst seen in
    /// brackets): >= 70% of intervals within 5% (79%); mean overestimate <= 10% (5.3%); never
    /// under by more than 1% (0.4%); `lo` mean within 1% (0.1%) and always within 10% (7%).
    #[test]
    fn hot_block_estimate_converges_to_its_size() {
        const DOMAIN: u64 = 1 << 17;
        const HOT: std::ops::Range<u64> = 40_000..56_384;
        let truth = (HOT.end - HOT.start) as f64;
        for seed in [22, 4, 83, 1000, 31337] {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = damon(DOMAIN, 10, 1000, 20);
            let mut tail = Vec::new();
            for i in 0..500 {
                let e = interval(&mut d, &mut rng, (DOMAIN, 10, 1000), |_, p| {
                    HOT.contains(&p)
                });
                if i >= 100 {
                    tail.push(e);
                }
            }
            let len = tail.len() as f64;
            let within = tail
                .iter()
                .filter(|e| (e.pages - truth).abs() <= 0.05 * truth)
                .count();
            assert!(
                within as f64 >= 0.7 * len,
                "seed {seed}: {within} within 5%"
            );
            let mean = tail.iter().map(|e| e.pages).sum::<f64>() / len;
            assert!(
                mean <= 1.1 * truth && mean >= 0.99 * truth,
                "seed {seed}: mean {mean}"
            );
            assert!(
                tail.iter().all(|e| e.pages >= 0.99 * truth),
                "seed {seed}: under"
            );
            let lo_mean = tail.iter().map(|e| e.lo).sum::<f64>() / len;
            assert!(
                (lo_mean - truth).abs() <= 0.01 * truth,
                "seed {seed}: lo mean {lo_mean}"
            );
            assert!(
                tail.iter().all(|e| (e.lo - truth).abs() <= 0.1 * truth),
                "seed {seed}: lo"
            );
        }
    }

    #[test]
    fn domain_smaller_than_min_regions_uses_one_page_regions() {
        let mut rng = StdRng::seed_from_u64(23);
        let mut d = damon(5, 10, 1000, 20);
        assert_eq!(d.regions.len(), 5);
        for _ in 0..50 {
            let e = interval(&mut d, &mut rng, (5, 10, 1000), |_, p| p == 2 || p == 3);
            assert_eq!(d.regions.len(), 5);
            assert_eq!(e.pages, 2.0);
            assert_eq!(e.lo, 2.0);
        }
    }

    #[test]
    fn max_regions_caps_the_count_and_the_armed_pages() {
        let mut rng = StdRng::seed_from_u64(24);
        let mut d = damon(1 << 20, 4, 16, 10);
        for _ in 0..200 {
            interval(&mut d, &mut rng, (1 << 20, 4, 16), |rng, _| {
                rng.random_bool(0.5)
            });
        }
        // min == max pins the count.
        let mut d = damon(1 << 12, 7, 7, 10);
        for _ in 0..50 {
            interval(&mut d, &mut rng, (1 << 12, 7, 7), |rng, _| {
                rng.random_bool(0.5)
            });
            assert_eq!(d.regions.len(), 7);
        }
    }

    #[test]
    fn counts_only_sampled_pages_once_per_tick() {
        let mut rng = StdRng::seed_from_u64(25);
        let mut d = damon(100, 2, 2, 4);
        // Regions [0,50) and [50,100); the merge limit of 50 pages keeps them apart.
        for tick in 0..4 {
            let armed = d.choose(&mut rng);
            assert_eq!(armed.len(), 2);
            let unarmed = (0..100).find(|p| !armed.contains(p)).unwrap();
            if tick < 3 {
                // First region touched three times (and repeated in the list), second never.
                d.observe_tick(&[armed[0], armed[0], unarmed]);
            } else {
                d.observe_tick(&[]);
            }
            // A second report for the same tick is ignored.
            d.observe_tick(&armed);
        }
        let e = d.end_interval().raw;
        assert_eq!(e.pages, 50.0);
        assert_eq!(e.hi, 50.0);
        assert!((e.lo - 50.0 * 3.0 / 4.0).abs() < 1e-9);
        assert_eq!(d.peek(7), e);
    }

    #[test]
    fn merge_joins_similar_neighbours_within_the_size_limit() {
        let mut d = damon(1000, 2, 1000, 20);
        let mk = |start, end, nr| Region {
            start,
            end,
            sample: None,
            nr_accesses: nr,
        };
        d.regions = vec![
            mk(0, 100, 0),
            mk(100, 200, 2),   // |2-0| <= 2: merges, weighted mean 1
            mk(200, 300, 20),  // far apart: stays
            mk(300, 400, 18),  // merges with the 20s
            mk(400, 900, 19),  // 200 + 500 > 500 pages: stays
            mk(900, 1000, 19), // 500 + 100 > 500 pages: stays
        ];
        d.merge(2);
        let got: Vec<(u64, u64, u32)> = d
            .regions
            .iter()
            .map(|r| (r.start, r.end, r.nr_accesses))
            .collect();
        assert_eq!(
            got,
            vec![(0, 200, 1), (200, 400, 19), (400, 900, 19), (900, 1000, 19)]
        );
    }

    #[test]
    fn split_never_leaves_empty_or_exceeds_max() {
        let mut rng = StdRng::seed_from_u64(26);
        let mut d = damon(300, 3, 12, 20);
        d.split(&mut rng);
        assert_eq!(d.regions.len(), 6);
        d.split(&mut rng);
        assert_eq!(d.regions.len(), 12);
        // 24 > 12: no further split.
        d.split(&mut rng);
        assert_eq!(d.regions.len(), 12);
        check(&d, (300, 3, 12));
        // One-page regions are never split.
        let mut d = damon(4, 4, 8, 20);
        d.split(&mut rng);
        assert_eq!(d.regions.len(), 4);
    }
}
