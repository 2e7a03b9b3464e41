//! What a coordinated run writes: a line per VM per interval in the
//! classic coordinator format, `coordinate.csv` (one row per VM per
//! interval, flushed as it is written, so Ctrl-C loses nothing) and
//! `coordinate.json` (per VM and in total). The per-VM figures are defined
//! here once and read by the summary, the plot and docs/coordinate.md.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::stats::mean;
use crate::config::RunConfig;
use crate::report::ReportError;
use crate::report::timeseries::Row;

use super::policy::PolicyKind;
use super::runner::{Outcome, Plan, RoundOps};

pub const CSV_FILE: &str = "coordinate.csv";
pub const JSON_FILE: &str = "coordinate.json";

const MIB_PAGES: f64 = (1 << 20) as f64 / wss_abi::PAGE_SIZE as f64;

/// Pages as MiB.
pub fn mib(pages: f64) -> f64 {
    pages / MIB_PAGES
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", .path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot encode {}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Why a coordinate.json cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum JsonReadError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a coordinate.json", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a coordinate.json back.
pub fn read_json(path: &Path) -> Result<CoordinateSummary, JsonReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonReadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| JsonReadError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// One VM in one interval, as the coordinator saw and decided it: a row
/// of coordinate.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmInterval {
    /// The interval's number, from 0; the VMs' intervals are matched by it.
    pub interval: usize,
    pub vm: String,
    /// End of the interval, seconds since this VM's guest started.
    pub t_s: f64,
    /// Whether it counts (see `Row::full`).
    pub full: bool,
    /// The guest's phase marker at its end.
    pub phase: u64,
    /// Guest RAM, pages.
    pub mem_pages: u64,
    /// Data pages the guest touched in it.
    pub true_wss_pages: u64,
    /// The estimator's measurement, its band's upper edge and its policy
    /// value.
    pub est_wss_pages: Option<f64>,
    pub est_hi_pages: Option<f64>,
    pub policy_wss_pages: Option<f64>,
    /// The limit in force while the interval ran (set at the end of the
    /// one before; none in the first).
    pub limit_pages: Option<u64>,
    /// The limit the policy set at its end, for the next interval.
    pub new_limit_pages: Option<u64>,
    /// Data pages resident after the boundary's eviction; unknown until
    /// the VM's sampler enforces its limit.
    pub resident_pages: Option<u64>,
    /// Evicted pages the guest touched again in it; unknown likewise.
    pub refaults: Option<u64>,
}

impl VmInterval {
    pub fn new(
        interval: usize,
        vm: &str,
        cfg: &RunConfig,
        row: &Row,
        limit_pages: Option<u64>,
        new_limit_pages: Option<u64>,
    ) -> VmInterval {
        VmInterval {
            interval,
            vm: vm.to_string(),
            t_s: row.t_s,
            full: row.full,
            phase: row.phase,
            mem_pages: cfg.mem / wss_abi::PAGE_SIZE,
            true_wss_pages: row.true_wss_pages,
            est_wss_pages: row.est_wss_pages,
            est_hi_pages: row.est_hi_pages,
            policy_wss_pages: row.policy_wss_pages,
            limit_pages,
            new_limit_pages,
            resident_pages: row.resident_pages,
            refaults: row.resident_pages.map(|_| row.refaults),
        }
    }

    /// Whether the limit in force was below the working set: the guest
    /// needed more memory than it was granted in this interval.
    pub fn below_truth(&self) -> Option<bool> {
        self.limit_pages.map(|l| l < self.true_wss_pages)
    }
}

fn mib_cell(pages: Option<f64>) -> String {
    pages.map_or("–".to_string(), |p| format!("{:.1}", mib(p)))
}

