//! Sign-based rules: sign descent, Signum (Bernstein et al. 2018) and Lion (Chen et al. 2023).
//!
//! `sign(x)` is `+1` for `x > 0`, `−1` for `x < 0`, `+0` for `±0` and NaN for NaN (as
//! `torch.sign`; `torch.sign(-0.0)` is `-0.0`, which moves no parameter either). A NaN gradient
//! therefore makes its parameter NaN, while an infinite gradient gives an ordinary `±lr` step.

use super::{apply_decay, non_negative, specialize_decay, unit_half_open, WeightDecay};
use crate::arch::driver::zip;
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::error::check_len;
use crate::{Backend, Element, Error};

/// Sign descent (signSGD without momentum).
///
/// ```text
/// L2(λ):  g ← g + λ·p        Decoupled(λ): p ← p·(1 − lr·λ)
///         p ← p − lr·sign(g)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignDescent<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// Weight decay.
    pub weight_decay: WeightDecay<T>,
}

impl<T: Element> SignDescent<T> {
    /// Sign descent with learning rate `lr`, no weight decay.
    pub fn new(lr: T) -> Self {
        SignDescent {
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
            SignKernel {
                p: params,
                g: grads,
                m: None,
                rule: SignRule::Plain,
                lr: self.lr,
                weight_decay: self.weight_decay,
            },
        )
    }
}

/// Signum: sign descent on an exponential moving average of the gradients (Bernstein, Wang,
/// Azizzadenesheli & Anandkumar 2018, Algorithm 3), as in the authors' PyTorch implementation:
///
/// ```text
/// L2(λ):  g ← g + λ·p        Decoupled(λ): p ← p·(1 − lr·λ)
///         m ← β·m + (1 − β)·g          (m starts at zero; there is no special first step)
///         p ← p − lr·sign(m)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Signum<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// Momentum `β` in `[0, 1)` (the paper's default is 0.9).
    pub beta: T,
    /// Weight decay.
    pub weight_decay: WeightDecay<T>,
}

impl<T: Element> Signum<T> {
    /// Signum with learning rate `lr` and momentum `beta`, no weight decay.
    pub fn new(lr: T, beta: T) -> Self {
        Signum {
            lr,
            beta,
            weight_decay: WeightDecay::None,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("beta", self.beta)?;
        self.weight_decay.validate()
    }

    /// One step on the active backend.
    pub fn step(&self, params: &mut [T], grads: &[T], m: &mut [T]) -> Result<(), Error> {
        self.step_on(Backend::active(), params, grads, m)
    }

    /// One step on `backend`.
    pub fn step_on(
        &self,
        backend: Backend,
        params: &mut [T],
        grads: &[T],
        m: &mut [T],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        run_on(
            backend,
            SignKernel {
                p: params,
                g: grads,
                m: Some(m),
                rule: SignRule::Signum { beta: self.beta },
                lr: self.lr,
                weight_decay: self.weight_decay,
            },
        )
    }
}

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), as in
/// the authors' reference implementation:
///
/// ```text
/// Decoupled(λ): p ← p·(1 − lr·λ)       (L2(λ): g ← g + λ·p, for completeness)
///               c = β1·m + (1 − β1)·g
///               p ← p − lr·sign(c)
///               m ← β2·m + (1 − β2)·g  (m starts at zero)
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lion<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// Interpolation `β1` in `[0, 1)` (paper default 0.9).
    pub beta1: T,
    /// Momentum decay `β2` in `[0, 1)` (paper default 0.99).
    pub beta2: T,
    /// Weight decay (the paper's is decoupled).
    pub weight_decay: WeightDecay<T>,
}

