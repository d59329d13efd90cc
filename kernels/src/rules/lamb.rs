//! LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
//! minutes", Algorithm 2), with the conventions of `optax.lamb`.

use core::marker::PhantomData;

use super::partials::{Partials, PARTIALS};
use super::{
    check_step, non_negative, positive, rule_accessors, specialize_flag, unit_half_open, Rule,
};
use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd, MAX_LANES};
use crate::storage::{Rounding, Storage};
use crate::{Element, Error, Exec};
use core::mem::size_of;

/// LAMB: the Adam direction (plus decoupled weight decay) scaled per tensor by the trust ratio
/// `‖p‖ / ‖r‖`. One call treats `params` as one tensor ("layer" in the paper): call it once per
/// tensor.
///
/// State: `m`, then `v`, each `params.len()` elements, zero before step 1. With `t` the 1-based
/// step number, per element and then per tensor:
/// ```text
/// m ← β1·m + (1 − β1)·g
/// v ← β2·v + (1 − β2)·g·g
/// r = (m / b1) / (√(v / b2) + ε) + λ·p         b1 = 1 − β1^t, b2 = 1 − β2^t (f64, rounded to T)
///                                               (the λ·p term is absent when λ = 0)
/// φ = ‖p‖₂ / ‖r‖₂, or 1 if ‖p‖₂ = 0 or ‖r‖₂ = 0
/// p ← p − (lr·φ)·r                              (lr·φ: one scalar, f64, rounded to T)
/// ```
/// This is Algorithm 2 of the paper with the scaling function φ the identity, bias correction as
/// Adam (the paper's Algorithm 2 omits it; its reference code and every common implementation
/// apply it), weight decay decoupled inside `r`, and the zero-norm convention of
/// `optax.scale_by_trust_ratio` (ratio 1 when either norm is 0). It is `optax.lamb(lr, b1, b2, eps,
/// eps_root=0, weight_decay)` (`scale_by_adam`, `add_decayed_weights`, `scale_by_trust_ratio`,
/// `scale_by_learning_rate`) to rounding: optax multiplies `−lr` and `φ` into the update
/// separately and computes its norms in the parameter type, where this folds `lr·φ` into one
/// scalar and computes the norms as below. `ε` sits outside the square root (optax's `eps`; its
/// default is `1e-6`, kept by [`Lamb::new`]). `p` and `m`, `v` above are the values at the start
/// of the step and the new moments; `r` uses the `p` from before the step.
///
/// ## Norms: exact across backends
/// The trust ratio multiplies every element, so its last bit matters. A reduction in the
/// backend's lane order would differ between backends; here both squared norms are accumulated in
/// `f64` with an order fixed by the element indices alone: element `i`'s square (formed in `f64`,
/// exact for `f32` elements) is added, in index order, to partial sum `i mod 8`, and the eight
/// partial sums are combined as `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`. The per-element `r` is
/// computed a vector at a time by the same generic code as the update (so the `r` in the norm is
/// the `r` of the update), each lane exactly the scalar reference's value (the kernels'
/// arithmetic contract). The two norms, the ratio and hence the whole step are bit-identical on
/// every backend.
///
/// ## Passes and storage
/// A step needs no buffer beyond the state. It makes two passes when the state is stored in the
/// compute type: (1) update `m`, `v` and, from them, accumulate the two norms; (2) recompute `r`
/// from the stored `m`, `v` (read only) and update `p`. With 16-bit state it makes three: (1)
/// update `m`, `v`, rounding them once when stored; (2) the two norms from `p` and the *stored*
/// `m`, `v`; (3) as (2) above. Either way the norm is exactly that of the applied direction, and
/// the two orders give the same bits for compute-type state (the stored moments are the computed
/// ones). The 16-bit moments pass stores the parameters unchanged too, which nearest and
/// stochastic rounding both leave unchanged (a NaN stays a NaN); under stochastic rounding that
/// pass draws for the parameters, then `m`, then `v`, as every rule, and the update pass draws
/// for the parameters with the same bits.
///
/// IEEE behaviour: a NaN or infinite gradient makes that element's `r` NaN, hence `‖r‖` and the
/// ratio NaN, and every parameter of the tensor NaN; skip such steps with
/// [`all_finite`](crate::vector::all_finite).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lamb<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// First-moment decay `β1` in `[0, 1)`.
    pub beta1: T,
    /// Second-moment decay `β2` in `[0, 1)`.
    pub beta2: T,
    /// `ε`, finite and `> 0`.
    pub eps: T,
    /// Decoupled weight decay `λ` inside `r`, finite and `>= 0`.
    pub weight_decay: T,
}

