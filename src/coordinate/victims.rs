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
//! 3. **The stalest touch evidence for the rest.** Every seen touch (a
//!    tracked touch, any fault the handler resolved: first touches,
//!    refaults of evicted pages, lazy refaults) records its tick. A page is
//!    as fresh as the newest touch seen of it or of the nearest seen page on
//!    each side, and the stalest go first (address order from where the
//!    last choice stopped among equals). With a sample of a few hundred
//!    pages most pages have not been seen since long before a change, so
//!    this tier decides most victims right after one: a ramp that shrank
//!    leaves the part still in use among pages seen touched in the last
//!    ticks, the part it left among pages last seen touched before the
//!    shrink. It replaces CLOCK in address order, which swept the resident
//!    pages from the bottom whatever their neighbours said, and so took a
//!    shrunk ramp's remaining working set first: each VM's whole 1,638
//!    pages in one interval of consume-all under `wss` once the VMs'
//!    boot memory made the sample too thin for tier 2 to cover the shrink
//!    (`make coordinate`).
//!
//! No page is unmapped only to learn whether it is touched (software
//! reference bits): on this host such a probe costs the guest a fault of
//! about what a refault costs, so the sample the estimator pays for
//! anyway is the reference information.
//!
//! With exhaustive sampling every untouched data page is known idle at
//! every tick, so tier 1 is the exact least-recently-used order at tick
//! granularity; with a sample of a few hundred pages tier 1 is short and
//! tiers 2 and 3 decide most victims from the evidence around them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use crate::track::RamPage;

/// What was last seen of a page: untouched for a whole tick since the
/// given tick (and since), or touched in the given tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    IdleSince(u64),
    Touched(u64),
}

impl Seen {
    /// How fresh its touch evidence is: 0 for none (idle), else one past
    /// the tick of the touch.
    fn freshness(self) -> u64 {
        match self {
            Seen::IdleSince(_) => 0,
            Seen::Touched(t) => t + 1,
        }
    }
}

