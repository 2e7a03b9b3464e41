//! Where everything goes in guest-physical memory, as plain data computed
//! from the RAM size, the loaded image and the requested working set.
//!
//! ```text
//! 0x0020_0000  metadata slot (never tracked):
//!              params | status | read bitmap | write bitmap | page tables | TSS
//! 0x3fe0_0000  doorbells (mapped, in no slot: every access exits)
//! 0x4000_0000  RAM slot (tracked): image | stacks | data region ... RAM end
//! ```
//!
//! The stacks, one per vCPU, lie below the data region, so no tracker
//! arms them and the truth never counts them:
//!
//! ```text
//! image end | vCPU N-1 stack | ... | vCPU 1 stack | vCPU 0 stack | data start
//! ```

use wss_abi::{
    BITMAPS_OFFSET, DOORBELL_BASE, MAX_RAM_SIZE, MAX_VCPUS, META_BASE, PAGE_SIZE, RAM_BASE,
    STACK_SIZE, align_up, bitmap_words,
};

use std::ops::Range;

use super::paging::{GuestPageSize, tables_needed};

/// RAM sizes must be whole 2 MiB pages: the guest maps RAM with 2 MiB pages.
pub const RAM_ALIGN: u64 = 2 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("--mem {0} is not a multiple of 2M")]
    Unaligned(u64),
    #[error(
        "--mem {have} is too small: the program needs {need} bytes (image {image}, stack {stack}, --wss {wss})"
    )]
    TooSmall {
        have: u64,
        need: u64,
        image: u64,
        stack: u64,
        wss: u64,
    },
    #[error("--mem {0} is larger than the supported maximum of {MAX_RAM_SIZE} bytes")]
    TooLarge(u64),
    #[error("--wss {wss} is larger than --mem {mem}")]
    WssLargerThanMem { wss: u64, mem: u64 },
    #[error("--vcpus {0} is out of range (1 to {MAX_VCPUS})")]
    Vcpus(u64),
}

/// The memory layout of one VM. All addresses are guest-physical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub ram_size: u64,
    pub meta_size: u64,
    pub bitmap_words: u64,
    pub params: u64,
    pub status: u64,
    pub read_bitmap: u64,
    pub write_bitmap: u64,
    pub page_tables: u64,
    pub tss: u64,
    pub image_end: u64,
    /// Top of vCPU 0's stack; the others' follow downwards (see
    /// [`Layout::stack_top_of`]).
    pub stack_top: u64,
    /// How many vCPUs run the guest, each on a stack of its own.
    pub vcpus: u64,
    /// The data region `[data_start, data_end)`: the pages the truth counts
    /// and the trackers arm.
    pub data_start: u64,
    pub data_end: u64,
    /// The page size the guest's identity map uses for RAM.
    pub guest_pages: GuestPageSize,
}

impl Layout {
    /// Lays out a VM with `ram_size` bytes of RAM holding an image that ends
    /// at `image_end` and a program that needs `wss` bytes of data.
    pub fn new(ram_size: u64, image_end: u64, wss: u64) -> Result<Layout, LayoutError> {
        Layout::with_guest_pages(ram_size, image_end, wss, GuestPageSize::Size2M)
    }

    /// [`Layout::new`] with RAM mapped by guest pages of `guest_pages`.
    pub fn with_guest_pages(
        ram_size: u64,
        image_end: u64,
        wss: u64,
        guest_pages: GuestPageSize,
    ) -> Result<Layout, LayoutError> {
        Layout::with_vcpus(ram_size, image_end, wss, guest_pages, 1)
    }

