//! A monotonic clock on the TSC, at the frequency the VMM measured.

/// Reads the time-stamp counter. `rdtsc` runs natively at CPL 3.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; it is allowed at CPL 3 unless
    // CR4.TSD is set, which the VMM never does.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Converts TSC ticks to time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    tsc_hz: u64,
    start: u64,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new(tsc_hz: u64) -> Clock {
        Clock {
            tsc_hz: tsc_hz.max(1),
            start: rdtsc(),
        }
    }

    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// Nanoseconds since the clock was made.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.ticks_to_ns(rdtsc().wrapping_sub(self.start))
    }

    /// Converts a TSC delta to nanoseconds.
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * 1_000_000_000) / self.tsc_hz as u128) as u64
    }

    /// Converts nanoseconds to TSC ticks.
    #[inline]
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        ((ns as u128 * self.tsc_hz as u128) / 1_000_000_000) as u64
    }
}
