//! `kvm-wss sweep`: one guest program under every combination of tracker,
//! estimator, sample size and interval, each repeated, then a table, heat
//! maps and a recommendation of the cheapest setting that is accurate enough.
//!
//! Rules the outputs follow:
//! - Settings an estimator ignores are not varied: `damon` and `exhaustive`
//!   do not take `--sample-pages`, so they run once per interval, and
//!   tracker `none` (no estimate at all) once per interval.
//! - Every finished run is a row of sweep.csv, written and flushed as soon as
//!   it ends, so neither Ctrl-C nor a later failure loses it. Only runs that
//!   ran their course (end `duration`, or the guest exited with 0) count
//!   towards the table, heat maps and recommendation: an interrupted,
//!   crashed or failed run did not measure the same thing as the others.
//! - A setting passes the lag target when its mean lag up is at most the
//!   target, or when no counted run saw the truth grow (lag up is `null`:
//!   there was no step to lag behind). A run that saw growth but whose
//!   estimate never caught up fails it.

mod aggregate;
mod grid;
mod report;
mod rows;

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::RunConfig;
use crate::report::ReportError;
use crate::report::summary::Summary;
use crate::run::{self, RunError};

use aggregate::percent;
pub use aggregate::{Aggregate, Recommendation, aggregate, meets, recommend};
pub use grid::{Setting, expand_grid, format_interval};
use report::write_reports;
pub use report::{RunCounts, heatmap_grid, render_markdown, render_table, write_heatmaps};
pub use rows::{SETTING_COLUMNS, SweepCsv, summary_fields};

pub const SWEEP_CSV: &str = "sweep.csv";
pub const SWEEP_MD: &str = "sweep.md";
pub const RECOMMENDATION_JSON: &str = "recommendation.json";

/// What the recommended setting must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// Largest mean MAPE, a fraction.
    pub mape: f64,
    /// Largest mean lag up, intervals.
    pub lag_up: f64,
}

/// A checked sweep, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub guest: String,
    /// The grid, each setting with the config of its repeat 0.
    pub settings: Vec<(Setting, RunConfig)>,
    pub repeat: u32,
    pub targets: Targets,
    pub baseline: bool,
    pub out_dir: PathBuf,
    /// Show a progress bar (or, when stderr is not a terminal, a line per run).
    pub progress: bool,
}

/// One run of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Index into `SweepPlan::settings`.
    pub setting: usize,
    pub repeat: u32,
    pub config: RunConfig,
}

impl SweepPlan {
    pub fn total_runs(&self) -> u64 {
        self.settings.len() as u64 * u64::from(self.repeat)
    }

    /// The runs in order: each setting's repeats together; repeat i uses the
    /// base seed + i.
    pub fn runs(&self) -> impl Iterator<Item = PlannedRun> + '_ {
        self.settings
            .iter()
            .enumerate()
            .flat_map(move |(setting, (_, cfg))| {
                (0..self.repeat).map(move |repeat| PlannedRun {
                    setting,
                    repeat,
                    config: RunConfig {
                        seed: cfg.seed.wrapping_add(u64::from(repeat)),
                        ..cfg.clone()
                    },
                })
            })
    }
}

/// A fresh folder under `runs/` named after the guest and the time.
pub fn default_out_dir(guest: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let guest = guest.replace(['/', '.'], "_");
    PathBuf::from("runs").join(format!("sweep-{guest}-{stamp}"))
}

/// A finished run of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Index into the plan's settings.
    pub setting: usize,
    pub repeat: u32,
    pub seed: u64,
    /// The run's folder, relative to the sweep folder.
    pub run_dir: String,
    pub summary: Summary,
}

