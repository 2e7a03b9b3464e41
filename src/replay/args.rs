//! The command-line side of recording and replay: the `replay`
//! subcommand's options, and the check of `run --record` and
//! `--record-tick` (see `cli` for the rest of the command line).

use std::path::PathBuf;

use clap::Args;

use crate::cli::{RunArgs, UsageError};
use crate::config::RunConfig;
use crate::coordinate::limit::LimitHandle;
use crate::estimate::{self, EstimatorKind};
use crate::record::RecordHeader;
use crate::track::TrackerKind;

use super::ReplaySettings;

/// `kvm-wss replay RUN_DIR`: every setting defaults to the recorded run's.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A run's output folder holding trace.bin (from `run --record`).
    pub run_dir: PathBuf,
    /// How touches become an estimate.
    #[arg(long, value_enum)]
    pub estimator: Option<EstimatorKind>,
    /// Pages sampled per interval (esx).
    #[arg(long)]
    pub sample_pages: Option<u64>,
    /// Length of one interval, in recorded ticks (a recorded tick is the
    /// recorded interval for esx and exhaustive, one DAMON tick for damon).
    #[arg(long, value_name = "TICKS", value_parser = clap::value_parser!(u32).range(1..))]
    pub interval: Option<u32>,
    /// Gain of ESX's slow moving average.
    #[arg(long)]
    pub esx_slow_gain: Option<f64>,
    /// Gain of ESX's fast moving average.
    #[arg(long)]
    pub esx_fast_gain: Option<f64>,
    /// follow's target relative half-width of the 95% band.
    #[arg(long)]
    pub band_target: Option<f64>,
    /// Fewest DAMON regions.
    #[arg(long)]
    pub damon_min_regions: Option<u32>,
    /// Most DAMON regions.
    #[arg(long)]
    pub damon_max_regions: Option<u32>,
    /// DAMON sampling ticks per interval.
    #[arg(long)]
    pub damon_ticks: Option<u32>,
    /// Seed of page sampling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Intervals left out of the error metrics at the start.
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Print the summary as JSON (the shape of summary.json) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where an estimator that measures the working-set curve (curve)
    /// writes curve.csv, curve.json, curve.md and wss_curve.svg/png
    /// [default: RUN_DIR].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl RunArgs {
    /// What `--record`, `--record-tick` and `--resident-limit` ask for,
    /// checked before boot.
    pub fn record_extras(&self, cfg: &RunConfig) -> Result<crate::run::RunExtras, UsageError> {
        if self.record && cfg.tracker == TrackerKind::None {
            return Err(UsageError::RecordWithoutTracker);
        }
        if let Some(tick) = self.record_tick {
            // The real domain is known after boot; all of RAM bounds it.
            let estimator = estimate::build(&cfg.estimator_config_over_ram())?;
            crate::record::recorded_per_tick(
                cfg.interval,
                estimator.ticks_per_interval(),
                Some(tick),
            )?;
        }
        Ok(crate::run::RunExtras {
            record: self.record,
            record_tick: self.record_tick,
            limit: self.resident_limit(cfg)?,
            // The CLI keeps no rows: they stream to timeseries.csv.
            keep_rows: false,
            ..crate::run::RunExtras::default()
        })
    }

    /// The fixed limit `--resident-limit` asks for, in pages, checked
    /// before boot: reclaim restores pages through the uffd tracker's
    /// handler (registered for that alone under `--tracker none`).
    pub fn resident_limit(&self, cfg: &RunConfig) -> Result<Option<LimitHandle>, UsageError> {
        let Some(bytes) = self.resident_limit else {
            return Ok(None);
        };
        if !matches!(cfg.tracker, TrackerKind::Uffd | TrackerKind::None) {
            return Err(UsageError::ResidentLimitNeedsUffd(cfg.tracker.name()));
        }
        let pages = bytes / wss_abi::PAGE_SIZE;
        if pages == 0 {
            return Err(UsageError::ResidentLimitTooSmall(bytes));
        }
        let limit = LimitHandle::unlimited();
        limit.set_pages(Some(pages));
        Ok(Some(limit))
    }
}

