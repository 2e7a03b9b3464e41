//! Question 6, whether another estimator does better at equal cost: the
//! nine access patterns recorded live (with `follow`, the new estimator,
//! so that each recording is also its live run), then replayed with ESX,
//! DAMON and follow at several sizes and seeds (`crate::compare`, the one
//! comparison, which `kvm-wss compare-estimators` shares); the working-set
//! curve W(τ) of the `curve` estimator replayed against its exact value;
//! and a heat map of one recording with follow's samples on it.
//!
//! A question of its own rather than a part of question 2: every other
//! question measures ESX live, this one measures other estimators by
//! replay, and placed last it leaves the numbering of the others alone.

use std::fmt::Write as _;
use std::path::Path;

use super::Question;
use crate::compare::{self, Comparison, tables};
use crate::estimate::{DamonConfig, EstimatorKind};
use crate::record::{Recording, TRACE_FILE};
use crate::replay::ReplaySettings;
use crate::replay::curve::{CurveRow, CurveSummary, replay_curve};
use crate::report::heatmap::{RecordingHeatMap, Truth};
use crate::study::StudyError;
use crate::study::doc::Doc;
use crate::study::figures::{Figure, FigureWriter};
use crate::study::format::{NA, num, opt, pct, setting, sig};
use crate::study::plan::{Plan, QuestionRuns, Spec, SpecMaker, Workload};
use crate::track::TrackerKind;

/// The programs whose W(τ) the section scores (the issue's), the first
/// one drawn.
pub const CURVE_PROGRAMS: [&str; 3] = ["phases", "hotset", "zipf"];
/// The program whose recording the heat map shows: its working set
/// changes, so where follow samples shows.
pub const HEATMAP_PROGRAM: &str = "phases";
/// The `curve` estimator's sample, as `make curve` runs it (fewer when the
/// domain is smaller, as at the quick scale: half the domain).
pub const CURVE_SAMPLES: u64 = 4800;

/// The recorded runs: each access pattern, live with follow, its truth
/// recorded at DAMON's tick so that every estimator can be replayed on it.
#[derive(Debug, Clone, PartialEq)]
pub struct EstimatorRuns {
    pub recordings: Vec<Spec>,
}

impl EstimatorRuns {
    pub fn plan(make: &SpecMaker, workloads: &[Workload]) -> EstimatorRuns {
        let s = make.scale;
        let tick = s.interval / DamonConfig::default().ticks_per_interval.max(1);
        let recordings = workloads
            .iter()
            .map(|w| Spec {
                record_tick: Some(tick),
                ..make.spec(
                    w,
                    TrackerKind::Uffd,
                    EstimatorKind::Follow,
                    s.sample_pages,
                    s.interval,
                    s.run_duration,
                )
            })
            .collect();
        EstimatorRuns { recordings }
    }

    fn of(&self, label: &str) -> Option<&Spec> {
        self.recordings.iter().find(|s| s.workload.label == label)
    }
}

impl QuestionRuns for EstimatorRuns {
    fn specs(&self) -> Vec<&Spec> {
        self.recordings.iter().collect()
    }
}

/// One program's W(τ), replayed with the curve estimator.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramCurve {
    pub program: String,
    pub summary: CurveSummary,
    pub rows: Vec<CurveRow>,
}

/// What the section measured by replay from the recordings.
#[derive(Debug, Default)]
pub struct Replayed {
    /// `None` when no recording could be read or a replay failed.
    pub comparison: Option<Comparison>,
    /// Programs whose recording could not be read, with why, and why the
    /// comparison failed, if it did.
    pub problems: Vec<String>,
    pub curves: Vec<ProgramCurve>,
    /// The heat map's recording and map.
    pub heatmap: Option<(Recording, RecordingHeatMap)>,
}

