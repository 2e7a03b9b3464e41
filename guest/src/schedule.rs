//! The clock that time-driven programs follow, and why it is not always
//! the TSC.
//!
//! A paced run (`rate` > 0) takes its time from the operation count,
//! `op / rate`: a program that changes behaviour on this clock then depends
//! only on the seed and `ops`, even when tracking slows the guest below the
//! rate (the schedule then stretches in wall-clock time), so its checksum
//! is reproducible. An unpaced run follows the TSC.

use crate::clock::Clock;

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Operations per second; 0 when the run is not paced.
    rate: u64,
    clock: Clock,
}

impl Schedule {
    /// The schedule of a run paced at `rate` operations per second (0: not
    /// paced), on `clock` when unpaced. Programs get theirs from
    /// [`Ctx::schedule`](crate::Ctx::schedule).
    pub fn new(rate: u64, clock: Clock) -> Schedule {
        Schedule { rate, clock }
    }

    /// Whether the run is paced: its time is then its operation count, so
    /// a program must not wait for the time to pass, only work.
    pub fn paced(&self) -> bool {
        self.rate > 0
    }

    /// Nanoseconds into the run at operation `op`.
    pub fn now_ns(&self, op: u64) -> u64 {
        if self.rate > 0 {
            (op as u128 * 1_000_000_000 / self.rate as u128) as u64
        } else {
            self.clock.now_ns()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_schedule_follows_the_operation_count() {
        let s = Schedule::new(1_000_000, Clock::new(3_000_000_000));
        assert_eq!(s.now_ns(0), 0);
        assert_eq!(s.now_ns(1), 1_000);
        assert_eq!(s.now_ns(5_000_000), 5_000_000_000);
        // A week of operations at this rate does not overflow.
        assert_eq!(s.now_ns(604_800_000_000), 604_800_000_000_000);
    }
}
