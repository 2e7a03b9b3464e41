//! Accuracy of the WSS estimate against the ground truth the guest runtime
//! counts: average error, relative error, bias, how often the measurement's
//! band holds the truth, and how many intervals the estimate lags behind a
//! step in the working set.
//!
//! The figures are of the estimator's measurement (the `est_*` columns),
//! the value someone tuning the sampling needs; the policy value
//! (`policy_wss_pages`, ESX's max of averages) gets its own MAPE, so that
//! an allocation policy's deliberate over-provisioning is never mistaken
//! for measurement error.

use serde::{Deserialize, Serialize};

use super::stats::RunningMean;
use crate::report::timeseries::Row;

/// Intervals skipped at the start of a run before errors (MAE, MAPE, bias,
/// band coverage) and WSS means are measured. Lags are not: see
/// [`AccuracyTally`].
///
/// The first interval contains guest boot, and its samples were armed
/// before the workload ran. The second is still influenced by start-up in
/// the policy value of estimators that smooth over past intervals (their
/// history begins empty), which `policy_mape` scores over the same window.
/// From the third on, the error measures tracking, which is what the metrics
/// are for. Two is small enough to leave most of a short run. The same
/// default holds for every guest program: none needs a longer one, because
/// a program's own start-up (an init pass such as `chase`'s) is part of its
/// working-set behaviour, and the lags score the fall after it.
pub const DEFAULT_WARMUP_INTERVALS: usize = 2;

/// Which ground-truth column the estimate is judged against. The access-bit
/// and fault trackers see reads and writes (`All`); the dirty-log tracker
/// only sees writes, so judging it against all touched pages would count a
/// limitation of the mechanism as estimation error (`Writes`).
///
/// In summary.json (`compared_against`) a column is written by its CSV name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TruthColumn {
    #[default]
    #[serde(rename = "true_wss_pages")]
    All,
    #[serde(rename = "true_wss_write_pages")]
    Writes,
}

impl TruthColumn {
    /// The ground truth of `row` in this column.
    pub fn of(self, row: &Row) -> u64 {
        match self {
            TruthColumn::All => row.true_wss_pages,
            TruthColumn::Writes => row.true_wss_write_pages,
        }
    }

    /// The CSV column name, as recorded in summary.json's `compared_against`.
    pub fn column_name(self) -> &'static str {
        match self {
            TruthColumn::All => "true_wss_pages",
            TruthColumn::Writes => "true_wss_write_pages",
        }
    }
}

/// Accuracy of one run. Every mean is `None` when nothing qualified for it,
/// so "no data" is never mistaken for "zero error".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Mean |est - truth|, pages.
    pub mae_pages: Option<f64>,
    /// Mean |est - truth| / truth over intervals with truth > 0, as a fraction
    /// (0.1 = 10%), of the measurement.
    pub mape: Option<f64>,
    /// The same mean of the policy value (`policy_wss_pages`) over the same
    /// window; `None` for rows without one (files from before the column).
    pub policy_mape: Option<f64>,
    /// Share of the scored intervals whose truth lies inside the
    /// measurement's band `[lo, hi]` (see [`band_covers`]).
    pub band_coverage: Option<f64>,
    /// Mean (est - truth), pages; positive means over-estimation.
    pub bias_pages: Option<f64>,
    /// Mean intervals until the measurement reaches 90% of the truth after
    /// the working set grows by 25% or more, over resolved growth events.
    pub lag_up_intervals: Option<f64>,
    /// Mean intervals until the measurement falls to 110% of the truth after
    /// the working set shrinks by 25% or more, over resolved shrink events.
    pub lag_down_intervals: Option<f64>,
    /// The same lag of the policy value (`policy_wss_pages`): how long an
    /// allocator following it keeps memory a shrunken working set let go.
    pub policy_lag_down_intervals: Option<f64>,
    /// Growth events detected (resolved or not).
    pub lag_up_events: u32,
    /// Shrink events detected (resolved or not).
    pub lag_down_events: u32,
    /// Events of either kind not resolved before the next event of the same
    /// kind or the end of the run; left out of the lag means.
    pub lag_unresolved: u32,
}

/// Mean WSS over the same intervals the error metrics look at (full rows
/// after warm-up), so the means in summary.json compare like with like.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WssMeans {
    /// Full rows after warm-up; the means below are 0 when this is 0.
    pub rows: usize,
    pub true_wss_pages: f64,
    pub true_wss_write_pages: f64,
    /// Over those rows that have an estimate; `None` when none has.
    pub est_wss_pages: Option<f64>,
}

