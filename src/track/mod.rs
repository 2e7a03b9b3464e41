//! Trackers: invalidate chosen guest pages and report which of them the
//! guest touched next. One implementation per kernel mechanism, behind one
//! trait, chosen with `--tracker`.

pub mod code_view;
pub mod decode;
pub mod dirty_log;
pub mod mprotect;
pub mod page_bits;
pub mod uffd;
pub mod uffd_ram;
pub mod uffd_sys;
pub mod zap;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::vmm::vcpu_thread::FaultHandler;

/// Index of a 4 KiB page of guest RAM, counted from `RAM_BASE`.
pub type RamPage = u64;

/// The mechanism, as chosen on the command line. Spelled by its name
/// everywhere (see `crate::named`); `help` says what each one is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "&'static str")]
pub enum TrackerKind {
    #[default]
    None,
    Mprotect,
    Uffd,
    DirtyLog,
}

crate::named::named_impls!(TrackerKind);

impl crate::named::Named for TrackerKind {
    const WHAT: &'static str = "tracker";
    const ALL: &'static [TrackerKind] = &[
        TrackerKind::None,
        TrackerKind::Mprotect,
        TrackerKind::Uffd,
        TrackerKind::DirtyLog,
    ];

    fn name(self) -> &'static str {
        TrackerKind::name(self)
    }

    fn help(self) -> &'static str {
        match self {
            TrackerKind::None => "No tracking: the truth only",
            TrackerKind::Mprotect => {
                "PROT_NONE on the host mapping; faults attributed by decoding the instruction"
            }
            TrackerKind::Uffd => "userfaultfd minor faults on the memfd-backed mapping",
            TrackerKind::DirtyLog => {
                "KVM dirty logging with manual re-protection (sees writes only)"
            }
        }
    }
}

impl TrackerKind {
    /// The one name of each tracker.
    pub fn name(self) -> &'static str {
        match self {
            TrackerKind::None => "none",
            TrackerKind::Mprotect => "mprotect",
            TrackerKind::Uffd => "uffd",
            TrackerKind::DirtyLog => "dirty-log",
        }
    }

    /// True when the mechanism only notices writes.
    pub fn writes_only(self) -> bool {
        self == TrackerKind::DirtyLog
    }

    /// True when another thread of the VMM resolves the guest's tracked
    /// faults (uffd's handler), which `vmm::affinity` puts beside the vCPU.
    pub fn has_handler_thread(self) -> bool {
        self == TrackerKind::Uffd
    }
}

/// The error of a tracker whose handler thread cannot be pinned to `cpu`.
pub fn pin_error(tracker: &'static str, cpu: usize, source: std::io::Error) -> TrackError {
    TrackError::Setup {
        tracker,
        what: format!("cannot pin the fault-handler thread to CPU {cpu}"),
        source: Some(source),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("{op} failed on guest pages {first}..{end}")]
    Syscall {
        op: &'static str,
        first: RamPage,
        end: RamPage,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the {tracker} tracker: {what}")]
    Setup {
        tracker: &'static str,
        what: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("page {page} lies outside guest RAM ({pages} pages)")]
    OutOfRange { page: RamPage, pages: u64 },
    #[error("the {0} tracker's handler thread failed")]
    Handler(
        &'static str,
        // Shared: every later call reports the same first failure.
        #[source] std::sync::Arc<uffd_ram::HandlerError>,
    ),
    #[error(
        "the {tracker} caught {caught} faults in a round where the probe touches {expected} armed pages"
    )]
    Miscount {
        tracker: &'static str,
        caught: u64,
        expected: u64,
    },
    #[error("the {tracker} tracker still has {pages} pages armed: collect before arming again")]
    StillArmed { tracker: &'static str, pages: usize },
    #[error(
        "the {tracker} tracker's record of the guest RAM pages in memory differs from mincore's on {differ} pages (it holds {known}, mincore finds {mincore})"
    )]
    ResidencyDrift {
        tracker: &'static str,
        known: usize,
        mincore: usize,
        differ: usize,
    },
}

/// What a tracker has cost so far. Times are wall-clock microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackerStats {
    /// Tracked touches caught (each cost the guest one fault).
    pub faults: u64,
    /// Time the VMM spent resolving tracked faults, where it can see them
    /// (the mprotect EFAULT path, the uffd handler); 0 where the kernel
    /// resolves them alone (dirty log).
    pub fault_service_us: f64,
    /// Time spent in `arm` and in `collect`.
    pub arm_us: f64,
    pub collect_us: f64,
    /// Mechanism-specific counters (unattributed faults, string
    /// instructions, ...), reported in summary.json's tracker_stats.
    pub counters: BTreeMap<String, u64>,
}

