//! Replay is exact: a live run recorded with `--record` and replayed with
//! its own settings and seed gives every interval's estimate (pages, lo,
//! hi) bit for bit, because the guest is held at every tick and an armed
//! page is caught in a tick exactly when it is in that tick's truth.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::RunSpec;
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::record::{self, TRACE_FILE};
use kvm_wss::replay::{ReplaySettings, replay, summarize};
use kvm_wss::report::summary::Summary;
use kvm_wss::run::{RunExtras, RunOutput, run_with};
use kvm_wss::track::TrackerKind;

fn recorded(spec: &RunSpec<'_>, dir: &std::path::Path) -> RunOutput {
    recorded_with(spec, dir, None)
}

fn recorded_with(
    spec: &RunSpec<'_>,
    dir: &std::path::Path,
    record_tick: Option<Duration>,
) -> RunOutput {
    let extras = RunExtras {
        record: true,
        record_tick,
        limit: None,
        keep_rows: true,
        ..RunExtras::default()
    };
    let mut cfg = spec.config();
    cfg.plot = false;
    run_with(&cfg, dir, extras)
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)))
}

/// Records `spec`, replays it with the recorded settings and checks every
/// row's estimate and truth; returns the live output and the replay's
/// summary.
fn check_exact(spec: &RunSpec<'_>, dir: &std::path::Path) -> (RunOutput, Summary) {
    check_exact_with(spec, dir, None)
}

fn check_exact_with(
    spec: &RunSpec<'_>,
    dir: &std::path::Path,
    record_tick: Option<Duration>,
) -> (RunOutput, Summary) {
    let live = recorded_with(spec, dir, record_tick);
    assert!(matches!(live.end, kvm_wss::run::RunEnd::Duration));
    let rec = record::read(&dir.join(TRACE_FILE)).expect("trace");
    assert_eq!(rec.end, kvm_wss::report::summary::EndKind::Duration);
    let settings = ReplaySettings::recorded(&rec.header);
    let rows = replay(&rec, &settings).expect("replay");
    assert_eq!(rows.len(), live.rows.len());
    assert!(live.rows.len() >= 4, "{} rows", live.rows.len());
    for (l, r) in live.rows.iter().zip(&rows) {
        let at = format!("{:?} {:?} at t={}", spec.tracker, spec.estimator, l.t_s);
        assert_eq!(
            (r.est_wss_pages, r.est_lo_pages, r.est_hi_pages),
            (l.est_wss_pages, l.est_lo_pages, l.est_hi_pages),
            "{at}"
        );
        assert_eq!(
            (r.touched_samples, r.sampled_pages),
            (l.touched_samples, l.sampled_pages),
            "{at}"
        );
        assert_eq!(
            (r.true_wss_pages, r.true_wss_write_pages),
            (l.true_wss_pages, l.true_wss_write_pages),
            "{at}"
        );
        assert_eq!(
            (r.t_s, r.interval_s, r.full),
            (l.t_s, l.interval_s, l.full),
            "{at}"
        );
        assert_eq!(r.guest_ops, l.guest_ops, "{at}");
    }
    assert!(
        live.rows.iter().any(|r| r.touched_samples > 0),
        "nothing was caught"
    );
    assert_eq!(
        kvm_wss::replay::live_matches(&rec, &rows),
        (rows.len(), rows.len())
    );
    let summary = summarize(&rec, &settings, &rows);
    assert_eq!(summary.est_wss_mean_pages, live.summary.est_wss_mean_pages);
    assert_eq!(summary.mape, live.summary.mape);
    assert_eq!(
        summary.true_wss_mean_pages,
        live.summary.true_wss_mean_pages
    );
    (live, summary)
}

