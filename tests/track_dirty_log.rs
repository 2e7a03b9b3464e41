//! The dirty-log tracker against the `probe` guest, whose accesses are
//! known exactly: it must report every armed page the guest wrote, and no
//! page it only read or never touched, without changing what the guest
//! computes.

mod common;

use std::sync::Arc;

use kvm_wss::track::dirty_log::DirtyLogTracker;
use kvm_wss::track::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use kvm_wss::vmm::vcpu_thread::FaultHandler;

const MEM: u64 = 64 << 20;
const WSS: u64 = 1 << 20;
/// Pages of the probe's region (WSS / 4 KiB).
const REGION: u64 = 256;
const ROUNDS: u64 = 3;
const PARAMS: &[(&str, &str)] = &[("rounds", "3")];

/// Round 0: the whole region. Round 1: every third page. Round 2: a few
/// pages of each class, plus pages past the region the guest never touches,
/// in the same 64-page words as region pages and in words of their own.
fn choose(round: u64, first: RamPage) -> Vec<RamPage> {
    match round {
        0 => (first..first + REGION).collect(),
        1 => (first..first + REGION).step_by(3).collect(),
        _ => [0, 1, 2, 3, 9, 10, 11, 255]
            .iter()
            .map(|i| first + i)
            .chain(first + REGION..first + REGION + 4)
            .chain([first + REGION + 1000])
            .collect(),
    }
}

/// Tracks nothing: the baseline run.
struct Untracked;

impl Tracker for Untracked {
    fn kind(&self) -> TrackerKind {
        TrackerKind::None
    }
    fn arm(&self, _: &[RamPage]) -> Result<(), TrackError> {
        Ok(())
    }
    fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
        Ok(Vec::new())
    }
    fn touched_so_far(&self) -> usize {
        0
    }
    fn stats(&self) -> TrackerStats {
        TrackerStats::default()
    }
    fn fault_handler(self: Arc<Self>) -> Option<Arc<dyn FaultHandler>> {
        None
    }
}

/// What the probe reported at exit: its checksum and its timed touches.
struct Outcome {
    checksum: u64,
    cycles: u64,
    touches: u64,
    tsc_hz: u64,
}

impl Outcome {
    fn us_per_touch(&self) -> f64 {
        self.cycles as f64 / self.touches as f64 / self.tsc_hz as f64 * 1e6
    }
}

fn outcome(memory: &kvm_wss::vmm::memory::GuestMemory, tsc_hz: u64) -> Outcome {
    let s = memory.status();
    assert_ne!(s.checksum_valid, 0, "the probe must publish its checksum");
    Outcome {
        checksum: s.checksum,
        cycles: s.user[0],
        touches: s.user[1],
        tsc_hz,
    }
}

fn untracked() -> Outcome {
    let machine = common::boot("probe", MEM, WSS, PARAMS, false);
    let memory = Arc::clone(machine.memory());
    let tsc_hz = machine.tsc_hz;
    let (rounds, _) = common::run_probe(machine, Arc::new(Untracked), ROUNDS, choose);
    assert!(rounds.iter().all(|r| r.touched.is_empty()));
    outcome(&memory, tsc_hz)
}

#[test]
fn dirty_log_reports_exactly_the_written_armed_pages() {
    if !common::kvm_available("dirty_log_reports_exactly_the_written_armed_pages") {
        return;
    }
    let base = untracked();

    let machine = common::boot("probe", MEM, WSS, PARAMS, true);
    let memory = Arc::clone(machine.memory());
    let tsc_hz = machine.tsc_hz;
    let first = machine.layout.data_first_page();
    let tracker = DirtyLogTracker::new(&machine.vm)
        .unwrap_or_else(|e| panic!("dirty-log tracker: {}", kvm_wss::error_chain(&e)));
    assert_eq!(tracker.kind(), TrackerKind::DirtyLog);
    assert!(tracker.kind().writes_only());
    let (rounds, _) = common::run_probe(machine, tracker.clone(), ROUNDS, choose);

    let mut tracked = 0u64;
    for (r, round) in rounds.iter().enumerate() {
        assert_eq!(round.armed, choose(r as u64, first));
        let expected: Vec<RamPage> = round
            .armed
            .iter()
            .copied()
            .filter(|&p| p < first + REGION && common::probe_touched(p, first, true))
            .collect();
        assert_eq!(round.touched, expected, "round {r}");
        tracked += expected.len() as u64;
    }
    // 128 + 42 + 4 written armed pages; read-only and untouched armed
    // pages are never reported.
    assert_eq!(tracked, 174);

    let stats = tracker.stats();
    assert_eq!(stats.faults, tracked);
    assert_eq!(stats.fault_service_us, 0.0);
    let armed: u64 = rounds.iter().map(|r| r.armed.len() as u64).sum();
    assert_eq!(
        stats.counters["armed_dirty"] + stats.counters["armed_clean"],
        armed
    );
    // The probe writes its whole region before round 0, so every page of
    // the first arm was dirty whichever way KVM started the bitmap.
    assert!(stats.counters["armed_dirty"] >= REGION);
    assert_eq!(tracker.touched_so_far(), 0, "nothing armed after collect");

    let run = outcome(&memory, tsc_hz);
    assert_eq!(run.checksum, base.checksum, "tracking changed guest memory");
    assert_eq!(run.touches, base.touches);

    let extra_us = (run.cycles.saturating_sub(base.cycles)) as f64 / tsc_hz as f64 * 1e6;
    println!(
        "dirty-log: guest sees {:.3} us/touch untracked, {:.3} us/touch tracked ({} touches, \
         {} tracked writes): {:.1} us per tracked write; arm {:.0} us, collect {:.0} us, \
         counters {:?}",
        base.us_per_touch(),
        run.us_per_touch(),
        run.touches,
        tracked,
        extra_us / tracked as f64,
        stats.arm_us,
        stats.collect_us,
        stats.counters,
    );
}
