//! Convolution with a shared filter over patches (1-D and 2-D, stride and patch size as
//! parameters, no padding), sum/mean pooling, and the small CNN `conv → activation → pool`.
//!
//! Layouts (row-major): input `x: batch × channels × height × width`; filters
//! `w: filters × (channels·kh·kw)`; bias `filters`; output `z: batch × filters × positions`, where
//! `positions = out_h·out_w`, `out_h = (height − kh)/sh + 1`, `out_w = (width − kw)/sw + 1`.
//! A 1-D convolution is the case `height = kh = 1`. Each example is lowered to its patch matrix
//! (`positions × channels·kh·kw`, in caller-provided scratch) and multiplied on the matrix-multiply
//! micro-kernel.

use super::activation::{Activation, ActivationGrad};
use super::gemm::MatMul;
use crate::error::{check_shape, dim_product};
use crate::{vector, Backend, Element, Error, Exec};

/// Shape of a 2-D convolution (see the module documentation for layouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Examples.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (filters).
    pub filters: usize,
    /// Patch size `(kh, kw)`.
    pub kernel: (usize, usize),
    /// Stride `(sh, sw)`.
    pub stride: (usize, usize),
    /// The backend the products run on.
    pub backend: Backend,
}

impl Conv2d {
    /// A 2-D convolution on the active backend.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        filters: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
    ) -> Self {
        Conv2d {
            batch,
            channels,
            height,
            width,
            filters,
            kernel,
            stride,
            backend: Backend::active(),
        }
    }

    /// A 1-D convolution over `length` samples with patches of `patch` and step `stride`.
    pub fn conv1d(
        batch: usize,
        channels: usize,
        length: usize,
        filters: usize,
        patch: usize,
        stride: usize,
    ) -> Self {
        Self::new(batch, channels, 1, length, filters, (1, patch), (1, stride))
    }

    /// The same convolution on `backend`.
    pub fn on(self, backend: Backend) -> Self {
        Conv2d { backend, ..self }
    }

    fn validate_dims(&self) -> Result<(), Error> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let bad = |name, requirement| Err(Error::InvalidDimension { name, requirement });
        if kh == 0 || kw == 0 {
            return bad("kernel", "must be at least 1 × 1");
        }
        if sh == 0 || sw == 0 {
            return bad("stride", "must be at least 1 in each direction");
        }
        if kh > self.height || kw > self.width {
            return bad("kernel", "must fit inside the input (height × width)");
        }
        Ok(())
    }

    /// Output height and width.
    pub fn out_size(&self) -> (usize, usize) {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        (
            (self.height.saturating_sub(kh)) / sh.max(1) + 1,
            (self.width.saturating_sub(kw)) / sw.max(1) + 1,
        )
    }

    /// Output positions per filter: `out_h · out_w`.
    pub fn positions(&self) -> usize {
        let (h, w) = self.out_size();
        h.saturating_mul(w)
    }

    /// Elements of one patch (= one filter): `channels · kh · kw`.
    pub fn patch_len(&self) -> usize {
        self.channels
            .saturating_mul(self.kernel.0)
            .saturating_mul(self.kernel.1)
    }

    /// Scratch elements `forward` needs (one example's patch matrix); `backward` needs twice this.
    pub fn scratch_len(&self) -> usize {
        self.positions().saturating_mul(self.patch_len())
    }

    fn check<T>(
        &self,
        x: &[T],
        w: &[T],
        bias_len: usize,
        z_name: &'static str,
        z_len: usize,
    ) -> Result<(), Error> {
        self.validate_dims()?;
        let input = dim_product("height", self.height, self.width)?;
        let input = dim_product("channels", self.channels, input)?;
        check_shape(
            "x",
            "batch × channels × height × width",
            dim_product("batch", self.batch, input)?,
            x.len(),
        )?;
        check_shape(
            "w",
            "filters × channels·kh·kw",
            dim_product("filters", self.filters, self.patch_len())?,
            w.len(),
        )?;
        check_shape("bias", "filters", self.filters, bias_len)?;
        let out = dim_product("filters", self.filters, self.positions())?;
        check_shape(
            z_name,
            "batch × filters × positions",
            dim_product("batch", self.batch, out)?,
            z_len,
        )
    }

    /// Example `xb`'s patch matrix (`positions × patch_len`): `xb` itself where the patches are
    /// consecutive runs of one row (one channel, height 1, stride = patch width: the 1-D
    /// non-overlapping case), else written into `cols` by [`Conv2d::im2col`].
    fn patches<'a, T: Element>(&self, xb: &'a [T], cols: &'a mut [T]) -> &'a [T] {
        if self.channels == 1 && self.height == 1 && self.stride.1 == self.kernel.1 {
            &xb[..self.positions() * self.patch_len()]
        } else {
            self.im2col(xb, cols);
            cols
        }
    }

    /// Writes example `xb`'s patch matrix (`positions × patch_len`) into `cols`.
    fn im2col<T: Element>(&self, xb: &[T], cols: &mut [T]) {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (oh, ow) = self.out_size();
        let (h, w) = (self.height, self.width);
        let mut at = 0;
        for i in 0..oh {
            for j in 0..ow {
                for c in 0..self.channels {
                    for a in 0..kh {
                        let row = c * h * w + (i * sh + a) * w + j * sw;
                        cols[at..at + kw].copy_from_slice(&xb[row..row + kw]);
                        at += kw;
                    }
                }
            }
        }
    }

    /// Adds the patch-matrix gradient `dcols` back onto example gradient `dxb`.
    fn col2im_add<T: Element>(&self, dcols: &[T], dxb: &mut [T]) {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (oh, ow) = self.out_size();
        let (h, w) = (self.height, self.width);
        let mut at = 0;
        for i in 0..oh {
            for j in 0..ow {
                for c in 0..self.channels {
                    for a in 0..kh {
                        let row = c * h * w + (i * sh + a) * w + j * sw;
                        for (d, &g) in dxb[row..row + kw].iter_mut().zip(&dcols[at..at + kw]) {
                            *d = *d + g;
                        }
                        at += kw;
                    }
                }
            }
        }
    }

    /// `z[b][f][p] = <w[f], patch_p(x[b])> + bias[f]` (the sum over the patch first, then the bias).
    pub fn forward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        bias: &[T],
        z: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        self.check(x, w, bias.len(), "z", z.len())?;
        check_shape(
            "scratch",
            "Conv2d::scratch_len()",
            self.scratch_len(),
            scratch.len(),
        )?;
        self.backend.ensure_available()?;
        let (input, out, j, k) = (
            x.len() / self.batch.max(1),
            self.filters * self.positions(),
            self.positions(),
            self.patch_len(),
        );
        let mm = MatMul {
            trans_b: true,
            ..MatMul::new(self.filters, j, k)
        };
        for b in 0..self.batch {
            let patches = self.patches(&x[b * input..(b + 1) * input], scratch);
            let zb = &mut z[b * out..(b + 1) * out];
            mm.run_on(self.backend, w, patches, zb)?;
            for (row, &bf) in zb.chunks_exact_mut(j.max(1)).zip(bias) {
                for v in row {
                    *v = *v + bf;
                }
            }
        }
        Ok(())
    }

    /// Backward pass from `dz`: `dw = Σ_b dz_b · patches_b`, `dbias[f] = Σ_{b,p} dz[b][f][p]`,
    /// and, if asked, `dx` (overwritten). `scratch` holds `2 · scratch_len()` elements.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        dz: &[T],
        mut dx: Option<&mut [T]>,
        dw: &mut [T],
        dbias: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        self.check(x, w, dbias.len(), "dz", dz.len())?;
        check_shape("dw", "filters × channels·kh·kw", w.len(), dw.len())?;
        if let Some(dx) = dx.as_deref() {
            check_shape("dx", "batch × channels × height × width", x.len(), dx.len())?;
        }
        check_shape(
            "scratch",
            "2 · Conv2d::scratch_len()",
            2 * self.scratch_len(),
            scratch.len(),
        )?;
        let exec = Exec::on(self.backend)?;
        let (input, out, j, k) = (
            x.len() / self.batch.max(1),
            self.filters * self.positions(),
            self.positions(),
            self.patch_len(),
        );
        let (cols, dcols) = scratch.split_at_mut(self.scratch_len());
        if self.batch == 0 {
            dw.fill(T::zero());
        }
        dbias.fill(T::zero());
        for b in 0..self.batch {
            let patches = self.patches(&x[b * input..(b + 1) * input], cols);
            let dzb = &dz[b * out..(b + 1) * out];
            let dw_mm = MatMul {
                accumulate: b > 0,
                ..MatMul::new(self.filters, k, j)
            };
            dw_mm.run_on(self.backend, dzb, patches, dw)?;
            for (db, row) in dbias.iter_mut().zip(dzb.chunks_exact(j.max(1))) {
                *db = *db + vector::sum_with(&exec, row);
            }
            if let Some(dx) = dx.as_deref_mut() {
                let dcols_mm = MatMul {
                    trans_a: true,
                    ..MatMul::new(j, k, self.filters)
                };
                dcols_mm.run_on(self.backend, dzb, w, dcols)?;
                let dxb = &mut dx[b * input..(b + 1) * input];
                dxb.fill(T::zero());
                self.col2im_add(dcols, dxb);
            }
        }
        Ok(())
    }
}

