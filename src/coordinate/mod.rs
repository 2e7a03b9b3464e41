//! Memory coordination across VMs.
//!
//! The per-VM mechanism: a resident limit ([`limit`]), the compressed store
//! evicted pages go to ([`store`]) and the reclaim that evicts the coldest
//! pages above the limit at each boundary ([`reclaim`], [`victims`]); the
//! uffd tracker restores them on the guest's next touch.
//!
//! `kvm-wss coordinate` on top: several VMs under one host memory budget, a
//! policy that sets each VM's resident limit from its estimates every
//! interval, and outputs that show, VM by VM, the estimate that drove each
//! decision beside the true working set.
//!
//! - `args`: the command line, checked into a plan;
//! - `scenario`: the VMs and their timing (built-ins and TOML files);
//! - `policy`: limits from per-VM state (static, esx, wss, oracle);
//! - `runner`: one thread per VM, the coordinator loop;
//! - `interleave`: rounds whose coordinated VMs and twins take turns;
//! - `output`: the per-interval lines, coordinate.csv, coordinate.json;
//! - `plot`: the per-VM and total panels;
//! - `doc`: docs/coordinate.md from the runs of `make coordinate`;
//! - `phase_split`: where in the VMs' programs the slowdown falls.

pub mod args;
pub mod doc;
pub mod interleave;
pub mod limit;
pub mod output;
pub mod phase_split;
pub mod plot;
pub mod policy;
pub mod reclaim;
pub mod runner;
pub mod scenario;
pub mod store;
pub mod victims;

use std::path::PathBuf;

use output::{CoordinateSummary, OutputError};
use runner::{CoordinateError, Outcome, Plan};

/// A coordinated run, its outputs and where they are.
pub struct Finished {
    pub outcome: Outcome,
    pub summary: CoordinateSummary,
    pub files: Vec<PathBuf>,
}

/// Runs `plan` and writes coordinate.json and, unless interrupted or
/// told not to, the plot (coordinate.csv is written as the run goes).
pub fn execute(plan: &Plan) -> Result<Finished, CoordinateError> {
    let outcome = runner::run(plan)?;
    let summary = output::summarise(plan, &outcome);
    let mut files = vec![plan.out_dir.join(output::CSV_FILE)];
    // A twin side of an interleaved round: its run folders and csv.
    if plan.child == Some(runner::ChildRole::Twin) {
        return Ok(Finished {
            outcome,
            summary,
            files,
        });
    }
    files.push(output::write_json(&plan.out_dir, &summary)?);
    if plan.plot && !outcome.intervals.is_empty() && !crate::run::interrupted() {
        let names: Vec<String> = plan.scenario.vms.iter().map(|v| v.name.clone()).collect();
        let title = format!(
            "{}: policy {}, host budget {:.0} MiB",
            plan.scenario.name, summary.policy, summary.host_mem_mib
        );
        files.extend(
            plot::plot(
                &plan.out_dir,
                &title,
                &names,
                &outcome.intervals,
                plan.host_pages,
            )
            .map_err(OutputError::from)?,
        );
    }
    Ok(Finished {
        outcome,
        summary,
        files,
    })
}
