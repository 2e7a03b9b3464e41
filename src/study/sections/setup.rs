//! The set-up: the machine's domain, the default setting, the pacing of the workloads.

use std::fmt::Write as _;

use crate::study::doc::Doc;
use crate::study::evidence::median;
use crate::study::format::{Align, count, list, opt, setting, sig, table};

impl Doc<'_> {
    pub(in crate::study) fn setup(&mut self) {
        let s = &self.plan.scale;
        self.line("## Set-up");
        self.line("");
        let domain = self.domain_pages();
        let mut text = format!(
            "Every run boots one guest program with {} of guest RAM and a {} working region \
             (`--wss`), on a single vCPU. The sampler can arm any page of the guest's data \
             region: {} pages, the *domain*. The default setting, from which each question \
             varies one thing, is uffd tracking with the ESX estimator sampling {} pages per \
             {} interval. ",
            crate::study::plan::size_arg(s.mem),
            crate::study::plan::size_arg(s.wss),
            opt(domain.map(|d| d as f64), count),
            s.sample_pages,
            setting(s.interval),
        );
        if let Some(d) = domain {
            let _ = write!(
                text,
                "With {} samples each sampled page stands for {} pages of the domain. ",
                s.sample_pages,
                sig(d as f64 / s.sample_pages as f64, 3)
            );
        }
        let _ = write!(
            text,
            "The true WSS of an interval is the number of distinct data pages the guest read \
             or wrote in it, counted by the guest runtime on every access; errors are measured \
             over the intervals after a warm-up of about {} (at least one interval). MAPE is \
             the mean of |estimate − truth| / truth over those intervals; bias is the mean of \
             estimate − truth, given here relative to the mean truth.",
            setting(s.warmup_time)
        );
        self.para(&text);
        let unpaced = self
            .plan
            .efficient
            .sampled
            .iter()
            .filter_map(|sp| self.s(sp))
            .filter_map(|s| s.baseline_guest_ops_per_s)
            .collect::<Vec<f64>>();
        let unpaced_rate = median(unpaced.iter().copied());
        let paced: Vec<String> = self
            .plan
            .workloads
            .iter()
            .filter(|w| !w.unpaced())
            .map(|w| format!("`{}`", w.label))
            .collect();
        let mut text = String::from(
            "**Pacing.** Run as fast as it can, a program touches its whole region many times \
             within one interval",
        );
        if let Some(r) = unpaced_rate {
            let _ = write!(
                text,
                " (`random` made {} million accesses per second on this machine without \
                 tracking, against a region of {} pages)",
                sig(r / 1e6, 3),
                s.wss_pages()
            );
        }
        let _ = write!(
            text,
            ". Its true WSS is then the region itself in every interval, whatever its access \
             pattern, and any estimator that counts touched samples is right by construction. \
             The study therefore paces {} with the common `rate` parameter (accesses per \
             second, in the table below), so that each interval touches only part of the \
             region and the access pattern matters. `phases` and `ramp` stay unpaced: their \
             working set is the active part of the region, which they touch completely, and \
             its size changes on a clock; `idle` paces itself.",
            list(&paced)
        );
        self.para(&text);
        let mut rows = Vec::new();
        for w in &self.plan.workloads {
            let info = crate::catalog::find(w.guest);
            let sp = self.default_of(&w.label);
            let truth = sp.and_then(|sp| self.s(sp)).map(|s| s.true_wss_mean_pages);
            rows.push(vec![
                format!("`{}`", w.label),
                if w.params.is_empty() {
                    "(defaults)".into()
                } else {
                    w.params
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                info.map_or(String::new(), |i| {
                    i.summary.split_whitespace().collect::<Vec<_>>().join(" ")
                }),
                opt(truth, count),
            ]);
        }
        let h = [
            "workload",
            "parameters",
            "what it does",
            "mean true WSS (pages), default setting",
        ];
        let t = table(
            &h,
            &[Align::Left, Align::Left, Align::Left, Align::Right],
            &rows,
        );
        self.para(&t);
    }
}
