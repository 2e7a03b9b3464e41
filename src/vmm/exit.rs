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
    /// The guest has nothing to do for this long (at most
    /// [`wss_abi::MAX_SLEEP_NS`]): keep the thread off the CPU until then
    /// or until a hold or stop is asked for, then resume.
    Sleep(std::time::Duration),
    Stop(Stop),
}

// Everything a guest can make the VMM store is capped per run, so that an
// untrusted guest ringing doorbells in a loop costs the host a bounded amount
// of memory and output whatever it does. Past a cap, events are counted, not
// stored. At the caps the stored text is at most
// MAX_KEPT_LOGS * LOG_MAX (1 MiB; escaping makes it at most six times that) plus
// MAX_REPORTED_REJECTS short messages, and the phases 16 bytes each.

/// Most rejected hypercalls whose reason is kept (and logged) per run; the
/// rest are only counted in `rejected`.
pub const MAX_REPORTED_REJECTS: u64 = 10;
/// Most log lines kept per run; the rest are counted in `logs_dropped`.
pub const MAX_KEPT_LOGS: usize = 256;
/// Most phase markers kept per run; the rest are counted in
/// `phases_dropped` (the last marker is still tracked in `last_phase`).
/// A workload announces a phase every few seconds, so this holds hours.
pub const MAX_KEPT_PHASES: usize = 1000;

/// What the exit handler learned so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExitState {
    /// (seconds since boot, marker) for the first [`MAX_KEPT_PHASES`]
    /// `phase` hypercalls.
    pub phases: Vec<(f64, u64)>,
    /// Phase markers past the cap, counted but not stored.
    pub phases_dropped: u64,
    /// The most recent phase marker, kept or not.
    pub last_phase: Option<u64>,
    /// The first [`MAX_KEPT_LOGS`] log messages, escaped (see
    /// [`escape_guest_text`]).
    pub logs: Vec<String>,
    /// Log messages past the cap, counted but not stored.
    pub logs_dropped: u64,
    /// Hypercalls rejected as malformed.
    pub rejected: u64,
    pub reject_messages: Vec<String>,
    pub syncs: u64,
    pub exits: u64,
}

impl ExitState {
    pub fn last_phase(&self) -> Option<u64> {
        self.last_phase
    }

