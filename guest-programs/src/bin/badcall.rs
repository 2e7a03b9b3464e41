//! badcall: a test program for the VMM's input validation. It makes the one
//! misbehaviour that `call` names:
//!
//! - `log_oob`: a log hypercall whose buffer starts right past guest RAM;
//! - `log_huge`: a log hypercall longer than `LOG_MAX`;
//! - `unknown_doorbell`: an 8-byte store to `DOORBELL_BASE + 0x1000`;
//! - `narrow`: a 1-byte store to the EXIT doorbell;
//! - `read_doorbell`: an 8-byte load from the LOG doorbell;
//! - `exit_code`: exit with code 7;
//! - `panic`: `panic!("boom 42")`;
//! - `triple_fault`: `ud2`, which with no guest kernel triple-faults;
//! - `wild_store`: a store to guest address 0x10, mapped but in no slot;
//! - `phase_spam`: phase hypercalls with a rising marker, in a loop that
//!   never ends (the VMM must bound what it keeps);
//! - `log_spam`: log hypercalls in a loop that never ends;
//! - `ansi_log`: logs a message with ANSI escapes and newlines that forge
//!   kvm-wss output lines, then returns 0;
//! - `ansi_panic`: panics with such a message.
//!
//! If the VMM rejects the call and resumes the guest, the program logs
//! `survived <call>` and returns 0. An unknown `call` panics.
//!
//! Params: `call` (required).
//!
//! True WSS: none; the program touches no data page.
#![no_std]
#![no_main]

use wss_guest::Ctx;
use wss_guest::abi::{DOORBELL_BASE, LOG_MAX, doorbell, pack_buf};
use wss_guest::rt::{exit, phase, ring};

wss_guest::entry!(main);

/// A valid message one byte longer than a log hypercall may carry.
static HUGE: [u8; LOG_MAX as usize + 1] = [b'x'; LOG_MAX as usize + 1];

/// A store of `size` bytes (1 or 8) to `addr`, outside every memory slot.
fn raw_store(addr: u64, size: u8, value: u64) {
    // SAFETY: no memory slot backs `addr`, so no guest memory changes: the
    // store exits to the VMM, which emulates or rejects it.
    unsafe {
        match size {
            1 => core::ptr::write_volatile(addr as *mut u8, value as u8),
            _ => core::ptr::write_volatile(addr as *mut u64, value),
        }
    }
}

/// An 8-byte load from `addr`, outside every memory slot.
fn raw_load(addr: u64) -> u64 {
    // SAFETY: as in `raw_store`; the VMM supplies the value or rejects it.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

/// Text that, printed raw, would recolour the terminal, set its title and
/// forge lines of kvm-wss's own output.
const FORGED: &str =
    "evil\x1b[31m red\x1b]0;pwned\x07\nkvm-wss: run finished OK\r\noutput     /forged/path";

fn main(g: &mut Ctx) -> u64 {
    let params = *g.params();
    let call = params.get("call").unwrap_or("");
    let past_ram = params.ram_base + params.ram_size;
    match call {
        "log_oob" => ring(doorbell::LOG, pack_buf(past_ram, 16)),
        "log_huge" => ring(doorbell::LOG, pack_buf(HUGE.as_ptr() as u64, LOG_MAX + 1)),
        "unknown_doorbell" => raw_store(DOORBELL_BASE + 0x1000, 8, 1),
        "narrow" => raw_store(DOORBELL_BASE + doorbell::EXIT, 1, 1),
        "read_doorbell" => {
            let v = raw_load(DOORBELL_BASE + doorbell::LOG);
            wss_guest::log!("read_doorbell read {v:#x}");
        }
        "exit_code" => exit(7),
        "panic" => panic!("boom {}", 42),
        // SAFETY: ud2 raises #UD; with no IDT that escalates to a triple
        // fault, which the VMM must report as a failure. No memory changes.
        "triple_fault" => unsafe { core::arch::asm!("ud2", options(nomem, nostack)) },
        "wild_store" => raw_store(0x10, 8, 0x5a5a),
        "phase_spam" => {
            let mut marker = 0u64;
            loop {
                phase(marker);
                marker = marker.wrapping_add(1);
            }
        }
        "log_spam" => loop {
            wss_guest::log!("spam\n\x1b[31mline\x1b[0m");
        },
        "ansi_log" => wss_guest::log!("{FORGED}"),
        "ansi_panic" => panic!("{FORGED}"),
        _ => panic!("badcall: unknown call {call:?}"),
    }
    wss_guest::log!("survived {call}");
    0
}
