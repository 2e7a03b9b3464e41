//! Synthetic finished runs for the study's unit tests: the document and
//! every section's findings are tested on these instead of booting guests.

use super::execute::Outcome;
use super::plan::Spec;
use crate::report::summary::Summary;

/// A plausible finished run of `spec`: the truth steps between two
/// levels and the estimate follows one interval late.
pub fn synthetic(spec: &Spec, i: usize) -> Outcome {
    use crate::report::metrics::TruthColumn;
    use crate::report::timeseries::tests::row;
    let rows: Vec<crate::report::timeseries::Row> = (0..12)
        .map(|k| {
            let truth = if (k / 4) % 2 == 0 { 1000 } else { 3000 } + 10 * i as u64;
            let prev = if ((k.max(1) - 1) / 4) % 2 == 0 {
                1000.0
            } else {
                3000.0
            };
            row(k as f64 + 1.0, truth, Some(prev * 1.05))
        })
        .collect();
    let mut summary = crate::report::summary::Summary {
        guest: spec.workload.guest.into(),
        tracker: spec.tracker,
        estimator: Some(spec.estimator),
        sample_pages: Some(spec.sample_pages),
        interval_s: spec.interval.as_secs_f64(),
        duration_s: 12.0,
        intervals: 12,
        domain_pages: 130_000,
        tracked_faults: Some(100 * (i as u64 + 1)),
        fault_cost_us: Some(30.0),
        vmm_cpu_s: 0.5,
        end: crate::report::summary::EndKind::Duration,
        slowdown: spec.baseline.then_some(0.01 * i as f64),
        steady_slowdown: spec.baseline.then_some(0.004 * i as f64),
        steady_faults_per_s: Some(8.0 * (i as f64 + 1.0)),
        baseline_guest_ops_per_s: spec.baseline.then_some(5e7),
        ..Default::default()
    };
    let column = if spec.tracker.writes_only() {
        TruthColumn::Writes
    } else {
        TruthColumn::All
    };
    summary.record_accuracy(&rows, spec.warmup, column);
    Outcome::Done {
        summary: Box::new(summary),
        rows,
        cached: true,
        ended_early: (i == 3).then(|| "tracker gave up".to_string()),
        wall_s: Some(12.5),
    }
}

/// A finished run of `spec` with `summary` and no rows.
pub fn finished(summary: Summary) -> Outcome {
    Outcome::Done {
        summary: Box::new(summary),
        rows: Vec::new(),
        cached: true,
        ended_early: None,
        wall_s: None,
    }
}

/// The summary fields every synthetic run shares with `spec`.
pub fn summary_of(spec: &Spec) -> Summary {
    Summary {
        guest: spec.workload.guest.into(),
        tracker: spec.tracker,
        estimator: Some(spec.estimator),
        sample_pages: Some(spec.sample_pages),
        interval_s: spec.interval.as_secs_f64(),
        duration_s: spec.duration.as_secs_f64(),
        domain_pages: 130_000,
        end: crate::report::summary::EndKind::Duration,
        ..Default::default()
    }
}

/// study.md as `plan` and `results` render it, its figures drawn into a
/// temporary folder (returned, to read them), under a provenance of no
/// runs made.
pub fn rendered_with_figures(
    plan: &super::plan::Plan,
    results: &super::execute::Results,
) -> (String, super::figures::Figures, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let figs = super::figures::draw_all(plan, results, &dir.path().join("study")).unwrap();
    let prov = super::render::Provenance {
        command: "kvm-wss study --out docs".into(),
        runs_dir: "docs/study/runs".into(),
        host: super::host::Host::current(),
        runs: 0,
        cached: 0,
        failed: Vec::new(),
        ended_early: Vec::new(),
        recorded_wall_s: 0.0,
        unrecorded: 0,
        isolated_touches: Vec::new(),
    };
    let doc = super::render::render(plan, results, &figs, &prov);
    (doc, figs, dir)
}

/// [`rendered_with_figures`]'s document alone.
pub fn rendered(plan: &super::plan::Plan, results: &super::execute::Results) -> String {
    rendered_with_figures(plan, results).0
}
