//! The vCPU file descriptor: 64-bit user-mode entry state and `KVM_RUN`.
//!
//! The guest starts directly at CPL 3 in long mode, with no guest kernel.
//! On this project's PVM hosts that is the state that runs natively (CPL 0
//! is emulated ~1000x slower), and it is a legal VM-entry state on VT-x and
//! SVM too. Any exception the guest takes therefore becomes a triple fault.

use std::sync::Arc;

use kvm_bindings::{KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::{Cap, SyncReg, VcpuExit, VcpuFd};

use super::exit::Exit;
use super::kvm::Kvm;
use super::layout::Layout;
use super::memory::GuestMemory;
use super::vm::Vm;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_AM: u64 = 1 << 18;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// User code and stack selectors (RPL 3), as a 64-bit OS would use them.
const USER_CS: u16 = 0x33;
const USER_SS: u16 = 0x2b;
const TSS_SELECTOR: u16 = 0x40;

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("cannot create the vCPU")]
    Create(#[source] kvm_ioctls::Error),
    #[error("cannot set the vCPU's {what}")]
    Set {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("cannot read the vCPU's {what}")]
    Get {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("KVM_RUN failed")]
    Run(#[source] kvm_ioctls::Error),
}

/// One vCPU. It holds the guest memory so that the memory cannot be
/// unmapped while this fd (which keeps the VM alive) is open.
pub struct Vcpu {
    fd: VcpuFd,
    _memory: Arc<GuestMemory>,
    /// KVM can copy the registers and special registers into the run page
    /// at every exit (`KVM_CAP_SYNC_REGS`).
    can_sync_regs: bool,
    /// It does so (`enable_sync_regs`).
    sync_regs: bool,
    /// With sync registers, the state KVM stored at the last failed
    /// `KVM_RUN` (the memory faults the mprotect tracker handles).
    fault_regs: Option<(kvm_regs, kvm_sregs)>,
}

/// The `KVM_CAP_SYNC_REGS` fields `exit_registers` needs.
const SYNC_FIELDS: u64 = (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS) as u64;

fn segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 3,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// The entry state: long mode, paging on, CPL 3, flat segments.
pub fn user_mode_sregs(base: &kvm_sregs, layout: &Layout) -> kvm_sregs {
    let mut s = *base;
    s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    s.cr3 = layout.page_tables;
    s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
    s.cs = segment(USER_CS, 0xb, true);
    s.ss = segment(USER_SS, 0x3, false);
    let null = kvm_segment {
        unusable: 1,
        ..Default::default()
    };
    s.ds = null;
    s.es = null;
    s.fs = null;
    s.gs = null;
    s.ldt = null;
    // VM entry wants a usable 64-bit TSS even though nothing switches to it.
    s.tr = kvm_segment {
        base: layout.tss,
        limit: 0x67,
        selector: TSS_SELECTOR,
        type_: 0xb,
        present: 1,
        s: 0,
        ..Default::default()
    };
    // An empty IDT: any exception is a triple fault, reported as a crash.
    s.idt.base = 0;
    s.idt.limit = 0;
    s.gdt.base = 0;
    s.gdt.limit = 0;
    s
}

/// The entry registers of vCPU `index`: `rdi` carries the parameter
/// block's address, `rsi` the index, and the stack (the vCPU's own) is
/// aligned as if `_start` had been called.
pub fn entry_regs(entry: u64, layout: &Layout, index: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: layout.stack_top_of(index) - 8,
        rdi: layout.params,
        rsi: index,
        rflags: 0x2,
        ..Default::default()
    }
}

