//! `bench trackers`: each tracker's cost per tracked touch, measured by the
//! guest, once through kvm-wss (the real tracker from `track::create`, all
//! its bookkeeping) and once through the floor (floor.rs: the same kernel
//! mechanism driven with the fewest steps). Same guest, same hook points,
//! same vCPU exit loop; the ratio is what kvm-wss adds.
//!
//! Each boot runs the `probe` guest for R + 1 rounds (R = `--rounds`). At
//! the even sync of round r ≥ 1 every region page is armed, at the odd sync
//! the round is collected. Round 0 arms nothing: its cycles per touch are
//! the untracked baseline of that same VM, and a tracked round costs
//! `(cycles − touches × baseline) / tracked touches`. Boots alternate
//! kvm-wss, floor, kvm-wss, floor, ... (R repetitions of each), so machine
//! noise hits both sides alike, and all of it runs under `SCHED_FIFO` when
//! allowed (realtime.rs), so that other processes' time slices stay out of
//! the rounds.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use serde::Serialize;
use wss_abi::PAGE_SIZE;

use super::realtime::Realtime;
use super::{BenchError, floor, median};
use crate::track::{self, RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::vmm::exit::Stop;
use crate::vmm::machine::{Machine, MachineConfig};
use crate::vmm::memory::GuestMemory;
use crate::vmm::paging::GuestPageSize;
use crate::vmm::vcpu_thread::{FaultHandler, SyncHook, VcpuEnd, VcpuThread};

/// The trackers measured, in output order.
pub const KINDS: [TrackerKind; 3] = [
    TrackerKind::Mprotect,
    TrackerKind::Uffd,
    TrackerKind::DirtyLog,
];

/// Fewest region pages: one of each of the probe's four page classes (with
/// fewer than 2 it writes nothing, and dirty logging, which sees writes
/// only, would catch no touch).
pub const MIN_PAGES: u64 = 4;

/// RAM beyond the region for the probe's image, stack and page tables.
const HEADROOM: u64 = 16 << 20;
/// Time a boot may take before it counts as hung: a fixed allowance plus a
/// budget per tracked touch about 20x the slowest cost seen on PVM hosts.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(60);
const BUDGET_PER_TOUCH: Duration = Duration::from_millis(20);

/// The probe's region: `pages` RAM pages from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Region {
    pub first: RamPage,
    pub pages: u64,
}

impl Region {
    pub fn all(&self) -> Vec<RamPage> {
        (self.first..self.first + self.pages).collect()
    }
}

/// Which way a boot drives the mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    KvmWss,
    Floor,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::KvmWss => "kvm-wss",
            Side::Floor => "floor",
        }
    }
}

/// One side's mechanism, as the sync hook drives it: arm the whole region
/// at a round's first sync, collect at its second.
pub(super) trait Mechanism: Send {
    /// Arms tracked round `round` (1-based).
    fn arm(&mut self, round: u64) -> Result<(), TrackError>;
    /// Ends the round; returns how many armed pages the mechanism caught.
    fn collect(&mut self) -> Result<u64, TrackError>;
}

/// A side's mechanism and the fault handler the vCPU loop needs for it.
pub(super) struct Driver {
    pub mechanism: Box<dyn Mechanism>,
    pub faults: Option<Arc<dyn FaultHandler>>,
}

/// The pages each tracked round arms: round r ≥ 1 arms `rounds[(r - 1) %
/// len]`, sorted. The touch benchmark arms the whole region every round;
/// the arming benchmark (arming.rs) scattered pages, fresh each round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub rounds: Vec<Vec<RamPage>>,
}

impl Plan {
    pub fn whole(region: Region) -> Plan {
        Plan {
            rounds: vec![region.all()],
        }
    }

    pub fn armed(&self, round: u64) -> &[RamPage] {
        let n = self.rounds.len().max(1) as u64;
        self.rounds
            .get((round.saturating_sub(1) % n) as usize)
            .map_or(&[], Vec::as_slice)
    }
}

/// How a boot chooses its plan from the probe's region.
pub(super) type Planner = fn(Region) -> Plan;

