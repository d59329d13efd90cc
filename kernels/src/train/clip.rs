//! Gradient clipping over several gradient tensors: by global norm (torch
//! `torch.nn.utils.clip_grad_norm_`, optax `clip_by_global_norm`) and by value (torch
//! `clip_grad_value_`, optax `clip`), with a chosen policy for NaN/Inf gradients.
//!
//! The gradients are any slice of tensors that can be viewed as `[T]` (`&mut [&mut [f32]]`,
//! `&mut [Vec<f64>]`, `&mut [[f32; N]]`, ...), `T` being `f32` or `f64`.
//!
//! # By global norm
//!
//! The total norm is `‖(‖g₁‖₂, …, ‖g_k‖₂)‖₂`, the 2-norm of all gradients seen as one vector,
//! computed as torch does for `norm_type = 2`: one [`norm2`](crate::vector::norm2) per tensor
//! (one vectorised pass of squared sums; a second pass only for a tensor whose squares overflow or
//! underflow), combined on the way into the norm of those norms (in `f64`, rescaled by the largest
//! so it cannot overflow), rounded to `T`. Each gradient element is read once, and written once
//! if the gradients are clipped. The factor is
//! torch's: `max_norm / (total_norm + 1e-6)` computed in `T`, clamped to at most 1; every tensor
//! is multiplied by it with one [`scale`](crate::vector::scale) per tensor, and nothing is
//! multiplied when it is 1. So gradients whose total norm is below `max_norm` (by more than
//! about `1e-6`) are left bit-for-bit unchanged, and torch's `1e-6` means a clipped total norm
//! lands just below `max_norm`, not on it. (optax's `clip_by_global_norm` has no epsilon:
//! it leaves the gradients alone when `total_norm < max_norm` and otherwise computes
//! `(g / total_norm)·max_norm`; the two agree to about `1e-6 / total_norm` relative.) One consequence of torch's formula, kept here: gradients
//! whose total norm is far below `1e-6` are scaled down even when it is below `max_norm`. The
//! result reports the total norm *before* clipping, as torch returns it.
//!
//! # By value
//!
//! Every element is clamped to `[-clip, clip]` (torch `clip_grad_value_`).
//!
//! # Non-finite gradients
//!
//! [`NonFinite`] chooses what happens when some gradient element is NaN or ±Inf:
//!
//! - [`NonFinite::Skip`]: report it and touch nothing, so the caller can skip the update, as torch's
//!   `GradScaler` skips `optimizer.step()` when it finds Inf/NaN gradients. Clipping by norm knows
//!   from the total norm (NaN or +Inf); clipping by value checks every tensor with
//!   [`all_finite`](crate::vector::all_finite) first.
//! - [`NonFinite::Propagate`]: do what torch does with `error_if_nonfinite = False`. By norm, the
//!   total norm is NaN or +Inf and the factor `max_norm / (total + 1e-6)` is NaN or 0; it is
//!   applied (NaN is not clamped away), so every gradient becomes NaN (a NaN total) or 0 with NaN
//!   where an element was ±Inf (an infinite total), and the update that follows propagates that
//!   into the parameters. By value, NaN elements stay NaN and ±Inf are clamped to ±`clip`.
//!
//! In both cases the report says whether a non-finite value was seen.
//!
//! # Errors
//!
//! `max_norm` must be finite and `≥ 0`; `clip` must be `≥ 0` (+Inf allowed, a no-op). A bad value
//! returns [`Error::InvalidHyperParameter`] before anything is read or written.

use crate::vector::{all_finite_with, norm2_with, scale_with};
use crate::{Element, Error, Exec};

/// What clipping does when a gradient holds NaN or ±Inf (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// Touch no gradient and report it, so the caller skips the update (torch's `GradScaler`).
    Skip,
    /// Clip as if the values were ordinary numbers, letting NaN spread (torch's
    /// `clip_grad_norm_` with `error_if_nonfinite = False`, and `clip_grad_value_`).
    Propagate,
}

/// What [`clip_grad_norm`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormClip<T> {
    /// The 2-norm of all gradients together before clipping (NaN or +Inf if an element was).
    pub total_norm: T,
    /// The factor the gradients were multiplied by: 1 when they were within bounds or skipped;
    /// under [`NonFinite::Propagate`] with a non-finite norm, NaN or 0.
    pub factor: T,
    /// Whether the gradients were left untouched because of a non-finite norm
    /// ([`NonFinite::Skip`]).
    pub skipped: bool,
}

impl<T: Element> NormClip<T> {
    /// Whether every gradient element was finite (the total norm is).
    pub fn finite(&self) -> bool {
        self.total_norm.is_finite()
    }

    /// Whether the gradients were multiplied by a factor other than 1.
    pub fn clipped(&self) -> bool {
        self.factor != T::one()
    }
}

/// What [`clip_grad_value`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueClip {
    /// Elements that were changed (finite beyond the bound, or ±Inf); 0 when skipped.
    pub clipped: usize,
    /// Whether some element was NaN or ±Inf.
    pub nonfinite: bool,
    /// Whether the gradients were left untouched because of a non-finite element
    /// ([`NonFinite::Skip`]).
    pub skipped: bool,
}

