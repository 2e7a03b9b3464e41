//! The mprotect tracker on real guests: it must report exactly the armed
//! pages the guest touched, never change what the guest computes, and cope
//! with faults on code and stack pages.

// tests/common (shared, not this file's to change) has a `v % 2 == 0` that
// clippy 1.95 flags; allowed here so this target stays clean with -D warnings.
mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kvm_wss::track::mprotect::MprotectTracker;
use kvm_wss::track::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use kvm_wss::vmm::exit::Stop;
use kvm_wss::vmm::machine::Machine;
use kvm_wss::vmm::vcpu_thread::{VcpuEnd, VcpuThread};
use wss_abi::{PAGE_SIZE, RAM_BASE, Status};

const MEM: u64 = 64 << 20;
const WSS: u64 = 1 << 20;
/// The probe's region: the first WSS / 4 KiB data pages.
const REGION: u64 = WSS / PAGE_SIZE;
const RAM_PAGES: u64 = MEM / PAGE_SIZE;

/// Arms nothing: the baseline the tracked runs are compared with.
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
}

/// Round 0: the whole region. Round 1: every third page. Round 2: a sparse
/// mix, plus pages past the region and at the end of RAM that the guest
/// never touches.
fn sample(round: u64, first: RamPage) -> Vec<RamPage> {
    let region = first..first + REGION;
    match round {
        0 => region.collect(),
        1 => region.step_by(3).collect(),
        _ => {
            let mut pages: Vec<RamPage> = region
                .filter(|p| (p - first).is_multiple_of(5) || (p - first) % 7 == 3)
                .collect();
            pages.extend(first + REGION..first + REGION + 40);
            pages.extend(RAM_PAGES - 8..RAM_PAGES);
            pages
        }
    }
}

fn expected_touched(armed: &[RamPage], first: RamPage) -> Vec<RamPage> {
    armed
        .iter()
        .copied()
        .filter(|&p| p < first + REGION && common::probe_touched(p, first, false))
        .collect()
}

/// Mean cycles per timed page access the probe measured.
fn mean_cycles(s: &Status) -> f64 {
    s.user[0] as f64 / s.user[1] as f64
}

fn probe(rounds: u64) -> Machine {
    common::boot("probe", MEM, WSS, &[("rounds", &rounds.to_string())], false)
}

#[test]
fn probe_reports_exactly_the_armed_pages_it_touched() {
    if !common::kvm_available("probe_reports_exactly_the_armed_pages_it_touched") {
        return;
    }
    let plain = probe(3);
    let plain_mem = Arc::clone(plain.memory());
    common::run_probe(plain, Arc::new(Untracked), 3, sample);
    let base = plain_mem.status();

    let machine = probe(3);
    let first = machine.layout.data_first_page();
    let tsc_hz = machine.tsc_hz as f64;
    let memory = Arc::clone(machine.memory());
    let tracker = MprotectTracker::new(&memory).expect("tracker");
    let (rounds, _) = common::run_probe(machine, tracker.clone(), 3, sample);

    let mut tracked_touches = 0;
    for (r, round) in rounds.iter().enumerate() {
        let expected = expected_touched(&round.armed, first);
        assert_eq!(round.touched, expected, "round {r}");
        tracked_touches += expected.len() as u64;
    }
    assert_eq!(tracked_touches, 192 + 64 + 60);

    let status = memory.status();
    assert!(base.checksum_valid != 0 && status.checksum_valid != 0);
    assert_eq!(
        status.checksum, base.checksum,
        "tracking changed guest memory"
    );
    assert_eq!(status.user[1], base.user[1]);

    let stats = tracker.stats();
    println!("mprotect probe stats: {stats:?}");
    // Each touch is one aligned 8-byte access: one fault, one page.
    assert_eq!(stats.faults, tracked_touches);
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
    assert_eq!(tracker.touched_so_far(), 0);

    // What a tracked touch costs the guest: its extra cycles over the
    // untracked run, spread over the touches that faulted.
    let extra_cycles = status.user[0] as f64 - base.user[0] as f64;
    println!(
        "probe mean per timed access: untracked {:.0} cycles ({:.3} us), tracked {:.0} cycles \
         ({:.3} us) over {} accesses; extra per tracked touch {:.1} us ({} touches); \
         VMM service {:.1} us per fault; tsc {:.0} MHz",
        mean_cycles(&base),
        mean_cycles(&base) / tsc_hz * 1e6,
        mean_cycles(&status),
        mean_cycles(&status) / tsc_hz * 1e6,
        status.user[1],
        extra_cycles / tracked_touches as f64 / tsc_hz * 1e6,
        tracked_touches,
        stats.fault_service_us / stats.faults as f64,
        tsc_hz / 1e6,
    );
}

/// Runs a machine to its exit with every page in `armed` armed from the
/// first instruction on, and returns the pages it touched.
fn run_armed_from_boot(
    machine: Machine,
    tracker: Arc<MprotectTracker>,
    armed: &[RamPage],
) -> Vec<RamPage> {
    tracker.arm(armed).expect("arm");
    let memory = Arc::clone(machine.memory());
    let Machine { vcpu, vm, kvm, .. } = machine;
    let (done_tx, done_rx) = mpsc::channel();
    let thread = VcpuThread::spawn(
        vcpu,
        memory,
        Instant::now(),
        Arc::clone(&tracker).fault_handler(),
        None,
        Box::new(move || {
            let _ = done_tx.send(());
        }),
    )
    .expect("spawn vcpu");
    let finished = done_rx.recv_timeout(Duration::from_secs(120)).is_ok();
    let report = thread.stop();
    drop((vm, kvm));
    assert!(
        finished,
        "guest did not finish within 120 s: {:?}",
        report.end
    );
    assert_eq!(report.end, VcpuEnd::Guest(Stop::Exit(0)));
    tracker.collect().expect("collect")
}

#[test]
fn code_and_stack_pages_armed_from_boot() {
    if !common::kvm_available("code_and_stack_pages_armed_from_boot") {
        return;
    }
    // RUST_LOG=kvm_wss::track::mprotect=trace lists every fault.
    let _ = env_logger::builder().is_test(true).try_init();
    let plain = probe(1);
    let plain_mem = Arc::clone(plain.memory());
    common::run_probe(plain, Arc::new(Untracked), 1, |_, _| Vec::new());
    let base = plain_mem.status();

    // All of RAM: image, stack and the data region.
    let machine = probe(1);
    let first = machine.layout.data_first_page();
    let entry = machine.vcpu.regs().expect("regs").rip;
    let entry_page = (entry - RAM_BASE) / PAGE_SIZE;
    let stack_page = (machine.layout.stack_top - 8 - RAM_BASE) / PAGE_SIZE;
    let memory = Arc::clone(machine.memory());
    let tracker = MprotectTracker::new(&memory).expect("tracker");
    let all: Vec<RamPage> = (0..RAM_PAGES).collect();
    let touched = run_armed_from_boot(machine, tracker.clone(), &all);

    let stats = tracker.stats();
    println!("mprotect armed-from-boot stats: {stats:?}");
    println!(
        "touched below the data region: {:?}",
        touched.iter().filter(|&&p| p < first).collect::<Vec<_>>()
    );
    // The probe writes its whole region first, and nothing else there.
    let data: Vec<RamPage> = touched.iter().copied().filter(|&p| p >= first).collect();
    assert_eq!(data, (first..first + REGION).collect::<Vec<_>>());
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
