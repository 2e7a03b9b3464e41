//! `kvm-wss study`: the runs, figures and document (study.md) that answer
//! whether sampled invalidation estimates a working set well, at what cost,
//! how fast it follows change, and which setting to use.
//!
//! The plan (`plan`) is a fixed matrix of runs; `execute` makes them one by
//! one into `<out>/study/runs/<id>/`, reusing finished ones, so that an
//! interrupted study continues where it stopped; `figures` draws from
//! their outputs and writes the data behind each figure; `render` writes
//! `<out>/study.md`.

pub mod bench_touch;
mod doc;
pub mod evidence;
pub mod execute;
pub mod figures;
pub mod format;
pub mod host;
pub mod plan;
pub mod recommend;
pub mod render;
pub mod sections;
#[cfg(test)]
pub(crate) mod testdata;

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
    #[error("cannot draw the heat map")]
    Heatmap(#[source] crate::report::heatmap::HeatmapError),
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
    /// Make no run: read the finished ones back (`study --collect`) and
    /// list the others as missing.
    pub collect: bool,
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
    if opts.collect {
        writeln!(
            log,
            "study: {} runs planned, {} finished under {}, {} missing",
            specs.len(),
            specs.len() - todo,
            runs_dir.display(),
            todo
        )
    } else {
        writeln!(
            log,
            "study: {} runs planned, {} already made, {} to make: about {} of run time",
            specs.len(),
            specs.len() - todo,
            todo,
            format::elapsed(time.as_secs_f64())
        )
    }
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
    let mode = if opts.collect {
        execute::Mode::Collect
    } else if opts.fresh {
        execute::Mode::Fresh
    } else {
        execute::Mode::Reuse
    };
    let mut results = execute::execute(&plan, &runs_dir, mode, log)?;
    results.replayed = sections::estimators::Replayed::measure(&plan, &runs_dir);
    writeln!(
        log,
        "study: replayed the {} recordings of section {} ({} not measured)",
        plan.estimators.recordings.len(),
        sections::Question::Estimators.number(),
        results.replayed.problems.len()
    )
    .map_err(StudyError::Log)?;
    let hosts = crate::sweep::Hosts::from_summaries(results.summaries());
    for (line, n) in &hosts.hosts {
        writeln!(log, "study: {n} runs on {line}").map_err(StudyError::Log)?;
    }
    let mixed = hosts.mixed_note();
    if let Some(note) = &mixed {
        writeln!(log, "study: {note}").map_err(StudyError::Log)?;
    }
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
        // The machine the runs recorded (the first one's, when they were
        // made elsewhere and collected here), else this one.
        host: results
            .summaries()
            .find_map(|s| s.host.clone())
            .unwrap_or_else(host::Host::current),
        runs: specs.len(),
        cached: results.cached(),
        failed: failed.clone(),
        ended_early,
        recorded_wall_s: results.recorded_wall(&plan).0,
        unrecorded: results.recorded_wall(&plan).1,
        isolated_touches: bench_touch::read_isolated_touches(&opts.out.join("bench")),
    };
    let doc = opts.out.join("study.md");
    let mut text = render::render(&plan, &results, &figs, &prov);
    if let Some(note) = mixed {
        text.push_str(&format!("\n**{note}**\n"));
    }
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

