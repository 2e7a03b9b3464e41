//! Vectored `MADV_DONTNEED`: many page runs of guest RAM dropped from the
//! host page tables in one `process_madvise(pidfd_of_self, iov, n, ...)`
//! call (Linux 6.13+ accepts any advice for the calling process), instead
//! of one `madvise` per run. With scattered samples almost every run is one
//! page, so this turns thousands of syscalls per arm into a handful.
//!
//! Where the kernel refuses (EINVAL or ENOSYS: older than 6.13, or no
//! `process_madvise` at all), it logs once and falls back to one `madvise`
//! per run.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use libc::c_void;
use wss_abi::PAGE_SIZE;

use super::{RamPage, TrackError};

/// Most ranges one `process_madvise` takes (the kernel's `UIO_MAXIOV`).
pub const MAX_IOV: usize = 1024;
/// Calls that advise nothing, in a row, before giving up (the kernel only
/// stops early on a signal or a changing address space).
const MAX_STALLS: u32 = 1000;

/// Opens a pidfd for this process.
fn pidfd_self() -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; it touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `process_madvise(pidfd, iov, MADV_DONTNEED)`: bytes advised.
fn process_madvise_dontneed(pidfd: &OwnedFd, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: `iov` is a valid array of `iov.len()` iovecs that the kernel
    // only reads. The ranges are the caller's (see `Zapper::zap_runs`):
    // inside a MAP_SHARED memfd mapping with no Rust references into it, so
    // dropping their PTEs loses no data and nothing observes it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            pidfd.as_raw_fd(),
            iov.as_ptr(),
            iov.len(),
            libc::MADV_DONTNEED,
            0u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `madvise(addr, len, MADV_DONTNEED)` on one range.
fn madvise_dontneed(addr: usize, len: usize) -> io::Result<()> {
    // SAFETY: as in `process_madvise_dontneed`, for one range.
    let r = unsafe { libc::madvise(addr as *mut c_void, len, libc::MADV_DONTNEED) };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops runs of pages of one mapping, vectored where the kernel allows.
pub struct Zapper {
    /// None: no pidfd, one `madvise` per run.
    pidfd: Option<OwnedFd>,
    /// Set once the kernel refused `process_madvise`.
    refused: AtomicBool,
    /// Syscalls issued so far.
    calls: AtomicU64,
}

impl Zapper {
    /// Opens the pidfd; without one (logged) every zap is one `madvise` per
    /// run.
    pub fn new(who: &str) -> Zapper {
        let pidfd = match pidfd_self() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::info!("{who}: no pidfd ({e}); arming with one madvise per run");
                None
            }
        };
        Zapper {
            pidfd,
            refused: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        }
    }

    /// Syscalls issued so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Drops the PTEs of `runs` (`(first, count)` RAM pages) of the mapping
    /// at `base`. The caller guarantees every run lies inside a MAP_SHARED
    /// memfd mapping that outlives the call and that no Rust reference
    /// points into it.
    pub fn zap_runs(
        &self,
        who: &str,
        base: usize,
        runs: &[(RamPage, u64)],
    ) -> Result<(), TrackError> {
        if let Some(pidfd) = self
            .pidfd
            .as_ref()
            .filter(|_| !self.refused.load(Ordering::Relaxed))
        {
            match self.vectored(pidfd, base, runs) {
                Ok(()) => return Ok(()),
                Err(Refused(e)) => {
                    log::info!(
                        "{who}: the kernel refuses process_madvise(MADV_DONTNEED) ({e}); \
                         arming with one madvise per run"
                    );
                    self.refused.store(true, Ordering::Relaxed);
                }
                Err(Failed(e)) => return Err(e),
            }
        }
        for &(first, n) in runs {
            self.calls.fetch_add(1, Ordering::Relaxed);
            madvise_dontneed(
                base + (first * PAGE_SIZE) as usize,
                (n * PAGE_SIZE) as usize,
            )
            .map_err(|source| TrackError::Syscall {
                op: "madvise(MADV_DONTNEED)",
                first,
                end: first + n,
                source,
            })?;
        }
        Ok(())
    }

    fn vectored(
        &self,
        pidfd: &OwnedFd,
        base: usize,
        runs: &[(RamPage, u64)],
    ) -> Result<(), ZapFailure> {
        let iov: Vec<libc::iovec> = runs
            .iter()
            .map(|&(first, n)| libc::iovec {
                iov_base: (base + (first * PAGE_SIZE) as usize) as *mut c_void,
                iov_len: (n * PAGE_SIZE) as usize,
            })
            .collect();
        // Index of the first run not yet advised, and bytes of it done.
        let (mut at, mut partial) = (0usize, 0usize);
        let mut stalls = 0u32;
        let mut first_call = true;
        while at < iov.len() {
            let end = (at + MAX_IOV).min(iov.len());
            let mut batch = iov[at..end].to_vec();
            batch[0].iov_base = (batch[0].iov_base as usize + partial) as *mut c_void;
            batch[0].iov_len -= partial;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let mut done = match process_madvise_dontneed(pidfd, &batch) {
                Ok(done) => done,
                Err(e)
                    if first_call
                        && matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) =>
                {
                    return Err(Refused(e));
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) => 0,
                Err(e) => {
                    let (first, n) = runs[at];
                    return Err(Failed(syscall_error(first, n, e)));
                }
            };
            first_call = false;
            if done == 0 {
                stalls += 1;
                if stalls > MAX_STALLS {
                    let (first, n) = runs[at];
                    let e = io::Error::other("no progress after repeated calls");
                    return Err(Failed(syscall_error(first, n, e)));
                }
                continue;
            }
            stalls = 0;
            // Skip the runs fully advised; keep the offset into a partial one.
            for v in &batch {
                if done >= v.iov_len {
                    done -= v.iov_len;
                    at += 1;
                    partial = 0;
                } else {
                    partial += done;
                    break;
                }
            }
        }
        Ok(())
    }
}

