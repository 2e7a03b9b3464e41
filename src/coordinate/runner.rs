//! Running a scenario: one process, one thread per VM running that VM's
//! whole `run_with` (its own vCPU thread, sampler and outputs), and the
//! coordinator on the calling thread. Each VM's rows come to the
//! coordinator over a channel; once every running VM's row of an interval
//! has arrived (or the VM ended), the policy sets every VM's limit for the
//! next interval.
//!
//! One process rather than one per VM: the budget is one number shared by
//! every VM, the VMs' intervals are read off one clock in one place, and
//! Ctrl-C reaches every VM at once (each run registers for it), so an
//! interrupted scenario keeps every VM's measurements.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};

use crate::config::RunConfig;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::run::{RunEnd, RunError, RunExtras, RunOutput, run_with};

use super::limit::LimitHandle;
use super::output::{CoordinateCsv, OutputError, VmInterval, live_lines};
use super::policy::{self, GROWTH_WINDOW, PolicyKind, VmState};
use super::scenario::Scenario;

/// Everything a coordinated run needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    /// One per VM of the scenario, in its order.
    pub configs: Vec<RunConfig>,
    pub policy: PolicyKind,
    /// The host memory budget, pages.
    pub host_pages: u64,
    /// What `wss` and `oracle` grant above a working set (a fraction).
    pub headroom: f64,
    pub out_dir: PathBuf,
    /// Also run the VMs again without limits, for their slowdown.
    pub twins: bool,
    /// With `twins`: rounds of a coordinated run and its twin, the order
    /// alternating (see [`run`]); 1 for one of each.
    pub rounds: usize,
    /// With `twins`: each round's two runs at once, in two processes
    /// taking turns on the host every this long (see `interleave`).
    pub interleave: Option<std::time::Duration>,
    /// This process is one side of an interleaved round.
    pub child: Option<ChildRole>,
    /// The scenario's times were multiplied by this (`--time-scale`).
    pub time_scale: f64,
    /// Print the per-interval lines.
    pub live: bool,
    pub plot: bool,
}

/// Which side of an interleaved round a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChildRole {
    /// The VMs under the policy, with every output but the slowdown.
    Coordinated,
    /// The same VMs without limits: their run folders and coordinate.csv.
    Twin,
}

