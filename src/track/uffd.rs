//! The userfaultfd tracker: minor faults on the memfd-backed RAM mapping.
//!
//! Arming zaps the host page-table entries of the chosen pages with
//! `MADV_DONTNEED`. The pages stay in the memfd's page cache, so no data is
//! lost, but the next access (by the guest through KVM, which faults from
//! the kernel) finds no PTE over a cached page: a *minor* fault, which the
//! kernel reports on the userfaultfd and holds until a handler installs the
//! page again with `UFFDIO_CONTINUE`. The handler thread learns the exact
//! page of every read or write.
//!
//! Minor faults only exist for pages that are in the page cache. A page the
//! guest never touched since boot is a hole in the memfd, and its first
//! touch is a *missing* fault; RAM is registered for those too, and the
//! handler fills the hole with a zeroed page (`UFFDIO_ZEROPAGE`), counting
//! the touch if the page was armed. Arming a hole therefore needs nothing
//! but the mark, and tracking never allocates a page the guest did not
//! touch: host memory stays the guest's own working set, however large
//! `--mem` and however many pages were sampled.
//!
//! The same missing faults serve reclaim (`coordinate::reclaim`): a page it
//! evicted is in the tracker's page store and a hole in the memfd, so its
//! next touch is a missing fault, and the handler restores it from the
//! store with `UFFDIO_COPY` instead of zero-filling it. The touch counts
//! as any other: a first touch of an armed page is a tracked touch.
//!
//! Since every hole fills through the handler, the tracker also knows
//! which pages of RAM are in the memfd: those `mincore` found there when
//! RAM was registered, every page a fault installed since, less the pages
//! reclaim evicted. Reclaim and the estimators' population read that set
//! at every boundary, inside the hold, where `mincore` costs milliseconds
//! per 512 MiB of RAM and the set a copy of its bits (`kvm-wss bench
//! residency`). Every `VERIFY_RESIDENT_EVERY`th reading is checked
//! against `mincore`, and a difference fails the run.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use wss_abi::PAGE_SIZE;

use super::page_bits::PageBits;
use super::uffd_ram::{
    HandlerError, Installed, NAME, install, open_tracking, poll, setup_error, stop_handler,
};
use super::uffd_sys::{Event, EventBuffer, UFFD_PAGEFAULT_FLAG_MINOR, Userfaultfd};
use super::zap::Zapper;
use super::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats, runs};
use crate::coordinate::reclaim::{self, Observed, ReclaimError, ReclaimPort, StoreSize};
use crate::coordinate::store::{PAGE_BYTES, PageStore, Restored};
use crate::vmm::memory::GuestMemory;

const THREAD_NAME: &str = "uffd-handler";
/// Fault messages read per `read` on the userfaultfd.
const EVENT_BATCH: usize = 64;
/// How long `new` waits for the handler thread to report it is running.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Collect leaves untouched pages unmapped until more than one in
/// `LAZY_MAX_REFAULT_SHARE` of them is touched later (each such touch is a
/// fault of ~20 us, against ~1-3 us to install a page at collect), judged
/// once `LAZY_PROBATION` pages were left.
const LAZY_MAX_REFAULT_SHARE: u64 = 10;
const LAZY_PROBATION: u64 = 4096;
/// `resident` checks its set against `mincore` at its first call and
/// every this many calls after (two or three calls per interval).
const VERIFY_RESIDENT_EVERY: u64 = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic (plain counters and bits),
    // so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the sampler and the handler thread share, under one lock so
