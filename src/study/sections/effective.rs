//! Question 2, how effective is it: the error over sample sizes and intervals.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EstimatorKind;
use crate::plot::series::Line;
use crate::plot::series::LinePanel;
use crate::plot::series::YFormat;
use crate::plot::series::line_panels;
use crate::report::summary::Summary;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{median, sampling_error, startup_memory};
use crate::study::figures::{Figure, FigureWriter};
use crate::study::figures::{SUMMARY_COLUMNS, cell, faults_per_s, relative_bias, summary_cells};
use crate::study::format::{Align, count, list, opt, pct, setting, signed_pct, table};
use crate::study::plan::{BUDGET_WORKLOADS, QuestionRuns, SWEEP_WORKLOADS, SpecMaker, Workload};
use crate::track::TrackerKind;
use std::time::Duration;

use crate::study::execute::Results;
use crate::study::plan::{Plan, Spec};
use crate::study::recommend::CRITERIA;

/// The runs of question 2's sweeps: per sweep workload, ESX over the sample
/// grid at the default interval, and over the interval grid at the default
/// sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRuns {
    pub sample_sweep: Vec<(Workload, Vec<Spec>)>,
    pub interval_sweep: Vec<(Workload, Vec<Spec>)>,
}

impl SweepRuns {
    pub fn plan(make: &SpecMaker, workloads: &[Workload]) -> SweepRuns {
        let s = make.scale;
        let sweep_workloads: Vec<Workload> = SWEEP_WORKLOADS
            .iter()
            .filter_map(|name| workloads.iter().find(|w| w.label == *name).cloned())
            .collect();
        // Every point of a sweep lasts as long, the default one included, so
        // that effects that fade over a run (such as ESX forgetting a busy
        // start) weigh the same at every point.
        // The workloads of the slowdown budget run each point after an
        // untracked twin (question 5 holds them to the budget).
        let esx_at = |w: &Workload, n: u64, interval: Duration| Spec {
            baseline: BUDGET_WORKLOADS.contains(&w.label.as_str()),
            ..make.spec(
                w,
                TrackerKind::Uffd,
                EstimatorKind::Esx,
                n,
                interval,
                s.sweep_duration,
            )
        };
        let sample_sweep = sweep_workloads
            .iter()
            .map(|w| {
                let runs = s.sample_grid.iter().map(|&n| esx_at(w, n, s.interval));
                (w.clone(), runs.collect())
            })
            .collect();
        let interval_sweep = sweep_workloads
            .iter()
            .map(|w| {
                let runs = s
                    .interval_grid
                    .iter()
                    .map(|&i| esx_at(w, s.sample_pages, i));
                (w.clone(), runs.collect())
            })
            .collect();
        SweepRuns {
            sample_sweep,
            interval_sweep,
        }
    }
}

impl QuestionRuns for SweepRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.sample_sweep
            .iter()
            .chain(&self.interval_sweep)
            .flat_map(|(_, runs)| runs.iter())
            .collect()
    }
}

/// One workload of the sample-size sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleNeed {
    pub label: String,
    /// The smallest sample of the grid with a MAPE under the criterion.
    pub smallest_accurate: Option<u64>,
    /// Whether its default-setting run shows ESX's start-up memory, which
    /// no sample size removes.
    pub startup_memory: bool,
}

/// One workload of the interval sweep at its shortest and longest
/// finished interval: (interval, mean true WSS, MAPE).
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSpan {
    pub label: String,
    pub shortest: (Duration, f64, Option<f64>),
    pub longest: (Duration, f64, Option<f64>),
}

/// The findings of question 2 (sample size and interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Effectiveness {
    pub samples: Vec<SampleNeed>,
    /// The median MAPE over the sweep workloads with the smallest, the
    /// default and the largest sample.
    pub median_smallest: Option<f64>,
    pub median_default: Option<f64>,
    pub median_largest: Option<f64>,
    pub intervals: Vec<IntervalSpan>,
}

