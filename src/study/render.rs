//! The study document, study.md: the questions, the figures with the
//! commands behind them, tables, and prose whose every number is formatted
//! from the runs' summaries and time series.

use std::fmt::Write as _;
use std::path::Path;

use super::execute::Results;
use super::figures::{
    Figure, Figures, compared_truth, faults_per_s, metrics_against, rel_bias, vmm_cpu_share,
};
use super::format::{Align, NA, count, elapsed, list, opt, pct, setting, sig, signed_pct, table};
use super::host::Host;
use super::plan::{Plan, Spec, TRACKERS, Workload};
use super::recommend::{CRITERIA, Candidate, recommend};
use crate::estimate::{EstimatorKind, EsxGains};
use crate::report::metrics::TruthColumn;
use crate::report::summary::Summary;
use crate::report::timeseries::Row;
use crate::track::TrackerKind;

/// Per-access costs on this kind of machine, as the project's host notes
/// (/work/shared/kvm-host-notes.md) report them from their own probes;
/// quoted, not measured by the study.
pub const HOST_NOTES_US: [(TrackerKind, &str); 3] = [
    (TrackerKind::Mprotect, "~850 µs"),
    (TrackerKind::Uffd, "~300 µs"),
    (TrackerKind::DirtyLog, "~45 µs"),
];
/// The host notes' expectation for bare-metal VT-x hosts.
pub const HOST_NOTES_BARE_METAL: &str = "10-100x lower";

/// What the document says about how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// The study command as typed, e.g. `kvm-wss study --out docs`.
    pub command: String,
    /// Where the runs' folders are, as the commands should name them.
    pub runs_dir: String,
    pub host: Host,
    pub runs: usize,
    pub cached: usize,
    pub failed: Vec<(String, String)>,
    /// Runs that stopped before their duration but left data, with why.
    pub ended_early: Vec<(String, String)>,
    /// Wall time making the runs took, over those that recorded it, and
    /// how many did not (runs that failed).
    pub recorded_wall_s: f64,
    pub unrecorded: usize,
}

/// A relative share of a sample that shrinks as the sample grows: the
/// standard error of one interval's binomial estimate of a fraction `p`
/// of the domain from `n` samples, relative to `p`.
pub fn sampling_error(truth_pages: f64, domain_pages: u64, n: u64) -> Option<f64> {
    let big_n = domain_pages as f64;
    let p = truth_pages / big_n;
    (p > 0.0 && n > 0 && big_n > 0.0).then(|| ((1.0 - p.min(1.0)) / (n as f64 * p)).sqrt())
}

/// Intervals the slow average of ESX needs to fall from `from` pages to
/// within 10% of `to` (the shrink-lag criterion) with gain `g`, when it
/// starts at `from`: smallest k with (from - to)(1 - g)^k <= 0.1 to.
pub fn expected_shrink_lag(from: f64, to: f64, g: f64) -> Option<f64> {
    if !(to > 0.0 && g > 0.0 && g <= 1.0) {
        return None;
    }
    if from <= to * 1.1 {
        return Some(0.0);
    }
    if g >= 1.0 {
        return Some(1.0);
    }
    Some(((0.1 * to / (from - to)).ln() / (1.0 - g).ln()).ceil())
}

/// The largest drop between consecutive scored intervals of a run, as
/// (pages before, pages after).
pub fn largest_drop(rows: &[Row], warmup: usize) -> Option<(f64, f64)> {
    let scored: Vec<f64> = rows
        .iter()
        .skip(warmup)
        .filter(|r| r.full)
        .map(|r| r.true_wss_pages as f64)
        .collect();
    scored
        .windows(2)
        .filter(|w| w[1] > 0.0 && w[1] <= 0.75 * w[0])
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)))
}

/// Whether the run's first interval (boot and the program's set-up)
/// touched far more than the scored intervals while the estimate stayed
/// above the truth: ESX's slow average still remembers the set-up. Returns
/// (pages of the first interval, mean true WSS, intervals the slow average
/// with gain `slow_gain` needs to forget it).
pub fn startup_memory(rows: &[Row], s: &Summary, slow_gain: f64) -> Option<(f64, f64, f64)> {
    let first = rows.first()?.true_wss_pages as f64;
    let mean = s.true_wss_mean_pages;
    let bias = s.bias_pages?;
    if !(mean > 0.0 && first >= 1.25 * mean && bias > 0.05 * mean) {
        return None;
    }
    Some((first, mean, expected_shrink_lag(first, mean, slow_gain)?))
}

/// Intervals a run's metrics were computed over (full rows after warm-up).
fn scored_intervals(rows: &[Row], s: &Summary) -> usize {
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(usize::MAX);
    rows.iter().skip(warmup).filter(|r| r.full).count()
}

/// The sentence explaining a start-up memory, if the run shows one.
fn startup_sentence(rows: &[Row], s: &Summary, gains: EsxGains) -> Option<String> {
    let (first, mean, k) = startup_memory(rows, s, gains.slow)?;
    Some(format!(
        "its first interval, with the program's set-up, touched {} pages against {} per \
         interval afterwards, and ESX's slow average (gain {}) needs {} intervals to forget \
         that, while the run scored {}: the estimate stays high (bias {}). This is ESX's \
         deliberately slow release of a shrunken working set (section 4), not the access \
         pattern.",
        count(first),
        count(mean),
        gains.slow,
        count(k),
        scored_intervals(rows, s),
        opt(rel_bias(s), signed_pct)
    ))
}

/// The ESX gains of a run, the default when there is none.
fn sp_gains(spec: Option<&Spec>) -> EsxGains {
    spec.map_or_else(EsxGains::default, |s| s.gains)
}

/// A lag cell: the mean lag, or why there is none.
fn lag_cell(lag: Option<f64>, events: u32) -> String {
    match (lag, events) {
        (Some(l), _) => sig(l, 2),
        (None, 0) => "no step".into(),
        (None, _) => "not caught".into(),
    }
}

struct Doc<'a> {
    plan: &'a Plan,
    results: &'a Results,
    figs: &'a Figures,
    prov: &'a Provenance,
    out: String,
}

