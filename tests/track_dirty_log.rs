//! The dirty-log tracker against the `probe` guest: it sees writes only, so
//! it must report exactly the armed pages the guest wrote.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};

use kvm_wss::track::dirty_log::DirtyLogTracker;
use kvm_wss::track::{Tracker, TrackerKind};

/// The guests of this file's tests run one at a time: until the sampler
/// holds the vCPU at interval boundaries, a guest that writes while the
/// sampler collects and re-arms is counted by the truth and not by the
/// tracker, and two guests on two cores make that far likelier.
static ONE_GUEST: Mutex<()> = Mutex::new(());

fn one_guest() -> MutexGuard<'static, ()> {
    ONE_GUEST.lock().unwrap_or_else(PoisonError::into_inner)
}

#[test]
fn dirty_log_reports_exactly_the_written_armed_pages() {
    if !common::kvm_available("dirty_log_reports_exactly_the_written_armed_pages") {
        return;
    }
    let _one = one_guest();
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

/// The dirty-log tracker, but every arm first makes KVM drop its shadow
/// mappings of guest RAM (an mprotect round trip on the host mapping runs
/// the MMU notifier), as host reclaim or migration may at any time.
struct Zapping {
    inner: std::sync::Arc<DirtyLogTracker>,
    ram: (usize, usize),
}

impl Tracker for Zapping {
    fn kind(&self) -> TrackerKind {
        self.inner.kind()
    }
    fn arm(&self, pages: &[kvm_wss::track::RamPage]) -> Result<(), kvm_wss::track::TrackError> {
        let (addr, len) = self.ram;
        for prot in [libc::PROT_READ, libc::PROT_READ | libc::PROT_WRITE] {
            // SAFETY: `addr..addr + len` is guest RAM's host mapping, alive
            // while the machine is; it is made read-only and writable again
            // before the guest runs on, and the VMM does not write it.
            let r = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) };
            assert_eq!(r, 0, "mprotect: {}", std::io::Error::last_os_error());
        }
        self.inner.arm(pages)
    }
    fn collect(&self) -> Result<Vec<kvm_wss::track::RamPage>, kvm_wss::track::TrackError> {
        self.inner.collect()
    }
    fn touched_so_far(&self) -> usize {
        self.inner.touched_so_far()
    }
    fn stats(&self) -> kvm_wss::track::TrackerStats {
        self.inner.stats()
    }
}

#[test]
fn dirty_log_ignores_reads_of_pages_written_earlier_after_a_zap() {
    if !common::kvm_available("dirty_log_ignores_reads_of_pages_written_earlier_after_a_zap") {
        return;
    }
    let _one = one_guest();
    // The probe writes its whole region before round 0, so every page has
    // its guest Dirty bit set; then each round reads class 0 and 2 pages.
    // Without clearing the bits at arming, the reads of class 0 pages after
    // the zap would map them writable and be reported as writes.
    let t = common::check_exact_tracking("dirty-log, zapped at every arm", true, |m| {
        let memory = m.memory();
        Zapping {
            inner: DirtyLogTracker::new(&m.vm)
                .unwrap_or_else(|e| panic!("dirty-log tracker: {}", kvm_wss::error_chain(&e))),
            ram: (memory.ram_host_addr(), memory.layout().ram_size as usize),
        }
        .into()
    });
    assert!(t.tracker.stats().counters["pte_dirty_cleared"] >= common::PROBE_REGION);
}

/// Runs paced `seq` under dirty-log with exhaustive estimation and checks
/// that every full interval's estimate is exactly the guest's count of
/// written pages. The first interval is the guest's first sweep, where
/// every touch is the first of its page: with 2 MiB guest pages, reads
/// there used to be logged as writes.
fn assert_exhaustive_is_exact(what: &str, params: &[(&str, &str)]) -> Vec<(u64, f64)> {
    use std::time::Duration;

    use common::{RunSpec, run};
    use kvm_wss::estimate::EstimatorKind;

    let out = run(&RunSpec {
        tracker: TrackerKind::DirtyLog,
        estimator: EstimatorKind::Exhaustive,
        mem: 128 << 20,
        wss: 32 << 20,
        duration: Duration::from_secs(4),
        interval: Duration::from_secs(1),
        params,
        ..RunSpec::new("seq")
    }
    .config());
    assert!(
        matches!(out.end, kvm_wss::run::RunEnd::Duration),
        "{what}: {:?}",
        out.end
    );
    assert_eq!(
        out.summary.compared_against,
        kvm_wss::analysis::accuracy::TruthColumn::Writes
    );
    let rows: Vec<(u64, f64)> = out
        .rows
        .iter()
        .filter(|r| r.full)
        .map(|r| (r.true_wss_write_pages, r.est_wss_pages.unwrap_or(-1.0)))
        .collect();
    assert!(
        rows.len() >= 3,
        "{what}: only {} full intervals",
        rows.len()
    );
    for (i, &(truth, est)) in rows.iter().enumerate() {
        assert_eq!(
            est, truth as f64,
            "{what}: interval {i} estimated {est} written pages, the guest wrote {truth}; all: {rows:?}"
        );
    }
    rows
}

#[test]
fn exhaustive_dirty_log_counts_exactly_the_written_pages() {
    if !common::kvm_available("exhaustive_dirty_log_counts_exactly_the_written_pages") {
        return;
    }
    let _one = one_guest();
    // 8192 accesses a second over 8192 pages, half of them writes: the
    // first interval is all first touches.
    let rows = assert_exhaustive_is_exact("seq rate=8192", &[("rate", "8192")]);
    assert!(
        rows.iter().all(|&(truth, _)| (3000..5200).contains(&truth)),
        "about half of each interval's 8192 touches are writes: {rows:?}"
    );
}

#[test]
fn exhaustive_dirty_log_reports_no_writes_of_a_read_only_guest() {
    if !common::kvm_available("exhaustive_dirty_log_reports_no_writes_of_a_read_only_guest") {
        return;
    }
    let _one = one_guest();
    let rows =
        assert_exhaustive_is_exact("read-only seq", &[("rate", "8192"), ("write_ratio", "0")]);
    assert!(rows.iter().all(|&(truth, _)| truth == 0), "{rows:?}");
}

#[test]
fn a_run_refuses_dirty_log_on_2m_guest_pages() {
    // Checked before anything is booted: no KVM needed.
    let cfg = common::RunSpec {
        tracker: TrackerKind::DirtyLog,
        guest_pages: Some(kvm_wss::vmm::paging::GuestPageSize::Size2M),
        ..common::RunSpec::new("seq")
    }
    .config();
    let dir = tempfile::tempdir().expect("tempdir");
    match kvm_wss::run::run(&cfg, dir.path()) {
        Err(kvm_wss::run::RunError::GuestPages(_)) => {}
        Err(e) => panic!("wrong error: {}", kvm_wss::error_chain(&e)),
        Ok(_) => panic!("dirty-log ran on 2 MiB guest pages"),
    }
}
