//! The interval loop: at every tick it asks the estimator which pages to
//! watch and has the tracker arm them; at the end of each tick it holds the
//! guest and collects the touched ones; at the end of each interval it
//! reads the guest's truth, closes the estimate and emits one row.
//!
//! It runs on the main thread, which must wake at every boundary anyway and
//! is the one to notice the end of the run (duration, guest exit, Ctrl-C):
//! a separate sampler thread would add a hand-off and no concurrency.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::estimate::Estimator;
use crate::record::{self, PageSet, RecordError, TraceWriter};
use crate::report::timeseries::{FULL_FRACTION, Row};
use crate::track::{RamPage, TrackError, Tracker};
use crate::truth::{self, TruthSample};
use crate::vmm::hold::HeldAll;
use crate::vmm::memory::GuestMemory;
use crate::vmm::vcpu_group::VcpuGroup;

/// Something that ends the run early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The vCPU loop ended (guest exit, crash or error).
    VcpuDone,
    /// Ctrl-C.
    Interrupt,
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopEnd {
    Duration,
    Event(Event),
}

#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("tracker failed")]
    Track(#[from] TrackError),
    #[error("cannot write the time series")]
    Sink(#[source] crate::report::ReportError),
    #[error("cannot write the trace")]
    Record(#[source] RecordError),
    #[error("reclaim failed")]
    Reclaim(#[from] crate::coordinate::reclaim::ReclaimError),
    #[error("cannot find the guest pages resident in RAM (mincore)")]
    Residency(#[source] std::io::Error),
}

/// The random source that picks the pages to arm, seeded from the run's
/// seed: the live sampler and a replay draw the same pages from it.
pub fn sampling_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ 0x5a5a_5a5a)
}

/// Whether an interval in which the guest ran `interval_s` seconds of an
/// `interval` asked for counts as full: the run did not end during it by
/// an event, and the guest ran at least [`FULL_FRACTION`] of it.
pub fn interval_is_full(interval_s: f64, interval: Duration, stopped: bool) -> bool {
    !stopped && interval_s >= FULL_FRACTION * interval.as_secs_f64()
}

/// The recording side of a run with `--record`: at every tick it takes the
/// truth page by page (so the interval's truth is the union of its ticks')
/// and writes the tick to the trace.
struct TickLog<'w> {
    writer: &'w mut TraceWriter,
    /// Guest accesses counted up to the last tick.
    ops: u64,
    /// The interval's ticks so far.
    touched: Vec<PageSet>,
    written: Vec<PageSet>,
}

impl TickLog<'_> {
    /// Takes the tick's truth, as page sets counted from the first data page.
    fn take(
        &mut self,
        read_bits: &[std::sync::atomic::AtomicU64],
        write_bits: &[std::sync::atomic::AtomicU64],
        data: &std::ops::Range<RamPage>,
    ) {
        let pages = truth::take_pages(read_bits, write_bits, data.clone());
        let rel = |v: Vec<u64>| PageSet::from_sorted(v.into_iter().map(|p| p - data.start));
        self.touched.push(rel(pages.all));
        self.written.push(rel(pages.writes));
    }

    /// The interval's truth: the union of its ticks'.
    fn interval_truth(&self) -> TruthSample {
        TruthSample {
            all: PageSet::union_len(&self.touched),
            writes: PageSet::union_len(&self.written),
        }
    }
}

pub struct Sampler<'a> {
    pub memory: &'a Arc<GuestMemory>,
    pub tracker: Option<Arc<dyn Tracker>>,
    pub estimator: Option<Box<dyn Estimator>>,
    pub interval: Duration,
    pub duration: Duration,
    pub seed: u64,
    /// Guest TSC frequency, to convert the guest's stall cycles.
    pub tsc_hz: u64,
    /// When set, how often to report an in-progress estimate during an
    /// interval (ESX's average that takes in the current samples as they
    /// arrive), for a person watching a long interval.
    pub progress_every: Option<Duration>,
    /// The running guest, every vCPU of it held at every boundary; `None`
    /// runs the loop without holding anything.
    pub vcpu: Option<&'a VcpuGroup>,
    /// Evicts pages above the VM's resident limit at each interval's
    /// closing boundary, while the guest is held; it also sees every
    /// arm and collect (its victim order learns from them).
    pub reclaim: Option<crate::coordinate::reclaim::Reclaimer>,
}

