//! Adafactor (Shazeer & Stern 2018) with `torch.optim.Adafactor`'s conventions: a factored second
//! moment for matrices (one accumulator per row and per column, `rows + cols` state instead of
//! `rows · cols`), an unfactored one for vectors, the relative step size `ρ_t = min(lr, 1/√t)`
//! scaled by the parameters' RMS, and update clipping by the update's RMS.

use core::any::TypeId;

use super::non_negative;
use super::partials::Partials;
use crate::arch::driver::{zip, zip_stored, Draw};
use crate::arch::{Kernel, Scalar, Simd};
use crate::error::{check_len, check_shape, dim_product};
use crate::storage::{Rounding, Storage};
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
/// **Numerics.** The elementwise work (the vector form's `V` with the squares of `U` and of the
/// parameters in one pass, the matrix form's row sums with the parameters' squares in one pass,
/// `U` and the update) runs on the context's backend, one dispatch per pass. The
/// reductions are summed in `f64` in orders fixed by the element indices, so every backend gives
/// the same bits: the RMS of `P` and of `U` add element `i`'s square (`i` the row-major index) to
/// partial sum `i mod 8` in index order and combine the eight partial sums pairwise,
/// `((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7))`, as LAMB's norms do; each row mean sums its row the same
/// way (`i` the column index); the column means and `mean R` are summed in element order. `U` is computed twice, once for its RMS and once in the
/// update, by the same IEEE operations in the same order (multiply, divide, NaN-propagating max,
/// square root, reciprocal, multiply), so both passes agree bit for bit.
///
/// **Storage.** [`Adafactor::step_matrix_with`] and [`Adafactor::step_vector_with`] take the
/// parameters and the gradient in any [`Storage`] format (for `f32` Adafactor: `f32`, `bf16`,
/// `f16`, or [`KahanBf16`](crate::KahanBf16) parameters); the state stays in the compute type
/// (`rows + cols` values for a matrix). As for every rule ([`crate::rules`], "16-bit storage"),
/// the result equals widening the stored buffers to `T`, running the compute-type step on the
/// same backend and rounding the new parameters once with the context's [`Rounding`]
/// (stochastically with drawing buffer 0, the high halves of pair 0's words, at each element's
/// row-major index in the tensor plus the key's offset).
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

    /// Checks the hyper-parameters and the step; the per-step scalars `(w, ρ)`.
    fn scalars(&self, step: u64) -> Result<(f64, f64), Error> {
        self.validate()?;
        if step == 0 {
            return Err(Error::InvalidStep { step });
        }
        let t = step as f64;
        let w = libm::pow(t, self.beta2_decay.widen());
        let rho = self.lr.widen().min(1.0 / libm::sqrt(t));
        Ok((w, rho))
    }

    /// The step size `(α/D)` from `ρ`, the sums of squares of the parameters before the step and
    /// of `U`, over `n` elements.
    fn step_size(&self, n: usize, rho: f64, p_squares: &Partials, u_squares: &Partials) -> T {
        let alpha = self.eps2.widen().max(rms(n, p_squares)) * rho;
        T::from_f64_round(alpha / 1.0f64.max(rms(n, u_squares) / self.d.widen()))
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
        self.step_matrix_with(exec, step, rows, cols, params, grads, state)
    }

    /// [`Adafactor::step_matrix`] with the parameters stored as `P` and the gradient as `G` (the
    /// state stays `T`; see "Storage" above).
    #[allow(clippy::too_many_arguments)]
    pub fn step_matrix_with<P: Storage<T>, G: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        rows: usize,
        cols: usize,
        params: &mut [P],
        grads: &[G],
        state: &mut [T],
    ) -> Result<(), Error> {
        let n = dim_product("cols", rows, cols)?;
        check_shape("params", "rows × cols", n, params.len())?;
        check_len("grads", n, grads.len())?;
        check_len("state", rows + cols, state.len())?;
        let (w, rho) = self.scalars(step)?;
        let w = T::from_f64_round(w);
        let (r, c) = state.split_at_mut(rows);
        let mut p_squares = Partials::default();
        exec.run(RowFactorsKernel {
            g: grads,
            p: params,
            cols,
            r: &mut *r,
            w,
            p_squares: &mut p_squares,
        });
        exec.run(ColumnFactorsKernel {
            g: grads,
            rows,
            c: &mut *c,
            w,
        });
        let r_mean = T::from_f64_round(mean(r.iter().map(|x| x.widen())).unwrap_or(0.0));
        let denom = if r_mean > self.eps1() || r_mean.is_nan() {
            r_mean
        } else {
            self.eps1()
        };
        let e2 = self.eps1() * self.eps1();
        let mut u_squares = Partials::default();
        exec.run(SquaresKernel {
            g: grads,
            r,
            c,
            denom,
            e2,
            sums: &mut u_squares,
        });
        let step_size = self.step_size(n, rho, &p_squares, &u_squares);
        exec.run(UpdateKernel {
            p: params,
            g: grads,
            v: Factor::Matrix { r, c, denom },
            update: Update {
                e2,
                step: step_size,
                keep: T::one() - self.lr * self.weight_decay,
                draw: draw(exec),
            },
        });
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
        self.step_vector_with(exec, step, params, grads, state)
    }

    /// [`Adafactor::step_vector`] with the parameters stored as `P` and the gradient as `G` (the
    /// state stays `T`; see "Storage" above).
    pub fn step_vector_with<P: Storage<T>, G: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [T],
    ) -> Result<(), Error> {
        check_len("grads", params.len(), grads.len())?;
        check_len("state", params.len(), state.len())?;
        let (w, rho) = self.scalars(step)?;
        let e2 = self.eps1() * self.eps1();
        let (mut p_squares, mut u_squares) = (Partials::default(), Partials::default());
        exec.run(MomentSquaresKernel {
            g: grads,
            p: params,
            v: &mut *state,
            w: T::from_f64_round(w),
            e2,
            p_squares: &mut p_squares,
            u_squares: &mut u_squares,
        });
        let step_size = self.step_size(params.len(), rho, &p_squares, &u_squares);
        exec.run(UpdateKernel {
            p: params,
            g: grads,
            v: Factor::Vector(state),
            update: Update {
                e2,
                step: step_size,
                keep: T::one() - self.lr * self.weight_decay,
                draw: draw(exec),
            },
        });
        Ok(())
    }
}

