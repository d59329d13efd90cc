//! Adafactor (Shazeer & Stern 2018) with `torch.optim.Adafactor`'s conventions: a factored second
//! moment for matrices (one accumulator per row and per column, `rows + cols` state instead of
//! `rows · cols`), an unfactored one for vectors, the relative step size `ρ_t = min(lr, 1/√t)`
//! scaled by the parameters' RMS, and update clipping by the update's RMS.

use super::non_negative;
use super::partials::Partials;
use crate::arch::driver::zip;
use crate::arch::{Kernel, Simd};
use crate::error::{check_len, check_shape, dim_product};
use crate::{Element, Error, Exec};

/// Adafactor, as `torch.optim.Adafactor(lr, beta2_decay, eps=(eps1, eps2), d, weight_decay)`.
///
/// Step `t` (from 1) on a parameter tensor `P` with gradient `G`, all scalars in `f64`:
/// ```text
/// w   = t^beta2_decay                      (the weight of the new square: 1 − β̂2_t)
/// ρ   = min(lr, 1/√t)
/// α   = max(eps2, RMS(P)) · ρ              (RMS of the parameters before this step)
/// matrix (rows × cols, row-major), state R (rows) then C (cols):
///     R_i ← R_i + w·(mean_j G_ij² − R_i)        C_j ← C_j + w·(mean_i G_ij² − C_j)
///     V_ij = R_i · C_j / max(mean_i R_i, eps1)
/// vector, state V (n):
///     V_i ← V_i + w·(G_i² − V_i)
/// U   = G · 1/√max(V, eps1²)               (elementwise)
/// D   = max(1, RMS(U)/d)
/// P   ← P·(1 − lr·weight_decay) − (α/D)·U
/// ```
/// `eps1 = None` is the compute type's machine epsilon, as torch's default. Like torch, the
/// means are means (not sums), `eps1` enters at `V` (not at `R` and `C`), and weight decay is
/// decoupled with the learning rate `lr` (not `ρ`).
///
/// **Numerics.** The elementwise work (`U` and the update) runs on the context's backend. The
/// reductions are summed in `f64` in orders fixed by the element indices, so every backend gives
/// the same bits: the RMS of `P` and of `U` add element `i`'s square (`i` the row-major index) to
/// partial sum `i mod 8` in index order and combine the eight partial sums pairwise,
/// `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`, as LAMB's norms do; the row and column means and
/// `mean R` are summed in element order. `U` is computed twice, once for its RMS and once in the
/// update, by the same IEEE operations in the same order (multiply, divide, NaN-propagating max,
/// square root, reciprocal, multiply), so both passes agree bit for bit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adafactor<T> {
    /// Learning rate: the cap of `ρ` and the weight-decay coefficient's factor (finite, `>= 0`).
    pub lr: T,
    /// Exponent of the second-moment weight `t^beta2_decay` (finite, `<= 0`).
    pub beta2_decay: T,
    /// `eps1` (finite, `>= 0`), or `None` for the compute type's machine epsilon.
    pub eps1: Option<T>,
    /// `eps2`, the floor of the parameters' RMS (finite, `>= 0`).
    pub eps2: T,
    /// Clipping threshold `d` (finite, `>= 1`).
    pub d: T,
    /// Decoupled weight decay `λ` (finite, `>= 0`).
    pub weight_decay: T,
}

