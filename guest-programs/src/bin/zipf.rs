//! zipf: page ranks drawn from a Zipf distribution with exponent `theta`
//! over the `--wss` pages. Rank `r` (0 = hottest) maps to page
//! `r * 2654435761 mod wss_pages`, a bijection (the multiplier is a prime
//! larger than any page count) that scatters the hot pages instead of
//! packing them together.
//!
//! Params: `theta` (default 0.99), >= 0 (0 is uniform).
//!
//! True WSS per interval, with `A` accesses in it and `p_r` the probability
//! of rank `r`: about `sum_r 1 - (1 - p_r)^A` pages — a hot core that is
//! always there plus a long tail that grows slowly with `A`.
#![no_std]
#![no_main]

use rand_distr::{Distribution, Zipf};
use wss_guest::Ctx;
use wss_guest_programs::{drive, scatter};

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let theta = g.param_f64_or("theta", 0.99);
    let region = g.alloc_pages(g.wss_pages());
    let pages = region.pages() as u64;
    let zipf =
        Zipf::new(pages as f64, theta).unwrap_or_else(|e| panic!("zipf: theta={theta}: {e}"));
    drive(g, &region, &mut |g: &mut Ctx, _: u64| {
        // Samples are whole numbers in [1, pages].
        let rank = zipf.sample(g.rng.inner()) as u64 - 1;
        scatter(rank.min(pages - 1), pages) as usize
    })
}
