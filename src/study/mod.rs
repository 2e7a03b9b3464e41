//! `kvm-wss study`: the runs, figures and document (study.md) that answer
//! whether sampled invalidation estimates a working set well, at what cost,
//! how fast it follows change, and which setting to use.
//!
//! The plan (`plan`) is a fixed matrix of runs; `execute` makes them one by
//! one into `<out>/study/runs/<id>/`, reusing finished ones, so that an
//! interrupted study continues where it stopped; `figures` draws from
//! their outputs and writes the data behind each figure; `render` writes
//! `<out>/study.md`.

pub mod chart;
pub mod execute;
pub mod figures;
pub mod format;
pub mod host;
pub mod plan;
pub mod recommend;
pub mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::report::ReportError;

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write the progress log")]
    Log(#[source] std::io::Error),
    #[error(
        "interrupted after {done} of {total} runs; the same command continues where it stopped"
    )]
    Interrupted { done: usize, total: usize },
    #[error("{failed} of {total} runs failed; {doc} lists them")]
    RunsFailed {
        failed: usize,
        total: usize,
        doc: PathBuf,
    },
}

/// What `kvm-wss study` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyOptions {
    /// The document goes to `<out>/study.md`, everything else under
    /// `<out>/study/`.
    pub out: PathBuf,
    /// The whole matrix shrunk to seconds, for tests.
    pub quick: bool,
    /// Make every run again even if its folder holds a finished one.
    pub fresh: bool,
}

impl StudyOptions {
    /// The command line that makes this study's document, for captions.
    pub fn command(&self) -> String {
        let mut c = format!("kvm-wss study --out {}", self.out.display());
        if self.quick {
            c.push_str(" --quick");
        }
        c
    }
}

/// What a finished study produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOutcome {
    pub doc: PathBuf,
    pub runs: usize,
    pub cached: usize,
    pub figures: usize,
    pub elapsed_s: f64,
}

fn mkdir(path: &Path) -> Result<(), StudyError> {
    std::fs::create_dir_all(path).map_err(|source| StudyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Folders under `runs_dir` that are not runs of this plan.
fn stale_runs(runs_dir: &Path, plan: &plan::Plan) -> Vec<String> {
    let ids: std::collections::BTreeSet<String> = plan.runs().iter().map(|s| s.id()).collect();
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return Vec::new();
    };
    let mut stale: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !ids.contains(name))
        .collect();
    stale.sort();
    stale
}

/// Runs the study described by `opts`, logging progress to `log`.
pub fn study(opts: &StudyOptions, log: &mut dyn Write) -> Result<StudyOutcome, StudyError> {
    let start = Instant::now();
    let scale = if opts.quick {
        plan::Scale::quick()
    } else {
        plan::Scale::full()
    };
    let plan = plan::Plan::new(scale);
    let study_dir = opts.out.join("study");
    let runs_dir = study_dir.join("runs");
    mkdir(&runs_dir)?;
    let specs = plan.runs();
    let (todo, time) = execute::estimate(&specs, &runs_dir, opts.fresh);
    writeln!(
        log,
        "study: {} runs planned, {} already made, {} to make: about {} of run time",
        specs.len(),
        specs.len() - todo,
        todo,
        format::elapsed(time.as_secs_f64())
    )
    .map_err(StudyError::Log)?;
    let stale = stale_runs(&runs_dir, &plan);
    if !stale.is_empty() {
        writeln!(
            log,
            "study: {} folders under {} belong to no planned run and are left alone",
            stale.len(),
            runs_dir.display()
        )
        .map_err(StudyError::Log)?;
    }
    let results = execute::execute(&plan, &runs_dir, opts.fresh, log)?;
    let figs = figures::draw_all(&plan, &results, &study_dir)?;
    let failed: Vec<(String, String)> = results
        .failures(&plan)
        .into_iter()
        .map(|(s, why)| (s.id(), why.to_string()))
        .collect();
    let ended_early: Vec<(String, String)> = results
        .ended_early(&plan)
        .into_iter()
        .map(|(s, why)| (s.id(), why.to_string()))
        .collect();
    let prov = render::Provenance {
        command: opts.command(),
        runs_dir: runs_dir.display().to_string(),
        host: host::Host::current(),
        runs: specs.len(),
        cached: results.cached(),
        failed: failed.clone(),
        ended_early,
        run_wall_s: results.run_wall.as_secs_f64(),
    };
    let doc = opts.out.join("study.md");
    let text = render::render(&plan, &results, &figs, &prov);
    std::fs::write(&doc, text).map_err(|source| StudyError::Io {
        path: doc.clone(),
        source,
    })?;
    let elapsed_s = start.elapsed().as_secs_f64();
    writeln!(
        log,
        "study: wrote {} with {} figures; total elapsed {}",
        doc.display(),
        figs.all().len(),
        format::elapsed(elapsed_s)
    )
    .map_err(StudyError::Log)?;
    if !failed.is_empty() {
        return Err(StudyError::RunsFailed {
            failed: failed.len(),
            total: specs.len(),
            doc,
        });
    }
    Ok(StudyOutcome {
        doc,
        runs: specs.len(),
        cached: results.cached(),
        figures: figs.all().len(),
        elapsed_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_the_output_and_quick() {
        let mut o = StudyOptions {
            out: "docs".into(),
            quick: false,
            fresh: true,
        };
        assert_eq!(o.command(), "kvm-wss study --out docs");
        o.quick = true;
        assert_eq!(o.command(), "kvm-wss study --out docs --quick");
    }

    #[test]
    fn stale_folders_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan::Plan::new(plan::Scale::quick());
        let keep = p.defaults[0].id();
        std::fs::create_dir(dir.path().join(&keep)).unwrap();
        std::fs::create_dir(dir.path().join("old-run")).unwrap();
        std::fs::write(dir.path().join("a-file"), "").unwrap();
        assert_eq!(stale_runs(dir.path(), &p), vec!["old-run".to_string()]);
        assert!(stale_runs(&dir.path().join("missing"), &p).is_empty());
    }
}