impl<T: Element> Adafactor<T> {
    /// torch's defaults: `beta2_decay = −0.8`, `eps = (None, 1e-3)`, `d = 1`, no weight decay.
    pub fn new(lr: T) -> Self {
        Adafactor {
            lr,
            beta2_decay: T::from_f64_round(-0.8),
            eps1: None,
            eps2: T::from_f64_round(1e-3),
            d: T::one(),
            weight_decay: T::zero(),
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        if !(self.beta2_decay.is_finite() && self.beta2_decay <= T::zero()) {
            return Err(Error::InvalidHyperParameter {
                name: "beta2_decay",
                requirement: "must be finite and <= 0",
            });
        }
        if let Some(e) = self.eps1 {
            non_negative("eps1", e)?;
        }
        non_negative("eps2", self.eps2)?;
        if !(self.d.is_finite() && self.d >= T::one()) {
            return Err(Error::InvalidHyperParameter {
                name: "d",
                requirement: "must be finite and >= 1",
            });
        }
        non_negative("weight_decay", self.weight_decay)
    }

    /// The state length of a `rows × cols` matrix: `rows + cols` (row then column accumulators).
    pub const fn matrix_state_len(rows: usize, cols: usize) -> usize {
        rows + cols
    }

    fn eps1(&self) -> T {
        self.eps1.unwrap_or_else(T::epsilon)
    }

    /// The per-step scalars `(w, α)` from the parameters before the step.
    fn scalars(&self, step: u64, params: &[T]) -> Result<(f64, f64), Error> {
        self.validate()?;
        if step == 0 {
            return Err(Error::InvalidStep { step });
        }
        let t = step as f64;
        let w = libm::pow(t, self.beta2_decay.widen());
        let rho = self.lr.widen().min(1.0 / libm::sqrt(t));
        let rms = rms(params.len(), |sq| sq.add_squares(0, params));
        Ok((w, self.eps2.widen().max(rms) * rho))
    }

    /// One step on a `rows × cols` parameter matrix (row-major) with the factored state
    /// `state = [R (rows) | C (cols)]`, zero before step 1. Validates before writing.
    #[allow(clippy::too_many_arguments)]
    pub fn step_matrix(
        &self,
        exec: &Exec,
        step: u64,
        rows: usize,
        cols: usize,
        params: &mut [T],
        grads: &[T],
        state: &mut [T],
    ) -> Result<(), Error> {
        let n = dim_product("cols", rows, cols)?;
        check_shape("params", "rows × cols", n, params.len())?;
        check_len("grads", n, grads.len())?;
        check_len("state", rows + cols, state.len())?;
        let (w, alpha) = self.scalars(step, params)?;
        let w = T::from_f64_round(w);
        let (r, c) = state.split_at_mut(rows);
        for (i, ri) in r.iter_mut().enumerate() {
            let row = &grads[i * cols..(i + 1) * cols];
            let mean = T::from_f64_round(mean_square(row.iter().map(|g| g.widen())).unwrap_or(0.0));
            *ri = *ri + w * (mean - *ri);
        }
        for (j, cj) in c.iter_mut().enumerate() {
            let col = (0..rows).map(|i| grads[i * cols + j].widen());
            let mean = T::from_f64_round(mean_square(col).unwrap_or(0.0));
            *cj = *cj + w * (mean - *cj);
        }
        let r_mean = T::from_f64_round(mean(r.iter().map(|x| x.widen())).unwrap_or(0.0));
        let denom = if r_mean > self.eps1() || r_mean.is_nan() {
            r_mean
        } else {
            self.eps1()
        };
        let e2 = self.eps1() * self.eps1();
        let u_rms = rms(n, |sq| {
            for (i, &ri) in r.iter().enumerate() {
                let span = i * cols..(i + 1) * cols;
                exec.run(SquaresKernel {
                    start: span.start,
                    g: &grads[span],
                    v: Factor::Row { r: ri, c, denom },
                    e2,
                    sums: &mut *sq,
                });
            }
        });
        let step_size = T::from_f64_round(alpha / 1.0f64.max(u_rms / self.d.widen()));
        let keep = T::one() - self.lr * self.weight_decay;
        for (i, &ri) in r.iter().enumerate() {
            let span = i * cols..(i + 1) * cols;
            exec.run(UpdateKernel {
                p: &mut params[span.clone()],
                g: &grads[span],
                v: Factor::Row { r: ri, c, denom },
                e2,
                step: step_size,
                keep,
            });
        }
        Ok(())
    }

    /// One step on a parameter vector with the unfactored state `V` (`params.len()` elements,
    /// zero before step 1). Validates before writing.
    pub fn step_vector(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [T],
        grads: &[T],
        state: &mut [T],
    ) -> Result<(), Error> {
        check_len("grads", params.len(), grads.len())?;
        check_len("state", params.len(), state.len())?;
        let (w, alpha) = self.scalars(step, params)?;
        let w = T::from_f64_round(w);
        for (v, &g) in state.iter_mut().zip(grads) {
            *v = *v + w * (g * g - *v);
        }
        let e2 = self.eps1() * self.eps1();
        let u_rms = rms(params.len(), |sq| {
            exec.run(SquaresKernel {
                start: 0,
                g: grads,
                v: Factor::Full(state),
                e2,
                sums: sq,
            })
        });
        let step_size = T::from_f64_round(alpha / 1.0f64.max(u_rms / self.d.widen()));
        exec.run(UpdateKernel {
            p: params,
            g: grads,
            v: Factor::Full(state),
            e2,
            step: step_size,
            keep: T::one() - self.lr * self.weight_decay,
        });
        Ok(())
    }
}

/// `Σ x² / n` in `f64`, in order; `None` for no elements.
fn mean_square(xs: impl Iterator<Item = f64>) -> Option<f64> {
    mean(xs.map(|x| x * x))
}

/// `Σ x / n` in `f64`, in order; `None` for no elements.
fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0u64);
    for x in xs {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

/// `√(Σ x² / n)` over `n` elements whose squares `add` puts into [`Partials`]; 0 for none.
fn rms(n: usize, add: impl FnOnce(&mut Partials)) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let mut sq = Partials::default();
    add(&mut sq);
    libm::sqrt(sq.total() / n as f64)
}

