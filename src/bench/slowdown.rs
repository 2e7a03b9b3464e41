//! `kvm-wss bench slowdown`: how much a tracker slows the guest at a
//! sampling setting (by default issue 9's: `seq --wss 4M --mem 512M
//! --sample-pages 3200 --interval 100ms --duration 6s`), for several
//! trackers, over several rounds, with the load around it.
//!
//! The estimator. `run --baseline` runs one untracked twin before the
//! tracked run and compares the two; on a shared 2-core host the speed of
//! the guest drifts from run to run by about ±2 %, as much as the effect.
//! Here each round runs the untracked program before, between and after
//! the tracked runs (B T B T B T B, the trackers' order rotated per round),
//! and compares each tracked run with the mean of the two untracked runs
//! around it: a drift that is linear over the three runs cancels, and one
//! untracked run serves two tracked ones, so a round costs 2n + 1 runs, not
//! 2n (one more per further guest page size: a tracked run is compared
//! with untracked runs of its own, and dirty-log runs at 4 KiB). The same rule applied to each inner untracked run against its two
//! neighbours measures the estimator's own noise (its true slowdown is 0);
//! `noise` reports it beside the one-twin-before rule of `--baseline`, so
//! the JSON shows which of the two is steadier on the host it ran on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::load::{HostLoad, LoadWatch};
use super::{BenchError, Spread};
use crate::analysis::derived;
use crate::config::RunConfig;
use crate::estimate::{DamonConfig, EstimatorKind, EsxGains, FollowConfig};
use crate::guests::GuestSource;
use crate::named::Named;
use crate::report::summary::Summary;
use crate::run::RunEnd;
use crate::track::TrackerKind;
use crate::vmm::paging::GuestPageSize;

/// The guest program: it touches every page of its working set over and
/// over, so its speed is steady and only a few sampled pages are touched.
pub const GUEST: &str = "seq";
/// Intervals left out of the estimate at the start (as `run`'s default).
const WARMUP_INTERVALS: usize = 2;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowdownPlan {
    pub trackers: Vec<TrackerKind>,
    pub rounds: u64,
    pub wss: u64,
    pub mem: u64,
    pub sample_pages: u64,
    pub interval: Duration,
    pub duration: Duration,
}

/// What one tracked run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrackedRun {
    pub guest_ops_per_s: f64,
    pub duration_s: f64,
    pub hold_us_mean: f64,
    pub arm_us_per_page: Option<f64>,
    pub armed_pages_total: u64,
    pub tracked_faults: Option<u64>,
}

impl TrackedRun {
    fn of(s: &Summary) -> TrackedRun {
        TrackedRun {
            guest_ops_per_s: s.guest_ops_per_s,
            duration_s: s.duration_s,
            hold_us_mean: s.hold_us_mean,
            arm_us_per_page: s.arm_us_per_page,
            armed_pages_total: s.armed_pages_total,
            tracked_faults: s.tracked_faults,
        }
    }
}

/// One run of a round.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Run {
    Untracked {
        guest_pages: &'static str,
        guest_ops_per_s: f64,
    },
    Tracked {
        tracker: &'static str,
        guest_pages: &'static str,
        #[serde(flatten)]
        run: TrackedRun,
    },
}

/// One round's runs, in the order they ran: every tracked run has an
/// untracked run of the same guest page size just before and just after
/// it (dirty-log runs its guest with 4 KiB pages, which changes the
/// guest's own speed, so its untracked runs do too).
pub type Round = Vec<Run>;

/// Slowdown of a run at `ops` against the mean of the two untracked runs
/// around it.
pub fn bracketed_slowdown(ops: f64, before: f64, after: f64) -> Option<f64> {
    derived::slowdown(ops, (before + after) / 2.0)
}

/// Slowdown of a run against the untracked run just before it alone (what
/// `run --baseline` reports).
pub fn paired_slowdown(ops: f64, before: f64) -> Option<f64> {
    derived::slowdown(ops, before)
}

