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
//! - `slowdown` (slowdown.rs): the guest's slowdown per tracker at one
//!   sampling setting, over alternating rounds.
//! - `placement` (placement.rs): a uffd-tracked touch with the vCPU and its
//!   handler on one CPU against both left to the scheduler.
//! - `residency` (residency.rs): finding guest RAM's resident pages with
//!   `mincore` against the uffd tracker's own set.
//!
//! Each reports the host's load around it (load.rs).

pub mod arming;
mod concurrent;
mod floor;
pub mod load;
pub mod native;
pub mod overcommit;
pub mod placement;
mod realtime;
pub mod residency;
pub mod slowdown;
pub mod trackers;

pub use native::{NativeResult, NativeRound, native};
pub use trackers::{BootCost, Repetition, TrackerCost, TrackersResult, trackers};

pub use crate::analysis::stats::median;

use crate::calibrate::ProbeError;
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
    #[error("the benchmark run of {what} failed")]
    RunEnded {
        what: String,
        #[source]
        source: crate::run::RunFailure,
    },
    #[error("cannot allocate {0} bytes for the host kernel")]
    Alloc(u64),
    #[error("--pages must be at least {min} (got {got}): one of each of the probe's page classes")]
    TooFewPages { got: u64, min: u64 },
    #[error("--rounds must be at least 1")]
    NoRounds,
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot read a benchmark run's time series back")]
    Report(#[from] crate::report::ReportError),
    #[error("cannot lay out guest RAM")]
    Layout(#[source] crate::vmm::layout::LayoutError),
    #[error("cannot set up guest RAM")]
    Memory(#[source] crate::vmm::memory::MemoryError),
    #[error(transparent)]
    Track(crate::track::TrackError),
    #[error("cannot find the resident pages with mincore")]
    Residency(#[source] std::io::Error),
    #[error("the uffd tracker holds {tracker} resident data pages where mincore finds {mincore}")]
    ResidencyDiffers { tracker: u64, mincore: u64 },
}

pub use crate::analysis::stats::Spread;
