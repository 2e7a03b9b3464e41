//! The compressed page store: where reclaim keeps the bytes of evicted
//! guest pages until the guest touches them again.
//!
//! A page is kept in one of three forms, whichever is smallest: a flag for
//! an all-zero page (no bytes: a page the guest allocated and never wrote
//! non-zero, common in fresh heaps), its lz4 block, or, when lz4 does not
//! shrink it (random or already compressed data), its raw 4 KiB, so no page
//! ever costs more than itself.

use std::collections::HashMap;

use wss_abi::PAGE_SIZE;

use crate::track::RamPage;

/// Bytes of one guest page.
pub const PAGE_BYTES: usize = PAGE_SIZE as usize;

/// Why a page cannot be stored or taken back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a stored page is {PAGE_BYTES} bytes, not {0}")]
    BadLength(usize),
    #[error("stored page {page} does not decompress")]
    Corrupt {
        page: RamPage,
        #[source]
        source: lz4_flex::block::DecompressError,
    },
    #[error("stored page {page} decompresses to {len} bytes, not {PAGE_BYTES}")]
    ShortPage { page: RamPage, len: usize },
}

/// One evicted page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    Zero,
    Lz4(Box<[u8]>),
    Raw(Box<[u8]>),
}

impl Stored {
    fn bytes(&self) -> usize {
        match self {
            Stored::Zero => 0,
            Stored::Lz4(b) | Stored::Raw(b) => b.len(),
        }
    }
}

/// What a page held when it was stored, as [`PageStore::take`] gives it
/// back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// All zero: install a zeroed page.
    Zero,
    /// The page's 4 KiB.
    Bytes(Box<[u8]>),
}

/// Evicted pages by RAM page index, compressed. See the module comment.
#[derive(Debug, Default)]
pub struct PageStore {
    pages: HashMap<RamPage, Stored>,
    /// Bytes held, summed over the pages (zero pages hold none).
    bytes: u64,
    zero_pages: u64,
}

impl PageStore {
    pub fn new() -> PageStore {
        PageStore::default()
    }

    /// Stores `data` (one page) as page `page`, replacing what was stored
    /// under it.
    pub fn put(&mut self, page: RamPage, data: &[u8]) -> Result<(), StoreError> {
        if data.len() != PAGE_BYTES {
            return Err(StoreError::BadLength(data.len()));
        }
        let stored = if data.iter().all(|&b| b == 0) {
            Stored::Zero
        } else {
            let packed = lz4_flex::block::compress(data);
            if packed.len() < PAGE_BYTES {
                Stored::Lz4(packed.into_boxed_slice())
            } else {
                Stored::Raw(data.into())
            }
        };
        self.add(&stored);
        if let Some(old) = self.pages.insert(page, stored) {
            self.remove_counts(&old);
        }
        Ok(())
    }

    /// Takes page `page` out of the store: `None` if it is not there.
    pub fn take(&mut self, page: RamPage) -> Result<Option<Restored>, StoreError> {
        let Some(stored) = self.pages.remove(&page) else {
            return Ok(None);
        };
        self.remove_counts(&stored);
        Ok(Some(match stored {
            Stored::Zero => Restored::Zero,
            Stored::Raw(b) => Restored::Bytes(b),
            Stored::Lz4(packed) => {
                let mut out = vec![0u8; PAGE_BYTES].into_boxed_slice();
                let len = lz4_flex::block::decompress_into(&packed, &mut out)
                    .map_err(|source| StoreError::Corrupt { page, source })?;
                if len != PAGE_BYTES {
                    return Err(StoreError::ShortPage { page, len });
                }
                Restored::Bytes(out)
            }
        }))
    }

    /// The stored pages, ascending.
    pub fn pages(&self) -> Vec<RamPage> {
        let mut v: Vec<RamPage> = self.pages.keys().copied().collect();
        v.sort_unstable();
        v
    }

    pub fn contains(&self, page: RamPage) -> bool {
        self.pages.contains_key(&page)
    }

    /// Pages held.
    pub fn len(&self) -> u64 {
        self.pages.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Bytes the held pages take, compressed (zero pages take none).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Held pages that are all zero.
    pub fn zero_pages(&self) -> u64 {
        self.zero_pages
    }

    /// The pages' own size over the bytes they take: `None` while the
    /// store holds no byte (empty, or zero pages only).
    pub fn compression_ratio(&self) -> Option<f64> {
        (self.bytes > 0).then(|| (self.len() * PAGE_SIZE) as f64 / self.bytes as f64)
    }

    fn add(&mut self, s: &Stored) {
        self.bytes += s.bytes() as u64;
        self.zero_pages += u64::from(*s == Stored::Zero);
    }

    fn remove_counts(&mut self, s: &Stored) {
        self.bytes -= s.bytes() as u64;
        self.zero_pages -= u64::from(*s == Stored::Zero);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    fn text_page(seed: u8) -> Vec<u8> {
        (0..PAGE_BYTES)
            .map(|i| b"guest page "[i % 11].wrapping_add(seed))
            .collect()
    }

    #[test]
    fn a_page_comes_back_byte_for_byte_and_leaves_the_store() {
        let mut s = PageStore::new();
        let page = text_page(3);
        s.put(42, &page).expect("put");
        assert!(s.contains(42));
        assert_eq!(s.len(), 1);
        let held = s.bytes();
        assert!(held > 0 && held < PAGE_SIZE / 10, "{held} bytes");
        assert!(s.compression_ratio().expect("bytes held") > 10.0);
        assert_eq!(
            s.take(42).expect("take"),
            Some(Restored::Bytes(page.into()))
        );
        assert!(!s.contains(42));
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert_eq!(s.take(42).expect("take"), None, "taken once");
    }

    #[test]
    fn a_zero_page_is_a_flag_without_bytes() {
        let mut s = PageStore::new();
        s.put(7, &[0u8; PAGE_BYTES]).expect("put");
        assert_eq!((s.len(), s.bytes(), s.zero_pages()), (1, 0, 1));
        assert_eq!(s.compression_ratio(), None);
        assert_eq!(s.take(7).expect("take"), Some(Restored::Zero));
        assert_eq!(s.zero_pages(), 0);
    }

    #[test]
    fn an_incompressible_page_is_kept_raw_at_its_own_size() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let page: Vec<u8> = (0..PAGE_BYTES).map(|_| rng.random()).collect();
        let mut s = PageStore::new();
        s.put(1, &page).expect("put");
        assert_eq!(s.bytes(), PAGE_SIZE);
        assert_eq!(s.compression_ratio(), Some(1.0));
        assert_eq!(s.take(1).expect("take"), Some(Restored::Bytes(page.into())));
    }

    #[test]
    fn storing_a_page_again_replaces_it_and_its_counts() {
        let mut s = PageStore::new();
        s.put(5, &text_page(1)).expect("put");
        s.put(5, &[0u8; PAGE_BYTES]).expect("put");
        assert_eq!((s.len(), s.bytes(), s.zero_pages()), (1, 0, 1));
        s.put(6, &text_page(2)).expect("put");
        s.put(5, &text_page(1)).expect("put");
        assert_eq!(s.zero_pages(), 0);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.take(6).expect("take"),
            Some(Restored::Bytes(text_page(2).into()))
        );
        assert!(matches!(
            s.put(9, &[1u8; 100]),
            Err(StoreError::BadLength(100))
        ));
    }
}
