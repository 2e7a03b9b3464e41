//! `kvm-wss bench overcommit`: does the VMM's cost per interval stay flat
//! as guest RAM grows past host memory? The same guest (`hotset` over a
//! fixed working set), tracker and sample size run at several `--mem`
//! sizes, alternating sizes within each round (and rotating which size goes
//! first), so that a host getting busier affects every size alike.
//!
//! The cost of one interval, from what every run records: the CPU time of
//! the sampler thread per interval (it arms, collects, reads the truth and
//! runs the estimator; `sampler_cpu_s` in summary.json), beside the wall
//! time of arm and collect from the per-interval rows (`arm_us`,
//! `collect_us`) and the whole VMM's CPU (the uffd handler thread too).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::load::{HostLoad, LoadWatch};
use super::{BenchError, Spread, median};
use crate::config::RunConfig;
use crate::estimate::{DamonConfig, EstimatorKind, EsxGains};
use crate::guests::GuestSource;
use crate::run::{RunEnd, RunOutput};
use crate::track::TrackerKind;
use crate::vmm::paging::GuestPageSize;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct OvercommitPlan {
    pub mems: Vec<u64>,
    pub wss: u64,
    pub sample_pages: u64,
    pub tracker: TrackerKind,
    pub duration: Duration,
    pub interval: Duration,
    pub rounds: usize,
}

/// Costs per interval of one run, in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OvercommitRun {
    pub round: usize,
    pub mem: u64,
    /// Sampler-thread CPU per interval: the cost compared across sizes.
    pub cost_us: f64,
    /// Median over scored intervals of arm and of collect wall time.
    pub arm_us: f64,
    pub collect_us: f64,
    /// VMM CPU (every thread but the vCPU's) per interval.
    pub vmm_cpu_us: f64,
    pub intervals: u64,
    /// Wall time of the run outside its intervals: tracker calibration,
    /// boot (memfd, mapping, page tables), tear-down.
    pub outside_intervals_ms: f64,
    pub true_wss_mean_pages: f64,
    pub est_wss_mean_pages: Option<f64>,
}

/// One `--mem` size over all rounds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SizeResult {
    pub mem: u64,
    pub mem_label: String,
    pub cost_us: Spread,
    pub arm_us: Spread,
    pub collect_us: Spread,
    pub vmm_cpu_us: Spread,
    pub outside_intervals_ms: Spread,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OvercommitResult {
    pub what: &'static str,
    pub guest: &'static str,
    pub wss: u64,
    pub tracker: &'static str,
    pub sample_pages: u64,
    pub interval_s: f64,
    pub duration_s: f64,
    pub rounds: usize,
    pub host_memory: Option<u64>,
    pub host: HostLoad,
    pub sizes: Vec<SizeResult>,
    /// Median cost of each size over the median cost of the first (the
    /// smallest), keyed "8G/512M" and so on.
    pub ratios: BTreeMap<String, f64>,
    /// The ratio of the last size (the largest) to the first.
    pub largest_ratio: Option<f64>,
    /// The goal: the largest size costs at most 1.2 times the smallest.
    pub goal: &'static str,
    pub goal_met: Option<bool>,
    pub runs: Vec<OvercommitRun>,
}

/// The goal on the ratio of the largest to the smallest size.
pub const GOAL_RATIO: f64 = 1.2;

/// `64G`, `512M`: the size as `--mem` takes it.
pub fn size_label(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    UNITS
        .iter()
        .find(|(unit, _)| bytes >= *unit && bytes.is_multiple_of(*unit))
        .map_or(bytes.to_string(), |(unit, suffix)| {
            format!("{}{suffix}", bytes / unit)
        })
}

