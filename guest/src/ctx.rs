//! The context a program runs in: its parameters, clock, PRNG, data-region
//! allocator, and the run loop that counts operations and stalls.

use core::sync::atomic::AtomicU64;

use wss_abi::units::{parse_duration_ns, parse_size};
use wss_abi::{PAGE_SIZE, Params, Status};

use crate::array::{Array, Element, pages_for};
use crate::clock::{Clock, rdtsc};
use crate::mem::{Region, Truth};
use crate::rng::{Probability, Rng};

/// Accesses a program performs per call of its batch function. Small enough
/// that time-driven programs react within microseconds, large enough that
/// the per-batch bookkeeping (one rdtsc, one store) costs about 1%.
pub const BATCH: usize = 256;

/// A batch counts as stalled when it takes more than twice its usual
/// length plus this many nanoseconds. The absolute part keeps timer ticks
/// and cache misses out; a tracked fault here costs 45 us or more.
const STALL_SLACK_NS: u64 = 10_000;

/// The most one stalled batch adds to the stall time. No tracked touch
/// costs more than about 1 ms even on this project's slowest mechanism; a
/// longer stall is the host running something else, not a fault.
const STALL_CAP_NS: u64 = 2_000_000;

pub struct Ctx<'p> {
    params: &'p Params,
    status: *mut Status,
    pub clock: Clock,
    pub rng: Rng,
    truth: Truth,
    next_free: u64,
    data_end: u64,
    ops: u64,
    ops_limit: u64,
    write_ratio: Probability,
    /// TSC ticks per access when the `rate` parameter paces the program.
    ticks_per_op: u64,
}

impl<'p> Ctx<'p> {
    /// # Safety
    /// Every address in `params` (data region, status block, bitmaps) must be
    /// valid, writable memory for the life of the context, used by nothing
    /// else but the VMM's atomic bitmap swaps and status reads.
    pub unsafe fn new(params: &'p Params) -> Ctx<'p> {
        // SAFETY: the caller guarantees the bitmap addresses and sizes.
        let truth = unsafe {
            Truth::new(
                params.read_bitmap as *const AtomicU64,
                params.write_bitmap as *const AtomicU64,
                params.bitmap_words as usize,
                params.ram_base as usize,
            )
        };
        let mut ctx = Ctx {
            params,
            status: params.status as *mut Status,
            clock: Clock::new(params.tsc_hz),
            rng: Rng::new(params.seed),
            truth,
            next_free: params.data_start,
            data_end: params.data_end,
            ops: 0,
            ops_limit: 0,
            write_ratio: Probability::new(0.0),
            ticks_per_op: 0,
        };
        // No pacing (0) when `rate` is 0.
        let (code, len, finish) = crate::mem::touch_code();
        let s = ctx.status();
        // SAFETY: volatile stores into our status block, so the VMM sees them.
        unsafe {
            core::ptr::write_volatile(&mut s.touch_code, code);
            core::ptr::write_volatile(&mut s.touch_code_len, len);
            core::ptr::write_volatile(&mut s.touch_finish, finish);
        }
        let rate = ctx.param_u64_or("rate", 0);
        ctx.ticks_per_op = ctx.clock.tsc_hz().checked_div(rate).map_or(0, |t| t.max(1));
        ctx.ops_limit = ctx.param_u64_or("ops", 0);
        // Half reads, half writes unless the run says otherwise: a tracker must
        // see both kinds, and a read-only default would hide dirty tracking.
        ctx.write_ratio = Probability::new(ctx.param_f64_or("write_ratio", 0.5));
        ctx
    }

    pub fn params(&self) -> &'p Params {
        self.params
    }

    /// The working-set size the run asked for, in pages (at least one).
    pub fn wss_pages(&self) -> usize {
        (self.params.wss_bytes / PAGE_SIZE).max(1) as usize
    }