/// that recording a touch and installing the page are atomic with respect
/// to `arm` and `collect`.
#[derive(Default)]
struct State {
    /// The armed pages of this cycle, sorted.
    armed: Vec<RamPage>,
    armed_bits: PageBits,
    touched_bits: PageBits,
    /// Pages that may have a host PTE: installed or filled by the handler,
    /// or installed by an eager collect, and not zapped since. Creation
    /// zaps all of RAM, so a page outside this set has no PTE, and
    /// arming it needs no syscall: a hole the guest never touched, or a
    /// page collect left unmapped.
    mapped_bits: PageBits,
    /// Untouched pages a lazy collect left unmapped, until armed again or
    /// touched (a `lazy_refaults`).
    left_bits: PageBits,
    /// Collect installs the untouched pages again (true), or leaves them
    /// unmapped (false, the default) so that the next arm of them is free
    /// and a later touch costs one untracked fault. Turns true for good
    /// when too many pages left unmapped are touched later.
    eager: bool,
    /// Untouched pages that collect left unmapped, and those of them a
    /// later fault installed while not armed.
    left_unmapped: u64,
    lazy_refaults: u64,
    /// Armed pages that needed no zap: already unmapped.
    zap_skipped: u64,
    faults: u64,
    service: Duration,
    arm: Duration,
    collect: Duration,
    spurious: u64,
    continue_eexist: u64,
    /// Holes filled at a guest's first touch, and holes collect found
    /// nothing to install in.
    zero_filled: u64,
    continue_holes: u64,
    disarmed: u64,
    other_events: u64,
    /// Reclaim's evicted pages, restored at their next touch.
    store: PageStore,
    /// Pages whose fault was resolved since reclaim last asked: what it
    /// knows of touches besides the tracked ones.
    faulted_bits: PageBits,
    /// Evicted pages restored since reclaim last asked, and the time it
    /// took; the same over the run; restores that found the page back
    /// already (EEXIST, never expected: only the handler fills holes).
    refaults: u64,
    refault_time: Duration,
    refaults_total: u64,
    restore_eexist: u64,
    evicted: u64,
    /// Hole punches reclaim took to evict them (see
    /// `coordinate::reclaim::evict_pages`).
    punches: u64,
    /// The RAM pages in the memfd (see the module comment).
    resident_bits: PageBits,
    /// Calls of `resident` so far, and how many of them `mincore` checked.
    resident_calls: u64,
    resident_checks: u64,
}

struct Shared {
    uffd: Userfaultfd,
    /// Kept alive so the registered mapping outlives the registration;
    /// reclaim reads and frees its memfd.
    memory: Arc<GuestMemory>,
    ram_host: usize,
    pages: u64,
    state: Mutex<State>,
    /// Armed pages touched in this cycle, readable without the lock.
    touched: AtomicUsize,
}

/// Errors the handler thread reported; the first one is kept for good.
struct HandlerErrors {
    rx: Receiver<HandlerError>,
    /// Shared, so that every later check reports the same failure.
    first: Option<Arc<HandlerError>>,
    count: u64,
    exited: bool,
}

impl HandlerErrors {
    /// Takes in whatever the handler sent and says whether it failed.
    fn check(&mut self) -> Result<(), TrackError> {
        loop {
            match self.rx.try_recv() {
                Ok(why) => {
                    self.count += 1;
                    self.first.get_or_insert(Arc::new(why));
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.exited = true;
                    break;
                }
            }
        }
        match (&self.first, self.exited) {
            (Some(why), _) => Err(TrackError::Handler(NAME, Arc::clone(why))),
            (None, true) => Err(TrackError::Handler(NAME, Arc::new(HandlerError::Exited))),
            (None, false) => Ok(()),
        }
    }
}

/// Tracks touches with userfaultfd minor faults. See the module comment.
pub struct UffdTracker {
    shared: Arc<Shared>,
    stop: EventFd,
    handler: Option<JoinHandle<()>>,
    errors: Mutex<HandlerErrors>,
    /// Drops the armed pages' PTEs, many runs per syscall.
    zapper: Zapper,
}