/// The random bits of the parameters under stochastic rounding (drawing buffer 0).
fn draw(exec: &Exec) -> Option<Draw<1>> {
    match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    }
}

/// One stored element widened to `T` (exact): the scalar backend's vector is one element.
#[inline(always)]
fn widen<T: Element, P: Storage<T>>(x: &P) -> T {
    // SAFETY: `x` is a reference, so one element of `P` is readable and aligned.
    unsafe { P::load_vec(Scalar, x) }
}

#[inline(always)]
fn widen_f64<T: Element, P: Storage<T>>(x: &P) -> f64 {
    widen(x).widen()
}

/// `xs` as a slice of `T` when `P` is `T` itself (every stored format but the compute type
/// widens through a stack block instead).
#[inline(always)]
fn as_compute<T: Element, P: Storage<T>>(xs: &[P]) -> Option<&[T]> {
    (TypeId::of::<P>() == TypeId::of::<T>()).then(|| {
        // SAFETY: `P` and `T` are the same type.
        unsafe { core::slice::from_raw_parts(xs.as_ptr().cast::<T>(), xs.len()) }
    })
}

/// Runs `f(lo, len, g)` over `g` in runs, with `g` as a pointer to `len` elements of `T`: the
/// caller's buffer itself when `G` is `T` (one run), else each block of [`BLOCK`] elements
/// widened into a stack buffer on the backend.
#[inline(always)]
fn widened_runs<T: Element, S: Simd<T>, G: Storage<T>>(
    s: S,
    g: &[G],
    mut f: impl FnMut(usize, usize, *const T),
) {
    if let Some(g) = as_compute::<T, G>(g) {
        return f(0, g.len(), g.as_ptr());
    }
    let mut buf = [T::zero(); BLOCK];
    for (k, chunk) in g.chunks(BLOCK).enumerate() {
        // SAFETY: `buf` holds BLOCK >= chunk.len() elements of `T` and `chunk` as many of `G`;
        // `buf` is a local, so it overlaps nothing.
        unsafe {
            zip_stored::<T, S, T, T, G, 1, 1>(
                s,
                chunk.len(),
                [buf.as_mut_ptr().cast()],
                [chunk.as_ptr().cast()],
                None,
                #[inline(always)]
                |[w]: &mut [S::V; 1], [x]: [S::V; 1], _| *w = x,
            )
        }
        f(k * BLOCK, chunk.len(), buf.as_ptr());
    }
}

