//! He, Huang, Yuan, "Asymmetric Valleys: Beyond Sharp and Flat Local Minima" (NeurIPS 2019,
//! arXiv:1902.00744); design in `docs/checks/asymmetric-valleys.md`.
//!
//! # Instance and predictions (derived in the design; the paper's theorem constants were not read)
//! Kinked valley `L(w) = (a/2)w²` for `w < 0`, `(b/2)w²` for `w ≥ 0` (the flat side is the side
//! of the smaller curvature, either one); SGD with injected noise `w ← w − η(L'(w) + σξ)`, or
//! heavy-ball SGD with momentum β (then η becomes `η_eff = η/(1 − β)` below); a separable
//! d-dimensional valley is d such coordinates with their own (a_j, b_j). For small η the law is the
//! Gibbs law `∝ exp(−2L/(ησ²))`: two half-Gaussians of variances `τ/a`, `τ/b` (`τ = ησ²/2`) glued
//! at 0 with weights `∝ √(τ/a)`, `√(τ/b)`. Hence
//! - the long-run average of the iterates is `μ(η) = √(ησ²/π)(1/√b − 1/√a)` (exponent ½ in η);
//! - the fraction of time on the flat side is `√max(a,b)/(√a + √b)`;
//! - stationarity gives `a·E[w; w<0] + b·E[w; w≥0] = 0` for every η.
//!
//! Under a random shift `L_pop(w) = E_δ L(w + δ)`, `δ ~ N(0, s²)`, `L_pop'(0) = −(a − b)s/√(2π)`:
//! the averaged point has lower population loss than the exact minimizer 0 by
//! `I = 1 − L_pop(μ)/L_pop(0)`, while the last iterate, spread over the Gibbs law, is worse than 0 by
//! the ratio `E_Gibbs[L_pop]/L_pop(0)` (1-D quadrature).
//!
//! Every run uses the kernels: `Gd::step` for the update, `running_mean` for the iterate average,
//! `fill_normal` on per-(η, block) streams for the noise.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics::{self, loglog_fit};
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::random::fill_normal;
use descent_kernels::Rule;
use descent_kernels::{running_mean, Gd, Sgd};
use serde::{Deserialize, Serialize};
use std::f64::consts::{PI, SQRT_2};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// A symmetric coordinate: the largest |mean output| in standard errors over η; its true
    /// mean is 0.
    pub const SYMMETRIC_MEAN_OVER_SE: CriterionKey =
        CriterionKey::new("symmetric: |mean w̄| / SE (max over η)");
    /// Mean output over the predicted bias μ(η), one criterion per η (qualified `η=…`).
    pub const W_OVER_MU: CriterionKey = CriterionKey::new("w̄/μ");
    /// Log-log slope of |mean output| against η (predicted 1/2).
    pub const W_EXPONENT: CriterionKey = CriterionKey::new("exponent of w̄ in η");
    /// Fraction of the iterates on the flat side, against √max(a,b)/(√a+√b).
    pub const FLAT_SIDE_FRACTION: CriterionKey = CriterionKey::new("flat-side time fraction");
    /// Chains whose output lies on the flat side, the fewest over η.
    pub const FLAT_SIDE_CHAINS: CriterionKey =
        CriterionKey::new("chains with output on the flat side (min over η)");
    /// The bias resolved: the smallest |mean output| in standard errors over η.
    pub const MEAN_W_OVER_SE: CriterionKey = CriterionKey::new("|mean w̄| / SE (min over η)");
    /// The stationarity identity, exactly 0 for every η.
    pub const STATIONARITY_IDENTITY: CriterionKey = CriterionKey::new("a·Ê[w;w<0] + b·Ê[w;w≥0]");
    /// Population-loss improvement of the averaged output over the minimizer.
    pub const IMPROVEMENT: CriterionKey = CriterionKey::new("improvement I over the minimizer");
    /// The improvement is at least the configured floor.
    pub const IMPROVEMENT_FLOOR: CriterionKey = CriterionKey::new("improvement floor");
    /// Population loss of the last iterate relative to the minimizer's.
    pub const LAST_ITERATE_RATIO: CriterionKey =
        CriterionKey::new("last-iterate ratio E[L_pop(w_T)]/L_pop(0)");
    /// Bias of the average, one criterion per η (qualified `η=…`).
    pub const BIAS: CriterionKey = CriterionKey::new("bias");
    /// The bias resolved: the smallest |bias| in standard errors over η.
    pub const BIAS_OVER_SE: CriterionKey = CriterionKey::new("|bias| / SE (min over η)");
    /// How many η give a bias of the predicted sign.
    pub const BIAS_SIGN_COUNT: CriterionKey =
        CriterionKey::new("biases with the predicted sign (count over η)");
    /// Log-log slope of |bias| against η (predicted 1).
    pub const BIAS_EXPONENT: CriterionKey = CriterionKey::new("exponent of the bias in η");
}

/// Citation shared by the checks of this paper.
pub const PAPER: &str = "H. He, G. Huang, Y. Yuan, \"Asymmetric Valleys: Beyond Sharp and Flat \
Local Minima\", NeurIPS 2019, arXiv:1902.00744";

/// Chains per block: a block is one vector of chains updated by one kernel call, with its own
/// random stream, so results do not depend on the thread count.
const BLOCK: usize = 32;

// =================================================================== closed forms

/// Standard normal density.
pub fn npdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

/// Standard normal distribution function.
pub fn ncdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

/// Predicted stationary mean of SGD on the kinked valley: `√(ησ²/π)(1/√b − 1/√a)`.
pub fn mu_formula(a: f64, b: f64, sigma: f64, eta: f64) -> f64 {
    (eta * sigma * sigma / PI).sqrt() * (1.0 / b.sqrt() - 1.0 / a.sqrt())
}

/// Population loss under a `N(0, s²)` shift of the kinked valley, in closed form.
pub fn l_pop(a: f64, b: f64, s: f64, w: f64) -> f64 {
    let z = w / s;
    let pos = (w * w + s * s) * ncdf(z) + w * s * npdf(z);
    let neg = (w * w + s * s) * ncdf(-z) - w * s * npdf(z);
    0.5 * a * neg + 0.5 * b * pos
}

/// `E[L_pop(w)]` under the Gibbs law of SGD with step η (two glued half-Gaussians), by Simpson's
/// rule with 2,000 intervals per side on ±12 standard deviations.
pub fn gibbs_mean_l_pop(a: f64, b: f64, sigma: f64, eta: f64, s: f64) -> f64 {
    let tau = eta * sigma * sigma / 2.0;
    let half = |curv: f64, sign: f64| {
        let sd = (tau / curv).sqrt();
        let n = 2000;
        let h = 12.0 * sd / n as f64;
        let mut acc = 0.0;
        for k in 0..=n {
            let x = k as f64 * h;
            let wgt = if k == 0 || k == n {
                1.0
            } else if k % 2 == 1 {
                4.0
            } else {
                2.0
            };
            acc += wgt * (-0.5 * x * x / (sd * sd)).exp() * l_pop(a, b, s, sign * x);
        }
        // ∫ exp(−x²/2sd²) dx over the half line is sd√(π/2); the glued law's weight is ∝ sd.
        (acc * h / 3.0, sd * (PI / 2.0).sqrt())
    };
    let (ln, zn) = half(a, -1.0);
    let (lp, zp) = half(b, 1.0);
    (ln + lp) / (zn + zp)
}

