//! Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), optionally AMSGrad
//! (Reddi et al. 2018), with `torch.optim.Adam` / `torch.optim.AdamW` semantics.

use super::{
    apply_decay, check_step, non_negative, positive, rule_accessors, run_step, unit_half_open,
    Body, Rule, WeightDecay,
};
use crate::arch::Simd;
use crate::storage::Storage;
use crate::{Element, Error, Exec};

/// Adam / AdamW. With [`WeightDecay::L2`] this is `torch.optim.Adam(weight_decay=λ)`, with
/// [`WeightDecay::Decoupled`] it is `torch.optim.AdamW(weight_decay=λ)`.
///
/// State: `m`, then `v`, then (with `amsgrad`) `v̂`, each `params.len()` elements, zero before
/// step 1. Per element, with `t` the 1-based step number:
/// ```text
/// L2(λ):        g ← g + λ·p              Decoupled(λ): p ← p·(1 − lr·λ)
///               m ← β1·m + (1 − β1)·g
///               v ← β2·v + (1 − β2)·g·g
/// AMSGrad:      v̂ ← max(v̂, v)            (NaN-propagating, as torch.maximum); use v̂ for v below
///               p ← p − a · m / (√v · r + ε)
/// where a = lr / (1 − β1^t) and r = 1 / √(1 − β2^t), computed once per call in f64.
/// ```
/// `ε` sits outside the square root and after the bias correction of `v`, exactly where PyTorch
/// puts it (`denom = v.sqrt() / sqrt(bias_correction2) + eps`); PyTorch divides by `√(1 − β2^t)`
/// where this multiplies by its reciprocal, and PyTorch updates `m` with `lerp`, so results agree
/// with PyTorch to rounding, not bit for bit. There is one square root and one division per element
/// (exact IEEE operations, no reciprocal estimates).
///
/// IEEE behaviour: a NaN gradient makes that element's `m`, `v` and `p` NaN; an infinite gradient
/// makes `v` infinite and `m` ±Inf, so `m / (√v·r + ε)` is NaN and so is `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam<T> {
    /// Learning rate, finite and `>= 0`.
    pub lr: T,
    /// First-moment decay `β1` in `[0, 1)`.
    pub beta1: T,
    /// Second-moment decay `β2` in `[0, 1)`.
    pub beta2: T,
    /// `ε`, finite and `> 0`.
    pub eps: T,
    /// Weight decay (L2 for Adam, decoupled for AdamW).
    pub weight_decay: WeightDecay<T>,
    /// AMSGrad (Reddi et al. 2018): divide by the running maximum `v̂` of `v`, kept as a third
    /// state buffer (`torch.optim.Adam(amsgrad=True)`).
    pub amsgrad: bool,
}

impl<T: Element> Adam<T> {
    /// Adam with PyTorch's defaults: `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-8`, no weight decay.
    pub fn new(lr: T) -> Self {
        Adam {
            lr,
            beta1: T::from_f64_round(0.9),
            beta2: T::from_f64_round(0.999),
            eps: T::from_f64_round(1e-8),
            weight_decay: WeightDecay::None,
            amsgrad: false,
        }
    }

    /// AdamW with PyTorch's defaults and decoupled weight decay `λ` (PyTorch's default is 0.01).
    pub fn adamw(lr: T, weight_decay: T) -> Self {
        Adam {
            weight_decay: WeightDecay::Decoupled(weight_decay),
            ..Self::new(lr)
        }
    }

    /// The same rule with AMSGrad on (`torch.optim.Adam(amsgrad=True)`).
    pub fn amsgrad(self) -> Self {
        Adam {
            amsgrad: true,
            ..self
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("beta1", self.beta1)?;
        unit_half_open("beta2", self.beta2)?;
        positive("eps", self.eps)?;
        self.weight_decay.validate()
    }
}

impl<T: Element> Rule<T> for Adam<T> {
    const NAME: &'static str = "adam";
    const MAX_STATE_BUFFERS: usize = 3;
    /// Two (`m`, `v`), three with AMSGrad (`m`, `v`, `v̂`).
    fn state_buffers(&self) -> usize {
        if self.amsgrad {
            3
        } else {
            2
        }
    }
    fn validate(&self) -> Result<(), Error> {
        Adam::validate(self)
    }
    rule_accessors!(Adam, WeightDecay::None);
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error> {
        check_step(self, step, params.len(), grads.len(), state.len())?;
        let c = AdamConsts::new(self, step);
        if self.amsgrad {
            run_step::<T, P, G, S, _, 4>(exec, params, grads, state, AmsGradBody(c));
        } else {
            run_step::<T, P, G, S, _, 3>(exec, params, grads, state, AdamBody(c));
        }
        Ok(())
    }
}

/// The per-call scalars of an Adam step.
#[derive(Clone, Copy)]
pub(crate) struct AdamConsts<T> {
    beta1: T,
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    /// `lr / (1 − β1^t)`.
    step_size: T,
    /// `1 / √(1 − β2^t)`.
    inv_sqrt_bc2: T,
    eps: T,
    lr: T,
    pub(crate) weight_decay: WeightDecay<T>,
}

impl<T: Element> AdamConsts<T> {
    /// The splatted weight-decay constants of [`adam_vector`].
    #[inline(always)]
    pub(crate) fn decay_vectors<S: Simd<T>>(&self, s: S) -> (Option<S::V>, Option<S::V>) {
        self.weight_decay.vectors(s, self.lr)
    }

