//! Overcommitted guests (issue 8): a 64 GiB guest on a smaller host boots,
//! is tracked and reports rows, through the real binary.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

#[test]
fn a_64g_guest_runs_with_uffd_tracking_and_reports_rows() {
    if !common::kvm_available("a_64g_guest_runs_with_uffd_tracking_and_reports_rows") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args([
            "run",
            "--guest",
            "hotset",
            "--wss",
            "64M",
            "--mem",
            "64G",
            "--tracker",
            "uffd",
            "--sample-pages",
            "400",
            "--duration",
            "3s",
            "--interval",
            "500ms",
            "--no-plot",
            "--json",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("run kvm-wss");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stderr: {err}");
    // Above host memory: one note, not an error.
    let notes = err.lines().filter(|l| l.contains("note:")).count();
    match kvm_wss::memlimit::host_memory() {
        Some(host) if host < 64 << 30 => assert_eq!(notes, 1, "stderr: {err}"),
        _ => assert_eq!(notes, 0, "stderr: {err}"),
    }
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("summary JSON");
    assert_eq!(summary["mem_pages"], (64u64 << 30) / 4096);
    let rows = kvm_wss::report::timeseries::read_timeseries(&out.join("timeseries.csv"))
        .expect("timeseries.csv");
    assert!(rows.len() >= 4, "{} rows", rows.len());
    let steady: Vec<_> = rows.iter().skip(1).filter(|r| r.full).collect();
    assert!(!steady.is_empty());
    for r in &steady {
        // hotset over 64 MiB touches at most its 16384 pages, and its hot
        // tenth (1638 pages) every interval.
        assert!(
            (1638..=16384).contains(&r.true_wss_pages),
            "true WSS {} at t={}",
            r.true_wss_pages,
            r.t_s
        );
        assert_eq!(r.sampled_pages, 400, "at t={}", r.t_s);
        assert!(r.est_wss_pages.is_some());
    }
}
