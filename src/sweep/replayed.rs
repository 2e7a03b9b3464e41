//! `kvm-wss sweep --replay RUN_DIR`: the sweep's grid evaluated by replay
//! against a run's recorded truth (`run --record`) instead of live runs.
//!
//! Each replayed setting becomes the same kind of record a live run gives
//! (a [`RunRecord`] holding a summary.json-shaped [`Summary`], computed by
//! `replay::summarize`), so the table, sweep.csv, sweep.md, the heat maps
//! and the recommendation come from the live sweep's own code. What only a
//! live run measures ([`super::UNKNOWN_IN_REPLAY`]: CPU, fault cost, slowdown...)
//! is absent, not 0; tracked faults are the caught touches, so the
//! recommendation ranks settings by caught touches per second of the
//! recording. Seeds play the part of a live sweep's repeats: a setting's
//! figures are averaged over its seeds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::jobs::{PlanFile, PlanSetting};
use super::{
    Collector, DamonRegions, RunRecord, Setting, SweepError, SweepOutcome, Targets, expand_grid,
    format_interval,
};
use crate::estimate::{DamonConfig, EstimatorConfig, EstimatorKind, EsxGains};
use crate::record::{RecordHeader, Recording};
use crate::replay::{ReplayError, ReplaySettings};
use crate::report::summary::Summary;

/// The lists a replay sweep crosses. `None` takes the recorded run's value.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayGrid {
    pub estimators: Vec<EstimatorKind>,
    pub sample_pages: Vec<u64>,
    /// Each a whole number of recorded ticks.
    pub intervals: Vec<Duration>,
    pub esx_gains: Option<Vec<EsxGains>>,
    pub damon_regions: Option<Vec<DamonRegions>>,
    /// The seeds each setting is replayed with (its repeats).
    pub seeds: Option<Vec<u64>>,
}

/// A checked replay sweep, ready to run.
pub struct ReplayPlan {
    pub run_dir: PathBuf,
    pub recording: Recording,
    /// The grid, each setting with its replay settings (seed: the first).
    pub settings: Vec<(Setting, ReplaySettings)>,
    pub seeds: Vec<u64>,
    pub targets: Targets,
    pub out_dir: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
}

/// Why a replay sweep cannot start: each is bad input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ReplayPlanError {
    #[error("{} is not a recorded run's folder (it lacks {})", .0.display(), crate::record::TRACE_FILE)]
    NoTrace(PathBuf),
    #[error("cannot read the recording in {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: crate::record::RecordError,
    },
    #[error(
        "--interval {} is not a whole number of the recorded tick ({}); give multiples of it",
        format_interval(*.interval),
        format_interval(*.tick)
    )]
    Interval { interval: Duration, tick: Duration },
    #[error(
        "--interval {} is longer than the recording ({})",
        format_interval(*.interval),
        format_interval(*.recorded)
    )]
    LongerThanRecording {
        interval: Duration,
        recorded: Duration,
    },
    #[error("the recording cannot serve {setting}")]
    Setting {
        setting: String,
        #[source]
        source: ReplayError,
    },
    #[error("--{0} needs at least one value")]
    EmptyList(&'static str),
    #[error("{} already holds a {}; choose another --out", .0.display(), super::SWEEP_CSV)]
    SweepExists(PathBuf),
}

/// `SLOW:FAST`, the gains of ESX (checked against the estimator's bounds
/// when the grid is planned).
pub fn parse_esx_gains(s: &str) -> Result<EsxGains, String> {
    let (slow, fast) = pair(s)?;
    Ok(EsxGains { slow, fast })
}

/// `MIN:MAX`, the fewest and most DAMON regions.
pub fn parse_damon_regions(s: &str) -> Result<DamonRegions, String> {
    let (min, max) = pair(s)?;
    Ok(DamonRegions { min, max })
}

