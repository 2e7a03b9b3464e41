//! The heat map of a recorded run (`kvm-wss plot --heatmap RUN_DIR`): time
//! to the right, guest data pages upwards, each cell coloured by the share
//! of its pages the guest touched (or wrote) in its time bucket, from the
//! exact recorded truth; and over it the pages the estimator sampled, found
//! by replaying the recorded settings with the replay core, with the
//! sampled pages that were caught outlined apart. DAMON's heat map, with
//! the truth it estimates drawn beside the samples.
//!
//! Work is bounded by the cells, not by pages × ticks: ticks are grouped
//! into at most [`MAX_COLUMNS`] columns and pages into at most [`MAX_ROWS`]
//! rows, and each column's truth is walked run by run.

use std::path::{Path, PathBuf};

use crate::plot::heatmap::{Bins, HeatMap, Labels, Mark, plot_heat_map};
use crate::record::{PageSet, Recording};
use crate::replay::{ArmedTick, ReplayError, ReplaySettings, replay_observed};
use crate::report::ReportError;

/// The file name (without extension) of the heat map in a run's folder.
pub const HEATMAP_BASE: &str = "heatmap";
/// At most this many columns (time buckets).
pub const MAX_COLUMNS: usize = 200;
/// At most this many rows (page buckets).
pub const MAX_ROWS: u64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum HeatmapError {
    #[error("cannot replay the recording's sampling")]
    Replay(#[source] ReplayError),
    #[error("the recording has no ticks: nothing to draw")]
    NoTicks,
    #[error("cannot draw the heat map")]
    Draw(#[source] ReportError),
}

/// Which recorded truth colours the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    Touched,
    Written,
}

impl Truth {
    fn of(self, tick: &crate::record::Tick) -> &PageSet {
        match self {
            Truth::Touched => &tick.touched,
            Truth::Written => &tick.written,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Truth::Touched => "touched",
            Truth::Written => "written",
        }
    }
}

/// How the recording is cut into cells: whole ticks per column and whole
/// pages per row, so every cell's share has an exact denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub ticks_per_column: usize,
    pub columns: usize,
    pub pages_per_row: u64,
    pub rows: u64,
    /// Pages in the domain (the last row may hold fewer than the others).
    pub domain_pages: u64,
}

impl Grid {
    /// The grid of `ticks` recorded ticks over `domain_pages` pages, with at
    /// most `max_columns` columns and `max_rows` rows; `None` when there
    /// are no ticks, pages, columns or rows.
    pub fn new(ticks: usize, domain_pages: u64, max_columns: usize, max_rows: u64) -> Option<Grid> {
        if ticks == 0 || domain_pages == 0 || max_columns == 0 || max_rows == 0 {
            return None;
        }
        let ticks_per_column = ticks.div_ceil(max_columns);
        let pages_per_row = domain_pages.div_ceil(max_rows);
        Some(Grid {
            ticks_per_column,
            columns: ticks.div_ceil(ticks_per_column),
            pages_per_row,
            rows: domain_pages.div_ceil(pages_per_row),
            domain_pages,
        })
    }

    pub fn column(&self, tick: usize) -> usize {
        tick / self.ticks_per_column
    }

    pub fn row(&self, page: u64) -> u64 {
        page / self.pages_per_row
    }

    /// The pages of the domain in `row`.
    pub fn pages_in_row(&self, row: u64) -> u64 {
        let lo = row * self.pages_per_row;
        (lo + self.pages_per_row).min(self.domain_pages) - lo.min(self.domain_pages)
    }
}

