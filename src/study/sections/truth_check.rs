//! Question 1's cross-check of the truth: the VMM's own count of touched
//! pages (exhaustive tracking) against the guest runtime's count.

use std::fmt::Write as _;

use crate::report::summary::Summary;
use crate::study::doc::Doc;
use crate::study::evidence::median;
use crate::study::execute::Results;
use crate::study::figures::faults_per_s;
use crate::study::format::{count, opt, pct};
use crate::study::plan::{Plan, Spec};
use crate::study::sections::works::Scored;

/// How the VMM's exhaustive count compares with the guest's own count.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthCheck {
    /// Programs whose exhaustive run has a MAPE.
    pub workloads: usize,
    pub median_mape: Option<f64>,
    /// The largest MAPE, the first program that has it, and its MAE.
    pub worst: Scored,
    pub worst_mae_pages: Option<f64>,
    /// The most tracked faults per second any exhaustive run took.
    pub peak_faults_per_s: Option<f64>,
    /// Holds taken mid-access over the exhaustive runs.
    pub forced_holds: u64,
}

impl TruthCheck {
    pub(in crate::study) fn from_runs(plan: &Plan, results: &Results) -> Option<TruthCheck> {
        let finished: Vec<(&Spec, &Summary)> = plan
            .works
            .exhaustive
            .iter()
            .filter_map(|sp| Some((sp, results.summary(sp)?)))
            .collect();
        let scored: Vec<(&Spec, &Summary, f64)> = finished
            .iter()
            .filter_map(|&(sp, s)| Some((sp, s, s.mape?)))
            .collect();
        let (worst_spec, worst_run, worst_mape) = scored
            .iter()
            .copied()
            .reduce(|w, x| if x.2 > w.2 { x } else { w })?;
        let mapes: Vec<f64> = scored.iter().map(|x| x.2).collect();
        Some(TruthCheck {
            workloads: scored.len(),
            median_mape: median(mapes.iter().copied()),
            worst: Scored {
                label: worst_spec.workload.label.clone(),
                mape: worst_mape,
            },
            worst_mae_pages: worst_run.mae_pages,
            peak_faults_per_s: finished
                .iter()
                .filter_map(|(_, s)| faults_per_s(s))
                .reduce(f64::max),
            forced_holds: finished.iter().map(|(_, s)| s.forced_holds).sum(),
        })
    }
}

impl Doc<'_> {
    /// The cross-check of the truth against exhaustive tracking.
    pub(in crate::study) fn exhaustive_check(&mut self, truth: Option<&TruthCheck>) {
        let Some(t) = truth else {
            self.para("No exhaustive run finished, so the truth could not be cross-checked.");
            return;
        };
        let mut text = String::from(
            "**Cross-check of the truth.** Exhaustive tracking arms every page of the domain \
             every interval, so its estimate is the VMM's own count of the pages the guest \
             touched. ",
        );
        let peak_faults = opt(t.peak_faults_per_s, count);
        let exact = t.worst.mape == 0.0;
        if exact {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE is 0 in all {} programs, at a cost \
                 of up to {peak_faults} tracked faults per second. ",
                t.workloads
            );
            self.summary.push(
                "**Is the truth right?** Yes: the VMM's own exhaustive count equals the \
                 guest's count of touched pages in every scored interval of every program \
                 (MAPE 0)."
                    .to_string(),
            );
            text.push_str(
                "The two independent counts are equal in every scored interval: the guest is \
                 held at every boundary, at a point between two whole accesses, so nothing it \
                 touches can fall between the VMM's count and its own.",
            );
        } else {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE has a median of {} over the \
                 programs and is at most {} (`{}`, off by {} pages per interval on \
                 average), at a cost of up to {peak_faults} tracked faults per second. ",
                opt(t.median_mape, pct),
                pct(t.worst.mape),
                t.worst.label,
                opt(t.worst_mae_pages, count),
            );
            self.summary.push(format!(
                "**Is the truth right?** The VMM's own exhaustive count agrees with the \
                 guest's count of touched pages to a median MAPE of {} over the programs (at \
                 most {}), where it should be exact.",
                opt(t.median_mape, pct),
                pct(t.worst.mape)
            ));
            let _ = write!(
                text,
                "The two counts should be equal, since the guest is held at every boundary; \
                 where they differ, something broke that guarantee ({} holds had to be \
                 taken mid-access), and the runs above say where.",
                t.forced_holds
            );
        }
        self.para(&text);
    }
}
