//! Update rules: one module per family, each written once over the internal vector abstraction.
//!
//! Conventions shared by every rule:
//! - hyper-parameters are plain `pub` fields of a config struct, checked on every call; a rejected
//!   call returns an [`Error`] before any element is written;
//! - `step` runs on [`Backend::active`](crate::Backend::active), `step_on` on a chosen backend;
//! - results are bit-identical on every backend (the SIMD lanes perform exactly the scalar
//!   reference's operations in the same order, with no FMA contraction), and for a given input
//!   identical from run to run;
//! - NaN and ±Inf in gradients or state follow IEEE 754 through the stated equations; each rule's
//!   documentation says where they end up. Use [`all_finite`](crate::vector::all_finite) to skip a
//!   poisoned step.

use crate::arch::Simd;
use crate::{Element, Error};

pub mod adam;
pub mod averaging;
pub mod gd;
pub mod sign;

/// How weight decay enters a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightDecay<T> {
    /// No weight decay.
    None,
    /// L2 regularisation added to the gradient: `g ← g + λ·p` (PyTorch's `weight_decay` in `SGD`
    /// and `Adam`).
    L2(T),
    /// Decoupled decay applied to the parameters before the update: `p ← p·(1 − lr·λ)` (PyTorch's
    /// `AdamW`, Loshchilov & Hutter 2019).
    Decoupled(T),
}

impl<T: Element> WeightDecay<T> {
    pub(crate) fn validate(self) -> Result<(), Error> {
        match self {
            WeightDecay::None => Ok(()),
            WeightDecay::L2(l) | WeightDecay::Decoupled(l) => non_negative("weight_decay", l),
        }
    }

    /// The splatted constants of the two forms: `(Some(λ), None)` for L2, `(None, Some(1 − lr·λ))`
    /// for decoupled decay, `(None, None)` without decay.
    #[inline(always)]
    pub(crate) fn vectors<S: Simd<T>>(self, s: S, lr: T) -> (Option<S::V>, Option<S::V>) {
        match self {
            WeightDecay::None => (None, None),
            WeightDecay::L2(l) => (Some(s.splat(l)), None),
            WeightDecay::Decoupled(_) => (None, Some(s.splat(self.decoupled_factor(lr)))),
        }
    }

    /// The parameter multiplier `1 − lr·λ` of decoupled decay (`1` otherwise).
    pub(crate) fn decoupled_factor(self, lr: T) -> T {
        match self {
            WeightDecay::Decoupled(l) => T::one() - lr * l,
            _ => T::one(),
        }
    }
}

/// Applies weight decay to one vector of parameters `p` and gradients `g`, as returned by
/// [`WeightDecay::vectors`]: decoupled decay scales `p`, L2 adds `λ·p` to `g`. Returns `(p, g)`.
#[inline(always)]
pub(crate) fn apply_decay<T: Element, S: Simd<T>>(
    s: S,
    p: S::V,
    g: S::V,
    l2: Option<S::V>,
    decay: Option<S::V>,
) -> (S::V, S::V) {
    let p = match decay {
        Some(c) => s.mul(p, c),
        None => p,
    };
    let g = match l2 {
        Some(l) => s.add(g, s.mul(l, p)),
        None => g,
    };
    (p, g)
}

/// Calls `f` with `wd` rebuilt so that, at each of the four call sites, which weight-decay form
/// applies is a compile-time constant: `f` (always inlined) is instantiated once per form, and
/// the per-element branches on the form fold away inside each instance's loop.
#[inline(always)]
pub(crate) fn specialize_decay<V: Copy, R>(
    wd: (Option<V>, Option<V>),
    f: impl FnOnce((Option<V>, Option<V>)) -> R,
) -> R {
    match wd {
        (None, None) => f((None, None)),
        (Some(l), None) => f((Some(l), None)),
        (None, Some(d)) => f((None, Some(d))),
        (Some(l), Some(d)) => f((Some(l), Some(d))),
    }
}

/// Calls `f` with `flag` as a compile-time constant at each of its two call sites (see
/// [`specialize_decay`]).
#[inline(always)]
pub(crate) fn specialize_flag<R>(flag: bool, f: impl FnOnce(bool) -> R) -> R {
    if flag {
        f(true)
    } else {
        f(false)
    }
}

/// `x` must be finite and `>= 0`.
pub(crate) fn non_negative<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x.is_finite() && x >= T::zero() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be finite and >= 0",
        })
    }
}

/// `x` must be finite and `> 0`.
pub(crate) fn positive<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x.is_finite() && x > T::zero() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be finite and > 0",
        })
    }
}

/// `x` must lie in `[0, 1)`.
pub(crate) fn unit_half_open<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x >= T::zero() && x < T::one() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must lie in [0, 1)",
        })
    }
}

/// `x` must lie in `[0, 1]`.
pub(crate) fn unit_closed<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x >= T::zero() && x <= T::one() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must lie in [0, 1]",
        })
    }
}
