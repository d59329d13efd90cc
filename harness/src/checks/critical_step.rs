//! Ben Arous, Gheissari, Jagannath, "High-dimensional limit theorems for SGD: Effective dynamics
//! and critical scaling" (NeurIPS 2022, arXiv:2206.04030): spiked matrix PCA (k = 2), online SGD
//! at the critical step δ = c_δ/n follows an effective ODE whose population corrector depends on
//! c_δ; design in `docs/checks/critical-step-scaling.md`.
//!
//! # Instance
//! Data `Y = λ v vᵀ + W` with `W` an n×n matrix of i.i.d. N(0,1) entries (not symmetrized), a fresh
//! `W` every step, loss `L(x, Y) = ‖Y − x xᵀ‖²_F`, `v = e₁`. Then `∇L = −2(Y + Yᵀ)x + 4R²x` with
//! `(Y + Yᵀ)x = 2λ m v + ξ`, `ξ = (W + Wᵀ)x ~ N(0, 2R² I + 2 x xᵀ)`, so the step is
//!
//! ```text
//! x ← x + δ (4λ m v + 2ξ − 4R² x),     m = ⟨x, v⟩,  R² = ‖x‖²,  r⊥² = R² − m²,
//! ```
//!
//! and `ξ` is drawn exactly, in O(n), as `ξ = √2 R (g + (√2 − 1)(x̂·g) x̂)` with `g ~ N(0, I)`
//! (same law as `(W + Wᵀ)x`; with fresh `W` each step the whole path has the same law).
//!
//! # Effective ODE (time t = ℓ·δ)
//! ```text
//! u̇₁ = 4 u₁ (λ − R²),   u̇₂ = −8 R² (u₂ − c_δ),   R² = u₁² + u₂,
//! ```
//! (Prop. 3.1 of the paper with k = 2: `u̇₁ = 2u₁(2λ − 2R²)`, `u̇₂ = −8R²(u₂ − c_δ)`). Fixed points:
//! `u₂ = c_δ`, and `u₁² = λ − c_δ` when `λ > c_δ` (stable), `u₁ = 0` otherwise: the critical SNR is
//! `λ_c = c_δ` (Prop. 3.2 states it for c_δ = 1). With `c_δ = 0` this is population gradient flow.
//!
//! # Symmetrized noise (control N3)
//! Symmetrizing the data as `W_s = (W + Wᵀ)/√2` (GOE: off-diagonal N(0,1), diagonal N(0,2)) gives
//! `∇L = −4λ m v − 4 W_s x + 4R² x`, i.e. the same step with `ξ_s = 2 W_s x = √2 (W + Wᵀ) x`,
//! whose law is exactly `N(0, 2·(2R² I + 2 x xᵀ))`: the reduced sampler with doubled covariance,
//! which is what N3 draws. Its corrector doubles (`u₂ → 2c_δ`).
//!
//! All vector arithmetic of the SGD step goes through `descent_kernels::vector` (`dot`,
//! `sum_squares`, `scale`, `axpy`) and the normals through `descent_kernels::random::fill_normal`.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics::{self, loglog_fit, median, ols, rk4};
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::vector;
use serde::{Deserialize, Serialize};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// Plateau value of the overlap m² (qualified `c_δ = …` when several step sizes are scored).
    pub const PLATEAU_M2: CriterionKey = CriterionKey::new("plateau m²");
    /// Plateau value of the orthogonal part r⊥² (qualified like [`PLATEAU_M2`]).
    pub const PLATEAU_R_PERP2: CriterionKey = CriterionKey::new("plateau r⊥²");
    /// Largest distance of the averaged m from the ODE solution u₁.
    pub const SUP_M_ERROR: CriterionKey = CriterionKey::new("sup_t |m_avg − u₁|");
    /// Largest distance of the averaged r from the ODE solution u₂.
    pub const SUP_R_ERROR: CriterionKey = CriterionKey::new("sup_t |r_avg − u₂|");
    /// Slope of the plateau r⊥² in c_δ.
    pub const R_PERP2_SLOPE: CriterionKey = CriterionKey::new("r⊥² slope in c_δ");
    /// Intercept of the plateau r⊥² in c_δ.
    pub const R_PERP2_INTERCEPT: CriterionKey = CriterionKey::new("r⊥² intercept");
    /// Slope of the plateau m² in c_δ.
    pub const M2_SLOPE: CriterionKey = CriterionKey::new("m² slope in c_δ");
    /// Intercept of the plateau m² in c_δ.
    pub const M2_INTERCEPT: CriterionKey = CriterionKey::new("m² intercept");
    /// Log-log slope of the fluctuation size e(n) in the dimension n.
    pub const FLUCTUATION_SLOPE: CriterionKey = CriterionKey::new("log-log slope of e(n)");
}

/// Citation shared by the checks of this paper.
pub const PAPER: &str = "G. Ben Arous, R. Gheissari, A. Jagannath, \"High-dimensional limit \
theorems for SGD: Effective dynamics and critical scaling\", NeurIPS 2022, arXiv:2206.04030 \
(Thm 2.2, Props 3.1-3.3)";

// =================================================================== simulation

/// The noise law of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// i.i.d. N(0,1) entries, as in the paper.
    Iid,
    /// GOE-symmetrized `(W + Wᵀ)/√2` (control N3): the noise covariance doubles.
    Symmetrized,
}

/// The model family: tensor order k and the constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// Tensor order k ≥ 2 (k = 2: spiked matrix PCA).
    pub order: usize,
    /// Online SGD on the unit sphere (loss −⟨Y, x^⊗k⟩, step then renormalise) instead of the
    /// unconstrained loss ‖Y − x^⊗k‖².
    pub spherical: bool,
}

impl Model {
    /// The design's instance: spiked matrix PCA, unconstrained.
    pub const MATRIX: Model = Model {
        order: 2,
        spherical: false,
    };

    /// Factor on the noise `ξ` for the symmetrised data of control N3: with
    /// `W_s = Σ_π W∘π / √k!` (off-diagonal entries N(0, 1)), `k·W_s[x, …, x, ·] = √k!·ξ`.
    pub fn symmetrized_noise(&self) -> f64 {
        (1..=self.order).map(|i| i as f64).product::<f64>().sqrt()
    }

    /// The ODE's start from the configured warm start: `(m₀, r₀)`, or on the sphere the
    /// normalised `(m₀, r₀)/(m₀² + r₀)` (m scaled by the norm, r⊥² by its square).
    pub fn start(&self, m0: f64, r0: f64) -> (f64, f64) {
        if self.spherical {
            let q = m0 * m0 + r0;
            (m0 / q.sqrt(), r0 / q)
        } else {
            (m0, r0)
        }
    }
}

/// One SGD run.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec {
    /// Tensor order and constraint.
    pub model: Model,
    /// Dimension.
    pub n: usize,
    /// Signal-to-noise ratio λ.
    pub lambda: f64,
    /// Step size δ.
    pub delta: f64,
    /// Final ODE time T (the run takes round(T/δ) steps).
    pub t_end: f64,
    /// Initial correlation m(0).
    pub m0: f64,
    /// Initial r⊥²(0).
    pub r0: f64,
    /// Number of recording intervals (grid + 1 recorded times, from 0 to T).
    pub grid: usize,
    /// Noise law.
    pub noise: Noise,
    /// Seed.
    pub seed: u64,
    /// Stream index of the seed (independent streams for the sub-runs of a check).
    pub stream: u32,
}

/// What a run records.
#[derive(Clone, Debug)]
pub struct Run {
    /// Recorded times ℓ·δ.
    pub t: Vec<f64>,
    /// m at those times.
    pub m: Vec<f64>,
    /// r⊥² at those times.
    pub r: Vec<f64>,
    /// Average of m² over every step with t ∈ [T/2, T].
    pub plateau_m2: f64,
    /// Average of r⊥² over every step with t ∈ [T/2, T].
    pub plateau_r: f64,
}

/// Number of SGD steps to reach time `t_end` with step `delta`.
pub fn steps(t_end: f64, delta: f64) -> usize {
    (t_end / delta).round() as usize
}

