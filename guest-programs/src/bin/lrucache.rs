//! lrucache: a web cache with least-recently-used eviction under a skewed
//! request stream. The cache holds `C` objects of 512 bytes, sized with
//! its index to fill `--wss` (536 bytes per object); requests name one of
//! `4C` objects, drawn by a Zipf distribution with exponent `theta` over
//! popularity ranks scattered across the object ids.
//!
//! Each request looks its object up in a hash index (open addressing,
//! linear probing, backward-shift deletion). A hit moves the entry to the
//! front of the LRU list (a doubly linked list in arrays) and reads the
//! object; a miss evicts the entry at the back once the cache is full,
//! writes the fetched object into it and puts it in front. Phase 0 while
//! the cache fills, phase 1 from the first eviction on. The guest panics
//! if a hit finds an entry holding another object or an object's bytes
//! are not the ones written for it.
//!
//! One operation is one request. Results: `hits`, `misses`, `evictions`
//! (always `misses - C` once full), `capacity` (`C`).
//!
//! Params: `theta` (default 0.99), the Zipf exponent, at least 0 (0 is
//! uniform).
//!
//! True WSS per interval: the index and list pages the requests reach (a
//! few percent of `--wss`, all of it for many requests) plus the objects
//! requested: the popular ones, which stay cached, and one evicted entry
//! written per miss.
#![no_std]
#![no_main]

use rand_distr::{Distribution, Zipf};
use wss_guest::array::pages_for;
use wss_guest::{Array, Ctx};
use wss_guest_programs::{Count, fold, marked_checksum, mix, scatter, steps};

wss_guest::entry!(main);

/// Words of an object's body.
const OBJECT_WORDS: usize = 64;
/// Bytes per cached object: body, key, two list links, two index slots.
const ENTRY_BYTES: usize = OBJECT_WORDS * 8 + 8 + 4 + 4 + 2 * 4;
/// The end of the LRU list.
const NIL: u32 = u32::MAX;

/// Pages of a cache of `c` objects.
fn pages(c: usize) -> usize {
    pages_for::<u64>(c * OBJECT_WORDS)
        + pages_for::<u64>(c)
        + 2 * pages_for::<u32>(c)
        + pages_for::<u32>(2 * c)
}

/// Word `w` of the body of object `key`, as the origin serves it.
fn body(key: u64, w: usize) -> u64 {
    mix(key ^ ((w as u64) << 48))
}

struct Cache {
    bodies: Array<u64>,
    keys: Array<u64>,
    prev: Array<u32>,
    next: Array<u32>,
    /// Entry plus one per slot; 0 is empty.
    index: Array<u32>,
    head: u32,
    tail: u32,
    /// Entries in use; they are `0..used`.
    used: usize,
}

impl Cache {
    fn home(&self, key: u64) -> usize {
        ((u128::from(mix(key)) * self.index.len() as u128) >> 64) as usize
    }

    fn step(&self, slot: usize) -> usize {
        if slot + 1 == self.index.len() {
            0
        } else {
            slot + 1
        }
    }

    /// The index slot that holds `key`, or the empty slot where it would go.
    fn find(&self, key: u64) -> (usize, Option<usize>) {
        let mut slot = self.home(key);
        loop {
            let e = self.index.get(slot);
            if e == 0 {
                return (slot, None);
            }
            if self.keys.get(e as usize - 1) == key {
                return (slot, Some(e as usize - 1));
            }
            slot = self.step(slot);
        }
    }

    /// Empties index slot `hole`, moving later entries of its probe run
    /// back so that every key stays reachable from its home slot.
    fn remove_slot(&self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = self.step(j);
            let e = self.index.get(j);
            if e == 0 {
                self.index.set(hole, 0);
                return;
            }
            let home = self.home(self.keys.get(e as usize - 1));
            // The entry at j stays if its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.index.set(hole, e);
                hole = j;
            }
        }
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev.get(e as usize), self.next.get(e as usize));
        if p == NIL {
            self.head = n;
        } else {
            self.next.set(p as usize, n);
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev.set(n as usize, p);
        }
    }

    fn push_front(&mut self, e: u32) {
        self.prev.set(e as usize, NIL);
        self.next.set(e as usize, self.head);
        if self.head == NIL {
            self.tail = e;
        } else {
            self.prev.set(self.head as usize, e);
        }
        self.head = e;
    }
}

fn main(g: &mut Ctx) -> u64 {
    let theta = g.param_f64_or("theta", 0.99);
    let wss_pages = g.wss_pages();
    let mut c = wss_pages * 4096 / ENTRY_BYTES;
    while c > 1 && pages(c) > wss_pages {
        c -= c / 256 + 1;
    }
    assert!(
        c >= 1 && pages(c) <= wss_pages,
        "lrucache: --wss must be at least 24K"
    );
    let objects = 4 * c as u64;
    let zipf =
        Zipf::new(objects as f64, theta).unwrap_or_else(|e| panic!("lrucache: theta={theta}: {e}"));
    let mut cache = Cache {
        bodies: g.alloc_array(c * OBJECT_WORDS),
        keys: g.alloc_array(c),
        prev: g.alloc_array(c),
        next: g.alloc_array(c),
        index: g.alloc_array(2 * c),
        head: NIL,
        tail: NIL,
        used: 0,
    };
    g.set_op_name("requests");
    for (slot, name) in ["hits", "misses", "evictions", "capacity"]
        .iter()
        .enumerate()
    {
        g.name_user(slot, name);
    }
    g.set_user(3, c as u64);
    let (mut hits, mut misses, mut evictions) = (0u64, 0u64, 0u64);
    let mut seen = 0u64;
    g.announce_phase(0);
    steps(g, Count::Ops, |g| {
        // Samples are whole numbers in [1, objects].
        let rank = (zipf.sample(g.rng.inner()) as u64).clamp(1, objects) - 1;
        let key = scatter(rank, objects);
        let (slot, found) = cache.find(key);
        if let Some(e) = found {
            hits += 1;
            cache.unlink(e as u32);
            cache.push_front(e as u32);
            let base = e * OBJECT_WORDS;
            for w in 0..OBJECT_WORDS {
                let v = cache.bodies.get(base + w);
                assert_eq!(v, body(key, w), "lrucache: entry {e} holds another object");
                seen = fold(seen, v);
            }
            g.set_user(0, hits);
            return true;
        }
        misses += 1;
        g.set_user(1, misses);
        let evict = cache.used == c;
        let e = if !evict {
            cache.used += 1;
            cache.used - 1
        } else {
            if evictions == 0 {
                g.announce_phase(1);
            }
            let victim = cache.tail;
            cache.unlink(victim);
            let (victim_slot, held) = cache.find(cache.keys.get(victim as usize));
            assert_eq!(
                held,
                Some(victim as usize),
                "lrucache: index lost entry {victim}"
            );
            cache.remove_slot(victim_slot);
            evictions += 1;
            g.set_user(2, evictions);
            victim as usize
        };
        // The eviction may have moved entries back over `slot`: look again.
        let slot = if evict { cache.find(key).0 } else { slot };
        let base = e * OBJECT_WORDS;
        for w in 0..OBJECT_WORDS {
            cache.bodies.set(base + w, body(key, w));
        }
        cache.keys.set(e, key);
        cache.index.set(slot, e as u32 + 1);
        cache.push_front(e as u32);
        true
    });
    [
        cache.bodies.region(),
        cache.keys.region(),
        cache.prev.region(),
        cache.next.region(),
        cache.index.region(),
    ]
    .iter()
    .fold(fold(seen, hits), |s, r| fold(s, marked_checksum(*r)))
}
