//! The element types the kernels accept: `f32` and `f64`.

use crate::backend::{Backend, Kernel};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type of the kernels (`f32` or `f64`). Sealed: the SIMD backends exist
/// for exactly these two.
pub trait Element:
    num_traits::Float
    + core::fmt::Debug
    + core::fmt::Display
    + Default
    + Send
    + Sync
    + 'static
    + sealed::Sealed
{
    /// The unsigned integer with the same bits.
    type Bits: Copy + Eq + core::fmt::Debug;
    /// Mantissa digits including the implicit bit (24 or 53).
    const MANTISSA_DIGITS: u32;
    /// Converts from `f64` with round-to-nearest (exact for `f64`).
    fn from_f64_round(x: f64) -> Self;
    /// Widens to `f64` (exact).
    fn widen(self) -> f64;
    /// The raw IEEE bits.
    fn bits(self) -> Self::Bits;
    /// Builds a value from raw IEEE bits.
    fn from_bits_(bits: Self::Bits) -> Self;
    /// All bits set (used as a true mask lane by the scalar backend).
    const ALL_ONES: Self::Bits;
    /// No bits set.
    const NO_BITS: Self::Bits;
    /// Bitwise and, or, xor on the raw bits.
    fn bit_and(a: Self, b: Self) -> Self;
    /// Bitwise or.
    fn bit_or(a: Self, b: Self) -> Self;
    /// Bitwise and-not: `!a & b`.
    fn bit_andnot(a: Self, b: Self) -> Self;
    /// Correctly rounded square root (IEEE 754), no_std.
    fn sqrt_ieee(self) -> Self;
    /// Exact power of two `2^e`, for `e` in the normal exponent range.
    fn pow2(e: i32) -> Self;
    /// The binary exponent `e` with `2^e <= |x| < 2^(e+1)` for finite non-zero `x`.
    fn exponent(self) -> i32;
    /// Runs a kernel on a backend. The backend must be available (checked by the caller).
    #[doc(hidden)]
    fn dispatch<K: Kernel<Self>>(backend: Backend, k: K) -> K::Output;
}

macro_rules! impl_element {
    ($t:ty, $bits:ty, $digits:expr, $sqrt:path, $dispatch:path) => {
        impl Element for $t {
            type Bits = $bits;
            const MANTISSA_DIGITS: u32 = $digits;
            const ALL_ONES: $bits = <$bits>::MAX;
            const NO_BITS: $bits = 0;
            #[inline(always)]
            fn from_f64_round(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn widen(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn bits(self) -> $bits {
                self.to_bits()
            }
            #[inline(always)]
            fn from_bits_(bits: $bits) -> Self {
                <$t>::from_bits(bits)
            }
            #[inline(always)]
            fn bit_and(a: Self, b: Self) -> Self {
                <$t>::from_bits(a.to_bits() & b.to_bits())
            }
            #[inline(always)]
            fn bit_or(a: Self, b: Self) -> Self {
                <$t>::from_bits(a.to_bits() | b.to_bits())
            }
            #[inline(always)]
            fn bit_andnot(a: Self, b: Self) -> Self {
                <$t>::from_bits(!a.to_bits() & b.to_bits())
            }
            #[inline(always)]
            fn sqrt_ieee(self) -> Self {
                $sqrt(self)
            }
            #[inline]
            fn pow2(e: i32) -> Self {
                const BIAS: i32 = <$t>::MAX_EXP - 1;
                debug_assert!((<$t>::MIN_EXP - 1..=BIAS).contains(&e));
                <$t>::from_bits(((e + BIAS) as $bits) << ($digits - 1))
            }
            #[inline]
            fn exponent(self) -> i32 {
                const BIAS: i32 = <$t>::MAX_EXP - 1;
                let biased = ((self.to_bits() >> ($digits - 1)) as i32) & (2 * BIAS + 1);
                if biased != 0 {
                    biased - BIAS
                } else {
                    // Subnormal: scale into the normal range first.
                    let scaled = self * Self::pow2($digits);
                    let b = ((scaled.to_bits() >> ($digits - 1)) as i32) & (2 * BIAS + 1);
                    b - BIAS - $digits as i32
                }
            }
            #[inline]
            fn dispatch<K: Kernel<Self>>(backend: Backend, k: K) -> K::Output {
                $dispatch(backend, k)
            }
        }
    };
}

impl_element!(f32, u32, 24, libm::sqrtf, crate::backend::dispatch_f32);
impl_element!(f64, u64, 53, libm::sqrt, crate::backend::dispatch_f64);
