//! The guest's page tables: an identity map built by the VMM, and a walker
//! that translates a guest-virtual address the way the MMU would (the
//! mprotect tracker uses it to find the page a faulting access touched).

use std::ops::Range;

/// Page-table entry bits.
pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITABLE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
/// Dirty: set by KVM's walker when the guest writes through the entry.
/// [`identity_map`] leaves it clear.
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_HUGE: u64 = 1 << 7;
/// Bits 12..51: the physical address in an entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;
const TABLE: u64 = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PagingError {
    #[error("cannot identity-map {0:#x} bytes: the builder maps at most 512 GiB")]
    TooLarge(u64),
    #[error("page-table base {0:#x} is not 4 KiB aligned")]
    Unaligned(u64),
    #[error("4 KiB-page range {0:#x}..{1:#x} is not 2 MiB aligned inside the map")]
    BadSmallRange(u64, u64),
}

/// Why a guest-virtual address does not translate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalkError {
    #[error("address {0:#x} is not canonical")]
    NonCanonical(u64),
    #[error("address {gva:#x} is not mapped (level {level} entry not present)")]
    NotPresent { gva: u64, level: u8 },
    #[error("page-table entry at guest-physical {0:#x} lies outside guest memory")]
    Unreadable(u64),
}

/// Identity page tables, contiguous in guest-physical memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageTables {
    /// Guest-physical address of the first table (the PML4): the CR3 value.
    pub cr3: u64,
    /// The tables' bytes, to be written at `cr3`.
    pub bytes: Vec<u8>,
}

/// The page size the guest's identity map uses for RAM. Spelled by its
/// name everywhere (see `crate::named`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum GuestPageSize {
    #[default]
    Size2M,
    Size4K,
}

crate::named::named_impls!(GuestPageSize);

impl crate::named::Named for GuestPageSize {
    const WHAT: &'static str = "guest page size";
    const ALL: &'static [GuestPageSize] = &[GuestPageSize::Size2M, GuestPageSize::Size4K];

    fn name(self) -> &'static str {
        match self {
            GuestPageSize::Size2M => "2m",
            GuestPageSize::Size4K => "4k",
        }
    }

    fn help(self) -> &'static str {
        match self {
            GuestPageSize::Size2M => {
                "2 MiB pages: one page-directory entry per 2 MiB, small tables"
            }
            GuestPageSize::Size4K => "4 KiB pages: one page-table entry per tracked page",
        }
    }
}

/// How many 4 KiB tables [`identity_map`] needs to map `[0, map_end)`, with
/// 4 KiB pages over `small` (2 MiB aligned) and 2 MiB pages elsewhere.
pub fn tables_needed(map_end: u64, small: &Range<u64>) -> u64 {
    2 + map_end.div_ceil(GIB) + (small.end.saturating_sub(small.start)).div_ceil(MIB2)
}

