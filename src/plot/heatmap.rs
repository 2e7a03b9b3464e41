//! The time × address heat map: guest memory over time as a grid of cells,
//! one column per time bin and one row per range of pages, each cell
//! coloured by the value summed into it (touches, faults), and chosen cells
//! marked in two strengths (for example the sampled pages, and the
//! sampled pages found touched). A replay of a recorded run draws what the
//! guest touched and what the sampler saw this way.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::backend::{OnInterrupt, Picture, svg_and_png};
use super::colour::{ColourScale, draw_colour_bar};
use super::{DrawResult, FONT, format_tick};
use crate::report::ReportError;

/// The dot on a cell marked [`Mark::Strong`].
pub const STRONG_MARK_COLOR: RGBColor = RGBColor(214, 39, 40);
/// The dot on a cell marked [`Mark::Weak`].
pub const WEAK_MARK_COLOR: RGBColor = RGBColor(30, 30, 30);
/// Pixel size of the picture.
const SIZE: (u32, u32) = (1100, 640);
/// Width of the colour bar on the right.
const BAR_WIDTH: u32 = 130;

/// A half-open range `[lo, hi)` cut into `bins` equal bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
}

impl Bins {
    /// The bins of `[lo, hi)`; `None` for an empty or unbounded range or no
    /// bins.
    pub fn new(lo: f64, hi: f64, bins: usize) -> Option<Bins> {
        (lo.is_finite() && hi.is_finite() && hi > lo && bins > 0).then_some(Bins { lo, hi, bins })
    }

    /// The bin holding `x`; `None` outside the range.
    pub fn of(&self, x: f64) -> Option<usize> {
        if !(x >= self.lo && x < self.hi) {
            return None;
        }
        let i = ((x - self.lo) / (self.hi - self.lo) * self.bins as f64).floor() as usize;
        // Rounding just below `hi` can land on `bins`.
        Some(i.min(self.bins - 1))
    }

    /// The lower edge of bin `i` (`hi` for `i == bins`).
    pub fn edge(&self, i: usize) -> f64 {
        self.lo + (self.hi - self.lo) * i as f64 / self.bins as f64
    }
}

/// Values binned by time (columns) and guest page (rows).
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// Seconds since the start of the run.
    pub time: Bins,
    /// Guest page numbers.
    pub pages: Bins,
    /// `cells[page_bin][time_bin]`: the sum of the values added there,
    /// `None` where nothing was.
    pub cells: Vec<Vec<Option<f64>>>,
    /// `marks[page_bin][time_bin]`: the strongest mark put on the cell.
    pub marks: Vec<Vec<Option<Mark>>>,
}

/// How a cell is marked; a strong mark hides a weak one in the same cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// A small dark dot (for example: a page was sampled here).
    Weak,
    /// A larger red dot (for example: a sampled page was caught here).
    Strong,
}

impl HeatMap {
    /// An empty map over `time` × `pages`.
    pub fn new(time: Bins, pages: Bins) -> HeatMap {
        HeatMap {
            time,
            pages,
            cells: vec![vec![None; time.bins]; pages.bins],
            marks: vec![vec![None; time.bins]; pages.bins],
        }
    }

    /// The (time bin, page bin) of a point; `None` outside the map.
    pub fn cell_of(&self, t_s: f64, page: u64) -> Option<(usize, usize)> {
        Some((self.time.of(t_s)?, self.pages.of(page as f64)?))
    }

    /// Adds `value` at page `page` at time `t_s`; false (and nothing added)
    /// when the point lies outside the map or `value` is not finite.
    pub fn add(&mut self, t_s: f64, page: u64, value: f64) -> bool {
        let Some((t, p)) = self.cell_of(t_s, page).filter(|_| value.is_finite()) else {
            return false;
        };
        let cell = &mut self.cells[p][t];
        *cell = Some(cell.unwrap_or(0.0) + value);
        true
    }

