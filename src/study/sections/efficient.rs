//! Question 3, how efficient is it: what a tracked fault costs the guest.
//! [`Efficiency`] reads the cost runs into numbers; the `Doc` methods below
//! only word and tabulate them.

use super::Question;
use crate::analysis::derived::steady_guest_us_per_fault;
use crate::estimate::EstimatorKind;
use crate::study::bench_touch::{IsolatedTouch, isolated_touch};
use crate::study::doc::Doc;
use crate::study::evidence::{HOST_NOTES_US, calibrated_for, counter_sum, fitted_for};
use crate::study::execute::Results;
use crate::study::figures::vmm_cpu_share;
use crate::study::format::{
    Align, NA, count, elapsed, list, num, opt, pct, setting, sig, signed_pct, table,
};
use crate::study::plan::{Plan, Spec, TRACKERS};
use crate::study::plan::{QuestionRuns, SpecMaker, cost_workload};
use crate::track::TrackerKind;
use crate::track::dirty_log::default_guest_pages;

/// The runs of question 3, each after an untracked twin: per tracker, ESX
/// over the sample grid at the cost interval, and exhaustive tracking at
/// the default interval.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRuns {
    pub sampled: Vec<Spec>,
    pub exhaustive: Vec<Spec>,
}

impl CostRuns {
    pub fn plan(make: &SpecMaker) -> CostRuns {
        let s = make.scale;
        let unpaced = cost_workload();
        // Each after an untracked twin, with the cost warm-up before the
        // scored intervals (see `Scale::cost_warmup`), so the steady
        // slowdown leaves uffd's first-touch fill out.
        let with_baseline = |mut sp: Spec| {
            sp.baseline = true;
            sp.warmup = s.cost_warmup_for(sp.interval);
            sp.duration = s.cost_warmup + s.cost_duration;
            sp
        };
        let mut sampled = Vec::new();
        for tracker in TRACKERS {
            for &n in &s.sample_grid {
                sampled.push(with_baseline(make.spec(
                    &unpaced,
                    tracker,
                    EstimatorKind::Esx,
                    n,
                    s.cost_interval,
                    s.cost_duration,
                )));
            }
        }
        let exhaustive = TRACKERS
            .iter()
            .map(|&t| {
                with_baseline(make.spec(
                    &unpaced,
                    t,
                    EstimatorKind::Exhaustive,
                    s.sample_pages,
                    s.interval,
                    s.cost_duration,
                ))
            })
            .collect();
        CostRuns {
            sampled,
            exhaustive,
        }
    }
}

impl QuestionRuns for CostRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.sampled.iter().chain(&self.exhaustive).collect()
    }
}

/// What one tracker's sampled cost runs say.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerCost {
    pub tracker: TrackerKind,
    /// Guest µs lost per tracked fault, fitted over the sample sizes.
    pub fitted_us: Option<f64>,
    /// Tracked faults per second the default sample would take at the
    /// default interval: the cost run's rate scaled by the intervals.
    pub default_faults_per_s: Option<f64>,
    /// The slowdown the fitted cost predicts at that rate.
    pub predicted_slowdown: Option<f64>,
    /// The isolated touch cost `bench trackers` measured for the tracker
    /// on the cost runs' guest page size, when there is one.
    pub isolated: Option<IsolatedTouch>,
    /// `fitted_us` over the isolated touch cost.
    pub ratio_to_isolated: Option<f64>,
    /// The isolated touch cost calibrated in the cost runs themselves
    /// (`evidence::calibrated_for`).
    pub calibrated_us: Option<f64>,
    /// `fitted_us` over `calibrated_us`.
    pub ratio_to_calibrated: Option<f64>,
}

/// What uffd's filling of never-touched pages cost the guest, read from
/// the sampled uffd cost run with the fewest samples that measured it:
/// there tracking costs the guest least besides, so the whole run's loss
/// less the steady one is the fill's. With many samples the guest also
/// takes fewer tracked faults while the fill slows it than afterwards, and
/// that difference undercounts the fill.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstTouch {
    /// The sample size of the run it is read from.
    pub sample_pages: u64,
    /// Pages filled at their first touch per run.
    pub pages: f64,
    /// Guest time lost once per run, seconds.
    pub lost_s: f64,
    /// Guest µs per filled page beyond a native first touch.
    pub us_per_page: f64,
}

