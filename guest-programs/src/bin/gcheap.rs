//! gcheap: a garbage-collected heap under allocation churn, with a
//! stop-the-world mark-sweep whenever it runs out of free objects. The
//! heap is `S` objects of 64 bytes (a header, one reference, six words of
//! payload) that fill `--wss` with a root table of `S/4` references.
//!
//! 1. (phase 0) threads every object on the free list;
//! 2. (phase 1) mutates: each allocation pops the free list (in address
//!    order after a sweep), fills the payload, reads a random root's
//!    object and, with probability 1/2 and if that object references
//!    nothing, makes the new object reference it; then the new object
//!    replaces a random root, and what that root held may become garbage;
//! 3. (phase 2) when the free list is empty, marks every object a root
//!    reaches (roots reach depth 2 at most, so at most half the heap is
//!    live and a collection frees at least half);
//! 4. (phase 3) sweeps the whole heap from the top down, clearing marks
//!    and threading every unmarked object on a new free list.
//!
//! The guest panics if a sweep's free and marked objects do not add up to
//! the heap, or a collection frees less than half. One operation is one
//! allocation (mark and sweep count none: they are the pause). Results:
//! `collections`, `live_objects` and `freed_objects` (of the last one),
//! `heap_objects` (`S`).
//!
//! Params: only the common ones (`ops`, `rate`).
//!
//! True WSS per interval: during mutation, the pages of the free objects
//! handed out (a moving front) plus the root table and the live objects
//! read at random; an interval with a collection, the whole heap (the
//! sweep reads and writes every header) and the root table.
#![no_std]
#![no_main]

use wss_guest::array::pages_for;
use wss_guest::{Array, Ctx};
use wss_guest_programs::{Count, fold, for_each, marked_checksum, steps};

wss_guest::entry!(main);

/// Words per object: header, reference, payload.
const OBJECT_WORDS: usize = 8;
const HEADER: usize = 0;
const REF: usize = 1;
const PAYLOAD: usize = 2;
/// Header bits; a free object's header holds the next free object plus
/// one (0: the end of the list).
const ALLOCATED: u64 = 1 << 63;
const MARKED: u64 = 1 << 62;

/// Pages of the heap and root table for `objects` objects.
fn pages(objects: usize) -> usize {
    pages_for::<u64>(objects * OBJECT_WORDS) + pages_for::<u64>(objects / 4)
}

struct Heap {
    words: Array<u64>,
    roots: Array<u64>,
    /// First free object plus one (0: none).
    free: u64,
}

impl Heap {
    fn word(&self, object: usize, word: usize) -> u64 {
        self.words.get(object * OBJECT_WORDS + word)
    }

    fn set(&self, object: usize, word: usize, value: u64) {
        self.words.set(object * OBJECT_WORDS + word, value);
    }

    /// Marks `object` (plus one; 0 is null) if it is not yet; true if
    /// this call marked it.
    fn mark(&self, object: u64) -> bool {
        if object == 0 {
            return false;
        }
        let o = object as usize - 1;
        let h = self.word(o, HEADER);
        if h & MARKED != 0 {
            return false;
        }
        self.set(o, HEADER, h | MARKED);
        true
    }
}

fn main(g: &mut Ctx) -> u64 {
    let wss_pages = g.wss_pages();
    let mut objects = wss_pages * 4096 / (OBJECT_WORDS * 8 + 2);
    while objects > 8 && pages(objects) > wss_pages {
        objects -= objects / 256 + 1;
    }
    assert!(
        objects >= 8 && pages(objects) <= wss_pages,
        "gcheap: --wss must be at least 8K"
    );
    let mut heap = Heap {
        words: g.alloc_array(objects * OBJECT_WORDS),
        roots: g.alloc_array(objects / 4),
        free: 0,
    };
    let nroots = objects as u64 / 4;
    g.set_op_name("allocations");
    g.name_user(0, "collections");
    g.name_user(1, "live_objects");
    g.name_user(2, "freed_objects");
    g.name_user(3, "heap_objects");
    g.set_user(3, objects as u64);

    g.announce_phase(0);
    let mut ok = for_each(g, Count::Work, objects, |_, i| {
        let o = objects - 1 - i;
        heap.set(o, HEADER, heap.free);
        heap.free = o as u64 + 1;
    });
    let mut collections = 0u64;
    let mut seen = 0u64;
    while ok {
        g.announce_phase(1);
        ok = steps(g, Count::Ops, |g| {
            if heap.free == 0 {
                return false;
            }
            let o = heap.free as usize - 1;
            heap.free = heap.word(o, HEADER);
            heap.set(o, HEADER, ALLOCATED);
            let stamp = g.ops();
            for w in PAYLOAD..OBJECT_WORDS {
                heap.set(o, w, stamp ^ w as u64);
            }
            let other = heap.roots.get(g.rng.below(nroots) as usize);
            let mut reference = 0;
            if other != 0 {
                let y = other as usize - 1;
                seen = fold(seen, heap.word(y, PAYLOAD));
                if heap.word(y, REF) == 0 && g.rng.below(2) == 0 {
                    reference = other;
                }
            }
            heap.set(o, REF, reference);
            heap.roots.set(g.rng.below(nroots) as usize, o as u64 + 1);
            true
        });
        if !ok {
            break;
        }
        g.announce_phase(2);
        let mut live = 0u64;
        ok = for_each(g, Count::Work, nroots as usize, |_, k| {
            let root = heap.roots.get(k);
            if heap.mark(root) {
                live += 1;
                if heap.mark(heap.word(root as usize - 1, REF)) {
                    live += 1;
                }
            }
        });
        if !ok {
            break;
        }
        g.announce_phase(3);
        let (mut marked, mut freed, mut free_len) = (0u64, 0u64, 0u64);
        ok = for_each(g, Count::Work, objects, |_, i| {
            let o = objects - 1 - i;
            let h = heap.word(o, HEADER);
            if h & MARKED != 0 {
                heap.set(o, HEADER, h & !MARKED);
                marked += 1;
                return;
            }
            if h & ALLOCATED != 0 {
                freed += 1;
            }
            heap.set(o, HEADER, heap.free);
            heap.free = o as u64 + 1;
            free_len += 1;
        });
        if !ok {
            break;
        }
        assert!(
            marked == live && marked + free_len == objects as u64,
            "gcheap: sweep found {marked} marked and {free_len} free of {objects}, mark {live}"
        );
        assert!(
            free_len * 2 >= objects as u64,
            "gcheap: a collection left only {free_len} of {objects} objects free"
        );
        collections += 1;
        g.set_user(0, collections);
        g.set_user(1, live);
        g.set_user(2, freed);
    }
    fold(
        fold(seen, collections),
        fold(
            marked_checksum(heap.words.region()),
            marked_checksum(heap.roots.region()),
        ),
    )
}
