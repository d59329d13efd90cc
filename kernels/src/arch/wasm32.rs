//! WebAssembly 128-bit SIMD (`simd128`): 4 × f32 or 2 × f64. WebAssembly has no run-time feature
//! detection: the backend exists when the crate is compiled with `-C target-feature=+simd128`,
//! and then every engine that loads the module runs it. WebAssembly arithmetic is IEEE 754 with
//! round-to-nearest-even and subnormals kept, so lanes agree bit for bit with the scalar backend
//! (NaN bit patterns are nondeterministic in wasm; no contract covers them).
//!
//! bf16 conversions by integer lanes (`i32x4.add`/`u32x4.shr`/`v128.bitselect`, then the
//! saturating `i16x8.narrow_i32x4_u`, exact for lanes below 2^16); f16 lane by lane through the
//! scalar reference (the f16 instructions are not in `simd128`).

use core::arch::wasm32::*;

use super::{Isa, Kernel, Simd};
use crate::Element;

/// `simd128` token.
#[derive(Clone, Copy, Debug)]
pub struct Simd128 {
    _private: (),
}

impl Isa for Simd128 {
    #[inline(always)]
    fn detect() -> bool {
        cfg!(target_feature = "simd128")
    }
    #[inline(always)]
    unsafe fn new_unchecked() -> Self {
        Simd128 { _private: () }
    }
    #[inline(always)]
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>,
    {
        // `simd128` is enabled for the whole crate (compile time): no entry function needed.
        k.run(self)
    }
}

/// `mix32` of every lane (see `crate::storage::mix32`).
#[inline(always)]
fn mix32(x: v128) -> v128 {
    let x = v128_xor(x, u32x4_shr(x, 16));
    let x = i32x4_mul(x, u32x4_splat(0x7feb_352d));
    let x = v128_xor(x, u32x4_shr(x, 15));
    let x = i32x4_mul(x, u32x4_splat(0x846c_a68b));
    v128_xor(x, u32x4_shr(x, 16))
}

/// bf16 bits per lane: NaN lanes `(bits >> 16) | 0x40` (quiet), others `(bits + add) >> 16`,
/// narrowed to 4 × u16 in the low 64 bits.
#[inline(always)]
fn bf16_lanes(v: v128, add: v128) -> v128 {
    let rounded = u32x4_shr(i32x4_add(v, add), 16);
    let quiet = v128_or(u32x4_shr(v, 16), u32x4_splat(0x40));
    let nan = f32x4_ne(v, v);
    let lanes = v128_bitselect(quiet, rounded, nan);
    u16x8_narrow_i32x4(lanes, lanes)
}

/// Stores one vector at `p` (the lanes of a reduction).
///
/// # Safety
/// `p` must point to 16 writable bytes.
#[inline(always)]
unsafe fn store_lanes<T>(p: *mut T, v: v128) {
    // SAFETY: forwarded caller contract; wasm stores are unaligned.
    unsafe { v128_store(p.cast(), v) }
}

