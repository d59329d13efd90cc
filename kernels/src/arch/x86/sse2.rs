//! x86-64 SSE2: 4 × f32 or 2 × f64. SSE2 is part of the x86-64 baseline; the backend is still
//! detected through `cfg(target_feature = "sse2")`, so a target without it never claims it.
//! bf16 conversions by integer-vector rounding (`paddd`/`psrad`/`packssdw`, `punpcklwd` to widen);
//! f16 lane by lane through the scalar reference (SSE2 has no f16 instructions); random lanes with
//! a 32-bit multiply built from `pmuludq`.

use core::arch::x86_64::*;

use super::x86_impl;
use crate::arch::{Isa, Kernel, Simd};
use crate::Element;

/// SSE2 token.
#[derive(Clone, Copy, Debug)]
pub struct Sse2 {
    _private: (),
}

impl Isa for Sse2 {
    #[inline(always)]
    fn detect() -> bool {
        cfg!(target_feature = "sse2")
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Sse2 { _private: () }
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        // SSE2 is enabled for the whole crate where `detect` holds: no entry function needed.
        k.run(self)
    }
}

// Every `unsafe` block below (outside the macro) relies on one invariant:
// SAFETY: an `Sse2` token exists only where SSE2 is enabled (`detect`), so its intrinsics may be
// called; the pointer ranges are the callers' `# Safety` contracts; loads and stores are unaligned.

/// `a * b` per 32-bit lane, low 32 bits (SSE2 has no `pmulld`).
#[inline(always)]
fn mullo(a: __m128i, b: __m128i) -> __m128i {
    // SAFETY: module invariant.
    unsafe {
        let even = _mm_mul_epu32(a, b);
        let odd = _mm_mul_epu32(_mm_srli_epi64::<32>(a), _mm_srli_epi64::<32>(b));
        let e = _mm_shuffle_epi32::<0b00_00_10_00>(even);
        let o = _mm_shuffle_epi32::<0b00_00_10_00>(odd);
        _mm_unpacklo_epi32(e, o)
    }
}

/// `mix32` of every lane (see `crate::storage::mix32`).
#[inline(always)]
fn mix32(x: __m128i) -> __m128i {
    // SAFETY: module invariant.
    unsafe {
        let x = _mm_xor_si128(x, _mm_srli_epi32::<16>(x));
        let x = mullo(x, _mm_set1_epi32(0x7feb_352d));
        let x = _mm_xor_si128(x, _mm_srli_epi32::<15>(x));
        let x = mullo(x, _mm_set1_epi32(0x846c_a68bu32 as i32));
        _mm_xor_si128(x, _mm_srli_epi32::<16>(x))
    }
}

/// bf16 bits of each lane, as sign-extended 32-bit integers ready for a signed pack: NaN lanes
/// become `(bits >> 16) | 0x40` (quiet), the others `(bits + add) >> 16`.
#[inline(always)]
fn bf16_lanes(v: __m128, add: __m128i) -> __m128i {
    // SAFETY: module invariant.
    unsafe {
        let b = _mm_castps_si128(v);
        let rounded = _mm_srai_epi32::<16>(_mm_add_epi32(b, add));
        let quiet = _mm_or_si128(_mm_srai_epi32::<16>(b), _mm_set1_epi32(0x40));
        let nan = _mm_castps_si128(_mm_cmpunord_ps(v, v));
        _mm_or_si128(_mm_and_si128(nan, quiet), _mm_andnot_si128(nan, rounded))
    }
}

/// Packs 4 sign-extended 16-bit lanes and stores them (8 bytes).
///
/// # Safety
/// `p..p + 4` must be writable.
#[inline(always)]
unsafe fn store4(p: *mut u16, lanes: __m128i) {
    // SAFETY: module invariant; the caller guarantees 4 writable u16. The lanes are sign-extended
    // 16-bit values, so the signed saturating pack is exact.
    unsafe { _mm_storel_epi64(p.cast(), _mm_packs_epi32(lanes, lanes)) }
}

