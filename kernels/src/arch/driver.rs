//! The loop drivers: [`zip`] (elementwise kernels, any storage format per buffer, nearest or
//! stochastic rounding on store) and [`fold`] (reductions). Everything here is
//! `#[inline(always)]`, so it compiles into the backend's `#[target_feature]` entry.

use super::{Simd, MAX_LANES};
use crate::storage::{StochasticKey, Storage};
use crate::Element;

/// The random-bit keys of a stochastic call: one key per pair of drawing buffers. Which written
/// buffers draw follows from their storage types ([`Storage::NARROWS`]), so the pattern is a
/// compile-time constant of each kernel instance.
#[derive(Clone, Copy)]
pub(crate) struct Draw<const RW: usize> {
    /// Pair keys, indexed by pair number (at most `⌈RW/2⌉` are used).
    keys: [[u32; 2]; RW],
    offset: u64,
}

impl<const RW: usize> Draw<RW> {
    /// Drawing buffers are numbered in argument order; pair `q` gets the `q`-th pair key.
    pub(crate) fn new(key: &StochasticKey) -> Self {
        Self::from_pair(key, 0)
    }

    /// As [`Draw::new`] for a call whose drawing buffers start at pair `first` of the step: pair
    /// `q` of this call gets the `(first + q)`-th pair key (a rule that writes its buffers in
    /// several passes gives each pass its own pairs).
    pub(crate) fn from_pair(key: &StochasticKey, first: u32) -> Self {
        let mut keys = [[0; 2]; RW];
        for (q, k) in keys.iter_mut().enumerate().take(RW.div_ceil(2)) {
            *k = key.pair_key(first + q as u32);
        }
        Draw {
            keys,
            offset: key.offset,
        }
    }

    /// The same keys for a call that starts `by` elements further into the logical tensor (a
    /// rule that runs the driver block by block).
    pub(crate) fn shifted(self, by: usize) -> Self {
        Draw {
            offset: self.offset.wrapping_add(by as u64),
            ..self
        }
    }

    /// The random lanes of the vector at element `i` for the written buffers with `draws[k]`
    /// (zero lanes for the others): the `d`-th drawing buffer takes the high (even `d`) or low
    /// (odd `d`) half of pair `d / 2`'s words.
    #[inline(always)]
    pub(crate) fn lanes<T: Element, S: Simd<T>>(
        &self,
        s: S,
        i: usize,
        draws: [bool; RW],
    ) -> [S::V; RW] {
        let zero = s.splat(T::zero());
        let mut out = [zero; RW];
        let index = self.offset.wrapping_add(i as u64);
        // Lanes whose low index word would wrap inside the vector: the scalar reference.
        let wraps = (index as u32).checked_add(S::LANES as u32 - 1).is_none();
        let low16 = s.splat(T::from_low_bits(0xFFFF));
        let mut word = zero;
        let mut d = 0;
        for k in 0..RW {
            if draws[k] {
                if d % 2 == 0 {
                    let key = self.keys[d / 2];
                    word = if wraps {
                        lanewise_random(s, key, index)
                    } else {
                        s.random_lanes(crate::storage::word_key(key, index), index as u32)
                    };
                    out[k] = s.shr16(word);
                } else {
                    out[k] = s.and(word, low16);
                }
                d += 1;
            }
        }
        out
    }
}

/// Which written buffers narrow (`rw[0]` stored as `P`, the others as `M`): constants.
#[inline(always)]
fn narrows<T, P: Storage<T>, M: Storage<T>, const RW: usize>() -> [bool; RW] {
    core::array::from_fn(|k| if k == 0 { P::NARROWS } else { M::NARROWS })
}

/// The random words of a vector through the scalar reference, lane by lane (a vector whose low
/// index word wraps, so that the high word differs between its lanes).
#[inline(never)]
fn lanewise_random<T: Element, S: Simd<T>>(s: S, key: [u32; 2], index: u64) -> S::V {
    let mut buf = [T::zero(); MAX_LANES];
    for (j, x) in buf.iter_mut().enumerate().take(S::LANES) {
        *x = T::from_low_bits(crate::storage::random_word(
            key,
            index.wrapping_add(j as u64),
        ));
    }
    // SAFETY: `buf` holds MAX_LANES >= LANES elements.
    unsafe { s.load(buf.as_ptr()) }
}

/// Stack room for the tail of one buffer: `MAX_LANES` elements of any format, aligned for all.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Tail([u8; 8 * MAX_LANES]);

/// Loads written buffer `k` (`P` for `k = 0`, `M` otherwise) at element `i`.
///
/// # Safety
/// `p` must point to a buffer of that type readable for `i + LANES` elements.
#[inline(always)]
unsafe fn load_rw<T: Element, S: Simd<T>, P: Storage<T>, M: Storage<T>>(
    s: S,
    k: usize,
    p: *mut u8,
    i: usize,
) -> S::V {
    // SAFETY: forwarded caller contract.
    unsafe {
        if k == 0 {
            P::load_vec(s, p.cast::<P>().add(i))
        } else {
            M::load_vec(s, p.cast::<M>().add(i))
        }
    }
}

