//! Decoding hypercalls: guest stores to the doorbell window that exit with
//! `KVM_EXIT_MMIO`. The guest is untrusted, so anything other than a well
//! formed 8-byte store to a known doorbell is rejected with a reason.

use wss_abi::{DOORBELL_BASE, DOORBELL_SIZE, LOG_MAX, doorbell, unpack_buf};

/// A decoded hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypercall {
    Exit(u64),
    Log {
        addr: u64,
        len: u64,
    },
    Phase(u64),
    Panic {
        addr: u64,
        len: u64,
    },
    Sync(u64),
    /// The guest finished the access it was held in (see `vmm::hold`).
    Boundary,
    /// The vCPU waits for another: give the host CPU away once.
    Yield,
    /// The vCPU has nothing to do for this many nanoseconds.
    Sleep(u64),
}

/// Why an MMIO exit is not a valid hypercall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HypercallError {
    #[error("guest accessed guest-physical {0:#x}, which is neither RAM nor a doorbell")]
    NotADoorbell(u64),
    #[error("guest accessed unknown doorbell offset {0:#x}")]
    UnknownDoorbell(u64),
    #[error("guest read doorbell offset {0:#x}; doorbells are write-only")]
    Read(u64),
    #[error(
        "guest wrote {len} bytes to doorbell offset {offset:#x}; doorbells take one aligned 8-byte store"
    )]
    BadWidth { offset: u64, len: usize },
    #[error("guest passed a {len}-byte buffer; the limit is {LOG_MAX}")]
    BufferTooLong { len: u64 },
}

/// Decodes one MMIO exit. `data` is the bytes the guest stored (its length
/// is the access width).
pub fn decode(addr: u64, data: &[u8], is_write: bool) -> Result<Hypercall, HypercallError> {
    let offset = match addr.checked_sub(DOORBELL_BASE) {
        Some(off) if off < DOORBELL_SIZE => off,
        _ => return Err(HypercallError::NotADoorbell(addr)),
    };
    if !is_write {
        return Err(HypercallError::Read(offset));
    }
    let value = match <[u8; 8]>::try_from(data) {
        Ok(bytes) if offset.is_multiple_of(8) => u64::from_le_bytes(bytes),
        _ => {
            return Err(HypercallError::BadWidth {
                offset,
                len: data.len(),
            });
        }
    };
    let buffer = |value: u64| {
        let (addr, len) = unpack_buf(value);
        if len > LOG_MAX {
            Err(HypercallError::BufferTooLong { len })
        } else {
            Ok((addr, len))
        }
    };
    match offset {
        doorbell::EXIT => Ok(Hypercall::Exit(value)),
        doorbell::LOG => buffer(value).map(|(addr, len)| Hypercall::Log { addr, len }),
        doorbell::PHASE => Ok(Hypercall::Phase(value)),
        doorbell::PANIC => buffer(value).map(|(addr, len)| Hypercall::Panic { addr, len }),
        doorbell::SYNC => Ok(Hypercall::Sync(value)),
        doorbell::BOUNDARY => Ok(Hypercall::Boundary),
        doorbell::YIELD => Ok(Hypercall::Yield),
        doorbell::SLEEP => Ok(Hypercall::Sleep(value)),
        other => Err(HypercallError::UnknownDoorbell(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wss_abi::pack_buf;

    fn store(offset: u64, value: u64) -> Result<Hypercall, HypercallError> {
        decode(DOORBELL_BASE + offset, &value.to_le_bytes(), true)
    }

    #[test]
    fn decodes_every_doorbell() {
        assert_eq!(store(doorbell::EXIT, 3), Ok(Hypercall::Exit(3)));
        assert_eq!(store(doorbell::PHASE, 7), Ok(Hypercall::Phase(7)));
        assert_eq!(store(doorbell::SYNC, 9), Ok(Hypercall::Sync(9)));
        assert_eq!(store(doorbell::BOUNDARY, 0), Ok(Hypercall::Boundary));
        assert_eq!(store(doorbell::YIELD, 0), Ok(Hypercall::Yield));
        assert_eq!(store(doorbell::SLEEP, 5_000), Ok(Hypercall::Sleep(5_000)));
        assert_eq!(
            store(doorbell::LOG, pack_buf(0x4000_1234, 12)),
            Ok(Hypercall::Log {
                addr: 0x4000_1234,
                len: 12
            })
        );
        assert_eq!(
            store(doorbell::PANIC, pack_buf(0x4000_0000, LOG_MAX)),
            Ok(Hypercall::Panic {
                addr: 0x4000_0000,
                len: LOG_MAX
            })
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            decode(0x10, &[0; 8], true),
            Err(HypercallError::NotADoorbell(0x10))
        );
        assert_eq!(
            decode(DOORBELL_BASE + DOORBELL_SIZE, &[0; 8], true),
            Err(HypercallError::NotADoorbell(DOORBELL_BASE + DOORBELL_SIZE))
        );
        assert_eq!(
            store(0x1000, 1),
            Err(HypercallError::UnknownDoorbell(0x1000))
        );
        assert_eq!(
            decode(DOORBELL_BASE + 8, &[0; 8], false),
            Err(HypercallError::Read(8))
        );
        assert_eq!(
            decode(DOORBELL_BASE, &[1], true),
            Err(HypercallError::BadWidth { offset: 0, len: 1 })
        );
        assert_eq!(
            decode(DOORBELL_BASE + 4, &[0; 8], true),
            Err(HypercallError::BadWidth { offset: 4, len: 8 })
        );
        assert_eq!(
            store(doorbell::LOG, pack_buf(0x4000_0000, LOG_MAX + 1)),
            Err(HypercallError::BufferTooLong { len: LOG_MAX + 1 })
        );
    }
}
