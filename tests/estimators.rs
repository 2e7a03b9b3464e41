//! Estimates held against the truth on /dev/kvm: issue 4's acceptance
//! tests.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::config::RunConfig;
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::track::TrackerKind;

// One positional argument per setting keeps each test's table of runs
// on one line per run.
#[allow(clippy::too_many_arguments)]
fn config(
    guest: &str,
    mem: u64,
    wss: u64,
    secs: u64,
    interval_ms: u64,
    tracker: TrackerKind,
    estimator: EstimatorKind,
    sample_pages: u64,
    params: &[(&str, &str)],
) -> RunConfig {
    RunSpec {
        mem,
        wss,
        duration: Duration::from_secs(secs),
        interval: Duration::from_millis(interval_ms),
        tracker,
        estimator,
        sample_pages,
        params,
        seed: 3,
        warmup_intervals: 2,
        ..RunSpec::new(guest)
    }
    .config()
}

/// The measurement (one interval's 400 samples) is judged by what sampling
/// allows: at 16384 hot pages of ~131000 its relative error has a spread
/// of ~13%, so its MAPE is ~10% and 20% is over four spreads of the mean of
/// 17 intervals; its 95% band should hold the truth in ~95% of intervals.
/// The policy value (max of averages) smooths that noise and keeps issue
/// 4's 15%.
#[test]
fn esx_on_hotset_is_within_15_percent() {
    if !common::kvm_available("esx_on_hotset_is_within_15_percent") {
        return;
    }
    let cfg = config(
        "hotset",
        512 << 20,
        64 << 20,
        20,
        1000,
        TrackerKind::Mprotect,
        EstimatorKind::Esx,
        400,
        &[],
    );
    let out = run(&cfg);
    let mape = out.summary.mape.expect("mape");
    assert!(mape <= 0.20, "mape {mape}");
    let policy_mape = out.summary.policy_mape.expect("policy mape");
    assert!(policy_mape <= 0.15, "policy mape {policy_mape}");
    let coverage = out.summary.band_coverage.expect("band coverage");
    assert!(coverage >= 0.7, "band coverage {coverage}");
    assert!(out.summary.tracked_faults.unwrap_or(0) > 0);
    assert!(out.summary.fault_cost_us.is_some());
}

#[test]
fn esx_follows_phases_within_two_intervals() {
    if !common::kvm_available("esx_follows_phases_within_two_intervals") {
        return;
    }
    // 16M -> 128M -> 32M every 4 s.
    let cfg = config(
        "phases",
        512 << 20,
        128 << 20,
        26,
        1000,
        TrackerKind::Mprotect,
        EstimatorKind::Esx,
        400,
        &[("period", "4s")],
    );
    let out = run(&cfg);
    let s = &out.summary;
    assert!(
        s.lag_up_events >= 1,
        "the truth must rise at least once: {:?}",
        out.rows
            .iter()
            .map(|r| r.true_wss_pages)
            .collect::<Vec<_>>()
    );
    let lag = s.lag_up_intervals.expect("a resolved rise");
    assert!(lag <= 2.0, "lag_up {lag}");
}

#[test]
fn exhaustive_equals_the_guest_reported_truth() {
    if !common::kvm_available("exhaustive_equals_the_guest_reported_truth") {
        return;
    }
    // Paced as the study paces them, so that an interval touches only part
    // of the region and every boundary falls mid-sweep; and unpaced.
    type Params<'a> = &'a [(&'a str, &'a str)];
    let programs: [(&str, Params, Params); 4] = [
        ("seq", &[], &[("rate", "8192")]),
        ("zipf", &[], &[("rate", "65536")]),
        ("chase", &[], &[("rate", "8192")]),
        (
            "phases",
            &[("sizes", "16M,64M,4M"), ("period", "1s")],
            &[("sizes", "16M,64M,4M"), ("period", "1s"), ("rate", "20000")],
        ),
    ];
    for tracker in [
        TrackerKind::Uffd,
        TrackerKind::Mprotect,
        TrackerKind::DirtyLog,
    ] {
        for (guest, unpaced, paced) in programs {
            for params in [unpaced, paced] {
                let out = run(&RunSpec {
                    mem: 128 << 20,
                    wss: 64 << 20,
                    duration: Duration::from_millis(2600),
                    interval: Duration::from_millis(500),
                    tracker,
                    estimator: EstimatorKind::Exhaustive,
                    params,
                    ..RunSpec::new(guest)
                }
                .config());
                let what = format!("{guest} {params:?} under {tracker:?}");
                let full = out.rows.iter().filter(|r| r.full).count();
                assert!(full >= 3, "{what}: only {full} full intervals");
                assert!(
                    out.rows.iter().any(|r| r.true_wss_pages > 0),
                    "{what}: the guest touched nothing"
                );
                let off = common::exhaustive_mismatches(&out, tracker);
                assert!(
                    off.is_empty(),
                    "{what}: (t, exhaustive, truth) {off:?}, forced holds {}",
                    out.summary.forced_holds
                );
            }
        }
    }
}

