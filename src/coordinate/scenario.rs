//! What a coordinated run boots: its VMs (program, parameters, RAM, data
//! size, tracker, estimator, sample size) and its timing. The three classic
//! cases of a memory coordinator are built in (`consume-one`,
//! `consume-all`, `shift`); any other is a TOML scenario file with the same
//! fields.
//!
//! Every VM becomes a [`RunConfig`] through the same checks `kvm-wss run`
//! makes (`CommonArgs::to_config`), so a scenario is refused, with one line,
//! for exactly the reasons a single run is, before any guest boots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalog::{self, ParamKind};
use crate::cli::{CommonArgs, UsageError};
use crate::config::{DEFAULT_MEM, DEFAULT_SAMPLE_PAGES, RunConfig};
use crate::estimate::{DamonConfig, EstimatorKind, EsxGains, FollowConfig};
use crate::named::Named;
use crate::report::metrics::DEFAULT_WARMUP_INTERVALS;
use crate::track::TrackerKind;

/// One VM of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    /// How outputs name it: `vm1`, or a scenario file's choice.
    pub name: String,
    /// A built-in guest program (see `kvm-wss guests`).
    pub program: String,
    pub params: Vec<(String, String)>,
    /// Guest RAM, bytes (`--mem`).
    pub mem: u64,
    /// The data the program works on, bytes (`--wss`).
    pub wss: u64,
    pub tracker: TrackerKind,
    /// The estimator whose values the policy reads; `None`: the one the
    /// policy is built for (`PolicyKind::estimator`: esx for `esx`,
    /// follow, which follows a fall as fast as a rise, for the others).
    pub estimator: Option<EstimatorKind>,
    pub sample_pages: u64,
    pub seed: u64,
}

/// VMs and timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub interval: Duration,
    pub duration: Duration,
    pub vms: Vec<VmSpec>,
}

/// The built-in scenarios: the classic tests of a memory coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    ConsumeOne,
    ConsumeAll,
    Shift,
}

impl Named for Builtin {
    const WHAT: &'static str = "scenario";
    const ALL: &'static [Builtin] = &[Builtin::ConsumeOne, Builtin::ConsumeAll, Builtin::Shift];

    fn name(self) -> &'static str {
        match self {
            Builtin::ConsumeOne => "consume-one",
            Builtin::ConsumeAll => "consume-all",
            Builtin::Shift => "shift",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Builtin::ConsumeOne => {
                "all boot (64M each, 3 s); vm1 consumes 128M gradually while the others idle, \
                 holds, then frees it gradually"
            }
            Builtin::ConsumeAll => {
                "all boot (64M each, 3 s); every VM consumes 128M gradually (starts 1 s apart), \
                 holds, then all free"
            }
            Builtin::Shift => {
                "all boot (64M each, 3 s) and consume; then the first half frees while the \
                 second half keeps consuming"
            }
        }
    }
}

crate::named::named_impls!(Builtin);

/// Why a scenario cannot run. Each is bad input (exit 2), one line.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read the scenario file {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario file {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("the scenario has no VM")]
    NoVms,
    #[error("two VMs are named {0:?}")]
    DuplicateName(String),
    #[error("VM {vm}: {program:?} is not a built-in guest program (see `kvm-wss guests`)")]
    UnknownProgram { vm: String, program: String },
    #[error("VM {vm}: {field} {value:?} is not a size (use e.g. 64M, 512M)")]
    BadSize {
        vm: String,
        field: &'static str,
        value: String,
    },
    #[error("{field} {value:?} is not a positive duration (use e.g. 500ms, 1s)")]
    BadDuration { field: &'static str, value: String },
    #[error(
        "VM {vm}: tracker {tracker} cannot restore evicted pages; a coordinated VM needs \
         tracker uffd or none (a uffd handler restores them at their next touch)"
    )]
    TrackerCannotReclaim { vm: String, tracker: &'static str },
    #[error("VM {vm}: parameter {key} must be a string or a number")]
    BadParamValue { vm: String, key: String },
    #[error("VM {vm}: {source}")]
    Vm {
        vm: String,
        // Boxed: a usage error may itself hold a scenario error.
        #[source]
        source: Box<UsageError>,
    },
    #[error("--time-scale {0} must be a finite number above 0")]
    BadTimeScale(f64),
    #[error("--vms {0} must be at least {1} for this scenario")]
    TooFewVms(usize, usize),
    #[error("give --scenario NAME or --scenario-file FILE")]
    NoScenario,
    #[error(
        "--host-mem {host_mem} is below the VMs' floors, {least} bytes (4 MiB each, or its --mem)"
    )]
    HostMemTooSmall { host_mem: u64, least: u64 },
}

