//! kvm-wss: boot tiny guest programs on KVM and estimate their working-set
//! size by sampled page invalidation.

pub mod analysis;
pub mod app;
pub mod bench;
pub mod calibrate;
pub mod catalog;
pub mod cli;
pub mod compare;
pub mod config;
pub mod coordinate;
pub mod estimate;
pub mod guests;
pub mod memlimit;
pub mod named;
pub mod plot;
pub mod record;
pub mod replay;
pub mod report;
pub mod residency;
pub mod run;
pub mod run_table;
pub mod sampler;
pub mod study;
pub mod sweep;
pub mod track;
pub mod truth;
pub mod vmm;
pub mod work_queue;

/// Formats an error and its chain of causes on one line: `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !s.ends_with(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = e.source();
    }
    s
}
