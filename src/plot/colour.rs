//! The colour scale of the heat maps: Viridis from the smallest to the
//! largest value shown, and a text colour readable on each fill.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::colors::colormaps::ViridisRGB;

use super::{DrawResult, FONT, format_tick};

/// The fill of a cell that has no value.
pub const MISSING_CELL: RGBColor = RGBColor(225, 225, 225);
/// The text on a cell that has no value.
pub const MISSING_TEXT: RGBColor = RGBColor(90, 90, 90);

/// Maps values in `lo..=hi` onto Viridis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourScale {
    pub lo: f64,
    pub hi: f64,
}

impl ColourScale {
    /// The scale spanning the finite values of `values`; `None` when there
    /// are none.
    pub fn spanning(values: impl IntoIterator<Item = f64>) -> Option<ColourScale> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(None, |acc, v| match acc {
                None => Some(ColourScale { lo: v, hi: v }),
                Some(s) => Some(ColourScale {
                    lo: f64::min(s.lo, v),
                    hi: f64::max(s.hi, v),
                }),
            })
    }

    /// Where `v` lies on the scale, from 0 (lo) to 1 (hi), clamped; a
    /// constant scale puts every value in the middle.
    pub fn position(&self, v: f64) -> f64 {
        if self.hi > self.lo {
            ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    }

    /// The fill of `v`.
    pub fn fill(&self, v: f64) -> RGBColor {
        // plotters normalises (and clamps) itself; the same arithmetic as
        // `position`, left to it so colours match its own maps exactly.
        if self.hi > self.lo {
            ViridisRGB::get_color_normalized(v, self.lo, self.hi)
        } else {
            ViridisRGB::get_color(0.5)
        }
    }

    /// The fill of `v`, and a text colour readable on it.
    pub fn colours(&self, v: f64) -> (RGBColor, RGBColor) {
        let fill = self.fill(v);
        (fill, text_on(fill))
    }

    /// The axis range of a colour bar: the scale itself, or a unit-wide
    /// range around a constant value so the axis has something to label.
    pub fn axis(&self) -> (f64, f64) {
        if self.hi > self.lo {
            (self.lo, self.hi)
        } else {
            (self.lo - 0.5, self.hi + 0.5)
        }
    }
}

/// Black or white, whichever reads better on `fill`.
pub fn text_on(fill: RGBColor) -> RGBColor {
    let RGBColor(r, g, b) = fill;
    let luminance = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    if luminance < 140.0 { WHITE } else { BLACK }
}

/// The colour bar of `scale` in `area`, its axis titled `label`; nothing
/// when there is no value to scale.
pub(crate) fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Option<ColourScale>,
    label: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let Some(scale) = scale else {
        return Ok(());
    };
    let (lo_axis, hi_axis) = scale.axis();
    let mut bar = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(55)
        .margin_right(10)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, lo_axis..hi_axis)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .y_label_formatter(&|y| format_tick(*y))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    const STEPS: usize = 100;
    let step = (hi_axis - lo_axis) / STEPS as f64;
    bar.draw_series((0..STEPS).map(|i| {
        let y0 = lo_axis + step * i as f64;
        let fill = scale.fill(y0 + step / 2.0);
        Rectangle::new([(0.0, y0), (1.0, y0 + step)], fill.filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_spans_the_finite_values() {
        let s = ColourScale::spanning([3.0, f64::NAN, -1.0, 7.0, f64::INFINITY]).unwrap();
        assert_eq!(s, ColourScale { lo: -1.0, hi: 7.0 });
        assert_eq!(s.position(-1.0), 0.0);
        assert_eq!(s.position(3.0), 0.5);
        assert_eq!(s.position(7.0), 1.0);
        assert_eq!(s.position(100.0), 1.0);
        assert_eq!(ColourScale::spanning([f64::NAN]), None);
        assert_eq!(s.axis(), (-1.0, 7.0));
    }

    #[test]
    fn a_constant_scale_sits_in_the_middle() {
        let s = ColourScale::spanning([2.0, 2.0]).unwrap();
        assert_eq!(s.position(2.0), 0.5);
        assert_eq!(s.axis(), (1.5, 2.5));
    }

    #[test]
    fn text_contrasts_with_the_fill() {
        let s = ColourScale { lo: 0.0, hi: 1.0 };
        // Viridis runs from dark purple to bright yellow.
        assert_eq!(s.colours(0.0).1, WHITE);
        assert_eq!(s.colours(1.0).1, BLACK);
    }
}
