//! The guest's fast PRNG: xoshiro256++ seeded from the run's seed.

use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub struct Rng(Xoshiro256PlusPlus);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform integer in `[0, n)` (Lemire's multiply-shift; the bias is
    /// below 2^-40 for the page counts used here). `n` must be nonzero.
    #[inline(always)]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline(always)]
    pub fn chance(&mut self, p: Probability) -> bool {
        self.next_u64() < p.0
    }

    /// Access to the underlying generator, for `rand_distr` distributions.
    pub fn inner(&mut self) -> &mut Xoshiro256PlusPlus {
        &mut self.0
    }
}

/// A probability pre-scaled to compare against a raw `u64` draw.
#[derive(Clone, Copy, Debug)]
pub struct Probability(u64);

impl Probability {
    pub fn new(p: f64) -> Probability {
        if p >= 1.0 {
            Probability(u64::MAX)
        } else if p <= 0.0 {
            Probability(0)
        } else {
            Probability((p * 18_446_744_073_709_551_616.0) as u64)
        }
    }
}
