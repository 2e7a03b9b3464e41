//! The project's own userfaultfd bindings: the few structs, constants and
//! ioctls of `linux/userfaultfd.h` that the uffd tracker (and the uffd
//! floor of `bench trackers`) use, in the style of Cloud Hypervisor.
//!
//! They replace the `userfaultfd` crate, whose `userfaultfd-sys` generates
//! its bindings with bindgen at build time and so needs libclang on the
//! build machine. Every struct's size and every ioctl number is checked at
//! compile time against the kernel's values (x86_64 and aarch64 share
//! them: the asm-generic ioctl encoding).
//!
//! Only what is used is here: opening a userfaultfd that also sees kernel
//! faults, the `UFFDIO_API` handshake, `UFFDIO_REGISTER` (returning the
//! offered ioctls), `UFFDIO_UNREGISTER`, `UFFDIO_CONTINUE`, `UFFDIO_ZEROPAGE`,
//! `UFFDIO_COPY` (reclaim's restore) and reading
//! fault messages.

// The structs keep the kernel header's names (uffdio_api, uffd_msg, ...)
// so they can be checked against linux/userfaultfd.h by eye.
#![allow(non_camel_case_types)]

use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_int, c_ulong, c_void};
use vmm_sys_util::ioctl::{_IOC_READ, _IOC_WRITE, ioctl_expr, ioctl_with_mut_ref};

/// The API version `UFFDIO_API` expects in `uffdio_api::api`.
pub const UFFD_API: u64 = 0xAA;
/// The ioctl type of every userfaultfd ioctl.
pub const UFFDIO: u32 = 0xAA;

/// Ioctl ordinals; bit `1 << n` of an ioctl mask stands for ioctl `n`.
pub const _UFFDIO_REGISTER: u32 = 0x00;
pub const _UFFDIO_UNREGISTER: u32 = 0x01;
pub const _UFFDIO_COPY: u32 = 0x03;
pub const _UFFDIO_ZEROPAGE: u32 = 0x04;
pub const _UFFDIO_CONTINUE: u32 = 0x07;
pub const _UFFDIO_API: u32 = 0x3F;

pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub const UFFD_EVENT_FORK: u8 = 0x13;
pub const UFFD_EVENT_REMAP: u8 = 0x14;
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1 << 0;
pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 1 << 1;
pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 1 << 2;

pub const UFFD_FEATURE_MISSING_SHMEM: u64 = 1 << 5;
pub const UFFD_FEATURE_MINOR_SHMEM: u64 = 1 << 10;

pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
pub const UFFDIO_REGISTER_MODE_MINOR: u64 = 1 << 2;

pub const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1 << 0;
pub const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1 << 0;