/// The kvm-wss side: the real tracker, the plan's pages armed each round.
struct KvmWss {
    tracker: Arc<dyn Tracker>,
    plan: Plan,
}

impl Mechanism for KvmWss {
    fn arm(&mut self, round: u64) -> Result<(), TrackError> {
        self.tracker.arm(self.plan.armed(round))
    }

    fn collect(&mut self) -> Result<u64, TrackError> {
        Ok(self.tracker.collect()?.len() as u64)
    }
}

/// The probe's timing counters at a round's second sync (totals since
/// boot, as the guest keeps them), and what the mechanism caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub cycles_total: u64,
    pub touches_total: u64,
    pub tracked: u64,
    /// Time the round's arm and collect held the vCPU out of the guest
    /// (the sync hook runs on the vCPU thread), nanoseconds.
    pub hold_ns: u64,
}

/// One round: guest-timed cycles and touches, and tracked touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundSample {
    pub cycles: u64,
    pub touches: u64,
    pub tracked: u64,
    pub hold_ns: u64,
}

/// Per-round samples from the guest's running totals.
pub fn round_samples(snapshots: &[Snapshot]) -> Vec<RoundSample> {
    let mut prev = (0u64, 0u64);
    snapshots
        .iter()
        .map(|s| {
            let sample = RoundSample {
                cycles: s.cycles_total.wrapping_sub(prev.0),
                touches: s.touches_total.wrapping_sub(prev.1),
                tracked: s.tracked,
                hold_ns: s.hold_ns,
            };
            prev = (s.cycles_total, s.touches_total);
            sample
        })
        .collect()
}

/// Cycles per touch of a round, `None` without touches.
pub fn cycles_per_touch(s: &RoundSample) -> Option<f64> {
    (s.touches > 0).then(|| s.cycles as f64 / s.touches as f64)
}

/// Microseconds per tracked touch of a round: its cycles minus what its
/// touches cost untracked (`baseline_cpt` cycles each), over the tracked
/// touches, at `tsc_hz`. `None` without tracked touches or TSC rate.
pub fn us_per_tracked_touch(s: &RoundSample, baseline_cpt: f64, tsc_hz: u64) -> Option<f64> {
    if s.tracked == 0 || tsc_hz == 0 {
        return None;
    }
    let extra = s.cycles as f64 - s.touches as f64 * baseline_cpt;
    Some(extra / s.tracked as f64 / tsc_hz as f64 * 1e6)
}

/// Tracked touches of the probe's rounds over `pages` pages: page `i` is
/// read when `i % 4` is 0 or 2, written when it is 1 or 2.
pub fn probe_tracked_touches(pages: u64, writes_only: bool) -> u64 {
    if writes_only {
        (pages + 2) / 4 + (pages + 1) / 4
    } else {
        pages - pages / 4
    }
}

/// One boot's costs.
#[derive(Debug, Clone, Serialize)]
pub struct BootCost {
    /// Per tracked round.
    pub us_per_touch: Vec<f64>,
    pub tracked_touches: Vec<u64>,
    /// Round 0, nothing armed.
    pub untracked_us_per_touch: f64,
    /// VMM time per tracked fault as the tracker counts it (kvm-wss side of
    /// the trackers that see faults), for telling where the time goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_us_per_fault: Option<f64>,
}

impl BootCost {
    /// From a boot's rounds (round 0 untracked). `side` and `tracker` only
    /// name the boot in errors.
    fn from_samples(
        samples: &[RoundSample],
        tsc_hz: u64,
        side: Side,
        tracker: TrackerKind,
    ) -> Result<BootCost, BenchError> {
        let no_touches = |round| BenchError::NoTouches {
            side: side.name(),
            tracker: tracker.name(),
            round,
        };
        let baseline = samples
            .first()
            .and_then(cycles_per_touch)
            .ok_or_else(|| no_touches(0))?;
        let mut us_per_touch = Vec::new();
        for (i, s) in samples.iter().enumerate().skip(1) {
            us_per_touch
                .push(us_per_tracked_touch(s, baseline, tsc_hz).ok_or_else(|| no_touches(i))?);
        }
        Ok(BootCost {
            us_per_touch,
            tracked_touches: samples.iter().skip(1).map(|s| s.tracked).collect(),
            untracked_us_per_touch: baseline / tsc_hz as f64 * 1e6,
            service_us_per_fault: None,
        })
    }
}

