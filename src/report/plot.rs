//! The plot of a run (`kvm-wss plot RUN_DIR`): true and estimated WSS
//! over time, phase changes, and tracked faults per interval. Drawing and
//! writing are `crate::plot`'s; this module prepares what a run shows.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use super::plot_series::{PlotSeries, PlotStep};
use super::summary::{Phase, Summary};
use super::timeseries::Row;
use crate::plot::backend::{OnInterrupt, Picture, svg_and_png};
use crate::plot::{DrawResult, FONT, finite, format_tick, format_value};

/// Sweeps draw their heat maps through `crate::plot`; the old path stays.
pub use crate::plot::table_map::plot_heatmap;

/// Pixel size of the run plot.
pub const RUN_PLOT_SIZE: (u32, u32) = (1200, 760);

/// 4 KiB pages in one MiB.
const PAGES_PER_MIB: f64 = 256.0;

const TRUE_COLOR: RGBColor = RGBColor(20, 20, 20);
const WRITE_COLOR: RGBColor = RGBColor(31, 119, 180);
const EST_COLOR: RGBColor = RGBColor(214, 39, 40);
const FAULT_COLOR: RGBColor = RGBColor(148, 103, 189);
const POLICY_COLOR: RGBColor = RGBColor(255, 127, 14);
const PHASE_COLOR: RGBColor = RGBColor(120, 120, 120);

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
    /// Step outlines of the estimator's policy value (ESX's max of
    /// averages), drawn only where it differs from the measurement.
    policy: Vec<Vec<(f64, f64)>>,
    /// (start, end, faults) of each interval.
    faults: Vec<(f64, f64, f64)>,
    phases: Vec<Phase>,
    has_tracker: bool,
}

