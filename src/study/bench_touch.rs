//! The isolated cost of one tracked touch, as `kvm-wss bench trackers`
//! measured it, read back from its JSON files beside the study
//! (`<out>/bench/trackers*.json`), so that question 3 can set the guest
//! time it fits per tracked fault against it. The study does not run the
//! benchmark: it quotes the files, naming each, and says "not measured"
//! when there is none for a tracker and guest page size.

use std::path::Path;

use serde::Deserialize;

use crate::track::TrackerKind;
use crate::vmm::paging::GuestPageSize;

/// The file `bench trackers --json` writes by default; preferred over the
/// other `trackers*.json` files when several measured the same thing.
const CANONICAL: &str = "trackers.json";

/// One tracker's isolated touch cost, and where it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolatedTouch {
    pub tracker: TrackerKind,
    pub guest_pages: GuestPageSize,
    /// Guest µs per tracked touch through kvm-wss (the median of the
    /// benchmark's rounds: `kvmwss_us_per_touch`).
    pub us: f64,
    /// The file's name, for the text.
    pub file: String,
}

/// The fields of `bench::trackers::TrackersResult` this reads; files of
/// another shape are not benchmark results of this kind and are skipped.
#[derive(Deserialize)]
struct BenchFile {
    guest_pages: GuestPageSize,
    trackers: Vec<BenchTracker>,
}

#[derive(Deserialize)]
struct BenchTracker {
    tracker: TrackerKind,
    kvmwss_us_per_touch: f64,
}

/// Every isolated touch cost in `bench_dir`'s `trackers*.json` files, one
/// per tracker and guest page size: from `trackers.json` first, then from
/// the others in name order. A missing folder gives none.
pub fn read_isolated_touches(bench_dir: &Path) -> Vec<IsolatedTouch> {
    let Ok(entries) = std::fs::read_dir(bench_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("trackers") && n.ends_with(".json"))
        .collect();
    names.sort_by_key(|n| (n != CANONICAL, n.clone()));
    let mut found: Vec<IsolatedTouch> = Vec::new();
    for name in names {
        let Ok(text) = std::fs::read_to_string(bench_dir.join(&name)) else {
            continue;
        };
        let Ok(file) = serde_json::from_str::<BenchFile>(&text) else {
            continue;
        };
        for t in file.trackers {
            let seen = found
                .iter()
                .any(|f| f.tracker == t.tracker && f.guest_pages == file.guest_pages);
            if !seen && t.kvmwss_us_per_touch.is_finite() {
                found.push(IsolatedTouch {
                    tracker: t.tracker,
                    guest_pages: file.guest_pages,
                    us: t.kvmwss_us_per_touch,
                    file: name.clone(),
                });
            }
        }
    }
    found
}

/// The isolated touch of `tracker` on `guest_pages`, if measured.
pub fn isolated_touch(
    touches: &[IsolatedTouch],
    tracker: TrackerKind,
    guest_pages: GuestPageSize,
) -> Option<&IsolatedTouch> {
    touches
        .iter()
        .find(|t| t.tracker == tracker && t.guest_pages == guest_pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bench_json(pages: &str, uffd_us: f64) -> String {
        format!(
            r#"{{"pages": 1024, "rounds": 5, "guest_pages": "{pages}", "scheduling": "x",
               "trackers": [
                 {{"tracker": "uffd", "kvmwss_us_per_touch": {uffd_us}, "floor_us_per_touch": 1}},
                 {{"tracker": "dirty-log", "kvmwss_us_per_touch": 5.5}}
               ]}}"#
        )
    }

    #[test]
    fn reads_one_cost_per_tracker_and_page_size_canonical_file_first() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        // Sorted before trackers.json, but the canonical file wins.
        write("trackers-arming.json", &bench_json("2m", 59.8));
        write("trackers.json", &bench_json("2m", 19.7));
        write("trackers-4k-guest-pages.json", &bench_json("4k", 21.0));
        // Other shapes and other files are skipped.
        write("trackers-broken.json", "{\"trackers\": 3}");
        write("slowdown.json", &bench_json("2m", 99.0));
        let got = read_isolated_touches(dir.path());
        assert_eq!(got.len(), 4, "{got:?}");
        let uffd = isolated_touch(&got, TrackerKind::Uffd, GuestPageSize::Size2M).unwrap();
        assert_eq!((uffd.us, uffd.file.as_str()), (19.7, "trackers.json"));
        let small = isolated_touch(&got, TrackerKind::Uffd, GuestPageSize::Size4K).unwrap();
        assert_eq!(
            (small.us, small.file.as_str()),
            (21.0, "trackers-4k-guest-pages.json")
        );
        assert_eq!(
            isolated_touch(&got, TrackerKind::DirtyLog, GuestPageSize::Size2M).map(|t| t.us),
            Some(5.5)
        );
        assert_eq!(
            isolated_touch(&got, TrackerKind::Mprotect, GuestPageSize::Size2M),
            None
        );
        assert!(read_isolated_touches(&dir.path().join("none")).is_empty());
    }
}
