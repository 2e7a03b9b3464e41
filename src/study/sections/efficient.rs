//! Question 3, how efficient is it: what a tracked fault costs the guest.
//! [`Efficiency`] reads the cost runs into numbers; the `Doc` methods below
//! only word and tabulate them.

use super::Question;
use crate::estimate::EstimatorKind;
use crate::plot::series::Line;
use crate::plot::series::LinePanel;
use crate::plot::series::YFormat;
use crate::plot::series::line_panels;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{HOST_NOTES_US, counter_sum, fitted_for};
use crate::study::execute::Results;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::figures::{cell, faults_per_s, guest_us_per_fault, vmm_cpu_share};
use crate::study::format::{
    Align, NA, count, elapsed, list, num, opt, pct, setting, sig, signed_pct, table,
};
use crate::study::plan::{Plan, Spec, TRACKERS};
use crate::study::plan::{QuestionRuns, SpecMaker, cost_workload};
use crate::track::TrackerKind;

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
        let with_baseline = |mut sp: Spec| {
            sp.baseline = true;
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
}

/// The counter mprotect bumps when it restores every armed page.
const FALLBACKS: &str = "fallback_restores";

impl Efficiency {
    pub fn from_runs(plan: &Plan, results: &Results) -> Efficiency {
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
                    .and_then(faults_per_s)
                    .map(|f| f * scale);
                TrackerCost {
                    tracker: t,
                    fitted_us,
                    default_faults_per_s,
                    predicted_slowdown: default_faults_per_s
                        .zip(fitted_us)
                        .map(|(f, c)| f * c * 1e-6),
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
                    faults_per_s: faults_per_s(g),
                    slowdown: g.slowdown,
                    guest_us_per_fault: guest_us_per_fault(g),
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
        }
    }

    fn of(&self, t: TrackerKind) -> Option<&TrackerCost> {
        self.trackers.iter().find(|c| c.tracker == t)
    }
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
        let f = Efficiency::from_runs(self.plan, self.results);
        self.heading(Question::Efficient);
        self.cost_method(&f);
        self.cost_tables(&f);
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
             machine. Each run ({} of tracking) follows an untracked twin of the same length; \
             the slowdown is 1 − (accesses per second tracked) / (accesses per second \
             untracked), and can come out negative where tracking costs less than the noise \
             between the two runs. Dividing the slowdown by the tracked faults per second \
             gives the guest time lost per tracked fault, everything the mechanism costs the \
             guest included (arming and disarming pages as well as the fault itself); the \
             slope through the origin of slowdown against faults per second over all sample \
             sizes, which weighs the runs with many faults most, gives one cost per \
             mechanism: {}.",
            self.fig_ref(&self.figs.cost),
            setting(s.cost_interval),
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
            opt(got.and_then(faults_per_s), |x| sig(x, 3)),
            opt(got.and_then(|g| g.slowdown), signed_pct),
            opt(got.and_then(guest_us_per_fault), |x| sig(x, 3)),
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
            "tracked faults/s",
            "slowdown",
            "guest µs lost per tracked fault (slowdown ÷ faults/s)",
            "guest stall µs per fault (measured in the guest)",
            "VMM µs per fault",
            "VMM CPU (share of one CPU)",
        ];
        let mut align = vec![Align::Left, Align::Left];
        align.extend([Align::Right; 6]);
        self.para(&table(&h, &align, &rows));
        self.para(
            "The guest's own stall measure (the excess time of the batches of accesses that \
             took a fault, less what the untracked twin lost) and the VMM's service time per \
             fault (where the VMM sees the fault: uffd's handler thread, mprotect's EFAULT \
             path; dirty logging's are resolved inside the kernel) are given for comparison; \
             the slowdown is the measure of what the guest pays.",
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
             fault that predicts the slowdown of the default setting:\n\n{}",
            table(
                &h2,
                &[
                    Align::Left,
                    Align::Right,
                    Align::Right,
                    Align::Right,
                    Align::Right
                ],
                &fit_rows
            )
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
        format!(
            "**How efficient?** Each tracked fault cost the guest about {}; at the default \
             setting that predicts a slowdown of {} for a guest that touches its whole region \
             every interval, while exhaustive tracking slowed it by {} ({}).",
            or_na(&fitted),
            or_na(&predicted),
            or_na(&exh_slow),
            self.section_ref(Question::Efficient),
        )
    }
}

