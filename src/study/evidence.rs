//! Readings of the runs that several sections of the document share: the
//! sampling error, the start-up memory of ESX, the fitted cost per fault.
//! Each is defined once here and used by every section that cites it.

use super::execute::Results;
use super::figures::{REACH_DOWN, STEP, compared_truth, fitted_cost_us, relative_bias};
use super::format::{count, opt, pct, signed_pct};
use super::plan::{Plan, Spec};
pub use crate::analysis::stats::median;
use crate::estimate::EsxGains;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::track::TrackerKind;

/// Per-access costs on this kind of machine, as the project's host notes
/// (/work/shared/kvm-host-notes.md) report them from their own probes;
/// quoted, not measured by the study.
pub const HOST_NOTES_US: [(TrackerKind, &str); 3] = [
    (TrackerKind::Mprotect, "~850 µs"),
    (TrackerKind::Uffd, "~300 µs"),
    (TrackerKind::DirtyLog, "~45 µs"),
];
/// The host notes' expectation for bare-metal VT-x hosts.
pub const HOST_NOTES_BARE_METAL: &str = "10-100x lower";

/// standard error of one interval's binomial estimate of a fraction `p`
/// of the domain from `n` samples, relative to `p`.
pub fn sampling_error(truth_pages: f64, domain_pages: u64, n: u64) -> Option<f64> {
    let big_n = domain_pages as f64;
    let p = truth_pages / big_n;
    (p > 0.0 && n > 0 && big_n > 0.0).then(|| ((1.0 - p.min(1.0)) / (n as f64 * p)).sqrt())
}

/// Intervals the slow average of ESX needs to fall from `from` pages to
/// `REACH_DOWN` of `to` (the shrink-lag criterion) with gain `g`, when it
/// starts at `from`: the smallest k with (from - to)(1 - g)^k <= (REACH_DOWN - 1) to.
pub fn expected_shrink_lag(from: f64, to: f64, g: f64) -> Option<f64> {
    if !(to > 0.0 && g > 0.0 && g <= 1.0) {
        return None;
    }
    let slack = REACH_DOWN - 1.0;
    if from <= to * REACH_DOWN {
        return Some(0.0);
    }
    if g >= 1.0 {
        return Some(1.0);
    }
    Some(((slack * to / (from - to)).ln() / (1.0 - g).ln()).ceil())
}

/// The largest drop between consecutive scored intervals of a run, as
/// (pages before, pages after).
pub fn largest_drop(rows: &[Row], warmup: usize) -> Option<(f64, f64)> {
    let scored: Vec<f64> = rows
        .iter()
        .skip(warmup)
        .filter(|r| r.full)
        .map(|r| r.true_wss_pages as f64)
        .collect();
    scored
        .windows(2)
        .filter(|w| w[1] > 0.0 && w[1] <= (1.0 - STEP) * w[0])
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)))
}

/// A run whose warm-up saw many more armed pages touched than the rest of
/// it, while its estimate stayed above the truth: ESX's slow average still
/// remembers the start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupMemory {
    /// Largest touched fraction of the armed pages during warm-up.
    pub first_fraction: f64,
    /// Median touched fraction over the scored intervals.
    pub later_fraction: f64,
    /// True pages of the first interval, and the mean over scored ones.
    pub first_truth: f64,
    pub mean_truth: f64,
    /// Intervals the slow average needs to forget the start.
    pub intervals: f64,
}

/// Finds a start-up memory in an ESX run (see [`StartupMemory`]).
pub fn startup_memory(rows: &[Row], s: &Summary, slow_gain: f64) -> Option<StartupMemory> {
    if s.estimator != Some(crate::estimate::EstimatorKind::Esx) {
        return None;
    }
    let fraction =
        |r: &Row| (r.sampled_pages > 0).then(|| r.touched_samples as f64 / r.sampled_pages as f64);
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(0).max(1);
    let first = rows
        .iter()
        .take(warmup)
        .filter_map(fraction)
        .reduce(f64::max)?;
    let later: Vec<f64> = rows
        .iter()
        .skip(warmup)
        .filter(|r| r.full)
        .filter_map(fraction)
        .collect();
    let later = median(later.iter().copied())?;
    let truth = compared_truth(s);
    let bias = s.bias_pages?;
    if !(truth > 0.0 && first >= (1.0 + STEP) * later && bias > 0.05 * truth) {
        return None;
    }
    Some(StartupMemory {
        first_fraction: first,
        later_fraction: later,
        first_truth: rows.first()?.true_wss_pages as f64,
        mean_truth: s.true_wss_mean_pages,
        intervals: expected_shrink_lag(first, later, slow_gain)?,
    })
}