/// Runs online SGD on the spiked tensor model of order k from the warm start
/// `x₀ = m₀ v + √r₀ w` (normalised on the sphere), with `v` a seeded random unit vector and `w` a
/// random unit vector orthogonal to `v`.
///
/// Unconstrained: `∇L = −2(kλ m^{k−1} v + ξ) + 2k R^{2k−2} x`, so
/// `x ← x + δ(2kλ m^{k−1} v + 2ξ − 2k R^{2k−2} x)`. Spherical: `∇(−⟨Y, x^⊗k⟩) = −(kλ m^{k−1} v + ξ)`,
/// so `x ← x + δ(kλ m^{k−1} v + ξ)`, then `x ← x/‖x‖`. In both, `ξ` (the sum over the k slots of
/// W contracted with x in the other k − 1) has law `N(0, k R^{2k−2} I + k(k−1) R^{2k−4} x xᵀ)` and is
/// drawn as `√k R^{k−1} (g + (√k − 1)(x̂·g) x̂)`, `g ~ N(0, I)`.
pub fn simulate(s: &RunSpec) -> Run {
    let n = s.n;
    let k = s.model.order;
    let kf = k as f64;
    let sk = kf.sqrt();
    let mut rng = numerics::stream(s.seed, s.stream);
    let v = numerics::random_unit_vector(&mut rng, n, 0);
    let mut x = numerics::random_unit_vector(&mut rng, n, 0);
    let xv = vector::dot(&x, &v).expect("equal lengths");
    vector::axpy(-xv, &v, &mut x).expect("equal lengths");
    let xn = vector::norm2(&x);
    vector::scale(s.r0.sqrt() / xn, &mut x);
    vector::axpy(s.m0, &v, &mut x).expect("equal lengths");
    if s.model.spherical {
        let xn = vector::norm2(&x);
        vector::scale(1.0 / xn, &mut x);
    }
    let mut g = vec![0.0; n];

    let total = steps(s.t_end, s.delta);
    let record_at: Vec<usize> = (0..=s.grid)
        .map(|j| (j as f64 * total as f64 / s.grid as f64).round() as usize)
        .collect();
    let window_start = total.div_ceil(2);
    let noise = match s.noise {
        Noise::Iid => 1.0,
        Noise::Symmetrized => s.model.symmetrized_noise(),
    };
    let (mut t, mut ms, mut rs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sum_m2, mut sum_r, mut count) = (0.0, 0.0, 0usize);
    let mut next = 0;
    for l in 0..=total {
        let m = vector::dot(&x, &v).expect("equal lengths");
        let r2 = vector::sum_squares(&x);
        let rperp = r2 - m * m;
        if l >= window_start {
            sum_m2 += m * m;
            sum_r += rperp;
            count += 1;
        }
        while next < record_at.len() && record_at[next] == l {
            t.push(l as f64 * s.delta);
            ms.push(m);
            rs.push(rperp);
            next += 1;
        }
        if l == total {
            break;
        }
        // ξ = noise·√k·(R^{k−1} g + (√k − 1)(x·g) R^{k−3} x); at R = 0 the noise vanishes.
        numerics::fill_std_normal(&mut rng, &mut g);
        let xg = vector::dot(&x, &g).expect("equal lengths");
        let rr = r2.sqrt();
        let (xi_g, xi_x) = if rr > 0.0 {
            (
                noise * sk * rr.powi(k as i32 - 1),
                noise * sk * (sk - 1.0) * xg * rr.powi(k as i32 - 3),
            )
        } else {
            (0.0, 0.0)
        };
        let d = s.delta;
        let signal = kf * s.lambda * m.powi(k as i32 - 1);
        if s.model.spherical {
            // x ← (x + δ(kλ m^{k−1} v + ξ)) / ‖·‖
            vector::scale(1.0 + d * xi_x, &mut x);
            vector::axpy(d * xi_g, &g, &mut x).expect("equal lengths");
            vector::axpy(d * signal, &v, &mut x).expect("equal lengths");
            let xn = vector::norm2(&x);
            vector::scale(1.0 / xn, &mut x);
        } else {
            // x ← x + δ(2kλ m^{k−1} v + 2ξ − 2k R^{2k−2} x)
            let pull = 2.0 * kf * r2.powi(k as i32 - 1);
            vector::scale(1.0 - d * pull + 2.0 * d * xi_x, &mut x);
            vector::axpy(2.0 * d * xi_g, &g, &mut x).expect("equal lengths");
            vector::axpy(2.0 * d * signal, &v, &mut x).expect("equal lengths");
        }
    }
    Run {
        t,
        m: ms,
        r: rs,
        plateau_m2: sum_m2 / count as f64,
        plateau_r: sum_r / count as f64,
    }
}

/// The right-hand side of the effective ODE (Prop. 3.1 for general k; the spherical variant
/// derived in `docs/checks/critical-step-scaling.md`), `u = (m, r⊥²)`:
///
/// ```text
/// unconstrained: u̇₁ = 2k u₁ (λ u₁^{k−2} − R^{2k−2}),  u̇₂ = −4k R^{2k−2} (u₂ − c),  R² = u₁² + u₂
/// spherical:     u̇₁ = kλ u₁^{k−1} (1 − u₁²) − (ck/2) u₁,  u₂ = 1 − u₁² (u̇₂ = −2u₁u̇₁)
/// ```
fn ode_rhs(model: Model, lambda: f64, c: f64, u: &[f64; 2]) -> [f64; 2] {
    let k = model.order as i32;
    let kf = k as f64;
    if model.spherical {
        let d1 = kf * lambda * u[0].powi(k - 1) * (1.0 - u[0] * u[0]) - 0.5 * c * kf * u[0];
        [d1, -2.0 * u[0] * d1]
    } else {
        let r2 = u[0] * u[0] + u[1];
        let rk = r2.powi(k - 1);
        [
            2.0 * kf * u[0] * (lambda * u[0].powi(k - 2) - rk),
            -4.0 * kf * rk * (u[1] - c),
        ]
    }
}

/// The effective ODE from the warm start `(m0, r0)` (see [`Model::start`]), integrated by RK4
/// with step `dt` and sampled at `times`; returns `(u₁, u₂)`.
pub fn effective_ode(
    model: Model,
    lambda: f64,
    c: f64,
    m0: f64,
    r0: f64,
    times: &[f64],
    dt: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (a, b) = model.start(m0, r0);
    let u = rk4(
        |_, u: &[f64; 2]| ode_rhs(model, lambda, c, u),
        0.0,
        [a, b],
        times,
        dt,
    );
    (
        u.iter().map(|p| p[0]).collect(),
        u.iter().map(|p| p[1]).collect(),
    )
}

/// The ODE's plateau: time-averages of `u₁²` and `u₂` over `[T/2, T]` (trapezoid on 401 points).
pub fn ode_plateau(
    model: Model,
    lambda: f64,
    c: f64,
    m0: f64,
    r0: f64,
    t_end: f64,
    dt: f64,
) -> (f64, f64) {
    let times: Vec<f64> = (0..=400)
        .map(|i| t_end / 2.0 + t_end / 2.0 * i as f64 / 400.0)
        .collect();
    let (u1, u2) = effective_ode(model, lambda, c, m0, r0, &times, dt);
    let u1sq: Vec<f64> = u1.iter().map(|a| a * a).collect();
    (
        numerics::time_average(&times, &u1sq, t_end / 2.0, t_end),
        numerics::time_average(&times, &u2, t_end / 2.0, t_end),
    )
}

/// The informative fixed points solve `λ = G(m)` with, for m > 0,
/// `G(m) = (m² + c)^{k−1} / m^{k−2}` (unconstrained, u₂ = c) or
/// `G(m) = c / (2 m^{k−2} (1 − m²))` on (0, 1) (spherical). For k ≥ 3 and c > 0, G falls then rises,
/// with its minimum at `m_c² = (k−2)c/k` (unconstrained) or `m_c² = (k−2)/k` (spherical).
fn g_fixed(model: Model, c: f64, m: f64) -> f64 {
    let k = model.order as i32;
    if model.spherical {
        c / (2.0 * m.powi(k - 2) * (1.0 - m * m))
    } else {
        (m * m + c).powi(k - 1) / m.powi(k - 2)
    }
}

fn m_c(model: Model, c: f64) -> f64 {
    let kf = model.order as f64;
    if model.spherical {
        ((kf - 2.0) / kf).sqrt()
    } else {
        ((kf - 2.0) * c / kf).sqrt()
    }
}

/// The critical SNR `λ_c = min G`: `c` (unconstrained, k = 2), `c/2` (spherical, k = 2),
/// `G(m_c)` for k ≥ 3 (e.g. `(16√3/9)c^{3/2}` ≈ 3.079 c^{3/2} unconstrained at k = 3).
pub fn lambda_c(model: Model, c: f64) -> f64 {
    match (model.order, model.spherical) {
        (2, false) => c,
        (2, true) => c / 2.0,
        _ if c <= 0.0 => 0.0,
        _ => g_fixed(model, c, m_c(model, c)),
    }
}

/// Bisection for `G(m) = λ` on `[lo, hi]` where `G − λ` changes sign.
fn bisect(model: Model, c: f64, lambda: f64, mut lo: f64, mut hi: f64) -> f64 {
    let f = |m: f64| g_fixed(model, c, m) - lambda;
    let flo = f(lo);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if (f(mid) > 0.0) == (flo > 0.0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The unstable and stable informative points `(m†, m★)` (m† = 0 when k = 2 or c = 0), or `None`
/// when `λ ≤ λ_c`.
pub fn informative_points(model: Model, lambda: f64, c: f64) -> Option<(f64, f64)> {
    if lambda <= lambda_c(model, c) {
        return None;
    }
    let k = model.order;
    match (k, model.spherical) {
        (2, false) => return Some((0.0, (lambda - c).sqrt())),
        (2, true) => return Some((0.0, (1.0 - c / (2.0 * lambda)).sqrt())),
        _ => {}
    }
    if c <= 0.0 {
        // Gradient flow: m^k = λ (unconstrained) or m = 1 (sphere); no barrier.
        let star = if model.spherical {
            1.0
        } else {
            lambda.powf(1.0 / k as f64)
        };
        return Some((0.0, star));
    }
    let mc = m_c(model, c);
    let tiny = 1e-300f64.powf(1.0 / k as f64).max(1e-12);
    let dagger = bisect(model, c, lambda, tiny, mc);
    let mut hi = if model.spherical {
        1.0 - 1e-15
    } else {
        2.0 * mc + 1.0
    };
    if !model.spherical {
        while g_fixed(model, c, hi) < lambda {
            hi *= 2.0;
        }
    }
    Some((dagger, bisect(model, c, lambda, mc, hi)))
}

/// Whether the ODE started at the warm start `(m0, r0)` ends at the informative point `m★`
/// (rather than m = 0). The barrier m† is a point of the slow manifold u₂ = c; from a start with
/// r₀ ≠ c the separatrix is elsewhere, so the basin is decided by integrating the ODE to t = 100
/// and asking whether |u₁| is within m★/2 of m★ (the ODE's plateau predictions at T ≤ 100 are
/// time-averages and do not depend on this classification; it only feeds notes and validation).
pub fn reaches_informative(model: Model, lambda: f64, c: f64, m0: f64, r0: f64) -> bool {
    let Some((_, star)) = informative_points(model, lambda, c) else {
        return false;
    };
    let (u1, _) = effective_ode(model, lambda, c, m0, r0, &[100.0], 1e-3);
    (u1[0].abs() - star).abs() < 0.5 * star
}

/// The stable fixed point `(m², r⊥²)` the ODE reaches from the warm start: the informative point
/// `m★` if `λ > λ_c` and the start lies in its basin ([`reaches_informative`]), otherwise
/// `m = 0`; `r⊥² = c` (unconstrained) or `1 − m²` (spherical). At k = 2 unconstrained this is
/// `(max(0, λ − c), c)` (Prop. 3.2, any c).
pub fn fixed_point(model: Model, lambda: f64, c: f64, m0: f64, r0: f64) -> (f64, f64) {
    let m2 = match informative_points(model, lambda, c) {
        Some((_, star)) if reaches_informative(model, lambda, c, m0, r0) => star * star,
        _ => 0.0,
    };
    (m2, if model.spherical { 1.0 - m2 } else { c })
}

/// A tolerance `stat·√(n_ref·S_ref/(n·S)) + bias·n_ref/n`: a statistical part that shrinks as
/// 1/√(n·S) and an O(1/n) finite-size bias, both given at the reference size.
fn tolerance(parts: &[f64], n_ref: f64, s_ref: f64, n: f64, s: f64) -> f64 {
    parts[0] * (n_ref * s_ref / (n * s)).sqrt() + parts[1] * n_ref / n
}

fn tol_formula(parts: &[f64], n_ref: f64, s_ref: f64) -> String {
    format!(
        "{}·√({}·{}/(n·S)) + {}·{}/n",
        parts[0], n_ref, s_ref, parts[1], n_ref
    )
}

fn seed_means(runs: &[&Run], f: impl Fn(&Run) -> &[f64]) -> Vec<f64> {
    let len = f(runs[0]).len();
    (0..len)
        .map(|i| runs.iter().map(|r| f(r)[i]).sum::<f64>() / runs.len() as f64)
        .collect()
}

fn sup_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |acc, d| {
            if d.is_nan() || acc.is_nan() {
                f64::NAN
            } else {
                acc.max(d)
            }
        })
}