/// The interval's lines, one per VM: the classic coordinator line,
/// `Memory (VM: vm1) Actual [512.0], Unused: [257.2]`, where Actual is the
/// guest's RAM (MiB; no balloon here, the limit is separate) and Unused
/// what of it the guest did not touch in the interval, then the estimate,
/// the truth, resident pages, the limit in force → the one just set, and
/// refaults ("–": not known).
pub fn live_lines(intervals: &[VmInterval]) -> Vec<String> {
    intervals
        .iter()
        .map(|v| {
            let actual = v.mem_pages as f64;
            format!(
                "[{:>3}] Memory (VM: {}) Actual [{:.1}], Unused: [{:.1}], est WSS [{}], true WSS [{:.1}], resident [{}], limit [{} -> {}], refaults [{}]",
                v.interval,
                v.vm,
                mib(actual),
                mib(actual - v.true_wss_pages as f64),
                mib_cell(v.est_wss_pages),
                mib(v.true_wss_pages as f64),
                mib_cell(v.resident_pages.map(|p| p as f64)),
                mib_cell(v.limit_pages.map(|p| p as f64)),
                mib_cell(v.new_limit_pages.map(|p| p as f64)),
                v.refaults.map_or("–".to_string(), |r| r.to_string()),
            )
        })
        .collect()
}

/// coordinate.csv, written row by row.
pub struct CoordinateCsv {
    writer: csv::Writer<File>,
    path: PathBuf,
}

impl CoordinateCsv {
    /// Creates `dir/coordinate.csv` (and `dir`).
    pub fn create(dir: &Path) -> Result<Self, OutputError> {
        let path = dir.join(CSV_FILE);
        let io = |source| OutputError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = File::create(&path).map_err(io)?;
        Ok(CoordinateCsv {
            writer: csv::Writer::from_writer(file),
            path,
        })
    }

    /// Appends one row and flushes it.
    pub fn write(&mut self, v: &VmInterval) -> Result<(), OutputError> {
        self.writer
            .serialize(v)
            .map_err(|source| OutputError::Csv {
                path: self.path.clone(),
                source,
            })?;
        self.writer.flush().map_err(|source| OutputError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads a coordinate.csv back.
pub fn read_csv(path: &Path) -> Result<Vec<VmInterval>, OutputError> {
    let read = |source| OutputError::Read {
        path: path.to_path_buf(),
        source,
    };
    csv::Reader::from_path(path)
        .map_err(read)?
        .deserialize()
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)
}

/// One VM in coordinate.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmSummary {
    pub name: String,
    pub program: String,
    /// Mean resident data, MiB; null until resident pages are known.
    pub resident_mean_mib: Option<f64>,
    /// Share of the full intervals with a limit in force whose limit was
    /// below the true WSS.
    pub below_truth_share: Option<f64>,
    /// Refaults over the run; null while unknown.
    pub refaults: Option<u64>,
    /// Guest slowdown against its uncoordinated twin, the mean over the
    /// rounds of [`round_slowdowns`] (null without a twin).
    pub slowdown: Option<f64>,
    /// Each round's slowdown, in round order (empty without a twin).
    #[serde(default)]
    pub slowdown_rounds: Vec<f64>,
    /// Two parts of the slowdown measured directly, as shares of the run,
    /// means over the rounds (null without a twin): how much longer the
    /// guest was held at boundaries than its twin (reclaim evicts inside
    /// the hold), and how long it waited for evicted pages to come back.
    #[serde(default)]
    pub hold_share: Option<f64>,
    #[serde(default)]
    pub refault_share: Option<f64>,
    /// The share of the run the guest waited for evicted pages to come
    /// back ([`reclaim_stall_share`]); null without reclaim.
    #[serde(default)]
    pub reclaim_stall_share: Option<f64>,
    pub limit_mean_mib: Option<f64>,
    pub true_wss_mean_mib: Option<f64>,
    pub est_wss_mean_mib: Option<f64>,
    pub guest_ops_per_s: f64,
    /// The guest's checksum and its twin's, when the program finished an
    /// `ops` budget; equal for a paced program (`rate` > 0) whose memory
    /// came through intact (unpaced, its timing, and so its sum, varies).
    pub checksum: Option<String>,
    pub twin_checksum: Option<String>,
    pub end: String,
}

/// coordinate.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinateSummary {
    pub scenario: String,
    pub policy: String,
    /// What `wss` and `oracle` granted above a working set (a fraction);
    /// absent from files written before `--headroom` existed.
    #[serde(default)]
    pub headroom: Option<f64>,
    pub host_mem_mib: f64,
    pub interval_s: f64,
    pub intervals: usize,
    pub vms: Vec<VmSummary>,
    /// Per interval, the limits (in force) summed over the VMs, averaged
    /// over the full intervals where every running VM had one, MiB.
    pub limit_total_mean_mib: Option<f64>,
    /// The same for the true WSS.
    pub true_wss_total_mean_mib: Option<f64>,
    /// The same for resident pages; null while unknown.
    pub resident_total_mean_mib: Option<f64>,
    /// Per round of a run with twins, the VMs' mean slowdown: how much the
    /// scenario's slowdown moves from one round to the next (empty
    /// without twins).
    #[serde(default)]
    pub slowdown_round_means: Vec<f64>,
    /// Per round, the slowdown of the VMs' throughput summed
    /// ([`round_work_slowdowns`]): the mean of their slowdowns weighted by
    /// the work their twins did (empty without twins).
    #[serde(default)]
    pub work_slowdown_rounds: Vec<f64>,
    /// With twins run `--interleave`d: how long each turn on the host
    /// was, seconds; null when the twins ran apart.
    #[serde(default)]
    pub twin_turn_s: Option<f64>,
}

