//! The figure of a working-set curve (`wss_curve.svg` and `.png`): W(τ)
//! against τ, the estimate's mean and band beside the exact mean over the
//! scored intervals, and per window τ the estimate and exact value over
//! time.

use std::path::{Path, PathBuf};

use super::series::{Line, LinePanel, YFormat, line_panels};
use crate::analysis::stats::mean;
use crate::replay::curve::CurveRow;
use crate::report::ReportError;

/// The windows of `curve`, ascending, in seconds.
fn windows(curve: &[CurveRow]) -> Vec<f64> {
    let mut taus: Vec<f64> = curve.iter().map(|c| c.tau_s).collect();
    taus.sort_by(f64::total_cmp);
    taus.dedup();
    taus
}

/// A line through `(x, y)` for each window: `y` the mean of `value` over
/// the window's scored points with an exact value (the points the metrics
/// are over).
fn mean_line(
    curve: &[CurveRow],
    taus: &[f64],
    label: &str,
    dashed: bool,
    value: impl Fn(&CurveRow) -> f64,
) -> Line {
    let points = taus
        .iter()
        .filter_map(|&tau| {
            let scored = curve
                .iter()
                .filter(|c| c.tau_s == tau && c.scored && c.exact.is_some());
            mean(scored.map(&value)).map(|y| (tau, y))
        })
        .collect();
    Line {
        label: label.to_string(),
        points,
        dashed,
    }
}

/// The interval a point closes, counted from 1 (the time series' x axis:
/// interval ends are whole seconds apart only up to the boundaries' jitter).
fn interval_number(c: &CurveRow) -> f64 {
    (c.interval + 1) as f64
}

/// The panels of the figure: the curve, then one time series per window.
pub fn panels(curve: &[CurveRow]) -> Vec<LinePanel> {
    let taus = windows(curve);
    let exact_of = |c: &CurveRow| c.exact.map_or(f64::NAN, |e| e as f64);
    let mut out = vec![LinePanel {
        title: "W(τ), mean over scored intervals".into(),
        x_label: "window τ (s)".into(),
        x_ticks: taus.clone(),
        y_label: "pages".into(),
        y_format: YFormat::Plain,
        lines: vec![
            mean_line(curve, &taus, "exact", false, exact_of),
            mean_line(curve, &taus, "estimate", false, |c| c.est),
            mean_line(curve, &taus, "band low", true, |c| c.lo),
            mean_line(curve, &taus, "band high", true, |c| c.hi),
        ],
        y_ref: None,
    }];
    for &tau in &taus {
        let at: Vec<&CurveRow> = curve.iter().filter(|c| c.tau_s == tau).collect();
        let line = |label: &str, dashed: bool, value: &dyn Fn(&CurveRow) -> f64| Line {
            label: label.to_string(),
            points: at.iter().map(|c| (interval_number(c), value(c))).collect(),
            dashed,
        };
        out.push(LinePanel {
            title: format!("W(t, τ = {} s)", super::format_tick(tau)),
            x_label: "interval".into(),
            x_ticks: at.iter().map(|c| interval_number(c)).collect(),
            y_label: "pages".into(),
            y_format: YFormat::Plain,
            lines: vec![
                line("exact", false, &exact_of),
                line("estimate", false, &|c| c.est),
                line("band low", true, &|c| c.lo),
                line("band high", true, &|c| c.hi),
            ],
            y_ref: None,
        });
    }
    out
}

/// Writes `<base>.svg` and `<base>.png` of `curve` under `title`.
pub fn draw(base: &Path, title: &str, curve: &[CurveRow]) -> Result<Vec<PathBuf>, ReportError> {
    if curve.is_empty() {
        return Err(ReportError::NoRows);
    }
    line_panels(base, title, &panels(curve), 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png, svg_texts};

    fn row(interval: usize, tau_ticks: u32, est: f64, exact: u64) -> CurveRow {
        CurveRow {
            interval,
            t_s: interval as f64 + 1.02,
            tau_s: 0.25 * f64::from(tau_ticks),
            tau_ticks,
            est,
            lo: est - 10.0,
            hi: est + 10.0,
            sampled_pages: 100,
            exact: Some(exact),
            scored: interval >= 1,
        }
    }

    #[test]
    fn the_curve_panel_averages_scored_points_per_window() {
        let curve = [
            row(0, 1, 1000.0, 1000),
            row(1, 1, 100.0, 90),
            row(2, 1, 120.0, 110),
            row(1, 4, 300.0, 310),
            row(2, 4, 320.0, 330),
        ];
        let p = panels(&curve);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].x_ticks, [0.25, 1.0]);
        // Interval 0 is not scored.
        assert_eq!(p[0].lines[0].points, [(0.25, 100.0), (1.0, 320.0)]);
        assert_eq!(p[0].lines[1].points, [(0.25, 110.0), (1.0, 310.0)]);
        assert_eq!(p[0].lines[2].points, [(0.25, 100.0), (1.0, 300.0)]);
        // The time series shows every point, by interval number.
        assert_eq!(p[1].x_ticks, [1.0, 2.0, 3.0]);
        assert_eq!(p[2].lines[1].points, [(2.0, 300.0), (3.0, 320.0)]);
    }

    #[test]
    fn draws_svg_and_png_and_refuses_an_empty_curve() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("wss_curve");
        let curve: Vec<CurveRow> = (0..6)
            .flat_map(|i| [1, 2, 4].map(|t| row(i, t, 100.0 * f64::from(t), 95 * u64::from(t))))
            .collect();
        let written = draw(&base, "hotset", &curve).unwrap();
        assert_eq!(written.len(), 2);
        let svg = std::fs::read_to_string(base.with_extension("svg")).unwrap();
        let texts = svg_texts(&svg);
        assert!(texts.iter().any(|t| t == "hotset"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "W(t, τ = 0.5 s)"), "{texts:?}");
        assert_png(&base.with_extension("png"), 1000);
        assert!(matches!(draw(&base, "x", &[]), Err(ReportError::NoRows)));
    }
}
