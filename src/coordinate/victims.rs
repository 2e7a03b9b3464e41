//! Which resident pages reclaim evicts first: the coldest, judged from
//! what the sampler and the uffd handler saw, never from the guest's
//! reported truth (that is only for scoring).
//!
//! Two tiers:
//!
//! 1. **Known idle, the longest first.** A page the estimator armed and
//!    the guest left untouched until collect was idle for that whole tick.
//!    It stays *known idle* until a touch of it is seen; its age is the
//!    tick of that first untouched observation, and the oldest go first.
//!    Under the uffd tracker a touch of such a page is seen: collect leaves
//!    untouched pages unmapped (lazily), so their next touch is a fault the
//!    handler reports. Once the tracker collects eagerly, a later touch is
//!    missed until the page is armed again, and the age is an upper bound.
//! 2. **Then by the newest evidence around each page.** Guest memory is
//!    used in runs of pages (heaps, arrays, the prefix a ramp shrinks: the
//!    assumption DAMON's regions make), so a sample of a few hundred pages
//!    speaks for the thousands between them. A page's neighbourhood is
//!    every page within the last tick's sample spacing on each side
//!    (resident data pages over pages armed: about two of that tick's
//!    samples), itself included, and the newest evidence in it decides.
//!    The evidence is of two kinds: a touch seen in a tick (a tracked
//!    touch, or any fault the handler resolved: first touches, refaults of
//!    evicted pages, lazy refaults), and a page *watched idle*, one known
//!    idle or evicted and not touched since, whose next touch would have
//!    been seen, so that it is idle through the last tick. A watched idle
//!    page outranks a touch before the last tick, and a touch in the last
//!    tick outranks it. Pages whose neighbourhood is idle go first, then
//!    the rest; in each the stalest newest touch first, then the stalest
//!    touch of the page's own (none is stalest), and among equals in
//!    address order from where the last choice stopped.
//!
//!    Why the newest evidence in a reach, not the nearest seen page's:
//!    the handler sees every first touch, so almost every resident page
//!    has a touch of its own, and its nearest seen neighbours are the
//!    pages beside it, first touched with it. A ramp that shrinks back to
//!    its prefix then looks stalest exactly where it is still in use (the
//!    prefix was touched first) and the sample's fresh touches there
//!    reach no further than one page. At a33b49c (`make coordinate`, under
//!    `wss`) that evicted most of consume-one's vm1 floor once it had
//!    shrunk: 1,239 of its 1,638 pages came back in one interval; and
//!    consume-all's four VMs refaulted 34,972 pages a run. An evicted page
//!    used to keep its old evidence too: now it is watched idle until it
//!    refaults.
//!
//! No page is unmapped only to learn whether it is touched (software
//! reference bits): on this host such a probe costs the guest a fault of
//! about what a refault costs, so the sample the estimator pays for
//! anyway is the reference information.
//!
//! With exhaustive sampling every untouched data page is known idle at
//! every tick, so tier 1 is the exact least-recently-used order at tick
//! granularity; with a sample of a few hundred pages tier 1 is short and
//! tier 2 decides most victims from the evidence around them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;

use crate::track::RamPage;

/// What was last seen of a page: watched idle (untouched, and a touch
/// would have been seen, so idle through the last tick), or touched in
/// the given tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    WatchedIdle,
    Touched(u64),
}

/// The victim order of one VM's data pages. See the module comment.
pub struct VictimOrder {
    data: Range<RamPage>,
    /// Known-idle pages and the tick they were first seen untouched at.
    idle_since: HashMap<RamPage, u64>,
    /// The last state seen of every page ever seen, evicted or not: the
    /// evidence the neighbourhood tier reads.
    last_seen: BTreeMap<RamPage, Seen>,
    /// Where the neighbourhood tier starts among pages of equal evidence:
    /// past its last victim, so that equals take turns.
    hand: RamPage,
    /// Arm/collect cycles seen so far: the tick that is open.
    tick: u64,
    /// The pages armed in the current tick.
    armed: Vec<RamPage>,
    /// How many data pages the last tick armed: the sample's density,
    /// which sets how far a page's neighbourhood reaches.
    last_armed: u64,
}

