//! What a tracked touch costs the guest, measured by the `probe` guest in
//! rounds: the cost every tracked run records as `fault_cost_us`
//! ([`calibrate`]), and the engine `bench trackers` and `bench arming`
//! drive with the real tracker or with a floor (bench/floor.rs).
//!
//! A boot runs the probe for R + 1 rounds. At the even sync of round r ≥ 1
//! the plan's pages are armed, at the odd sync the round is collected and
//! the guest's running counters read. Round 0 arms nothing: its cycles per
//! touch are the untracked baseline of that same VM, and a tracked round
//! costs `(cycles − touches × baseline) / tracked touches`.
//!
//! This module sits below both `run` and `bench`; it knows trackers and the
//! VMM, never the benchmarks that use it.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use wss_abi::PAGE_SIZE;

use crate::analysis::stats::median;
use crate::track::{self, RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::vmm::affinity::{AffinityError, Placement};
use crate::vmm::exit::Stop;
use crate::vmm::machine::{BootError, Machine, MachineConfig};
use crate::vmm::memory::GuestMemory;
use crate::vmm::paging::GuestPageSize;
use crate::vmm::vcpu_thread::{FaultHandler, SyncHook, VcpuEnd, VcpuLoopError, VcpuThread};

/// Why a probe boot measured nothing. `side` names who drove the mechanism
/// ("kvm-wss", "floor").
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the guest has no built-in program {0}")]
    NoGuest(&'static str),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("cannot start the vCPU thread")]
    Spawn(#[source] std::io::Error),
    #[error("--pages {0} is too large for guest memory")]
    TooManyPages(u64),
    #[error("the {side} {tracker} failed")]
    Mechanism {
        side: &'static str,
        tracker: &'static str,
        #[source]
        source: TrackError,
    },
    #[error("the {side} {tracker} caught no touch in round {round}, so it has no cost per touch")]
    NoTouches {
        side: &'static str,
        tracker: &'static str,
        round: usize,
    },
    #[error("the probe under the {side} {tracker} did not finish within {secs} s")]
    Timeout {
        side: &'static str,
        tracker: &'static str,
        secs: u64,
    },
    #[error("the probe under the {side} {tracker} failed")]
    ProbeFailed {
        side: &'static str,
        tracker: &'static str,
        #[source]
        source: VcpuLoopError,
    },
    #[error(transparent)]
    Placement(#[from] AffinityError),
    #[error("the probe under the {side} {tracker} ended badly: {end}")]
    ProbeEnd {
        side: &'static str,
        tracker: &'static str,
        end: String,
    },
}

/// The name of the side that drives the real tracker ([`tracker_driver`]);
/// `bench trackers` names its other side, the floor, itself.
pub const KVM_WSS: &str = "kvm-wss";

/// RAM beyond the region for the probe's image, stack and page tables.
const HEADROOM: u64 = 16 << 20;
/// Time a boot may take before it counts as hung: a fixed allowance plus a
/// budget per tracked touch about 20x the slowest cost seen on PVM hosts.
const BOOT_ALLOWANCE: Duration = Duration::from_secs(60);
const BUDGET_PER_TOUCH: Duration = Duration::from_millis(20);

/// The probe's region: `pages` RAM pages from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub first: RamPage,
    pub pages: u64,
}

impl Region {
    pub fn all(&self) -> Vec<RamPage> {
        (self.first..self.first + self.pages).collect()
    }
}

/// One side's mechanism, as the sync hook drives it: arm the whole region
/// at a round's first sync, collect at its second.
pub trait Mechanism: Send {
    /// Arms tracked round `round` (1-based).
    fn arm(&mut self, round: u64) -> Result<(), TrackError>;
    /// Ends the round; returns how many armed pages the mechanism caught.
    fn collect(&mut self) -> Result<u64, TrackError>;
}

/// A side's mechanism, the fault handler the vCPU loop needs for it, and
/// the tracker behind it when it is the real one (for its counters).
pub struct Driver {
    pub mechanism: Box<dyn Mechanism>,
    pub faults: Option<Arc<dyn FaultHandler>>,
    pub tracker: Option<Arc<dyn Tracker>>,
}

/// Builds a side's driver on a booted probe, for the plan's pages.
/// `cpu`: where the driver's fault-handler thread, if it has one, must
/// run (beside the vCPU; see `vmm::affinity`).
pub type MakeDriver =
    fn(TrackerKind, &Machine, Region, Plan, Option<usize>) -> Result<Driver, TrackError>;

/// The pages each tracked round arms: round r ≥ 1 arms `rounds[(r - 1) %
/// len]`, sorted. The touch benchmark arms the whole region every round;
/// the arming benchmark (bench/arming.rs) scattered pages, fresh each round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
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
pub type Planner = fn(Region) -> Plan;

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

/// The kvm-wss side's driver: the tracker `track::create` makes for `kind`.
pub fn tracker_driver(
    kind: TrackerKind,
    machine: &Machine,
    _region: Region,
    plan: Plan,
    cpu: Option<usize>,
) -> Result<Driver, TrackError> {
    let tracker = track::create(kind, machine)?.ok_or_else(|| TrackError::Setup {
        tracker: kind.name(),
        what: "this kind creates no tracker".into(),
        source: None,
    })?;
    if let Some(cpu) = cpu {
        tracker
            .pin_handler(cpu)
            .map_err(|e| track::pin_error(kind.name(), cpu, e))?;
    }
    Ok(Driver {
        faults: Arc::clone(&tracker).fault_handler(),
        mechanism: Box::new(KvmWss {
            tracker: Arc::clone(&tracker),
            plan,
        }),
        tracker: Some(tracker),
    })
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

/// A boot's cost per touch: each tracked round's, and the untracked
/// baseline of round 0.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundCosts {
    /// Microseconds per tracked touch, per tracked round.
    pub us_per_touch: Vec<f64>,
    /// Microseconds per touch of round 0, nothing armed.
    pub untracked_us_per_touch: f64,
}

impl RoundCosts {
    /// From a boot's rounds (round 0 untracked). `side` and `tracker` only
    /// name the boot in errors: a round without touches has no cost.
    pub fn of(
        samples: &[RoundSample],
        tsc_hz: u64,
        side: &'static str,
        tracker: TrackerKind,
    ) -> Result<RoundCosts, ProbeError> {
        let no_touches = |round| ProbeError::NoTouches {
            side,
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
        Ok(RoundCosts {
            us_per_touch,
            untracked_us_per_touch: baseline / tsc_hz as f64 * 1e6,
        })
    }
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

/// The k-th page the probe touches in a round, counted from its region's
/// start: it skips every page `i` with `i % 4 == 3`.
pub fn probe_touch_order(k: u64) -> u64 {
    k / 3 * 4 + k % 3
}

/// What the sync hook and the vCPU thread tell the benchmark.
enum Event {
    Round(Snapshot),
    Failed(ProbeError),
    Ended,
}

/// The sync hook: arms at each tracked round's first sync, collects and
/// reports the guest's counters at every round's second. After a failure
/// it does nothing more (the benchmark stops the guest).
fn sync_hook(
    mut mechanism: Box<dyn Mechanism>,
    memory: Arc<GuestMemory>,
    events: Sender<Event>,
    side: &'static str,
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
            let _ = events.send(Event::Failed(ProbeError::Mechanism {
                side,
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

/// One boot's rounds (round 0 untracked), as the guest timed them.
pub struct BootRounds {
    pub samples: Vec<RoundSample>,
    pub tsc_hz: u64,
    /// The tracker's own counters (kvm-wss side).
    pub stats: Option<TrackerStats>,
}

/// Boots the probe once over `pages` region pages and runs `rounds`
/// tracked rounds on one side (its name and driver), arming what `planner`
/// chooses; in each round the probe visits the region `passes` times. The
/// vCPU and the side's fault handler go where `placement` says, as in a
/// run.
pub fn boot_rounds(
    kind: TrackerKind,
    (side, make_driver): (&'static str, MakeDriver),
    pages: u64,
    (rounds, passes): (u64, u64),
    (guest_pages, placement): (GuestPageSize, Placement),
    planner: Planner,
) -> Result<BootRounds, ProbeError> {
    let cpu = crate::vmm::affinity::choose_here(placement, 1, kind.has_handler_thread())?;
    let image = crate::guests::embedded("probe").ok_or(ProbeError::NoGuest("probe"))?;
    // Sizes too large for this host are the boot's to reject.
    let (wss, mem) = sizes_for(pages).ok_or(ProbeError::TooManyPages(pages))?;
    let machine = Machine::boot(
        image,
        &MachineConfig {
            mem,
            wss,
            seed: 1,
            params: vec![
                ("rounds".into(), (rounds + 1).to_string()),
                ("passes".into(), passes.max(1).to_string()),
            ],
            dirty_log: kind == TrackerKind::DirtyLog,
            guest_pages,
            vcpus: 1,
        },
    )?;
    let region = Region {
        first: machine.layout.data_first_page(),
        pages,
    };
    let plan = planner(region);
    let driver =
        make_driver(kind, &machine, region, plan, cpu).map_err(|source| ProbeError::Mechanism {
            side,
            tracker: kind.name(),
            source,
        })?;
    let tracker = driver.tracker;
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
    .map_err(ProbeError::Spawn)?;
    // Pinned before the first round is timed (the probe's first sync comes
    // after its own set-up). The guest runs already: a vCPU that cannot be
    // pinned runs free.
    if let Some(cpu) = cpu
        && let Err(e) = thread.pin(cpu)
    {
        log::warn!("cannot pin the probe's vCPU thread to CPU {cpu}, so it runs anywhere: {e}");
    }
    let touches = probe_tracked_touches(pages, false)
        .saturating_mul(rounds)
        .saturating_mul(passes.max(1));
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
                break Err(ProbeError::Timeout {
                    side,
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
            return Err(ProbeError::ProbeFailed {
                side,
                tracker: kind.name(),
                source,
            });
        }
        end => {
            return Err(ProbeError::ProbeEnd {
                side,
                tracker: kind.name(),
                end: format!("{end:?}"),
            });
        }
    }
    if snapshots.len() as u64 != rounds + 1 {
        return Err(ProbeError::ProbeEnd {
            side,
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
pub fn calibrate(
    kind: TrackerKind,
    guest_pages: GuestPageSize,
    placement: Placement,
) -> Result<f64, ProbeError> {
    let b = boot_rounds(
        kind,
        (KVM_WSS, tracker_driver),
        CALIBRATION_PAGES,
        (CALIBRATION_ROUNDS, 1),
        (guest_pages, placement),
        Plan::whole,
    )?;
    let costs = RoundCosts::of(&b.samples, b.tsc_hz, KVM_WSS, kind)?;
    median(costs.us_per_touch.iter().copied()).ok_or(ProbeError::NoTouches {
        side: KVM_WSS,
        tracker: kind.name(),
        round: 1,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot of running totals with no hold time (also used by the
    /// bench's tests).
    pub(crate) fn snap(cycles_total: u64, touches_total: u64, tracked: u64) -> Snapshot {
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

    #[test]
    fn touch_order_skips_every_fourth_page() {
        let order: Vec<u64> = (0..9).map(probe_touch_order).collect();
        assert_eq!(order, vec![0, 1, 2, 4, 5, 6, 8, 9, 10]);
        // The last touch of a 1024-page region is its page 1022.
        assert_eq!(
            probe_touch_order(probe_tracked_touches(1024, false) - 1),
            1022
        );
    }

    #[test]
    fn sizes_hold_the_region_in_whole_2m_pages() {
        assert_eq!(sizes_for(1024), Some((4 << 20, 20 << 20)));
        assert_eq!(sizes_for(1), Some((4096, 18 << 20)));
        assert_eq!(sizes_for(u64::MAX / 4096 + 1), None);
        assert_eq!(sizes_for(u64::MAX / 4096), None);
    }
}
