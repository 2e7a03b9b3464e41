//! Plots of a run (`kvm-wss plot RUN_DIR`) and heat maps for sweeps, each
//! written as SVG (for documents) and PNG (for quick viewing).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

use super::ReportError;
use super::summary::{Phase, Summary};
use super::timeseries::Row;

/// The font every plot uses. It is compiled in because rasterizing text for
/// PNG must not depend on fontconfig/freetype being installed; see
/// assets/DejaVuSans-LICENSE.txt for its license.
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub(crate) const FONT: &str = "sans-serif";

/// Pixel size of the run plot.
pub const RUN_PLOT_SIZE: (u32, u32) = (1200, 760);

/// 4 KiB pages in one MiB.
const PAGES_PER_MIB: f64 = 256.0;

const TRUE_COLOR: RGBColor = RGBColor(20, 20, 20);
const WRITE_COLOR: RGBColor = RGBColor(31, 119, 180);
const EST_COLOR: RGBColor = RGBColor(214, 39, 40);
const FAULT_COLOR: RGBColor = RGBColor(148, 103, 189);
const PHASE_COLOR: RGBColor = RGBColor(120, 120, 120);
const MISSING_CELL: RGBColor = RGBColor(225, 225, 225);

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Registers the embedded font under the generic family names plotters uses
/// by default, once per process; the registry is global to plotters.
pub(crate) fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace"]
            .iter()
            .all(|family| register_font(family, FontStyle::Normal, FONT_BYTES).is_ok())
    });
    if ok { Ok(()) } else { Err(ReportError::Font) }
}

/// Draws with `draw` on `backend` and writes the file out.
pub(crate) fn render<DB: DrawingBackend>(
    backend: DB,
    path: &Path,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> DrawResult,
) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    let draw_error = |source| ReportError::Draw {
        path: path.to_path_buf(),
        source,
    };
    let root = backend.into_drawing_area();
    draw(&root).map_err(draw_error)?;
    root.present().map_err(|e| draw_error(Box::new(e)))
}

/// Like [`render`], but into a temporary file renamed to `path` once it is
/// complete, so a reader never sees half a file. With `interruptible`, a
/// Ctrl-C before or during the drawing drops the file and the result is
/// [`ReportError::Interrupted`] (a run's plot); without, the caller decides
/// (a sweep draws its heat maps of what was measured after Ctrl-C too).
pub(crate) fn render_atomic<'a, DB: DrawingBackend + 'a>(
    make: impl FnOnce(&'a Path) -> DB,
    tmp: &'a Path,
    path: &Path,
    interruptible: bool,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> DrawResult,
) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    let interrupted = || ReportError::Interrupted {
        path: path.to_path_buf(),
    };
    if interruptible && crate::run::interrupted() {
        return Err(interrupted());
    }
    if let Err(e) = render(make(tmp), path, draw) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if interruptible && crate::run::interrupted() {
        let _ = std::fs::remove_file(tmp);
        return Err(interrupted());
    }
    super::rename_into_place(tmp, path)
}

/// `base` with `ext` appended, keeping any dots already in the file name.
pub(crate) fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut name = OsString::from(base.as_os_str());
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// A cell or summary value with three significant digits (more for large
/// integers-to-be, which keep all their integer digits).
pub(crate) fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor();
    // Clamped so tiny values stay readable instead of growing a long tail.
    let decimals = (2.0 - magnitude).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// An axis tick: the shortest form of the value rounded to 1/1000, so ticks
