//! The study document, study.md: the introduction and the summary at the
//! top, then each question's section (`super::sections`) in order, then the
//! runs that ended early or failed.

use std::fmt::Write as _;

use super::doc::Doc;
use super::execute::Results;
use super::figures::Figures;
use super::format::{Align, NA, elapsed, sig, table};
use super::host::Host;
use super::plan::Plan;
use super::sections::Question;

/// What the document says about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// The study command as typed, e.g. `kvm-wss study --out docs`.
    pub command: String,
    /// Where the runs' folders are, as the commands should name them.
    pub runs_dir: String,
    pub host: Host,
    pub runs: usize,
    pub cached: usize,
    pub failed: Vec<(String, String)>,
    /// Runs that stopped before their duration but left data, with why.
    pub ended_early: Vec<(String, String)>,
    /// Wall time making the runs took, over those that recorded it, and
    /// how many did not (runs that failed).
    pub recorded_wall_s: f64,
    pub unrecorded: usize,
    /// The isolated touch costs `bench trackers` measured, read from the
    /// folder beside the study (see `super::bench_touch`).
    pub isolated_touches: Vec<super::bench_touch::IsolatedTouch>,
}

/// The whole document.
pub fn render(plan: &Plan, results: &Results, figs: &Figures, prov: &Provenance) -> String {
    let mut doc = Doc {
        plan,
        results,
        figs,
        prov,
        out: String::new(),
        summary: Vec::new(),
    };
    doc.setup();
    // The questions in the order the writer numbers them.
    for q in Question::ALL {
        match q {
            Question::Works => doc.works(),
            Question::Effective => doc.effective(),
            Question::Efficient => doc.efficient(),
            Question::Agile => doc.agile(),
            Question::Settings => doc.recommendations(),
            Question::Estimators => doc.estimators(),
        }
    }
    doc.threats();
    failed_runs(&mut doc);
    let body = std::mem::take(&mut doc.out);
    intro(&mut doc);
    doc.line("## In short");
    doc.line("");
    for line in std::mem::take(&mut doc.summary) {
        doc.line(&format!("- {line}"));
    }
    doc.line("");
    doc.out.push_str(&body);
    doc.out
}

/// The title, how the document was made, and the machine.
fn intro(doc: &mut Doc) {
    let p = doc.prov;
    let planned: f64 = doc
        .plan
        .runs()
        .iter()
        .map(|s| s.run_time().as_secs_f64())
        .sum();
    doc.line("# How well does sampled invalidation estimate a working set?");
    doc.line("");
    let mut text = format!(
        "This document, its figures, tables and every number in its text were generated \
         by `{}` from {} runs of `kvm-wss`: {} of planned run time (runs with a baseline \
         count twice: an untracked twin runs first); making them took {} of wall time. ",
        p.command,
        p.runs,
        elapsed(planned),
        elapsed(p.recorded_wall_s),
    );
    if p.cached > 0 {
        let _ = write!(
            text,
            "This rendering read {} of the runs back from `{}`, where an earlier \
             invocation of the same command left them. ",
            p.cached, p.runs_dir
        );
    }
    let old = doc
        .results
        .summaries()
        .filter(|s| s.mape_is_of_policy())
        .count();
    if old > 0 {
        let _ = write!(
            text,
            "{old} of the ESX runs were made before kvm-wss reported ESX's measurement \
             apart from its policy value (the maximum of its two averages): their MAPE and \
             lags are of the policy value, those of the other runs of the measurement, \
             which follows a falling working set at once; `--fresh` makes every run again \
             with the measurement. "
        );
    }
    text.push_str(
        "Running the same command again reuses finished runs (add `--fresh` to measure \
         everything again); every figure's caption lists the equivalent `kvm-wss run` \
         command of each run behind it.",
    );
    doc.para(&text);
    let h = &p.host;
    let virt = if h.hw_virt {
        "the CPU flags offer hardware virtualisation (vmx or svm)"
    } else {
        "the CPU flags show no vmx or svm, so KVM here is served without hardware \
         virtualisation (by PVM, according to the host notes): no EPT, no PML"
    };
    doc.para(&format!(
        "**The machine.** `nproc`: {}; kernel (`uname -sr`): {}; CPU: {}; memory: {}; \
         {virt}. The machine is itself a virtual machine shared with other work, so \
         timings are noisy.",
        h.nproc,
        h.kernel,
        h.cpu_model,
        h.mem_bytes.map_or(NA.to_string(), |b| format!(
            "{} GiB",
            sig(b as f64 / 1073741824.0, 3)
        ))
    ));
}

/// The runs that ended early and those that failed, if any.
fn failed_runs(doc: &mut Doc) {
    if !doc.prov.ended_early.is_empty() {
        doc.line("## Runs that ended early");
        doc.line("");
        doc.para(
            "These runs stopped before their planned duration; what they measured until \
             then is in the figures and tables.",
        );
        let rows: Vec<Vec<String>> = doc
            .prov
            .ended_early
            .iter()
            .map(|(id, why)| vec![format!("`{id}`"), why.clone()])
            .collect();
        doc.para(&table(&["run", "why"], &[Align::Left, Align::Left], &rows));
    }
    if doc.prov.failed.is_empty() {
        return;
    }
    doc.line("## Runs that failed");
    doc.line("");
    doc.para(
        "These runs could not be made; the figures and tables show n/a where they would \
         have been.",
    );
    let rows: Vec<Vec<String>> = doc
        .prov
        .failed
        .iter()
        .map(|(id, why)| vec![format!("`{id}`"), why.clone()])
        .collect();
    doc.para(&table(
        &["run", "reason"],
        &[Align::Left, Align::Left],
        &rows,
    ));
}
