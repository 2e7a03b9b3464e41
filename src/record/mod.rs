//! Exact traces of a run (`run --record`): per sampler tick, the set of data
//! pages the guest touched (read or wrote) and the set it wrote, with what a
//! replay needs to drive an estimator as the live run did, and the live
//! estimates to check it against. Written as the run goes into
//! `trace.bin` beside summary.json.
//!
//! # File format, version 3
//!
//! All integers are unsigned LEB128 varints unless said otherwise.
//!
//! ```text
//! file    = magic "KWSSTRC\0" (8 bytes) | version (u32 LE) = 3
//!           | header length (u32 LE, at most 1 MiB) | header (JSON, see RecordHeader)
//!           | [start] | tick* | trailer
//! start   = 0x03 | resident set
//! tick    = 0x01 | t_end_ns | ran_ns | guest_ops | phase | flags
//!           | [pages, lo, hi, policy: 4 x f64 LE]  if flags & ESTIMATE
//!           | [touched_samples]             if flags & CLOSES
//!           | touched set | written set
//! set     = run count | (gap after the previous run's end, length - 1)*
//! trailer = 0x02 | tick count | end label length (at most 64) | end label (UTF-8)
//! flags   : STOPPED 1 (an event ended the run in this tick), CLOSES 2 (the
//!           tick ends an interval), ESTIMATE 4 (that interval has an estimate)
//! ```
//!
//! `start` is the set of data pages resident at the first boundary: the guest
//! runs from boot to that boundary untracked, so the pages it touched there
//! are in no tick, yet a live estimator that samples the resident population
//! (follow) saw them. A replay starts its population from this set. Version 2
//! lacks it and is still read, as an empty start.
//!
//! The estimate is the interval's raw measurement with its band (`pages`,
//! `lo`, `hi`) and the estimator's policy value (`policy`). Version 1 stored
//! one estimate, which for ESX was the policy value with a band drawn around
//! it; such traces cannot be checked against the measurement and are
//! refused by version.
//!
//! Page indices are counted from the first data page (the estimators'
//! domain) and lie below the header's `estimator.domain_pages`. Nothing may
//! follow the trailer. A file without one (a run killed before it ended) is
//! refused as truncated.

mod pageset;
mod varint;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::estimate::{Estimate, EstimatorConfig, IntervalEstimate};
use crate::report::metrics::TruthColumn;
use crate::report::summary::EndKind;
use crate::track::TrackerKind;

pub use pageset::PageSet;
use varint::{Cursor, write_varint};

/// The trace's file name in a run's output folder.
pub const TRACE_FILE: &str = "trace.bin";
const MAGIC: &[u8; 8] = b"KWSSTRC\0";
pub const VERSION: u32 = 3;
/// The older version still read: the same, without the start set.
const VERSION_WITHOUT_START: u32 = 2;
const MAX_HEADER: u32 = 1 << 20;
/// The largest trace read back; far above an hour of a busy guest.
const MAX_FILE: u64 = 1 << 30;
const MAX_END_LABEL: u64 = 64;
const TAG_TICK: u8 = 1;
const TAG_TRAILER: u8 = 2;
const TAG_START: u8 = 3;
const FLAG_STOPPED: u64 = 1;
const FLAG_CLOSES: u64 = 2;
const FLAG_ESTIMATE: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("I/O error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes, more than the {MAX_FILE} a trace may have")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("not a kvm-wss trace (bad magic)")]
    BadMagic,
    #[error(
        "trace format version {found} is not the supported {VERSION} (or {VERSION_WITHOUT_START})"
    )]
    Version { found: u32 },
    #[error("trace header is not valid")]
    Header(#[source] serde_json::Error),
    #[error("trace header: {0}")]
    BadHeader(&'static str),
    #[error("trace is corrupt at byte {offset}: {what}")]
    Corrupt { offset: usize, what: &'static str },
    #[error("trace is cut short at byte {offset} (reading {what})")]
    Truncated { offset: usize, what: &'static str },
    #[error("cannot encode the trace header")]
    Encode(#[source] serde_json::Error),
    #[error("cannot read the trace {path}")]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<RecordError>,
    },
}

impl RecordError {
    /// Adds the file's name to an error found in its bytes.
    fn in_file(self, path: &Path) -> RecordError {
        match self {
            e @ (RecordError::Io { .. } | RecordError::TooLarge { .. }) => e,
            e => RecordError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }
}

/// The shortest `--record-tick`: every recorded tick holds the guest and
/// reads the truth, as an interval does (see `cli::MIN_INTERVAL`).
pub const MIN_RECORD_TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordTickError {
    #[error(
        "--record-tick {0:?} is shorter than the shortest the sampler can honour, {MIN_RECORD_TICK:?}"
    )]
    TooShort(Duration),
    #[error(
        "--record-tick {record_tick:?} does not divide the estimator's tick, {tick:?} (the interval over the estimator's {ticks} ticks)"
    )]
    NotADivisor {
        record_tick: Duration,
        tick: Duration,
        ticks: u32,
    },
}

