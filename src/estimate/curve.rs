//! The working-set curve W(τ) from one sampling pass.
//!
//! Denning's W(t, τ) is the number of distinct pages touched in the window (t − τ, t]. A
//! *cohort* is a uniform random sample of pages armed at a tick boundary t0 and kept armed,
//! page by page, until its first touch: the tick in which each page is first touched is
//! recorded. The share of the cohort first touched within k ticks of t0 is then the share of the
//! domain touched in (t0, t0 + kδ], so that share × domain estimates W(t0 + kδ, kδ), with the
//! 95% Wilson band of a proportion drawn without replacement (the same band as esx's).
//!
//! The estimator ticks [`TICKS_PER_INTERVAL`] times per interval (δ = interval / 4) and reports,
//! at every interval end t, W(t, τ) for every τ of [`TAU_TICKS`] (interval/4, /2, 1, 2 and 4
//! intervals): each point from the cohort that started exactly τ before t. So a cohort is
//! started only at ticks where some window of the grid begins, and lives as long as the longest
//! window it serves: at an interval's start (for τ = 1, 2 and 4 intervals, 16 ticks), at its
//! half (τ = interval/2, 2 ticks) and at its last tick (τ = interval/4, 1 tick); no window
//! begins a quarter in, so no pages are drawn there. Every drawn page feeds a reported point.
//! A page drawn into a new cohort while still armed for an older one belongs to both: its first
//! touch after both starts is the first touch for each.
//!
//! The interval's budget (`--sample-pages`) is split over its three cohorts in proportion to
//! (1 − p) / p, p the share of the domain touched in the shortest window each resolves, as the
//! last interval's curve measured it (evenly until then): the relative variance of a sampled
//! share is (1 − p) / (p m), so this gives every window about the same relative error. Short
//! windows, whose shares are small, get most pages, and they are also the cheap ones, since a
//! page costs a fault only when touched in its cohort's life; the 16-tick cohort, the costly one,
//! gets the fewest.
//!
//! The interval's measurement (`raw`) is the τ = interval point, W(t, interval): the pages
//! touched in the interval, the quantity esx measures, so it is scored the same way.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::seq::index;

use super::band::wilson_fpc;
use super::{CurvePoint, Estimate, Estimator, IntervalEstimate, PageIdx};

/// Estimator ticks per reporting interval: the finest window of the curve is one tick.
pub const TICKS_PER_INTERVAL: u32 = 4;
/// The windows of the curve, in ticks: interval/4, interval/2, interval, 2 and 4 intervals.
pub const TAU_TICKS: [u32; 5] = [1, 2, 4, 8, 16];

/// Cohorts started per interval: one at every tick where a window of [`TAU_TICKS`] that ends at
/// an interval end begins.
pub fn cohorts_per_interval() -> u64 {
    (0..TICKS_PER_INTERVAL)
        .filter(|&r| lifetime(r).is_some())
        .count() as u64
}

/// How many ticks a cohort started at tick `r` of an interval (0-based) must stay armed: the
/// longest window of the grid that begins there and ends at an interval end; `None` when none
/// does.
fn lifetime(r: u32) -> Option<u32> {
    TAU_TICKS
        .iter()
        .copied()
        .filter(|tau| (r + tau).is_multiple_of(TICKS_PER_INTERVAL))
        .max()
}

/// The shortest window a cohort started at tick `r` of an interval serves: the one its size
/// must resolve (its other windows are longer, so their share of touched pages is larger).
fn shortest_window(r: u32) -> Option<u32> {
    TAU_TICKS
        .iter()
        .copied()
        .find(|tau| (r + tau).is_multiple_of(TICKS_PER_INTERVAL))
}

