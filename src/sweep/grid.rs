//! The grid of settings a sweep runs, and their names on the command line
//! and on disk.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::estimate::{EstimatorKind, EsxGains};
use crate::track::TrackerKind;

/// One point of the grid. Fields a setting does not use are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Setting {
    pub tracker: TrackerKind,
    /// `None` for tracker `none`.
    pub estimator: Option<EstimatorKind>,
    /// `Some` for esx only.
    pub sample_pages: Option<u64>,
    #[serde(rename = "interval_s", serialize_with = "seconds")]
    pub interval: Duration,
    /// ESX's gains, named only by a replay sweep (which may vary them):
    /// a live sweep's runs all take the command line's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub esx_gains: Option<EsxGains>,
    /// DAMON's region bounds, named only by a replay sweep, as the gains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damon_regions: Option<DamonRegions>,
}

/// The fewest and most regions DAMON keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DamonRegions {
    pub min: u32,
    pub max: u32,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Setting {
    /// The `kvm-wss run` options that select this setting.
    pub fn args(&self) -> String {
        let mut s = format!("--tracker {}", self.tracker.name());
        if let Some(e) = self.estimator {
            let _ = write!(s, " --estimator {}", e.name());
        }
        if let Some(n) = self.sample_pages {
            let _ = write!(s, " --sample-pages {n}");
        }
        let _ = write!(s, " --interval {}", format_interval(self.interval));
        if let Some(g) = self.esx_gains {
            let _ = write!(s, " --esx-slow-gain {} --esx-fast-gain {}", g.slow, g.fast);
        }
        if let Some(r) = self.damon_regions {
            let _ = write!(
                s,
                " --damon-min-regions {} --damon-max-regions {}",
                r.min, r.max
            );
        }
        s
    }

    /// The estimator column of tables: its name, and the gains or region
    /// bounds when the setting names them.
    pub fn estimator_label(&self) -> String {
        let Some(e) = self.estimator else {
            return "-".to_string();
        };
        let mut s = e.name().to_string();
        s.push_str(&self.tuning_text(" (gains ", " (regions ", ")"));
        s
    }

    /// The gains as `{before_gains}SLOW/FAST{after}`, or the region bounds
    /// as `{before_regions}MIN-MAX{after}`; empty when the setting names
    /// neither.
    fn tuning_text(&self, before_gains: &str, before_regions: &str, after: &str) -> String {
        let mut s = String::new();
        if let Some(g) = self.esx_gains {
            let _ = write!(s, "{before_gains}{}/{}{after}", g.slow, g.fast);
        }
        if let Some(r) = self.damon_regions {
            let _ = write!(s, "{before_regions}{}-{}{after}", r.min, r.max);
        }
        s
    }

    /// What heat maps group by: the setting less its sample pages and
    /// interval (the heat map's axes).
    pub fn family(&self) -> Setting {
        Setting {
            sample_pages: None,
            interval: Duration::ZERO,
            ..*self
        }
    }

    /// A file-name suffix naming the gains or region bounds (`-g0.1-0.5`,
    /// `-r10-1000`); empty when the setting names neither.
    pub fn tuning_slug(&self) -> String {
        self.tuning_text("-g", "-r", "").replace('/', "-")
    }

    /// A short human label, for the progress bar.
    pub fn label(&self) -> String {
        let mut s = self.tracker.name().to_string();
        if let Some(e) = self.estimator {
            let _ = write!(s, " {}", e.name());
        }
        if let Some(n) = self.sample_pages {
            let _ = write!(s, " {n} pages");
        }
        let _ = write!(s, " {}", format_interval(self.interval));
        s.push_str(&self.tuning_text(" gains ", " regions ", ""));
        s
    }

    /// The folder of repeat `repeat` of this setting, inside the sweep folder.
    pub fn dir_name(&self, repeat: u32) -> String {
        let mut s = self.tracker.name().to_string();
        if let Some(e) = self.estimator {
            let _ = write!(s, "-{}", e.name());
        }
        if let Some(n) = self.sample_pages {
            let _ = write!(s, "-s{n}");
        }
        let _ = write!(s, "-i{}-r{repeat}", format_interval(self.interval));
        s
    }

    /// The sample-pages column of tables and heat maps.
    pub fn sample_label(&self) -> String {
        match (self.sample_pages, self.estimator) {
            (Some(n), _) => n.to_string(),
            (None, Some(EstimatorKind::Exhaustive)) => "all".to_string(),
            (None, Some(EstimatorKind::Damon)) => "regions".to_string(),
            _ => "-".to_string(),
        }
    }
}

