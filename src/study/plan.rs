//! The matrix of runs a study makes: which workloads, mechanisms,
//! estimators, sample sizes, intervals and gains, and how long each run
//! lasts. Pure data, so the plan can be listed, costed and tested without
//! KVM.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::sections::agile::AgilityRuns;
use super::sections::effective::SweepRuns;
use super::sections::efficient::CostRuns;
use super::sections::estimators::EstimatorRuns;
use super::sections::hard_cases::HardCaseRuns;
use super::sections::works::WorksRuns;
use super::sections::write_only::ReadHeavyRuns;
use crate::config::RunConfig;
use crate::estimate::{DamonConfig, EstimatorKind, EsxGains};
use crate::guests::GuestSource;
use crate::track::TrackerKind;

/// A guest program with the parameters the study runs it with.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Short name used in figures, tables and run ids (e.g. `zipf-1.2`).
    pub label: String,
    pub guest: &'static str,
    pub params: Vec<(String, String)>,
}

impl Workload {
    fn new(label: &str, guest: &'static str, params: &[(&str, String)]) -> Workload {
        Workload {
            label: label.to_string(),
            guest,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    /// The value of parameter `key`, if set.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when the guest runs as fast as it can (no `rate`).
    pub fn unpaced(&self) -> bool {
        self.param("rate").is_none()
    }

    /// `guest (k=v, ...)`, for tables.
    pub fn describe(&self) -> String {
        if self.params.is_empty() {
            return self.guest.to_string();
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} ({})", self.guest, params.join(", "))
    }
}

/// One planned run: everything `kvm-wss run` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub workload: Workload,
    pub mem: u64,
    pub wss: u64,
    pub seed: u64,
    pub tracker: TrackerKind,
    pub estimator: EstimatorKind,
    pub sample_pages: u64,
    pub interval: Duration,
    pub duration: Duration,
    pub gains: EsxGains,
    pub warmup: usize,
    pub baseline: bool,
    /// Record the exact truth of every tick of this length to trace.bin
    /// (`--record --record-tick`), for the comparison by replay.
    pub record_tick: Option<Duration>,
}

/// `n` bytes as the CLI takes them: `512M`, `64K` or a plain number.
pub fn size_arg(n: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// `d` as the CLI takes it: whole seconds as `2s`, anything else in `ms`.
pub fn duration_arg(d: Duration) -> String {
    let ms = d.as_millis();
    if ms > 0 && ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A gain as typed on the command line (shortest form that round-trips).
fn gain_arg(g: f64) -> String {
    format!("{g}")
}

impl Spec {
    /// A stable name for the run's folder, made of every setting that
    /// changes its outcome, so a cached run is reused only for the very
    /// same settings.
    pub fn id(&self) -> String {
        let mut id = self.workload.guest.to_string();
        for (k, v) in &self.workload.params {
            id.push_str(&format!(",{k}={v}"));
        }
        id.push_str(&format!(
            "__{}-{}",
            self.tracker.name(),
            self.estimator.name()
        ));
        if self.samples_matter() {
            id.push_str(&format!("-n{}", self.sample_pages));
        }
        id.push_str(&format!(
            "-i{}-d{}-m{}-w{}-s{}-wu{}",
            duration_arg(self.interval),
            duration_arg(self.duration),
            size_arg(self.mem),
            size_arg(self.wss),
            self.seed,
            self.warmup
        ));
        if self.gains != EsxGains::default() && self.estimator == EstimatorKind::Esx {
            id.push_str(&format!("-g{}-{}", self.gains.slow, self.gains.fast));
        }
        if self.baseline {
            id.push_str("-base");
        }
        if let Some(tick) = self.record_tick {
            id.push_str(&format!("-rec{}", duration_arg(tick)));
        }
        id.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ',' | '=') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// Whether the sample size changes the run's outcome: ESX's sample,
    /// and follow's cap (DAMON and exhaustive ignore it).
    fn samples_matter(&self) -> bool {
        matches!(self.estimator, EstimatorKind::Esx | EstimatorKind::Follow)
    }

    /// What the run does besides its configuration: recording its truth.
    pub fn run_extras(&self) -> crate::run::RunExtras {
        crate::run::RunExtras {
            record: self.record_tick.is_some(),
            record_tick: self.record_tick,
            ..crate::run::RunExtras::default()
        }
    }

    /// The run's settings as the library takes them.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            guest: GuestSource::Builtin(self.workload.guest.to_string()),
            mem: self.mem,
            wss: self.wss,
            seed: self.seed,
            params: self.workload.params.clone(),
            duration: self.duration,
            interval: self.interval,
            tracker: self.tracker,
            estimator: self.estimator,
            sample_pages: self.sample_pages,
            esx: self.gains,
            damon: DamonConfig::default(),
            follow: crate::estimate::FollowConfig::default(),
            warmup_intervals: self.warmup,
            guest_pages: crate::track::dirty_log::default_guest_pages(self.tracker),
            vcpus: 1,
            cpu: crate::vmm::affinity::Placement::Auto,
            baseline: self.baseline,
            out_dir: None,
            plot: false,
            live: false,
        }
    }

    /// The equivalent stand-alone command, writing where the study does.
    pub fn command(&self, run_dir: &Path) -> String {
        let mut c = format!(
            "kvm-wss run --guest {} --mem {} --wss {}",
            self.workload.guest,
            size_arg(self.mem),
            size_arg(self.wss)
        );
        for (k, v) in &self.workload.params {
            c.push_str(&format!(" --param {k}={v}"));
        }
        c.push_str(&format!(
            " --tracker {} --estimator {}",
            self.tracker.name(),
            self.estimator.name()
        ));
        if self.samples_matter() {
            c.push_str(&format!(" --sample-pages {}", self.sample_pages));
        }
        if self.estimator == EstimatorKind::Esx {
            let d = EsxGains::default();
            if self.gains.slow != d.slow {
                c.push_str(&format!(" --esx-slow-gain {}", gain_arg(self.gains.slow)));
            }
            if self.gains.fast != d.fast {
                c.push_str(&format!(" --esx-fast-gain {}", gain_arg(self.gains.fast)));
            }
        }
        c.push_str(&format!(
            " --interval {} --duration {} --warmup {} --seed {}",
            duration_arg(self.interval),
            duration_arg(self.duration),
            self.warmup,
            self.seed
        ));
        if self.baseline {
            c.push_str(" --baseline");
        }
        if let Some(tick) = self.record_tick {
            c.push_str(&format!(" --record --record-tick {}", duration_arg(tick)));
        }
        c.push_str(&format!(" --no-plot --quiet --out {}", run_dir.display()));
        c
    }

    /// Wall-clock run time, counting the untracked twin of a baseline run.
    pub fn run_time(&self) -> Duration {
        if self.baseline {
            self.duration * 2
        } else {
            self.duration
        }
    }

    /// Tracker-and-estimator label such as `uffd+esx`.
    pub fn method(&self) -> String {
        format!("{}+{}", self.tracker.name(), self.estimator.name())
    }
}

/// Every knob that differs between the full study and `--quick`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    pub quick: bool,
    pub mem: u64,
    pub wss: u64,
    pub seed: u64,
    /// The default setting every section starts from.
    pub interval: Duration,
    pub sample_pages: u64,
    /// Length of the default-setting runs (section 1, agility).
    pub run_duration: Duration,
    /// Length of the other accuracy runs (estimator checks, sweeps, failures).
    pub sweep_duration: Duration,
    /// Scored length of one side of a cost run (it runs twice: untracked,
    /// tracked), after its warm-up.
    pub cost_duration: Duration,
    /// Warm-up of the cost runs: long enough that uffd has filled every
    /// page of the unpaced guest's region at its first touch (about 65536
    /// pages at tens of µs each here, 4-5 s) before the scored intervals
    /// that give the steady slowdown.
    pub cost_warmup: Duration,
    /// Interval of the sampled cost runs: shorter than the default so that
    /// tracked faults are frequent enough for their cost to stand out of
    /// the noise of a shared machine.
    pub cost_interval: Duration,
    pub sample_grid: Vec<u64>,
    pub interval_grid: Vec<Duration>,
    pub agility_intervals: Vec<Duration>,
    pub slow_gains: Vec<f64>,
    pub fast_gains: Vec<f64>,
    /// Start-up excluded from the metrics, as time; turned into intervals.
    pub warmup_time: Duration,
    /// Fewest scored intervals a run must have; long intervals lengthen it.
    pub min_scored: u32,
    /// Phase length of `phases` and each stage of `ramp`.
    pub phase_period: Duration,
}

