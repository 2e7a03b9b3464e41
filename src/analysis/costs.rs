//! What sampling cost over a run, from its time series: the sampler's arm
//! and collect time, the pages it armed, the boundary holds, and the
//! guest's stall per tracked fault. Accumulated one row at a time, so a run
//! of any length keeps a few sums instead of its rows; the slice functions
//! fold through the same tally, so each figure has one definition.

use super::derived;
use super::stats::RunningMean;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;

/// The cost sums of a run's rows, pushed in row order.
#[derive(Debug, Clone, Default)]
pub struct CostTally {
    warmup_intervals: usize,
    /// Rows pushed, partial ones included: the warm-up counts rows.
    rows: usize,
    arm_us: f64,
    collect_us: f64,
    armed_pages: u64,
    hold_us: RunningMean,
    hold_us_max: f64,
    /// Over the scored rows (full, after the warm-up) only.
    scored_faults: u64,
    scored_stall_us: f64,
    scored_secs: f64,
    scored_ops: u64,
    /// Wall time of the scored rows: each row's `t_s` less the one
    /// before it, so the holds at its boundaries (arming, collecting) are
    /// inside it, unlike `interval_s`.
    scored_wall_s: f64,
    /// `t_s` of the last row pushed (0 before the first: rows count from
    /// the guest's start).
    last_t_s: f64,
}

impl CostTally {
    /// An empty tally whose stall per fault skips `warmup_intervals` rows.
    pub fn new(warmup_intervals: usize) -> Self {
        CostTally {
            warmup_intervals,
            ..CostTally::default()
        }
    }

    /// The tally of `rows`, pushed in order.
    pub fn over(rows: &[Row], warmup_intervals: usize) -> Self {
        let mut tally = CostTally::new(warmup_intervals);
        rows.iter().for_each(|r| tally.push(r));
        tally
    }

    /// Adds the next row of the run.
    pub fn push(&mut self, row: &Row) {
        let index = self.rows;
        self.rows += 1;
        let wall_s = row.t_s - self.last_t_s;
        self.last_t_s = row.t_s;
        self.arm_us += row.arm_us;
        self.collect_us += row.collect_us;
        self.armed_pages = self.armed_pages.saturating_add(row.sampled_pages);
        self.hold_us.add(row.hold_us);
        self.hold_us_max = self.hold_us_max.max(row.hold_us);
        if index >= self.warmup_intervals && row.full {
            self.scored_faults = self.scored_faults.saturating_add(row.faults);
            self.scored_stall_us += row.stall_us;
            self.scored_secs += row.interval_s;
            self.scored_ops = self.scored_ops.saturating_add(row.guest_ops);
            if wall_s.is_finite() {
                self.scored_wall_s += wall_s.max(0.0);
            }
        }
    }

    /// Guest operations per second of wall time over the scored rows: the
    /// run's throughput once the warm-up (boot, and whatever the first
    /// touches of pages cost) is over, tracking's holds included. `None`
    /// without a scored row.
    pub fn steady_ops_per_s(&self) -> Option<f64> {
        (self.scored_wall_s > 0.0).then(|| derived::per_second(self.scored_ops, self.scored_wall_s))
    }