fn tol_list_ok(key: &str, v: &[f64]) -> Result<(), String> {
    if v.len() == 2 {
        Ok(())
    } else {
        Err(format!(
            "`{key}` must be [statistical, bias] (2 numbers), got {} numbers",
            v.len()
        ))
    }
}

const N1: Control = Control {
    id: "N1",
    description:
        "wrong theory: the same runs scored against population gradient flow (c_δ = 0 in the ODE)",
};
const N2: Control = Control {
    id: "N2",
    description: "step not rescaled with n: δ = c_δ/n2_step_n (tuned for a smaller n), scored against the nominal c_δ",
};
const N3: Control = Control {
    id: "N3",
    description:
        "wrong noise model: symmetrized data noise (W + Wᵀ)/√2, which doubles the noise covariance",
};

// Stream indices: case·16 + sub-run, so every (case, sub-run, seed) draws its own stream.
const CASE_POSITIVE: u32 = 0;
const CASE_N2: u32 = 1;
const CASE_N3: u32 = 2;

// =================================================================== P2-A: trajectory

check_config! {
    /// Configuration of `critical-step/trajectory` (design P2-A).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TrajectoryConfig {
        /// Dimension n.
        n: usize = 2000, Range::int(16, N_MAX);
        /// SNR λ.
        lambda: f64 = 1.5, in common;
        /// c_δ = δ·n.
        c_delta: f64 = 1.0, Range::real(0.01, 8.0);
        /// m(0).
        m0: f64 = 0.5, in common;
        /// r⊥²(0).
        r0: f64 = 0.5, in common;
        /// Final ODE time T.
        t: f64 = 5.0, in common;
        /// Number of seeds S.
        seeds: usize = 8, in common;
        /// First seed (runs use seed, seed+1, ..., shifted by `--seed`).
        seed: u64 = 1, in common;
        /// Recording intervals on [0, T].
        grid: usize = 200, in common;
        /// RK4 step of the effective ODE.
        ode_dt: f64 = 1e-3, in common;
        /// Plateau tolerance [statistical, bias] at the reference size.
        tol_plateau: Vec<f64> = vec![0.02, 0.01], Range::real(0.0, 10.0).list(2);
        /// sup_t |m_avg − u₁| tolerance [statistical, bias] at the reference size.
        tol_sup_m: Vec<f64> = vec![0.06, 0.0], Range::real(0.0, 10.0).list(2);
        /// sup_t |r_avg − u₂| tolerance [statistical, bias] at the reference size.
        tol_sup_r: Vec<f64> = vec![0.09, 0.0], Range::real(0.0, 10.0).list(2);
        /// Reference n of the tolerances.
        tol_ref_n: f64 = 2000.0, in common;
        /// Reference seed count of the tolerances.
        tol_ref_seeds: f64 = 8.0, in common;
        /// N2: the dimension the step was tuned for (δ = c_δ / n2_step_n).
        n2_step_n: usize = 500, in common;
        /// Tensor order k ≥ 2 (2: spiked matrix PCA).
        order: usize = 2, in common;
        /// Online SGD on the unit sphere (loss −⟨Y, x^⊗k⟩, renormalised every step).
        spherical: bool = false, in common;
    }
}

const N_MAX: i64 = 200_000;
const SEED_MAX: i64 = 1 << 53;

/// Ranges shared by several configs of this module.
#[allow(non_upper_case_globals)]
mod common {
    use super::*;
    pub const lambda: Range = Range::real(0.0, 20.0);
    pub const m0: Range = Range::real(-3.0, 3.0);
    pub const r0: Range = Range::real(0.0, 9.0);
    pub const t: Range = Range::real(0.1, 100.0);
    pub const seeds: Range = Range::int(1, 1024);
    pub const seed: Range = Range::int(0, SEED_MAX);
    pub const grid: Range = Range::int(10, 100_000);
    pub const ode_dt: Range = Range::real(1e-6, 0.1);
    pub const tol_ref_n: Range = Range::real(1.0, 1e7);
    pub const tol_ref_seeds: Range = Range::real(1.0, 1e4);
    pub const n2_step_n: Range = Range::int(1, N_MAX);
    pub const order: Range = Range::int(2, MAX_ORDER as i64);
    pub const spherical: Range = Range::int(0, 1);
}

/// The largest tensor order accepted. At k = 4 the relaxation rates at the plateau are so large
/// that δ·rate ≈ 0.2 at the default sizes (n = 2000, c_δ = 1, λ = 12): the per-step discretisation
/// bias, which the n → ∞ limit drops, is then larger than the tolerances' bias part (measured
/// plateau m² 1.67 against 1.77), and keeping it small would need n ≳ 10⁴ per run.
pub const MAX_ORDER: usize = 3;

/// Largest accepted δ·ρ for k ≥ 3, ρ the fastest linear relaxation rate of the ODE at the plateau
/// (see [`stiffness`]). Each SGD step is an Euler step of size δ of the drift, which leaves a
/// relative bias of order δ·ρ in the plateau; the tolerances' bias parts (0.01 at the reference
/// size) were calibrated at k = 2, where δ·ρ = 0.006–0.012 at the defaults. At k = 3, λ = 4,
/// c_δ = 1, n = 2000 (δ·ρ = 0.024) the measured plateau bias is 0.016 on m², within the 0.03 band;
/// the bound keeps k ≥ 3 runs in that regime.
const MAX_STIFFNESS: f64 = 0.025;

/// δ·ρ: the step times the fastest relaxation rate of the ODE at the fixed point the warm start
/// reaches (the diagonal of the Jacobian by central differences).
pub fn stiffness(model: Model, lambda: f64, c: f64, m0: f64, r0: f64, delta: f64) -> f64 {
    let (m2, r) = fixed_point(model, lambda, c, m0, r0);
    let u = [m2.sqrt(), r];
    let h = 1e-6;
    let d = |i: usize| {
        let (mut a, mut b) = (u, u);
        a[i] += h;
        b[i] -= h;
        ((ode_rhs(model, lambda, c, &a)[i] - ode_rhs(model, lambda, c, &b)[i]) / (2.0 * h)).abs()
    };
    let rate = if model.spherical {
        d(0)
    } else {
        d(0).max(d(1))
    };
    delta * rate
}

/// Smallest accepted distance of the warm start from the unstable point m†.
const BARRIER_MARGIN: f64 = 0.1;

/// Constraints of the model family shared by the four checks: for odd k a negative start falls to
/// m = 0 (the signal term is even in m), so `m0 > 0` is required; for k ≥ 3 the step must keep
/// δ·ρ ≤ `MAX_STIFFNESS`; and a warm start within `BARRIER_MARGIN` of the separatrix between
/// m = 0 and m★ (k ≥ 3, where m† > 0) would let the O(n^{−1/2}) fluctuations decide on which side
/// a run ends, which the deterministic ODE cannot predict.
fn validate_model(
    model: Model,
    lambda: f64,
    cs: &[f64],
    m0: f64,
    r0: f64,
    n: f64,
) -> Result<(), String> {
    if model.order % 2 == 1 && m0 <= 0.0 {
        return Err(format!(
            "`order` = {} is odd: the signal term λm^(k−1) is even in m, so `m0` must be > 0",
            model.order
        ));
    }
    if model.spherical && m0 * m0 + r0 <= 0.0 {
        return Err("`spherical`: the warm start m0 v + √r0 w must be nonzero to normalise".into());
    }
    for &c in cs {
        let st = stiffness(model, lambda, c, m0, r0, c / n);
        if model.order >= 3 && st > MAX_STIFFNESS {
            return Err(format!(
                "order {}: δ·ρ = {st:.3} at c_δ = {c}, n = {n} (ρ the fastest relaxation rate of the ODE at the plateau) exceeds {MAX_STIFFNESS}: the per-step discretisation bias would exceed the tolerances' bias part, calibrated at k = 2; raise `n` (`ns`) or lower `lambda`, `c_delta`",
                model.order
            ));
        }
        let here = reaches_informative(model, lambda, c, m0, r0);
        let lo = reaches_informative(model, lambda, c, m0 - BARRIER_MARGIN, r0);
        let hi = reaches_informative(model, lambda, c, m0 + BARRIER_MARGIN, r0);
        if informative_points(model, lambda, c).is_some() && (lo != here || hi != here) {
            return Err(format!(
                "the warm start m0 = {m0} is within {BARRIER_MARGIN} of the barrier between m = 0 and the informative fixed point (order {}, λ = {lambda}, c_δ = {c}; the ODE from m0 ± {BARRIER_MARGIN} ends at different points): which side a run ends on would be decided by the fluctuations, not the ODE; move `m0`",
                model.order
            ));
        }
    }
    Ok(())
}