/// The victim order of one VM's data pages. See the module comment.
pub struct VictimOrder {
    data: Range<RamPage>,
    /// Known-idle pages and the tick they were first seen untouched at.
    idle_since: HashMap<RamPage, u64>,
    /// The last state seen of every page ever seen, evicted or not: the
    /// evidence tiers 2 and 3 read.
    last_seen: BTreeMap<RamPage, Seen>,
    /// Where tier 3 starts among pages of equal evidence: past its last
    /// victim, so that equals take turns.
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
        self.idle_since.remove(&p);
        self.last_seen.insert(p, Seen::Touched(self.tick));
    }

    /// `pages` left memory: they are no longer candidates, and when the
    /// guest touches them again that touch is seen. What was seen of them
    /// stays evidence for their neighbours.
    pub fn evicted(&mut self, pages: &[RamPage]) {
        for &p in pages {
            self.idle_since.remove(&p);
        }
    }

    /// Pages currently known idle.
    pub fn known_idle(&self) -> usize {
        self.idle_since.len()
    }

    /// Tier 2: the resident data pages never seen themselves whose nearest seen
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
            out.extend((from..to).filter(|&p| resident(p)).map(|p| (since, p)));
        }
        out
    }

    /// Tier 3: up to `n` of the resident data pages not known idle nor
    /// `taken`, the stalest touch evidence first (see [`Seen::freshness`]):
    /// a page's own and its nearest seen neighbours', the newest of them;
    /// among equals in address order from the hand. It runs inside the
    /// boundary hold, so only the `n` chosen are sorted.
    fn stalest_first(
        &self,
        resident: &impl Fn(RamPage) -> bool,
        taken: &HashSet<RamPage>,
        n: usize,
    ) -> Vec<RamPage> {
        let seen: Vec<(RamPage, u64)> = self
            .last_seen
            .range(self.data.clone())
            .map(|(&p, &s)| (p, s.freshness()))
            .collect();
        let fresh = |i: Option<usize>| i.and_then(|i| seen.get(i)).map_or(0, |&(_, f)| f);
        let mut out: Vec<(u64, RamPage)> = Vec::new();
        let mut push = |p: RamPage, key: u64| {
            if resident(p) && !self.idle_since.contains_key(&p) && !taken.contains(&p) {
                out.push((key, p));
            }
        };
        // The gap before each seen page (from the previous one, or the
        // data's start), then the page itself; then the gap after the last.
        let mut from = self.data.start;
        for (k, &(page, own)) in seen.iter().enumerate() {
            let left = fresh(k.checked_sub(1));
            for p in from..page {
                push(p, left.max(own));
            }
            push(page, left.max(own).max(fresh(Some(k + 1))));
            from = page + 1;
        }
        let last = fresh(seen.len().checked_sub(1));
        for p in from..self.data.end {
            push(p, last);
        }
        let len = self.data.end - self.data.start;
        let from_hand = |p: RamPage| (p + len - self.hand) % len.max(1);
        let order = |&(key, p): &(u64, RamPage)| (key, from_hand(p));
        if n < out.len() {
            out.select_nth_unstable_by_key(n, order);
            out.truncate(n);
        }
        out.sort_unstable_by_key(order);
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Up to `n` victims among the resident data pages, coldest first.
    /// `resident(p)` says whether data page `p` is resident. Moves the
    /// hand past the last victim of tier 3.
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
        let rest = self.stalest_first(&resident, &taken, n - victims.len());
        if let Some(&last) = rest.last() {
            self.hand = if last + 1 >= self.data.end {
                self.data.start
            } else {
                last + 1
            };
        }
        victims.extend(rest);
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
        // Then the rest, all last seen touched in tick 0 or next to such a
        // page: from page 0.
        assert_eq!(&v[30..], &[0, 1]);
        // Evicted pages stay evidence: 80 is still between idle pages.
        o.evicted(&v);
        assert_eq!(o.choose(|p| p == 80 || p == 55, 1), vec![80]);
        // A refault of 90 makes it touched: 80 has touched evidence on
        // one side now, and goes to tier 3 like 55.
        o.touched([90]);
        assert!(o.idle_neighbourhood(&|p| p == 80).is_empty());
    }

    #[test]
    fn the_rest_go_stalest_touch_evidence_first_and_equals_take_turns() {
        // A ramp that shrank to 0..40: 50, 70 and 90 were last seen
        // touched in tick 0, before the shrink; 10 and 30 in tick 3.
        let mut o = VictimOrder::new(0..100);
        o.armed(&[50, 70, 90]);
        o.collected(&[50, 70, 90]);
        for _ in 0..2 {
            o.armed(&[]);
            o.collected(&[]);
        }
        o.armed(&[10, 30]);
        o.collected(&[10, 30]);
        // 51..100 have tick-0 evidence only; 0..=50 are next to tick 3's.
        let mut v = o.choose(|_| true, 49);
        v.sort_unstable();
        assert_eq!(v, (51..100).collect::<Vec<_>>());
        // Then the part in use, from where the last choice stopped (past
        // 99: page 0), and the next choice goes on from there.
        let left = |p: RamPage| p <= 50;
        assert_eq!(o.choose(left, 3), vec![0, 1, 2]);
        assert_eq!(o.choose(left, 2), vec![3, 4]);
        // A touch seen makes a page and its neighbourhood fresh: 20 is
        // touched in tick 4, so 11..30 go after 31..=50 (tick 3).
        o.touched([20]);
        let mut v = o.choose(|p| (11..=50).contains(&p), 20);
        v.sort_unstable();
        assert_eq!(v, (31..=50).collect::<Vec<_>>());
    }

    #[test]
    fn idle_tiers_then_the_rest_and_evicted_pages_leave_the_order() {
        let mut o = VictimOrder::new(0..8);
        o.armed(&[3, 4]);
        o.collected(&[4]);
        // 3 is idle; 4 touched. Hand from 0: 0, 1 go after 3.
        assert_eq!(o.choose(|_| true, 3), vec![3, 0, 1]);
        o.evicted(&[3, 0, 1]);
        assert_eq!(o.known_idle(), 0);
        // Everything touched alike: address order from the hand.
        o.touched(0..8);
        assert_eq!(o.choose(|p| p >= 2, 2), vec![2, 3]);
        // Asking for more than there is returns what there is.
        let mut small = VictimOrder::new(0..3);
        assert_eq!(small.choose(|_| true, 10), vec![0, 1, 2]);
    }
}