/// One tracker over all rounds: min, median and max over rounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackerSlowdown {
    pub tracker: &'static str,
    pub rounds: usize,
    /// Against the untracked runs before and after (the estimate).
    pub slowdown: Spread,
    /// Against the untracked run before only, as `run --baseline` does.
    pub slowdown_paired: Spread,
    /// Guest time held at a boundary, µs per interval.
    pub hold_us_mean: Spread,
    /// Sampler time arming and collecting, µs per armed page.
    pub arm_us_per_page: Spread,
    /// Guest time lost per armed page, µs, from `slowdown`.
    pub guest_us_per_armed_page: Spread,
    pub tracked_faults: Spread,
}

/// The estimators applied to untracked runs, whose true slowdown is 0:
/// their spread is what each can resolve on this host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Noise {
    pub samples: usize,
    pub bracketed: Spread,
    pub paired: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowdownResult {
    pub what: &'static str,
    pub command: String,
    pub rounds: u64,
    #[serde(flatten)]
    pub load: HostLoad,
    pub trackers: Vec<TrackerSlowdown>,
    pub noise: Noise,
    pub runs: Vec<Round>,
}

fn spread_of(values: impl IntoIterator<Item = f64>) -> Spread {
    Spread::of(&values.into_iter().collect::<Vec<_>>())
}

/// Each tracked run of `tracker` with the untracked runs (of its guest
/// page size) just before and just after it.
fn bracketed_runs<'a>(
    rounds: &'a [Round],
    tracker: &'a str,
) -> impl Iterator<Item = (&'a TrackedRun, f64, f64)> + 'a {
    rounds.iter().flat_map(move |r| {
        r.windows(3).filter_map(move |w| match w {
            [
                Run::Untracked {
                    guest_pages: p0,
                    guest_ops_per_s: before,
                },
                Run::Tracked {
                    tracker: t,
                    guest_pages: p,
                    run,
                },
                Run::Untracked {
                    guest_pages: p1,
                    guest_ops_per_s: after,
                },
            ] if *t == tracker && p0 == p && p1 == p => Some((run, *before, *after)),
            _ => None,
        })
    })
}

/// One tracker's figures over the rounds; `None` if it never ran.
pub fn summarise_tracker(rounds: &[Round], tracker: &'static str) -> Option<TrackerSlowdown> {
    let runs: Vec<_> = bracketed_runs(rounds, tracker).collect();
    if runs.is_empty() {
        return None;
    }
    let slowdowns: Vec<Option<f64>> = runs
        .iter()
        .map(|(t, b, a)| bracketed_slowdown(t.guest_ops_per_s, *b, *a))
        .collect();
    Some(TrackerSlowdown {
        tracker,
        rounds: runs.len(),
        slowdown: spread_of(slowdowns.iter().flatten().copied()),
        slowdown_paired: spread_of(
            runs.iter()
                .filter_map(|(t, b, _)| paired_slowdown(t.guest_ops_per_s, *b)),
        ),
        hold_us_mean: spread_of(runs.iter().map(|(t, _, _)| t.hold_us_mean)),
        arm_us_per_page: spread_of(runs.iter().filter_map(|(t, _, _)| t.arm_us_per_page)),
        guest_us_per_armed_page: spread_of(runs.iter().zip(&slowdowns).filter_map(
            |((t, _, _), s)| {
                derived::guest_us_per_armed_page(*s, t.duration_s, t.armed_pages_total)
            },
        )),
        tracked_faults: spread_of(
            runs.iter()
                .filter_map(|(t, _, _)| t.tracked_faults.map(|f| f as f64)),
        ),
    })
}

/// Both estimators applied to every untracked run that has an untracked
/// run of the same guest page size on each side (with a tracked run
/// between, as in the estimate).
pub fn noise(rounds: &[Round]) -> Noise {
    let (mut bracketed, mut paired) = (Vec::new(), Vec::new());
    for r in rounds {
        let untracked: Vec<(&str, f64)> = r
            .iter()
            .filter_map(|run| match run {
                Run::Untracked {
                    guest_pages,
                    guest_ops_per_s,
                } => Some((*guest_pages, *guest_ops_per_s)),
                Run::Tracked { .. } => None,
            })
            .collect();
        for w in untracked.windows(3) {
            if w[0].0 == w[1].0 && w[1].0 == w[2].0 {
                bracketed.extend(bracketed_slowdown(w[1].1, w[0].1, w[2].1));
                paired.extend(paired_slowdown(w[1].1, w[0].1));
            }
        }
    }
    Noise {
        samples: bracketed.len(),
        bracketed: Spread::of(&bracketed),
        paired: Spread::of(&paired),
    }
}

/// `median (min–max)` at `digits` decimals, each value times `scale`.
fn cell(s: &Spread, scale: f64, digits: usize) -> String {
    if !s.median.is_finite() {
        return "–".into();
    }
    format!(
        "{:.d$} ({:.d$} to {:.d$})",
        s.median * scale,
        s.min * scale,
        s.max * scale,
        d = digits
    )
}

/// The result as the README shows it: one table row per tracker, the
/// noise of both rules and the load, every number from `r`.
pub fn markdown(r: &SlowdownResult) -> String {
    let mut out = String::from(
        "| tracker | slowdown % | slowdown %, one twin before (`--baseline`) | hold, ms per interval | sampler µs per armed page | guest µs per armed page | tracked faults |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for t in &r.trackers {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            t.tracker,
            cell(&t.slowdown, 100.0, 1),
            cell(&t.slowdown_paired, 100.0, 1),
            cell(&t.hold_us_mean, 1e-3, 2),
            cell(&t.arm_us_per_page, 1.0, 3),
            cell(&t.guest_us_per_armed_page, 1.0, 2),
            cell(&t.tracked_faults, 1.0, 0),
        );
    }
    out += &format!(
        "\nMedians over {} rounds (min to max in brackets). The same rules applied to \
         {} untracked runs (true slowdown 0): between the runs around it {} %, against \
         the run before {} %. {}\n",
        r.rounds,
        r.noise.samples,
        cell(&r.noise.bracketed, 100.0, 1),
        cell(&r.noise.paired, 100.0, 1),
        r.load.sentence(),
    );
    out
}

