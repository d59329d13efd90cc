//! Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks",
//! <https://kellerjordan.github.io/posts/muon/>) with the conventions of `torch.optim.Muon`
//! (PyTorch 2.9): SGD momentum whose matrix-shaped update is replaced by an approximately
//! orthogonal matrix, computed by a quintic Newton–Schulz iteration on the matrix-multiply
//! micro-kernel of [`MatMul`].

use core::marker::PhantomData;

use super::{non_negative, positive, unit_half_open, Rule, RuleConfig};
use crate::arch::driver::{zip, zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::error::{check_len, check_shape, dim_product};
use crate::models::gemm::{GemmKernel, MatMul};
use crate::{Element, Error, Exec, Rounding, Storage};

/// How Muon scales the learning rate by the matrix shape (`torch.optim.Muon`'s `adjust_lr_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AdjustLr {
    /// `lr · √max(1, rows/cols)` (Keller Jordan's scaling; torch's default, `"original"`).
    #[default]
    Original,
    /// `lr · 0.2 · √max(rows, cols)` (Moonshot's "Muon is Scalable for LLM Training", matching
    /// AdamW's update RMS; torch's `"match_rms_adamw"`).
    MatchRmsAdamw,
}

/// Muon, as `torch.optim.Muon(lr, weight_decay, momentum, nesterov, ns_coefficients, eps,
/// ns_steps, adjust_lr_fn)`, for one `rows × cols` parameter matrix (row-major) per call.
///
/// State: the momentum buffer `B` (`rows · cols` elements, zero before the first step). The
/// caller also lends a workspace of [`Muon::workspace_len`] elements for the Newton–Schulz
/// iteration; its contents before and after a call carry no meaning. There is no step counter
/// (Muon has no bias correction). [`Muon::step_matrix_with`] stores the parameters, the gradient
/// and the buffer in any [`Storage`] format (bf16, f16, [`KahanBf16`](crate::KahanBf16)
/// parameters for `f32` Muon), rounding each written buffer once; the workspace stays in `T`.
///
/// One step with gradient `G`, every operation in the parameter type `T` unless stated:
/// ```text
/// B ← lerp(B, G, 1 − μ)                         the weight 1 − μ computed in f64, rounded to T
/// U = lerp(G, B, μ) if nesterov, else B
/// X = U, or Uᵀ if rows > cols                   (X is r × c with r = min, c = max)
/// X ← X / max(‖X‖_F, eps)                       ‖X‖_F: Σx² in f64 in storage order, √, rounded to T
/// ns_steps times, with (a, b, c) = ns_coefficients:
///     A = X·Xᵀ        A ← b·A + c·(A·A)        X ← a·X + A·X
/// Xᵀ back if rows > cols
/// P ← P·keep + (−η)·X                           keep = 1 − lr·λ, η = lr·s  (f64, each rounded to T)
/// ```
/// with `s = √max(1, rows/cols)` ([`AdjustLr::Original`]) or `0.2·√max(rows, cols)`
/// ([`AdjustLr::MatchRmsAdamw`]). `lerp(x, y, w)` is ATen's scalar formula (`Lerp.h`):
/// `x + w·(y − x)` when `|w| < 0.5`, else `y − (y − x)·(1 − w)`, each operation rounded on its own
/// (no fused multiply-add); `B` uses the first form at the default `μ = 0.95`, the Nesterov
/// combination the second. In words: the momentum buffer is an exponential moving average of the
/// gradients; the direction is that average (or, with Nesterov, the gradient pulled towards it);
/// the direction is scaled to Frobenius norm one, so every singular value is at most one, and the
/// odd quintic `p(σ) = aσ + bσ³ + cσ⁵`, applied to the singular values by the iteration, pushes
/// them towards one (with torch's coefficients into a band around one, not to one itself); the
/// result replaces the update, scaled for the matrix shape; weight decay is decoupled.
///
/// **Departures from torch.** torch runs the Newton–Schulz iteration in bf16; here it runs in
/// `T` (`f32` or `f64`), so results differ from torch's by torch's bf16 rounding, not by the
/// algorithm. torch's vectorised CPU `lerp` may fuse its multiply-add; here it never is. `momentum`
/// must lie in `[0, 1)` (torch accepts any `μ >= 0`; `μ >= 1` never lets a gradient in).
/// `eps` must be finite and `> 0` (torch does not check it; `eps = 0` turns a zero gradient into
/// NaN). torch rejects parameters that are not 2-D; here a vector is a `1 × n` or `n × 1` matrix
/// if the caller says so (Muon then normalises it: a single singular value), but the intended use
/// is torch's: Muon for hidden weight matrices, another rule for vectors, embeddings and the head.
/// [`MuonWithFallback`] pairs Muon with such a fallback rule (any [`Rule`], typically AdamW) and
/// routes each parameter by its [`ParamShape`], as optax's `contrib.muon` does with its built-in
/// Adam; the example below does the routing by hand.
///
/// **Numerics.** The elementwise parts run on the context's backend and are bit-identical on
/// every backend; the Frobenius norm is summed in `f64` on the scalar path (identical everywhere).
/// The matrix products run on the [`MatMul`] micro-kernel, whose result depends on the backend
/// (fused multiply-add on AVX2+FMA and NEON): each product is within `(k + 4)·u·Σ|a||b|` of the
/// exact one, so Muon agrees across backends to within that bound carried through the iteration,
/// and is bit-reproducible on one backend. A tall matrix (`rows > cols`) is never transposed in
/// memory: the products use [`MatMul`]'s transposed operands and compute, bit for bit, the same
/// sums as an explicitly transposed `X`. NaN or ±Inf in a gradient or the buffer reaches the norm
/// and makes the whole update (hence every parameter of the matrix) NaN.
///
/// ```
/// use descent_kernels::{Adam, Exec, Muon, Rule};
///
/// let (rows, cols) = (8, 16);
/// let muon = Muon::new(0.02f32);
/// let (mut w, gw) = (vec![0.1f32; rows * cols], vec![0.01f32; rows * cols]);
/// let mut buf = vec![0.0f32; Muon::<f32>::matrix_state_len(rows, cols)];
/// let mut work = vec![0.0f32; Muon::<f32>::workspace_len(rows, cols)];
/// // The bias (a vector) goes to AdamW, as torch's documentation recommends.
/// let adamw = Adam::adamw(1e-3f32, 0.01);
/// let (mut bias, gb) = (vec![0.0f32; cols], vec![0.5f32; cols]);
/// let mut bias_state = vec![0.0f32; adamw.state_len(cols)];
/// for step in 1..=3 {
///     muon.step_matrix(&Exec::active(), rows, cols, &mut w, &gw, &mut buf, &mut work)?;
///     adamw.step(step, &mut bias, &gb, &mut bias_state)?;
/// }
/// # Ok::<(), descent_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Muon<T> {
    /// Learning rate before the shape adjustment, finite and `>= 0`.
    pub lr: T,
    /// Decoupled weight decay `λ` (`P ← P·(1 − lr·λ)`), finite and `>= 0`.
    pub weight_decay: T,
    /// Momentum `μ` in `[0, 1)`.
    pub momentum: T,
    /// Nesterov momentum: the update is the gradient pulled towards the buffer.
    pub nesterov: bool,
    /// `(a, b, c)` of the quintic `p(σ) = aσ + bσ³ + cσ⁵`, each finite.
    pub ns_coefficients: (T, T, T),
    /// Newton–Schulz iterations, `0 ..= 99` (torch's limit). `0` is allowed: the update is then
    /// the normalised momentum `U / max(‖U‖_F, eps)` (normalised SGD with momentum).
    pub ns_steps: u32,
    /// Floor of the Frobenius norm, finite and `> 0`.
    pub eps: T,
    /// The learning-rate shape adjustment.
    pub adjust_lr: AdjustLr,
}