fn config(plan: &OvercommitPlan, mem: u64, seed: u64) -> RunConfig {
    RunConfig {
        guest: GuestSource::Builtin("hotset".into()),
        mem,
        wss: plan.wss,
        seed,
        params: Vec::new(),
        duration: plan.duration,
        interval: plan.interval,
        tracker: plan.tracker,
        estimator: EstimatorKind::Esx,
        sample_pages: plan.sample_pages,
        esx: EsxGains::default(),
        damon: DamonConfig::default(),
        follow: crate::estimate::FollowConfig::default(),
        warmup_intervals: 1,
        guest_pages: GuestPageSize::Size2M,
        vcpus: 1,
        cpu: crate::vmm::affinity::Placement::Auto,
        baseline: false,
        out_dir: None,
        plot: false,
        live: false,
    }
}

/// The per-interval costs of one finished run. The first interval (the
/// guest populating its working set) and partial ones are left out of the
/// arm and collect medians; CPU times are over all intervals. The rows are
/// read back from the run's timeseries.csv, keeping only the two columns
/// the medians need, since a run keeps no rows in memory.
pub fn run_costs(
    round: usize,
    mem: u64,
    out: &RunOutput,
    wall: Duration,
) -> Result<OvercommitRun, BenchError> {
    let s = &out.summary;
    let (mut arm, mut collect) = (Vec::new(), Vec::new());
    let mut index = 0usize;
    crate::report::timeseries::for_each_row(&out.dir.join("timeseries.csv"), |r| {
        if index >= 1 && r.full {
            arm.push(r.arm_us);
            collect.push(r.collect_us);
        }
        index += 1;
    })?;
    let intervals = s.intervals.max(1) as f64;
    Ok(OvercommitRun {
        round,
        mem,
        cost_us: s.sampler_cpu_s / intervals * 1e6,
        arm_us: median(arm).unwrap_or(0.0),
        collect_us: median(collect).unwrap_or(0.0),
        vmm_cpu_us: s.vmm_cpu_s / intervals * 1e6,
        intervals: s.intervals,
        outside_intervals_ms: (wall.as_secs_f64() - s.duration_s).max(0.0) * 1e3,
        true_wss_mean_pages: s.true_wss_mean_pages,
        est_wss_mean_pages: s.est_wss_mean_pages,
    })
}

