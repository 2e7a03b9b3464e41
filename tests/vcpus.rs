//! Guests with several vCPUs (`--vcpus`): the `team` program on 1 and 4
//! vCPUs under every tracker. Exhaustive tracking must equal the truth in
//! every full interval (every vCPU is held at each boundary, and every
//! tracker copes with faults from several vCPUs at once, on the same page
//! or on different ones), and the program's checksum must not depend on
//! the tracker or on the vCPU count.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::report::summary::EndKind;
use kvm_wss::track::TrackerKind;

/// `team`'s rounds, paced (`rate`, per vCPU) so that a run lasts at least
/// about 1.1 s (4 vCPUs) or 3.9 s (1 vCPU) however fast the host is:
/// several 200 ms intervals are full, and a loaded host only makes more.
/// Pacing leaves the checksum alone.
const PARAMS: [(&str, &str); 2] = [("rounds", "200"), ("rate", "500000")];

#[test]
fn exhaustive_equals_the_truth_on_one_and_four_vcpus_under_every_tracker() {
    if !common::kvm_available("exhaustive_equals_the_truth_on_one_and_four_vcpus") {
        return;
    }
    let mut checksums = Vec::new();
    let mut failures = Vec::new();
    for tracker in [
        TrackerKind::Uffd,
        TrackerKind::Mprotect,
        TrackerKind::DirtyLog,
    ] {
        for vcpus in [1, 4] {
            let out = run(&RunSpec {
                mem: 64 << 20,
                wss: 4 << 20,
                duration: Duration::from_secs(120),
                interval: Duration::from_millis(200),
                tracker,
                estimator: EstimatorKind::Exhaustive,
                params: &PARAMS,
                vcpus,
                ..RunSpec::new("team")
            }
            .config());
            let what = format!("{} --vcpus {vcpus}", tracker.name());
            assert_eq!(
                (out.summary.end, out.summary.guest_exit_code),
                (EndKind::GuestExit, Some(0)),
                "{what}: the guest ends when vCPU 0 returns"
            );
            let full = out.rows.iter().filter(|r| r.full).count();
            let off = common::exhaustive_mismatches(&out, tracker);
            if full < 3 || !off.is_empty() {
                failures.push(format!(
                    "{what}: {full} full intervals, off {off:?}, forced holds {}",
                    out.summary.forced_holds
                ));
            }
            // Every page of --wss is touched in a full interval (a whole
            // round fits in one): the truth is not trivially empty.
            let truth_max = out
                .rows
                .iter()
                .filter(|r| r.full)
                .map(|r| {
                    if tracker.writes_only() {
                        r.true_wss_write_pages
                    } else {
                        r.true_wss_pages
                    }
                })
                .max();
            assert_eq!(truth_max, Some(1024), "{what}: {:?}", out.rows);
            checksums.push((what, out.summary.guest_checksum));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let first = checksums[0].1.clone();
    assert!(first.is_some(), "team reports a checksum");
    for (what, sum) in &checksums {
        assert_eq!(sum, &first, "{what}: checksum differs: {checksums:?}");
    }
}

#[test]
fn a_panic_on_another_vcpu_ends_the_run_and_is_reported() {
    if !common::kvm_available("a_panic_on_another_vcpu_ends_the_run") {
        return;
    }
    let out = run(&RunSpec {
        duration: Duration::from_secs(60),
        params: &[("rounds", "1000000"), ("crash_vcpu", "3")],
        vcpus: 3,
        ..RunSpec::new("team")
    }
    .config());
    assert_eq!(out.summary.end, EndKind::GuestCrash);
    match &out.end {
        kvm_wss::run::RunEnd::GuestCrash(msg) => {
            assert!(msg.contains("team: vCPU 2 panics on purpose"), "{msg}")
        }
        other => panic!("expected a guest crash, got {other:?}"),
    }
    assert!(
        out.summary.duration_s < 30.0,
        "the run ended on the panic, not at --duration"
    );
}

#[test]
fn vcpus_out_of_range_is_a_usage_error() {
    for bad in ["0", "9"] {
        let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
            .args(["run", "--guest", "seq", "--vcpus", bad])
            .output()
            .expect("run kvm-wss");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--vcpus {bad}: {err}");
        assert!(err.contains("--vcpus"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        let lines = err.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, 1, "one line: {err:?}");
    }
}
