//! The application-like guest programs (issue 12): for a fixed `ops`
//! budget each one's exhaustive tracking equals its truth in every full
//! interval under every tracker, its checksum and results do not depend on
//! the tracker, its phases come in the order of its algorithm, and the
//! invariant of its own structure holds.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ALL_TRACKERS, GuestOutcome, RunSpec, run};
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::run::RunEnd;
use kvm_wss::track::TrackerKind;

/// 4 MiB: 1024 pages, small enough that a run of each program under the
/// slowest tracker takes a second or two.
const WSS: u64 = 4 << 20;

/// Runs `guest` for exactly `ops` operations with `params` under every
/// tracker, estimating exhaustively, and checks that each run ends with a
/// clean exit after exactly `ops`, that in every full interval the
/// tracker saw exactly the truth (written pages for dirty-log), and that
/// the outcome is the same under every tracker. Returns it.
fn run_under_every_tracker(guest: &str, ops: u64, params: &[(&str, &str)]) -> GuestOutcome {
    let ops_text = ops.to_string();
    let mut all: Vec<(&str, &str)> = vec![("ops", &ops_text)];
    all.extend_from_slice(params);
    let mut first: Option<GuestOutcome> = None;
    for tracker in ALL_TRACKERS {
        let out = run(&RunSpec {
            wss: WSS,
            duration: Duration::from_secs(90),
            interval: Duration::from_millis(200),
            tracker,
            estimator: EstimatorKind::Exhaustive,
            params: &all,
            ..RunSpec::new(guest)
        }
        .config());
        assert!(
            matches!(out.end, RunEnd::GuestExit(0)),
            "{guest} {tracker:?}: {:?}",
            out.end
        );
        assert_eq!(out.summary.guest_ops, ops, "{guest} {tracker:?}");
        let full = out.rows.iter().filter(|r| r.full).count();
        assert!(full >= 1, "{guest} {tracker:?}: no full interval");
        if tracker != TrackerKind::None {
            assert_eq!(
                common::exhaustive_mismatches(&out, tracker),
                vec![],
                "{guest} {tracker:?}: (t, estimate, truth) where they differ"
            );
        }
        let outcome = GuestOutcome::of(&out);
        assert!(outcome.checksum.is_some(), "{guest} {tracker:?}");
        match &first {
            None => first = Some(outcome),
            Some(base) => assert_eq!(&outcome, base, "{guest} {tracker:?} vs untracked"),
        }
    }
    first.expect("at least one tracker")
}

fn starts_with(o: &GuestOutcome, markers: &[u64]) {
    assert!(
        o.markers.starts_with(markers),
        "phase markers {:?} do not start with {markers:?}",
        o.markers
    );
}

#[test]
fn extsort_sorts_and_is_exact_under_every_tracker() {
    if !common::kvm_available("extsort_sorts_and_is_exact_under_every_tracker") {
        return;
    }
    // Paced: unpaced and untracked, the 6M moves take about 0.13 s on an
    // idle host, less than one full 200 ms interval. Pacing changes no
    // result.
    let o = run_under_every_tracker("extsort", 6_000_000, &[("rate", "4000000")]);
    assert_eq!(o.op_name, "records moved");
    // 1024 pages: a buffer of 64 (32768 records, the run length) and two
    // areas of 480 (245760 records): 8 runs, merged 4 then 2 at a time.
    assert_eq!((o.result("runs"), o.result("merge_passes")), (8, 2));
    // A sort moves each record 5 times (generate, push, pop, two
    // merges); the guest checks each result sorted or panics.
    assert_eq!(o.result("sorts"), 6_000_000 / (5 * 245_760));
    starts_with(&o, &[0, 1, 2, 2, 3, 0, 1]);
}

#[test]
fn extsort_fanout_sets_the_merge_passes() {
    if !common::kvm_available("extsort_fanout_sets_the_merge_passes") {
        return;
    }
    let out = run(&RunSpec {
        wss: WSS,
        duration: Duration::from_secs(60),
        params: &[("ops", "1500000"), ("fanout", "2")],
        ..RunSpec::new("extsort")
    }
    .config());
    assert!(matches!(out.end, RunEnd::GuestExit(0)), "{:?}", out.end);
    let passes = out
        .summary
        .guest_results
        .iter()
        .find(|r| r.name == "merge_passes");
    // 8 runs, merged 2 at a time: 3 passes; a sort then moves each
    // record 6 times, so 1.5M operations complete one sort.
    assert_eq!(passes.map(|r| r.value), Some(3));
}

