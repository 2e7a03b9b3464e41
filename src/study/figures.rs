//! The study's figures: for each, the data behind it as CSV under
//! `study/data/`, and the drawing as SVG and PNG under `study/`. Quantities
//! derived from a run (faults per second, relative bias, lag in seconds)
//! are defined here once, for the figures and the text alike.

use std::path::{Path, PathBuf};

use super::StudyError;
use super::execute::Results;
use super::plan::{Plan, Spec, TRACKERS};
use crate::estimate::EstimatorKind;
use crate::plot::series::{Line, LinePanel, SeriesPanel, YFormat, line_panels, series_panels};
use crate::plot::table_map::plot_heatmap;
use crate::report::metrics::{self, Metrics, TruthColumn};
use crate::report::summary::Summary;
use crate::report::timeseries::Row;

/// One figure: where its files are (relative to the document) and the runs
/// it was drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub stem: &'static str,
    pub title: String,
    /// What the figure shows, for its caption.
    pub caption: String,
    pub runs: Vec<Spec>,
}

/// Stands in a caption for "Figure N" of the figure `stem`; the document
/// writer numbers the figures and puts the number in its place.
pub fn figure_ref(stem: &str) -> String {
    format!("{{figure:{stem}}}")
}

/// The stem of the agility figure by interval, which the one by gains
/// refers to.
const AGILITY_BY_INTERVAL: &str = "fig8-agility-vs-interval";

impl Figure {
    /// Paths relative to the folder holding study.md.
    pub fn png(&self) -> String {
        format!("study/{}.png", self.stem)
    }
    pub fn svg(&self) -> String {
        format!("study/{}.svg", self.stem)
    }
    pub fn csv(&self) -> String {
        format!("study/data/{}.csv", self.stem)
    }
}

/// Every figure, by the question it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub works: Figure,
    pub estimators: Figure,
    pub samples: Figure,
    pub intervals: Figure,
    pub failures: Figure,
    pub reads: Figure,
    pub cost: Figure,
    pub lag_intervals: Figure,
    pub lag_gains: Figure,
}

impl Figures {
    pub fn all(&self) -> [&Figure; 9] {
        [
            &self.works,
            &self.estimators,
            &self.samples,
            &self.intervals,
            &self.failures,
            &self.reads,
            &self.cost,
            &self.lag_intervals,
            &self.lag_gains,
        ]
    }
}

/// The lag criteria of `report::metrics::compute`, for the text: a step is
/// a change of the truth by at least `STEP` of its previous value; growth
/// is caught once the estimate reaches `REACH_UP` of the truth, shrinking
/// once it falls to `REACH_DOWN` of it.
pub const STEP: f64 = 0.25;
pub const REACH_UP: f64 = 0.9;
pub const REACH_DOWN: f64 = 1.1;

/// The lag criteria in words, for captions and text.
pub fn lag_definition() -> String {
    format!(
        "intervals until the estimate reaches {} of a working set that grew by {} or more, \
         or falls to {} of one that shrank by {} or more",
        super::format::pct(REACH_UP),
        super::format::pct(STEP),
        super::format::pct(REACH_DOWN),
        super::format::pct(STEP)
    )
}

/// A lag cell: the mean lag in intervals, or why there is none.
pub fn lag_cell(lag: Option<f64>, events: u32) -> String {
    match (lag, events) {
        (Some(l), _) => super::format::num(l),
        (None, 0) => "no step".into(),
        (None, _) => "not caught".into(),
    }
}

/// Tracked faults per second of wall time.
pub fn faults_per_s(s: &Summary) -> Option<f64> {
    s.tracked_faults.map(|f| f as f64 / s.duration_s.max(1e-9))
}

/// The mean truth the run's errors were measured against.
pub fn compared_truth(s: &Summary) -> f64 {
    if s.compared_against == TruthColumn::Writes.column_name() {
        s.true_wss_write_mean_pages
    } else {
        s.true_wss_mean_pages
    }
}

