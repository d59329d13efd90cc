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
use crate::arch::Kernel;
use crate::arch::Simd;
use crate::error::check_len;
use crate::{Element, Error, Exec};

/// Generates the [`Exec::active`] wrapper of a `*_with` function.
macro_rules! active {
    ($(#[$doc:meta])* $name:ident => $on:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$doc])*
        pub fn $name<T: Element>($($arg: $ty),*) -> $ret {
            $on(&Exec::active(), $($arg),*)
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
    exec: &Exec,
    out: &mut [T],
    a: &[T],
    b: &[T],
    op: BinOp,
) -> Result<(), Error> {
    check_len("a", out.len(), a.len())?;
    check_len("b", out.len(), b.len())?;
    exec.run(BinaryKernel { out, a, b, op });
    Ok(())
}

/// `out[i] = a[i] + b[i]` with the context `exec`.
pub fn add_with<T: Element>(exec: &Exec, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(exec, out, a, b, BinOp::Add)
}
/// `out[i] = a[i] - b[i]` with the context `exec`.
pub fn sub_with<T: Element>(exec: &Exec, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(exec, out, a, b, BinOp::Sub)
}
/// `out[i] = a[i] * b[i]` with the context `exec`.
pub fn mul_with<T: Element>(exec: &Exec, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(exec, out, a, b, BinOp::Mul)
}
/// `out[i] = a[i] / b[i]` with the context `exec`.
pub fn div_with<T: Element>(exec: &Exec, out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error> {
    binary(exec, out, a, b, BinOp::Div)
}
active!(/// `out[i] = a[i] + b[i]`.
    add => add_with(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] - b[i]`.
    sub => sub_with(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] * b[i]`.
    mul => mul_with(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);
active!(/// `out[i] = a[i] / b[i]`.
    div => div_with(out: &mut [T], a: &[T], b: &[T]) -> Result<(), Error>);

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

/// `y[i] = alpha·x[i] + y[i]` (a multiply then an add: two roundings, no FMA).
pub fn axpy_with<T: Element>(exec: &Exec, alpha: T, x: &[T], y: &mut [T]) -> Result<(), Error> {
    check_len("x", y.len(), x.len())?;
    exec.run(AxpyKernel {
        y,
        x: Some(x),
        alpha,
    });
    Ok(())
}
active!(/// `y[i] = alpha·x[i] + y[i]` (two roundings, no FMA).
    axpy => axpy_with(alpha: T, x: &[T], y: &mut [T]) -> Result<(), Error>);

/// `x[i] = alpha·x[i]` with the context `exec`.
pub fn scale_with<T: Element>(exec: &Exec, alpha: T, x: &mut [T]) {
    exec.run(AxpyKernel {
        y: x,
        x: None,
        alpha,
    })
}
active!(/// `x[i] = alpha·x[i]`.
    scale => scale_with(alpha: T, x: &mut [T]) -> ());

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

fn reduce<T: Element>(exec: &Exec, x: &[T], y: &[T], what: Reduction) -> T {
    exec.run(ReduceKernel { x, y, what })
}

/// `Σ x[i]·y[i]` with the context `exec`.
pub fn dot_with<T: Element>(exec: &Exec, x: &[T], y: &[T]) -> Result<T, Error> {
    check_len("y", x.len(), y.len())?;
    Ok(reduce(exec, x, y, Reduction::Dot))
}
active!(/// `Σ x[i]·y[i]`.
    dot => dot_with(x: &[T], y: &[T]) -> Result<T, Error>);

/// `Σ x[i]` (an empty slice sums to 0).
pub fn sum_with<T: Element>(exec: &Exec, x: &[T]) -> T {
    reduce(exec, x, x, Reduction::Sum)
}
active!(/// `Σ x[i]`.
    sum => sum_with(x: &[T]) -> T);

/// `Σ x[i]²` with the context `exec`. Overflows to `+Inf` when the true value exceeds the type's range: use
/// [`norm2`] for a norm that does not.
pub fn sum_squares_with<T: Element>(exec: &Exec, x: &[T]) -> T {
    reduce(exec, x, x, Reduction::SumSquares)
}
active!(/// `Σ x[i]²` (may overflow: see [`norm2`]).
    sum_squares => sum_squares_with(x: &[T]) -> T);

/// `max |x[i]|`: 0 for an empty slice, NaN if any element is NaN.
pub fn max_abs_with<T: Element>(exec: &Exec, x: &[T]) -> T {
    reduce(exec, x, x, Reduction::MaxAbs)
}
active!(/// `max |x[i]|`: 0 for an empty slice, NaN if any element is NaN.
    max_abs => max_abs_with(x: &[T]) -> T);

/// Whether every element is finite (no NaN, no ±Inf),: one vectorised pass, cheap
/// enough to run before every step and skip a poisoned one.
pub fn all_finite_with<T: Element>(exec: &Exec, x: &[T]) -> bool {
    reduce(exec, x, x, Reduction::FiniteProbe) == T::zero()
}
active!(/// Whether every element is finite (no NaN, no ±Inf).
    all_finite => all_finite_with(x: &[T]) -> bool);

/// The Euclidean norm `√(Σ x[i]²)`, without overflow or harmful underflow.
///
/// Fast path: the plain sum of squares, accepted when it is finite and not so small that squares
/// of tiny elements may have underflowed. Otherwise a second pass scales every element by an exact
/// power of two that brings `max |x|` into `[1, 2)`, sums the scaled squares, and undoes the
/// scaling after the square root. The result is within a few ulps of the exact norm times
/// `(1 + n·u)` for any finite input; it is `+Inf` if an element is infinite and NaN if one is NaN.
pub fn norm2_with<T: Element>(exec: &Exec, x: &[T]) -> T {
    let ss = sum_squares_with(exec, x);
    // Below this, a sum of squares may have lost digits to underflow.
    let tiny = T::min_positive_value() / T::epsilon();
    if ss.is_finite() && (ss >= tiny || ss == T::zero() && max_abs_with(exec, x) == T::zero()) {
        return ss.sqrt_ieee();
    }
    let amax = max_abs_with(exec, x);
    if !amax.is_finite() || amax == T::zero() {
        return amax; // NaN, +Inf, or an all-zero vector
    }
    // 2^-e·amax ∈ [1, 2); apply 2^-e as two factors so each stays representable.
    let e = amax.exponent();
    let (e1, e2) = (e / 2, e - e / 2);
    let (c1, c2) = (libm::exp2(-e1 as f64), libm::exp2(-e2 as f64));
    let scaled = reduce(exec, x, x, Reduction::ScaledSumSquares(c1, c2));
    scaled.sqrt_ieee() * T::pow2(e1) * T::pow2(e2)
}
active!(/// The Euclidean norm, without overflow or harmful underflow (see [`norm2_with`]).
    norm2 => norm2_with(x: &[T]) -> T);
