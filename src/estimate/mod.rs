//! Working-set size estimators.
//!
//! An estimator decides which guest pages the sampler arms (invalidates) on each tick and turns
//! the armed pages the guest went on to touch into a WSS estimate. Estimators work purely on page
//! indices within a tracked domain; they know nothing of KVM, so they are unit-tested with
//! synthetic touch streams.
//!
//! Protocol, driven by the sampler: per reporting interval, `ticks_per_interval()` times
//! `choose()` → (guest runs, touches are caught) → `observe_tick()`; then `end_interval()`.
//! `peek()` may be called at any time for a live value.
//!
//! Measurement and policy are kept apart. Each closed interval yields an [`IntervalEstimate`]:
//! `raw`, what this interval's samples say about this interval's working set, with a band an
//! honest reader can check against the truth; and `policy_pages`, the value an allocator built
//! on the measurements would act on (ESX's max of a fast and a slow average, which never
//! under-provisions and so stays high for many intervals after the working set shrinks).

mod armed;
mod band;
/// The one Wilson interval, also for reporting a measured proportion (a band's coverage).
pub use band::wilson;
pub mod curve;
mod damon;
mod esx;
mod exhaustive;
mod follow;

use curve::Curve;
use damon::Damon;
use esx::Esx;
use exhaustive::Exhaustive;
use follow::Follow;

use serde::{Deserialize, Serialize};

/// Index of a 4 KiB page within the tracked domain [0, domain_pages).
pub type PageIdx = u64;

/// A WSS estimate in pages with its 95% band `[lo, hi]` (`lo <= pages <= hi`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub pages: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Estimate {
    /// An estimate known without error (the band collapses to the point).
    pub fn exact(pages: f64) -> Self {
        Estimate {
            pages,
            lo: pages,
            hi: pages,
        }
    }
}

/// What an estimator reports when an interval closes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IntervalEstimate {
    /// This interval's measurement with its band (ESX: the sampled fraction times the domain,
    /// with its 95% Wilson interval).
    pub raw: Estimate,
    /// The value an allocation policy on top of the measurements acts on, pages (ESX: the max of
    /// its slow and fast averages); `raw.pages` for estimators without a policy.
    pub policy_pages: f64,
}

impl IntervalEstimate {
    /// An estimator without a policy: the policy value is the measurement.
    pub fn unsmoothed(raw: Estimate) -> Self {
        IntervalEstimate {
            raw,
            policy_pages: raw.pages,
        }
    }
}

/// One point of a working-set curve: W(t, τ), the distinct pages touched in the window
/// (t − τ, t] that ends at the interval's end t.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The window τ, in estimator ticks.
    pub tau_ticks: u32,
    /// W(t, τ) in pages, with its 95% band.
    pub estimate: Estimate,
    /// Pages the point's estimate rests on.
    pub sampled_pages: u64,
}

pub trait Estimator: Send {
    /// "esx" | "damon" | "exhaustive" | "curve" | "follow".
    fn name(&self) -> &'static str;
    /// Sampling ticks per reporting interval (1 for esx and exhaustive; DAMON's
    /// aggregation interval / sampling interval for damon).
    fn ticks_per_interval(&self) -> u32;
    /// Pages to arm for the coming tick: sorted ascending, no duplicates, all < domain_pages.
    fn choose(&mut self, rng: &mut rand::rngs::StdRng) -> Vec<PageIdx>;
    /// The armed pages the guest touched during that tick (a subset of the last choose()).
    /// Pages that were not armed, and repeats, are ignored.
    fn observe_tick(&mut self, touched: &[PageIdx]);
    /// Closes the interval (after ticks_per_interval() ticks) and returns its measurement and
    /// policy value.
    fn end_interval(&mut self) -> IntervalEstimate;
    /// Live value in the middle of a tick given how many armed pages were touched so far: ESX's
    /// in-progress policy value (its fast average with the touches so far folded in);
    /// estimators without one return their last measurement.
    fn peek(&self, touched_so_far: usize) -> Estimate;
    /// The working-set curve W(t, τ) at the last closed interval's end t, for the windows the
    /// estimator measures, shortest first; `None` from an estimator that measures only the
    /// interval itself.
    fn curve(&self) -> Option<Vec<CurvePoint>> {
        None
    }
    /// The domain pages resident in guest RAM (the pages the guest has ever touched), given at
    /// the first boundary and at every boundary that closes an interval, just before
    /// `end_interval()`, while the guest is held: the closing interval's final population and
    /// the next interval's starting one (before its `choose()`). Live from `mincore` on the RAM
    /// memfd, in replay the union of the trace's touched sets so far. Estimators that sample
    /// the whole domain ignore it.
    fn observe_population(&mut self, resident: &crate::record::PageSet) {
        let _ = resident;
    }
    /// Whether `observe_population` is used: finding the resident pages costs a `mincore` over
    /// all of guest RAM while the guest is held, which estimators that ignore it do not pay.
    fn samples_population(&self) -> bool {
        false
    }
}

