//! Real-time scheduling while a benchmark runs.
//!
//! A tracked touch costs a few to a few dozen microseconds and a probe
//! round lasts a few milliseconds, so a single 4 ms time slice taken by
//! another process on the same core can double a round's cost. On a shared
//! two-core machine that happens in about half the rounds and swamps the
//! difference being measured. Under `SCHED_FIFO` the benchmark's threads
//! (the vCPU, the uffd handlers, which inherit the policy from the thread
//! that starts them) are not preempted by ordinary processes; the kernel's
//! real-time throttling still leaves those 5% of every second.

use std::io;

/// The lowest real-time priority: above every ordinary process, below any
/// real-time thread the system relies on.
const PRIORITY: libc::c_int = 1;

/// The calling thread's scheduling before `enter`, restored on drop.
pub struct Realtime {
    policy: libc::c_int,
    param: libc::sched_param,
}

impl Realtime {
    /// Puts the calling thread, and every thread it starts from now on, in
    /// `SCHED_FIFO`. Fails without privilege (`CAP_SYS_NICE`).
    pub fn enter() -> io::Result<Realtime> {
        // SAFETY: queries the calling thread (pid 0); no pointers.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: writes one sched_param through a valid pointer.
        if unsafe { libc::sched_getparam(0, &mut param) } != 0 {
            return Err(io::Error::last_os_error());
        }
        set(libc::SCHED_FIFO, PRIORITY)?;
        Ok(Realtime { policy, param })
    }
}

fn set(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: reads one sched_param through a valid pointer; pid 0 is the
    // calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Realtime {
    fn drop(&mut self) {
        if let Err(e) = set(self.policy, self.param.sched_priority) {
            log::warn!("cannot restore the scheduling policy after the benchmark: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The current policy of the calling thread.
    fn policy() -> libc::c_int {
        // SAFETY: as in `enter`.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[test]
    fn enter_then_drop_restores_the_policy() {
        // Runs on the test's own thread, so the change affects nothing else.
        let before = policy();
        match Realtime::enter() {
            Ok(rt) => {
                assert_eq!(policy(), libc::SCHED_FIFO);
                // A thread started now inherits the policy.
                let child = std::thread::spawn(policy).join().expect("join");
                assert_eq!(child, libc::SCHED_FIFO);
                drop(rt);
                assert_eq!(policy(), before);
            }
            // Unprivileged: nothing changed.
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
                assert_eq!(policy(), before);
            }
        }
    }
}