fn check_steps(what: &str, t: f64, n: f64, c: f64, grid: usize) -> Result<(), String> {
    let l = steps(t, c / n);
    if l < grid {
        return Err(format!(
            "{what}: T·n/c_δ = {l} steps is fewer than `grid` = {grid} recording intervals"
        ));
    }
    if l as f64 * n > 5e10 {
        return Err(format!(
            "{what}: T·n/c_δ·n = {:.1e} normals per run is above the 5e10 limit",
            l as f64 * n
        ));
    }
    Ok(())
}

impl TrajectoryConfig {
    /// `(gap, band)`: the largest difference between the closed-form fixed points `(m², r⊥²)` at
    /// `c_control` and at the nominal `c_delta`, and the plateau band at this `n` and seed count.
    /// A control scored against the nominal prediction can only fail when `gap` exceeds the band
    /// by a margin.
    pub fn control_gap(&self, c_control: f64) -> (f64, f64) {
        let model = self.model();
        let band = tolerance(
            &self.tol_plateau,
            self.tol_ref_n,
            self.tol_ref_seeds,
            self.n as f64,
            self.seeds as f64,
        );
        let fp = |c: f64| fixed_point(model, self.lambda, c, self.m0, self.r0);
        let (a, b) = (fp(c_control), fp(self.c_delta));
        ((a.0 - b.0).abs().max((a.1 - b.1).abs()), band)
    }

    /// The model family of this configuration.
    pub fn model(&self) -> Model {
        Model {
            order: self.order,
            spherical: self.spherical,
        }
    }
}

impl CheckConfig for TrajectoryConfig {
    fn validate(&self) -> Result<(), String> {
        tol_list_ok("tol_plateau", &self.tol_plateau)?;
        tol_list_ok("tol_sup_m", &self.tol_sup_m)?;
        tol_list_ok("tol_sup_r", &self.tol_sup_r)?;
        validate_model(
            self.model(),
            self.lambda,
            &[self.c_delta],
            self.m0,
            self.r0,
            self.n as f64,
        )?;
        // N1 and N3 are scored against the prediction at the nominal c_δ and fail only if their
        // own plateau differs from it by more than the band: require the closed-form fixed points
        // to differ by at least 3 bands. N2 is not validated: its effective c_δ is set by
        // `n2_step_n`, the control's own knob (n2_step_n = n makes it the positive run, which the
        // CLI tests use to show that a passing control is reported).
        let model = self.model();
        for (control, c) in [
            ("N1 (gradient flow, c_δ = 0)", 0.0),
            (
                "N3 (symmetrised noise, c_δ·k!)",
                self.c_delta * model.symmetrized_noise().powi(2),
            ),
        ] {
            let (gap, band) = self.control_gap(c);
            if gap < 3.0 * band {
                return Err(format!(
                    "control {control}: its fixed point is within 3 plateau bands (gap {gap:.4} < 3 × {band:.4}) of the nominal one, so the control could not fail; the corrector's effect is too small at λ = {}, c_δ = {} for n = {}, S = {}",
                    self.lambda, self.c_delta, self.n, self.seeds
                ));
            }
        }
        check_steps(
            "`t`, `n`, `c_delta`",
            self.t,
            self.n as f64,
            self.c_delta,
            self.grid,
        )?;
        check_steps(
            "`t`, `n2_step_n`, `c_delta` (control N2)",
            self.t,
            self.n2_step_n as f64,
            self.c_delta,
            self.grid,
        )
    }
}

/// P2-A: SGD at δ = c_δ/n follows the effective ODE with corrector and reaches its plateau.
pub struct Trajectory;

impl Trajectory {
    /// The verdict function of P2-A: positive run and controls alike.
    pub fn score(cfg: &TrajectoryConfig, runs: &[Run], c_theory: f64) -> Scored {
        let refs: Vec<&Run> = runs.iter().collect();
        let t = &runs[0].t;
        let (u1, u2) = effective_ode(
            cfg.model(),
            cfg.lambda,
            c_theory,
            cfg.m0,
            cfg.r0,
            t,
            cfg.ode_dt,
        );
        let (gf1, gf2) = effective_ode(cfg.model(), cfg.lambda, 0.0, cfg.m0, cfg.r0, t, cfg.ode_dt);
        let (p_m2, p_r) = ode_plateau(
            cfg.model(),
            cfg.lambda,
            c_theory,
            cfg.m0,
            cfg.r0,
            cfg.t,
            cfg.ode_dt,
        );
        let mbar = seed_means(&refs, |r| &r.m);
        let rbar = seed_means(&refs, |r| &r.r);
        let plateau_m2 = numerics::mean(&runs.iter().map(|r| r.plateau_m2).collect::<Vec<_>>());
        let plateau_r = numerics::mean(&runs.iter().map(|r| r.plateau_r).collect::<Vec<_>>());
        let (n, s) = (cfg.n as f64, cfg.seeds as f64);
        let tol = |p: &[f64]| tolerance(p, cfg.tol_ref_n, cfg.tol_ref_seeds, n, s);
        let why = |p: &[f64], reason: &str| {
            format!(
                "{} = {reason}",
                tol_formula(p, cfg.tol_ref_n, cfg.tol_ref_seeds)
            )
        };
        let plateau_why = why(
            &cfg.tol_plateau,
            "4σ of the seed-mean time-average (stationary sd of m² ≈ 0.045 at n = 2000, ~10 \
             correlation times in [T/2, T], S = 8) plus the O(1/n) bias ≈ 0.01",
        );
        let criteria = vec![
            Criterion::new(
                criteria::PLATEAU_M2,
                p_m2,
                plateau_m2,
                tol(&cfg.tol_plateau),
                &plateau_why,
            ),
            Criterion::new(
                criteria::PLATEAU_R_PERP2,
                p_r,
                plateau_r,
                tol(&cfg.tol_plateau),
                &plateau_why,
            ),
            Criterion::new(
                criteria::SUP_M_ERROR,
                0.0,
                sup_abs_diff(&mbar, &u1),
                tol(&cfg.tol_sup_m),
                &why(
                    &cfg.tol_sup_m,
                    "2× the batch-to-batch range 0.027-0.031 seen over 8-seed batches at n = 2000",
                ),
            ),
            Criterion::new(
                criteria::SUP_R_ERROR,
                0.0,
                sup_abs_diff(&rbar, &u2),
                tol(&cfg.tol_sup_r),
                &why(
                    &cfg.tol_sup_r,
                    "2× the batch-to-batch range 0.039-0.049 seen over 8-seed batches at n = 2000",
                ),
            ),
        ];
        let (fp_m2, fp_r) = fixed_point(cfg.model(), cfg.lambda, c_theory, cfg.m0, cfg.r0);
        Scored {
            criteria,
            series: vec![
                Series::line("m̄ (SGD, seed mean)", t.clone(), mbar, Role::Measured),
                Series::line("r̄⊥² (SGD, seed mean)", t.clone(), rbar, Role::Measured),
                Series::line(
                    &format!("u₁ (ODE, c_δ = {c_theory})"),
                    t.clone(),
                    u1,
                    Role::Prediction,
                ),
                Series::line(
                    &format!("u₂ (ODE, c_δ = {c_theory})"),
                    t.clone(),
                    u2,
                    Role::Prediction,
                ),
                Series::line("u₁ gradient flow", t.clone(), gf1, Role::Reference),
                Series::line("u₂ gradient flow", t.clone(), gf2, Role::Reference),
            ],
            notes: vec![format!(
                "closed-form fixed point for c_δ = {c_theory}: (m², r⊥²) = ({fp_m2:.4}, {fp_r:.4})"
            )],
        }
    }

    fn runs(cfg: &TrajectoryConfig, ctx: &Ctx, delta: f64, noise: Noise, case: u32) -> Vec<Run> {
        let base = ctx.seed(cfg.seed);
        ctx.map(cfg.seeds, |s| {
            simulate(&RunSpec {
                model: cfg.model(),
                n: cfg.n,
                lambda: cfg.lambda,
                delta,
                t_end: cfg.t,
                m0: cfg.m0,
                r0: cfg.r0,
                grid: cfg.grid,
                noise,
                seed: base.wrapping_add(s as u64),
                stream: case * 16,
            })
        })
    }
}

fn axes_traj(case: &str) -> Axes {
    Axes {
        title: format!("critical-step/trajectory ({case}): SGD against the effective ODE"),
        x_label: "t = ℓ·δ".into(),
        y_label: "m, r⊥²".into(),
        log_x: false,
        log_y: false,
    }
}

impl Check for Trajectory {
    type Config = TrajectoryConfig;
    const ID: CheckId = CheckId {
        name: "critical-step/trajectory",
        paper: PAPER,
        claim: "At δ = c_δ/n, SGD's (m, r⊥²) follows the effective ODE with corrector and plateaus at its fixed point (matrix PCA: (λ − c_δ, c_δ)), not gradient flow's (λ, 0); also for tensor order 3 and on the sphere.",
    };
    const CONTROLS: &'static [Control] = &[N1, N2, N3];