/// RAM of every built-in VM: the classic test's 512 MB VMs.
const BUILTIN_MEM: u64 = DEFAULT_MEM;
/// What a consuming VM grows to. On this project's hosts (PVM, shadow
/// paging) a guest's first touch of a page costs tens of microseconds,
/// so a guest first-touches some 10-20k pages a second, fewer with four
/// VMs on two cores: 128M (32k pages) over 10 s is what four VMs can
/// consume together at the pace the scenario sets.
const CONSUME: u64 = 128 << 20;
/// The shift scenario: the first half grows to this and frees it...
const SHIFT_FREE: u64 = 96 << 20;
/// ...while the second grows to this at the same pace, so that when the
/// first half starts to free, both hold about as much.
const SHIFT_GROW: u64 = 192 << 20;
/// An idle VM's program data: idle touches one page of it.
const IDLE_WSS: u64 = 4 << 20;
/// Every built-in VM's boot footprint (the `boot` parameter of ramp and
/// idle): memory written once at the start and never touched again. A
/// booted guest OS holds such memory (kernel init memory, boot-time page
/// cache): the classic test's VMs show about half their 512 MB in use at
/// rest (`Actual [512.0], Unused: [257.2]`), which is what a coordinator
/// can take back from an idle VM. Without it our idle VMs touch one page
/// and there is nothing to take. 64 MiB is a deliberately small OS
/// footprint, so that the VMs' own consumption still dominates.
pub const BUILTIN_BOOT: u64 = 64 << 20;
/// Seconds the built-ins give their VMs to boot: every scenario's timing
/// starts this much later than it did before the footprint, and growth
/// begins one quiet second after it, as it did then. Four VMs (two cores,
/// shadow paging) first-touched their 64 MiB each in 1.2-1.4 s on a quiet
/// host and in up to 2.2 s beside a build (the ramp's phase 0 marker,
/// announced as its boot ends). `--time-scale` scales this allowance but
/// not the boot, which then may run into a growth that starts earlier.
const BOOT_TIME: f64 = 3.0;
/// The key of the boot footprint parameter.
const BOOT_KEY: &str = "boot";

fn secs(s: f64) -> String {
    format!("{s}s")
}

fn ramp_vm(i: usize, wss: u64, delay: f64, grow: f64, hold: f64, shrink: f64) -> VmSpec {
    let mut vm = base_vm(i, "ramp", wss);
    let timing = [
        ("delay", delay),
        ("grow", grow),
        ("hold", hold),
        ("shrink", shrink),
    ];
    vm.params
        .splice(0..0, timing.map(|(k, t)| (k.to_string(), secs(t))));
    vm
}

fn base_vm(i: usize, program: &str, wss: u64) -> VmSpec {
    VmSpec {
        name: format!("vm{}", i + 1),
        program: program.into(),
        params: vec![(BOOT_KEY.into(), format!("{}M", BUILTIN_BOOT >> 20))],
        mem: BUILTIN_MEM,
        wss,
        tracker: TrackerKind::Uffd,
        estimator: None,
        sample_pages: DEFAULT_SAMPLE_PAGES,
        seed: i as u64 + 1,
    }
}

