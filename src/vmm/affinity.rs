//! Where a one-vCPU guest and its fault handler run: on one CPU, together.
//!
//! A uffd-tracked touch is a round trip between two threads: the vCPU
//! thread blocks in the kernel's fault path, the handler thread wakes,
//! installs the page and wakes the vCPU again. Left to the scheduler, the
//! two wake each other across CPUs: the woken thread goes to the idle CPU,
//! which on these machines (themselves VMs) means an inter-processor
//! interrupt to a halted virtual CPU of the host, twice per touch, which on
//! this machine nearly doubles the cost of a tracked touch (`kvm-wss bench
//! placement` measures both side by side). On one CPU
//! the two hand over by a local context switch: the vCPU thread sleeps, the
//! handler runs, the vCPU thread runs again. The handler only has work
//! while the vCPU waits, so sharing the CPU costs the guest nothing else.
//!
//! With more than one vCPU the handler serves them all, and pinning them
//! to one CPU would serialise the guest; they stay with the scheduler.

use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::thread::JoinHandle;

/// Where the vCPU and the fault handler of a guest run (`--cpu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// With one vCPU and a handler thread (uffd, or reclaim), both on the
    /// CPU kvm-wss is running on when the guest starts; else free.
    #[default]
    Auto,
    /// Left to the scheduler.
    Free,
    /// With one vCPU: the vCPU and the handler on this CPU.
    Cpu(usize),
}

impl Placement {
    /// The spelling `--cpu` takes and the equivalent command prints.
    pub fn spelling(&self) -> String {
        match self {
            Placement::Auto => "auto".into(),
            Placement::Free => "free".into(),
            Placement::Cpu(c) => c.to_string(),
        }
    }
}

