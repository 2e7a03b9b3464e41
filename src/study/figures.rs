//! The study's figures: for each, the data behind it as CSV under
//! `study/data/`, and the drawing as SVG and PNG under `study/`. Quantities
//! derived from a run (faults per second, relative bias, lag in seconds)
//! are defined here once, for the figures and the text alike.

pub use crate::analysis::derived::{
    compared_truth, faults_per_s, guest_us_per_fault, lag_s, relative_bias,
};
use std::path::{Path, PathBuf};

use super::StudyError;
use super::execute::Results;
use super::plan::{Plan, Spec};
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
pub(in crate::study) const AGILITY_BY_INTERVAL: &str = "fig8-agility-vs-interval";

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
    pub estimator_curve: Figure,
    pub heatmap: Figure,
}

impl Figures {
    pub fn all(&self) -> [&Figure; 11] {
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
            &self.estimator_curve,
            &self.heatmap,
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

/// The cost per tracked fault that best explains a set of runs' slowdowns,
/// in µs: the least-squares slope through the origin of slowdown against
/// tracked faults per second. Runs with many faults weigh most, which is
/// where the slowdown stands out of the noise. `None` from fewer than two
/// runs or no faults.
pub fn fitted_cost_us(points: &[(f64, f64)]) -> Option<f64> {
    crate::analysis::stats::slope_through_origin(points.iter().copied()).map(|s| s * 1e6)
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
pub(in crate::study) fn cell(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    }
}

pub(in crate::study) fn write_csv(
    path: &Path,
    header: &[&str],
    rows: &[Vec<String>],
) -> Result<(), StudyError> {
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
pub(in crate::study) const SUMMARY_COLUMNS: [&str; 16] = [
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

pub(in crate::study) fn summary_cells(spec: &Spec, s: Option<&Summary>) -> Vec<String> {
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
            s.compared_against.column_name().to_string(),
            cell(s.mape),
            cell(s.bias_pages),
            cell(relative_bias(s)),
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
    let ctx = FigureWriter {
        plan,
        results,
        dir: study_dir.to_path_buf(),
    };
    Ok(Figures {
        works: ctx.works_figure()?,
        estimators: ctx.estimators_figure()?,
        samples: ctx.sweep_figure(true)?,
        intervals: ctx.sweep_figure(false)?,
        failures: ctx.failures_figure()?,
        reads: ctx.reads_figure()?,
        cost: ctx.cost_figure()?,
        lag_intervals: ctx.agility_figure(true)?,
        lag_gains: ctx.agility_figure(false)?,
        estimator_curve: ctx.curve_figure()?,
        heatmap: ctx.heatmap_figure()?,
    })
}

/// Draws the figures into the study folder and writes the data behind
/// them; each question's module adds the drawing of its own figures.
pub(in crate::study) struct FigureWriter<'a> {
    pub(in crate::study) plan: &'a Plan,
    pub(in crate::study) results: &'a Results,
    dir: PathBuf,
}

impl FigureWriter<'_> {
    pub(in crate::study) fn base(&self, stem: &str) -> PathBuf {
        self.dir.join(stem)
    }

    pub(in crate::study) fn csv(
        &self,
        stem: &str,
        header: &[&str],
        rows: &[Vec<String>],
    ) -> Result<(), StudyError> {
        write_csv(
            &self.dir.join("data").join(format!("{stem}.csv")),
            header,
            rows,
        )
    }

    pub(in crate::study) fn summary(&self, spec: &Spec) -> Option<&Summary> {
        self.results.summary(spec)
    }

    pub(in crate::study) fn lag_cells(&self, spec: &Spec) -> Vec<String> {
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
            cell(s.and_then(relative_bias)),
        ]
    }
}

pub(in crate::study) const LAG_COLUMNS: [&str; 14] = [
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
            compared_against: crate::analysis::accuracy::TruthColumn::All,
            ..Summary::default()
        };
        assert_eq!(faults_per_s(&s), Some(50.0));
        assert_eq!(relative_bias(&s), Some(-0.05));
        assert_eq!(lag_s(Some(3.0), &s), Some(1.5));
        assert_eq!(vmm_cpu_share(&s), 0.1);
        let w = Summary {
            compared_against: crate::analysis::accuracy::TruthColumn::Writes,
            ..s.clone()
        };
        assert_eq!(relative_bias(&w), Some(-0.2));
        let none = Summary {
            true_wss_mean_pages: 0.0,
            ..s
        };
        assert_eq!(relative_bias(&none), None);
        let slowed = Summary {
            duration_s: 10.0,
            tracked_faults: Some(20_000),
            slowdown: Some(0.05),
            ..Summary::default()
        };
        // 5% of each second over 2000 faults: 25 µs each.
        assert!((guest_us_per_fault(&slowed).unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(guest_us_per_fault(&Summary::default()), None);
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