/// read 0.5, 1, 1.5 rather than 0.500, 1.00.
pub(crate) fn format_tick(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    // Avoid "-0" for ticks that round to zero from below.
    format!("{}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// What the run plot shows, prepared from the rows and summary so that the
/// drawing code only draws.
struct RunView {
    title: String,
    subtitle: String,
    x_max: f64,
    y_max: f64,
    fault_max: f64,
    truth: Vec<(f64, f64)>,
    truth_writes: Vec<(f64, f64)>,
    /// Step outlines of the estimate, one per run of rows that have one.
    estimate: Vec<Vec<(f64, f64)>>,
    /// Closed outlines of the 95% band, one per run of rows with both bounds.
    band: Vec<Vec<(f64, f64)>>,
    /// (start, end, faults) of each interval.
    faults: Vec<(f64, f64, f64)>,
    phases: Vec<Phase>,
    has_tracker: bool,
}

fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// Step outlines of `value` over time, one per run of consecutive rows where
/// it is present (gaps are not bridged). A row's value holds over its whole
/// interval, so each row contributes the interval's start and end: this
/// shows a lag as whole intervals instead of as a ramp between end times.
fn steps(rows: &[Row], value: impl Fn(&Row) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for r in rows {
        match value(r) {
            Some(v) => {
                current.push(((r.t_s - r.interval_s).max(0.0), v));
                current.push((r.t_s, v));
            }
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Phase changes from the time series, for summaries that do not list them:
/// the change happened during the first interval showing the new marker, so
/// it is drawn at that interval's start.
fn phases_from_rows(rows: &[Row]) -> Vec<Phase> {
    rows.windows(2)
        .filter(|w| w[0].phase != w[1].phase)
        .map(|w| Phase {
            t_s: w[0].t_s,
            marker: w[1].phase,
        })
        .collect()
}

/// Most intervals drawn one by one in a run plot: a 1600-pixel-wide figure
/// cannot show more, and each costs drawing time and bytes (a 10-minute run
/// at 1 ms intervals has 600,000). Longer runs are drawn in steps of
/// several intervals.
pub const MAX_PLOTTED_ROWS: usize = 4000;

/// `rows` merged `k` at a time, when there are more than `max`, into rows
/// spanning the `k` intervals with the largest value of each (the band's
/// lowest lower bound), so that peaks stay visible; `None` and 1 when they
/// are few enough to draw as they are.
fn coarsen(rows: &[Row], max: usize) -> (Option<Vec<Row>>, usize) {
    if rows.len() <= max || max == 0 {
        return (None, 1);
    }
    let k = rows.len().div_ceil(max);
    let fold = |chunk: &[Row], f: fn(f64, f64) -> f64, get: fn(&Row) -> Option<f64>| {
        chunk.iter().filter_map(|r| finite(get(r))).reduce(f)
    };
    let merged = rows
        .chunks(k)
        .filter_map(|chunk| {
            let (first, last) = (chunk.first()?, chunk.last()?);
            Some(Row {
                t_s: last.t_s,
                interval_s: last.t_s - (first.t_s - first.interval_s),
                true_wss_pages: chunk.iter().map(|r| r.true_wss_pages).max().unwrap_or(0),
                true_wss_write_pages: chunk
                    .iter()
                    .map(|r| r.true_wss_write_pages)
                    .max()
                    .unwrap_or(0),
                est_wss_pages: fold(chunk, f64::max, |r| r.est_wss_pages),
                est_lo_pages: fold(chunk, f64::min, |r| r.est_lo_pages),
                est_hi_pages: fold(chunk, f64::max, |r| r.est_hi_pages),
                faults: chunk.iter().map(|r| r.faults).max().unwrap_or(0),
                guest_ops: chunk.iter().map(|r| r.guest_ops).sum(),
                full: chunk.iter().all(|r| r.full),
                ..last.clone()
            })
        })
        .collect();
    (Some(merged), k)
}

/// Most phase markers drawn in a plot: a guest decides how many markers
/// there are, and each one costs a line (and a label) in the figure.
pub const MAX_PLOTTED_PHASES: usize = 50;

/// At most `cap` of `phases`, evenly spread over the list (the first is
/// always kept).
fn thin_phases(phases: Vec<Phase>, cap: usize) -> Vec<Phase> {
    if phases.len() <= cap || cap == 0 {
        return if cap == 0 { Vec::new() } else { phases };
    }
    let step = phases.len().div_ceil(cap);
    phases.into_iter().step_by(step).collect()
}

fn truth_label(compared_against: &str) -> &'static str {
    if compared_against == "true_wss_write_pages" {
        "vs written pages"
    } else {
        "vs all touched pages"
    }
}

impl RunView {
    fn new(all_rows: &[Row], s: &Summary) -> Self {
        let (coarse, per_point) = coarsen(all_rows, MAX_PLOTTED_ROWS);
        let rows: &[Row] = coarse.as_deref().unwrap_or(all_rows);
        let truth = steps(rows, |r| Some(r.true_wss_pages as f64))
            .into_iter()
            .flatten()
            .collect();
        let truth_writes = steps(rows, |r| Some(r.true_wss_write_pages as f64))
            .into_iter()
            .flatten()
            .collect();
        let estimate = steps(rows, |r| finite(r.est_wss_pages));
        let data_max = rows
            .iter()
            .flat_map(|r| {
                [
                    r.true_wss_pages as f64,
                    finite(r.est_wss_pages).unwrap_or(0.0),
                ]
            })
            .fold(0.0, f64::max);
        // A wide band from a handful of samples must not flatten the lines:
        // the band may raise the axis by half again at most, and is clipped.
        let hi_max = rows
            .iter()
            .filter_map(|r| finite(r.est_hi_pages))
            .fold(0.0, f64::max)
            .min(data_max * 1.5);
        let top = data_max.max(hi_max).max(1.0);
        // Headroom for the legend and phase labels above the data.
        let y_max = top * 1.3;
        let clip = |v: Option<f64>| finite(v).map(|x| x.clamp(0.0, top));
        let highs = steps(rows, |r| clip(r.est_lo_pages).and(clip(r.est_hi_pages)));
        let lows = steps(rows, |r| clip(r.est_hi_pages).and(clip(r.est_lo_pages)));
        let band = highs
            .into_iter()
            .zip(lows)
            .map(|(upper, lower)| upper.into_iter().chain(lower.into_iter().rev()).collect())
            .collect();
        let faults: Vec<(f64, f64, f64)> = rows
            .iter()
            .map(|r| ((r.t_s - r.interval_s).max(0.0), r.t_s, r.faults as f64))
            .collect();
        let fault_max = faults.iter().map(|f| f.2).fold(0.0, f64::max).max(1.0) * 1.15;
        let x_max = rows.iter().map(|r| r.t_s).fold(0.0, f64::max);
        let x_max = if x_max > 0.0 { x_max } else { 1.0 };
        let all_phases = if s.phases.is_empty() {
            phases_from_rows(all_rows)
        } else {
            s.phases.clone()
        };
        let phase_total = all_phases.len() as u64 + s.phases_dropped;
        let phases = thin_phases(all_phases, MAX_PLOTTED_PHASES);
        let mape = s
            .mape
            .map_or_else(|| "n/a".to_string(), |m| format!("{:.1}%", m * 100.0));
        let sample = s
            .sample_pages
            .map_or_else(|| "-".to_string(), |p| p.to_string());
        let title = format!("{}: true vs estimated working set", s.guest);
        let mut subtitle = format!(
            "tracker {}, estimator {}, sample {} pages, interval {} s, MAPE {} ({}), \
             guest memory {} MiB",
            s.tracker.name(),
            s.estimator.map_or("none", |e| e.name()),
            sample,
            s.interval_s,
            mape,
            truth_label(s.compared_against.column_name()),
            format_value(s.mem_pages as f64 / PAGES_PER_MIB),
        );
        if per_point > 1 {
            subtitle.push_str(&format!(", each step the largest of {per_point} intervals"));
        }
        if phase_total > phases.len() as u64 {
            subtitle.push_str(&format!(
                ", {} of {phase_total} phase markers drawn",
                phases.len()
            ));
        }
        RunView {
            title,
            subtitle,
            x_max,
            y_max,
            fault_max,
            truth,
            truth_writes,
            estimate,
            band,
            faults,
            phases,
            has_tracker: s.tracker != crate::track::TrackerKind::None,
        }
    }
}

/// Writes `wss.svg` and `wss.png` into `out_dir`: true WSS (all touched and
/// written pages) and the estimate with its 95% band over time, phase
/// changes as labelled vertical lines, and tracked faults per interval in a
/// lower panel. Returns the paths written.
pub fn plot_run(
    rows: &[Row],
    summary: &Summary,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    if rows.is_empty() {
        return Err(ReportError::NoRows);
    }
    ensure_font()?;
    let view = RunView::new(rows, summary);
    let svg = out_dir.join("wss.svg");
    let png = out_dir.join("wss.png");
    let (svg_tmp, png_tmp) = (super::temp_path(&svg), super::temp_path(&png));
    render_atomic(
        |p| SVGBackend::new(p, RUN_PLOT_SIZE),
        &svg_tmp,
        &svg,
        true,
        |root| draw_run(root, &view),
    )?;
    render_atomic(
        |p| BitMapBackend::new(p, RUN_PLOT_SIZE),
        &png_tmp,
        &png,
        true,
        |root| draw_run(root, &view),
    )?;
    Ok(vec![svg, png])
}

fn draw_run<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, v: &RunView) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (width, height) = root.dim_in_pixel();
    let center = i32::try_from(width / 2).unwrap_or(0);
    let (head, body) = root.split_vertically(72);
    head.draw(&Text::new(
        v.title.as_str(),
        (center, 10),
        TextStyle::from((FONT, 26)).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    head.draw(&Text::new(
        v.subtitle.as_str(),
        (center, 44),
        (FONT, 16)
            .into_font()
            .color(&RGBColor(60, 60, 60))
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    let upper_height = (height.saturating_sub(72)) * 68 / 100;
    let (upper, lower) = body.split_vertically(upper_height);

    let mut chart = ChartBuilder::on(&upper)
        .margin_left(10)
        .margin_right(10)
        .margin_top(5)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..v.x_max, 0.0..v.y_max)?
        .set_secondary_coord(0.0..v.x_max, 0.0..v.y_max / PAGES_PER_MIB);
    chart
        .configure_mesh()
        .y_desc("working set (4 KiB pages)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_label_formatter(&|x| format_tick(*x))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .max_light_lines(2)
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("working set (MiB)")
        .y_label_formatter(&|y| format_tick(*y))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;

    let band_style = EST_COLOR.mix(0.18).filled();
    for (i, outline) in v.band.iter().enumerate() {
        let anno = chart.draw_series(std::iter::once(Polygon::new(outline.clone(), band_style)))?;
        if i == 0 {
            anno.label("estimate, 95% interval")
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], band_style));
        }
    }
    chart
        .draw_series(LineSeries::new(v.truth.clone(), TRUE_COLOR.stroke_width(3)))?
        .label("true WSS (pages read or written)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRUE_COLOR.stroke_width(3)));
    chart
        .draw_series(LineSeries::new(
            v.truth_writes.clone(),
            WRITE_COLOR.stroke_width(1),
        ))?
        .label("true WSS, written pages")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], WRITE_COLOR.stroke_width(1)));
    for (i, run) in v.estimate.iter().enumerate() {
        let anno = chart.draw_series(LineSeries::new(run.clone(), EST_COLOR.stroke_width(2)))?;
        if i == 0 {
            anno.label("estimated WSS").legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], EST_COLOR.stroke_width(2))
            });
        }
    }
    for p in &v.phases {
        chart.draw_series(DashedLineSeries::new(
            [(p.t_s, 0.0), (p.t_s, v.y_max)],
            6,
            4,
            PHASE_COLOR.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((p.t_s, v.y_max))
                + Text::new(
                    format!("phase {}", p.marker),
                    (4, 4),
                    (FONT, 14).into_font().color(&PHASE_COLOR),
                ),
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(12)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;

    let mut faults = ChartBuilder::on(&lower)
        .margin_left(10)
        .margin_right(10)
        .margin_top(10)
        .margin_bottom(5)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .right_y_label_area_size(80)
        .build_cartesian_2d(0.0..v.x_max, 0.0..v.fault_max)?;
    let fault_desc = if v.has_tracker {
        "tracked faults / interval"
    } else {
        "tracked faults (no tracker)"
    };
    faults
        .configure_mesh()
        .x_desc("time since guest start (s)")
        .y_desc(fault_desc)
        .y_labels(5)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_label_formatter(&|x| format_tick(*x))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .max_light_lines(2)
        .light_line_style(RGBColor(242, 242, 242))
        .draw()?;
    faults.draw_series(v.faults.iter().map(|&(start, end, n)| {
        Rectangle::new([(start, 0.0), (end, n)], FAULT_COLOR.mix(0.7).filled())
    }))?;
    for p in &v.phases {
        faults.draw_series(DashedLineSeries::new(
            [(p.t_s, 0.0), (p.t_s, v.fault_max)],
            6,
            4,
            PHASE_COLOR.stroke_width(1),
        ))?;
    }
    Ok(())
}

/// Writes `<out_base>.svg` and `<out_base>.png`: a heat map of `values`
/// (`values[row][column]`, rows labelled by `y_labels` from top to bottom,
/// columns by `x_labels` from left to right) with each value printed in its
/// cell, empty cells (`None`) shown grey as "n/a", and a colour bar titled
/// `value_label`. Returns the paths written.
pub fn plot_heatmap<X: AsRef<str>, Y: AsRef<str>>(
    title: &str,
    x_labels: &[X],
    y_labels: &[Y],
    values: &[Vec<Option<f64>>],
    value_label: &str,
    out_base: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    if x_labels.is_empty() || y_labels.is_empty() {
        return Err(ReportError::HeatmapShape("no rows or no columns".into()));
    }
    if values.len() != y_labels.len() {
        return Err(ReportError::HeatmapShape(format!(
            "{} value rows for {} y labels",
            values.len(),
            y_labels.len()
        )));
    }
    if let Some((i, row)) = values
        .iter()
        .enumerate()
        .find(|(_, row)| row.len() != x_labels.len())
    {
        return Err(ReportError::HeatmapShape(format!(
            "value row {i} has {} cells for {} x labels",
            row.len(),
            x_labels.len()
        )));
    }
    ensure_font()?;
    let view = HeatmapView {
        title,
        x_labels: x_labels.iter().map(|s| s.as_ref().to_string()).collect(),
        y_labels: y_labels.iter().map(|s| s.as_ref().to_string()).collect(),
        values,
        value_label,
        range: value_range(values),
    };
    let nx = u32::try_from(x_labels.len()).unwrap_or(u32::MAX);
    let ny = u32::try_from(y_labels.len()).unwrap_or(u32::MAX);
    let size = (
        nx.saturating_mul(110).saturating_add(330).clamp(700, 2000),
        ny.saturating_mul(60).saturating_add(190).clamp(420, 1400),
    );
    let svg = with_suffix(out_base, "svg");
    let png = with_suffix(out_base, "png");
    let (svg_tmp, png_tmp) = (super::temp_path(&svg), super::temp_path(&png));
    render_atomic(
        |p| SVGBackend::new(p, size),
        &svg_tmp,
        &svg,
        false,
        |root| draw_heatmap(root, &view),
    )?;
    render_atomic(
        |p| BitMapBackend::new(p, size),
        &png_tmp,
        &png,
        false,
        |root| draw_heatmap(root, &view),
    )?;
    Ok(vec![svg, png])
}

struct HeatmapView<'a> {
    title: &'a str,
    x_labels: Vec<String>,
    y_labels: Vec<String>,
    values: &'a [Vec<Option<f64>>],
    value_label: &'a str,
    /// (min, max) of the finite values; `None` when there are none.
    range: Option<(f64, f64)>,
}

fn value_range(values: &[Vec<Option<f64>>]) -> Option<(f64, f64)> {
    values
        .iter()
        .flatten()
        .filter_map(|v| finite(*v))
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

/// The colour of `v` on the scale, and a text colour readable on it.
fn cell_colors(v: f64, (lo, hi): (f64, f64)) -> (RGBColor, RGBColor) {
    // A constant map still gets a colour: the middle of the scale.
    let fill: RGBColor = if hi > lo {
        ViridisRGB::get_color_normalized(v, lo, hi)
    } else {
        ViridisRGB::get_color(0.5)
    };
    let RGBColor(r, g, b) = fill;
    let luminance = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    let text = if luminance < 140.0 { WHITE } else { BLACK };
    (fill, text)
}

fn draw_heatmap<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, v: &HeatmapView) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
    let (main, bar) = root.split_horizontally(width.saturating_sub(130));
    let nx = v.x_labels.len();
    let ny = v.y_labels.len();
    // Cell (col, row) covers [col, col + 1] x [ny - 1 - row, ny - row]; its
    // label sits on the half-integer tick at its centre. Plain f64 axes
    // (unlike segmented ones) stay valid with a single row or column.
    let mut chart = ChartBuilder::on(&main)
        .caption(v.title, (FONT, 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(150)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)?;
    let centre_label = |labels: &[String], at: f64, flip: bool| {
        let offset = at - 0.5;
        if offset < 0.0 || (offset - offset.round()).abs() > 1e-6 {
            return String::new();
        }
        let i = offset.round() as usize;
        let i = if flip {
            labels.len().wrapping_sub(1).wrapping_sub(i)
        } else {
            i
        };
        labels.get(i).cloned().unwrap_or_default()
    };
    let x_label = |x: &f64| centre_label(&v.x_labels, *x, false);
    let y_label = |y: &f64| centre_label(&v.y_labels, *y, true);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * nx + 1)
        .y_labels(2 * ny + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .label_style((FONT, 15))
        .draw()?;
    for (row, cells) in v.values.iter().enumerate() {
        // Row 0 is drawn at the top, as in a table.
        let y = (ny - 1 - row) as f64;
        for (col, cell) in cells.iter().enumerate() {
            let x = col as f64;
            let (fill, text_color, text) = match (finite(*cell), v.range) {
                (Some(value), Some(range)) => {
                    let (fill, text_color) = cell_colors(value, range);
                    (fill, text_color, format_value(value))
                }
                _ => (MISSING_CELL, RGBColor(90, 90, 90), "n/a".to_string()),
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                text,
                (x + 0.5, y + 0.5),
                (FONT, 16)
                    .into_font()
                    .color(&text_color)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )))?;
        }
    }
    draw_color_bar(&bar, v)
}

