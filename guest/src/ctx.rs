//! The context a program runs in: its parameters, clock, PRNG, data-region
//! allocator, and the run loop that counts operations and stalls.
//!
//! Each vCPU has a context of its own (see [`crate::vcpus`]): its index,
//! its PRNG stream and its operation count; the status block's totals are
//! shared and each vCPU adds to them atomically.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use wss_abi::units::{parse_duration_ns, parse_size};
use wss_abi::{OP_NAME_LEN, PAGE_SIZE, Params, Status, USER_NAME_LEN, USER_SLOTS, fill_name};

use crate::array::{Array, Element, pages_for};
use crate::bounds::check_index;
use crate::clock::{Clock, rdtsc};
use crate::mem::{Region, Truth};
use crate::rng::{Probability, Rng, stream_seed};
use crate::schedule::Schedule;
use crate::vcpus::{BARRIER, share};

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
    /// This vCPU's index and the guest's vCPU count.
    vcpu: u64,
    vcpus: u64,
    next_free: u64,
    data_end: u64,
    ops: u64,
    ops_limit: u64,
    write_ratio: Probability,
    /// The `rate` parameter: operations per second, 0 when unpaced.
    rate: u64,
    /// TSC ticks per access when the `rate` parameter paces the program.
    ticks_per_op: u64,
    /// TSC cycles spent inside `run`, over all its calls.
    run_cycles: u64,
    /// TSC cycles slept ([`Ctx::sleep_until`]) since `run` last timed a
    /// batch: a batch that sleeps is waiting, not stalled.
    slept: u64,
}

/// Adds `delta` to a status-block total that every vCPU adds to.
///
/// # Safety
/// `field` must point to a live, 8-byte aligned u64 of the status block.
unsafe fn add_shared(field: *mut u64, delta: u64) {
    // SAFETY: the caller's contract; the VMM only reads the field, and
    // every vCPU updates it with atomic adds only.
    unsafe { AtomicU64::from_ptr(field) }.fetch_add(delta, Ordering::Relaxed);
}

/// The pacing of one call of [`Ctx::run`]: its operations are spread
/// evenly from the call's start, whatever earlier calls did.
#[derive(Clone, Copy, Debug)]
struct Pace {
    start: u64,
    start_ops: u64,
    /// 0 when the run is not paced.
    ticks_per_op: u64,
}

impl Pace {
    /// The TSC value before which the loop must not go on once `ops`
    /// operations are done, or `None` when the run is not paced.
    fn due(&self, ops: u64) -> Option<u64> {
        (self.ticks_per_op != 0).then(|| {
            self.start.wrapping_add(
                ops.saturating_sub(self.start_ops)
                    .saturating_mul(self.ticks_per_op),
            )
        })
    }
}

