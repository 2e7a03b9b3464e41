//! stride: sweeps every `k`-th page of the `--wss` region (pages 0, k, 2k,
//! ...) sequentially, wrapping around at the end.
//!
//! Params: `k` (default 4), a whole number >= 1.
//!
//! True WSS per interval: `ceil(wss_pages / k)` pages once a sweep fits in
//! an interval (fewer accesses than that touch as many pages as accesses).
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest_programs::drive;

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let k = g.param_u64_or("k", 4);
    assert!(k >= 1, "stride: k must be at least 1");
    let region = g.alloc_pages(g.wss_pages());
    let (pages, k) = (region.pages(), k as usize);
    let mut next = 0;
    drive(g, &region, &mut |_: &mut Ctx, _: u64| {
        let page = next;
        next = if next + k >= pages { 0 } else { next + k };
        page
    })
}
