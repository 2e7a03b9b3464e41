//! Reclaim: at each interval boundary, while the guest is held, evict the
//! coldest data pages above the VM's resident limit into the compressed
//! [`PageStore`] and free them from the memfd. The uffd tracker's handler
//! restores a page at its next touch (a userfaultfd MISSING fault) with
//! `UFFDIO_COPY`, so the guest never sees a byte change.
//!
//! Why at the boundary: the guest is held there (every vCPU out of
//! `KVM_RUN`), so it cannot write a page between its copy into the store
//! and the punch that frees it. The eviction itself also runs under the
//! lock the uffd handler resolves faults under, so no fault is resolved
//! half-way through either.
//!
//! Resident pages are those of the memfd's page cache, mapped or not:
//! exactly what uses host memory. The port (the uffd tracker) keeps that
//! set as its handler fills holes and reclaim evicts, and checks it against
//! `mincore` now and then (see `track::uffd`): `mincore` itself costs
//! milliseconds per 512 MiB of RAM (`kvm-wss bench residency`), and
//! counting once before and once after an eviction inside every hold made
//! the held guest wait that long each time.

use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wss_abi::PAGE_SIZE;

use super::limit::LimitHandle;
use super::store::{PAGE_BYTES, PageStore, StoreError};
use super::victims::VictimOrder;
use crate::analysis::stats::RunningMean;
use crate::record::PageSet;
use crate::report::timeseries::Row;
use crate::track::page_bits::PageBits;
use crate::track::{RamPage, runs};
use crate::vmm::memory::GuestMemory;

#[derive(Debug, thiserror::Error)]
pub enum ReclaimError {
    #[error("cannot read guest RAM pages {first}..{end} to evict them")]
    Read {
        first: RamPage,
        end: RamPage,
        #[source]
        source: io::Error,
    },
    #[error("cannot free guest RAM pages {first}..{end} (fallocate PUNCH_HOLE)")]
    Punch {
        first: RamPage,
        end: RamPage,
        #[source]
        source: io::Error,
    },
    #[error("cannot tell whether guest RAM pages {first}..{end} hold data (lseek SEEK_DATA)")]
    Seek {
        first: RamPage,
        end: RamPage,
        #[source]
        source: io::Error,
    },
    #[error("cannot tell which pages of guest RAM are resident")]
    Residency(#[source] crate::track::TrackError),
    #[error("the page store failed")]
    Store(#[from] StoreError),
    #[error("the uffd handler failed; reclaim cannot go on")]
    Handler(#[source] crate::track::TrackError),
}

/// What the restoring side (the uffd tracker) saw since it was last asked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
    /// Pages whose touch the handler resolved (any fault), unsorted.
    pub faulted: Vec<RamPage>,
    /// Evicted pages restored from the store.
    pub refaults: u64,
    /// Time the handler spent restoring them.
    pub refault_time: Duration,
}

/// The store's size now.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct StoreSize {
    pub pages: u64,
    pub bytes: u64,
    pub zero_pages: u64,
    pub compression_ratio: Option<f64>,
}

impl StoreSize {
    pub fn of(store: &PageStore) -> StoreSize {
        StoreSize {
            pages: store.len(),
            bytes: store.bytes(),
            zero_pages: store.zero_pages(),
            compression_ratio: store.compression_ratio(),
        }
    }
}

/// The tracker side of reclaim: it owns the store (its handler restores
/// from it) and the lock faults are resolved under.
pub trait ReclaimPort: Send + Sync {
    /// Evicts `victims` (sorted, unique, resident data pages) with
    /// [`evict_pages`] under the fault-resolution lock.
    fn evict(&self, victims: &[RamPage]) -> Result<(), ReclaimError>;
    /// What the handler saw since the last call; an error once the
    /// handler failed (evicted pages can no longer come back).
    fn take_observed(&self) -> Result<Observed, ReclaimError>;
    /// The RAM pages in the memfd now, as [`crate::track::Tracker::resident`].
    fn resident(&self) -> Result<PageBits, ReclaimError>;
    fn store_size(&self) -> StoreSize;
    /// The evicted pages now in the store (RAM pages, ascending).
    fn stored(&self) -> Vec<RamPage>;
    /// Pins the thread that restores evicted pages, if there is one, to
    /// `cpu` (see `vmm::affinity`); `Ok(false)` without one.
    fn pin_handler(&self, _cpu: usize) -> std::io::Result<bool> {
        Ok(false)
    }
}

/// `fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, len)`: frees the range's
/// pages from the file and unmaps them from every mapping of it.
fn punch_hole(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (offset, len) = (
        libc::off_t::try_from(offset).map_err(io::Error::other)?,
        libc::off_t::try_from(len).map_err(io::Error::other)?,
    );
    // SAFETY: fallocate on our own memfd with plain integer arguments; it
    // touches no memory of ours. The pages it frees are guest RAM, which
    // no Rust reference points into (see `vmm::memory`), and the caller
    // saved their bytes first.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset,
            len,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Whether the memfd holds no page in `[from, to)` (RAM pages):
/// `lseek(SEEK_DATA)` from `from` finds no data before `to`. A page on
/// swap counts as data, so a hole is never a page with bytes in it.
fn is_hole_range(file: &std::fs::File, from: RamPage, to: RamPage) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    if from >= to {
        return Ok(true);
    }
    let off = libc::off_t::try_from(from * PAGE_SIZE).map_err(io::Error::other)?;
    // SAFETY: lseek on our own memfd with plain integer arguments; it only
    // moves the file offset, which nothing of ours relies on (reads and
    // writes use pread/pwrite at explicit offsets).
    let data = unsafe { libc::lseek(file.as_raw_fd(), off, libc::SEEK_DATA) };
    if data < 0 {
        let e = io::Error::last_os_error();
        // ENXIO: no data at or after `from`.
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(true)
        } else {
            Err(e)
        };
    }
    Ok(data as u64 >= to * PAGE_SIZE)
}

