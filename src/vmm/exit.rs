//! What the VMM does with each vCPU exit. A free function over an owned
//! description of the exit, so that it is tested with synthetic exits and no
//! guest.

use super::doorbell::{self, Hypercall};

/// An exit from `KVM_RUN`, copied out of the shared `kvm_run` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Mmio {
        addr: u64,
        data: [u8; 8],
        len: usize,
        write: bool,
    },
    /// The guest triple-faulted (or asked for a shutdown).
    Shutdown {
        rip: u64,
    },
    Hlt {
        rip: u64,
    },
    Io {
        port: u16,
        write: bool,
        rip: u64,
    },
    FailEntry {
        reason: u64,
    },
    InternalError,
    /// `KVM_EXIT_MEMORY_FAULT`: the kernel reported the faulting address.
    MemoryFault {
        gpa: u64,
        size: u64,
    },
    /// `KVM_RUN` failed with EFAULT and no address (see kvm-host-notes.md).
    Efault,
    /// `KVM_RUN` was interrupted by a signal (the VMM kicking the vCPU).
    Interrupted,
    Other(String),
}

/// Why the guest stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The guest called `exit(code)`.
    Exit(u64),
    /// The guest panicked with this message.
    Panic(String),
    /// The guest triple-faulted at `rip` (a crash: no guest kernel).
    TripleFault { rip: u64 },
    /// The guest did something the VMM cannot continue from.
    Crash(String),
}

/// What the vCPU loop should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Resume,
    /// Run the sync hook with this value, then resume.
    Sync(u64),
    /// Let the tracker attribute a memory fault (`gpa` if the kernel gave
    /// one), then resume.
    MemoryFault(Option<u64>),
    /// The loop was kicked: check whether to stop, else resume.
    Kicked,
    /// The guest finished an access it was held in: the hold may begin.
    Boundary,
    Stop(Stop),
}

/// Most rejected hypercalls printed per run; the rest are only counted.
pub const MAX_REPORTED_REJECTS: u64 = 10;
/// Most log lines kept for the summary.
pub const MAX_KEPT_LOGS: usize = 1000;

/// What the exit handler learned so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExitState {
    /// (seconds since boot, marker) for each `phase` hypercall.
    pub phases: Vec<(f64, u64)>,
    pub logs: Vec<String>,
    /// Hypercalls rejected as malformed.
    pub rejected: u64,
    pub reject_messages: Vec<String>,
    pub syncs: u64,
    pub exits: u64,
}

impl ExitState {
    pub fn last_phase(&self) -> Option<u64> {
        self.phases.last().map(|&(_, m)| m)
    }

    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.rejected <= MAX_REPORTED_REJECTS {
            log::warn!("rejected guest hypercall: {why}");
            self.reject_messages.push(why);
        }
    }
}

/// Handles one exit. `read` fetches guest memory with bounds checks (it
/// fails for any range outside guest RAM or metadata); `now_s` is the time
/// since boot.
pub fn handle_exit(
    exit: &Exit,
    state: &mut ExitState,
    read: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
    now_s: f64,
) -> Action {
    state.exits += 1;
    match exit {
        Exit::Mmio {
            addr,
            data,
            len,
            write,
        } => {
            let data = &data[..(*len).min(8)];
            match doorbell::decode(*addr, data, *write) {
                Ok(call) => hypercall(call, state, read, now_s),
                Err(e) => {
                    state.reject(e.to_string());
                    Action::Resume
                }
            }
        }
        Exit::Shutdown { rip } => Action::Stop(Stop::TripleFault { rip: *rip }),
        Exit::Hlt { rip } => {
            Action::Stop(Stop::Crash(format!("guest executed hlt at rip {rip:#x}")))
        }
        Exit::Io { port, write, rip } => Action::Stop(Stop::Crash(format!(
            "guest {} port {port:#x} at rip {rip:#x}; port I/O is not part of the ABI",
            if *write { "wrote" } else { "read" }
        ))),
        Exit::FailEntry { reason } => Action::Stop(Stop::Crash(format!(
            "KVM could not enter the guest (hardware entry failure reason {reason:#x})"
        ))),
        Exit::InternalError => Action::Stop(Stop::Crash(
            "KVM internal error while running the guest".into(),
        )),
        Exit::MemoryFault { gpa, .. } => Action::MemoryFault(Some(*gpa)),
        Exit::Efault => Action::MemoryFault(None),
        Exit::Interrupted => Action::Kicked,
        Exit::Other(what) => Action::Stop(Stop::Crash(format!("unexpected vCPU exit: {what}"))),
    }
}

