//! A VM's boot footprint (`--param boot`) on real guests under
//! `kvm-wss coordinate`: its pages are in the true WSS of the intervals
//! that write them and of none after, the `wss` policy takes them back
//! (resident falls to an idle VM's limit), and they come back intact from the
//! store (the checksum, which covers them, equals the uncoordinated
//! twin's).
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use kvm_wss::coordinate::output::{self, VmInterval};
use kvm_wss::coordinate::policy::MIN_HEADROOM_PAGES;

/// 32 MiB of boot footprint, in pages.
const BOOT_PAGES: u64 = 8192;

/// vm1 boots with 32M, then touches one page every 50 ms until its budget
/// of 60 accesses is spent (3 s); vm2 is the same, seed included, without
/// a footprint.
/// Each ends by its budget, so each has a checksum; vm1's final checksum
/// pass reads its whole footprint back, through the store where evicted.
const SCENARIO: &str = r#"
name = "boot"
interval = "500ms"
duration = "15s"
[[vm]]
program = "idle"
wss = "4M"
params = { boot = "32M", every = "50ms", ops = 60 }
[[vm]]
program = "idle"
wss = "4M"
params = { every = "50ms", ops = 60 }
seed = 1
"#;

fn rows_of<'a>(rows: &'a [VmInterval], vm: &str) -> Vec<&'a VmInterval> {
    let mut of: Vec<&VmInterval> = rows.iter().filter(|r| r.vm == vm).collect();
    of.sort_by_key(|r| r.interval);
    of
}

#[test]
fn boot_pages_are_true_wss_once_then_evicted_and_restored_intact() {
    if !common::kvm_available("boot_pages") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("boot.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.path().join("c");
    let o = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["coordinate", "--scenario-file", scenario.to_str().unwrap()])
        .args(["--policy", "wss", "--host-mem", "1G", "--twins", "--quiet"])
        .args(["--no-plot", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rows = output::read_csv(&out.join(output::CSV_FILE)).unwrap();
    let vm1 = rows_of(&rows, "vm1");
    let truth: Vec<u64> = vm1.iter().map(|r| r.true_wss_pages).collect();
    eprintln!("vm1 true WSS per interval: {truth:?}");
    // The boot: the intervals up to the first quiet one hold every boot
    // page exactly once, besides idle's own page (at most once each).
    let booted = truth
        .iter()
        .position(|&t| t <= 1)
        .expect("a quiet interval");
    assert!(booted >= 1, "the boot shows in the first interval");
    let during: u64 = truth[..booted].iter().sum();
    assert!(
        (BOOT_PAGES..=BOOT_PAGES + booted as u64).contains(&during),
        "{during} pages touched while booting, {BOOT_PAGES} boot pages"
    );
    // After it, one page (0 or 1 a half-second) until the final checksum
    // pass, which reads the footprint again (once, through the store).
    let pass = booted
        + truth[booted..]
            .iter()
            .position(|&t| t > 1)
            .expect("a final pass");
    assert!(pass >= booted + 3, "idle long enough to see the eviction");
    let tail: u64 = truth[pass..].iter().sum();
    let tail_len = (truth.len() - pass) as u64;
    assert!(
        (BOOT_PAGES..=BOOT_PAGES + tail_len).contains(&tail),
        "{tail} pages in the final pass"
    );
    // The VM without a footprint never touches more than its page.
    assert!(rows_of(&rows, "vm2").iter().all(|r| r.true_wss_pages <= 1));
    // Under wss the footprint is taken back: resident falls from the boot
    // to an idle VM's limit while the VM idles.
    let resident = |k: usize| vm1[k].resident_pages.unwrap_or(0);
    let most = (0..=booted).map(resident).max().unwrap();
    assert!(most > BOOT_PAGES / 2, "resident {most} while booting");
    eprintln!(
        "vm1 resident: {:?}",
        (0..vm1.len()).map(resident).collect::<Vec<_>>()
    );
    // An idle VM keeps the least headroom above an estimate of about
    // nothing (a few pages when the sample catches its one page).
    let idle = MIN_HEADROOM_PAGES as u64 + 64;
    let least = (booted..pass).map(resident).min().unwrap();
    assert!(
        least <= idle,
        "resident {least} > an idle VM's limit {idle}"
    );
    // ... and returns intact: the final pass refaults it from the store,
    // and the checksum, which folds it in, is the twin's.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(output::JSON_FILE)).unwrap())
            .unwrap();
    let vms = json["vms"].as_array().unwrap();
    for vm in vms {
        assert_eq!(vm["end"], "guest_exit", "{vm}");
        let twin = vm["twin_checksum"].as_str().expect("a twin checksum");
        assert_eq!(vm["checksum"].as_str(), Some(twin), "{vm}");
    }
    let refaults = vms[0]["refaults"].as_u64().unwrap();
    assert!(
        refaults >= BOOT_PAGES - idle,
        "{refaults} refaults: the footprint did not come back through the store"
    );
    // The two differ in the footprint alone: vm1's checksum folds it in.
    assert_ne!(vms[0]["checksum"], vms[1]["checksum"]);
}
