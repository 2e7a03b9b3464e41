//! Guest programs for kvm-wss: one binary per access pattern, in `src/bin/`.
//!
//! This library holds the access loop most patterns share, so that each
//! program is only its pattern: which page the next access goes to.
#![no_std]

use wss_guest::{Ctx, Region};

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
/// region's checksum folded with everything read, which depends only on the
/// seed and the sequence of pages.
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
    region.checksum() ^ seen.rotate_left(17)
}

/// The clock that time-driven patterns follow.
///
/// A paced run (`rate` > 0) takes its time from the operation count,
/// `op / rate`: its pattern, and so its checksum, then depend only on the
/// seed and `ops`, even when tracking slows the guest below the rate (the
/// schedule then stretches in wall-clock time). An unpaced run follows the
/// TSC.
pub struct Schedule {
    rate: u64,
}

impl Schedule {
    pub fn new(g: &Ctx) -> Schedule {
        Schedule {
            rate: g.param_u64_or("rate", 0),
        }
    }

    /// Nanoseconds into the run at operation `op`.
    pub fn now_ns(&self, g: &Ctx, op: u64) -> u64 {
        if self.rate > 0 {
            (op as u128 * 1_000_000_000 / self.rate as u128) as u64
        } else {
            g.clock.now_ns()
        }
    }
}

/// Announces phase `marker` both ways: in the status block, which the VMM
/// samples at every interval, and by hypercall, which it timestamps.
pub fn announce(g: &mut Ctx, marker: u64) {
    g.set_phase(marker);
    wss_guest::rt::phase(marker);
}