impl ReplayArgs {
    /// The settings to replay: the recorded run's, changed where an option says.
    pub fn to_settings(&self, h: &RecordHeader) -> ReplaySettings {
        let mut s = ReplaySettings::recorded(h);
        let e = &mut s.estimator;
        e.kind = self.estimator.unwrap_or(e.kind);
        e.sample_pages = self.sample_pages.unwrap_or(e.sample_pages);
        e.esx.slow = self.esx_slow_gain.unwrap_or(e.esx.slow);
        e.esx.fast = self.esx_fast_gain.unwrap_or(e.esx.fast);
        e.follow.band_target = self.band_target.unwrap_or(e.follow.band_target);
        e.damon.min_regions = self.damon_min_regions.unwrap_or(e.damon.min_regions);
        e.damon.max_regions = self.damon_max_regions.unwrap_or(e.damon.max_regions);
        e.damon.ticks_per_interval = self.damon_ticks.unwrap_or(e.damon.ticks_per_interval);
        s.interval_ticks = self.interval.unwrap_or(s.interval_ticks);
        s.seed = self.seed.unwrap_or(s.seed);
        s.warmup_intervals = self.warmup.unwrap_or(s.warmup_intervals);
        s
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kvm-wss").chain(args.iter().copied()))
    }

    #[test]
    fn settings_default_to_the_recorded_runs_and_options_override_them() {
        let h = crate::record::tests::header();
        let Command::Replay(a) = parse(&["replay", "runs/x"]).unwrap().command else {
            panic!("not replay");
        };
        assert_eq!(a.to_settings(&h), super::ReplaySettings::recorded(&h));
        let Command::Replay(a) = parse(&[
            "replay",
            "runs/x",
            "--estimator",
            "damon",
            "--sample-pages",
            "9",
            "--interval",
            "40",
            "--seed",
            "3",
            "--damon-ticks",
            "8",
            "--esx-fast-gain",
            "0.5",
            "--warmup",
            "0",
        ])
        .unwrap()
        .command
        else {
            panic!("not replay");
        };
        let s = a.to_settings(&h);
        assert_eq!(s.estimator.kind, crate::estimate::EstimatorKind::Damon);
        assert_eq!(
            (s.estimator.sample_pages, s.interval_ticks, s.seed),
            (9, 40, 3)
        );
        assert_eq!(s.estimator.damon.ticks_per_interval, 8);
        assert_eq!(s.estimator.esx.fast, 0.5);
        assert_eq!(s.estimator.esx.slow, h.estimator.esx.slow);
        assert_eq!(s.estimator.domain_pages, h.estimator.domain_pages);
        assert_eq!(s.warmup_intervals, 0);
        assert!(parse(&["replay", "runs/x", "--interval", "0"]).is_err());
        assert!(parse(&["replay"]).is_err());
    }

    #[test]
    fn record_tick_needs_record_and_must_divide_the_tick() {
        assert!(parse(&["run", "--guest", "seq", "--record-tick", "10ms"]).is_err());
        let run = |tick: &str| {
            let args = [
                "run",
                "--guest",
                "seq",
                "--tracker",
                "uffd",
                "--record",
                "--record-tick",
                tick,
            ];
            let Command::Run(r) = parse(&args).unwrap().command else {
                panic!("not run");
            };
            let cfg = r.to_config().unwrap();
            r.record_extras(&cfg)
        };
        let extras = run("10ms").unwrap();
        assert!(extras.record);
        assert_eq!(
            extras.record_tick,
            Some(std::time::Duration::from_millis(10))
        );
        assert!(matches!(
            run("300ms"),
            Err(crate::cli::UsageError::RecordTick(_))
        ));
    }
}
