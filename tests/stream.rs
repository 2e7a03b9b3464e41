//! Rows stream to disk: a run keeps none of them in memory, so a long or
//! fine-grained run does not grow the VMM, and the summary it computes
//! while streaming equals the one computed from timeseries.csv afterwards.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use kvm_wss::analysis::costs::{CostTally, stall_us_per_fault};
use kvm_wss::report::summary::read_summary;
use kvm_wss::report::timeseries::read_timeseries;

/// Runs the idle guest untracked at the shortest interval for `duration`
/// into `out`; returns the peak RSS in KiB and the rows written.
fn fine_grained(duration: &str, out: &Path) -> (i64, usize) {
    let (o, rss_kib) = common::kvm_wss_with_rss(&[
        "run",
        "--guest",
        "idle",
        "--tracker",
        "none",
        "--mem",
        "16M",
        "--wss",
        "4K",
        "--interval",
        "1ms",
        "--duration",
        duration,
        "--quiet",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.join("wss.svg").exists(), "the run was plotted");
    let rows = read_timeseries(&out.join("timeseries.csv")).expect("csv");
    (rss_kib, rows.len())
}

/// A 40-second run at 1 ms intervals makes tens of thousands of rows; the
/// peak RSS of the process is compared with a 3-second run of the same
/// guest, so the binary, the guest and the plot's fixed costs cancel. A
/// row kept in memory costs about 240 bytes of RSS (measured: a `Vec<Row>`
/// run grew by 2.6 MiB from 1,523 to 12,416 rows), so the 10,000 rows
/// asked for here would add over 2.3 MiB; the streaming run may grow by
/// the plot's bounded series and the larger (capped) figure only.
#[test]
fn fine_grained_runs_keep_memory_bounded() {
    if !common::kvm_available("fine_grained_runs_keep_memory_bounded") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (short_kib, short_rows) = fine_grained("3s", &dir.path().join("short"));
    let (long_kib, long_rows) = fine_grained("40s", &dir.path().join("long"));
    eprintln!(
        "3 s: {short_rows} rows, peak RSS {short_kib} KiB; \
         40 s: {long_rows} rows, peak RSS {long_kib} KiB"
    );
    // Even a loaded 2-core machine keeps the 1 ms sampler near 400
    // intervals a second (intervals follow the clock and stretch when it
    // is late); fewer rows would not tell the two designs apart.
    assert!(
        long_rows >= short_rows + 10_000,
        "only {long_rows} rows in 40 s against {short_rows} in 3 s"
    );
    let growth_kib = long_kib - short_kib;
    assert!(
        growth_kib < 1536,
        "peak RSS grew by {growth_kib} KiB for {} more rows",
        long_rows - short_rows
    );
}

/// The summary a tracked run wrote while its rows streamed equals the one
/// the slice functions compute from its timeseries.csv, field by field.
#[test]
fn streamed_summary_equals_the_one_recomputed_from_the_csv() {
    if !common::kvm_available("streamed_summary_equals_the_one_recomputed_from_the_csv") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    // Phases of 8, 64 and 16 pages every 300 ms: growth and shrink events
    // for the lags, at 10 ms intervals.
    common::kvm_wss_run(
        &[
            "--guest",
            "phases",
            "--param",
            "period=300ms",
            "--param",
            "sizes=32K,256K,64K",
            "--mem",
            "16M",
            "--wss",
            "256K",
            "--tracker",
            "dirty-log",
            "--interval",
            "10ms",
            "--duration",
            "3s",
            "--no-plot",
            "--quiet",
        ],
        &out,
    );
    let streamed = read_summary(&out.join("summary.json")).expect("summary");
    let rows = read_timeseries(&out.join("timeseries.csv")).expect("csv");
    assert!(rows.len() >= 100, "{} rows", rows.len());
    assert_eq!(streamed.intervals, rows.len() as u64);
    assert!(streamed.lag_up_events > 0 && streamed.lag_down_events > 0);
    assert!(streamed.mape.is_some() && streamed.band_coverage.is_some());

    let warmup = usize::try_from(streamed.warmup_intervals).expect("fits");
    let mut recomputed = streamed.clone();
    recomputed.record_accuracy(&rows, warmup, streamed.compared_against);
    recomputed.record_costs(&rows, None);
    let costs = CostTally::over(&rows, warmup);
    recomputed.hold_us_mean = costs.hold_us_mean();
    recomputed.hold_us_max = costs.hold_us_max();
    recomputed.tracker_stats.stall_us_per_fault = stall_us_per_fault(&rows, warmup, None);
    // Bit for bit: the same additions in the same order, and the CSV and
    // JSON both write floats in their shortest exact form.
    assert_eq!(recomputed, streamed);
    // And the recomputation did recompute: a summary with the accuracy
    // fields cleared comes back equal too.
    let mut cleared = kvm_wss::report::summary::Summary {
        mae_pages: None,
        mape: None,
        lag_up_events: 0,
        arm_us_total: 0.0,
        ..streamed.clone()
    };
    cleared.record_accuracy(&rows, warmup, streamed.compared_against);
    cleared.record_costs(&rows, None);
    assert_eq!(cleared, streamed);
}
