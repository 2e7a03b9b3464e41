//! hashjoin: an in-memory hash join, over and over: a build relation R of
//! `n` rows with distinct keys and a probe relation S of `2n` rows, sized
//! so that both and the hash table fill `--wss` (56 bytes per row of R).
//! Each join
//!
//! 1. (phase 0) generates R and S: R's keys are distinct by construction;
//!    each row of S copies the key of a random row of R with probability
//!    `match_frac`, and otherwise takes a key that is in no row of R, so
//!    the generator knows how many rows of S must match;
//! 2. (phase 1) clears the hash table (open addressing, linear probing,
//!    `2n` slots of key and row number);
//! 3. (phase 2) builds: inserts every row of R;
//! 4. (phase 3) probes: looks up every row of S and, on a match, reads the
//!    row of R it names and checks its key.
//!
//! The guest panics if the matches differ from what the generator implies.
//! One operation is one row generated, inserted or probed. Results:
//! `joins` (completed), `matches` and `expected_matches` (of the last one),
//! `build_rows` (`n`).
//!
//! Params: `match_frac` (default 0.5), in [0, 1].
//!
//! True WSS per interval: phase 0 writes R and S (3/7 of `--wss`); phase 1
//! writes the table (4/7); phase 2 reads R in order and the table at
//! random; phase 3 reads S in order, the table at random and R at random.
#![no_std]
#![no_main]

use wss_guest::array::pages_for;
use wss_guest::rng::Probability;
use wss_guest::{Array, Ctx};
use wss_guest_programs::{Count, fold, for_each, marked_checksum, mix};

wss_guest::entry!(main);

/// Bytes per row of R: its key (8), two rows of S (16), two table slots
/// of key and row number (32).
const ROW_BYTES: usize = 56;

/// Pages of the relations and the table for `n` rows of R.
fn pages(n: usize) -> usize {
    pages_for::<u64>(n) + pages_for::<u64>(2 * n) + 2 * pages_for::<u64>(2 * n)
}

/// The table slot where the probe for `key` starts, among `slots`.
fn home(key: u64, slots: usize) -> usize {
    ((u128::from(mix(key ^ 0x5bd1_e995)) * slots as u128) >> 64) as usize
}

fn main(g: &mut Ctx) -> u64 {
    let match_frac = g.param_f64_or("match_frac", 0.5);
    assert!(
        (0.0..=1.0).contains(&match_frac),
        "hashjoin: match_frac {match_frac} is not in [0, 1]"
    );
    let wss_pages = g.wss_pages();
    let mut n = wss_pages * 4096 / ROW_BYTES;
    while n > 1 && pages(n) > wss_pages {
        n -= n / 256 + 1;
    }
    assert!(
        pages(n) <= wss_pages,
        "hashjoin: --wss must be at least 16K"
    );
    let slots = 2 * n;
    let r: Array<u64> = g.alloc_array(n);
    let s: Array<u64> = g.alloc_array(2 * n);
    let keys: Array<u64> = g.alloc_array(slots);
    // Row number plus one; 0 marks an empty slot.
    let rows: Array<u64> = g.alloc_array(slots);
    g.set_op_name("rows");
    g.name_user(0, "joins");
    g.name_user(1, "matches");
    g.name_user(2, "expected_matches");
    g.name_user(3, "build_rows");
    g.set_user(3, n as u64);
    let matching = Probability::new(match_frac);
    let mut joins = 0u64;
    let mut seen = 0u64;
    loop {
        g.announce_phase(0);
        // Keys are mix(base + i): distinct for distinct i. R takes
        // i < n, keys in no row of R take i >= n.
        let base = g.rng.next_u64() >> 1;
        let mut expected = 0u64;
        if !for_each(g, Count::Ops, 3 * n, |g, i| {
            if i < n {
                r.set(i, mix(base + i as u64));
            } else if g.rng.chance(matching) {
                expected += 1;
                s.set(i - n, mix(base + g.rng.below(n as u64)));
            } else {
                s.set(i - n, mix(base + n as u64 + (g.rng.next_u64() >> 32)));
            }
        }) {
            break;
        }
        g.announce_phase(1);
        if !for_each(g, Count::Work, slots, |_, i| rows.set(i, 0)) {
            break;
        }
        g.announce_phase(2);
        if !for_each(g, Count::Ops, n, |_, i| {
            let key = r.get(i);
            let mut at = home(key, slots);
            while rows.get(at) != 0 {
                at = if at + 1 == slots { 0 } else { at + 1 };
            }
            keys.set(at, key);
            rows.set(at, i as u64 + 1);
        }) {
            break;
        }
        g.announce_phase(3);
        let mut matches = 0u64;
        if !for_each(g, Count::Ops, 2 * n, |_, j| {
            let key = s.get(j);
            let mut at = home(key, slots);
            loop {
                let row = rows.get(at);
                if row == 0 {
                    break;
                }
                if keys.get(at) == key {
                    assert_eq!(r.get(row as usize - 1), key, "hashjoin: slot {at}");
                    matches += 1;
                    seen = fold(seen, row);
                    break;
                }
                at = if at + 1 == slots { 0 } else { at + 1 };
            }
        }) {
            break;
        }
        assert_eq!(
            matches, expected,
            "hashjoin: probe found {matches} matches, the generator made {expected}"
        );
        joins += 1;
        g.set_user(0, joins);
        g.set_user(1, matches);
        g.set_user(2, expected);
    }
    [r, s, keys, rows].iter().fold(fold(seen, joins), |sum, a| {
        fold(sum, marked_checksum(a.region()))
    })
}
