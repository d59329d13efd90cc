//! Ceiling kernels for the benchmarks (not part of the stable API): the same loop drivers and
//! vector types as the real kernels, with the arithmetic taken out (memory ceilings) or the memory
//! taken out (instruction-throughput ceilings), so a benchmark can quote each kernel as a fraction
//! of what the machine can do in the same run.

use crate::arch::driver::{fold, zip};
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::{Backend, Element, Error};

/// Reads `RO` + `RW` streams and writes the `RW` streams in place with bitwise operations only
/// (one cycle each, no floating-point unit): the memory traffic of an update rule with that many
/// state buffers, and nothing else.
pub fn stream_pattern_on<T: Element, const RW: usize, const RO: usize>(
    backend: Backend,
    rw: [&mut [T]; RW],
    ro: [&[T]; RO],
) -> Result<(), Error> {
    let n = rw
        .first()
        .map(|b| b.len())
        .or(ro.first().map(|b| b.len()))
        .unwrap_or(0);
    if rw
        .iter()
        .map(|b| b.len())
        .chain(ro.iter().map(|b| b.len()))
        .any(|l| l != n)
    {
        return Err(Error::LengthMismatch {
            buffer: "stream",
            expected: n,
            found: 0,
        });
    }
    run_on(backend, Pattern { rw, ro, n })
}

struct Pattern<'a, T, const RW: usize, const RO: usize> {
    rw: [&'a mut [T]; RW],
    ro: [&'a [T]; RO],
    n: usize,
}

impl<T: Element, const RW: usize, const RO: usize> Kernel<T> for Pattern<'_, T, RW, RO> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let rw = self.rw.map(|b| b.as_mut_ptr());
        let ro = self.ro.map(|b| b.as_ptr());
        // SAFETY: every buffer has length n (checked above); the rw borrows are exclusive.
        unsafe {
            zip(
                s,
                self.n,
                rw,
                ro,
                #[inline(always)]
                |w: &mut [S::V; RW], r: [S::V; RO]| {
                    // Fold every read into every written stream with `or`/`and` so no load is dead.
                    let mut x = if RO > 0 { r[0] } else { s.splat(T::zero()) };
                    for v in r.iter().skip(1) {
                        x = s.or(x, *v);
                    }
                    for v in w.iter_mut() {
                        let old = *v;
                        *v = s.and(old, x);
                        x = s.or(x, old);
                    }
                },
            )
        }
    }
}

/// Reads `RO` streams with bitwise accumulation only: the read bandwidth a reduction of that many
/// inputs can reach. Returns the accumulated bits (so nothing is optimised away).
pub fn read_pattern_on<T: Element, const RO: usize>(
    backend: Backend,
    ro: [&[T]; RO],
) -> Result<T, Error> {
    let n = ro.first().map_or(0, |b| b.len());
    run_on(backend, ReadPattern { ro, n })
}

struct ReadPattern<'a, T, const RO: usize> {
    ro: [&'a [T]; RO],
    n: usize,
}

impl<T: Element, const RO: usize> Kernel<T> for ReadPattern<'_, T, RO> {
    type Output = T;
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) -> T {
        let ro = self.ro.map(|b| b.as_ptr());
        // SAFETY: every buffer has length n.
        let acc = unsafe {
            fold(
                s,
                self.n,
                ro,
                s.splat(T::zero()),
                #[inline(always)]
                |a, b| s.or(a, b),
                #[inline(always)]
                |acc, r: [S::V; RO]| {
                    let mut x = acc;
                    for v in r {
                        x = s.or(x, v);
                    }
                    x
                },
            )
        };
        s.reduce_max(s.abs(acc))
    }
}

/// One square root and one division per element of `x` (kept small, L1-resident, by the caller):
/// `x ← y / √x`. The instruction-throughput ceiling of exact Adam.
pub fn sqrt_div_on<T: Element>(backend: Backend, x: &mut [T], y: &[T]) -> Result<(), Error> {
    crate::error::check_len("y", x.len(), y.len())?;
    run_on(backend, SqrtDiv { x, y })
}

struct SqrtDiv<'a, T> {
    x: &'a mut [T],
    y: &'a [T],
}

impl<T: Element> Kernel<T> for SqrtDiv<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.x.len();
        // SAFETY: both buffers have length n; x is exclusive.
        unsafe {
            zip(
                s,
                n,
                [self.x.as_mut_ptr()],
                [self.y.as_ptr()],
                #[inline(always)]
                |[x], [y]| *x = s.div(y, s.sqrt(*x)),
            )
        }
    }
}

/// `iterations` rounds of 12 independent vector multiply-adds (register-resident): the
/// multiply-add peak. Returns a value derived from every accumulator; performs
/// `iterations · 12 · LANES` multiply-adds, and returns that count too.
pub fn fma_peak_on<T: Element>(
    backend: Backend,
    iterations: usize,
    seed: T,
) -> Result<(T, u64), Error> {
    run_on(backend, FmaPeak { iterations, seed })
}

struct FmaPeak<T> {
    iterations: usize,
    seed: T,
}

impl<T: Element> Kernel<T> for FmaPeak<T> {
    type Output = (T, u64);
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) -> (T, u64) {
        let a = s.splat(self.seed);
        let b = s.splat(T::one() - T::epsilon());
        let mut acc = [a; 12];
        for (i, v) in acc.iter_mut().enumerate() {
            *v = s.add(*v, s.splat(T::from_f64_round(i as f64)));
        }
        for _ in 0..self.iterations {
            for v in acc.iter_mut() {
                *v = s.mul_add_fast(*v, b, a);
            }
        }
        let mut sum = acc[0];
        for v in &acc[1..] {
            sum = s.add(sum, *v);
        }
        (s.reduce_add(sum), (self.iterations * 12 * S::LANES) as u64)
    }
}