/// Columns summed at once by [`column_mean_squares`] (one `f64` accumulator each, on the stack).
const COLUMNS_AT_ONCE: usize = 64;

/// `f(j, Σ_i g_ij² / rows)` for every column `j` of the row-major `rows × cols` `g` (`0` for no
/// rows): each sum from 0 in increasing `i`, in `f64`. [`COLUMNS_AT_ONCE`] columns are summed
/// side by side, a row segment at a time (contiguous reads), each in its own order.
#[inline(always)]
fn column_mean_squares<T: Element, G: Storage<T>>(
    g: &[G],
    rows: usize,
    cols: usize,
    mut f: impl FnMut(usize, f64),
) {
    let div = rows as f64;
    for j0 in (0..cols).step_by(COLUMNS_AT_ONCE) {
        let width = (cols - j0).min(COLUMNS_AT_ONCE);
        let mut sums = [0.0f64; COLUMNS_AT_ONCE];
        for i in 0..rows {
            let at = i * cols + j0;
            for (s, x) in sums.iter_mut().zip(&g[at..at + width]) {
                let x = widen_f64(x);
                *s += x * x;
            }
        }
        for (k, &s) in sums[..width].iter().enumerate() {
            f(j0 + k, if rows == 0 { 0.0 } else { s / div });
        }
    }
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

/// `√(Σ x² / n)` over `n` elements whose squares are in `squares`; 0 for none.
fn rms(n: usize, squares: &Partials) -> f64 {
    if n == 0 {
        return 0.0;
    }
    libm::sqrt(squares.total() / n as f64)
}

/// `U = g · 1/√max(v, e2)` with the NaN-propagating max (the same operations in the same order
/// in every lane).
#[inline(always)]
fn update_vector<T: Element, S: Simd<T>>(s: S, v: S::V, e2: S::V, g: S::V) -> S::V {
    let v = s.max_nan(v, e2);
    s.mul(g, s.div(s.splat(T::one()), s.sqrt(v)))
}

/// Where the update's second-moment estimate comes from, for the whole tensor.
#[derive(Clone, Copy)]
enum Factor<'a, T> {
    /// A row-major matrix (`c.len()` columns): `V_ij = R_i · C_j / denom`.
    Matrix { r: &'a [T], c: &'a [T], denom: T },
    /// The unfactored estimate of a vector.
    Vector(&'a [T]),
}

/// The estimate for one span of the tensor ([`update_span`]).
#[derive(Clone, Copy)]
enum Estimate<'a, T> {
    /// One matrix row: `V_j = r · C_j / denom`.
    Row { r: T, c: &'a [T], denom: T },
    /// The unfactored estimate itself.
    Full(&'a [T]),
}

/// The scalars of the parameter update `p ← p·keep − step·U`, and the parameters' random bits.
#[derive(Clone, Copy)]
struct Update<T> {
    e2: T,
    step: T,
    keep: T,
    draw: Option<Draw<1>>,
}

/// `p ← p·keep − step·U` over a matrix or a vector, in one dispatch (a matrix row by row), the
/// parameters rounded with `draw` at each element's index in the tensor.
struct UpdateKernel<'a, T, P, G> {
    p: &'a mut [P],
    g: &'a [G],
    v: Factor<'a, T>,
    update: Update<T>,
}

impl<T: Element, P: Storage<T>, G: Storage<T>> Kernel<T> for UpdateKernel<'_, T, P, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let (p, g, update) = (self.p, self.g, self.update);
        match self.v {
            Factor::Vector(v) => update_span(s, 0, p, g, Estimate::Full(v), update),
            Factor::Matrix { r, c, denom } => {
                let cols = c.len();
                for (i, &r) in r.iter().enumerate() {
                    let span = i * cols..(i + 1) * cols;
                    let row = Estimate::Row { r, c, denom };
                    update_span(s, span.start, &mut p[span.clone()], &g[span], row, update);
                }
            }
        }
    }
}

