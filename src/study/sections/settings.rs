//! Question 5, which interval and sample size to use: the cheapest qualifying setting per workload.

use super::Question;
use crate::estimate::{EstimatorKind, EsxGains};
use crate::study::doc::Doc;
use crate::study::execute::Results;
use crate::study::figures::lag_cell;
use crate::study::format::{Align, list, num, opt, pct, setting, sig, signed_pct, table};
use crate::study::plan::{BUDGET_WORKLOADS, Plan, Spec};
use crate::study::recommend::{BUDGET, CRITERIA, Candidate, Criteria, Recommendation, recommend};
use crate::track::TrackerKind;
use std::time::Duration;

/// The recommendation for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub label: String,
    pub recommendation: Recommendation,
}

/// The findings of question 5: per workload with at least one candidate
/// setting, in the order the plan first runs it, the cheapest setting
/// meeting the criteria; and for the workloads whose sweeps ran with an
/// untracked twin, the cheapest within the slowdown budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    pub workloads: Vec<Choice>,
    /// Under [`BUDGET`], over the settings with a measured slowdown, one
    /// per [`BUDGET_WORKLOADS`] entry that has any.
    pub budget: Vec<Choice>,
}

impl Choices {
    pub fn from_runs(plan: &Plan, results: &Results) -> Choices {
        let runs = plan.runs();
        let mut labels: Vec<&str> = Vec::new();
        for r in &runs {
            if !labels.contains(&r.workload.label.as_str()) {
                labels.push(&r.workload.label);
            }
        }
        let choose = |label: &str, criteria: &Criteria, twinned_only: bool| {
            let cands = candidates(&runs, results, label, twinned_only);
            (!cands.is_empty()).then(|| Choice {
                label: label.to_string(),
                recommendation: recommend(&cands, criteria),
            })
        };
        Choices {
            workloads: labels
                .into_iter()
                .filter_map(|label| choose(label, &CRITERIA, false))
                .collect(),
            budget: BUDGET_WORKLOADS
                .iter()
                .filter_map(|label| choose(label, &BUDGET, true))
                .collect(),
        }
    }
}

/// The settings of `label` the study ran with uffd + ESX at the default
/// gains, each once; with `twinned_only`, only those measured against an
/// untracked twin (which have a slowdown).
fn candidates(
    runs: &[&Spec],
    results: &Results,
    label: &str,
    twinned_only: bool,
) -> Vec<Candidate> {
    runs.iter()
        .filter(|r| {
            r.workload.label == label
                && r.tracker == TrackerKind::Uffd
                && r.estimator == EstimatorKind::Esx
                && r.gains == EsxGains::default()
                && (r.baseline || !twinned_only)
        })
        .filter_map(|r| {
            let paced = !r.workload.unpaced();
            results
                .summary(r)
                .and_then(|s| Candidate::from_summary(s, paced))
        })
        .fold(Vec::new(), |mut v: Vec<Candidate>, c| {
            // A setting run twice (the default setting's run and a sweep's
            // point) counts once: the first, longer run.
            if !v
                .iter()
                .any(|x| x.sample_pages == c.sample_pages && x.interval_s == c.interval_s)
            {
                v.push(c);
            }
            v
        })
}

/// A setting's cells: sample pages, interval, faults/s, MAPE, lag up and
/// slowdown.
fn setting_cells(c: &Candidate) -> Vec<String> {
    vec![
        c.sample_pages.to_string(),
        setting(Duration::from_secs_f64(c.interval_s)),
        sig(c.faults_per_s, 3),
        opt(c.mape, pct),
        lag_cell(c.lag_up, c.lag_up_events),
        opt(c.slowdown, signed_pct),
    ]
}

/// The table of `choices`, and the workloads where none qualified.
fn choice_table(choices: &[Choice]) -> (String, Vec<String>) {
    let mut rows = Vec::new();
    let mut none = Vec::new();
    for choice in choices {
        let rec = &choice.recommendation;
        let (cells, note) =
            match (&rec.best, &rec.closest) {
                (Some(b), _) => (setting_cells(b), String::new()),
                (None, closest) => {
                    none.push(format!("`{}`", choice.label));
                    let mut cells = vec!["none qualifies".to_string()];
                    cells.extend(std::iter::repeat_n(String::new(), 5));
                    let note = closest.as_ref().map_or("no setting had a MAPE".into(), |b| {
                    format!(
                        "closest: MAPE {} with {} samples every {} (lag up {}, slowdown {})",
                        opt(b.mape, pct),
                        b.sample_pages,
                        setting(Duration::from_secs_f64(b.interval_s)),
                        lag_cell(b.lag_up, b.lag_up_events),
                        opt(b.slowdown, signed_pct)
                    )
                });
                    (cells, note)
                }
            };
        let mut row = vec![
            format!("`{}`", choice.label),
            format!("{} / {}", rec.qualified, rec.tried),
        ];
        row.extend(cells);
        row.push(note);
        rows.push(row);
    }
    let h = [
        "workload",
        "settings qualifying / tried",
        "sample pages",
        "interval",
        "tracked faults/s",
        "MAPE",
        "lag up (intervals)",
        "slowdown",
        "note",
    ];
    let mut align = vec![Align::Left, Align::Right];
    align.extend([Align::Right; 6]);
    align.push(Align::Left);
    (table(&h, &align, &rows), none)
}

