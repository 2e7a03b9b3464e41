//! The statistics every report uses: mean, median and percentiles, the
//! spread (min, median, max) and the least-squares slope. Each is defined
//! once here, and each ignores values that are not finite (NaN, ±inf): a
//! run that measured nothing must not turn an average into NaN, and "no
//! value" is `None`, never 0.

/// Arithmetic mean of the finite values; `None` when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut m = RunningMean::default();
    values.into_iter().for_each(|v| m.add(v));
    m.mean()
}

/// The [`mean`] of values that arrive one at a time: the same sum in the
/// same order, so a mean taken while a run streams equals the one taken
/// over its rows afterwards, bit for bit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunningMean {
    sum: f64,
    n: usize,
}

impl RunningMean {
    /// Adds `v` if it is finite (see [`mean`]).
    pub fn add(&mut self, v: f64) {
        if v.is_finite() {
            self.sum += v;
            self.n += 1;
        }
    }

    /// The finite values added.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Their mean; `None` when there are none.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// The finite values, sorted ascending.
fn sorted_finite(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `q`-quantile (`q` in 0..=1) of the finite values, interpolated
/// linearly between the two closest ranks (rank `q × (n - 1)`), so the
/// 0.5-quantile of an even count is the mean of the two middle values.
/// `None` without values or with `q` outside 0..=1.
pub fn quantile(values: impl IntoIterator<Item = f64>, q: f64) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) {
        return None;
    }
    let v = sorted_finite(values);
    let last = v.len().checked_sub(1)?;
    let rank = q * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (v[lo], v[hi.min(last)]);
    Some(a + (b - a) * (rank - lo as f64))
}

/// The median of the finite values: [`quantile`] at 0.5.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    quantile(values, 0.5)
}

/// Smallest, median and largest of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, every field NaN when there is no finite
    /// value (a benchmark prints what it measured, even nothing).
    pub fn of(values: &[f64]) -> Spread {
        spread(values.iter().copied()).unwrap_or(Spread {
            min: f64::NAN,
            median: f64::NAN,
            max: f64::NAN,
        })
    }
}

/// The spread of the finite values; `None` when there are none.
pub fn spread(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
    let v = sorted_finite(values);
    Some(Spread {
        min: *v.first()?,
        median: median(v.iter().copied())?,
        max: *v.last()?,
    })
}

/// A mean with its 95% confidence interval, from independent repetitions
/// of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanInterval {
    pub mean: f64,
    /// Half the interval's width: it runs from `mean - half_width` to
    /// `mean + half_width`.
    pub half_width: f64,
    /// The repetitions it is from.
    pub n: usize,
}

impl MeanInterval {
    pub fn lo(&self) -> f64 {
        self.mean - self.half_width
    }

    pub fn hi(&self) -> f64 {
        self.mean + self.half_width
    }
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom
/// (1 to 30, then at 40, 60 and 120; standard tables). Between tabled
/// degrees of freedom it takes the next lower one, whose quantile is the
/// larger: the interval errs wide, never narrow.
fn t95(df: usize) -> f64 {
    const TO_30: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TO_30[df - 1],
        31..=39 => TO_30[29],
        40..=59 => 2.021,
        60..=119 => 2.000,
        _ => 1.980,
    }
}

/// The mean of the finite values with its 95% confidence interval
/// (Student's t on their sample standard deviation). `None` from fewer
/// than two values: one repetition says nothing of its own spread.
pub fn mean_interval95(values: impl IntoIterator<Item = f64>) -> Option<MeanInterval> {
    let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    let n = v.len();
    if n < 2 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Some(MeanInterval {
        mean,
        half_width: t95(n - 1) * (var / n as f64).sqrt(),
        n,
    })
}

