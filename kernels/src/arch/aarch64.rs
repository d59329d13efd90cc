//! aarch64 NEON backend: 4 `f32` or 2 `f64` lanes per vector. NEON (Advanced SIMD) is part of the
//! aarch64 baseline; the token is still only built through the backend table's check.
//! aarch64 NEON arithmetic is IEEE 754 with subnormals kept (FPCR.FZ is clear by default), so its
//! lanes agree bit for bit with the scalar backend.
//!
//! 16-bit conversions: bf16 by integer-vector rounding (`vshll`/`vadd`/`vshr`/`vmovn`), f16 by
//! `fcvtl`/`fcvtn` (inline assembly: the `float16x4_t` intrinsics are not stable Rust). `fcvtn`
//! rounds by FPCR, which is round-to-nearest-even with subnormals kept on every aarch64 Linux and
//! bare-metal start-up this crate supports (FPCR.RMode = 0, FZ = FZ16 = DN = AHP = 0).

use core::arch::aarch64::*;
use core::arch::asm;

use super::{Isa, Kernel, Simd};
use crate::Element;

/// NEON token.
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _private: (),
}

impl Isa for Neon {
    #[inline]
    fn detect() -> bool {
        if cfg!(target_feature = "neon") {
            return true;
        }
        #[cfg(feature = "std")]
        {
            std::arch::is_aarch64_feature_detected!("neon")
        }
        #[cfg(not(feature = "std"))]
        false
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Neon { _private: () }
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        // SAFETY: the token proves NEON (`new_unchecked`'s contract).
        unsafe { entry(self, k) }
    }
}

/// The backend's one `#[target_feature]` entry.
///
/// # Safety
/// The CPU must support `neon`.
#[target_feature(enable = "neon")]
unsafe fn entry<T: Element, K: Kernel<T>>(token: Neon, k: K) -> K::Output
where
    Neon: Simd<T>,
{
    k.run(token)
}

/// Implements [`Simd`] for NEON and one element type. Every `unsafe` block in the expansion relies
/// on one invariant, stated once here:
/// SAFETY: a `Neon` token exists only when NEON is present, so its intrinsics may be called; loads
/// and stores have no alignment requirement and their ranges are the caller's `# Safety` contract.
macro_rules! neon_impl {
    ($t:ty, $v:ty, $u:ty, $lanes:expr,
     $ld:ident, $st:ident, $dup:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $sqrt:ident, $fma:ident, $cgt:ident, $clt:ident, $ceq:ident,
     $to_u:ident, $from_u:ident, $uand:ident, $uor:ident, $ueor:ident, $ubic:ident,
     $u_as_u32:ident, $u32_as_u:ident, extra { $($extra:tt)* }) => {
        impl Simd<$t> for Neon {
            type V = $v;
            const LANES: usize = $lanes;
            // 8 × 3 accumulators + 3 B vectors + 1 broadcast A = 28 of the 32 vector registers.
            const TILE_ROWS: usize = 8;
            const TILE_VECTORS: usize = 3;
            #[inline(always)]
            unsafe fn load(self, ptr: *const $t) -> $v {
                // SAFETY: macro invariant; the caller guarantees LANES readable elements.
                unsafe { $ld(ptr) }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $t, v: $v) {
                // SAFETY: macro invariant; the caller guarantees LANES writable elements.
                unsafe { $st(ptr, v) }
            }
            #[inline(always)]
            fn splat(self, x: $t) -> $v {
                // SAFETY: macro invariant.
                unsafe { $dup(x) }
            }
            #[inline(always)]
            fn add(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $add(a, b) }
            }
            #[inline(always)]
            fn sub(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $sub(a, b) }
            }
            #[inline(always)]
            fn mul(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $mul(a, b) }
            }
            #[inline(always)]
            fn div(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $div(a, b) }
            }
            #[inline(always)]
            fn sqrt(self, a: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $sqrt(a) }
            }
            #[inline(always)]
            fn mul_add_fast(self, a: $v, b: $v, c: $v) -> $v {
                // SAFETY: macro invariant. vfmaq(c, a, b) = c + a * b, one rounding.
                unsafe { $fma(c, a, b) }
            }
            #[inline(always)]
            fn gt(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $from_u($cgt(a, b)) }
            }
            #[inline(always)]
            fn lt(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $from_u($clt(a, b)) }
            }
            #[inline(always)]
            fn is_nan(self, a: $v) -> $v {
                // SAFETY: macro invariant. a == a is false exactly for NaN; invert the mask.
                unsafe { $from_u($u32_as_u(vmvnq_u32($u_as_u32($ceq(a, a))))) }
            }
            #[inline(always)]
            fn and(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $from_u($uand($to_u(a), $to_u(b))) }
            }
            #[inline(always)]
            fn or(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $from_u($uor($to_u(a), $to_u(b))) }
            }
            #[inline(always)]
            fn xor(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant.
                unsafe { $from_u($ueor($to_u(a), $to_u(b))) }
            }
            #[inline(always)]
            fn andnot(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant. BIC(x, y) = x & !y.
                unsafe { $from_u($ubic($to_u(b), $to_u(a))) }
            }
            super::spill_reductions!($t, $v, $lanes, $st);
            $($extra)*
        }
    };
}