impl Scale {
    /// The study `make study` runs: about 57 minutes of guest time. The
    /// working region is large (half the RAM) so that paced programs can
    /// run many of the guest runtime's 256-access batches per interval,
    /// even the shortest, without touching the whole region in one.
    pub fn full() -> Scale {
        Scale {
            quick: false,
            mem: 512 << 20,
            wss: 256 << 20,
            seed: 1,
            interval: Duration::from_secs(1),
            sample_pages: 400,
            run_duration: Duration::from_secs(20),
            sweep_duration: Duration::from_secs(10),
            cost_duration: Duration::from_secs(5),
            cost_warmup: Duration::from_secs(8),
            cost_interval: Duration::from_millis(100),
            sample_grid: vec![25, 50, 100, 200, 400, 800, 1600, 3200],
            interval_grid: [100, 200, 500, 1000, 2000, 5000, 10000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            agility_intervals: [250, 500, 1000, 2000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            slow_gains: vec![0.125, 0.5, 1.0],
            fast_gains: vec![0.25, 0.75, 1.0],
            warmup_time: Duration::from_secs(2),
            min_scored: 3,
            phase_period: Duration::from_secs(5),
        }
    }

    /// The same study shrunk to seconds, for the integration test.
    pub fn quick() -> Scale {
        let ms = Duration::from_millis;
        Scale {
            quick: true,
            mem: 32 << 20,
            wss: 8 << 20,
            seed: 1,
            interval: ms(50),
            sample_pages: 100,
            run_duration: ms(300),
            sweep_duration: ms(200),
            cost_duration: ms(150),
            cost_warmup: ms(100),
            cost_interval: ms(50),
            sample_grid: vec![50, 100],
            interval_grid: vec![ms(50), ms(100)],
            agility_intervals: vec![ms(50), ms(100)],
            slow_gains: vec![0.125, 1.0],
            fast_gains: vec![0.75, 1.0],
            warmup_time: ms(50),
            min_scored: 1,
            phase_period: ms(200),
        }
    }

    pub fn wss_pages(&self) -> u64 {
        self.wss / wss_abi::PAGE_SIZE
    }

    /// Intervals left out of the metrics for `interval`: the warm-up time,
    /// rounded up, and at least one interval (boot happens in the first).
    pub fn warmup_for(&self, interval: Duration) -> usize {
        intervals_in(self.warmup_time, interval)
    }

    /// Intervals left out of a cost run's metrics: the cost warm-up, in
    /// the same way.
    pub fn cost_warmup_for(&self, interval: Duration) -> usize {
        intervals_in(self.cost_warmup, interval)
    }

    /// `base`, lengthened so that runs with long intervals still have
    /// `min_scored` intervals after warm-up.
    pub fn duration_for(&self, base: Duration, interval: Duration) -> Duration {
        let needed = self.warmup_for(interval) as u32 + self.min_scored;
        base.max(interval * needed)
    }

    /// A pacing rate: `per_wss` times the working set's pages per default
    /// interval, in accesses per second.
    fn rate(&self, per_wss: f64) -> String {
        let per_s = self.wss_pages() as f64 * per_wss / self.interval.as_secs_f64();
        let r = per_s.round().max(1.0);
        format!("{r:.0}")
    }

    fn period(&self) -> String {
        duration_arg(self.phase_period)
    }
}

/// Intervals of `interval` that cover `time`, rounded up, and at least
/// one (boot happens in the first).
fn intervals_in(time: Duration, interval: Duration) -> usize {
    let n = time.as_nanos().div_ceil(interval.as_nanos().max(1));
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// The workloads of the study, in the order figures show them. Programs
/// that would touch their whole region every interval when unpaced get a
/// `rate` so that each interval touches only part of it; `phases` and
/// `ramp` stay unpaced, as their point is a working set that changes size
/// on a clock, and `idle` paces itself.
pub fn workloads(s: &Scale) -> Vec<Workload> {
    vec![
        Workload::new("chase", "chase", &[("rate", s.rate(0.5))]),
        Workload::new("hotset", "hotset", &[("rate", s.rate(1.0))]),
        Workload::new("idle", "idle", &[]),
        Workload::new("phases", "phases", &[("period", s.period())]),
        Workload::new(
            "ramp",
            "ramp",
            &[
                ("grow", s.period()),
                ("hold", s.period()),
                ("shrink", s.period()),
            ],
        ),
        Workload::new("random", "random", &[("rate", s.rate(0.5))]),
        Workload::new("seq", "seq", &[("rate", s.rate(0.5))]),
        Workload::new(
            "stride",
            "stride",
            &[("k", "4".into()), ("rate", s.rate(0.125))],
        ),
        Workload::new("zipf", "zipf", &[("rate", s.rate(1.0))]),
    ]
}

/// The application-like programs, studied only by question 1 (the default
/// setting, and the estimator comparison): each runs a real algorithm
/// whose phases (an init pass, scans, collections, compactions) shape its
/// working set. Every one is paced, so that its phases fall at the same
/// point of a run on any machine. A `rate` counts the program's own unit
/// of work, so each was chosen from trial runs at the full scale rather
/// than as a share of the region: slower than the program runs unpaced
/// here (from about half to nearly all of that speed), yet fast enough for
/// a 20 s run to pass its init phase into the algorithm proper (`pagerank`
/// builds its graph for about 6 s at its rate, `extsort` generates keys
/// for about 8 s).
pub fn applications(s: &Scale) -> Vec<Workload> {
    let app =
        |name: &'static str, per_wss: f64| Workload::new(name, name, &[("rate", s.rate(per_wss))]);
    vec![
        app("extsort", 32.0),
        app("gcheap", 8.0),
        app("hashjoin", 32.0),
        app("lrucache", 4.0),
        app("lsm", 4.0),
        app("pagerank", 96.0),
        app("stencil", 128.0),
    ]
}

/// The heavy-tailed Zipf variant of the failure analysis.
pub fn zipf_heavy(s: &Scale) -> Workload {
    Workload::new(
        "zipf-1.2",
        "zipf",
        &[("theta", "1.2".into()), ("rate", s.rate(1.0))],
    )
}

/// `random` paced like the study's, but 95% reads: what write-only
/// tracking misses.
pub fn read_heavy(s: &Scale) -> Workload {
    Workload::new(
        "random-reads",
        "random",
        &[("write_ratio", "0.05".into()), ("rate", s.rate(0.5))],
    )
}

/// `random` unpaced: every page of the working set is touched soon after
/// it is armed, so tracked faults are as many as the samples can give, and
/// the guest's access rate shows what each one costs.
pub fn cost_workload() -> Workload {
    Workload::new("random-unpaced", "random", &[])
}

/// Names of the workloads the effectiveness sweeps cover.
pub const SWEEP_WORKLOADS: [&str; 5] = ["hotset", "zipf", "chase", "stride", "random"];
/// The sweep workloads whose every setting also runs after an untracked
/// twin, so that the recommendation can hold it to a slowdown budget.
pub const BUDGET_WORKLOADS: [&str; 3] = ["hotset", "zipf", "random"];
/// The trackers, in the order tables list them.
pub const TRACKERS: [TrackerKind; 3] = [
    TrackerKind::Mprotect,
    TrackerKind::Uffd,
    TrackerKind::DirtyLog,
];

/// The study's runs: the default setting of every workload, which several
/// questions read, and the runs each question adds (`super::sections`). A
/// run may appear in several groups (the default setting is a point of
/// every sweep); it is made once.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub scale: Scale,
    /// The access patterns, which every question studies.
    pub workloads: Vec<Workload>,
    /// The application programs, which only question 1 studies.
    pub applications: Vec<Workload>,
    /// uffd + esx at the default setting, per access pattern (the
    /// application programs' are `works.applications`).
    pub defaults: Vec<Spec>,
    pub works: WorksRuns,
    pub effective: SweepRuns,
    pub hard_cases: HardCaseRuns,
    pub write_only: ReadHeavyRuns,
    pub efficient: CostRuns,
    pub agile: AgilityRuns,
    pub estimators: EstimatorRuns,
}

/// The runs a question of the study adds to the plan.
pub trait QuestionRuns {
    /// Its runs, in the order they are made.
    fn specs(&self) -> Vec<&Spec>;
}

/// Makes the runs of a plan at one scale: the one place where a run's
/// memory, seed, duration and warm-up follow from the scale.
pub struct SpecMaker<'a> {
    pub scale: &'a Scale,
}

impl SpecMaker<'_> {
    /// A run of `w` lasting about `base` (longer for long intervals).
    pub fn spec(
        &self,
        w: &Workload,
        tracker: TrackerKind,
        estimator: EstimatorKind,
        sample_pages: u64,
        interval: Duration,
        base: Duration,
    ) -> Spec {
        let s = self.scale;
        Spec {
            workload: w.clone(),
            mem: s.mem,
            wss: s.wss,
            seed: s.seed,
            tracker,
            estimator,
            sample_pages,
            interval,
            duration: s.duration_for(base, interval),
            gains: EsxGains::default(),
            warmup: s.warmup_for(interval),
            baseline: false,
            record_tick: None,
        }
    }