impl<T: Element> Lamb<T> {
    /// The number of state buffers (`m`, `v`).
    pub const STATE_BUFFERS: usize = 2;

    /// LAMB with optax's defaults: `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-6`, `λ = 0`.
    pub fn new(lr: T) -> Self {
        Lamb {
            lr,
            beta1: T::from_f64_round(0.9),
            beta2: T::from_f64_round(0.999),
            eps: T::from_f64_round(1e-6),
            weight_decay: T::zero(),
        }
    }

    /// LAMB with optax's defaults and weight decay `λ`.
    pub fn with_weight_decay(lr: T, weight_decay: T) -> Self {
        Lamb {
            weight_decay,
            ..Self::new(lr)
        }
    }

    /// The state length for `n` parameters, `2·n` (usable in `static` array lengths).
    pub const fn state_len_for(n: usize) -> usize {
        2 * n
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("beta1", self.beta1)?;
        unit_half_open("beta2", self.beta2)?;
        positive("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)
    }
}

impl<T: Element> Rule<T> for Lamb<T> {
    const NAME: &'static str = "lamb";
    const MAX_STATE_BUFFERS: usize = 2;
    /// Two: `m`, `v`.
    fn state_buffers(&self) -> usize {
        2
    }
    fn validate(&self) -> Result<(), Error> {
        Lamb::validate(self)
    }
    rule_accessors!(Lamb, T::zero());
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        let c = LambConsts::new(self, step);
        let n = params.len();
        let (m, v) = state.split_at_mut(n);
        let v = &mut v[..n];
        let draw = match exec.rounding() {
            Rounding::NearestEven => None,
            Rounding::Stochastic(key) => Some(key),
        };
        // Moments and norms in one pass when the state stores the compute type exactly (the
        // moments read back from the state are the ones just computed); else the moments pass
        // first, rounding them when stored, and the norms from the stored values.
        let fused = !S::NARROWS;
        if !fused {
            // Pass 1: the moments (the parameters rewritten unchanged, so that stochastic
            // rounding draws for the parameters, then `m`, then `v`, as every rule).
            exec.run(MomentsKernel::<T, P, S, G> {
                n,
                rw: [
                    params.as_mut_ptr().cast::<u8>(),
                    m.as_mut_ptr().cast(),
                    v.as_mut_ptr().cast(),
                ],
                g: grads.as_ptr().cast(),
                draw: draw.map(|key| Draw::new(&key)),
                c,
                _types: PhantomData,
            });
        }
        // Pass 2 (with pass 1 when fused): the norms, backend-independent.
        let (p2, r2) = exec.run(NormKernel::<T, P, S, G> {
            n,
            p: params.as_ptr(),
            m: m.as_mut_ptr(),
            v: v.as_mut_ptr(),
            g: fused.then_some(grads.as_ptr()),
            c,
        });
        let (pn, rn) = (libm::sqrt(p2), libm::sqrt(r2));
        let ratio = if pn == 0.0 || rn == 0.0 { 1.0 } else { pn / rn };
        let scale = T::from_f64_round(self.lr.widen() * ratio);
        // Pass 3: the parameters, from the stored moments (read only).
        exec.run(UpdateKernel::<T, P, S> {
            n,
            p: params.as_mut_ptr().cast(),
            mv: [m.as_ptr().cast(), v.as_ptr().cast()],
            draw: draw.map(|key| Draw::new(&key)),
            c,
            scale,
            _types: PhantomData,
        });
        Ok(())
    }
}

