//! Question 4, is it agile: how fast the estimate follows growth and shrinking.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EstimatorKind;
use crate::estimate::EsxGains;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::report::summary::Summary;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::{expected_shrink_lag, largest_drop, upper_first};
use crate::study::figures::{
    AGILITY_BY_INTERVAL, LAG_COLUMNS, REACH_DOWN, cell, figure_ref, lag_cell, lag_definition, lag_s,
};
use crate::study::figures::{Figure, FigureWriter};
use crate::study::format::{Align, NA, count, num, opt, pct, setting, sig, table};
use crate::study::plan::{QuestionRuns, SpecMaker, Workload};
use crate::track::TrackerKind;
use std::time::Duration;

use crate::study::execute::Results;
use crate::study::plan::{Plan, Spec};

/// The runs of question 4: `phases` and `ramp` at each agility interval,
/// and under each pair of ESX gains with one gain at its default.
#[derive(Debug, Clone, PartialEq)]
pub struct AgilityRuns {
    pub by_interval: Vec<Spec>,
    pub by_gains: Vec<Spec>,
}

impl AgilityRuns {
    pub fn plan(make: &SpecMaker, workloads: &[Workload]) -> AgilityRuns {
        let s = make.scale;
        let mut by_interval = Vec::new();
        let mut by_gains = Vec::new();
        for w in workloads
            .iter()
            .filter(|w| w.label == "phases" || w.label == "ramp")
        {
            for &i in &s.agility_intervals {
                by_interval.push(if i == s.interval {
                    make.default_run(w)
                } else {
                    make.spec(
                        w,
                        TrackerKind::Uffd,
                        EstimatorKind::Esx,
                        s.sample_pages,
                        i,
                        s.run_duration,
                    )
                });
            }
            let d = EsxGains::default();
            let gains = s
                .slow_gains
                .iter()
                .map(|&slow| EsxGains { slow, fast: d.fast })
                .chain(
                    s.fast_gains
                        .iter()
                        .map(|&fast| EsxGains { slow: d.slow, fast }),
                );
            for g in gains {
                let mut sp = make.default_run(w);
                sp.gains = g;
                by_gains.push(sp);
            }
        }
        AgilityRuns {
            by_interval,
            by_gains,
        }
    }
}

impl QuestionRuns for AgilityRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.by_interval.iter().chain(&self.by_gains).collect()
    }
}

/// A lag as the document states it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Mean intervals to catch up; `None` when not caught or no step.
    pub intervals: Option<f64>,
    pub seconds: Option<f64>,
    /// Steps of that kind in the run.
    pub events: u32,
}

impl Lag {
    fn up(m: &Summary) -> Lag {
        Lag {
            intervals: m.lag_up_intervals,
            seconds: lag_s(m.lag_up_intervals, m),
            events: m.lag_up_events,
        }
    }

    fn down(m: &Summary) -> Lag {
        Lag {
            intervals: m.lag_down_intervals,
            seconds: lag_s(m.lag_down_intervals, m),
            events: m.lag_down_events,
        }
    }

    /// In intervals, or why there is none.
    fn in_intervals(&self) -> String {
        lag_cell(self.intervals, self.events)
    }

    /// In seconds, or why there is none.
    fn in_seconds(&self) -> String {
        self.seconds
            .map_or_else(|| lag_cell(None, self.events), |x| format!("{} s", num(x)))
    }
}

/// How long ESX's slow average takes to release the largest shrink of the
/// default `phases` run.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// True pages before and after the drop.
    pub from: f64,
    pub to: f64,
    /// Intervals to fall within `REACH_DOWN` of the new size with the
    /// default slow gain, and with a slow gain of 1.
    pub intervals: Option<f64>,
    pub intervals_unit_gain: Option<f64>,
    /// Intervals in one phase of `phases`.
    pub phase_intervals: f64,
}

