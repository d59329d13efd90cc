//! The internal vector abstraction every kernel is written against, and the loop drivers.
//!
//! A backend is a zero-sized *token* whose existence proves that its instructions can run on this
//! CPU: [`Scalar`] always, the x86-64 and aarch64 tokens only through a checked constructor or an
//! `unsafe` one whose contract names the required CPU features. Each kernel is written once,
//! generically over [`Simd`], and runs on a backend inside one `#[target_feature]` entry function
//! (see `backend.rs`), into which everything here is inlined.
//!
//! Arithmetic contract, shared by every implementation so that elementwise kernels agree bit for bit
//! across backends:
//! - `add`, `sub`, `mul`, `div`, `sqrt` are single IEEE 754 operations, round-to-nearest-even, no
//!   flush-to-zero, so every lane equals the scalar operation on that lane;
//! - `mul_add_fast` may be fused (one rounding) or not, by backend: only reductions use it, and their
//!   error bounds account for it;
//! - comparisons are ordered (false when either side is NaN) and return all-ones or all-zeros lanes;
//! - the bitwise operations act on the raw IEEE bits.

use crate::Element;

pub(crate) mod scalar;
pub use scalar::Scalar;

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(target_arch = "aarch64")]
pub mod neon;

/// The widest vector of any backend, in elements (AVX2 with `f32`). Tail buffers have this size.
pub(crate) const MAX_LANES: usize = 8;

/// One backend's vector of `T`. Implemented by each backend token for `f32` and `f64`.
pub trait Simd<T: Element>: Copy {
    /// The vector register type.
    type V: Copy;
    /// Elements per vector (at most [`MAX_LANES`]).
    const LANES: usize;
    /// Matrix-multiply register tile: rows of C per micro-kernel call (see `models::gemm`).
    const TILE_ROWS: usize;
    /// Matrix-multiply register tile: vectors of C per row (tile width = this × LANES).
    const TILE_VECTORS: usize;

