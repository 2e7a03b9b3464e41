//! What a sweep shows people: the table (stdout and sweep.md),
//! recommendation.json and the heat maps.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::aggregate::{budget_clause, lag_text};
use super::jobs::PlanFile;
use super::{Aggregate, RECOMMENDATION_JSON, Recommendation, SWEEP_MD, Setting, format_interval};
use crate::analysis::format::{Align, markdown_table, percent, signed_percent};
use crate::report::ReportError;
use crate::report::plot::plot_heatmap;

const TABLE_HEADER: [&str; 12] = [
    "tracker",
    "estimator",
    "sample pages",
    "interval",
    "runs",
    "mape",
    "bias",
    "lag up",
    "faults/s",
    "fault cost us",
    "slowdown",
    "vmm cpu s",
];

/// Text columns left, numbers right, in the terminal and in sweep.md.
const TABLE_ALIGN: [Align; 12] = [
    Align::Left,
    Align::Left,
    Align::Left,
    Align::Left,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
    Align::Right,
];

fn table_cells(a: &Aggregate) -> [String; 12] {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    [
        a.setting.tracker.name().to_string(),
        a.setting.estimator_label(),
        a.setting.sample_label(),
        format_interval(a.setting.interval),
        format!("{}/{}", a.runs, a.finished),
        opt(a.mape, &percent),
        opt(a.bias, &signed_percent),
        // Without scored intervals there was nothing to lag behind either.
        if a.mape.is_none() {
            "-".to_string()
        } else {
            lag_text(a)
        },
        opt(a.faults_per_s, &|f| format!("{f:.0}")),
        opt(a.fault_cost_us, &|c| format!("{c:.1}")),
        opt(a.slowdown, &percent),
        opt(a.vmm_cpu_s, &|c| format!("{c:.2}")),
    ]
}

