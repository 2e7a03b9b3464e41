//! extsort: an external merge sort, over and over. `--wss` holds two areas
//! of `N` 8-byte records ("disk": the input, then the runs and merge
//! passes alternate between them) and a sort buffer of about a sixteenth
//! of `--wss` ("memory": `R` records). Each sort
//!
//! 1. (phase 0) generates `N` random keys into area A;
//! 2. (phase 1) forms runs: for each `R` records of A, pushes them onto a
//!    binary min-heap in the buffer, then pops them in order into area B;
//! 3. (phase 2, at every pass) merges `fanout` runs at a time from one
//!    area into the other, until one run is left;
//! 4. (phase 3) checks the result: sorted, and the same multiset of keys
//!    (sum and xor) as the input; otherwise the guest panics.
//!
//! One operation is one record moved (generated, pushed, popped or
//! merged). Results: `sorts` (completed and checked), `runs` and
//! `merge_passes` (per sort).
//!
//! On several vCPUs (`--vcpus`): vCPU 0 generates the keys (one random
//! stream) and forms the runs (one sort buffer) while the others wait at a
//! barrier; every merge pass splits by output record, each vCPU merging
//! its share of the outputs (it finds where each run stands at its first
//! output by binary search), and the check splits the same way. The `ops`
//! budget counts the records all vCPUs move together, in one vCPU's order
//! (see `TeamBudget`), so the checksum and results for a given `ops` are
//! the same on any vCPU count.
//!
//! Params: `fanout` (default 4), runs merged at once, 2 to 16 (checked
//! before boot; the guest panics on another value all the same).
//!
//! True WSS per interval: phase 0 writes A; phase 1 reads A, writes B and
//! reads and writes the buffer (about half of `--wss` plus the buffer
//! over a whole phase); each merge pass reads one area and writes the
//! other (all of `--wss` but the buffer).
#![no_std]
#![no_main]

use wss_guest::{Array, Ctx};
use wss_guest_programs::{
    Count, TeamBudget, combine, fold, for_range, marked_checksum, my_cut_share,
};

wss_guest::entry!(main);

const MAX_FANOUT: usize = 16;

/// Pushes `key` onto the min-heap of `len` keys in `heap`.
fn push(heap: &Array<u64>, len: usize, key: u64) {
    let mut i = len;
    while i > 0 {
        let parent = (i - 1) / 2;
        let p = heap.get(parent);
        if p <= key {
            break;
        }
        heap.set(i, p);
        i = parent;
    }
    heap.set(i, key);
}

/// Pops the least key of the min-heap of `len` (> 0) keys in `heap`.
fn pop(heap: &Array<u64>, len: usize) -> u64 {
    let top = heap.get(0);
    let last = heap.get(len - 1);
    let len = len - 1;
    let mut i = 0;
    loop {
        let l = 2 * i + 1;
        if l >= len {
            break;
        }
        let mut c = l;
        let mut cv = heap.get(l);
        if l + 1 < len {
            let rv = heap.get(l + 1);
            if rv < cv {
                c = l + 1;
                cv = rv;
            }
        }
        if last <= cv {
            break;
        }
        heap.set(i, cv);
        i = c;
    }
    if len > 0 {
        heap.set(i, last);
    }
    top
}