/// Which estimator to run. Spelled by its name everywhere (see
/// `crate::named`); `help` says what each one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum EstimatorKind {
    Esx,
    Damon,
    Exhaustive,
    Curve,
    Follow,
}

crate::named::named_impls!(EstimatorKind);

impl crate::named::Named for EstimatorKind {
    const WHAT: &'static str = "estimator";
    const ALL: &'static [EstimatorKind] = &[
        EstimatorKind::Esx,
        EstimatorKind::Damon,
        EstimatorKind::Exhaustive,
        EstimatorKind::Curve,
        EstimatorKind::Follow,
    ];

    fn name(self) -> &'static str {
        EstimatorKind::name(self)
    }

    fn help(self) -> &'static str {
        match self {
            EstimatorKind::Esx => {
                "VMware ESX-style statistical sampling of a fixed number of random pages per interval"
            }
            EstimatorKind::Damon => {
                "Linux DAMON-style adaptive regions, one sampled page per region per tick"
            }
            EstimatorKind::Exhaustive => {
                "Every page armed every interval: the exact WSS, at full tracking cost"
            }
            EstimatorKind::Curve => {
                "The working-set curve W(tau) at tau = interval/4 to 4 intervals, from the first touches of cohorts of random pages kept armed across intervals"
            }
            EstimatorKind::Follow => {
                "Samples only resident pages, pools steady intervals and restarts on a detected change; sample size set by --band-target"
            }
        }
    }
}

impl EstimatorKind {
    /// The one name of each estimator.
    pub fn name(self) -> &'static str {
        match self {
            EstimatorKind::Esx => "esx",
            EstimatorKind::Damon => "damon",
            EstimatorKind::Exhaustive => "exhaustive",
            EstimatorKind::Curve => "curve",
            EstimatorKind::Follow => "follow",
        }
    }

    /// What the estimator's policy value (`IntervalEstimate::policy_pages`) is.
    pub fn policy(self) -> &'static str {
        match self {
            EstimatorKind::Esx => "max of the slow and fast averages: never under-provisions",
            EstimatorKind::Damon | EstimatorKind::Exhaustive | EstimatorKind::Curve => {
                "no policy: the measurement itself"
            }
            EstimatorKind::Follow => {
                "upper end of the 95% band: falls as soon as a change is detected"
            }
        }
    }
}

/// EWMA gains of the ESX estimator, each in (0, 1]: the weight a new interval's sampled
/// fraction gets in the average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EsxGains {
    pub slow: f64,
    pub fast: f64,
}

impl Default for EsxGains {
    /// `fast = 0.75`: after a step up, the fast average has covered 1 - 0.25^2 = 93.75% (>= 90%)
    /// of the step one interval after the interval in which it happened, so the reported maximum
    /// tracks a growing working set almost immediately.
    /// `slow = 0.125`: after a step down the slow average keeps 0.875^k of the old level k
    /// intervals later, so the reported maximum falls slowly and a briefly idle guest is not
    /// judged to have shed its working set (the conservative direction for memory reclaim).
    fn default() -> Self {
        EsxGains {
            slow: 0.125,
            fast: 0.75,
        }
    }
}

/// Parameters of the DAMON-style estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamonConfig {
    pub min_regions: u32,
    pub max_regions: u32,
    /// Sampling ticks per aggregation interval; also the largest possible per-region access
    /// count, which scales the merge threshold.
    pub ticks_per_interval: u32,
}

