//! The guest's fast PRNG: xoshiro256++ seeded from the run's seed.

use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub struct Rng(Xoshiro256PlusPlus);

/// The seed of vCPU `vcpu`'s stream: the run's seed itself for vCPU 0 (so
/// a one-vCPU run draws what it always drew), a distinct odd-multiple
/// offset of it for the others.
pub fn stream_seed(seed: u64, vcpu: u64) -> u64 {
    seed ^ vcpu.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vcpu_has_its_own_stream_and_vcpu0_the_old_one() {
        assert_eq!(stream_seed(7, 0), 7);
        let seeds: [u64; 8] = core::array::from_fn(|v| stream_seed(7, v as u64));
        for (i, a) in seeds.iter().enumerate() {
            for b in &seeds[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let (mut a, mut b) = (Rng::new(stream_seed(7, 1)), Rng::new(stream_seed(7, 2)));
        assert_ne!(a.next_u64(), b.next_u64());
    }
}
