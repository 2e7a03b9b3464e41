//! The bounded series the run plot is drawn from, filled one row at a time
//! while the run streams its rows to timeseries.csv: at most
//! [`MAX_PLOTTED_STEPS`] steps, however long or fine-grained the run.
//!
//! While a run has no more rows than that, each step is one row, exactly
//! as the row holds it, so a short run plots as it always did. When the
//! buffer is full, neighbouring pairs of steps merge and the resolution
//! halves: a step then spans 2, 4, 8, … intervals (the last one may hold
//! fewer), the same as cutting the rows into chunks of that many.
//!
//! A merged step keeps the largest value of each line over its intervals
//! (and the band's lowest lower and highest upper bound), an envelope
//! rather than a mean: a short spike in the working set or in the faults,
//! or an estimate that overshoots once, is what a reader of a long run
//! looks for, and a mean would flatten it into the steps around it.

use super::summary::Phase;
use super::timeseries::Row;

/// Most steps a run plot holds and draws: a 1600-pixel-wide figure cannot
/// show more, and each costs memory, drawing time and bytes (a 10-minute
/// run at 1 ms intervals has 600,000 rows). Even, so that a full buffer
/// halves into whole pairs.
pub const MAX_PLOTTED_STEPS: usize = 4000;

/// Most phase changes kept from the rows' phase column, for summaries that
/// list none: the same cap the VMM puts on the markers it keeps.
pub const MAX_ROW_PHASES: usize = crate::vmm::exit::MAX_KEPT_PHASES;

/// One step of the plot: one interval, or several merged.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotStep {
    /// Start of the first interval, seconds since the guest started.
    pub start_s: f64,
    /// End of the last interval (its `t_s`).
    pub t_s: f64,
    pub true_wss_pages: u64,
    pub true_wss_write_pages: u64,
    /// The finite values only: `None` where no interval had one.
    pub est_wss_pages: Option<f64>,
    pub est_lo_pages: Option<f64>,
    pub est_hi_pages: Option<f64>,
    pub policy_wss_pages: Option<f64>,
    pub faults: u64,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// The larger (`f` = max) or smaller (min) of two optional values.