/// Asymptotic variances of time averages under the Gibbs law of the kinked valley `(a, b)` at unit
/// temperature (`τ = 1`): `(g, h)` with `g` for the iterate `w` and `h` for the indicator of
/// `w ≥ 0`. For the diffusion `dw = −L'(w)dt + √(2τ)dB` with stationary density `p`, the time
/// average of `f` over a time `T` has variance `σ_f²/T` with `σ_f² = (2/τ)∫F²/p`,
/// `F(x) = ∫_{−∞}^x (f − E f) p` (the 1-D Poisson equation). Scaling `w = √τ·u` gives
/// `σ_w² = 2τ·g` and `σ_1² = 2h`; with `T = K·η_eff` and `τ = η_eff σ²/2` the average of `K` steps
/// has `Var(w̄) = σ² g / K` (independent of η) and `Var(fraction) = 2h/(K η_eff)`.
/// `F` is in closed form on each half line; the integral is Simpson's rule over ±12 sd per side.
pub fn time_average_variances(a: f64, b: f64) -> (f64, f64) {
    let (ra, rb) = (1.0 / a.sqrt(), 1.0 / b.sqrt());
    let z = (PI / 2.0).sqrt() * (ra + rb);
    let mu = (2.0 / PI).sqrt() * (rb - ra);
    let p_right = rb / (ra + rb);
    // Unnormalised (density q = exp(−c x²/2)) integrals F̃ = Z·F.
    let f_tilde = |x: f64| -> (f64, f64) {
        if x < 0.0 {
            let q = (-0.5 * a * x * x).exp();
            let m0 = (2.0 * PI / a).sqrt() * ncdf(x * a.sqrt());
            (-q / a - mu * m0, -p_right * m0)
        } else {
            let q = (-0.5 * b * x * x).exp();
            let m0 = (2.0 * PI / b).sqrt() * ncdf(-x * b.sqrt());
            (-(q / b - mu * m0), -(1.0 - p_right) * m0)
        }
    };
    let side = |lo: f64, hi: f64, c: f64| {
        let n = 4000;
        let h = (hi - lo) / n as f64;
        let (mut g, mut hh) = (0.0, 0.0);
        for k in 0..=n {
            let x = lo + k as f64 * h;
            let wgt = if k == 0 || k == n {
                1.0
            } else if k % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let q = (-0.5 * c * x * x).exp();
            let (fw, f1) = f_tilde(x);
            g += wgt * fw * fw / q;
            hh += wgt * f1 * f1 / q;
        }
        (g * h / 3.0, hh * h / 3.0)
    };
    let (gl, hl) = side(-12.0 * ra, 0.0, a);
    // The right half starts just above 0 so that x = 0 takes the right-hand branch.
    let (gr, hr) = side(0.0, 12.0 * rb, b);
    ((gl + gr) / z, (hl + hr) / z)
}

// =================================================================== SGD chains

/// What a set of independent SGD chains on one separable valley returns. Per-chain vectors are
/// chain-major: coordinate `j` of chain `i` is at `i·d + j`.
#[derive(Clone, Debug, Default)]
pub struct Chains {
    /// Dimension d.
    pub d: usize,
    /// Per chain and coordinate: the average of the post-burn-in iterates.
    pub avg: Vec<f64>,
    /// Per chain and coordinate: the last iterate.
    pub last: Vec<f64>,
    /// Per chain and coordinate: `Σ w` over post-burn-in iterates with `w < 0`, divided by the
    /// sample count.
    pub neg: Vec<f64>,
    /// Per chain and coordinate: `Σ w` over post-burn-in iterates with `w ≥ 0`, divided by the
    /// sample count.
    pub pos: Vec<f64>,
    /// Per coordinate: post-burn-in iterates with `w ≥ 0` (`w = 0` takes the right-hand branch).
    pub right: Vec<u64>,
    /// Post-burn-in iterates per coordinate (chains × averaged steps).
    pub samples: u64,
}

impl Chains {
    /// Coordinate `j` of a chain-major vector (`avg`, `last`, `neg` or `pos`).
    pub fn coord(&self, v: &[f64], j: usize) -> Vec<f64> {
        v.iter().skip(j).step_by(self.d).copied().collect()
    }
}

/// One run of chains on the separable valley `Σ_j L_{a_j, b_j}(w_j)`, with independent noise of
/// standard deviation `sigma` on every coordinate.
#[derive(Clone, Copy, Debug)]
pub struct ChainSpec<'a> {
    /// Left-hand curvature of each coordinate (`w_j < 0`).
    pub a: &'a [f64],
    /// Right-hand curvature of each coordinate (`w_j ≥ 0`); same length as `a`.
    pub b: &'a [f64],
    /// Noise standard deviation of the gradient oracle.
    pub sigma: f64,
    /// Step size.
    pub eta: f64,
    /// Heavy-ball momentum β (0: plain SGD through `Gd`; else `Sgd` with momentum β).
    pub momentum: f64,
    /// Burn-in steps (not averaged).
    pub burn_in: usize,
    /// Averaged steps.
    pub steps: usize,
    /// Number of chains.
    pub chains: usize,
}

/// Runs `spec.chains` chains from `w₀ = 0`, in blocks of `BLOCK` chains; block `j` draws from
/// stream `stream_base + j` of `seed` (callers give disjoint ranges; a stream index costs that many
/// jumps, so indices are kept dense). With `d = 1` and no momentum the draws and updates are those
/// of the 1-D design.
pub fn run_chains(spec: ChainSpec, seed: u64, stream_base: u32, ctx: &Ctx) -> Chains {
    let d = spec.a.len();
    assert_eq!(d, spec.b.len(), "one curvature pair per coordinate");
    let blocks = spec.chains.div_ceil(BLOCK);
    let parts = ctx.map(blocks, |j| {
        let n = BLOCK.min(spec.chains - j * BLOCK) * d;
        let mut rng = numerics::stream(seed, stream_base + j as u32);
        let gd = Gd::new(spec.eta);
        let hb = Sgd::new(spec.eta, spec.momentum);
        let (mut w, mut g, mut avg) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut neg, mut pos, mut buf) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut right = vec![0u64; d];
        let mut count = 0u64;
        for t in 0..spec.burn_in + spec.steps {
            fill_normal(&mut rng, &mut g, 0.0, spec.sigma);
            if d == 1 {
                // The 1-D loop of the design, without the per-coordinate indexing.
                let (a, b) = (spec.a[0], spec.b[0]);
                for (gi, &wi) in g.iter_mut().zip(&w) {
                    *gi += if wi < 0.0 { a } else { b } * wi;
                }
            } else {
                for (gr, wr) in g.chunks_exact_mut(d).zip(w.chunks_exact(d)) {
                    for k in 0..d {
                        let wi = wr[k];
                        gr[k] += if wi < 0.0 { spec.a[k] } else { spec.b[k] } * wi;
                    }
                }
            }
            if spec.momentum == 0.0 {
                gd.step(1, &mut w, &g, &mut [])
            } else {
                hb.step(t as u64 + 1, &mut w, &g, &mut buf)
            }
            .expect("same lengths, valid hyper-parameters");
            if t >= spec.burn_in {
                running_mean(&mut avg, &w, count).expect("same lengths");
                count += 1;
                if d == 1 {
                    for i in 0..n {
                        if w[i] < 0.0 {
                            neg[i] += w[i];
                        } else {
                            pos[i] += w[i];
                            right[0] += 1;
                        }
                    }
                } else {
                    for ((wr, nr), pr) in w
                        .chunks_exact(d)
                        .zip(neg.chunks_exact_mut(d))
                        .zip(pos.chunks_exact_mut(d))
                    {
                        for k in 0..d {
                            if wr[k] < 0.0 {
                                nr[k] += wr[k];
                            } else {
                                pr[k] += wr[k];
                                right[k] += 1;
                            }
                        }
                    }
                }
            }
        }
        let k = count.max(1) as f64;
        neg.iter_mut().chain(pos.iter_mut()).for_each(|v| *v /= k);
        (avg, w, neg, pos, right, count * (n / d) as u64)
    });
    let mut out = Chains {
        d,
        right: vec![0; d],
        ..Chains::default()
    };
    for (avg, last, neg, pos, right, samples) in parts {
        out.avg.extend(avg);
        out.last.extend(last);
        out.neg.extend(neg);
        out.pos.extend(pos);
        out.right.iter_mut().zip(right).for_each(|(o, r)| *o += r);
        out.samples += samples;
    }
    out
}

/// Mean and standard error of the mean.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let m = numerics::mean(x);
    (m, numerics::std_dev(x) / (x.len() as f64).sqrt())
}

fn axes(title: String, x: &str, y: &str, log: bool) -> Axes {
    Axes {
        title,
        x_label: x.into(),
        y_label: y.into(),
        log_x: log,
        log_y: log,
    }
}

