//! The arming half of `bench trackers`: what a sample costs the guest
//! beyond its tracked touches, through kvm-wss and through the floor
//! (floor.rs), boots alternating, on the same probe guest.
//!
//! - **arm cost**: each tracked round arms [`ARMED_PER_ROUND`] scattered
//!   pages the probe never touches (every fourth page of its region, a
//!   fresh set each round, as a sampler's fresh sample), and collects them.
//!   Guest time lost per armed page: the time the round's arm and collect
//!   held the vCPU out of the guest (the sync hook runs on the vCPU
//!   thread, as the sampler's hold does), plus the extra cycles of the
//!   round's touches over those of the rounds that arm nothing, over the
//!   armed pages. Rounds that arm nothing alternate with the measured ones
//!   in the same boot, so the baseline sees the same caches and host.
//! - **in-situ touch cost**: the same, plus [`TOUCHED_PER_ROUND`] pages the
//!   probe does touch (about 1 in 128 armed pages, the ratio of `seq --wss
//!   4M --mem 512M` at 3200 samples per 100 ms): guest time lost per
//!   tracked touch, arming included.
//! - **arm cost with the vCPU running** (floor only): the arm cost of the
//!   floor whose arm and collect run on another thread while the guest runs
//!   (concurrent.rs), the probe visiting its region [`RUNNING_PASSES`]
//!   times a round so that the round outlasts the arming. Guest time lost
//!   is counted as above: the wait at the round's end for an arming thread
//!   that outlasted it, plus the extra cycles of the touches (which are
//!   timed; the few instructions between them are not).

use crate::vmm::affinity::Placement;
use serde::Serialize;

use super::load::{HostLoad, LoadWatch};
use super::trackers::{KINDS, Side};
use super::{BenchError, Spread, median};
use crate::calibrate::{
    Plan, Region, RoundSample, boot_rounds, cycles_per_touch, probe_touch_order,
};
use crate::track::RamPage;
use crate::vmm::paging::GuestPageSize;

/// Untouched pages armed per round.
pub const ARMED_PER_ROUND: u64 = 1600;
/// Touched pages armed per round in the in-situ scenario.
pub const TOUCHED_PER_ROUND: u64 = 12;

/// Issue 9's sampling rate, at which the README's table states what the
/// arm cost alone takes of the guest's time: 3200 pages per 100 ms.
pub const ISSUE_PAGES: u64 = 3200;
pub const ISSUE_INTERVAL_S: f64 = 0.1;

/// Visits of the region per round when the floor arms while the guest
/// runs: ~60 ms of touches a round here, longer than the slowest floor's
/// arm and collect of [`ARMED_PER_ROUND`] pages (mprotect, ~15 ms).
pub const RUNNING_PASSES: u64 = 32;

/// The two scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Arm,
    InSitu,
}

/// Region pages for `rounds` fresh sets of [`ARMED_PER_ROUND`] untouched
/// pages (every fourth page is untouched).
pub fn region_pages(rounds: u64) -> u64 {
    4 * ARMED_PER_ROUND * rounds
}

/// Set r (0-based) of `rounds` holds the untouched pages `first + 4j + 3`
/// with `j ≡ r (mod rounds)`, and with `touched` > 0 also that many pages
/// the probe writes, spread evenly over its touch order.
pub(super) fn plan(region: Region, rounds: u64, touched: u64) -> Vec<Vec<RamPage>> {
    let untouched = region.pages / 4;
    let touches = region.pages - untouched;
    let step = touches.checked_div(touched).unwrap_or(0).max(1);
    (0..rounds.max(1))
        .map(|r| {
            let mut pages: Vec<RamPage> = (r..untouched)
                .step_by(rounds.max(1) as usize)
                .map(|j| region.first + 4 * j + 3)
                .chain(
                    (0..touched.min(touches))
                        // Touches of classes 1 and 2 (k % 3 = 1, 2):
                        // written, so the dirty log sees them too.
                        .map(|i| (i * step / 3 * 3 + 1 + i % 2).min(touches - 1))
                        .map(|k| region.first + probe_touch_order(k)),
                )
                .collect();
            pages.sort_unstable();
            pages
        })
        .collect()
}

/// Guest time lost in a tracked round, microseconds: its hold plus the
/// cycles of its touches beyond `baseline_cpt` each.
pub fn lost_us(s: &RoundSample, baseline_cpt: f64, tsc_hz: u64) -> f64 {
    let extra = s.cycles as f64 - s.touches as f64 * baseline_cpt;
    s.hold_ns as f64 / 1e3 + extra / tsc_hz.max(1) as f64 * 1e6
}

