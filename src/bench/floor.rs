//! The floor of `bench trackers`: each kernel mechanism driven with the
//! fewest possible steps and no tracker bookkeeping, over the probe's whole
//! region. It uses the trackers' syscall wrappers, never their state.
//!
//! Each round arms the plan's pages (the whole region, one run, for the
//! touch benchmark; scattered pages for the arming benchmark):
//!
//! - mprotect: one `mprotect(PROT_NONE)` per run. The fault handler knows
//!   the probe's order (it touches pages in increasing order, skipping
//!   every fourth, see guest-programs/src/bin/probe.rs), so it restores the
//!   next expected armed page with no decoding, no page walk and no lock.
//!   Collect restores every run.
//! - uffd: a userfaultfd in minor mode on RAM and a handler thread that
//!   reads fault events and `UFFDIO_CONTINUE`s them. Arming is
//!   `process_madvise(MADV_DONTNEED)` over the runs, 1024 per call (the
//!   tracker's `Zapper`).
//! - dirty-log: one `KVM_CLEAR_DIRTY_LOG` over the armed pages per round,
//!   one `KVM_GET_DIRTY_LOG` to count.
//!
//! Each counts what it caught (a relaxed atomic add at most) so that its
//! cost divides by the same kind of touches as the tracker's.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use wss_abi::PAGE_SIZE;

use crate::calibrate::{Driver, Mechanism, Plan, Region};
use crate::track::dirty_log::{self, ClearWindow};
use crate::track::page_bits::dense_bit;
use crate::track::uffd_ram::{self, HandlerError};
use crate::track::uffd_sys::{Event, EventBuffer, Userfaultfd};
use crate::track::zap::Zapper;
use crate::track::{RamPage, TrackError, TrackerKind, mprotect, runs};
use crate::vmm::machine::Machine;
use crate::vmm::memory::GuestMemory;
use crate::vmm::vcpu::Vcpu;
use crate::vmm::vcpu_thread::{FaultError, FaultHandler};
use crate::vmm::vm::DirtyLog;

/// Fault messages read per `read` on the userfaultfd, as the tracker does.
const EVENT_BATCH: usize = 64;

/// The floor for `kind` on a booted probe, and the fault handler the vCPU
/// loop needs (mprotect only).
pub(crate) fn create(
    kind: TrackerKind,
    machine: &Machine,
    region: Region,
    plan: Plan,
    cpu: Option<usize>,
) -> Result<Driver, TrackError> {
    Ok(match kind {
        TrackerKind::Mprotect => {
            // The armed pages the probe touches, in its order.
            let touched = plan
                .rounds
                .iter()
                .map(|armed| {
                    armed
                        .iter()
                        .copied()
                        .filter(|p| (p - region.first) % 4 != 3)
                        .collect()
                })
                .collect();
            let floor = Arc::new(MprotectFloor {
                memory: Arc::clone(machine.memory()),
                plan,
                touched,
                round: AtomicU64::new(0),
                next: AtomicU64::new(0),
            });
            Driver {
                faults: Some(floor.clone()),
                tracker: None,
                mechanism: Box::new(MprotectFloorArm(floor)),
            }
        }
        TrackerKind::Uffd => {
            let floor = UffdFloor::new(machine.memory(), plan)?;
            if let Some(cpu) = cpu {
                floor.pin_handler(cpu)?;
            }
            Driver {
                mechanism: Box::new(floor),
                faults: None,
                tracker: None,
            }
        }
        TrackerKind::DirtyLog => Driver {
            mechanism: Box::new(DirtyLogFloor::new(machine, plan)?),
            faults: None,
            tracker: None,
        },
        TrackerKind::None => {
            return Err(TrackError::Setup {
                tracker: "floor",
                what: "there is no floor for no tracking".into(),
                source: None,
            });
        }
    })
}

/// Why the mprotect floor could not let a faulting access proceed.
#[derive(Debug, thiserror::Error)]
enum FloorFaultError {
    #[error(
        "mprotect floor: fault {fault} in a round where the probe touches {expected} armed pages"
    )]
    Unexpected { fault: u64, expected: usize },
    #[error("mprotect floor")]
    Restore(#[source] TrackError),
}

struct MprotectFloor {
    memory: Arc<GuestMemory>,
    plan: Plan,
    /// Per plan round, the armed pages the probe touches, in its order.
    touched: Vec<Vec<RamPage>>,
    /// The round armed, and faults so far in it. Only the vCPU thread uses
    /// them (the sync hook and the fault handler both run there); atomic
    /// for `Sync`.
    round: AtomicU64,
    next: AtomicU64,
}