    /// A raw parameter value. It borrows the parameter block, not the
    /// context, so it stays usable while the context runs.
    pub fn param(&self, key: &str) -> Option<&'p str> {
        self.params.get(key)
    }

    /// A numeric parameter; panics (a clean guest crash) if it is malformed.
    pub fn param_f64_or(&self, key: &str, default: f64) -> f64 {
        match self.param(key) {
            None => default,
            Some(v) => match v.parse() {
                Ok(x) => x,
                Err(_) => panic!("param {key}={v} is not a number"),
            },
        }
    }

    pub fn param_u64_or(&self, key: &str, default: u64) -> u64 {
        match self.param(key) {
            None => default,
            Some(v) => match v.parse() {
                Ok(x) => x,
                Err(_) => panic!("param {key}={v} is not a whole number"),
            },
        }
    }

    /// A size parameter (K/M/G suffixes).
    pub fn param_size_or(&self, key: &str, default: u64) -> u64 {
        match self.param(key) {
            None => default,
            Some(v) => parse_size(v).unwrap_or_else(|| panic!("param {key}={v} is not a size")),
        }
    }

    /// A duration parameter (ms/s/m suffixes), in nanoseconds.
    pub fn param_duration_ns_or(&self, key: &str, default: u64) -> u64 {
        match self.param(key) {
            None => default,
            Some(v) => {
                parse_duration_ns(v).unwrap_or_else(|| panic!("param {key}={v} is not a duration"))
            }
        }
    }

    /// Draws the kind of the next access: true for a write, with the
    /// probability given by the `write_ratio` parameter (default 0.5).
    #[inline(always)]
    pub fn next_is_write(&mut self) -> bool {
        self.rng.chance(self.write_ratio)
    }

    /// Allocates `pages` pages from the data region. Panics when the region
    /// is too small, which the VMM prevents by checking `--wss` first.
    pub fn alloc_pages(&mut self, pages: usize) -> Region {
        let bytes = pages as u64 * PAGE_SIZE;
        let start = self.next_free;
        if bytes > self.data_end.saturating_sub(start) {
            panic!(
                "out of data memory: want {} pages, {} left",
                pages,
                self.data_end.saturating_sub(start) / PAGE_SIZE
            );
        }
        self.next_free = start + bytes;
        // SAFETY: [start, start + bytes) lies inside the data region, which
        // the caller of `new` guaranteed valid, and is handed out once.
        unsafe { Region::new(start as *mut u64, pages, self.truth) }
    }

    /// Allocates an array of `len` elements of `T` (u8, u32, u64 or f64)
    /// from the data region, in whole pages of its own. Panics, as
    /// [`Ctx::alloc_pages`] does, when the region is too small.
    pub fn alloc_array<T: Element>(&mut self, len: usize) -> Array<T> {
        Array::over(self.alloc_pages(pages_for::<T>(len)), len)
    }

    /// How many accesses the next batch should do: [`BATCH`], or fewer so
    /// that a run with an `ops` budget stops exactly on it.
    pub fn batch_len(&self) -> usize {
        if self.ops_limit == 0 {
            BATCH
        } else {
            (self.ops_limit.saturating_sub(self.ops) as usize).min(BATCH)
        }
    }

    /// Operations performed so far.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    fn status(&mut self) -> &mut Status {
        // SAFETY: `new`'s contract makes the status block valid and ours.
        unsafe { &mut *self.status }
    }

    /// Publishes a phase marker in the status block.
    pub fn set_phase(&mut self, marker: u64) {
        // SAFETY: as in `status`; a volatile store so the VMM sees it.
        unsafe { core::ptr::write_volatile(&mut (*self.status).phase, marker) };
    }

    /// Sets program-specific result slot `slot` (0..8) of the status block,
    /// which the VMM may read at any time, typically at a `sync`.
    pub fn set_user(&mut self, slot: usize, value: u64) {
        // SAFETY: a volatile store through a valid reference, so the VMM
        // sees it; the index is bounds-checked.
        unsafe { core::ptr::write_volatile(&mut self.status().user[slot], value) };
    }

    /// Adds `delta` to result slot `slot` (wrapping), for running totals.
    pub fn add_user(&mut self, slot: usize, delta: u64) {
        // SAFETY: a volatile load through a valid reference; the guest is
        // the only writer of the slot.
        let old = unsafe { core::ptr::read_volatile(&self.status().user[slot]) };
        self.set_user(slot, old.wrapping_add(delta));
    }

    /// Runs `batch` until the `ops` parameter's budget is spent (forever when
    /// it is 0: the VMM ends the run) or until `batch` returns `None`.
    /// `batch` does about [`BATCH`] accesses and returns how many.
    ///
    /// With the `rate` parameter (accesses per second) the loop waits after
    /// each batch until the schedule allows the next one.
    ///
    /// Every batch is timed. A batch much longer than the running mean (see
    /// [`STALL_SLACK_NS`]) counts as a stall (a tracked fault, or the host taking
    /// the CPU away), and its excess time is added to `stall_cycles`.
    pub fn run(&mut self, mut batch: impl FnMut(&mut Ctx<'p>) -> Option<usize>) {
        let run_start = rdtsc();
        let slack = self.clock.ns_to_ticks(STALL_SLACK_NS);
        let cap = self.clock.ns_to_ticks(STALL_CAP_NS);
        let mut mean: u64 = 0;
        let mut last = run_start;
        while let Some(n) = batch(self) {
            self.ops += n as u64;
            let now = rdtsc();
            let dt = now.wrapping_sub(last);
            if mean == 0 {
                mean = dt.max(1);
            } else if dt > 2 * mean + slack {
                let s = self.status();
                let stall = (dt - mean).min(cap);
                // SAFETY: volatile stores into our status block.
                unsafe {
                    core::ptr::write_volatile(&mut s.stall_cycles, s.stall_cycles + stall);
                    core::ptr::write_volatile(&mut s.stalls, s.stalls + 1);
                }
            } else {
                mean = mean - (mean >> 4) + (dt >> 4);
            }
            let ops = self.ops;
            let s = self.status();
            // SAFETY: volatile stores into our status block.
            unsafe {
                core::ptr::write_volatile(&mut s.guest_ops, ops);
                core::ptr::write_volatile(&mut s.run_cycles, now.wrapping_sub(run_start));
            }
            if self.ops_limit != 0 && self.ops >= self.ops_limit {
                break;
            }
            if self.ticks_per_op != 0 {
                let due = run_start.wrapping_add(self.ops * self.ticks_per_op);
                while (rdtsc().wrapping_sub(due) as i64) < 0 {
                    core::hint::spin_loop();
                }
            }
            last = rdtsc();
        }
    }

    /// Records the checksum the program computed over its data.
    pub fn set_checksum(&mut self, sum: u64) {
        let s = self.status();
        // SAFETY: volatile stores into our status block.
        unsafe {
            core::ptr::write_volatile(&mut s.checksum, sum);
            core::ptr::write_volatile(&mut s.checksum_valid, 1);
        }
    }
}
