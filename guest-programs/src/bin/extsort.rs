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
//! merged). The work splits by run (phase 1) and by merge group (phase 2),
//! so that several vCPUs could each take a range of runs or groups.
//! Results: `sorts` (completed and checked), `runs` and `merge_passes`
//! (per sort).
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
use wss_guest_programs::{Count, fold, for_each, marked_checksum};

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

/// Merges the sorted runs of `run` records in `src[start..end]` into
/// `dst[start..end]`, one record per operation; `false` when the budget
/// ended it.
fn merge_group(
    g: &mut Ctx,
    src: &Array<u64>,
    dst: &Array<u64>,
    start: usize,
    end: usize,
    run: usize,
) -> bool {
    let mut pos = [0usize; MAX_FANOUT];
    let mut stop = [0usize; MAX_FANOUT];
    let mut head = [0u64; MAX_FANOUT];
    let mut ways = 0;
    let mut at = start;
    while at < end {
        pos[ways] = at;
        stop[ways] = (at + run).min(end);
        head[ways] = src.get(at);
        at = stop[ways];
        ways += 1;
    }
    for_each(g, Count::Ops, end - start, |_, i| {
        let mut best = usize::MAX;
        for w in 0..ways {
            if pos[w] < stop[w] && (best == usize::MAX || head[w] < head[best]) {
                best = w;
            }
        }
        dst.set(start + i, head[best]);
        pos[best] += 1;
        if pos[best] < stop[best] {
            head[best] = src.get(pos[best]);
        }
    })
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
    let mut sorts = 0u64;
    'sorts: loop {
        g.announce_phase(0);
        let (mut sum, mut xor) = (0u64, 0u64);
        if !for_each(g, Count::Ops, n, |g, i| {
            let key = g.rng.next_u64();
            sum = sum.wrapping_add(key);
            xor ^= key;
            a.set(i, key);
        }) {
            break;
        }
        g.announce_phase(1);
        for run in 0..runs {
            let start = run * r;
            let len = r.min(n - start);
            if !for_each(g, Count::Ops, len, |_, i| push(&heap, i, a.get(start + i))) {
                break 'sorts;
            }
            if !for_each(g, Count::Ops, len, |_, i| {
                b.set(start + i, pop(&heap, len - i));
            }) {
                break 'sorts;
            }
        }
        let (mut src, mut dst) = (b, a);
        let mut run = r;
        let mut passes = 0;
        while run < n {
            g.announce_phase(2);
            let group = run * fanout;
            for start in (0..n).step_by(group) {
                if !merge_group(g, &src, &dst, start, (start + group).min(n), run) {
                    break 'sorts;
                }
            }
            (src, dst) = (dst, src);
            run = group;
            passes += 1;
        }
        g.set_user(2, passes);
        g.announce_phase(3);
        let (mut check_sum, mut check_xor, mut last) = (0u64, 0u64, 0u64);
        if !for_each(g, Count::Work, n, |_, i| {
            let key = src.get(i);
            assert!(key >= last, "extsort: record {i} is out of order");
            last = key;
            check_sum = check_sum.wrapping_add(key);
            check_xor ^= key;
        }) {
            break;
        }
        assert!(
            (check_sum, check_xor) == (sum, xor),
            "extsort: the sorted records are not the input's"
        );
        sorts += 1;
        g.set_user(0, sorts);
    }
    [a, b, heap]
        .iter()
        .fold(sorts, |s, x| fold(s, marked_checksum(x.region())))
}
