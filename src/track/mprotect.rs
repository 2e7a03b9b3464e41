//! The mprotect tracker: arming a page makes its host backing `PROT_NONE`,
//! so the guest's next access to it makes `KVM_RUN` fail with EFAULT.
//!
//! On this project's hosts KVM does not say which address faulted (see
//! kvm-host-notes.md), so the vCPU loop hands each fault to this tracker,
//! which finds the page from the instruction at RIP: it fetches the code
//! bytes through the guest's page tables, decodes the instruction, walks the
//! page tables again for every page the instruction accesses (its fetch
//! included) and restores the armed ones. When nothing armed can be found the
//! guest must still make progress, so every armed page is restored without
//! being reported as touched.
//!
//! A fault's own cost (a few to a few dozen microseconds inside `KVM_RUN`)
//! is the kernel's; the VMM's share is kept small, as `bench trackers`
//! measures against a floor that knows the faulting page: the registers
//! come from the run page (`Vcpu::exit_registers`), the code from a
//! read-only second mapping of RAM (`CodeView`, no syscall), the decoded
//! instruction from a cache checked against the current bytes
//! (`DecodeCache`), and each page is walked once.
//!
//! Every attributed fault removes at least one page from the armed set and
//! every fallback empties it, so a cycle ends after at most one fault per
//! armed page plus two: the fallback, and one retry of a fault that may
//! have raced with `collect` on another thread. A fault that persists
//! after that is not the tracker's and ends the run.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use wss_abi::{PAGE_SIZE, RAM_BASE};

use super::code_view::{Code, CodeFetchError, CodeView};
use super::decode::{self, AccessKind, DecodeCache, MemAccess, SegmentBases};
use super::page_bits::PageBits;
use super::{RamPage, TrackError, Tracker, TrackerKind, TrackerStats, runs};
use crate::vmm::memory::GuestMemory;
use crate::vmm::paging::{self, WalkError};
use crate::vmm::vcpu::{Vcpu, VcpuError};
use crate::vmm::vcpu_thread::{FaultError, FaultHandler};

const NAME: &str = "mprotect";

/// Why the tracker could not make a faulting access retryable; the vCPU
/// loop then ends the run with it.
#[derive(Debug, thiserror::Error)]
pub enum MprotectFaultError {
    #[error("mprotect tracker")]
    Registers(#[source] VcpuError),
    #[error("mprotect tracker")]
    Restore(#[source] TrackError),
    #[error("mprotect tracker fallback")]
    Fallback(#[source] TrackError),
    #[error(
        "KVM_RUN keeps failing with EFAULT although the mprotect tracker has no page armed, \
         so the fault is not the tracker's ({0})"
    )]
    NotOurs(String),
}

/// Fallbacks logged at warn level per run; later ones are only counted.
const MAX_LOGGED_FALLBACKS: u64 = 10;

/// Counter names in `TrackerStats::counters`.
mod counter {
    /// Faults for which KVM reported the guest-physical address.
    pub const KERNEL_GPA: &str = "kernel_gpa";
    /// Faults whose instruction accesses more than one page: one access
    /// crossing a page boundary, or operands on different pages (`movs`).
    pub const SPLIT_ACCESSES: &str = "split_accesses";
    /// Faults on movs/stos/lods/cmps/scas/ins/outs: each element that enters
    /// another armed page faults again, so one instruction may cost several.
    pub const STRING_OPS: &str = "string_ops";
    /// Faults on push/pop/call/ret/enter/leave and friends.
    pub const STACK_OPS: &str = "stack_ops";
    /// Faults whose instruction was fetched from an armed page.
    pub const CODE_FETCHES: &str = "code_fetches";
    /// RIP did not translate or its bytes lie outside guest memory.
    pub const CODE_UNREADABLE: &str = "code_unreadable";
    /// The bytes at RIP are no instruction iced-x86 can resolve.
    pub const DECODE_FAILURES: &str = "decode_failures";
    /// Accessed pages the guest's page tables do not map.
    pub const TRANSLATION_FAILURES: &str = "translation_failures";
    /// Faults that named no armed page (any of the reasons above, or an
    /// access that simply is not to an armed page).
    pub const UNATTRIBUTED: &str = "unattributed";
    /// Unattributed faults resolved by restoring every armed page.
    pub const FALLBACK_RESTORES: &str = "fallback_restores";
    /// Pages restored by fallbacks, hence never reported.
    pub const FALLBACK_PAGES: &str = "fallback_pages";
    /// Unattributed faults with nothing armed, retried once per cycle.
    pub const STALE_FAULTS: &str = "stale_faults";
    /// Faults on a page another vCPU's fault restored meanwhile: the two
    /// faulted together, and the later one only needs a retry.
    pub const RACED_FAULTS: &str = "raced_faults";