neon_impl!(
    f32,
    float32x4_t,
    uint32x4_t,
    4,
    vld1q_f32,
    vst1q_f32,
    vdupq_n_f32,
    vaddq_f32,
    vsubq_f32,
    vmulq_f32,
    vdivq_f32,
    vsqrtq_f32,
    vfmaq_f32,
    vcgtq_f32,
    vcltq_f32,
    vceqq_f32,
    vreinterpretq_u32_f32,
    vreinterpretq_f32_u32,
    vandq_u32,
    vorrq_u32,
    veorq_u32,
    vbicq_u32,
    identity_u32,
    identity_u32,
    extra {
        #[inline(always)]
        unsafe fn load_bf16(self, p: *const u16) -> float32x4_t {
            // SAFETY: module invariant; 4 readable u16.
            unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p))) }
        }
        #[inline(always)]
        unsafe fn load_f16(self, p: *const u16) -> float32x4_t {
            // SAFETY: module invariant; 4 readable u16.
            widen_f16(unsafe { vld1_u16(p) })
        }
        #[inline(always)]
        unsafe fn store_bf16_rne(self, p: *mut u16, v: float32x4_t) {
            // SAFETY: module invariant; 4 writable u16.
            unsafe {
                let b = vreinterpretq_u32_f32(v);
                let lsb = vandq_u32(vshrq_n_u32::<16>(b), vdupq_n_u32(1));
                let add = vaddq_u32(lsb, vdupq_n_u32(0x7FFF));
                vst1_u16(p, bf16_lanes(v, add))
            }
        }
        #[inline(always)]
        unsafe fn store_bf16_sr(self, p: *mut u16, v: float32x4_t, r: float32x4_t) {
            // SAFETY: module invariant; 4 writable u16.
            unsafe { vst1_u16(p, bf16_lanes(v, vreinterpretq_u32_f32(r))) }
        }
        #[inline(always)]
        unsafe fn store_f16_rne(self, p: *mut u16, v: float32x4_t) {
            // SAFETY: module invariant; 4 writable u16.
            unsafe { vst1_u16(p, narrow_f16(v)) }
        }
        #[inline(always)]
        fn f16_round_trip(self, v: float32x4_t) -> float32x4_t {
            widen_f16(narrow_f16(v))
        }
        #[inline(always)]
        fn random_lanes(self, key: u32, first: u32) -> float32x4_t {
            // SAFETY: module invariant.
            unsafe {
                let steps: [u32; 4] = [0, 1, 2, 3];
                let i = vaddq_u32(vdupq_n_u32(first), vld1q_u32(steps.as_ptr()));
                vreinterpretq_f32_u32(mix32(veorq_u32(i, vdupq_n_u32(key))))
            }
        }
        #[inline(always)]
        fn shr16(self, v: float32x4_t) -> float32x4_t {
            // SAFETY: module invariant.
            unsafe { vreinterpretq_f32_u32(vshrq_n_u32::<16>(vreinterpretq_u32_f32(v))) }
        }
        #[inline(always)]
        fn shl16(self, v: float32x4_t) -> float32x4_t {
            // SAFETY: module invariant.
            unsafe { vreinterpretq_f32_u32(vshlq_n_u32::<16>(vreinterpretq_u32_f32(v))) }
        }
    }
);

