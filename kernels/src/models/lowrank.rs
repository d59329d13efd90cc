//! Low-rank factorization for matrix sensing, and least squares for a linear model.
//!
//! Matrix sensing with `m` measurement matrices `A_i` (`n1 × n2` each, stored contiguously as
//! `m × n1 × n2`) and targets `y_i`:
//! ```text
//! symmetric (n1 = n2 = n, U: n × r):   r_i = <A_i, U·Uᵀ> − y_i,   ∇_U = Σ r_i (A_i + A_iᵀ)·U
//! asymmetric (U: n1 × r, V: n2 × r):   r_i = <A_i, U·Vᵀ> − y_i,   ∇_U = Σ r_i A_i·V,  ∇_V = Σ r_i A_iᵀ·U
//! ```
//! the gradients of `½ Σ r_i²`. Each evaluation costs two small matrix products and two passes
//! over the measurements (`<A_i, X>` as a dot product, `S = Σ r_i A_i` as a matrix–vector
//! product), all on the kernels.

use super::gemm::MatMul;
use crate::error::{check_shape, dim_product};
use crate::{vector, Backend, Element, Error, Exec};

/// A matrix-sensing problem's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sensing {
    /// Rows of each measurement matrix (and of `U`).
    pub rows: usize,
    /// Columns of each measurement matrix (and rows of `V`; equal to `rows` for the symmetric form).
    pub cols: usize,
    /// Columns of the factors.
    pub rank: usize,
    /// Number of measurements.
    pub measurements: usize,
    /// The backend the products run on.
    pub backend: Backend,
}

impl Sensing {
    /// The symmetric problem `X = U·Uᵀ`, `U: n × rank`.
    pub fn symmetric(n: usize, rank: usize, measurements: usize) -> Self {
        Sensing {
            rows: n,
            cols: n,
            rank,
            measurements,
            backend: Backend::active(),
        }
    }

    /// The asymmetric problem `X = U·Vᵀ`, `U: rows × rank`, `V: cols × rank`.
    pub fn asymmetric(rows: usize, cols: usize, rank: usize, measurements: usize) -> Self {
        Sensing {
            rows,
            cols,
            rank,
            measurements,
            backend: Backend::active(),
        }
    }

    /// The same problem on `backend`.
    pub fn on(self, backend: Backend) -> Self {
        Sensing { backend, ..self }
    }

    /// Scratch elements for [`Sensing::residuals`] and the gradients: one `rows × cols` matrix.
    pub fn scratch_len(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }

    fn check<T>(&self, a: &[T], u: &[T], v: &[T], scratch: &[T]) -> Result<usize, Error> {
        let nn = dim_product("cols", self.rows, self.cols)?;
        check_shape(
            "a",
            "measurements × rows × cols",
            dim_product("measurements", self.measurements, nn)?,
            a.len(),
        )?;
        check_shape(
            "u",
            "rows × rank",
            dim_product("rank", self.rows, self.rank)?,
            u.len(),
        )?;
        check_shape(
            "v",
            "cols × rank",
            dim_product("rank", self.cols, self.rank)?,
            v.len(),
        )?;
        check_shape("scratch", "rows × cols", nn, scratch.len())?;
        self.backend.ensure_available()?;
        Ok(nn)
    }

    /// Writes `r_i = <A_i, U·Vᵀ> − y_i` (pass `v = u` for the symmetric form) and returns
    /// `½ Σ r_i²`. `scratch` receives `U·Vᵀ`.
    pub fn residuals<T: Element>(
        &self,
        a: &[T],
        y: &[T],
        u: &[T],
        v: &[T],
        residuals: &mut [T],
        scratch: &mut [T],
    ) -> Result<T, Error> {
        let nn = self.check(a, u, v, scratch)?;
        check_shape("y", "measurements", self.measurements, y.len())?;
        check_shape(
            "residuals",
            "measurements",
            self.measurements,
            residuals.len(),
        )?;
        let uv = MatMul {
            trans_b: true,
            ..MatMul::new(self.rows, self.cols, self.rank)
        };
        uv.run_on(self.backend, u, v, scratch)?;
        let exec = Exec::on(self.backend)?;
        for ((r, &yi), ai) in residuals.iter_mut().zip(y).zip(a.chunks_exact(nn.max(1))) {
            *r = vector::dot_with(&exec, ai, scratch)? - yi;
        }
        Ok(vector::sum_squares_with(&exec, residuals) / (T::one() + T::one()))
    }