/// Pooling over the positions of each (example, filter) row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// `out = Σ_p z[p]`.
    Sum,
    /// `out = Σ_p z[p] / positions`.
    Mean,
}

impl Pool {
    /// `out[r] = pool(z[r·positions .. (r+1)·positions])` for every row `r`.
    pub fn forward_on<T: Element>(
        self,
        backend: Backend,
        positions: usize,
        z: &[T],
        out: &mut [T],
    ) -> Result<(), Error> {
        check_shape(
            "z",
            "rows × positions",
            dim_product("positions", out.len(), positions)?,
            z.len(),
        )?;
        let exec = Exec::on(backend)?;
        let scale = self.scale::<T>(positions);
        for (o, row) in out.iter_mut().zip(z.chunks_exact(positions.max(1))) {
            *o = vector::sum_with(&exec, row) * scale;
        }
        Ok(())
    }

    /// `dz[r·positions + p] = dout[r]` (Sum) or `dout[r] / positions` (Mean).
    pub fn backward<T: Element>(
        self,
        positions: usize,
        dout: &[T],
        dz: &mut [T],
    ) -> Result<(), Error> {
        check_shape(
            "dz",
            "rows × positions",
            dim_product("positions", dout.len(), positions)?,
            dz.len(),
        )?;
        let scale = self.scale::<T>(positions);
        for (&d, row) in dout.iter().zip(dz.chunks_exact_mut(positions.max(1))) {
            row.fill(d * scale);
        }
        Ok(())
    }