/// Copies each of `victims` (sorted, unique RAM pages) from the memfd into
/// `store`, then frees them from the memfd. It reads one run of adjacent
/// victims at a time, and punches runs together, as one span, across gaps
/// that hold no page (pages evicted before, or never touched): punching a
/// hole again changes nothing, while each punch has a fixed cost far above
/// copying a page, as the kernel invalidates the range in every mapping of
/// the memfd, the VM's shadow MMU included. A page is punched
/// only after every victim of its span is stored. The guest must be held
/// and faults must not be resolved while this runs (see the module
/// comment), so no gap fills up between its check and the punch. Returns
/// how many punches it took.
pub fn evict_pages(
    store: &mut PageStore,
    memory: &GuestMemory,
    victims: &[RamPage],
) -> Result<u64, ReclaimError> {
    let file = memory.ram_file();
    let punch = |span: Range<RamPage>| {
        punch_hole(
            file,
            span.start * PAGE_SIZE,
            (span.end - span.start) * PAGE_SIZE,
        )
        .map_err(|source| ReclaimError::Punch {
            first: span.start,
            end: span.end,
            source,
        })
    };
    let mut buf = Vec::new();
    let mut span: Option<Range<RamPage>> = None;
    let mut punches = 0;
    for (first, n) in runs(victims) {
        let end = first + n;
        buf.resize(n as usize * PAGE_BYTES, 0);
        file.read_exact_at(&mut buf, first * PAGE_SIZE)
            .map_err(|source| ReclaimError::Read { first, end, source })?;
        for (i, page) in buf.chunks_exact(PAGE_BYTES).enumerate() {
            store.put(first + i as u64, page)?;
        }
        span = match span {
            Some(open) => {
                let gap_is_hole =
                    is_hole_range(file, open.end, first).map_err(|source| ReclaimError::Seek {
                        first: open.end,
                        end: first,
                        source,
                    })?;
                if gap_is_hole {
                    Some(open.start..end)
                } else {
                    punch(open)?;
                    punches += 1;
                    Some(first..end)
                }
            }
            None => Some(first..end),
        };
    }
    if let Some(open) = span {
        punch(open)?;
        punches += 1;
    }
    Ok(punches)
}

/// What one boundary's reclaim did, for the interval's row.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct BoundaryReclaim {
    /// Data pages resident after the eviction.
    pub resident_pages: u64,
    pub evicted_pages: u64,
    /// Evicted pages the guest touched in the interval, restored.
    pub refaults: u64,
    pub refault_us: f64,
}

impl BoundaryReclaim {
    /// Fills the row's reclaim columns.
    pub fn fill(&self, row: &mut Row) {
        row.resident_pages = Some(self.resident_pages);
        row.evicted_pages = self.evicted_pages;
        row.refaults = self.refaults;
        row.refault_us = self.refault_us;
    }
}

