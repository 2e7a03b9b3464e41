//! A picture of panels in a grid under one centred title: the layout every
//! multi-panel figure shares (the study's line and time-series figures, the
//! coordinator's per-VM picture). Each kind of panel says how it draws
//! itself; the grid sizes the picture, writes the title and places them.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::backend::{OnInterrupt, Picture, svg_and_png};
use super::{DrawResult, FONT};
use crate::report::ReportError;

/// Height of the title strip, pixels.
const HEADER: u32 = 56;

/// A panel that draws itself into its cell of the grid.
pub(crate) trait GridPanel {
    /// Draws into `area`; `index` is the panel's place in the grid, from 0
    /// (a legend may be drawn only once).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, index: usize) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// Writes `<base>.svg` and `<base>.png`: `panels` in a grid at most `cols`
/// wide, each cell `cell` pixels (width, height), under `title`.
pub(crate) fn panel_grid<P: GridPanel>(
    base: &Path,
    title: &str,
    panels: &[P],
    cols: usize,
    cell: (usize, usize),
) -> Result<Vec<PathBuf>, ReportError> {
    let (grid, size) = grid_layout(panels.len(), cols, cell);
    let picture = PanelGrid {
        title,
        panels,
        grid,
        size,
    };
    svg_and_png(&picture, base, OnInterrupt::Finish)
}

/// The grid (rows, columns) for `n` panels at most `cols` wide, and the
/// picture's size in pixels for panels of `cell` pixels under the header.
fn grid_layout(n: usize, cols: usize, cell: (usize, usize)) -> ((usize, usize), (u32, u32)) {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let size = (
        u32::try_from(cols * cell.0).unwrap_or(u32::MAX),
        HEADER.saturating_add(u32::try_from(rows * cell.1).unwrap_or(u32::MAX)),
    );
    ((rows, cols), size)
}

struct PanelGrid<'a, P> {
    title: &'a str,
    panels: &'a [P],
    grid: (usize, usize),
    size: (u32, u32),
}

impl<P: GridPanel> Picture for PanelGrid<'_, P> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let body = header(root, self.title)?;
        for (i, (area, panel)) in body
            .split_evenly(self.grid)
            .iter()
            .zip(self.panels)
            .enumerate()
        {
            panel.draw(area, i)?;
        }
        Ok(())
    }
}

/// Clears the area, writes the title on top and returns the rest.
fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>, Box<dyn std::error::Error + Send + Sync>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
    let (head, body) = root.split_vertically(HEADER);
    head.draw(&Text::new(
        title.to_string(),
        (i32::try_from(width / 2).unwrap_or(0), 14),
        TextStyle::from((FONT, 24)).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_at_most_cols_wide_and_sized_by_its_cells() {
        assert_eq!(grid_layout(5, 2, (100, 50)), ((3, 2), (200, 56 + 150)));
        // Fewer panels than columns: one row, as wide as the panels.
        assert_eq!(grid_layout(1, 3, (100, 50)), ((1, 1), (100, 106)));
        // No panels still makes a (blank) cell.
        assert_eq!(grid_layout(0, 2, (100, 50)), ((1, 1), (100, 106)));
    }
}
