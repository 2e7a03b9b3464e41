//! The guest ABI of kvm-wss, shared by the VMM and the guest runtime.
//!
//! Everything both sides must agree on lives here and nowhere else: the
//! guest-physical memory layout, the doorbell (hypercall) addresses and their
//! encoding, the parameter block the VMM fills in before boot and the status
//! block the guest updates while it runs.
//!
//! Guest-physical addresses equal guest-virtual addresses: the VMM builds an
//! identity map.
#![no_std]

pub mod units;

/// Size of a tracked page. Truth bitmaps and trackers count 4 KiB pages.
pub const PAGE_SIZE: u64 = 4096;

/// Start of the metadata slot: parameter block, status block, truth bitmaps
/// and page tables. The VMM owns this memory and never tracks it.
pub const META_BASE: u64 = 0x20_0000;

/// Guest-physical base of the 2 MiB window of doorbells. It is mapped by the
/// page tables but lies in no memory slot, so every access exits to the VMM
/// with `KVM_EXIT_MMIO`.
pub const DOORBELL_BASE: u64 = 0x3fe0_0000;

/// Size of the doorbell window.
pub const DOORBELL_SIZE: u64 = 0x20_0000;

/// Guest-physical base of tracked RAM. Guest images are linked here
/// (see `linker.ld`), followed by the stack and the data region.
pub const RAM_BASE: u64 = 0x4000_0000;

/// Largest guest RAM the layout supports (the page-table area is sized for it).
pub const MAX_RAM_SIZE: u64 = 64 << 30;

/// Size of each vCPU's stack. The stacks sit right after the loaded image,
/// vCPU 0's on top: vCPU `i`'s is `[stack_top - (i+1)*STACK_SIZE,
/// stack_top - i*STACK_SIZE)`.
pub const STACK_SIZE: u64 = 1 << 20;

/// Most vCPUs a guest may have (`--vcpus`).
pub const MAX_VCPUS: usize = 8;

/// Longest message a `log` or `panic` hypercall may pass.
pub const LOG_MAX: u64 = 4096;

/// The doorbells: each is an aligned 8-byte store at `DOORBELL_BASE + offset`.
pub mod doorbell {
    /// `exit(code)`: the program is done. The data is the exit code.
    pub const EXIT: u64 = 0x00;
    /// `log(ptr, len)`: print a message. The data is [`super::pack_buf`].
    pub const LOG: u64 = 0x08;
    /// `phase(marker)`: the program changes behaviour. The data is the marker.
    pub const PHASE: u64 = 0x10;
    /// `panic(ptr, len)`: the program panicked with this message and stops.
    pub const PANIC: u64 = 0x18;
    /// `sync(value)`: a rendezvous with the VMM. The vCPU stops until the
    /// VMM's sync hook has run (tests and benchmarks arm and collect pages
    /// there at exactly known points of the program).
    pub const SYNC: u64 = 0x20;
    /// `boundary()`: the guest finished the access it was in when the VMM
    /// held it at an interval boundary. Only the runtime's finishing copy
    /// of the access routines rings it (see [`super::Status::touch_code`]).
    pub const BOUNDARY: u64 = 0x28;
    /// `yield()`: the vCPU waits for another (a barrier) and offers the
    /// host CPU to the other vCPU threads before it goes on.
    pub const YIELD: u64 = 0x30;
    /// `sleep(ns)`: the vCPU has nothing to do for `ns` nanoseconds (an
    /// idle VM). The VMM takes its thread off the host CPU for that long,
    /// at most [`super::MAX_SLEEP_NS`], and sooner when it holds or stops
    /// the vCPU: the guest must read its clock on return and sleep again
    /// if its time has not come. A CPL 3 guest cannot `hlt`, so this is
    /// its halt.
    pub const SLEEP: u64 = 0x38;
}

/// The longest one `sleep` hypercall keeps the vCPU off the CPU, in
/// nanoseconds (a guest that asks for more sleeps again).
pub const MAX_SLEEP_NS: u64 = 100_000_000;

/// Bits of a packed buffer descriptor that hold the guest address.
pub const BUF_ADDR_BITS: u32 = 48;

/// Packs a guest buffer (address, length) into one doorbell store: the
/// address in the low 48 bits, the length in the high 16.
pub const fn pack_buf(addr: u64, len: u64) -> u64 {
    let len = if len > 0xffff { 0xffff } else { len };
    (addr & ((1 << BUF_ADDR_BITS) - 1)) | (len << BUF_ADDR_BITS)
}