/// What one tracker's exhaustive cost run says.
#[derive(Debug, Clone, PartialEq)]
pub struct ExhaustiveCost {
    pub tracker: TrackerKind,
    pub faults_per_s: Option<f64>,
    pub slowdown: Option<f64>,
    pub guest_us_per_fault: Option<f64>,
    /// How long the run lasted and why it stopped, if it stopped early.
    pub ended_early: Option<(f64, String)>,
}

/// The findings of question 3.
#[derive(Debug, Clone, PartialEq)]
pub struct Efficiency {
    /// One per tracker, in `TRACKERS` order.
    pub trackers: Vec<TrackerCost>,
    /// One per finished exhaustive cost run, in plan order.
    pub exhaustive: Vec<ExhaustiveCost>,
    /// Times mprotect lost an interval's sample over the whole study, and
    /// over the cost runs alone.
    pub fallbacks: u64,
    pub cost_fallbacks: u64,
    /// uffd's first-touch fill in its cost runs; `None` without a run that
    /// measured it.
    pub first_touch: Option<FirstTouch>,
}

/// The counter mprotect bumps when it restores every armed page.
const FALLBACKS: &str = "fallback_restores";

impl Efficiency {
    /// The findings from the runs, set against the isolated touch costs
    /// `touches` (`Provenance::isolated_touches`).
    pub fn from_runs(plan: &Plan, results: &Results, touches: &[IsolatedTouch]) -> Efficiency {
        let s = &plan.scale;
        // At the default interval the same sample is armed less often (a
        // tenth as often for a 100 ms cost interval), so faults fall in the
        // same proportion.
        let scale = s.cost_interval.as_secs_f64() / s.interval.as_secs_f64();
        let trackers = TRACKERS
            .iter()
            .map(|&t| {
                let fitted_us = fitted_for(plan, results, t);
                let default_faults_per_s = cost_run(plan, t, s.sample_pages)
                    .and_then(|sp| results.summary(sp))
                    .and_then(|g| g.steady_faults_per_s)
                    .map(|f| f * scale);
                let isolated = isolated_touch(touches, t, default_guest_pages(t)).cloned();
                let calibrated_us = calibrated_for(plan, results, t);
                TrackerCost {
                    calibrated_us,
                    ratio_to_calibrated: fitted_us
                        .zip(calibrated_us)
                        .filter(|(_, c)| *c > 0.0)
                        .map(|(f, c)| f / c),
                    tracker: t,
                    fitted_us,
                    default_faults_per_s,
                    predicted_slowdown: default_faults_per_s
                        .zip(fitted_us)
                        .map(|(f, c)| f * c * 1e-6),
                    ratio_to_isolated: fitted_us
                        .zip(isolated.as_ref())
                        .filter(|(_, i)| i.us > 0.0)
                        .map(|(f, i)| f / i.us),
                    isolated,
                }
            })
            .collect();
        let exhaustive = plan
            .efficient
            .exhaustive
            .iter()
            .filter_map(|sp| {
                let g = results.summary(sp)?;
                Some(ExhaustiveCost {
                    tracker: sp.tracker,
                    faults_per_s: g.steady_faults_per_s,
                    slowdown: g.steady_slowdown,
                    guest_us_per_fault: steady_guest_us_per_fault(g),
                    ended_early: results
                        .early_end(sp)
                        .map(|why| (g.duration_s, why.to_string())),
                })
            })
            .collect();
        let mprotect = |specs: Vec<&Spec>| {
            counter_sum(
                specs
                    .into_iter()
                    .filter(|sp| sp.tracker == TrackerKind::Mprotect)
                    .filter_map(|sp| results.summary(sp)),
                FALLBACKS,
            )
        };
        Efficiency {
            trackers,
            exhaustive,
            fallbacks: mprotect(plan.runs()),
            cost_fallbacks: mprotect(plan.efficient.sampled.iter().collect()),
            first_touch: first_touch(plan, results),
        }
    }

