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
