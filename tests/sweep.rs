//! `kvm-wss sweep` through the real binary: a small grid finishes with its
//! CSV, heat maps and recommendation; Ctrl-C keeps what was measured; bad
//! lists are usage errors.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
            "esx and follow need at least one sampled page",
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

/// The 2x2 grid of the job-list tests: 2 s runs.
fn jobs_grid(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "sweep",
        "--guest",
        "hotset",
        "--wss",
        "8M",
        "--mem",
        "64M",
        "--duration",
        "2s",
        "--warmup",
        "1",
        "--sample-pages",
        "50,200",
        "--interval",
        "250ms,500ms",
        "--tracker",
        TRACKER,
        "--no-plot",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(out.to_str().expect("utf-8 path").to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Emits the job list of the grid into `jobs`; returns its lines.
fn emit(out: &Path, jobs: &Path) -> Vec<String> {
    let o = kvm_wss(&jobs_grid(
        out,
        &["--emit-jobs", jobs.to_str().expect("utf-8")],
    ));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(jobs)
        .expect("job list")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs job lines the way the README says, `xargs -d '\n' -P 2 -n 1 sh -c`.
fn xargs(lines: &[String]) {
    let mut child = Command::new("xargs")
        .args(["-d", "\n", "-P", "2", "-n", "1", "sh", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("xargs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write a job line");
        }
    }
    assert!(child.wait().expect("xargs").success(), "a job failed");
}

fn collect(out: &Path) -> Output {
    kvm_wss(&[
        "sweep".to_string(),
        "--collect".to_string(),
        out.to_str().expect("utf-8").to_string(),
    ])
}

/// The run folders of the grid, as a local sweep names them, in plan order.
const GRID_RUNS: [&str; 4] = [
    "uffd-esx-s50-i250ms-r0",
    "uffd-esx-s50-i500ms-r0",
    "uffd-esx-s200-i250ms-r0",
    "uffd-esx-s200-i500ms-r0",
];

#[test]
fn emitted_jobs_run_with_xargs_and_collect_into_a_recommendation() {
    if !common::kvm_available("emitted_jobs_run_with_xargs_and_collect_into_a_recommendation") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A space in the path: the job lines must quote it.
    let out = dir.path().join("results folder");
    let jobs = dir.path().join("jobs.txt");
    let lines = emit(&out, &jobs);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, run) in lines.iter().zip(GRID_RUNS) {
        assert!(line.contains(" run --guest hotset "), "{line}");
        assert!(line.ends_with(" --no-plot --quiet"), "{line}");
        assert!(line.contains(&format!("/results folder/{run}'")), "{line}");
    }
    xargs(&lines);
    let o = collect(&out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("4 runs on "), "{stderr}");
    assert!(stdout.contains("recommendation: "), "{stdout}");

    let (header, rows) = read_csv(&out.join("sweep.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    let got: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(&r[col("tracker")], TRACKER);
            assert_eq!(&r[col("estimator")], "esx");
            assert_eq!(&r[col("end")], "duration");
            assert!(r[col("host")].contains("\"kvm\""), "{}", &r[col("host")]);
            (
                r[col("run_dir")].to_string(),
                r[col("sample_pages")].to_string(),
                r[col("interval_s")].to_string(),
                r[col("seed")].to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = GRID_RUNS
        .iter()
        .zip([
            ("50", "0.25"),
            ("50", "0.5"),
            ("200", "0.25"),
            ("200", "0.5"),
        ])
        .map(|(run, (n, i))| (run.to_string(), n.into(), i.into(), "1".into()))
        .collect();
    assert_eq!(got, want);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("recommendation.json")).expect("recommendation.json"),
    )
    .expect("json");
    assert_eq!(json["runs"]["finished"], 4, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

#[test]
fn collect_over_a_local_sweep_reproduces_it_byte_for_byte() {
    if !common::kvm_available("collect_over_a_local_sweep_reproduces_it_byte_for_byte") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let o = kvm_wss(&jobs_grid(&out, &[]));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let files = ["sweep.csv", "sweep.md", "recommendation.json"];
    let local: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(out.join(f)).expect(f))
        .collect();
    let o = collect(&out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (f, before) in files.iter().zip(&local) {
        let after = std::fs::read(out.join(f)).expect(f);
        assert!(
            after == *before,
            "{f} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(&after)
        );
    }
    // The job list uses the local sweep's run ids: all finished, none listed.
    assert!(emit(&out, &dir.path().join("jobs.txt")).is_empty());
}

#[test]
fn a_job_list_emitted_again_lists_only_the_runs_not_finished() {
    if !common::kvm_available("a_job_list_emitted_again_lists_only_the_runs_not_finished") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let jobs = dir.path().join("jobs.txt");
    let first = emit(&out, &jobs);
    assert_eq!(first.len(), 4);
    // A runner killed half-way: only the first two lines ran.
    xargs(&first[..2]);
    let o = collect(&out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    for (i, run) in GRID_RUNS.iter().enumerate() {
        let missing = format!("missing: {run} ");
        assert_eq!(stderr.contains(&missing), i >= 2, "{run}: {stderr}");
    }
    assert!(stderr.contains("2 of 4 runs missing"), "{stderr}");
    // A run folder left without summary.json (killed mid-run) is listed again.
    std::fs::create_dir_all(out.join(GRID_RUNS[2])).expect("mkdir");
    let again = emit(&out, &jobs);
    assert_eq!(again, first[2..]);
    xargs(&again);
    assert!(emit(&out, &jobs).is_empty());
    let o = collect(&out);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(read_csv(&out.join("sweep.csv")).1.len(), 4);
}
