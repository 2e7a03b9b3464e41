//! sweep.csv: one row per finished run, the setting then every field of
//! its summary.json.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{RunRecord, Setting};
use crate::report::ReportError;
use crate::report::summary::Summary;

/// The first columns of sweep.csv; summary.json's fields follow, less
/// those named here (the setting columns say what was asked for: an empty
/// `sample_pages` means the estimator does not sample a fixed count).
pub const SETTING_COLUMNS: [&str; 7] = [
    "tracker",
    "estimator",
    "sample_pages",
    "interval_s",
    "repeat",
    "seed",
    "run_dir",
];

/// The setting columns a replay sweep adds after [`SETTING_COLUMNS`]: the
/// estimator parameters it may vary (empty where the estimator has none).
pub const TUNING_COLUMNS: [&str; 4] = [
    "esx_slow_gain",
    "esx_fast_gain",
    "damon_min_regions",
    "damon_max_regions",
];

/// summary.json's fields that only a live run measures: a replay of a
/// recording cannot know them (no VMM ran, no tracker armed or faulted, no
/// baseline, no host), so a replayed row leaves them empty rather than
/// claiming 0. The one list, used wherever replayed records are shown.
pub const UNKNOWN_IN_REPLAY: [&str; 15] = [
    "fault_cost_us",
    "vmm_cpu_s",
    "arm_us_total",
    "collect_us_total",
    "arm_us_per_page",
    "guest_us_per_armed_page",
    "hold_us_mean",
    "hold_us_max",
    "forced_holds",
    "sampler_cpu_s",
    "stall_us",
    "slowdown",
    "baseline_guest_ops_per_s",
    "tracker_stats",
    "host",
];

/// sweep.csv, one row per run, flushed after each.
pub struct SweepCsv {
    path: PathBuf,
    writer: csv::Writer<File>,
    header: Vec<String>,
    /// Whether the [`TUNING_COLUMNS`] follow the setting columns.
    tuned: bool,
}

