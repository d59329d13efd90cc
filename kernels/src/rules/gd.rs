//! Gradient descent and SGD with heavy-ball momentum, dampening and Nesterov.

use super::{
    apply_decay, non_negative, specialize_decay, specialize_flag, unit_closed, unit_half_open,
    WeightDecay,
};
use crate::arch::driver::zip;
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::error::check_len;
use crate::{Backend, Element, Error};

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

    /// One step on the active backend.
    pub fn step(&self, params: &mut [T], grads: &[T]) -> Result<(), Error> {
        self.step_on(Backend::active(), params, grads)
    }

    /// One step on `backend`.
    pub fn step_on(&self, backend: Backend, params: &mut [T], grads: &[T]) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        run_on(
            backend,
            GdKernel {
                p: params,
                g: grads,
                lr: self.lr,
                wd: self.weight_decay,
            },
        )
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

struct GdKernel<'a, T> {
    p: &'a mut [T],
    g: &'a [T],
    lr: T,
    wd: WeightDecay<T>,
}

impl<T: Element> Kernel<T> for GdKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.p.len();
        let lr = s.splat(self.lr);
        let rw = [self.p.as_mut_ptr()];
        let ro = [self.g.as_ptr()];
        specialize_decay(
            self.wd.vectors(s, self.lr),
            #[inline(always)]
            |wd| {
                // SAFETY: `p` and `g` have length n (checked by `step_on`); `p` is an exclusive
                // borrow, so it overlaps nothing else.
                unsafe {
                    zip(
                        s,
                        n,
                        rw,
                        ro,
                        #[inline(always)]
                        |[p]: &mut [S::V; 1], [g]: [S::V; 1]| *p = gd_vector(s, lr, wd, *p, g),
                    )
                }
            },
        )
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

    /// Step number `step` (from 1) on the active backend.
    pub fn step(
        &self,
        step: u64,
        params: &mut [T],
        grads: &[T],
        momentum_buf: &mut [T],
    ) -> Result<(), Error> {
        self.step_on(Backend::active(), step, params, grads, momentum_buf)
    }

    /// Step number `step` (from 1) on `backend`.
    pub fn step_on(
        &self,
        backend: Backend,
        step: u64,
        params: &mut [T],
        grads: &[T],
        momentum_buf: &mut [T],
    ) -> Result<(), Error> {
        let first = self.prepare(step, params.len(), grads.len(), momentum_buf.len())?;
        run_on(
            backend,
            SgdKernel {
                p: params,
                g: grads,
                b: momentum_buf,
                cfg: *self,
                first,
            },
        )
    }

    /// Validates a call on `n` parameters and returns whether this is a "first" step (the buffer
    /// becomes a copy of `g`).
    pub(crate) fn prepare(
        &self,
        step: u64,
        n: usize,
        grads_len: usize,
        buf_len: usize,
    ) -> Result<bool, Error> {
        self.validate()?;
        if step == 0 {
            return Err(Error::InvalidStep { step });
        }
        check_len("grads", n, grads_len)?;
        check_len("momentum_buf", n, buf_len)?;
        // PyTorch skips the buffer when μ = 0, so d = g; writing b ← g gives the same d.
        Ok(step == 1 || self.momentum == T::zero())
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

struct SgdKernel<'a, T> {
    p: &'a mut [T],
    g: &'a [T],
    b: &'a mut [T],
    cfg: Sgd<T>,
    first: bool,
}

impl<T: Element> Kernel<T> for SgdKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.p.len();
        let c = self.cfg.vectors(s, self.first);
        let (p, b, g) = (self.p.as_mut_ptr(), self.b.as_mut_ptr(), self.g.as_ptr());
        // Specialize the loop on the call's fixed choices, so no branch remains per element.
        specialize_flag(
            c.first,
            #[inline(always)]
            |first| {
                specialize_flag(
                    c.nesterov,
                    #[inline(always)]
                    |nesterov| {
                        specialize_decay(
                            c.wd,
                            #[inline(always)]
                            |wd| {
                                let c = SgdVectors {
                                    first,
                                    nesterov,
                                    wd,
                                    ..c
                                };
                                // SAFETY: all three buffers have length n (checked by `step_on`); `p` and `b`
                                // are distinct exclusive borrows.
                                unsafe {
                                    zip(
                                        s,
                                        n,
                                        [p, b],
                                        [g],
                                        #[inline(always)]
                                        |[p, b]: &mut [S::V; 2], [g]: [S::V; 1]| {
                                            (*p, *b) = sgd_vector(s, &c, *p, *b, g)
                                        },
                                    )
                                }
                            },
                        )
                    },
                )
            },
        )
    }
}