/// Stores written buffer `k` at element `i`, rounding with `r` (stochastic) or to nearest.
///
/// # Safety
/// `p` must point to a buffer of that type writable for `i + LANES` elements.
#[inline(always)]
unsafe fn store_rw<T: Element, S: Simd<T>, P: Storage<T>, M: Storage<T>>(
    s: S,
    k: usize,
    p: *mut u8,
    i: usize,
    v: S::V,
    r: Option<S::V>,
) {
    // SAFETY: forwarded caller contract.
    unsafe {
        if k == 0 {
            P::store_vec(
                s,
                p.cast::<P>().add(i),
                v,
                if P::NARROWS { r } else { None },
            )
        } else {
            M::store_vec(
                s,
                p.cast::<M>().add(i),
                v,
                if M::NARROWS { r } else { None },
            )
        }
    }
}

/// Size in bytes of written buffer `k`'s elements.
#[inline(always)]
fn rw_size<T: Element, P: Storage<T>, M: Storage<T>>(k: usize) -> usize {
    if k == 0 {
        core::mem::size_of::<P>()
    } else {
        core::mem::size_of::<M>()
    }
}

/// The one elementwise loop driver. Runs `body` over `n` elements of `RW` written buffers (the
/// first stored as `P`, the others as `M`) and `RO` read-only buffers (stored as `G`), a vector at
/// a time: every vector is loaded and widened to `T`, passed to `body` with the written buffers'
/// random lanes (zero lanes without `draw`), and each written buffer is rounded to its format
/// (stochastically with its random lanes under `draw`, else nearest even) and stored.
///
/// The tail (fewer than `LANES` elements) is copied into zero-padded stack buffers, run through
/// the *same* `body` as one full vector, and copied back, so every element sees exactly the same
/// operations wherever it sits. `body` must not care what it computes in padding lanes. The
/// random bits of an element depend on its index only (counter-based), so the vector width and
/// the split into calls change nothing.
///
/// # Safety
/// `rw[0]` must point to `n` elements of `P`, `rw[1..]` to `n` elements of `M` each, `ro[..]` to
/// `n` elements of `G` each, all aligned for their types; the written ranges must not overlap
/// each other or any read range.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn zip_stored<T, S, P, M, G, const RW: usize, const RO: usize>(
    s: S,
    n: usize,
    rw: [*mut u8; RW],
    ro: [*const u8; RO],
    draw: Option<Draw<RW>>,
    mut body: impl FnMut(&mut [S::V; RW], [S::V; RO], &[S::V; RW]),
) where
    T: Element,
    S: Simd<T>,
    P: Storage<T>,
    M: Storage<T>,
    G: Storage<T>,
{
    // SAFETY: forwarded caller contract.
    unsafe {
        // Whether any written buffer draws random bits: a constant of the instance, so that a
        // call whose buffers all keep their values unrounded compiles the nearest-even loop only.
        let draws = narrows::<T, P, M, RW>().contains(&true);
        match draw {
            // Two instances: in the nearest-even one, no random lanes are computed and every
            // store's rounding mode is a compile-time constant.
            Some(d) if draws => {
                drive::<T, S, P, M, G, RW, RO, true>(s, n, rw, ro, Some(d), &mut body)
            }
            _ => drive::<T, S, P, M, G, RW, RO, false>(s, n, rw, ro, None, &mut body),
        }
    }
}

