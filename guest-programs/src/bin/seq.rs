//! seq: a sequential sweep over the `--wss` pages, one access per page,
//! wrapping around at the end.
//!
//! Params: only the common ones (`ops`, `write_ratio`, `rate`).
//!
//! True WSS per interval: `min(wss, accesses in the interval)` pages — every
//! page once the guest sweeps the whole region within an interval.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest_programs::drive;

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let region = g.alloc_pages(g.wss_pages());
    let pages = region.pages();
    let mut next = 0;
    drive(g, &region, &mut |_: &mut Ctx, _: u64| {
        let page = next;
        next = if next + 1 == pages { 0 } else { next + 1 };
        page
    })
}