/// The per-call scalars of a LAMB step.
#[derive(Clone, Copy)]
struct LambConsts<T> {
    beta1: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// `1 − β1^t`.
    bc1: T,
    /// `1 − β2^t`.
    bc2: T,
    eps: T,
    weight_decay: T,
    /// `λ ≠ 0`.
    decay: bool,
}

impl<T: Element> LambConsts<T> {
    fn new(a: &Lamb<T>, step: u64) -> Self {
        // β^t in f64: exact enough for any t (powi would round t to i32).
        let t = step as f64;
        LambConsts {
            beta1: a.beta1,
            one_minus_beta1: T::one() - a.beta1,
            beta2: a.beta2,
            one_minus_beta2: T::one() - a.beta2,
            bc1: T::from_f64_round(1.0 - libm::pow(a.beta1.widen(), t)),
            bc2: T::from_f64_round(1.0 - libm::pow(a.beta2.widen(), t)),
            eps: a.eps,
            weight_decay: a.weight_decay,
            decay: a.weight_decay != T::zero(),
        }
    }
}

/// The new `(m, v)` of one vector.
#[inline(always)]
fn moments<T: Element, S: Simd<T>>(
    s: S,
    c: &LambConsts<T>,
    g: S::V,
    m: S::V,
    v: S::V,
) -> (S::V, S::V) {
    let m = s.add(
        s.mul(s.splat(c.beta1), m),
        s.mul(s.splat(c.one_minus_beta1), g),
    );
    let v = s.add(
        s.mul(s.splat(c.beta2), v),
        s.mul(s.splat(c.one_minus_beta2), s.mul(g, g)),
    );
    (m, v)
}

/// The direction `r` of one vector (`decay`: whether the `λ·p` term is present).
#[inline(always)]
fn direction<T: Element, S: Simd<T>>(
    s: S,
    c: &LambConsts<T>,
    decay: bool,
    p: S::V,
    m: S::V,
    v: S::V,
) -> S::V {
    let m_hat = s.div(m, s.splat(c.bc1));
    let v_hat = s.div(v, s.splat(c.bc2));
    let r = s.div(m_hat, s.add(s.sqrt(v_hat), s.splat(c.eps)));
    if decay {
        s.add(r, s.mul(s.splat(c.weight_decay), p))
    } else {
        r
    }
}

/// The norm pass's stack buffers: the larger of one vector and [`PARTIALS`] elements.
const GROUP_MAX: usize = if MAX_LANES > PARTIALS {
    MAX_LANES
} else {
    PARTIALS
};

/// `(‖p‖², ‖r‖²)` in `f64`: element `i`'s squares go to partial sum `i mod 8` (in index order),
/// and the eight partial sums are combined pairwise, `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`. The
/// order depends on the indices only, not on the backend's lane count. `r` is computed a vector
/// at a time on the backend (the same bits as the scalar reference).
///
/// With `g` (only when the state does not narrow), each vector's moments are first updated from
/// the gradient and stored, and `r` uses them: passes 1 and 2 in one, the same bits, since the
/// stored moments are the computed ones.
struct NormKernel<T, P, S, G> {
    n: usize,
    p: *const P,
    m: *mut S,
    v: *mut S,
    g: Option<*const G>,
    c: LambConsts<T>,
}

/// Stack room for the tail of one buffer, aligned for every storage format.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct TailBuf([u8; 8 * MAX_LANES]);

