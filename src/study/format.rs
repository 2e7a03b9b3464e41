//! How numbers and tables read in the study document. Every number in the
//! text goes through here, so a missing value reads "n/a" and never "NaN"
//! or "null".

use std::time::Duration;

pub use crate::analysis::format::{Align, markdown_table as table};

/// Printed for a value that was not measured.
pub const NA: &str = "n/a";

/// `x` with `sig` significant digits, keeping every integer digit of large
/// values (12345.6 with 3 digits is "12346", not "1.23e4").
pub fn sig(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return NA.to_string();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs().log10().floor() as i64;
    let decimals = (sig as i64 - 1 - magnitude).clamp(0, 9) as usize;
    let s = format!("{x:.decimals$}");
    // "-0" and "-0.00" read as a sign error; rounding to zero is zero.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        return s.trim_start_matches('-').to_string();
    }
    s
}

/// A fraction as a percentage: "5.2%", "0.42%", "130%".
pub fn pct(frac: f64) -> String {
    if !frac.is_finite() {
        return NA.to_string();
    }
    let p = frac * 100.0;
    if p.abs() >= 10.0 {
        format!("{}%", trim_zeros(&sig(p, 3)))
    } else {
        format!("{}%", trim_zeros(&sig(p, 2)))
    }
}

/// A signed percentage: "+5.2%", "-12%", "0%".
pub fn signed_pct(frac: f64) -> String {
    let s = pct(frac);
    if frac.is_finite() && frac > 0.0 && !s.starts_with('0') {
        format!("+{s}")
    } else {
        s
    }
}

/// A whole count: "412", "16384".
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return NA.to_string();
    }
    format!("{:.0}", x.round()).replace("-0", "0")
}

/// Applies `f` to a present value, "n/a" otherwise.
pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    match v {
        Some(x) if x.is_finite() => f(x),
        _ => NA.to_string(),
    }
}

/// A duration as a setting reads: "100 ms", "1 s", "2.5 s".
pub fn setting(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1000.0 {
        format!("{} ms", trim_zeros(&sig(ms, 3)))
    } else {
        format!("{} s", trim_zeros(&sig(ms / 1e3, 3)))
    }
}

/// A plain number with at most three significant digits and no trailing
/// zeros: "2", "0.125", "1.5".
pub fn num(x: f64) -> String {
    trim_zeros(&sig(x, 3))
}

/// "2.50" -> "2.5", "10.0" -> "10", "100" -> "100".
fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Seconds as a length of time: "42 s", "3 min 05 s", "1 h 02 min".
pub fn elapsed(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return NA.to_string();
    }
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// "a", "a and b", "a, b and c".
pub fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(sig(0.0, 3), "0");
        assert_eq!(sig(0.012345, 3), "0.0123");
        assert_eq!(sig(1.5, 3), "1.50");
        assert_eq!(sig(-12.34, 3), "-12.3");
        assert_eq!(sig(12345.6, 3), "12346");
        assert_eq!(sig(999.96, 3), "1000");
        assert_eq!(sig(-0.0001, 1), "-0.0001");
        assert_eq!(sig(-0.00001, 1), "-0.00001");
        assert_eq!(sig(f64::NAN, 3), NA);
        assert_eq!(sig(f64::INFINITY, 3), NA);
    }

    #[test]
    fn percentages() {
        assert_eq!(pct(0.052), "5.2%");
        assert_eq!(pct(0.0042), "0.42%");
        assert_eq!(pct(1.3), "130%");
        assert_eq!(pct(0.1), "10%");
        assert_eq!(pct(0.123), "12.3%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(pct(0.05), "5%");
        assert_eq!(pct(0.0301), "3%");
        assert_eq!(pct(f64::NAN), NA);
        assert_eq!(signed_pct(0.052), "+5.2%");
        assert_eq!(signed_pct(-0.12), "-12%");
        assert_eq!(signed_pct(0.0), "0%");
    }

    #[test]
    fn counts_options_and_times() {
        assert_eq!(count(411.6), "412");
        assert_eq!(count(-0.2), "0");
        assert_eq!(opt(None, count), NA);
        assert_eq!(opt(Some(f64::NAN), count), NA);
        assert_eq!(opt(Some(3.0), count), "3");
        assert_eq!(setting(Duration::from_millis(100)), "100 ms");
        assert_eq!(setting(Duration::from_secs(1)), "1 s");
        assert_eq!(setting(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(setting(Duration::from_secs(10)), "10 s");
        assert_eq!(setting(Duration::from_millis(250)), "250 ms");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.125), "0.125");
        assert_eq!(num(1.25), "1.25");
        assert_eq!(num(f64::NAN), NA);
        assert_eq!(elapsed(42.4), "42 s");
        assert_eq!(elapsed(185.0), "3 min 05 s");
        assert_eq!(elapsed(3725.0), "1 h 02 min");
        assert_eq!(elapsed(f64::NAN), NA);
    }

    #[test]
    fn markdown_tables() {
        let t = table(
            &["workload", "mape"],
            &[Align::Left, Align::Right],
            &[vec!["a|b".into(), "5%".into()], vec!["c".into()]],
        );
        assert_eq!(
            t,
            "| workload | mape |\n|---|---:|\n| a\\|b | 5% |\n| c |  |\n"
        );
    }

    #[test]
    fn lists_read_as_prose() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(list(&s(&[])), "");
        assert_eq!(list(&s(&["a"])), "a");
        assert_eq!(list(&s(&["a", "b"])), "a and b");
        assert_eq!(list(&s(&["a", "b", "c"])), "a, b and c");
    }
}
