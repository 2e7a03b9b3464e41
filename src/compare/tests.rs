use super::*;
use crate::estimate::{DamonConfig, EstimatorConfig, EsxGains};
use crate::record::{PageSet, RecordHeader, Tick};
use crate::track::TrackerKind;

fn setting(estimator: EstimatorKind, size: u64) -> Setting {
    Setting { estimator, size }
}

fn point(program: &str, s: Setting, faults: f64, mape: f64) -> Point {
    Point {
        program: program.into(),
        setting: s,
        mape: Some(mape),
        policy_mape: None,
        lag_up: None,
        lag_down: None,
        band_coverage: None,
        faults_per_s: Some(faults),
        armed_per_interval: None,
        seeds: 1,
    }
}

#[test]
fn esx_is_interpolated_in_log_faults_and_clamped() {
    let pts = [(1000.0, 0.10), (100.0, 0.20)];
    // Halfway in log between 100 and 1000 is their geometric mean.
    let mid = esx_mape_at(&pts, 1000f64.sqrt() * 10.0).unwrap();
    assert!((mid - 0.15).abs() < 1e-12, "{mid}");
    assert_eq!(esx_mape_at(&pts, 100.0), Some(0.20));
    assert_eq!(esx_mape_at(&pts, 1000.0), Some(0.10));
    // Outside the range: the nearest end.
    assert_eq!(esx_mape_at(&pts, 5.0), Some(0.20));
    assert_eq!(esx_mape_at(&pts, 0.0), Some(0.20));
    assert_eq!(esx_mape_at(&pts, 1e6), Some(0.10));
    assert_eq!(esx_mape_at(&[], 10.0), None);
    // A setting that caught nothing counts at the floor: 0.01 is a decade
    // below 0.1, so halfway between 0 (as 0.01) and 1 in log is 0.1.
    let low = [(0.0, 1.0), (1.0, 0.0)];
    let at = esx_mape_at(&low, 0.1).unwrap();
    assert!((at - 0.5).abs() < 1e-12, "{at}");
}

#[test]
fn a_point_averages_each_figure_over_the_seeds_that_measured_it() {
    let s = |mape: f64, lag: Option<f64>, faults: u64| Summary {
        mape: Some(mape),
        lag_down_intervals: lag,
        tracked_faults: Some(faults),
        duration_s: 10.0,
        intervals: 10,
        armed_pages_total: 4000,
        ..Summary::default()
    };
    let p = Point::of(
        "phases",
        setting(EstimatorKind::Follow, 400),
        &[s(0.1, Some(2.0), 100), s(0.3, None, 300)],
    );
    assert!((p.mape.unwrap() - 0.2).abs() < 1e-12);
    // Only the first seed saw a fall.
    assert_eq!(p.lag_down, Some(2.0));
    assert_eq!(p.lag_up, None);
    assert_eq!(p.faults_per_s, Some(20.0));
    assert_eq!(p.armed_per_interval, Some(400.0));
    assert_eq!(p.seeds, 2);
}

#[test]
fn equal_cost_rows_are_medians_over_the_programs() {
    let esx = |n| setting(EstimatorKind::Esx, n);
    let follow = setting(EstimatorKind::Follow, 100);
    let mut points = Vec::new();
    // ESX: 20% at 100 faults/s, 10% at 1000, on every program.
    for (prog, follow_faults, follow_mape) in
        [("a", 100.0, 0.02), ("b", 1000.0, 0.04), ("c", 5000.0, 0.08)]
    {
        points.push(point(prog, esx(100), 100.0, 0.2));
        points.push(point(prog, esx(400), 1000.0, 0.1));
        points.push(point(prog, follow, follow_faults, follow_mape));
    }
    let c = Comparison { points };
    assert_eq!(c.programs(), ["a", "b", "c"]);
    assert_eq!(c.sizes(EstimatorKind::Esx), [100, 400]);
    let rows = c.equal_cost(EstimatorKind::Follow);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    // follow: 2%, 4%, 8%; ESX at its faults: 20%, 10%, 10% (clamped).
    assert_eq!(r.median_mape, Some(0.04));
    assert_eq!(r.median_esx_mape, Some(0.1));
    assert!((r.ratio.unwrap() - 0.4).abs() < 1e-12);
    assert_eq!(r.programs, 3);
    assert_eq!(c.best().map(|b| b.setting), Some(follow));
    assert!(c.equal_cost(EstimatorKind::Damon).is_empty());
    let table = tables::equal_cost_table(&c);
    assert!(
        table.contains("| follow | 100 sample pages | 4% | 10% | 0.40 | 3 |"),
        "{table}"
    );
}

