//! Typed arrays over guest memory: `Array<u8>`, `Array<u32>`, `Array<u64>`
//! and `Array<f64>`, allocated with [`Ctx::alloc_array`](crate::Ctx::alloc_array).
//!
//! Every element access goes through the region's word access, so it marks
//! the truth exactly as [`Region::read_word`] and [`Region::write_word`] do:
//! reading an element marks its page read; writing a 64-bit element marks
//! it written; writing an element narrower than a word reads the word that
//! holds it and writes it back (the guest really does both, so the page is
//! marked read and written). Indices and ranges follow the one bounds rule
//! of [`crate::bounds`]: out of range is a guest panic naming the index and
//! the length.

use core::marker::PhantomData;
use core::ops::Range;

use crate::bounds::{check_index, check_range};
use crate::mem::{Region, WORDS_PER_PAGE};

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
    impl Sealed for f64 {}
}

/// A type an [`Array`] can hold: a plain value of 8, 32 or 64 bits that
/// packs into the 8-byte words the truth-marking routines access.
pub trait Element: Copy + sealed::Sealed {
    /// Size in bits; a power of two up to 64.
    const BITS: u32;
    fn to_bits(self) -> u64;
    fn from_bits(bits: u64) -> Self;
}

impl Element for u8 {
    const BITS: u32 = 8;
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Self {
        bits as u8
    }
}

impl Element for u32 {
    const BITS: u32 = 32;
    fn to_bits(self) -> u64 {
        u64::from(self)
    }
    fn from_bits(bits: u64) -> Self {
        bits as u32
    }
}

impl Element for u64 {
    const BITS: u32 = 64;
    fn to_bits(self) -> u64 {
        self
    }
    fn from_bits(bits: u64) -> Self {
        bits
    }
}

