//! Ctrl-C once the guest has stopped: outputs not yet started are not
//! started, a file being drawn is dropped rather than left half-written, and
//! the command exits 130 keeping what is already written.
//!
//! The interrupt flag is global to the process and cannot be cleared, so
//! this binary holds one test, which sets it the way the Ctrl-C handler
//! does (`run::note_interrupt`) rather than with a signal.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use kvm_wss::app;
use kvm_wss::cli::Cli;
use kvm_wss::report::ReportError;
use kvm_wss::report::summary::{Summary, read_summary, write_summary};
use kvm_wss::report::timeseries::{Row, TimeseriesWriter, read_timeseries};

fn rows(n: usize) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            t_s: (i + 1) as f64 * 0.1,
            true_wss_pages: 100 + i as u64,
            true_wss_write_pages: 50,
            est_wss_pages: Some(100.0),
            est_lo_pages: Some(90.0),
            est_hi_pages: Some(110.0),
            sampled_pages: 10,
            touched_samples: 5,
            faults: 5,
            guest_ops: 1000,
            interval_s: 0.1,
            full: true,
            phase: 0,
            arm_us: 1.0,
            collect_us: 1.0,
            stall_us: 0.0,
            hold_us: 0.0,
            policy_wss_pages: Some(120.0),
            ..Row::default()
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("kvm-wss").chain(args.iter().copied())).expect("parses")
}

#[test]
fn interrupt_before_outputs_keeps_what_is_written_and_exits_130() {
    // A finished run's folder, made before the interrupt.
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    let rows = rows(50);
    let mut w = TimeseriesWriter::create(&run_dir.join("timeseries.csv")).expect("csv");
    for r in &rows {
        w.write_row(r).expect("row");
    }
    drop(w);
    let summary = Summary {
        guest: "seq".into(),
        tracker: kvm_wss::track::TrackerKind::Uffd,
        ..Summary::default()
    };
    write_summary(&run_dir.join("summary.json"), &summary).expect("summary");
    assert_eq!(names(&run_dir), ["summary.json", "timeseries.csv"]);

    kvm_wss::run::note_interrupt();

    // Drawing is refused and leaves nothing behind, not even a temp file.
    let err = kvm_wss::report::plot::plot_run(&rows, &summary, &run_dir).expect_err("interrupted");
    assert!(matches!(err, ReportError::Interrupted { .. }), "{err:?}");
    assert_eq!(names(&run_dir), ["summary.json", "timeseries.csv"]);
    // `kvm-wss plot` exits 130, and what was there is intact.
    let path = run_dir.to_str().expect("utf-8");
    let err = app::execute(cli(&["plot", path])).expect_err("interrupted");
    assert_eq!(err.exit_code(), app::EXIT_INTERRUPTED, "{err}");
    assert_eq!(names(&run_dir), ["summary.json", "timeseries.csv"]);
    assert_eq!(
        read_timeseries(&run_dir.join("timeseries.csv")).expect("csv"),
        rows
    );
    assert_eq!(
        read_summary(&run_dir.join("summary.json")).expect("json"),
        summary
    );

    // A whole run: it stops at once, keeps the CSV and a whole summary,
    // draws no plot, and exits 130.
    if !common::kvm_available("interrupt_before_outputs_keeps_what_is_written_and_exits_130") {
        return;
    }
    let out = dir.path().join("run2");
    let code = app::execute(cli(&[
        "run",
        "--guest",
        "seq",
        "--mem",
        "64M",
        "--wss",
        "4M",
        "--duration",
        "5s",
        "--interval",
        "100ms",
        "--quiet",
        "--out",
        out.to_str().expect("utf-8"),
    ]))
    .expect("runs");
    assert_eq!(code, ExitCode::from(app::EXIT_INTERRUPTED));
    assert_eq!(names(&out), ["summary.json", "timeseries.csv"]);
    let kept = read_timeseries(&out.join("timeseries.csv")).expect("csv");
    let s = read_summary(&out.join("summary.json")).expect("json");
    assert_eq!(s.end, kvm_wss::report::summary::EndKind::Interrupted);
    assert_eq!(s.intervals, kept.len() as u64);
    assert!(s.duration_s < 2.0, "{}", s.duration_s);
}