    /// The default setting's run of `w`.
    pub fn default_run(&self, w: &Workload) -> Spec {
        let s = self.scale;
        self.spec(
            w,
            TrackerKind::Uffd,
            EstimatorKind::Esx,
            s.sample_pages,
            s.interval,
            s.run_duration,
        )
    }
}

/// The hard cases of the failure analysis, in table order.
pub fn failure_workloads(s: &Scale) -> Vec<Workload> {
    let all = workloads(s);
    let pick = |name: &str| all.iter().find(|w| w.label == name).cloned();
    [pick("chase"), pick("stride"), Some(zipf_heavy(s))]
        .into_iter()
        .flatten()
        .collect()
}

impl Plan {
    pub fn new(scale: Scale) -> Plan {
        let workloads = workloads(&scale);
        let applications = applications(&scale);
        let make = SpecMaker { scale: &scale };
        Plan {
            defaults: workloads.iter().map(|w| make.default_run(w)).collect(),
            works: WorksRuns::plan(&make, &workloads, &applications),
            effective: SweepRuns::plan(&make, &workloads),
            hard_cases: HardCaseRuns::plan(&make),
            write_only: ReadHeavyRuns::plan(&make),
            efficient: CostRuns::plan(&make),
            agile: AgilityRuns::plan(&make, &workloads),
            estimators: EstimatorRuns::plan(&make, &workloads),
            workloads,
            applications,
            scale,
        }
    }