/// `shares[row][column]`: the share of the row's pages that `truth` holds in
/// any tick of the column.
pub fn truth_shares(rec: &Recording, grid: &Grid, truth: Truth) -> Vec<Vec<f64>> {
    let rows = usize::try_from(grid.rows).unwrap_or(usize::MAX);
    let mut shares = vec![vec![0.0; grid.columns]; rows];
    for (column, ticks) in rec.ticks.chunks(grid.ticks_per_column).enumerate() {
        let union = ticks
            .iter()
            .fold(PageSet::default(), |acc, t| acc.union(truth.of(t)));
        let mut counts = vec![0u64; rows];
        for run in union.runs() {
            let mut start = run.start;
            while start < run.end {
                let row = grid.row(start);
                let end = run.end.min((row + 1) * grid.pages_per_row);
                if let Some(c) = usize::try_from(row).ok().and_then(|r| counts.get_mut(r)) {
                    *c += end - start;
                }
                start = end;
            }
        }
        for (row, count) in counts.into_iter().enumerate() {
            shares[row][column] = count as f64 / grid.pages_in_row(row as u64) as f64;
        }
    }
    shares
}

/// The heat map of a recording, with what was sampled on it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingHeatMap {
    pub grid: Grid,
    pub map: HeatMap,
    /// Pages armed over the whole replay (one per page per estimator tick).
    pub sampled_pages: u64,
    /// Of those, the ones caught.
    pub caught_pages: u64,
}

impl RecordingHeatMap {
    /// Cells holding a sampled page (caught or not).
    pub fn sampled_cells(&self) -> usize {
        self.map.marked(Mark::Weak).len() + self.caught_cells()
    }

    /// Cells holding a caught sampled page.
    pub fn caught_cells(&self) -> usize {
        self.map.marked(Mark::Strong).len()
    }
}

/// Builds the heat map of `rec`: cells from `truth`, marks from replaying
/// the recorded sampling. A sampled page marks the cell of the first
/// recorded tick of its estimator tick, weakly, or strongly when caught.
pub fn build(rec: &Recording, truth: Truth) -> Result<RecordingHeatMap, HeatmapError> {
    let h = &rec.header;
    let grid = Grid::new(
        rec.ticks.len(),
        h.estimator.domain_pages,
        MAX_COLUMNS,
        MAX_ROWS,
    )
    .ok_or(HeatmapError::NoTicks)?;
    let column_s = h.tick_ns as f64 * grid.ticks_per_column as f64 / 1e9;
    let time = Bins::new(0.0, column_s * grid.columns as f64, grid.columns);
    let pages = Bins::new(
        0.0,
        (grid.rows * grid.pages_per_row) as f64,
        rows_usize(&grid),
    );
    let (Some(time), Some(pages)) = (time, pages) else {
        return Err(HeatmapError::NoTicks);
    };
    let mut map = HeatMap::new(time, pages);
    // The middle of a column, and a page in the middle of a row: safely
    // inside their bins whatever the floating-point rounding of the edges
    // (a row's first page could land in the row below).
    let mid = |column: usize| (column as f64 + 0.5) * column_s;
    let row_page = |row: u64| row * grid.pages_per_row + grid.pages_per_row / 2;
    for (row, shares) in truth_shares(rec, &grid, truth).into_iter().enumerate() {
        for (column, share) in shares.into_iter().enumerate() {
            if share > 0.0 {
                map.add(mid(column), row_page(row as u64), share);
            }
        }
    }
    let (mut sampled_pages, mut caught_pages) = (0u64, 0u64);
    replay_observed(rec, &ReplaySettings::recorded(h), |t: ArmedTick<'_>| {
        let t_s = mid(grid.column(t.ticks.start));
        sampled_pages += t.armed.len() as u64;
        caught_pages += t.caught.len() as u64;
        for &p in t.armed {
            map.mark(t_s, row_page(grid.row(p)), Mark::Weak);
        }
        for &p in t.caught {
            map.mark(t_s, row_page(grid.row(p)), Mark::Strong);
        }
    })
    .map_err(HeatmapError::Replay)?;
    Ok(RecordingHeatMap {
        grid,
        map,
        sampled_pages,
        caught_pages,
    })
}

fn rows_usize(grid: &Grid) -> usize {
    usize::try_from(grid.rows).unwrap_or(usize::MAX)
}

