//! `bench placement`: what a uffd-tracked touch costs the guest with its
//! vCPU and the fault handler on one CPU (`--cpu auto`) against the same
//! touch with both left to the scheduler (`--cpu free`); see
//! `vmm::affinity` for why it differs.
//!
//! Each repetition boots the `probe` guest twice through kvm-wss's own uffd
//! tracker, together then free, each for R tracked rounds over the same
//! region (calibrate.rs defines a round's cost). Unlike `bench trackers`,
//! the threads keep the normal scheduler: a run uses it, and placement
//! matters through it. Medians over rounds give each boot's cost; the ratio
//! is taken per repetition, so that drift of the host hits both sides of a
//! ratio alike.

use serde::Serialize;

use super::load::{HostLoad, LoadWatch};
use super::trackers::{Side, boot, check_probe};
use super::{BenchError, median};
use crate::analysis::stats::Spread;
use crate::track::TrackerKind;
use crate::vmm::affinity::Placement;
use crate::vmm::paging::GuestPageSize;

/// One repetition: a boot together, then one free.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlacementPair {
    /// Medians over the boot's tracked rounds, µs per tracked touch.
    pub together_us: f64,
    pub free_us: f64,
    /// `free_us / together_us`.
    pub ratio: f64,
}

impl PlacementPair {
    fn new(together: &[f64], free: &[f64]) -> PlacementPair {
        let together_us = median(together.iter().copied()).unwrap_or(f64::NAN);
        let free_us = median(free.iter().copied()).unwrap_or(f64::NAN);
        PlacementPair {
            together_us,
            free_us,
            ratio: free_us / together_us,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlacementResult {
    pub pages: u64,
    pub rounds: u64,
    pub guest_pages: GuestPageSize,
    /// Spreads over repetitions of the boots' medians.
    pub together_us_per_touch: Spread,
    pub free_us_per_touch: Spread,
    /// Spread over repetitions of free ÷ together.
    pub ratio: Spread,
    pub repetitions: Vec<PlacementPair>,
    pub load: HostLoad,
}

/// Runs `rounds` repetitions, each a boot together then a boot free, each
/// with `rounds` tracked rounds over `pages` pages.
pub fn placement(
    pages: u64,
    rounds: u64,
    guest_pages: GuestPageSize,
) -> Result<PlacementResult, BenchError> {
    check_probe(pages, rounds)?;
    let watch = LoadWatch::start();
    let mut reps = Vec::new();
    for rep in 0..rounds {
        let run = |placement: Placement| {
            log::info!(
                "bench placement: uffd {} repetition {}/{rounds}",
                placement.spelling(),
                rep + 1
            );
            boot(
                TrackerKind::Uffd,
                Side::KvmWss,
                pages,
                rounds,
                (guest_pages, placement),
            )
        };
        let together = run(Placement::Auto)?;
        let free = run(Placement::Free)?;
        reps.push(PlacementPair::new(
            &together.us_per_touch,
            &free.us_per_touch,
        ));
    }
    let load = watch.finish();
    let of = |f: fn(&PlacementPair) -> f64| Spread::of(&reps.iter().map(f).collect::<Vec<_>>());
    Ok(PlacementResult {
        pages,
        rounds,
        guest_pages,
        together_us_per_touch: of(|p| p.together_us),
        free_us_per_touch: of(|p| p.free_us),
        ratio: of(|p| p.ratio),
        repetitions: reps,
        load,
    })
}

/// The result as the README's table.
pub fn markdown(r: &PlacementResult) -> String {
    let cell = |s: &Spread, d: usize| {
        if s.median.is_finite() {
            format!("{:.d$} ({:.d$} to {:.d$})", s.median, s.min, s.max, d = d)
        } else {
            "–".into()
        }
    };
    format!(
        "| vCPU and uffd handler | µs per tracked touch |\n\
         |---|---|\n\
         | on one CPU (`--cpu auto`) | {} |\n\
         | left to the scheduler (`--cpu free`) | {} |\n\
         \n\
         Free ÷ together: {} per repetition. Medians over {} repetitions of {} tracked \
         rounds over {} pages (min to max in brackets), the two boots of each repetition \
         one after the other. {}\n",
        cell(&r.together_us_per_touch, 1),
        cell(&r.free_us_per_touch, 1),
        cell(&r.ratio, 2),
        r.rounds,
        r.rounds,
        r.pages,
        r.load.sentence(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_the_ratio_of_its_boots_medians() {
        let p = PlacementPair::new(&[30.0, 40.0, 35.0], &[70.0, 60.0, 80.0]);
        assert_eq!((p.together_us, p.free_us), (35.0, 70.0));
        assert_eq!(p.ratio, 2.0);
        assert!(PlacementPair::new(&[], &[1.0]).ratio.is_nan());
    }

    #[test]
    fn the_table_gives_both_placements_their_ratio_and_the_load() {
        let reps = vec![
            PlacementPair::new(&[30.0], &[60.0]),
            PlacementPair::new(&[40.0], &[60.0]),
        ];
        let r = PlacementResult {
            pages: 1024,
            rounds: 2,
            guest_pages: GuestPageSize::Size2M,
            together_us_per_touch: Spread::of(&[30.0, 40.0]),
            free_us_per_touch: Spread::of(&[60.0, 60.0]),
            ratio: Spread::of(&[2.0, 1.5]),
            repetitions: reps,
            load: HostLoad {
                cpus: 2,
                load_before: [0.5, 0.0, 0.0],
                load_after: [1.2, 0.0, 0.0],
                quiet: true,
            },
        };
        let md = markdown(&r);
        assert!(
            md.contains("| on one CPU (`--cpu auto`) | 35.0 (30.0 to 40.0) |"),
            "{md}"
        );
        assert!(md.contains("| 60.0 (60.0 to 60.0) |"), "{md}");
        assert!(md.contains("Free ÷ together: 1.75 (1.50 to 2.00)"), "{md}");
        assert!(md.contains("Load average 0.5 before, 1.2 after, on 2 CPUs: quiet."));
    }
}
