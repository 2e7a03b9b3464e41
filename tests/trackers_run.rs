//! `kvm-wss run --tracker {mprotect,uffd,dirty-log}` works with every guest
//! program, fills its cost fields, and never changes guest memory.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{RunSpec, run};
use kvm_wss::run::RunEnd;
use kvm_wss::track::TrackerKind;

const TRACKERS: [TrackerKind; 3] = [
    TrackerKind::Mprotect,
    TrackerKind::Uffd,
    TrackerKind::DirtyLog,
];

#[test]
fn every_tracker_runs_every_program_and_reports_its_costs() {
    if !common::kvm_available("every_tracker_runs_every_program_and_reports_its_costs") {
        return;
    }
    for tracker in TRACKERS {
        for guest in [
            "seq", "random", "hotset", "zipf", "phases", "ramp", "stride", "chase", "idle",
        ] {
            let out = run(&RunSpec {
                tracker,
                duration: Duration::from_millis(2000),
                sample_pages: 200,
                ..RunSpec::new(guest)
            }
            .config());
            let s = &out.summary;
            let what = format!("{guest} under {tracker:?}");
            assert!(matches!(out.end, RunEnd::Duration), "{what}: {:?}", out.end);
            assert_eq!(s.tracker, tracker, "{what}");
            assert_eq!(
                s.estimator,
                Some(kvm_wss::estimate::EstimatorKind::Esx),
                "{what}"
            );
            let faults = s
                .tracked_faults
                .unwrap_or_else(|| panic!("{what}: no tracked_faults"));
            assert_eq!(
                faults,
                out.rows.iter().map(|r| r.faults).sum::<u64>(),
                "{what}"
            );
            assert!(
                s.est_wss_mean_pages.is_some() && s.mape.is_some() || s.true_wss_mean_pages < 2.0,
                "{what}"
            );
            assert!(
                s.arm_us_total > 0.0 && s.collect_us_total > 0.0,
                "{what}: sampler costs"
            );
            if guest != "idle" {
                assert!(
                    faults > 0,
                    "{what}: sampled pages of a busy program must be touched"
                );
                assert!(s.fault_cost_us.is_some(), "{what}: fault cost");
            }
            assert_eq!(
                s.compared_against,
                if tracker == TrackerKind::DirtyLog {
                    kvm_wss::analysis::accuracy::TruthColumn::Writes
                } else {
                    kvm_wss::analysis::accuracy::TruthColumn::All
                },
                "{what}"
            );
        }
    }
}

#[test]
fn tracked_memory_ends_up_identical() {
    if !common::kvm_available("tracked_memory_ends_up_identical") {
        return;
    }
    for guest in ["hotset", "chase", "zipf"] {
        let spec = RunSpec {
            duration: Duration::from_secs(60),
            interval: Duration::from_millis(100),
            params: &[("ops", "3000000")],
            sample_pages: 400,
            ..RunSpec::new(guest)
        };
        let untracked = run(&spec.config());
        assert!(
            matches!(untracked.end, RunEnd::GuestExit(0)),
            "{guest}: {:?}",
            untracked.end
        );
        let expected = untracked.summary.guest_checksum.clone().expect("checksum");
        for tracker in TRACKERS {
            let out = run(&RunSpec { tracker, ..spec }.config());
            assert!(
                matches!(out.end, RunEnd::GuestExit(0)),
                "{guest} under {tracker:?}: {:?}",
                out.end
            );
            assert!(
                out.summary.tracked_faults.unwrap_or(0) > 0,
                "{guest} under {tracker:?}: nothing tracked"
            );
            assert_eq!(
                out.summary.guest_checksum.as_deref(),
                Some(expected.as_str()),
                "{guest} under {tracker:?}"
            );
        }
    }
}

/// Where the vCPU and uffd's handler run (`--cpu`): together on the named
/// CPU, on the caller's under auto when a handler thread exists, and where
/// the scheduler puts them under free; the summary says which.
#[test]
fn the_vcpu_and_the_uffd_handler_share_the_cpu_the_placement_names() {
    use kvm_wss::vmm::affinity::{Placement, allowed_cpus};
    if !common::kvm_available("the_vcpu_and_the_uffd_handler_share_the_cpu_the_placement_names") {
        return;
    }
    let allowed = allowed_cpus().unwrap();
    let last = *allowed.last().unwrap();
    let placed = |tracker, cpu| {
        let mut cfg = RunSpec {
            tracker,
            duration: Duration::from_millis(1500),
            ..RunSpec::new("random")
        }
        .config();
        cfg.cpu = cpu;
        let out = run(&cfg);
        assert!(matches!(out.end, RunEnd::Duration), "{:?}", out.end);
        out.summary
    };
    let named = placed(TrackerKind::Uffd, Placement::Cpu(last));
    assert_eq!(named.cpu, Some(last));
    let free = placed(TrackerKind::Uffd, Placement::Free);
    assert_eq!(free.cpu, None);
    let auto = placed(TrackerKind::Uffd, Placement::Auto);
    assert_eq!(auto.cpu.is_some(), allowed.len() > 1);
    assert!(auto.cpu.is_none_or(|c| allowed.contains(&c)));
    // No handler thread under mprotect (its faults come back on the vCPU
    // thread): nothing to place.
    assert_eq!(placed(TrackerKind::Mprotect, Placement::Auto).cpu, None);
}
