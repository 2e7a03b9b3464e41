//! The coordinated run's picture, `coordinate.svg`/`.png` through the one
//! plotting module (`crate::plot`): a panel per VM with its limit,
//! resident pages (once known), true WSS and estimate over the intervals,
//! and a panel of the totals against the host budget.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::grid::{GridPanel, panel_grid};
use crate::plot::series::line_chart;
use crate::plot::{DrawResult, FONT};
use crate::report::ReportError;

use super::output::{VmInterval, mib};

pub const PLOT_BASE: &str = "coordinate";

const TRUE_COLOR: RGBColor = RGBColor(20, 20, 20);
const EST_COLOR: RGBColor = RGBColor(214, 39, 40);
const LIMIT_COLOR: RGBColor = RGBColor(31, 119, 180);
const RESIDENT_COLOR: RGBColor = RGBColor(44, 160, 44);
const BUDGET_COLOR: RGBColor = RGBColor(120, 120, 120);

/// One line: a label, a colour and (interval, MiB) points.
struct Curve {
    label: &'static str,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// One panel.
struct Panel {
    title: String,
    curves: Vec<Curve>,
}

/// A value of each interval as a step: it holds over the whole interval.
fn steps(rows: &[&VmInterval], value: impl Fn(&VmInterval) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| {
            value(r).filter(|v| v.is_finite()).map(|v| {
                [
                    (r.interval as f64, mib(v)),
                    (r.interval as f64 + 1.0, mib(v)),
                ]
            })
        })
        .flatten()
        .collect()
}

/// A value of one VM in one interval, pages.
type Value = fn(&VmInterval) -> Option<f64>;

/// The four curves of a panel, in pages: the limit in force, resident,
/// true and estimated WSS; `points` turns one of them into the panel's
/// steps (one VM's, or the sum over the VMs).
fn wss_curves(points: impl Fn(Value) -> Vec<(f64, f64)>) -> Vec<Curve> {
    let curve = |label, colour, value: Value| Curve {
        label,
        colour,
        points: points(value),
    };
    vec![
        curve("limit in force", LIMIT_COLOR, |r| {
            r.limit_pages.map(|p| p as f64)
        }),
        curve("resident", RESIDENT_COLOR, |r| {
            r.resident_pages.map(|p| p as f64)
        }),
        curve("true WSS", TRUE_COLOR, |r| Some(r.true_wss_pages as f64)),
        curve("estimated WSS", EST_COLOR, |r| r.est_wss_pages),
    ]
}

fn vm_panel(name: &str, rows: &[&VmInterval]) -> Panel {
    Panel {
        title: name.to_string(),
        curves: wss_curves(|value| steps(rows, value)),
    }
}

/// Per interval, the sum over the VMs that reported it, when all have it.
fn total_steps(
    intervals: &[VmInterval],
    value: impl Fn(&VmInterval) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let last = intervals.iter().map(|v| v.interval).max().unwrap_or(0);
    (0..=last)
        .filter_map(|k| {
            let sum: Option<f64> = intervals
                .iter()
                .filter(|v| v.interval == k)
                .map(&value)
                .sum();
            sum.map(|s| [(k as f64, mib(s)), (k as f64 + 1.0, mib(s))])
        })
        .flatten()
        .collect()
}

/// Writes `<dir>/coordinate.svg` and `.png`.
pub fn plot(
    dir: &Path,
    title: &str,
    vm_names: &[String],
    intervals: &[VmInterval],
    host_pages: u64,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut panels: Vec<Panel> = vm_names
        .iter()
        .map(|name| {
            let rows: Vec<&VmInterval> = intervals.iter().filter(|v| &v.vm == name).collect();
            vm_panel(name, &rows)
        })
        .collect();
    let last = intervals.iter().map(|v| v.interval + 1).max().unwrap_or(1) as f64;
    panels.push(Panel {
        title: "all VMs".to_string(),
        curves: std::iter::once(Curve {
            label: "host budget",
            colour: BUDGET_COLOR,
            points: vec![
                (0.0, mib(host_pages as f64)),
                (last, mib(host_pages as f64)),
            ],
        })
        .chain(wss_curves(|value| total_steps(intervals, value)))
        .collect(),
    });
    panel_grid(&dir.join(PLOT_BASE), title, &panels, 2, (560, 340))
}

impl GridPanel for Panel {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, _index: usize) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_panel(area, self)
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let points = p.curves.iter().flat_map(|c| c.points.iter());
    let x_max = points.clone().map(|pt| pt.0).fold(1.0, f64::max);
    let y_max = points.map(|pt| pt.1).fold(1.0, f64::max) * 1.4;
    let mut chart = line_chart(area, &p.title, (x_max, y_max), ("interval", "MiB"))?;
    for c in p.curves.iter().filter(|c| !c.points.is_empty()) {
        let style = c.colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(c.points.iter().copied(), style))?
            .label(c.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .margin(6)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(170, 170, 170))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full interval (see the outputs' tests).
    fn iv(k: usize, vm: &str, truth: u64, limit: Option<u64>) -> VmInterval {
        crate::coordinate::output::tests::iv(k, vm, truth, limit, true)
    }

    #[test]
    fn totals_are_per_interval_sums_as_steps() {
        let rows = vec![
            iv(0, "a", 256, None),
            iv(0, "b", 512, Some(256)),
            iv(1, "a", 256, Some(512)),
            iv(1, "b", 0, Some(256)),
        ];
        assert_eq!(
            total_steps(&rows, |v| v.limit_pages.map(|p| p as f64)),
            vec![(1.0, 3.0), (2.0, 3.0)]
        );
        assert_eq!(
            total_steps(&rows, |v| Some(v.true_wss_pages as f64)),
            vec![(0.0, 3.0), (1.0, 3.0), (1.0, 1.0), (2.0, 1.0)]
        );
    }

    #[test]
    fn draws_a_panel_per_vm_and_the_totals() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![iv(0, "a", 256, None), iv(1, "a", 300, Some(512))];
        let paths = plot(dir.path(), "test", &["a".to_string()], &rows, 1024).unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        let texts = crate::plot::testutil::svg_texts(&svg);
        for t in ["a", "all VMs", "limit in force", "host budget", "true WSS"] {
            assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
        }
        crate::plot::testutil::assert_png(&paths[1], 1000);
    }
}