    pub const ALL: [&str; 13] = [
        KERNEL_GPA,
        SPLIT_ACCESSES,
        STRING_OPS,
        STACK_OPS,
        CODE_FETCHES,
        CODE_UNREADABLE,
        DECODE_FAILURES,
        TRANSLATION_FAILURES,
        UNATTRIBUTED,
        FALLBACK_RESTORES,
        FALLBACK_PAGES,
        STALE_FAULTS,
        RACED_FAULTS,
    ];
}

/// What one fault's accesses say about the armed pages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Armed RAM pages the accesses cover, sorted: the pages to restore and
    /// report as touched. Empty when the fault cannot be attributed.
    pub restore: Vec<RamPage>,
    /// Accessed linear pages that did not translate.
    pub untranslated: u64,
    /// Distinct linear pages the data accesses cover.
    pub data_pages: usize,
    /// Whether the instruction fetch covers an armed page.
    pub fetch_armed: bool,
}

/// The pure attribution step: the armed RAM pages that the data accesses
/// and the instruction fetch (linear ranges) cover. `translate` maps a
/// linear address to a guest-physical one. Each page is walked once (a
/// fetch from a page the data also uses, rarely, twice), and the usual
/// single data access allocates nothing but the result.
pub fn attribute(
    data: &[MemAccess],
    fetch: Option<&MemAccess>,
    translate: impl Fn(u64) -> Result<u64, WalkError>,
    armed: impl Fn(RamPage) -> bool,
) -> Attribution {
    let mut out = Attribution::default();
    let check = |linear_page: u64, out: &mut Attribution| match translate(linear_page << 12) {
        Ok(gpa) => match ram_page(gpa).filter(|&p| armed(p)) {
            Some(page) => {
                out.restore.push(page);
                true
            }
            None => false,
        },
        Err(_) => {
            out.untranslated += 1;
            false
        }
    };
    if let [one] = data {
        // The pages of one access are distinct already.
        for page in decode::access_pages(one) {
            out.data_pages += 1;
            check(page, &mut out);
        }
    } else {
        let pages = decode::pages_touched(data);
        out.data_pages = pages.len();
        for page in pages {
            check(page, &mut out);
        }
    }
    for page in fetch.into_iter().flat_map(decode::access_pages) {
        if check(page, &mut out) {
            out.fetch_armed = true;
        }
    }
    if out.restore.len() > 1 {
        out.restore.sort_unstable();
        out.restore.dedup();
    }
    out
}

/// The RAM page holding guest-physical `gpa`, if it is at or above RAM_BASE
/// (callers check membership in the armed set, which holds RAM pages only).
fn ram_page(gpa: u64) -> Option<RamPage> {
    gpa.checked_sub(RAM_BASE).map(|off| off / PAGE_SIZE)
}

