//! A set of page indices stored as sorted runs of consecutive pages, and its
//! compact encoding: working sets are mostly long runs (a sequential scan, a
//! hot region) or scattered pages, and runs cost two small varints each
//! however long they are.

use std::ops::Range;

use super::RecordError;
use super::varint::{Cursor, write_varint};

/// Sorted, disjoint, non-adjacent runs of page indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSet {
    runs: Vec<Range<u64>>,
}

impl PageSet {
    /// The set of `pages`, which must be sorted ascending (repeats allowed).
    pub fn from_sorted(pages: impl IntoIterator<Item = u64>) -> Self {
        let mut runs: Vec<Range<u64>> = Vec::new();
        for p in pages {
            match runs.last_mut() {
                Some(last) if p < last.end => {}
                Some(last) if p == last.end => last.end = p + 1,
                _ => runs.push(p..p + 1),
            }
        }
        PageSet { runs }
    }

    /// Number of pages in the set.
    pub fn len(&self) -> u64 {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs of consecutive pages, ascending: what a reader that bins
    /// pages (the heat map) walks instead of every page.
    pub fn runs(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.runs.iter().cloned()
    }

    pub fn contains(&self, page: u64) -> bool {
        let i = self.runs.partition_point(|r| r.end <= page);
        self.runs.get(i).is_some_and(|r| r.start <= page)
    }

    /// Number of distinct pages in the union of `sets`.
    pub fn union_len<'a>(sets: impl IntoIterator<Item = &'a PageSet>) -> u64 {
        let mut acc = PageSet::default();
        for s in sets {
            acc = acc.union(s);
        }
        acc.len()
    }

    /// The union of two sets, in one pass over both: sets are sorted, so
    /// an interval's truth costs what its ticks hold, not a sort of them.
    pub fn union(&self, other: &PageSet) -> PageSet {
        let mut runs: Vec<Range<u64>> = Vec::with_capacity(self.runs.len() + other.runs.len());
        let (mut a, mut b) = (self.runs.iter().peekable(), other.runs.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.start <= y.start => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let Some(r) = next else { break };
            match runs.last_mut() {
                // Overlapping or adjacent: one run.
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => runs.push(r.clone()),
            }
        }
        PageSet { runs }
    }

    /// Appends the encoding: the number of runs, then per run its gap after
    /// the previous run's end (the first from 0) and its length less one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.runs.len() as u64);
        let mut prev_end = 0;
        for r in &self.runs {
            write_varint(out, r.start - prev_end);
            write_varint(out, r.end - r.start - 1);
            prev_end = r.end;
        }
    }

    /// Reads a set encoded by [`PageSet::encode`] whose pages all lie below
    /// `limit`. Every run takes at least two bytes, so a run count larger
    /// than half the bytes left is refused before anything is allocated.
    pub fn decode(cur: &mut Cursor<'_>, limit: u64) -> Result<Self, RecordError> {
        let n = cur.varint("run count")?;
        if n > cur.remaining() as u64 / 2 {
            return Err(cur.corrupt("run count larger than the bytes left"));
        }
        let mut runs = Vec::with_capacity(n as usize);
        let mut prev_end = 0u64;
        for i in 0..n {
            let gap = cur.varint("run gap")?;
            let len = cur.varint("run length")?;
            // Runs are non-adjacent: only the first may start at the end of
            // the one before (at 0).
            if i > 0 && gap == 0 {
                return Err(cur.corrupt("adjacent runs"));
            }
            let start = prev_end.checked_add(gap);
            let end = start.and_then(|s| s.checked_add(len)?.checked_add(1));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(cur.corrupt("page index overflows"));
            };
            if end > limit {
                return Err(cur.corrupt("page outside the recorded domain"));
            }
            runs.push(start..end);
            prev_end = end;
        }
        Ok(PageSet { runs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_answer_membership() {
        let s = PageSet::from_sorted([1, 2, 3, 3, 7, 9, 10]);
        assert_eq!(s.runs, vec![1..4, 7..8, 9..11]);
        assert_eq!(s.len(), 6);
        let members: Vec<u64> = (0..12).filter(|&p| s.contains(p)).collect();
        assert_eq!(members, vec![1, 2, 3, 7, 9, 10]);
        assert!(PageSet::from_sorted([]).is_empty());
    }

    #[test]
    fn union_counts_each_page_once() {
        let a = PageSet::from_sorted([1, 2, 3, 10]);
        let b = PageSet::from_sorted([2, 3, 4, 5, 20]);
        let c = PageSet::from_sorted([0, 10, 11]);
        // {0,1,2,3,4,5,10,11,20}
        assert_eq!(PageSet::union_len([&a, &b, &c]), 9);
        assert_eq!(PageSet::union_len([&a]), 4);
        assert_eq!(PageSet::union_len([]), 0);
        // Adjacent runs of two sets become one run.
        let u = PageSet::from_sorted([1, 2]).union(&PageSet::from_sorted([3, 4, 8]));
        assert_eq!(u, PageSet::from_sorted([1, 2, 3, 4, 8]));
        assert_eq!(u.runs, vec![1..5, 8..9]);
        assert_eq!(a.union(&b).union(&c), c.union(&a).union(&b));
    }

    #[test]
    fn encoding_round_trips_and_is_compact_for_runs() {
        let s = PageSet::from_sorted((0..5000).chain([6000, 6002]).chain(7000..7100));
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        assert!(bytes.len() <= 16, "{} bytes", bytes.len());
        let mut cur = Cursor::new(&bytes);
        assert_eq!(PageSet::decode(&mut cur, 7100).unwrap(), s);
        assert_eq!(cur.remaining(), 0);
        // One page past the domain is refused.
        let mut cur = Cursor::new(&bytes);
        assert!(PageSet::decode(&mut cur, 7099).is_err());
    }

    #[test]
    fn corrupt_sets_are_errors() {
        // A huge run count with two bytes after it.
        let mut bytes = Vec::new();
        write_varint(&mut bytes, u64::MAX / 2);
        bytes.extend([1, 1]);
        assert!(PageSet::decode(&mut Cursor::new(&bytes), 100).is_err());
        // Two adjacent runs.
        assert!(PageSet::decode(&mut Cursor::new(&[2, 0, 0, 0, 0]), 100).is_err());
        // A run whose end overflows.
        let mut bytes = vec![1];
        write_varint(&mut bytes, u64::MAX);
        write_varint(&mut bytes, 5);
        assert!(PageSet::decode(&mut Cursor::new(&bytes), u64::MAX).is_err());
        // Cut short.
        assert!(PageSet::decode(&mut Cursor::new(&[1, 3]), 100).is_err());
    }
}