/// Whether the `index`-th row (from 0) enters the error metrics: full and
/// after the warm-up (a partial last interval covers less time than the
/// estimate is scaled for). The one rule, for rows and for what is
/// measured at their ends (curve points).
pub fn is_scored(index: usize, row: &Row, warmup_intervals: usize) -> bool {
    index >= warmup_intervals && row.full
}

/// Mean |value - truth| / truth over the points with truth > 0: MAPE (as a
/// fraction) of points that are not rows (curve points), with the same
/// relative error and the same running mean as [`AccuracyTally`].
pub fn mean_relative_error(points: &[(f64, u64)]) -> Option<f64> {
    let mut m = RunningMean::default();
    points
        .iter()
        .filter(|&&(_, t)| t > 0)
        .for_each(|&(e, t)| m.add(relative_error(e, t)));
    m.mean()
}

/// Whether `row`'s measurement band holds its truth: `lo <= truth <= hi`,
/// a missing end standing for the estimate itself (a point band). `None`
/// without a finite estimate.
pub fn band_covers(row: &Row, truth: TruthColumn) -> Option<bool> {
    let pages = row.est_wss_pages.filter(|e| e.is_finite())?;
    let t = truth.of(row) as f64;
    Some(in_band(
        row.est_lo_pages.unwrap_or(pages),
        row.est_hi_pages.unwrap_or(pages),
        t,
    ))
}

/// Whether a band `[lo, hi]` holds `truth`: the one rule of band coverage,
/// for rows and for curve points.
pub fn in_band(lo: f64, hi: f64, truth: f64) -> bool {
    lo <= truth && truth <= hi
}

/// Computes the accuracy metrics of `rows` against `truth`: the rows fed
/// to an [`AccuracyTally`] in order (see there for the definitions).
pub fn compute(rows: &[Row], warmup_intervals: usize, truth: TruthColumn) -> Metrics {
    AccuracyTally::over(rows, warmup_intervals, truth).metrics()
}

/// Mean true and estimated WSS over full rows after warm-up: the rows fed
/// to an [`AccuracyTally`] in order.
pub fn wss_means(rows: &[Row], warmup_intervals: usize) -> WssMeans {
    AccuracyTally::over(rows, warmup_intervals, TruthColumn::All).wss_means()
}

/// The accuracy of a run, accumulated one row at a time in row order, so
/// that a run of any length keeps a few counters instead of its rows. This
/// is the one definition of every figure in [`Metrics`] and [`WssMeans`];
/// [`compute`] and [`wss_means`] fold a slice through it.
///
/// Errors (MAE, MAPE, bias, band coverage, policy MAPE) and the WSS means
/// are over the scored rows: full rows after skipping the first
/// `warmup_intervals` rows (partial ones count toward the warm-up), and for
/// the errors only those with a finite value. A partial row covers less
/// time than the estimate is scaled for. The band coverage is the share of
/// the scored rows with an estimate whose truth lies in
/// `[est_lo_pages, est_hi_pages]` (see [`band_covers`]).
///
/// Step events and lags are found on every full row with a finite
/// measurement, warm-up included: a program's start-up (an init pass that
/// touches everything, then a fall to its working set) is a step like any
/// other, and skipping it would hide exactly the fall a smoothing estimator
/// is slowest on. With `k - 1` the previous such row:
/// - a growth event is an interval k with `truth[k]` > 0 and
///   `truth[k]` >= 1.25 × `truth[k-1]`; its lag is the smallest j - k (j >= k)
///   with `est[j]` >= 0.9 × `truth[j]`;
/// - a shrink event is an interval k with `truth[k-1]` > 0 and
///   `truth[k]` <= 0.75 × `truth[k-1]` (a run of zeros is not a shrink); its lag
///   is the smallest j - k with `est[j]` <= 1.1 × `truth[j]`.
///
/// The search for j stops before the next event of the same kind (the step
/// it was chasing is superseded) or at the end of the run; such an event is
/// counted in `lag_unresolved` and left out of the mean.
///
/// `policy_lag_down_intervals` is the shrink lag of the policy value, by
/// the same rule over the full rows that have one.
#[derive(Debug, Clone)]
pub struct AccuracyTally {
    warmup_intervals: usize,
    truth: TruthColumn,
    /// Rows pushed, partial ones included: the warm-up counts rows.
    rows: usize,
    /// Scored rows (full, after the warm-up).
    scored: usize,
    true_wss: RunningMean,
    true_wss_write: RunningMean,
    est_wss: RunningMean,
    abs_error: RunningMean,
    error: RunningMean,
    relative_error: RunningMean,
    policy_relative_error: RunningMean,
    /// Scored rows with an estimate, and those whose band holds the truth.
    band_rows: usize,
    band_covered: usize,
    up: LagTracker,
    down: LagTracker,
    policy_down: LagTracker,
}