fn syscall_error(first: RamPage, n: u64, source: io::Error) -> TrackError {
    TrackError::Syscall {
        op: "process_madvise(MADV_DONTNEED)",
        first,
        end: first + n,
        source,
    }
}

enum ZapFailure {
    /// The kernel does not take this call at all: fall back.
    Refused(io::Error),
    Failed(TrackError),
}
use ZapFailure::{Failed, Refused};

#[cfg(test)]
mod tests {
    use super::*;

    /// A MAP_SHARED memfd mapping of `pages` pages, no KVM needed.
    struct Shared {
        addr: usize,
        len: usize,
        _fd: OwnedFd,
    }

    impl Shared {
        fn new(pages: usize) -> Shared {
            let len = pages * PAGE_SIZE as usize;
            // SAFETY: a fresh anonymous memfd, owned below.
            let fd = unsafe { libc::memfd_create(c"zap-test".as_ptr(), libc::MFD_CLOEXEC) };
            assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
            // SAFETY: `fd` is ours and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: sizing our own memfd.
            let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
            assert_eq!(rc, 0);
            // SAFETY: a new shared mapping of the memfd, unmapped in Drop.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            Shared {
                addr: p as usize,
                len,
                _fd: fd,
            }
        }

        fn word(&self, page: u64) -> *mut u64 {
            (self.addr + (page * PAGE_SIZE) as usize) as *mut u64
        }
    }

    impl Drop for Shared {
        fn drop(&mut self) {
            // SAFETY: our own mapping, no references into it remain.
            unsafe { libc::munmap(self.addr as *mut c_void, self.len) };
        }
    }

    #[test]
    fn zaps_many_runs_in_few_calls_and_keeps_the_data() {
        let pages = 2 * MAX_IOV as u64 + 200;
        let m = Shared::new(pages as usize);
        for p in 0..pages {
            // SAFETY: inside the mapping.
            unsafe { m.word(p).write_volatile(p + 1) };
        }
        // Every other page: 1124 runs of one page, then one long run.
        let mut runs: Vec<(RamPage, u64)> = (0..pages / 2).map(|i| (2 * i, 1)).collect();
        runs.truncate(MAX_IOV + 100);
        runs.push((pages - 50, 50));
        let z = Zapper::new("test");
        z.zap_runs("test", m.addr, &runs).expect("zap");
        let calls = z.calls();
        if z.refused.load(Ordering::Relaxed) || z.pidfd.is_none() {
            // An older kernel: one madvise per run (after one refused call).
            assert!(calls >= runs.len() as u64);
        } else {
            assert_eq!(calls, 2, "1125 runs in two calls of at most {MAX_IOV}");
        }
        for p in 0..pages {
            // SAFETY: inside the mapping; a zapped page faults back in from
            // the memfd's page cache.
            assert_eq!(unsafe { m.word(p).read_volatile() }, p + 1, "page {p}");
        }
        // A range outside any mapping is an error naming its pages.
        let far = (usize::MAX / 2) & !(PAGE_SIZE as usize - 1);
        assert!(z.zap_runs("test", far, &[(0, 1)]).is_err());
    }
}
