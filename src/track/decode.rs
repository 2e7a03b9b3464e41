//! Which guest linear addresses the instruction at RIP accesses.
//!
//! When a sampled page is armed with `mprotect(PROT_NONE)`, KVM_RUN fails with
//! EFAULT and this host reports no faulting address. The faulting access must then
//! be recovered from the instruction itself: decode it with iced-x86, ask iced which
//! memory locations it uses, and resolve their linear addresses from the vCPU's
//! registers. The guest runs in 64-bit mode, so only FS and GS have non-zero bases.

use std::collections::HashMap;
use std::sync::Arc;

use iced_x86::{
    Decoder, DecoderError, DecoderOptions, IcedError, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register, UsedMemory,
};
use kvm_bindings::kvm_regs;
use thiserror::Error;

/// log2 of the page size that accesses are split on.
const PAGE_SHIFT: u32 = 12;
const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Linear page numbers have 64 - 12 bits; an access ending past 2^64 wraps to page 0.
const PAGE_NUMBER_MASK: u64 = u64::MAX >> PAGE_SHIFT;

/// Segment bases that are not architecturally zero in 64-bit mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SegmentBases {
    pub fs: u64,
    pub gs: u64,
}

/// One memory access of an instruction, as a linear address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemAccess {
    pub addr: u64,
    pub len: u64,
    pub read: bool,
    pub write: bool,
    /// The access may not happen: iced reports it as CondRead or CondWrite, or as
    /// ReadCondWrite (the read happens, the write may not). Examples: `cmpxchg`,
    /// AVX-512 stores under a merge mask, `maskmovdqu`. A caller restoring pages
    /// should still treat it as touched, since it is the only candidate left.
    pub conditional: bool,
}

/// How an instruction reaches memory, which tells a caller what else may follow
/// (a string instruction faults again on its next element, a stack one near RSP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// An explicit memory operand (ModRM/SIB, moffs, RIP-relative), including
    /// `lea` and hinting `nop`/`prefetch`, which access nothing.
    Plain,
    /// movs/stos/lods/cmps/scas/ins/outs, with or without a rep prefix.
    String,
    /// push/pop/call/ret/enter/leave/pushf/popf/iret.
    Stack,
    /// No explicit memory operand and none of the above (e.g. `maskmovdqu`, or no
    /// memory at all).
    Other,
}

/// A decoded instruction and the memory it accesses in its current step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Instruction length in bytes.
    pub len: usize,
    /// Lower-case mnemonic with its `lock`/`rep`/`repe`/`repne` prefix, for logs
    /// (shared, so that a cached instruction hands it out without allocating).
    pub mnemonic: Arc<str>,
    pub kind: AccessKind,
    /// For a string instruction, only the element at the current RSI/RDI: that is
    /// the iteration that faulted. Empty if the instruction accesses no memory.
    pub accesses: Vec<MemAccess>,
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("iced-x86 refused to create a 64-bit decoder")]
    Decoder(#[source] IcedError),
    #[error("instruction at rip {rip:#x} is cut off after the {available} bytes given")]
    Truncated { rip: u64, available: usize },
    #[error("invalid instruction at rip {rip:#x}: bytes {bytes:02x?}")]
    Invalid { rip: u64, bytes: Vec<u8> },
    #[error(
        "{mnemonic} at rip {rip:#x} addresses memory through {register}, \
         whose value is not among the general registers"
    )]
    UnresolvedRegister {
        rip: u64,
        mnemonic: String,
        register: String,
    },
    #[error("{mnemonic} at rip {rip:#x} accesses a memory area of unknown size ({memory_size})")]
    UnknownSize {
        rip: u64,
        mnemonic: String,
        memory_size: String,
    },
}

/// Longest legal x86 instruction; enough bytes to show for an invalid one.
const MAX_INSN_LEN: usize = 15;

/// Decodes the instruction at `rip` (its bytes start at `code[0]`) and resolves the
/// linear addresses of the memory it accesses in its current step.
///
/// `code` may be longer than the instruction; a too-short slice yields
/// [`DecodeError::Truncated`] so the caller can fetch more bytes and retry.
pub fn decode_accesses(
    code: &[u8],
    rip: u64,
    regs: &kvm_regs,
    seg: &SegmentBases,
) -> Result<Decoded, DecodeError> {
    decode_insn(code, rip)?.accesses(regs, seg)
}

/// An instruction decoded at one address, compiled into what
/// [`DecodedInsn::accesses`] needs to resolve its memory operands for any
/// register values without consulting iced's tables again.
#[derive(Debug, Clone)]
pub struct DecodedInsn {
    rip: u64,
    /// The instruction's own bytes, to recognise it again.
    bytes: Vec<u8>,
    mnemonic: Arc<str>,
    kind: AccessKind,
    /// For a rep-prefixed string instruction: whether its count is ECX
    /// (32-bit addresses) rather than RCX.
    rep_ecx: Option<bool>,
    operands: Vec<Operand>,
}

/// One memory operand, as resolved at decode time.
#[derive(Debug, Clone)]
struct Operand {
    /// iced's description (RIP-relative displacements are already absolute,
    /// which is why an entry is only valid at its address).
    mem: UsedMemory,
    read: bool,
    write: bool,
    conditional: bool,
    /// Bytes accessed; 0 when iced does not know (an error when resolved).
    size: usize,
    /// Where each register the address uses comes from, in the order iced
    /// asks for them (base, index, segment); `None` for a register the vCPU
    /// state does not hold.
    sources: [(Register, Option<RegSource>); 3],
}

