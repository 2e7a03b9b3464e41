//! What a run leaves behind for people: the per-interval time series
//! (timeseries.csv), the run summary (summary.json), the accuracy metrics that
//! compare the estimate with the ground truth, and the plots drawn from them.
//! Nothing here touches KVM, so all of it is testable on hand-built data.

/// The accuracy metrics moved to [`crate::analysis::accuracy`]; this keeps
/// the old path working for code not yet switched over.
pub use crate::analysis::accuracy as metrics;
pub mod heatmap;
pub mod plot;
pub mod plot_series;
pub mod summary;
pub mod timeseries;

use std::path::{Path, PathBuf};

/// Failure to write or read a report artifact. Every variant names the file
/// involved, because a run directory holds several and the bare I/O error
/// would not say which one was at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("I/O error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CSV error in {path}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("JSON error in {path}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("drawing {path} failed")]
    Draw {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the embedded plot font could not be loaded")]
    Font,
    #[error("nothing to plot: the time series has no rows")]
    NoRows,
    #[error("heat map shape mismatch: {0}")]
    HeatmapShape(String),
    /// Ctrl-C arrived while the file was being made: it was not kept.
    #[error("interrupted while writing {path}; it was not kept")]
    Interrupted { path: PathBuf },
}

/// Where `path` is written before it is renamed into place: a hidden file
/// in the same folder (so the rename is atomic) that keeps the extension
/// (which picks the image format).
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Renames the finished `tmp` to `path`: a reader sees the old file or the
/// whole new one, never half of it.
pub(crate) fn rename_into_place(tmp: &Path, path: &Path) -> Result<(), ReportError> {
    std::fs::rename(tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(tmp);
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    rename_into_place(&tmp, path)
}
