//! How the command-line reports (`run`'s table, the sweep's table and
//! sweep.md) write percentages and Markdown tables: one definition each,
//! so the same figure reads the same everywhere.

/// Printed for a value that was not measured.
pub const MISSING: &str = "-";

/// A fraction as a percentage with one decimal: 0.0423 → "4.2%". A value
/// that is not finite reads [`MISSING`].
pub fn percent(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:.1}%", frac * 100.0)
    } else {
        MISSING.to_string()
    }
}

/// A fraction as a signed percentage with one decimal: "+4.2%", "-0.5%".
pub fn signed_percent(frac: f64) -> String {
    if frac.is_finite() {
        format!("{:+.1}%", frac * 100.0)
    } else {
        MISSING.to_string()
    }
}

/// [`percent`] of a value that may be missing.
pub fn opt_percent(frac: Option<f64>) -> String {
    frac.map_or(MISSING.to_string(), percent)
}

/// Column alignment in a Markdown table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A GitHub-flavoured Markdown table. Pipes in cells are escaped and line
/// breaks flattened, so a cell cannot break the table; a row shorter than
/// the header gets empty cells, and cells past the header are dropped.
/// Columns without an entry in `align` are left-aligned.
pub fn markdown_table(header: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::from("|");
    for h in header {
        out.push_str(&format!(" {} |", cell(h)));
    }
    out.push_str("\n|");
    for i in 0..header.len() {
        out.push_str(match align.get(i) {
            Some(Align::Right) => "---:|",
            _ => "---|",
        });
    }
    out.push('\n');
    for row in rows {
        out.push('|');
        for i in 0..header.len() {
            let v = row.get(i).map_or("", String::as_str);
            out.push_str(&format!(" {} |", cell(v)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_have_one_decimal() {
        assert_eq!(percent(0.0423), "4.2%");
        assert_eq!(percent(0.1), "10.0%");
        assert_eq!(percent(1.5), "150.0%");
        assert_eq!(percent(f64::NAN), "-");
        assert_eq!(signed_percent(0.172), "+17.2%");
        assert_eq!(signed_percent(-0.005), "-0.5%");
        assert_eq!(signed_percent(f64::INFINITY), "-");
        assert_eq!(opt_percent(Some(0.25)), "25.0%");
        assert_eq!(opt_percent(None), "-");
    }

    #[test]
    fn markdown_tables_align_escape_and_pad() {
        let rows = vec![
            vec!["a|b".to_string(), "1".to_string()],
            vec!["two\nlines".to_string()],
        ];
        let t = markdown_table(&["name", "n"], &[Align::Left, Align::Right], &rows);
        assert_eq!(
            t,
            "| name | n |\n|---|---:|\n| a\\|b | 1 |\n| two lines |  |\n"
        );
        assert_eq!(markdown_table(&["x"], &[], &[]), "| x |\n|---|\n");
    }
}