impl Effectiveness {
    pub fn from_runs(plan: &Plan, results: &Results) -> Effectiveness {
        let s = &plan.scale;
        let samples = plan
            .effective
            .sample_sweep
            .iter()
            .map(|(w, specs)| SampleNeed {
                label: w.label.clone(),
                smallest_accurate: specs
                    .iter()
                    .filter_map(|sp| Some((sp.sample_pages, results.summary(sp)?)))
                    .find(|(_, s)| s.mape.is_some_and(|m| m < CRITERIA.max_mape))
                    .map(|(n, _)| n),
                startup_memory: plan
                    .defaults
                    .iter()
                    .find(|sp| sp.workload.label == w.label)
                    .and_then(|sp| results.get(sp).map(|(m, r)| (sp, m, r)))
                    .and_then(|(sp, m, r)| startup_memory(r, m, sp.gains.slow))
                    .is_some(),
            })
            .collect();
        let median_at = |n: u64| {
            let v: Vec<f64> = plan
                .effective
                .sample_sweep
                .iter()
                .filter_map(|(_, specs)| specs.iter().find(|sp| sp.sample_pages == n))
                .filter_map(|sp| results.summary(sp).and_then(|s| s.mape))
                .collect();
            median(v.iter().copied())
        };
        let intervals = plan
            .effective
            .interval_sweep
            .iter()
            .filter_map(|(w, specs)| {
                let pts: Vec<(&Spec, &Summary)> = specs
                    .iter()
                    .filter_map(|sp| results.summary(sp).map(|s| (sp, s)))
                    .collect();
                let point =
                    |(sp, s): &(&Spec, &Summary)| (sp.interval, s.true_wss_mean_pages, s.mape);
                Some(IntervalSpan {
                    label: w.label.clone(),
                    shortest: point(pts.first()?),
                    longest: point(pts.last()?),
                })
            })
            .collect();
        Effectiveness {
            samples,
            median_smallest: median_at(s.sample_grid.first().copied().unwrap_or(0)),
            median_default: median_at(s.sample_pages),
            median_largest: median_at(s.sample_grid.last().copied().unwrap_or(0)),
            intervals,
        }
    }
}

