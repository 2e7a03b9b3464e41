//! Memory-access kernels shared by guest programs and host benchmarks.

use crate::Ctx;

/// Uniformly random accesses over `--wss` bytes. The `random` guest program
/// is exactly this, and `kvm-wss bench native` runs it in a host process
/// too. Returns a checksum of the data and of everything read.
pub fn uniform(ctx: &mut Ctx) -> u64 {
    let region = ctx.alloc_pages(ctx.wss_pages());
    let pages = region.pages() as u64;
    let mut seen = 0u64;
    ctx.run(|c| {
        let len = c.batch_len();
        let base = c.ops();
        for i in 0..len {
            let page = c.rng.below(pages) as usize;
            let write = c.next_is_write();
            seen = seen.wrapping_add(region.touch(page, write, base + i as u64));
        }
        (len > 0).then_some(len)
    });
    region.checksum() ^ seen.rotate_left(17)
}
