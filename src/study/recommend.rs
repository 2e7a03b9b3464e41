//! Which sampling setting to use for a workload: the cheapest one that was
//! accurate and agile enough, among the settings the study ran. The rule
//! itself is [`crate::analysis::recommend`], shared with `kvm-wss sweep`;
//! this module turns the study's runs into its inputs.

use crate::analysis::derived::{budget_slowdown, faults_per_s, growth_unresolved};
use crate::analysis::recommend::{DEFAULT_TARGETS, Scored, Targets, choose};
use crate::report::summary::Summary;

/// What "good enough" means: the shared [`Targets`].
pub type Criteria = Targets;

/// The criteria of the study's recommendation table.
pub const CRITERIA: Criteria = DEFAULT_TARGETS;

/// The criteria of its table within a slowdown budget (issue 9's): an
/// error below 5% at a slowdown below 1%, the lag as in [`CRITERIA`].
pub const BUDGET: Criteria = Targets {
    max_mape: 0.05,
    max_slowdown: Some(0.01),
    ..DEFAULT_TARGETS
};

/// One setting that was run, with what it achieved and cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub sample_pages: u64,
    pub interval_s: f64,
    pub faults_per_s: f64,
    pub mape: Option<f64>,
    pub lag_up: Option<f64>,
    /// Growth events the run saw; without any, there was nothing to lag.
    pub lag_up_events: u32,
    /// The slowdown a budget is held against (see
    /// [`budget_slowdown`]); `None` for a run without an untracked twin.
    pub slowdown: Option<f64>,
}

impl Candidate {
    /// The candidate a run's summary describes; `None` for a run without
    /// an estimate, a sample size or a fault rate (see
    /// [`faults_per_s`]). `paced`: whether the guest ran at a set rate,
    /// which decides the slowdown it is judged by.
    pub fn from_summary(s: &Summary, paced: bool) -> Option<Candidate> {
        let sample_pages = s.sample_pages?;
        s.estimator.as_ref()?;
        Some(Candidate {
            sample_pages,
            interval_s: s.interval_s,
            faults_per_s: faults_per_s(s)?,
            mape: s.mape.filter(|m| m.is_finite()),
            lag_up: s.lag_up_intervals.filter(|l| l.is_finite()),
            lag_up_events: s.lag_up_events,
            slowdown: budget_slowdown(s, paced).filter(|sl| sl.is_finite()),
        })
    }

    /// What the shared rule judges.
    pub fn scored(&self) -> Scored {
        Scored {
            mape: self.mape,
            lag_up: self.lag_up,
            lag_up_unresolved: growth_unresolved(self.lag_up, self.lag_up_events),
            faults_per_s: Some(self.faults_per_s),
            interval_s: self.interval_s,
            slowdown: self.slowdown,
        }
    }

    /// Accurate enough: a measured MAPE under the limit.
    pub fn accurate(&self, c: &Criteria) -> bool {
        self.scored().accurate(c)
    }

    /// Agile enough: growth was caught within the limit, or there was no
    /// growth to catch. Growth that was never caught fails.
    pub fn agile(&self, c: &Criteria) -> bool {
        self.scored().agile(c)
    }

    pub fn qualifies(&self, c: &Criteria) -> bool {
        self.scored().qualifies(c)
    }
}

/// The outcome for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// The cheapest qualifying setting.
    pub best: Option<Candidate>,
    /// How many settings were tried and how many qualified.
    pub tried: usize,
    pub qualified: usize,
    /// With none qualifying: the most accurate setting, to say how close
    /// the study came.
    pub closest: Option<Candidate>,
}

