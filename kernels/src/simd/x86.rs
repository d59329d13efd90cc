//! x86-64 backends: SSE2 (part of the x86-64 baseline, so always available there) and AVX2+FMA
//! (detected at run time with `std`, or enabled at compile time with `-C target-feature`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use super::{tree_max, tree_sum, Simd};
use crate::backend::Kernel;
use crate::Element;

/// SSE2 token. SSE2 is part of the x86-64 baseline, so this backend is always available on x86-64.
#[derive(Clone, Copy, Debug)]
pub struct Sse2 {
    _private: (),
}

impl Sse2 {
    /// The SSE2 token (every x86-64 CPU has SSE2).
    #[inline(always)]
    pub fn new() -> Self {
        Sse2 { _private: () }
    }
}

impl Default for Sse2 {
    fn default() -> Self {
        Self::new()
    }
}

/// AVX2+FMA token: 8 `f32` or 4 `f64` lanes per vector.
#[derive(Clone, Copy, Debug)]
pub struct Avx2Fma {
    _private: (),
}

impl Avx2Fma {
    /// The token, if this CPU has AVX2 and FMA.
    #[inline]
    pub fn try_new() -> Option<Self> {
        crate::Backend::Avx2Fma
            .is_available()
            .then_some(Avx2Fma { _private: () })
    }

    /// The token without a check.
    ///
    /// # Safety
    /// The CPU must support the `avx2` and `fma` features.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Self {
        Avx2Fma { _private: () }
    }
}

/// Runs `k` with AVX2 and FMA enabled for everything inlined into it.
///
/// # Safety
/// The CPU must support `avx2` and `fma` (guaranteed by the token's constructors).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run_avx2<T: Element, K: Kernel<T>>(token: Avx2Fma, k: K) -> K::Output
where
    Avx2Fma: Simd<T>,
{
    k.run(token)
}

/// Implements [`Simd`] for one token and element type from the intrinsic names.
/// Every `unsafe` block in the expansion relies on one invariant, stated once here:
/// SAFETY: a token of this type exists only when its CPU features are present (see the
/// constructors above), so calling the feature's intrinsics is sound; loads and stores are the
/// unaligned forms and their pointer ranges are the caller's `# Safety` contract.
macro_rules! x86_impl {
    ($token:ty, $t:ty, $v:ty, $lanes:expr,
     load $load:ident, store $store:ident, splat $splat:ident,
     add $add:ident, sub $sub:ident, mul $mul:ident, div $div:ident, sqrt $sqrt:ident,
     and $and:ident, or $or:ident, andnot $andnot:ident,
     gt |$ga:ident, $gb:ident| $gt:expr, lt |$la:ident, $lb:ident| $lt:expr,
     unord |$ua:ident, $ub:ident| $unord:expr, fma |$fa:ident, $fb:ident, $fc:ident| $fma:expr) => {
        impl Simd<$t> for $token {
            type V = $v;
            const LANES: usize = $lanes;
            // 6 × 2 accumulators + 2 B vectors + 1 broadcast A = 15 of the 16 vector registers.
            const TILE_ROWS: usize = 6;
            const TILE_VECTORS: usize = 2;
            #[inline(always)]
            unsafe fn load(self, ptr: *const $t) -> $v {
                // SAFETY: see the macro's invariant; the caller guarantees LANES readable elements.
                unsafe { $load(ptr) }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $t, v: $v) {
                // SAFETY: see the macro's invariant; the caller guarantees LANES writable elements.
                unsafe { $store(ptr, v) }
            }
            #[inline(always)]
            fn splat(self, x: $t) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $splat(x) }
            }
            #[inline(always)]
            fn add(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $add(a, b) }
            }
            #[inline(always)]
            fn sub(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $sub(a, b) }
            }
            #[inline(always)]
            fn mul(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $mul(a, b) }
            }
            #[inline(always)]
            fn div(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $div(a, b) }
            }
            #[inline(always)]
            fn sqrt(self, a: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $sqrt(a) }
            }
            #[inline(always)]
            fn mul_add_fast(self, $fa: $v, $fb: $v, $fc: $v) -> $v {
                $fma
            }
            #[inline(always)]
            fn gt(self, $ga: $v, $gb: $v) -> $v {
                $gt
            }
            #[inline(always)]
            fn lt(self, $la: $v, $lb: $v) -> $v {
                $lt
            }
            #[inline(always)]
            fn is_nan(self, $ua: $v) -> $v {
                let $ub = $ua;
                $unord
            }
            #[inline(always)]
            fn and(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $and(a, b) }
            }
            #[inline(always)]
            fn or(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $or(a, b) }
            }
            #[inline(always)]
            fn andnot(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $andnot(a, b) }
            }
            #[inline(always)]
            fn reduce_add(self, v: $v) -> $t {
                let mut lanes = [0.0 as $t; $lanes];
                // SAFETY: `lanes` holds exactly LANES elements.
                unsafe { $store(lanes.as_mut_ptr(), v) };
                tree_sum(&lanes)
            }
            #[inline(always)]
            fn reduce_max(self, v: $v) -> $t {
                let mut lanes = [0.0 as $t; $lanes];
                // SAFETY: `lanes` holds exactly LANES elements.
                unsafe { $store(lanes.as_mut_ptr(), v) };
                tree_max(&lanes)
            }
        }
    };
}