    /// Marks the cell of page `page` at time `t_s` with `mark`, keeping
    /// the stronger of it and any mark already there; false outside the
    /// map.
    pub fn mark(&mut self, t_s: f64, page: u64, mark: Mark) -> bool {
        let Some((t, p)) = self.cell_of(t_s, page) else {
            return false;
        };
        let cell = &mut self.marks[p][t];
        *cell = (*cell).max(Some(mark));
        true
    }

    /// The cells whose strongest mark is `mark`, as (time bin, page bin),
    /// by page bin then time bin.
    pub fn marked(&self, mark: Mark) -> Vec<(usize, usize)> {
        self.marks
            .iter()
            .enumerate()
            .flat_map(|(pi, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |(_, m)| **m == Some(mark))
                    .map(move |(ti, _)| (ti, pi))
            })
            .collect()
    }

    /// The colour scale of the filled cells; `None` when none is.
    pub fn scale(&self) -> Option<ColourScale> {
        ColourScale::spanning(self.cells.iter().flatten().flatten().copied())
    }
}

/// What the picture of a heat map says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels<'a> {
    pub title: &'a str,
    /// What a cell's value is, for the colour bar ("touches").
    pub value: &'a str,
    /// What a weakly marked cell means, for the legend ("sampled").
    pub weak: &'a str,
    /// What a strongly marked cell means, for the legend ("sampled and
    /// touched").
    pub strong: &'a str,
}

/// Writes `<base>.svg` and `<base>.png` of `map`: time to the right, guest
/// pages upwards, empty cells white, marked cells dotted, and a colour
/// bar. Returns the paths written.
pub fn plot_heat_map(
    map: &HeatMap,
    labels: &Labels,
    base: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    svg_and_png(&HeatMapPicture { map, labels }, base, OnInterrupt::Finish)
}

struct HeatMapPicture<'a> {
    map: &'a HeatMap,
    labels: &'a Labels<'a>,
}