    /// `S = Σ r_i A_i` into `scratch` (`rows × cols`).
    fn weighted_sum<T: Element>(
        &self,
        a: &[T],
        residuals: &[T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        check_shape(
            "residuals",
            "measurements",
            self.measurements,
            residuals.len(),
        )?;
        // S (as a vector of rows·cols) = Aᵀ r with A viewed as measurements × (rows·cols).
        let mm = MatMul {
            trans_a: true,
            ..MatMul::new(self.rows * self.cols, 1, self.measurements)
        };
        mm.run_on(self.backend, a, residuals, scratch)
    }

    /// Symmetric gradient `∇_U = S·U + Sᵀ·U` with `S = Σ r_i A_i`.
    pub fn gradient_symmetric<T: Element>(
        &self,
        a: &[T],
        u: &[T],
        residuals: &[T],
        grad_u: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        if self.rows != self.cols {
            return Err(Error::InvalidDimension {
                name: "cols",
                requirement: "must equal rows for the symmetric form",
            });
        }
        self.check(a, u, u, scratch)?;
        check_shape("grad_u", "rows × rank", u.len(), grad_u.len())?;
        self.weighted_sum(a, residuals, scratch)?;
        let n = self.rows;
        MatMul::new(n, self.rank, n).run_on(self.backend, scratch, u, grad_u)?;
        MatMul {
            trans_a: true,
            accumulate: true,
            ..MatMul::new(n, self.rank, n)
        }
        .run_on(self.backend, scratch, u, grad_u)
    }

    /// Asymmetric gradients `∇_U = S·V`, `∇_V = Sᵀ·U` with `S = Σ r_i A_i`.
    #[allow(clippy::too_many_arguments)]
    pub fn gradient_asymmetric<T: Element>(
        &self,
        a: &[T],
        u: &[T],
        v: &[T],
        residuals: &[T],
        grad_u: &mut [T],
        grad_v: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), Error> {
        self.check(a, u, v, scratch)?;
        check_shape("grad_u", "rows × rank", u.len(), grad_u.len())?;
        check_shape("grad_v", "cols × rank", v.len(), grad_v.len())?;
        self.weighted_sum(a, residuals, scratch)?;
        MatMul::new(self.rows, self.rank, self.cols).run_on(self.backend, scratch, v, grad_u)?;
        MatMul {
            trans_a: true,
            ..MatMul::new(self.cols, self.rank, self.rows)
        }
        .run_on(self.backend, scratch, u, grad_v)
    }
}

/// Least squares for a linear model `ŷ = X·w` (`X: batch × features`): writes the residuals
/// `r = X·w − y` and the gradient `Xᵀ·r` of the returned loss `½‖r‖²`.
#[allow(clippy::too_many_arguments)]
pub fn least_squares_on<T: Element>(
    backend: Backend,
    batch: usize,
    features: usize,
    x: &[T],
    w: &[T],
    y: &[T],
    residuals: &mut [T],
    grad: &mut [T],
) -> Result<T, Error> {
    check_shape(
        "x",
        "batch × features",
        dim_product("batch", batch, features)?,
        x.len(),
    )?;
    check_shape("w", "features", features, w.len())?;
    check_shape("y", "batch", batch, y.len())?;
    check_shape("residuals", "batch", batch, residuals.len())?;
    check_shape("grad", "features", features, grad.len())?;
    let exec = Exec::on(backend)?;
    MatMul::new(batch, 1, features).run_on(backend, x, w, residuals)?;
    for (r, &yi) in residuals.iter_mut().zip(y) {
        *r = *r - yi;
    }
    MatMul {
        trans_a: true,
        ..MatMul::new(features, 1, batch)
    }
    .run_on(backend, x, residuals, grad)?;
    Ok(vector::sum_squares_with(&exec, residuals) / (T::one() + T::one()))
}
