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
//! - Every row comes from the run's summary.json as read back from disk,
//!   both in a local sweep and in `--collect`, so that collecting a sweep
//!   folder again writes the same sweep.csv, sweep.md and
//!   recommendation.json byte for byte. `--emit-jobs` (see `jobs`) writes
//!   the runs as command lines for other engines to run instead.
//! - `--replay RUN_DIR` (see `replayed`) evaluates the grid by replay
//!   against a recording instead of live runs; its records go through the
//!   same collector, reports and recommendation.

mod aggregate;
pub mod args;
mod grid;
pub mod jobs;
mod replayed;
mod report;
mod rows;

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::RunConfig;
use crate::report::ReportError;
use crate::report::summary::{EndKind, Summary, read_summary};
use crate::run::{self, RunError};
use jobs::{PlanFile, PlanSetting};

use crate::analysis::derived::faults_per_s;
use crate::analysis::format::opt_percent;
pub use aggregate::{Aggregate, Recommendation, aggregate, meets, recommend};
pub use grid::{DamonRegions, Setting, expand_grid, format_interval};
pub use replayed::{
    REPLAY_CONFLICTS, ReplayGrid, ReplayPlan, ReplayPlanError, expand_replay_grid,
    parse_damon_regions, parse_esx_gains, plan_replay, run_replay_sweep,
};
use report::write_reports;
pub use report::{RunCounts, heatmap_grid, render_markdown, render_table, write_heatmaps};
pub use rows::{SETTING_COLUMNS, SweepCsv, TUNING_COLUMNS, UNKNOWN_IN_REPLAY, summary_fields};

pub const SWEEP_CSV: &str = "sweep.csv";
pub const SWEEP_MD: &str = "sweep.md";
pub const RECOMMENDATION_JSON: &str = "recommendation.json";

/// What the recommended setting must beat: the one definition, shared
/// with the study.
pub use crate::analysis::recommend::Targets;

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
    /// What sweep-plan.json keeps of the plan.
    pub fn plan_file(&self) -> PlanFile {
        PlanFile {
            guest: self.guest.clone(),
            repeat: self.repeat,
            targets: self.targets,
            baseline: self.baseline,
            settings: self
                .settings
                .iter()
                .map(|(s, cfg)| PlanSetting {
                    tracker: s.tracker,
                    estimator: s.estimator,
                    sample_pages: s.sample_pages,
                    interval_ns: u64::try_from(s.interval.as_nanos()).unwrap_or(u64::MAX),
                    seed: cfg.seed,
                    args: jobs::setting_args(cfg),
                })
                .collect(),
        }
    }

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
    /// The run's folder, relative to the sweep folder (empty for a replay,
    /// which writes none).
    pub run_dir: String,
    pub summary: Summary,
    /// A replay of a recorded run rather than a live run: the costs only a
    /// live run measures (see [`UNKNOWN_IN_REPLAY`]) are unknown.
    pub replayed: bool,
}

