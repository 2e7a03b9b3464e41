//! Question 2, write-only tracking: a read-heavy program under dirty logging.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EstimatorKind;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::report::metrics::TruthColumn;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{startup_memory, startup_sentence};
use crate::study::execute::Results;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::figures::{cell, metrics_against};
use crate::study::format::{count, opt, pct, signed_pct};
use crate::study::plan::{Plan, QuestionRuns, Spec, SpecMaker, read_heavy};
use crate::study::recommend::CRITERIA;
use crate::track::TrackerKind;

/// The runs of the write-only comparison: a read-heavy program under uffd
/// and under dirty logging.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadHeavyRuns {
    pub runs: Vec<Spec>,
}

impl ReadHeavyRuns {
    pub fn plan(make: &SpecMaker) -> ReadHeavyRuns {
        let s = make.scale;
        let reads = read_heavy(s);
        let runs = [TrackerKind::Uffd, TrackerKind::DirtyLog]
            .into_iter()
            .map(|t| {
                make.spec(
                    &reads,
                    t,
                    EstimatorKind::Esx,
                    s.sample_pages,
                    s.interval,
                    s.run_duration,
                )
            })
            .collect();
        ReadHeavyRuns { runs }
    }
}

impl QuestionRuns for ReadHeavyRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.runs.iter().collect()
    }
}

/// What dirty logging's run of the read-heavy program measured.
#[derive(Debug, Clone, PartialEq)]
pub struct DirtyLogReading {
    /// Mean pages read or written, and written, per interval.
    pub truth_pages: f64,
    pub written_pages: f64,
    pub estimate_pages: Option<f64>,
    /// Its error against the written pages and against all pages touched,
    /// and its bias against all pages, relative to them.
    pub mape_writes: Option<f64>,
    pub mape_all: Option<f64>,
    pub bias_all: Option<f64>,
    /// Whether ESX's start-up memory shows against the written pages.
    pub startup_memory: bool,
}

/// The findings of the write-only comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOnly {
    /// The program's share of writes, from its parameters.
    pub write_ratio: Option<f64>,
    pub dirty_log: Option<DirtyLogReading>,
    /// Whether uffd's run finished, and its MAPE against all pages.
    pub uffd_finished: bool,
    pub uffd_mape: Option<f64>,
}

impl WriteOnly {
    /// `None` when the plan lacks the uffd or the dirty-log run.
    pub fn from_runs(plan: &Plan, results: &Results) -> Option<WriteOnly> {
        let runs = &plan.write_only.runs;
        let find = |t: TrackerKind| runs.iter().find(|s| s.tracker == t);
        let (u, d) = (find(TrackerKind::Uffd)?, find(TrackerKind::DirtyLog)?);
        let dirty_log = results.get(d).map(|(s, rows)| {
            let all = metrics_against(s, rows, TruthColumn::All);
            let writes = metrics_against(s, rows, TruthColumn::Writes);
            DirtyLogReading {
                truth_pages: s.true_wss_mean_pages,
                written_pages: s.true_wss_write_mean_pages,
                estimate_pages: s.est_wss_mean_pages,
                mape_writes: writes.mape,
                mape_all: all.mape,
                bias_all: all
                    .bias_pages
                    .filter(|_| s.true_wss_mean_pages > 0.0)
                    .map(|b| b / s.true_wss_mean_pages),
                startup_memory: startup_memory(rows, s, d.gains.slow).is_some(),
            }
        });
        Some(WriteOnly {
            write_ratio: d
                .workload
                .param("write_ratio")
                .and_then(|r| r.parse::<f64>().ok()),
            dirty_log,
            uffd_finished: results.summary(u).is_some(),
            uffd_mape: results.summary(u).and_then(|s| s.mape),
        })
    }
}

impl Doc<'_> {
    pub(in crate::study) fn write_only(&mut self) {
        let Some(f) = WriteOnly::from_runs(self.plan, self.results) else {
            return;
        };
        let n = self.fig_ref(&self.figs.reads);
        let d = self
            .plan
            .write_only
            .runs
            .iter()
            .find(|s| s.tracker == TrackerKind::DirtyLog);
        let mut text = format!(
            "**Write-only tracking.** Dirty logging sees only writes. {n} runs a \
             read-heavy program ({}) under uffd and under dirty logging. ",
            self.plan.write_only.runs[0].workload.describe()
        );
        if let (Some(r), Some(d)) = (&f.dirty_log, d)
            && let Some((s, rows)) = self.results.get(d)
        {
            let _ = write!(
                text,
                "The program reads or writes {} pages per interval but writes only {}. \
                 Dirty logging estimates {} pages: against the written pages its MAPE is {}, \
                 against all pages touched it is {} (bias {}). ",
                count(r.truth_pages),
                count(r.written_pages),
                opt(r.estimate_pages, count),
                opt(r.mape_writes, pct),
                opt(r.mape_all, pct),
                opt(r.bias_all, signed_pct),
            );
            if let Some(why) =
                startup_sentence(rows, s, d.gains, &self.section_ref(Question::Agile))
            {
                let _ = write!(text, "Against the written pages, {why} ");
            }
            let ok = |m: Option<f64>| m.is_some_and(|m| m < CRITERIA.max_mape);
            if ok(r.mape_writes) && !ok(r.mape_all) {
                text.push_str(
                    "It measures the write working set well and the working set badly: for a \
                     read-heavy guest it is the wrong mechanism, however well it samples. ",
                );
            } else if !ok(r.mape_all) {
                text.push_str(
                    "It misses the working set, and here even the write working set it can \
                     see. ",
                );
            }
            let start = if r.startup_memory {
                format!(
                    " (against the written pages mostly a busy start that ESX is slow to \
                     forget, {})",
                    self.section_ref(Question::Effective)
                )
            } else {
                String::new()
            };
            self.summary.push(format!(
                "**Write-only tracking** (dirty logging) on a program with {} writes: MAPE {} \
                 against the pages it wrote, {} against all the pages it touched{start}.",
                opt(f.write_ratio, pct),
                opt(r.mape_writes, pct),
                opt(r.mape_all, pct)
            ));
        }
        if f.uffd_finished {
            let _ = write!(
                text,
                "uffd, which sees reads too, has a MAPE of {} against all pages.",
                opt(f.uffd_mape, pct)
            );
        }
        self.para(&text);
        let fig = self.figs.reads.clone();
        self.figure(&fig);
    }
}