/// Inverse of [`pack_buf`]: (address, length).
pub const fn unpack_buf(data: u64) -> (u64, u64) {
    (data & ((1 << BUF_ADDR_BITS) - 1), data >> BUF_ADDR_BITS)
}

/// Magic value at the start of [`Params`] ("KVMWSS01").
pub const PARAMS_MAGIC: u64 = u64::from_le_bytes(*b"KVMWSS01");

/// Version of this ABI. Bumped on any incompatible change.
pub const ABI_VERSION: u64 = 4;

/// Longest parameter key, in bytes.
pub const PARAM_KEY_LEN: usize = 32;
/// Longest parameter value, in bytes.
pub const PARAM_VALUE_LEN: usize = 96;
/// Most parameters a program can receive.
pub const MAX_PARAMS: usize = 24;

/// Longest name of the program's unit of work ([`Status::op_name`]).
pub const OP_NAME_LEN: usize = 32;
/// Program-specific result slots in [`Status::user`].
pub const USER_SLOTS: usize = 8;
/// Longest name of a result slot ([`Status::user_names`]).
pub const USER_NAME_LEN: usize = 24;

/// One `--param key=value`, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Param {
    pub key: [u8; PARAM_KEY_LEN],
    pub value: [u8; PARAM_VALUE_LEN],
}

impl Param {
    pub const EMPTY: Param = Param {
        key: [0; PARAM_KEY_LEN],
        value: [0; PARAM_VALUE_LEN],
    };

    /// The key, up to its first NUL.
    pub fn key(&self) -> &str {
        str_until_nul(&self.key)
    }

    /// The value, up to its first NUL.
    pub fn value(&self) -> &str {
        str_until_nul(&self.value)
    }
}

fn str_until_nul(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..end]).unwrap_or("")
}

/// The parameter block, written by the VMM at [`META_BASE`] before boot and
/// passed to the guest entry point in `rdi`. Read-only for the guest.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Params {
    pub magic: u64,
    pub version: u64,
    /// Guest RAM: `[ram_base, ram_base + ram_size)`.
    pub ram_base: u64,
    pub ram_size: u64,
    /// The data region, the only memory whose pages the truth counts and the
    /// trackers arm: `[data_start, data_end)`, page aligned.
    pub data_start: u64,
    pub data_end: u64,
    /// Top of the stacks: vCPU `i`'s stack is `[stack_top - (i+1) *
    /// STACK_SIZE, stack_top - i * STACK_SIZE)`.
    pub stack_top: u64,
    /// How many vCPUs run the program (1..=[`MAX_VCPUS`]). Each enters
    /// `_start` with the parameter block in `rdi` and its index in `rsi`.
    pub vcpus: u64,
    /// TSC frequency in Hz, for the guest clock.
    pub tsc_hz: u64,
    /// Seed of the guest PRNG.
    pub seed: u64,
    /// Requested working-set size in bytes (`--wss`).
    pub wss_bytes: u64,
    /// Address of the [`Status`] block.
    pub status: u64,
    /// Truth bitmaps: one bit per RAM page, bit `i` is page `ram_base + i*4K`.
    pub read_bitmap: u64,
    pub write_bitmap: u64,
    /// Length of each bitmap in 64-bit words.
    pub bitmap_words: u64,
    /// Number of valid entries in `params`.
    pub nparams: u64,
    pub params: [Param; MAX_PARAMS],
}

impl Params {
    /// Looks up a `--param` value by key.
    pub fn get(&self, key: &str) -> Option<&str> {
        let n = (self.nparams as usize).min(MAX_PARAMS);
        self.params[..n]
            .iter()
            .find(|p| p.key() == key)
            .map(|p| p.value())
    }
}