impl<T: Element> Muon<T> {
    /// Keller Jordan's Newton–Schulz coefficients, torch's default: `(3.4445, −4.7750, 2.0315)`.
    pub const DEFAULT_NS_COEFFICIENTS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

    /// torch's defaults: `weight_decay = 0.1`, `momentum = 0.95`, Nesterov, the coefficients
    /// above, `ns_steps = 5`, `eps = 1e-7`, [`AdjustLr::Original`] (torch's own default
    /// `lr` is `1e-3`).
    pub fn new(lr: T) -> Self {
        let (a, b, c) = Self::DEFAULT_NS_COEFFICIENTS;
        Muon {
            lr,
            weight_decay: T::from_f64_round(0.1),
            momentum: T::from_f64_round(0.95),
            nesterov: true,
            ns_coefficients: (
                T::from_f64_round(a),
                T::from_f64_round(b),
                T::from_f64_round(c),
            ),
            ns_steps: 5,
            eps: T::from_f64_round(1e-7),
            adjust_lr: AdjustLr::Original,
        }
    }

    /// The same rule with weight decay `λ`.
    pub fn with_weight_decay(self, weight_decay: T) -> Self {
        Muon {
            weight_decay,
            ..self
        }
    }

    /// The same rule with momentum `μ`.
    pub fn with_momentum(self, momentum: T) -> Self {
        Muon { momentum, ..self }
    }