/// Bias as a fraction of the mean truth it was measured against.
pub fn rel_bias(s: &Summary) -> Option<f64> {
    let truth = compared_truth(s);
    s.bias_pages.filter(|_| truth > 0.0).map(|b| b / truth)
}

/// A lag in intervals, in seconds.
pub fn lag_s(lag_intervals: Option<f64>, s: &Summary) -> Option<f64> {
    lag_intervals.map(|l| l * s.interval_s)
}

/// Guest time lost per tracked fault, from the slowdown: the share of the
/// guest's time lost, spread over the faults of one second, in µs.
pub fn lost_us_per_fault(s: &Summary) -> Option<f64> {
    let f = faults_per_s(s).filter(|f| *f > 0.0)?;
    s.slowdown.map(|sl| sl / f * 1e6)
}

/// The cost per tracked fault that best explains a set of runs' slowdowns,
/// in µs: the least-squares slope through the origin of slowdown against
/// tracked faults per second. Runs with many faults weigh most, which is
/// where the slowdown stands out of the noise. `None` from fewer than two
/// runs or no faults.
pub fn fitted_cost_us(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<&(f64, f64)> = points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let sxx: f64 = pts.iter().map(|(x, _)| x * x).sum();
    let sxy: f64 = pts.iter().map(|(x, y)| x * y).sum();
    (pts.len() >= 2 && sxx > 0.0).then(|| sxy / sxx * 1e6)
}

/// Share of one CPU the VMM process used besides the vCPU thread.
pub fn vmm_cpu_share(s: &Summary) -> f64 {
    s.vmm_cpu_s / s.duration_s.max(1e-9)
}

/// The run's accuracy against a truth column of the caller's choosing
/// (dirty-log runs are scored against written pages in their summary).
pub fn metrics_against(s: &Summary, rows: &[Row], truth: TruthColumn) -> Metrics {
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(usize::MAX);
    metrics::compute(rows, warmup, truth)
}