/// A workload's lags at its shortest and longest interval.
#[derive(Debug, Clone, PartialEq)]
pub struct LagsByInterval {
    pub label: String,
    /// (interval, lag after growth, lag after shrinking).
    pub shortest: (Duration, Lag, Lag),
    pub longest: (Duration, Lag, Lag),
}

/// What raising one ESX gain from its smallest to its largest value does
/// on `phases`, with the other gain at its default.
#[derive(Debug, Clone, PartialEq)]
pub struct GainEffect {
    pub from: f64,
    pub to: f64,
    /// The lag the gain governs (after shrinking for the slow gain, after
    /// growth for the fast one), before and after.
    pub lag: (Lag, Lag),
    pub mape: (Option<f64>, Option<f64>),
}

/// The findings of question 4.
#[derive(Debug, Clone, PartialEq)]
pub struct Agility {
    pub release: Option<Release>,
    pub by_interval: Vec<LagsByInterval>,
    pub slow_gain: Option<GainEffect>,
    pub fast_gain: Option<GainEffect>,
}

impl Agility {
    pub fn from_runs(plan: &Plan, results: &Results) -> Agility {
        let s = &plan.scale;
        let g = EsxGains::default();
        let release = plan
            .defaults
            .iter()
            .find(|sp| sp.workload.label == "phases")
            .and_then(|sp| results.get(sp))
            .and_then(|(sum, rows)| {
                largest_drop(rows, usize::try_from(sum.warmup_intervals).unwrap_or(0))
            })
            .map(|(from, to)| Release {
                from,
                to,
                intervals: expected_shrink_lag(from, to, g.slow),
                intervals_unit_gain: expected_shrink_lag(from, to, 1.0),
                phase_intervals: s.phase_period.as_secs_f64() / s.interval.as_secs_f64(),
            });
        let by_interval = ["phases", "ramp"]
            .into_iter()
            .filter_map(|label| {
                let runs: Vec<(&Spec, &Summary)> = plan
                    .agile
                    .by_interval
                    .iter()
                    .filter(|sp| sp.workload.label == label)
                    .filter_map(|sp| results.summary(sp).map(|m| (sp, m)))
                    .collect();
                let point = |(sp, m): &(&Spec, &Summary)| (sp.interval, Lag::up(m), Lag::down(m));
                Some(LagsByInterval {
                    label: label.to_string(),
                    shortest: point(runs.first()?),
                    longest: point(runs.last()?),
                })
            })
            .collect();
        Agility {
            release,
            by_interval,
            slow_gain: gain_effect(plan, results, true),
            fast_gain: gain_effect(plan, results, false),
        }
    }
}

