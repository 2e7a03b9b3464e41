//! How large `--mem` may be. Guest RAM is a sparse memfd mapped
//! MAP_SHARED | MAP_NORESERVE: it costs host memory only for the pages the
//! guest (or a tracker) touches, so host RAM is no bound. What bounds it is
//! what can be created and mapped: the guest layout (the page-table area is
//! sized for `MAX_RAM_SIZE`), the process's address space (the CPU's user
//! half, `RLIMIT_AS`) and the largest file the process may size
//! (`RLIMIT_FSIZE`, which applies to the memfd). Above host RAM the run is
//! overcommitted: allowed, and worth one note.

use wss_abi::{DOORBELL_BASE, MAX_RAM_SIZE, META_BASE};

/// Size of the user half of an x86-64 address space with 4-level paging.
pub const USER_ADDRESS_SPACE: u64 = 1 << 47;

/// Address space a run needs besides guest RAM: the metadata mapping (at
/// most the slot below the doorbells) and room for the VMM itself.
pub const MAPPING_RESERVE: u64 = (DOORBELL_BASE - META_BASE) + (1 << 30);

/// What bounds `--mem` on this host, and the host's memory for the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemLimits {
    /// Largest RAM the guest layout supports.
    pub layout_max: u64,
    /// Address space the process may still map: what `RLIMIT_AS` or the
    /// CPU's user half leaves beyond what is mapped already.
    pub address_space: u64,
    /// Where `address_space` comes from, for the error line.
    pub address_space_from: &'static str,
    /// `RLIMIT_FSIZE`, the largest memfd the process may size (`None`:
    /// unlimited).
    pub file_size: Option<u64>,
    /// Total host memory (`None`: unknown).
    pub host: Option<u64>,
}

/// Why a `--mem` cannot be used. Each is one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemLimitError {
    #[error("--mem {mem} is larger than the largest guest RAM the layout supports ({max} bytes)")]
    Layout { mem: u64, max: u64 },
    #[error(
        "--mem {mem} cannot be mapped: {from} leaves {available} bytes of address space and the run needs {need}"
    )]
    AddressSpace {
        mem: u64,
        need: u64,
        available: u64,
        from: &'static str,
    },
    #[error(
        "--mem {mem} is larger than the largest file this process may create (RLIMIT_FSIZE {max} bytes)"
    )]
    FileSize { mem: u64, max: u64 },
}

impl MemLimits {
    /// The limits of this process on this host.
    pub fn of_this_process() -> MemLimits {
        let used = vm_size().unwrap_or(0);
        let (address_space, address_space_from) = match rlimit(libc::RLIMIT_AS) {
            Some(limit) if limit < USER_ADDRESS_SPACE => (limit.saturating_sub(used), "RLIMIT_AS"),
            _ => (
                USER_ADDRESS_SPACE.saturating_sub(used),
                "the 128 TiB user address space",
            ),
        };
        MemLimits {
            layout_max: MAX_RAM_SIZE,
            address_space,
            address_space_from,
            file_size: rlimit(libc::RLIMIT_FSIZE),
            host: host_memory(),
        }
    }

    /// Checks `mem` against the limits. `Ok(Some(note))` when it exceeds
    /// host memory: the run is overcommitted, which is fine.
    pub fn check(&self, mem: u64) -> Result<Option<String>, MemLimitError> {
        if mem > self.layout_max {
            return Err(MemLimitError::Layout {
                mem,
                max: self.layout_max,
            });
        }
        let need = mem.saturating_add(MAPPING_RESERVE);
        if need > self.address_space {
            return Err(MemLimitError::AddressSpace {
                mem,
                need,
                available: self.address_space,
                from: self.address_space_from,
            });
        }
        if let Some(max) = self.file_size
            && mem > max
        {
            return Err(MemLimitError::FileSize { mem, max });
        }
        Ok(self.host.filter(|&host| mem > host).map(|host| {
            format!(
                "note: --mem {:.1} GiB is more than this host's memory ({:.1} GiB); guest RAM is \
                 sparse, so only the pages the guest touches use host memory",
                gib(mem),
                gib(host)
            )
        }))
    }
}

/// Total memory of the host, from /proc/meminfo.
fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The process's current virtual size, from /proc/self/status.
fn vm_size() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit `resource`, or `None` when unlimited or unreadable.
fn rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid, exclusive pointer.
    let r = unsafe { libc::getrlimit(resource, &mut lim) };
    (r == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn limits() -> MemLimits {
        MemLimits {
            layout_max: MAX_RAM_SIZE,
            address_space: USER_ADDRESS_SPACE,
            address_space_from: "the 128 TiB user address space",
            file_size: None,
            host: Some(24 * G),
        }
    }

    #[test]
    fn host_memory_is_no_bound_only_a_note() {
        let l = limits();
        assert_eq!(l.check(512 << 20), Ok(None));
        assert_eq!(l.check(24 * G), Ok(None));
        let note = l.check(64 * G).expect("overcommit is allowed");
        assert!(note.is_some_and(|n| n.starts_with("note:") && !n.contains('\n')));
        assert_eq!(MemLimits { host: None, ..l }.check(64 * G), Ok(None));
    }

    #[test]
    fn the_layout_bounds_mem() {
        assert_eq!(
            limits().check(MAX_RAM_SIZE + (2 << 20)),
            Err(MemLimitError::Layout {
                mem: MAX_RAM_SIZE + (2 << 20),
                max: MAX_RAM_SIZE
            })
        );
        assert!(limits().check(MAX_RAM_SIZE).is_ok());
    }

    #[test]
    fn the_address_space_bounds_mem() {
        let l = MemLimits {
            address_space: 8 * G,
            address_space_from: "RLIMIT_AS",
            ..limits()
        };
        assert!(l.check(4 * G).is_ok());
        let e = l
            .check(8 * G)
            .expect_err("8G RAM plus metadata needs more than 8G");
        assert!(matches!(e, MemLimitError::AddressSpace { mem, .. } if mem == 8 * G));
        assert!(e.to_string().contains("RLIMIT_AS"));
    }

    #[test]
    fn the_file_size_limit_bounds_mem() {
        let l = MemLimits {
            file_size: Some(G),
            ..limits()
        };
        assert!(l.check(G).is_ok());
        assert_eq!(
            l.check(2 * G),
            Err(MemLimitError::FileSize { mem: 2 * G, max: G })
        );
    }

    #[test]
    fn this_process_can_map_the_largest_layout() {
        // The test process runs without RLIMIT_AS/RLIMIT_FSIZE (as CI and
        // this project's machines do): the whole supported range is usable.
        let l = MemLimits::of_this_process();
        if l.address_space_from == "RLIMIT_AS" || l.file_size.is_some() {
            eprintln!("skipping: this process has an address-space or file-size limit");
            return;
        }
        assert!(l.check(MAX_RAM_SIZE).is_ok());
    }
}
