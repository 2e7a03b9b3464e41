//! Job lists: a sweep's or a study's runs written out as self-contained
//! `kvm-wss run ...` command lines, one per line, for an existing engine
//! (GNU parallel, xargs, a Slurm array) to run; and the plan file that lets
//! `--collect` read the finished runs back.
//!
//! A job line is a POSIX shell command: the absolute path of the kvm-wss
//! binary that wrote the list, then every option of the run spelled out
//! (defaults included, so a newer binary with other defaults makes the same
//! run), each argument single-quoted when it holds anything but
//! `[A-Za-z0-9_./,=:+@%-]`. `--out` is absolute too, so a line runs the same
//! from any working directory, on any host that sees the same paths.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Setting, Targets, format_interval};
use crate::config::RunConfig;
use crate::estimate::EstimatorKind;
use crate::guests::GuestSource;
use crate::report::summary::{EndKind, Summary, read_summary};
use crate::track::TrackerKind;

/// The plan of a sweep, kept in its folder so that `sweep --collect` knows
/// which runs to expect and how to judge them.
pub const PLAN_JSON: &str = "sweep-plan.json";

/// An argument as a POSIX shell reads it back unchanged.
pub fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./,=:+@%-".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A command line of `argv`, each argument quoted for the shell.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` bytes as the CLI takes them.
fn size_arg(n: u64) -> String {
    crate::study::plan::size_arg(n)
}

/// The `kvm-wss run` arguments (after the binary) that make the run of
/// `cfg` into `out`: every setting spelled out, without live lines.
pub fn run_args(cfg: &RunConfig, out: &Path) -> Vec<String> {
    let guest = match &cfg.guest {
        GuestSource::Builtin(name) => name.clone(),
        GuestSource::File(p) => absolute(p).display().to_string(),
    };
    let mut a: Vec<String> = vec!["run".into(), "--guest".into(), guest];
    let mut opt = |k: &str, v: String| {
        a.push(format!("--{k}"));
        a.push(v);
    };
    opt("mem", size_arg(cfg.mem));
    opt("wss", size_arg(cfg.wss));
    for (k, v) in &cfg.params {
        opt("param", format!("{k}={v}"));
    }
    opt("duration", format_interval(cfg.duration));
    opt("seed", cfg.seed.to_string());
    opt("tracker", cfg.tracker.to_string());
    opt("estimator", cfg.estimator.to_string());
    opt("sample-pages", cfg.sample_pages.to_string());
    opt("interval", format_interval(cfg.interval));
    // `{}` prints the shortest text that parses back to the same f64.
    opt("esx-slow-gain", format!("{}", cfg.esx.slow));
    opt("esx-fast-gain", format!("{}", cfg.esx.fast));
    opt("damon-min-regions", cfg.damon.min_regions.to_string());
    opt("damon-max-regions", cfg.damon.max_regions.to_string());
    opt("damon-ticks", cfg.damon.ticks_per_interval.to_string());
    opt("band-target", format!("{}", cfg.follow.band_target));
    opt("warmup", cfg.warmup_intervals.to_string());
    opt("guest-pages", cfg.guest_pages.to_string());
    opt("vcpus", cfg.vcpus.to_string());
    opt("out", absolute(out).display().to_string());
    if cfg.baseline {
        a.push("--baseline".into());
    }
    if !cfg.plot {
        a.push("--no-plot".into());
    }
    a.push("--quiet".into());
    a
}

/// The run arguments of `cfg` without `--out`: what the run measures.
pub fn setting_args(cfg: &RunConfig) -> Vec<String> {
    let mut args = run_args(cfg, Path::new(""));
    if let Some(i) = args.iter().position(|a| a == "--out") {
        args.drain(i..(i + 2).min(args.len()));
    }
    args
}

/// One job line: `bin` then the run's arguments, quoted.
pub fn job_line(bin: &str, cfg: &RunConfig, out: &Path) -> String {
    let mut argv = vec![bin.to_string()];
    argv.extend(run_args(cfg, out));
    command_line(&argv)
}

/// `p` made absolute against the working directory (unchanged if that
/// cannot be read).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The binary job lines start with: this one, by absolute path, or
/// `kvm-wss` (found on PATH) when its path is not known.
pub fn current_binary() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "kvm-wss".to_string())
}

/// The summary of a finished run in `dir`, or `None` when there is none
/// to reuse: no summary.json, one that does not parse (the run was killed
/// while writing it), or a run cut short by Ctrl-C or SIGTERM. Such runs
/// are listed again when a job list is emitted again.
pub fn finished(dir: &Path) -> Option<Summary> {
    read_summary(&dir.join("summary.json"))
        .ok()
        .filter(|s| s.end != EndKind::Interrupted)
}

/// A setting of the plan file, with the seed of its repeat 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSetting {
    pub tracker: TrackerKind,
    pub estimator: Option<EstimatorKind>,
    pub sample_pages: Option<u64>,
    pub interval_ns: u64,
    pub seed: u64,
    /// The `kvm-wss run` arguments of repeat 0, less `--out`: every option
    /// of the run, so that a sweep with another `--duration`, `--mem`,
    /// `--param`... is not taken for this one.
    pub args: Vec<String>,
}

