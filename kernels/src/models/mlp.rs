//! Two-layer perceptron with softmax cross-entropy: `x → dense(D→H) → φ → dense(H→C) → softmax`.

use super::activation::{Activation, ActivationGrad};
use super::dense::Dense;
use super::softmax::SoftmaxCrossEntropy;
use crate::error::{check_shape, dim_product};
use crate::{Backend, Element, Error};

/// A two-layer MLP. Parameters live in one flat slice (so one optimizer call updates them all):
/// `[W1 (inputs × hidden) | b1 (hidden) | W2 (hidden × classes) | b2 (classes)]`, row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mlp<T> {
    /// Input features `D`.
    pub inputs: usize,
    /// Hidden units `H`.
    pub hidden: usize,
    /// Classes `C` (at least 1).
    pub classes: usize,
    /// Hidden activation (its own parameters, if any, are fixed here: their gradient is
    /// returned by `backward` but not part of the flat parameter vector).
    pub activation: Activation<T>,
    /// The backend the layers run on.
    pub backend: Backend,
}

/// Offsets of the four parameter blocks and the six workspace blocks.
struct Layout {
    w1: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    end: usize,
}

impl<T: Element> Mlp<T> {
    /// An MLP on the active backend.
    pub fn new(inputs: usize, hidden: usize, classes: usize, activation: Activation<T>) -> Self {
        Mlp {
            inputs,
            hidden,
            classes,
            activation,
            backend: Backend::active(),
        }
    }

    fn params(&self) -> Result<Layout, Error> {
        let w1 = dim_product("hidden", self.inputs, self.hidden)?;
        let w2 = dim_product("classes", self.hidden, self.classes)?;
        let b1 = w1;
        let w2_at = b1 + self.hidden;
        let b2 = w2_at + w2;
        Ok(Layout {
            w1: 0,
            b1,
            w2: w2_at,
            b2,
            end: b2 + self.classes,
        })
    }

    /// Length of the flat parameter (and gradient) vector.
    pub fn param_len(&self) -> usize {
        self.params().map_or(usize::MAX, |l| l.end)
    }

    /// Length of the workspace for `batch` examples: `3·batch·hidden + 2·batch·classes + batch`
    /// elements (pre-activations, activations, their gradient, logits, logit gradients, per-example
    /// losses).
    pub fn workspace_len(&self, batch: usize) -> usize {
        batch.saturating_mul(
            3usize
                .saturating_mul(self.hidden)
                .saturating_add(2usize.saturating_mul(self.classes))
                .saturating_add(1),
        )
    }

    fn layers(&self, batch: usize) -> (Dense, Dense, SoftmaxCrossEntropy) {
        (
            Dense::new(batch, self.inputs, self.hidden).on(self.backend),
            Dense::new(batch, self.hidden, self.classes).on(self.backend),
            SoftmaxCrossEntropy::new(batch, self.classes),
        )
    }

    fn check(
        &self,
        batch: usize,
        params: &[T],
        x: &[T],
        labels: &[u32],
        workspace: &[T],
    ) -> Result<Layout, Error> {
        let l = self.params()?;
        check_shape("params", "mlp parameter layout", l.end, params.len())?;
        check_shape(
            "x",
            "batch × inputs",
            dim_product("batch", batch, self.inputs)?,
            x.len(),
        )?;
        check_shape("labels", "batch", batch, labels.len())?;
        check_shape(
            "workspace",
            "Mlp::workspace_len(batch)",
            self.workspace_len(batch),
            workspace.len(),
        )?;
        Ok(l)
    }

    /// Forward pass for `batch` examples: fills the workspace and returns the loss
    /// `Σ w_i ℓ_i` (mean cross-entropy without weights). `logits` gives the result back.
    pub fn forward(
        &self,
        batch: usize,
        params: &[T],
        x: &[T],
        labels: &[u32],
        weights: Option<&[T]>,
        workspace: &mut [T],
    ) -> Result<T, Error> {
        let l = self.check(batch, params, x, labels, workspace)?;
        let (d1, d2, ce) = self.layers(batch);
        let (bh, bc) = (batch * self.hidden, batch * self.classes);
        let (z1, rest) = workspace.split_at_mut(bh);
        let (h, rest) = rest.split_at_mut(bh);
        let (_dh, rest) = rest.split_at_mut(bh);
        let (logits, rest) = rest.split_at_mut(bc);
        let (dlogits, losses) = rest.split_at_mut(bc);
        d1.forward(x, &params[l.w1..l.b1], &params[l.b1..l.w2], z1)?;
        self.activation.forward_on(self.backend, z1, h)?;
        d2.forward(h, &params[l.w2..l.b2], &params[l.b2..l.end], logits)?;
        ce.forward_backward(logits, labels, weights, losses, Some(dlogits))
    }

    /// The logits of the last `forward` (`batch × classes`).
    pub fn logits<'w>(&self, batch: usize, workspace: &'w [T]) -> &'w [T] {
        let bh = batch * self.hidden;
        &workspace[3 * bh..3 * bh + batch * self.classes]
    }

    /// Backward pass after `forward` with the same inputs: writes the gradient of the loss into
    /// `grads` (same layout as `params`) and returns the activation's parameter gradient.
    pub fn backward(
        &self,
        batch: usize,
        params: &[T],
        x: &[T],
        labels: &[u32],
        workspace: &mut [T],
        grads: &mut [T],
    ) -> Result<ActivationGrad<T>, Error> {
        let l = self.check(batch, params, x, labels, workspace)?;
        check_shape("grads", "mlp parameter layout", l.end, grads.len())?;
        let (d1, d2, _) = self.layers(batch);
        let (bh, bc) = (batch * self.hidden, batch * self.classes);
        let (z1, rest) = workspace.split_at_mut(bh);
        let (h, rest) = rest.split_at_mut(bh);
        let (dh, rest) = rest.split_at_mut(bh);
        let h: &[T] = h;
        let (_logits, rest) = rest.split_at_mut(bc);
        let (dlogits, _losses) = rest.split_at_mut(bc);
        let (g1, g2) = grads.split_at_mut(l.w2);
        let (gw1, gb1) = g1.split_at_mut(l.b1);
        let (gw2, gb2) = g2.split_at_mut(l.b2 - l.w2);
        d2.backward(h, &params[l.w2..l.b2], dlogits, Some(dh), gw2, gb2)?;
        // dz1 = dh ⊙ φ'(z1), in place in dh.
        let act_grad = self.activation.backward_in_place_on(self.backend, z1, dh)?;
        d1.backward(x, &params[l.w1..l.b1], dh, None, gw1, gb1)?;
        Ok(act_grad)
    }
}