// =================================================================== AV-1: averaging bias

check_config! {
    /// Configuration of `asymmetric-valleys/averaging-bias` (design AV-1).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AveragingBiasConfig {
        /// Left-hand curvature a_j of each coordinate (`w_j < 0`).
        a: Vec<f64> = vec![4.0], Range::real(1e-3, 1e3).list(1);
        /// Right-hand curvature b_j of each coordinate (`w_j ≥ 0`); `a_j = b_j` is a symmetric
        /// coordinate (predicted bias 0), at least one coordinate must be asymmetric.
        b: Vec<f64> = vec![1.0], Range::real(1e-3, 1e3).list(1);
        /// Noise standard deviation σ (independent per coordinate).
        sigma: f64 = 1.0, Range::real(1e-6, 1e3);
        /// Step sizes η.
        etas: Vec<f64> = vec![0.005, 0.01, 0.02], Range::real(1e-6, 1.0).list(2);
        /// Heavy-ball momentum β (0: plain SGD); the prediction uses η_eff = η/(1 − β).
        momentum: f64 = 0.0, Range::real(0.0, 0.99);
        /// Burn-in steps (not averaged).
        burn_in: usize = 3000, Range::int(0, 10_000_000);
        /// Averaged steps K.
        steps: usize = 50_000, Range::int(100, 100_000_000);
        /// Independent chains per η.
        chains: usize = 256, Range::int(8, 1 << 20);
        /// Seed.
        seed: u64 = 1, Range::int(0, 1 << 53);
        /// Relative band of mean(w̄)/μ(η) around 1.
        tol_mean: f64 = 0.05, Range::real(0.0, 1.0);
        /// Band of the fitted exponent around ½.
        tol_exponent: f64 = 0.05, Range::real(0.0, 1.0);
        /// Band of the flat-side time fraction.
        tol_fraction: f64 = 0.01, Range::real(0.0, 0.5);
        /// Band of the stationarity identity, in standard errors.
        identity_sigmas: f64 = 4.0, Range::real(0.0, 100.0);
        /// Detection floor: |mean(w̄)| in standard errors.
        detect_sigmas: f64 = 10.0, Range::real(0.0, 1000.0);
        /// Chains allowed on the sharp side per η.
        wrong_side_allowed: usize = 1, Range::int(0, 1 << 20);
        /// Symmetric coordinates: largest accepted |mean(w̄)| in standard errors.
        zero_sigmas: f64 = 4.0, Range::real(0.0, 100.0);
    }
}

impl CheckConfig for AveragingBiasConfig {
    fn validate(&self) -> Result<(), String> {
        if self.a.len() != self.b.len() {
            return Err(format!(
                "`a` has {} coordinates and `b` has {}: one curvature pair per coordinate",
                self.a.len(),
                self.b.len()
            ));
        }
        if self.a.iter().zip(&self.b).all(|(a, b)| a == b) {
            return Err(
                "every coordinate has `a` = `b`: without an asymmetric coordinate there is no flat \
                 side and nothing to predict"
                    .into(),
            );
        }
        for (i, e) in self.etas.iter().enumerate() {
            if self.etas[..i].contains(e) {
                return Err(format!(
                    "`etas` lists {e} twice: the exponent fit needs distinct η"
                ));
            }
        }
        valley_eta_ok(&self.a, &self.b, &self.etas, self.momentum, self.burn_in)?;
        self.power_ok()
    }
}

/// Leading-order discretisation error of the kinked valley's stationary mean, relative to μ, per
/// unit η_eff: the per-side variance of the discrete chain is `τ/c · 2/(2 − ηc)`, so each half's
/// scale grows by `ηc/4`; in `μ ∝ s_b − s_a` the two errors combine to `η√(ab)/4` (1.0% at
/// (4, 1), η = 0.02, as the exact discrete law gives). The constant carries a 1.5× safety factor.
const DISC_MEAN: f64 = 1.5 / 4.0;
/// Standard errors a band must hold, by the a-priori variances, for the positive case to pass
/// reliably (two-sided 4 SE: 6e-5 per criterion).
const POWER_SIGMAS: f64 = 4.0;

/// The Gibbs law needs `η_eff·max(a, b) ≤ 0.08` (discrete correction ≤ 1.5%); the burn-in must
/// cover ten relaxation times, `1/(η_eff·min(a, b))` for the slow mode and, with momentum,
/// `1/(1 − √β)` for the damped oscillation, so the average does not include the transient from 0.
fn valley_eta_ok(
    a: &[f64],
    b: &[f64],
    etas: &[f64],
    beta: f64,
    burn_in: usize,
) -> Result<(), String> {
    let hi = a.iter().chain(b).fold(0.0f64, |m, &v| m.max(v));
    let lo = a.iter().chain(b).fold(f64::INFINITY, |m, &v| m.min(v));
    for &eta in etas {
        let eff = eta / (1.0 - beta);
        // (The 1e-12 absorbs the rounding of η/(1 − β) at the boundary.)
        if eff * hi > 0.08 * (1.0 + 1e-12) {
            return Err(format!(
                "η/(1 − `momentum`) × max(`a`, `b`) = {} at η = {eta} exceeds 0.08: the Gibbs \
                 prediction does not hold",
                eff * hi
            ));
        }
        let relax = (1.0 / (eff * lo)).max(if beta > 0.0 {
            1.0 / (1.0 - beta.sqrt())
        } else {
            0.0
        });
        if (burn_in as f64) < 10.0 * relax {
            return Err(format!(
                "`burn_in` = {burn_in} is below 10 relaxation times ({:.0} steps) at η = {eta}",
                10.0 * relax
            ));
        }
    }
    Ok(())
}

/// `P(N > k)` for `N ~ Poisson(λ)`.
fn poisson_tail(lambda: f64, k: usize) -> f64 {
    let mut term = (-lambda).exp();
    let mut cdf = term;
    for i in 1..=k {
        term *= lambda / i as f64;
        cdf += term;
    }
    (1.0 - cdf).max(0.0)
}

/// A-priori statistics of one asymmetric coordinate under a configuration.
struct Power {
    /// Across-chain sd of w̄ (η-independent).
    sd: f64,
    /// Per η: |μ|, relative SE of mean(w̄), predicted discretisation error.
    per_eta: Vec<(f64, f64, f64)>,
    /// SE of the fitted exponent and its discretisation shift.
    exponent: (f64, f64),
    /// SE of the pooled flat-side fraction and its discretisation bound.
    fraction: (f64, f64),
}

impl AveragingBiasConfig {
    fn eta_eff(&self, eta: f64) -> f64 {
        eta / (1.0 - self.momentum)
    }

