//! The memory API: every access a program makes through a [`Region`] marks
//! its page in the truth bitmaps, reads and writes apart.
//!
//! An access and its mark are done by one tiny assembly routine, so that
//! the VMM can tell when an interval boundary would split them: it holds
//! the vCPU at every boundary, and a vCPU held inside a routine (the access
//! done but not yet marked, or a tracked fault taken but the access not yet
//! retired) is moved to the same instruction of a finishing copy of the
//! routine, which completes both, rings the `boundary` doorbell and
//! returns. The boundary then falls between two whole accesses, and the
//! truth and the trackers count the very same set of pages.
//!
//! The mark first checks the bit with a plain load and skips the atomic OR
//! (`lock or`) when it is already set: most accesses hit a page already
//! marked in the interval, and the VMM clears bits only while the vCPU is
//! held.

use core::sync::atomic::AtomicU64;

use wss_abi::{DOORBELL_BASE, PAGE_SIZE, doorbell};

use crate::bounds::check_index;

const PAGE_WORDS: usize = (PAGE_SIZE / 8) as usize;

// The routines, then their finishing copies at the same offsets. Each
// routine is `access; test mark; jnz done; lock or mark; done: ret`; in the
// finishing copy `done:` rings the boundary doorbell before `ret`. Every
// routine starts on a 32-byte boundary, so its copy is at the same offset
// of the finishing block (a test checks the two line up byte for byte).
core::arch::global_asm!(
    ".pushsection .text.wss_touch,\"ax\",@progbits",
    ".balign 64",
    ".globl wss_touch_begin",
    "wss_touch_begin:",
    ".globl wss_touch_read",
    "wss_touch_read:",
    "    mov rax, qword ptr [rdi]",
    "    test qword ptr [rsi], rdx",
    "    jnz 2f",
    "    lock or qword ptr [rsi], rdx",
    "2:  ret",
    ".balign 32, 0xcc",
    ".globl wss_touch_write",
    "wss_touch_write:",
    "    mov qword ptr [rdi], rsi",
    "    test qword ptr [rdx], rcx",
    "    jnz 2f",
    "    lock or qword ptr [rdx], rcx",
    "2:  ret",
    ".balign 32, 0xcc",
    ".globl wss_touch_end",
    "wss_touch_end:",
    ".globl wss_touch_finish",
    "wss_touch_finish:",
    "    mov rax, qword ptr [rdi]",
    "    test qword ptr [rsi], rdx",
    "    jnz 2f",
    "    lock or qword ptr [rsi], rdx",
    "2:  mov qword ptr [{boundary}], 0",
    "    ret",
    ".balign 32, 0xcc",
    ".globl wss_touch_finish_write",
    "wss_touch_finish_write:",
    "    mov qword ptr [rdi], rsi",
    "    test qword ptr [rdx], rcx",
    "    jnz 2f",
    "    lock or qword ptr [rdx], rcx",
    "2:  mov qword ptr [{boundary}], 0",
    "    ret",
    ".balign 32, 0xcc",
    "wss_touch_finish_end:",
    ".popsection",
    boundary = const DOORBELL_BASE + doorbell::BOUNDARY,
);

unsafe extern "sysv64" {
    static wss_touch_begin: u8;
    static wss_touch_end: u8;
    static wss_touch_finish: u8;
    #[cfg(test)]
    static wss_touch_finish_write: u8;
    /// Reads `*addr`, then sets `mask` in `*word` unless already set.
    fn wss_touch_read(addr: *const u64, word: *const AtomicU64, mask: u64) -> u64;
    /// Writes `value` to `*addr`, then sets `mask` in `*word` unless
    /// already set.
    fn wss_touch_write(addr: *mut u64, value: u64, word: *const AtomicU64, mask: u64);
}

/// Where the access routines and their finishing copy are, as the status
/// block publishes them: (start, length, finishing copy).
pub fn touch_code() -> (u64, u64, u64) {
    let begin = &raw const wss_touch_begin as u64;
    let end = &raw const wss_touch_end as u64;
    let finish = &raw const wss_touch_finish as u64;
    (begin, end - begin, finish)
}

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

    /// The bitmap word and bit of the page at `addr`, if the bitmaps
    /// cover it.
    #[inline(always)]
    fn locate(&self, bits: *const AtomicU64, addr: usize) -> Option<(*const AtomicU64, u64)> {
        let page = addr.wrapping_sub(self.base) >> 12;
        let word = page >> 6;
        if word >= self.words {
            return None;
        }
        // SAFETY: `word < self.words`, and `new`'s contract makes the bitmap
        // valid for that many words.
        Some((unsafe { bits.add(word) }, 1u64 << (page & 63)))
    }

    /// Reads `*p` and marks its page read.
    ///
    /// # Safety
    /// `p` must be valid for an aligned 8-byte read.
    #[inline(always)]
    unsafe fn read(&self, p: *const u64) -> u64 {
        match self.locate(self.read, p as usize) {
            // SAFETY: `p` is valid for reads (the caller's contract) and
            // the word is a valid bitmap word; the routine does nothing else.
            Some((word, mask)) => unsafe { wss_touch_read(p, word, mask) },
            // SAFETY: as above; a page the bitmaps do not cover is not marked.
            None => unsafe { core::ptr::read_volatile(p) },
        }
    }

    /// Writes `*p` and marks its page written.
    ///
    /// # Safety
    /// `p` must be valid for an aligned 8-byte write.
    #[inline(always)]
    unsafe fn write(&self, p: *mut u64, value: u64) {
        match self.locate(self.write, p as usize) {
            // SAFETY: `p` is valid for writes (the caller's contract) and
            // the word is a valid bitmap word; the routine does nothing else.
            Some((word, mask)) => unsafe { wss_touch_write(p, value, word, mask) },
            // SAFETY: as above; a page the bitmaps do not cover is not marked.
            None => unsafe { core::ptr::write_volatile(p, value) },
        }
    }
}