    /// The same rule with Nesterov momentum on or off.
    pub fn with_nesterov(self, nesterov: bool) -> Self {
        Muon { nesterov, ..self }
    }

    /// The same rule with other Newton–Schulz coefficients `(a, b, c)`.
    pub fn with_ns_coefficients(self, a: T, b: T, c: T) -> Self {
        Muon {
            ns_coefficients: (a, b, c),
            ..self
        }
    }

    /// The same rule with `ns_steps` Newton–Schulz iterations.
    pub fn with_ns_steps(self, ns_steps: u32) -> Self {
        Muon { ns_steps, ..self }
    }

    /// The same rule with the norm floor `eps`.
    pub fn with_eps(self, eps: T) -> Self {
        Muon { eps, ..self }
    }

    /// The same rule with the learning-rate shape adjustment `adjust_lr`.
    pub fn with_adjust_lr(self, adjust_lr: AdjustLr) -> Self {
        Muon { adjust_lr, ..self }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        non_negative("weight_decay", self.weight_decay)?;
        unit_half_open("momentum", self.momentum)?;
        let (a, b, c) = self.ns_coefficients;
        if !(a.is_finite() && b.is_finite() && c.is_finite()) {
            return Err(Error::InvalidHyperParameter {
                name: "ns_coefficients",
                requirement: "must be finite",
            });
        }
        if self.ns_steps >= 100 {
            return Err(Error::InvalidHyperParameter {
                name: "ns_steps",
                requirement: "must be < 100",
            });
        }
        positive("eps", self.eps)
    }

    /// The momentum buffer's length for a `rows × cols` matrix: `rows · cols` (saturating; a
    /// product that overflows is rejected by [`Muon::step_matrix`]).
    pub const fn matrix_state_len(rows: usize, cols: usize) -> usize {
        rows.saturating_mul(cols)
    }

    /// The workspace length for a `rows × cols` matrix: with `r = min(rows, cols)` and
    /// `c = max(rows, cols)`, `2·r·c + 2·r²` (`X` and the product `A·X`, `r × c` each; the Gram
    /// matrix `A` and `A·A`, `r × r` each). Saturating, as [`Muon::matrix_state_len`].
    pub const fn workspace_len(rows: usize, cols: usize) -> usize {
        let (r, c) = if rows < cols {
            (rows, cols)
        } else {
            (cols, rows)
        };
        let rc = r.saturating_mul(c);
        let rr = r.saturating_mul(r);
        rc.saturating_add(rr).saturating_mul(2)
    }

