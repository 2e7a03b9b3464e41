//! The pages an estimator armed for a tick and which of them were touched:
//! the one bookkeeping of esx and follow, which both draw a fresh sample
//! each interval and count its first touches.

use super::PageIdx;

/// A sample of armed pages (sorted, unique) and its distinct touches.
#[derive(Debug, Default, Clone)]
pub struct ArmedSample {
    pages: Vec<PageIdx>,
    hit: Vec<bool>,
    hits: u64,
}

impl ArmedSample {
    /// Arms `pages` (sorted ascending, no duplicates), forgetting the last
    /// sample.
    pub fn arm(&mut self, pages: &[PageIdx]) {
        self.hit.clear();
        self.hit.resize(pages.len(), false);
        self.hits = 0;
        self.pages.clear();
        self.pages.extend_from_slice(pages);
    }

    /// Counts the armed pages among `touched`, each once; pages that were
    /// not armed, and repeats, are ignored.
    pub fn observe(&mut self, touched: &[PageIdx]) {
        for p in touched {
            if let Ok(i) = self.pages.binary_search(p)
                && !self.hit[i]
            {
                self.hit[i] = true;
                self.hits += 1;
            }
        }
    }

    /// Armed pages touched so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Pages armed.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Forgets the sample (the interval is closed).
    pub fn clear(&mut self) {
        self.arm(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_armed_page_once_and_ignores_the_rest() {
        let mut s = ArmedSample::default();
        s.arm(&[2, 5, 9]);
        s.observe(&[1, 5, 5, 9]);
        s.observe(&[9, 2, 100]);
        assert_eq!((s.hits(), s.len()), (3, 3));
        s.arm(&[1]);
        assert_eq!((s.hits(), s.len()), (0, 1));
        s.clear();
        assert_eq!(s.len(), 0);
        s.observe(&[1]);
        assert_eq!(s.hits(), 0);
    }
}