/// A kvm-wss boot and the floor boot that followed it.
#[derive(Debug, Clone, Serialize)]
pub struct Repetition {
    /// Medians over this repetition's rounds.
    pub kvmwss_us_per_touch: f64,
    pub floor_us_per_touch: f64,
    pub ratio: f64,
    pub kvmwss: BootCost,
    pub floor: BootCost,
}

impl Repetition {
    fn new(kvmwss: BootCost, floor: BootCost) -> Repetition {
        let k = median(kvmwss.us_per_touch.iter().copied()).unwrap_or(f64::NAN);
        let f = median(floor.us_per_touch.iter().copied()).unwrap_or(f64::NAN);
        Repetition {
            kvmwss_us_per_touch: k,
            floor_us_per_touch: f,
            ratio: k / f,
            kvmwss,
            floor,
        }
    }
}

/// Tracked touches per round, medians over rounds and repetitions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TouchCounts {
    pub kvmwss: u64,
    pub floor: u64,
    /// What the probe's access pattern makes the mechanism see.
    pub expected: u64,
}

/// One tracker's result.
#[derive(Debug, Clone, Serialize)]
pub struct TrackerCost {
    pub tracker: &'static str,
    /// Medians over rounds and repetitions.
    pub kvmwss_us_per_touch: f64,
    pub floor_us_per_touch: f64,
    pub ratio: f64,
    pub overhead_pct: f64,
    pub untracked_us_per_touch: f64,
    pub tracked_touches_per_round: TouchCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvmwss_service_us_per_fault: Option<f64>,
    /// Every repetition; left out of the printed medians (see `--detail`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repetitions: Vec<Repetition>,
}

