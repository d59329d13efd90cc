//! Ceiling kernels for the benchmarks (not part of the stable API): the same loop drivers and
//! vector types as the real kernels, with the arithmetic taken out (memory ceilings) or the memory
//! taken out (instruction-throughput ceilings), so a benchmark can quote each kernel as a fraction
//! of what the machine can do in the same run.

use crate::arch::driver::{fold, zip};
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::rules::adam8::BLOCK;
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

/// The memory traffic of blockwise 8-bit Adam ([`Adam8`](crate::Adam8)) over the rule's own
/// buffers, with bitwise operations only: `params` (`f32`, read and written), `grads` (`f32`,
/// read), `codes` (`u8`: the `m` codes then the `v` codes, `n` each, read and written) and
/// `scales` (`f32`: the `m` scales then the `v` scales, `⌈n/256⌉` each, read and written), with
/// the lengths [`Adam8::step_with`](crate::Adam8::step_with) requires (checked before anything is
/// written).
///
/// Bytes moved per element: 10 read (4 parameter, 4 gradient, 1 + 1 code) and 6 written
/// (4 parameter, 1 + 1 code), plus per block of [`BLOCK`] = 256 elements 8 bytes of scales read
/// and 8 written: `10 + 1/32` read and `6 + 1/32` written per element.
///
/// Three passes, each a plain stream: the parameters and gradients through the same loop driver
/// as the rules (`p ← p & g`), then the codes (`m ← m & v`, `v ← m | v`, byte by byte) and the
/// scales (the same on their bits), both as plain loops that the compiler vectorises for the
/// backend's instruction set (they are compiled inside its `#[target_feature]` entry). Every
/// written byte depends on a byte read, so no load or store can be removed.
pub fn blockwise8_pattern_on(
    backend: Backend,
    params: &mut [f32],
    grads: &[f32],
    codes: &mut [u8],
    scales: &mut [f32],
) -> Result<(), Error> {
    let n = params.len();
    let blocks = n.div_ceil(BLOCK);
    crate::error::check_len("grads", n, grads.len())?;
    crate::error::check_len("codes", 2 * n, codes.len())?;
    crate::error::check_len("scales", 2 * blocks, scales.len())?;
    run_on(
        backend,
        Blockwise8 {
            params,
            grads,
            codes,
            scales,
        },
    )
}

struct Blockwise8<'a> {
    params: &'a mut [f32],
    grads: &'a [f32],
    codes: &'a mut [u8],
    scales: &'a mut [f32],
}

impl Kernel<f32> for Blockwise8<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let n = self.params.len();
        Pattern {
            rw: [self.params],
            ro: [self.grads],
            n,
        }
        .run(s);
        let (m, v) = self.codes.split_at_mut(n);
        for (a, b) in m.iter_mut().zip(v.iter_mut()) {
            let (x, y) = (*a, *b);
            *a = x & y;
            *b = x | y;
        }
        let (m, v) = self.scales.split_at_mut(self.scales.len() / 2);
        for (a, b) in m.iter_mut().zip(v.iter_mut()) {
            let (x, y) = (a.to_bits(), b.to_bits());
            *a = f32::from_bits(x & y);
            *b = f32::from_bits(x | y);
        }
    }
}

/// One square root and one division per element of `x` (kept small, L1-resident, by the caller):
/// `x ← y / √x`. The instruction-throughput ceiling of exact Adam.
pub fn sqrt_div_on<T: Element>(backend: Backend, x: &mut [T], y: &[T]) -> Result<(), Error> {
    crate::error::check_len("y", x.len(), y.len())?;
    run_on(backend, Quotient::<T, true> { x, y })
}

/// One division per element of `x` (kept small, L1-resident, by the caller): `x ← y / x`. With
/// [`sqrt_div_on`], the ceiling of a rule that divides more often than it takes square roots.
pub fn div_on<T: Element>(backend: Backend, x: &mut [T], y: &[T]) -> Result<(), Error> {
    crate::error::check_len("y", x.len(), y.len())?;
    run_on(backend, Quotient::<T, false> { x, y })
}

/// `x ← y / √x` (`SQRT`) or `x ← y / x`.
struct Quotient<'a, T, const SQRT: bool> {
    x: &'a mut [T],
    y: &'a [T],
}

impl<T: Element, const SQRT: bool> Kernel<T> for Quotient<'_, T, SQRT> {
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
                |[x], [y]| *x = s.div(y, if SQRT { s.sqrt(*x) } else { *x }),
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
