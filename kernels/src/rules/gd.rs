//! Gradient descent and SGD with heavy-ball momentum, dampening and Nesterov.

use super::{
    apply_decay, check_step, non_negative, rule_accessors, run_step, specialize_flag, unit_closed,
    unit_half_open, Body, Rule, WeightDecay,
};
use crate::arch::Simd;
use crate::storage::Storage;
use crate::{Element, Error, Exec};

/// Plain gradient descent.
///
/// Per element, in this order of operations (each line one IEEE rounding per operator):
/// ```text
/// WeightDecay::None:          p ← p − lr·g
/// WeightDecay::L2(λ):         p ← p − lr·(g + λ·p)
/// WeightDecay::Decoupled(λ):  p ← p·c − lr·g,   c = 1 − lr·λ (computed once per call)
/// ```
/// This is `torch.optim.SGD` with `momentum = 0` (its `weight_decay` is the L2 form). A NaN in `g`
/// makes that parameter NaN; an infinite `g` makes it ∓Inf (or NaN if `p` is already infinite
/// the other way).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gd<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// Weight decay, `λ` finite and `>= 0`.
    pub weight_decay: WeightDecay<T>,
}

impl<T: Element> Gd<T> {
    /// Gradient descent with learning rate `lr` and no weight decay.
    pub fn new(lr: T) -> Self {
        Gd {
            lr,
            weight_decay: WeightDecay::None,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        self.weight_decay.validate()
    }
}

impl<T: Element> Rule<T> for Gd<T> {
    const NAME: &'static str = "gd";
    const MAX_STATE_BUFFERS: usize = 0;
    /// None: gradient descent keeps no state (pass an empty slice).
    fn state_buffers(&self) -> usize {
        0
    }
    fn validate(&self) -> Result<(), Error> {
        Gd::validate(self)
    }
    rule_accessors!(Gd, WeightDecay::None);
    /// The step number is checked (`>= 1`) but does not enter the update.
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        run_step::<T, P, G, S, _, 1>(exec, params, grads, state, GdBody(*self));
        Ok(())
    }
}

/// One vector of [`Gd`]: returns the new `p`. `wd` is [`WeightDecay::vectors`]. Shared by the
/// `f32`/`f64` kernel and the 16-bit storage variants (`crate::reduced`).
#[inline(always)]
pub(crate) fn gd_vector<T: Element, S: Simd<T>>(
    s: S,
    lr: S::V,
    (l2, decay): (Option<S::V>, Option<S::V>),
    p: S::V,
    g: S::V,
) -> S::V {
    let (q, g) = apply_decay(s, p, g, l2, decay);
    s.sub(q, s.mul(lr, g))
}

#[derive(Clone, Copy)]
struct GdBody<T>(Gd<T>);

impl<T: Element> Body<T, 1> for GdBody<T> {
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        self.0.weight_decay.specialize(
            #[inline(always)]
            |weight_decay| {
                f(GdBody(Gd {
                    weight_decay,
                    ..self.0
                }))
            },
        )
    }
    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, [p]: &mut [S::V; 1], g: S::V) {
        let r = self.0;
        *p = gd_vector(s, s.splat(r.lr), r.weight_decay.vectors(s, r.lr), *p, g);
    }
}

/// SGD with heavy-ball momentum, dampening and optional Nesterov: `torch.optim.SGD` semantics.
///
/// Per element, with `b` the momentum buffer and `t` the 1-based step number:
/// ```text
/// L2(λ):          g ← g + λ·p            (Decoupled(λ): p ← p·(1 − lr·λ) first, g unchanged)
/// t = 1:          b ← g                  (PyTorch's first step: the buffer is a copy of g;
///                                         the buffer's old contents are ignored)
/// t > 1:          b ← μ·b + (1 − τ)·g
/// Nesterov:       d = g + μ·b            otherwise d = b
///                 p ← p − lr·d
/// ```
/// `μ` is `momentum` in `[0, 1)`, `τ` is `dampening` in `[0, 1]`; as in PyTorch, Nesterov requires
/// `μ > 0` and `τ = 0`. With `μ = 0` this is [`Gd`] (`d = g`, whatever `τ`), and the buffer
/// receives `g`.
/// NaN in `g` poisons that element's `b` and `p` for good (IEEE propagation through `b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// Momentum `μ` in `[0, 1)`.
    pub momentum: T,
    /// Dampening `τ` in `[0, 1]`.
    pub dampening: T,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay.
    pub weight_decay: WeightDecay<T>,
}

