//! The tiny float abstraction the firmware's own references are written over: instantiated with
//! `f32` it reproduces the kernels' documented IEEE operation order (bit-exact references), with
//! `f64` it is the precision reference. Square roots come from `libm`, never
//! from the kernel crate.

use core::ops::{Add, Div, Mul, Neg, Sub};

pub trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn is_nan(self) -> bool {
        self != self
    }
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

impl Real for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
}

impl Real for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn sqrt(self) -> Self {
        libm::sqrt(self)
    }
}

/// Bitwise equality, except that any NaN equals any NaN (NaN payloads are not part of any
/// contract), as in the host tests.
pub fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// A bump allocator over one static buffer: each case takes what it needs and gives it all back
/// when it ends (the allocator is dropped), so the firmware's static RAM is the two arenas.
pub struct Bump<'a, T> {
    rest: &'a mut [T],
}

impl<'a, T: Copy + Default> Bump<'a, T> {
    pub fn new(buf: &'a mut [T]) -> Self {
        Bump { rest: buf }
    }
    /// `n` zeroed elements; panics (exit status 101 with a message) if the arena is too small.
    pub fn take(&mut self, n: usize) -> &'a mut [T] {
        let rest = core::mem::take(&mut self.rest);
        assert!(
            n <= rest.len(),
            "arena too small: need {n}, have {}",
            rest.len()
        );
        let (a, b) = rest.split_at_mut(n);
        self.rest = b;
        a.fill(T::default());
        a
    }
}