    fn power(&self, a: f64, b: f64) -> Power {
        let (g, h) = time_average_variances(a, b);
        let k = self.steps as f64;
        let sd = self.sigma * (g / k).sqrt();
        let se = sd / (self.chains as f64).sqrt();
        let per_eta: Vec<(f64, f64, f64)> = self
            .etas
            .iter()
            .map(|&e| {
                let mu = mu_formula(a, b, self.sigma, self.eta_eff(e)).abs();
                (mu, se / mu, DISC_MEAN * self.eta_eff(e) * (a * b).sqrt())
            })
            .collect();
        let x: Vec<f64> = self.etas.iter().map(|e| e.ln()).collect();
        let xm = numerics::mean(&x);
        let sxx: f64 = x.iter().map(|v| (v - xm).powi(2)).sum();
        let var: f64 = x
            .iter()
            .zip(&per_eta)
            .map(|(v, p)| (v - xm).powi(2) * p.1 * p.1)
            .sum();
        let (emin, emax) = self
            .etas
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), &e| (l.min(e), h.max(e)));
        let kappa = DISC_MEAN * (a * b).sqrt() / (1.0 - self.momentum);
        let disc_slope = kappa * (emax - emin) / (emax / emin).ln();
        let nf = self.etas.len() as f64;
        let frac_var: f64 = self
            .etas
            .iter()
            .map(|&e| 2.0 * h / (k * self.eta_eff(e)) / self.chains as f64)
            .sum::<f64>()
            / (nf * nf);
        let p = a.sqrt() / (a.sqrt() + b.sqrt());
        let disc_frac = 1.5 * p * (1.0 - p) * self.eta_eff(emax) * (a - b).abs() / 4.0;
        Power {
            sd,
            per_eta,
            exponent: (var.sqrt() / sxx, disc_slope),
            fraction: (frac_var.sqrt(), disc_frac),
        }
    }

    /// Rejects configurations whose bands cannot be met by a correct run: every band must hold
    /// the predicted discretisation error plus [`POWER_SIGMAS`] a-priori standard errors
    /// (computed from [`time_average_variances`], not from a run).
    fn power_ok(&self) -> Result<(), String> {
        for (j, (&a, &b)) in self.a.iter().zip(&self.b).enumerate() {
            if a == b {
                continue;
            }
            let p = self.power(a, b);
            for (&eta, &(mu, rel, disc)) in self.etas.iter().zip(&p.per_eta) {
                if disc + POWER_SIGMAS * rel > self.tol_mean {
                    return Err(format!(
                        "coordinate {j}, η = {eta}: `tol_mean` = {} is below the discretisation \
                         error {disc:.4} plus {POWER_SIGMAS} a-priori SE of w̄/μ ({rel:.4} each); \
                         raise `steps` or `chains`",
                        self.tol_mean
                    ));
                }
                if mu / (rel * mu) < self.detect_sigmas + POWER_SIGMAS {
                    return Err(format!(
                        "coordinate {j}, η = {eta}: the predicted |μ| is only {:.1} a-priori SE, \
                         below `detect_sigmas` + {POWER_SIGMAS}; raise `steps` or `chains`",
                        1.0 / rel
                    ));
                }
                let lambda = self.chains as f64 * ncdf(-mu / p.sd);
                if poisson_tail(lambda, self.wrong_side_allowed) > 1e-4 {
                    return Err(format!(
                        "coordinate {j}, η = {eta}: μ is only {:.2} per-chain sd from 0, so more \
                         than `wrong_side_allowed` chains fall on the sharp side by chance; raise \
                         `steps`",
                        mu / p.sd
                    ));
                }
            }
            let (se, disc) = p.exponent;
            if disc + POWER_SIGMAS * se > self.tol_exponent {
                return Err(format!(
                    "coordinate {j}: `tol_exponent` = {} is below the discretisation shift \
                     {disc:.4} plus {POWER_SIGMAS} a-priori SE ({se:.4}); widen the η range or \
                     raise `steps` or `chains`",
                    self.tol_exponent
                ));
            }
            let (se, disc) = p.fraction;
            if disc + POWER_SIGMAS * se > self.tol_fraction {
                return Err(format!(
                    "coordinate {j}: `tol_fraction` = {} is below the discretisation bound \
                     {disc:.4} plus {POWER_SIGMAS} a-priori SE ({se:.4}); raise `steps` or `chains`",
                    self.tol_fraction
                ));
            }
        }
        Ok(())
    }
}

/// Which iterate a run outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The average of the post-burn-in iterates (SWA-style).
    Average,
    /// The last iterate.
    Last,
}

/// `asymmetric-valleys/averaging-bias` (design AV-1).
pub struct AveragingBias;

impl AveragingBias {
    /// The verdict: runs (one per configured η) judged against the predictions of `cfg`.
    pub fn score(cfg: &AveragingBiasConfig, runs: &[Chains], output: Output) -> Scored {
        let d = cfg.a.len();
        let mut criteria = Vec::new();
        let mut notes = Vec::new();
        let mut series = Vec::new();
        for j in 0..d {
            let (a, b) = (cfg.a[j], cfg.b[j]);
            // With more than one coordinate, each criterion says which one it judges.
            let per_coord = |c: Criterion| {
                if d == 1 {
                    c
                } else {
                    c.qualified(format_args!("coordinate {j}"))
                }
            };
            let mut identity = Vec::new();
            for run in runs {
                let (neg, pos) = (run.coord(&run.neg, j), run.coord(&run.pos, j));
                identity.extend(neg.iter().zip(&pos).map(|(n, p)| a * n + b * p));
            }
            if a == b {
                // Symmetric coordinate: the Gibbs law is symmetric, the mean is exactly 0.
                let mut worst = 0.0f64;
                for (&eta, run) in cfg.etas.iter().zip(runs) {
                    let out = run.coord(
                        match output {
                            Output::Average => &run.avg,
                            Output::Last => &run.last,
                        },
                        j,
                    );
                    let (m, se) = mean_se(&out);
                    let z = m.abs() / se;
                    worst = if z.is_nan() || worst.is_nan() {
                        f64::NAN
                    } else {
                        worst.max(z)
                    };
                    notes.push(format!(
                        "coordinate {j} (symmetric), η = {eta}: mean output {m:.6} ± {se:.6} (SE)"
                    ));
                }
                criteria.push(per_coord(Criterion::at_most(
                    criteria::SYMMETRIC_MEAN_OVER_SE,
                    cfg.zero_sigmas,
                    worst,
                    "a symmetric coordinate's stationary law is symmetric, its mean is exactly 0; \
                     under that null |mean|/SE exceeds 4 with probability 6e-5",
                )));
            } else {
                let flat_right = a > b;
                let mut means = Vec::new();
                let mut min_detect = f64::INFINITY;
                let mut min_flat_chains = usize::MAX;
                let (mut flat, mut samples) = (0u64, 0u64);
                for (&eta, run) in cfg.etas.iter().zip(runs) {
                    let out = run.coord(
                        match output {
                            Output::Average => &run.avg,
                            Output::Last => &run.last,
                        },
                        j,
                    );
                    let (m, se) = mean_se(&out);
                    let mu = mu_formula(a, b, cfg.sigma, cfg.eta_eff(eta));
                    criteria.push(per_coord(
                        Criterion::new(
                            criteria::W_OVER_MU,
                            1.0,
                            m / mu,
                            cfg.tol_mean,
                            "validation guarantees the band holds the discretisation error \
                         0.375·η_eff·√(ab) plus 4 a-priori SE of w̄/μ (from the Gibbs law's \
                         time-average variance σ²g(a,b)/K); 5% at the defaults",
                        )
                        .qualified(format_args!("η={eta}")),
                    ));
                    means.push(m);
                    let detect = m.abs() / se;
                    min_detect = min_detect.min(if detect.is_nan() { 0.0 } else { detect });
                    min_flat_chains = min_flat_chains.min(
                        out.iter()
                            .filter(|&&w| if flat_right { w > 0.0 } else { w < 0.0 })
                            .count(),
                    );
                    let right = run.right[j];
                    flat += if flat_right {
                        right
                    } else {
                        run.samples - right
                    };
                    samples += run.samples;
                    notes.push(format!(
                        "{}η = {eta}: mean output {m:.6} ± {se:.6} (SE), predicted μ = {mu:.6}",
                        if d == 1 {
                            String::new()
                        } else {
                            format!("coordinate {j}, ")
                        }
                    ));
                }
                // Fitted on |mean|; the sign is judged by the flat-side chain count below.
                let abs: Vec<f64> = means.iter().map(|m| m.abs()).collect();
                let exponent = if abs.iter().all(|&m| m > 0.0) {
                    loglog_fit(&cfg.etas, &abs).slope
                } else {
                    f64::NAN
                };
                criteria.push(per_coord(Criterion::new(
                    criteria::W_EXPONENT,
                    0.5,
                    exponent,
                    cfg.tol_exponent,
                    "fitted on |mean w̄|; validation guarantees the band holds the discretisation \
                     shift plus 4 a-priori SE of the slope (≈ 0.007 at the defaults)",
                )));
                let frac_pred = a.max(b).sqrt() / (a.sqrt() + b.sqrt());
                criteria.push(per_coord(Criterion::new(
                    criteria::FLAT_SIDE_FRACTION,
                    frac_pred,
                    flat as f64 / samples as f64,
                    cfg.tol_fraction,
                    "√max(a,b)/(√a+√b); validation guarantees the band holds the discretisation \
                     bound plus 4 a-priori SE of the pooled fraction (variance 2h(a,b)/(K η_eff))",
                )));
                criteria.push(per_coord(Criterion::at_least(
                    criteria::FLAT_SIDE_CHAINS,
                    (cfg.chains - cfg.wrong_side_allowed.min(cfg.chains)) as f64,
                    min_flat_chains as f64,
                    "validation guarantees μ lies far enough from 0 in per-chain sd that more \
                     than `wrong_side_allowed` chains on the sharp side has probability < 1e-4",
                )));
                criteria.push(per_coord(Criterion::at_least(
                    criteria::MEAN_W_OVER_SE,
                    cfg.detect_sigmas,
                    min_detect,
                    "the bias must be resolved: 10 SE leaves the 5% band meaningful",
                )));
                if series.len() < 8 {
                    let sfx = if d == 1 {
                        String::new()
                    } else {
                        format!(" [coordinate {j}]")
                    };
                    series.push(Series::line(
                        &format!("|μ(η)| = √(η_eff σ²/π)|1/√b − 1/√a|{sfx}"),
                        cfg.etas.clone(),
                        cfg.etas
                            .iter()
                            .map(|&e| mu_formula(a, b, cfg.sigma, cfg.eta_eff(e)).abs())
                            .collect(),
                        Role::Prediction,
                    ));
                    series.push(Series::points(
                        &format!("|mean output|{sfx}"),
                        cfg.etas.clone(),
                        abs.iter().map(|m| m.max(1e-12)).collect(),
                        Role::Measured,
                    ));
                }
            }
            let (im, ise) = mean_se(&identity);
            criteria.push(per_coord(Criterion::new(
                criteria::STATIONARITY_IDENTITY,
                0.0,
                im,
                cfg.identity_sigmas * ise,
                "stationarity makes it exactly 0 for every η; the band is 4 across-chain SE",
            )));
        }
        Scored {
            criteria,
            series,
            notes,
        }
    }

