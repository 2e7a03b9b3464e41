//! Grids of panels under one title: line charts of a metric against a
//! setting, and time series of the estimate against the truth (the study's
//! figures).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::grid::{GridPanel, panel_grid};
use super::{DrawResult, FONT, format_tick};
use crate::report::ReportError;
use crate::report::timeseries::Row;

/// Tableau's ten colours: distinct, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const TRUE_COLOR: RGBColor = RGBColor(20, 20, 20);
const WRITE_COLOR: RGBColor = RGBColor(31, 119, 180);
const EST_COLOR: RGBColor = RGBColor(214, 39, 40);
const REF_COLOR: RGBColor = RGBColor(120, 120, 120);

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// How y values print on the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YFormat {
    Plain,
    /// Fractions shown as percentages.
    Percent,
}

/// One panel of a line chart. The x axis is the list of settings a sweep
/// ran, evenly spaced: the study's grids double (or nearly) from one
/// setting to the next, so this is a logarithmic axis ticked exactly at
/// the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LinePanel {
    pub title: String,
    pub x_label: String,
    /// The settings; points at other x values are not drawn.
    pub x_ticks: Vec<f64>,
    pub y_label: String,
    pub y_format: YFormat,
    pub lines: Vec<Line>,
    /// A dashed horizontal reference line and its label (a threshold).
    pub y_ref: Option<(f64, String)>,
}

/// The y range of `panel`: the data, zero, and the reference line, with a
/// margin; an empty or flat panel still gets a range to draw.
fn y_range(panel: &LinePanel) -> (f64, f64) {
    let ys = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(panel.y_ref.as_ref().map(|r| r.0))
        .chain(std::iter::once(0.0))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    let span = (hi - lo).max(1e-9);
    if span <= 1e-9 {
        return (lo - 1.0, hi + 1.0);
    }
    // Headroom above for the legend.
    (lo - span * 0.04, hi + span * 0.3)
}

/// The tick index of `x`, if it is one of the settings.
fn tick_index(ticks: &[f64], x: f64) -> Option<i32> {
    ticks
        .iter()
        .position(|t| (t - x).abs() <= 1e-9 * t.abs().max(1.0))
        .and_then(|i| i32::try_from(i).ok())
}

/// Writes `<base>.svg` and `<base>.png`: `panels` in a grid `cols` wide
/// under `title`.
pub fn line_panels(
    base: &Path,
    title: &str,
    panels: &[LinePanel],
    cols: usize,
) -> Result<Vec<PathBuf>, ReportError> {
    panel_grid(base, title, panels, cols, (620, 430))
}

impl GridPanel for LinePanel {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, _index: usize) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_line_panel(area, self)
    }
}

fn draw_line_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &LinePanel) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (y0, y1) = y_range(p);
    let n = i32::try_from(p.x_ticks.len()).unwrap_or(1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FONT, 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        // Integer ranges are inclusive in plotters' discrete coordinates.
        .build_cartesian_2d((0..n - 1).into_segmented(), y0..y1)?;
    let x_fmt = |x: &SegmentValue<i32>| match x {
        SegmentValue::CenterOf(i) => usize::try_from(*i)
            .ok()
            .and_then(|i| p.x_ticks.get(i))
            .map_or(String::new(), |v| format_tick(*v)),
        _ => String::new(),
    };
    let y_fmt = |y: &f64| match p.y_format {
        YFormat::Plain => format_tick(*y),
        YFormat::Percent => format!("{}%", format_tick(*y * 100.0)),
    };
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_labels(p.x_ticks.len() + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .max_light_lines(1)
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    let (x0, x1) = (SegmentValue::Exact(0), SegmentValue::Exact(n));
    if let Some((y, label)) = &p.y_ref {
        chart
            .draw_series(DashedLineSeries::new(
                [(x0.clone(), *y), (x1.clone(), *y)],
                6,
                4,
                REF_COLOR.stroke_width(1),
            ))?
            .label(label.as_str())
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], REF_COLOR.stroke_width(1)));
    }
    for (i, line) in p.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(SegmentValue<i32>, f64)> = line
            .points
            .iter()
            .filter(|(_, y)| y.is_finite())
            .filter_map(|&(x, y)| tick_index(&p.x_ticks, x).map(|i| (SegmentValue::CenterOf(i), y)))
            .collect();
        let style = color.stroke_width(2);
        let anno = if line.dashed {
            chart.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(pts.clone(), style))?
        };
        let dashed = line.dashed;
        anno.label(line.label.as_str()).legend(move |(x, y)| {
            if dashed {
                PathElement::new([(x, y), (x + 8, y)], color.stroke_width(2))
            } else {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            }
        });
        chart.draw_series(
            pts.iter()
                .map(|pt| Circle::new(pt.clone(), 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(8)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(170, 170, 170))
        .draw()?;
    Ok(())
}

/// One panel of a time-series chart.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPanel {
    pub title: String,
    pub rows: Vec<Row>,
    /// Also draw the written-page truth.
    pub show_writes: bool,
}