/// The neighbourhood tier's sort key of one page (smaller goes first):
/// whether the newest evidence around it is a touch rather than a page
/// watched idle, how fresh the newest touch around it is, and how fresh
/// its own (freshness: 0 for none, else one past the touch's tick).
type EvidenceKey = (bool, u64, u64);

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
            last_armed: 0,
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
        let mut armed = 0;
        for p in std::mem::take(&mut self.armed) {
            if !self.data.contains(&p) {
                continue;
            }
            armed += 1;
            if touched.binary_search(&p).is_ok() {
                self.touch(p, self.tick);
            } else {
                self.idle_since.entry(p).or_insert(self.tick);
                self.last_seen.insert(p, Seen::WatchedIdle);
            }
        }
        self.last_armed = armed;
        self.tick += 1;
    }

    /// The last tick collected (0 before the first): the tick that the
    /// faults reported at its boundary happened in.
    fn last_tick(&self) -> u64 {
        self.tick.saturating_sub(1)
    }

    /// A touch of each of `pages` was seen in the tick just collected (a
    /// fault the handler resolved).
    pub fn touched(&mut self, pages: impl IntoIterator<Item = RamPage>) {
        let tick = self.last_tick();
        for p in pages {
            if self.data.contains(&p) {
                self.touch(p, tick);
            }
        }
    }

    fn touch(&mut self, p: RamPage, tick: u64) {
        self.idle_since.remove(&p);
        self.last_seen.insert(p, Seen::Touched(tick));
    }

    /// `pages` left memory: they are no longer candidates, and the guest's
    /// next touch of one is a refault the handler reports, so until then
    /// each is a page watched idle, evidence for its neighbours.
    pub fn evicted(&mut self, pages: &[RamPage]) {
        for &p in pages {
            self.idle_since.remove(&p);
            if self.data.contains(&p) {
                self.last_seen.insert(p, Seen::WatchedIdle);
            }
        }
    }

    /// Pages currently known idle.
    pub fn known_idle(&self) -> usize {
        self.idle_since.len()
    }

    /// How far a page's neighbourhood reaches on each side: the spacing
    /// of the last tick's sample among the `resident` data pages, so that
    /// a neighbourhood holds about two of its pages.
    fn reach(&self, resident: u64) -> u64 {
        if self.last_armed == 0 {
            0
        } else {
            resident.div_ceil(self.last_armed)
        }
    }

    /// Every data page's neighbourhood key, in address order: from the
    /// evidence within `reach` pages on each side (the page's own
    /// included). The newest evidence decides: a page watched idle has
    /// been untouched through the last tick, so it outranks any touch
    /// before that tick, and a touch in the last tick outranks it.
    fn neighbourhood_keys(&self, reach: u64) -> Vec<EvidenceKey> {
        let seen: Vec<(RamPage, Seen)> = self
            .last_seen
            .range(self.data.clone())
            .map(|(&p, &s)| (p, s))
            .collect();
        let last = self.last_tick();
        let mut keys = Vec::with_capacity((self.data.end - self.data.start) as usize);
        // The window's touches as a monotonic queue of (page, freshness),
        // the freshest at the front, so that it can leave by the front
        // when the window passes it; and the window's count of idle pages.
        let mut touches: VecDeque<(RamPage, u64)> = VecDeque::new();
        let mut idle = 0usize;
        let (mut next_in, mut next_out, mut own) = (0usize, 0usize, 0usize);
        for p in self.data.clone() {
            while let Some(&(q, s)) = seen.get(next_in) {
                if q > p.saturating_add(reach) {
                    break;
                }
                match s {
                    Seen::WatchedIdle => idle += 1,
                    Seen::Touched(t) => {
                        while touches.back().is_some_and(|&(_, f)| f <= t + 1) {
                            touches.pop_back();
                        }
                        touches.push_back((q, t + 1));
                    }
                }
                next_in += 1;
            }
            while let Some(&(q, s)) = seen.get(next_out) {
                if q.saturating_add(reach) >= p {
                    break;
                }
                if s == Seen::WatchedIdle {
                    idle -= 1;
                }
                next_out += 1;
            }
            while touches
                .front()
                .is_some_and(|&(q, _)| q.saturating_add(reach) < p)
            {
                touches.pop_front();
            }
            while seen.get(own).is_some_and(|&(q, _)| q < p) {
                own += 1;
            }
            let own_fresh = match seen.get(own) {
                Some(&(q, Seen::Touched(t))) if q == p => t + 1,
                _ => 0,
            };
            let fresh = touches.front().map_or(0, |&(_, f)| f);
            keys.push((idle == 0 || fresh > last, fresh, own_fresh));
        }
        keys
    }

    /// The neighbourhood tier: up to `n` of the resident data pages not
    /// known idle nor `taken`, by [`EvidenceKey`]; among equals in address
    /// order from the hand. It runs inside the boundary hold, so only the
    /// `n` chosen are sorted.
    fn by_neighbourhood(
        &self,
        resident: &impl Fn(RamPage) -> bool,
        taken: &HashSet<RamPage>,
        n: usize,
    ) -> Vec<RamPage> {
        let count = self.data.clone().filter(|&p| resident(p)).count() as u64;
        let keys = self.neighbourhood_keys(self.reach(count));
        let mut out: Vec<(EvidenceKey, RamPage)> = self
            .data
            .clone()
            .zip(keys)
            .filter(|&(p, _)| {
                resident(p) && !self.idle_since.contains_key(&p) && !taken.contains(&p)
            })
            .map(|(p, k)| (k, p))
            .collect();
        let len = self.data.end - self.data.start;
        let from_hand = |p: RamPage| (p + len - self.hand) % len.max(1);
        let order = |&(key, p): &(EvidenceKey, RamPage)| (key, from_hand(p));
        if n < out.len() {
            out.select_nth_unstable_by_key(n, order);
            out.truncate(n);
        }
        out.sort_unstable_by_key(order);
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Up to `n` victims among the resident data pages, coldest first.
    /// `resident(p)` says whether data page `p` is resident. Moves the
    /// hand past the last victim of the neighbourhood tier.
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
        let taken: HashSet<RamPage> = victims.iter().copied().collect();
        let rest = self.by_neighbourhood(&resident, &taken, n - victims.len());
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

    /// One tick with `samples` armed and `touched` of them touched, then
    /// the faults the handler reported in it.
    fn tick(o: &mut VictimOrder, samples: &[RamPage], touched: &[RamPage], faults: Range<RamPage>) {
        o.armed(samples);
        o.collected(touched);
        o.touched(faults);
    }

    #[test]
    fn a_shrunk_prefix_keeps_the_part_in_use_though_it_was_first_touched_first() {
        // A ramp grew over 0..40 in tick 0 and 40..100 in tick 1, then
        // shrank back to a prefix: in tick 2 the sample found 10 and 30
        // touched, 60 and 80 idle. The first touches make 0..40 the
        // stalest evidence page by page; the sample says it is in use.
        let mut o = VictimOrder::new(0..100);
        tick(&mut o, &[], &[], 0..40);
        tick(&mut o, &[], &[], 40..100);
        tick(&mut o, &[10, 30, 60, 80], &[10, 30], 0..0);
        // 100 resident pages over 4 samples: a neighbourhood reaches 25
        // pages each way. 56..100 see only 60 or 80 (idle through tick 2)
        // and older touches; 0..=55 see 10 or 30, touched in tick 2.
        let v = o.choose(|_| true, 40);
        let mut want = vec![60, 80];
        want.extend((56..100).filter(|p| ![60, 80].contains(p)).take(38));
        assert_eq!(v, want);
        assert!(v.iter().all(|&p| p >= 56));
    }

    #[test]
    fn the_newest_evidence_within_reach_decides() {
        let mut o = VictimOrder::new(0..30);
        tick(&mut o, &[5], &[], 15..16);
        // Tick 0: 5 idle, 15 touched. A touch in the last tick outranks a
        // page watched idle; out of its reach, 5 alone speaks.
        let keys = o.neighbourhood_keys(10);
        assert_eq!((keys[0], keys[5]), ((false, 0, 0), (true, 1, 0)));
        assert_eq!((keys[4], keys[15]), ((false, 0, 0), (true, 1, 1)));
        assert_eq!(keys[25], (true, 1, 0));
        assert_eq!(keys[26], (true, 0, 0));
        // Tick 1: 5 still untouched, 15 not seen again: its touch is older
        // than the last tick, so 5's idleness is the newer evidence.
        tick(&mut o, &[5], &[], 0..0);
        let keys = o.neighbourhood_keys(10);
        assert_eq!(keys[10], (false, 1, 0));
        assert_eq!(keys[16], (true, 1, 0));
        // With no reach only a page's own evidence counts.
        let keys = o.neighbourhood_keys(0);
        assert_eq!(
            (keys[5], keys[6], keys[15]),
            ((false, 0, 0), (true, 0, 0), (true, 1, 1))
        );
    }

    #[test]
    fn evicted_pages_are_idle_evidence_until_they_refault() {
        let mut o = VictimOrder::new(0..30);
        tick(&mut o, &[], &[], 0..30);
        o.evicted(&[10]);
        tick(&mut o, &[], &[], 0..0);
        let keys = o.neighbourhood_keys(2);
        assert_eq!(
            &keys[7..14],
            &[
                (true, 1, 1),
                (false, 1, 1),
                (false, 1, 1),
                (false, 1, 0),
                (false, 1, 1),
                (false, 1, 1),
                (true, 1, 1)
            ]
        );
        // Its refault in tick 1 is a touch in the last tick.
        o.touched([10]);
        let keys = o.neighbourhood_keys(2);
        let touched = (true, 2, 1);
        assert_eq!(
            &keys[8..13],
            &[touched, touched, (true, 2, 2), touched, touched]
        );
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