    /// Folds in another vCPU's exits: phases in time order and logs after
    /// this one's, within the same caps; counts add up. The last phase
    /// stays this vCPU's (vCPU 0's, whose end is the run's) when it has one.
    pub fn absorb(&mut self, other: ExitState) {
        self.phases.extend(other.phases);
        self.phases.sort_by(|a, b| a.0.total_cmp(&b.0));
        let over = self.phases.len().saturating_sub(MAX_KEPT_PHASES);
        self.phases.truncate(MAX_KEPT_PHASES);
        self.phases_dropped += other.phases_dropped + over as u64;
        self.last_phase = self.last_phase.or(other.last_phase);
        let room = MAX_KEPT_LOGS.saturating_sub(self.logs.len());
        self.logs_dropped += other.logs_dropped + other.logs.len().saturating_sub(room) as u64;
        self.logs.extend(other.logs.into_iter().take(room));
        self.rejected += other.rejected;
        let room = (MAX_REPORTED_REJECTS as usize).saturating_sub(self.reject_messages.len());
        self.reject_messages
            .extend(other.reject_messages.into_iter().take(room));
        self.syncs += other.syncs;
        self.exits += other.exits;
    }

    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.rejected <= MAX_REPORTED_REJECTS {
            log::warn!("rejected guest hypercall: {why}");
            self.reject_messages.push(why);
        }
    }

    fn phase(&mut self, now_s: f64, marker: u64) {
        self.last_phase = Some(marker);
        if self.phases.len() < MAX_KEPT_PHASES {
            self.phases.push((now_s, marker));
        } else {
            self.phases_dropped += 1;
        }
    }

    /// One line on what the caps left out, if anything: "N more phase
    /// markers dropped; M more guest log messages dropped; K more rejected
    /// hypercalls not reported".
    pub fn dropped_summary(&self) -> Option<String> {
        let unreported = self
            .rejected
            .saturating_sub(self.reject_messages.len() as u64);
        let parts: Vec<String> = [
            (self.phases_dropped, "phase markers dropped"),
            (self.logs_dropped, "guest log messages dropped"),
            (unreported, "rejected hypercalls not reported"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} more {what}"))
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Guest text made safe to print: every control character (C0, DEL, C1)
/// and every Unicode bidirectional or line/paragraph separator is escaped
/// as `\u{..}` (`\n`, `\r`, `\t` and `\\` in their short forms), so a
/// message is always one line and cannot move the cursor, recolour or
/// retitle the terminal, or forge a line of kvm-wss's own output.
pub fn escape_guest_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
                )
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
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
    read(addr, len).map(|b| escape_guest_text(&String::from_utf8_lossy(&b)))
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
            state.phase(now_s, marker);
            Action::Resume
        }
        Hypercall::Sync(v) => {
            state.syncs += 1;
            Action::Sync(v)
        }
        Hypercall::Boundary => Action::Boundary,
        Hypercall::Yield => {
            // Another vCPU thread may need this CPU to reach the barrier
            // this one waits at (more vCPUs than host CPUs).
            std::thread::yield_now();
            Action::Resume
        }
        // The cap bounds how long a guest's one store keeps its thread
        // asleep; the guest reads its clock and asks again.
        Hypercall::Sleep(ns) => Action::Sleep(std::time::Duration::from_nanos(
            ns.min(wss_abi::MAX_SLEEP_NS),
        )),
        Hypercall::Log { addr, len } => match read_text(read, addr, len) {
            Some(text) => {
                if state.logs.len() < MAX_KEPT_LOGS {
                    log::info!("guest log: {text}");
                    state.logs.push(text);
                } else {
                    state.logs_dropped += 1;
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

    #[test]
    fn absorbing_another_vcpus_exits_keeps_time_order_and_caps() {
        let mut a = ExitState {
            phases: vec![(0.5, 1), (2.0, 3)],
            last_phase: Some(3),
            logs: vec!["a".into()],
            rejected: 1,
            syncs: 2,
            exits: 10,
            ..ExitState::default()
        };
        let b = ExitState {
            phases: vec![(1.0, 2)],
            last_phase: Some(2),
            logs: vec!["b".into(); MAX_KEPT_LOGS],
            logs_dropped: 4,
            rejected: 2,
            syncs: 1,
            exits: 5,
            ..ExitState::default()
        };
        a.absorb(b);
        assert_eq!(a.phases, [(0.5, 1), (1.0, 2), (2.0, 3)]);
        assert_eq!(a.last_phase, Some(3));
        assert_eq!(a.logs.len(), MAX_KEPT_LOGS);
        assert_eq!((a.logs[0].as_str(), a.logs[1].as_str()), ("a", "b"));
        assert_eq!(a.logs_dropped, 4 + 1);
        assert_eq!((a.rejected, a.syncs, a.exits), (3, 3, 15));
    }

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
    fn a_sleep_is_capped_so_one_store_cannot_park_the_thread_for_long() {
        let mut st = ExitState::default();
        let sleep = |ns| {
            handle_exit(
                &mmio(db::SLEEP, ns),
                &mut ExitState::default(),
                &reader,
                0.0,
            )
        };
        assert_eq!(sleep(0), Action::Sleep(std::time::Duration::ZERO));
        assert_eq!(
            sleep(2_500_000),
            Action::Sleep(std::time::Duration::from_micros(2_500))
        );
        let cap = std::time::Duration::from_nanos(wss_abi::MAX_SLEEP_NS);
        assert_eq!(sleep(wss_abi::MAX_SLEEP_NS + 1), Action::Sleep(cap));
        assert_eq!(sleep(u64::MAX), Action::Sleep(cap));
        assert_eq!(
            handle_exit(&mmio(db::SLEEP, 7), &mut st, &reader, 0.0),
            Action::Sleep(std::time::Duration::from_nanos(7))
        );
        assert_eq!((st.exits, st.rejected), (1, 0));
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
    fn phases_and_logs_are_capped_and_counted() {
        let mut st = ExitState::default();
        let n = MAX_KEPT_PHASES as u64 + 500;
        for i in 0..n {
            handle_exit(&mmio(db::PHASE, i), &mut st, &reader, i as f64);
        }
        assert_eq!(st.phases.len(), MAX_KEPT_PHASES);
        assert_eq!(st.phases_dropped, 500);
        assert_eq!(st.last_phase(), Some(n - 1));
        let logs = MAX_KEPT_LOGS as u64 + 7;
        for _ in 0..logs {
            handle_exit(
                &mmio(db::LOG, pack_buf(0x4000_0000, 5)),
                &mut st,
                &reader,
                0.0,
            );
        }
        assert_eq!(st.logs.len(), MAX_KEPT_LOGS);
        assert_eq!(st.logs_dropped, 7);
        for _ in 0..(MAX_REPORTED_REJECTS + 3) {
            handle_exit(&mmio(0x1000, 1), &mut st, &reader, 0.0);
        }
        assert_eq!(
            st.dropped_summary().as_deref(),
            Some(
                "500 more phase markers dropped; 7 more guest log messages dropped; \
                 3 more rejected hypercalls not reported"
            )
        );
        assert_eq!(ExitState::default().dropped_summary(), None);
    }

    #[test]
    fn guest_text_is_escaped_to_one_line() {
        assert_eq!(escape_guest_text("plain text, ok"), "plain text, ok");
        assert_eq!(
            escape_guest_text("a\nkvm-wss: run finished OK\r\t\\"),
            "a\\nkvm-wss: run finished OK\\r\\t\\\\"
        );
        assert_eq!(
            escape_guest_text("\x1b[31mred\x1b]0;title\x07\u{9b}\u{7f}"),
            "\\u{1b}[31mred\\u{1b}]0;title\\u{7}\\u{9b}\\u{7f}"
        );
        assert_eq!(
            escape_guest_text("\u{202e}x\u{2028}y\u{2066}é"),
            "\\u{202e}x\\u{2028}y\\u{2066}é"
        );
        // Whatever the bytes, the result has no control character left.
        for b in 0..=255u8 {
            let text = String::from_utf8_lossy(&[b'a', b, b'z']).into_owned();
            let e = escape_guest_text(&text);
            assert!(!e.chars().any(char::is_control), "{b:#x}: {e:?}");
        }
    }

    #[test]
    fn log_and_panic_text_is_escaped() {
        let mem = b"hi\n\x1b[2Jthere";
        let read = |addr: u64, len: u64| -> Option<Vec<u8>> {
            mem.get(addr as usize..(addr + len) as usize)
                .map(<[u8]>::to_vec)
        };
        let mut st = ExitState::default();
        handle_exit(
            &mmio(db::LOG, pack_buf(0, mem.len() as u64)),
            &mut st,
            &read,
            0.0,
        );
        assert_eq!(st.logs, ["hi\\n\\u{1b}[2Jthere"]);
        assert_eq!(
            handle_exit(
                &mmio(db::PANIC, pack_buf(0, mem.len() as u64)),
                &mut st,
                &read,
                0.0
            ),
            Action::Stop(Stop::Panic("hi\\n\\u{1b}[2Jthere".into()))
        );
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
