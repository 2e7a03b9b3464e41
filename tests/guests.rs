//! Every guest program boots on /dev/kvm and its truth is what the program
//! promises: issue 2's acceptance tests.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::config::RunConfig;
use kvm_wss::report::timeseries::Row;
use kvm_wss::run::RunEnd;

fn config(
    guest: &str,
    wss: u64,
    duration_ms: u64,
    interval_ms: u64,
    params: &[(&str, &str)],
) -> RunConfig {
    RunSpec {
        wss,
        duration: Duration::from_millis(duration_ms),
        interval: Duration::from_millis(interval_ms),
        params,
        ..RunSpec::new(guest)
    }
    .config()
}

/// Full intervals after the first (which includes the program's set-up).
fn steady(rows: &[Row]) -> Vec<&Row> {
    rows.iter().skip(1).filter(|r| r.full).collect()
}

#[test]
fn seq_random_and_chase_touch_exactly_their_wss() {
    if !common::kvm_available("seq_random_and_chase_touch_exactly_their_wss") {
        return;
    }
    for guest in ["seq", "random", "chase"] {
        let out = run(&config(guest, 4 << 20, 2500, 500, &[]));
        assert!(
            matches!(out.end, RunEnd::Duration),
            "{guest}: {:?}",
            out.end
        );
        let rows = steady(&out.rows);
        assert!(rows.len() >= 3, "{guest}: {} full intervals", rows.len());
        for r in rows {
            // 4 MiB = 1024 pages; the runtime itself adds none (stack and
            // code are not data pages).
            assert_eq!(r.true_wss_pages, 1024, "{guest} at t={}", r.t_s);
            assert!(
                r.guest_ops > 1_000_000,
                "{guest} runs natively: {} ops",
                r.guest_ops
            );
            if guest == "chase" {
                // chase only reads once its cycle is built; a few writes go
                // to the page it reached with probability write_ratio.
                assert!(r.true_wss_write_pages <= 1024);
            } else {
                assert_eq!(
                    r.true_wss_write_pages, 1024,
                    "{guest} writes half its accesses"
                );
            }
        }
    }
}

#[test]
fn read_only_and_stride_and_idle() {
    if !common::kvm_available("read_only_and_stride_and_idle") {
        return;
    }
    let out = run(&config("seq", 4 << 20, 2000, 500, &[("write_ratio", "0")]));
    for r in steady(&out.rows) {
        assert_eq!((r.true_wss_pages, r.true_wss_write_pages), (1024, 0));
    }
    let out = run(&config("stride", 4 << 20, 2000, 500, &[("k", "8")]));
    for r in steady(&out.rows) {
        assert_eq!(r.true_wss_pages, 128, "every 8th of 1024 pages");
    }
    let out = run(&config("idle", 4 << 20, 2000, 500, &[]));
    for r in steady(&out.rows) {
        assert_eq!(r.true_wss_pages, 1, "idle touches one page");
        assert!(
            r.guest_ops <= 10,
            "idle does almost nothing: {} ops",
            r.guest_ops
        );
    }
    // Between its accesses idle sleeps off the CPU (the `sleep` doorbell):
    // a spinning idle would burn nearly all of its 2 s, even sharing a CPU.
    let cpu = out.summary.tracker_stats.vcpu_thread_cpu_s;
    assert!(
        cpu > 0.0 && cpu < 0.2,
        "idle's vCPU thread used {cpu} s of CPU"
    );
}

#[test]
fn hotset_and_zipf_stay_inside_their_wss() {
    if !common::kvm_available("hotset_and_zipf_stay_inside_their_wss") {
        return;
    }
    // Paced to 20k accesses per interval, the cold pages are only partly
    // touched: the truth lies between the hot set and the whole region.
    let out = run(&config("hotset", 16 << 20, 2500, 500, &[("rate", "40000")]));
    for r in steady(&out.rows) {
        assert!(
            r.true_wss_pages > 409 && r.true_wss_pages < 4096,
            "hotset truth {}",
            r.true_wss_pages
        );
    }
    let out = run(&config("zipf", 16 << 20, 2500, 500, &[("rate", "40000")]));
    for r in steady(&out.rows) {
        assert!(
            r.true_wss_pages > 100 && r.true_wss_pages < 4096,
            "zipf truth {}",
            r.true_wss_pages
        );
    }
}

#[test]
fn phases_change_size_and_ramp_rises_then_falls() {
    if !common::kvm_available("phases_change_size_and_ramp_rises_then_falls") {
        return;
    }
    let out = run(&config(
        "phases",
        4 << 20,
        6500,
        500,
        &[("sizes", "1M,4M,2M"), ("period", "2s")],
    ));
    let truths: Vec<u64> = steady(&out.rows).iter().map(|r| r.true_wss_pages).collect();
    for level in [256, 1024, 512] {
        let n = truths.iter().filter(|&&t| t == level).count();
        assert!(n >= 2, "phases: level {level} seen {n} times in {truths:?}");
    }
    assert!(truths.iter().all(|&t| t <= 1024), "{truths:?}");
    let markers: Vec<u64> = out.summary.phases.iter().map(|p| p.marker).collect();
    assert!(markers.starts_with(&[0, 1, 2]), "phase markers {markers:?}");

    let out = run(&config(
        "ramp",
        4 << 20,
        7000,
        500,
        &[("grow", "2s"), ("hold", "2s"), ("shrink", "2s")],
    ));
    let truths: Vec<u64> = out
        .rows
        .iter()
        .filter(|r| r.full)
        .map(|r| r.true_wss_pages)
        .collect();
    let peak = truths.iter().copied().max().unwrap_or(0);
    let at = truths.iter().position(|&t| t == peak).unwrap_or(0);
    assert!(peak >= 1000, "ramp reaches its wss: {truths:?}");
    assert!(truths[0] < peak / 2, "ramp starts low: {truths:?}");
    assert!(
        *truths.last().unwrap_or(&0) < peak / 4,
        "ramp ends low: {truths:?}"
    );
    assert!(
        at > 0 && at < truths.len() - 1,
        "the peak is in the middle: {truths:?}"
    );

    // Waiting for its delay, a ramp idles: one page per interval, and its
    // vCPU asleep between its touches (every 100 ms), off the host CPU.
    let out = run(&config("ramp", 4 << 20, 2000, 500, &[("delay", "10s")]));
    for r in steady(&out.rows) {
        assert_eq!(r.true_wss_pages, 1, "a waiting ramp touches one page");
        assert!(r.guest_ops <= 10 * 256, "{} ops in a wait", r.guest_ops);
    }
    let cpu = out.summary.tracker_stats.vcpu_thread_cpu_s;
    assert!(
        cpu > 0.0 && cpu < 0.2,
        "the waiting ramp used {cpu} s of CPU"
    );
}

#[test]
fn a_fixed_ops_budget_gives_a_reproducible_checksum() {
    if !common::kvm_available("a_fixed_ops_budget_gives_a_reproducible_checksum") {
        return;
    }
    let cfg = config("hotset", 4 << 20, 20_000, 1000, &[("ops", "2000000")]);
    let a = run(&cfg);
    let b = run(&cfg);
    assert!(matches!(a.end, RunEnd::GuestExit(0)), "{:?}", a.end);
    assert_eq!(a.summary.guest_ops, 2_000_000);
    assert!(a.summary.guest_checksum.is_some());
    assert_eq!(a.summary.guest_checksum, b.summary.guest_checksum);
    let other_seed = run(&RunConfig { seed: 8, ..cfg });
    assert_ne!(a.summary.guest_checksum, other_seed.summary.guest_checksum);
}