    fn of(&self, t: TrackerKind) -> Option<&TrackerCost> {
        self.trackers.iter().find(|c| c.tracker == t)
    }
}

/// The first-touch fill of the uffd cost runs (see [`FirstTouch`]).
fn first_touch(plan: &Plan, results: &Results) -> Option<FirstTouch> {
    plan.efficient
        .sampled
        .iter()
        .filter(|sp| sp.tracker == TrackerKind::Uffd)
        .filter_map(|sp| {
            let g = results.summary(sp)?;
            Some(FirstTouch {
                sample_pages: sp.sample_pages,
                pages: g.first_touch_pages? as f64,
                lost_s: g.one_time_lost_s?,
                us_per_page: g.first_touch_us_per_page?,
            })
        })
        .min_by_key(|ft| ft.sample_pages)
}

/// The sampled cost run of tracker `t` with `n` samples.
fn cost_run(plan: &Plan, t: TrackerKind, n: u64) -> Option<&Spec> {
    plan.efficient
        .sampled
        .iter()
        .find(|x| x.tracker == t && x.sample_pages == n)
}

/// The host notes' cost per tracked access of `t`, as quoted.
fn host_note(t: TrackerKind) -> String {
    HOST_NOTES_US
        .iter()
        .find(|h| h.0 == t)
        .map_or(NA.to_string(), |h| h.1.to_string())
}

fn or_na(v: &[String]) -> String {
    if v.is_empty() {
        NA.to_string()
    } else {
        list(v)
    }
}