/// Builds tables that map `[0, map_end)` onto the same guest-physical
/// addresses, user-accessible and writable: with 4 KiB pages over `small`
/// (2 MiB aligned; empty for none) and 2 MiB pages elsewhere. The tables
/// themselves go at `base`: PML4, PDPT, one page directory per GiB, then
/// the page tables of `small`.
///
/// 2 MiB guest pages keep the tables small (one page per GiB). Tracking
/// acts on the host's 4 KiB pages whatever the guest's page size; 4 KiB
/// guest pages exist to measure whether the guest's page size changes what
/// a tracked touch costs (`--guest-pages 4k`).
pub fn identity_map(base: u64, map_end: u64, small: Range<u64>) -> Result<PageTables, PagingError> {
    if !base.is_multiple_of(TABLE) {
        return Err(PagingError::Unaligned(base));
    }
    if map_end > 512 * GIB {
        return Err(PagingError::TooLarge(map_end));
    }
    if !small.start.is_multiple_of(MIB2) || !small.end.is_multiple_of(MIB2) || small.end > map_end {
        return Err(PagingError::BadSmallRange(small.start, small.end));
    }
    let pds = map_end.div_ceil(GIB);
    let mut bytes = vec![0u8; (tables_needed(map_end, &small) * TABLE) as usize];
    let flags = PTE_PRESENT | PTE_WRITABLE | PTE_USER;
    let mut put = |table: u64, index: u64, value: u64| {
        let at = (table * TABLE + index * 8) as usize;
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    let pdpt = base + TABLE;
    put(0, 0, pdpt | flags);
    for g in 0..pds {
        let pd = base + (2 + g) * TABLE;
        put(1, g, pd | flags);
        for i in 0..512 {
            let addr = g * GIB + i * MIB2;
            if addr >= map_end {
                break;
            }
            if small.contains(&addr) {
                let pt_index = (addr - small.start) / MIB2;
                let pt = 2 + pds + pt_index;
                put(2 + g, i, (base + pt * TABLE) | flags);
                for j in 0..512 {
                    put(pt, j, (addr + j * TABLE) | flags);
                }
            } else {
                put(2 + g, i, addr | flags | PTE_HUGE);
            }
        }
    }
    Ok(PageTables { cr3: base, bytes })
}

/// The guest-physical address of the level-1 entry that maps `gpa` in the
/// tables [`identity_map`]`(base, map_end, small)` builds, or `None` when a
/// 2 MiB page maps `gpa` (outside `small`). The entries of `small` are
/// contiguous, in address order.
pub fn pte_address(base: u64, map_end: u64, small: &Range<u64>, gpa: u64) -> Option<u64> {
    if !small.contains(&gpa) {
        return None;
    }
    let first_pt = 2 + map_end.div_ceil(GIB);
    Some(base + first_pt * TABLE + (gpa - small.start) / TABLE * 8)
}

/// Translates `gva` through the 4-level tables at `cr3`, reading entries
/// with `read_u64` (which returns `None` for addresses outside guest
/// memory). Handles 4 KiB, 2 MiB and 1 GiB pages. The walk has at most four
/// steps, so hostile tables cannot make it loop.
pub fn translate(
    cr3: u64,
    gva: u64,
    read_u64: impl Fn(u64) -> Option<u64>,
) -> Result<u64, WalkError> {
    let canonical = ((gva as i64) << 16 >> 16) as u64 == gva;
    if !canonical {
        return Err(WalkError::NonCanonical(gva));
    }
    let mut table = cr3 & ADDR_MASK;
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * (level as u64 - 1);
        let index = (gva >> shift) & 0x1ff;
        let entry_addr = table + index * 8;
        let entry = read_u64(entry_addr).ok_or(WalkError::Unreadable(entry_addr))?;
        if entry & PTE_PRESENT == 0 {
            return Err(WalkError::NotPresent { gva, level });
        }
        let leaf = level == 1 || ((level == 2 || level == 3) && entry & PTE_HUGE != 0);
        if leaf {
            let page_mask = (1u64 << shift) - 1;
            return Ok((entry & ADDR_MASK & !page_mask) | (gva & page_mask));
        }
        table = entry & ADDR_MASK;
    }
    unreachable!("a level-1 entry is always a leaf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_page_size_names_parse_print_and_serialize_through_one_table() {
        crate::named::tests::check_table::<GuestPageSize>();
        assert_eq!(GuestPageSize::Size4K.to_string(), "4k");
        assert_eq!("2m".parse::<GuestPageSize>(), Ok(GuestPageSize::Size2M));
        assert!("2M".parse::<GuestPageSize>().is_err());
    }

    fn reader(pt: &PageTables) -> impl Fn(u64) -> Option<u64> + '_ {
        move |gpa| {
            let off = gpa.checked_sub(pt.cr3)? as usize;
            let b = pt.bytes.get(off..off + 8)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        }
    }

    #[test]
    fn identity_map_translates_to_itself() {
        let pt = identity_map(0x20_0000 + 0x8000, 0x4000_0000 + (512 << 20), 0..0).expect("fits");
        assert_eq!(
            pt.bytes.len() as u64,
            tables_needed(0x6000_0000, &(0..0)) * 4096
        );
        assert_eq!(tables_needed(0x6000_0000, &(0..0)), 4);
        let read = reader(&pt);
        for gva in [
            0u64,
            0x20_1234,
            0x3fe0_0008,
            0x4000_0000,
            0x4123_4567,
            0x5fff_ffff,
        ] {
            assert_eq!(translate(pt.cr3, gva, &read), Ok(gva), "gva {gva:#x}");
        }
        assert_eq!(
            translate(pt.cr3, 0x6000_0000, &read),
            Err(WalkError::NotPresent {
                gva: 0x6000_0000,
                level: 2
            })
        );
        // 3 GiB: PDPT entry 3 is empty. 1 TiB: PML4 entry 2 is empty.
        assert_eq!(
            translate(pt.cr3, 3 << 30, &read),
            Err(WalkError::NotPresent {
                gva: 3 << 30,
                level: 3
            })
        );
        assert_eq!(
            translate(pt.cr3, 1 << 40, &read),
            Err(WalkError::NotPresent {
                gva: 1 << 40,
                level: 4
            })
        );
    }

    #[test]
    fn every_entry_is_user_and_writable() {
        let pt = identity_map(0x1000, 3 * GIB, 0..0).expect("fits");
        let entries: Vec<u64> = pt
            .bytes
            .chunks(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .filter(|&e| e != 0)
            .collect();
        // 1 PML4 entry + 3 PDPT entries + 3 * 512 PD entries.
        assert_eq!(entries.len(), 1 + 3 + 3 * 512);
        assert!(
            entries
                .iter()
                .all(|e| e & (PTE_PRESENT | PTE_USER | PTE_WRITABLE) == 7)
        );
    }

    #[test]
    fn rejects_bad_requests() {
        assert_eq!(
            identity_map(0x1001, GIB, 0..0),
            Err(PagingError::Unaligned(0x1001))
        );
        assert_eq!(
            identity_map(0x1000, 513 * GIB, 0..0),
            Err(PagingError::TooLarge(513 * GIB))
        );
        assert_eq!(
            identity_map(0x1000, GIB, 0x1000..MIB2),
            Err(PagingError::BadSmallRange(0x1000, MIB2))
        );
        assert_eq!(
            identity_map(0x1000, GIB, 0..2 * GIB),
            Err(PagingError::BadSmallRange(0, 2 * GIB))
        );
    }

    #[test]
    fn four_kib_pages_over_ram() {
        let ram = GIB..GIB + 8 * MIB2;
        let pt = identity_map(0x20_0000, ram.end, ram.clone()).expect("fits");
        assert_eq!(tables_needed(ram.end, &ram), 2 + 2 + 8);
        assert_eq!(pt.bytes.len() as u64, 12 * TABLE);
        let read = reader(&pt);
        for gva in [0x1234, GIB, GIB + 0x5678, ram.end - 8] {
            assert_eq!(translate(pt.cr3, gva, &read), Ok(gva), "gva {gva:#x}");
        }
        // RAM is mapped by level-1 entries, the rest by 2 MiB ones.
        let pd_entry =
            |gva: u64| read(pt.cr3 + (3 * TABLE) + ((gva >> 21) & 511) * 8).expect("entry");
        assert_eq!(pd_entry(GIB) & PTE_HUGE, 0);
        let low = read(pt.cr3 + 2 * TABLE).expect("entry");
        assert_ne!(low & PTE_HUGE, 0);
    }

    #[test]
    fn pte_address_names_the_entry_of_a_small_page() {
        let ram = GIB..GIB + 8 * MIB2;
        let base = 0x20_0000;
        let pt = identity_map(base, ram.end, ram.clone()).expect("fits");
        let read = reader(&pt);
        for gpa in [GIB, GIB + 0x1000, GIB + MIB2 + 0x5000, ram.end - 0x1000] {
            let at = pte_address(base, ram.end, &ram, gpa).expect("small page");
            let entry = read(at).expect("inside the tables");
            assert_eq!(entry & ADDR_MASK, gpa, "gpa {gpa:#x}");
            assert_eq!(entry & (PTE_DIRTY | PTE_HUGE), 0);
            assert_eq!(
                pte_address(base, ram.end, &ram, gpa + 0xfff),
                Some(at),
                "same page"
            );
        }
        assert_eq!(pte_address(base, ram.end, &ram, GIB - 1), None);
        assert_eq!(pte_address(base, ram.end, &ram, ram.end), None);
        assert_eq!(pte_address(base, ram.end, &(0..0), GIB), None);
    }

    #[test]
    fn walks_4k_and_1g_pages_and_rejects_bad_addresses() {
        // Hand-built tables: PML4 at 0x1000, PDPT at 0x2000 with a 1 GiB page
        // at index 1, PD at 0x3000, PT at 0x4000 mapping 0x5000 -> 0x9000.
        let mut mem = std::collections::HashMap::new();
        let f = PTE_PRESENT | PTE_WRITABLE | PTE_USER;
        mem.insert(0x1000, 0x2000 | f);
        mem.insert(0x2000, 0x3000 | f);
        mem.insert(0x2008, 0x8000_0000 | f | PTE_HUGE);
        mem.insert(0x3000, 0x4000 | f);
        mem.insert(0x4000 + 5 * 8, 0x9000 | f);
        let read = |a: u64| Some(*mem.get(&a).unwrap_or(&0));
        assert_eq!(translate(0x1000, 0x5123, read), Ok(0x9123));
        assert_eq!(translate(0x1000, 0x4000_0042, read), Ok(0x8000_0042));
        assert_eq!(
            translate(0x1000, 0x6000, read),
            Err(WalkError::NotPresent {
                gva: 0x6000,
                level: 1
            })
        );
        assert_eq!(
            translate(0x1000, 0x0000_8000_0000_0000, read),
            Err(WalkError::NonCanonical(0x0000_8000_0000_0000))
        );
        let nothing = |_| None;
        assert_eq!(
            translate(0x1000, 0x5000, nothing),
            Err(WalkError::Unreadable(0x1000))
        );
    }
}
