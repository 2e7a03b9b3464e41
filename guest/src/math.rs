//! Floating-point functions that `core` lacks in a `no_std` program
//! (`f64::powf`, `ln`, `exp`, ... need `std`), from the pure-Rust `libm`
//! crate under the names `std` uses.

/// `x` raised to the power `y`.
#[inline]
pub fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// The natural logarithm of `x`.
#[inline]
pub fn ln(x: f64) -> f64 {
    libm::log(x)
}

/// The base-2 logarithm of `x`.
#[inline]
pub fn log2(x: f64) -> f64 {
    libm::log2(x)
}

/// The base-10 logarithm of `x`.
#[inline]
pub fn log10(x: f64) -> f64 {
    libm::log10(x)
}

/// e raised to the power `x`.
#[inline]
pub fn exp(x: f64) -> f64 {
    libm::exp(x)
}

/// The square root of `x`.
#[inline]
pub fn sqrt(x: f64) -> f64 {
    libm::sqrt(x)
}

/// The largest whole number not above `x`.
#[inline]
pub fn floor(x: f64) -> f64 {
    libm::floor(x)
}

/// The smallest whole number not below `x`.
#[inline]
pub fn ceil(x: f64) -> f64 {
    libm::ceil(x)
}

/// `x` rounded to the nearest whole number, halves away from zero.
#[inline]
pub fn round(x: f64) -> f64 {
    libm::round(x)
}

/// The sine of `x` (radians).
#[inline]
pub fn sin(x: f64) -> f64 {
    libm::sin(x)
}

/// The cosine of `x` (radians).
#[inline]
pub fn cos(x: f64) -> f64 {
    libm::cos(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_with_known_values() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(sqrt(81.0), 9.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(1.0), 0.0);
        assert!((ln(core::f64::consts::E) - 1.0).abs() < 1e-15);
        assert!((exp(ln(7.5)) - 7.5).abs() < 1e-14);
        assert_eq!(log2(4096.0), 12.0);
        assert_eq!(log10(1000.0), 3.0);
        assert_eq!((floor(-1.5), ceil(-1.5), round(2.5)), (-2.0, -1.0, 3.0));
        assert_eq!(sin(0.0), 0.0);
        assert_eq!(cos(0.0), 1.0);
    }
}
