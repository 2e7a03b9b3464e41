//! The working-set curve of a replay (`kvm-wss replay DIR --estimator
//! curve`): every interval's estimated W(t, τ) points, each beside the
//! exact W(t, τ) of the trace (the pages the tracker could see in the
//! window's recorded ticks), written as curve.csv and scored per window.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{ReplayError, ReplaySettings, replay_inner, visible};
use crate::analysis::accuracy::is_scored;
use crate::analysis::working_set_curve::{CurveComparison, TauAccuracy, WindowCounter, per_tau};
use crate::estimate::CurvePoint;
use crate::record::Recording;
use crate::report::ReportError;
use crate::report::timeseries::Row;

/// The curve's file in a run's folder.
pub const CURVE_CSV: &str = "curve.csv";
/// The curve's figure, `<base>.svg` and `<base>.png`.
pub const CURVE_PLOT: &str = "wss_curve";
/// The per-window accuracy, as JSON and as a Markdown table.
pub const CURVE_JSON: &str = "curve.json";
pub const CURVE_MD: &str = "curve.md";

/// One estimated point of the curve, as curve.csv holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveRow {
    /// The interval (from 0) at whose end t the point is measured.
    pub interval: usize,
    /// t, seconds since the start.
    pub t_s: f64,
    /// The window τ, seconds and estimator ticks.
    pub tau_s: f64,
    pub tau_ticks: u32,
    /// W(t, τ) in pages, with its 95% band.
    pub est: f64,
    pub lo: f64,
    pub hi: f64,
    /// Pages the estimate rests on.
    pub sampled_pages: u64,
    /// The exact W(t, τ), when known.
    pub exact: Option<u64>,
    /// Whether the interval enters the metrics (full, after warm-up).
    pub scored: bool,
}

/// A replay's rows and its curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveReplay {
    pub rows: Vec<Row>,
    pub curve: Vec<CurveRow>,
}

/// Replays `settings` over `rec` (as [`super::replay`]) and collects the
/// curve the estimator reports at every interval end, with the exact value
/// of each point. The curve is empty for an estimator without one.
pub fn replay_curve(
    rec: &Recording,
    settings: &ReplaySettings,
) -> Result<CurveReplay, ReplayError> {
    let h = &rec.header;
    // (interval, last recorded tick, recorded ticks per estimator tick, points)
    let mut closes: Vec<(usize, usize, u32, Vec<CurvePoint>)> = Vec::new();
    let rows = replay_inner(
        rec,
        settings,
        |_| {},
        |est, tick| {
            if let Some(points) = est.curve() {
                let per_tick = settings.interval_ticks / est.ticks_per_interval().max(1);
                closes.push((closes.len(), tick, per_tick, points));
            }
        },
    )?;
    // Every interval closes once, so `closes` numbers them as `rows` does.
    let writes_only = h.tracker.writes_only();
    let domain = usize::try_from(h.estimator.domain_pages).unwrap_or(usize::MAX);
    let mut exact = WindowCounter::new(domain);
    let mut curve = Vec::new();
    for (interval, tick, per_tick, points) in closes {
        while exact.ticks() <= tick {
            exact.push(visible(&rec.ticks[exact.ticks()], writes_only).runs());
        }
        let Some(row) = rows.get(interval) else {
            continue;
        };
        for p in points {
            let recorded_ticks = u64::from(p.tau_ticks) * u64::from(per_tick);
            curve.push(CurveRow {
                interval,
                t_s: row.t_s,
                tau_s: Duration::from_nanos(h.tick_ns.saturating_mul(recorded_ticks)).as_secs_f64(),
                tau_ticks: p.tau_ticks,
                est: p.estimate.pages,
                lo: p.estimate.lo,
                hi: p.estimate.hi,
                sampled_pages: p.sampled_pages,
                exact: usize::try_from(recorded_ticks)
                    .ok()
                    .and_then(|k| exact.window(k)),
                scored: is_scored(interval, row, settings.warmup_intervals),
            });
        }
    }
    Ok(CurveReplay { rows, curve })
}

/// Per window, the accuracy of the scored points that have an exact value.
pub fn accuracy(curve: &[CurveRow]) -> Vec<TauAccuracy> {
    let points: Vec<CurveComparison> = curve
        .iter()
        .filter(|c| c.scored)
        .filter_map(|c| {
            c.exact.map(|exact| CurveComparison {
                tau_ticks: c.tau_ticks,
                estimate: crate::estimate::Estimate {
                    pages: c.est,
                    lo: c.lo,
                    hi: c.hi,
                },
                exact,
            })
        })
        .collect();
    per_tau(&points)
}