/// How many recorded ticks make one estimator tick: 1 without
/// `record_tick`, else the estimator's tick (`interval / estimator_ticks`)
/// over `record_tick`, which must divide it exactly.
pub fn recorded_per_tick(
    interval: Duration,
    estimator_ticks: u32,
    record_tick: Option<Duration>,
) -> Result<u32, RecordTickError> {
    let Some(record_tick) = record_tick else {
        return Ok(1);
    };
    if record_tick < MIN_RECORD_TICK {
        return Err(RecordTickError::TooShort(record_tick));
    }
    let ticks = estimator_ticks.max(1);
    let tick = interval / ticks;
    let (t, r) = (tick.as_nanos(), record_tick.as_nanos());
    u32::try_from(t / r)
        .ok()
        .filter(|&n| n >= 1 && t % r == 0)
        .ok_or(RecordTickError::NotADivisor {
            record_tick,
            tick,
            ticks,
        })
}

/// What a replay needs to know of the live run, written as JSON at the
/// start of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordHeader {
    pub guest: String,
    pub tracker: TrackerKind,
    /// The live estimator's settings; `domain_pages` bounds every page.
    pub estimator: EstimatorConfig,
    pub seed: u64,
    pub interval_ns: u64,
    /// Sampler ticks per interval (1 for esx and exhaustive).
    pub ticks_per_interval: u32,
    /// Length of one tick: the interval divided by the ticks.
    pub tick_ns: u64,
    pub warmup_intervals: u64,
    pub mem_pages: u64,
    pub wss_bytes: u64,
    /// vCPUs the guest ran on; traces written before the field existed
    /// are of one-vCPU runs.
    #[serde(default = "one_vcpu")]
    pub vcpus: u64,
}

fn one_vcpu() -> u64 {
    1
}

impl RecordHeader {
    fn check(&self) -> Result<(), RecordError> {
        if self.estimator.domain_pages == 0 {
            return Err(RecordError::BadHeader("empty domain"));
        }
        if self.ticks_per_interval == 0 || self.tick_ns == 0 || self.interval_ns == 0 {
            return Err(RecordError::BadHeader("zero tick or interval"));
        }
        Ok(())
    }

    /// Which truth the tracker can see: written pages for dirty-log, every
    /// touched page otherwise.
    pub fn truth_column(&self) -> TruthColumn {
        truth_column(self.tracker)
    }
}

/// The truth a tracker is judged against: written pages for a tracker that
/// sees writes only, every touched page otherwise. The one place this is
/// decided, for live runs and replays.
pub fn truth_column(tracker: TrackerKind) -> TruthColumn {
    if tracker.writes_only() {
        TruthColumn::Writes
    } else {
        TruthColumn::All
    }
}

/// What closing an interval produced live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Close {
    pub estimate: Option<IntervalEstimate>,
    pub touched_samples: u64,
}