/// Least-squares slope of the line through the origin that best fits the
/// points (x, y): Σxy / Σx². Points with a non-finite coordinate are left
/// out. `None` from fewer than two points or when every x is 0 (no slope
/// can be told apart).
pub fn slope_through_origin(points: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let (n, sxx, sxy) = points
        .into_iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .fold((0usize, 0.0, 0.0), |(n, sxx, sxy), (x, y)| {
            (n + 1, sxx + x * x, sxy + x * y)
        });
    (n >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// Least-squares slope of the best-fitting line y = a + b·x (the `b`).
/// Points with a non-finite coordinate are left out. `None` from fewer
/// than two points or when all x are equal.
pub fn slope(points: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .into_iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mx = mean(pts.iter().map(|p| p.0))?;
    let my = mean(pts.iter().map(|p| p.1))?;
    let sxx: f64 = pts.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = pts.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (pts.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mean_interval_uses_students_t() {
        // 1, 2, 3: mean 2, sd 1, 2 degrees of freedom: 4.303 / sqrt(3).
        let m = mean_interval95([3.0, 1.0, f64::NAN, 2.0]).unwrap();
        assert_eq!((m.mean, m.n), (2.0, 3));
        assert!((m.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert!((m.lo() - (2.0 - m.half_width)).abs() < 1e-12);
        assert_eq!(mean_interval95([5.0]), None);
        let same = mean_interval95([0.5; 4]).unwrap();
        assert_eq!((same.mean, same.half_width), (0.5, 0.0));
        // Past the table's rows the quantile of the row below is used.
        assert_eq!(t95(35), t95(30));
        assert!(t95(200) < t95(100) && t95(100) < t95(50) && t95(50) < t95(30));
    }

    #[test]
    fn mean_skips_non_finite_values_and_is_none_when_empty() {
        assert_eq!(mean([1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean([1.0, f64::NAN, 3.0, f64::INFINITY]), Some(2.0));
        assert_eq!(mean([]), None);
        assert_eq!(mean([f64::NAN]), None);
    }

    #[test]
    fn median_of_odd_even_and_no_values() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([5.0, f64::NAN]), Some(5.0));
        assert_eq!(median([]), None);
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let v = [10.0, 20.0, 30.0, 40.0, 50.0];
        assert_eq!(quantile(v, 0.0), Some(10.0));
        assert_eq!(quantile(v, 1.0), Some(50.0));
        assert_eq!(quantile(v, 0.25), Some(20.0));
        // Rank 0.9 × 4 = 3.6: 40 + 0.6 × 10.
        assert!((quantile(v, 0.9).unwrap() - 46.0).abs() < 1e-12);
        assert_eq!(quantile([7.0], 0.3), Some(7.0));
        assert_eq!(quantile(v, 1.5), None);
        assert_eq!(quantile(v, -0.1), None);
        assert_eq!(quantile([], 0.5), None);
    }

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(
            spread([9.0, 1.0, f64::NAN, 4.0, 2.0]),
            Some(Spread {
                min: 1.0,
                median: 3.0,
                max: 9.0
            })
        );
        assert_eq!(spread([]), None);
    }

    #[test]
    fn slopes_fit_exact_lines_and_refuse_degenerate_input() {
        // y = 3x exactly.
        assert_eq!(
            slope_through_origin([(1.0, 3.0), (2.0, 6.0), (4.0, 12.0)]),
            Some(3.0)
        );
        // Through the origin: Σxy/Σx² = (1·1 + 2·3)/(1 + 4) = 7/5.
        assert_eq!(slope_through_origin([(1.0, 1.0), (2.0, 3.0)]), Some(1.4));
        assert_eq!(slope_through_origin([(1.0, 1.0)]), None);
        assert_eq!(slope_through_origin([(0.0, 1.0), (0.0, 2.0)]), None);
        // y = 10 + 2x, with an offset the origin fit would miss.
        assert_eq!(slope([(0.0, 10.0), (1.0, 12.0), (5.0, 20.0)]), Some(2.0));
        assert_eq!(slope([(1.0, 1.0), (1.0, 5.0)]), None);
        assert_eq!(slope([(1.0, 1.0), (f64::NAN, 5.0)]), None);
    }
}
