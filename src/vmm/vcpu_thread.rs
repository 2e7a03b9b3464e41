//! The vCPU thread: runs the guest, handles its exits, holds it at the
//! sampler's boundaries, and stops cleanly when asked.
//!
//! A vCPU that runs natively leaves `KVM_RUN` only on an exit, so holding or
//! stopping it needs a kick: the asker sets its flag, then sends a real-time
//! signal whose handler sets `kvm_run.immediate_exit` (as Firecracker does).
//! KVM checks that flag at every entry, so the kick works whether the signal
//! lands in the guest or just before the thread enters it; the thread
//! clears the flag before it looks at the requests, so no kick is lost.

use std::cell::Cell;
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::Instant;

use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use super::exit::{Action, ExitState, Stop, handle_exit};
use super::hold::{Held, Hold, Step, step_at};
use super::memory::GuestMemory;
use super::vcpu::{Vcpu, VcpuError};

/// Why a fault handler could not make a faulting access retryable. The
/// handler is a trait object supplied from above this layer (a tracker, a
/// benchmark floor), so its error is boxed here; its cause chain is kept
/// for `main` to print.
pub type FaultError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Resolves a fault on tracked memory (the mprotect tracker).
pub trait FaultHandler: Send + Sync {
    /// The guest faulted; `gpa` is the address when the kernel gave it.
    /// Returns once the access can be retried. A handler that cannot make
    /// the access succeed (nothing of its own to restore) must return an
    /// error rather than Ok, or the guest would fault on it forever: only
    /// the handler can tell a new fault from the same one again, since
    /// consecutive faults on fresh pages are normal under exhaustive
    /// tracking.
    fn on_memory_fault(&self, vcpu: &Vcpu, gpa: Option<u64>) -> Result<(), FaultError>;

    /// Whether the handler reads the vCPU's registers on a fault: the loop
    /// then has KVM hand them over at every exit (`Vcpu::exit_registers`).
    fn wants_registers(&self) -> bool {
        false
    }
}

/// Called on the vCPU thread at each `sync` hypercall, guest paused.
pub type SyncHook = Box<dyn FnMut(u64) + Send>;

/// Why the vCPU loop failed.
#[derive(Debug, thiserror::Error)]
pub enum VcpuLoopError {
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error("KVM_RUN failed with EFAULT: guest memory is unreachable and no tracker protects it")]
    Unprotected,
    #[error(transparent)]
    Fault(FaultError),
    #[error("the vCPU thread panicked")]
    Panicked,
}

/// How the vCPU loop ended.
#[derive(Debug)]
pub enum VcpuEnd {
    Guest(Stop),
    /// Stopped on request (duration reached, Ctrl-C).
    Stopped,
    Failed(VcpuLoopError),
}

/// What the vCPU thread hands back when it ends.
#[derive(Debug)]
pub struct VcpuReport {
    pub end: VcpuEnd,
    pub exits: ExitState,
    /// CPU time of the vCPU thread (guest time included).
    pub thread_cpu_s: f64,
    /// Time the vCPU thread waited for a host CPU (see `vmm::schedstat`),
    /// seconds; `None` where the kernel does not say.
    pub ready_s: Option<f64>,
}

pub struct VcpuThread {
    handle: JoinHandle<VcpuReport>,
    hold: Arc<Hold>,
}

thread_local! {
    /// The `immediate_exit` byte of the vCPU this thread runs, if any.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A const-initialised thread local with no destructor: no allocation,
    // safe in a signal handler.
    let flag = IMMEDIATE_EXIT.with(Cell::get);
    if !flag.is_null() {
        // SAFETY: the vCPU thread publishes the pointer while its vCPU
        // lives and clears it before the vCPU is dropped; the handler runs
        // on that same thread, so the byte is valid here.
        unsafe { flag.write_volatile(1) };
    }
}

/// Publishes (or, with null, withdraws) the byte the kick sets.
fn publish_immediate_exit(flag: *mut u8) {
    IMMEDIATE_EXIT.with(|c| c.set(flag));
}

/// Clears the kick flag before the thread looks at its requests.
fn clear_immediate_exit(flag: *mut u8) {
    // SAFETY: `flag` is the live vCPU's run-page byte (see `on_kick`).
    unsafe { flag.write_volatile(0) };
}

fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

fn install_kick_handler() -> Result<(), std::io::Error> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()));
    });
    result
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