/// One cost through kvm-wss and the floor, over every tracked round of
/// every repetition, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct SideBySide {
    pub kvmwss_us: Spread,
    pub floor_us: Spread,
    /// kvm-wss median over floor median.
    pub ratio: f64,
    /// Of kvm-wss's time, the part spent holding the guest (arm and
    /// collect), median per unit.
    pub kvmwss_hold_us: f64,
    pub floor_hold_us: f64,
}

/// The floor's arm cost with the vCPU running, beside the held one.
#[derive(Debug, Clone, Serialize)]
pub struct RunningCost {
    /// Guest time lost per armed page, µs.
    pub floor_us: Spread,
    /// Of it, the wait for an arming thread that outlasted the round,
    /// median per page.
    pub floor_hold_us: f64,
    /// Median over the held floor's median (`arm_us_per_page.floor_us`).
    pub ratio_to_held: f64,
}

/// One tracker's arming costs.
#[derive(Debug, Clone, Serialize)]
pub struct ArmingCost {
    pub tracker: &'static str,
    /// Per armed page the guest never touches.
    pub arm_us_per_page: SideBySide,
    /// The same through the floor, armed while the guest runs.
    pub arm_us_per_page_vcpu_running: RunningCost,
    /// Per tracked touch, arming included.
    pub in_situ_us_per_touch: SideBySide,
    /// Tracked touches per in-situ round (median, kvm-wss).
    pub in_situ_tracked_per_round: u64,
}

/// The arming benchmark, with the machine's load around it.
#[derive(Debug, Clone, Serialize)]
pub struct ArmingResult {
    pub armed_untouched_per_round: u64,
    pub armed_touched_per_round: u64,
    pub rounds: u64,
    /// The load around the benchmark (see `load::is_quiet`).
    #[serde(flatten)]
    pub load: HostLoad,
    pub trackers: Vec<ArmingCost>,
}

/// Per-unit costs of one boot's measured rounds: (lost, hold) per unit,
/// where a round's units are its armed untouched pages (`Arm`) or its
/// tracked touches (`InSitu`). Tracked rounds 1, 3, 5, ... arm; rounds 2,
/// 4, ... arm nothing and give the baseline cycles per touch (round 0,
/// which follows boot, is left out).
fn per_unit(samples: &[RoundSample], tsc_hz: u64, scenario: Scenario) -> Vec<(f64, f64)> {
    let empty = samples
        .iter()
        .skip(2)
        .step_by(2)
        .filter_map(cycles_per_touch);
    let Some(baseline) = median(empty) else {
        return Vec::new();
    };
    samples
        .iter()
        .skip(1)
        .step_by(2)
        .filter_map(|s| {
            let units = match scenario {
                Scenario::Arm => ARMED_PER_ROUND,
                Scenario::InSitu => s.tracked,
            };
            (units > 0).then(|| {
                let u = units as f64;
                (lost_us(s, baseline, tsc_hz) / u, s.hold_ns as f64 / 1e3 / u)
            })
        })
        .collect()
}

fn side_by_side(k: &[(f64, f64)], f: &[(f64, f64)]) -> SideBySide {
    let lost = |v: &[(f64, f64)]| Spread::of(&v.iter().map(|x| x.0).collect::<Vec<_>>());
    let hold = |v: &[(f64, f64)]| median(v.iter().map(|x| x.1)).unwrap_or(f64::NAN);
    let (kvmwss_us, floor_us) = (lost(k), lost(f));
    SideBySide {
        ratio: kvmwss_us.median / floor_us.median,
        kvmwss_us,
        floor_us,
        kvmwss_hold_us: hold(k),
        floor_hold_us: hold(f),
    }
}

/// The running floor's (lost, hold) per page, beside the held floor's.
fn running_cost(running: &[(f64, f64)], held: &SideBySide) -> RunningCost {
    let floor_us = Spread::of(&running.iter().map(|x| x.0).collect::<Vec<_>>());
    RunningCost {
        ratio_to_held: floor_us.median / held.floor_us.median,
        floor_us,
        floor_hold_us: median(running.iter().map(|x| x.1)).unwrap_or(f64::NAN),
    }
}

/// The sets of `plan`, each followed by a round that arms nothing.
fn with_empty_rounds(sets: Vec<Vec<RamPage>>) -> Plan {
    Plan {
        rounds: sets.into_iter().flat_map(|s| [s, Vec::new()]).collect(),
    }
}

fn arm_planner(region: Region) -> Plan {
    with_empty_rounds(plan(region, region.pages / (4 * ARMED_PER_ROUND), 0))
}

fn in_situ_planner(region: Region) -> Plan {
    let rounds = region.pages / (4 * ARMED_PER_ROUND);
    with_empty_rounds(plan(region, rounds, TOUCHED_PER_ROUND))
}