    fn scale<T: Element>(self, positions: usize) -> T {
        match self {
            Pool::Sum => T::one(),
            Pool::Mean => T::one() / T::from_f64_round(positions.max(1) as f64),
        }
    }
}

/// The workspace of [`PatchCnn`] split into pre-activations, activations and conv scratch.
type WorkspaceParts<'w, T> = (&'w mut [T], &'w mut [T], &'w mut [T]);

/// The small CNN: `out[b][f] = pool_p φ(conv(x)[b][f][p])`, one pooled feature per filter.
/// The local-signal-adaptivity model is `Conv2d::conv1d(batch, 1, k·d, 1, d, d)` with a zero
/// conv bias, `Activation::SoftThreshold { bias: b }` and `Pool::Sum`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PatchCnn<T> {
    /// The convolution.
    pub conv: Conv2d,
    /// The activation after it (its parameter's gradient is returned by `backward`).
    pub activation: Activation<T>,
    /// The pooling over positions.
    pub pool: Pool,
}

impl<T: Element> PatchCnn<T> {
    /// Workspace elements: pre-activations and activations (`2 · batch·filters·positions`) and the
    /// convolution's backward scratch (`2 · positions · patch_len`).
    pub fn workspace_len(&self) -> usize {
        let z = self
            .conv
            .batch
            .saturating_mul(self.conv.filters)
            .saturating_mul(self.conv.positions());
        z.saturating_mul(2)
            .saturating_add(self.conv.scratch_len().saturating_mul(2))
    }

    fn split<'w>(&self, workspace: &'w mut [T]) -> Result<WorkspaceParts<'w, T>, Error> {
        check_shape(
            "workspace",
            "PatchCnn::workspace_len()",
            self.workspace_len(),
            workspace.len(),
        )?;
        let z = self.conv.batch * self.conv.filters * self.conv.positions();
        let (pre, rest) = workspace.split_at_mut(z);
        let (post, scratch) = rest.split_at_mut(z);
        Ok((pre, post, scratch))
    }

    /// Forward pass: `out` is `batch × filters`.
    pub fn forward(
        &self,
        x: &[T],
        w: &[T],
        bias: &[T],
        out: &mut [T],
        workspace: &mut [T],
    ) -> Result<(), Error> {
        let (pre, post, scratch) = self.split(workspace)?;
        check_shape(
            "out",
            "batch × filters",
            dim_product("batch", self.conv.batch, self.conv.filters)?,
            out.len(),
        )?;
        let one_example = self.conv.scratch_len();
        self.conv
            .forward(x, w, bias, pre, &mut scratch[..one_example])?;
        self.activation.forward_on(self.conv.backend, pre, post)?;
        self.pool
            .forward_on(self.conv.backend, self.conv.positions(), post, out)
    }

    /// Backward pass after `forward` with the same inputs, from `dout = ∂L/∂out`: writes `dw`,
    /// `dbias` and (if asked) `dx`; returns the activation parameter's gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        x: &[T],
        w: &[T],
        dout: &[T],
        dx: Option<&mut [T]>,
        dw: &mut [T],
        dbias: &mut [T],
        workspace: &mut [T],
    ) -> Result<ActivationGrad<T>, Error> {
        let (pre, post, scratch) = self.split(workspace)?;
        check_shape(
            "dout",
            "batch × filters",
            dim_product("batch", self.conv.batch, self.conv.filters)?,
            dout.len(),
        )?;
        // d(post) from the pooling, then through φ in place (post becomes d(pre)).
        self.pool.backward(self.conv.positions(), dout, post)?;
        let grad = self
            .activation
            .backward_in_place_on(self.conv.backend, pre, post)?;
        self.conv.backward(x, w, post, dx, dw, dbias, scratch)?;
        Ok(grad)
    }
}
