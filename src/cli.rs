//! Command-line definitions, turned into plain configs (`config.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{DEFAULT_SAMPLE_PAGES, RunConfig};
use crate::coordinate::policy::PolicyKind;
use crate::coordinate::scenario::{Builtin, ScenarioError};
use crate::estimate::{DamonConfig, EstimateError, EstimatorKind, EsxGains, FollowConfig};
use crate::guests::GuestSource;
use crate::named::Named;
use crate::report::metrics::DEFAULT_WARMUP_INTERVALS;
use crate::sweep;
pub use crate::sweep::args::SweepArgs;
use crate::track::TrackerKind;
use crate::track::dirty_log::{GuestPagesError, check_guest_pages, default_guest_pages};
use crate::vmm::affinity::Placement;
use crate::vmm::paging::GuestPageSize;

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
    /// Run one guest program under every combination of settings and recommend the cheapest
    /// accurate one.
    // Boxed: its many lists make it much the largest variant.
    Sweep(Box<SweepArgs>),
    /// Draw true against estimated WSS for a finished run (RUN_DIR holds timeseries.csv and summary.json);
    /// with --heatmap, the time × page heat map of a recorded run.
    Plot {
        /// A run's output folder.
        run_dir: PathBuf,
        /// Instead: draw the time × page heat map of a run recorded with `run --record`
        /// (RUN_DIR holds trace.bin), with the sampled pages marked, to RUN_DIR/heatmap.svg and .png.
        #[arg(long)]
        heatmap: bool,
        /// Colour the heat map by the pages written instead of touched.
        #[arg(long, requires = "heatmap")]
        written: bool,
        /// Write the heat map to FILE.svg and FILE.png instead.
        #[arg(long, value_name = "FILE", requires = "heatmap")]
        out: Option<PathBuf>,
    },
    /// Measurements side by side in one run, printed as JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Make the study: every workload, tracker and estimator over a matrix of settings, with figures and OUT/study.md.
    Study(StudyArgs),
    /// Run an estimator offline over a run recorded with `run --record`, against its exact truth.
    Replay(ReplayArgs),
    /// Run several VMs under one host memory budget; a policy sets each VM's resident limit
    /// from its estimates every interval.
    Coordinate(CoordinateArgs),
    /// Compare ESX, DAMON and follow at equal tracked faults by replaying the study's recorded
    /// runs (made if missing): OUT/estimators.md and OUT/estimators.csv.
    CompareEstimators(crate::compare::command::CompareArgs),
    /// Write OUT/coordinate.md from the runs under OUT/coordinate/ (`make coordinate`).
    CoordinateDoc {
        /// The document's folder.
        #[arg(long, default_value = "docs")]
        out: PathBuf,
    },
}

pub use crate::coordinate::args::CoordinateArgs;
pub use crate::replay::args::ReplayArgs;

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
    /// Do not run: write the runs not yet finished under OUT/study/runs/ to FILE, one
    /// `kvm-wss run` command line each; then `study --collect OUT`.
    #[arg(long, value_name = "FILE", conflicts_with = "fresh")]
    pub emit_jobs: Option<PathBuf>,
    /// Do not run: read the finished runs under DIR/study/runs/ and write DIR/study.md and
    /// its figures (DIR is the --out of --emit-jobs; give --quick if the jobs were quick).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["fresh", "emit_jobs", "out"])]
    pub collect: Option<PathBuf>,
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
        #[arg(long, default_value_t = 3, value_parser = positive_count)]
        rounds: usize,
    },
    /// Each tracker's cost per tracked touch through kvm-wss and through a minimal loop on the same kernel mechanism (the floor).
    Trackers {
        #[command(flatten)]
        probe: ProbeArgs,
        /// Also write every repetition's costs, as JSON, to this file (stdout gets the medians).
        #[arg(long)]
        detail: Option<PathBuf>,
        /// Also write the arming section as a Markdown table to this file.
        #[arg(long)]
        arming_markdown: Option<PathBuf>,
    },
    /// What a uffd-tracked touch costs with the vCPU and its fault handler on one CPU (--cpu auto) against both left to the scheduler (--cpu free), alternating.
    Placement {
        #[command(flatten)]
        probe: ProbeArgs,
        /// Also write the result as a Markdown table to this file.
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
    /// What finding guest RAM's resident pages costs, as reclaim and follow ask at every boundary: mincore over the RAM mapping against the set the uffd tracker keeps, alternating (no VM: this process touches the pages).
    Residency {
        /// Guest RAM size.
        #[arg(long, default_value = "512M", value_parser = size)]
        mem: u64,
        /// Bytes of it touched (resident) before timing.
        #[arg(long, default_value = "192M", value_parser = size)]
        wss: u64,
        /// Calls of each way, alternating.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
    },
    /// The VMM's cost per interval (arm, collect, truth, sampler CPU) of the same guest at growing --mem, up to past host memory.
    Overcommit {
        /// Guest RAM sizes, a comma-separated list; ratios are to the first.
        #[arg(long, value_delimiter = ',', value_parser = size, default_value = "512M,8G,64G")]
        mems: Vec<u64>,
        /// Working set of the hotset guest.
        #[arg(long, default_value = "64M", value_parser = size)]
        wss: u64,
        /// Pages sampled per interval.
        #[arg(long, default_value_t = DEFAULT_SAMPLE_PAGES)]
        sample_pages: u64,
        /// How sampled pages are invalidated.
        #[arg(long, value_enum, default_value = "uffd")]
        tracker: TrackerKind,
        /// Length of each run.
        #[arg(long, default_value = "6s", value_parser = duration)]
        duration: Duration,
        /// Length of one sampling interval.
        #[arg(long, default_value = "1s", value_parser = duration)]
        interval: Duration,
        /// Rounds; each runs every size once, in an order rotated per round.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
    },
    /// The guest's slowdown per tracker at one sampling setting (seq, by default issue 9's), each tracked run between two untracked ones.
    Slowdown {
        /// Trackers, a comma-separated list; their order rotates per round.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "uffd,mprotect,dirty-log"
        )]
        trackers: Vec<TrackerKind>,
        /// Rounds; each runs every tracker once.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
        rounds: u64,
        /// Working set of the seq guest.
        #[arg(long, default_value = "4M", value_parser = size)]
        wss: u64,
        /// Guest RAM.
        #[arg(long, default_value = "512M", value_parser = size)]
        mem: u64,
        /// Pages sampled per interval.
        #[arg(long, default_value_t = 3200, value_parser = clap::value_parser!(u64).range(1..))]
        sample_pages: u64,
        /// Length of one sampling interval.
        #[arg(long, default_value = "100ms", value_parser = duration)]
        interval: Duration,
        /// Length of each run (tracked and untracked alike).
        #[arg(long, default_value = "6s", value_parser = duration)]
        duration: Duration,
        /// Also write the medians as a Markdown table to this file (stdout gets the JSON).
        #[arg(long)]
        markdown: Option<PathBuf>,
    },
}