impl<T, P, S, G> Kernel<T> for NormKernel<T, P, S, G>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
{
    type Output = (f64, f64);
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) -> (f64, f64) {
        let (n, c, lanes) = (self.n, self.c, V::LANES);
        debug_assert!(self.g.is_none() || !S::NARROWS);
        let (mut p2, mut r2) = (Partials::default(), Partials::default());
        let mut pb = [T::zero(); GROUP_MAX];
        let mut rb = [T::zero(); GROUP_MAX];
        // Whole groups of `group` elements (a multiple of both the lane count and PARTIALS,
        // every lane count being a power of two) go to the stack and then to the partial sums in
        // runs of PARTIALS, which the compiler vectorises in f64; then single vectors, then the
        // tail. The partial sums depend on the indices only.
        let group = lanes.max(PARTIALS);
        debug_assert!(group % lanes == 0 && group % PARTIALS == 0 && group <= GROUP_MAX);
        let (pp, mp, vp) = (self.p, self.m, self.v);
        let gp = self.g.unwrap_or(core::ptr::null());
        specialize_flag(
            self.g.is_some(),
            #[inline(always)]
            |fuse| {
                specialize_flag(
                    c.decay,
                    #[inline(always)]
                    |decay| {
                        let mut i = 0;
                        while i + group <= n {
                            let mut o = 0;
                            while o < group {
                                // SAFETY: i + o + LANES <= i + group <= n and each pointer is valid for n
                                // elements; o + LANES <= group <= GROUP_MAX for the stack buffers.
                                unsafe {
                                    let at = i + o;
                                    let (p, r) = norm_vector(
                                        s,
                                        &c,
                                        decay,
                                        pp.add(at),
                                        mp.add(at),
                                        vp.add(at),
                                        fuse,
                                        gp.wrapping_add(at),
                                    );
                                    s.store(pb.as_mut_ptr().add(o), p);
                                    s.store(rb.as_mut_ptr().add(o), r);
                                }
                                o += lanes;
                            }
                            p2.add_squares(i, &pb[..group]);
                            r2.add_squares(i, &rb[..group]);
                            i += group;
                        }
                        // Accumulates `count` elements starting at element `i` from vectors `p`, `r`.
                        let mut add = |i: usize, count: usize, (p, r): (V::V, V::V)| {
                            // SAFETY: both buffers hold GROUP_MAX >= LANES elements.
                            unsafe {
                                s.store(pb.as_mut_ptr(), p);
                                s.store(rb.as_mut_ptr(), r);
                            }
                            p2.add_squares(i, &pb[..count]);
                            r2.add_squares(i, &rb[..count]);
                        };
                        while i + lanes <= n {
                            // SAFETY: i + LANES <= n and each pointer is valid for n elements.
                            let pr = unsafe {
                                norm_vector(
                                    s,
                                    &c,
                                    decay,
                                    pp.add(i),
                                    mp.add(i),
                                    vp.add(i),
                                    fuse,
                                    gp.wrapping_add(i),
                                )
                            };
                            add(i, lanes, pr);
                            i += lanes;
                        }
                        let rest = n - i;
                        if rest > 0 {
                            let mut bufs = [TailBuf([0; 8 * MAX_LANES]); 4];
                            let (ps, ss, gs) = (size_of::<P>(), size_of::<S>(), size_of::<G>());
                            let [b0, b1, b2, b3] = &mut bufs;
                            let (bp, bm) = (b0.0.as_mut_ptr(), b1.0.as_mut_ptr());
                            let (bv, bg) = (b2.0.as_mut_ptr(), b3.0.as_mut_ptr());
                            // SAFETY: i + rest == n, so the copies read (and, for the moments, write back)
                            // inside the caller's buffers; the zero-filled stack buffers hold MAX_LANES >=
                            // LANES elements of any format (all-zero bytes are the value 0 in every
                            // format), aligned for all, and are locals, overlapping nothing.
                            let pr = unsafe {
                                let copy = core::ptr::copy_nonoverlapping::<u8>;
                                copy(pp.add(i).cast(), bp, rest * ps);
                                copy(mp.add(i).cast(), bm, rest * ss);
                                copy(vp.add(i).cast(), bv, rest * ss);
                                if fuse {
                                    copy(gp.add(i).cast(), bg, rest * gs);
                                }
                                let pr = norm_vector(
                                    s,
                                    &c,
                                    decay,
                                    bp.cast::<P>(),
                                    bm.cast::<S>(),
                                    bv.cast::<S>(),
                                    fuse,
                                    bg.cast_const().cast::<G>(),
                                );
                                if fuse {
                                    copy(bm, mp.add(i).cast(), rest * ss);
                                    copy(bv, vp.add(i).cast(), rest * ss);
                                }
                                pr
                            };
                            add(i, rest, pr);
                        }
                    },
                )
            },
        );
        (p2.total(), r2.total())
    }
}