impl Vcpu {
    /// Creates vCPU `index` at the program's entry point, on its own stack.
    pub fn new(kvm: &Kvm, vm: &Vm, entry: u64, index: u64) -> Result<Vcpu, VcpuError> {
        let fd = vm.fd().create_vcpu(index).map_err(VcpuError::Create)?;
        let layout = *vm.memory().layout();
        if let Ok(cpuid) = kvm.supported_cpuid() {
            fd.set_cpuid2(&cpuid).map_err(|source| VcpuError::Set {
                what: "CPUID",
                source,
            })?;
        }
        let sregs = fd.get_sregs().map_err(|source| VcpuError::Get {
            what: "special registers",
            source,
        })?;
        fd.set_sregs(&user_mode_sregs(&sregs, &layout))
            .map_err(|source| VcpuError::Set {
                what: "special registers",
                source,
            })?;
        fd.set_regs(&entry_regs(entry, &layout, index))
            .map_err(|source| VcpuError::Set {
                what: "registers",
                source,
            })?;
        let sync_fields = u64::try_from(vm.fd().check_extension_int(Cap::SyncRegs)).unwrap_or(0);
        Ok(Vcpu {
            fd,
            _memory: Arc::clone(vm.memory()),
            can_sync_regs: sync_fields & SYNC_FIELDS == SYNC_FIELDS,
            sync_regs: false,
            fault_regs: None,
        })
    }

    /// Has KVM store the registers and special registers in the run page
    /// at every exit, so that `exit_registers` needs no ioctl: on PVM hosts
    /// each `KVM_GET_REGS`/`KVM_GET_SREGS` reloads the vCPU (MSR reads that
    /// trap to the outer hypervisor), a few microseconds apiece. Returns
    /// false (and changes nothing) when KVM cannot.
    pub fn enable_sync_regs(&mut self) -> bool {
        if self.can_sync_regs {
            self.fd.set_sync_valid_reg(SyncReg::Register);
            self.fd.set_sync_valid_reg(SyncReg::SystemRegister);
            self.sync_regs = true;
        }
        self.sync_regs
    }

    /// Whether KVM stores the registers at every exit (`enable_sync_regs`).
    pub fn syncs_registers(&self) -> bool {
        self.sync_regs
    }

    /// The registers and special registers as of the last exit: what
    /// `KVM_RUN` stored at a memory fault when sync registers are on, else
    /// by ioctl.
    pub fn exit_registers(&self) -> Result<(kvm_regs, kvm_sregs), VcpuError> {
        match self.fault_regs {
            Some(state) => Ok(state),
            None => Ok((self.regs()?, self.sregs()?)),
        }
    }

    /// Copies out the registers KVM stored in the run page. Only the two
    /// structures, not the whole 2 KiB sync area that `VcpuFd::sync_regs`
    /// copies: most of it is padding nobody wrote, cold in the cache.
    fn capture_fault_regs(&mut self) {
        if self.sync_regs {
            let run = self.fd.get_kvm_run();
            // SAFETY: with KVM_SYNC_X86_REGS and KVM_SYNC_X86_SREGS valid,
            // KVM_RUN stores a kvm_sync_regs in this union on every return
            // (kvm_arch_vcpu_ioctl_run's store_regs); `regs` is plain data
            // of that layout, and any bit pattern is a valid value.
            let sync = unsafe { &run.s.regs };
            self.fault_regs = Some((sync.regs, sync.sregs));
        }
    }

    /// The guest TSC frequency in Hz.
    pub fn tsc_hz(&self) -> Option<u64> {
        self.fd
            .get_tsc_khz()
            .ok()
            .filter(|&k| k > 0)
            .map(|k| u64::from(k) * 1000)
    }

    pub fn regs(&self) -> Result<kvm_regs, VcpuError> {
        self.fd.get_regs().map_err(|source| VcpuError::Get {
            what: "registers",
            source,
        })
    }

    pub fn sregs(&self) -> Result<kvm_sregs, VcpuError> {
        self.fd.get_sregs().map_err(|source| VcpuError::Get {
            what: "special registers",
            source,
        })
    }

