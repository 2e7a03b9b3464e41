//! The figure of question 3: what each mechanism costs the unpaced guest
//! as the sample grows, in steady state, and the data behind it.

use crate::analysis::derived::steady_guest_us_per_fault;
use crate::plot::series::{Line, LinePanel, YFormat, line_panels};
use crate::study::StudyError;
use crate::study::figures::{Figure, FigureWriter, cell, faults_per_s, vmm_cpu_share};
use crate::study::plan::{Spec, TRACKERS};

impl FigureWriter<'_> {
    /// Cost per mechanism against the sample size.
    pub(in crate::study) fn cost_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig7-cost";
        let mut faults = Vec::new();
        let mut slowdown = Vec::new();
        let mut cpu = Vec::new();
        let mut per_touch = Vec::new();
        let mut data = Vec::new();
        let runs: Vec<&Spec> = self
            .plan
            .efficient
            .sampled
            .iter()
            .chain(&self.plan.efficient.exhaustive)
            .collect();
        for t in TRACKERS {
            let mut f = Vec::new();
            let mut sl = Vec::new();
            let mut c = Vec::new();
            let mut pt = Vec::new();
            for spec in self
                .plan
                .efficient
                .sampled
                .iter()
                .filter(|s| s.tracker == t)
            {
                let Some(s) = self.summary(spec) else {
                    continue;
                };
                let x = spec.sample_pages as f64;
                if let Some(v) = s.steady_faults_per_s {
                    f.push((x, v));
                }
                if let Some(v) = s.steady_slowdown {
                    sl.push((x, v));
                }
                c.push((x, vmm_cpu_share(s)));
                if let Some(v) = steady_guest_us_per_fault(s) {
                    pt.push((x, v));
                }
            }
            let line = |points| Line {
                label: t.name().to_string(),
                points,
                dashed: false,
            };
            faults.push(line(f));
            slowdown.push(line(sl));
            cpu.push(line(c));
            per_touch.push(line(pt));
        }
        for spec in &runs {
            let s = self.summary(spec);
            let service = s.and_then(|s| s.tracker_stats.vmm_service_us_per_fault);
            data.push(vec![
                spec.id(),
                spec.tracker.name().to_string(),
                spec.estimator.name().to_string(),
                s.and_then(|s| s.sample_pages)
                    .map_or(String::new(), |n| n.to_string()),
                format!("{}", spec.interval.as_secs_f64()),
                cell(s.map(|s| s.duration_s)),
                cell(s.and_then(faults_per_s)),
                cell(s.and_then(|s| s.steady_faults_per_s)),
                cell(s.and_then(|s| s.fault_cost_us)),
                cell(s.and_then(steady_guest_us_per_fault)),
                cell(service),
                cell(s.and_then(|s| s.slowdown)),
                cell(s.and_then(|s| s.steady_slowdown)),
                cell(s.map(|s| s.guest_ops_per_s)),
                cell(s.and_then(|s| s.baseline_guest_ops_per_s)),
                cell(s.and_then(|s| s.steady_guest_ops_per_s)),
                cell(s.and_then(|s| s.first_touch_pages.map(|p| p as f64))),
                cell(s.and_then(|s| s.one_time_lost_s)),
                cell(s.and_then(|s| s.first_touch_us_per_page)),
                cell(s.map(|s| s.vmm_cpu_s)),
                cell(s.map(vmm_cpu_share)),
            ]);
        }
        self.csv(
            stem,
            &[
                "run_id",
                "tracker",
                "estimator",
                "sample_pages",
                "interval_s",
                "duration_s",
                "faults_per_s",
                "steady_faults_per_s",
                "fault_cost_us",
                "steady_lost_us_per_fault",
                "vmm_service_us_per_fault",
                "slowdown",
                "steady_slowdown",
                "guest_ops_per_s",
                "baseline_guest_ops_per_s",
                "steady_guest_ops_per_s",
                "first_touch_pages",
                "one_time_lost_s",
                "first_touch_us_per_page",
                "vmm_cpu_s",
                "vmm_cpu_share",
            ],
            &data,
        )?;
        let ticks: Vec<f64> = self
            .plan
            .scale
            .sample_grid
            .iter()
            .map(|&n| n as f64)
            .collect();
        let panel = |title: &str, y_label: &str, y_format, lines| LinePanel {
            title: title.into(),
            x_label: "sampled pages per interval".into(),
            x_ticks: ticks.clone(),
            y_label: y_label.into(),
            y_format,
            lines,
            y_ref: None,
        };
        let panels = [
            panel(
                "Tracked faults per second, steady state",
                "faults / s",
                YFormat::Plain,
                faults,
            ),
            panel(
                "Steady guest slowdown vs untracked twin",
                "slowdown",
                YFormat::Percent,
                slowdown,
            ),
            panel(
                "Guest time lost per tracked fault (steady slowdown / faults per s)",
                "microseconds",
                YFormat::Plain,
                per_touch,
            ),
            panel(
                "VMM CPU (sampler and fault handling)",
                "share of one CPU",
                YFormat::Percent,
                cpu,
            ),
        ];
        let title = format!(
            "Cost of tracking an unpaced random program (esx, {} interval)",
            crate::study::format::setting(self.plan.scale.cost_interval)
        );
        line_panels(&self.base(stem), &title, &panels, 2)?;
        Ok(Figure {
            stem,
            title,
            caption: format!(
                "What each mechanism costs as the sample grows, on a guest that touches its \
                 whole working set as fast as it can, so that nearly every sampled page in it \
                 faults. The interval is {} so that faults are frequent enough to measure. \
                 Each run is preceded by its untracked twin, which gives the slowdown; rates \
                 and slowdowns are over the scored intervals after a {} warm-up (the steady \
                 state, uffd's first-touch fill left out). The data also holds the whole-run \
                 figures and exhaustive tracking (at the default {} interval).",
                crate::study::format::setting(self.plan.scale.cost_interval),
                crate::study::format::setting(self.plan.scale.cost_warmup),
                crate::study::format::setting(self.plan.scale.interval)
            ),
            runs: runs.into_iter().cloned().collect(),
        })
    }
}
