//! Question 5, which interval and sample size to use: the cheapest qualifying setting per workload.

use super::Question;
use crate::estimate::{EstimatorKind, EsxGains};
use crate::study::doc::Doc;
use crate::study::figures::*;
use crate::study::format::*;
use crate::study::plan::Workload;
use crate::study::recommend::{CRITERIA, Candidate, recommend};
use crate::track::TrackerKind;

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
        let mut labels: Vec<&Workload> = Vec::new();
        let runs = self.plan.runs();
        for r in &runs {
            if !labels.iter().any(|w| w.label == r.workload.label) {
                labels.push(&r.workload);
            }
        }
        let mut rows = Vec::new();
        let mut none = Vec::new();
        for w in labels {
            let cands: Vec<Candidate> =
                runs.iter()
                    .filter(|r| {
                        r.workload.label == w.label
                            && r.tracker == TrackerKind::Uffd
                            && r.estimator == EstimatorKind::Esx
                            && r.gains == EsxGains::default()
                    })
                    .filter_map(|r| self.s(r).and_then(Candidate::from_summary))
                    .fold(Vec::new(), |mut v: Vec<Candidate>, c| {
                        // A setting run twice (section 1's run and a sweep's
                        // point) counts once: the first, longer run.
                        if !v.iter().any(|x| {
                            x.sample_pages == c.sample_pages && x.interval_s == c.interval_s
                        }) {
                            v.push(c);
                        }
                        v
                    });
            if cands.is_empty() {
                continue;
            }
            let rec = recommend(&cands, &c);
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
                    none.push(format!("`{}`", w.label));
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
                format!("`{}`", w.label),
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
