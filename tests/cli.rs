//! Bad input through the real binary: one clear line on stderr, a distinct
//! exit code, never a panic. Exit codes: 2 usage, 1 runtime, 3 guest crash.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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

/// Checks the exit code, that stderr is one line mentioning `needle`, and
/// that nothing panicked.
fn assert_fails(args: &[&str], code: i32, needle: &str) {
    let o = kvm_wss(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: stderr {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {lines:?}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    assert_fails(&["run", "--guest", "no-such-program"], 2, "unknown guest");
    assert_fails(
        &["run", "--guest", "seq", "--wss", "1G", "--mem", "512M"],
        2,
        "larger than --mem",
    );
    assert_fails(
        &["run", "--guest", "seq", "--mem", "4096G", "--wss", "1M"],
        2,
        "larger than the largest guest RAM",
    );
    assert_fails(&["run", "--guest", "seq", "--mem", "lots"], 2, "not a size");
    assert_fails(
        &["run", "--guest", "seq", "--interval", "1"],
        2,
        "not a positive duration",
    );
    assert_fails(
        &["run", "--guest", "seq", "--param", "bogus=1"],
        2,
        "takes no parameter",
    );
    assert_fails(
        &["run", "--guest", "seq", "--tracker", "ept"],
        2,
        "invalid value",
    );
    assert_fails(&["frobnicate"], 2, "unrecognized subcommand");
}

#[test]
fn mem_beyond_the_address_space_limit_exits_2() {
    // 4 GiB of address space cannot hold 8 GiB of guest RAM: refused
    // before any KVM call, whatever the host's memory.
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" run --guest seq --mem 8G --duration 1s")
        .arg(env!("CARGO_BIN_EXE_kvm-wss"))
        .output()
        .expect("run kvm-wss under sh");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr {err}");
    assert!(
        err.contains("cannot be mapped") && err.contains("RLIMIT_AS"),
        "{err:?}"
    );
    assert_eq!(err.lines().count(), 1, "{err:?}");
}

#[test]
fn bad_images_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an ELF").expect("write");
    assert_fails(
        &[
            "run",
            "--guest",
            text.to_str().expect("utf-8"),
            "--duration",
            "1s",
        ],
        2,
        "not an ELF file",
    );
    // A dynamically linked host program is an ELF, but not a guest.
    assert_fails(
        &["run", "--guest", "/bin/true", "--duration", "1s"],
        2,
        "cannot load the guest image",
    );
}

#[test]
fn memory_too_small_for_the_program_exits_2() {
    if !common::kvm_available("memory_too_small_for_the_program_exits_2") {
        return;
    }
    assert_fails(
        &[
            "run",
            "--guest",
            "seq",
            "--mem",
            "2M",
            "--wss",
            "2M",
            "--duration",
            "1s",
        ],
        2,
        "too small",
    );
    assert_fails(
        &[
            "run",
            "--guest",
            "seq",
            "--mem",
            "3M",
            "--wss",
            "1M",
            "--duration",
            "1s",
        ],
        2,
        "multiple of 2M",
    );
}

fn badcall(call: &str) -> Output {
    kvm_wss(&[
        "run",
        "--guest",
        "badcall",
        "--param",
        &format!("call={call}"),
        "--mem",
        "16M",
        "--wss",
        "4K",
        "--duration",
        "5s",
        "--quiet",
        "--no-plot",
        "--out",
        &std::env::temp_dir()
            .join(format!("kvm-wss-badcall-{call}"))
            .to_string_lossy(),
    ])
}

#[test]
fn rejected_hypercalls_are_reported_and_the_guest_continues() {
    if !common::kvm_available("rejected_hypercalls_are_reported_and_the_guest_continues") {
        return;
    }
    for (call, why) in [
        ("log_oob", "outside guest memory"),
        ("log_huge", "limit is 4096"),
        ("unknown_doorbell", "unknown doorbell"),
        ("narrow", "one aligned 8-byte store"),
        ("read_doorbell", "write-only"),
        ("wild_store", "neither RAM nor a doorbell"),
    ] {
        let o = badcall(call);
        let err = stderr(&o);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{call}: {err}");
        assert!(
            err.contains("rejected guest hypercall") && err.contains(why),
            "{call}: {err}"
        );
        assert!(
            out.contains(&format!("survived {call}")),
            "{call}: guest did not continue: {out}"
        );
    }
}

#[test]
fn guest_crashes_exit_3() {
    if !common::kvm_available("guest_crashes_exit_3") {
        return;
    }
    let o = badcall("triple_fault");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("triple-faulted") && err.contains("rip 0x4") && err.contains("last phase"),
        "{err}"
    );
    let o = badcall("panic");
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("guest panicked: boom 42"),
        "{}",
        stderr(&o)
    );
    let o = badcall("exit_code");
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("exited with code 7"), "{}", stderr(&o));
}

