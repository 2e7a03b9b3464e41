//! Policies: how the host memory budget is split into per-VM resident
//! limits from what is known of each VM at an interval's end. Pure
//! functions of the VMs' states; the runner calls [`limits`] once per
//! interval, so a limit changes at most once per interval.
//!
//! Every policy keeps each running VM's limit within [its floor, its
//! `--mem`] and the limits' sum within the budget (the floors are checked
//! to fit before any guest boots, see [`min_host_pages`]).

use serde::Serialize;

use crate::estimate::EstimatorKind;
use crate::named::Named;

/// Which policy sets the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum PolicyKind {
    Static,
    Esx,
    Wss,
    Oracle,
}

impl Named for PolicyKind {
    const WHAT: &'static str = "policy";
    const ALL: &'static [PolicyKind] = &[
        PolicyKind::Static,
        PolicyKind::Esx,
        PolicyKind::Wss,
        PolicyKind::Oracle,
    ];

    fn name(self) -> &'static str {
        match self {
            PolicyKind::Static => "static",
            PolicyKind::Esx => "esx",
            PolicyKind::Wss => "wss",
            PolicyKind::Oracle => "oracle",
        }
    }

    fn help(self) -> &'static str {
        match self {
            PolicyKind::Static => "equal limits: the budget split evenly",
            PolicyKind::Esx => {
                "ESX: equal shares with the idle-memory tax (0.75) on its policy value"
            }
            PolicyKind::Wss => "each VM's measurement plus headroom, max-min fair under the budget",
            PolicyKind::Oracle => "the true WSS plus the same headroom (the yardstick)",
        }
    }
}

crate::named::named_impls!(PolicyKind);

impl PolicyKind {
    /// The estimator a VM runs when its scenario names none: the one whose
    /// values the policy is built on. `esx` reads ESX's never-under-
    /// provisioning policy value; `wss` needs a measurement that falls as
    /// fast as it rises, which is `follow` (ESX's stays high for ~19
    /// intervals after a fall); `static` and `oracle` act on no estimate,
    /// and show follow's beside their limits.
    pub fn estimator(self) -> EstimatorKind {
        match self {
            PolicyKind::Esx => EstimatorKind::Esx,
            PolicyKind::Static | PolicyKind::Wss | PolicyKind::Oracle => EstimatorKind::Follow,
        }
    }
}

/// ESX's idle-memory tax rate τ: an idle page costs 1/(1−τ) = 4 active
/// ones when shares-per-page ratios are compared (Waldspurger, OSDI 2002).
pub const IDLE_TAX: f64 = 0.75;

/// Headroom `wss` and `oracle` grant above the working set by default
/// (`--headroom`): the largest of 10% of it; (for `wss`) the estimate's band's upper edge, so that a
/// limit stays above the truth in the ~97.5% of intervals an honest 95%
/// band does; and the last interval's growth, because a limit set at an
/// interval's end is in force during the next one, and a growing working
/// set is one interval further on by then.
pub const DEFAULT_HEADROOM: f64 = 0.10;

/// The least limit a running VM gets, pages (4 MiB): a VM whose estimate
/// reads zero for an interval still keeps its hottest pages. It was 16 MiB,
/// which is headroom too: a VM that freed memory down to a working set of
/// 6.4 MiB (the built-in scenarios' ramps, 5% of 128M) kept 2.5 times that
/// resident for as long as it stayed freed, under `wss` and `oracle` alike.
pub const FLOOR_PAGES: u64 = 1024;

/// What the coordinator knows of one VM when an interval ends.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VmState {
    /// Guest RAM, pages: the most a limit grants.
    pub mem_pages: u64,
    /// Whether the VM still runs; a VM that ended gets no limit and
    /// takes nothing from the budget.
    pub running: bool,
    /// The interval's true WSS (data pages touched).
    pub true_wss_pages: Option<u64>,
    /// The estimator's measurement of the interval and its band's upper
    /// edge.
    pub est_pages: Option<f64>,
    pub est_hi_pages: Option<f64>,
    /// The estimator's policy value (ESX: max of its slow and fast
    /// averages).
    pub policy_pages: Option<f64>,
    /// The true WSS and measurement of the intervals before, the latest
    /// first, for the growth.
    pub earlier_true_wss_pages: [Option<u64>; GROWTH_WINDOW],
    pub earlier_est_pages: [Option<f64>; GROWTH_WINDOW],
    /// Data pages that came into memory in the interval other than by a
    /// restore (see [`first_touched`]); `None` without a limit before.
    pub first_touched_pages: Option<u64>,
}

