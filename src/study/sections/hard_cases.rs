//! Question 2, where it fails and why: the hard access patterns under every tracker and estimator.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EstimatorKind;
use crate::plot::table_map::plot_heatmap;
use crate::report::metrics::TruthColumn;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{sampling_error, sp_gains, startup_memory, startup_sentence};
use crate::study::execute::Results;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::figures::{
    SUMMARY_COLUMNS, cell, compared_truth, faults_per_s, metrics_against, relative_bias,
    summary_cells,
};
use crate::study::format::{Align, NA, count, list, opt, pct, setting, sig, signed_pct, table};
use crate::study::plan::{Plan, QuestionRuns, SpecMaker, failure_workloads};
use crate::study::plan::{Spec, TRACKERS, Workload};
use crate::study::recommend::CRITERIA;
use crate::track::TrackerKind;

/// The runs of the failure analysis: the hard workloads under every
/// tracker, with ESX and with DAMON.
#[derive(Debug, Clone, PartialEq)]
pub struct HardCaseRuns {
    pub runs: Vec<Spec>,
}

impl HardCaseRuns {
    pub fn plan(make: &SpecMaker) -> HardCaseRuns {
        let s = make.scale;
        let mut runs = Vec::new();
        for w in failure_workloads(s) {
            for tracker in TRACKERS {
                for estimator in [EstimatorKind::Esx, EstimatorKind::Damon] {
                    runs.push(make.spec(
                        &w,
                        tracker,
                        estimator,
                        s.sample_pages,
                        s.interval,
                        s.sweep_duration,
                    ));
                }
            }
        }
        HardCaseRuns { runs }
    }
}

impl QuestionRuns for HardCaseRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.runs.iter().collect()
    }
}

/// One tracker and estimator on a hard workload: (tracker, estimator,
/// MAPE, relative bias).
pub type Combination = (TrackerKind, EstimatorKind, Option<f64>, Option<f64>);

/// The findings of the failure analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct HardCases {
    /// Per hard workload, in table order, every combination in
    /// `TRACKERS` × (ESX, DAMON) order.
    pub cases: Vec<(Workload, Vec<Combination>)>,
    /// The workloads uffd + ESX, and uffd + DAMON, miss the criterion on.
    pub esx_missed: Vec<String>,
    pub damon_missed: Vec<String>,
    /// The dirty-log + ESX runs, and those of them showing ESX's start-up
    /// memory.
    pub dirty_esx_runs: usize,
    pub dirty_esx_busy: Vec<String>,
}

impl HardCases {
    pub fn from_runs(plan: &Plan, results: &Results) -> HardCases {
        let runs = &plan.hard_cases.runs;
        let cases: Vec<(Workload, Vec<Combination>)> = failure_workloads(&plan.scale)
            .into_iter()
            .map(|w| {
                let mut per = Vec::new();
                for t in TRACKERS {
                    for e in [EstimatorKind::Esx, EstimatorKind::Damon] {
                        let got = runs
                            .iter()
                            .find(|x| x.workload == w && x.tracker == t && x.estimator == e)
                            .and_then(|sp| results.summary(sp));
                        per.push((t, e, got.and_then(|g| g.mape), got.and_then(relative_bias)));
                    }
                }
                (w, per)
            })
            .collect();
        let missed = |e: EstimatorKind| -> Vec<String> {
            cases
                .iter()
                .filter(|(_, per)| {
                    per.iter().any(|x| {
                        x.0 == TrackerKind::Uffd
                            && x.1 == e
                            && x.2.is_some_and(|m| m >= CRITERIA.max_mape)
                    })
                })
                .map(|(w, _)| w.label.clone())
                .collect()
        };
        let dirty: Vec<&Spec> = runs
            .iter()
            .filter(|sp| sp.tracker == TrackerKind::DirtyLog && sp.estimator == EstimatorKind::Esx)
            .collect();
        HardCases {
            esx_missed: missed(EstimatorKind::Esx),
            damon_missed: missed(EstimatorKind::Damon),
            dirty_esx_runs: dirty.len(),
            dirty_esx_busy: dirty
                .iter()
                .filter(|sp| {
                    results
                        .get(sp)
                        .and_then(|(m, r)| startup_memory(r, m, sp.gains.slow))
                        .is_some()
                })
                .map(|sp| sp.workload.label.clone())
                .collect(),
            cases,
        }
    }
}