/// clap's view of a domain enum, built from its name table
/// (`crate::named`): the possible values, their `--help` lines and the
/// accepted spellings all come from there, so clap stays here, at the
/// edge.
macro_rules! value_enum_from_table {
    ($($t:ty),*) => {$(
        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t as Named>::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(Named::name(*self)).help(Named::help(*self)))
            }
        }
    )*};
}

value_enum_from_table!(
    TrackerKind,
    EstimatorKind,
    GuestPageSize,
    Builtin,
    PolicyKind
);

/// An option value that does not parse; clap prints it after the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{0:?} is not a size (use e.g. 4096, 64K, 512M, 2G)")]
    Size(String),
    #[error("{0:?} is not a positive duration (use e.g. 100ms, 1s, 2m)")]
    Duration(String),
    #[error("{0:?} is not a whole number of at least 1")]
    Count(String),
    #[error("{0:?} is not key=value")]
    KeyValue(String),
    #[error("{0:?} is not a fraction from 0 to 1 (use e.g. 0.1 for 10%)")]
    Fraction(String),
    #[error("{0:?} is not a CPU placement (use auto, free or a CPU number)")]
    Placement(String),
}

/// Parses a size with an optional K/M/G suffix.
pub fn size(s: &str) -> Result<u64, ValueError> {
    wss_abi::units::parse_size(s).ok_or_else(|| ValueError::Size(s.to_string()))
}

/// Parses a duration with a ms/s/m suffix.
pub fn duration(s: &str) -> Result<Duration, ValueError> {
    wss_abi::units::parse_duration_ns(s)
        .filter(|&ns| ns > 0)
        .map(Duration::from_nanos)
        .ok_or_else(|| ValueError::Duration(s.to_string()))
}

/// Parses a whole number of at least 1.
pub fn positive_count(s: &str) -> Result<usize, ValueError> {
    s.parse::<usize>()
        .ok()
        .filter(|&n| n >= 1)
        .ok_or_else(|| ValueError::Count(s.to_string()))
}

/// Parses a fraction in [0, 1].
pub fn fraction(s: &str) -> Result<f64, ValueError> {
    s.parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| ValueError::Fraction(s.to_string()))
}

/// Parses `--cpu`.
pub fn placement(s: &str) -> Result<Placement, ValueError> {
    s.parse().map_err(|_| ValueError::Placement(s.to_string()))
}

/// The shortest `--interval`: the sampler arms, collects and writes a row
/// every interval, which takes on the order of 100 us even for a small
/// sample, so much shorter intervals cannot be honoured, and a run of them
/// would only make rows faster than they are written.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// VMAs left for the rest of the process when bounding mprotect samples:
/// the binary and its libraries, heap and thread stacks, guest memory and
/// the tracker's own mappings take a few hundred; this leaves room to spare.
pub const MAP_COUNT_HEADROOM: u64 = 1000;

/// The checks on sizes and times that every command booting a sampled
/// guest makes (`run`, `bench slowdown`): an interval the sampler can hold,
/// a working set that fits guest RAM, RAM this process can map, and a run
/// at least one interval long.
pub fn check_sizes_and_times(
    wss: u64,
    mem: u64,
    interval: Duration,
    duration: Duration,
) -> Result<(), UsageError> {
    if interval < MIN_INTERVAL {
        return Err(UsageError::IntervalTooShort(interval));
    }
    if wss > mem {
        return Err(UsageError::WssLargerThanMem { wss, mem });
    }
    // Bounded by what can be mapped, not by host memory: see memlimit.
    crate::memlimit::MemLimits::of_this_process().check(mem)?;
    if interval > duration {
        return Err(UsageError::IntervalTooLong { interval, duration });
    }
    Ok(())
}