impl Replayed {
    /// Reads the recordings of `plan` under `runs_dir` and replays them.
    pub fn measure(plan: &Plan, runs_dir: &Path) -> Replayed {
        let mut out = Replayed::default();
        let mut recordings = Vec::new();
        for spec in &plan.estimators.recordings {
            let path = runs_dir.join(spec.id()).join(TRACE_FILE);
            match crate::record::read(&path) {
                Ok(rec) => recordings.push((spec.workload.label.clone(), rec)),
                Err(e) => out.problems.push(format!(
                    "{}: {}",
                    spec.workload.label,
                    crate::error_chain(&e)
                )),
            }
        }
        if !recordings.is_empty() {
            match compare::measure(&recordings, &compare::grid(), &compare::SEEDS) {
                Ok(c) => out.comparison = Some(c),
                Err(e) => out.problems.push(crate::error_chain(&e)),
            }
        }
        for program in CURVE_PROGRAMS {
            let Some((_, rec)) = recordings.iter().find(|(p, _)| p == program) else {
                continue;
            };
            let mut settings = ReplaySettings::recorded(&rec.header);
            settings.estimator.kind = EstimatorKind::Curve;
            settings.estimator.sample_pages =
                CURVE_SAMPLES.min(rec.header.estimator.domain_pages / 2);
            match replay_curve(rec, &settings) {
                Ok(c) => out.curves.push(ProgramCurve {
                    program: program.to_string(),
                    summary: CurveSummary::of(rec, &settings, &c),
                    rows: c.curve,
                }),
                Err(e) => out
                    .problems
                    .push(format!("{program}'s curve: {}", crate::error_chain(&e))),
            }
        }
        if let Some(i) = recordings.iter().position(|(p, _)| p == HEATMAP_PROGRAM) {
            let (_, rec) = recordings.swap_remove(i);
            match crate::report::heatmap::build(&rec, Truth::Touched) {
                Ok(hm) => out.heatmap = Some((rec, hm)),
                Err(e) => out
                    .problems
                    .push(format!("the heat map: {}", crate::error_chain(&e))),
            }
        }
        out
    }
}

impl FigureWriter<'_> {
    /// W(τ) of the first curve program: the curve estimator against the
    /// exact value, drawn by the curve's own plot.
    pub(in crate::study) fn curve_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig10-wss-curve";
        let replayed = &self.results.replayed;
        let curve = replayed.curves.first();
        let data = self.base("data").join(format!("{stem}.csv"));
        let rows: &[CurveRow] = curve.map_or(&[], |c| c.rows.as_slice());
        crate::replay::curve::write_csv(&data, rows)?;
        let program = curve.map_or(CURVE_PROGRAMS[0], |c| c.program.as_str());
        if !rows.is_empty() {
            crate::plot::curve::draw(&self.base(stem), &format!("{program}: W(τ)"), rows)?;
        }
        Ok(Figure {
            stem,
            title: format!(
                "The working-set curve W(τ) of {program}, estimated against exact, by replay"
            ),
            caption: format!(
                "The `curve` estimator ({} sampled pages per interval, pages kept armed across \
                 intervals, each page's time to first touch) replayed on the recording of \
                 {program}; the first panel is W(τ) averaged over the scored intervals, the \
                 others W(t, τ) per interval for each window τ. Exact: the pages the recording \
                 shows touched in the window. Dashed: the 95% band.",
                curve.map_or(CURVE_SAMPLES, |c| c.summary.sample_pages)
            ),
            runs: self
                .plan
                .estimators
                .of(program)
                .cloned()
                .into_iter()
                .collect(),
        })
    }

    /// The heat map of the heat-map program's recording, follow's samples
    /// marked, drawn by `plot --heatmap`'s code.
    pub(in crate::study) fn heatmap_figure(&self) -> Result<Figure, StudyError> {
        let stem = "fig11-heatmap";
        let mut rows = Vec::new();
        if let Some((rec, hm)) = &self.results.replayed.heatmap {
            let m = &hm.map;
            for (p, cells) in m.cells.iter().enumerate() {
                for (t, share) in cells.iter().enumerate() {
                    let mark = match m.marks[p][t] {
                        Some(crate::plot::heatmap::Mark::Strong) => "caught",
                        Some(crate::plot::heatmap::Mark::Weak) => "sampled",
                        None => "",
                    };
                    if share.is_none() && mark.is_empty() {
                        continue;
                    }
                    rows.push(vec![
                        format!("{}", m.time.edge(t)),
                        format!("{}", (p as u64) * hm.grid.pages_per_row),
                        share.map_or(String::new(), |v| format!("{v}")),
                        mark.to_string(),
                    ]);
                }
            }
            crate::report::heatmap::draw(rec, hm, Truth::Touched, &self.base(stem))
                .map_err(StudyError::Heatmap)?;
        }
        self.csv(
            stem,
            &["t_s", "first_page", "share_touched", "sample"],
            &rows,
        )?;
        Ok(Figure {
            stem,
            title: format!(
                "Where follow samples: the heat map of the recording of {HEATMAP_PROGRAM}"
            ),
            caption: format!(
                "Time to the right, the guest's data pages upwards; each cell's colour is the \
                 share of its pages {HEATMAP_PROGRAM} touched in the cell's time, from the \
                 recorded truth. Dots: the pages follow armed there in the live run (found by \
                 replaying its recorded settings), red when the guest touched them while armed. \
                 follow arms only pages the guest has touched at some point, so no dot falls on \
                 the RAM above the program's region, which it never touched; after a phase \
                 that used the whole region ends, the dots stay spread over all of it, caught \
                 only where the current phase works."
            ),
            runs: self
                .plan
                .estimators
                .of(HEATMAP_PROGRAM)
                .cloned()
                .into_iter()
                .collect(),
        })
    }
}

