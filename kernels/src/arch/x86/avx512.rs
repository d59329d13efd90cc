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
use crate::arch::{Isa, Kernel, Scalar, Simd};
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

/// Word order that makes `vpunpcklwd`/`vpunpckhwd` of two 32-word vectors give elements 0..16 and
/// 16..32 in order: the unpacks pair words `8L..8L + 4` (low) and `8L + 4..8L + 8` (high) of each
/// 128-bit lane `L`, so word `8L + j` must hold element `4L + j` and word `8L + 4 + j` element
/// `16 + 4L + j` (`j < 4`).
static UNPACK_ORDER: [u16; 32] = {
    let mut order = [0u16; 32];
    let mut i = 0;
    while i < 32 {
        let (lane, j) = (i / 8, i % 8);
        order[i] = if j < 4 {
            4 * lane + j
        } else {
            16 + 4 * lane + j - 4
        } as u16;
        i += 1;
    }
    order
};

/// Word selectors of the low halves (`[0]`: words 0, 2, …, 62) and the high halves (`[1]`:
/// words 1, 3, …, 63) of 32 `f32` held in two registers.
static HALVES: [[u16; 32]; 2] = {
    let mut halves = [[0u16; 32]; 2];
    let mut i = 0;
    while i < 32 {
        halves[0][i] = 2 * i as u16;
        halves[1][i] = 2 * i as u16 + 1;
        i += 1;
    }
    halves
};

/// [`Simd::lookup_codes`] with 16-bit permutes: the table's low and high halves become two
/// planes of 256 words (8 registers each); for 32 codes at a time, four `vpermi2w` per plane
/// read the 64-entry segments (index bits 0..6) and three blends pick the segment (bits 6 and
/// 7); unpacking the two planes' words gives the 32 entries. The rest (fewer than 32 codes) through
/// the scalar default. A copy of the entries' bits, as the default.
#[inline(always)]
fn lookup_codes(table: &[f32; 256], codes: &[u8], out: &mut [f32]) {
    let codes = &codes[..out.len()];
    let whole = out.len() / 32 * 32;
    // SAFETY: module invariant (AVX-512 F/BW). The 16 table loads read `table`'s 256 f32; batch
    // `b` reads `codes[b..b + 32]` and writes `out[b..b + 32]`, `b + 32 <= whole <= out.len()
    // <= codes.len()`.
    unsafe {
        let t = table.as_ptr().cast::<__m512i>();
        let (even, odd) = (
            _mm512_loadu_si512(HALVES[0].as_ptr().cast()),
            _mm512_loadu_si512(HALVES[1].as_ptr().cast()),
        );
        // Plane registers: [k] holds the halves of entries 32k..32k + 32.
        let mut low = [_mm512_setzero_si512(); 8];
        let mut high = [_mm512_setzero_si512(); 8];
        for k in 0..8 {
            let (a, b) = (
                _mm512_loadu_si512(t.add(2 * k)),
                _mm512_loadu_si512(t.add(2 * k + 1)),
            );
            low[k] = _mm512_permutex2var_epi16(a, even, b);
            high[k] = _mm512_permutex2var_epi16(a, odd, b);
        }
        let order = _mm512_loadu_si512(UNPACK_ORDER.as_ptr().cast());
        let (bit6, bit7) = (_mm512_set1_epi16(64), _mm512_set1_epi16(128));
        for b in (0..whole).step_by(32) {
            let c = _mm512_cvtepu8_epi16(_mm256_loadu_si256(codes.as_ptr().add(b).cast()));
            let idx = _mm512_permutexvar_epi16(order, c);
            let (k6, k7) = (
                _mm512_test_epi16_mask(idx, bit6),
                _mm512_test_epi16_mask(idx, bit7),
            );
            let plane = |p: &[__m512i; 8]| {
                let seg = |s: usize| _mm512_permutex2var_epi16(p[2 * s], idx, p[2 * s + 1]);
                let lower = _mm512_mask_blend_epi16(k6, seg(0), seg(1));
                let upper = _mm512_mask_blend_epi16(k6, seg(2), seg(3));
                _mm512_mask_blend_epi16(k7, lower, upper)
            };
            let (lo, hi) = (plane(&low), plane(&high));
            let o = out.as_mut_ptr().add(b).cast::<__m512i>();
            _mm512_storeu_si512(o, _mm512_unpacklo_epi16(lo, hi));
            _mm512_storeu_si512(o.add(1), _mm512_unpackhi_epi16(lo, hi));
        }
    }
    <Scalar as Simd<f32>>::lookup_codes(Scalar, table, &codes[whole..], &mut out[whole..]);
}

/// [`Simd::gather_u32`] with `vpgatherdd`, 16 indices at a time, the rest through the scalar
/// default.
///
/// # Safety
/// Every `index[i]` must be below `table.len()`.
#[inline(always)]
unsafe fn gather_u32(table: &[u32], index: &mut [u32]) {
    let whole = index.len() / 16 * 16;
    // SAFETY: module invariant (AVX-512 F); each batch reads and writes `index[b..b + 16]`,
    // `b + 16 <= index.len()`, and gathers entries below `table.len()` (the caller's contract).
    unsafe {
        for b in (0..whole).step_by(16) {
            let p = index.as_mut_ptr().add(b).cast::<__m512i>();
            let v = _mm512_i32gather_epi32::<4>(_mm512_loadu_si512(p), table.as_ptr().cast());
            _mm512_storeu_si512(p, v);
        }
    }
    // SAFETY: forwarded caller contract (every index below `table.len()`).
    unsafe { <Scalar as Simd<f32>>::gather_u32(Scalar, table, &mut index[whole..]) };
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
    fn lookup_codes(self, table: &[f32; 256], codes: &[u8], out: &mut [f32]) {
        lookup_codes(table, codes, out)
    }
    #[inline(always)]
    unsafe fn gather_u32(self, table: &[u32], index: &mut [u32]) {
        // SAFETY: forwarded caller contract.
        unsafe { gather_u32(table, index) }
    }
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