/// [`UpdateKernel`]'s work on the span `p`, `g` of the tensor whose first element has index
/// `start` (a matrix row, or the whole vector).
#[inline(always)]
fn update_span<T: Element, S: Simd<T>, P: Storage<T>, G: Storage<T>>(
    s: S,
    start: usize,
    p: &mut [P],
    g: &[G],
    v: Estimate<'_, T>,
    update: Update<T>,
) {
    let (e2, step, keep) = (
        s.splat(update.e2),
        s.splat(update.step),
        s.splat(update.keep),
    );
    let (draw, p) = (update.draw, p.as_mut_ptr());
    widened_runs(
        s,
        g,
        #[inline(always)]
        |lo, len, g| {
            let draw = draw.map(|d| d.shifted(start + lo));
            // SAFETY: `p`, `g` and the estimate's buffer (`c` or `V`) hold lo + len elements at
            // least (`g` here is the caller's gradient or a widened block of len elements at
            // `lo`; the public functions checked the lengths); `p` is an exclusive borrow, so it
            // overlaps nothing.
            unsafe {
                let rw = [p.add(lo).cast::<u8>()];
                match v {
                    Estimate::Row { r, c, denom } => {
                        let (r, denom) = (s.splat(r), s.splat(denom));
                        zip_stored::<T, S, P, T, T, 1, 2>(
                            s,
                            len,
                            rw,
                            [g.cast(), c.as_ptr().add(lo).cast()],
                            draw,
                            #[inline(always)]
                            |[p]: &mut [S::V; 1], [g, c]: [S::V; 2], _| {
                                let u = update_vector(s, s.div(s.mul(r, c), denom), e2, g);
                                *p = s.sub(s.mul(*p, keep), s.mul(step, u));
                            },
                        )
                    }
                    Estimate::Full(v) => zip_stored::<T, S, P, T, T, 1, 2>(
                        s,
                        len,
                        rw,
                        [g.cast(), v.as_ptr().add(lo).cast()],
                        draw,
                        #[inline(always)]
                        |[p]: &mut [S::V; 1], [g, v]: [S::V; 2], _| {
                            let u = update_vector(s, v, e2, g);
                            *p = s.sub(s.mul(*p, keep), s.mul(step, u));
                        },
                    ),
                }
            }
        },
    );
}

/// Elements per stack block of [`squares_by_block`] and of the widened 16-bit blocks (a multiple
/// of every lane count).
const BLOCK: usize = 64;