/// Flag of the userfaultfd syscall: see only faults from user mode. Never
/// set here (KVM touches guest memory from the kernel); named so the tests
/// can check it is absent.
pub const UFFD_USER_MODE_ONLY: c_int = 1;

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct uffdio_api {
    pub api: u64,
    pub features: u64,
    pub ioctls: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct uffdio_range {
    pub start: u64,
    pub len: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct uffdio_register {
    pub range: uffdio_range,
    pub mode: u64,
    pub ioctls: u64,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct uffdio_continue {
    pub range: uffdio_range,
    pub mode: u64,
    /// Bytes mapped, or a negated errno.
    pub mapped: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct uffdio_zeropage {
    pub range: uffdio_range,
    pub mode: u64,
    /// Bytes filled, or a negated errno.
    pub zeropage: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct uffdio_copy {
    pub dst: u64,
    pub src: u64,
    pub len: u64,
    pub mode: u64,
    /// Bytes copied, or a negated errno.
    pub copy: i64,
}

/// The `pagefault` arm of `uffd_msg::arg`. `ptid` is the one member of the
/// kernel's `feat` union.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct uffd_msg_pagefault {
    pub flags: u64,
    pub address: u64,
    pub ptid: u32,
}

/// `uffd_msg::arg`: only the arm this crate reads, and the kernel's
/// `reserved` arm, which spans the whole union.
#[repr(C)]
#[derive(Clone, Copy)]
pub union uffd_msg_arg {
    pub pagefault: uffd_msg_pagefault,
    pub reserved: [u64; 3],
}

/// One message read from a userfaultfd. The kernel declares it `__packed`,
/// but every member sits at its natural alignment, so `repr(C)` matches
/// (checked below).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct uffd_msg {
    pub event: u8,
    pub reserved1: u8,
    pub reserved2: u16,
    pub reserved3: u32,
    pub arg: uffd_msg_arg,
}

/// Size of one `uffd_msg`: reads return whole multiples of it.
pub const MSG_SIZE: usize = size_of::<uffd_msg>();

const _: () = assert!(size_of::<uffdio_api>() == 24);
const _: () = assert!(size_of::<uffdio_range>() == 16);
const _: () = assert!(size_of::<uffdio_register>() == 32);
const _: () = assert!(size_of::<uffdio_continue>() == 32);
const _: () = assert!(offset_of!(uffdio_continue, mapped) == 24);
const _: () = assert!(size_of::<uffdio_zeropage>() == 32);
const _: () = assert!(offset_of!(uffdio_zeropage, zeropage) == 24);
const _: () = assert!(size_of::<uffdio_copy>() == 40);
const _: () = assert!(offset_of!(uffdio_copy, copy) == 32);
const _: () = assert!(size_of::<uffd_msg_pagefault>() == 24);
const _: () = assert!(size_of::<uffd_msg_arg>() == 24);
const _: () = assert!(MSG_SIZE == 32);
const _: () = assert!(offset_of!(uffd_msg, arg) == 8);
const _: () = assert!(offset_of!(uffd_msg_pagefault, address) == 8);
const _: () = assert!(offset_of!(uffd_msg_pagefault, ptid) == 16);

const fn iowr(nr: u32, size: usize) -> c_ulong {
    ioctl_expr(_IOC_READ | _IOC_WRITE, UFFDIO, nr, size as u32)
}

const fn ior(nr: u32, size: usize) -> c_ulong {
    ioctl_expr(_IOC_READ, UFFDIO, nr, size as u32)
}

/// `_IOWR(UFFDIO, _UFFDIO_API, struct uffdio_api)`
pub const UFFDIO_API: c_ulong = iowr(_UFFDIO_API, size_of::<uffdio_api>());
/// `_IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_register)`
pub const UFFDIO_REGISTER: c_ulong = iowr(_UFFDIO_REGISTER, size_of::<uffdio_register>());
/// `_IOR(UFFDIO, _UFFDIO_UNREGISTER, struct uffdio_range)`
pub const UFFDIO_UNREGISTER: c_ulong = ior(_UFFDIO_UNREGISTER, size_of::<uffdio_range>());
/// `_IOWR(UFFDIO, _UFFDIO_ZEROPAGE, struct uffdio_zeropage)`
pub const UFFDIO_ZEROPAGE: c_ulong = iowr(_UFFDIO_ZEROPAGE, size_of::<uffdio_zeropage>());
/// `_IOWR(UFFDIO, _UFFDIO_CONTINUE, struct uffdio_continue)`
pub const UFFDIO_CONTINUE: c_ulong = iowr(_UFFDIO_CONTINUE, size_of::<uffdio_continue>());
/// `_IOWR(UFFDIO, _UFFDIO_COPY, struct uffdio_copy)`
pub const UFFDIO_COPY: c_ulong = iowr(_UFFDIO_COPY, size_of::<uffdio_copy>());

// The kernel's values, as its headers compute them.
const _: () = assert!(UFFDIO_API == 0xC018_AA3F);
const _: () = assert!(UFFDIO_REGISTER == 0xC020_AA00);
const _: () = assert!(UFFDIO_UNREGISTER == 0x8010_AA01);
const _: () = assert!(UFFDIO_CONTINUE == 0xC020_AA07);
const _: () = assert!(UFFDIO_ZEROPAGE == 0xC020_AA04);
const _: () = assert!(UFFDIO_COPY == 0xC028_AA03);

/// A message this module cannot turn into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    #[error("unknown userfaultfd event {0:#x}")]
    UnknownEvent(u8),
    #[error("a userfaultfd message is {MSG_SIZE} bytes, not {0}")]
    BadLength(usize),
}

/// What a userfaultfd message reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// An access to `address`, as the kernel reports it (page-aligned
    /// unless `UFFD_FEATURE_EXACT_ADDRESS` was asked for); `flags` are
    /// `UFFD_PAGEFAULT_FLAG_*`.
    Pagefault { address: u64, flags: u64 },
    /// A non-cooperative event (fork, remap, remove, unmap) the tracker
    /// never asks for but counts should one come.
    Other { event: u8 },
}

impl uffd_msg {
    /// Decodes one message from the bytes the kernel wrote (native endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<uffd_msg, MsgError> {
        let bytes: &[u8; MSG_SIZE] = bytes
            .try_into()
            .map_err(|_| MsgError::BadLength(bytes.len()))?;
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_ne_bytes(word)
        };
        Ok(uffd_msg {
            event: bytes[0],
            reserved1: bytes[1],
            reserved2: u16::from_ne_bytes([bytes[2], bytes[3]]),
            reserved3: u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            arg: uffd_msg_arg {
                reserved: [u64_at(8), u64_at(16), u64_at(24)],
            },
        })
    }

    /// The `pagefault` arm of the message, whatever its event.
    pub fn pagefault(&self) -> uffd_msg_pagefault {
        // SAFETY: both arms of the union are plain integers with no invalid
        // bit patterns, and `reserved` covers every byte of `pagefault`
        // (sizes checked at compile time), so reading it is always defined.
        unsafe { self.arg.pagefault }
    }

    pub fn event(&self) -> Result<Event, MsgError> {
        match self.event {
            UFFD_EVENT_PAGEFAULT => {
                let pf = self.pagefault();
                Ok(Event::Pagefault {
                    address: pf.address,
                    flags: pf.flags,
                })
            }
            e @ (UFFD_EVENT_FORK | UFFD_EVENT_REMAP | UFFD_EVENT_REMOVE | UFFD_EVENT_UNMAP) => {
                Ok(Event::Other { event: e })
            }
            e => Err(MsgError::UnknownEvent(e)),
        }
    }
}

