//! `bench native`: the same memory-access kernel
//! (`wss_guest::kernel::uniform`, truth marking included) as the `random`
//! guest and in a host thread, in alternating rounds, so the ratio measures
//! only what virtualization costs.

use std::alloc::{Layout as AllocLayout, alloc_zeroed, dealloc};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::Serialize;
use wss_abi::{MAX_PARAMS, PAGE_SIZE, Param, Params, Status};

use super::{BenchError, median};
use crate::vmm::machine::{Machine, MachineConfig};
use crate::vmm::vcpu_thread::{VcpuEnd, VcpuThread};

#[derive(Debug, Clone, Serialize)]
pub struct NativeRound {
    pub vm_ops_per_s: f64,
    pub host_ops_per_s: f64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NativeResult {
    pub kernel: &'static str,
    pub wss_bytes: u64,
    pub seconds_per_side: f64,
    /// Medians over the rounds.
    pub vm_ops_per_s: f64,
    pub host_ops_per_s: f64,
    pub ratio: f64,
    pub rounds: Vec<NativeRound>,
}

/// Runs `rounds` alternating VM and host rounds of `duration` each.
pub fn native(wss: u64, duration: Duration, rounds: usize) -> Result<NativeResult, BenchError> {
    let mut out = Vec::new();
    for r in 0..rounds.max(1) {
        let (vm_ops, vm_rate) = vm_round(wss, duration, r as u64 + 1)?;
        // The host does the same number of timed accesses as the guest just
        // did, after the same kind of warm-up.
        let host_rate = host_round(wss, vm_ops, r as u64 + 1)?;
        out.push(NativeRound {
            vm_ops_per_s: vm_rate,
            host_ops_per_s: host_rate,
            ratio: vm_rate / host_rate,
        });
    }
    // `out` holds at least one round, so every median exists.
    let med = |f: fn(&NativeRound) -> f64| median(out.iter().map(f)).unwrap_or(f64::NAN);
    Ok(NativeResult {
        kernel: "wss_guest::kernel::uniform (the random guest)",
        wss_bytes: wss,
        seconds_per_side: duration.as_secs_f64(),
        vm_ops_per_s: med(|r| r.vm_ops_per_s),
        host_ops_per_s: med(|r| r.host_ops_per_s),
        ratio: med(|r| r.ratio),
        rounds: out,
    })
}

/// Boots `random`, lets it warm up (every page populated), then times it
/// for `duration`. Returns (accesses in the timed window, accesses per
/// second by the guest's own TSC).
fn vm_round(wss: u64, duration: Duration, seed: u64) -> Result<(u64, f64), BenchError> {
    let image = crate::guests::embedded("random").ok_or(BenchError::NoGuest("random"))?;
    let mem = (wss + (64 << 20)).next_multiple_of(2 << 20);
    let m = Machine::boot(
        image,
        &MachineConfig {
            mem,
            wss,
            seed,
            params: Vec::new(),
            dirty_log: false,
            guest_pages: crate::vmm::paging::GuestPageSize::Size2M,
            vcpus: 1,
        },
    )?;
    let memory = Arc::clone(m.memory());
    let tsc_hz = m.tsc_hz;
    let Machine { vcpu, vm, kvm, .. } = m;
    let thread = VcpuThread::spawn(
        vcpu,
        Arc::clone(&memory),
        Instant::now(),
        None,
        None,
        Box::new(|| {}),
    )
    .map_err(BenchError::Spawn)?;
    std::thread::sleep(WARMUP);
    let before = memory.status();
    std::thread::sleep(duration);
    let after = memory.status();
    let report = thread.stop();
    drop((vm, kvm));
    match report.end {
        VcpuEnd::Stopped => {}
        VcpuEnd::Failed(e) => return Err(BenchError::Vcpu(e)),
        end => return Err(BenchError::Guest(format!("{end:?}"))),
    }
    let ops = after.guest_ops - before.guest_ops;
    let secs = (after.run_cycles - before.run_cycles) as f64 / tsc_hz as f64;
    Ok((ops, ops as f64 / secs.max(1e-9)))
}

/// Page-aligned zeroed host memory, freed on drop.
struct HostBuf {
    ptr: *mut u8,
    layout: AllocLayout,
}

impl HostBuf {
    fn new(bytes: u64) -> Result<HostBuf, BenchError> {
        let layout =
            AllocLayout::from_size_align(bytes.max(PAGE_SIZE) as usize, PAGE_SIZE as usize)
                .map_err(|_| BenchError::Alloc(bytes))?;
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(BenchError::Alloc(bytes));
        }
        Ok(HostBuf { ptr, layout })
    }
}

impl Drop for HostBuf {
    fn drop(&mut self) {
        // SAFETY: ptr came from alloc_zeroed with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// Time a side runs before it is measured, so that first-touch page
/// population is not in either timed window.
const WARMUP: Duration = Duration::from_millis(500);

/// Runs the kernel in this process (first a warm-up pass over the same
/// memory), then for exactly `ops` accesses, and returns its accesses per
/// second, timed with the TSC exactly as in the guest.
fn host_round(wss: u64, ops: u64, seed: u64) -> Result<f64, BenchError> {
    let pages = wss.div_ceil(PAGE_SIZE).max(1);
    let data = HostBuf::new(pages * PAGE_SIZE)?;
    let words = pages.div_ceil(64);
    let read_bits: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
    let write_bits: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
    let mut status = Box::new(Status::default());
    let tsc_hz = host_tsc_hz();
    let base = data.ptr as u64;
    let params_for = |ops: u64| {
        let mut params = [Param::EMPTY; MAX_PARAMS];
        let ops_text = ops.max(1).to_string();
        params[0].key[..3].copy_from_slice(b"ops");
        params[0].value[..ops_text.len()].copy_from_slice(ops_text.as_bytes());
        params
    };
    let mut p = Params {
        magic: wss_abi::PARAMS_MAGIC,
        version: wss_abi::ABI_VERSION,
        ram_base: base,
        ram_size: pages * PAGE_SIZE,
        data_start: base,
        data_end: base + pages * PAGE_SIZE,
        stack_top: 0,
        vcpus: 1,
        tsc_hz,
        seed,
        wss_bytes: wss,
        status: (&mut *status as *mut Status) as u64,
        read_bitmap: read_bits.as_ptr() as u64,
        write_bitmap: write_bits.as_ptr() as u64,
        bitmap_words: words,
        nparams: 1,
        params: params_for(pages * 8),
    };
    for pass_ops in [pages * 8, ops] {
        p.params = params_for(pass_ops);
        // SAFETY: every address in `p` points into `data`, `status` or the
        // two bitmaps, which outlive the context and are used by nothing
        // else.
        let mut ctx = unsafe { wss_guest::Ctx::new(&p) };
        std::hint::black_box(wss_guest::kernel::uniform(&mut ctx));
    }
    let secs = status.run_cycles as f64 / tsc_hz as f64;
    Ok(status.guest_ops as f64 / secs.max(1e-9))
}

/// The host TSC frequency, measured against the monotonic clock.
fn host_tsc_hz() -> u64 {
    let t0 = Instant::now();
    let c0 = wss_guest::clock::rdtsc();
    std::thread::sleep(Duration::from_millis(100));
    let c1 = wss_guest::clock::rdtsc();
    ((c1 - c0) as f64 / t0.elapsed().as_secs_f64()) as u64
}