impl<T: Element> Lion<T> {
    /// Lion with the paper's defaults `β1 = 0.9`, `β2 = 0.99`, no weight decay.
    pub fn new(lr: T) -> Self {
        Lion {
            lr,
            beta1: T::from_f64_round(0.9),
            beta2: T::from_f64_round(0.99),
            weight_decay: WeightDecay::None,
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("beta1", self.beta1)?;
        unit_half_open("beta2", self.beta2)?;
        self.weight_decay.validate()
    }

    /// One step on the active backend.
    pub fn step(&self, params: &mut [T], grads: &[T], m: &mut [T]) -> Result<(), Error> {
        self.step_on(Backend::active(), params, grads, m)
    }

    /// One step on `backend`.
    pub fn step_on(
        &self,
        backend: Backend,
        params: &mut [T],
        grads: &[T],
        m: &mut [T],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        run_on(
            backend,
            SignKernel {
                p: params,
                g: grads,
                m: Some(m),
                rule: SignRule::Lion {
                    beta1: self.beta1,
                    beta2: self.beta2,
                },
                lr: self.lr,
                weight_decay: self.weight_decay,
            },
        )
    }
}

/// One vector of [`SignDescent`]: returns the new `p`.
#[inline(always)]
pub(crate) fn sign_vector<T: Element, S: Simd<T>>(
    s: S,
    lr: S::V,
    (l2, decay): (Option<S::V>, Option<S::V>),
    p: S::V,
    g: S::V,
) -> S::V {
    let (q, g) = apply_decay(s, p, g, l2, decay);
    s.sub(q, s.mul(lr, s.sign(g)))
}

/// One vector of [`Signum`] with `(b, ob) = (β, 1 − β)` splatted: returns the new `(p, m)`.
#[inline(always)]
pub(crate) fn signum_vector<T: Element, S: Simd<T>>(
    s: S,
    lr: S::V,
    (l2, decay): (Option<S::V>, Option<S::V>),
    (b, ob): (S::V, S::V),
    p: S::V,
    m: S::V,
    g: S::V,
) -> (S::V, S::V) {
    let (q, g) = apply_decay(s, p, g, l2, decay);
    let m = s.add(s.mul(b, m), s.mul(ob, g));
    (s.sub(q, s.mul(lr, s.sign(m))), m)
}

/// One vector of [`Lion`] with `[β1, 1 − β1, β2, 1 − β2]` splatted: returns the new `(p, m)`.
#[inline(always)]
pub(crate) fn lion_vector<T: Element, S: Simd<T>>(
    s: S,
    lr: S::V,
    (l2, decay): (Option<S::V>, Option<S::V>),
    [b1, ob1, b2, ob2]: [S::V; 4],
    p: S::V,
    m: S::V,
    g: S::V,
) -> (S::V, S::V) {
    let (q, g) = apply_decay(s, p, g, l2, decay);
    let c = s.add(s.mul(b1, m), s.mul(ob1, g));
    (
        s.sub(q, s.mul(lr, s.sign(c))),
        s.add(s.mul(b2, m), s.mul(ob2, g)),
    )
}

#[derive(Clone, Copy)]
enum SignRule<T> {
    Plain,
    Signum { beta: T },
    Lion { beta1: T, beta2: T },
}

struct SignKernel<'a, T> {
    p: &'a mut [T],
    g: &'a [T],
    m: Option<&'a mut [T]>,
    rule: SignRule<T>,
    lr: T,
    weight_decay: WeightDecay<T>,
}

impl<T: Element> Kernel<T> for SignKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.p.len();
        let lr = s.splat(self.lr);
        let ro = [self.g.as_ptr()];
        let one = T::one();
        let (rule, m, p) = (self.rule, self.m, self.p);
        specialize_decay(
            self.weight_decay.vectors(s, self.lr),
            #[inline(always)]
            |(l2, decay)| match (rule, m) {
                (SignRule::Signum { beta }, Some(m)) => {
                    let (b, ob) = (s.splat(beta), s.splat(one - beta));
                    // SAFETY: p, g, m have length n (checked by `step_on`); p and m are distinct
                    // exclusive borrows.
                    unsafe {
                        zip(
                            s,
                            n,
                            [p.as_mut_ptr(), m.as_mut_ptr()],
                            ro,
                            #[inline(always)]
                            |[p, m]: &mut [S::V; 2], [g]: [S::V; 1]| {
                                (*p, *m) = signum_vector(s, lr, (l2, decay), (b, ob), *p, *m, g)
                            },
                        )
                    }
                }
                (SignRule::Lion { beta1, beta2 }, Some(m)) => {
                    let (b1, ob1) = (s.splat(beta1), s.splat(one - beta1));
                    let (b2, ob2) = (s.splat(beta2), s.splat(one - beta2));
                    // SAFETY: as for Signum above.
                    unsafe {
                        zip(
                            s,
                            n,
                            [p.as_mut_ptr(), m.as_mut_ptr()],
                            ro,
                            #[inline(always)]
                            |[p, m]: &mut [S::V; 2], [g]: [S::V; 1]| {
                                (*p, *m) =
                                    lion_vector(s, lr, (l2, decay), [b1, ob1, b2, ob2], *p, *m, g)
                            },
                        )
                    }
                }
                _ => {
                    // SAFETY: p and g have length n (checked by `step_on`).
                    unsafe {
                        zip(
                            s,
                            n,
                            [p.as_mut_ptr()],
                            ro,
                            #[inline(always)]
                            |[p]: &mut [S::V; 1], [g]: [S::V; 1]| {
                                *p = sign_vector(s, lr, (l2, decay), *p, g)
                            },
                        )
                    }
                }
            },
        )
    }
}