    fn new(a: &Adam<T>, step: u64) -> Self {
        // β^t in f64: exact enough for any t (powi would round t to i32).
        let t = step as f64;
        let bc1 = 1.0 - libm::pow(a.beta1.widen(), t);
        let bc2 = 1.0 - libm::pow(a.beta2.widen(), t);
        AdamConsts {
            beta1: a.beta1,
            one_minus_beta1: T::one() - a.beta1,
            beta2: a.beta2,
            one_minus_beta2: T::one() - a.beta2,
            step_size: T::from_f64_round(a.lr.widen() / bc1),
            inv_sqrt_bc2: T::from_f64_round(1.0 / libm::sqrt(bc2)),
            eps: a.eps,
            lr: a.lr,
            weight_decay: a.weight_decay,
        }
    }
}

/// The moment updates and the parameter step of one vector; returns the new `(p, m, v)`. The
/// denominator uses `v_hat(v)`: `v` itself, or the AMSGrad maximum.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam_vector<T: Element, S: Simd<T>>(
    s: S,
    c: &AdamConsts<T>,
    (l2, decay): (Option<S::V>, Option<S::V>),
    p: S::V,
    g: S::V,
    m: S::V,
    v: S::V,
    v_hat: impl FnOnce(S::V) -> S::V,
) -> (S::V, S::V, S::V) {
    let (p, g) = apply_decay(s, p, g, l2, decay);
    let m = s.add(
        s.mul(s.splat(c.beta1), m),
        s.mul(s.splat(c.one_minus_beta1), g),
    );
    let v = s.add(
        s.mul(s.splat(c.beta2), v),
        s.mul(s.splat(c.one_minus_beta2), s.mul(g, g)),
    );
    let denom = s.add(
        s.mul(s.sqrt(v_hat(v)), s.splat(c.inv_sqrt_bc2)),
        s.splat(c.eps),
    );
    let p = s.sub(p, s.mul(s.splat(c.step_size), s.div(m, denom)));
    (p, m, v)
}

impl<T: Element> AdamConsts<T> {
    /// Calls `f` with the weight-decay form a constant at each call site ([`Body::specialize`]).
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        self.weight_decay.specialize(
            #[inline(always)]
            |weight_decay| {
                f(AdamConsts {
                    weight_decay,
                    ..self
                })
            },
        )
    }
}

#[derive(Clone, Copy)]
struct AdamBody<T>(AdamConsts<T>);

impl<T: Element> Body<T, 3> for AdamBody<T> {
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        self.0.specialize(
            #[inline(always)]
            |c| f(AdamBody(c)),
        )
    }
    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, [p, m, v]: &mut [S::V; 3], g: S::V) {
        let c = &self.0;
        (*p, *m, *v) = adam_vector(
            s,
            c,
            c.decay_vectors(s),
            *p,
            g,
            *m,
            *v,
            #[inline(always)]
            |v| v,
        );
    }
}

#[derive(Clone, Copy)]
struct AmsGradBody<T>(AdamConsts<T>);

impl<T: Element> Body<T, 4> for AmsGradBody<T> {
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        self.0.specialize(
            #[inline(always)]
            |c| f(AmsGradBody(c)),
        )
    }
    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, [p, m, v, vm]: &mut [S::V; 4], g: S::V) {
        let c = &self.0;
        let mut new_max = *vm;
        (*p, *m, *v) = adam_vector(
            s,
            c,
            c.decay_vectors(s),
            *p,
            g,
            *m,
            *v,
            #[inline(always)]
            |v| {
                new_max = s.max_nan(new_max, v);
                new_max
            },
        );
        *vm = new_max;
    }
}
