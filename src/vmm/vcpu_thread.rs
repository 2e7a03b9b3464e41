//! The vCPU thread: runs the guest, handles its exits, and stops cleanly
//! when asked.
//!
//! Stopping a vCPU that runs natively needs a signal: `KVM_RUN` only returns
//! on an exit. The stopper sets a flag and sends a real-time signal (whose
//! handler does nothing) until the thread has left its loop; repeating the
//! signal closes the race where it lands just before `KVM_RUN` is entered.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use super::exit::{Action, ExitState, Stop, handle_exit};
use super::memory::GuestMemory;
use super::vcpu::Vcpu;

/// Resolves a fault on tracked memory (the mprotect tracker).
pub trait FaultHandler: Send + Sync {
    /// The guest faulted; `gpa` is the address when the kernel gave it.
    /// Returns once the access can be retried. A handler that cannot make
    /// the access succeed (nothing of its own to restore) must return an
    /// error rather than Ok, or the guest would fault on it forever: only
    /// the handler can tell a new fault from the same one again, since
    /// consecutive faults on fresh pages are normal under exhaustive
    /// tracking.
    fn on_memory_fault(&self, vcpu: &Vcpu, gpa: Option<u64>) -> Result<(), String>;

    /// Whether the handler reads the vCPU's registers on a fault: the loop
    /// then has KVM hand them over at every exit (`Vcpu::exit_registers`).
    fn wants_registers(&self) -> bool {
        false
    }
}

/// Called on the vCPU thread at each `sync` hypercall, guest paused.
pub type SyncHook = Box<dyn FnMut(u64) + Send>;

/// How the vCPU loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuEnd {
    Guest(Stop),
    /// Stopped on request (duration reached, Ctrl-C).
    Stopped,
    Failed(String),
}

/// What the vCPU thread hands back when it ends.
#[derive(Debug, Clone)]
pub struct VcpuReport {
    pub end: VcpuEnd,
    pub exits: ExitState,
    /// CPU time of the vCPU thread (guest time included).
    pub thread_cpu_s: f64,
}

pub struct VcpuThread {
    handle: JoinHandle<VcpuReport>,
    stop: Arc<AtomicBool>,
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

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
        mut vcpu: Vcpu,
        memory: Arc<GuestMemory>,
        start: Instant,
        faults: Option<Arc<dyn FaultHandler>>,
        mut sync: Option<SyncHook>,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> Result<VcpuThread, std::io::Error> {
        install_kick_handler()?;
        if faults.as_ref().is_some_and(|f| f.wants_registers()) && !vcpu.enable_sync_regs() {
            log::debug!("KVM offers no sync registers: faults read registers by ioctl");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name("vcpu0".into()).spawn(move || {
            let mut exits = ExitState::default();
            let read = |addr: u64, len: u64| memory.read(addr, len).ok();
            let end = loop {
                if stop_flag.load(Ordering::Acquire) {
                    break VcpuEnd::Stopped;
                }
                let exit = match vcpu.run() {
                    Ok(e) => e,
                    Err(e) => break VcpuEnd::Failed(crate::error_chain(&e)),
                };
                match handle_exit(&exit, &mut exits, &read, start.elapsed().as_secs_f64()) {
                    Action::Resume | Action::Kicked => {}
                    Action::Sync(v) => {
                        if let Some(hook) = sync.as_mut() {
                            hook(v);
                        }
                    }
                    Action::MemoryFault(gpa) => {
                        let Some(handler) = faults.as_ref() else {
                            break VcpuEnd::Failed(
                                "KVM_RUN failed with EFAULT: guest memory is unreachable and no tracker protects it".into(),
                            );
                        };
                        if let Err(why) = handler.on_memory_fault(&vcpu, gpa) {
                            break VcpuEnd::Failed(why);
                        }
                    }
                    Action::Stop(s) => break VcpuEnd::Guest(s),
                }
            };
            let report = VcpuReport { end, exits, thread_cpu_s: thread_cpu_s() };
            on_end();
            report
        })?;
        Ok(VcpuThread { handle, stop })
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the guest (if it still runs) and returns the thread's report.
    pub fn stop(self) -> VcpuReport {
        self.stop.store(true, Ordering::Release);
        while !self.handle.is_finished() {
            // An error means the thread is already gone.
            let _ = self.handle.kill(kick_signal());
            std::thread::sleep(Duration::from_millis(1));
        }
        match self.handle.join() {
            Ok(report) => report,
            Err(_) => VcpuReport {
                end: VcpuEnd::Failed("the vCPU thread panicked".into()),
                exits: ExitState::default(),
                thread_cpu_s: 0.0,
            },
        }
    }
}
