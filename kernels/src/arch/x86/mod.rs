//! x86-64 backends: SSE2 (the x86-64 baseline), AVX2+FMA+F16C and AVX-512, one file each. This
//! file holds only the macro that spells the parts of a [`Simd`](super::Simd) impl the three
//! share (one intrinsic name per operation).

pub(crate) mod avx2;
#[cfg(descent_avx512)]
pub(crate) mod avx512;
pub(crate) mod sse2;

/// Implements [`Simd`](super::Simd) for one token and element type from the intrinsic names
/// (`hsum`: the lane sum in the fixed pairwise order);
/// `extra { ... }` adds or overrides methods (16-bit conversions, random lanes, `select`).
///
/// Every `unsafe` block in the expansion relies on one invariant, stated once here:
/// SAFETY: a token of this type exists only when its CPU features are present (`Isa::detect` and
/// `new_unchecked`'s contract), so calling the features' intrinsics is sound; loads and stores are
/// the unaligned forms and their pointer ranges are the caller's `# Safety` contract.
macro_rules! x86_impl {
    ($token:ty, $t:ty, $v:ty, $lanes:expr, tile $rows:expr, $vecs:expr,
     load $load:ident, store $store:ident, splat $splat:ident,
     add $add:ident, sub $sub:ident, mul $mul:ident, div $div:ident, sqrt $sqrt:ident,
     and $and:ident, or $or:ident, xor $xor:ident, andnot $andnot:ident,
     gt |$ga:ident, $gb:ident| $gt:expr, lt |$la:ident, $lb:ident| $lt:expr,
     nan |$ua:ident| $unord:expr, fma |$fa:ident, $fb:ident, $fc:ident| $fma:expr,
     hsum |$ha:ident| $hsum:expr,
     extra { $($extra:tt)* }) => {
        impl $crate::arch::Simd<$t> for $token {
            type V = $v;
            const LANES: usize = $lanes;
            const TILE_ROWS: usize = $rows;
            const TILE_VECTORS: usize = $vecs;
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
            fn xor(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $xor(a, b) }
            }
            #[inline(always)]
            fn andnot(self, a: $v, b: $v) -> $v {
                // SAFETY: the token proves the CPU feature (macro invariant).
                unsafe { $andnot(a, b) }
            }
            /// The lanes in [`tree_sum`](crate::arch::tree_sum)'s order, in registers: each
            /// level adds the vector to a copy of itself with neighbouring lanes (then pairs,
            /// blocks, halves) swapped, the lower-index lane the first operand, as in the tree.
            #[inline(always)]
            fn reduce_add(self, $ha: $v) -> $t {
                $hsum
            }
            $crate::arch::spill_reductions!(max $t, $v, $lanes, $store);
            $($extra)*
        }
    };
}
pub(crate) use x86_impl;
