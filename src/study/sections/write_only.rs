//! Question 2, write-only tracking: a read-heavy program under dirty logging.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EstimatorKind;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::report::metrics::TruthColumn;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::*;
use crate::study::figures::*;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::format::*;
use crate::study::plan::{QuestionRuns, Spec, SpecMaker, read_heavy};
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

impl Doc<'_> {
    pub(in crate::study) fn write_only(&mut self) {
        let n = self.fig_ref(&self.figs.reads);
        let find = |t: TrackerKind| self.plan.write_only.runs.iter().find(|s| s.tracker == t);
        let (Some(u), Some(d)) = (find(TrackerKind::Uffd), find(TrackerKind::DirtyLog)) else {
            return;
        };
        let mut text = format!(
            "**Write-only tracking.** Dirty logging sees only writes. {n} runs a \
             read-heavy program ({}) under uffd and under dirty logging. ",
            self.plan.write_only.runs[0].workload.describe()
        );
        if let Some((s, rows)) = self.results.get(d) {
            let all = metrics_against(s, rows, TruthColumn::All);
            let writes = metrics_against(s, rows, TruthColumn::Writes);
            let _ = write!(
                text,
                "The program reads or writes {} pages per interval but writes only {}. \
                 Dirty logging estimates {} pages: against the written pages its MAPE is {}, \
                 against all pages touched it is {} (bias {}). ",
                count(s.true_wss_mean_pages),
                count(s.true_wss_write_mean_pages),
                opt(s.est_wss_mean_pages, count),
                opt(writes.mape, pct),
                opt(all.mape, pct),
                opt(
                    all.bias_pages
                        .filter(|_| s.true_wss_mean_pages > 0.0)
                        .map(|b| b / s.true_wss_mean_pages),
                    signed_pct
                ),
            );
            if let Some(why) =
                startup_sentence(rows, s, d.gains, &self.section_ref(Question::Agile))
            {
                let _ = write!(text, "Against the written pages, {why} ");
            }
            let ok = |m: Option<f64>| m.is_some_and(|m| m < CRITERIA.max_mape);
            if ok(writes.mape) && !ok(all.mape) {
                text.push_str(
                    "It measures the write working set well and the working set badly: for a \
                     read-heavy guest it is the wrong mechanism, however well it samples. ",
                );
            } else if !ok(all.mape) {
                text.push_str(
                    "It misses the working set, and here even the write working set it can \
                     see. ",
                );
            }
            let start = if startup_memory(rows, s, d.gains.slow).is_some() {
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
                self.plan.write_only.runs[0]
                    .workload
                    .param("write_ratio")
                    .and_then(|r| r.parse::<f64>().ok())
                    .map_or(NA.to_string(), pct),
                opt(writes.mape, pct),
                opt(all.mape, pct)
            ));
        }
        if let Some(s) = self.s(u) {
            let _ = write!(
                text,
                "uffd, which sees reads too, has a MAPE of {} against all pages.",
                opt(s.mape, pct)
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