/// `U = g · 1/√max(v, e2)` with the NaN-propagating max (the same operations in the same order
/// in every lane).
#[inline(always)]
fn update_vector<T: Element, S: Simd<T>>(s: S, v: S::V, e2: S::V, g: S::V) -> S::V {
    let v = s.max_nan(v, e2);
    s.mul(g, s.div(s.splat(T::one()), s.sqrt(v)))
}

/// Where the update's second-moment estimate comes from.
enum Factor<'a, T> {
    /// One matrix row: `V_j = r · C_j / denom`.
    Row { r: T, c: &'a [T], denom: T },
    /// The unfactored estimate itself.
    Full(&'a [T]),
}

/// `p ← p·keep − step·U` over one row or vector.
struct UpdateKernel<'a, T> {
    p: &'a mut [T],
    g: &'a [T],
    v: Factor<'a, T>,
    e2: T,
    step: T,
    keep: T,
}

impl<T: Element> Kernel<T> for UpdateKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.p.len();
        let (e2, step, keep) = (s.splat(self.e2), s.splat(self.step), s.splat(self.keep));
        let rw = [self.p.as_mut_ptr()];
        // SAFETY: `p`, `g` and the estimate's buffer (`c` or `V`) hold n elements each (checked
        // by the public functions); `p` is an exclusive borrow, so it overlaps nothing.
        unsafe {
            match self.v {
                Factor::Row { r, c, denom } => {
                    let (r, denom) = (s.splat(r), s.splat(denom));
                    zip(
                        s,
                        n,
                        rw,
                        [self.g.as_ptr(), c.as_ptr()],
                        #[inline(always)]
                        |[p]: &mut [S::V; 1], [g, c]: [S::V; 2]| {
                            let u = update_vector(s, s.div(s.mul(r, c), denom), e2, g);
                            *p = s.sub(s.mul(*p, keep), s.mul(step, u));
                        },
                    )
                }
                Factor::Full(v) => zip(
                    s,
                    n,
                    rw,
                    [self.g.as_ptr(), v.as_ptr()],
                    #[inline(always)]
                    |[p]: &mut [S::V; 1], [g, v]: [S::V; 2]| {
                        let u = update_vector(s, v, e2, g);
                        *p = s.sub(s.mul(*p, keep), s.mul(step, u));
                    },
                ),
            }
        }
    }
}

/// The squares of `U` over one row or vector into `sums`, the first element's index being
/// `start`: `U` a vector at a time on the backend into a stack block, then the block's squares in
/// index order.
struct SquaresKernel<'a, T> {
    start: usize,
    g: &'a [T],
    v: Factor<'a, T>,
    e2: T,
    sums: &'a mut Partials,
}

/// Elements per stack block of [`SquaresKernel`] (a multiple of every lane count).
const BLOCK: usize = 64;

impl<T: Element> Kernel<T> for SquaresKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.g.len();
        let e2 = s.splat(self.e2);
        let mut u = [T::zero(); BLOCK];
        for lo in (0..n).step_by(BLOCK) {
            let len = (n - lo).min(BLOCK);
            let g = self.g[lo..lo + len].as_ptr();
            // SAFETY: `u` holds BLOCK >= len elements; `g` and the estimate's buffer (`c` or `V`,
            // n elements each, checked by the public functions) hold lo + len <= n; `u` is a
            // local buffer, so it overlaps neither.
            unsafe {
                match self.v {
                    Factor::Row { r, c, denom } => {
                        let (r, denom) = (s.splat(r), s.splat(denom));
                        zip(
                            s,
                            len,
                            [u.as_mut_ptr()],
                            [g, c[lo..lo + len].as_ptr()],
                            #[inline(always)]
                            |[u]: &mut [S::V; 1], [g, c]: [S::V; 2]| {
                                *u = update_vector(s, s.div(s.mul(r, c), denom), e2, g);
                            },
                        )
                    }
                    Factor::Full(v) => zip(
                        s,
                        len,
                        [u.as_mut_ptr()],
                        [g, v[lo..lo + len].as_ptr()],
                        #[inline(always)]
                        |[u]: &mut [S::V; 1], [g, v]: [S::V; 2]| {
                            *u = update_vector(s, v, e2, g);
                        },
                    ),
                }
            }
            self.sums.add_squares(self.start + lo, &u[..len]);
        }
    }
}