x86_impl!(Sse2, f32, __m128, 4,
    load _mm_loadu_ps, store _mm_storeu_ps, splat _mm_set1_ps,
    add _mm_add_ps, sub _mm_sub_ps, mul _mm_mul_ps, div _mm_div_ps, sqrt _mm_sqrt_ps,
    and _mm_and_ps, or _mm_or_ps, andnot _mm_andnot_ps,
    // SAFETY (the four expressions below): SSE2 is baseline on x86-64.
    gt |a, b| unsafe { _mm_cmpgt_ps(a, b) },
    lt |a, b| unsafe { _mm_cmplt_ps(a, b) },
    unord |a, b| unsafe { _mm_cmpunord_ps(a, b) },
    fma |a, b, c| unsafe { _mm_add_ps(_mm_mul_ps(a, b), c) });

x86_impl!(Sse2, f64, __m128d, 2,
    load _mm_loadu_pd, store _mm_storeu_pd, splat _mm_set1_pd,
    add _mm_add_pd, sub _mm_sub_pd, mul _mm_mul_pd, div _mm_div_pd, sqrt _mm_sqrt_pd,
    and _mm_and_pd, or _mm_or_pd, andnot _mm_andnot_pd,
    // SAFETY (the four expressions below): SSE2 is baseline on x86-64.
    gt |a, b| unsafe { _mm_cmpgt_pd(a, b) },
    lt |a, b| unsafe { _mm_cmplt_pd(a, b) },
    unord |a, b| unsafe { _mm_cmpunord_pd(a, b) },
    fma |a, b, c| unsafe { _mm_add_pd(_mm_mul_pd(a, b), c) });

x86_impl!(Avx2Fma, f32, __m256, 8,
    load _mm256_loadu_ps, store _mm256_storeu_ps, splat _mm256_set1_ps,
    add _mm256_add_ps, sub _mm256_sub_ps, mul _mm256_mul_ps, div _mm256_div_ps, sqrt _mm256_sqrt_ps,
    and _mm256_and_ps, or _mm256_or_ps, andnot _mm256_andnot_ps,
    // SAFETY (the four expressions below): the Avx2Fma token proves AVX2 and FMA.
    gt |a, b| unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) },
    lt |a, b| unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) },
    unord |a, b| unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b) },
    fma |a, b, c| unsafe { _mm256_fmadd_ps(a, b, c) });

x86_impl!(Avx2Fma, f64, __m256d, 4,
    load _mm256_loadu_pd, store _mm256_storeu_pd, splat _mm256_set1_pd,
    add _mm256_add_pd, sub _mm256_sub_pd, mul _mm256_mul_pd, div _mm256_div_pd, sqrt _mm256_sqrt_pd,
    and _mm256_and_pd, or _mm256_or_pd, andnot _mm256_andnot_pd,
    // SAFETY (the four expressions below): the Avx2Fma token proves AVX2 and FMA.
    gt |a, b| unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(a, b) },
    lt |a, b| unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(a, b) },
    unord |a, b| unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(a, b) },
    fma |a, b, c| unsafe { _mm256_fmadd_pd(a, b, c) });
