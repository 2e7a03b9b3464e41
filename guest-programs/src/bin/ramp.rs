//! ramp: the active set, a prefix of the `--wss` region that accesses hit
//! uniformly, waits `delay` at one page, grows linearly from nothing to
//! `--wss` over `grow`, holds for
//! `hold`, then shrinks linearly to `floor` over `shrink` and stays there —
//! like a VM that consumes memory and then frees it. Phase markers (and
//! hypercalls): 0 delay and grow, 1 hold, 2 shrink, 3 floor.
//!
//! Params: `delay` (default 0s: the start of the growth, so that VMs
//! booted together consume one after another), `grow` (default 5s), `hold` (default 5s), `shrink` (default 5s),
//! `floor` (default 0.05), a fraction of `--wss` in [0, 1] (at least one
//! page); `boot` (default 0), a boot footprint written once first (see
//! `Boot`). A paced run (`rate` > 0) follows the operation count (see
//! `Schedule`), so its checksum is reproducible.
//!
//! The boot footprint does not shift the timing of an unpaced run: the
//! timing follows the guest clock from the run's start, boot included, so
//! VMs booted together stay in step whatever their footprints, and the
//! boot takes its time out of `delay` (a `delay` shorter than the boot
//! starts the growth late, at the size the clock says by then). A paced
//! run's clock is its operation count, which the boot does not advance:
//! its timing starts when the boot ends.
//!
//! True WSS per interval: at most the largest active set during the
//! interval — the active set at its end while growing, at its start while
//! shrinking — and that exactly once the accesses per interval cover it;
//! plus the boot pages written in the interval.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest::Schedule;
use wss_guest_programs::{Boot, Pattern, drive};

wss_guest::entry!(main);

struct Ramp {
    delay: u64,
    grow: u64,
    hold: u64,
    shrink: u64,
    wss: u64,
    floor: u64,
    schedule: Schedule,
    phase: Option<u64>,
    active: u64,
}

impl Ramp {
    /// The phase and active-set size (in pages) at `t` ns into the run.
    fn at(&self, t: u64) -> (u64, u64) {
        // Before `delay` the growth has not begun: one page, phase 0.
        let t = t.saturating_sub(self.delay);
        let lerp = |from: u64, to: u64, done: u64, len: u64| {
            let (from, to) = (from as i128, to as i128);
            (from + (to - from) * done as i128 / len as i128) as u64
        };
        if t < self.grow {
            (0, lerp(0, self.wss, t, self.grow))
        } else if t - self.grow < self.hold {
            (1, self.wss)
        } else if t - self.grow - self.hold < self.shrink {
            (
                2,
                lerp(self.wss, self.floor, t - self.grow - self.hold, self.shrink),
            )
        } else {
            (3, self.floor)
        }
    }
}

/// How often a ramp waiting for its `delay` touches its one page.
const WAIT_EVERY_NS: u64 = 100_000_000;

impl Pattern for Ramp {
    fn batch(&mut self, g: &mut Ctx, first_op: u64) {
        let mut now = self.schedule.now_ns(first_op);
        // Waiting is idling: asleep, so that the VMs already growing have
        // the CPUs. A paced run's clock is its operations, so it works on.
        if !self.schedule.paced() && now < self.delay {
            g.sleep_until(self.delay.min(now.saturating_add(WAIT_EVERY_NS)));
            now = self.schedule.now_ns(first_op);
        }
        let (phase, active) = self.at(now);
        self.active = active.max(1);
        if self.phase != Some(phase) {
            self.phase = Some(phase);
            g.announce_phase(phase);
        }
    }

    fn page(&mut self, g: &mut Ctx, _: u64) -> usize {
        g.rng.below(self.active) as usize
    }
}

fn main(g: &mut Ctx) -> u64 {
    let boot = Boot::run(g, g.param_size_or("boot", 0));
    let floor = g.param_f64_or("floor", 0.05);
    assert!(
        (0.0..=1.0).contains(&floor),
        "ramp: floor must be in [0, 1]"
    );
    let region = g.alloc_pages(g.wss_pages());
    let wss = region.pages() as u64;
    let mut ramp = Ramp {
        delay: g.param_duration_ns_or("delay", 0),
        grow: g.param_duration_ns_or("grow", 5_000_000_000),
        hold: g.param_duration_ns_or("hold", 5_000_000_000),
        shrink: g.param_duration_ns_or("shrink", 5_000_000_000),
        wss,
        floor: ((floor * wss as f64) as u64).clamp(1, wss),
        schedule: g.schedule(),
        phase: None,
        active: 1,
    };
    let sum = drive(g, &region, &mut ramp);
    boot.fold_into(sum)
}
