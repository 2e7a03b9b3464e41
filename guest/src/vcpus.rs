//! Programs on several vCPUs: every vCPU runs the program's `main` with a
//! context of its own (index, stack, PRNG stream, operation counter), in
//! the style of SPMD programs: they make the same allocations in the same
//! order, so they see the same regions, and split the work by index with
//! [`share`] and meet at [`Barrier`]s.
//!
//! The barrier lives in the runtime's own static memory (in the image,
//! below the data region): neither the truth nor any tracker counts it,
//! so waiting at a barrier never shows up in the working set.

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

/// Spins before a waiting vCPU offers the host CPU away (see
/// [`Barrier::wait`]): a barrier that is about to open costs no exit.
const SPINS_BEFORE_YIELD: u32 = 256;

/// Vcpu `vcpu`'s share of `len` items split as evenly as possible over
/// `vcpus` vCPUs, in index order: the shares are contiguous, cover
/// `0..len` exactly once, and differ in length by at most one.
pub fn share(len: usize, vcpu: usize, vcpus: usize) -> Range<usize> {
    let vcpus = vcpus.max(1);
    let vcpu = vcpu.min(vcpus - 1);
    let (base, extra) = (len / vcpus, len % vcpus);
    let start = vcpu * base + vcpu.min(extra);
    let end = start + base + usize::from(vcpu < extra);
    start..end
}

/// A reusable barrier for a fixed number of vCPUs (sense reversal: the
/// last to arrive resets the count and opens the next generation).
pub struct Barrier {
    arrived: AtomicU64,
    generation: AtomicU64,
}

impl Barrier {
    pub const fn new() -> Barrier {
        Barrier {
            arrived: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// Waits until `vcpus` vCPUs called `wait` in this generation. The
    /// waiting vCPUs spin, then call `relax` between checks (in a guest, a
    /// `yield` hypercall, so more vCPUs than host CPUs still make
    /// progress). Everything written before the call is visible to every
    /// vCPU after it.
    pub fn wait(&self, vcpus: u64, relax: impl Fn()) {
        if vcpus <= 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == vcpus {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation
                .store(generation.wrapping_add(1), Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                core::hint::spin_loop();
            } else {
                relax();
            }
        }
    }
}

impl Default for Barrier {
    fn default() -> Self {
        Self::new()
    }
}

/// The barrier of the running program: one per guest, shared by its vCPUs.
pub static BARRIER: Barrier = Barrier::new();

#[cfg(test)]
mod tests {
    extern crate std;

    use std::sync::Arc;
    use std::vec::Vec;

    use super::*;

    #[test]
    fn shares_cover_everything_once_in_order() {
        for len in [0usize, 1, 5, 8, 13, 1000] {
            for vcpus in 1..=8 {
                let shares: Vec<Range<usize>> = (0..vcpus).map(|v| share(len, v, vcpus)).collect();
                assert_eq!(shares[0].start, 0);
                assert_eq!(shares[vcpus - 1].end, len);
                for w in shares.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<usize> = shares.iter().map(|r| r.len()).collect();
                let (min, max) = (lens.iter().min(), lens.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
            }
        }
        assert_eq!(share(10, 0, 4), 0..3);
        assert_eq!(share(10, 1, 4), 3..6);
        assert_eq!(share(10, 2, 4), 6..8);
        assert_eq!(share(10, 3, 4), 8..10);
        assert_eq!(share(10, 0, 1), 0..10);
    }

    #[test]
    fn a_barrier_lets_nobody_through_until_all_arrive() {
        const VCPUS: u64 = 4;
        const ROUNDS: u64 = 200;
        let barrier = Arc::new(Barrier::new());
        let counts: Arc<Vec<AtomicU64>> = Arc::new((0..VCPUS).map(|_| AtomicU64::new(0)).collect());
        let threads: Vec<_> = (0..VCPUS as usize)
            .map(|me| {
                let (b, c) = (Arc::clone(&barrier), Arc::clone(&counts));
                std::thread::spawn(move || {
                    for round in 1..=ROUNDS {
                        c[me].store(round, Ordering::SeqCst);
                        b.wait(VCPUS, std::thread::yield_now);
                        // Past the barrier, everyone finished this round.
                        for other in c.iter() {
                            assert!(other.load(Ordering::SeqCst) >= round);
                        }
                        b.wait(VCPUS, std::thread::yield_now);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no thread passed a barrier early");
        }
        // One vCPU never waits.
        Barrier::new().wait(1, || panic!("nobody to wait for"));
    }
}
