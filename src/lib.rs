//! kvm-wss: boot tiny guest programs on KVM and estimate their working-set
//! size by sampled page invalidation.

pub mod estimate;