impl Builtin {
    /// The scenario with `vms` VMs at time scale 1 (intervals of 1 s).
    pub fn scenario(self, vms: usize) -> Result<Scenario, ScenarioError> {
        let least = match self {
            Builtin::ConsumeOne | Builtin::Shift => 2,
            Builtin::ConsumeAll => 1,
        };
        if vms < least {
            return Err(ScenarioError::TooFewVms(vms, least));
        }
        let (duration, specs) = match self {
            // vm1: booted, 1 s quiet, 10 s growing, 4 s holding, 4 s
            // shrinking, then at its floor; the others boot, then touch
            // one page.
            Builtin::ConsumeOne => (
                BOOT_TIME + 24.0,
                (0..vms)
                    .map(|i| match i {
                        0 => ramp_vm(0, CONSUME, BOOT_TIME + 1.0, 10.0, 4.0, 4.0),
                        _ => base_vm(i, "idle", IDLE_WSS),
                    })
                    .collect(),
            ),
            // Once booted, starts 1 s apart (each VM its own timing), all
            // hold until t = 20 s and free over 6 s together.
            Builtin::ConsumeAll => (
                BOOT_TIME + 27.0,
                (0..vms)
                    .map(|i| {
                        let delay = BOOT_TIME + 1.0 + (i % 4) as f64;
                        ramp_vm(i, CONSUME, delay, 10.0, BOOT_TIME + 7.0 - delay, 6.0)
                    })
                    .collect(),
            ),
            // Once booted, the first half grows to 96M in 8 s, holds 2 s and
            // frees over 8 s from t = 14 s; the second half grows to 192M
            // over 16 s, at the same pages per second, so at t = 14 s it
            // holds ~120M and keeps consuming until t = 20 s.
            Builtin::Shift => (
                BOOT_TIME + 24.0,
                (0..vms)
                    .map(|i| {
                        if i < vms / 2 {
                            ramp_vm(i, SHIFT_FREE, BOOT_TIME + 1.0, 8.0, 2.0, 8.0)
                        } else {
                            ramp_vm(i, SHIFT_GROW, BOOT_TIME + 1.0, 16.0, 30.0, 1.0)
                        }
                    })
                    .collect(),
            ),
        };
        Ok(Scenario {
            name: self.name().to_string(),
            interval: Duration::from_secs(1),
            duration: Duration::from_secs_f64(duration),
            vms: specs,
        })
    }
}

/// The scenario file's shape: `interval`, `duration` and `[[vm]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: Option<String>,
    interval: Option<String>,
    duration: String,
    #[serde(default)]
    vm: Vec<FileVm>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVm {
    name: Option<String>,
    program: String,
    #[serde(default)]
    params: toml::Table,
    mem: Option<String>,
    wss: Option<String>,
    tracker: Option<String>,
    estimator: Option<String>,
    sample_pages: Option<u64>,
    seed: Option<u64>,
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
        + 1
}

fn parse_size(
    vm: &str,
    field: &'static str,
    value: Option<&str>,
    default: u64,
) -> Result<u64, ScenarioError> {
    match value {
        None => Ok(default),
        Some(v) => wss_abi::units::parse_size(v).ok_or_else(|| ScenarioError::BadSize {
            vm: vm.to_string(),
            field,
            value: v.to_string(),
        }),
    }
}

fn parse_duration(field: &'static str, value: &str) -> Result<Duration, ScenarioError> {
    wss_abi::units::parse_duration_ns(value)
        .filter(|&ns| ns > 0)
        .map(Duration::from_nanos)
        .ok_or_else(|| ScenarioError::BadDuration {
            field,
            value: value.to_string(),
        })
}

fn parse_named<T: Named>(vm: &str, value: Option<&str>, default: T) -> Result<T, ScenarioError> {
    match value {
        None => Ok(default),
        Some(v) => crate::named::parse(v).map_err(|e| ScenarioError::Parse {
            path: PathBuf::new(),
            message: format!("VM {vm}: {e}"),
        }),
    }
}