impl ChildRole {
    /// As `--as-child` takes it.
    pub fn label(self) -> &'static str {
        match self {
            ChildRole::Coordinated => "coordinated",
            ChildRole::Twin => "twin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinateError {
    #[error("VM {vm}")]
    Run {
        vm: String,
        #[source]
        source: RunError,
    },
    #[error("the thread of VM {0} panicked")]
    Panicked(String),
    #[error("cannot start the thread of VM {vm}")]
    Spawn {
        vm: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Interleave(#[from] super::interleave::InterleaveError),
}

/// One VM's run as it ended.
pub struct VmRun {
    pub name: String,
    pub output: RunOutput,
    /// Its twin's run, with `--twins`: the same VM, in the same scenario
    /// run again with the same VMs beside it (the same CPU contention),
    /// but no limit set, so that the difference is the coordinator's.
    pub twin: Option<RunOutput>,
    /// Guest ops per second of each round's coordinated run and of its
    /// twin, the first round's (`output`, `twin`) included: what the
    /// slowdown is measured from.
    pub rounds: Vec<RoundOps>,
}

/// One VM's throughput in one round (see [`Plan::rounds`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundOps {
    /// Guest ops per second, coordinated and twin.
    pub coordinated: f64,
    pub twin: f64,
    /// How much longer the coordinated guest was held at its boundaries
    /// than its twin (reclaim evicts inside the hold), seconds.
    pub hold_excess_s: f64,
    /// How long it waited for evicted pages to be restored, seconds.
    pub refault_s: f64,
    /// The coordinated run's length, seconds.
    pub duration_s: f64,
}

/// Time a run's guest was held at boundaries, seconds.
fn held_s(s: &Summary) -> f64 {
    s.hold_us_mean * s.intervals as f64 / 1e6
}

/// What a coordinated run measured.
pub struct Outcome {
    pub vms: Vec<VmRun>,
    /// Every VM's intervals, in interval order, VMs in scenario order
    /// within an interval.
    pub intervals: Vec<VmInterval>,
}

impl Outcome {
    /// True when a VM ended because of Ctrl-C.
    pub fn interrupted(&self) -> bool {
        self.vms
            .iter()
            .any(|v| matches!(v.output.end, RunEnd::Interrupted))
    }
}

/// The state the policy sees of a VM after `row` (`earlier` the rows
/// before, the latest first), or of a VM that ended.
fn state_of(cfg: &RunConfig, row: Option<&Row>, earlier: &Earlier) -> VmState {
    VmState {
        earlier_true_wss_pages: earlier.each(|r| r.map(|r| r.true_wss_pages)),
        earlier_est_pages: earlier.each(|r| r.and_then(|r| r.est_wss_pages)),
        mem_pages: cfg.mem / wss_abi::PAGE_SIZE,
        running: row.is_some(),
        // Residency is about every page touched, whatever the tracker sees.
        true_wss_pages: row.map(|r| r.true_wss_pages),
        est_pages: row.and_then(|r| r.est_wss_pages),
        est_hi_pages: row.and_then(|r| r.est_hi_pages),
        policy_pages: row.and_then(|r| r.policy_wss_pages),
        first_touched_pages: row.zip(earlier.0[0].as_ref()).and_then(|(now, before)| {
            Some(policy::first_touched(
                now.resident_pages?,
                now.evicted_pages,
                now.refaults,
                before.resident_pages?,
            ))
        }),
    }
}

/// Runs the plan's VMs together under its policy and writes
/// `coordinate.csv` as the intervals end; with `twins`, then runs them
/// together again without limits into `twins/` (its own coordinate.csv,
/// with no limit column filled). With more `rounds`, each further round
/// runs both again into `rounds/K/`, the twin first in even rounds, so
/// that a drift in the host's load over the rounds falls on both alike.
/// The caller writes the summary and plot from the [`Outcome`], whose
/// runs are the first round's.
/// A child of an interleaved round runs its one side only.
pub fn run(plan: &Plan) -> Result<Outcome, CoordinateError> {
    let policy = match plan.child {
        Some(ChildRole::Twin) => None,
        _ => Some(plan.policy),
    };
    let (outputs, intervals) = run_vms(plan, &plan.out_dir, policy)?;
    let mut twins: Vec<Option<RunOutput>> = Vec::new();
    let mut rounds: Vec<Vec<RoundOps>> = vec![Vec::new(); outputs.len()];
    if plan.twins && plan.child.is_none() && !crate::run::interrupted() {
        if plan.live {
            eprintln!("running the same VMs again without limits (the twins)");
        }
        let (outs, _) = run_vms(plan, &twins_dir(&plan.out_dir), None)?;
        add_round(&mut rounds, &outputs, &outs);
        twins = outs.into_iter().map(Some).collect();
        for k in 2..=plan.rounds {
            if crate::run::interrupted() {
                break;
            }
            if plan.live {
                eprintln!("round {k} of {}: both again", plan.rounds);
            }
            let dir = round_dir(&plan.out_dir, k);
            let (coordinated, twin) = if k % 2 == 0 {
                let (t, _) = run_vms(plan, &twins_dir(&dir), None)?;
                let (c, _) = run_vms(plan, &dir, Some(plan.policy))?;
                (c, t)
            } else {
                let (c, _) = run_vms(plan, &dir, Some(plan.policy))?;
                let (t, _) = run_vms(plan, &twins_dir(&dir), None)?;
                (c, t)
            };
            add_round(&mut rounds, &coordinated, &twin);
        }
    }
    twins.resize_with(outputs.len(), || None);
    let vms = plan
        .scenario
        .vms
        .iter()
        .zip(outputs)
        .zip(twins)
        .zip(rounds)
        .map(|(((vm, output), twin), rounds)| VmRun {
            name: vm.name.clone(),
            output,
            twin,
            rounds,
        })
        .collect();
    Ok(Outcome { vms, intervals })
}

/// Adds one round's throughputs, VM by VM. A round cut short by Ctrl-C
/// is left out: its runs are shorter than the others.
fn add_round(rounds: &mut [Vec<RoundOps>], coordinated: &[RunOutput], twins: &[RunOutput]) {
    let cut = |runs: &[RunOutput]| runs.iter().any(|r| matches!(r.end, RunEnd::Interrupted));
    if cut(coordinated) || cut(twins) {
        return;
    }
    for ((mine, c), t) in rounds.iter_mut().zip(coordinated).zip(twins) {
        mine.push(RoundOps::of(&c.summary, &t.summary));
    }
}

impl RoundOps {
    /// One VM's round from its coordinated run's summary and its twin's.
    pub fn of(c: &Summary, t: &Summary) -> RoundOps {
        RoundOps {
            coordinated: c.guest_ops_per_s,
            twin: t.guest_ops_per_s,
            hold_excess_s: held_s(c) - held_s(t),
            refault_s: c.reclaim.as_ref().map_or(0.0, |r| r.refault_us / 1e6),
            duration_s: c.duration_s,
        }
    }
}

/// Where round `k` (from 2) of a run with several goes.
pub fn round_dir(out: &Path, k: usize) -> PathBuf {
    out.join("rounds").join(k.to_string())
}

/// Where the uncoordinated twins' runs go.
pub fn twins_dir(out: &Path) -> PathBuf {
    out.join("twins")
}

/// Every VM of the plan on its own thread, their runs in `dir`, and the
/// coordinator loop on this one; `policy` None sets no limit (the twins).
fn run_vms(
    plan: &Plan,
    dir: &Path,
    policy: Option<PolicyKind>,
) -> Result<(Vec<RunOutput>, Vec<VmInterval>), CoordinateError> {
    let limits: Vec<LimitHandle> = plan
        .configs
        .iter()
        .map(|_| LimitHandle::unlimited())
        .collect();
    let mut csv = CoordinateCsv::create(dir)?;
    std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(plan.configs.len());
        let mut receivers: Vec<Option<Receiver<Row>>> = Vec::with_capacity(plan.configs.len());
        for ((vm, cfg), limit) in plan.scenario.vms.iter().zip(&plan.configs).zip(&limits) {
            let (tx, rx) = mpsc::channel();
            let extras = RunExtras {
                limit: policy.map(|_| limit.clone()),
                row_hook: Some(tx),
                ..RunExtras::default()
            };
            let vm_dir = vm_dir(dir, &vm.name);
            let handle = std::thread::Builder::new()
                .name(format!("vm-{}", vm.name))
                .spawn_scoped(scope, move || run_with(cfg, &vm_dir, extras))
                .map_err(|source| CoordinateError::Spawn {
                    vm: vm.name.clone(),
                    source,
                })?;
            handles.push(handle);
            receivers.push(Some(rx));
        }
        let intervals = coordinate(plan, policy, &limits, &mut receivers, &mut csv);
        let mut outputs = Vec::with_capacity(handles.len());
        for (vm, handle) in plan.scenario.vms.iter().zip(handles) {
            let out = handle
                .join()
                .map_err(|_| CoordinateError::Panicked(vm.name.clone()))?
                .map_err(|source| CoordinateError::Run {
                    vm: vm.name.clone(),
                    source,
                })?;
            outputs.push(out);
        }
        Ok((outputs, intervals?))
    })
}

