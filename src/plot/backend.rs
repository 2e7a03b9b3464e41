//! Writing a picture: every plot of the tool is drawn twice, as SVG and as
//! PNG, through [`svg_and_png`], each file written whole or not at all.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, ensure_font};
use crate::report::{ReportError, rename_into_place, temp_path};

/// Something that draws itself on any plotters backend.
pub trait Picture {
    /// Its size in pixels.
    fn size(&self) -> (u32, u32);

    /// Draws it on `root`, which has [`Picture::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB::ErrorType: 'static;
}

/// What a Ctrl-C while a picture is drawn does to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Drop the file and return [`ReportError::Interrupted`] (a run's plot:
    /// the run did not finish, so neither does its plot).
    Abandon,
    /// Draw it anyway (a sweep's or the study's picture of what was
    /// measured before Ctrl-C).
    Finish,
}

/// The two files [`svg_and_png`] writes for `base`: `<base>.svg`, `<base>.png`.
pub fn svg_and_png_paths(base: &Path) -> [PathBuf; 2] {
    [with_suffix(base, "svg"), with_suffix(base, "png")]
}

/// Writes `<base>.svg` and then `<base>.png` of `picture`, and returns
/// their paths in that order.
pub fn svg_and_png(
    picture: &impl Picture,
    base: &Path,
    on_interrupt: OnInterrupt,
) -> Result<Vec<PathBuf>, ReportError> {
    ensure_font()?;
    let size = picture.size();
    let [svg, png] = svg_and_png_paths(base);
    write_atomic(
        |p| SVGBackend::new(p, size),
        &temp_path(&svg),
        &svg,
        on_interrupt,
        |root| picture.draw(root),
    )?;
    write_atomic(
        |p| BitMapBackend::new(p, size),
        &temp_path(&png),
        &png,
        on_interrupt,
        |root| picture.draw(root),
    )?;
    Ok(vec![svg, png])
}

/// Draws with `draw` on `backend` and writes the file out.
fn render<DB: DrawingBackend>(
    backend: DB,
    path: &Path,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> DrawResult,
) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    let draw_error = |source| ReportError::Draw {
        path: path.to_path_buf(),
        source,
    };
    let root = backend.into_drawing_area();
    draw(&root).map_err(draw_error)?;
    root.present().map_err(|e| draw_error(Box::new(e)))
}

/// Like [`render`], but into a temporary file renamed to `path` once it is
/// complete, so a reader never sees half a file.
fn write_atomic<'a, DB: DrawingBackend + 'a>(
    make: impl FnOnce(&'a Path) -> DB,
    tmp: &'a Path,
    path: &Path,
    on_interrupt: OnInterrupt,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> DrawResult,
) -> Result<(), ReportError>
where
    DB::ErrorType: 'static,
{
    let abandon = || on_interrupt == OnInterrupt::Abandon && crate::run::interrupted();
    let interrupted = || ReportError::Interrupted {
        path: path.to_path_buf(),
    };
    if abandon() {
        return Err(interrupted());
    }
    if let Err(e) = render(make(tmp), path, draw) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if abandon() {
        let _ = std::fs::remove_file(tmp);
        return Err(interrupted());
    }
    rename_into_place(tmp, path)
}

/// `base` with `ext` appended, keeping any dots already in the file name.
pub(crate) fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut name = OsString::from(base.as_os_str());
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}