impl Doc<'_> {
    pub(in crate::study) fn hard_cases(&mut self) {
        let f = HardCases::from_runs(self.plan, self.results);
        let s = self.plan.scale.clone();
        let n = self.fig_ref(&self.figs.failures);
        self.line("### Where it fails, and why");
        self.line("");
        let works = failure_workloads(&s);
        let mut rows = Vec::new();
        for w in &works {
            for t in TRACKERS {
                for e in [EstimatorKind::Esx, EstimatorKind::Damon] {
                    let sp = self
                        .plan
                        .hard_cases
                        .runs
                        .iter()
                        .find(|x| x.workload == *w && x.tracker == t && x.estimator == e);
                    let got = sp.and_then(|sp| self.results.get(sp));
                    let all = got.map(|(s, r)| metrics_against(s, r, TruthColumn::All));
                    rows.push(vec![
                        format!("`{}`", w.label),
                        format!("{}+{}", t.name(), e.name()),
                        opt(got.map(|g| compared_truth(g.0)), count),
                        opt(got.and_then(|g| g.0.est_wss_mean_pages), count),
                        opt(got.and_then(|g| g.0.mape), pct),
                        opt(got.and_then(|g| relative_bias(g.0)), signed_pct),
                        opt(all.and_then(|m| m.mape), pct),
                        opt(got.and_then(|g| faults_per_s(g.0)), |x| sig(x, 3)),
                    ]);
                }
            }
        }
        let lines: Vec<String> = f
            .cases
            .iter()
            .map(|(w, per)| self.hard_case_text(w, per))
            .collect();
        let quoted = |v: &[String]| v.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>();
        let (esx_missed, damon_missed) = (quoted(&f.esx_missed), quoted(&f.damon_missed));
        let say = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                list(v)
            }
        };
        self.summary.push(format!(
            "**Where does it fail?** Of the hard cases (pointer chasing, strided access, \
             heavy-tailed Zipf), uffd + ESX reaches a MAPE of {} or more on {} and uffd + \
             DAMON on {}.",
            pct(CRITERIA.max_mape),
            say(&esx_missed),
            say(&damon_missed)
        ));
        self.para(&format!(
            "{n} runs three access patterns that challenge sampling under all three \
             trackers, with ESX and with DAMON ({} runs, default setting otherwise).",
            setting(s.sweep_duration)
        ));
        for l in lines {
            self.line(&format!("- {l}"));
        }
        self.line("");
        let busy = quoted(&f.dirty_esx_busy);
        if !busy.is_empty() {
            self.para(&format!(
                "The dirty-log + ESX runs of {} ({} of {}) show the busy start described under \
                 write-only tracking below, which inflates their error against the written \
                 pages.",
                list(&busy),
                busy.len(),
                f.dirty_esx_runs
            ));
        }
        let fig = self.figs.failures.clone();
        self.figure(&fig);
        let h = [
            "workload",
            "tracker+estimator",
            "true WSS (scored column)",
            "estimate",
            "MAPE",
            "bias",
            "MAPE vs all pages",
            "tracked faults/s",
        ];
        let mut align = vec![Align::Left, Align::Left];
        align.extend([Align::Right; 6]);
        self.para(&table(&h, &align, &rows));
    }

    /// What the numbers say about one hard workload.
    fn hard_case_text(&self, w: &Workload, per: &[Combination]) -> String {
        let get = |t: TrackerKind, e: EstimatorKind| {
            per.iter()
                .find(|x| x.0 == t && x.1 == e)
                .and_then(|x| x.2.map(|m| (m, x.3)))
        };
        let esx = get(TrackerKind::Uffd, EstimatorKind::Esx);
        let damon = get(TrackerKind::Uffd, EstimatorKind::Damon);
        let fmt = |x: Option<(f64, Option<f64>)>| {
            x.map_or(NA.to_string(), |(m, b)| {
                format!("MAPE {}, bias {}", pct(m), opt(b, signed_pct))
            })
        };
        let failing: Vec<String> = per
            .iter()
            .filter(|x| x.2.is_some_and(|m| m >= CRITERIA.max_mape))
            .map(|x| format!("{}+{}", x.0.name(), x.1.name()))
            .collect();
        let mut s = format!(
            "`{}` ({}): uffd+esx {}; uffd+damon {}. ",
            w.label,
            w.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            fmt(esx),
            fmt(damon)
        );
        if per.iter().all(|x| x.2.is_none()) {
            s.push_str("No run of it produced a MAPE.");
        } else if failing.is_empty() {
            let _ = write!(
                s,
                "Every combination stays under {} here.",
                pct(CRITERIA.max_mape)
            );
        } else {
            let _ = write!(
                s,
                "At {} or more: {}.",
                pct(CRITERIA.max_mape),
                list(&failing)
            );
        }
        let esx_by_tracker: Vec<String> = TRACKERS
            .iter()
            .map(|&t| {
                format!(
                    "{} {}",
                    t.name(),
                    opt(get(t, EstimatorKind::Esx).map(|x| x.0), pct)
                )
            })
            .collect();
        let _ = write!(s, " ESX's MAPE by tracker: {}.", list(&esx_by_tracker));
        let pattern = match w.guest {
            "chase" => "Pointer chasing follows one random cycle through the pages: neighbouring \
                        pages are not accessed alike, and each load depends on the previous one, \
                        so a tracked fault stalls the chain (pacing lets the guest catch up)."
                .to_string(),
            "stride" => format!(
                "A stride of {} pages touches one page in {}: every region of neighbouring \
                 pages is only partly in the working set.",
                w.param("k").unwrap_or(NA),
                w.param("k").unwrap_or(NA)
            ),
            _ => format!(
                "A Zipf distribution with theta {} puts most accesses on a few pages; the rest \
                 of its working set is a long tail of pages touched once or twice per interval.",
                w.param("theta").unwrap_or(NA)
            ),
        };
        s.push(' ');
        s.push_str(&pattern);
        let esx_ok = esx.is_some_and(|x| x.0 < CRITERIA.max_mape);
        let uffd_esx = self.plan.hard_cases.runs.iter().find(|x| {
            x.workload == *w && x.tracker == TrackerKind::Uffd && x.estimator == EstimatorKind::Esx
        });
        let startup = uffd_esx
            .and_then(|sp| self.results.get(sp))
            .and_then(|(sum, rows)| {
                startup_sentence(
                    rows,
                    sum,
                    sp_gains(uffd_esx),
                    &self.section_ref(Question::Agile),
                )
            });
        if esx_ok {
            s.push_str(
                " ESX's uniform sample does not care where the touched pages lie, so the \
                 pattern costs it nothing.",
            );
        } else if let Some(why) = startup {
            let _ = write!(s, " ESX misses here for another reason: {why}");
        } else if let Some((sum, _)) = uffd_esx.and_then(|sp| self.results.get(sp)) {
            let err = sampling_error(
                sum.true_wss_mean_pages,
                sum.domain_pages,
                sum.sample_pages.unwrap_or(0),
            );
            let _ = write!(
                s,
                " ESX's error here is its sample's: at this WSS one interval's sample has a {} \
                 standard error, and ESX reports the larger of its two averages, which errs \
                 upwards when the sampled fraction fluctuates (bias {}); nothing in the \
                 pattern itself defeats uniform sampling.",
                opt(err, pct),
                opt(relative_bias(sum), signed_pct)
            );
        }
        let damon_fails = damon.is_some_and(|d| d.0 >= CRITERIA.max_mape);
        if let (true, Some((m, bias))) = (damon_fails, damon) {
            let ticks = crate::estimate::DamonConfig::default().ticks_per_interval;
            let half = CRITERIA.max_mape / 2.0;
            let _ = write!(
                s,
                " DAMON misses (MAPE {}): it arms one page per region per tick ({} of the {} \
                 interval) and takes the whole region to behave like that page",
                pct(m),
                setting(self.plan.scale.interval / ticks.max(1)),
                setting(self.plan.scale.interval)
            );
            s.push_str(match bias {
                Some(b) if b <= -half => {
                    "; a page the guest touches once per interval is touched within the tick \
                     it is armed for only by chance, so DAMON sees too few touches and \
                     under-estimates."
                }
                Some(b) if b >= half => {
                    "; a region whose sampled page happens to be hot counts as hot throughout, \
                     so the few hot pages of this pattern inflate whole regions and DAMON \
                     over-estimates."
                }
                _ => {
                    "; one page per region and tick is too small a sample of each region, so \
                     its estimate swings around the truth."
                }
            });
        }
        s
    }
}

