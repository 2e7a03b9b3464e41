//! The exact yardstick, everywhere: exhaustive tracking equals the
//! guest-reported truth in every full interval, for all nine programs,
//! paced as the study paces them and unpaced, at two working-set sizes,
//! with 2 MiB and 4 KiB guest pages, under every tracker.
//!
//! About 180 runs (15 minutes), so it is ignored by `make test` and run by
//! `make exactness`, which also writes the table to docs/exactness.md
//! (`EXACTNESS_OUT`). `make test` runs a subset (tests/estimators.rs).
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::estimate::EstimatorKind;
use kvm_wss::study::plan::{Scale, workloads};
use kvm_wss::track::TrackerKind;
use kvm_wss::vmm::paging::GuestPageSize;

#[test]
#[ignore = "about 15 minutes: make exactness"]
fn exhaustive_equals_the_truth_everywhere() {
    if !common::kvm_available("exhaustive_equals_the_truth_everywhere") {
        return;
    }
    let mut table = String::from(
        "| program | pacing | --wss | guest pages | tracker | full intervals | equal |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for wss in [64u64 << 20, 256 << 20] {
        let scale = Scale {
            wss,
            mem: 2 * wss,
            interval: Duration::from_secs(1),
            ..Scale::full()
        };
        for w in workloads(&scale) {
            let paced: Vec<(&str, &str)> = w
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let unpaced: Vec<(&str, &str)> = paced
                .iter()
                .copied()
                .filter(|(k, _)| *k != "rate")
                .collect();
            let mut pacings = vec![("unpaced", unpaced)];
            if paced.iter().any(|(k, _)| *k == "rate") {
                pacings.push(("paced", paced));
            }
            for (pacing, params) in &pacings {
                for pages in [GuestPageSize::Size2M, GuestPageSize::Size4K] {
                    for tracker in [
                        TrackerKind::Uffd,
                        TrackerKind::Mprotect,
                        TrackerKind::DirtyLog,
                    ] {
                        // Dirty logging is exact only with 4 KiB guest
                        // pages on shadow paging, so it refuses 2 MiB.
                        if tracker == TrackerKind::DirtyLog && pages == GuestPageSize::Size2M {
                            continue;
                        }
                        let out = run(&RunSpec {
                            mem: scale.mem,
                            wss,
                            duration: Duration::from_secs(5),
                            interval: scale.interval,
                            tracker,
                            estimator: EstimatorKind::Exhaustive,
                            params,
                            guest_pages: Some(pages),
                            ..RunSpec::new(w.guest)
                        }
                        .config());
                        let full = out.rows.iter().filter(|r| r.full).count();
                        let off = common::exhaustive_mismatches(&out, tracker);
                        let what = format!(
                            "{} {pacing} {}M {pages:?} {}",
                            w.label,
                            wss >> 20,
                            tracker.name()
                        );
                        if full < 3 || !off.is_empty() {
                            failures.push(format!(
                                "{what}: {full} full, off {off:?}, forced holds {}",
                                out.summary.forced_holds
                            ));
                        }
                        let _ = writeln!(
                            table,
                            "| {} | {pacing} | {}M | {} | {} | {full} | {} |",
                            w.label,
                            wss >> 20,
                            match pages {
                                GuestPageSize::Size2M => "2 MiB",
                                GuestPageSize::Size4K => "4 KiB",
                            },
                            tracker.name(),
                            if off.is_empty() {
                                "yes".to_string()
                            } else {
                                format!("no: {} off", off.len())
                            }
                        );
                    }
                }
            }
        }
    }
    if let Ok(path) = std::env::var("EXACTNESS_OUT") {
        let doc = format!(
            "# Exhaustive tracking against the truth\n\n\
             Written by `make exactness` (tests/exactness.rs): every run is 5 s of \
             `kvm-wss run --estimator exhaustive --interval 1s --mem 2×wss`, and a row says \
             whether `est_wss_pages` equals the guest-reported truth \
             (`true_wss_write_pages` under dirty-log) in every full interval. Paced \
             programs use the study's rates.\n\n{table}"
        );
        std::fs::write(&path, doc).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    println!("{table}");
    assert!(failures.is_empty(), "{failures:#?}");
}
