//! The machine a run or a study ran on: every run's summary.json records
//! it, and the study document states it, since results on a nested,
//! shared 2-core VM mean little without saying so.

use serde::{Deserialize, Serialize};

/// How KVM runs guests on a host: on the CPU's virtualisation extensions,
/// or on PVM (the `kvm_pvm` module: KVM inside a VM without nested
/// virtualisation, where every guest page-table change costs far more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvmKind {
    Hardware,
    Pvm,
}

impl KvmKind {
    pub fn name(self) -> &'static str {
        match self {
            KvmKind::Hardware => "hardware",
            KvmKind::Pvm => "pvm",
        }
    }

    /// PVM when the `kvm_pvm` module is loaded (it appears under
    /// /sys/module), hardware otherwise.
    pub fn current() -> KvmKind {
        if std::path::Path::new("/sys/module/kvm_pvm").exists() {
            KvmKind::Pvm
        } else {
            KvmKind::Hardware
        }
    }
}

/// What a run records, and the document says, about the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name (/proc/sys/kernel/hostname).
    pub name: String,
    /// CPUs this process may use (what `nproc` prints).
    pub nproc: usize,
    /// `uname -sr`: kernel name and release.
    pub kernel: String,
    /// The first "model name" in /proc/cpuinfo.
    pub cpu_model: String,
    /// Whether the CPU flags offer hardware virtualisation (vmx or svm).
    pub hw_virt: bool,
    pub mem_bytes: Option<u64>,
    /// KVM on hardware virtualisation or on PVM.
    pub kvm: KvmKind,
}

const UNKNOWN: &str = "unknown";

impl Host {
    /// Reads the running machine's description from /proc.
    pub fn current() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        // /proc/sys/kernel/{ostype,osrelease} are what uname(2) reports.
        let kernel = format!(
            "{} {}",
            read("/proc/sys/kernel/ostype").trim(),
            read("/proc/sys/kernel/osrelease").trim()
        );
        Host {
            name: Some(read("/proc/sys/kernel/hostname").trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| UNKNOWN.to_string()),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: if kernel.trim().is_empty() {
                UNKNOWN.to_string()
            } else {
                kernel.trim().to_string()
            },
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN.to_string()),
            hw_virt: has_hw_virt(&cpuinfo),
            mem_bytes: crate::cli::host_memory(),
            kvm: KvmKind::current(),
        }
    }

    /// The kind of host, for telling whether results were measured on
    /// comparable machines: the KVM kind and the CPU model (host names and
    /// kernel patch levels may differ among alike machines).
    pub fn kind(&self) -> String {
        format!("{} KVM on {}", self.kvm.name(), self.cpu_model)
    }

    /// One line naming the host: name, kernel, CPU and KVM kind.
    pub fn line(&self) -> String {
        format!(
            "{} ({}, {}, {} KVM)",
            self.name,
            self.kernel,
            self.cpu_model,
            self.kvm.name()
        )
    }
}

/// The first `model name` line's value.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// True when a `flags` line lists vmx or svm.
fn has_hw_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .filter_map(|l| l.split_once(':'))
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        model name\t: Intel(R) Xeon(R)   CPU @ 2.20GHz\nflags\t\t: fpu vme sse2 hypervisor\n\n\
        processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n";

    #[test]
    fn reads_model_and_flags() {
        assert_eq!(
            cpu_model(CPUINFO).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert!(!has_hw_virt(CPUINFO));
        assert!(has_hw_virt("flags\t: fpu vmx sse\n"));
        assert!(!has_hw_virt("flags\t: fpu vmxx\n"));
        assert_eq!(cpu_model("processor: 0\n"), None);
    }

    #[test]
    fn current_host_is_described() {
        let h = Host::current();
        assert!(h.nproc >= 1);
        assert!(h.kernel.starts_with("Linux "), "{}", h.kernel);
    }
}
