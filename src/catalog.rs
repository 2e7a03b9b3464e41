//! What every guest program does and which `--param`s it takes, for
//! `kvm-wss guests` and for checking a run's parameters before boot.
//!
//! This is data about the programs in `guest-programs/src/bin/`; the tests
//! below check it against their sources (names, parameter keys, defaults),
//! so the two cannot drift apart silently.

/// One `--param key=value` a program understands.
#[derive(Debug)]
pub struct ParamInfo {
    pub key: &'static str,
    /// The default as a user would type it, or a description when it
    /// depends on the run (such as `--wss`); empty when the parameter is
    /// required.
    pub default: &'static str,
    pub help: &'static str,
    /// The values it takes, checked before the guest boots.
    pub kind: ParamKind,
}

/// The type and range of a parameter's value. Each reads a value the way
/// the guest does (`guest/src/ctx.rs`), so that what passes here parses
/// there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A whole number, at least `min` (`str::parse::<u64>`).
    Count { min: u64 },
    /// A finite number in `[min, max]`, or `(min, max]` when `min_open`
    /// (`str::parse::<f64>`).
    Real { min: f64, max: f64, min_open: bool },
    /// A duration with a ms/s/m suffix, at least `min_ns`.
    Duration { min_ns: u64 },
    /// A comma list of sizes (K/M/G suffixes), each between one page and
    /// `--wss`.
    SizeList,
    /// A size (K/M/G suffixes; 0 allowed) of data the program holds beside
    /// `--wss`: page-rounded, the two must fit the guest RAM left for data.
    ExtraData,
    /// One of these words.
    Choice(&'static [&'static str]),
}

/// The out-of-range accesses `arrays` can make.
pub const ARRAYS_OUT_OF_RANGE: &[&str] = &["none", "page", "word", "element"];

/// The merge fanouts `extsort` takes (its merge keeps one cursor per run
/// on the stack).
pub const EXTSORT_FANOUTS: &[&str] = &[
    "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// The misbehaviours `badcall` knows.
pub const BADCALL_CALLS: &[&str] = &[
    "log_oob",
    "log_huge",
    "unknown_doorbell",
    "narrow",
    "read_doorbell",
    "exit_code",
    "panic",
    "triple_fault",
    "wild_store",
    "phase_spam",
    "log_spam",
    "ansi_log",
    "ansi_panic",
];

/// What a `--param` value should have been: the error of
/// [`ParamKind::check`], on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Expected {
    #[error("a whole number, at least {min}")]
    Count { min: u64 },
    #[error("a finite number, at least {min}")]
    AtLeast { min: f64 },
    #[error("a number in ({min}, {max}]")]
    OpenRange { min: f64, max: f64 },
    #[error("a number in [{min}, {max}]")]
    ClosedRange { min: f64, max: f64 },
    #[error("a positive duration such as 100ms, 5s or 2m")]
    PositiveDuration,
    #[error("a duration such as 0s, 100ms, 5s or 2m")]
    Duration,
    #[error("a comma list of sizes, each between 4K and --wss ({wss} bytes)")]
    SizeList { wss: u64 },
    #[error(
        "a size such as 0 or 64M that fits in guest RAM beside --wss (at most {room} bytes here; \
         raise --mem or lower --wss)"
    )]
    ExtraData { room: u64 },
    #[error("one of {}", .0.join(", "))]
    Choice(&'static [&'static str]),
}