/// One VM's reclaim, driven by its sampler. See the module comment.
pub struct Reclaimer {
    port: Arc<dyn ReclaimPort>,
    limit: LimitHandle,
    data: Range<RamPage>,
    order: VictimOrder,
}

impl Reclaimer {
    pub fn new(
        port: Arc<dyn ReclaimPort>,
        limit: LimitHandle,
        memory: &Arc<GuestMemory>,
    ) -> Reclaimer {
        let layout = memory.layout();
        let data = layout.data_page_range();
        Reclaimer {
            port,
            limit,
            order: VictimOrder::new(data.clone()),
            data,
        }
    }

    /// The sampler armed `pages` (RAM pages).
    pub fn armed(&mut self, pages: &[RamPage]) {
        self.order.armed(pages);
    }

    /// The sampler collected: of the armed pages, `touched` were touched.
    pub fn collected(&mut self, touched: &[RamPage]) {
        self.order.collected(touched);
    }

    /// The resident pages, and how many of them are data pages.
    fn resident(&self) -> Result<(PageBits, u64), ReclaimError> {
        let bits = self.port.resident()?;
        let count = self.data.clone().filter(|&p| bits.contains(p)).count() as u64;
        Ok((bits, count))
    }

    /// The boundary: takes in what the handler saw, and if more data pages
    /// are resident than the limit allows, evicts the coldest down to it.
    /// The guest must be held.
    pub fn boundary(&mut self) -> Result<BoundaryReclaim, ReclaimError> {
        let seen = self.port.take_observed()?;
        self.order.touched(seen.faulted.iter().copied());
        let (resident, count) = self.resident()?;
        let over = self
            .limit
            .pages()
            .map_or(0, |limit| count.saturating_sub(limit));
        let mut evicted = 0;
        let mut resident_pages = count;
        if over > 0 {
            let mut victims = self.order.choose(|p| resident.contains(p), over);
            victims.sort_unstable();
            self.port.evict(&victims)?;
            self.order.evicted(&victims);
            evicted = victims.len() as u64;
            resident_pages = self.resident()?.1;
        }
        Ok(BoundaryReclaim {
            resident_pages,
            evicted_pages: evicted,
            refaults: seen.refaults,
            refault_us: seen.refault_time.as_secs_f64() * 1e6,
        })
    }

    /// The store's size now.
    pub fn store_size(&self) -> StoreSize {
        self.port.store_size()
    }

    /// The evicted data pages, counted from the first data page (the
    /// estimators' domain): guest memory that lives in the store instead
    /// of the memfd, so `mincore` misses it.
    pub fn stored_data(&self) -> PageSet {
        let first = self.data.start;
        PageSet::from_sorted(
            self.port
                .stored()
                .into_iter()
                .filter(|p| self.data.contains(p))
                .map(|p| p - first),
        )
    }
}

/// A run's reclaim in summary.json: the limit, and what the rows and the
/// store say at the end.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReclaimSummary {
    /// The limit at the end of the run, pages (`None`: lifted).
    pub limit_pages: Option<u64>,
    /// Data pages resident after each boundary's eviction: mean and
    /// largest over the rows.
    pub resident_mean_pages: Option<f64>,
    pub resident_max_pages: Option<u64>,
    pub evicted_pages: u64,
    pub refaults: u64,
    /// Time the uffd handler spent restoring evicted pages, microseconds.
    pub refault_us: f64,
    /// Pages in the store at the end, the bytes they take, how many of
    /// them are all-zero (no bytes), and their size over those bytes.
    pub store_pages: u64,
    pub store_bytes: u64,
    pub store_zero_pages: u64,
    pub compression_ratio: Option<f64>,
}

/// The reclaim figures of a run's rows, pushed one at a time (a run keeps
/// no rows).
#[derive(Debug, Clone, Default)]
pub struct ReclaimTally {
    resident: RunningMean,
    resident_max: Option<u64>,
    evicted_pages: u64,
    refaults: u64,
    refault_us: f64,
}

impl ReclaimTally {
    pub fn push(&mut self, row: &Row) {
        if let Some(p) = row.resident_pages {
            self.resident.add(p as f64);
            self.resident_max = self.resident_max.max(Some(p));
        }
        self.evicted_pages += row.evicted_pages;
        self.refaults += row.refaults;
        self.refault_us += row.refault_us;
    }

