//! Shared helpers for integration tests that boot real guests on /dev/kvm.
#![allow(dead_code)]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_wss::track::{RamPage, Tracker};
use kvm_wss::vmm::machine::{Machine, MachineConfig};
use kvm_wss::vmm::vcpu_thread::{VcpuEnd, VcpuReport, VcpuThread};

/// True when /dev/kvm can be used. Without it a test skips, printing why,
/// except under CI=true, where a missing KVM fails the test loudly.
pub fn kvm_available(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: CI=true but /dev/kvm cannot be opened: {e}");
            }
            eprintln!("skipping {test}: /dev/kvm cannot be opened ({e})");
            false
        }
    }
}

/// Boots a built-in guest program.
pub fn boot(name: &str, mem: u64, wss: u64, params: &[(&str, &str)], dirty_log: bool) -> Machine {
    let image =
        kvm_wss::guests::embedded(name).unwrap_or_else(|| panic!("no built-in guest {name}"));
    let cfg = MachineConfig {
        mem,
        wss,
        seed: 1,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        dirty_log,
    };
    Machine::boot(image, &cfg)
        .unwrap_or_else(|e| panic!("boot {name}: {}", kvm_wss::error_chain(&e)))
}

/// What one probe round saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub armed: Vec<RamPage>,
    pub touched: Vec<RamPage>,
}

/// Runs the `probe` guest over `pages` data pages for `rounds` rounds with
/// `tracker`. At each round's first sync the pages `choose(round, first
/// data page)` are armed; at the second they are collected. Returns the
/// rounds and the vCPU report.
pub fn run_probe(
    machine: Machine,
    tracker: Arc<dyn Tracker>,
    rounds: u64,
    choose: impl Fn(u64, RamPage) -> Vec<RamPage> + Send + 'static,
) -> (Vec<Round>, VcpuReport) {
    let first = machine.layout.data_first_page();
    let memory = Arc::clone(machine.memory());
    let results = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&results);
    let hook_tracker = Arc::clone(&tracker);
    let mut armed = Vec::new();
    let hook = Box::new(move |v: u64| {
        let round = v / 2;
        if v.is_multiple_of(2) {
            armed = choose(round, first);
            hook_tracker.arm(&armed).expect("arm");
        } else {
            let touched = hook_tracker.collect().expect("collect");
            sink.lock().expect("lock").push(Round {
                armed: std::mem::take(&mut armed),
                touched,
            });
        }
    });
    let (done_tx, done_rx) = mpsc::channel();
    let faults = Arc::clone(&tracker).fault_handler();
    let Machine { vcpu, vm, kvm, .. } = machine;
    let thread = VcpuThread::spawn(
        vcpu,
        memory,
        Instant::now(),
        faults,
        Some(hook),
        Box::new(move || {
            let _ = done_tx.send(());
        }),
    )
    .expect("spawn vcpu");
    let finished = done_rx.recv_timeout(Duration::from_secs(120)).is_ok();
    let report = thread.stop();
    drop((vm, kvm));
    assert!(
        finished,
        "probe did not finish within 120 s: {:?}",
        report.end
    );
    assert_eq!(
        report.end,
        VcpuEnd::Guest(kvm_wss::vmm::exit::Stop::Exit(0)),
        "probe must exit cleanly"
    );
    let rounds_seen = results.lock().expect("lock").clone();
    assert_eq!(rounds_seen.len() as u64, rounds);
    (rounds_seen, report)
}

/// The probe's classes: page i (counted from the first data page) is read
/// when i % 4 is 0 or 2, written when i % 4 is 1 or 2, untouched when 3.
pub fn probe_touched(page: RamPage, first: RamPage, writes_only: bool) -> bool {
    let class = (page - first) % 4;
    if writes_only {
        class == 1 || class == 2
    } else {
        class != 3
    }
}

/// A run's settings for tests: untracked unless `tracker` says otherwise,
/// no plot, no live output.
pub struct RunSpec<'a> {
    pub guest: &'a str,
    pub mem: u64,
    pub wss: u64,
    pub duration: Duration,
    pub interval: Duration,
    pub tracker: kvm_wss::track::TrackerKind,
    pub estimator: kvm_wss::estimate::EstimatorKind,
    pub sample_pages: u64,
    pub params: &'a [(&'a str, &'a str)],
    pub seed: u64,
    pub warmup_intervals: usize,
}

impl RunSpec<'_> {
    pub fn new(guest: &str) -> RunSpec<'_> {
        RunSpec {
            guest,
            mem: 64 << 20,
            wss: 4 << 20,
            duration: Duration::from_secs(3),
            interval: Duration::from_millis(500),
            tracker: kvm_wss::track::TrackerKind::None,
            estimator: kvm_wss::estimate::EstimatorKind::Esx,
            sample_pages: 100,
            params: &[],
            seed: 7,
            warmup_intervals: 1,
        }
    }

    pub fn config(&self) -> kvm_wss::config::RunConfig {
        kvm_wss::config::RunConfig {
            guest: kvm_wss::guests::GuestSource::Builtin(self.guest.into()),
            mem: self.mem,
            wss: self.wss,
            seed: self.seed,
            params: self
                .params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            duration: self.duration,
            interval: self.interval,
            tracker: self.tracker,
            estimator: self.estimator,
            sample_pages: self.sample_pages,
            esx: kvm_wss::estimate::EsxGains::default(),
            damon: kvm_wss::estimate::DamonConfig::default(),
            warmup_intervals: self.warmup_intervals,
            baseline: false,
            out_dir: None,
            plot: false,
            live: false,
        }
    }
}

/// Runs a config into a temporary folder; a failure fails the test.
pub fn run(cfg: &kvm_wss::config::RunConfig) -> kvm_wss::run::RunOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    kvm_wss::run::run(cfg, dir.path())
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)))
}