impl Doc<'_> {
    pub(in crate::study) fn recommendations(&mut self) {
        let c = CRITERIA;
        self.heading(Question::Settings);
        self.para(&format!(
            "For each workload, among the uffd + ESX settings the study ran with the default \
             gains, the cheapest (fewest tracked faults per second) whose MAPE is below {} and \
             whose lag after growth is below {} intervals (a run without growth passes that \
             test; growth never caught fails it). Workloads covered by the sweeps of {} \
             had the most settings to choose from; the others only those of {}. The slowdown \
             is shown where the run had an untracked twin (see below for what it means).",
            pct(c.max_mape),
            num(c.max_lag_up),
            self.section_ref(Question::Effective),
            self.sections_ref(&[Question::Works, Question::Efficient, Question::Agile])
        ));
        let choices = Choices::from_runs(self.plan, self.results);
        let (text, none) = choice_table(&choices.workloads);
        self.para(&text);
        if !none.is_empty() {
            self.para(&format!(
                "No setting the study ran qualifies for {}; the note gives the most accurate \
                 one.",
                list(&none)
            ));
        }
        self.budget_table(&choices);
        let total = choices.workloads.len();
        let within: Vec<String> = choices
            .budget
            .iter()
            .map(|ch| match &ch.recommendation.best {
                Some(b) => format!(
                    "`{}` {} samples every {} (MAPE {}, slowdown {})",
                    ch.label,
                    b.sample_pages,
                    setting(Duration::from_secs_f64(b.interval_s)),
                    opt(b.mape, pct),
                    opt(b.slowdown, signed_pct)
                ),
                None => format!("`{}` none", ch.label),
            })
            .collect();
        let budget_line = if within.is_empty() {
            String::new()
        } else {
            format!(
                " Within a slowdown budget of {} at a MAPE under {}: {}.",
                opt(BUDGET.max_slowdown, pct),
                pct(BUDGET.max_mape),
                list(&within)
            )
        };
        self.summary.push(format!(
            "**Which setting?** {} of {} workloads have a setting the study ran with a MAPE \
             under {} and a lag after growth under {} intervals; {} gives the cheapest \
             for each{}.{budget_line}",
            total - none.len(),
            total,
            pct(c.max_mape),
            num(c.max_lag_up),
            self.section_ref(Question::Settings),
            if none.is_empty() {
                String::new()
            } else {
                format!(", and none qualifies for {}", list(&none))
            }
        ));
    }

    /// The recommendation within the slowdown budget, and what the
    /// slowdown of a paced guest means.
    fn budget_table(&mut self, choices: &Choices) {
        let b = BUDGET;
        let labels: Vec<String> = BUDGET_WORKLOADS.iter().map(|l| format!("`{l}`")).collect();
        self.para(&format!(
            "**Within a slowdown budget.** The sweeps of {} on {} ran each setting after an \
             untracked twin of the same length, so each has a slowdown. Among those settings, \
             the cheapest whose MAPE is below {}, whose lag after growth is below {} intervals \
             and whose slowdown is below {}. These programs are paced: each runs at a set rate \
             far below what the CPU allows, waits for its schedule between batches and catches \
             up after a stall. Their slowdown is therefore the whole run's (1 − accesses per \
             second tracked / untracked): the share of the scheduled work still not done when \
             the run ended. It stays near 0 as long as tracking fits in the guest's idle time, \
             and says nothing of how much of that idle time tracking took; the steady slowdown \
             of the unpaced guest of {} is the measure of that. (Over the scored intervals \
             alone a paced guest that fell behind during the warm-up, for example while uffd \
             filled its never-touched pages, would run faster than its twin while catching up, \
             and show a negative slowdown.)",
            self.section_ref(Question::Effective),
            list(&labels),
            pct(b.max_mape),
            num(b.max_lag_up),
            opt(b.max_slowdown, pct),
            self.section_ref(Question::Efficient)
        ));
        if choices.budget.is_empty() {
            self.para("None of these sweeps has finished runs yet.");
            return;
        }
        let (text, none) = choice_table(&choices.budget);
        self.para(&text);
        if !none.is_empty() {
            self.para(&format!(
                "No setting the study ran stays within the budget for {}; the note gives the \
                 most accurate one and its slowdown.",
                list(&none)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::execute::Results;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    #[test]
    fn the_cheapest_qualifying_setting_is_chosen_per_workload() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = Vec::new();
        // hotset: the error falls as the sample grows and faults rise with
        // it, so the smallest sample under 10% wins; zipf: nothing under
        // 10%; every other workload has no finished run.
        for sp in plan.runs() {
            let mape = match sp.workload.label.as_str() {
                "hotset" => 20.0 / sp.sample_pages as f64,
                "zipf" => 0.5,
                _ => continue,
            };
            let mut s = summary_of(sp);
            s.duration_s = 10.0;
            s.tracked_faults = Some(10 * sp.sample_pages);
            s.mape = Some(mape);
            // Runs after a twin: 1% of slowdown per 1000 samples over the
            // whole run; the steady one, which a paced guest is not
            // judged by, is higher.
            if sp.baseline {
                s.slowdown = Some(sp.sample_pages as f64 * 1e-5);
                s.steady_slowdown = Some(0.5);
            }
            outcomes.push((sp.id(), finished(s)));
        }
        let f = Choices::from_runs(&plan, &Results::from_outcomes(outcomes));
        let labels: Vec<&str> = f.workloads.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels.len(), 2);
        assert!(labels.contains(&"hotset") && labels.contains(&"zipf"));
        let of = |l: &str| {
            &f.workloads
                .iter()
                .find(|c| c.label == l)
                .unwrap()
                .recommendation
        };
        // 20 / n < 0.1 from n = 400 on (200 gives exactly 10%).
        let best = of("hotset").best.as_ref().expect("hotset qualifies");
        assert_eq!(best.sample_pages, 400);
        assert_eq!(best.mape, Some(0.05));
        // At equal faults and MAPE the longest interval wins: a sweep
        // point, which had a twin, so its slowdown is shown.
        assert_eq!((best.interval_s, best.slowdown), (10.0, Some(0.004)));
        let zipf = of("zipf");
        assert_eq!((zipf.best.as_ref(), zipf.qualified), (None, 0));
        assert!(zipf.tried > 0);
        assert_eq!(zipf.closest.as_ref().and_then(|c| c.mape), Some(0.5));

        // Within the budget, over the twinned sweep points only: a MAPE
        // under 5% needs more than 400 samples (400 gives exactly 5%), a
        // slowdown under 1% fewer than 1000: 800, at 0.8%.
        let budget: Vec<&str> = f.budget.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(budget, ["hotset", "zipf"], "random has no finished run");
        let hot = &f.budget[0].recommendation;
        let sweep_points =
            plan.effective.sample_sweep[0].1.len() + plan.effective.interval_sweep[0].1.len() - 1;
        assert_eq!(hot.tried, sweep_points);
        let b = hot.best.as_ref().expect("hotset fits the budget");
        assert_eq!((b.sample_pages, b.interval_s), (800, 1.0));
        assert_eq!((b.mape, b.slowdown), (Some(0.025), Some(0.008)));
        assert_eq!(hot.qualified, 1);
        let zipf = &f.budget[1].recommendation;
        assert_eq!((zipf.best.as_ref(), zipf.qualified), (None, 0));
        assert!(zipf.closest.as_ref().is_some_and(|c| c.slowdown.is_some()));
    }

    #[test]
    fn the_section_shows_the_budget_table_and_says_what_a_paced_slowdown_means() {
        let plan = Plan::new(Scale::full());
        let outcomes = plan
            .runs()
            .into_iter()
            .filter(|sp| sp.workload.label == "random")
            .map(|sp| {
                let mut s = summary_of(sp);
                s.duration_s = 10.0;
                s.tracked_faults = Some(10 * sp.sample_pages);
                s.mape = Some(0.03);
                s.slowdown = sp.baseline.then_some(0.002);
                (sp.id(), finished(s))
            })
            .collect::<Vec<_>>();
        let results = Results::from_outcomes(outcomes);
        let doc = crate::study::testdata::rendered(&plan, &results);
        let at = doc
            .find("**Within a slowdown budget.**")
            .expect("budget text");
        let section = &doc[at..];
        assert!(section.contains("the share of the scheduled work still not done"));
        // The cheapest of random's 14 twinned settings: 25 samples every
        // second (the fewest faults per second), at 0.2%.
        assert!(
            section.contains("| `random` | 14 / 14 | 25 | 1 s | 25.0 | 3% | no step | 0.2% |  |"),
            "{section}"
        );
        assert!(
            doc.contains("Within a slowdown budget of 1% at a MAPE under 5%: `random` 25 samples")
        );
    }
}