/// One invalidation mechanism. Used from two threads: the sampler arms and
/// collects; the vCPU thread (or a handler thread) records touches.
///
/// The cycle is `arm(pages)`, the guest runs, `collect()`. `collect`
/// returns the armed pages touched since `arm` and leaves no page armed, so
/// pages never chosen again stop costing the guest anything beyond, for
/// uffd, one untracked fault on their next touch (it leaves untouched pages
/// unmapped, see uffd.rs).
pub trait Tracker: Send + Sync {
    fn kind(&self) -> TrackerKind;
    /// Invalidates `pages` (sorted, unique). Pages still armed from an
    /// earlier cycle are an error of the caller: `collect` first.
    fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError>;
    /// The armed pages the guest touched since `arm` (sorted), and disarms
    /// every page still armed.
    fn collect(&self) -> Result<Vec<RamPage>, TrackError>;
    /// How many armed pages were touched so far in this cycle, without
    /// ending it (mechanisms that learn touches only on collect return 0).
    fn touched_so_far(&self) -> usize;
    fn stats(&self) -> TrackerStats;
    /// The hook the vCPU loop calls on a memory fault (mprotect only).
    fn fault_handler(self: Arc<Self>) -> Option<Arc<dyn FaultHandler>> {
        None
    }
    /// Where reclaim evicts to and the handler restores from (uffd only:
    /// restoring needs the guest's next touch as a missing fault).
    fn reclaim_port(self: Arc<Self>) -> Option<Arc<dyn crate::coordinate::reclaim::ReclaimPort>> {
        None
    }
    /// Pins the thread that resolves the guest's faults, if the tracker
    /// has one, to `cpu` (see `vmm::affinity`); `Ok(false)` without one.
    fn pin_handler(&self, _cpu: usize) -> std::io::Result<bool> {
        Ok(false)
    }
    /// The RAM pages in the memfd behind guest RAM (what `mincore` on the
    /// RAM mapping reports), when the tracker sees every page arrive: the
    /// uffd tracker, whose handler fills every hole. `None` for the
    /// others, whose callers ask `mincore`, at a cost per page of RAM.
    fn resident(&self) -> Result<Option<page_bits::PageBits>, TrackError> {
        Ok(None)
    }
}

/// Splits sorted pages into maximal runs of consecutive pages, as
/// `(first, count)`: one syscall per run instead of one per page. Lazy, so
/// that the mprotect tracker's fault path allocates nothing for it.
pub fn runs(pages: &[RamPage]) -> impl Iterator<Item = (RamPage, u64)> + '_ {
    let mut rest = pages;
    std::iter::from_fn(move || {
        let &first = rest.first()?;
        let n = 1 + rest
            .windows(2)
            .take_while(|w| w[0].checked_add(1) == Some(w[1]))
            .count();
        rest = &rest[n..];
        Some((first, n as u64))
    })
}

/// Creates the tracker `kind` for a booted machine (`None` for no tracking).
pub fn create(
    kind: TrackerKind,
    machine: &crate::vmm::machine::Machine,
) -> Result<Option<Arc<dyn Tracker>>, TrackError> {
    Ok(match kind {
        TrackerKind::None => None,
        TrackerKind::Mprotect => Some(mprotect::MprotectTracker::new(machine.memory())?),
        TrackerKind::Uffd => Some(uffd::UffdTracker::new(machine.memory())?),
        TrackerKind::DirtyLog => Some(dirty_log::DirtyLogTracker::new(&machine.vm)?),
    })
}

/// Checks what every tracker must refuse: a page past the end of RAM
/// (`ram_pages` pages) and a second `arm` before `collect`; then that it
/// arms again after a collect.
#[cfg(test)]
pub(crate) fn assert_rejects_bad_arms(t: &dyn Tracker, name: &str, ram_pages: u64) {
    assert!(matches!(
        t.arm(&[1, ram_pages]),
        Err(TrackError::OutOfRange { page, pages }) if page == ram_pages && pages == ram_pages
    ));
    t.arm(&[1]).expect("arm");
    assert!(matches!(
        t.arm(&[2]),
        Err(TrackError::StillArmed { tracker, pages: 1 }) if tracker == name
    ));
    t.collect().expect("collect");
    t.arm(&[2]).expect("arm after collect");
    t.collect().expect("collect");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_names_parse_print_and_serialize_through_one_table() {
        crate::named::tests::check_table::<TrackerKind>();
        assert_eq!(TrackerKind::DirtyLog.to_string(), "dirty-log");
        assert_eq!("uffd".parse::<TrackerKind>(), Ok(TrackerKind::Uffd));
        assert!("dirty_log".parse::<TrackerKind>().is_err());
    }

    #[test]
    fn runs_coalesce_consecutive_pages() {
        let all = |pages: &[RamPage]| runs(pages).collect::<Vec<_>>();
        assert_eq!(all(&[]), vec![]);
        assert_eq!(all(&[5]), vec![(5, 1)]);
        assert_eq!(all(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 2), (10, 1)]);
        // Repeats and the top of the page range end a run without panicking.
        assert_eq!(all(&[4, 4, 5]), vec![(4, 1), (4, 2)]);
        assert_eq!(all(&[u64::MAX - 1, u64::MAX]), vec![(u64::MAX - 1, 2)]);
    }
}