    fn run(cfg: &TrajectoryConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let delta = cfg.c_delta / cfg.n as f64;
        let ((pos_runs, pos), sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, delta, Noise::Iid, CASE_POSITIVE);
            let scored = Self::score(cfg, &runs, cfg.c_delta);
            (runs, scored)
        });
        let mut out = vec![pos.into_record(
            id,
            Case::positive("i.i.d. noise, δ = c_δ/n, scored against the ODE with corrector"),
            sec,
            axes_traj("positive"),
        )];
        let (n1, sec) = timed(|| Self::score(cfg, &pos_runs, 0.0));
        let mut r = n1.into_record(id, Case::control(&N1), sec, axes_traj("N1"));
        r.notes
            .push("reuses the positive case's runs; seconds are scoring only".into());
        out.push(r);

        let delta2 = cfg.c_delta / cfg.n2_step_n as f64;
        let (n2, sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, delta2, Noise::Iid, CASE_N2);
            let mut scored = Self::score(cfg, &runs, cfg.c_delta);
            let c_eff = delta2 * cfg.n as f64;
            let (pm, pr) = ode_plateau(
                cfg.model(),
                cfg.lambda,
                c_eff,
                cfg.m0,
                cfg.r0,
                cfg.t,
                cfg.ode_dt,
            );
            let m2 = numerics::mean(&runs.iter().map(|r| r.plateau_m2).collect::<Vec<_>>());
            let rr = numerics::mean(&runs.iter().map(|r| r.plateau_r).collect::<Vec<_>>());
            scored.notes.push(format!(
                "against the ODE with the effective c_δ = δ·n = {c_eff}: plateau (m², r⊥²) predicted ({pm:.4}, {pr:.4}), measured ({m2:.4}, {rr:.4})"
            ));
            scored
        });
        out.push(n2.into_record(id, Case::control(&N2), sec, axes_traj("N2")));

        let (n3, sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, delta, Noise::Symmetrized, CASE_N3);
            Self::score(cfg, &runs, cfg.c_delta)
        });
        out.push(n3.into_record(id, Case::control(&N3), sec, axes_traj("N3")));
        out
    }
}

// =================================================================== P2-B: corrector linear in c_δ

check_config! {
    /// Configuration of `critical-step/corrector-linear` (design P2-B).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CorrectorLinearConfig {
        /// Dimension n.
        n: usize = 1000, Range::int(16, N_MAX);
        /// SNR λ.
        lambda: f64 = 1.5, in common;
        /// The values of c_δ = δ·n (at least two distinct).
        c_deltas: Vec<f64> = vec![0.25, 0.5, 1.0], Range::real(0.01, 8.0).list(2);
        /// m(0).
        m0: f64 = 0.5, in common;
        /// r⊥²(0).
        r0: f64 = 0.5, in common;
        /// Final ODE time T.
        t: f64 = 5.0, in common;
        /// Seeds per c_δ.
        seeds: usize = 4, in common;
        /// First seed.
        seed: u64 = 1, in common;
        /// Recording intervals on [0, T].
        grid: usize = 100, in common;
        /// RK4 step.
        ode_dt: f64 = 1e-3, in common;
        /// r⊥²-slope tolerance [statistical, bias] at the reference size.
        tol_r_slope: Vec<f64> = vec![0.09, 0.01], Range::real(0.0, 10.0).list(2);
        /// r⊥²-intercept tolerance [statistical, bias].
        tol_r_intercept: Vec<f64> = vec![0.04, 0.01], Range::real(0.0, 10.0).list(2);
        /// m²-slope tolerance [statistical, bias].
        tol_m_slope: Vec<f64> = vec![0.11, 0.01], Range::real(0.0, 10.0).list(2);
        /// m²-intercept tolerance [statistical, bias].
        tol_m_intercept: Vec<f64> = vec![0.05, 0.01], Range::real(0.0, 10.0).list(2);
        /// Reference n of the tolerances.
        tol_ref_n: f64 = 1000.0, in common;
        /// Reference seed count of the tolerances.
        tol_ref_seeds: f64 = 4.0, in common;
        /// N2: the dimension the step was tuned for (δ = c_δ / n2_step_n).
        n2_step_n: usize = 250, in common;
        /// Tensor order k ≥ 2 (2: spiked matrix PCA).
        order: usize = 2, in common;
        /// Online SGD on the unit sphere (loss −⟨Y, x^⊗k⟩, renormalised every step).
        spherical: bool = false, in common;
    }
}

fn distinct(v: &[f64]) -> usize {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.dedup();
    s.len()
}

impl CorrectorLinearConfig {
    /// The model family of this configuration.
    pub fn model(&self) -> Model {
        Model {
            order: self.order,
            spherical: self.spherical,
        }
    }
}

impl CheckConfig for CorrectorLinearConfig {
    fn validate(&self) -> Result<(), String> {
        for (k, v) in [
            ("tol_r_slope", &self.tol_r_slope),
            ("tol_r_intercept", &self.tol_r_intercept),
            ("tol_m_slope", &self.tol_m_slope),
            ("tol_m_intercept", &self.tol_m_intercept),
        ] {
            tol_list_ok(k, v)?;
        }
        if distinct(&self.c_deltas) < 2 {
            return Err("`c_deltas` needs at least two distinct values for a slope".into());
        }
        validate_model(
            self.model(),
            self.lambda,
            &self.c_deltas,
            self.m0,
            self.r0,
            self.n as f64,
        )?;
        for &c in &self.c_deltas {
            check_steps("`t`, `n`, `c_deltas`", self.t, self.n as f64, c, self.grid)?;
            check_steps(
                "`t`, `n2_step_n`, `c_deltas` (control N2)",
                self.t,
                self.n2_step_n as f64,
                c,
                self.grid,
            )?;
        }
        Ok(())
    }
}

/// P2-B: the plateaus are linear in c_δ = δ·n, slopes (−1, +1).
pub struct CorrectorLinear;

/// Seed-mean plateaus per c_δ.
#[derive(Clone, Debug)]
pub struct Plateaus {
    /// c_δ of each point (the nominal value the run was configured with).
    pub c: Vec<f64>,
    /// Seed-mean plateau m².
    pub m2: Vec<f64>,
    /// Seed-mean plateau r⊥².
    pub r: Vec<f64>,
}

impl CorrectorLinear {
    /// The verdict function of P2-B; `c_theory` maps a nominal c_δ to the one the theory uses.
    pub fn score(
        cfg: &CorrectorLinearConfig,
        p: &Plateaus,
        c_theory: impl Fn(f64) -> f64,
    ) -> Scored {
        let pred: Vec<(f64, f64)> =
            p.c.iter()
                .map(|&c| {
                    ode_plateau(
                        cfg.model(),
                        cfg.lambda,
                        c_theory(c),
                        cfg.m0,
                        cfg.r0,
                        cfg.t,
                        cfg.ode_dt,
                    )
                })
                .collect();
        let pm2: Vec<f64> = pred.iter().map(|q| q.0).collect();
        let pr: Vec<f64> = pred.iter().map(|q| q.1).collect();
        let (fit_r, fit_m) = (ols(&p.c, &p.r), ols(&p.c, &p.m2));
        let (pfit_r, pfit_m) = (ols(&p.c, &pr), ols(&p.c, &pm2));
        let (n, s) = (cfg.n as f64, cfg.seeds as f64);
        let tol = |q: &[f64]| tolerance(q, cfg.tol_ref_n, cfg.tol_ref_seeds, n, s);
        let why = |q: &[f64]| {
            format!(
                "{} = the design's band at n = 1000, S = 4 (plateaus seen within ±0.01 of theory, the bias part)",
                tol_formula(q, cfg.tol_ref_n, cfg.tol_ref_seeds)
            )
        };
        let criteria = vec![
            Criterion::new(
                criteria::R_PERP2_SLOPE,
                pfit_r.slope,
                fit_r.slope,
                tol(&cfg.tol_r_slope),
                &why(&cfg.tol_r_slope),
            ),
            Criterion::new(
                criteria::R_PERP2_INTERCEPT,
                pfit_r.intercept,
                fit_r.intercept,
                tol(&cfg.tol_r_intercept),
                &why(&cfg.tol_r_intercept),
            ),
            Criterion::new(
                criteria::M2_SLOPE,
                pfit_m.slope,
                fit_m.slope,
                tol(&cfg.tol_m_slope),
                &why(&cfg.tol_m_slope),
            ),
            Criterion::new(
                criteria::M2_INTERCEPT,
                pfit_m.intercept,
                fit_m.intercept,
                tol(&cfg.tol_m_intercept),
                &why(&cfg.tol_m_intercept),
            ),
        ];
        let mut order: Vec<usize> = (0..p.c.len()).collect();
        order.sort_by(|&a, &b| p.c[a].total_cmp(&p.c[b]));
        let pick = |v: &[f64]| order.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        Scored {
            criteria,
            series: vec![
                Series::points("plateau r⊥² (SGD)", pick(&p.c), pick(&p.r), Role::Measured),
                Series::points("plateau m² (SGD)", pick(&p.c), pick(&p.m2), Role::Measured),
                Series::line("r⊥² (ODE)", pick(&p.c), pick(&pr), Role::Prediction),
                Series::line("m² (ODE)", pick(&p.c), pick(&pm2), Role::Prediction),
            ],
            notes: vec![
                format!(
                    "measured fits: r⊥² = {:.4} + {:.4}·c_δ (slope se {:.4}); m² = {:.4} + {:.4}·c_δ (slope se {:.4})",
                    fit_r.intercept, fit_r.slope, fit_r.slope_se, fit_m.intercept, fit_m.slope, fit_m.slope_se
                ),
                format!("plateaus per c_δ {:?}: m² {:?}, r⊥² {:?}", p.c, round4(&p.m2), round4(&p.r)),
            ],
        }
    }

    fn plateaus(
        cfg: &CorrectorLinearConfig,
        ctx: &Ctx,
        step_n: f64,
        noise: Noise,
        case: u32,
    ) -> Plateaus {
        let base = ctx.seed(cfg.seed);
        let k = cfg.c_deltas.len();
        let runs = ctx.map(k * cfg.seeds, |i| {
            let (ci, s) = (i / cfg.seeds, i % cfg.seeds);
            let r = simulate(&RunSpec {
                model: cfg.model(),
                n: cfg.n,
                lambda: cfg.lambda,
                delta: cfg.c_deltas[ci] / step_n,
                t_end: cfg.t,
                m0: cfg.m0,
                r0: cfg.r0,
                grid: cfg.grid,
                noise,
                seed: base.wrapping_add(s as u64),
                stream: case * 16 + ci as u32,
            });
            (r.plateau_m2, r.plateau_r)
        });
        let mut p = Plateaus {
            c: cfg.c_deltas.clone(),
            m2: vec![],
            r: vec![],
        };
        for ci in 0..k {
            let chunk = &runs[ci * cfg.seeds..(ci + 1) * cfg.seeds];
            p.m2.push(numerics::mean(
                &chunk.iter().map(|q| q.0).collect::<Vec<_>>(),
            ));
            p.r.push(numerics::mean(
                &chunk.iter().map(|q| q.1).collect::<Vec<_>>(),
            ));
        }
        p
    }
}