    /// The shape factor `s` of the learning rate (`f64`).
    fn shape_factor(&self, rows: usize, cols: usize) -> f64 {
        match self.adjust_lr {
            AdjustLr::Original => libm::sqrt((rows as f64 / cols as f64).max(1.0)),
            AdjustLr::MatchRmsAdamw => 0.2 * libm::sqrt(rows.max(cols) as f64),
        }
    }

    /// One step on a `rows × cols` parameter matrix (row-major) with its momentum buffer
    /// (`rows · cols` elements) and a workspace of exactly [`Muon::workspace_len`] elements
    /// (slice a larger one). Checks the hyper-parameters, the dimensions and every length before
    /// it writes anything.
    #[allow(clippy::too_many_arguments)]
    pub fn step_matrix(
        &self,
        exec: &Exec,
        rows: usize,
        cols: usize,
        params: &mut [T],
        grads: &[T],
        momentum_buf: &mut [T],
        workspace: &mut [T],
    ) -> Result<(), Error>
    where
        T: Storage<T>,
    {
        self.step_matrix_with(exec, rows, cols, params, grads, momentum_buf, workspace)
    }

    /// [`Muon::step_matrix`] with the parameters stored as `P`, the gradient as `G` and the
    /// momentum buffer as `S` (for `f32` Muon: `f32`, `bf16`, `f16`, or [`KahanBf16`] parameters;
    /// the workspace is always `T`). As for every rule ([`crate::rules`], "16-bit storage"), the
    /// result equals, bit for bit, widening every buffer to `T`, running [`Muon::step_matrix`] on
    /// the same backend and rounding each written 16-bit buffer once with the context's
    /// [`Rounding`]: the new momentum buffer feeds the direction unrounded. Under stochastic
    /// rounding the parameters are drawing buffer 0 (the high halves of pair 0's words, see
    /// [`crate::storage`]) and the momentum buffer drawing buffer 2 (the high halves of pair 1's):
    /// the step writes them in two passes, each computing only the words it uses, so pair 0's
    /// and pair 1's low halves go unused.
    ///
    /// [`KahanBf16`]: crate::KahanBf16
    #[allow(clippy::too_many_arguments)]
    pub fn step_matrix_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        rows: usize,
        cols: usize,
        params: &mut [P],
        grads: &[G],
        momentum_buf: &mut [S],
        workspace: &mut [T],
    ) -> Result<(), Error> {
        self.validate()?;
        // The dimensions first (products that overflow), then every length.
        let n = dim_product("cols", rows, cols)?;
        let (r, c) = (rows.min(cols), rows.max(cols));
        // r·c = n does not overflow, and r² <= r·c; only the sum and the doubling can.
        let need =
            n.checked_add(r * r)
                .and_then(|x| x.checked_mul(2))
                .ok_or(Error::InvalidDimension {
                    name: "cols",
                    requirement: "is too large: the workspace length overflows usize",
                })?;
        check_shape("params", "rows × cols", n, params.len())?;
        check_len("grads", n, grads.len())?;
        check_len("momentum_buf", n, momentum_buf.len())?;
        check_len("workspace", need, workspace.len())?;
        if n == 0 {
            return Ok(());
        }
        let tall = rows > cols;

        let (x, rest) = workspace.split_at_mut(n);
        let (y, rest) = rest.split_at_mut(n);
        let (gram, gg) = rest.split_at_mut(r * r);

        // The random bits of the two passes that write stored buffers: the parameters take pair
        // 0, the momentum buffer pair 1.
        let key = match exec.rounding() {
            Rounding::NearestEven => None,
            Rounding::Stochastic(key) => Some(key),
        };

        // Momentum and the Nesterov combination, U into X (in the parameters' layout).
        exec.run(MomentumKernel::<T, S, G> {
            n,
            buf: momentum_buf.as_mut_ptr().cast(),
            x: x.as_mut_ptr(),
            g: grads.as_ptr().cast(),
            draw: key.map(|k| Draw::from_pair(&k, 1)),
            into_buf: Lerp::new(T::from_f64_round(1.0 - self.momentum.widen())),
            nesterov: self.nesterov.then(|| Lerp::new(self.momentum)),
            _types: PhantomData,
        });

        // X / max(‖X‖_F, eps), the NaN-propagating max (torch's clamp).
        let ss: f64 = x.iter().map(|v| v.widen() * v.widen()).sum();
        let norm = T::from_f64_round(libm::sqrt(ss));
        let denom = if norm > self.eps || norm.is_nan() {
            norm
        } else {
            self.eps
        };
        exec.run(DivKernel {
            x: &mut *x,
            d: denom,
        });

        // Newton–Schulz. Wide: X is r × c in `x`. Tall: `x` holds Z = Xᵀ (c × r); then
        // X·Xᵀ = ZᵀZ and (A·X)ᵀ = Z·Aᵀ, the same products summed in the same order.
        let (a, b, cc) = self.ns_coefficients;
        let (gram_spec, ax_spec) = if tall {
            (
                MatMul {
                    trans_a: true,
                    ..MatMul::new(r, r, c)
                },
                MatMul {
                    trans_b: true,
                    ..MatMul::new(c, r, r)
                },
            )
        } else {
            (
                MatMul {
                    trans_b: true,
                    ..MatMul::new(r, r, c)
                },
                MatMul::new(r, c, r),
            )
        };
        for _ in 0..self.ns_steps {
            gemm(exec, gram_spec, x, x, gram);
            gemm(exec, MatMul::new(r, r, r), gram, gram, gg);
            // gg ← c·(A·A) + b·A
            exec.run(LinKernel {
                rw: &mut *gg,
                ro: gram,
                alpha: cc,
                beta: b,
            });
            if tall {
                gemm(exec, ax_spec, x, gg, y);
            } else {
                gemm(exec, ax_spec, gg, x, y);
            }
            // x ← a·x + 1·y  (the factor 1 is exact)
            exec.run(LinKernel {
                rw: &mut *x,
                ro: y,
                alpha: a,
                beta: T::one(),
            });
        }

        // P ← P·keep + (−η)·X
        let lr = self.lr.widen();
        let keep = T::from_f64_round(1.0 - lr * self.weight_decay.widen());
        let eta = T::from_f64_round(lr * self.shape_factor(rows, cols));
        exec.run(UpdateKernel::<T, P> {
            n,
            params: params.as_mut_ptr().cast(),
            x: x.as_ptr(),
            draw: key.map(|k| Draw::new(&k)),
            keep,
            eta,
            _types: PhantomData,
        });
        Ok(())
    }
}

