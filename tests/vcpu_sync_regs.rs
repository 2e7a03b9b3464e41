//! Sync registers: at a tracked fault, the registers KVM stored in the run
//! page must be the ones `KVM_GET_REGS`/`KVM_GET_SREGS` return, since the
//! mprotect tracker attributes faults from them.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kvm_wss::track::mprotect::MprotectTracker;
use kvm_wss::track::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use kvm_wss::vmm::vcpu::Vcpu;
use kvm_wss::vmm::vcpu_thread::{FaultError, FaultHandler};
use wss_abi::PAGE_SIZE;

/// The mprotect tracker, with every fault's registers checked first.
struct Checked {
    inner: Arc<MprotectTracker>,
    faults: AtomicU64,
    synced: AtomicU64,
    mismatches: Mutex<Vec<String>>,
}

impl Tracker for Checked {
    fn kind(&self) -> TrackerKind {
        self.inner.kind()
    }
    fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError> {
        self.inner.arm(pages)
    }
    fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
        self.inner.collect()
    }
    fn touched_so_far(&self) -> usize {
        self.inner.touched_so_far()
    }
    fn stats(&self) -> TrackerStats {
        self.inner.stats()
    }
    fn fault_handler(self: Arc<Self>) -> Option<Arc<dyn FaultHandler>> {
        Some(self)
    }
}

impl FaultHandler for Checked {
    fn wants_registers(&self) -> bool {
        true
    }

    fn on_memory_fault(&self, vcpu: &Vcpu, gpa: Option<u64>) -> Result<(), FaultError> {
        let synced = vcpu.exit_registers()?;
        let regs = vcpu.regs()?;
        let sregs = vcpu.sregs()?;
        self.faults.fetch_add(1, Ordering::Relaxed);
        if vcpu.syncs_registers() {
            self.synced.fetch_add(1, Ordering::Relaxed);
        }
        if synced != (regs, sregs) {
            let mut m = self.mismatches.lock().expect("lock");
            m.push(format!("synced {synced:?} vs {:?}", (regs, sregs)));
        }
        self.inner.on_memory_fault(vcpu, gpa)
    }
}

#[test]
fn synced_registers_at_faults_equal_the_ioctls() {
    if !common::kvm_available("synced_registers_at_faults_equal_the_ioctls") {
        return;
    }
    let wss = 256 * PAGE_SIZE;
    let machine = common::boot("probe", 16 << 20, wss, &[("rounds", "2")], false);
    let inner = MprotectTracker::new(machine.memory()).expect("tracker");
    let checked = Arc::new(Checked {
        inner,
        faults: AtomicU64::new(0),
        synced: AtomicU64::new(0),
        mismatches: Mutex::new(Vec::new()),
    });
    let tracker: Arc<dyn Tracker> = checked.clone();
    let (rounds, _) = common::run_probe(machine, tracker, 2, |_, first| {
        (first..first + 256).collect()
    });
    // Every touched page faulted once: 192 per round.
    assert!(rounds.iter().all(|r| r.touched.len() == 192), "{rounds:?}");
    assert!(checked.faults.load(Ordering::Relaxed) >= 2 * 192);
    // Hosts without KVM_CAP_SYNC_REGS read registers by ioctl: trivially
    // equal, so say which case ran.
    let synced = checked.synced.load(Ordering::Relaxed);
    eprintln!("{synced} of the faults used sync registers");
    let mismatches = checked.mismatches.lock().expect("lock");
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {:?}",
        mismatches.len(),
        &mismatches[..1]
    );
}
