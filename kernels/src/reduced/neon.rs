//! aarch64 NEON 16-bit conversions: bf16 by integer-vector rounding (`vshll`/`vadd`/`vshr`/
//! `vmovn`), f16 by `fcvtl`/`fcvtn` (inline assembly: the `float16x4_t` intrinsics are not stable
//! Rust). `fcvtn` rounds by FPCR, which is round-to-nearest-even with subnormals kept on every
//! aarch64 Linux and bare-metal start-up this crate supports (FPCR.RMode = 0, FZ = FZ16 = DN =
//! AHP = 0).

use core::arch::aarch64::*;
use core::arch::asm;

use super::simd16::Half16;
use crate::simd::neon::Neon;

// Every `unsafe` block below relies on one invariant:
// SAFETY: a `Neon` token exists only when NEON is present, so its intrinsics and the `fcvtl`/
// `fcvtn` instructions (base Advanced SIMD) may run; the pointer ranges are the callers'
// `# Safety` contracts, and NEON loads and stores have no alignment requirement.

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

impl Half16 for Neon {
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
    unsafe fn store_bf16_sr(self, p: *mut u16, v: float32x4_t, r: *const u32) {
        // SAFETY: module invariant; 4 readable random lanes, 4 writable u16.
        unsafe { vst1_u16(p, bf16_lanes(v, vld1q_u32(r))) }
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
}
