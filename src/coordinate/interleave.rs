//! Twins that take turns with their coordinated VMs (`--twins
//! --interleave SLICE`).
//!
//! Run apart, a coordinated run and its twin meet different hosts: how
//! fast these hosts serve a guest's memory drifts over seconds (README,
//! "The slowdown"), and one pair of 30-second runs says as much about that
//! drift as about the coordinator. Taking turns every few tens of milliseconds puts both
//! sides on the same host: whatever the drift, it falls on each side's
//! turns alike.
//!
//! Each round starts this program twice more at once, as two child
//! processes: the coordinated VMs (`--as-child coordinated`, every output
//! of a plain run) and their twins (`--as-child twin`, run folders and
//! coordinate.csv). This process stops one (`SIGSTOP`) and continues the
//! other (`SIGCONT`) every slice, so each runs half the time. Whole
//! processes, because a side is more than its vCPUs: its fault handlers,
//! samplers and coordinator stop with it, so the CPU time reclaim spends
//! is paid in the coordinated side's own turns and never in its twin's.
//! The rounds alternate which side starts. When both are done, the
//! round's slowdowns are read from the VMs' summary.json files and, at the
//! end, written into the first round's coordinate.json.
//!
//! Each side runs half the time, while the scenario's events (a ramp's
//! growth, the intervals, every eviction and refault they bring) follow
//! the wall clock. Left at its own times, a side would meet those events
//! in half the running time of a run alone, and every cost that comes
//! with an event, not with the guest's work, would weigh twice. So each
//! side runs the scenario at twice its times (`--time-scale`, on top of
//! the user's): in its turns it lives the scenario at the pace of a run
//! alone. A stop that lands inside an access counts as one capped stall
//! in the guest's stall time.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::app::{EXIT_GUEST_CRASH, EXIT_INTERRUPTED};
use crate::report::summary::{EndKind, Summary, read_summary};

use super::output::{
    CSV_FILE, CoordinateSummary, JSON_FILE, JsonReadError, apply_rounds, read_json, write_json,
};
use super::plot::PLOT_BASE;
use super::runner::{ChildRole, CoordinateError, Plan, RoundOps, round_dir, twins_dir, vm_dir};