impl VmState {
    fn floor(&self) -> u64 {
        FLOOR_PAGES.min(self.mem_pages)
    }

    fn clamp(&self, pages: f64) -> f64 {
        pages.clamp(self.floor() as f64, self.mem_pages as f64)
    }
}

/// The intervals before the latest whose growth [`with_headroom`] looks
/// at.
pub const GROWTH_WINDOW: usize = 3;

/// The least a working set is granted above itself, pages (8 MiB): a
/// reactive rule sees a VM that starts to grow from idle only after an
/// interval of growth, and grants the first growing interval nothing (its
/// estimate and its last growth were both about zero). A classic
/// coordinator keeps a minimum of free memory in every VM for this reason.
/// 8 MiB covers a ramp's first, partial interval at the pace these hosts
/// first-touch pages (the built-in scenarios grow by 3000-3300 pages a
/// second); without it, a VM that started growing from idle was below its
/// truth in two intervals of 27 (7%; consume-all, one run).
pub const MIN_HEADROOM_PAGES: f64 = 2048.0;

/// Data pages the guest brought into memory in an interval other than by
/// touching an evicted page: what was resident after this boundary and
/// evicted at it, less what was resident after the boundary before and
/// the evicted pages restored in between. All of it is the VMM's own
/// count (the uffd handler fills every hole), none of it the guest's
/// truth. A ramp that grows touches every page of its growth for the
/// first time, so this is its growth, measured exactly.
pub fn first_touched(
    resident_pages: u64,
    evicted_pages: u64,
    refaults: u64,
    resident_before: u64,
) -> u64 {
    (resident_pages + evicted_pages).saturating_sub(resident_before + refaults)
}

/// The pages a working set of `wss` pages is granted, `earlier` its sizes
/// in the intervals before (the latest first), `new_pages` the pages first
/// touched in the latest interval: `headroom` (a fraction,
/// [`DEFAULT_HEADROOM`] unless asked) above where one more interval of its
/// recent growth takes it, at least the band's upper edge `band_hi` plus
/// that growth, and at least [`MIN_HEADROOM_PAGES`] above it. One rule
/// for `wss` and `oracle`. A limit set at an interval's end is in force
/// during the next, so a growing working set needs its next size, and the
/// headroom on top of that, not on today's: granting only `wss + growth`
/// left a steadily growing VM a few dozen pages short in a third of its
/// growing intervals (consume-one, `make coordinate`). The growth is the
/// largest of the last [`GROWTH_WINDOW`] intervals' and of `new_pages`: a
/// sampled measurement that came out low makes the latest difference small
/// while the set kept growing. With the sample spread over the VMs' boot
/// memory as well, the latest difference alone left a growing VM in shift
/// below its truth in 3 of 25 intervals (one run); the largest of three
/// still left one 141 pages short after four estimates 8-14% low in a row
/// (shift, vm3, `make coordinate` at a1c7507), while the pages it first
/// touched, counted exactly, were its growth.
pub fn with_headroom(
    wss: f64,
    band_hi: Option<f64>,
    earlier: [Option<f64>; GROWTH_WINDOW],
    new_pages: f64,
    headroom: f64,
) -> f64 {
    let mut growth: f64 = new_pages;
    let mut later = wss;
    for size in earlier.iter().map_while(|e| *e) {
        growth = growth.max(later - size);
        later = size;
    }
    ((wss + growth) * (1.0 + headroom))
        .max(band_hi.unwrap_or(0.0) + growth)
        .max(wss + MIN_HEADROOM_PAGES)
}

