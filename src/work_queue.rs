//! Independent jobs spread over the host's cores: scoped threads, each
//! taking the next job as it frees up, so a slow job does not hold back a
//! fixed share of the others. `compare-estimators` and `sweep --replay`
//! both replay many settings this way.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Runs `work` on every job of `jobs` on as many threads as there are
/// cores (at most one per job) and returns the results in job order.
/// A job not started is `None`: none starts after Ctrl-C
/// ([`crate::run::interrupted`]) or after a result for which `stop`
/// is true.
pub fn run_jobs<J, R, W, S>(jobs: &[J], work: W, stop: S) -> Vec<Option<R>>
where
    J: Sync,
    R: Send,
    W: Fn(&J) -> R + Sync,
    S: Fn(&R) -> bool + Sync,
{
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !crate::run::interrupted() && !stopped.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(n) else {
                        break;
                    };
                    let result = work(job);
                    stopped.fetch_or(stop(&result), Ordering::Relaxed);
                    // A poisoned lock means another worker panicked; its
                    // panic ends the scope, so this result is moot.
                    if let Ok(mut all) = results.lock() {
                        all[n] = Some(result);
                    }
                }
            });
        }
    });
    results.into_inner().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_results_keep_job_order() {
        let jobs: Vec<u64> = (0..100).collect();
        let out = run_jobs(&jobs, |&j| j * j, |_| false);
        let want: Vec<Option<u64>> = jobs.iter().map(|j| Some(j * j)).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn the_queue_stops_after_a_stopping_result() {
        // Every job but the stopping one takes 1 ms: without the stop the
        // queue would run all 10,000 (seconds); with it, the few in flight
        // when job 3 ends finish and nothing else starts.
        let jobs: Vec<u64> = (0..10_000).collect();
        let out = run_jobs(
            &jobs,
            |&j| {
                if j != 3 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                j
            },
            |&r| r == 3,
        );
        assert_eq!(out[3], Some(3));
        let ran = out.iter().filter(|r| r.is_some()).count();
        assert!(ran < 1_000, "{ran} jobs ran");
        assert!(out.iter().skip(ran + 8).all(Option::is_none));
    }

    #[test]
    fn no_jobs_no_results() {
        let out = run_jobs(&[] as &[u8], |_| 1, |_| false);
        assert!(out.is_empty());
    }
}
