//! The `/dev/kvm` system file descriptor.

use std::io::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error(
        "/dev/kvm does not exist: this machine has no KVM (load kvm_intel, kvm_amd or kvm_pvm, or enable nested virtualization)"
    )]
    Missing,
    #[error(
        "no permission to open /dev/kvm: run as root or add your user to the group that owns /dev/kvm (usually kvm)"
    )]
    Permission,
    #[error("cannot open /dev/kvm")]
    Open(#[source] std::io::Error),
    #[error("KVM API version {0} is not the stable version 12")]
    ApiVersion(i32),
    #[error("cannot query the CPUID KVM supports")]
    Cpuid(#[source] kvm_ioctls::Error),
}

/// Names the two failures a user can fix: no KVM at all, or no permission.
pub fn classify_open_error(io: std::io::Error) -> KvmError {
    match io.kind() {
        ErrorKind::NotFound => KvmError::Missing,
        ErrorKind::PermissionDenied => KvmError::Permission,
        _ => KvmError::Open(io),
    }
}

/// An open `/dev/kvm`.
pub struct Kvm {
    fd: kvm_ioctls::Kvm,
}

impl Kvm {
    /// Opens `/dev/kvm`, turning the common failures into advice.
    pub fn open() -> Result<Kvm, KvmError> {
        let fd = kvm_ioctls::Kvm::new()
            .map_err(|e| classify_open_error(std::io::Error::from_raw_os_error(e.errno())))?;
        let version = fd.get_api_version();
        if version != 12 {
            return Err(KvmError::ApiVersion(version));
        }
        Ok(Kvm { fd })
    }

    pub fn fd(&self) -> &kvm_ioctls::Kvm {
        &self.fd
    }

    /// The CPUID entries KVM can expose, passed through to the guest.
    pub fn supported_cpuid(&self) -> Result<kvm_bindings::CpuId, KvmError> {
        self.fd
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::Cpuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_failures_say_what_to_do() {
        let missing = classify_open_error(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(matches!(missing, KvmError::Missing));
        assert!(missing.to_string().contains("/dev/kvm does not exist"));
        let denied = classify_open_error(std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(denied, KvmError::Permission));
        assert!(denied.to_string().contains("no permission"));
        assert!(matches!(
            classify_open_error(std::io::Error::from_raw_os_error(libc::EBUSY)),
            KvmError::Open(_)
        ));
    }
}