/// The smallest budget that holds every VM's floor.
pub fn min_host_pages(mem_pages: &[u64]) -> u64 {
    mem_pages.iter().map(|&m| FLOOR_PAGES.min(m)).sum()
}

/// Each VM's limit under `policy` with `host_pages` to share and
/// `headroom` for `wss` and `oracle` (see [`with_headroom`]); `None` for
/// VMs that no longer run.
pub fn limits(
    policy: PolicyKind,
    host_pages: u64,
    headroom: f64,
    vms: &[VmState],
) -> Vec<Option<u64>> {
    let running: Vec<&VmState> = vms.iter().filter(|v| v.running).collect();
    let budget = host_pages as f64;
    let granted: Vec<u64> = match policy {
        PolicyKind::Static => {
            let share = budget / running.len().max(1) as f64;
            running.iter().map(|v| v.clamp(share) as u64).collect()
        }
        PolicyKind::Esx => esx(budget, &running),
        PolicyKind::Wss => {
            let demands: Vec<f64> = running
                .iter()
                .map(|v| match v.est_pages {
                    Some(e) => with_headroom(
                        e,
                        v.est_hi_pages,
                        v.earlier_est_pages,
                        v.first_touched_pages.unwrap_or(0) as f64,
                        headroom,
                    ),
                    // Nothing measured yet: all it has.
                    None => v.mem_pages as f64,
                })
                .collect();
            max_min_fair(budget, &running, &demands)
        }
        PolicyKind::Oracle => {
            let demands: Vec<f64> = running
                .iter()
                .map(|v| match v.true_wss_pages {
                    Some(t) => {
                        let earlier = v.earlier_true_wss_pages.map(|p| p.map(|p| p as f64));
                        // The truth's own growth needs no count of first touches.
                        with_headroom(t as f64, None, earlier, 0.0, headroom)
                    }
                    None => v.mem_pages as f64,
                })
                .collect();
            max_min_fair(budget, &running, &demands)
        }
    };
    let mut granted = granted.into_iter();
    vms.iter()
        .map(|v| if v.running { granted.next() } else { None })
        .collect()
}

