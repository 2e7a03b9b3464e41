//! `kvm-wss study --quick` end to end: every run, figure and the document,
//! through the real binary.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The targets of markdown images and links in `doc` that point into study/.
fn study_paths(doc: &str) -> Vec<String> {
    doc.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|p| p.starts_with("study/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn quick_study_writes_a_complete_document() {
    if !common::kvm_available("quick_study_writes_a_complete_document") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("docs");
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["study", "--quick", "--out"])
        .arg(&out)
        .output()
        .expect("run kvm-wss study");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "study failed: {stderr}");
    assert!(took < Duration::from_secs(90), "quick study took {took:?}");
    assert!(stderr.contains("runs planned"), "{stderr}");
    assert!(stderr.contains("total elapsed"), "{stderr}");

    let doc = std::fs::read_to_string(out.join("study.md")).expect("study.md");
    for bad in ["NaN", "null"] {
        assert!(!doc.contains(bad), "study.md contains {bad:?}");
    }
    let words: Vec<&str> = doc.split(|c: char| !c.is_alphanumeric()).collect();
    assert!(!words.contains(&"inf"), "study.md prints an infinity");
    let paths = study_paths(&doc);
    let figures: Vec<&String> = paths.iter().filter(|p| p.ends_with(".png")).collect();
    let mut distinct = figures.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 6,
        "only {} figures: {figures:?}",
        distinct.len()
    );
    for p in &paths {
        let file = out.join(p);
        let len = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{p} is referenced but missing: {e}"))
            .len();
        assert!(len > 0, "{p} is empty");
    }
    // Each figure has its SVG and its data next to it, and each caption
    // names the command that made it.
    for png in &distinct {
        let stem = Path::new(png.as_str())
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            paths.contains(&format!("study/{stem}.svg")),
            "{stem}: no SVG link"
        );
        assert!(
            paths.contains(&format!("study/data/{stem}.csv")),
            "{stem}: no CSV link"
        );
        let csv = std::fs::read_to_string(out.join(format!("study/data/{stem}.csv"))).unwrap();
        assert!(csv.lines().count() >= 2, "{stem}.csv has no data rows");
        assert!(!csv.contains("NaN") && !csv.contains("null"), "{stem}.csv");
    }
    let command = format!("kvm-wss study --out {} --quick", out.display());
    assert!(doc.matches(&command).count() >= distinct.len());
    assert!(doc.contains("kvm-wss run --guest"));

    // A second invocation reuses every run.
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["study", "--quick", "--out"])
        .arg(&out)
        .output()
        .expect("rerun kvm-wss study");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rerun failed: {stderr}");
    assert!(stderr.contains(" 0 to make"), "{stderr}");
    assert!(stderr.lines().filter(|l| l.contains(": cached")).count() >= 6);
}

/// The quick study as a job list: emitted, run by xargs, collected into
/// the document; emitted again, nothing is left to run.
#[test]
fn quick_study_jobs_run_with_xargs_and_collect_into_the_document() {
    if !common::kvm_available("quick_study_jobs_run_with_xargs_and_collect_into_the_document") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("docs");
    let jobs = dir.path().join("jobs.txt");
    let kvm_wss = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
            .args(["study", "--quick"])
            .args(args)
            .output()
            .expect("run kvm-wss study")
    };
    let path = |p: &Path| p.to_str().expect("utf-8").to_string();
    let o = kvm_wss(&["--out", &path(&out), "--emit-jobs", &path(&jobs)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = std::fs::read_to_string(&jobs).expect("job list");
    assert!(lines.lines().count() > 10, "{lines}");
    let o = Command::new("sh")
        .arg("-c")
        .arg("xargs -d '\\n' -P 2 -n 1 sh -c < \"$1\" > /dev/null")
        .arg("sh")
        .arg(&jobs)
        .output()
        .expect("xargs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = kvm_wss(&["--collect", &path(&out)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains(" runs on "), "{stderr}");
    let doc = std::fs::read_to_string(out.join("study.md")).expect("study.md");
    assert!(doc.contains("## 1. Does it work?"));
    assert!(!doc.contains("## Runs that failed"), "{doc}");
    let o = kvm_wss(&["--out", &path(&out), "--emit-jobs", &path(&jobs)]);
    assert!(o.status.success());
    assert_eq!(std::fs::read_to_string(&jobs).expect("job list"), "");
}
