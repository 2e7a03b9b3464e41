//! The heat map of a table of values: one labelled cell per (row, column),
//! its value printed in it, and a colour bar (sweeps, and the study's
//! comparisons of trackers and estimators).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::backend::{OnInterrupt, Picture, svg_and_png};
use super::colour::{ColourScale, MISSING_CELL, MISSING_TEXT, draw_colour_bar};
use super::{DrawResult, FONT, finite, format_value};
use crate::report::ReportError;

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
    let view = HeatmapView {
        title,
        x_labels: x_labels.iter().map(|s| s.as_ref().to_string()).collect(),
        y_labels: y_labels.iter().map(|s| s.as_ref().to_string()).collect(),
        values,
        value_label,
        scale: ColourScale::spanning(values.iter().flatten().filter_map(|v| finite(*v))),
    };
    svg_and_png(&view, out_base, OnInterrupt::Finish)
}

struct HeatmapView<'a> {
    title: &'a str,
    x_labels: Vec<String>,
    y_labels: Vec<String>,
    values: &'a [Vec<Option<f64>>],
    value_label: &'a str,
    /// The scale of the finite values; `None` when there are none.
    scale: Option<ColourScale>,
}

impl Picture for HeatmapView<'_> {
    fn size(&self) -> (u32, u32) {
        let nx = u32::try_from(self.x_labels.len()).unwrap_or(u32::MAX);
        let ny = u32::try_from(self.y_labels.len()).unwrap_or(u32::MAX);
        (
            nx.saturating_mul(110).saturating_add(330).clamp(700, 2000),
            ny.saturating_mul(60).saturating_add(190).clamp(420, 1400),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        draw_heatmap(root, self)
    }
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
            let (fill, text_color, text) = match (finite(*cell), v.scale) {
                (Some(value), Some(scale)) => {
                    let (fill, text_color) = scale.colours(value);
                    (fill, text_color, format_value(value))
                }
                _ => (MISSING_CELL, MISSING_TEXT, "n/a".to_string()),
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
    draw_colour_bar(&bar, v.scale, v.value_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png, svg_texts};

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
}