impl MprotectFloor {
    fn expected(&self) -> &[RamPage] {
        let n = self.touched.len().max(1) as u64;
        let round = self.round.load(Ordering::Relaxed).saturating_sub(1) % n;
        self.touched.get(round as usize).map_or(&[], Vec::as_slice)
    }

    fn protect_all(&self, armed: bool) -> Result<(), TrackError> {
        let round = self.round.load(Ordering::Relaxed);
        runs(self.plan.armed(round))
            .try_for_each(|(first, n)| mprotect::protect(&self.memory, first, n, armed))
    }
}

impl FaultHandler for MprotectFloor {
    fn on_memory_fault(&self, _vcpu: &Vcpu, _gpa: Option<u64>) -> Result<(), FaultError> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let expected = self.expected();
        let Some(&page) = expected.get(k as usize) else {
            return Err(FloorFaultError::Unexpected {
                fault: k + 1,
                expected: expected.len(),
            }
            .into());
        };
        mprotect::protect(&self.memory, page, 1, false)
            .map_err(|e| FloorFaultError::Restore(e).into())
    }
}

/// The sync hook's handle on the mprotect floor.
struct MprotectFloorArm(Arc<MprotectFloor>);

impl Mechanism for MprotectFloorArm {
    fn arm(&mut self, round: u64) -> Result<(), TrackError> {
        let f = &self.0;
        f.round.store(round, Ordering::Relaxed);
        f.next.store(0, Ordering::Relaxed);
        f.protect_all(true)
    }

    /// Restores the untouched pages too, in the same syscalls, so that
    /// nothing faults outside the measured rounds.
    fn collect(&mut self) -> Result<u64, TrackError> {
        let f = &self.0;
        f.protect_all(false)?;
        let caught = f.next.load(Ordering::Relaxed);
        let expected = f.expected().len() as u64;
        if caught != expected {
            return Err(TrackError::Miscount {
                tracker: "mprotect floor",
                caught,
                expected,
            });
        }
        Ok(caught)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // An Option stays consistent across a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct UffdFloor {
    /// Keeps the registered mapping alive.
    memory: Arc<GuestMemory>,
    plan: Plan,
    zapper: Zapper,
    caught: Arc<AtomicU64>,
    /// Why the handler thread stopped, if it failed.
    failure: Arc<Mutex<Option<Arc<HandlerError>>>>,
    stop: EventFd,
    handler: Option<JoinHandle<()>>,
}

impl UffdFloor {
    fn new(memory: &Arc<GuestMemory>, plan: Plan) -> Result<UffdFloor, TrackError> {
        let setup = |what: &str, source| TrackError::Setup {
            tracker: "uffd floor",
            what: what.into(),
            source: Some(source),
        };
        let uffd = uffd_ram::open_minor(memory)?;
        let stop = EventFd::new(EFD_NONBLOCK).map_err(|e| setup("cannot create an eventfd", e))?;
        let stop_rx = stop
            .try_clone()
            .map_err(|e| setup("cannot duplicate the eventfd", e))?;
        let caught = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(Mutex::new(None));
        let handler = {
            let (caught, failure) = (Arc::clone(&caught), Arc::clone(&failure));
            let ram_host = memory.ram_host_addr();
            let ram_pages = memory.layout().ram_pages();
            std::thread::Builder::new()
                .name("uffd-floor".into())
                .spawn(move || {
                    if let Err(why) = serve(&uffd, &stop_rx, ram_host, ram_pages, &caught) {
                        *lock(&failure) = Some(Arc::new(why));
                        // Wakes every blocked access and lets later ones
                        // fault normally: the guest never waits on a
                        // handler that is gone.
                        let len = (ram_pages * PAGE_SIZE) as usize;
                        let _ = uffd.unregister(ram_host, len);
                    }
                })
                .map_err(|e| setup("cannot start the handler thread", e))?
        };
        Ok(UffdFloor {
            memory: Arc::clone(memory),
            plan,
            zapper: Zapper::new("uffd floor"),
            caught,
            failure,
            stop,
            handler: Some(handler),
        })
    }