/// The shape of one parameter tensor, which decides the rule [`MuonWithFallback`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamShape {
    /// A vector (bias, norm gain, or any tensor the caller wants stepped elementwise) of this
    /// many elements: the fallback rule.
    Vector(usize),
    /// A `rows × cols` weight matrix, row-major: Muon.
    Matrix {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

impl ParamShape {
    /// The number of elements (`rows · cols`, saturating, for a matrix).
    pub const fn len(self) -> usize {
        match self {
            ParamShape::Vector(n) => n,
            ParamShape::Matrix { rows, cols } => rows.saturating_mul(cols),
        }
    }

    /// Whether the tensor has no elements.
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Muon for weight matrices and a fallback [`Rule`] for every other parameter (torch's advice:
/// Muon for hidden 2-D weights, AdamW for biases, gains, embeddings and the output layer; optax's
/// `contrib.muon` bundles the same split). Each call steps one tensor, routed by its
/// [`ParamShape`]:
/// - [`ParamShape::Matrix`]: [`Muon::step_matrix`], with a state of
///   [`Muon::matrix_state_len`] elements and a workspace of [`Muon::workspace_len`];
/// - [`ParamShape::Vector`]: the fallback's [`Rule::step_with`] with its step number, a state of
///   [`Rule::state_len`] elements and no workspace (pass any slice; it is not touched).
///
/// Both rules are validated on every call, whichever the tensor uses, so a bad fallback is
/// reported at the first step and not at the first vector. The results are exactly those of the
/// two rules called directly.
///
/// ```
/// use descent_kernels::{Adam, Exec, Muon, MuonWithFallback, ParamShape};
///
/// let rules = MuonWithFallback::new(Muon::new(0.02f32), Adam::adamw(1e-3f32, 0.01));
/// let (w_shape, b_shape) = (ParamShape::Matrix { rows: 8, cols: 16 }, ParamShape::Vector(16));
/// let (mut w, gw) = (vec![0.1f32; w_shape.len()], vec![0.01f32; w_shape.len()]);
/// let (mut b, gb) = (vec![0.0f32; b_shape.len()], vec![0.5f32; b_shape.len()]);
/// let mut w_state = vec![0.0f32; rules.state_len(w_shape)];
/// let mut b_state = vec![0.0f32; rules.state_len(b_shape)];
/// // One workspace, sized for the largest matrix, lent to every call.
/// let mut work = vec![0.0f32; MuonWithFallback::<f32, Adam<f32>>::workspace_len(w_shape)];
/// let exec = Exec::active();
/// for step in 1..=3 {
///     rules.step(&exec, step, w_shape, &mut w, &gw, &mut w_state, &mut work)?;
///     rules.step(&exec, step, b_shape, &mut b, &gb, &mut b_state, &mut work)?;
/// }
/// # Ok::<(), descent_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MuonWithFallback<T, R> {
    /// The rule of the weight matrices.
    pub muon: Muon<T>,
    /// The rule of every other parameter.
    pub fallback: R,
}

impl<T: Element + Storage<T>, R: Rule<T>> MuonWithFallback<T, R> {
    /// Muon for matrices, `fallback` for the rest.
    pub fn new(muon: Muon<T>, fallback: R) -> Self {
        MuonWithFallback { muon, fallback }
    }

    /// Checks both rules' hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        self.muon.validate()?;
        self.fallback.validate()
    }

    /// The state length of one tensor: Muon's momentum buffer for a matrix, the fallback's
    /// buffers for a vector.
    pub fn state_len(&self, shape: ParamShape) -> usize {
        match shape {
            ParamShape::Vector(n) => self.fallback.state_len(n),
            ParamShape::Matrix { rows, cols } => Muon::<T>::matrix_state_len(rows, cols),
        }
    }

    /// The workspace a tensor needs: [`Muon::workspace_len`] for a matrix, none for a vector.
    /// Lend each call a slice of exactly this length, or, for a matrix, a prefix of a larger
    /// one sliced to it (the call does that itself: a longer workspace is accepted).
    pub const fn workspace_len(shape: ParamShape) -> usize {
        match shape {
            ParamShape::Vector(_) => 0,
            ParamShape::Matrix { rows, cols } => Muon::<T>::workspace_len(rows, cols),
        }
    }

    /// One step of the tensor `shape`: validates both rules, then every length, before it writes
    /// anything; `step` (from 1) is the fallback's step number (Muon has none). A matrix's
    /// workspace may be longer than it needs; the first [`Self::workspace_len`] elements are
    /// used.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        exec: &Exec,
        step: u64,
        shape: ParamShape,
        params: &mut [T],
        grads: &[T],
        state: &mut [T],
        workspace: &mut [T],
    ) -> Result<(), Error> {
        self.step_with(exec, step, shape, params, grads, state, workspace)
    }

    /// [`MuonWithFallback::step`] with the parameters stored as `P`, the gradient as `G` and
    /// the state as `S`: [`Muon::step_matrix_with`] for a matrix, the fallback's
    /// [`Rule::step_with`] for a vector (each rule's rounding and random-bit conventions; the
    /// workspace is always `T`).
    #[allow(clippy::too_many_arguments)]
    pub fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        shape: ParamShape,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
        workspace: &mut [T],
    ) -> Result<(), Error> {
        self.validate()?;
        match shape {
            ParamShape::Vector(n) => {
                check_len("params", n, params.len())?;
                self.fallback.step_with(exec, step, params, grads, state)
            }
            ParamShape::Matrix { rows, cols } => {
                let need = Self::workspace_len(shape);
                let workspace = match workspace.get_mut(..need) {
                    Some(w) => w,
                    None => return check_len("workspace", need, workspace.len()),
                };
                self.muon
                    .step_matrix_with(exec, rows, cols, params, grads, state, workspace)
            }
        }
    }
}