impl ParamKind {
    /// Checks `value`; the error says what was expected. `wss` is the
    /// run's `--wss` in bytes, `data` the guest RAM its data can take
    /// (`--mem` less the image and stacks: see `machine::data_bytes`).
    pub fn check(&self, value: &str, wss: u64, data: u64) -> Result<(), Expected> {
        use wss_abi::units::{parse_duration_ns, parse_size};
        match *self {
            ParamKind::Count { min } => match value.parse::<u64>() {
                Ok(v) if v >= min => Ok(()),
                _ => Err(Expected::Count { min }),
            },
            ParamKind::Real { min, max, min_open } => {
                let range = if max == f64::MAX {
                    Expected::AtLeast { min }
                } else if min_open {
                    Expected::OpenRange { min, max }
                } else {
                    Expected::ClosedRange { min, max }
                };
                match value.parse::<f64>() {
                    Ok(v) if v.is_finite() && v <= max && (v > min || (!min_open && v == min)) => {
                        Ok(())
                    }
                    _ => Err(range),
                }
            }
            ParamKind::Duration { min_ns } => match parse_duration_ns(value) {
                Some(ns) if ns >= min_ns => Ok(()),
                _ if min_ns > 0 => Err(Expected::PositiveDuration),
                _ => Err(Expected::Duration),
            },
            ParamKind::SizeList => {
                let page = wss_abi::PAGE_SIZE;
                let ok = value.split(',').all(|entry| {
                    parse_size(entry)
                        .is_some_and(|b| b / page >= 1 && b / page <= (wss / page).max(1))
                });
                if ok {
                    Ok(())
                } else {
                    Err(Expected::SizeList { wss })
                }
            }
            ParamKind::ExtraData => {
                let page = wss_abi::PAGE_SIZE;
                let room = data.saturating_sub(wss_abi::align_up(wss.max(page), page));
                match parse_size(value) {
                    Some(b) if b.div_ceil(page) <= room / page => Ok(()),
                    _ => Err(Expected::ExtraData { room }),
                }
            }
            ParamKind::Choice(words) => {
                if words.contains(&value) {
                    Ok(())
                } else {
                    Err(Expected::Choice(words))
                }
            }
        }
    }
}

/// A `--param` value that is not what the program takes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadParam {
    #[error("--param {key}={value:?} is not {expected}")]
    Value {
        key: String,
        value: String,
        expected: Expected,
    },
    #[error("guest {guest} needs --param {key}=... (see `kvm-wss guests`)")]
    Missing { guest: String, key: String },
}

/// Checks the values of `params` for `program` (`None`: a guest image from
/// a file, whose own parameters are unknown, so only the ones every
/// program's runtime reads are checked) with `--wss` of `wss` bytes and
/// `data` bytes of guest RAM for data (see [`ParamKind::check`]). Keys are
/// checked elsewhere.
pub fn check_params(
    program: Option<&ProgramInfo>,
    params: &[(String, String)],
    wss: u64,
    data: u64,
) -> Result<(), BadParam> {
    let own: &[ParamInfo] = program.map_or(&[], |p| p.params);
    for (key, value) in params {
        let Some(info) = COMMON_PARAMS.iter().chain(own).find(|q| q.key == key) else {
            continue;
        };
        info.kind
            .check(value, wss, data)
            .map_err(|expected| BadParam::Value {
                key: key.clone(),
                value: value.clone(),
                expected,
            })?;
    }
    if let Some(p) = program
        && let Some(q) = p
            .params
            .iter()
            .find(|q| q.default.is_empty() && !params.iter().any(|(k, _)| k == q.key))
    {
        return Err(BadParam::Missing {
            guest: p.name.to_string(),
            key: q.key.to_string(),
        });
    }
    Ok(())
}

/// One guest program.
#[derive(Debug)]
pub struct ProgramInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// Its own parameters, beyond [`COMMON_PARAMS`].
    pub params: &'static [ParamInfo],
    /// The true working-set size to expect in each interval.
    pub expected_truth: &'static str,
    /// A program for testing kvm-wss itself rather than a workload.
    pub test_only: bool,
}

/// Parameters every program honours through the guest runtime.
pub static COMMON_PARAMS: &[ParamInfo] = &[
    ParamInfo {
        key: "ops",
        kind: ParamKind::Count { min: 0 },
        default: "0",
        help: "stop after exactly this many operations per vCPU, the unit a program counts \
               (accesses, allocations, requests, ...; 0: run until kvm-wss stops the guest)",
    },
    ParamInfo {
        key: "write_ratio",
        kind: ParamKind::Real {
            min: 0.0,
            max: 1.0,
            min_open: false,
        },
        default: "0.5",
        help: "probability that an access is a write, in [0, 1], in programs that draw \
               each access's kind (Ctx::next_is_write; not probe or arrays); in lsm the \
               share of puts",
    },
    ParamInfo {
        key: "rate",
        kind: ParamKind::Count { min: 0 },
        default: "0",
        help: "pace each vCPU to this many operations per second (0: as fast as it can); \
               time-driven programs then follow the operation count, which makes them \
               reproducible",
    },
];

