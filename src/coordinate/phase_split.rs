//! Where a slowdown against the twins falls: the same work-weighted
//! slowdown as a round's (`output::round_work_slowdowns`), taken over the
//! intervals a VM spent in each of its program's phases. A coordinator's
//! costs come at particular moments (evicting a boot footprint, a growth
//! the limit lags behind, a shrink whose pages go), so a whole-run figure
//! says how much and this says when. Read back from the runs' own files
//! (each VM's timeseries.csv and summary.json, coordinated and twin, every
//! round), so that it needs no new measurement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::analysis::derived::per_second;
use crate::report::ReportError;
use crate::report::summary::read_summary;
use crate::report::timeseries::{Row, read_timeseries};

use super::doc::{range, run_dir};
use super::output::{CoordinateSummary, work_slowdown};
use super::policy::PolicyKind;
use super::runner::{round_dir, twins_dir, vm_dir};
use super::scenario::Builtin;
use crate::analysis::format::{Align, markdown_table, opt_percent};
use crate::analysis::stats::mean;
use crate::named::Named;
use std::fmt::Write as _;

/// A VM's operations and guest seconds in one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseWork {
    pub ops: u64,
    pub seconds: f64,
}

impl PhaseWork {
    fn ops_per_s(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| per_second(self.ops, self.seconds))
    }
}

/// A VM's work per phase marker.
pub type Phases = BTreeMap<u64, PhaseWork>;

/// A VM's intervals summed by the phase marker in force at each one's end.
/// An interval that crosses a phase change counts in the later phase.
pub fn by_phase(rows: &[Row]) -> Phases {
    let mut phases = Phases::new();
    for r in rows {
        let w = phases.entry(r.phase).or_default();
        w.ops += r.guest_ops;
        w.seconds += r.interval_s;
    }
    phases
}

/// One round's slowdown per phase: one less the VMs' ops per second in
/// that phase, summed, over their twins' (the VMs in `pairs`, each its
/// coordinated run's phases and its twin's). A VM counts in a phase when
/// both its runs spent time in it; a phase whose twins did nothing there
/// is left out.
pub fn round_by_phase(pairs: &[(Phases, Phases)]) -> BTreeMap<u64, f64> {
    let mut rates: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for (coordinated, twin) in pairs {
        for (phase, c) in coordinated {
            let pair = c
                .ops_per_s()
                .zip(twin.get(phase).and_then(PhaseWork::ops_per_s));
            if let Some(pair) = pair {
                rates.entry(*phase).or_default().push(pair);
            }
        }
    }
    rates
        .into_iter()
        .filter_map(|(phase, r)| work_slowdown(r.into_iter()).map(|s| (phase, s)))
        .collect()
}

/// A run's slowdown per phase over its rounds, and each phase's share of
/// the twins' operations (how much of the whole-run figure it carries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PhaseSplit {
    /// Per phase marker, its slowdown in each round that has it.
    pub rounds: BTreeMap<u64, Vec<f64>>,
    /// Per phase marker, its share of the twins' operations over the rounds.
    pub twin_ops_share: BTreeMap<u64, f64>,
    /// Per round, the slowdown of the VMs' operations per second of their
    /// vCPU threads' CPU time, summed, over their twins': what is left of
    /// the slowdown once a VM's share of the host's CPUs is taken out.
    pub per_cpu_s_rounds: Vec<f64>,
}

/// Operations per CPU second of the guest's vCPU threads.
fn ops_per_cpu_s(s: &crate::report::summary::Summary) -> Option<f64> {
    let cpu = s.tracker_stats.vcpu_thread_cpu_s;
    (cpu > 0.0).then(|| per_second(s.guest_ops, cpu))
}

/// Why a run's rounds could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the runs of round {round} of {}", .dir.display())]
pub struct SplitError {
    pub dir: PathBuf,
    pub round: usize,
    #[source]
    pub source: ReportError,
}

