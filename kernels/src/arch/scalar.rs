//! The scalar backend: one element per "vector". It always compiles and is the reference every
//! other backend is tested against.

use super::{Isa, Kernel, Simd};
use crate::Element;

/// The scalar reference backend (always available).
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;

#[inline(always)]
fn mask<T: Element>(b: bool) -> T {
    T::from_bits_(if b { T::ALL_ONES } else { T::NO_BITS })
}

impl<T: Element> Simd<T> for Scalar {
    type V = T;
    const LANES: usize = 1;
    // 4 × 4 accumulators: fits the 16 registers of x86-64 and the 32 of an M4F's FPU.
    const TILE_ROWS: usize = 4;
    const TILE_VECTORS: usize = 4;

    #[inline(always)]
    unsafe fn load(self, ptr: *const T) -> T {
        // SAFETY: the caller guarantees `ptr` is readable for one element, and every element
        // pointer is aligned for `T` (see `Simd::load`). An aligned read lets FPU targets load
        // straight into a floating-point register (`vldr` on Cortex-M; `ldr` + `vmov` otherwise).
        unsafe { ptr.read() }
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut T, v: T) {
        // SAFETY: the caller guarantees `ptr` is writable for one element and aligned for `T`.
        unsafe { ptr.write(v) }
    }
    #[inline(always)]
    fn splat(self, x: T) -> T {
        x
    }
    #[inline(always)]
    fn add(self, a: T, b: T) -> T {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: T, b: T) -> T {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: T, b: T) -> T {
        a * b
    }
    #[inline(always)]
    fn div(self, a: T, b: T) -> T {
        a / b
    }
    #[inline(always)]
    fn sqrt(self, a: T) -> T {
        a.sqrt_ieee()
    }
    #[inline(always)]
    fn mul_add_fast(self, a: T, b: T, c: T) -> T {
        a * b + c
    }
    #[inline(always)]
    fn gt(self, a: T, b: T) -> T {
        mask(a > b)
    }
    #[inline(always)]
    fn lt(self, a: T, b: T) -> T {
        mask(a < b)
    }
    #[inline(always)]
    fn is_nan(self, a: T) -> T {
        mask(a.is_nan())
    }
    #[inline(always)]
    fn and(self, a: T, b: T) -> T {
        T::bit_and(a, b)
    }
    #[inline(always)]
    fn or(self, a: T, b: T) -> T {
        T::bit_or(a, b)
    }
    #[inline(always)]
    fn xor(self, a: T, b: T) -> T {
        T::bit_xor(a, b)
    }
    #[inline(always)]
    fn andnot(self, a: T, b: T) -> T {
        T::bit_andnot(a, b)
    }
    #[inline(always)]
    fn reduce_add(self, v: T) -> T {
        v
    }
    #[inline(always)]
    fn reduce_max(self, v: T) -> T {
        v
    }
    // Branch-free scalar forms of the trait's mask-based defaults: the same results bit for bit
    // (the defaults build ±1 from all-ones masks with integer bit operations, which on FPU
    // microcontrollers means moves between FP and integer registers for every element).
    #[inline(always)]
    fn mul_sign(self, lr: T, x: T) -> T {
        lr * self.sign(x)
    }
    #[inline(always)]
    fn sign(self, a: T) -> T {
        if a.is_nan() {
            a
        } else if a > T::zero() {
            T::one()
        } else if a < T::zero() {
            -T::one()
        } else {
            T::zero()
        }
    }
    #[inline(always)]
    fn max_nan(self, a: T, b: T) -> T {
        if a > b || a.is_nan() {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn select(self, mask: T, a: T, b: T) -> T {
        if mask.bits() != T::NO_BITS {
            a
        } else {
            b
        }
    }
}

impl Isa for Scalar {
    #[inline(always)]
    fn detect() -> bool {
        true
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Scalar
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        k.run(self)
    }
}
