//! Exhaustive tracking: every page of the domain is armed every interval, so the touched count is
//! the working-set size itself. It is the ground truth the sampling estimators are judged
//! against, at the cost of a tracked touch for every page the guest uses.

use rand::rngs::StdRng;

use super::{Estimate, Estimator, IntervalEstimate, PageIdx};

pub struct Exhaustive {
    domain: u64,
    /// Which pages were touched this interval, so repeats count once.
    touched: Vec<bool>,
    count: u64,
    last: Estimate,
}

impl Exhaustive {
    /// `build()` has checked `0 < domain` and that it fits usize.
    pub(super) fn new(domain: u64) -> Self {
        Exhaustive {
            domain,
            touched: vec![false; usize::try_from(domain).unwrap_or(0)],
            count: 0,
            last: Estimate::exact(0.0),
        }
    }
}

impl Estimator for Exhaustive {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    fn ticks_per_interval(&self) -> u32 {
        1
    }

    fn choose(&mut self, _rng: &mut StdRng) -> Vec<PageIdx> {
        (0..self.domain).collect()
    }

    fn observe_tick(&mut self, touched: &[PageIdx]) {
        for &p in touched {
            if let Some(seen) = usize::try_from(p)
                .ok()
                .and_then(|i| self.touched.get_mut(i))
                && !*seen
            {
                *seen = true;
                self.count += 1;
            }
        }
    }

    /// The count is exact, so the band is the point and there is nothing for a policy to add.
    fn end_interval(&mut self) -> IntervalEstimate {
        self.last = Estimate::exact(self.count as f64);
        self.count = 0;
        self.touched.fill(false);
        IntervalEstimate::unsmoothed(self.last)
    }

    fn peek(&self, _touched_so_far: usize) -> Estimate {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn arms_every_page() {
        let mut rng = StdRng::seed_from_u64(30);
        let mut e = Exhaustive::new(777);
        assert_eq!(e.choose(&mut rng), (0..777).collect::<Vec<_>>());
        let mut e = Exhaustive::new(1);
        assert_eq!(e.choose(&mut rng), vec![0]);
    }

    #[test]
    fn exact_on_random_streams() {
        const DOMAIN: u64 = 10_000;
        let mut rng = StdRng::seed_from_u64(31);
        let mut e = Exhaustive::new(DOMAIN);
        for _ in 0..100 {
            let armed = e.choose(&mut rng);
            let density: f64 = rng.random();
            let touched: Vec<PageIdx> = armed
                .into_iter()
                .filter(|_| rng.random_bool(density))
                .collect();
            let truth = touched.len() as f64;
            e.observe_tick(&touched);
            let est = e.end_interval();
            assert_eq!(est.policy_pages, truth);
            let est = est.raw;
            assert_eq!(est, Estimate::exact(truth));
            assert_eq!(e.peek(123), est);
        }
    }

    #[test]
    fn repeats_and_out_of_domain_pages_do_not_count() {
        let mut rng = StdRng::seed_from_u64(32);
        let mut e = Exhaustive::new(100);
        e.choose(&mut rng);
        e.observe_tick(&[1, 1, 2, 99, 100, u64::MAX]);
        e.observe_tick(&[2, 3]);
        assert_eq!(e.end_interval().raw, Estimate::exact(4.0));
        // The next interval starts from zero.
        e.choose(&mut rng);
        assert_eq!(e.end_interval().raw, Estimate::exact(0.0));
    }
}
