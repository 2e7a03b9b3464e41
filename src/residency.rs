//! Which pages of a host mapping are resident: `mincore`, one byte per
//! page. For a shared file mapping (the memfd behind guest RAM) a page
//! counts as resident when it is in the file's page cache, mapped or not,
//! so it answers "does this page use host memory" exactly. The truth uses
//! it to skip bitmap pages nobody wrote; reclaim to count the guest's
//! resident data pages.

use wss_abi::PAGE_SIZE;

use crate::track::page_bits::PageBits;

/// `mincore` over `[addr, addr + len)` (`addr` page-aligned): one byte per
/// page, bit 0 set for resident pages.
pub fn mincore(addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut vec = vec![0u8; len.div_ceil(PAGE_SIZE as usize)];
    // SAFETY: mincore only reads the process's page tables for the range
    // and writes one byte per page into `vec`, which has exactly that many.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(vec)
}

/// The pages of the mapping of `pages` pages at `addr` that `mincore`
/// reports resident, as a set of page numbers from `addr`.
pub fn resident_pages(addr: usize, pages: u64) -> std::io::Result<PageBits> {
    let flags = mincore(addr, (pages * PAGE_SIZE) as usize)?;
    let mut bits = PageBits::new(pages);
    for (p, _) in flags.iter().enumerate().filter(|(_, f)| *f & 1 != 0) {
        bits.insert(p as u64);
    }
    Ok(bits)
}
