//! Question 1, does it work: the default setting on every access pattern
//! and application program, against DAMON and exhaustive tracking. The
//! cross-check of the truth it ends with is `super::truth_check`.

use std::fmt::Write as _;

use super::Question;
use super::truth_check::TruthCheck;
use crate::estimate::EstimatorKind;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::plot::table_map::plot_heatmap;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{sampling_error, startup_sentence};
use crate::study::execute::Results;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::figures::{
    STEP, SUMMARY_COLUMNS, cell, faults_per_s, lag_cell, relative_bias, summary_cells,
};
use crate::study::format::{Align, NA, count, list, opt, pct, setting, signed_pct, table};
use crate::study::plan::{Plan, Spec, Workload};
use crate::study::plan::{QuestionRuns, SpecMaker};
use crate::study::recommend::CRITERIA;
use crate::track::TrackerKind;

/// The runs question 1 adds to the default setting of the access patterns
/// (the plan's `defaults`): the default setting of the application
/// programs, and the same setting with DAMON and with exhaustive tracking
/// for every program, access patterns first.
#[derive(Debug, Clone, PartialEq)]
pub struct WorksRuns {
    /// uffd + esx at the default setting, per application program.
    pub applications: Vec<Spec>,
    pub damon: Vec<Spec>,
    pub exhaustive: Vec<Spec>,
}

impl WorksRuns {
    pub fn plan(make: &SpecMaker, workloads: &[Workload], applications: &[Workload]) -> WorksRuns {
        let s = make.scale;
        let by_estimator = |kind: EstimatorKind| -> Vec<Spec> {
            workloads
                .iter()
                .chain(applications)
                .map(|w| {
                    make.spec(
                        w,
                        TrackerKind::Uffd,
                        kind,
                        s.sample_pages,
                        s.interval,
                        s.sweep_duration,
                    )
                })
                .collect()
        };
        WorksRuns {
            applications: applications.iter().map(|w| make.default_run(w)).collect(),
            damon: by_estimator(EstimatorKind::Damon),
            exhaustive: by_estimator(EstimatorKind::Exhaustive),
        }
    }
}

impl QuestionRuns for WorksRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.applications
            .iter()
            .chain(&self.damon)
            .chain(&self.exhaustive)
            .collect()
    }
}

/// A program question 1 studies, with its runs at the default setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Studied<'a> {
    pub workload: &'a Workload,
    /// An application program rather than an access pattern.
    pub application: bool,
    pub esx: &'a Spec,
    pub damon: &'a Spec,
    pub exhaustive: &'a Spec,
}

/// Picks one of a studied program's runs (a column of Figure 2).
type RunOf = for<'a> fn(&Studied<'a>) -> &'a Spec;

/// The programs of question 1 in table order: the access patterns, then
/// the application programs.
pub fn studied(plan: &Plan) -> Vec<Studied<'_>> {
    let kinds = plan
        .workloads
        .iter()
        .map(|w| (w, false))
        .chain(plan.applications.iter().map(|w| (w, true)));
    let esx = plan.defaults.iter().chain(&plan.works.applications);
    kinds
        .zip(esx)
        .zip(plan.works.damon.iter().zip(&plan.works.exhaustive))
        .map(
            |(((workload, application), esx), (damon, exhaustive))| Studied {
                workload,
                application,
                esx,
                damon,
                exhaustive,
            },
        )
        .collect()
}

/// One run's MAPE, named by its workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub label: String,
    pub mape: f64,
}

impl Scored {
    /// "`label` (12.3%)", as the prose lists it.
    fn item(&self) -> String {
        format!("`{}` ({})", self.label, pct(self.mape))
    }
}

/// The runs of `specs` that have a MAPE, split by the accuracy criterion:
/// (under it, at or over it).
fn split_by_criterion<'a>(
    results: &Results,
    specs: impl Iterator<Item = &'a Spec>,
) -> (Vec<Scored>, Vec<Scored>) {
    specs
        .filter_map(|sp| {
            let mape = results.summary(sp)?.mape?;
            Some(Scored {
                label: sp.workload.label.clone(),
                mape,
            })
        })
        .partition(|x| x.mape < CRITERIA.max_mape)
}

