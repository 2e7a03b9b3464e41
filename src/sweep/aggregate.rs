//! Results per setting, averaged over its repeats, and the choice of the
//! setting to recommend.

use serde::Serialize;

use super::{RunRecord, Setting, Targets, is_counted};
use crate::analysis::derived::{faults_per_s, lag_up_unresolved, relative_bias};
use crate::analysis::format::{opt_percent, percent};
use crate::analysis::recommend::{Scored, choose};
use crate::analysis::stats::mean;
use crate::report::summary::Summary;

/// A setting's results, averaged over its counted runs. Each mean is over
/// the runs that measured it, `None` when none did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    #[serde(flatten)]
    pub setting: Setting,
    /// Runs that finished (counted or not).
    pub finished: usize,
    /// Runs that ran their course and are averaged here.
    pub runs: usize,
    pub mape: Option<f64>,
    pub bias_pages: Option<f64>,
    /// Bias as a fraction of the mean truth it was measured against.
    pub bias: Option<f64>,
    /// Mean over the runs that measured a lag.
    pub lag_up_intervals: Option<f64>,
    /// Runs whose truth grew but whose estimate never caught up.
    pub lag_up_unresolved_runs: usize,
    pub faults_per_s: Option<f64>,
    pub fault_cost_us: Option<f64>,
    /// Fraction of guest throughput lost against the untracked twin.
    pub slowdown: Option<f64>,
    pub vmm_cpu_s: Option<f64>,
}

/// One aggregate per setting that has at least one finished run, in plan
/// order. `records` refer to `settings` by index.
pub fn aggregate(settings: &[Setting], records: &[RunRecord]) -> Vec<Aggregate> {
    settings
        .iter()
        .enumerate()
        .filter_map(|(i, setting)| {
            let finished: Vec<&RunRecord> = records.iter().filter(|r| r.setting == i).collect();
            if finished.is_empty() {
                return None;
            }
            let counted: Vec<&RunRecord> = finished
                .iter()
                .copied()
                .filter(|r| is_counted(&r.summary))
                .collect();
            let runs: Vec<&Summary> = counted.iter().map(|r| &r.summary).collect();
            let each = |f: &dyn Fn(&Summary) -> Option<f64>| mean(runs.iter().filter_map(|s| f(s)));
            Some(Aggregate {
                setting: *setting,
                finished: finished.len(),
                runs: runs.len(),
                mape: each(&|s| s.mape),
                bias_pages: each(&|s| s.bias_pages),
                bias: each(&relative_bias),
                lag_up_intervals: each(&|s| s.lag_up_intervals),
                lag_up_unresolved_runs: runs.iter().filter(|s| lag_up_unresolved(s)).count(),
                faults_per_s: each(&faults_per_s),
                fault_cost_us: each(&|s| s.fault_cost_us),
                slowdown: each(&|s| s.slowdown),
                // A replay ran no VMM: its CPU time is unknown, not 0.
                vmm_cpu_s: mean(
                    counted
                        .iter()
                        .filter(|r| !r.replayed)
                        .map(|r| r.summary.vmm_cpu_s),
                ),
            })
        })
        .collect()
}

impl Aggregate {
    /// What the recommendation rule judges: a setting without counted runs
    /// has no MAPE, so it never qualifies.
    pub fn scored(&self) -> Scored {
        Scored {
            mape: self.mape.filter(|_| self.runs > 0),
            lag_up: self.lag_up_intervals,
            lag_up_unresolved: self.lag_up_unresolved_runs > 0,
            faults_per_s: self.faults_per_s,
            interval_s: self.setting.interval.as_secs_f64(),
            slowdown: self.slowdown,
        }
    }
}

/// True when `a` meets both targets (the rule of
/// [`crate::analysis::recommend`]).
pub fn meets(a: &Aggregate, t: &Targets) -> bool {
    a.scored().qualifies(t)
}

/// The outcome of a sweep: the setting the rule of
/// [`crate::analysis::recommend`] picks, or, when none qualifies, the
/// most accurate one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub targets: Targets,
    /// The cheapest setting (fewest tracked faults per second) meeting both
    /// targets.
    pub recommended: Option<Aggregate>,
    /// When none qualifies: the setting with the lowest mean MAPE.
    pub most_accurate: Option<Aggregate>,
    /// The line printed after the table.
    pub message: String,
}