    /// [`Layout::with_guest_pages`] for a guest of `vcpus` vCPUs, each
    /// with a stack of [`STACK_SIZE`].
    pub fn with_vcpus(
        ram_size: u64,
        image_end: u64,
        wss: u64,
        guest_pages: GuestPageSize,
        vcpus: u64,
    ) -> Result<Layout, LayoutError> {
        if vcpus == 0 || vcpus > MAX_VCPUS as u64 {
            return Err(LayoutError::Vcpus(vcpus));
        }
        if wss > ram_size {
            return Err(LayoutError::WssLargerThanMem { wss, mem: ram_size });
        }
        if !ram_size.is_multiple_of(RAM_ALIGN) {
            return Err(LayoutError::Unaligned(ram_size));
        }
        if ram_size > MAX_RAM_SIZE {
            return Err(LayoutError::TooLarge(ram_size));
        }
        let image = image_end.saturating_sub(RAM_BASE);
        let stack_bottom = align_up(image_end.max(RAM_BASE), PAGE_SIZE);
        let stacks = STACK_SIZE * vcpus;
        let stack_top = stack_bottom + stacks;
        let need = stack_top - RAM_BASE + align_up(wss.max(PAGE_SIZE), PAGE_SIZE);
        if need > ram_size {
            return Err(LayoutError::TooSmall {
                have: ram_size,
                need,
                image,
                stack: stacks,
                wss,
            });
        }
        let words = bitmap_words(ram_size);
        let bitmap_bytes = align_up(words * 8, PAGE_SIZE);
        let read_bitmap = META_BASE + BITMAPS_OFFSET;
        let write_bitmap = read_bitmap + bitmap_bytes;
        let page_tables = write_bitmap + bitmap_bytes;
        let small = small_pages(guest_pages, ram_size);
        let tss = page_tables + tables_needed(RAM_BASE + ram_size, &small) * PAGE_SIZE;
        let meta_size = tss + PAGE_SIZE - META_BASE;
        debug_assert!(META_BASE + meta_size <= DOORBELL_BASE);
        Ok(Layout {
            ram_size,
            meta_size,
            bitmap_words: words,
            params: META_BASE + wss_abi::PARAMS_OFFSET,
            status: META_BASE + wss_abi::STATUS_OFFSET,
            read_bitmap,
            write_bitmap,
            page_tables,
            tss,
            image_end,
            stack_top,
            vcpus,
            data_start: stack_top,
            data_end: RAM_BASE + ram_size,
            guest_pages,
        })
    }

    /// The guest-physical range the identity map covers with 4 KiB pages.
    pub fn small_pages(&self) -> Range<u64> {
        small_pages(self.guest_pages, self.ram_size)
    }

    /// The top of vCPU `index`'s stack (its first push goes below it).
    pub fn stack_top_of(&self, index: u64) -> u64 {
        self.stack_top - index * STACK_SIZE
    }

    pub fn ram_end(&self) -> u64 {
        RAM_BASE + self.ram_size
    }

    pub fn ram_pages(&self) -> u64 {
        self.ram_size / PAGE_SIZE
    }

    /// Index (in RAM pages) of the first data page.
    pub fn data_first_page(&self) -> u64 {
        (self.data_start - RAM_BASE) / PAGE_SIZE
    }

    /// Number of pages in the data region: the tracked domain.
    pub fn data_pages(&self) -> u64 {
        (self.data_end - self.data_start) / PAGE_SIZE
    }

    /// The data region's RAM pages.
    pub fn data_page_range(&self) -> Range<u64> {
        self.data_first_page()..self.data_first_page() + self.data_pages()
    }
}

