//! Reclaim under a resident limit, on real guests: evicted pages come back
//! byte for byte (the checksum of a fixed ops budget equals the unlimited
//! twin's), the limit holds at every boundary, a limit above the working
//! set evicts nothing, exhaustive tracking still equals the truth, and the
//! process's shared memory stays near the limit.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::RunSpec;
use kvm_wss::coordinate::limit::LimitHandle;
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::run::{RunExtras, RunOutput, run_with};
use kvm_wss::track::TrackerKind;

const PAGE: u64 = 4096;

/// Runs `spec` with a resident limit of `limit_pages` if given.
fn run(spec: &RunSpec<'_>, limit_pages: Option<u64>) -> RunOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = limit_pages.map(|pages| {
        let l = LimitHandle::unlimited();
        l.set_pages(Some(pages));
        l
    });
    let extras = RunExtras {
        limit,
        keep_rows: true,
        ..RunExtras::default()
    };
    let cfg = spec.config();
    run_with(&cfg, dir.path(), extras)
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)))
}

/// The guest's own account of a run: exit, ops, checksum, results and
/// phase markers.
fn outcome(out: &RunOutput) -> (Option<u64>, u64, common::GuestOutcome) {
    (
        out.summary.guest_exit_code,
        out.summary.guest_ops,
        common::GuestOutcome::of(out),
    )
}

/// A program whose working set is four times the limit ends exactly as
/// its unlimited twin, after many refaults, with the limit held at every
/// boundary.
fn same_result_as_the_unlimited_twin(
    guest: &str,
    tracker: TrackerKind,
    wss: u64,
    params: &[(&str, &str)],
    limit_pages: u64,
) {
    let spec = RunSpec {
        tracker,
        wss,
        mem: 4 * wss,
        duration: Duration::from_secs(120),
        interval: Duration::from_millis(200),
        params,
        ..RunSpec::new(guest)
    };
    let twin = run(&spec, None);
    let limited = run(&spec, Some(limit_pages));
    assert_eq!(twin.summary.guest_exit_code, Some(0), "{guest}: twin exit");
    assert!(
        twin.summary.guest_checksum.is_some(),
        "{guest}: no checksum"
    );
    assert_eq!(outcome(&limited), outcome(&twin), "{guest}: guest outcome");
    assert!(twin.rows.iter().all(|r| r.resident_pages.is_none()));
    let r = limited.summary.reclaim.as_ref().expect("reclaim summary");
    assert!(
        r.refaults > 0 && r.evicted_pages >= r.refaults,
        "{guest}: {r:?}"
    );
    assert_eq!(r.limit_pages, Some(limit_pages));
    for row in &limited.rows {
        let resident = row.resident_pages.expect("resident under a limit");
        assert!(
            resident <= limit_pages,
            "{guest}: {resident} resident at {}",
            row.t_s
        );
    }
    let refaults: u64 = limited.rows.iter().map(|r| r.refaults).sum();
    assert_eq!(refaults, r.refaults);
    if tracker == TrackerKind::Uffd {
        let counters = &limited.summary.tracker_stats.mechanism;
        assert_eq!(counters["refaults"], r.refaults, "{guest}");
        assert_eq!(counters["restore_eexist"], 0, "{guest}");
        assert_eq!(counters["handler_errors"], 0, "{guest}");
        // The resident pages it counted were held against mincore.
        assert!(counters["resident_checks"] >= 1, "{guest}");
    }
    // What was evicted and not touched again is still in the store.
    assert_eq!(r.store_pages, r.evicted_pages - r.refaults, "{guest}");
}

/// `random`'s budget, paced over about 2 s: unpaced, a quiet host can finish
/// it before the first boundary, so nothing would be evicted in time to
/// come back.
const RANDOM_PACED: &[(&str, &str)] = &[("ops", "100000"), ("rate", "50000")];

#[test]
fn random_under_a_limit_computes_what_its_unlimited_twin_does() {
    if !common::kvm_available("random_under_a_limit_computes_what_its_unlimited_twin_does") {
        return;
    }
    same_result_as_the_unlimited_twin("random", TrackerKind::Uffd, 16 << 20, RANDOM_PACED, 1024);
}

