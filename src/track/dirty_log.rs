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
//! A caveat of the mechanism: KVM may map a page writable on a read fault
//! when the page had no mapping at all, and that sets its bit too. Pages
//! armed while mapped (the usual case) keep a read-only mapping after the
//! CLEAR, so reads of them are not reported.

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

use super::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats};
use crate::vmm::memory::GuestMemory;
use crate::vmm::vm::{DirtyLog, RAM_SLOT, Vm};

const NAME: &str = "dirty-log";

/// kvm-ioctls does not wrap `KVM_CLEAR_DIRTY_LOG`, and its
/// `get_dirty_log` needs a `VmFd` while this tracker holds a dup'ed fd.
mod sys {
    use kvm_bindings::{KVMIO, kvm_clear_dirty_log, kvm_dirty_log};
    use vmm_sys_util::{ioctl_iow_nr, ioctl_iowr_nr};

    ioctl_iow_nr!(KVM_GET_DIRTY_LOG, KVMIO, 0x42, kvm_dirty_log);
    ioctl_iowr_nr!(KVM_CLEAR_DIRTY_LOG, KVMIO, 0xc0, kvm_clear_dirty_log);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters and buffers only: still consistent after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn bit(words: &[u64], page: RamPage) -> bool {
    words[(page / 64) as usize] & (1 << (page % 64)) != 0
}

/// One `KVM_CLEAR_DIRTY_LOG` request: `first_page` and `num_pages` in slot
/// pages, `bitmap` with bit `i` standing for page `first_page + i`.
#[derive(Debug, PartialEq, Eq)]
struct ClearWindow {
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
fn clear_window(pages: &[RamPage], slot_pages: u64) -> Option<ClearWindow> {
    let (&lo, &hi) = (pages.first()?, pages.last()?);
    let first_word = lo / 64;
    let last_word = hi / 64;
    let first_page = first_word * 64;
    let end = ((last_word + 1) * 64).min(slot_pages);
    let mut bitmap = vec![0u64; (last_word - first_word + 1) as usize];
    for &p in pages {
        let i = p - first_page;
        bitmap[(i / 64) as usize] |= 1 << (i % 64);
    }
    Some(ClearWindow {
        first_page,
        num_pages: end - first_page,
        bitmap,
    })
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
        // SAFETY: the fd belongs to `vm.fd()`, which outlives this borrow;
        // it is only duplicated here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(vm.fd().as_raw_fd()) };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(|e| TrackError::Setup {
                tracker: NAME,
                what: "cannot duplicate the VM fd".into(),
                source: Some(e),
            })?;
        let pages = vm.memory().layout().ram_pages();
        let tracker = DirtyLogTracker {
            vm: File::from(owned),
            _memory: Arc::clone(vm.memory()),
            pages,
            initially_set,
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
        let arg = kvm_dirty_log {
            slot: RAM_SLOT,
            padding1: 0,
            __bindgen_anon_1: kvm_dirty_log__bindgen_ty_1 {
                dirty_bitmap: log.as_mut_ptr().cast(),
            },
        };
        // SAFETY: `vm` is a KVM VM fd; `log` holds one bit per page of the
        // RAM slot rounded up to whole u64 words, exactly what the kernel
        // writes for this slot, and stays borrowed during the call.
        let r = unsafe { ioctl_with_ref(&self.vm, sys::KVM_GET_DIRTY_LOG(), &arg) };
        if r != 0 {
            return Err(TrackError::Syscall {
                op: "KVM_GET_DIRTY_LOG",
                first: 0,
                end: self.pages,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn clear_log(&self, w: &mut ClearWindow) -> Result<(), TrackError> {
        let err = |source| TrackError::Syscall {
            op: "KVM_CLEAR_DIRTY_LOG",
            first: w.first_page,
            end: w.first_page + w.num_pages,
            source,
        };
        let num_pages = u32::try_from(w.num_pages)
            .map_err(|_| err(io::Error::from(io::ErrorKind::InvalidInput)))?;
        let arg = kvm_clear_dirty_log {
            slot: RAM_SLOT,
            num_pages,
            first_page: w.first_page,
            __bindgen_anon_1: kvm_clear_dirty_log__bindgen_ty_1 {
                dirty_bitmap: w.bitmap.as_mut_ptr().cast(),
            },
        };
        // SAFETY: `vm` is a KVM VM fd; the bitmap has one bit for each of
        // `num_pages` pages rounded up to whole u64 words, which is all the
        // kernel reads, and stays borrowed during the call.
        let r = unsafe { ioctl_with_ref(&self.vm, sys::KVM_CLEAR_DIRTY_LOG(), &arg) };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
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
        let dirty = sorted.iter().filter(|&&p| bit(&log, p)).count() as u64;
        st.log = log;
        got?;
        self.clear_log(&mut window)?;
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
        let written: Vec<RamPage> = armed.into_iter().filter(|&p| bit(&log, p)).collect();
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
            Ok(()) => st.armed.iter().filter(|&&p| bit(&log, p)).count(),
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
    fn bit_reads_the_page_bit() {
        let words = [1 << 5, 1 << 63];
        assert!(bit(&words, 5) && bit(&words, 127));
        assert!(!bit(&words, 4) && !bit(&words, 64));
    }
}