#[test]
fn csv_rows_put_damons_size_in_its_own_column() {
    let c = Comparison {
        points: vec![
            point("a", setting(EstimatorKind::Esx, 400), 100.0, 0.2),
            point("a", setting(EstimatorKind::Damon, 1000), 100.0, 0.5),
        ],
    };
    let rows = tables::csv_rows(&c);
    assert_eq!(rows[0][1..4], ["esx", "400", ""]);
    assert_eq!(rows[1][1..4], ["damon", "", "1000"]);
    // Both at 100 faults/s: ESX's MAPE there is its own.
    assert_eq!(rows[1][12], "0.2");
    assert_eq!(rows[0].len(), tables::CSV_COLUMNS.len());
}

/// 10 s of 50 ms ticks (20 per 1 s interval, DAMON's tick) over 1000
/// pages: a window of 300 pages, moving.
fn recording() -> Recording {
    let tick_ns = 50_000_000;
    let header = RecordHeader {
        guest: "scripted".into(),
        tracker: TrackerKind::Uffd,
        estimator: EstimatorConfig {
            kind: EstimatorKind::Follow,
            domain_pages: 1000,
            sample_pages: 400,
            esx: EsxGains::default(),
            damon: DamonConfig::default(),
            follow: Default::default(),
        },
        seed: 1,
        interval_ns: 20 * tick_ns,
        ticks_per_interval: 20,
        tick_ns,
        warmup_intervals: 1,
        mem_pages: 4096,
        wss_bytes: 1000 * 4096,
        vcpus: 1,
    };
    let ticks = (0..200u64)
        .map(|i| {
            let from = (i / 20 * 37) % 700;
            Tick {
                t_end_ns: (i + 1) * tick_ns,
                ran_ns: tick_ns - 1000,
                guest_ops: 100,
                phase: 0,
                stopped: false,
                close: None,
                touched: PageSet::from_sorted(from..from + 300),
                written: PageSet::from_sorted(from..from + 300),
            }
        })
        .collect();
    Recording {
        header,
        start: PageSet::default(),
        ticks,
        end: crate::report::summary::EndKind::Duration,
    }
}

#[test]
fn measuring_replays_every_setting_with_every_seed_deterministically() {
    let recs = vec![("scripted".to_string(), recording())];
    let grid = [
        setting(EstimatorKind::Esx, 50),
        setting(EstimatorKind::Esx, 400),
        setting(EstimatorKind::Damon, 100),
        setting(EstimatorKind::Follow, 100),
    ];
    let c = measure(&recs, &grid, &[1, 2, 3]).unwrap();
    assert_eq!(c.points.len(), 4);
    assert!(c.points.iter().all(|p| p.seeds == 3 && p.mape.is_some()));
    let faults = |s| c.point("scripted", s).and_then(|p| p.faults_per_s).unwrap();
    // A bigger ESX sample catches more touches: 30% of the sample is in
    // the window every interval, so 400 pages catch about 120 a second.
    assert!(faults(grid[1]) > 4.0 * faults(grid[0]));
    assert!(
        (faults(grid[1]) - 120.0).abs() < 30.0,
        "{}",
        faults(grid[1])
    );
    // The same replays again give the same points.
    assert_eq!(measure(&recs, &grid, &[1, 2, 3]).unwrap(), c);
    // The seeds matter: one seed alone gives another mean.
    let one = measure(&recs, &grid[..1], &[1]).unwrap();
    assert_eq!(one.points[0].seeds, 1);
    assert_ne!(one.points[0].mape, c.points[0].mape);
    // A setting the recording cannot serve names itself.
    let bad = measure(&recs, &[setting(EstimatorKind::Esx, 5000)], &[1]).unwrap_err();
    assert_eq!(bad.to_string(), "cannot replay scripted with esx at 5000");
}