impl Element for f64 {
    const BITS: u32 = 64;
    fn to_bits(self) -> u64 {
        f64::to_bits(self)
    }
    fn from_bits(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

/// Elements of `T` per 8-byte word.
const fn per_word<T: Element>() -> usize {
    (64 / T::BITS) as usize
}

/// The mask of one element's bits, in the low bits of a word.
const fn lane_mask<T: Element>() -> u64 {
    if T::BITS == 64 {
        u64::MAX
    } else {
        (1u64 << T::BITS) - 1
    }
}

/// `value` repeated in every lane of a word, for whole-word fills.
fn splat<T: Element>(value: T) -> u64 {
    let bits = value.to_bits() & lane_mask::<T>();
    (0..per_word::<T>()).fold(0, |w, lane| w | bits << (lane as u32 * T::BITS))
}

/// The word that holds element `index`, and the element's shift in it.
#[inline(always)]
const fn locate<T: Element>(index: usize) -> (usize, u32) {
    (
        index / per_word::<T>(),
        (index % per_word::<T>()) as u32 * T::BITS,
    )
}

/// Words needed for `len` elements of `T`.
pub const fn words_for<T: Element>(len: usize) -> usize {
    len.div_ceil(per_word::<T>())
}

/// Pages needed for `len` elements of `T`.
pub const fn pages_for<T: Element>(len: usize) -> usize {
    words_for::<T>(len).div_ceil(WORDS_PER_PAGE)
}

/// `len` elements of `T` laid out from the start of a [`Region`]. A handle:
/// copies of it refer to the same memory, as `Region` does.
#[derive(Clone, Copy)]
pub struct Array<T: Element> {
    region: Region,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T: Element> Array<T> {
    /// An array of `len` elements at the start of `region`. Panics if the
    /// region is too small for them.
    #[track_caller]
    pub fn over(region: Region, len: usize) -> Array<T> {
        let words = words_for::<T>(len);
        if words > region.words() {
            panic!(
                "array of {len} elements needs {words} words, the region has {}",
                region.words()
            );
        }
        Array {
            region,
            len,
            _elements: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory under the array.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Element `index`, marking its page read.
    #[inline(always)]
    #[track_caller]
    pub fn get(&self, index: usize) -> T {
        check_index("element", index, self.len);
        self.get_unchecked(index)
    }

    /// Sets element `index`, marking its page written (and read, for
    /// elements narrower than a word).
    #[inline(always)]
    #[track_caller]
    pub fn set(&self, index: usize, value: T) {
        check_index("element", index, self.len);
        self.set_unchecked(index, value);
    }

    /// An iterator over the elements in `range`, reading (and marking)
    /// each as it is reached.
    #[track_caller]
    pub fn iter(&self, range: Range<usize>) -> Iter<T> {
        check_range("element", &range, self.len);
        Iter {
            array: *self,
            range,
        }
    }

    /// Sets every element in `range` to `value`. Words the range covers
    /// whole are written at once; elements at either ragged end are set
    /// one by one.
    #[track_caller]
    pub fn fill(&self, range: Range<usize>, value: T) {
        check_range("element", &range, self.len);
        let whole = splat(value);
        let mut i = range.start;
        while i < range.end {
            let (word, shift) = locate::<T>(i);
            if shift == 0 && range.end - i >= per_word::<T>() {
                self.region.write_word(word, whole);
                i += per_word::<T>();
            } else {
                self.set_unchecked(i, value);
                i += 1;
            }
        }
    }

    /// Copies the elements in `src` to the elements starting at `dest`,
    /// like `slice::copy_within`: overlapping ranges are copied as if
    /// through a buffer.
    #[track_caller]
    pub fn copy_within(&self, src: Range<usize>, dest: usize) {
        self.copy_from(self, src, dest);
    }

    /// Copies elements `src` of `from` to the elements of this array
    /// starting at `dest`. The two may be the same memory (or overlap):
    /// the copy runs in the direction that reads every element before it
    /// is overwritten.
    #[track_caller]
    pub fn copy_from(&self, from: &Array<T>, src: Range<usize>, dest: usize) {
        check_range("element", &src, from.len);
        let n = src.end.saturating_sub(src.start);
        let dest_range = dest..dest.saturating_add(n);
        check_range("element", &dest_range, self.len);
        let bytes = (T::BITS / 8) as usize;
        let src_addr = from.region.base_addr() + src.start * bytes;
        let dest_addr = self.region.base_addr() + dest * bytes;
        if dest_addr > src_addr {
            for k in (0..n).rev() {
                self.set_unchecked(dest + k, from.get_unchecked(src.start + k));
            }
        } else {
            for k in 0..n {
                self.set_unchecked(dest + k, from.get_unchecked(src.start + k));
            }
        }
    }

    /// Element `index` (`index < len`, checked by the caller).
    #[inline(always)]
    fn get_unchecked(&self, index: usize) -> T {
        let (word, shift) = locate::<T>(index);
        T::from_bits(self.region.read_word(word) >> shift)
    }

    /// Sets element `index` (`index < len`, checked by the caller).
    #[inline(always)]
    fn set_unchecked(&self, index: usize, value: T) {
        let (word, shift) = locate::<T>(index);
        if T::BITS == 64 {
            self.region.write_word(word, value.to_bits());
        } else {
            let mask = lane_mask::<T>() << shift;
            let old = self.region.read_word(word);
            let new = (old & !mask) | ((value.to_bits() << shift) & mask);
            self.region.write_word(word, new);
        }
    }
}

/// The elements of a range of an [`Array`], read one at a time.
pub struct Iter<T: Element> {
    array: Array<T>,
    range: Range<usize>,
}

impl<T: Element> Iterator for Iter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let i = self.range.next()?;
        Some(self.array.get_unchecked(i))
    }

    /// Skips `n` elements without reading them, so `step_by` reads (and
    /// marks) only the elements it yields.
    fn nth(&mut self, n: usize) -> Option<T> {
        let i = self.range.nth(n)?;
        Some(self.array.get_unchecked(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl<T: Element> DoubleEndedIterator for Iter<T> {
    fn next_back(&mut self) -> Option<T> {
        let i = self.range.next_back()?;
        Some(self.array.get_unchecked(i))
    }
}

impl<T: Element> ExactSizeIterator for Iter<T> {}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::sync::atomic::{AtomicU64, Ordering};
    use std::boxed::Box;
    use std::vec::Vec;

    use super::*;
    use crate::mem::Truth;

    const PAGES: usize = 4;

    #[repr(C, align(4096))]
    struct Pages([u64; PAGES * WORDS_PER_PAGE]);

    /// Host memory with its own truth bitmaps: what a guest's data region
    /// is, so that marking can be checked page by page.
    struct Mem {
        pages: Box<Pages>,
        read: AtomicU64,
        write: AtomicU64,
    }

    impl Mem {
        fn new() -> Box<Mem> {
            Box::new(Mem {
                pages: Box::new(Pages([0; PAGES * WORDS_PER_PAGE])),
                read: AtomicU64::new(0),
                write: AtomicU64::new(0),
            })
        }

        fn region(&mut self) -> Region {
            let base = self.pages.0.as_mut_ptr();
            // SAFETY: both bitmaps are one valid word each and outlive the
            // region (the tests keep `self` alive while using it).
            let truth = unsafe { Truth::new(&self.read, &self.write, 1, base as usize) };
            // SAFETY: `PAGES` pages of our own memory.
            unsafe { Region::new(base, PAGES, truth) }
        }

        /// (read, written) pages since the last call, as bit masks.
        fn take_marks(&self) -> (u64, u64) {
            (
                self.read.swap(0, Ordering::Relaxed),
                self.write.swap(0, Ordering::Relaxed),
            )
        }
    }

    #[test]
    fn layout_helpers() {
        assert_eq!(words_for::<u8>(9), 2);
        assert_eq!(words_for::<u32>(3), 2);
        assert_eq!(words_for::<f64>(3), 3);
        assert_eq!(pages_for::<u8>(4096), 1);
        assert_eq!(pages_for::<u8>(4097), 2);
        assert_eq!(pages_for::<u64>(1025), 3);
        assert_eq!(splat(0xabu8), 0xabab_abab_abab_abab);
        assert_eq!(splat(7u32), 0x0000_0007_0000_0007);
    }

    #[test]
    fn get_and_set_every_type_and_mark_pages() {
        let mut mem = Mem::new();
        let bytes: Array<u8> = Array::over(mem.region(), PAGES * 4096);
        bytes.set(4096 + 3, 0xfe);
        // A byte store reads and writes its word; only page 1 is touched.
        assert_eq!(mem.take_marks(), (0b10, 0b10));
        assert_eq!(bytes.get(4096 + 3), 0xfe);
        assert_eq!(bytes.get(4096 + 2), 0);
        assert_eq!(mem.take_marks(), (0b10, 0));
        assert_eq!(mem.pages.0[512], 0xfe << 24);

        let words: Array<u32> = Array::over(mem.region(), PAGES * 1024);
        words.set(3 * 1024 + 1, 0xdead_beef);
        assert_eq!(words.get(3 * 1024 + 1), 0xdead_beef);
        assert_eq!(words.get(3 * 1024), 0);
        assert_eq!(mem.take_marks(), (0b1000, 0b1000));

        let reals: Array<f64> = Array::over(mem.region(), PAGES * 512);
        reals.set(1000, -2.5);
        // A whole-word store does not read.
        assert_eq!(mem.take_marks(), (0, 0b10));
        assert_eq!(reals.get(1000), -2.5);
        let longs: Array<u64> = Array::over(mem.region(), PAGES * 512);
        assert_eq!(longs.get(1000), (-2.5f64).to_bits());
        assert_eq!(mem.take_marks(), (0b10, 0));
    }

    #[test]
    fn fill_writes_whole_words_and_ragged_ends() {
        let mut mem = Mem::new();
        let bytes: Array<u8> = Array::over(mem.region(), 20);
        bytes.fill(3..13, 9);
        let got: Vec<u8> = bytes.iter(0..20).collect();
        let mut want = [0u8; 20];
        want[3..13].fill(9);
        assert_eq!(got, want);
        // Word 1 (elements 8..16) is written whole; 3..8 and 8..13 partly.
        assert_eq!(mem.pages.0[1], 0x0000_0009_0909_0909);
        let longs: Array<u64> = Array::over(mem.region(), PAGES * 512);
        mem.take_marks();
        longs.fill(500..1100, 1);
        assert_eq!(mem.take_marks(), (0, 0b111));
        assert_eq!(longs.iter(0..PAGES * 512).filter(|&v| v == 1).count(), 600);
    }

    #[test]
    fn copies_overlap_like_slices() {
        for (src, dest) in [(0..10, 3), (5..15, 1), (2..2, 0), (0..19, 1)] {
            let mut mem = Mem::new();
            let a: Array<u32> = Array::over(mem.region(), 20);
            let mut want: Vec<u32> = (0..20).map(|i| i * 11 + 1).collect();
            for (i, v) in want.iter().enumerate() {
                a.set(i, *v);
            }
            a.copy_within(src.clone(), dest);
            want.copy_within(src.clone(), dest);
            assert_eq!(a.iter(0..20).collect::<Vec<_>>(), want, "{src:?} -> {dest}");
        }
        // Between two arrays, and between arrays over the same memory at
        // different types' views.
        let mut one = Mem::new();
        let mut two = Mem::new();
        let a: Array<u8> = Array::over(one.region(), 4096 * PAGES);
        let b: Array<u8> = Array::over(two.region(), 4096 * PAGES);
        a.fill(0..4096 * PAGES, 3);
        a.set(4095, 4);
        one.take_marks();
        b.copy_from(&a, 4090..4100, 10_000);
        assert_eq!(one.take_marks(), (0b11, 0));
        assert_eq!(two.take_marks(), (0b100, 0b100));
        let got: Vec<u8> = b.iter(9_999..10_011).collect();
        assert_eq!(got, [0, 3, 3, 3, 3, 3, 4, 3, 3, 3, 3, 0]);
    }

    #[test]
    fn iterators_run_both_ways() {
        let mut mem = Mem::new();
        let a: Array<u64> = Array::over(mem.region(), 5);
        for i in 0..5 {
            a.set(i, i as u64 * 10);
        }
        let it = a.iter(1..4);
        assert_eq!(it.len(), 3);
        assert_eq!(it.rev().collect::<Vec<_>>(), [30, 20, 10]);
        assert_eq!(a.iter(5..5).count(), 0);
        mem.take_marks();
        // step_by skips elements unread: only page 0 of the four is read.
        let b: Array<u64> = Array::over(mem.region(), PAGES * 512);
        let seen: Vec<u64> = b.iter(0..PAGES * 512).step_by(2048).collect();
        assert_eq!(seen, [0]);
        assert_eq!(mem.take_marks(), (0b1, 0));
    }

    /// The panic message of `f`, which must panic.
    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> std::string::String {
        let err = std::panic::catch_unwind(f).expect_err("must panic");
        match err.downcast::<std::string::String>() {
            Ok(s) => *s,
            Err(e) => (*e.downcast::<&str>().expect("a string message")).into(),
        }
    }

    #[test]
    fn out_of_range_panics_name_the_index_and_length() {
        let mut mem = Mem::new();
        let region = mem.region();
        let a: Array<u32> = Array::over(region, 100);
        assert_eq!(
            panic_message(move || {
                a.get(100);
            }),
            "element index 100 out of range for length 100"
        );
        assert_eq!(
            panic_message(move || a.set(usize::MAX, 1)),
            "element index 18446744073709551615 out of range for length 100"
        );
        assert_eq!(
            panic_message(move || a.fill(90..101, 0)),
            "element range 90..101 out of range for length 100"
        );
        assert_eq!(
            panic_message(move || a.copy_within(0..10, 91)),
            "element range 91..101 out of range for length 100"
        );
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..2;
        assert_eq!(
            panic_message(move || {
                a.iter(backwards);
            }),
            "element range 5..2 out of range for length 100"
        );
        assert_eq!(
            panic_message(move || {
                region.read(PAGES, 0);
            }),
            "page index 4 out of range for length 4"
        );
        // The word index no longer wraps modulo a page.
        assert_eq!(
            panic_message(move || region.write(0, 512, 1)),
            "word index 512 out of range for length 512"
        );
        assert_eq!(
            panic_message(move || {
                region.read_word(PAGES * 512);
            }),
            "word index 2048 out of range for length 2048"
        );
        assert_eq!(
            panic_message(move || {
                Array::<u8>::over(region, PAGES * 4096 + 1);
            }),
            "array of 16385 elements needs 2049 words, the region has 2048"
        );
        // Nothing was touched by any refused access.
        assert_eq!(mem.take_marks(), (0, 0));
        assert!(mem.pages.0.iter().all(|&w| w == 0));
    }
}