/// The accuracy of one window of the curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowAccuracy {
    pub tau_s: f64,
    #[serde(flatten)]
    pub accuracy: TauAccuracy,
}

/// What curve.json holds: the replay's cost and the curve's accuracy per
/// window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurveSummary {
    pub guest: String,
    pub sample_pages: u64,
    pub interval_s: f64,
    pub intervals: usize,
    /// Caught touches of the whole replay (one fault each, live).
    pub tracked_faults: u64,
    pub windows: Vec<WindowAccuracy>,
}

impl CurveSummary {
    pub fn of(rec: &Recording, settings: &ReplaySettings, out: &CurveReplay) -> Self {
        let windows = accuracy(&out.curve)
            .into_iter()
            .map(|accuracy| WindowAccuracy {
                tau_s: out
                    .curve
                    .iter()
                    .find(|c| c.tau_ticks == accuracy.tau_ticks)
                    .map_or(f64::NAN, |c| c.tau_s),
                accuracy,
            })
            .collect();
        CurveSummary {
            guest: rec.header.guest.clone(),
            sample_pages: settings.estimator.sample_pages,
            interval_s: super::interval_len(&rec.header, settings.interval_ticks).as_secs_f64(),
            intervals: out.rows.len(),
            tracked_faults: out.rows.iter().map(|r| r.faults).sum(),
            windows,
        }
    }

    /// The per-window table, in Markdown, under a line with the cost.
    pub fn markdown(&self) -> String {
        format!(
            "{} sampled pages per {} s interval, {} intervals, {} tracked faults.\n\n{}",
            self.sample_pages,
            crate::plot::format_tick(self.interval_s),
            self.intervals,
            self.tracked_faults,
            self.table()
        )
    }

    fn table(&self) -> String {
        use crate::analysis::format::{Align, markdown_table, opt_percent};
        let rows: Vec<Vec<String>> = self
            .windows
            .iter()
            .map(|w| {
                let a = &w.accuracy;
                let pages = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
                vec![
                    format!("{} s", crate::plot::format_tick(w.tau_s)),
                    a.points.to_string(),
                    pages(a.exact_mean_pages),
                    pages(a.est_mean_pages),
                    opt_percent(a.mape),
                    opt_percent(a.band_coverage),
                ]
            })
            .collect();
        markdown_table(
            &[
                "window τ",
                "points",
                "exact W(τ), mean pages",
                "estimate, mean pages",
                "MAPE",
                "band coverage",
            ],
            &[
                Align::Left,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
                Align::Right,
            ],
            &rows,
        )
    }
}

/// Writes curve.csv, curve.json, curve.md and the figure of a replay's
/// curve into `dir`; returns the paths written.
pub fn write_outputs(
    dir: &Path,
    title: &str,
    summary: &CurveSummary,
    curve: &[CurveRow],
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let csv = dir.join(CURVE_CSV);
    write_csv(&csv, curve)?;
    let json = dir.join(CURVE_JSON);
    let text = serde_json::to_string_pretty(summary).map_err(|source| ReportError::Json {
        path: json.clone(),
        source,
    })?;
    crate::report::write_atomic(&json, text.as_bytes())?;
    let md = dir.join(CURVE_MD);
    crate::report::write_atomic(&md, summary.markdown().as_bytes())?;
    let mut written = vec![csv, json, md];
    written.extend(crate::plot::curve::draw(
        &dir.join(CURVE_PLOT),
        title,
        curve,
    )?);
    Ok(written)
}