impl Doc<'_> {
    fn s(&self, spec: &Spec) -> Option<&Summary> {
        self.results.summary(spec)
    }

    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn para(&mut self, text: &str) {
        self.out.push_str(text.trim());
        self.out.push_str("\n\n");
    }

    fn number_of(&self, fig: &Figure) -> usize {
        self.figs
            .all()
            .iter()
            .position(|f| f.stem == fig.stem)
            .map_or(0, |i| i + 1)
    }

    fn figure(&mut self, fig: &Figure) {
        let n = self.number_of(fig);
        let mut runs: Vec<&Spec> = Vec::new();
        for r in &fig.runs {
            if !runs.iter().any(|x| x.id() == r.id()) {
                runs.push(r);
            }
        }
        let commands: Vec<String> = runs
            .iter()
            .map(|r| r.command(&Path::new(&self.prov.runs_dir).join(r.id())))
            .collect();
        let _ = write!(
            self.out,
            "![Figure {n}: {title}]({png})\n\n\
             **Figure {n}.** {title}. {caption} Made by `{cmd}`, which draws it from the \
             {k} runs listed below (each equivalent to the `kvm-wss run` command shown). \
             Data: [{csv}]({csv}); vector version: [{svg}]({svg}).\n\n\
             <details><summary>The {k} runs behind Figure {n}</summary>\n\n```sh\n{list}\n```\n\n\
             </details>\n\n",
            title = fig.title,
            png = fig.png(),
            caption = fig.caption,
            cmd = self.prov.command,
            k = runs.len(),
            csv = fig.csv(),
            svg = fig.svg(),
            list = commands.join("\n"),
        );
    }

    fn default_of(&self, label: &str) -> Option<&Spec> {
        self.plan
            .defaults
            .iter()
            .find(|s| s.workload.label == label)
    }

    /// Domain pages, read from any finished run (all share the layout).
    fn domain_pages(&self) -> Option<u64> {
        self.plan
            .runs()
            .into_iter()
            .find_map(|s| self.s(s).map(|s| s.domain_pages))
    }

    fn render(mut self) -> String {
        self.intro();
        self.setup();
        self.works();
        self.effective();
        self.efficient();
        self.agile();
        self.recommendations();
        self.threats();
        self.failed_runs();
        self.out
    }

    fn intro(&mut self) {
        let p = self.prov;
        let planned: f64 = self
            .plan
            .runs()
            .iter()
            .map(|s| s.run_time().as_secs_f64())
            .sum();
        self.line("# How well does sampled invalidation estimate a working set?");
        self.line("");
        let mut text = format!(
            "This document, its figures, tables and every number in its text were generated \
             by `{}` from {} runs of `kvm-wss`: {} of planned run time (runs with a baseline \
             count twice: an untracked twin runs first); making them took {} of wall time. ",
            p.command,
            p.runs,
            elapsed(planned),
            elapsed(p.recorded_wall_s),
        );
        if p.cached > 0 {
            let _ = write!(
                text,
                "This rendering read {} of the runs back from `{}`, where an earlier \
                 invocation of the same command left them. ",
                p.cached, p.runs_dir
            );
        }
        text.push_str(
            "Running the same command again reuses finished runs (add `--fresh` to measure \
             everything again); every figure's caption lists the equivalent `kvm-wss run` \
             command of each run behind it.",
        );
        self.para(&text);
        let h = &p.host;
        let virt = if h.hw_virt {
            "the CPU flags offer hardware virtualisation (vmx or svm)"
        } else {
            "the CPU flags show no vmx or svm, so KVM here is served without hardware \
             virtualisation (by PVM, according to the host notes): no EPT, no PML"
        };
        self.para(&format!(
            "**The machine.** `nproc`: {}; kernel (`uname -sr`): {}; CPU: {}; memory: {}; \
             {virt}. The machine is itself a virtual machine shared with other work, so \
             timings are noisy.",
            h.nproc,
            h.kernel,
            h.cpu_model,
            h.mem_bytes.map_or(NA.to_string(), |b| format!(
                "{} GiB",
                sig(b as f64 / 1073741824.0, 3)
            ))
        ));
    }

    fn setup(&mut self) {
        let s = &self.plan.scale;
        self.line("## Set-up");
        self.line("");
        let domain = self.domain_pages();
        let mut text = format!(
            "Every run boots one guest program with {} of guest RAM and a {} working region \
             (`--wss`), on a single vCPU. The sampler can arm any page of the guest's data \
             region: {} pages, the *domain*. The default setting, from which each question \
             varies one thing, is uffd tracking with the ESX estimator sampling {} pages every \
             {} interval. ",
            super::plan::size_arg(s.mem),
            super::plan::size_arg(s.wss),
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
            .cost
            .iter()
            .filter_map(|sp| self.s(sp))
            .filter_map(|s| s.baseline_guest_ops_per_s)
            .collect::<Vec<f64>>();
        let unpaced_rate = median(&unpaced);
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

    fn works(&mut self) {
        let s = self.plan.scale.clone();
        self.line("## 1. Does it work?");
        self.line("");
        let fig = &self.figs.works;
        let mut rows = Vec::new();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let mut notes = Vec::new();
        let domain = self.domain_pages().unwrap_or(0);
        for (i, w) in self.plan.workloads.iter().enumerate() {
            let d = self.s(&self.plan.defaults[i]);
            let damon = self.s(&self.plan.damon[i]);
            let exh = self.s(&self.plan.exhaustive[i]);
            let err = d.and_then(|d| sampling_error(d.true_wss_mean_pages, domain, s.sample_pages));
            rows.push(vec![
                format!("`{}`", w.label),
                opt(d.map(|d| d.true_wss_mean_pages), count),
                opt(d.and_then(|d| d.est_wss_mean_pages), count),
                opt(d.and_then(|d| d.mape), pct),
                opt(d.and_then(rel_bias), signed_pct),
                opt(d.and_then(|d| d.mae_pages), count),
                d.map_or(NA.into(), |d| lag_cell(d.lag_up_intervals, d.lag_up_events)),
                d.map_or(NA.into(), |d| {
                    lag_cell(d.lag_down_intervals, d.lag_down_events)
                }),
                opt(err, pct),
                opt(damon.and_then(|d| d.mape), pct),
                opt(exh.and_then(|d| d.mape), pct),
            ]);
            if let Some(m) = d.and_then(|d| d.mape) {
                let item = format!("`{}` ({})", w.label, pct(m));
                if m < CRITERIA.max_mape {
                    good.push(item);
                } else {
                    bad.push(item);
                    if let Some((d, rows)) = self.results.get(&self.plan.defaults[i]) {
                        notes.push(self.why_default_fails(w, d, rows, domain));
                    }
                }
            }
        }
        let mut text = format!(
            "Figure {} shows the estimate against the truth over time for every workload at \
             the default setting ({} runs with uffd and ESX, {} samples every {}).",
            self.number_of(fig),
            setting(s.run_duration),
            s.sample_pages,
            setting(s.interval)
        );
        if !good.is_empty() {
            let _ = write!(
                text,
                " The MAPE is under {} for {}.",
                pct(CRITERIA.max_mape),
                list(&good)
            );
        }
        if !bad.is_empty() {
            let _ = write!(
                text,
                " It is {} or more for {}.",
                pct(CRITERIA.max_mape),
                list(&bad)
            );
        }
        self.para(&text);
        for n in notes.into_iter().flatten() {
            self.line(&format!("- {n}"));
        }
        self.line("");
        let fig = self.figs.works.clone();
        self.figure(&fig);
        let h = [
            "workload",
            "true WSS",
            "estimate",
            "MAPE",
            "bias",
            "MAE (pages)",
            "lag up (intervals)",
            "lag down (intervals)",
            "1σ sampling error of one interval",
            "DAMON MAPE",
            "exhaustive MAPE",
        ];
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 10]);
        let t = table(&h, &align, &rows);
        self.para(&format!(
            "Errors per workload (ESX columns from the runs of Figure 1; DAMON and exhaustive \
             columns from {} runs at the same setting; WSS columns are mean pages; the \
             sampling error is what one interval's sample alone would give, √((1−p)/(n·p)) \
             for a true fraction p of the domain and n samples; the reported estimate \
             averages over intervals):",
            setting(s.sweep_duration)
        ));
        self.para(&t);
        self.exhaustive_check();
        let fig = self.figs.estimators.clone();
        self.figure(&fig);
    }

    /// A sentence on why the default setting misses on `w`, where the data
    /// points to a reason.
    fn why_default_fails(
        &self,
        w: &Workload,
        d: &Summary,
        rows: &[Row],
        domain: u64,
    ) -> Option<String> {
        let n = self.plan.scale.sample_pages;
        let per_sample = domain as f64 / n as f64;
        if let Some(why) = startup_sentence(rows, d, self.plan.defaults[0].gains) {
            return Some(format!("`{}`: {why}", w.label));
        }
        if d.true_wss_mean_pages < per_sample {
            return Some(format!(
                "`{}`: its true WSS ({} pages) is smaller than what one sampled page stands \
                 for ({} pages), so most intervals see no touched sample at all and any that \
                 does overshoots.",
                w.label,
                count(d.true_wss_mean_pages),
                count(per_sample)
            ));
        }
        let err = sampling_error(d.true_wss_mean_pages, domain, n)?;
        let bias = rel_bias(d)?;
        let mut s = format!(
            "`{}`: one interval's sample has a {} standard error at this WSS",
            w.label,
            pct(err)
        );
        if bias.abs() >= CRITERIA.max_mape / 2.0 {
            let _ = write!(
                s,
                ", and the estimate is biased {} ({}): ",
                if bias > 0.0 { "upwards" } else { "downwards" },
                signed_pct(bias)
            );
            if bias > 0.0 {
                s.push_str(
                    "ESX reports the larger of its two averages, which errs upwards whenever \
                     the sampled fraction fluctuates or the working set shrinks.",
                );
            } else {
                s.push_str("touched samples are missed, so the estimate falls short of the truth.");
            }
        } else {
            s.push_str(", with little bias: the error is sampling noise.");
        }
        Some(s)
    }

    fn exhaustive_check(&mut self) {
        let mut worst: Option<(String, f64)> = None;
        let mut all = Vec::new();
        for sp in &self.plan.exhaustive {
            if let Some(m) = self.s(sp).and_then(|s| s.mape) {
                all.push(m);
                if worst.as_ref().is_none_or(|w| m > w.1) {
                    worst = Some((sp.workload.label.clone(), m));
                }
            }
        }
        let Some((label, max)) = worst else {
            self.para("No exhaustive run finished, so the truth could not be cross-checked.");
            return;
        };
        let faults: Vec<f64> = self
            .plan
            .exhaustive
            .iter()
            .filter_map(|sp| self.s(sp).and_then(faults_per_s))
            .collect();
        let mut text = format!(
            "**Cross-check of the truth.** Exhaustive tracking arms every page of the domain \
             every interval, so its estimate is the VMM's own count of the pages the guest \
             touched. Against the guest runtime's count its MAPE has a median of {} over the \
             workloads and is at most {} (`{label}`), at a cost of up to {} tracked faults per \
             second. ",
            opt(median(&all), pct),
            pct(max),
            opt(faults.iter().copied().reduce(f64::max), count),
        );
        if max < 0.02 {
            text.push_str(
                "The two independent counts agree, which supports the guest-reported truth \
                 the other sections rely on.",
            );
        } else {
            let gap = self
                .plan
                .exhaustive
                .iter()
                .filter_map(|sp| self.s(sp))
                .map(|s| (s.arm_us_total + s.collect_us_total) / 1e6 / s.duration_s.max(1e-9))
                .reduce(f64::max);
            let _ = write!(
                text,
                "Where they differ, the VMM misses touches: between collecting one interval's \
                 touches and re-arming every page for the next, the guest runs untracked, and \
                 pages it touches only then count in the guest's truth but not in the VMM's. \
                 Collecting and re-arming took up to {} of the run time.",
                opt(gap, pct)
            );
        }
        self.para(&text);
    }

    fn effective(&mut self) {
        let s = self.plan.scale.clone();
        self.line("## 2. How effective is it?");
        self.line("");
        let domain = self.domain_pages().unwrap_or(0);
        let fs = self.number_of(&self.figs.samples);
        let fi = self.number_of(&self.figs.intervals);
        let mut rows = Vec::new();
        let mut enough = Vec::new();
        for (w, specs) in &self.plan.sample_sweep {
            let pts: Vec<(u64, &Summary)> = specs
                .iter()
                .filter_map(|sp| self.s(sp).map(|s| (sp.sample_pages, s)))
                .collect();
            let first_ok = pts
                .iter()
                .find(|(_, s)| s.mape.is_some_and(|m| m < CRITERIA.max_mape))
                .map(|(n, _)| *n);
            let at = |n: u64| pts.iter().find(|(m, _)| *m == n).map(|x| x.1);
            let lo = s.sample_grid.first().copied().unwrap_or(0);
            let hi = s.sample_grid.last().copied().unwrap_or(0);
            let truth = at(s.sample_pages).map(|x| x.true_wss_mean_pages);
            rows.push(vec![
                format!("`{}`", w.label),
                opt(truth, count),
                opt(at(lo).and_then(|x| x.mape), pct),
                opt(at(s.sample_pages).and_then(|x| x.mape), pct),
                opt(at(hi).and_then(|x| x.mape), pct),
                opt(at(hi).and_then(rel_bias), signed_pct),
                first_ok.map_or_else(|| "none".to_string(), |n| n.to_string()),
                opt(
                    truth.and_then(|t| sampling_error(t, domain, s.sample_pages)),
                    pct,
                ),
            ]);
            if let Some(n) = first_ok {
                enough.push(format!("`{}` from {n}", w.label));
            }
        }
        let mut text = format!(
            "Figure {fs} varies the sample from {} to {} pages per interval at the default \
             {} interval; Figure {fi} varies the interval from {} to {} at {} samples, on \
             the workloads {}. ",
            s.sample_grid.first().copied().unwrap_or(0),
            s.sample_grid.last().copied().unwrap_or(0),
            setting(s.interval),
            opt(s.interval_grid.first().map(|d| d.as_secs_f64()), |x| {
                setting(std::time::Duration::from_secs_f64(x))
            }),
            opt(s.interval_grid.last().map(|d| d.as_secs_f64()), |x| {
                setting(std::time::Duration::from_secs_f64(x))
            }),
            s.sample_pages,
            list(
                &self
                    .plan
                    .sample_sweep
                    .iter()
                    .map(|(w, _)| format!("`{}`", w.label))
                    .collect::<Vec<_>>()
            ),
        );
        if enough.is_empty() {
            let _ = write!(
                text,
                "No sample size in the grid brings any of them under {} MAPE.",
                pct(CRITERIA.max_mape)
            );
        } else {
            let _ = write!(
                text,
                "The MAPE falls under {} with {} sampled pages.",
                pct(CRITERIA.max_mape),
                list(&enough)
            );
        }
        text.push_str(
            " A sample of n pages out of a domain of N, of which a fraction p is in the \
             working set, sees about n·p touched pages, so its relative error shrinks as \
             1/√(n·p): doubling the sample cuts the noise by about 30%, and a small working \
             set in a large domain needs a large sample.",
        );
        self.para(&text);
        let fig = self.figs.samples.clone();
        self.figure(&fig);
        let lo = s.sample_grid.first().copied().unwrap_or(0);
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        let heads = [
            format!("MAPE, {lo} samples"),
            format!("MAPE, {} samples", s.sample_pages),
            format!("MAPE, {hi} samples"),
            format!("bias, {hi} samples"),
            format!("fewest samples with MAPE < {}", pct(CRITERIA.max_mape)),
        ];
        let h = [
            "workload",
            "true WSS at default",
            &heads[0],
            &heads[1],
            &heads[2],
            &heads[3],
            &heads[4],
            "1σ sampling error of one interval at default",
        ];
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 7]);
        self.para(&table(&h, &align, &rows));
        self.interval_text();
        let fig = self.figs.intervals.clone();
        self.figure(&fig);
        self.hard_cases();
        self.write_only();
    }

    fn interval_text(&mut self) {
        let mut parts = Vec::new();
        for (w, specs) in &self.plan.interval_sweep {
            let pts: Vec<(&Spec, &Summary)> = specs
                .iter()
                .filter_map(|sp| self.s(sp).map(|s| (sp, s)))
                .collect();
            let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
                continue;
            };
            parts.push(format!(
                "`{}` touches {} pages per {} interval and {} per {} one (MAPE {} and {})",
                w.label,
                count(first.1.true_wss_mean_pages),
                setting(first.0.interval),
                count(last.1.true_wss_mean_pages),
                setting(last.0.interval),
                opt(first.1.mape, pct),
                opt(last.1.mape, pct),
            ));
        }
        if parts.is_empty() {
            return;
        }
        self.para(&format!(
            "The interval sets what the working set *is*: a paced program touches more \
             distinct pages in a longer interval. {}. A short interval therefore both shrinks \
             the truth, which the same sample resolves worse, and leaves the estimator fewer \
             intervals' history per second of change.",
            parts.join("; ")
        ));
    }

    fn hard_cases(&mut self) {
        let s = self.plan.scale.clone();
        let n = self.number_of(&self.figs.failures);
        self.line("### Where it fails, and why");
        self.line("");
        let works = super::plan::failure_workloads(&s);
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for w in &works {
            let mut per = Vec::new();
            for t in TRACKERS {
                for e in [EstimatorKind::Esx, EstimatorKind::Damon] {
                    let sp = self
                        .plan
                        .failures
                        .iter()
                        .find(|x| x.workload == *w && x.tracker == t && x.estimator == e);
                    let got = sp.and_then(|sp| self.results.get(sp));
                    let all = got.map(|(s, r)| metrics_against(s, r, TruthColumn::All));
                    rows.push(vec![
                        format!("`{}`", w.label),
                        format!("{}+{}", t.name(), e.name()),
                        opt(got.map(|g| compared_truth(g.0)), count),
                        opt(got.and_then(|g| g.0.est_wss_mean_pages), count),
                        opt(got.and_then(|g| g.0.mape), pct),
                        opt(got.and_then(|g| rel_bias(g.0)), signed_pct),
                        opt(all.and_then(|m| m.mape), pct),
                        opt(got.and_then(|g| faults_per_s(g.0)), |x| sig(x, 3)),
                    ]);
                    per.push((
                        t,
                        e,
                        got.and_then(|g| g.0.mape),
                        got.and_then(|g| rel_bias(g.0)),
                    ));
                }
            }
            lines.push(self.hard_case_text(w, &per));
        }
        self.para(&format!(
            "Figure {n} runs three access patterns that challenge sampling under all three \
             trackers, with ESX and with DAMON ({} runs, default setting otherwise).",
            setting(s.sweep_duration)
        ));
        for l in lines {
            self.line(&format!("- {l}"));
        }
        self.line("");
        let fig = self.figs.failures.clone();
        self.figure(&fig);
        let h = [
            "workload",
            "tracker+estimator",
            "true WSS (scored column)",
            "estimate",
            "MAPE",
            "bias",
            "MAPE vs all pages",
            "tracked faults/s",
        ];
        let mut align = vec![Align::Left, Align::Left];
        align.extend([Align::Right; 6]);
        self.para(&table(&h, &align, &rows));
    }

    /// What the numbers say about one hard workload.
    fn hard_case_text(
        &self,
        w: &Workload,
        per: &[(TrackerKind, EstimatorKind, Option<f64>, Option<f64>)],
    ) -> String {
        let get = |t: TrackerKind, e: EstimatorKind| {
            per.iter()
                .find(|x| x.0 == t && x.1 == e)
                .and_then(|x| x.2.map(|m| (m, x.3)))
        };
        let esx = get(TrackerKind::Uffd, EstimatorKind::Esx);
        let damon = get(TrackerKind::Uffd, EstimatorKind::Damon);
        let fmt = |x: Option<(f64, Option<f64>)>| {
            x.map_or(NA.to_string(), |(m, b)| {
                format!("MAPE {}, bias {}", pct(m), opt(b, signed_pct))
            })
        };
        let failing: Vec<String> = per
            .iter()
            .filter(|x| x.2.is_some_and(|m| m >= CRITERIA.max_mape))
            .map(|x| format!("{}+{}", x.0.name(), x.1.name()))
            .collect();
        let mut s = format!(
            "`{}` ({}): uffd+esx {}; uffd+damon {}. ",
            w.label,
            w.describe(),
            fmt(esx),
            fmt(damon)
        );
        if per.iter().all(|x| x.2.is_none()) {
            s.push_str("No run of it produced a MAPE.");
        } else if failing.is_empty() {
            let _ = write!(
                s,
                "Every combination stays under {} here.",
                pct(CRITERIA.max_mape)
            );
        } else {
            let _ = write!(
                s,
                "At {} or more: {}.",
                pct(CRITERIA.max_mape),
                list(&failing)
            );
        }
        let esx_by_tracker: Vec<String> = TRACKERS
            .iter()
            .map(|&t| {
                format!(
                    "{} {}",
                    t.name(),
                    opt(get(t, EstimatorKind::Esx).map(|x| x.0), pct)
                )
            })
            .collect();
        let _ = write!(s, " ESX's MAPE by tracker: {}.", list(&esx_by_tracker));
        let pattern = match w.guest {
            "chase" => "Pointer chasing follows one random cycle through the pages: neighbouring \
                        pages are not accessed alike, and each load depends on the previous one, \
                        so a tracked fault stalls the chain (pacing lets the guest catch up)."
                .to_string(),
            "stride" => format!(
                "A stride of {} pages touches one page in {}: every region of neighbouring \
                 pages is only partly in the working set.",
                w.param("k").unwrap_or(NA),
                w.param("k").unwrap_or(NA)
            ),
            _ => format!(
                "A Zipf distribution with theta {} puts most accesses on a few pages; the rest \
                 of its working set is a long tail of pages touched once or twice per interval.",
                w.param("theta").unwrap_or(NA)
            ),
        };
        s.push(' ');
        s.push_str(&pattern);
        let esx_ok = esx.is_some_and(|x| x.0 < CRITERIA.max_mape);
        let uffd_esx = self.plan.failures.iter().find(|x| {
            x.workload == *w && x.tracker == TrackerKind::Uffd && x.estimator == EstimatorKind::Esx
        });
        let startup = uffd_esx
            .and_then(|sp| self.results.get(sp))
            .and_then(|(sum, rows)| startup_sentence(rows, sum, sp_gains(uffd_esx)));
        if esx_ok {
            s.push_str(
                " ESX's uniform sample does not care where the touched pages lie, so the \
                 pattern costs it nothing.",
            );
        } else if let Some(why) = startup {
            let _ = write!(s, " ESX misses here for another reason: {why}");
        }
        let damon_fails = damon.is_some_and(|d| d.0 >= CRITERIA.max_mape);
        if damon_fails {
            let ticks = crate::estimate::DamonConfig::default().ticks_per_interval;
            let _ = write!(
                s,
                " DAMON misses: it samples one page per region per tick and takes the region \
                 to behave like that page, and it sees a page only if the guest touches it \
                 within the tick it is armed for ({} of the {} interval), so a page touched \
                 once per interval is mostly missed.",
                setting(self.plan.scale.interval / ticks.max(1)),
                setting(self.plan.scale.interval)
            );
        }
        s
    }

    fn write_only(&mut self) {
        let n = self.number_of(&self.figs.reads);
        let find = |t: TrackerKind| self.plan.read_heavy.iter().find(|s| s.tracker == t);
        let (Some(u), Some(d)) = (find(TrackerKind::Uffd), find(TrackerKind::DirtyLog)) else {
            return;
        };
        let mut text = format!(
            "**Write-only tracking.** Dirty logging sees only writes. Figure {n} runs a \
             read-heavy program ({}) under uffd and under dirty logging. ",
            self.plan.read_heavy[0].workload.describe()
        );
        if let Some((s, rows)) = self.results.get(d) {
            let all = metrics_against(s, rows, TruthColumn::All);
            let writes = metrics_against(s, rows, TruthColumn::Writes);
            let _ = write!(
                text,
                "The program reads or writes {} pages per interval but writes only {}. \
                 Dirty logging estimates {} pages: against the written pages its MAPE is {}, \
                 against all pages touched it is {} (bias {}). It measures the write working \
                 set well and the working set badly: for a read-heavy guest it is the wrong \
                 mechanism, however well it samples. ",
                count(s.true_wss_mean_pages),
                count(s.true_wss_write_mean_pages),
                opt(s.est_wss_mean_pages, count),
                opt(writes.mape, pct),
                opt(all.mape, pct),
                opt(
                    all.bias_pages
                        .filter(|_| s.true_wss_mean_pages > 0.0)
                        .map(|b| b / s.true_wss_mean_pages),
                    signed_pct
                ),
            );
        }
        if let Some(s) = self.s(u) {
            let _ = write!(
                text,
                "uffd, which sees reads too, has a MAPE of {} against all pages.",
                opt(s.mape, pct)
            );
        }
        self.para(&text);
        let fig = self.figs.reads.clone();
        self.figure(&fig);
    }

    fn efficient(&mut self) {
        let s = self.plan.scale.clone();
        let n = self.number_of(&self.figs.cost);
        self.line("## 3. How efficient is it?");
        self.line("");
        let mut rows = Vec::new();
        let mut measured = Vec::new();
        let find = |t: TrackerKind, n: u64| {
            self.plan
                .cost
                .iter()
                .find(|x| x.tracker == t && x.sample_pages == n)
        };
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        let row = |label: String, sp: Option<&Spec>, t: TrackerKind| -> Vec<String> {
            let got = sp.and_then(|sp| self.s(sp));
            let service = got.and_then(|g| {
                g.tracker_stats
                    .get("vmm_service_us_per_fault")
                    .and_then(|v| v.as_f64())
            });
            vec![
                t.name().to_string(),
                label,
                opt(got.and_then(faults_per_s), |x| sig(x, 3)),
                opt(got.and_then(|g| g.fault_cost_us), |x| sig(x, 3)),
                opt(service, |x| sig(x, 3)),
                opt(got.and_then(|g| g.slowdown), signed_pct),
                opt(got.map(vmm_cpu_share), pct),
                HOST_NOTES_US
                    .iter()
                    .find(|h| h.0 == t)
                    .map_or(NA.to_string(), |h| h.1.to_string()),
            ]
        };
        for t in TRACKERS {
            rows.push(row(
                format!("esx, {} samples", s.sample_pages),
                find(t, s.sample_pages),
                t,
            ));
            rows.push(row(format!("esx, {hi} samples"), find(t, hi), t));
            let exh = self.plan.cost_exhaustive.iter().find(|x| x.tracker == t);
            rows.push(row("exhaustive".into(), exh, t));
            if let Some(c) = find(t, hi)
                .and_then(|sp| self.s(sp))
                .and_then(|g| g.fault_cost_us)
            {
                measured.push((t, c));
            }
        }
        let mut text = format!(
            "Figure {n} measures each mechanism on `random` run unpaced, which touches every \
             page of its region within an interval, so that nearly every sampled page in the \
             region costs a tracked fault. Each run ({} of tracking) follows an untracked \
             twin of the same length; the slowdown is 1 − (accesses per second tracked) / \
             (accesses per second untracked). The time the guest loses per tracked touch is \
             measured inside the guest (the stall of the batch of accesses that faulted, less \
             the stalls the untracked twin saw); the VMM's service time per fault is measured \
             in the VMM where it handles faults (uffd's handler thread, mprotect's EFAULT path; \
             dirty logging's are handled inside the kernel). ",
            setting(s.cost_duration)
        );
        if !measured.is_empty() {
            let m: Vec<String> = measured
                .iter()
                .map(|(t, c)| {
                    let note = HOST_NOTES_US.iter().find(|h| h.0 == *t).map_or(NA, |h| h.1);
                    format!(
                        "{} µs with {} (the host notes report {note})",
                        sig(*c, 3),
                        t.name()
                    )
                })
                .collect();
            let _ = write!(
                text,
                "At {hi} samples a tracked touch cost the guest {}.",
                list(&m)
            );
        }
        self.para(&text);
        let fig = self.figs.cost.clone();
        self.figure(&fig);
        let h = [
            "tracker",
            "setting",
            "tracked faults/s",
            "µs lost per tracked touch (guest)",
            "VMM µs per fault",
            "slowdown",
            "VMM CPU (share of one CPU)",
            "host notes' cost per tracked access",
        ];
        let mut align = vec![Align::Left, Align::Left];
        align.extend([Align::Right; 6]);
        self.para(&table(&h, &align, &rows));
        let exh: Vec<String> = self
            .plan
            .cost_exhaustive
            .iter()
            .filter_map(|sp| {
                let g = self.s(sp)?;
                Some(format!(
                    "{} takes {} faults per second and slows the guest by {}",
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
                 interval; it is a check, not a way to run.",
                list(&exh)
            ));
        }
    }

    fn agile(&mut self) {
        let s = self.plan.scale.clone();
        let g = EsxGains::default();
        self.line("## 4. Is it agile?");
        self.line("");
        let fi = self.number_of(&self.figs.lag_intervals);
        let fg = self.number_of(&self.figs.lag_gains);
        let mut text = format!(
            "`phases` changes the size of its active set every {} (one eighth of the region, \
             all of it, a quarter, and again), `ramp` grows it over {}, holds it, and shrinks \
             it. Figure {fi} gives the lag after growth (intervals until the estimate reaches \
             90% of the truth) and after shrinking (until it falls to 110%) as the interval \
             varies; Figure {fg} as the ESX gains vary. ESX reports the larger of a slow \
             average (gain {}) and a fast one (gain {}) of the sampled fraction. ",
            setting(s.phase_period),
            setting(s.phase_period),
            g.slow,
            g.fast
        );
        if let Some(sp) = self.default_of("phases")
            && let Some((sum, rows)) = self.results.get(sp)
            && let Some((from, to)) =
                largest_drop(rows, usize::try_from(sum.warmup_intervals).unwrap_or(0))
        {
            let k = expected_shrink_lag(from, to, g.slow);
            let k_one = expected_shrink_lag(from, to, 1.0);
            let _ = write!(
                text,
                "After the largest drop in the default `phases` run, from {} to {} pages, the \
                 slow average alone needs {} intervals to come within 10% of the new size \
                 (the smallest k with (from − to)(1 − g)^k ≤ 0.1·to), more than the {} \
                 intervals of a phase: shrinking is reported late by design, so that a \
                 briefly idle guest is not judged to have shed its memory; with a slow gain \
                 of 1 it would take {}. The measured lags:",
                count(from),
                count(to),
                opt(k, count),
                count(s.phase_period.as_secs_f64() / s.interval.as_secs_f64()),
                opt(k_one, count),
            );
        }
        self.para(&text);
        let mut rows = Vec::new();
        for sp in self
            .plan
            .agility_intervals
            .iter()
            .chain(&self.plan.agility_gains)
        {
            if rows.iter().any(|r: &Vec<String>| r[0] == sp.id()) {
                continue;
            }
            let Some(m) = self.s(sp) else { continue };
            rows.push(vec![
                sp.id(),
                format!("`{}`", sp.workload.label),
                setting(sp.interval),
                format!("{}", sp.gains.slow),
                format!("{}", sp.gains.fast),
                lag_cell(m.lag_up_intervals, m.lag_up_events),
                opt(super::figures::lag_s(m.lag_up_intervals, m), |x| sig(x, 2)),
                lag_cell(m.lag_down_intervals, m.lag_down_events),
                opt(super::figures::lag_s(m.lag_down_intervals, m), |x| {
                    sig(x, 2)
                }),
                format!("{} / {}", m.lag_up_events, m.lag_down_events),
                opt(m.mape, pct),
            ]);
        }
        let rows: Vec<Vec<String>> = rows.into_iter().map(|mut r| r.split_off(1)).collect();
        let fig = self.figs.lag_intervals.clone();
        self.figure(&fig);
        let fig = self.figs.lag_gains.clone();
        self.figure(&fig);
        let h = [
            "workload",
            "interval",
            "slow gain",
            "fast gain",
            "lag up (intervals)",
            "lag up (s)",
            "lag down (intervals)",
            "lag down (s)",
            "growth / shrink steps",
            "MAPE",
        ];
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 9]);
        self.para(&table(&h, &align, &rows));
        self.para(
            "\"not caught\" means the estimate did not get there before the next step of the \
             same kind or the end of the run. A longer interval makes each lag fewer \
             intervals but not fewer seconds; a higher fast gain follows growth sooner at the \
             price of noisier estimates, and a higher slow gain releases a shrunken working \
             set sooner at the price of under-reporting a guest that pauses.",
        );
    }

    fn recommendations(&mut self) {
        let c = CRITERIA;
        self.line("## 5. Which interval and sample size to use?");
        self.line("");
        self.para(&format!(
            "For each workload, among the uffd + ESX settings the study ran with the default \
             gains, the cheapest (fewest tracked faults per second) whose MAPE is below {} and \
             whose lag after growth is below {} intervals (a run without growth passes that \
             test; growth never caught fails it). Workloads covered by the sweeps of section \
             2 had the most settings to choose from; the others only those of sections 1, 3 \
             and 4.",
            pct(c.max_mape),
            sig(c.max_lag_up, 2)
        ));
        let mut labels: Vec<&Workload> = Vec::new();
        let runs = self.plan.runs();
        for r in &runs {
            if !labels.iter().any(|w| w.label == r.workload.label) {
                labels.push(&r.workload);
            }
        }
        let mut rows = Vec::new();
        let mut none = Vec::new();
        for w in labels {
            let cands: Vec<Candidate> = runs
                .iter()
                .filter(|r| {
                    r.workload.label == w.label
                        && r.tracker == TrackerKind::Uffd
                        && r.estimator == EstimatorKind::Esx
                        && r.gains == EsxGains::default()
                })
                .filter_map(|r| self.s(r).and_then(Candidate::from_summary))
                .collect();
            if cands.is_empty() {
                continue;
            }
            let rec = recommend(&cands, &c);
            let (setting_cells, note) = match (&rec.best, &rec.closest) {
                (Some(b), _) => (
                    vec![
                        b.sample_pages.to_string(),
                        setting(std::time::Duration::from_secs_f64(b.interval_s)),
                        sig(b.faults_per_s, 3),
                        opt(b.mape, pct),
                        lag_cell(b.lag_up, b.lag_up_events),
                    ],
                    String::new(),
                ),
                (None, closest) => {
                    none.push(format!("`{}`", w.label));
                    (
                        vec![
                            "none qualifies".into(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                        ],
                        closest
                            .as_ref()
                            .map_or("no setting had a MAPE".to_string(), |b| {
                                format!(
                                    "closest: MAPE {} with {} samples every {} (lag up {})",
                                    opt(b.mape, pct),
                                    b.sample_pages,
                                    setting(std::time::Duration::from_secs_f64(b.interval_s)),
                                    lag_cell(b.lag_up, b.lag_up_events)
                                )
                            }),
                    )
                }
            };
            let mut row = vec![
                format!("`{}`", w.label),
                format!("{} / {}", rec.qualified, rec.tried),
            ];
            row.extend(setting_cells);
            row.push(note);
            rows.push(row);
        }
        let h = [
            "workload",
            "settings qualifying / tried",
            "sample pages",
            "interval",
            "tracked faults/s",
            "MAPE",
            "lag up (intervals)",
            "note",
        ];
        let mut align = vec![Align::Left, Align::Right];
        align.extend([Align::Right; 5]);
        align.push(Align::Left);
        self.para(&table(&h, &align, &rows));
        if !none.is_empty() {
            self.para(&format!(
                "No setting the study ran qualifies for {}; the note gives the most accurate \
                 one.",
                list(&none)
            ));
        }
    }

    fn threats(&mut self) {
        let measured: Vec<String> = TRACKERS
            .iter()
            .filter_map(|&t| {
                let hi = self.plan.scale.sample_grid.last().copied()?;
                let sp = self
                    .plan
                    .cost
                    .iter()
                    .find(|x| x.tracker == t && x.sample_pages == hi)?;
                let c = self.s(sp)?.fault_cost_us?;
                Some(format!("{} µs ({})", sig(c, 3), t.name()))
            })
            .collect();
        let notes: Vec<String> = HOST_NOTES_US
            .iter()
            .map(|(t, c)| format!("{c} ({})", t.name()))
            .collect();
        self.line("## Threats to validity");
        self.line("");
        self.line(&format!(
            "- **Fault costs of this host.** The host notes report the cost of one tracked \
             access on this kind of machine (KVM served by PVM, shadow paging, no VT-x) as {} \
             and expect bare-metal VT-x hosts to be {}. The study measured {}. Every cost \
             and slowdown in section 3, and any accuracy loss that comes from tracking \
             slowing the guest, would shrink accordingly on hardware virtualisation; the \
             sampling error does not depend on the mechanism.",
            list(&notes),
            HOST_NOTES_BARE_METAL,
            if measured.is_empty() {
                NA.to_string()
            } else {
                list(&measured)
            }
        ));
        self.line(
            "- **One vCPU, no guest kernel.** The guest is a single user-mode program on one \
             vCPU. A real guest has several vCPUs (tracked faults then stall one of them while \
             the others run on), a kernel, page cache and its own memory management.",
        );
        self.line(
            "- **Synthetic workloads.** The programs are small generators of access patterns \
             with known truth; real programs mix them and change over time in ways these do \
             not. Each setting was run once with one seed, so differences of a few percent \
             between neighbouring settings are within run-to-run noise.",
        );
        self.line(
            "- **A shared, noisy machine.** Runs share two cores with other work; slowdowns \
             measured against an untracked twin include the noise between the two runs and \
             can come out slightly negative when tracking costs little.",
        );
        self.line("");
    }

    fn failed_runs(&mut self) {
        if !self.prov.ended_early.is_empty() {
            self.line("## Runs that ended early");
            self.line("");
            self.para(
                "These runs stopped before their planned duration; what they measured until \
                 then is in the figures and tables.",
            );
            let rows: Vec<Vec<String>> = self
                .prov
                .ended_early
                .iter()
                .map(|(id, why)| vec![format!("`{id}`"), why.clone()])
                .collect();
            self.para(&table(&["run", "why"], &[Align::Left, Align::Left], &rows));
        }
        if self.prov.failed.is_empty() {
            return;
        }
        self.line("## Runs that failed");
        self.line("");
        self.para(
            "These runs could not be made; the figures and tables show n/a where they would \
             have been.",
        );
        let rows: Vec<Vec<String>> = self
            .prov
            .failed
            .iter()
            .map(|(id, why)| vec![format!("`{id}`"), why.clone()])
            .collect();
        self.para(&table(
            &["run", "reason"],
            &[Align::Left, Align::Left],
            &rows,
        ));
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The whole document.
pub fn render(plan: &Plan, results: &Results, figs: &Figures, prov: &Provenance) -> String {
    Doc {
        plan,
        results,
        figs,
        prov,
        out: String::new(),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;

    #[test]
    fn sampling_error_follows_the_binomial() {
        // p = 0.25, n = 400: sqrt(0.75 / 100) = 0.0866.
        let e = sampling_error(250.0, 1000, 400).unwrap();
        assert!((e - 0.075f64.sqrt() / 10f64.sqrt()).abs() < 1e-12, "{e}");
        assert_eq!(sampling_error(0.0, 1000, 400), None);
        assert_eq!(sampling_error(10.0, 0, 400), None);
        assert_eq!(sampling_error(1000.0, 1000, 400), Some(0.0));
    }

    #[test]
    fn shrink_lag_from_the_slow_gain() {
        // From 4x to x with g = 0.125: 3 * 0.875^k <= 0.1 -> k = 26.
        assert_eq!(expected_shrink_lag(400.0, 100.0, 0.125), Some(26.0));
        // g = 0.5: 3 * 0.5^k <= 0.1 -> k = 5.
        assert_eq!(expected_shrink_lag(400.0, 100.0, 0.5), Some(5.0));
        assert_eq!(expected_shrink_lag(400.0, 100.0, 1.0), Some(1.0));
        // Already within 10%.
        assert_eq!(expected_shrink_lag(105.0, 100.0, 0.125), Some(0.0));
        assert_eq!(expected_shrink_lag(100.0, 0.0, 0.125), None);
    }

    #[test]
    fn largest_drop_is_found_after_warmup() {
        let rows: Vec<Row> = [1000u64, 100, 800, 800, 200, 200, 100]
            .iter()
            .enumerate()
            .map(|(i, &t)| row(i as f64 + 1.0, t, Some(t as f64)))
            .collect();
        // With the first row skipped, the 1000 -> 100 drop is gone; 800 ->
        // 200 (4x) beats 200 -> 100 (2x).
        assert_eq!(largest_drop(&rows, 1), Some((800.0, 200.0)));
        assert_eq!(largest_drop(&rows, 0), Some((1000.0, 100.0)));
        assert_eq!(largest_drop(&rows[..2], 1), None);
    }

    #[test]
    fn startup_memory_needs_a_big_first_interval_and_a_high_estimate() {
        // chase: the set-up touches all 65536 pages, then 32768 per interval.
        let mut rows = vec![row(1.0, 65536, Some(65536.0))];
        rows.extend((2..8).map(|i| row(i as f64, 32768, Some(50000.0))));
        let s = Summary {
            true_wss_mean_pages: 32768.0,
            bias_pages: Some(17232.0),
            warmup_intervals: 2,
            ..Summary::default()
        };
        // 32768 * 0.875^k <= 3276.8 -> k = 18.
        assert_eq!(
            startup_memory(&rows, &s, 0.125),
            Some((65536.0, 32768.0, 18.0))
        );
        assert_eq!(scored_intervals(&rows, &s), 5);
        let text = startup_sentence(&rows, &s, EsxGains::default()).unwrap();
        assert!(text.contains("touched 65536 pages against 32768"), "{text}");
        assert!(text.contains("needs 18 intervals"), "{text}");
        // No memory when the estimate is not high, or the start not big.
        let unbiased = Summary {
            bias_pages: Some(100.0),
            ..s.clone()
        };
        assert_eq!(startup_memory(&rows, &unbiased, 0.125), None);
        rows[0].true_wss_pages = 33000;
        assert_eq!(startup_memory(&rows, &s, 0.125), None);
    }

    #[test]
    fn lag_cells_say_why_there_is_no_lag() {
        assert_eq!(lag_cell(Some(1.5), 2), "1.5");
        assert_eq!(lag_cell(None, 0), "no step");
        assert_eq!(lag_cell(None, 3), "not caught");
    }

    #[test]
    fn median_of_values() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
    }
}
