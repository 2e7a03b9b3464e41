//! The run summary, summary.json: one JSON object per run, read by the sweep
//! and by people comparing runs.

use std::path::Path;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ReportError;
use super::timeseries::Row;
use crate::analysis::accuracy::{AccuracyTally, Metrics, TruthColumn};
use crate::analysis::costs::CostTally;
use crate::analysis::derived;
use crate::estimate::EstimatorKind;
use crate::run::RunEnd;
use crate::track::TrackerKind;

/// A guest phase change: the guest wrote `marker` to its phase slot at `t_s`
/// seconds after it started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub t_s: f64,
    pub marker: u64,
}

/// How a run ended, as summary.json's `end` records it (the reason's text,
/// a crash message or an error, is not kept there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// The run lasted its `--duration`.
    #[default]
    Duration,
    /// The guest exited by itself; the code is in `guest_exit_code`.
    GuestExit,
    /// Ctrl-C ended the run.
    Interrupted,
    /// Triple fault, panic or another fatal guest action.
    GuestCrash,
    /// The VMM failed while the guest ran.
    Error,
}

impl EndKind {
    /// The name summary.json writes.
    pub fn label(self) -> &'static str {
        match self {
            EndKind::Duration => "duration",
            EndKind::GuestExit => "guest_exit",
            EndKind::Interrupted => "interrupted",
            EndKind::GuestCrash => "guest_crash",
            EndKind::Error => "error",
        }
    }

    /// The end named by `label` (as [`EndKind::label`] writes it).
    pub fn from_label(label: &str) -> Option<EndKind> {
        [
            EndKind::Duration,
            EndKind::GuestExit,
            EndKind::Interrupted,
            EndKind::GuestCrash,
            EndKind::Error,
        ]
        .into_iter()
        .find(|e| e.label() == label)
    }
}

impl From<&RunEnd> for EndKind {
    fn from(end: &RunEnd) -> EndKind {
        match end {
            RunEnd::Duration => EndKind::Duration,
            RunEnd::GuestExit(_) => EndKind::GuestExit,
            RunEnd::Interrupted => EndKind::Interrupted,
            RunEnd::GuestCrash(_) => EndKind::GuestCrash,
            RunEnd::Error(_) => EndKind::Error,
        }
    }
}

impl std::fmt::Display for EndKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What the tracking cost, as summary.json's `tracker_stats` records it.
/// The first three are measured for every run, tracker or not; the rest
/// only with a tracker, and are left out of the JSON when not measured.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct TrackerCounters {
    /// CPU time of the vCPU thread that ran the guest, seconds.
    #[serde(default)]
    pub vcpu_thread_cpu_s: f64,
    /// Time the vCPU thread was ready to run but waited for a host CPU
    /// (see `vmm::schedstat`), mean over vCPUs, seconds; left out where
    /// the kernel does not report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_ready_s: Option<f64>,
    /// Times the guest's run loop stalled (tracked faults, host preemption).
    #[serde(default)]
    pub guest_stalls: u64,
    /// Hypercalls the VMM refused (an untrusted guest's doing).
    #[serde(default)]
    pub rejected_hypercalls: u64,
    /// Guest stall per tracked fault, µs, less the baseline's stall noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_us_per_fault: Option<f64>,
    /// VMM time resolving one tracked fault, µs, where the VMM sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmm_service_us_per_fault: Option<f64>,
    /// Time the tracker itself spent arming pages over the run, µs: the
    /// mechanism's share of the sampler's `arm_us_total` (which adds the
    /// sampler's choosing of pages around it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm_us: Option<f64>,
    /// Time the tracker itself spent collecting touched pages, µs: its
    /// share of `collect_us_total`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_us: Option<f64>,
    /// The mechanism's own counters (unattributed faults, string
    /// instructions, ...), by the names its tracker gives them.
    #[serde(flatten)]
    pub mechanism: BTreeMap<String, u64>,
}