fn draw_color_bar<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, v: &HeatmapView) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let Some((lo, hi)) = v.range else {
        return Ok(());
    };
    // A constant map gets a unit-wide bar around its value so the axis has
    // a range to label.
    let (lo_axis, hi_axis) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let mut bar = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(55)
        .margin_right(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, lo_axis..hi_axis)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(v.value_label)
        .y_label_formatter(&|y| format_tick(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    const STEPS: usize = 100;
    let step = (hi_axis - lo_axis) / STEPS as f64;
    bar.draw_series((0..STEPS).map(|i| {
        let y0 = lo_axis + step * i as f64;
        let (fill, _) = cell_colors(y0 + step / 2.0, (lo, hi));
        Rectangle::new([(0.0, y0), (1.0, y0 + step)], fill.filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run with a step up at 3 s and a step down at 7 s, an estimate that
    /// follows one interval late, a gap in the estimate, and a partial last
    /// interval.
    fn step_rows() -> Vec<Row> {
        let truth = [
            2000u64, 2000, 2000, 6000, 6000, 6000, 6000, 1500, 1500, 1500, 1500, 900,
        ];
        let mut rows = Vec::new();
        let mut prev = truth[0] as f64;
        for (i, &t) in truth.iter().enumerate() {
            let est = if i == 9 {
                None
            } else {
                Some(prev * 0.97 + 40.0)
            };
            let phase = match i {
                0..=2 => 1,
                3..=6 => 2,
                _ => 3,
            };
            rows.push(Row {
                t_s: (i + 1) as f64 * 0.5,
                true_wss_pages: t,
                true_wss_write_pages: t / 3,
                est_wss_pages: est,
                est_lo_pages: est.map(|e| e * 0.85),
                est_hi_pages: est.map(|e| e * 1.15),
                sampled_pages: 512,
                touched_samples: 100 + i as u64,
                faults: t / 20,
                guest_ops: 1_000_000,
                interval_s: if i == 11 { 0.2 } else { 0.5 },
                full: i != 11,
                phase,
                arm_us: 10.0,
                collect_us: 20.0,
                stall_us: 0.0,
                hold_us: 0.0,
                policy_wss_pages: est,
            });
            prev = t as f64;
        }
        rows
    }

    fn step_summary() -> Summary {
        Summary {
            guest: "phases".into(),
            tracker: crate::track::TrackerKind::Uffd,
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            mem_pages: 16384,
            sample_pages: Some(512),
            interval_s: 0.5,
            mape: Some(0.1234),
            compared_against: crate::analysis::accuracy::TruthColumn::All,
            phases: vec![
                Phase {
                    t_s: 0.0,
                    marker: 1,
                },
                Phase {
                    t_s: 1.6,
                    marker: 2,
                },
                Phase {
                    t_s: 3.55,
                    marker: 3,
                },
            ],
            ..Summary::default()
        }
    }

    /// The text of every <text> element in an SVG written by plotters.
    fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    fn assert_png(path: &Path, min_bytes: u64) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{path:?} is not a PNG"
        );
        assert!(
            bytes.len() as u64 >= min_bytes,
            "{path:?}: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn run_plot_writes_labelled_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let paths = plot_run(&step_rows(), &step_summary(), dir.path()).unwrap();
        assert_eq!(
            paths,
            vec![dir.path().join("wss.svg"), dir.path().join("wss.png")]
        );
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for text in [
            "phases: true vs estimated working set",
            "tracker uffd, estimator esx, sample 512 pages, interval 0.5 s, MAPE 12.3% \
             (vs all touched pages), guest memory 64.0 MiB",
            "working set (4 KiB pages)",
            "working set (MiB)",
            "time since guest start (s)",
            "tracked faults / interval",
            "true WSS (pages read or written)",
            "true WSS, written pages",
            "estimated WSS",
            "estimate, 95% interval",
            "phase 1",
            "phase 2",
            "phase 3",
        ] {
            assert!(svg.contains(text), "SVG lacks {text:?}");
        }
        assert!(svg.len() > 20_000, "SVG only {} bytes", svg.len());
        // Text is rasterized, so the PNG is far larger than blank axes.
        assert_png(&paths[1], 40_000);
    }

    #[test]
    fn run_plot_without_tracker_or_phase_list() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Row> = step_rows()
            .into_iter()
            .map(|r| Row {
                est_wss_pages: None,
                est_lo_pages: None,
                est_hi_pages: None,
                faults: 0,
                ..r
            })
            .collect();
        let summary = Summary {
            tracker: crate::track::TrackerKind::None,
            estimator: None,
            sample_pages: None,
            mape: None,
            phases: Vec::new(),
            ..step_summary()
        };
        let paths = plot_run(&rows, &summary, dir.path()).unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(svg.contains("tracker none, estimator none, sample - pages"));
        assert!(svg.contains("MAPE n/a"));
        assert!(svg.contains("tracked faults (no tracker)"));
        assert!(!svg.contains("estimated WSS"));
        // Phases come from the rows' phase column instead.
        assert!(svg.contains("phase 2") && svg.contains("phase 3"));
        assert_png(&paths[1], 30_000);
    }

    #[test]
    fn phases_from_rows_mark_the_start_of_the_changed_interval() {
        let p = phases_from_rows(&step_rows());
        assert_eq!(
            p,
            vec![
                Phase {
                    t_s: 1.5,
                    marker: 2
                },
                Phase {
                    t_s: 3.5,
                    marker: 3
                }
            ]
        );
    }

    #[test]
    fn run_view_splits_estimate_at_gaps_and_caps_the_band() {
        let mut rows = step_rows();
        rows[2].est_hi_pages = Some(1e9);
        let v = RunView::new(&rows, &step_summary());
        // Two points per row: the interval's start and end.
        assert_eq!(v.truth.len(), 24);
        assert_eq!(v.truth[22..], [(5.8, 900.0), (6.0, 900.0)]);
        assert_eq!(v.estimate.len(), 2);
        assert_eq!(v.estimate[0].len(), 18);
        assert_eq!(v.estimate[1].len(), 4);
        assert_eq!(v.estimate[0][..2], [(0.0, 1980.0), (0.5, 1980.0)]);
        assert_eq!(v.band.len(), 2);
        // Upper edge forwards, lower edge backwards.
        assert_eq!(v.band[1].len(), 8);
        let est = 1500.0 * 0.97 + 40.0;
        assert_eq!(v.band[1][0], (5.0, est * 1.15));
        assert_eq!(v.band[1][7], (5.0, est * 0.85));
        // data max 6000 (truth) -> band top capped at 9000, axis 1.3 × that.
        assert_eq!(v.y_max, 9000.0 * 1.3);
        assert!(v.band.iter().flatten().all(|&(_, y)| y <= 9000.0));
        assert_eq!(v.faults[11], (5.8, 6.0, 45.0));
    }

    #[test]
    fn phase_markers_are_thinned_to_the_cap() {
        let many: Vec<Phase> = (0..10_000)
            .map(|i| Phase {
                t_s: i as f64 * 1e-3,
                marker: i,
            })
            .collect();
        let thin = thin_phases(many.clone(), MAX_PLOTTED_PHASES);
        assert!(thin.len() <= MAX_PLOTTED_PHASES && thin.len() > MAX_PLOTTED_PHASES / 2);
        assert_eq!(thin[0].marker, 0);
        assert_eq!(thin_phases(many[..3].to_vec(), 50).len(), 3);
        assert!(thin_phases(many, 0).is_empty());
        // The figure says how many it left out.
        let mut s = step_summary();
        s.phases_dropped = 5;
        let v = RunView::new(&step_rows(), &s);
        assert!(v.subtitle.contains("phase markers drawn"), "{}", v.subtitle);
    }

    #[test]
    fn long_runs_are_drawn_in_steps_keeping_peaks() {
        let mut rows: Vec<Row> = (0..10_000).map(|i| step_rows()[i % 4].clone()).collect();
        for (i, r) in rows.iter_mut().enumerate() {
            r.t_s = (i + 1) as f64 * 1e-3;
            r.interval_s = 1e-3;
        }
        rows[7777].true_wss_pages = 99_999;
        let (coarse, k) = coarsen(&rows, MAX_PLOTTED_ROWS);
        let coarse = coarse.expect("coarsened");
        assert_eq!(k, 3);
        assert!(coarse.len() <= MAX_PLOTTED_ROWS);
        assert!(coarse.iter().any(|r| r.true_wss_pages == 99_999));
        assert!((coarse.last().unwrap().t_s - 10.0).abs() < 1e-9);
        assert!((coarse[0].interval_s - 3e-3).abs() < 1e-9);
        assert_eq!(coarsen(&rows[..10], MAX_PLOTTED_ROWS), (None, 1));
        let v = RunView::new(&rows, &step_summary());
        assert!(
            v.subtitle.contains("largest of 3 intervals"),
            "{}",
            v.subtitle
        );
        assert!(v.faults.len() <= MAX_PLOTTED_ROWS);
    }

    #[test]
    fn empty_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            plot_run(&[], &step_summary(), dir.path()),
            Err(ReportError::NoRows)
        ));
    }

    #[test]
    fn unwritable_output_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        match plot_run(&step_rows(), &step_summary(), &missing) {
            Err(ReportError::Draw { path, .. }) => assert_eq!(path, missing.join("wss.svg")),
            other => panic!("expected a draw error, got {other:?}"),
        }
    }

    #[test]
    fn heatmap_writes_values_in_cells() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("sweep.error");
        let x = ["0.05 s", "0.1 s", "0.2 s"];
        let y = vec!["64 pages".to_string(), "512 pages".to_string()];
        let values = vec![
            vec![Some(0.412), Some(0.25), None],
            vec![Some(0.0831), Some(12.5), Some(150.0)],
        ];
        let paths = plot_heatmap("MAPE by sample size", &x, &y, &values, "MAPE", &base).unwrap();
        assert_eq!(
            paths,
            vec![
                dir.path().join("sweep.error.svg"),
                dir.path().join("sweep.error.png")
            ]
        );
        let texts = svg_texts(&std::fs::read_to_string(&paths[0]).unwrap());
        for text in [
            "MAPE by sample size",
            "0.05 s",
            "0.1 s",
            "0.2 s",
            "64 pages",
            "512 pages",
            "0.412",
            "0.250",
            "0.0831",
            "12.5",
            "150",
            "n/a",
            "MAPE",
        ] {
            assert!(
                texts.iter().any(|t| t == text),
                "SVG lacks {text:?}: {texts:?}"
            );
        }
        assert_png(&paths[1], 10_000);
    }

    #[test]
    fn heatmap_rejects_mismatched_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("h");
        let x = ["a", "b"];
        let y = ["r"];
        for values in [vec![], vec![vec![Some(1.0)]], vec![vec![None, None]; 2]] {
            assert!(matches!(
                plot_heatmap("t", &x, &y, &values, "v", &base),
                Err(ReportError::HeatmapShape(_))
            ));
        }
        let none: [&str; 0] = [];
        assert!(matches!(
            plot_heatmap("t", &none, &y, &[vec![]], "v", &base),
            Err(ReportError::HeatmapShape(_))
        ));
        assert!(!dir.path().join("h.svg").exists());
    }

    #[test]
    fn heatmap_of_constant_or_missing_values_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let x = ["a", "b"];
        let y = ["r"];
        let paths = plot_heatmap(
            "flat",
            &x,
            &y,
            &[vec![Some(3.0), Some(3.0)]],
            "v",
            &dir.path().join("flat"),
        )
        .unwrap();
        let texts = svg_texts(&std::fs::read_to_string(&paths[0]).unwrap());
        assert_eq!(texts.iter().filter(|t| *t == "3.00").count(), 2);
        let paths = plot_heatmap(
            "empty",
            &x,
            &y,
            &[vec![None, None]],
            "v",
            &dir.path().join("e"),
        )
        .unwrap();
        let texts = svg_texts(&std::fs::read_to_string(&paths[0]).unwrap());
        assert_eq!(texts.iter().filter(|t| *t == "n/a").count(), 2);
    }

    #[test]
    fn values_print_with_three_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(0.01234), "0.0123");
        assert_eq!(format_value(0.0831), "0.0831");
        assert_eq!(format_value(1.5), "1.50");
        assert_eq!(format_value(-12.34), "-12.3");
        assert_eq!(format_value(1234.4), "1234");
        assert_eq!(format_value(1e-9), "0.000000");
        assert_eq!(format_tick(0.5), "0.5");
        assert_eq!(format_tick(2.0), "2");
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(-0.0001), "0");
    }
}
