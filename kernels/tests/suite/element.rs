//! The element helpers the kernels rely on: exact powers of two and binary exponents, including
//! subnormals (norm2's scaling depends on both).

use descent_kernels::Element;

fn check<T: Element>() {
    let min_sub = T::min_positive_value() * T::epsilon();
    // Normal range: 2^e round-trips through exponent(), and equals the f64 power.
    let lo = T::min_positive_value().widen().log2() as i32;
    // (log2 of f64::MAX rounds up to 1024.0, so step just below it before truncating.)
    let hi = (T::max_value().widen().log2() - 1e-9).floor() as i32;
    for e in lo..=hi {
        let p = T::pow2(e);
        assert_eq!(p.widen(), 2f64.powi(e), "pow2({e})");
        assert_eq!(p.exponent(), e);
        // Any value in [2^e, 2^(e+1)) has exponent e.
        let x = p * T::from_f64_round(1.75);
        assert_eq!(x.exponent(), e);
        assert_eq!((-x).exponent(), e);
    }
    // Subnormals: the exponent of the leading bit.
    let mut x = min_sub;
    let mut e = min_sub.widen().log2() as i32;
    while x < T::min_positive_value() {
        assert_eq!(x.exponent(), e, "subnormal 2^{e}");
        if x > min_sub {
            // 1.5·x is representable once x has a bit below its leading one.
            assert_eq!((x * T::from_f64_round(1.5)).exponent(), e);
        }
        x = x + x;
        e += 1;
    }
}

#[test]
fn pow2_and_exponent_f32() {
    check::<f32>();
}

#[test]
fn pow2_and_exponent_f64() {
    check::<f64>();
}