/// The status block: written by the guest while it runs, read by the VMM
/// without any exit. Each field is a naturally aligned u64 updated with a
/// single store, so the VMM never sees a torn value.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Status {
    /// Memory accesses performed so far by all vCPUs (the progress
    /// counter); each vCPU adds its batches with an atomic add.
    pub guest_ops: u64,
    /// The last phase marker announced.
    pub phase: u64,
    /// Checksum of the program's data, set just before a clean exit.
    pub checksum: u64,
    /// Nonzero once `checksum` is valid.
    pub checksum_valid: u64,
    /// TSC cycles the guest spent stalled in batches that took far longer
    /// than usual (tracked faults, host preemption), and how many such
    /// batches there were, summed over the vCPUs (atomic adds).
    pub stall_cycles: u64,
    pub stalls: u64,
    /// TSC cycles spent in the run loop, summed over the vCPUs (atomic
    /// adds), for an ops/s rate that counts the same thing in a guest and
    /// in a host process.
    pub run_cycles: u64,
    /// Program-specific results (for example the probe's timed touches).
    pub user: [u64; USER_SLOTS],
    /// Where the runtime's access routines are: `[touch_code, touch_code +
    /// touch_code_len)`. Each routine does one access and marks its page in
    /// the truth, so an access and its mark are one step only if no
    /// interval boundary falls between them. A vCPU held with its `rip` in
    /// that range is moved to the same offset of the finishing copy at
    /// `touch_finish`, which completes the access and its mark, rings
    /// [`doorbell::BOUNDARY`] and returns. Zero until the runtime starts.
    pub touch_code: u64,
    pub touch_code_len: u64,
    pub touch_finish: u64,
    /// Bit `i` is set once the program wrote result slot `user[i]`; the
    /// VMM reports only those slots (summary.json `guest_results`).
    pub user_set: u64,
    /// The name of each result slot, UTF-8, NUL-padded; empty for an
    /// unnamed slot.
    pub user_names: [[u8; USER_NAME_LEN]; USER_SLOTS],
    /// What the program counts as one operation in `guest_ops` (for
    /// example `lookups`), UTF-8, NUL-padded; empty means accesses.
    pub op_name: [u8; OP_NAME_LEN],
    /// Operations performed by each vCPU, written by that vCPU alone;
    /// they add up to `guest_ops`.
    pub vcpu_ops: [u64; MAX_VCPUS],
}

impl Status {
    /// The program's name for its unit of work, `accesses` unless it set
    /// one. Untrusted text: escape it before printing.
    pub fn op_name(&self) -> &str {
        match str_until_nul(&self.op_name) {
            "" => "accesses",
            name => name,
        }
    }

    /// The result slots the program wrote, in slot order, with their
    /// names (empty for an unnamed slot). Names are untrusted text.
    pub fn results(&self) -> impl Iterator<Item = (usize, &str, u64)> {
        (0..USER_SLOTS)
            .filter(|&i| self.user_set & (1 << i) != 0)
            .map(|i| (i, str_until_nul(&self.user_names[i]), self.user[i]))
    }
}

/// Copies `text` into a NUL-padded field, cut at a character boundary
/// when it is longer than the field.
pub fn fill_name(field: &mut [u8], text: &str) {
    let mut n = text.len().min(field.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    field.fill(0);
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
}

/// Byte offset of [`Params`] inside the metadata slot.
pub const PARAMS_OFFSET: u64 = 0;
/// Byte offset of [`Status`] inside the metadata slot.
pub const STATUS_OFFSET: u64 = 0x1000;
/// Byte offset of the read truth bitmap inside the metadata slot. The write
/// bitmap follows it, each rounded up to whole pages.
pub const BITMAPS_OFFSET: u64 = 0x2000;

/// Length in 64-bit words of one truth bitmap for `ram_size` bytes of RAM.
pub const fn bitmap_words(ram_size: u64) -> u64 {
    ram_size.div_ceil(PAGE_SIZE).div_ceil(64)
}

/// Rounds `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

const _: () = assert!(core::mem::size_of::<Params>() <= STATUS_OFFSET as usize);
const _: () = assert!(core::mem::size_of::<Status>() <= (BITMAPS_OFFSET - STATUS_OFFSET) as usize);
const _: () = assert!(DOORBELL_BASE + DOORBELL_SIZE <= RAM_BASE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_name_defaults_to_accesses() {
        let mut s = Status::default();
        assert_eq!(s.op_name(), "accesses");
        fill_name(&mut s.op_name, "lookups");
        assert_eq!(s.op_name(), "lookups");
    }

    #[test]
    fn only_written_result_slots_are_reported() {
        let mut s = Status::default();
        s.user[1] = 5;
        s.user[6] = 7;
        s.user_set = 1 << 6 | 1 << 0;
        fill_name(&mut s.user_names[6], "hits");
        let got: [(usize, &str, u64); 2] = {
            let mut it = s.results();
            [it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, [(0, "", 0), (6, "hits", 7)]);
        assert_eq!(s.results().count(), 2);
    }

    #[test]
    fn fill_name_cuts_at_a_char_boundary() {
        let mut field = [0xffu8; 4];
        fill_name(&mut field, "ab\u{e9}\u{e9}");
        assert_eq!(&field, b"ab\xc3\xa9");
        fill_name(&mut field, "abc\u{e9}");
        assert_eq!(&field, b"abc\0");
        fill_name(&mut field, "");
        assert_eq!(&field, &[0; 4]);
    }
}