/// The 2-norm of all `grads` together with the context `exec` (NaN if an element is NaN, else +Inf if one is
/// infinite): one [`norm2_with`] per tensor, combined in the same pass as `√(Σ nᵢ²)` in `f64`,
/// rescaled by the largest norm so far (as LAPACK's `dnrm2` does) so no square can overflow.
pub fn global_norm_with<T: Element, G: AsRef<[T]>>(exec: &Exec, grads: &[G]) -> T {
    norm_of(exec, grads.iter().map(|g| g.as_ref()))
}

/// [`global_norm_with`] over any sequence of tensors.
pub(crate) fn norm_of<'g, T: Element>(exec: &Exec, grads: impl Iterator<Item = &'g [T]>) -> T {
    // Invariant: Σ nᵢ² over the tensors seen = scale²·ssq, with every nᵢ ≤ scale.
    let (mut scale, mut ssq) = (0.0_f64, 0.0_f64);
    let mut nan = false;
    for g in grads {
        let n = norm2_with(exec, g).widen();
        if n.is_nan() {
            nan = true;
        } else if n > scale {
            // Also reached by +Inf, which then stays the scale.
            let r = scale / n;
            ssq = 1.0 + ssq * r * r;
            scale = n;
        } else if n > 0.0 {
            let r = n / scale;
            ssq += r * r;
        }
    }
    if nan {
        return T::nan();
    }
    if scale == 0.0 || scale.is_infinite() {
        return T::from_f64_round(scale);
    }
    T::from_f64_round(scale * libm::sqrt(ssq))
}

/// torch's `clip_grad_norm_` factor `max_norm / (total + 1e-6)`, clamped to at most 1 (a NaN
/// coefficient stays NaN).
pub(crate) fn clip_factor<T: Element>(max_norm: T, total_norm: T) -> T {
    let coef = max_norm / (total_norm + T::from_f64_round(1e-6));
    if coef > T::one() {
        T::one()
    } else {
        coef
    }
}

/// [`global_norm_with`] on the active backend.
pub fn global_norm<T: Element, G: AsRef<[T]>>(grads: &[G]) -> T {
    global_norm_with(&Exec::active(), grads)
}

/// Scales all `grads` together so that their 2-norm is at most about `max_norm`, as torch's
/// `clip_grad_norm_` (see the [module documentation](self)), with the context `exec`.
pub fn clip_grad_norm_with<T: Element, G: AsRef<[T]> + AsMut<[T]>>(
    exec: &Exec,
    grads: &mut [G],
    max_norm: T,
    policy: NonFinite,
) -> Result<NormClip<T>, Error> {
    if !(max_norm.is_finite() && max_norm >= T::zero()) {
        return Err(Error::InvalidHyperParameter {
            name: "max_norm",
            requirement: "must be finite and non-negative",
        });
    }
    let total_norm = global_norm_with(exec, grads);
    if !total_norm.is_finite() && policy == NonFinite::Skip {
        return Ok(NormClip {
            total_norm,
            factor: T::one(),
            skipped: true,
        });
    }
    let factor = clip_factor(max_norm, total_norm);
    if factor != T::one() {
        for g in grads.iter_mut() {
            scale_with(exec, factor, g.as_mut());
        }
    }
    Ok(NormClip {
        total_norm,
        factor,
        skipped: false,
    })
}

/// [`clip_grad_norm_with`] on the active backend.
pub fn clip_grad_norm<T: Element, G: AsRef<[T]> + AsMut<[T]>>(
    grads: &mut [G],
    max_norm: T,
    policy: NonFinite,
) -> Result<NormClip<T>, Error> {
    clip_grad_norm_with(&Exec::active(), grads, max_norm, policy)
}

/// Clamps every gradient element to `[-clip, clip]`, as torch's `clip_grad_value_`, with the
/// non-finite `policy` (see the [module documentation](self)); the finiteness check of
/// [`NonFinite::Skip`] runs with the context `exec`.
pub fn clip_grad_value_with<T: Element, G: AsRef<[T]> + AsMut<[T]>>(
    exec: &Exec,
    grads: &mut [G],
    clip: T,
    policy: NonFinite,
) -> Result<ValueClip, Error> {
    if clip.is_nan() || clip < T::zero() {
        return Err(Error::InvalidHyperParameter {
            name: "clip",
            requirement: "must be non-negative (not NaN)",
        });
    }
    if policy == NonFinite::Skip {
        for g in grads.iter() {
            if !all_finite_with(exec, g.as_ref()) {
                return Ok(ValueClip {
                    clipped: 0,
                    nonfinite: true,
                    skipped: true,
                });
            }
        }
    }
    let (lo, hi) = (-clip, clip);
    let mut report = ValueClip {
        clipped: 0,
        nonfinite: false,
        skipped: false,
    };
    for g in grads.iter_mut() {
        for x in g.as_mut() {
            let v = *x;
            if !v.is_finite() {
                report.nonfinite = true;
            }
            // NaN fails both comparisons and stays NaN, as in torch's clamp.
            if v > hi {
                *x = hi;
                report.clipped += 1;
            } else if v < lo {
                *x = lo;
                report.clipped += 1;
            }
        }
    }
    Ok(report)
}

/// [`clip_grad_value_with`] on the active backend.
pub fn clip_grad_value<T: Element, G: AsRef<[T]> + AsMut<[T]>>(
    grads: &mut [G],
    clip: T,
    policy: NonFinite,
) -> Result<ValueClip, Error> {
    clip_grad_value_with(&Exec::active(), grads, clip, policy)
}
