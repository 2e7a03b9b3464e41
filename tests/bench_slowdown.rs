//! `bench slowdown` through the real binary: one short round of uffd and
//! dirty-log, each tracked run between untracked runs of its own guest
//! page size. The slowdowns themselves are the host's noise on a shared
//! machine, so only what the run structure fixes is checked exactly.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[test]
fn bench_slowdown_brackets_each_tracked_run() {
    if !common::kvm_available("bench_slowdown_brackets_each_tracked_run") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let md = dir.path().join("slowdown.md");
    let json = common::kvm_wss_json(&[
        "bench",
        "slowdown",
        "--rounds",
        "1",
        "--trackers",
        "uffd,dirty-log",
        "--duration",
        "1s",
        "--markdown",
        md.to_str().expect("utf-8"),
    ]);
    assert!(json["quiet"].is_boolean());
    // B(2m) uffd B(2m), then B(4k) dirty-log B(4k): no untracked run is
    // shared across page sizes.
    let runs = json["runs"][0].as_array().expect("one round");
    let kinds: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap(),
                r["guest_pages"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("untracked", "2m"),
            ("tracked", "2m"),
            ("untracked", "2m"),
            ("untracked", "4k"),
            ("tracked", "4k"),
            ("untracked", "4k"),
        ]
    );
    assert_eq!(
        json["noise"]["samples"], 0,
        "no untracked run has two neighbours"
    );
    let trackers = json["trackers"].as_array().expect("trackers");
    let names: Vec<&str> = trackers
        .iter()
        .map(|t| t["tracker"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["uffd", "dirty-log"]);
    for t in trackers {
        assert_eq!(t["rounds"], 1, "{t}");
        assert!(t["slowdown"]["median"].as_f64().unwrap().is_finite(), "{t}");
        // seq touches ~25 of 3200 pages sampled per 100 ms interval.
        assert!(t["tracked_faults"]["median"].as_f64().unwrap() > 0.0, "{t}");
    }
    let table = std::fs::read_to_string(&md).expect("markdown written");
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        3,
        "{table}"
    );
}