impl AccuracyTally {
    /// An empty tally scoring against `truth` after `warmup_intervals` rows.
    pub fn new(warmup_intervals: usize, truth: TruthColumn) -> Self {
        AccuracyTally {
            warmup_intervals,
            truth,
            rows: 0,
            scored: 0,
            true_wss: RunningMean::default(),
            true_wss_write: RunningMean::default(),
            est_wss: RunningMean::default(),
            abs_error: RunningMean::default(),
            error: RunningMean::default(),
            relative_error: RunningMean::default(),
            policy_relative_error: RunningMean::default(),
            band_rows: 0,
            band_covered: 0,
            up: LagTracker::new(Step::Growth),
            down: LagTracker::new(Step::Shrink),
            policy_down: LagTracker::new(Step::Shrink),
        }
    }

    /// The tally of `rows`, pushed in order.
    pub fn over(rows: &[Row], warmup_intervals: usize, truth: TruthColumn) -> Self {
        let mut tally = AccuracyTally::new(warmup_intervals, truth);
        rows.iter().for_each(|r| tally.push(r));
        tally
    }

    /// The warm-up it was made with.
    pub fn warmup_intervals(&self) -> usize {
        self.warmup_intervals
    }

    /// The truth column it scores against.
    pub fn truth(&self) -> TruthColumn {
        self.truth
    }

    /// Adds the next row of the run.
    pub fn push(&mut self, row: &Row) {
        let index = self.rows;
        self.rows += 1;
        if !row.full {
            return;
        }
        let t = self.truth.of(row);
        let measured = row.est_wss_pages.filter(|e| e.is_finite());
        let policy = row.policy_wss_pages.filter(|e| e.is_finite());
        if let Some(e) = measured {
            self.up.push(e, t);
            self.down.push(e, t);
        }
        if let Some(p) = policy {
            self.policy_down.push(p, t);
        }
        if !is_scored(index, row, self.warmup_intervals) {
            return;
        }
        self.scored += 1;
        self.true_wss.add(row.true_wss_pages as f64);
        self.true_wss_write.add(row.true_wss_write_pages as f64);
        if let Some(e) = measured {
            self.est_wss.add(e);
            self.abs_error.add((e - t as f64).abs());
            self.error.add(e - t as f64);
            if t > 0 {
                self.relative_error.add(relative_error(e, t));
            }
        }
        if let Some(p) = policy
            && t > 0
        {
            self.policy_relative_error.add(relative_error(p, t));
        }
        if let Some(covered) = band_covers(row, self.truth) {
            self.band_rows += 1;
            self.band_covered += usize::from(covered);
        }
    }

    /// The accuracy metrics of the rows pushed so far.
    pub fn metrics(&self) -> Metrics {
        let band_coverage =
            (self.band_rows > 0).then(|| self.band_covered as f64 / self.band_rows as f64);
        Metrics {
            mae_pages: self.abs_error.mean(),
            mape: self.relative_error.mean(),
            policy_mape: self.policy_relative_error.mean(),
            band_coverage,
            bias_pages: self.error.mean(),
            lag_up_intervals: self.up.lags.mean(),
            lag_down_intervals: self.down.lags.mean(),
            policy_lag_down_intervals: self.policy_down.lags.mean(),
            lag_up_events: saturating_u32(self.up.events),
            lag_down_events: saturating_u32(self.down.events),
            lag_unresolved: saturating_u32(self.up.unresolved())
                .saturating_add(saturating_u32(self.down.unresolved())),
        }
    }

    /// The WSS means of the rows pushed so far.
    pub fn wss_means(&self) -> WssMeans {
        WssMeans {
            rows: self.scored,
            true_wss_pages: self.true_wss.mean().unwrap_or(0.0),
            true_wss_write_pages: self.true_wss_write.mean().unwrap_or(0.0),
            est_wss_pages: self.est_wss.mean(),
        }
    }
}

/// |value - truth| / truth, for truth > 0.
fn relative_error(value: f64, truth: u64) -> f64 {
    (value - truth as f64).abs() / truth as f64
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The two kinds of step in the working set that lags are measured after.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Growth by 25% or more; resolved when the value reaches 90% of the truth.
    Growth,
    /// Shrink by 25% or more; resolved when the value is within 110% of it.
    Shrink,
}

impl Step {
    // Thresholds are compared in scaled integer/float form (4·cur vs 5·prev,
    // 10·est vs 9·truth) so that values exactly on a threshold are decided
    // exactly instead of by the rounding of 1.25, 0.9 or 1.1.
    fn is_event(self, prev: u64, cur: u64) -> bool {
        match self {
            Step::Growth => cur > 0 && 4 * u128::from(cur) >= 5 * u128::from(prev),
            Step::Shrink => prev > 0 && 4 * u128::from(cur) <= 3 * u128::from(prev),
        }
    }

