//! The bare-metal half of the runtime: entry, panic handling, hypercalls and
//! the memory functions the compiler expects from a libc.

use core::fmt::{self, Write};

use wss_abi::{DOORBELL_BASE, LOG_MAX, Params, doorbell, pack_buf};

use crate::Ctx;

/// Rings a doorbell: an 8-byte store to an address in no memory slot, which
/// exits to the VMM; the guest resumes after the VMM handled it.
#[inline(always)]
pub fn ring(offset: u64, data: u64) {
    // SAFETY: the doorbell window is mapped by the VMM's page tables; the
    // store never reaches memory, it becomes a KVM_EXIT_MMIO.
    unsafe { core::ptr::write_volatile((DOORBELL_BASE + offset) as *mut u64, data) }
}

/// Ends the program with `code` (0 is success). Never returns.
pub fn exit(code: u64) -> ! {
    ring(doorbell::EXIT, code);
    // The VMM never resumes a guest after exit; spin if it somehow does.
    loop {
        core::hint::spin_loop();
    }
}

/// Prints `msg` through the VMM.
pub fn log_str(msg: &str) {
    let len = (msg.len() as u64).min(LOG_MAX);
    ring(doorbell::LOG, pack_buf(msg.as_ptr() as u64, len));
}

/// Announces a change of behaviour; the VMM timestamps it.
pub fn phase(marker: u64) {
    ring(doorbell::PHASE, marker);
}

/// Rendezvous with the VMM: returns once the VMM's sync hook has run.
pub fn sync(value: u64) {
    ring(doorbell::SYNC, value);
}

/// Offers the host CPU to the other vCPUs (a vCPU waiting at a barrier).
pub fn yield_now() {
    ring(doorbell::YIELD, 0);
}

/// Takes the vCPU off the host CPU for up to `ns` nanoseconds (capped by
/// the VMM at `MAX_SLEEP_NS`; it may return sooner, at a boundary).
pub fn sleep_ns(ns: u64) {
    ring(doorbell::SLEEP, ns);
}

/// A fixed buffer that `core::fmt` can write into, truncating when full.
pub struct MsgBuf {
    buf: [u8; LOG_MAX as usize],
    len: usize,
}

impl MsgBuf {
    pub const fn new() -> MsgBuf {
        MsgBuf {
            buf: [0; LOG_MAX as usize],
            len: 0,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Default for MsgBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for MsgBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Formats and prints a message through the VMM.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut m = $crate::rt::MsgBuf::new();
        let _ = core::fmt::Write::write_fmt(&mut m, format_args!($($arg)*));
        $crate::rt::log_str(m.as_str());
    }};
}

/// Defines the program's entry point. `main` takes the context and returns
/// a checksum of its data, which the VMM reports; returning ends the program
/// with exit code 0.
///
/// With `--vcpus N`, `main` runs on every vCPU, each with its own context
/// ([`Ctx::vcpu`] tells which). vCPU 0's return ends the program and its
/// value is the checksum; another vCPU's return only stops that vCPU.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn _start(params: *const $crate::abi::Params, vcpu: u64) -> ! {
            $crate::rt::start(params, vcpu, $main)
        }
    };
}

/// Called by the entry point that [`entry!`] defines, on every vCPU.
pub fn start(params: *const Params, vcpu: u64, main: fn(&mut Ctx) -> u64) -> ! {
    // SAFETY: the VMM passes the address of the parameter block in rdi and
    // fills it before boot.
    let params = unsafe { &*params };
    if params.magic != wss_abi::PARAMS_MAGIC || params.version != wss_abi::ABI_VERSION {
        log_str("kvm-wss guest: parameter block has the wrong magic or ABI version");
        exit(120);
    }
    // SAFETY: the VMM lays out the data region, status block and bitmaps
    // as the parameter block says; the vCPUs share them only through the
    // context's atomic updates.
    let mut ctx = unsafe { Ctx::for_vcpu(params, vcpu) };
    let sum = main(&mut ctx);
    if ctx.vcpu() == 0 {
        ctx.set_checksum(sum);
    }
    exit(0)
}

#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo) -> ! {
    // A static buffer: the panic may come from a stack overflow. The first
    // vCPU to panic takes it; the run ends on that panic, so another vCPU
    // panicking at the same time reports only that it did.
    static mut PANIC_MSG: MsgBuf = MsgBuf::new();
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if TAKEN.swap(true, core::sync::atomic::Ordering::AcqRel) {
        let s = "another vCPU panicked at the same time";
        ring(doorbell::PANIC, pack_buf(s.as_ptr() as u64, s.len() as u64));
        loop {
            core::hint::spin_loop();
        }
    }
    // SAFETY: only the vCPU that took `TAKEN` gets here, and the handler
    // never returns, so no other reference to the buffer exists.
    let m = unsafe { &mut *core::ptr::addr_of_mut!(PANIC_MSG) };
    let _ = write!(m, "{}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(m, " at {}:{}", loc.file(), loc.line());
    }
    let s = m.as_str();
    ring(doorbell::PANIC, pack_buf(s.as_ptr() as u64, s.len() as u64));
    loop {
        core::hint::spin_loop();
    }
}

// A freestanding binary has no libc, yet the compiler emits calls to these.
// They use the string instructions, which the compiler never turns back into
// calls to themselves.

/// # Safety
/// Same contract as C's `memcpy`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid for n bytes.
    unsafe {
        core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _,
            inout("rsi") src => _, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// Same contract as C's `memmove`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: a forward copy is correct when dst does not start inside src.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: copy backwards with the direction flag set, then clear it.
    unsafe {
        core::arch::asm!("std", "rep movsb", "cld",
            inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dst
}

/// # Safety
/// Same contract as C's `memset`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range is valid for n bytes.
    unsafe {
        core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _,
            in("al") c as u8, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// Same contract as C's `memcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges are valid for n bytes.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return x as i32 - y as i32;
        }
    }
    0
}

/// # Safety
/// Same contract as C's `bcmp`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// The precompiled `core` refers to the unwinder's personality routine even
/// though programs build with `panic = "abort"` and never unwind, so it is
/// never called. Defining it satisfies the link on the stable toolchain.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