/// Splits `budget` pages over cohorts whose windows' touched shares are `shares`: each cohort gets
/// pages in proportion to (1 − p) / p, so that every window is estimated with about the same
/// relative error (the relative variance of a share p sampled from m pages is (1 − p) / (p m)),
/// and a window whose pages are rarely touched, which is also the cheap one to sample (few of its
/// pages fault), gets the most pages. Shares are clamped to [0.01, 0.99] so that an idle or
/// saturated window neither takes nor loses the whole budget. No cohort exceeds `domain` pages:
/// what a capped cohort cannot use goes to the others. Every cohort gets at least one page.
fn allocate(budget: u64, shares: &[f64], domain: u64) -> Vec<u64> {
    let weights: Vec<f64> = shares
        .iter()
        .map(|p| {
            let p = if p.is_finite() {
                p.clamp(0.01, 0.99)
            } else {
                0.5
            };
            (1.0 - p) / p
        })
        .collect();
    let mut sizes = vec![0u64; weights.len()];
    let mut open: Vec<usize> = (0..weights.len()).collect();
    let mut left = budget;
    // Water-filling: cap the cohorts that would exceed the domain, re-split the rest.
    while !open.is_empty() {
        let total: f64 = open.iter().map(|&i| weights[i]).sum();
        let capped: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| left as f64 * weights[i] / total >= domain as f64)
            .collect();
        if let ([rest @ .., last], true) = (&open[..], capped.is_empty()) {
            // Floors for all but one, which takes what is left: whole pages, none lost to
            // rounding (a census stays a census).
            for &i in rest {
                sizes[i] = (left as f64 * weights[i] / total).floor() as u64;
            }
            let given: u64 = rest.iter().map(|&i| sizes[i]).sum();
            sizes[*last] = left.saturating_sub(given);
            break;
        }
        for &i in &capped {
            sizes[i] = domain;
            left = left.saturating_sub(domain);
        }
        open.retain(|i| !capped.contains(i));
    }
    sizes
        .into_iter()
        .map(|m| m.clamp(1, domain.max(1)))
        .collect()
}

/// A sample armed at one tick boundary and followed until its pages' first touches.
#[derive(Debug, Clone)]
struct Cohort {
    /// Tick index (since the estimator's start) of the boundary it was armed at.
    start: u64,
    /// Ticks it stays armed.
    lifetime: u32,
    /// The sampled pages, sorted ascending, distinct.
    pages: Vec<PageIdx>,
    /// Per page, the age in ticks at its first touch (1: touched in the cohort's first tick).
    first_touch: Vec<Option<u32>>,
}

impl Cohort {
    /// Ticks completed since the cohort was armed, at tick count `now`.
    fn age(&self, now: u64) -> u64 {
        now - self.start
    }

    /// Pages first touched within `k` ticks of the start.
    fn touched_within(&self, k: u32) -> u64 {
        self.first_touch
            .iter()
            .filter(|t| t.is_some_and(|a| a <= k))
            .count() as u64
    }

    fn untouched(&self) -> impl Iterator<Item = PageIdx> + '_ {
        self.pages
            .iter()
            .zip(&self.first_touch)
            .filter(|(_, t)| t.is_none())
            .map(|(&p, _)| p)
    }
}

pub struct Curve {
    domain: u64,
    /// Pages drawn per interval, over its cohorts.
    budget: u64,
    /// This interval's cohort sizes, by start tick (`None`: no cohort starts there).
    sizes: Vec<Option<u64>>,
    /// Ticks completed since the start.
    tick: u64,
    /// Ticks completed in the open interval.
    tick_in_interval: u32,
    cohorts: VecDeque<Cohort>,
    /// The last closed interval's curve, shortest window first.
    curve: Vec<CurvePoint>,
    /// The last closed interval's measurement.
    last: Estimate,
}

impl Curve {
    /// `build()` has checked `budget >= cohorts_per_interval()` and that an even split fits
    /// the domain.
    pub(super) fn new(domain: u64, budget: u64) -> Self {
        Curve {
            domain,
            budget,
            sizes: Vec::new(),
            tick: 0,
            tick_in_interval: 0,
            cohorts: VecDeque::new(),
            curve: Vec::new(),
            last: Estimate::exact(0.0),
        }
    }