/// `(p, r)` of the vector at `p`, `m`, `v`, the moments first updated from the gradient at `g`
/// and stored when `fuse`.
///
/// # Safety
/// Each pointer must be valid for `LANES` elements of its type; with `fuse`, `g` too, and `m` and
/// `v` must be writable and overlap nothing else (without it, `g` is not read).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn norm_vector<T: Element, V: Simd<T>, P: Storage<T>, S: Storage<T>, G: Storage<T>>(
    s: V,
    c: &LambConsts<T>,
    decay: bool,
    p: *const P,
    m: *mut S,
    v: *mut S,
    fuse: bool,
    g: *const G,
) -> (V::V, V::V) {
    // SAFETY: forwarded caller contract.
    unsafe {
        let (p, mut mv, mut vv) = (P::load_vec(s, p), S::load_vec(s, m), S::load_vec(s, v));
        if fuse {
            (mv, vv) = moments(s, c, G::load_vec(s, g), mv, vv);
            S::store_vec(s, m, mv, None);
            S::store_vec(s, v, vv, None);
        }
        (p, direction(s, c, decay, p, mv, vv))
    }
}

/// Pass 1 when the state narrows: the new `m`, `v` over `n` elements, `rw` = parameters (`P`,
/// stored unchanged), `m`, `v` (`S`); `g` the gradient (`G`).
struct MomentsKernel<T, P, S, G> {
    n: usize,
    rw: [*mut u8; 3],
    g: *const u8,
    draw: Option<Draw<3>>,
    c: LambConsts<T>,
    _types: PhantomData<(P, S, G)>,
}

impl<T, P, S, G> Kernel<T> for MomentsKernel<T, P, S, G>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
{
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let c = self.c;
        // SAFETY: `step_with` checked that the parameters, the gradient, `m` and `v` hold n
        // elements of their types; the three written buffers come from disjoint exclusive
        // borrows, so no written range overlaps another or the gradient.
        unsafe {
            zip_stored::<T, V, P, S, G, 3, 1>(
                s,
                self.n,
                self.rw,
                [self.g],
                self.draw,
                #[inline(always)]
                |[_, m, v], [g], _| (*m, *v) = moments(s, &c, g, *m, *v),
            )
        }
    }
}

/// Pass 3: `p ← p − scale·r` over `n` elements, `r` from the stored moments `mv` = `m`, `v` (`S`,
/// read only).
struct UpdateKernel<T, P, S> {
    n: usize,
    p: *mut u8,
    mv: [*const u8; 2],
    draw: Option<Draw<1>>,
    c: LambConsts<T>,
    scale: T,
    _types: PhantomData<(P, S)>,
}

impl<T, P, S> Kernel<T> for UpdateKernel<T, P, S>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
{
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (c, scale) = (self.c, self.scale);
        specialize_flag(
            c.decay,
            #[inline(always)]
            |decay| {
                // SAFETY: `step_with` checked that the parameters, `m` and `v` hold n elements of
                // their types; the parameters are an exclusive borrow, so they overlap neither
                // moment.
                unsafe {
                    zip_stored::<T, V, P, P, S, 1, 2>(
                        s,
                        self.n,
                        [self.p],
                        self.mv,
                        self.draw,
                        #[inline(always)]
                        |[p], [m, v], _| {
                            let r = direction(s, &c, decay, *p, m, v);
                            *p = s.sub(*p, s.mul(s.splat(scale), r));
                        },
                    )
                }
            },
        );
    }
}