    fn runs(
        cfg: &AveragingBiasConfig,
        a: &[f64],
        b: &[f64],
        temp: bool,
        sigma: f64,
        ctx: &Ctx,
    ) -> Vec<Chains> {
        let eta_ref = cfg.etas[cfg.etas.len() / 2];
        cfg.etas
            .iter()
            .enumerate()
            .map(|(k, &eta)| {
                // NC-1c: noise variance ∝ 1/η (fixed temperature ησ²).
                let s = if temp {
                    sigma * (eta_ref / eta).sqrt()
                } else {
                    sigma
                };
                let spec = ChainSpec {
                    a,
                    b,
                    sigma: s,
                    eta,
                    momentum: cfg.momentum,
                    burn_in: cfg.burn_in,
                    steps: cfg.steps,
                    chains: cfg.chains,
                };
                run_chains(
                    spec,
                    ctx.seed(cfg.seed),
                    (k * cfg.chains.div_ceil(BLOCK)) as u32,
                    ctx,
                )
            })
            .collect()
    }
}

const V_NC1A: Control = Control {
    id: "NC1a",
    description: "symmetric valley a_j = b_j = (a_j+b_j)/2 on every coordinate: no flat side, the average stays at 0",
};
const V_NC1B: Control = Control {
    id: "NC1b",
    description:
        "no averaging: the last iterate is output, on the flat side only ≈ √max(a,b)/(√a+√b) of the time",
};
const V_NC1C: Control = Control {
    id: "NC1c",
    description: "noise variance ∝ 1/η (fixed temperature): the bias no longer scales as η^½",
};
const V_NC1D: Control = Control {
    id: "NC1d",
    description: "σ = 0: deterministic GD stays at the minimizer, no bias",
};

impl Check for AveragingBias {
    type Config = AveragingBiasConfig;
    const ID: CheckId = CheckId {
        name: "asymmetric-valleys/averaging-bias",
        paper: PAPER,
        claim: "The average of SGD iterates in an asymmetric valley sits on the flat side by μ(η) = √(η_eff σ²/π)(1/√b − 1/√a) (η_eff = η/(1−β) with heavy-ball momentum β), exponent ½ in η, because SGD spends a fraction √max(a,b)/(√a+√b) of its time there; per coordinate of a separable valley, symmetric coordinates unbiased.",
    };
    const CONTROLS: &'static [Control] = &[V_NC1A, V_NC1B, V_NC1C, V_NC1D];

    fn run(cfg: &AveragingBiasConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| {
            axes(
                format!("{} ({case}): |mean output| vs η", id.name),
                "η",
                "|mean w̄|",
                true,
            )
        };
        let (runs, sec_runs) = timed(|| Self::runs(cfg, &cfg.a, &cfg.b, false, cfg.sigma, ctx));
        let (pos, s) = timed(|| Self::score(cfg, &runs, Output::Average));
        let mut out = vec![pos.into_record(
            id,
            Case::positive(
                "kinked valley a ≠ b, injected noise, average of the post-burn-in iterates",
            ),
            sec_runs + s,
            ax("positive"),
        )];
        let m: Vec<f64> = cfg
            .a
            .iter()
            .zip(&cfg.b)
            .map(|(a, b)| 0.5 * (a + b))
            .collect();
        let (r, s) = timed(|| {
            Self::score(
                cfg,
                &Self::runs(cfg, &m, &m, false, cfg.sigma, ctx),
                Output::Average,
            )
        });
        out.push(r.into_record(id, Case::control(&V_NC1A), s, ax("NC1a")));
        let (r, s) = timed(|| Self::score(cfg, &runs, Output::Last));
        out.push(r.into_record(id, Case::control(&V_NC1B), s + sec_runs, ax("NC1b")));
        let (r, s) = timed(|| {
            Self::score(
                cfg,
                &Self::runs(cfg, &cfg.a, &cfg.b, true, cfg.sigma, ctx),
                Output::Average,
            )
        });
        out.push(r.into_record(id, Case::control(&V_NC1C), s, ax("NC1c")));
        let (r, s) = timed(|| {
            Self::score(
                cfg,
                &Self::runs(cfg, &cfg.a, &cfg.b, false, 0.0, ctx),
                Output::Average,
            )
        });
        out.push(r.into_record(id, Case::control(&V_NC1D), s, ax("NC1d")));
        out
    }
}
// =================================================================== AV-2: shift generalization

check_config! {
    /// Configuration of `asymmetric-valleys/shift-generalization` (design AV-2).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ShiftConfig {
        /// Left-hand curvature a (`w < 0`).
        a: f64 = 4.0, Range::real(1e-3, 1e3);
        /// Right-hand curvature b (`w ≥ 0`), ≠ a; the flat side is the side of the smaller one.
        b: f64 = 1.0, Range::real(1e-3, 1e3);
        /// Noise standard deviation σ.
        sigma: f64 = 1.0, Range::real(1e-6, 1e3);
        /// Step size η.
        eta: f64 = 0.01, Range::real(1e-6, 1.0);
        /// Standard deviation s of the random shift.
        shift: f64 = 0.05, Range::real(1e-9, 1e3);
        /// Burn-in steps of the averaged chains.
        burn_in: usize = 3000, Range::int(0, 10_000_000);
        /// Averaged steps K.
        steps: usize = 50_000, Range::int(100, 100_000_000);
        /// Averaged chains.
        chains: usize = 256, Range::int(8, 1 << 20);
        /// Independent short chains whose last iterate is scored.
        last_chains: usize = 4096, Range::int(8, 1 << 22);
        /// Steps of each short chain.
        last_steps: usize = 3000, Range::int(1, 10_000_000);
        /// Seed.
        seed: u64 = 2, Range::int(0, 1 << 53);
        /// Band of the improvement I around its prediction.
        tol_improvement: f64 = 0.03, Range::real(0.0, 1.0);
        /// Floor of I, applied when the predicted I is at least `improvement_gate`.
        min_improvement: f64 = 0.10, Range::real(-1.0, 1.0);
        /// Predicted I above which the floor applies.
        improvement_gate: f64 = 0.15, Range::real(-1.0, 1.0);
        /// Band of the last-iterate ratio in standard errors ...
        ratio_sigmas: f64 = 3.0, Range::real(0.0, 100.0);
        /// ... plus this slack.
        ratio_slack: f64 = 0.01, Range::real(0.0, 10.0);
    }
}