/// An interval as the CLI accepts it back: `1s`, `500ms`, `250us`.
pub fn format_interval(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1_000) {
        format!("{}us", ns / 1_000)
    } else {
        format!("{}ms", ns as f64 / 1e6)
    }
}

/// Every combination of the lists, in list order (tracker, then estimator,
/// then sample pages, then interval), without duplicates: values repeated
/// in a list, and settings that differ only in what they ignore (sample
/// pages for damon and exhaustive (esx and follow use them); estimator and sample pages for tracker
/// `none`), appear once.
pub fn expand_grid(
    trackers: &[TrackerKind],
    estimators: &[EstimatorKind],
    sample_pages: &[u64],
    intervals: &[Duration],
) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    for &tracker in trackers {
        for &estimator in estimators {
            for &n in sample_pages {
                for &interval in intervals {
                    let (estimator, sample_pages) = match (tracker, estimator) {
                        (TrackerKind::None, _) => (None, None),
                        (_, EstimatorKind::Esx | EstimatorKind::Curve | EstimatorKind::Follow) => {
                            (Some(estimator), Some(n))
                        }
                        _ => (Some(estimator), None),
                    };
                    let s = Setting {
                        tracker,
                        estimator,
                        sample_pages,
                        interval,
                        esx_gains: None,
                        damon_regions: None,
                    };
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::fixtures::{esx, ms};

    #[test]
    fn grid_has_every_combination_once() {
        let g = expand_grid(
            &[TrackerKind::Uffd, TrackerKind::Mprotect],
            &[EstimatorKind::Esx],
            &[100, 400, 100],
            &[ms(500), ms(1000)],
        );
        assert_eq!(g.len(), 2 * 2 * 2);
        assert_eq!(g[0], esx(100, 500));
        assert_eq!(g[1], esx(100, 1000));
        assert_eq!(g[2], esx(400, 500));
        assert_eq!(g[4].tracker, TrackerKind::Mprotect);
    }

    #[test]
    fn grid_runs_sample_free_settings_once_per_interval() {
        let g = expand_grid(
            &[TrackerKind::Uffd, TrackerKind::None],
            &[
                EstimatorKind::Esx,
                EstimatorKind::Damon,
                EstimatorKind::Exhaustive,
            ],
            &[100, 400],
            &[ms(500), ms(1000)],
        );
        let count = |f: &dyn Fn(&Setting) -> bool| g.iter().filter(|s| f(s)).count();
        assert_eq!(count(&|s| s.estimator == Some(EstimatorKind::Esx)), 4);
        assert_eq!(count(&|s| s.estimator == Some(EstimatorKind::Damon)), 2);
        assert_eq!(
            count(&|s| s.estimator == Some(EstimatorKind::Exhaustive)),
            2
        );
        assert_eq!(count(&|s| s.tracker == TrackerKind::None), 2);
        assert_eq!(g.len(), 10);
        assert!(g.iter().all(|s| s.tracker != TrackerKind::None
            || (s.estimator.is_none() && s.sample_pages.is_none())));
        assert!(
            g.iter()
                .all(|s| (s.estimator == Some(EstimatorKind::Esx)) == s.sample_pages.is_some())
        );
    }

    #[test]
    fn setting_names_round_trip_through_the_cli_syntax() {
        let s = esx(400, 1000);
        assert_eq!(
            s.args(),
            "--tracker uffd --estimator esx --sample-pages 400 --interval 1s"
        );
        assert_eq!(s.dir_name(2), "uffd-esx-s400-i1s-r2");
        assert_eq!(s.label(), "uffd esx 400 pages 1s");
        let damon = Setting {
            estimator: Some(EstimatorKind::Damon),
            sample_pages: None,
            ..esx(0, 250)
        };
        assert_eq!(
            damon.args(),
            "--tracker uffd --estimator damon --interval 250ms"
        );
        assert_eq!(damon.dir_name(0), "uffd-damon-i250ms-r0");
        assert_eq!(damon.sample_label(), "regions");
        for (d, text) in [
            (ms(1500), "1500ms"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_micros(250), "250us"),
            (Duration::from_nanos(1_500), "0.0015ms"),
        ] {
            assert_eq!(format_interval(d), text);
            let back = wss_abi::units::parse_duration_ns(text).map(Duration::from_nanos);
            assert_eq!(back, Some(d), "{text}");
        }
    }
}