x86_impl!(Sse2, f32, __m128, 4, tile 6, 2,
load _mm_loadu_ps, store _mm_storeu_ps, splat _mm_set1_ps,
add _mm_add_ps, sub _mm_sub_ps, mul _mm_mul_ps, div _mm_div_ps, sqrt _mm_sqrt_ps,
and _mm_and_ps, or _mm_or_ps, xor _mm_xor_ps, andnot _mm_andnot_ps,
// SAFETY: the token proves SSE2.
gt |a, b| unsafe { _mm_cmpgt_ps(a, b) },
// SAFETY: the token proves SSE2.
lt |a, b| unsafe { _mm_cmplt_ps(a, b) },
// SAFETY: the token proves SSE2.
nan |a| unsafe { _mm_cmpunord_ps(a, a) },
// SAFETY: the token proves SSE2.
fma |a, b, c| unsafe { _mm_add_ps(_mm_mul_ps(a, b), c) },
// SAFETY: the token proves SSE2 (the x86-64 baseline).
hsum |v| unsafe {
    let v = _mm_add_ps(v, _mm_shuffle_ps::<0b10_11_00_01>(v, v));
    _mm_cvtss_f32(_mm_add_ss(v, _mm_movehl_ps(v, v)))
},
extra {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m128 {
        // SAFETY: module invariant; 4 readable u16 = the 8 bytes loaded. Interleaving zeros
        // below each value puts it in the high half of its 32-bit lane.
        unsafe {
            let h = _mm_loadl_epi64(p.cast());
            _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m128) {
        // SAFETY: module invariant; the caller guarantees 4 writable u16.
        unsafe {
            let b = _mm_castps_si128(v);
            let lsb = _mm_and_si128(_mm_srli_epi32::<16>(b), _mm_set1_epi32(1));
            let add = _mm_add_epi32(lsb, _mm_set1_epi32(0x7FFF));
            store4(p, bf16_lanes(v, add))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m128, r: __m128) {
        // SAFETY: module invariant; the caller guarantees 4 writable u16.
        unsafe { store4(p, bf16_lanes(v, _mm_castps_si128(r))) }
    }
    #[inline(always)]
    fn random_lanes(self, key: u32, first: u32) -> __m128 {
        // SAFETY: module invariant.
        unsafe {
            let i = _mm_add_epi32(_mm_set1_epi32(first as i32), _mm_setr_epi32(0, 1, 2, 3));
            _mm_castsi128_ps(mix32(_mm_xor_si128(i, _mm_set1_epi32(key as i32))))
        }
    }
    #[inline(always)]
    fn shr16(self, v: __m128) -> __m128 {
        // SAFETY: module invariant.
        unsafe { _mm_castsi128_ps(_mm_srli_epi32::<16>(_mm_castps_si128(v))) }
    }
    #[inline(always)]
    fn shl16(self, v: __m128) -> __m128 {
        // SAFETY: module invariant.
        unsafe { _mm_castsi128_ps(_mm_slli_epi32::<16>(_mm_castps_si128(v))) }
    }
});

x86_impl!(Sse2, f64, __m128d, 2, tile 6, 2,
    load _mm_loadu_pd, store _mm_storeu_pd, splat _mm_set1_pd,
    add _mm_add_pd, sub _mm_sub_pd, mul _mm_mul_pd, div _mm_div_pd, sqrt _mm_sqrt_pd,
    and _mm_and_pd, or _mm_or_pd, xor _mm_xor_pd, andnot _mm_andnot_pd,
    // SAFETY: the token proves SSE2.
    gt |a, b| unsafe { _mm_cmpgt_pd(a, b) },
    // SAFETY: the token proves SSE2.
    lt |a, b| unsafe { _mm_cmplt_pd(a, b) },
    // SAFETY: the token proves SSE2.
    nan |a| unsafe { _mm_cmpunord_pd(a, a) },
    // SAFETY: the token proves SSE2.
    fma |a, b, c| unsafe { _mm_add_pd(_mm_mul_pd(a, b), c) },
    // SAFETY: the token proves SSE2 (the x86-64 baseline).
    hsum |v| unsafe { _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))) },
    extra {});
