//! Command-line definitions, turned into plain configs (`config.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_SAMPLE_PAGES, RunConfig};
use crate::estimate::{DamonConfig, EstimatorKind, EsxGains};
use crate::guests::GuestSource;
use crate::report::metrics::DEFAULT_WARMUP_INTERVALS;
use crate::track::TrackerKind;

#[derive(Debug, Parser)]
#[command(
    name = "kvm-wss",
    version,
    about = "Boot tiny guest programs on KVM and estimate their working-set size by sampled page invalidation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the built-in guest programs, their parameters and the true WSS to expect.
    Guests,
    /// Boot one guest program and estimate its working-set size over time.
    Run(RunArgs),
    /// Draw true against estimated WSS for a finished run (RUN_DIR holds timeseries.csv and summary.json).
    Plot {
        /// A run's output folder.
        run_dir: PathBuf,
    },
    /// Measurements side by side in one run, printed as JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Make the study: every workload, tracker and estimator over a matrix of settings, with figures and OUT/study.md.
    Study(StudyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StudyArgs {
    /// Folder for study.md; runs, figures and data go under OUT/study/.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// Shrink every duration and grid to seconds in all (for tests).
    #[arg(long)]
    pub quick: bool,
    /// Make every run again instead of reusing finished ones under OUT/study/runs/.
    #[arg(long)]
    pub fresh: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The same memory-access kernel as a guest and as a host process: is the guest native?
    Native {
        /// Time each side runs per round.
        #[arg(long, default_value = "2s", value_parser = duration)]
        duration: Duration,
        /// Data the kernel works on.
        #[arg(long, default_value = "64M", value_parser = size)]
        wss: u64,
        /// Alternating VM/host rounds; the medians are reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

/// Parses a size with an optional K/M/G suffix.
pub fn size(s: &str) -> Result<u64, String> {
    wss_abi::units::parse_size(s)
        .ok_or_else(|| format!("{s:?} is not a size (use e.g. 4096, 64K, 512M, 2G)"))
}

/// Parses a duration with a ms/s/m suffix.
pub fn duration(s: &str) -> Result<Duration, String> {
    wss_abi::units::parse_duration_ns(s)
        .filter(|&ns| ns > 0)
        .map(Duration::from_nanos)
        .ok_or_else(|| format!("{s:?} is not a positive duration (use e.g. 100ms, 1s, 2m)"))
}

/// Parses `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// A built-in program (see `kvm-wss guests`) or the path of a guest ELF.
    #[arg(long)]
    pub guest: String,
    /// How long to run (the guest may exit earlier).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Length of one sampling interval.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub interval: Duration,
    /// Guest RAM (a multiple of 2M).
    #[arg(long, default_value = "512M", value_parser = size)]
    pub mem: u64,
    /// Size of the data the program works on.
    #[arg(long, default_value = "64M", value_parser = size)]
    pub wss: u64,
    /// A program parameter, key=value (repeatable).
    #[arg(long = "param", value_parser = key_value)]
    pub params: Vec<(String, String)>,
    /// Seed of the guest's PRNG and of page sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How sampled pages are invalidated.
    #[arg(long, value_enum, default_value = "none")]
    pub tracker: TrackerKind,
    /// How touches become an estimate.
    #[arg(long, value_enum, default_value = "esx")]
    pub estimator: EstimatorKind,
    /// Pages sampled per interval (esx).
    #[arg(long, default_value_t = DEFAULT_SAMPLE_PAGES)]
    pub sample_pages: u64,
    /// Gain of ESX's slow moving average.
    #[arg(long, default_value_t = EsxGains::default().slow)]
    pub esx_slow_gain: f64,
    /// Gain of ESX's fast moving average.
    #[arg(long, default_value_t = EsxGains::default().fast)]
    pub esx_fast_gain: f64,
    /// Fewest DAMON regions.
    #[arg(long, default_value_t = DamonConfig::default().min_regions)]
    pub damon_min_regions: u32,
    /// Most DAMON regions.
    #[arg(long, default_value_t = DamonConfig::default().max_regions)]
    pub damon_max_regions: u32,
    /// DAMON sampling ticks per interval (the interval is DAMON's aggregation interval).
    #[arg(long, default_value_t = DamonConfig::default().ticks_per_interval)]
    pub damon_ticks: u32,
    /// Intervals left out of the error metrics at the start.
    #[arg(long, default_value_t = DEFAULT_WARMUP_INTERVALS)]
    pub warmup: usize,
    /// First run the untracked twin and report the guest slowdown.
    #[arg(long)]
    pub baseline: bool,
    /// Output folder (default: a new folder under runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print summary.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Do not draw the plot.
    #[arg(long)]
    pub no_plot: bool,
    /// Do not print a line per interval while running.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Guest(#[from] crate::guests::GuestError),
    #[error("guest {guest} takes no parameter {key:?} (see `kvm-wss guests`)")]
    UnknownParam { guest: String, key: String },
    #[error("--wss {wss} is larger than --mem {mem}")]
    WssLargerThanMem { wss: u64, mem: u64 },
    #[error("--mem {mem} is larger than this host's memory ({host} bytes)")]
    MemLargerThanHost { mem: u64, host: u64 },
    #[error("--interval {interval:?} is longer than --duration {duration:?}")]
    IntervalTooLong {
        interval: Duration,
        duration: Duration,
    },
}

/// Total memory of the host, from /proc/meminfo.
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl RunArgs {
    /// Checks what can be checked without KVM and builds the config.
    pub fn to_config(&self) -> Result<RunConfig, UsageError> {
        let guest = GuestSource::parse(&self.guest)?;
        if let GuestSource::Builtin(name) = &guest
            && let Some(info) = crate::catalog::find(name)
        {
            for (k, _) in &self.params {
                if !crate::catalog::accepts_param(info, k) {
                    return Err(UsageError::UnknownParam {
                        guest: name.clone(),
                        key: k.clone(),
                    });
                }
            }
        }
        if self.wss > self.mem {
            return Err(UsageError::WssLargerThanMem {
                wss: self.wss,
                mem: self.mem,
            });
        }
        if let Some(host) = host_memory()
            && self.mem > host
        {
            return Err(UsageError::MemLargerThanHost {
                mem: self.mem,
                host,
            });
        }
        if self.interval > self.duration {
            return Err(UsageError::IntervalTooLong {
                interval: self.interval,
                duration: self.duration,
            });
        }
        Ok(RunConfig {
            guest,
            mem: self.mem,
            wss: self.wss,
            seed: self.seed,
            params: self.params.clone(),
            duration: self.duration,
            interval: self.interval,
            tracker: self.tracker,
            estimator: self.estimator,
            sample_pages: self.sample_pages,
            esx: EsxGains {
                slow: self.esx_slow_gain,
                fast: self.esx_fast_gain,
            },
            damon: DamonConfig {
                min_regions: self.damon_min_regions,
                max_regions: self.damon_max_regions,
                ticks_per_interval: self.damon_ticks,
            },
            warmup_intervals: self.warmup,
            baseline: self.baseline,
            out_dir: self.out.clone(),
            plot: !self.no_plot,
            live: !self.quiet && !self.json,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kvm-wss").chain(args.iter().copied()))
    }

    fn run_args(args: &[&str]) -> RunArgs {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        match parse(&all).expect("parses").command {
            Command::Run(r) => r,
            other => panic!("not run: {other:?}"),
        }
    }

    #[test]
    fn units_and_defaults() {
        let r = run_args(&[
            "--guest",
            "seq",
            "--wss",
            "4M",
            "--interval",
            "250ms",
            "--param",
            "k=8",
        ]);
        assert_eq!(r.wss, 4 << 20);
        assert_eq!(r.mem, 512 << 20);
        assert_eq!(r.interval, Duration::from_millis(250));
        assert_eq!(r.duration, Duration::from_secs(10));
        assert_eq!(r.params, vec![("k".to_string(), "8".to_string())]);
        assert_eq!(r.tracker, TrackerKind::None);
        assert_eq!(r.estimator, EstimatorKind::Esx);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            vec!["run", "--guest", "seq", "--mem", "lots"],
            vec!["run", "--guest", "seq", "--interval", "1"],
            vec!["run", "--guest", "seq", "--duration", "0s"],
            vec!["run", "--guest", "seq", "--param", "novalue"],
            vec!["run", "--guest", "seq", "--tracker", "ept"],
            vec!["run"],
            vec!["frobnicate"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn config_checks_reject_bad_input() {
        let err = |args: &[&str]| {
            run_args(args)
                .to_config()
                .expect_err("must fail")
                .to_string()
        };
        assert!(err(&["--guest", "no-such-program"]).contains("unknown guest"));
        assert!(
            err(&["--guest", "seq", "--param", "bogus=1"]).contains("takes no parameter \"bogus\"")
        );
        assert!(
            err(&["--guest", "seq", "--wss", "1G", "--mem", "512M"]).contains("larger than --mem")
        );
        assert!(
            err(&["--guest", "seq", "--mem", "1024G", "--wss", "1M"])
                .contains("larger than this host")
        );
        assert!(
            err(&["--guest", "seq", "--interval", "5s", "--duration", "1s"])
                .contains("longer than --duration")
        );
        let ok = run_args(&["--guest", "stride", "--param", "k=8", "--param", "ops=100"])
            .to_config()
            .expect("valid");
        assert_eq!(ok.guest, GuestSource::Builtin("stride".into()));
    }
}
