//! Question 1, does it work: the default setting on every workload, and the cross-check of the truth.

use std::fmt::Write as _;

use super::Question;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::plot::table_map::plot_heatmap;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::*;
use crate::study::figures::*;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::format::*;
use crate::study::plan::Workload;
use crate::study::recommend::CRITERIA;

impl Doc<'_> {
    pub(in crate::study) fn works(&mut self) {
        let s = self.plan.scale.clone();
        self.heading(Question::Works);
        let fig = &self.figs.works;
        let mut rows = Vec::new();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut notes = Vec::new();
        let domain = self.domain_pages().unwrap_or(0);
        for (i, w) in self.plan.workloads.iter().enumerate() {
            let d = self.s(&self.plan.defaults[i]);
            let damon = self.s(&self.plan.damon[i]);
            let exh = self.s(&self.plan.exhaustive[i]);
            let err = d.and_then(|d| sampling_error(d.true_wss_mean_pages, domain, s.sample_pages));
            rows.push(vec![
                format!("`{}`", w.label),
                opt(d.map(|d| d.true_wss_mean_pages), count),
                opt(d.and_then(|d| d.est_wss_mean_pages), count),
                opt(d.and_then(|d| d.mape), pct),
                opt(d.and_then(rel_bias), signed_pct),
                opt(d.and_then(|d| d.mae_pages), count),
                d.map_or(NA.into(), |d| lag_cell(d.lag_up_intervals, d.lag_up_events)),
                d.map_or(NA.into(), |d| {
                    lag_cell(d.lag_down_intervals, d.lag_down_events)
                }),
                opt(err, pct),
                opt(damon.and_then(|d| d.mape), pct),
                opt(exh.and_then(|d| d.mape), pct),
            ]);
            if let Some(m) = d.and_then(|d| d.mape) {
                let item = format!("`{}` ({})", w.label, pct(m));
                if m < CRITERIA.max_mape {
                    good.push(item);
                } else {
                    bad.push(item);
                    if let Some((d, rows)) = self.results.get(&self.plan.defaults[i]) {
                        notes.push(self.why_default_fails(w, d, rows, domain));
                    }
                }
            }
        }
        let mut text = format!(
            "{} shows the estimate against the truth over time for every workload at \
             the default setting ({} runs with uffd and ESX, {} samples every {}).",
            self.fig_ref(fig),
            setting(s.run_duration),
            s.sample_pages,
            setting(s.interval)
        );
        if !good.is_empty() {
            let _ = write!(
                text,
                " The MAPE is under {} for {}.",
                pct(CRITERIA.max_mape),
                list(&good)
            );
        }
        if !bad.is_empty() {
            let _ = write!(
                text,
                " It is {} or more for {}.",
                pct(CRITERIA.max_mape),
                list(&bad)
            );
        }
        self.para(&text);
        self.summary.push(format!(
            "**Does it work?** At the default setting (uffd + ESX, {} samples every {}) the \
             MAPE is under {} for {} of {} workloads{}{} ({} says why).",
            s.sample_pages,
            setting(s.interval),
            pct(CRITERIA.max_mape),
            good.len(),
            good.len() + bad.len(),
            if good.is_empty() {
                String::new()
            } else {
                format!(", {}", list(&good))
            },
            if bad.is_empty() {
                String::new()
            } else {
                format!("; it is not for {}", list(&bad))
            },
            self.section_ref(Question::Works)
        ));
        for n in notes.into_iter().flatten() {
            self.line(&format!("- {n}"));
        }
        self.line("");
        let fig = self.figs.works.clone();
        self.figure(&fig);
        let h = [
            "workload",
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
        let t = table(&h, &align, &rows);
        self.para(&format!(
            "Errors per workload (ESX columns from the runs of {}; DAMON and exhaustive \
             columns from {} runs at the same setting; WSS columns are mean pages; the \
             sampling error is what one interval's sample alone would give, √((1−p)/(n·p)) \
             for a true fraction p of the domain and n samples; the reported estimate \
             averages over intervals):",
            self.fig_ref(&self.figs.works),
            setting(s.sweep_duration)
        ));
        self.para(&t);
        let (mut damon_ok, mut damon_bad) = (Vec::new(), Vec::new());
        for sp in &self.plan.damon {
            if let Some(m) = self.s(sp).and_then(|m| m.mape) {
                let item = format!("`{}` ({})", sp.workload.label, pct(m));
                if m < CRITERIA.max_mape {
                    damon_ok.push(item);
                } else {
                    damon_bad.push(item);
                }
            }
        }
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
        self.exhaustive_check();
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
                opt(rel_bias(d), signed_pct),
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
        let bias = rel_bias(d)?;
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

    fn exhaustive_check(&mut self) {
        let mut worst: Option<(String, f64)> = None;
        let mut all = Vec::new();
        for sp in &self.plan.exhaustive {
            if let Some(m) = self.s(sp).and_then(|s| s.mape) {
                all.push(m);
                if worst.as_ref().is_none_or(|w| m > w.1) {
                    worst = Some((sp.workload.label.clone(), m));
                }
            }
        }
        let Some((label, max)) = worst else {
            self.para("No exhaustive run finished, so the truth could not be cross-checked.");
            return;
        };
        let faults: Vec<f64> = self
            .plan
            .exhaustive
            .iter()
            .filter_map(|sp| self.s(sp).and_then(faults_per_s))
            .collect();
        let worst_mae = self
            .plan
            .exhaustive
            .iter()
            .find(|sp| sp.workload.label == label)
            .and_then(|sp| self.s(sp))
            .and_then(|s| s.mae_pages);
        let mut text = String::from(
            "**Cross-check of the truth.** Exhaustive tracking arms every page of the domain \
             every interval, so its estimate is the VMM's own count of the pages the guest \
             touched. ",
        );
        let peak_faults = opt(faults.iter().copied().reduce(f64::max), count);
        if max == 0.0 {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE is 0 in all {} workloads, at a cost \
                 of up to {peak_faults} tracked faults per second. ",
                all.len()
            );
        } else {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE has a median of {} over the \
                 workloads and is at most {} (`{label}`, off by {} pages per interval on \
                 average), at a cost of up to {peak_faults} tracked faults per second. ",
                opt(median(&all), pct),
                pct(max),
                opt(worst_mae, count),
            );
        }
        if max == 0.0 {
            self.summary.push(
                "**Is the truth right?** Yes: the VMM's own exhaustive count equals the \
                 guest's count of touched pages in every scored interval of every workload \
                 (MAPE 0)."
                    .to_string(),
            );
            text.push_str(
                "The two independent counts are equal in every scored interval: the guest is \
                 held at every boundary, at a point between two whole accesses, so nothing it \
                 touches can fall between the VMM's count and its own.",
            );
        } else {
            self.summary.push(format!(
                "**Is the truth right?** The VMM's own exhaustive count agrees with the \
                 guest's count of touched pages to a median MAPE of {} over the workloads (at \
                 most {}), where it should be exact.",
                opt(median(&all), pct),
                pct(max)
            ));
            let forced: u64 = self
                .plan
                .exhaustive
                .iter()
                .filter_map(|sp| self.s(sp))
                .map(|s| s.forced_holds)
                .sum();
            let _ = write!(
                text,
                "The two counts should be equal, since the guest is held at every boundary; \
                 where they differ, something broke that guarantee ({forced} holds had to be \
                 taken mid-access), and the runs above say where."
            );
        }
        self.para(&text);
    }
}