/// [`zip_stored`] for one rounding mode (`SR`: stochastic).
///
/// # Safety
/// As [`zip_stored`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn drive<T, S, P, M, G, const RW: usize, const RO: usize, const SR: bool>(
    s: S,
    n: usize,
    rw: [*mut u8; RW],
    ro: [*const u8; RO],
    draw: Option<Draw<RW>>,
    body: &mut impl FnMut(&mut [S::V; RW], [S::V; RO], &[S::V; RW]),
) where
    T: Element,
    S: Simd<T>,
    P: Storage<T>,
    M: Storage<T>,
    G: Storage<T>,
{
    let lanes = S::LANES;
    let d = draw.as_ref();
    let mut i = 0;
    // Four vectors per iteration: independent work for the out-of-order core, less overhead.
    while i + 4 * lanes <= n {
        for u in 0..4 {
            // i + (u + 1)·LANES <= n: every buffer has LANES elements at i + u·LANES.
            // SAFETY: as just said.
            unsafe {
                one::<T, S, P, M, G, RW, RO, SR>(s, d, i + u * lanes, &rw, &ro, i + u * lanes, body)
            };
        }
        i += 4 * lanes;
    }
    while i + lanes <= n {
        // SAFETY: i + LANES <= n: every buffer has LANES elements at i.
        unsafe { one::<T, S, P, M, G, RW, RO, SR>(s, d, i, &rw, &ro, i, body) };
        i += lanes;
    }
    let rest = n - i;
    if rest > 0 {
        let mut wbuf = [Tail([0; 8 * MAX_LANES]); RW];
        let mut rbuf = [Tail([0; 8 * MAX_LANES]); RO];
        let mut wp = [core::ptr::null_mut::<u8>(); RW];
        let mut rp = [core::ptr::null::<u8>(); RO];
        // SAFETY: i + rest == n, so the copies stay inside the caller's buffers; the stack
        // buffers hold MAX_LANES >= LANES elements of any format, aligned for every format.
        unsafe {
            for k in 0..RW {
                let sz = rw_size::<T, P, M>(k);
                core::ptr::copy_nonoverlapping(
                    rw[k].add(i * sz),
                    wbuf[k].0.as_mut_ptr(),
                    rest * sz,
                );
                wp[k] = wbuf[k].0.as_mut_ptr();
            }
            for k in 0..RO {
                let sz = core::mem::size_of::<G>();
                core::ptr::copy_nonoverlapping(
                    ro[k].add(i * sz),
                    rbuf[k].0.as_mut_ptr(),
                    rest * sz,
                );
                rp[k] = rbuf[k].0.as_ptr();
            }
        }
        // SAFETY: the stack buffers hold MAX_LANES >= LANES elements of their types.
        unsafe { one::<T, S, P, M, G, RW, RO, SR>(s, d, i, &wp, &rp, 0, body) };
        // SAFETY: as above.
        unsafe {
            for k in 0..RW {
                let sz = rw_size::<T, P, M>(k);
                core::ptr::copy_nonoverlapping(wbuf[k].0.as_ptr(), rw[k].add(i * sz), rest * sz);
            }
        }
    }
}

/// One vector of [`drive`]: the random lanes of element `i` (under `SR`), the loads at element
/// `j` of the buffers `w_at`/`r_at` (the caller's, or the tail's stack copies), the body, the
/// rounding stores.
///
/// # Safety
/// Every buffer of `w_at`/`r_at` must hold `j + LANES` elements of its type.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn one<T, S, P, M, G, const RW: usize, const RO: usize, const SR: bool>(
    s: S,
    draw: Option<&Draw<RW>>,
    i: usize,
    w_at: &[*mut u8; RW],
    r_at: &[*const u8; RO],
    j: usize,
    body: &mut impl FnMut(&mut [S::V; RW], [S::V; RO], &[S::V; RW]),
) where
    T: Element,
    S: Simd<T>,
    P: Storage<T>,
    M: Storage<T>,
    G: Storage<T>,
{
    let zero = s.splat(T::zero());
    let draws = narrows::<T, P, M, RW>();
    let r = match (SR, draw) {
        (true, Some(d)) => d.lanes(s, i, draws),
        _ => [zero; RW],
    };
    let mut w = [zero; RW];
    let mut x = [zero; RO];
    // SAFETY: the caller guarantees LANES elements at `j` in every buffer.
    unsafe {
        for k in 0..RW {
            w[k] = load_rw::<T, S, P, M>(s, k, w_at[k], j);
        }
        for k in 0..RO {
            x[k] = G::load_vec(s, r_at[k].cast::<G>().add(j));
        }
        body(&mut w, x, &r);
        for k in 0..RW {
            let rk = if SR && draws[k] { Some(r[k]) } else { None };
            store_rw::<T, S, P, M>(s, k, w_at[k], j, w[k], rk);
        }
    }
}

/// [`zip_stored`] with every buffer stored as `T` and no rounding: the form of the `f32`/`f64`
/// kernels (`body` gets the written and the read vectors).
///
/// # Safety
/// Every pointer must be valid for `n` elements (reads for `ro`, reads and writes for `rw`), and
/// the `rw` ranges must not overlap each other or any `ro` range.
#[inline(always)]
pub(crate) unsafe fn zip<T, S, const RW: usize, const RO: usize>(
    s: S,
    n: usize,
    rw: [*mut T; RW],
    ro: [*const T; RO],
    mut body: impl FnMut(&mut [S::V; RW], [S::V; RO]),
) where
    T: Element,
    S: Simd<T>,
{
    // SAFETY: forwarded caller contract (every buffer holds n elements of T).
    unsafe {
        zip_stored::<T, S, T, T, T, RW, RO>(
            s,
            n,
            rw.map(|p| p.cast()),
            ro.map(|p| p.cast()),
            None,
            #[inline(always)]
            |w, r, _| body(w, r),
        )
    }
}

/// Loads one vector at `offset` from each pointer.
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