    /// W(now, k ticks) from the cohort `c`, which must be `k` ticks old.
    fn point(&self, c: &Cohort, k: u32) -> Estimate {
        let n = c.pages.len() as f64;
        let big_n = self.domain as f64;
        let p = c.touched_within(k) as f64 / n;
        let (lo, hi) = wilson_fpc(p, n, big_n);
        Estimate {
            pages: p * big_n,
            lo: lo * big_n,
            hi: hi * big_n,
        }
    }

    /// Splits the budget over this interval's cohorts by the shares of the windows they resolve
    /// in the last interval's curve; evenly until each has been measured.
    fn plan_interval(&mut self) {
        let starts: Vec<u32> = (0..TICKS_PER_INTERVAL)
            .filter(|&r| lifetime(r).is_some())
            .collect();
        let shares: Option<Vec<f64>> = starts
            .iter()
            .map(|&r| {
                let tau = shortest_window(r)?;
                let point = self.curve.iter().find(|p| p.tau_ticks == tau)?;
                Some(point.estimate.pages / self.domain as f64)
            })
            .collect();
        let shares = shares.unwrap_or_else(|| vec![0.5; starts.len()]);
        let sizes = allocate(self.budget, &shares, self.domain);
        self.sizes = vec![None; TICKS_PER_INTERVAL as usize];
        for (&r, m) in starts.iter().zip(sizes) {
            self.sizes[r as usize] = Some(m);
        }
    }

    /// The pages armed for the coming tick: every live cohort's untouched pages.
    fn armed(&self) -> Vec<PageIdx> {
        let mut pages: Vec<PageIdx> = self.cohorts.iter().flat_map(Cohort::untouched).collect();
        pages.sort_unstable();
        pages.dedup();
        pages
    }
}