#[test]
fn reclaim_without_a_tracker_restores_through_its_own_uffd_handler() {
    if !common::kvm_available("reclaim_without_a_tracker_restores_through_its_own_uffd_handler") {
        return;
    }
    same_result_as_the_unlimited_twin("random", TrackerKind::None, 16 << 20, RANDOM_PACED, 1024);
}

#[test]
fn stencil_under_a_limit_computes_what_its_unlimited_twin_does() {
    if !common::kvm_available("stencil_under_a_limit_computes_what_its_unlimited_twin_does") {
        return;
    }
    // Grids of real values: a restored byte out of place breaks the
    // conserved heat the guest checks, and the checksum.
    same_result_as_the_unlimited_twin(
        "stencil",
        TrackerKind::Uffd,
        12 << 20,
        &[("ops", "20000000")],
        768,
    );
}

#[test]
fn a_limit_above_the_working_set_evicts_nothing() {
    if !common::kvm_available("a_limit_above_the_working_set_evicts_nothing") {
        return;
    }
    // Runs until the duration ends: at least one boundary, whatever the
    // host's load.
    let spec = RunSpec {
        tracker: TrackerKind::Uffd,
        wss: 4 << 20,
        mem: 32 << 20,
        duration: Duration::from_secs(1),
        interval: Duration::from_millis(200),
        ..RunSpec::new("random")
    };
    let out = run(&spec, Some(2048));
    assert!(!out.rows.is_empty());
    for row in &out.rows {
        assert_eq!((row.evicted_pages, row.refaults), (0, 0), "at {}", row.t_s);
        let resident = row.resident_pages.expect("resident under a limit");
        assert!(
            resident <= 1024,
            "{resident} resident with a 4M working set"
        );
    }
    let r = out.summary.reclaim.as_ref().expect("reclaim summary");
    assert_eq!((r.evicted_pages, r.refaults, r.store_pages), (0, 0, 0));
    assert_eq!(r.resident_max_pages, Some(1024));
}

#[test]
fn exhaustive_uffd_equals_the_truth_under_a_limit() {
    if !common::kvm_available("exhaustive_uffd_equals_the_truth_under_a_limit") {
        return;
    }
    // Sizes cycle through 2M, 8M, 4M against a limit of 3M: the guest
    // refaults armed pages in most intervals, and each must count as the
    // touch it is.
    let params = [("sizes", "2M,8M,4M"), ("period", "1s")];
    let spec = RunSpec {
        tracker: TrackerKind::Uffd,
        wss: 8 << 20,
        mem: 32 << 20,
        duration: Duration::from_secs(6),
        interval: Duration::from_millis(250),
        estimator: EstimatorKind::Exhaustive,
        params: &params,
        ..RunSpec::new("phases")
    };
    let out = run(&spec, Some(768));
    let full = out.rows.iter().filter(|r| r.full).count();
    assert!(full >= 10, "{full} full intervals");
    let off = common::exhaustive_mismatches(&out, TrackerKind::Uffd);
    assert!(off.is_empty(), "off the truth: {off:?}");
    let r = out.summary.reclaim.as_ref().expect("reclaim summary");
    assert!(r.refaults > 0, "{r:?}");
    assert!(
        out.rows.iter().any(|r| r.full && r.refaults > 0),
        "no full interval had a refault"
    );
}

/// RssShmem of a process, pages.
fn rss_shmem_pages(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssShmem:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / PAGE)
}

