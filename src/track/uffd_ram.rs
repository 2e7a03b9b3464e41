//! Guest RAM under a userfaultfd, as the uffd tracker and the bench floor
//! both use it: opening the userfaultfd and registering RAM, installing
//! pages again with `UFFDIO_CONTINUE`, and the plumbing of a handler
//! thread (poll, stop, and why it failed). The tracker's bookkeeping
//! stays in uffd.rs.

use std::io;
use std::thread::JoinHandle;

use vmm_sys_util::eventfd::EventFd;
use wss_abi::PAGE_SIZE;

use super::uffd_sys::{
    _UFFDIO_CONTINUE, _UFFDIO_COPY, _UFFDIO_ZEROPAGE, MsgError, UFFD_FEATURE_MINOR_SHMEM,
    UFFD_FEATURE_MISSING_SHMEM, UFFDIO_REGISTER_MODE_MINOR, UFFDIO_REGISTER_MODE_MISSING,
    Userfaultfd,
};
use super::{RamPage, TrackError};
use crate::vmm::memory::GuestMemory;

/// The tracker's name in errors and logs.
pub(crate) const NAME: &str = "uffd";
/// Bit of `UFFDIO_CONTINUE` in the ioctl mask that `UFFDIO_REGISTER`
/// returns for a range.
const CONTINUE_IOCTL: u64 = 1 << _UFFDIO_CONTINUE;
/// Bit of `UFFDIO_ZEROPAGE` in the same mask.
const ZEROPAGE_IOCTL: u64 = 1 << _UFFDIO_ZEROPAGE;
/// Bit of `UFFDIO_COPY` (reclaim's restore) in the same mask.
const COPY_IOCTL: u64 = 1 << _UFFDIO_COPY;
/// `UFFDIO_CONTINUE` returns EAGAIN without progress only while the address
/// space is changing under it; bounded so a broken kernel cannot spin us.
const MAX_CONTINUE_RETRIES: u32 = 1000;

