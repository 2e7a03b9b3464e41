//! The guest's code as the mprotect tracker reads it at a fault: the
//! bytes at RIP, fetched through the guest's page tables from a read-only
//! view of RAM that arming never protects.

use vm_memory::VolatileMemory;
use vm_memory::mmap::{MmapRegion, MmapRegionBuilder};
use wss_abi::{PAGE_SIZE, RAM_BASE};

use super::TrackError;
use crate::vmm::memory::{GuestMemory, MemoryError};
use crate::vmm::paging::{self, WalkError};

/// Longest legal x86 instruction.
const MAX_INSN_LEN: u64 = 15;
/// Why the code bytes at RIP could not be read: a diagnosis of the fault,
/// not an error of the tracker.
#[derive(Debug, thiserror::Error)]
pub enum CodeFetchError {
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// A second, read-only mapping of the RAM memfd, which the tracker never
/// protects: code bytes are copied from it rather than read with `pread`,
/// a syscall per fault (about a microsecond on PVM hosts, where every
/// trip through `KVM_RUN` leaves the caches cold). Like `pread` it sees
/// the page cache, so armed pages read fine.
pub struct CodeView {
    region: MmapRegion,
}

impl CodeView {
    /// Up to 15 code bytes at `rip`, each page translated on its own
    /// through the guest's page tables at `cr3`. A second page that does
    /// not translate shortens the fetch; the decoder then says whether the
    /// instruction needed it.
    pub fn fetch(&self, memory: &GuestMemory, cr3: u64, rip: u64) -> Result<Code, CodeFetchError> {
        let translate = |gva| paging::translate(cr3, gva, |a| memory.read_u64(a));
        let first_len = MAX_INSN_LEN.min(PAGE_SIZE - (rip & (PAGE_SIZE - 1))) as usize;
        let gpa = translate(rip)?;
        let mut code = Code {
            bytes: [0; MAX_INSN_LEN as usize],
            len: first_len,
        };
        self.read_into(memory, gpa, &mut code.bytes[..first_len])?;
        if first_len < code.bytes.len()
            && let Ok(gpa) = translate(rip.wrapping_add(first_len as u64))
            && self
                .read_into(memory, gpa, &mut code.bytes[first_len..])
                .is_ok()
        {
            code.len = code.bytes.len();
        }
        Ok(code)
    }

    /// `tracker` names the owner in set-up errors.
    pub fn new(memory: &GuestMemory, tracker: &'static str) -> Result<CodeView, TrackError> {
        let setup = |what: &str, source| TrackError::Setup {
            tracker,
            what: what.into(),
            source: Some(source),
        };
        let file = memory
            .ram_file()
            .try_clone()
            .map_err(|e| setup("cannot duplicate the RAM memfd", e))?;
        let region = MmapRegionBuilder::new(memory.layout().ram_size as usize)
            .with_file_offset(vm_memory::FileOffset::new(file, 0))
            .with_mmap_prot(libc::PROT_READ)
            .with_mmap_flags(libc::MAP_SHARED | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| {
                setup(
                    "cannot map a read-only view of guest RAM",
                    std::io::Error::other(e),
                )
            })?;
        Ok(CodeView { region })
    }

    /// Fills `out` with the bytes at guest-physical `gpa`: from the view
    /// when they lie in RAM, else through `memory` (which checks the
    /// bounds).
    fn read_into(&self, memory: &GuestMemory, gpa: u64, out: &mut [u8]) -> Result<(), MemoryError> {
        if let Some(off) = gpa.checked_sub(RAM_BASE)
            && let Ok(slice) = self.region.get_slice(off as usize, out.len())
        {
            slice.copy_to(out);
            return Ok(());
        }
        let bytes = memory.read(gpa, out.len() as u64)?;
        out.copy_from_slice(&bytes);
        Ok(())
    }
}

/// Up to 15 code bytes, kept on the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    bytes: [u8; MAX_INSN_LEN as usize],
    len: usize,
}

impl Code {
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