/// The table printed to stdout: one aligned line per setting.
pub fn render_table(aggregates: &[Aggregate]) -> String {
    let rows: Vec<[String; 12]> = aggregates.iter().map(table_cells).collect();
    let widths: Vec<usize> = (0..TABLE_HEADER.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain(std::iter::once(TABLE_HEADER[c].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &w))| {
                if TABLE_ALIGN[c] == Align::Left {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(&TABLE_HEADER);
    out.push('\n');
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
        out.push('\n');
    }
    out
}

/// Counts of the sweep's runs, for the reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub planned: u64,
    pub finished: usize,
    pub counted: usize,
    pub interrupted: bool,
}

fn counts_line(c: &RunCounts) -> String {
    let mut s = format!(
        "{} of {} runs finished, {} counted (runs column: counted/finished)",
        c.finished, c.planned, c.counted
    );
    if c.interrupted {
        s.push_str("; interrupted by Ctrl-C");
    }
    s
}

/// sweep.md: the same table as markdown, with the recommendation.
pub fn render_markdown(
    guest: &str,
    aggregates: &[Aggregate],
    rec: &Recommendation,
    counts: &RunCounts,
) -> String {
    let mut out = format!(
        "# Sweep of {guest}\n\nTargets: mape < {}, lag up < {} intervals{}. {}.\n\n",
        percent(rec.targets.max_mape),
        rec.targets.max_lag_up,
        budget_clause(&rec.targets),
        counts_line(counts)
    );
    let rows: Vec<Vec<String>> = aggregates.iter().map(|a| table_cells(a).to_vec()).collect();
    out.push_str(&markdown_table(&TABLE_HEADER, &TABLE_ALIGN, &rows));
    let _ = write!(out, "\n{}\n", rec.message);
    out
}

/// A heat map's grid for one family of settings (see
/// [`Setting::family`]: a tracker, an estimator and, in a replay sweep,
/// its gains or region bounds): sample-pages labels (x, ascending),
/// interval labels (y, ascending) and `metric` of each cell, `None` where
/// no counted run measured it or no setting exists.
pub fn heatmap_grid(
    settings: &[Setting],
    aggregates: &[Aggregate],
    family: &Setting,
    metric: impl Fn(&Aggregate) -> Option<f64>,
) -> (Vec<String>, Vec<String>, Vec<Vec<Option<f64>>>) {
    let mine: Vec<&Setting> = settings.iter().filter(|s| s.family() == *family).collect();
    let mut xs: Vec<Option<u64>> = mine.iter().map(|s| s.sample_pages).collect();
    xs.sort_unstable();
    xs.dedup();
    let mut ys: Vec<Duration> = mine.iter().map(|s| s.interval).collect();
    ys.sort_unstable();
    ys.dedup();
    let values = ys
        .iter()
        .map(|&interval| {
            xs.iter()
                .map(|&sample_pages| {
                    let want = Setting {
                        sample_pages,
                        interval,
                        ..*family
                    };
                    aggregates
                        .iter()
                        .find(|a| a.setting == want)
                        .and_then(&metric)
                })
                .collect()
        })
        .collect();
    // The heat map has no axis titles: the labels say what they count.
    let x_labels = xs
        .iter()
        .map(|&sample_pages| match sample_pages {
            Some(n) => format!("{n} pages"),
            None => family.sample_label(),
        })
        .collect();
    let y_labels = ys.iter().map(|&d| format_interval(d)).collect();
    (x_labels, y_labels, values)
}

type Metric = (&'static str, &'static str, fn(&Aggregate) -> Option<f64>);

const HEATMAP_METRICS: [Metric; 3] = [
    ("mape", "mean MAPE (%)", |a| a.mape.map(|m| m * 100.0)),
    ("faults-per-s", "tracked faults / s", |a| a.faults_per_s),
    ("slowdown", "guest slowdown (%)", |a| {
        a.slowdown.map(|s| s * 100.0)
    }),
];

/// Draws the heat maps of every (tracker, estimator) with data; slowdown
/// only with a baseline. Returns the files written.
pub fn write_heatmaps(
    settings: &[Setting],
    aggregates: &[Aggregate],
    baseline: bool,
    dir: &Path,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut families: Vec<Setting> = Vec::new();
    for a in aggregates {
        let family = a.setting.family();
        if family.estimator.is_some() && !families.contains(&family) {
            families.push(family);
        }
    }
    let mut files = Vec::new();
    for family in families {
        for (name, label, metric) in HEATMAP_METRICS {
            if name == "slowdown" && !baseline {
                continue;
            }
            let (xs, ys, values) = heatmap_grid(settings, aggregates, &family, metric);
            if values.iter().flatten().all(Option::is_none) {
                continue;
            }
            let title = format!(
                "{} / {}: {label}",
                family.tracker.name(),
                family.estimator_label()
            );
            let base = dir.join(format!(
                "heatmap-{name}-{}-{}{}",
                family.tracker.name(),
                family.estimator.map_or("none", |e| e.name()),
                family.tuning_slug()
            ));
            files.extend(plot_heatmap(&title, &xs, &ys, &values, label, &base)?);
        }
    }
    Ok(files)
}

/// recommendation.json: the recommendation, then every setting's results.
#[derive(Serialize)]
struct RecommendationFile<'a> {
    guest: &'a str,
    #[serde(flatten)]
    recommendation: &'a Recommendation,
    runs: &'a RunCounts,
    settings: &'a [Aggregate],
}

