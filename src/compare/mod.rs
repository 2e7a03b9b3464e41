//! Comparing estimators at equal cost, by replay (issue 11): every
//! recorded program is replayed with ESX, DAMON and follow at several
//! sizes (sample pages, or DAMON's fewest regions) and seeds; each setting's
//! figures are averaged over the seeds, and every other estimator is held
//! against ESX's MAPE at the same tracked faults per second on the same
//! trace. The one definition of the equal-fault interpolation and of the
//! aggregation, used by the study's section and by `kvm-wss
//! compare-estimators` (estimators.md) alike.

pub mod command;
pub mod tables;

use crate::analysis::derived::faults_per_s;
use crate::analysis::stats::{mean, median};
use crate::estimate::EstimatorKind;
use crate::record::Recording;
use crate::replay::{ReplayError, ReplaySettings, replay, summarize};
use crate::report::summary::Summary;

/// ESX's sample sizes: the curve other estimators are held against.
pub const ESX_SAMPLES: [u64; 6] = [100, 200, 400, 800, 1600, 3200];
/// follow's sample caps.
pub const FOLLOW_SAMPLES: [u64; 4] = [50, 100, 200, 400];
/// DAMON's fewest regions (its most stay DAMON's 1000): its cost is one
/// armed page per region per tick, and on these programs its merging keeps
/// it near its fewest (a bound of 100 or 1000 at most gave the same
/// replays), so the lower bound is what sets its cost; 10 is DAMON's
/// default and the study's.
pub const DAMON_MIN_REGIONS: [u64; 3] = [10, 50, 200];
/// The seeds every setting is replayed with.
pub const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];
/// The size the per-program table compares at: the study's default sample.
pub const PER_PROGRAM_SIZE: u64 = 400;
/// Fault rates below this count as this in the interpolation, whose
/// logarithm needs a positive rate (a setting that caught nothing).
pub const FAULTS_FLOOR: f64 = 0.01;

/// One replayed setting: an estimator and its size (sample pages for ESX
/// and follow, fewest regions for DAMON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub estimator: EstimatorKind,
    pub size: u64,
}

/// Every setting the comparison replays, ESX first.
pub fn grid() -> Vec<Setting> {
    let of = |estimator, sizes: &[u64]| {
        sizes
            .iter()
            .map(move |&size| Setting { estimator, size })
            .collect::<Vec<_>>()
    };
    [
        of(EstimatorKind::Esx, &ESX_SAMPLES),
        of(EstimatorKind::Damon, &DAMON_MIN_REGIONS),
        of(EstimatorKind::Follow, &FOLLOW_SAMPLES),
    ]
    .concat()
}

/// The replay settings of `setting` on the recording: the recorded run's,
/// with the setting's estimator and size, and `seed`.
pub fn replay_settings(rec: &Recording, setting: Setting, seed: u64) -> ReplaySettings {
    let mut s = ReplaySettings::recorded(&rec.header);
    s.estimator.kind = setting.estimator;
    s.seed = seed;
    match setting.estimator {
        EstimatorKind::Damon => {
            let min = u32::try_from(setting.size).unwrap_or(u32::MAX);
            s.estimator.damon.min_regions = min;
            s.estimator.damon.max_regions = s.estimator.damon.max_regions.max(min);
        }
        _ => s.estimator.sample_pages = setting.size,
    }
    s
}

/// One setting on one program: its figures averaged over the seeds, each
/// over the seeds that measured it (a lag is absent without a step).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub program: String,
    pub setting: Setting,
    pub mape: Option<f64>,
    /// ESX's policy value (max of its averages) against the truth.
    pub policy_mape: Option<f64>,
    pub lag_up: Option<f64>,
    pub lag_down: Option<f64>,
    pub band_coverage: Option<f64>,
    /// Caught touches per second of the recording.
    pub faults_per_s: Option<f64>,
    /// Pages armed per interval.
    pub armed_per_interval: Option<f64>,
    pub seeds: usize,
}

impl Point {
    /// The mean over `summaries` (one per seed) of `setting` on `program`.
    pub fn of(program: &str, setting: Setting, summaries: &[Summary]) -> Point {
        let avg = |f: &dyn Fn(&Summary) -> Option<f64>| mean(summaries.iter().filter_map(f));
        Point {
            program: program.to_string(),
            setting,
            mape: avg(&|s| s.mape),
            policy_mape: avg(&|s| s.policy_mape),
            lag_up: avg(&|s| s.lag_up_intervals),
            lag_down: avg(&|s| s.lag_down_intervals),
            band_coverage: avg(&|s| s.band_coverage),
            faults_per_s: avg(&faults_per_s),
            armed_per_interval: avg(&|s| {
                (s.intervals > 0).then(|| s.armed_pages_total as f64 / s.intervals as f64)
            }),
            seeds: summaries.len(),
        }
    }
}

/// ESX's MAPE at `faults` faults/s, from its points `(faults/s, MAPE)`:
/// linear in log(faults/s) between the two nearest, clamped to their range
/// (the fewest faults' MAPE below it, the most faults' above). Rates below
/// [`FAULTS_FLOOR`] count as it. `None` without points.
pub fn esx_mape_at(points: &[(f64, f64)], faults: f64) -> Option<f64> {
    let log = |f: f64| f.max(FAULTS_FLOOR).ln();
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(f, m)| f.is_finite() && m.is_finite())
        .map(|&(f, m)| (log(f), m))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let x = log(faults);
    let first = *pts.first()?;
    let last = *pts.last()?;
    if x <= first.0 {
        return Some(first.1);
    }
    if x >= last.0 {
        return Some(last.1);
    }
    let i = pts.iter().position(|p| p.0 >= x)?;
    let (lo, hi) = (pts[i - 1], pts[i]);
    if hi.0 == x || hi.0 == lo.0 {
        return Some(hi.1);
    }
    let t = (x - lo.0) / (hi.0 - lo.0);
    Some(lo.1 + t * (hi.1 - lo.1))
}

