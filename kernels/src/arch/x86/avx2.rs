//! x86-64 AVX2 with FMA and F16C: 8 × f32 or 4 × f64. Detected at run time with `std` (once,
//! cached by the backend table), at compile time otherwise. F16C is a separate CPUID bit, but
//! every AVX2 CPU has it, so the backend requires all three and converts f16 with
//! `vcvtph2ps`/`vcvtps2ph`; bf16 by integer-vector rounding (`vpaddd`/`vpsrad`/`vpblendvb`/
//! `vpackssdw`, `vpmovzxwd`+`vpslld` to widen).

use core::arch::x86_64::*;

use super::x86_impl;
use crate::arch::{Isa, Kernel, Simd};
use crate::Element;

/// AVX2+FMA+F16C token: 8 `f32` or 4 `f64` lanes per vector.
#[derive(Clone, Copy, Debug)]
pub struct Avx2Fma {
    _private: (),
}

impl Isa for Avx2Fma {
    #[inline]
    fn detect() -> bool {
        if cfg!(all(
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        )) {
            return true;
        }
        #[cfg(feature = "std")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(feature = "std"))]
        false
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Avx2Fma { _private: () }
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        // SAFETY: the token proves AVX2, FMA and F16C (`new_unchecked`'s contract).
        unsafe { entry(self, k) }
    }
}

/// The backend's one `#[target_feature]` entry: everything inlined into it may use AVX2, FMA
/// and F16C.
///
/// # Safety
/// The CPU must support `avx2`, `fma` and `f16c`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn entry<T: Element, K: Kernel<T>>(token: Avx2Fma, k: K) -> K::Output
where
    Avx2Fma: Simd<T>,
{
    k.run(token)
}

// Every `unsafe` block below (outside the macro) relies on one invariant:
// SAFETY: an `Avx2Fma` token exists only when AVX2, FMA and F16C are present, so their
// intrinsics may be called; the pointer ranges are the callers' `# Safety` contracts; loads and
// stores are unaligned.

/// `mix32` of every lane (see `crate::storage::mix32`).
#[inline(always)]
fn mix32(x: __m256i) -> __m256i {
    // SAFETY: module invariant.
    unsafe {
        let x = _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x));
        let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb_352d));
        let x = _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x));
        let x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x846c_a68bu32 as i32));
        _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x))
    }
}

/// bf16 bits of each lane (NaN lanes `(bits >> 16) | 0x40`, others `(bits + add) >> 16`),
/// packed to 8 × u16.
#[inline(always)]
fn bf16_pack(v: __m256, add: __m256i) -> __m128i {
    // SAFETY: module invariant.
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

x86_impl!(Avx2Fma, f32, __m256, 8, tile 6, 2,
load _mm256_loadu_ps, store _mm256_storeu_ps, splat _mm256_set1_ps,
add _mm256_add_ps, sub _mm256_sub_ps, mul _mm256_mul_ps, div _mm256_div_ps,
sqrt _mm256_sqrt_ps,
and _mm256_and_ps, or _mm256_or_ps, xor _mm256_xor_ps, andnot _mm256_andnot_ps,
// SAFETY: the token proves AVX2 and FMA.
gt |a, b| unsafe { _mm256_cmp_ps::<_CMP_GT_OQ>(a, b) },
// SAFETY: the token proves AVX2 and FMA.
lt |a, b| unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(a, b) },
// SAFETY: the token proves AVX2 and FMA.
nan |a| unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a) },
// SAFETY: the token proves AVX2 and FMA.
fma |a, b, c| unsafe { _mm256_fmadd_ps(a, b, c) },
// SAFETY: the token proves AVX2 and FMA (AVX's permutes and extracts included).
hsum |v| unsafe {
    let v = _mm256_add_ps(v, _mm256_permute_ps::<0b10_11_00_01>(v));
    let v = _mm256_add_ps(v, _mm256_permute_ps::<0b01_00_11_10>(v));
    _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)))
},
extra {
    #[inline(always)]
    fn select(self, mask: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: module invariant. Mask lanes are all-ones or all-zeros, so the sign bit
        // that `vblendvps` reads decides exactly as `(mask & a) | (!mask & b)`.
        unsafe { _mm256_blendv_ps(b, a, mask) }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m256 {
        // SAFETY: module invariant; 8 readable u16 (16 bytes).
        unsafe {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m256 {
        // SAFETY: module invariant (F16C); 8 readable u16 (16 bytes).
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m256) {
        // SAFETY: module invariant; 8 writable u16 (16 bytes).
        unsafe {
            let lsb = _mm256_and_si256(
                _mm256_srli_epi32::<16>(_mm256_castps_si256(v)),
                _mm256_set1_epi32(1),
            );
            let add = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
            _mm_storeu_si128(p.cast(), bf16_pack(v, add))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m256, r: __m256) {
        // SAFETY: module invariant; 8 writable u16 (16 bytes).
        unsafe { _mm_storeu_si128(p.cast(), bf16_pack(v, _mm256_castps_si256(r))) }
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
    #[inline(always)]
    fn random_lanes(self, key: u32, first: u32) -> __m256 {
        // SAFETY: module invariant.
        unsafe {
            let i = _mm256_add_epi32(
                _mm256_set1_epi32(first as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            );
            _mm256_castsi256_ps(mix32(_mm256_xor_si256(i, _mm256_set1_epi32(key as i32))))
        }
    }
    #[inline(always)]
    fn shr16(self, v: __m256) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_castsi256_ps(_mm256_srli_epi32::<16>(_mm256_castps_si256(v))) }
    }
    #[inline(always)]
    fn shl16(self, v: __m256) -> __m256 {
        // SAFETY: module invariant.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_castps_si256(v))) }
    }
});

x86_impl!(Avx2Fma, f64, __m256d, 4, tile 6, 2,
load _mm256_loadu_pd, store _mm256_storeu_pd, splat _mm256_set1_pd,
add _mm256_add_pd, sub _mm256_sub_pd, mul _mm256_mul_pd, div _mm256_div_pd,
sqrt _mm256_sqrt_pd,
and _mm256_and_pd, or _mm256_or_pd, xor _mm256_xor_pd, andnot _mm256_andnot_pd,
// SAFETY: the token proves AVX2 and FMA.
gt |a, b| unsafe { _mm256_cmp_pd::<_CMP_GT_OQ>(a, b) },
// SAFETY: the token proves AVX2 and FMA.
lt |a, b| unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(a, b) },
// SAFETY: the token proves AVX2 and FMA.
nan |a| unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(a, a) },
// SAFETY: the token proves AVX2 and FMA.
fma |a, b, c| unsafe { _mm256_fmadd_pd(a, b, c) },
// SAFETY: the token proves AVX2 and FMA (AVX's permutes and extracts included).
hsum |v| unsafe {
    let v = _mm256_add_pd(v, _mm256_permute_pd::<0b0101>(v));
    _mm_cvtsd_f64(_mm_add_sd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd::<1>(v)))
},
extra {
    #[inline(always)]
    fn select(self, mask: __m256d, a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: module invariant; all-ones/all-zeros mask lanes (see the f32 impl).
        unsafe { _mm256_blendv_pd(b, a, mask) }
    }
});
