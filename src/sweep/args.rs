//! `kvm-wss sweep`'s command line, checked into a plan before any run
//! starts (as `replay/args.rs` and `coordinate/args.rs` are for theirs).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{CommonArgs, UsageError, duration};
use crate::config::DEFAULT_SAMPLE_PAGES;
use crate::estimate::{self, EstimatorConfig, EstimatorKind, EsxGains};
use crate::sweep::{self, SweepPlan, Targets};
use crate::track::TrackerKind;

/// `kvm-wss sweep`: every combination of the lists, each `--repeat` times.
#[derive(Debug, Clone, Args)]
// `--collect DIR` alone needs no guest: the sweep folder's plan says it all.
#[command(mut_arg("guest", |a| a.required(false).default_value("").required_unless_present_any(["collect", "replay"])))]
pub struct SweepArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Pages sampled per interval, a comma-separated list (esx only; damon
    /// and exhaustive run once per interval whatever this says).
    #[arg(long, value_delimiter = ',', default_values_t = [DEFAULT_SAMPLE_PAGES])]
    pub sample_pages: Vec<u64>,
    /// Interval lengths, a comma-separated list.
    #[arg(long, value_delimiter = ',', value_parser = duration, default_value = "1s")]
    pub interval: Vec<Duration>,
    /// Trackers, a comma-separated list (`none` runs once per interval, as a
    /// reference without estimate or tracking cost).
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        required_unless_present_any = ["collect", "replay"]
    )]
    pub tracker: Vec<TrackerKind>,
    /// Estimators, a comma-separated list.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "esx")]
    pub estimator: Vec<EstimatorKind>,
    /// Runs per setting; repeat i uses seed + i.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// The recommended setting's mean MAPE must be below this (a fraction: 0.1 = 10%).
    #[arg(long, default_value_t = 0.1)]
    pub target_mape: f64,
    /// The recommended setting's mean lag up must be below this many intervals.
    #[arg(long, default_value_t = 2.0)]
    pub target_lag: f64,
    /// A slowdown budget: the recommended setting's mean slowdown against its untracked
    /// twin (the whole run's, the one to read for a paced guest) must be below this (a
    /// fraction: 0.01 = 1%). Needs --baseline.
    #[arg(long, requires = "baseline")]
    pub target_slowdown: Option<f64>,
    /// Output folder (default: a new folder under runs/). Must not hold a sweep.csv already,
    /// except with --emit-jobs.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not run: write the runs not yet finished under --out to FILE, one `kvm-wss run`
    /// command line each, for GNU parallel, xargs or a Slurm array; then `--collect` the folder.
    #[arg(long, value_name = "FILE", requires = "out")]
    pub emit_jobs: Option<PathBuf>,
    /// Do not run: read the finished runs of the sweep folder DIR (from --emit-jobs or a
    /// sweep) and write its sweep.csv, heat maps and recommendation.
    #[arg(long, value_name = "DIR", exclusive = true)]
    pub collect: Option<PathBuf>,
    /// Do not run guests: evaluate the grid (--estimator, --sample-pages, --interval, --esx-gains,
    /// --damon-regions, --seeds) by replay against the recording in RUN_DIR (`run --record`).
    /// Intervals must be multiples of the recorded tick; the guest, tracker and the estimator
    /// settings not listed are the recorded run's.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = sweep::REPLAY_CONFLICTS)]
    pub replay: Option<PathBuf>,
    /// With --replay: ESX gains SLOW:FAST, a comma-separated list (default: the recorded run's).
    #[arg(long, value_delimiter = ',', value_parser = sweep::parse_esx_gains, requires = "replay")]
    pub esx_gains: Vec<EsxGains>,
    /// With --replay: DAMON region bounds MIN:MAX, a comma-separated list (default: the
    /// recorded run's).
    #[arg(long, value_delimiter = ',', value_parser = sweep::parse_damon_regions, requires = "replay")]
    pub damon_regions: Vec<sweep::DamonRegions>,
    /// With --replay: sampling seeds, a comma-separated list; each setting is replayed with
    /// each, and its figures averaged over them as over a live sweep's repeats (default: the
    /// recorded run's seed).
    #[arg(long, value_delimiter = ',', requires = "replay")]
    pub seeds: Vec<u64>,
}

