//! Dispatching subcommands and mapping outcomes to exit codes:
//! 0 success, 1 runtime error, 2 usage error (bad input), 3 guest crashed,
//! 130 interrupted by Ctrl-C (after writing what was measured).

use crate::vmm::affinity::AffinityError;
use std::io::Write;
use std::process::ExitCode;

use crate::analysis::format::opt_percent;
use crate::catalog::{CATALOG, COMMON_PARAMS};
use crate::cli::{
    BenchCommand, Cli, Command, ReplayArgs, RunArgs, StudyArgs, SweepArgs, UsageError,
};

use crate::report::ReportError;
use crate::report::summary::{EndKind, Summary, read_summary};
use crate::report::timeseries::for_each_row;
use crate::run::{RunEnd, RunError, RunOutput};
use crate::sweep::SweepError;
use crate::vmm::machine::BootError;

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_GUEST_CRASH: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    #[error("cannot encode the summary")]
    Json(#[source] serde_json::Error),
    #[error("cannot write {path}")]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error("benchmark failed")]
    Bench(#[from] crate::bench::BenchError),
    #[error("study failed")]
    Study(#[from] crate::study::StudyError),
    #[error("cannot replay")]
    Replay(#[from] crate::replay::ReplayError),
    #[error("cannot make the heat map")]
    Heatmap(#[from] crate::report::heatmap::HeatmapError),
    #[error("coordinated run failed")]
    Coordinate(#[from] crate::coordinate::runner::CoordinateError),
    #[error("cannot compare the estimators")]
    Compare(#[from] crate::compare::command::CommandError),
    #[error("cannot write the coordination document")]
    CoordinateDoc(#[from] crate::coordinate::doc::DocError),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            // A bad trace or bad replay settings are bad input.
            AppError::Usage(_)
            | AppError::Replay(_)
            | AppError::Heatmap(
                crate::report::heatmap::HeatmapError::Replay(_)
                | crate::report::heatmap::HeatmapError::NoTicks,
            ) => EXIT_USAGE,
            // A RAM size the layout cannot hold.
            AppError::Bench(crate::bench::BenchError::Layout(_)) => EXIT_USAGE,
            AppError::Run(e)
            | AppError::Sweep(SweepError::Run { source: e, .. })
            | AppError::Coordinate(crate::coordinate::runner::CoordinateError::Run {
                source: e,
                ..
            }) => run_error_exit_code(e),
            AppError::Study(crate::study::StudyError::Interrupted { .. })
            | AppError::Compare(crate::compare::command::CommandError::Study(
                crate::study::StudyError::Interrupted { .. },
            ))
            | AppError::Compare(crate::compare::command::CommandError::Compare(
                crate::compare::CompareError::Interrupted,
            ))
            | AppError::Report(ReportError::Interrupted { .. })
            | AppError::Heatmap(crate::report::heatmap::HeatmapError::Draw(
                ReportError::Interrupted { .. },
            )) => EXIT_INTERRUPTED,
            _ => EXIT_RUNTIME,
        }
    }
}

fn run_error_exit_code(e: &RunError) -> u8 {
    match e {
        // A guest image or size that cannot work is bad input too.
        RunError::Guest(_)
        | RunError::Boot(BootError::Load(_) | BootError::Layout(_) | BootError::Param(_))
        | RunError::Estimator(_)
        | RunError::GuestPages(_)
        | RunError::RecordTick(_)
        | RunError::Placement(AffinityError::NotAllowed { .. } | AffinityError::ManyVcpus { .. }) => {
            EXIT_USAGE
        }
        _ => EXIT_RUNTIME,
    }
}

pub fn execute(cli: Cli) -> Result<ExitCode, AppError> {
    match cli.command {
        Command::Guests => list_guests().map_err(AppError::Stdout),
        Command::Run(args) => run(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Bench(BenchCommand::Native {
            duration,
            wss,
            rounds,
        }) => {
            let result = crate::bench::native(wss, duration, rounds)?;
            print_json(&result)
        }
        Command::Bench(BenchCommand::Trackers {
            probe,
            detail,
            arming_markdown,
        }) => {
            let mut result = crate::bench::trackers(probe.pages, probe.rounds, probe.guest_pages)?;
            if let Some(path) = arming_markdown {
                std::fs::write(&path, crate::bench::arming::markdown(&result.arming))
                    .map_err(|source| AppError::Write { path, source })?;
            }
            if let Some(path) = detail {
                let json = serde_json::to_string_pretty(&result).map_err(AppError::Json)?;
                std::fs::write(&path, json + "\n")
                    .map_err(|source| AppError::Write { path, source })?;
            }
            for t in &mut result.trackers {
                t.repetitions.clear();
            }
            print_json(&result)
        }
        Command::Bench(BenchCommand::Placement { probe, markdown }) => {
            let result =
                crate::bench::placement::placement(probe.pages, probe.rounds, probe.guest_pages)?;
            if let Some(path) = markdown {
                std::fs::write(&path, crate::bench::placement::markdown(&result))
                    .map_err(|source| AppError::Write { path, source })?;
            }
            print_json(&result)
        }
        Command::Bench(BenchCommand::Residency { mem, wss, rounds }) => {
            print_json(&crate::bench::residency::residency(mem, wss, rounds)?)
        }
        Command::Bench(BenchCommand::Overcommit {
            mems,
            wss,
            sample_pages,
            tracker,
            duration,
            interval,
            rounds,
        }) => {
            if mems.is_empty() {
                return Err(UsageError::EmptyList("mems").into());
            }
            for &mem in &mems {
                crate::memlimit::MemLimits::of_this_process()
                    .check(mem)
                    .map_err(UsageError::from)?;
            }
            let plan = crate::bench::overcommit::OvercommitPlan {
                mems,
                wss,
                sample_pages,
                tracker,
                duration,
                interval,
                rounds: usize::try_from(rounds).unwrap_or(usize::MAX),
            };
            print_json(&crate::bench::overcommit::overcommit(&plan)?)
        }
        Command::Bench(BenchCommand::Slowdown {
            trackers,
            rounds,
            wss,
            mem,
            sample_pages,
            interval,
            duration,
            markdown,
        }) => {
            if trackers.is_empty() {
                return Err(UsageError::EmptyList("trackers").into());
            }
            if trackers.contains(&crate::track::TrackerKind::None) {
                return Err(UsageError::UntrackedInTrackers.into());
            }
            crate::cli::check_sizes_and_times(wss, mem, interval, duration)?;
            let plan = crate::bench::slowdown::SlowdownPlan {
                trackers,
                rounds,
                wss,
                mem,
                sample_pages,
                interval,
                duration,
            };
            let result = crate::bench::slowdown::slowdown(&plan)?;
            if let Some(path) = markdown {
                std::fs::write(&path, crate::bench::slowdown::markdown(&result))
                    .map_err(|source| AppError::Write { path, source })?;
            }
            print_json(&result)
        }
        Command::Study(args) => study(&args),
        Command::CompareEstimators(args) => {
            crate::cli::check_out_dir(&args.out.join("study"))?;
            let doc = crate::compare::command::run(&args, &mut std::io::stderr())?;
            println!("{}", doc.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => replay(&args),
        Command::Coordinate(args) => coordinate(&args),
        Command::CoordinateDoc { out } => {
            println!("{}", crate::coordinate::doc::write_doc(&out)?.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot {
            run_dir,
            heatmap: true,
            written,
            out,
        } => plot_heatmap(run_dir, written, out),
        Command::Plot { run_dir, .. } => {
            for file in ["timeseries.csv", "summary.json"] {
                if !run_dir.join(file).is_file() {
                    return Err(UsageError::NotARunDir {
                        path: run_dir,
                        file,
                    }
                    .into());
                }
            }
            // Streamed into the bounded series, as a run does: the plot of
            // a file of any length needs no more memory than its cap.
            let mut series = crate::report::plot_series::PlotSeries::default();
            for_each_row(&run_dir.join("timeseries.csv"), |row| series.push(&row))?;
            let summary = read_summary(&run_dir.join("summary.json"))?;
            for path in crate::report::plot::plot_series(&series, &summary, &run_dir)? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `plot --heatmap`: the heat map of a recorded run, and one line saying
/// what was sampled on it.
fn plot_heatmap(
    run_dir: std::path::PathBuf,
    written: bool,
    out: Option<std::path::PathBuf>,
) -> Result<ExitCode, AppError> {
    use crate::report::heatmap::{self, HEATMAP_BASE, Truth};
    let file = crate::record::TRACE_FILE;
    if !run_dir.join(file).is_file() {
        return Err(UsageError::NotARunDir {
            path: run_dir,
            file,
        }
        .into());
    }
    let rec = crate::record::read(&run_dir.join(file)).map_err(crate::replay::ReplayError::from)?;
    let truth = if written {
        Truth::Written
    } else {
        Truth::Touched
    };
    let hm = heatmap::build(&rec, truth)?;
    let base = out.unwrap_or_else(|| run_dir.join(HEATMAP_BASE));
    for path in heatmap::draw(&rec, &hm, truth, &base)? {
        println!("{}", path.display());
    }
    eprintln!(
        "kvm-wss: {} pages sampled in {} cells, {} caught in {} cells ({} × {} cells; a cell is {} recorded tick(s) × {} pages)",
        hm.sampled_pages,
        hm.sampled_cells(),
        hm.caught_pages,
        hm.caught_cells(),
        hm.grid.columns,
        hm.grid.rows,
        hm.grid.ticks_per_column,
        hm.grid.pages_per_row,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &impl serde::Serialize) -> Result<ExitCode, AppError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(AppError::Json)?
    );
    Ok(ExitCode::SUCCESS)
}

fn list_guests() -> Result<ExitCode, std::io::Error> {
    let mut out = std::io::stdout().lock();
    for p in CATALOG {
        let tag = if p.test_only { " [test]" } else { "" };
        writeln!(
            out,
            "{:<8} {}{}",
            p.name,
            p.summary.split_whitespace().collect::<Vec<_>>().join(" "),
            tag
        )?;
        for param in p.params {
            let help = flat(param.help);
            let help = help.strip_prefix("required: ").unwrap_or(&help);
            let default = if param.default.is_empty() {
                "required".to_string()
            } else {
                format!("default {}", param.default)
            };
            writeln!(
                out,
                "{:<10}--param {}=... ({default}): {help}",
                "", param.key
            )?;
        }
        writeln!(out, "{:<10}true WSS: {}", "", flat(p.expected_truth))?;
    }
    writeln!(out, "\nEvery program also takes:")?;
    for param in COMMON_PARAMS {
        writeln!(
            out,
            "{:<10}--param {}=... (default {}): {}",
            "",
            param.key,
            param.default,
            flat(param.help)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A coordinated run's closing lines: each VM's means and slowdown on
/// stderr, the files written on stdout.
fn print_coordinated(
    summary: &crate::coordinate::output::CoordinateSummary,
    files: &[std::path::PathBuf],
) {
    for v in &summary.vms {
        eprintln!(
            "{}: limit mean {} MiB, true WSS mean {} MiB, limit below true WSS in {} of intervals, slowdown {}",
            v.name,
            v.limit_mean_mib
                .map_or("-".to_string(), |m| format!("{m:.1}")),
            v.true_wss_mean_mib
                .map_or("-".to_string(), |m| format!("{m:.1}")),
            opt_percent(v.below_truth_share),
            opt_percent(v.slowdown),
        );
    }
    for f in files {
        println!("{}", f.display());
    }
}

/// `coordinate`: runs the plan, then says where everything is and how the
/// VMs ended (the worst end decides the exit status).
fn coordinate(args: &crate::cli::CoordinateArgs) -> Result<ExitCode, AppError> {
    let plan = args.to_plan()?;
    if plan.interleave.is_some() && plan.child.is_none() {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let done = crate::coordinate::interleave::execute(&plan, &argv)?;
        print_coordinated(&done.summary, &done.files);
        if crate::run::interrupted() {
            eprintln!(
                "kvm-wss: interrupted; what was measured is in {}",
                plan.out_dir.display()
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        return Ok(done.guest_failure.map_or(ExitCode::SUCCESS, ExitCode::from));
    }
    let done = crate::coordinate::execute(&plan)?;
    // A side of an interleaved round: its parent speaks for the round.
    if plan.child.is_none() {
        print_coordinated(&done.summary, &done.files);
    }
    let mut code = ExitCode::SUCCESS;
    for vm in &done.outcome.vms {
        match &vm.output.end {
            RunEnd::Duration | RunEnd::GuestExit(0) => {}
            RunEnd::GuestExit(c) => {
                eprintln!("kvm-wss: VM {}: guest exited with code {c}", vm.name);
                code = ExitCode::from(EXIT_GUEST_CRASH);
            }
            RunEnd::GuestCrash(msg) => {
                eprintln!("kvm-wss: VM {}: guest crashed: {msg}", vm.name);
                code = ExitCode::from(EXIT_GUEST_CRASH);
            }
            RunEnd::Error(e) => {
                eprintln!("kvm-wss: VM {}: {}", vm.name, crate::error_chain(e));
                code = ExitCode::from(EXIT_RUNTIME);
            }
            RunEnd::Interrupted => {}
        }
    }
    if crate::run::interrupted() {
        eprintln!(
            "kvm-wss: interrupted; what was measured is in {}",
            plan.out_dir.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(code)
}

fn run(args: &RunArgs) -> Result<ExitCode, AppError> {
    let cfg = args.to_config()?;
    let extras = args.record_extras(&cfg)?;
    if let Some(note) = args.common.overcommit_note() {
        eprintln!("kvm-wss: {note}");
    }
    let dir = cfg
        .out_dir
        .clone()
        .unwrap_or_else(|| crate::run::default_out_dir(&cfg));
    crate::cli::check_out_dir(&dir)?;
    let out = crate::run::run_with(&cfg, &dir, extras)?;
    if args.json {
        let json = serde_json::to_string_pretty(&out.summary).map_err(AppError::Json)?;
        println!("{json}");
    } else {
        crate::run_table::print(&out).map_err(AppError::Stdout)?;
    }
    if !crate::run::interrupted()
        && let Err(e) = crate::replay::curve_cli::live_curve(&cfg, &out, args.json)
    {
        // The run's own outputs are whole; only the curve's are missing.
        eprintln!(
            "kvm-wss: the curve's files were not written: {}",
            crate::error_chain(&e)
        );
        return Ok(ExitCode::from(EXIT_RUNTIME));
    }
    if !matches!(out.end, RunEnd::Interrupted) && crate::run::interrupted() {
        // Ctrl-C after the guest stopped: what was written is whole.
        eprintln!(
            "kvm-wss: interrupted while writing outputs; what was written is in {}",
            out.dir.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(match &out.end {
        RunEnd::Duration => ExitCode::SUCCESS,
        RunEnd::GuestExit(0) => ExitCode::SUCCESS,
        RunEnd::GuestExit(code) => {
            eprintln!("kvm-wss: guest exited with code {code}");
            ExitCode::from(EXIT_GUEST_CRASH)
        }
        RunEnd::GuestCrash(msg) => {
            eprintln!("kvm-wss: guest crashed: {msg}");
            ExitCode::from(EXIT_GUEST_CRASH)
        }
        RunEnd::Interrupted => {
            eprintln!(
                "kvm-wss: interrupted; what was measured is in {}",
                out.dir.display()
            );
            ExitCode::from(EXIT_INTERRUPTED)
        }
        RunEnd::Error(e) => {
            eprintln!("kvm-wss: {}", crate::error_chain(e));
            ExitCode::from(EXIT_RUNTIME)
        }
    })
}

/// `kvm-wss replay`: an estimator over a recorded trace, printed as `run`
/// prints a run.
fn replay(args: &ReplayArgs) -> Result<ExitCode, AppError> {
    let file = crate::record::TRACE_FILE;
    if !args.run_dir.join(file).is_file() {
        return Err(UsageError::NotARunDir {
            path: args.run_dir.clone(),
            file,
        }
        .into());
    }
    let rec =
        crate::record::read(&args.run_dir.join(file)).map_err(crate::replay::ReplayError::from)?;
    let settings = args.to_settings(&rec.header);
    let out_dir = args.out.clone().unwrap_or_else(|| args.run_dir.clone());
    if args.out.is_some() {
        crate::cli::check_out_dir(&out_dir)?;
    }
    let (rows, curve) = crate::replay::curve_cli::replay_with_curve(&rec, &settings, &out_dir)?;
    let summary = crate::replay::summarize(&rec, &settings, &rows);
    if settings == crate::replay::ReplaySettings::recorded(&rec.header) {
        // The run's own settings: the replay must give the live estimates.
        let (equal, live) = crate::replay::live_matches(&rec, &rows);
        eprintln!(
            "kvm-wss: replayed with the recorded settings: {equal} of {live} intervals equal the live estimates"
        );
    }
    if args.json {
        return print_json(&summary);
    }
    let out = RunOutput {
        summary,
        rows,
        dir: args.run_dir.clone(),
        end: RunEnd::Duration,
        logs: Vec::new(),
        dropped: None,
    };
    crate::run_table::print(&out).map_err(AppError::Stdout)?;
    if let Some(c) = &curve {
        crate::replay::curve_cli::print_curve(c);
    }
    Ok(ExitCode::SUCCESS)
}

fn study(args: &StudyArgs) -> Result<ExitCode, AppError> {
    let opts = crate::study::StudyOptions {
        out: args.collect.clone().unwrap_or_else(|| args.out.clone()),
        quick: args.quick,
        fresh: args.fresh,
        collect: args.collect.is_some(),
    };
    if let Some(file) = &args.emit_jobs {
        let bin = crate::sweep::jobs::current_binary();
        let (listed, skipped) = crate::study::emit_jobs(&opts, &bin, file)?;
        eprintln!(
            "kvm-wss: {listed} runs listed in {}, {skipped} already finished under {}; \
             run the list, then `kvm-wss study{} --collect {}`",
            file.display(),
            opts.out.join("study").join("runs").display(),
            if opts.quick { " --quick" } else { "" },
            opts.out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // An unusable --out is bad input, refused before the first run (the
    // runs, figures and data all go under OUT/study/).
    crate::cli::check_out_dir(&opts.out.join("study"))?;
    let outcome = crate::study::study(&opts, &mut std::io::stderr())?;
    println!("{}", outcome.doc.display());
    Ok(ExitCode::SUCCESS)
}

/// Exit code of a sweep: 130 after Ctrl-C, else 1 if a run failed in the
/// VMM, else 3 if a guest crashed or exited non-zero, else 0. A failure that
/// stopped the sweep is returned as an error, after the table.
fn sweep(args: &SweepArgs) -> Result<ExitCode, AppError> {
    let (outcome, out_dir) = match (&args.collect, &args.replay) {
        (_, Some(run_dir)) => {
            let plan = args.to_replay_plan(run_dir)?;
            crate::cli::check_out_dir(&plan.out_dir)?;
            (
                crate::sweep::run_replay_sweep(&plan).map_err(collect_error)?,
                plan.out_dir,
            )
        }
        (Some(dir), None) => (
            crate::sweep::collect(dir).map_err(collect_error)?,
            dir.clone(),
        ),
        (None, None) => {
            let plan = args.to_plan()?;
            crate::cli::check_out_dir(&plan.out_dir)?;
            if let Some(note) = args.common.overcommit_note() {
                eprintln!("kvm-wss: {note}");
            }
            if let Some(file) = &args.emit_jobs {
                let bin = crate::sweep::jobs::current_binary();
                let e = crate::sweep::emit_jobs(&plan, &bin, file).map_err(collect_error)?;
                eprintln!(
                    "kvm-wss: {} runs listed in {}, {} already finished in {}; \
                     run the list, then `kvm-wss sweep --collect {}`",
                    e.listed,
                    file.display(),
                    e.skipped,
                    plan.out_dir.display(),
                    plan.out_dir.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            (
                crate::sweep::run_sweep(&plan).map_err(collect_error)?,
                plan.out_dir,
            )
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(outcome.table.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(AppError::Stdout)?;
    eprintln!("kvm-wss: sweep output in {}", out_dir.display());
    if args.collect.is_some() {
        report_collected(&outcome);
    }
    if let Some(e) = outcome.failure {
        return Err(e.into());
    }
    if !outcome.missing.is_empty() {
        eprintln!(
            "kvm-wss: {} of {} runs missing; emit the job list again (same sweep options and \
             --out) to list just those",
            outcome.missing.len(),
            outcome.counts.planned
        );
        return Ok(ExitCode::from(EXIT_RUNTIME));
    }
    let any = |f: &dyn Fn(&Summary) -> bool| outcome.records.iter().any(|r| f(&r.summary));
    Ok(if outcome.counts.interrupted {
        eprintln!(
            "kvm-wss: interrupted after {} of {} runs; what was measured is in {}",
            outcome.counts.finished,
            outcome.counts.planned,
            out_dir.display()
        );
        ExitCode::from(EXIT_INTERRUPTED)
    } else if any(&|s| s.end == EndKind::Error) {
        eprintln!("kvm-wss: a run failed in the VMM; see the end column of sweep.csv");
        ExitCode::from(EXIT_RUNTIME)
    } else if any(&|s| {
        s.end == EndKind::GuestCrash || s.end == EndKind::GuestExit && s.guest_exit_code != Some(0)
    }) {
        eprintln!("kvm-wss: a guest crashed or exited non-zero; see the end column of sweep.csv");
        ExitCode::from(EXIT_GUEST_CRASH)
    } else {
        ExitCode::SUCCESS
    })
}

/// Errors of the sweep folder named on the command line (no plan in it,
/// another sweep's plan in it) are bad input; the rest keep their codes.
fn collect_error(e: SweepError) -> AppError {
    match e {
        SweepError::NoPlan { .. } | SweepError::BadPlan { .. } | SweepError::OtherPlan(_) => {
            AppError::Usage(UsageError::Sweep(e))
        }
        other => AppError::Sweep(other),
    }
}

/// What `sweep --collect` found: the missing and failed runs, and the
/// hosts the runs ran on.
fn report_collected(outcome: &crate::sweep::SweepOutcome) {
    for dir in &outcome.missing {
        eprintln!("kvm-wss: missing: {dir} (no finished summary.json)");
    }
    for r in &outcome.records {
        if !crate::sweep::is_counted(&r.summary) {
            eprintln!("kvm-wss: failed: {} (end {})", r.run_dir, r.summary.end);
        }
    }
    for (line, n) in &outcome.hosts.hosts {
        eprintln!("kvm-wss: {n} runs on {line}");
    }
    if outcome.hosts.unrecorded > 0 {
        eprintln!(
            "kvm-wss: {} runs do not record their host",
            outcome.hosts.unrecorded
        );
    }
    if let Some(note) = outcome.hosts.mixed_note() {
        eprintln!("kvm-wss: {note}");
    }
}