impl FigureWriter<'_> {
    /// Per workload, the time series of the default setting.
    pub(in crate::study) fn works_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig1-estimate-vs-truth";
        let mut panels = Vec::new();
        let mut data = Vec::new();
        for spec in &self.plan.defaults {
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
            caption: "One panel per workload: the true working set (pages the guest read or \
                      wrote in each interval, counted by the guest runtime), the ESX estimate \
                      and its 95% interval. MAPE is over the intervals after warm-up."
                .into(),
            runs: self.plan.defaults.clone(),
        })
    }

    /// MAPE per workload and estimator, as a heat map.
    pub(in crate::study) fn estimators_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig2-estimators";
        let columns = [
            ("esx", &self.plan.defaults),
            ("damon", &self.plan.damon),
            ("exhaustive", &self.plan.exhaustive),
        ];
        let mut values = Vec::new();
        let mut data = Vec::new();
        for (i, w) in self.plan.workloads.iter().enumerate() {
            let mut row = Vec::new();
            for (_, specs) in &columns {
                let spec = &specs[i];
                let s = self.summary(spec);
                row.push(s.and_then(|s| s.mape).map(|m| m * 100.0));
                let mut cells = summary_cells(spec, s);
                cells.push(cell(s.and_then(faults_per_s)));
                data.push(cells);
            }
            debug_assert!(columns.iter().all(|(_, s)| s[i].workload == *w));
            values.push(row);
        }
        let mut header = SUMMARY_COLUMNS.to_vec();
        header.push("faults_per_s");
        self.csv(stem, &header, &data)?;
        let labels: Vec<String> = self
            .plan
            .workloads
            .iter()
            .map(|w| w.label.clone())
            .collect();
        let x: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let title = "MAPE (%) by workload and estimator, uffd tracking";
        plot_heatmap(title, &x, &labels, &values, "MAPE (%)", &self.base(stem))?;
        let runs = columns
            .iter()
            .flat_map(|(_, s)| s.iter().cloned())
            .collect();
        Ok(Figure {
            stem,
            title: title.into(),
            caption: "MAPE of each estimator on each workload under uffd tracking. Exhaustive \
                      tracking arms every page every interval, so its estimate is a count made \
                      by the VMM and should match the guest's own count."
                .into(),
            runs,
        })
    }
}