/// Adds to `sums` the squares of the values `fill(at, len, g, u)` writes to `u[..len]` (`U` of
/// elements `at..at + len` of the row or vector, from the widened gradient `g` of those elements),
/// block by block in index order, the first element's index in the tensor being `start`.
#[inline(always)]
fn squares_by_block<T: Element, S: Simd<T>, G: Storage<T>>(
    s: S,
    g: &[G],
    start: usize,
    sums: &mut Partials,
    mut fill: impl FnMut(usize, usize, *const T, *mut T),
) {
    let mut u = [T::zero(); BLOCK];
    // A local copy, which the compiler keeps in registers (through `sums` it stored every
    // partial sum after every element: `fill`'s raw pointers might have pointed at it).
    let mut acc = *sums;
    widened_runs(
        s,
        g,
        #[inline(always)]
        |base, count, g| {
            for lo in (0..count).step_by(BLOCK) {
                let len = (count - lo).min(BLOCK);
                fill(base + lo, len, g.wrapping_add(lo), u.as_mut_ptr());
                acc.add_squares(start + base + lo, &u[..len]);
            }
        },
    );
    *sums = acc;
}

/// The squares of `U` over the whole matrix into `sums`, in one dispatch, row by row: `U` a vector
/// at a time on the backend into a stack block, then the block's squares in index order (each
/// element at its row-major index).
struct SquaresKernel<'a, T, G> {
    /// The whole row-major gradient.
    g: &'a [G],
    /// The row accumulators `R`, the column accumulators `C` and `max(mean R, eps1)`.
    r: &'a [T],
    c: &'a [T],
    denom: T,
    e2: T,
    sums: &'a mut Partials,
}

impl<T: Element, G: Storage<T>> Kernel<T> for SquaresKernel<'_, T, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let (e2, denom) = (s.splat(self.e2), s.splat(self.denom));
        let cols = self.c.len();
        let c = self.c.as_ptr();
        for (i, &r) in self.r.iter().enumerate() {
            let r = s.splat(r);
            let start = i * cols;
            squares_by_block(
                s,
                &self.g[start..start + cols],
                start,
                self.sums,
                #[inline(always)]
                |at, len, g, u| {
                    // SAFETY: `squares_by_block` hands `len` elements of `g` and room for
                    // BLOCK >= len in the local `u`; `c` holds the row's length >= at + len
                    // elements (checked by `step_matrix_with`); `u` overlaps neither.
                    unsafe {
                        zip(
                            s,
                            len,
                            [u],
                            [g, c.add(at)],
                            #[inline(always)]
                            |[u]: &mut [S::V; 1], [g, c]: [S::V; 2]| {
                                *u = update_vector(s, s.div(s.mul(r, c), denom), e2, g);
                            },
                        )
                    }
                },
            );
        }
    }
}

/// Adds the squares of the stored `xs`, whose first element has index `start`, to `acc`, the
/// elements widened on the backend (pass a local `acc`: the compiler then keeps its sums in
/// registers).
#[inline(always)]
fn add_stored_squares<T: Element, S: Simd<T>, P: Storage<T>>(
    s: S,
    acc: &mut Partials,
    start: usize,
    xs: &[P],
) {
    widened_runs(
        s,
        xs,
        #[inline(always)]
        |lo, len, x| {
            // SAFETY: `widened_runs` hands `len` readable elements of `T` at `x`.
            acc.add_squares(start + lo, unsafe { core::slice::from_raw_parts(x, len) })
        },
    );
}

/// The vector form's second moment, the squares of `U` and those of the parameters (before the
/// step) in one pass: `V ← V + w·(G² − V)` (stored), then `U` from the new `V` a vector at a time
/// into a stack block, then the block's squares in index order, and the same block's parameter
/// squares (the same operations as the separate passes they replace; the two chains of additions
/// overlap).
struct MomentSquaresKernel<'a, T, P, G> {
    g: &'a [G],
    p: &'a [P],
    v: &'a mut [T],
    w: T,
    e2: T,
    p_squares: &'a mut Partials,
    u_squares: &'a mut Partials,
}

