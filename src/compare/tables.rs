//! The comparison's tables, as Markdown (the study's section and
//! estimators.md show the same ones) and as CSV (one row per program and
//! setting).

use std::path::Path;

use super::{Comparison, PER_PROGRAM_SIZE, Setting};
use crate::analysis::format::{Align, markdown_table};
use crate::estimate::EstimatorKind;
use crate::report::ReportError;
use crate::study::format::{list, num, opt, pct, setting, sig};
use crate::study::plan::{Spec, duration_arg};

/// How the comparison was made, for the study's section and
/// estimators.md alike: `s` is the first of the `n` recorded runs.
pub fn method(s: &Spec, n: usize) -> String {
    let names = |v: &[u64]| list(&v.iter().map(u64::to_string).collect::<Vec<_>>());
    format!(
        "ESX, DAMON and `follow` (which samples only pages the guest has touched, follows a \
         fall as fast as a rise when the change exceeds its sampling error, and sizes its \
         sample to a band) are compared at equal cost, by replay. Each of the {n} access \
         patterns was run once live with follow ({tracker}, {n_s} sample pages at most per \
         {iv} interval, {dur}, paced as the study paces it), its exact truth recorded every \
         {tick} (DAMON's tick: `--record --record-tick {tick_arg}`). Every recording was then \
         replayed with ESX at {esx} sample pages, DAMON with {damon} regions at least, and \
         follow capped at {follow} sample pages, each with seeds {seeds}; a setting's figures \
         are means over the seeds. Cost is the tracked faults per second the replay caught: \
         each is one fault live. MAPE is of the measurement (for ESX the interval's sampled \
         fraction, not its policy value, the maximum of two averages, shown apart), warm-up \
         excluded. At equal faults: ESX's MAPE at another setting's faults/s on the same \
         recording, linear in log(faults/s) between ESX's two nearest sample sizes and \
         clamped to their range.",
        tracker = s.tracker.name(),
        n_s = s.sample_pages,
        iv = setting(s.interval),
        dur = setting(s.duration),
        tick = s.record_tick.map_or(String::new(), setting),
        tick_arg = s.record_tick.map_or(String::new(), duration_arg),
        esx = names(&super::ESX_SAMPLES),
        damon = names(&super::DAMON_MIN_REGIONS),
        follow = names(&super::FOLLOW_SAMPLES),
        seeds = names(&super::SEEDS),
    )
}

/// What an estimator's size means, for table headers.
pub fn size_name(estimator: EstimatorKind) -> &'static str {
    match estimator {
        EstimatorKind::Damon => "fewest regions",
        _ => "sample pages",
    }
}

/// The equal-cost table: per estimator other than ESX and size, the
/// median MAPE over the programs, ESX's at the same faults, and their ratio.
pub fn equal_cost_table(c: &Comparison) -> String {
    let rows: Vec<Vec<String>> = [EstimatorKind::Follow, EstimatorKind::Damon]
        .into_iter()
        .flat_map(|e| c.equal_cost(e))
        .map(|r| {
            vec![
                r.setting.estimator.name().to_string(),
                format!("{} {}", r.setting.size, size_name(r.setting.estimator)),
                opt(r.median_mape, pct),
                opt(r.median_esx_mape, pct),
                opt(r.ratio, |x| sig(x, 2)),
                r.programs.to_string(),
            ]
        })
        .collect();
    markdown_table(
        &[
            "estimator",
            "size",
            "median MAPE",
            "median esx MAPE at equal faults",
            "ratio",
            "programs",
        ],
        &[
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
            Align::Right,
        ],
        &rows,
    )
}

/// The per-program table at [`PER_PROGRAM_SIZE`]: follow capped at that
/// sample, DAMON at its default fewest regions, ESX at that sample, each
/// beside ESX's MAPE at the same faults.
pub fn per_program_table(c: &Comparison) -> String {
    let at = |estimator| Setting {
        estimator,
        size: PER_PROGRAM_SIZE,
    };
    let damon = Setting {
        estimator: EstimatorKind::Damon,
        size: super::DAMON_MIN_REGIONS[0],
    };
    let rows: Vec<Vec<String>> = c
        .programs()
        .into_iter()
        .map(|program| {
            let f = c.point(program, at(EstimatorKind::Follow));
            let d = c.point(program, damon);
            let e = c.point(program, at(EstimatorKind::Esx));
            let lag = |v: Option<f64>| opt(v, num);
            vec![
                program.to_string(),
                opt(f.and_then(|p| p.mape), pct),
                lag(f.and_then(|p| p.lag_up)),
                lag(f.and_then(|p| p.lag_down)),
                opt(f.and_then(|p| p.band_coverage), pct),
                opt(f.and_then(|p| p.faults_per_s), |x| sig(x, 3)),
                opt(f.and_then(|p| p.armed_per_interval), |x| sig(x, 3)),
                opt(f.and_then(|p| c.esx_at_equal_faults(p)), pct),
                opt(d.and_then(|p| p.mape), pct),
                opt(d.and_then(|p| p.faults_per_s), |x| sig(x, 3)),
                opt(d.and_then(|p| c.esx_at_equal_faults(p)), pct),
                opt(e.and_then(|p| p.mape), pct),
                lag(e.and_then(|p| p.lag_down)),
                opt(e.and_then(|p| p.policy_mape), pct),
            ]
        })
        .collect();
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 13]);
    markdown_table(
        &[
            "program",
            "follow MAPE",
            "lag up",
            "lag down",
            "band coverage",
            "faults/s",
            "armed",
            "esx MAPE at follow's faults",
            "damon MAPE",
            "damon faults/s",
            "esx MAPE at damon's faults",
            "esx MAPE",
            "esx lag down",
            "esx policy MAPE",
        ],
        &align,
        &rows,
    )
}

/// The columns of the comparison's CSV.
pub const CSV_COLUMNS: [&str; 13] = [
    "program",
    "estimator",
    "sample_pages",
    "damon_min_regions",
    "seeds",
    "mape",
    "policy_mape",
    "lag_up_intervals",
    "lag_down_intervals",
    "band_coverage",
    "faults_per_s",
    "armed_per_interval",
    "esx_mape_at_equal_faults",
];

/// The comparison's rows as CSV cells: full precision, empty when not
/// measured.
pub fn csv_rows(c: &Comparison) -> Vec<Vec<String>> {
    let cell = |v: Option<f64>| match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    };
    c.points
        .iter()
        .map(|p| {
            let damon = p.setting.estimator == EstimatorKind::Damon;
            let size = p.setting.size.to_string();
            vec![
                p.program.clone(),
                p.setting.estimator.name().to_string(),
                if damon { String::new() } else { size.clone() },
                if damon { size } else { String::new() },
                p.seeds.to_string(),
                cell(p.mape),
                cell(p.policy_mape),
                cell(p.lag_up),
                cell(p.lag_down),
                cell(p.band_coverage),
                cell(p.faults_per_s),
                cell(p.armed_per_interval),
                cell(c.esx_at_equal_faults(p)),
            ]
        })
        .collect()
}

/// Writes the comparison's CSV to `path`.
pub fn write_csv(path: &Path, c: &Comparison) -> Result<(), ReportError> {
    let csv_error = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(csv_error)?;
    w.write_record(CSV_COLUMNS).map_err(csv_error)?;
    for r in csv_rows(c) {
        w.write_record(&r).map_err(csv_error)?;
    }
    w.flush().map_err(|e| ReportError::Csv {
        path: path.to_path_buf(),
        source: e.into(),
    })
}
