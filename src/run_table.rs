//! The table `kvm-wss run` and `kvm-wss replay` print when a run ends.

use std::io::Write;

use crate::analysis::accuracy::TruthColumn;
use crate::analysis::derived::{self, faults_per_s};
use crate::analysis::format::{opt_percent, percent};
use crate::estimate::EstimatorKind;
use crate::report::summary::Summary;
use crate::run::RunOutput;

fn opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.digits$}{unit}"))
}

/// Prints the table a run or a replay shows when it ends: the setting,
/// the accuracy and costs from its summary, what the guest logged and
/// where the outputs are.
pub fn print(out: &RunOutput) -> Result<(), std::io::Error> {
    let s: &Summary = &out.summary;
    let mib = |pages: f64| pages * 4096.0 / (1 << 20) as f64;
    let mut w = std::io::stdout().lock();
    writeln!(
        w,
        "guest {}{}  tracker {}  estimator {}  sample {}  interval {}s  ran {:.1}s ({} intervals, end: {})",
        s.guest,
        if s.vcpus > 1 {
            format!(" on {} vCPUs", s.vcpus)
        } else {
            String::new()
        },
        s.tracker.name(),
        s.estimator.map_or("-", EstimatorKind::name),
        s.sample_pages
            .map_or("-".to_string(), |n| format!("{n} pages")),
        s.interval_s,
        s.duration_s,
        s.intervals,
        s.end
    )?;
    if s.scored_intervals == 0 {
        // A mean over no interval is no measurement, not 0 pages.
        writeln!(
            w,
            "true WSS   not measured: no full interval after the {} warm-up interval(s) \
             (ran {:.1}s, interval {}s)",
            s.warmup_intervals, s.duration_s, s.interval_s
        )?;
    } else {
        writeln!(
            w,
            "true WSS   mean {:.0} pages ({:.1} MiB), written {:.0} pages{}",
            s.true_wss_mean_pages,
            mib(s.true_wss_mean_pages),
            s.true_wss_write_mean_pages,
            if s.compared_against == TruthColumn::Writes {
                "  (dirty-log sees writes: compared with written pages)"
            } else {
                ""
            }
        )?;
    }
    if s.estimator.is_some() {
        writeln!(
            w,
            "measured   mean {} pages  mape {}  mae {} pages  bias {} pages  in band {}  lag up {}  lag down {} intervals",
            opt(s.est_wss_mean_pages, "", 0),
            opt_percent(s.mape),
            opt(s.mae_pages, "", 0),
            opt(s.bias_pages, "", 0),
            opt_percent(s.band_coverage),
            opt(s.lag_up_intervals, "", 1),
            opt(s.lag_down_intervals, "", 1),
        )?;
        writeln!(
            w,
            "policy     mape {}  lag down {}  ({})",
            opt_percent(s.policy_mape),
            if derived::policy_lag_down_unresolved(s) {
                format!("never within 110% ({} falls)", s.lag_down_events)
            } else {
                format!("{} intervals", opt(s.policy_lag_down_intervals, "", 1))
            },
            s.estimator.map_or("-", EstimatorKind::policy),
        )?;
        writeln!(
            w,
            "cost       {} tracked faults ({}/s)  fault cost {}  arm {:.1} ms  collect {:.1} ms  VMM CPU {:.2} s{}",
            s.tracked_faults.unwrap_or(0),
            opt(faults_per_s(s), "", 0),
            opt(s.fault_cost_us, " us", 1),
            s.arm_us_total / 1e3,
            s.collect_us_total / 1e3,
            s.vmm_cpu_s,
            s.slowdown
                .map_or(String::new(), |x| format!("  slowdown {}", percent(x))),
        )?;
    }
    writeln!(
        w,
        "guest      {} {} ({:.1} M/s){}",
        s.guest_ops,
        if s.op_name.is_empty() {
            "accesses"
        } else {
            &s.op_name
        },
        s.guest_ops_per_s / 1e6,
        s.guest_checksum
            .as_ref()
            .map_or(String::new(), |c| format!("  checksum {c}"))
    )?;
    if let Some(r) = &s.reclaim {
        writeln!(
            w,
            "reclaim    limit {}  resident mean {} max {} pages  evicted {}  refaults {} ({:.1} ms restoring)  store {} pages in {:.1} MiB{}",
            r.limit_pages
                .map_or("none".to_string(), |p| format!("{p} pages")),
            opt(r.resident_mean_pages, "", 0),
            r.resident_max_pages
                .map_or("-".to_string(), |p| p.to_string()),
            r.evicted_pages,
            r.refaults,
            r.refault_us / 1e3,
            r.store_pages,
            r.store_bytes as f64 / (1 << 20) as f64,
            r.compression_ratio
                .map_or(String::new(), |c| format!(" (ratio {c:.1})")),
        )?;
    }
    if !s.guest_results.is_empty() {
        let results: Vec<String> = s
            .guest_results
            .iter()
            .map(|r| format!("{} {}", r.name, r.value))
            .collect();
        writeln!(w, "results    {}", results.join("  "))?;
    }
    // Guest text was escaped when it was read (`vmm::exit`): one line each.
    for line in out.logs.iter().take(5) {
        writeln!(w, "guest log  {line}")?;
    }
    if out.logs.len() > 5 {
        writeln!(w, "guest log  ({} more not shown)", out.logs.len() - 5)?;
    }
    if let Some(dropped) = &out.dropped {
        writeln!(w, "capped     {dropped}")?;
    }
    writeln!(w, "output     {}", out.dir.display())?;
    Ok(())
}
