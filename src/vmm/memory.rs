//! Guest memory: tracked RAM on a memfd mapped MAP_SHARED (so that every
//! tracker works on it: userfaultfd minor faults need shmem), and a separate
//! metadata mapping the VMM never tracks (parameters, status, truth bitmaps,
//! page tables).
//!
//! The VMM never reads tracked RAM through the mapping: a page may be
//! PROT_NONE (mprotect tracker) or zapped (uffd tracker) at any time. Reads
//! go through `pread` on the memfd, which sees the same page-cache pages
//! without faulting on the mapping.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::AtomicU64;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap};
use wss_abi::{META_BASE, Params, RAM_BASE, Status};

use super::layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("cannot create the memfd that backs guest RAM")]
    Memfd(#[source] std::io::Error),
    #[error("cannot size guest RAM to {size} bytes")]
    Truncate {
        size: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot map guest memory")]
    Map(#[source] vm_memory::mmap::MmapRegionError),
    #[error("cannot assemble guest memory")]
    Collection(#[source] vm_memory::GuestRegionCollectionError),
    #[error("cannot write guest memory at {addr:#x}")]
    Write {
        addr: u64,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    #[error("guest range {addr:#x}+{len:#x} lies outside guest memory")]
    OutOfBounds { addr: u64, len: u64 },
    #[error("cannot read guest RAM at {addr:#x}")]
    Read {
        addr: u64,
        #[source]
        source: std::io::Error,
    },
}

/// Guest memory of one VM. Shared (behind an `Arc`) by the VM and its vCPU
/// so that it is unmapped only after every KVM file descriptor is closed.
pub struct GuestMemory {
    mem: GuestMemoryMmap,
    ram_file: File,
    ram_host: usize,
    meta_host: usize,
    layout: Layout,
    /// The host range of both truth bitmaps when it is locked on fault and
    /// registered with `truth` (see `lock_bitmaps`).
    locked_bitmaps: Option<std::ops::Range<usize>>,
}

impl GuestMemory {
    pub fn new(layout: &Layout) -> Result<GuestMemory, MemoryError> {
        // SAFETY: memfd_create takes a NUL-terminated name and flags; it
        // returns a new fd or -1.
        let fd = unsafe { libc::memfd_create(c"kvm-wss-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a freshly created descriptor nobody else owns.
        let ram_file = unsafe { File::from_raw_fd(fd) };
        ram_file
            .set_len(layout.ram_size)
            .map_err(|source| MemoryError::Truncate {
                size: layout.ram_size,
                source,
            })?;
        let ram_map = MmapRegionBuilder::new(layout.ram_size as usize)
            .with_file_offset(FileOffset::new(
                ram_file.try_clone().map_err(MemoryError::Memfd)?,
                0,
            ))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
            .build()
            .map_err(MemoryError::Map)?;
        let meta_map = MmapRegionBuilder::new(layout.meta_size as usize)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE)
            .build()
            .map_err(MemoryError::Map)?;
        let ram_host = ram_map.as_ptr() as usize;
        let meta_host = meta_map.as_ptr() as usize;
        let regions = vec![
            GuestRegionMmap::new(meta_map, GuestAddress(META_BASE)),
            GuestRegionMmap::new(ram_map, GuestAddress(RAM_BASE)),
        ];
        let regions = regions
            .into_iter()
            .map(|r| {
                r.ok_or(MemoryError::OutOfBounds {
                    addr: RAM_BASE,
                    len: layout.ram_size,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mem = GuestMemoryMmap::from_regions(regions).map_err(MemoryError::Collection)?;
        let bitmaps = meta_host + (layout.read_bitmap - META_BASE) as usize
            ..meta_host + (layout.page_tables - META_BASE) as usize;
        Ok(GuestMemory {
            mem,
            ram_file,
            ram_host,
            meta_host,
            layout: *layout,
            locked_bitmaps: lock_bitmaps(bitmaps),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The vm-memory view, for registering slots with KVM.
    pub fn mmap(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// Host address where guest RAM (`RAM_BASE`) is mapped.
    /// The data pages (counted from the first data page, as the
    /// estimators' domain is) resident in the guest-RAM memfd: for a shared
    /// memfd mapping `mincore` reports the file's page cache, so a page the
    /// trackers zapped from the mapping but not from the file still counts.
    /// No tracker makes an untouched page resident (the uffd trackers fill
    /// a hole only when the guest touches it), so this is the set of data
    /// pages the guest has ever touched (and not had reclaimed).
    pub fn resident_data(&self) -> std::io::Result<crate::record::PageSet> {
        let ram = crate::residency::resident_pages(self.ram_host, self.layout.ram_pages())?;
        Ok(self.data_pages_among(&ram))
    }

    /// The data pages among the RAM pages `ram`, counted from the first
    /// data page (the estimators' domain).
    pub fn data_pages_among(
        &self,
        ram: &crate::track::page_bits::PageBits,
    ) -> crate::record::PageSet {
        let data = self.layout.data_page_range();
        crate::record::PageSet::from_sorted(
            ram.to_vec()
                .into_iter()
                .filter(|p| data.contains(p))
                .map(|p| p - data.start),
        )
    }

    pub fn ram_host_addr(&self) -> usize {
        self.ram_host
    }

    /// Host address where the metadata slot (`META_BASE`) is mapped.
    pub fn meta_host_addr(&self) -> usize {
        self.meta_host
    }

    /// The memfd behind guest RAM.
    pub fn ram_file(&self) -> &File {
        &self.ram_file
    }

    /// Writes `bytes` at guest-physical `addr` through the mapping. Used at
    /// boot only, before any page is tracked.
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), MemoryError> {
        self.mem
            .write_slice(bytes, GuestAddress(addr))
            .map_err(|source| MemoryError::Write { addr, source })
    }

    /// Writes the parameter block.
    pub fn write_params(&self, params: &Params) -> Result<(), MemoryError> {
        // SAFETY: Params is repr(C) plain data made of u64s and byte arrays
        // with no padding; viewing it as bytes reads only initialised memory.
        let bytes = unsafe {
            std::slice::from_raw_parts((params as *const Params).cast::<u8>(), size_of::<Params>())
        };
        self.write(self.layout.params, bytes)
    }

    /// Reads `len` bytes at guest-physical `addr`, from RAM or metadata,
    /// after checking that the whole range lies inside one of them. Never
    /// touches the RAM mapping (see the module comment).
    pub fn read(&self, addr: u64, len: u64) -> Result<Vec<u8>, MemoryError> {
        let oob = MemoryError::OutOfBounds { addr, len };
        let end = addr
            .checked_add(len)
            .ok_or(MemoryError::OutOfBounds { addr, len })?;
        let mut buf = vec![0u8; len as usize];
        if addr >= RAM_BASE && end <= self.layout.ram_end() {
            let off = addr - RAM_BASE;
            std::os::unix::fs::FileExt::read_exact_at(&self.ram_file, &mut buf, off)
                .map_err(|source| MemoryError::Read { addr, source })?;
            Ok(buf)
        } else if addr >= META_BASE && end <= META_BASE + self.layout.meta_size {
            self.mem
                .read_slice(&mut buf, GuestAddress(addr))
                .map_err(|_| oob)?;
            Ok(buf)
        } else {
            Err(oob)
        }
    }

    /// Reads an aligned u64 (a page-table entry), or `None` if out of bounds.
    /// Entries in the metadata slot (where the VMM puts the page tables)
    /// are one atomic load, with no allocation and no syscall: the mprotect
    /// tracker walks the tables several times per tracked fault.
    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        let meta = META_BASE..META_BASE + self.layout.meta_size;
        if addr.is_multiple_of(8) && meta.contains(&addr) {
            return Some(self.meta_atomics(addr, 1)[0].load(std::sync::atomic::Ordering::Relaxed));
        }
        let bytes = self.read(addr, 8).ok()?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn meta_atomics(&self, addr: u64, words: u64) -> &[AtomicU64] {
        let off = addr - META_BASE;
        assert!(
            off.is_multiple_of(8) && off + words * 8 <= self.layout.meta_size,
            "metadata range out of bounds"
        );
        // SAFETY: the range lies inside the metadata mapping (checked above),
        // which lives as long as `self`, is 8-byte aligned (page-aligned
        // mapping, aligned offset), and is only ever accessed atomically or
        // by the guest with aligned u64 stores.
        unsafe {
            std::slice::from_raw_parts(
                (self.meta_host + off as usize) as *const AtomicU64,
                words as usize,
            )
        }
    }

    /// The read and write truth bitmaps, shared with the guest.
    pub fn truth_bitmaps(&self) -> (&[AtomicU64], &[AtomicU64]) {
        let l = &self.layout;
        (
            self.meta_atomics(l.read_bitmap, l.bitmap_words),
            self.meta_atomics(l.write_bitmap, l.bitmap_words),
        )
    }

    /// A consistent-enough snapshot of the status block: each field is read
    /// with one atomic load, as the guest writes each with one store.
    pub fn status(&self) -> Status {
        let words = self.meta_atomics(self.layout.status, (size_of::<Status>() / 8) as u64);
        let v: Vec<u64> = words
            .iter()
            .map(|w| w.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        let mut s = Status::default();
        // SAFETY: Status is repr(C) and made only of u64s, so it has exactly
        // `words.len()` u64 slots and any bit pattern is valid.
        unsafe {
            std::ptr::copy_nonoverlapping(
                v.as_ptr(),
                (&mut s as *mut Status).cast::<u64>(),
                v.len(),
            );
        }
        s
    }

    pub fn ram_fd(&self) -> i32 {
        self.ram_file.as_raw_fd()
    }
}

/// Locks the truth bitmaps' pages as they fault in (`MLOCK_ONFAULT`: no
/// page is allocated here) so that they are never swapped out, and tells
/// `truth` so: then a page `mincore` reports absent was never written, and
/// reading the truth costs the pages in use, not all of RAM. Small huge
/// pages are refused on the range so that residency stays per 4 KiB page.
/// Without the lock (RLIMIT_MEMLOCK too low) the truth reads every page,
/// as exact and slower.
fn lock_bitmaps(range: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    let (addr, len) = (range.start as *mut libc::c_void, range.end - range.start);
    // SAFETY: the range lies inside the metadata mapping just created and
    // owned by the caller; the advice and the lock change no contents.
    let (_, locked) = unsafe {
        (
            libc::madvise(addr, len, libc::MADV_NOHUGEPAGE),
            libc::mlock2(addr, len, libc::MLOCK_ONFAULT),
        )
    };
    if locked != 0 {
        log::info!(
            "cannot lock the truth bitmaps ({}); the truth reads all of them",
            std::io::Error::last_os_error()
        );
        return None;
    }
    crate::truth::register_locked(range.clone());
    Some(range)
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // Before the fields (and the mapping) go.
        if let Some(range) = &self.locked_bitmaps {
            crate::truth::unregister_locked(range);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_u64_in_metadata_ram_and_out_of_bounds() {
        let layout = Layout::new(4 << 20, RAM_BASE + 0x1000, 1 << 20).expect("layout");
        let m = GuestMemory::new(&layout).expect("memory");
        let pt = layout.page_tables;
        m.write(pt + 8, &0x1122_3344_5566_7788u64.to_le_bytes())
            .expect("write");
        m.write(RAM_BASE + 16, &42u64.to_le_bytes()).expect("write");
        // Aligned metadata: the atomic load.
        assert_eq!(m.read_u64(pt + 8), Some(0x1122_3344_5566_7788));
        assert_eq!(m.read_u64(pt), Some(0));
        // Unaligned metadata goes the general way and sees the same bytes.
        assert_eq!(m.read_u64(pt + 9), Some(0x0011_2233_4455_6677));
        // RAM, through the memfd.
        assert_eq!(m.read_u64(RAM_BASE + 16), Some(42));
        // The last word of each slot, and just past them.
        let meta_end = META_BASE + layout.meta_size;
        assert_eq!(m.read_u64(meta_end - 8), Some(0));
        assert_eq!(m.read_u64(meta_end), None);
        assert_eq!(m.read_u64(layout.ram_end() - 8), Some(0));
        assert_eq!(m.read_u64(layout.ram_end()), None);
        assert_eq!(m.read_u64(u64::MAX - 3), None);
    }

    #[test]
    fn truth_of_a_64g_guest_reads_only_the_bitmap_pages_in_use() {
        use std::sync::atomic::Ordering;
        let layout =
            Layout::new(wss_abi::MAX_RAM_SIZE, RAM_BASE + 0x1000, 64 << 20).expect("layout");
        let m = GuestMemory::new(&layout).expect("memory");
        let (read, write) = m.truth_bitmaps();
        let data = layout.data_first_page()..layout.ram_pages();
        let words = layout.bitmap_words;
        // Pages near the start, the middle and the end of RAM, as a guest
        // with a small working set in a large RAM would touch.
        let last = layout.ram_pages() - 1;
        for p in [data.start, data.start + 1, last / 2, last] {
            read[(p / 64) as usize].fetch_or(1 << (p % 64), Ordering::Relaxed);
        }
        write[(last / 2 / 64) as usize].fetch_or(1 << (last / 2 % 64), Ordering::Relaxed);
        let (sample, scanned) = crate::truth::take_counting(read, write, data.clone());
        assert_eq!(sample, crate::truth::TruthSample { all: 4, writes: 1 });
        if m.locked_bitmaps.is_none() {
            eprintln!("skipping the scaling check: the bitmaps could not be locked");
            return;
        }
        // Three pages of each bitmap hold bits (512 words a page); the
        // other 2 * 509 were never read, let alone swapped.
        assert!(
            scanned <= 2 * 3 * 512,
            "{scanned} of {} words read",
            2 * words
        );
        let (again, _) = crate::truth::take_counting(read, write, data);
        assert_eq!(again, crate::truth::TruthSample::default());
    }
}
