//! pagerank: PageRank by power iteration over a graph in CSR form (in-edges
//! by destination), generated deterministically from the seed. `--wss`
//! sizes the graph: `V` vertices with on average 8 in-edges each, at 56
//! bytes per vertex (offsets, edges, ranks, contributions, out-degrees).
//!
//! 1. (phase 0) builds the graph from a stream of `8V` edges drawn twice
//!    from one seed: a pass counts in- and out-degrees, a prefix sum turns
//!    the in-degrees into offsets, a second pass places each edge's source
//!    (destinations are skewed: vertex rank `V u^2` for a uniform `u`,
//!    scattered, so in-degrees vary widely; sources are uniform).
//! 2. Then iterates forever: (phase 1) a pass over the vertices computes
//!    each one's contribution, rank over out-degree, and the rank of the
//!    dangling vertices (no out-edges), which is spread evenly; (phase 2)
//!    a pass over the in-edges pulls the contributions of each vertex's
//!    sources into its new rank.
//!
//! One operation is one edge streamed or pulled. The ranks sum to 1 after
//! every iteration (the guest panics if the sum is off by more than 1e-6).
//! Results: `iterations`, `rank_sum_e9` (the sum times 10^9) and
//! `delta_e9` (the L1 change of the last iteration times 10^9), both added
//! up in fixed point, so exactly.
//!
//! On several vCPUs (`--vcpus`): vCPU 0 builds the graph (one stream of
//! edges) while the others wait at a barrier; both passes of an iteration
//! split by vertex range (the in-edges of a range are a range of the edge
//! array), with a barrier between them. The dangling rank is a float sum
//! in vertex order, so vCPU 0 adds up the other vCPUs' part of it too. The
//! `ops` budget counts the edges all vCPUs stream and pull together, in
//! one vCPU's order (see `TeamBudget`), so the checksum and results for a
//! given `ops` are the same on any vCPU count.
//!
//! Params: `damping` (default 0.85), in [0, 1].
//!
//! True WSS per interval: phase 0 writes all arrays but the ranks; once
//! iterating, every page: phase 1 reads ranks and out-degrees and writes
//! contributions; phase 2 reads offsets and edges in order, contributions
//! at random, and reads and writes ranks in order.
#![no_std]
#![no_main]

use wss_guest::array::pages_for;
use wss_guest::math::round;
use wss_guest::{Array, Ctx, Rng};
use wss_guest_programs::{
    Count, TeamBudget, combine, fold, for_range, marked_checksum, scatter, steps,
};

wss_guest::entry!(main);

/// Mean in-degree.
const DEGREE: usize = 8;
/// Bytes per vertex: offsets (4), edges (4 per edge), rank and
/// contribution (8 each), out-degree (4).
const VERTEX_BYTES: usize = 4 + 4 * DEGREE + 8 + 8 + 4;

/// Pages of the graph's arrays for `v` vertices.
fn pages(v: usize) -> usize {
    pages_for::<u32>(v + 1)
        + pages_for::<u32>(v * DEGREE)
        + 2 * pages_for::<f64>(v)
        + pages_for::<u32>(v)
}

/// One edge of the generated stream: (destination, source).
fn edge(rng: &mut Rng, v: u64) -> (usize, usize) {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let rank = ((v as f64 * u * u) as u64).min(v - 1);
    (scatter(rank, v) as usize, rng.below(v) as usize)
}

/// 1.0 in the fixed point the rank sum and change are added up in, so
/// that their sums are exact and the same on any vCPU count: 2^60, far
/// finer than the 10^-9 they are reported in, and a sum of ranks (at most
/// about 2) or of rank changes (at most 2) fits a u64.
const FIXED_ONE: f64 = (1u64 << 60) as f64;

/// `x` (at least 0) in fixed point, rounded.
fn fixed(x: f64) -> u64 {
    round(x * FIXED_ONE) as u64
}

/// Announces phase `marker` once, from vCPU 0.
fn announce(g: &mut Ctx, marker: u64) {
    if g.vcpu() == 0 {
        g.announce_phase(marker);
    }
}