#[derive(Debug, thiserror::Error)]
pub enum InterleaveError {
    #[error("cannot find this program to start the interleaved runs")]
    Exe(#[source] std::io::Error),
    #[error("cannot start the {role} side of round {round}")]
    Spawn {
        role: &'static str,
        round: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot signal or wait for the {role} side of round {round}")]
    Signal {
        role: &'static str,
        round: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("the {role} side of round {round} failed ({status})")]
    Failed {
        role: &'static str,
        round: usize,
        status: ExitStatus,
    },
    #[error("cannot read a VM's summary of round {round}")]
    Summary {
        round: usize,
        #[source]
        source: crate::report::ReportError,
    },
    #[error(transparent)]
    Json(#[from] JsonReadError),
}

/// The sides of a round, which share the host in equal turns.
const SIDES: f64 = 2.0;

/// What the rounds measured, written into OUT/coordinate.json.
pub struct Interleaved {
    pub summary: CoordinateSummary,
    pub files: Vec<PathBuf>,
    /// The worst way a side ended: a guest that crashed or exited with an
    /// error in some round (its exit status), else `None`.
    pub guest_failure: Option<u8>,
}

/// The command line of one side: `argv` (this process's, after the
/// program name) without the options that make the rounds, with the
/// side's output folder, its role, its `time_scale`, and no plot unless
/// `plot`.
pub fn child_args(
    argv: &[OsString],
    out: &Path,
    role: ChildRole,
    plot: bool,
    time_scale: f64,
) -> Vec<OsString> {
    const FLAGS: [&str; 2] = ["--twins", "--no-plot"];
    const WITH_VALUE: [&str; 5] = [
        "--rounds",
        "--interleave",
        "--out",
        "--as-child",
        "--time-scale",
    ];
    let mut args = Vec::with_capacity(argv.len() + 5);
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let text = arg.to_str().unwrap_or_default();
        if FLAGS.contains(&text) {
            continue;
        }
        if WITH_VALUE.contains(&text) {
            it.next();
            continue;
        }
        if WITH_VALUE.iter().any(|f| {
            text.strip_prefix(f)
                .is_some_and(|rest| rest.starts_with('='))
        }) {
            continue;
        }
        args.push(arg.clone());
    }
    args.extend([
        OsString::from("--out"),
        out.as_os_str().to_owned(),
        OsString::from("--as-child"),
        OsString::from(role.label()),
        OsString::from("--time-scale"),
        OsString::from(time_scale.to_string()),
    ]);
    if !plot {
        args.push(OsString::from("--no-plot"));
    }
    args
}

/// One side of a round, running or done.
struct Side {
    role: ChildRole,
    child: Child,
    status: Option<ExitStatus>,
}

impl Side {
    fn start(
        exe: &Path,
        args: &[OsString],
        role: ChildRole,
        round: usize,
    ) -> Result<Side, InterleaveError> {
        let mut cmd = Command::new(exe);
        cmd.args(args);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| InterleaveError::Spawn {
            role: role.label(),
            round,
            source,
        })?;
        Ok(Side {
            role,
            child,
            status: None,
        })
    }

    /// What a failed signal or wait of this side in `round` is.
    fn failed(&self, round: usize) -> impl FnOnce(std::io::Error) -> InterleaveError + use<> {
        let role = self.role.label();
        move |source| InterleaveError::Signal {
            role,
            round,
            source,
        }
    }

    fn running(&self) -> bool {
        self.status.is_none()
    }

    /// Sends `signal` while the child runs (not yet reaped, so its pid
    /// is still its own).
    fn signal(&self, signal: libc::c_int, round: usize) -> Result<(), InterleaveError> {
        if !self.running() {
            return Ok(());
        }
        send_signal(&self.child, signal).map_err(self.failed(round))
    }

    /// Notes the exit status if the child has ended.
    fn poll(&mut self, round: usize) -> Result<(), InterleaveError> {
        if self.running() {
            self.status = self.child.try_wait().map_err(self.failed(round))?;
        }
        Ok(())
    }

    fn wait(&mut self, round: usize) -> Result<ExitStatus, InterleaveError> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let s = self.child.wait().map_err(self.failed(round))?;
        self.status = Some(s);
        Ok(s)
    }
}

/// A child left behind by a parent that dies (even by SIGKILL) would stay
/// stopped for ever: it is killed with its parent.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only prctl, which is async-signal-safe and touches no memory
    // of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn send_signal(child: &Child, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| std::io::Error::other("child pid out of range"))?;
    // SAFETY: kill reads and writes no memory; the pid is a child of this
    // process that has not been waited for, so it names that child.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs the two sides of a round in turns of `slice`, `first` first,
/// until both end. Ctrl-C is passed on to both, which are then left to
/// finish (each writes what it measured).
fn take_turns(
    sides: &mut [Side; 2],
    first: usize,
    slice: Duration,
    round: usize,
) -> Result<(), InterleaveError> {
    let mut on = first;
    sides[1 - on].signal(libc::SIGSTOP, round)?;
    loop {
        std::thread::sleep(slice);
        for side in sides.iter_mut() {
            side.poll(round)?;
        }
        if crate::run::interrupted() {
            for side in sides.iter() {
                side.signal(libc::SIGINT, round)?;
                side.signal(libc::SIGCONT, round)?;
            }
            break;
        }
        if sides.iter().any(|s| !s.running()) {
            // One is done: the other runs on alone to its end.
            for side in sides.iter() {
                side.signal(libc::SIGCONT, round)?;
            }
            break;
        }
        sides[on].signal(libc::SIGSTOP, round)?;
        sides[1 - on].signal(libc::SIGCONT, round)?;
        on = 1 - on;
    }
    for side in sides.iter_mut() {
        side.wait(round)?;
    }
    Ok(())
}

