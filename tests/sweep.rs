//! `kvm-wss sweep` through the real binary: a small grid finishes with its
//! CSV, heat maps and recommendation; Ctrl-C keeps what was measured; bad
//! lists are usage errors.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kvm_wss::sweep::SETTING_COLUMNS;

/// The tracker the grid tests run.
const TRACKER: &str = "uffd";

fn sweep_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sweep",
        "--guest",
        "hotset",
        "--wss",
        "8M",
        "--mem",
        "64M",
        "--duration",
        "3s",
        "--sample-pages",
        "50,200",
        "--interval",
        "500ms,1s",
        "--tracker",
        TRACKER,
        "--estimator",
        "esx",
        "--no-plot",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.to_str().expect("utf-8 path").to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn kvm_wss(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .output()
        .expect("run kvm-wss")
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_path(path).expect("open sweep.csv");
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = reader.records().map(|r| r.expect("row")).collect();
    (header, rows)
}

#[test]
fn a_two_by_two_grid_writes_csv_heatmaps_and_a_recommendation() {
    if !common::kvm_available("a_two_by_two_grid_writes_csv_heatmaps_and_a_recommendation") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let o = kvm_wss(&sweep_args(&out, &[]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "stdout {stdout}\nstderr {stderr}");

    let (header, rows) = read_csv(&out.join("sweep.csv"));
    assert_eq!(header[..SETTING_COLUMNS.len()], SETTING_COLUMNS);
    for field in [
        "guest",
        "mape",
        "bias_pages",
        "lag_up_intervals",
        "tracked_faults",
        "fault_cost_us",
        "vmm_cpu_s",
        "end",
        "tracker_stats",
    ] {
        assert!(header.iter().any(|h| h == field), "no {field} column");
    }
    assert_eq!(rows.len(), 4, "{rows:?}");
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut cells: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(&r[col("tracker")], TRACKER);
            assert_eq!(&r[col("estimator")], "esx");
            assert_eq!(&r[col("guest")], "hotset");
            assert_eq!(&r[col("end")], "duration");
            assert!(out.join(&r[col("run_dir")]).join("summary.json").is_file());
            let faults: u64 = r[col("tracked_faults")].parse().expect("tracked_faults");
            assert!(faults > 0, "no tracked faults in {r:?}");
            (
                r[col("sample_pages")].to_string(),
                r[col("interval_s")].to_string(),
            )
        })
        .collect();
    cells.sort();
    assert_eq!(
        cells,
        [
            ("200".into(), "0.5".into()),
            ("200".into(), "1".into()),
            ("50".into(), "0.5".into()),
            ("50".into(), "1".into())
        ]
    );

    for metric in ["mape", "faults-per-s"] {
        for ext in ["svg", "png"] {
            let f = out.join(format!("heatmap-{metric}-{TRACKER}-esx.{ext}"));
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{} missing or empty", f.display());
        }
    }
    // No baseline, no slowdown map.
    assert!(
        !out.join(format!("heatmap-slowdown-{TRACKER}-esx.svg"))
            .exists()
    );

    let line = stdout
        .lines()
        .find(|l| l.starts_with("recommendation: "))
        .unwrap_or_else(|| panic!("no recommendation in {stdout}"));
    assert!(line.contains(&format!("--tracker {TRACKER}")), "{line}");
    // One table line per setting, under the header.
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{TRACKER} ")))
            .count(),
        4,
        "{stdout}"
    );
    let md = std::fs::read_to_string(out.join("sweep.md")).expect("sweep.md");
    assert!(md.contains(line), "{md}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("recommendation.json")).expect("recommendation.json"),
    )
    .expect("valid JSON");
    assert_eq!(json["message"], line);
    assert_eq!(json["settings"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["runs"]["counted"], 4);
    assert_eq!(json["targets"]["mape"], 0.1);
}

#[test]
fn ctrl_c_keeps_the_finished_runs_and_exits_130() {
    if !common::kvm_available("ctrl_c_keeps_the_finished_runs_and_exits_130") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let child = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(sweep_args(&out, &["--repeat", "2"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kvm-wss");
    // Interrupt once the first run's row is in sweep.csv.
    let csv = out.join("sweep.csv");
    let start = Instant::now();
    while std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no run finished within 300 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill only sends a signal to the child started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let o = child.wait_with_output().expect("wait for kvm-wss");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "stderr {stderr}");
    assert!(stderr.contains("interrupted after"), "{stderr}");

    let (header, rows) = read_csv(&csv);
    let end = header.iter().position(|h| h == "end").expect("end column");
    // At least the run that was done; at most it and the one interrupted.
    assert!((1..=2).contains(&rows.len()), "{rows:?}");
    assert_eq!(&rows[0][end], "duration");
    if let Some(second) = rows.get(1) {
        assert!(
            ["duration", "interrupted"].contains(&&second[end]),
            "{second:?}"
        );
    }
    let md = std::fs::read_to_string(out.join("sweep.md")).expect("sweep.md");
    assert!(md.contains("of 8 runs finished"), "{md}");
    assert!(md.contains("interrupted by Ctrl-C"), "{md}");
    assert!(out.join("recommendation.json").is_file());
    assert!(
        out.join(format!("heatmap-mape-{TRACKER}-esx.png"))
            .is_file()
    );
}

#[test]
fn bad_sweeps_are_usage_errors_before_any_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    for (extra, needle) in [
        (&["--repeat", "0"][..], "--repeat must be at least 1"),
        (&["--target-mape", "0"], "--target-mape 0 must be"),
        (&["--target-lag=-2"], "--target-lag -2 must be"),
        (
            &["--sample-pages", "0"],
            "esx needs at least one sampled page",
        ),
        (&["--interval", "5s"], "longer than --duration"),
        (&["--sample-pages="], "invalid value"),
        (&["--tracker", "ept"], "invalid value"),
    ] {
        let o = kvm_wss(&sweep_args(&out, extra));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{extra:?}: {stderr:?} lacks {needle:?}"
        );
        assert!(!stderr.contains("panicked"), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} created {}", out.display());
    }
}
