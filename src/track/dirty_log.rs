//! The dirty-log tracker: KVM dirty logging on the RAM slot with manual
//! re-protection (`KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`). Sees writes only,
//! and the kernel handles every tracked write alone.
//!
//! KVM's dirty bitmap works in a pair with write protection: whenever KVM
//! installs a writable mapping of a page of a dirty-logged slot it sets the
//! page's bit, and `KVM_CLEAR_DIRTY_LOG` write-protects exactly the pages
//! whose bit it really cleared (`kvm_clear_dirty_log_protect` ANDs the
//! caller's mask with the bits that were set). So a clear bit always means
//! "no writable mapping": the next write faults into KVM and sets the bit.
//! That holds in both start states: without `KVM_DIRTY_LOG_INITIALLY_SET`
//! every page starts clean and unmapped (write-protected); with it every
//! page starts dirty and writable. Arming is therefore one CLEAR of the
//! sampled bits: pages whose bit was set get cleared and re-protected,
//! pages whose bit was already clear are already protected. A GET before
//! the CLEAR only counts which case each armed page was in; the CLEAR still
//! names every sampled page, so a write racing the arm is cleared too.
//!
//! `KVM_GET_DIRTY_LOG` in manual mode is a pure read of the bitmap, so
//! collecting (and `touched_so_far`) is one GET intersected with the armed
//! pages. Collect leaves the bits of written pages set (their mappings stay
//! writable). It cannot undo the protection of armed pages that were not
//! written, as KVM offers no way to make a page writable without a write:
//! each of those costs one in-kernel fault on its next write, if any, and
//! is writable from then on.
//!
//! Reads can be logged as writes, through the guest's Dirty bits. KVM here
//! uses shadow paging (PVM, no EPT). When a read faults on a page that has
//! no shadow mapping yet, KVM's guest page-table walker keeps write access
//! in the new mapping if the guest's leaf entry already has its Dirty bit
//! set (`protect_clean_gpte` in `paging_tmpl.h`), and a writable mapping
//! sets the page's bit in the dirty log (`make_spte`). With 2 MiB guest
//! pages one Dirty bit covers 512 tracked pages: once the guest writes any
//! of them, the first read of each neighbour is reported as a write (a
//! paced `seq`, half reads, reported nearly every page of its first sweep
//! as written). With 4 KiB guest pages the Dirty bit is the page's own, so
//! only a page the guest really wrote can be mapped writable, and a
//! measurement run with this tracker therefore always uses 4 KiB guest
//! pages ([`GUEST_PAGES`], checked by [`check_guest_pages`]). Pages armed
//! while mapped keep a read-only mapping after the CLEAR, so their reads
//! fault nowhere and are never reported.
//!
//! A page written in an earlier interval keeps its Dirty bit, though, and
//! KVM may drop its shadow mapping at any time (any MMU-notifier event on
//! the host range: reclaim, migration, NUMA balancing, an mprotect). Its
//! next read would then map it writable again and be logged. So arming also
//! clears the guest Dirty bit of every armed page whose log bit is set
//! (the pages written since they were last re-armed; no other page can
//! have it set, as the VMM builds the tables with Dirty clear and only a
//! logged write fault sets it), before the CLEAR write-protects them. The
//! next write faults, KVM sets the bit again and logs the page; a read maps
//! it read-only. With 2 MiB guest pages (`kvm-wss bench trackers` only)
//! there is no per-page bit to clear.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_clear_dirty_log, kvm_clear_dirty_log__bindgen_ty_1, kvm_dirty_log,
    kvm_dirty_log__bindgen_ty_1,
};
use vmm_sys_util::ioctl::ioctl_with_ref;

use std::sync::atomic::{AtomicU64, Ordering};

use super::page_bits::{dense_bit, word_and_mask};
use super::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::vmm::memory::GuestMemory;
use crate::vmm::paging::{GuestPageSize, PTE_DIRTY, pte_address};
use crate::vmm::vm::{DirtyLog, RAM_SLOT, Vm};
use wss_abi::{META_BASE, PAGE_SIZE, RAM_BASE};

const NAME: &str = "dirty-log";