impl Picture for HeatMapPicture<'_> {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let (map, labels) = (self.map, self.labels);
        root.fill(&WHITE)?;
        let (width, _) = root.dim_in_pixel();
        let (main, bar) = root.split_horizontally(width.saturating_sub(BAR_WIDTH));
        let (t, p) = (map.time, map.pages);
        let mut chart = ChartBuilder::on(&main)
            .caption(labels.title, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d(t.lo..t.hi, p.lo..p.hi)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time (s)")
            .y_desc("guest page")
            .x_label_formatter(&|x| format_tick(*x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let scale = map.scale();
        let rect =
            |ti: usize, pi: usize| [(t.edge(ti), p.edge(pi)), (t.edge(ti + 1), p.edge(pi + 1))];
        if let Some(scale) = scale {
            chart.draw_series(map.cells.iter().enumerate().flat_map(|(pi, row)| {
                row.iter().enumerate().filter_map(move |(ti, v)| {
                    v.map(|v| Rectangle::new(rect(ti, pi), scale.fill(v).filled()))
                })
            }))?;
        }
        let mut legend = false;
        // Marks are dots at the cell's centre, not outlines: a sampler arms
        // pages in most rows every tick, and outlines would hide the cells.
        let centre = |ti: usize, pi: usize| {
            (
                (t.edge(ti) + t.edge(ti + 1)) / 2.0,
                (p.edge(pi) + p.edge(pi + 1)) / 2.0,
            )
        };
        for (mark, colour, radius, label) in [
            (Mark::Weak, WEAK_MARK_COLOR, 1, labels.weak),
            (Mark::Strong, STRONG_MARK_COLOR, 2, labels.strong),
        ] {
            let cells = map.marked(mark);
            if cells.is_empty() {
                continue;
            }
            legend = true;
            chart
                .draw_series(
                    cells
                        .into_iter()
                        .map(|(ti, pi)| Circle::new(centre(ti, pi), radius, colour.filled())),
                )?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 8, y), radius + 2, colour.filled()));
        }
        if legend {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font((FONT, 14))
                .draw()?;
        }
        draw_colour_bar(&bar, scale, labels.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::testutil::{assert_png, svg_texts};

    #[test]
    fn bins_are_half_open_and_equal() {
        let b = Bins::new(0.0, 10.0, 4).unwrap();
        assert_eq!(b.of(0.0), Some(0));
        assert_eq!(b.of(2.49), Some(0));
        assert_eq!(b.of(2.5), Some(1));
        assert_eq!(b.of(9.999), Some(3));
        assert_eq!(b.of(10.0), None);
        assert_eq!(b.of(-0.1), None);
        assert_eq!(b.of(f64::NAN), None);
        assert_eq!(b.edge(0), 0.0);
        assert_eq!(b.edge(1), 2.5);
        assert_eq!(b.edge(4), 10.0);
        assert_eq!(Bins::new(1.0, 1.0, 4), None);
        assert_eq!(Bins::new(0.0, 1.0, 0), None);
        assert_eq!(Bins::new(0.0, f64::INFINITY, 2), None);
    }

    /// Two seconds in two bins over pages 0..1024 in four bins of 256.
    fn small() -> HeatMap {
        HeatMap::new(
            Bins::new(0.0, 2.0, 2).unwrap(),
            Bins::new(0.0, 1024.0, 4).unwrap(),
        )
    }

    #[test]
    fn values_sum_into_their_cells() {
        let mut m = small();
        assert!(m.add(0.5, 10, 1.0));
        assert!(m.add(0.9, 255, 2.0));
        assert!(m.add(1.0, 256, 5.0));
        assert!(m.add(1.99, 1023, 0.5));
        // Outside the map, or not a number: dropped.
        assert!(!m.add(2.0, 0, 1.0));
        assert!(!m.add(0.0, 1024, 1.0));
        assert!(!m.add(0.0, 0, f64::NAN));
        assert_eq!(m.cells[0], vec![Some(3.0), None]);
        assert_eq!(m.cells[1], vec![None, Some(5.0)]);
        assert_eq!(m.cells[2], vec![None, None]);
        assert_eq!(m.cells[3], vec![None, Some(0.5)]);
        assert_eq!(m.scale(), Some(ColourScale { lo: 0.5, hi: 5.0 }));
        assert_eq!(small().scale(), None);
    }

    #[test]
    fn marks_are_kept_once_per_cell_and_the_strongest_wins() {
        let mut m = small();
        assert!(m.mark(0.1, 300, Mark::Weak));
        assert!(m.mark(0.2, 400, Mark::Weak));
        assert!(m.mark(1.5, 0, Mark::Strong));
        assert!(m.mark(1.6, 1, Mark::Weak));
        assert!(!m.mark(3.0, 0, Mark::Strong));
        assert!(m.mark(0.5, 700, Mark::Weak));
        assert!(m.mark(0.6, 710, Mark::Strong));
        assert_eq!(m.marked(Mark::Weak), vec![(0, 1)]);
        assert_eq!(m.marked(Mark::Strong), vec![(1, 0), (0, 2)]);
    }

    #[test]
    fn a_small_map_is_drawn_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = small();
        m.add(0.5, 10, 4.0);
        m.add(1.5, 700, 1.0);
        m.mark(1.5, 700, Mark::Strong);
        m.mark(0.5, 10, Mark::Weak);
        let labels = Labels {
            title: "Touched pages",
            value: "touches",
            weak: "sampled",
            strong: "sampled and touched",
        };
        let paths = plot_heat_map(&m, &labels, &dir.path().join("replay")).unwrap();
        assert_eq!(
            paths,
            vec![dir.path().join("replay.svg"), dir.path().join("replay.png")]
        );
        let texts = svg_texts(&std::fs::read_to_string(&paths[0]).unwrap());
        for t in [
            "Touched pages",
            "touches",
            "sampled and touched",
            "sampled",
            "time (s)",
            "guest page",
        ] {
            assert!(texts.iter().any(|x| x == t), "SVG lacks {t:?}: {texts:?}");
        }
        assert_png(&paths[1], 5_000);
        // An empty map still draws (axes, no colour bar).
        let paths = plot_heat_map(&small(), &labels, &dir.path().join("empty")).unwrap();
        assert!(paths[1].exists());
    }
}