impl SweepArgs {
    /// Checks the lists and targets and every run's config, so that bad
    /// input is refused before the first run starts.
    pub fn to_plan(&self) -> Result<SweepPlan, UsageError> {
        let lists = [
            ("sample-pages", self.sample_pages.is_empty()),
            ("interval", self.interval.is_empty()),
            ("tracker", self.tracker.is_empty()),
            ("estimator", self.estimator.is_empty()),
        ];
        if let Some((name, _)) = lists.iter().find(|(_, empty)| *empty) {
            return Err(UsageError::EmptyList(name));
        }
        if self.repeat == 0 {
            return Err(UsageError::NoRepeat);
        }
        // Clap's `requires = "replay"` is not enforced when --replay would
        // conflict with what is given (--guest...), so it is checked here.
        let replay_only = [
            ("seeds", self.seeds.is_empty()),
            ("esx-gains", self.esx_gains.is_empty()),
            ("damon-regions", self.damon_regions.is_empty()),
        ];
        if let Some((name, _)) = replay_only.iter().find(|(_, empty)| !*empty) {
            return Err(UsageError::NeedsReplay(name));
        }
        let targets = self.targets()?;
        let grid = sweep::expand_grid(
            &self.tracker,
            &self.estimator,
            &self.sample_pages,
            &self.interval,
        );
        let mut settings = Vec::with_capacity(grid.len());
        for setting in grid {
            let mut cfg = self.common.to_config(
                setting.tracker,
                setting.estimator.unwrap_or(EstimatorKind::Esx),
                setting.sample_pages.unwrap_or(DEFAULT_SAMPLE_PAGES),
                setting.interval,
            )?;
            if let Some(kind) = setting.estimator {
                // The real domain (data pages) is known only after the guest
                // image is laid out; all of guest RAM bounds it, which
                // catches every setting that cannot work on any layout.
                estimate::build(&EstimatorConfig {
                    kind,
                    ..cfg.estimator_config_over_ram()
                })?;
            }
            // The sweep's progress bar replaces each run's per-interval lines.
            cfg.live = false;
            settings.push((setting, cfg));
        }
        let out_dir = match &self.out {
            Some(dir) => dir.clone(),
            None => sweep::default_out_dir(&self.common.guest),
        };
        if self.emit_jobs.is_none() && out_dir.join(sweep::SWEEP_CSV).exists() {
            return Err(UsageError::SweepExists(out_dir));
        }
        Ok(SweepPlan {
            guest: self.common.guest.clone(),
            settings,
            repeat: self.repeat,
            targets,
            baseline: self.common.baseline,
            out_dir,
            progress: !self.common.quiet,
        })
    }
}

impl SweepArgs {
    /// The recommendation's targets, checked.
    pub(crate) fn targets(&self) -> Result<Targets, UsageError> {
        // Written so that NaN fails too.
        if !(self.target_mape.is_finite() && self.target_mape > 0.0) {
            return Err(UsageError::BadTarget {
                name: "target-mape",
                value: self.target_mape,
                bound: "above 0",
            });
        }
        if !(self.target_lag.is_finite() && self.target_lag >= 0.0) {
            return Err(UsageError::BadTarget {
                name: "target-lag",
                value: self.target_lag,
                bound: "0 or more",
            });
        }
        if let Some(budget) = self.target_slowdown
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err(UsageError::BadTarget {
                name: "target-slowdown",
                value: budget,
                bound: "above 0",
            });
        }
        Ok(Targets {
            max_mape: self.target_mape,
            max_lag_up: self.target_lag,
            max_slowdown: self.target_slowdown,
        })
    }
}
