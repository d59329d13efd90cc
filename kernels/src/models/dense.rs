//! Dense (fully connected) layer `Y = X·W + b`, forward and backward, on the matrix-multiply
//! micro-kernel.

use super::gemm::MatMul;
use crate::arch::driver::zip;
use crate::arch::Simd;
use crate::arch::{run_on, Kernel};
use crate::error::{check_shape, dim_product};
use crate::{Backend, Element, Error};

/// A dense layer's shape: `X: batch × inputs`, `W: inputs × outputs`, `b: outputs`,
/// `Y: batch × outputs`, all row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dense {
    /// Rows of `X` and `Y`.
    pub batch: usize,
    /// Columns of `X`, rows of `W`.
    pub inputs: usize,
    /// Columns of `W` and `Y`, length of `b`.
    pub outputs: usize,
    /// The backend the layer runs on.
    pub backend: Backend,
}

impl Dense {
    /// A layer on the active backend.
    pub fn new(batch: usize, inputs: usize, outputs: usize) -> Self {
        Dense {
            batch,
            inputs,
            outputs,
            backend: Backend::active(),
        }
    }

    /// The same layer on `backend`.
    pub fn on(self, backend: Backend) -> Self {
        Dense { backend, ..self }
    }

    fn check<T>(
        &self,
        x: &[T],
        w: &[T],
        b_len: usize,
        y_name: &'static str,
        y_len: usize,
    ) -> Result<(), Error> {
        check_shape(
            "x",
            "batch × inputs",
            dim_product("batch", self.batch, self.inputs)?,
            x.len(),
        )?;
        check_shape(
            "w",
            "inputs × outputs",
            dim_product("inputs", self.inputs, self.outputs)?,
            w.len(),
        )?;
        check_shape("b", "outputs", self.outputs, b_len)?;
        check_shape(
            y_name,
            "batch × outputs",
            dim_product("batch", self.batch, self.outputs)?,
            y_len,
        )
    }

    /// `y = x·w + b`: each output starts from its bias and adds the products in order of `inputs`.
    pub fn forward<T: Element>(&self, x: &[T], w: &[T], b: &[T], y: &mut [T]) -> Result<(), Error> {
        self.check(x, w, b.len(), "y", y.len())?;
        self.backend.ensure_available()?;
        for row in y.chunks_exact_mut(self.outputs.max(1)) {
            row.copy_from_slice(b);
        }
        let mm = MatMul {
            accumulate: true,
            ..MatMul::new(self.batch, self.outputs, self.inputs)
        };
        mm.run_on(self.backend, x, w, y)
    }

    /// Backward pass from `dy = ∂L/∂y`: `dw = xᵀ·dy`, `db = Σ_rows dy`, and, if asked,
    /// `dx = dy·wᵀ`. The gradients are overwritten, not accumulated.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        x: &[T],
        w: &[T],
        dy: &[T],
        dx: Option<&mut [T]>,
        dw: &mut [T],
        db: &mut [T],
    ) -> Result<(), Error> {
        self.check(x, w, db.len(), "dy", dy.len())?;
        check_shape("dw", "inputs × outputs", w.len(), dw.len())?;
        if let Some(dx) = dx.as_deref() {
            check_shape("dx", "batch × inputs", x.len(), dx.len())?;
        }
        self.backend.ensure_available()?;
        let dw_mm = MatMul {
            trans_a: true,
            ..MatMul::new(self.inputs, self.outputs, self.batch)
        };
        dw_mm.run_on(self.backend, x, dy, dw)?;
        column_sums_on(self.backend, dy, self.outputs, db)?;
        if let Some(dx) = dx {
            let dx_mm = MatMul {
                trans_b: true,
                ..MatMul::new(self.batch, self.inputs, self.outputs)
            };
            dx_mm.run_on(self.backend, dy, w, dx)?;
        }
        Ok(())
    }
}

/// `out[j] = Σ_i m[i][j]` for a row-major matrix with `cols` columns, rows added in order.
pub fn column_sums_on<T: Element>(
    backend: Backend,
    m: &[T],
    cols: usize,
    out: &mut [T],
) -> Result<(), Error> {
    check_shape("out", "cols", cols, out.len())?;
    if cols == 0 {
        return Ok(());
    }
    if m.len() % cols != 0 {
        return Err(Error::InvalidDimension {
            name: "cols",
            requirement: "must divide the matrix length",
        });
    }
    run_on(backend, ColumnSums { m, out })
}

struct ColumnSums<'a, T> {
    m: &'a [T],
    out: &'a mut [T],
}

impl<T: Element> Kernel<T> for ColumnSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let cols = self.out.len();
        self.out.fill(T::zero());
        for row in self.m.chunks_exact(cols) {
            // SAFETY: `row` and `out` both have `cols` elements; `out` is exclusive.
            unsafe {
                zip(
                    s,
                    cols,
                    [self.out.as_mut_ptr()],
                    [row.as_ptr()],
                    #[inline(always)]
                    |[o], [r]| *o = s.add(*o, r),
                )
            }
        }
    }
}