impl TrackerCost {
    fn new(kind: TrackerKind, pages: u64, repetitions: Vec<Repetition>) -> TrackerCost {
        let all = |f: fn(&Repetition) -> &BootCost| {
            median(
                repetitions
                    .iter()
                    .flat_map(|r| f(r).us_per_touch.iter().copied()),
            )
            .unwrap_or(f64::NAN)
        };
        let touches = |f: fn(&Repetition) -> &BootCost| {
            median(
                repetitions
                    .iter()
                    .flat_map(|r| f(r).tracked_touches.iter().map(|&n| n as f64)),
            )
            .map_or(0, |m| m.round() as u64)
        };
        let kvmwss = all(|r| &r.kvmwss);
        let floor = all(|r| &r.floor);
        let ratio = kvmwss / floor;
        TrackerCost {
            tracker: kind.name(),
            kvmwss_us_per_touch: kvmwss,
            floor_us_per_touch: floor,
            ratio,
            overhead_pct: (ratio - 1.0) * 100.0,
            untracked_us_per_touch: median(repetitions.iter().flat_map(|r| {
                [
                    r.kvmwss.untracked_us_per_touch,
                    r.floor.untracked_us_per_touch,
                ]
            }))
            .unwrap_or(f64::NAN),
            tracked_touches_per_round: TouchCounts {
                kvmwss: touches(|r| &r.kvmwss),
                floor: touches(|r| &r.floor),
                expected: probe_tracked_touches(pages, kind.writes_only()),
            },
            kvmwss_service_us_per_fault: median(
                repetitions
                    .iter()
                    .filter_map(|r| r.kvmwss.service_us_per_fault),
            ),
            repetitions,
        }
    }
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct TrackersResult {
    pub pages: u64,
    pub rounds: u64,
    pub guest_pages: GuestPageSize,
    /// How the benchmark's threads were scheduled.
    pub scheduling: String,
    pub trackers: Vec<TrackerCost>,
    /// What arming costs the guest, and a tracked touch with arming
    /// included (arming.rs).
    pub arming: super::arming::ArmingResult,
}

/// Runs the benchmark: for each tracker, `rounds` repetitions of a kvm-wss
/// boot then a floor boot, each with `rounds` tracked rounds over a region
/// of `pages` pages.
pub fn trackers(
    pages: u64,
    rounds: u64,
    guest_pages: GuestPageSize,
) -> Result<TrackersResult, BenchError> {
    if pages < MIN_PAGES {
        return Err(BenchError::TooFewPages {
            got: pages,
            min: MIN_PAGES,
        });
    }
    if rounds == 0 {
        return Err(BenchError::NoRounds);
    }
    // Held to the end: dropping it restores the caller's scheduling.
    let realtime = Realtime::enter();
    let scheduling = match &realtime {
        Ok(_) => "SCHED_FIFO".to_string(),
        Err(e) => {
            log::warn!("bench trackers: running without SCHED_FIFO ({e}): expect noisy rounds");
            format!("unchanged (SCHED_FIFO refused: {e})")
        }
    };
    let mut out = Vec::new();
    for kind in KINDS {
        let mut reps = Vec::new();
        for rep in 0..rounds {
            let run = |side: Side| {
                log::info!(
                    "bench trackers: {} {} repetition {}/{rounds}",
                    kind.name(),
                    side.name(),
                    rep + 1
                );
                boot(kind, side, pages, rounds, guest_pages)
            };
            let kvmwss = run(Side::KvmWss)?;
            let floor = run(Side::Floor)?;
            reps.push(Repetition::new(kvmwss, floor));
        }
        out.push(TrackerCost::new(kind, pages, reps));
    }
    let arming = super::arming::arming(rounds, guest_pages)?;
    drop(realtime);
    Ok(TrackersResult {
        pages,
        rounds,
        guest_pages,
        scheduling,
        trackers: out,
        arming,
    })
}

/// What the sync hook and the vCPU thread tell the benchmark.
enum Event {
    Round(Snapshot),
    Failed(BenchError),
    Ended,
}

/// The sync hook: arms at each tracked round's first sync, collects and
/// reports the guest's counters at every round's second. After a failure
/// it does nothing more (the benchmark stops the guest).
fn sync_hook(
    mut mechanism: Box<dyn Mechanism>,
    memory: Arc<GuestMemory>,
    events: Sender<Event>,
    side: Side,
    kind: TrackerKind,
) -> SyncHook {
    let mut failed = false;
    let mut hold = Duration::ZERO;
    Box::new(move |v: u64| {
        if failed {
            return;
        }
        let round = v / 2;
        let tracked = round > 0;
        let t0 = Instant::now();
        let result = if v.is_multiple_of(2) {
            let armed = if tracked {
                mechanism.arm(round)
            } else {
                Ok(())
            };
            hold = t0.elapsed();
            armed
        } else {
            let caught = if tracked { mechanism.collect() } else { Ok(0) };
            hold += t0.elapsed();
            caught.map(|tracked| {
                let s = memory.status();
                // The receiver outlives the guest unless the benchmark gave
                // up on it, and then nobody needs the round.
                let _ = events.send(Event::Round(Snapshot {
                    cycles_total: s.user[0],
                    touches_total: s.user[1],
                    tracked,
                    hold_ns: u64::try_from(hold.as_nanos()).unwrap_or(u64::MAX),
                }));
            })
        };
        if let Err(source) = result {
            failed = true;
            let _ = events.send(Event::Failed(BenchError::Mechanism {
                side: side.name(),
                tracker: kind.name(),
                source,
            }));
        }
    })
}

/// The region's bytes and the RAM to boot with (the region plus headroom,
/// in whole 2 MiB pages), or `None` when they overflow.
fn sizes_for(pages: u64) -> Option<(u64, u64)> {
    let wss = pages.checked_mul(PAGE_SIZE)?;
    let mem = wss
        .checked_add(HEADROOM)?
        .checked_next_multiple_of(2 << 20)?;
    Some((wss, mem))
}

/// Boots the probe once and measures one side, every region page armed
/// each round.
fn boot(
    kind: TrackerKind,
    side: Side,
    pages: u64,
    rounds: u64,
    guest_pages: GuestPageSize,
) -> Result<BootCost, BenchError> {
    let b = boot_rounds(kind, side, pages, rounds, guest_pages, Plan::whole)?;
    let mut cost = BootCost::from_samples(&b.samples, b.tsc_hz, side, kind)?;
    if let Some(stats) = b.stats
        && stats.faults > 0
        && stats.fault_service_us > 0.0
    {
        cost.service_us_per_fault = Some(stats.fault_service_us / stats.faults as f64);
    }
    Ok(cost)
}

/// One boot's rounds (round 0 untracked), as the guest timed them.
pub(super) struct BootRounds {
    pub samples: Vec<RoundSample>,
    pub tsc_hz: u64,
    /// The tracker's own counters (kvm-wss side).
    pub stats: Option<TrackerStats>,
}

/// Boots the probe once over `pages` region pages and runs `rounds`
/// tracked rounds on one side, arming what `planner` chooses.
pub(super) fn boot_rounds(
    kind: TrackerKind,
    side: Side,
    pages: u64,
    rounds: u64,
    guest_pages: GuestPageSize,
    planner: Planner,
) -> Result<BootRounds, BenchError> {
    let image = crate::guests::embedded("probe").ok_or(BenchError::NoGuest("probe"))?;
    // Sizes too large for this host are the boot's to reject.
    let (wss, mem) = sizes_for(pages).ok_or(BenchError::TooManyPages(pages))?;
    let machine = Machine::boot(
        image,
        &MachineConfig {
            mem,
            wss,
            seed: 1,
            params: vec![("rounds".into(), (rounds + 1).to_string())],
            dirty_log: kind == TrackerKind::DirtyLog,
            guest_pages,
        },
    )?;
    let region = Region {
        first: machine.layout.data_first_page(),
        pages,
    };
    let plan = planner(region);
    let mech_err = |source| BenchError::Mechanism {
        side: side.name(),
        tracker: kind.name(),
        source,
    };
    let (driver, tracker) = match side {
        Side::KvmWss => {
            let tracker = track::create(kind, &machine)
                .map_err(mech_err)?
                .ok_or_else(|| {
                    mech_err(TrackError::Setup {
                        tracker: kind.name(),
                        what: "this kind creates no tracker".into(),
                        source: None,
                    })
                })?;
            let driver = Driver {
                faults: Arc::clone(&tracker).fault_handler(),
                mechanism: Box::new(KvmWss {
                    tracker: Arc::clone(&tracker),
                    plan,
                }),
            };
            (driver, Some(tracker))
        }
        Side::Floor => (
            floor::create(kind, &machine, region, plan).map_err(mech_err)?,
            None,
        ),
    };
    let tsc_hz = machine.tsc_hz;
    let memory = Arc::clone(machine.memory());
    let (tx, rx) = mpsc::channel();
    let hook = sync_hook(
        driver.mechanism,
        Arc::clone(&memory),
        tx.clone(),
        side,
        kind,
    );
    let Machine { vcpu, vm, kvm, .. } = machine;
    let thread = VcpuThread::spawn(
        vcpu,
        memory,
        Instant::now(),
        driver.faults,
        Some(hook),
        Box::new(move || {
            let _ = tx.send(Event::Ended);
        }),
    )
    .map_err(BenchError::Spawn)?;
    let touches = probe_tracked_touches(pages, false).saturating_mul(rounds);
    let budget = BOOT_ALLOWANCE.saturating_add(
        BUDGET_PER_TOUCH.saturating_mul(u32::try_from(touches).unwrap_or(u32::MAX)),
    );
    let deadline = Instant::now() + budget;
    let mut snapshots = Vec::new();
    let outcome = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Round(s)) => snapshots.push(s),
            Ok(Event::Failed(e)) => break Err(e),
            // The report says how the loop ended.
            Ok(Event::Ended) | Err(RecvTimeoutError::Disconnected) => break Ok(()),
            Err(RecvTimeoutError::Timeout) => {
                break Err(BenchError::Timeout {
                    side: side.name(),
                    tracker: kind.name(),
                    secs: budget.as_secs(),
                });
            }
        }
    };
    let report = thread.stop();
    drop((vm, kvm));
    outcome?;
    match report.end {
        VcpuEnd::Guest(Stop::Exit(0)) => {}
        VcpuEnd::Failed(source) => {
            return Err(BenchError::ProbeFailed {
                side: side.name(),
                tracker: kind.name(),
                source,
            });
        }
        end => {
            return Err(BenchError::ProbeEnd {
                side: side.name(),
                tracker: kind.name(),
                end: format!("{end:?}"),
            });
        }
    }
    if snapshots.len() as u64 != rounds + 1 {
        return Err(BenchError::ProbeEnd {
            side: side.name(),
            tracker: kind.name(),
            end: format!(
                "{} rounds reported, {} expected",
                snapshots.len(),
                rounds + 1
            ),
        });
    }
    Ok(BootRounds {
        samples: round_samples(&snapshots),
        tsc_hz,
        stats: tracker.map(|t| t.stats()),
    })
}

