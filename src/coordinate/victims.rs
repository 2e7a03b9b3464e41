//! Which resident pages reclaim evicts first: the coldest, judged from
//! what the sampler and the uffd handler saw, never from the guest's
//! reported truth (that is only for scoring).
//!
//! Three tiers:
//!
//! 1. **Known idle, the longest first.** A page the estimator armed and
//!    the guest left untouched until collect was idle for that whole tick.
//!    It stays *known idle* until a touch of it is seen; its age is the
//!    tick of that first untouched observation, and the oldest go first.
//!    Under the uffd tracker a touch of such a page is seen: collect leaves
//!    untouched pages unmapped (lazily), so their next touch is a fault the
//!    handler reports. Once the tracker collects eagerly, a later touch is
//!    missed until the page is armed again, and the age is an upper bound.
//! 2. **Idle neighbourhoods, the longest idle first.** A page never
//!    sampled (or not since its last touch) takes the word of the nearest
//!    pages around it whose state was seen, one on each side: when every
//!    one of them was last seen idle, it probably is too (guest memory is
//!    used in runs of pages: heaps, arrays, the prefix a ramp shrinks; the
//!    assumption DAMON's regions make). Its age is the newer of the two
//!    neighbours' idle ages. A sample of a few hundred pages thus speaks
//!    for the thousands between them: without this tier, a VM whose
//!    working set fell by thousands of pages had them chosen by CLOCK in
//!    address order, which for a shrinking prefix is the part still in
//!    use (`make coordinate` under `wss`: in shift, 8,612 of the 29,092
//!    pages evicted from vm1 came back; in consume-all, each VM's whole
//!    remaining working set, 1,638 pages, in one interval). A page evicted and not
//!    touched since is still idle evidence; a refault makes it a touched
//!    one.
//! 3. **CLOCK for the rest.** Every seen touch (a tracked touch, any fault
//!    the handler resolved: first touches, refaults of evicted pages, lazy
//!    refaults) sets the page's reference bit. A hand sweeps the resident
//!    data pages in address order from where it last stopped: a referenced
//!    page loses its bit and is passed over (second chance), an
//!    unreferenced one is a victim. A page just refaulted is therefore hot
//!    and survives the next sweep; a page with no touch seen since the
//!    hand last passed goes.
//!
//! No page is unmapped only to learn whether it is touched (software
//! reference bits): on this host such a probe costs the guest a fault of
//! about what a refault costs, so the sample the estimator pays for
//! anyway is the reference information.
//!
//! With exhaustive sampling every untouched data page is known idle at
//! every tick, so tier 1 is the exact least-recently-used order at tick
//! granularity; with a sample of a few hundred pages tier 1 is short and
//! tier 2 decides most victims where idle and used memory lie in runs,
//! CLOCK where they are mixed page by page.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use crate::track::RamPage;
use crate::track::page_bits::PageBits;

/// What was last seen of a page: untouched for a whole tick since the
/// given tick (and since), or touched at the given tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    IdleSince(u64),
    Touched,
}

/// The victim order of one VM's data pages. See the module comment.
pub struct VictimOrder {
    data: Range<RamPage>,
    /// Known-idle pages and the tick they were first seen untouched at.
    idle_since: HashMap<RamPage, u64>,
    /// The last state seen of every page ever seen, evicted or not: the
    /// evidence tier 2 reads.
    last_seen: BTreeMap<RamPage, Seen>,
    referenced: PageBits,
    /// Where the CLOCK hand stands: the next page it looks at.
    hand: RamPage,
    /// Arm/collect cycles seen so far.
    tick: u64,
    /// The pages armed in the current tick.
    armed: Vec<RamPage>,
}

impl VictimOrder {
    /// An order over the data pages `data` (RAM page numbers).
    pub fn new(data: Range<RamPage>) -> VictimOrder {
        VictimOrder {
            referenced: PageBits::new(data.end),
            hand: data.start,
            data,
            idle_since: HashMap::new(),
            last_seen: BTreeMap::new(),
            tick: 0,
            armed: Vec::new(),
        }
    }

    /// The sampler armed `pages` for the tick that starts.
    pub fn armed(&mut self, pages: &[RamPage]) {
        self.armed = pages.to_vec();
    }