/// A VM's own run folder inside the coordinated run's.
pub fn vm_dir(out: &Path, vm: &str) -> PathBuf {
    out.join(vm)
}

/// A VM's rows of the intervals before the latest, the latest first.
#[derive(Default, Clone)]
struct Earlier([Option<Row>; GROWTH_WINDOW]);

impl Earlier {
    /// `row` becomes the latest; the oldest goes.
    fn push(&mut self, row: Option<Row>) {
        self.0.rotate_right(1);
        self.0[0] = row;
    }

    fn each<T>(&self, f: impl Fn(Option<&Row>) -> T) -> [T; GROWTH_WINDOW] {
        std::array::from_fn(|i| f(self.0[i].as_ref()))
    }
}

/// The coordinator's loop: interval by interval, every running VM's row,
/// then the policy's limits. Returns when every VM has ended.
fn coordinate(
    plan: &Plan,
    policy: Option<PolicyKind>,
    limits: &[LimitHandle],
    receivers: &mut [Option<Receiver<Row>>],
    csv: &mut CoordinateCsv,
) -> Result<Vec<VmInterval>, CoordinateError> {
    let mut all = Vec::new();
    let mut interval = 0usize;
    let mut earlier: Vec<Earlier> = vec![Earlier::default(); receivers.len()];
    loop {
        let rows: Vec<Option<Row>> = receivers
            .iter_mut()
            .map(|slot| {
                let row = slot.as_ref().and_then(|rx| rx.recv().ok());
                if row.is_none() {
                    // Ended: its sender went with its run.
                    *slot = None;
                }
                row
            })
            .collect();
        if rows.iter().all(Option::is_none) {
            return Ok(all);
        }
        let states: Vec<VmState> = plan
            .configs
            .iter()
            .zip(rows.iter().zip(&earlier))
            .map(|(cfg, (row, earlier))| state_of(cfg, row.as_ref(), earlier))
            .collect();
        let new_limits = match policy {
            Some(p) => policy::limits(p, plan.host_pages, plan.headroom, &states),
            None => vec![None; states.len()],
        };
        let mut these = Vec::with_capacity(rows.len());
        for (i, (row, new_limit)) in rows.iter().zip(&new_limits).enumerate() {
            let Some(row) = row else { continue };
            let in_force = limits[i].pages();
            limits[i].set_pages(*new_limit);
            these.push(VmInterval::new(
                interval,
                &plan.scenario.vms[i].name,
                &plan.configs[i],
                row,
                in_force,
                *new_limit,
            ));
        }
        for v in &these {
            csv.write(v)?;
        }
        if plan.live && policy.is_some() {
            for line in live_lines(&these) {
                eprintln!("{line}");
            }
        }
        all.extend(these);
        for (e, row) in earlier.iter_mut().zip(rows) {
            e.push(row);
        }
        interval += 1;
    }
}
