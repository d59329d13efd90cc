//! Level-1 vector operations.
//!
//! Elementwise operations (`axpy`, `scale`, `add`, `sub`, `mul`, `div`) perform the same IEEE
//! operations on every backend and agree bit for bit with the scalar reference (no FMA
//! contraction). Reductions (`dot`, `sum`, `sum_squares`) accumulate in several vector
//! accumulators and, on backends with FMA, fuse the multiply-add, so their rounding differs by
//! backend; each is reproducible bit for bit on one backend, and all satisfy the error bound
//! `|computed − exact| <= (n/L + 8)·u·Σ|terms|` (see the crate's tests for the stated budget), where
//! `u` is the unit roundoff and `L` the backend's lane count.

use crate::arch::driver::{fold, zip};
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::error::check_len;
use crate::{Backend, Element, Error};

/// Generates the active-backend wrapper of a `*_on` function.
macro_rules! active {
    ($(#[$doc:meta])* $name:ident => $on:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name<T: Element>($($arg: $ty),*) -> $ret {
            $on(Backend::active(), $($arg),*)
        }
    };
}

// ---------------------------------------------------------------- elementwise

#[derive(Clone, Copy)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

struct BinaryKernel<'a, T> {
    out: &'a mut [T],
    a: &'a [T],
    b: &'a [T],
    op: BinOp,
}

impl<T: Element> Kernel<T> for BinaryKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.out.len();
        let (rw, ro) = ([self.out.as_mut_ptr()], [self.a.as_ptr(), self.b.as_ptr()]);
        // SAFETY: all three buffers have length n (checked by `binary`); `out` is exclusive.
        unsafe {
            match self.op {
                BinOp::Add => zip(
                    s,
                    n,
                    rw,
                    ro,
                    #[inline(always)]
                    |[o], [a, b]| *o = s.add(a, b),
                ),
                BinOp::Sub => zip(
                    s,
                    n,
                    rw,
                    ro,
                    #[inline(always)]
                    |[o], [a, b]| *o = s.sub(a, b),
                ),
                BinOp::Mul => zip(
                    s,
                    n,
                    rw,
                    ro,
                    #[inline(always)]
                    |[o], [a, b]| *o = s.mul(a, b),
                ),
                BinOp::Div => zip(
                    s,
                    n,
                    rw,
                    ro,
                    #[inline(always)]
                    |[o], [a, b]| *o = s.div(a, b),
                ),
            }
        }
    }
}

fn binary<T: Element>(
    backend: Backend,
    out: &mut [T],
    a: &[T],
    b: &[T],
    op: BinOp,
) -> Result<(), Error> {
    check_len("a", out.len(), a.len())?;
    check_len("b", out.len(), b.len())?;
    run_on(backend, BinaryKernel { out, a, b, op })
}