/// Intervals a run's metrics were computed over (full rows after warm-up).
pub fn scored_intervals(rows: &[Row], s: &Summary) -> usize {
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(usize::MAX);
    rows.iter().skip(warmup).filter(|r| r.full).count()
}

/// The sentence explaining a start-up memory, if the run shows one.
/// `agile` names the section that weighs the slow release (e.g. "section 4").
pub fn startup_sentence(rows: &[Row], s: &Summary, gains: EsxGains, agile: &str) -> Option<String> {
    let m = startup_memory(rows, s, gains.slow)?;
    let cause = if m.first_truth >= (1.0 + STEP) * m.mean_truth {
        format!(
            "because the program's set-up touched {} pages in the first interval against {} \
             per interval afterwards",
            count(m.first_truth),
            count(m.mean_truth)
        )
    } else {
        "although the truth was no higher then: the tracker itself reported more touches at \
         the start"
            .to_string()
    };
    Some(format!(
        "during warm-up the tracker saw up to {} of the armed pages touched against {} later, \
         {cause}; ESX's slow average (gain {}) needs {} intervals to forget that, and the run \
         scored {}, so the estimate stays high (bias {}). This is ESX's deliberately slow \
         release of a shrunken working set ({agile}), not the access pattern.",
        pct(m.first_fraction),
        pct(m.later_fraction),
        gains.slow,
        count(m.intervals),
        scored_intervals(rows, s),
        opt(relative_bias(s), signed_pct)
    ))
}

/// The fitted cost per tracked fault of tracker `t` over the sampled cost
/// runs of `plan`, in µs: steady slowdown against steady tracked faults
/// per second, so that one-time costs (boot, uffd's first-touch fill) do
/// not count as the cost of faults.
pub fn fitted_for(plan: &Plan, results: &Results, t: TrackerKind) -> Option<f64> {
    let pts: Vec<(f64, f64)> = plan
        .efficient
        .sampled
        .iter()
        .filter(|x| x.tracker == t)
        .filter_map(|sp| results.summary(sp))
        .filter_map(|g| Some((g.steady_faults_per_s?, g.steady_slowdown?)))
        .collect();
    fitted_cost_us(&pts)
}

/// The isolated touch cost of `t` measured side by side with its sampled
/// cost runs: the median of the `fault_cost_us` each run calibrated in
/// its own process just before its guest started (same placement, same
/// moment of the host's load).
pub fn calibrated_for(plan: &Plan, results: &Results, t: TrackerKind) -> Option<f64> {
    crate::analysis::stats::median(
        plan.efficient
            .sampled
            .iter()
            .filter(|x| x.tracker == t)
            .filter_map(|sp| results.summary(sp)?.fault_cost_us),
    )
}

/// A tracker counter summed over runs.
pub fn counter_sum<'a>(runs: impl Iterator<Item = &'a Summary>, name: &str) -> u64 {
    runs.filter_map(|s| s.tracker_stats.mechanism.get(name).copied())
        .sum()
}

