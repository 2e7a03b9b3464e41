//! `bench trackers` through the real binary: every tracker measured on both
//! sides, with positive costs. The ratio's value is machine noise on a
//! shared host, so only its presence is checked.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;

#[test]
fn bench_trackers_reports_both_costs_for_every_tracker() {
    if !common::kvm_available("bench_trackers_reports_both_costs_for_every_tracker") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let detail_path = dir.path().join("detail.json");
    let json = common::kvm_wss_json(&[
        "bench",
        "trackers",
        "--pages",
        "256",
        "--rounds",
        "1",
        "--detail",
        detail_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(json["pages"], 256);
    assert_eq!(json["rounds"], 1);
    let trackers = json["trackers"].as_array().expect("trackers array");
    let detail: Value =
        serde_json::from_str(&std::fs::read_to_string(&detail_path).expect("detail written"))
            .expect("detail is JSON");
    assert_eq!(
        detail["trackers"][0]["kvmwss_us_per_touch"], trackers[0]["kvmwss_us_per_touch"],
        "one measurement, two views"
    );
    let names: Vec<&str> = trackers
        .iter()
        .map(|t| t["tracker"].as_str().expect("tracker name"))
        .collect();
    assert_eq!(names, ["mprotect", "uffd", "dirty-log"]);
    for (i, t) in trackers.iter().enumerate() {
        let name = &t["tracker"];
        assert!(
            t.get("repetitions").is_none(),
            "stdout has the medians only"
        );
        for key in [
            "kvmwss_us_per_touch",
            "floor_us_per_touch",
            "untracked_us_per_touch",
        ] {
            let v = t[key].as_f64().unwrap_or(f64::NAN);
            assert!(v > 0.0 && v.is_finite(), "{name} {key} = {}", t[key]);
        }
        assert!(t["ratio"].is_number(), "{name} has no ratio: {t}");
        assert!(t["overhead_pct"].is_number(), "{name} has no overhead_pct");
        // 256 pages: 192 touched, 128 of them written (dirty-log's share).
        let expected = if name == "dirty-log" { 128 } else { 192 };
        let touches = &t["tracked_touches_per_round"];
        assert_eq!(touches["expected"], expected, "{name}");
        assert_eq!(touches["kvmwss"], expected, "{name}: {touches}");
        assert_eq!(touches["floor"], expected, "{name}: {touches}");
        let reps = detail["trackers"][i]["repetitions"]
            .as_array()
            .expect("repetitions");
        assert_eq!(reps.len(), 1, "{name}");
        for side in ["kvmwss", "floor"] {
            let rounds = reps[0][side]["us_per_touch"].as_array().expect("rounds");
            assert_eq!(rounds.len(), 1, "{name} {side}");
        }
    }
    // The arming section: every tracker's arm cost through kvm-wss, the
    // held floor and the floor armed while the vCPU runs, and the probe's
    // 12 touched pages caught in each in-situ round.
    let arming = &json["arming"];
    assert!(arming["quiet"].is_boolean(), "{arming}");
    assert!(arming["cpus"].as_u64().unwrap_or(0) >= 1, "{arming}");
    let costs = arming["trackers"].as_array().expect("arming trackers");
    assert_eq!(costs.len(), 3);
    for t in costs {
        let name = &t["tracker"];
        for cost in [
            &t["arm_us_per_page"]["kvmwss_us"],
            &t["arm_us_per_page"]["floor_us"],
            &t["arm_us_per_page_vcpu_running"]["floor_us"],
        ] {
            let m = cost["median"].as_f64().unwrap_or(f64::NAN);
            assert!(m.is_finite(), "{name}: {t}");
        }
        assert_eq!(t["in_situ_tracked_per_round"], 12, "{name}: {t}");
    }
}

/// `bench placement` measures a uffd touch with both placements in each
/// repetition and writes the table it prints the JSON of.
#[test]
fn bench_placement_measures_both_placements_in_each_repetition() {
    if !common::kvm_available("bench_placement_measures_both_placements_in_each_repetition") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("placement.md");
    let json = common::kvm_wss_json(&[
        "bench",
        "placement",
        "--pages",
        "256",
        "--rounds",
        "2",
        "--markdown",
        md.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        (json["pages"].as_u64(), json["rounds"].as_u64()),
        (Some(256), Some(2))
    );
    let reps = json["repetitions"].as_array().expect("repetitions");
    assert_eq!(reps.len(), 2);
    for r in reps {
        let (t, f) = (r["together_us"].as_f64(), r["free_us"].as_f64());
        let (t, f) = (t.expect("together"), f.expect("free"));
        assert!(t > 0.0 && f > 0.0, "{r}");
        let ratio = r["ratio"].as_f64().expect("ratio");
        assert!((ratio - f / t).abs() < 1e-9 * ratio, "{r}");
    }
    let table = std::fs::read_to_string(&md).expect("table written");
    assert!(table.contains("| on one CPU (`--cpu auto`) |"), "{table}");
    assert!(table.contains("Free ÷ together:"), "{table}");
}
