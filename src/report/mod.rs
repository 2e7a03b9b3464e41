//! What a run leaves behind for people: the per-interval time series
//! (timeseries.csv), the run summary (summary.json), the accuracy metrics that
//! compare the estimate with the ground truth, and the plots drawn from them.
//! Nothing here touches KVM, so all of it is testable on hand-built data.

pub mod metrics;
pub mod plot;
pub mod summary;
pub mod timeseries;

use std::path::PathBuf;

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
}
