//! Reading the truth: the guest marks every page it reads or writes in two
//! bitmaps; at each interval boundary the VMM takes every non-zero word
//! (swapping it with zero) and counts the bits. The swap is atomic, and the
//! guest sets bits with atomic ORs, so no bit is lost between the two sides.
//!
//! The bitmaps cover all of guest RAM (2 MiB each for 64 GiB), while an
//! overcommitted guest touches a small part of it, so reading them costs
//! what the guest touched, not what it could touch:
//!
//! - A page of a bitmap that was never written is all zeros. Where the
//!   bitmaps are locked on fault ([`register_locked`]: their pages can be
//!   neither swapped out nor reclaimed), a page that `mincore` reports not
//!   resident was never written, and is skipped without being read (reading
//!   it would map the zero page and make it look resident from then on).
//!   Elsewhere every page is read.
//! - Words are read with a plain load and swapped only when non-zero. A word
//!   that reads zero is exactly as if the swap had found it zero (a bit set
//!   just after belongs to the next interval either way).
//!
//! So what is counted does not change; only the words nobody wrote are
//! no longer written back.

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wss_abi::PAGE_SIZE;

/// The true working set of one interval, in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruthSample {
    /// Distinct pages read or written.
    pub all: u64,
    /// Distinct pages written.
    pub writes: u64,
}

/// Host address ranges of bitmaps whose pages are locked on fault, where
/// `mincore` tells exactly which pages may hold a set bit.
static LOCKED: Mutex<Vec<Range<usize>>> = Mutex::new(Vec::new());

fn locked_ranges() -> std::sync::MutexGuard<'static, Vec<Range<usize>>> {
    // Plain ranges: a panic elsewhere cannot leave them inconsistent.
    LOCKED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Declares the host range `range` locked on fault (`mlock2` with
/// `MLOCK_ONFAULT`) for as long as it stays registered: bitmaps inside it
/// are read only where `mincore` reports resident pages.
pub fn register_locked(range: Range<usize>) {
    locked_ranges().push(range);
}

/// Withdraws a range given to [`register_locked`] (before it is unmapped).
pub fn unregister_locked(range: &Range<usize>) {
    locked_ranges().retain(|r| r != range);
}

/// Takes (and clears) the bits of pages in `pages` (bit indices, that is
/// RAM page numbers) from the read and write bitmaps. Bits outside the
/// range are cleared too but not counted: only data pages count.
pub fn take(read: &[AtomicU64], write: &[AtomicU64], pages: Range<u64>) -> TruthSample {
    take_counting(read, write, pages).0
}

/// [`take`], also returning how many words it read.
pub fn take_counting(
    read: &[AtomicU64],
    write: &[AtomicU64],
    pages: Range<u64>,
) -> (TruthSample, u64) {
    let mut sample = TruthSample::default();
    let scanned = take_words(read, write, &pages, |_, all, writes| {
        sample.all += all.count_ones() as u64;
        sample.writes += writes.count_ones() as u64;
    });
    (sample, scanned)
}

/// The pages themselves: [`take`], returning the sorted page numbers (bit
/// indices) inside `pages` that were read or written, and those written.
/// The recorder of exact traces needs the sets, not only their sizes.
pub fn take_pages(read: &[AtomicU64], write: &[AtomicU64], pages: Range<u64>) -> TruthPages {
    let mut out = TruthPages::default();
    take_words(read, write, &pages, |i, all, writes| {
        push_bits(&mut out.all, i, all);
        push_bits(&mut out.writes, i, writes);
    });
    out
}

/// The pages of one take, as sorted page numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TruthPages {
    /// Pages read or written.
    pub all: Vec<u64>,
    /// Pages written.
    pub writes: Vec<u64>,
}

fn push_bits(out: &mut Vec<u64>, word: u64, mut bits: u64) {
    while bits != 0 {
        out.push(word * 64 + u64::from(bits.trailing_zeros()));
        bits &= bits - 1;
    }
}

/// Takes (and clears) every non-zero word of both bitmaps and calls
/// `visit(word index, read-or-written bits, written bits)` in word order
/// with the bits inside `pages`; returns how many words it read.
fn take_words(
    read: &[AtomicU64],
    write: &[AtomicU64],
    pages: &Range<u64>,
    mut visit: impl FnMut(u64, u64, u64),
) -> u64 {
    let words = read.len().min(write.len());
    let (read, write) = (&read[..words], &write[..words]);
    let mut scanned = 0u64;
    let mut nonzero = |bits: &[AtomicU64]| {
        let mut found = Vec::new();
        for span in written_spans(bits) {
            scanned += span.len() as u64;
            for (i, word) in bits[span.clone()].iter().enumerate() {
                let v = take_word(word);
                if v != 0 {
                    found.push((span.start + i, v));
                }
            }
        }
        found
    };
    let w = nonzero(write);
    let r = nonzero(read);
    // Merge the two sorted sparse lists by word index.
    let (mut ri, mut wi) = (r.iter().peekable(), w.iter().peekable());
    loop {
        let (i, rv, wv) = match (ri.peek(), wi.peek()) {
            (None, None) => break,
            (Some(&&(i, rv)), Some(&&(j, wv))) if i == j => {
                ri.next();
                wi.next();
                (i, rv, wv)
            }
            (Some(&&(i, rv)), Some(&&(j, _))) if i < j => {
                ri.next();
                (i, rv, 0)
            }
            (Some(&&(i, rv)), None) => {
                ri.next();
                (i, rv, 0)
            }
            (_, Some(&&(j, wv))) => {
                wi.next();
                (j, 0, wv)
            }
        };
        let mask = word_mask(i as u64, pages);
        let (all, writes) = ((rv | wv) & mask, wv & mask);
        if all != 0 {
            visit(i as u64, all, writes);
        }
    }
    scanned
}

