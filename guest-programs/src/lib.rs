//! Guest programs for kvm-wss: one binary per access pattern or
//! application, in `src/bin/`.
//!
//! This library holds the access loop most patterns share, so that each
//! program is only its pattern: which page the next access goes to; and
//! the phase loop the application-like programs share ([`steps`],
//! [`for_each`]), so that each is written as the structured loops of the
//! algorithm it runs while the runtime still counts, paces and ends it.
#![no_std]

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use wss_guest::abi::MAX_VCPUS;
use wss_guest::{Array, Ctx, Region};

/// An access pattern: where each access of the run loop goes.
pub trait Pattern {
    /// Called before every batch of accesses with the index of its first
    /// operation; time-driven patterns update their state here, not per
    /// access.
    fn batch(&mut self, _g: &mut Ctx, _first_op: u64) {}

    /// The page that operation number `op` touches.
    fn page(&mut self, g: &mut Ctx, op: u64) -> usize;
}

impl<F: FnMut(&mut Ctx, u64) -> usize> Pattern for F {
    fn page(&mut self, g: &mut Ctx, op: u64) -> usize {
        self(g, op)
    }
}

/// Runs the access loop over `region` until the run ends: each operation
/// touches the page `pattern` picks, writing (with the `write_ratio`
/// probability) the operation's number plus one, or reading. Returns the
/// region's checksum (through marked reads: see [`marked_checksum`])
/// folded with everything read, which depends only on the seed and the
/// sequence of pages.
pub fn drive(g: &mut Ctx, region: &Region, pattern: &mut impl Pattern) -> u64 {
    let mut seen = 0u64;
    g.run(|g| {
        let n = g.batch_len();
        let first = g.ops();
        pattern.batch(g, first);
        for op in first..first + n as u64 {
            let page = pattern.page(g, op);
            let write = g.next_is_write();
            seen = seen.wrapping_add(region.touch(page, write, op + 1));
        }
        (n > 0).then_some(n)
    });
    marked_checksum(*region) ^ seen.rotate_left(17)
}

/// Whether the steps of a phase are operations of the run (see [`steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Each step is one operation: it counts in `guest_ops`, in `rate`
    /// pacing and against the `ops` budget, which can end the phase early.
    Ops,
    /// The steps are work between operations (a collector's mark, a
    /// compaction): timed by the run loop like any batch, but counted as no
    /// operation, as a real program's pause does no user request.
    Work,
}

/// Runs one phase of an application: calls `step` inside [`Ctx::run`]
/// until it returns `false` (there was nothing left to do; that call did
/// nothing), in batches of at most [`Ctx::batch_len`] steps when they are
/// [`Count::Ops`], of [`BATCH`](wss_guest::ctx::BATCH) otherwise.
///
/// Returns `true` when the phase finished and `false` when the run's `ops`
/// budget ended first: the program must then stop and return its checksum.
/// Since each program's structure follows only its operation count and
/// seed, a budget ends it at the same state every time.
pub fn steps(g: &mut Ctx, count: Count, mut step: impl FnMut(&mut Ctx) -> bool) -> bool {
    let mut finished = false;
    g.run(|g| {
        if finished {
            return None;
        }
        let most = match count {
            Count::Ops => g.batch_len(),
            Count::Work => wss_guest::ctx::BATCH,
        };
        if most == 0 {
            return None;
        }
        let mut did = 0;
        while did < most {
            if !step(g) {
                finished = true;
                break;
            }
            did += 1;
        }
        Some(if count == Count::Ops { did } else { 0 })
    });
    finished
}

/// Runs `step(g, i)` for `i` in `0..len` as one phase (see [`steps`]);
/// `false` when the `ops` budget ended it first.
pub fn for_each(
    g: &mut Ctx,
    count: Count,
    len: usize,
    mut step: impl FnMut(&mut Ctx, usize),
) -> bool {
    let mut i = 0;
    steps(g, count, |g| {
        if i == len {
            return false;
        }
        step(g, i);
        i += 1;
        true
    })
}

/// A boot footprint: the memory a booted guest OS keeps resident but no
/// longer touches (kernel init memory, boot-time page cache), which the
/// programs that model a VM at rest start with (`--param boot=SIZE`).
pub struct Boot {
    /// `None` for a footprint of 0.
    region: Option<Region>,
}

impl Boot {
    /// Allocates `bytes` (rounded up to whole pages) of data beside the
    /// program's own and writes every page of it once (a word of it, a
    /// non-zero value the checksum covers), then never touches it again.
    /// Call it first in `main`, before the program's own allocations.
    ///
    /// The writes go through [`Region::touch`], so they are in the truth
    /// of the interval they happen in like any other access; they are
    /// [`Count::Work`], no operations, so `ops`, `guest_ops` and `rate`
    /// pacing count the program's own operations only, which come after.
    /// Only vCPU 0 writes (every vCPU allocates the same pages, so the
    /// program's own data lies at the same addresses on each).
    pub fn run(g: &mut Ctx, bytes: u64) -> Boot {
        let pages = bytes.div_ceil(wss_guest::abi::PAGE_SIZE) as usize;
        if pages == 0 {
            return Boot { region: None };
        }
        let region = g.alloc_pages(pages);
        if g.vcpu() == 0 {
            // The budget cannot end work that counts no operation: the
            // whole footprint is written.
            let _ = for_each(g, Count::Work, pages, |_, page| {
                region.touch(page, true, mix(page as u64 + 1));
            });
        }
        Boot {
            region: Some(region),
        }
    }