/// Each round's slowdown of one VM, coordinated against its twin of the
/// same round (`analysis::derived::slowdown`); a round whose twin did
/// nothing is left out.
pub fn round_slowdowns(rounds: &[RoundOps]) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|r| crate::analysis::derived::slowdown(r.coordinated, r.twin))
        .collect()
}

/// Per round, the slowdown of the VMs' summed throughput: one less the
/// coordinated VMs' ops per second, summed, over their twins'. It is the
/// mean of the VMs' slowdowns weighted by their twins' throughput, the
/// work-weighted mean slowdown. Unlike the plain mean over the VMs, it
/// does not move when VMs sharing the host's CPUs split them differently
/// in the two runs: what one VM loses to another adds to nothing in the
/// sum. `per_vm` holds each VM's rounds; a round is taken over the VMs
/// that have it, and left out when their twins did nothing.
pub fn round_work_slowdowns(per_vm: &[&[RoundOps]]) -> Vec<f64> {
    per_round(per_vm, |these| {
        work_slowdown(these.map(|r| (r.coordinated, r.twin)))
    })
}

/// The work-weighted slowdown of a set of VMs: one less their rates
/// (coordinated, twin), summed, over their twins'. The one definition
/// behind a round's slowdown of record and its split by phase
/// (`phase_split`); `None` when the twins did nothing.
pub fn work_slowdown(rates: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let (c, t) = rates.fold((0.0, 0.0), |(c, t), (rc, rt)| (c + rc, t + rt));
    crate::analysis::derived::slowdown(c, t)
}

/// Per round `k`, `of` the VMs' round-`k` values (the VMs that have one);
/// a round `of` has nothing for is left out.
fn per_round<T>(
    per_vm: &[&[T]],
    of: impl Fn(&mut dyn Iterator<Item = &T>) -> Option<f64>,
) -> Vec<f64> {
    let rounds = per_vm.iter().map(|v| v.len()).max().unwrap_or(0);
    (0..rounds)
        .filter_map(|k| of(&mut per_vm.iter().filter_map(|v| v.get(k))))
        .collect()
}

/// The mean over the rounds of `part` as a share of the round's run.
fn round_share(rounds: &[RoundOps], part: impl Fn(&RoundOps) -> f64) -> Option<f64> {
    mean(
        rounds
            .iter()
            .filter(|r| r.duration_s > 0.0)
            .map(|r| part(r) / r.duration_s),
    )
}

