//! How long a thread was ready to run but waited for a host CPU: the
//! kernel's `run_delay` (`/proc/thread-self/schedstat`, second field, in
//! nanoseconds), which VMware calls a vCPU's ready time.
//!
//! A vCPU thread's wall time splits into time on a CPU (the guest running,
//! or KVM working for it), time blocked (a tracked touch waiting for the
//! uffd handler, a hold at a boundary) and ready time, the host giving the
//! CPU to someone else. summary.json reports the last
//! (`tracker_stats.vcpu_ready_s`) so that a reader can tell a run that
//! shared its CPUs from one that had them: with four VMs on two cores,
//! each vCPU waits for about half of the run.

use std::time::Duration;

/// The ready time in one `schedstat` line, `<on-cpu ns> <run_delay ns>
/// <timeslices>`. `None` for anything else.
pub fn parse_ready(text: &str) -> Option<Duration> {
    let mut fields = text.split_ascii_whitespace();
    let _on_cpu: u64 = fields.next()?.parse().ok()?;
    let delay: u64 = fields.next()?.parse().ok()?;
    let _slices: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_nanos(delay))
}

/// The calling thread's ready time since it started; `None` where the
/// kernel does not report it (built without scheduler statistics).
pub fn thread_ready() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_ready(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_field_is_the_ready_time() {
        assert_eq!(
            parse_ready("123456789 2500000000 42\n"),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn anything_but_three_numbers_is_unknown() {
        assert_eq!(parse_ready(""), None);
        assert_eq!(parse_ready("1 2"), None);
        assert_eq!(parse_ready("1 x 3"), None);
        assert_eq!(parse_ready("-1 2 3"), None);
    }

    #[test]
    fn this_thread_has_a_ready_time_here() {
        // These hosts' kernels keep scheduler statistics; a kernel without
        // them has no file, and the run reports the ready time unknown.
        if std::path::Path::new("/proc/thread-self/schedstat").exists() {
            assert!(thread_ready().is_some());
        }
    }
}