fn round4(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1e4).round() / 1e4).collect()
}

fn axes_lin(case: &str) -> Axes {
    Axes {
        title: format!("critical-step/corrector-linear ({case}): plateaus against c_δ"),
        x_label: "c_δ = δ·n".into(),
        y_label: "plateau".into(),
        log_x: false,
        log_y: false,
    }
}

impl Check for CorrectorLinear {
    type Config = CorrectorLinearConfig;
    const ID: CheckId = CheckId {
        name: "critical-step/corrector-linear",
        paper: PAPER,
        claim: "The corrector is set by c_δ = δ·n: the plateaus move with c_δ as the ODE predicts (matrix PCA: r⊥² = c_δ and m² = λ − c_δ, slopes +1 and −1; gradient flow: 0 and 0).",
    };
    const CONTROLS: &'static [Control] = &[N1, N2, N3];

    fn run(cfg: &CorrectorLinearConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let n = cfg.n as f64;
        let ((pos_p, pos), sec) = timed(|| {
            let p = Self::plateaus(cfg, ctx, n, Noise::Iid, CASE_POSITIVE);
            let s = Self::score(cfg, &p, |c| c);
            (p, s)
        });
        let mut out = vec![pos.into_record(
            id,
            Case::positive(
                "i.i.d. noise, δ = c_δ/n for each c_δ, scored against the ODE with corrector",
            ),
            sec,
            axes_lin("positive"),
        )];
        let (n1, sec) = timed(|| Self::score(cfg, &pos_p, |_| 0.0));
        let mut r = n1.into_record(id, Case::control(&N1), sec, axes_lin("N1"));
        r.notes
            .push("reuses the positive case's runs; seconds are scoring only".into());
        out.push(r);
        let (n2, sec) = timed(|| {
            let p = Self::plateaus(cfg, ctx, cfg.n2_step_n as f64, Noise::Iid, CASE_N2);
            Self::score(cfg, &p, |c| c)
        });
        out.push(n2.into_record(id, Case::control(&N2), sec, axes_lin("N2")));
        let (n3, sec) = timed(|| {
            let p = Self::plateaus(cfg, ctx, n, Noise::Symmetrized, CASE_N3);
            Self::score(cfg, &p, |c| c)
        });
        out.push(n3.into_record(id, Case::control(&N3), sec, axes_lin("N3")));
        out
    }
}

// =================================================================== P2-C: critical SNR

check_config! {
    /// Configuration of `critical-step/critical-snr` (design P2-C).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CriticalSnrConfig {
        /// Dimension n.
        n: usize = 1000, Range::int(16, N_MAX);
        /// SNR λ.
        lambda: f64 = 0.8, in common;
        /// The values of c_δ: at least one above λ and one below.
        c_deltas: Vec<f64> = vec![1.0, 0.5], Range::real(0.01, 8.0).list(2);
        /// m(0).
        m0: f64 = 0.5, in common;
        /// r⊥²(0).
        r0: f64 = 0.5, in common;
        /// Final ODE time T.
        t: f64 = 10.0, in common;
        /// Seeds per c_δ.
        seeds: usize = 4, in common;
        /// First seed.
        seed: u64 = 1, in common;
        /// Recording intervals on [0, T].
        grid: usize = 200, in common;
        /// RK4 step.
        ode_dt: f64 = 1e-3, in common;
        /// Plateau tolerance [statistical, bias] at the reference size.
        tol_plateau: Vec<f64> = vec![0.02, 0.01], Range::real(0.0, 10.0).list(2);
        /// Reference n of the tolerances.
        tol_ref_n: f64 = 1000.0, in common;
        /// Reference seed count of the tolerances.
        tol_ref_seeds: f64 = 4.0, in common;
        /// N2: the dimension the step was tuned for (δ = c_δ / n2_step_n).
        n2_step_n: usize = 250, in common;
        /// Tensor order k ≥ 2 (2: spiked matrix PCA).
        order: usize = 2, in common;
        /// Online SGD on the unit sphere (loss −⟨Y, x^⊗k⟩, renormalised every step).
        spherical: bool = false, in common;
    }
}

impl CriticalSnrConfig {
    /// The model family of this configuration.
    pub fn model(&self) -> Model {
        Model {
            order: self.order,
            spherical: self.spherical,
        }
    }
}

impl CheckConfig for CriticalSnrConfig {
    fn validate(&self) -> Result<(), String> {
        tol_list_ok("tol_plateau", &self.tol_plateau)?;
        let model = self.model();
        let above = |c: f64| reaches_informative(model, self.lambda, c, self.m0, self.r0);
        if !(self
            .c_deltas
            .iter()
            .any(|&c| self.lambda < lambda_c(model, c))
            && self.c_deltas.iter().any(|&c| above(c)))
        {
            let lcs: Vec<f64> = self.c_deltas.iter().map(|&c| lambda_c(model, c)).collect();
            return Err(format!(
                "`c_deltas` = {:?} must put `lambda` = {} on both sides of the critical SNR λ_c(c_δ) = {lcs:?} (order {}, spherical {}), with the warm start beyond the barrier m† on the informative side: the claim is that the threshold moves with c_δ",
                self.c_deltas, self.lambda, model.order, model.spherical
            ));
        }
        validate_model(
            model,
            self.lambda,
            &self.c_deltas,
            self.m0,
            self.r0,
            self.n as f64,
        )?;
        for &c in &self.c_deltas {
            check_steps("`t`, `n`, `c_deltas`", self.t, self.n as f64, c, self.grid)?;
            check_steps(
                "`t`, `n2_step_n`, `c_deltas` (control N2)",
                self.t,
                self.n2_step_n as f64,
                c,
                self.grid,
            )?;
        }
        Ok(())
    }
}

/// P2-C: the critical SNR is λ_c = c_δ.
pub struct CriticalSnr;

impl CriticalSnr {
    /// The verdict function of P2-C: one (m², r⊥²) plateau pair per c_δ, each against the ODE.
    pub fn score(
        cfg: &CriticalSnrConfig,
        runs: &[Vec<Run>],
        c_theory: impl Fn(f64) -> f64,
    ) -> Scored {
        let (n, s) = (cfg.n as f64, cfg.seeds as f64);
        let tol = tolerance(&cfg.tol_plateau, cfg.tol_ref_n, cfg.tol_ref_seeds, n, s);
        let why = format!(
            "{} = the design's ±0.03 at n = 1000, S = 4: 4σ of the seed-mean time-average plus the O(1/n) bias",
            tol_formula(&cfg.tol_plateau, cfg.tol_ref_n, cfg.tol_ref_seeds)
        );
        let mut sc = Scored::default();
        for (ci, &c) in cfg.c_deltas.iter().enumerate() {
            let ct = c_theory(c);
            let (pm2, pr) = ode_plateau(
                cfg.model(),
                cfg.lambda,
                ct,
                cfg.m0,
                cfg.r0,
                cfg.t,
                cfg.ode_dt,
            );
            let group = &runs[ci];
            let m2 = numerics::mean(&group.iter().map(|r| r.plateau_m2).collect::<Vec<_>>());
            let r = numerics::mean(&group.iter().map(|r| r.plateau_r).collect::<Vec<_>>());
            sc.criteria.push(
                Criterion::new(criteria::PLATEAU_M2, pm2, m2, tol, &why)
                    .qualified(format_args!("c_δ = {c}")),
            );
            sc.criteria.push(
                Criterion::new(criteria::PLATEAU_R_PERP2, pr, r, tol, &why)
                    .qualified(format_args!("c_δ = {c}")),
            );
            let t = &group[0].t;
            let msq: Vec<f64> = (0..t.len())
                .map(|i| group.iter().map(|r| r.m[i] * r.m[i]).sum::<f64>() / group.len() as f64)
                .collect();
            let (u1, _) = effective_ode(cfg.model(), cfg.lambda, ct, cfg.m0, cfg.r0, t, cfg.ode_dt);
            sc.series.push(Series::line(
                &format!("m² (SGD, c_δ = {c})"),
                t.clone(),
                msq,
                Role::Measured,
            ));
            sc.series.push(Series::line(
                &format!("u₁² (ODE, c_δ = {ct})"),
                t.clone(),
                u1.iter().map(|a| a * a).collect(),
                Role::Prediction,
            ));
            let (fm, fr) = fixed_point(cfg.model(), cfg.lambda, ct, cfg.m0, cfg.r0);
            sc.notes.push(format!(
                "c_δ = {c}: theory uses c_δ = {ct}; λ {} λ_c = {:.4}; closed-form fixed point (m², r⊥²) = ({fm:.4}, {fr:.4})",
                if cfg.lambda > lambda_c(cfg.model(), ct) { ">" } else { "≤" },
                lambda_c(cfg.model(), ct)
            ));
        }
        sc
    }

    fn runs(
        cfg: &CriticalSnrConfig,
        ctx: &Ctx,
        step_n: f64,
        noise: Noise,
        case: u32,
    ) -> Vec<Vec<Run>> {
        let base = ctx.seed(cfg.seed);
        let k = cfg.c_deltas.len();
        let flat = ctx.map(k * cfg.seeds, |i| {
            let (ci, s) = (i / cfg.seeds, i % cfg.seeds);
            simulate(&RunSpec {
                model: cfg.model(),
                n: cfg.n,
                lambda: cfg.lambda,
                delta: cfg.c_deltas[ci] / step_n,
                t_end: cfg.t,
                m0: cfg.m0,
                r0: cfg.r0,
                grid: cfg.grid,
                noise,
                seed: base.wrapping_add(s as u64),
                stream: case * 16 + ci as u32,
            })
        });
        flat.chunks(cfg.seeds).map(|c| c.to_vec()).collect()
    }
}

