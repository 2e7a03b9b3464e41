//! Bad input through the real binary: one clear line on stderr, a distinct
//! exit code, never a panic. Exit codes: 2 usage, 1 runtime, 3 guest crash.

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