/// sweep-plan.json: what `--collect` needs to read a sweep folder back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanFile {
    pub guest: String,
    pub repeat: u32,
    pub targets: Targets,
    pub baseline: bool,
    pub settings: Vec<PlanSetting>,
}

impl PlanFile {
    pub fn settings(&self) -> Vec<Setting> {
        self.settings
            .iter()
            .map(|s| Setting {
                tracker: s.tracker,
                estimator: s.estimator,
                sample_pages: s.sample_pages,
                interval: Duration::from_nanos(s.interval_ns),
                esx_gains: None,
                damon_regions: None,
            })
            .collect()
    }

    /// Every run in plan order: (setting index, repeat, seed, folder).
    pub fn runs(&self) -> Vec<(usize, u32, u64, String)> {
        let settings = self.settings();
        self.settings
            .iter()
            .zip(&settings)
            .enumerate()
            .flat_map(|(i, (p, s))| {
                (0..self.repeat)
                    .map(move |r| (i, r, p.seed.wrapping_add(u64::from(r)), s.dir_name(r)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--sample-pages"), "--sample-pages");
        assert_eq!(
            shell_quote("/tmp/a_b/c.d,k=v:1+2@3%"),
            "/tmp/a_b/c.d,k=v:1+2@3%"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME;rm"), "'$HOME;rm'");
    }

    /// The shell gives back exactly the arguments that were quoted.
    #[test]
    fn the_shell_reads_quoted_arguments_back_unchanged() {
        let args: Vec<String> = [
            "printf",
            "%s\\n",
            "plain",
            "two words",
            "it's",
            "\"dq\"",
            "$HOME `x` $(y) \\ *?[a]",
            "",
            "tab\there",
            "new\nline",
            "~user",
            "a;b|c&d>e<f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(command_line(&args))
            .output()
            .expect("sh");
        assert!(out.status.success());
        let expected: String = args[2..].iter().map(|a| format!("{a}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }

    #[test]
    fn a_job_line_parses_back_into_the_same_run() {
        use clap::Parser;
        let cfg = RunConfig {
            guest: GuestSource::Builtin("hotset".into()),
            mem: 64 << 20,
            wss: 8 << 20,
            seed: 9,
            params: vec![("rate".into(), "1024".into())],
            duration: Duration::from_millis(2500),
            interval: Duration::from_millis(500),
            tracker: TrackerKind::DirtyLog,
            estimator: EstimatorKind::Esx,
            sample_pages: 50,
            esx: crate::estimate::EsxGains {
                slow: 0.1,
                fast: 1.0 / 3.0,
            },
            damon: crate::estimate::DamonConfig {
                min_regions: 5,
                max_regions: 50,
                ticks_per_interval: 7,
            },
            follow: crate::estimate::FollowConfig {
                band_target: 0.1,
                ..Default::default()
            },
            warmup_intervals: 3,
            guest_pages: crate::vmm::paging::GuestPageSize::Size4K,
            vcpus: 3,
            cpu: crate::vmm::affinity::Placement::Auto,
            baseline: true,
            out_dir: None,
            plot: false,
            live: false,
        };
        let out = Path::new("/results/dir with space/r0");
        let line = job_line("/opt/kvm wss/kvm-wss", &cfg, out);
        assert!(
            line.starts_with("'/opt/kvm wss/kvm-wss' run --guest hotset "),
            "{line}"
        );
        assert!(
            line.contains("--out '/results/dir with space/r0'"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let argv = run_args(&cfg, out);
        let setting = setting_args(&cfg);
        assert_eq!(setting.len() + 2, argv.len());
        assert!(
            !setting
                .iter()
                .any(|a| a == "--out" || a.starts_with("/results"))
        );
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("kvm-wss".to_string()).chain(argv))
                .expect("parses");
        let crate::cli::Command::Run(run) = cli.command else {
            panic!("not a run");
        };
        let back = run.to_config().expect("valid");
        assert_eq!(
            back,
            RunConfig {
                out_dir: Some(out.to_path_buf()),
                ..cfg
            }
        );
    }

    #[test]
    fn only_complete_uninterrupted_summaries_count_as_finished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert!(finished(d).is_none(), "no summary");
        std::fs::write(d.join("summary.json"), "{\"guest\": \"hot").expect("write");
        assert!(finished(d).is_none(), "a summary cut off mid-write");
        let mut s = Summary {
            end: crate::report::summary::EndKind::Duration,
            ..Summary::default()
        };
        crate::report::summary::write_summary(&d.join("summary.json"), &s).expect("write");
        assert_eq!(finished(d), Some(s.clone()));
        s.end = crate::report::summary::EndKind::Interrupted;
        crate::report::summary::write_summary(&d.join("summary.json"), &s).expect("write");
        assert!(finished(d).is_none(), "interrupted runs are made again");
        // A run that crashed or failed is finished: its failure is a result.
        s.end = crate::report::summary::EndKind::GuestCrash;
        crate::report::summary::write_summary(&d.join("summary.json"), &s).expect("write");
        assert!(finished(d).is_some());
    }
}
