//! The mprotect tracker on real guests: it must report exactly the armed
//! pages the guest touched, never change what the guest computes, and cope
//! with faults on code and stack pages.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use kvm_wss::track::mprotect::MprotectTracker;
use kvm_wss::track::{RamPage, Tracker};
use wss_abi::{PAGE_SIZE, RAM_BASE};

const RAM_PAGES: u64 = common::PROBE_MEM / PAGE_SIZE;

#[test]
fn probe_reports_exactly_the_armed_pages_it_touched() {
    if !common::kvm_available("probe_reports_exactly_the_armed_pages_it_touched") {
        return;
    }
    let t = common::check_exact_tracking("mprotect", false, |m| {
        MprotectTracker::new(m.memory()).expect("tracker")
    });
    let stats = t.tracker.stats();
    // Each probe touch is one aligned 8-byte access: one page, decoded.
    for c in [
        "unattributed",
        "fallback_restores",
        "split_accesses",
        "string_ops",
        "stack_ops",
        "decode_failures",
        "code_unreadable",
        "translation_failures",
        "kernel_gpa",
    ] {
        assert_eq!(stats.counters[c], 0, "counter {c}");
    }
}

#[test]
fn code_and_stack_pages_armed_from_boot() {
    if !common::kvm_available("code_and_stack_pages_armed_from_boot") {
        return;
    }
    // RUST_LOG=kvm_wss::track::mprotect=trace lists every fault.
    let _ = env_logger::builder().is_test(true).try_init();
    let probe = || {
        common::boot(
            "probe",
            common::PROBE_MEM,
            common::PROBE_WSS,
            &[("rounds", "1")],
            false,
        )
    };
    let plain = probe();
    let plain_mem = Arc::clone(plain.memory());
    common::run_probe(plain, Arc::new(common::Untracked), 1, |_, _| Vec::new());
    let base = plain_mem.status();

    // All of RAM: image, stack and the data region.
    let machine = probe();
    let first = machine.layout.data_first_page();
    let entry = machine.vcpu.regs().expect("regs").rip;
    let entry_page = (entry - RAM_BASE) / PAGE_SIZE;
    let stack_page = (machine.layout.stack_top - 8 - RAM_BASE) / PAGE_SIZE;
    let memory = Arc::clone(machine.memory());
    let tracker = MprotectTracker::new(&memory).expect("tracker");
    let all: Vec<RamPage> = (0..RAM_PAGES).collect();
    tracker.arm(&all).expect("arm");
    common::run_to_exit(machine, Arc::clone(&tracker).fault_handler(), None);
    let touched = tracker.collect().expect("collect");

    let stats = tracker.stats();
    println!("mprotect armed-from-boot stats: {stats:?}");
    println!(
        "touched below the data region: {:?}",
        touched.iter().filter(|&&p| p < first).collect::<Vec<_>>()
    );
    // The probe writes its whole region first, and nothing else there.
    let data: Vec<RamPage> = touched.iter().copied().filter(|&p| p >= first).collect();
    assert_eq!(
        data,
        (first..first + common::PROBE_REGION).collect::<Vec<_>>()
    );
    assert!(touched.contains(&entry_page), "entry page {entry_page}");
    assert!(touched.contains(&stack_page), "top stack page {stack_page}");
    assert!(stats.counters["code_fetches"] >= 1);
    assert!(stats.counters["stack_ops"] >= 1);
    for c in [
        "unattributed",
        "fallback_restores",
        "decode_failures",
        "code_unreadable",
    ] {
        assert_eq!(stats.counters[c], 0, "counter {c}");
    }
    // Every fault found at least one armed page.
    assert!(stats.faults <= touched.len() as u64);

    let status = memory.status();
    assert!(base.checksum_valid != 0 && status.checksum_valid != 0);
    assert_eq!(
        status.checksum, base.checksum,
        "tracking changed guest memory"
    );
}

#[test]
fn no_sample_is_lost_at_short_intervals() {
    if !common::kvm_available("no_sample_is_lost_at_short_intervals") {
        return;
    }
    // Every boundary holds the vCPU, and faults are handled on the vCPU
    // thread before it can be held: a fault always meets the arm epoch it
    // hit, so none is left for the restore-everything fallback.
    for guest in ["hotset", "zipf"] {
        let out = common::run(
            &common::RunSpec {
                tracker: kvm_wss::track::TrackerKind::Mprotect,
                wss: 64 << 20,
                mem: 128 << 20,
                sample_pages: 400,
                interval: std::time::Duration::from_millis(100),
                duration: std::time::Duration::from_secs(5),
                ..common::RunSpec::new(guest)
            }
            .config(),
        );
        let stats = &out.summary.tracker_stats.mechanism;
        assert!(
            out.rows.len() >= 20,
            "{guest}: {} intervals",
            out.rows.len()
        );
        assert!(
            out.summary.tracked_faults.unwrap_or(0) > 100,
            "{guest}: faults"
        );
        for c in ["fallback_restores", "fallback_pages", "unattributed"] {
            assert_eq!(stats[c], 0, "{guest}: {c}");
        }
    }
}
