//! Sign-based rules: sign descent, Signum (Bernstein et al. 2018) and Lion (Chen et al. 2023).
//!
//! `sign(x)` is `+1` for `x > 0`, `−1` for `x < 0`, `+0` for `±0` and NaN for NaN (as
//! `torch.sign`; `torch.sign(-0.0)` is `-0.0`, which moves no parameter either). A NaN gradient
//! therefore makes its parameter NaN, while an infinite gradient gives an ordinary `±lr` step.
//! A learning rate of `−0` (valid, as `>= 0`) acts as `+0`.

use super::{
    apply_decay, check_step, non_negative, rule_accessors, run_step, unit_half_open, Body, Rule,
    WeightDecay,
};
use crate::arch::Simd;
use crate::storage::Storage;
use crate::{Element, Error, Exec};

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
    s.sub(q, s.mul_sign(lr, g))
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
    (s.sub(q, s.mul_sign(lr, m)), m)
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
        s.sub(q, s.mul_sign(lr, c)),
        s.add(s.mul(b2, m), s.mul(ob2, g)),
    )
}

impl<T: Element> Rule<T> for SignDescent<T> {
    const NAME: &'static str = "sign_descent";
    const MAX_STATE_BUFFERS: usize = 0;
    /// None (pass an empty slice); the step number is checked but unused.
    fn state_buffers(&self) -> usize {
        0
    }
    fn validate(&self) -> Result<(), Error> {
        SignDescent::validate(self)
    }
    rule_accessors!(SignDescent, WeightDecay::None);
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        run_step::<T, P, G, S, _, 1>(exec, params, grads, state, SignBody(*self));
        Ok(())
    }
}

impl<T: Element> Rule<T> for Signum<T> {
    const NAME: &'static str = "signum";
    const MAX_STATE_BUFFERS: usize = 1;
    /// One: the momentum `m`; the step number is checked but unused.
    fn state_buffers(&self) -> usize {
        1
    }
    fn validate(&self) -> Result<(), Error> {
        Signum::validate(self)
    }
    rule_accessors!(Signum, WeightDecay::None);
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        run_step::<T, P, G, S, _, 2>(exec, params, grads, state, SignumBody(*self));
        Ok(())
    }
}

impl<T: Element> Rule<T> for Lion<T> {
    const NAME: &'static str = "lion";
    const MAX_STATE_BUFFERS: usize = 1;
    /// One: the momentum `m`; the step number is checked but unused.
    fn state_buffers(&self) -> usize {
        1
    }
    fn validate(&self) -> Result<(), Error> {
        Lion::validate(self)
    }
    rule_accessors!(Lion, WeightDecay::None);
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        run_step::<T, P, G, S, _, 2>(exec, params, grads, state, LionBody(*self));
        Ok(())
    }
}

macro_rules! sign_body {
    ($body:ident, $rule:ident, $rw:literal, |$s:ident, $r:ident, $w:pat, $g:ident, $lr:ident, $wd:ident| $apply:expr) => {
        #[derive(Clone, Copy)]
        struct $body<T>($rule<T>);

        impl<T: Element> Body<T, $rw> for $body<T> {
            #[inline(always)]
            fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
                self.0.weight_decay.specialize(
                    #[inline(always)]
                    |weight_decay| {
                        f($body($rule {
                            weight_decay,
                            ..self.0
                        }))
                    },
                )
            }
            #[inline(always)]
            fn apply<S: Simd<T>>(self, $s: S, $w: &mut [S::V; $rw], $g: S::V) {
                let $r = self.0;
                // `lr + 0` turns a `-0` learning rate (valid: `>= 0`) into `+0`, so that `mul_sign` (which
                // puts the sign of `x` on `lr`) and the multiply agree on the sign of zero.
                let ($lr, $wd) = (
                    $s.splat($r.lr + T::zero()),
                    $r.weight_decay.vectors($s, $r.lr),
                );
                $apply
            }
        }
    };
}

sign_body!(SignBody, SignDescent, 1, |s, r, [p], g, lr, wd| {
    *p = sign_vector(s, lr, wd, *p, g)
});
sign_body!(SignumBody, Signum, 2, |s, r, [p, m], g, lr, wd| {
    let b = (s.splat(r.beta), s.splat(T::one() - r.beta));
    (*p, *m) = signum_vector(s, lr, wd, b, *p, *m, g)
});
sign_body!(LionBody, Lion, 2, |s, r, [p, m], g, lr, wd| {
    let one = T::one();
    let b = [
        s.splat(r.beta1),
        s.splat(one - r.beta1),
        s.splat(r.beta2),
        s.splat(one - r.beta2),
    ];
    (*p, *m) = lion_vector(s, lr, wd, b, *p, *m, g)
});