/// The word's bits, cleared: a plain load, and the atomic swap only when
/// some bit is set.
#[inline]
fn take_word(word: &AtomicU64) -> u64 {
    if word.load(Ordering::Relaxed) == 0 {
        0
    } else {
        word.swap(0, Ordering::AcqRel)
    }
}

/// The word ranges of `bits` that may hold a set bit: those on resident
/// pages when `bits` lies in a locked range and `mincore` answers, else
/// all of it.
fn written_spans(bits: &[AtomicU64]) -> Vec<Range<usize>> {
    if bits.is_empty() {
        return Vec::new();
    }
    let all = std::iter::once(0..bits.len()).collect::<Vec<_>>();
    let start = bits.as_ptr() as usize;
    let end = start + std::mem::size_of_val(bits);
    if !locked_ranges()
        .iter()
        .any(|r| r.start <= start && end <= r.end)
    {
        return all;
    }
    let page = PAGE_SIZE as usize;
    let first = start & !(page - 1);
    let Ok(resident) = mincore(first, end - first) else {
        return all;
    };
    let word_at = |addr: usize| ((addr.clamp(start, end) - start) / 8).min(bits.len());
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (k, &flag) in resident.iter().enumerate() {
        if flag & 1 == 0 {
            continue;
        }
        let lo = word_at(first + k * page);
        let hi = word_at(first + (k + 1) * page);
        match spans.last_mut() {
            Some(last) if last.end == lo => last.end = hi,
            _ if lo < hi => spans.push(lo..hi),
            _ => {}
        }
    }
    spans
}

/// `mincore` over `[addr, addr + len)` (`addr` page-aligned): one byte per
/// page, bit 0 set for resident pages. Also what the sampler asks of guest
/// RAM for the pages resident in its memfd (`GuestMemory::resident_data`).
pub(crate) fn mincore(addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut vec = vec![0u8; len.div_ceil(PAGE_SIZE as usize)];
    // SAFETY: mincore only reads the process's page tables for the range
    // and writes one byte per page into `vec`, which has exactly that many.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(vec)
}

/// The bits of word `i` that fall inside `pages`.
fn word_mask(i: u64, pages: &Range<u64>) -> u64 {
    let lo = i * 64;
    let hi = lo + 64;
    if pages.end <= lo || pages.start >= hi {
        return 0;
    }
    let from = pages.start.max(lo) - lo;
    let to = pages.end.min(hi) - lo;
    let upper = if to == 64 { u64::MAX } else { (1u64 << to) - 1 };
    upper & !((1u64 << from) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitmap(bits: &[u64], words: usize) -> Vec<AtomicU64> {
        let v: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        for &b in bits {
            v[(b / 64) as usize].fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
        v
    }

    #[test]
    fn counts_union_and_writes_and_clears() {
        let read = bitmap(&[1, 2, 3, 64, 200], 4);
        let write = bitmap(&[3, 4, 130], 4);
        let s = take(&read, &write, 0..256);
        assert_eq!(s, TruthSample { all: 7, writes: 3 });
        assert_eq!(
            take(&read, &write, 0..256),
            TruthSample::default(),
            "bits are cleared"
        );
    }

    #[test]
    fn counts_only_the_data_range() {
        let read = bitmap(&[0, 9, 10, 63, 64, 127, 128], 3);
        let write = bitmap(&[10, 128], 3);
        // Pages 10..128: 10, 63, 64, 127 count; 0, 9 (code, stack) and 128 do not.
        assert_eq!(
            take(&read, &write, 10..128),
            TruthSample { all: 4, writes: 1 }
        );
    }

    #[test]
    fn sparse_bitmaps_of_a_large_guest_count_exactly() {
        // 64 GiB of RAM: 262144 words per bitmap, a few of them in use, at
        // both ends and in the middle.
        let words = (64u64 << 30) / 4096 / 64;
        let last = words * 64 - 1;
        let read = bitmap(&[0, 1, 64 * 1000 + 5, last], words as usize);
        let write = bitmap(&[1, 64 * 1000 + 6, last - 64], words as usize);
        assert_eq!(
            take(&read, &write, 1..last + 1),
            TruthSample { all: 5, writes: 3 }
        );
        assert!(
            read.iter()
                .chain(&write)
                .all(|w| w.load(Ordering::Relaxed) == 0)
        );
        // Bits set after a take belong to the next one.
        read[7].fetch_or(1, Ordering::Relaxed);
        assert_eq!(
            take(&read, &write, 0..last + 1),
            TruthSample { all: 1, writes: 0 }
        );
    }

    #[test]
    fn masks_are_exact_at_word_edges() {
        assert_eq!(word_mask(0, &(0..64)), u64::MAX);
        assert_eq!(word_mask(1, &(0..64)), 0);
        assert_eq!(word_mask(0, &(63..65)), 1 << 63);
        assert_eq!(word_mask(1, &(63..65)), 1);
        assert_eq!(word_mask(2, &(130..131)), 1 << 2);
    }

    #[test]
    fn take_pages_lists_the_pages_it_counts() {
        let read = bitmap(&[0, 9, 10, 63, 64, 127, 128], 3);
        let write = bitmap(&[10, 70, 128], 3);
        let p = take_pages(&read, &write, 10..128);
        assert_eq!(p.all, vec![10, 63, 64, 70, 127]);
        assert_eq!(p.writes, vec![10, 70]);
        assert_eq!(take_pages(&read, &write, 0..192), TruthPages::default());
    }
}
