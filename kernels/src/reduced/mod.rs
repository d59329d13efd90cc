//! Reduced precision: parameters and optimizer state stored as `half::bf16` or `half::f16` with
//! all arithmetic in `f32`; rounding `f32 → bf16/f16` to nearest-even or stochastically; gradient
//! quantization to a precision `ρ`.
//!
//! ## What is rounded when
//! A 16-bit variant of an update rule (the `*_reduced_on` methods and functions) reads every
//! buffer, widens 16-bit values to `f32` (exact), runs **exactly** the `f32` rule's per-element
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
//! ## The random-bit stream (backend-independent)
//! A stochastic call draws `next_u64()` words from the caller's `Xoshiro256PlusPlus`: element `i`
//! of the `k`-th rounded buffer (the written 16-bit buffers in argument order, `K` of them) uses
//! bits `16·(i mod 4) ..< 16·(i mod 4) + 16` of word number `(i div 4)·K + k`. A call on `n`
//! elements consumes exactly `K·⌈n/4⌉` words, whatever the backend, so the same seed gives the
//! same bits on every backend, and consecutive calls continue the stream.
//!
//! ## Conversion paths
//! | backend | bf16 | f16 |
//! |---|---|---|
//! | scalar | integer bit arithmetic | bit arithmetic (the reference) |
//! | SSE2 | `paddd`/`psrad`/`packssdw`, `punpcklwd` to widen | lane by lane via the scalar reference |
//! | AVX2+FMA | `vpaddd`/`vpsrad`/`vpblendvb`/`vpackssdw`, `vpmovzxwd`+`vpslld` to widen | F16C `vcvtps2ph`/`vcvtph2ps` when detected, else lane by lane |
//! | NEON | `add`/`ushr`/`bsl`/`xtn`, `ushll` to widen | `fcvtn`/`fcvtl` |
//!
//! F16C is a separate CPUID bit from AVX2 but every AVX2 CPU has it, and it gives the same bits as
//! the lane-wise path; so it is not a [`Backend`] of its own (which would double every test
//! matrix for no observable difference): the AVX2+FMA backend checks it once ([`f16c_available`],
//! cached; compile-time only without `std`) and picks the F16C entry point for 16-bit kernels.
//! Stochastic f16 rounding is exact `f32` arithmetic around a nearest-even round trip on every
//! backend.

use crate::error::check_len;
use crate::{Backend, Error};
use rand_xoshiro::Xoshiro256PlusPlus;

pub mod quantize;
mod rules;
pub mod scalar;
pub(crate) mod simd16;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use rules::{ema_reduced_on, replica_mean_reduced_on, running_mean_reduced_on};
#[doc(hidden)]
pub use simd16::disable_f16c_for_tests;
pub use simd16::f16c_available;

use simd16::{run16, zip16, Half16, Kernel16, RoBuf, RwBuf};

/// A storage format of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `f32`, never rounded.
    F32,
    /// `half::bf16` (8-bit exponent, 7-bit mantissa).
    Bf16,
    /// `half::f16` (IEEE binary16: 5-bit exponent, 10-bit mantissa).
    F16,
}

impl Format {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Format::F32 => 4,
            Format::Bf16 | Format::F16 => 2,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
}

/// An element type a buffer can be stored as: `f32`, `half::bf16` or `half::f16` (sealed).
pub trait Storage: Copy + sealed::Sealed + 'static {
    /// The format of this type.
    const FORMAT: Format;
}

impl Storage for f32 {
    const FORMAT: Format = Format::F32;
}
// `half::bf16` and `half::f16` are `#[repr(transparent)]` over `u16`: the kernels access them as
// `u16` bits.
impl Storage for half::bf16 {
    const FORMAT: Format = Format::Bf16;
}
impl Storage for half::f16 {
    const FORMAT: Format = Format::F16;
}

/// How written 16-bit buffers are rounded from the `f32` results.
#[derive(Debug)]
pub enum Rounding<'r> {
    /// Round to nearest, ties to even (deterministic).
    NearestEven,
    /// Stochastic rounding with 16 random bits per value from this generator, consumed in the
    /// documented order (see the module documentation).
    Stochastic(&'r mut Xoshiro256PlusPlus),
}

impl<'r> Rounding<'r> {
    pub(crate) fn rng(self) -> Option<&'r mut Xoshiro256PlusPlus> {
        match self {
            Rounding::NearestEven => None,
            Rounding::Stochastic(r) => Some(r),
        }
    }
}

/// Converts `src` into `dst` on `backend`: widening (exact), narrowing with `rounding`, or a copy
/// (same format). `dst` is the one rounded buffer of the call (`K = 1` in the stream).
pub fn convert_on<A: Storage, B: Storage>(
    backend: Backend,
    rounding: Rounding<'_>,
    src: &[A],
    dst: &mut [B],
) -> Result<(), Error> {
    check_len("dst", src.len(), dst.len())?;
    run16(
        backend,
        Convert {
            n: src.len(),
            src: RoBuf::of(src),
            dst: RwBuf::of(dst),
            rng: rounding.rng(),
        },
    )
}

/// [`convert_on`] on the active backend.
pub fn convert<A: Storage, B: Storage>(
    rounding: Rounding<'_>,
    src: &[A],
    dst: &mut [B],
) -> Result<(), Error> {
    convert_on(Backend::active(), rounding, src, dst)
}

struct Convert<'r> {
    n: usize,
    src: RoBuf,
    dst: RwBuf,
    rng: Option<&'r mut Xoshiro256PlusPlus>,
}

impl Kernel16 for Convert<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Half16>(self, s: S) {
        // SAFETY: both buffers have n elements of their formats (checked by `convert_on`); `dst`
        // comes from an exclusive borrow, so it overlaps nothing.
        unsafe {
            zip16(
                s,
                self.n,
                [self.dst],
                [self.src],
                self.rng,
                #[inline(always)]
                |[d], [x], _| *d = x,
            )
        }
    }
}
