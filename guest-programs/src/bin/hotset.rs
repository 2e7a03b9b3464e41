//! hotset: a fraction `hot_prob` of the accesses go uniformly to a hot set,
//! the first `hot_frac` of the `--wss` pages; the rest go uniformly to the
//! other (cold) pages.
//!
//! Params: `hot_prob` (default 0.9) in [0, 1]; `hot_frac` (default 0.1) in
//! (0, 1]. The hot set has `max(1, round(hot_frac * wss_pages))` pages.
//!
//! True WSS per interval, with `A` accesses in it, `H` hot and `C` cold
//! pages: about `H + C * (1 - exp(-(1 - hot_prob) * A / C))` pages (the
//! whole hot set once `A` is well above `H / hot_prob`).
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest::rng::Probability;
use wss_guest_programs::drive;

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let hot_prob = g.param_f64_or("hot_prob", 0.9);
    let hot_frac = g.param_f64_or("hot_frac", 0.1);
    assert!(
        (0.0..=1.0).contains(&hot_prob),
        "hotset: hot_prob must be in [0, 1]"
    );
    assert!(
        hot_frac > 0.0 && hot_frac <= 1.0,
        "hotset: hot_frac must be in (0, 1]"
    );
    let region = g.alloc_pages(g.wss_pages());
    let pages = region.pages() as u64;
    let hot = ((hot_frac * pages as f64 + 0.5) as u64).clamp(1, pages);
    let cold = pages - hot;
    let p_hot = Probability::new(hot_prob);
    drive(g, &region, &mut |g: &mut Ctx, _: u64| {
        let page = if cold == 0 || g.rng.chance(p_hot) {
            g.rng.below(hot)
        } else {
            hot + g.rng.below(cold)
        };
        page as usize
    })
}
