//! One plotting module for every picture the tool draws: the backend that
//! writes each picture as SVG (for documents) and PNG (for quick viewing)
//! (`backend`), grids of panels under a title (`grid`), line and
//! time-series panels (`series`), the working-set
//! curve W(τ) against its exact value (`curve`), the heat map of a
//! table of values (`table_map`), and the time × address heat map
//! (`heatmap`) with its colour scale (`colour`).

pub mod backend;
pub mod colour;
pub mod curve;
pub mod grid;
pub mod heatmap;
pub mod series;
pub mod table_map;

use std::sync::OnceLock;

use plotters::style::{FontStyle, register_font};

use crate::report::ReportError;

/// The font every plot uses. It is compiled in because rasterizing text for
/// PNG must not depend on fontconfig/freetype being installed; see
/// assets/DejaVuSans-LICENSE.txt for its license.
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
pub(crate) const FONT: &str = "sans-serif";

pub(crate) type DrawResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Registers the embedded font under the generic family names plotters uses
/// by default, once per process; the registry is global to plotters.
pub(crate) fn ensure_font() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        ["sans-serif", "serif", "monospace"]
            .iter()
            .all(|family| register_font(family, FontStyle::Normal, FONT_BYTES).is_ok())
    });
    if ok { Ok(()) } else { Err(ReportError::Font) }
}

/// `v` when it is a finite number.
pub(crate) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// A cell or summary value with three significant digits (more for large
/// integers-to-be, which keep all their integer digits).
pub(crate) fn format_value(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v:.0}");
    }
    let magnitude = v.abs().log10().floor();
    // Clamped so tiny values stay readable instead of growing a long tail.
    let decimals = (2.0 - magnitude).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// An axis tick: the shortest form of the value rounded to 1/1000, so ticks
/// read 0.5, 1, 1.5 rather than 0.500, 1.00.
pub(crate) fn format_tick(v: f64) -> String {
    let rounded = (v * 1000.0).round() / 1000.0;
    // Avoid "-0" for ticks that round to zero from below.
    format!("{}", if rounded == 0.0 { 0.0 } else { rounded })
}

/// Reading back what a plot wrote, for the tests of every kind of plot.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::Path;

    /// The text of every <text> element in an SVG written by plotters.
    pub fn svg_texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let body = &t[t.find('>')? + 1..t.find("</text>")?];
                Some(body.trim().to_string())
            })
            .collect()
    }

    pub fn assert_png(path: &Path, min_bytes: u64) {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{path:?} is not a PNG"
        );
        assert!(
            bytes.len() as u64 >= min_bytes,
            "{path:?}: {} bytes",
            bytes.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_with_three_significant_digits() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(0.01234), "0.0123");
        assert_eq!(format_value(0.0831), "0.0831");
        assert_eq!(format_value(1.5), "1.50");
        assert_eq!(format_value(-12.34), "-12.3");
        assert_eq!(format_value(1234.4), "1234");
        assert_eq!(format_value(1e-9), "0.000000");
        assert_eq!(format_tick(0.5), "0.5");
        assert_eq!(format_tick(2.0), "2");
        assert_eq!(format_tick(0.30000000000000004), "0.3");
        assert_eq!(format_tick(-0.0001), "0");
    }
}