impl Estimator for Curve {
    fn name(&self) -> &'static str {
        "curve"
    }

    fn ticks_per_interval(&self) -> u32 {
        TICKS_PER_INTERVAL
    }

    fn choose(&mut self, rng: &mut StdRng) -> Vec<PageIdx> {
        // Cohorts that served their longest window are read (at the interval end that closed it)
        // and are let go.
        let now = self.tick;
        self.cohorts.retain(|c| c.age(now) < u64::from(c.lifetime));
        if self.tick_in_interval == 0 {
            self.plan_interval();
        }
        let r = self.tick_in_interval as usize;
        if let (Some(lifetime), Some(Some(size))) =
            (lifetime(self.tick_in_interval), self.sizes.get(r))
        {
            // build() refuses domains that do not fit usize; allocate() keeps size <= domain.
            let length = usize::try_from(self.domain).unwrap_or(usize::MAX);
            let amount = usize::try_from(*size).unwrap_or(length).min(length);
            let mut pages: Vec<PageIdx> = index::sample(rng, length, amount)
                .into_iter()
                .map(|i| i as PageIdx)
                .collect();
            pages.sort_unstable();
            self.cohorts.push_back(Cohort {
                start: now,
                lifetime,
                first_touch: vec![None; pages.len()],
                pages,
            });
        }
        self.armed()
    }

    fn observe_tick(&mut self, touched: &[PageIdx]) {
        let now = self.tick;
        for c in &mut self.cohorts {
            // This tick is the cohort's (now - start + 1)-th; lifetimes are at most 16 ticks.
            let age = u32::try_from(now - c.start + 1).unwrap_or(u32::MAX);
            for p in touched {
                if let Ok(i) = c.pages.binary_search(p)
                    && c.first_touch[i].is_none()
                {
                    c.first_touch[i] = Some(age);
                }
            }
        }
        self.tick += 1;
        self.tick_in_interval += 1;
    }

    fn end_interval(&mut self) -> IntervalEstimate {
        let now = self.tick;
        let elapsed = self.tick_in_interval;
        let mut curve = Vec::new();
        let mut raw = None;
        for c in &self.cohorts {
            let age = c.age(now);
            if let Some(&tau) = TAU_TICKS.iter().find(|&&t| u64::from(t) == age) {
                curve.push(CurvePoint {
                    tau_ticks: tau,
                    estimate: self.point(c, tau),
                    sampled_pages: c.pages.len() as u64,
                });
            }
            // The cohort armed at this interval's start covers exactly the interval, also when
            // the interval ended early.
            if age == u64::from(elapsed) && elapsed > 0 {
                raw = Some(self.point(c, elapsed));
            }
        }
        curve.sort_by_key(|p| p.tau_ticks);
        self.curve = curve;
        self.tick_in_interval = 0;
        // An interval without a tick measured nothing new: the last measurement stands.
        self.last = raw.unwrap_or(self.last);
        IntervalEstimate::unsmoothed(self.last)
    }

    fn peek(&self, _touched_so_far: usize) -> Estimate {
        self.last
    }

    fn curve(&self) -> Option<Vec<CurvePoint>> {
        Some(self.curve.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cohorts_start_where_a_window_begins_and_live_as_long_as_its_longest() {
        assert_eq!(lifetime(0), Some(16));
        assert_eq!(lifetime(1), None);
        assert_eq!(lifetime(2), Some(2));
        assert_eq!(lifetime(3), Some(1));
        assert_eq!(cohorts_per_interval(), 3);
    }

    #[test]
    fn the_budget_goes_to_windows_by_their_relative_variance() {
        // Equal shares: an even split.
        assert_eq!(allocate(300, &[0.2, 0.2, 0.2], 1000), [100, 100, 100]);
        // Weights (1 - p) / p = 19, 9, 4 of 32 (floored after rounding error: within a page;
        // the last cohort takes the rest).
        let sizes = allocate(3200, &[0.05, 0.1, 0.2], 100_000);
        for (got, want) in sizes.iter().zip([1900u64, 900, 400]) {
            assert!(got.abs_diff(want) <= 1, "{sizes:?}");
        }
        assert_eq!(sizes.iter().sum::<u64>(), 3200);
        // Rounding never leaves a census short of the domain, whatever the shares.
        for shares in [[0.3, 0.3, 0.3], [0.07, 0.11, 0.13], [0.9, 0.2, 0.6]] {
            assert_eq!(allocate(3 * 7924, &shares, 7924), [7924; 3], "{shares:?}");
        }
        // A census is capped at the domain.
        assert_eq!(allocate(30, &[0.05, 0.5, 0.9], 10), [10, 10, 10]);
        // The first cohort would take 22 of 25 pages: capped at 10, the other two split 15.
        assert_eq!(allocate(25, &[0.05, 0.5, 0.5], 10), [10, 7, 8]);
        // Idle and saturated windows are clamped; no cohort goes empty.
        assert_eq!(allocate(100, &[0.0, 1.0, f64::NAN], 1000), [98, 1, 2]);
    }

    #[test]
    fn short_windows_get_more_pages_once_the_curve_is_known() {
        let mut e = Curve::new(10_000, 3000);
        let mut rng = StdRng::seed_from_u64(6);
        // Pages 0..500 every tick, and a scan of 1000 new pages per tick.
        let touch = |tick: u64, page: PageIdx| {
            page < 500
                || (500 + (tick * 1000) % 9000..500 + (tick * 1000) % 9000 + 1000).contains(&page)
        };
        interval(&mut e, &mut rng, &touch);
        assert_eq!(e.sizes, [Some(1000), None, Some(1000), Some(1000)]);
        interval(&mut e, &mut rng, &touch);
        // W = 15%, 25% and 45% of the domain at τ = 1, 2 and 4 ticks: weights 5.7, 3, 1.2.
        let [Some(long), None, Some(half), Some(quarter)] = e.sizes[..] else {
            panic!("{:?}", e.sizes);
        };
        assert!(quarter > half && half > long, "{:?}", e.sizes);
        assert!(long + half + quarter <= 3000 && long + half + quarter >= 2997);
        let quarter_cohort = e.cohorts.iter().find(|c| c.lifetime == 1).unwrap();
        assert_eq!(quarter_cohort.pages.len() as u64, quarter);
    }

    /// One interval of four ticks in which the guest touches `touch(tick, page)`.
    fn interval(
        e: &mut Curve,
        rng: &mut StdRng,
        touch: &impl Fn(u64, PageIdx) -> bool,
    ) -> (IntervalEstimate, Vec<usize>) {
        let mut armed_sizes = Vec::new();
        for _ in 0..TICKS_PER_INTERVAL {
            let armed = e.choose(rng);
            assert!(armed.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
            assert!(armed.iter().all(|&p| p < e.domain));
            armed_sizes.push(armed.len());
            let now = e.tick;
            let touched: Vec<PageIdx> = armed.into_iter().filter(|&p| touch(now, p)).collect();
            e.observe_tick(&touched);
        }
        (e.end_interval(), armed_sizes)
    }

    #[test]
    fn first_touch_ages_are_recorded_once_per_cohort() {
        let mut e = Curve::new(10, 30);
        let mut rng = StdRng::seed_from_u64(1);
        // A census: every page is in the cohort of tick 0.
        assert_eq!(e.choose(&mut rng), (0..10).collect::<Vec<_>>());
        e.observe_tick(&[3, 4]);
        // Pages 3 and 4 were touched: no longer armed.
        let armed = e.choose(&mut rng);
        assert!(!armed.contains(&3) && !armed.contains(&4));
        e.observe_tick(&[5, 3]);
        // Tick 2 draws a new census cohort: 3 and 4 are armed again, for it.
        assert_eq!(e.choose(&mut rng), (0..10).collect::<Vec<_>>());
        e.observe_tick(&[3, 6]);
        e.choose(&mut rng);
        e.observe_tick(&[]);
        let first = &e.cohorts[0];
        assert_eq!(first.first_touch[3], Some(1));
        assert_eq!(first.first_touch[4], Some(1));
        assert_eq!(first.first_touch[5], Some(2));
        assert_eq!(first.first_touch[6], Some(3));
        assert_eq!(e.cohorts[1].first_touch[3], Some(1));
        let est = e.end_interval();
        // W(4 ticks) is pages 3, 4, 5 and 6; a census has no error.
        assert_eq!(est.raw, Estimate::exact(4.0));
        let curve = e.curve().unwrap();
        let taus: Vec<u32> = curve.iter().map(|p| p.tau_ticks).collect();
        // The cohorts of ticks 0 (age 4), 2 (age 2) and 3 (age 1).
        assert_eq!(taus, [1, 2, 4]);
        assert_eq!(curve[0].estimate.pages, 0.0);
        // Ticks 2 and 3 touched 3 and 6.
        assert_eq!(curve[1].estimate.pages, 2.0);
        assert_eq!(curve[2].estimate.pages, 4.0);
    }

    #[test]
    fn cohorts_expire_after_their_longest_window() {
        let mut e = Curve::new(1000, 150);
        let mut rng = StdRng::seed_from_u64(2);
        // Nothing is ever touched, so armed pages only leave when their cohorts expire.
        let none = |_: u64, _: PageIdx| false;
        for i in 0..8 {
            interval(&mut e, &mut rng, &none);
            // The interval-start cohorts of the last four intervals are live, and those of
            // ticks 2 and 3 have served (ages 2 and 1) and go at the next choose.
            let long = e.cohorts.iter().filter(|c| c.lifetime == 16).count();
            assert_eq!(long, (i + 1).min(4), "interval {i}");
            assert!(e.cohorts.iter().all(|c| c.age(e.tick) <= 16));
            let points = e.curve().unwrap().len();
            // τ = 1, 2, 4 from the first interval; 8 from the second; 16 from the fourth.
            assert_eq!(points, [3, 4, 4, 5, 5, 5, 5, 5][i]);
        }
    }

    #[test]
    fn armed_pages_are_the_union_of_live_cohorts_untouched_pages() {
        let mut e = Curve::new(64, 120);
        let mut rng = StdRng::seed_from_u64(3);
        let none = |_: u64, _: PageIdx| false;
        for _ in 0..3 {
            let (_, sizes) = interval(&mut e, &mut rng, &none);
            // With 40 of 64 pages per cohort, live cohorts overlap, and the armed set is their
            // deduplicated union, never more than the domain.
            assert!(sizes.iter().all(|&s| (40..=64).contains(&s)), "{sizes:?}");
        }
        let mut want: Vec<PageIdx> = e
            .cohorts
            .iter()
            .filter(|c| c.age(e.tick) < u64::from(c.lifetime))
            .flat_map(|c| c.pages.iter().copied())
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(e.choose(&mut rng).len(), {
            // The new choose also adds a fresh cohort (tick 0 of an interval).
            let mut all = want.clone();
            all.extend(e.cohorts.back().unwrap().pages.iter().copied());
            all.sort_unstable();
            all.dedup();
            all.len()
        });
    }

    /// A stationary stream with known W(τ): every page is touched in each tick with probability
    /// q, independently (a hash of tick and page), so W(τ) = domain × (1 − (1 − q)^k) for τ = k
    /// ticks. The bands must cover it at about their 95% level.
    #[test]
    fn bands_cover_a_known_stationary_curve() {
        let domain = 20_000u64;
        let q = 0.05;
        let touch = |tick: u64, page: PageIdx| {
            let mut x = tick
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(page.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            x ^= x >> 31;
            x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 29;
            (x % 1_000_000) as f64 / 1e6 < q
        };
        let mut e = Curve::new(domain, 2400);
        let mut rng = StdRng::seed_from_u64(4);
        let (mut covered, mut total) = (0u32, 0u32);
        let mut sum = [0.0f64; 5];
        let mut count = [0u32; 5];
        for _ in 0..60 {
            interval(&mut e, &mut rng, &touch);
            for p in e.curve().unwrap() {
                let k = i32::try_from(p.tau_ticks).unwrap();
                let truth = domain as f64 * (1.0 - (1.0 - q).powi(k));
                total += 1;
                covered += u32::from(p.estimate.lo <= truth && truth <= p.estimate.hi);
                let j = TAU_TICKS.iter().position(|&t| t == p.tau_ticks).unwrap();
                sum[j] += p.estimate.pages / truth;
                count[j] += 1;
            }
        }
        let coverage = f64::from(covered) / f64::from(total);
        assert!((0.90..=0.99).contains(&coverage), "coverage {coverage}");
        // Unbiased: the mean ratio to the truth at every τ is within 5%.
        for j in 0..5 {
            let ratio = sum[j] / f64::from(count[j]);
            assert!(
                (0.95..=1.05).contains(&ratio),
                "τ {}: {ratio}",
                TAU_TICKS[j]
            );
        }
    }

    #[test]
    fn a_short_last_interval_is_measured_by_the_cohort_of_its_start() {
        let mut e = Curve::new(8, 24);
        let mut rng = StdRng::seed_from_u64(5);
        let all = |_: u64, _: PageIdx| true;
        interval(&mut e, &mut rng, &all);
        e.choose(&mut rng);
        e.observe_tick(&[1, 2]);
        let est = e.end_interval();
        assert_eq!(est.raw, Estimate::exact(2.0));
        assert_eq!(e.peek(0), Estimate::exact(2.0));
    }
}