/// Runs the plan's rounds, each side in a child process of `exe`, the two
/// taking turns every `plan.interleave`; `argv` is this process's command
/// line after the program name.
pub fn execute(plan: &Plan, argv: &[OsString]) -> Result<Interleaved, CoordinateError> {
    let slice = plan.interleave.unwrap_or(Duration::from_millis(50));
    let exe = std::env::current_exe().map_err(InterleaveError::Exe)?;
    let vms = plan.scenario.vms.len();
    let mut rounds: Vec<Vec<RoundOps>> = vec![Vec::new(); vms];
    let mut twin_checksums: Vec<Option<String>> = vec![None; vms];
    let mut guest_failure = None;
    for round in 1..=plan.rounds {
        if crate::run::interrupted() {
            break;
        }
        let dir = if round == 1 {
            plan.out_dir.clone()
        } else {
            round_dir(&plan.out_dir, round)
        };
        if plan.live {
            eprintln!(
                "round {round} of {}: the coordinated VMs and their twins, taking turns every {:?}",
                plan.rounds, slice
            );
        }
        let scale = plan.time_scale * SIDES;
        let coordinated_args = child_args(
            argv,
            &dir,
            ChildRole::Coordinated,
            round == 1 && plan.plot,
            scale,
        );
        let twin_args = child_args(argv, &twins_dir(&dir), ChildRole::Twin, false, scale);
        let mut sides = [
            Side::start(&exe, &coordinated_args, ChildRole::Coordinated, round)?,
            Side::start(&exe, &twin_args, ChildRole::Twin, round)?,
        ];
        // The twin starts in even rounds, as it runs first when apart.
        take_turns(&mut sides, usize::from(round % 2 == 0), slice, round)?;
        let mut counts = true;
        for side in &sides {
            let status = side.status.unwrap_or_default();
            match status.code() {
                Some(0) => {}
                Some(c) if c == i32::from(EXIT_INTERRUPTED) => counts = false,
                // A guest crashed or exited with an error: the round is
                // left out, the rounds go on, and the exit status says so.
                Some(c) if c == i32::from(EXIT_GUEST_CRASH) => {
                    counts = false;
                    guest_failure = Some(EXIT_GUEST_CRASH);
                }
                _ => {
                    return Err(InterleaveError::Failed {
                        role: side.role.label(),
                        round,
                        status,
                    }
                    .into());
                }
            }
        }
        if counts {
            add_round(plan, &dir, round, &mut rounds, &mut twin_checksums)?;
        }
    }
    let json = plan.out_dir.join(JSON_FILE);
    let mut summary = read_json(&json).map_err(InterleaveError::from)?;
    apply_rounds(&mut summary, &rounds, &twin_checksums);
    summary.twin_turn_s = Some(slice.as_secs_f64());
    let mut files = vec![
        plan.out_dir.join(CSV_FILE),
        write_json(&plan.out_dir, &summary)?,
    ];
    // The first round's coordinated side drew them, unless told not to.
    files.extend(
        crate::plot::backend::svg_and_png_paths(&plan.out_dir.join(PLOT_BASE))
            .into_iter()
            .filter(|p| p.is_file()),
    );
    Ok(Interleaved {
        summary,
        files,
        guest_failure,
    })
}