/// `out[i] = a[i] + b[i]` on `backend`.
pub fn add_on<T: Element>(backend: Backend, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(backend, out, a, b, BinOp::Add)
}
/// `out[i] = a[i] - b[i]` on `backend`.
pub fn sub_on<T: Element>(backend: Backend, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(backend, out, a, b, BinOp::Sub)
}
/// `out[i] = a[i] * b[i]` on `backend`.
pub fn mul_on<T: Element>(backend: Backend, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(backend, out, a, b, BinOp::Mul)
}
/// `out[i] = a[i] / b[i]` on `backend`.
pub fn div_on<T: Element>(backend: Backend, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(backend, out, a, b, BinOp::Div)
}
active!(/// `out[i] = a[i] + b[i]`.
    add => add_on(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] - b[i]`.
    sub => sub_on(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] * b[i]`.
    mul => mul_on(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] / b[i]`.
    div => div_on(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);

struct AxpyKernel<'a, T> {
    y: &'a mut [T],
    x: Option<&'a [T]>,
    alpha: T,
}

impl<T: Element> Kernel<T> for AxpyKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.y.len();
        let alpha = s.splat(self.alpha);
        let rw = [self.y.as_mut_ptr()];
        // SAFETY: `y` (and `x`) have length n (checked by the caller); `y` is exclusive.
        unsafe {
            match self.x {
                Some(x) => zip(
                    s,
                    n,
                    rw,
                    [x.as_ptr()],
                    #[inline(always)]
                    |[y], [x]| *y = s.add(s.mul(alpha, x), *y),
                ),
                None => zip(
                    s,
                    n,
                    rw,
                    [],
                    #[inline(always)]
                    |[y], []| *y = s.mul(alpha, *y),
                ),
            }
        }
    }
}

/// `y[i] = alpha·x[i] + y[i]` on `backend` (a multiply then an add: two roundings, no FMA).
pub fn axpy_on<T: Element>(backend: Backend, alpha: T, x: &[T], y: &mut [T]) -> Result<(), Error> {
    check_len("x", y.len(), x.len())?;
    run_on(
        backend,
        AxpyKernel {
            y,
            x: Some(x),
            alpha,
        },
    )
}
active!(/// `y[i] = alpha·x[i] + y[i]` (two roundings, no FMA).
    axpy => axpy_on(alpha: T, x: &[T], y: &mut [T]) -> Result<(), Error>);

/// `x[i] = alpha·x[i]` on `backend`.
pub fn scale_on<T: Element>(backend: Backend, alpha: T, x: &mut [T]) -> Result<(), Error> {
    run_on(
        backend,
        AxpyKernel {
            y: x,
            x: None,
            alpha,
        },
    )
}
active!(/// `x[i] = alpha·x[i]`.
    scale => scale_on(alpha: T, x: &mut [T]) -> Result<(), Error>);

// ---------------------------------------------------------------- reductions

#[derive(Clone, Copy)]
enum Reduction {
    /// Σ x·y
    Dot,
    /// Σ x
    Sum,
    /// Σ x²
    SumSquares,
    /// Σ (x·c1·c2)², the scaled form used by `norm2`.
    ScaledSumSquares(f64, f64),
    /// max |x| (NaN if any x is NaN)
    MaxAbs,
    /// Σ x·0: zero iff every x is finite, NaN otherwise.
    FiniteProbe,
}

struct ReduceKernel<'a, T> {
    x: &'a [T],
    y: &'a [T],
    what: Reduction,
}

impl<T: Element> Kernel<T> for ReduceKernel<'_, T> {
    type Output = T;
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) -> T {
        let n = self.x.len();
        let zero = s.splat(T::zero());
        let x = [self.x.as_ptr()];
        // SAFETY: (every arm) `x` (and `y`) have length n, checked by the public functions.
        unsafe {
            match self.what {
                Reduction::Dot => {
                    let xy = [self.x.as_ptr(), self.y.as_ptr()];
                    s.reduce_add(fold(
                        s,
                        n,
                        xy,
                        zero,
                        #[inline(always)]
                        |a, b| s.add(a, b),
                        #[inline(always)]
                        |acc, [a, b]| s.mul_add_fast(a, b, acc),
                    ))
                }
                Reduction::Sum => s.reduce_add(fold(
                    s,
                    n,
                    x,
                    zero,
                    #[inline(always)]
                    |a, b| s.add(a, b),
                    #[inline(always)]
                    |acc, [a]| s.add(acc, a),
                )),
                Reduction::SumSquares => s.reduce_add(fold(
                    s,
                    n,
                    x,
                    zero,
                    #[inline(always)]
                    |a, b| s.add(a, b),
                    #[inline(always)]
                    |acc, [a]| s.mul_add_fast(a, a, acc),
                )),
                Reduction::ScaledSumSquares(c1, c2) => {
                    let (c1, c2) = (
                        s.splat(T::from_f64_round(c1)),
                        s.splat(T::from_f64_round(c2)),
                    );
                    s.reduce_add(fold(
                        s,
                        n,
                        x,
                        zero,
                        #[inline(always)]
                        |a, b| s.add(a, b),
                        #[inline(always)]
                        |acc, [a]| {
                            let a = s.mul(s.mul(a, c1), c2);
                            s.mul_add_fast(a, a, acc)
                        },
                    ))
                }
                Reduction::MaxAbs => s.reduce_max(fold(
                    s,
                    n,
                    x,
                    zero,
                    #[inline(always)]
                    |a, b| s.max_nan(a, b),
                    #[inline(always)]
                    |acc, [a]| s.max_nan(acc, s.abs(a)),
                )),
                Reduction::FiniteProbe => s.reduce_add(fold(
                    s,
                    n,
                    x,
                    zero,
                    #[inline(always)]
                    |a, b| s.add(a, b),
                    #[inline(always)]
                    |acc, [a]| s.add(acc, s.mul(a, zero)),
                )),
            }
        }
    }
}

fn reduce<T: Element>(backend: Backend, x: &[T], y: &[T], what: Reduction) -> Result<T, Error> {
    run_on(backend, ReduceKernel { x, y, what })
}

/// `Σ x[i]·y[i]` on `backend`.
pub fn dot_on<T: Element>(backend: Backend, x: &[T], y: &[T]) -> Result<T, Error> {
    check_len("y", x.len(), y.len())?;
    reduce(backend, x, y, Reduction::Dot)
}
active!(/// `Σ x[i]·y[i]`.
    dot => dot_on(x: &[T], y: &[T]) -> Result<T, Error>);

/// `Σ x[i]` on `backend` (an empty slice sums to 0).
pub fn sum_on<T: Element>(backend: Backend, x: &[T]) -> Result<T, Error> {
    reduce(backend, x, x, Reduction::Sum)
}
active!(/// `Σ x[i]`.
    sum => sum_on(x: &[T]) -> Result<T, Error>);

/// `Σ x[i]²` on `backend`. Overflows to `+Inf` when the true value exceeds the type's range: use
/// [`norm2_on`] for a norm that does not.
pub fn sum_squares_on<T: Element>(backend: Backend, x: &[T]) -> Result<T, Error> {
    reduce(backend, x, x, Reduction::SumSquares)
}
active!(/// `Σ x[i]²` (may overflow: see [`norm2`]).
    sum_squares => sum_squares_on(x: &[T]) -> Result<T, Error>);

/// `max |x[i]|` on `backend`: 0 for an empty slice, NaN if any element is NaN.
pub fn max_abs_on<T: Element>(backend: Backend, x: &[T]) -> Result<T, Error> {
    reduce(backend, x, x, Reduction::MaxAbs)
}
active!(/// `max |x[i]|`: 0 for an empty slice, NaN if any element is NaN.
    max_abs => max_abs_on(x: &[T]) -> Result<T, Error>);

/// Whether every element is finite (no NaN, no ±Inf), on `backend`: one vectorised pass, cheap
/// enough to run before every step and skip a poisoned one.
pub fn all_finite_on<T: Element>(backend: Backend, x: &[T]) -> Result<bool, Error> {
    Ok(reduce(backend, x, x, Reduction::FiniteProbe)? == T::zero())
}
active!(/// Whether every element is finite (no NaN, no ±Inf).
    all_finite => all_finite_on(x: &[T]) -> Result<bool, Error>);

/// The Euclidean norm `√(Σ x[i]²)` on `backend`, without overflow or harmful underflow.
///
/// Fast path: the plain sum of squares, accepted when it is finite and not so small that squares
/// of tiny elements may have underflowed. Otherwise a second pass scales every element by an exact
/// power of two that brings `max |x|` into `[1, 2)`, sums the scaled squares, and undoes the
/// scaling after the square root. The result is within a few ulps of the exact norm times
/// `(1 + n·u)` for any finite input; it is `+Inf` if an element is infinite and NaN if one is NaN.
pub fn norm2_on<T: Element>(backend: Backend, x: &[T]) -> Result<T, Error> {
    let ss = sum_squares_on(backend, x)?;
    // Below this, a sum of squares may have lost digits to underflow.
    let tiny = T::min_positive_value() / T::epsilon();
    if ss.is_finite() && (ss >= tiny || ss == T::zero() && max_abs_on(backend, x)? == T::zero()) {
        return Ok(ss.sqrt_ieee());
    }
    let amax = max_abs_on(backend, x)?;
    if !amax.is_finite() || amax == T::zero() {
        return Ok(amax); // NaN, +Inf, or an all-zero vector
    }
    // 2^-e·amax ∈ [1, 2); apply 2^-e as two factors so each stays representable.
    let e = amax.exponent();
    let (e1, e2) = (e / 2, e - e / 2);
    let (c1, c2) = (libm::exp2(-e1 as f64), libm::exp2(-e2 as f64));
    let scaled = reduce(backend, x, x, Reduction::ScaledSumSquares(c1, c2))?;
    Ok(scaled.sqrt_ieee() * T::pow2(e1) * T::pow2(e2))
}
active!(/// The Euclidean norm, without overflow or harmful underflow (see [`norm2_on`]).
    norm2 => norm2_on(x: &[T]) -> Result<T, Error>);
