//! How busy the host was around a benchmark: /proc/loadavg before and
//! after, and the one rule that calls a benchmark's figures quiet, which
//! every benchmark that reports load uses.

use serde::Serialize;

/// The benchmark's own vCPU thread keeps one CPU busy while it runs, so
/// the load read after it includes about this much of its own.
pub const OWN_LOAD: f64 = 1.0;

/// /proc/loadavg's three averages (1, 5, 15 min); NaN where unreadable.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    parse_load(&text)
}

fn parse_load(text: &str) -> [f64; 3] {
    let mut it = text
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(f64::NAN));
    [0; 3].map(|_| it.next().unwrap_or(f64::NAN))
}

/// The host's CPUs, as the scheduler offers them to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Quiet: the 1-minute load of everything but the benchmark stayed below
/// half the CPUs, before it started and when it ended (less
/// [`OWN_LOAD`] then). The figures are then the machine's, not its
/// neighbours'. An unreadable load is never quiet.
pub fn is_quiet(before: [f64; 3], after: [f64; 3], cpus: usize) -> bool {
    let half = cpus.max(1) as f64 / 2.0;
    before[0] < half && after[0] - OWN_LOAD < half
}

/// The load around one benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HostLoad {
    pub cpus: usize,
    /// /proc/loadavg (1, 5, 15 min) before and after.
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    /// See [`is_quiet`].
    pub quiet: bool,
}

impl HostLoad {
    /// The sentence every benchmark's table ends with: "Load average 0.5
    /// before, 1.2 after, on 2 CPUs: quiet."
    pub fn sentence(&self) -> String {
        format!(
            "Load average {:.1} before, {:.1} after, on {} CPUs: {}.",
            self.load_before[0],
            self.load_after[0],
            self.cpus,
            if self.quiet { "quiet" } else { "not quiet" }
        )
    }
}

/// Starts watching: read the load now, and again at [`LoadWatch::finish`].
pub struct LoadWatch {
    before: [f64; 3],
}

impl LoadWatch {
    pub fn start() -> LoadWatch {
        LoadWatch {
            before: load_average(),
        }
    }

    pub fn finish(self) -> HostLoad {
        let (after, cpus) = (load_average(), cpus());
        HostLoad {
            cpus,
            load_before: self.before,
            load_after: after,
            quiet: is_quiet(self.before, after, cpus),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_averages_and_nan_for_garbage() {
        assert_eq!(parse_load("0.50 1.25 2.00 1/234 5678\n"), [0.5, 1.25, 2.0]);
        let bad = parse_load("x");
        assert!(bad.iter().all(|v| v.is_nan()));
    }

    #[test]
    fn quiet_leaves_out_the_benchmarks_own_cpu() {
        // 2 CPUs: the others' load must stay below 1.
        assert!(is_quiet([0.9, 0.0, 0.0], [1.9, 0.0, 0.0], 2));
        assert!(!is_quiet([1.0, 0.0, 0.0], [1.5, 0.0, 0.0], 2));
        assert!(!is_quiet([0.2, 0.0, 0.0], [2.0, 0.0, 0.0], 2));
        assert!(!is_quiet([f64::NAN; 3], [0.0; 3], 2));
        assert!(!is_quiet([0.0; 3], [f64::NAN; 3], 2));
    }
}
