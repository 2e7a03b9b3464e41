//! The application programs that use every vCPU (issue 12): `extsort`,
//! `pagerank` and `stencil` on 1 and 4 vCPUs under every tracker. Exhaustive tracking
//! must equal the truth in every full interval, and for a fixed `ops`
//! budget (which counts all vCPUs' operations together) the checksum,
//! results and phase markers must not depend on the tracker or on the
//! vCPU count.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ALL_TRACKERS, GuestOutcome, RunSpec, run};
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::run::RunEnd;
use kvm_wss::track::TrackerKind;

/// Runs `guest` with `params` (`ops` among them, and a `rate` that makes
/// every run last a few 200 ms intervals) on 1 and 4 vCPUs under every
/// tracker, estimating exhaustively; checks each run's end, op count,
/// vCPU count and exactness, and that all eight outcomes are the same.
fn same_on_one_and_four_vcpus(guest: &str, ops: u64, params: &[(&str, &str)]) -> GuestOutcome {
    let ops_text = ops.to_string();
    let mut all: Vec<(&str, &str)> = vec![("ops", &ops_text)];
    all.extend_from_slice(params);
    let mut first: Option<(String, GuestOutcome)> = None;
    let mut failures = Vec::new();
    for vcpus in [1, 4] {
        for tracker in ALL_TRACKERS {
            let what = format!("{guest} {} --vcpus {vcpus}", tracker.name());
            let out = run(&RunSpec {
                wss: 4 << 20,
                duration: Duration::from_secs(120),
                interval: Duration::from_millis(200),
                tracker,
                estimator: EstimatorKind::Exhaustive,
                params: &all,
                vcpus,
                ..RunSpec::new(guest)
            }
            .config());
            assert!(
                matches!(out.end, RunEnd::GuestExit(0)),
                "{what}: {:?}",
                out.end
            );
            assert_eq!(
                out.summary.guest_ops, ops,
                "{what}: the budget is the total"
            );
            assert_eq!(out.summary.vcpus, vcpus, "{what}");
            let full = out.rows.iter().filter(|r| r.full).count();
            if tracker != TrackerKind::None {
                let off = common::exhaustive_mismatches(&out, tracker);
                if full < 2 || !off.is_empty() {
                    failures.push(format!("{what}: {full} full intervals, off {off:?}"));
                }
            }
            let outcome = GuestOutcome::of(&out);
            assert!(outcome.checksum.is_some(), "{what}");
            match &first {
                None => first = Some((what, outcome)),
                Some((base, o)) => assert_eq!(&outcome, o, "{what} vs {base}"),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    first.expect("at least one run").1
}

#[test]
fn extsort_is_the_same_on_one_and_four_vcpus_and_exact_under_every_tracker() {
    if !common::kvm_available("extsort_is_the_same_on_one_and_four_vcpus") {
        return;
    }
    // 2 sorts of 5 * 245760 record moves, and a third cut in its run
    // formation. vCPU 0 alone moves at least 3/5 of them (keys and runs):
    // at 2M per second, at least 0.75 s.
    let o = same_on_one_and_four_vcpus("extsort", 3_000_000, &[("rate", "2000000")]);
    assert_eq!(o.result("sorts"), 2);
    assert_eq!((o.result("runs"), o.result("merge_passes")), (8, 2));
    assert_eq!(o.markers, [0, 1, 2, 2, 3, 0, 1, 2, 2, 3, 0, 1]);
}

#[test]
fn pagerank_is_the_same_on_one_and_four_vcpus_and_exact_under_every_tracker() {
    if !common::kvm_available("pagerank_is_the_same_on_one_and_four_vcpus") {
        return;
    }
    // 74605 vertices, 596840 edges: the graph takes 2 * 596840 edges,
    // then each iteration pulls all of them; the budget ends the 32nd
    // halfway. vCPU 0 streams the graph and a quarter of the pulls: at
    // 8M per second, at least 0.7 s.
    let o = same_on_one_and_four_vcpus("pagerank", 20_000_000, &[("rate", "8000000")]);
    assert_eq!(o.result("iterations"), 31);
    let sum = o.result("rank_sum_e9");
    assert!(
        sum.abs_diff(1_000_000_000) <= 1_000,
        "ranks sum to {sum}e-9"
    );
    assert_eq!(o.markers.len(), 1 + 2 * 32);
    assert_eq!(o.markers[..5], [0, 1, 2, 1, 2]);
}

#[test]
fn stencil_is_the_same_on_one_and_four_vcpus_and_exact_under_every_tracker() {
    if !common::kvm_available("stencil_is_the_same_on_one_and_four_vcpus") {
        return;
    }
    // 341 rows of 512 cells: one pass sets them, 44 sweeps follow (with a
    // checkpoint after every 4th) and the budget cuts the 45th. Each of 4
    // vCPUs updates a quarter of the cells: at 2.5M per second, at least
    // 0.8 s.
    let ops = 8_000_000;
    let params = [("checkpoint", "4"), ("rate", "2500000")];
    let o = same_on_one_and_four_vcpus("stencil", ops, &params);
    let cells = 341 * 512;
    // Whole passes, less the one that set the cells.
    assert_eq!(o.result("sweeps"), ops / cells - 1);
    assert_eq!(o.result("checkpoints"), 11);
    assert_eq!(o.markers.len(), 1 + 2 * 11 + 1);
}

/// The outcome of an untracked run of `guest`
/// for exactly `ops` operations on `vcpus` vCPUs.
fn untracked(guest: &str, ops: u64, vcpus: u64) -> GuestOutcome {
    let ops_text = ops.to_string();
    let out = run(&RunSpec {
        duration: Duration::from_secs(60),
        params: &[("ops", &ops_text)],
        vcpus,
        ..RunSpec::new(guest)
    }
    .config());
    assert!(
        matches!(out.end, RunEnd::GuestExit(0)),
        "{guest} ops={ops} --vcpus {vcpus}: {:?}",
        out.end
    );
    assert_eq!(out.summary.guest_ops, ops);
    GuestOutcome::of(&out)
}

#[test]
fn a_budget_that_ends_any_phase_midway_ends_every_vcpu_count_at_the_same_state() {
    if !common::kvm_available("a_budget_that_ends_any_phase_midway") {
        return;
    }
    // At 4 MiB: extsort moves 245760 records per phase step (keys, then
    // pushes and pops of 8 runs of 32768, then two merge passes);
    // pagerank streams 596840 edges twice, then pulls as many per
    // iteration; stencil updates 174592 cells per pass.
    let edges = 596_840;
    let cuts = [
        ("extsort", 100_000),
        ("extsort", 700_000),
        ("extsort", 1_000_000),
        ("pagerank", 777_777),
        ("pagerank", 3 * edges + 1),
        ("pagerank", 4 * edges - 1),
        ("pagerank", 4 * edges),
        ("stencil", 5 * 174_592 + 777),
    ];
    for (guest, ops) in cuts {
        let one = untracked(guest, ops, 1);
        assert!(one.checksum.is_some(), "{guest} ops={ops}");
        // 3 vCPUs: shares of unequal length.
        assert_eq!(untracked(guest, ops, 3), one, "{guest} ops={ops}");
    }
}
