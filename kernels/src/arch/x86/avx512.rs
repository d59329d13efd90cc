//! x86-64 AVX-512 (F, VL, BW, DQ, with FMA and F16C): 16 × f32 or 8 × f64 in 32 `zmm`
//! registers. Detected at run time with `std` (once, cached by the backend table), at compile time
//! otherwise. Comparisons produce `k` masks, widened to all-ones lanes with `vpmovm2d`/`vpmovm2q`
//! for the bitwise contract of [`Simd`]; `select` goes back to a mask (`vpmovd2m`) and blends.
//! bf16 by integer rounding and the truncating `vpmovdw`; f16 by `vcvtph2ps`/`vcvtps2ph`.
//! The f32 matrix-multiply tile is 8 rows × 2 vectors (16 accumulators + 2 B vectors + 1
//! broadcast; 8 × 3 was slower on Zen 4), the f64 tile 8 rows × 3 vectors.

// The intrinsics are stable since Rust 1.89; `build.rs` compiles this file only from 1.89 on
// (`cfg(descent_avx512)`), so the crate's older minimum Rust version is not affected.
#![allow(clippy::incompatible_msrv)]

use core::arch::x86_64::*;

use super::x86_impl;
use crate::arch::{Isa, Kernel, Simd};
use crate::Element;

/// AVX-512 token: 16 `f32` or 8 `f64` lanes per vector.
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _private: (),
}

impl Isa for Avx512 {
    #[inline]
    fn detect() -> bool {
        if cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512vl",
            target_feature = "avx512bw",
            target_feature = "avx512dq",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        )) {
            return true;
        }
        #[cfg(feature = "std")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(feature = "std"))]
        false
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Avx512 { _private: () }
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        // SAFETY: the token proves the features `entry` enables (`new_unchecked`'s contract).
        unsafe { entry(self, k) }
    }
}

/// The backend's one `#[target_feature]` entry.
///
/// # Safety
/// The CPU must support every feature enabled here (what [`Isa::detect`] checks).
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
unsafe fn entry<T: Element, K: Kernel<T>>(token: Avx512, k: K) -> K::Output
where
    Avx512: Simd<T>,
{
    k.run(token)
}

// Every `unsafe` block below (outside the macro) relies on one invariant:
// SAFETY: an `Avx512` token exists only when AVX-512 F/VL/BW/DQ, AVX2, FMA and F16C are present,
// so their intrinsics may be called; the pointer ranges are the callers' `# Safety` contracts;
// loads and stores are unaligned.

/// All-ones lanes where `k` is set.
#[inline(always)]
fn mask_ps(k: __mmask16) -> __m512 {
    // SAFETY: module invariant (AVX-512 DQ).
    unsafe { _mm512_castsi512_ps(_mm512_movm_epi32(k)) }
}

/// All-ones lanes where `k` is set.
#[inline(always)]
fn mask_pd(k: __mmask8) -> __m512d {
    // SAFETY: module invariant (AVX-512 DQ).
    unsafe { _mm512_castsi512_pd(_mm512_movm_epi64(k)) }
}

/// `mix32` of every lane (see `crate::storage::mix32`).
#[inline(always)]
fn mix32(x: __m512i) -> __m512i {
    // SAFETY: module invariant.
    unsafe {
        let x = _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x));
        let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x7feb_352d));
        let x = _mm512_xor_si512(x, _mm512_srli_epi32::<15>(x));
        let x = _mm512_mullo_epi32(x, _mm512_set1_epi32(0x846c_a68bu32 as i32));
        _mm512_xor_si512(x, _mm512_srli_epi32::<16>(x))
    }
}

/// bf16 bits of each lane (NaN lanes `(bits >> 16) | 0x40`, others `(bits + add) >> 16`, both
/// logical shifts so every lane is `< 2^16`), truncated to 16 × u16 (`vpmovdw`, exact here).
#[inline(always)]
fn bf16_pack(v: __m512, add: __m512i) -> __m256i {
    // SAFETY: module invariant.
    unsafe {
        let b = _mm512_castps_si512(v);
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, add));
        let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
        _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet))
    }
}

