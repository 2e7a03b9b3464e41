//! The study document, study.md: the questions, the figures with the
//! commands behind them, tables, and prose whose every number is formatted
//! from the runs' summaries and time series.

use std::fmt::Write as _;
use std::path::Path;

use super::execute::Results;
use super::figures::{
    Figure, Figures, REACH_DOWN, STEP, compared_truth, faults_per_s, fitted_cost_us, lag_cell,
    lag_definition, lost_us_per_fault, metrics_against, rel_bias, vmm_cpu_share,
};
use super::format::{
    Align, NA, count, elapsed, list, num, opt, pct, setting, sig, signed_pct, table,
};
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
/// `REACH_DOWN` of `to` (the shrink-lag criterion) with gain `g`, when it
/// starts at `from`: the smallest k with (from - to)(1 - g)^k <= (REACH_DOWN - 1) to.
pub fn expected_shrink_lag(from: f64, to: f64, g: f64) -> Option<f64> {
    if !(to > 0.0 && g > 0.0 && g <= 1.0) {
        return None;
    }
    let slack = REACH_DOWN - 1.0;
    if from <= to * REACH_DOWN {
        return Some(0.0);
    }
    if g >= 1.0 {
        return Some(1.0);
    }
    Some(((slack * to / (from - to)).ln() / (1.0 - g).ln()).ceil())
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
        .filter(|w| w[1] > 0.0 && w[1] <= (1.0 - STEP) * w[0])
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)))
}

/// A run whose warm-up saw many more armed pages touched than the rest of
/// it, while its estimate stayed above the truth: ESX's slow average still
/// remembers the start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartupMemory {
    /// Largest touched fraction of the armed pages during warm-up.
    pub first_fraction: f64,
    /// Median touched fraction over the scored intervals.
    pub later_fraction: f64,
    /// True pages of the first interval, and the mean over scored ones.
    pub first_truth: f64,
    pub mean_truth: f64,
    /// Intervals the slow average needs to forget the start.
    pub intervals: f64,
}

/// Finds a start-up memory in an ESX run (see [`StartupMemory`]).
pub fn startup_memory(rows: &[Row], s: &Summary, slow_gain: f64) -> Option<StartupMemory> {
    if s.estimator != Some(EstimatorKind::Esx) {
        return None;
    }
    let fraction =
        |r: &Row| (r.sampled_pages > 0).then(|| r.touched_samples as f64 / r.sampled_pages as f64);
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(0).max(1);
    let first = rows
        .iter()
        .take(warmup)
        .filter_map(fraction)
        .reduce(f64::max)?;
    let later: Vec<f64> = rows
        .iter()
        .skip(warmup)
        .filter(|r| r.full)
        .filter_map(fraction)
        .collect();
    let later = median(&later)?;
    let truth = compared_truth(s);
    let bias = s.bias_pages?;
    if !(truth > 0.0 && first >= (1.0 + STEP) * later && bias > 0.05 * truth) {
        return None;
    }
    Some(StartupMemory {
        first_fraction: first,
        later_fraction: later,
        first_truth: rows.first()?.true_wss_pages as f64,
        mean_truth: s.true_wss_mean_pages,
        intervals: expected_shrink_lag(first, later, slow_gain)?,
    })
}

/// Intervals a run's metrics were computed over (full rows after warm-up).
fn scored_intervals(rows: &[Row], s: &Summary) -> usize {
    let warmup = usize::try_from(s.warmup_intervals).unwrap_or(usize::MAX);
    rows.iter().skip(warmup).filter(|r| r.full).count()
}

/// The sentence explaining a start-up memory, if the run shows one.
fn startup_sentence(rows: &[Row], s: &Summary, gains: EsxGains) -> Option<String> {
    let m = startup_memory(rows, s, gains.slow)?;
    let cause = if m.first_truth >= (1.0 + STEP) * m.mean_truth {
        format!(
            "because the program's set-up touched {} pages in the first interval against {} \
             per interval afterwards",
            count(m.first_truth),
            count(m.mean_truth)
        )
    } else {
        "although the truth was no higher then: the tracker itself reported more touches at \
         the start"
            .to_string()
    };
    Some(format!(
        "during warm-up the tracker saw up to {} of the armed pages touched against {} later, \
         {cause}; ESX's slow average (gain {}) needs {} intervals to forget that, and the run \
         scored {}, so the estimate stays high (bias {}). This is ESX's deliberately slow \
         release of a shrunken working set (section 4), not the access pattern.",
        pct(m.first_fraction),
        pct(m.later_fraction),
        gains.slow,
        count(m.intervals),
        scored_intervals(rows, s),
        opt(rel_bias(s), signed_pct)
    ))
}