/// kvm-ioctls does not wrap `KVM_CLEAR_DIRTY_LOG`, and its
/// `get_dirty_log` needs a `VmFd` while this tracker holds a dup'ed fd.
mod sys {
    use kvm_bindings::{KVMIO, kvm_clear_dirty_log, kvm_dirty_log};
    use vmm_sys_util::{ioctl_iow_nr, ioctl_iowr_nr};

    ioctl_iow_nr!(KVM_GET_DIRTY_LOG, KVMIO, 0x42, kvm_dirty_log);
    ioctl_iowr_nr!(KVM_CLEAR_DIRTY_LOG, KVMIO, 0xc0, kvm_clear_dirty_log);
}

/// The guest page size this tracker needs to report exactly the written
/// pages: 4 KiB, so that each tracked page has its own Dirty bit in the
/// guest's page tables. See the module comment.
pub const GUEST_PAGES: GuestPageSize = GuestPageSize::Size4K;

/// A guest page size that a measurement run with the tracker cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuestPagesError {
    #[error(
        "--tracker dirty-log needs --guest-pages 4k (its default there): with 2 MiB guest \
         pages, shadow-paging KVM logs first reads of a written 2 MiB page as writes"
    )]
    DirtyLogNeeds4K,
}

/// The guest page size of a run with `tracker` when none is asked for:
/// [`GUEST_PAGES`] for this tracker, 2 MiB (small page tables) otherwise.
pub fn default_guest_pages(tracker: TrackerKind) -> GuestPageSize {
    match tracker {
        TrackerKind::DirtyLog => GUEST_PAGES,
        _ => GuestPageSize::Size2M,
    }
}

/// Refuses the guest page sizes that would make `tracker` inexact: 2 MiB
/// pages with this tracker.
pub fn check_guest_pages(
    tracker: TrackerKind,
    pages: GuestPageSize,
) -> Result<(), GuestPagesError> {
    if tracker == TrackerKind::DirtyLog && pages != GUEST_PAGES {
        return Err(GuestPagesError::DirtyLogNeeds4K);
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and buffers only: still consistent after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One `KVM_CLEAR_DIRTY_LOG` request: `first_page` and `num_pages` in slot
/// pages, `bitmap` with bit `i` standing for page `first_page + i`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClearWindow {
    first_page: u64,
    num_pages: u64,
    bitmap: Vec<u64>,
}

/// The CLEAR request for `pages` (sorted, unique, all below `slot_pages`):
/// the smallest run of whole 64-page words that holds them, cut at the slot
/// end (the kernel wants `first_page` and `num_pages` multiples of 64
/// except where the window reaches the end of the slot), with only their
/// bits set. One ioctl whatever the sample; words without a sampled page
/// are skipped by the kernel.
pub(crate) fn clear_window(pages: &[RamPage], slot_pages: u64) -> Option<ClearWindow> {
    let (&lo, &hi) = (pages.first()?, pages.last()?);
    let first_word = lo / 64;
    let last_word = hi / 64;
    let first_page = first_word * 64;
    let end = ((last_word + 1) * 64).min(slot_pages);
    let mut bitmap = vec![0u64; (last_word - first_word + 1) as usize];
    for &p in pages {
        let (w, mask) = word_and_mask(p - first_page);
        bitmap[w] |= mask;
    }
    Some(ClearWindow {
        first_page,
        num_pages: end - first_page,
        bitmap,
    })
}

/// A dup of the VM fd with dirty logging on guest RAM, so that ioctls can
/// be issued from a thread that does not own the `Vm`.
pub(crate) fn dup_vm_fd(vm: &Vm) -> Result<File, TrackError> {
    // SAFETY: the fd belongs to `vm.fd()`, which outlives this borrow; it
    // is only duplicated here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(vm.fd().as_raw_fd()) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| TrackError::Setup {
            tracker: NAME,
            what: "cannot duplicate the VM fd".into(),
            source: Some(e),
        })?;
    Ok(File::from(owned))
}