impl UffdTracker {
    /// Registers guest RAM for minor faults and starts the handler thread.
    /// Returns once the handler runs, so set-up errors surface here, before
    /// the guest can fault.
    pub fn new(memory: &Arc<GuestMemory>) -> Result<Arc<UffdTracker>, TrackError> {
        let layout = *memory.layout();
        let ram_host = memory.ram_host_addr();
        let uffd = open_tracking(memory)?;
        // Registered: from here on a page arrives only through a fault the
        // handler (not started yet) resolves, so what is in the memfd now
        // plus what it installs is the whole of it.
        let resident_bits = mincore_bits(ram_host, layout.ram_pages())?;
        let stop = EventFd::new(EFD_NONBLOCK)
            .map_err(|e| setup_error("cannot create the stop eventfd", Some(e)))?;
        let stop_rx = stop
            .try_clone()
            .map_err(|e| setup_error("cannot duplicate the stop eventfd", Some(e)))?;
        let shared = Arc::new(Shared {
            uffd,
            memory: Arc::clone(memory),
            ram_host,
            pages: layout.ram_pages(),
            state: Mutex::new(State {
                armed_bits: PageBits::new(layout.ram_pages()),
                touched_bits: PageBits::new(layout.ram_pages()),
                mapped_bits: PageBits::new(layout.ram_pages()),
                left_bits: PageBits::new(layout.ram_pages()),
                faulted_bits: PageBits::new(layout.ram_pages()),
                resident_bits,
                ..State::default()
            }),
            touched: AtomicUsize::new(0),
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || handler_main(&thread_shared, &stop_rx, &ready_tx, &err_tx))
            .map_err(|e| setup_error("cannot start the handler thread", Some(e)))?;
        // From here on, dropping `tracker` stops and joins the thread.
        let tracker = UffdTracker {
            shared,
            stop,
            handler: Some(handle),
            errors: Mutex::new(HandlerErrors {
                rx: err_rx,
                first: None,
                count: 0,
                exited: false,
            }),
            zapper: Zapper::new(NAME),
        };
        // Whatever mapped RAM before registration (the VMM writing it, a
        // guest that already ran) is unmapped now; every mapping made
        // since goes through the handler, which records it. So
        // `mapped_bits` holds every mapped page from here on. The pages
        // stay in the memfd; their next touch is a minor fault.
        tracker
            .zapper
            .zap_runs(NAME, ram_host, &[(0, tracker.shared.pages)])?;
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(())) => Ok(Arc::new(tracker)),
            Ok(Err(e)) => Err(setup_error("cannot poll the userfaultfd", Some(e))),
            Err(RecvTimeoutError::Timeout) => Err(setup_error(
                format!("the handler thread did not start within {READY_TIMEOUT:?}"),
                None,
            )),
            Err(RecvTimeoutError::Disconnected) => Err(setup_error(
                "the handler thread exited before it was ready",
                None,
            )),
        }
    }

    /// Pins the handler thread to `cpu`; `Ok(false)` once it is gone.
    fn pin_handler_thread(&self, cpu: usize) -> io::Result<bool> {
        crate::vmm::affinity::pin_if_running(self.handler.as_ref(), cpu)
    }

    /// The RAM pages in the memfd (see the module comment); checked
    /// against `mincore` at the first call and every
    /// [`VERIFY_RESIDENT_EVERY`]th after.
    fn resident_pages(&self) -> Result<PageBits, TrackError> {
        self.check_handler()?;
        let mut st = lock(&self.shared.state);
        let check = st.resident_calls.is_multiple_of(VERIFY_RESIDENT_EVERY);
        st.resident_calls += 1;
        if check {
            // Under the lock: no fault changes the memfd meanwhile.
            let found = mincore_bits(self.shared.ram_host, self.shared.pages)?;
            let differ = st.resident_bits.differences(&found);
            if differ > 0 {
                return Err(TrackError::ResidencyDrift {
                    tracker: NAME,
                    known: st.resident_bits.len(),
                    mincore: found.len(),
                    differ,
                });
            }
            st.resident_checks += 1;
        }
        Ok(st.resident_bits.clone())
    }

    fn check_handler(&self) -> Result<(), TrackError> {
        lock(&self.errors).check()
    }

    /// Sorted, unique, in-range copy of the caller's pages.
    fn normalize(&self, pages: &[RamPage]) -> Result<Vec<RamPage>, TrackError> {
        if let Some(&page) = pages.iter().find(|&&p| p >= self.shared.pages) {
            return Err(TrackError::OutOfRange {
                page,
                pages: self.shared.pages,
            });
        }
        let mut v = pages.to_vec();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }
}

impl Shared {
    /// Installs pages `[first, first + n)` again (see [`install`]).
    fn install(&self, first: RamPage, n: u64) -> Result<Installed, TrackError> {
        install(&self.uffd, self.ram_host, first, n)
    }