/// The fitted cost per tracked fault of tracker `t` over the sampled cost
/// runs of `plan`, in µs.
fn fitted_for(plan: &Plan, results: &Results, t: TrackerKind) -> Option<f64> {
    let pts: Vec<(f64, f64)> = plan
        .cost
        .iter()
        .filter(|x| x.tracker == t)
        .filter_map(|sp| results.summary(sp))
        .filter_map(|g| Some((faults_per_s(g)?, g.slowdown?)))
        .collect();
    fitted_cost_us(&pts)
}

/// A tracker counter summed over runs.
fn counter_sum<'a>(runs: impl Iterator<Item = &'a Summary>, name: &str) -> u64 {
    runs.filter_map(|s| s.tracker_stats.mechanism.get(name).copied())
        .sum()
}

/// The ESX gains of a run, the default when there is none.
fn sp_gains(spec: Option<&Spec>) -> EsxGains {
    spec.map_or_else(EsxGains::default, |s| s.gains)
}

struct Doc<'a> {
    plan: &'a Plan,
    results: &'a Results,
    figs: &'a Figures,
    prov: &'a Provenance,
    out: String,
    /// One line per question for the summary at the top, filled in as the
    /// sections are written.
    summary: Vec<String>,
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
        self.setup();
        self.works();
        self.effective();
        self.efficient();
        self.agile();
        self.recommendations();
        self.threats();
        self.failed_runs();
        let body = std::mem::take(&mut self.out);
        self.intro();
        self.line("## In short");
        self.line("");
        for line in std::mem::take(&mut self.summary) {
            self.line(&format!("- {line}"));
        }
        self.line("");
        self.out.push_str(&body);
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
             varies one thing, is uffd tracking with the ESX estimator sampling {} pages per \
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
        self.summary.push(format!(
            "**Does it work?** At the default setting (uffd + ESX, {} samples every {}) the \
             MAPE is under {} for {} of {} workloads{}{} (section 1 says why).",
            s.sample_pages,
            setting(s.interval),
            pct(CRITERIA.max_mape),
            good.len(),
            good.len() + bad.len(),
            if good.is_empty() {
                String::new()
            } else {
                format!(", {}", list(&good))
            },
            if bad.is_empty() {
                String::new()
            } else {
                format!("; it is not for {}", list(&bad))
            }
        ));
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
        let (mut damon_ok, mut damon_bad) = (Vec::new(), Vec::new());
        for sp in &self.plan.damon {
            if let Some(m) = self.s(sp).and_then(|m| m.mape) {
                let item = format!("`{}` ({})", sp.workload.label, pct(m));
                if m < CRITERIA.max_mape {
                    damon_ok.push(item);
                } else {
                    damon_bad.push(item);
                }
            }
        }
        if !damon_ok.is_empty() || !damon_bad.is_empty() {
            let mut text = String::from("**DAMON** at the same setting");
            if !damon_ok.is_empty() {
                let _ = write!(
                    text,
                    " is under {} on {}",
                    pct(CRITERIA.max_mape),
                    list(&damon_ok)
                );
            }
            if !damon_bad.is_empty() {
                let _ = write!(
                    text,
                    "{} {} or more on {}",
                    if damon_ok.is_empty() { " is" } else { ", and" },
                    pct(CRITERIA.max_mape),
                    list(&damon_bad)
                );
            }
            text.push_str(
                ". Its regions assume that neighbouring pages are used alike, which holds for \
                 a working set that is one contiguous part of the region, touched throughout \
                 (as in `phases` and `ramp`), and not for one scattered over it; section 2 \
                 looks at the patterns that break it.",
            );
            self.para(&text);
        }
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
        if d.lag_down_events > 0
            && d.bias_pages.is_some_and(|b| b > 0.0)
            && d.lag_down_intervals
                .is_none_or(|l| l >= CRITERIA.max_lag_up)
        {
            return Some(format!(
                "`{}`: its working set shrinks by {} or more {} times during the run, and ESX's \
                 slow average (gain {}) lets go of a shrunken working set over many intervals \
                 (lag down: {}), so the estimate stays above the truth after each shrink (bias \
                 {}); section 4 weighs this against reacting to growth.",
                w.label,
                pct(STEP),
                d.lag_down_events,
                self.plan.defaults[0].gains.slow,
                lag_cell(d.lag_down_intervals, d.lag_down_events),
                opt(rel_bias(d), signed_pct)
            ));
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
        let worst_mae = self
            .plan
            .exhaustive
            .iter()
            .find(|sp| sp.workload.label == label)
            .and_then(|sp| self.s(sp))
            .and_then(|s| s.mae_pages);
        let mut text = String::from(
            "**Cross-check of the truth.** Exhaustive tracking arms every page of the domain \
             every interval, so its estimate is the VMM's own count of the pages the guest \
             touched. ",
        );
        let peak_faults = opt(faults.iter().copied().reduce(f64::max), count);
        if max == 0.0 {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE is 0 in all {} workloads, at a cost \
                 of up to {peak_faults} tracked faults per second. ",
                all.len()
            );
        } else {
            let _ = write!(
                text,
                "Against the guest runtime's count its MAPE has a median of {} over the \
                 workloads and is at most {} (`{label}`, off by {} pages per interval on \
                 average), at a cost of up to {peak_faults} tracked faults per second. ",
                opt(median(&all), pct),
                pct(max),
                opt(worst_mae, count),
            );
        }
        if max == 0.0 {
            self.summary.push(
                "**Is the truth right?** Yes: the VMM's own exhaustive count equals the \
                 guest's count of touched pages in every scored interval of every workload \
                 (MAPE 0)."
                    .to_string(),
            );
            text.push_str(
                "The two independent counts are equal in every scored interval: the guest is \
                 held at every boundary, at a point between two whole accesses, so nothing it \
                 touches can fall between the VMM's count and its own.",
            );
        } else {
            self.summary.push(format!(
                "**Is the truth right?** The VMM's own exhaustive count agrees with the \
                 guest's count of touched pages to a median MAPE of {} over the workloads (at \
                 most {}), where it should be exact.",
                opt(median(&all), pct),
                pct(max)
            ));
            let forced: u64 = self
                .plan
                .exhaustive
                .iter()
                .filter_map(|sp| self.s(sp))
                .map(|s| s.forced_holds)
                .sum();
            let _ = write!(
                text,
                "The two counts should be equal, since the guest is held at every boundary; \
                 where they differ, something broke that guarantee ({forced} holds had to be \
                 taken mid-access), and the runs above say where."
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
        let mut never = Vec::new();
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
            match first_ok {
                Some(n) => enough.push(format!("{n} for `{}`", w.label)),
                None => never.push(format!("`{}`", w.label)),
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
        if !enough.is_empty() {
            let _ = write!(
                text,
                "The smallest sample giving a MAPE under {} is {}.",
                pct(CRITERIA.max_mape),
                list(&enough)
            );
        }
        if !never.is_empty() {
            let _ = write!(
                text,
                " No sample size in the grid brings {} under {}.",
                list(&never),
                pct(CRITERIA.max_mape)
            );
            let remembered: Vec<String> = self
                .plan
                .sample_sweep
                .iter()
                .filter(|(w, _)| never.contains(&format!("`{}`", w.label)))
                .filter(|(w, _)| {
                    self.default_of(&w.label)
                        .and_then(|sp| self.results.get(sp).map(|(m, r)| (sp, m, r)))
                        .and_then(|(sp, m, r)| startup_memory(r, m, sp.gains.slow))
                        .is_some()
                })
                .map(|(w, _)| format!("`{}`", w.label))
                .collect();
            if !remembered.is_empty() {
                let _ = write!(
                    text,
                    " For {} the cause is not the sample but the start-up memory explained in \
                     section 1, which no sample size removes.",
                    list(&remembered)
                );
            }
        }
        let median_at = |n: u64| {
            let v: Vec<f64> = self
                .plan
                .sample_sweep
                .iter()
                .filter_map(|(_, specs)| specs.iter().find(|sp| sp.sample_pages == n))
                .filter_map(|sp| self.s(sp).and_then(|s| s.mape))
                .collect();
            median(&v)
        };
        let lo = s.sample_grid.first().copied().unwrap_or(0);
        let hi = s.sample_grid.last().copied().unwrap_or(0);
        self.summary.push(format!(
            "**How effective?** The error falls as the sample grows: over {} the median MAPE \
             is {} with {lo} sampled pages, {} with {} and {} with {hi} (section 2).",
            list(
                &self
                    .plan
                    .sample_sweep
                    .iter()
                    .map(|(w, _)| format!("`{}`", w.label))
                    .collect::<Vec<_>>()
            ),
            opt(median_at(lo), pct),
            opt(median_at(s.sample_pages), pct),
            s.sample_pages,
            opt(median_at(hi), pct),
        ));
        text.push_str(&format!(
            " A sample of n pages out of a domain of N, of which a fraction p is in the \
                 working set, sees about n·p touched pages, so its relative error shrinks as \
                 1/√(n·p): doubling the sample cuts the noise by {}, and a small working set \
                 in a large domain needs a large sample.",
            pct(1.0 - 1.0 / 2f64.sqrt())
        ));
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
        let mut all_per = Vec::new();
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
            all_per.push((w.label.clone(), per));
        }
        let missed = |e: EstimatorKind| -> Vec<String> {
            all_per
                .iter()
                .filter(|(_, per)| {
                    per.iter().any(|x| {
                        x.0 == TrackerKind::Uffd
                            && x.1 == e
                            && x.2.is_some_and(|m| m >= CRITERIA.max_mape)
                    })
                })
                .map(|(l, _)| format!("`{l}`"))
                .collect()
        };
        let (esx_missed, damon_missed) = (missed(EstimatorKind::Esx), missed(EstimatorKind::Damon));
        let say = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                list(v)
            }
        };
        self.summary.push(format!(
            "**Where does it fail?** Of the hard cases (pointer chasing, strided access, \
             heavy-tailed Zipf), uffd + ESX reaches a MAPE of {} or more on {} and uffd + \
             DAMON on {}.",
            pct(CRITERIA.max_mape),
            say(&esx_missed),
            say(&damon_missed)
        ));
        self.para(&format!(
            "Figure {n} runs three access patterns that challenge sampling under all three \
             trackers, with ESX and with DAMON ({} runs, default setting otherwise).",
            setting(s.sweep_duration)
        ));
        for l in lines {
            self.line(&format!("- {l}"));
        }
        self.line("");
        let dirty: Vec<&Spec> = self
            .plan
            .failures
            .iter()
            .filter(|sp| sp.tracker == TrackerKind::DirtyLog && sp.estimator == EstimatorKind::Esx)
            .collect();
        let busy: Vec<String> = dirty
            .iter()
            .filter(|sp| {
                self.results
                    .get(sp)
                    .and_then(|(m, r)| startup_memory(r, m, sp.gains.slow))
                    .is_some()
            })
            .map(|sp| format!("`{}`", sp.workload.label))
            .collect();
        if !busy.is_empty() {
            self.para(&format!(
                "The dirty-log + ESX runs of {} ({} of {}) show the busy start described under \
                 write-only tracking below, which inflates their error against the written \
                 pages.",
                list(&busy),
                busy.len(),
                dirty.len()
            ));
        }
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
            w.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
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
        } else if let Some((sum, _)) = uffd_esx.and_then(|sp| self.results.get(sp)) {
            let err = sampling_error(
                sum.true_wss_mean_pages,
                sum.domain_pages,
                sum.sample_pages.unwrap_or(0),
            );
            let _ = write!(
                s,
                " ESX's error here is its sample's: at this WSS one interval's sample has a {} \
                 standard error, and ESX reports the larger of its two averages, which errs \
                 upwards when the sampled fraction fluctuates (bias {}); nothing in the \
                 pattern itself defeats uniform sampling.",
                opt(err, pct),
                opt(rel_bias(sum), signed_pct)
            );
        }
        let damon_fails = damon.is_some_and(|d| d.0 >= CRITERIA.max_mape);
        if let (true, Some((m, bias))) = (damon_fails, damon) {
            let ticks = crate::estimate::DamonConfig::default().ticks_per_interval;
            let half = CRITERIA.max_mape / 2.0;
            let _ = write!(
                s,
                " DAMON misses (MAPE {}): it arms one page per region per tick ({} of the {} \
                 interval) and takes the whole region to behave like that page",
                pct(m),
                setting(self.plan.scale.interval / ticks.max(1)),
                setting(self.plan.scale.interval)
            );
            s.push_str(match bias {
                Some(b) if b <= -half => {
                    "; a page the guest touches once per interval is touched within the tick \
                     it is armed for only by chance, so DAMON sees too few touches and \
                     under-estimates."
                }
                Some(b) if b >= half => {
                    "; a region whose sampled page happens to be hot counts as hot throughout, \
                     so the few hot pages of this pattern inflate whole regions and DAMON \
                     over-estimates."
                }
                _ => {
                    "; one page per region and tick is too small a sample of each region, so \
                     its estimate swings around the truth."
                }
            });
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
                 against all pages touched it is {} (bias {}). ",
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
            if let Some(why) = startup_sentence(rows, s, d.gains) {
                let _ = write!(text, "Against the written pages, {why} ");
            }
            let ok = |m: Option<f64>| m.is_some_and(|m| m < CRITERIA.max_mape);
            if ok(writes.mape) && !ok(all.mape) {
                text.push_str(
                    "It measures the write working set well and the working set badly: for a \
                     read-heavy guest it is the wrong mechanism, however well it samples. ",
                );
            } else if !ok(all.mape) {
                text.push_str(
                    "It misses the working set, and here even the write working set it can \
                     see. ",
                );
            }
            let start = if startup_memory(rows, s, d.gains.slow).is_some() {
                " (against the written pages mostly a busy start that ESX is slow to forget, \
                 section 2)"
            } else {
                ""
            };
            self.summary.push(format!(
                "**Write-only tracking** (dirty logging) on a program with {} writes: MAPE {} \
                 against the pages it wrote, {} against all the pages it touched{start}.",
                self.plan.read_heavy[0]
                    .workload
                    .param("write_ratio")
                    .and_then(|r| r.parse::<f64>().ok())
                    .map_or(NA.to_string(), pct),
                opt(writes.mape, pct),
                opt(all.mape, pct)
            ));
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
        // Copies of the shared references, so that closures reading the
        // runs do not hold `self` while the text is written.
        let (plan, results) = (self.plan, self.results);
        let s = plan.scale.clone();
        let n = self.number_of(&self.figs.cost);
        self.line("## 3. How efficient is it?");
        self.line("");
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
            let service = got.and_then(|g| g.tracker_stats.vmm_service_us_per_fault);
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
            "Figure {n} measures each mechanism on `random` run unpaced, which touches every \
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
                 over the study ({} of them in the runs of Figure {n}), and each time restored \
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
             every interval, while exhaustive tracking slowed it by {} (section 3).",
            or_na(
                &TRACKERS
                    .iter()
                    .map(|&t| format!("{} µs ({})", opt(fitted(t), |x| sig(x, 3)), t.name()))
                    .collect::<Vec<_>>()
            ),
            or_na(&predicted),
            or_na(&exh_slow),
        ));
    }

    fn agile(&mut self) {
        let s = self.plan.scale.clone();
        let g = EsxGains::default();
        self.line("## 4. Is it agile?");
        self.line("");
        let fi = self.number_of(&self.figs.lag_intervals);
        let fg = self.number_of(&self.figs.lag_gains);
        let sizes = crate::catalog::find("phases")
            .and_then(|p| p.params.iter().find(|q| q.key == "sizes"))
            .map_or(NA, |q| q.default);
        let mut text = format!(
            "`phases` changes the size of its active set every {}, cycling through the sizes \
             {sizes} (its default), and `ramp` grows it over {}, holds it, and shrinks it. \
             Figure {fi} shows the estimate following them at each interval, Figure {fg} \
             under other ESX gains; each panel's title gives the lag after growth and after \
             shrinking, the mean number of {}. ESX reports the larger of a slow average (gain \
             {}) and a fast one (gain {}) of the sampled fraction. ",
            setting(s.phase_period),
            setting(s.phase_period),
            lag_definition(),
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
            let phase = s.phase_period.as_secs_f64() / s.interval.as_secs_f64();
            let _ = write!(
                text,
                "After the largest drop in the default `phases` run, from {} to {} pages, the \
                 slow average alone needs {} intervals to fall to {} of the new size (the \
                 smallest k with (from − to)(1 − g)^k ≤ {}·to), ",
                count(from),
                count(to),
                opt(k, count),
                pct(REACH_DOWN),
                sig(REACH_DOWN - 1.0, 1),
            );
            if k.is_some_and(|k| k > phase) {
                let _ = write!(
                    text,
                    "more than the {} intervals of a phase: shrinking is reported late by \
                     design, so that a briefly idle guest is not judged to have shed its \
                     memory; with a slow gain of 1 it would take {}. ",
                    count(phase),
                    opt(k_one, count)
                );
            } else {
                let _ = write!(text, "within the {} intervals of a phase. ", count(phase));
            }
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
        self.para(&format!(
            "The lags of Figures {fi} and {fg} (also in [{a}]({a}) and [{b}]({b})):",
            a = format!("study/data/{}-lags.csv", self.figs.lag_intervals.stem),
            b = format!("study/data/{}-lags.csv", self.figs.lag_gains.stem),
        ));
        self.para(&table(&h, &align, &rows));
        self.para(
            "\"not caught\" means the estimate did not get there before the next step of the \
             same kind or the end of the run; \"no step\" that the run had none.",
        );
        let mut findings = Vec::new();
        for label in ["phases", "ramp"] {
            let by_interval: Vec<(&Spec, &Summary)> = self
                .plan
                .agility_intervals
                .iter()
                .filter(|sp| sp.workload.label == label)
                .filter_map(|sp| self.s(sp).map(|m| (sp, m)))
                .collect();
            if let (Some(a), Some(b)) = (by_interval.first(), by_interval.last()) {
                let secs = |m: &Summary, up: bool| {
                    let (lag, events) = if up {
                        (m.lag_up_intervals, m.lag_up_events)
                    } else {
                        (m.lag_down_intervals, m.lag_down_events)
                    };
                    super::figures::lag_s(lag, m)
                        .map_or_else(|| lag_cell(None, events), |x| format!("{} s", num(x)))
                };
                findings.push(format!(
                    "`{label}`: after growth {} (at {} intervals) and {} (at {}); after \
                     shrinking {} and {}",
                    secs(a.1, true),
                    setting(a.0.interval),
                    secs(b.1, true),
                    setting(b.0.interval),
                    secs(a.1, false),
                    secs(b.1, false),
                ));
            }
        }
        let d = EsxGains::default();
        // The phases runs with one gain at its default, by the other gain.
        let varied = |slow: bool| -> Vec<(f64, &Summary)> {
            let mut v: Vec<(f64, &Summary)> = Vec::new();
            for sp in &self.plan.agility_gains {
                let fixed = if slow {
                    sp.gains.fast == d.fast
                } else {
                    sp.gains.slow == d.slow
                };
                let x = if slow { sp.gains.slow } else { sp.gains.fast };
                if sp.workload.label == "phases"
                    && fixed
                    && !v.iter().any(|(y, _)| *y == x)
                    && let Some(m) = self.s(sp)
                {
                    v.push((x, m));
                }
            }
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        let slow_runs = varied(true);
        if let (Some(a), Some(b)) = (slow_runs.first(), slow_runs.last())
            && slow_runs.len() > 1
        {
            findings.push(format!(
                "raising the slow gain from {} to {} on `phases` takes the lag after shrinking \
                 from {} to {} intervals and the MAPE from {} to {}",
                a.0,
                b.0,
                lag_cell(a.1.lag_down_intervals, a.1.lag_down_events),
                lag_cell(b.1.lag_down_intervals, b.1.lag_down_events),
                opt(a.1.mape, pct),
                opt(b.1.mape, pct),
            ));
        }
        let fast_runs = varied(false);
        if let (Some(a), Some(b)) = (fast_runs.first(), fast_runs.last())
            && fast_runs.len() > 1
        {
            findings.push(format!(
                "raising the fast gain from {} to {} takes the lag after growth from {} to {} \
                 intervals",
                a.0,
                b.0,
                lag_cell(a.1.lag_up_intervals, a.1.lag_up_events),
                lag_cell(b.1.lag_up_intervals, b.1.lag_up_events),
            ));
        }
        if !findings.is_empty() {
            let mut text = String::from("Lags: ");
            text.push_str(&findings.join("; "));
            text.push_str(
                ". The slow average is slow on purpose: a guest that pauses briefly should not \
                 be judged to have shed its working set, which a fast release would do.",
            );
            self.para(&text);
            self.summary.push(format!(
                "**Is it agile?** {}.",
                upper_first(&findings.join("; "))
            ));
        }
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
            num(c.max_lag_up)
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
            let cands: Vec<Candidate> =
                runs.iter()
                    .filter(|r| {
                        r.workload.label == w.label
                            && r.tracker == TrackerKind::Uffd
                            && r.estimator == EstimatorKind::Esx
                            && r.gains == EsxGains::default()
                    })
                    .filter_map(|r| self.s(r).and_then(Candidate::from_summary))
                    .fold(Vec::new(), |mut v: Vec<Candidate>, c| {
                        // A setting run twice (section 1's run and a sweep's
                        // point) counts once: the first, longer run.
                        if !v.iter().any(|x| {
                            x.sample_pages == c.sample_pages && x.interval_s == c.interval_s
                        }) {
                            v.push(c);
                        }
                        v
                    });
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
        let total = rows.len();
        self.summary.push(format!(
            "**Which setting?** {} of {} workloads have a setting the study ran with a MAPE \
             under {} and a lag after growth under {} intervals; section 5 gives the cheapest \
             for each{}.",
            total - none.len(),
            total,
            pct(c.max_mape),
            num(c.max_lag_up),
            if none.is_empty() {
                String::new()
            } else {
                format!(", and none qualifies for {}", list(&none))
            }
        ));
    }

    fn threats(&mut self) {
        let measured: Vec<String> = TRACKERS
            .iter()
            .filter_map(|&t| {
                let c = fitted_for(self.plan, self.results, t)?;
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
             and expect bare-metal VT-x hosts to be {}. The study measured {} of guest time \
             per tracked fault, all costs of the mechanism included (section 3). Every cost \
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

/// `s` with its first letter in upper case.
fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
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
        summary: Vec::new(),
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
    fn startup_memory_needs_a_busy_warmup_and_a_high_estimate() {
        // chase: the set-up touches all 65536 pages (half the domain), then
        // 32768 per interval (a quarter).
        let with = |truth: u64, touched: u64| {
            let mut r = row(0.0, truth, Some(50000.0));
            r.sampled_pages = 400;
            r.touched_samples = touched;
            r
        };
        let mut rows = vec![with(65536, 200), with(32768, 100)];
        rows.extend((0..6).map(|_| with(32768, 100)));
        let s = Summary {
            estimator: Some(crate::estimate::EstimatorKind::Esx),
            true_wss_mean_pages: 32768.0,
            bias_pages: Some(17232.0),
            warmup_intervals: 2,
            compared_against: crate::analysis::accuracy::TruthColumn::All,
            ..Summary::default()
        };
        // 0.25 * 0.875^k <= 0.025 -> k = 18.
        let m = startup_memory(&rows, &s, 0.125).unwrap();
        assert_eq!((m.first_fraction, m.later_fraction), (0.5, 0.25));
        assert_eq!(m.intervals, 18.0);
        assert_eq!(scored_intervals(&rows, &s), 6);
        let text = startup_sentence(&rows, &s, EsxGains::default()).unwrap();
        assert!(text.contains("set-up touched 65536 pages"), "{text}");
        assert!(text.contains("needs 18 intervals"), "{text}");
        // The tracker, not the truth, was high at the start.
        rows[0].true_wss_pages = 32768;
        let text = startup_sentence(&rows, &s, EsxGains::default()).unwrap();
        assert!(text.contains("the tracker itself reported more"), "{text}");
        // No memory when the estimate is not high, for another estimator,
        // or when the warm-up was not busier.
        let unbiased = Summary {
            bias_pages: Some(100.0),
            ..s.clone()
        };
        assert_eq!(startup_memory(&rows, &unbiased, 0.125), None);
        let damon = Summary {
            estimator: Some(crate::estimate::EstimatorKind::Damon),
            ..s.clone()
        };
        assert_eq!(startup_memory(&rows, &damon, 0.125), None);
        rows[0].touched_samples = 110;
        rows[1].touched_samples = 110;
        assert_eq!(startup_memory(&rows, &s, 0.125), None);
    }

    #[test]
    fn lag_cells_say_why_there_is_no_lag() {
        assert_eq!(lag_cell(Some(1.5), 2), "1.5");
        assert_eq!(lag_cell(Some(1.0), 2), "1");
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
