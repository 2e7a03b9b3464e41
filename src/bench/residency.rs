//! `bench residency`: what it costs to learn which pages of guest RAM are
//! in memory, as reclaim and `follow`'s population ask at every boundary,
//! inside the hold: `mincore` over the RAM mapping against the set the
//! uffd tracker keeps as its handler fills holes (see `track::uffd`).
//!
//! No VM: this thread touches `--wss` of a `--mem` RAM through the
//! registered mapping, as a guest does through KVM, so each first touch is
//! a missing fault the tracker's handler fills. Then the two ways are
//! called alternately, one call of each per round, and each round's ratio
//! is taken from its own pair.

use std::time::Instant;

use serde::Serialize;
use wss_abi::{PAGE_SIZE, RAM_BASE};

use super::BenchError;
use super::load::{HostLoad, LoadWatch};
use crate::analysis::stats::Spread;
use crate::track::Tracker;
use crate::track::uffd::UffdTracker;
use crate::vmm::layout::Layout;
use crate::vmm::memory::GuestMemory;

#[derive(Debug, Clone, Serialize)]
pub struct ResidencyResult {
    pub mem_bytes: u64,
    pub wss_bytes: u64,
    /// Data pages resident, as both ways found them.
    pub resident_pages: u64,
    pub rounds: u64,
    /// Spreads over the rounds, µs per call.
    pub mincore_us: Spread,
    pub tracker_us: Spread,
    /// Spread over the rounds of mincore ÷ tracker.
    pub ratio: Spread,
    /// Calls of the tracker's set that it checked against `mincore` (the
    /// first and every 16th after): the rounds' maxima include them.
    pub tracker_checks: u64,
    pub load: HostLoad,
}

/// Touches the first `wss` bytes of data in a RAM of `mem` bytes, then
/// times `rounds` alternating pairs of calls.
pub fn residency(mem: u64, wss: u64, rounds: u64) -> Result<ResidencyResult, BenchError> {
    if rounds == 0 {
        return Err(BenchError::NoRounds);
    }
    let layout = Layout::new(mem, RAM_BASE + PAGE_SIZE, wss).map_err(BenchError::Layout)?;
    let memory = std::sync::Arc::new(GuestMemory::new(&layout).map_err(BenchError::Memory)?);
    let tracker = UffdTracker::new(&memory).map_err(BenchError::Track)?;
    let data = layout.data_page_range();
    let touched = (wss / PAGE_SIZE).min(data.end - data.start);
    for p in data.start..data.start + touched {
        memory
            .write(RAM_BASE + p * PAGE_SIZE, &[1])
            .map_err(BenchError::Memory)?;
    }
    let watch = LoadWatch::start();
    let (mut by_mincore, mut by_tracker, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut resident_pages = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let found = memory.resident_data().map_err(BenchError::Residency)?;
        let m = t0.elapsed().as_secs_f64() * 1e6;
        let t0 = Instant::now();
        let known = tracker.resident().map_err(BenchError::Track)?;
        let t = t0.elapsed().as_secs_f64() * 1e6;
        let known = known.map(|bits| memory.data_pages_among(&bits));
        let known = known.unwrap_or_default();
        if known != found {
            return Err(BenchError::ResidencyDiffers {
                tracker: known.len(),
                mincore: found.len(),
            });
        }
        resident_pages = found.len();
        by_mincore.push(m);
        by_tracker.push(t);
        ratios.push(m / t);
    }
    let load = watch.finish();
    Ok(ResidencyResult {
        mem_bytes: mem,
        wss_bytes: wss,
        resident_pages,
        rounds,
        mincore_us: Spread::of(&by_mincore),
        tracker_us: Spread::of(&by_tracker),
        ratio: Spread::of(&ratios),
        tracker_checks: tracker
            .stats()
            .counters
            .get("resident_checks")
            .copied()
            .unwrap_or(0),
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_find_the_touched_pages() {
        let r = match residency(4 << 20, 1 << 20, 20) {
            Ok(r) => r,
            Err(BenchError::Track(crate::track::TrackError::Setup {
                source: Some(e), ..
            })) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS)) => {
                eprintln!("skipping: userfaultfd for kernel faults is not permitted here: {e}");
                return;
            }
            Err(e) => panic!("bench residency: {}", crate::error_chain(&e)),
        };
        assert_eq!(r.resident_pages, 256);
        // The first call and the 17th were checked against mincore.
        assert_eq!(r.tracker_checks, 2);
        assert!(r.mincore_us.median > 0.0 && r.tracker_us.median > 0.0);
        assert_eq!(r.rounds, 20);
    }

    #[test]
    fn no_rounds_is_refused() {
        assert!(matches!(
            residency(4 << 20, 1 << 20, 0),
            Err(BenchError::NoRounds)
        ));
    }
}