/// Step outlines of `value` over time, one per run of consecutive steps
/// where it is present (gaps are not bridged). A step's value holds over
/// its whole span, so each contributes its start and end: this shows a lag
/// as whole intervals instead of as a ramp between end times.
fn steps(all: &[PlotStep], value: impl Fn(&PlotStep) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for r in all {
        match value(r) {
            Some(v) => {
                current.push((r.start_s.max(0.0), v));
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
    fn new(series: &PlotSeries, s: &Summary) -> Self {
        let rows = series.steps();
        let per_point = series.intervals_per_step();
        let truth = steps(rows, |r| Some(r.true_wss_pages as f64))
            .into_iter()
            .flatten()
            .collect();
        let truth_writes = steps(rows, |r| Some(r.true_wss_write_pages as f64))
            .into_iter()
            .flatten()
            .collect();
        let estimate = steps(rows, |r| finite(r.est_wss_pages));
        // An estimator without a policy reports the measurement twice; one
        // line is enough then.
        let has_policy = rows
            .iter()
            .any(|r| finite(r.policy_wss_pages).is_some() && r.policy_wss_pages != r.est_wss_pages);
        let policy = if has_policy {
            steps(rows, |r| finite(r.policy_wss_pages))
        } else {
            Vec::new()
        };
        let data_max = rows
            .iter()
            .flat_map(|r| {
                [
                    r.true_wss_pages as f64,
                    finite(r.est_wss_pages).unwrap_or(0.0),
                    finite(r.policy_wss_pages).unwrap_or(0.0),
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
            .map(|r| (r.start_s.max(0.0), r.t_s, r.faults as f64))
            .collect();
        let fault_max = faults.iter().map(|f| f.2).fold(0.0, f64::max).max(1.0) * 1.15;
        let x_max = rows.iter().map(|r| r.t_s).fold(0.0, f64::max);
        let x_max = if x_max > 0.0 { x_max } else { 1.0 };
        let (all_phases, dropped) = if s.phases.is_empty() {
            (
                series.phase_changes().to_vec(),
                series.phase_changes_dropped(),
            )
        } else {
            (s.phases.clone(), s.phases_dropped)
        };
        let phase_total = all_phases.len() as u64 + dropped;
        let phases = thin_phases(all_phases, MAX_PLOTTED_PHASES);
        let mape = s
            .mape
            .map_or_else(|| "n/a".to_string(), |m| format!("{:.1}%", m * 100.0));
        let sample = s
            .sample_pages
            .map_or_else(|| "-".to_string(), |p| p.to_string());
        let title = format!("{}: true vs estimated working set", s.guest);
        let mut subtitle = format!(
            "tracker {}, estimator {}, sample {} pages, interval {} s, measurement MAPE {} ({}), \
             guest memory {} MiB",
            s.tracker.name(),
            s.estimator.map_or("none", |e| e.name()),
            sample,
            s.interval_s,
            mape,
            truth_label(s.compared_against.column_name()),
            format_value(s.mem_pages as f64 / PAGES_PER_MIB),
        );
        if !policy.is_empty()
            && let Some(m) = s.policy_mape
        {
            subtitle.push_str(&format!(", policy MAPE {:.1}%", m * 100.0));
        }
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
            policy,
            faults,
            phases,
            has_tracker: s.tracker != crate::track::TrackerKind::None,
        }
    }
}

/// Writes `wss.svg` and `wss.png` into `out_dir`: true WSS (all touched and
/// written pages) and the estimate with its 95% band over time, phase
/// changes as labelled vertical lines, and tracked faults per interval in a
/// lower panel. Returns the paths written. [`plot_series`] of the rows.
pub fn plot_run(
    rows: &[Row],
    summary: &Summary,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    plot_series(&PlotSeries::of_rows(rows), summary, out_dir)
}

/// [`plot_run`] from the bounded series a run filled as its rows streamed.
pub fn plot_series(
    series: &PlotSeries,
    summary: &Summary,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    if series.is_empty() {
        return Err(ReportError::NoRows);
    }
    let view = RunView::new(series, summary);
    svg_and_png(&view, &out_dir.join("wss"), OnInterrupt::Abandon)
}

impl Picture for RunView {
    fn size(&self) -> (u32, u32) {
        RUN_PLOT_SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_run(root, self)
    }
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
            anno.label("measurement, 95% band")
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
            anno.label("measured WSS").legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], EST_COLOR.stroke_width(2))
            });
        }
    }
    for (i, run) in v.policy.iter().enumerate() {
        let anno = chart.draw_series(DashedLineSeries::new(
            run.clone(),
            8,
            4,
            POLICY_COLOR.stroke_width(2),
        ))?;
        if i == 0 {
            anno.label("policy value (max of averages)")
                .legend(|(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], POLICY_COLOR.stroke_width(2))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::assert_png;

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
                ..Row::default()
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
            "tracker uffd, estimator esx, sample 512 pages, interval 0.5 s, measurement \
             MAPE 12.3% (vs all touched pages), guest memory 64.0 MiB",
            "working set (4 KiB pages)",
            "working set (MiB)",
            "time since guest start (s)",
            "tracked faults / interval",
            "true WSS (pages read or written)",
            "true WSS, written pages",
            "measured WSS",
            "measurement, 95% band",
            "phase 1",
            "phase 2",
            "phase 3",
        ] {
            assert!(svg.contains(text), "SVG lacks {text:?}");
        }
        // The policy equals the measurement in these rows: no second line.
        assert!(!svg.contains("policy"), "a policy line for no policy");
        assert!(svg.len() > 20_000, "SVG only {} bytes", svg.len());
        // Text is rasterized, so the PNG is far larger than blank axes.
        assert_png(&paths[1], 40_000);
    }

    #[test]
    fn a_policy_apart_from_the_measurement_is_drawn_and_scored() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Row> = step_rows()
            .into_iter()
            .map(|r| Row {
                policy_wss_pages: r.est_wss_pages.map(|e| e * 1.5),
                ..r
            })
            .collect();
        let s = Summary {
            policy_mape: Some(0.456),
            ..step_summary()
        };
        let paths = plot_run(&rows, &s, dir.path()).unwrap();
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(
            svg.contains("policy value (max of averages)"),
            "no policy line"
        );
        assert!(svg.contains("policy MAPE 45.6%"), "no policy MAPE");
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
        let p = PlotSeries::of_rows(&step_rows()).phase_changes().to_vec();
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
        let v = RunView::new(&PlotSeries::of_rows(&rows), &step_summary());
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
        let v = RunView::new(&PlotSeries::of_rows(&step_rows()), &s);
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
        let series = PlotSeries::of_rows(&rows);
        let coarse = series.steps();
        // 10,000 rows in at most 4000 steps: 4 intervals each.
        assert_eq!(series.intervals_per_step(), 4);
        assert_eq!(coarse.len(), 2500);
        assert!(coarse.iter().any(|r| r.true_wss_pages == 99_999));
        assert!((coarse.last().unwrap().t_s - 10.0).abs() < 1e-9);
        assert!((coarse[0].t_s - coarse[0].start_s - 4e-3).abs() < 1e-9);
        assert_eq!(PlotSeries::of_rows(&rows[..10]).intervals_per_step(), 1);
        let v = RunView::new(&series, &step_summary());
        assert!(
            v.subtitle.contains("largest of 4 intervals"),
            "{}",
            v.subtitle
        );
        assert_eq!(v.faults.len(), 2500);
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
}