/// An estimate made before its interval ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub t_s: f64,
    pub touched_so_far: usize,
    pub estimate: crate::estimate::Estimate,
}

/// Counts that carry from one interval to the next.
struct Carry {
    ops: u64,
    stall: u64,
    faults: u64,
}

/// One interval's sampling so far.
#[derive(Default)]
struct Tally {
    sampled: u64,
    touched: u64,
    arm_us: f64,
    collect_us: f64,
    /// Time the guest ran.
    ran: Duration,
    /// Time it was held at the interval's ticks and closing boundary.
    held: Duration,
}

impl Sampler<'_> {
    /// Runs intervals from `start` until `duration` or an event, calling
    /// `sink` with each row as soon as it is complete.
    ///
    /// Every tick and interval ends at a boundary where the guest is held
    /// (when there is a vCPU to hold): the sampler collects the tick's
    /// touches, reads the truth at the end of an interval, arms the next
    /// tick and only then lets the guest go on. Nothing the guest does can
    /// fall between the tracker's count and the truth's. A boundary is due
    /// a tick's length after the guest was released, so every full
    /// interval gives the guest the same running time however long the
    /// boundary before it took.
    pub fn run(
        self,
        start: Instant,
        events: &Receiver<Event>,
        sink: impl FnMut(Row) -> Result<(), crate::report::ReportError>,
        on_progress: impl FnMut(Progress),
    ) -> Result<LoopEnd, SamplerError> {
        self.run_inner(start, events, sink, on_progress, None)
    }

    /// [`Sampler::run`], also writing every tick's exact truth, timing and
    /// the live estimates to `trace` (`run --record`). With `per_tick`
    /// above 1 the guest is also held, and the truth taken, `per_tick - 1`
    /// times evenly inside each estimator tick (`--record-tick`), so the
    /// trace has finer ticks than the estimator used.
    pub fn run_recording(
        self,
        start: Instant,
        events: &Receiver<Event>,
        sink: impl FnMut(Row) -> Result<(), crate::report::ReportError>,
        on_progress: impl FnMut(Progress),
        trace: &mut TraceWriter,
        per_tick: u32,
    ) -> Result<LoopEnd, SamplerError> {
        self.run_inner(start, events, sink, on_progress, Some((trace, per_tick)))
    }

    fn run_inner(
        mut self,
        start: Instant,
        events: &Receiver<Event>,
        mut sink: impl FnMut(Row) -> Result<(), crate::report::ReportError>,
        mut on_progress: impl FnMut(Progress),
        trace: Option<(&mut TraceWriter, u32)>,
    ) -> Result<LoopEnd, SamplerError> {
        let layout = *self.memory.layout();
        let first = layout.data_first_page();
        let data = layout.data_page_range();
        let (read_bits, write_bits) = self.memory.truth_bitmaps();
        let mut rng = sampling_rng(self.seed);
        let ticks = self
            .estimator
            .as_ref()
            .map_or(1, |e| e.ticks_per_interval().max(1));
        // Boundaries per estimator tick: 1, or the recorded ticks in one.
        let per_tick = trace.as_ref().map_or(1, |(_, n)| (*n).max(1));
        let steps = ticks.saturating_mul(per_tick);
        let tick_len = self.interval / steps;
        let end_at = start + self.duration;

        // The first boundary: bits set before it belong to no interval.
        let held = self.vcpu.map(|v| v.hold());
        truth::take(read_bits, write_bits, data.clone());
        let status = self.memory.status();
        let mut carry = Carry {
            ops: status.guest_ops,
            stall: status.stall_cycles,
            faults: self.tracker.as_ref().map_or(0, |t| t.stats().faults),
        };
        let mut log = trace.map(|(writer, _)| TickLog {
            writer,
            ops: status.guest_ops,
            touched: Vec::new(),
            written: Vec::new(),
        });
        let mut tally = Tally::default();
        // The guest ran untracked from boot to here: what it touched is in
        // no tick, so the trace records it as the replay's starting population.
        let resident = self.observe_population(log.is_some())?;
        if let (Some(log), Some(resident)) = (&mut log, &resident) {
            log.writer.start(resident).map_err(SamplerError::Record)?;
        }
        self.arm(first, &mut rng, &mut tally)?;
        release(held);
        let mut resumed_at = Instant::now();

        let mut step = 0u32;
        loop {
            let tick_end = (resumed_at + tick_len).min(end_at);
            let stopped = self.wait_tick(start, tick_end, steps, events, &mut on_progress);
            let held = self.vcpu.map(|v| v.hold());
            let held_at = held.as_ref().map_or_else(Instant::now, HeldAll::held_at);
            let tick_ran = held_at.saturating_duration_since(resumed_at);
            tally.ran += tick_ran;
            step += 1;
            let run_over = stopped.is_some() || held_at >= end_at;
            // An estimator tick ends here (always, unless recording finer).
            let estimator_tick_over = run_over || step.is_multiple_of(per_tick);
            if estimator_tick_over {
                self.collect(first, &data, &mut tally)?;
            }
            if let Some(log) = &mut log {
                log.take(read_bits, write_bits, &data);
            }
            let interval_over = run_over || step == steps;
            let mut row = None;
            if interval_over {
                self.observe_population(false)?;
                let recorded = log.as_ref().map(TickLog::interval_truth);
                let mut closed = self.close_interval(
                    start, held_at, read_bits, write_bits, &data, &mut carry, &tally, stopped,
                    recorded,
                );
                if let Some(reclaim) = &mut self.reclaim {
                    reclaim.boundary()?.fill(&mut closed);
                }
                row = Some(closed);
                tally = Tally::default();
                step = 0;
            }
            if !run_over && estimator_tick_over {
                self.arm(first, &mut rng, &mut tally)?;
            }
            // Read while the guest is still held, so the tick's counts end
            // where its truth does.
            let status = log.as_ref().map(|_| self.memory.status());
            let held_for = release(held);
            resumed_at = Instant::now();
            if let (Some(log), Some(status)) = (&mut log, status) {
                let tick = record::Tick {
                    t_end_ns: nanos(held_at.duration_since(start)),
                    ran_ns: nanos(tick_ran),
                    guest_ops: status.guest_ops.saturating_sub(log.ops),
                    phase: status.phase,
                    stopped: stopped.is_some(),
                    close: row.as_ref().map(|r| record::Close {
                        estimate: r.estimate(),
                        touched_samples: r.touched_samples,
                    }),
                    touched: log.touched.last().cloned().unwrap_or_default(),
                    written: log.written.last().cloned().unwrap_or_default(),
                };
                log.ops = status.guest_ops;
                if row.is_some() {
                    log.touched.clear();
                    log.written.clear();
                }
                log.writer.tick(&tick).map_err(SamplerError::Record)?;
            }
            if let Some(mut row) = row {
                // The hold that closed the interval is the interval's.
                row.hold_us += held_for.as_secs_f64() * 1e6;
                sink(row).map_err(SamplerError::Sink)?;
            } else {
                tally.held += held_for;
            }
            if let Some(ev) = stopped {
                return Ok(LoopEnd::Event(ev));
            }
            if run_over {
                return Ok(LoopEnd::Duration);
            }
        }
    }

    /// Hands the estimator the data pages resident in guest RAM, at the
    /// first boundary and at every boundary that closes an interval (before
    /// `end_interval`): the guest is held, so it is both the closing
    /// interval's final population and the next one's starting population.
    /// Pages reclaim evicted to its store are guest memory all the same
    /// (the guest touched them; they come back at its next touch), so they
    /// belong to the population: it stays the set of pages ever touched,
    /// which a replay of the trace rebuilds. Returns the set when it was
    /// taken: for the estimator, or because `wanted`.
    fn observe_population(&mut self, wanted: bool) -> Result<Option<PageSet>, SamplerError> {
        let estimator = match (&self.tracker, &mut self.estimator) {
            (Some(_), Some(e)) if e.samples_population() => Some(e),
            _ => None,
        };
        if estimator.is_none() && !wanted {
            return Ok(None);
        }
        // The tracker's own record where it keeps one: `mincore` over all
        // of RAM holds the guest milliseconds (`kvm-wss bench residency`).
        let known = self.tracker.as_ref().map(|t| t.resident()).transpose()?;
        let mut resident = match known.flatten() {
            Some(bits) => self.memory.data_pages_among(&bits),
            None => self
                .memory
                .resident_data()
                .map_err(SamplerError::Residency)?,
        };
        if let Some(reclaim) = &self.reclaim {
            resident = resident.union(&reclaim.stored_data());
        }
        if let Some(e) = estimator {
            e.observe_population(&resident);
        }
        Ok(Some(resident))
    }

    /// Has the tracker arm the estimator's choice for the next tick.
    fn arm(
        &mut self,
        first: RamPage,
        rng: &mut StdRng,
        tally: &mut Tally,
    ) -> Result<(), SamplerError> {
        let (Some(t), Some(e)) = (&self.tracker, &mut self.estimator) else {
            return Ok(());
        };
        let pages: Vec<RamPage> = e.choose(rng).into_iter().map(|p| first + p).collect();
        let t0 = Instant::now();
        t.arm(&pages)?;
        tally.arm_us += t0.elapsed().as_secs_f64() * 1e6;
        if let Some(reclaim) = &mut self.reclaim {
            reclaim.armed(&pages);
        }
        tally.sampled += pages.len() as u64;
        Ok(())
    }

    /// Collects the tick's touched pages into the estimator.
    fn collect(
        &mut self,
        first: RamPage,
        data: &std::ops::Range<RamPage>,
        tally: &mut Tally,
    ) -> Result<(), SamplerError> {
        let (Some(t), Some(e)) = (&self.tracker, &mut self.estimator) else {
            return Ok(());
        };
        let t0 = Instant::now();
        let touched = t.collect()?;
        tally.collect_us += t0.elapsed().as_secs_f64() * 1e6;
        if let Some(reclaim) = &mut self.reclaim {
            reclaim.collected(&touched);
        }
        let touched: Vec<u64> = touched
            .into_iter()
            .filter(|p| data.contains(p))
            .map(|p| p - first)
            .collect();
        tally.touched += touched.len() as u64;
        e.observe_tick(&touched);
        Ok(())
    }

    /// Waits for the end of a tick, reporting progress during long ones.
    fn wait_tick(
        &self,
        start: Instant,
        tick_end: Instant,
        ticks: u32,
        events: &Receiver<Event>,
        on_progress: &mut impl FnMut(Progress),
    ) -> Option<Event> {
        loop {
            let step = match (self.progress_every, &self.tracker, &self.estimator) {
                (Some(every), Some(_), Some(_)) if ticks == 1 => {
                    (Instant::now() + every).min(tick_end)
                }
                _ => tick_end,
            };
            let ev = wait_until(step, events);
            if ev.is_some() || step >= tick_end {
                return ev;
            }
            if let (Some(t), Some(e)) = (&self.tracker, &self.estimator) {
                let touched = t.touched_so_far();
                on_progress(Progress {
                    t_s: start.elapsed().as_secs_f64(),
                    touched_so_far: touched,
                    estimate: e.peek(touched),
                });
            }
        }
    }

    /// Reads the truth and closes the estimate: the interval's row, but
    /// for the hold that is still going on.
    // Each argument is a distinct piece of the interval loop's state,
    // borrowed for this one step; a struct bundling them would exist only
    // to be unpacked here.
    #[allow(clippy::too_many_arguments)]
    fn close_interval(
        &mut self,
        start: Instant,
        held_at: Instant,
        read_bits: &[std::sync::atomic::AtomicU64],
        write_bits: &[std::sync::atomic::AtomicU64],
        data: &std::ops::Range<RamPage>,
        carry: &mut Carry,
        tally: &Tally,
        stopped: Option<Event>,
        recorded: Option<TruthSample>,
    ) -> Row {
        let sample: TruthSample =
            recorded.unwrap_or_else(|| truth::take(read_bits, write_bits, data.clone()));
        let status = self.memory.status();
        let faults = self.tracker.as_ref().map_or(0, |t| t.stats().faults);
        let estimate = self.estimator.as_mut().map(|e| e.end_interval());
        let interval_s = tally.ran.as_secs_f64();
        let row = Row {
            t_s: held_at.duration_since(start).as_secs_f64(),
            true_wss_pages: sample.all,
            true_wss_write_pages: sample.writes,
            est_wss_pages: estimate.map(|e| e.raw.pages),
            est_lo_pages: estimate.map(|e| e.raw.lo),
            est_hi_pages: estimate.map(|e| e.raw.hi),
            policy_wss_pages: estimate.map(|e| e.policy_pages),
            sampled_pages: tally.sampled,
            touched_samples: tally.touched,
            faults: faults - carry.faults,
            guest_ops: status.guest_ops.saturating_sub(carry.ops),
            interval_s,
            full: interval_is_full(interval_s, self.interval, stopped.is_some()),
            phase: status.phase,
            arm_us: tally.arm_us,
            collect_us: tally.collect_us,
            stall_us: status.stall_cycles.saturating_sub(carry.stall) as f64
                / self.tsc_hz.max(1) as f64
                * 1e6,
            hold_us: tally.held.as_secs_f64() * 1e6,
            // Reclaim fills these after the eviction, when there is one.
            resident_pages: None,
            evicted_pages: 0,
            refaults: 0,
            refault_us: 0.0,
        };
        *carry = Carry {
            ops: status.guest_ops,
            stall: status.stall_cycles,
            faults,
        };
        row
    }
}