    /// Resolves a missing fault: fills the hole with a zeroed page and
    /// maps it. If the page appeared meanwhile (EEXIST: only the guest
    /// makes pages, so this is a second fault on it), it is installed.
    fn fill_hole(&self, st: &mut State, page: RamPage) -> Result<Installed, TrackError> {
        let at = self.ram_host + (page * PAGE_SIZE) as usize;
        match self.uffd.zeropage(at, PAGE_SIZE as usize, true) {
            Ok(_) => {
                st.zero_filled += 1;
                Ok(Installed::default())
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => self.install(page, 1),
            Err(source) => Err(TrackError::Syscall {
                op: "UFFDIO_ZEROPAGE",
                first: page,
                end: page + 1,
                source,
            }),
        }
    }

    /// Resolves a missing fault on a page reclaim evicted: installs its
    /// stored bytes (`UFFDIO_COPY`, or a zeroed page for a zero page) and
    /// takes it out of the store. `Ok(false)`: the page is not in the
    /// store. On a failure the page goes back into the store, so no byte
    /// is lost with the handler.
    fn restore(&self, st: &mut State, page: RamPage) -> Result<bool, HandlerError> {
        let t0 = Instant::now();
        let restored = match st.store.take(page) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(false),
            Err(source) => return Err(HandlerError::Restore { page, source }),
        };
        let at = self.ram_host + (page * PAGE_SIZE) as usize;
        let result = match &restored {
            Restored::Zero => self.uffd.zeropage(at, PAGE_BYTES, true),
            Restored::Bytes(bytes) => match <&[u8; PAGE_BYTES]>::try_from(&bytes[..]) {
                Ok(bytes) => self.uffd.copy_page(at, bytes),
                Err(_) => Err(io::Error::other("a stored page is not one page long")),
            },
        };
        match result {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                st.restore_eexist += 1;
                let installed = self.install(page, 1).map_err(HandlerError::Install)?;
                st.continue_eexist += installed.eexist;
            }
            Err(source) => {
                let bytes = match &restored {
                    Restored::Zero => vec![0u8; PAGE_BYTES].into_boxed_slice(),
                    Restored::Bytes(b) => b.clone(),
                };
                // Back into the store, where a later fault may find it.
                st.store
                    .put(page, &bytes)
                    .map_err(|source| HandlerError::Restore { page, source })?;
                return Err(HandlerError::Copy { page, source });
            }
        }
        st.refaults += 1;
        st.refaults_total += 1;
        st.refault_time += t0.elapsed();
        Ok(true)
    }

    /// One fault: record it if it is a first touch of an armed page, then
    /// let the access proceed. Both under the lock, so a concurrent `arm`
    /// cannot zap the page between the two and lose the next touch.
    fn resolve(&self, st: &mut State, addr: usize, flags: u64) -> Result<(), HandlerError> {
        let t0 = Instant::now();
        let page = addr
            .checked_sub(self.ram_host)
            .map(|off| off as u64 / PAGE_SIZE)
            .filter(|&p| p < self.pages)
            .ok_or(HandlerError::OutsideRam(addr))?;
        if st.armed_bits.contains(page) && !st.touched_bits.contains(page) {
            st.touched_bits.insert(page);
            st.faults += 1;
            self.touched.fetch_add(1, Ordering::Relaxed);
        } else {
            st.spurious += 1;
            if st.left_bits.contains(page) {
                st.lazy_refaults += 1;
                st.left_bits.remove(page);
            }
        }
        st.faulted_bits.insert(page);
        let installed = if flags & UFFD_PAGEFAULT_FLAG_MINOR != 0 {
            self.install(page, 1).map_err(HandlerError::Install)?
        } else if self.restore(st, page)? {
            Installed::default()
        } else {
            self.fill_hole(st, page).map_err(HandlerError::Install)?
        };
        st.mapped_bits.insert(page);
        // Whichever way it was resolved, the page is in the memfd now.
        st.resident_bits.insert(page);
        st.continue_eexist += installed.eexist;
        st.service += t0.elapsed();
        Ok(())
    }

    /// Reads and resolves the pending faults as one step under the state
    /// lock. A fault read but not yet resolved must never meet a later
    /// cycle: the vCPU, kicked out of its wait, may retry and retire the
    /// access through another fault, the boundary collect and re-arm the
    /// page, and the stale message would then count a touch of the new
    /// cycle that never happened. With the lock held from the read on,
    /// `collect` waits for every message already read; the kernel drops
    /// the unread ones of a waiter that left.
    fn serve(&self, buf: &mut EventBuffer) -> Result<(), HandlerError> {
        let mut st = lock(&self.state);
        let events = self.uffd.read_events(buf).map_err(HandlerError::Read)?;
        for event in events {
            match event.map_err(HandlerError::Message)? {
                Event::Pagefault { address, flags } => {
                    self.resolve(&mut st, address as usize, flags)?
                }
                Event::Other { .. } => st.other_events += 1,
            }
        }
        Ok(())
    }

    /// After a handler failure: unregister guest RAM, which wakes every
    /// blocked access and lets later ones fault normally, so the guest is
    /// never left waiting on a handler that is gone.
    fn release_all(&self) {
        let len = (self.pages * PAGE_SIZE) as usize;
        if let Err(e) = self.uffd.unregister(self.ram_host, len) {
            log::error!("uffd tracker: cannot unregister guest RAM after a handler failure: {e}");
        }
    }
}

fn handler_main(
    shared: &Shared,
    stop: &EventFd,
    ready: &Sender<Result<(), io::Error>>,
    errors: &Sender<HandlerError>,
) {
    let pollfd = |fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut fds = [pollfd(shared.uffd.as_raw_fd()), pollfd(stop.as_raw_fd())];
    // A zero-timeout poll proves both descriptors usable before `new`
    // returns.
    if let Err(e) = poll(&mut fds, 0) {
        let _ = ready.send(Err(e));
        return;
    }
    if ready.send(Ok(())).is_err() {
        return;
    }
    let mut buf = EventBuffer::new(EVENT_BATCH);
    let fail = |why: HandlerError| {
        // The receiver lives in the tracker, which is joining us if gone.
        let _ = errors.send(why);
        shared.release_all();
    };
    loop {
        match poll(&mut fds, -1) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(HandlerError::Poll(e)),
        }
        if fds[1].revents != 0 {
            return;
        }
        let revents = fds[0].revents;
        if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return fail(HandlerError::PollEvents(revents));
        }
        if revents & libc::POLLIN != 0
            && let Err(why) = shared.serve(&mut buf)
        {
            return fail(why);
        }
    }
}