/// The whole run in one object. The fields up to `vmm_cpu_s` are a contract
/// with the readers of summary.json and are always present (`None` is
/// written as `null`, never omitted), so a reader can tell "not measured"
/// from "missing". The fields after it are extras that may grow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Guest program name.
    pub guest: String,
    /// Tracking mechanism (`none` when the run only measured the truth).
    pub tracker: TrackerKind,
    /// Estimator; `None` without a tracker.
    pub estimator: Option<EstimatorKind>,
    /// Guest memory size, pages.
    pub mem_pages: u64,
    /// Pages armed per tick; `None` without a tracker.
    pub sample_pages: Option<u64>,
    /// Requested interval length, seconds.
    pub interval_s: f64,
    /// Wall-clock length of the run, seconds.
    pub duration_s: f64,
    /// Rows in timeseries.csv, including a partial last one.
    pub intervals: u64,
    /// Mean true WSS over the scored window (full rows after warm-up), pages.
    pub true_wss_mean_pages: f64,
    /// Mean true written-page WSS over the same window, pages.
    pub true_wss_write_mean_pages: f64,
    /// Mean measurement (`est_wss_pages`) over the same window, pages.
    pub est_wss_mean_pages: Option<f64>,
    /// The accuracy fields up to `lag_down_intervals` are of the
    /// measurement (`est_wss_pages`), not of the policy value: see
    /// `policy_mape` and `analysis::accuracy`. Summaries written before
    /// `policy_mape` existed scored ESX's policy value here.
    pub mae_pages: Option<f64>,
    /// Fraction, not percent (0.1 = 10%).
    pub mape: Option<f64>,
    pub bias_pages: Option<f64>,
    /// Lags are found over every full interval, warm-up included.
    pub lag_up_intervals: Option<f64>,
    pub lag_down_intervals: Option<f64>,
    /// Tracked faults over the run; `None` without a tracker.
    pub tracked_faults: Option<u64>,
    /// Mean cost of one tracked touch as the guest sees it, microseconds,
    /// measured with the run's tracker on the probe guest before the run.
    pub fault_cost_us: Option<f64>,
    pub guest_ops: u64,
    pub guest_ops_per_s: f64,
    /// CPU time of the VMM's own threads (the sampler, the uffd handler),
    /// the vCPU thread that runs the guest left out, seconds.
    pub vmm_cpu_s: f64,

    // Extras.
    /// Guest working-set parameter, bytes.
    pub wss_bytes: u64,
    /// Pages the ground truth is counted over (guest data pages).
    pub domain_pages: u64,
    pub seed: u64,
    pub warmup_intervals: u64,
    /// The truth column errors were measured against, by its CSV name
    /// ("true_wss_pages" or "true_wss_write_pages").
    pub compared_against: TruthColumn,
    /// How the run ended: "duration" | "guest_exit" | "interrupted" |
    /// "guest_crash" | "error".
    pub end: EndKind,
    pub guest_exit_code: Option<u64>,
    /// Guest-computed checksum, hex.
    pub guest_checksum: Option<String>,
    /// The guest's phase markers, the first `MAX_KEPT_PHASES` of them
    /// (see `vmm::exit`).
    pub phases: Vec<Phase>,
    /// Phase markers past that cap: counted, not stored.
    #[serde(default)]
    pub phases_dropped: u64,
    /// Guest log messages past the cap on kept ones: counted, not stored.
    #[serde(default)]
    pub logs_dropped: u64,
    pub arm_us_total: f64,
    pub collect_us_total: f64,
    /// Pages armed over the run (the `sampled_pages` column summed).
    #[serde(default)]
    pub armed_pages_total: u64,
    /// Sampler time per armed page: arming it and disarming it at collect
    /// (`(arm_us_total + collect_us_total) / armed_pages_total`), all of it
    /// inside the boundary hold, so guest time too. `None` when nothing
    /// was armed.
    #[serde(default)]
    pub arm_us_per_page: Option<f64>,
    /// Guest time lost per armed page, from the ops rate against the
    /// `--baseline` run: `slowdown × duration_s / armed_pages_total`. It
    /// holds everything tracking cost the guest (holds, tracked touches,
    /// host effects), so it bounds the arm cost from above. `None` without
    /// a baseline.
    #[serde(default)]
    pub guest_us_per_armed_page: Option<f64>,
    /// Time the guest was held at each interval's boundaries (see the
    /// `hold_us` column), microseconds: mean and largest over intervals.
    #[serde(default)]
    pub hold_us_mean: f64,
    #[serde(default)]
    pub hold_us_max: f64,
    /// Holds where the guest did not reach a clean point in time and was
    /// held mid-access (an untrusted guest's doing): those intervals may
    /// differ from the truth by the access in flight.
    #[serde(default)]
    pub forced_holds: u64,
    /// CPU time of the sampler (the main thread) during the run, seconds.
    pub sampler_cpu_s: f64,
    /// Time the guest's run loop spent stalled (tracked faults, and the
    /// host preempting the vCPU thread), microseconds.
    pub stall_us: f64,
    /// Slowdown against a baseline run without tracking; `None` without a
    /// baseline.
    pub slowdown: Option<f64>,
    pub baseline_guest_ops_per_s: Option<f64>,
    /// Guest operations per second of wall time over the scored
    /// intervals (full ones after the warm-up, the holds at their
    /// boundaries included): the throughput once boot and the first
    /// touches of pages are over. `None` without a scored interval.
    #[serde(default)]
    pub steady_guest_ops_per_s: Option<f64>,
    /// Tracked faults per second of wall time over the same intervals;
    /// `None` without a tracker or a scored interval.
    #[serde(default)]
    pub steady_faults_per_s: Option<f64>,
    /// The steady-state slowdown: `1 - steady_guest_ops_per_s` over the
    /// untracked twin's, both over their scored intervals. What tracking
    /// costs per interval, with one-time costs (boot, pages first touched
    /// through the tracker) left out; `slowdown` keeps them in. `None`
    /// without a baseline.
    #[serde(default)]
    pub steady_slowdown: Option<f64>,
    /// Guest time lost once, seconds: the whole run's loss less what the
    /// steady slowdown explains over the run's length (see
    /// `analysis::derived::one_time_lost_s`). `None` without a baseline.
    #[serde(default)]
    pub one_time_lost_s: Option<f64>,
    /// Pages the tracker filled at the guest's first touch of them (uffd:
    /// its `zero_filled_pages`); `None` for trackers that fill none.
    #[serde(default)]
    pub first_touch_pages: Option<u64>,
    /// `one_time_lost_s` per first-touched page, µs: what a first touch
    /// through the tracker costs the guest beyond a native one (an upper
    /// bound: boot differences are in it too). `None` without a baseline
    /// or such pages.
    #[serde(default)]
    pub first_touch_us_per_page: Option<f64>,
    /// What the tracking cost, in counters.
    pub tracker_stats: TrackerCounters,
    pub lag_up_events: u32,
    pub lag_down_events: u32,
    pub lag_unresolved: u32,
    /// The machine the run ran on; `None` in summaries written before it
    /// was recorded.
    #[serde(default)]
    pub host: Option<crate::study::host::Host>,
    /// What the guest counts as one operation in `guest_ops`: "accesses"
    /// unless the program named it (`Ctx::set_op_name`), escaped.
    #[serde(default)]
    pub op_name: String,
    /// The result slots the guest wrote (`Ctx::set_user`), in slot order.
    #[serde(default)]
    pub guest_results: Vec<GuestResult>,
    /// Full rows after warm-up: the rows the means and the accuracy are
    /// over. 0 when the run was too short for one.
    #[serde(default)]
    pub scored_intervals: u64,
    /// MAPE of the policy value (`policy_wss_pages`, ESX's max of its
    /// averages) over the same rows as `mape`, fraction; `None` without a
    /// policy value.
    #[serde(default)]
    pub policy_mape: Option<f64>,
    /// Share of the scored intervals whose truth lies inside the
    /// measurement's band `[est_lo_pages, est_hi_pages]`, fraction; a 95%
    /// band should hold it in about 0.95 of them. `None` without an estimate.
    #[serde(default)]
    pub band_coverage: Option<f64>,
    /// `lag_down_intervals` of the policy value: how many intervals an
    /// allocator following it keeps the memory of a shrunken working set.
    #[serde(default)]
    pub policy_lag_down_intervals: Option<f64>,
    /// vCPUs the guest ran on (`--vcpus`); summaries written before the
    /// field existed are of one-vCPU runs.
    #[serde(default = "one_vcpu")]
    pub vcpus: u64,
    /// The CPU the vCPU and its fault handler shared (`--cpu`, see
    /// `vmm::affinity`); absent when the scheduler placed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    /// What reclaim did under a resident limit (`--resident-limit`):
    /// resident pages mean and max, evictions, refaults and their time,
    /// the store at the end. Absent without a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim: Option<crate::coordinate::reclaim::ReclaimSummary>,
}

