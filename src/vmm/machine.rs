//! Assembling a bootable machine from a guest image and plain settings:
//! layout, memory, page tables, parameter block, VM and vCPUs.

use std::sync::Arc;

use wss_abi::{
    ABI_VERSION, MAX_PARAMS, PARAM_KEY_LEN, PARAM_VALUE_LEN, PARAMS_MAGIC, Param, Params, RAM_BASE,
};

use super::kvm::{Kvm, KvmError};
use super::layout::{Layout, LayoutError};
use super::loader::{self, LoadError};
use super::memory::{GuestMemory, MemoryError};
use super::paging::{self, GuestPageSize, PagingError};
use super::vcpu::{Vcpu, VcpuError};
use super::vm::{Vm, VmError};

/// Plain settings for one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub mem: u64,
    pub wss: u64,
    pub seed: u64,
    pub params: Vec<(String, String)>,
    /// Register RAM with dirty logging (the dirty-log tracker).
    pub dirty_log: bool,
    /// The guest's page size over RAM.
    pub guest_pages: GuestPageSize,
    /// vCPUs running the program (1..=`MAX_VCPUS`).
    pub vcpus: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot load the guest image")]
    Load(#[source] LoadError),
    #[error("guest memory does not fit")]
    Layout(#[source] LayoutError),
    #[error("bad guest parameter")]
    Param(#[source] ParamError),
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error("cannot set up guest memory")]
    Memory(#[source] MemoryError),
    #[error("cannot build page tables")]
    Paging(#[source] PagingError),
    #[error("cannot create the VM")]
    Vm(#[source] VmError),
    #[error("cannot set up the vCPU")]
    Vcpu(#[source] VcpuError),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("too many --param values (at most {MAX_PARAMS})")]
    TooMany,
    #[error(
        "--param key {0:?} is empty, longer than {PARAM_KEY_LEN} bytes, or contains '=' or NUL"
    )]
    BadKey(String),
    #[error("--param {0}: value longer than {PARAM_VALUE_LEN} bytes or contains NUL")]
    BadValue(String),
}

/// Builds the parameter block. Pure, so every rejection is unit-tested.
pub fn build_params(
    layout: &Layout,
    tsc_hz: u64,
    seed: u64,
    wss: u64,
    kv: &[(String, String)],
) -> Result<Params, ParamError> {
    if kv.len() > MAX_PARAMS {
        return Err(ParamError::TooMany);
    }
    let mut params = [Param::EMPTY; MAX_PARAMS];
    for (slot, (k, v)) in params.iter_mut().zip(kv) {
        if k.is_empty() || k.len() > PARAM_KEY_LEN || k.contains(['=', '\0']) {
            return Err(ParamError::BadKey(k.clone()));
        }
        if v.len() > PARAM_VALUE_LEN || v.contains('\0') {
            return Err(ParamError::BadValue(k.clone()));
        }
        slot.key[..k.len()].copy_from_slice(k.as_bytes());
        slot.value[..v.len()].copy_from_slice(v.as_bytes());
    }
    Ok(Params {
        magic: PARAMS_MAGIC,
        version: ABI_VERSION,
        ram_base: RAM_BASE,
        ram_size: layout.ram_size,
        data_start: layout.data_start,
        data_end: layout.data_end,
        stack_top: layout.stack_top,
        vcpus: layout.vcpus,
        tsc_hz,
        seed,
        wss_bytes: wss,
        status: layout.status,
        read_bitmap: layout.read_bitmap,
        write_bitmap: layout.write_bitmap,
        bitmap_words: layout.bitmap_words,
        nparams: kv.len() as u64,
        params,
    })
}

/// The bytes of guest RAM the data region gets when `image` boots in
/// `mem` bytes of RAM with `vcpus` stacks: what a program's data (its
/// `--wss` and anything beside it) can take. `None` when the image or
/// the sizes cannot boot at all, which `Machine::boot` then reports.
pub fn data_bytes(image: &[u8], mem: u64, vcpus: u64) -> Option<u64> {
    let img = loader::parse(image, RAM_BASE, RAM_BASE.checked_add(mem)?).ok()?;
    let layout = Layout::with_vcpus(mem, img.end, 0, GuestPageSize::Size2M, vcpus.max(1)).ok()?;
    Some(layout.data_pages() * wss_abi::PAGE_SIZE)
}

/// A machine ready to run: the guest is loaded and every vCPU sits at its
/// entry point.
pub struct Machine {
    /// vCPU 0: the guest ends when it exits.
    pub vcpu: Vcpu,
    /// vCPUs 1.. (`--vcpus` above 1), in index order: they run the same
    /// program beside vCPU 0, each on its own stack.
    pub secondary_vcpus: Vec<Vcpu>,
    pub vm: Vm,
    pub kvm: Kvm,
    pub layout: Layout,
    pub tsc_hz: u64,
}

impl Machine {
    /// Validates everything about the image and settings before touching
    /// KVM, then builds the machine.
    pub fn boot(image: &[u8], cfg: &MachineConfig) -> Result<Machine, BootError> {
        let ram_end = RAM_BASE
            .checked_add(cfg.mem)
            .ok_or(BootError::Layout(LayoutError::TooLarge(cfg.mem)))?;
        if cfg.wss > cfg.mem {
            return Err(BootError::Layout(LayoutError::WssLargerThanMem {
                wss: cfg.wss,
                mem: cfg.mem,
            }));
        }
        let img = loader::parse(image, RAM_BASE, ram_end).map_err(BootError::Load)?;
        let layout = Layout::with_vcpus(cfg.mem, img.end, cfg.wss, cfg.guest_pages, cfg.vcpus)
            .map_err(BootError::Layout)?;
        // Check parameters before creating anything (tsc_hz is filled later).
        build_params(&layout, 0, cfg.seed, cfg.wss, &cfg.params).map_err(BootError::Param)?;

        let kvm = Kvm::open()?;
        let memory = Arc::new(GuestMemory::new(&layout).map_err(BootError::Memory)?);
        for seg in &img.segments {
            memory
                .write(seg.addr, seg.data)
                .map_err(BootError::Memory)?;
        }
        let tables =
            paging::identity_map(layout.page_tables, layout.ram_end(), layout.small_pages())
                .map_err(BootError::Paging)?;
        memory
            .write(tables.cr3, &tables.bytes)
            .map_err(BootError::Memory)?;

        let vm = Vm::new(&kvm, Arc::clone(&memory), cfg.dirty_log).map_err(BootError::Vm)?;
        let vcpu = Vcpu::new(&kvm, &vm, img.entry, 0).map_err(BootError::Vcpu)?;
        let secondary_vcpus = (1..layout.vcpus)
            .map(|index| Vcpu::new(&kvm, &vm, img.entry, index))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BootError::Vcpu)?;
        let tsc_hz = vcpu.tsc_hz().unwrap_or_else(measure_tsc_hz);
        let params = build_params(&layout, tsc_hz, cfg.seed, cfg.wss, &cfg.params)
            .map_err(BootError::Param)?;
        memory.write_params(&params).map_err(BootError::Memory)?;
        Ok(Machine {
            vcpu,
            secondary_vcpus,
            vm,
            kvm,
            layout,
            tsc_hz,
        })
    }

    pub fn memory(&self) -> &Arc<GuestMemory> {
        self.vm.memory()
    }
}

/// The TSC frequency measured against the monotonic clock, for kernels that
/// do not report the guest's (`KVM_GET_TSC_KHZ`).
fn measure_tsc_hz() -> u64 {
    let t0 = std::time::Instant::now();
    // SAFETY: rdtsc has no memory effects.
    let c0 = unsafe { core::arch::x86_64::_rdtsc() };
    std::thread::sleep(std::time::Duration::from_millis(50));
    // SAFETY: as above.
    let c1 = unsafe { core::arch::x86_64::_rdtsc() };
    ((c1 - c0) as f64 / t0.elapsed().as_secs_f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(64 << 20, RAM_BASE + 0x4000, 1 << 20).expect("fits")
    }

    #[test]
    fn params_carry_layout_and_values() {
        let kv = vec![
            ("theta".to_string(), "0.99".to_string()),
            ("k".to_string(), "4".to_string()),
        ];
        let p = build_params(&layout(), 2_000_000_000, 7, 1 << 20, &kv).expect("valid");
        assert_eq!(p.magic, PARAMS_MAGIC);
        assert_eq!(p.get("theta"), Some("0.99"));
        assert_eq!(p.get("k"), Some("4"));
        assert_eq!(p.get("missing"), None);
        assert_eq!(p.data_start, layout().data_start);
        assert_eq!(p.tsc_hz, 2_000_000_000);
    }

    #[test]
    fn data_bytes_is_ram_less_image_and_stacks() {
        let image = crate::guests::embedded("ramp").expect("built in");
        let one = data_bytes(image, 512 << 20, 1).expect("boots");
        let two = data_bytes(image, 512 << 20, 2).expect("boots");
        assert_eq!(one - two, wss_abi::STACK_SIZE);
        // A built-in image is tens of KiB, the stack 1 MiB.
        assert!(one < (511 << 20) && one > (510 << 20), "{one}");
        assert_eq!(data_bytes(image, (512 << 20) + 1, 1), None);
        assert_eq!(data_bytes(b"not an elf", 512 << 20, 1), None);
    }

    #[test]
    fn params_reject_bad_input() {
        let l = layout();
        let too_many: Vec<_> = (0..MAX_PARAMS + 1)
            .map(|i| (format!("k{i}"), "1".to_string()))
            .collect();
        assert_eq!(
            build_params(&l, 1, 1, 1, &too_many).err(),
            Some(ParamError::TooMany)
        );
        for key in ["", "a=b", &"x".repeat(PARAM_KEY_LEN + 1)] {
            let kv = vec![(key.to_string(), "1".to_string())];
            assert_eq!(
                build_params(&l, 1, 1, 1, &kv).err(),
                Some(ParamError::BadKey(key.to_string()))
            );
        }
        let kv = vec![("k".to_string(), "v".repeat(PARAM_VALUE_LEN + 1))];
        assert_eq!(
            build_params(&l, 1, 1, 1, &kv).err(),
            Some(ParamError::BadValue("k".to_string()))
        );
    }
}
