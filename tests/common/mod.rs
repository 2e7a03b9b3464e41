//! Shared helpers for integration tests that boot real guests on /dev/kvm.
#![allow(dead_code)]
// Test helpers: a failed unwrap here is a test failure, as it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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

/// Boots a built-in guest program, with dirty logging on RAM if `dirty_log`.
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
        // What a run with the dirty-log tracker needs; 2 MiB otherwise.
        guest_pages: if dirty_log {
            kvm_wss::track::dirty_log::GUEST_PAGES
        } else {
            kvm_wss::vmm::paging::GuestPageSize::Size2M
        },
        vcpus: 1,
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
    let faults = Arc::clone(&tracker).fault_handler();
    let report = run_to_exit(machine, faults, Some(hook));
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
#[derive(Clone, Copy)]
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
    /// `None`: what `kvm-wss run` uses for the tracker when not told.
    pub guest_pages: Option<kvm_wss::vmm::paging::GuestPageSize>,
    pub vcpus: u64,
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
            guest_pages: None,
            vcpus: 1,
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
            follow: kvm_wss::estimate::FollowConfig::default(),
            warmup_intervals: self.warmup_intervals,
            guest_pages: self
                .guest_pages
                .unwrap_or_else(|| kvm_wss::track::dirty_log::default_guest_pages(self.tracker)),
            vcpus: self.vcpus,
            cpu: kvm_wss::vmm::affinity::Placement::Auto,
            baseline: false,
            out_dir: None,
            plot: false,
            live: false,
        }
    }
}

/// Runs a config into a temporary folder, keeping its rows in `rows` (a
/// run keeps none unless asked); a failure fails the test.
pub fn run(cfg: &kvm_wss::config::RunConfig) -> kvm_wss::run::RunOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let extras = kvm_wss::run::RunExtras {
        keep_rows: true,
        ..kvm_wss::run::RunExtras::default()
    };
    kvm_wss::run::run_with(cfg, dir.path(), extras)
        .unwrap_or_else(|e| panic!("run failed: {}", kvm_wss::error_chain(&e)))
}

/// Runs a machine until its guest exits (at most two minutes) and asserts
/// that it exited cleanly.
pub fn run_to_exit(
    machine: Machine,
    faults: Option<Arc<dyn kvm_wss::vmm::vcpu_thread::FaultHandler>>,
    hook: Option<kvm_wss::vmm::vcpu_thread::SyncHook>,
) -> VcpuReport {
    let memory = Arc::clone(machine.memory());
    let (done_tx, done_rx) = mpsc::channel();
    let Machine { vcpu, vm, kvm, .. } = machine;
    let thread = VcpuThread::spawn(
        vcpu,
        memory,
        Instant::now(),
        faults,
        hook,
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
        "guest did not finish within 120 s: {:?}",
        report.end
    );
    assert!(
        matches!(
            report.end,
            VcpuEnd::Guest(kvm_wss::vmm::exit::Stop::Exit(0))
        ),
        "guest must exit cleanly: {:?}",
        report.end
    );
    report
}

/// Tracks nothing: the baseline a tracked probe run is compared with.
pub struct Untracked;

impl Tracker for Untracked {
    fn kind(&self) -> kvm_wss::track::TrackerKind {
        kvm_wss::track::TrackerKind::None
    }
    fn arm(&self, _: &[RamPage]) -> Result<(), kvm_wss::track::TrackError> {
        Ok(())
    }
    fn collect(&self) -> Result<Vec<RamPage>, kvm_wss::track::TrackError> {
        Ok(Vec::new())
    }
    fn touched_so_far(&self) -> usize {
        0
    }
    fn stats(&self) -> kvm_wss::track::TrackerStats {
        kvm_wss::track::TrackerStats::default()
    }
}

pub const PROBE_MEM: u64 = 64 << 20;
pub const PROBE_WSS: u64 = 1 << 20;
/// Pages of the probe's region (PROBE_WSS / 4 KiB).
pub const PROBE_REGION: u64 = 256;
pub const PROBE_ROUNDS: u64 = 3;

