//! All the vCPUs of one guest: one [`VcpuThread`] each, held together at
//! every boundary, stopped together, their reports folded into one.
//!
//! Exit semantics: the guest ends when vCPU 0 ends (its `main` returns,
//! it calls `exit`, it crashes). Another vCPU returning from `main` (or
//! calling `exit(0)`) only stops that vCPU; any other end of another vCPU
//! (panic, triple fault, a failure of the VMM) ends the run too, and is
//! what the run reports.

use std::sync::Arc;
use std::time::Instant;

use super::exit::Stop;
use super::hold::{HeldAll, hold_all};
use super::memory::GuestMemory;
use super::vcpu::Vcpu;
use super::vcpu_thread::{FaultHandler, SyncHook, VcpuEnd, VcpuReport, VcpuThread};

/// Called (on a vCPU thread, possibly more than once) when the run should
/// end; see the module's exit semantics.
pub type OnRunEnd = Arc<dyn Fn() + Send + Sync>;

pub struct VcpuGroup {
    /// In index order: vCPU 0 first.
    threads: Vec<VcpuThread>,
}

/// Whether vCPU `index` ending with `end` ends the whole run.
pub fn ends_run(index: usize, end: &VcpuEnd) -> bool {
    index == 0 || !matches!(end, VcpuEnd::Guest(Stop::Exit(0)) | VcpuEnd::Stopped)
}

/// The run's end from every vCPU's, in index order: vCPU 0's unless it was
/// only stopped, else the first other vCPU's end that ends the run, else
/// `Stopped`.
pub fn combined_end(ends: Vec<VcpuEnd>) -> VcpuEnd {
    let mut ends = ends.into_iter().enumerate();
    match ends.next() {
        Some((_, VcpuEnd::Stopped)) | None => {}
        Some((_, end)) => return end,
    }
    ends.find(|(i, e)| ends_run(*i, e))
        .map_or(VcpuEnd::Stopped, |(_, e)| e)
}

/// The vCPUs' mean ready time, seconds; unknown if any vCPU's is.
pub fn mean_ready_s(reports: &[VcpuReport]) -> Option<f64> {
    let all: Option<Vec<f64>> = reports.iter().map(|r| r.ready_s).collect();
    all.filter(|v| !v.is_empty())
        .map(|v| v.iter().sum::<f64>() / v.len() as f64)
}