// `RuleConfig` for `f32` and `f64` each: a generic impl would overlap `RuleConfig`'s impl for
// every `Rule`, which another crate could give a `MuonWithFallback<TheirType, _>`.
macro_rules! muon_rule_config {
    ($t:ty) => {
        /// The pair as [`train::Optimizer`](crate::train::Optimizer) configures it: one
        /// learning rate for both rules (a schedule's value replaces Muon's and the fallback's
        /// alike; give vector groups a rate of their own with a group's `lr_scale`), and no
        /// weight decay for either without it.
        ///
        /// ```
        /// use descent_kernels::rules::RuleConfig;
        /// use descent_kernels::{Adam, Muon, MuonWithFallback};
        ///
        /// let rules = MuonWithFallback::new(Muon::new(0.02f32), Adam::adamw(1e-3f32, 0.01));
        /// let at = rules.with_lr(0.01);
        /// assert_eq!((at.muon.lr, at.fallback.lr), (0.01, 0.01));
        /// ```
        impl<R: Rule<$t>> RuleConfig<$t> for MuonWithFallback<$t, R> {
            const NAME: &'static str = "muon_with_fallback";

            fn validate(&self) -> Result<(), Error> {
                MuonWithFallback::validate(self)
            }

            /// Muon's learning rate.
            fn lr(&self) -> $t {
                self.muon.lr
            }

            fn with_lr(self, lr: $t) -> Self {
                MuonWithFallback {
                    muon: Muon { lr, ..self.muon },
                    fallback: self.fallback.with_lr(lr),
                }
            }

            fn without_weight_decay(self) -> Self {
                MuonWithFallback {
                    muon: Muon {
                        weight_decay: 0.0,
                        ..self.muon
                    },
                    fallback: self.fallback.without_weight_decay(),
                }
            }
        }
    };
}
muon_rule_config!(f32);
muon_rule_config!(f64);

