//! A fuzz pass on the stable toolchain, with no extra dependency: seeded
//! random mutation of valid inputs (the built-in guest images, instruction
//! bytes, page tables, unit strings) and random exits, through everything
//! that reads what a guest or a user hands kvm-wss:
//!
//! - the ELF loader (`vmm::loader::parse`);
//! - doorbell decoding and exit handling (`vmm::doorbell`, `vmm::exit`),
//!   with the escaping of guest text;
//! - the guest page-table walker (`vmm::paging::translate`);
//! - the instruction decoder (`track::decode`);
//! - the unit parsers (`wss_abi::units`) and `--param` checks (`catalog`).
//!
//! Each target runs `KVM_WSS_FUZZ_ITERS` iterations (default 20,000: a few
//! seconds in `make test`); `make fuzz` runs 250,000 per target, 1.25 M in
//! all. A panic fails the test with the target, seed, iteration and input,
//! so it can be replayed with `KVM_WSS_FUZZ_SEED`.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};

use kvm_wss::catalog::{CATALOG, COMMON_PARAMS};
use kvm_wss::track::decode::{SegmentBases, decode_insn};
use kvm_wss::vmm::exit::{Exit, ExitState, escape_guest_text, handle_exit};
use kvm_wss::vmm::{doorbell, loader, paging};
use wss_abi::{DOORBELL_BASE, DOORBELL_SIZE, LOG_MAX, RAM_BASE, pack_buf};

/// splitmix64: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }
    /// A value biased towards edges: 0, small, all ones, powers of two.
    fn interesting(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => self.next() % 64,
            2 => u64::MAX >> self.below(64),
            3 => 1u64 << self.below(64),
            4 => (1u64 << self.below(64)).wrapping_sub(1),
            _ => self.next(),
        }
    }
}

/// A few random edits of `input`: bit flips, byte and word overwrites with
/// edge values, insertions, deletions and copies within the input.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(8) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 if len >= 8 => {
                let i = rng.below(len - 7);
                let v = rng.interesting().to_le_bytes();
                let w = [1, 2, 4, 8][rng.below(4)];
                input[i..i + w].copy_from_slice(&v[..w]);
            }
            3 if len < 1 << 20 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(i..i, bytes);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                input.drain(i..i + n);
            }
            5 if len > 1 => {
                let from = rng.below(len);
                let to = rng.below(len);
                let n = rng.below((len - from).min(len - to).min(256)) + 1;
                let chunk = input[from..from + n].to_vec();
                input[to..to + n].copy_from_slice(&chunk);
            }
            6 if len > 0 && rng.chance(8) => input.truncate(rng.below(len)),
            _ => {}
        }
    }
}

fn iterations() -> u64 {
    std::env::var("KVM_WSS_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed() -> u64 {
    std::env::var("KVM_WSS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b76_6d2d_7773_7321)
}

/// Runs `one` for each iteration with its own generator; a panic fails the
/// test naming the target, iteration and the input `one` describes.
fn fuzz(target: &str, mut one: impl FnMut(&mut Rng) -> String) {
    let iters = iterations();
    let base = seed()
        ^ target
            .bytes()
            .fold(0u64, |h, b| h.rotate_left(5) ^ b as u64);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut failure = None;
    for i in 0..iters {
        let mut rng = Rng(base.wrapping_add(i));
        let mut input = String::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            input = one(&mut rng);
        }));
        if let Err(e) = result {
            let what = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failure = Some(format!(
                "{target}: iteration {i} (seed {base:#x}) panicked: {what}; input {input}"
            ));
            break;
        }
    }
    std::panic::set_hook(hook);
    if let Some(f) = failure {
        panic!("{f}");
    }
    eprintln!("fuzz {target}: {iters} iterations, 0 crashes");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn fuzz_elf_loader() {
    let seeds: Vec<&[u8]> = CATALOG
        .iter()
        .filter_map(|p| kvm_wss::guests::embedded(p.name))
        .collect();
    assert!(!seeds.is_empty());
    let ram_end = RAM_BASE + (64 << 20);
    fuzz("loader", |rng| {
        let mut image = seeds[rng.below(seeds.len())].to_vec();
        // Most damage goes to the headers, where the loader decides things.
        let head = image.len().min(4096);
        let mut front = image[..head].to_vec();
        mutate(rng, &mut front);
        if rng.chance(4) {
            mutate(rng, &mut image);
        }
        image.splice(..head.min(image.len()), front);
        let input = format!(
            "{} bytes, head {}",
            image.len(),
            hex(&image[..image.len().min(128)])
        );
        let _ = loader::parse(&image, RAM_BASE, ram_end);
        input
    });
}