/// Pages and tracked rounds of the calibration that gives every tracked run
/// its `fault_cost_us`: 256 pages (192 tracked touches a round, 128 for the
/// dirty log) over 3 rounds, a few tens of milliseconds on this host.
pub const CALIBRATION_PAGES: u64 = 256;
pub const CALIBRATION_ROUNDS: u64 = 3;

/// What one tracked touch costs the guest with tracker `kind`, in
/// microseconds: one kvm-wss boot of the probe (the real tracker), the
/// median over its tracked rounds.
pub fn calibrate(kind: TrackerKind, guest_pages: GuestPageSize) -> Result<f64, BenchError> {
    let cost = boot(
        kind,
        Side::KvmWss,
        CALIBRATION_PAGES,
        CALIBRATION_ROUNDS,
        guest_pages,
    )?;
    median(cost.us_per_touch.iter().copied()).ok_or(BenchError::NoTouches {
        side: Side::KvmWss.name(),
        tracker: kind.name(),
        round: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(cycles_total: u64, touches_total: u64, tracked: u64) -> Snapshot {
        Snapshot {
            cycles_total,
            touches_total,
            tracked,
            hold_ns: 0,
        }
    }

    #[test]
    fn samples_are_deltas_of_the_running_totals() {
        let s = round_samples(&[snap(300, 3, 0), snap(1300, 6, 2), snap(1900, 9, 3)]);
        assert_eq!(
            s,
            vec![
                RoundSample {
                    cycles: 300,
                    touches: 3,
                    tracked: 0,
                    hold_ns: 0
                },
                RoundSample {
                    cycles: 1000,
                    touches: 3,
                    tracked: 2,
                    hold_ns: 0
                },
                RoundSample {
                    cycles: 600,
                    touches: 3,
                    tracked: 3,
                    hold_ns: 0
                },
            ]
        );
        assert!(round_samples(&[]).is_empty());
    }

    #[test]
    fn cost_per_tracked_touch_subtracts_the_untracked_baseline() {
        // 768 touches at a baseline of 50 cycles, 512 of them tracked, and
        // 2.048e6 extra cycles: 4000 cycles each, 2 us at 2 GHz.
        let s = RoundSample {
            cycles: 768 * 50 + 512 * 4000,
            touches: 768,
            tracked: 512,
            hold_ns: 0,
        };
        let us = us_per_tracked_touch(&s, 50.0, 2_000_000_000).expect("cost");
        assert!((us - 2.0).abs() < 1e-12, "{us}");
        // Without a baseline the whole round counts.
        let us = us_per_tracked_touch(&s, 0.0, 2_000_000_000).expect("cost");
        assert!((us - (768.0 * 50.0 + 512.0 * 4000.0) / 512.0 / 2000.0).abs() < 1e-12);
        assert_eq!(
            us_per_tracked_touch(&RoundSample { tracked: 0, ..s }, 50.0, 1),
            None
        );
        assert_eq!(us_per_tracked_touch(&s, 50.0, 0), None);
    }

    #[test]
    fn baseline_is_cycles_per_touch() {
        let s = RoundSample {
            cycles: 900,
            touches: 12,
            tracked: 0,
            hold_ns: 0,
        };
        assert_eq!(cycles_per_touch(&s), Some(75.0));
        assert_eq!(cycles_per_touch(&RoundSample { touches: 0, ..s }), None);
    }

    #[test]
    fn boot_cost_uses_round_zero_as_baseline() {
        let samples = round_samples(&[
            snap(3 * 100, 3, 0),
            snap(3 * 100 + 3 * 100 + 2 * 1000, 6, 2),
            snap(3 * 100 + 3 * 100 + 2 * 1000 + 3 * 100 + 3 * 3000, 9, 3),
        ]);
        let c = BootCost::from_samples(&samples, 1_000_000, Side::Floor, TrackerKind::Uffd)
            .expect("cost");
        assert_eq!(c.tracked_touches, vec![2, 3]);
        assert_eq!(c.us_per_touch.len(), 2);
        assert!((c.us_per_touch[0] - 1000.0).abs() < 1e-9);
        assert!((c.us_per_touch[1] - 3000.0).abs() < 1e-9);
        assert!((c.untracked_us_per_touch - 100.0).abs() < 1e-9);
        // A round that caught nothing is an error that names it.
        let bad = round_samples(&[snap(300, 3, 0), snap(600, 6, 0)]);
        let err = BootCost::from_samples(&bad, 1, Side::KvmWss, TrackerKind::DirtyLog)
            .expect_err("no touches");
        assert_eq!(
            err.to_string(),
            "the kvm-wss dirty-log caught no touch in round 1, so it has no cost per touch"
        );
    }

    #[test]
    fn probe_touch_counts_follow_its_classes() {
        for pages in 1..40u64 {
            let all = (0..pages).filter(|i| i % 4 != 3).count() as u64;
            let writes = (0..pages).filter(|i| i % 4 == 1 || i % 4 == 2).count() as u64;
            assert_eq!(probe_tracked_touches(pages, false), all, "{pages}");
            assert_eq!(probe_tracked_touches(pages, true), writes, "{pages}");
        }
        assert_eq!(probe_tracked_touches(1024, false), 768);
        assert_eq!(probe_tracked_touches(1024, true), 512);
    }

    fn boot_cost(us: &[f64], touches: u64) -> BootCost {
        BootCost {
            us_per_touch: us.to_vec(),
            tracked_touches: vec![touches; us.len()],
            untracked_us_per_touch: 0.01,
            service_us_per_fault: None,
        }
    }

    #[test]
    fn tracker_cost_takes_medians_over_rounds_and_repetitions() {
        let reps = vec![
            Repetition::new(boot_cost(&[11.0, 13.0], 768), boot_cost(&[10.0, 10.0], 768)),
            Repetition::new(boot_cost(&[12.0, 50.0], 767), boot_cost(&[9.0, 11.0], 768)),
        ];
        assert_eq!(reps[0].kvmwss_us_per_touch, 12.0);
        assert_eq!(reps[0].ratio, 1.2);
        let c = TrackerCost::new(TrackerKind::Mprotect, 1024, reps);
        // kvm-wss: 11, 12, 13, 50 -> 12.5; floor: 9, 10, 10, 11 -> 10.
        assert_eq!(c.kvmwss_us_per_touch, 12.5);
        assert_eq!(c.floor_us_per_touch, 10.0);
        assert_eq!(c.ratio, 1.25);
        assert!((c.overhead_pct - 25.0).abs() < 1e-9);
        assert_eq!(c.tracked_touches_per_round.kvmwss, 768);
        assert_eq!(c.tracked_touches_per_round.expected, 768);
        assert_eq!(c.untracked_us_per_touch, 0.01);
        assert_eq!(c.tracker, "mprotect");
    }

    #[test]
    fn sizes_hold_the_region_in_whole_2m_pages() {
        assert_eq!(sizes_for(1024), Some((4 << 20, 20 << 20)));
        assert_eq!(sizes_for(1), Some((4096, 18 << 20)));
        assert_eq!(sizes_for(u64::MAX / 4096 + 1), None);
        assert_eq!(sizes_for(u64::MAX / 4096), None);
    }
}