/// One sampler tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// End of the tick (the hold that ended it), since the guest started.
    pub t_end_ns: u64,
    /// Time the guest ran in the tick.
    pub ran_ns: u64,
    /// Guest accesses in the tick.
    pub guest_ops: u64,
    /// Phase marker in force at its end.
    pub phase: u64,
    /// An event (guest exit, Ctrl-C) ended the run in this tick.
    pub stopped: bool,
    /// Set when the tick ends an interval.
    pub close: Option<Close>,
    /// Data pages read or written in the tick.
    pub touched: PageSet,
    /// Data pages written in the tick.
    pub written: PageSet,
}

/// A whole trace, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub header: RecordHeader,
    /// Data pages resident at the first boundary (empty in a version 2 trace).
    pub start: PageSet,
    pub ticks: Vec<Tick>,
    /// How the run ended.
    pub end: EndKind,
}

/// Writes a trace as the run goes.
pub struct TraceWriter {
    out: BufWriter<File>,
    path: PathBuf,
    ticks: u64,
    started: bool,
    buf: Vec<u8>,
}

impl TraceWriter {
    /// Creates `path` and writes the magic, version and header.
    pub fn create(path: &Path, header: &RecordHeader) -> Result<Self, RecordError> {
        let json = serde_json::to_vec(header).map_err(RecordError::Encode)?;
        let io = |source| RecordError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = u32::try_from(json.len())
            .ok()
            .filter(|&n| n <= MAX_HEADER)
            .ok_or(RecordError::BadHeader("header longer than 1 MiB"))?;
        let mut out = BufWriter::new(File::create(path).map_err(io)?);
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&VERSION.to_le_bytes()).map_err(io)?;
        out.write_all(&len.to_le_bytes()).map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(TraceWriter {
            out,
            path: path.to_path_buf(),
            ticks: 0,
            started: false,
            buf: Vec::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> RecordError {
        RecordError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes the data pages resident at the first boundary; once, before
    /// the first tick.
    pub fn start(&mut self, resident: &PageSet) -> Result<(), RecordError> {
        if self.ticks > 0 || self.started {
            return Err(RecordError::BadHeader(
                "the start set comes once, before the ticks",
            ));
        }
        self.started = true;
        let b = &mut self.buf;
        b.clear();
        b.push(TAG_START);
        resident.encode(b);
        self.out.write_all(&self.buf).map_err(|e| self.io(e))
    }

    pub fn tick(&mut self, t: &Tick) -> Result<(), RecordError> {
        let b = &mut self.buf;
        b.clear();
        b.push(TAG_TICK);
        for v in [t.t_end_ns, t.ran_ns, t.guest_ops, t.phase] {
            write_varint(b, v);
        }
        let estimate = t.close.and_then(|c| c.estimate);
        let flags = u64::from(t.stopped) * FLAG_STOPPED
            + u64::from(t.close.is_some()) * FLAG_CLOSES
            + u64::from(estimate.is_some()) * FLAG_ESTIMATE;
        write_varint(b, flags);
        if let Some(e) = estimate {
            for v in [e.raw.pages, e.raw.lo, e.raw.hi, e.policy_pages] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        if let Some(c) = t.close {
            write_varint(b, c.touched_samples);
        }
        t.touched.encode(b);
        t.written.encode(b);
        self.out.write_all(&self.buf).map_err(|e| self.io(e))?;
        self.ticks += 1;
        Ok(())
    }

    /// Writes the trailer and flushes: the trace is complete.
    pub fn finish(mut self, end: EndKind) -> Result<(), RecordError> {
        let mut b = vec![TAG_TRAILER];
        write_varint(&mut b, self.ticks);
        let label = end.label().as_bytes();
        write_varint(&mut b, label.len() as u64);
        b.extend_from_slice(label);
        self.out.write_all(&b).map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))
    }
}

/// Reads the trace at `path`.
pub fn read(path: &Path) -> Result<Recording, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE {
        return Err(RecordError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode(&bytes).map_err(|e| e.in_file(path))
}

/// Decodes a whole trace.
pub fn decode(bytes: &[u8]) -> Result<Recording, RecordError> {
    let mut cur = Cursor::new(bytes);
    if cur.bytes(MAGIC.len(), "magic").ok() != Some(&MAGIC[..]) {
        return Err(RecordError::BadMagic);
    }
    let version = cur.u32_le("version")?;
    if version != VERSION && version != VERSION_WITHOUT_START {
        return Err(RecordError::Version { found: version });
    }
    let len = cur.u32_le("header length")?;
    if len > MAX_HEADER {
        return Err(cur.corrupt("header longer than 1 MiB"));
    }
    let header: RecordHeader =
        serde_json::from_slice(cur.bytes(len as usize, "header")?).map_err(RecordError::Header)?;
    header.check()?;
    let domain = header.estimator.domain_pages;
    let mut ticks = Vec::new();
    let mut start = None;
    loop {
        match cur.u8("tick tag")? {
            TAG_START => {
                if version == VERSION_WITHOUT_START || start.is_some() || !ticks.is_empty() {
                    return Err(cur.corrupt("a start set out of place"));
                }
                start = Some(PageSet::decode(&mut cur, domain)?);
            }
            TAG_TICK => ticks.push(decode_tick(&mut cur, domain)?),
            TAG_TRAILER => break,
            _ => return Err(cur.corrupt("unknown record tag")),
        }
    }
    if cur.varint("tick count")? != ticks.len() as u64 {
        return Err(cur.corrupt("tick count does not match the ticks"));
    }
    let n = cur.varint("end label length")?;
    if n > MAX_END_LABEL {
        return Err(cur.corrupt("end label too long"));
    }
    let label = std::str::from_utf8(cur.bytes(n as usize, "end label")?)
        .map_err(|_| cur.corrupt("end label is not UTF-8"))?;
    let end = EndKind::from_label(label).ok_or_else(|| cur.corrupt("unknown end label"))?;
    if cur.remaining() != 0 {
        return Err(cur.corrupt("bytes after the trailer"));
    }
    Ok(Recording {
        header,
        start: start.unwrap_or_default(),
        ticks,
        end,
    })
}

fn decode_tick(cur: &mut Cursor<'_>, domain: u64) -> Result<Tick, RecordError> {
    let t_end_ns = cur.varint("tick end")?;
    let ran_ns = cur.varint("tick run time")?;
    let guest_ops = cur.varint("guest ops")?;
    let phase = cur.varint("phase")?;
    let flags = cur.varint("flags")?;
    if flags & !(FLAG_STOPPED | FLAG_CLOSES | FLAG_ESTIMATE) != 0
        || flags & FLAG_ESTIMATE != 0 && flags & FLAG_CLOSES == 0
    {
        return Err(cur.corrupt("bad tick flags"));
    }
    let estimate = if flags & FLAG_ESTIMATE != 0 {
        Some(IntervalEstimate {
            raw: Estimate {
                pages: cur.f64_le("estimate")?,
                lo: cur.f64_le("estimate low")?,
                hi: cur.f64_le("estimate high")?,
            },
            policy_pages: cur.f64_le("policy estimate")?,
        })
    } else {
        None
    };
    let close = if flags & FLAG_CLOSES != 0 {
        Some(Close {
            estimate,
            touched_samples: cur.varint("touched samples")?,
        })
    } else {
        None
    };
    let at = cur.offset();
    let touched = PageSet::decode(cur, domain)?;
    let written = PageSet::decode(cur, domain)?;
    if PageSet::union_len([&touched, &written]) != touched.len() {
        return Err(RecordError::Corrupt {
            offset: at,
            what: "a written page that is not touched",
        });
    }
    Ok(Tick {
        t_end_ns,
        ran_ns,
        guest_ops,
        phase,
        stopped: flags & FLAG_STOPPED != 0,
        close,
        touched,
        written,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::estimate::{DamonConfig, EstimatorKind, EsxGains};

    pub(crate) fn header() -> RecordHeader {
        RecordHeader {
            guest: "scripted".into(),
            tracker: TrackerKind::Uffd,
            estimator: EstimatorConfig {
                kind: EstimatorKind::Esx,
                domain_pages: 1000,
                sample_pages: 50,
                esx: EsxGains::default(),
                damon: DamonConfig::default(),
                follow: Default::default(),
            },
            seed: 7,
            interval_ns: 100_000_000,
            ticks_per_interval: 1,
            tick_ns: 100_000_000,
            warmup_intervals: 2,
            mem_pages: 4096,
            wss_bytes: 4 << 20,
            vcpus: 1,
        }
    }

    fn tick(i: u64, close: bool) -> Tick {
        Tick {
            t_end_ns: (i + 1) * 100_000_000,
            ran_ns: 99_000_000 + i,
            guest_ops: 1000 * i,
            phase: i / 3,
            stopped: false,
            close: close.then_some(Close {
                estimate: Some(IntervalEstimate {
                    raw: Estimate {
                        pages: 1.0 / 3.0,
                        lo: 0.1,
                        hi: 2.5,
                    },
                    policy_pages: 2.0 / 3.0,
                }),
                touched_samples: i,
            }),
            touched: PageSet::from_sorted((i * 10..i * 10 + 100).chain([999])),
            written: PageSet::from_sorted(i * 10..i * 10 + 5),
        }
    }

    fn start() -> PageSet {
        PageSet::from_sorted([3, 4, 5, 700])
    }

    fn write(ticks: &[Tick], dir: &Path) -> PathBuf {
        let path = dir.join(TRACE_FILE);
        let mut w = TraceWriter::create(&path, &header()).unwrap();
        w.start(&start()).unwrap();
        for t in ticks {
            w.tick(t).unwrap();
        }
        w.finish(EndKind::Duration).unwrap();
        path
    }

    #[test]
    fn a_trace_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut ticks: Vec<Tick> = (0..5).map(|i| tick(i, i % 2 == 1)).collect();
        ticks[4].stopped = true;
        ticks[3].close = Some(Close {
            estimate: None,
            touched_samples: 0,
        });
        let rec = read(&write(&ticks, dir.path())).unwrap();
        assert_eq!(rec.header, header());
        assert_eq!(rec.start, start());
        assert_eq!(rec.ticks, ticks);
        assert_eq!(rec.end, EndKind::Duration);
    }

    /// The start set's bytes in a trace written by `write`: after magic,
    /// version, header length and header.
    fn start_span(bytes: &[u8]) -> std::ops::Range<usize> {
        let header = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        let at = 16 + header;
        let mut enc = vec![TAG_START];
        start().encode(&mut enc);
        assert_eq!(&bytes[at..at + enc.len()], &enc[..]);
        at..at + enc.len()
    }

    #[test]
    fn a_version_2_trace_reads_with_an_empty_start_and_may_not_have_one() {
        let dir = tempfile::tempdir().unwrap();
        let ticks: Vec<Tick> = (0..3).map(|i| tick(i, true)).collect();
        let bytes = std::fs::read(write(&ticks, dir.path())).unwrap();
        let span = start_span(&bytes);
        let mut v2 = bytes.clone();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(decode(&v2), Err(RecordError::Corrupt { .. })));
        v2.drain(span.clone());
        let rec = decode(&v2).unwrap();
        assert!(rec.start.is_empty());
        assert_eq!(rec.ticks, ticks);
        // Version 3 without a start set is an empty start too.
        let mut bare = bytes.clone();
        bare.drain(span);
        assert_eq!(decode(&bare).unwrap().start, PageSet::default());
    }

    #[test]
    fn the_start_set_comes_once_before_the_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRACE_FILE);
        let mut w = TraceWriter::create(&path, &header()).unwrap();
        w.start(&start()).unwrap();
        assert!(w.start(&start()).is_err());
        let mut w = TraceWriter::create(&path, &header()).unwrap();
        w.tick(&tick(0, false)).unwrap();
        assert!(w.start(&start()).is_err());
        // A second start set, or one after a tick, is refused on reading.
        let ticks = [tick(0, false)];
        let bytes = std::fs::read(write(&ticks, dir.path())).unwrap();
        let span = start_span(&bytes);
        let set = bytes[span.clone()].to_vec();
        let mut twice = bytes.clone();
        twice.splice(span.end..span.end, set.iter().copied());
        assert!(crate::error_chain(&decode(&twice).unwrap_err()).contains("out of place"));
        let mut late = bytes.clone();
        late.drain(span.clone());
        // A trace with the one tick and no start set: its tick ends before
        // the trailer (tag, count, label length, label).
        let t2 = dir.path().join("no-start");
        let mut w = TraceWriter::create(&t2, &header()).unwrap();
        w.tick(&ticks[0]).unwrap();
        w.finish(EndKind::Duration).unwrap();
        let trailer = 3 + EndKind::Duration.label().len();
        let tick_len = std::fs::read(&t2).unwrap().len() - span.start - trailer;
        late.splice(span.start + tick_len..span.start + tick_len, set);
        assert!(crate::error_chain(&decode(&late).unwrap_err()).contains("out of place"));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ticks: Vec<Tick> = (0..3).map(|i| tick(i, true)).collect();
        let bytes = std::fs::read(write(&ticks, dir.path())).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut} was accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(RecordError::Corrupt { .. })));
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let ticks: Vec<Tick> = (0..3).map(|i| tick(i, true)).collect();
        let bytes = std::fs::read(write(&ticks, dir.path())).unwrap();
        assert!(matches!(decode(b"nonsense"), Err(RecordError::BadMagic)));
        let mut v = bytes.clone();
        v[8] = 9;
        assert!(matches!(decode(&v), Err(RecordError::Version { found: 9 })));
        let mut v = bytes.clone();
        v[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&v), Err(RecordError::Corrupt { .. })));
        // Every single-byte change decodes or fails cleanly; a fixed
        // pseudo-random walk over positions and values.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut failed = 0;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = bytes.clone();
            let at = (x % v.len() as u64) as usize;
            v[at] ^= (x >> 32) as u8 | 1;
            failed += usize::from(decode(&v).is_err());
        }
        assert!(failed > 2500, "{failed} of 5000 corruptions detected");
        // A page past the domain.
        let mut big = tick(0, false);
        big.touched = PageSet::from_sorted([1000]);
        big.written = PageSet::default();
        let path = write(&[big], dir.path());
        let err = read(&path).unwrap_err();
        assert!(crate::error_chain(&err).contains("outside the recorded domain"));
        assert!(crate::error_chain(&err).contains(TRACE_FILE));
    }

    #[test]
    fn a_written_page_must_be_touched() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = tick(0, false);
        t.written = PageSet::from_sorted([500]);
        let err = read(&write(&[t], dir.path())).unwrap_err();
        assert!(crate::error_chain(&err).contains("not touched"));
    }

    #[test]
    fn a_record_tick_must_divide_the_estimator_tick() {
        let ms = Duration::from_millis;
        assert_eq!(recorded_per_tick(ms(1000), 1, None), Ok(1));
        assert_eq!(recorded_per_tick(ms(1000), 1, Some(ms(50))), Ok(20));
        assert_eq!(recorded_per_tick(ms(1000), 20, Some(ms(50))), Ok(1));
        assert_eq!(recorded_per_tick(ms(1000), 20, Some(ms(25))), Ok(2));
        assert!(matches!(
            recorded_per_tick(ms(1000), 20, Some(ms(30))),
            Err(RecordTickError::NotADivisor { ticks: 20, .. })
        ));
        assert!(matches!(
            recorded_per_tick(ms(1000), 1, Some(ms(2000))),
            Err(RecordTickError::NotADivisor { .. })
        ));
        assert_eq!(
            recorded_per_tick(ms(1000), 1, Some(Duration::from_micros(999))),
            Err(RecordTickError::TooShort(Duration::from_micros(999)))
        );
    }

    #[test]
    fn the_tracker_decides_the_truth_column() {
        assert_eq!(truth_column(TrackerKind::DirtyLog), TruthColumn::Writes);
        assert_eq!(truth_column(TrackerKind::Uffd), TruthColumn::All);
        assert_eq!(truth_column(TrackerKind::Mprotect), TruthColumn::All);
    }
}
