//! Figures derived from a run's summary: rates, costs and the mean truth
//! errors are relative to. Each is defined once here; the sweep, the study
//! and `run`'s table call these instead of dividing fields themselves.

use super::accuracy::TruthColumn;
use crate::report::summary::Summary;

/// Tracked faults per second of the run's wall time.
///
/// The rule: `None` when the run had no tracker (`tracked_faults` is
/// `None`: there was no fault rate, and a 0 would make an untracked run
/// look like the cheapest setting), and `None` when the run has no
/// positive, finite length (a rate over no time is undefined, not
/// infinite). Otherwise faults / `duration_s`, 0 for a tracker that caught
/// nothing.
pub fn faults_per_s(s: &Summary) -> Option<f64> {
    let faults = s.tracked_faults?;
    (s.duration_s.is_finite() && s.duration_s > 0.0).then(|| faults as f64 / s.duration_s)
}

/// A count per second of a run's length; 0 over no time (a run that did
/// not start has no throughput, and must not print as infinite).
pub fn per_second(count: u64, secs: f64) -> f64 {
    if secs.is_finite() && secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Fraction of guest throughput lost against an untracked baseline:
/// `1 - ops_per_s / baseline_ops_per_s`. `None` when the baseline did no
/// work (nothing to compare against).
pub fn slowdown(ops_per_s: f64, baseline_ops_per_s: f64) -> Option<f64> {
    (baseline_ops_per_s > 0.0).then(|| 1.0 - ops_per_s / baseline_ops_per_s)
}

/// The counter a tracker bumps for each page it filled at the guest's
/// first touch (uffd: a hole of the memfd filled with `UFFDIO_ZEROPAGE`,
/// see `track::uffd`). Trackers without it fill nothing: the kernel does,
/// as without tracking.
pub const FIRST_TOUCH_COUNTER: &str = "zero_filled_pages";

/// Pages the run's tracker filled at their first touch; `None` for a
/// tracker that does not fill pages (or no tracker).
pub fn first_touch_pages(s: &Summary) -> Option<u64> {
    s.tracker_stats.mechanism.get(FIRST_TOUCH_COUNTER).copied()
}

/// Guest time lost once rather than per interval, seconds: the whole
/// run's loss (`slowdown × duration_s`, in seconds of the untracked
/// twin's pace) less what the steady loss (`steady_slowdown`) accounts
/// for over the same length. What is left happened before the scored
/// intervals: boot, and pages first touched through the tracker. `None`
/// without both slowdowns or a length.
pub fn one_time_lost_s(
    slowdown: Option<f64>,
    steady_slowdown: Option<f64>,
    duration_s: f64,
) -> Option<f64> {
    let (whole, steady) = slowdown.zip(steady_slowdown)?;
    (duration_s.is_finite() && duration_s > 0.0).then_some((whole - steady) * duration_s)
}

/// The one-time loss spread over the pages first touched through the
/// tracker, µs per page: what a first touch costs the guest beyond the
/// untracked twin's own first touch. An upper bound: the one-time loss
/// holds anything else that happened once. `None` without a loss or
/// without such pages.
pub fn first_touch_us_per_page(one_time_lost_s: Option<f64>, pages: Option<u64>) -> Option<f64> {
    let pages = pages.filter(|&p| p > 0)?;
    one_time_lost_s.map(|lost| lost * 1e6 / pages as f64)
}

/// Guest time lost per tracked fault in steady state, µs: the steady
/// slowdown over the tracked faults per second of the scored intervals.
/// Unlike [`guest_us_per_fault`] it leaves out the warm-up, where a
/// tracker may pay for first touches that are not tracked faults. `None`
/// without a steady slowdown or without faults.
pub fn steady_guest_us_per_fault(s: &Summary) -> Option<f64> {
    let f = s.steady_faults_per_s.filter(|f| *f > 0.0)?;
    s.steady_slowdown.map(|sl| sl / f * 1e6)
}

/// The slowdown to hold against a slowdown budget, by how the guest runs.
/// An unpaced guest is CPU-bound: the steady slowdown is what tracking
/// costs it per interval, the first-touch fill left out as the one-time
/// cost it is. A paced guest has slack: it waits for its schedule, and
/// catches up after a stall, so its steady throughput is its rate plus
/// any catching up (below zero after a slow warm-up). For it the
/// whole-run slowdown is the right one: the share of its scheduled work
/// still not done at the end, 0 as long as tracking fits in its idle time.
pub fn budget_slowdown(s: &Summary, paced: bool) -> Option<f64> {
    if paced { s.slowdown } else { s.steady_slowdown }
}

/// Sampler time per armed page, µs: arming it and disarming it at collect.
/// `None` when nothing was armed.
pub fn sampler_us_per_armed_page(
    arm_us_total: f64,
    collect_us_total: f64,
    armed_pages: u64,
) -> Option<f64> {
    (armed_pages > 0).then(|| (arm_us_total + collect_us_total) / armed_pages as f64)
}

/// Guest time lost per armed page, µs: the slowdown's share of the run's
/// time spread over the pages armed in it. `None` without a slowdown or
/// with nothing armed.
pub fn guest_us_per_armed_page(
    slowdown: Option<f64>,
    duration_s: f64,
    armed_pages: u64,
) -> Option<f64> {
    slowdown
        .filter(|_| armed_pages > 0)
        .map(|sl| sl * duration_s * 1e6 / armed_pages as f64)
}

/// The slowdown that arming alone costs at `pages` armed per `interval_s`
/// when each armed page costs the guest `us_per_page`: the inverse of
/// [`guest_us_per_armed_page`] (time lost over time run).
pub fn slowdown_of_arming(us_per_page: f64, pages: u64, interval_s: f64) -> Option<f64> {
    (interval_s > 0.0).then(|| us_per_page * pages as f64 / (interval_s * 1e6))
}

/// Guest time lost per tracked fault, µs: the share of the guest's time
/// lost, spread over the faults of one second. `None` without a slowdown
/// or without faults.
pub fn guest_us_per_fault(s: &Summary) -> Option<f64> {
    let f = faults_per_s(s).filter(|f| *f > 0.0)?;
    s.slowdown.map(|sl| sl / f * 1e6)
}

/// The mean truth the run's errors were measured against (written pages
/// for a dirty-log run, all touched pages otherwise).
pub fn compared_truth(s: &Summary) -> f64 {
    match s.compared_against {
        TruthColumn::Writes => s.true_wss_write_mean_pages,
        TruthColumn::All => s.true_wss_mean_pages,
    }
}

/// Bias as a fraction of the mean truth it was measured against; `None`
/// without a bias or with no truth to divide by.
pub fn relative_bias(s: &Summary) -> Option<f64> {
    let truth = compared_truth(s);
    s.bias_pages.filter(|_| truth > 0.0).map(|b| b / truth)
}

/// Whether the run's working set grew but the estimate never caught up
/// with any growth: growth events were seen, none resolved. Such a run
/// fails any lag target, while a run without growth passes it.
pub fn lag_up_unresolved(s: &Summary) -> bool {
    growth_unresolved(s.lag_up_intervals, s.lag_up_events)
}

/// The rule of [`lag_up_unresolved`] on its two inputs: the mean lag up
/// (`None` when no growth was caught) and the growth events seen.
pub fn growth_unresolved(lag_up: Option<f64>, growth_events: u32) -> bool {
    lag_up.is_none() && growth_events > 0
}

/// Whether the working set shrank but the policy value never came down to
/// it: shrink events were seen (they depend on the truth only, so the
/// measurement's count is the policy's), none resolved by the policy.
pub fn policy_lag_down_unresolved(s: &Summary) -> bool {
    growth_unresolved(s.policy_lag_down_intervals, s.lag_down_events)
}

/// A lag in intervals, in seconds of the run's interval.
pub fn lag_s(lag_intervals: Option<f64>, s: &Summary) -> Option<f64> {
    lag_intervals.map(|l| l * s.interval_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_share_inverts_guest_time_per_armed_page() {
        // 2 us per page, 3200 pages per 100 ms: 6.4 ms of every 100 ms.
        let share = slowdown_of_arming(2.0, 3200, 0.1).unwrap();
        assert!((share - 0.064).abs() < 1e-12);
        // Back: that slowdown over 6 s with 60 intervals of 3200 pages.
        let per_page = guest_us_per_armed_page(Some(share), 6.0, 60 * 3200).unwrap();
        assert!((per_page - 2.0).abs() < 1e-9);
        assert_eq!(slowdown_of_arming(2.0, 3200, 0.0), None);
    }

    #[test]
    fn per_second_is_zero_over_no_time() {
        assert_eq!(per_second(500, 2.0), 250.0);
        assert_eq!(per_second(500, 0.0), 0.0);
        assert_eq!(per_second(500, f64::NAN), 0.0);
    }

    fn tracked(faults: u64, duration_s: f64) -> Summary {
        Summary {
            tracked_faults: Some(faults),
            duration_s,
            ..Summary::default()
        }
    }

    #[test]
    fn fault_rate_needs_a_tracker_and_a_length() {
        assert_eq!(faults_per_s(&tracked(1000, 20.0)), Some(50.0));
        assert_eq!(faults_per_s(&tracked(0, 20.0)), Some(0.0));
        assert_eq!(faults_per_s(&tracked(1000, 0.0)), None);
        assert_eq!(faults_per_s(&tracked(1000, f64::NAN)), None);
        let untracked = Summary {
            tracked_faults: None,
            duration_s: 20.0,
            ..Summary::default()
        };
        assert_eq!(faults_per_s(&untracked), None);
    }

    #[test]
    fn costs_from_slowdown_and_armed_pages() {
        assert!((slowdown(90.0, 100.0).unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(slowdown(90.0, 0.0), None);
        assert_eq!(sampler_us_per_armed_page(1200.0, 400.0, 4000), Some(0.4));
        assert_eq!(sampler_us_per_armed_page(1200.0, 400.0, 0), None);
        // 10% of 2 s is 200 ms lost, over 4000 armed pages: 50 µs each.
        let per_page = guest_us_per_armed_page(Some(0.1), 2.0, 4000).unwrap();
        assert!((per_page - 50.0).abs() < 1e-9);
        assert_eq!(guest_us_per_armed_page(None, 2.0, 4000), None);
        assert_eq!(guest_us_per_armed_page(Some(0.1), 2.0, 0), None);
        // 1% lost at 100 faults/s: 100 µs per fault.
        let mut s = tracked(2000, 20.0);
        s.slowdown = Some(0.01);
        assert!((guest_us_per_fault(&s).unwrap() - 100.0).abs() < 1e-9);
        s.tracked_faults = Some(0);
        assert_eq!(guest_us_per_fault(&s), None);
    }

    #[test]
    fn one_time_loss_is_what_the_steady_slowdown_leaves_unexplained() {
        // 35% of 14 s lost over the run, 10% of it steadily: 3.5 s once.
        let lost = one_time_lost_s(Some(0.35), Some(0.1), 14.0).unwrap();
        assert!((lost - 3.5).abs() < 1e-9);
        assert_eq!(one_time_lost_s(None, Some(0.1), 14.0), None);
        assert_eq!(one_time_lost_s(Some(0.35), None, 14.0), None);
        assert_eq!(one_time_lost_s(Some(0.35), Some(0.1), 0.0), None);
        // Over 70000 first-touched pages: 50 µs each.
        let per_page = first_touch_us_per_page(Some(lost), Some(70000)).unwrap();
        assert!((per_page - 50.0).abs() < 1e-9);
        assert_eq!(first_touch_us_per_page(Some(lost), Some(0)), None);
        assert_eq!(first_touch_us_per_page(Some(lost), None), None);
        assert_eq!(first_touch_us_per_page(None, Some(70000)), None);
        // The pages are the tracker's fill counter; none without it.
        let mut s = Summary::default();
        assert_eq!(first_touch_pages(&s), None);
        s.tracker_stats
            .mechanism
            .insert(FIRST_TOUCH_COUNTER.into(), 65537);
        assert_eq!(first_touch_pages(&s), Some(65537));
    }

    #[test]
    fn steady_cost_per_fault_and_the_slowdown_a_budget_holds() {
        let s = Summary {
            slowdown: Some(0.35),
            steady_slowdown: Some(0.01),
            steady_faults_per_s: Some(200.0),
            ..Summary::default()
        };
        // 1% at 200 faults/s: 50 µs each.
        assert!((steady_guest_us_per_fault(&s).unwrap() - 50.0).abs() < 1e-9);
        let idle = Summary {
            steady_faults_per_s: Some(0.0),
            ..s.clone()
        };
        assert_eq!(steady_guest_us_per_fault(&idle), None);
        assert_eq!(budget_slowdown(&s, true), Some(0.35));
        assert_eq!(budget_slowdown(&s, false), Some(0.01));
    }

    #[test]
    fn relative_bias_uses_the_compared_truth() {
        let mut s = Summary {
            bias_pages: Some(-50.0),
            true_wss_mean_pages: 1000.0,
            true_wss_write_mean_pages: 500.0,
            ..Summary::default()
        };
        assert_eq!(compared_truth(&s), 1000.0);
        assert_eq!(relative_bias(&s), Some(-0.05));
        s.compared_against = TruthColumn::Writes;
        assert_eq!(compared_truth(&s), 500.0);
        assert_eq!(relative_bias(&s), Some(-0.1));
        s.true_wss_write_mean_pages = 0.0;
        assert_eq!(relative_bias(&s), None);
    }

    #[test]
    fn lag_up_is_unresolved_only_with_growth_and_no_lag() {
        let mut s = Summary::default();
        assert!(!lag_up_unresolved(&s));
        s.lag_up_events = 2;
        assert!(lag_up_unresolved(&s));
        s.lag_up_intervals = Some(1.0);
        assert!(!lag_up_unresolved(&s));
        s.interval_s = 0.5;
        assert_eq!(lag_s(s.lag_up_intervals, &s), Some(0.5));
        assert!(!policy_lag_down_unresolved(&s));
        s.lag_down_events = 3;
        assert!(policy_lag_down_unresolved(&s));
        s.policy_lag_down_intervals = Some(19.0);
        assert!(!policy_lag_down_unresolved(&s));
    }
}