/// The guest page size of `tracker`'s runs, and of its untracked runs.
pub fn guest_pages(tracker: TrackerKind) -> GuestPageSize {
    crate::track::dirty_log::default_guest_pages(tracker)
}

/// Round `round`'s tracker order: the plan's, rotated by one per round,
/// so no tracker always runs first after the build or last; then
/// trackers of the same guest page size are put together (stably, in
/// the order their size first appears), so they share untracked runs.
pub fn order(trackers: &[TrackerKind], round: u64) -> Vec<TrackerKind> {
    let mut v = trackers.to_vec();
    if !v.is_empty() {
        let k = (round % v.len() as u64) as usize;
        v.rotate_left(k);
    }
    let first_seen: Vec<GuestPageSize> = v.iter().fold(Vec::new(), |mut seen, &t| {
        if !seen.contains(&guest_pages(t)) {
            seen.push(guest_pages(t));
        }
        seen
    });
    v.sort_by_key(|&t| first_seen.iter().position(|&p| p == guest_pages(t)));
    v
}

/// The run of `tracker` (`TrackerKind::None`: untracked, at `pages`).
fn config(plan: &SlowdownPlan, tracker: TrackerKind, pages: GuestPageSize, seed: u64) -> RunConfig {
    RunConfig {
        guest: GuestSource::Builtin(GUEST.into()),
        mem: plan.mem,
        wss: plan.wss,
        seed,
        params: Vec::new(),
        duration: plan.duration,
        interval: plan.interval,
        tracker,
        estimator: EstimatorKind::Esx,
        sample_pages: plan.sample_pages,
        esx: EsxGains::default(),
        damon: DamonConfig::default(),
        follow: FollowConfig::default(),
        warmup_intervals: WARMUP_INTERVALS,
        guest_pages: pages,
        vcpus: 1,
        cpu: crate::vmm::affinity::Placement::Auto,
        baseline: false,
        out_dir: None,
        plot: false,
        live: false,
    }
}