/// The phase split of the run with twins in `dir`, over its `rounds`
/// (round 1 in `dir` itself, round k in `rounds/k/`), for the VMs named
/// `vms`. VMs whose program announced no phase (`idle`) are left out: all
/// their intervals read as phase 0, where they would only add their few
/// operations. A round whose folders are missing (cut short) is skipped.
pub fn read_split(dir: &Path, rounds: usize, vms: &[String]) -> Result<PhaseSplit, SplitError> {
    let mut split = PhaseSplit::default();
    let mut twin_ops: BTreeMap<u64, u64> = BTreeMap::new();
    for k in 1..=rounds {
        let coordinated = if k == 1 {
            dir.to_path_buf()
        } else {
            round_dir(dir, k)
        };
        let twin = twins_dir(&coordinated);
        if !coordinated.is_dir() || !twin.is_dir() {
            continue;
        }
        let err = |source| SplitError {
            dir: dir.to_path_buf(),
            round: k,
            source,
        };
        let mut pairs = Vec::new();
        let mut per_cpu_s = Vec::new();
        for vm in vms {
            let (c, t) = (vm_dir(&coordinated, vm), vm_dir(&twin, vm));
            let summary = read_summary(&c.join("summary.json")).map_err(err)?;
            if summary.phases.is_empty() {
                continue;
            }
            let twin_summary = read_summary(&t.join("summary.json")).map_err(err)?;
            per_cpu_s.extend(ops_per_cpu_s(&summary).zip(ops_per_cpu_s(&twin_summary)));
            let twin_phases = by_phase(&read_timeseries(&t.join("timeseries.csv")).map_err(err)?);
            for (phase, w) in &twin_phases {
                *twin_ops.entry(*phase).or_default() += w.ops;
            }
            let mine = by_phase(&read_timeseries(&c.join("timeseries.csv")).map_err(err)?);
            pairs.push((mine, twin_phases));
        }
        for (phase, s) in round_by_phase(&pairs) {
            split.rounds.entry(phase).or_default().push(s);
        }
        split
            .per_cpu_s_rounds
            .extend(work_slowdown(per_cpu_s.into_iter()));
    }
    let total: u64 = twin_ops.values().sum();
    if total > 0 {
        split.twin_ops_share = twin_ops
            .into_iter()
            .map(|(phase, ops)| (phase, ops as f64 / total as f64))
            .collect();
    }
    Ok(split)
}

/// What the built-in scenarios' working VMs (all `ramp`) mean by each
/// phase marker.
fn phase_label(marker: u64) -> String {
    match marker {
        0 => "0: wait, grow".into(),
        1 => "1: hold".into(),
        2 => "2: shrink".into(),
        3 => "3: floor".into(),
        m => format!("phase {m}"),
    }
}