/// Where a register's value comes from in the vCPU state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegSource {
    /// ES, CS, SS and DS have base 0 in 64-bit mode.
    Zero,
    Fs,
    Gs,
    /// Bits `shift..shift + width` of general register `index` (RAX = 0 ...
    /// R15 = 15), `mask` being the width's.
    Gpr {
        index: u8,
        shift: u8,
        mask: u64,
    },
}

/// Decodes the instruction at `rip`, leaving the registers out: see
/// [`decode_accesses`] for the arguments and errors.
pub fn decode_insn(code: &[u8], rip: u64) -> Result<DecodedInsn, DecodeError> {
    let mut decoder =
        Decoder::try_with_ip(64, code, rip, DecoderOptions::NONE).map_err(DecodeError::Decoder)?;
    let instr = decoder.decode();
    match decoder.last_error() {
        DecoderError::None => {}
        DecoderError::NoMoreBytes => {
            return Err(DecodeError::Truncated {
                rip,
                available: code.len(),
            });
        }
        _ => {
            return Err(DecodeError::Invalid {
                rip,
                bytes: code[..code.len().min(MAX_INSN_LEN)].to_vec(),
            });
        }
    }
    let rep_ecx = string_rep_ecx(&instr);
    let mut factory = InstructionInfoFactory::new();
    let mut operands = Vec::new();
    for mem in factory.info(&instr).used_memory() {
        let (read, write, conditional) = match mem.access() {
            OpAccess::Read => (true, false, false),
            OpAccess::Write => (false, true, false),
            OpAccess::ReadWrite => (true, true, false),
            OpAccess::CondRead => (true, false, true),
            OpAccess::CondWrite => (false, true, true),
            OpAccess::ReadCondWrite => (true, true, true),
            OpAccess::None | OpAccess::NoMemAccess => continue,
        };
        // iced describes a rep string instruction as a whole (conditional accesses of
        // unknown size); the faulting step is one element at the current RSI/RDI,
        // certain to happen because the count is non-zero. The direction flag only
        // decides where the next element is.
        let (size, conditional) = match rep_ecx {
            Some(_) => (instr.memory_size().size(), false),
            None => (mem.memory_size().size(), conditional),
        };
        let source = |reg: Register| (reg, reg_source(reg));
        operands.push(Operand {
            mem: *mem,
            read,
            write,
            conditional,
            size,
            sources: [
                source(mem.base()),
                source(mem.index()),
                source(mem.segment()),
            ],
        });
    }
    Ok(DecodedInsn {
        rip,
        bytes: code[..instr.len().min(code.len())].to_vec(),
        mnemonic: mnemonic_text(&instr).into(),
        kind: access_kind(&instr),
        rep_ecx,
        operands,
    })
}

impl DecodedInsn {
    /// Whether `code` (the bytes at this instruction's address) still starts
    /// with this instruction.
    pub fn matches(&self, code: &[u8]) -> bool {
        code.starts_with(&self.bytes)
    }

    /// The memory the instruction accesses in its current step, given the
    /// registers and segment bases.
    pub fn accesses(&self, regs: &kvm_regs, seg: &SegmentBases) -> Result<Decoded, DecodeError> {
        let rip = self.rip;
        let mnemonic = || self.mnemonic.to_string();
        let decoded = |accesses| Decoded {
            len: self.bytes.len(),
            mnemonic: Arc::clone(&self.mnemonic),
            kind: self.kind,
            accesses,
        };
        let rep_count = self.rep_ecx.map(|ecx| {
            if ecx {
                regs.rcx & u64::from(u32::MAX)
            } else {
                regs.rcx
            }
        });
        if rep_count == Some(0) {
            // A rep string instruction with a zero count completes without touching memory.
            return Ok(decoded(Vec::new()));
        }

        // One spare slot: the tracker appends the instruction fetch.
        let mut accesses = Vec::with_capacity(self.operands.len() + 1);
        for op in &self.operands {
            if op.size == 0 {
                return Err(DecodeError::UnknownSize {
                    rip,
                    mnemonic: mnemonic(),
                    memory_size: format!("{:?}", op.mem.memory_size()),
                });
            }
            let mut unresolved = None;
            let addr = op.mem.virtual_address(0, |reg, _, _| {
                let value = op
                    .sources
                    .iter()
                    .find(|(r, _)| *r == reg)
                    .and_then(|(_, source)| *source)
                    .map(|source| source.value(regs, seg));
                if value.is_none() {
                    unresolved = Some(reg);
                }
                value
            });
            let Some(addr) = addr else {
                return Err(DecodeError::UnresolvedRegister {
                    rip,
                    mnemonic: mnemonic(),
                    register: format!("{:?}", unresolved.unwrap_or(Register::None)),
                });
            };
            accesses.push(MemAccess {
                addr,
                len: op.size as u64,
                read: op.read,
                write: op.write,
                conditional: op.conditional,
            });
        }
        Ok(decoded(accesses))
    }
}

/// Entries a [`DecodeCache`] holds before it starts over: far more than the
/// distinct faulting instructions of a guest's hot loops.
pub const DECODE_CACHE_ENTRIES: usize = 1024;

