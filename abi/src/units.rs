//! Sizes with K/M/G suffixes and durations with ms/s/m suffixes, parsed the
//! same way by the CLI and by guest programs reading their `--param`s.

/// Parses a size: a whole number of bytes, optionally followed by `K`, `M`
/// or `G` (binary multiples, case-insensitive, an optional trailing `B` or
/// `iB`). Returns `None` on malformed input or overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix("ib"))
        .or_else(|| s.strip_suffix('B'))
        .or_else(|| s.strip_suffix('b'))
        .unwrap_or(s);
    let (digits, shift) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b'0'..=b'9' => (s, 0),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// Parses a duration into nanoseconds: a number (fractions allowed) followed
/// by `ms`, `s` or `m`. A bare number is not accepted: the unit is required
/// so that `--interval 1` is never ambiguous.
pub fn parse_duration_ns(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e9)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e9)
    } else {
        return None;
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let ns = v * scale;
    if !ns.is_finite() || ns < 0.0 || ns > u64::MAX as f64 {
        return None;
    }
    Some(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4K"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("-1M"), None);
        assert_eq!(parse_size("1.5M"), None);
        assert_eq!(parse_size("99999999999999G"), None);
        assert_eq!(parse_size("12X"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("100ms"), Some(100_000_000));
        assert_eq!(parse_duration_ns("1s"), Some(1_000_000_000));
        assert_eq!(parse_duration_ns("0.5s"), Some(500_000_000));
        assert_eq!(parse_duration_ns("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration_ns("250us"), Some(250_000));
        assert_eq!(parse_duration_ns("10"), None);
        assert_eq!(parse_duration_ns("s"), None);
        assert_eq!(parse_duration_ns("-1s"), None);
        assert_eq!(parse_duration_ns("1e3s"), None);
    }
}
