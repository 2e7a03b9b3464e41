//! The VM file descriptor: memory slots and, for the dirty-log tracker,
//! manual dirty-log protection.

use std::sync::Arc;

use kvm_bindings::{KVM_MEM_LOG_DIRTY_PAGES, kvm_enable_cap, kvm_userspace_memory_region};
use kvm_ioctls::VmFd;
use wss_abi::{META_BASE, RAM_BASE};

use super::kvm::Kvm;
use super::memory::GuestMemory;

/// Slot of the metadata region (never tracked).
pub const META_SLOT: u32 = 0;
/// Slot of guest RAM (tracked).
pub const RAM_SLOT: u32 = 1;

/// `KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE` and `KVM_DIRTY_LOG_INITIALLY_SET`.
const MANUAL_PROTECT_ENABLE: u64 = 1 << 0;
const INITIALLY_SET: u64 = 1 << 1;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("cannot create the VM")]
    Create(#[source] kvm_ioctls::Error),
    #[error("cannot register memory slot {slot}")]
    Slot {
        slot: u32,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("this KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, which the dirty-log tracker needs")]
    NoManualDirtyLog,
    #[error("cannot enable manual dirty-log protection")]
    EnableManualDirtyLog(#[source] kvm_ioctls::Error),
}

/// How dirty logging is set up on the RAM slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirtyLog {
    Off,
    /// Manual protection; `initially_set` says whether every page started
    /// dirty (so only pages the tracker clears are write-protected).
    Manual {
        initially_set: bool,
    },
}

/// A VM with its memory registered. Field order matters: `fd` is dropped
/// (closing the VM) before `memory` can be unmapped, and the memory is
/// shared with every vCPU for the same reason.
pub struct Vm {
    fd: VmFd,
    dirty_log: DirtyLog,
    memory: Arc<GuestMemory>,
}

impl Vm {
    pub fn new(kvm: &Kvm, memory: Arc<GuestMemory>, want_dirty_log: bool) -> Result<Vm, VmError> {
        let fd = kvm.fd().create_vm().map_err(VmError::Create)?;
        let mut dirty_log = DirtyLog::Off;
        if want_dirty_log {
            let supported =
                fd.check_extension_raw(u64::from(kvm_bindings::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
            if supported <= 0 {
                return Err(VmError::NoManualDirtyLog);
            }
            let initially_set = supported as u64 & INITIALLY_SET != 0;
            let mut cap = kvm_enable_cap {
                cap: kvm_bindings::KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
                ..Default::default()
            };
            cap.args[0] = MANUAL_PROTECT_ENABLE | if initially_set { INITIALLY_SET } else { 0 };
            fd.enable_cap(&cap).map_err(VmError::EnableManualDirtyLog)?;
            dirty_log = DirtyLog::Manual { initially_set };
        }
        let layout = *memory.layout();
        let slots = [
            (
                META_SLOT,
                META_BASE,
                layout.meta_size,
                memory.meta_host_addr(),
                0,
            ),
            (
                RAM_SLOT,
                RAM_BASE,
                layout.ram_size,
                memory.ram_host_addr(),
                if want_dirty_log {
                    KVM_MEM_LOG_DIRTY_PAGES
                } else {
                    0
                },
            ),
        ];
        for (slot, gpa, size, host, flags) in slots {
            let region = kvm_userspace_memory_region {
                slot,
                flags,
                guest_phys_addr: gpa,
                memory_size: size,
                userspace_addr: host as u64,
            };
            // SAFETY: the host range is a live mapping of `size` bytes owned
            // by `memory`, which this Vm keeps alive (and drops after `fd`).
            unsafe { fd.set_user_memory_region(region) }
                .map_err(|source| VmError::Slot { slot, source })?;
        }
        Ok(Vm {
            fd,
            dirty_log,
            memory,
        })
    }

    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    pub fn memory(&self) -> &Arc<GuestMemory> {
        &self.memory
    }

    pub fn dirty_log(&self) -> DirtyLog {
        self.dirty_log
    }
}