    fn check(&self) -> Result<(), TrackError> {
        match lock(&self.failure).as_ref() {
            Some(why) => Err(TrackError::Handler("uffd floor", Arc::clone(why))),
            None => Ok(()),
        }
    }
}

/// The handler loop: wait, read the faults, continue each one.
fn serve(
    uffd: &Userfaultfd,
    stop: &EventFd,
    ram_host: usize,
    ram_pages: u64,
    caught: &AtomicU64,
) -> Result<(), HandlerError> {
    let pollfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pollfd(uffd.as_raw_fd()), pollfd(stop.as_raw_fd())];
    let mut buf = EventBuffer::new(EVENT_BATCH);
    loop {
        match uffd_ram::poll(&mut fds, -1) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HandlerError::Poll(e)),
        }
        if fds[1].revents != 0 {
            return Ok(());
        }
        if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(HandlerError::PollEvents(fds[0].revents));
        }
        let events = uffd.read_events(&mut buf).map_err(HandlerError::Read)?;
        for event in events {
            if let Event::Pagefault { address, .. } = event.map_err(HandlerError::Message)? {
                let page: RamPage = (address as usize)
                    .checked_sub(ram_host)
                    .map(|off| off as u64 / PAGE_SIZE)
                    .filter(|&p| p < ram_pages)
                    .ok_or(HandlerError::OutsideRam(address as usize))?;
                // Counted before the install wakes the guest, which may
                // then reach the round's end and collect at once.
                caught.fetch_add(1, Ordering::Release);
                uffd_ram::install(uffd, ram_host, page, 1).map_err(HandlerError::Install)?;
            }
        }
    }
}

impl UffdFloor {
    /// Puts the handler beside the vCPU, as kvm-wss puts its own.
    fn pin_handler(&self, cpu: usize) -> Result<bool, TrackError> {
        crate::vmm::affinity::pin_if_running(self.handler.as_ref(), cpu)
            .map_err(|e| crate::track::pin_error("uffd floor", cpu, e))
    }
}

impl Mechanism for UffdFloor {
    fn arm(&mut self, round: u64) -> Result<(), TrackError> {
        self.check()?;
        self.caught.store(0, Ordering::Relaxed);
        let armed: Vec<(RamPage, u64)> = runs(self.plan.armed(round)).collect();
        // The plan's pages lie in the RAM mapping that `memory` keeps alive.
        self.zapper
            .zap_runs("uffd floor", self.memory.ram_host_addr(), &armed)
    }

    /// Untouched pages stay zapped: the next arm zaps them again anyway.
    fn collect(&mut self) -> Result<u64, TrackError> {
        self.check()?;
        Ok(self.caught.swap(0, Ordering::Acquire))
    }
}

impl Drop for UffdFloor {
    fn drop(&mut self) {
        uffd_ram::stop_handler("uffd floor", &self.stop, self.handler.take());
    }
}

struct DirtyLogFloor {
    vm: File,
    /// The CLEAR request for each plan round, built once (`None`: the
    /// round arms nothing).
    windows: Vec<Option<ClearWindow>>,
    plan: Plan,
    round: u64,
    slot_pages: u64,
    log: Vec<u64>,
}

impl DirtyLogFloor {
    fn new(machine: &Machine, plan: Plan) -> Result<DirtyLogFloor, TrackError> {
        let setup = |what: &str| TrackError::Setup {
            tracker: "dirty-log floor",
            what: what.into(),
            source: None,
        };
        if machine.vm.dirty_log() == DirtyLog::Off {
            return Err(setup("the VM was created without dirty logging"));
        }
        let slot_pages = machine.layout.ram_pages();
        let windows = plan
            .rounds
            .iter()
            .map(|armed| dirty_log::clear_window(armed, slot_pages))
            .collect();
        Ok(DirtyLogFloor {
            vm: dirty_log::dup_vm_fd(&machine.vm)?,
            windows,
            plan,
            round: 0,
            slot_pages,
            log: vec![0; slot_pages.div_ceil(64) as usize],
        })
    }
}

impl Mechanism for DirtyLogFloor {
    fn arm(&mut self, round: u64) -> Result<(), TrackError> {
        self.round = round;
        let n = self.windows.len().max(1) as u64;
        let i = (round.saturating_sub(1) % n) as usize;
        match self.windows.get_mut(i) {
            Some(Some(window)) => dirty_log::clear_log(&self.vm, window),
            _ => Ok(()),
        }
    }

    fn collect(&mut self) -> Result<u64, TrackError> {
        dirty_log::get_log(&self.vm, self.slot_pages, &mut self.log)?;
        let armed = self.plan.armed(self.round);
        Ok(armed.iter().filter(|&&p| dense_bit(&self.log, p)).count() as u64)
    }
}
