//! `sweep --replay`: a recorded run's grid evaluated offline. The grid
//! point equal to the recorded settings reproduces the live run's MAPE
//! exactly, the outputs a live sweep writes are there and parse, and what
//! the recording cannot serve is refused before any work (exit 2).
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn kvm_wss(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .output()
        .expect("run kvm-wss")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn sweep_replay_reproduces_the_recorded_setting_and_writes_the_sweep_outputs() {
    if !common::kvm_available("sweep_replay") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let out = kvm_wss(&[
        "run",
        "--guest",
        "phases",
        "--mem",
        "64M",
        "--wss",
        "16M",
        "--param",
        "period=1200ms",
        "--duration",
        "4s",
        "--interval",
        "400ms",
        "--tracker",
        "uffd",
        "--sample-pages",
        "400",
        "--seed",
        "7",
        "--record",
        "--no-plot",
        "--quiet",
        "--out",
        path(&run),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let live: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary"))
            .expect("summary parses");
    let live_mape = live["mape"].as_f64().expect("live mape");

    let sweep = dir.path().join("sweep");
    let out = kvm_wss(&[
        "sweep",
        "--replay",
        path(&run),
        "--estimator",
        "esx,exhaustive",
        "--sample-pages",
        "100,400",
        "--interval",
        "400ms,800ms",
        "--seeds",
        "7,8",
        "--quiet",
        "--out",
        path(&sweep),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    // esx: 2 sizes x 2 intervals; exhaustive once per interval.
    assert_eq!(table.lines().filter(|l| l.starts_with("uffd")).count(), 6);
    assert!(table.contains("recommendation: "), "{table}");

    let mut csv = csv::Reader::from_path(sweep.join("sweep.csv")).expect("sweep.csv");
    let header = csv.headers().expect("header").clone();
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12, "6 settings x 2 seeds");
    let recorded: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| {
            &r[col("estimator")] == "esx"
                && &r[col("sample_pages")] == "400"
                && &r[col("interval_s")] == "0.4"
                && &r[col("seed")] == "7"
        })
        .collect();
    assert_eq!(recorded.len(), 1);
    let mape: f64 = recorded[0][col("mape")].parse().expect("mape");
    assert_eq!(mape, live_mape, "the recorded setting replays exactly");
    // Another seed samples other pages: not the same estimate.
    let other = rows
        .iter()
        .find(|r| {
            &r[col("estimator")] == "esx"
                && &r[col("sample_pages")] == "400"
                && &r[col("interval_s")] == "0.4"
                && &r[col("seed")] == "8"
        })
        .expect("seed 8");
    assert_ne!(&other[col("mape")], &recorded[0][col("mape")]);
    // Costs only a live run measures are absent, not 0.
    assert_eq!(&recorded[0][col("vmm_cpu_s")], "");
    assert_eq!(&recorded[0][col("fault_cost_us")], "");

    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sweep.join("recommendation.json")).expect("recommendation.json"),
    )
    .expect("recommendation.json parses");
    assert_eq!(rec["guest"], "phases");
    assert_eq!(rec["runs"]["planned"], 12);
    assert_eq!(rec["runs"]["counted"], 12);
    let settings = rec["settings"].as_array().expect("settings");
    assert_eq!(settings.len(), 6);
    assert!(settings.iter().all(|s| s["vmm_cpu_s"].is_null()
        && s["fault_cost_us"].is_null()
        && s["faults_per_s"].as_f64().is_some()));
    let message = rec["message"].as_str().expect("message");
    assert!(table.contains(message), "{message}");
    let md = std::fs::read_to_string(sweep.join("sweep.md")).expect("sweep.md");
    assert!(md.starts_with("# Sweep of phases\n"), "{md}");
    assert!(md.contains("| tracker | estimator | sample pages | interval |"));
    assert!(md.contains("Replayed from the recording in"));
}

#[test]
fn sweep_replay_refuses_what_the_recording_cannot_serve_with_exit_2() {
    if !common::kvm_available("sweep_replay_refusals") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let out = kvm_wss(&[
        "run",
        "--guest",
        "seq",
        "--mem",
        "64M",
        "--wss",
        "4M",
        "--duration",
        "2s",
        "--interval",
        "400ms",
        "--tracker",
        "uffd",
        "--record",
        "--no-plot",
        "--quiet",
        "--out",
        path(&run),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sweep = dir.path().join("sweep");
    let refused = |extra: &[&str], says: &str| {
        let mut args = vec!["sweep", "--replay", path(&run), "--out", path(&sweep)];
        args.extend_from_slice(extra);
        let out = kvm_wss(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    refused(
        &["--interval", "400ms,500ms"],
        "--interval 500ms is not a whole number of the recorded tick (400ms)",
    );
    refused(
        &["--interval", "400ms", "--sample-pages", "100000000"],
        "the recording cannot serve",
    );
    refused(&["--emit-jobs", "jobs.txt"], "cannot be used with");
    refused(&["--tracker", "mprotect"], "cannot be used with");
    // Nothing was written for a refused sweep.
    assert!(!sweep.join("sweep.csv").exists());
    let out = kvm_wss(&["sweep", "--replay", path(dir.path()), "--interval", "400ms"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("lacks trace.bin"), "{}", stderr(&out));
}