/// A CSV cell: full precision, empty when not measured.
fn cell(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    }
}

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<(), StudyError> {
    let csv_error = |source| {
        StudyError::Report(crate::report::ReportError::Csv {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_error)?;
    w.write_record(header).map_err(csv_error)?;
    for r in rows {
        w.write_record(r).map_err(csv_error)?;
    }
    w.flush().map_err(|source| StudyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The summary columns most figures' data share.
const SUMMARY_COLUMNS: [&str; 16] = [
    "run_id",
    "workload",
    "tracker",
    "estimator",
    "sample_pages",
    "interval_s",
    "duration_s",
    "true_wss_mean_pages",
    "est_wss_mean_pages",
    "compared_against",
    "mape",
    "bias_pages",
    "rel_bias",
    "mae_pages",
    "lag_up_intervals",
    "lag_down_intervals",
];

fn summary_cells(spec: &Spec, s: Option<&Summary>) -> Vec<String> {
    let mut v = vec![
        spec.id(),
        spec.workload.label.clone(),
        spec.tracker.name().to_string(),
        spec.estimator.name().to_string(),
        s.and_then(|s| s.sample_pages)
            .map_or(String::new(), |n| n.to_string()),
        format!("{}", spec.interval.as_secs_f64()),
    ];
    match s {
        Some(s) => v.extend([
            cell(Some(s.duration_s)),
            cell(Some(s.true_wss_mean_pages)),
            cell(s.est_wss_mean_pages),
            s.compared_against.clone(),
            cell(s.mape),
            cell(s.bias_pages),
            cell(rel_bias(s)),
            cell(s.mae_pages),
            cell(s.lag_up_intervals),
            cell(s.lag_down_intervals),
        ]),
        None => v.extend(std::iter::repeat_n(String::new(), 10)),
    }
    v
}

/// Draws every figure and writes its data under `study_dir`.
pub fn draw_all(plan: &Plan, results: &Results, study_dir: &Path) -> Result<Figures, StudyError> {
    let data = study_dir.join("data");
    for d in [study_dir, data.as_path()] {
        std::fs::create_dir_all(d).map_err(|source| StudyError::Io {
            path: d.to_path_buf(),
            source,
        })?;
    }
    let ctx = Ctx {
        plan,
        results,
        dir: study_dir.to_path_buf(),
    };
    Ok(Figures {
        works: ctx.works()?,
        estimators: ctx.estimators()?,
        samples: ctx.sweep(true)?,
        intervals: ctx.sweep(false)?,
        failures: ctx.failures()?,
        reads: ctx.reads()?,
        cost: ctx.cost()?,
        lag_intervals: ctx.agility(true)?,
        lag_gains: ctx.agility(false)?,
    })
}

struct Ctx<'a> {
    plan: &'a Plan,
    results: &'a Results,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn base(&self, stem: &str) -> PathBuf {
        self.dir.join(stem)
    }

    fn csv(&self, stem: &str, header: &[&str], rows: &[Vec<String>]) -> Result<(), StudyError> {
        write_csv(
            &self.dir.join("data").join(format!("{stem}.csv")),
            header,
            rows,
        )
    }

    fn summary(&self, spec: &Spec) -> Option<&Summary> {
        self.results.summary(spec)
    }

    /// Per workload, the time series of the default setting.
    fn works(&self) -> Result<Figure, StudyError> {
        let stem = "fig1-estimate-vs-truth";
        let mut panels = Vec::new();
        let mut data = Vec::new();
        for spec in &self.plan.defaults {
            let (title, rows) = match self.results.get(spec) {
                Some((s, rows)) => (
                    format!(
                        "{}: MAPE {}",
                        spec.workload.label,
                        super::format::opt(s.mape, super::format::pct)
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
            super::format::setting(s.interval)
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
    fn estimators(&self) -> Result<Figure, StudyError> {
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

    /// MAPE and relative bias against the sample size (or the interval).
    fn sweep(&self, by_samples: bool) -> Result<Figure, StudyError> {
        let (stem, sweeps, x_label) = if by_samples {
            (
                "fig3-sample-size",
                &self.plan.sample_sweep,
                "sampled pages per interval",
            )
        } else {
            ("fig4-interval", &self.plan.interval_sweep, "interval (s)")
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
                if let Some(b) = s.and_then(rel_bias) {
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
        let criteria = super::recommend::CRITERIA;
        let panels = [
            panel(
                "MAPE",
                "mean absolute percentage error",
                mape_lines,
                Some((
                    criteria.max_mape,
                    format!("{} target", super::format::pct(criteria.max_mape)),
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
                super::format::setting(s.interval)
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

    /// MAPE of the hard workloads under every tracker and estimator.
    fn failures(&self) -> Result<Figure, StudyError> {
        let stem = "fig5-hard-cases";
        let works = super::plan::failure_workloads(&self.plan.scale);
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
                    .failures
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
            runs: self.plan.failures.clone(),
        })
    }

    /// A read-heavy program under uffd and dirty-log, over time.
    fn reads(&self) -> Result<Figure, StudyError> {
        let stem = "fig6-write-only-tracking";
        let mut panels = Vec::new();
        let mut data = Vec::new();
        for spec in &self.plan.read_heavy {
            let got = self.results.get(spec);
            let title = match got {
                Some((s, rows)) => {
                    let all = metrics_against(s, rows, TruthColumn::All);
                    let writes = metrics_against(s, rows, TruthColumn::Writes);
                    format!(
                        "{}: MAPE {} vs all pages, {} vs written",
                        spec.method(),
                        super::format::opt(all.mape, super::format::pct),
                        super::format::opt(writes.mape, super::format::pct)
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
            runs: self.plan.read_heavy.clone(),
        })
    }

    /// Cost per mechanism against the sample size.
    fn cost(&self) -> Result<Figure, StudyError> {
        let stem = "fig7-cost";
        let mut faults = Vec::new();
        let mut slowdown = Vec::new();
        let mut cpu = Vec::new();
        let mut per_touch = Vec::new();
        let mut data = Vec::new();
        let runs: Vec<&Spec> = self
            .plan
            .cost
            .iter()
            .chain(&self.plan.cost_exhaustive)
            .collect();
        for t in TRACKERS {
            let mut f = Vec::new();
            let mut sl = Vec::new();
            let mut c = Vec::new();
            let mut pt = Vec::new();
            for spec in self.plan.cost.iter().filter(|s| s.tracker == t) {
                let Some(s) = self.summary(spec) else {
                    continue;
                };
                let x = spec.sample_pages as f64;
                if let Some(v) = faults_per_s(s) {
                    f.push((x, v));
                }
                if let Some(v) = s.slowdown {
                    sl.push((x, v));
                }
                c.push((x, vmm_cpu_share(s)));
                if let Some(v) = lost_us_per_fault(s) {
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
            let service = s.and_then(|s| {
                s.tracker_stats
                    .get("vmm_service_us_per_fault")
                    .and_then(|v| v.as_f64())
            });
            data.push(vec![
                spec.id(),
                spec.tracker.name().to_string(),
                spec.estimator.name().to_string(),
                s.and_then(|s| s.sample_pages)
                    .map_or(String::new(), |n| n.to_string()),
                format!("{}", spec.interval.as_secs_f64()),
                cell(s.map(|s| s.duration_s)),
                cell(s.and_then(faults_per_s)),
                cell(s.and_then(|s| s.fault_cost_us)),
                cell(s.and_then(lost_us_per_fault)),
                cell(service),
                cell(s.and_then(|s| s.slowdown)),
                cell(s.map(|s| s.guest_ops_per_s)),
                cell(s.and_then(|s| s.baseline_guest_ops_per_s)),
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
                "fault_cost_us",
                "lost_us_per_fault",
                "vmm_service_us_per_fault",
                "slowdown",
                "guest_ops_per_s",
                "baseline_guest_ops_per_s",
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
                "Tracked faults per second",
                "faults / s",
                YFormat::Plain,
                faults,
            ),
            panel(
                "Guest slowdown vs untracked twin",
                "slowdown",
                YFormat::Percent,
                slowdown,
            ),
            panel(
                "Guest time lost per tracked fault (slowdown / faults per s)",
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
            super::format::setting(self.plan.scale.cost_interval)
        );
        line_panels(&self.base(stem), &title, &panels, 2)?;
        Ok(Figure {
            stem,
            title,
            caption: format!(
                "What each mechanism costs as the sample grows, on a guest that touches its \
                 whole working set as fast as it can, so that nearly every sampled page in it \
                 faults. The interval is {} so that faults are frequent enough to measure. \
                 Each run is preceded by its untracked twin, which gives the slowdown. The \
                 data also holds exhaustive tracking (at the default {} interval).",
                super::format::setting(self.plan.scale.cost_interval),
                super::format::setting(self.plan.scale.interval)
            ),
            runs: runs.into_iter().cloned().collect(),
        })
    }

    /// The estimate following a changing working set: phases and ramp at
    /// each interval (`by_interval`) or under each pair of ESX gains.
    fn agility(&self, by_interval: bool) -> Result<Figure, StudyError> {
        let (stem, specs) = if by_interval {
            (AGILITY_BY_INTERVAL, &self.plan.agility_intervals)
        } else {
            ("fig9-agility-vs-gains", &self.plan.agility_gains)
        };
        let mut runs: Vec<&Spec> = Vec::new();
        for sp in specs {
            if !runs.iter().any(|r| r.id() == sp.id()) {
                runs.push(sp);
            }
        }
        let mut panels = Vec::new();
        let mut data = Vec::new();
        let mut lags = Vec::new();
        for sp in &runs {
            let setting = if by_interval {
                super::format::setting(sp.interval)
            } else {
                format!("gains {}/{}", sp.gains.slow, sp.gains.fast)
            };
            let got = self.results.get(sp);
            let title = match got {
                Some((s, _)) => format!(
                    "{}, {setting}: lag up {}, down {}",
                    sp.workload.label,
                    lag_cell(s.lag_up_intervals, s.lag_up_events),
                    lag_cell(s.lag_down_intervals, s.lag_down_events)
                ),
                None => format!("{}, {setting}: run failed", sp.workload.label),
            };
            let rows = got.map(|g| g.1.to_vec()).unwrap_or_default();
            for r in &rows {
                data.push(vec![
                    sp.id(),
                    sp.workload.label.clone(),
                    format!("{}", sp.interval.as_secs_f64()),
                    format!("{}", sp.gains.slow),
                    format!("{}", sp.gains.fast),
                    format!("{}", r.t_s),
                    r.true_wss_pages.to_string(),
                    cell(r.est_wss_pages),
                    cell(r.est_lo_pages),
                    cell(r.est_hi_pages),
                ]);
            }
            lags.push(self.lag_cells(sp));
            panels.push(SeriesPanel {
                title,
                rows,
                show_writes: false,
            });
        }
        self.csv(
            stem,
            &[
                "run_id",
                "workload",
                "interval_s",
                "esx_slow_gain",
                "esx_fast_gain",
                "t_s",
                "true_wss_pages",
                "est_wss_pages",
                "est_lo_pages",
                "est_hi_pages",
            ],
            &data,
        )?;
        self.csv(&format!("{stem}-lags"), &LAG_COLUMNS, &lags)?;
        let s = &self.plan.scale;
        let d = crate::estimate::EsxGains::default();
        let (title, caption) = if by_interval {
            (
                format!(
                    "Following a changing working set at each interval (uffd + esx, {} samples)",
                    s.sample_pages
                ),
                format!(
                    "`phases` and `ramp` under the default ESX gains ({} slow, {} fast) at each \
                     interval. Each title gives the mean lag after growth and after shrinking, \
                     in {}; the lags are also in the table below and in {}.",
                    d.slow,
                    d.fast,
                    lag_definition(),
                    format_args!("study/data/{stem}-lags.csv")
                ),
            )
        } else {
            (
                format!(
                    "Following a changing working set under other ESX gains (uffd, {} samples, \
                     {} interval)",
                    s.sample_pages,
                    super::format::setting(s.interval)
                ),
                format!(
                    "`phases` and `ramp` with one of the ESX gains changed from its default \
                     ({} slow, {} fast). ESX reports the larger of a slow and a fast moving \
                     average of the sampled fraction: the fast gain sets how soon growth \
                     shows, the slow gain how long a shrunken working set is still reported at \
                     its old size. Lags as in {}; also in {}.",
                    d.slow,
                    d.fast,
                    figure_ref(AGILITY_BY_INTERVAL),
                    format_args!("study/data/{stem}-lags.csv")
                ),
            )
        };
        let cols = runs.len().div_ceil(2).max(1);
        series_panels(&self.base(stem), &title, &panels, cols)?;
        Ok(Figure {
            stem,
            title,
            caption,
            runs: runs.into_iter().cloned().collect(),
        })
    }

    fn lag_cells(&self, spec: &Spec) -> Vec<String> {
        let s = self.summary(spec);
        vec![
            spec.id(),
            spec.workload.label.clone(),
            format!("{}", spec.interval.as_secs_f64()),
            format!("{}", spec.gains.slow),
            format!("{}", spec.gains.fast),
            cell(s.and_then(|s| s.lag_up_intervals)),
            cell(s.and_then(|s| s.lag_down_intervals)),
            cell(s.and_then(|s| lag_s(s.lag_up_intervals, s))),
            cell(s.and_then(|s| lag_s(s.lag_down_intervals, s))),
            s.map_or(String::new(), |s| s.lag_up_events.to_string()),
            s.map_or(String::new(), |s| s.lag_down_events.to_string()),
            s.map_or(String::new(), |s| s.lag_unresolved.to_string()),
            cell(s.and_then(|s| s.mape)),
            cell(s.and_then(rel_bias)),
        ]
    }
}

const LAG_COLUMNS: [&str; 14] = [
    "run_id",
    "workload",
    "interval_s",
    "esx_slow_gain",
    "esx_fast_gain",
    "lag_up_intervals",
    "lag_down_intervals",
    "lag_up_s",
    "lag_down_s",
    "lag_up_events",
    "lag_down_events",
    "lag_unresolved",
    "mape",
    "rel_bias",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_cells_say_why_there_is_no_lag() {
        assert_eq!(lag_cell(Some(1.5), 2), "1.5");
        assert_eq!(lag_cell(Some(1.0), 2), "1");
        assert_eq!(lag_cell(None, 0), "no step");
        assert_eq!(lag_cell(None, 3), "not caught");
    }

    #[test]
    fn derived_quantities() {
        let s = Summary {
            duration_s: 20.0,
            interval_s: 0.5,
            tracked_faults: Some(1000),
            true_wss_mean_pages: 400.0,
            true_wss_write_mean_pages: 100.0,
            bias_pages: Some(-20.0),
            vmm_cpu_s: 2.0,
            compared_against: "true_wss_pages".into(),
            ..Summary::default()
        };
        assert_eq!(faults_per_s(&s), Some(50.0));
        assert_eq!(rel_bias(&s), Some(-0.05));
        assert_eq!(lag_s(Some(3.0), &s), Some(1.5));
        assert_eq!(vmm_cpu_share(&s), 0.1);
        let w = Summary {
            compared_against: "true_wss_write_pages".into(),
            ..s.clone()
        };
        assert_eq!(rel_bias(&w), Some(-0.2));
        let none = Summary {
            true_wss_mean_pages: 0.0,
            ..s
        };
        assert_eq!(rel_bias(&none), None);
        let slowed = Summary {
            duration_s: 10.0,
            tracked_faults: Some(20_000),
            slowdown: Some(0.05),
            ..Summary::default()
        };
        // 5% of each second over 2000 faults: 25 µs each.
        assert!((lost_us_per_fault(&slowed).unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(lost_us_per_fault(&Summary::default()), None);
    }

    #[test]
    fn fitted_cost_is_the_slope_through_the_origin() {
        // Slowdown = 30 µs x faults/s, with noise at the low end.
        let pts = [(100.0, 0.02), (1000.0, 0.03), (10000.0, 0.3)];
        let c = fitted_cost_us(&pts).unwrap();
        assert!((c - 30.0).abs() < 0.5, "{c}");
        assert_eq!(fitted_cost_us(&pts[..1]), None);
        assert_eq!(fitted_cost_us(&[(0.0, 0.1), (0.0, 0.2)]), None);
        assert_eq!(fitted_cost_us(&[(f64::NAN, 0.1), (100.0, 0.01)]), None);
    }

    #[test]
    fn lag_criteria_match_the_metrics() {
        use crate::report::timeseries::tests::row;
        let lag_up = |est_frac: f64| {
            let rows = [
                row(1.0, 1000, Some(1000.0)),
                row(2.0, 1250, Some(1250.0 * est_frac)),
            ];
            metrics::compute(&rows, 0, TruthColumn::All).lag_up_intervals
        };
        assert_eq!(lag_up(REACH_UP), Some(0.0));
        assert_eq!(lag_up(REACH_UP - 0.01), None);
        let rows = [
            row(1.0, 1000, Some(1000.0)),
            // 750 x REACH_DOWN, written exactly: the product rounds up.
            row(2.0, 750, Some(825.0)),
        ];
        assert!((750.0 * REACH_DOWN - 825.0).abs() < 1e-9);
        let m = metrics::compute(&rows, 0, TruthColumn::All);
        assert_eq!((m.lag_down_events, m.lag_down_intervals), (1, Some(0.0)));
        // A step of a little less than STEP is no step.
        let rows = [row(1.0, 1000, Some(1000.0)), row(2.0, 1249, Some(0.0))];
        assert_eq!(
            metrics::compute(&rows, 0, TruthColumn::All).lag_up_events,
            0
        );
        assert_eq!(
            lag_definition(),
            "intervals until the estimate reaches 90% of a working set that grew by 25% or \
             more, or falls to 110% of one that shrank by 25% or more"
        );
    }

    #[test]
    fn csv_cells_are_empty_when_not_measured() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(f64::NAN)), "");
        assert_eq!(cell(Some(0.25)), "0.25");
    }
}