fn envelope(a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl PlotStep {
    /// The step of one row.
    pub fn of(row: &Row) -> PlotStep {
        PlotStep {
            start_s: row.t_s - row.interval_s,
            t_s: row.t_s,
            true_wss_pages: row.true_wss_pages,
            true_wss_write_pages: row.true_wss_write_pages,
            est_wss_pages: finite(row.est_wss_pages),
            est_lo_pages: finite(row.est_lo_pages),
            est_hi_pages: finite(row.est_hi_pages),
            policy_wss_pages: finite(row.policy_wss_pages),
            faults: row.faults,
        }
    }

    /// Widens this step over `next`, the step right after it.
    fn merge(&mut self, next: &PlotStep) {
        self.t_s = next.t_s;
        self.true_wss_pages = self.true_wss_pages.max(next.true_wss_pages);
        self.true_wss_write_pages = self.true_wss_write_pages.max(next.true_wss_write_pages);
        self.est_wss_pages = envelope(self.est_wss_pages, next.est_wss_pages, f64::max);
        self.est_lo_pages = envelope(self.est_lo_pages, next.est_lo_pages, f64::min);
        self.est_hi_pages = envelope(self.est_hi_pages, next.est_hi_pages, f64::max);
        self.policy_wss_pages = envelope(self.policy_wss_pages, next.policy_wss_pages, f64::max);
        self.faults = self.faults.max(next.faults);
    }
}

/// The run's rows decimated to at most a fixed number of steps, and the
/// phase changes its phase column shows.
#[derive(Debug, Clone)]
pub struct PlotSeries {
    cap: usize,
    steps: Vec<PlotStep>,
    /// Rows per step, a power of two; the last step may hold fewer.
    width: usize,
    /// Rows in the last step.
    last_fill: usize,
    /// The last row's end and phase.
    last: Option<(f64, u64)>,
    phase_changes: Vec<Phase>,
    phase_changes_dropped: u64,
}

impl Default for PlotSeries {
    fn default() -> Self {
        PlotSeries::with_cap(MAX_PLOTTED_STEPS)
    }
}

impl PlotSeries {
    /// An empty series of at most `cap` steps (at least 2, rounded down to
    /// an even number).
    pub fn with_cap(cap: usize) -> Self {
        PlotSeries {
            cap: (cap.max(2) / 2) * 2,
            steps: Vec::new(),
            width: 1,
            last_fill: 0,
            last: None,
            phase_changes: Vec::new(),
            phase_changes_dropped: 0,
        }
    }

    /// The series of `rows`, pushed in order.
    pub fn of_rows(rows: &[Row]) -> Self {
        let mut series = PlotSeries::default();
        rows.iter().for_each(|r| series.push(r));
        series
    }

    /// Adds the next row of the run.
    pub fn push(&mut self, row: &Row) {
        if let Some((t_s, phase)) = self.last
            && phase != row.phase
        {
            // The change happened during the first interval showing the new
            // marker, so it is drawn at that interval's start.
            if self.phase_changes.len() < MAX_ROW_PHASES {
                self.phase_changes.push(Phase {
                    t_s,
                    marker: row.phase,
                });
            } else {
                self.phase_changes_dropped += 1;
            }
        }
        self.last = Some((row.t_s, row.phase));
        let step = PlotStep::of(row);
        match self.steps.last_mut() {
            Some(last) if self.last_fill < self.width => {
                last.merge(&step);
                self.last_fill += 1;
                return;
            }
            _ => {}
        }
        if self.steps.len() == self.cap {
            self.halve();
        }
        self.steps.push(step);
        self.last_fill = 1;
    }

    /// Merges neighbouring pairs of steps; every step is whole (a new row
    /// was about to start one), so the merged ones are whole too.
    fn halve(&mut self) {
        let merged = self
            .steps
            .chunks(2)
            .map(|pair| {
                let mut step = pair[0].clone();
                if let Some(next) = pair.get(1) {
                    step.merge(next);
                }
                step
            })
            .collect();
        self.steps = merged;
        self.width *= 2;
        self.last_fill = self.width;
    }

    /// The steps, in time order.
    pub fn steps(&self) -> &[PlotStep] {
        &self.steps
    }

    /// Intervals per step (the last step may hold fewer).
    pub fn intervals_per_step(&self) -> usize {
        self.width
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The changes of the phase column, at most [`MAX_ROW_PHASES`] of them.
    pub fn phase_changes(&self) -> &[Phase] {
        &self.phase_changes
    }

    /// Phase changes past that cap: counted, not kept.
    pub fn phase_changes_dropped(&self) -> u64 {
        self.phase_changes_dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let mut r = row(
                    (i + 1) as f64 * 0.1,
                    (i as u64 * 37) % 101,
                    (i % 5 != 0).then(|| (i * 13 % 97) as f64),
                );
                r.interval_s = 0.1;
                r.faults = (i as u64 * 7) % 23;
                r.phase = (i / 10) as u64;
                if i % 11 == 3 {
                    r.est_wss_pages = Some(f64::NAN);
                }
                r
            })
            .collect()
    }

    /// The rows cut into chunks of `width` and each merged: what the
    /// series must hold.
    fn chunked(rows: &[Row], width: usize) -> Vec<PlotStep> {
        rows.chunks(width)
            .map(|chunk| {
                let mut step = PlotStep::of(&chunk[0]);
                chunk[1..].iter().for_each(|r| step.merge(&PlotStep::of(r)));
                step
            })
            .collect()
    }

    #[test]
    fn a_run_within_the_cap_keeps_every_row_as_it_is() {
        let rows = rows(8);
        let s = {
            let mut s = PlotSeries::with_cap(8);
            rows.iter().for_each(|r| s.push(r));
            s
        };
        assert_eq!(s.intervals_per_step(), 1);
        assert_eq!(s.steps(), chunked(&rows, 1).as_slice());
        assert_eq!(s.steps()[3].est_wss_pages, None, "NaN is no value");
        assert_eq!(s.steps()[1].start_s, rows[1].t_s - rows[1].interval_s);
    }

    #[test]
    fn a_full_series_halves_and_equals_the_rows_in_chunks() {
        for n in 0..200 {
            let rows = rows(n);
            let mut s = PlotSeries::with_cap(8);
            rows.iter().for_each(|r| s.push(r));
            // The smallest power-of-two width that fits n rows in 8 steps.
            let mut width = 1;
            while n.div_ceil(width) > 8 {
                width *= 2;
            }
            assert_eq!(s.intervals_per_step(), width, "{n} rows");
            assert_eq!(s.steps(), chunked(&rows, width).as_slice(), "{n} rows");
            assert!(s.steps().len() <= 8);
        }
    }

    #[test]
    fn merged_steps_keep_the_envelope() {
        let mut rows = rows(40);
        rows[17].true_wss_pages = 9999;
        rows[17].est_lo_pages = Some(-5.0);
        rows[18].faults = 777;
        let mut s = PlotSeries::with_cap(4);
        rows.iter().for_each(|r| s.push(r));
        assert_eq!(s.intervals_per_step(), 16);
        let step = &s.steps()[1];
        assert_eq!((step.start_s, step.t_s), (rows[16].t_s - 0.1, rows[31].t_s));
        assert_eq!(step.true_wss_pages, 9999);
        assert_eq!(step.est_lo_pages, Some(-5.0));
        assert_eq!(step.faults, 777);
        // The partial last step spans the rows it has.
        assert_eq!(s.steps()[2].t_s, rows[39].t_s);
    }

    #[test]
    fn phase_changes_are_kept_up_to_the_cap_and_counted_past_it() {
        let s = PlotSeries::of_rows(&rows(35));
        // Phases 0..=3 change at rows 10, 20 and 30, drawn at their start.
        assert_eq!(
            s.phase_changes()
                .iter()
                .map(|p| p.marker)
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(s.phase_changes()[0].t_s, 1.0);
        let mut flip: Vec<Row> = rows(MAX_ROW_PHASES + 10);
        for (i, r) in flip.iter_mut().enumerate() {
            r.phase = i as u64;
        }
        let s = PlotSeries::of_rows(&flip);
        assert_eq!(s.phase_changes().len(), MAX_ROW_PHASES);
        assert_eq!(s.phase_changes_dropped(), 9);
        assert!(s.steps().len() <= MAX_PLOTTED_STEPS);
    }
}
