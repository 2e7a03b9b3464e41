//! The analysis layer: every metric, statistic and rule the reports use,
//! defined once. `run`, `sweep` and `study` compute through here, so the
//! same quantity cannot drift between them.
//!
//! - [`stats`]: mean, median, quantiles, spread, least-squares slopes;
//! - [`accuracy`]: the estimate against the truth (MAE, MAPE, bias, lags),
//!   accumulated row by row;
//! - [`costs`]: what sampling cost, summed from a run's rows as they stream;
//! - [`derived`]: rates and costs from a run's summary (faults per second,
//!   slowdown, µs per fault or armed page, relative bias);
//! - [`recommend`]: the rule that picks the setting to recommend;
//! - [`working_set_curve`]: the exact working-set curve W(t, τ) of a trace,
//!   and an estimated curve scored against it per window;
//! - [`format`](mod@format): percentages and Markdown tables in the reports.

pub mod accuracy;
pub mod costs;
pub mod derived;
pub mod format;
pub mod recommend;
pub mod stats;
pub mod working_set_curve;
