//! The compressed page store: where reclaim keeps the bytes of evicted
//! guest pages until the guest touches them again.
//!
//! A page is kept in one of four forms: a flag for an all-zero page (no
//! bytes: a page the guest allocated and never wrote non-zero, common in
//! fresh heaps); its non-zero words and their places, when it has at most
//! [`SPARSE_MAX_WORDS`] of them (a page written here and there, a zero
//! page with a header); else its lz4 block or, when lz4 does not shrink it
//! (random or already compressed data), its raw 4 KiB, so no page ever
//! costs more than itself. One pass over the page's words finds the first
//! two forms, as zswap finds its same-filled pages, and costs a fraction
//! of lz4's time: reclaim stores pages while the guest is held, and lz4
//! is most of what eviction costs a page (see README, "The slowdown").

use std::collections::HashMap;

use wss_abi::PAGE_SIZE;

use crate::track::RamPage;

/// Bytes of one guest page.
pub const PAGE_BYTES: usize = PAGE_SIZE as usize;
/// Words of one guest page.
const PAGE_WORDS: usize = PAGE_BYTES / 8;
/// The most non-zero words a page may have to be kept as its words: 64
/// of 512, at 10 bytes each (a 2-byte place, an 8-byte word), 640 bytes.
pub const SPARSE_MAX_WORDS: usize = 64;
/// Bytes of one kept word: its place in the page and its value.
const SPARSE_ENTRY: usize = 10;

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
    #[error("stored page {page} names word {word}, beyond a page's {PAGE_WORDS}")]
    BadWord { page: RamPage, word: usize },
}

/// One evicted page.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    Zero,
    /// [`SPARSE_ENTRY`] bytes per non-zero word: its index, then its value,
    /// little-endian.
    Sparse(Box<[u8]>),
    Lz4(Box<[u8]>),
    Raw(Box<[u8]>),
}

impl Stored {
    fn bytes(&self) -> usize {
        match self {
            Stored::Zero => 0,
            Stored::Sparse(b) | Stored::Lz4(b) | Stored::Raw(b) => b.len(),
        }
    }
}

/// The page's non-zero words as [`Stored::Sparse`] keeps them (empty for
/// an all-zero page), or `None` when it has more than [`SPARSE_MAX_WORDS`].
fn sparse_words(data: &[u8]) -> Option<Vec<u8>> {
    let mut kept = Vec::new();
    for (place, chunk) in data.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if word == [0; 8] {
            continue;
        }
        if kept.len() == SPARSE_MAX_WORDS * SPARSE_ENTRY {
            return None;
        }
        // A place is below PAGE_WORDS (512), so it fits in two bytes.
        kept.extend_from_slice(&(place as u16).to_le_bytes());
        kept.extend_from_slice(&word);
    }
    Some(kept)
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
        let stored = match sparse_words(data) {
            Some(kept) if kept.is_empty() => Stored::Zero,
            Some(kept) => Stored::Sparse(kept.into_boxed_slice()),
            None => {
                let packed = lz4_flex::block::compress(data);
                if packed.len() < PAGE_BYTES {
                    Stored::Lz4(packed.into_boxed_slice())
                } else {
                    Stored::Raw(data.into())
                }
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
            Stored::Sparse(kept) => {
                let mut out = vec![0u8; PAGE_BYTES].into_boxed_slice();
                for entry in kept.chunks_exact(SPARSE_ENTRY) {
                    let word = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
                    if word >= PAGE_WORDS {
                        return Err(StoreError::BadWord { page, word });
                    }
                    out[word * 8..word * 8 + 8].copy_from_slice(&entry[2..]);
                }
                Restored::Bytes(out)
            }
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

    /// A page with a few words written (as the test guests' pages are)
    /// keeps just those words, 10 bytes each, up to SPARSE_MAX_WORDS; one
    /// more and it goes to lz4.
    #[test]
    fn a_page_of_few_words_keeps_just_its_words() {
        let mut page = vec![0u8; PAGE_BYTES];
        page[7 * 8..8 * 8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
        page[PAGE_BYTES - 1] = 9;
        let mut s = PageStore::new();
        s.put(3, &page).expect("put");
        assert_eq!((s.bytes(), s.zero_pages()), (20, 0));
        assert_eq!(
            s.take(3).expect("take"),
            Some(Restored::Bytes(page.clone().into()))
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut full = vec![0u8; PAGE_BYTES];
        for w in 0..SPARSE_MAX_WORDS {
            // Every eighth word, random and never zero.
            let v: u64 = rng.random::<u64>() | 1;
            full[w * 64..w * 64 + 8].copy_from_slice(&v.to_le_bytes());
        }
        s.put(4, &full).expect("put");
        assert_eq!(s.bytes(), (SPARSE_MAX_WORDS * 10) as u64);
        assert_eq!(
            s.take(4).expect("take"),
            Some(Restored::Bytes(full.clone().into()))
        );
        full[8..16].copy_from_slice(&1u64.to_le_bytes());
        s.put(5, &full).expect("put");
        assert!(matches!(s.pages.get(&5), Some(Stored::Lz4(_))));
        assert_eq!(s.take(5).expect("take"), Some(Restored::Bytes(full.into())));
    }

    #[test]
    fn a_kept_word_beyond_the_page_is_an_error_not_a_write() {
        let mut s = PageStore::new();
        let mut bad = vec![0u8; 10];
        bad[..2].copy_from_slice(&600u16.to_le_bytes());
        let stored = Stored::Sparse(bad.into_boxed_slice());
        s.add(&stored);
        s.pages.insert(8, stored);
        assert!(matches!(
            s.take(8),
            Err(StoreError::BadWord { page: 8, word: 600 })
        ));
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