impl FigureWriter<'_> {
    /// MAPE of the hard workloads under every tracker and estimator.
    pub(in crate::study) fn failures_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig5-hard-cases";
        let works = crate::study::plan::failure_workloads(&self.plan.scale);
        let methods: Vec<(crate::track::TrackerKind, EstimatorKind)> = TRACKERS
            .iter()
            .flat_map(|&t| [(t, EstimatorKind::Esx), (t, EstimatorKind::Damon)])
            .collect();
        let mut values = Vec::new();
        let mut data = Vec::new();
        for w in &works {
            let mut row = Vec::new();
            for &(t, e) in &methods {
                let spec = self
                    .plan
                    .hard_cases
                    .runs
                    .iter()
                    .find(|s| s.workload == *w && s.tracker == t && s.estimator == e);
                let got = spec.and_then(|sp| self.results.get(sp));
                row.push(got.and_then(|(s, _)| s.mape).map(|m| m * 100.0));
                if let Some(spec) = spec {
                    let all = got.map(|(s, rows)| metrics_against(s, rows, TruthColumn::All));
                    let mut cells = summary_cells(spec, got.map(|g| g.0));
                    cells.push(cell(got.and_then(|g| faults_per_s(g.0))));
                    cells.push(cell(all.as_ref().and_then(|m| m.mape)));
                    data.push(cells);
                }
            }
            values.push(row);
        }
        let mut header = SUMMARY_COLUMNS.to_vec();
        header.extend(["faults_per_s", "mape_vs_all_pages"]);
        self.csv(stem, &header, &data)?;
        let x: Vec<String> = methods
            .iter()
            .map(|(t, e)| format!("{}+{}", t.name(), e.name()))
            .collect();
        let y: Vec<String> = works.iter().map(|w| w.label.clone()).collect();
        let title = "MAPE (%) of hard workloads by tracker and estimator";
        plot_heatmap(title, &x, &y, &values, "MAPE (%)", &self.base(stem))?;
        Ok(Figure {
            stem,
            title: title.into(),
            caption: "MAPE of pointer chasing, strided access and a heavy-tailed Zipf \
                      distribution under each tracker with ESX and with DAMON. Dirty-log \
                      columns are scored against written pages, the only pages that \
                      mechanism can see."
                .into(),
            runs: self.plan.hard_cases.runs.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    #[test]
    fn misses_are_found_per_estimator_under_uffd() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = Vec::new();
        // uffd + DAMON misses chase, uffd + ESX misses zipf, mprotect + ESX
        // misses everything (which does not count: uffd is the default).
        for sp in &plan.hard_cases.runs {
            let uffd = sp.tracker == TrackerKind::Uffd;
            let miss = match (sp.workload.guest, sp.estimator) {
                ("chase", EstimatorKind::Damon) => uffd,
                ("zipf", EstimatorKind::Esx) => uffd,
                (_, EstimatorKind::Esx) => sp.tracker == TrackerKind::Mprotect,
                _ => false,
            };
            let mut s = summary_of(sp);
            s.mape = Some(if miss { 0.5 } else { 0.05 });
            s.true_wss_mean_pages = 1000.0;
            s.bias_pages = Some(if miss { 300.0 } else { -10.0 });
            outcomes.push((sp.id(), finished(s)));
        }
        let f = HardCases::from_runs(&plan, &Results::from_outcomes(outcomes));

        let labels: Vec<&str> = f.cases.iter().map(|(w, _)| w.guest).collect();
        assert_eq!(labels, ["chase", "stride", "zipf"]);
        assert!(
            f.cases
                .iter()
                .all(|(_, per)| per.len() == 2 * TRACKERS.len())
        );
        let zipf = f.cases[2].0.label.clone();
        assert_eq!(f.esx_missed, vec![zipf]);
        assert_eq!(f.damon_missed, vec![f.cases[0].0.label.clone()]);
        let uffd_esx_zipf = f.cases[2]
            .1
            .iter()
            .find(|c| c.0 == TrackerKind::Uffd && c.1 == EstimatorKind::Esx)
            .expect("uffd+esx on zipf");
        assert_eq!((uffd_esx_zipf.2, uffd_esx_zipf.3), (Some(0.5), Some(0.3)));
        assert_eq!(f.dirty_esx_runs, 3);
        // Without time series no run shows a busy start.
        assert!(f.dirty_esx_busy.is_empty());
    }
}
