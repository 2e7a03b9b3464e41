//! `run --baseline` on /dev/kvm: summary.json holds the steady slowdown
//! (over the scored intervals of both runs) beside the whole-run one, and
//! the one-time loss between them, spread over the pages uffd filled at
//! their first touch. The figures themselves depend on the host's load;
//! what is checked is that each is there and is made from the others as
//! its definition says.
// Test code: a failed unwrap is a test failure, as it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary written")).expect("json")
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is {}", v[key]))
}

#[test]
fn a_baseline_run_separates_the_steady_cost_from_the_first_touch_fill() {
    if !common::kvm_available("a_baseline_run_separates_the_steady_cost_from_the_first_touch_fill")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    common::kvm_wss_run(
        &[
            "--guest",
            "random",
            "--mem",
            "32M",
            "--wss",
            "8M",
            "--tracker",
            "uffd",
            "--estimator",
            "esx",
            "--sample-pages",
            "100",
            "--interval",
            "50ms",
            "--duration",
            "1500ms",
            "--warmup",
            "10",
            "--seed",
            "1",
            "--baseline",
            "--no-plot",
            "--quiet",
        ],
        &out,
    );
    let s = read(&out.join("summary.json"));
    let twin = read(&out.join("baseline/summary.json"));

    // Both runs have a steady rate; only the tracked one a steady slowdown,
    // a fault rate and first-touched pages.
    let steady = num(&s, "steady_guest_ops_per_s");
    let twin_steady = num(&twin, "steady_guest_ops_per_s");
    assert!(steady > 0.0 && twin_steady > 0.0, "{steady} {twin_steady}");
    for key in [
        "steady_slowdown",
        "steady_faults_per_s",
        "first_touch_pages",
    ] {
        assert_eq!(twin[key], Value::Null, "{key} of the twin");
    }
    assert!(num(&s, "steady_faults_per_s") >= 0.0);

    let steady_slowdown = num(&s, "steady_slowdown");
    assert!((steady_slowdown - (1.0 - steady / twin_steady)).abs() < 1e-9);
    let lost = num(&s, "one_time_lost_s");
    let whole = num(&s, "slowdown");
    assert!((lost - (whole - steady_slowdown) * num(&s, "duration_s")).abs() < 1e-9);

    // The guest touched every page of its 8 MiB region, each first through
    // uffd's handler, which counts them as zero_filled_pages.
    let pages = s["first_touch_pages"].as_u64().expect("first_touch_pages");
    assert_eq!(
        Some(pages),
        s["tracker_stats"]["zero_filled_pages"].as_u64()
    );
    assert!(pages >= 2048, "{pages} pages first touched");
    let per_page = num(&s, "first_touch_us_per_page");
    assert!((per_page - lost * 1e6 / pages as f64).abs() < 1e-6);
}