    /// The tick ended: of the armed pages, `touched` were touched.
    pub fn collected(&mut self, touched: &[RamPage]) {
        let mut touched = touched.to_vec();
        touched.sort_unstable();
        for p in std::mem::take(&mut self.armed) {
            if !self.data.contains(&p) {
                continue;
            }
            if touched.binary_search(&p).is_ok() {
                self.touch(p);
            } else {
                let since = *self.idle_since.entry(p).or_insert(self.tick);
                self.last_seen.insert(p, Seen::IdleSince(since));
                // Untouched for a whole tick since any earlier touch.
                self.referenced.remove(p);
            }
        }
        self.tick += 1;
    }

    /// A touch of each of `pages` was seen (a fault the handler resolved).
    pub fn touched(&mut self, pages: impl IntoIterator<Item = RamPage>) {
        for p in pages {
            if self.data.contains(&p) {
                self.touch(p);
            }
        }
    }

    fn touch(&mut self, p: RamPage) {
        self.referenced.insert(p);
        self.idle_since.remove(&p);
        self.last_seen.insert(p, Seen::Touched);
    }

    /// `pages` left memory: they are no longer candidates, and when the
    /// guest touches them again that touch sets their reference. What was
    /// seen of them stays evidence for their neighbours.
    pub fn evicted(&mut self, pages: &[RamPage]) {
        for &p in pages {
            self.idle_since.remove(&p);
            self.referenced.remove(p);
        }
    }

    /// Pages currently known idle.
    pub fn known_idle(&self) -> usize {
        self.idle_since.len()
    }

    /// Tier 2: the resident data pages with no state of their own (not
    /// known idle, no touch seen since the hand passed) whose nearest seen
    /// pages on both sides (one side at the data's ends) were last seen
    /// idle, with the newer of those idle ages.
    fn idle_neighbourhood(&self, resident: &impl Fn(RamPage) -> bool) -> Vec<(u64, RamPage)> {
        let seen: Vec<(RamPage, Seen)> = self
            .last_seen
            .range(self.data.clone())
            .map(|(&p, &s)| (p, s))
            .collect();
        let mut out = Vec::new();
        // The seen pages around each gap between two of them (or the
        // data's ends): every unseen page in it shares their evidence.
        for k in 0..=seen.len() {
            let left = k.checked_sub(1).map(|i| seen[i]);
            let right = seen.get(k).copied();
            let since = match (left, right) {
                (Some((_, Seen::IdleSince(a))), Some((_, Seen::IdleSince(b)))) => a.max(b),
                (None, Some((_, Seen::IdleSince(a)))) | (Some((_, Seen::IdleSince(a))), None) => a,
                _ => continue,
            };
            let from = left.map_or(self.data.start, |(p, _)| p + 1);
            let to = right.map_or(self.data.end, |(p, _)| p);
            out.extend(
                (from..to)
                    .filter(|&p| resident(p) && !self.referenced.contains(p))
                    .map(|p| (since, p)),
            );
        }
        out
    }