fn axes_snr(case: &str) -> Axes {
    Axes {
        title: format!(
            "critical-step/critical-snr ({case}): m² against the ODE on both sides of λ_c = c_δ"
        ),
        x_label: "t = ℓ·δ".into(),
        y_label: "m²".into(),
        log_x: false,
        log_y: false,
    }
}

impl Check for CriticalSnr {
    type Config = CriticalSnrConfig;
    const ID: CheckId = CheckId {
        name: "critical-step/critical-snr",
        paper: PAPER,
        claim: "The corrector moves the critical SNR from 0 to λ_c(c_δ) (matrix PCA: λ_c = c_δ; sphere: c_δ/2; order 3: (16√3/9)c_δ^{3/2}): below it m → 0, above it m² → the informative fixed point (Prop. 3.2).",
    };
    const CONTROLS: &'static [Control] = &[N1, N2, N3];

    fn run(cfg: &CriticalSnrConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let n = cfg.n as f64;
        let ((pos_runs, pos), sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, n, Noise::Iid, CASE_POSITIVE);
            let s = Self::score(cfg, &runs, |c| c);
            (runs, s)
        });
        let mut out = vec![pos.into_record(
            id,
            Case::positive("i.i.d. noise, δ = c_δ/n, scored against the ODE with corrector"),
            sec,
            axes_snr("positive"),
        )];
        let (n1, sec) = timed(|| Self::score(cfg, &pos_runs, |_| 0.0));
        let mut r = n1.into_record(id, Case::control(&N1), sec, axes_snr("N1"));
        r.notes
            .push("reuses the positive case's runs; seconds are scoring only".into());
        out.push(r);
        let (n2, sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, cfg.n2_step_n as f64, Noise::Iid, CASE_N2);
            Self::score(cfg, &runs, |c| c)
        });
        out.push(n2.into_record(id, Case::control(&N2), sec, axes_snr("N2")));
        let (n3, sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, n, Noise::Symmetrized, CASE_N3);
            Self::score(cfg, &runs, |c| c)
        });
        out.push(n3.into_record(id, Case::control(&N3), sec, axes_snr("N3")));
        out
    }
}

// =================================================================== P2-D: fluctuations

check_config! {
    /// Configuration of `critical-step/fluctuations` (design P2-D).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FluctuationsConfig {
        /// Dimensions n (at least two distinct).
        ns: Vec<usize> = vec![250, 500, 1000, 2000], Range::int(16, N_MAX).list(2);
        /// SNR λ.
        lambda: f64 = 1.5, in common;
        /// c_δ = δ·n.
        c_delta: f64 = 1.0, Range::real(0.01, 8.0);
        /// m(0).
        m0: f64 = 0.5, in common;
        /// r⊥²(0).
        r0: f64 = 0.5, in common;
        /// Final ODE time T.
        t: f64 = 5.0, in common;
        /// Seeds per n.
        seeds: usize = 16, in common;
        /// First seed.
        seed: u64 = 1, in common;
        /// Recording intervals on [0, T]: the same grid for every n.
        grid: usize = 200, in common;
        /// RK4 step.
        ode_dt: f64 = 1e-3, in common;
        /// Slope tolerance [statistical, bias]; the statistical part scales as √(tol_ref_seeds/S).
        tol_slope: Vec<f64> = vec![0.14, 0.01], Range::real(0.0, 10.0).list(2);
        /// Reference seed count of the tolerance.
        tol_ref_seeds: f64 = 16.0, in common;
        /// N2: one step δ = c_δ / n2_step_n for every n (not rescaled).
        n2_step_n: usize = 250, in common;
        /// Tensor order k ≥ 2 (2: spiked matrix PCA).
        order: usize = 2, in common;
        /// Online SGD on the unit sphere (loss −⟨Y, x^⊗k⟩, renormalised every step).
        spherical: bool = false, in common;
    }
}

impl FluctuationsConfig {
    /// The model family of this configuration.
    pub fn model(&self) -> Model {
        Model {
            order: self.order,
            spherical: self.spherical,
        }
    }
}

impl CheckConfig for FluctuationsConfig {
    fn validate(&self) -> Result<(), String> {
        tol_list_ok("tol_slope", &self.tol_slope)?;
        let n_min = self.ns.iter().copied().min().unwrap_or(1) as f64;
        validate_model(
            self.model(),
            self.lambda,
            &[self.c_delta],
            self.m0,
            self.r0,
            n_min,
        )?;
        let ns: Vec<f64> = self.ns.iter().map(|&n| n as f64).collect();
        if distinct(&ns) < 2 {
            return Err("`ns` needs at least two distinct dimensions for a slope".into());
        }
        for &n in &self.ns {
            check_steps(
                "`t`, `ns`, `c_delta`",
                self.t,
                n as f64,
                self.c_delta,
                self.grid,
            )?;
        }
        check_steps(
            "`t`, `n2_step_n`, `c_delta` (control N2)",
            self.t,
            self.n2_step_n as f64,
            self.c_delta,
            self.grid,
        )
    }
}

/// P2-D: the distance of SGD from the ODE is O(n^{-1/2}).
pub struct Fluctuations;

/// The predicted exponent of the fluctuations: the CLT scale n^{-1/2} of Thm 2.2's diffusive
/// corrections (Σ = 0 at the ballistic scale, so deviations are of order n^{-1/2}).
pub const FLUCTUATION_EXPONENT: f64 = -0.5;

impl Fluctuations {
    /// The verdict function of P2-D: `runs[i]` are the seeds at `ns[i]`.
    pub fn score(cfg: &FluctuationsConfig, runs: &[Vec<Run>], c_theory: f64) -> Scored {
        let ns: Vec<f64> = cfg.ns.iter().map(|&n| n as f64).collect();
        let mut e = Vec::new();
        let mut band = Vec::new();
        for group in runs {
            let t = &group[0].t;
            let (u1, _) = effective_ode(
                cfg.model(),
                cfg.lambda,
                c_theory,
                cfg.m0,
                cfg.r0,
                t,
                cfg.ode_dt,
            );
            let sups: Vec<f64> = group.iter().map(|r| sup_abs_diff(&r.m, &u1)).collect();
            let finite = sups.iter().all(|s| s.is_finite());
            e.push(if finite { median(&sups) } else { f64::NAN });
            band.push(if finite {
                (
                    numerics::quantile(&sups, 0.1),
                    numerics::quantile(&sups, 0.9),
                )
            } else {
                (f64::NAN, f64::NAN)
            });
        }
        let ok = e.iter().all(|v| v.is_finite() && *v > 0.0);
        let fit = if ok { Some(loglog_fit(&ns, &e)) } else { None };
        let slope = fit.map_or(f64::NAN, |f| f.slope);
        let tol =
            cfg.tol_slope[0] * (cfg.tol_ref_seeds / cfg.seeds as f64).sqrt() + cfg.tol_slope[1];
        let why = format!(
            "{}·√({}/S) + {}: ~10% relative error of a {}-seed median per point gives slope sd ≈ 0.07 over a factor 8 in n; 2σ plus the small-n bias",
            cfg.tol_slope[0], cfg.tol_ref_seeds, cfg.tol_slope[1], cfg.tol_ref_seeds
        );
        let mut series = vec![Series::points(
            "e(n) = median sup_t |m − u₁|",
            ns.clone(),
            e.clone(),
            Role::Measured,
        )];
        if let Some(f) = fit {
            let (lx, le): (Vec<f64>, Vec<f64>) = (
                ns.iter().map(|v| v.ln()).collect(),
                e.iter().map(|v| v.ln()).collect(),
            );
            let (cx, cy) = (numerics::mean(&lx), numerics::mean(&le));
            let line = |p: f64| {
                ns.iter()
                    .map(|n| (cy + p * (n.ln() - cx)).exp())
                    .collect::<Vec<f64>>()
            };
            series.push(Series::line(
                &format!("fitted slope {:.3}", f.slope),
                ns.clone(),
                line(f.slope),
                Role::Reference,
            ));
            series.push(Series::line(
                "predicted slope −1/2",
                ns.clone(),
                line(FLUCTUATION_EXPONENT),
                Role::Prediction,
            ));
        }
        Scored {
            criteria: vec![Criterion::new(
                criteria::FLUCTUATION_SLOPE,
                FLUCTUATION_EXPONENT,
                slope,
                tol,
                &why,
            )],
            series,
            notes: vec![
                format!("n = {:?}: e(n) = {:?}", cfg.ns, round4(&e)),
                format!(
                    "10-90% band of sup_t |m − u₁| per n: {:?}",
                    band.iter()
                        .map(|b| (round4(&[b.0])[0], round4(&[b.1])[0]))
                        .collect::<Vec<_>>()
                ),
                fit.map_or("no fit (non-finite or zero errors)".into(), |f| {
                    format!("fitted slope {:.4} ± {:.4} (OLS se)", f.slope, f.slope_se)
                }),
            ],
        }
    }

    fn runs(cfg: &FluctuationsConfig, ctx: &Ctx, step_n: Option<f64>, case: u32) -> Vec<Vec<Run>> {
        let base = ctx.seed(cfg.seed);
        let k = cfg.ns.len();
        // Biggest n first so the two threads finish together.
        let flat = ctx.map(k * cfg.seeds, |i| {
            let (ni, s) = (k - 1 - i / cfg.seeds, i % cfg.seeds);
            let n = cfg.ns[ni];
            let r = simulate(&RunSpec {
                model: cfg.model(),
                n,
                lambda: cfg.lambda,
                delta: cfg.c_delta / step_n.unwrap_or(n as f64),
                t_end: cfg.t,
                m0: cfg.m0,
                r0: cfg.r0,
                grid: cfg.grid,
                noise: Noise::Iid,
                seed: base.wrapping_add(s as u64),
                stream: case * 16 + ni as u32,
            });
            (ni, r)
        });
        let mut out: Vec<Vec<Run>> = vec![Vec::new(); k];
        for (ni, r) in flat {
            out[ni].push(r);
        }
        out
    }
}