    /// Enters the guest until the next exit, and describes the exit.
    pub fn run(&mut self) -> Result<Exit, VcpuError> {
        // A KVM_RUN that fails keeps the previous exit reason; clear it so a
        // stale KVM_EXIT_MEMORY_FAULT is never mistaken for a fresh one.
        self.fd.get_kvm_run().exit_reason = 0;
        self.fault_regs = None;
        let exit = match self.fd.run() {
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                let mut buf = [0u8; 8];
                let len = data.len().min(8);
                buf[..len].copy_from_slice(&data[..len]);
                Exit::Mmio {
                    addr,
                    data: buf,
                    len: data.len(),
                    write: true,
                }
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                // Reads of the doorbell window see zeros.
                data.fill(0);
                Exit::Mmio {
                    addr,
                    data: [0; 8],
                    len: data.len(),
                    write: false,
                }
            }
            Ok(VcpuExit::Shutdown) => Exit::Shutdown { rip: self.rip() },
            Ok(VcpuExit::Hlt) => Exit::Hlt { rip: self.rip() },
            Ok(VcpuExit::IoIn(port, data)) => {
                data.fill(0xff);
                Exit::Io {
                    port,
                    write: false,
                    rip: self.rip(),
                }
            }
            Ok(VcpuExit::IoOut(port, _)) => Exit::Io {
                port,
                write: true,
                rip: self.rip(),
            },
            Ok(VcpuExit::FailEntry(reason, _)) => Exit::FailEntry { reason },
            Ok(VcpuExit::InternalError) => Exit::InternalError,
            Ok(VcpuExit::MemoryFault { gpa, size, .. }) => Exit::MemoryFault { gpa, size },
            Ok(VcpuExit::Intr) => Exit::Interrupted,
            Ok(other) => Exit::Other(format!("{other:?}")),
            Err(e) if e.errno() == libc::EINTR => Exit::Interrupted,
            Err(e) if e.errno() == libc::EAGAIN => Exit::Interrupted,
            Err(e) if e.errno() == libc::EFAULT => {
                self.capture_fault_regs();
                Exit::Efault
            }
            Err(e) => return Err(VcpuError::Run(e)),
        };
        Ok(exit)
    }

    fn rip(&self) -> u64 {
        self.fd.get_regs().map(|r| r.rip).unwrap_or(0)
    }

    /// Moves the guest's instruction pointer (the vCPU is out of the guest).
    pub fn set_rip(&self, rip: u64) -> Result<(), VcpuError> {
        let mut regs = self.regs()?;
        regs.rip = rip;
        self.fd.set_regs(&regs).map_err(|source| VcpuError::Set {
            what: "registers",
            source,
        })
    }

    /// Where KVM reads `immediate_exit` before each entry: set to 1, the
    /// next (or current, once a signal interrupts it) `KVM_RUN` returns
    /// EINTR at once. Valid as long as this vCPU lives.
    pub fn immediate_exit_flag(&mut self) -> *mut u8 {
        &raw mut self.fd.get_kvm_run().immediate_exit
    }

    /// The raw fd, for trackers that inspect registers on a fault.
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wss_abi::RAM_BASE;

    #[test]
    fn entry_state_is_long_mode_cpl3() {
        let layout = Layout::new(64 << 20, RAM_BASE + 0x5000, 1 << 20).expect("fits");
        let s = user_mode_sregs(&kvm_sregs::default(), &layout);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.cr3, layout.page_tables);
        assert_eq!((s.cs.dpl, s.cs.l, s.cs.selector & 3), (3, 1, 3));
        assert_eq!((s.ss.dpl, s.ss.selector & 3), (3, 3));
        assert_eq!(s.tr.type_, 0xb);
        let r = entry_regs(0x4000_0000, &layout, 0);
        assert_eq!(r.rsp % 16, 8, "stack aligned as after a call");
        assert_eq!(r.rdi, layout.params);
        assert_eq!((r.rip, r.rsi), (0x4000_0000, 0));
        assert_eq!(r.rsp, layout.stack_top - 8);
    }

    #[test]
    fn each_vcpu_enters_with_its_index_on_its_own_stack() {
        let layout = Layout::with_vcpus(
            64 << 20,
            RAM_BASE + 0x5000,
            1 << 20,
            super::super::paging::GuestPageSize::Size2M,
            3,
        )
        .expect("fits");
        let tops: Vec<u64> = (0..3)
            .map(|i| {
                let r = entry_regs(0x4000_0000, &layout, i);
                assert_eq!(r.rsi, i);
                assert_eq!(r.rsp % 16, 8);
                r.rsp + 8
            })
            .collect();
        assert_eq!(
            tops,
            [
                layout.stack_top,
                layout.stack_top - wss_abi::STACK_SIZE,
                layout.stack_top - 2 * wss_abi::STACK_SIZE
            ]
        );
    }
}
