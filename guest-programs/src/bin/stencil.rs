//! stencil: heat diffusion on a periodic 2D grid by Jacobi sweeps, with a
//! periodic checkpoint. The grid has 512 f64 cells per row, so a row is a
//! page, and as many rows as a third of `--wss` holds: two grids that the
//! sweeps alternate between and a snapshot.
//!
//! 1. (phase 0) sets every cell to a random heat in [0, 1);
//! 2. (phase 1) sweeps: each cell of the new grid is the old cell plus a
//!    fifth of the difference between its four neighbours' sum and four
//!    times itself (wrapping at the edges), reading three rows of the old
//!    grid and writing one row of the new;
//! 3. (phase 2) every `checkpoint` sweeps, copies the grid into the
//!    snapshot and adds up the heat, which diffusion on a periodic grid
//!    conserves: the guest panics if the total drifts from the initial
//!    one by more than 1e-9 of it.
//!
//! One operation is one cell initialised or updated (a checkpoint counts
//! none). Results: `sweeps`, `checkpoints`, `heat_e6` (the total heat at
//! the last checkpoint, times 10^6).
//!
//! On several vCPUs (`--vcpus`): vCPU 0 sets the initial grid (one random
//! stream) while the others wait at a barrier; every sweep and checkpoint
//! splits by row range, with a barrier after each. The heat is a float sum
//! in cell order, so vCPU 0 adds up the other vCPUs' rows too. The `ops`
//! budget counts the cells all vCPUs update together, in one vCPU's order
//! (see `TeamBudget`), so the checksum and results for a given `ops` are
//! the same on any vCPU count.
//!
//! Params: `checkpoint` (default 8), sweeps between checkpoints, at least 1.
//!
//! True WSS per interval: two thirds of `--wss` (both grids, the old read,
//! the new written) while sweeping; all of it in an interval with a
//! checkpoint, which reads the grid and writes the snapshot.
#![no_std]
#![no_main]

use wss_guest::math::round;
use wss_guest::{Array, Ctx};
use wss_guest_programs::{Count, TeamBudget, fold, for_range, marked_checksum};

wss_guest::entry!(main);

/// Cells per row: one page of f64.
const WIDTH: usize = 512;
/// The diffusion coefficient; at most 1/4 for a stable explicit scheme.
const K: f64 = 0.2;

/// Announces phase `marker` once, from vCPU 0.
fn announce(g: &mut Ctx, marker: u64) {
    if g.vcpu() == 0 {
        g.announce_phase(marker);
    }
}

fn main(g: &mut Ctx) -> u64 {
    let checkpoint = g.param_u64_or("checkpoint", 8).max(1);
    let height = g.wss_pages() / 3;
    assert!(height >= 3, "stencil: --wss must be at least 36K");
    let cells = WIDTH * height;
    let mut old: Array<f64> = g.alloc_array(cells);
    let mut new: Array<f64> = g.alloc_array(cells);
    let snapshot: Array<f64> = g.alloc_array(cells);
    g.set_op_name("cells");
    g.name_user(0, "sweeps");
    g.name_user(1, "checkpoints");
    g.name_user(2, "heat_e6");
    let grids = [old, new, snapshot];
    // vCPU 0's checksum, once every vCPU is done (past a barrier).
    let finish = move |g: &mut Ctx, sweeps: u64| {
        if g.vcpu() != 0 {
            return 0;
        }
        grids
            .iter()
            .fold(sweeps, |s, a| fold(s, marked_checksum(a.region())))
    };

    let lead = g.vcpu() == 0;
    let mut budget = TeamBudget::new(g);
    announce(g, 0);
    // One random stream: vCPU 0 sets every cell.
    let mut initial = 0.0;
    let set = budget.take(cells);
    if lead {
        for_range(g, Count::Ops, 0..set, |g, i| {
            let heat = (g.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            initial += heat;
            old.set(i, heat);
        });
    }
    g.barrier();
    // This vCPU's rows, as a range of cells.
    let rows = g.my_share(height);
    let mine = rows.start * WIDTH..rows.end * WIDTH;
    let (mut sweeps, mut checkpoints) = (0u64, 0u64);
    while !budget.spent() {
        announce(g, 1);
        for _ in 0..checkpoint {
            let updated = budget.take(cells);
            let cut = mine.start.min(updated)..mine.end.min(updated);
            for_range(g, Count::Ops, cut, |_, i| {
                let (y, x) = (i / WIDTH, i % WIDTH);
                let up = if y == 0 { height - 1 } else { y - 1 };
                let down = if y + 1 == height { 0 } else { y + 1 };
                let left = if x == 0 { WIDTH - 1 } else { x - 1 };
                let right = if x + 1 == WIDTH { 0 } else { x + 1 };
                let c = old.get(i);
                let around = old.get(up * WIDTH + x)
                    + old.get(down * WIDTH + x)
                    + old.get(y * WIDTH + left)
                    + old.get(y * WIDTH + right);
                new.set(i, c + K * (around - 4.0 * c));
            });
            g.barrier();
            if budget.spent() {
                return finish(g, sweeps);
            }
            (old, new) = (new, old);
            sweeps += 1;
            if lead {
                g.set_user(0, sweeps);
            }
        }
        announce(g, 2);
        let mut heat = 0.0;
        for_range(g, Count::Work, mine.clone(), |_, i| {
            let c = old.get(i);
            heat += c;
            snapshot.set(i, c);
        });
        // The heat is a float sum in cell order whatever the vCPU count:
        // vCPU 0 goes on over the other vCPUs' rows (this phase only
        // reads the grid).
        if lead {
            for_range(g, Count::Work, mine.end..cells, |_, i| heat += old.get(i));
            assert!(
                (heat - initial).abs() <= 1e-9 * initial,
                "stencil: total heat {heat} drifted from {initial}"
            );
            checkpoints += 1;
            g.set_user(1, checkpoints);
            g.set_user(2, round(heat * 1e6) as u64);
        }
        g.barrier();
    }
    finish(g, sweeps)
}