impl CheckConfig for ShiftConfig {
    fn validate(&self) -> Result<(), String> {
        if self.a == self.b {
            return Err(
                "`a` = `b`: a symmetric valley has no flat side, nothing to predict (it is control \
                 NC2a)"
                    .into(),
            );
        }
        valley_eta_ok(&[self.a], &[self.b], &[self.eta], 0.0, self.burn_in)?;
        // The symmetric valley (control NC2a) has I = 0 exactly: its average sits at the
        // minimizer. Unless the prediction is at least two bands away from 0, the two bands overlap
        // and the criterion cannot tell the asymmetric valley from the symmetric one.
        let i_pred = predicted_improvement(self);
        if i_pred.abs() < 2.0 * self.tol_improvement {
            return Err(format!(
                "the predicted improvement I = {i_pred:.4} is within 2 × `tol_improvement` = {} of \
                 the symmetric valley's I = 0 (control NC2a): the criterion could not tell them \
                 apart; make `a` and `b` more different, or raise `sigma` or `eta` (a larger bias \
                 μ) or `shift`",
                2.0 * self.tol_improvement
            ));
        }
        if (self.last_steps as f64) * self.eta * self.a.min(self.b) < 10.0 {
            return Err(
                "`last_steps` × `eta` × min(`a`, `b`) must be at least 10 relaxation times".into(),
            );
        }
        Ok(())
    }
}

/// Predicted improvement I = 1 − L_pop(μ)/L_pop(0) of the average (at the Gibbs bias μ) over the
/// minimizer, on the shifted population loss of `cfg`'s valley.
fn predicted_improvement(cfg: &ShiftConfig) -> f64 {
    let mu = mu_formula(cfg.a, cfg.b, cfg.sigma, cfg.eta);
    1.0 - l_pop(cfg.a, cfg.b, cfg.shift, mu) / l_pop(cfg.a, cfg.b, cfg.shift, 0.0)
}

/// `asymmetric-valleys/shift-generalization` (design AV-2).
pub struct ShiftGeneralization;

impl ShiftGeneralization {
    /// The verdict: output points `points` (one per chain) and last iterates `last`, of a run on
    /// the valley `(a_run, b_run)` whose shifted copy is the population loss, judged against the
    /// predictions of `cfg`.
    pub fn score(
        cfg: &ShiftConfig,
        a_run: f64,
        b_run: f64,
        points: &[f64],
        last: &[f64],
    ) -> Scored {
        let s = cfg.shift;
        let lp = |w: f64| l_pop(a_run, b_run, s, w);
        let l0 = lp(0.0);
        let i_meas = 1.0 - numerics::mean(&points.iter().map(|&w| lp(w)).collect::<Vec<_>>()) / l0;
        let l0_pred = l_pop(cfg.a, cfg.b, s, 0.0);
        let i_pred = predicted_improvement(cfg);
        let mut criteria = vec![Criterion::new(
            criteria::IMPROVEMENT,
            i_pred,
            i_meas,
            cfg.tol_improvement,
            "L_pop is flat near w̄ ≈ w_pop, so chain-to-chain scatter moves I by ≈ 0.3%; ±0.03 covers \
             that plus the ≤ 1% discrete-time correction of μ",
        )];
        if i_pred >= cfg.improvement_gate {
            criteria.push(Criterion::at_least(
                criteria::IMPROVEMENT_FLOOR,
                cfg.min_improvement,
                i_meas,
                "a predicted gain this large must be seen as a real gain, not only within a band",
            ));
        }
        let r: Vec<f64> = last.iter().map(|&w| lp(w) / l0).collect();
        let (rm, rse) = mean_se(&r);
        let r_pred = gibbs_mean_l_pop(cfg.a, cfg.b, cfg.sigma, cfg.eta, s) / l0_pred;
        criteria.push(Criterion::new(
            criteria::LAST_ITERATE_RATIO,
            r_pred,
            rm,
            cfg.ratio_sigmas * rse + cfg.ratio_slack,
            "3 SE of the mean over the last iterates, plus 0.01 for the ≈ 0.5% Gibbs-versus-discrete \
             difference",
        ));
        let w_grid: Vec<f64> = (0..=80)
            .map(|k| (k as f64 - 40.0) / 40.0 * 3.0 * s)
            .collect();
        let series = vec![
            Series::line(
                "L_pop(w)/L_pop(0)",
                w_grid.clone(),
                w_grid.iter().map(|&w| lp(w) / l0).collect(),
                Role::Reference,
            ),
            Series::points(
                "output points",
                points.iter().take(64).copied().collect(),
                points.iter().take(64).map(|&w| lp(w) / l0).collect(),
                Role::Measured,
            ),
        ];
        Scored {
            criteria,
            series,
            notes: vec![format!(
                "L_pop(0) = {l0:.6e}; mean output {:.6}; I = {i_meas:.4} (predicted {i_pred:.4}); \
                 R = {rm:.4} ± {rse:.4} (predicted {r_pred:.4})",
                numerics::mean(points)
            )],
        }
    }

    fn run_valley(cfg: &ShiftConfig, a: f64, b: f64, ctx: &Ctx) -> (Chains, Chains) {
        let (a, b) = ([a], [b]);
        let spec = ChainSpec {
            a: &a,
            b: &b,
            sigma: cfg.sigma,
            eta: cfg.eta,
            momentum: 0.0,
            burn_in: cfg.burn_in,
            steps: cfg.steps,
            chains: cfg.chains,
        };
        let long = run_chains(spec, ctx.seed(cfg.seed), 0, ctx);
        let short = run_chains(
            ChainSpec {
                burn_in: 0,
                steps: cfg.last_steps,
                chains: cfg.last_chains,
                ..spec
            },
            ctx.seed(cfg.seed),
            cfg.chains.div_ceil(BLOCK) as u32,
            ctx,
        );
        (long, short)
    }
}

const S_NC2A: Control = Control {
    id: "NC2a",
    description:
        "symmetric valley a = b = (a+b)/2: 0 is the population optimum, averaging gains nothing",
};
const S_NC2B: Control = Control {
    id: "NC2b",
    description: "no averaging: the last iterate is output; spread over the Gibbs law it is worse than the minimizer",
};

impl Check for ShiftGeneralization {
    type Config = ShiftConfig;
    const ID: CheckId = CheckId {
        name: "asymmetric-valleys/shift-generalization",
        paper: PAPER,
        claim: "Under a random N(0, s²) shift of an asymmetric valley, the SGD average (biased to the flat side) has lower population loss than the exact minimizer by I = 1 − L_pop(μ)/L_pop(0); the last iterate is worse than the minimizer.",
    };
    const CONTROLS: &'static [Control] = &[S_NC2A, S_NC2B];

    fn run(cfg: &ShiftConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| {
            axes(
                format!("{} ({case}): population loss of the output", id.name),
                "w",
                "L_pop(w)/L_pop(0)",
                false,
            )
        };
        let ((long, short), sec) = timed(|| Self::run_valley(cfg, cfg.a, cfg.b, ctx));
        let (r, s) = timed(|| Self::score(cfg, cfg.a, cfg.b, &long.avg, &short.last));
        let mut out = vec![r.into_record(
            id,
            Case::positive("averaged SGD point on the asymmetric valley, scored on the shifted population loss"),
            sec + s,
            ax("positive"),
        )];
        let m = 0.5 * (cfg.a + cfg.b);
        let (r, s) = timed(|| {
            let (l, sh) = Self::run_valley(cfg, m, m, ctx);
            Self::score(cfg, m, m, &l.avg, &sh.last)
        });
        out.push(r.into_record(id, Case::control(&S_NC2A), s, ax("NC2a")));
        let (r, s) = timed(|| Self::score(cfg, cfg.a, cfg.b, &short.last, &short.last));
        out.push(r.into_record(id, Case::control(&S_NC2B), s + sec, ax("NC2b")));
        out
    }
}

// =================================================================== AV-3: smooth valley (logistic)