/// One row of the equal-cost table: an estimator at one size, over the
/// programs, against ESX at the same faults on each.
#[derive(Debug, Clone, PartialEq)]
pub struct EqualCost {
    pub setting: Setting,
    /// Median over the programs of the estimator's MAPE.
    pub median_mape: Option<f64>,
    /// Median over the same programs of ESX's MAPE at its faults/s.
    pub median_esx_mape: Option<f64>,
    /// The first median over the second.
    pub ratio: Option<f64>,
    /// Programs with both values.
    pub programs: usize,
}

/// The comparison: every setting's point on every program.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub points: Vec<Point>,
}

impl Comparison {
    /// The programs in the order their points first appear.
    pub fn programs(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.points {
            if !out.contains(&p.program.as_str()) {
                out.push(&p.program);
            }
        }
        out
    }

    pub fn point(&self, program: &str, setting: Setting) -> Option<&Point> {
        self.points
            .iter()
            .find(|p| p.program == program && p.setting == setting)
    }

    /// ESX's MAPE on `program` at `faults` faults/s ([`esx_mape_at`]).
    pub fn esx_at(&self, program: &str, faults: f64) -> Option<f64> {
        let esx: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter(|p| p.program == program && p.setting.estimator == EstimatorKind::Esx)
            .filter_map(|p| Some((p.faults_per_s?, p.mape?)))
            .collect();
        esx_mape_at(&esx, faults)
    }

    /// ESX's MAPE at the faults/s of `point`, on its program.
    pub fn esx_at_equal_faults(&self, point: &Point) -> Option<f64> {
        self.esx_at(&point.program, point.faults_per_s?)
    }

    /// The sizes `estimator` was replayed at, in grid order.
    pub fn sizes(&self, estimator: EstimatorKind) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for p in self
            .points
            .iter()
            .filter(|p| p.setting.estimator == estimator)
        {
            if !out.contains(&p.setting.size) {
                out.push(p.setting.size);
            }
        }
        out
    }

    /// The equal-cost rows of `estimator`, one per size.
    pub fn equal_cost(&self, estimator: EstimatorKind) -> Vec<EqualCost> {
        self.sizes(estimator)
            .into_iter()
            .map(|size| {
                let setting = Setting { estimator, size };
                let pairs: Vec<(f64, f64)> = self
                    .points
                    .iter()
                    .filter(|p| p.setting == setting)
                    .filter_map(|p| Some((p.mape?, self.esx_at_equal_faults(p)?)))
                    .collect();
                let median_mape = median(pairs.iter().map(|p| p.0));
                let median_esx_mape = median(pairs.iter().map(|p| p.1));
                EqualCost {
                    setting,
                    median_mape,
                    median_esx_mape,
                    ratio: match (median_mape, median_esx_mape) {
                        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                        _ => None,
                    },
                    programs: pairs.len(),
                }
            })
            .collect()
    }

    /// The estimator other than ESX with the lowest equal-cost ratio at
    /// any size, and that row.
    pub fn best(&self) -> Option<EqualCost> {
        [EstimatorKind::Follow, EstimatorKind::Damon]
            .into_iter()
            .flat_map(|e| self.equal_cost(e))
            .filter(|r| r.ratio.is_some())
            .min_by(|a, b| {
                a.ratio
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.ratio.unwrap_or(f64::MAX))
            })
    }
}

/// Why the comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("cannot replay {program} with {estimator} at {size}")]
    Replay {
        program: String,
        estimator: &'static str,
        size: u64,
        #[source]
        source: ReplayError,
    },
    #[error("interrupted")]
    Interrupted,
}

/// Replays every setting of `settings` with every seed on every recording
/// (`(program, recording)`) on the work queue, and returns the points in
/// program, then setting order, or the first failure (no replay starts
/// after one).
pub fn measure(
    recordings: &[(String, Recording)],
    settings: &[Setting],
    seeds: &[u64],
) -> Result<Comparison, CompareError> {
    let jobs: Vec<(usize, Setting)> = (0..recordings.len())
        .flat_map(|r| settings.iter().map(move |&s| (r, s)))
        .collect();
    let results = crate::work_queue::run_jobs(
        &jobs,
        |&(r, setting)| {
            let (program, rec) = &recordings[r];
            replay_point(program, rec, setting, seeds)
        },
        Result::is_err,
    );
    let mut points = Vec::with_capacity(jobs.len());
    for r in results {
        points.push(r.ok_or(CompareError::Interrupted)??);
    }
    Ok(Comparison { points })
}

/// `setting` replayed on `rec` with every seed, averaged.
fn replay_point(
    program: &str,
    rec: &Recording,
    setting: Setting,
    seeds: &[u64],
) -> Result<Point, CompareError> {
    let mut summaries = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let settings = replay_settings(rec, setting, seed);
        let rows = replay(rec, &settings).map_err(|source| CompareError::Replay {
            program: program.to_string(),
            estimator: setting.estimator.name(),
            size: setting.size,
            source,
        })?;
        summaries.push(summarize(rec, &settings, &rows));
    }
    Ok(Point::of(program, setting, &summaries))
}

#[cfg(test)]
mod tests;
