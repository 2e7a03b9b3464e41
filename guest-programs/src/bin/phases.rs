//! phases: the working set changes size every `period`. Sizes cycle through
//! the `sizes` list; within the current size, accesses go uniformly to the
//! first `size` bytes of the `--wss` region. Every change announces the
//! phase index `i` (0, 1, 2, ...; size `i mod len(sizes)`) with a phase
//! marker and a phase hypercall.
//!
//! Params: `period` (default 5s); `sizes` (default `wss/8,wss,wss/4`, e.g.
//! 16M,128M,32M with `--wss 128M`), a comma list of sizes, each at least a
//! page and at most `--wss`. A paced run (`rate` > 0) switches on the
//! operation count (see `Schedule`), so its checksum is reproducible.
//!
//! True WSS per interval: the current phase's size, or the union of two
//! phases' pages in an interval that spans a change (the larger size when
//! the accesses per phase cover it, as they are prefixes of one region).
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest::Schedule;
use wss_guest::abi::PAGE_SIZE;
use wss_guest::abi::units::parse_size;
use wss_guest_programs::{Pattern, drive};

wss_guest::entry!(main);

struct Phases<'a> {
    /// The `sizes` list; `None` for the default, relative to `--wss`.
    sizes: Option<&'a str>,
    count: u64,
    wss_pages: u64,
    period_ns: u64,
    schedule: Schedule,
    phase: Option<u64>,
    active: u64,
}

impl Phases<'_> {
    /// The size of list entry `i`, in pages.
    fn size(&self, i: u64) -> u64 {
        let w = self.wss_pages;
        let Some(list) = self.sizes else {
            return [w / 8, w, w / 4][i as usize].max(1);
        };
        let entry = list.split(',').nth(i as usize).unwrap_or("");
        let pages =
            parse_size(entry).unwrap_or_else(|| panic!("phases: bad size {entry:?}")) / PAGE_SIZE;
        assert!(
            pages >= 1 && pages <= w,
            "phases: size {entry} is not between 4K and --wss"
        );
        pages
    }
}

impl Pattern for Phases<'_> {
    fn batch(&mut self, g: &mut Ctx, first_op: u64) {
        let phase = self.schedule.now_ns(first_op) / self.period_ns;
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            self.active = self.size(phase % self.count);
            g.announce_phase(phase);
        }
    }

    fn page(&mut self, g: &mut Ctx, _: u64) -> usize {
        g.rng.below(self.active) as usize
    }
}

fn main(g: &mut Ctx) -> u64 {
    let period_ns = g.param_duration_ns_or("period", 5_000_000_000).max(1);
    let region = g.alloc_pages(g.wss_pages());
    let params = *g.params();
    let sizes = params.get("sizes");
    let mut p = Phases {
        sizes,
        count: sizes.map_or(3, |s| s.split(',').count() as u64),
        wss_pages: region.pages() as u64,
        period_ns,
        schedule: g.schedule(),
        phase: None,
        active: 1,
    };
    // Validate the whole list now rather than one period into the run.
    for i in 0..p.count {
        p.size(i);
    }
    drive(g, &region, &mut p)
}