/// `study --emit-jobs FILE`: writes the runs of the study not yet finished
/// under `<out>/study/runs/` to `file`, one job line each (see
/// `crate::sweep::jobs`), into the very folders the study makes them in.
/// Returns how many were listed and how many are finished already.
pub fn emit_jobs(
    opts: &StudyOptions,
    bin: &str,
    file: &Path,
) -> Result<(usize, usize), StudyError> {
    let scale = if opts.quick {
        plan::Scale::quick()
    } else {
        plan::Scale::full()
    };
    let plan = plan::Plan::new(scale);
    let runs_dir = opts.out.join("study").join("runs");
    mkdir(&runs_dir)?;
    let mut text = String::new();
    let mut skipped = 0;
    for spec in plan.runs() {
        let dir = runs_dir.join(spec.id());
        // The study's own rule for reusing a run.
        if execute::load_cached(&dir).is_some() {
            skipped += 1;
            continue;
        }
        let mut argv = vec![bin.to_string()];
        argv.extend(crate::sweep::jobs::run_args(&spec.run_config(), &dir));
        if let Some(tick) = spec.record_tick {
            argv.extend([
                "--record".into(),
                "--record-tick".into(),
                plan::duration_arg(tick),
            ]);
        }
        text.push_str(&crate::sweep::jobs::command_line(&argv));
        text.push('\n');
    }
    std::fs::write(file, &text).map_err(|source| StudyError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    Ok((text.lines().count(), skipped))
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
            collect: false,
        };
        assert_eq!(o.command(), "kvm-wss study --out docs");
        o.quick = true;
        assert_eq!(o.command(), "kvm-wss study --out docs --quick");
    }

    #[test]
    fn document_renders_every_section_from_synthetic_runs() {
        let p = plan::Plan::new(plan::Scale::full());
        let runs = p.runs();
        let results = execute::Results::from_outcomes(runs.iter().enumerate().map(|(i, s)| {
            let o = if i == 5 {
                execute::Outcome::Failed("no KVM".into())
            } else {
                testdata::synthetic(s, i)
            };
            (s.id(), o)
        }));
        let dir = tempfile::tempdir().unwrap();
        let figs = figures::draw_all(&p, &results, &dir.path().join("study")).unwrap();
        let prov = render::Provenance {
            command: "kvm-wss study --out docs".into(),
            runs_dir: "docs/study/runs".into(),
            host: host::Host::current(),
            runs: runs.len(),
            cached: runs.len() - 1,
            failed: results
                .failures(&p)
                .into_iter()
                .map(|(s, w)| (s.id(), w.to_string()))
                .collect(),
            ended_early: results
                .ended_early(&p)
                .into_iter()
                .map(|(s, w)| (s.id(), w.to_string()))
                .collect(),
            recorded_wall_s: results.recorded_wall(&p).0,
            unrecorded: results.recorded_wall(&p).1,
            isolated_touches: Vec::new(),
        };
        assert_eq!(prov.failed.len(), 1);
        assert_eq!(prov.ended_early.len(), 1);
        assert_eq!(prov.unrecorded, 1);
        let doc = render::render(&p, &results, &figs, &prov);
        for heading in [
            "## 1. Does it work?",
            "## 2. How effective is it?",
            "### Where it fails, and why",
            "## 3. How efficient is it?",
            "## 4. Is it agile?",
            "## 5. Which interval and sample size to use?",
            "## 6. Does another estimator do better at equal cost?",
            "## Threats to validity",
            "## Runs that ended early",
            "## Runs that failed",
        ] {
            assert!(doc.contains(heading), "no {heading:?}");
        }
        for bad in ["NaN", "null", "inf%"] {
            assert!(!doc.contains(bad), "{bad:?} in the document");
        }
        for f in figs.all() {
            assert!(doc.contains(&f.png()), "{} not shown", f.stem);
            assert!(dir.path().join(f.csv()).exists(), "{} has no data", f.stem);
        }
        // Every figure lists the runs behind it as commands.
        assert_eq!(doc.matches("<details><summary>").count(), figs.all().len());
        // Captions name other figures through the writer, which numbers
        // them: the gains figure points at the interval one, eighth of nine.
        assert!(!doc.contains("{figure:"), "an unresolved figure reference");
        assert!(doc.contains("Lags as in Figure 8;"));
        // The questions are numbered by the writer, in document order.
        let at = |h: &str| doc.find(h).unwrap_or(usize::MAX);
        assert!(at("## 1. Does it work?") < at("## 5. Which interval"));
        // The host notes are quoted, labelled as such.
        assert!(doc.contains("The host notes report"));
        // Question 3 sets the steady cost against bench trackers' (no file
        // here: not measured) and states uffd's first-touch fill apart;
        // question 5 adds the slowdown budget.
        assert!(doc.contains("**Against the isolated touch.**"));
        assert!(doc.contains("`bench trackers` did not measure uffd's isolated touch"));
        assert!(doc.contains("**The first touch under uffd.**"));
        assert!(doc.contains("**Within a slowdown budget.**"));
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
