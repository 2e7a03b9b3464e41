//! A VM's resident limit: set by the coordinator, enforced by the VM's sampler at each boundary.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Pages of guest data RAM a VM may keep resident; shared between the
/// coordinator thread that sets it and the VM's sampler that enforces it.
#[derive(Clone, Debug)]
pub struct LimitHandle(Arc<AtomicU64>);

impl LimitHandle {
    /// No limit until one is set.
    pub fn unlimited() -> Self {
        LimitHandle(Arc::new(AtomicU64::new(u64::MAX)))
    }
    /// `None` lifts the limit.
    pub fn set_pages(&self, pages: Option<u64>) {
        self.0.store(pages.unwrap_or(u64::MAX), Ordering::Relaxed);
    }
    pub fn pages(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&p| p != u64::MAX)
    }
}
