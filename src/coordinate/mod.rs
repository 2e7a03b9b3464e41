//! Memory coordination across VMs. This part is the per-VM mechanism:
//! a resident limit ([`limit`]), the compressed store evicted pages go to
//! ([`store`]) and the reclaim that evicts the coldest pages above the
//! limit at each boundary ([`reclaim`]); the uffd tracker restores them
//! on the guest's next touch.

pub mod limit;
pub mod reclaim;
pub mod store;
pub mod victims;