impl<T: Element> Sgd<T> {
    /// Heavy-ball SGD with learning rate `lr`, momentum `momentum`, no dampening, no decay.
    pub fn new(lr: T, momentum: T) -> Self {
        Sgd {
            lr,
            momentum,
            dampening: T::zero(),
            nesterov: false,
            weight_decay: WeightDecay::None,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("momentum", self.momentum)?;
        unit_closed("dampening", self.dampening)?;
        if self.nesterov && (self.momentum <= T::zero() || self.dampening != T::zero()) {
            return Err(Error::InvalidHyperParameter {
                name: "nesterov",
                requirement: "requires momentum > 0 and dampening = 0",
            });
        }
        self.weight_decay.validate()
    }

    /// The splatted per-call constants of [`sgd_vector`].
    #[inline(always)]
    pub(crate) fn vectors<S: Simd<T>>(&self, s: S, first: bool) -> SgdVectors<S::V> {
        SgdVectors {
            lr: s.splat(self.lr),
            mu: s.splat(self.momentum),
            keep: s.splat(T::one() - self.dampening),
            wd: self.weight_decay.vectors(s, self.lr),
            first,
            nesterov: self.nesterov,
        }
    }
}

impl<T: Element> Rule<T> for Sgd<T> {
    const NAME: &'static str = "sgd";
    const MAX_STATE_BUFFERS: usize = 1;
    /// One: the momentum buffer `b` (also with `μ = 0`, where it receives `g`).
    fn state_buffers(&self) -> usize {
        1
    }
    fn validate(&self) -> Result<(), Error> {
        Sgd::validate(self)
    }
    rule_accessors!(Sgd, WeightDecay::None);
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        // PyTorch skips the buffer when μ = 0, so d = g; writing b ← g gives the same d.
        let first = step == 1 || self.momentum == T::zero();
        run_step::<T, P, G, S, _, 2>(exec, params, grads, state, SgdBody(*self, first));
        Ok(())
    }
}

/// Per-call constants of one SGD step, splatted.
#[derive(Clone, Copy)]
pub(crate) struct SgdVectors<V> {
    lr: V,
    mu: V,
    keep: V,
    wd: (Option<V>, Option<V>),
    first: bool,
    nesterov: bool,
}

/// One vector of [`Sgd`]: returns the new `(p, b)`. The branches test values fixed for the whole
/// call, so they are hoisted or predicted perfectly, and every lane performs the same operations
/// as the scalar reference.
#[inline(always)]
pub(crate) fn sgd_vector<T: Element, S: Simd<T>>(
    s: S,
    c: &SgdVectors<S::V>,
    p: S::V,
    b: S::V,
    g: S::V,
) -> (S::V, S::V) {
    let (p, g) = apply_decay(s, p, g, c.wd.0, c.wd.1);
    let b = if c.first {
        g
    } else {
        s.add(s.mul(c.mu, b), s.mul(c.keep, g))
    };
    let d = if c.nesterov {
        s.add(g, s.mul(c.mu, b))
    } else {
        b
    };
    (s.sub(p, s.mul(c.lr, d)), b)
}

/// An SGD step: the rule and whether this is a "first" step (the buffer becomes a copy of `g`).
#[derive(Clone, Copy)]
struct SgdBody<T>(Sgd<T>, bool);

impl<T: Element> Body<T, 2> for SgdBody<T> {
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        let SgdBody(r, first) = self;
        specialize_flag(
            first,
            #[inline(always)]
            |first| {
                specialize_flag(
                    r.nesterov,
                    #[inline(always)]
                    |nesterov| {
                        r.weight_decay.specialize(
                            #[inline(always)]
                            |weight_decay| {
                                f(SgdBody(
                                    Sgd {
                                        nesterov,
                                        weight_decay,
                                        ..r
                                    },
                                    first,
                                ))
                            },
                        )
                    },
                )
            },
        )
    }
    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, [p, b]: &mut [S::V; 2], g: S::V) {
        let c = self.0.vectors(s, self.1);
        (*p, *b) = sgd_vector(s, &c, *p, *b, g);
    }
}
