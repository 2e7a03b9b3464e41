//! `bench trackers`: each tracker's cost per tracked touch, measured by the
//! guest, once through kvm-wss (the real tracker from `track::create`, all
//! its bookkeeping) and once through the floor (floor.rs: the same kernel
//! mechanism driven with the fewest steps). Same guest, same hook points,
//! same vCPU exit loop; the ratio is what kvm-wss adds.
//!
//! Each boot runs the `probe` guest for R + 1 rounds (R = `--rounds`),
//! every region page armed in each tracked round (calibrate.rs runs the
//! boots and defines the cost of a round). Boots alternate
//! kvm-wss, floor, kvm-wss, floor, ... (R repetitions of each), so machine
//! noise hits both sides alike, and all of it runs under `SCHED_FIFO` when
//! allowed (realtime.rs), so that other processes' time slices stay out of
//! the rounds.

use serde::Serialize;

use super::realtime::Realtime;
use super::{BenchError, floor, median};
use crate::calibrate::{
    self, KVM_WSS, MakeDriver, Plan, RoundCosts, RoundSample, boot_rounds, probe_tracked_touches,
};
use crate::track::TrackerKind;
use crate::vmm::affinity::Placement;
use crate::vmm::paging::GuestPageSize;

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

const FLOOR_RUNNING: &str = "floor (vCPU running)";

/// Which way a boot drives the mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    KvmWss,
    Floor,
    /// The floor, its arm and collect run on another thread while the
    /// guest runs (concurrent.rs).
    FloorRunning,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::KvmWss => KVM_WSS,
            Side::Floor => "floor",
            Side::FloorRunning => FLOOR_RUNNING,
        }
    }

    /// The side's name and driver, as `calibrate::boot_rounds` takes them.
    pub fn driver(self) -> (&'static str, MakeDriver) {
        match self {
            Side::KvmWss => (KVM_WSS, calibrate::tracker_driver),
            Side::Floor => ("floor", floor::create),
            Side::FloorRunning => (FLOOR_RUNNING, super::concurrent::floor_running),
        }
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
        let costs = RoundCosts::of(samples, tsc_hz, side.name(), tracker)?;
        Ok(BootCost {
            us_per_touch: costs.us_per_touch,
            tracked_touches: samples.iter().skip(1).map(|s| s.tracked).collect(),
            untracked_us_per_touch: costs.untracked_us_per_touch,
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

/// Refuses a probe region or round count no boot can measure.
pub(super) fn check_probe(pages: u64, rounds: u64) -> Result<(), BenchError> {
    if pages < MIN_PAGES {
        return Err(BenchError::TooFewPages {
            got: pages,
            min: MIN_PAGES,
        });
    }
    if rounds == 0 {
        return Err(BenchError::NoRounds);
    }
    Ok(())
}

/// Runs the benchmark: for each tracker, `rounds` repetitions of a kvm-wss
/// boot then a floor boot, each with `rounds` tracked rounds over a region
/// of `pages` pages.
pub fn trackers(
    pages: u64,
    rounds: u64,
    guest_pages: GuestPageSize,
) -> Result<TrackersResult, BenchError> {
    check_probe(pages, rounds)?;
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
                boot(kind, side, pages, rounds, (guest_pages, Placement::Auto))
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

/// Boots the probe once and measures one side, every region page armed
/// each round.
pub(super) fn boot(
    kind: TrackerKind,
    side: Side,
    pages: u64,
    rounds: u64,
    placed: (GuestPageSize, Placement),
) -> Result<BootCost, BenchError> {
    let b = boot_rounds(kind, side.driver(), pages, (rounds, 1), placed, Plan::whole)?;
    let mut cost = BootCost::from_samples(&b.samples, b.tsc_hz, side, kind)?;
    if let Some(stats) = b.stats
        && stats.faults > 0
        && stats.fault_service_us > 0.0
    {
        cost.service_us_per_fault = Some(stats.fault_service_us / stats.faults as f64);
    }
    Ok(cost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::round_samples;
    use crate::calibrate::tests::snap;

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
}