/// The boot footprint of the programs that model a VM (ramp, idle): read by
/// each, done by `Boot` in guest-programs/src/lib.rs.
const BOOT_PARAM: ParamInfo = ParamInfo {
    key: "boot",
    kind: ParamKind::ExtraData,
    default: "0",
    help: "boot footprint: this much memory (page-rounded) beside --wss, every page written \
           once at the start and never again, as the memory a booted OS leaves resident but \
           no longer touches; in the truth of the intervals it is written in, checksummed, \
           and work rather than operations (ops, rate and guest_ops count the program's own \
           accesses, which follow it); `kvm-wss coordinate` gives its built-in VMs 64M, a \
           deliberately small OS footprint (the classic coordinator test's booted VMs use \
           about half their 512 MB at rest), so a coordinator has something of an idle VM \
           to take back",
};

/// Every guest program, sorted by name.
pub static CATALOG: &[ProgramInfo] = &[
    ProgramInfo {
        name: "arrays",
        summary: "exercises the runtime's typed arrays (u8, u32, u64, f64: get, set, fill, \
                  iter, copy_from, copy_within) over --wss, checking every value it reads; \
                  optionally makes one out-of-range access after a pass",
        params: &[ParamInfo {
            key: "out_of_range",
            kind: ParamKind::Choice(ARRAYS_OUT_OF_RANGE),
            default: "none",
            help: "none, or page, word or element: one access past the end after a pass \
                   (a guest panic naming the index and the length)",
        }],
        expected_truth: "every page of --wss (a multiple of 32K), read and written",
        test_only: true,
    },
    ProgramInfo {
        name: "badcall",
        summary: "makes one invalid hypercall or access (param call), to test that kvm-wss \
                  rejects it; logs `survived <call>` if resumed",
        params: &[ParamInfo {
            key: "call",
            kind: ParamKind::Choice(BADCALL_CALLS),
            default: "",
            help: "required: log_oob, log_huge, unknown_doorbell, narrow, read_doorbell, \
                   exit_code, panic, triple_fault, wild_store, phase_spam, log_spam, ansi_log \
                   or ansi_panic",
        }],
        expected_truth: "no data pages",
        test_only: true,
    },
    ProgramInfo {
        name: "chase",
        summary: "pointer chasing around one random cycle through all --wss pages (dependent \
                  loads); writes go to a separate word of the page just reached",
        params: &[],
        expected_truth: "min(wss, accesses per interval) pages, all read; an init pass \
                         (phase 0, before phase 1) reads and writes every page",
        test_only: false,
    },
    ProgramInfo {
        name: "extsort",
        summary: "external merge sort, repeated: generates --wss/2 of random keys (phase 0), \
                  forms runs through a min-heap in a buffer of wss/16 (1), merges fanout runs \
                  at a time per pass (2), checks the output sorted (3); counts records moved. \
                  Uses every vCPU (--vcpus): vCPU 0 generates the keys and forms the runs, \
                  the merge passes and the check split by output record; ops counts the \
                  records all vCPUs move, in one vCPU's order, so checksum and results for \
                  a given ops are the same on any vCPU count",
        params: &[ParamInfo {
            key: "fanout",
            kind: ParamKind::Choice(EXTSORT_FANOUTS),
            default: "4",
            help: "runs merged at once, 2 to 16",
        }],
        expected_truth: "phase 0: one area written; phase 1: one area read, the other written, \
                         plus the buffer; each merge pass: both areas (all of --wss but the \
                         buffer)",
        test_only: false,
    },
    ProgramInfo {
        name: "gcheap",
        summary: "garbage-collected heap of 64-byte objects under allocation churn (phase 1), \
                  with a stop-the-world mark (2) and sweep (3) whenever the free list runs out; \
                  counts allocations",
        params: &[],
        expected_truth: "mutating: the moving front of freshly allocated objects, the root \
                         table and live objects read at random; an interval with a collection: \
                         every page (the sweep reads and writes every header)",
        test_only: false,
    },
    ProgramInfo {
        name: "hashjoin",
        summary: "hash join, repeated: generates R and S (2 rows per row of R; phase 0), clears \
                  the table (1), builds it from R (2), probes it with S (3); the guest checks \
                  the matches against what the generator implies; counts rows",
        params: &[ParamInfo {
            key: "match_frac",
            kind: ParamKind::Real {
                min: 0.0,
                max: 1.0,
                min_open: false,
            },
            default: "0.5",
            help: "share of the rows of S whose key is in R, in [0, 1]",
        }],
        expected_truth: "phase 0: R and S written (3/7 of --wss); 1: the table (4/7); 2: R read \
                         in order, the table at random; 3: S in order, table and R at random",
        test_only: false,
    },
    ProgramInfo {
        name: "hotset",
        summary: "a share hot_prob of the accesses go uniformly to a hot set (the first \
                  hot_frac of --wss), the rest uniformly to the other pages",
        params: &[
            ParamInfo {
                key: "hot_frac",
                kind: ParamKind::Real {
                    min: 0.0,
                    max: 1.0,
                    min_open: true,
                },
                default: "0.1",
                help: "fraction of --wss in the hot set, in (0, 1]",
            },
            ParamInfo {
                key: "hot_prob",
                kind: ParamKind::Real {
                    min: 0.0,
                    max: 1.0,
                    min_open: false,
                },
                default: "0.9",
                help: "probability that an access goes to the hot set, in [0, 1]",
            },
        ],
        expected_truth: "H + C * (1 - exp(-(1 - hot_prob) * A / C)) pages for H hot and C cold \
                         pages and A accesses per interval",
        test_only: false,
    },
    ProgramInfo {
        name: "idle",
        summary: "one access to one page every `every`, asleep off the host CPU in between \
                  (after the boot footprint, if any)",
        params: &[
            ParamInfo {
                key: "every",
                kind: ParamKind::Duration { min_ns: 1 },
                default: "100ms",
                help: "time between accesses, from the end of the boot footprint",
            },
            BOOT_PARAM,
        ],
        expected_truth: "1 page in intervals at least `every` long; plus the boot pages written \
                         in the interval",
        test_only: false,
    },
    ProgramInfo {
        name: "lrucache",
        summary: "web cache of 512-byte objects with LRU eviction (hash index, linked list) \
                  under Zipf requests over 4x as many objects as it holds; phase 0 while \
                  filling, 1 from the first eviction; counts requests",
        params: &[ParamInfo {
            key: "theta",
            kind: ParamKind::Real {
                min: 0.0,
                max: f64::MAX,
                min_open: false,
            },
            default: "0.99",
            help: "Zipf exponent of object popularity, at least 0 (0 is uniform)",
        }],
        expected_truth: "the index and list pages requests reach plus the popular objects and \
                         one evicted entry written per miss; well under --wss for few \
                         requests, all of it for many",
        test_only: false,
    },
    ProgramInfo {
        name: "lsm",
        summary: "LSM key-value store: random puts (write_ratio) and gets (phase 1) on a \
                  sorted memtable, flushed to level-0 runs (2), four of which are compacted \
                  with level 1 into the other level-1 area (3); counts requests",
        params: &[],
        expected_truth: "serving: the memtable plus the pages binary searches reach in level 0 \
                         and 1 (well under --wss); an interval with a compaction: level 0 and \
                         both level-1 areas, up to all of --wss",
        test_only: false,
    },
    ProgramInfo {
        name: "pagerank",
        summary: "PageRank by power iteration over a CSR graph generated from the seed \
                  (56 bytes and 8 in-edges per vertex; phase 0), then per iteration a pass over \
                  the vertices (1) and one over the in-edges (2); counts edges. Uses every \
                  vCPU (--vcpus): vCPU 0 builds the graph, both passes of an iteration split \
                  by vertex range; ops counts the edges all vCPUs stream and pull, in one \
                  vCPU's order, so checksum and results for a given ops are the same on any \
                  vCPU count",
        params: &[ParamInfo {
            key: "damping",
            kind: ParamKind::Real {
                min: 0.0,
                max: 1.0,
                min_open: false,
            },
            default: "0.85",
            help: "damping factor, in [0, 1]",
        }],
        expected_truth: "every page once iterating (an iteration takes milliseconds); writes \
                         only to ranks and contributions (2/7 of --wss)",
        test_only: false,
    },
    ProgramInfo {
        name: "phases",
        summary: "uniform accesses within a prefix of --wss whose size changes every period, \
                  cycling through sizes; phase marker i at the i-th change",
        params: &[
            ParamInfo {
                key: "period",
                kind: ParamKind::Duration { min_ns: 1 },
                default: "5s",
                help: "time between size changes",
            },
            ParamInfo {
                key: "sizes",
                kind: ParamKind::SizeList,
                default: "wss/8,wss,wss/4",
                help: "comma list of sizes, each between 4K and --wss (e.g. 16M,128M,32M)",
            },
        ],
        expected_truth: "the current size (the larger of two across a change)",
        test_only: false,
    },
    ProgramInfo {
        name: "probe",
        summary: "populates --wss, then per round r: sync(2r), reads/writes/reads+writes/skips \
                  pages by i mod 4, timing each touch (user slots 0: cycles, 1: count), \
                  sync(2r+1); ignores ops, rate and write_ratio",
        params: &[
            ParamInfo {
                key: "rounds",
                kind: ParamKind::Count { min: 0 },
                default: "3",
                help: "number of sync-delimited rounds",
            },
            ParamInfo {
                key: "passes",
                kind: ParamKind::Count { min: 1 },
                default: "1",
                help: "visits of the region per round, all timed",
            },
        ],
        expected_truth: "between sync(2r) and sync(2r+1): 3/4 of the pages (i mod 4 in {0,2} \
                         read, in {1,2} written)",
        test_only: true,
    },
    ProgramInfo {
        name: "ramp",
        summary: "uniform accesses within a prefix of --wss that grows from 0 to --wss after \
                  delay, holds, then shrinks to floor; phase markers 0 delay and grow, 1 hold, 2 shrink, 3 floor",
        params: &[
            ParamInfo {
                key: "floor",
                kind: ParamKind::Real {
                    min: 0.0,
                    max: 1.0,
                    min_open: false,
                },
                default: "0.05",
                help: "final active set as a fraction of --wss, in [0, 1] (at least one page)",
            },
            ParamInfo {
                key: "delay",
                kind: ParamKind::Duration { min_ns: 0 },
                default: "0s",
                help: "time at one page before the growth begins, from the run's start (a boot \
                       footprint is written within it); unpaced, the ramp sleeps through it, \
                       touching the page every 100ms",
            },
            ParamInfo {
                key: "grow",
                kind: ParamKind::Duration { min_ns: 0 },
                default: "5s",
                help: "time to grow from nothing to --wss",
            },
            ParamInfo {
                key: "hold",
                kind: ParamKind::Duration { min_ns: 0 },
                default: "5s",
                help: "time at --wss",
            },
            ParamInfo {
                key: "shrink",
                kind: ParamKind::Duration { min_ns: 0 },
                default: "5s",
                help: "time to shrink from --wss to floor",
            },
            BOOT_PARAM,
        ],
        expected_truth: "the largest active set during the interval; plus the boot pages \
                         written in the interval (the timing counts from the run's start, \
                         boot included, unless paced)",
        test_only: false,
    },
    ProgramInfo {
        name: "random",
        summary: "uniformly random accesses over --wss",
        params: &[],
        expected_truth: "wss * (1 - exp(-A / wss)) pages for A accesses per interval",
        test_only: false,
    },
    ProgramInfo {
        name: "seq",
        summary: "sequential sweep over --wss, one access per page, wrapping",
        params: &[],
        expected_truth: "min(wss, accesses per interval) pages",
        test_only: false,
    },
    ProgramInfo {
        name: "stencil",
        summary: "heat diffusion on a periodic grid (512 cells a row, a row a page): Jacobi \
                  sweeps between two grids (phase 1), a checkpoint into a snapshot every \
                  `checkpoint` sweeps (2) that checks the heat is conserved; counts cells. \
                  Uses every vCPU (--vcpus): vCPU 0 sets the initial grid, sweeps and \
                  checkpoints split by row range; ops counts the cells all vCPUs update, in \
                  one vCPU's order, so checksum and results for a given ops are the same on \
                  any vCPU count",
        params: &[ParamInfo {
            key: "checkpoint",
            kind: ParamKind::Count { min: 1 },
            default: "8",
            help: "sweeps between checkpoints, at least 1",
        }],
        expected_truth: "sweeping: the two grids (2/3 of --wss), read and written; an interval \
                         with a checkpoint: all of --wss",
        test_only: false,
    },
    ProgramInfo {
        name: "stride",
        summary: "sequential sweep over every k-th page of --wss, wrapping",
        params: &[ParamInfo {
            key: "k",
            kind: ParamKind::Count { min: 1 },
            default: "4",
            help: "stride in pages, at least 1",
        }],
        expected_truth: "ceil(wss / k) pages once a sweep fits in an interval",
        test_only: false,
    },
    ProgramInfo {
        name: "team",
        summary: "for --vcpus: half of --wss shared, half split into per-vCPU slices; per \
                  round every vCPU updates its share of the shared pages and touches its \
                  slice at random, then (after a barrier) reads every shared page; the \
                  checksum does not depend on the vCPU count; ignores write_ratio",
        params: &[
            ParamInfo {
                key: "rounds",
                kind: ParamKind::Count { min: 0 },
                default: "100",
                help: "number of barrier-separated rounds",
            },
            ParamInfo {
                key: "crash_vcpu",
                kind: ParamKind::Count { min: 0 },
                default: "0",
                help: "k > 0: vCPU k-1 panics after the first round (tests that the run ends \
                       on it); 0: none",
            },
        ],
        expected_truth: "about all --wss pages in an interval that holds a whole round",
        test_only: true,
    },
    ProgramInfo {
        name: "zipf",
        summary: "Zipf-distributed page ranks over --wss, hot pages scattered across the region",
        params: &[ParamInfo {
            key: "theta",
            kind: ParamKind::Real {
                min: 0.0,
                max: f64::MAX,
                min_open: false,
            },
            default: "0.99",
            help: "Zipf exponent, at least 0 (0 is uniform)",
        }],
        expected_truth: "sum over ranks r of 1 - (1 - p_r)^A pages for A accesses per interval: \
                         a hot core plus a slowly growing tail",
        test_only: false,
    },
];