impl VcpuThread {
    /// Starts the guest on a new thread named `vcpu0`. `on_end` runs on that
    /// thread when the loop ends, whatever the reason.
    pub fn spawn(
        vcpu: Vcpu,
        memory: Arc<GuestMemory>,
        start: Instant,
        faults: Option<Arc<dyn FaultHandler>>,
        sync: Option<SyncHook>,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> Result<VcpuThread, std::io::Error> {
        VcpuThread::spawn_indexed(
            vcpu,
            0,
            memory,
            start,
            faults,
            sync,
            Box::new(move |_| on_end()),
        )
    }

    /// [`VcpuThread::spawn`] for vCPU `index` (thread `vcpu<index>`);
    /// `on_end` is told how the loop ended.
    pub fn spawn_indexed(
        mut vcpu: Vcpu,
        index: u64,
        memory: Arc<GuestMemory>,
        start: Instant,
        faults: Option<Arc<dyn FaultHandler>>,
        mut sync: Option<SyncHook>,
        on_end: Box<dyn FnOnce(&VcpuEnd) + Send>,
    ) -> Result<VcpuThread, std::io::Error> {
        install_kick_handler()?;
        if faults.as_ref().is_some_and(|f| f.wants_registers()) && !vcpu.enable_sync_regs() {
            log::debug!("KVM offers no sync registers: faults read registers by ioctl");
        }
        let hold = Arc::new(Hold::default());
        let shared = Arc::clone(&hold);
        let handle = std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let hold = shared;
                let mut exits = ExitState::default();
                let read = |addr: u64, len: u64| memory.read(addr, len).ok();
                let flag = vcpu.immediate_exit_flag();
                publish_immediate_exit(flag);
                // Inside a finishing copy of an access routine, on the way to a
                // hold (see `vmm::hold`).
                let mut finishing = false;
                let end = loop {
                    clear_immediate_exit(flag);
                    if hold.stopping() {
                        break VcpuEnd::Stopped;
                    }
                    if let Some(forced) = hold.wanted() {
                        let step = if finishing && !forced {
                            None
                        } else if forced {
                            Some(Step::Park)
                        } else {
                            match vcpu.regs() {
                                Ok(r) => Some(step_at(r.rip, &memory.status())),
                                Err(e) => break VcpuEnd::Failed(e.into()),
                            }
                        };
                        match step {
                            None => {}
                            Some(Step::Park) => {
                                finishing = false;
                                if !hold.park() {
                                    break VcpuEnd::Stopped;
                                }
                                continue;
                            }
                            Some(Step::Finish(rip)) => {
                                if let Err(e) = vcpu.set_rip(rip) {
                                    break VcpuEnd::Failed(e.into());
                                }
                                finishing = true;
                            }
                        }
                    }
                    let exit = match vcpu.run() {
                        Ok(e) => e,
                        Err(e) => break VcpuEnd::Failed(e.into()),
                    };
                    match handle_exit(&exit, &mut exits, &read, start.elapsed().as_secs_f64()) {
                        Action::Resume | Action::Kicked => {}
                        Action::Boundary => {
                            // The access is complete: a clean point.
                            if finishing {
                                finishing = false;
                                if hold.wanted().is_some() && !hold.park() {
                                    break VcpuEnd::Stopped;
                                }
                            }
                        }
                        Action::Sleep(nap) => hold.nap(nap),
                        Action::Sync(v) => {
                            if let Some(hook) = sync.as_mut() {
                                hook(v);
                            }
                        }
                        Action::MemoryFault(gpa) => {
                            let Some(handler) = faults.as_ref() else {
                                break VcpuEnd::Failed(VcpuLoopError::Unprotected);
                            };
                            if let Err(why) = handler.on_memory_fault(&vcpu, gpa) {
                                break VcpuEnd::Failed(VcpuLoopError::Fault(why));
                            }
                        }
                        Action::Stop(s) => break VcpuEnd::Guest(s),
                    }
                };
                publish_immediate_exit(std::ptr::null_mut());
                hold.gone();
                let report = VcpuReport {
                    end,
                    exits,
                    thread_cpu_s: thread_cpu_s(),
                    ready_s: super::schedstat::thread_ready().map(|d| d.as_secs_f64()),
                };
                on_end(&report.end);
                report
            })?;
        Ok(VcpuThread { handle, hold })
    }

    /// Holds the guest out of `KVM_RUN` at a clean point (see `vmm::hold`)
    /// until the returned guard is dropped. Returns at once if the guest
    /// has ended.
    pub fn hold(&self) -> Held<'_> {
        self.hold.hold(&|| self.kick())
    }

    /// How many holds had to be taken mid-access (see `vmm::hold`).
    pub fn forced_holds(&self) -> u64 {
        self.hold.forced_holds()
    }

    /// The thread's hold, for holding several vCPUs at once
    /// (`vmm::hold::hold_all`).
    pub(super) fn hold_state(&self) -> &Hold {
        &self.hold
    }

    /// Asks the thread to stop and kicks it, without waiting for it.
    pub(super) fn request_stop(&self) {
        self.hold.stop();
        self.kick();
    }

    pub(super) fn kick(&self) {
        // An error means the thread is already gone.
        let _ = self.handle.kill(kick_signal());
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Pins the vCPU thread to `cpu` (see `vmm::affinity`).
    pub fn pin(&self, cpu: usize) -> std::io::Result<()> {
        super::affinity::pin(&self.handle, cpu)
    }

    /// Stops the guest (if it still runs) and returns the thread's report.
    pub fn stop(self) -> VcpuReport {
        self.request_stop();
        match self.handle.join() {
            Ok(report) => report,
            Err(_) => VcpuReport {
                end: VcpuEnd::Failed(VcpuLoopError::Panicked),
                exits: ExitState::default(),
                thread_cpu_s: 0.0,
                ready_s: None,
            },
        }
    }
}
