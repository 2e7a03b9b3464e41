//! Question 3, how efficient is it: what a tracked fault costs the guest.

use super::Question;
use crate::study::doc::Doc;
use crate::study::evidence::*;
use crate::study::figures::*;
use crate::study::format::*;
use crate::study::plan::{Spec, TRACKERS};
use crate::track::TrackerKind;

impl Doc<'_> {
    pub(in crate::study) fn efficient(&mut self) {
        // Copies of the shared references, so that closures reading the
        // runs do not hold `self` while the text is written.
        let (plan, results) = (self.plan, self.results);
        let s = plan.scale.clone();
        let n = self.fig_ref(&self.figs.cost);
        self.heading(Question::Efficient);
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        let find = |t: TrackerKind, n: u64| {
            plan.cost
                .iter()
                .find(|x| x.tracker == t && x.sample_pages == n)
        };
        let fitted = |t: TrackerKind| fitted_for(plan, results, t);
        let note = |t: TrackerKind| {
            HOST_NOTES_US
                .iter()
                .find(|h| h.0 == t)
                .map_or(NA.to_string(), |h| h.1.to_string())
        };
        let row = |label: String, sp: Option<&Spec>, t: TrackerKind| -> Vec<String> {
            let got = sp.and_then(|sp| results.summary(sp));
            let service = got.and_then(|g| {
                g.tracker_stats
                    .get("vmm_service_us_per_fault")
                    .and_then(|v| v.as_f64())
            });
            vec![
                t.name().to_string(),
                label,
                opt(got.and_then(faults_per_s), |x| sig(x, 3)),
                opt(got.and_then(|g| g.slowdown), signed_pct),
                opt(got.and_then(lost_us_per_fault), |x| sig(x, 3)),
                opt(got.and_then(|g| g.fault_cost_us), |x| sig(x, 3)),
                opt(service, |x| sig(x, 3)),
                opt(got.map(vmm_cpu_share), pct),
            ]
        };
        let mut rows = Vec::new();
        let mut fit_rows = Vec::new();
        for t in TRACKERS {
            let every = setting(s.cost_interval);
            rows.push(row(
                format!("esx, {} samples every {every}", s.sample_pages),
                find(t, s.sample_pages),
                t,
            ));
            rows.push(row(
                format!("esx, {hi} samples every {every}"),
                find(t, hi),
                t,
            ));
            let exh = plan.cost_exhaustive.iter().find(|x| x.tracker == t);
            rows.push(row(
                format!("exhaustive, every {}", setting(s.interval)),
                exh,
                t,
            ));
            // At the default interval the same sample is armed a tenth as
            // often (for a 100 ms cost interval), so faults fall in the same
            // proportion.
            let scale = s.cost_interval.as_secs_f64() / s.interval.as_secs_f64();
            let default_faults = find(t, s.sample_pages)
                .and_then(|sp| results.summary(sp))
                .and_then(faults_per_s)
                .map(|f| f * scale);
            let cost = fitted(t);
            fit_rows.push(vec![
                t.name().to_string(),
                opt(cost, |x| sig(x, 3)),
                note(t),
                opt(default_faults, |x| sig(x, 3)),
                opt(default_faults.zip(cost).map(|(f, c)| f * c * 1e-6), pct),
            ]);
        }
        let fits: Vec<String> = TRACKERS
            .iter()
            .map(|&t| {
                format!(
                    "{} µs with {} (the host notes report {})",
                    opt(fitted(t), |x| sig(x, 3)),
                    t.name(),
                    note(t)
                )
            })
            .collect();
        self.para(&format!(
            "{n} measures each mechanism on `random` run unpaced, which touches every \
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
            setting(s.cost_interval),
            setting(s.cost_duration),
            list(&fits)
        ));
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
        let exh: Vec<String> = self
            .plan
            .cost_exhaustive
            .iter()
            .filter_map(|sp| {
                let g = results.summary(sp)?;
                let early = results.early_end(sp).map_or(String::new(), |why| {
                    format!(" (the run stopped after {}: {why})", elapsed(g.duration_s))
                });
                Some(format!(
                    "{} takes {} faults per second and slows the guest by {}{early}",
                    sp.tracker.name(),
                    opt(faults_per_s(g), count),
                    opt(g.slowdown, pct)
                ))
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
        let cheaper: Vec<String> = plan
            .cost_exhaustive
            .iter()
            .filter_map(|sp| {
                let lost = results.summary(sp).and_then(lost_us_per_fault)?;
                let fit = fitted(sp.tracker)?;
                (lost < fit).then(|| {
                    format!(
                        "{} µs against {} µs with {}",
                        sig(lost, 3),
                        sig(fit, 3),
                        sp.tracker.name()
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
        let fallbacks = counter_sum(
            plan.runs()
                .into_iter()
                .filter(|sp| sp.tracker == TrackerKind::Mprotect)
                .filter_map(|sp| results.summary(sp)),
            "fallback_restores",
        );
        if fallbacks > 0 {
            let cost_fallbacks = counter_sum(
                plan.cost
                    .iter()
                    .filter(|sp| sp.tracker == TrackerKind::Mprotect)
                    .filter_map(|sp| results.summary(sp)),
                "fallback_restores",
            );
            self.para(&format!(
                "The mprotect tracker could not attribute a fault to an armed page {} times \
                 over the study ({} of them in the runs of {n}), and each time restored \
                 every armed page, losing that interval's sample (the `fallback_restores` \
                 counter in summary.json). The cause is probably a fault still in flight when the \
                 sampler collects and re-arms, which short intervals make frequent; the lost \
                 samples lower mprotect's tracked faults, and its estimates there.",
                fallbacks, cost_fallbacks
            ));
        }
        let predicted: Vec<String> = TRACKERS
            .iter()
            .filter_map(|&t| {
                let scale = s.cost_interval.as_secs_f64() / s.interval.as_secs_f64();
                let f = find(t, s.sample_pages)
                    .and_then(|sp| results.summary(sp))
                    .and_then(faults_per_s)?
                    * scale;
                let c = fitted(t)?;
                Some(format!("{} {}", t.name(), pct(f * c * 1e-6)))
            })
            .collect();
        let exh_slow: Vec<String> = self
            .plan
            .cost_exhaustive
            .iter()
            .filter_map(|sp| {
                let g = results.summary(sp)?;
                Some(format!("{} {}", sp.tracker.name(), opt(g.slowdown, pct)))
            })
            .collect();
        let or_na = |v: &[String]| {
            if v.is_empty() {
                NA.to_string()
            } else {
                list(v)
            }
        };
        self.summary.push(format!(
            "**How efficient?** Each tracked fault cost the guest about {}; at the default \
             setting that predicts a slowdown of {} for a guest that touches its whole region \
             every interval, while exhaustive tracking slowed it by {} ({}).",
            or_na(
                &TRACKERS
                    .iter()
                    .map(|&t| format!("{} µs ({})", opt(fitted(t), |x| sig(x, 3)), t.name()))
                    .collect::<Vec<_>>()
            ),
            or_na(&predicted),
            or_na(&exh_slow),
            self.section_ref(Question::Efficient),
        ));
    }
}