impl<T: Element, P: Storage<T>, G: Storage<T>> Kernel<T> for MomentSquaresKernel<'_, T, P, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let (w, e2) = (s.splat(self.w), s.splat(self.e2));
        let v = self.v.as_mut_ptr();
        let (p, mut p_acc) = (self.p, *self.p_squares);
        squares_by_block(
            s,
            self.g,
            0,
            self.u_squares,
            #[inline(always)]
            |at, len, g, u| {
                add_stored_squares(s, &mut p_acc, at, &p[at..at + len]);
                // SAFETY: `squares_by_block` hands `len` elements of `g` and room for BLOCK >= len
                // in the local `u`; `v` (an exclusive borrow of the gradient's length, checked by
                // `step_vector_with`) holds at + len; no written range overlaps another or `g`.
                unsafe {
                    zip(
                        s,
                        len,
                        [v.add(at), u],
                        [g],
                        #[inline(always)]
                        |[v, u]: &mut [S::V; 2], [g]: [S::V; 1]| {
                            *v = s.add(*v, s.mul(w, s.sub(s.mul(g, g), *v)));
                            *u = update_vector(s, *v, e2, g);
                        },
                    )
                }
            },
        );
        *self.p_squares = p_acc;
    }
}

/// The matrix form's row accumulators, `R_i ← R_i + w·(mean_j G_ij² − R_i)`, each row's sum of
/// squares in the order of [`Partials`] (element `j` of the row to partial sum `j mod 8`), and
/// the squares of the parameters (before the step, at their row-major indices) in the same pass,
/// [`BLOCK`] elements of each at a time (so the two chains of additions overlap), widened on the
/// backend.
struct RowFactorsKernel<'a, T, P, G> {
    g: &'a [G],
    p: &'a [P],
    cols: usize,
    r: &'a mut [T],
    w: T,
    p_squares: &'a mut Partials,
}

impl<T: Element, P: Storage<T>, G: Storage<T>> Kernel<T> for RowFactorsKernel<'_, T, P, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let (cols, w) = (self.cols, self.w);
        let mut p_acc = *self.p_squares;
        for (i, r) in self.r.iter_mut().enumerate() {
            let start = i * cols;
            let (g, p) = (&self.g[start..start + cols], &self.p[start..start + cols]);
            let mut sq = Partials::default();
            for lo in (0..cols).step_by(BLOCK) {
                let hi = (lo + BLOCK).min(cols);
                add_stored_squares(s, &mut sq, lo, &g[lo..hi]);
                add_stored_squares(s, &mut p_acc, start + lo, &p[lo..hi]);
            }
            // Code generation only: without this barrier the compiler shaped the accumulation
            // after the pairwise `total` below and kept the eight sums in 2-lane registers (on
            // AVX-512, 0.25 instead of 0.12 ns per element for this pass).
            let sq = core::hint::black_box(sq);
            let mean = if cols == 0 {
                T::zero()
            } else {
                T::from_f64_round(sq.total() / cols as f64)
            };
            *r = toward(*r, w, mean);
        }
        *self.p_squares = p_acc;
    }
}

/// An accumulator moved the fraction `w` of the way to `target`: `x + w·(target − x)`, three
/// roundings (the form the row and column factors use; the vector form's is the same, in
/// vectors).
#[inline(always)]
fn toward<T: Element>(x: T, w: T, target: T) -> T {
    x + w * (target - x)
}

/// The matrix form's column accumulators: `C_j ← C_j + w·(mean_i G_ij² − C_j)`, each column's
/// sum of squares in element order ([`column_mean_squares`]), compiled for the backend.
struct ColumnFactorsKernel<'a, T, G> {
    g: &'a [G],
    rows: usize,
    c: &'a mut [T],
    w: T,
}

impl<T: Element, G: Storage<T>> Kernel<T> for ColumnFactorsKernel<'_, T, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, _: S) {
        let (c, w) = (self.c, self.w);
        column_mean_squares(self.g, self.rows, c.len(), |j, mean| {
            let mean = T::from_f64_round(mean);
            c[j] = toward(c[j], w, mean);
        });
    }
}