/// The ESX gains of a run, the default when there is none.
pub fn sp_gains(spec: Option<&Spec>) -> EsxGains {
    spec.map_or_else(EsxGains::default, |s| s.gains)
}
/// `s` with its first letter in upper case.
pub fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    #[test]
    fn sampling_error_follows_the_binomial() {
        // p = 0.25, n = 400: sqrt(0.75 / 100) = 0.0866.
        let e = sampling_error(250.0, 1000, 400).unwrap();
        assert!((e - 0.075f64.sqrt() / 10f64.sqrt()).abs() < 1e-12, "{e}");
        assert_eq!(sampling_error(0.0, 1000, 400), None);
        assert_eq!(sampling_error(10.0, 0, 400), None);
        assert_eq!(sampling_error(1000.0, 1000, 400), Some(0.0));
    }

    #[test]
    fn shrink_lag_from_the_slow_gain() {
        // From 4x to x with g = 0.125: 3 * 0.875^k <= 0.1 -> k = 26.
        assert_eq!(expected_shrink_lag(400.0, 100.0, 0.125), Some(26.0));
        // g = 0.5: 3 * 0.5^k <= 0.1 -> k = 5.
        assert_eq!(expected_shrink_lag(400.0, 100.0, 0.5), Some(5.0));
        assert_eq!(expected_shrink_lag(400.0, 100.0, 1.0), Some(1.0));
        // Already within 10%.
        assert_eq!(expected_shrink_lag(105.0, 100.0, 0.125), Some(0.0));
        assert_eq!(expected_shrink_lag(100.0, 0.0, 0.125), None);
    }

    #[test]
    fn largest_drop_is_found_after_warmup() {
        let rows: Vec<Row> = [1000u64, 100, 800, 800, 200, 200, 100]
            .iter()
            .enumerate()
            .map(|(i, &t)| row(i as f64 + 1.0, t, Some(t as f64)))
            .collect();
        // With the first row skipped, the 1000 -> 100 drop is gone; 800 ->
        // 200 (4x) beats 200 -> 100 (2x).
        assert_eq!(largest_drop(&rows, 1), Some((800.0, 200.0)));
        assert_eq!(largest_drop(&rows, 0), Some((1000.0, 100.0)));
        assert_eq!(largest_drop(&rows[..2], 1), None);
    }

    #[test]
    fn startup_memory_needs_a_busy_warmup_and_a_high_estimate() {
        // chase: the set-up touches all 65536 pages (half the domain), then
        // 32768 per interval (a quarter).
        let with = |truth: u64, touched: u64| {
            let mut r = row(0.0, truth, Some(50000.0));
            r.sampled_pages = 400;
            r.touched_samples = touched;
            r
        };
        let mut rows = vec![with(65536, 200), with(32768, 100)];
        rows.extend((0..6).map(|_| with(32768, 100)));
        let s = Summary {
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            true_wss_mean_pages: 32768.0,
            bias_pages: Some(17232.0),
            warmup_intervals: 2,
            compared_against: crate::analysis::accuracy::TruthColumn::All,
            ..Summary::default()
        };
        // 0.25 * 0.875^k <= 0.025 -> k = 18.
        let m = startup_memory(&rows, &s, 0.125).unwrap();
        assert_eq!((m.first_fraction, m.later_fraction), (0.5, 0.25));
        assert_eq!(m.intervals, 18.0);
        assert_eq!(scored_intervals(&rows, &s), 6);
        let text = startup_sentence(&rows, &s, EsxGains::default(), "section 4").unwrap();
        assert!(text.contains("set-up touched 65536 pages"), "{text}");
        assert!(text.contains("needs 18 intervals"), "{text}");
        // The tracker, not the truth, was high at the start.
        rows[0].true_wss_pages = 32768;
        let text = startup_sentence(&rows, &s, EsxGains::default(), "section 4").unwrap();
        assert!(text.contains("the tracker itself reported more"), "{text}");
        // No memory when the estimate is not high, for another estimator,
        // or when the warm-up was not busier.
        let unbiased = Summary {
            bias_pages: Some(100.0),
            ..s.clone()
        };
        assert_eq!(startup_memory(&rows, &unbiased, 0.125), None);
        let damon = Summary {
            estimator: Some(crate::estimate::EstimatorKind::Damon),
            ..s.clone()
        };
        assert_eq!(startup_memory(&rows, &damon, 0.125), None);
        rows[0].touched_samples = 110;
        rows[1].touched_samples = 110;
        assert_eq!(startup_memory(&rows, &s, 0.125), None);
    }
}