impl VcpuGroup {
    /// Starts vCPU 0 (`first`, which alone gets the `sync` hook) and the
    /// `others` (indices 1..) on threads of their own.
    pub fn spawn(
        first: Vcpu,
        others: Vec<Vcpu>,
        memory: Arc<GuestMemory>,
        start: Instant,
        faults: Option<Arc<dyn FaultHandler>>,
        sync: Option<SyncHook>,
        on_end: OnRunEnd,
    ) -> Result<VcpuGroup, std::io::Error> {
        let mut threads = Vec::with_capacity(others.len() + 1);
        let mut sync = sync;
        for (index, vcpu) in std::iter::once(first).chain(others).enumerate() {
            let notify = Arc::clone(&on_end);
            let spawned = VcpuThread::spawn_indexed(
                vcpu,
                index as u64,
                Arc::clone(&memory),
                start,
                faults.clone(),
                sync.take(),
                Box::new(move |end| {
                    if ends_run(index, end) {
                        notify();
                    }
                }),
            );
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // Do not leave the started vCPUs running.
                    drop(VcpuGroup { threads }.stop());
                    return Err(e);
                }
            }
        }
        Ok(VcpuGroup { threads })
    }

    /// Pins vCPU 0's thread to `cpu` (see `vmm::affinity`: only a guest
    /// of one vCPU is pinned).
    pub fn pin_first(&self, cpu: usize) -> std::io::Result<()> {
        match self.threads.first() {
            Some(t) => t.pin(cpu),
            None => Ok(()),
        }
    }

    /// How many vCPUs the group runs.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Holds every vCPU at a clean point (see `vmm::hold::hold_all`) until
    /// the returned guard is dropped.
    pub fn hold(&self) -> HeldAll<'_> {
        let kicks: Vec<Box<dyn Fn() + '_>> = self
            .threads
            .iter()
            .map(|t| Box::new(move || t.kick()) as Box<dyn Fn() + '_>)
            .collect();
        let pairs: Vec<(&super::hold::Hold, &dyn Fn())> = self
            .threads
            .iter()
            .zip(&kicks)
            .map(|(t, k)| (t.hold_state(), &**k as &dyn Fn()))
            .collect();
        hold_all(&pairs)
    }

    /// Holds taken mid-access so far, over all vCPUs.
    pub fn forced_holds(&self) -> u64 {
        self.threads.iter().map(VcpuThread::forced_holds).sum()
    }

    /// Stops every vCPU and returns one report: the run's end (see
    /// [`combined_end`]), every vCPU's exits folded into vCPU 0's, and the
    /// CPU time of all the vCPU threads.
    pub fn stop(self) -> VcpuReport {
        // Ask all first, so they stop together rather than one by one.
        for t in &self.threads {
            t.request_stop();
        }
        let reports: Vec<VcpuReport> = self.threads.into_iter().map(VcpuThread::stop).collect();
        let thread_cpu_s = reports.iter().map(|r| r.thread_cpu_s).sum();
        let ready_s = mean_ready_s(&reports);
        let mut ends = Vec::with_capacity(reports.len());
        let mut exits = None;
        for r in reports {
            ends.push(r.end);
            match exits.as_mut() {
                None => exits = Some(r.exits),
                Some(all) => super::exit::ExitState::absorb(all, r.exits),
            }
        }
        VcpuReport {
            end: combined_end(ends),
            exits: exits.unwrap_or_default(),
            thread_cpu_s,
            ready_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::exit::ExitState;
    use crate::vmm::vcpu_thread::VcpuLoopError;

    fn label(end: &VcpuEnd) -> String {
        format!("{end:?}")
    }

    fn report(ready_s: Option<f64>) -> VcpuReport {
        VcpuReport {
            end: VcpuEnd::Stopped,
            exits: ExitState::default(),
            thread_cpu_s: 0.0,
            ready_s,
        }
    }

    #[test]
    fn the_group_ready_time_is_the_vcpus_mean_or_unknown() {
        assert_eq!(
            mean_ready_s(&[report(Some(1.0)), report(Some(3.0))]),
            Some(2.0)
        );
        assert_eq!(mean_ready_s(&[report(Some(1.0)), report(None)]), None);
        assert_eq!(mean_ready_s(&[]), None);
    }

    #[test]
    fn only_vcpu0_or_a_failure_ends_the_run() {
        let exit0 = VcpuEnd::Guest(Stop::Exit(0));
        assert!(ends_run(0, &exit0));
        assert!(ends_run(0, &VcpuEnd::Stopped));
        assert!(!ends_run(1, &exit0), "a worker's return stops only it");
        assert!(!ends_run(3, &VcpuEnd::Stopped));
        assert!(ends_run(2, &VcpuEnd::Guest(Stop::Exit(3))));
        assert!(ends_run(1, &VcpuEnd::Guest(Stop::Panic("boom".into()))));
        assert!(ends_run(1, &VcpuEnd::Failed(VcpuLoopError::Panicked)));
    }

    #[test]
    fn the_run_reports_vcpu0_unless_another_ended_it() {
        let end = combined_end(vec![
            VcpuEnd::Guest(Stop::Exit(0)),
            VcpuEnd::Guest(Stop::Panic("late".into())),
        ]);
        assert_eq!(label(&end), label(&VcpuEnd::Guest(Stop::Exit(0))));
        let end = combined_end(vec![
            VcpuEnd::Stopped,
            VcpuEnd::Guest(Stop::Exit(0)),
            VcpuEnd::Guest(Stop::Panic("boom".into())),
            VcpuEnd::Failed(VcpuLoopError::Panicked),
        ]);
        assert_eq!(
            label(&end),
            label(&VcpuEnd::Guest(Stop::Panic("boom".into())))
        );
        let end = combined_end(vec![VcpuEnd::Stopped, VcpuEnd::Guest(Stop::Exit(0))]);
        assert_eq!(label(&end), label(&VcpuEnd::Stopped));
        assert_eq!(label(&combined_end(Vec::new())), label(&VcpuEnd::Stopped));
    }
}
