//! The command-line side of the working-set curve: `replay` and `run
//! --record` with the `curve` estimator write the curve's files and print
//! its per-window table (see `curve` for what they hold).

use crate::app::AppError;
use crate::estimate::EstimatorKind;
use crate::replay::curve::CurveSummary;
use crate::run::RunOutput;

/// Replays `settings` over `rec`; for an estimator that measures the
/// working-set curve, also writes the curve's files into `out_dir` and
/// returns its summary.
pub(crate) fn replay_with_curve(
    rec: &crate::record::Recording,
    settings: &crate::replay::ReplaySettings,
    out_dir: &std::path::Path,
) -> Result<(Vec<crate::report::timeseries::Row>, Option<CurveSummary>), AppError> {
    let replayed = crate::replay::curve::replay_curve(rec, settings)?;
    if replayed.curve.is_empty() {
        return Ok((replayed.rows, None));
    }
    let c = CurveSummary::of(rec, settings, &replayed);
    let title = format!("{}: W(τ), estimated and exact", rec.header.guest);
    for path in crate::replay::curve::write_outputs(out_dir, &title, &c, &replayed.curve)? {
        eprintln!("kvm-wss: wrote {}", path.display());
    }
    Ok((replayed.rows, Some(c)))
}

pub(crate) fn print_curve(c: &CurveSummary) {
    println!("\nW(τ) against the exact curve of the trace, over the scored intervals:\n");
    print!("{}", c.markdown());
}

/// After a live `curve` run: its curve against the exact one, from the
/// trace `--record` kept (the replay with the recorded settings is the live
/// run's own curve, checked interval by interval). Without a trace there is
/// no exact curve to hold it against, and the user is told how to get one.
pub(crate) fn live_curve(
    cfg: &crate::config::RunConfig,
    out: &RunOutput,
    json: bool,
) -> Result<(), AppError> {
    if cfg.estimator != EstimatorKind::Curve {
        return Ok(());
    }
    let trace = out.dir.join(crate::record::TRACE_FILE);
    if !trace.is_file() {
        eprintln!(
            "kvm-wss: the curve's files (curve.csv, wss_curve.svg) are written with --record, whose trace holds the exact curve"
        );
        return Ok(());
    }
    let rec = crate::record::read(&trace).map_err(crate::replay::ReplayError::from)?;
    let settings = crate::replay::ReplaySettings::recorded(&rec.header);
    let (rows, curve) = replay_with_curve(&rec, &settings, &out.dir)?;
    let (equal, live) = crate::replay::live_matches(&rec, &rows);
    if equal != live {
        eprintln!(
            "kvm-wss: warning: the curve replayed from the trace matches {equal} of {live} live intervals"
        );
    }
    if let (Some(c), false) = (&curve, json) {
        print_curve(c);
    }
    Ok(())
}
