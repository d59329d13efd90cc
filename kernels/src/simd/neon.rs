//! aarch64 NEON backend: 4 `f32` or 2 `f64` lanes per vector. NEON (Advanced SIMD) is part of the
//! aarch64 baseline; the token is still only built through a checked or `unsafe` constructor.
//! aarch64 NEON arithmetic is IEEE 754 with subnormals kept (FPCR.FZ is clear by default), so its
//! lanes agree bit for bit with the scalar backend.

use core::arch::aarch64::*;

use super::{tree_max, tree_sum, Simd};

/// NEON token.
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _private: (),
}

impl Neon {
    /// The token, if this CPU has NEON.
    #[inline]
    pub fn try_new() -> Option<Self> {
        crate::Backend::Neon
            .is_available()
            .then_some(Neon { _private: () })
    }

    /// The token without a check.
    ///
    /// # Safety
    /// The CPU must support the `neon` feature.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Neon { _private: () }
    }
}

/// Implements [`Simd`] for NEON and one element type. Every `unsafe` block in the expansion relies
/// on one invariant, stated once here:
/// SAFETY: a `Neon` token exists only when NEON is present, so its intrinsics may be called; loads
/// and stores have no alignment requirement and their ranges are the caller's `# Safety` contract.
macro_rules! neon_impl {
    ($t:ty, $v:ty, $u:ty, $lanes:expr,
     $ld:ident, $st:ident, $dup:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $sqrt:ident, $fma:ident, $cgt:ident, $clt:ident, $ceq:ident,
     $to_u:ident, $from_u:ident, $uand:ident, $uor:ident, $ubic:ident, $u_as_u32:ident, $u32_as_u:ident) => {
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
            fn andnot(self, a: $v, b: $v) -> $v {
                // SAFETY: macro invariant. BIC(x, y) = x & !y.
                unsafe { $from_u($ubic($to_u(b), $to_u(a))) }
            }
            #[inline(always)]
            fn reduce_add(self, v: $v) -> $t {
                let mut lanes = [0.0 as $t; $lanes];
                // SAFETY: `lanes` holds exactly LANES elements.
                unsafe { $st(lanes.as_mut_ptr(), v) };
                tree_sum(&lanes)
            }
            #[inline(always)]
            fn reduce_max(self, v: $v) -> $t {
                let mut lanes = [0.0 as $t; $lanes];
                // SAFETY: `lanes` holds exactly LANES elements.
                unsafe { $st(lanes.as_mut_ptr(), v) };
                tree_max(&lanes)
            }
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
    vbicq_u32,
    identity_u32,
    identity_u32
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
    vbicq_u64,
    vreinterpretq_u32_u64,
    vreinterpretq_u64_u32
);

#[inline(always)]
fn identity_u32(x: uint32x4_t) -> uint32x4_t {
    x
}