    /// The summary of the rows pushed, under `limit`, with the store as
    /// it is at the end.
    pub fn summary(&self, limit: &LimitHandle, store: StoreSize) -> ReclaimSummary {
        ReclaimSummary {
            limit_pages: limit.pages(),
            resident_mean_pages: self.resident.mean(),
            resident_max_pages: self.resident_max,
            evicted_pages: self.evicted_pages,
            refaults: self.refaults,
            refault_us: self.refault_us,
            store_pages: store.pages,
            store_bytes: store.bytes,
            store_zero_pages: store.zero_pages,
            compression_ratio: store.compression_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::layout::Layout;
    use wss_abi::RAM_BASE;

    fn is_hole(mem: &GuestMemory, page: RamPage) -> bool {
        use std::os::fd::AsRawFd;
        let off = (page * PAGE_SIZE) as libc::off_t;
        // SAFETY: lseek on our own memfd; it only moves the file offset.
        let data = unsafe { libc::lseek(mem.ram_file().as_raw_fd(), off, libc::SEEK_DATA) };
        data < 0 || data >= off + PAGE_SIZE as libc::off_t
    }

    #[test]
    fn evicting_stores_the_bytes_and_leaves_holes() {
        let layout = Layout::new(4 << 20, RAM_BASE + PAGE_SIZE, 1 << 20).expect("layout");
        let mem = GuestMemory::new(&layout).expect("memory");
        for p in [10u64, 11, 12, 20] {
            let fill = vec![p as u8; PAGE_BYTES];
            mem.write(RAM_BASE + p * PAGE_SIZE, &fill).expect("write");
        }
        mem.write(RAM_BASE + 30 * PAGE_SIZE, &[0u8; PAGE_BYTES])
            .expect("write");
        let mut store = PageStore::new();
        // 10..12 and 20 hold data in between (12): two spans. 20 and 30
        // have only holes between them: one span, one punch.
        assert_eq!(
            evict_pages(&mut store, &mem, &[10, 11, 20, 30]).expect("evict"),
            2
        );
        assert_eq!((store.len(), store.zero_pages()), (4, 1));
        for p in [10, 11, 20, 30] {
            assert!(is_hole(&mem, p), "page {p} still in the memfd");
        }
        assert!(!is_hole(&mem, 12));
        assert_eq!(
            store.take(11).expect("take"),
            Some(super::super::store::Restored::Bytes(
                vec![11u8; PAGE_BYTES].into()
            ))
        );
        // A punched page reads as zeros through the file, allocating nothing.
        assert_eq!(
            mem.read(RAM_BASE + 10 * PAGE_SIZE, 8).expect("read"),
            [0; 8]
        );
        assert!(is_hole(&mem, 10));
    }

    #[test]
    fn a_span_crosses_holes_but_never_a_page_with_data() {
        let layout = Layout::new(4 << 20, RAM_BASE + PAGE_SIZE, 1 << 20).expect("layout");
        let mem = GuestMemory::new(&layout).expect("memory");
        for p in 1..=9u64 {
            mem.write(RAM_BASE + p * PAGE_SIZE, &vec![p as u8; PAGE_BYTES])
                .expect("write");
        }
        let file = mem.ram_file();
        assert!(is_hole_range(file, 0, 1).expect("seek"), "never written");
        assert!(!is_hole_range(file, 0, 2).expect("seek"));
        assert!(is_hole_range(file, 3, 3).expect("seek"), "an empty gap");
        assert!(is_hole_range(file, 10, 20).expect("seek"), "no data after");
        let mut store = PageStore::new();
        assert_eq!(evict_pages(&mut store, &mem, &[5]).expect("evict"), 1);
        // 4 and 6 with the evicted 5 between them: one span; 7 holds data,
        // so 8 is punched on its own.
        assert_eq!(evict_pages(&mut store, &mem, &[4, 6, 8]).expect("evict"), 2);
        for p in [4, 5, 6, 8] {
            assert!(is_hole(&mem, p), "page {p}");
        }
        assert_eq!(mem.read(RAM_BASE + 7 * PAGE_SIZE, 2).expect("read"), [7, 7]);
        assert_eq!(
            store.take(5).expect("take"),
            Some(super::super::store::Restored::Bytes(
                vec![5u8; PAGE_BYTES].into()
            )),
            "the page evicted before keeps its bytes in the store"
        );
        assert_eq!(store.len(), 3);
    }

    /// A port that evicts into its own store, as the uffd tracker does,
    /// and reports scripted faults.
    struct Port {
        memory: Arc<GuestMemory>,
        store: std::sync::Mutex<PageStore>,
        faulted: std::sync::Mutex<Vec<RamPage>>,
    }

    impl ReclaimPort for Port {
        fn evict(&self, victims: &[RamPage]) -> Result<(), ReclaimError> {
            evict_pages(&mut self.store.lock().expect("lock"), &self.memory, victims).map(|_| ())
        }
        fn take_observed(&self) -> Result<Observed, ReclaimError> {
            Ok(Observed {
                faulted: std::mem::take(&mut *self.faulted.lock().expect("lock")),
                refaults: 2,
                refault_time: Duration::from_micros(30),
            })
        }
        fn resident(&self) -> Result<PageBits, ReclaimError> {
            let pages = self.memory.layout().ram_pages();
            Ok(
                crate::residency::resident_pages(self.memory.ram_host_addr(), pages)
                    .expect("mincore"),
            )
        }
        fn store_size(&self) -> StoreSize {
            StoreSize::of(&self.store.lock().expect("lock"))
        }
        fn stored(&self) -> Vec<RamPage> {
            self.store.lock().expect("lock").pages()
        }
    }

    #[test]
    fn a_boundary_evicts_the_coldest_down_to_the_limit() {
        // The mapping is touched through the memfd only (no uffd here):
        // `mincore` sees the page cache.
        let layout = Layout::new(4 << 20, RAM_BASE + PAGE_SIZE, 1 << 20).expect("layout");
        let memory = Arc::new(GuestMemory::new(&layout).expect("memory"));
        let first = layout.data_first_page();
        for i in 0..10 {
            let page = vec![i as u8 + 1; PAGE_BYTES];
            memory
                .write(RAM_BASE + (first + i) * PAGE_SIZE, &page)
                .expect("write");
        }
        let port = Arc::new(Port {
            memory: Arc::clone(&memory),
            store: std::sync::Mutex::new(PageStore::new()),
            faulted: std::sync::Mutex::new(Vec::new()),
        });
        let limit = LimitHandle::unlimited();
        let mut r = Reclaimer::new(port.clone(), limit.clone(), &memory);
        let resident = |r: &Reclaimer| r.resident().expect("resident").1;
        assert_eq!(resident(&r), 10);
        // No limit: nothing goes, but the counts are reported.
        let b = r.boundary().expect("boundary");
        assert_eq!((b.resident_pages, b.evicted_pages, b.refaults), (10, 0, 2));
        assert_eq!(b.refault_us, 30.0);
        // Pages 7 and 8 were armed and left untouched, 2 touched; faults
        // were seen on 0 and 1.
        r.armed(&[first + 7, first + 2, first + 8]);
        r.collected(&[first + 2]);
        *port.faulted.lock().expect("lock") = vec![first, first + 1];
        limit.set_pages(Some(6));
        let b = r.boundary().expect("boundary");
        assert_eq!((b.resident_pages, b.evicted_pages), (6, 4));
        // Known idle first (7, 8), then the idle neighbourhood (9: 7 and 8
        // within its reach, no touch), then the pages near the touches of
        // 0, 1 and 2 without a touch of their own, from the first data
        // page: 3.
        let size = port.store_size();
        assert_eq!(size.pages, 4);
        let mut store = port.store.lock().expect("lock");
        for i in [3u64, 7, 8, 9] {
            assert_eq!(
                store.take(first + i).expect("take"),
                Some(super::super::store::Restored::Bytes(
                    vec![i as u8 + 1; PAGE_BYTES].into()
                )),
                "page {i}"
            );
        }
    }

    #[test]
    fn the_summary_adds_up_the_rows() {
        let rows: Vec<Row> = [
            (Some(90), 5, 2, 10.0),
            (Some(100), 0, 3, 5.0),
            (None, 0, 0, 0.0),
        ]
        .into_iter()
        .map(|(resident, evicted, refaults, us)| Row {
            resident_pages: resident,
            evicted_pages: evicted,
            refaults,
            refault_us: us,
            ..Row::default()
        })
        .collect();
        let limit = LimitHandle::unlimited();
        limit.set_pages(Some(100));
        let mut tally = ReclaimTally::default();
        rows.iter().for_each(|r| tally.push(r));
        let s = tally.summary(&limit, StoreSize::default());
        assert_eq!(s.resident_mean_pages, Some(95.0));
        assert_eq!(s.resident_max_pages, Some(100));
        assert_eq!((s.evicted_pages, s.refaults), (5, 5));
        assert_eq!(s.refault_us, 15.0);
        assert_eq!(s.limit_pages, Some(100));
    }
}