#[test]
fn pagerank_ranks_sum_to_one_and_are_exact_under_every_tracker() {
    if !common::kvm_available("pagerank_ranks_sum_to_one_and_are_exact_under_every_tracker") {
        return;
    }
    let o = run_under_every_tracker("pagerank", 80_000_000, &[]);
    assert_eq!(o.op_name, "edges");
    assert!(o.result("iterations") >= 10, "{:?}", o.results);
    let sum = o.result("rank_sum_e9");
    assert!(
        sum.abs_diff(1_000_000_000) <= 1_000,
        "ranks sum to {sum}e-9"
    );
    starts_with(&o, &[0, 1, 2, 1, 2]);
}

#[test]
fn hashjoin_matches_what_the_generator_implies_under_every_tracker() {
    if !common::kvm_available("hashjoin_matches_what_the_generator_implies_under_every_tracker") {
        return;
    }
    let o = run_under_every_tracker("hashjoin", 30_000_000, &[("match_frac", "0.25")]);
    assert_eq!(o.op_name, "rows");
    assert!(o.result("joins") >= 1, "{:?}", o.results);
    let (matches, n) = (o.result("matches"), o.result("build_rows"));
    assert_eq!(matches, o.result("expected_matches"));
    // A quarter of the 2n rows of S match: n/2, within 3 percent (the
    // binomial's standard deviation is under 0.5 percent of it here).
    assert!(
        matches.abs_diff(n / 2) < n / 2 * 3 / 100,
        "{matches} of {n}"
    );
    starts_with(&o, &[0, 1, 2, 3, 0]);
}

#[test]
fn stencil_conserves_heat_and_is_exact_under_every_tracker() {
    if !common::kvm_available("stencil_conserves_heat_and_is_exact_under_every_tracker") {
        return;
    }
    let ops = 40_000_000;
    let o = run_under_every_tracker("stencil", ops, &[("checkpoint", "4")]);
    assert_eq!(o.op_name, "cells");
    // 1024 pages: 341 rows of 512 cells per grid. One pass initialises,
    // the rest are sweeps, with a checkpoint (which panics unless the
    // heat is conserved) after every 4th.
    let cells = 341 * 512;
    let sweeps = ops / cells - 1;
    assert_eq!(o.result("sweeps"), sweeps);
    assert_eq!(o.result("checkpoints"), sweeps / 4);
    starts_with(&o, &[0, 1, 2, 1, 2]);
}

#[test]
fn gcheap_collects_and_is_exact_under_every_tracker() {
    if !common::kvm_available("gcheap_collects_and_is_exact_under_every_tracker") {
        return;
    }
    let ops = 10_000_000;
    let o = run_under_every_tracker("gcheap", ops, &[]);
    assert_eq!(o.op_name, "allocations");
    let heap = o.result("heap_objects");
    // A cycle allocates at most every object of the heap, and the first
    // exactly that.
    assert!(
        o.result("collections") >= 1_500_000 / heap,
        "{:?}",
        o.results
    );
    // Roots (a quarter of the heap) reach depth 2: at most half is live.
    let live = o.result("live_objects");
    assert!(live > 0 && live * 2 <= heap, "{live} live of {heap}");
    assert!(o.result("freed_objects") + live <= heap);
    starts_with(&o, &[0, 1, 2, 3, 1, 2, 3]);
}

#[test]
fn lsm_flushes_and_compacts_and_is_exact_under_every_tracker() {
    if !common::kvm_available("lsm_flushes_and_compacts_and_is_exact_under_every_tracker") {
        return;
    }
    let ops = 200_000;
    let o = run_under_every_tracker("lsm", ops, &[]);
    assert_eq!(o.op_name, "requests");
    let (flushes, compactions) = (o.result("flushes"), o.result("compactions"));
    assert!(compactions >= 1, "{:?}", o.results);
    assert_eq!(compactions, flushes / 4);
    // Half the requests are puts (write_ratio 0.5), within 2 percent.
    let puts = o.result("puts");
    assert!(puts.abs_diff(ops / 2) < ops / 50, "{puts} puts");
    assert!(o.result("get_hits") <= ops - puts);
    assert!(o.result("l1_entries") > 0);
    starts_with(&o, &[1, 2, 1, 2, 1, 2, 1, 2, 3, 1]);
}

#[test]
fn lrucache_evicts_one_per_miss_and_is_exact_under_every_tracker() {
    if !common::kvm_available("lrucache_evicts_one_per_miss_and_is_exact_under_every_tracker") {
        return;
    }
    let ops = 3_000_000;
    let o = run_under_every_tracker("lrucache", ops, &[]);
    assert_eq!(o.op_name, "requests");
    let (hits, misses) = (o.result("hits"), o.result("misses"));
    assert_eq!(hits + misses, ops);
    // The first `capacity` misses fill the cache; every later one evicts.
    let capacity = o.result("capacity");
    assert!(misses > capacity, "{:?}", o.results);
    assert_eq!(o.result("evictions"), misses - capacity);
    // Zipf(0.99) over 4x the objects cached: most requests hit.
    assert!(hits > misses, "{:?}", o.results);
    starts_with(&o, &[0, 1]);
}