check_config! {
    /// Configuration of `asymmetric-valleys/logistic` (design AV-3).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LogisticConfig {
        /// Samples n.
        n: usize = 200, Range::int(10, 1_000_000);
        /// Input scale: `x = scale·z + shift`.
        x_scale: f64 = 1.5, Range::real(1e-3, 100.0);
        /// Input shift.
        x_shift: f64 = 0.5, Range::real(-100.0, 100.0);
        /// Label slope: `P(y = +1) = sigmoid(slope·x)`.
        label_slope: f64 = 1.5, Range::real(-100.0, 100.0);
        /// Step sizes η.
        etas: Vec<f64> = vec![0.05, 0.1, 0.2], Range::real(1e-6, 10.0).list(2);
        /// Burn-in in relaxation times `1/(ηH)`.
        burn_in_times: f64 = 20.0, Range::real(1.0, 1e4);
        /// Averaged steps K.
        steps: usize = 200_000, Range::int(100, 100_000_000);
        /// Chains per η.
        chains: usize = 128, Range::int(8, 1 << 20);
        /// Seed (data from stream 0, chains from further streams).
        seed: u64 = 3, Range::int(0, 1 << 53);
        /// Relative band of the bias around its prediction ...
        tol_rel: f64 = 0.10, Range::real(0.0, 1.0);
        /// ... or this many standard errors, whichever is larger.
        tol_sigmas: f64 = 4.0, Range::real(0.0, 100.0);
        /// Detection floor, in standard errors.
        detect_sigmas: f64 = 8.0, Range::real(0.0, 1000.0);
        /// Band of the exponent around 1.
        tol_exponent: f64 = 0.1, Range::real(0.0, 1.0);
        /// Control: least-squares slope of `y = slope·x + N(0, lsq_noise²)`.
        lsq_slope: f64 = 0.8, Range::real(-100.0, 100.0);
        /// Control: standard deviation of the least-squares target noise.
        lsq_noise: f64 = 1.0, Range::real(0.0, 100.0);
    }
}

impl CheckConfig for LogisticConfig {
    fn validate(&self) -> Result<(), String> {
        // The bias must be resolvable: a-priori, the chain's stationary variance is ηΣ/(2H), its
        // autocorrelation time 1/(ηH), so one chain's average over `steps` has variance
        // Σ/(H²·steps) and the mean over `chains` an SE of √(Σ/(H²·steps·chains)). With the
        // predicted bias ηL3Σ/(4H²), |bias|/SE = η|L3|√(Σ·steps·chains)/(4H) =: z, smallest at the
        // smallest η. Measured |bias|/SE was 0.93–0.95·z (21.8 vs 22.9 at the defaults, 7.05 vs
        // 7.6) and scatters by ±1: require 0.9·z − 3 ≥ `detect_sigmas`. The data (hence H, L3, Σ)
        // change with a `--seed` shift, which validation cannot see: z is the minimum over the
        // data of `seed` … `seed + 7`, i.e. exactly over the shifts 0–7.
        let eta = self.etas.iter().copied().fold(f64::INFINITY, f64::min);
        let (mut z, mut at) = (f64::INFINITY, (0.0, 0.0, 0.0));
        for shift in 0..8 {
            let (_, h, l3, sig) = Data::draw(self, self.seed.wrapping_add(shift), true).minimizer();
            let zs =
                eta * l3.abs() * (sig * self.steps as f64 * self.chains as f64).sqrt() / (4.0 * h);
            if zs.is_nan() || zs < z {
                (z, at) = (zs, (h, l3, sig));
            }
        }
        let needed = (self.detect_sigmas + 3.0) / 0.9;
        if z.is_nan() || z < needed {
            let (h, l3, sig) = at;
            return Err(format!(
                "the bias is not resolvable: at the smallest η = {eta} (`etas`) the predicted bias \
                 is {z:.1} a-priori SE (L3 = {l3:.4}, H = {h:.4}, Σ = {sig:.4}; the least over \
                 the data of seed shifts 0–7), below {needed:.1} = (`detect_sigmas` + 3)/0.9; \
                 the loss is too symmetric at its minimum (|`label_slope`| or |`x_shift`| \
                 small) or the run too short: raise `steps` or `chains`"
            ));
        }
        Ok(())
    }
}

/// A 1-D data set and its loss.
#[derive(Clone, Debug)]
pub struct Data {
    /// Inputs.
    pub x: Vec<f64>,
    /// Targets (±1 for logistic, reals for least squares).
    pub y: Vec<f64>,
    /// Logistic loss (else least squares `½(xw − y)²`).
    pub logistic: bool,
}