impl Default for DamonConfig {
    /// Region bounds are DAMON's defaults (10 and 1000). DAMON samples every 5 ms and aggregates
    /// every 100 ms, i.e. 20 samples per aggregation; 20 is kept as the count of ticks, but a tick
    /// here is far longer than 5 ms because every tracked touch costs a 45-850 us exit to the
    /// host, so sampling as often as DAMON would dominate the guest's run time.
    fn default() -> Self {
        DamonConfig {
            min_regions: 10,
            max_regions: 1000,
            ticks_per_interval: 20,
        }
    }
}

/// Parameters of the `follow` estimator (see `follow.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowConfig {
    /// Relative half-width of the 95% band the sample size aims at (0.05: ±5%).
    pub band_target: f64,
    /// The smallest sample per interval, whatever the target allows: enough that a change is
    /// still detected within an interval or two.
    pub min_sample_pages: u64,
    /// Intervals of a steady regime pooled into one estimate.
    pub pool_intervals: u32,
    /// Standard errors of difference between an interval and the pool that start a new regime.
    pub break_z: f64,
}

impl Default for FollowConfig {
    /// `band_target = 0.05`: the issue's ±5% at 95%.
    /// `min_sample_pages = 64`: a fall from 90% to 25% of the population is ~9 standard errors
    /// at 64 samples, so it is still caught in one interval.
    /// `pool_intervals = 4`: pooling four intervals halves the band in steady state, while on a
    /// ramp the pool lags by only 1.5 intervals of growth.
    /// `break_z = 3.29`: the 99.9% two-sided quantile, so a steady working set breaks its regime
    /// falsely about once per thousand intervals.
    fn default() -> Self {
        FollowConfig {
            band_target: 0.05,
            min_sample_pages: 64,
            pool_intervals: 4,
            break_z: 3.29,
        }
    }
}

/// Plain-data description of an estimator, validated and instantiated by [`build`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EstimatorConfig {
    pub kind: EstimatorKind,
    /// Size of the tracked domain in 4 KiB pages.
    pub domain_pages: u64,
    /// Pages sampled per interval (esx; curve: drawn per interval, split evenly over its
    /// cohorts).
    pub sample_pages: u64,
    /// Smoothing gains (esx only).
    pub esx: EsxGains,
    /// Region parameters (damon only).
    pub damon: DamonConfig,
    /// Pooling, change detection and error target (follow only); traces recorded before it
    /// existed read as the defaults.
    #[serde(default)]
    pub follow: FollowConfig,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EstimateError {
    #[error("the tracked domain is empty (0 pages)")]
    EmptyDomain,
    #[error("a domain of {domain_pages} pages cannot be indexed on this host")]
    DomainTooLarge { domain_pages: u64 },
    #[error("esx and follow need at least one sampled page per interval")]
    NoSamplePages,
    #[error("cannot sample {sample_pages} distinct pages from a domain of {domain_pages}")]
    SampleExceedsDomain {
        sample_pages: u64,
        domain_pages: u64,
    },
    #[error("esx slow gain {0} is outside (0, 1]")]
    SlowGainOutOfRange(f64),
    #[error("esx fast gain {0} is outside (0, 1]")]
    FastGainOutOfRange(f64),
    #[error(
        "curve draws {cohorts} cohorts per interval and needs at least that many sampled pages, not {sample_pages}"
    )]
    CurveTooFewSamples { sample_pages: u64, cohorts: u64 },
    #[error(
        "curve cannot sample cohorts of {cohort_pages} distinct pages from a domain of {domain_pages}"
    )]
    CohortExceedsDomain {
        cohort_pages: u64,
        domain_pages: u64,
    },
    #[error("damon needs at least one region")]
    NoMinRegions,
    #[error("damon min_regions {min} exceeds max_regions {max}")]
    MinRegionsExceedMax { min: u32, max: u32 },
    #[error("damon needs at least one tick per aggregation interval")]
    NoTicksPerInterval,
    #[error("follow's --band-target {0} is outside (0, 1)")]
    BandTargetOutOfRange(f64),
    #[error("follow needs at least one pooled interval")]
    NoPoolIntervals,
    #[error("follow's change threshold {0} is not a positive number of standard errors")]
    BreakZOutOfRange(f64),
}