/// Writes `curve` to `path` as CSV (an unknown exact value is empty).
pub fn write_csv(path: &Path, curve: &[CurveRow]) -> Result<(), ReportError> {
    let csv_err = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    for c in curve {
        w.serialize(c).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| csv_err(e.into_error().into()))?;
    crate::report::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{DamonConfig, EstimatorConfig, EstimatorKind, EsxGains};
    use crate::record::{PageSet, RecordHeader, Tick};
    use crate::track::TrackerKind;

    const DOMAIN: u64 = 4000;

    /// A guest with a hot set of 400 pages touched every tick, and a cold
    /// scan that touches 100 new pages per tick, recorded at the curve's
    /// tick (four per 1 s interval).
    fn recording(ticks: u64) -> Recording {
        let header = RecordHeader {
            guest: "scripted".into(),
            tracker: TrackerKind::Uffd,
            estimator: EstimatorConfig {
                kind: EstimatorKind::Curve,
                domain_pages: DOMAIN,
                sample_pages: 3 * DOMAIN,
                esx: EsxGains::default(),
                damon: DamonConfig::default(),
                follow: Default::default(),
            },
            seed: 3,
            interval_ns: 1_000_000_000,
            ticks_per_interval: 4,
            tick_ns: 250_000_000,
            warmup_intervals: 1,
            mem_pages: 8192,
            wss_bytes: DOMAIN * 4096,
            vcpus: 1,
        };
        let ticks = (0..ticks)
            .map(|i| {
                let scan = 400 + (i * 100) % 3600;
                let touched: Vec<u64> = (0..400).chain(scan..scan + 100).collect();
                Tick {
                    t_end_ns: (i + 1) * 250_000_000,
                    ran_ns: 250_000_000,
                    guest_ops: 1,
                    phase: 0,
                    stopped: false,
                    close: None,
                    written: PageSet::default(),
                    touched: PageSet::from_sorted(touched),
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

    /// With every page in every cohort (a census), each point is exact:
    /// W(τ = k ticks) = 400 hot + 100 k scanned pages.
    #[test]
    fn a_census_gives_the_exact_curve() {
        let rec = recording(40);
        let out = replay_curve(&rec, &ReplaySettings::recorded(&rec.header)).unwrap();
        assert_eq!(out.rows.len(), 10);
        // Intervals 0..10: τ 1, 2, 4 from the first, 8 from the second, 16 from the fourth.
        assert_eq!(out.curve.len(), 3 + 4 * 2 + 5 * 7);
        for c in &out.curve {
            let want = 400 + 100 * u64::from(c.tau_ticks);
            assert_eq!(c.exact, Some(want), "{c:?}");
            assert_eq!((c.est, c.lo, c.hi), (want as f64, want as f64, want as f64));
            assert_eq!(c.tau_s, 0.25 * f64::from(c.tau_ticks));
            assert_eq!(c.scored, c.interval >= 1);
        }
        let acc = accuracy(&out.curve);
        assert_eq!(
            acc.iter().map(|a| a.tau_ticks).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16]
        );
        assert!(acc.iter().all(|a| a.mape == Some(0.0)));
        // The interval's measurement is the τ = interval point.
        for (i, r) in out.rows.iter().enumerate() {
            assert_eq!(r.est_wss_pages, Some(800.0), "interval {i}");
            assert_eq!(r.true_wss_pages, 800);
        }
    }

    #[test]
    fn sampled_points_are_scored_against_the_exact_curve() {
        let rec = recording(80);
        let mut s = ReplaySettings::recorded(&rec.header);
        s.estimator.sample_pages = 1200;
        let out = replay_curve(&rec, &s).unwrap();
        let acc = accuracy(&out.curve);
        assert_eq!(acc.len(), 5);
        for a in &acc {
            // 400 pages of a 4000-page domain per point, W between 500 and
            // 2000 pages: a relative standard error of 4-13%.
            let mape = a.mape.unwrap();
            assert!(mape > 0.0 && mape < 0.2, "τ {}: {mape}", a.tau_ticks);
            assert_eq!(
                a.exact_mean_pages,
                Some(400.0 + 100.0 * f64::from(a.tau_ticks))
            );
        }
        // Another estimator has no curve.
        s.estimator.kind = EstimatorKind::Esx;
        assert!(replay_curve(&rec, &s).unwrap().curve.is_empty());
    }

    #[test]
    fn the_csv_has_a_row_per_point_and_an_empty_unknown_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CURVE_CSV);
        let row = CurveRow {
            interval: 2,
            t_s: 3.0,
            tau_s: 0.5,
            tau_ticks: 2,
            est: 10.5,
            lo: 9.0,
            hi: 12.0,
            sampled_pages: 100,
            exact: None,
            scored: true,
        };
        write_csv(
            &path,
            &[
                row.clone(),
                CurveRow {
                    exact: Some(11),
                    ..row
                },
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "interval,t_s,tau_s,tau_ticks,est,lo,hi,sampled_pages,exact,scored",
                "2,3.0,0.5,2,10.5,9.0,12.0,100,,true",
                "2,3.0,0.5,2,10.5,9.0,12.0,100,11,true",
            ]
        );
    }
}