/// The findings of question 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Works {
    /// The default setting's MAPE per access pattern, under the criterion
    /// and not, in workload order.
    pub under: Vec<Scored>,
    pub over: Vec<Scored>,
    /// The same per application program.
    pub app_under: Vec<Scored>,
    pub app_over: Vec<Scored>,
    /// The same for DAMON at the default setting.
    pub damon_under: Vec<Scored>,
    pub damon_over: Vec<Scored>,
    /// `None` when no exhaustive run has a MAPE.
    pub truth: Option<TruthCheck>,
}

impl Works {
    pub fn from_runs(plan: &Plan, results: &Results) -> Works {
        let all = studied(plan);
        let esx_of = |application: bool| {
            all.iter()
                .filter(move |x| x.application == application)
                .map(|x| x.esx)
        };
        let (under, over) = split_by_criterion(results, esx_of(false));
        let (app_under, app_over) = split_by_criterion(results, esx_of(true));
        let (damon_under, damon_over) = split_by_criterion(results, plan.works.damon.iter());
        Works {
            under,
            over,
            app_under,
            app_over,
            damon_under,
            damon_over,
            truth: TruthCheck::from_runs(plan, results),
        }
    }
}

/// "`g` of `t` `kind`, a and b, not c": how many programs of one kind meet
/// the accuracy criterion, for the summary.
fn tally(kind: &str, under: &[Scored], over: &[Scored]) -> String {
    let good: Vec<String> = under.iter().map(Scored::item).collect();
    let bad: Vec<String> = over.iter().map(Scored::item).collect();
    let mut t = format!("{} of {} {kind}", good.len(), good.len() + bad.len());
    if !good.is_empty() {
        let _ = write!(t, ", {}", list(&good));
    }
    if !bad.is_empty() {
        let _ = write!(t, ", not {}", list(&bad));
    }
    t
}

/// "Among the `kind`, the MAPE is under … for …; it is … or more for …",
/// or nothing when no run of that kind has a MAPE.
fn criterion_sentence(kind: &str, under: &[Scored], over: &[Scored]) -> String {
    let good: Vec<String> = under.iter().map(Scored::item).collect();
    let bad: Vec<String> = over.iter().map(Scored::item).collect();
    let limit = pct(CRITERIA.max_mape);
    match (good.is_empty(), bad.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(
            " Among the {kind}, the MAPE is under {limit} for {}.",
            list(&good)
        ),
        (true, false) => format!(
            " Among the {kind}, the MAPE is {limit} or more for {}.",
            list(&bad)
        ),
        (false, false) => format!(
            " Among the {kind}, the MAPE is under {limit} for {}; it is {limit} or more for {}.",
            list(&good),
            list(&bad)
        ),
    }
}

