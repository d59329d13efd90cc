//! x86-64 16-bit conversions: bf16 by integer-vector rounding (SSE2 and AVX2), f16 by F16C
//! (`vcvtph2ps`/`vcvtps2ph`) on the AVX2+FMA backend when the CPU has it, else lane by lane
//! through the scalar reference.

use core::arch::x86_64::*;

use super::simd16::{f16_round_trip_lanewise, load_f16_lanewise, store_f16_lanewise};
use super::simd16::{Half16, Kernel16};
use crate::simd::x86::{Avx2Fma, Sse2};
use crate::simd::Simd;

/// Runs `k` on AVX2+FMA without F16C.
///
/// # Safety
/// The CPU must support `avx2` and `fma`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run16_avx2<K: Kernel16>(t: Avx2Fma, k: K) -> K::Output {
    k.run(t)
}

/// Runs `k` on AVX2+FMA with F16C.
///
/// # Safety
/// The CPU must support `avx2`, `fma` and `f16c`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn run16_avx2_f16c<K: Kernel16>(t: Avx2F16c, k: K) -> K::Output {
    k.run(t)
}

/// The AVX2+FMA token on a CPU that also has F16C: the same `f32` arithmetic (every [`Simd`]
/// method delegates), with F16C f16 conversions. Built only by `run16` after checking F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2F16c(pub(crate) Avx2Fma);

macro_rules! delegate {
    ($($f:ident ( $($a:ident),* ) -> $r:ty;)*) => {
        $(
            #[inline(always)]
            fn $f(self, $($a: __m256),*) -> $r {
                <Avx2Fma as Simd<f32>>::$f(self.0, $($a),*)
            }
        )*
    };
}