fn pair<T: std::str::FromStr>(s: &str) -> Result<(T, T), String> {
    let bad = || format!("{s:?} is not a pair A:B");
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// Values in first-seen order, each once.
fn dedup<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for &v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Every combination of the grid's lists that the recording `rec` can
/// serve, in the live sweep's order (estimator, sample pages, interval),
/// each followed by its gains (esx) or region bounds (damon). Refuses the
/// whole grid when any interval is not a whole number of recorded ticks or
/// is longer than the recording, or any setting cannot be replayed on it.
pub fn expand_replay_grid(
    rec: &Recording,
    grid: &ReplayGrid,
) -> Result<Vec<(Setting, ReplaySettings)>, ReplayPlanError> {
    let h = &rec.header;
    let lists = [
        ("estimator", grid.estimators.is_empty()),
        ("sample-pages", grid.sample_pages.is_empty()),
        ("interval", grid.intervals.is_empty()),
        (
            "esx-gains",
            grid.esx_gains.as_ref().is_some_and(Vec::is_empty),
        ),
        (
            "damon-regions",
            grid.damon_regions.as_ref().is_some_and(Vec::is_empty),
        ),
        ("seeds", grid.seeds.as_ref().is_some_and(Vec::is_empty)),
    ];
    if let Some((name, _)) = lists.iter().find(|(_, empty)| *empty) {
        return Err(ReplayPlanError::EmptyList(name));
    }
    let recorded = ReplaySettings::recorded(h);
    let tick = Duration::from_nanos(h.tick_ns);
    for &interval in &grid.intervals {
        let ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        if h.tick_ns == 0 || ns == 0 || !ns.is_multiple_of(h.tick_ns) {
            return Err(ReplayPlanError::Interval { interval, tick });
        }
        // Not one full interval to score: nothing to measure.
        let recorded = u64::try_from(rec.ticks.len()).unwrap_or(u64::MAX);
        if ns / h.tick_ns > recorded {
            return Err(ReplayPlanError::LongerThanRecording {
                interval,
                recorded: Duration::from_nanos(h.tick_ns.saturating_mul(recorded)),
            });
        }
    }
    let gains = dedup(grid.esx_gains.as_deref().unwrap_or(&[h.estimator.esx]));
    let recorded_regions = DamonRegions {
        min: h.estimator.damon.min_regions,
        max: h.estimator.damon.max_regions,
    };
    let regions = dedup(grid.damon_regions.as_deref().unwrap_or(&[recorded_regions]));
    let mut out = Vec::new();
    for base in expand_grid(
        &[h.tracker],
        &grid.estimators,
        &grid.sample_pages,
        &grid.intervals,
    ) {
        let kind = base.estimator.unwrap_or(EstimatorKind::Esx);
        let variants: Vec<Setting> = match kind {
            EstimatorKind::Esx => gains
                .iter()
                .map(|&g| Setting {
                    esx_gains: Some(g),
                    ..base
                })
                .collect(),
            EstimatorKind::Damon => regions
                .iter()
                .map(|&r| Setting {
                    damon_regions: Some(r),
                    ..base
                })
                .collect(),
            EstimatorKind::Exhaustive | EstimatorKind::Curve | EstimatorKind::Follow => vec![base],
        };
        for setting in variants {
            let settings = replay_settings(&recorded, h, &setting);
            crate::replay::check(h, &settings).map_err(|source| ReplayPlanError::Setting {
                setting: setting.args(),
                source,
            })?;
            out.push((setting, settings));
        }
    }
    Ok(out)
}

/// The replay settings of `setting` on the recording `h`: the recorded
/// run's, changed where the setting says.
fn replay_settings(
    recorded: &ReplaySettings,
    h: &RecordHeader,
    setting: &Setting,
) -> ReplaySettings {
    let r = &recorded.estimator;
    let interval_ns = u64::try_from(setting.interval.as_nanos()).unwrap_or(u64::MAX);
    ReplaySettings {
        estimator: EstimatorConfig {
            kind: setting.estimator.unwrap_or(r.kind),
            domain_pages: r.domain_pages,
            sample_pages: setting.sample_pages.unwrap_or(r.sample_pages),
            esx: setting.esx_gains.unwrap_or(r.esx),
            damon: DamonConfig {
                min_regions: setting.damon_regions.map_or(r.damon.min_regions, |d| d.min),
                max_regions: setting.damon_regions.map_or(r.damon.max_regions, |d| d.max),
                ticks_per_interval: r.damon.ticks_per_interval,
            },
            follow: r.follow,
        },
        interval_ticks: u32::try_from(interval_ns / h.tick_ns.max(1)).unwrap_or(u32::MAX),
        ..*recorded
    }
}

/// Reads the recording in `run_dir` and checks the whole grid against it.
/// Without `out_dir`, the outputs go to a new folder under runs/.
pub fn plan_replay(
    run_dir: &Path,
    grid: &ReplayGrid,
    targets: Targets,
    out_dir: Option<PathBuf>,
    progress: bool,
) -> Result<ReplayPlan, ReplayPlanError> {
    let path = run_dir.join(crate::record::TRACE_FILE);
    if !path.is_file() {
        return Err(ReplayPlanError::NoTrace(run_dir.to_path_buf()));
    }
    let recording =
        crate::record::read(&path).map_err(|source| ReplayPlanError::Read { path, source })?;
    let settings = expand_replay_grid(&recording, grid)?;
    let seeds = dedup(grid.seeds.as_deref().unwrap_or(&[recording.header.seed]));
    let out_dir = out_dir
        .unwrap_or_else(|| super::default_out_dir(&format!("replay-{}", recording.header.guest)));
    if out_dir.join(super::SWEEP_CSV).exists() {
        return Err(ReplayPlanError::SweepExists(out_dir));
    }
    Ok(ReplayPlan {
        run_dir: run_dir.to_path_buf(),
        recording,
        settings,
        seeds,
        targets,
        out_dir,
        progress,
    })
}

impl ReplayPlan {
    /// The plan as the sweep's reports take it: repeat i is seed i.
    fn plan_file(&self) -> PlanFile {
        PlanFile {
            guest: self.recording.header.guest.clone(),
            repeat: u32::try_from(self.seeds.len()).unwrap_or(u32::MAX),
            targets: self.targets,
            baseline: false,
            settings: self
                .settings
                .iter()
                .map(|(s, _)| PlanSetting {
                    tracker: s.tracker,
                    estimator: s.estimator,
                    sample_pages: s.sample_pages,
                    interval_ns: u64::try_from(s.interval.as_nanos()).unwrap_or(u64::MAX),
                    seed: self.seeds.first().copied().unwrap_or(0),
                    // The recording replayed, then the setting as `run` options.
                    args: ["replay".to_string(), self.run_dir.display().to_string()]
                        .into_iter()
                        .chain(s.args().split(' ').map(str::to_string))
                        .collect(),
                })
                .collect(),
        }
    }

    /// What sweep.md says of where its rows come from.
    fn note(&self) -> String {
        let h = &self.recording.header;
        format!(
            "Replayed from the recording in {} ({} ticks of {}, {} {} at {} as recorded): no \
             guest ran, so fault cost, slowdown and CPU are unknown (`-`), and faults/s counts \
             the touches the setting would have caught per second of the recording.",
            self.run_dir.display(),
            self.recording.ticks.len(),
            format_interval(Duration::from_nanos(h.tick_ns)),
            h.tracker.name(),
            h.estimator.kind.name(),
            format_interval(Duration::from_nanos(h.interval_ns)),
        )
    }
}

/// The summary of `setting` replayed with `seed`, as a record of the
/// sweep: the costs a replay cannot know cleared where the summary can
/// hold "unknown" (the rest are left out of sweep.csv by
/// [`super::UNKNOWN_IN_REPLAY`]).
fn replay_one(rec: &Recording, settings: &ReplaySettings) -> Result<Summary, ReplayError> {
    let rows = crate::replay::replay(rec, settings)?;
    let mut s = crate::replay::summarize(rec, settings, &rows);
    s.fault_cost_us = None;
    s.arm_us_per_page = None;
    s.guest_us_per_armed_page = None;
    s.slowdown = None;
    s.baseline_guest_ops_per_s = None;
    s.host = None;
    Ok(s)
}

/// Replays every setting with every seed, on as many threads as there are
/// cores, then writes what a live sweep writes into the plan's folder.
/// Stops starting replays after Ctrl-C or a failed replay; `Err` only when
/// the folder or sweep.csv cannot be created.
pub fn run_replay_sweep(plan: &ReplayPlan) -> Result<SweepOutcome, SweepError> {
    let dir = &plan.out_dir;
    std::fs::create_dir_all(dir).map_err(|source| SweepError::OutDir {
        path: dir.clone(),
        source,
    })?;
    let settings: Vec<Setting> = plan.settings.iter().map(|(s, _)| *s).collect();
    let mut collector = Collector::create(dir, plan.plan_file(), settings)?;
    collector.note = Some(plan.note());
    let jobs: Vec<(usize, u32, u64)> = (0..plan.settings.len())
        .flat_map(|i| {
            plan.seeds
                .iter()
                .enumerate()
                .map(move |(r, &seed)| (i, u32::try_from(r).unwrap_or(u32::MAX), seed))
        })
        .collect();
    let bar = if plan.progress {
        ProgressBar::new(jobs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:20} {pos}/{len} replays")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results = replay_all(plan, &jobs, &bar);
    bar.finish_and_clear();
    let mut failure = None;
    for ((setting, repeat, seed), result) in jobs.iter().copied().zip(results) {
        // Missing: not started (Ctrl-C, or after a failed replay).
        let Some(result) = result else { break };
        let summary = match result {
            Ok(s) => s,
            Err(source) => {
                failure = Some(SweepError::Replay {
                    setting: plan.settings[setting].0.args(),
                    source,
                });
                break;
            }
        };
        let record = RunRecord {
            setting,
            repeat,
            seed,
            run_dir: String::new(),
            summary,
            replayed: true,
        };
        if let Err(e) = collector.push(setting, record) {
            failure = Some(SweepError::Report(e));
            break;
        }
    }
    Ok(collector.finish(crate::run::interrupted(), failure))
}

type Outcome = Option<Result<Summary, ReplayError>>;

/// Replays `jobs` (setting index, repeat, seed) on the work queue; the
/// results in job order, `None` for jobs not started (after Ctrl-C or a
/// failed replay).
fn replay_all(plan: &ReplayPlan, jobs: &[(usize, u32, u64)], bar: &ProgressBar) -> Vec<Outcome> {
    crate::work_queue::run_jobs(
        jobs,
        |&(setting, _, seed)| {
            let settings = ReplaySettings {
                seed,
                ..plan.settings[setting].1
            };
            let result = replay_one(&plan.recording, &settings);
            bar.inc(1);
            result
        },
        Result::is_err,
    )
}

/// What `sweep --replay` takes from the recording instead, or cannot do.
pub const REPLAY_CONFLICTS: [&str; 16] = [
    "guest",
    "tracker",
    "emit_jobs",
    "duration",
    "mem",
    "wss",
    "params",
    "seed",
    "esx_slow_gain",
    "esx_fast_gain",
    "damon_min_regions",
    "damon_max_regions",
    "damon_ticks",
    "warmup",
    "guest_pages",
    "repeat",
];

impl crate::cli::SweepArgs {
    /// `--replay RUN_DIR`: reads the recording and checks the whole grid
    /// against it, so that a setting it cannot serve is refused before
    /// the first replay.
    pub fn to_replay_plan(
        &self,
        run_dir: &std::path::Path,
    ) -> Result<ReplayPlan, crate::cli::UsageError> {
        let targets = self.targets()?;
        let grid = ReplayGrid {
            estimators: self.estimator.clone(),
            sample_pages: self.sample_pages.clone(),
            intervals: self.interval.clone(),
            esx_gains: (!self.esx_gains.is_empty()).then(|| self.esx_gains.clone()),
            damon_regions: (!self.damon_regions.is_empty()).then(|| self.damon_regions.clone()),
            seeds: (!self.seeds.is_empty()).then(|| self.seeds.clone()),
        };
        Ok(plan_replay(
            run_dir,
            &grid,
            targets,
            self.out.clone(),
            !self.common.quiet,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{PageSet, Tick};
    use crate::sweep::{aggregate, recommend};
    use crate::track::TrackerKind;

    const TICK_MS: u64 = 100;

    /// An esx run recorded at 100 ms ticks over a domain of 1000 pages.
    fn header() -> RecordHeader {
        RecordHeader {
            guest: "scripted".into(),
            tracker: TrackerKind::Uffd,
            estimator: EstimatorConfig {
                kind: EstimatorKind::Esx,
                domain_pages: 1000,
                sample_pages: 50,
                esx: EsxGains::default(),
                damon: DamonConfig {
                    ticks_per_interval: 5,
                    ..DamonConfig::default()
                },
                follow: Default::default(),
            },
            seed: 7,
            interval_ns: TICK_MS * 1_000_000,
            ticks_per_interval: 1,
            tick_ns: TICK_MS * 1_000_000,
            warmup_intervals: 1,
            mem_pages: 4096,
            wss_bytes: 1000 * 4096,
            vcpus: 1,
        }
    }

    /// 80 ticks of a guest touching a window of 300 pages that moves.
    fn recording() -> Recording {
        let ticks = (0..80u64)
            .map(|i| {
                let from = (i * 41) % 700;
                Tick {
                    t_end_ns: (i + 1) * TICK_MS * 1_000_000,
                    ran_ns: TICK_MS * 1_000_000 - 1000,
                    guest_ops: 100,
                    phase: 0,
                    stopped: false,
                    close: None,
                    touched: PageSet::from_sorted(from..from + 300),
                    written: PageSet::from_sorted((from..from + 300).filter(|p| p % 2 == 0)),
                }
            })
            .collect();
        Recording {
            header: header(),
            start: PageSet::default(),
            ticks,
            end: crate::report::summary::EndKind::Duration,
        }
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn grid() -> ReplayGrid {
        ReplayGrid {
            estimators: vec![
                EstimatorKind::Esx,
                EstimatorKind::Damon,
                EstimatorKind::Exhaustive,
            ],
            sample_pages: vec![20, 100, 20],
            intervals: vec![ms(500), ms(1000)],
            esx_gains: Some(vec![
                EsxGains {
                    slow: 0.125,
                    fast: 0.5,
                },
                EsxGains {
                    slow: 0.25,
                    fast: 0.75,
                },
            ]),
            damon_regions: Some(vec![DamonRegions { min: 5, max: 50 }]),
            seeds: Some(vec![1, 2]),
        }
    }

    #[test]
    fn the_grid_crosses_gains_with_esx_only_and_regions_with_damon_only() {
        let h = header();
        let rec = recording();
        let g = expand_replay_grid(&rec, &grid()).expect("valid");
        let of = |k: EstimatorKind| g.iter().filter(|(s, _)| s.estimator == Some(k)).count();
        // esx: 2 sample sizes x 2 intervals x 2 gains; damon and exhaustive once per interval.
        assert_eq!(of(EstimatorKind::Esx), 8);
        assert_eq!(of(EstimatorKind::Damon), 2);
        assert_eq!(of(EstimatorKind::Exhaustive), 2);
        assert_eq!(g.len(), 12);
        for (s, r) in &g {
            assert_eq!(s.tracker, TrackerKind::Uffd, "the recording's tracker");
            assert_eq!(
                u64::from(r.interval_ticks) * TICK_MS,
                s.interval.as_millis() as u64
            );
            assert_eq!((r.seed, r.warmup_intervals), (7, 1), "the recorded run's");
            assert_eq!(r.estimator.domain_pages, 1000);
            assert_eq!(
                s.esx_gains.is_some(),
                s.estimator == Some(EstimatorKind::Esx)
            );
            assert_eq!(
                s.damon_regions.is_some(),
                s.estimator == Some(EstimatorKind::Damon)
            );
            if let Some(gains) = s.esx_gains {
                assert_eq!(r.estimator.esx, gains);
                assert_eq!(Some(r.estimator.sample_pages), s.sample_pages);
            }
            if let Some(d) = s.damon_regions {
                assert_eq!(
                    (r.estimator.damon.min_regions, r.estimator.damon.max_regions),
                    (5, 50)
                );
                assert_eq!(r.estimator.damon.ticks_per_interval, 5, "as recorded");
                assert_eq!((d.min, d.max), (5, 50));
            }
        }
        assert_eq!(
            g[1].0.args(),
            "--tracker uffd --estimator esx --sample-pages 20 --interval 500ms \
             --esx-slow-gain 0.25 --esx-fast-gain 0.75"
        );
        // Without lists of gains or bounds: the recorded run's.
        let plain = ReplayGrid {
            esx_gains: None,
            damon_regions: None,
            ..grid()
        };
        let g = expand_replay_grid(&rec, &plain).expect("valid");
        assert_eq!(g.len(), 8);
        assert!(
            g.iter()
                .all(|(s, r)| s.esx_gains.is_none_or(|x| x == h.estimator.esx)
                    && r.estimator.esx == h.estimator.esx
                    && r.estimator.damon.max_regions == h.estimator.damon.max_regions)
        );
    }

    #[test]
    fn settings_the_trace_cannot_serve_refuse_the_whole_grid() {
        let rec = recording();
        let refuse = |grid: ReplayGrid| expand_replay_grid(&rec, &grid).expect_err("refused");
        let e = refuse(ReplayGrid {
            intervals: vec![ms(1000), ms(250)],
            ..grid()
        });
        assert!(matches!(e, ReplayPlanError::Interval { interval, .. } if interval == ms(250)));
        assert_eq!(
            e.to_string(),
            "--interval 250ms is not a whole number of the recorded tick (100ms); give multiples of it"
        );
        // The recording holds 80 ticks of 100 ms.
        let e = refuse(ReplayGrid {
            intervals: vec![ms(9000)],
            ..grid()
        });
        assert_eq!(
            e.to_string(),
            "--interval 9s is longer than the recording (8s)"
        );
        assert!(
            expand_replay_grid(
                &rec,
                &ReplayGrid {
                    intervals: vec![ms(8000)],
                    ..grid()
                }
            )
            .is_ok()
        );
        // 3 ticks cannot be split into damon's 5.
        let e = refuse(ReplayGrid {
            intervals: vec![ms(300)],
            ..grid()
        });
        let ReplayPlanError::Setting { setting, source } = e else {
            panic!("not a setting error: {e}");
        };
        assert!(setting.contains("--estimator damon"), "{setting}");
        assert!(matches!(source, ReplayError::TicksDoNotDivide { .. }));
        // More pages than the domain holds.
        assert!(matches!(
            refuse(ReplayGrid {
                sample_pages: vec![5000],
                ..grid()
            }),
            ReplayPlanError::Setting { .. }
        ));
        assert!(matches!(
            refuse(ReplayGrid {
                esx_gains: Some(vec![EsxGains {
                    slow: 0.0,
                    fast: 0.5
                }]),
                ..grid()
            }),
            ReplayPlanError::Setting { .. }
        ));
        assert!(matches!(
            refuse(ReplayGrid {
                seeds: Some(vec![]),
                ..grid()
            }),
            ReplayPlanError::EmptyList("seeds")
        ));
    }

    #[test]
    fn gains_and_bounds_parse_as_pairs() {
        assert_eq!(
            parse_esx_gains("0.1:0.5"),
            Ok(EsxGains {
                slow: 0.1,
                fast: 0.5
            })
        );
        assert_eq!(
            parse_damon_regions("10:1000"),
            Ok(DamonRegions { min: 10, max: 1000 })
        );
        for bad in ["0.1", "0.1:x", ":", "1:2:3"] {
            assert!(parse_esx_gains(bad).is_err(), "{bad}");
        }
        assert!(parse_damon_regions("-1:5").is_err());
    }

    /// Replayed records go through the live sweep's aggregation and
    /// recommendation rule: the outcome is what `aggregate` and
    /// `recommend` give for the same records, the fault rate is caught
    /// touches per second of the recording, and what a replay cannot
    /// know is absent where a live record would show it.
    #[test]
    fn replayed_records_feed_the_live_sweeps_recommender() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rec = recording();
        let settings = expand_replay_grid(&rec, &grid()).expect("valid");
        let plan = ReplayPlan {
            run_dir: PathBuf::from("rec"),
            recording: rec,
            settings,
            seeds: vec![1, 2],
            targets: crate::analysis::recommend::DEFAULT_TARGETS,
            out_dir: dir.path().join("out"),
            progress: false,
        };
        let out = run_replay_sweep(&plan).expect("runs");
        assert!(out.failure.is_none());
        assert_eq!(out.records.len(), 24);
        assert_eq!((out.counts.planned, out.counts.counted), (24, 24));
        // In plan order, repeat i with seed i.
        assert_eq!(
            out.records
                .iter()
                .take(3)
                .map(|r| (r.setting, r.repeat, r.seed))
                .collect::<Vec<_>>(),
            [(0, 0, 1), (0, 1, 2), (1, 0, 1)]
        );
        let settings: Vec<Setting> = plan.settings.iter().map(|(s, _)| *s).collect();
        let aggs = aggregate(&settings, &out.records);
        assert_eq!(out.aggregates, aggs);
        assert_eq!(out.recommendation, recommend(&aggs, plan.targets));
        for r in &out.records {
            let s = &r.summary;
            assert!(r.replayed && r.run_dir.is_empty());
            assert_eq!(s.duration_s, 8.0);
            let caught = s.tracked_faults.expect("caught touches");
            assert_eq!(
                crate::analysis::derived::faults_per_s(s),
                Some(caught as f64 / 8.0)
            );
            assert_eq!(
                (s.fault_cost_us, s.slowdown, s.arm_us_per_page),
                (None, None, None)
            );
        }
        for a in &out.aggregates {
            assert_eq!(
                (a.fault_cost_us, a.slowdown, a.vmm_cpu_s),
                (None, None, None)
            );
            assert_eq!((a.finished, a.runs), (2, 2));
        }
        // The same summaries as live records would claim a CPU time of 0.
        let live: Vec<RunRecord> = out
            .records
            .iter()
            .map(|r| RunRecord {
                replayed: false,
                ..r.clone()
            })
            .collect();
        assert_eq!(aggregate(&settings, &live)[0].vmm_cpu_s, Some(0.0));
        // Exhaustive sees every page the window touched: no error at all.
        let exhaustive = out
            .aggregates
            .iter()
            .find(|a| a.setting.estimator == Some(EstimatorKind::Exhaustive))
            .expect("exhaustive");
        assert_eq!(exhaustive.mape, Some(0.0));
        let text = std::fs::read_to_string(plan.out_dir.join(crate::sweep::SWEEP_MD)).expect("md");
        assert!(
            text.contains("Replayed from the recording in rec (80 ticks of 100ms"),
            "{text}"
        );
        assert!(text.contains(&out.recommendation.message));
        let mut csv =
            csv::Reader::from_path(plan.out_dir.join(crate::sweep::SWEEP_CSV)).expect("csv");
        let header = csv.headers().expect("header").clone();
        let col = |name: &str| header.iter().position(|h| h == name).expect(name);
        let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 24);
        assert_eq!(&rows[0][col("esx_slow_gain")], "0.125");
        assert_eq!(&rows[0][col("vmm_cpu_s")], "", "unknown, not 0");
        assert_eq!(&rows[0][col("tracker_stats")], "");
        assert_ne!(&rows[0][col("mape")], "");
    }
}