/// Round 0: the whole region. Round 1: every third page. Round 2: a sparse
/// mix, plus pages past the region and at the end of RAM that the guest
/// never touches (never populated: holes in the memfd until armed).
pub fn probe_sample(round: u64, first: RamPage) -> Vec<RamPage> {
    let region = first..first + PROBE_REGION;
    match round {
        0 => region.collect(),
        1 => region.step_by(3).collect(),
        _ => {
            let ram_pages = PROBE_MEM / 4096;
            let mut pages: Vec<RamPage> = region
                .filter(|p| (p - first).is_multiple_of(5) || (p - first) % 7 == 3)
                .collect();
            pages.extend(first + PROBE_REGION..first + PROBE_REGION + 40);
            pages.extend(ram_pages - 8..ram_pages);
            pages
        }
    }
}

/// What the probe reported at exit.
#[derive(Debug, Clone, Copy)]
pub struct ProbeOutcome {
    pub checksum: u64,
    /// Cycles and count of the timed page touches, over all rounds.
    pub cycles: u64,
    pub touches: u64,
    pub tsc_hz: u64,
}

impl ProbeOutcome {
    pub fn us_per_touch(&self) -> f64 {
        self.cycles as f64 / self.touches as f64 / self.tsc_hz as f64 * 1e6
    }
}

fn probe_outcome(memory: &kvm_wss::vmm::memory::GuestMemory, tsc_hz: u64) -> ProbeOutcome {
    let s = memory.status();
    assert_ne!(s.checksum_valid, 0, "the probe must publish its checksum");
    ProbeOutcome {
        checksum: s.checksum,
        cycles: s.user[0],
        touches: s.user[1],
        tsc_hz,
    }
}

/// The result of [`check_exact_tracking`], for tracker-specific checks.
pub struct Tracked<T> {
    pub tracker: Arc<T>,
    pub rounds: Vec<Round>,
    pub first: RamPage,
    pub base: ProbeOutcome,
    pub run: ProbeOutcome,
    /// Armed pages the guest touched (or wrote, for a writes-only tracker).
    pub tracked: u64,
}

/// Runs the probe untracked, then with the tracker `make` builds, arming
/// [`probe_sample`] in each round, and checks that the tracker reported
/// exactly the armed pages the guest touched (wrote, if `writes_only`),
/// that it counted one fault per such page, and that guest memory ended up
/// identical. Prints what a tracked touch cost the guest.
pub fn check_exact_tracking<T: Tracker + 'static>(
    name: &str,
    dirty_log: bool,
    make: impl FnOnce(&Machine) -> Arc<T>,
) -> Tracked<T> {
    let params = [("rounds", "3")];
    let plain = boot("probe", PROBE_MEM, PROBE_WSS, &params, false);
    let plain_mem = Arc::clone(plain.memory());
    let tsc_hz = plain.tsc_hz;
    let (rounds, _) = run_probe(plain, Arc::new(Untracked), PROBE_ROUNDS, probe_sample);
    assert!(rounds.iter().all(|r| r.touched.is_empty()));
    let base = probe_outcome(&plain_mem, tsc_hz);

    let machine = boot("probe", PROBE_MEM, PROBE_WSS, &params, dirty_log);
    let memory = Arc::clone(machine.memory());
    let first = machine.layout.data_first_page();
    let tracker = make(&machine);
    let writes_only = tracker.kind().writes_only();
    let (rounds, _) = run_probe(machine, tracker.clone(), PROBE_ROUNDS, probe_sample);
    let mut tracked = 0u64;
    for (r, round) in rounds.iter().enumerate() {
        assert_eq!(round.armed, probe_sample(r as u64, first));
        let expected: Vec<RamPage> = round
            .armed
            .iter()
            .copied()
            .filter(|&p| p < first + PROBE_REGION && probe_touched(p, first, writes_only))
            .collect();
        assert_eq!(round.touched, expected, "{name}: round {r}");
        tracked += expected.len() as u64;
    }
    let stats = tracker.stats();
    assert_eq!(stats.faults, tracked, "{name}: one fault per tracked touch");
    assert_eq!(
        tracker.touched_so_far(),
        0,
        "{name}: nothing armed after collect"
    );
    let run = probe_outcome(&memory, tsc_hz);
    assert_eq!(
        run.checksum, base.checksum,
        "{name}: tracking changed guest memory"
    );
    assert_eq!(run.touches, base.touches);
    let extra_us = run.cycles.saturating_sub(base.cycles) as f64 / tsc_hz as f64 * 1e6;
    println!(
        "{name}: {:.3} us/touch untracked, {:.1} us per tracked touch ({tracked} tracked); \
         VMM {:.1} us/fault; arm {:.0} us, collect {:.0} us; {:?}",
        base.us_per_touch(),
        extra_us / tracked.max(1) as f64,
        stats.fault_service_us / stats.faults.max(1) as f64,
        stats.arm_us,
        stats.collect_us,
        stats.counters
    );
    Tracked {
        tracker,
        rounds,
        first,
        base,
        run,
        tracked,
    }
}

