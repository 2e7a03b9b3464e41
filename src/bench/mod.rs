//! Benchmarks: commands that measure, side by side in one run, and print
//! JSON.
//!
//! - `native` (native.rs): the same memory-access kernel as a guest and as
//!   a host thread: what virtualization costs.
//! - `trackers` (trackers.rs): each tracker's cost per tracked touch through
//!   kvm-wss and through the floor (floor.rs), a minimal loop that drives
//!   the same kernel mechanism directly: what kvm-wss adds.
//! - `overcommit` (overcommit.rs): the VMM's cost per interval at growing
//!   `--mem`, up to past host memory: does it stay flat?

pub mod arming;
mod floor;
pub mod native;
pub mod overcommit;
mod realtime;
pub mod trackers;

pub use native::{NativeResult, NativeRound, native};
pub use trackers::{BootCost, Repetition, TrackerCost, TrackersResult, trackers};

use crate::track::TrackError;
use crate::vmm::machine::BootError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("the guest has no built-in program {0}")]
    NoGuest(&'static str),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("cannot start the vCPU thread")]
    Spawn(#[source] std::io::Error),
    #[error("a benchmark run failed")]
    Run(#[source] Box<crate::run::RunError>),
    #[error("the benchmark guest did not run: {0}")]
    Guest(String),
    #[error("the benchmark guest's vCPU failed")]
    Vcpu(#[source] crate::vmm::vcpu_thread::VcpuLoopError),
    #[error("the benchmark run at --mem {mem} failed")]
    RunFailed {
        mem: String,
        #[source]
        source: crate::run::RunFailure,
    },
    #[error("cannot allocate {0} bytes for the host kernel")]
    Alloc(u64),
    #[error("--pages must be at least {min} (got {got}): one of each of the probe's page classes")]
    TooFewPages { got: u64, min: u64 },
    #[error("--pages {0} is too large for guest memory")]
    TooManyPages(u64),
    #[error("--rounds must be at least 1")]
    NoRounds,
    #[error("the {side} {tracker} failed")]
    Mechanism {
        side: &'static str,
        tracker: &'static str,
        #[source]
        source: TrackError,
    },
    #[error("the {side} {tracker} caught no touch in round {round}, so it has no cost per touch")]
    NoTouches {
        side: &'static str,
        tracker: &'static str,
        round: usize,
    },
    #[error("the probe under the {side} {tracker} did not finish within {secs} s")]
    Timeout {
        side: &'static str,
        tracker: &'static str,
        secs: u64,
    },
    #[error("the probe under the {side} {tracker} failed")]
    ProbeFailed {
        side: &'static str,
        tracker: &'static str,
        #[source]
        source: crate::vmm::vcpu_thread::VcpuLoopError,
    },
    #[error("the probe under the {side} {tracker} ended badly: {end}")]
    ProbeEnd {
        side: &'static str,
        tracker: &'static str,
        end: String,
    },
}

/// Smallest, median and largest of a set of measurements; every field is
/// NaN for an empty set.
#[derive(Debug, Clone, Copy, serde::Serialize, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        Spread {
            min: values.iter().copied().fold(f64::NAN, f64::min),
            median: median(values.iter().copied()).unwrap_or(f64::NAN),
            max: values.iter().copied().fold(f64::NAN, f64::max),
        }
    }
}

/// The median (the mean of the two middle values for an even count), or
/// `None` for no values. NaNs sort last, as `f64::total_cmp` orders them.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median([]), None);
        assert_eq!(median([4.0]), Some(4.0));
        assert_eq!(median([9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median([9.0, 1.0, 5.0, 3.0]), Some(4.0));
        assert_eq!(median([2.0, 2.0, 100.0, -1.0, 2.0]), Some(2.0));
    }
}