impl FigureWriter<'_> {
    /// Cost per mechanism against the sample size.
    pub(in crate::study) fn cost_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig7-cost";
        let mut faults = Vec::new();
        let mut slowdown = Vec::new();
        let mut cpu = Vec::new();
        let mut per_touch = Vec::new();
        let mut data = Vec::new();
        let runs: Vec<&Spec> = self
            .plan
            .efficient
            .sampled
            .iter()
            .chain(&self.plan.efficient.exhaustive)
            .collect();
        for t in TRACKERS {
            let mut f = Vec::new();
            let mut sl = Vec::new();
            let mut c = Vec::new();
            let mut pt = Vec::new();
            for spec in self
                .plan
                .efficient
                .sampled
                .iter()
                .filter(|s| s.tracker == t)
            {
                let Some(s) = self.summary(spec) else {
                    continue;
                };
                let x = spec.sample_pages as f64;
                if let Some(v) = faults_per_s(s) {
                    f.push((x, v));
                }
                if let Some(v) = s.slowdown {
                    sl.push((x, v));
                }
                c.push((x, vmm_cpu_share(s)));
                if let Some(v) = guest_us_per_fault(s) {
                    pt.push((x, v));
                }
            }
            let line = |points| Line {
                label: t.name().to_string(),
                points,
                dashed: false,
            };
            faults.push(line(f));
            slowdown.push(line(sl));
            cpu.push(line(c));
            per_touch.push(line(pt));
        }
        for spec in &runs {
            let s = self.summary(spec);
            let service = s.and_then(|s| s.tracker_stats.vmm_service_us_per_fault);
            data.push(vec![
                spec.id(),
                spec.tracker.name().to_string(),
                spec.estimator.name().to_string(),
                s.and_then(|s| s.sample_pages)
                    .map_or(String::new(), |n| n.to_string()),
                format!("{}", spec.interval.as_secs_f64()),
                cell(s.map(|s| s.duration_s)),
                cell(s.and_then(faults_per_s)),
                cell(s.and_then(|s| s.fault_cost_us)),
                cell(s.and_then(guest_us_per_fault)),
                cell(service),
                cell(s.and_then(|s| s.slowdown)),
                cell(s.map(|s| s.guest_ops_per_s)),
                cell(s.and_then(|s| s.baseline_guest_ops_per_s)),
                cell(s.map(|s| s.vmm_cpu_s)),
                cell(s.map(vmm_cpu_share)),
            ]);
        }
        self.csv(
            stem,
            &[
                "run_id",
                "tracker",
                "estimator",
                "sample_pages",
                "interval_s",
                "duration_s",
                "faults_per_s",
                "fault_cost_us",
                "lost_us_per_fault",
                "vmm_service_us_per_fault",
                "slowdown",
                "guest_ops_per_s",
                "baseline_guest_ops_per_s",
                "vmm_cpu_s",
                "vmm_cpu_share",
            ],
            &data,
        )?;
        let ticks: Vec<f64> = self
            .plan
            .scale
            .sample_grid
            .iter()
            .map(|&n| n as f64)
            .collect();
        let panel = |title: &str, y_label: &str, y_format, lines| LinePanel {
            title: title.into(),
            x_label: "sampled pages per interval".into(),
            x_ticks: ticks.clone(),
            y_label: y_label.into(),
            y_format,
            lines,
            y_ref: None,
        };
        let panels = [
            panel(
                "Tracked faults per second",
                "faults / s",
                YFormat::Plain,
                faults,
            ),
            panel(
                "Guest slowdown vs untracked twin",
                "slowdown",
                YFormat::Percent,
                slowdown,
            ),
            panel(
                "Guest time lost per tracked fault (slowdown / faults per s)",
                "microseconds",
                YFormat::Plain,
                per_touch,
            ),
            panel(
                "VMM CPU (sampler and fault handling)",
                "share of one CPU",
                YFormat::Percent,
                cpu,
            ),
        ];
        let title = format!(
            "Cost of tracking an unpaced random program (esx, {} interval)",
            crate::study::format::setting(self.plan.scale.cost_interval)
        );
        line_panels(&self.base(stem), &title, &panels, 2)?;
        Ok(Figure {
            stem,
            title,
            caption: format!(
                "What each mechanism costs as the sample grows, on a guest that touches its \
                 whole working set as fast as it can, so that nearly every sampled page in it \
                 faults. The interval is {} so that faults are frequent enough to measure. \
                 Each run is preceded by its untracked twin, which gives the slowdown. The \
                 data also holds exhaustive tracking (at the default {} interval).",
                crate::study::format::setting(self.plan.scale.cost_interval),
                crate::study::format::setting(self.plan.scale.interval)
            ),
            runs: runs.into_iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::execute::Outcome;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

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
        for sp in &plan.efficient.sampled {
            let mut s = summary_of(sp);
            s.duration_s = 10.0;
            s.tracked_faults = Some(100 * sp.sample_pages);
            s.slowdown = Some(10.0 * sp.sample_pages as f64 * cost_us(sp.tracker) * 1e-6);
            if sp.tracker == TrackerKind::Mprotect {
                s.tracker_stats.mechanism.insert(FALLBACKS.into(), 2);
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
                s.slowdown = Some(0.05);
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
        let f = Efficiency::from_runs(&plan, &Results::from_outcomes(outcomes));

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
        }
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