impl Drop for UffdTracker {
    fn drop(&mut self) {
        stop_handler("uffd tracker", &self.stop, self.handler.take());
        // Closing the userfaultfd (with the last `Shared`) wakes any access
        // still waiting and unregisters guest RAM.
    }
}

impl Tracker for UffdTracker {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Uffd
    }

    fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError> {
        let t0 = Instant::now();
        self.check_handler()?;
        let pages = self.normalize(pages)?;
        let mut st = lock(&self.shared.state);
        if !st.armed.is_empty() {
            return Err(TrackError::StillArmed {
                tracker: NAME,
                pages: st.armed.len(),
            });
        }
        for &p in &pages {
            st.armed_bits.insert(p);
        }
        st.armed = pages;
        self.shared.touched.store(0, Ordering::Relaxed);
        // Only pages that may be mapped need a zap.
        let to_zap: Vec<RamPage> = st
            .armed
            .iter()
            .copied()
            .filter(|&p| st.mapped_bits.contains(p))
            .collect();
        st.zap_skipped += (st.armed.len() - to_zap.len()) as u64;
        let zap_runs: Vec<(RamPage, u64)> = runs(&to_zap).collect();
        for &p in &to_zap {
            st.mapped_bits.remove(p);
        }
        for &p in &st.armed.clone() {
            st.left_bits.remove(p);
        }
        // The runs lie inside the RAM mapping (normalized above), which
        // `shared.memory` keeps alive; see `zap`. Zapping a hole is a no-op.
        let result = self.zapper.zap_runs(NAME, self.shared.ram_host, &zap_runs);
        st.arm += t0.elapsed();
        result
    }

    fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
        let t0 = Instant::now();
        self.check_handler()?;
        let mut st = lock(&self.shared.state);
        let armed = std::mem::take(&mut st.armed);
        let (touched, untouched): (Vec<RamPage>, Vec<RamPage>) =
            armed.iter().partition(|&&p| st.touched_bits.contains(p));
        for &p in &armed {
            st.armed_bits.remove(p);
            st.touched_bits.remove(p);
        }
        self.shared.touched.store(0, Ordering::Relaxed);
        // Lazily, leave the untouched pages unmapped: arming them again is
        // then free, and a later touch costs the guest one untracked fault.
        // Eagerly, install them now, one UFFDIO_CONTINUE per run.
        if !st.eager
            && st.left_unmapped >= LAZY_PROBATION
            && st.lazy_refaults * LAZY_MAX_REFAULT_SHARE > st.left_unmapped
        {
            log::info!(
                "uffd tracker: {} of {} pages left unmapped at collect were touched later; \
                 installing untouched pages at collect from now on",
                st.lazy_refaults,
                st.left_unmapped
            );
            st.eager = true;
        }
        let mut result = Ok(());
        if st.eager {
            for (first, n) in runs(&untouched) {
                match self.shared.install(first, n) {
                    Ok(done) => {
                        st.continue_eexist += done.eexist;
                        st.continue_holes += done.holes;
                        st.disarmed += n - done.eexist - done.holes;
                        // Holes among them stay unmapped, but which ones is
                        // not known: count them all as mapped (a needless
                        // zap later is harmless, a missing one is not).
                        for p in first..first + n {
                            st.mapped_bits.insert(p);
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
        } else {
            st.left_unmapped += untouched.len() as u64;
            for &p in &untouched {
                st.left_bits.insert(p);
            }
        }
        st.collect += t0.elapsed();
        result.map(|()| touched)
    }

    fn touched_so_far(&self) -> usize {
        self.shared.touched.load(Ordering::Relaxed)
    }

    fn reclaim_port(self: Arc<Self>) -> Option<Arc<dyn ReclaimPort>> {
        Some(self)
    }

    fn pin_handler(&self, cpu: usize) -> io::Result<bool> {
        self.pin_handler_thread(cpu)
    }

    fn resident(&self) -> Result<Option<PageBits>, TrackError> {
        self.resident_pages().map(Some)
    }

    fn stats(&self) -> TrackerStats {
        let mut errors = lock(&self.errors);
        // Only draining the channel here; the error itself surfaces from
        // arm/collect, and its count from the counter below.
        let _ = errors.check();
        let handler_errors = errors.count;
        drop(errors);
        let st = lock(&self.shared.state);
        let counters = [
            ("spurious_faults", st.spurious),
            ("continue_eexist", st.continue_eexist),
            ("zero_filled_pages", st.zero_filled),
            ("continue_holes", st.continue_holes),
            ("disarmed_pages", st.disarmed),
            ("left_unmapped_pages", st.left_unmapped),
            ("lazy_refaults", st.lazy_refaults),
            ("zap_skipped_pages", st.zap_skipped),
            ("other_events", st.other_events),
            ("evicted_pages", st.evicted),
            ("punch_calls", st.punches),
            ("resident_checks", st.resident_checks),
            ("refaults", st.refaults_total),
            ("restore_eexist", st.restore_eexist),
            ("handler_errors", handler_errors),
            ("zap_calls", self.zapper.calls()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        TrackerStats {
            faults: st.faults,
            fault_service_us: st.service.as_secs_f64() * 1e6,
            arm_us: st.arm.as_secs_f64() * 1e6,
            collect_us: st.collect.as_secs_f64() * 1e6,
            counters,
        }
    }
}

/// The pages of RAM that `mincore` reports in the memfd.
fn mincore_bits(ram_host: usize, pages: u64) -> Result<PageBits, TrackError> {
    crate::residency::resident_pages(ram_host, pages).map_err(|source| TrackError::Syscall {
        op: "mincore",
        first: 0,
        end: pages,
        source,
    })
}

impl ReclaimPort for UffdTracker {
    fn evict(&self, victims: &[RamPage]) -> Result<(), ReclaimError> {
        self.check_handler().map_err(ReclaimError::Handler)?;
        // Under the state lock: no fault is resolved while a page is
        // between its copy and its punch.
        let mut st = lock(&self.shared.state);
        st.punches += reclaim::evict_pages(&mut st.store, &self.shared.memory, victims)?;
        for &p in victims {
            // The punch unmapped them: arming them needs no zap, and they
            // were not left unmapped by collect.
            st.mapped_bits.remove(p);
            st.left_bits.remove(p);
            st.resident_bits.remove(p);
        }
        st.evicted += victims.len() as u64;
        Ok(())
    }

    fn take_observed(&self) -> Result<Observed, ReclaimError> {
        // Checked at every boundary: under --tracker none nothing else
        // would notice a failed handler.
        self.check_handler().map_err(ReclaimError::Handler)?;
        let mut st = lock(&self.shared.state);
        let faulted = std::mem::replace(&mut st.faulted_bits, PageBits::new(self.shared.pages));
        Ok(Observed {
            faulted: faulted.to_vec(),
            refaults: std::mem::take(&mut st.refaults),
            refault_time: std::mem::take(&mut st.refault_time),
        })
    }

    fn resident(&self) -> Result<PageBits, ReclaimError> {
        self.resident_pages().map_err(ReclaimError::Residency)
    }

    fn store_size(&self) -> StoreSize {
        StoreSize::of(&lock(&self.shared.state).store)
    }

    fn pin_handler(&self, cpu: usize) -> io::Result<bool> {
        self.pin_handler_thread(cpu)
    }

    fn stored(&self) -> Vec<RamPage> {
        lock(&self.shared.state).store.pages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::layout::Layout;
    use wss_abi::RAM_BASE;

    /// 4 MiB of RAM (1024 pages), no KVM needed: the test thread itself
    /// plays the guest, touching RAM through the mapping.
    fn memory() -> Arc<GuestMemory> {
        let layout = Layout::new(4 << 20, RAM_BASE + PAGE_SIZE, 1 << 20).expect("layout");
        Arc::new(GuestMemory::new(&layout).expect("guest memory"))
    }

    fn tracker(mem: &Arc<GuestMemory>) -> Option<Arc<UffdTracker>> {
        match UffdTracker::new(mem) {
            Ok(t) => Some(t),
            Err(TrackError::Setup {
                source: Some(e), ..
            }) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
                eprintln!("skipping: userfaultfd for kernel faults is not permitted here: {e}");
                None
            }
            Err(e) => panic!("uffd tracker: {}", crate::error_chain(&e)),
        }
    }

    fn word_ptr(mem: &GuestMemory, page: RamPage) -> *mut u64 {
        (mem.ram_host_addr() + (page * PAGE_SIZE) as usize) as *mut u64
    }

    fn read(mem: &GuestMemory, page: RamPage) -> u64 {
        // SAFETY: the page lies inside the live RAM mapping; an armed page
        // blocks this thread until the handler installs it.
        unsafe { word_ptr(mem, page).read_volatile() }
    }

    fn write(mem: &GuestMemory, page: RamPage, v: u64) {
        // SAFETY: as in `read`.
        unsafe { word_ptr(mem, page).write_volatile(v) }
    }

    fn pread(mem: &GuestMemory, page: RamPage) -> u64 {
        let bytes = mem.read(RAM_BASE + page * PAGE_SIZE, 8).expect("pread");
        u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
    }

    #[test]
    fn reports_exactly_the_touched_armed_pages_and_keeps_data() {
        let mem = memory();
        for p in 0..16 {
            mem.write(RAM_BASE + p * PAGE_SIZE, &(p + 100).to_le_bytes())
                .expect("write");
        }
        let Some(t) = tracker(&mem) else { return };
        // Page 700 was never written: a hole in the memfd until armed.
        t.arm(&[9, 3, 2, 5, 700, 3]).expect("arm");
        assert_eq!(t.touched_so_far(), 0);
        assert_eq!(read(&mem, 2), 102);
        write(&mem, 3, 7);
        assert_eq!(read(&mem, 4), 104, "unarmed page");
        assert_eq!(read(&mem, 700), 0);
        assert_eq!(read(&mem, 2), 102, "second touch of a page");
        assert_eq!(t.touched_so_far(), 3);
        assert_eq!(t.collect().expect("collect"), vec![2, 3, 700]);
        assert_eq!(t.touched_so_far(), 0);

        // Disarmed by collect but left unmapped: arming 5 again needs no
        // zap; touching 9 costs one untracked fault, not counted as a
        // touch, and installs it.
        t.arm(&[5]).expect("arm");
        assert_eq!(read(&mem, 9), 109);
        assert_eq!(read(&mem, 9), 109, "installed by the first touch");
        assert_eq!(read(&mem, 5), 105);
        assert_eq!(t.collect().expect("collect"), vec![5]);
        assert_eq!(pread(&mem, 3), 7);
        let s = t.stats();
        assert_eq!(s.faults, 4);
        // Pages 4 (creation unmapped all RAM) and 9.
        assert_eq!(s.counters["spurious_faults"], 2);
        assert_eq!(s.counters["lazy_refaults"], 1);
        assert_eq!(s.counters["left_unmapped_pages"], 2);
        // Nothing was mapped at the first arm; 5 was left unmapped.
        assert_eq!(s.counters["zap_skipped_pages"], 6);
        assert_eq!(s.counters["disarmed_pages"], 0);
        assert_eq!(s.counters["zero_filled_pages"], 1, "page 700's first touch");
        assert_eq!(s.counters["handler_errors"], 0);
        assert!(s.fault_service_us > 0.0 && s.arm_us > 0.0 && s.collect_us > 0.0);

        // A second cycle over a present page allocates nothing; an armed
        // hole the guest never touches stays a hole, and an unarmed hole's
        // first touch is filled but not counted.
        assert!(is_hole(&mem, 800) && is_hole(&mem, 900));
        t.arm(&[3, 800]).expect("arm");
        write(&mem, 3, 8);
        assert_eq!(read(&mem, 900), 0);
        assert_eq!(t.collect().expect("collect"), vec![3]);
        assert_eq!(pread(&mem, 3), 8);
        assert!(
            is_hole(&mem, 800),
            "sampling made an untouched page resident"
        );
        assert!(!is_hole(&mem, 900));
        let s = t.stats();
        assert_eq!(s.faults, 5);
        assert_eq!(s.counters["zero_filled_pages"], 2);
        assert_eq!(s.counters["spurious_faults"], 3);
    }

    /// Whether RAM page `page` has no page in the memfd.
    fn is_hole(mem: &GuestMemory, page: RamPage) -> bool {
        use std::os::fd::AsRawFd;
        let off = (page * PAGE_SIZE) as libc::off_t;
        // SAFETY: lseek on our own memfd; it only moves the file offset.
        let data = unsafe { libc::lseek(mem.ram_file().as_raw_fd(), off, libc::SEEK_DATA) };
        // ENXIO: no data at or after `off`.
        data < 0 || data >= off + PAGE_SIZE as libc::off_t
    }

    #[test]
    fn an_evicted_page_comes_back_at_its_next_touch_and_an_armed_one_counts() {
        let mem = memory();
        for p in 0..8 {
            mem.write(RAM_BASE + p * PAGE_SIZE, &(p + 500).to_le_bytes())
                .expect("write");
        }
        mem.write(RAM_BASE + 6 * PAGE_SIZE, &[0u8; 8])
            .expect("write");
        let Some(t) = tracker(&mem) else { return };
        let port = Arc::clone(&t).reclaim_port().expect("uffd restores");
        port.evict(&[2, 3, 4, 6]).expect("evict");
        assert!(is_hole(&mem, 2) && is_hole(&mem, 3) && is_hole(&mem, 6));
        let size = port.store_size();
        assert_eq!((size.pages, size.zero_pages), (4, 1));
        // 3 is armed: its restore is also its tracked first touch.
        t.arm(&[3, 5]).expect("arm");
        assert_eq!(read(&mem, 2), 502);
        write(&mem, 3, 9);
        assert_eq!(read(&mem, 6), 0, "the zero page");
        assert_eq!(read(&mem, 2), 502, "restored once");
        assert_eq!(t.collect().expect("collect"), vec![3]);
        assert_eq!(pread(&mem, 3), 9);
        assert_eq!(pread(&mem, 4), 0, "still in the store: the file reads 0");
        assert_eq!(read(&mem, 4), 504);
        let seen = port.take_observed().expect("observed");
        assert_eq!(seen.refaults, 4);
        assert!(seen.refault_time > Duration::ZERO);
        let mut faulted = seen.faulted;
        faulted.sort_unstable();
        // Creation unmapped all RAM: every first access faults.
        assert_eq!(faulted, vec![2, 3, 4, 6]);
        assert_eq!(port.take_observed().expect("observed").refaults, 0, "taken");
        assert_eq!(port.store_size().pages, 0);
        let s = t.stats();
        assert_eq!(s.faults, 1);
        assert_eq!(s.counters["refaults"], 4);
        assert_eq!(s.counters["evicted_pages"], 4);
        // 2..5 in one punch; page 5 holds data, so 6 in another.
        assert_eq!(s.counters["punch_calls"], 2);
        assert_eq!(s.counters["restore_eexist"], 0);
        assert_eq!(s.counters["zero_filled_pages"], 0);
    }

    #[test]
    fn knows_the_resident_pages_as_mincore_does_and_catches_one_it_did_not_see() {
        use std::os::unix::fs::FileExt;
        let mem = memory();
        for p in [0, 1, 2, 10] {
            mem.write(RAM_BASE + p * PAGE_SIZE, &(p + 1).to_le_bytes())
                .expect("write");
        }
        let Some(t) = tracker(&mem) else { return };
        let port = Arc::clone(&t).reclaim_port().expect("uffd restores");
        let resident = |t: &UffdTracker| {
            Tracker::resident(t)
                .expect("resident")
                .expect("uffd knows")
                .to_vec()
        };
        // Checked against mincore at the first call.
        assert_eq!(resident(&t), vec![0, 1, 2, 10]);
        assert_eq!(read(&mem, 500), 0, "a hole, filled");
        write(&mem, 1, 5);
        port.evict(&[2, 10]).expect("evict");
        assert_eq!(read(&mem, 10), 11, "restored");
        assert_eq!(resident(&t), vec![0, 1, 10, 500]);
        assert_eq!(
            port.resident().expect("resident").to_vec(),
            vec![0, 1, 10, 500]
        );
        assert_eq!(t.stats().counters["resident_checks"], 1);
        // A page written into the memfd itself takes no fault: the handler
        // cannot see it, and the next check fails.
        mem.ram_file()
            .write_all_at(&[1], 700 * PAGE_SIZE)
            .expect("pwrite");
        for _ in 3..VERIFY_RESIDENT_EVERY {
            assert_eq!(resident(&t).len(), 4);
        }
        match Tracker::resident(t.as_ref()) {
            Err(TrackError::ResidencyDrift {
                known: 4,
                mincore: 5,
                differ: 1,
                ..
            }) => {}
            other => panic!("expected the drift to be caught, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_arms() {
        let mem = memory();
        let Some(t) = tracker(&mem) else { return };
        crate::track::assert_rejects_bad_arms(t.as_ref(), "uffd", 1024);
        // Nothing touched: nothing reported, nothing counted, data intact.
        assert_eq!(t.collect().expect("collect"), Vec::<RamPage>::new());
        assert_eq!(read(&mem, 1), 0);
        assert_eq!(t.stats().faults, 0);
    }

    #[test]
    fn drop_stops_the_handler_and_leaves_memory_usable() {
        let mem = memory();
        let Some(t) = tracker(&mem) else { return };
        write(&mem, 6, 66);
        t.arm(&[6]).expect("arm");
        drop(t);
        // The page is still zapped, but with the userfaultfd closed its
        // fault is an ordinary one.
        assert_eq!(read(&mem, 6), 66);
    }
}
