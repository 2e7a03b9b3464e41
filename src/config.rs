//! Plain settings for one run, built by the CLI (or a sweep) and read by
//! the VMM, kept apart from the live objects they configure.

use std::path::PathBuf;
use std::time::Duration;

use crate::estimate::{DamonConfig, EstimatorKind, EsxGains, FollowConfig};
use crate::guests::GuestSource;
use crate::track::TrackerKind;
use crate::vmm::paging::GuestPageSize;

/// Default guest RAM.
pub const DEFAULT_MEM: u64 = 512 << 20;
/// Default working-set size handed to the program.
pub const DEFAULT_WSS: u64 = 64 << 20;
/// Default number of pages ESX samples per interval (ESX itself samples 100
/// pages per 30 s; intervals here are shorter, so more samples keep the
/// binomial error near 5% of the domain).
pub const DEFAULT_SAMPLE_PAGES: u64 = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    pub guest: GuestSource,
    pub mem: u64,
    pub wss: u64,
    pub seed: u64,
    pub params: Vec<(String, String)>,
    pub duration: Duration,
    pub interval: Duration,
    pub tracker: TrackerKind,
    pub estimator: EstimatorKind,
    pub sample_pages: u64,
    pub esx: EsxGains,
    pub damon: DamonConfig,
    pub follow: FollowConfig,
    pub warmup_intervals: usize,
    /// Page size of the guest's identity map over RAM.
    pub guest_pages: GuestPageSize,
    /// vCPUs running the program (`--vcpus`, 1 to `wss_abi::MAX_VCPUS`).
    pub vcpus: u64,
    /// Where the vCPU and the fault handler run (`--cpu`).
    pub cpu: crate::vmm::affinity::Placement,
    /// Run the untracked twin first and report the slowdown.
    pub baseline: bool,
    pub out_dir: Option<PathBuf>,
    pub plot: bool,
    /// Print the per-interval table while running.
    pub live: bool,
}

impl RunConfig {
    /// The estimator this run asks for, over a domain of `domain_pages`
    /// (the data pages once the guest is laid out; all of RAM bounds it
    /// before boot).
    pub fn estimator_config(&self, domain_pages: u64) -> crate::estimate::EstimatorConfig {
        crate::estimate::EstimatorConfig {
            kind: self.estimator,
            domain_pages,
            sample_pages: self.sample_pages,
            esx: self.esx,
            damon: self.damon,
            follow: self.follow,
        }
    }

    /// [`RunConfig::estimator_config`] over all of guest RAM: checks before
    /// boot every setting that cannot work on any layout.
    pub fn estimator_config_over_ram(&self) -> crate::estimate::EstimatorConfig {
        self.estimator_config(self.mem / wss_abi::PAGE_SIZE)
    }

    /// The same run without tracking: the baseline twin.
    pub fn untracked(&self) -> RunConfig {
        RunConfig {
            tracker: TrackerKind::None,
            baseline: false,
            plot: false,
            live: false,
            out_dir: None,
            ..self.clone()
        }
    }
}