#[test]
fn esx_under_uffd_replays_exactly_and_the_cli_prints_the_same_summary() {
    if !common::kvm_available("esx_under_uffd_replays_exactly") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        wss: 16 << 20,
        duration: Duration::from_secs(4),
        interval: Duration::from_millis(400),
        tracker: TrackerKind::Uffd,
        sample_pages: 400,
        params: &[("period", "1200ms")],
        ..RunSpec::new("phases")
    };
    let (_, summary) = check_exact(&spec, dir.path());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(["replay", "--json"])
        .arg(dir.path())
        .output()
        .expect("kvm-wss replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = summary.intervals;
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("{n} of {n} intervals equal the live estimates")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Compared as text: serde_json parses some floats one ulp off.
    let expected = serde_json::to_string_pretty(&summary).expect("JSON") + "\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);

    // Another seed is another sample: the estimates change, the truth not.
    let rec = record::read(&dir.path().join(TRACE_FILE)).expect("trace");
    let base = ReplaySettings::recorded(&rec.header);
    let a = replay(&rec, &base).expect("replay");
    let b = replay(&rec, &ReplaySettings { seed: 99, ..base }).expect("replay");
    assert_ne!(
        a.iter().map(|r| r.est_wss_pages).collect::<Vec<_>>(),
        b.iter().map(|r| r.est_wss_pages).collect::<Vec<_>>()
    );
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.true_wss_pages == y.true_wss_pages)
    );
}

#[test]
fn damon_replays_exactly_at_its_tick() {
    if !common::kvm_available("damon_replays_exactly_at_its_tick") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        wss: 16 << 20,
        duration: Duration::from_secs(3),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::Uffd,
        estimator: EstimatorKind::Damon,
        params: &[("period", "1s")],
        ..RunSpec::new("phases")
    };
    let (live, _) = check_exact(&spec, dir.path());
    let rec = record::read(&dir.path().join(TRACE_FILE)).expect("trace");
    assert_eq!(rec.header.ticks_per_interval, 20);
    // Every interval but the last (cut by the end of the run) has 20 ticks.
    let mut lengths = Vec::new();
    let mut n = 0;
    for t in &rec.ticks {
        n += 1;
        if t.close.is_some() {
            lengths.push(n);
            n = 0;
        }
    }
    assert_eq!(n, 0, "ticks after the last interval");
    assert_eq!(lengths.len(), live.rows.len());
    let (last, rest) = lengths.split_last().expect("intervals");
    assert!(rest.iter().all(|&n| n == 20), "{lengths:?}");
    assert!((1..=20).contains(last), "{lengths:?}");
}

#[test]
fn dirty_log_replays_exactly_against_written_pages() {
    if !common::kvm_available("dirty_log_replays_exactly_against_written_pages") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        wss: 8 << 20,
        duration: Duration::from_secs(3),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::DirtyLog,
        estimator: EstimatorKind::Exhaustive,
        params: &[("write_ratio", "0.5")],
        ..RunSpec::new("zipf")
    };
    let (live, _) = check_exact(&spec, dir.path());
    for r in live.rows.iter().filter(|r| r.full) {
        assert_eq!(r.est_wss_pages, Some(r.true_wss_write_pages as f64));
    }
}