/// docs/coordinate.md's section on where the slowdown falls: per run with
/// twins under `dir`, its slowdown per phase over the rounds, and per
/// scenario the share of the twins' operations each phase holds. Absent
/// without a run with twins.
pub fn section(
    dir: &Path,
    runs: &[(Builtin, PolicyKind, CoordinateSummary)],
    text: &mut String,
) -> Result<(), SplitError> {
    let mut splits = Vec::new();
    for (scenario, policy, s) in runs {
        let rounds = s.work_slowdown_rounds.len();
        if rounds == 0 {
            continue;
        }
        let names: Vec<String> = s.vms.iter().map(|v| v.name.clone()).collect();
        let split = read_split(&dir.join(run_dir(*scenario, *policy)), rounds, &names)?;
        splits.push((*scenario, *policy, split));
    }
    let markers: std::collections::BTreeSet<u64> = splits
        .iter()
        .flat_map(|(_, _, sp)| sp.rounds.keys().copied())
        .collect();
    if markers.is_empty() {
        return Ok(());
    }
    let _ = write!(
        text,
        "\n## Where the slowdown falls\n\n\
         The slowdown of record above, taken over the intervals each VM spent in each phase of \
         its program: per round one less the VMs' ops per second in the phase, summed, over \
         their twins' in the same phase; the mean over the rounds, with the lowest and highest \
         round. The working VMs all run `ramp`, whose markers are 0 while it waits for its \
         delay (asleep) and grows, 1 while it holds, 2 while it shrinks and 3 at its floor; an \
         interval counts in the phase in force at its end. `idle` VMs announce no phase and \
         are left out. The last column is the whole run's slowdown again, of the VMs' \
         operations per second of their vCPU threads' CPU time instead of per second: what is \
         left once a VM's share of the host's CPUs is taken out (a guest waiting for a restore \
         spends no CPU). Below the table, each phase's share of the twins' operations under \
         `wss`: how much of the whole-run slowdown it carries. Read from each VM's \
         timeseries.csv, coordinated and twin, in every round.\n\n"
    );
    let mut header = vec!["scenario".to_string(), "policy".to_string()];
    header.extend(markers.iter().map(|m| phase_label(*m)));
    header.push("per vCPU second".to_string());
    let cell = |v: Option<&Vec<f64>>| match v {
        Some(v) if v.len() > 1 => {
            format!("{} ({})", opt_percent(mean(v.iter().copied())), range(v))
        }
        Some(v) => opt_percent(mean(v.iter().copied())),
        None => "–".into(),
    };
    let rows: Vec<Vec<String>> = splits
        .iter()
        .map(|(scenario, policy, sp)| {
            let mut row = vec![
                format!("`{}`", scenario.name()),
                format!("`{}`", policy.name()),
            ];
            row.extend(markers.iter().map(|m| cell(sp.rounds.get(m))));
            row.push(cell(Some(&sp.per_cpu_s_rounds)));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut align = vec![Align::Left, Align::Left];
    align.extend(std::iter::repeat_n(Align::Right, header.len() - 2));
    text.push_str(&markdown_table(&header, &align, &rows));
    for (scenario, _, sp) in splits.iter().filter(|(_, p, _)| *p == PolicyKind::Wss) {
        let shares: Vec<String> = sp
            .twin_ops_share
            .iter()
            .map(|(m, share)| format!("{} {}", phase_label(*m), opt_percent(Some(*share))))
            .collect();
        let _ = write!(
            text,
            "\nThe twins' operations in `{}` by phase: {}.\n",
            scenario.name(),
            shares.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(phase: u64, ops: u64, seconds: f64) -> Row {
        Row {
            phase,
            guest_ops: ops,
            interval_s: seconds,
            ..Row::default()
        }
    }

    fn work(ops: u64, seconds: f64) -> PhaseWork {
        PhaseWork { ops, seconds }
    }

    #[test]
    fn intervals_add_up_by_phase() {
        let rows = [
            row(0, 10, 1.0),
            row(0, 30, 1.0),
            row(1, 100, 0.5),
            row(3, 7, 1.0),
        ];
        let p = by_phase(&rows);
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            [(0, work(40, 2.0)), (1, work(100, 0.5)), (3, work(7, 1.0))]
        );
        assert!(by_phase(&[]).is_empty());
    }

    #[test]
    fn a_phase_is_weighted_by_the_twins_work_and_needs_both_runs() {
        let map = |v: &[(u64, PhaseWork)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        // VM a: phase 0 at 80 vs 100 ops/s; phase 1 at 50 vs 50.
        // VM b: phase 0 at 10 vs 100 ops/s (twin work weighs it equally);
        // phase 2 only in its coordinated run, phase 3 only in its twin's.
        let pairs = [
            (
                map(&[(0, work(160, 2.0)), (1, work(50, 1.0))]),
                map(&[(0, work(200, 2.0)), (1, work(100, 2.0))]),
            ),
            (
                map(&[(0, work(10, 1.0)), (2, work(5, 1.0))]),
                map(&[(0, work(100, 1.0)), (3, work(9, 1.0))]),
            ),
        ];
        let s = round_by_phase(&pairs);
        assert_eq!(s.keys().copied().collect::<Vec<_>>(), [0, 1]);
        // 1 - (80 + 10) / (100 + 100)
        assert!((s[&0] - 0.55).abs() < 1e-12);
        assert!(s[&1].abs() < 1e-12);
        // A twin that spent no time in the phase leaves it out.
        let idle = [(map(&[(0, work(5, 1.0))]), map(&[(0, work(0, 0.0))]))];
        assert!(round_by_phase(&idle).is_empty());
        // A twin that did nothing there gives no slowdown either.
        let none = [(map(&[(0, work(5, 1.0))]), map(&[(0, work(0, 1.0))]))];
        assert!(round_by_phase(&none).is_empty());
    }

    /// Writes one VM's run folder: its rows and a summary with `ops` over
    /// `cpu_s` of vCPU time, announcing phases when `phased`.
    fn write_vm(dir: &Path, rows: &[Row], ops: u64, cpu_s: f64, phased: bool) {
        use crate::report::summary::{Phase, Summary, write_summary};
        use crate::report::timeseries::TimeseriesWriter;
        std::fs::create_dir_all(dir).unwrap();
        let mut w = TimeseriesWriter::create(&dir.join("timeseries.csv")).unwrap();
        for r in rows {
            w.write_row(r).unwrap();
        }
        let mut s = Summary {
            guest_ops: ops,
            ..Summary::default()
        };
        s.tracker_stats.vcpu_thread_cpu_s = cpu_s;
        if phased {
            s.phases = vec![Phase {
                t_s: 0.0,
                marker: 0,
            }];
        }
        write_summary(&dir.join("summary.json"), &s).unwrap();
    }

    #[test]
    fn the_split_reads_every_round_and_leaves_out_unphased_vms() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path();
        let vms = ["vm1".to_string(), "vm2".to_string()];
        // Round 1: vm1 at 50 ops/s in phase 0 against its twin's 100, and
        // at 100 per CPU second against 100. vm2 (idle) would add nothing.
        for (dir, ops) in [(run.to_path_buf(), 50), (twins_dir(run), 100)] {
            write_vm(
                &dir.join("vm1"),
                &[row(0, ops, 1.0)],
                ops,
                ops as f64 / 100.0,
                true,
            );
            write_vm(&dir.join("vm2"), &[row(0, 1, 1.0)], 1, 1.0, false);
        }
        // Round 2: vm1 equal to its twin in phase 0, 20% slower in phase 1.
        let two = round_dir(run, 2);
        for (dir, hold) in [(two.clone(), 80), (twins_dir(&two), 100)] {
            let rows = [row(0, 100, 1.0), row(1, hold, 1.0)];
            write_vm(&dir.join("vm1"), &rows, 100 + hold, 1.0, true);
            write_vm(&dir.join("vm2"), &[row(0, 1, 1.0)], 1, 1.0, false);
        }
        // Round 3 was cut short: no folder.
        let sp = read_split(run, 3, &vms).unwrap();
        assert_eq!(sp.rounds.get(&0), Some(&vec![0.5, 0.0]));
        assert_eq!(sp.rounds.get(&1).map(Vec::len), Some(1));
        assert!((sp.rounds[&1][0] - 0.2).abs() < 1e-12);
        // The twins did 100 + 100 ops in phase 0 and 100 in phase 1.
        assert!((sp.twin_ops_share[&0] - 2.0 / 3.0).abs() < 1e-12);
        // Per CPU second: round 1 equal; round 2 180 against 200.
        assert_eq!(sp.per_cpu_s_rounds.len(), 2);
        assert!(sp.per_cpu_s_rounds[0].abs() < 1e-12);
        assert!((sp.per_cpu_s_rounds[1] - 0.1).abs() < 1e-12);
        // A round whose files are broken is an error naming it.
        std::fs::write(run.join("vm1").join("summary.json"), "{").unwrap();
        let e = read_split(run, 1, &vms).unwrap_err();
        assert_eq!(e.round, 1);
    }
}