/// Implements [`Simd`] for `simd128` and one element type.
macro_rules! wasm_impl {
    ($t:ty, $lanes:expr, $splat:ident, $add:ident, $sub:ident, $mul:ident, $div:ident,
     $sqrt:ident, $gt:ident, $lt:ident, $ne:ident, extra { $($extra:tt)* }) => {
        impl Simd<$t> for Simd128 {
            type V = v128;
            const LANES: usize = $lanes;
            // 4 × 3 accumulators + 3 B vectors + 1 broadcast A = 16 locals (wasm has no fixed
            // register file; engines map locals to the host's 16 or 32 vector registers).
            const TILE_ROWS: usize = 4;
            const TILE_VECTORS: usize = 4;
            #[inline(always)]
            unsafe fn load(self, ptr: *const $t) -> v128 {
                // SAFETY: the caller guarantees LANES readable elements; wasm loads are unaligned.
                unsafe { v128_load(ptr.cast()) }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut $t, v: v128) {
                // SAFETY: the caller guarantees LANES writable elements; wasm stores are unaligned.
                unsafe { v128_store(ptr.cast(), v) }
            }
            #[inline(always)]
            fn splat(self, x: $t) -> v128 {
                $splat(x)
            }
            #[inline(always)]
            fn add(self, a: v128, b: v128) -> v128 {
                $add(a, b)
            }
            #[inline(always)]
            fn sub(self, a: v128, b: v128) -> v128 {
                $sub(a, b)
            }
            #[inline(always)]
            fn mul(self, a: v128, b: v128) -> v128 {
                $mul(a, b)
            }
            #[inline(always)]
            fn div(self, a: v128, b: v128) -> v128 {
                $div(a, b)
            }
            #[inline(always)]
            fn sqrt(self, a: v128) -> v128 {
                $sqrt(a)
            }
            #[inline(always)]
            fn mul_add_fast(self, a: v128, b: v128, c: v128) -> v128 {
                $add($mul(a, b), c)
            }
            #[inline(always)]
            fn gt(self, a: v128, b: v128) -> v128 {
                $gt(a, b)
            }
            #[inline(always)]
            fn lt(self, a: v128, b: v128) -> v128 {
                $lt(a, b)
            }
            #[inline(always)]
            fn is_nan(self, a: v128) -> v128 {
                $ne(a, a)
            }
            #[inline(always)]
            fn and(self, a: v128, b: v128) -> v128 {
                v128_and(a, b)
            }
            #[inline(always)]
            fn or(self, a: v128, b: v128) -> v128 {
                v128_or(a, b)
            }
            #[inline(always)]
            fn xor(self, a: v128, b: v128) -> v128 {
                v128_xor(a, b)
            }
            #[inline(always)]
            fn andnot(self, a: v128, b: v128) -> v128 {
                // v128.andnot(x, y) = x & !y.
                v128_andnot(b, a)
            }
            #[inline(always)]
            fn select(self, mask: v128, a: v128, b: v128) -> v128 {
                v128_bitselect(a, b, mask)
            }
            super::spill_reductions!($t, v128, $lanes, store_lanes);
            $($extra)*
        }
    };
}

wasm_impl!(f32, 4, f32x4_splat, f32x4_add, f32x4_sub, f32x4_mul, f32x4_div, f32x4_sqrt,
f32x4_gt, f32x4_lt, f32x4_ne,
extra {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> v128 {
        // SAFETY: the caller guarantees 4 readable u16 (the 8 bytes loaded).
        let h = unsafe { v128_load64_zero(p.cast()) };
        i32x4_shl(u32x4_extend_low_u16x8(h), 16)
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: v128) {
        let lsb = v128_and(u32x4_shr(v, 16), u32x4_splat(1));
        let add = i32x4_add(lsb, u32x4_splat(0x7FFF));
        // SAFETY: the caller guarantees 4 writable u16 (the 8 bytes stored).
        unsafe { v128_store64_lane::<0>(bf16_lanes(v, add), p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: v128, r: v128) {
        // SAFETY: the caller guarantees 4 writable u16 (the 8 bytes stored).
        unsafe { v128_store64_lane::<0>(bf16_lanes(v, r), p.cast()) }
    }
    #[inline(always)]
    fn random_lanes(self, key: u32, first: u32) -> v128 {
        let i = i32x4_add(u32x4_splat(first), u32x4(0, 1, 2, 3));
        mix32(v128_xor(i, u32x4_splat(key)))
    }
    #[inline(always)]
    fn shr16(self, v: v128) -> v128 {
        u32x4_shr(v, 16)
    }
    #[inline(always)]
    fn shl16(self, v: v128) -> v128 {
        u32x4_shl(v, 16)
    }
});

wasm_impl!(
    f64,
    2,
    f64x2_splat,
    f64x2_add,
    f64x2_sub,
    f64x2_mul,
    f64x2_div,
    f64x2_sqrt,
    f64x2_gt,
    f64x2_lt,
    f64x2_ne,
    extra {}
);
