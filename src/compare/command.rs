//! `kvm-wss compare-estimators` (`make compare-estimators`): the
//! comparison of the study's question 6 on its own, written as
//! estimators.md and estimators.csv. It makes (or reuses) the very
//! recorded runs the study keeps under `OUT/study/runs/`, so both
//! documents read the same recordings, plus a live large-RAM check.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::{CompareError, Comparison, tables};
use crate::estimate::EstimatorKind;
use crate::record::TRACE_FILE;
use crate::report::ReportError;
use crate::study::StudyError;
use crate::study::execute::{Mode, Results, execute_specs};
use crate::study::format::{opt, pct};
use crate::study::plan::{Plan, QuestionRuns, Scale, Spec, SpecMaker, Workload};
use crate::track::TrackerKind;

/// The command line of `compare-estimators`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Folder for estimators.md and estimators.csv; the recorded runs are the study's,
    /// under OUT/study/runs/ (made there if missing, reused if finished).
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// Folder for the two live large-RAM runs.
    #[arg(long, default_value = "runs/compare-estimators")]
    pub runs: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Study(#[from] StudyError),
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot read the recording of {program}")]
    Trace {
        program: String,
        #[source]
        source: crate::record::RecordError,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The large-RAM check: hotset's 64 MiB region in 8 GiB of RAM, live,
/// 400 samples per 1 s, 12 s, with `estimator`.
pub fn large_ram_run(estimator: EstimatorKind) -> Spec {
    let scale = Scale::full();
    let make = SpecMaker { scale: &scale };
    let w = Workload {
        label: "hotset-8G".into(),
        guest: "hotset",
        params: vec![("rate".into(), "16384".into())],
    };
    Spec {
        mem: 8 << 30,
        wss: 64 << 20,
        ..make.spec(
            &w,
            TrackerKind::Uffd,
            estimator,
            scale.sample_pages,
            scale.interval,
            Duration::from_secs(12),
        )
    }
}

/// Makes or reuses the runs, replays the recordings, writes estimators.md
/// and estimators.csv into `args.out`; returns the document's path.
pub fn run(args: &CompareArgs, log: &mut dyn Write) -> Result<PathBuf, CommandError> {
    let plan = Plan::new(Scale::full());
    let runs_dir = args.out.join("study").join("runs");
    let specs = plan.estimators.specs();
    execute_specs(&specs, &runs_dir, Mode::Reuse, log)?;
    let mut recordings = Vec::new();
    for spec in &specs {
        let path = runs_dir.join(spec.id()).join(TRACE_FILE);
        let rec = crate::record::read(&path).map_err(|source| CommandError::Trace {
            program: spec.workload.label.clone(),
            source,
        })?;
        recordings.push((spec.workload.label.clone(), rec));
    }
    let comparison = super::measure(&recordings, &super::grid(), &super::SEEDS)?;
    let big_specs = [
        large_ram_run(EstimatorKind::Esx),
        large_ram_run(EstimatorKind::Follow),
    ];
    let big = execute_specs(
        &big_specs.iter().collect::<Vec<_>>(),
        &args.runs,
        Mode::Reuse,
        log,
    )?;
    let csv = args.out.join("estimators.csv");
    tables::write_csv(&csv, &comparison)?;
    let doc = args.out.join("estimators.md");
    let text = document(&plan, &comparison, &big_specs, &big);
    std::fs::write(&doc, text).map_err(|source| CommandError::Write {
        path: doc.clone(),
        source,
    })?;
    Ok(doc)
}

/// estimators.md.
fn document(plan: &Plan, c: &Comparison, big_specs: &[Spec; 2], big: &Results) -> String {
    let runs = &plan.estimators.recordings;
    let mut out = String::from("# ESX, DAMON and follow at equal tracked faults, by replay\n\n");
    out.push_str(&format!(
        "Made by `kvm-wss compare-estimators` (`make compare-estimators`) from the recorded \
         runs of the study's question {} (docs/study/runs/, made there when missing, so \
         study.md reads the same recordings). {}\n\n",
        crate::study::sections::Question::Estimators.number(),
        runs.first()
            .map_or(String::new(), |s| tables::method(s, runs.len()))
    ));
    out.push_str("#### At equal faults\n\n");
    out.push_str(&tables::equal_cost_table(c));
    out.push_str(&format!(
        "\n#### Per program at {} samples per 1 s\n\n",
        super::PER_PROGRAM_SIZE
    ));
    out.push_str(&tables::per_program_table(c));
    let mape = |s: &Spec| opt(big.summary(s).and_then(|s| s.mape), pct);
    out.push_str(&format!(
        "\n#### Large RAM, live\n\nhotset, `--mem 8G --wss 64M --param rate=16384`, 400 samples \
         per 1 s, 12 s, uffd: esx MAPE {}, follow MAPE {}.\n\nAll rows (means over the seeds) \
         are in estimators.csv.\n",
        mape(&big_specs[0]),
        mape(&big_specs[1]),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_ram_runs_are_hotset_in_8g() {
        let s = large_ram_run(EstimatorKind::Follow);
        assert_eq!(
            s.id(),
            "hotset,rate=16384__uffd-follow-n400-i1s-d12s-m8G-w64M-s1-wu2"
        );
        assert_eq!(s.record_tick, None);
    }
}