fn read_text(read: &dyn Fn(u64, u64) -> Option<Vec<u8>>, addr: u64, len: u64) -> Option<String> {
    read(addr, len).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn hypercall(
    call: Hypercall,
    state: &mut ExitState,
    read: &dyn Fn(u64, u64) -> Option<Vec<u8>>,
    now_s: f64,
) -> Action {
    match call {
        Hypercall::Exit(code) => Action::Stop(Stop::Exit(code)),
        Hypercall::Phase(marker) => {
            state.phases.push((now_s, marker));
            Action::Resume
        }
        Hypercall::Sync(v) => {
            state.syncs += 1;
            Action::Sync(v)
        }
        Hypercall::Boundary => Action::Boundary,
        Hypercall::Log { addr, len } => match read_text(read, addr, len) {
            Some(text) => {
                log::info!("guest: {text}");
                if state.logs.len() < MAX_KEPT_LOGS {
                    state.logs.push(text);
                }
                Action::Resume
            }
            None => {
                state.reject(format!(
                    "log buffer {addr:#x}+{len} lies outside guest memory"
                ));
                Action::Resume
            }
        },
        Hypercall::Panic { addr, len } => {
            let msg = read_text(read, addr, len).unwrap_or_else(|| {
                format!("<panic message at {addr:#x}+{len} lies outside guest memory>")
            });
            Action::Stop(Stop::Panic(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wss_abi::{DOORBELL_BASE, LOG_MAX, doorbell as db, pack_buf};

    fn mmio(offset: u64, value: u64) -> Exit {
        Exit::Mmio {
            addr: DOORBELL_BASE + offset,
            data: value.to_le_bytes(),
            len: 8,
            write: true,
        }
    }

    /// Guest memory for the tests: "hello" at 0x4000_0000, nothing else.
    fn reader(addr: u64, len: u64) -> Option<Vec<u8>> {
        let mem = b"hello, world";
        let off = addr.checked_sub(0x4000_0000)? as usize;
        mem.get(off..off.checked_add(len as usize)?)
            .map(|s| s.to_vec())
    }

    #[test]
    fn exit_and_phase_and_sync() {
        let mut st = ExitState::default();
        assert_eq!(
            handle_exit(&mmio(db::PHASE, 2), &mut st, &reader, 1.5),
            Action::Resume
        );
        assert_eq!(st.phases, vec![(1.5, 2)]);
        assert_eq!(st.last_phase(), Some(2));
        assert_eq!(
            handle_exit(&mmio(db::SYNC, 4), &mut st, &reader, 2.0),
            Action::Sync(4)
        );
        assert_eq!(
            handle_exit(&mmio(db::BOUNDARY, 0), &mut st, &reader, 2.5),
            Action::Boundary
        );
        assert_eq!(
            handle_exit(&mmio(db::EXIT, 0), &mut st, &reader, 3.0),
            Action::Stop(Stop::Exit(0))
        );
        assert_eq!(st.exits, 4);
        assert_eq!(st.syncs, 1);
    }

    #[test]
    fn log_reads_bounded_guest_memory() {
        let mut st = ExitState::default();
        assert_eq!(
            handle_exit(
                &mmio(db::LOG, pack_buf(0x4000_0000, 5)),
                &mut st,
                &reader,
                0.0
            ),
            Action::Resume
        );
        assert_eq!(st.logs, vec!["hello".to_string()]);
        // A buffer running past the end of memory is rejected, not read.
        assert_eq!(
            handle_exit(
                &mmio(db::LOG, pack_buf(0x4000_0008, 100)),
                &mut st,
                &reader,
                0.0
            ),
            Action::Resume
        );
        assert_eq!(st.rejected, 1);
        assert!(st.reject_messages[0].contains("outside guest memory"));
        // Longer than LOG_MAX: rejected by the decoder.
        handle_exit(
            &mmio(db::LOG, pack_buf(0x4000_0000, LOG_MAX + 1)),
            &mut st,
            &reader,
            0.0,
        );
        assert_eq!(st.rejected, 2);
        assert_eq!(st.logs.len(), 1);
    }

    #[test]
    fn panic_stops_with_message() {
        let mut st = ExitState::default();
        assert_eq!(
            handle_exit(
                &mmio(db::PANIC, pack_buf(0x4000_0007, 5)),
                &mut st,
                &reader,
                0.0
            ),
            Action::Stop(Stop::Panic("world".into()))
        );
        match handle_exit(&mmio(db::PANIC, pack_buf(0x10, 5)), &mut st, &reader, 0.0) {
            Action::Stop(Stop::Panic(m)) => assert!(m.contains("outside guest memory")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn garbage_is_rejected_and_counted() {
        let mut st = ExitState::default();
        let bad = [
            Exit::Mmio {
                addr: 0x10,
                data: [0; 8],
                len: 8,
                write: true,
            },
            mmio(0x1000, 1),
            Exit::Mmio {
                addr: DOORBELL_BASE,
                data: [1, 0, 0, 0, 0, 0, 0, 0],
                len: 1,
                write: true,
            },
            Exit::Mmio {
                addr: DOORBELL_BASE + 8,
                data: [0; 8],
                len: 8,
                write: false,
            },
        ];
        for e in &bad {
            assert_eq!(handle_exit(e, &mut st, &reader, 0.0), Action::Resume);
        }
        assert_eq!(st.rejected, 4);
        for _ in 0..20 {
            handle_exit(&mmio(0x1000, 1), &mut st, &reader, 0.0);
        }
        assert_eq!(st.rejected, 24);
        assert_eq!(st.reject_messages.len() as u64, MAX_REPORTED_REJECTS);
    }

    #[test]
    fn fatal_exits_stop() {
        let mut st = ExitState::default();
        assert_eq!(
            handle_exit(&Exit::Shutdown { rip: 0x4000_0042 }, &mut st, &reader, 0.0),
            Action::Stop(Stop::TripleFault { rip: 0x4000_0042 })
        );
        for e in [
            Exit::Hlt { rip: 1 },
            Exit::Io {
                port: 0x3f8,
                write: true,
                rip: 2,
            },
            Exit::FailEntry { reason: 0x21 },
            Exit::InternalError,
            Exit::Other("KVM_EXIT_DEBUG".into()),
        ] {
            assert!(
                matches!(
                    handle_exit(&e, &mut st, &reader, 0.0),
                    Action::Stop(Stop::Crash(_))
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn faults_and_kicks_go_back_to_the_loop() {
        let mut st = ExitState::default();
        assert_eq!(
            handle_exit(&Exit::Efault, &mut st, &reader, 0.0),
            Action::MemoryFault(None)
        );
        assert_eq!(
            handle_exit(
                &Exit::MemoryFault {
                    gpa: 0x4000_1000,
                    size: 4096
                },
                &mut st,
                &reader,
                0.0
            ),
            Action::MemoryFault(Some(0x4000_1000))
        );
        assert_eq!(
            handle_exit(&Exit::Interrupted, &mut st, &reader, 0.0),
            Action::Kicked
        );
    }
}