impl Summary {
    /// Whether this summary's `mape` (and lags) score ESX's policy value
    /// rather than its measurement: ESX summaries written before
    /// `policy_mape` existed did. Readers that mix old and new summaries
    /// say so rather than compare the two as one quantity.
    pub fn mape_is_of_policy(&self) -> bool {
        self.estimator == Some(EstimatorKind::Esx)
            && self.mape.is_some()
            && self.policy_mape.is_none()
    }
}

/// What a summary without a `vcpus` field ran on.
fn one_vcpu() -> u64 {
    1
}

/// One result slot the guest wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestResult {
    pub slot: u64,
    /// The program's name for it (escaped), or `user<slot>`.
    pub name: String,
    pub value: u64,
}

impl GuestResult {
    /// The slots the guest wrote in its status block, in slot order.
    pub fn all_in(status: &wss_abi::Status) -> Vec<GuestResult> {
        status
            .results()
            .map(|(slot, name, value)| GuestResult {
                slot: slot as u64,
                name: match name {
                    "" => format!("user{slot}"),
                    name => crate::vmm::exit::escape_guest_text(name),
                },
                value,
            })
            .collect()
    }
}

impl Summary {
    /// Fills the cost fields: arm and collect totals, pages armed, the
    /// sampler's time per armed page, and, against a `--baseline` run, the
    /// slowdown and the guest time lost per armed page. The one place these
    /// are computed.
    /// The steady figures skip the summary's `warmup_intervals`, so
    /// [`Summary::record_accuracy`] goes first.
    pub fn record_costs(&mut self, rows: &[Row], baseline: Option<&Summary>) {
        let warmup = usize::try_from(self.warmup_intervals).unwrap_or(usize::MAX);
        self.record_costs_of(&CostTally::over(rows, warmup), baseline);
    }