// Tile 8 × 2 vectors (16 accumulators), not 8 × 3: measured on Zen 4 (the matrix-multiply module
// documentation gives the numbers).
x86_impl!(Avx512, f32, __m512, 16, tile 8, 2,
load _mm512_loadu_ps, store _mm512_storeu_ps, splat _mm512_set1_ps,
add _mm512_add_ps, sub _mm512_sub_ps, mul _mm512_mul_ps, div _mm512_div_ps,
sqrt _mm512_sqrt_ps,
and _mm512_and_ps, or _mm512_or_ps, xor _mm512_xor_ps, andnot _mm512_andnot_ps,
// SAFETY: the token proves AVX-512 F/DQ and FMA.
gt |a, b| mask_ps(unsafe { _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
lt |a, b| mask_ps(unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
nan |a| mask_ps(unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
fma |a, b, c| unsafe { _mm512_fmadd_ps(a, b, c) },
// SAFETY: the token proves AVX-512 F/DQ and FMA.
hsum |v| unsafe {
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
    let v = _mm512_add_ps(v, _mm512_permute_ps::<0b01_00_11_10>(v));
    let v = _mm512_add_ps(v, _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v));
    _mm512_cvtss_f32(_mm512_add_ps(v, _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v)))
},
extra {
    #[inline(always)]
    fn select(self, mask: __m512, a: __m512, b: __m512) -> __m512 {
        // SAFETY: module invariant. Mask lanes are all-ones or all-zeros, so their sign bit
        // (what `vpmovd2m` reads) decides exactly as `(mask & a) | (!mask & b)`.
        unsafe {
            let k = _mm512_movepi32_mask(_mm512_castps_si512(mask));
            _mm512_mask_blend_ps(k, b, a)
        }
    }
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> __m512 {
        // SAFETY: module invariant; 16 readable u16 (32 bytes).
        unsafe {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> __m512 {
        // SAFETY: module invariant (F16C in AVX-512 F); 16 readable u16 (32 bytes).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: __m512) {
        // SAFETY: module invariant; 16 writable u16 (32 bytes).
        unsafe {
            let lsb = _mm512_and_si512(
                _mm512_srli_epi32::<16>(_mm512_castps_si512(v)),
                _mm512_set1_epi32(1),
            );
            let add = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF));
            _mm256_storeu_si256(p.cast(), bf16_pack(v, add))
        }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: __m512, r: __m512) {
        // SAFETY: module invariant; 16 writable u16 (32 bytes).
        unsafe { _mm256_storeu_si256(p.cast(), bf16_pack(v, _mm512_castps_si512(r))) }
    }
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: __m512) {
        // SAFETY: module invariant; 16 writable u16. The immediate selects
        // round-to-nearest-even regardless of MXCSR.
        unsafe {
            let h = _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_storeu_si256(p.cast(), h)
        }
    }
    #[inline(always)]
    fn f16_round_trip(self, v: __m512) -> __m512 {
        // SAFETY: module invariant.
        unsafe { _mm512_cvtph_ps(_mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v)) }
    }
    #[inline(always)]
    fn random_lanes(self, key: u32, first: u32) -> __m512 {
        // SAFETY: module invariant.
        unsafe {
            let i = _mm512_add_epi32(
                _mm512_set1_epi32(first as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            );
            _mm512_castsi512_ps(mix32(_mm512_xor_si512(i, _mm512_set1_epi32(key as i32))))
        }
    }
    #[inline(always)]
    fn shr16(self, v: __m512) -> __m512 {
        // SAFETY: module invariant.
        unsafe { _mm512_castsi512_ps(_mm512_srli_epi32::<16>(_mm512_castps_si512(v))) }
    }
    #[inline(always)]
    fn shl16(self, v: __m512) -> __m512 {
        // SAFETY: module invariant.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_castps_si512(v))) }
    }
});

x86_impl!(Avx512, f64, __m512d, 8, tile 8, 3,
load _mm512_loadu_pd, store _mm512_storeu_pd, splat _mm512_set1_pd,
add _mm512_add_pd, sub _mm512_sub_pd, mul _mm512_mul_pd, div _mm512_div_pd,
sqrt _mm512_sqrt_pd,
and _mm512_and_pd, or _mm512_or_pd, xor _mm512_xor_pd, andnot _mm512_andnot_pd,
// SAFETY: the token proves AVX-512 F/DQ and FMA.
gt |a, b| mask_pd(unsafe { _mm512_cmp_pd_mask::<_CMP_GT_OQ>(a, b) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
lt |a, b| mask_pd(unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, b) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
nan |a| mask_pd(unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, a) }),
// SAFETY: the token proves AVX-512 F/DQ and FMA.
fma |a, b, c| unsafe { _mm512_fmadd_pd(a, b, c) },
// SAFETY: the token proves AVX-512 F/DQ and FMA.
hsum |v| unsafe {
    let v = _mm512_add_pd(v, _mm512_permute_pd::<0b0101_0101>(v));
    let v = _mm512_add_pd(v, _mm512_shuffle_f64x2::<0b10_11_00_01>(v, v));
    _mm512_cvtsd_f64(_mm512_add_pd(v, _mm512_shuffle_f64x2::<0b01_00_11_10>(v, v)))
},
extra {
    #[inline(always)]
    fn select(self, mask: __m512d, a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: module invariant; all-ones/all-zeros mask lanes (see the f32 impl).
        unsafe {
            let k = _mm512_movepi64_mask(_mm512_castpd_si512(mask));
            _mm512_mask_blend_pd(k, b, a)
        }
    }
});