/// Why a userfaultfd handler thread stopped serving faults.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("cannot poll the userfaultfd")]
    Poll(#[source] io::Error),
    #[error("the userfaultfd reported poll events {0:#x}")]
    PollEvents(i16),
    #[error("cannot read the userfaultfd")]
    Read(#[source] io::Error),
    #[error("bad userfaultfd message")]
    Message(#[source] MsgError),
    #[error("fault at {0:#x}, outside guest RAM")]
    OutsideRam(usize),
    #[error(transparent)]
    Install(TrackError),
    #[error("cannot restore evicted page {page}")]
    Restore {
        page: RamPage,
        #[source]
        source: crate::coordinate::store::StoreError,
    },
    #[error("UFFDIO_COPY failed restoring evicted page {page}")]
    Copy {
        page: RamPage,
        #[source]
        source: io::Error,
    },
    #[error("the handler thread exited")]
    Exited,
}

/// A set-up failure of the uffd tracker (or of what borrows its plumbing).
pub(crate) fn setup_error(what: impl Into<String>, source: Option<io::Error>) -> TrackError {
    TrackError::Setup {
        tracker: NAME,
        what: what.into(),
        source,
    }
}

/// A userfaultfd with guest RAM registered for minor faults, offering
/// `UFFDIO_CONTINUE`. Not user-mode-only: KVM touches guest memory from the
/// kernel, and those faults must reach the handler too. Non-blocking, for a
/// handler that polls it together with a stop event.
pub(crate) fn open_minor(memory: &GuestMemory) -> Result<Userfaultfd, TrackError> {
    open(memory, false)
}

/// [`open_minor`], with missing faults registered as well, offering
/// `UFFDIO_ZEROPAGE` and `UFFDIO_COPY` for them: the tracker's userfaultfd (see the module
/// comment).
pub(crate) fn open_tracking(memory: &GuestMemory) -> Result<Userfaultfd, TrackError> {
    open(memory, true)
}

fn open(memory: &GuestMemory, missing: bool) -> Result<Userfaultfd, TrackError> {
    let ram_len = usize::try_from(memory.layout().ram_size)
        .map_err(|_| setup_error("guest RAM does not fit the address space", None))?;
    let (features, mode) = if missing {
        (
            UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MISSING_SHMEM,
            UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_MISSING,
        )
    } else {
        (UFFD_FEATURE_MINOR_SHMEM, UFFDIO_REGISTER_MODE_MINOR)
    };
    // No UFFD_USER_MODE_ONLY: KVM faults from the kernel.
    let uffd = Userfaultfd::new(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .and_then(|uffd| uffd.api(features).map(|_| uffd))
        .map_err(|e| {
            setup_error(
                "cannot create a userfaultfd with minor and missing faults on shmem that \
                 also sees kernel faults (needs Linux 5.14+ and CAP_SYS_PTRACE or \
                 vm.unprivileged_userfaultfd=1)",
                Some(e),
            )
        })?;
    let ioctls = uffd
        .register(memory.ram_host_addr(), ram_len, mode)
        .map_err(|e| setup_error("cannot register guest RAM for page faults", Some(e)))?;
    if ioctls & CONTINUE_IOCTL == 0 {
        return Err(setup_error(
            "UFFDIO_CONTINUE is not offered on guest RAM",
            None,
        ));
    }
    if missing && ioctls & (ZEROPAGE_IOCTL | COPY_IOCTL) != ZEROPAGE_IOCTL | COPY_IOCTL {
        return Err(setup_error(
            "UFFDIO_ZEROPAGE and UFFDIO_COPY are not both offered on guest RAM",
            None,
        ));
    }
    Ok(uffd)
}

/// What one [`install`] did besides mapping pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Installed {
    /// Pages already mapped (EEXIST).
    pub eexist: u64,
    /// Pages that are holes in the memfd: nothing to install.
    pub holes: u64,
}

/// Installs RAM pages `[first, first + n)` again with `UFFDIO_CONTINUE`
/// (waking whoever waits on them), skipping those already mapped and those
/// that are holes (`UFFDIO_CONTINUE` fails with EFAULT where the memfd has
/// no page: a hole stays one, and its first touch is a missing fault).
pub(crate) fn install(
    uffd: &Userfaultfd,
    ram_host: usize,
    first: RamPage,
    n: u64,
) -> Result<Installed, TrackError> {
    let start = ram_host + (first * PAGE_SIZE) as usize;
    let len = (n * PAGE_SIZE) as usize;
    let mut done = 0usize;
    let mut installed = Installed::default();
    let mut retries = 0u32;
    while done < len {
        let at = start + done;
        match uffd.r#continue(at, len - done, true) {
            Ok(mapped) if mapped > 0 => done += mapped as usize,
            Ok(_) => {
                retries += 1;
            }
            Err(e) => {
                match e.raw_os_error() {
                    // Already installed: the access that raced us won.
                    Some(libc::EEXIST) => {
                        installed.eexist += 1;
                        done += PAGE_SIZE as usize;
                    }
                    Some(libc::EFAULT) => {
                        installed.holes += 1;
                        done += PAGE_SIZE as usize;
                    }
                    Some(libc::EAGAIN) => retries += 1,
                    _ => {
                        let page = first + (done as u64) / PAGE_SIZE;
                        return Err(TrackError::Syscall {
                            op: "UFFDIO_CONTINUE",
                            first: page,
                            end: first + n,
                            source: e,
                        });
                    }
                }
            }
        }
        if retries > MAX_CONTINUE_RETRIES {
            let page = first + (done as u64) / PAGE_SIZE;
            return Err(TrackError::Syscall {
                op: "UFFDIO_CONTINUE",
                first: page,
                end: first + n,
                source: io::Error::other("no progress after repeated EAGAIN"),
            });
        }
    }
    Ok(installed)
}

/// `poll(2)` on `fds`, waiting up to `timeout_ms` (-1: for ever).
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<()> {
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Stops a userfaultfd handler thread through its stop eventfd and joins
/// it. `who` names the owner in log messages.
pub(crate) fn stop_handler(who: &str, stop: &EventFd, handler: Option<JoinHandle<()>>) {
    let Some(handle) = handler else {
        return;
    };
    match stop.write(1) {
        Ok(()) => {
            if handle.join().is_err() {
                log::error!("{who}: the handler thread panicked");
            }
        }
        // Without the signal the thread would never see the stop; leave it
        // parked in poll (it holds its own references) rather than hang
        // here.
        Err(e) => log::error!("{who}: cannot stop the handler thread: {e}"),
    }
}
