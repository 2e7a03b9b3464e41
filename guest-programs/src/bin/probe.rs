//! probe: a test and benchmark program with exactly known accesses. It
//! first writes every page of the `--wss` region once, so all its memory is
//! populated. Then, for each round `r` of `rounds`, it rendezvouses with
//! `sync(2r)` (the VMM arms pages), visits every page `i` by its class
//! `i mod 4` — 0: read, 1: write, 2: read then write, 3: untouched — and
//! rendezvouses with `sync(2r + 1)` (the VMM collects). Each touched page
//! is timed with rdtsc: user slot 0 holds the total cycles and slot 1 the
//! number of timed pages, both over all rounds so far.
//!
//! Params: `rounds` (default 3); `passes` (default 1): visits of the region
//! per round, each visit timed as the first (a longer round lets the VMM
//! arm pages while the guest runs, `bench trackers`' arming section). It
//! does not use the run loop, so `ops` and `rate` do not apply and
//! `write_ratio` is ignored.
//!
//! True WSS between `sync(2r)` and `sync(2r + 1)`: pages with `i mod 4` in
//! {0, 2} read and those in {1, 2} written, i.e. 3/4 of the region.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest::clock::rdtsc;
use wss_guest::rt::sync;

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let rounds = g.param_u64_or("rounds", 3);
    let passes = g.param_u64_or("passes", 1);
    let region = g.alloc_pages(g.wss_pages());
    g.name_user(0, "cycles");
    g.name_user(1, "timed_touches");
    for i in 0..region.pages() {
        region.write(i, 0, i as u64 + 1);
    }
    let mut seen = 0u64;
    for r in 0..rounds {
        sync(2 * r);
        let (mut cycles, mut count) = (0u64, 0u64);
        for i in (0..passes).flat_map(|_| 0..region.pages()) {
            let class = i % 4;
            if class == 3 {
                continue;
            }
            let value = (r + 1) << 32 | i as u64;
            let start = rdtsc();
            if class != 1 {
                seen = seen.wrapping_add(region.read(i, 0));
            }
            if class != 0 {
                region.write(i, 0, value);
            }
            cycles += rdtsc().wrapping_sub(start);
            count += 1;
        }
        g.add_user(0, cycles);
        g.add_user(1, count);
        sync(2 * r + 1);
    }
    region.checksum() ^ seen.rotate_left(17)
}