/// Runs both scenarios for every tracker: `rounds` repetitions of a
/// kvm-wss boot then a floor boot, each of `rounds` tracked rounds.
pub fn arming(rounds: u64, guest_pages: GuestPageSize) -> Result<ArmingResult, BenchError> {
    let load = LoadWatch::start();
    let pages = region_pages(rounds);
    let mut out = Vec::new();
    for kind in KINDS {
        let mut costs = Vec::new();
        let mut tracked = Vec::new();
        let mut running = Vec::new();
        for (scenario, planner) in [
            (Scenario::Arm, arm_planner as fn(Region) -> Plan),
            (Scenario::InSitu, in_situ_planner),
        ] {
            let sides: &[Side] = match scenario {
                Scenario::Arm => &[Side::KvmWss, Side::Floor, Side::FloorRunning],
                Scenario::InSitu => &[Side::KvmWss, Side::Floor],
            };
            let (mut k, mut f) = (Vec::new(), Vec::new());
            for rep in 0..rounds {
                for &side in sides {
                    log::info!(
                        "bench trackers: arming {scenario:?} {} {} repetition {}/{rounds}",
                        kind.name(),
                        side.name(),
                        rep + 1
                    );
                    let passes = match side {
                        Side::FloorRunning => RUNNING_PASSES,
                        Side::KvmWss | Side::Floor => 1,
                    };
                    let b = boot_rounds(
                        kind,
                        side.driver(),
                        pages,
                        (2 * rounds, passes),
                        (guest_pages, Placement::Auto),
                        planner,
                    )?;
                    if side == Side::KvmWss && scenario == Scenario::InSitu {
                        // The rounds that arm (1, 3, 5, ...), as `per_unit`
                        // takes them; the empty rounds between catch nothing.
                        tracked.extend(
                            b.samples
                                .iter()
                                .skip(1)
                                .step_by(2)
                                .map(|s| s.tracked as f64),
                        );
                    }
                    let units = per_unit(&b.samples, b.tsc_hz, scenario);
                    match side {
                        Side::KvmWss => k.extend(units),
                        Side::Floor => f.extend(units),
                        Side::FloorRunning => running.extend(units),
                    }
                }
            }
            costs.push(side_by_side(&k, &f));
        }
        let in_situ = costs.pop();
        let arm = costs.pop();
        if let (Some(arm), Some(in_situ)) = (arm, in_situ) {
            out.push(ArmingCost {
                tracker: kind.name(),
                arm_us_per_page_vcpu_running: running_cost(&running, &arm),
                arm_us_per_page: arm,
                in_situ_us_per_touch: in_situ,
                in_situ_tracked_per_round: median(tracked).map_or(0, |m| m.round() as u64),
            });
        }
    }
    Ok(ArmingResult {
        armed_untouched_per_round: ARMED_PER_ROUND,
        armed_touched_per_round: TOUCHED_PER_ROUND,
        rounds,
        load: load.finish(),
        trackers: out,
    })
}