neon_impl!(
    f64,
    float64x2_t,
    uint64x2_t,
    2,
    vld1q_f64,
    vst1q_f64,
    vdupq_n_f64,
    vaddq_f64,
    vsubq_f64,
    vmulq_f64,
    vdivq_f64,
    vsqrtq_f64,
    vfmaq_f64,
    vcgtq_f64,
    vcltq_f64,
    vceqq_f64,
    vreinterpretq_u64_f64,
    vreinterpretq_f64_u64,
    vandq_u64,
    vorrq_u64,
    veorq_u64,
    vbicq_u64,
    vreinterpretq_u32_u64,
    vreinterpretq_u64_u32,
    extra {}
);

#[inline(always)]
fn identity_u32(x: uint32x4_t) -> uint32x4_t {
    x
}

// Every `unsafe` block below relies on one invariant:
// SAFETY: a `Neon` token exists only when NEON is present, so its intrinsics and the `fcvtl`/
// `fcvtn` instructions (base Advanced SIMD) may run; the pointer ranges are the callers'
// `# Safety` contracts, and NEON loads and stores have no alignment requirement.

/// `mix32` of every lane (see `crate::storage::mix32`).
#[inline(always)]
fn mix32(x: uint32x4_t) -> uint32x4_t {
    // SAFETY: module invariant.
    unsafe {
        let x = veorq_u32(x, vshrq_n_u32::<16>(x));
        let x = vmulq_u32(x, vdupq_n_u32(0x7feb_352d));
        let x = veorq_u32(x, vshrq_n_u32::<15>(x));
        let x = vmulq_u32(x, vdupq_n_u32(0x846c_a68b));
        veorq_u32(x, vshrq_n_u32::<16>(x))
    }
}

/// Four f32 lanes rounded to f16 (nearest even, by FPCR).
#[inline(always)]
fn narrow_f16(v: float32x4_t) -> uint16x4_t {
    let out: uint16x4_t;
    // SAFETY: module invariant; a pure register-to-register instruction.
    unsafe {
        asm!("fcvtn {o:v}.4h, {i:v}.4s", i = in(vreg) v, o = out(vreg) out,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// Four f16 lanes widened to f32 (exact).
#[inline(always)]
fn widen_f16(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: module invariant; a pure register-to-register instruction.
    unsafe {
        asm!("fcvtl {o:v}.4s, {i:v}.4h", i = in(vreg) h, o = out(vreg) out,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// bf16 bits per lane: NaN lanes `(bits >> 16) | 0x40` (quiet), others `(bits + add) >> 16`.
#[inline(always)]
fn bf16_lanes(v: float32x4_t, add: uint32x4_t) -> uint16x4_t {
    // SAFETY: module invariant.
    unsafe {
        let b = vreinterpretq_u32_f32(v);
        let rounded = vshrq_n_u32::<16>(vaddq_u32(b, add));
        let quiet = vorrq_u32(vshrq_n_u32::<16>(b), vdupq_n_u32(0x40));
        let not_nan = vceqq_f32(v, v);
        vmovn_u32(vbslq_u32(not_nan, rounded, quiet))
    }
}
