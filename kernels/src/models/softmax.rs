//! Softmax cross-entropy, numerically stable (log-sum-exp), with per-example and per-class losses
//! and the gradient of the logits.
//!
//! Per example `i` with logits `z` (one row of `classes`), label `y` and weight `w_i`:
//! ```text
//! lse = max(z) + ln Σ_c exp(z_c − max(z))
//! ℓ_i = lse − z_y
//! ∂L/∂z_c = w_i · (exp(z_c − lse) − [c = y])
//! L = Σ_i w_i ℓ_i          (w_i = 1/batch when no weights are given: the mean loss)
//! ```
//! `exp` and `ln` are `libm`'s on every target and backend, so results are identical everywhere
//! (this is O(batch·classes) work beside the O(batch·classes·hidden) products around it).

use crate::error::{check_shape, dim_product};
use crate::{Element, Error};

/// Shape of a softmax cross-entropy: `logits: batch × classes` row-major, `labels: batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxCrossEntropy {
    /// Examples.
    pub batch: usize,
    /// Classes (at least 1).
    pub classes: usize,
}

impl SoftmaxCrossEntropy {
    /// The loss for `batch` examples of `classes` classes.
    pub fn new(batch: usize, classes: usize) -> Self {
        SoftmaxCrossEntropy { batch, classes }
    }

    fn validate<T: Element>(
        &self,
        logits: &[T],
        labels: &[u32],
        weights: Option<&[T]>,
    ) -> Result<(), Error> {
        if self.classes == 0 {
            return Err(Error::InvalidDimension {
                name: "classes",
                requirement: "must be at least 1",
            });
        }
        check_shape(
            "logits",
            "batch × classes",
            dim_product("batch", self.batch, self.classes)?,
            logits.len(),
        )?;
        check_shape("labels", "batch", self.batch, labels.len())?;
        if labels.iter().any(|&y| y as usize >= self.classes) {
            return Err(Error::InvalidDimension {
                name: "labels",
                requirement: "must be < classes",
            });
        }
        if let Some(w) = weights {
            check_shape("weights", "batch", self.batch, w.len())?;
            if w.iter().any(|w| !w.is_finite() || *w < T::zero()) {
                return Err(Error::InvalidHyperParameter {
                    name: "weights",
                    requirement: "must be finite and >= 0",
                });
            }
        }
        Ok(())
    }

    /// The weighted loss `Σ w_i ℓ_i`; writes `ℓ_i` to `per_example` and, if given, the logits'
    /// gradient to `dlogits`. Without `weights`, `w_i = 1/batch`.
    pub fn forward_backward<T: Element>(
        &self,
        logits: &[T],
        labels: &[u32],
        weights: Option<&[T]>,
        per_example: &mut [T],
        mut dlogits: Option<&mut [T]>,
    ) -> Result<T, Error> {
        self.validate(logits, labels, weights)?;
        check_shape("per_example", "batch", self.batch, per_example.len())?;
        if let Some(d) = dlogits.as_deref() {
            check_shape("dlogits", "batch × classes", logits.len(), d.len())?;
        }
        let c = self.classes;
        let mean_weight = T::one() / T::from_f64_round(self.batch.max(1) as f64);
        let mut total = T::zero();
        for (i, (z, &y)) in logits.chunks_exact(c).zip(labels).enumerate() {
            let w = weights.map_or(mean_weight, |w| w[i]);
            let max =
                z.iter().copied().fold(
                    T::neg_infinity(),
                    |m, v| if v > m || v.is_nan() { v } else { m },
                );
            let sum = z.iter().fold(T::zero(), |acc, &v| acc + (v - max).exp());
            let lse = max + sum.ln();
            let loss = lse - z[y as usize];
            per_example[i] = loss;
            total = total + w * loss;
            if let Some(d) = dlogits.as_deref_mut() {
                for (k, (dk, &zk)) in d[i * c..(i + 1) * c].iter_mut().zip(z).enumerate() {
                    let p = (zk - lse).exp();
                    let target = if k == y as usize { T::one() } else { T::zero() };
                    *dk = w * (p - target);
                }
            }
        }
        Ok(total)
    }

    /// Per-class loss: `out[k] = Σ_{i: y_i = k} w_i ℓ_i / Σ_{i: y_i = k} w_i`, the weighted mean
    /// over the class's own examples (NaN for a class with no examples or zero total weight).
    pub fn per_class<T: Element>(
        &self,
        per_example: &[T],
        labels: &[u32],
        weights: Option<&[T]>,
        out: &mut [T],
    ) -> Result<(), Error> {
        check_shape("per_example", "batch", self.batch, per_example.len())?;
        check_shape("labels", "batch", self.batch, labels.len())?;
        check_shape("out", "classes", self.classes, out.len())?;
        if labels.iter().any(|&y| y as usize >= self.classes) {
            return Err(Error::InvalidDimension {
                name: "labels",
                requirement: "must be < classes",
            });
        }
        if let Some(w) = weights {
            check_shape("weights", "batch", self.batch, w.len())?;
        }
        // Two passes over out: weighted sums first (out), then divide by the weight totals,
        // accumulated in a second sweep so no scratch buffer is needed.
        out.fill(T::zero());
        for (i, (&l, &y)) in per_example.iter().zip(labels).enumerate() {
            let w = weights.map_or(T::one(), |w| w[i]);
            out[y as usize] = out[y as usize] + w * l;
        }
        for (k, o) in out.iter_mut().enumerate() {
            let total = labels
                .iter()
                .enumerate()
                .filter(|(_, &y)| y as usize == k)
                .fold(T::zero(), |acc, (i, _)| {
                    acc + weights.map_or(T::one(), |w| w[i])
                });
            *o = if total > T::zero() {
                *o / total
            } else {
                T::nan()
            };
        }
        Ok(())
    }
}