/// The most pages the mprotect tracker can arm at once on this host, from
/// `vm.max_map_count`. Arming a page in the middle of a read-write mapping
/// splits one VMA into three, so `n` scattered pages need up to `2n + 1`
/// VMAs; with the headroom for the rest of the process, the limit is
/// `(max_map_count - MAP_COUNT_HEADROOM) / 2` (32,265 for the default
/// 65,530).
pub fn mprotect_limit_for(max_map_count: u64) -> u64 {
    max_map_count.saturating_sub(MAP_COUNT_HEADROOM) / 2
}

/// This host's `vm.max_map_count`, if it can be read.
pub fn max_map_count() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    text.trim().parse().ok()
}

/// Parses `key=value`.
pub fn key_value(s: &str) -> Result<(String, String), ValueError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ValueError::KeyValue(s.to_string())),
    }
}

/// Options every run takes, shared by `run` and `sweep`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// A built-in program (see `kvm-wss guests`) or the path of a guest ELF.
    #[arg(long)]
    pub guest: String,
    /// How long to run (the guest may exit earlier).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
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
    /// Gain of ESX's slow moving average.
    #[arg(long, default_value_t = EsxGains::default().slow)]
    pub esx_slow_gain: f64,
    /// Gain of ESX's fast moving average.
    #[arg(long, default_value_t = EsxGains::default().fast)]
    pub esx_fast_gain: f64,
    /// follow: relative half-width of the 95% band the per-interval sample size aims at (0.05
    /// is ±5%); --sample-pages caps the sample.
    #[arg(long, default_value_t = FollowConfig::default().band_target)]
    pub band_target: f64,
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
    /// Page size of the guest's identity map over RAM (tracking always acts on 4 KiB host
    /// pages). Default: 2m, except 4k with --tracker dirty-log, which refuses 2m.
    #[arg(long, value_enum)]
    pub guest_pages: Option<GuestPageSize>,
    /// vCPUs running the program, 1 to 8: every vCPU runs its main, with its index (see the
    /// README); the guest ends when vCPU 0 does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=wss_abi::MAX_VCPUS as u64))]
    pub vcpus: u64,
    /// Where a one-vCPU guest and the thread that resolves its faults run: auto puts them
    /// together on the CPU kvm-wss runs on when a handler thread exists (uffd, or reclaim),
    /// free leaves them to the scheduler, a number names the CPU.
    #[arg(long, default_value = "auto", value_parser = placement)]
    pub cpu: Placement,
    /// First run the untracked twin and report the guest slowdown.
    #[arg(long)]
    pub baseline: bool,
    /// Do not draw the run plot (a sweep still draws its heat maps).
    #[arg(long)]
    pub no_plot: bool,
    /// Do not print a line per interval while running (nor, in a sweep, the progress).
    #[arg(long, short)]
    pub quiet: bool,
}

