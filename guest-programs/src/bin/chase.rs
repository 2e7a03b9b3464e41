//! chase: pointer chasing around one random cycle through all the `--wss`
//! pages. An init pass (phase 0) builds the cycle with Sattolo's algorithm,
//! storing in word 0 of each page the index of the next page; then (phase
//! 1, also announced by hypercall) every access is a load of that word of
//! the current page, dependent on the previous one, and with the
//! `write_ratio` probability also a store of the operation's number to word
//! 1 of the same page, so that writes never break the cycle.
//!
//! Params: only the common ones (`ops`, `write_ratio`, `rate`).
//!
//! True WSS per interval: `min(wss, accesses in the interval)` pages, all
//! read; the init pass reads and writes every page.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest_programs::marked_checksum;

wss_guest::entry!(main);

const NEXT: usize = 0;
const DATA: usize = 1;

fn main(g: &mut Ctx) -> u64 {
    g.announce_phase(0);
    let region = g.alloc_pages(g.wss_pages());
    let pages = region.pages();
    for i in 0..pages {
        region.write(i, NEXT, i as u64);
    }
    // Sattolo: swapping each slot only with an earlier one yields a single
    // cycle through every page, never a shorter loop.
    for i in (1..pages).rev() {
        let j = g.rng.below(i as u64) as usize;
        let (a, b) = (region.read(i, NEXT), region.read(j, NEXT));
        region.write(i, NEXT, b);
        region.write(j, NEXT, a);
    }
    g.announce_phase(1);
    let mut cur = 0;
    let mut seen = 0u64;
    g.run(|g| {
        let n = g.batch_len();
        let first = g.ops();
        for op in first..first + n as u64 {
            cur = region.read(cur, NEXT) as usize;
            if g.next_is_write() {
                region.write(cur, DATA, op + 1);
            }
            seen = seen.wrapping_add(cur as u64);
        }
        (n > 0).then_some(n)
    });
    marked_checksum(region) ^ seen.rotate_left(17)
}