impl Doc<'_> {
    pub(in crate::study) fn effective(&mut self) {
        let f = Effectiveness::from_runs(self.plan, self.results);
        let s = self.plan.scale.clone();
        self.heading(Question::Effective);
        let domain = self.domain_pages().unwrap_or(0);
        let fs = self.fig_ref(&self.figs.samples);
        let fi = self.fig_ref(&self.figs.intervals);
        let mut rows = Vec::new();
        let mut enough = Vec::new();
        let mut never = Vec::new();
        for (w, specs) in &self.plan.effective.sample_sweep {
            let pts: Vec<(u64, &Summary)> = specs
                .iter()
                .filter_map(|sp| self.s(sp).map(|s| (sp.sample_pages, s)))
                .collect();
            let first_ok = f
                .samples
                .iter()
                .find(|x| x.label == w.label)
                .and_then(|x| x.smallest_accurate);
            let at = |n: u64| pts.iter().find(|(m, _)| *m == n).map(|x| x.1);
            let lo = s.sample_grid.first().copied().unwrap_or(0);
            let hi = s.sample_grid.last().copied().unwrap_or(0);
            let truth = at(s.sample_pages).map(|x| x.true_wss_mean_pages);
            rows.push(vec![
                format!("`{}`", w.label),
                opt(truth, count),
                opt(at(lo).and_then(|x| x.mape), pct),
                opt(at(s.sample_pages).and_then(|x| x.mape), pct),
                opt(at(hi).and_then(|x| x.mape), pct),
                opt(at(hi).and_then(relative_bias), signed_pct),
                first_ok.map_or_else(|| "none".to_string(), |n| n.to_string()),
                opt(
                    truth.and_then(|t| sampling_error(t, domain, s.sample_pages)),
                    pct,
                ),
            ]);
        }
        for x in &f.samples {
            match x.smallest_accurate {
                Some(n) => enough.push(format!("{n} for `{}`", x.label)),
                None => never.push(format!("`{}`", x.label)),
            }
        }
        let mut text = format!(
            "{fs} varies the sample from {} to {} pages per interval at the default \
             {} interval; {fi} varies the interval from {} to {} at {} samples, on \
             the workloads {}. ",
            s.sample_grid.first().copied().unwrap_or(0),
            s.sample_grid.last().copied().unwrap_or(0),
            setting(s.interval),
            opt(s.interval_grid.first().map(|d| d.as_secs_f64()), |x| {
                setting(std::time::Duration::from_secs_f64(x))
            }),
            opt(s.interval_grid.last().map(|d| d.as_secs_f64()), |x| {
                setting(std::time::Duration::from_secs_f64(x))
            }),
            s.sample_pages,
            list(
                &self
                    .plan
                    .effective
                    .sample_sweep
                    .iter()
                    .map(|(w, _)| format!("`{}`", w.label))
                    .collect::<Vec<_>>()
            ),
        );
        if !enough.is_empty() {
            let _ = write!(
                text,
                "The smallest sample giving a MAPE under {} is {}.",
                pct(CRITERIA.max_mape),
                list(&enough)
            );
        }
        if !never.is_empty() {
            let _ = write!(
                text,
                " No sample size in the grid brings {} under {}.",
                list(&never),
                pct(CRITERIA.max_mape)
            );
            let remembered: Vec<String> = f
                .samples
                .iter()
                .filter(|x| x.smallest_accurate.is_none() && x.startup_memory)
                .map(|x| format!("`{}`", x.label))
                .collect();
            if !remembered.is_empty() {
                let _ = write!(
                    text,
                    " For {} the cause is not the sample but the start-up memory explained in \
                     {}, which no sample size removes.",
                    list(&remembered),
                    self.section_ref(Question::Works)
                );
            }
        }
        let lo = s.sample_grid.first().copied().unwrap_or(0);
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        self.summary.push(format!(
            "**How effective?** The error falls as the sample grows: over {} the median MAPE \
             is {} with {lo} sampled pages, {} with {} and {} with {hi} ({}).",
            list(
                &self
                    .plan
                    .effective
                    .sample_sweep
                    .iter()
                    .map(|(w, _)| format!("`{}`", w.label))
                    .collect::<Vec<_>>()
            ),
            opt(f.median_smallest, pct),
            opt(f.median_default, pct),
            s.sample_pages,
            opt(f.median_largest, pct),
            self.section_ref(Question::Effective),
        ));
        text.push_str(&format!(
            " A sample of n pages out of a domain of N, of which a fraction p is in the \
                 working set, sees about n·p touched pages, so its relative error shrinks as \
                 1/√(n·p): doubling the sample cuts the noise by {}, and a small working set \
                 in a large domain needs a large sample.",
            pct(1.0 - 1.0 / 2f64.sqrt())
        ));
        self.para(&text);
        let fig = self.figs.samples.clone();
        self.figure(&fig);
        let lo = s.sample_grid.first().copied().unwrap_or(0);
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        let heads = [
            format!("MAPE, {lo} samples"),
            format!("MAPE, {} samples", s.sample_pages),
            format!("MAPE, {hi} samples"),
            format!("bias, {hi} samples"),
            format!("fewest samples with MAPE < {}", pct(CRITERIA.max_mape)),
        ];
        let h = [
            "workload",
            "true WSS at default",
            &heads[0],
            &heads[1],
            &heads[2],
            &heads[3],
            &heads[4],
            "1σ sampling error of one interval at default",
        ];
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 7]);
        self.para(&table(&h, &align, &rows));
        self.interval_text(&f.intervals);
        let fig = self.figs.intervals.clone();
        self.figure(&fig);
        self.hard_cases();
        self.write_only();
    }

    /// How the interval changes the truth and the error.
    fn interval_text(&mut self, spans: &[IntervalSpan]) {
        let parts: Vec<String> = spans
            .iter()
            .map(|x| {
                format!(
                    "`{}` touches {} pages per {} interval and {} per {} one (MAPE {} and {})",
                    x.label,
                    count(x.shortest.1),
                    setting(x.shortest.0),
                    count(x.longest.1),
                    setting(x.longest.0),
                    opt(x.shortest.2, pct),
                    opt(x.longest.2, pct),
                )
            })
            .collect();
        if parts.is_empty() {
            return;
        }
        self.para(&format!(
            "The interval sets what the working set *is*: a paced program touches more \
             distinct pages in a longer interval. {}. A short interval therefore both shrinks \
             the truth, which the same sample resolves worse, and leaves the estimator fewer \
             intervals' history per second of change.",
            parts.join("; ")
        ));
    }
}