/// Per round, the mean slowdown over the VMs that have that round.
fn round_means(per_vm: &[&[f64]]) -> Vec<f64> {
    per_round(per_vm, |these| mean(these.copied()))
}

/// The share of `intervals` (one VM's) that are full, had a limit, and
/// whose limit was below the true WSS: the one definition of
/// `below_truth_share`.
pub fn below_truth_share(intervals: &[&VmInterval]) -> Option<f64> {
    let judged: Vec<bool> = intervals
        .iter()
        .filter(|v| v.full)
        .filter_map(|v| v.below_truth())
        .collect();
    (!judged.is_empty()).then(|| judged.iter().filter(|&&b| b).count() as f64 / judged.len() as f64)
}

/// The share of a run of `duration_s` seconds the guest spent stalled on
/// refaults, `refault_us` in all (the uffd handler's time restoring
/// evicted pages): the coordinator's direct cost to the guest, measured
/// in the run itself. Unlike the slowdown against a twin, which compares
/// two runs of unpaced guests on a shared host, it does not move with the
/// host's load. The one definition of `reclaim_stall_share`.
pub fn reclaim_stall_share(refault_us: f64, duration_s: f64) -> Option<f64> {
    (duration_s > 0.0).then(|| refault_us / 1e6 / duration_s)
}

/// Mean over the full intervals of `value`, MiB, where it is known.
fn mean_mib(intervals: &[&VmInterval], value: impl Fn(&VmInterval) -> Option<f64>) -> Option<f64> {
    mean(intervals.iter().filter(|v| v.full).filter_map(|v| value(v))).map(mib)
}

/// Per interval number, the sum of `value` over the VMs, averaged over the
/// intervals where every VM reporting one is full and has the value.
fn total_mean_mib(
    intervals: &[VmInterval],
    value: impl Fn(&VmInterval) -> Option<f64>,
) -> Option<f64> {
    let last = intervals.iter().map(|v| v.interval).max()?;
    let sums = (0..=last).filter_map(|k| {
        let these: Vec<&VmInterval> = intervals.iter().filter(|v| v.interval == k).collect();
        if these.is_empty() || !these.iter().all(|v| v.full) {
            return None;
        }
        these.iter().map(|v| value(v)).sum::<Option<f64>>()
    });
    mean(sums).map(mib)
}

/// The summary of a coordinated run from what it measured.
pub fn summarise(plan: &Plan, outcome: &Outcome) -> CoordinateSummary {
    let vms: Vec<VmSummary> = plan
        .scenario
        .vms
        .iter()
        .zip(&outcome.vms)
        .map(|(spec, run)| {
            let mine: Vec<&VmInterval> = outcome
                .intervals
                .iter()
                .filter(|v| v.vm == spec.name)
                .collect();
            let s = &run.output.summary;
            VmSummary {
                name: spec.name.clone(),
                program: spec.program.clone(),
                resident_mean_mib: mean_mib(&mine, |v| v.resident_pages.map(|p| p as f64)),
                below_truth_share: below_truth_share(&mine),
                refaults: mine.iter().map(|v| v.refaults).sum(),
                slowdown: None,
                slowdown_rounds: Vec::new(),
                hold_share: None,
                refault_share: None,
                reclaim_stall_share: s
                    .reclaim
                    .as_ref()
                    .and_then(|r| reclaim_stall_share(r.refault_us, s.duration_s)),
                limit_mean_mib: mean_mib(&mine, |v| v.limit_pages.map(|p| p as f64)),
                true_wss_mean_mib: mean_mib(&mine, |v| Some(v.true_wss_pages as f64)),
                est_wss_mean_mib: mean_mib(&mine, |v| v.est_wss_pages),
                guest_ops_per_s: s.guest_ops_per_s,
                checksum: s.guest_checksum.clone(),
                twin_checksum: None,
                end: run.output.end.label().to_string(),
            }
        })
        .collect();
    let mut summary = CoordinateSummary {
        slowdown_round_means: Vec::new(),
        work_slowdown_rounds: Vec::new(),
        twin_turn_s: plan.interleave.map(|d| d.as_secs_f64()),
        scenario: plan.scenario.name.clone(),
        policy: policy_name(plan.policy),
        headroom: Some(plan.headroom),
        host_mem_mib: mib(plan.host_pages as f64),
        interval_s: plan.scenario.interval.as_secs_f64(),
        intervals: outcome
            .intervals
            .iter()
            .map(|v| v.interval + 1)
            .max()
            .unwrap_or(0),
        vms,
        limit_total_mean_mib: total_mean_mib(&outcome.intervals, |v| {
            v.limit_pages.map(|p| p as f64)
        }),
        true_wss_total_mean_mib: total_mean_mib(&outcome.intervals, |v| {
            Some(v.true_wss_pages as f64)
        }),
        resident_total_mean_mib: total_mean_mib(&outcome.intervals, |v| {
            v.resident_pages.map(|p| p as f64)
        }),
    };
    let rounds: Vec<Vec<RoundOps>> = outcome.vms.iter().map(|v| v.rounds.clone()).collect();
    let twin_checksums: Vec<Option<String>> = outcome
        .vms
        .iter()
        .map(|v| {
            v.twin
                .as_ref()
                .and_then(|t| t.summary.guest_checksum.clone())
        })
        .collect();
    apply_rounds(&mut summary, &rounds, &twin_checksums);
    summary
}

