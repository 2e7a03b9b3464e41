//! Making the planned runs, one at a time, each into its own folder under
//! `study/runs/<id>/`. A run whose summary.json is already there (from a
//! study that was interrupted, or an earlier one) is read back instead of
//! being made again, unless `--fresh` asks for new measurements.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StudyError;
use super::format::{opt, pct};

use super::plan::{Plan, Spec};
use crate::report::summary::{EndKind, Summary, read_summary};
use crate::report::timeseries::{Row, read_timeseries};

/// Time a run costs beyond its duration (boot, writing its outputs),
/// measured on the study machine at well under this; used only to print
/// the estimate.
pub const RUN_OVERHEAD: Duration = Duration::from_millis(100);

/// Where the study keeps why a run ended early: summary.json says only
/// that it did ("error", "guest_crash").
const END_NOTE: &str = "study-end.txt";
/// Where the study keeps how long making the run took (wall seconds, its
/// untracked twin included), so a document rendered from reused runs can
/// still say what making them cost.
const WALL_NOTE: &str = "study-wall-s.txt";

/// What became of one planned run.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The run left a summary and a time series. `ended_early` says why
    /// when it stopped before its duration (a tracker error, a guest
    /// crash): what it measured until then still counts.
    Done {
        summary: Box<Summary>,
        rows: Vec<Row>,
        cached: bool,
        ended_early: Option<String>,
        /// Wall time making the run took, when recorded.
        wall_s: Option<f64>,
    },
    /// The run could not be made at all: the reason.
    Failed(String),
}

/// Every run of the study, by id.
#[derive(Debug, Default)]
pub struct Results {
    runs: HashMap<String, Outcome>,
    /// What question 6 measured by replaying the recorded runs (filled in
    /// once the runs are made).
    pub replayed: crate::study::sections::estimators::Replayed,
}

impl Results {
    /// Builds results from outcomes directly (tests and re-rendering).
    pub fn from_outcomes(outcomes: impl IntoIterator<Item = (String, Outcome)>) -> Results {
        Results {
            runs: outcomes.into_iter().collect(),
            replayed: Default::default(),
        }
    }

    /// The summary and rows of a finished run.
    pub fn get(&self, spec: &Spec) -> Option<(&Summary, &[Row])> {
        match self.runs.get(&spec.id()) {
            Some(Outcome::Done { summary, rows, .. }) => Some((summary, rows)),
            _ => None,
        }
    }

    pub fn summary(&self, spec: &Spec) -> Option<&Summary> {
        self.get(spec).map(|(s, _)| s)
    }

