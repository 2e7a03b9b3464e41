//! The one rule that picks a sampling setting to recommend, used by both
//! `kvm-wss sweep` (over settings averaged across repeats) and the study
//! (over the settings it ran per workload).
//!
//! A setting **qualifies** when
//! - its MAPE was measured and is strictly **below** `max_mape`, and
//! - its lag after growth is strictly **below** `max_lag_up` intervals, or
//!   there was no growth to lag behind; growth the estimate never caught up
//!   with fails, and
//! - with a slowdown budget (`max_slowdown`), its slowdown was measured
//!   (the run had an untracked twin) and is strictly **below** the budget.
//!
//! "Below", not "at most": a target is a bound the setting must beat, so a
//! setting exactly on it does not qualify (the study's text has always
//! said "below"; the sweep used to accept equality).
//!
//! Among qualifying settings the **recommended** one has the fewest tracked
//! faults per second (a setting without a fault rate costs the most); ties
//! go to the lower MAPE, then to the longer interval (fewer wake-ups of the
//! sampler), then to the earlier setting in the caller's order. When none
//! qualifies, the **closest** is the one with the lowest MAPE, ties broken
//! by cost, then interval, then order in the same way.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// What a recommended setting must beat. Serialised with the names the
/// sweep has always written to recommendation.json and sweep-plan.json.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// MAPE must be below this (a fraction, 0.1 = 10%).
    #[serde(rename = "mape")]
    pub max_mape: f64,
    /// Lag after growth must be below this many intervals.
    #[serde(rename = "lag_up")]
    pub max_lag_up: f64,
    /// With a budget, the slowdown must be measured and below this (a
    /// fraction, 0.01 = 1%); `None` for no budget (left out of the JSON,
    /// so files written without it read the same).
    #[serde(rename = "slowdown", default, skip_serializing_if = "Option::is_none")]
    pub max_slowdown: Option<f64>,
}

/// The targets of the study's recommendation table and the sweep's default
/// `--target-mape` / `--target-lag`.
pub const DEFAULT_TARGETS: Targets = Targets {
    max_mape: 0.1,
    max_lag_up: 2.0,
    max_slowdown: None,
};

/// What the rule needs to know about one setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Mean MAPE; `None` when nothing was scored.
    pub mape: Option<f64>,
    /// Mean lag after growth, intervals; `None` when none was resolved.
    pub lag_up: Option<f64>,
    /// Growth happened and was never caught (in any of its runs).
    pub lag_up_unresolved: bool,
    /// Tracked faults per second; `None` when there is no rate.
    pub faults_per_s: Option<f64>,
    /// The setting's interval, seconds.
    pub interval_s: f64,
    /// The guest's slowdown against its untracked twin, fraction; `None`
    /// when not measured. Judged only against a budget.
    pub slowdown: Option<f64>,
}

impl Scored {
    /// Accurate enough: a measured, finite MAPE below the target.
    pub fn accurate(&self, t: &Targets) -> bool {
        self.mape.is_some_and(|m| m.is_finite() && m < t.max_mape)
    }

    /// Agile enough: growth caught within the target, or no growth.
    pub fn agile(&self, t: &Targets) -> bool {
        !self.lag_up_unresolved && self.lag_up.is_none_or(|l| l < t.max_lag_up)
    }

    /// Within the slowdown budget: no budget, or a measured, finite
    /// slowdown below it.
    pub fn within_budget(&self, t: &Targets) -> bool {
        t.max_slowdown.is_none_or(|budget| {
            self.slowdown
                .is_some_and(|sl| sl.is_finite() && sl < budget)
        })
    }

    pub fn qualifies(&self, t: &Targets) -> bool {
        self.accurate(t) && self.agile(t) && self.within_budget(t)
    }

    fn cost(&self) -> f64 {
        self.faults_per_s
            .filter(|f| !f.is_nan())
            .unwrap_or(f64::INFINITY)
    }

    fn error(&self) -> f64 {
        self.mape.filter(|m| !m.is_nan()).unwrap_or(f64::INFINITY)
    }

    /// Longer intervals first.
    fn interval_order(&self, other: &Scored) -> Ordering {
        other.interval_s.total_cmp(&self.interval_s)
    }
}

/// The rule's outcome, as indices into the settings given to [`choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The recommended setting.
    pub best: Option<usize>,
    /// With none qualifying: the most accurate setting that has a MAPE.
    pub closest: Option<usize>,
    /// How many settings qualified.
    pub qualified: usize,
}