/// Validates `cfg` and creates the estimator it describes. Only the fields the chosen kind uses
/// are validated.
pub fn build(cfg: &EstimatorConfig) -> Result<Box<dyn Estimator>, EstimateError> {
    let domain = cfg.domain_pages;
    if domain == 0 {
        return Err(EstimateError::EmptyDomain);
    }
    // Samples and bitmaps are indexed by usize; refuse domains that would not fit.
    if usize::try_from(domain).is_err() {
        return Err(EstimateError::DomainTooLarge {
            domain_pages: domain,
        });
    }
    match cfg.kind {
        EstimatorKind::Esx => {
            let n = check_sample(cfg)?;
            let EsxGains { slow, fast } = cfg.esx;
            if !gain_ok(slow) {
                return Err(EstimateError::SlowGainOutOfRange(slow));
            }
            if !gain_ok(fast) {
                return Err(EstimateError::FastGainOutOfRange(fast));
            }
            Ok(Box::new(Esx::new(domain, n, cfg.esx)))
        }
        EstimatorKind::Damon => {
            let d = cfg.damon;
            if d.min_regions == 0 {
                return Err(EstimateError::NoMinRegions);
            }
            if d.min_regions > d.max_regions {
                return Err(EstimateError::MinRegionsExceedMax {
                    min: d.min_regions,
                    max: d.max_regions,
                });
            }
            if d.ticks_per_interval == 0 {
                return Err(EstimateError::NoTicksPerInterval);
            }
            Ok(Box::new(Damon::new(domain, d)))
        }
        EstimatorKind::Exhaustive => Ok(Box::new(Exhaustive::new(domain))),
        EstimatorKind::Curve => {
            let cohorts = curve::cohorts_per_interval();
            let m = cfg.sample_pages / cohorts;
            if m == 0 {
                return Err(EstimateError::CurveTooFewSamples {
                    sample_pages: cfg.sample_pages,
                    cohorts,
                });
            }
            if m > domain {
                return Err(EstimateError::CohortExceedsDomain {
                    cohort_pages: m,
                    domain_pages: domain,
                });
            }
            Ok(Box::new(Curve::new(domain, cfg.sample_pages)))
        }
        EstimatorKind::Follow => {
            let n = check_sample(cfg)?;
            let f = cfg.follow;
            // Written so that NaN fails too.
            if !(f.band_target > 0.0 && f.band_target < 1.0) {
                return Err(EstimateError::BandTargetOutOfRange(f.band_target));
            }
            if f.pool_intervals == 0 {
                return Err(EstimateError::NoPoolIntervals);
            }
            if !(f.break_z > 0.0 && f.break_z.is_finite()) {
                return Err(EstimateError::BreakZOutOfRange(f.break_z));
            }
            Ok(Box::new(Follow::new(domain, n, f)))
        }
    }
}

/// The sample size of a sampling estimator (esx, follow): at least one page, at most the domain.
fn check_sample(cfg: &EstimatorConfig) -> Result<u64, EstimateError> {
    let n = cfg.sample_pages;
    if n == 0 {
        return Err(EstimateError::NoSamplePages);
    }
    if n > cfg.domain_pages {
        return Err(EstimateError::SampleExceedsDomain {
            sample_pages: n,
            domain_pages: cfg.domain_pages,
        });
    }
    Ok(n)
}