impl<'p> Ctx<'p> {
    /// # Safety
    /// Every address in `params` (data region, status block, bitmaps) must be
    /// valid, writable memory for the life of the context, used by nothing
    /// else but the VMM's atomic bitmap swaps and status reads.
    pub unsafe fn new(params: &'p Params) -> Ctx<'p> {
        // SAFETY: the caller's contract, for vCPU 0.
        unsafe { Ctx::for_vcpu(params, 0) }
    }

    /// The context of vCPU `vcpu` (`vcpu < params.vcpus`; a larger index
    /// is taken as the last vCPU).
    ///
    /// # Safety
    /// As [`Ctx::new`]; the status block and bitmaps may be shared with the
    /// other vCPUs' contexts, which update them atomically.
    pub unsafe fn for_vcpu(params: &'p Params, vcpu: u64) -> Ctx<'p> {
        let vcpus = params.vcpus.max(1);
        let vcpu = vcpu.min(vcpus - 1);
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
            rng: Rng::new(stream_seed(params.seed, vcpu)),
            truth,
            vcpu,
            vcpus,
            next_free: params.data_start,
            data_end: params.data_end,
            ops: 0,
            ops_limit: 0,
            write_ratio: Probability::new(0.0),
            rate: 0,
            ticks_per_op: 0,
            run_cycles: 0,
            slept: 0,
        };
        // No pacing (0) when `rate` is 0.
        let (code, len, finish) = crate::mem::touch_code();
        let s = ctx.status();
        // SAFETY: volatile stores into our status block, so the VMM sees
        // them; every vCPU stores the same values.
        unsafe {
            core::ptr::write_volatile(&mut s.touch_code, code);
            core::ptr::write_volatile(&mut s.touch_code_len, len);
            core::ptr::write_volatile(&mut s.touch_finish, finish);
        }
        let rate = ctx.param_u64_or("rate", 0);
        ctx.rate = rate;
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

    /// This vCPU's index, 0 to [`Ctx::vcpus`] - 1. The guest ends when
    /// vCPU 0 returns from `main`; another vCPU returning only stops it.
    pub fn vcpu(&self) -> usize {
        self.vcpu as usize
    }

    /// How many vCPUs run the program (`--vcpus`).
    pub fn vcpus(&self) -> usize {
        self.vcpus as usize
    }

    /// This vCPU's share of `len` items split by index (see
    /// [`crate::vcpus::share`]): all of `0..len` with one vCPU.
    pub fn my_share(&self, len: usize) -> Range<usize> {
        share(len, self.vcpu(), self.vcpus())
    }

    /// Waits until the guest clock ([`Ctx::clock`]) reads `due_ns`, off
    /// the host CPU: an idle VM's wait, which leaves the CPU to the VMs
    /// that work (a CPL 3 guest cannot `hlt`). In a host process
    /// (`bench native`) it spins. The time slept counts as no stall of
    /// the batch it falls in.
    pub fn sleep_until(&mut self, due_ns: u64) {
        let start = rdtsc();
        loop {
            let now = self.clock.now_ns();
            if now >= due_ns {
                break;
            }
            #[cfg(feature = "rt")]
            crate::rt::sleep_ns(due_ns - now);
            #[cfg(not(feature = "rt"))]
            core::hint::spin_loop();
        }
        self.slept = self.slept.wrapping_add(rdtsc().wrapping_sub(start));
    }

    /// Waits until every vCPU reached this barrier; what each wrote
    /// before is then visible to all. A no-op with one vCPU. Every vCPU
    /// must pass the same barriers in the same order.
    pub fn barrier(&mut self) {
        BARRIER.wait(self.vcpus, || {
            #[cfg(feature = "rt")]
            crate::rt::yield_now();
        });
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
    #[track_caller]
    pub fn alloc_pages(&mut self, pages: usize) -> Region {
        // A count too large to multiply out is as much too large as any.
        let bytes = (pages as u64).saturating_mul(PAGE_SIZE);
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
    #[track_caller]
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

    /// The clock a time-driven program should follow: operation count
    /// over `rate` in a paced run (reproducible), the TSC otherwise.
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.rate, self.clock)
    }

    /// Publishes a phase marker in the status block, which the VMM samples
    /// at every interval. [`Ctx::announce_phase`] also timestamps it.
    pub fn set_phase(&mut self, marker: u64) {
        // SAFETY: as in `status`; a volatile store so the VMM sees it.
        unsafe { core::ptr::write_volatile(&mut (*self.status).phase, marker) };
    }

    /// Announces that the program changes behaviour: the marker goes to
    /// the status block (see [`Ctx::set_phase`]) and, in a guest, to the
    /// VMM by hypercall, which timestamps it for the run's phase list and
    /// plot. In a host process (`bench native`) only the status block.
    pub fn announce_phase(&mut self, marker: u64) {
        self.set_phase(marker);
        #[cfg(feature = "rt")]
        crate::rt::phase(marker);
    }

    /// Sets program-specific result slot `slot` (0..8) of the status block,
    /// which the VMM may read at any time, typically at a `sync`. The
    /// slots the program set are reported in summary.json
    /// (`guest_results`) and on the console; see [`Ctx::name_user`].
    #[track_caller]
    pub fn set_user(&mut self, slot: usize, value: u64) {
        check_index("result slot", slot, USER_SLOTS);
        let s = self.status();
        // SAFETY: volatile stores through a valid reference, so the VMM
        // sees them; the index is checked.
        unsafe {
            core::ptr::write_volatile(&mut s.user[slot], value);
            core::ptr::write_volatile(&mut s.user_set, s.user_set | 1 << slot);
        }
    }

    /// Adds `delta` to result slot `slot` (wrapping), for running totals.
    #[track_caller]
    pub fn add_user(&mut self, slot: usize, delta: u64) {
        check_index("result slot", slot, USER_SLOTS);
        // SAFETY: a volatile load through a valid reference; the guest is
        // the only writer of the slot.
        let old = unsafe { core::ptr::read_volatile(&self.status().user[slot]) };
        self.set_user(slot, old.wrapping_add(delta));
    }

    /// Names result slot `slot` in the run's report (at most 24 bytes;
    /// longer names are cut), e.g. `g.name_user(0, "hits")`.
    #[track_caller]
    pub fn name_user(&mut self, slot: usize, name: &str) {
        check_index("result slot", slot, USER_SLOTS);
        let mut field = [0u8; USER_NAME_LEN];
        fill_name(&mut field, name);
        let s = self.status();
        // SAFETY: a volatile store through a valid reference.
        unsafe { core::ptr::write_volatile(&mut s.user_names[slot], field) };
    }

    /// Names what the program counts as one operation (what `batch`
    /// returns to [`Ctx::run`]), e.g. `"lookups"`: the report then says
    /// "guest 1200000 lookups". At most 32 bytes; the default is
    /// "accesses".
    pub fn set_op_name(&mut self, name: &str) {
        let mut field = [0u8; OP_NAME_LEN];
        fill_name(&mut field, name);
        let s = self.status();
        // SAFETY: a volatile store through a valid reference.
        unsafe { core::ptr::write_volatile(&mut s.op_name, field) };
    }

    /// Runs the program's work loop: calls `batch` again and again, counts
    /// the operations it reports, paces and times it, until the run ends.
    ///
    /// The contract of `batch`'s return value:
    /// - `Some(n)`: the batch did `n` operations (whatever the program
    ///   counts: accesses, lookups, ...); `n` is added to [`Ctx::ops`] and
    ///   to the status block's `guest_ops`, and the loop goes on. Aim for
    ///   about [`BATCH`] operations per call, and at most
    ///   [`Ctx::batch_len`], so that a run with an `ops` budget stops
    ///   exactly on it.
    /// - `Some(0)`: the batch did no operation but the program is not
    ///   done (for example it is waiting for its own clock); the loop calls
    ///   it again, and the call still counts in pacing and stall timing.
    /// - `None`: the program is done with this loop; `run` returns.
    ///
    /// `run` also returns, without calling `batch` again, as soon as the
    /// `ops` parameter's budget is spent (never when it is 0: then the
    /// VMM ends the run at `--duration`).
    ///
    /// With the `rate` parameter (operations per second) the loop waits
    /// after each batch until the schedule allows the next one. `run` may
    /// be called more than once (say, a set-up loop and a measured loop):
    /// operations keep counting across calls, each call paces its own
    /// operations from its own start (time spent between calls is not
    /// made up for by a burst), and `run_cycles` adds up the time inside
    /// all calls. A call made once the `ops` budget is spent returns at
    /// once.
    ///
    /// Every batch is timed. A batch much longer than the running mean (see
    /// `STALL_SLACK_NS`) counts as a stall (a tracked fault, or the host taking
    /// the CPU away), and its excess time is added to `stall_cycles`.
    pub fn run(&mut self, mut batch: impl FnMut(&mut Ctx<'p>) -> Option<usize>) {
        if self.budget_spent() {
            return;
        }
        let run_start = rdtsc();
        let pace = Pace {
            start: run_start,
            start_ops: self.ops,
            ticks_per_op: self.ticks_per_op,
        };
        let cycles_before = self.run_cycles;
        let slack = self.clock.ns_to_ticks(STALL_SLACK_NS);
        let cap = self.clock.ns_to_ticks(STALL_CAP_NS);
        let mut mean: u64 = 0;
        let mut last = run_start;
        while let Some(n) = batch(self) {
            self.ops += n as u64;
            let now = rdtsc();
            let dt = now.wrapping_sub(last).saturating_sub(self.slept);
            self.slept = 0;
            if mean == 0 {
                mean = dt.max(1);
            } else if dt > 2 * mean + slack {
                let stall = (dt - mean).min(cap);
                let s = self.status;
                // SAFETY: fields of the status block, shared by the vCPUs.
                unsafe {
                    add_shared(&raw mut (*s).stall_cycles, stall);
                    add_shared(&raw mut (*s).stalls, 1);
                }
            } else {
                mean = mean - (mean >> 4) + (dt >> 4);
            }
            let ops = self.ops;
            let cycles = cycles_before + now.wrapping_sub(run_start);
            let added_cycles = cycles - self.run_cycles;
            self.run_cycles = cycles;
            let (s, me) = (self.status, self.vcpu as usize);
            // SAFETY: fields of the status block: the totals are shared by
            // the vCPUs (atomic adds), `vcpu_ops[me]` is this vCPU's alone
            // (`me` < MAX_VCPUS: `vcpus` comes from the VMM, which bounds it).
            unsafe {
                add_shared(&raw mut (*s).guest_ops, n as u64);
                add_shared(&raw mut (*s).run_cycles, added_cycles);
                if let Some(slot) = (*s).vcpu_ops.get_mut(me) {
                    core::ptr::write_volatile(slot, ops);
                }
            }
            if self.budget_spent() {
                break;
            }
            if let Some(due) = pace.due(self.ops) {
                while (rdtsc().wrapping_sub(due) as i64) < 0 {
                    core::hint::spin_loop();
                }
            }
            last = rdtsc();
        }
    }

    /// Whether a run with an `ops` budget (per vCPU) has done all of it.
    fn budget_spent(&self) -> bool {
        self.ops_limit != 0 && self.ops >= self.ops_limit
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

#[cfg(test)]
mod tests {
    extern crate std;

    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    use core::sync::atomic::AtomicU64;
    use wss_abi::{MAX_PARAMS, PARAMS_MAGIC, Param};

    use super::*;
    use crate::clock::rdtsc;

    /// What the VMM lays out for a guest, in host memory: data pages,
    /// truth bitmaps, a status block and the parameter block.
    struct HostGuest {
        _data: Vec<u64>,
        _bits: Vec<AtomicU64>,
        status: Box<Status>,
        params: Box<Params>,
    }

    /// TSC frequency the tests claim; pacing is computed from it.
    const TSC_HZ: u64 = 1_000_000_000;

    impl HostGuest {
        fn new(params: &[(&str, &str)]) -> HostGuest {
            let pages = 4u64;
            let mut data = vec![0u64; (pages * PAGE_SIZE / 8) as usize];
            let bits: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
            let mut status = Box::new(Status::default());
            let mut list = [Param::EMPTY; MAX_PARAMS];
            for (slot, (k, v)) in list.iter_mut().zip(params) {
                slot.key[..k.len()].copy_from_slice(k.as_bytes());
                slot.value[..v.len()].copy_from_slice(v.as_bytes());
            }
            let base = data.as_mut_ptr() as u64;
            let params = Box::new(Params {
                magic: PARAMS_MAGIC,
                version: wss_abi::ABI_VERSION,
                ram_base: base,
                ram_size: pages * PAGE_SIZE,
                data_start: base,
                data_end: base + pages * PAGE_SIZE,
                stack_top: 0,
                vcpus: 1,
                tsc_hz: TSC_HZ,
                seed: 1,
                wss_bytes: pages * PAGE_SIZE,
                status: (&mut *status as *mut Status) as u64,
                read_bitmap: bits.as_ptr() as u64,
                write_bitmap: bits[1..].as_ptr() as u64,
                bitmap_words: 1,
                nparams: params.len() as u64,
                params: list,
            });
            HostGuest {
                _data: data,
                _bits: bits,
                status,
                params,
            }
        }

        fn ctx(&self) -> Ctx<'_> {
            // SAFETY: every address in the parameter block points into this
            // fixture's own memory, which outlives the context.
            unsafe { Ctx::new(&self.params) }
        }
    }

    #[test]
    fn run_counts_some_n_goes_on_after_some_0_and_stops_at_none() {
        let host = HostGuest::new(&[]);
        let mut g = host.ctx();
        let script = [Some(0), Some(0), Some(5), Some(5), Some(5), None];
        let mut calls = 0;
        g.run(|_| {
            calls += 1;
            script[calls - 1]
        });
        assert_eq!((calls, g.ops()), (6, 15));
        let first_cycles = host.status.run_cycles;
        // A second call goes on counting, and its time adds up.
        let mut calls = 0;
        g.run(|_| {
            calls += 1;
            (calls == 1).then_some(7)
        });
        assert_eq!((calls, g.ops()), (2, 22));
        assert_eq!(host.status.guest_ops, 22);
        assert!(host.status.run_cycles >= first_cycles);
    }

    #[test]
    fn results_and_op_name_reach_the_status_block() {
        let host = HostGuest::new(&[]);
        let mut g = host.ctx();
        g.set_op_name("lookups");
        g.name_user(2, "hits");
        g.add_user(2, 40);
        g.add_user(2, 2);
        g.set_user(7, 9);
        assert_eq!(host.status.op_name(), "lookups");
        let got: Vec<(usize, &str, u64)> = host.status.results().collect();
        assert_eq!(got, [(2, "hits", 42), (7, "", 9)]);
        let err = std::panic::catch_unwind(|| host.ctx().set_user(8, 1)).expect_err("panics");
        assert_eq!(
            err.downcast_ref::<std::string::String>()
                .map(|s| s.as_str()),
            Some("result slot index 8 out of range for length 8")
        );
    }

    #[test]
    fn allocations_beyond_the_data_region_panic_even_when_huge() {
        let host = HostGuest::new(&[]);
        let mut g = host.ctx();
        let a: Array<u32> = g.alloc_array(1025);
        assert_eq!((a.len(), a.region().pages()), (1025, 2));
        for (want, message) in [
            (3, "out of data memory: want 3 pages, 2 left"),
            (
                usize::MAX,
                "out of data memory: want 18446744073709551615 pages, 2 left",
            ),
        ] {
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                g.alloc_pages(want);
            }))
            .expect_err("panics");
            assert_eq!(
                err.downcast_ref::<std::string::String>()
                    .map(|s| s.as_str()),
                Some(message)
            );
        }
        assert_eq!(g.alloc_pages(2).pages(), 2);
    }

    #[test]
    fn an_ops_budget_ends_the_loop_and_later_calls() {
        let host = HostGuest::new(&[("ops", "300")]);
        let mut g = host.ctx();
        let mut lens = Vec::new();
        g.run(|g| {
            let n = g.batch_len();
            lens.push(n);
            Some(n)
        });
        assert_eq!(lens, [BATCH, 300 - BATCH]);
        assert_eq!(host.status.guest_ops, 300);
        let mut called = false;
        g.run(|_| {
            called = true;
            None
        });
        assert!(!called, "the budget is spent: batch is not called again");
    }

    #[test]
    fn pacing_starts_afresh_in_each_call() {
        let pace = Pace {
            start: 1_000,
            start_ops: 500,
            ticks_per_op: 10,
        };
        assert_eq!(pace.due(500), Some(1_000));
        assert_eq!(pace.due(510), Some(1_100));
        let unpaced = Pace {
            ticks_per_op: 0,
            ..pace
        };
        assert_eq!(unpaced.due(510), None);

        // In a real context: 1000 ops/s at the claimed 1 GHz TSC is 10^6
        // ticks per op. The first call's 990 ops take at least 9.9*10^8
        // ticks; a second call of one op must wait for that one op only,
        // not for the first call's 990 again (as when every call paced
        // from its own start but counted all operations).
        let host = HostGuest::new(&[("rate", "1000")]);
        let mut g = host.ctx();
        let mut left = 100;
        g.run(|_| {
            left -= 1;
            (left > 0).then_some(10)
        });
        assert_eq!(g.ops(), 990);
        let t0 = rdtsc();
        let mut once = true;
        g.run(|_| core::mem::take(&mut once).then_some(1));
        let took = rdtsc() - t0;
        assert!(took >= 1_000_000, "one op is paced: {took} ticks");
        // The wrong schedule would wait 991 * 10^6 ticks; the right one
        // 10^6 plus whatever time the host takes the CPU away, far less
        // than the half of the wrong wait allowed here.
        assert!(took < 500_000_000, "second call waited {took} ticks");
    }
}
