//! The hypervisor: one VM with one or more vCPUs running a guest program
//! at CPL 3.

pub mod affinity;
pub mod doorbell;
pub mod exit;
pub mod hold;
pub mod kvm;
pub mod layout;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod paging;
pub mod schedstat;
pub mod vcpu;
pub mod vcpu_group;
pub mod vcpu_thread;
pub mod vm;