impl Doc<'_> {
    /// The table rows of question 1's programs of one kind, and a note on
    /// each whose default setting misses the criterion (`over`).
    fn works_rows(
        &self,
        application: bool,
        over: &[Scored],
        domain: u64,
    ) -> (Vec<Vec<String>>, Vec<String>) {
        let n = self.plan.scale.sample_pages;
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        for x in studied(self.plan)
            .into_iter()
            .filter(|x| x.application == application)
        {
            let w = x.workload;
            let d = self.s(x.esx);
            let damon = self.s(x.damon);
            let exh = self.s(x.exhaustive);
            let err = d.and_then(|d| sampling_error(d.true_wss_mean_pages, domain, n));
            rows.push(vec![
                format!("`{}`", w.label),
                opt(d.map(|d| d.true_wss_mean_pages), count),
                opt(d.and_then(|d| d.est_wss_mean_pages), count),
                opt(d.and_then(|d| d.mape), pct),
                opt(d.and_then(relative_bias), signed_pct),
                opt(d.and_then(|d| d.mae_pages), count),
                d.map_or(NA.into(), |d| lag_cell(d.lag_up_intervals, d.lag_up_events)),
                d.map_or(NA.into(), |d| {
                    lag_cell(d.lag_down_intervals, d.lag_down_events)
                }),
                opt(err, pct),
                opt(damon.and_then(|d| d.mape), pct),
                opt(exh.and_then(|d| d.mape), pct),
            ]);
            if over.iter().any(|o| o.label == w.label)
                && let Some((d, series)) = self.results.get(x.esx)
                && let Some(note) = self.why_default_fails(w, d, series, domain)
            {
                notes.push(note);
            }
        }
        (rows, notes)
    }

    pub(in crate::study) fn works(&mut self) {
        let f = Works::from_runs(self.plan, self.results);
        let s = self.plan.scale.clone();
        self.heading(Question::Works);
        let domain = self.domain_pages().unwrap_or(0);
        let (pattern_rows, pattern_notes) = self.works_rows(false, &f.over, domain);
        let (app_rows, app_notes) = self.works_rows(true, &f.app_over, domain);
        let paced: Vec<String> = self
            .plan
            .applications
            .iter()
            .map(|w| format!("`{}`", w.describe()))
            .collect();
        let mut text = format!(
            "{} shows the estimate against the truth over time for every program at the \
             default setting ({} runs with uffd and ESX, {} samples every {}): first the {} \
             access patterns, each of which touches memory in one way throughout, then the {} \
             application programs, which run a real algorithm whose phases (an init pass, \
             scans, collections, compactions) change what they touch. The application \
             programs are paced in their own unit of work (records, allocations, rows, \
             requests, edges, cells per second), so that their phases fall at the same point \
             of every run: {}.",
            self.fig_ref(&self.figs.works),
            setting(s.run_duration),
            s.sample_pages,
            setting(s.interval),
            self.plan.workloads.len(),
            self.plan.applications.len(),
            list(&paced)
        );
        text.push_str(&criterion_sentence("access patterns", &f.under, &f.over));
        text.push_str(&criterion_sentence(
            "application programs",
            &f.app_under,
            &f.app_over,
        ));
        self.para(&text);
        let limit = pct(CRITERIA.max_mape);
        self.summary.push(format!(
            "**Does it work?** At the default setting (uffd + ESX, {} samples every {}) the \
             MAPE is under {limit} for {}; it is under {limit} for {} ({} says why).",
            s.sample_pages,
            setting(s.interval),
            tally("access patterns", &f.under, &f.over),
            tally("application programs", &f.app_under, &f.app_over),
            self.section_ref(Question::Works)
        ));
        for n in pattern_notes.iter().chain(&app_notes) {
            self.line(&format!("- {n}"));
        }
        self.line("");
        let fig = self.figs.works.clone();
        self.figure(&fig);
        let h = [
            "program",
            "true WSS",
            "estimate",
            "MAPE",
            "bias",
            "MAE (pages)",
            "lag up (intervals)",
            "lag down (intervals)",
            "1σ sampling error of one interval",
            "DAMON MAPE",
            "exhaustive MAPE",
        ];
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 10]);
        self.para(&format!(
            "Errors per access pattern (ESX columns from the runs of {}; DAMON and exhaustive \
             columns from {} runs at the same setting; WSS columns are mean pages; the \
             sampling error is what one interval's sample alone would give, √((1−p)/(n·p)) \
             for a true fraction p of the domain and n samples; the reported estimate \
             averages over intervals):",
            self.fig_ref(&self.figs.works),
            setting(s.sweep_duration)
        ));
        self.para(&table(&h, &align, &pattern_rows));
        self.para(
            "Errors per application program, with the same columns from the same kinds of runs:",
        );
        self.para(&table(&h, &align, &app_rows));
        let damon_ok: Vec<String> = f.damon_under.iter().map(Scored::item).collect();
        let damon_bad: Vec<String> = f.damon_over.iter().map(Scored::item).collect();
        if !damon_ok.is_empty() || !damon_bad.is_empty() {
            let mut text = String::from("**DAMON** at the same setting");
            if !damon_ok.is_empty() {
                let _ = write!(
                    text,
                    " is under {} on {}",
                    pct(CRITERIA.max_mape),
                    list(&damon_ok)
                );
            }
            if !damon_bad.is_empty() {
                let _ = write!(
                    text,
                    "{} {} or more on {}",
                    if damon_ok.is_empty() { " is" } else { ", and" },
                    pct(CRITERIA.max_mape),
                    list(&damon_bad)
                );
            }
            let _ = write!(
                text,
                ". Its regions assume that neighbouring pages are used alike, which holds for \
                 a working set that is one contiguous part of the region, touched throughout \
                 (as in `phases` and `ramp`), and not for one scattered over it; {} \
                 looks at the patterns that break it.",
                self.section_ref(Question::Effective)
            );
            self.para(&text);
        }
        self.exhaustive_check(f.truth.as_ref());
        let fig = self.figs.estimators.clone();
        self.figure(&fig);
    }

    /// A sentence on why the default setting misses on `w`, where the data
    /// points to a reason.
    fn why_default_fails(
        &self,
        w: &Workload,
        d: &Summary,
        rows: &[Row],
        domain: u64,
    ) -> Option<String> {
        let n = self.plan.scale.sample_pages;
        let per_sample = domain as f64 / n as f64;
        if let Some(why) = startup_sentence(
            rows,
            d,
            self.plan.defaults[0].gains,
            &self.section_ref(Question::Agile),
        ) {
            return Some(format!("`{}`: {why}", w.label));
        }
        if d.lag_down_events > 0
            && d.bias_pages.is_some_and(|b| b > 0.0)
            && d.lag_down_intervals
                .is_none_or(|l| l >= CRITERIA.max_lag_up)
        {
            return Some(format!(
                "`{}`: its working set shrinks by {} or more {} times during the run, and ESX's \
                 slow average (gain {}) lets go of a shrunken working set over many intervals \
                 (lag down: {}), so the estimate stays above the truth after each shrink (bias \
                 {}); {} weighs this against reacting to growth.",
                w.label,
                pct(STEP),
                d.lag_down_events,
                self.plan.defaults[0].gains.slow,
                lag_cell(d.lag_down_intervals, d.lag_down_events),
                opt(relative_bias(d), signed_pct),
                self.section_ref(Question::Agile)
            ));
        }
        if d.true_wss_mean_pages < per_sample {
            return Some(format!(
                "`{}`: its true WSS ({} pages) is smaller than what one sampled page stands \
                 for ({} pages), so most intervals see no touched sample at all and any that \
                 does overshoots.",
                w.label,
                count(d.true_wss_mean_pages),
                count(per_sample)
            ));
        }
        let err = sampling_error(d.true_wss_mean_pages, domain, n)?;
        let bias = relative_bias(d)?;
        let mut s = format!(
            "`{}`: one interval's sample has a {} standard error at this WSS",
            w.label,
            pct(err)
        );
        if bias.abs() >= CRITERIA.max_mape / 2.0 {
            let _ = write!(
                s,
                ", and the estimate is biased {} ({}): ",
                if bias > 0.0 { "upwards" } else { "downwards" },
                signed_pct(bias)
            );
            if bias > 0.0 {
                s.push_str(
                    "ESX reports the larger of its two averages, which errs upwards whenever \
                     the sampled fraction fluctuates or the working set shrinks.",
                );
            } else {
                s.push_str("touched samples are missed, so the estimate falls short of the truth.");
            }
        } else {
            s.push_str(", with little bias: the error is sampling noise.");
        }
        Some(s)
    }
}