    /// `sum` with the footprint's checksum (through marked reads, see
    /// [`marked_checksum`]) folded in; `sum` itself for a footprint of 0,
    /// so a program without one keeps its checksum.
    pub fn fold_into(&self, sum: u64) -> u64 {
        match self.region {
            None => sum,
            Some(r) => fold(sum, marked_checksum(r)),
        }
    }
}

/// Folds `value` into a running checksum (FNV-1a style over whole words),
/// for programs that checksum what they compute rather than a region.
pub fn fold(sum: u64, value: u64) -> u64 {
    (sum ^ value).wrapping_mul(0x0100_0000_01b3)
}

/// A prime above 2^31, more than any count of pages, vertices or objects
/// a guest holds, hence coprime to each: see [`scatter`].
const SCATTER: u64 = 2_654_435_761;

/// Where popularity rank `rank` (0 = most popular) of `n` goes: `rank *
/// SCATTER mod n`, a bijection on `0..n` that scatters the popular items
/// over the whole range instead of packing them at its start.
pub fn scatter(rank: u64, n: u64) -> u64 {
    (u128::from(rank) * u128::from(SCATTER) % u128::from(n)) as u64
}

/// A bijection on `u64` (odd multiplier, xor-shift): scatters consecutive
/// numbers over the whole key space, so that `mix(i)` for distinct `i` are
/// distinct keys without a table of used keys.
pub fn mix(x: u64) -> u64 {
    let x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

/// A checksum of `region`'s contents, the value `Region::checksum` gives,
/// but read through the truth-marking accesses. `Region::checksum` marks
/// nothing, which suits a program stopped at `--duration`; a program ended
/// by its `ops` budget checksums its data while the run still measures,
/// and a tracker sees those reads, so the truth must see them too (or an
/// interval boundary during the pass makes exhaustive tracking disagree
/// with the truth): this final pass is then just the program's last phase.
pub fn marked_checksum(region: Region) -> u64 {
    let words: Array<u64> = Array::over(region, region.words());
    words
        .iter(0..words.len())
        .enumerate()
        .filter(|&(_, v)| v != 0)
        .fold(0xcbf2_9ce4_8422_2325, |h, (i, v)| fold(h, v ^ i as u64))
}

/// The `ops` budget of a program whose vCPUs share its passes: it counts
/// the operations of all vCPUs together, in the order one vCPU does them,
/// so that the program stops at the same state on any vCPU count (the
/// runtime's own budget is per vCPU, and no vCPU's share reaches it
/// first). Every vCPU keeps an identical copy: all take the same phases.
#[derive(Clone, Copy, Debug)]
pub struct TeamBudget {
    /// The `ops` parameter; 0 for no budget.
    limit: u64,
    done: u64,
}

impl TeamBudget {
    pub fn new(g: &Ctx) -> TeamBudget {
        TeamBudget {
            limit: g.param_u64_or("ops", 0),
            done: 0,
        }
    }

    /// Takes the next phase of `len` operations: how many of them, from
    /// its start, the budget lets the program do.
    pub fn take(&mut self, len: usize) -> usize {
        let left = if self.limit == 0 {
            len
        } else {
            (self.limit - self.done).min(len as u64) as usize
        };
        self.done += left as u64;
        left
    }

    /// Whether the budget is spent: the program stops here, as a run loop
    /// stops a one-vCPU program the moment its budget is spent.
    pub fn spent(&self) -> bool {
        self.limit != 0 && self.done >= self.limit
    }
}

/// This vCPU's share of a phase of `len` steps of which the budget allows
/// the first `allowed`: its share of `0..len`, cut at `allowed`.
pub fn my_cut_share(g: &Ctx, len: usize, allowed: usize) -> Range<usize> {
    let mine = g.my_share(len);
    mine.start.min(allowed)..mine.end.min(allowed)
}

/// Runs `step(g, i)` for every `i` of `range` as one phase (see
/// [`for_each`]), counting each step as `count` says.
pub fn for_range(
    g: &mut Ctx,
    count: Count,
    range: Range<usize>,
    mut step: impl FnMut(&mut Ctx, usize),
) {
    let start = range.start;
    // The budget is the caller's (a `TeamBudget`): the range never goes
    // past it, so whether the run loop ended the phase tells nothing new.
    let _ = for_each(g, count, range.len(), |g, i| step(g, start + i));
}

/// Each vCPU's word for [`combine`], in the runtime's static memory (not
/// data): exchanging partial results is no access of the program's data.
static PARTS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// Combines one word from every vCPU: each passes its `part`, and every
/// vCPU gets `fold(..fold(fold(init, part_0), part_1).., part_last)`, the
/// parts in vCPU order (with one vCPU, `fold(init, part)`). Every vCPU
/// must call it at the same point; it holds two barriers.
pub fn combine(g: &mut Ctx, init: u64, part: u64, fold: impl Fn(u64, u64) -> u64) -> u64 {
    if g.vcpus() == 1 {
        return fold(init, part);
    }
    PARTS[g.vcpu()].store(part, Ordering::Relaxed);
    g.barrier();
    let all = PARTS[..g.vcpus()]
        .iter()
        .fold(init, |acc, p| fold(acc, p.load(Ordering::Relaxed)));
    // Nobody stores the next call's part before everyone read this one.
    g.barrier();
    all
}