fn axes_fl(case: &str) -> Axes {
    Axes {
        title: format!("critical-step/fluctuations ({case}): distance to the ODE against n"),
        x_label: "n".into(),
        y_label: "median sup_t |m − u₁|".into(),
        log_x: true,
        log_y: true,
    }
}

/// The controls of P2-D: N3 (noise model) is left to the plateau checks, where it is decisive;
/// here it would double the most expensive check's cost.
const FLUCT_CONTROLS: &[Control] = &[N1, N2];

impl Check for Fluctuations {
    type Config = FluctuationsConfig;
    const ID: CheckId = CheckId {
        name: "critical-step/fluctuations",
        paper: PAPER,
        claim: "SGD's distance to the effective ODE, median over seeds of sup_t |m − u₁|, shrinks as n^{-1/2} (log-log slope −1/2).",
    };
    const CONTROLS: &'static [Control] = FLUCT_CONTROLS;

    fn run(cfg: &FluctuationsConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ((pos_runs, pos), sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, None, CASE_POSITIVE);
            let s = Self::score(cfg, &runs, cfg.c_delta);
            (runs, s)
        });
        let mut out = vec![pos.into_record(
            id,
            Case::positive(
                "i.i.d. noise, δ = c_δ/n at every n, scored against the ODE with corrector",
            ),
            sec,
            axes_fl("positive"),
        )];
        let (n1, sec) = timed(|| Self::score(cfg, &pos_runs, 0.0));
        let mut r = n1.into_record(id, Case::control(&N1), sec, axes_fl("N1"));
        r.notes
            .push("reuses the positive case's runs; seconds are scoring only".into());
        out.push(r);
        let (n2, sec) = timed(|| {
            let runs = Self::runs(cfg, ctx, Some(cfg.n2_step_n as f64), CASE_N2);
            Self::score(cfg, &runs, cfg.c_delta)
        });
        out.push(n2.into_record(id, Case::control(&N2), sec, axes_fl("N2")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::SQRT_2;

    #[test]
    fn reduced_sampler_has_the_law_of_w_plus_wt_x() {
        // Cov(ξ) = 2R² I + 2xxᵀ: check ⟨ξ, x̂⟩ variance 4R² and an orthogonal coordinate's 2R².
        let n = 8;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0) / 4.0).collect();
        let r2: f64 = x.iter().map(|a| a * a).sum();
        let r = r2.sqrt();
        let mut rng = numerics::stream(3, 0);
        let mut g = vec![0.0; n];
        let (mut along, mut perp) = (0.0, 0.0);
        let trials = 200_000;
        let mut u = vec![0.0; n];
        u[0] = x[1];
        u[1] = -x[0];
        let un = (u[0] * u[0] + u[1] * u[1]).sqrt();
        for _ in 0..trials {
            numerics::fill_std_normal(&mut rng, &mut g);
            let xg: f64 = x.iter().zip(&g).map(|(a, b)| a * b).sum();
            let xi: Vec<f64> = (0..n)
                .map(|i| SQRT_2 * (r * g[i] + (SQRT_2 - 1.0) * xg / r * x[i]))
                .collect();
            let a: f64 = xi.iter().zip(&x).map(|(p, q)| p * q).sum::<f64>() / r;
            let p: f64 = xi.iter().zip(&u).map(|(p, q)| p * q).sum::<f64>() / un;
            along += a * a;
            perp += p * p;
        }
        let (along, perp) = (along / trials as f64, perp / trials as f64);
        assert!(
            (along / (4.0 * r2) - 1.0).abs() < 0.02,
            "{along} vs {}",
            4.0 * r2
        );
        assert!(
            (perp / (2.0 * r2) - 1.0).abs() < 0.02,
            "{perp} vs {}",
            2.0 * r2
        );
    }

    #[test]
    fn ode_reaches_the_closed_form_fixed_point() {
        for (lambda, c) in [(1.5, 1.0), (1.5, 0.25), (0.8, 0.5), (2.0, 0.0)] {
            let (m2, r) = ode_plateau(Model::MATRIX, lambda, c, 0.5, 0.5, 20.0, 1e-3);
            let (fm, fr) = fixed_point(Model::MATRIX, lambda, c, 0.5, 0.5);
            assert!(
                (m2 - fm).abs() < 1e-6 && (r - fr).abs() < 1e-6,
                "{lambda} {c}: {m2} {r}"
            );
        }
    }

    #[test]
    fn general_order_and_sphere_fixed_points() {
        let t3 = Model {
            order: 3,
            spherical: false,
        };
        // λ = 4, c = 1: λm = (m² + 1)² has the roots m★ = 1 and m† = 0.29560 (4·0.29560 =
        // 1.18240 = (1.08738)²).
        let (dagger, star) = informative_points(t3, 4.0, 1.0).unwrap();
        assert!(
            (star - 1.0).abs() < 1e-10 && (dagger - 0.29560).abs() < 1e-5,
            "{dagger} {star}"
        );
        assert!((lambda_c(t3, 1.0) - 16.0 * 3f64.sqrt() / 9.0).abs() < 1e-10);
        assert!(informative_points(t3, 3.0, 1.0).is_none());
        let s2 = Model {
            order: 2,
            spherical: true,
        };
        let (fm, fr) = fixed_point(s2, 1.5, 1.0, 0.5, 0.75);
        assert!((fm - 2.0 / 3.0).abs() < 1e-12 && (fr - 1.0 / 3.0).abs() < 1e-12);
        // k ≥ 3 on the sphere: λ m^{k−2}(1 − m²) = c/2.
        let s3 = Model {
            order: 3,
            spherical: true,
        };
        let (_, st) = informative_points(s3, 4.0, 1.0).unwrap();
        assert!((4.0 * st * (1.0 - st * st) - 0.5).abs() < 1e-10);
        // The ODE settles at the fixed point the start selects, for every family.
        for (model, lambda, c, m0) in [
            (t3, 4.0, 1.0, 0.5),
            (t3, 4.0, 1.0, 0.2),
            (t3, 4.0, 1.0, 0.1),
            (t3, 2.0, 0.5, 0.5),
            (s2, 1.5, 1.0, 0.5),
            (s2, 0.4, 1.0, 0.5),
            (s3, 4.0, 1.0, 0.5),
        ] {
            let (m2, r) = ode_plateau(model, lambda, c, m0, 0.5, 60.0, 1e-3);
            let (fm, fr) = fixed_point(model, lambda, c, m0, 0.5);
            assert!(
                (m2 - fm).abs() < 1e-5 && (r - fr).abs() < 1e-5,
                "{model:?} {lambda} {c} {m0}: {m2} {r} vs {fm} {fr}"
            );
        }
        assert_eq!(t3.symmetrized_noise(), 6f64.sqrt());
        assert_eq!(Model::MATRIX.symmetrized_noise(), SQRT_2);
    }

    #[test]
    fn order_three_noise_has_the_tensor_covariance() {
        // ξ_a = Σ W[a,j,l]x_j x_l + W[i,a,l]x_i x_l + W[i,j,a]x_i x_j from an explicit i.i.d.
        // N(0, 1) tensor W must have covariance 3R⁴ I + 6R² x xᵀ, the law `simulate` draws from:
        // variance 9R⁴ along x̂ and 3R⁴ across it.
        let n = 5;
        let x = [0.6, -0.3, 0.9, 0.1, 0.4];
        let r2: f64 = x.iter().map(|v| v * v).sum();
        let r = r2.sqrt();
        let mut rng = numerics::stream(3, 0);
        let mut w = vec![0.0; n * n * n];
        let at = |i: usize, j: usize, l: usize| (i * n + j) * n + l;
        let u = [x[1], -x[0], 0.0, 0.0, 0.0];
        let un = (u[0] * u[0] + u[1] * u[1]).sqrt();
        let (mut along, mut perp) = (0.0, 0.0);
        let trials = 40_000;
        for _ in 0..trials {
            numerics::fill_std_normal(&mut rng, &mut w);
            let mut xi = [0.0; 5];
            for (a, xa) in xi.iter_mut().enumerate() {
                for i in 0..n {
                    for j in 0..n {
                        *xa += (w[at(a, i, j)] + w[at(i, a, j)] + w[at(i, j, a)]) * x[i] * x[j];
                    }
                }
            }
            let al: f64 = xi.iter().zip(&x).map(|(p, q)| p * q).sum::<f64>() / r;
            let pe: f64 = xi.iter().zip(&u).map(|(p, q)| p * q).sum::<f64>() / un;
            along += al * al;
            perp += pe * pe;
        }
        let (along, perp) = (along / trials as f64, perp / trials as f64);
        // Relative SE of a variance estimate from 40 000 draws: √(2/40 000) = 0.7%; 3.5% is 5 SE.
        assert!((along / (9.0 * r2 * r2) - 1.0).abs() < 0.035, "{along}");
        assert!((perp / (3.0 * r2 * r2) - 1.0).abs() < 0.035, "{perp}");
    }

    #[test]
    fn simulation_is_deterministic() {
        let spec = RunSpec {
            model: Model::MATRIX,
            n: 64,
            lambda: 1.5,
            delta: 1.0 / 64.0,
            t_end: 1.0,
            m0: 0.5,
            r0: 0.5,
            grid: 10,
            noise: Noise::Iid,
            seed: 9,
            stream: 0,
        };
        let (a, b) = (simulate(&spec), simulate(&spec));
        assert_eq!(a.m, b.m);
        assert_eq!(a.t.len(), 11);
        assert_eq!(a.t[10], 1.0);
        assert_eq!(a.plateau_r.to_bits(), b.plateau_r.to_bits());
    }
}