#[test]
fn four_kib_guest_pages_track_exactly_too() {
    if !common::kvm_available("four_kib_guest_pages_track_exactly_too") {
        return;
    }
    for tracker in [
        TrackerKind::Mprotect,
        TrackerKind::Uffd,
        TrackerKind::DirtyLog,
    ] {
        let out = run(&RunSpec {
            tracker,
            estimator: EstimatorKind::Exhaustive,
            guest_pages: Some(kvm_wss::vmm::paging::GuestPageSize::Size4K),
            duration: Duration::from_secs(3),
            ..RunSpec::new("seq")
        }
        .config());
        let truth = |r: &kvm_wss::report::timeseries::Row| {
            if tracker.writes_only() {
                r.true_wss_write_pages
            } else {
                r.true_wss_pages
            }
        };
        for r in out.rows.iter().skip(1).filter(|r| r.full) {
            assert_eq!(truth(r), 1024, "{tracker:?}");
            assert_eq!(r.est_wss_pages, Some(1024.0), "{tracker:?} at t={}", r.t_s);
        }
    }
}

#[test]
fn exhaustive_mprotect_survives_long_runs_of_faults() {
    if !common::kvm_available("exhaustive_mprotect_survives_long_runs_of_faults") {
        return;
    }
    // An unpaced sweep over 32768 pages faults on a fresh page again and
    // again with no other exit in between; every fault makes progress.
    let out = run(&RunSpec {
        tracker: TrackerKind::Mprotect,
        estimator: EstimatorKind::Exhaustive,
        mem: 256 << 20,
        wss: 128 << 20,
        duration: Duration::from_secs(8),
        interval: Duration::from_secs(1),
        ..RunSpec::new("seq")
    }
    .config());
    assert!(
        matches!(out.end, kvm_wss::run::RunEnd::Duration),
        "{:?}",
        out.end
    );
    let faults = out.summary.tracked_faults.expect("faults");
    assert!(
        faults > 20_000,
        "only {faults} tracked faults: the test no longer exercises long fault runs"
    );
}

/// `chase` reads and writes every page in an init pass, then, paced at 128
/// accesses a second, touches 64 pages per half-second interval: the
/// working set falls inside the warm-up. The fall must show in lag_down
/// (exhaustive tracking measures exactly, so at lag 0), not be skipped
/// with the warm-up.
#[test]
fn a_fall_inside_the_warm_up_shows_in_lag_down() {
    if !common::kvm_available("a_fall_inside_the_warm_up_shows_in_lag_down") {
        return;
    }
    const WARMUP: usize = 3;
    let out = run(&RunSpec {
        mem: 64 << 20,
        wss: 2 << 20,
        duration: Duration::from_secs(3),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::Uffd,
        estimator: EstimatorKind::Exhaustive,
        params: &[("rate", "128")],
        warmup_intervals: WARMUP,
        ..RunSpec::new("chase")
    }
    .config());
    let truth: Vec<u64> = out.rows.iter().map(|r| r.true_wss_pages).collect();
    // The init pass touched all 512 pages before the paced chase began.
    assert!(truth.iter().any(|&t| t >= 512), "{truth:?}");
    let fall_in_warmup = (1..WARMUP.min(out.rows.len()))
        .any(|k| out.rows[k - 1].full && out.rows[k].full && 4 * truth[k] <= 3 * truth[k - 1]);
    assert!(fall_in_warmup, "no fall inside the warm-up: {truth:?}");
    let s = &out.summary;
    assert!(s.lag_down_events >= 1, "{truth:?}");
    assert_eq!(s.lag_down_intervals, Some(0.0), "{truth:?}");
    // An exact estimator's point band always holds the truth, and it has no
    // policy beyond the measurement.
    assert_eq!(s.band_coverage, Some(1.0));
    assert_eq!(s.policy_mape, s.mape);
}