    fn is_resolved(self, value: f64, truth: u64) -> bool {
        match self {
            Step::Growth => 10.0 * value >= 9.0 * truth as f64,
            Step::Shrink => 10.0 * value <= 11.0 * truth as f64,
        }
    }
}

/// The lags of one kind of step over a series of (value, truth) points fed
/// in order: at most one event is open at a time, chased until its value
/// resolves it or the next event of the same kind supersedes it.
#[derive(Debug, Clone)]
struct LagTracker {
    step: Step,
    /// Points pushed, and the truth of the last one.
    points: usize,
    prev_truth: Option<u64>,
    /// The point index of the event being chased, while unresolved.
    open: Option<usize>,
    /// Events detected, resolved or not.
    events: usize,
    /// The lags of the resolved events, in points.
    lags: RunningMean,
}

impl LagTracker {
    fn new(step: Step) -> Self {
        LagTracker {
            step,
            points: 0,
            prev_truth: None,
            open: None,
            events: 0,
            lags: RunningMean::default(),
        }
    }

    fn push(&mut self, value: f64, truth: u64) {
        let k = self.points;
        if let Some(prev) = self.prev_truth
            && self.step.is_event(prev, truth)
        {
            // A still-open event is superseded: it stays unresolved.
            self.events += 1;
            self.open = Some(k);
        }
        if let Some(start) = self.open
            && self.step.is_resolved(value, truth)
        {
            self.lags.add((k - start) as f64);
            self.open = None;
        }
        self.prev_truth = Some(truth);
        self.points += 1;
    }