/// Picks the setting with the shared rule of [`crate::analysis::recommend`].
pub fn recommend(candidates: &[Candidate], c: &Criteria) -> Recommendation {
    let scored: Vec<Scored> = candidates.iter().map(Candidate::scored).collect();
    let choice = choose(&scored, c);
    Recommendation {
        best: choice.best.map(|i| candidates[i].clone()),
        tried: candidates.len(),
        qualified: choice.qualified,
        closest: choice.closest.map(|i| candidates[i].clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(
        n: u64,
        interval_s: f64,
        faults: f64,
        mape: Option<f64>,
        lag: Option<f64>,
    ) -> Candidate {
        Candidate {
            sample_pages: n,
            interval_s,
            faults_per_s: faults,
            mape,
            lag_up: lag,
            lag_up_events: u32::from(lag.is_some()),
            slowdown: None,
        }
    }

    #[test]
    fn criteria_are_strict_and_missing_values_fail() {
        let c = CRITERIA;
        assert!(cand(1, 1.0, 1.0, Some(0.099), Some(1.9)).qualifies(&c));
        assert!(!cand(1, 1.0, 1.0, Some(0.1), Some(0.0)).qualifies(&c));
        assert!(!cand(1, 1.0, 1.0, Some(0.05), Some(2.0)).qualifies(&c));
        assert!(!cand(1, 1.0, 1.0, None, Some(0.0)).qualifies(&c));
        // No growth event: nothing to lag behind.
        assert!(cand(1, 1.0, 1.0, Some(0.05), None).qualifies(&c));
        // Growth that was never caught.
        let mut unresolved = cand(1, 1.0, 1.0, Some(0.05), None);
        unresolved.lag_up_events = 2;
        assert!(!unresolved.qualifies(&c));
    }

    #[test]
    fn cheapest_qualifying_setting_wins() {
        let cands = [
            cand(3200, 1.0, 400.0, Some(0.02), Some(0.0)),
            cand(400, 1.0, 50.0, Some(0.08), Some(1.0)),
            cand(100, 1.0, 12.0, Some(0.25), Some(1.0)),
            cand(400, 2.0, 25.0, Some(0.09), Some(3.0)),
        ];
        let r = recommend(&cands, &CRITERIA);
        assert_eq!(r.best, Some(cands[1].clone()));
        assert_eq!((r.tried, r.qualified), (4, 2));
        assert_eq!(r.closest, None);
    }

    #[test]
    fn ties_go_to_accuracy_then_longer_intervals() {
        let cands = [
            cand(400, 0.5, 50.0, Some(0.08), Some(0.0)),
            cand(400, 1.0, 50.0, Some(0.05), Some(0.0)),
            cand(400, 2.0, 50.0, Some(0.05), Some(0.0)),
        ];
        let r = recommend(&cands, &CRITERIA);
        assert_eq!(r.best, Some(cands[2].clone()));
    }

    #[test]
    fn none_qualifying_reports_the_closest() {
        let cands = [
            cand(400, 1.0, 50.0, Some(0.5), Some(0.0)),
            cand(3200, 1.0, 400.0, Some(0.3), Some(0.0)),
            cand(25, 1.0, 3.0, None, None),
        ];
        let r = recommend(&cands, &CRITERIA);
        assert_eq!(r.best, None);
        assert_eq!(r.qualified, 0);
        assert_eq!(r.closest, Some(cands[1].clone()));
        let empty = recommend(&[], &CRITERIA);
        assert_eq!((empty.best, empty.closest, empty.tried), (None, None, 0));
    }

    #[test]
    fn candidates_come_from_summaries() {
        let s = Summary {
            sample_pages: Some(400),
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            interval_s: 1.0,
            duration_s: 20.0,
            tracked_faults: Some(1000),
            mape: Some(0.04),
            lag_up_intervals: None,
            lag_up_events: 0,
            ..Summary::default()
        };
        let c = Candidate::from_summary(&s, true).unwrap();
        assert_eq!(c.faults_per_s, 50.0);
        assert_eq!(c.mape, Some(0.04));
        assert!(c.qualifies(&CRITERIA));
        // No twin: no slowdown, so nothing is within a budget.
        assert_eq!(c.slowdown, None);
        assert!(!c.qualifies(&BUDGET));
        let untracked = Summary {
            estimator: None,
            ..s.clone()
        };
        assert_eq!(Candidate::from_summary(&untracked, true), None);
        // A paced guest is judged by the whole run's slowdown, an unpaced
        // one by the steady one.
        let twinned = Summary {
            slowdown: Some(0.004),
            steady_slowdown: Some(0.03),
            ..s
        };
        let paced = Candidate::from_summary(&twinned, true).unwrap();
        assert_eq!(paced.slowdown, Some(0.004));
        assert!(paced.qualifies(&BUDGET));
        let unpaced = Candidate::from_summary(&twinned, false).unwrap();
        assert_eq!(unpaced.slowdown, Some(0.03));
        assert!(!unpaced.qualifies(&BUDGET));
    }
}