impl std::str::FromStr for Placement {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Placement, Self::Err> {
        match s {
            "auto" => Ok(Placement::Auto),
            "free" => Ok(Placement::Free),
            n => n.parse().map(Placement::Cpu),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    #[error("--cpu {cpu}: this process may only run on CPUs {allowed:?}")]
    NotAllowed { cpu: usize, allowed: Vec<usize> },
    #[error("--cpu {cpu} pins a guest of one vCPU; this one has {vcpus}")]
    ManyVcpus { cpu: usize, vcpus: u64 },
    #[error("cannot read which CPUs this process may run on")]
    Query(#[source] io::Error),
    #[error("cannot pin the {what} thread to CPU {cpu}")]
    Pin {
        what: &'static str,
        cpu: usize,
        #[source]
        source: io::Error,
    },
}

/// The CPU a guest's vCPU and handler go on, if any: the rule behind
/// [`Placement`], given the guest's vCPUs, whether a handler thread serves
/// its faults, the CPU the caller runs on and the CPUs it may use.
pub fn choose(
    placement: Placement,
    vcpus: u64,
    has_handler: bool,
    current: usize,
    allowed: &[usize],
) -> Result<Option<usize>, AffinityError> {
    match placement {
        Placement::Free => Ok(None),
        Placement::Auto => Ok((vcpus == 1 && has_handler && allowed.len() > 1).then_some(current)),
        Placement::Cpu(cpu) if vcpus != 1 => Err(AffinityError::ManyVcpus { cpu, vcpus }),
        Placement::Cpu(cpu) if !allowed.contains(&cpu) => Err(AffinityError::NotAllowed {
            cpu,
            allowed: allowed.to_vec(),
        }),
        Placement::Cpu(cpu) => Ok(Some(cpu)),
    }
}

/// Refuses a placement that cannot work here, whatever the tracker: a CPU
/// this process may not use, or a CPU for a guest of several vCPUs.
pub fn check(placement: Placement, vcpus: u64) -> Result<(), AffinityError> {
    match placement {
        Placement::Cpu(_) => {
            let allowed = allowed_cpus().map_err(AffinityError::Query)?;
            choose(placement, vcpus, true, 0, &allowed).map(|_| ())
        }
        Placement::Auto | Placement::Free => Ok(()),
    }
}

/// [`choose`] for the calling thread, on this machine.
pub fn choose_here(
    placement: Placement,
    vcpus: u64,
    has_handler: bool,
) -> Result<Option<usize>, AffinityError> {
    if placement == Placement::Free {
        return Ok(None);
    }
    let allowed = allowed_cpus().map_err(AffinityError::Query)?;
    let current = current_cpu().map_err(AffinityError::Query)?;
    choose(placement, vcpus, has_handler, current, &allowed)
}

/// The CPU the calling thread is running on.
pub fn current_cpu() -> io::Result<usize> {
    // SAFETY: no arguments; returns a CPU number or -1 with errno set.
    let cpu = unsafe { libc::sched_getcpu() };
    usize::try_from(cpu).map_err(|_| io::Error::last_os_error())
}

/// The CPUs the calling thread may run on, ascending.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: fills the set we own, of the size we pass; pid 0 is the
    // calling thread.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads bit `c` of the set, `c` below its size.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// A set of one CPU.
fn only(cpu: usize) -> io::Result<libc::cpu_set_t> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sets bit `cpu` of the set we own, checked above to lie in it.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    Ok(set)
}

/// Pins the thread behind `handle` to `cpu`. The handle is borrowed, so the
/// thread has not been joined and its pthread_t is still valid.
pub fn pin<T>(handle: &JoinHandle<T>, cpu: usize) -> io::Result<()> {
    let set = only(cpu)?;
    // SAFETY: the pthread_t of a thread not yet joined (we borrow its
    // handle), and a set we own, of the size we pass.
    let r = unsafe {
        libc::pthread_setaffinity_np(
            handle.as_pthread_t(),
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        )
    };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// [`pin`] for a thread that may already be gone (`None`); `Ok(false)`
/// then.
pub fn pin_if_running<T>(handle: Option<&JoinHandle<T>>, cpu: usize) -> io::Result<bool> {
    handle.map_or(Ok(false), |h| pin(h, cpu).map(|()| true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pins_a_one_vcpu_guest_with_a_handler_where_the_caller_runs() {
        let two = [0, 1];
        assert_eq!(
            choose(Placement::Auto, 1, true, 1, &two).ok(),
            Some(Some(1))
        );
        // No handler thread to share the CPU with, more than one vCPU, or
        // a single allowed CPU: nothing to gain.
        assert_eq!(choose(Placement::Auto, 1, false, 1, &two).ok(), Some(None));
        assert_eq!(choose(Placement::Auto, 2, true, 1, &two).ok(), Some(None));
        assert_eq!(choose(Placement::Auto, 1, true, 0, &[0]).ok(), Some(None));
        assert_eq!(choose(Placement::Free, 1, true, 0, &two).ok(), Some(None));
    }

    #[test]
    fn an_explicit_cpu_must_be_allowed_and_the_guest_have_one_vcpu() {
        let two = [0, 1];
        assert_eq!(
            choose(Placement::Cpu(0), 1, false, 1, &two).ok(),
            Some(Some(0))
        );
        assert!(matches!(
            choose(Placement::Cpu(5), 1, true, 0, &two),
            Err(AffinityError::NotAllowed { cpu: 5, .. })
        ));
        assert!(matches!(
            choose(Placement::Cpu(1), 3, true, 0, &two),
            Err(AffinityError::ManyVcpus { cpu: 1, vcpus: 3 })
        ));
    }

    #[test]
    fn placements_parse_and_print_alike() {
        for p in [Placement::Auto, Placement::Free, Placement::Cpu(3)] {
            assert_eq!(p.spelling().parse::<Placement>(), Ok(p));
        }
        assert!("-1".parse::<Placement>().is_err());
        assert!("many".parse::<Placement>().is_err());
    }

    #[test]
    fn a_thread_pinned_to_an_allowed_cpu_runs_there() {
        let allowed = allowed_cpus().expect("affinity");
        let cpu = *allowed.last().expect("some CPU");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _ = rx.recv();
            current_cpu().expect("cpu")
        });
        pin(&h, cpu).expect("pin");
        tx.send(()).expect("send");
        assert_eq!(h.join().expect("join"), cpu);
        assert!(only(1 << 20).is_err());
    }
}