impl FigureWriter<'_> {
    /// MAPE and relative bias against the sample size (or the interval).
    pub(in crate::study) fn sweep_figure(&self, by_samples: bool) -> Result<Figure, StudyError> {
        let (stem, sweeps, x_label) = if by_samples {
            (
                "fig3-sample-size",
                &self.plan.effective.sample_sweep,
                "sampled pages per interval",
            )
        } else {
            (
                "fig4-interval",
                &self.plan.effective.interval_sweep,
                "interval (s)",
            )
        };
        let x_of = |spec: &Spec| {
            if by_samples {
                spec.sample_pages as f64
            } else {
                spec.interval.as_secs_f64()
            }
        };
        let mut mape_lines = Vec::new();
        let mut bias_lines = Vec::new();
        let mut data = Vec::new();
        for (w, specs) in sweeps {
            let mut mape = Vec::new();
            let mut bias = Vec::new();
            for spec in specs {
                let s = self.summary(spec);
                let x = x_of(spec);
                if let Some(m) = s.and_then(|s| s.mape) {
                    mape.push((x, m));
                }
                if let Some(b) = s.and_then(relative_bias) {
                    bias.push((x, b));
                }
                let mut cells = summary_cells(spec, s);
                cells.push(cell(s.and_then(faults_per_s)));
                data.push(cells);
            }
            mape_lines.push(Line {
                label: w.label.clone(),
                points: mape,
                dashed: false,
            });
            bias_lines.push(Line {
                label: w.label.clone(),
                points: bias,
                dashed: false,
            });
        }
        let mut header = SUMMARY_COLUMNS.to_vec();
        header.push("faults_per_s");
        self.csv(stem, &header, &data)?;
        let s = &self.plan.scale;
        let ticks: Vec<f64> = if by_samples {
            s.sample_grid.iter().map(|&n| n as f64).collect()
        } else {
            s.interval_grid.iter().map(|d| d.as_secs_f64()).collect()
        };
        let panel = |title: &str, y_label: &str, lines: Vec<Line>, y_ref| LinePanel {
            title: title.into(),
            x_label: x_label.into(),
            x_ticks: ticks.clone(),
            y_label: y_label.into(),
            y_format: YFormat::Percent,
            lines,
            y_ref,
        };
        let criteria = crate::study::recommend::CRITERIA;
        let panels = [
            panel(
                "MAPE",
                "mean absolute percentage error",
                mape_lines,
                Some((
                    criteria.max_mape,
                    format!("{} target", crate::study::format::pct(criteria.max_mape)),
                )),
            ),
            panel(
                "Bias (mean error / mean true WSS)",
                "relative bias",
                bias_lines,
                Some((0.0, "no bias".into())),
            ),
        ];
        let title = if by_samples {
            format!(
                "Error against sample size (uffd + esx, {} interval)",
                crate::study::format::setting(s.interval)
            )
        } else {
            format!(
                "Error against interval length (uffd + esx, {} samples)",
                s.sample_pages
            )
        };
        line_panels(&self.base(stem), &title, &panels, 2)?;
        let caption = if by_samples {
            "MAPE and bias of ESX as the number of pages sampled per interval doubles, at the \
             default interval. Both axes of the error are relative to the true WSS."
        } else {
            "MAPE and bias of ESX as the interval grows, at the default sample size. A longer \
             interval gives a paced guest time to touch more pages, so the true WSS itself \
             grows with the interval."
        };
        Ok(Figure {
            stem,
            title,
            caption: caption.into(),
            runs: sweeps.iter().flat_map(|(_, s)| s.iter().cloned()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    #[test]
    fn sample_needs_medians_and_interval_spans() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = std::collections::HashMap::new();
        // Sample sweep: MAPE 40/n (under 10% from 800 samples on), except
        // chase, which stays at 50%.
        for (w, specs) in &plan.effective.sample_sweep {
            for sp in specs {
                let mut s = summary_of(sp);
                s.mape = Some(if w.label == "chase" {
                    0.5
                } else {
                    40.0 / sp.sample_pages as f64
                });
                s.true_wss_mean_pages = 1000.0;
                outcomes.insert(sp.id(), finished(s));
            }
        }
        // Interval sweep: the truth grows with the interval (1000 pages per
        // second); the default point is the sample sweep's.
        for (_, specs) in &plan.effective.interval_sweep {
            for sp in specs {
                outcomes.entry(sp.id()).or_insert_with(|| {
                    let mut s = summary_of(sp);
                    s.mape = Some(0.2);
                    s.true_wss_mean_pages = 1000.0 * sp.interval.as_secs_f64();
                    finished(s)
                });
            }
        }
        let f = Effectiveness::from_runs(&plan, &Results::from_outcomes(outcomes));

        assert_eq!(f.samples.len(), plan.effective.sample_sweep.len());
        for x in &f.samples {
            let want = (x.label != "chase").then_some(800);
            assert_eq!(x.smallest_accurate, want, "{}", x.label);
            assert!(!x.startup_memory);
        }
        // Of the five values (four at 40/n, chase at 0.5) the median is
        // the third: 40/n both when it is above 0.5 and when below.
        assert_eq!(f.median_smallest, Some(40.0 / 25.0));
        assert_eq!(f.median_default, Some(0.1));
        assert_eq!(f.median_largest, Some(40.0 / 3200.0));

        assert_eq!(f.intervals.len(), plan.effective.interval_sweep.len());
        let ms = Duration::from_millis;
        for x in &f.intervals {
            assert_eq!(x.shortest, (ms(100), 100.0, Some(0.2)), "{}", x.label);
            assert_eq!(x.longest, (ms(10000), 10000.0, Some(0.2)), "{}", x.label);
        }
    }
}