impl Simd<f32> for Avx2F16c {
    type V = __m256;
    const LANES: usize = 8;
    const TILE_ROWS: usize = <Avx2Fma as Simd<f32>>::TILE_ROWS;
    const TILE_VECTORS: usize = <Avx2Fma as Simd<f32>>::TILE_VECTORS;
    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> __m256 {
        // SAFETY: forwarded caller contract.
        unsafe { <Avx2Fma as Simd<f32>>::load(self.0, ptr) }
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, v: __m256) {
        // SAFETY: forwarded caller contract.
        unsafe { <Avx2Fma as Simd<f32>>::store(self.0, ptr, v) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        <Avx2Fma as Simd<f32>>::splat(self.0, x)
    }
    delegate! {
        add(a, b) -> __m256;
        sub(a, b) -> __m256;
        mul(a, b) -> __m256;
        div(a, b) -> __m256;
        sqrt(a) -> __m256;
        mul_add_fast(a, b, c) -> __m256;
        gt(a, b) -> __m256;
        lt(a, b) -> __m256;
        is_nan(a) -> __m256;
        and(a, b) -> __m256;
        or(a, b) -> __m256;
        andnot(a, b) -> __m256;
        reduce_add(a) -> f32;
        reduce_max(a) -> f32;
        select(m, a, b) -> __m256;
        abs(a) -> __m256;
        sign(a) -> __m256;
        max_nan(a, b) -> __m256;
    }
}

// Every `unsafe` block below relies on one invariant:
// SAFETY: a token exists only when its CPU features are present (Sse2: x86-64 baseline; Avx2Fma:
// checked constructors; Avx2F16c: built by `run16` after checking F16C), so calling those
// features' intrinsics is sound; the pointer ranges are the callers' `# Safety` contracts, and
// every load and store is unaligned.

/// bf16 bits of each lane, as sign-extended 32-bit integers ready for a signed pack: NaN lanes
/// become `(bits >> 16) | 0x40` (quiet), the others `(bits + add) >> 16`.
#[inline(always)]
fn bf16_lanes_sse2(v: __m128, add: __m128i) -> __m128i {
    // SAFETY: SSE2 is baseline on x86-64 (module invariant).
    unsafe {
        let b = _mm_castps_si128(v);
        let rounded = _mm_srai_epi32::<16>(_mm_add_epi32(b, add));
        let quiet = _mm_or_si128(_mm_srai_epi32::<16>(b), _mm_set1_epi32(0x40));
        let nan = _mm_castps_si128(_mm_cmpunord_ps(v, v));
        _mm_or_si128(_mm_and_si128(nan, quiet), _mm_andnot_si128(nan, rounded))
    }
}

/// The nearest-even addend `0x7FFF + ((bits >> 16) & 1)` per lane.
#[inline(always)]
fn rne_add_sse2(v: __m128) -> __m128i {
    // SAFETY: SSE2 is baseline on x86-64 (module invariant).
    unsafe {
        let lsb = _mm_and_si128(_mm_srli_epi32::<16>(_mm_castps_si128(v)), _mm_set1_epi32(1));
        _mm_add_epi32(lsb, _mm_set1_epi32(0x7FFF))
    }
}

impl Half16 for Sse2 {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m128 {
        // SAFETY: module invariant; 4 readable u16 = the 8 bytes loaded. Interleaving zeros below
        // each value puts it in the high half of its 32-bit lane.
        unsafe {
            let h = _mm_loadl_epi64(p.cast());
            _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m128 {
        // SAFETY: forwarded caller contract.
        unsafe { load_f16_lanewise(self, p) }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m128) {
        let lanes = bf16_lanes_sse2(v, rne_add_sse2(v));
        // SAFETY: module invariant; 4 writable u16 = the 8 bytes stored. The lanes are
        // sign-extended 16-bit values, so the signed saturating pack is exact.
        unsafe { _mm_storel_epi64(p.cast(), _mm_packs_epi32(lanes, lanes)) }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m128, r: *const u32) {
        // SAFETY: module invariant; 4 readable random lanes, 4 writable u16 (8 bytes).
        unsafe {
            let lanes = bf16_lanes_sse2(v, _mm_loadu_si128(r.cast()));
            _mm_storel_epi64(p.cast(), _mm_packs_epi32(lanes, lanes))
        }
    }
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: __m128) {
        // SAFETY: forwarded caller contract.
        unsafe { store_f16_lanewise(self, p, v) }
    }
    #[inline(always)]
    fn f16_round_trip(self, v: __m128) -> __m128 {
        f16_round_trip_lanewise(self, v)
    }
}

/// AVX2 form of [`bf16_lanes_sse2`], packed to 8 × u16.
#[inline(always)]
fn bf16_pack_avx2(v: __m256, add: __m256i) -> __m128i {
    // SAFETY: module invariant (only called with an AVX2 token in hand).
    unsafe {
        let b = _mm256_castps_si256(v);
        let rounded = _mm256_srai_epi32::<16>(_mm256_add_epi32(b, add));
        let quiet = _mm256_or_si256(_mm256_srai_epi32::<16>(b), _mm256_set1_epi32(0x40));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        let lanes = _mm256_blendv_epi8(rounded, quiet, nan);
        // Sign-extended 16-bit values: the signed saturating pack is exact.
        _mm_packs_epi32(
            _mm256_castsi256_si128(lanes),
            _mm256_extracti128_si256::<1>(lanes),
        )
    }
}

#[inline(always)]
fn load_bf16_avx2(p: *const u16) -> __m256 {
    // SAFETY: module invariant; callers guarantee 8 readable u16 (16 bytes).
    unsafe {
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
    }
}

#[inline(always)]
fn store_bf16_rne_avx2(p: *mut u16, v: __m256) {
    // SAFETY: module invariant; callers guarantee 8 writable u16 (16 bytes).
    unsafe {
        let lsb = _mm256_and_si256(
            _mm256_srli_epi32::<16>(_mm256_castps_si256(v)),
            _mm256_set1_epi32(1),
        );
        let add = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
        _mm_storeu_si128(p.cast(), bf16_pack_avx2(v, add))
    }
}

#[inline(always)]
fn store_bf16_sr_avx2(p: *mut u16, v: __m256, r: *const u32) {
    // SAFETY: module invariant; callers guarantee 8 random lanes and 8 writable u16.
    unsafe {
        let add = _mm256_loadu_si256(r.cast());
        _mm_storeu_si128(p.cast(), bf16_pack_avx2(v, add))
    }
}

impl Half16 for Avx2Fma {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m256 {
        load_bf16_avx2(p)
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: forwarded caller contract.
        unsafe { load_f16_lanewise(self, p) }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m256) {
        store_bf16_rne_avx2(p, v)
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m256, r: *const u32) {
        store_bf16_sr_avx2(p, v, r)
    }
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: __m256) {
        // SAFETY: forwarded caller contract.
        unsafe { store_f16_lanewise(self, p, v) }
    }
    #[inline(always)]
    fn f16_round_trip(self, v: __m256) -> __m256 {
        f16_round_trip_lanewise(self, v)
    }
}

impl Half16 for Avx2F16c {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m256 {
        load_bf16_avx2(p)
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: module invariant (F16C); 8 readable u16 (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m256) {
        store_bf16_rne_avx2(p, v)
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m256, r: *const u32) {
        store_bf16_sr_avx2(p, v, r)
    }
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: __m256) {
        // SAFETY: module invariant (F16C); 8 writable u16. The immediate selects
        // round-to-nearest-even regardless of MXCSR.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(p.cast(), h)
        }
    }
    #[inline(always)]
    fn f16_round_trip(self, v: __m256) -> __m256 {
        // SAFETY: module invariant (F16C).
        unsafe { _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)) }
    }
}
