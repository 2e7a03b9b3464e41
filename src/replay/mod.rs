//! Replaying an estimator offline against a recorded trace
//! (`kvm-wss replay RUN_DIR`): no guest, no KVM. The estimator is driven
//! exactly as the live sampler drives it (the same random source, the same
//! order of `choose`, `observe_tick` and `end_interval`), and an armed page
//! counts as touched in a tick iff it is in that tick's recorded truth: the
//! touched set, or for a tracker that sees only writes the written set.
//! Boundaries are exact live (the guest is held at every tick), so that is
//! exactly what the live tracker caught, and replaying a run with its own
//! settings gives its estimates bit for bit.

pub mod args;
pub mod curve;
pub mod curve_cli;

use std::time::Duration;

use crate::estimate::{self, EstimateError, EstimatorConfig, PageIdx};
use crate::record::{PageSet, RecordHeader, Recording, Tick};
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::sampler::{interval_is_full, sampling_rng};

/// How to replay: an estimator, an interval as a whole number of recorded
/// ticks, a seed and the warm-up left out of the metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplaySettings {
    pub estimator: EstimatorConfig,
    /// Recorded ticks per replayed interval.
    pub interval_ticks: u32,
    pub seed: u64,
    pub warmup_intervals: usize,
}

impl ReplaySettings {
    /// The recorded run's own settings.
    pub fn recorded(h: &RecordHeader) -> Self {
        ReplaySettings {
            estimator: h.estimator,
            interval_ticks: h.ticks_per_interval,
            seed: h.seed,
            warmup_intervals: usize::try_from(h.warmup_intervals).unwrap_or(usize::MAX),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("bad estimator settings")]
    Estimator(#[from] EstimateError),
    #[error("--interval must be at least one recorded tick")]
    NoTicks,
    #[error(
        "an interval of {interval_ticks} recorded ticks cannot be split into the estimator's {estimator_ticks} ticks; give an --interval that is a multiple of {estimator_ticks}"
    )]
    TicksDoNotDivide {
        interval_ticks: u32,
        estimator_ticks: u32,
    },
    #[error("the estimator's domain ({settings} pages) is not the recording's ({recorded})")]
    Domain { settings: u64, recorded: u64 },
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
}

/// The replayed interval's length: the recorded interval when it has the
/// recorded number of ticks (so `full` is judged exactly as live), else
/// that many ticks.
pub fn interval_len(h: &RecordHeader, interval_ticks: u32) -> Duration {
    if interval_ticks == h.ticks_per_interval {
        Duration::from_nanos(h.interval_ns)
    } else {
        Duration::from_nanos(h.tick_ns.saturating_mul(u64::from(interval_ticks)))
    }
}

/// Checks that a recording with header `h` can serve `settings`, without
/// replaying anything: what `replay` refuses, refused up front (a replay
/// sweep checks its whole grid before the first replay).
pub fn check(h: &RecordHeader, settings: &ReplaySettings) -> Result<(), ReplayError> {
    build_checked(h, settings).map(|_| ())
}

/// The estimator of `settings` and its ticks per interval, once the
/// recording is known to serve them.
fn build_checked(
    h: &RecordHeader,
    settings: &ReplaySettings,
) -> Result<(Box<dyn estimate::Estimator>, u32), ReplayError> {
    if settings.estimator.domain_pages != h.estimator.domain_pages {
        return Err(ReplayError::Domain {
            settings: settings.estimator.domain_pages,
            recorded: h.estimator.domain_pages,
        });
    }
    let est = estimate::build(&settings.estimator)?;
    let k = settings.interval_ticks;
    if k == 0 {
        return Err(ReplayError::NoTicks);
    }
    let est_ticks = est.ticks_per_interval().max(1);
    if !k.is_multiple_of(est_ticks) {
        return Err(ReplayError::TicksDoNotDivide {
            interval_ticks: k,
            estimator_ticks: est_ticks,
        });
    }
    Ok((est, est_ticks))
}

/// One interval being replayed.
#[derive(Default)]
struct Open<'a> {
    ticks: Vec<&'a Tick>,
    sampled: u64,
    touched: u64,
}