#[test]
fn guests_lists_every_program_name_first() {
    let o = kvm_wss(&["guests"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    for name in [
        "seq", "random", "hotset", "zipf", "phases", "ramp", "stride", "chase", "idle",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing:\n{text}"
        );
    }
}

#[test]
fn ctrl_c_writes_what_was_measured() {
    if !common::kvm_available("ctrl_c_writes_what_was_measured") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args([
            "run",
            "--guest",
            "seq",
            "--wss",
            "4M",
            "--mem",
            "64M",
            "--duration",
            "60s",
            "--interval",
            "500ms",
        ])
        .args(["--tracker", "uffd", "--quiet", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until at least two intervals are on disk, then press Ctrl-C.
    let csv = out.join("timeseries.csv");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "no rows after 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill sends a signal to the child we spawned and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("summary.json")).expect("summary written"),
    )
    .expect("json");
    assert_eq!(summary["end"], "interrupted");
    let rows = std::fs::read_to_string(&csv).expect("csv").lines().count() - 1;
    assert!(rows >= 2, "{rows} rows");
    assert_eq!(summary["intervals"].as_u64(), Some(rows as u64));
    assert!(summary["duration_s"].as_f64().expect("duration") < 30.0);
}

/// Every class of bad value is refused before boot: exit 2, one line. None
/// of these needs KVM, as none gets as far as booting.
#[test]
fn bad_values_are_refused_before_boot() {
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--guest", "zipf", "--duration", "1s", "--quiet"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let check = |extra: &[&str], needle: &str| {
        let args = run(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails(&refs, 2, needle);
    };
    // Program parameters against the catalog's types and ranges.
    for (param, needle) in [
        ("ops=abc", "not a whole number"),
        ("ops=-5", "not a whole number"),
        ("ops=", "not a whole number"),
        ("rate=-1", "not a whole number"),
        ("theta=NaN", "finite number"),
        ("write_ratio=2", "in [0, 1]"),
    ] {
        check(&["--param", param], needle);
    }
    assert_fails(
        &["run", "--guest", "badcall", "--duration", "1s"],
        2,
        "needs --param call",
    );
    // A boot footprint larger than the guest RAM --wss leaves.
    for guest in ["ramp", "idle"] {
        assert_fails(
            &[
                "run",
                "--guest",
                guest,
                "--duration",
                "1s",
                "--mem",
                "64M",
                "--wss",
                "32M",
                "--param",
                "boot=40M",
            ],
            2,
            "--param boot=\"40M\" is not a size such as 0 or 64M that fits in guest RAM",
        );
    }
    // The sampler's shortest interval.
    check(&["--interval", "500us"], "shortest the sampler can honour");
    check(&["--interval", "0.5ms"], "shortest the sampler can honour");
    // The mprotect tracker's limit on armed pages.
    if std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .is_some_and(|m| m < 140_000)
    {
        check(
            &["--tracker", "mprotect", "--sample-pages", "70000"],
            "vm.max_map_count",
        );
    }
    // CPU placements that cannot work here.
    check(&["--cpu", "99999"], "may only run on CPUs");
    check(&["--cpu", "0", "--vcpus", "2"], "pins a guest of one vCPU");
    check(&["--cpu", "first"], "not a CPU placement");
    // Bench rounds.
    assert_fails(&["bench", "native", "--rounds", "0"], 2, "at least 1");
    assert_fails(&["bench", "placement", "--rounds", "0"], 2, "--rounds");
    // Outputs that cannot be written.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let under_file = file.join("run");
    check(
        &["--out", under_file.to_str().expect("utf-8")],
        "cannot write to the output folder",
    );
    // The study's --out too, before its first run.
    assert_fails(
        &[
            "study",
            "--quick",
            "--out",
            under_file.to_str().expect("utf-8"),
        ],
        2,
        "cannot write to the output folder",
    );
    let missing = dir.path().join("missing");
    assert_fails(
        &["plot", missing.to_str().expect("utf-8")],
        2,
        "not a run's output folder",
    );
    assert!(!missing.exists());
    // An image too large to read.
    let big = dir.path().join("big.elf");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(1 << 30))
        .expect("sparse file");
    assert_fails(
        &[
            "run",
            "--guest",
            big.to_str().expect("utf-8"),
            "--duration",
            "1s",
        ],
        2,
        "the limit is",
    );
}

/// Guest log and panic messages with terminal escapes and newlines print
/// as one escaped line each, and cannot forge kvm-wss output.
#[test]
fn guest_text_prints_as_one_escaped_line() {
    if !common::kvm_available("guest_text_prints_as_one_escaped_line") {
        return;
    }
    let o = badcall("ansi_log");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let all = out.clone() + &stderr(&o);
    assert!(!all.contains('\x1b') && !all.contains('\x07') && !all.contains('\r'));
    let logs: Vec<&str> = out.lines().filter(|l| l.starts_with("guest log")).collect();
    assert_eq!(logs.len(), 2, "{out}");
    assert!(
        logs[0]
            .contains(r"evil\u{1b}[31m red\u{1b}]0;pwned\u{7}\nkvm-wss: run finished OK\r\noutput"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("output ")).count(),
        1,
        "{out}"
    );
    let o = badcall("ansi_panic");
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(!err.contains('\x1b') && !err.contains('\x07') && !err.contains('\r'));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("kvm-wss: guest crashed: guest panicked: evil\\u{1b}[31m"),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("kvm-wss: run finished")));
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            if p.is_dir() {
                dir_bytes(&p)
            } else {
                std::fs::metadata(&p).map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// A guest ringing the phase (or log) doorbell in a tight loop keeps the
/// VMM's memory and outputs bounded, and the run ends on time.
#[test]
fn doorbell_spam_is_bounded() {
    if !common::kvm_available("doorbell_spam_is_bounded") {
        return;
    }
    for call in ["phase_spam", "log_spam"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("run");
        let start = std::time::Instant::now();
        let (o, rss_kib) = common::kvm_wss_with_rss(&[
            "run",
            "--guest",
            "badcall",
            "--param",
            &format!("call={call}"),
            "--mem",
            "16M",
            "--wss",
            "4K",
            "--duration",
            "3s",
            "--interval",
            "100ms",
            "--quiet",
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        let took = start.elapsed().as_secs_f64();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{call}: {err}");
        assert!(took < 3.0 + 2.0, "{call}: took {took:.1} s");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("summary.json")).expect("summary"),
        )
        .expect("json");
        if call == "phase_spam" {
            assert_eq!(summary["phases"].as_array().map(Vec::len), Some(1000));
            let dropped = summary["phases_dropped"].as_u64().expect("count");
            assert!(dropped > 0, "{summary}");
            assert!(
                stdout.contains(&format!("capped     {dropped} more phase markers dropped")),
                "{stdout}"
            );
            assert!(out.join("wss.svg").exists());
        } else {
            assert!(summary["logs_dropped"].as_u64().expect("count") > 0);
            assert!(
                stdout.contains("more guest log messages dropped"),
                "{stdout}"
            );
        }
        let bytes = dir_bytes(&out);
        assert!(bytes < 10 << 20, "{call}: outputs are {bytes} bytes");
        assert!(err.lines().count() <= 1, "{call}: {err}");
        assert!(rss_kib < 100 << 10, "{call}: peak RSS {rss_kib} KiB");
        eprintln!("{call}: {took:.2} s, peak RSS {rss_kib} KiB, outputs {bytes} bytes");
    }
}

/// Ctrl-C while the plots are drawn (right after summary.json appears):
/// exit 130 within a second, and every file left is whole, with no
/// temporary file. If the plots happen to be finished before the signal
/// lands, the run exits 0 with both; either way nothing is half-written.
/// (tests/interrupt.rs checks the interrupted path deterministically.)
#[test]
fn ctrl_c_while_writing_outputs_keeps_whole_files() {
    if !common::kvm_available("ctrl_c_while_writing_outputs_keeps_whole_files") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["run", "--guest", "seq", "--wss", "4M", "--mem", "64M"])
        .args(["--duration", "6s", "--interval", "1ms", "--quiet", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let summary = out.join("summary.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !summary.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no summary after 60 s"
        );
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    // SAFETY: kill sends a signal to the child we spawned and still own.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let signalled = std::time::Instant::now();
    let status = child.wait().expect("wait");
    let took = signalled.elapsed().as_secs_f64();
    assert!(took < 1.0, "exited {took:.2} s after Ctrl-C");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).expect("csv");
    assert_eq!(
        s["intervals"].as_u64(),
        Some(csv.lines().count() as u64 - 1)
    );
    if let Ok(svg) = std::fs::read_to_string(out.join("wss.svg")) {
        assert!(svg.trim_end().ends_with("</svg>"), "half-written svg");
    }
    match status.code() {
        Some(130) => eprintln!("interrupted while writing outputs: kept {names:?}"),
        Some(0) => {
            eprintln!("outputs were finished before the signal landed");
            assert!(names.contains(&"wss.png".to_string()), "{names:?}");
        }
        other => panic!("exit {other:?}"),
    }
}
