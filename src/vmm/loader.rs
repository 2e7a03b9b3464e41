//! Loading a guest program: a static x86-64 ELF executable whose PT_LOAD
//! segments all lie inside guest RAM.

use object::elf::{EM_X86_64, ET_EXEC, FileHeader64, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

/// Why an image cannot be loaded. Each names what is wrong with the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit ELF file")]
    Not64Bit,
    #[error("malformed ELF file")]
    Malformed(#[source] object::read::Error),
    #[error("ELF file is for machine {0}, not x86-64")]
    WrongMachine(u16),
    #[error("not a static executable (ELF type {0}); link it with linker.ld, -static and -no-pie")]
    NotStaticExecutable(u16),
    #[error("dynamically linked (it has a PT_INTERP or PT_DYNAMIC segment); guests must be static")]
    Dynamic,
    #[error("segment at {0:#x} extends past the end of the file")]
    TruncatedSegment(u64),
    #[error("no loadable segment")]
    NoSegments,
    #[error("segment at {vaddr:#x}..{end:#x} lies outside guest RAM {ram_start:#x}..{ram_end:#x}")]
    OutsideRam {
        vaddr: u64,
        end: u64,
        ram_start: u64,
        ram_end: u64,
    },
    #[error("segment at {0:#x} has a file size larger than its memory size")]
    FileSizeTooLarge(u64),
    #[error("segments at {0:#x} and {1:#x} overlap")]
    Overlap(u64, u64),
    #[error("entry point {0:#x} is not inside an executable segment")]
    BadEntry(u64),
}

/// One PT_LOAD segment: `data` goes at guest-physical `addr`, followed by
/// `mem_size - data.len()` zero bytes (.bss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub addr: u64,
    pub data: &'a [u8],
    pub mem_size: u64,
}

/// A validated image, ready to be copied into guest RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image<'a> {
    pub entry: u64,
    pub segments: Vec<Segment<'a>>,
    /// First byte after the highest segment.
    pub end: u64,
}