/// `KVM_GET_DIRTY_LOG` of the RAM slot (`pages` pages) into `log`, which
/// must hold `pages.div_ceil(64)` words. In manual-protect mode a pure
/// read of the bitmap.
pub(crate) fn get_log(vm: &File, pages: u64, log: &mut [u64]) -> Result<(), TrackError> {
    let err = |source| TrackError::Syscall {
        op: "KVM_GET_DIRTY_LOG",
        first: 0,
        end: pages,
        source,
    };
    if (log.len() as u64) < pages.div_ceil(64) {
        return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    let arg = kvm_dirty_log {
        slot: RAM_SLOT,
        padding1: 0,
        __bindgen_anon_1: kvm_dirty_log__bindgen_ty_1 {
            dirty_bitmap: log.as_mut_ptr().cast(),
        },
    };
    // SAFETY: `vm` is a KVM VM fd; `log` holds at least one bit per page of
    // the RAM slot rounded up to whole u64 words (checked above), all the
    // kernel writes for this slot, and stays borrowed during the call.
    let r = unsafe { ioctl_with_ref(vm, sys::KVM_GET_DIRTY_LOG(), &arg) };
    if r != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// One `KVM_CLEAR_DIRTY_LOG` of the window: clears and write-protects the
/// pages whose bits are set in both the window and the dirty log.
pub(crate) fn clear_log(vm: &File, w: &mut ClearWindow) -> Result<(), TrackError> {
    let err = |source| TrackError::Syscall {
        op: "KVM_CLEAR_DIRTY_LOG",
        first: w.first_page,
        end: w.first_page + w.num_pages,
        source,
    };
    let num_pages = u32::try_from(w.num_pages)
        .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
    if (w.bitmap.len() as u64) < w.num_pages.div_ceil(64) {
        return Err(err(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    let arg = kvm_clear_dirty_log {
        slot: RAM_SLOT,
        num_pages,
        first_page: w.first_page,
        __bindgen_anon_1: kvm_clear_dirty_log__bindgen_ty_1 {
            dirty_bitmap: w.bitmap.as_mut_ptr().cast(),
        },
    };
    // SAFETY: `vm` is a KVM VM fd; the bitmap has at least one bit for each
    // of `num_pages` pages rounded up to whole u64 words (checked above),
    // all the kernel reads, and stays borrowed during the call.
    let r = unsafe { ioctl_with_ref(vm, sys::KVM_CLEAR_DIRTY_LOG(), &arg) };
    if r != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// The level-1 entries of guest RAM in the guest's page tables (4 KiB
/// guest pages only), one per RAM page, in page order.
struct GuestPtes {
    /// Host address of the entry of RAM page 0, in the metadata slot.
    host: usize,
    pages: u64,
}

impl GuestPtes {
    /// The entries of `memory`'s RAM, or `None` when 2 MiB pages map it.
    fn of(memory: &GuestMemory) -> Option<GuestPtes> {
        let l = memory.layout();
        let small = l.small_pages();
        let pages = l.ram_pages();
        let first = pte_address(l.page_tables, l.ram_end(), &small, RAM_BASE)?;
        let last = pte_address(l.page_tables, l.ram_end(), &small, l.ram_end() - PAGE_SIZE)?;
        // Contiguous, 8-byte aligned and inside the metadata slot, or not used.
        let inside = first >= META_BASE
            && first.is_multiple_of(8)
            && last == first + (pages - 1) * 8
            && last + 8 <= META_BASE + l.meta_size;
        inside.then(|| GuestPtes {
            host: memory.meta_host_addr() + (first - META_BASE) as usize,
            pages,
        })
    }

    /// Clears the Dirty bit of `page`'s entry; true if it was set.
    fn clear_dirty(&self, page: RamPage) -> bool {
        if page >= self.pages {
            return false;
        }
        let at = (self.host + page as usize * 8) as *const AtomicU64;
        // SAFETY: `of` checked that the `pages` entries lie, 8-byte aligned,
        // inside the metadata slot's host mapping, which stays mapped while
        // the tracker holds the `GuestMemory` (`_memory`), and `page` is
        // below `pages`. KVM updates these entries only with atomic
        // compare-and-exchange, so an atomic read-modify-write is sound.
        let entry = unsafe { &*at };
        entry.fetch_and(!PTE_DIRTY, Ordering::SeqCst) & PTE_DIRTY != 0
    }
}

#[derive(Default)]
struct State {
    /// The armed pages of this cycle, sorted.
    armed: Vec<RamPage>,
    /// Buffer for `KVM_GET_DIRTY_LOG`: one bit per page of the slot.
    log: Vec<u64>,
    faults: u64,
    arm: Duration,
    collect: Duration,
    armed_dirty: u64,
    armed_clean: u64,
    /// Guest Dirty bits cleared at arming.
    pte_dirty_cleared: u64,
}

/// Tracks writes with KVM's dirty log. See the module comment.
pub struct DirtyLogTracker {
    /// A dup of the VM fd, so the sampler can issue ioctls while the `Vm`
    /// stays owned by whoever runs the guest.
    vm: File,
    /// Dropped after `vm`: the slot's memory stays mapped while this fd
    /// keeps the VM alive.
    _memory: Arc<GuestMemory>,
    pages: u64,
    initially_set: bool,
    /// The guest entries whose Dirty bits arming clears (4 KiB guest pages).
    ptes: Option<GuestPtes>,
    state: Mutex<State>,
}

impl DirtyLogTracker {
    /// Needs a VM created with dirty logging on guest RAM
    /// (`Vm::new(.., true)`).
    pub fn new(vm: &Vm) -> Result<Arc<DirtyLogTracker>, TrackError> {
        let initially_set = match vm.dirty_log() {
            DirtyLog::Manual { initially_set } => initially_set,
            DirtyLog::Off => {
                return Err(TrackError::Setup {
                    tracker: NAME,
                    what: "the VM was created without dirty logging on guest RAM".into(),
                    source: None,
                });
            }
        };
        let pages = vm.memory().layout().ram_pages();
        let tracker = DirtyLogTracker {
            vm: dup_vm_fd(vm)?,
            _memory: Arc::clone(vm.memory()),
            pages,
            initially_set,
            ptes: GuestPtes::of(vm.memory()),
            state: Mutex::new(State {
                log: vec![0; pages.div_ceil(64) as usize],
                ..State::default()
            }),
        };
        // One GET now, so that a slot without a dirty bitmap fails here.
        {
            let mut st = lock(&tracker.state);
            tracker.get_log(&mut st.log)?;
        }
        Ok(Arc::new(tracker))
    }

    fn get_log(&self, log: &mut [u64]) -> Result<(), TrackError> {
        get_log(&self.vm, self.pages, log)
    }

    fn clear_log(&self, w: &mut ClearWindow) -> Result<(), TrackError> {
        clear_log(&self.vm, w)
    }

    /// Whether KVM started every page dirty (`KVM_DIRTY_LOG_INITIALLY_SET`).
    pub fn initially_set(&self) -> bool {
        self.initially_set
    }
}

impl Tracker for DirtyLogTracker {
    fn kind(&self) -> TrackerKind {
        TrackerKind::DirtyLog
    }

    fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError> {
        let t0 = Instant::now();
        if let Some(&page) = pages.iter().find(|&&p| p >= self.pages) {
            return Err(TrackError::OutOfRange {
                page,
                pages: self.pages,
            });
        }
        let mut sorted = pages.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut st = lock(&self.state);
        if !st.armed.is_empty() {
            return Err(TrackError::StillArmed {
                tracker: NAME,
                pages: st.armed.len(),
            });
        }
        let Some(mut window) = clear_window(&sorted, self.pages) else {
            return Ok(());
        };
        let mut log = std::mem::take(&mut st.log);
        let got = self.get_log(&mut log);
        let mut dirty = 0;
        let mut cleared = 0;
        if got.is_ok() {
            for &p in sorted.iter().filter(|&&p| dense_bit(&log, p)) {
                dirty += 1;
                if let Some(ptes) = &self.ptes {
                    cleared += u64::from(ptes.clear_dirty(p));
                }
            }
        }
        st.log = log;
        got?;
        self.clear_log(&mut window)?;
        st.pte_dirty_cleared += cleared;
        st.armed_dirty += dirty;
        st.armed_clean += sorted.len() as u64 - dirty;
        st.armed = sorted;
        st.arm += t0.elapsed();
        Ok(())
    }

    fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
        let t0 = Instant::now();
        let mut st = lock(&self.state);
        let armed = std::mem::take(&mut st.armed);
        if armed.is_empty() {
            return Ok(armed);
        }
        let mut log = std::mem::take(&mut st.log);
        let got = self.get_log(&mut log);
        let written: Vec<RamPage> = armed.into_iter().filter(|&p| dense_bit(&log, p)).collect();
        st.log = log;
        got?;
        st.faults += written.len() as u64;
        st.collect += t0.elapsed();
        Ok(written)
    }

    /// Live: one `KVM_GET_DIRTY_LOG` (one bit per RAM page, 16 KiB for
    /// 512 MiB) counted against the armed pages. 0 if the GET fails (the
    /// failure then surfaces from `collect`).
    fn touched_so_far(&self) -> usize {
        let mut st = lock(&self.state);
        if st.armed.is_empty() {
            return 0;
        }
        let mut log = std::mem::take(&mut st.log);
        let n = match self.get_log(&mut log) {
            Ok(()) => st.armed.iter().filter(|&&p| dense_bit(&log, p)).count(),
            Err(_) => 0,
        };
        st.log = log;
        n
    }

    fn stats(&self) -> TrackerStats {
        let st = lock(&self.state);
        let counters = [
            ("initially_set", u64::from(self.initially_set)),
            ("armed_dirty", st.armed_dirty),
            ("armed_clean", st.armed_clean),
            ("pte_dirty_cleared", st.pte_dirty_cleared),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        TrackerStats {
            faults: st.faults,
            fault_service_us: 0.0,
            arm_us: st.arm.as_secs_f64() * 1e6,
            collect_us: st.collect.as_secs_f64() * 1e6,
            counters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_window_of_nothing_is_none() {
        assert_eq!(clear_window(&[], 1024), None);
    }

    #[test]
    fn clear_window_covers_whole_words_from_an_aligned_start() {
        let w = clear_window(&[70, 71, 200], 1024).expect("window");
        assert_eq!(w.first_page, 64);
        assert_eq!(w.num_pages, 192);
        assert_eq!(w.bitmap, vec![(1 << 6) | (1 << 7), 0, 1 << 8]);
    }

    #[test]
    fn clear_window_is_cut_at_the_slot_end() {
        // A slot of 100 pages: the last word is partial, and only there may
        // num_pages stop short of a multiple of 64.
        let w = clear_window(&[3, 99], 100).expect("window");
        assert_eq!((w.first_page, w.num_pages), (0, 100));
        assert_eq!(w.bitmap, vec![1 << 3, 1 << 35]);
        let w = clear_window(&[64], 100).expect("window");
        assert_eq!((w.first_page, w.num_pages), (64, 36));
        assert_eq!(w.bitmap, vec![1]);
        let w = clear_window(&[0, 63], 128).expect("window");
        assert_eq!((w.first_page, w.num_pages), (0, 64));
        assert_eq!(w.bitmap, vec![1 | (1 << 63)]);
    }

    #[test]
    fn dirty_log_runs_on_4k_guest_pages_only() {
        assert_eq!(
            default_guest_pages(TrackerKind::DirtyLog),
            GuestPageSize::Size4K
        );
        for kind in [TrackerKind::None, TrackerKind::Mprotect, TrackerKind::Uffd] {
            assert_eq!(default_guest_pages(kind), GuestPageSize::Size2M);
            for pages in [GuestPageSize::Size2M, GuestPageSize::Size4K] {
                assert_eq!(check_guest_pages(kind, pages), Ok(()));
            }
        }
        assert_eq!(
            check_guest_pages(TrackerKind::DirtyLog, GuestPageSize::Size4K),
            Ok(())
        );
        assert_eq!(
            check_guest_pages(TrackerKind::DirtyLog, GuestPageSize::Size2M),
            Err(GuestPagesError::DirtyLogNeeds4K)
        );
    }
}