/// ", slowdown < 1.0%" for a slowdown budget, nothing without one: the
/// tail of the targets as the sweep's outputs spell them.
pub fn budget_clause(targets: &Targets) -> String {
    targets
        .max_slowdown
        .map_or(String::new(), |b| format!(", slowdown < {}", percent(b)))
}

/// Picks the recommendation with the one rule shared with the study.
pub fn recommend(aggregates: &[Aggregate], targets: Targets) -> Recommendation {
    let scored: Vec<Scored> = aggregates.iter().map(Aggregate::scored).collect();
    let choice = choose(&scored, &targets);
    let recommended = choice.best.map(|i| aggregates[i].clone());
    let most_accurate = choice.closest.map(|i| aggregates[i].clone());
    let message = match (&recommended, &most_accurate) {
        (Some(a), _) => format!("recommendation: {} ({})", a.setting.args(), brief(a)),
        (None, Some(a)) => format!(
            "recommendation: none of the {} settings keeps mape < {} and lag up < {} \
             intervals{}; the most accurate is {} ({})",
            aggregates.len(),
            percent(targets.max_mape),
            targets.max_lag_up,
            budget_clause(&targets),
            a.setting.args(),
            brief(a)
        ),
        (None, None) => "recommendation: none: no completed run measured an estimate".to_string(),
    };
    Recommendation {
        targets,
        recommended,
        most_accurate,
        message,
    }
}

pub(super) fn lag_text(a: &Aggregate) -> String {
    if a.lag_up_unresolved_runs > 0 {
        "unresolved".to_string()
    } else {
        a.lag_up_intervals
            .map_or("no rise".to_string(), |l| format!("{l:.1}"))
    }
}