    /// [`Summary::record_costs`] from a tally the rows were streamed into.
    pub fn record_costs_of(&mut self, costs: &CostTally, baseline: Option<&Summary>) {
        self.arm_us_total = costs.arm_us_total();
        self.collect_us_total = costs.collect_us_total();
        self.armed_pages_total = costs.armed_pages_total();
        self.arm_us_per_page = derived::sampler_us_per_armed_page(
            self.arm_us_total,
            self.collect_us_total,
            self.armed_pages_total,
        );
        self.baseline_guest_ops_per_s = baseline.map(|b| b.guest_ops_per_s);
        self.slowdown =
            baseline.and_then(|b| derived::slowdown(self.guest_ops_per_s, b.guest_ops_per_s));
        self.guest_us_per_armed_page = derived::guest_us_per_armed_page(
            self.slowdown,
            self.duration_s,
            self.armed_pages_total,
        );
        self.steady_guest_ops_per_s = costs.steady_ops_per_s();
        self.steady_faults_per_s = costs
            .steady_faults_per_s()
            .filter(|_| self.tracked_faults.is_some());
        self.steady_slowdown = baseline.and_then(|b| {
            derived::slowdown(self.steady_guest_ops_per_s?, b.steady_guest_ops_per_s?)
        });
        self.one_time_lost_s =
            derived::one_time_lost_s(self.slowdown, self.steady_slowdown, self.duration_s);
        self.first_touch_pages = derived::first_touch_pages(self);
        self.first_touch_us_per_page =
            derived::first_touch_us_per_page(self.one_time_lost_s, self.first_touch_pages);
    }

    /// Fills the accuracy fields (WSS means, error metrics, lags, and the
    /// settings they depend on) from the time series, and returns the
    /// metrics for callers that print them: [`Summary::record_accuracy_of`]
    /// over the rows' tally.
    pub fn record_accuracy(
        &mut self,
        rows: &[Row],
        warmup_intervals: usize,
        truth: TruthColumn,
    ) -> Metrics {
        self.record_accuracy_of(&AccuracyTally::over(rows, warmup_intervals, truth))
    }

