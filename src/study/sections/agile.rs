//! Question 4, is it agile: how fast the estimate follows growth and shrinking.

use std::fmt::Write as _;

use super::Question;
use crate::estimate::EsxGains;
use crate::plot::series::SeriesPanel;
use crate::plot::series::series_panels;
use crate::report::summary::Summary;
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::evidence::*;
use crate::study::figures::*;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::format::*;
use crate::study::plan::Spec;

impl Doc<'_> {
    pub(in crate::study) fn agile(&mut self) {
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
                    crate::study::figures::lag_s(lag, m)
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
}

impl FigureWriter<'_> {
    /// The estimate following a changing working set: phases and ramp at
    /// each interval (`by_interval`) or under each pair of ESX gains.
    pub(in crate::study) fn agility_figure(&self, by_interval: bool) -> Result<Figure, StudyError> {
        let (stem, specs) = if by_interval {
            (AGILITY_BY_INTERVAL, &self.plan.agility_intervals)
        } else {
            ("fig9-agility-vs-gains", &self.plan.agility_gains)
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