/// The program called `name`.
pub fn find(name: &str) -> Option<&'static ProgramInfo> {
    CATALOG.iter().find(|p| p.name == name)
}

/// Whether `p` understands `--param key=...`.
pub fn accepts_param(p: &ProgramInfo, key: &str) -> bool {
    COMMON_PARAMS.iter().chain(p.params).any(|q| q.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};
    use wss_abi::units::{parse_duration_ns, parse_size};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn bin_names() -> BTreeSet<String> {
        std::fs::read_dir(root().join("guest-programs/src/bin"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "rs"))
            .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
            .collect()
    }

    /// A parameter read in guest source: key, reader method, and the
    /// default expression (`None` for a raw `param("key")` lookup).
    #[derive(Debug, PartialEq)]
    struct Read {
        key: String,
        method: &'static str,
        default: Option<String>,
    }

    const READERS: &[&str] = &[
        "param_f64_or",
        "param_u64_or",
        "param_size_or",
        "param_duration_ns_or",
        "param",
        "get",
    ];

    /// Every `.reader("key"[, default])` call with a literal key in `src`.
    /// Method definitions (`fn param(...)`) and lookups by variable do not
    /// match, as they lack the dot or the literal.
    fn param_reads(src: &str) -> Vec<Read> {
        let mut reads = Vec::new();
        for method in READERS {
            let pat = format!(".{method}(");
            for (at, _) in src.match_indices(&pat) {
                let rest = src[at + pat.len()..].trim_start();
                let Some(rest) = rest.strip_prefix('"') else {
                    continue;
                };
                let Some(end) = rest.find('"') else { continue };
                let after = rest[end + 1..].trim_start();
                let default = after.strip_prefix(',').map(|d| {
                    let close = d.find(')').unwrap();
                    d[..close].trim().trim_end_matches(',').trim().to_string()
                });
                reads.push(Read {
                    key: rest[..end].to_string(),
                    method,
                    default,
                });
            }
        }
        reads
    }

    /// The value of a numeric literal in source (`5_000_000_000`, `0.9`).
    fn literal(expr: &str) -> f64 {
        expr.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("default {expr:?} is not a numeric literal"))
    }

    /// A catalog default, read the way the guest's reader `method` reads
    /// a parameter value.
    fn parsed_default(method: &str, default: &str) -> f64 {
        let v = match method {
            "param_f64_or" => default.parse().ok(),
            "param_u64_or" => default.parse::<u64>().ok().map(|x| x as f64),
            "param_size_or" => parse_size(default).map(|x| x as f64),
            "param_duration_ns_or" => parse_duration_ns(default).map(|x| x as f64),
            _ => None,
        };
        v.unwrap_or_else(|| panic!("catalog default {default:?} does not parse for {method}"))
    }

    /// Checks that every parameter `src` reads is in `documented` with the
    /// same default, and returns the keys read.
    fn check_reads(file: &Path, documented: &[&ParamInfo]) -> BTreeSet<String> {
        let src = std::fs::read_to_string(file).unwrap();
        let mut keys = BTreeSet::new();
        for read in param_reads(&src) {
            let info = documented
                .iter()
                .find(|p| p.key == read.key)
                .unwrap_or_else(|| {
                    panic!("{}: param {} is undocumented", file.display(), read.key)
                });
            if let Some(code) = &read.default {
                assert_eq!(
                    parsed_default(read.method, info.default),
                    literal(code),
                    "{}: default of {} differs from the catalog's {:?}",
                    file.display(),
                    read.key,
                    info.default
                );
            }
            keys.insert(read.key);
        }
        keys
    }

    #[test]
    fn catalog_names_are_the_guest_programs() {
        let names: BTreeSet<String> = CATALOG.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(names, bin_names());
        assert!(
            CATALOG.windows(2).all(|w| w[0].name < w[1].name),
            "CATALOG is not sorted"
        );
    }

    #[test]
    fn program_params_match_their_sources() {
        let bins = root().join("guest-programs/src/bin");
        for p in CATALOG {
            let documented: Vec<&ParamInfo> = COMMON_PARAMS.iter().chain(p.params).collect();
            let read = check_reads(&bins.join(format!("{}.rs", p.name)), &documented);
            for q in p.params {
                assert!(
                    read.contains(q.key),
                    "{}: catalog lists unused param {}",
                    p.name,
                    q.key
                );
                assert!(
                    !q.help.is_empty(),
                    "{}: param {} has no help",
                    p.name,
                    q.key
                );
            }
            let keys: BTreeSet<_> = documented.iter().map(|q| q.key).collect();
            assert_eq!(
                keys.len(),
                documented.len(),
                "{}: a param is listed twice",
                p.name
            );
            assert!(!p.summary.is_empty() && !p.expected_truth.is_empty());
        }
    }

    #[test]
    fn common_params_match_the_runtime() {
        let common: Vec<&ParamInfo> = COMMON_PARAMS.iter().collect();
        let mut read = check_reads(&root().join("guest/src/ctx.rs"), &common);
        read.extend(check_reads(
            &root().join("guest-programs/src/lib.rs"),
            &common,
        ));
        let keys: BTreeSet<String> = COMMON_PARAMS.iter().map(|p| p.key.to_string()).collect();
        assert_eq!(read, keys);
    }

    #[test]
    fn param_reads_parses_calls() {
        let src = r#"
            fn param(&self, key: &str) {}
            let a = g.param_f64_or("hot_prob", 0.9);
            let b = g.param_duration_ns_or(
                "period",
                5_000_000_000,
            );
            let c = params.get("call");
            let d = self.param(key);
        "#;
        let reads = param_reads(src);
        let got: Vec<(&str, &str, Option<&str>)> = reads
            .iter()
            .map(|r| (r.key.as_str(), r.method, r.default.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("hot_prob", "param_f64_or", Some("0.9")),
                ("period", "param_duration_ns_or", Some("5_000_000_000")),
                ("call", "get", None),
            ]
        );
        assert_eq!(literal("5_000_000_000"), 5e9);
        assert_eq!(parsed_default("param_duration_ns_or", "5s"), 5e9);
        assert_eq!(parsed_default("param_size_or", "16M"), (16u64 << 20) as f64);
    }

    #[test]
    fn defaults_pass_their_own_checks() {
        for p in CATALOG {
            for q in COMMON_PARAMS.iter().chain(p.params) {
                if q.default.is_empty() || q.kind == ParamKind::SizeList {
                    continue;
                }
                assert_eq!(
                    q.kind.check(q.default, 64 << 20, 512 << 20),
                    Ok(()),
                    "{}",
                    q.key
                );
            }
        }
        // The help of badcall's `call` lists exactly the known calls.
        let call = &find("badcall").unwrap().params[0];
        for c in BADCALL_CALLS {
            assert!(call.help.contains(c), "{c}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let zipf = find("zipf");
        let check =
            |k: &str, v: &str| check_params(zipf, &[(k.into(), v.into())], 64 << 20, 512 << 20);
        for (k, v) in [
            ("ops", "abc"),
            ("ops", "-5"),
            ("ops", ""),
            ("ops", "1.5"),
            ("rate", "-1"),
            ("theta", "NaN"),
            ("theta", "inf"),
            ("theta", "-0.5"),
            ("write_ratio", "2"),
            ("write_ratio", "-0.1"),
            ("write_ratio", "nan"),
        ] {
            let err = check(k, v).expect_err(v);
            assert!(!err.to_string().contains('\n'));
            assert!(
                matches!(&err, BadParam::Value { key, .. } if key == k),
                "{err:?}"
            );
        }
        for (k, v) in [
            ("ops", "0"),
            ("ops", "18446744073709551615"),
            ("rate", "1000"),
            ("theta", "0"),
            ("theta", "1.2"),
            ("write_ratio", "1"),
            ("write_ratio", "0"),
            ("unknown_key", "whatever"),
        ] {
            assert_eq!(check(k, v), Ok(()), "{k}={v}");
        }
        assert_eq!(
            check("write_ratio", "2").unwrap_err().to_string(),
            "--param write_ratio=\"2\" is not a number in [0, 1]"
        );
        let hotset = find("hotset");
        let h =
            |k: &str, v: &str| check_params(hotset, &[(k.into(), v.into())], 64 << 20, 512 << 20);
        assert!(h("hot_frac", "0").is_err() && h("hot_frac", "1").is_ok());
        let phases = find("phases");
        let ph = |v: &str| check_params(phases, &[("sizes".into(), v.into())], 64 << 20, 512 << 20);
        assert!(ph("16M,64M,4K").is_ok());
        assert!(ph("16M,128M").is_err() && ph("1K").is_err() && ph("16M,").is_err());
        assert!(
            check_params(
                phases,
                &[("period".into(), "0s".into())],
                1 << 20,
                512 << 20
            )
            .is_err()
        );
        assert!(
            check_params(
                find("stride"),
                &[("k".into(), "0".into())],
                1 << 20,
                512 << 20
            )
            .is_err()
        );
        let extsort = find("extsort");
        let fanout =
            |v: &str| check_params(extsort, &[("fanout".into(), v.into())], 1 << 20, 512 << 20);
        assert!(fanout("2").is_ok() && fanout("16").is_ok());
        assert!(fanout("1").is_err() && fanout("17").is_err() && fanout("x").is_err());
        let badcall = find("badcall");
        assert!(
            check_params(
                badcall,
                &[("call".into(), "phase_spam".into())],
                0,
                512 << 20
            )
            .is_ok()
        );
        assert!(check_params(badcall, &[("call".into(), "nope".into())], 0, 512 << 20).is_err());
        assert_eq!(
            check_params(badcall, &[], 0, 512 << 20)
                .unwrap_err()
                .to_string(),
            "guest badcall needs --param call=... (see `kvm-wss guests`)"
        );
        // A guest from a file: its runtime's parameters are still checked.
        assert!(check_params(None, &[("ops".into(), "x".into())], 0, 512 << 20).is_err());
        assert!(check_params(None, &[("theta".into(), "x".into())], 0, 512 << 20).is_ok());
    }

    #[test]
    fn boot_is_a_size_that_fits_beside_wss() {
        for name in ["ramp", "idle"] {
            let p = find(name);
            // 512M of RAM of which 510M is left for data; --wss 128M.
            let data = 510 << 20;
            let boot = |v: &str| check_params(p, &[("boot".into(), v.into())], 128 << 20, data);
            for ok in ["0", "64M", "1", "4K", "382M", "391167K"] {
                assert_eq!(boot(ok), Ok(()), "{name}: boot={ok}");
            }
            // 382M and 4K more, 382M and 1 byte more (a page more once
            // rounded), far more, and not sizes.
            for bad in ["391169K", "400556033", "1G", "-1", "64X", "", "1.5M"] {
                let err = boot(bad).expect_err(bad);
                let line = err.to_string();
                assert!(!line.contains('\n') && line.contains("boot"), "{line}");
            }
            assert_eq!(
                boot("1G").unwrap_err().to_string(),
                format!(
                    "--param boot=\"1G\" is not a size such as 0 or 64M that fits in guest RAM \
                     beside --wss (at most {} bytes here; raise --mem or lower --wss)",
                    382 << 20
                )
            );
            // --wss is page-rounded as the layout rounds it, at least a page.
            let tiny =
                |wss: u64, v: &str| ParamKind::ExtraData.check(v, wss, 3 * wss_abi::PAGE_SIZE);
            assert!(tiny(0, "8K").is_ok() && tiny(0, "8193").is_err());
            assert!(tiny(1, "8K").is_ok() && tiny(4097, "8K").is_err());
        }
        assert!(accepts_param(find("ramp").unwrap(), "boot"));
        assert!(!accepts_param(find("seq").unwrap(), "boot"));
    }

    #[test]
    fn lookups() {
        let hotset = find("hotset").unwrap();
        assert_eq!(hotset.name, "hotset");
        assert!(find("nope").is_none());
        assert!(accepts_param(hotset, "hot_prob"));
        assert!(accepts_param(hotset, "write_ratio"));
        assert!(!accepts_param(hotset, "theta"));
        assert!(accepts_param(find("zipf").unwrap(), "theta"));
    }
}