#[test]
fn fuzz_doorbells_and_exits() {
    let mem: Vec<u8> = (0..8192u32).map(|i| (i * 7 + i / 13) as u8).collect();
    fuzz("exits", |rng| {
        // Guest memory of random bytes at 0x4000_0000.
        let mut bytes = mem.clone();
        mutate(rng, &mut bytes);
        let read = |addr: u64, len: u64| -> Option<Vec<u8>> {
            let off = usize::try_from(addr.checked_sub(RAM_BASE)?).ok()?;
            let end = off.checked_add(usize::try_from(len).ok()?)?;
            bytes.get(off..end).map(<[u8]>::to_vec)
        };
        let mut state = ExitState::default();
        let mut log = Vec::new();
        for _ in 0..=rng.below(32) {
            let addr = match rng.below(4) {
                0 => rng.next(),
                1 => DOORBELL_BASE + rng.below(DOORBELL_SIZE as usize) as u64,
                _ => DOORBELL_BASE + 8 * rng.below(8) as u64,
            };
            let value = match rng.below(3) {
                0 => rng.interesting(),
                1 => pack_buf(
                    RAM_BASE + rng.below(9000) as u64,
                    rng.below(LOG_MAX as usize + 2) as u64,
                ),
                _ => rng.next(),
            };
            let len = if rng.chance(3) { rng.below(9) } else { 8 };
            let write = !rng.chance(10);
            let _ = doorbell::decode(addr, &value.to_le_bytes()[..len], write);
            let exit = match rng.below(12) {
                0 => Exit::Shutdown { rip: rng.next() },
                1 => Exit::Hlt { rip: rng.next() },
                2 => Exit::Io {
                    port: rng.next() as u16,
                    write,
                    rip: rng.next(),
                },
                3 => Exit::MemoryFault {
                    gpa: rng.next(),
                    size: rng.next(),
                },
                4 => Exit::Efault,
                5 => Exit::Interrupted,
                _ => Exit::Mmio {
                    addr,
                    data: value.to_le_bytes(),
                    len: if rng.chance(20) { rng.below(64) } else { len },
                    write,
                },
            };
            log.push(format!("{exit:?}"));
            let _ = handle_exit(&exit, &mut state, &read, rng.below(1000) as f64);
        }
        for text in state.logs.iter().chain(&state.reject_messages) {
            assert!(!text.chars().any(char::is_control), "unescaped {text:?}");
        }
        // Escaping holds for any bytes, not only what came through a log.
        let raw = String::from_utf8_lossy(&bytes[..rng.below(bytes.len())]).into_owned();
        assert!(!escape_guest_text(&raw).chars().any(char::is_control));
        log.join(", ")
    });
}

#[test]
fn fuzz_page_walker() {
    let base = 0x10_0000u64;
    let map_end = RAM_BASE + (256 << 20);
    let small = RAM_BASE..RAM_BASE + (4 << 20);
    let tables = paging::identity_map(base, map_end, small).expect("valid map");
    fuzz("paging", |rng| {
        let mut bytes = tables.bytes.clone();
        mutate(rng, &mut bytes);
        let read = |gpa: u64| -> Option<u64> {
            let off = usize::try_from(gpa.checked_sub(base)?).ok()?;
            let b = bytes.get(off..off.checked_add(8)?)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        };
        let cr3 = if rng.chance(4) {
            rng.interesting()
        } else {
            base
        };
        let gva = match rng.below(3) {
            0 => rng.interesting(),
            1 => RAM_BASE + rng.below(256 << 20) as u64,
            _ => rng.next() & 0x0000_7fff_ffff_ffff,
        };
        let _ = paging::translate(cr3, gva, read);
        let _ = paging::pte_address(base, map_end, &(RAM_BASE..RAM_BASE + (4 << 20)), gva);
        format!("cr3 {cr3:#x} gva {gva:#x}")
    });
}