impl FigureWriter<'_> {
    /// Per workload, the time series of the default setting.
    pub(in crate::study) fn works_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig1-estimate-vs-truth";
        let mut panels = Vec::new();
        let mut data = Vec::new();
        let esx: Vec<Spec> = studied(self.plan)
            .into_iter()
            .map(|x| x.esx.clone())
            .collect();
        for spec in &esx {
            let (title, rows) = match self.results.get(spec) {
                Some((s, rows)) => (
                    format!(
                        "{}: MAPE {}",
                        spec.workload.label,
                        crate::study::format::opt(s.mape, crate::study::format::pct)
                    ),
                    rows.to_vec(),
                ),
                None => (format!("{}: run failed", spec.workload.label), Vec::new()),
            };
            for r in &rows {
                data.push(vec![
                    spec.workload.label.clone(),
                    format!("{}", r.t_s),
                    format!("{}", r.interval_s),
                    r.true_wss_pages.to_string(),
                    r.true_wss_write_pages.to_string(),
                    cell(r.est_wss_pages),
                    cell(r.est_lo_pages),
                    cell(r.est_hi_pages),
                    r.full.to_string(),
                ]);
            }
            panels.push(SeriesPanel {
                title,
                rows,
                show_writes: false,
            });
        }
        self.csv(
            stem,
            &[
                "workload",
                "t_s",
                "interval_s",
                "true_wss_pages",
                "true_wss_write_pages",
                "est_wss_pages",
                "est_lo_pages",
                "est_hi_pages",
                "full",
            ],
            &data,
        )?;
        let s = &self.plan.scale;
        let title = format!(
            "Estimated vs true WSS, uffd + esx, {} samples, {} interval",
            s.sample_pages,
            crate::study::format::setting(s.interval)
        );
        series_panels(&self.base(stem), &title, &panels, 3)?;
        Ok(Figure {
            stem,
            title,
            caption: "One panel per program, the access patterns first, then the application \
                      programs: the true working set (pages the guest read or wrote in each \
                      interval, counted by the guest runtime), the ESX estimate and its 95% \
                      interval. MAPE is over the intervals after warm-up."
                .into(),
            runs: esx,
        })
    }

    /// MAPE per workload and estimator, as a heat map.
    pub(in crate::study) fn estimators_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig2-estimators";
        let programs = studied(self.plan);
        let columns: [(&str, RunOf); 3] = [
            ("esx", |x| x.esx),
            ("damon", |x| x.damon),
            ("exhaustive", |x| x.exhaustive),
        ];
        let mut values = Vec::new();
        let mut data = Vec::new();
        for x in &programs {
            let mut row = Vec::new();
            for (_, run_of) in &columns {
                let spec = run_of(x);
                let s = self.summary(spec);
                row.push(s.and_then(|s| s.mape).map(|m| m * 100.0));
                let mut cells = summary_cells(spec, s);
                cells.push(cell(s.and_then(faults_per_s)));
                data.push(cells);
            }
            values.push(row);
        }
        let mut header = SUMMARY_COLUMNS.to_vec();
        header.push("faults_per_s");
        self.csv(stem, &header, &data)?;
        let labels: Vec<String> = programs.iter().map(|x| x.workload.label.clone()).collect();
        let x: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let title = "MAPE (%) by program and estimator, uffd tracking";
        plot_heatmap(title, &x, &labels, &values, "MAPE (%)", &self.base(stem))?;
        let runs = columns
            .iter()
            .flat_map(|(_, run_of)| programs.iter().map(|x| run_of(x).clone()))
            .collect();
        Ok(Figure {
            stem,
            title: title.into(),
            caption: "MAPE of each estimator on each program (the access patterns, then the \
                      application programs) under uffd tracking. Exhaustive \
                      tracking arms every page every interval, so its estimate is a count made \
                      by the VMM and should match the guest's own count."
                .into(),
            runs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::execute::Outcome;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    /// A finished run of `sp` with MAPE `mape`, `faults` tracked faults
    /// over `duration_s` and `forced` holds.
    fn run(sp: &Spec, mape: f64, faults: u64, forced: u64) -> (String, Outcome) {
        let mut s = summary_of(sp);
        s.mape = Some(mape);
        s.mae_pages = Some(mape * 1000.0);
        s.duration_s = 10.0;
        s.tracked_faults = Some(faults);
        s.forced_holds = forced;
        (sp.id(), finished(s))
    }

    #[test]
    fn workloads_are_split_by_the_criterion_and_the_truth_checked() {
        let plan = Plan::new(Scale::full());
        let n = plan.workloads.len();
        let apps = plan.applications.len();
        let mut outcomes = Vec::new();
        // Default setting: every other access pattern misses; the last has
        // no run. Of the application programs only the second misses.
        for (i, sp) in plan.defaults.iter().enumerate().take(n - 1) {
            let mape = if i % 2 == 0 { 0.05 } else { 0.5 };
            outcomes.push(run(sp, mape, 0, 0));
        }
        for (i, sp) in plan.works.applications.iter().enumerate() {
            outcomes.push(run(sp, if i == 1 { 0.4 } else { 0.08 }, 0, 0));
        }
        // DAMON misses everywhere.
        for sp in &plan.works.damon {
            outcomes.push(run(sp, 0.3, 0, 0));
        }
        // Exhaustive: 0 except 0.02 on the third and fourth workloads (the
        // first of them is the worst), one forced hold each.
        for (i, sp) in plan.works.exhaustive.iter().enumerate() {
            let mape = if i == 2 || i == 3 { 0.02 } else { 0.0 };
            outcomes.push(run(sp, mape, 1000 * (i as u64 + 1), 1));
        }
        let f = Works::from_runs(&plan, &Results::from_outcomes(outcomes));

        let labels = |v: &[Scored]| v.iter().map(|x| x.label.clone()).collect::<Vec<_>>();
        let want_under: Vec<String> = plan.workloads[..n - 1]
            .iter()
            .step_by(2)
            .map(|w| w.label.clone())
            .collect();
        assert_eq!(labels(&f.under), want_under);
        assert_eq!(f.under.len() + f.over.len(), n - 1);
        assert!(f.over.iter().all(|x| x.mape == 0.5));
        assert_eq!(labels(&f.app_over), ["gcheap"]);
        assert_eq!(f.app_under.len(), apps - 1);
        assert!(f.app_under.iter().all(|x| x.mape == 0.08));
        assert!(f.damon_under.is_empty());
        assert_eq!(f.damon_over.len(), n + apps);

        let t = f.truth.expect("exhaustive runs finished");
        assert_eq!(t.workloads, n + apps);
        assert_eq!(t.worst.label, plan.workloads[2].label);
        assert_eq!(t.worst.mape, 0.02);
        assert_eq!(t.worst_mae_pages, Some(20.0));
        assert_eq!(t.median_mape, Some(0.0));
        assert_eq!(t.peak_faults_per_s, Some(100.0 * (n + apps) as f64));
        assert_eq!(t.forced_holds, (n + apps) as u64);
    }

    #[test]
    fn studied_pairs_each_program_with_its_own_runs() {
        let plan = Plan::new(Scale::full());
        let all = studied(&plan);
        assert_eq!(all.len(), plan.workloads.len() + plan.applications.len());
        for x in &all {
            for sp in [x.esx, x.damon, x.exhaustive] {
                assert_eq!(&sp.workload, x.workload);
            }
            assert_eq!(x.esx.estimator, EstimatorKind::Esx);
            assert_eq!(x.damon.estimator, EstimatorKind::Damon);
            assert_eq!(x.exhaustive.estimator, EstimatorKind::Exhaustive);
            assert_eq!(x.application, plan.applications.contains(x.workload));
        }
        assert!(!all[0].application && all[all.len() - 1].application);
        assert_eq!(all[plan.workloads.len()].workload.guest, "extsort");
    }

    #[test]
    fn no_exhaustive_run_means_no_truth_check() {
        let plan = Plan::new(Scale::full());
        let f = Works::from_runs(&plan, &Results::default());
        assert_eq!(f.truth, None);
        assert!(f.under.is_empty() && f.over.is_empty());
    }
}
