//! The per-interval time series: one [`Row`] per sampling interval, written
//! to timeseries.csv as the run goes.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ReportError;
use crate::estimate::{Estimate, IntervalEstimate};

/// One sampling interval. The first ten columns are a contract with whoever
/// reads the CSV (scripts, the sweep, the plots): their names and order must
/// not change. Extra columns may only be appended after them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// End time of the interval, seconds since the guest started.
    pub t_s: f64,
    /// Distinct data pages read or written in the interval.
    pub true_wss_pages: u64,
    /// Distinct data pages written in the interval.
    pub true_wss_write_pages: u64,
    /// The estimator's measurement of this interval's WSS (ESX: the sampled
    /// fraction × the domain); an empty cell when there is no estimate
    /// (`--tracker none`). Files written before `policy_wss_pages` existed
    /// hold ESX's policy value (max of its averages) here instead.
    pub est_wss_pages: Option<f64>,
    /// Lower end of the measurement's band (ESX: 95% Wilson interval).
    pub est_lo_pages: Option<f64>,
    /// Upper end of the measurement's band.
    pub est_hi_pages: Option<f64>,
    /// Pages armed in the interval, summed over ticks.
    pub sampled_pages: u64,
    /// Armed pages seen touched.
    pub touched_samples: u64,
    /// Tracked faults taken in the interval.
    pub faults: u64,
    /// Guest memory accesses in the interval.
    pub guest_ops: u64,
    /// Time the guest ran in this interval, seconds: from the release of
    /// the hold that began it to the hold that ended it, less the holds at
    /// ticks inside it.
    pub interval_s: f64,
    /// Whether the guest ran at least [`FULL_FRACTION`] of the interval
    /// asked for, and the run did not end during it. Only full intervals
    /// are compared with the truth: a short one covers less time.
    pub full: bool,
    /// Guest phase marker in force at the end of the interval.
    pub phase: u64,
    /// Sampler time spent arming pages in this interval, microseconds.
    pub arm_us: f64,
    /// Sampler time spent collecting touched pages in this interval, microseconds.
    pub collect_us: f64,
    /// Time the guest spent stalled in this interval (tracked faults, host
    /// preemption), as its own run loop measured it, microseconds.
    pub stall_us: f64,
    /// Time the guest was held out of `KVM_RUN` at this interval's ticks
    /// and at the boundary that ended it (collect, truth, re-arm), from
    /// the request to the release, microseconds. Files written before the
    /// column existed read as 0.
    #[serde(default)]
    pub hold_us: f64,
    /// The estimator's policy value for this interval, pages: what an
    /// allocator on top of the measurements would act on (ESX: the max of
    /// its slow and fast averages; the measurement itself for damon and
    /// exhaustive). Empty without an estimate, and in files written before
    /// the column existed.
    #[serde(default)]
    pub policy_wss_pages: Option<f64>,
    /// Data pages resident after the eviction at this interval's closing
    /// boundary (`mincore`); empty without a resident limit.
    #[serde(default)]
    pub resident_pages: Option<u64>,
    /// Data pages reclaim evicted at that boundary.
    #[serde(default)]
    pub evicted_pages: u64,
    /// Evicted pages the guest touched in the interval, restored from the
    /// store at that touch.
    #[serde(default)]
    pub refaults: u64,
    /// Time the uffd handler spent restoring them, microseconds (the guest
    /// waits at least this long).
    #[serde(default)]
    pub refault_us: f64,
}

impl Row {
    /// The estimate columns as the estimator reported them: `None` without
    /// an estimate or without a policy value (files from before the column).
    pub fn estimate(&self) -> Option<IntervalEstimate> {
        let pages = self.est_wss_pages?;
        Some(IntervalEstimate {
            raw: Estimate {
                pages,
                lo: self.est_lo_pages.unwrap_or(pages),
                hi: self.est_hi_pages.unwrap_or(pages),
            },
            policy_pages: self.policy_wss_pages?,
        })
    }

    /// Fills the estimate columns from what the estimator reported.
    pub fn set_estimate(&mut self, estimate: Option<IntervalEstimate>) {
        self.est_wss_pages = estimate.map(|e| e.raw.pages);
        self.est_lo_pages = estimate.map(|e| e.raw.lo);
        self.est_hi_pages = estimate.map(|e| e.raw.hi);
        self.policy_wss_pages = estimate.map(|e| e.policy_pages);
    }
}