    /// Up to `n` victims among the resident data pages, coldest first.
    /// `resident(p)` says whether data page `p` is resident. Moves the
    /// CLOCK hand and clears the reference bits it passes.
    pub fn choose(&mut self, resident: impl Fn(RamPage) -> bool, n: u64) -> Vec<RamPage> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let mut idle: Vec<(u64, RamPage)> = self
            .idle_since
            .iter()
            .filter(|&(&p, _)| resident(p))
            .map(|(&p, &since)| (since, p))
            .collect();
        idle.sort_unstable();
        let mut victims: Vec<RamPage> = idle.iter().take(n).map(|&(_, p)| p).collect();
        if victims.len() == n || self.data.is_empty() {
            return victims;
        }
        let mut taken: HashSet<RamPage> = victims.iter().copied().collect();
        let mut neighbourhood = self.idle_neighbourhood(&resident);
        neighbourhood.sort_unstable();
        for (_, p) in neighbourhood.into_iter().take(n - victims.len()) {
            victims.push(p);
            taken.insert(p);
        }
        if victims.len() == n {
            return victims;
        }
        // Every resident known-idle page and idle neighbour is taken
        // already; the hand skips them, and the pages it took on its first
        // revolution. Two revolutions: the first may only clear references.
        let len = self.data.end - self.data.start;
        for _ in 0..2 * len {
            let p = self.hand;
            self.hand = if p + 1 >= self.data.end {
                self.data.start
            } else {
                p + 1
            };
            if !resident(p) || self.idle_since.contains_key(&p) || taken.contains(&p) {
                continue;
            }
            if self.referenced.remove(p) {
                continue;
            }
            victims.push(p);
            taken.insert(p);
            if victims.len() == n {
                break;
            }
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_idle_pages_go_first_the_longest_idle_first() {
        let mut o = VictimOrder::new(100..200);
        o.armed(&[110, 120, 130]);
        o.collected(&[120]);
        o.armed(&[140, 150]);
        o.collected(&[]);
        // 110, 130 idle since tick 0; 140, 150 since tick 1.
        assert_eq!(o.known_idle(), 4);
        assert_eq!(o.choose(|_| true, 3), vec![110, 130, 140]);
        // A touch seen later takes a page out of the idle tier; a page
        // that is not resident is no candidate.
        o.touched([130]);
        assert_eq!(o.choose(|p| p != 140, 2), vec![110, 150]);
    }

    #[test]
    fn an_idle_page_keeps_its_first_age_until_touched() {
        let mut o = VictimOrder::new(0..50);
        o.armed(&[5]);
        o.collected(&[]);
        o.armed(&[6]);
        o.collected(&[]);
        o.armed(&[5]);
        o.collected(&[]);
        assert_eq!(o.choose(|_| true, 2), vec![5, 6]);
        o.armed(&[5]);
        o.collected(&[5]);
        assert_eq!(o.choose(|p| p == 5 || p == 6, 1), vec![6]);
    }

    #[test]
    fn unseen_pages_between_idle_ones_go_before_clock_the_longest_idle_first() {
        // A shrinking prefix: 0..60 in use, 60..100 freed; the sample saw
        // 20 and 50 touched, 70 idle since tick 0, 90 since tick 1.
        let mut o = VictimOrder::new(0..100);
        o.armed(&[20, 50, 70]);
        o.collected(&[20, 50]);
        o.armed(&[90]);
        o.collected(&[]);
        let v = o.choose(|_| true, 32);
        // Tier 1: 70, 90. Tier 2: 51..70 and 71..90 lie between 50
        // (touched) or 70 and 90: only 71..90 has idle on both sides (age
        // 1, the newer); 91..100 has 90 alone (age 1). Oldest first, then
        // by address: 71..90, 91..100.
        let mut want = vec![70, 90];
        want.extend(71..90);
        want.extend(91..100);
        assert_eq!(want.len(), 30);
        assert_eq!(&v[..30], &want[..]);
        // Then CLOCK from page 0, which sweeps the part still in use.
        assert_eq!(&v[30..], &[0, 1]);
        // Evicted pages stay evidence: 80 is still between idle pages.
        o.evicted(&v);
        assert_eq!(o.choose(|p| p == 80 || p == 55, 1), vec![80]);
        // A refault of 90 makes it touched: 80 has touched evidence on
        // one side now, and goes to CLOCK like 55.
        o.touched([90]);
        assert!(o.idle_neighbourhood(&|p| p == 80).is_empty());
    }

    #[test]
    fn clock_spares_referenced_pages_once_and_moves_on() {
        let mut o = VictimOrder::new(10..20);
        // 11 and 13 were touched (say, refaulted): referenced.
        o.touched([11, 13]);
        let resident = |p: RamPage| p != 12;
        // Hand at 10: 10 goes, 11 loses its bit, 12 is not resident, 13
        // loses its bit, 14 goes.
        assert_eq!(o.choose(resident, 2), vec![10, 14]);
        // The hand continues after 14.
        assert_eq!(o.choose(resident, 3), vec![15, 16, 17]);
        // Wraps around: 18, 19, then 10, 11 (its reference was cleared).
        assert_eq!(o.choose(resident, 4), vec![18, 19, 10, 11]);
    }

    #[test]
    fn idle_tier_then_clock_and_evicted_pages_leave_the_order() {
        let mut o = VictimOrder::new(0..8);
        o.armed(&[3, 4]);
        o.collected(&[4]);
        // 3 is idle; 4 touched. Hand from 0: 0, 1 go after 3.
        assert_eq!(o.choose(|_| true, 3), vec![3, 0, 1]);
        o.evicted(&[3, 0, 1]);
        assert_eq!(o.known_idle(), 0);
        // Everything referenced: the first revolution only clears.
        o.touched(0..8);
        assert_eq!(o.choose(|p| p >= 2, 2), vec![2, 3]);
        // Asking for more than there is returns what there is.
        let mut small = VictimOrder::new(0..3);
        assert_eq!(small.choose(|_| true, 10), vec![0, 1, 2]);
    }
}
