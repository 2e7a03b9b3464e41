//! The command-line side of `kvm-wss coordinate`: its options, and their
//! check into a [`Plan`] before any guest boots (see `cli` for the rest
//! of the command line).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::{UsageError, check_out_dir, duration, fraction, positive_count, size};
use crate::estimate::EstimatorKind;
use crate::named::Named;

use super::policy::{DEFAULT_HEADROOM, PolicyKind};
use super::runner::{ChildRole, Plan};
use super::scenario::{Builtin, Scenario, ScenarioError, VmCpus, spread};

/// `kvm-wss coordinate`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["scenario", "scenario_file"])))]
pub struct CoordinateArgs {
    /// A built-in scenario: the classic tests of a memory coordinator.
    #[arg(long, value_enum)]
    pub scenario: Option<Builtin>,
    /// A scenario file (TOML): `duration`, optional `interval` and `name`, and one `[[vm]]`
    /// table per VM with `program` and optional `name`, `mem`, `wss`, `params`, `tracker`,
    /// `estimator`, `sample_pages`, `seed` (see the README).
    #[arg(long, value_name = "FILE")]
    pub scenario_file: Option<PathBuf>,
    /// How the budget becomes per-VM limits.
    #[arg(long, value_enum)]
    pub policy: PolicyKind,
    /// The host memory budget the VMs' limits share (e.g. 1536M for 4 × 512M).
    #[arg(long, value_parser = size)]
    pub host_mem: u64,
    /// What `wss` and `oracle` grant above a working set, as a fraction of it (0.1: 10%),
    /// besides one more interval of its last growth and (wss) the band's upper edge.
    #[arg(long, default_value_t = DEFAULT_HEADROOM, value_parser = fraction)]
    pub headroom: f64,
    /// VMs of a built-in scenario.
    #[arg(long, default_value_t = 4, value_parser = positive_count, conflicts_with = "scenario_file")]
    pub vms: usize,
    /// Multiply the scenario's times by this (0.5: in half the time): the interval, the
    /// duration and the programs' timing parameters scale together.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Length of one interval, instead of the scenario's (after --time-scale).
    #[arg(long, value_parser = duration)]
    pub interval: Option<Duration>,
    /// How long to run, instead of the scenario's (after --time-scale).
    #[arg(long, value_parser = duration)]
    pub duration: Option<Duration>,
    /// Every VM's estimator, instead of the scenario's.
    #[arg(long, value_enum)]
    pub estimator: Option<EstimatorKind>,
    /// Every VM's sample size (esx), instead of the scenario's.
    #[arg(long)]
    pub sample_pages: Option<u64>,
    /// Every VM's boot footprint, instead of the scenario's: memory each VM writes once at
    /// its start and never again, as a booted OS leaves memory resident that it no longer
    /// touches (built-ins: 64M; scenario files: each VM's `boot` param, default 0; 0: none).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub boot: Option<u64>,
    /// Output folder: each VM's run folder and the coordinator's outputs (default: a new
    /// folder under runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Then run the same VMs together again without limits (the uncoordinated twins, into
    /// OUT/twins/) and report each VM's slowdown against its twin.
    #[arg(long)]
    pub twins: bool,
    /// With --twins: measure the slowdown over this many rounds, each a coordinated run
    /// and its twin, in alternating order (the twin first in even rounds), so that drift
    /// in the host's load falls on both alike; rounds after the first go to OUT/rounds/K/.
    #[arg(long, default_value_t = 1, value_parser = positive_count, requires = "twins")]
    pub rounds: usize,
    /// With --twins: run each round's coordinated VMs and their twins at the same time, as
    /// two processes that take turns on the host every SLICE (e.g. 50ms; each stopped while
    /// the other runs), so that the host's own drift falls on both alike; each side runs the
    /// scenario at twice its times, so that its turns meet it at the pace of a run alone.
    /// Without it the twins run after (or before) the coordinated VMs.
    #[arg(long, value_name = "SLICE", value_parser = duration, requires = "twins")]
    pub interleave: Option<Duration>,
    /// Internal: run as one side of an --interleave round (the parent passes it).
    #[arg(long, value_enum, hide = true)]
    pub as_child: Option<ChildRole>,
    /// Where each VM's vCPU and fault handler run: `spread` puts the two on one CPU, the
    /// VMs dealt round the CPUs this process may use in turn; `free` leaves every thread to
    /// the scheduler.
    #[arg(long, value_enum, default_value_t = VmCpus::Spread)]
    pub cpu: VmCpus,
    /// Do not draw the plots.
    #[arg(long)]
    pub no_plot: bool,
    /// Do not print a line per VM per interval.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CoordinateArgs {
    /// The scenario as asked for, every VM checked as `run` checks one,
    /// and the budget checked against the VMs' floors: all before any
    /// guest boots.
    pub fn to_plan(&self) -> Result<Plan, UsageError> {
        let mut scenario = match (&self.scenario, &self.scenario_file) {
            (_, Some(path)) => Scenario::from_file(path)?,
            (Some(b), None) => b.scenario(self.vms)?,
            (None, None) => return Err(ScenarioError::NoScenario.into()),
        };
        if let Some(bytes) = self.boot {
            scenario.set_boot(bytes);
        }
        scenario = scenario.time_scaled(self.time_scale)?;
        if let Some(i) = self.interval {
            scenario.interval = i;
        }
        if let Some(d) = self.duration {
            scenario.duration = d;
        }
        for vm in &mut scenario.vms {
            vm.estimator = self
                .estimator
                .or(vm.estimator)
                .or(Some(self.policy.estimator()));
            vm.sample_pages = self.sample_pages.unwrap_or(vm.sample_pages);
        }
        let mut configs = scenario.run_configs()?;
        if self.cpu == VmCpus::Spread {
            // Unknown CPUs (never seen here): every VM stays free.
            let allowed = crate::vmm::affinity::allowed_cpus().unwrap_or_default();
            for (i, cfg) in configs.iter_mut().enumerate() {
                cfg.cpu = spread(i, &allowed);
            }
        }
        let mem_pages: Vec<u64> = configs.iter().map(|c| c.mem / wss_abi::PAGE_SIZE).collect();
        let least = crate::coordinate::policy::min_host_pages(&mem_pages);
        let host_pages = self.host_mem / wss_abi::PAGE_SIZE;
        if host_pages < least {
            return Err(ScenarioError::HostMemTooSmall {
                host_mem: self.host_mem,
                least: least * wss_abi::PAGE_SIZE,
            }
            .into());
        }
        let out_dir = self.out.clone().unwrap_or_else(|| {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            PathBuf::from("runs").join(format!(
                "coordinate-{}-{}-{stamp}",
                scenario.name.replace(['/', '.'], "_"),
                self.policy.name()
            ))
        });
        check_out_dir(&out_dir)?;
        for cfg in &mut configs {
            // The coordinator's plot shows every VM; `kvm-wss plot OUT/vm1`
            // draws one VM's own.
            cfg.plot = false;
        }
        Ok(Plan {
            scenario,
            configs,
            policy: self.policy,
            host_pages,
            headroom: self.headroom,
            out_dir,
            twins: self.twins,
            rounds: self.rounds,
            interleave: self.interleave,
            child: self.as_child,
            time_scale: self.time_scale,
            live: !self.quiet,
            plot: !self.no_plot,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// The plan of `kvm-wss coordinate ARGS` (out to a fresh folder).
    fn plan(args: &[&str]) -> Result<Plan, UsageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("c");
        let mut all = vec!["kvm-wss", "coordinate", "--policy", "wss"];
        all.extend_from_slice(&["--host-mem", "1536M", "--out"]);
        all.push(out.to_str().expect("utf-8"));
        all.extend_from_slice(args);
        let Command::Coordinate(a) = Cli::try_parse_from(all).expect("parses").command else {
            panic!("not coordinate");
        };
        a.to_plan()
    }

    fn boots(p: &Plan) -> Vec<String> {
        p.configs
            .iter()
            .map(|c| {
                c.params
                    .iter()
                    .find(|(k, _)| k == "boot")
                    .map_or(String::new(), |(_, v)| v.clone())
            })
            .collect()
    }

    #[test]
    fn the_vms_are_spread_round_the_cpus_unless_free() {
        use crate::vmm::affinity::{Placement, allowed_cpus};
        let allowed = allowed_cpus().expect("this process's CPUs");
        let cpus = |p: &Plan| p.configs.iter().map(|c| c.cpu).collect::<Vec<_>>();
        let spread_out = plan(&["--scenario", "consume-all"]).expect("plan");
        let expected: Vec<Placement> = (0..4).map(|i| spread(i, &allowed)).collect();
        assert_eq!(cpus(&spread_out), expected);
        if allowed.len() >= 2 {
            assert_eq!(spread_out.configs[0].cpu, Placement::Cpu(allowed[0]));
            assert_eq!(spread_out.configs[1].cpu, Placement::Cpu(allowed[1]));
        }
        let free = plan(&["--scenario", "consume-all", "--cpu", "free"]).expect("plan");
        assert_eq!(cpus(&free), [Placement::Free; 4]);
    }

    #[test]
    fn boot_sets_every_vms_footprint() {
        let builtin = plan(&["--scenario", "consume-one"]).expect("plan");
        assert_eq!(boots(&builtin), ["64M"; 4]);
        let none = plan(&["--scenario", "consume-one", "--boot", "0"]).expect("plan");
        assert_eq!(boots(&none), ["0"; 4]);
        let more = plan(&["--scenario", "shift", "--boot", "128M"]).expect("plan");
        assert_eq!(boots(&more), ["134217728"; 4]);
        // More than guest RAM leaves beside a VM's --wss: one line.
        let err = plan(&["--scenario", "shift", "--boot", "400M"]).expect_err("too big");
        let line = crate::error_chain(&err);
        assert!(line.starts_with("VM vm3: --param boot="), "{line}");
        // Not a size: clap refuses it.
        let parsed = Cli::try_parse_from([
            "kvm-wss",
            "coordinate",
            "--scenario",
            "shift",
            "--policy",
            "wss",
            "--host-mem",
            "1G",
            "--boot",
            "lots",
        ]);
        assert!(parsed.is_err());
    }
}
