//! The guest runtime's API in a real guest: typed arrays mark exactly the
//! truth that trackers see, and an out-of-range access is a guest crash
//! that names the index and the length (issue 12).
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::run::RunEnd;
use kvm_wss::track::TrackerKind;

#[test]
fn arrays_touch_every_page_read_and_written() {
    if !common::kvm_available("arrays_touch_every_page_read_and_written") {
        return;
    }
    let out = run(&RunSpec {
        wss: 4 << 20,
        duration: Duration::from_millis(2500),
        interval: Duration::from_millis(500),
        ..RunSpec::new("arrays")
    }
    .config());
    // The program checks every value it reads and panics on a mismatch.
    assert!(matches!(out.end, RunEnd::Duration), "{:?}", out.end);
    let steady: Vec<_> = out.rows.iter().skip(1).filter(|r| r.full).collect();
    assert!(steady.len() >= 3, "{} full intervals", steady.len());
    for r in steady {
        // 4 MiB = 1024 pages, all of them arrays that are read and written.
        assert_eq!(
            (r.true_wss_pages, r.true_wss_write_pages),
            (1024, 1024),
            "t={}",
            r.t_s
        );
    }
}

#[test]
fn exhaustive_tracking_of_arrays_equals_the_truth() {
    if !common::kvm_available("exhaustive_tracking_of_arrays_equals_the_truth") {
        return;
    }
    for tracker in [TrackerKind::Uffd, TrackerKind::DirtyLog] {
        let out = run(&RunSpec {
            wss: 1 << 20,
            duration: Duration::from_secs(4),
            interval: Duration::from_secs(1),
            tracker,
            estimator: EstimatorKind::Exhaustive,
            ..RunSpec::new("arrays")
        }
        .config());
        assert!(
            matches!(out.end, RunEnd::Duration),
            "{tracker:?}: {:?}",
            out.end
        );
        let full = out.rows.iter().filter(|r| r.full).count();
        assert!(full >= 2, "{tracker:?}: {full} full intervals");
        assert_eq!(
            common::exhaustive_mismatches(&out, tracker),
            vec![],
            "{tracker:?}: (t, estimate, truth) where they differ"
        );
    }
}

#[test]
fn arrays_checksum_does_not_depend_on_tracking() {
    if !common::kvm_available("arrays_checksum_does_not_depend_on_tracking") {
        return;
    }
    let ops = [("ops", "300000")];
    let checksum = |tracker| {
        let out = run(&RunSpec {
            wss: 1 << 20,
            duration: Duration::from_secs(60),
            interval: Duration::from_millis(200),
            tracker,
            estimator: EstimatorKind::Exhaustive,
            params: &ops,
            ..RunSpec::new("arrays")
        }
        .config());
        assert!(
            matches!(out.end, RunEnd::GuestExit(0)),
            "{tracker:?}: {:?}",
            out.end
        );
        assert_eq!(out.summary.guest_ops, 300_000, "{tracker:?}");
        out.summary.guest_checksum
    };
    let untracked = checksum(TrackerKind::None);
    assert!(untracked.is_some());
    assert_eq!(checksum(TrackerKind::Uffd), untracked);
}

/// Runs `arrays` with `out_of_range=what` through the real binary and
/// returns its exit code and stderr.
fn out_of_range(what: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["run", "--guest", "arrays", "--wss", "1M", "--mem", "16M"])
        .args(["--param", &format!("out_of_range={what}")])
        .args(["--duration", "30s", "--quiet", "--no-plot", "--out"])
        .arg(dir.path())
        .output()
        .expect("run kvm-wss");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn an_out_of_range_access_is_a_guest_crash_naming_index_and_length() {
    if !common::kvm_available("an_out_of_range_access_is_a_guest_crash_naming_index_and_length") {
        return;
    }
    // --wss 1M: 256 pages, so each u8/u32/f64 array has 64 pages, and the
    // f64 one 64 * 512 elements.
    for (what, message) in [
        ("page", "page index 64 out of range for length 64"),
        ("word", "word index 512 out of range for length 512"),
        (
            "element",
            "element index 32768 out of range for length 32768",
        ),
    ] {
        let (code, err) = out_of_range(what);
        assert_eq!(code, Some(3), "{what}: {err}");
        assert!(
            err.contains(&format!("guest panicked: {message} at src/bin/arrays.rs:")),
            "{what}: {err}"
        );
    }
}

/// Runs `arrays` for `ops` operations through the real binary with
/// `extra` options; returns stdout.
fn arrays_ops(ops: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["run", "--guest", "arrays", "--wss", "1M", "--mem", "16M"])
        .args(["--param", &format!("ops={ops}"), "--duration", "60s"])
        .args(["--interval", "30s", "--no-plot", "--out"])
        .arg(dir.path())
        .args(extra)
        .output()
        .expect("run kvm-wss");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn op_name_results_and_a_short_run_reach_summary_and_console() {
    if !common::kvm_available("op_name_results_and_a_short_run_reach_summary_and_console") {
        return;
    }
    // 300,000 operations in windows of 256 words: 1171 whole batches and
    // one of 224. A pass over `bytes` (64 pages, 32768 words) is 128 whole
    // batches, so 9 passes end.
    let json = arrays_ops("300000", &["--json"]);
    let s: serde_json::Value = serde_json::from_str(&json).expect("summary.json on stdout");
    assert_eq!(s["op_name"], "window words");
    assert_eq!(
        s["guest_results"],
        serde_json::json!([{"slot": 0, "name": "passes", "value": 9}])
    );
    // It exits in well under the 30 s interval: nothing to average.
    assert_eq!(s["scored_intervals"], 0);
    let table = arrays_ops("300000", &[]);
    assert!(
        table.contains("guest      300000 window words ("),
        "{table}"
    );
    assert!(table.contains("\nresults    passes 9\n"), "{table}");
    assert!(
        table.contains("true WSS   not measured: no full interval after the"),
        "{table}"
    );
    assert!(!table.contains("mean 0 pages"), "{table}");
}