    /// Fills the accuracy fields from a tally the rows were streamed into
    /// (a run keeps the tally, not its rows), and returns the metrics.
    pub fn record_accuracy_of(&mut self, tally: &AccuracyTally) -> Metrics {
        let m = tally.metrics();
        let means = tally.wss_means();
        self.true_wss_mean_pages = means.true_wss_pages;
        self.true_wss_write_mean_pages = means.true_wss_write_pages;
        self.scored_intervals = u64::try_from(means.rows).unwrap_or(u64::MAX);
        self.est_wss_mean_pages = means.est_wss_pages;
        self.mae_pages = m.mae_pages;
        self.mape = m.mape;
        self.policy_mape = m.policy_mape;
        self.band_coverage = m.band_coverage;
        self.policy_lag_down_intervals = m.policy_lag_down_intervals;
        self.bias_pages = m.bias_pages;
        self.lag_up_intervals = m.lag_up_intervals;
        self.lag_down_intervals = m.lag_down_intervals;
        self.lag_up_events = m.lag_up_events;
        self.lag_down_events = m.lag_down_events;
        self.lag_unresolved = m.lag_unresolved;
        self.warmup_intervals = u64::try_from(tally.warmup_intervals()).unwrap_or(u64::MAX);
        self.compared_against = tally.truth();
        m
    }
}

/// Writes `summary` as pretty JSON with a trailing newline.
pub fn write_summary(path: &Path, summary: &Summary) -> Result<(), ReportError> {
    let mut text = serde_json::to_string_pretty(summary).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    super::write_atomic(path, text.as_bytes())
}