impl Doc<'_> {
    pub(in crate::study) fn efficient(&mut self) {
        let f = Efficiency::from_runs(self.plan, self.results, &self.prov.isolated_touches);
        self.heading(Question::Efficient);
        self.cost_method(&f);
        self.cost_tables(&f);
        self.isolated_comparison(&f);
        self.first_touch(&f);
        self.exhaustive_cost(&f);
        self.fallbacks(&f);
        self.summary.push(self.efficiency_summary(&f));
    }

    /// How the cost is measured, ending with the fitted cost per tracker.
    fn cost_method(&mut self, f: &Efficiency) {
        let s = &self.plan.scale;
        let fits: Vec<String> = f
            .trackers
            .iter()
            .map(|c| {
                format!(
                    "{} µs with {} (the host notes report {})",
                    opt(c.fitted_us, |x| sig(x, 3)),
                    c.tracker.name(),
                    host_note(c.tracker)
                )
            })
            .collect();
        let text = format!(
            "{} measures each mechanism on `random` run unpaced, which touches every \
             page of its region within an interval, so that nearly every sampled page in the \
             region costs a tracked fault. The sampled runs use a {} interval, so that tracked \
             faults are frequent enough for their cost to stand out of the noise of a shared \
             machine. Each run follows an untracked twin of the same length: a {} warm-up, \
             then {} of scored intervals. The **steady slowdown** is 1 − (accesses per second \
             tracked) / (accesses per second untracked), both over the scored intervals alone \
             (wall time, the boundary holds included; `steady_slowdown` in summary.json), and \
             can come out negative where tracking costs less than the noise between the two \
             runs. The warm-up leaves out what happens once: boot, and under uffd the filling \
             of every page the guest touches for the first time (see below), which the \
             whole-run slowdown (`slowdown`) keeps in. Dividing the steady slowdown by the \
             tracked faults per second of the same intervals gives the guest time lost per \
             tracked fault, everything the mechanism costs the guest per interval included \
             (arming and disarming pages as well as the fault itself); the slope through the \
             origin of steady slowdown against faults per second over all sample sizes, which \
             weighs the runs with many faults most, gives one cost per mechanism: {}.",
            self.fig_ref(&self.figs.cost),
            setting(s.cost_interval),
            setting(s.cost_warmup),
            setting(s.cost_duration),
            list(&fits)
        );
        self.para(&text);
    }

    /// One table row of a cost run.
    fn cost_row(&self, label: String, sp: Option<&Spec>, t: TrackerKind) -> Vec<String> {
        let got = sp.and_then(|sp| self.s(sp));
        let service = got.and_then(|g| g.tracker_stats.vmm_service_us_per_fault);
        vec![
            t.name().to_string(),
            label,
            opt(got.and_then(|g| g.steady_faults_per_s), |x| sig(x, 3)),
            opt(got.and_then(|g| g.slowdown), signed_pct),
            opt(got.and_then(|g| g.steady_slowdown), signed_pct),
            opt(got.and_then(steady_guest_us_per_fault), |x| sig(x, 3)),
            opt(got.and_then(|g| g.fault_cost_us), |x| sig(x, 3)),
            opt(service, |x| sig(x, 3)),
            opt(got.map(vmm_cpu_share), pct),
        ]
    }

    /// The figure, the table of cost runs and the default-setting prediction.
    fn cost_tables(&mut self, f: &Efficiency) {
        let s = self.plan.scale.clone();
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        let every = setting(s.cost_interval);
        let mut rows = Vec::new();
        for t in TRACKERS {
            rows.push(self.cost_row(
                format!("esx, {} samples every {every}", s.sample_pages),
                cost_run(self.plan, t, s.sample_pages),
                t,
            ));
            rows.push(self.cost_row(
                format!("esx, {hi} samples every {every}"),
                cost_run(self.plan, t, hi),
                t,
            ));
            let exh = self
                .plan
                .efficient
                .exhaustive
                .iter()
                .find(|x| x.tracker == t);
            rows.push(self.cost_row(format!("exhaustive, every {}", setting(s.interval)), exh, t));
        }
        let fit_rows: Vec<Vec<String>> = f
            .trackers
            .iter()
            .map(|c| {
                vec![
                    c.tracker.name().to_string(),
                    opt(c.fitted_us, |x| sig(x, 3)),
                    host_note(c.tracker),
                    opt(c.default_faults_per_s, |x| sig(x, 3)),
                    opt(c.predicted_slowdown, pct),
                ]
            })
            .collect();
        let fig = self.figs.cost.clone();
        self.figure(&fig);
        let h = [
            "tracker",
            "setting",
            "tracked faults/s (steady)",
            "slowdown, whole run",
            "steady slowdown",
            "guest µs lost per tracked fault (steady slowdown ÷ faults/s)",
            "guest stall µs per fault (measured in the guest)",
            "VMM µs per fault",
            "VMM CPU (share of one CPU)",
        ];
        let mut align = vec![Align::Left, Align::Left];
        align.extend([Align::Right; 7]);
        self.para(&table(&h, &align, &rows));
        self.para(
            "The guest's own stall measure (the excess time of the batches of accesses that \
             took a fault, less what the untracked twin lost) and the VMM's service time per \
             fault (where the VMM sees the fault: uffd's handler thread, mprotect's EFAULT \
             path; dirty logging's are resolved inside the kernel) are given for comparison; \
             the steady slowdown is the measure of what the guest pays per interval.",
        );
        let default_h = format!(
            "tracked faults/s at {} samples every {} (the rate above × {})",
            s.sample_pages,
            setting(s.interval),
            num(s.cost_interval.as_secs_f64() / s.interval.as_secs_f64())
        );
        let h2 = [
            "tracker",
            "fitted µs per tracked fault",
            "host notes' cost per tracked access",
            default_h.as_str(),
            "slowdown this predicts",
        ];
        self.para(&format!(
            "At the default setting the same guest would take a fraction of the faults \
             measured above, as the sample is armed less often; with the fitted cost per \
             fault that predicts the steady slowdown of the default setting:\n\n{}",
            table(
                &h2,
                &[
                    Align::Left,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right
                ],
                &fit_rows
            )
        ));
    }

    /// The fitted cost per fault against the isolated touch of `bench
    /// trackers`.
    fn isolated_comparison(&mut self, f: &Efficiency) {
        let rows: Vec<Vec<String>> = f
            .trackers
            .iter()
            .map(|c| {
                vec![
                    c.tracker.name().to_string(),
                    default_guest_pages(c.tracker).to_string(),
                    opt(c.fitted_us, |x| sig(x, 3)),
                    c.isolated.as_ref().map_or("not measured".to_string(), |i| {
                        format!("{} (docs/bench/{})", sig(i.us, 3), i.file)
                    }),
                    opt(c.ratio_to_isolated, |r| format!("{}×", sig(r, 3))),
                    opt(c.calibrated_us, |x| sig(x, 3)),
                    opt(c.ratio_to_calibrated, |r| format!("{}×", sig(r, 3))),
                ]
            })
            .collect();
        let h = [
            "tracker",
            "guest pages",
            "fitted guest µs per tracked fault (steady)",
            "isolated touch, µs (`kvm-wss bench trackers`)",
            "fitted ÷ isolated",
            "isolated touch in the same runs, µs (median `fault_cost_us`)",
            "fitted ÷ that",
        ];
        self.para(&format!(
            "**Against the isolated touch.** `kvm-wss bench trackers` measures what one \
             tracked touch costs the guest in isolation: a probe guest touching armed pages \
             with nothing else going on, on the same guest page size as the cost runs. The \
             fitted cost per fault holds more (arming and collecting the sample every \
             interval, the boundary holds, a busier host); the ratio says how much more. \
             Where no benchmark file is beside the study, the isolated cost is not \
             measured. The benchmark ran at another time than the study, and a tracked \
             touch on these shared machines costs more at one time than at another, so \
             the last two columns hold the same probe measured side by side: every \
             tracked run first calibrates its isolated touch cost in its own process, with \
             the vCPU and handler placed as in the run (`fault_cost_us` in summary.json), \
             and the median over the tracker's cost runs is set against the same runs' \
             fitted cost.\n\n{}",
            table(
                &h,
                &[
                    Align::Left,
                    Align::Left,
                    Align::Right,
                    Align::Right,
                    Align::Right
                ],
                &rows
            )
        ));
    }

    /// What uffd's first-touch fill cost, as a finding of its own.
    fn first_touch(&mut self, f: &Efficiency) {
        let warmup_setting = setting(self.plan.scale.cost_warmup);
        let warmup = self.plan.scale.cost_warmup.as_secs_f64();
        // Seconds to two significant digits: the fill of a small region
        // takes a fraction of one.
        let secs = |x: f64| format!("{} s", sig(x, 2));
        let Some(ft) = &f.first_touch else {
            self.para(
                "**The first touch under uffd.** No uffd cost run measured the fill of \
                 never-touched pages (it needs an untracked twin and a filled page).",
            );
            return;
        };
        // The fill ends at least this late into the run: a warm-up
        // shorter than the time it cost leaves part of it in the scored
        // intervals.
        let within = if ft.lost_s <= warmup {
            format!(
                "shorter than the {warmup_setting} warm-up, as the steady figures above need \
                 (a fill that cost more than the warm-up would reach into the scored \
                 intervals)"
            )
        } else {
            format!(
                "longer than the {warmup_setting} warm-up: the fill reaches into the scored \
                 intervals, and the steady figures above still hold part of it"
            )
        };
        self.para(&format!(
            "**The first touch under uffd.** uffd registers all of guest RAM for missing \
             faults too, so the first touch of a page the guest never touched before is a \
             fault its handler fills with a zeroed page: tracking then never allocates a page \
             the guest did not touch. The untracked twin takes the same first touches from \
             the kernel directly. In the uffd cost run with the fewest samples ({} per \
             interval), where tracking costs the guest least besides, the handler filled {} \
             pages, and the guest lost {} once (the whole run's loss less what the steady \
             slowdown explains over the run's length): {} µs per page beyond a native first \
             touch, an upper bound since any other one-time difference (boot) is in it too. \
             (Runs with more samples give less: while the fill slows the guest it also \
             takes fewer tracked faults than afterwards, which the difference counts \
             against the fill; `first_touch_us_per_page` in each run's summary.json.) \
             That loss is {within}. It is paid once \
             per page a guest ever touches, whatever the sample, not per interval: a \
             long-running guest pays it at its start, or as its memory grows.",
            ft.sample_pages,
            count(ft.pages),
            secs(ft.lost_s),
            sig(ft.us_per_page, 3),
        ));
    }

    /// What exhaustive tracking costs, and where it was cheaper per fault.
    fn exhaustive_cost(&mut self, f: &Efficiency) {
        let exh: Vec<String> = f
            .exhaustive
            .iter()
            .map(|x| {
                let early = x.ended_early.as_ref().map_or(String::new(), |(secs, why)| {
                    format!(" (the run stopped after {}: {why})", elapsed(*secs))
                });
                format!(
                    "{} takes {} faults per second and slows the guest by {}{early}",
                    x.tracker.name(),
                    opt(x.faults_per_s, count),
                    opt(x.slowdown, pct)
                )
            })
            .collect();
        if !exh.is_empty() {
            self.para(&format!(
                "**What exhaustive tracking costs.** Arming every page every interval makes \
                 every page the guest touches a tracked fault: {}. Sampling pays for the \
                 pages it samples, exhaustive tracking for the whole working set, every \
                 interval.",
                list(&exh)
            ));
        }
        let cheaper: Vec<String> = f
            .exhaustive
            .iter()
            .filter_map(|x| {
                let lost = x.guest_us_per_fault?;
                let fit = f.of(x.tracker)?.fitted_us?;
                (lost < fit).then(|| {
                    format!(
                        "{} µs against {} µs with {}",
                        sig(lost, 3),
                        sig(fit, 3),
                        x.tracker.name()
                    )
                })
            })
            .collect();
        if !cheaper.is_empty() {
            self.para(&format!(
                "Per tracked fault, exhaustive tracking cost the guest less than sampling ({}): \
                 it arms the whole region with one call per interval, where a scattered \
                 sample needs a call per run of neighbouring pages.",
                list(&cheaper)
            ));
        }
    }

    /// The samples mprotect lost, if it lost any.
    fn fallbacks(&mut self, f: &Efficiency) {
        if f.fallbacks == 0 {
            return;
        }
        self.para(&format!(
            "The mprotect tracker could not attribute a fault to an armed page {} times \
             over the study ({} of them in the runs of {}), and each time restored \
             every armed page, losing that interval's sample (the `{FALLBACKS}` \
             counter in summary.json). The cause is probably a fault still in flight when the \
             sampler collects and re-arms, which short intervals make frequent; the lost \
             samples lower mprotect's tracked faults, and its estimates there.",
            f.fallbacks,
            f.cost_fallbacks,
            self.fig_ref(&self.figs.cost)
        ));
    }

    /// The question's line in the summary at the top.
    fn efficiency_summary(&self, f: &Efficiency) -> String {
        let fitted: Vec<String> = f
            .trackers
            .iter()
            .map(|c| {
                format!(
                    "{} µs ({})",
                    opt(c.fitted_us, |x| sig(x, 3)),
                    c.tracker.name()
                )
            })
            .collect();
        let predicted: Vec<String> = f
            .trackers
            .iter()
            .filter_map(|c| {
                Some(format!(
                    "{} {}",
                    c.tracker.name(),
                    pct(c.predicted_slowdown?)
                ))
            })
            .collect();
        let exh_slow: Vec<String> = f
            .exhaustive
            .iter()
            .map(|x| format!("{} {}", x.tracker.name(), opt(x.slowdown, pct)))
            .collect();
        let ratios: Vec<String> = f
            .trackers
            .iter()
            .filter(|c| c.tracker == TrackerKind::Uffd)
            .map(|c| {
                let bench = match (&c.isolated, c.ratio_to_isolated) {
                    (Some(i), Some(r)) => format!(
                        "{}× the isolated touch of {} µs `bench trackers` measures",
                        sig(r, 3),
                        sig(i.us, 3)
                    ),
                    _ => "`bench trackers` did not measure uffd's isolated touch".to_string(),
                };
                match (c.calibrated_us, c.ratio_to_calibrated) {
                    (Some(u), Some(r)) => format!(
                        "under uffd that is {bench}, and {}× the {} µs the same runs \
                         calibrated side by side",
                        sig(r, 3),
                        sig(u, 3)
                    ),
                    _ => format!("under uffd that is {bench}"),
                }
            })
            .collect();
        let fill = f.first_touch.as_ref().map_or(String::new(), |ft| {
            format!(
                " The first touch of a page under uffd costs {} µs more than a native one, \
                 once per page.",
                sig(ft.us_per_page, 3)
            )
        });
        format!(
            "**How efficient?** In steady state each tracked fault cost the guest about {} \
             ({}); at the default setting that predicts a slowdown of {} for a guest that \
             touches its whole region every interval, while exhaustive tracking slowed it by \
             {} ({}).{fill}",
            or_na(&fitted),
            or_na(&ratios),
            or_na(&predicted),
            or_na(&exh_slow),
            self.section_ref(Question::Efficient),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::execute::Outcome;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};
    use crate::vmm::paging::GuestPageSize;

    /// The guest µs each tracker loses per fault in the synthetic runs.
    fn cost_us(t: TrackerKind) -> f64 {
        match t {
            TrackerKind::Mprotect => 100.0,
            TrackerKind::Uffd => 50.0,
            _ => 20.0,
        }
    }

    #[test]
    fn costs_are_fitted_predicted_and_compared_with_exhaustive_tracking() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = Vec::new();
        // Sampled cost runs: n samples make 100·n faults in 10 s, each
        // costing the guest cost_us(t); mprotect loses two samples in each.
        // The whole run's slowdown holds a one-time loss on top (uffd's
        // fill of 65536 pages at 50 µs each: 3.3 s of 10), which the fit
        // must leave out.
        for sp in &plan.efficient.sampled {
            let mut s = summary_of(sp);
            s.duration_s = 10.0;
            s.tracked_faults = Some(100 * sp.sample_pages);
            s.steady_faults_per_s = Some(10.0 * sp.sample_pages as f64);
            let steady = 10.0 * sp.sample_pages as f64 * cost_us(sp.tracker) * 1e-6;
            s.steady_slowdown = Some(steady);
            s.slowdown = Some(steady + 0.32768);
            // Fewer samples, a larger share of the loss left to the fill.
            if sp.tracker == TrackerKind::Uffd {
                let lost = 3.2768 * 25.0 / sp.sample_pages as f64;
                s.one_time_lost_s = Some(lost);
                s.first_touch_pages = Some(65536);
                s.first_touch_us_per_page = Some(lost * 1e6 / 65536.0);
            }
            if sp.tracker == TrackerKind::Mprotect {
                s.tracker_stats.mechanism.insert(FALLBACKS.into(), 2);
            }
            // Each run's own calibration: 40 µs for uffd and mprotect,
            // except one run's 1000 µs outlier, which the median ignores;
            // dirty-log calibrated nothing.
            if sp.tracker != TrackerKind::DirtyLog {
                s.fault_cost_us = Some(if sp.sample_pages == 25 { 1000.0 } else { 40.0 });
            }
            outcomes.push((sp.id(), finished(s)));
        }
        // Exhaustive uffd: 2000 faults/s, 5% slower, 25 µs per fault, and
        // it stopped after 4 s; the other trackers' runs failed.
        for sp in &plan.efficient.exhaustive {
            let o = if sp.tracker == TrackerKind::Uffd {
                let mut s = summary_of(sp);
                s.duration_s = 4.0;
                s.tracked_faults = Some(8000);
                s.steady_faults_per_s = Some(2000.0);
                s.steady_slowdown = Some(0.05);
                Outcome::Done {
                    summary: Box::new(s),
                    rows: Vec::new(),
                    cached: true,
                    ended_early: Some("tracker gave up".into()),
                    wall_s: None,
                }
            } else {
                Outcome::Failed("no KVM".into())
            };
            outcomes.push((sp.id(), o));
        }
        // An mprotect run outside the cost runs that lost five samples.
        let other = plan
            .runs()
            .into_iter()
            .find(|sp| sp.tracker == TrackerKind::Mprotect && !plan.efficient.sampled.contains(sp))
            .expect("the plan has mprotect runs beyond the cost runs");
        let mut s = summary_of(other);
        s.tracker_stats.mechanism.insert(FALLBACKS.into(), 5);
        outcomes.push((other.id(), finished(s)));
        // bench trackers measured uffd (25 µs) and mprotect, but mprotect
        // only on 4 KiB guest pages, which the cost runs do not use.
        let touch = |tracker, guest_pages, us| IsolatedTouch {
            tracker,
            guest_pages,
            us,
            file: "trackers.json".into(),
        };
        let touches = [
            touch(TrackerKind::Uffd, GuestPageSize::Size2M, 25.0),
            touch(TrackerKind::Mprotect, GuestPageSize::Size4K, 20.0),
        ];
        let f = Efficiency::from_runs(&plan, &Results::from_outcomes(outcomes), &touches);

        assert_eq!(f.trackers.len(), 3);
        for c in &f.trackers {
            let want = cost_us(c.tracker);
            let fitted = c.fitted_us.expect("fitted");
            assert!((fitted - want).abs() < 1e-9, "{c:?}");
            // 400 samples: 4000 faults/s every 100 ms, a tenth at 1 s.
            let faults = c.default_faults_per_s.expect("default rate");
            assert!((faults - 400.0).abs() < 1e-9, "{c:?}");
            let predicted = c.predicted_slowdown.expect("prediction");
            assert!((predicted - 400.0 * want * 1e-6).abs() < 1e-12, "{c:?}");
            // 50 µs per fault against a 25 µs isolated touch: 2x.
            match c.tracker {
                TrackerKind::Uffd => {
                    assert!((c.ratio_to_isolated.expect("ratio") - 2.0).abs() < 1e-9)
                }
                _ => assert_eq!((c.ratio_to_isolated, c.isolated.as_ref()), (None, None)),
            }
            // Against the same runs' median calibration of 40 µs.
            match c.tracker {
                TrackerKind::DirtyLog => {
                    assert_eq!((c.calibrated_us, c.ratio_to_calibrated), (None, None))
                }
                _ => {
                    assert_eq!(c.calibrated_us, Some(40.0));
                    let r = c.ratio_to_calibrated.expect("ratio");
                    assert!((r - want / 40.0).abs() < 1e-9, "{c:?}");
                }
            }
        }
        // Read from the run with the fewest samples (25): 50 µs a page.
        let ft = f.first_touch.as_ref().expect("uffd measured its fill");
        assert_eq!(
            (ft.sample_pages, ft.pages, ft.lost_s),
            (25, 65536.0, 3.2768)
        );
        assert!((ft.us_per_page - 50.0).abs() < 1e-9);
        assert!(ft.lost_s < plan.scale.cost_warmup.as_secs_f64());
        assert_eq!(f.exhaustive.len(), 1);
        let x = &f.exhaustive[0];
        assert_eq!(x.tracker, TrackerKind::Uffd);
        assert_eq!(x.faults_per_s, Some(2000.0));
        assert_eq!(x.slowdown, Some(0.05));
        assert!((x.guest_us_per_fault.expect("lost") - 25.0).abs() < 1e-9);
        assert_eq!(x.ended_early, Some((4.0, "tracker gave up".to_string())));
        let mprotect_cost_runs = plan
            .efficient
            .sampled
            .iter()
            .filter(|sp| sp.tracker == TrackerKind::Mprotect)
            .count() as u64;
        assert_eq!(f.cost_fallbacks, 2 * mprotect_cost_runs);
        assert_eq!(f.fallbacks, 2 * mprotect_cost_runs + 5);
    }
}