/// The `run` command one tracked run stands for.
fn command(plan: &SlowdownPlan) -> String {
    format!(
        "kvm-wss run --guest {GUEST} --wss {} --mem {} --tracker T --sample-pages {} \
         --interval {}ms --duration {}ms --baseline",
        super::overcommit::size_label(plan.wss),
        super::overcommit::size_label(plan.mem),
        plan.sample_pages,
        plan.interval.as_millis(),
        plan.duration.as_millis()
    )
}

/// Runs `cfg` to its end and returns its summary.
fn run_to_end(cfg: &RunConfig, dir: &Path) -> Result<Summary, BenchError> {
    let out = crate::run::run(cfg, dir).map_err(|e| BenchError::Run(Box::new(e)))?;
    let what = format!("{GUEST} under tracker {}", cfg.tracker.name());
    match out.end {
        RunEnd::Duration => Ok(out.summary),
        RunEnd::Error(source) => Err(BenchError::RunEnded { what, source }),
        end => Err(BenchError::Guest(format!("{what} ended with {end:?}"))),
    }
}

/// Runs the plan; progress goes to stderr.
pub fn slowdown(plan: &SlowdownPlan) -> Result<SlowdownResult, BenchError> {
    if plan.rounds == 0 {
        return Err(BenchError::NoRounds);
    }
    let load = LoadWatch::start();
    let dir: PathBuf =
        std::env::temp_dir().join(format!("kvm-wss-bench-slowdown-{}", std::process::id()));
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        let seed = 1 + round;
        let mut r: Round = Vec::new();
        // The guest ops of the last run, if it was untracked at `pages`.
        let untracked_at = |r: &Round, pages: &str| match r.last() {
            Some(Run::Untracked {
                guest_pages,
                guest_ops_per_s,
            }) if *guest_pages == pages => Some(*guest_ops_per_s),
            _ => None,
        };
        for kind in order(&plan.trackers, round) {
            let pages = guest_pages(kind);
            let untracked = config(plan, TrackerKind::None, pages, seed);
            let run_untracked = |r: &mut Round| -> Result<f64, BenchError> {
                let ops = run_to_end(&untracked, &dir.join("untracked"))?.guest_ops_per_s;
                r.push(Run::Untracked {
                    guest_pages: pages.name(),
                    guest_ops_per_s: ops,
                });
                Ok(ops)
            };
            let before = match untracked_at(&r, pages.name()) {
                Some(ops) => ops,
                None => run_untracked(&mut r)?,
            };
            let s = run_to_end(&config(plan, kind, pages, seed), &dir.join(kind.name()))?;
            let run = TrackedRun::of(&s);
            r.push(Run::Tracked {
                tracker: kind.name(),
                guest_pages: pages.name(),
                run,
            });
            let after = run_untracked(&mut r)?;
            eprintln!(
                "round {}/{} {:>9}: slowdown {:+.1}%, hold {:.0} us per interval, {:.3} us per armed page",
                round + 1,
                plan.rounds,
                kind.name(),
                100.0 * bracketed_slowdown(run.guest_ops_per_s, before, after).unwrap_or(f64::NAN),
                run.hold_us_mean,
                run.arm_us_per_page.unwrap_or(f64::NAN),
            );
        }
        rounds.push(r);
    }
    // The run folders only held what the summaries above were read from.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(SlowdownResult {
        what: "guest slowdown per tracker against the mean of the untracked runs before and \
               after each tracked run; min/median/max over rounds",
        command: command(plan),
        rounds: plan.rounds,
        load: load.finish(),
        trackers: plan
            .trackers
            .iter()
            .filter_map(|k| summarise_tracker(&rounds, k.name()))
            .collect(),
        noise: noise(&rounds),
        runs: rounds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(ops: f64, hold: f64) -> TrackedRun {
        TrackedRun {
            guest_ops_per_s: ops,
            duration_s: 6.0,
            hold_us_mean: hold,
            arm_us_per_page: Some(hold / 100.0),
            armed_pages_total: 60_000,
            tracked_faults: Some(1500),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn bracketed_rule_cancels_a_linear_drift() {
        // The host slows from 110 to 90 over three runs; a tracker costing
        // nothing runs at 100 in the middle.
        assert!(close(bracketed_slowdown(100.0, 110.0, 90.0).unwrap(), 0.0));
        assert!(close(paired_slowdown(100.0, 110.0).unwrap(), 1.0 / 11.0));
        assert!(close(bracketed_slowdown(90.0, 100.0, 100.0).unwrap(), 0.1));
        assert_eq!(bracketed_slowdown(90.0, 0.0, 0.0), None);
    }

    #[test]
    fn order_rotates_per_round() {
        let t = [
            TrackerKind::Uffd,
            TrackerKind::Mprotect,
            TrackerKind::DirtyLog,
        ];
        assert_eq!(order(&t, 0), t.to_vec());
        // Rotated to mprotect, dirty-log, uffd; uffd joins mprotect (2m).
        assert_eq!(
            order(&t, 1),
            vec![
                TrackerKind::Mprotect,
                TrackerKind::Uffd,
                TrackerKind::DirtyLog
            ]
        );
        assert_eq!(order(&t, 3), t.to_vec());
        assert!(order(&[], 2).is_empty());
    }

    fn untracked(pages: &'static str, ops: f64) -> Run {
        Run::Untracked {
            guest_pages: pages,
            guest_ops_per_s: ops,
        }
    }

    fn tracked_run(tracker: &'static str, pages: &'static str, ops: f64, hold: f64) -> Run {
        Run::Tracked {
            tracker,
            guest_pages: pages,
            run: tracked(ops, hold),
        }
    }

    fn rounds() -> Vec<Round> {
        vec![
            vec![
                untracked("2m", 100.0),
                tracked_run("uffd", "2m", 97.0, 400.0),
                untracked("2m", 100.0),
                tracked_run("mprotect", "2m", 75.6, 18_000.0),
                untracked("2m", 80.0),
                untracked("4k", 50.0),
                tracked_run("dirty-log", "4k", 49.0, 30.0),
                untracked("4k", 50.0),
            ],
            vec![
                untracked("2m", 100.0),
                tracked_run("mprotect", "2m", 86.0, 17_000.0),
                untracked("2m", 104.0),
                tracked_run("uffd", "2m", 99.0, 300.0),
                untracked("2m", 96.0),
            ],
            vec![
                untracked("2m", 100.0),
                tracked_run("uffd", "2m", 95.0, 500.0),
                untracked("2m", 100.0),
                // Not bracketed by runs of its own page size: left out.
                tracked_run("dirty-log", "4k", 10.0, 30.0),
                untracked("4k", 50.0),
            ],
        ]
    }

    #[test]
    fn summarises_each_tracker_over_rounds() {
        let r = rounds();
        let u = summarise_tracker(&r, "uffd").unwrap();
        assert_eq!(u.rounds, 3);
        // 1 - 97/100, 1 - 99/100, 1 - 95/100.
        assert!(close(u.slowdown.min, 0.01));
        assert!(close(u.slowdown.median, 0.03));
        assert!(close(u.slowdown.max, 0.05));
        // Paired against the run before: 1 - 99/104 in round 2.
        assert!(close(u.slowdown_paired.median, 1.0 - 99.0 / 104.0));
        assert_eq!(u.hold_us_mean.median, 400.0);
        assert!(close(u.arm_us_per_page.max, 5.0));
        // 0.03 of 6 s over 60,000 pages: 3 us per page.
        assert!(close(u.guest_us_per_armed_page.median, 3.0));
        assert_eq!(u.tracked_faults.median, 1500.0);

        let m = summarise_tracker(&r, "mprotect").unwrap();
        assert_eq!(m.rounds, 2);
        // 1 - 75.6/90 = 0.16, 1 - 86/102 = 16/102.
        assert!(close(m.slowdown.min, 16.0 / 102.0));
        assert!(close(m.slowdown.max, 0.16));
        // Paired: 1 - 75.6/100 = 0.244, 1 - 86/100 = 0.14.
        assert!(close(m.slowdown_paired.max, 0.244));

        // Only round 1's dirty-log run has 4k untracked runs on both sides.
        let d = summarise_tracker(&r, "dirty-log").unwrap();
        assert_eq!(d.rounds, 1);
        assert!(close(d.slowdown.median, 0.02));
        assert!(summarise_tracker(&r, "none").is_none());
    }

    #[test]
    fn noise_applies_both_rules_to_inner_untracked_runs() {
        let n = noise(&rounds());
        // 100 between 100 and 80; 104 between 100 and 96; none across
        // page sizes (round 1's 80, 50, 50 and round 3's 100, 100, 50).
        assert_eq!(n.samples, 2);
        assert!(close(n.bracketed.min, 1.0 - 100.0 / 90.0));
        assert!(close(n.bracketed.max, 1.0 - 104.0 / 98.0));
        assert!(close(n.paired.min, -0.04));
        assert!(close(n.paired.max, 0.0));
    }

    #[test]
    fn order_puts_trackers_of_one_guest_page_size_together() {
        let t = [
            TrackerKind::Uffd,
            TrackerKind::DirtyLog,
            TrackerKind::Mprotect,
        ];
        assert_eq!(
            order(&t, 0),
            vec![
                TrackerKind::Uffd,
                TrackerKind::Mprotect,
                TrackerKind::DirtyLog
            ]
        );
        assert_eq!(
            order(&t, 1),
            vec![
                TrackerKind::DirtyLog,
                TrackerKind::Mprotect,
                TrackerKind::Uffd
            ]
        );
    }

    #[test]
    fn markdown_has_a_row_per_tracker_from_the_figures() {
        let r = rounds();
        let result = SlowdownResult {
            what: "",
            command: String::new(),
            rounds: 3,
            load: HostLoad {
                cpus: 2,
                load_before: [0.4, 0.0, 0.0],
                load_after: [1.2, 0.0, 0.0],
                quiet: true,
            },
            trackers: ["uffd", "mprotect"]
                .iter()
                .filter_map(|t| summarise_tracker(&r, t))
                .collect(),
            noise: noise(&r),
            runs: Vec::new(),
        };
        let md = markdown(&result);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 3, "{md}");
        assert_eq!(
            rows[1],
            "| uffd | 3.0 (1.0 to 5.0) | 4.8 (3.0 to 5.0) | 0.40 (0.30 to 0.50) \
             | 4.000 (3.000 to 5.000) | 3.00 (1.00 to 5.00) | 1500 (1500 to 1500) |"
        );
        assert!(md.contains("Load average 0.4 before, 1.2 after, on 2 CPUs: quiet."));
    }

    #[test]
    fn command_names_the_setting() {
        let plan = SlowdownPlan {
            trackers: vec![TrackerKind::Uffd],
            rounds: 5,
            wss: 4 << 20,
            mem: 512 << 20,
            sample_pages: 3200,
            interval: Duration::from_millis(100),
            duration: Duration::from_secs(6),
        };
        assert_eq!(
            command(&plan),
            "kvm-wss run --guest seq --wss 4M --mem 512M --tracker T --sample-pages 3200 \
             --interval 100ms --duration 6000ms --baseline"
        );
    }
}