/// How the benchmarks that boot the `probe` guest size it.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Pages of the probe's region, all armed each round (3 in 4 are touched, 2 in 4 written).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(crate::bench::trackers::MIN_PAGES..))]
    pub pages: u64,
    /// Tracked rounds per boot, and boots per side (the sides alternate); medians are reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Page size of the probe's identity map over RAM.
    #[arg(long, value_enum, default_value = "2m")]
    pub guest_pages: GuestPageSize,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Length of one sampling interval.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub interval: Duration,
    /// How sampled pages are invalidated.
    #[arg(long, value_enum, default_value = "none")]
    pub tracker: TrackerKind,
    /// How touches become an estimate.
    #[arg(long, value_enum, default_value = "esx")]
    pub estimator: EstimatorKind,
    /// Pages sampled per interval (esx).
    #[arg(long, default_value_t = DEFAULT_SAMPLE_PAGES)]
    pub sample_pages: u64,
    /// Output folder (default: a new folder under runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print summary.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write trace.bin: the exact pages touched and written in every
    /// sampler tick, for `kvm-wss replay` (needs a tracker).
    #[arg(long)]
    pub record: bool,
    /// With --record, hold the guest and record the truth every DURATION
    /// instead of at every estimator tick (the interval for esx and
    /// exhaustive), so that a replay can use finer ticks (damon from an esx
    /// run). It must divide the estimator's tick.
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "record")]
    pub record_tick: Option<Duration>,
    /// Keep at most SIZE of the guest's data pages resident: at every
    /// interval boundary the coldest pages above it are evicted to a
    /// compressed in-memory store and restored at their next touch (with
    /// --tracker uffd, or none: then a uffd handler is registered for
    /// restoring alone).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub resident_limit: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Guest(#[from] crate::guests::GuestError),
    #[error("guest {guest} takes no parameter {key:?} (see `kvm-wss guests`)")]
    UnknownParam { guest: String, key: String },
    #[error("--wss {wss} is larger than --mem {mem}")]
    WssLargerThanMem { wss: u64, mem: u64 },
    #[error(transparent)]
    Mem(#[from] crate::memlimit::MemLimitError),
    #[error("--interval {interval:?} is longer than --duration {duration:?}")]
    IntervalTooLong {
        interval: Duration,
        duration: Duration,
    },
    #[error("--{0} needs at least one value")]
    EmptyList(&'static str),
    #[error("--trackers lists none, which tracks nothing and has no slowdown to measure")]
    UntrackedInTrackers,
    #[error("--repeat must be at least 1")]
    NoRepeat,
    #[error("--{name} {value} must be a finite number {bound}")]
    BadTarget {
        name: &'static str,
        value: f64,
        bound: &'static str,
    },
    #[error("bad estimator settings")]
    Estimator(#[from] EstimateError),
    #[error(transparent)]
    Placement(crate::vmm::affinity::AffinityError),
    #[error("{} already holds a {}; choose another --out", .0.display(), sweep::SWEEP_CSV)]
    SweepExists(PathBuf),
    #[error(transparent)]
    GuestPages(#[from] GuestPagesError),
    #[error(transparent)]
    Sweep(sweep::SweepError),
    #[error(transparent)]
    Param(#[from] crate::catalog::BadParam),
    #[error(
        "--interval {0:?} is shorter than the shortest the sampler can honour, {MIN_INTERVAL:?}"
    )]
    IntervalTooShort(Duration),
    #[error(
        "--sample-pages {pages} is more than --tracker mprotect can arm on this host ({limit}: each armed page may split a mapping in two, and vm.max_map_count is {max_map_count}); sample fewer pages or raise vm.max_map_count"
    )]
    TooManyForMprotect {
        pages: u64,
        limit: u64,
        max_map_count: u64,
    },
    #[error("cannot write to the output folder {path}")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a run's output folder (it lacks {file})", .path.display())]
    NotARunDir { path: PathBuf, file: &'static str },
    #[error("--record needs a tracker: without one there is no sampling to replay")]
    RecordWithoutTracker,
    #[error(
        "--resident-limit needs --tracker uffd or none (a uffd handler restores evicted \
         pages at their next touch), not --tracker {0}"
    )]
    ResidentLimitNeedsUffd(&'static str),
    #[error("--resident-limit {0} is less than one page (4K)")]
    ResidentLimitTooSmall(u64),
    #[error(transparent)]
    RecordTick(#[from] crate::record::RecordTickError),
    #[error(transparent)]
    SweepReplay(#[from] sweep::ReplayPlanError),
    #[error("--{0} varies a replay: it needs --replay RUN_DIR")]
    NeedsReplay(&'static str),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
}

/// Creates `dir` if needed and checks that a file can be written in it, so
/// that an unusable `--out` is refused before any guest boots.
pub fn check_out_dir(dir: &std::path::Path) -> Result<(), UsageError> {
    let fail = |source| UsageError::OutDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".kvm-wss-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

pub use crate::memlimit::host_memory;

impl CommonArgs {
    /// The one-line note to print when `--mem` exceeds host memory (an
    /// overcommitted guest, which is allowed), if it does.
    pub fn overcommit_note(&self) -> Option<String> {
        crate::memlimit::MemLimits::of_this_process()
            .check(self.mem)
            .ok()
            .flatten()
    }

    /// Checks what can be checked without KVM and builds the config of one
    /// run with the given per-run choices. The result has no output folder
    /// and prints live lines unless `--quiet`.
    pub fn to_config(
        &self,
        tracker: TrackerKind,
        estimator: EstimatorKind,
        sample_pages: u64,
        interval: Duration,
    ) -> Result<RunConfig, UsageError> {
        let guest = GuestSource::parse(&self.guest)?;
        let program = match &guest {
            GuestSource::Builtin(name) => crate::catalog::find(name),
            GuestSource::File(_) => None,
        };
        if let Some(info) = program {
            for (k, _) in &self.params {
                if !crate::catalog::accepts_param(info, k) {
                    return Err(UsageError::UnknownParam {
                        guest: info.name.to_string(),
                        key: k.clone(),
                    });
                }
            }
        }
        // What a built-in program's data can take; a file's parameters
        // are unknown, so its data is checked at boot only.
        let data = match &guest {
            GuestSource::Builtin(name) => crate::guests::embedded(name)
                .and_then(|image| crate::vmm::machine::data_bytes(image, self.mem, self.vcpus)),
            GuestSource::File(_) => None,
        };
        crate::catalog::check_params(program, &self.params, self.wss, data.unwrap_or(self.mem))?;
        if tracker == TrackerKind::Mprotect
            && matches!(estimator, EstimatorKind::Esx | EstimatorKind::Follow)
            && let Some(max_map_count) = max_map_count()
            && sample_pages > mprotect_limit_for(max_map_count)
        {
            return Err(UsageError::TooManyForMprotect {
                pages: sample_pages,
                limit: mprotect_limit_for(max_map_count),
                max_map_count,
            });
        }
        check_sizes_and_times(self.wss, self.mem, interval, self.duration)?;
        let guest_pages = self
            .guest_pages
            .unwrap_or_else(|| default_guest_pages(tracker));
        check_guest_pages(tracker, guest_pages)?;
        if let Placement::Cpu(cpu) = self.cpu
            && self.vcpus != 1
        {
            return Err(UsageError::Placement(
                crate::vmm::affinity::AffinityError::ManyVcpus {
                    cpu,
                    vcpus: self.vcpus,
                },
            ));
        }
        Ok(RunConfig {
            guest,
            mem: self.mem,
            wss: self.wss,
            seed: self.seed,
            params: self.params.clone(),
            duration: self.duration,
            interval,
            tracker,
            estimator,
            sample_pages,
            esx: EsxGains {
                slow: self.esx_slow_gain,
                fast: self.esx_fast_gain,
            },
            damon: DamonConfig {
                min_regions: self.damon_min_regions,
                max_regions: self.damon_max_regions,
                ticks_per_interval: self.damon_ticks,
            },
            follow: FollowConfig {
                band_target: self.band_target,
                ..FollowConfig::default()
            },
            warmup_intervals: self.warmup,
            guest_pages,
            vcpus: self.vcpus,
            cpu: self.cpu,
            baseline: self.baseline,
            out_dir: None,
            plot: !self.no_plot,
            live: !self.quiet,
        })
    }
}

impl RunArgs {
    /// Checks what can be checked without KVM and builds the config.
    pub fn to_config(&self) -> Result<RunConfig, UsageError> {
        let mut cfg = self.common.to_config(
            self.tracker,
            self.estimator,
            self.sample_pages,
            self.interval,
        )?;
        cfg.out_dir = self.out.clone();
        cfg.live &= !self.json;
        Ok(cfg)
    }
}

/// clap's message as one line: its paragraph before the usage, whose
/// first line names the problem and whose next lines, if any, name the
/// arguments (a missing required one is on a line of its own).
pub fn clap_error_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let line = line.trim_start_matches("error: ");
    if line.is_empty() {
        "bad arguments".to_string()
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clap_error_is_one_line_that_names_what_is_missing() {
        let e = parse(&[
            "coordinate",
            "--scenario",
            "shift",
            "--policy",
            "wss",
            "--host-mem",
            "1G",
            "--rounds",
            "2",
        ])
        .err()
        .unwrap();
        let line = clap_error_line(&e.render().to_string());
        assert_eq!(
            line,
            "the following required arguments were not provided: --twins"
        );
        let e = parse(&["run", "--tracker", "nope"]).err().unwrap();
        let line = clap_error_line(&e.render().to_string());
        assert!(
            line.starts_with("invalid value 'nope' for '--tracker"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        assert_eq!(clap_error_line(""), "bad arguments");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kvm-wss").chain(args.iter().copied()))
    }

    #[test]
    fn plot_takes_heatmap_options_only_with_heatmap() {
        match parse(&["plot", "--heatmap", "--written", "--out", "x", "runs/p"])
            .expect("parses")
            .command
        {
            Command::Plot {
                run_dir,
                heatmap,
                written,
                out,
            } => {
                assert_eq!(run_dir, PathBuf::from("runs/p"));
                assert!(heatmap && written);
                assert_eq!(out, Some(PathBuf::from("x")));
            }
            other => panic!("not plot: {other:?}"),
        }
        assert!(matches!(
            parse(&["plot", "runs/p"]).expect("parses").command,
            Command::Plot {
                heatmap: false,
                written: false,
                out: None,
                ..
            }
        ));
        for args in [
            &["plot", "--written", "runs/p"][..],
            &["plot", "--out", "x", "runs/p"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
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
        assert_eq!(r.common.wss, 4 << 20);
        assert_eq!(r.common.mem, 512 << 20);
        assert_eq!(r.interval, Duration::from_millis(250));
        assert_eq!(r.common.duration, Duration::from_secs(10));
        assert_eq!(r.common.params, vec![("k".to_string(), "8".to_string())]);
        assert_eq!(r.tracker, TrackerKind::None);
        assert_eq!(r.estimator, EstimatorKind::Esx);
    }

    #[test]
    fn bench_residency_defaults_and_bounds() {
        match parse(&["bench", "residency"]).expect("parses").command {
            Command::Bench(BenchCommand::Residency { mem, wss, rounds }) => {
                assert_eq!((mem, wss, rounds), (512 << 20, 192 << 20, 200));
            }
            other => panic!("not bench residency: {other:?}"),
        }
        assert!(parse(&["bench", "residency", "--rounds", "0"]).is_err());
        assert!(parse(&["bench", "residency", "--mem", "lots"]).is_err());
    }

    #[test]
    fn bench_slowdown_defaults_are_the_issues_setting() {
        match parse(&["bench", "slowdown"]).expect("parses").command {
            Command::Bench(BenchCommand::Slowdown {
                trackers,
                rounds,
                wss,
                mem,
                sample_pages,
                interval,
                duration,
                markdown,
            }) => {
                assert_eq!(markdown, None);
                assert_eq!(
                    trackers,
                    vec![
                        TrackerKind::Uffd,
                        TrackerKind::Mprotect,
                        TrackerKind::DirtyLog
                    ]
                );
                assert_eq!(
                    (rounds, wss, mem, sample_pages),
                    (5, 4 << 20, 512 << 20, 3200)
                );
                assert_eq!(
                    (interval, duration),
                    (Duration::from_millis(100), Duration::from_secs(6))
                );
            }
            other => panic!("not bench slowdown: {other:?}"),
        }
        match parse(&["bench", "slowdown", "--trackers", "uffd", "--rounds", "2"])
            .expect("parses")
            .command
        {
            Command::Bench(BenchCommand::Slowdown {
                trackers, rounds, ..
            }) => assert_eq!((trackers, rounds), (vec![TrackerKind::Uffd], 2)),
            other => panic!("not bench slowdown: {other:?}"),
        }
        assert!(parse(&["bench", "slowdown", "--rounds", "0"]).is_err());
        assert!(parse(&["bench", "slowdown", "--sample-pages", "0"]).is_err());
        assert!(parse(&["bench", "slowdown", "--trackers", "nope"]).is_err());
    }

    #[test]
    fn bench_trackers_defaults_and_bounds() {
        match parse(&["bench", "trackers"]).expect("parses").command {
            Command::Bench(BenchCommand::Trackers { probe, detail, .. }) => {
                assert_eq!(
                    (probe.pages, probe.rounds, probe.guest_pages, detail),
                    (1024, 5, GuestPageSize::Size2M, None)
                );
            }
            other => panic!("not bench trackers: {other:?}"),
        }
        match parse(&[
            "bench",
            "trackers",
            "--pages",
            "256",
            "--rounds",
            "1",
            "--guest-pages",
            "4k",
            "--detail",
            "d.json",
        ])
        .expect("parses")
        .command
        {
            Command::Bench(BenchCommand::Trackers { probe, detail, .. }) => {
                assert_eq!(
                    (probe.pages, probe.rounds, probe.guest_pages, detail),
                    (256, 1, GuestPageSize::Size4K, Some(PathBuf::from("d.json")))
                );
            }
            other => panic!("not bench trackers: {other:?}"),
        }
        for bad in [["--pages", "3"], ["--rounds", "0"], ["--pages", "-1"]] {
            let mut args = vec!["bench", "trackers"];
            args.extend_from_slice(&bad);
            assert!(parse(&args).is_err(), "{bad:?} should not parse");
        }
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
                .contains("larger than the largest guest RAM")
        );
        // More than this host's memory but mappable: an overcommitted guest.
        let big = run_args(&["--guest", "seq", "--mem", "64G"]);
        big.to_config().expect("64G is mappable");
        if crate::memlimit::host_memory().is_some_and(|h| h < 64 << 30) {
            assert!(big.common.overcommit_note().is_some());
        }
        assert_eq!(run_args(&["--guest", "seq"]).common.overcommit_note(), None);
        assert!(
            err(&["--guest", "seq", "--interval", "5s", "--duration", "1s"])
                .contains("longer than --duration")
        );
        let ok = run_args(&["--guest", "stride", "--param", "k=8", "--param", "ops=100"])
            .to_config()
            .expect("valid");
        assert_eq!(ok.guest, GuestSource::Builtin("stride".into()));
    }

    #[test]
    fn run_output_options_stay_as_they_were() {
        let cfg = run_args(&["--guest", "seq", "--out", "here", "--sample-pages", "50"])
            .to_config()
            .expect("valid");
        assert_eq!(cfg.out_dir, Some(PathBuf::from("here")));
        assert_eq!(cfg.sample_pages, 50);
        assert!(cfg.live && cfg.plot && !cfg.baseline);
        let cfg = run_args(&["--guest", "seq", "--json", "--no-plot", "--baseline"])
            .to_config()
            .expect("valid");
        assert!(!cfg.live && !cfg.plot && cfg.baseline);
        assert!(
            !run_args(&["--guest", "seq", "-q"])
                .to_config()
                .expect("valid")
                .live
        );
    }

    #[test]
    fn bad_values_are_refused_before_boot() {
        let cfg = |args: &[&str]| {
            let mut all = vec!["--guest", "zipf"];
            all.extend_from_slice(args);
            run_args(&all).to_config()
        };
        for bad in [
            &["--param", "ops=abc"][..],
            &["--param", "ops=-5"],
            &["--param", "ops="],
            &["--param", "rate=-1"],
            &["--param", "theta=NaN"],
            &["--param", "write_ratio=2"],
        ] {
            assert!(
                matches!(cfg(bad), Err(UsageError::Param(_))),
                "{bad:?} was accepted"
            );
        }
        assert!(cfg(&["--param", "theta=1.5", "--param", "ops=10"]).is_ok());
        let err = cfg(&["--interval", "999us"]).expect_err("too short");
        assert!(matches!(err, UsageError::IntervalTooShort(_)), "{err:?}");
        assert!(!err.to_string().contains('\n'));
        assert!(cfg(&["--interval", "1ms"]).is_ok());
        // 2n + 1 VMAs for n scattered pages, with headroom.
        assert_eq!(mprotect_limit_for(65_530), 32_265);
        assert_eq!(mprotect_limit_for(10), 0);
        if let Some(max) = max_map_count() {
            let over = (mprotect_limit_for(max) + 1).to_string();
            let err = cfg(&["--tracker", "mprotect", "--sample-pages", &over]).expect_err("over");
            assert!(
                matches!(err, UsageError::TooManyForMprotect { .. }),
                "{err:?}"
            );
            // Other trackers have no such limit, nor exhaustive mprotect.
            assert!(cfg(&["--tracker", "uffd", "--sample-pages", &over]).is_ok());
            assert!(
                cfg(&[
                    "--tracker",
                    "mprotect",
                    "--estimator",
                    "exhaustive",
                    "--sample-pages",
                    &over
                ])
                .is_ok()
            );
        }
        assert!(parse(&["bench", "native", "--rounds", "0"]).is_err());
        assert!(parse(&["bench", "native", "--rounds", "1"]).is_ok());
    }

    #[test]
    fn out_dirs_must_be_writable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fresh = dir.path().join("a/b");
        check_out_dir(&fresh).expect("creatable");
        assert!(fresh.is_dir());
        assert_eq!(std::fs::read_dir(&fresh).expect("dir").count(), 0);
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        let err = check_out_dir(&file.join("run")).expect_err("under a file");
        assert!(matches!(err, UsageError::OutDir { .. }), "{err:?}");
    }

    #[test]
    fn guest_pages_default_to_what_the_tracker_needs() {
        let pages = |args: &[&str]| {
            let mut all = vec!["--guest", "seq"];
            all.extend_from_slice(args);
            run_args(&all).to_config().map(|c| c.guest_pages)
        };
        assert_eq!(pages(&[]).expect("valid"), GuestPageSize::Size2M);
        assert_eq!(
            pages(&["--tracker", "uffd"]).expect("valid"),
            GuestPageSize::Size2M
        );
        assert_eq!(
            pages(&["--tracker", "dirty-log"]).expect("valid"),
            GuestPageSize::Size4K
        );
        assert_eq!(
            pages(&["--tracker", "dirty-log", "--guest-pages", "4k"]).expect("valid"),
            GuestPageSize::Size4K
        );
        assert_eq!(
            pages(&["--tracker", "mprotect", "--guest-pages", "4k"]).expect("valid"),
            GuestPageSize::Size4K
        );
        // An explicit 2m is refused, not overridden: one line, a usage error.
        let err = pages(&["--tracker", "dirty-log", "--guest-pages", "2m"]).expect_err("2m");
        assert!(matches!(err, UsageError::GuestPages(_)), "{err:?}");
        assert!(!err.to_string().contains('\n'));
        // A sweep checks every setting before the first run.
        let err = sweep_args(&["--tracker", "uffd,dirty-log", "--guest-pages", "2m"])
            .to_plan()
            .expect_err("2m");
        assert!(matches!(err, UsageError::GuestPages(_)), "{err:?}");
        let plan = sweep_args(&["--tracker", "uffd,dirty-log", "--out", "/nonexistent/x"])
            .to_plan()
            .expect("valid");
        let by_tracker: Vec<_> = plan
            .settings
            .iter()
            .map(|(s, c)| (s.tracker, c.guest_pages))
            .collect();
        assert_eq!(
            by_tracker,
            [
                (TrackerKind::Uffd, GuestPageSize::Size2M),
                (TrackerKind::DirtyLog, GuestPageSize::Size4K)
            ]
        );
    }

    fn sweep_args(args: &[&str]) -> SweepArgs {
        let mut all = vec!["sweep", "--guest", "seq"];
        all.extend_from_slice(args);
        match parse(&all).expect("parses").command {
            Command::Sweep(s) => *s,
            other => panic!("not sweep: {other:?}"),
        }
    }

    #[test]
    fn sweep_lists_and_defaults() {
        let a = sweep_args(&[
            "--sample-pages",
            "50,200",
            "--interval",
            "500ms,1s",
            "--tracker",
            "uffd,mprotect",
            "--estimator",
            "esx,damon",
            "--mem",
            "64M",
            "--wss",
            "8M",
        ]);
        assert_eq!(a.sample_pages, [50, 200]);
        assert_eq!(
            a.interval,
            [Duration::from_millis(500), Duration::from_secs(1)]
        );
        assert_eq!(a.tracker, [TrackerKind::Uffd, TrackerKind::Mprotect]);
        assert_eq!(a.estimator, [EstimatorKind::Esx, EstimatorKind::Damon]);
        assert_eq!((a.repeat, a.target_mape, a.target_lag), (1, 0.1, 2.0));
        assert_eq!(a.common.mem, 64 << 20);
        let d = sweep_args(&["--tracker", "uffd"]);
        assert_eq!(d.sample_pages, [DEFAULT_SAMPLE_PAGES]);
        assert_eq!(d.interval, [Duration::from_secs(1)]);
        assert_eq!(d.estimator, [EstimatorKind::Esx]);
        assert!(d.out.is_none());
    }

    #[test]
    fn sweep_plan_expands_the_grid_and_seeds_the_repeats() {
        let plan = sweep_args(&[
            "--sample-pages",
            "50,200",
            "--interval",
            "500ms,1s",
            "--tracker",
            "uffd,mprotect",
            "--estimator",
            "esx,damon",
            "--repeat",
            "2",
            "--seed",
            "7",
            "--duration",
            "3s",
            "--out",
            "somewhere",
        ])
        .to_plan()
        .expect("valid");
        // Per tracker: esx 2 sample sizes x 2 intervals, damon 2 intervals.
        assert_eq!(plan.settings.len(), 2 * (4 + 2));
        assert_eq!(plan.total_runs(), 24);
        let runs: Vec<_> = plan.runs().collect();
        assert_eq!(runs.len(), 24);
        assert_eq!(
            runs.iter()
                .map(|r| r.config.seed)
                .take(4)
                .collect::<Vec<_>>(),
            [7, 8, 7, 8]
        );
        assert!(runs.iter().all(|r| !r.config.live));
        for r in &runs {
            let (setting, _) = &plan.settings[r.setting];
            assert_eq!(r.config.tracker, setting.tracker);
            assert_eq!(r.config.interval, setting.interval);
            assert_eq!(r.config.duration, Duration::from_secs(3));
            if let Some(n) = setting.sample_pages {
                assert_eq!(r.config.sample_pages, n);
            }
        }
        assert_eq!(plan.out_dir, PathBuf::from("somewhere"));
        assert_eq!(plan.targets.max_mape, 0.1);
        assert!(plan.progress && !plan.baseline);
    }

    #[test]
    fn sweep_usage_errors() {
        for bad in [
            vec!["sweep", "--guest", "seq"],
            vec![
                "sweep",
                "--guest",
                "seq",
                "--tracker",
                "uffd",
                "--sample-pages=",
            ],
            vec![
                "sweep",
                "--guest",
                "seq",
                "--tracker",
                "uffd",
                "--sample-pages",
                "1,,2",
            ],
            vec![
                "sweep",
                "--guest",
                "seq",
                "--tracker",
                "uffd",
                "--interval",
                "1s,2",
            ],
            vec!["sweep", "--guest", "seq", "--tracker", "uffd,ept"],
            vec![
                "sweep",
                "--guest",
                "seq",
                "--tracker",
                "uffd",
                "--repeat",
                "-1",
            ],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} should not parse");
        }
        let err = |args: &[&str]| {
            let mut all = vec!["--tracker", "uffd"];
            all.extend_from_slice(args);
            sweep_args(&all)
                .to_plan()
                .expect_err("must fail")
                .to_string()
        };
        assert_eq!(err(&["--repeat", "0"]), "--repeat must be at least 1");
        assert_eq!(
            err(&["--seeds", "1,2"]),
            "--seeds varies a replay: it needs --replay RUN_DIR"
        );
        assert!(err(&["--damon-regions", "1:9"]).contains("--damon-regions varies a replay"));
        // --replay takes the guest, tracker and run options from the recording.
        assert!(parse(&["sweep", "--replay", "r", "--guest", "seq"]).is_err());
        assert!(parse(&["sweep", "--replay", "r", "--repeat", "2"]).is_err());
        assert!(parse(&["sweep", "--replay", "r", "--collect", "d"]).is_err());
        let Command::Sweep(a) = parse(&["sweep", "--replay", "r", "--seeds", "3,4"])
            .expect("parses")
            .command
        else {
            panic!("not sweep");
        };
        assert_eq!((a.seeds, a.tracker.is_empty()), (vec![3, 4], true));
        assert_eq!(
            err(&["--target-mape", "0"]),
            "--target-mape 0 must be a finite number above 0"
        );
        assert!(err(&["--target-mape", "NaN"]).contains("finite"));
        assert_eq!(
            err(&["--target-lag=-1"]),
            "--target-lag -1 must be a finite number 0 or more"
        );
        assert_eq!(
            err(&["--baseline", "--target-slowdown", "0"]),
            "--target-slowdown 0 must be a finite number above 0"
        );
        // A budget needs the untracked twins that measure the slowdown.
        assert!(parse(&["sweep", "--tracker", "uffd", "--target-slowdown", "0.01"]).is_err());
        let budget = sweep_args(&[
            "--tracker",
            "uffd",
            "--baseline",
            "--target-slowdown",
            "0.01",
        ])
        .to_plan()
        .expect("a plan");
        assert_eq!(budget.targets.max_slowdown, Some(0.01));
        assert!(err(&["--sample-pages", "100,0"]).contains("estimator"));
        assert!(err(&["--interval", "1s,20s"]).contains("longer than --duration"));
        let mut unknown = sweep_args(&["--tracker", "uffd"]);
        unknown.common.guest = "nope".into();
        assert!(
            unknown
                .to_plan()
                .expect_err("must fail")
                .to_string()
                .contains("unknown guest")
        );
        let mut empty = sweep_args(&["--tracker", "uffd"]);
        empty.estimator.clear();
        assert_eq!(
            empty.to_plan().expect_err("must fail").to_string(),
            "--estimator needs at least one value"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sweep.csv"), "x").expect("write");
        let out = dir.path().to_str().expect("utf-8");
        assert!(err(&["--out", out]).contains("already holds a sweep.csv"));
    }

    #[test]
    fn collect_stands_alone_and_emit_jobs_needs_out() {
        let Command::Sweep(a) = parse(&["sweep", "--collect", "dir"])
            .expect("parses")
            .command
        else {
            panic!("not sweep");
        };
        assert_eq!(a.collect, Some(PathBuf::from("dir")));
        assert!(parse(&["sweep", "--collect", "dir", "--guest", "seq"]).is_err());
        assert!(parse(&["sweep", "--collect", "dir", "--tracker", "uffd"]).is_err());
        assert!(parse(&["sweep", "--tracker", "uffd"]).is_err(), "no guest");
        assert!(parse(&["sweep", "--guest", "seq"]).is_err(), "no tracker");
        let emit = [
            "sweep",
            "--guest",
            "seq",
            "--tracker",
            "uffd",
            "--emit-jobs",
            "j",
        ];
        assert!(parse(&emit).is_err(), "--emit-jobs without --out");
        let a = sweep_args(&["--tracker", "uffd", "--emit-jobs", "j", "--out", "o"]);
        assert_eq!(a.emit_jobs, Some(PathBuf::from("j")));
        // Emitting again into a folder that already holds a sweep is allowed.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("sweep.csv"), "x").expect("write");
        let out = dir.path().to_str().expect("utf-8");
        assert!(
            sweep_args(&["--tracker", "uffd", "--emit-jobs", "j", "--out", out])
                .to_plan()
                .is_ok()
        );
        let Command::Study(s) = parse(&["study", "--quick", "--collect", "d"])
            .expect("parses")
            .command
        else {
            panic!("not study");
        };
        assert_eq!((s.collect, s.quick), (Some(PathBuf::from("d")), true));
        assert!(parse(&["study", "--collect", "d", "--emit-jobs", "j"]).is_err());
        assert!(parse(&["study", "--emit-jobs", "j", "--fresh"]).is_err());
    }
}
