//! The element types the kernels accept: `f32` and `f64`.

use crate::arch::{Backend, Kernel};

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
    + crate::storage::Storage<Self>
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
    /// Bitwise xor.
    fn bit_xor(a: Self, b: Self) -> Self;
    /// The value whose raw bits are `x` zero-extended (random-bit lanes).
    fn from_low_bits(x: u32) -> Self;
    /// The low 32 raw bits.
    fn low_bits(self) -> u32;
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
            fn bit_xor(a: Self, b: Self) -> Self {
                <$t>::from_bits(a.to_bits() ^ b.to_bits())
            }
            #[inline(always)]
            fn from_low_bits(x: u32) -> Self {
                <$t>::from_bits(x as $bits)
            }
            #[inline(always)]
            fn low_bits(self) -> u32 {
                self.to_bits() as u32
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

impl_element!(f32, u32, 24, sqrt_f32, crate::arch::dispatch_f32);
impl_element!(f64, u64, 53, sqrt_f64, crate::arch::dispatch_f64);

// Square roots. `libm::sqrtf` is a software routine (~50 instructions per call) on every target
// except x86, aarch64 and wasm, even where the core has a hardware square root, and
// `core::f32::math::sqrt` is not stable. Where the FPU has an IEEE square root we issue it with
// inline assembly; IEEE 754 requires `sqrt` to be correctly rounded, so the result is bit-identical
// to `libm`'s (NaN payloads aside; NaN in gives NaN out). Everywhere else: `libm`. `build.rs`
// picks the variant (`cfg(descent_sqrt_*)`).

/// RISC-V with the F extension: `fsqrt.s` (round-to-nearest-even, the default dynamic mode).
#[cfg(descent_sqrt_fsqrt_s)]
#[inline(always)]
fn sqrt_f32(x: f32) -> f32 {
    let y: f32;
    // SAFETY: `fsqrt.s` reads and writes only the named FP registers and may raise the fflags
    // exception flags (so no `preserves_flags`); the target has the F extension (build.rs), so
    // it cannot trap.
    unsafe {
        core::arch::asm!("fsqrt.s {0}, {1}", out(freg) y, in(freg) x,
            options(pure, nomem, nostack))
    };
    y
}

/// Arm hard-float targets (`eabihf`, e.g. `thumbv7em-none-eabihf`, `thumbv8m.main-none-eabihf`):
/// their FPU feature has no Rust name, so the `sreg` register class is unavailable ("requires the
/// `vfp2` target feature"). The value moves through `s0` inside the assembly, which saves and
/// restores `s0` in a general register: 4 instructions around the `vsqrt.f32`, plus the
/// compiler's two moves between FP and general registers.
#[cfg(descent_sqrt_vsqrt)]
#[inline(always)]
fn sqrt_f32(x: f32) -> f32 {
    let bits: u32;
    // SAFETY: `s0` is restored before the block ends, so no register the compiler uses changes
    // except the declared outputs; every `eabihf` target has a VFP with `vsqrt.f32`, which cannot
    // trap (FP exception traps are not enabled) and sets only FPSCR's cumulative exception flags
    // (so no `preserves_flags`).
    unsafe {
        core::arch::asm!(
            "vmov {t}, s0",
            "vmov s0, {x}",
            "vsqrt.f32 s0, s0",
            "vmov {x}, s0",
            "vmov s0, {t}",
            x = inout(reg) x.to_bits() => bits,
            t = out(reg) _,
            options(pure, nomem, nostack),
        )
    };
    f32::from_bits(bits)
}

/// Opt-in (`unstable-float-math`): `core::f32::math::sqrt`, which LLVM lowers to the FPU
/// instruction with no register moves where there is one, and to software elsewhere.
#[cfg(descent_sqrt_core)]
#[inline(always)]
fn sqrt_f32(x: f32) -> f32 {
    core::f32::math::sqrt(x)
}

#[cfg(not(any(descent_sqrt_fsqrt_s, descent_sqrt_vsqrt, descent_sqrt_core)))]
#[inline(always)]
fn sqrt_f32(x: f32) -> f32 {
    libm::sqrtf(x)
}

/// RISC-V with the D extension: `fsqrt.d`.
#[cfg(descent_sqrt_fsqrt_d)]
#[inline(always)]
fn sqrt_f64(x: f64) -> f64 {
    let y: f64;
    // SAFETY: as for `fsqrt.s` above; the target has the D extension (build.rs).
    unsafe {
        core::arch::asm!("fsqrt.d {0}, {1}", out(freg) y, in(freg) x,
            options(pure, nomem, nostack))
    };
    y
}

#[cfg(not(descent_sqrt_fsqrt_d))]
#[inline(always)]
fn sqrt_f64(x: f64) -> f64 {
    libm::sqrt(x)
}

/// The square root `Element::sqrt_ieee` uses, exported for tests and firmware that compare it
/// against `libm` on the target.
#[doc(hidden)]
pub fn sqrt_f32_backend(x: f32) -> f32 {
    sqrt_f32(x)
}

/// Which square root [`Element::sqrt_ieee`] uses for `f32` on this target.
#[doc(hidden)]
pub const SQRT_F32_IMPL: &str = if cfg!(descent_sqrt_fsqrt_s) {
    "fsqrt.s"
} else if cfg!(descent_sqrt_vsqrt) {
    "vsqrt.f32 (inline asm)"
} else if cfg!(descent_sqrt_core) {
    "core::f32::math::sqrt"
} else {
    "libm"
};