/// The effect of the slow (`slow`) or the fast gain on `phases`; `None`
/// with fewer than two values of it.
fn gain_effect(plan: &Plan, results: &Results, slow: bool) -> Option<GainEffect> {
    let d = EsxGains::default();
    // The phases runs with the other gain at its default, by this gain.
    let mut v: Vec<(f64, &Summary)> = Vec::new();
    for sp in &plan.agile.by_gains {
        let fixed = if slow {
            sp.gains.fast == d.fast
        } else {
            sp.gains.slow == d.slow
        };
        let x = if slow { sp.gains.slow } else { sp.gains.fast };
        if sp.workload.label == "phases"
            && fixed
            && !v.iter().any(|(y, _)| *y == x)
            && let Some(m) = results.summary(sp)
        {
            v.push((x, m));
        }
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (a, b) = (v.first()?, v.last()?);
    let lag = |m: &Summary| if slow { Lag::down(m) } else { Lag::up(m) };
    (v.len() > 1).then(|| GainEffect {
        from: a.0,
        to: b.0,
        lag: (lag(a.1), lag(b.1)),
        mape: (a.1.mape, b.1.mape),
    })
}

impl Doc<'_> {
    pub(in crate::study) fn agile(&mut self) {
        let f = Agility::from_runs(self.plan, self.results);
        let s = self.plan.scale.clone();
        let g = EsxGains::default();
        self.heading(Question::Agile);
        let fi = self.number_of(&self.figs.lag_intervals);
        let fg = self.number_of(&self.figs.lag_gains);
        let sizes = crate::catalog::find("phases")
            .and_then(|p| p.params.iter().find(|q| q.key == "sizes"))
            .map_or(NA, |q| q.default);
        let mut text = format!(
            "`phases` changes the size of its active set every {}, cycling through the sizes \
             {sizes} (its default), and `ramp` grows it over {}, holds it, and shrinks it. \
             {} shows the estimate following them at each interval, {} \
             under other ESX gains; each panel's title gives the lag after growth and after \
             shrinking, the mean number of {}. ESX reports the larger of a slow average (gain \
             {}) and a fast one (gain {}) of the sampled fraction. ",
            setting(s.phase_period),
            setting(s.phase_period),
            self.fig_ref(&self.figs.lag_intervals),
            self.fig_ref(&self.figs.lag_gains),
            lag_definition(),
            g.slow,
            g.fast
        );
        if let Some(r) = &f.release {
            let _ = write!(
                text,
                "After the largest drop in the default `phases` run, from {} to {} pages, the \
                 slow average alone needs {} intervals to fall to {} of the new size (the \
                 smallest k with (from − to)(1 − g)^k ≤ {}·to), ",
                count(r.from),
                count(r.to),
                opt(r.intervals, count),
                pct(REACH_DOWN),
                sig(REACH_DOWN - 1.0, 1),
            );
            if r.intervals.is_some_and(|k| k > r.phase_intervals) {
                let _ = write!(
                    text,
                    "more than the {} intervals of a phase: shrinking is reported late by \
                     design, so that a briefly idle guest is not judged to have shed its \
                     memory; with a slow gain of 1 it would take {}. ",
                    count(r.phase_intervals),
                    opt(r.intervals_unit_gain, count)
                );
            } else {
                let _ = write!(
                    text,
                    "within the {} intervals of a phase. ",
                    count(r.phase_intervals)
                );
            }
        }
        self.para(&text);
        let mut rows = Vec::new();
        for sp in self
            .plan
            .agile
            .by_interval
            .iter()
            .chain(&self.plan.agile.by_gains)
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
                opt(crate::study::figures::lag_s(m.lag_up_intervals, m), |x| {
                    sig(x, 2)
                }),
                lag_cell(m.lag_down_intervals, m.lag_down_events),
                opt(crate::study::figures::lag_s(m.lag_down_intervals, m), |x| {
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
        let mut findings: Vec<String> = f
            .by_interval
            .iter()
            .map(|x| {
                format!(
                    "`{}`: after growth {} (at {} intervals) and {} (at {}); after \
                     shrinking {} and {}",
                    x.label,
                    x.shortest.1.in_seconds(),
                    setting(x.shortest.0),
                    x.longest.1.in_seconds(),
                    setting(x.longest.0),
                    x.shortest.2.in_seconds(),
                    x.longest.2.in_seconds(),
                )
            })
            .collect();
        if let Some(e) = &f.slow_gain {
            findings.push(format!(
                "raising the slow gain from {} to {} on `phases` takes the lag after shrinking \
                 from {} to {} intervals and the MAPE from {} to {}",
                e.from,
                e.to,
                e.lag.0.in_intervals(),
                e.lag.1.in_intervals(),
                opt(e.mape.0, pct),
                opt(e.mape.1, pct),
            ));
        }
        if let Some(e) = &f.fast_gain {
            findings.push(format!(
                "raising the fast gain from {} to {} takes the lag after growth from {} to {} \
                 intervals",
                e.from,
                e.to,
                e.lag.0.in_intervals(),
                e.lag.1.in_intervals(),
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
}

impl FigureWriter<'_> {
    /// The estimate following a changing working set: phases and ramp at
    /// each interval (`by_interval`) or under each pair of ESX gains.
    pub(in crate::study) fn agility_figure(&self, by_interval: bool) -> Result<Figure, StudyError> {
        let (stem, specs) = if by_interval {
            (AGILITY_BY_INTERVAL, &self.plan.agile.by_interval)
        } else {
            ("fig9-agility-vs-gains", &self.plan.agile.by_gains)
        };
        let mut runs: Vec<&Spec> = Vec::new();
        for sp in specs {
            if !runs.iter().any(|r| r.id() == sp.id()) {
                runs.push(sp);
            }
        }
        let mut panels = Vec::new();
        let mut data = Vec::new();
        let mut lags = Vec::new();
        for sp in &runs {
            let setting = if by_interval {
                crate::study::format::setting(sp.interval)
            } else {
                format!("gains {}/{}", sp.gains.slow, sp.gains.fast)
            };
            let got = self.results.get(sp);
            let title = match got {
                Some((s, _)) => format!(
                    "{}, {setting}: lag up {}, down {}",
                    sp.workload.label,
                    lag_cell(s.lag_up_intervals, s.lag_up_events),
                    lag_cell(s.lag_down_intervals, s.lag_down_events)
                ),
                None => format!("{}, {setting}: run failed", sp.workload.label),
            };
            let rows = got.map(|g| g.1.to_vec()).unwrap_or_default();
            for r in &rows {
                data.push(vec![
                    sp.id(),
                    sp.workload.label.clone(),
                    format!("{}", sp.interval.as_secs_f64()),
                    format!("{}", sp.gains.slow),
                    format!("{}", sp.gains.fast),
                    format!("{}", r.t_s),
                    r.true_wss_pages.to_string(),
                    cell(r.est_wss_pages),
                    cell(r.est_lo_pages),
                    cell(r.est_hi_pages),
                ]);
            }
            lags.push(self.lag_cells(sp));
            panels.push(SeriesPanel {
                title,
                rows,
                show_writes: false,
            });
        }
        self.csv(
            stem,
            &[
                "run_id",
                "workload",
                "interval_s",
                "esx_slow_gain",
                "esx_fast_gain",
                "t_s",
                "true_wss_pages",
                "est_wss_pages",
                "est_lo_pages",
                "est_hi_pages",
            ],
            &data,
        )?;
        self.csv(&format!("{stem}-lags"), &LAG_COLUMNS, &lags)?;
        let s = &self.plan.scale;
        let d = crate::estimate::EsxGains::default();
        let (title, caption) = if by_interval {
            (
                format!(
                    "Following a changing working set at each interval (uffd + esx, {} samples)",
                    s.sample_pages
                ),
                format!(
                    "`phases` and `ramp` under the default ESX gains ({} slow, {} fast) at each \
                     interval. Each title gives the mean lag after growth and after shrinking, \
                     in {}; the lags are also in the table below and in {}.",
                    d.slow,
                    d.fast,
                    lag_definition(),
                    format_args!("study/data/{stem}-lags.csv")
                ),
            )
        } else {
            (
                format!(
                    "Following a changing working set under other ESX gains (uffd, {} samples, \
                     {} interval)",
                    s.sample_pages,
                    crate::study::format::setting(s.interval)
                ),
                format!(
                    "`phases` and `ramp` with one of the ESX gains changed from its default \
                     ({} slow, {} fast). ESX reports the larger of a slow and a fast moving \
                     average of the sampled fraction: the fast gain sets how soon growth \
                     shows, the slow gain how long a shrunken working set is still reported at \
                     its old size. Lags as in {}; also in {}.",
                    d.slow,
                    d.fast,
                    figure_ref(AGILITY_BY_INTERVAL),
                    format_args!("study/data/{stem}-lags.csv")
                ),
            )
        };
        let cols = runs.len().div_ceil(2).max(1);
        series_panels(&self.base(stem), &title, &panels, cols)?;
        Ok(Figure {
            stem,
            title,
            caption,
            runs: runs.into_iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeseries::tests::row;
    use crate::study::execute::Outcome;
    use crate::study::plan::Scale;
    use crate::study::testdata::{finished, summary_of};

    #[test]
    fn release_lags_and_gain_effects_are_read_from_the_runs() {
        let plan = Plan::new(Scale::full());
        let mut outcomes = std::collections::HashMap::new();
        // The default phases run drops from 400 to 100 pages after warm-up.
        let phases = plan
            .defaults
            .iter()
            .find(|sp| sp.workload.label == "phases")
            .expect("phases has a default run");
        let rows: Vec<_> = [900u64, 900, 400, 400, 100, 100]
            .iter()
            .enumerate()
            .map(|(i, &t)| row(i as f64 + 1.0, t, Some(t as f64)))
            .collect();
        // It is also the agility runs' point at the default interval and
        // gains, with their lags (see below).
        let mut s = summary_of(phases);
        s.warmup_intervals = 2;
        s.lag_up_intervals = Some(1.0 / phases.gains.fast);
        s.lag_up_events = 3;
        s.lag_down_intervals = Some(1.0 / phases.gains.slow);
        s.lag_down_events = 2;
        s.mape = Some(phases.gains.slow);
        outcomes.insert(
            phases.id(),
            Outcome::Done {
                summary: Box::new(s),
                rows,
                cached: true,
                ended_early: None,
                wall_s: None,
            },
        );
        // Agility runs: caught growth after 2 intervals, never caught a
        // shrink; by gains, lag down 1/slow and lag up 1/fast intervals.
        for sp in plan.agile.by_gains.iter().chain(&plan.agile.by_interval) {
            outcomes.entry(sp.id()).or_insert_with(|| {
                let mut s = summary_of(sp);
                let by_gain = plan.agile.by_gains.contains(sp);
                s.lag_up_intervals = Some(if by_gain { 1.0 / sp.gains.fast } else { 2.0 });
                s.lag_up_events = 3;
                s.lag_down_intervals = by_gain.then(|| 1.0 / sp.gains.slow);
                s.lag_down_events = 2;
                s.mape = Some(sp.gains.slow);
                finished(s)
            });
        }
        let f = Agility::from_runs(&plan, &Results::from_outcomes(outcomes));

        let r = f.release.expect("a drop after warm-up");
        assert_eq!((r.from, r.to), (400.0, 100.0));
        // 3 · 0.875^k ≤ 0.1 → k = 26; with a gain of 1, one interval.
        assert_eq!(r.intervals, Some(26.0));
        assert_eq!(r.intervals_unit_gain, Some(1.0));
        assert_eq!(r.phase_intervals, 5.0);

        let labels: Vec<&str> = f.by_interval.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(labels, ["phases", "ramp"]);
        let ms = Duration::from_millis;
        for x in &f.by_interval {
            let (short, up, down) = x.shortest;
            assert_eq!(short, ms(250));
            assert_eq!(up.seconds, Some(0.5));
            assert_eq!((down.intervals, down.events), (None, 2));
            assert_eq!(down.in_seconds(), "not caught");
            assert_eq!(x.longest.0, ms(2000));
            assert_eq!(x.longest.1.in_seconds(), "4 s");
        }

        let slow = f.slow_gain.expect("three slow gains");
        assert_eq!((slow.from, slow.to), (0.125, 1.0));
        assert_eq!(
            (slow.lag.0.intervals, slow.lag.1.intervals),
            (Some(8.0), Some(1.0))
        );
        assert_eq!(slow.mape, (Some(0.125), Some(1.0)));
        let fast = f.fast_gain.expect("three fast gains");
        assert_eq!((fast.from, fast.to), (0.25, 1.0));
        assert_eq!(
            (fast.lag.0.intervals, fast.lag.1.intervals),
            (Some(4.0), Some(1.0))
        );
    }
}
