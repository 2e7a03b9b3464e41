//! The one bounds rule of the memory API: an index or range outside what
//! a [`Region`](crate::Region) or [`Array`](crate::Array) holds is a guest
//! panic that names the index and the length. Nothing wraps and nothing
//! clamps, so a program's bug stops the run (the VMM reports the message
//! and exits 3) instead of touching pages the program did not mean to.

use core::ops::Range;

/// Panics unless `index < len`. `what` names the index ("page", "word",
/// "element") in the message.
#[inline(always)]
#[track_caller]
pub fn check_index(what: &str, index: usize, len: usize) {
    if index >= len {
        index_out_of_range(what, index, len);
    }
}

/// Panics unless `range` is ordered and lies within `0..len`.
#[inline(always)]
#[track_caller]
pub fn check_range(what: &str, range: &Range<usize>, len: usize) {
    if range.start > range.end || range.end > len {
        range_out_of_range(what, range, len);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn index_out_of_range(what: &str, index: usize, len: usize) -> ! {
    panic!("{what} index {index} out of range for length {len}")
}

#[cold]
#[inline(never)]
#[track_caller]
fn range_out_of_range(what: &str, range: &Range<usize>, len: usize) -> ! {
    panic!(
        "{what} range {}..{} out of range for length {len}",
        range.start, range.end
    )
}