fn gain_ok(g: f64) -> bool {
    // Written so that NaN fails too.
    g > 0.0 && g <= 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: EstimatorKind) -> EstimatorConfig {
        EstimatorConfig {
            kind,
            domain_pages: 1024,
            sample_pages: 100,
            esx: EsxGains::default(),
            damon: DamonConfig::default(),
            follow: FollowConfig::default(),
        }
    }

    fn err(c: EstimatorConfig) -> EstimateError {
        match build(&c) {
            Ok(e) => panic!("config {c:?} accepted as {}", e.name()),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_configs_build_the_named_estimator() {
        for kind in [
            EstimatorKind::Esx,
            EstimatorKind::Damon,
            EstimatorKind::Exhaustive,
        ] {
            let e = build(&cfg(kind)).unwrap();
            assert_eq!(e.name(), kind.name());
        }
        let damon = build(&cfg(EstimatorKind::Damon)).unwrap();
        assert_eq!(damon.ticks_per_interval(), 20);
        assert_eq!(
            build(&cfg(EstimatorKind::Esx))
                .unwrap()
                .ticks_per_interval(),
            1
        );
        let exh = build(&cfg(EstimatorKind::Exhaustive)).unwrap();
        assert_eq!(exh.ticks_per_interval(), 1);
        let curve = build(&cfg(EstimatorKind::Curve)).unwrap();
        assert_eq!(curve.name(), "curve");
        assert_eq!(curve.ticks_per_interval(), 4);
        assert!(exh.curve().is_none());
        assert_eq!(curve.curve(), Some(Vec::new()));
    }

    #[test]
    fn curve_needs_a_page_per_cohort_and_cohorts_within_the_domain() {
        let mut c = cfg(EstimatorKind::Curve);
        c.sample_pages = 2;
        assert_eq!(
            err(c),
            EstimateError::CurveTooFewSamples {
                sample_pages: 2,
                cohorts: 3
            }
        );
        c.sample_pages = 3;
        assert!(build(&c).is_ok());
        // Three cohorts of 1025 pages each.
        c.sample_pages = 3075;
        assert_eq!(
            err(c),
            EstimateError::CohortExceedsDomain {
                cohort_pages: 1025,
                domain_pages: 1024
            }
        );
    }

    #[test]
    fn each_invalid_config_has_its_own_error() {
        use EstimatorKind::*;
        let mut c = cfg(Exhaustive);
        c.domain_pages = 0;
        assert_eq!(err(c), EstimateError::EmptyDomain);

        let mut c = cfg(Esx);
        c.sample_pages = 0;
        assert_eq!(err(c), EstimateError::NoSamplePages);

        let mut c = cfg(Esx);
        c.sample_pages = 1025;
        assert_eq!(
            err(c),
            EstimateError::SampleExceedsDomain {
                sample_pages: 1025,
                domain_pages: 1024
            }
        );

        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let mut c = cfg(Esx);
            c.esx.slow = bad;
            assert!(
                matches!(err(c), EstimateError::SlowGainOutOfRange(g) if g.to_bits() == bad.to_bits())
            );
            let mut c = cfg(Esx);
            c.esx.fast = bad;
            assert!(
                matches!(err(c), EstimateError::FastGainOutOfRange(g) if g.to_bits() == bad.to_bits())
            );
        }

        let mut c = cfg(Damon);
        c.damon.min_regions = 0;
        assert_eq!(err(c), EstimateError::NoMinRegions);

        let mut c = cfg(Damon);
        c.damon.min_regions = 11;
        c.damon.max_regions = 10;
        assert_eq!(
            err(c),
            EstimateError::MinRegionsExceedMax { min: 11, max: 10 }
        );

        let mut c = cfg(Damon);
        c.damon.ticks_per_interval = 0;
        assert_eq!(err(c), EstimateError::NoTicksPerInterval);
    }

    #[test]
    fn fields_of_other_kinds_are_not_validated() {
        let mut c = cfg(EstimatorKind::Exhaustive);
        c.sample_pages = 0;
        c.esx.fast = 0.0;
        c.damon.min_regions = 0;
        assert!(build(&c).is_ok());
        let mut c = cfg(EstimatorKind::Damon);
        c.sample_pages = 5000;
        assert!(build(&c).is_ok());
    }

    #[test]
    fn gain_bounds_are_inclusive_at_one() {
        let mut c = cfg(EstimatorKind::Esx);
        c.esx = EsxGains {
            slow: 1.0,
            fast: 1.0,
        };
        assert!(build(&c).is_ok());
    }

    #[test]
    fn kind_names_parse_print_and_serialize_through_one_table() {
        crate::named::tests::check_table::<EstimatorKind>();
        assert_eq!(EstimatorKind::Exhaustive.to_string(), "exhaustive");
        assert_eq!("damon".parse::<EstimatorKind>(), Ok(EstimatorKind::Damon));
    }
}