/// True when the run ran its course and so counts towards the aggregates.
pub fn is_counted(s: &Summary) -> bool {
    s.end == EndKind::Duration || (s.end == EndKind::GuestExit && s.guest_exit_code == Some(0))
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
    #[error("{} describes another sweep; choose another --out", .0.display())]
    OtherPlan(PathBuf),
    #[error("cannot read {path}: not a sweep folder made by `sweep --emit-jobs` or `sweep`")]
    NoPlan {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a sweep plan")]
    BadPlan {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot replay {setting}")]
    Replay {
        setting: String,
        #[source]
        source: crate::replay::ReplayError,
    },
    #[error("cannot write the job list {path}")]
    JobList {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    /// Runs of the plan without a finished summary.json (`--collect`).
    pub missing: Vec<String>,
    /// The hosts the runs ran on.
    pub hosts: Hosts,
}

/// Writes sweep-plan.json into the sweep folder, or checks that the one
/// already there describes the same sweep.
fn write_plan_file(plan: &SweepPlan) -> Result<(), SweepError> {
    let dir = &plan.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| SweepError::OutDir {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(jobs::PLAN_JSON);
    let file = plan.plan_file();
    if let Ok(old) = read_plan_file(dir) {
        if old != file {
            return Err(SweepError::OtherPlan(path));
        }
        return Ok(());
    }
    let json_err = |source| ReportError::Json {
        path: path.clone(),
        source,
    };
    let text = serde_json::to_string_pretty(&file).map_err(json_err)?;
    std::fs::write(&path, text + "\n").map_err(|source| ReportError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(())
}

/// Reads the sweep-plan.json of a sweep folder.
pub fn read_plan_file(dir: &Path) -> Result<PlanFile, SweepError> {
    let path = dir.join(jobs::PLAN_JSON);
    let text = std::fs::read_to_string(&path).map_err(|source| SweepError::NoPlan {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| SweepError::BadPlan { path, source })
}

/// Gathers the finished runs of a sweep folder into sweep.csv (a row per
/// run, flushed as it is added), then the aggregates, the recommendation
/// and the reports. The local sweep adds each run as it ends; `--collect`
/// adds every planned run that finished; both read the run back from its
/// summary.json, so both write the same files from the same folder.
struct Collector {
    dir: PathBuf,
    csv_path: PathBuf,
    csv: SweepCsv,
    file: PlanFile,
    settings: Vec<Setting>,
    records: Vec<RunRecord>,
    missing: Vec<String>,
    /// A line about where the records came from, ending sweep.md.
    note: Option<String>,
}

impl Collector {
    /// A collector of `file`'s runs, whose settings are `settings` (the
    /// plan file's for a live sweep; a replay sweep's carry its gains and
    /// region bounds as well, which sweep.csv then shows).
    fn create(dir: &Path, file: PlanFile, settings: Vec<Setting>) -> Result<Collector, SweepError> {
        let csv_path = dir.join(SWEEP_CSV);
        let tuned = settings
            .iter()
            .any(|s| s.esx_gains.is_some() || s.damon_regions.is_some());
        Ok(Collector {
            dir: dir.to_path_buf(),
            csv: SweepCsv::create(&csv_path, tuned)?,
            csv_path,
            settings,
            file,
            records: Vec::new(),
            missing: Vec::new(),
            note: None,
        })
    }

    /// Reads the summary.json of run `run_dir` back.
    fn load(&self, run_dir: &str) -> Result<Summary, ReportError> {
        read_summary(&self.dir.join(run_dir).join("summary.json"))
    }

    /// Adds the run's record and its row of sweep.csv.
    fn push(&mut self, setting: usize, record: RunRecord) -> Result<&RunRecord, ReportError> {
        let appended = self.csv.append(&self.settings[setting], &record);
        self.records.push(record);
        appended?;
        Ok(&self.records[self.records.len() - 1])
    }

    /// Aggregates what was added and writes the reports. A report error
    /// is stored in `failure` unless one is there already.
    fn finish(self, interrupted: bool, failure: Option<SweepError>) -> SweepOutcome {
        let mut failure = failure;
        let aggregates = aggregate(&self.settings, &self.records);
        let recommendation = recommend(&aggregates, self.file.targets);
        let counts = RunCounts {
            planned: u64::try_from(self.file.runs().len()).unwrap_or(u64::MAX),
            finished: self.records.len(),
            counted: self
                .records
                .iter()
                .filter(|r| is_counted(&r.summary))
                .count(),
            interrupted,
        };
        let hosts = Hosts::of(&self.records);
        let note = [self.note, hosts.mixed_note()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n\n");
        let mut files = vec![self.csv_path];
        let written = write_reports(
            &self.file,
            &self.dir,
            &self.settings,
            &aggregates,
            &recommendation,
            &counts,
            Some(note.as_str()).filter(|n| !n.is_empty()),
            &mut files,
        );
        if let Err(e) = written {
            // A failed run is the root cause; the report error is secondary then.
            match failure {
                Some(_) => eprintln!("kvm-wss: {}", crate::error_chain(&e)),
                None => failure = Some(SweepError::Report(e)),
            }
        }
        SweepOutcome {
            table: format!(
                "{}\n{}\n",
                render_table(&aggregates),
                recommendation.message
            ),
            records: self.records,
            aggregates,
            recommendation,
            counts,
            files,
            failure,
            missing: self.missing,
            hosts,
        }
    }
}

/// Runs the plan. Stops starting runs after Ctrl-C or a failed run, and in
/// every case writes the outputs for the runs that finished. `Err` only when
/// the sweep folder or sweep.csv cannot be created.
pub fn run_sweep(plan: &SweepPlan) -> Result<SweepOutcome, SweepError> {
    let dir = &plan.out_dir;
    write_plan_file(plan)?;
    let file = plan.plan_file();
    let settings = file.settings();
    let mut collector = Collector::create(dir, file, settings)?;
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
        if let Err(source) = run::run(&planned.config, &dir.join(&run_dir)) {
            failure = Some(SweepError::Run {
                dir: run_dir,
                source,
            });
            break;
        }
        // Read back from disk, as `--collect` reads it.
        let added = collector.load(&run_dir).and_then(|summary| {
            let record = RunRecord {
                setting: planned.setting,
                repeat: planned.repeat,
                seed: planned.config.seed,
                run_dir,
                summary,
                replayed: false,
            };
            collector.push(planned.setting, record)
        });
        match added {
            Ok(record) => {
                if run_lines {
                    eprintln!("{}", run_line(n as u64 + 1, total, &setting, record));
                }
            }
            Err(e) => {
                failure = Some(SweepError::Report(e));
                break;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(collector.finish(run::interrupted(), failure))
}

/// `sweep --collect`: reads the finished runs of the sweep folder `dir`
/// (its sweep-plan.json says which to expect) and writes what a local sweep
/// writes there. Runs without a readable summary.json are listed in
/// `missing`. `Err` when `dir` holds no sweep plan or sweep.csv cannot be
/// created.
pub fn collect(dir: &Path) -> Result<SweepOutcome, SweepError> {
    let file = read_plan_file(dir)?;
    let runs = file.runs();
    let settings = file.settings();
    let mut collector = Collector::create(dir, file, settings)?;
    let mut failure = None;
    for (setting, repeat, seed, run_dir) in runs {
        let Ok(summary) = collector.load(&run_dir) else {
            collector.missing.push(run_dir);
            continue;
        };
        let record = RunRecord {
            setting,
            repeat,
            seed,
            run_dir,
            summary,
            replayed: false,
        };
        if let Err(e) = collector.push(setting, record) {
            failure = Some(SweepError::Report(e));
            break;
        }
    }
    Ok(collector.finish(false, failure))
}

/// What `--emit-jobs` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmitOutcome {
    /// Runs listed.
    pub listed: usize,
    /// Runs already finished in the sweep folder, left out.
    pub skipped: usize,
}

/// `sweep --emit-jobs FILE`: writes the runs of `plan` not yet finished in
/// its folder to `file`, a job line each, starting with `bin`, and the
/// plan file into the folder for `--collect`.
pub fn emit_jobs(plan: &SweepPlan, bin: &str, file: &Path) -> Result<EmitOutcome, SweepError> {
    write_plan_file(plan)?;
    let mut text = String::new();
    let mut skipped = 0;
    for planned in plan.runs() {
        let setting = plan.settings[planned.setting].0;
        let run_dir = plan.out_dir.join(setting.dir_name(planned.repeat));
        if jobs::finished(&run_dir).is_some() {
            skipped += 1;
            continue;
        }
        text.push_str(&jobs::job_line(bin, &planned.config, &run_dir));
        text.push('\n');
    }
    std::fs::write(file, &text).map_err(|source| SweepError::JobList {
        path: file.to_path_buf(),
        source,
    })?;
    Ok(EmitOutcome {
        listed: text.lines().count(),
        skipped,
    })
}

/// The hosts the runs ran on, from their summaries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hosts {
    /// Each host's line (name, kernel, CPU, KVM kind) and its run count, in
    /// order of first appearance.
    pub hosts: Vec<(String, usize)>,
    /// The distinct kinds of host (KVM kind and CPU model).
    pub kinds: Vec<String>,
    /// Runs whose summary records no host.
    pub unrecorded: usize,
}

impl Hosts {
    pub fn of(records: &[RunRecord]) -> Hosts {
        Hosts::from_summaries(records.iter().map(|r| &r.summary))
    }

    pub fn from_summaries<'a>(summaries: impl IntoIterator<Item = &'a Summary>) -> Hosts {
        let mut h = Hosts::default();
        for s in summaries {
            let Some(host) = &s.host else {
                h.unrecorded += 1;
                continue;
            };
            let line = host.line();
            match h.hosts.iter_mut().find(|(l, _)| *l == line) {
                Some((_, n)) => *n += 1,
                None => h.hosts.push((line, 1)),
            }
            let kind = host.kind();
            if !h.kinds.contains(&kind) {
                h.kinds.push(kind);
            }
        }
        h
    }

    /// A warning when the runs were measured on more than one kind of host.
    pub fn mixed_note(&self) -> Option<String> {
        (self.kinds.len() > 1).then(|| {
            let mut kinds = self.kinds.clone();
            kinds.sort();
            format!(
                "Warning: these results mix runs from {} kinds of host ({}); costs and \
                 accuracy may differ between them.",
                kinds.len(),
                kinds.join("; ")
            )
        })
    }
}

fn run_line(n: u64, total: u64, setting: &Setting, r: &RunRecord) -> String {
    let s = &r.summary;
    let faults_per_s = faults_per_s(s).map_or("-".to_string(), |f| format!("{f:.0}"));
    format!(
        "run {n}/{total} {} repeat {}: end {}, mape {}, {faults_per_s} faults/s",
        setting.label(),
        r.repeat,
        s.end,
        opt_percent(s.mape),
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
            esx_gains: None,
            damon_regions: None,
        }
    }

    /// A counted run of 10 s with `faults` tracked faults.
    pub fn summary(mape: f64, lag: Option<f64>, faults: u64) -> Summary {
        Summary {
            tracker: crate::track::TrackerKind::Uffd,
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            duration_s: 10.0,
            end: crate::report::summary::EndKind::Duration,
            mape: Some(mape),
            bias_pages: Some(-50.0),
            true_wss_mean_pages: 1000.0,
            compared_against: crate::analysis::accuracy::TruthColumn::All,
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
            replayed: false,
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

    pub const TARGETS: Targets = crate::analysis::recommend::DEFAULT_TARGETS;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::host::{Host, KvmKind};

    fn on(name: &str, cpu: &str, kvm: KvmKind) -> Summary {
        Summary {
            host: Some(Host {
                name: name.into(),
                nproc: 2,
                kernel: "Linux 6.1".into(),
                cpu_model: cpu.into(),
                hw_virt: kvm == KvmKind::Hardware,
                mem_bytes: None,
                kvm,
            }),
            ..Summary::default()
        }
    }

    #[test]
    fn hosts_are_counted_and_mixed_kinds_flagged() {
        let a = on("a", "EPYC", KvmKind::Pvm);
        let b = on("b", "EPYC", KvmKind::Pvm);
        let h = Hosts::from_summaries([&a, &b, &a, &Summary::default()]);
        assert_eq!(
            h.hosts,
            [
                ("a (Linux 6.1, EPYC, pvm KVM)".to_string(), 2),
                ("b (Linux 6.1, EPYC, pvm KVM)".to_string(), 1)
            ]
        );
        assert_eq!(h.unrecorded, 1);
        // Alike machines under other names are one kind of host.
        assert_eq!(h.mixed_note(), None);
        let c = on("c", "EPYC", KvmKind::Hardware);
        let note = Hosts::from_summaries([&a, &c]).mixed_note().expect("mixed");
        assert!(note.contains("2 kinds of host"), "{note}");
        assert!(
            note.contains("hardware KVM on EPYC; pvm KVM on EPYC"),
            "{note}"
        );
    }

    #[test]
    fn the_plan_file_lists_every_run_with_its_folder_and_seed() {
        let file = PlanFile {
            guest: "hotset".into(),
            repeat: 2,
            targets: fixtures::TARGETS,
            baseline: false,
            settings: vec![PlanSetting {
                tracker: crate::track::TrackerKind::Uffd,
                estimator: Some(crate::estimate::EstimatorKind::Esx),
                sample_pages: Some(50),
                interval_ns: 250_000_000,
                seed: 7,
                args: vec!["run".into()],
            }],
        };
        assert_eq!(
            file.runs(),
            [
                (0, 0, 7, "uffd-esx-s50-i250ms-r0".to_string()),
                (0, 1, 8, "uffd-esx-s50-i250ms-r1".to_string())
            ]
        );
        let text = serde_json::to_string(&file).expect("json");
        assert_eq!(
            serde_json::from_str::<PlanFile>(&text).expect("parses"),
            file
        );
    }

    /// `--collect` on a folder with a plan but no runs lists them all as
    /// missing, and still writes the (empty) reports.
    #[test]
    fn collect_lists_runs_without_a_summary_as_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = PlanFile {
            guest: "hotset".into(),
            repeat: 1,
            targets: fixtures::TARGETS,
            baseline: false,
            settings: vec![PlanSetting {
                tracker: crate::track::TrackerKind::None,
                estimator: None,
                sample_pages: None,
                interval_ns: 1_000_000_000,
                seed: 1,
                args: vec!["run".into()],
            }],
        };
        std::fs::write(
            dir.path().join(jobs::PLAN_JSON),
            serde_json::to_string(&file).expect("json"),
        )
        .expect("write");
        // A folder without summary.json: a run killed before it ended.
        std::fs::create_dir(dir.path().join("none-i1s-r0")).expect("mkdir");
        let out = collect(dir.path()).expect("collects");
        assert_eq!(out.missing, ["none-i1s-r0"]);
        assert!(out.records.is_empty() && out.failure.is_none());
        assert!(dir.path().join(SWEEP_CSV).is_file());
        assert!(matches!(
            collect(&dir.path().join("none-i1s-r0")),
            Err(SweepError::NoPlan { .. })
        ));
    }

    fn plan(dir: &Path, duration: &str) -> SweepPlan {
        use clap::Parser;
        let out = dir.to_str().expect("utf-8");
        let args = [
            "kvm-wss",
            "sweep",
            "--guest",
            "hotset",
            "--tracker",
            "uffd",
            "--mem",
            "64M",
            "--wss",
            "8M",
            "--duration",
            duration,
            "--out",
            out,
            "--emit-jobs",
            "j",
        ];
        match crate::cli::Cli::try_parse_from(args)
            .expect("parses")
            .command
        {
            crate::cli::Command::Sweep(a) => a.to_plan().expect("valid"),
            other => panic!("not a sweep: {other:?}"),
        }
    }

    /// Re-emitting the same sweep is fine; a sweep that differs in any run
    /// option (here only --duration, which run ids do not name) is refused,
    /// so its runs are never taken for the finished runs of another.
    #[test]
    fn another_sweep_cannot_emit_into_the_same_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = dir.path().join("jobs.txt");
        let out = dir.path().join("s");
        let first = emit_jobs(&plan(&out, "2s"), "kvm-wss", &jobs).expect("emits");
        assert_eq!((first.listed, first.skipped), (1, 0));
        let line = std::fs::read_to_string(&jobs).expect("jobs");
        assert!(line.starts_with("kvm-wss run --guest hotset "), "{line}");
        assert!(emit_jobs(&plan(&out, "2s"), "kvm-wss", &jobs).is_ok());
        assert!(matches!(
            emit_jobs(&plan(&out, "3s"), "kvm-wss", &jobs),
            Err(SweepError::OtherPlan(_))
        ));
    }
}