    /// The failed runs of `plan`, with their reasons.
    pub fn failures<'a>(&'a self, plan: &'a Plan) -> Vec<(&'a Spec, &'a str)> {
        plan.runs()
            .into_iter()
            .filter_map(|s| match self.runs.get(&s.id()) {
                Some(Outcome::Failed(why)) => Some((s, why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Why `spec`'s run stopped before its duration, if it did.
    pub fn early_end(&self, spec: &Spec) -> Option<&str> {
        match self.runs.get(&spec.id()) {
            Some(Outcome::Done {
                ended_early: Some(why),
                ..
            }) => Some(why),
            _ => None,
        }
    }

    /// The runs of `plan` that stopped before their duration, with why.
    pub fn ended_early<'a>(&'a self, plan: &'a Plan) -> Vec<(&'a Spec, &'a str)> {
        plan.runs()
            .into_iter()
            .filter_map(|s| match self.runs.get(&s.id()) {
                Some(Outcome::Done {
                    ended_early: Some(why),
                    ..
                }) => Some((s, why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Wall time making the runs of `plan` took, summed over the runs that
    /// recorded it, and how many did not.
    pub fn recorded_wall(&self, plan: &Plan) -> (f64, usize) {
        plan.runs()
            .into_iter()
            .fold((0.0, 0), |(sum, missing), s| match self.runs.get(&s.id()) {
                Some(Outcome::Done {
                    wall_s: Some(w), ..
                }) => (sum + w, missing),
                _ => (sum, missing + 1),
            })
    }

    /// The summaries of the finished runs.
    pub fn summaries(&self) -> impl Iterator<Item = &Summary> {
        self.runs.values().filter_map(|o| match o {
            Outcome::Done { summary, .. } => Some(summary.as_ref()),
            Outcome::Failed(_) => None,
        })
    }

    /// How many runs were read back from an earlier study.
    pub fn cached(&self) -> usize {
        self.runs
            .values()
            .filter(|o| matches!(o, Outcome::Done { cached: true, .. }))
            .count()
    }
}

/// A finished run read back from its folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub summary: Summary,
    pub rows: Vec<Row>,
    pub ended_early: Option<String>,
    pub wall_s: Option<f64>,
}

/// Reads a finished run back; `None` when the folder holds no finished run
/// (missing or unreadable files, or a run cut short by Ctrl-C, which is
/// worth making again).
pub fn load_cached(dir: &Path) -> Option<Cached> {
    let summary = read_summary(&dir.join("summary.json")).ok()?;
    if summary.end == EndKind::Interrupted {
        return None;
    }
    let rows = read_timeseries(&dir.join("timeseries.csv")).ok()?;
    let note = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let ended_early = early_end(summary.end).map(|default| note(END_NOTE).unwrap_or(default));
    let wall_s = note(WALL_NOTE)
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|w| w.is_finite());
    Some(Cached {
        summary,
        rows,
        ended_early,
        wall_s,
    })
}

/// For a summary's `end`, a description of an early end (`None` for a
/// run that lasted its duration or whose guest exited cleanly).
fn early_end(end: EndKind) -> Option<String> {
    match end {
        EndKind::Duration | EndKind::GuestExit => None,
        other => Some(format!("ended early ({other})")),
    }
}

/// The planned run time of the runs not already cached, with overheads.
pub fn estimate(specs: &[&Spec], runs_dir: &Path, fresh: bool) -> (usize, Duration) {
    let todo: Vec<&&Spec> = specs
        .iter()
        .filter(|s| fresh || load_cached(&runs_dir.join(s.id())).is_none())
        .collect();
    let time = todo
        .iter()
        .map(|s| s.run_time() + RUN_OVERHEAD * if s.baseline { 2 } else { 1 })
        .sum();
    (todo.len(), time)
}

/// One progress line for a finished run.
fn progress_line(i: usize, total: usize, spec: &Spec, outcome: &Outcome, took: Duration) -> String {
    let width = total.to_string().len();
    let mut what = format!("{} {}", spec.workload.label, spec.method());
    if spec.estimator == crate::estimate::EstimatorKind::Esx {
        what.push_str(&format!(" n={}", spec.sample_pages));
        if spec.gains != crate::estimate::EsxGains::default() {
            what.push_str(&format!(" gains={}/{}", spec.gains.slow, spec.gains.fast));
        }
    }
    what.push_str(&format!(" every {}", super::format::setting(spec.interval)));
    if spec.baseline {
        what.push_str(" +baseline");
    }
    let result = match outcome {
        Outcome::Done {
            summary,
            cached: true,
            ..
        } => format!("cached, mape {}", opt(summary.mape, pct)),
        Outcome::Done { summary, .. } => format!(
            "{}, mape {}, {} tracked faults",
            super::format::setting(took),
            opt(summary.mape, pct),
            summary.tracked_faults.unwrap_or(0)
        ),
        Outcome::Failed(why) => format!("FAILED: {why}"),
    };
    let result = match outcome {
        Outcome::Done {
            ended_early: Some(why),
            ..
        } => format!("{result}; {why}"),
        _ => result,
    };
    format!("[{:>width$}/{total}] {what}: {result}", i + 1)
}

/// Whether `execute` makes runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read finished runs back; make the others.
    Reuse,
    /// Make every run again.
    Fresh,
    /// Make no run (`study --collect`): read finished runs back, and count
    /// the others as failed, being missing.
    Collect,
}

/// Why a run counts as failed under `Mode::Collect`.
pub const MISSING: &str =
    "missing: no finished run in its folder (its job did not run or did not finish)";

/// Makes (or reads back) every run of `plan` into `runs_dir`, printing a
/// line per run to `log`.
pub fn execute(
    plan: &Plan,
    runs_dir: &Path,
    mode: Mode,
    log: &mut dyn Write,
) -> Result<Results, StudyError> {
    execute_specs(&plan.runs(), runs_dir, mode, log)
}

/// [`execute`] for the runs `specs` alone (`kvm-wss compare-estimators`
/// makes only question 6's).
pub fn execute_specs(
    specs: &[&Spec],
    runs_dir: &Path,
    mode: Mode,
    log: &mut dyn Write,
) -> Result<Results, StudyError> {
    let total = specs.len();
    let mut results = Results::default();
    for (i, spec) in specs.iter().enumerate() {
        if crate::run::interrupted() {
            return Err(StudyError::Interrupted { done: i, total });
        }
        let dir = runs_dir.join(spec.id());
        let start = Instant::now();
        let outcome = match (mode, load_cached(&dir)) {
            (Mode::Reuse | Mode::Collect, Some(c)) => Outcome::Done {
                summary: Box::new(c.summary),
                rows: c.rows,
                cached: true,
                ended_early: c.ended_early,
                wall_s: c.wall_s,
            },
            (Mode::Collect, None) => Outcome::Failed(MISSING.to_string()),
            _ => make(spec, &dir)?,
        };
        if let Outcome::Done { summary, .. } = &outcome
            && summary.end == EndKind::Interrupted
        {
            return Err(StudyError::Interrupted { done: i, total });
        }
        let line = progress_line(i, total, spec, &outcome, start.elapsed());
        writeln!(log, "{line}").map_err(StudyError::Log)?;
        results.runs.insert(spec.id(), outcome);
    }
    Ok(results)
}

/// Makes one run into a clean `dir`.
fn make(spec: &Spec, dir: &PathBuf) -> Result<Outcome, StudyError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| StudyError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let start = Instant::now();
    let out = match crate::run::run_with(&spec.run_config(), dir, spec.run_extras()) {
        Ok(out) => out,
        Err(e) => return Ok(Outcome::Failed(crate::error_chain(&e))),
    };
    let wall_s = start.elapsed().as_secs_f64();
    let path = dir.join(WALL_NOTE);
    std::fs::write(&path, format!("{wall_s}\n"))
        .map_err(|source| StudyError::Io { path, source })?;
    let ended_early = match &out.end {
        crate::run::RunEnd::GuestCrash(msg) => Some(format!("guest crashed: {msg}")),
        crate::run::RunEnd::Error(e) => Some(crate::error_chain(e)),
        crate::run::RunEnd::GuestExit(code) if *code != 0 => {
            Some(format!("guest exited with code {code}"))
        }
        _ => None,
    };
    if let Some(why) = &ended_early {
        let path = dir.join(END_NOTE);
        std::fs::write(&path, format!("{why}\n"))
            .map_err(|source| StudyError::Io { path, source })?;
    }
    // Read back like a cached run's, rather than kept by the run: the same
    // file feeds the study whether the run was made now or before, and the
    // run itself keeps no rows.
    let rows = read_timeseries(&dir.join("timeseries.csv"))?;
    Ok(Outcome::Done {
        summary: Box::new(out.summary),
        rows,
        cached: false,
        ended_early,
        wall_s: Some(wall_s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::summary::write_summary;
    use crate::study::plan::Scale;

    #[test]
    fn only_complete_runs_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(load_cached(d).is_none());
        let mut s = Summary {
            end: crate::report::summary::EndKind::Duration,
            ..Summary::default()
        };
        write_summary(&d.join("summary.json"), &s).unwrap();
        // No time series yet.
        assert!(load_cached(d).is_none());
        let mut w =
            crate::report::timeseries::TimeseriesWriter::create(&d.join("timeseries.csv")).unwrap();
        w.write_row(&crate::report::timeseries::tests::row(1.0, 10, Some(9.0)))
            .unwrap();
        drop(w);
        let c = load_cached(d).unwrap();
        assert_eq!(c.summary, s);
        assert_eq!(c.rows.len(), 1);
        assert_eq!((c.ended_early, c.wall_s), (None, None));
        std::fs::write(d.join(WALL_NOTE), "20.5\n").unwrap();
        assert_eq!(load_cached(d).unwrap().wall_s, Some(20.5));
        // A run stopped by a tracker error keeps what it measured.
        s.end = crate::report::summary::EndKind::Error;
        write_summary(&d.join("summary.json"), &s).unwrap();
        assert_eq!(
            load_cached(d).unwrap().ended_early.as_deref(),
            Some("ended early (error)")
        );
        std::fs::write(d.join(END_NOTE), "mprotect failed\n").unwrap();
        assert_eq!(
            load_cached(d).unwrap().ended_early.as_deref(),
            Some("mprotect failed")
        );
        s.end = crate::report::summary::EndKind::Interrupted;
        write_summary(&d.join("summary.json"), &s).unwrap();
        assert!(load_cached(d).is_none());
    }

    #[test]
    fn estimate_counts_uncached_runs_with_their_baselines() {
        let dir = tempfile::tempdir().unwrap();
        let plan = super::super::plan::Plan::new(Scale::quick());
        let specs = plan.runs();
        let (n, t) = estimate(&specs, dir.path(), false);
        assert_eq!(n, specs.len());
        let expected: Duration = specs
            .iter()
            .map(|s| {
                let sides = if s.baseline { 2 } else { 1 };
                (s.duration + RUN_OVERHEAD) * sides
            })
            .sum();
        assert_eq!(t, expected);
    }

    #[test]
    fn progress_lines_name_the_run_and_its_result() {
        let plan = super::super::plan::Plan::new(Scale::full());
        let spec = &plan.defaults[1];
        let done = Outcome::Done {
            summary: Box::new(Summary {
                mape: Some(0.052),
                tracked_faults: Some(1000),
                ..Summary::default()
            }),
            rows: Vec::new(),
            cached: false,
            ended_early: None,
            wall_s: Some(20.0),
        };
        assert_eq!(
            progress_line(4, 153, spec, &done, Duration::from_secs(20)),
            "[  5/153] hotset uffd+esx n=400 every 1 s: 20 s, mape 5.2%, 1000 tracked faults"
        );
        let mut g = spec.clone();
        g.gains.slow = 0.5;
        g.baseline = true;
        assert_eq!(
            progress_line(0, 9, &g, &done, Duration::from_millis(310)),
            "[1/9] hotset uffd+esx n=400 gains=0.5/0.75 every 1 s +baseline: 310 ms, mape 5.2%, \
             1000 tracked faults"
        );
        let early = Outcome::Done {
            summary: Box::new(Summary::default()),
            rows: Vec::new(),
            cached: true,
            ended_early: Some("tracker failed".into()),
            wall_s: None,
        };
        assert_eq!(
            progress_line(0, 9, spec, &early, Duration::ZERO),
            "[1/9] hotset uffd+esx n=400 every 1 s: cached, mape n/a; tracker failed"
        );
        let failed = Outcome::Failed("no tracker".into());
        assert!(progress_line(0, 9, spec, &failed, Duration::ZERO).ends_with("FAILED: no tracker"));
    }
}
