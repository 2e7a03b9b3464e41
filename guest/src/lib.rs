//! The kvm-wss guest runtime.
//!
//! Guest programs are freestanding x86-64 binaries that run at CPL 3 on an
//! identity map (see `wss_abi`). This crate gives them what a libc and a
//! kernel would: an entry point and stack, panic handling, hypercalls, a
//! clock, a PRNG, their parameters, and the memory API that records the truth
//! (which pages were read and written in each interval).
//!
//! Without the `rt` feature the crate also builds for a host process:
//! `kvm-wss bench native` runs the very same kernels there, truth marking
//! included, so that the guest/host ratio measures only what virtualization
//! costs.
#![no_std]

pub use wss_abi as abi;

pub mod array;
pub mod bounds;
pub mod clock;
pub mod ctx;
pub mod kernel;
pub mod math;
pub mod mem;
pub mod rng;
pub mod schedule;
pub mod vcpus;

#[cfg(feature = "rt")]
pub mod rt;

pub use array::{Array, Element};
pub use ctx::Ctx;
pub use mem::Region;
pub use rng::Rng;
pub use schedule::Schedule;
