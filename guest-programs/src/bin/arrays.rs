//! arrays: a test program for the runtime's typed arrays. It splits
//! `--wss` into five arrays over `q` pages each, or `q/2` for the two u64
//! ones (`q` is a quarter of the pages, rounded down to even): `bytes`
//! (u8), `words` (u32), `src` and `dst` (u64) and `reals` (f64). Each batch
//! of `n` operations moves a window of `n` words along every array (it
//! wraps at the end) and on it:
//!
//! - fills the window of `bytes` with the batch's tag and reads every
//!   eighth byte back (`fill`, `iter` with `step_by`);
//! - sets each u32 of `words` (`set`, a read-modify-write of its word);
//! - sets `src`, copies it to `dst` (`copy_from`) and shifts `dst` up by
//!   one in place (`copy_within`, overlapping);
//! - sets each f64 of `reals` to a square root and reads them all back;
//!
//! and checks what it reads against what it wrote: a mismatch panics. It
//! counts its operations as "window words" and reports the passes over
//! `bytes` it completed as result `passes`.
//!
//! Params: `out_of_range` (default `none`): after one pass over the arrays,
//! make one access past the end: `page` (a region page), `word` (word 512
//! of a page) or `element` (an array element); the runtime's bounds rule
//! turns it into a guest panic naming the index and the length.
//!
//! True WSS per interval: every page of the arrays (all of `--wss` when it
//! is a multiple of 32K), read and written, once a pass over them takes
//! less than an interval.
#![no_std]
#![no_main]

use core::ops::Range;

use wss_guest::abi::PAGE_SIZE;
use wss_guest::math::sqrt;
use wss_guest::{Array, Ctx, Element};

wss_guest::entry!(main);

/// A window of `words` words of `array` starting at element `*cursor`,
/// which then moves past it (back to 0 at the end of the array).
fn window<T: Element>(array: &Array<T>, cursor: &mut usize, words: usize) -> Range<usize> {
    let per_word = 8 / core::mem::size_of::<T>();
    let start = *cursor;
    let end = (start + words * per_word).min(array.len());
    *cursor = if end == array.len() { 0 } else { end };
    start..end
}

fn main(g: &mut Ctx) -> u64 {
    let out_of_range = g.param("out_of_range").unwrap_or("none");
    let mode = match out_of_range {
        "none" | "page" | "word" | "element" => out_of_range,
        other => panic!("arrays: unknown out_of_range {other:?}"),
    };
    let q = (g.wss_pages() / 4) & !1;
    assert!(q >= 2, "arrays: --wss must be at least 32K");
    let page_bytes = PAGE_SIZE as usize;
    let bytes: Array<u8> = g.alloc_array(q * page_bytes);
    let words: Array<u32> = g.alloc_array(q * page_bytes / 4);
    let src: Array<u64> = g.alloc_array(q / 2 * page_bytes / 8);
    let dst: Array<u64> = g.alloc_array(q / 2 * page_bytes / 8);
    let reals: Array<f64> = g.alloc_array(q * page_bytes / 8);
    // One operation moves every array's window by one word.
    g.set_op_name("window words");
    g.name_user(0, "passes");
    let (mut cb, mut cw, mut cs, mut cr) = (0, 0, 0, 0);
    let mut seen = 0u64;
    let mut passes = 0u64;
    g.run(|g| {
        let n = g.batch_len();
        if n == 0 {
            return None;
        }
        let tag = g.ops();
        let w = window(&bytes, &mut cb, n);
        bytes.fill(w.clone(), tag as u8);
        for b in bytes.iter(w).step_by(8) {
            assert_eq!(b, tag as u8, "arrays: fill");
        }
        let w = window(&words, &mut cw, n);
        for i in w.clone() {
            words.set(i, i as u32 ^ tag as u32);
        }
        seen = seen.wrapping_add(u64::from(words.get(w.start)));
        let w = window(&src, &mut cs, n);
        for i in w.clone() {
            src.set(i, i as u64 ^ tag);
        }
        dst.copy_from(&src, w.clone(), w.start);
        assert_eq!(dst.get(w.end - 1), (w.end - 1) as u64 ^ tag, "copy_from");
        if w.len() > 1 {
            dst.copy_within(w.start..w.end - 1, w.start + 1);
            assert_eq!(dst.get(w.start + 1), w.start as u64 ^ tag, "copy_within");
        }
        let w = window(&reals, &mut cr, n);
        for i in w.clone() {
            reals.set(i, sqrt((i as u64 + tag) as f64));
        }
        for (i, x) in w.clone().zip(reals.iter(w)) {
            assert_eq!(x, sqrt((i as u64 + tag) as f64), "arrays: reals");
            seen = seen.wrapping_add(x.to_bits());
        }
        if cb == 0 {
            passes += 1;
            g.set_user(0, passes);
        }
        if passes == 1 {
            match mode {
                "page" => {
                    bytes.region().read(bytes.region().pages(), 0);
                }
                "word" => bytes.region().write(0, 512, 1),
                "element" => {
                    reals.get(reals.len());
                }
                _ => {}
            }
        }
        Some(n)
    });
    let mut sum = seen;
    for r in [
        bytes.region(),
        words.region(),
        src.region(),
        dst.region(),
        reals.region(),
    ] {
        sum = sum.rotate_left(7) ^ r.checksum();
    }
    sum
}