/// Where a coordinated run puts its VMs' threads (`coordinate --cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VmCpus {
    /// Each VM's vCPU and fault handler together on one CPU, the VMs dealt
    /// round the CPUs in turn ([`spread`]).
    Spread,
    /// Every thread left to the scheduler.
    Free,
}

/// Where VM `index` of a scenario runs its vCPU and fault handler: on one
/// CPU of `allowed`, the VMs dealt round the CPUs in turn; free with fewer
/// than two CPUs. Together, a VM's first touches, tracked touches and
/// restores hand over on one CPU instead of waking the other (see
/// `vmm::affinity`), and dealing the VMs evenly keeps their shares of the
/// CPUs alike from run to run (the README, "Where the VMs run", has the
/// spread of single VMs either way).
pub fn spread(index: usize, allowed: &[usize]) -> crate::vmm::affinity::Placement {
    use crate::vmm::affinity::Placement;
    if allowed.len() < 2 {
        return Placement::Free;
    }
    Placement::Cpu(allowed[index % allowed.len()])
}

impl Scenario {
    /// Reads and checks a scenario file (TOML).
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::from_toml(&text).map_err(|e| match e {
            ScenarioError::Parse { message, .. } => ScenarioError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses a scenario from TOML text; VMs without a name are `vm1`,
    /// `vm2`, ... by position.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let file: FileScenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(String::new(), |s| {
                format!("line {}: ", line_of(text, s.start))
            });
            ScenarioError::Parse {
                path: PathBuf::new(),
                message: format!("{at}{}", e.message().trim()),
            }
        })?;
        if file.vm.is_empty() {
            return Err(ScenarioError::NoVms);
        }
        let mut vms = Vec::with_capacity(file.vm.len());
        for (i, v) in file.vm.into_iter().enumerate() {
            let name = v.name.unwrap_or_else(|| format!("vm{}", i + 1));
            if vms.iter().any(|o: &VmSpec| o.name == name) {
                return Err(ScenarioError::DuplicateName(name));
            }
            if catalog::find(&v.program).is_none() {
                return Err(ScenarioError::UnknownProgram {
                    vm: name,
                    program: v.program,
                });
            }
            let mut params = Vec::with_capacity(v.params.len());
            for (key, value) in v.params {
                let value = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(x) => x.to_string(),
                    _ => return Err(ScenarioError::BadParamValue { vm: name, key }),
                };
                params.push((key, value));
            }
            vms.push(VmSpec {
                mem: parse_size(&name, "mem", v.mem.as_deref(), BUILTIN_MEM)?,
                wss: parse_size(&name, "wss", v.wss.as_deref(), crate::config::DEFAULT_WSS)?,
                tracker: parse_named(&name, v.tracker.as_deref(), TrackerKind::Uffd)?,
                estimator: match v.estimator.as_deref() {
                    None => None,
                    Some(e) => Some(parse_named(&name, Some(e), EstimatorKind::Follow)?),
                },
                sample_pages: v.sample_pages.unwrap_or(DEFAULT_SAMPLE_PAGES),
                seed: v.seed.unwrap_or(i as u64 + 1),
                program: v.program,
                params,
                name,
            });
        }
        Ok(Scenario {
            name: file.name.unwrap_or_else(|| "file".to_string()),
            interval: match &file.interval {
                Some(i) => parse_duration("interval", i)?,
                None => Duration::from_secs(1),
            },
            duration: parse_duration("duration", &file.duration)?,
            vms,
        })
    }

    /// The same scenario `factor` times as fast (0.5: half the time): the
    /// interval, the duration and every duration-typed program parameter
    /// scale together, so the intervals see the same shape.
    pub fn time_scaled(&self, factor: f64) -> Result<Scenario, ScenarioError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(ScenarioError::BadTimeScale(factor));
        }
        let scale = |d: Duration| Duration::from_secs_f64(d.as_secs_f64() * factor);
        let mut s = self.clone();
        s.interval = scale(s.interval);
        s.duration = scale(s.duration);
        for vm in &mut s.vms {
            let Some(info) = catalog::find(&vm.program) else {
                continue;
            };
            for (key, value) in &mut vm.params {
                let is_duration = info
                    .params
                    .iter()
                    .any(|p| p.key == key && matches!(p.kind, ParamKind::Duration { .. }));
                if let (true, Some(ns)) = (is_duration, wss_abi::units::parse_duration_ns(value)) {
                    // Microseconds: the finest unit the parser reads.
                    *value = format!("{}us", (ns as f64 * factor / 1e3).round() as u64);
                }
            }
        }
        Ok(s)
    }

    /// Gives every VM a boot footprint of `bytes` (`--boot`), replacing
    /// the scenario's. A VM whose program has none (only ramp and idle
    /// do) gets none for 0 and is refused at [`Scenario::run_configs`]
    /// for more, as a `boot` parameter would be.
    pub fn set_boot(&mut self, bytes: u64) {
        for vm in &mut self.vms {
            vm.params.retain(|(k, _)| k != BOOT_KEY);
            let has_boot =
                catalog::find(&vm.program).is_some_and(|p| catalog::accepts_param(p, BOOT_KEY));
            if bytes > 0 || has_boot {
                vm.params.push((BOOT_KEY.into(), bytes.to_string()));
            }
        }
    }

    /// Every VM's run settings, checked as `kvm-wss run` checks its own.
    pub fn run_configs(&self) -> Result<Vec<RunConfig>, ScenarioError> {
        self.vms
            .iter()
            .map(|vm| {
                let common = CommonArgs {
                    guest: vm.program.clone(),
                    duration: self.duration,
                    mem: vm.mem,
                    wss: vm.wss,
                    params: vm.params.clone(),
                    seed: vm.seed,
                    esx_slow_gain: EsxGains::default().slow,
                    esx_fast_gain: EsxGains::default().fast,
                    damon_min_regions: DamonConfig::default().min_regions,
                    damon_max_regions: DamonConfig::default().max_regions,
                    damon_ticks: DamonConfig::default().ticks_per_interval,
                    band_target: FollowConfig::default().band_target,
                    warmup: DEFAULT_WARMUP_INTERVALS,
                    guest_pages: None,
                    vcpus: 1,
                    // Placed by the plan (`coordinate --cpu`, `spread`).
                    cpu: crate::vmm::affinity::Placement::Free,
                    baseline: false,
                    no_plot: false,
                    quiet: true,
                };
                let wrap = |source| ScenarioError::Vm {
                    vm: vm.name.clone(),
                    source: Box::new(source),
                };
                if !matches!(vm.tracker, TrackerKind::Uffd | TrackerKind::None) {
                    return Err(ScenarioError::TrackerCannotReclaim {
                        vm: vm.name.clone(),
                        tracker: vm.tracker.name(),
                    });
                }
                if catalog::find(&vm.program).is_none() {
                    return Err(ScenarioError::UnknownProgram {
                        vm: vm.name.clone(),
                        program: vm.program.clone(),
                    });
                }
                let cfg = common
                    .to_config(
                        vm.tracker,
                        vm.estimator.unwrap_or(EstimatorKind::Follow),
                        vm.sample_pages,
                        self.interval,
                    )
                    .map_err(wrap)?;
                crate::estimate::build(&cfg.estimator_config_over_ram())
                    .map_err(|e| wrap(UsageError::Estimator(e)))?;
                Ok(cfg)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "two"
interval = "500ms"
duration = "10s"

[[vm]]
program = "ramp"
mem = "256M"
wss = "128M"
params = { delay = "1s", grow = "4s", floor = 0.1 }

[[vm]]
name = "quiet"
program = "idle"
wss = "4M"
tracker = "none"
estimator = "exhaustive"
sample_pages = 100
seed = 9
"#;

    #[test]
    fn spread_deals_the_vms_round_the_cpus() {
        use crate::vmm::affinity::Placement;
        let placed: Vec<Placement> = (0..4).map(|i| spread(i, &[0, 1])).collect();
        assert_eq!(
            placed,
            [
                Placement::Cpu(0),
                Placement::Cpu(1),
                Placement::Cpu(0),
                Placement::Cpu(1)
            ]
        );
        assert_eq!(spread(1, &[2, 5, 7]), Placement::Cpu(5));
        assert_eq!(spread(0, &[3]), Placement::Free, "one CPU: nothing to deal");
        assert_eq!(spread(0, &[]), Placement::Free);
    }

    #[test]
    fn a_file_gives_every_field() {
        let s = Scenario::from_toml(GOOD).unwrap();
        assert_eq!(s.name, "two");
        assert_eq!(s.interval, Duration::from_millis(500));
        assert_eq!(s.duration, Duration::from_secs(10));
        assert_eq!(s.vms.len(), 2);
        let a = &s.vms[0];
        assert_eq!(a.name, "vm1");
        assert_eq!((a.mem, a.wss), (256 << 20, 128 << 20));
        assert_eq!(a.tracker, TrackerKind::Uffd);
        assert_eq!(a.estimator, None);
        assert_eq!(a.sample_pages, DEFAULT_SAMPLE_PAGES);
        assert_eq!(a.seed, 1);
        let mut params = a.params.clone();
        params.sort();
        assert_eq!(
            params,
            vec![
                ("delay".to_string(), "1s".to_string()),
                ("floor".to_string(), "0.1".to_string()),
                ("grow".to_string(), "4s".to_string()),
            ]
        );
        let b = &s.vms[1];
        assert_eq!(b.name, "quiet");
        assert_eq!(b.mem, BUILTIN_MEM);
        assert_eq!(b.tracker, TrackerKind::None);
        assert_eq!(b.estimator, Some(EstimatorKind::Exhaustive));
        assert_eq!((b.sample_pages, b.seed), (100, 9));
        let cfgs = s.run_configs().unwrap();
        assert_eq!(cfgs.len(), 2);
        assert_eq!(cfgs[0].interval, Duration::from_millis(500));
        assert!(!cfgs[0].live);
    }

    fn refusal(text: &str) -> String {
        let e = Scenario::from_toml(text)
            .and_then(|s| s.run_configs().map(|_| ()))
            .unwrap_err();
        let line = crate::error_chain(&e);
        assert!(!line.contains('\n'), "one line: {line}");
        line
    }

    #[test]
    fn bad_files_are_refused_with_one_line() {
        let cannot_reclaim =
            refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\ntracker = \"mprotect\"\n");
        assert!(
            cannot_reclaim.contains("vm1") && cannot_reclaim.contains("tracker mprotect"),
            "{cannot_reclaim}"
        );
        let parse = refusal("duration = \"10s\"\n[[vm]\nprogram = \"ramp\"\n");
        assert!(parse.contains("line 2"), "{parse}");
        let unknown_key = refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\ncolour = 1\n");
        assert!(
            unknown_key.contains("line 4") && unknown_key.contains("colour"),
            "{unknown_key}"
        );
        let top_key = refusal("duration = \"10s\"\nhost_mem = \"1G\"\n");
        assert!(top_key.contains("host_mem"), "{top_key}");
        assert_eq!(refusal("duration = \"10s\"\n"), "the scenario has no VM");
        let program = refusal("duration = \"10s\"\n[[vm]]\nprogram = \"nope\"\n");
        assert_eq!(
            program,
            "VM vm1: \"nope\" is not a built-in guest program (see `kvm-wss guests`)"
        );
        let size = refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nmem = \"lots\"\n");
        assert_eq!(
            size,
            "VM vm1: mem \"lots\" is not a size (use e.g. 64M, 512M)"
        );
        let dur = refusal("duration = \"0s\"\n[[vm]]\nprogram = \"ramp\"\n");
        assert!(dur.starts_with("duration \"0s\""), "{dur}");
        let missing = refusal("[[vm]]\nprogram = \"ramp\"\n");
        assert!(missing.contains("duration"), "{missing}");
        let tracker = refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\ntracker = \"x\"\n");
        assert!(tracker.contains("is not a tracker"), "{tracker}");
        let dup = refusal(
            "duration = \"10s\"\n[[vm]]\nprogram = \"idle\"\n[[vm]]\nname = \"vm1\"\nprogram = \"idle\"\n",
        );
        assert_eq!(dup, "two VMs are named \"vm1\"");
    }

    #[test]
    fn vm_settings_get_the_checks_of_run() {
        let big = refusal(
            "duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nmem = \"64M\"\nwss = \"128M\"\n",
        );
        assert!(big.starts_with("VM vm1: --wss"), "{big}");
        let param = refusal(
            "duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nparams = { speed = \"1s\" }\n",
        );
        assert!(param.contains("takes no parameter \"speed\""), "{param}");
        let range =
            refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nparams = { floor = 2 }\n");
        assert!(
            range.starts_with("VM vm1:") && range.contains("floor"),
            "{range}"
        );
        let table =
            refusal("duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nparams = { grow = [1] }\n");
        assert_eq!(table, "VM vm1: parameter grow must be a string or a number");
        let interval =
            refusal("duration = \"1s\"\ninterval = \"2s\"\n[[vm]]\nprogram = \"idle\"\n");
        assert!(interval.contains("longer than --duration"), "{interval}");
    }

    #[test]
    fn builtins_have_the_classic_shape() {
        let one = Builtin::ConsumeOne.scenario(4).unwrap();
        assert_eq!(one.vms.len(), 4);
        assert_eq!(one.vms[0].program, "ramp");
        assert_eq!(one.vms[0].wss, CONSUME);
        assert!(one.vms[1..].iter().all(|v| v.program == "idle"));
        assert!(one.vms.iter().all(|v| v.mem == 512 << 20));
        let all = Builtin::ConsumeAll.scenario(4).unwrap();
        assert!(
            all.vms
                .iter()
                .all(|v| v.program == "ramp" && v.wss == CONSUME)
        );
        let delays: Vec<&str> = all.vms.iter().map(|v| v.params[0].1.as_str()).collect();
        assert_eq!(delays, ["4s", "5s", "6s", "7s"]);
        let shift = Builtin::Shift.scenario(4).unwrap();
        assert_eq!(
            shift.vms.iter().map(|v| v.wss).collect::<Vec<_>>(),
            [SHIFT_FREE, SHIFT_FREE, SHIFT_GROW, SHIFT_GROW]
        );
        for b in Builtin::ALL {
            let s = b.scenario(4).unwrap();
            assert_eq!(s.run_configs().unwrap().len(), 4, "{}", b.name());
            // Distinct seeds: the VMs do not sample the same pages.
            let mut seeds: Vec<u64> = s.vms.iter().map(|v| v.seed).collect();
            seeds.dedup();
            assert_eq!(seeds.len(), 4);
        }
        // Every built-in VM boots with the footprint of a small OS, which
        // passes the checks of its program.
        for b in Builtin::ALL {
            for vm in b.scenario(4).unwrap().vms {
                let boot: Vec<&str> = vm
                    .params
                    .iter()
                    .filter(|(k, _)| k == "boot")
                    .map(|(_, v)| v.as_str())
                    .collect();
                assert_eq!(boot, ["64M"], "{}: {}", b.name(), vm.name);
            }
        }
        assert_eq!(BUILTIN_BOOT, 64 << 20);
        assert!(matches!(
            Builtin::Shift.scenario(1),
            Err(ScenarioError::TooFewVms(1, 2))
        ));
        assert_eq!(Builtin::ConsumeAll.scenario(1).unwrap().vms.len(), 1);
    }

    fn boot_of(vm: &VmSpec) -> Option<&str> {
        let mut boots = vm.params.iter().filter(|(k, _)| k == "boot");
        let first = boots.next().map(|(_, v)| v.as_str());
        assert!(boots.next().is_none(), "{}: one boot param", vm.name);
        first
    }

    #[test]
    fn set_boot_replaces_every_vms_footprint() {
        let mut s = Builtin::ConsumeOne.scenario(4).unwrap();
        s.set_boot(32 << 20);
        assert!(s.vms.iter().all(|v| boot_of(v) == Some("33554432")));
        // The timing parameters stay.
        assert_eq!(s.vms[0].params.len(), 5);
        s.set_boot(0);
        assert!(s.vms.iter().all(|v| boot_of(v) == Some("0")));
        let cfgs = s.run_configs().unwrap();
        assert!(
            cfgs.iter()
                .all(|c| c.params.contains(&("boot".into(), "0".into())))
        );
        // A file's VMs keep their own unless told: default none.
        let mut f = Scenario::from_toml(GOOD).unwrap();
        assert_eq!(boot_of(&f.vms[0]), None);
        f.set_boot(8 << 20);
        assert!(f.vms.iter().all(|v| boot_of(v) == Some("8388608")));
        let with = "duration = \"10s\"\n[[vm]]\nprogram = \"idle\"\nparams = { boot = \"16M\" }\n";
        assert_eq!(
            boot_of(&Scenario::from_toml(with).unwrap().vms[0]),
            Some("16M")
        );
        // A program without a footprint: none for 0, refused for more.
        let seq = "duration = \"10s\"\n[[vm]]\nprogram = \"seq\"\n";
        let mut s = Scenario::from_toml(seq).unwrap();
        s.set_boot(0);
        assert_eq!(boot_of(&s.vms[0]), None);
        assert!(s.run_configs().is_ok());
        s.set_boot(1 << 20);
        let line = crate::error_chain(&s.run_configs().unwrap_err());
        assert!(line.contains("takes no parameter \"boot\""), "{line}");
    }

    #[test]
    fn a_boot_that_does_not_fit_is_refused() {
        let big = refusal(
            "duration = \"10s\"\n[[vm]]\nprogram = \"ramp\"\nwss = \"128M\"\nparams = { boot = \"400M\" }\n",
        );
        assert!(
            big.starts_with("VM vm1: --param boot=\"400M\"") && big.contains("beside --wss"),
            "{big}"
        );
        let mut s = Builtin::ConsumeOne.scenario(4).unwrap();
        s.set_boot(512 << 20);
        let line = crate::error_chain(&s.run_configs().unwrap_err());
        assert!(line.starts_with("VM vm1: --param boot="), "{line}");
    }

    #[test]
    fn time_scale_scales_the_interval_duration_and_timing_params() {
        let s = Builtin::ConsumeOne
            .scenario(2)
            .unwrap()
            .time_scaled(0.25)
            .unwrap();
        assert_eq!(s.interval, Duration::from_millis(250));
        assert_eq!(s.duration, Duration::from_millis(6750));
        let grow = s.vms[0].params.iter().find(|(k, _)| k == "grow").unwrap();
        assert_eq!(grow.1, "2500000us");
        let cfgs = s.run_configs().unwrap();
        assert_eq!(cfgs[0].interval, Duration::from_millis(250));
        // floor is a fraction, not a time: left alone.
        let f = Scenario::from_toml(GOOD).unwrap().time_scaled(2.0).unwrap();
        let floor = f.vms[0].params.iter().find(|(k, _)| k == "floor").unwrap();
        assert_eq!(floor.1, "0.1");
        assert!(matches!(
            s.time_scaled(0.0),
            Err(ScenarioError::BadTimeScale(_))
        ));
        assert!(s.time_scaled(f64::NAN).is_err());
    }
}