impl SweepCsv {
    /// Creates the file and writes the header; `tuned` (a replay sweep)
    /// adds the [`TUNING_COLUMNS`].
    pub fn create(path: &Path, tuned: bool) -> Result<SweepCsv, ReportError> {
        let csv_err = |source| ReportError::Csv {
            path: path.to_path_buf(),
            source,
        };
        let mut header: Vec<String> = SETTING_COLUMNS.iter().map(|c| c.to_string()).collect();
        if tuned {
            header.extend(TUNING_COLUMNS.iter().map(|c| c.to_string()));
        }
        let summary_keys = summary_fields(&Summary::default())
            .map_err(|source| ReportError::Json {
                path: path.to_path_buf(),
                source,
            })?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !SETTING_COLUMNS.contains(&k.as_str()));
        header.extend(summary_keys);
        let mut writer = csv::Writer::from_path(path).map_err(csv_err)?;
        writer.write_record(&header).map_err(csv_err)?;
        let mut out = SweepCsv {
            path: path.to_path_buf(),
            writer,
            header,
            tuned,
        };
        out.flush()?;
        Ok(out)
    }

    /// Appends the row of `record`, run with `setting`, and flushes it.
    pub fn append(&mut self, setting: &Setting, record: &RunRecord) -> Result<(), ReportError> {
        let fields = summary_fields(&record.summary).map_err(|source| ReportError::Json {
            path: self.path.clone(),
            source,
        })?;
        let mut row = vec![
            setting.tracker.name().to_string(),
            setting
                .estimator
                .map_or(String::new(), |e| e.name().to_string()),
            setting
                .sample_pages
                .map_or(String::new(), |n| n.to_string()),
            setting.interval.as_secs_f64().to_string(),
            record.repeat.to_string(),
            record.seed.to_string(),
            record.run_dir.clone(),
        ];
        let mut summary_from = SETTING_COLUMNS.len();
        if self.tuned {
            let opt = |v: Option<String>| v.unwrap_or_default();
            row.extend([
                opt(setting.esx_gains.map(|g| g.slow.to_string())),
                opt(setting.esx_gains.map(|g| g.fast.to_string())),
                opt(setting.damon_regions.map(|r| r.min.to_string())),
                opt(setting.damon_regions.map(|r| r.max.to_string())),
            ]);
            summary_from += TUNING_COLUMNS.len();
        }
        for key in &self.header[summary_from..] {
            let unknown = record.replayed && UNKNOWN_IN_REPLAY.contains(&key.as_str());
            let cell = fields
                .iter()
                .find(|(k, _)| k == key && !unknown)
                .map_or(String::new(), |(_, v)| v.clone());
            row.push(cell);
        }
        self.writer
            .write_record(&row)
            .map_err(|source| ReportError::Csv {
                path: self.path.clone(),
                source,
            })?;
        self.flush()
    }

    fn flush(&mut self) -> Result<(), ReportError> {
        self.writer.flush().map_err(|source| ReportError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// summary.json's fields in their order, each as a CSV cell: `null` is
/// empty, strings are bare, nested values (phases, tracker_stats) are JSON.
pub fn summary_fields(s: &Summary) -> Result<Vec<(String, String)>, serde_json::Error> {
    // serde_json's Map sorts its keys; reading the text back through an
    // order-keeping visitor keeps the documented field order.
    let text = serde_json::to_string(s)?;
    let OrderedFields(fields) = serde_json::from_str(&text)?;
    Ok(fields
        .into_iter()
        .map(|(k, v)| {
            let cell = match v {
                Value::Null => String::new(),
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                nested @ (Value::Array(_) | Value::Object(_)) => nested.to_string(),
            };
            (k, cell)
        })
        .collect())
}

struct OrderedFields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedFields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(OrderedFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SWEEP_CSV;
    use crate::sweep::fixtures::{esx, record, summary};

    #[test]
    fn csv_rows_hold_the_setting_then_every_summary_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SWEEP_CSV);
        let mut csv = SweepCsv::create(&path, false).unwrap();
        let mut s = summary(0.05, Some(1.0), 1234);
        s.phases = vec![crate::report::summary::Phase {
            t_s: 1.5,
            marker: 2,
        }];
        s.tracker_stats.mechanism.insert("unattributed".into(), 3);
        csv.append(&esx(400, 500), &record(0, 1, s)).unwrap();
        // Flushed: readable while the writer is still open.
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header[..7], SETTING_COLUMNS);
        assert_eq!(header[7], "guest");
        assert_eq!(header[8], "mem_pages");
        let fields = summary_fields(&Summary::default()).unwrap();
        assert_eq!(header.len(), 7 + fields.len() - 5);
        for (k, _) in &fields {
            assert_eq!(header.iter().filter(|h| *h == k).count(), 1, "{k}");
        }
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let cell = |name: &str| rows[0][header.iter().position(|h| h == name).unwrap()].to_string();
        assert_eq!(cell("tracker"), "uffd");
        assert_eq!(cell("estimator"), "esx");
        assert_eq!(cell("sample_pages"), "400");
        assert_eq!(cell("interval_s"), "0.5");
        assert_eq!((cell("repeat"), cell("seed")), ("1".into(), "2".into()));
        assert_eq!(cell("run_dir"), "r1");
        assert_eq!(cell("mape"), "0.05");
        assert_eq!(cell("tracked_faults"), "1234");
        assert_eq!(cell("lag_down_intervals"), "");
        assert_eq!(cell("end"), "duration");
        assert_eq!(cell("phases"), r#"[{"marker":2,"t_s":1.5}]"#);
        assert_eq!(
            cell("tracker_stats"),
            r#"{"guest_stalls":0,"rejected_hypercalls":0,"unattributed":3,"vcpu_thread_cpu_s":0.0}"#
        );
    }

    /// Each name of the list is a column of sweep.csv, so no unknown cost
    /// is shown as 0 by a misspelt name.
    #[test]
    fn every_cost_unknown_in_replay_is_a_summary_field() {
        let fields = summary_fields(&Summary::default()).unwrap();
        for name in UNKNOWN_IN_REPLAY {
            assert!(fields.iter().any(|(k, _)| k == name), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SWEEP_CSV);
        let csv = SweepCsv::create(&path, true).unwrap();
        assert_eq!(csv.header[7..11], TUNING_COLUMNS);
    }
}