/// Draws `hm` of `rec` to `<base>.svg` and `<base>.png`; returns the paths.
pub fn draw(
    rec: &Recording,
    hm: &RecordingHeatMap,
    truth: Truth,
    base: &Path,
) -> Result<Vec<PathBuf>, HeatmapError> {
    let h = &rec.header;
    let g = &hm.grid;
    let title = format!(
        "{}: pages {} per {} ms, {} {} samples (seed {})",
        h.guest,
        truth.verb(),
        h.tick_ns.saturating_mul(g.ticks_per_column as u64) / 1_000_000,
        h.estimator.kind.name(),
        h.tracker.name(),
        h.seed,
    );
    let value = format!("share of {} pages {}", g.pages_per_row, truth.verb());
    let labels = Labels {
        title: &title,
        value: &value,
        weak: "sampled",
        strong: "sampled and caught",
    };
    plot_heat_map(&hm.map, &labels, base).map_err(HeatmapError::Draw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{DamonConfig, EstimatorConfig, EstimatorKind, EsxGains};
    use crate::record::{RecordHeader, Tick};
    use crate::track::TrackerKind;

    #[test]
    fn the_grid_cuts_whole_ticks_and_pages() {
        let g = Grid::new(450, 1000, 200, 256).unwrap();
        assert_eq!((g.ticks_per_column, g.columns), (3, 150));
        assert_eq!((g.pages_per_row, g.rows), (4, 250));
        assert_eq!(g.pages_in_row(249), 4);
        let g = Grid::new(5, 1001, 200, 256).unwrap();
        assert_eq!((g.ticks_per_column, g.columns), (1, 5));
        assert_eq!((g.pages_per_row, g.rows), (4, 251));
        // The last row holds the one page left over.
        assert_eq!(g.pages_in_row(250), 1);
        assert_eq!(g.column(4), 4);
        assert_eq!(g.row(1000), 250);
        assert_eq!(Grid::new(0, 10, 200, 256), None);
        assert_eq!(Grid::new(10, 0, 200, 256), None);
    }

    fn tick(i: u64, touched: &[u64], written: &[u64]) -> Tick {
        Tick {
            t_end_ns: (i + 1) * 100_000_000,
            ran_ns: 100_000_000,
            guest_ops: 1,
            phase: 0,
            stopped: false,
            close: None,
            touched: PageSet::from_sorted(touched.iter().copied()),
            written: PageSet::from_sorted(written.iter().copied()),
        }
    }

    /// 10 pages, 4 ticks: grouped 2 ticks per column and 4 pages per row.
    fn synthetic(kind: EstimatorKind) -> Recording {
        let touched: Vec<Vec<u64>> = vec![
            (0..4).collect(),
            (2..6).collect(),
            vec![9],
            (0..10).collect(),
        ];
        Recording {
            header: RecordHeader {
                guest: "synthetic".into(),
                tracker: TrackerKind::Uffd,
                estimator: EstimatorConfig {
                    kind,
                    domain_pages: 10,
                    sample_pages: 3,
                    esx: EsxGains::default(),
                    damon: DamonConfig::default(),
                    follow: Default::default(),
                },
                seed: 5,
                interval_ns: 100_000_000,
                ticks_per_interval: 1,
                tick_ns: 100_000_000,
                warmup_intervals: 0,
                mem_pages: 64,
                wss_bytes: 40960,
                vcpus: 1,
            },
            start: PageSet::default(),
            ticks: touched
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let w: Vec<u64> = t.iter().copied().filter(|p| p % 2 == 0).collect();
                    tick(i as u64, t, &w)
                })
                .collect(),
            end: crate::report::summary::EndKind::Duration,
        }
    }

    #[test]
    fn shares_are_the_union_of_a_columns_ticks_over_a_rows_pages() {
        let rec = synthetic(EstimatorKind::Exhaustive);
        let g = Grid::new(4, 10, 2, 3).unwrap();
        assert_eq!((g.ticks_per_column, g.pages_per_row, g.rows), (2, 4, 3));
        let s = truth_shares(&rec, &g, Truth::Touched);
        // Column 0: pages 0..6 (rows 0 full, row 1 half); column 1: all.
        assert_eq!(s[0], vec![1.0, 1.0]);
        assert_eq!(s[1], vec![0.5, 1.0]);
        // Row 2 has pages 8 and 9 only; page 9 in column 1's first tick.
        assert_eq!(s[2], vec![0.0, 1.0]);
        let w = truth_shares(&rec, &g, Truth::Written);
        // Written: the even pages of the touched ones.
        assert_eq!(w[0], vec![0.5, 0.5]);
        assert_eq!(w[1], vec![0.25, 0.5]);
        assert_eq!(w[2], vec![0.0, 0.5]);
    }

    #[test]
    fn exhaustive_sampling_marks_every_cell_and_catches_the_truth() {
        let rec = synthetic(EstimatorKind::Exhaustive);
        let hm = build(&rec, Truth::Touched).unwrap();
        // 4 ticks × 10 pages armed; caught: 4 + 4 + 1 + 10.
        assert_eq!(hm.sampled_pages, 40);
        assert_eq!(hm.caught_pages, 19);
        assert_eq!((hm.grid.columns, hm.grid.rows), (4, 10));
        assert_eq!(hm.map.cells[9], vec![None, None, Some(1.0), Some(1.0)]);
        assert_eq!(hm.map.cells[6], vec![None, None, None, Some(1.0)]);
        // A cell is caught exactly where it was touched, else only sampled.
        assert_eq!(hm.map.marked(Mark::Strong).len(), 19);
        assert_eq!(hm.map.marked(Mark::Weak).len(), 40 - 19);
        // Marks and the replay's rows agree.
        let rows = crate::replay::replay(&rec, &ReplaySettings::recorded(&rec.header)).unwrap();
        assert_eq!(rows.iter().map(|r| r.sampled_pages).sum::<u64>(), 40);
        assert_eq!(rows.iter().map(|r| r.touched_samples).sum::<u64>(), 19);
    }

    #[test]
    fn esx_marks_are_the_replayed_samples() {
        let rec = synthetic(EstimatorKind::Esx);
        let hm = build(&rec, Truth::Written).unwrap();
        let rows = crate::replay::replay(&rec, &ReplaySettings::recorded(&rec.header)).unwrap();
        assert_eq!(
            hm.sampled_pages,
            rows.iter().map(|r| r.sampled_pages).sum::<u64>()
        );
        assert_eq!(hm.sampled_pages, 12);
        assert_eq!(
            hm.caught_pages,
            rows.iter().map(|r| r.touched_samples).sum::<u64>()
        );
        // One page per row and one tick per column: one cell per page.
        let marked = hm.map.marked(Mark::Strong).len() + hm.map.marked(Mark::Weak).len();
        assert_eq!(marked as u64, hm.sampled_pages);
        assert_eq!(hm.map.marked(Mark::Strong).len() as u64, hm.caught_pages);
    }

    #[test]
    fn the_heat_map_is_drawn_with_its_labels() {
        let dir = tempfile::tempdir().unwrap();
        let rec = synthetic(EstimatorKind::Esx);
        let hm = build(&rec, Truth::Touched).unwrap();
        let paths = draw(&rec, &hm, Truth::Touched, &dir.path().join("hm")).unwrap();
        let texts = crate::plot::testutil::svg_texts(&std::fs::read_to_string(&paths[0]).unwrap());
        for t in [
            "synthetic: pages touched per 100 ms, esx uffd samples (seed 5)",
            "share of 1 pages touched",
            "sampled and caught",
        ] {
            assert!(texts.iter().any(|x| x == t), "SVG lacks {t:?}: {texts:?}");
        }
        let empty = Recording {
            ticks: Vec::new(),
            ..rec
        };
        assert!(matches!(
            build(&empty, Truth::Touched),
            Err(HeatmapError::NoTicks)
        ));
    }
}