/// True when the run ran its course and so counts towards the aggregates.
pub fn is_counted(s: &Summary) -> bool {
    s.end == "duration" || (s.end == "guest_exit" && s.guest_exit_code == Some(0))
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("cannot create the sweep folder {path}")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run {dir} failed")]
    Run {
        dir: String,
        #[source]
        source: RunError,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// What a sweep did.
#[derive(Debug)]
pub struct SweepOutcome {
    pub records: Vec<RunRecord>,
    pub aggregates: Vec<Aggregate>,
    pub recommendation: Recommendation,
    pub counts: RunCounts,
    /// The printed table.
    pub table: String,
    /// sweep.csv, sweep.md, recommendation.json and the heat maps.
    pub files: Vec<PathBuf>,
    /// The error that stopped the sweep early; everything finished before
    /// it is in the outputs all the same.
    pub failure: Option<SweepError>,
}

/// Runs the plan. Stops starting runs after Ctrl-C or a failed run, and in
/// every case writes the outputs for the runs that finished. `Err` only when
/// the sweep folder or sweep.csv cannot be created.
pub fn run_sweep(plan: &SweepPlan) -> Result<SweepOutcome, SweepError> {
    let dir = &plan.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| SweepError::OutDir {
        path: dir.clone(),
        source,
    })?;
    let csv_path = dir.join(SWEEP_CSV);
    let mut csv = SweepCsv::create(&csv_path)?;
    let total = plan.total_runs();
    let bar = if plan.progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:20} {pos}/{len} eta {eta} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Without a terminal the bar draws nothing; a line per run shows progress in logs instead.
    let run_lines = plan.progress && bar.is_hidden();
    let mut records = Vec::new();
    let mut failure = None;
    for (n, planned) in plan.runs().enumerate() {
        if run::interrupted() {
            break;
        }
        let setting = plan.settings[planned.setting].0;
        let run_dir = setting.dir_name(planned.repeat);
        bar.set_message(format!(
            "{} (repeat {}/{})",
            setting.label(),
            planned.repeat + 1,
            plan.repeat
        ));
        match run::run(&planned.config, &dir.join(&run_dir)) {
            Ok(out) => {
                let record = RunRecord {
                    setting: planned.setting,
                    repeat: planned.repeat,
                    seed: planned.config.seed,
                    run_dir,
                    summary: out.summary,
                };
                let appended = csv.append(&setting, &record);
                if run_lines {
                    eprintln!("{}", run_line(n as u64 + 1, total, &setting, &record));
                }
                records.push(record);
                if let Err(e) = appended {
                    failure = Some(SweepError::Report(e));
                    break;
                }
            }
            Err(source) => {
                failure = Some(SweepError::Run {
                    dir: run_dir,
                    source,
                });
                break;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();

    let settings: Vec<Setting> = plan.settings.iter().map(|(s, _)| *s).collect();
    let aggregates = aggregate(&settings, &records);
    let recommendation = recommend(&aggregates, plan.targets);
    let counts = RunCounts {
        planned: total,
        finished: records.len(),
        counted: records.iter().filter(|r| is_counted(&r.summary)).count(),
        interrupted: run::interrupted(),
    };
    let mut files = vec![csv_path];
    let written = write_reports(
        plan,
        &settings,
        &aggregates,
        &recommendation,
        &counts,
        &mut files,
    );
    if let Err(e) = written {
        // A failed run is the root cause; the report error is secondary then.
        match failure {
            Some(_) => eprintln!("kvm-wss: {}", crate::error_chain(&e)),
            None => failure = Some(SweepError::Report(e)),
        }
    }
    Ok(SweepOutcome {
        table: format!(
            "{}\n{}\n",
            render_table(&aggregates),
            recommendation.message
        ),
        records,
        aggregates,
        recommendation,
        counts,
        files,
        failure,
    })
}

fn run_line(n: u64, total: u64, setting: &Setting, r: &RunRecord) -> String {
    let s = &r.summary;
    let faults_per_s = s
        .tracked_faults
        .filter(|_| s.duration_s > 0.0)
        .map_or("-".to_string(), |f| {
            format!("{:.0}", f as f64 / s.duration_s)
        });
    format!(
        "run {n}/{total} {} repeat {}: end {}, mape {}, {faults_per_s} faults/s",
        setting.label(),
        r.repeat,
        s.end,
        s.mape.map_or("-".to_string(), percent),
    )
}

/// Fixtures shared by the submodules' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::time::Duration;

    use super::*;
    use crate::estimate::EstimatorKind;
    use crate::track::TrackerKind;

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    pub fn esx(n: u64, interval_ms: u64) -> Setting {
        Setting {
            tracker: TrackerKind::Uffd,
            estimator: Some(EstimatorKind::Esx),
            sample_pages: Some(n),
            interval: ms(interval_ms),
        }
    }

    /// A counted run of 10 s with `faults` tracked faults.
    pub fn summary(mape: f64, lag: Option<f64>, faults: u64) -> Summary {
        Summary {
            tracker: "uffd".into(),
            estimator: Some("esx".into()),
            duration_s: 10.0,
            end: "duration".into(),
            mape: Some(mape),
            bias_pages: Some(-50.0),
            true_wss_mean_pages: 1000.0,
            compared_against: "true_wss_pages".into(),
            lag_up_intervals: lag,
            lag_up_events: u32::from(lag.is_some()),
            tracked_faults: Some(faults),
            fault_cost_us: Some(20.0),
            vmm_cpu_s: 1.0,
            ..Summary::default()
        }
    }

    pub fn record(setting: usize, repeat: u32, summary: Summary) -> RunRecord {
        RunRecord {
            setting,
            repeat,
            seed: 1 + u64::from(repeat),
            run_dir: format!("r{repeat}"),
            summary,
        }
    }

    pub fn agg(setting: Setting, mape: f64, lag: Option<f64>, faults_per_s: f64) -> Aggregate {
        Aggregate {
            setting,
            finished: 1,
            runs: 1,
            mape: Some(mape),
            bias_pages: None,
            bias: None,
            lag_up_intervals: lag,
            lag_up_unresolved_runs: 0,
            faults_per_s: Some(faults_per_s),
            fault_cost_us: None,
            slowdown: None,
            vmm_cpu_s: None,
        }
    }

    pub const TARGETS: Targets = Targets {
        mape: 0.1,
        lag_up: 2.0,
    };
}