/// One matrix product on the context's backend (lengths checked by the caller).
fn gemm<T: Element>(exec: &Exec, spec: MatMul, a: &[T], b: &[T], c: &mut [T]) {
    debug_assert!(spec.validate(a, b, c).is_ok());
    exec.run(GemmKernel { spec, a, b, c })
}

/// ATen's scalar `lerp(x, y, w)` with the form chosen by `|w| < 0.5` once per call.
#[derive(Clone, Copy)]
struct Lerp<T> {
    w: T,
    one_minus_w: T,
    small: bool,
}

impl<T: Element> Lerp<T> {
    fn new(w: T) -> Self {
        Lerp {
            w,
            one_minus_w: T::one() - w,
            small: w.abs() < T::from_f64_round(0.5),
        }
    }

    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, x: S::V, y: S::V) -> S::V {
        if self.small {
            s.add(x, s.mul(s.splat(self.w), s.sub(y, x)))
        } else {
            s.sub(y, s.mul(s.sub(y, x), s.splat(self.one_minus_w)))
        }
    }
}

/// `B ← lerp(B, G, 1 − μ)`, `X = lerp(G, B, μ)` (Nesterov) or `B`, over `n` elements: `buf`
/// stored as `S`, `x` (the workspace) as `T`, `g` as `G`.
struct MomentumKernel<T, S, G> {
    n: usize,
    buf: *mut u8,
    x: *mut T,
    g: *const u8,
    draw: Option<Draw<2>>,
    into_buf: Lerp<T>,
    nesterov: Option<Lerp<T>>,
    _types: PhantomData<(S, G)>,
}