/// Step outline of `value` over the rows: a value holds over its whole
/// interval, so a lag shows as whole intervals.
fn steps(rows: &[Row], value: impl Fn(&Row) -> Option<f64>) -> Vec<(f64, f64)> {
    rows.iter()
        .filter_map(|r| {
            value(r)
                .filter(|v| v.is_finite())
                .map(|v| [((r.t_s - r.interval_s).max(0.0), v), (r.t_s, v)])
        })
        .flatten()
        .collect()
}

/// Writes `<base>.svg` and `<base>.png`: per panel, the true WSS, the
/// estimate and its 95% band over time.
pub fn series_panels(
    base: &Path,
    title: &str,
    panels: &[SeriesPanel],
    cols: usize,
) -> Result<Vec<PathBuf>, ReportError> {
    panel_grid(base, title, panels, cols, (560, 360))
}

impl GridPanel for SeriesPanel {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, index: usize) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_series_panel(area, self, index == 0)
    }
}

fn draw_series_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &SeriesPanel,
    legend: bool,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let truth = steps(&p.rows, |r| Some(r.true_wss_pages as f64));
    let writes = steps(&p.rows, |r| Some(r.true_wss_write_pages as f64));
    let est = steps(&p.rows, |r| r.est_wss_pages);
    let data_max = truth
        .iter()
        .chain(&est)
        .chain(if p.show_writes { &writes[..] } else { &[] })
        .map(|pt| pt.1)
        .fold(1.0, f64::max);
    // A wide band from few samples must not flatten the lines: it may
    // raise the axis by half at most, and is clipped there.
    let top = p
        .rows
        .iter()
        .filter_map(|r| r.est_hi_pages.filter(|v| v.is_finite()))
        .fold(data_max, f64::max)
        .min(data_max * 1.5);
    let clip = |v: Option<f64>| v.filter(|x| x.is_finite()).map(|x| x.clamp(0.0, top));
    let upper = steps(&p.rows, |r| clip(r.est_lo_pages).and(clip(r.est_hi_pages)));
    let lower = steps(&p.rows, |r| clip(r.est_hi_pages).and(clip(r.est_lo_pages)));
    let band: Vec<(f64, f64)> = upper.into_iter().chain(lower.into_iter().rev()).collect();
    let x_max = p.rows.iter().map(|r| r.t_s).fold(1e-3, f64::max);
    let y_max = top * if legend { 1.45 } else { 1.1 };
    let mut chart = line_chart(area, &p.title, (x_max, y_max), ("time (s)", "pages"))?;
    let band_style = EST_COLOR.mix(0.18).filled();
    if band.len() >= 3 {
        chart
            .draw_series(std::iter::once(Polygon::new(band, band_style)))?
            .label("estimate, 95% interval")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], band_style));
    }
    chart
        .draw_series(LineSeries::new(truth, TRUE_COLOR.stroke_width(2)))?
        .label("true WSS (read or written)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRUE_COLOR.stroke_width(2)));
    if p.show_writes {
        chart
            .draw_series(LineSeries::new(writes, WRITE_COLOR.stroke_width(1)))?
            .label("true WSS, written pages")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], WRITE_COLOR.stroke_width(1)));
    }
    chart
        .draw_series(LineSeries::new(est, EST_COLOR.stroke_width(2)))?
        .label("estimated WSS")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], EST_COLOR.stroke_width(2)));
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .margin(6)
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(170, 170, 170))
            .draw()?;
    }
    Ok(())
}