/// Fills in what the twins measured: per VM (in `summary.vms`' order) its
/// rounds' slowdowns, their mean and the two parts measured directly, and
/// its first twin's checksum; over the VMs, each round's mean and
/// work-weighted slowdown. VMs without rounds keep nulls.
pub fn apply_rounds(
    summary: &mut CoordinateSummary,
    rounds: &[Vec<RoundOps>],
    twin_checksums: &[Option<String>],
) {
    for (i, vm) in summary.vms.iter_mut().enumerate() {
        let mine = rounds.get(i).map_or(&[][..], Vec::as_slice);
        vm.slowdown_rounds = round_slowdowns(mine);
        vm.slowdown = mean(vm.slowdown_rounds.iter().copied());
        vm.hold_share = round_share(mine, |r| r.hold_excess_s);
        vm.refault_share = round_share(mine, |r| r.refault_s);
        vm.twin_checksum = twin_checksums.get(i).cloned().flatten();
    }
    let per_vm: Vec<&[f64]> = summary
        .vms
        .iter()
        .map(|v| v.slowdown_rounds.as_slice())
        .collect();
    summary.slowdown_round_means = round_means(&per_vm);
    let per_vm: Vec<&[RoundOps]> = rounds.iter().map(Vec::as_slice).collect();
    summary.work_slowdown_rounds = round_work_slowdowns(&per_vm);
}

fn policy_name(p: PolicyKind) -> String {
    crate::named::Named::name(p).to_string()
}