    /// Loads `LANES` elements from `ptr` (no alignment beyond `T`'s required).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable and `ptr` aligned for `T` (every caller derives its
    /// pointers from a `&[T]` or a `[T; N]`, which guarantees that).
    unsafe fn load(self, ptr: *const T) -> Self::V;
    /// Stores `LANES` elements at `ptr` (no alignment beyond `T`'s required).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be writable and `ptr` aligned for `T`.
    unsafe fn store(self, ptr: *mut T, v: Self::V);
    /// Every lane `x`.
    fn splat(self, x: T) -> Self::V;
    /// `a + b`, one rounding.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`, one rounding.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`, one rounding.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`, one rounding.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// Correctly rounded square root.
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `a * b + c`, fused where the backend has FMA, otherwise two roundings. For reductions only.
    fn mul_add_fast(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lanes where `a > b` (ordered).
    fn gt(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a < b` (ordered).
    fn lt(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a` is NaN.
    fn is_nan(self, a: Self::V) -> Self::V;
    /// Bitwise and.
    fn and(self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise or.
    fn or(self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise `!a & b`.
    fn andnot(self, a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes, in a fixed order per backend.
    fn reduce_add(self, v: Self::V) -> T;
    /// Largest lane; NaN if any lane is NaN.
    fn reduce_max(self, v: Self::V) -> T;

    /// `mask ? a : b` per lane; `mask` lanes are all-ones or all-zeros.
    #[inline(always)]
    fn select(self, mask: Self::V, a: Self::V, b: Self::V) -> Self::V {
        self.or(self.and(mask, a), self.andnot(mask, b))
    }
    /// `|a|` (clears the sign bit, so NaN stays NaN).
    #[inline(always)]
    fn abs(self, a: Self::V) -> Self::V {
        self.andnot(self.splat(-T::zero()), a)
    }
    /// `sign(a)`: `1` for `a > 0`, `-1` for `a < 0`, `+0` for `±0`, NaN for NaN (as `torch.sign`,
    /// except that `-0` maps to `+0`, which changes no update).
    #[inline(always)]
    fn sign(self, a: Self::V) -> Self::V {
        let zero = self.splat(T::zero());
        let pos = self.and(self.gt(a, zero), self.splat(T::one()));
        let neg = self.and(self.lt(a, zero), self.splat(-T::one()));
        self.select(self.is_nan(a), a, self.or(pos, neg))
    }
    /// `max(a, b)` propagating NaN from either side (as `torch.maximum`).
    #[inline(always)]
    fn max_nan(self, a: Self::V, b: Self::V) -> Self::V {
        let pick_a = self.or(self.gt(a, b), self.is_nan(a));
        self.select(pick_a, a, b)
    }
}

/// Runs `body` over `n` elements of `RW` read-write and `RO` read-only buffers, a vector at a time.
///
/// The tail (fewer than `LANES` elements) is copied into zero-padded stack buffers, run through
/// the *same* `body` as one full vector, and copied back, so every element sees exactly the same
/// operations wherever it sits. `body` must not care what it computes in padding lanes.
///
/// # Safety
/// Every pointer must be valid for `n` elements (reads for `ro`, reads and writes for `rw`), and
/// the `rw` ranges must not overlap each other or any `ro` range.
#[inline(always)]
pub(crate) unsafe fn zip<T: Element, S: Simd<T>, const RW: usize, const RO: usize>(
    s: S,
    n: usize,
    rw: [*mut T; RW],
    ro: [*const T; RO],
    mut body: impl FnMut(&mut [S::V; RW], [S::V; RO]),
) {
    let lanes = S::LANES;
    // Pointer casts only (no arithmetic), so this closure needs no inlining.
    let rw_read = rw.map(|p| p as *const T);
    let mut i = 0;
    // Four vectors per iteration: independent work for the out-of-order core, less loop overhead.
    while i + 4 * lanes <= n {
        for u in 0..4 {
            let at = i + u * lanes;
            // SAFETY: at + lanes <= n, and every pointer is valid for n elements (caller contract).
            unsafe {
                let (r, mut w) = load_all(s, &ro, &rw_read, at);
                body(&mut w, r);
                for k in 0..RW {
                    s.store(rw[k].add(at), w[k]);
                }
            }
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + lanes <= n (loop condition) and the pointers are valid for n elements.
        unsafe {
            let (r, mut w) = load_all(s, &ro, &rw_read, i);
            body(&mut w, r);
            for k in 0..RW {
                s.store(rw[k].add(i), w[k]);
            }
        }
        i += lanes;
    }
    let rest = n - i;
    if rest > 0 {
        let mut rbuf = [[T::zero(); MAX_LANES]; RO];
        let mut wbuf = [[T::zero(); MAX_LANES]; RW];
        // SAFETY: i + rest == n, so the copies stay inside the caller's buffers; the stack buffers
        // hold MAX_LANES >= LANES elements, so the full-vector loads and stores stay inside them.
        unsafe {
            for k in 0..RO {
                core::ptr::copy_nonoverlapping(ro[k].add(i), rbuf[k].as_mut_ptr(), rest);
            }
            for k in 0..RW {
                core::ptr::copy_nonoverlapping(rw[k].add(i), wbuf[k].as_mut_ptr(), rest);
            }
            let rp: [*const T; RO] = rbuf.each_ref().map(|b| b.as_ptr());
            let wp: [*const T; RW] = wbuf.each_ref().map(|b| b.as_ptr());
            let (r, mut w) = load_all(s, &rp, &wp, 0);
            body(&mut w, r);
            for k in 0..RW {
                s.store(wbuf[k].as_mut_ptr(), w[k]);
                core::ptr::copy_nonoverlapping(wbuf[k].as_ptr(), rw[k].add(i), rest);
            }
        }
    }
}

/// Loads one vector at `offset` from each pointer (no closures: everything here must inline into
/// the backend's `#[target_feature]` entry).
///
/// # Safety
/// Each pointer must be readable for `offset + LANES` elements.
#[inline(always)]
unsafe fn load_each<T: Element, S: Simd<T>, const K: usize>(
    s: S,
    ptrs: &[*const T; K],
    offset: usize,
) -> [S::V; K] {
    let mut out = [s.splat(T::zero()); K];
    for k in 0..K {
        // SAFETY: the caller guarantees `offset + LANES` readable elements.
        out[k] = unsafe { s.load(ptrs[k].add(offset)) };
    }
    out
}

/// [`load_each`] for the read-only and the read-write pointers of [`zip`].
///
/// # Safety
/// As [`load_each`], for every pointer.
#[inline(always)]
unsafe fn load_all<T: Element, S: Simd<T>, const RO: usize, const RW: usize>(
    s: S,
    ro: &[*const T; RO],
    rw: &[*const T; RW],
    offset: usize,
) -> ([S::V; RO], [S::V; RW]) {
    // SAFETY: forwarded caller contract.
    unsafe { (load_each(s, ro, offset), load_each(s, rw, offset)) }
}

/// Folds `RO` read-only buffers of `n` elements into one vector accumulator, with four independent
/// accumulators in the main loop, combined as `(a0 + a1) + (a2 + a3)`. The order is fixed for a
/// backend, so results are bit-reproducible on it. The tail is zero-padded: `step` must leave the
/// accumulator unchanged for all-zero inputs.
///
/// # Safety
/// Every pointer must be valid for reads of `n` elements.
#[inline(always)]
pub(crate) unsafe fn fold<T: Element, S: Simd<T>, const RO: usize>(
    s: S,
    n: usize,
    ro: [*const T; RO],
    init: S::V,
    combine: impl Fn(S::V, S::V) -> S::V,
    mut step: impl FnMut(S::V, [S::V; RO]) -> S::V,
) -> S::V {
    let lanes = S::LANES;
    let mut acc = [init; 4];
    let mut i = 0;
    while i + 4 * lanes <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 4 * lanes <= n and the pointers are valid for n elements.
            // SAFETY: i + 4 * lanes <= n and the pointers are valid for n elements.
            let r = unsafe { load_each(s, &ro, i + u * lanes) };
            *a = step(*a, r);
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + lanes <= n.
        let r = unsafe { load_each(s, &ro, i) };
        acc[0] = step(acc[0], r);
        i += lanes;
    }
    let rest = n - i;
    if rest > 0 {
        let mut rbuf = [[T::zero(); MAX_LANES]; RO];
        // SAFETY: i + rest == n; the stack buffers hold MAX_LANES >= LANES elements.
        let r = unsafe {
            for k in 0..RO {
                core::ptr::copy_nonoverlapping(ro[k].add(i), rbuf[k].as_mut_ptr(), rest);
            }
            let rp: [*const T; RO] = rbuf.each_ref().map(|b| b.as_ptr());
            load_each(s, &rp, 0)
        };
        acc[1] = step(acc[1], r);
    }
    combine(combine(acc[0], acc[1]), combine(acc[2], acc[3]))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// Pairwise sum of a vector's lanes: `((l0 + l1) + (l2 + l3)) + ...`, the fixed horizontal order.
#[inline(always)]
pub(crate) fn tree_sum<T: Element>(lanes: &[T]) -> T {
    if lanes.len() == 1 {
        return lanes[0];
    }
    let (lo, hi) = lanes.split_at(lanes.len() / 2);
    tree_sum(lo) + tree_sum(hi)
}

/// Largest lane; NaN if any lane is NaN.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
pub(crate) fn tree_max<T: Element>(lanes: &[T]) -> T {
    lanes.iter().copied().fold(
        lanes[0],
        #[inline(always)]
        |m, x| if x > m || x.is_nan() { x } else { m },
    )
}