/// The least share of `--interval` the guest must have run for an interval
/// to count as full.
pub const FULL_FRACTION: f64 = 0.9;

/// The CSV header line (no line break): the column names in file order,
/// as serde derives them from [`Row`], so the struct is the one list of
/// columns and the header cannot drift from the rows under it.
pub fn header() -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.serialize(Row::default())?;
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Appends rows to timeseries.csv. The header is written when the file is
/// created, so even a run stopped before its first interval leaves a file the
/// readers accept, and every row is flushed as soon as it is written, so an
/// interrupted run (Ctrl-C) never loses a finished interval.
pub struct TimeseriesWriter {
    writer: csv::Writer<File>,
    path: PathBuf,
}

impl TimeseriesWriter {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path) -> Result<Self, ReportError> {
        let io_error = |source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        };
        // The header is written here, not by csv: its automatic header only
        // appears with the first record, which an empty run never has.
        let header = header().map_err(|source| ReportError::Csv {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = File::create(path).map_err(io_error)?;
        writeln!(file, "{header}").map_err(io_error)?;
        let writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        let mut this = Self {
            writer,
            path: path.to_path_buf(),
        };
        this.flush()?;
        Ok(this)
    }

    /// Appends one row and flushes it to the file.
    pub fn write_row(&mut self, row: &Row) -> Result<(), ReportError> {
        self.writer
            .serialize(row)
            .map_err(|source| self.csv_error(source))?;
        self.flush()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn flush(&mut self) -> Result<(), ReportError> {
        self.writer.flush().map_err(|source| ReportError::Io {
            path: self.path.clone(),
            source,
        })
    }

    fn csv_error(&self, source: csv::Error) -> ReportError {
        ReportError::Csv {
            path: self.path.clone(),
            source,
        }
    }
}

/// Reads a whole timeseries.csv. Columns are matched by name, so a file
/// with extra columns appended by a later version still reads.
pub fn read_timeseries(path: &Path) -> Result<Vec<Row>, ReportError> {
    let mut rows = Vec::new();
    for_each_row(path, |row| rows.push(row))?;
    Ok(rows)
}

/// Reads timeseries.csv one row at a time, handing each to `f` in file
/// order, so a reader that keeps only a summary of the rows (the plot's
/// bounded series) needs no memory for the file.
pub fn for_each_row(path: &Path, mut f: impl FnMut(Row)) -> Result<(), ReportError> {
    let csv_error = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    for row in reader.deserialize() {
        f(row.map_err(csv_error)?);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A full interval with the given truth and estimate; other counters zero.
    pub(crate) fn row(t_s: f64, truth: u64, est: Option<f64>) -> Row {
        Row {
            t_s,
            true_wss_pages: truth,
            true_wss_write_pages: truth / 2,
            est_wss_pages: est,
            est_lo_pages: est.map(|e| e * 0.9),
            est_hi_pages: est.map(|e| e * 1.1),
            sampled_pages: 0,
            touched_samples: 0,
            faults: 0,
            guest_ops: 0,
            interval_s: 1.0,
            full: true,
            phase: 0,
            arm_us: 0.0,
            collect_us: 0.0,
            stall_us: 0.0,
            hold_us: 0.0,
            policy_wss_pages: est,
            ..Row::default()
        }
    }

    fn sample_rows() -> Vec<Row> {
        let mut a = row(0.5, 1000, Some(980.5));
        a.est_lo_pages = Some(900.0);
        a.est_hi_pages = Some(1061.25);
        a.sampled_pages = 512;
        a.touched_samples = 77;
        a.faults = 77;
        a.guest_ops = 123_456;
        a.interval_s = 0.5;
        a.phase = 3;
        a.arm_us = 12.25;
        a.collect_us = 40.5;
        a.policy_wss_pages = Some(1500.25);
        let mut b = row(0.75, 7, None);
        b.full = false;
        b.interval_s = 0.25;
        vec![a, b]
    }

    /// The header other tools read (see the README): the first ten columns
    /// are a contract, later ones only ever appended.
    const CONTRACT_HEADER: &str = "t_s,true_wss_pages,true_wss_write_pages,est_wss_pages,\
        est_lo_pages,est_hi_pages,sampled_pages,touched_samples,faults,guest_ops,interval_s,\
        full,phase,arm_us,collect_us,stall_us,hold_us,policy_wss_pages,resident_pages,\
        evicted_pages,refaults,refault_us";

    #[test]
    fn header_is_the_documented_column_list() {
        assert_eq!(header().unwrap(), CONTRACT_HEADER);
    }

    #[test]
    fn header_is_written_at_creation_and_rows_are_flushed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeseries.csv");
        let mut w = TimeseriesWriter::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{CONTRACT_HEADER}\n")
        );
        assert!(read_timeseries(&path).unwrap().is_empty());

        let rows = sample_rows();
        w.write_row(&rows[0]).unwrap();
        // Read while the writer is still alive: the row must already be on disk.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "0.5,1000,500,980.5,900.0,1061.25,512,77,77,123456,0.5,true,3,12.25,40.5,0.0,0.0,1500.25,,0,0,0.0"
        );
        w.write_row(&rows[1]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        // No estimate: the four estimate cells are empty.
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "0.75,7,3,,,,0,0,0,0,0.25,false,0,0.0,0.0,0.0,0.0,,,0,0,0.0"
        );
        assert_eq!(w.path(), path.as_path());
        drop(w);
        assert_eq!(read_timeseries(&path).unwrap(), rows);
    }

    #[test]
    fn reader_ignores_appended_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ts.csv");
        let text = format!(
            "{CONTRACT_HEADER},later_extra\n1.0,10,5,,,,0,0,0,9,1.0,true,2,0.0,0.0,0.0,3.5,,,0,0,0.0,xyz\n"
        );
        std::fs::write(&path, text).unwrap();
        let rows = read_timeseries(&path).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].true_wss_pages, 10);
        assert_eq!(rows[0].guest_ops, 9);
        assert_eq!(rows[0].phase, 2);
        assert_eq!(rows[0].est_wss_pages, None);
        assert_eq!(rows[0].hold_us, 3.5);
    }

    #[test]
    fn reader_takes_files_from_before_the_hold_and_policy_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ts.csv");
        let text = format!(
            "{}\n1.0,10,5,12.5,11.0,14.0,0,0,0,9,1.0,true,2,0.0,0.0,0.0\n",
            CONTRACT_HEADER.trim_end_matches(
                ",hold_us,policy_wss_pages,resident_pages,evicted_pages,refaults,refault_us"
            )
        );
        std::fs::write(&path, text).unwrap();
        let rows = read_timeseries(&path).unwrap();
        assert_eq!(rows[0].hold_us, 0.0);
        assert_eq!(rows[0].guest_ops, 9);
        assert_eq!(rows[0].est_wss_pages, Some(12.5));
        assert_eq!(rows[0].policy_wss_pages, None);
        // Without a policy value the row's estimate is not whole.
        assert_eq!(rows[0].estimate(), None);
        assert_eq!((rows[0].resident_pages, rows[0].refaults), (None, 0));
    }

    #[test]
    fn estimate_columns_round_trip_through_the_row() {
        let e = IntervalEstimate {
            raw: Estimate {
                pages: 100.0,
                lo: 90.0,
                hi: 115.0,
            },
            policy_pages: 130.0,
        };
        let mut r = row(1.0, 100, None);
        r.set_estimate(Some(e));
        assert_eq!(
            (r.est_wss_pages, r.est_lo_pages, r.est_hi_pages),
            (Some(100.0), Some(90.0), Some(115.0))
        );
        assert_eq!(r.policy_wss_pages, Some(130.0));
        assert_eq!(r.estimate(), Some(e));
        r.set_estimate(None);
        assert_eq!(r.estimate(), None);
        assert_eq!((r.est_wss_pages, r.policy_wss_pages), (None, None));
    }

    #[test]
    fn bad_input_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, format!("{CONTRACT_HEADER}\nnot-a-number\n")).unwrap();
        match read_timeseries(&path) {
            Err(ReportError::Csv { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected a CSV error, got {other:?}"),
        }
        let missing = dir.path().join("missing.csv");
        assert!(matches!(
            read_timeseries(&missing),
            Err(ReportError::Csv { .. })
        ));
        assert!(matches!(
            TimeseriesWriter::create(&dir.path().join("no/such/dir.csv")),
            Err(ReportError::Io { .. })
        ));
    }
}