    /// Events never resolved (superseded, or still open at the end).
    fn unresolved(&self) -> usize {
        self.events - self.lags.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    fn series(pairs: &[(u64, f64)]) -> Vec<Row> {
        pairs
            .iter()
            .enumerate()
            .map(|(i, &(t, e))| row(i as f64 + 1.0, t, Some(e)))
            .collect()
    }

    #[test]
    fn mae_bias_and_mape_are_exact_means() {
        // errors: +10, -20, +30 -> mae 20, bias 20/3
        // relative: 10/100, 20/200, 30/300 = 0.1 each -> mape 0.1
        let rows = series(&[(100, 110.0), (200, 180.0), (300, 330.0)]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.mae_pages, Some(20.0));
        assert!((m.bias_pages.unwrap() - 20.0 / 3.0).abs() < 1e-12);
        assert!((m.mape.unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn warmup_partial_rows_and_missing_estimates_are_skipped() {
        let mut rows = series(&[(100, 1000.0), (100, 1000.0), (100, 104.0), (100, 96.0)]);
        rows.push(row(5.0, 100, None));
        let mut partial = row(6.0, 10, Some(500.0));
        partial.full = false;
        rows.push(partial);
        rows.push(row(7.0, 100, Some(f64::NAN)));
        let m = compute(&rows, 2, TruthColumn::All);
        // Only (100,104) and (100,96) count.
        assert_eq!(m.mae_pages, Some(4.0));
        assert_eq!(m.bias_pages, Some(0.0));
        assert_eq!(m.mape, Some(0.04));
    }

    #[test]
    fn mape_skips_zero_truth_and_is_none_without_positive_truth() {
        let rows = series(&[(0, 5.0), (50, 40.0)]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.mae_pages, Some(7.5));
        assert_eq!(m.bias_pages, Some(-2.5));
        assert_eq!(m.mape, Some(0.2));
        let zeros = series(&[(0, 5.0), (0, 3.0)]);
        let m = compute(&zeros, 0, TruthColumn::All);
        assert_eq!(m.mape, None);
        assert_eq!(m.mae_pages, Some(4.0));
        // A flat zero series has neither growth nor shrink events.
        assert_eq!((m.lag_up_events, m.lag_down_events), (0, 0));
    }

    #[test]
    fn no_estimate_gives_no_metrics() {
        let rows: Vec<Row> = (0..5).map(|i| row(i as f64, 100, None)).collect();
        assert_eq!(compute(&rows, 0, TruthColumn::All), Metrics::default());
        assert_eq!(compute(&[], 0, TruthColumn::All), Metrics::default());
        // Warm-up longer than the run.
        let rows = series(&[(100, 100.0)]);
        assert_eq!(compute(&rows, 5, TruthColumn::All), Metrics::default());
    }

    #[test]
    fn truth_column_selects_written_pages() {
        // row() sets writes = truth / 2.
        let rows = series(&[(200, 100.0), (400, 210.0)]);
        let m = compute(&rows, 0, TruthColumn::Writes);
        assert_eq!(m.mae_pages, Some(5.0));
        assert_eq!(m.bias_pages, Some(5.0));
        assert!((m.mape.unwrap() - 0.025).abs() < 1e-12);
        assert_eq!(TruthColumn::Writes.column_name(), "true_wss_write_pages");
        assert_eq!(TruthColumn::All.column_name(), "true_wss_pages");
    }

    #[test]
    fn growth_lag_is_intervals_until_estimate_reaches_90_percent() {
        // Step 100 -> 200 at k=2; est reaches 180 (= 0.9 × 200, exactly on the
        // threshold) at j=4: lag 2.
        let rows = series(&[
            (100, 100.0),
            (100, 100.0),
            (200, 120.0),
            (200, 170.0),
            (200, 180.0),
            (200, 200.0),
        ]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_up_events, 1);
        assert_eq!(m.lag_up_intervals, Some(2.0));
        assert_eq!(m.lag_down_events, 0);
        assert_eq!(m.lag_down_intervals, None);
        assert_eq!(m.lag_unresolved, 0);
    }

    #[test]
    fn growth_threshold_is_25_percent_and_immediate_catch_up_is_lag_zero() {
        // 100 -> 125 is exactly +25%: an event, caught at once (lag 0).
        // 125 -> 156 is +24.8%: not an event.
        let rows = series(&[(100, 100.0), (125, 125.0), (156, 100.0)]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_up_events, 1);
        assert_eq!(m.lag_up_intervals, Some(0.0));
        // From zero, any growth is an event.
        let rows = series(&[(0, 0.0), (10, 0.0), (10, 9.0)]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_up_events, 1);
        assert_eq!(m.lag_up_intervals, Some(1.0));
    }

    #[test]
    fn shrink_lag_is_intervals_until_estimate_falls_to_110_percent() {
        // 400 -> 300 is exactly -25%: event at k=1; est 330 = 1.1 × 300 at
        // j=3: lag 2. 300 -> 226 is -24.7%: not an event.
        let rows = series(&[
            (400, 400.0),
            (300, 400.0),
            (300, 350.0),
            (300, 330.0),
            (226, 226.0),
        ]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_down_events, 1);
        assert_eq!(m.lag_down_intervals, Some(2.0));
        assert_eq!(m.lag_up_events, 0);
        assert_eq!(m.lag_unresolved, 0);
    }

    #[test]
    fn unresolved_events_are_counted_and_left_out_of_the_mean() {
        // Growth at k=1 (100->200) never reaches 180 before the next growth
        // at k=3 (200->400): unresolved. The k=3 growth resolves at j=4: lag 1.
        // Shrink at k=5 (400->100) never gets the estimate down to 110 before
        // the run ends: unresolved.
        let rows = series(&[
            (100, 100.0),
            (200, 150.0),
            (200, 170.0),
            (400, 179.0),
            (400, 360.0),
            (100, 300.0),
            (100, 200.0),
        ]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_up_events, 2);
        assert_eq!(m.lag_up_intervals, Some(1.0));
        assert_eq!(m.lag_down_events, 1);
        assert_eq!(m.lag_down_intervals, None);
        assert_eq!(m.lag_unresolved, 2);
    }

    #[test]
    fn a_resolution_at_the_next_event_does_not_count_for_the_previous_one() {
        // Growth at k=1 is unresolved through k=1; at k=2 a new growth starts
        // and est 300 >= 0.9 × 300 there, which resolves only the new one (lag 0).
        let rows = series(&[(100, 100.0), (200, 100.0), (300, 300.0)]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!(m.lag_up_events, 2);
        assert_eq!(m.lag_up_intervals, Some(0.0));
        assert_eq!(m.lag_unresolved, 1);
    }

    #[test]
    fn lag_means_average_resolved_events() {
        // Two growths: lags 0 and 2 -> mean 1. Two shrinks: lags 1 and 0 -> 0.5.
        let rows = series(&[
            (100, 100.0),
            (200, 190.0), // up k=1, lag 0
            (100, 150.0), // down k=2
            (100, 105.0), // resolves k=2: lag 1
            (200, 100.0), // up k=4
            (200, 150.0),
            (200, 185.0), // resolves k=4: lag 2
            (100, 100.0), // down k=7, lag 0
        ]);
        let m = compute(&rows, 0, TruthColumn::All);
        assert_eq!((m.lag_up_events, m.lag_down_events), (2, 2));
        assert_eq!(m.lag_up_intervals, Some(1.0));
        assert_eq!(m.lag_down_intervals, Some(0.5));
        assert_eq!(m.lag_unresolved, 0);
    }

    #[test]
    fn lags_count_steps_inside_the_warm_up() {
        // The growth from the warm-up rows (truth 10) into row 2 is an event
        // whatever the warm-up; it resolves at row 3 (95 >= 90): lag 1.
        let rows = series(&[(10, 10.0), (10, 10.0), (100, 50.0), (100, 95.0)]);
        for warmup in [0, 1, 2] {
            let m = compute(&rows, warmup, TruthColumn::All);
            assert_eq!(m.lag_up_events, 1, "warm-up {warmup}");
            assert_eq!(m.lag_up_intervals, Some(1.0), "warm-up {warmup}");
        }
        // The errors still skip the warm-up: only rows 2 and 3 are scored.
        let m = compute(&rows, 2, TruthColumn::All);
        assert_eq!(m.mae_pages, Some(27.5));
    }

    #[test]
    fn a_fall_after_an_init_pass_in_the_warm_up_shows_in_lag_down() {
        // Like `chase`: interval 0 is an init pass touching 5000 pages, then
        // the working set is 1000. A smoothing value still reports 3000 in
        // interval 1 (both intervals inside the default warm-up) and comes
        // down to 1100 (= 1.1 × 1000, on the threshold) in interval 3.
        let rows = series(&[
            (5000, 5000.0),
            (1000, 3000.0),
            (1000, 1500.0),
            (1000, 1100.0),
            (1000, 1000.0),
        ]);
        let mut rows = rows;
        for (r, policy) in rows
            .iter_mut()
            .zip([5000.0, 4000.0, 3000.0, 2000.0, 1100.0])
        {
            r.policy_wss_pages = Some(policy);
        }
        let m = compute(&rows, DEFAULT_WARMUP_INTERVALS, TruthColumn::All);
        assert_eq!(m.lag_down_events, 1);
        assert_eq!(m.lag_down_intervals, Some(2.0));
        // The policy value comes within 110% only in interval 4.
        assert_eq!(m.policy_lag_down_intervals, Some(3.0));
        assert_eq!(m.lag_unresolved, 0);
        // Errors over rows 2..: |1500-1000|, |1100-1000|, 0.
        assert_eq!(m.mae_pages, Some(200.0));
        assert!((m.mape.unwrap() - 0.2).abs() < 1e-12);
    }

    #[test]
    fn partial_rows_in_the_warm_up_are_not_steps() {
        // A short row of truth 1 between two of 100 would make two events.
        let mut rows = series(&[(100, 100.0), (1, 1.0), (100, 100.0)]);
        rows[1].full = false;
        let m = compute(&rows, 2, TruthColumn::All);
        assert_eq!((m.lag_up_events, m.lag_down_events), (0, 0));
    }

    #[test]
    fn band_coverage_is_the_share_of_scored_rows_whose_truth_is_in_the_band() {
        // row() gives the band [0.9 est, 1.1 est].
        let mut rows = series(&[
            (100, 1000.0), // warm-up: not covered, not counted
            (100, 100.0),  // covered
            (100, 95.0),   // 85.5..104.5: covered
            (100, 80.0),   // 72..88: not covered
            (110, 100.0),  // 90..110: covered, on the edge
        ]);
        rows.push(row(6.0, 100, None)); // no estimate: not counted
        let mut partial = row(7.0, 100, Some(1000.0));
        partial.full = false; // partial: not counted
        rows.push(partial);
        let m = compute(&rows, 1, TruthColumn::All);
        assert_eq!(m.band_coverage, Some(0.75));
        // A missing band is the point itself.
        let mut point = row(1.0, 100, Some(100.0));
        (point.est_lo_pages, point.est_hi_pages) = (None, None);
        assert_eq!(band_covers(&point, TruthColumn::All), Some(true));
        point.est_wss_pages = Some(101.0);
        assert_eq!(band_covers(&point, TruthColumn::All), Some(false));
        // Against written pages (row() sets writes = truth / 2).
        let half = row(1.0, 200, Some(100.0));
        assert_eq!(band_covers(&half, TruthColumn::Writes), Some(true));
        assert_eq!(band_covers(&half, TruthColumn::All), Some(false));
        // No estimate: no coverage, not 0.
        let none: Vec<Row> = (0..3).map(|i| row(i as f64, 100, None)).collect();
        assert_eq!(compute(&none, 0, TruthColumn::All).band_coverage, None);
    }

    #[test]
    fn policy_mape_scores_the_policy_column_over_the_same_rows() {
        let mut rows = series(&[(100, 1.0), (100, 100.0), (200, 180.0), (400, 400.0)]);
        for (r, policy) in rows.iter_mut().zip([900.0, 150.0, 250.0, 400.0]) {
            r.policy_wss_pages = Some(policy);
        }
        let m = compute(&rows, 1, TruthColumn::All);
        // Measurement: 0, 0.1, 0 -> 1/30. Policy: 0.5, 0.25, 0 -> 0.25.
        assert!((m.mape.unwrap() - 0.1 / 3.0).abs() < 1e-12);
        assert_eq!(m.policy_mape, Some(0.25));
        assert_eq!(m.policy_lag_down_intervals, None);
        // Files from before the policy column have none.
        for r in &mut rows {
            r.policy_wss_pages = None;
        }
        let m = compute(&rows, 1, TruthColumn::All);
        assert_eq!(m.policy_mape, None);
        assert!(m.mape.is_some());
    }

    /// The slice implementation from before the metrics streamed, kept
    /// verbatim as the oracle the streaming tally must reproduce.
    mod oracle {
        use super::super::{Metrics, TruthColumn, WssMeans, band_covers};
        use crate::analysis::stats::mean;
        use crate::report::timeseries::Row;

        fn scored_rows(rows: &[Row], warmup_intervals: usize) -> impl Iterator<Item = &Row> {
            rows.iter().skip(warmup_intervals).filter(|r| r.full)
        }

        fn points<'a>(
            rows: impl Iterator<Item = &'a Row>,
            truth: TruthColumn,
            value: impl Fn(&Row) -> Option<f64>,
        ) -> Vec<(f64, u64)> {
            rows.filter_map(|r| value(r).filter(|e| e.is_finite()).map(|e| (e, truth.of(r))))
                .collect()
        }

        fn mean_relative_error(points: &[(f64, u64)]) -> Option<f64> {
            mean(
                points
                    .iter()
                    .filter(|&&(_, t)| t > 0)
                    .map(|&(e, t)| (e - t as f64).abs() / t as f64),
            )
        }

        pub fn compute(rows: &[Row], warmup_intervals: usize, truth: TruthColumn) -> Metrics {
            let measured = |r: &Row| r.est_wss_pages;
            let points = points(scored_rows(rows, warmup_intervals), truth, measured);
            let policy = self::points(scored_rows(rows, warmup_intervals), truth, |r| {
                r.policy_wss_pages
            });
            let covered: Vec<bool> = scored_rows(rows, warmup_intervals)
                .filter_map(|r| band_covers(r, truth))
                .collect();
            let band_coverage = (!covered.is_empty())
                .then(|| covered.iter().filter(|&&c| c).count() as f64 / covered.len() as f64);
            let mae_pages = mean(points.iter().map(|&(e, t)| (e - t as f64).abs()));
            let bias_pages = mean(points.iter().map(|&(e, t)| e - t as f64));
            let mape = mean_relative_error(&points);
            let policy_mape = mean_relative_error(&policy);
            let steps = self::points(rows.iter().filter(|r| r.full), truth, measured);
            let up = lags(
                &steps,
                |prev, cur| cur > 0 && 4 * u128::from(cur) >= 5 * u128::from(prev),
                |est, t| 10.0 * est >= 9.0 * t as f64,
            );
            let down = shrink_lags(&steps);
            let policy_down =
                shrink_lags(&self::points(rows.iter().filter(|r| r.full), truth, |r| {
                    r.policy_wss_pages
                }));
            Metrics {
                mae_pages,
                mape,
                policy_mape,
                band_coverage,
                bias_pages,
                lag_up_intervals: up.mean,
                lag_down_intervals: down.mean,
                policy_lag_down_intervals: policy_down.mean,
                lag_up_events: up.events,
                lag_down_events: down.events,
                lag_unresolved: up.unresolved + down.unresolved,
            }
        }

        pub fn wss_means(rows: &[Row], warmup_intervals: usize) -> WssMeans {
            let window: Vec<&Row> = scored_rows(rows, warmup_intervals).collect();
            WssMeans {
                rows: window.len(),
                true_wss_pages: mean(window.iter().map(|r| r.true_wss_pages as f64)).unwrap_or(0.0),
                true_wss_write_pages: mean(window.iter().map(|r| r.true_wss_write_pages as f64))
                    .unwrap_or(0.0),
                est_wss_pages: mean(
                    window
                        .iter()
                        .filter_map(|r| r.est_wss_pages.filter(|e| e.is_finite())),
                ),
            }
        }

        fn shrink_lags(points: &[(f64, u64)]) -> LagStats {
            lags(
                points,
                |prev, cur| prev > 0 && 4 * u128::from(cur) <= 3 * u128::from(prev),
                |est, t| 10.0 * est <= 11.0 * t as f64,
            )
        }

        struct LagStats {
            mean: Option<f64>,
            events: u32,
            unresolved: u32,
        }

        fn lags(
            points: &[(f64, u64)],
            is_event: impl Fn(u64, u64) -> bool,
            is_resolved: impl Fn(f64, u64) -> bool,
        ) -> LagStats {
            let events: Vec<usize> = (1..points.len())
                .filter(|&k| is_event(points[k - 1].1, points[k].1))
                .collect();
            let mut resolved = Vec::with_capacity(events.len());
            for (i, &k) in events.iter().enumerate() {
                let end = events.get(i + 1).copied().unwrap_or(points.len());
                if let Some(j) = (k..end).find(|&j| is_resolved(points[j].0, points[j].1)) {
                    resolved.push((j - k) as f64);
                }
            }
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            LagStats {
                mean: mean(resolved.iter().copied()),
                events: count(events.len()),
                unresolved: count(events.len() - resolved.len()),
            }
        }
    }

    /// A random run: truth that holds, grows or falls in steps (to zero
    /// too), estimates near it or far off, missing or NaN, bands missing or
    /// not, policy values missing or not, and partial rows anywhere.
    fn random_rows(seed: u64) -> Vec<Row> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = rng.random_range(0..200usize);
        let mut truth: u64 = rng.random_range(0..1000);
        (0..n)
            .map(|i| {
                match rng.random_range(0..10u32) {
                    0 => truth = truth.saturating_mul(rng.random_range(2..4)).max(1),
                    1 => truth /= rng.random_range(2..5),
                    2 => truth = 0,
                    3 => truth = rng.random_range(0..2000),
                    _ => {}
                }
                let est = match rng.random_range(0..10u32) {
                    0 => None,
                    1 => Some(f64::NAN),
                    2 => Some(rng.random_range(0.0..3000.0)),
                    _ => Some(truth as f64 * rng.random_range(0.5..1.5)),
                };
                let mut r = row(i as f64 + 1.0, truth, est);
                r.true_wss_write_pages = rng.random_range(0..=truth);
                if rng.random_bool(0.2) {
                    r.est_lo_pages = None;
                }
                if rng.random_bool(0.2) {
                    r.est_hi_pages = None;
                }
                r.policy_wss_pages = match rng.random_range(0..4u32) {
                    0 => None,
                    1 => est,
                    _ => Some(truth as f64 * rng.random_range(0.8..2.0)),
                };
                r.full = !rng.random_bool(0.1);
                r
            })
            .collect()
    }

    #[test]
    fn streaming_tally_equals_the_slice_implementation_exactly() {
        let mut with_events = 0;
        let mut with_unresolved = 0;
        for seed in 0..500 {
            let rows = random_rows(seed);
            for warmup in [0, 1, 2, 7] {
                for truth in [TruthColumn::All, TruthColumn::Writes] {
                    // The same additions in the same order: equal to the bit.
                    let m = compute(&rows, warmup, truth);
                    assert_eq!(m, oracle::compute(&rows, warmup, truth), "seed {seed}");
                    with_events += usize::from(m.lag_up_events > 0 && m.lag_down_events > 0);
                    with_unresolved += usize::from(m.lag_unresolved > 0);
                }
                assert_eq!(
                    wss_means(&rows, warmup),
                    oracle::wss_means(&rows, warmup),
                    "seed {seed}"
                );
            }
        }
        // The streams exercised both kinds of event and unresolved ones.
        assert!(with_events > 1000, "{with_events}");
        assert!(with_unresolved > 1000, "{with_unresolved}");
    }

    #[test]
    fn a_tally_fed_row_by_row_reports_as_it_goes() {
        let rows = random_rows(7);
        let mut tally = AccuracyTally::new(2, TruthColumn::All);
        for (i, r) in rows.iter().enumerate() {
            tally.push(r);
            assert_eq!(tally.metrics(), compute(&rows[..=i], 2, TruthColumn::All));
        }
        assert_eq!(tally.warmup_intervals(), 2);
        assert_eq!(tally.truth(), TruthColumn::All);
    }

    #[test]
    fn wss_means_use_full_rows_after_warmup() {
        let mut rows = series(&[(1000, 0.0), (100, 90.0), (300, 330.0)]);
        rows.push(row(4.0, 500, None));
        let mut partial = row(5.0, 7, Some(7.0));
        partial.full = false;
        rows.push(partial);
        let means = wss_means(&rows, 1);
        assert_eq!(means.rows, 3);
        assert_eq!(means.true_wss_pages, 300.0);
        assert_eq!(means.true_wss_write_pages, 150.0);
        assert_eq!(means.est_wss_pages, Some(210.0));
        let empty = wss_means(&rows, 10);
        assert_eq!(empty, WssMeans::default());
    }
}