/// Summarises the runs per size and the ratios to the first size.
pub fn summarise(mems: &[u64], runs: &[OvercommitRun]) -> (Vec<SizeResult>, Vec<(String, f64)>) {
    let sizes: Vec<SizeResult> = mems
        .iter()
        .filter_map(|&mem| {
            let of = |f: fn(&OvercommitRun) -> f64| {
                let v: Vec<f64> = runs.iter().filter(|r| r.mem == mem).map(f).collect();
                // A size with no finished run has no result.
                (!v.is_empty()).then(|| Spread::of(&v))
            };
            Some(SizeResult {
                mem,
                mem_label: size_label(mem),
                cost_us: of(|r| r.cost_us)?,
                arm_us: of(|r| r.arm_us)?,
                collect_us: of(|r| r.collect_us)?,
                vmm_cpu_us: of(|r| r.vmm_cpu_us)?,
                outside_intervals_ms: of(|r| r.outside_intervals_ms)?,
            })
        })
        .collect();
    let ratios = match sizes.first() {
        Some(base) if base.cost_us.median > 0.0 => sizes[1..]
            .iter()
            .map(|s| {
                (
                    format!("{}/{}", s.mem_label, base.mem_label),
                    s.cost_us.median / base.cost_us.median,
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    (sizes, ratios)
}

/// Runs the plan: `rounds` rounds, each running every size once, the
/// order rotated by one size per round. Progress goes to stderr.
pub fn overcommit(plan: &OvercommitPlan) -> Result<OvercommitResult, BenchError> {
    if plan.rounds == 0 {
        return Err(BenchError::NoRounds);
    }
    let load = LoadWatch::start();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kvm-wss-bench-overcommit-{}", std::process::id()));
    let mut runs = Vec::new();
    for round in 0..plan.rounds {
        for k in 0..plan.mems.len() {
            let mem = plan.mems[(round + k) % plan.mems.len()];
            let cfg = config(plan, mem, 1 + round as u64);
            let t0 = Instant::now();
            let out = crate::run::run(&cfg, &dir.join(size_label(mem)))
                .map_err(|e| BenchError::Run(Box::new(e)))?;
            let wall = t0.elapsed();
            if !matches!(out.end, RunEnd::Duration) {
                let mem = size_label(mem);
                return Err(match out.end {
                    RunEnd::Error(source) => BenchError::RunFailed { mem, source },
                    end => BenchError::Guest(format!("hotset at --mem {mem} ended with {end:?}")),
                });
            }
            let r = run_costs(round, mem, &out, wall)?;
            eprintln!(
                "round {} --mem {:>5}: {:.0} us sampler CPU per interval (arm {:.0} us, collect {:.0} us), {:.0} ms outside intervals",
                round + 1,
                size_label(mem),
                r.cost_us,
                r.arm_us,
                r.collect_us,
                r.outside_intervals_ms
            );
            runs.push(r);
        }
    }
    // The run folders only held the CSV and summary this reads back above.
    let _ = std::fs::remove_dir_all(&dir);
    let (sizes, ratios) = summarise(&plan.mems, &runs);
    let largest_ratio = ratios.last().map(|(_, r)| *r);
    let goal_met = largest_ratio.map(|r| r <= GOAL_RATIO);
    Ok(OvercommitResult {
        what: "VMM cost per interval at each --mem: sampler-thread CPU (arm + collect + truth + \
               estimator), with arm and collect wall time and the whole VMM's CPU; \
               min/median/max over rounds",
        guest: "hotset",
        wss: plan.wss,
        tracker: plan.tracker.name(),
        sample_pages: plan.sample_pages,
        interval_s: plan.interval.as_secs_f64(),
        duration_s: plan.duration.as_secs_f64(),
        rounds: plan.rounds,
        host_memory: crate::memlimit::host_memory(),
        host: load.finish(),
        sizes,
        ratios: ratios.into_iter().collect(),
        largest_ratio,
        goal: "largest size costs at most 1.2x the smallest (cost_us median)",
        goal_met,
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, mem: u64, cost: f64) -> OvercommitRun {
        OvercommitRun {
            round,
            mem,
            cost_us: cost,
            arm_us: cost / 2.0,
            collect_us: cost / 4.0,
            vmm_cpu_us: cost * 2.0,
            intervals: 5,
            outside_intervals_ms: 10.0,
            true_wss_mean_pages: 16384.0,
            est_wss_mean_pages: Some(16000.0),
        }
    }

    #[test]
    fn labels_read_like_mem_arguments() {
        assert_eq!(size_label(512 << 20), "512M");
        assert_eq!(size_label(64 << 30), "64G");
        assert_eq!(size_label(1536 << 20), "1536M");
        assert_eq!(size_label(1000), "1000");
    }

    #[test]
    fn spreads_and_ratios_over_rounds() {
        let (m, g) = (512 << 20, 64 << 30);
        let runs = [
            run(0, m, 100.0),
            run(0, g, 130.0),
            run(1, g, 110.0),
            run(1, m, 90.0),
            run(2, m, 300.0),
            run(2, g, 100.0),
        ];
        let (sizes, ratios) = summarise(&[m, g], &runs);
        assert_eq!(sizes.len(), 2);
        assert_eq!(
            sizes[0].cost_us,
            Spread {
                min: 90.0,
                median: 100.0,
                max: 300.0
            }
        );
        assert_eq!(sizes[1].cost_us.median, 110.0);
        assert_eq!(ratios, vec![("64G/512M".to_string(), 1.1)]);
        // A size with no run is left out, not reported as zero.
        let (sizes, _) = summarise(&[m, 8 << 30], &runs);
        assert_eq!(sizes.len(), 1);
    }
}
