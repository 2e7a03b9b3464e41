//! idle: touches almost nothing: one access to page 0 every `every`,
//! spinning on the clock in between (a CPL 3 program cannot halt). Each
//! access is one operation, so `ops` counts them and `guest_ops` advances
//! once per `every`.
//!
//! Params: `every` (default 100ms).
//!
//! True WSS per interval: 1 page in an interval at least `every` long, 0 or
//! 1 page in a shorter one.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest_programs::marked_checksum;

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let every = g.param_duration_ns_or("every", 100_000_000);
    let region = g.alloc_pages(1);
    let mut seen = 0u64;
    g.run(|g| {
        if g.batch_len() == 0 {
            return None;
        }
        let op = g.ops();
        let due = op.saturating_mul(every);
        while g.clock.now_ns() < due {
            core::hint::spin_loop();
        }
        let write = g.next_is_write();
        seen = seen.wrapping_add(region.touch(0, write, op + 1));
        Some(1)
    });
    marked_checksum(region) ^ seen.rotate_left(17)
}