/// `kvm-wss` with `args`: exit code and stderr.
fn kvm_wss(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .output()
        .expect("kvm-wss");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_traces_and_settings_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().as_os_str();
    let replay = |extra: &[&str]| {
        let mut args = vec![std::ffi::OsStr::new("replay"), d];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        kvm_wss(&args)
    };
    let one_line = |(code, err): (Option<i32>, String), needle: &str| {
        assert_eq!(code, Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    };
    one_line(replay(&[]), "lacks trace.bin");
    std::fs::write(dir.path().join(TRACE_FILE), b"KWSSTRC\0\x02\0\0\0\xff\xff").expect("write");
    one_line(replay(&[]), "cut short");
    std::fs::write(dir.path().join(TRACE_FILE), b"not a trace at all").expect("write");
    one_line(replay(&[]), "bad magic");
    one_line(replay(&["--interval", "0"]), "--interval");
    let run = ["run", "--guest", "seq", "--record", "--duration", "1s"].map(std::ffi::OsStr::new);
    one_line(kvm_wss(&run), "--record needs a tracker");
}

#[test]
fn an_esx_trace_cannot_feed_damon_ticks_it_does_not_have() {
    if !common::kvm_available("an_esx_trace_cannot_feed_damon_ticks_it_does_not_have") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        duration: Duration::from_secs(2),
        tracker: TrackerKind::Uffd,
        ..RunSpec::new("seq")
    };
    recorded(&spec, dir.path());
    let args = ["replay", "--estimator", "damon"].map(std::ffi::OsStr::new);
    let mut all = args.to_vec();
    all.push(dir.path().as_os_str());
    let (code, err) = kvm_wss(&all);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("multiple of 20"), "{err}");
    // Twenty recorded ticks per damon interval, one per damon tick.
    all.extend(["--interval", "20", "--damon-ticks", "20"].map(std::ffi::OsStr::new));
    let (code, err) = kvm_wss(&all);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_finer_record_tick_replays_exactly_and_feeds_damon() {
    if !common::kvm_available("a_finer_record_tick_replays_exactly_and_feeds_damon") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = RunSpec {
        wss: 16 << 20,
        duration: Duration::from_secs(3),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::Uffd,
        sample_pages: 400,
        params: &[("period", "1s")],
        ..RunSpec::new("phases")
    };
    // esx ticks once per interval; the trace has 20 ticks of 25 ms in it.
    let (live, _) = check_exact_with(&spec, dir.path(), Some(Duration::from_millis(25)));
    let rec = record::read(&dir.path().join(TRACE_FILE)).expect("trace");
    assert_eq!(rec.header.ticks_per_interval, 20);
    assert_eq!(rec.header.tick_ns, 25_000_000);
    assert!(rec.ticks.len() > 20 * (live.rows.len() - 1));
    // The same trace drives damon at one recorded tick per damon tick.
    let mut damon = ReplaySettings::recorded(&rec.header);
    damon.estimator.kind = EstimatorKind::Damon;
    damon.estimator.damon.ticks_per_interval = 20;
    let rows = replay(&rec, &damon).expect("damon replay");
    assert_eq!(rows.len(), live.rows.len());
    for (d, l) in rows.iter().zip(&live.rows) {
        assert_eq!(d.true_wss_pages, l.true_wss_pages);
        assert!(d.sampled_pages > 0);
    }
}

/// `follow` live on phases (8 -> 64 -> 16 MiB, 2 s each, over and over),
/// recorded and replayed.
///
/// The population check: live, `follow` samples from the pages `mincore`
/// reports resident in the RAM memfd and counts the pages that became
/// resident in an interval exactly; the replay uses the pages resident at
/// the first boundary (the trace's start set: the guest runs untracked
/// from boot to there, so on a quiet host it may have touched its first
/// phase already) and the union of the trace's touched sets since. Its sample is the k-th resident pages for
/// random k, and its estimate adds the growth of the population, so the
/// replay gives the live estimates and sample sizes bit for bit (checked
/// by `check_exact`) only if the two populations are the same set at every
/// boundary: resident = ever touched. Under uffd (which zaps and fills
/// pages) and mprotect alike.
///
/// Accuracy: a step is caught in the interval it happens or the next
/// (lags 0 expected; the bounds are 1 up and 2 down), and the
/// measurement's MAPE is ~4% here; 15% leaves room for a loaded machine,
/// where a boundary may fall mid-step.
#[test]
fn follow_replays_exactly_from_the_resident_population_and_follows_phases() {
    if !common::kvm_available("follow_replays_exactly_from_the_resident_population") {
        return;
    }
    for tracker in [TrackerKind::Uffd, TrackerKind::Mprotect] {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = RunSpec {
            mem: 256 << 20,
            wss: 64 << 20,
            duration: Duration::from_secs(13),
            interval: Duration::from_secs(1),
            tracker,
            estimator: EstimatorKind::Follow,
            sample_pages: 400,
            params: &[("period", "2s"), ("sizes", "8M,64M,16M")],
            warmup_intervals: 1,
            ..RunSpec::new("phases")
        };
        let (live, _) = check_exact(&spec, dir.path());
        if tracker != TrackerKind::Uffd {
            continue;
        }
        let s = &live.summary;
        assert!(s.lag_up_events >= 1 && s.lag_down_events >= 1, "{s:?}");
        let up = s.lag_up_intervals.expect("a resolved rise");
        let down = s.lag_down_intervals.expect("a resolved fall");
        assert!(up <= 1.0 && down <= 2.0, "lag up {up}, down {down}");
        let mape = s.mape.expect("mape");
        assert!(mape <= 0.15, "mape {mape}");
    }
}