/// A run of whole pages in the data region, handed out by the context's
/// allocator. Page `i` of the region is addressed by index, and word `w` of
/// it by `w < WORDS_PER_PAGE`; an index out of range is a guest panic that
/// names it (see [`crate::bounds`]), never an access outside the region.
#[derive(Clone, Copy)]
pub struct Region {
    base: *mut u64,
    pages: usize,
    truth: Truth,
}

/// 8-byte words in a page.
pub const WORDS_PER_PAGE: usize = PAGE_WORDS;

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

    /// Its length in 8-byte words, the bound of [`Region::read_word`].
    pub fn words(&self) -> usize {
        self.pages * PAGE_WORDS
    }

    pub fn base_addr(&self) -> usize {
        self.base as usize
    }

    /// The address of word `index` of the region, which the caller has
    /// checked against [`Region::words`].
    #[inline(always)]
    fn word_ptr(&self, index: usize) -> *mut u64 {
        debug_assert!(index < self.words());
        // SAFETY: index < pages * PAGE_WORDS (the callers check), so the
        // pointer stays inside the region.
        unsafe { self.base.add(index) }
    }

    #[inline(always)]
    #[track_caller]
    fn slot(&self, page: usize, word: usize) -> *mut u64 {
        check_index("page", page, self.pages);
        check_index("word", word, PAGE_WORDS);
        self.word_ptr(page * PAGE_WORDS + word)
    }

    /// Reads word `word` of page `page`, marking the page read.
    #[inline(always)]
    #[track_caller]
    pub fn read(&self, page: usize, word: usize) -> u64 {
        // SAFETY: `slot` returns an in-bounds, aligned pointer.
        unsafe { self.truth.read(self.slot(page, word)) }
    }

    /// Writes word `word` of page `page`, marking the page written.
    #[inline(always)]
    #[track_caller]
    pub fn write(&self, page: usize, word: usize, value: u64) {
        // SAFETY: `slot` returns an in-bounds, aligned pointer.
        unsafe { self.truth.write(self.slot(page, word), value) }
    }

    /// Reads word `index` of the region counted from its start (page
    /// `index / 512`), marking its page read.
    #[inline(always)]
    #[track_caller]
    pub fn read_word(&self, index: usize) -> u64 {
        check_index("word", index, self.words());
        // SAFETY: the index is checked, so the pointer is in bounds and aligned.
        unsafe { self.truth.read(self.word_ptr(index)) }
    }

    /// Writes word `index` of the region counted from its start, marking
    /// its page written.
    #[inline(always)]
    #[track_caller]
    pub fn write_word(&self, index: usize, value: u64) {
        check_index("word", index, self.words());
        // SAFETY: the index is checked, so the pointer is in bounds and aligned.
        unsafe { self.truth.write(self.word_ptr(index), value) }
    }

    /// One access to a page: a write of `value` or a read. Returns what a
    /// read saw (0 for a write), for the caller to fold into a checksum.
    #[inline(always)]
    #[track_caller]
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
        for i in 0..self.words() {
            // SAFETY: `word_ptr` is in bounds for i < words().
            let v = unsafe { core::ptr::read_volatile(self.word_ptr(i)) };
            if v != 0 {
                h = (h ^ v ^ i as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of the routine at `at`, up to its first `ret`, read from
    /// this very binary's code.
    fn up_to_ret(at: u64) -> &'static [u8] {
        // SAFETY: the routines are mapped code, at most 32 bytes apart.
        let code = unsafe { core::slice::from_raw_parts(at as *const u8, 32) };
        let end = code.iter().position(|&b| b == 0xc3).unwrap_or(code.len());
        &code[..end]
    }

    #[test]
    fn finishing_copy_lines_up_with_the_routines() {
        let (begin, len, finish) = touch_code();
        assert_eq!(len, 64, "two routines of 32 bytes");
        let read = wss_touch_read as *const () as u64;
        let write = wss_touch_write as *const () as u64;
        let finish_write = &raw const wss_touch_finish_write as u64;
        assert_eq!(read, begin);
        assert_eq!(write - begin, finish_write - finish);
        for (normal, copy) in [(read, finish), (write, finish_write)] {
            let n = up_to_ret(normal);
            let c = &up_to_ret(copy)[..n.len()];
            assert_eq!(
                n, c,
                "the finishing copy starts with the very same instructions"
            );
            // After them, the copy stores to the boundary doorbell (an
            // absolute `mov qword ptr [disp32], imm32`: 48 c7 04 25).
            let tail = &up_to_ret(copy)[n.len()..];
            assert_eq!(&tail[..4], &[0x48, 0xc7, 0x04, 0x25]);
            let addr = u32::from_le_bytes([tail[4], tail[5], tail[6], tail[7]]);
            assert_eq!(u64::from(addr), DOORBELL_BASE + doorbell::BOUNDARY);
        }
    }

    #[test]
    fn routines_access_and_mark() {
        let mut cell = 5u64;
        let word = AtomicU64::new(0b100);
        // SAFETY: valid pointers to locals.
        let seen = unsafe { wss_touch_read(&cell, &word, 0b1) };
        assert_eq!(seen, 5);
        assert_eq!(word.load(core::sync::atomic::Ordering::Relaxed), 0b101);
        // SAFETY: as above.
        unsafe { wss_touch_write(&mut cell, 9, &word, 0b10) };
        assert_eq!(cell, 9);
        assert_eq!(word.load(core::sync::atomic::Ordering::Relaxed), 0b111);
    }
}