fn small_pages(guest_pages: GuestPageSize, ram_size: u64) -> Range<u64> {
    match guest_pages {
        GuestPageSize::Size2M => 0..0,
        GuestPageSize::Size4K => RAM_BASE..RAM_BASE + ram_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let l = Layout::new(512 << 20, RAM_BASE + 0x9123, 64 << 20).expect("fits");
        assert_eq!(l.stack_top, RAM_BASE + 0xa000 + STACK_SIZE);
        assert_eq!(l.data_start, l.stack_top);
        assert_eq!(l.data_end, RAM_BASE + (512 << 20));
        assert_eq!(l.bitmap_words, (512 << 20) / 4096 / 64);
        assert_eq!(l.data_pages() + l.data_first_page(), l.ram_pages());
        assert!(l.read_bitmap + l.bitmap_words * 8 <= l.write_bitmap);
        assert!(l.write_bitmap + l.bitmap_words * 8 <= l.page_tables);
        assert!(l.page_tables < l.tss && l.tss < META_BASE + l.meta_size);
        assert!(META_BASE + l.meta_size <= DOORBELL_BASE);
    }

    #[test]
    fn each_vcpu_has_its_own_stack_below_the_data() {
        let image_end = RAM_BASE + 0x9123;
        let l = Layout::with_vcpus(512 << 20, image_end, 64 << 20, GuestPageSize::Size2M, 4)
            .expect("fits");
        assert_eq!(l.vcpus, 4);
        assert_eq!(l.stack_top, RAM_BASE + 0xa000 + 4 * STACK_SIZE);
        assert_eq!(l.data_start, l.stack_top, "stacks are never tracked");
        assert_eq!(l.stack_top_of(0), l.stack_top);
        assert_eq!(l.stack_top_of(1), l.stack_top - STACK_SIZE);
        // The lowest stack starts right after the image's last page.
        assert_eq!(l.stack_top_of(3) - STACK_SIZE, RAM_BASE + 0xa000);
        assert!(l.stack_top_of(3) - STACK_SIZE >= image_end);
        for bad in [0, MAX_VCPUS as u64 + 1] {
            assert_eq!(
                Layout::with_vcpus(512 << 20, image_end, 0, GuestPageSize::Size2M, bad),
                Err(LayoutError::Vcpus(bad))
            );
        }
        // The stacks count against --mem.
        assert!(matches!(
            Layout::with_vcpus(
                4 << 20,
                RAM_BASE + 4096,
                1 << 20,
                GuestPageSize::Size2M,
                4
            ),
            Err(LayoutError::TooSmall {
                stack, ..
            }) if stack == 4 * STACK_SIZE
        ));
    }

    #[test]
    fn largest_layout_fits_below_the_doorbells() {
        let l = Layout::new(MAX_RAM_SIZE, RAM_BASE + 4096, 1 << 30).expect("fits");
        assert!(META_BASE + l.meta_size <= DOORBELL_BASE);
    }

    #[test]
    fn four_kib_guest_pages_fit_too() {
        let l = Layout::with_guest_pages(
            MAX_RAM_SIZE,
            RAM_BASE + 4096,
            1 << 30,
            GuestPageSize::Size4K,
        )
        .expect("fits");
        assert!(META_BASE + l.meta_size <= DOORBELL_BASE);
        assert_eq!(l.small_pages(), RAM_BASE..RAM_BASE + MAX_RAM_SIZE);
        assert_eq!(
            Layout::new(64 << 20, RAM_BASE, 0)
                .expect("fits")
                .small_pages(),
            0..0
        );
    }

    #[test]
    fn rejects_bad_sizes() {
        assert_eq!(
            Layout::new(64 << 20, RAM_BASE, 128 << 20),
            Err(LayoutError::WssLargerThanMem {
                wss: 128 << 20,
                mem: 64 << 20
            })
        );
        assert_eq!(
            Layout::new((64 << 20) + 4096, RAM_BASE, 0),
            Err(LayoutError::Unaligned((64 << 20) + 4096))
        );
        assert_eq!(
            Layout::new(MAX_RAM_SIZE * 2, RAM_BASE, 0),
            Err(LayoutError::TooLarge(MAX_RAM_SIZE * 2))
        );
        assert!(matches!(
            Layout::new(2 << 20, RAM_BASE + (1 << 20), 1 << 20),
            Err(LayoutError::TooSmall { .. })
        ));
    }
}