/// Writes sweep.md, recommendation.json and the heat maps into the sweep
/// folder `dir`, adding each file to `files` as it is written. `note`, a
/// warning about the runs (mixed hosts), ends sweep.md when given.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_reports(
    plan: &PlanFile,
    dir: &Path,
    settings: &[Setting],
    aggregates: &[Aggregate],
    rec: &Recommendation,
    counts: &RunCounts,
    note: Option<&str>,
    files: &mut Vec<PathBuf>,
) -> Result<(), ReportError> {
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map(|_| path.clone())
            .map_err(|source| ReportError::Io { path, source })
    };
    let mut md = render_markdown(&plan.guest, aggregates, rec, counts);
    if let Some(note) = note {
        let _ = write!(md, "\n{note}\n");
    }
    files.push(write(dir.join(SWEEP_MD), md)?);
    let json_path = dir.join(RECOMMENDATION_JSON);
    let json = RecommendationFile {
        guest: &plan.guest,
        recommendation: rec,
        runs: counts,
        settings: aggregates,
    };
    let mut text = serde_json::to_string_pretty(&json).map_err(|source| ReportError::Json {
        path: json_path.clone(),
        source,
    })?;
    text.push('\n');
    files.push(write(json_path, text)?);
    files.extend(write_heatmaps(settings, aggregates, plan.baseline, dir)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::EstimatorKind;
    use crate::sweep::fixtures::{TARGETS, agg, esx};
    use crate::sweep::recommend;
    use crate::track::TrackerKind;

    #[test]
    fn heatmap_grid_is_sorted_and_leaves_missing_cells_empty() {
        let settings = [esx(400, 1000), esx(100, 1000), esx(400, 500), esx(100, 500)];
        let aggs = [
            agg(esx(400, 1000), 0.04, None, 40.0),
            agg(esx(100, 500), 0.20, None, 200.0),
            agg(esx(100, 1000), 0.10, None, 100.0),
        ];
        let (xs, ys, values) =
            heatmap_grid(&settings, &aggs, &esx(0, 0).family(), |a| a.faults_per_s);
        assert_eq!(xs, ["100 pages", "400 pages"]);
        assert_eq!(ys, ["500ms", "1s"]);
        assert_eq!(
            values,
            vec![vec![Some(200.0), None], vec![Some(100.0), Some(40.0)]]
        );
        let mprotect = Setting {
            tracker: TrackerKind::Mprotect,
            ..esx(0, 0)
        };
        let (xs, _, values) = heatmap_grid(&settings, &aggs, &mprotect.family(), |a| a.mape);
        assert!(xs.is_empty() && values.is_empty());
        // Other gains are another family: their heat map is their own.
        let tuned = Setting {
            esx_gains: Some(crate::estimate::EsxGains {
                slow: 0.25,
                fast: 0.5,
            }),
            ..esx(0, 0)
        };
        let (xs, _, _) = heatmap_grid(&settings, &aggs, &tuned.family(), |a| a.mape);
        assert!(xs.is_empty());
        assert_eq!(tuned.tuning_slug(), "-g0.25-0.5");
        assert_eq!(tuned.estimator_label(), "esx (gains 0.25/0.5)");
    }

    #[test]
    fn table_and_markdown_show_every_setting_and_the_recommendation() {
        let mut damon = agg(
            Setting {
                estimator: Some(EstimatorKind::Damon),
                sample_pages: None,
                ..esx(0, 1000)
            },
            0.2,
            Some(1.0),
            30.0,
        );
        damon.slowdown = Some(0.031);
        let aggs = [agg(esx(400, 1000), 0.042, Some(1.0), 120.0), damon];
        let text = render_table(&aggs);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("tracker  estimator  sample pages  interval"));
        let words: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            words,
            [
                "uffd", "esx", "400", "1s", "1/1", "4.2%", "-", "1.0", "120", "-", "-", "-"
            ]
        );
        let words: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(words[2], "regions");
        assert_eq!(words[10], "3.1%");
        // Columns line up.
        assert_eq!(lines[0].find("mape"), Some(lines[1].find("4.2%").unwrap()));
        let rec = recommend(&aggs, TARGETS);
        let counts = RunCounts {
            planned: 4,
            finished: 2,
            counted: 2,
            interrupted: true,
        };
        let md = render_markdown("hotset", &aggs, &rec, &counts);
        assert!(md.starts_with("# Sweep of hotset\n"));
        assert!(md.contains("2 of 4 runs finished, 2 counted"));
        assert!(md.contains("interrupted by Ctrl-C"));
        assert!(md.contains("| uffd | esx | 400 | 1s | 1/1 | 4.2% |"));
        assert!(md.contains("\n|---|---|---|---|---:|---:|"));
        assert!(md.contains("Targets: mape < 10.0%, lag up < 2 intervals."));
        assert!(md.trim_end().ends_with(&rec.message));
    }
}