/// Writes coordinate.json whole (through a temporary file).
pub fn write_json(dir: &Path, summary: &CoordinateSummary) -> Result<PathBuf, OutputError> {
    let path = dir.join(JSON_FILE);
    let mut text = serde_json::to_string_pretty(summary).map_err(|source| OutputError::Json {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    crate::report::write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An interval of `vm` whose estimate is its truth, for the tests of
    /// the outputs and of the plot.
    pub(in crate::coordinate) fn iv(
        k: usize,
        vm: &str,
        truth: u64,
        limit: Option<u64>,
        full: bool,
    ) -> VmInterval {
        VmInterval {
            interval: k,
            vm: vm.into(),
            t_s: k as f64 + 1.0,
            full,
            phase: 0,
            mem_pages: 131_072,
            true_wss_pages: truth,
            est_wss_pages: Some(truth as f64),
            est_hi_pages: None,
            policy_wss_pages: None,
            limit_pages: limit,
            new_limit_pages: limit,
            resident_pages: None,
            refaults: None,
        }
    }

    #[test]
    fn each_round_is_its_own_pair_and_the_scenario_averages_the_vms() {
        let r = |coordinated: f64, twin: f64| RoundOps {
            coordinated,
            twin,
            hold_excess_s: 0.5,
            refault_s: 0.25,
            duration_s: 10.0,
        };
        let vm1 = round_slowdowns(&[r(90.0, 100.0), r(110.0, 100.0), r(5.0, 0.0)]);
        assert_eq!(vm1.len(), 2, "a round whose twin did nothing is left out");
        assert!((vm1[0] - 0.1).abs() < 1e-12 && (vm1[1] + 0.1).abs() < 1e-12);
        // Round 1: (90 + 50) / (100 + 100); round 2: vm1 alone; round 3:
        // a twin that did nothing.
        let work = round_work_slowdowns(&[
            &[r(90.0, 100.0), r(110.0, 100.0), r(5.0, 0.0)],
            &[r(50.0, 100.0)],
        ]);
        assert_eq!(work.len(), 2);
        assert!((work[0] - 0.3).abs() < 1e-12 && (work[1] + 0.1).abs() < 1e-12);
        // Two VMs whose runs split the CPUs the other way round, at equal
        // summed work: the plain mean says 8.3% faster, the work-weighted
        // one 0.
        let split = [[r(60.0, 40.0)], [r(40.0, 60.0)]];
        let split: Vec<&[RoundOps]> = split.iter().map(|v| v.as_slice()).collect();
        assert_eq!(round_work_slowdowns(&split), vec![0.0]);
        let plain: Vec<f64> = split.iter().flat_map(|v| round_slowdowns(v)).collect();
        assert!((mean(plain).unwrap() + 1.0 / 12.0).abs() < 1e-12);
        let vm2 = round_slowdowns(&[r(50.0, 100.0)]);
        let means = round_means(&[&vm1, &vm2]);
        assert_eq!(means.len(), 2);
        assert!((means[0] - 0.3).abs() < 1e-12, "round 1: (0.1 + 0.5) / 2");
        assert!((means[1] + 0.1).abs() < 1e-12, "round 2: vm1 alone");
        assert!(round_means(&[]).is_empty());
        let rounds = [r(1.0, 1.0), r(1.0, 1.0)];
        assert_eq!(round_share(&rounds, |r| r.hold_excess_s), Some(0.05));
        assert_eq!(round_share(&rounds, |r| r.refault_s), Some(0.025));
        assert_eq!(round_share(&[], |r| r.refault_s), None);
    }

    fn vm_summary(name: &str) -> VmSummary {
        VmSummary {
            name: name.into(),
            program: "ramp".into(),
            resident_mean_mib: None,
            below_truth_share: None,
            refaults: None,
            slowdown: None,
            slowdown_rounds: Vec::new(),
            hold_share: None,
            refault_share: None,
            reclaim_stall_share: None,
            limit_mean_mib: None,
            true_wss_mean_mib: None,
            est_wss_mean_mib: None,
            guest_ops_per_s: 1.0,
            checksum: Some("7".into()),
            twin_checksum: None,
            end: "duration".into(),
        }
    }

    /// What an interleaved run's parent writes into the first round's
    /// coordinate.json, read back as it was written.
    #[test]
    fn the_twins_rounds_fill_a_written_summary() {
        let r = |coordinated: f64, twin: f64| RoundOps {
            coordinated,
            twin,
            hold_excess_s: 1.0,
            refault_s: 0.5,
            duration_s: 10.0,
        };
        let mut summary = CoordinateSummary {
            scenario: "shift".into(),
            policy: "wss".into(),
            headroom: Some(0.1),
            host_mem_mib: 1536.0,
            interval_s: 1.0,
            intervals: 3,
            vms: vec![vm_summary("vm1"), vm_summary("vm2")],
            limit_total_mean_mib: None,
            true_wss_total_mean_mib: None,
            resident_total_mean_mib: None,
            slowdown_round_means: Vec::new(),
            work_slowdown_rounds: Vec::new(),
            twin_turn_s: Some(0.05),
        };
        let rounds = vec![
            vec![r(90.0, 100.0), r(80.0, 100.0)],
            vec![r(100.0, 100.0), r(100.0, 100.0)],
        ];
        apply_rounds(&mut summary, &rounds, &[Some("7".into()), None]);
        let vm1 = &summary.vms[0];
        assert_eq!(vm1.slowdown_rounds.len(), 2);
        assert!((vm1.slowdown.unwrap() - 0.15).abs() < 1e-12);
        assert_eq!(vm1.hold_share, Some(0.1));
        assert_eq!(vm1.refault_share, Some(0.05));
        assert_eq!(vm1.twin_checksum.as_deref(), Some("7"));
        assert_eq!(summary.vms[1].slowdown, Some(0.0));
        assert_eq!(summary.vms[1].twin_checksum, None);
        // Round 1: (90 + 100) / 200; round 2: (80 + 100) / 200.
        assert_eq!(summary.work_slowdown_rounds.len(), 2);
        assert!((summary.work_slowdown_rounds[0] - 0.05).abs() < 1e-12);
        assert!((summary.work_slowdown_rounds[1] - 0.1).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        let path = write_json(dir.path(), &summary).unwrap();
        assert_eq!(read_json(&path).unwrap(), summary);
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(read_json(&path), Err(JsonReadError::Parse { .. })));
        let gone = dir.path().join("none.json");
        assert!(matches!(read_json(&gone), Err(JsonReadError::Read { .. })));
    }

    #[test]
    fn below_truth_counts_full_intervals_with_a_limit() {
        let a = iv(0, "a", 100, None, true);
        let b = iv(1, "a", 100, Some(99), true);
        let c = iv(2, "a", 100, Some(100), true);
        let d = iv(3, "a", 100, Some(150), true);
        let partial = iv(4, "a", 100, Some(1), false);
        assert_eq!(
            below_truth_share(&[&a, &b, &c, &d, &partial]),
            Some(1.0 / 3.0)
        );
        assert_eq!(below_truth_share(&[&a]), None);
    }

    #[test]
    fn the_classic_line_in_mib() {
        let mut v = iv(3, "vm1", 65_843, Some(70_000), true);
        v.new_limit_pages = Some(72_000);
        let line = &live_lines(&[v])[0];
        assert_eq!(
            line,
            "[  3] Memory (VM: vm1) Actual [512.0], Unused: [254.8], est WSS [257.2], true WSS [257.2], resident [–], limit [273.4 -> 281.2], refaults [–]"
        );
    }

    #[test]
    fn totals_sum_the_vms_per_interval() {
        let rows = vec![
            iv(0, "a", 256, Some(512), true),
            iv(0, "b", 256, Some(256), true),
            iv(1, "a", 512, Some(512), true),
            iv(1, "b", 0, Some(768), true),
            // An interval with a partial row is left out.
            iv(2, "a", 512, Some(1), false),
            iv(2, "b", 512, Some(1), true),
        ];
        // (768 + 1280) / 2 pages.
        assert_eq!(
            total_mean_mib(&rows, |v| v.limit_pages.map(|p| p as f64)),
            Some(mib(1024.0))
        );
        assert_eq!(
            total_mean_mib(&rows, |v| v.resident_pages.map(|p| p as f64)),
            None
        );
    }

    #[test]
    fn the_csv_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = CoordinateCsv::create(dir.path()).unwrap();
        let rows = vec![iv(0, "a", 10, None, true), iv(0, "b", 20, Some(30), false)];
        for r in &rows {
            csv.write(r).unwrap();
        }
        assert_eq!(read_csv(&dir.path().join(CSV_FILE)).unwrap(), rows);
    }
}
