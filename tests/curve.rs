//! The working-set curve on a real guest: a live `curve` run recorded with
//! `--record` replays to its own estimates, a sample stays near the trace's
//! exact W(t, τ) at every window, a census (every page in every cohort)
//! gives exactly it, and `kvm-wss replay` writes the curve's files.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::RunSpec;
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::estimate::curve::TAU_TICKS;
use kvm_wss::record::{self, TRACE_FILE};
use kvm_wss::replay::curve::{CURVE_CSV, accuracy, replay_curve};
use kvm_wss::replay::{ReplaySettings, live_matches};
use kvm_wss::run::{RunExtras, run_with};
use kvm_wss::track::TrackerKind;

/// hotset paced so that each 125 ms tick touches the hot tenth of the
/// region and a few hundred new cold pages: W(τ) grows with τ.
fn spec(sample_pages: u64) -> RunSpec<'static> {
    RunSpec {
        mem: 32 << 20,
        wss: 16 << 20,
        duration: Duration::from_secs(6),
        interval: Duration::from_millis(500),
        tracker: TrackerKind::Uffd,
        estimator: EstimatorKind::Curve,
        sample_pages,
        params: &[("rate", "16384")],
        warmup_intervals: 1,
        ..RunSpec::new("hotset")
    }
}

fn record_run(spec: &RunSpec<'_>, dir: &std::path::Path) -> kvm_wss::run::RunOutput {
    let mut cfg = spec.config();
    cfg.plot = false;
    let extras = RunExtras {
        record: true,
        keep_rows: true,
        ..RunExtras::default()
    };
    run_with(&cfg, dir, extras)
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)))
}

#[test]
fn a_sampled_curve_stays_near_the_exact_one_and_the_cli_writes_it() {
    if !common::kvm_available("a_sampled_curve_stays_near_the_exact_one") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let live = record_run(&spec(3600), dir.path());
    let rec = record::read(&dir.path().join(TRACE_FILE)).expect("trace");
    assert_eq!(rec.header.ticks_per_interval, 4);
    let settings = ReplaySettings::recorded(&rec.header);
    let out = replay_curve(&rec, &settings).expect("replay");
    assert_eq!(out.rows.len(), live.rows.len());
    assert_eq!(
        live_matches(&rec, &out.rows),
        (live.rows.len(), live.rows.len())
    );
    let mut taus: Vec<u32> = out.curve.iter().map(|c| c.tau_ticks).collect();
    taus.sort_unstable();
    taus.dedup();
    assert_eq!(taus, TAU_TICKS);
    assert!(out.curve.iter().all(|c| c.exact.is_some()));
    let acc = accuracy(&out.curve);
    assert_eq!(acc.len(), 5);
    for a in &acc {
        // 1200 pages of an ~8000-page domain per point, W at least a tenth
        // of it: a relative standard error under 8%, whatever the load
        // (which changes the trace, not the sampling).
        let mape = a.mape.expect("mape");
        assert!(mape < 0.25, "τ = {} ticks: MAPE {mape}", a.tau_ticks);
        assert!(a.points >= 4, "{a:?}");
    }

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .arg("replay")
        .arg(dir.path())
        .output()
        .expect("kvm-wss replay");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(stdout.contains("| window τ |"), "{stdout}");
    let csv = std::fs::read_to_string(dir.path().join(CURVE_CSV)).expect("curve.csv");
    assert_eq!(csv.lines().count(), out.curve.len() + 1);
    assert!(dir.path().join("wss_curve.svg").is_file());
    assert!(dir.path().join("wss_curve.png").is_file());

    // A census of the same trace: three cohorts per interval of the whole
    // domain each. Every point is then exactly the trace's W(t, τ).
    let census = ReplaySettings {
        estimator: kvm_wss::estimate::EstimatorConfig {
            sample_pages: 3 * rec.header.estimator.domain_pages,
            ..settings.estimator
        },
        ..settings
    };
    let out = replay_curve(&rec, &census).expect("census replay");
    assert!(!out.curve.is_empty());
    for c in &out.curve {
        let exact = c.exact.expect("exact known") as f64;
        assert_eq!((c.est, c.lo, c.hi), (exact, exact, exact), "{c:?}");
    }
    // The curve grows with the window (new cold pages every tick).
    let means: Vec<f64> = accuracy(&out.curve)
        .iter()
        .map(|a| a.exact_mean_pages.expect("mean"))
        .collect();
    assert_eq!(means.len(), 5);
    assert!(means.windows(2).all(|w| w[0] < w[1]), "{means:?}");
    // The interval's measurement is the τ = interval point: the interval's truth.
    for (i, r) in out.rows.iter().enumerate().filter(|(_, r)| r.full) {
        assert_eq!(r.est_wss_pages, Some(r.true_wss_pages as f64), "row {i}");
    }
}
