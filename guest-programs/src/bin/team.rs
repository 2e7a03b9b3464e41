//! team: a program for several vCPUs (`--vcpus`). Half of the `--wss`
//! pages are shared, the other half split into one private slice per vCPU.
//! Each of `rounds` rounds: every vCPU updates its share of the shared
//! pages and makes random accesses to its own slice; all meet at a
//! barrier; every vCPU reads one word of every shared page; all meet
//! again. So several vCPUs touch the same pages at once (the reads) and
//! different pages at once (the updates and slices).
//!
//! The checksum (vCPU 0's) covers the shared pages and what vCPU 0 read:
//! it depends on `rounds` and `--wss` only, not on the vCPU count, the
//! seed or the tracker.
//!
//! Params: `rounds` (default 100); `crash_vcpu` (default 0: none): with
//! `k` > 0, vCPU `k - 1` panics after the first round (the run must end
//! on it, reporting the panic). The common params apply per vCPU
//! (`ops` cuts each vCPU's work short; `rate` paces each vCPU);
//! `write_ratio` is ignored.
//!
//! True WSS per interval: every page a round touches, about all `--wss`
//! pages once an interval holds a whole round.
#![no_std]
#![no_main]

use wss_guest::{Ctx, Region};

wss_guest::entry!(main);

/// Words of each shared page a round updates.
const WORDS: usize = 8;
/// Random accesses per private page per round.
const PRIVATE_PER_PAGE: usize = 2;

fn main(g: &mut Ctx) -> u64 {
    let rounds = g.param_u64_or("rounds", 100);
    let crash_vcpu = g.param_u64_or("crash_vcpu", 0);
    let pages = g.wss_pages();
    // Every vCPU makes the same allocations, so all see the same regions.
    let shared = g.alloc_pages((pages / 2).max(1));
    let private_all = g.alloc_pages((pages - pages / 2).max(1));
    let mine = g.my_share(private_all.pages());
    let mut seen = 0u64;
    for round in 0..rounds {
        update_share(g, &shared, round);
        touch_private(g, &private_all, mine.clone());
        g.barrier();
        let sum = read_all(g, &shared);
        if g.vcpu() == 0 {
            seen = seen.rotate_left(5) ^ sum;
        }
        if crash_vcpu == g.vcpu() as u64 + 1 {
            panic!("team: vCPU {} panics on purpose (crash_vcpu)", g.vcpu());
        }
        g.barrier();
    }
    shared.checksum() ^ seen.rotate_left(17)
}

/// Adds a value of (round, page, word) to the first words of this vCPU's
/// shared pages: the result depends on the rounds only, however the pages
/// are split.
fn update_share(g: &mut Ctx, shared: &Region, round: u64) {
    let share = g.my_share(shared.pages());
    let mut next = share.start;
    g.run(|_| {
        if next == share.end {
            return None;
        }
        let page = next;
        next += 1;
        for word in 0..WORDS {
            let v = shared.read(page, word);
            let add = (round + 1).wrapping_mul(0x9e37_79b9) ^ (page * WORDS + word) as u64;
            shared.write(page, word, v.wrapping_add(add));
        }
        Some(2 * WORDS)
    });
}

/// Random reads and writes in this vCPU's own pages of `all`.
fn touch_private(g: &mut Ctx, all: &Region, mine: core::ops::Range<usize>) {
    if mine.is_empty() {
        return;
    }
    let mut left = mine.len() * PRIVATE_PER_PAGE;
    g.run(|g| {
        if left == 0 {
            return None;
        }
        let n = left.min(g.batch_len());
        for _ in 0..n {
            let page = mine.start + g.rng.below(mine.len() as u64) as usize;
            let write = g.rng.next_u64() & 1 == 0;
            let v = g.rng.next_u64();
            all.touch(page, write, v);
        }
        left -= n;
        (n > 0).then_some(n)
    });
}

/// Reads word 0 of every shared page; the sum of what it saw.
fn read_all(g: &mut Ctx, shared: &Region) -> u64 {
    let mut sum = 0u64;
    let mut next = 0;
    g.run(|_| {
        if next == shared.pages() {
            return None;
        }
        let end = (next + 64).min(shared.pages());
        for page in next..end {
            sum = sum.wrapping_add(shared.read(page, 0));
        }
        let n = end - next;
        next = end;
        Some(n)
    });
    sum
}