/// Instructions decoded before, by address. A fault at a known instruction
/// (the usual case: a guest's few hot loads and stores fault again and again)
/// skips the decoder, which is the costliest step of attributing a fault:
/// its tables are cold after every trip through `KVM_RUN`. An entry is used
/// only while the bytes at its address are still its instruction's, so
/// self-modifying code is decoded afresh.
#[derive(Debug, Default)]
pub struct DecodeCache {
    entries: HashMap<u64, DecodedInsn>,
}

impl DecodeCache {
    /// [`decode_accesses`], through the cache.
    pub fn decode_accesses(
        &mut self,
        code: &[u8],
        rip: u64,
        regs: &kvm_regs,
        seg: &SegmentBases,
    ) -> Result<Decoded, DecodeError> {
        if let Some(insn) = self.entries.get(&rip)
            && insn.matches(code)
        {
            return insn.accesses(regs, seg);
        }
        let insn = decode_insn(code, rip)?;
        let decoded = insn.accesses(regs, seg);
        if self.entries.len() >= DECODE_CACHE_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(rip, insn);
        decoded
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The distinct 4 KiB pages (linear page numbers, addr >> 12) an access list covers,
/// splitting accesses that cross a page boundary. Sorted, deduplicated.
pub fn pages_touched(accesses: &[MemAccess]) -> Vec<u64> {
    let mut pages: Vec<u64> = accesses.iter().flat_map(access_pages).collect();
    pages.sort_unstable();
    pages.dedup();
    pages
}

/// The 4 KiB pages (linear page numbers) one access covers, in increasing order
/// (wrapping at the top of the address space): one, or two for an access that
/// crosses a page boundary.
pub fn access_pages(a: &MemAccess) -> impl Iterator<Item = u64> + use<> {
    let first = a.addr >> PAGE_SHIFT;
    (0..page_count(a)).map(move |i| first.wrapping_add(i) & PAGE_NUMBER_MASK)
}

/// Whether the access spans more than one 4 KiB page.
pub fn crosses_page(a: &MemAccess) -> bool {
    page_count(a) > 1
}

fn page_count(a: &MemAccess) -> u64 {
    if a.len == 0 {
        return 0;
    }
    let offset = a.addr & (PAGE_SIZE - 1);
    // In u128 so that a range reaching past 2^64 does not overflow.
    let last = (u128::from(offset) + u128::from(a.len) - 1) >> PAGE_SHIFT;
    // At most 2^52 + 1 pages, which fits in u64.
    (last + 1) as u64
}

/// For a rep-prefixed string instruction, whether its count register is ECX (the
/// 0x67 prefix selects 32-bit addresses) rather than RCX; `None` if the instruction
/// is not one.
fn string_rep_ecx(instr: &Instruction) -> Option<bool> {
    if !instr.is_string_instruction() || !(instr.has_rep_prefix() || instr.has_repne_prefix()) {
        return None;
    }
    Some(
        (0..instr.op_count())
            .any(|i| matches!(instr.op_kind(i), OpKind::MemorySegESI | OpKind::MemoryESEDI)),
    )
}

fn access_kind(instr: &Instruction) -> AccessKind {
    if instr.is_string_instruction() {
        AccessKind::String
    } else if instr.is_stack_instruction() {
        AccessKind::Stack
    } else if (0..instr.op_count()).any(|i| instr.op_kind(i) == OpKind::Memory) {
        AccessKind::Plain
    } else {
        AccessKind::Other
    }
}

fn mnemonic_text(instr: &Instruction) -> String {
    let name = format!("{:?}", instr.mnemonic()).to_lowercase();
    let compares = matches!(
        instr.mnemonic(),
        Mnemonic::Cmpsb
            | Mnemonic::Cmpsw
            | Mnemonic::Cmpsd
            | Mnemonic::Cmpsq
            | Mnemonic::Scasb
            | Mnemonic::Scasw
            | Mnemonic::Scasd
            | Mnemonic::Scasq
    );
    let prefix = if instr.has_lock_prefix() {
        "lock "
    } else if !instr.is_string_instruction() {
        ""
    } else if instr.has_repne_prefix() {
        "repne "
    } else if instr.has_rep_prefix() {
        if compares { "repe " } else { "rep " }
    } else {
        ""
    };
    format!("{prefix}{name}")
}

/// Where iced's address computation finds a general register (any width) or the
/// base of a segment register. `None` for anything kvm_regs does not hold, such as
/// the vector index of a VSIB gather.
fn reg_source(reg: Register) -> Option<RegSource> {
    match reg {
        Register::ES | Register::CS | Register::SS | Register::DS => return Some(RegSource::Zero),
        Register::FS => return Some(RegSource::Fs),
        Register::GS => return Some(RegSource::Gs),
        _ => {}
    }
    if !reg.is_gpr() {
        return None;
    }
    let index = match reg.full_register() {
        Register::RAX => 0,
        Register::RCX => 1,
        Register::RDX => 2,
        Register::RBX => 3,
        Register::RSP => 4,
        Register::RBP => 5,
        Register::RSI => 6,
        Register::RDI => 7,
        Register::R8 => 8,
        Register::R9 => 9,
        Register::R10 => 10,
        Register::R11 => 11,
        Register::R12 => 12,
        Register::R13 => 13,
        Register::R14 => 14,
        Register::R15 => 15,
        _ => return None,
    };
    // The legacy high-byte registers are bits 8..16 of their 64-bit register.
    let shift = match reg {
        Register::AH | Register::BH | Register::CH | Register::DH => 8,
        _ => 0,
    };
    let mask = match reg.size() {
        1 => 0xff,
        2 => 0xffff,
        4 => 0xffff_ffff,
        _ => u64::MAX,
    };
    Some(RegSource::Gpr { index, shift, mask })
}

impl RegSource {
    fn value(self, regs: &kvm_regs, seg: &SegmentBases) -> u64 {
        let RegSource::Gpr { index, shift, mask } = self else {
            return match self {
                RegSource::Fs => seg.fs,
                RegSource::Gs => seg.gs,
                _ => 0,
            };
        };
        let full = match index {
            0 => regs.rax,
            1 => regs.rcx,
            2 => regs.rdx,
            3 => regs.rbx,
            4 => regs.rsp,
            5 => regs.rbp,
            6 => regs.rsi,
            7 => regs.rdi,
            8 => regs.r8,
            9 => regs.r9,
            10 => regs.r10,
            11 => regs.r11,
            12 => regs.r12,
            13 => regs.r13,
            14 => regs.r14,
            _ => regs.r15,
        };
        (full >> shift) & mask
    }
}

#[cfg(test)]
mod tests {
    //! Instruction bytes were assembled with `gcc -c` (GNU as, Intel syntax) and
    //! checked with `objdump -d -M intel`; each test also asserts iced's mnemonic and
    //! length so a wrong byte string cannot pass silently.

    use super::*;

    const FS_BASE: u64 = 0x7fff_0000;
    const GS_BASE: u64 = 0x6000_0000;
    const SEG: SegmentBases = SegmentBases {
        fs: FS_BASE,
        gs: GS_BASE,
    };
    const RIP: u64 = 0x40_1000;

    fn regs() -> kvm_regs {
        kvm_regs {
            rsp: 0x7000,
            rbp: 0x7100,
            rip: RIP,
            rflags: 0x2,
            ..kvm_regs::default()
        }
    }

    fn decode(code: &[u8], regs: &kvm_regs) -> Decoded {
        match decode_accesses(code, regs.rip, regs, &SEG) {
            Ok(d) => d,
            Err(e) => panic!("decoding {code:02x?} failed: {e}"),
        }
    }

    fn access(addr: u64, len: u64, read: bool, write: bool) -> MemAccess {
        MemAccess {
            addr,
            len,
            read,
            write,
            conditional: false,
        }
    }

    fn load(addr: u64, len: u64) -> MemAccess {
        access(addr, len, true, false)
    }

    fn store(addr: u64, len: u64) -> MemAccess {
        access(addr, len, false, true)
    }

    fn rmw(addr: u64, len: u64) -> MemAccess {
        access(addr, len, true, true)
    }

    #[test]
    fn plain_load_with_base_index_scale_displacement() {
        // mov rax, qword ptr [rbx+rcx*8+0x10]
        let r = kvm_regs {
            rbx: 0x10_0000,
            rcx: 3,
            ..regs()
        };
        let d = decode(&[0x48, 0x8b, 0x44, 0xcb, 0x10], &r);
        assert_eq!((&*d.mnemonic, d.len, d.kind), ("mov", 5, AccessKind::Plain));
        assert_eq!(d.accesses, vec![load(0x10_0028, 8)]);
        assert_eq!(pages_touched(&d.accesses), vec![0x100]);
    }

    #[test]
    fn plain_store() {
        // mov qword ptr [rdi+0x8], rdx
        let r = kvm_regs {
            rdi: 0x20_0ff8,
            ..regs()
        };
        let d = decode(&[0x48, 0x89, 0x57, 0x08], &r);
        assert_eq!((&*d.mnemonic, d.len), ("mov", 4));
        assert_eq!(d.accesses, vec![store(0x20_1000, 8)]);
    }

    #[test]
    fn read_modify_write_reads_and_writes_the_same_range() {
        // add dword ptr [rdi], eax
        let r = kvm_regs {
            rdi: 0x3004,
            ..regs()
        };
        let d = decode(&[0x01, 0x07], &r);
        assert_eq!((&*d.mnemonic, d.len), ("add", 2));
        assert_eq!(d.accesses, vec![rmw(0x3004, 4)]);
    }

    #[test]
    fn rep_movsb_reports_current_element_of_source_and_destination() {
        // rep movs byte ptr es:[rdi], byte ptr ds:[rsi]
        let r = kvm_regs {
            rsi: 0x10_0fff,
            rdi: 0x20_0000,
            rcx: 5,
            ..regs()
        };
        let d = decode(&[0xf3, 0xa4], &r);
        assert_eq!(
            (&*d.mnemonic, d.len, d.kind),
            ("rep movsb", 2, AccessKind::String)
        );
        assert_eq!(d.accesses, vec![store(0x20_0000, 1), load(0x10_0fff, 1)]);
        assert_eq!(pages_touched(&d.accesses), vec![0x100, 0x200]);
    }

    #[test]
    fn rep_movsq_element_crossing_a_page_boundary() {
        // rep movs qword ptr es:[rdi], qword ptr ds:[rsi]
        let r = kvm_regs {
            rsi: 0x10_0ffc,
            rdi: 0x20_0ff8,
            rcx: 100,
            ..regs()
        };
        let d = decode(&[0xf3, 0x48, 0xa5], &r);
        assert_eq!((&*d.mnemonic, d.len), ("rep movsq", 3));
        assert_eq!(d.accesses, vec![store(0x20_0ff8, 8), load(0x10_0ffc, 8)]);
        assert!(!crosses_page(&d.accesses[0]));
        assert!(crosses_page(&d.accesses[1]));
        assert_eq!(pages_touched(&d.accesses), vec![0x100, 0x101, 0x200]);
    }

    #[test]
    fn rep_with_zero_count_accesses_nothing() {
        // rep movs byte ptr es:[rdi], byte ptr ds:[rsi]
        let r = kvm_regs {
            rsi: 0x10_0000,
            rdi: 0x20_0000,
            rcx: 0,
            ..regs()
        };
        let d = decode(&[0xf3, 0xa4], &r);
        assert_eq!(d.kind, AccessKind::String);
        assert!(d.accesses.is_empty());
    }

    #[test]
    fn rep_stosq_writes_one_qword_at_rdi() {
        // rep stos qword ptr es:[rdi], rax
        let r = kvm_regs {
            rdi: 0x5008,
            rcx: 2,
            ..regs()
        };
        let d = decode(&[0xf3, 0x48, 0xab], &r);
        assert_eq!((&*d.mnemonic, d.len), ("rep stosq", 3));
        assert_eq!(d.accesses, vec![store(0x5008, 8)]);
    }

    #[test]
    fn movsq_with_direction_flag_set_still_accesses_rsi_and_rdi() {
        // movs qword ptr es:[rdi], qword ptr ds:[rsi]; DF (RFLAGS bit 10) set: the
        // current element is at rsi/rdi, only the next one moves downwards.
        let r = kvm_regs {
            rsi: 0x10_0000,
            rdi: 0x20_0000,
            rflags: 0x2 | (1 << 10),
            ..regs()
        };
        let d = decode(&[0x48, 0xa5], &r);
        assert_eq!((&*d.mnemonic, d.len), ("movsq", 2));
        assert_eq!(d.accesses, vec![store(0x20_0000, 8), load(0x10_0000, 8)]);
        assert_eq!(pages_touched(&d.accesses), vec![0x100, 0x200]);
    }

    #[test]
    fn repe_cmpsb_and_repne_scasb_read_their_current_elements() {
        let r = kvm_regs {
            rsi: 0x10_0010,
            rdi: 0x20_0020,
            rcx: 1,
            ..regs()
        };
        // repz cmps byte ptr ds:[rsi], byte ptr es:[rdi]
        let d = decode(&[0xf3, 0xa6], &r);
        assert_eq!(&*d.mnemonic, "repe cmpsb");
        assert_eq!(d.accesses, vec![load(0x10_0010, 1), load(0x20_0020, 1)]);
        // repnz scas al, byte ptr es:[rdi]
        let d = decode(&[0xf2, 0xae], &r);
        assert_eq!(&*d.mnemonic, "repne scasb");
        assert_eq!(d.accesses, vec![load(0x20_0020, 1)]);
    }

    #[test]
    fn string_with_fs_override_uses_fs_base_for_the_source_only() {
        // rep movs byte ptr es:[rdi], byte ptr fs:[rsi]
        let r = kvm_regs {
            rsi: 0x10,
            rdi: 0x20_0000,
            rcx: 1,
            ..regs()
        };
        let d = decode(&[0x64, 0xf3, 0xa4], &r);
        assert_eq!(d.len, 3);
        assert_eq!(
            d.accesses,
            vec![store(0x20_0000, 1), load(FS_BASE + 0x10, 1)]
        );
    }

    #[test]
    fn string_with_32bit_addresses_uses_esi_edi_and_ecx() {
        // addr32 rep movs byte ptr es:[edi], byte ptr ds:[esi]
        let r = kvm_regs {
            rsi: 0xffff_ffff_0000_1000,
            rdi: 0xffff_ffff_0000_2000,
            rcx: 0x1_0000_0001,
            ..regs()
        };
        let d = decode(&[0x67, 0xf3, 0xa4], &r);
        assert_eq!(d.accesses, vec![store(0x2000, 1), load(0x1000, 1)]);
        // ECX is zero although RCX is not: nothing is accessed.
        let r = kvm_regs {
            rcx: 0x1_0000_0000,
            ..r
        };
        assert!(decode(&[0x67, 0xf3, 0xa4], &r).accesses.is_empty());
    }

    #[test]
    fn push_pop_call_ret_use_the_stack() {
        let r = kvm_regs {
            rax: 0x9000,
            ..regs()
        };
        // push rax
        let d = decode(&[0x50], &r);
        assert_eq!((&*d.mnemonic, d.kind), ("push", AccessKind::Stack));
        assert_eq!(d.accesses, vec![store(0x6ff8, 8)]);
        // pop rbx
        let d = decode(&[0x5b], &r);
        assert_eq!((&*d.mnemonic, d.kind), ("pop", AccessKind::Stack));
        assert_eq!(d.accesses, vec![load(0x7000, 8)]);
        // call qword ptr [rax]: reads the target, pushes the return address
        let d = decode(&[0xff, 0x10], &r);
        assert_eq!((&*d.mnemonic, d.kind), ("call", AccessKind::Stack));
        assert_eq!(d.accesses, vec![load(0x9000, 8), store(0x6ff8, 8)]);
        // call rel32
        let d = decode(&[0xe8, 0, 0, 0, 0], &r);
        assert_eq!(d.accesses, vec![store(0x6ff8, 8)]);
        // ret
        let d = decode(&[0xc3], &r);
        assert_eq!((&*d.mnemonic, d.kind), ("ret", AccessKind::Stack));
        assert_eq!(d.accesses, vec![load(0x7000, 8)]);
    }

    #[test]
    fn pop_to_rsp_relative_memory_and_leave() {
        // pop qword ptr [rsp+0x8]: the destination is computed after RSP is raised.
        let d = decode(&[0x8f, 0x44, 0x24, 0x08], &regs());
        assert_eq!(d.accesses, vec![store(0x7010, 8), load(0x7000, 8)]);
        // leave: reads the saved RBP at [rbp]
        let d = decode(&[0xc9], &regs());
        assert_eq!((&*d.mnemonic, d.kind), ("leave", AccessKind::Stack));
        assert_eq!(d.accesses, vec![load(0x7100, 8)]);
        // enter 0x20, 0: pushes RBP only
        let d = decode(&[0xc8, 0x20, 0x00, 0x00], &regs());
        assert_eq!(d.accesses, vec![store(0x6ff8, 8)]);
    }

    #[test]
    fn movdqu_spanning_two_pages() {
        // movdqu xmm0, xmmword ptr [rsi]
        let r = kvm_regs {
            rsi: 0x1ff8,
            ..regs()
        };
        let d = decode(&[0xf3, 0x0f, 0x6f, 0x06], &r);
        assert_eq!((&*d.mnemonic, d.len), ("movdqu", 4));
        assert_eq!(d.accesses, vec![load(0x1ff8, 16)]);
        assert!(crosses_page(&d.accesses[0]));
        assert_eq!(pages_touched(&d.accesses), vec![1, 2]);
    }

    #[test]
    fn sse_stores_and_unaligned_loads() {
        let r = kvm_regs {
            rax: 0x8000,
            rdi: 0xa000,
            ..regs()
        };
        // movdqa xmmword ptr [rdi], xmm1
        let d = decode(&[0x66, 0x0f, 0x7f, 0x0f], &r);
        assert_eq!(&*d.mnemonic, "movdqa");
        assert_eq!(d.accesses, vec![store(0xa000, 16)]);
        // movups xmm2, xmmword ptr [rax+0x10]
        let d = decode(&[0x0f, 0x10, 0x50, 0x10], &r);
        assert_eq!(&*d.mnemonic, "movups");
        assert_eq!(d.accesses, vec![load(0x8010, 16)]);
    }

    #[test]
    fn vmovdqu_ymm_loads_and_stores_32_bytes() {
        let r = kvm_regs {
            rax: 0x8ff0,
            ..regs()
        };
        // vmovdqu ymm0, ymmword ptr [rax]
        let d = decode(&[0xc5, 0xfe, 0x6f, 0x00], &r);
        assert_eq!((&*d.mnemonic, d.len), ("vmovdqu", 4));
        assert_eq!(d.accesses, vec![load(0x8ff0, 32)]);
        assert_eq!(pages_touched(&d.accesses), vec![8, 9]);
        // vmovdqu ymmword ptr [rax], ymm1
        let d = decode(&[0xc5, 0xfe, 0x7f, 0x08], &r);
        assert_eq!(d.accesses, vec![store(0x8ff0, 32)]);
    }

    #[test]
    fn masked_avx512_store_is_conditional() {
        // vmovdqu32 zmmword ptr [rax]{k1}, zmm0
        let r = kvm_regs {
            rax: 0x8000,
            ..regs()
        };
        let d = decode(&[0x62, 0xf1, 0x7e, 0x49, 0x7f, 0x00], &r);
        assert_eq!(&*d.mnemonic, "vmovdqu32");
        assert_eq!(
            d.accesses,
            vec![MemAccess {
                conditional: true,
                ..store(0x8000, 64)
            }]
        );
    }

    #[test]
    fn rip_relative_is_based_on_the_next_instruction() {
        // mov eax, dword ptr [rip+0x100]; 6 bytes long, so the target is rip+6+0x100.
        let d = decode(&[0x8b, 0x05, 0x00, 0x01, 0x00, 0x00], &regs());
        assert_eq!((&*d.mnemonic, d.len), ("mov", 6));
        assert_eq!(d.accesses, vec![load(RIP + 6 + 0x100, 4)]);
    }

    #[test]
    fn fs_and_gs_overrides_add_the_segment_base() {
        // mov rax, qword ptr fs:0x28
        let d = decode(&[0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0], &regs());
        assert_eq!((&*d.mnemonic, d.len), ("mov", 9));
        assert_eq!(d.accesses, vec![load(FS_BASE + 0x28, 8)]);
        // mov rax, qword ptr gs:[rbx]
        let r = kvm_regs {
            rbx: 0x40,
            ..regs()
        };
        let d = decode(&[0x65, 0x48, 0x8b, 0x03], &r);
        assert_eq!(d.accesses, vec![load(GS_BASE + 0x40, 8)]);
    }

    #[test]
    fn lea_nop_and_prefetch_access_nothing() {
        let r = kvm_regs {
            rax: 0x8000,
            rbx: 0x9000,
            ..regs()
        };
        // lea rax, [rbx+rcx*4+0x8]
        let d = decode(&[0x48, 0x8d, 0x44, 0x8b, 0x08], &r);
        assert_eq!((&*d.mnemonic, d.len, d.kind), ("lea", 5, AccessKind::Plain));
        assert!(d.accesses.is_empty());
        // nop dword ptr [rax+rax*1]
        let d = decode(&[0x0f, 0x1f, 0x04, 0x00], &r);
        assert_eq!((&*d.mnemonic, d.len), ("nop", 4));
        assert!(d.accesses.is_empty());
        // prefetcht0 byte ptr [rax]
        let d = decode(&[0x0f, 0x18, 0x08], &r);
        assert_eq!(&*d.mnemonic, "prefetcht0");
        assert!(d.accesses.is_empty());
    }

    #[test]
    fn locked_and_exchange_operations() {
        let r = kvm_regs {
            rdi: 0xa000,
            rsi: 0xb000,
            rdx: 0xc000,
            ..regs()
        };
        // lock cmpxchg dword ptr [rdi], ecx: iced reports the write as conditional.
        let d = decode(&[0xf0, 0x0f, 0xb1, 0x0f], &r);
        assert_eq!((&*d.mnemonic, d.len), ("lock cmpxchg", 4));
        assert_eq!(
            d.accesses,
            vec![MemAccess {
                conditional: true,
                ..rmw(0xa000, 4)
            }]
        );
        // lock xadd qword ptr [rdi], rax
        let d = decode(&[0xf0, 0x48, 0x0f, 0xc1, 0x07], &r);
        assert_eq!(&*d.mnemonic, "lock xadd");
        assert_eq!(d.accesses, vec![rmw(0xa000, 8)]);
        // xchg qword ptr [rsi], rax (implicitly locked, no prefix)
        let d = decode(&[0x48, 0x87, 0x06], &r);
        assert_eq!(&*d.mnemonic, "xchg");
        assert_eq!(d.accesses, vec![rmw(0xb000, 8)]);
        // lock inc qword ptr [rdx]
        let d = decode(&[0xf0, 0x48, 0xff, 0x02], &r);
        assert_eq!(&*d.mnemonic, "lock inc");
        assert_eq!(d.accesses, vec![rmw(0xc000, 8)]);
    }

    #[test]
    fn implicit_operands_xlat_and_maskmovdqu() {
        let r = kvm_regs {
            rax: 0xffff_ff05,
            rbx: 0x3000,
            rdi: 0x4000,
            ..regs()
        };
        // xlat byte ptr ds:[rbx]: address is rbx + al
        let d = decode(&[0xd7], &r);
        assert_eq!(d.accesses, vec![load(0x3005, 1)]);
        // maskmovdqu xmm0, xmm1: writes selected bytes of [rdi]
        let d = decode(&[0x66, 0x0f, 0xf7, 0xc1], &r);
        assert_eq!((&*d.mnemonic, d.kind), ("maskmovdqu", AccessKind::Other));
        assert_eq!(d.accesses, vec![store(0x4000, 16)]);
    }

    #[test]
    fn trailing_bytes_after_the_instruction_are_ignored() {
        // push rax; pop rbx; ret
        let d = decode(&[0x50, 0x5b, 0xc3], &regs());
        assert_eq!((&*d.mnemonic, d.len), ("push", 1));
        assert_eq!(d.accesses, vec![store(0x6ff8, 8)]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        // first 3 bytes of mov rax, qword ptr [rbx+rcx*8+0x10]
        let err = decode_accesses(&[0x48, 0x8b, 0x44], RIP, &regs(), &SEG);
        assert!(matches!(
            err,
            Err(DecodeError::Truncated {
                rip: RIP,
                available: 3
            })
        ));
        let err = decode_accesses(&[], RIP, &regs(), &SEG);
        assert!(matches!(
            err,
            Err(DecodeError::Truncated { available: 0, .. })
        ));
    }

    #[test]
    fn invalid_opcode_is_an_error() {
        // 0x06 (push es) does not exist in 64-bit mode.
        let err = decode_accesses(&[0x06, 0x90, 0x90, 0x90], RIP, &regs(), &SEG);
        match err {
            Err(DecodeError::Invalid { rip, bytes }) => {
                assert_eq!(rip, RIP);
                assert_eq!(bytes, vec![0x06, 0x90, 0x90, 0x90]);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn gather_needs_vector_registers_and_is_an_error() {
        // vpgatherdd xmm0, dword ptr [rax+xmm1*4], xmm2
        let err = decode_accesses(&[0xc4, 0xe2, 0x69, 0x90, 0x04, 0x88], RIP, &regs(), &SEG);
        match err {
            Err(DecodeError::UnresolvedRegister {
                register, mnemonic, ..
            }) => {
                assert_eq!(
                    (register.as_str(), mnemonic.as_str()),
                    ("XMM1", "vpgatherdd")
                );
            }
            other => panic!("expected UnresolvedRegister, got {other:?}"),
        }
    }

    #[test]
    fn xsave_area_of_unknown_size_is_an_error() {
        // xsave [rax]
        let err = decode_accesses(&[0x0f, 0xae, 0x20], RIP, &regs(), &SEG);
        assert!(matches!(err, Err(DecodeError::UnknownSize { .. })));
    }

    #[test]
    fn every_two_byte_opcode_prefix_decodes_or_errors_without_panicking() {
        // Extreme register values exercise the wrapping address arithmetic.
        let r = kvm_regs {
            rax: u64::MAX,
            rbx: 0x8000_0000_0000_0000,
            rcx: u64::MAX,
            rsi: u64::MAX - 2,
            rdi: u64::MAX - 1,
            rsp: 3,
            rbp: u64::MAX,
            ..regs()
        };
        let seg = SegmentBases {
            fs: u64::MAX,
            gs: u64::MAX - 0xfff,
        };
        let mut decoded = 0;
        for b0 in 0..=255u8 {
            for b1 in 0..=255u8 {
                let code = [b0, b1, 0x84, 0x88, 0x44, 0x33, 0x22, 0x11, 0x0f, 0x05, 0x90];
                let Ok(d) = decode_accesses(&code, RIP, &r, &seg) else {
                    continue;
                };
                decoded += 1;
                assert!(d.len <= code.len());
                assert!(d.accesses.iter().all(|a| a.len > 0 && (a.read || a.write)));
                assert!(pages_touched(&d.accesses).len() <= 2 * d.accesses.len());
                // One byte short of a decodable instruction is always "truncated".
                let short = decode_accesses(&code[..d.len - 1], RIP, &r, &seg);
                assert!(
                    matches!(short, Err(DecodeError::Truncated { .. })),
                    "{:02x?} cut to {} bytes gave {short:?}",
                    &code[..d.len],
                    d.len - 1
                );
            }
        }
        // Most of the 64 Ki two-byte starts are valid instructions.
        assert!(decoded > 50_000, "only {decoded} decoded");
    }

    #[test]
    fn cache_reuses_an_instruction_with_new_registers() {
        let mut cache = DecodeCache::default();
        // mov rax, qword ptr [rbx+rcx*8+0x10], then junk after it.
        let code = [0x48, 0x8b, 0x44, 0xcb, 0x10, 0xff, 0xff];
        let at = |rbx: u64| kvm_regs {
            rbx,
            rcx: 3,
            ..regs()
        };
        let first = cache
            .decode_accesses(&code, RIP, &at(0x10_0000), &SEG)
            .expect("decode");
        assert_eq!(first.accesses, vec![load(0x10_0028, 8)]);
        assert_eq!(cache.len(), 1);
        // Same bytes (the trailing ones may differ), other registers: a hit
        // that resolves the operand afresh, equal to decoding from scratch.
        let code2 = [0x48, 0x8b, 0x44, 0xcb, 0x10, 0x90];
        let hit = cache
            .decode_accesses(&code2, RIP, &at(0x20_0000), &SEG)
            .expect("decode");
        assert_eq!(hit, decode(&code2, &at(0x20_0000)));
        assert_eq!(hit.accesses, vec![load(0x20_0028, 8)]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn cache_decodes_again_when_the_code_changed() {
        let mut cache = DecodeCache::default();
        let r = kvm_regs {
            rdi: 0x20_0ff8,
            ..regs()
        };
        // mov qword ptr [rdi+0x8], rdx; then the same address holds
        // mov rax, qword ptr [rdi], which does not start with the store.
        let store_insn = [0x48, 0x89, 0x57, 0x08];
        let load_insn = [0x48, 0x8b, 0x07];
        let d = cache
            .decode_accesses(&store_insn, RIP, &r, &SEG)
            .expect("decode");
        assert_eq!(d.accesses, vec![store(0x20_1000, 8)]);
        let d = cache
            .decode_accesses(&load_insn, RIP, &r, &SEG)
            .expect("decode");
        assert_eq!((&*d.mnemonic, d.len), ("mov", 3));
        assert_eq!(d.accesses, vec![load(0x20_0ff8, 8)]);
        // A different address is a different entry even for equal bytes
        // (RIP-relative operands are resolved at decode time).
        // mov rax, qword ptr [rip+0x100]
        let rel = [0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00];
        let a = cache.decode_accesses(&rel, RIP, &r, &SEG).expect("decode");
        let b = cache
            .decode_accesses(&rel, RIP + 0x1000, &r, &SEG)
            .expect("decode");
        assert_eq!(a.accesses, vec![load(RIP + 7 + 0x100, 8)]);
        assert_eq!(b.accesses, vec![load(RIP + 0x1000 + 7 + 0x100, 8)]);
        assert_eq!(cache.len(), 2);
        // Errors are not cached.
        assert!(cache.decode_accesses(&[0x48], RIP + 8, &r, &SEG).is_err());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn cache_starts_over_when_full() {
        let mut cache = DecodeCache::default();
        let nop = [0x90];
        for i in 0..DECODE_CACHE_ENTRIES as u64 {
            cache
                .decode_accesses(&nop, RIP + i, &regs(), &SEG)
                .expect("decode");
        }
        assert_eq!(cache.len(), DECODE_CACHE_ENTRIES);
        cache
            .decode_accesses(&nop, RIP + (1 << 20), &regs(), &SEG)
            .expect("decode");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn pages_touched_splits_sorts_and_deduplicates() {
        let accesses = [
            load(0x5ffc, 8),
            store(0x1000, 4096),
            load(0x1fff, 1),
            store(0x7000, 0),
            rmw(0x5000, 1),
        ];
        assert_eq!(pages_touched(&accesses), vec![1, 5, 6]);
        assert!(!crosses_page(&accesses[1]));
        assert!(!crosses_page(&accesses[3]));
        assert!(crosses_page(&load(0x1001, 4096)));
        assert_eq!(pages_touched(&[]), Vec::<u64>::new());
    }

    #[test]
    fn pages_touched_wraps_at_the_top_of_the_address_space() {
        let a = load(u64::MAX - 3, 8);
        assert!(crosses_page(&a));
        assert_eq!(pages_touched(&[a]), vec![0, u64::MAX >> 12]);
    }
}