/// The full intervals of an exhaustive run where the VMM's count differs
/// from the pages the guest reports, as (t, exhaustive, truth): none when
/// the two agree exactly.
pub fn exhaustive_mismatches(
    out: &kvm_wss::run::RunOutput,
    tracker: kvm_wss::track::TrackerKind,
) -> Vec<(f64, f64, u64)> {
    out.rows
        .iter()
        .filter(|r| r.full)
        .filter_map(|r| {
            let truth = if tracker.writes_only() {
                r.true_wss_write_pages
            } else {
                r.true_wss_pages
            };
            let est = r.est_wss_pages.unwrap_or(-1.0);
            (est != truth as f64).then_some((r.t_s, est, truth))
        })
        .collect()
}

/// Every tracker, untracked first: the order the guest-program tests run
/// them in.
pub const ALL_TRACKERS: [kvm_wss::track::TrackerKind; 4] = [
    kvm_wss::track::TrackerKind::None,
    kvm_wss::track::TrackerKind::Mprotect,
    kvm_wss::track::TrackerKind::Uffd,
    kvm_wss::track::TrackerKind::DirtyLog,
];

/// What a guest program's run reported that must not depend on the
/// tracker (or the vCPU count): checksum, named results, phase markers in
/// order, and the unit it counts.
#[derive(Debug, PartialEq)]
pub struct GuestOutcome {
    pub checksum: Option<String>,
    pub results: std::collections::BTreeMap<String, u64>,
    pub markers: Vec<u64>,
    pub op_name: String,
}

impl GuestOutcome {
    pub fn of(out: &kvm_wss::run::RunOutput) -> GuestOutcome {
        GuestOutcome {
            checksum: out.summary.guest_checksum.clone(),
            results: out
                .summary
                .guest_results
                .iter()
                .map(|r| (r.name.clone(), r.value))
                .collect(),
            markers: out.summary.phases.iter().map(|p| p.marker).collect(),
            op_name: out.summary.op_name.clone(),
        }
    }

    /// The result called `name`.
    pub fn result(&self, name: &str) -> u64 {
        *self
            .results
            .get(name)
            .unwrap_or_else(|| panic!("no result {name} in {:?}", self.results))
    }
}

/// Runs kvm-wss with `args` and returns its output and its own peak
/// resident memory, in KiB (from `wait4`, so no other child counts).
// The child is reaped by wait4 rather than `Child::wait`, which has no rusage.
#[allow(clippy::zombie_processes)]
pub fn kvm_wss_with_rss(args: &[&str]) -> (std::process::Output, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid rusage; wait4 reaps the child we
    // spawned and fills both through valid pointers.
    let rusage = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut ru), pid);
        ru
    };
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    let output = std::process::Output {
        status,
        stdout: std::fs::read(&out_path).expect("stdout"),
        stderr: std::fs::read(&err_path).expect("stderr"),
    };
    (output, rusage.ru_maxrss)
}

/// Runs kvm-wss with `args`, checks it exited 0 (its stderr in the
/// message otherwise) and returns its stdout, which must be JSON.
pub fn kvm_wss_json(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .output()
        .expect("spawn kvm-wss");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Runs `kvm-wss run` with `args` and `--out out`, and checks it exited 0
/// (its stderr in the message otherwise).
pub fn kvm_wss_run(args: &[&str], out: &std::path::Path) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("spawn kvm-wss");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