impl FigureWriter<'_> {
    /// A read-heavy program under uffd and dirty-log, over time.
    pub(in crate::study) fn reads_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig6-write-only-tracking";
        let mut panels = Vec::new();
        let mut data = Vec::new();
        for spec in &self.plan.write_only.runs {
            let got = self.results.get(spec);
            let title = match got {
                Some((s, rows)) => {
                    let all = metrics_against(s, rows, TruthColumn::All);
                    let writes = metrics_against(s, rows, TruthColumn::Writes);
                    format!(
                        "{}: MAPE {} vs all pages, {} vs written",
                        spec.method(),
                        crate::study::format::opt(all.mape, crate::study::format::pct),
                        crate::study::format::opt(writes.mape, crate::study::format::pct)
                    )
                }
                None => format!("{}: run failed", spec.method()),
            };
            let rows = got.map(|g| g.1.to_vec()).unwrap_or_default();
            for r in &rows {
                data.push(vec![
                    spec.tracker.name().to_string(),
                    format!("{}", r.t_s),
                    r.true_wss_pages.to_string(),
                    r.true_wss_write_pages.to_string(),
                    cell(r.est_wss_pages),
                    cell(r.est_lo_pages),
                    cell(r.est_hi_pages),
                ]);
            }
            panels.push(SeriesPanel {
                title,
                rows,
                show_writes: true,
            });
        }
        self.csv(
            stem,
            &[
                "tracker",
                "t_s",
                "true_wss_pages",
                "true_wss_write_pages",
                "est_wss_pages",
                "est_lo_pages",
                "est_hi_pages",
            ],
            &data,
        )?;
        let title = "A read-heavy program (5% writes): uffd vs write-only dirty logging";
        series_panels(&self.base(stem), title, &panels, 2)?;
        Ok(Figure {
            stem,
            title: title.into(),
            caption: "The same paced random program with 5% writes, tracked by uffd (sees \
                      reads and writes) and by dirty logging (sees writes only), against both \
                      the pages read or written and the pages written."
                .into(),
            runs: self.plan.write_only.runs.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;
    use crate::study::execute::Outcome;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    #[test]
    fn dirty_logging_is_judged_against_written_and_all_pages() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = Vec::new();
        for sp in &plan.write_only.runs {
            let mut s = summary_of(sp);
            if sp.tracker == TrackerKind::DirtyLog {
                // row() writes half the pages it touches; the estimate
                // matches the written pages exactly.
                let rows: Vec<_> = (1..=6)
                    .map(|i| row(f64::from(i), 1000, Some(500.0)))
                    .collect();
                s.true_wss_mean_pages = 1000.0;
                s.true_wss_write_mean_pages = 500.0;
                s.est_wss_mean_pages = Some(500.0);
                s.warmup_intervals = 1;
                outcomes.push((
                    sp.id(),
                    Outcome::Done {
                        summary: Box::new(s),
                        rows,
                        cached: true,
                        ended_early: None,
                        wall_s: None,
                    },
                ));
            } else {
                s.mape = Some(0.04);
                outcomes.push((sp.id(), finished(s)));
            }
        }
        let f = WriteOnly::from_runs(&plan, &Results::from_outcomes(outcomes))
            .expect("the plan has both runs");
        let r = f.dirty_log.expect("dirty-log run finished");
        assert_eq!((r.truth_pages, r.written_pages), (1000.0, 500.0));
        assert_eq!(r.mape_writes, Some(0.0));
        assert_eq!(r.mape_all, Some(0.5));
        assert_eq!(r.bias_all, Some(-0.5));
        assert!(!r.startup_memory);
        assert!(f.uffd_finished);
        assert_eq!(f.uffd_mape, Some(0.04));
        assert!(f.write_ratio.is_some_and(|w| w > 0.0 && w < 1.0));
    }
}
