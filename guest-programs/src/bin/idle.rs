//! idle: touches almost nothing: one access to page 0 every `every`,
//! asleep in between (`Ctx::sleep_until`: the VMM takes the vCPU off the
//! host CPU, as a halted idle VM leaves it), so the VMs that work have the
//! CPUs. Each access is one operation, so `ops` counts them and
//! `guest_ops` advances once per `every`.
//!
//! Params: `every` (default 100ms); `boot` (default 0), a boot footprint
//! written once first (see `Boot`): a VM at rest with the memory its OS
//! left resident. The accesses are due every `every` from the end of the
//! boot, so the boot is no burst of overdue accesses.
//!
//! True WSS per interval: 1 page in an interval at least `every` long, 0 or
//! 1 page in a shorter one; plus the boot pages written in the interval.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest_programs::{Boot, marked_checksum};

wss_guest::entry!(main);

fn main(g: &mut Ctx) -> u64 {
    let boot = Boot::run(g, g.param_size_or("boot", 0));
    let every = g.param_duration_ns_or("every", 100_000_000);
    let region = g.alloc_pages(1);
    let start = g.clock.now_ns();
    let mut seen = 0u64;
    g.run(|g| {
        if g.batch_len() == 0 {
            return None;
        }
        let op = g.ops();
        g.sleep_until(start.saturating_add(op.saturating_mul(every)));
        let write = g.next_is_write();
        seen = seen.wrapping_add(region.touch(0, write, op + 1));
        Some(1)
    });
    boot.fold_into(marked_checksum(region) ^ seen.rotate_left(17))
}
