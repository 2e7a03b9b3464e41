//! The interval loop: at every tick it asks the estimator which pages to
//! watch and has the tracker arm them; at the end of each tick it collects
//! the touched ones; at the end of each interval it reads the guest's
//! truth, closes the estimate and emits one row.
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
use crate::report::timeseries::Row;
use crate::track::{RamPage, TrackError, Tracker};
use crate::truth::{self, TruthSample};
use crate::vmm::memory::GuestMemory;

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
}

/// An estimate made before its interval ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub t_s: f64,
    pub touched_so_far: usize,
    pub estimate: crate::estimate::Estimate,
}

impl Sampler<'_> {
    /// Runs intervals from `start` until `duration` or an event, calling
    /// `sink` with each row as soon as it is complete.
    pub fn run(
        mut self,
        start: Instant,
        events: &Receiver<Event>,
        mut sink: impl FnMut(Row) -> Result<(), crate::report::ReportError>,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<LoopEnd, SamplerError> {
        let layout = *self.memory.layout();
        let first = layout.data_first_page();
        let data = first..first + layout.data_pages();
        let (read_bits, write_bits) = self.memory.truth_bitmaps();
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0x5a5a_5a5a);
        // Bits set before the first boundary belong to no interval.
        truth::take(read_bits, write_bits, data.clone());
        let status = self.memory.status();
        let mut last_ops = status.guest_ops;
        let mut last_stall = status.stall_cycles;
        let mut last_faults = self.tracker.as_ref().map_or(0, |t| t.stats().faults);
        let mut interval_start = start;
        let end_at = start + self.duration;
        let mut end = LoopEnd::Duration;
        while interval_start < end_at {
            let interval_end = (interval_start + self.interval).min(end_at);
            let ticks = self
                .estimator
                .as_ref()
                .map_or(1, |e| e.ticks_per_interval().max(1));
            let (mut sampled, mut touched_samples, mut arm_us, mut collect_us) =
                (0u64, 0u64, 0.0, 0.0);
            let mut stopped = None;
            for tick in 0..ticks {
                let tick_end =
                    interval_start + (interval_end - interval_start) * (tick + 1) / ticks;
                let armed: Vec<RamPage> = match (&self.tracker, &mut self.estimator) {
                    (Some(t), Some(e)) => {
                        let pages: Vec<RamPage> =
                            e.choose(&mut rng).into_iter().map(|p| first + p).collect();
                        let t0 = Instant::now();
                        t.arm(&pages)?;
                        arm_us += t0.elapsed().as_secs_f64() * 1e6;
                        pages
                    }
                    _ => Vec::new(),
                };
                stopped = loop {
                    let step = match (self.progress_every, &self.tracker, &self.estimator) {
                        (Some(every), Some(_), Some(e))
                            if ticks == 1 && e.ticks_per_interval() == 1 =>
                        {
                            (Instant::now() + every).min(tick_end)
                        }
                        _ => tick_end,
                    };
                    let ev = wait_until(step, events);
                    if ev.is_some() || step >= tick_end {
                        break ev;
                    }
                    if let (Some(t), Some(e)) = (&self.tracker, &self.estimator) {
                        let touched = t.touched_so_far();
                        on_progress(Progress {
                            t_s: start.elapsed().as_secs_f64(),
                            touched_so_far: touched,
                            estimate: e.peek(touched),
                        });
                    }
                };
                if let (Some(t), Some(e)) = (&self.tracker, &mut self.estimator) {
                    let t0 = Instant::now();
                    let touched = t.collect()?;
                    collect_us += t0.elapsed().as_secs_f64() * 1e6;
                    let touched: Vec<u64> = touched
                        .into_iter()
                        .filter(|p| data.contains(p))
                        .map(|p| p - first)
                        .collect();
                    sampled += armed.len() as u64;
                    touched_samples += touched.len() as u64;
                    e.observe_tick(&touched);
                }
                if stopped.is_some() {
                    break;
                }
            }
            let now = Instant::now();
            let sample: TruthSample = truth::take(read_bits, write_bits, data.clone());
            let status = self.memory.status();
            let ops = status.guest_ops;
            let faults = self.tracker.as_ref().map_or(0, |t| t.stats().faults);
            let estimate = self.estimator.as_mut().map(|e| e.end_interval());
            let full = stopped.is_none()
                && now + Duration::from_millis(1) >= interval_start + self.interval;
            sink(Row {
                t_s: now.duration_since(start).as_secs_f64(),
                true_wss_pages: sample.all,
                true_wss_write_pages: sample.writes,
                est_wss_pages: estimate.map(|e| e.pages),
                est_lo_pages: estimate.map(|e| e.lo),
                est_hi_pages: estimate.map(|e| e.hi),
                sampled_pages: sampled,
                touched_samples,
                faults: faults - last_faults,
                guest_ops: ops.saturating_sub(last_ops),
                interval_s: now.duration_since(interval_start).as_secs_f64(),
                full,
                phase: status.phase,
                arm_us,
                collect_us,
                stall_us: status.stall_cycles.saturating_sub(last_stall) as f64
                    / self.tsc_hz.max(1) as f64
                    * 1e6,
            })
            .map_err(SamplerError::Sink)?;
            last_ops = ops;
            last_faults = faults;
            last_stall = status.stall_cycles;
            interval_start = interval_end;
            if let Some(ev) = stopped {
                end = LoopEnd::Event(ev);
                break;
            }
        }
        Ok(end)
    }
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