fn main(g: &mut Ctx) -> u64 {
    let damping = g.param_f64_or("damping", 0.85);
    assert!(
        (0.0..=1.0).contains(&damping),
        "pagerank: damping {damping} is not in [0, 1]"
    );
    let wss_pages = g.wss_pages();
    let mut v = wss_pages * 4096 / VERTEX_BYTES;
    // Each array starts on a page of its own: shrink until the pages fit.
    while v > 2 && pages(v) > wss_pages {
        v -= v / 256 + 1;
    }
    assert!(
        pages(v) <= wss_pages,
        "pagerank: --wss must be at least 20K"
    );
    let e = v * DEGREE;
    let offsets: Array<u32> = g.alloc_array(v + 1);
    let edges: Array<u32> = g.alloc_array(e);
    let rank: Array<f64> = g.alloc_array(v);
    let contrib: Array<f64> = g.alloc_array(v);
    let outdeg: Array<u32> = g.alloc_array(v);
    // While the graph is built, the contributions' memory holds each
    // destination's next free edge slot.
    let cursor: Array<u64> = Array::over(contrib.region(), v);
    g.set_op_name("edges");
    g.name_user(0, "iterations");
    g.name_user(1, "rank_sum_e9");
    g.name_user(2, "delta_e9");
    let checksum = |iterations: u64| {
        [
            offsets.region(),
            edges.region(),
            rank.region(),
            contrib.region(),
        ]
        .iter()
        .fold(iterations, |s, r| fold(s, marked_checksum(*r)))
    };

    let lead = g.vcpu() == 0;
    let mut budget = TeamBudget::new(g);
    announce(g, 0);
    // The graph comes from one stream of edges: vCPU 0 builds it alone.
    let graph_seed = g.rng.next_u64();
    let counted = budget.take(e);
    if lead {
        let mut stream = Rng::new(graph_seed);
        for_range(g, Count::Ops, 0..counted, |_, _| {
            let (dst, src) = edge(&mut stream, v as u64);
            offsets.set(dst + 1, offsets.get(dst + 1) + 1);
            outdeg.set(src, outdeg.get(src) + 1);
        });
    }
    let counts_done = !budget.spent();
    let placed = if counts_done { budget.take(e) } else { 0 };
    if lead && counts_done {
        let mut total = 0u64;
        for_range(g, Count::Work, 0..v, |_, i| {
            cursor.set(i, total);
            total += u64::from(offsets.get(i + 1));
            offsets.set(i + 1, total as u32);
            rank.set(i, 1.0 / v as f64);
        });
        let mut stream = Rng::new(graph_seed);
        for_range(g, Count::Ops, 0..placed, |_, _| {
            let (dst, src) = edge(&mut stream, v as u64);
            let slot = cursor.get(dst);
            edges.set(slot as usize, src as u32);
            cursor.set(dst, slot + 1);
        });
    }
    g.barrier();
    let verts = g.my_share(v);
    let mut iterations = 0u64;
    while !budget.spent() {
        announce(g, 1);
        let mut dangling = 0.0;
        for_range(g, Count::Work, verts.clone(), |_, u| {
            let out = outdeg.get(u);
            let r = rank.get(u);
            if out == 0 {
                dangling += r;
                contrib.set(u, 0.0);
            } else {
                contrib.set(u, r / f64::from(out));
            }
        });
        // The dangling rank is summed in vertex order whatever the vCPU
        // count (a float sum depends on its order): vCPU 0 goes on over
        // the other vCPUs' vertices, whose ranks this phase leaves alone.
        if lead {
            for_range(g, Count::Work, verts.end..v, |_, u| {
                if outdeg.get(u) == 0 {
                    dangling += rank.get(u);
                }
            });
        }
        let mine = if lead { dangling.to_bits() } else { 0 };
        let dangling = f64::from_bits(combine(g, 0, mine, |all, part| all | part));
        announce(g, 2);
        let base = (1.0 - damping + damping * dangling) / v as f64;
        let pulls = budget.take(e);
        // Where the budget cuts the pass, in edges; none when it does not.
        let cut = if budget.spent() { pulls } else { usize::MAX };
        let (mut sum, mut delta) = (0u64, 0u64);
        if !verts.is_empty() {
            let mut at = verts.start;
            let mut e_at = if at == 0 { 0 } else { offsets.get(at) as usize };
            let (mut end, mut acc) = (offsets.get(at + 1) as usize, 0.0);
            let mut finish = |at: usize, acc: f64| {
                let new = base + damping * acc;
                let old = rank.get(at);
                rank.set(at, new);
                sum += fixed(new);
                delta += fixed(if new > old { new - old } else { old - new });
            };
            // One step pulls one in-edge; a vertex finishes with its last
            // in-edge, or on the way to the next edge when it has none. At
            // the cut, a vertex whose edges are not all pulled, or that
            // has none and lies past the last pulled edge, stays as it was.
            steps(g, Count::Ops, |_| {
                while at < verts.end {
                    let pulled = e_at < end;
                    if e_at >= cut {
                        return false;
                    }
                    if pulled {
                        acc += contrib.get(edges.get(e_at) as usize);
                        e_at += 1;
                    }
                    if e_at == end {
                        finish(at, acc);
                        acc = 0.0;
                        at += 1;
                        if at < verts.end {
                            end = offsets.get(at + 1) as usize;
                        }
                    }
                    if pulled {
                        return true;
                    }
                }
                false
            });
        }
        // Sums of fixed-point values do not depend on their order.
        let sum = combine(g, 0, sum, u64::wrapping_add);
        let delta = combine(g, 0, delta, u64::wrapping_add);
        if budget.spent() {
            break;
        }
        iterations += 1;
        let sum = sum as f64 / FIXED_ONE;
        assert!(
            (sum - 1.0).abs() < 1e-6,
            "pagerank: ranks sum to {sum} after iteration {iterations}"
        );
        if lead {
            g.set_user(0, iterations);
            g.set_user(1, round(sum * 1e9) as u64);
            g.set_user(2, round(delta as f64 / FIXED_ONE * 1e9) as u64);
        }
    }
    if !lead {
        return 0;
    }
    checksum(iterations)
}