/// A panel of values against values, both axes linear.
pub(crate) type LineChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// The one look of a line chart's panel from zero to `max` on both axes:
/// its caption, label areas and light mesh, with `desc` naming the axes.
pub(crate) fn line_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    max: (f64, f64),
    desc: (&str, &str),
) -> Result<LineChart<'a, DB>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max.0, 0.0..max.1)?;
    chart
        .configure_mesh()
        .x_desc(desc.0)
        .y_desc(desc.1)
        .x_label_formatter(&|x| format_tick(*x))
        .y_label_formatter(&|y| format_tick(*y))
        .max_light_lines(1)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()?;
    Ok(chart)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    fn panel(lines: Vec<Line>) -> LinePanel {
        LinePanel {
            title: "mape".into(),
            x_label: "sample pages".into(),
            x_ticks: vec![25.0, 100.0, 400.0],
            y_label: "MAPE".into(),
            y_format: YFormat::Percent,
            lines,
            y_ref: Some((0.1, "10% target".into())),
        }
    }

    #[test]
    fn ranges_cover_data_zero_and_reference() {
        let p = panel(vec![Line {
            label: "a".into(),
            points: vec![(25.0, 0.5), (400.0, 0.2), (100.0, f64::NAN)],
            dashed: false,
        }]);
        let (lo, hi) = y_range(&p);
        assert!(lo < 0.0 && lo > -0.05, "{lo}");
        assert!(hi >= 0.5 * 1.2, "{hi}");
        assert_eq!(tick_index(&p.x_ticks, 100.0), Some(1));
        assert_eq!(tick_index(&p.x_ticks, 101.0), None);
        let empty = LinePanel {
            y_ref: None,
            x_ticks: vec![],
            ..panel(vec![])
        };
        assert_eq!(y_range(&empty), (-1.0, 1.0));
    }

    #[test]
    fn steps_hold_each_value_over_its_interval() {
        let rows = vec![row(1.0, 10, Some(8.0)), row(2.0, 20, None)];
        assert_eq!(
            steps(&rows, |r| Some(r.true_wss_pages as f64)),
            vec![(0.0, 10.0), (1.0, 10.0), (1.0, 20.0), (2.0, 20.0)]
        );
        assert_eq!(
            steps(&rows, |r| r.est_wss_pages),
            vec![(0.0, 8.0), (1.0, 8.0)]
        );
    }

    #[test]
    fn charts_are_written_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = panel(vec![
            Line {
                label: "hotset".into(),
                points: vec![(25.0, 0.4), (100.0, 0.2), (400.0, 0.05)],
                dashed: false,
            },
            Line {
                label: "zipf".into(),
                points: vec![(25.0, 0.6), (400.0, 0.1)],
                dashed: true,
            },
        ]);
        let paths = line_panels(&dir.path().join("fig"), "Error by sample", &[p], 2).unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for t in [
            "Error by sample",
            "hotset",
            "zipf",
            "10% target",
            "sample pages",
            "400",
        ] {
            assert!(svg.contains(t), "SVG lacks {t:?}");
        }
        assert!(std::fs::read(&paths[1]).unwrap().starts_with(b"\x89PNG"));
        let rows: Vec<Row> = (1..6)
            .map(|i| row(i as f64, 100 * i, Some(90.0 * i as f64)))
            .collect();
        let paths = series_panels(
            &dir.path().join("ts"),
            "Estimate vs truth",
            &[
                SeriesPanel {
                    title: "seq".into(),
                    rows: rows.clone(),
                    show_writes: true,
                },
                SeriesPanel {
                    title: "random".into(),
                    rows,
                    show_writes: false,
                },
            ],
            2,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for t in [
            "Estimate vs truth",
            "seq",
            "random",
            "estimated WSS",
            "true WSS, written pages",
        ] {
            assert!(svg.contains(t), "SVG lacks {t:?}");
        }
    }
}