    /// Tracked faults per second of wall time over the same scored rows.
    /// `None` without a scored row.
    pub fn steady_faults_per_s(&self) -> Option<f64> {
        (self.scored_wall_s > 0.0)
            .then(|| derived::per_second(self.scored_faults, self.scored_wall_s))
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Sampler time arming pages, summed over the rows, µs.
    pub fn arm_us_total(&self) -> f64 {
        self.arm_us
    }

    /// Sampler time collecting touched pages, summed over the rows, µs.
    pub fn collect_us_total(&self) -> f64 {
        self.collect_us
    }

    /// Pages armed over the rows (the `sampled_pages` column summed).
    pub fn armed_pages_total(&self) -> u64 {
        self.armed_pages
    }

    /// Mean time the guest was held per interval, µs; 0 without rows.
    pub fn hold_us_mean(&self) -> f64 {
        self.hold_us.mean().unwrap_or(0.0)
    }

    /// Longest hold of one interval, µs; 0 without rows.
    pub fn hold_us_max(&self) -> f64 {
        self.hold_us_max
    }

    /// The guest's stall time per tracked fault: its stall time in the
    /// scored intervals (full ones after the warm-up, so start-up page
    /// population is left out), less the stall rate of the untracked twin
    /// when there is one, over the tracked faults in those intervals. It
    /// includes whatever else stalled the guest (the host preempting the
    /// vCPU thread), and misses faults shorter than the stall threshold, so
    /// it is reported beside the calibrated `fault_cost_us`, not as it.
    /// `None` without a tracked fault.
    pub fn stall_us_per_fault(&self, baseline: Option<&Summary>) -> Option<f64> {
        if self.scored_faults == 0 {
            return None;
        }
        let noise_us = baseline.map_or(0.0, |b| {
            b.stall_us / b.duration_s.max(1e-9) * self.scored_secs
        });
        Some((self.scored_stall_us - noise_us).max(0.0) / self.scored_faults as f64)
    }
}

/// [`CostTally::stall_us_per_fault`] of `rows`.
pub fn stall_us_per_fault(rows: &[Row], warmup: usize, baseline: Option<&Summary>) -> Option<f64> {
    CostTally::over(rows, warmup).stall_us_per_fault(baseline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    #[test]
    fn sums_means_and_max_are_over_every_row() {
        let mut rows: Vec<Row> = (0..4).map(|i| row(i as f64, 100, None)).collect();
        for (i, r) in rows.iter_mut().enumerate() {
            r.arm_us = 1.5 * i as f64;
            r.collect_us = 0.25;
            r.sampled_pages = 10;
            r.hold_us = [4.0, 8.0, 2.0, 6.0][i];
        }
        rows[3].full = false;
        let t = CostTally::over(&rows, 2);
        assert_eq!(t.rows(), 4);
        assert_eq!(t.arm_us_total(), 9.0);
        assert_eq!(t.collect_us_total(), 1.0);
        assert_eq!(t.armed_pages_total(), 40);
        assert_eq!(t.hold_us_mean(), 5.0);
        assert_eq!(t.hold_us_max(), 8.0);
        let empty = CostTally::new(2);
        assert_eq!((empty.hold_us_mean(), empty.hold_us_max()), (0.0, 0.0));
        assert_eq!(empty.stall_us_per_fault(None), None);
    }

    #[test]
    fn steady_rates_are_over_the_wall_time_of_the_scored_rows() {
        // Ends at 1, 2, 3.5, 4.5, 6 s: rows 2 and 3 hold 1.5 s and 1 s of
        // wall time (a 0.5 s hold in the first), though each ran 1 s.
        let ends = [1.0, 2.0, 3.5, 4.5, 6.0];
        let mut rows: Vec<Row> = ends.iter().map(|&t| row(t, 100, None)).collect();
        for (r, (ops, faults)) in
            rows.iter_mut()
                .zip([(10, 900), (100, 9), (300, 30), (200, 20), (7, 1)])
        {
            r.guest_ops = ops;
            r.faults = faults;
        }
        // The first-touch storm of the warm-up (rows 0-1) and the partial
        // last row are left out: 500 ops and 50 faults over 2.5 s.
        rows[4].full = false;
        let t = CostTally::over(&rows, 2);
        assert_eq!(t.steady_ops_per_s(), Some(200.0));
        assert_eq!(t.steady_faults_per_s(), Some(20.0));
        // Nothing scored: no steady rate (not 0, which would read as a
        // guest that stopped).
        let none = CostTally::over(&rows, 5);
        assert_eq!(
            (none.steady_ops_per_s(), none.steady_faults_per_s()),
            (None, None)
        );
        assert_eq!(CostTally::new(0).steady_ops_per_s(), None);
    }

    #[test]
    fn stall_per_fault_is_over_scored_rows_less_the_baseline_noise() {
        let mut rows: Vec<Row> = (0..5).map(|i| row(i as f64, 100, None)).collect();
        for r in &mut rows {
            r.faults = 10;
            r.stall_us = 1000.0;
            r.interval_s = 1.0;
        }
        // Warm-up row 0 and the partial last row are left out: 3 rows,
        // 30 faults, 3000 µs of stall over 3 s.
        rows[4].full = false;
        rows[0].stall_us = 1e9;
        assert_eq!(stall_us_per_fault(&rows, 1, None), Some(100.0));
        // A baseline stalling 100 µs per second: 300 µs of noise.
        let baseline = Summary {
            stall_us: 200.0,
            duration_s: 2.0,
            ..Summary::default()
        };
        assert_eq!(stall_us_per_fault(&rows, 1, Some(&baseline)), Some(90.0));
        // More noise than stall: never below zero.
        let noisy = Summary {
            stall_us: 1e9,
            duration_s: 1.0,
            ..Summary::default()
        };
        assert_eq!(stall_us_per_fault(&rows, 1, Some(&noisy)), Some(0.0));
        // No fault in the scored rows: no figure.
        assert_eq!(stall_us_per_fault(&rows, 5, None), None);
    }
}