/// Applies the rule (see the module notes) to `settings`.
pub fn choose(settings: &[Scored], targets: &Targets) -> Choice {
    // `min_by` keeps the first of equal elements: ties end in input order.
    let qualifying: Vec<usize> = (0..settings.len())
        .filter(|&i| settings[i].qualifies(targets))
        .collect();
    let best = qualifying.iter().copied().min_by(|&a, &b| {
        let (a, b) = (&settings[a], &settings[b]);
        a.cost()
            .total_cmp(&b.cost())
            .then(a.error().total_cmp(&b.error()))
            .then(a.interval_order(b))
    });
    let closest = match best {
        Some(_) => None,
        None => (0..settings.len())
            .filter(|&i| settings[i].mape.is_some_and(|m| !m.is_nan()))
            .min_by(|&a, &b| {
                let (a, b) = (&settings[a], &settings[b]);
                a.error()
                    .total_cmp(&b.error())
                    .then(a.cost().total_cmp(&b.cost()))
                    .then(a.interval_order(b))
            }),
    };
    Choice {
        best,
        closest,
        qualified: qualifying.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(faults: f64, mape: Option<f64>, lag: Option<f64>, interval_s: f64) -> Scored {
        Scored {
            mape,
            lag_up: lag,
            lag_up_unresolved: false,
            faults_per_s: Some(faults),
            interval_s,
            slowdown: None,
        }
    }

    #[test]
    fn targets_are_strict_bounds() {
        let t = DEFAULT_TARGETS;
        assert!(s(1.0, Some(0.099), Some(1.9), 1.0).qualifies(&t));
        assert!(!s(1.0, Some(0.1), Some(0.0), 1.0).qualifies(&t));
        assert!(!s(1.0, Some(0.05), Some(2.0), 1.0).qualifies(&t));
        assert!(!s(1.0, None, Some(0.0), 1.0).qualifies(&t));
        assert!(!s(1.0, Some(f64::NAN), None, 1.0).qualifies(&t));
        // No growth: nothing to lag behind.
        assert!(s(1.0, Some(0.05), None, 1.0).qualifies(&t));
        let mut unresolved = s(1.0, Some(0.05), None, 1.0);
        unresolved.lag_up_unresolved = true;
        assert!(!unresolved.qualifies(&t));
        // Serialised under the sweep's historical names.
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"mape":0.1,"lag_up":2.0}"#
        );
    }

    #[test]
    fn cheapest_qualifying_wins_and_ties_go_to_mape_interval_order() {
        let xs = [
            s(400.0, Some(0.02), Some(0.0), 1.0),
            s(50.0, Some(0.08), Some(1.0), 0.5),
            s(12.0, Some(0.25), Some(1.0), 1.0),
            s(50.0, Some(0.05), Some(1.0), 0.5),
            s(50.0, Some(0.05), Some(1.0), 2.0),
            s(50.0, Some(0.05), Some(1.0), 2.0),
        ];
        let c = choose(&xs, &DEFAULT_TARGETS);
        assert_eq!(c.best, Some(4));
        assert_eq!(c.qualified, 5);
        assert_eq!(c.closest, None);
        // A setting without a fault rate costs the most.
        let mut no_rate = s(0.0, Some(0.01), None, 1.0);
        no_rate.faults_per_s = None;
        let c = choose(&[no_rate, s(1e9, Some(0.09), None, 1.0)], &DEFAULT_TARGETS);
        assert_eq!(c.best, Some(1));
    }

    #[test]
    fn without_a_qualifying_setting_the_most_accurate_is_closest() {
        let xs = [
            s(50.0, Some(0.5), Some(0.0), 1.0),
            s(400.0, Some(0.3), Some(0.0), 1.0),
            s(100.0, Some(0.3), Some(5.0), 1.0),
            s(3.0, None, None, 1.0),
        ];
        let c = choose(&xs, &DEFAULT_TARGETS);
        assert_eq!((c.best, c.qualified), (None, 0));
        // Equal MAPE: the cheaper one.
        assert_eq!(c.closest, Some(2));
        let empty = choose(&[], &DEFAULT_TARGETS);
        assert_eq!(
            (empty.best, empty.closest, empty.qualified),
            (None, None, 0)
        );
    }

    #[test]
    fn a_slowdown_budget_needs_a_measured_slowdown_below_it() {
        let budget = Targets {
            max_mape: 0.05,
            max_slowdown: Some(0.01),
            ..DEFAULT_TARGETS
        };
        let with = |faults: f64, mape: f64, slowdown: Option<f64>| Scored {
            slowdown,
            ..s(faults, Some(mape), None, 1.0)
        };
        // Without a budget the slowdown is not judged.
        assert!(with(1.0, 0.04, Some(0.5)).qualifies(&DEFAULT_TARGETS));
        assert!(with(1.0, 0.04, None).qualifies(&DEFAULT_TARGETS));
        assert!(with(1.0, 0.04, Some(0.0099)).qualifies(&budget));
        assert!(with(1.0, 0.04, Some(-0.2)).qualifies(&budget));
        // On the budget, unmeasured or not a number: fails.
        assert!(!with(1.0, 0.04, Some(0.01)).qualifies(&budget));
        assert!(!with(1.0, 0.04, None).qualifies(&budget));
        assert!(!with(1.0, 0.04, Some(f64::NAN)).qualifies(&budget));
        // Accurate enough is still needed: 5%, not 10%.
        assert!(!with(1.0, 0.06, Some(0.0)).qualifies(&budget));
        // The cheapest within the budget wins over a cheaper one beyond it;
        // with none within it, the most accurate is the closest.
        let xs = [
            with(10.0, 0.04, Some(0.03)),
            with(40.0, 0.03, Some(0.005)),
            with(80.0, 0.01, Some(0.008)),
        ];
        let c = choose(&xs, &budget);
        assert_eq!((c.best, c.qualified), (Some(1), 2));
        let c = choose(&xs[..1], &budget);
        assert_eq!((c.best, c.closest), (None, Some(0)));
        // Written beside the others only when set.
        assert_eq!(
            serde_json::to_string(&budget).unwrap(),
            r#"{"mape":0.05,"lag_up":2.0,"slowdown":0.01}"#
        );
        let read: Targets = serde_json::from_str(r#"{"mape":0.1,"lag_up":2.0}"#).unwrap();
        assert_eq!(read, DEFAULT_TARGETS);
    }

    /// The same runs through the sweep's path (aggregate, then recommend)
    /// and the study's (candidates from summaries, then recommend) must
    /// name the same setting, including on the targets' edges and in ties.
    #[test]
    fn sweep_and_study_recommend_the_same_setting_from_the_same_runs() {
        use crate::report::summary::Summary;
        use crate::study::recommend::{Candidate, recommend as study_recommend};
        use crate::sweep::fixtures::{esx, record, summary};
        use crate::sweep::{aggregate, recommend as sweep_recommend};

        // (sample pages, interval ms, mape, lag up, growth events, faults in 10 s)
        type Run = (u64, u64, f64, Option<f64>, u32, u64);
        let check = |runs: &[Run]| {
            let settings: Vec<_> = runs.iter().map(|r| esx(r.0, r.1)).collect();
            let summaries: Vec<Summary> = runs
                .iter()
                .map(|&(n, ms, mape, lag, events, faults)| {
                    let mut s = summary(mape, lag, faults);
                    s.sample_pages = Some(n);
                    s.interval_s = ms as f64 / 1000.0;
                    s.lag_up_events = events;
                    s
                })
                .collect();
            let records: Vec<_> = summaries
                .iter()
                .enumerate()
                .map(|(i, s)| record(i, 0, s.clone()))
                .collect();
            let sweep = sweep_recommend(&aggregate(&settings, &records), DEFAULT_TARGETS);
            let cands: Vec<Candidate> = summaries
                .iter()
                .filter_map(|s| Candidate::from_summary(s, true))
                .collect();
            let study = study_recommend(&cands, &DEFAULT_TARGETS);
            let key = |n: Option<u64>, interval_s: f64| (n, (interval_s * 1000.0).round() as u64);
            let from_sweep = |a: &crate::sweep::Aggregate| {
                key(a.setting.sample_pages, a.setting.interval.as_secs_f64())
            };
            let from_study = |c: &Candidate| key(Some(c.sample_pages), c.interval_s);
            assert_eq!(
                sweep.recommended.as_ref().map(from_sweep),
                study.best.as_ref().map(from_study)
            );
            assert_eq!(
                sweep.most_accurate.as_ref().map(from_sweep),
                study.closest.as_ref().map(from_study)
            );
            (
                sweep.recommended.as_ref().map(from_sweep),
                sweep.most_accurate.as_ref().map(from_sweep),
            )
        };
        let qualifying = [
            // MAPE exactly on the target, and the cheapest: fails.
            (50, 1000, 0.1, Some(0.0), 1, 100),
            // Lag exactly on the target: fails.
            (60, 1000, 0.05, Some(2.0), 1, 200),
            // Growth never caught: fails.
            (70, 1000, 0.05, None, 3, 300),
            // Equal cost: the lower MAPE wins over the first one...
            (400, 500, 0.08, Some(1.0), 1, 1000),
            // ...and with equal MAPE too, the longer interval.
            (400, 1000, 0.06, Some(1.0), 1, 1000),
            (400, 2000, 0.06, None, 0, 1000),
            (800, 500, 0.02, Some(0.0), 1, 4000),
        ];
        assert_eq!(check(&qualifying), (Some((Some(400), 2000)), None));
        let none = [
            (50, 1000, 0.3, Some(0.0), 1, 100),
            (60, 1000, 0.12, Some(5.0), 1, 900),
            (70, 2000, 0.12, Some(5.0), 1, 500),
            (80, 500, 0.1, Some(0.0), 1, 50),
        ];
        // MAPE on the target fails; the lowest MAPE (80) is closest.
        assert_eq!(check(&none), (None, Some((Some(80), 500))));
        // Without it, equal MAPE: the cheaper one.
        assert_eq!(check(&none[..3]), (None, Some((Some(70), 2000))));
    }
}