/// The largest `x` in `[lo, hi]` with `total(x) <= budget`, for a
/// non-decreasing `total`, to well below a page.
fn solve(total: impl Fn(f64) -> f64, budget: f64, mut lo: f64, mut hi: f64) -> f64 {
    if total(hi) <= budget {
        return hi;
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if total(mid) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Whole pages, rounded down so the sum stays within the budget.
fn pages(values: impl Iterator<Item = f64>) -> Vec<u64> {
    values.map(|p| p.max(0.0).floor() as u64).collect()
}

/// Demands met in full when they fit; otherwise max-min fair: a water
/// level `L` such that each VM gets `min(demand, L)` (within its floor and
/// RAM) and the sum is the budget. Small VMs keep their whole demand and
/// only those above the level are cut, so the fewest VMs run below their
/// working set (scaling every demand by the same factor would put every VM
/// below it). A surplus stays unassigned: limits above the demand would
/// only let cold pages stay resident, which is what the coordinator is
/// there to reclaim.
fn max_min_fair(budget: f64, vms: &[&VmState], demands: &[f64]) -> Vec<u64> {
    let grant = |level: f64| -> Vec<f64> {
        vms.iter()
            .zip(demands)
            .map(|(v, &d)| v.clamp(d.min(level)))
            .collect()
    };
    let top = vms.iter().map(|v| v.mem_pages as f64).fold(0.0, f64::max);
    let level = solve(|l| grant(l).iter().sum(), budget, 0.0, top);
    pages(grant(level).into_iter())
}

/// ESX's allocation with equal shares S: the one that equalises the
/// adjusted shares-per-page ratio of Waldspurger's form
/// ρ = S / (P·(f + k·(1 − f))), with f = A/P the active fraction and
/// k = 1/(1 − τ). Since P·(f + k·(1 − f)) = k·P − (k − 1)·A, equal ρ gives
/// P_i = (S/ρ + (k − 1)·A_i) / k, and Σ P_i = H gives the closed form
/// S/ρ = (k·H − (k − 1)·ΣA) / N: each VM gets τ of its active pages plus an
/// equal part of the rest. With floors and RAM as bounds, S/ρ is the one
/// number that makes the clamped sum the budget; the allocation is
/// non-decreasing in it, so it is found by bisection, which lands on the
/// closed form when nothing is clamped. S/ρ may come out negative (active
/// pages beyond what the budget holds): the idle VMs then sit at their
/// floors.
fn esx(budget: f64, vms: &[&VmState]) -> Vec<u64> {
    let k = 1.0 / (1.0 - IDLE_TAX);
    let active: Vec<f64> = vms
        .iter()
        .map(|v| {
            v.policy_pages
                .or(v.est_pages)
                .unwrap_or(v.mem_pages as f64)
                .clamp(0.0, v.mem_pages as f64)
        })
        .collect();
    let grant = |share: f64| -> Vec<f64> {
        vms.iter()
            .zip(&active)
            .map(|(v, &a)| v.clamp((share + (k - 1.0) * a) / k))
            .collect()
    };
    let top = vms.iter().map(|v| v.mem_pages as f64).fold(0.0, f64::max) * k;
    let share = solve(|s| grant(s).iter().sum(), budget, -top, top);
    pages(grant(share).into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEM: u64 = 131_072; // 512 MiB

    fn vm(est: f64, truth: u64) -> VmState {
        VmState {
            mem_pages: MEM,
            running: true,
            true_wss_pages: Some(truth),
            est_pages: Some(est),
            est_hi_pages: Some(est),
            policy_pages: Some(est),
            earlier_true_wss_pages: [None; GROWTH_WINDOW],
            earlier_est_pages: [None; GROWTH_WINDOW],
            first_touched_pages: None,
        }
    }

    fn total(l: &[Option<u64>]) -> u64 {
        l.iter().flatten().sum()
    }

    #[test]
    fn static_splits_the_budget_evenly_within_ram() {
        let vms = [vm(100.0, 100), vm(90_000.0, 90_000), vm(0.0, 0)];
        assert_eq!(
            limits(PolicyKind::Static, 300_000, DEFAULT_HEADROOM, &vms),
            vec![Some(100_000); 3]
        );
        // More than RAM each: RAM, the rest unassigned.
        assert_eq!(
            limits(PolicyKind::Static, 1_000_000, DEFAULT_HEADROOM, &vms),
            vec![Some(MEM); 3]
        );
    }

    #[test]
    fn demands_that_fit_are_met_with_headroom_and_floors() {
        let budget = 393_216;
        let h = DEFAULT_HEADROOM;
        // 10% above a large set; the least headroom above a small one.
        let vms = [vm(50_000.0, 45_000), vm(100.0, 50), vm(0.0, 0)];
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &vms),
            vec![Some(55_000), Some(2_148), Some(2_048)]
        );
        assert_eq!(
            limits(PolicyKind::Oracle, budget, h, &vms),
            vec![Some(49_500), Some(2_098), Some(2_048)]
        );
        // The band's upper edge, when higher than 10% above, is granted.
        let mut banded = vm(50_000.0, 45_000);
        banded.est_hi_pages = Some(62_500.0);
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[banded]),
            vec![Some(62_500)]
        );
        // Growth of 15k in the last interval: 10% above 15k more.
        let mut growing = vm(50_000.0, 50_000);
        growing.earlier_est_pages = [Some(35_000.0), None, None];
        growing.earlier_true_wss_pages = [Some(47_500), None, None];
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[growing]),
            vec![Some(71_500)]
        );
        // The truth grew by 2500: 10% above 52.5k.
        assert_eq!(
            limits(PolicyKind::Oracle, budget, h, &[growing]),
            vec![Some(57_750)]
        );
        // The band's edge is where the set may be now: the growth on top.
        let mut edge = growing;
        edge.est_hi_pages = Some(67_500.0);
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[edge]),
            vec![Some(82_500)]
        );
        // A measurement that came out low after a growth of 20k: the
        // largest growth in the window counts, 10% above 70k...
        let mut low = growing;
        low.earlier_est_pages = [Some(47_500.0), Some(45_000.0), Some(25_000.0)];
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[low]),
            vec![Some(77_000)]
        );
        // ...but not one before the window.
        low.earlier_est_pages = [Some(49_500.0), Some(49_000.0), Some(48_500.0)];
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[low]),
            vec![Some(55_550)]
        );
        // Estimates that lag a ramp: 3,000 pages first touched in the
        // interval are its growth, 10% above 53k; `oracle` grows by the
        // truth's 2,500 alone.
        low.first_touched_pages = Some(3_000);
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[low]),
            vec![Some(58_300)]
        );
        assert_eq!(
            limits(PolicyKind::Oracle, budget, h, &[low]),
            vec![Some(57_750)]
        );
        // A shrinking one gets the 10% only.
        growing.earlier_est_pages = [Some(100_000.0), None, None];
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[growing]),
            vec![Some(55_000)]
        );
        // A demand above RAM is cut to RAM.
        assert_eq!(
            limits(PolicyKind::Wss, budget, h, &[vm(130_000.0, 1)]),
            vec![Some(MEM)]
        );
        // Another headroom: none (the growth and the least headroom still
        // count), or 20%.
        assert_eq!(
            limits(PolicyKind::Oracle, budget, 0.0, &[growing]),
            vec![Some(52_500)]
        );
        assert_eq!(
            limits(PolicyKind::Oracle, budget, 0.2, &[growing]),
            vec![Some(63_000)]
        );
        assert_eq!(
            limits(PolicyKind::Wss, budget, 0.0, &[vm(50_000.0, 0)]),
            vec![Some(52_048)]
        );
    }

    #[test]
    fn first_touches_are_what_came_in_beside_restores() {
        // 10k resident before; 12k after evicting 1k, 500 of them restores.
        assert_eq!(first_touched(12_000, 1_000, 500, 10_000), 2_500);
        // Nothing new: resident fell by what was evicted.
        assert_eq!(first_touched(9_000, 1_000, 0, 10_000), 0);
        // Restores counted past the boundary never make it negative.
        assert_eq!(first_touched(10_000, 0, 50, 10_000), 0);
    }

    #[test]
    fn demands_over_budget_are_cut_max_min_fair() {
        // 60k wants 66k, 30k wants 33k; 100k to share: the small one is
        // met, the large ones get the rest.
        let vms = [vm(60_000.0, 0), vm(30_000.0, 0), vm(80_000.0, 0)];
        let l = limits(PolicyKind::Wss, 100_000, DEFAULT_HEADROOM, &vms);
        assert_eq!(l[1], Some(33_000));
        assert!(total(&l) <= 100_000);
        assert!(total(&l) >= 99_998, "{l:?}");
        // The two cut ones get the same (the water level).
        assert!(l[0].unwrap().abs_diff(l[2].unwrap()) <= 1, "{l:?}");
        // 33k + 2L = 100k.
        assert!(l[0].unwrap().abs_diff(33_500) <= 1, "{l:?}");
    }

    #[test]
    fn esx_closed_form_and_the_tax() {
        // One fully active VM (A = 100k) and one idle (A = 0), 120k to
        // share: S/ρ = (4·120k − 3·100k)/2 = 90k; P = (90k + 300k)/4 and
        // 90k/4.
        let vms = [vm(100_000.0, 0), vm(0.0, 0)];
        let l = limits(PolicyKind::Esx, 120_000, DEFAULT_HEADROOM, &vms);
        assert!(l[0].unwrap().abs_diff(97_500) <= 1, "{l:?}");
        assert!(l[1].unwrap().abs_diff(22_500) <= 1, "{l:?}");
        assert!(total(&l) <= 120_000);
        // Equal activity: an equal split.
        let same = limits(
            PolicyKind::Esx,
            120_000,
            DEFAULT_HEADROOM,
            &[vm(5_000.0, 0), vm(5_000.0, 0)],
        );
        assert!(same[0].unwrap().abs_diff(60_000) <= 1, "{same:?}");
        assert_eq!(same[0], same[1]);
        // The policy value, not the measurement, is what ESX reads.
        let mut high = vm(0.0, 0);
        high.policy_pages = Some(100_000.0);
        let l = limits(
            PolicyKind::Esx,
            120_000,
            DEFAULT_HEADROOM,
            &[high, vm(0.0, 0)],
        );
        assert!(l[0].unwrap().abs_diff(97_500) <= 1, "{l:?}");
    }

    #[test]
    fn esx_clamps_to_floor_and_ram_and_redistributes() {
        // 400k for two 512 MiB VMs: both at RAM, the rest unassigned.
        let l = limits(
            PolicyKind::Esx,
            400_000,
            DEFAULT_HEADROOM,
            &[vm(100.0, 0), vm(100_000.0, 0)],
        );
        assert_eq!(l, vec![Some(MEM), Some(MEM)]);
        // An idle VM would get (S/ρ)/4; a tiny budget gives it its floor,
        // and the other what is left.
        let l = limits(
            PolicyKind::Esx,
            20_000,
            DEFAULT_HEADROOM,
            &[vm(131_000.0, 0), vm(0.0, 0)],
        );
        assert_eq!(l[1], Some(FLOOR_PAGES));
        assert!(l[0].unwrap().abs_diff(20_000 - FLOOR_PAGES) <= 1, "{l:?}");
        // The active VM capped at RAM: its excess goes to the idle one.
        let l = limits(
            PolicyKind::Esx,
            240_000,
            DEFAULT_HEADROOM,
            &[vm(131_072.0, 0), vm(0.0, 0)],
        );
        assert_eq!(l[0], Some(MEM));
        assert!(l[1].unwrap().abs_diff(240_000 - MEM) <= 1, "{l:?}");
    }

    #[test]
    fn ended_vms_get_no_limit_and_free_their_share() {
        let mut gone = vm(50_000.0, 50_000);
        gone.running = false;
        let l = limits(
            PolicyKind::Static,
            200_000,
            DEFAULT_HEADROOM,
            &[gone, vm(1.0, 1), vm(1.0, 1)],
        );
        assert_eq!(l, vec![None, Some(100_000), Some(100_000)]);
        assert_eq!(
            limits(PolicyKind::Wss, 200_000, DEFAULT_HEADROOM, &[gone]),
            vec![None]
        );
    }

    #[test]
    fn nothing_measured_yet_means_all_of_ram() {
        let unknown = VmState {
            mem_pages: MEM,
            running: true,
            ..VmState::default()
        };
        assert_eq!(
            limits(PolicyKind::Wss, 1 << 20, DEFAULT_HEADROOM, &[unknown]),
            vec![Some(MEM)]
        );
        assert_eq!(
            limits(PolicyKind::Oracle, 1 << 20, DEFAULT_HEADROOM, &[unknown]),
            vec![Some(MEM)]
        );
        assert_eq!(
            limits(PolicyKind::Esx, 1 << 20, DEFAULT_HEADROOM, &[unknown]),
            vec![Some(MEM)]
        );
    }

    #[test]
    fn every_policy_respects_budget_and_bounds() {
        let vms = [
            vm(120_000.0, 110_000),
            vm(3.0, 1),
            vm(64_000.0, 70_000),
            vm(0.0, 0),
        ];
        let budget = 4 * FLOOR_PAGES + 150_000;
        for p in PolicyKind::ALL {
            let l = limits(*p, budget, DEFAULT_HEADROOM, &vms);
            assert!(total(&l) <= budget, "{}: {l:?}", p.name());
            for x in l.iter().flatten() {
                assert!((FLOOR_PAGES..=MEM).contains(x), "{}: {l:?}", p.name());
            }
        }
        assert_eq!(min_host_pages(&[MEM, MEM, 1000]), 2 * FLOOR_PAGES + 1000);
    }
}