impl<T: Element, S: Storage<T>, G: Storage<T>> Kernel<T> for MomentumKernel<T, S, G> {
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (into_buf, nesterov) = (self.into_buf, self.nesterov);
        // SAFETY: `step_matrix_with` checked that `buf`, `x` and `g` hold n elements of their
        // types; `buf` and `x` come from distinct exclusive borrows (the momentum buffer and the
        // workspace), so no written buffer overlaps another or `g`.
        unsafe {
            zip_stored::<T, V, S, T, G, 2, 1>(
                s,
                self.n,
                [self.buf, self.x.cast()],
                [self.g],
                self.draw,
                #[inline(always)]
                |[b, x], [g], _| {
                    *b = into_buf.apply(s, *b, g);
                    *x = match nesterov {
                        Some(l) => l.apply(s, g, *b),
                        None => *b,
                    };
                },
            )
        }
    }
}

/// `P ← P·keep + (−η)·X` (two products, then the sum, each rounded) over `n` elements: the
/// parameters stored as `P`, `x` (the workspace) as `T`.
struct UpdateKernel<T, P> {
    n: usize,
    params: *mut u8,
    x: *const T,
    draw: Option<Draw<1>>,
    keep: T,
    eta: T,
    _types: PhantomData<P>,
}

impl<T: Element, P: Storage<T>> Kernel<T> for UpdateKernel<T, P> {
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (keep, minus_eta) = (s.splat(self.keep), s.splat(-self.eta));
        // SAFETY: `step_matrix_with` checked that the parameters and `x` hold n elements of
        // their types; the parameters are an exclusive borrow, so they do not overlap `x`.
        unsafe {
            zip_stored::<T, V, P, P, T, 1, 1>(
                s,
                self.n,
                [self.params],
                [self.x.cast()],
                self.draw,
                #[inline(always)]
                |[p], [x], _| *p = s.add(s.mul(keep, *p), s.mul(minus_eta, x)),
            )
        }
    }
}

/// `x ← x / d`.
struct DivKernel<'a, T> {
    x: &'a mut [T],
    d: T,
}

impl<T: Element> Kernel<T> for DivKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let d = s.splat(self.d);
        // SAFETY: `x` holds x.len() elements and is the only buffer.
        unsafe {
            zip(
                s,
                self.x.len(),
                [self.x.as_mut_ptr()],
                [],
                #[inline(always)]
                |[x]: &mut [S::V; 1], []: [S::V; 0]| *x = s.div(*x, d),
            )
        }
    }
}

/// `rw ← alpha·rw + beta·ro` (two products, then the sum, each rounded).
struct LinKernel<'a, T> {
    rw: &'a mut [T],
    ro: &'a [T],
    alpha: T,
    beta: T,
}

impl<T: Element> Kernel<T> for LinKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.rw.len();
        debug_assert!(self.ro.len() == n);
        let (alpha, beta) = (s.splat(self.alpha), s.splat(self.beta));
        // SAFETY: `rw` and `ro` hold n elements each (checked by `step_matrix`); `rw` is an
        // exclusive borrow, so it does not overlap `ro`.
        unsafe {
            zip(
                s,
                n,
                [self.rw.as_mut_ptr()],
                [self.ro.as_ptr()],
                #[inline(always)]
                |[w]: &mut [S::V; 1], [r]: [S::V; 1]| {
                    *w = s.add(s.mul(alpha, *w), s.mul(beta, r));
                },
            )
        }
    }
}
