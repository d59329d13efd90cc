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
/// A step makes three passes and needs no buffer beyond the state: (1) update `m`, `v` (SIMD);
/// (2) the two norms from `p` and the *stored* `m`, `v` (read only, as above); (3) recompute `r` from
/// the stored `m`, `v` and update `p` (SIMD). With 16-bit storage the moments are rounded once
/// when stored in pass 1 and pass 2/3 use the rounded values, so the norm is exactly that of the
/// applied direction. Passes 1 and 3 store the parameters and the state, rewriting unchanged
/// buffers with their own (representable) values, which nearest and stochastic rounding both leave
/// unchanged (a NaN stays a NaN); under stochastic rounding parameters draw first, then `m`, then
/// `v`, as in every rule.
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
            Rounding::Stochastic(key) => Some(Draw::new(&key)),
        };
        let rw = [
            params.as_mut_ptr().cast::<u8>(),
            m.as_mut_ptr().cast(),
            v.as_mut_ptr().cast(),
        ];
        let kernel = |scale: Option<T>| LambKernel::<T, P, S, G> {
            n,
            rw,
            g: grads.as_ptr().cast(),
            draw,
            c,
            scale,
            _types: PhantomData,
        };
        // Pass 1: the moments.
        exec.run(kernel(None));
        // Pass 2: the norms, backend-independent.
        let (p2, r2) = exec.run(NormKernel::<T, P, S> {
            n,
            p: params.as_ptr(),
            m: m.as_ptr(),
            v: v.as_ptr(),
            c,
        });
        let (pn, rn) = (libm::sqrt(p2), libm::sqrt(r2));
        let ratio = if pn == 0.0 || rn == 0.0 { 1.0 } else { pn / rn };
        let scale = T::from_f64_round(self.lr.widen() * ratio);
        // Pass 3: the parameters.
        exec.run(kernel(Some(scale)));
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
struct NormKernel<T, P, S> {
    n: usize,
    p: *const P,
    m: *const S,
    v: *const S,
    c: LambConsts<T>,
}

/// Stack room for the tail of one buffer, aligned for every storage format.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct TailBuf([u8; 8 * MAX_LANES]);

impl<T, P, S> Kernel<T> for NormKernel<T, P, S>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
{
    type Output = (f64, f64);
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) -> (f64, f64) {
        let (n, c, lanes) = (self.n, self.c, V::LANES);
        let (mut p2, mut r2) = (Partials::default(), Partials::default());
        let mut pb = [T::zero(); GROUP_MAX];
        let mut rb = [T::zero(); GROUP_MAX];
        // Whole groups of `group` elements (a multiple of both the lane count and PARTIALS,
        // every lane count being a power of two) go to the stack and then to the partial sums in
        // runs of PARTIALS, which the compiler vectorises in f64; then single vectors, then the
        // tail. The partial sums depend on the indices only.
        let group = lanes.max(PARTIALS);
        debug_assert!(group % lanes == 0 && group % PARTIALS == 0 && group <= GROUP_MAX);
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
                            let (p, m, v) = (
                                P::load_vec(s, self.p.add(i + o)),
                                S::load_vec(s, self.m.add(i + o)),
                                S::load_vec(s, self.v.add(i + o)),
                            );
                            s.store(pb.as_mut_ptr().add(o), p);
                            s.store(rb.as_mut_ptr().add(o), direction(s, &c, decay, p, m, v));
                        }
                        o += lanes;
                    }
                    p2.add_squares(i, &pb[..group]);
                    r2.add_squares(i, &rb[..group]);
                    i += group;
                }
                // Accumulates `count` elements starting at element `i` from vectors `p`, `r`.
                let mut add = |i: usize, count: usize, p: V::V, r: V::V| {
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
                    let (p, m, v) = unsafe {
                        (
                            P::load_vec(s, self.p.add(i)),
                            S::load_vec(s, self.m.add(i)),
                            S::load_vec(s, self.v.add(i)),
                        )
                    };
                    add(i, lanes, p, direction(s, &c, decay, p, m, v));
                    i += lanes;
                }
                let rest = n - i;
                if rest > 0 {
                    let mut bufs = [TailBuf([0; 8 * MAX_LANES]); 3];
                    // SAFETY: i + rest == n, so the copies read inside the caller's buffers; the
                    // zero-filled stack buffers hold MAX_LANES >= LANES elements of any format
                    // (all-zero bytes are the value 0 in every format), aligned for all.
                    let (p, m, v) = unsafe {
                        let (ps, ss) = (size_of::<P>(), size_of::<S>());
                        core::ptr::copy_nonoverlapping(
                            self.p.add(i).cast::<u8>(),
                            bufs[0].0.as_mut_ptr(),
                            rest * ps,
                        );
                        core::ptr::copy_nonoverlapping(
                            self.m.add(i).cast::<u8>(),
                            bufs[1].0.as_mut_ptr(),
                            rest * ss,
                        );
                        core::ptr::copy_nonoverlapping(
                            self.v.add(i).cast::<u8>(),
                            bufs[2].0.as_mut_ptr(),
                            rest * ss,
                        );
                        (
                            P::load_vec(s, bufs[0].0.as_ptr().cast::<P>()),
                            S::load_vec(s, bufs[1].0.as_ptr().cast::<S>()),
                            S::load_vec(s, bufs[2].0.as_ptr().cast::<S>()),
                        )
                    };
                    add(i, rest, p, direction(s, &c, decay, p, m, v));
                }
            },
        );
        (p2.total(), r2.total())
    }
}

/// Pass 1 (`scale` = `None`: new `m`, `v`) or pass 3 (`p ← p − scale·r`) over `n` elements:
/// `rw` = parameters (`P`), `m`, `v` (`S`); `g` the gradient (`G`, read in pass 1 only).
struct LambKernel<T, P, S, G> {
    n: usize,
    rw: [*mut u8; 3],
    g: *const u8,
    draw: Option<Draw<3>>,
    c: LambConsts<T>,
    scale: Option<T>,
    _types: PhantomData<(P, S, G)>,
}

impl<T, P, S, G> Kernel<T> for LambKernel<T, P, S, G>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
{
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (n, rw, draw, c) = (self.n, self.rw, self.draw, self.c);
        match self.scale {
            // SAFETY: `step_with` checked that the parameters, the gradient, `m` and `v` hold n
            // elements of their types; the three written buffers come from disjoint exclusive
            // borrows, so no written range overlaps another or the gradient.
            None => unsafe {
                zip_stored::<T, V, P, S, G, 3, 1>(
                    s,
                    n,
                    rw,
                    [self.g],
                    draw,
                    #[inline(always)]
                    |[_, m, v], [g], _| (*m, *v) = moments(s, &c, g, *m, *v),
                )
            },
            Some(scale) => specialize_flag(
                c.decay,
                #[inline(always)]
                |decay| {
                    // SAFETY: as above (no read-only buffer).
                    unsafe {
                        zip_stored::<T, V, P, S, G, 3, 0>(
                            s,
                            n,
                            rw,
                            [],
                            draw,
                            #[inline(always)]
                            |[p, m, v], [], _| {
                                let r = direction(s, &c, decay, *p, *m, *v);
                                *p = s.sub(*p, s.mul(s.splat(scale), r));
                            },
                        )
                    }
                },
            ),
        }
    }
}