/// Room for the messages of one `read`.
pub struct EventBuffer(Vec<u8>);

impl EventBuffer {
    pub fn new(messages: usize) -> EventBuffer {
        EventBuffer(vec![0; messages.max(1) * MSG_SIZE])
    }
}

/// An open userfaultfd. Closing it unregisters every range and wakes every
/// access still waiting on it.
#[derive(Debug)]
pub struct Userfaultfd(OwnedFd);

impl AsRawFd for Userfaultfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for Userfaultfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `ioctl(fd, request, arg)`, for the userfaultfd ioctls whose argument is
/// one of the structs above.
fn range(start: usize, len: usize) -> uffdio_range {
    uffdio_range {
        start: start as u64,
        len: len as u64,
    }
}

/// The bytes a filling ioctl (`UFFDIO_CONTINUE`, `UFFDIO_ZEROPAGE`)
/// handled, from its result and the count the kernel wrote back: an EAGAIN
/// after partial progress counts as that progress.
fn progress(result: io::Result<()>, done: i64) -> io::Result<u64> {
    match result {
        Ok(()) => Ok(done.max(0) as u64),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && done > 0 => Ok(done as u64),
        Err(e) => Err(e),
    }
}

fn uffd_ioctl<T>(uffd: &Userfaultfd, request: c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `uffd` is an open userfaultfd, and every caller passes the
    // request whose encoded size is `size_of::<T>()` with `T` its argument
    // struct (the numbers are derived from those structs above), so the
    // kernel reads and writes only within `*arg`, which is exclusively
    // borrowed for the call.
    let r = unsafe { ioctl_with_mut_ref(uffd, request, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Userfaultfd {
    /// The `userfaultfd` syscall with `flags` (`O_CLOEXEC`, `O_NONBLOCK`,
    /// `UFFD_USER_MODE_ONLY`).
    pub fn new(flags: c_int) -> io::Result<Userfaultfd> {
        // SAFETY: the syscall takes one integer argument and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = RawFd::try_from(fd).map_err(io::Error::other)?;
        // SAFETY: `fd` was just returned by the kernel and is owned by
        // nobody else.
        Ok(Userfaultfd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The `UFFDIO_API` handshake, requiring `features`. Fails (EINVAL)
    /// when the kernel lacks one of them. Returns what the kernel filled
    /// in: all the features it supports and the ioctls it offers.
    pub fn api(&self, features: u64) -> io::Result<uffdio_api> {
        let mut api = uffdio_api {
            api: UFFD_API,
            features,
            ioctls: 0,
        };
        uffd_ioctl(self, UFFDIO_API, &mut api)?;
        Ok(api)
    }

    /// Registers `[start, start + len)` in `mode` (`UFFDIO_REGISTER_MODE_*`)
    /// and returns the mask of the ioctls offered on it.
    pub fn register(&self, start: usize, len: usize, mode: u64) -> io::Result<u64> {
        let mut register = uffdio_register {
            range: range(start, len),
            mode,
            ioctls: 0,
        };
        uffd_ioctl(self, UFFDIO_REGISTER, &mut register)?;
        Ok(register.ioctls)
    }

    /// Unregisters `[start, start + len)`, waking the accesses waiting in it.
    pub fn unregister(&self, start: usize, len: usize) -> io::Result<()> {
        let mut range = range(start, len);
        uffd_ioctl(self, UFFDIO_UNREGISTER, &mut range)
    }

    /// `UFFDIO_CONTINUE` over `[start, start + len)`, waking the accesses
    /// waiting there unless `wake` is false. Returns the bytes mapped,
    /// which may be fewer than `len` (an EAGAIN after partial progress
    /// counts as that progress).
    pub fn r#continue(&self, start: usize, len: usize, wake: bool) -> io::Result<u64> {
        let mut cont = uffdio_continue {
            range: range(start, len),
            mode: if wake {
                0
            } else {
                UFFDIO_CONTINUE_MODE_DONTWAKE
            },
            mapped: 0,
        };
        let r = uffd_ioctl(self, UFFDIO_CONTINUE, &mut cont);
        progress(r, cont.mapped)
    }

    /// `UFFDIO_ZEROPAGE` over `[start, start + len)`: fills holes with
    /// zeroed pages and maps them, waking the accesses waiting there
    /// unless `wake` is false. Returns the bytes filled (see `continue`).
    pub fn zeropage(&self, start: usize, len: usize, wake: bool) -> io::Result<u64> {
        let mut zero = uffdio_zeropage {
            range: range(start, len),
            mode: if wake {
                0
            } else {
                UFFDIO_ZEROPAGE_MODE_DONTWAKE
            },
            zeropage: 0,
        };
        let r = uffd_ioctl(self, UFFDIO_ZEROPAGE, &mut zero);
        progress(r, zero.zeropage)
    }

    /// `UFFDIO_COPY` of one page: fills the hole at `dst` (page-aligned,
    /// inside the registered range) with a new page holding `page`'s
    /// bytes and maps it, waking the accesses waiting there. Returns the
    /// bytes copied (see `continue`); EEXIST when a page is already there.
    pub fn copy_page(&self, dst: usize, page: &[u8; 4096]) -> io::Result<u64> {
        let mut copy = uffdio_copy {
            dst: dst as u64,
            src: page.as_ptr() as u64,
            len: page.len() as u64,
            mode: 0,
            copy: 0,
        };
        // SAFETY: `self` is an open userfaultfd and UFFDIO_COPY's encoded
        // size is `size_of::<uffdio_copy>()` (checked at compile time), so
        // the kernel reads and writes only within `copy`, exclusively
        // borrowed. It also reads `len` bytes at `src`: `page` is borrowed
        // for the whole call and is exactly that long (its type says so).
        // It writes only into the page it allocates at `dst`, a hole of a
        // registered mapping that no Rust reference points into.
        let r = unsafe { ioctl_with_mut_ref(self, UFFDIO_COPY, &mut copy) };
        let r = if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
        progress(r, copy.copy)
    }

    /// Reads the pending messages into `buf` (none if the descriptor is
    /// non-blocking and nothing is pending) and decodes them one by one.
    pub fn read_events<'a>(
        &self,
        buf: &'a mut EventBuffer,
    ) -> io::Result<impl Iterator<Item = Result<Event, MsgError>> + 'a> {
        let bytes = &mut buf.0;
        // SAFETY: `bytes` is valid for writes of its whole length and
        // exclusively borrowed; the kernel writes at most that many bytes.
        let r = unsafe {
            libc::read(
                self.as_raw_fd(),
                bytes.as_mut_ptr().cast::<c_void>(),
                bytes.len(),
            )
        };
        let read = match r {
            r if r < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    0
                } else {
                    return Err(e);
                }
            }
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the userfaultfd reported end of file",
                ));
            }
            n => n as usize,
        };
        if read % MSG_SIZE != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                MsgError::BadLength(read % MSG_SIZE),
            ));
        }
        Ok(bytes[..read]
            .chunks_exact(MSG_SIZE)
            .map(|chunk| uffd_msg::from_bytes(chunk).and_then(|m| m.event())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_sizes_match_the_kernel() {
        assert_eq!(size_of::<uffdio_api>(), 24);
        assert_eq!(size_of::<uffdio_range>(), 16);
        assert_eq!(size_of::<uffdio_register>(), 32);
        assert_eq!(size_of::<uffdio_continue>(), 32);
        assert_eq!(size_of::<uffd_msg>(), 32);
        assert_eq!(offset_of!(uffd_msg, arg), 8);
    }

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // Values from linux/userfaultfd.h as compiled for x86_64.
        assert_eq!(UFFDIO_API, 3_222_841_919);
        assert_eq!(UFFDIO_REGISTER, 3_223_366_144);
        assert_eq!(UFFDIO_UNREGISTER, 2_148_575_745);
        assert_eq!(UFFDIO_CONTINUE, 3_223_366_151);
        assert_eq!(UFFDIO_COPY, 3_223_890_435);
        assert_eq!(size_of::<uffdio_copy>(), 40);
    }

    fn msg_bytes(event: u8, flags: u64, address: u64, ptid: u32) -> [u8; MSG_SIZE] {
        let mut b = [0u8; MSG_SIZE];
        b[0] = event;
        b[8..16].copy_from_slice(&flags.to_ne_bytes());
        b[16..24].copy_from_slice(&address.to_ne_bytes());
        b[24..28].copy_from_slice(&ptid.to_ne_bytes());
        b
    }

    #[test]
    fn decodes_a_pagefault_message() {
        let flags = UFFD_PAGEFAULT_FLAG_MINOR | UFFD_PAGEFAULT_FLAG_WRITE;
        let b = msg_bytes(UFFD_EVENT_PAGEFAULT, flags, 0x7f00_1234_5000, 42);
        let msg = uffd_msg::from_bytes(&b).expect("32 bytes");
        let pf = msg.pagefault();
        assert_eq!(
            (pf.flags, pf.address, pf.ptid),
            (flags, 0x7f00_1234_5000, 42)
        );
        assert_eq!(
            msg.event().expect("known event"),
            Event::Pagefault {
                address: 0x7f00_1234_5000,
                flags
            }
        );
    }

    #[test]
    fn decodes_other_events_and_rejects_unknown_ones_and_short_messages() {
        let msg = uffd_msg::from_bytes(&msg_bytes(UFFD_EVENT_REMOVE, 0, 0, 0)).expect("32 bytes");
        assert_eq!(
            msg.event().expect("known"),
            Event::Other {
                event: UFFD_EVENT_REMOVE
            }
        );
        let msg = uffd_msg::from_bytes(&msg_bytes(0x7f, 0, 0, 0)).expect("32 bytes");
        assert!(matches!(msg.event(), Err(MsgError::UnknownEvent(0x7f))));
        assert!(matches!(
            uffd_msg::from_bytes(&[0u8; 31]),
            Err(MsgError::BadLength(31))
        ));
    }

    #[test]
    fn a_non_blocking_userfaultfd_with_nothing_pending_reads_no_events() {
        let uffd = match Userfaultfd::new(libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY)
        {
            Ok(u) => u,
            Err(e) => {
                eprintln!("skipping: cannot create a userfaultfd here: {e}");
                return;
            }
        };
        let api = uffd.api(0).expect("UFFDIO_API");
        assert_ne!(api.ioctls & (1 << _UFFDIO_REGISTER), 0);
        let mut buf = EventBuffer::new(4);
        assert_eq!(uffd.read_events(&mut buf).expect("read").count(), 0);
    }

    #[test]
    fn partial_progress_before_eagain_counts() {
        let eagain = || Err(io::Error::from_raw_os_error(libc::EAGAIN));
        assert_eq!(progress(Ok(()), 8192).expect("ok"), 8192);
        assert_eq!(progress(eagain(), 4096).expect("progress"), 4096);
        assert!(progress(eagain(), 0).is_err(), "no progress: retry");
        let eexist = Err(io::Error::from_raw_os_error(libc::EEXIST));
        assert_eq!(
            progress(eexist, 4096).map_err(|e| e.raw_os_error()),
            Err(Some(libc::EEXIST))
        );
    }
}
