//! Question 5, which interval and sample size to use: the cheapest qualifying setting per workload.

use super::Question;
use crate::estimate::{EstimatorKind, EsxGains};
use crate::study::doc::Doc;
use crate::study::execute::Results;
use crate::study::figures::lag_cell;
use crate::study::format::{Align, list, num, opt, pct, setting, sig, table};
use crate::study::plan::{Plan, Spec};
use crate::study::recommend::{CRITERIA, Candidate, Recommendation, recommend};
use crate::track::TrackerKind;

/// The recommendation for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub label: String,
    pub recommendation: Recommendation,
}

/// The findings of question 5: per workload with at least one candidate
/// setting, in the order the plan first runs it, the cheapest setting
/// meeting the criteria.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices {
    pub workloads: Vec<Choice>,
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
        let workloads = labels
            .into_iter()
            .filter_map(|label| {
                let cands = candidates(&runs, results, label);
                (!cands.is_empty()).then(|| Choice {
                    label: label.to_string(),
                    recommendation: recommend(&cands, &CRITERIA),
                })
            })
            .collect();
        Choices { workloads }
    }
}

/// The settings of `label` the study ran with uffd + ESX at the default
/// gains, each once.
fn candidates(runs: &[&Spec], results: &Results, label: &str) -> Vec<Candidate> {
    runs.iter()
        .filter(|r| {
            r.workload.label == label
                && r.tracker == TrackerKind::Uffd
                && r.estimator == EstimatorKind::Esx
                && r.gains == EsxGains::default()
        })
        .filter_map(|r| results.summary(r).and_then(Candidate::from_summary))
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

impl Doc<'_> {
    pub(in crate::study) fn recommendations(&mut self) {
        let c = CRITERIA;
        self.heading(Question::Settings);
        self.para(&format!(
            "For each workload, among the uffd + ESX settings the study ran with the default \
             gains, the cheapest (fewest tracked faults per second) whose MAPE is below {} and \
             whose lag after growth is below {} intervals (a run without growth passes that \
             test; growth never caught fails it). Workloads covered by the sweeps of {} \
             had the most settings to choose from; the others only those of {}.",
            pct(c.max_mape),
            num(c.max_lag_up),
            self.section_ref(Question::Effective),
            self.sections_ref(&[Question::Works, Question::Efficient, Question::Agile])
        ));
        let choices = Choices::from_runs(self.plan, self.results);
        let mut rows = Vec::new();
        let mut none = Vec::new();
        for choice in &choices.workloads {
            let rec = &choice.recommendation;
            let (setting_cells, note) = match (&rec.best, &rec.closest) {
                (Some(b), _) => (
                    vec![
                        b.sample_pages.to_string(),
                        setting(std::time::Duration::from_secs_f64(b.interval_s)),
                        sig(b.faults_per_s, 3),
                        opt(b.mape, pct),
                        lag_cell(b.lag_up, b.lag_up_events),
                    ],
                    String::new(),
                ),
                (None, closest) => {
                    none.push(format!("`{}`", choice.label));
                    (
                        vec![
                            "none qualifies".into(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ],
                        closest
                            .as_ref()
                            .map_or("no setting had a MAPE".to_string(), |b| {
                                format!(
                                    "closest: MAPE {} with {} samples every {} (lag up {})",
                                    opt(b.mape, pct),
                                    b.sample_pages,
                                    setting(std::time::Duration::from_secs_f64(b.interval_s)),
                                    lag_cell(b.lag_up, b.lag_up_events)
                                )
                            }),
                    )
                }
            };
            let mut row = vec![
                format!("`{}`", choice.label),
                format!("{} / {}", rec.qualified, rec.tried),
            ];
            row.extend(setting_cells);
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
            "note",
        ];
        let mut align = vec![Align::Left, Align::Right];
        align.extend([Align::Right; 5]);
        align.push(Align::Left);
        self.para(&table(&h, &align, &rows));
        if !none.is_empty() {
            self.para(&format!(
                "No setting the study ran qualifies for {}; the note gives the most accurate \
                 one.",
                list(&none)
            ));
        }
        let total = rows.len();
        self.summary.push(format!(
            "**Which setting?** {} of {} workloads have a setting the study ran with a MAPE \
             under {} and a lag after growth under {} intervals; {} gives the cheapest \
             for each{}.",
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
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let zipf = of("zipf");
        assert_eq!((zipf.best.as_ref(), zipf.qualified), (None, 0));
        assert!(zipf.tried > 0);
        assert_eq!(zipf.closest.as_ref().and_then(|c| c.mape), Some(0.5));
    }
}