/// Where a merge of the sorted runs of `run` records in `src[start..end]`
/// stands after its first `k` outputs: the cursor of each run. The
/// outputs are the `k` least records (the least key `x` with `k` records
/// at or below it bounds them; ties at `x` go to the earlier runs, as the
/// merge takes them), so a vCPU can start merging at any output.
fn cursors_at(
    src: &Array<u64>,
    start: usize,
    end: usize,
    run: usize,
    k: usize,
) -> ([usize; MAX_FANOUT], usize) {
    let mut runs = [const { 0..0 }; MAX_FANOUT];
    let mut ways = 0;
    let mut at = start;
    while at < end {
        runs[ways] = at..(at + run).min(end);
        at = runs[ways].end;
        ways += 1;
    }
    // The first index of `r` whose key is above `x` (or at least `x`).
    let bound = |r: &core::ops::Range<usize>, x: u64, inclusive: bool| {
        let (mut lo, mut hi) = (r.start, r.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let key = src.get(mid);
            if key < x || (inclusive && key == x) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let at_or_below = |x: u64| -> usize {
        runs[..ways]
            .iter()
            .map(|r| bound(r, x, true) - r.start)
            .sum()
    };
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if at_or_below(mid) >= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut pos = [0usize; MAX_FANOUT];
    let mut need = k;
    for (w, r) in runs[..ways].iter().enumerate() {
        pos[w] = bound(r, lo, false);
        need -= pos[w] - r.start;
    }
    for (w, r) in runs[..ways].iter().enumerate() {
        let ties = (bound(r, lo, true) - pos[w]).min(need);
        pos[w] += ties;
        need -= ties;
    }
    (pos, ways)
}

/// Outputs `out` (a range inside `start..end`) of the merge of the sorted
/// runs of `run` records in `src[start..end]` into `dst`, one record per
/// operation.
fn merge_group(
    g: &mut Ctx,
    src: &Array<u64>,
    dst: &Array<u64>,
    (start, end): (usize, usize),
    run: usize,
    out: core::ops::Range<usize>,
) {
    let mut pos = [0usize; MAX_FANOUT];
    let mut stop = [0usize; MAX_FANOUT];
    let mut head = [0u64; MAX_FANOUT];
    let mut ways = 0;
    let mut at = start;
    while at < end {
        pos[ways] = at;
        stop[ways] = (at + run).min(end);
        at = stop[ways];
        ways += 1;
    }
    if out.start > start {
        (pos, _) = cursors_at(src, start, end, run, out.start - start);
    }
    for w in 0..ways {
        if pos[w] < stop[w] {
            head[w] = src.get(pos[w]);
        }
    }
    let first = out.start;
    for_range(g, Count::Ops, 0..out.len(), |_, i| {
        let mut best = usize::MAX;
        for w in 0..ways {
            if pos[w] < stop[w] && (best == usize::MAX || head[w] < head[best]) {
                best = w;
            }
        }
        dst.set(first + i, head[best]);
        pos[best] += 1;
        if pos[best] < stop[best] {
            head[best] = src.get(pos[best]);
        }
    });
}
/// Announces phase `marker` once, from vCPU 0.
fn announce(g: &mut Ctx, marker: u64) {
    if g.vcpu() == 0 {
        g.announce_phase(marker);
    }
}

fn main(g: &mut Ctx) -> u64 {
    let fanout = g.param_u64_or("fanout", 4) as usize;
    assert!(
        (2..=MAX_FANOUT).contains(&fanout),
        "extsort: fanout {fanout} is not between 2 and {MAX_FANOUT}"
    );
    let pages = g.wss_pages();
    let buf_pages = (pages / 16).max(1);
    let area_pages = pages.saturating_sub(buf_pages) / 2;
    assert!(area_pages >= 1, "extsort: --wss must be at least 12K");
    let n = area_pages * 512;
    let r = buf_pages * 512;
    let a: Array<u64> = g.alloc_array(n);
    let b: Array<u64> = g.alloc_array(n);
    let heap: Array<u64> = g.alloc_array(r);
    g.set_op_name("records moved");
    g.name_user(0, "sorts");
    g.name_user(1, "runs");
    g.name_user(2, "merge_passes");
    let runs = n.div_ceil(r);
    g.set_user(1, runs as u64);
    let lead = g.vcpu() == 0;
    let mut budget = TeamBudget::new(g);
    let mut sorts = 0u64;
    'sorts: loop {
        announce(g, 0);
        // One stream of keys: vCPU 0 generates them all.
        let (mut sum, mut xor) = (0u64, 0u64);
        let keys = budget.take(n);
        if lead {
            for_range(g, Count::Ops, 0..keys, |g, i| {
                let key = g.rng.next_u64();
                sum = sum.wrapping_add(key);
                xor ^= key;
                a.set(i, key);
            });
        }
        g.barrier();
        if budget.spent() {
            break;
        }
        announce(g, 1);
        // One sort buffer: vCPU 0 forms every run through it.
        for run in 0..runs {
            let start = run * r;
            let len = r.min(n - start);
            let pushes = budget.take(len);
            if lead {
                for_range(g, Count::Ops, 0..pushes, |_, i| {
                    push(&heap, i, a.get(start + i))
                });
            }
            if budget.spent() {
                g.barrier();
                break 'sorts;
            }
            let pops = budget.take(len);
            if lead {
                for_range(g, Count::Ops, 0..pops, |_, i| {
                    b.set(start + i, pop(&heap, len - i));
                });
            }
            if budget.spent() {
                g.barrier();
                break 'sorts;
            }
        }
        g.barrier();
        // Each merge pass splits by output record: every vCPU merges its
        // share of the outputs of the groups it overlaps.
        let (mut src, mut dst) = (b, a);
        let mut run = r;
        let mut passes = 0;
        while run < n {
            announce(g, 2);
            let group = run * fanout;
            let mine = my_cut_share(g, n, budget.take(n));
            for start in (0..n).step_by(group) {
                let end = (start + group).min(n);
                let out = mine.start.max(start)..mine.end.min(end);
                if !out.is_empty() {
                    merge_group(g, &src, &dst, (start, end), run, out);
                }
            }
            g.barrier();
            if budget.spent() {
                break 'sorts;
            }
            (src, dst) = (dst, src);
            run = group;
            passes += 1;
        }
        if lead {
            g.set_user(2, passes);
        }
        announce(g, 3);
        let mine = g.my_share(n);
        let (mut check_sum, mut check_xor) = (0u64, 0u64);
        let mut last = if mine.start > 0 && !mine.is_empty() {
            src.get(mine.start - 1)
        } else {
            0
        };
        for_range(g, Count::Work, mine, |_, i| {
            let key = src.get(i);
            assert!(key >= last, "extsort: record {i} is out of order");
            last = key;
            check_sum = check_sum.wrapping_add(key);
            check_xor ^= key;
        });
        let check_sum = combine(g, 0, check_sum, u64::wrapping_add);
        let check_xor = combine(g, 0, check_xor, |x, y| x ^ y);
        // vCPU 0 generated the keys, so it holds the input's sum and xor.
        if lead {
            assert!(
                (check_sum, check_xor) == (sum, xor),
                "extsort: the sorted records are not the input's"
            );
        }
        sorts += 1;
        if lead {
            g.set_user(0, sorts);
        }
    }
    if !lead {
        return 0;
    }
    [a, b, heap]
        .iter()
        .fold(sorts, |s, x| fold(s, marked_checksum(x.region())))
}