/// Adds round `round`'s throughputs from its run folders in `dir`, VM by
/// VM, unless a run of it was cut short by Ctrl-C; the first round's
/// twins give the twin checksums.
fn add_round(
    plan: &Plan,
    dir: &Path,
    round: usize,
    rounds: &mut [Vec<RoundOps>],
    twin_checksums: &mut [Option<String>],
) -> Result<(), InterleaveError> {
    let read = |d: &Path, vm: &str| -> Result<Summary, InterleaveError> {
        read_summary(&vm_dir(d, vm).join("summary.json"))
            .map_err(|source| InterleaveError::Summary { round, source })
    };
    let mut pairs = Vec::with_capacity(plan.scenario.vms.len());
    for vm in &plan.scenario.vms {
        let pair = (read(dir, &vm.name)?, read(&twins_dir(dir), &vm.name)?);
        if pair.0.end == EndKind::Interrupted || pair.1.end == EndKind::Interrupted {
            return Ok(());
        }
        pairs.push(pair);
    }
    for ((mine, checksum), (c, t)) in rounds.iter_mut().zip(twin_checksums.iter_mut()).zip(&pairs) {
        mine.push(RoundOps::of(c, t));
        if round == 1 {
            checksum.clone_from(&t.guest_checksum);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command as CliCommand};

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse(args: &[OsString]) -> crate::cli::CoordinateArgs {
        let mut all = vec![OsString::from("kvm-wss")];
        all.extend(args.iter().cloned());
        match Cli::try_parse_from(all).unwrap().command {
            CliCommand::Coordinate(a) => a,
            _ => panic!("not coordinate"),
        }
    }

    #[test]
    fn a_side_keeps_the_scenario_and_drops_the_rounds() {
        let argv = os(&[
            "coordinate",
            "--scenario",
            "shift",
            "--policy",
            "wss",
            "--host-mem",
            "1536M",
            "--twins",
            "--rounds=8",
            "--interleave",
            "50ms",
            "--out",
            "/tmp/x",
            "--headroom",
            "0.05",
            "--no-plot",
            "-q",
        ]);
        let args = child_args(
            &argv,
            Path::new("/tmp/x/rounds/2"),
            ChildRole::Coordinated,
            true,
            3.0,
        );
        let a = parse(&args);
        assert!(!a.twins);
        assert_eq!(a.rounds, 1);
        assert_eq!(a.interleave, None);
        assert_eq!(a.as_child, Some(ChildRole::Coordinated));
        assert_eq!(a.out.as_deref(), Some(Path::new("/tmp/x/rounds/2")));
        assert!(!a.no_plot, "the first round's coordinated side draws");
        assert!(a.quiet);
        assert_eq!(a.host_mem, 1536 << 20);
        assert_eq!(a.headroom, 0.05);
        assert_eq!(a.policy, super::super::policy::PolicyKind::Wss);
        assert_eq!(a.time_scale, 3.0, "the side's own scale, not the user's");

        let twin = parse(&child_args(
            &argv,
            Path::new("/tmp/t"),
            ChildRole::Twin,
            false,
            0.5,
        ));
        assert_eq!(twin.time_scale, 0.5);
        assert_eq!(twin.as_child, Some(ChildRole::Twin));
        assert!(twin.no_plot);
    }

    #[test]
    fn a_value_equal_to_a_dropped_flag_goes_with_its_option() {
        let argv = os(&[
            "coordinate",
            "--out",
            "--twins",
            "--scenario",
            "shift",
            "--time-scale=4",
        ]);
        let args = child_args(&argv, Path::new("o"), ChildRole::Twin, false, 2.0);
        assert_eq!(
            args,
            os(&[
                "coordinate",
                "--scenario",
                "shift",
                "--out",
                "o",
                "--as-child",
                "twin",
                "--time-scale",
                "2",
                "--no-plot"
            ])
        );
    }

    #[test]
    fn turns_are_only_taken_with_twins() {
        let r = Cli::try_parse_from([
            "kvm-wss",
            "coordinate",
            "--scenario",
            "shift",
            "--policy",
            "wss",
            "--host-mem",
            "1536M",
            "--interleave",
            "50ms",
        ]);
        assert!(r.is_err());
    }
}