    /// The questions' run groups, in document order.
    fn questions(&self) -> [&dyn QuestionRuns; 7] {
        [
            &self.works,
            &self.effective,
            &self.hard_cases,
            &self.write_only,
            &self.efficient,
            &self.agile,
            &self.estimators,
        ]
    }

    /// Every distinct run, each once, in the order they are made: the
    /// default setting, then each question's runs.
    pub fn runs(&self) -> Vec<&Spec> {
        let mut seen = BTreeSet::new();
        self.defaults
            .iter()
            .chain(self.questions().into_iter().flat_map(|q| q.specs()))
            .filter(|sp| seen.insert(sp.id()))
            .collect()
    }

    /// Sum of the runs' wall-clock times.
    pub fn run_time(&self) -> Duration {
        self.runs().iter().map(|s| s.run_time()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_forms_of_sizes_and_durations() {
        assert_eq!(size_arg(512 << 20), "512M");
        assert_eq!(size_arg(2 << 30), "2G");
        assert_eq!(size_arg(96 << 10), "96K");
        assert_eq!(size_arg(1000), "1000");
        assert_eq!(duration_arg(Duration::from_secs(10)), "10s");
        assert_eq!(duration_arg(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
        for d in [250u64, 1000, 1500, 10000] {
            let arg = duration_arg(Duration::from_millis(d));
            assert_eq!(wss_abi::units::parse_duration_ns(&arg), Some(d * 1_000_000));
        }
    }

    #[test]
    fn warmup_and_duration_follow_the_interval() {
        let s = Scale::full();
        let ms = Duration::from_millis;
        assert_eq!(s.warmup_for(ms(100)), 20);
        assert_eq!(s.warmup_for(ms(1000)), 2);
        assert_eq!(s.warmup_for(ms(3000)), 1);
        assert_eq!(s.warmup_for(ms(10000)), 1);
        // 10 s: one warm-up and three scored intervals.
        assert_eq!(s.duration_for(ms(10000), ms(10000)), ms(40000));
        assert_eq!(s.duration_for(ms(10000), ms(5000)), ms(20000));
        assert_eq!(s.duration_for(ms(10000), ms(100)), ms(10000));
    }

    #[test]
    fn full_plan_covers_the_matrix() {
        let p = Plan::new(Scale::full());
        let names: Vec<&str> = p.workloads.iter().map(|w| w.guest).collect();
        assert_eq!(
            names,
            [
                "chase", "hotset", "idle", "phases", "ramp", "random", "seq", "stride", "zipf"
            ]
        );
        for (_, runs) in &p.effective.sample_sweep {
            let n: Vec<u64> = runs.iter().map(|r| r.sample_pages).collect();
            assert_eq!(n, [25, 50, 100, 200, 400, 800, 1600, 3200]);
        }
        assert_eq!(p.effective.sample_sweep.len(), 5);
        assert_eq!(p.effective.interval_sweep[0].1.len(), 7);
        // 3 workloads x 3 trackers x 2 estimators.
        assert_eq!(p.hard_cases.runs.len(), 18);
        assert_eq!(p.efficient.sampled.len(), 24);
        assert!(
            p.efficient
                .sampled
                .iter()
                .all(|s| s.baseline && s.workload.unpaced())
        );
        // The cost runs score 5 s after an 8 s warm-up (80 intervals of
        // 100 ms, 8 of 1 s).
        for sp in p.efficient.specs() {
            assert_eq!(sp.duration, Duration::from_secs(13), "{}", sp.id());
            assert_eq!(
                sp.warmup,
                if sp.interval.as_millis() == 100 {
                    80
                } else {
                    8
                }
            );
        }
        // Every point of the budget workloads' sweeps has a twin, no other.
        for (w, runs) in p
            .effective
            .sample_sweep
            .iter()
            .chain(&p.effective.interval_sweep)
        {
            let twinned = BUDGET_WORKLOADS.contains(&w.label.as_str());
            assert!(runs.iter().all(|r| r.baseline == twinned), "{}", w.label);
        }
        assert_eq!(p.agile.by_gains.len(), 12);
        // Every tracker and estimator appears.
        let runs = p.runs();
        for t in TRACKERS {
            assert!(runs.iter().any(|r| r.tracker == t), "{t:?}");
        }
        for e in [
            EstimatorKind::Esx,
            EstimatorKind::Damon,
            EstimatorKind::Exhaustive,
        ] {
            assert!(runs.iter().any(|r| r.estimator == e), "{e:?}");
        }
        // The application programs are studied by question 1 alone: each
        // has its default run, its DAMON run and its exhaustive run there,
        // and no other question runs it.
        let apps: Vec<&str> = p.applications.iter().map(|w| w.guest).collect();
        assert_eq!(
            apps,
            [
                "extsort", "gcheap", "hashjoin", "lrucache", "lsm", "pagerank", "stencil"
            ]
        );
        assert!(p.applications.iter().all(|w| !w.unpaced()));
        let n = p.workloads.len() + apps.len();
        assert_eq!((p.works.damon.len(), p.works.exhaustive.len()), (n, n));
        let app_runs = runs
            .iter()
            .filter(|r| apps.contains(&r.workload.guest))
            .count();
        assert_eq!(app_runs, 3 * apps.len());
        let others = [
            p.effective.specs(),
            p.hard_cases.specs(),
            p.write_only.specs(),
            p.efficient.specs(),
            p.agile.specs(),
        ];
        for r in others.iter().flatten() {
            assert!(!apps.contains(&r.workload.guest), "{}", r.id());
        }
        // Test-only programs are not studied.
        assert!(
            runs.iter()
                .all(|r| !matches!(r.workload.guest, "probe" | "badcall"))
        );
    }

    #[test]
    fn shared_runs_are_made_once() {
        let p = Plan::new(Scale::full());
        let runs = p.runs();
        let ids: BTreeSet<String> = runs.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), runs.len());
        // The sweeps of hotset share their default point, which lasts as
        // long as the other points rather than as the section-1 run.
        let (samples, intervals) = (
            &p.effective.sample_sweep[0].1,
            &p.effective.interval_sweep[0].1,
        );
        assert_eq!(samples[4], intervals[3]);
        assert_eq!(samples[4].duration, p.scale.sweep_duration);
        assert_ne!(samples[4], p.defaults[1]);
        // Shared: the default point of each workload's two sweeps; the
        // DAMON runs of chase and stride (section 1 and the failure matrix)
        // and their uffd + esx runs (sweep default point and the failure
        // matrix); the default gains of section 4 (among the slow gains and
        // among the fast ones, both the section-1 run). The application
        // programs add three runs each to section 1.
        assert_eq!(
            runs.len(),
            9 + 9 + 9 + 5 * 14 + (18 - 4) + 2 + 24 + 3 + 6 + 8 + 3 * 7 + 9
        );
    }

    #[test]
    fn full_plan_fits_the_time_budget() {
        let p = Plan::new(Scale::full());
        let t = p.run_time().as_secs();
        // About 57 minutes: question 6's nine recorded runs (3 minutes), the
        // cost runs' warm-ups past uffd's first-touch fill (7 minutes) and
        // the untracked twins of the budget sweeps (9 minutes) included.
        assert!((3000..=3600).contains(&t), "{t} s of runs");
        let q = Plan::new(Scale::quick());
        assert!(q.run_time() < Duration::from_secs(40), "{:?}", q.run_time());
    }

    #[test]
    fn ids_distinguish_every_setting_and_read_well() {
        let p = Plan::new(Scale::full());
        let hot = p.defaults[1].clone();
        assert_eq!(
            hot.id(),
            "hotset,rate=65536__uffd-esx-n400-i1s-d20s-m512M-w256M-s1-wu2"
        );
        let mut other = hot.clone();
        other.gains.slow = 0.5;
        assert_eq!(
            other.id(),
            "hotset,rate=65536__uffd-esx-n400-i1s-d20s-m512M-w256M-s1-wu2-g0.5-0.75"
        );
        other.baseline = true;
        assert!(other.id().ends_with("-base"));
        let exh = &p.works.exhaustive[0];
        assert!(!exh.id().contains("-n"), "{}", exh.id());
    }

    #[test]
    fn command_reproduces_the_run() {
        let p = Plan::new(Scale::full());
        let s = &p.agile.by_gains[1];
        let cmd = s.command(Path::new("docs/study/runs/x"));
        assert_eq!(
            cmd,
            "kvm-wss run --guest phases --mem 512M --wss 256M --param period=5s \
             --tracker uffd --estimator esx --sample-pages 400 --esx-slow-gain 0.5 \
             --interval 1s --duration 20s --warmup 2 --seed 1 --no-plot --quiet \
             --out docs/study/runs/x"
        );
        // The command parses into the same configuration.
        use clap::Parser;
        let args: Vec<&str> = cmd.split(' ').collect();
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        let crate::cli::Command::Run(run) = cli.command else {
            panic!("not a run command");
        };
        let mut cfg = run.to_config().unwrap();
        assert_eq!(cfg.out_dir, Some("docs/study/runs/x".into()));
        cfg.out_dir = None;
        assert_eq!(cfg, s.run_config());
    }

    #[test]
    fn rates_scale_with_the_working_set() {
        let s = Scale::full();
        let w = workloads(&s);
        let rate = |label: &str| {
            w.iter()
                .find(|x| x.label == label)
                .and_then(|x| x.param("rate"))
                .map(str::to_string)
        };
        // Half the 65536-page region per 1 s interval; stride covers half
        // of its 16384 strided pages.
        assert_eq!(rate("random").as_deref(), Some("32768"));
        assert_eq!(rate("stride").as_deref(), Some("8192"));
        // Quick: per 50 ms interval, half of 2048 pages.
        let q = workloads(&Scale::quick());
        let r = q
            .iter()
            .find(|x| x.label == "random")
            .and_then(|x| x.param("rate"));
        assert_eq!(r, Some("20480"));
        assert_eq!(rate("ramp"), None);
        // Application programs: 32 records per region page per interval
        // for extsort, at either scale.
        let extsort = |s: &Scale| applications(s)[0].param("rate").map(str::to_string);
        assert_eq!(extsort(&s).as_deref(), Some("2097152"));
        assert_eq!(extsort(&Scale::quick()).as_deref(), Some("1310720"));
        assert_eq!(zipf_heavy(&s).param("theta"), Some("1.2"));
        assert_eq!(read_heavy(&s).param("write_ratio"), Some("0.05"));
    }
}
