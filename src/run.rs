//! One run, end to end: boot the guest, start tracking, run the interval
//! loop until the duration, a guest exit or Ctrl-C, stop everything in
//! order and write timeseries.csv, summary.json and the plot.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::analysis::accuracy::{AccuracyTally, TruthColumn};
use crate::analysis::costs::CostTally;
use crate::config::RunConfig;
use crate::coordinate::reclaim::{ReclaimTally, Reclaimer};
use crate::estimate::{self, EstimateError, EstimatorKind};
use crate::guests::GuestError;
use crate::record::{RecordHeader, TRACE_FILE, TraceWriter, recorded_per_tick};
use crate::report::plot_series::PlotSeries;
use crate::report::summary::{
    EndKind, GuestResult, Phase, Summary, TrackerCounters, write_summary,
};
use crate::report::timeseries::{Row, TimeseriesWriter};
use crate::report::{ReportError, plot};
use crate::sampler::{Event, LoopEnd, Sampler, SamplerError};
use crate::track::{self, TrackError, TrackerKind};
use crate::vmm::exit::Stop;
use crate::vmm::machine::{BootError, Machine, MachineConfig};
use crate::vmm::vcpu_group::VcpuGroup;
use crate::vmm::vcpu_thread::{VcpuEnd, VcpuLoopError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("cannot start the {0} tracker")]
    Tracker(&'static str, #[source] TrackError),
    #[error("bad estimator settings")]
    Estimator(#[from] EstimateError),
    #[error("cannot create the output folder {path}")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("sampling failed")]
    Sampler(#[from] SamplerError),
    #[error("cannot start the vCPU thread")]
    Spawn(#[source] std::io::Error),
    #[error("cannot measure the cost of a tracked touch")]
    Calibration(#[source] crate::calibrate::ProbeError),
    #[error(transparent)]
    GuestPages(#[from] crate::track::dirty_log::GuestPagesError),
    #[error("cannot record the run")]
    Record(#[source] crate::record::RecordError),
    #[error(transparent)]
    RecordTick(#[from] crate::record::RecordTickError),
    #[error(
        "a resident limit needs the uffd tracker or none (uffd restores evicted pages \
         at their next touch), not tracker {0}"
    )]
    ReclaimNeedsUffd(&'static str),
    #[error(transparent)]
    Placement(#[from] crate::vmm::affinity::AffinityError),
}

/// What a run does besides what its [`RunConfig`] says.
#[derive(Debug, Clone, Default)]
pub struct RunExtras {
    /// Write the exact truth of every tick to `trace.bin` (`--record`).
    pub record: bool,
    /// Record ticks of this length instead of the estimator's
    /// (`--record-tick`); it must divide the estimator's tick.
    pub record_tick: Option<std::time::Duration>,
    /// The VM's resident limit, enforced at every interval boundary by
    /// evicting pages to a compressed store (`--resident-limit`; with
    /// the uffd tracker, or with none, when a uffd handler is registered
    /// for restoring alone). `None`: no reclaim at all.
    pub limit: Option<crate::coordinate::limit::LimitHandle>,
    /// Also keep every row in [`RunOutput::rows`]. A run streams its rows
    /// to timeseries.csv and keeps only tallies and a bounded plot series,
    /// so that memory does not grow with the run; a caller in the same
    /// process that inspects the rows of a short run (the tests) asks for
    /// them here instead of reading the file back.
    pub keep_rows: bool,
    /// Also send every row, as it is written, here (the coordinator's
    /// view of a VM's intervals); a receiver that went away is ignored.
    pub row_hook: Option<Sender<Row>>,
}

/// Why the VMM failed while the guest ran: the interval loop on this
/// thread, or the vCPU thread.
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    #[error(transparent)]
    Sampler(SamplerError),
    #[error(transparent)]
    Vcpu(VcpuLoopError),
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    Duration,
    GuestExit(u64),
    Interrupted,
    /// Triple fault, panic or another fatal guest action.
    GuestCrash(String),
    /// The VMM failed while the guest ran.
    Error(RunFailure),
}

impl RunEnd {
    pub fn label(&self) -> &'static str {
        match self {
            RunEnd::Duration => "duration",
            RunEnd::GuestExit(_) => "guest_exit",
            RunEnd::Interrupted => "interrupted",
            RunEnd::GuestCrash(_) => "guest_crash",
            RunEnd::Error(_) => "error",
        }
    }
}

pub struct RunOutput {
    pub summary: Summary,
    /// Every row, in order, with [`RunExtras::keep_rows`]; empty otherwise
    /// (they are in `dir`/timeseries.csv).
    pub rows: Vec<Row>,
    pub dir: PathBuf,
    pub end: RunEnd,
    /// The guest's log messages (the first `MAX_KEPT_LOGS`), escaped.
    pub logs: Vec<String>,
    /// What the per-run caps left out, on one line, if anything.
    pub dropped: Option<String>,
}

/// How often a person watching a run sees an in-progress estimate, in
/// intervals longer than this.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where Ctrl-C is delivered: each run in progress (several at once under
/// `coordinate`) registers its event channel here, under a number of its
/// own; the handler installed by `main` sends into every one.
static INTERRUPT: Mutex<Vec<(u64, Sender<Event>)>> = Mutex::new(Vec::new());
static NEXT_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the Ctrl-C handler. The first Ctrl-C ends the current run
/// (which still writes everything measured); later runs of a sweep are
/// not started.
pub fn install_interrupt_handler() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(note_interrupt)
}

/// What Ctrl-C does: marks the process interrupted and ends the run in
/// progress, if any. Public so that tests can interrupt without a signal.
/// Outputs already started are finished only if whole (see
/// `report::plot::render_atomic`); none are started afterwards.
pub fn note_interrupt() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Ok(guard) = INTERRUPT.lock() {
        for (_, tx) in guard.iter() {
            let _ = tx.send(Event::Interrupt);
        }
    }
}

/// True once Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

fn process_cpu_s() -> f64 {
    let mut ru: libc::rusage = zeroed_rusage();
    // SAFETY: getrusage fills the struct through a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn zeroed_rusage() -> libc::rusage {
    // SAFETY: rusage is plain C data for which all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

/// A fresh folder under `runs/` named after the guest, tracker and time.
pub fn default_out_dir(cfg: &RunConfig) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let guest = cfg.guest.name().replace(['/', '.'], "_");
    PathBuf::from("runs").join(format!("{guest}-{}-{stamp}", cfg.tracker.name()))
}

/// Runs `cfg`, first its untracked twin when `cfg.baseline` is set, and
/// writes the outputs into `dir`.
pub fn run(cfg: &RunConfig, dir: &Path) -> Result<RunOutput, RunError> {
    run_with(cfg, dir, RunExtras::default())
}

/// [`run`] with `extras`; the baseline twin is never recorded.
pub fn run_with(cfg: &RunConfig, dir: &Path, extras: RunExtras) -> Result<RunOutput, RunError> {
    crate::track::dirty_log::check_guest_pages(cfg.tracker, cfg.guest_pages)?;
    let baseline = if cfg.baseline && cfg.tracker != TrackerKind::None {
        Some(run_once(
            &cfg.untracked(),
            &dir.join("baseline"),
            None,
            RunExtras::default(),
        )?)
    } else {
        None
    };
    run_once(cfg, dir, baseline.as_ref().map(|b| &b.summary), extras)
}

/// The trace header of `cfg` on a guest with `domain_pages` data pages.
/// `ticks` are the recorded ticks per interval.
fn record_header(cfg: &RunConfig, domain_pages: u64, ticks: u32) -> RecordHeader {
    let ticks = ticks.max(1);
    RecordHeader {
        guest: cfg.guest.name(),
        tracker: cfg.tracker,
        estimator: cfg.estimator_config(domain_pages),
        seed: cfg.seed,
        interval_ns: u64::try_from(cfg.interval.as_nanos()).unwrap_or(u64::MAX),
        ticks_per_interval: ticks,
        tick_ns: u64::try_from((cfg.interval / ticks).as_nanos()).unwrap_or(u64::MAX),
        warmup_intervals: u64::try_from(cfg.warmup_intervals).unwrap_or(u64::MAX),
        mem_pages: cfg.mem / wss_abi::PAGE_SIZE,
        wss_bytes: cfg.wss,
        vcpus: cfg.vcpus,
    }
}

/// The `sample_pages` a summary reports: none without a tracker or for
/// damon (its sample is its regions), the whole domain for exhaustive.
pub fn reported_sample_pages(
    tracker: TrackerKind,
    estimator: EstimatorKind,
    sample_pages: u64,
    domain_pages: u64,
) -> Option<u64> {
    match (tracker, estimator) {
        (TrackerKind::None, _) | (_, EstimatorKind::Damon) => None,
        (_, EstimatorKind::Exhaustive) => Some(domain_pages),
        (_, EstimatorKind::Esx | EstimatorKind::Curve | EstimatorKind::Follow) => {
            Some(sample_pages)
        }
    }
}

fn run_once(
    cfg: &RunConfig,
    dir: &Path,
    baseline: Option<&Summary>,
    extras: RunExtras,
) -> Result<RunOutput, RunError> {
    let image = cfg.guest.image()?;
    crate::vmm::affinity::check(cfg.cpu, cfg.vcpus)?;
    // Measured before the guest starts, so the two never compete.
    let fault_cost_us = match cfg.tracker {
        TrackerKind::None => None,
        kind => Some(
            crate::calibrate::calibrate(kind, cfg.guest_pages, cfg.cpu)
                .map_err(RunError::Calibration)?,
        ),
    };
    let machine = Machine::boot(
        &image,
        &MachineConfig {
            mem: cfg.mem,
            wss: cfg.wss,
            seed: cfg.seed,
            params: cfg.params.clone(),
            dirty_log: cfg.tracker == TrackerKind::DirtyLog,
            guest_pages: cfg.guest_pages,
            vcpus: cfg.vcpus,
        },
    )?;
    let layout = machine.layout;
    let tsc_hz = machine.tsc_hz;
    let domain_pages = layout.data_pages();
    let tracker = track::create(cfg.tracker, &machine)
        .map_err(|e| RunError::Tracker(cfg.tracker.name(), e))?;
    let reclaim_port = match (&extras.limit, &tracker) {
        (None, _) => None,
        (Some(_), Some(t)) => Some(
            Arc::clone(t)
                .reclaim_port()
                .ok_or(RunError::ReclaimNeedsUffd(cfg.tracker.name()))?,
        ),
        // Reclaim only: a uffd tracker that is never armed, whose handler
        // restores evicted pages (and reports the faults it resolves).
        (Some(_), None) => Some(
            crate::track::uffd::UffdTracker::new(machine.memory())
                .map_err(|e| RunError::Tracker("uffd", e))?
                as Arc<dyn crate::coordinate::reclaim::ReclaimPort>,
        ),
    };
    // The vCPU and the thread that resolves its faults share a CPU (see
    // `vmm::affinity`); the tracker and reclaim share one handler.
    let has_handler = cfg.tracker.has_handler_thread() || reclaim_port.is_some();
    let cpu = crate::vmm::affinity::choose_here(cfg.cpu, cfg.vcpus, has_handler)?;
    if let Some(cpu) = cpu {
        let pinned = match (&tracker, &reclaim_port) {
            (Some(t), _) => t.pin_handler(cpu),
            (None, Some(p)) => p.pin_handler(cpu),
            (None, None) => Ok(false),
        };
        pinned.map_err(|source| crate::vmm::affinity::AffinityError::Pin {
            what: "fault-handler",
            cpu,
            source,
        })?;
    }
    let reclaimer = extras
        .limit
        .clone()
        .zip(reclaim_port.clone())
        .map(|(limit, port)| Reclaimer::new(port, limit, machine.memory()));
    let estimator = match tracker {
        Some(_) => Some(estimate::build(&cfg.estimator_config(domain_pages))?),
        None => None,
    };
    std::fs::create_dir_all(dir).map_err(|source| RunError::OutDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut writer = TimeseriesWriter::create(&dir.join("timeseries.csv"))?;
    let mut trace = match (&estimator, extras.record) {
        (Some(e), true) => {
            let ticks = e.ticks_per_interval().max(1);
            let per_tick = recorded_per_tick(cfg.interval, ticks, extras.record_tick)?;
            let header = record_header(cfg, domain_pages, ticks.saturating_mul(per_tick));
            let writer =
                TraceWriter::create(&dir.join(TRACE_FILE), &header).map_err(RunError::Record)?;
            Some((writer, per_tick))
        }
        _ => None,
    };

    let (tx, rx) = mpsc::channel();
    let run_id = NEXT_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut slots) = INTERRUPT.lock() {
        slots.push((run_id, tx.clone()));
    }
    let memory = Arc::clone(machine.memory());
    let Machine {
        vcpu,
        secondary_vcpus,
        vm,
        kvm,
        ..
    } = machine;
    let faults = tracker.as_ref().and_then(|t| Arc::clone(t).fault_handler());
    let cpu_before = process_cpu_s();
    let start = Instant::now();
    let done_tx = tx.clone();
    let thread = VcpuGroup::spawn(
        vcpu,
        secondary_vcpus,
        Arc::clone(&memory),
        start,
        faults,
        None,
        Arc::new(move || {
            let _ = done_tx.send(Event::VcpuDone);
        }),
    )
    .map_err(RunError::Spawn)?;
    // The guest runs already: a vCPU that cannot be pinned runs free.
    let cpu = cpu.filter(|&cpu| match thread.pin_first(cpu) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("cannot pin the vCPU thread to CPU {cpu}, so it runs anywhere: {e}");
            false
        }
    });
    if interrupted() {
        let _ = tx.send(Event::Interrupt);
    }
    drop(tx);

    let sampler = Sampler {
        memory: &memory,
        tracker: tracker.clone(),
        estimator,
        interval: cfg.interval,
        duration: cfg.duration,
        seed: cfg.seed,
        tsc_hz,
        progress_every: (cfg.live && cfg.interval > PROGRESS_EVERY).then_some(PROGRESS_EVERY),
        vcpu: Some(&thread),
        reclaim: reclaimer,
    };
    let truth_column = crate::record::truth_column(cfg.tracker);
    let mut tallies = RowTallies::new(cfg.warmup_intervals, truth_column, extras.keep_rows);
    let live = cfg.live;
    let sampler_cpu_before = crate::vmm::vcpu_thread::thread_cpu_s();
    let on_row = |row: Row| {
        writer.write_row(&row)?;
        if let Some(hook) = &extras.row_hook {
            let _ = hook.send(row.clone());
        }
        if live {
            eprintln!("{}", live_line(&row));
        }
        tallies.push(row);
        Ok(())
    };
    let on_progress = |p: crate::sampler::Progress| {
        eprintln!(
            "t={:7.2}s  in progress: {} sampled pages touched so far, estimate {:.0} pages",
            p.t_s, p.touched_so_far, p.estimate.pages
        );
    };
    let loop_result = match &mut trace {
        Some((trace, per_tick)) => {
            sampler.run_recording(start, &rx, on_row, on_progress, trace, *per_tick)
        }
        None => sampler.run(start, &rx, on_row, on_progress),
    };
    let sampler_cpu_s = crate::vmm::vcpu_thread::thread_cpu_s() - sampler_cpu_before;
    let thread_forced_holds = thread.forced_holds();
    let report = thread.stop();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_total = process_cpu_s() - cpu_before;
    if let Ok(mut slots) = INTERRUPT.lock() {
        slots.retain(|(id, _)| *id != run_id);
    }
    let status = memory.status();
    let stats = tracker.as_ref().map(|t| t.stats());
    let store = reclaim_port.as_ref().map(|p| p.store_size());
    // The tracker (and its handler thread) goes only after the vCPU stopped.
    drop((tracker, reclaim_port));
    drop((vm, kvm));

    let end = match (report.end, loop_result) {
        (_, Err(e)) => RunEnd::Error(RunFailure::Sampler(e)),
        (VcpuEnd::Guest(Stop::Exit(code)), _) => RunEnd::GuestExit(code),
        (VcpuEnd::Guest(Stop::Panic(msg)), _) => {
            RunEnd::GuestCrash(format!("guest panicked: {msg}"))
        }
        (VcpuEnd::Guest(Stop::TripleFault { rip }), _) => RunEnd::GuestCrash(format!(
            "guest triple-faulted (KVM_EXIT_SHUTDOWN) at rip {rip:#x}, last phase {}",
            report
                .exits
                .last_phase()
                .map_or("none".to_string(), |p| p.to_string())
        )),
        (VcpuEnd::Guest(Stop::Crash(msg)), _) => RunEnd::GuestCrash(msg),
        (VcpuEnd::Failed(e), _) => RunEnd::Error(RunFailure::Vcpu(e)),
        (VcpuEnd::Stopped, Ok(LoopEnd::Event(Event::Interrupt))) => RunEnd::Interrupted,
        (VcpuEnd::Stopped, _) => RunEnd::Duration,
    };

    let mut s = Summary {
        guest: cfg.guest.name(),
        tracker: cfg.tracker,
        estimator: stats.as_ref().map(|_| cfg.estimator),
        mem_pages: cfg.mem / wss_abi::PAGE_SIZE,
        sample_pages: reported_sample_pages(
            cfg.tracker,
            cfg.estimator,
            cfg.sample_pages,
            domain_pages,
        ),
        interval_s: cfg.interval.as_secs_f64(),
        duration_s: elapsed,
        intervals: tallies.costs.rows() as u64,
        guest_ops: status.guest_ops,
        guest_ops_per_s: crate::analysis::derived::per_second(status.guest_ops, elapsed),
        vmm_cpu_s: (cpu_total - report.thread_cpu_s).max(0.0),
        wss_bytes: cfg.wss,
        domain_pages,
        seed: cfg.seed,
        end: EndKind::from(&end),
        guest_exit_code: match end {
            RunEnd::GuestExit(c) => Some(c),
            _ => None,
        },
        guest_checksum: (status.checksum_valid != 0).then(|| format!("{:016x}", status.checksum)),
        phases: report
            .exits
            .phases
            .iter()
            .map(|&(t_s, marker)| Phase { t_s, marker })
            .collect(),
        phases_dropped: report.exits.phases_dropped,
        logs_dropped: report.exits.logs_dropped,
        hold_us_mean: tallies.costs.hold_us_mean(),
        hold_us_max: tallies.costs.hold_us_max(),
        forced_holds: thread_forced_holds,
        stall_us: status.stall_cycles as f64 / tsc_hz as f64 * 1e6,
        host: Some(crate::study::host::Host::current()),
        op_name: crate::vmm::exit::escape_guest_text(status.op_name()),
        guest_results: GuestResult::all_in(&status),
        vcpus: cfg.vcpus,
        cpu,
        ..Summary::default()
    };
    s.record_accuracy_of(&tallies.accuracy);
    if stats.is_none() {
        for f in [
            &mut s.est_wss_mean_pages,
            &mut s.mae_pages,
            &mut s.mape,
            &mut s.bias_pages,
        ] {
            *f = None;
        }
        s.lag_up_intervals = None;
        s.lag_down_intervals = None;
    }
    s.sampler_cpu_s = sampler_cpu_s;
    s.tracker_stats = TrackerCounters {
        vcpu_thread_cpu_s: report.thread_cpu_s,
        vcpu_ready_s: report.ready_s,
        guest_stalls: status.stalls,
        rejected_hypercalls: report.exits.rejected,
        ..TrackerCounters::default()
    };
    if let Some(st) = &stats {
        s.tracked_faults = Some(st.faults);
        s.fault_cost_us = fault_cost_us;
        let c = &mut s.tracker_stats;
        c.stall_us_per_fault = tallies.costs.stall_us_per_fault(baseline);
        c.vmm_service_us_per_fault =
            (st.faults > 0).then(|| st.fault_service_us / st.faults as f64);
        c.arm_us = Some(st.arm_us);
        c.collect_us = Some(st.collect_us);
        c.mechanism = st.counters.clone();
    }
    s.record_costs_of(&tallies.costs, baseline);
    s.reclaim = extras
        .limit
        .as_ref()
        .zip(store)
        .map(|(limit, store)| tallies.reclaim.summary(limit, store));
    // After Ctrl-C the (small) summary is still written, whole, so the
    // folder describes what was measured; plots are left out (see
    // `plot::render_atomic`).
    write_summary(&dir.join("summary.json"), &s)?;
    // After the summary, so a trace that cannot be finished costs only
    // itself (a trace without its trailer is refused as cut short).
    if let Some((trace, _)) = trace {
        trace
            .finish(EndKind::from(&end))
            .map_err(RunError::Record)?;
    }
    if cfg.plot && !tallies.plot.is_empty() && !interrupted() {
        match plot::plot_series(&tallies.plot, &s, dir) {
            Ok(_) | Err(ReportError::Interrupted { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(RunOutput {
        summary: s,
        rows: tallies.kept.unwrap_or_default(),
        dir: dir.to_path_buf(),
        end,
        dropped: report.exits.dropped_summary(),
        logs: report.exits.logs,
    })
}

/// What a run keeps of its rows while they stream to timeseries.csv: the
/// tallies its summary is made from and the plot's bounded series, all of
/// a size fixed whatever the number of rows; the rows themselves only when
/// [`RunExtras::keep_rows`] asks for them.
struct RowTallies {
    accuracy: AccuracyTally,
    costs: CostTally,
    plot: PlotSeries,
    reclaim: ReclaimTally,
    kept: Option<Vec<Row>>,
}

impl RowTallies {
    fn new(warmup_intervals: usize, truth: TruthColumn, keep_rows: bool) -> Self {
        RowTallies {
            accuracy: AccuracyTally::new(warmup_intervals, truth),
            costs: CostTally::new(warmup_intervals),
            plot: PlotSeries::default(),
            reclaim: ReclaimTally::default(),
            kept: keep_rows.then(Vec::new),
        }
    }

    fn push(&mut self, row: Row) {
        self.accuracy.push(&row);
        self.costs.push(&row);
        self.plot.push(&row);
        self.reclaim.push(&row);
        if let Some(kept) = &mut self.kept {
            kept.push(row);
        }
    }
}

fn live_line(r: &Row) -> String {
    let est = r
        .est_wss_pages
        .map_or("-".to_string(), |e| format!("{e:.0}"));
    let reclaim = r.resident_pages.map_or(String::new(), |resident| {
        format!(
            "  resident={resident:>8}  evicted={:>6}  refaults={:>6}",
            r.evicted_pages, r.refaults
        )
    });
    format!(
        "t={:7.2}s  true={:>8}  writes={:>8}  est={:>9}  faults={:>6}  ops={:>11}{reclaim}",
        r.t_s, r.true_wss_pages, r.true_wss_write_pages, est, r.faults, r.guest_ops
    )
}