/// Sets the host protection of RAM pages `first..first + count`:
/// `PROT_NONE` when `armed`, read-write otherwise. One syscall, no
/// bookkeeping (the benchmark's floor uses it bare).
pub(crate) fn protect(
    memory: &GuestMemory,
    first: RamPage,
    count: u64,
    armed: bool,
) -> Result<(), TrackError> {
    let pages = memory.layout().ram_pages();
    if first.checked_add(count).is_none_or(|end| end > pages) {
        return Err(TrackError::OutOfRange {
            page: first.saturating_add(count).saturating_sub(1),
            pages,
        });
    }
    let (prot, op) = if armed {
        (libc::PROT_NONE, "mprotect(PROT_NONE)")
    } else {
        (
            libc::PROT_READ | libc::PROT_WRITE,
            "mprotect(PROT_READ|PROT_WRITE)",
        )
    };
    let addr = memory.ram_host_addr() + (first * PAGE_SIZE) as usize;
    // SAFETY: the range lies inside the RAM mapping (checked above), which
    // `memory` keeps mapped. The VMM never dereferences that mapping once
    // tracking starts (it reads RAM through the memfd), so no Rust
    // reference is invalidated; KVM reports the guest's accesses to the
    // range as EFAULT.
    let rc = unsafe {
        libc::mprotect(
            addr as *mut libc::c_void,
            (count * PAGE_SIZE) as usize,
            prot,
        )
    };
    if rc != 0 {
        return Err(TrackError::Syscall {
            op,
            first,
            end: first + count,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A fault as diagnosed from the vCPU state, before the armed set is
/// consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// KVM named the guest-physical address.
    Gpa(u64),
    /// The instruction at RIP and what it accesses.
    Insn {
        cr3: u64,
        rip: u64,
        mnemonic: Arc<str>,
        kind: AccessKind,
        /// The data accesses followed by the instruction fetch.
        accesses: Vec<MemAccess>,
    },
    /// The code at RIP could not be fetched.
    Unreadable { rip: u64, why: String },
    /// The code at RIP could not be decoded.
    Undecodable { rip: u64, why: String },
}

impl Fault {
    /// For logs and for the message that ends a run.
    fn describe(&self) -> String {
        match self {
            Fault::Gpa(gpa) => format!("fault at guest-physical {gpa:#x} (reported by KVM)"),
            Fault::Insn {
                rip,
                mnemonic,
                accesses,
                ..
            } => {
                let data = &accesses[..accesses.len().saturating_sub(1)];
                let ranges: Vec<String> = data
                    .iter()
                    .map(|a| format!("{:#x}+{}", a.addr, a.len))
                    .collect();
                format!(
                    "{mnemonic} at rip {rip:#x} accessing [{}]",
                    ranges.join(", ")
                )
            }
            Fault::Unreadable { rip, why } => {
                format!("cannot fetch the code at rip {rip:#x}: {why}")
            }
            Fault::Undecodable { rip, why } => format!("cannot decode at rip {rip:#x}: {why}"),
        }
    }
}

struct State {
    /// Pages still `PROT_NONE`.
    armed: PageBits,
    /// Armed pages restored by attributed faults since `arm`.
    touched: Vec<RamPage>,
    /// Between `arm` and `collect`.
    cycle_open: bool,
    /// Bumped by `arm` and `collect`: a fault that finds nothing armed is
    /// retried once per epoch, in case `collect` restored its page after
    /// KVM_RUN failed but before the fault reached this tracker.
    epoch: u64,
    stale_epoch: Option<u64>,
    stats: TrackerStats,
    /// Instructions seen faulting before.
    decoder: DecodeCache,
}

/// `PROT_NONE` invalidation of guest RAM pages, with faults attributed by
/// decoding the faulting instruction.
pub struct MprotectTracker {
    memory: Arc<GuestMemory>,
    code: CodeView,
    ram_pages: u64,
    /// The armed set is also what tells which mprotect state a page is in,
    /// so it changes only together with the syscall, under this lock.
    state: Mutex<State>,
}

impl MprotectTracker {
    pub fn new(memory: &Arc<GuestMemory>) -> Result<Arc<MprotectTracker>, TrackError> {
        let ram_host = memory.ram_host_addr();
        let ram_size = memory.layout().ram_size;
        if !(ram_host as u64).is_multiple_of(PAGE_SIZE) || !ram_size.is_multiple_of(PAGE_SIZE) {
            return Err(TrackError::Setup {
                tracker: NAME,
                what: format!(
                    "guest RAM at host {ram_host:#x} of {ram_size:#x} bytes is not page-aligned"
                ),
                source: None,
            });
        }
        let counters = counter::ALL.iter().map(|c| (c.to_string(), 0)).collect();
        Ok(Arc::new(MprotectTracker {
            memory: Arc::clone(memory),
            code: CodeView::new(memory, NAME)?,
            ram_pages: ram_size / PAGE_SIZE,
            state: Mutex::new(State {
                armed: PageBits::new(ram_size / PAGE_SIZE),
                touched: Vec::new(),
                cycle_open: false,
                epoch: 0,
                stale_epoch: None,
                stats: TrackerStats {
                    counters,
                    ..TrackerStats::default()
                },
                decoder: DecodeCache::default(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state stays
        // consistent between statements anyway.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the protection of RAM pages `first..first + count`, which the
    /// callers have checked to lie inside guest RAM.
    fn protect(&self, first: RamPage, count: u64, armed: bool) -> Result<(), TrackError> {
        protect(&self.memory, first, count, armed)
    }

    /// Restores `pages` (sorted) and takes them out of the armed set.
    fn restore(&self, st: &mut State, pages: &[RamPage]) -> Result<(), TrackError> {
        for (first, count) in runs(pages) {
            self.protect(first, count, false)?;
            for p in first..first + count {
                st.armed.remove(p);
            }
        }
        Ok(())
    }

    /// Reads the vCPU state and decodes the faulting instruction. Only a
    /// failing register ioctl is an error; bad guest state is a diagnosis.
    fn diagnose(
        &self,
        vcpu: &Vcpu,
        decoder: &mut DecodeCache,
    ) -> Result<Fault, MprotectFaultError> {
        let (regs, sregs) = vcpu
            .exit_registers()
            .map_err(MprotectFaultError::Registers)?;
        let rip = regs.rip;
        let cr3 = sregs.cr3;
        let code = match self.fetch_code(cr3, rip) {
            Ok(code) => code,
            Err(e) => {
                return Ok(Fault::Unreadable {
                    rip,
                    why: crate::error_chain(&e),
                });
            }
        };
        let seg = SegmentBases {
            fs: sregs.fs.base,
            gs: sregs.gs.base,
        };
        let d = match decoder.decode_accesses(code.as_slice(), rip, &regs, &seg) {
            Ok(d) => d,
            Err(e) => {
                return Ok(Fault::Undecodable {
                    rip,
                    why: e.to_string(),
                });
            }
        };
        let mut accesses = d.accesses;
        accesses.push(MemAccess {
            addr: rip,
            len: d.len as u64,
            read: true,
            write: false,
            conditional: false,
        });
        Ok(Fault::Insn {
            cr3,
            rip,
            mnemonic: d.mnemonic,
            kind: d.kind,
            accesses,
        })
    }

    /// The code bytes at `rip` (see [`CodeView::fetch`]).
    fn fetch_code(&self, cr3: u64, rip: u64) -> Result<Code, CodeFetchError> {
        self.code.fetch(&self.memory, cr3, rip)
    }

    fn translate(&self, cr3: u64, gva: u64) -> Result<u64, WalkError> {
        paging::translate(cr3, gva, |a| self.memory.read_u64(a))
    }

    /// Resolves a diagnosed fault against the armed set.
    #[cfg(test)]
    fn resolve(&self, fault: Fault) -> Result<(), MprotectFaultError> {
        self.resolve_locked(&mut self.lock(), &fault)
    }

    /// `resolve` under the caller's lock.
    /// Whether a fault that names no armed page names one that an earlier
    /// fault of this cycle restored. With several vCPUs, two can fault on
    /// the same page at once: the first restores and reports it, and the
    /// second, handled after it, needs nothing but a retry. (Restoring
    /// every armed page instead, as for a fault nobody can explain, would
    /// blind the tracker for the rest of the cycle.) Never true with one
    /// vCPU, which retries its access before it can fault again.
    fn raced(&self, st: &State, fault: &Fault) -> bool {
        let restored = |p: RamPage| st.touched.contains(&p);
        match fault {
            Fault::Gpa(gpa) => ram_page(*gpa).is_some_and(restored),
            Fault::Insn { cr3, accesses, .. } => {
                let (data, fetch) = match accesses.split_last() {
                    Some((fetch, data)) => (data, Some(fetch)),
                    None => (&accesses[..], None),
                };
                let walk = |gva| self.translate(*cr3, gva);
                !attribute(data, fetch, walk, restored).restore.is_empty()
            }
            Fault::Unreadable { .. } | Fault::Undecodable { .. } => false,
        }
    }

    fn resolve_locked(&self, st: &mut State, fault: &Fault) -> Result<(), MprotectFaultError> {
        let stats = &mut st.stats;
        let restore = match fault {
            Fault::Gpa(gpa) => {
                bump(stats, counter::KERNEL_GPA, 1);
                let page = ram_page(*gpa).filter(|&p| st.armed.contains(p));
                page.into_iter().collect()
            }
            Fault::Insn {
                cr3,
                kind,
                accesses,
                ..
            } => {
                match kind {
                    AccessKind::String => bump(stats, counter::STRING_OPS, 1),
                    AccessKind::Stack => bump(stats, counter::STACK_OPS, 1),
                    AccessKind::Plain | AccessKind::Other => {}
                }
                let (data, fetch) = match accesses.split_last() {
                    Some((fetch, data)) => (data, Some(fetch)),
                    None => (&accesses[..], None),
                };
                let walk = |gva| self.translate(*cr3, gva);
                let a = attribute(data, fetch, walk, |p| st.armed.contains(p));
                if a.data_pages > 1 {
                    bump(stats, counter::SPLIT_ACCESSES, 1);
                }
                bump(stats, counter::TRANSLATION_FAILURES, a.untranslated);
                if a.fetch_armed {
                    bump(stats, counter::CODE_FETCHES, 1);
                }
                a.restore
            }
            Fault::Unreadable { .. } => {
                bump(stats, counter::CODE_UNREADABLE, 1);
                Vec::new()
            }
            Fault::Undecodable { .. } => {
                bump(stats, counter::DECODE_FAILURES, 1);
                Vec::new()
            }
        };

        if !restore.is_empty() {
            self.restore(st, &restore)
                .map_err(MprotectFaultError::Restore)?;
            if log::log_enabled!(log::Level::Trace) {
                log::trace!("mprotect: {} restored pages {restore:?}", fault.describe());
            }
            st.touched.extend_from_slice(&restore);
            return Ok(());
        }

        if self.raced(st, fault) {
            bump(&mut st.stats, counter::RACED_FAULTS, 1);
            return Ok(());
        }
        bump(&mut st.stats, counter::UNATTRIBUTED, 1);
        if st.armed.is_empty() {
            if st.stale_epoch == Some(st.epoch) {
                return Err(MprotectFaultError::NotOurs(fault.describe()));
            }
            st.stale_epoch = Some(st.epoch);
            bump(&mut st.stats, counter::STALE_FAULTS, 1);
            return Ok(());
        }
        let all = st.armed.to_vec();
        self.restore(st, &all)
            .map_err(MprotectFaultError::Fallback)?;
        bump(&mut st.stats, counter::FALLBACK_RESTORES, 1);
        bump(&mut st.stats, counter::FALLBACK_PAGES, all.len() as u64);
        let fallbacks = st.stats.counters.get(counter::FALLBACK_RESTORES).copied();
        if fallbacks.is_some_and(|n| n <= MAX_LOGGED_FALLBACKS) {
            log::warn!(
                "mprotect tracker: unattributed fault ({}); restored all {} armed pages",
                fault.describe(),
                all.len()
            );
        }
        Ok(())
    }
}

fn bump(stats: &mut TrackerStats, name: &str, by: u64) {
    // The names are all present from `new`; only the lookup runs per fault,
    // and not even that for the zero adds of the common case.
    if by == 0 {
        return;
    }
    match stats.counters.get_mut(name) {
        Some(v) => *v += by,
        None => {
            stats.counters.insert(name.to_string(), by);
        }
    }
}

impl Tracker for MprotectTracker {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Mprotect
    }

    fn arm(&self, pages: &[RamPage]) -> Result<(), TrackError> {
        let start = Instant::now();
        if let Some(&page) = pages.iter().find(|&&p| p >= self.ram_pages) {
            return Err(TrackError::OutOfRange {
                page,
                pages: self.ram_pages,
            });
        }
        {
            let mut st = self.lock();
            if st.cycle_open {
                return Err(TrackError::StillArmed {
                    tracker: NAME,
                    pages: st.armed.len(),
                });
            }
            st.cycle_open = true;
            st.epoch += 1;
        }
        // One lock per run, not for the whole set: the vCPU thread may be
        // waiting to resolve a fault on a page armed by an earlier run.
        let mut result = Ok(());
        for (first, count) in runs(pages) {
            let mut st = self.lock();
            if let Err(e) = self.protect(first, count, true) {
                result = Err(e);
                break;
            }
            for p in first..first + count {
                st.armed.insert(p);
            }
        }
        self.lock().stats.arm_us += start.elapsed().as_secs_f64() * 1e6;
        result
    }

    fn collect(&self) -> Result<Vec<RamPage>, TrackError> {
        let start = Instant::now();
        let still_armed = self.lock().armed.to_vec();
        let mut result = Ok(());
        for (first, count) in runs(&still_armed) {
            let mut st = self.lock();
            // Restoring a page a fault restored meanwhile is harmless.
            if let Err(e) = self.restore(&mut st, &(first..first + count).collect::<Vec<_>>()) {
                result = result.and(Err(e));
            }
        }
        let mut st = self.lock();
        st.cycle_open = false;
        st.epoch += 1;
        let mut touched = std::mem::take(&mut st.touched);
        st.stats.collect_us += start.elapsed().as_secs_f64() * 1e6;
        drop(st);
        result?;
        touched.sort_unstable();
        touched.dedup();
        Ok(touched)
    }

    fn touched_so_far(&self) -> usize {
        self.lock().touched.len()
    }

    fn stats(&self) -> TrackerStats {
        self.lock().stats.clone()
    }

    fn fault_handler(self: Arc<Self>) -> Option<Arc<dyn FaultHandler>> {
        Some(self)
    }
}

impl FaultHandler for MprotectTracker {
    /// Every fault needs RIP, the general registers, CR3 and the FS/GS
    /// bases.
    fn wants_registers(&self) -> bool {
        true
    }

    fn on_memory_fault(&self, vcpu: &Vcpu, gpa: Option<u64>) -> Result<(), FaultError> {
        let start = Instant::now();
        // One lock per fault, for decoding, resolving and counting it: only
        // arm and collect compete for it, and they wait a few microseconds.
        let mut st = self.lock();
        let fault = match gpa {
            Some(gpa) => Ok(Fault::Gpa(gpa)),
            None => self.diagnose(vcpu, &mut st.decoder),
        };
        let result = fault.and_then(|f| self.resolve_locked(&mut st, &f));
        st.stats.faults += 1;
        st.stats.fault_service_us += start.elapsed().as_secs_f64() * 1e6;
        Ok(result?)
    }
}

impl Drop for MprotectTracker {
    /// Leaves no page inaccessible behind: the mapping outlives the tracker
    /// when the VM keeps running untracked.
    fn drop(&mut self) {
        let all = self.lock().armed.to_vec();
        let mut st = self.lock();
        if let Err(e) = self.restore(&mut st, &all) {
            log::warn!("mprotect tracker: {}", crate::error_chain(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::vmm::layout::Layout;

    const P: u64 = PAGE_SIZE;

    fn page_addr(page: RamPage) -> u64 {
        RAM_BASE + page * P
    }

    fn access(addr: u64, len: u64, write: bool) -> MemAccess {
        MemAccess {
            addr,
            len,
            read: !write,
            write,
            conditional: false,
        }
    }

    fn armed(pages: &[RamPage]) -> impl Fn(RamPage) -> bool {
        let set: BTreeSet<RamPage> = pages.iter().copied().collect();
        move |p| set.contains(&p)
    }

    fn identity(gva: u64) -> Result<u64, WalkError> {
        Ok(gva)
    }

    #[test]
    fn single_page_access_restores_its_page() {
        let a = attribute(
            &[access(page_addr(5) + 8, 8, false)],
            None,
            identity,
            armed(&[4, 5, 9]),
        );
        assert_eq!(
            a,
            Attribution {
                restore: vec![5],
                untranslated: 0,
                data_pages: 1,
                fetch_armed: false,
            }
        );
    }

    #[test]
    fn split_access_restores_both_armed_pages() {
        let split = [access(page_addr(6) - 4, 8, true)];
        let a = attribute(&split, None, identity, armed(&[5, 6]));
        assert_eq!((a.restore, a.data_pages), (vec![5, 6], 2));
        // One armed, one not: only the armed one is restored.
        let a = attribute(&split, None, identity, armed(&[6, 8]));
        assert_eq!(a.restore, vec![6]);
    }

    #[test]
    fn operands_on_two_pages_and_the_fetch() {
        // movs-like: destination, source, then the fetch across pages 1/2.
        let data = [
            access(page_addr(20), 1, true),
            access(page_addr(30) + 7, 1, false),
        ];
        let fetch = access(page_addr(1) + 0xffe, 4, false);
        let a = attribute(&data, Some(&fetch), identity, armed(&[1, 2, 20, 31]));
        assert_eq!(a.restore, vec![1, 2, 20]);
        assert_eq!(a.data_pages, 2);
        assert!(a.fetch_armed);
        // The same with the code not armed.
        let a = attribute(&data, Some(&fetch), identity, armed(&[20, 31]));
        assert_eq!(a.restore, vec![20]);
        assert!(!a.fetch_armed);
        // Code that reads its own armed page: restored once, and a fetch.
        let own = [access(page_addr(1) + 0x800, 8, false)];
        let a = attribute(
            &own,
            Some(&access(page_addr(1), 4, false)),
            identity,
            armed(&[1]),
        );
        assert_eq!((a.restore, a.fetch_armed), (vec![1], true));
    }

    #[test]
    fn nothing_armed_is_unattributed() {
        let a = attribute(
            &[access(page_addr(5), 8, false)],
            None,
            identity,
            armed(&[4, 6]),
        );
        assert!(a.restore.is_empty() && !a.fetch_armed);
        assert_eq!((a.untranslated, a.data_pages), (0, 1));
        // Addresses below RAM (metadata, doorbells) are never RAM pages.
        let a = attribute(&[access(0x20_0000, 8, true)], None, identity, armed(&[0]));
        assert!(a.restore.is_empty());
        let a = attribute(&[], None, identity, armed(&[0]));
        assert_eq!(a, Attribution::default());
    }

    #[test]
    fn translation_failures_are_counted_and_skipped() {
        // Page 7 is unmapped; the translation moves everything else up 2 pages.
        let walk = |gva: u64| {
            if gva == page_addr(7) {
                Err(WalkError::NotPresent { gva, level: 1 })
            } else {
                Ok(gva + 2 * P)
            }
        };
        let accesses = [access(page_addr(8) - 8, 16, false)];
        let a = attribute(&accesses, None, walk, armed(&[7, 9, 10]));
        assert_eq!(a.restore, vec![10]);
        assert_eq!(a.untranslated, 1);
        let fetch = access(page_addr(40), 4, false);
        let a = attribute(
            &accesses[..],
            Some(&fetch),
            |gva| Err(WalkError::NonCanonical(gva)),
            armed(&[7]),
        );
        assert_eq!(
            a,
            Attribution {
                restore: vec![],
                untranslated: 3,
                data_pages: 2,
                fetch_armed: false,
            }
        );
    }

    /// 4 MiB of guest memory with the VMM's identity page tables, and a
    /// tracker on it. No KVM needed: mprotect acts on the host mapping.
    fn machine() -> (Arc<GuestMemory>, Arc<MprotectTracker>) {
        let layout = Layout::new(4 << 20, RAM_BASE + 0x1000, 1 << 20).expect("layout");
        let memory = Arc::new(GuestMemory::new(&layout).expect("memory"));
        let tables =
            paging::identity_map(layout.page_tables, layout.ram_end(), layout.small_pages())
                .expect("tables");
        memory
            .write(tables.cr3, &tables.bytes)
            .expect("write tables");
        let tracker = MprotectTracker::new(&memory).expect("tracker");
        (memory, tracker)
    }

    /// Permissions of the host mapping at `addr`, from /proc/self/maps.
    fn host_perms(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next().expect("range"), f.next().expect("perms"));
            let (lo, hi) = range.split_once('-').expect("range");
            let lo = usize::from_str_radix(lo, 16).expect("hex");
            let hi = usize::from_str_radix(hi, 16).expect("hex");
            if (lo..hi).contains(&addr) {
                return perms.to_string();
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    fn counter(t: &MprotectTracker, name: &str) -> u64 {
        t.stats().counters[name]
    }

    #[test]
    fn arm_protects_runs_and_collect_restores_them() {
        let (memory, t) = machine();
        let host = |p: u64| memory.ram_host_addr() + (p * P) as usize;
        t.arm(&[2, 3, 7]).expect("arm");
        assert_eq!(host_perms(host(2)), "---s");
        assert_eq!(host_perms(host(3)), "---s");
        assert_eq!(host_perms(host(4)), "rw-s");
        assert_eq!(host_perms(host(7)), "---s");
        // The VMM still reads armed pages, through the memfd.
        assert_eq!(memory.read(page_addr(3), 8).expect("read"), vec![0; 8]);
        assert_eq!(t.collect().expect("collect"), Vec::<RamPage>::new());
        for p in [2, 3, 7] {
            assert_eq!(host_perms(host(p)), "rw-s");
        }
        let s = t.stats();
        assert_eq!(s.faults, 0);
        assert!(s.arm_us > 0.0 && s.collect_us > 0.0);
    }

    #[test]
    fn arm_rejects_out_of_range_and_a_second_arm() {
        let (_memory, t) = machine();
        crate::track::assert_rejects_bad_arms(t.as_ref(), "mprotect", 1024);
    }

    #[test]
    fn kernel_gpa_fault_restores_and_reports_its_page() {
        let (memory, t) = machine();
        t.arm(&[300, 301, 302]).expect("arm");
        t.resolve(Fault::Gpa(page_addr(301) + 0x10))
            .expect("resolve");
        assert_eq!(t.touched_so_far(), 1);
        let host = memory.ram_host_addr() + (301 * P) as usize;
        assert_eq!(host_perms(host), "rw-s");
        assert_eq!(host_perms(host + P as usize), "---s");
        assert_eq!(t.collect().expect("collect"), vec![301]);
        assert_eq!(t.touched_so_far(), 0);
        assert_eq!(counter(&t, counter::KERNEL_GPA), 1);
        assert_eq!(counter(&t, counter::UNATTRIBUTED), 0);
    }

    #[test]
    fn a_second_vcpus_fault_on_a_restored_page_only_retries() {
        let (memory, t) = machine();
        let cr3 = memory.layout().page_tables;
        t.arm(&[300, 301, 302]).expect("arm");
        // Two vCPUs faulted on page 301 together; the first is handled.
        t.resolve(Fault::Gpa(page_addr(301))).expect("first");
        // The second, by address and by instruction: a retry, nothing
        // restored behind the tracker's back.
        t.resolve(Fault::Gpa(page_addr(301) + 8)).expect("second");
        let load = vec![access(page_addr(301) + 16, 8, false)];
        t.resolve(insn(cr3, AccessKind::Plain, load, page_addr(0)))
            .expect("third");
        assert_eq!(counter(&t, counter::RACED_FAULTS), 2);
        assert_eq!(counter(&t, counter::FALLBACK_RESTORES), 0);
        let host = memory.ram_host_addr() + (302 * P) as usize;
        assert_eq!(host_perms(host), "---s", "the other pages stay armed");
        // Page 302's first touch is still seen.
        t.resolve(Fault::Gpa(page_addr(302))).expect("302");
        assert_eq!(t.collect().expect("collect"), vec![301, 302]);
    }

    fn insn(cr3: u64, kind: AccessKind, data: Vec<MemAccess>, rip: u64) -> Fault {
        let mut accesses = data;
        accesses.push(access(rip, 4, false));
        Fault::Insn {
            cr3,
            rip,
            mnemonic: "test".into(),
            kind,
            accesses,
        }
    }

    #[test]
    fn decoded_faults_walk_the_page_tables_and_count_kinds() {
        let (memory, t) = machine();
        let cr3 = memory.layout().page_tables;
        let rip = page_addr(0) + 0x100;
        t.arm(&[0, 10, 11, 12, 40]).expect("arm");
        // A split store over 10/11, fetched from armed page 0.
        let split = vec![access(page_addr(11) - 4, 8, true)];
        t.resolve(insn(cr3, AccessKind::Plain, split, rip))
            .expect("resolve");
        // A string instruction whose destination is armed, source is not.
        let movs = vec![
            access(page_addr(12), 1, true),
            access(page_addr(13), 1, false),
        ];
        t.resolve(insn(cr3, AccessKind::String, movs, rip))
            .expect("resolve");
        // A push into armed page 40.
        let push = vec![access(page_addr(41) - 8, 8, true)];
        t.resolve(insn(cr3, AccessKind::Stack, push, rip))
            .expect("resolve");
        assert_eq!(t.touched_so_far(), 5);
        assert_eq!(t.collect().expect("collect"), vec![0, 10, 11, 12, 40]);
        assert_eq!(counter(&t, counter::SPLIT_ACCESSES), 2);
        assert_eq!(counter(&t, counter::STRING_OPS), 1);
        assert_eq!(counter(&t, counter::STACK_OPS), 1);
        assert_eq!(counter(&t, counter::CODE_FETCHES), 1);
        assert_eq!(counter(&t, counter::UNATTRIBUTED), 0);
    }

    #[test]
    fn unattributed_fault_falls_back_then_a_persistent_one_ends_the_run() {
        let (memory, t) = machine();
        let cr3 = memory.layout().page_tables;
        t.arm(&[20, 21, 50]).expect("arm");
        // An access to an unarmed page: restore everything, report nothing.
        let miss = vec![access(page_addr(30), 8, false)];
        t.resolve(insn(cr3, AccessKind::Plain, miss.clone(), page_addr(0)))
            .expect("fallback");
        let host = memory.ram_host_addr() + (50 * P) as usize;
        assert_eq!(host_perms(host), "rw-s");
        assert_eq!(t.touched_so_far(), 0);
        assert_eq!(counter(&t, counter::FALLBACK_RESTORES), 1);
        assert_eq!(counter(&t, counter::FALLBACK_PAGES), 3);
        // Nothing armed any more: one retry, in case of a race with collect...
        t.resolve(Fault::Undecodable {
            rip: 1,
            why: "x".into(),
        })
        .expect("stale retry");
        assert_eq!(counter(&t, counter::STALE_FAULTS), 1);
        // ...but the same fault again is not the tracker's.
        let err = t
            .resolve(Fault::Unreadable {
                rip: 2,
                why: "y".into(),
            })
            .expect_err("persistent fault");
        assert!(matches!(err, MprotectFaultError::NotOurs(_)), "{err}");
        assert!(err.to_string().contains("no page armed"), "{err}");
        assert_eq!(counter(&t, counter::UNATTRIBUTED), 3);
        assert_eq!(counter(&t, counter::DECODE_FAILURES), 1);
        assert_eq!(counter(&t, counter::CODE_UNREADABLE), 1);
        assert_eq!(t.collect().expect("collect"), Vec::<RamPage>::new());
        // A new cycle allows a retry again.
        t.arm(&[]).expect("arm");
        t.resolve(Fault::Gpa(0x10))
            .expect("stale retry in a new cycle");
        t.collect().expect("collect");
    }

    #[test]
    fn code_fetch_crosses_pages_and_reads_armed_code() {
        let (memory, t) = machine();
        let cr3 = memory.layout().page_tables;
        let code: Vec<u8> = (1..=15).collect();
        let rip = page_addr(3) - 5;
        memory.write(rip, &code).expect("write code");
        t.arm(&[2, 3]).expect("arm");
        assert_eq!(t.fetch_code(cr3, rip).expect("fetch").as_slice(), &code[..]);
        // Near the top of RAM the second page lies outside guest memory.
        let last = page_addr(1024) - 3;
        assert_eq!(t.fetch_code(cr3, last).expect("fetch").as_slice().len(), 3);
        t.collect().expect("collect");
    }

    #[test]
    fn hostile_code_addresses_and_tables_are_errors_not_panics() {
        let (memory, t) = machine();
        let cr3 = memory.layout().page_tables;
        // Non-canonical, unmapped, and mapped-but-in-no-slot RIPs.
        for rip in [0x8000_0000_0000_0000, 1 << 40, 0x10, u64::MAX] {
            assert!(t.fetch_code(cr3, rip).is_err(), "rip {rip:#x}");
        }
        // CR3 pointing at garbage: RAM filled with 0xff makes every entry
        // present and huge, pointing far outside guest memory.
        memory.write(page_addr(8), &[0xff; 4096]).expect("write");
        assert!(t.fetch_code(page_addr(8), RAM_BASE).is_err());
        assert!(t.fetch_code(u64::MAX, RAM_BASE).is_err());
        // Attributing through such tables finds nothing and falls back.
        t.arm(&[9]).expect("arm");
        let bad = vec![access(page_addr(9), 8, false)];
        t.resolve(insn(page_addr(8), AccessKind::Plain, bad, RAM_BASE))
            .expect("fallback");
        assert_eq!(counter(&t, counter::FALLBACK_RESTORES), 1);
        assert_eq!(counter(&t, counter::TRANSLATION_FAILURES), 2);
        assert_eq!(t.collect().expect("collect"), Vec::<RamPage>::new());
    }

    #[test]
    fn drop_restores_armed_pages() {
        let (memory, t) = machine();
        t.arm(&[5]).expect("arm");
        drop(t);
        let host = memory.ram_host_addr() + (5 * P) as usize;
        assert_eq!(host_perms(host), "rw-s");
    }
}