impl Doc<'_> {
    pub(in crate::study) fn estimators(&mut self) {
        self.heading(Question::Estimators);
        let runs = &self.plan.estimators.recordings;
        let first = runs.first();
        let text = first.map_or(String::new(), |s| {
            format!(
                "The sections above measure ESX live. {}",
                tables::method(s, runs.len())
            )
        });
        self.para(&text);
        for p in &self.results.replayed.problems {
            let line = format!("**Not measured:** {p}.");
            self.para(&line);
        }
        if let Some(c) = &self.results.replayed.comparison {
            self.comparison(c);
        }
        self.live_follow();
        self.curves();
        self.line("### Where follow samples");
        self.line("");
        let heat = self.figs.heatmap.clone();
        self.figure(&heat);
    }

    fn comparison(&mut self, c: &Comparison) {
        self.line("### At equal tracked faults");
        self.line("");
        self.para(
            "Per estimator and size, the median over the programs of its MAPE, and the median \
             of ESX's MAPE at the same faults/s on each program; ratio: the first over the \
             second (below 1: better than ESX at the same cost).",
        );
        self.para(&tables::equal_cost_table(c));
        if let Some(b) = c.best() {
            let line = format!(
                "The best ratio is {}'s at {} {}: median MAPE {} against ESX's {} at equal \
                 faults ({} of it).",
                b.setting.estimator.name(),
                b.setting.size,
                tables::size_name(b.setting.estimator),
                opt(b.median_mape, pct),
                opt(b.median_esx_mape, pct),
                opt(b.ratio, |x| sig(x, 2)),
            );
            self.summary.push(format!(
                "**Other estimators at equal cost ({}):** by replay of the nine access \
                 patterns, {}",
                self.section_ref(Question::Estimators),
                line.trim_start_matches("The best ratio is ")
            ));
            self.para(&line);
        }
        self.line(&format!(
            "### Per program at {} samples per {}",
            compare::PER_PROGRAM_SIZE,
            self.plan
                .estimators
                .recordings
                .first()
                .map_or(String::new(), |s| setting(s.interval))
        ));
        self.line("");
        self.para(&format!(
            "follow capped at {n} sample pages (it arms fewer when its band target is met: \
             \"armed\" is pages per interval), DAMON with {d} regions at least (its \
             default), ESX at {n} sample pages. Lags in intervals ({}); n/a where no seed \
             saw a step it could time (the truth never stepped, or the estimate never got \
             there).",
            crate::study::figures::lag_definition(),
            n = compare::PER_PROGRAM_SIZE,
            d = compare::DAMON_MIN_REGIONS[0],
        ));
        self.para(&tables::per_program_table(c));
    }

    /// The recordings' own live figures: follow, live.
    fn live_follow(&mut self) {
        self.line("### follow live");
        self.line("");
        self.para(
            "Each recording is also a live run of follow, so the replayed winner is checked \
             live on the same runs (one seed each). Recording every tick holds the guest while \
             its truth is read, so a run holds fewer intervals than its length in seconds; \
             \"scored\" counts the intervals after warm-up that enter the metrics, here and \
             in the replays.",
        );
        let rows: Vec<Vec<String>> = self
            .plan
            .estimators
            .recordings
            .iter()
            .map(|spec| {
                let s = self.s(spec);
                vec![
                    spec.workload.label.clone(),
                    s.map_or(NA.to_string(), |s| s.scored_intervals.to_string()),
                    opt(s.and_then(|s| s.mape), pct),
                    opt(s.and_then(|s| s.lag_up_intervals), num),
                    opt(s.and_then(|s| s.lag_down_intervals), num),
                    opt(s.and_then(|s| s.band_coverage), pct),
                    opt(s.and_then(crate::analysis::derived::faults_per_s), |x| {
                        sig(x, 3)
                    }),
                ]
            })
            .collect();
        use crate::analysis::format::{Align, markdown_table};
        let mut align = vec![Align::Left];
        align.extend([Align::Right; 6]);
        self.para(&markdown_table(
            &[
                "program",
                "scored",
                "MAPE",
                "lag up",
                "lag down",
                "band coverage",
                "faults/s",
            ],
            &align,
            &rows,
        ));
    }

    fn curves(&mut self) {
        self.line("### The working-set curve W(τ)");
        self.line("");
        let fig = self.figs.estimator_curve.clone();
        self.figure(&fig);
        let curves = &self.results.replayed.curves;
        if curves.is_empty() {
            return;
        }
        self.para(
            "Per window τ, over the scored intervals of each program's recording: the mean \
             exact and estimated W(τ), the MAPE of the estimate and how often the exact value \
             fell inside its 95% band.",
        );
        let mut text = String::new();
        for c in curves {
            let _ = write!(
                text,
                "**{}.** {}\n\n",
                c.program,
                c.summary.markdown().trim_end()
            );
        }
        self.para(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::plan::Scale;

    #[test]
    fn every_pattern_is_recorded_at_damons_tick_with_follow() {
        let p = Plan::new(Scale::full());
        let r = &p.estimators.recordings;
        assert_eq!(r.len(), 9);
        for s in r {
            assert_eq!(s.estimator, EstimatorKind::Follow);
            assert_eq!(s.tracker, TrackerKind::Uffd);
            assert_eq!(s.record_tick, Some(std::time::Duration::from_millis(50)));
            assert_eq!(s.sample_pages, 400);
        }
        assert_eq!(
            r[3].id(),
            "phases,period=5s__uffd-follow-n400-i1s-d20s-m512M-w256M-s1-wu2-rec50ms"
        );
        assert!(r[3].command(Path::new("d")).contains(
            "--estimator follow --sample-pages 400 --interval 1s --duration 20s --warmup 2 \
             --seed 1 --record --record-tick 50ms --no-plot"
        ));
        // The quick scale's tick divides its interval too.
        let q = Plan::new(Scale::quick());
        assert_eq!(
            q.estimators.recordings[0].record_tick,
            Some(std::time::Duration::from_micros(2500))
        );
        assert_eq!(
            p.estimators.of(HEATMAP_PROGRAM).map(|s| s.workload.guest),
            Some("phases")
        );
    }

    /// The section's text from a measured comparison and live runs: the
    /// tables, the best ratio in the text and in the summary at the top,
    /// the live runs' figures, and both figures' data.
    #[test]
    fn the_section_reads_the_comparison_and_the_live_runs() {
        use crate::compare::{Point, Setting};
        use crate::study::execute::Results;
        use crate::study::testdata::{finished, summary_of};
        let p = Plan::new(Scale::full());
        let outcomes = p.estimators.recordings.iter().map(|sp| {
            let mut s = summary_of(sp);
            s.mape = Some(0.031);
            s.scored_intervals = 17;
            (sp.id(), finished(s))
        });
        let mut results = Results::from_outcomes(outcomes);
        let pt = |program: &str, estimator, size, faults: f64, mape: f64| Point {
            program: program.into(),
            setting: Setting { estimator, size },
            mape: Some(mape),
            policy_mape: Some(2.0 * mape),
            lag_up: Some(0.0),
            lag_down: None,
            band_coverage: Some(0.95),
            faults_per_s: Some(faults),
            armed_per_interval: Some(300.0),
            seeds: 5,
        };
        let mut points = Vec::new();
        for prog in ["hotset", "zipf"] {
            points.push(pt(prog, EstimatorKind::Esx, 100, 10.0, 0.4));
            points.push(pt(prog, EstimatorKind::Esx, 400, 100.0, 0.2));
            points.push(pt(prog, EstimatorKind::Follow, 400, 100.0, 0.05));
            points.push(pt(prog, EstimatorKind::Damon, 10, 10.0, 0.6));
        }
        results.replayed.comparison = Some(Comparison { points });
        let (doc, figs, dir) = crate::study::testdata::rendered_with_figures(&p, &results);
        let at = doc
            .find("## 6. Does another estimator do better at equal cost?")
            .expect("section 6");
        let section = &doc[at..];
        assert!(section.contains("| follow | 400 sample pages | 5% | 20% | 0.25 | 2 |"));
        assert!(section.contains("| damon | 10 fewest regions | 60% | 40% | 1.5 | 2 |"));
        assert!(section.contains(
            "The best ratio is follow's at 400 sample pages: median MAPE 5% against ESX's 20% \
             at equal faults (0.25 of it)."
        ));
        assert!(doc.contains(
            "- **Other estimators at equal cost (section 6):** by replay of the nine access \
             patterns, follow's at 400 sample pages"
        ));
        // Per program: follow, ESX at its faults, DAMON and ESX at DAMON's.
        assert!(
            section.contains("| hotset | 5% | 0 | n/a | 95% | 100 | 300 | 20% | 60% | 10.0 | 40% | 20% | n/a | 40% |"),
            "{section}"
        );
        // The live runs, with their scored intervals.
        assert!(section.contains("| phases | 17 | 3.1% |"), "{section}");
        // No recording: the figures' data have no rows (the curve's CSV
        // writer writes its header with the first row), and are still shown.
        for f in [&figs.estimator_curve, &figs.heatmap] {
            assert!(section.contains(&f.png()));
            let csv = std::fs::read_to_string(dir.path().join(f.csv())).unwrap();
            assert_eq!(csv.lines().skip(1).count(), 0, "{csv}");
        }
    }

    #[test]
    fn without_recordings_every_program_is_reported_missing() {
        let p = Plan::new(Scale::quick());
        let dir = tempfile::tempdir().unwrap();
        let r = Replayed::measure(&p, dir.path());
        assert_eq!(r.problems.len(), 9);
        assert!(r.problems[0].starts_with("chase: "), "{}", r.problems[0]);
        assert!(r.comparison.is_none() && r.curves.is_empty() && r.heatmap.is_none());
    }
}