/// Reads a summary.json written by [`write_summary`].
pub fn read_summary(path: &Path) -> Result<Summary, ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ReportError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    const CONTRACT_FIELDS: [&str; 24] = [
        "guest",
        "tracker",
        "estimator",
        "mem_pages",
        "sample_pages",
        "interval_s",
        "duration_s",
        "intervals",
        "true_wss_mean_pages",
        "true_wss_write_mean_pages",
        "est_wss_mean_pages",
        "mae_pages",
        "mape",
        "bias_pages",
        "lag_up_intervals",
        "lag_down_intervals",
        "tracked_faults",
        "fault_cost_us",
        "guest_ops",
        "guest_ops_per_s",
        "vmm_cpu_s",
        // The first extras whose names other tools rely on.
        "compared_against",
        "end",
        "phases",
    ];

    fn sample() -> Summary {
        let mut stats = TrackerCounters {
            guest_stalls: 7,
            stall_us_per_fault: Some(2.5),
            ..TrackerCounters::default()
        };
        stats.mechanism.insert("exits".into(), 42);
        Summary {
            guest: "phases".into(),
            tracker: crate::track::TrackerKind::Uffd,
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            mem_pages: 65536,
            sample_pages: Some(512),
            interval_s: 0.1,
            duration_s: 10.0,
            intervals: 100,
            guest_ops: 1_000_000,
            guest_ops_per_s: 100_000.0,
            vmm_cpu_s: 1.5,
            end: crate::report::summary::EndKind::Duration,
            guest_checksum: Some("deadbeef".into()),
            phases: vec![Phase {
                t_s: 2.5,
                marker: 1,
            }],
            tracker_stats: stats,
            ..Summary::default()
        }
    }

    #[test]
    fn json_has_every_contract_field_including_nulls() {
        let value = serde_json::to_value(Summary::default()).unwrap();
        let obj = value.as_object().unwrap();
        for name in CONTRACT_FIELDS {
            assert!(obj.contains_key(name), "missing {name}");
        }
        // The contract fields come first and in order (serde_json::Value
        // sorts keys, so check the text).
        let text = serde_json::to_string(&Summary::default()).unwrap();
        let at: Vec<usize> = CONTRACT_FIELDS[..21]
            .iter()
            .map(|name| text.find(&format!("\"{name}\":")).unwrap())
            .collect();
        assert_eq!(at[0], 1);
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        assert!(at[20] < text.find("\"wss_bytes\":").unwrap());
        for name in [
            "estimator",
            "sample_pages",
            "est_wss_mean_pages",
            "mae_pages",
            "mape",
            "bias_pages",
            "lag_up_intervals",
            "lag_down_intervals",
            "tracked_faults",
            "fault_cost_us",
            "guest_exit_code",
            "guest_checksum",
            "slowdown",
            "baseline_guest_ops_per_s",
        ] {
            assert_eq!(obj[name], serde_json::Value::Null, "{name} should be null");
        }
    }

    #[test]
    fn write_then_read_round_trips_as_pretty_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        let s = sample();
        write_summary(&path, &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.contains("\n  \"guest\": \"phases\",\n"));
        assert!(text.contains("\"mape\": null"));
        assert!(text.contains("\"exits\": 42"));
        assert_eq!(read_summary(&path).unwrap(), s);
    }

    #[test]
    fn only_old_esx_summaries_score_the_policy_as_mape() {
        let new = Summary {
            estimator: Some(EstimatorKind::Esx),
            mape: Some(0.1),
            policy_mape: Some(0.4),
            ..Summary::default()
        };
        assert!(!new.mape_is_of_policy());
        let old = Summary {
            policy_mape: None,
            ..new.clone()
        };
        assert!(old.mape_is_of_policy());
        let damon = Summary {
            estimator: Some(EstimatorKind::Damon),
            ..old.clone()
        };
        assert!(!damon.mape_is_of_policy());
        let untracked = Summary {
            estimator: None,
            mape: None,
            ..old
        };
        assert!(!untracked.mape_is_of_policy());
    }

    #[test]
    fn a_summary_without_vcpus_is_of_one_vcpu() {
        let mut value = serde_json::to_value(Summary {
            vcpus: 4,
            ..sample()
        })
        .unwrap();
        assert_eq!(value["vcpus"], 4);
        value.as_object_mut().unwrap().remove("vcpus");
        let old: Summary = serde_json::from_value(value).unwrap();
        assert_eq!(old.vcpus, 1);
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        std::fs::write(&path, "{\"guest\": 3}").unwrap();
        match read_summary(&path) {
            Err(ReportError::Json { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected a JSON error, got {other:?}"),
        }
        assert!(matches!(
            read_summary(&dir.path().join("none.json")),
            Err(ReportError::Io { .. })
        ));
    }

    #[test]
    fn record_costs_per_armed_page() {
        let mut rows: Vec<Row> = (0..4).map(|i| row(i as f64, 100, Some(100.0))).collect();
        for r in &mut rows {
            r.sampled_pages = 1000;
            r.arm_us = 300.0;
            r.collect_us = 100.0;
        }
        let mut s = sample();
        s.duration_s = 2.0;
        s.guest_ops_per_s = 90.0;
        s.record_costs(&rows, None);
        assert_eq!((s.arm_us_total, s.collect_us_total), (1200.0, 400.0));
        assert_eq!(s.armed_pages_total, 4000);
        assert_eq!(s.arm_us_per_page, Some(0.4));
        assert_eq!((s.slowdown, s.guest_us_per_armed_page), (None, None));

        let mut baseline = sample();
        baseline.guest_ops_per_s = 100.0;
        s.record_costs(&rows, Some(&baseline));
        assert_eq!(s.baseline_guest_ops_per_s, Some(100.0));
        let slowdown = s.slowdown.unwrap();
        assert!((slowdown - 0.1).abs() < 1e-12);
        // 10% of 2 s is 200 ms lost, over 4000 armed pages.
        assert!((s.guest_us_per_armed_page.unwrap() - 50.0).abs() < 1e-9);

        // A warm-up of 0 scores every row: no guest operation in these 3 s.
        assert_eq!(s.steady_guest_ops_per_s, Some(0.0));
        assert_eq!(s.steady_slowdown, None, "the twin has no steady rate");

        // Nothing armed (no tracker): no per-page figures; a dead baseline
        // gives no slowdown.
        baseline.guest_ops_per_s = 0.0;
        s.record_costs(&[], Some(&baseline));
        assert_eq!((s.arm_us_per_page, s.guest_us_per_armed_page), (None, None));
        assert_eq!(s.slowdown, None);
    }

    #[test]
    fn record_costs_separates_the_steady_loss_from_the_one_time_one() {
        // A uffd run of 10 rows of 1 s: the first 4 (the warm-up) crawl
        // while the tracker fills 65536 never-touched pages, then 800 ops
        // per second; its twin does 1000 per second throughout.
        let rows_of = |warm_ops: u64, ops: u64| -> Vec<Row> {
            (0..10)
                .map(|i| {
                    let mut r = row(i as f64 + 1.0, 100, Some(100.0));
                    r.guest_ops = if i < 4 { warm_ops } else { ops };
                    r.faults = 50;
                    r
                })
                .collect()
        };
        let mut twin = sample();
        twin.tracker = TrackerKind::None;
        twin.tracked_faults = None;
        twin.duration_s = 10.0;
        twin.warmup_intervals = 4;
        twin.guest_ops_per_s = 1000.0;
        twin.record_costs(&rows_of(1000, 1000), None);
        assert_eq!(twin.steady_guest_ops_per_s, Some(1000.0));
        assert_eq!(twin.steady_faults_per_s, None, "no tracker, no fault rate");

        let mut s = sample();
        s.duration_s = 10.0;
        s.warmup_intervals = 4;
        s.tracked_faults = Some(500);
        s.tracker_stats
            .mechanism
            .insert(derived::FIRST_TOUCH_COUNTER.into(), 65536);
        let rows = rows_of(100, 800);
        // 4 × 100 + 6 × 800 ops over 10 s.
        s.guest_ops_per_s = 520.0;
        s.record_costs(&rows, Some(&twin));
        assert!((s.slowdown.unwrap() - 0.48).abs() < 1e-12);
        assert_eq!(s.steady_guest_ops_per_s, Some(800.0));
        assert_eq!(s.steady_faults_per_s, Some(50.0));
        assert!((s.steady_slowdown.unwrap() - 0.2).abs() < 1e-12);
        // 4.8 s lost, 2 s of it the steady 20%: 2.8 s once, over 65536
        // pages.
        assert!((s.one_time_lost_s.unwrap() - 2.8).abs() < 1e-9);
        assert_eq!(s.first_touch_pages, Some(65536));
        let per_page = s.first_touch_us_per_page.unwrap();
        assert!((per_page - 2.8e6 / 65536.0).abs() < 1e-6);
        // Written beside the whole-run slowdown.
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["steady_guest_ops_per_s"], 800.0);
        assert_eq!(v["first_touch_pages"], 65536);
    }

    #[test]
    fn record_accuracy_fills_the_accuracy_fields() {
        let mut rows: Vec<Row> = [(1000, 0.0), (100, 110.0), (200, 180.0)]
            .iter()
            .enumerate()
            .map(|(i, &(t, e))| row(i as f64, t, Some(e)))
            .collect();
        rows[2].policy_wss_pages = Some(300.0);
        let mut s = sample();
        let m = s.record_accuracy(&rows, 1, TruthColumn::All);
        assert_eq!(s.mae_pages, Some(15.0));
        assert_eq!(s.bias_pages, Some(-5.0));
        assert_eq!(s.mape, Some(0.1));
        // Policy: |110-100|/100 and |300-200|/200.
        assert_eq!(s.policy_mape, Some(0.3));
        // The policy value of row 1 (110) is within 110% of its truth at once.
        assert_eq!(s.policy_lag_down_intervals, Some(0.0));
        // Bands [99, 121] and [162, 198]: only the first holds its truth.
        assert_eq!(s.band_coverage, Some(0.5));
        assert_eq!(s.true_wss_mean_pages, 150.0);
        assert_eq!(s.true_wss_write_mean_pages, 75.0);
        assert_eq!(s.est_wss_mean_pages, Some(145.0));
        // 100 -> 200 is a growth, and 180 >= 0.9 × 200 resolves it at once.
        assert_eq!(s.lag_up_events, 1);
        assert_eq!(s.lag_up_intervals, Some(0.0));
        // The fall 1000 -> 100 out of the warm-up row counts too, and
        // 110 <= 1.1 × 100 resolves it at once.
        assert_eq!(s.lag_down_events, 1);
        assert_eq!(s.lag_down_intervals, Some(0.0));
        assert_eq!(s.warmup_intervals, 1);
        assert_eq!(s.scored_intervals, 2);
        assert_eq!(s.compared_against, TruthColumn::All);
        assert_eq!(m.mae_pages, s.mae_pages);
    }

    /// `a` and `b` are the same JSON, numbers equal to within rounding
    /// (serde_json may parse a float to a neighbouring value).
    fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                _ => x == y,
            },
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w))
            }
            _ => a == b,
        }
    }

    #[test]
    fn summaries_of_the_study_runs_still_load_and_write_the_same_fields() {
        let runs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/study/runs");
        let mut seen = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&runs).unwrap() {
            let path = entry.unwrap().path().join("summary.json");
            let text = std::fs::read_to_string(&path).unwrap();
            let old: serde_json::Value = serde_json::from_str(&text).unwrap();
            let typed = read_summary(&path).unwrap();
            let new = serde_json::to_value(&typed).unwrap();
            for key in [
                "tracker",
                "estimator",
                "end",
                "compared_against",
                "tracker_stats",
            ] {
                assert!(
                    same_json(&old[key], &new[key]),
                    "{}: {key}: {} became {}",
                    path.display(),
                    old[key],
                    new[key]
                );
            }
            seen.insert((typed.tracker.name(), typed.compared_against.column_name()));
        }
        // Every tracker the study runs, each against its truth column.
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                ("dirty-log", "true_wss_write_pages"),
                ("mprotect", "true_wss_pages"),
                ("uffd", "true_wss_pages"),
            ]
        );
    }

    #[test]
    fn typed_fields_write_the_historical_strings() {
        let s = Summary {
            tracker: TrackerKind::DirtyLog,
            estimator: Some(EstimatorKind::Exhaustive),
            end: EndKind::GuestCrash,
            compared_against: TruthColumn::Writes,
            ..Summary::default()
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["tracker"], "dirty-log");
        assert_eq!(v["estimator"], "exhaustive");
        assert_eq!(v["end"], "guest_crash");
        assert_eq!(v["compared_against"], "true_wss_write_pages");
        // Counters measured only with a tracker are left out, not null.
        assert_eq!(
            serde_json::to_string(&TrackerCounters::default()).unwrap(),
            r#"{"vcpu_thread_cpu_s":0.0,"guest_stalls":0,"rejected_hypercalls":0}"#
        );
        let ends = [
            (RunEnd::Duration, "duration"),
            (RunEnd::GuestExit(3), "guest_exit"),
            (RunEnd::Interrupted, "interrupted"),
            (RunEnd::GuestCrash("x".into()), "guest_crash"),
            (
                RunEnd::Error(crate::run::RunFailure::Vcpu(
                    crate::vmm::vcpu_thread::VcpuLoopError::Panicked,
                )),
                "error",
            ),
        ];
        for (end, label) in ends {
            let kind = EndKind::from(&end);
            assert_eq!(kind.label(), label);
            assert_eq!(kind.label(), end.label());
            assert_eq!(serde_json::to_value(kind).unwrap(), label);
        }
        // An unknown end is refused, not read as a default.
        let bad = serde_json::to_string(&s)
            .unwrap()
            .replace("guest_crash", "exploded");
        assert!(serde_json::from_str::<Summary>(&bad).is_err());
    }

    #[test]
    fn guest_results_are_the_written_slots_named_and_escaped() {
        let mut status = wss_abi::Status {
            user: [10, 11, 12, 13, 14, 15, 16, 17],
            user_set: 0b1000_0101,
            ..Default::default()
        };
        wss_abi::fill_name(&mut status.user_names[2], "hits\n");
        let got = GuestResult::all_in(&status);
        let want = [(0, "user0", 10), (2, "hits\\n", 12), (7, "user7", 17)];
        assert_eq!(got.len(), want.len());
        for (g, (slot, name, value)) in got.iter().zip(want) {
            assert_eq!((g.slot, g.name.as_str(), g.value), (slot, name, value));
        }
    }
}
