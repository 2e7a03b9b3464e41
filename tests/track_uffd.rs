//! The uffd tracker against the `probe` guest, whose accesses are known
//! exactly: it must report every armed page the guest read or wrote, and
//! nothing else, without changing what the guest computes.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use kvm_wss::track::Tracker;
use kvm_wss::track::uffd::UffdTracker;

#[test]
fn uffd_reports_exactly_the_touched_armed_pages() {
    if !common::kvm_available("uffd_reports_exactly_the_touched_armed_pages") {
        return;
    }
    let t = common::check_exact_tracking("uffd", false, |m| {
        UffdTracker::new(m.memory())
            .unwrap_or_else(|e| panic!("uffd tracker: {}", kvm_wss::error_chain(&e)))
    });
    let stats = t.tracker.stats();
    assert_eq!(stats.counters["handler_errors"], 0);
    let armed: u64 = t.rounds.iter().map(|r| r.armed.len() as u64).sum();
    assert_eq!(
        stats.counters["disarmed_pages"]
            + stats.counters["continue_eexist"]
            + stats.counters["left_unmapped_pages"],
        armed - t.tracked,
        "collect installs every untouched armed page again or leaves it unmapped"
    );
    // A page left unmapped costs at most one untracked fault later.
    assert!(stats.counters["lazy_refaults"] <= stats.counters["left_unmapped_pages"]);
    // The probe's first touches of its region were holes in the memfd,
    // filled by the handler at their missing faults; tracking allocates
    // none itself (the unit tests check armed holes stay holes).
    assert!(stats.counters["zero_filled_pages"] > 0);
}
