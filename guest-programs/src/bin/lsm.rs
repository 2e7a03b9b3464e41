//! lsm: a log-structured merge key-value store serving random puts and
//! gets. `--wss` holds (16 bytes per entry, key and value) a sorted
//! memtable of `M` entries, four level-0 runs of `M` entries, and two
//! areas for level 1 that compactions alternate between; keys are uniform
//! over as many keys as an area holds.
//!
//! - (phase 1) serves requests: a put (with the `write_ratio`
//!   probability) inserts into the memtable by binary search and a shift;
//!   a get looks in the memtable, then the level-0 runs newest first, then
//!   level 1, each by binary search;
//! - (phase 2) when the memtable is full, flushes it into the next
//!   level-0 run;
//! - (phase 3) when the fourth level-0 run is written, compacts: merges
//!   the four runs and level 1 into the other level-1 area, keeping the
//!   newest value of each key. The guest panics if the output is not
//!   strictly sorted.
//!
//! One operation is one request (flushes and compactions count none:
//! they are background work done inline). Results: `puts`, `get_hits`,
//! `flushes`, `compactions` (always `flushes / 4`), `l1_entries`.
//!
//! Params: only the common ones (`ops`, `write_ratio` as the share of
//! puts, `rate`).
//!
//! True WSS per interval: the memtable and the pages of level 0 and level
//! 1 that lookups reach (binary searches: the same few pages near the
//! middle of each run, and one page per lookup at the leaves) while
//! serving; an interval with a compaction, every level-0 page, the
//! current level-1 area read and the other written (up to all of
//! `--wss`).
#![no_std]
#![no_main]

use wss_guest::array::pages_for;
use wss_guest::{Array, Ctx};
use wss_guest_programs::{Count, fold, for_each, marked_checksum, steps};

wss_guest::entry!(main);

/// Level-0 runs before a compaction.
const L0_RUNS: usize = 4;

/// Sorted keys with their values.
#[derive(Clone, Copy)]
struct Table {
    keys: Array<u64>,
    values: Array<u64>,
}

impl Table {
    fn new(g: &mut Ctx, len: usize) -> Table {
        Table {
            keys: g.alloc_array(len),
            values: g.alloc_array(len),
        }
    }

    /// Where `key` is among entries `start..start + len`: `Ok(index)` if
    /// there, `Err(index)` where it would go otherwise.
    fn search(&self, start: usize, len: usize, key: u64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (start, start + len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.keys.get(mid);
            if k == key {
                return Ok(mid);
            }
            if k < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Err(lo)
    }

    fn set(&self, at: usize, key: u64, value: u64) {
        self.keys.set(at, key);
        self.values.set(at, value);
    }

    fn checksum(&self) -> u64 {
        fold(
            marked_checksum(self.keys.region()),
            marked_checksum(self.values.region()),
        )
    }
}

/// Pages for a memtable of `m` entries and level-1 areas of `c`.
fn pages(m: usize, c: usize) -> usize {
    2 * (pages_for::<u64>(m) + pages_for::<u64>(L0_RUNS * m) + 2 * pages_for::<u64>(c))
}

fn main(g: &mut Ctx) -> u64 {
    let wss_pages = g.wss_pages();
    let entries = wss_pages * 4096 / 16;
    let m = (entries / 64).clamp(16, 2048);
    let mut c = entries.saturating_sub((L0_RUNS + 1) * m) / 2;
    while c > 1 && pages(m, c) > wss_pages {
        c -= c / 256 + 1;
    }
    assert!(
        c > m && pages(m, c) <= wss_pages,
        "lsm: --wss must be at least 64K"
    );
    let memtable = Table::new(g, m);
    let l0 = Table::new(g, L0_RUNS * m);
    let mut l1 = Table::new(g, c);
    let mut spare = Table::new(g, c);
    let tables = [memtable, l0, l1, spare];
    let key_space = c as u64;
    g.set_op_name("requests");
    for (slot, name) in ["puts", "get_hits", "flushes", "compactions", "l1_entries"]
        .iter()
        .enumerate()
    {
        g.name_user(slot, name);
    }
    let (mut mem_len, mut l0_runs, mut l1_len) = (0usize, 0usize, 0usize);
    let (mut puts, mut hits, mut flushes, mut compactions) = (0u64, 0u64, 0u64, 0u64);
    let mut seen = 0u64;
    loop {
        g.announce_phase(1);
        // Serve until the memtable is full.
        if !steps(g, Count::Ops, |g| {
            if mem_len == m {
                return false;
            }
            let key = g.rng.below(key_space);
            if g.next_is_write() {
                let value = g.ops() + 1;
                match memtable.search(0, mem_len, key) {
                    Ok(at) => memtable.values.set(at, value),
                    Err(at) => {
                        memtable.keys.copy_within(at..mem_len, at + 1);
                        memtable.values.copy_within(at..mem_len, at + 1);
                        memtable.set(at, key, value);
                        mem_len += 1;
                    }
                }
                puts += 1;
                return true;
            }
            let found = match memtable.search(0, mem_len, key) {
                Ok(at) => Some(memtable.values.get(at)),
                Err(_) => (0..l0_runs)
                    .rev()
                    .find_map(|run| l0.search(run * m, m, key).ok())
                    .map(|at| l0.values.get(at))
                    .or_else(|| l1.search(0, l1_len, key).ok().map(|at| l1.values.get(at))),
            };
            if let Some(value) = found {
                hits += 1;
                seen = fold(seen, value);
            }
            true
        }) {
            break;
        }
        g.set_user(0, puts);
        g.set_user(1, hits);
        g.announce_phase(2);
        let base = l0_runs * m;
        if !for_each(g, Count::Work, m, |_, i| {
            l0.set(base + i, memtable.keys.get(i), memtable.values.get(i));
        }) {
            break;
        }
        mem_len = 0;
        l0_runs += 1;
        flushes += 1;
        g.set_user(2, flushes);
        if l0_runs < L0_RUNS {
            continue;
        }
        g.announce_phase(3);
        // Source 0 is level 1, the oldest; source r + 1 is level-0 run r.
        let mut pos = [0usize; L0_RUNS + 1];
        let mut end = [l1_len; L0_RUNS + 1];
        for r in 0..L0_RUNS {
            pos[r + 1] = r * m;
            end[r + 1] = (r + 1) * m;
        }
        let source = |s: usize| if s == 0 { l1 } else { l0 };
        let mut out = 0usize;
        if !steps(g, Count::Work, |_| {
            let mut least: Option<(u64, usize)> = None;
            for s in 0..=L0_RUNS {
                if pos[s] < end[s] {
                    let k = source(s).keys.get(pos[s]);
                    // Ties go to the later, newer source.
                    if least.is_none_or(|(lk, _)| k <= lk) {
                        least = Some((k, s));
                    }
                }
            }
            let Some((key, newest)) = least else {
                return false;
            };
            assert!(
                out == 0 || spare.keys.get(out - 1) < key,
                "lsm: compaction output is not strictly sorted at {out}"
            );
            spare.set(out, key, source(newest).values.get(pos[newest]));
            out += 1;
            for s in 0..=L0_RUNS {
                if pos[s] < end[s] && source(s).keys.get(pos[s]) == key {
                    pos[s] += 1;
                }
            }
            true
        }) {
            break;
        }
        (l1, spare) = (spare, l1);
        l1_len = out;
        l0_runs = 0;
        compactions += 1;
        g.set_user(3, compactions);
        g.set_user(4, l1_len as u64);
    }
    tables
        .iter()
        .fold(fold(seen, puts), |s, t| fold(s, t.checksum()))
}