/// `median (min–max)` of a spread at `digits` decimals.
fn cell(s: &Spread, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

/// Percent of the guest's time that arming alone takes at issue 9's rate.
fn at_issue_rate(us_per_page: f64) -> String {
    crate::analysis::derived::slowdown_of_arming(us_per_page, ISSUE_PAGES, ISSUE_INTERVAL_S)
        .map_or("–".into(), |s| format!("{:.1} %", 100.0 * s))
}

/// The arming section as the README shows it, every number from `r`.
pub fn markdown(r: &ArmingResult) -> String {
    let digits = |t: &ArmingCost| {
        if t.arm_us_per_page.floor_us.median < 1.0 {
            3
        } else {
            2
        }
    };
    let mut out = String::from(
        "| tracker | arm cost, kvm-wss / floor held (µs per armed page) | ratio | floor with the vCPU running (µs per armed page) | running / held | arming alone at 3200 such pages per 100 ms, floor held / running | in-situ touch cost, kvm-wss / floor (µs per tracked touch) | ratio |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for t in &r.trackers {
        let (a, run, i) = (
            &t.arm_us_per_page,
            &t.arm_us_per_page_vcpu_running,
            &t.in_situ_us_per_touch,
        );
        let d = digits(t);
        out += &format!(
            "| {} | {} / {} | {:.2} | {} | {:.2} | {} / {} | {} / {} | {:.2} |\n",
            t.tracker,
            cell(&a.kvmwss_us, d),
            cell(&a.floor_us, d),
            a.ratio,
            cell(&run.floor_us, d),
            run.ratio_to_held,
            at_issue_rate(a.floor_us.median),
            at_issue_rate(run.floor_us.median),
            cell(&i.kvmwss_us, 1),
            cell(&i.floor_us, 1),
            i.ratio,
        );
    }
    out += &format!(
        "\nMedians (min–max) over the armed rounds of {} boots per side, {} armed rounds each; {} \
         untouched pages armed per round ({} more touched in the in-situ rounds), every one \
         resident and mapped. {}\n",
        r.rounds,
        r.rounds,
        r.armed_untouched_per_round,
        r.armed_touched_per_round,
        r.load.sentence(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_arm_fresh_untouched_pages_each_round_and_a_few_touched() {
        let region = Region {
            first: 100,
            pages: region_pages(2),
        };
        let p = plan(region, 2, 0);
        assert_eq!(p.len(), 2);
        for (r, armed) in p.iter().enumerate() {
            assert_eq!(armed.len() as u64, ARMED_PER_ROUND);
            assert!(armed.iter().all(|&x| (x - 100) % 4 == 3));
            assert!(armed.windows(2).all(|w| w[1] - w[0] == 8), "scattered");
            assert_eq!(armed[0], 100 + 4 * r as u64 + 3);
        }
        let p = plan(region, 2, TOUCHED_PER_ROUND);
        let touched: Vec<_> = p[0].iter().filter(|&&x| (x - 100) % 4 != 3).collect();
        assert_eq!(touched.len() as u64, TOUCHED_PER_ROUND);
        // All written (classes 1 and 2), so the dirty log sees them too.
        assert!(touched.iter().all(|&&x| matches!((x - 100) % 4, 1 | 2)));
        assert!(p[0].windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    }

    #[test]
    fn lost_time_is_hold_plus_extra_cycles() {
        let s = RoundSample {
            cycles: 1000 * 10 + 4000,
            touches: 1000,
            tracked: 2,
            hold_ns: 3000,
        };
        // 3 us held, 4000 extra cycles at 1 GHz = 4 us.
        assert!((lost_us(&s, 10.0, 1_000_000_000) - 7.0).abs() < 1e-9);
        let untracked = RoundSample {
            cycles: 10_000,
            touches: 1000,
            tracked: 0,
            hold_ns: 0,
        };
        // Round 0's cost is left out; round 2's is the baseline.
        let samples = [
            RoundSample {
                cycles: 1,
                ..untracked
            },
            s,
            untracked,
        ];
        let u = per_unit(&samples, 1_000_000_000, Scenario::InSitu);
        assert_eq!(u.len(), 1);
        assert!((u[0].0 - 3.5).abs() < 1e-9 && (u[0].1 - 1.5).abs() < 1e-9);
        let sbs = side_by_side(&[(2.0, 1.0), (4.0, 1.0), (3.0, 1.0)], &[(2.0, 0.5)]);
        assert_eq!(
            sbs.kvmwss_us,
            Spread {
                min: 2.0,
                median: 3.0,
                max: 4.0
            }
        );
        assert_eq!(sbs.ratio, 1.5);
        let r = running_cost(&[(4.0, 0.0), (6.0, 1.0), (5.0, 0.5)], &sbs);
        assert_eq!(r.floor_us.median, 5.0);
        assert_eq!((r.floor_hold_us, r.ratio_to_held), (0.5, 2.5));
    }

    #[test]
    fn markdown_row_reads_the_figures() {
        let sbs =
            |k: f64, f: f64| side_by_side(&[(k, 1.0), (k + 1.0, 1.0), (k - 1.0, 1.0)], &[(f, 1.0)]);
        let arm = sbs(3.0, 2.0);
        let result = ArmingResult {
            armed_untouched_per_round: ARMED_PER_ROUND,
            armed_touched_per_round: TOUCHED_PER_ROUND,
            rounds: 5,
            load: HostLoad {
                cpus: 2,
                load_before: [1.0, 0.0, 0.0],
                load_after: [2.5, 0.0, 0.0],
                quiet: false,
            },
            trackers: vec![ArmingCost {
                tracker: "uffd",
                arm_us_per_page_vcpu_running: running_cost(&[(5.0, 0.0)], &arm),
                arm_us_per_page: arm,
                in_situ_us_per_touch: sbs(300.0, 250.0),
                in_situ_tracked_per_round: 12,
            }],
        };
        let md = markdown(&result);
        let row = md.lines().nth(2).unwrap_or_default();
        // 2 us per page at 3200 pages per 100 ms: 6.4 %; running 5 us: 16 %.
        assert_eq!(
            row,
            "| uffd | 3.00 (2.00–4.00) / 2.00 (2.00–2.00) | 1.50 | 5.00 (5.00–5.00) | 2.50 \
             | 6.4 % / 16.0 % | 300.0 (299.0–301.0) / 250.0 (250.0–250.0) | 1.20 |"
        );
        assert!(md.contains("Load average 1.0 before, 2.5 after, on 2 CPUs: not quiet."));
    }
}
