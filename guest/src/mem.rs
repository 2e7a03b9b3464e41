//! The memory API: every access a program makes through a [`Region`] marks
//! its page in the truth bitmaps, reads and writes apart.
//!
//! The VMM swaps each bitmap word with zero at every interval boundary. The
//! guest sets bits with an atomic OR (`lock or`) so that no bit set after the
//! swap is lost. To keep the common case cheap it first checks the bit with a
//! plain load and skips the OR when the bit is already set; the only access
//! this can miss is one racing with the swap of its own word, whose page was
//! then already counted in the interval that just ended.

use core::sync::atomic::{AtomicU64, Ordering};

use wss_abi::PAGE_SIZE;

const PAGE_WORDS: usize = (PAGE_SIZE / 8) as usize;

/// Where the truth bitmaps are, and which address is bit 0.
#[derive(Clone, Copy)]
pub struct Truth {
    read: *const AtomicU64,
    write: *const AtomicU64,
    words: usize,
    base: usize,
}

impl Truth {
    /// # Safety
    /// `read` and `write` must point to `words` valid `AtomicU64`s each that
    /// live as long as any `Region` built on this `Truth`.
    pub unsafe fn new(
        read: *const AtomicU64,
        write: *const AtomicU64,
        words: usize,
        base: usize,
    ) -> Truth {
        Truth {
            read,
            write,
            words,
            base,
        }
    }

    #[inline(always)]
    fn mark(&self, bits: *const AtomicU64, addr: usize) {
        let page = addr.wrapping_sub(self.base) >> 12;
        let word = page >> 6;
        if word >= self.words {
            return;
        }
        let mask = 1u64 << (page & 63);
        // SAFETY: `word < self.words`, and `new`'s contract makes the bitmap
        // valid for that many words.
        let w = unsafe { &*bits.add(word) };
        if w.load(Ordering::Relaxed) & mask == 0 {
            w.fetch_or(mask, Ordering::Relaxed);
        }
    }
}

/// A run of whole pages in the data region, handed out by the context's
/// allocator. Page `i` of the region is addressed by index; out-of-range
/// indices panic rather than touch memory outside the region.
#[derive(Clone, Copy)]
pub struct Region {
    base: *mut u64,
    pages: usize,
    truth: Truth,
}

impl Region {
    /// # Safety
    /// `[base, base + pages * PAGE_SIZE)` must be memory this region may read
    /// and write for as long as it is used.
    pub unsafe fn new(base: *mut u64, pages: usize, truth: Truth) -> Region {
        Region { base, pages, truth }
    }

    pub fn pages(&self) -> usize {
        self.pages
    }

    pub fn base_addr(&self) -> usize {
        self.base as usize
    }

    #[inline(always)]
    fn slot(&self, page: usize, word: usize) -> *mut u64 {
        assert!(page < self.pages, "page index out of region");
        // SAFETY: page < pages and word is reduced modulo the page's words,
        // so the pointer stays inside the region.
        unsafe { self.base.add(page * PAGE_WORDS + (word % PAGE_WORDS)) }
    }

    /// Reads word `word` of page `page`, marking the page read.
    #[inline(always)]
    pub fn read(&self, page: usize, word: usize) -> u64 {
        let p = self.slot(page, word);
        self.truth.mark(self.truth.read, p as usize);
        // SAFETY: `slot` returned an in-bounds, aligned pointer.
        unsafe { core::ptr::read_volatile(p) }
    }

    /// Writes word `word` of page `page`, marking the page written.
    #[inline(always)]
    pub fn write(&self, page: usize, word: usize, value: u64) {
        let p = self.slot(page, word);
        self.truth.mark(self.truth.write, p as usize);
        // SAFETY: `slot` returned an in-bounds, aligned pointer.
        unsafe { core::ptr::write_volatile(p, value) }
    }

    /// One access to a page: a write of `value` or a read. Returns what a
    /// read saw (0 for a write), for the caller to fold into a checksum.
    #[inline(always)]
    pub fn touch(&self, page: usize, write: bool, value: u64) -> u64 {
        let word = page.wrapping_mul(7) & (PAGE_WORDS - 1);
        if write {
            self.write(page, word, value);
            0
        } else {
            self.read(page, word)
        }
    }

    /// A checksum of the region's contents. It reads every page but marks
    /// nothing: it runs once, at exit, to show that tracking never changed
    /// the guest's memory.
    pub fn checksum(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for i in 0..self.pages * PAGE_WORDS {
            // SAFETY: i < pages * PAGE_WORDS, inside the region.
            let v = unsafe { core::ptr::read_volatile(self.base.add(i)) };
            if v != 0 {
                h = (h ^ v ^ i as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}
