//! One bit per guest RAM page, the way every tracker keeps pages: the page
//! sets (armed, touched, mapped, ...) as [`PageBits`], and the bit rule of
//! the dense bitmaps the kernel fills (KVM's dirty log), which
//! [`PageBits`] uses inside its chunks too.

use super::RamPage;

/// Word index and mask of `page` in a dense bitmap of u64 words, where bit
/// `i` of word `w` stands for page `64 w + i`: KVM's dirty-log layout.
pub fn word_and_mask(page: RamPage) -> (usize, u64) {
    ((page / 64) as usize, 1 << (page % 64))
}

/// Whether `page`'s bit is set in the dense bitmap `words`; a page past its
/// end is not.
pub fn dense_bit(words: &[u64], page: RamPage) -> bool {
    let (w, mask) = word_and_mask(page);
    words.get(w).is_some_and(|word| word & mask != 0)
}

/// Pages per chunk of a [`PageBits`]: 16 MiB of guest RAM, 512 bytes.
const CHUNK_PAGES: u64 = 4096;
const CHUNK_WORDS: usize = (CHUNK_PAGES / 64) as usize;

/// A set of RAM pages, a bit per page, allocated a chunk at a time where a
/// bit was ever set: its memory, and the page faults of first touching it,
/// grow with the pages sampled, not with guest RAM (a dense bitmap of a
/// 64 GiB guest is 2 MiB, and scattered samples fault in a new page of it
/// with almost every bit they set). A membership test reads one word.
/// Pages at or past the size given to `new` are never members.
#[derive(Debug, Clone, Default)]
pub struct PageBits {
    chunks: Vec<Option<Box<[u64; CHUNK_WORDS]>>>,
    len: usize,
}

impl PageBits {
    /// An empty set of pages `0..pages`.
    pub fn new(pages: u64) -> PageBits {
        PageBits {
            chunks: (0..pages.div_ceil(CHUNK_PAGES)).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Chunk index, and word index and mask within the chunk.
    fn locate(page: RamPage) -> (usize, usize, u64) {
        let (w, mask) = word_and_mask(page % CHUNK_PAGES);
        ((page / CHUNK_PAGES) as usize, w, mask)
    }

    pub fn contains(&self, page: RamPage) -> bool {
        let (c, w, mask) = Self::locate(page);
        self.chunks
            .get(c)
            .and_then(Option::as_ref)
            .is_some_and(|chunk| chunk[w] & mask != 0)
    }

    /// Adds `page`; true if it was not a member. Out of range: ignored.
    pub fn insert(&mut self, page: RamPage) -> bool {
        let (c, w, mask) = Self::locate(page);
        let Some(slot) = self.chunks.get_mut(c) else {
            return false;
        };
        let word = &mut slot.get_or_insert_with(|| Box::new([0; CHUNK_WORDS]))[w];
        let added = *word & mask == 0;
        *word |= mask;
        self.len += usize::from(added);
        added
    }

    /// Removes `page`; true if it was a member. Frees no chunk.
    pub fn remove(&mut self, page: RamPage) -> bool {
        let (c, w, mask) = Self::locate(page);
        let Some(chunk) = self.chunks.get_mut(c).and_then(Option::as_mut) else {
            return false;
        };
        let removed = chunk[w] & mask != 0;
        chunk[w] &= !mask;
        self.len -= usize::from(removed);
        removed
    }

    /// How many pages are members.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The members, sorted.
    pub fn to_vec(&self) -> Vec<RamPage> {
        let mut out = Vec::with_capacity(self.len);
        for (c, chunk) in self.chunks.iter().enumerate() {
            let Some(chunk) = chunk else { continue };
            for (w, &word) in chunk.iter().enumerate() {
                let mut rest = word;
                while rest != 0 {
                    let base = c as u64 * CHUNK_PAGES + w as u64 * 64;
                    out.push(base + u64::from(rest.trailing_zeros()));
                    rest &= rest - 1;
                }
            }
        }
        out
    }

    /// How many pages are members of one set and not the other.
    pub fn differences(&self, other: &PageBits) -> usize {
        let word = |set: &PageBits, c: usize, w: usize| {
            set.chunks
                .get(c)
                .and_then(Option::as_ref)
                .map_or(0, |chunk| chunk[w])
        };
        (0..self.chunks.len().max(other.chunks.len()))
            .flat_map(|c| (0..CHUNK_WORDS).map(move |w| (c, w)))
            .map(|(c, w)| (word(self, c, w) ^ word(other, c, w)).count_ones() as usize)
            .sum()
    }

    /// Chunks allocated so far.
    #[cfg(test)]
    fn allocated_chunks(&self) -> usize {
        self.chunks.iter().filter(|c| c.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_their_count() {
        let mut set = PageBits::new(130);
        assert!(set.is_empty());
        let added: Vec<bool> = [129, 0, 64, 63, 64].map(|p| set.insert(p)).to_vec();
        assert_eq!(added, vec![true, true, true, true, false]);
        assert_eq!(set.len(), 4);
        assert_eq!(set.to_vec(), vec![0, 63, 64, 129]);
        assert!(set.contains(63) && !set.contains(62) && !set.contains(130));
        let mut other = PageBits::new(200);
        for p in [0, 64, 150] {
            other.insert(p);
        }
        // 63 and 129 only in `set`, 150 only in `other`.
        assert_eq!((set.differences(&other), other.differences(&set)), (3, 3));
        assert_eq!(set.differences(&set.clone()), 0);
        assert!(set.remove(63));
        assert!(!set.remove(63));
        assert!(!set.remove(5));
        assert_eq!(set.to_vec(), vec![0, 64, 129]);
        // Out of range: never a member, and no panic.
        assert!(!set.insert(1 << 40));
        assert!(!set.remove(1 << 40));
        assert!(!set.contains(u64::MAX));
        for p in [0, 64, 129] {
            set.remove(p);
        }
        assert!(set.is_empty() && set.to_vec().is_empty());
    }

    #[test]
    fn allocates_only_where_set() {
        let pages = (64u64 << 30) / 4096;
        let mut b = PageBits::new(pages);
        assert_eq!(b.chunks.len(), 4096);
        for p in [0, 63, 64, CHUNK_PAGES - 1, pages / 2, pages - 1] {
            assert!(!b.contains(p));
            b.insert(p);
            assert!(b.contains(p));
        }
        assert!(!b.contains(1) && !b.contains(CHUNK_PAGES) && !b.contains(pages - 2));
        assert_eq!(
            b.to_vec(),
            vec![0, 63, 64, CHUNK_PAGES - 1, pages / 2, pages - 1]
        );
        // Three chunks hold the six bits; removing frees nothing, sets nothing.
        assert_eq!(b.allocated_chunks(), 3);
        b.remove(63);
        b.remove(CHUNK_PAGES * 7);
        assert!(!b.contains(63) && b.contains(0) && b.contains(64));
        assert_eq!(b.allocated_chunks(), 3);
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn dense_bit_reads_the_page_bit() {
        let words = [1 << 5, 1 << 63];
        assert!(dense_bit(&words, 5) && dense_bit(&words, 127));
        assert!(!dense_bit(&words, 4) && !dense_bit(&words, 64));
        // Past the end: not set, no panic.
        assert!(!dense_bit(&words, 128));
        assert_eq!(word_and_mask(130), (2, 1 << 2));
    }
}