/// Runs the estimator `settings` describes over `rec` and returns one row
/// per interval, as the live sampler would have written them. Costs the
/// replay cannot know (arm, collect, stall and hold times) are 0, and
/// `faults` is the number of caught touches (one fault each).
pub fn replay(rec: &Recording, settings: &ReplaySettings) -> Result<Vec<Row>, ReplayError> {
    replay_observed(rec, settings, |_| {})
}

/// What the estimator armed in one of its ticks and what of it was caught,
/// as the replay loop saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmedTick<'a> {
    /// The recorded ticks the estimator tick spans (indices into
    /// `Recording::ticks`).
    pub ticks: std::ops::Range<usize>,
    /// The pages armed (sampled) for the tick.
    pub armed: &'a [PageIdx],
    /// The armed pages the tick's recorded truth touched.
    pub caught: &'a [PageIdx],
}

/// [`replay`], also handing `on_tick` every estimator tick's armed and
/// caught pages as they are decided: the one replay loop, for callers that
/// draw what was sampled (the heat map) as well as for the rows.
pub fn replay_observed(
    rec: &Recording,
    settings: &ReplaySettings,
    on_tick: impl FnMut(ArmedTick<'_>),
) -> Result<Vec<Row>, ReplayError> {
    replay_inner(rec, settings, on_tick, |_, _| {})
}

/// The one replay loop: [`replay_observed`], also handing `on_close` the
/// estimator right after each interval closed, with the index of the
/// interval's last recorded tick (what the curve output reads).
fn replay_inner(
    rec: &Recording,
    settings: &ReplaySettings,
    mut on_tick: impl FnMut(ArmedTick<'_>),
    mut on_close: impl FnMut(&dyn estimate::Estimator, usize),
) -> Result<Vec<Row>, ReplayError> {
    let h = &rec.header;
    let (mut est, est_ticks) = build_checked(h, settings)?;
    let k = settings.interval_ticks;
    // Recorded ticks per estimator tick.
    let per_tick = k / est_ticks;
    let interval = interval_len(h, k);
    let writes_only = h.tracker.writes_only();

    let mut rng = sampling_rng(settings.seed);
    let mut rows = Vec::new();
    let mut open = Open::default();
    let mut armed: Vec<PageIdx> = Vec::new();
    // The pages resident at the first boundary and touched in all ticks
    // since: what was resident live at the boundary (see `Estimator::observe_population`), handed over where the
    // sampler hands it: at the first boundary and before each interval closes.
    let population = est.samples_population();
    let mut resident = rec.start.clone();
    if !rec.ticks.is_empty() {
        if population {
            est.observe_population(&resident);
        }
        armed = est.choose(&mut rng);
        open.sampled += armed.len() as u64;
    }
    let (mut sub, mut est_tick) = (0u32, 0u32);
    for (i, t) in rec.ticks.iter().enumerate() {
        open.ticks.push(t);
        if population {
            resident = resident.union(&t.touched);
        }
        sub += 1;
        let last = i + 1 == rec.ticks.len();
        if sub < per_tick && !last {
            continue;
        }
        // The estimator tick ends: what of the armed pages its recorded
        // ticks touched.
        let tick_ticks = &open.ticks[open.ticks.len() - sub as usize..];
        let caught: Vec<PageIdx> = armed
            .iter()
            .copied()
            .filter(|&p| {
                tick_ticks
                    .iter()
                    .any(|t| visible(t, writes_only).contains(p))
            })
            .collect();
        open.touched += caught.len() as u64;
        on_tick(ArmedTick {
            ticks: i + 1 - sub as usize..i + 1,
            armed: &armed,
            caught: &caught,
        });
        est.observe_tick(&caught);
        sub = 0;
        est_tick += 1;
        let closes = last || est_tick == est_ticks;
        if closes {
            if population {
                est.observe_population(&resident);
            }
            let e = est.end_interval();
            on_close(est.as_ref(), i);
            rows.push(close_row(&open, e, interval));
            open = Open::default();
            est_tick = 0;
        }
        if !last {
            armed = est.choose(&mut rng);
            open.sampled += armed.len() as u64;
        }
    }
    Ok(rows)
}

/// The pages of `t` a tracker could see: the written ones for a tracker
/// that sees writes only, else every touched one.
fn visible(t: &Tick, writes_only: bool) -> &PageSet {
    if writes_only { &t.written } else { &t.touched }
}

/// The row of a replayed interval.
fn close_row(open: &Open<'_>, e: estimate::IntervalEstimate, interval: Duration) -> Row {
    let ran = Duration::from_nanos(open.ticks.iter().map(|t| t.ran_ns).sum());
    let last = open.ticks.last();
    let interval_s = ran.as_secs_f64();
    Row {
        t_s: Duration::from_nanos(last.map_or(0, |t| t.t_end_ns)).as_secs_f64(),
        true_wss_pages: PageSet::union_len(open.ticks.iter().map(|t| &t.touched)),
        true_wss_write_pages: PageSet::union_len(open.ticks.iter().map(|t| &t.written)),
        est_wss_pages: Some(e.raw.pages),
        est_lo_pages: Some(e.raw.lo),
        est_hi_pages: Some(e.raw.hi),
        policy_wss_pages: Some(e.policy_pages),
        sampled_pages: open.sampled,
        touched_samples: open.touched,
        faults: open.touched,
        guest_ops: open.ticks.iter().map(|t| t.guest_ops).sum(),
        interval_s,
        full: interval_is_full(interval_s, interval, open.ticks.iter().any(|t| t.stopped)),
        phase: last.map_or(0, |t| t.phase),
        arm_us: 0.0,
        collect_us: 0.0,
        stall_us: 0.0,
        hold_us: 0.0,
        // A replay evicts nothing.
        ..Row::default()
    }
}

/// How many of `rows` carry exactly the estimate (measurement, its band,
/// and the policy value) the live run recorded for the same interval, and
/// how many intervals the live run closed: a replay with the recorded
/// settings must match all of them.
pub fn live_matches(rec: &Recording, rows: &[Row]) -> (usize, usize) {
    let live: Vec<Option<estimate::IntervalEstimate>> = rec
        .ticks
        .iter()
        .filter_map(|t| t.close.map(|c| c.estimate))
        .collect();
    let equal = live
        .iter()
        .zip(rows)
        .filter(|(l, r)| l.is_some() && **l == r.estimate())
        .count();
    (equal, live.len())
}

/// The summary of a replay, in the shape of a run's summary.json: the
/// settings replayed, the recorded run's guest figures, and the accuracy
/// and cost fields computed from the replayed rows by the same code as a
/// live run's. What only a live run measures (CPU, fault cost, host) is
/// left at zero or `None`.
pub fn summarize(rec: &Recording, settings: &ReplaySettings, rows: &[Row]) -> Summary {
    let h = &rec.header;
    let duration_s = Duration::from_nanos(rec.ticks.last().map_or(0, |t| t.t_end_ns)).as_secs_f64();
    let guest_ops: u64 = rec.ticks.iter().map(|t| t.guest_ops).sum();
    let mut s = Summary {
        guest: h.guest.clone(),
        tracker: h.tracker,
        estimator: Some(settings.estimator.kind),
        mem_pages: h.mem_pages,
        sample_pages: crate::run::reported_sample_pages(
            h.tracker,
            settings.estimator.kind,
            settings.estimator.sample_pages,
            h.estimator.domain_pages,
        ),
        interval_s: interval_len(h, settings.interval_ticks).as_secs_f64(),
        duration_s,
        intervals: rows.len() as u64,
        tracked_faults: Some(rows.iter().map(|r| r.faults).sum()),
        guest_ops,
        guest_ops_per_s: crate::analysis::derived::per_second(guest_ops, duration_s),
        wss_bytes: h.wss_bytes,
        vcpus: h.vcpus,
        domain_pages: h.estimator.domain_pages,
        seed: settings.seed,
        end: rec.end,
        ..Summary::default()
    };
    s.record_accuracy(rows, settings.warmup_intervals, h.truth_column());
    s.record_costs(rows, None);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{DamonConfig, EstimatorKind, EsxGains};
    use crate::record::{Close, TRACE_FILE};
    use crate::track::TrackerKind;

    const DOMAIN: u64 = 2000;

    fn header(kind: EstimatorKind, ticks: u32, tracker: TrackerKind) -> RecordHeader {
        RecordHeader {
            guest: "scripted".into(),
            tracker,
            estimator: EstimatorConfig {
                kind,
                domain_pages: DOMAIN,
                sample_pages: 300,
                esx: EsxGains::default(),
                damon: DamonConfig {
                    ticks_per_interval: ticks,
                    ..DamonConfig::default()
                },
                follow: Default::default(),
            },
            seed: 11,
            interval_ns: 1_000_000_000,
            ticks_per_interval: ticks,
            tick_ns: 1_000_000_000 / u64::from(ticks),
            warmup_intervals: 1,
            mem_pages: 8192,
            wss_bytes: DOMAIN * 4096,
            vcpus: 1,
        }
    }

    /// A scripted guest: in tick `i` it touches a window of pages that
    /// moves and grows, and writes every third of them.
    fn ticks(n: u64, per_interval: u64) -> Vec<Tick> {
        (0..n)
            .map(|i| {
                let from = (i * 37) % 500;
                let len = 200 + (i / per_interval % 4) * 300;
                let touched: Vec<u64> = (from..from + len).collect();
                Tick {
                    t_end_ns: (i + 1) * 1_000_000_000 / per_interval,
                    ran_ns: 1_000_000_000 / per_interval - 1000,
                    guest_ops: 10 * i,
                    phase: i / per_interval,
                    stopped: false,
                    close: None,
                    written: PageSet::from_sorted(touched.iter().copied().filter(|p| p % 3 == 0)),
                    touched: PageSet::from_sorted(touched),
                }
            })
            .collect()
    }

    fn recording(kind: EstimatorKind, per: u32, tracker: TrackerKind) -> Recording {
        Recording {
            header: header(kind, per, tracker),
            start: PageSet::default(),
            ticks: ticks(8 * u64::from(per) + 1, u64::from(per)),
            end: crate::report::summary::EndKind::Duration,
        }
    }

    #[test]
    fn exhaustive_replay_equals_the_truth() {
        for tracker in [TrackerKind::Uffd, TrackerKind::DirtyLog] {
            let rec = recording(EstimatorKind::Exhaustive, 1, tracker);
            let rows = replay(&rec, &ReplaySettings::recorded(&rec.header)).unwrap();
            assert_eq!(rows.len(), 9);
            for r in &rows {
                let truth = if tracker == TrackerKind::DirtyLog {
                    r.true_wss_write_pages
                } else {
                    r.true_wss_pages
                };
                assert_eq!(r.est_wss_pages, Some(truth as f64), "{tracker:?}");
                assert_eq!(r.touched_samples, truth);
                assert_eq!(r.sampled_pages, DOMAIN);
            }
            assert_eq!(rows[1].true_wss_pages, 500);
            // Pages 37..537, of which 39, 42, ..., 534 are written.
            assert_eq!(rows[1].true_wss_write_pages, 166);
        }
    }

    #[test]
    fn intervals_of_several_ticks_take_the_union() {
        let rec = recording(EstimatorKind::Exhaustive, 1, TrackerKind::Uffd);
        let mut s = ReplaySettings::recorded(&rec.header);
        s.interval_ticks = 3;
        let rows = replay(&rec, &s).unwrap();
        // 9 ticks: three intervals of three.
        assert_eq!(rows.len(), 3);
        // Ticks 0..3 touch 0..200, 37..537, 74..874.
        assert_eq!(rows[0].true_wss_pages, 874);
        assert_eq!(rows[0].est_wss_pages, Some(874.0));
        assert_eq!(rows[0].guest_ops, 30);
        assert_eq!(rows[0].t_s, 3.0);
        assert!(rows.iter().all(|r| r.full));
    }

    /// The observer sees every estimator tick once, in order, with the
    /// pages the rows count: for DAMON, several recorded ticks per tick.
    #[test]
    fn the_observer_sees_what_the_rows_count() {
        let rec = recording(EstimatorKind::Damon, 4, TrackerKind::Uffd);
        let mut s = ReplaySettings::recorded(&rec.header);
        s.interval_ticks = 8;
        s.estimator.damon.ticks_per_interval = 4;
        let mut seen: Vec<ArmedTick<'_>> = Vec::new();
        let (mut armed, mut caught) = (Vec::new(), Vec::new());
        let rows = replay_observed(&rec, &s, |t| {
            armed.push(t.armed.len() as u64);
            caught.push(t.caught.to_vec());
            seen.push(ArmedTick {
                ticks: t.ticks,
                armed: &[],
                caught: &[],
            });
        })
        .unwrap();
        assert_eq!(rows, replay(&rec, &s).unwrap());
        // 33 recorded ticks, two per estimator tick: 16 of two and one of one.
        assert_eq!(seen.len(), 17);
        assert_eq!(seen[0].ticks, 0..2);
        assert_eq!(seen[16].ticks, 32..33);
        assert!(seen.windows(2).all(|w| w[0].ticks.end == w[1].ticks.start));
        let sampled: u64 = rows.iter().map(|r| r.sampled_pages).sum();
        let touched: u64 = rows.iter().map(|r| r.touched_samples).sum();
        assert_eq!(armed.iter().sum::<u64>(), sampled);
        assert_eq!(caught.iter().map(|c| c.len() as u64).sum::<u64>(), touched);
        // A caught page was in its tick's truth.
        for (t, c) in seen.iter().zip(&caught) {
            for &p in c {
                assert!(
                    rec.ticks[t.ticks.clone()]
                        .iter()
                        .any(|k| k.touched.contains(p))
                );
            }
        }
    }

    #[test]
    fn follow_samples_the_pages_resident_at_the_first_boundary() {
        // Without a start set the first interval's population is empty:
        // nothing to sample, every touched page is new and counted exactly.
        let mut rec = recording(EstimatorKind::Follow, 1, TrackerKind::Uffd);
        let s = ReplaySettings::recorded(&rec.header);
        let bare = replay(&rec, &s).unwrap();
        assert_eq!(bare[0].sampled_pages, 0);
        assert_eq!(bare[0].est_wss_pages, Some(200.0));
        // Pages the guest touched before the first boundary are the first
        // interval's population: it samples them, and only the pages beyond
        // them are new. Tick 0 touches 0..200; the start holds 100..400.
        rec.start = PageSet::from_sorted(100..400);
        let started = replay(&rec, &s).unwrap();
        assert_eq!(started[0].sampled_pages, 300);
        // 100 of the 300 started pages are touched, all sampled; 100 are new.
        assert_eq!(started[0].touched_samples, 100);
        assert_eq!(started[0].est_wss_pages, Some(200.0));
        assert_ne!(started[1].sampled_pages, bare[1].sampled_pages);
    }

    #[test]
    fn a_replay_is_deterministic_and_the_seed_matters() {
        let rec = recording(EstimatorKind::Esx, 1, TrackerKind::Uffd);
        let s = ReplaySettings::recorded(&rec.header);
        let a = replay(&rec, &s).unwrap();
        assert_eq!(a, replay(&rec, &s).unwrap());
        let b = replay(&rec, &ReplaySettings { seed: 12, ..s }).unwrap();
        assert_ne!(a, b);
        assert!(a.iter().all(|r| r.sampled_pages == 300));
    }

    #[test]
    fn damon_needs_a_whole_number_of_recorded_ticks_per_tick() {
        let rec = recording(EstimatorKind::Esx, 1, TrackerKind::Uffd);
        let mut s = ReplaySettings::recorded(&rec.header);
        s.estimator.kind = EstimatorKind::Damon;
        s.estimator.damon.ticks_per_interval = 20;
        assert!(matches!(
            replay(&rec, &s),
            Err(ReplayError::TicksDoNotDivide {
                interval_ticks: 1,
                estimator_ticks: 20
            })
        ));
        let rec = recording(EstimatorKind::Damon, 4, TrackerKind::Uffd);
        let s = ReplaySettings::recorded(&rec.header);
        let rows = replay(&rec, &s).unwrap();
        // 33 ticks of 4 per interval: 8 full intervals and one of one tick.
        assert_eq!(rows.len(), 9);
        assert!(!rows[8].full);
        assert!(rows[..8].iter().all(|r| r.full));
        let wrong = ReplaySettings {
            estimator: EstimatorConfig {
                domain_pages: 5,
                ..s.estimator
            },
            ..s
        };
        assert!(matches!(
            replay(&rec, &wrong),
            Err(ReplayError::Domain { .. })
        ));
    }

    /// A scripted run recorded through the live sampler's own recording
    /// path and replayed with its settings gives its estimates exactly.
    #[test]
    fn a_recorded_scripted_run_replays_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRACE_FILE);
        for (kind, per_tick) in [
            (EstimatorKind::Esx, 1),
            (EstimatorKind::Damon, 1),
            (EstimatorKind::Esx, 3),
            (EstimatorKind::Damon, 2),
        ] {
            let (rows, header) = crate::sampler::tests::recorded_run(kind, &path, per_tick);
            let rec = crate::record::read(&path).unwrap();
            assert_eq!(rec.header, header);
            let full_intervals = rows.len() as u64 - 1;
            assert!(
                rec.ticks.len() as u64 > full_intervals * u64::from(header.ticks_per_interval),
                "{} ticks for {} rows",
                rec.ticks.len(),
                rows.len()
            );
            let closes: Vec<Close> = rec.ticks.iter().filter_map(|t| t.close).collect();
            assert_eq!(closes.len(), rows.len());
            let replayed = replay(&rec, &ReplaySettings::recorded(&rec.header)).unwrap();
            assert_eq!(replayed.len(), rows.len());
            for (live, re) in rows.iter().zip(&replayed) {
                assert_eq!(
                    (
                        re.est_wss_pages,
                        re.est_lo_pages,
                        re.est_hi_pages,
                        re.policy_wss_pages
                    ),
                    (
                        live.est_wss_pages,
                        live.est_lo_pages,
                        live.est_hi_pages,
                        live.policy_wss_pages
                    ),
                    "{kind:?} with {per_tick} recorded ticks per tick at t={}",
                    live.t_s
                );
                assert_eq!(re.touched_samples, live.touched_samples);
                assert_eq!(re.sampled_pages, live.sampled_pages);
                assert_eq!(
                    (re.true_wss_pages, re.true_wss_write_pages),
                    (live.true_wss_pages, live.true_wss_write_pages)
                );
                assert_eq!(
                    (re.t_s, re.interval_s, re.full),
                    (live.t_s, live.interval_s, live.full)
                );
                assert_eq!((re.guest_ops, re.phase), (live.guest_ops, live.phase));
            }
            assert!(rows.iter().any(|r| r.touched_samples > 0), "{kind:?}");
            assert_eq!(live_matches(&rec, &replayed), (rows.len(), rows.len()));
            // The policy value is part of what must match, not only the band.
            let mut policy_off = replayed.clone();
            policy_off[0].policy_wss_pages = policy_off[0].policy_wss_pages.map(|p| p + 1.0);
            assert_eq!(
                live_matches(&rec, &policy_off),
                (rows.len() - 1, rows.len())
            );
            let other = ReplaySettings {
                seed: 2,
                ..ReplaySettings::recorded(&rec.header)
            };
            let (equal, all) = live_matches(&rec, &replay(&rec, &other).unwrap());
            assert!(
                equal < all,
                "{kind:?}: another seed matched {equal} of {all}"
            );
            let s = summarize(&rec, &ReplaySettings::recorded(&rec.header), &replayed);
            assert_eq!(s.intervals, rows.len() as u64);
            assert_eq!(s.estimator, Some(kind));
        }
    }
}
