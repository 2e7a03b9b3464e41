//! Statistics shared across layers (the calibration below `run`, the
//! benchmarks above it): one definition each.

/// The median (the mean of the two middle values for an even count), or
/// `None` for no values. NaNs sort last, as `f64::total_cmp` orders them.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median([]), None);
        assert_eq!(median([4.0]), Some(4.0));
        assert_eq!(median([9.0, 1.0, 5.0]), Some(5.0));
        assert_eq!(median([9.0, 1.0, 5.0, 3.0]), Some(4.0));
        assert_eq!(median([2.0, 2.0, 100.0, -1.0, 2.0]), Some(2.0));
    }
}