fn sigmoid(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

impl Data {
    /// Draws the design's data from stream 0 of `seed`: `x = scale·z + shift` and logistic labels,
    /// or least-squares targets `lsq_slope·x + N(0, lsq_noise²)`.
    pub fn draw(cfg: &LogisticConfig, seed: u64, logistic: bool) -> Data {
        let mut rng = numerics::stream(seed, 0);
        let mut x = vec![0.0; cfg.n];
        fill_normal(&mut rng, &mut x, cfg.x_shift, cfg.x_scale);
        let y = if logistic {
            x.iter()
                .map(|&xi| {
                    let u = descent_kernels::random::uniform01(&mut rng);
                    if u < sigmoid(cfg.label_slope * xi) {
                        1.0
                    } else {
                        -1.0
                    }
                })
                .collect()
        } else {
            let mut e = vec![0.0; cfg.n];
            fill_normal(&mut rng, &mut e, 0.0, cfg.lsq_noise);
            x.iter()
                .zip(&e)
                .map(|(&xi, &ei)| cfg.lsq_slope * xi + ei)
                .collect()
        };
        Data { x, y, logistic }
    }

    /// Per-sample derivatives 1 to 3 of the loss at `w`.
    #[inline]
    pub fn derivs(&self, i: usize, w: f64) -> [f64; 3] {
        let (x, y) = (self.x[i], self.y[i]);
        if self.logistic {
            let u = y * x;
            let p = sigmoid(u * w);
            [
                -u * (1.0 - p),
                u * u * p * (1.0 - p),
                u * u * u * p * (1.0 - p) * (1.0 - 2.0 * p),
            ]
        } else {
            [x * (x * w - y), x * x, 0.0]
        }
    }

    /// Mean of the derivatives over the data.
    pub fn mean_derivs(&self, w: f64) -> [f64; 3] {
        let mut acc = [0.0; 3];
        for i in 0..self.x.len() {
            let d = self.derivs(i, w);
            (0..3).for_each(|k| acc[k] += d[k]);
        }
        acc.map(|v| v / self.x.len() as f64)
    }

    /// `ŵ` (Newton until |L̂'| < 1e-14), `H`, `L3` and `Σ = mean g_i(ŵ)²`.
    pub fn minimizer(&self) -> (f64, f64, f64, f64) {
        let mut w = 0.0;
        for _ in 0..200 {
            let [g, h, _] = self.mean_derivs(w);
            if g.abs() < 1e-14 {
                break;
            }
            w -= g / h;
        }
        let [_, h, l3] = self.mean_derivs(w);
        let sig = (0..self.x.len())
            .map(|i| self.derivs(i, w)[0].powi(2))
            .sum::<f64>()
            / self.x.len() as f64;
        (w, h, l3, sig)
    }
}

/// `asymmetric-valleys/logistic` (design AV-3).
pub struct Logistic;

impl Logistic {
    /// Runs batch-1 SGD with replacement from `ŵ`; returns per η the per-chain averages minus `ŵ`.
    pub fn runs(cfg: &LogisticConfig, data: &Data, seed: u64, ctx: &Ctx) -> Vec<Vec<f64>> {
        let (w_hat, h, _, _) = data.minimizer();
        let blocks = cfg.chains.div_ceil(BLOCK);
        cfg.etas
            .iter()
            .enumerate()
            .map(|(k, &eta)| {
                let burn = (cfg.burn_in_times / (eta * h)).ceil() as usize;
                let parts = ctx.map(blocks, |j| {
                    let nb = BLOCK.min(cfg.chains - j * BLOCK);
                    let mut rng = numerics::stream(seed, 1 + (k * blocks + j) as u32);
                    let gd = Gd::new(eta);
                    let (mut w, mut g, mut avg) = (vec![w_hat; nb], vec![0.0; nb], vec![0.0; nb]);
                    let n = data.x.len() as f64;
                    for t in 0..burn + cfg.steps {
                        for (gi, &wi) in g.iter_mut().zip(&w) {
                            let i = ((descent_kernels::random::uniform01(&mut rng) * n) as usize)
                                .min(data.x.len() - 1);
                            *gi = data.derivs(i, wi)[0];
                        }
                        gd.step(1, &mut w, &g, &mut []).expect("same lengths");
                        if t >= burn {
                            running_mean(&mut avg, &w, (t - burn) as u64).expect("same lengths");
                        }
                    }
                    avg.into_iter().map(|a| a - w_hat).collect::<Vec<f64>>()
                });
                parts.into_iter().flatten().collect()
            })
            .collect()
    }

    /// The verdict: the measured biases against `−η L3 Σ/(4H²)` of the logistic data `pred_data`.
    pub fn score(cfg: &LogisticConfig, pred_data: &Data, runs: &[Vec<f64>]) -> Scored {
        let (w_hat, h, l3, sig) = pred_data.minimizer();
        let mut criteria = Vec::new();
        let mut notes = vec![format!(
            "ŵ = {w_hat:.4}, H = {h:.4}, L3 = {l3:.4}, Σ = {sig:.4}"
        )];
        let mut biases = Vec::new();
        let mut min_detect = f64::INFINITY;
        for (&eta, run) in cfg.etas.iter().zip(runs) {
            let pred = -eta * l3 * sig / (4.0 * h * h);
            let (m, se) = mean_se(run);
            criteria.push(Criterion::new(
                criteria::BIAS,
                pred,
                m,
                (cfg.tol_rel * pred.abs()).max(cfg.tol_sigmas * se),
                "second-order terms O(ηH) are < 2% for ηH ≤ 0.03 and the across-chain SE is 2–3% of the \
                 bias, so 10% (or 4 SE when larger) covers both",
            ).qualified(format_args!("η={eta}")));
            min_detect = min_detect.min(m.abs() / se);
            biases.push(m);
            notes.push(format!(
                "η = {eta}: bias {m:.5} ± {se:.5} (SE), predicted {pred:.5}"
            ));
        }
        criteria.push(Criterion::at_least(
            criteria::BIAS_OVER_SE,
            cfg.detect_sigmas,
            min_detect,
            "the bias must be resolved, not only within a band",
        ));
        // Fitted on |bias| (either sign of L3); the sign is its own criterion.
        let abs: Vec<f64> = biases.iter().map(|b| b.abs()).collect();
        let exponent = if abs.iter().all(|&b| b > 0.0) {
            loglog_fit(&cfg.etas, &abs).slope
        } else {
            f64::NAN
        };
        let agree = cfg
            .etas
            .iter()
            .zip(&biases)
            .filter(|(&e, &b)| b * (-e * l3 * sig / (4.0 * h * h)) > 0.0)
            .count();
        criteria.push(Criterion::at_least(
            criteria::BIAS_SIGN_COUNT,
            cfg.etas.len() as f64,
            agree as f64,
            "the bias points to the flatter side, the sign of −L3; with |bias| ≥ 8 SE a wrong sign \
             cannot come from noise",
        ));
        criteria.push(Criterion::new(
            criteria::BIAS_EXPONENT,
            1.0,
            exponent,
            cfg.tol_exponent,
            "per-η relative SE 2–3% over a 4× range gives SE ≈ 0.03; ±0.1 also covers the O(ηH) terms \
             (the kinked valley's exponent ½ is 5 bands away)",
        ));
        Scored {
            criteria,
            series: vec![
                Series::line(
                    "−ηL3Σ/(4H²)",
                    cfg.etas.clone(),
                    cfg.etas
                        .iter()
                        .map(|&e| -e * l3 * sig / (4.0 * h * h))
                        .collect(),
                    Role::Prediction,
                ),
                Series::points(
                    "measured bias",
                    cfg.etas.clone(),
                    biases.iter().map(|b| b.abs().max(1e-12)).collect(),
                    Role::Measured,
                ),
            ],
            notes,
        }
    }
}

const G_LSQ: Control = Control {
    id: "LSQ",
    description: "least squares on the same inputs (L3 ≡ 0): the averaged iterate is unbiased",
};

impl Check for Logistic {
    type Config = LogisticConfig;
    const ID: CheckId = CheckId {
        name: "asymmetric-valleys/logistic",
        paper: PAPER,
        claim: "In a smooth asymmetric valley (1-D logistic regression), the SGD average is biased toward the flatter side (the sign of −L3) by −ηL3Σ/(4H²): exponent 1 in η, against ½ for a kink.",
    };
    const CONTROLS: &'static [Control] = &[G_LSQ];

    fn run(cfg: &LogisticConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| {
            axes(
                format!("{} ({case}): bias of the average vs η", id.name),
                "η",
                "E[w̄] − ŵ",
                true,
            )
        };
        let seed = ctx.seed(cfg.seed);
        let data = Data::draw(cfg, seed, true);
        let (r, s) = timed(|| Self::score(cfg, &data, &Self::runs(cfg, &data, seed, ctx)));
        let mut out = vec![r.into_record(
            id,
            Case::positive("logistic regression, batch 1 with replacement, averaged after burn-in"),
            s,
            ax("positive"),
        )];
        let (r, s) = timed(|| {
            let lsq = Data::draw(cfg, seed, false);
            Self::score(
                cfg,
                &data,
                &Self::runs(cfg, &lsq, seed.wrapping_add(1), ctx),
            )
        });
        out.push(r.into_record(id, Case::control(&G_LSQ), s, ax("LSQ")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_match_the_design() {
        assert!((mu_formula(4.0, 1.0, 1.0, 0.01) - 0.028209).abs() < 1e-6);
        assert!((l_pop(4.0, 1.0, 0.05, 0.0) - 5.0 * 0.0025 / 4.0).abs() < 1e-15);
        let r = gibbs_mean_l_pop(4.0, 1.0, 1.0, 0.01, 0.05) / l_pop(4.0, 1.0, 0.05, 0.0);
        assert!((r - 1.618).abs() < 2e-3, "{r}");
        let i = 1.0
            - l_pop(4.0, 1.0, 0.05, mu_formula(4.0, 1.0, 1.0, 0.01)) / l_pop(4.0, 1.0, 0.05, 0.0);
        assert!((i - 0.250).abs() < 2e-3, "{i}");
    }

    #[test]
    fn chains_do_not_depend_on_the_thread_count() {
        let spec = ChainSpec {
            a: &[4.0, 1.0],
            b: &[1.0, 1.0],
            sigma: 1.0,
            eta: 0.01,
            momentum: 0.5,
            burn_in: 10,
            steps: 200,
            chains: 70,
        };
        let mut one = Ctx::quiet();
        one.threads = 1;
        let mut three = Ctx::quiet();
        three.threads = 3;
        let (x, y) = (run_chains(spec, 5, 0, &one), run_chains(spec, 5, 0, &three));
        assert_eq!(x.avg, y.avg);
        assert_eq!(x.right, y.right);
    }

    #[test]
    fn time_average_variances_match_the_linear_and_kinked_cases() {
        // Linear valley c: Var(w̄)·K/σ² = 1/c².
        for c in [0.5, 1.0, 4.0] {
            let (g, _) = time_average_variances(c, c);
            assert!((g * c * c - 1.0).abs() < 1e-6, "{c}: {g}");
        }
        // (4, 1): sd(w̄) = √(g/K) = 0.00273 at K = 5e4 (the measured across-chain sd is 0.0027).
        let (g, h) = time_average_variances(4.0, 1.0);
        assert!((g - 0.37238).abs() < 1e-3, "{g}");
        let (g2, h2) = time_average_variances(1.0, 4.0);
        assert!(
            (g - g2).abs() < 1e-9 && (h - h2).abs() < 1e-9,
            "mirror symmetry"
        );
        assert!((h - 0.07702).abs() < 1e-3, "{h}");
    }
}
