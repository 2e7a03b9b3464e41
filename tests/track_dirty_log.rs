//! The dirty-log tracker against the `probe` guest: it sees writes only, so
//! it must report exactly the armed pages the guest wrote.

mod common;

use kvm_wss::track::dirty_log::DirtyLogTracker;
use kvm_wss::track::{Tracker, TrackerKind};

#[test]
fn dirty_log_reports_exactly_the_written_armed_pages() {
    if !common::kvm_available("dirty_log_reports_exactly_the_written_armed_pages") {
        return;
    }
    let t = common::check_exact_tracking("dirty-log", true, |m| {
        DirtyLogTracker::new(&m.vm)
            .unwrap_or_else(|e| panic!("dirty-log tracker: {}", kvm_wss::error_chain(&e)))
    });
    assert_eq!(t.tracker.kind(), TrackerKind::DirtyLog);
    let stats = t.tracker.stats();
    // The kernel resolves these faults alone: nothing for the VMM to time.
    assert_eq!(stats.fault_service_us, 0.0);
    let armed: u64 = t.rounds.iter().map(|r| r.armed.len() as u64).sum();
    assert_eq!(
        stats.counters["armed_dirty"] + stats.counters["armed_clean"],
        armed
    );
    // The probe writes its whole region before round 0, so every page of
    // the first arm was dirty whichever way KVM started the bitmap.
    assert!(stats.counters["armed_dirty"] >= common::PROBE_REGION);
    // Written pages are classes 1 and 2: fewer than the pages touched.
    let touched_any: u64 = t
        .rounds
        .iter()
        .flat_map(|r| r.armed.iter())
        .filter(|&&p| {
            p < t.first + common::PROBE_REGION && common::probe_touched(p, t.first, false)
        })
        .count() as u64;
    assert!(t.tracked < touched_any);
}