#[test]
fn fuzz_instruction_decoder() {
    // Memory-touching instructions the guests use, and some odd ones.
    let seeds: &[&[u8]] = &[
        &[0x48, 0x8b, 0x07],                               // mov rax, [rdi]
        &[0x48, 0x89, 0x04, 0xcf],                         // mov [rdi+rcx*8], rax
        &[0xf3, 0x48, 0xa5],                               // rep movsq
        &[0xf3, 0xaa],                                     // rep stosb
        &[0x48, 0x0f, 0xc7, 0x0f],                         // cmpxchg16b [rdi]
        &[0xf0, 0x48, 0x0f, 0xc1, 0x07],                   // lock xadd [rdi], rax
        &[0x66, 0x0f, 0x6f, 0x06],                         // movdqa xmm0, [rsi]
        &[0xc5, 0xfd, 0x6f, 0x06],                         // vmovdqa ymm0, [rsi]
        &[0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0],       // mov rax, fs:[0]
        &[0xff, 0x15, 0, 0, 0, 0],                         // call [rip]
        &[0x0f, 0x0b],                                     // ud2
        &[0x48, 0x8b, 0x84, 0x24, 0x88, 0x77, 0x66, 0x55], // mov rax, [rsp+disp32]
    ];
    fuzz("decode", |rng| {
        let mut code = seeds[rng.below(seeds.len())].to_vec();
        mutate(rng, &mut code);
        if rng.chance(4) {
            code = (0..rng.below(20)).map(|_| rng.next() as u8).collect();
        }
        let rip = if rng.chance(2) {
            RAM_BASE + rng.below(1 << 20) as u64
        } else {
            rng.interesting()
        };
        if let Ok(insn) = decode_insn(&code, rip) {
            let _ = insn.matches(&code);
            let regs = kvm_bindings::kvm_regs {
                rax: rng.interesting(),
                rbx: rng.interesting(),
                rcx: rng.interesting(),
                rdx: rng.interesting(),
                rsi: rng.interesting(),
                rdi: rng.interesting(),
                rsp: rng.interesting(),
                rbp: rng.interesting(),
                r8: rng.interesting(),
                r9: rng.interesting(),
                r10: rng.interesting(),
                r11: rng.interesting(),
                r12: rng.interesting(),
                r13: rng.interesting(),
                r14: rng.interesting(),
                r15: rng.interesting(),
                rip,
                rflags: rng.interesting(),
            };
            let seg = SegmentBases {
                fs: rng.interesting(),
                gs: rng.interesting(),
            };
            if let Ok(d) = insn.accesses(&regs, &seg) {
                let _ = kvm_wss::track::decode::pages_touched(&d.accesses);
            }
        }
        format!("rip {rip:#x} code {}", hex(&code))
    });
}

#[test]
fn fuzz_units_and_params() {
    let seeds = [
        "4096",
        "64K",
        "512M",
        "2G",
        "1MiB",
        "3kb",
        "100ms",
        "1.5s",
        "2m",
        "250us",
        "0s",
        "0.99",
        "1e3",
        "NaN",
        "-1",
        "18446744073709551615",
        "16M,64M,4K",
        "phase_spam",
        "",
    ];
    let kinds: Vec<_> = COMMON_PARAMS
        .iter()
        .chain(CATALOG.iter().flat_map(|p| p.params))
        .map(|q| q.kind)
        .collect();
    fuzz("units", |rng| {
        let mut bytes = seeds[rng.below(seeds.len())].as_bytes().to_vec();
        mutate(rng, &mut bytes);
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let _ = wss_abi::units::parse_size(&s);
        let _ = wss_abi::units::parse_duration_ns(&s);
        let _ = kvm_wss::cli::size(&s);
        let _ = kvm_wss::cli::duration(&s);
        let _ = kvm_wss::cli::key_value(&s);
        let _ = kinds[rng.below(kinds.len())].check(&s, rng.interesting(), rng.interesting());
        format!("{s:?}")
    });
}
