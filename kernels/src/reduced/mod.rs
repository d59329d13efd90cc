//! Reduced precision: parameters and optimizer state stored as `half::bf16` or `half::f16` with
//! all arithmetic in `f32`; rounding `f32 → bf16/f16` to nearest-even or stochastically; gradient
//! quantization to a precision `ρ`.
//!
//! ## What is rounded when
//! An update rule or averaging function called with 16-bit buffers ([`crate::Rule::step_with`],
//! [`crate::rules::averaging`]'s `*_with` functions) reads every buffer, widens 16-bit values to `f32` (exact), runs **exactly** the `f32` rule's per-element
//! operations (the same code), and rounds each *written* buffer once, when it is stored, with the
//! caller's [`Rounding`]. Intermediate values inside one step (Adam's new `m` and `v` feeding the
//! parameter update, for example) are the unrounded `f32` values. A written buffer stored as `f32`
//! is not rounded. So, bit for bit on every backend, a 16-bit variant equals: widen the inputs,
//! run the `f32` rule, round each written 16-bit buffer.
//!
//! ## Rounding
//! - [`Rounding::NearestEven`]: IEEE round-to-nearest, ties to even; overflow gives ±Inf, f16
//!   subnormals are produced, NaN stays NaN (quiet; sign and top payload bits kept on the scalar
//!   and bf16 paths, some quiet NaN on F16C/NEON f16), ±Inf stays ±Inf. Equals
//!   `half::bf16::from_f32` / `half::f16::from_f32` (up to NaN payloads).
//! - [`Rounding::Stochastic`]: each value uses **16 random bits** `r` and rounds its magnitude up to
//!   the next 16-bit value with probability equal to the fractional distance between its two
//!   neighbours, to the resolution of those bits: exactly `d/2^16` for bf16 (`d` the 16 dropped
//!   bits), exactly the fractional distance for f16 when `|x| ≥ 2^-17` (and `⌈2^16·frac⌉/2^16`
//!   below, an excess under `2^-16` f16 ulp). Above the largest finite value the upper neighbour is
//!   the next power of two, stored as ±Inf. NaN, ±Inf and the sign of zero are kept.
//!
//! ## The random bits (backend- and chunking-independent)
//! Counter-based: the bits of element `i` of the `k`-th written 16-bit buffer of a call are a
//! hash of (seed, stream, counter, `k`, `offset + i`), computed in SIMD lanes (see
//! [`crate::storage`] for the exact function). The same key gives the same bits on every backend
//! and however the buffer is split into calls (each chunk passing its `offset`). Nothing is
//! consumed: advance the key's `counter` between steps to draw fresh bits.
//!
//! ## Conversion paths
//! | backend | bf16 | f16 |
//! |---|---|---|
//! | scalar | integer bit arithmetic | bit arithmetic (the reference) |
//! | SSE2 | `paddd`/`psrad`/`packssdw`, `punpcklwd` to widen | lane by lane via the scalar reference |
//! | AVX2+FMA (+F16C) | `vpaddd`/`vpsrad`/`vpblendvb`/`vpackssdw`, `vpmovzxwd`+`vpslld` to widen | F16C `vcvtps2ph`/`vcvtph2ps` |
//! | AVX-512 | `vpaddd`/`vpsrld`/`vpblendmd`/`vpmovdw`, `vpmovzxwd`+`vpslld` to widen | `vcvtps2ph`/`vcvtph2ps` (zmm) |
//! | NEON | `add`/`ushr`/`bsl`/`xtn`, `ushll` to widen | `fcvtn`/`fcvtl` |
//! | wasm `simd128` | integer lanes, `i16x8` narrowing | lane by lane via the scalar reference |
//!
//! F16C is a separate CPUID bit from AVX2 but every AVX2 CPU has it, so the AVX2+FMA backend
//! requires it (it is detected with the rest). Stochastic f16 rounding is exact `f32` arithmetic
//! around a nearest-even round trip on every backend.

use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::error::check_len;
use crate::{Error, Exec};

pub mod quantize;
pub mod scalar;

pub use crate::storage::{Format, Rounding, StochasticKey, Storage};

/// Converts `src` into `dst` on the active backend, rounding to nearest-even when narrowing.
pub fn convert<A: Storage, B: Storage>(src: &[A], dst: &mut [B]) -> Result<(), Error> {
    convert_with(&Exec::active(), src, dst)
}

/// Converts `src` into `dst` with the context `exec`: widening (exact), narrowing with the
/// context's rounding, or a copy (same format). `dst` is the one drawing buffer of the call.
pub fn convert_with<A: Storage, B: Storage>(
    exec: &Exec,
    src: &[A],
    dst: &mut [B],
) -> Result<(), Error> {
    check_len("dst", src.len(), dst.len())?;
    let draw = match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    };
    exec.run(Convert { src, dst, draw });
    Ok(())
}

struct Convert<'a, A, B> {
    src: &'a [A],
    dst: &'a mut [B],
    draw: Option<Draw<1>>,
}

impl<A: Storage, B: Storage> Kernel<f32> for Convert<'_, A, B> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let n = self.src.len();
        // SAFETY: both buffers have n elements of their types (checked by `convert_with`); `dst`
        // comes from an exclusive borrow, so it overlaps nothing.
        unsafe {
            zip_stored::<f32, S, B, B, A, 1, 1>(
                s,
                n,
                [self.dst.as_mut_ptr().cast()],
                [self.src.as_ptr().cast()],
                self.draw,
                #[inline(always)]
                |[d], [x], _| *d = x,
            )
        }
    }
}