/// Parses and validates `bytes` as a guest image for RAM at
/// `[ram_start, ram_end)`. Nothing is written anywhere.
pub fn parse(bytes: &[u8], ram_start: u64, ram_end: u64) -> Result<Image<'_>, LoadError> {
    match FileKind::parse(bytes) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err(LoadError::Not64Bit),
        _ => return Err(LoadError::NotElf),
    }
    let header = FileHeader64::<Endianness>::parse(bytes).map_err(LoadError::Malformed)?;
    let endian = header.endian().map_err(LoadError::Malformed)?;
    let machine = header.e_machine(endian);
    if machine != EM_X86_64 {
        return Err(LoadError::WrongMachine(machine.0));
    }
    let kind = header.e_type(endian);
    if kind != ET_EXEC {
        return Err(LoadError::NotStaticExecutable(kind.0));
    }
    let entry = header.e_entry(endian);
    let mut segments = Vec::new();
    let mut entry_ok = false;
    for ph in header
        .program_headers(endian, bytes)
        .map_err(LoadError::Malformed)?
    {
        match ph.p_type(endian) {
            PT_INTERP | PT_DYNAMIC => return Err(LoadError::Dynamic),
            PT_LOAD => {}
            _ => continue,
        }
        let addr = ph.p_paddr(endian);
        let mem_size = ph.p_memsz(endian);
        let file_size = ph.p_filesz(endian);
        if mem_size == 0 {
            continue;
        }
        if file_size > mem_size {
            return Err(LoadError::FileSizeTooLarge(addr));
        }
        let end = addr.saturating_add(mem_size);
        if addr < ram_start || end > ram_end {
            return Err(LoadError::OutsideRam {
                vaddr: addr,
                end,
                ram_start,
                ram_end,
            });
        }
        let data = ph
            .data(endian, bytes)
            .map_err(|()| LoadError::TruncatedSegment(addr))?;
        if ph.p_flags(endian).0 & PF_X.0 != 0 && (addr..end).contains(&entry) {
            entry_ok = true;
        }
        segments.push(Segment {
            addr,
            data,
            mem_size,
        });
    }
    if segments.is_empty() {
        return Err(LoadError::NoSegments);
    }
    segments.sort_by_key(|s| s.addr);
    for pair in segments.windows(2) {
        if pair[0].addr + pair[0].mem_size > pair[1].addr {
            return Err(LoadError::Overlap(pair[0].addr, pair[1].addr));
        }
    }
    if !entry_ok {
        return Err(LoadError::BadEntry(entry));
    }
    let end = segments
        .iter()
        .map(|s| s.addr + s.mem_size)
        .max()
        .unwrap_or(ram_start);
    Ok(Image {
        entry,
        segments,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: (u64, u64) = (0x4000_0000, 0x4000_0000 + (64 << 20));
    const X86_64: u16 = EM_X86_64.0;
    const EXEC: u16 = ET_EXEC.0;
    const LOAD: u32 = PT_LOAD.0;
    const INTERP: u32 = PT_INTERP.0;
    const X: u32 = PF_X.0;

    /// Builds a minimal ELF64 executable with the given program headers
    /// (type, flags, paddr, filesz, memsz) and entry point.
    fn elf(machine: u16, etype: u16, entry: u64, phdrs: &[(u32, u32, u64, u64, u64)]) -> Vec<u8> {
        let phoff = 64u64;
        let data_off = phoff + 56 * phdrs.len() as u64;
        let mut b = Vec::new();
        b.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&etype.to_le_bytes());
        b.extend_from_slice(&machine.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&entry.to_le_bytes());
        b.extend_from_slice(&phoff.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes()); // shoff
        b.extend_from_slice(&0u32.to_le_bytes()); // flags
        b.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        b.extend_from_slice(&56u16.to_le_bytes()); // phentsize
        b.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
        let mut off = data_off;
        for &(ty, flags, paddr, filesz, memsz) in phdrs {
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&off.to_le_bytes());
            b.extend_from_slice(&paddr.to_le_bytes()); // vaddr
            b.extend_from_slice(&paddr.to_le_bytes());
            b.extend_from_slice(&filesz.to_le_bytes());
            b.extend_from_slice(&memsz.to_le_bytes());
            b.extend_from_slice(&0x1000u64.to_le_bytes());
            off += filesz;
        }
        for (i, &(_, _, _, filesz, _)) in phdrs.iter().enumerate() {
            b.extend(std::iter::repeat_n(0x90 + i as u8, filesz as usize));
        }
        b
    }

    #[test]
    fn loads_text_and_bss() {
        let bytes = elf(
            X86_64,
            EXEC,
            0x4000_0010,
            &[
                (LOAD, X, 0x4000_0000, 0x100, 0x100),
                (LOAD, 6, 0x4000_1000, 0x10, 0x2000),
            ],
        );
        let img = parse(&bytes, RAM.0, RAM.1).expect("valid image");
        assert_eq!(img.entry, 0x4000_0010);
        assert_eq!(img.segments.len(), 2);
        assert_eq!(img.segments[0].data.len(), 0x100);
        assert!(img.segments[0].data.iter().all(|&b| b == 0x90));
        assert_eq!(img.segments[1].data, &[0x91; 0x10][..]);
        assert_eq!(img.segments[1].mem_size, 0x2000);
        assert_eq!(img.end, 0x4000_3000);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(matches!(
            parse(b"hello", RAM.0, RAM.1),
            Err(LoadError::NotElf)
        ));
        let mut e32 = elf(X86_64, EXEC, 0, &[]);
        e32[4] = 1;
        assert!(matches!(
            parse(&e32, RAM.0, RAM.1),
            Err(LoadError::Not64Bit)
        ));
        let arm = elf(183, EXEC, 0x4000_0000, &[(LOAD, X, 0x4000_0000, 16, 16)]);
        assert!(matches!(
            parse(&arm, RAM.0, RAM.1),
            Err(LoadError::WrongMachine(183))
        ));
        let pie = elf(X86_64, 3, 0x4000_0000, &[(LOAD, X, 0x4000_0000, 16, 16)]);
        assert!(matches!(
            parse(&pie, RAM.0, RAM.1),
            Err(LoadError::NotStaticExecutable(3))
        ));
        let dynamic = elf(
            X86_64,
            EXEC,
            0x4000_0000,
            &[
                (LOAD, X, 0x4000_0000, 16, 16),
                (INTERP, 4, 0x4000_1000, 8, 8),
            ],
        );
        assert!(matches!(
            parse(&dynamic, RAM.0, RAM.1),
            Err(LoadError::Dynamic)
        ));
        let none = elf(X86_64, EXEC, 0x4000_0000, &[]);
        assert!(matches!(
            parse(&none, RAM.0, RAM.1),
            Err(LoadError::NoSegments)
        ));
    }

    #[test]
    fn rejects_segments_outside_ram() {
        let low = elf(X86_64, EXEC, 0x1000, &[(LOAD, X, 0x1000, 16, 16)]);
        assert!(matches!(
            parse(&low, RAM.0, RAM.1),
            Err(LoadError::OutsideRam { vaddr: 0x1000, .. })
        ));
        let big = elf(
            X86_64,
            EXEC,
            0x4000_0000,
            &[(LOAD, X, 0x4000_0000, 16, 128 << 20)],
        );
        assert!(matches!(
            parse(&big, RAM.0, RAM.1),
            Err(LoadError::OutsideRam { .. })
        ));
        let wrap = elf(X86_64, EXEC, 0x4000_0000, &[(LOAD, X, u64::MAX - 4, 0, 16)]);
        assert!(matches!(
            parse(&wrap, RAM.0, RAM.1),
            Err(LoadError::OutsideRam { .. })
        ));
    }

    #[test]
    fn rejects_inconsistent_segments() {
        let fat = elf(X86_64, EXEC, 0x4000_0000, &[(LOAD, X, 0x4000_0000, 32, 16)]);
        assert!(matches!(
            parse(&fat, RAM.0, RAM.1),
            Err(LoadError::FileSizeTooLarge(_))
        ));
        let overlap = elf(
            X86_64,
            EXEC,
            0x4000_0000,
            &[
                (LOAD, X, 0x4000_0000, 16, 0x2000),
                (LOAD, 6, 0x4000_1000, 16, 16),
            ],
        );
        assert!(matches!(
            parse(&overlap, RAM.0, RAM.1),
            Err(LoadError::Overlap(..))
        ));
        let entry = elf(X86_64, EXEC, 0x4000_1000, &[(LOAD, X, 0x4000_0000, 16, 16)]);
        assert!(matches!(
            parse(&entry, RAM.0, RAM.1),
            Err(LoadError::BadEntry(0x4000_1000))
        ));
        let mut truncated = elf(X86_64, EXEC, 0x4000_0000, &[(LOAD, X, 0x4000_0000, 64, 64)]);
        truncated.truncate(truncated.len() - 10);
        assert!(matches!(
            parse(&truncated, RAM.0, RAM.1),
            Err(LoadError::TruncatedSegment(_))
        ));
    }
}