/// A duration in whole nanoseconds (saturating past 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Lets a held guest go on; how long it was held (zero with no guest).
fn release(held: Option<HeldAll<'_>>) -> Duration {
    held.map_or(Duration::ZERO, HeldAll::release)
}

/// Sleeps until `deadline` unless an event arrives first.
fn wait_until(deadline: Instant, events: &Receiver<Event>) -> Option<Event> {
    let now = Instant::now();
    if now >= deadline {
        return None;
    }
    match events.recv_timeout(deadline - now) {
        Ok(ev) => Some(ev),
        Err(RecvTimeoutError::Timeout) => None,
        // Every sender gone: nothing can end the run early any more.
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            None
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::estimate::{EstimatorConfig, EstimatorKind};
    use crate::track::{TrackerKind, TrackerStats};
    use crate::vmm::layout::Layout;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use std::sync::mpsc;
    use wss_abi::RAM_BASE;

    /// A tracker with a scripted guest: at every arm the "guest" touches
    /// every other armed page and a window of pages that moves at every
    /// arm, writing every fourth of those, marking them in the truth as a
    /// real guest would; collect reports exactly the armed ones among them.
    /// One collect can be made slow.
    struct Scripted {
        memory: Arc<GuestMemory>,
        armed: Mutex<Vec<RamPage>>,
        collects: Mutex<u32>,
        slow_collect: Option<(u32, Duration)>,
        /// The window's first page and length.
        window: (RamPage, u64),
    }

    impl Scripted {
        fn window(&self, arms: u32) -> std::ops::Range<RamPage> {
            let (first, len) = self.window;
            let from = first + u64::from(arms % 7) * len / 3;
            from..from + len * (1 + u64::from(arms % 3)) / 2
        }
    }

    impl Tracker for Scripted {
        fn kind(&self) -> TrackerKind {
            TrackerKind::Uffd
        }
        fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError> {
            let (read, write) = self.memory.truth_bitmaps();
            let mark = |bits: &[std::sync::atomic::AtomicU64], p: RamPage| {
                bits[(p / 64) as usize].fetch_or(1 << (p % 64), Ordering::Relaxed);
            };
            for &p in pages.iter().step_by(2) {
                mark(read, p);
            }
            let window = self.window(*self.collects.lock().expect("lock"));
            for p in window.clone() {
                mark(if p % 4 == 0 { write } else { read }, p);
            }
            let touched = pages
                .iter()
                .enumerate()
                .filter(|&(i, p)| i % 2 == 0 || window.contains(p))
                .map(|(_, &p)| p)
                .collect();
            *self.armed.lock().expect("lock") = touched;
            Ok(())
        }
        fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
            let mut n = self.collects.lock().expect("lock");
            *n += 1;
            if let Some((at, pause)) = self.slow_collect
                && *n == at
            {
                std::thread::sleep(pause);
            }
            Ok(std::mem::take(&mut *self.armed.lock().expect("lock")))
        }
        fn touched_so_far(&self) -> usize {
            0
        }
        fn stats(&self) -> TrackerStats {
            TrackerStats::default()
        }
    }

    fn run_loop(interval_ms: u64, duration_ms: u64, slow: Option<(u32, Duration)>) -> Vec<Row> {
        let cfg = EstimatorConfig {
            kind: EstimatorKind::Exhaustive,
            domain_pages: 0,
            sample_pages: 0,
            esx: Default::default(),
            damon: Default::default(),
            follow: Default::default(),
        };
        scripted_run(cfg, interval_ms, duration_ms, slow, None)
    }

    /// Runs the sampler over the scripted guest with the estimator `cfg`
    /// (its domain filled in), recording into `trace` if given.
    fn scripted_run(
        mut cfg: EstimatorConfig,
        interval_ms: u64,
        duration_ms: u64,
        slow: Option<(u32, Duration)>,
        trace: Option<(&mut TraceWriter, u32)>,
    ) -> Vec<Row> {
        let layout = Layout::new(64 << 20, RAM_BASE + 0x10_0000, 4 << 20).expect("layout");
        let memory = Arc::new(GuestMemory::new(&layout).expect("memory"));
        let tracker: Arc<dyn Tracker> = Arc::new(Scripted {
            memory: Arc::clone(&memory),
            armed: Mutex::new(Vec::new()),
            collects: Mutex::new(0),
            slow_collect: slow,
            window: (layout.data_first_page() + 100, 600),
        });
        cfg.domain_pages = layout.data_pages();
        let estimator = crate::estimate::build(&cfg).expect("estimator");
        let (_tx, rx) = mpsc::channel();
        let mut rows = Vec::new();
        let sampler = Sampler {
            memory: &memory,
            tracker: Some(tracker),
            estimator: Some(estimator),
            interval: Duration::from_millis(interval_ms),
            duration: Duration::from_millis(duration_ms),
            seed: 1,
            tsc_hz: 1_000_000_000,
            progress_every: None,
            vcpu: None,
            reclaim: None,
        };
        let sink = |r| {
            rows.push(r);
            Ok(())
        };
        let end = match trace {
            Some((t, per_tick)) => {
                sampler.run_recording(Instant::now(), &rx, sink, |_| {}, t, per_tick)
            }
            None => sampler.run(Instant::now(), &rx, sink, |_| {}),
        }
        .expect("loop");
        assert_eq!(end, LoopEnd::Duration);
        rows
    }

    /// A recorded run of the scripted guest under `kind` (esx samples 100
    /// pages per 60 ms interval; damon ticks 4 times per 80 ms), with
    /// `per_tick` recorded ticks per estimator tick, written to `path`:
    /// its rows and the trace's header.
    pub(crate) fn recorded_run(
        kind: EstimatorKind,
        path: &std::path::Path,
        per_tick: u32,
    ) -> (Vec<Row>, record::RecordHeader) {
        let (interval_ms, ticks) = match kind {
            EstimatorKind::Damon => (80, 4),
            _ => (60, 1),
        };
        let cfg = EstimatorConfig {
            kind,
            domain_pages: 0,
            sample_pages: 100,
            esx: Default::default(),
            damon: crate::estimate::DamonConfig {
                ticks_per_interval: ticks,
                ..Default::default()
            },
            follow: Default::default(),
        };
        let layout = Layout::new(64 << 20, RAM_BASE + 0x10_0000, 4 << 20).expect("layout");
        let interval = Duration::from_millis(interval_ms);
        let header = record::RecordHeader {
            guest: "scripted".into(),
            tracker: TrackerKind::Uffd,
            estimator: EstimatorConfig {
                domain_pages: layout.data_pages(),
                ..cfg
            },
            seed: 1,
            interval_ns: interval.as_nanos() as u64,
            ticks_per_interval: ticks * per_tick,
            tick_ns: (interval / (ticks * per_tick)).as_nanos() as u64,
            warmup_intervals: 0,
            mem_pages: 64 << 20 >> 12,
            wss_bytes: 4 << 20,
            vcpus: 1,
        };
        let mut w = TraceWriter::create(path, &header).expect("trace");
        let rows = scripted_run(
            cfg,
            interval_ms,
            8 * interval_ms,
            None,
            Some((&mut w, per_tick)),
        );
        w.finish(crate::report::summary::EndKind::Duration)
            .expect("finish");
        (rows, header)
    }

    #[test]
    fn a_recorded_interval_has_the_truth_of_an_unrecorded_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(record::TRACE_FILE);
        let (rows, _) = recorded_run(EstimatorKind::Damon, &path, 2);
        let rec = record::read(&path).expect("read");
        let mut ticks = rec.ticks.iter();
        for r in &rows {
            let mut of_interval = Vec::new();
            for t in ticks.by_ref() {
                of_interval.push(t);
                if t.close.is_some() {
                    break;
                }
            }
            let touched = PageSet::union_len(of_interval.iter().map(|t| &t.touched));
            let written = PageSet::union_len(of_interval.iter().map(|t| &t.written));
            assert_eq!(
                (r.true_wss_pages, r.true_wss_write_pages),
                (touched, written)
            );
            assert!(r.true_wss_pages >= 300 && r.true_wss_write_pages > 0);
            let ops: u64 = of_interval.iter().map(|t| t.guest_ops).sum();
            assert_eq!(ops, r.guest_ops);
        }
        assert!(ticks.next().is_none());
    }

    #[test]
    fn exhaustive_rows_equal_the_truth_of_a_scripted_guest() {
        let rows = run_loop(40, 200, None);
        assert!(rows.len() >= 4, "{} rows", rows.len());
        for r in &rows {
            assert_eq!(r.est_wss_pages, Some(r.true_wss_pages as f64));
            assert_eq!(r.touched_samples, r.true_wss_pages);
            assert!(r.true_wss_pages > 0);
        }
    }

    #[test]
    fn an_interval_after_a_slow_boundary_still_gets_its_full_length() {
        // The second collect takes three intervals. The interval after it
        // starts when it ends, so no row is short yet marked full.
        let rows = run_loop(50, 500, Some((2, Duration::from_millis(150))));
        let full: Vec<&Row> = rows.iter().filter(|r| r.full).collect();
        assert!(
            full.len() >= 3,
            "{} full rows of {}",
            full.len(),
            rows.len()
        );
        for r in &rows {
            assert_eq!(
                r.full,
                r.interval_s >= FULL_FRACTION * 0.05,
                "interval_s {} at t={}",
                r.interval_s,
                r.t_s
            );
        }
        for r in &full {
            assert!(r.interval_s >= 0.045, "{}", r.interval_s);
        }
        // Three 50 ms intervals fit in the 150 ms the slow collect took:
        // the run has fewer rows than 500 / 50.
        assert!(rows.len() < 10, "{} rows", rows.len());
    }
}