#[test]
fn shared_memory_of_the_vmm_stays_near_the_limit() {
    if !common::kvm_available("shared_memory_of_the_vmm_stays_near_the_limit") {
        return;
    }
    // 8192 pages, paced at 2000 accesses/s for 8 s: unlimited, the guest
    // would map most of them. The limit is 512 pages.
    let limit_pages = 512;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args([
            "run",
            "--guest",
            "random",
            "--wss",
            "32M",
            "--mem",
            "64M",
            "--tracker",
            "uffd",
            "--interval",
            "200ms",
            "--duration",
            "8s",
            "--param",
            "rate=2000",
            "--resident-limit",
            &(limit_pages * PAGE).to_string(),
            "--no-plot",
            "--quiet",
            "--out",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn kvm-wss");
    let pid = child.id();
    let mut max_rss = 0;
    let status = loop {
        if let Some(pages) = rss_shmem_pages(pid) {
            max_rss = max_rss.max(pages);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "kvm-wss run: {status}");
    let rows =
        kvm_wss::report::timeseries::read_timeseries(&dir.path().join("timeseries.csv")).unwrap();
    let summary = kvm_wss::report::summary::read_summary(&dir.path().join("summary.json")).unwrap();
    let r = summary.reclaim.as_ref().expect("reclaim summary");
    assert!(r.evicted_pages > 0, "{r:?}");
    // Between two boundaries the guest maps at most the pages it reaches
    // (one per access for `random`), on top of at most the limit resident
    // after the boundary before; the guest's code, stack and the truth
    // bookkeeping outside the data pages add a fixed overhead.
    let overhead = 1024;
    let per_interval = rows.iter().map(|r| r.guest_ops).max().unwrap_or(0);
    let bound = limit_pages + per_interval + overhead;
    assert!(
        max_rss <= bound,
        "RssShmem reached {max_rss} pages; limit {limit_pages}, bound {bound}"
    );
    // Unlimited, the accesses of the run would have mapped about
    // 8192 * (1 - exp(-accesses / 8192)) distinct pages: the limit kept
    // the process well below that.
    let accesses: u64 = rows.iter().map(|r| r.guest_ops).sum();
    let reached = 8192.0 * (1.0 - (-(accesses as f64) / 8192.0).exp());
    assert!(
        (max_rss as f64) < reached / 2.0,
        "RssShmem reached {max_rss} pages, the run's accesses about {reached:.0}"
    );
}

#[test]
fn a_limit_without_the_uffd_tracker_or_under_a_page_is_refused_before_boot() {
    for (tracker, limit, says) in [
        (
            "dirty-log",
            "4M",
            "--resident-limit needs --tracker uffd or none",
        ),
        ("mprotect", "4M", "not --tracker mprotect"),
        ("uffd", "100", "less than one page"),
        ("uffd", "4X", "--resident-limit"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
            .args(["run", "--guest", "random", "--wss", "4M", "--mem", "16M"])
            .args(["--tracker", tracker, "--resident-limit", limit, "--quiet"])
            .output()
            .expect("run kvm-wss");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tracker} {limit}: {stderr}");
        assert!(stderr.contains(says), "{tracker} {limit}: {stderr}");
        if limit != "4X" {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        }
    }
}

/// Pages evicted to the store are still the guest's memory: `follow`'s
/// population (resident pages plus stored ones) stays the set of pages
/// ever touched, so a recorded run under a limit replays estimate for
/// estimate, although `mincore` alone no longer sees the evicted pages.
#[test]
fn follow_under_a_limit_replays_exactly() {
    use kvm_wss::record::{self, TRACE_FILE};
    use kvm_wss::replay::{ReplaySettings, replay};
    if !common::kvm_available("follow_under_a_limit_replays_exactly") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        mem: 64 << 20,
        wss: 16 << 20,
        duration: Duration::from_secs(8),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::Uffd,
        estimator: EstimatorKind::Follow,
        sample_pages: 400,
        params: &[("rate", "8192")],
        ..RunSpec::new("random")
    };
    let limit = LimitHandle::unlimited();
    limit.set_pages(Some(1024));
    let extras = RunExtras {
        limit: Some(limit),
        record: true,
        keep_rows: true,
        ..RunExtras::default()
    };
    let live = run_with(&spec.config(), dir.path(), extras)
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)));
    let r = live.summary.reclaim.as_ref().expect("reclaim summary");
    assert!(r.evicted_pages > 0 && r.store_pages > 0, "{r:?}");
    let rec = record::read(&dir.path().join(TRACE_FILE)).expect("trace");
    let rows = replay(&rec, &ReplaySettings::recorded(&rec.header)).expect("replay");
    assert_eq!(rows.len(), live.rows.len());
    assert!(rows.len() >= 4, "{} rows", rows.len());
    for (l, p) in live.rows.iter().zip(&rows) {
        assert_eq!(
            (
                p.est_wss_pages,
                p.est_lo_pages,
                p.est_hi_pages,
                p.sampled_pages
            ),
            (
                l.est_wss_pages,
                l.est_lo_pages,
                l.est_hi_pages,
                l.sampled_pages
            ),
            "at t={}",
            l.t_s
        );
    }
}
