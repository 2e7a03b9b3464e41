//! Reading the truth: the guest marks every page it reads or writes in two
//! bitmaps; at each interval boundary the VMM swaps every word with zero
//! and counts the bits. The swap is atomic, and the guest sets bits with
//! atomic ORs, so no bit is lost between the two sides.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// The true working set of one interval, in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruthSample {
    /// Distinct pages read or written.
    pub all: u64,
    /// Distinct pages written.
    pub writes: u64,
}

/// Takes (and clears) the bits of pages in `pages` (bit indices, that is
/// RAM page numbers) from the read and write bitmaps. Bits outside the
/// range are cleared too but not counted: only data pages count.
pub fn take(read: &[AtomicU64], write: &[AtomicU64], pages: Range<u64>) -> TruthSample {
    let mut sample = TruthSample::default();
    for (i, (r, w)) in read.iter().zip(write).enumerate() {
        let r = r.swap(0, Ordering::AcqRel);
        let w = w.swap(0, Ordering::AcqRel);
        let mask = word_mask(i as u64, &pages);
        sample.all += ((r | w) & mask).count_ones() as u64;
        sample.writes += (w & mask).count_ones() as u64;
    }
    sample
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
    fn masks_are_exact_at_word_edges() {
        assert_eq!(word_mask(0, &(0..64)), u64::MAX);
        assert_eq!(word_mask(1, &(0..64)), 0);
        assert_eq!(word_mask(0, &(63..65)), 1 << 63);
        assert_eq!(word_mask(1, &(63..65)), 1);
        assert_eq!(word_mask(2, &(130..131)), 1 << 2);
    }
}