/// "mape 4.2%, lag up 1.0, 120 faults/s"
fn brief(a: &Aggregate) -> String {
    format!(
        "mape {}, lag up {}, {} faults/s",
        opt_percent(a.mape),
        lag_text(a),
        a.faults_per_s
            .map_or("-".to_string(), |f| format!("{f:.0}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fixtures::{TARGETS, agg, esx, record, summary};

    #[test]
    fn aggregates_average_counted_runs_only() {
        let settings = [esx(100, 500), esx(400, 500), esx(400, 1000)];
        let mut crashed = summary(0.9, Some(9.0), 9_000);
        crashed.end = crate::report::summary::EndKind::GuestCrash;
        let mut interrupted = summary(0.8, None, 100);
        interrupted.end = crate::report::summary::EndKind::Interrupted;
        let records = [
            record(0, 0, summary(0.10, Some(1.0), 1_000)),
            record(0, 1, summary(0.20, Some(2.0), 3_000)),
            record(0, 2, crashed),
            record(1, 0, interrupted),
        ];
        let aggs = aggregate(&settings, &records);
        // Setting 2 never ran.
        assert_eq!(aggs.len(), 2);
        let a = &aggs[0];
        assert_eq!((a.finished, a.runs), (3, 2));
        assert!((a.mape.unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(a.lag_up_intervals, Some(1.5));
        assert_eq!(a.faults_per_s, Some(200.0));
        assert_eq!(a.bias_pages, Some(-50.0));
        assert_eq!(a.bias, Some(-0.05));
        assert_eq!(a.fault_cost_us, Some(20.0));
        assert_eq!(a.vmm_cpu_s, Some(1.0));
        assert_eq!(a.slowdown, None);
        let b = &aggs[1];
        assert_eq!((b.finished, b.runs), (1, 0));
        assert_eq!((b.mape, b.faults_per_s), (None, None));
        assert!(!meets(b, &TARGETS));
    }

    #[test]
    fn lag_that_never_resolved_fails_but_no_rise_passes() {
        let settings = [esx(100, 500), esx(400, 500)];
        let mut unresolved = summary(0.05, None, 1_000);
        unresolved.lag_up_events = 2;
        let records = [
            record(0, 0, summary(0.05, None, 1_000)),
            record(0, 1, summary(0.05, None, 1_000)),
            record(1, 0, summary(0.05, Some(1.0), 2_000)),
            record(1, 1, unresolved),
        ];
        let aggs = aggregate(&settings, &records);
        assert_eq!(aggs[0].lag_up_intervals, None);
        assert_eq!(aggs[0].lag_up_unresolved_runs, 0);
        assert!(meets(&aggs[0], &TARGETS));
        assert_eq!(aggs[1].lag_up_intervals, Some(1.0));
        assert_eq!(aggs[1].lag_up_unresolved_runs, 1);
        assert!(!meets(&aggs[1], &TARGETS));
        assert_eq!(lag_text(&aggs[0]), "no rise");
        assert_eq!(lag_text(&aggs[1]), "unresolved");
    }

    #[test]
    fn recommends_the_cheapest_setting_meeting_both_targets() {
        let aggs = [
            agg(esx(800, 500), 0.02, Some(1.0), 800.0),
            // Cheapest, but too inaccurate.
            agg(esx(50, 1000), 0.30, Some(1.0), 50.0),
            // Cheap enough, accurate, but lags.
            agg(esx(100, 500), 0.05, Some(3.0), 100.0),
            // On the lag target exactly: fails (targets are strict bounds).
            agg(esx(200, 1000), 0.08, Some(2.0), 150.0),
            agg(esx(400, 1000), 0.08, Some(1.5), 200.0),
            // Same cost, less accurate: loses the tie.
            agg(esx(400, 250), 0.09, None, 200.0),
        ];
        let rec = recommend(&aggs, TARGETS);
        assert_eq!(
            rec.recommended.as_ref().map(|a| a.setting),
            Some(esx(400, 1000))
        );
        assert_eq!(rec.most_accurate, None);
        assert_eq!(
            rec.message,
            "recommendation: --tracker uffd --estimator esx --sample-pages 400 --interval 1s \
             (mape 8.0%, lag up 1.5, 200 faults/s)"
        );
        // A setting whose truth never rose passes the lag target.
        let rec = recommend(&aggs[5..], TARGETS);
        assert_eq!(rec.recommended.map(|a| a.setting), Some(esx(400, 250)));
        assert!(rec.message.contains("lag up no rise"), "{}", rec.message);
    }

    #[test]
    fn without_a_qualifying_setting_names_the_most_accurate() {
        let aggs = [
            agg(esx(50, 1000), 0.30, Some(1.0), 50.0),
            agg(esx(100, 500), 0.05, Some(3.0), 100.0),
            agg(esx(800, 500), 0.12, Some(1.0), 800.0),
        ];
        let rec = recommend(&aggs, TARGETS);
        assert_eq!(rec.recommended, None);
        assert_eq!(rec.most_accurate.map(|a| a.setting), Some(esx(100, 500)));
        assert!(
            rec.message.starts_with(
                "recommendation: none of the 3 settings keeps mape < 10.0% and lag up < 2 \
                 intervals; the most accurate is --tracker uffd --estimator esx --sample-pages \
                 100 --interval 500ms (mape 5.0%, lag up 3.0, 100 faults/s)"
            ),
            "{}",
            rec.message
        );
        let empty = recommend(&[], TARGETS);
        assert_eq!((empty.recommended, empty.most_accurate), (None, None));
        assert!(empty.message.contains("no completed run"));
    }

    #[test]
    fn a_slowdown_budget_passes_over_cheaper_settings_beyond_it() {
        let with = |n: u64, faults: f64, slowdown: Option<f64>| Aggregate {
            slowdown,
            ..agg(esx(n, 1000), 0.04, None, faults)
        };
        let aggs = [
            with(400, 50.0, Some(0.02)),
            with(200, 25.0, None),
            with(800, 100.0, Some(0.005)),
        ];
        let budget = Targets {
            max_mape: 0.05,
            max_slowdown: Some(0.01),
            ..TARGETS
        };
        let rec = recommend(&aggs, budget);
        assert_eq!(rec.recommended.map(|a| a.setting), Some(esx(800, 1000)));
        // Without a budget the cheapest wins, slowdown or not.
        let free = recommend(&aggs, TARGETS);
        assert_eq!(free.recommended.map(|a| a.setting), Some(esx(200, 1000)));
        let none = recommend(&aggs[..2], budget);
        assert!(
            none.message
                .contains("keeps mape < 5.0% and lag up < 2 intervals, slowdown < 1.0%;"),
            "{}",
            none.message
        );
        assert_eq!(budget_clause(&TARGETS), "");
    }
}
