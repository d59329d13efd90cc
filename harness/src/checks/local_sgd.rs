//! Spiridonoff, Olshevsky, Paschalidis, "Communication-efficient SGD: From Local SGD to One-Shot
//! Averaging" (NeurIPS 2021, arXiv:2106.04759); derivations in `docs/checks/local-sgd-one-shot.md`.
//!
//! # Setting
//! N workers run SGD `x ← x − η_t (F'(x) + σξ)` with `η_t = min(α/(μ(t+1)), 1/L)` from `x₀`; at
//! each communication time (after local step `τ`) every local model is replaced by the mean of all
//! of them (the kernels' `replica_mean`). Every schedule communicates at `T`, where the error
//! `F(x̄_T) − F*` is measured.
//!
//! # Predictions (derivation (a) of the design: self-similar limit `y = √t·x`)
//! On the kinked `F'(x) = k₊x (x ≥ 0), k₋x (x < 0)`, `y` is an OU process with piecewise-linear
//! drift whose stationary law is two half-Gaussians of variances
//! `v± = α²σ²/(μ²(2αk±/μ − 1))` glued at 0 with weights `∝ √v±`. Hence `√T·E[x_T] → m =
//! √(2/π)(√v₊ − √v₋)`, `T·E[x_T²] → v₊ − √(v₊v₋) + v₋`, `T·E[F] → C1 = (k₊v₊^{3/2} +
//! k₋v₋^{3/2})/(2(√v₊ + √v₋))`. Synchronous SGD divides the noise variance by N, and F is
//! 2-homogeneous, so its error is `C1/(NT)` (speed-up N). One-shot averaging (OSA) averages N
//! i.i.d. copies: `√T·x̄ ≈ N(m, Var/N)`, so the bias `m` survives and the speed-up saturates at
//! `C1/(½k_flat m²)`. On a C² variant the bias is `O(1/T)`, so `N·E[x̄²]/E[x₁²] → 1`.
//!
//! The paper's claim (L1) is that growing intervals `τ_r = ⌊a r(r+1)/2⌋`, `a = 2T/(R(R+1))`, with
//! `R = N` communications reach linear speed-up; with `√N` communications (L2, empirical) it fails.
//!
//! # Schedules
//! A schedule is the increasing list of local steps `τ_1 < … < τ_R = T` after which the workers
//! average: growing intervals ([`increasing_schedule`]), constant intervals `τ_r = ⌊rT/R⌋`,
//! `r = 1..R` ([`constant_schedule`]: exactly R communications, the last at T, whether or not R
//! divides T), one-shot averaging (`[T]`) and the early control ([`early_schedule`]).
//!
//! # Random streams
//! Repetitions are simulated in blocks of [`BLOCK`]; worker `w` of block `j` draws its noise from
//! its own stream ([`worker_streams`]), so a worker's trajectory does not depend on which thread or
//! process steps it: the threaded [`simulate`] and the MPI ranks of the `descent-mpi` crate (one
//! process per group of workers) give the same bits.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics;
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::random::fill_normal;
use descent_kernels::Rule;
use descent_kernels::{replica_mean, Gd};
use serde::{Deserialize, Serialize};
use std::f64::consts::{PI, SQRT_2};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// Fitted speed-up exponent γ, lower limit.
    pub const SPEEDUP_EXPONENT_MIN: CriterionKey = CriterionKey::new("speed-up exponent γ ≥");
    /// Fitted speed-up exponent γ, upper limit.
    pub const SPEEDUP_EXPONENT_MAX: CriterionKey = CriterionKey::new("speed-up exponent γ ≤");
    /// Parallel efficiency S(N)/N at the larger worker count.
    pub const EFFICIENCY: CriterionKey = CriterionKey::new("efficiency S(N)/N at the larger N");
    /// One-shot averaging: speed-up at the larger worker count.
    pub const OSA_SPEEDUP: CriterionKey = CriterionKey::new("OSA speed-up at the larger N");
    /// One-shot averaging: fitted speed-up exponent.
    pub const OSA_SPEEDUP_EXPONENT: CriterionKey = CriterionKey::new("OSA speed-up exponent");
    /// Single-worker error times T over its constant C1.
    pub const SINGLE_ERROR_RATIO: CriterionKey = CriterionKey::new("T·err(1) / C1");
    /// √T times the mean last iterate over its predicted constant m.
    pub const SCALED_MEAN_RATIO: CriterionKey = CriterionKey::new("√T·E[x_T] / m");
    /// Variance-reduction ratio ρ, lower limit.
    pub const RHO_MIN: CriterionKey = CriterionKey::new("ρ = N·E[x̄²]/E[x₁²] ≥");
    /// Variance-reduction ratio ρ, upper limit.
    pub const RHO_MAX: CriterionKey = CriterionKey::new("ρ = N·E[x̄²]/E[x₁²] ≤");
    /// Single-worker second moment times T over its prediction.
    pub const SINGLE_SECOND_MOMENT_RATIO: CriterionKey =
        CriterionKey::new("T·E[x₁²] / (α²σ²/(μ²(2αh₀/μ − 1)))");
    /// ρ on the kinked objective over its prediction.
    pub const KINKED_RHO_RATIO: CriterionKey = CriterionKey::new("kinked ρ / (1 + (N−1)m²/E[y²])");
    /// Monte-Carlo mean final loss against the exact recursion, one per schedule (qualified by
    /// its name).
    pub const MONTE_CARLO_LOSS: CriterionKey = CriterionKey::new("Monte-Carlo E[F(x̄_T)]");
}

/// Citation shared by the checks of this paper.
pub const PAPER: &str =
    "A. Spiridonoff, A. Olshevsky, I. Ch. Paschalidis, \"Communication-efficient \
SGD: From Local SGD to One-Shot Averaging\", NeurIPS 2021, arXiv:2106.04759";

/// Repetitions per block: one block is N worker vectors of this many repetitions, updated by one
/// kernel call per worker and step, each worker with its own random stream.
pub const BLOCK: usize = 64;

// =================================================================== objective and simulator

/// The 1-D objective, minimized at 0 with `F* = 0`.
#[derive(Clone, Copy, Debug)]
pub struct Objective {
    /// Curvature for `x ≥ 0`.
    pub k_plus: f64,
    /// Curvature for `x < 0`.
    pub k_minus: f64,
    /// Transition width of the C² variant; 0 gives the kinked function.
    pub width: f64,
}

impl Objective {
    /// `F'(x)`: kinked, or `h₀x + Δk(√(w² + x²) − w)` for `w > 0`.
    #[inline]
    pub fn grad(&self, x: f64) -> f64 {
        if self.width == 0.0 {
            if x < 0.0 {
                self.k_minus * x
            } else {
                self.k_plus * x
            }
        } else {
            let h0 = 0.5 * (self.k_plus + self.k_minus);
            let dk = 0.5 * (self.k_plus - self.k_minus);
            h0 * x + dk * ((self.width * self.width + x * x).sqrt() - self.width)
        }
    }
    /// `F(x) − F*` of the kinked function.
    pub fn kinked_value(&self, x: f64) -> f64 {
        0.5 * if x < 0.0 { self.k_minus } else { self.k_plus } * x * x
    }
    /// Strong convexity μ = min curvature.
    pub fn mu(&self) -> f64 {
        self.k_plus.min(self.k_minus)
    }
    /// Smoothness L = max curvature.
    pub fn l(&self) -> f64 {
        self.k_plus.max(self.k_minus)
    }
}

/// One local-SGD experiment.
#[derive(Clone, Copy, Debug)]
pub struct LocalSgd {
    /// Objective.
    pub obj: Objective,
    /// Noise standard deviation σ.
    pub sigma: f64,
    /// Start x₀.
    pub x0: f64,
    /// Step constant α in `η_t = min(α/(μ(t+1)), 1/L)`.
    pub alpha: f64,
    /// Horizon T.
    pub t: usize,
}

/// Growing intervals: `τ_r = ⌊a r(r+1)/2⌋`, `a = 2T/(R(R+1))`, `r = 1..R`, with `τ_R = T`. Early
/// times that the floor would make 0 or repeat are moved to one after the previous time, so there
/// are exactly R distinct times in `1..=T` (the design's pitfall); panics if `R > T`.
pub fn increasing_schedule(r: usize, t: usize) -> Vec<usize> {
    assert!(r >= 1 && r <= t, "schedule: need 1 <= R <= T");
    let a = 2.0 * t as f64 / (r * (r + 1)) as f64;
    let mut out: Vec<usize> = Vec::with_capacity(r);
    for k in 1..=r {
        let raw = if k == r {
            t
        } else {
            (a * (k * (k + 1)) as f64 / 2.0).floor() as usize
        };
        let prev = out.last().copied().unwrap_or(0);
        out.push(raw.max(prev + 1));
    }
    assert_eq!(out.len(), r);
    assert_eq!(*out.last().expect("R >= 1"), t, "τ_R = T");
    assert!(out.windows(2).all(|w| w[0] < w[1]), "distinct times");
    out
}

/// The wrong schedule of the design: `R` communications evenly spaced in `t ≤ T/2`, plus `T`.
pub fn early_schedule(r: usize, t: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (1..=r).map(|k| (k * t / (2 * r)).max(1)).collect();
    out.dedup();
    out.push(t);
    out
}

/// Constant intervals: `τ_r = ⌊rT/R⌋`, `r = 1..R`. Exactly R communications, strictly increasing
/// because `T/R ≥ 1`, the last at `τ_R = T`; when R does not divide T the intervals are
/// `⌊T/R⌋` or `⌈T/R⌉` (not multiples of `⌊T/R⌋` followed by an extra one at T). Panics unless
/// `1 <= R <= T`.
pub fn constant_schedule(r: usize, t: usize) -> Vec<usize> {
    assert!(r >= 1 && r <= t, "schedule: need 1 <= R <= T");
    (1..=r).map(|k| k * t / r).collect()
}

/// Marks the communication times: `comm[τ]` is true after local step `τ`. Panics unless `times`
/// lie in `1..=T` and end at T (every schedule communicates at T).
pub fn communication_flags(run: &LocalSgd, times: &[usize]) -> Vec<bool> {
    assert_eq!(
        times.last().copied(),
        Some(run.t),
        "every schedule communicates at T"
    );
    let mut comm = vec![false; run.t + 1];
    for &tau in times {
        assert!(tau >= 1 && tau <= run.t, "communication times lie in 1..=T");
        comm[tau] = true;
    }
    comm
}

/// Number of repetitions in block `j` of `reps`.
pub fn block_len(reps: usize, j: usize) -> usize {
    BLOCK.min(reps - j * BLOCK)
}

/// The random streams of workers `workers` in block `j` of `seed`: worker `w` starts at stream `j`
/// of `seed` (`j` jumps of 2^128) advanced by `w` long jumps of 2^192, so no two (block, worker)
/// pairs overlap for any feasible run, and worker 0's stream is the block's stream.
pub fn worker_streams(seed: u64, j: usize, workers: std::ops::Range<usize>) -> Vec<numerics::Rng> {
    let block = u32::try_from(j).expect("fewer than 2^32 blocks");
    let mut rng = numerics::stream(seed, block);
    for _ in 0..workers.start {
        rng.long_jump();
    }
    workers
        .map(|_| {
            let here = rng.clone();
            rng.long_jump();
            here
        })
        .collect()
}

/// One local SGD step `t` (0-based) of one worker on the repetitions `x`: the noise `σξ` drawn
/// from `rng` into `g`, plus `F'(x)`, then the kernels' GD step with `η_t`. The step every
/// simulator (threaded or MPI) takes, so they agree bit for bit.
#[inline]
pub fn local_step(run: &LocalSgd, t: usize, rng: &mut numerics::Rng, x: &mut [f64], g: &mut [f64]) {
    let (mu, l) = (run.obj.mu(), run.obj.l());
    let gd = Gd::new((run.alpha / (mu * (t + 1) as f64)).min(1.0 / l));
    fill_normal(rng, g, 0.0, run.sigma);
    for (gi, &xi) in g.iter_mut().zip(x.iter()) {
        *gi += run.obj.grad(xi);
    }
    gd.step(1, x, g, &mut []).expect("same lengths");
}

/// A local-SGD simulator: `(run, n, reps, times, seed)` to `x̄_T` per repetition, as [`simulate`]
/// computes it (same streams, same averaging order, same bits).
pub type Simulator<'a> = dyn FnMut(&LocalSgd, usize, usize, &[usize], u64) -> Vec<f64> + 'a;

/// Runs `reps` independent repetitions of `n` workers communicating after the local steps in
/// `times` (which must end at T); returns each repetition's final averaged model `x̄_T`. Worker `w`
/// of block `j` draws from [`worker_streams`], and the average is the kernels' `replica_mean` over
/// the workers in order `0..n` on each block, so the result is bit-identical for any thread count
/// (and to the MPI simulation of `descent-mpi`).
pub fn simulate(
    run: &LocalSgd,
    n: usize,
    reps: usize,
    times: &[usize],
    seed: u64,
    ctx: &Ctx,
) -> Vec<f64> {
    let comm = communication_flags(run, times);
    let blocks = reps.div_ceil(BLOCK);
    let parts = ctx.map(blocks, |j| {
        let b = block_len(reps, j);
        let mut rngs = worker_streams(seed, j, 0..n);
        let mut workers = vec![vec![run.x0; b]; n];
        let mut g = vec![0.0; b];
        for t in 0..run.t {
            for (w, rng) in workers.iter_mut().zip(rngs.iter_mut()) {
                local_step(run, t, rng, w, &mut g);
            }
            if comm[t + 1] && n > 1 {
                let mut refs: Vec<&mut [f64]> =
                    workers.iter_mut().map(|v| v.as_mut_slice()).collect();
                replica_mean(&mut refs).expect("same lengths");
            }
        }
        workers.swap_remove(0)
    });
    parts.into_iter().flatten().collect()
}

/// The limit constants of derivation (a) for the kinked function.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `√T·E[x_T] → m`.
    pub m: f64,
    /// `T·E[x_T²] → E[y²]`.
    pub ey2: f64,
    /// `T·E[F(x_T)] → C1`.
    pub c1: f64,
}

/// Derivation (a): `v± = α²σ²/(μ²(2αk±/μ − 1))` and the glued half-Gaussian moments.
pub fn limits(obj: &Objective, alpha: f64, sigma: f64) -> Limits {
    let mu = obj.mu();
    let v = |k: f64| alpha * alpha * sigma * sigma / (mu * mu * (2.0 * alpha * k / mu - 1.0));
    let (vp, vm) = (v(obj.k_plus), v(obj.k_minus));
    let (sp, sm) = (vp.sqrt(), vm.sqrt());
    Limits {
        m: (2.0 / PI).sqrt() * (sp - sm),
        ey2: vp - sp * sm + vm,
        c1: (obj.k_plus * vp * sp + obj.k_minus * vm * sm) / (2.0 * (sp + sm)),
    }
}

fn npdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * PI).sqrt()
}

fn ncdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

/// Predicted OSA speed-up `C1 / (T·E[F(x̄)])` with N workers (derivation (a)).
pub fn osa_speedup(obj: &Objective, alpha: f64, sigma: f64, n: f64) -> f64 {
    let lim = limits(obj, alpha, sigma);
    let (k_flat, k_sharp) = (obj.mu(), obj.l());
    let var = lim.ey2 - lim.m * lim.m;
    let s = (var / n).sqrt();
    let mf = lim.m.abs();
    // Mass on the sharp (wrong) side: E[ȳ²; ȳ on the sharp side].
    let wrong = (mf * mf + s * s) * ncdf(-mf / s) - mf * s * npdf(mf / s);
    lim.c1 / (0.5 * (k_flat * (mf * mf + s * s) + (k_sharp - k_flat) * wrong))
}

/// `T·E[F(ȳ)]` for `ȳ ~ N(c, s²)` on the kinked objective: `½[k_c (c² + s²) + (k_o − k_c)·E[ȳ²; ȳ on
/// the other side]]`, `k_c` the curvature on `c`'s side (derivation (a)'s OSA formula with any
/// mean).
fn gaussian_error(obj: &Objective, c: f64, s: f64) -> f64 {
    let (k_c, k_o) = if c >= 0.0 {
        (obj.k_plus, obj.k_minus)
    } else {
        (obj.k_minus, obj.k_plus)
    };
    let cf = c.abs();
    let other = (cf * cf + s * s) * ncdf(-cf / s) - cf * s * npdf(cf / s);
    0.5 * (k_c * (cf * cf + s * s) + (k_o - k_c) * other)
}

/// Derivation (c): the speed-up `S(N) = C1/(T·E[F(x̄_T)])` of `N` workers communicating at
/// `times` (ending at `T`), at a finite `N`, from a mean-field limit of derivation (a)'s
/// self-similar process.
///
/// In log-time `s = ln t`, each worker's `y = √t·x` is the kinked Ornstein–Uhlenbeck process
/// `dy = −r(y) y ds + b dB` with `r± = αk±/μ − ½`, `b = ασ/μ`. At a communication every worker
/// restarts from the mean `c`. Over the next interval (log-length `ln(τ_{r+1}/τ_r)`) the workers
/// spread, and since `r(y)·y = r̄y + (Δr/2)|y|` (`r̄`, `Δr` the mean and difference of `r±`), the
/// spread itself pushes their mean toward the flat side:
/// `dc/ds = −r̄c − (Δr/2)·E|y|`, `dE[y²]/ds = −2(r̄E[y²] + (Δr/2)E[y|y|]) + b²`,
/// closed with a Gaussian `y ~ N(c, v)` (exact for the first moments of the start, accurate while
/// intervals are short). For large `N` the mean of the workers follows `c` (law of large numbers)
/// with a fluctuation of variance about `E[y²]/N` (as synchronous SGD's), so
/// `T·E[F(x̄_T)] ≈ gaussian_error(c_T, √(E[y²]/N))`. The squared bias `c_T²` left by the last
/// intervals is of order `1/N`, like the variance: the speed-up is linear in the limit (the
/// paper's claim) with a worse constant, and between two finite `N` its exponent is below 1 by an
/// amount this computes. Starts at `t = 1` from `x₀` and ignores the capped early steps. For one
/// long interval (OSA) the Gaussian closure is crude; derivation (a) is exact there.
pub fn speedup_mean_field(
    obj: &Objective,
    alpha: f64,
    sigma: f64,
    x0: f64,
    times: &[usize],
    n: usize,
) -> f64 {
    let mu = obj.mu();
    let (rp, rm) = (
        alpha * obj.k_plus / mu - 0.5,
        alpha * obj.k_minus / mu - 0.5,
    );
    let (rbar, dr, b2) = ((rp + rm) / 2.0, rp - rm, (alpha * sigma / mu).powi(2));
    let lim = limits(obj, alpha, sigma);
    let mut c = x0;
    let mut s_prev = 0.0f64;
    for &tau in times {
        let span = (tau as f64).ln() - s_prev;
        s_prev = (tau as f64).ln();
        let steps = ((MEAN_FIELD_STEPS_PER_UNIT * span).ceil() as usize).max(20);
        let h = span / steps as f64;
        let mut v = 0.0f64;
        for _ in 0..steps {
            let (e_abs, e_yabs) = if v > 0.0 {
                let sd = v.sqrt();
                let z = c / sd;
                let two_phi = 2.0 * ncdf(z) - 1.0;
                (
                    2.0 * sd * npdf(z) + c * two_phi,
                    (c * c + v) * two_phi + 2.0 * c * sd * npdf(z),
                )
            } else {
                (c.abs(), c * c.abs())
            };
            let ey2 = c * c + v;
            let dc = -(rbar * c + dr / 2.0 * e_abs);
            let dey2 = -2.0 * (rbar * ey2 + dr / 2.0 * e_yabs) + b2;
            c += h * dc;
            v = (ey2 + h * dey2 - c * c).max(0.0);
        }
    }
    lim.c1 / gaussian_error(obj, c, (lim.ey2 / n as f64).sqrt())
}

/// Euler steps per unit of log-time in [`speedup_mean_field`] (the result changes by
/// < 1e-3 in the exponent between 200 and 400).
const MEAN_FIELD_STEPS_PER_UNIT: f64 = 400.0;

fn mean_se(x: &[f64]) -> (f64, f64) {
    (
        numerics::mean(x),
        numerics::std_dev(x) / (x.len() as f64).sqrt(),
    )
}

fn axes(title: String, x: &str, y: &str) -> Axes {
    Axes {
        title,
        x_label: x.into(),
        y_label: y.into(),
        log_x: true,
        log_y: true,
    }
}

/// A seed per run set (tag), so run sets are independent and their stream indices stay small.
fn tagged(seed: u64, tag: u64) -> u64 {
    seed.wrapping_add(tag.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

// =================================================================== LS-1: linear speed-up

check_config! {
    /// Configuration of `local-sgd/speedup` (design LS-1).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SpeedupConfig {
        /// Curvature k₊ for x ≥ 0.
        k_plus: f64 = 2.0, Range::real(1e-3, 1e3);
        /// Curvature k₋ for x < 0.
        k_minus: f64 = 1.0, Range::real(1e-3, 1e3);
        /// Noise standard deviation σ.
        sigma: f64 = 8.0, Range::real(1e-6, 1e3);
        /// Start x₀.
        x0: f64 = 2.0, Range::real(-1e3, 1e3);
        /// Step constant α.
        alpha: f64 = 2.0, Range::real(0.5, 100.0);
        /// Horizon T.
        t: usize = 1000, Range::int(10, 1_000_000);
        /// Smaller worker count of the exponent.
        n_small: usize = 16, Range::int(2, 4096);
        /// Larger worker count of the exponent.
        n_large: usize = 64, Range::int(2, 4096);
        /// Repetitions at `n_small`.
        reps_small: usize = 2000, Range::int(16, 10_000_000);
        /// Repetitions at `n_large`.
        reps_large: usize = 1500, Range::int(16, 10_000_000);
        /// Repetitions of the single-worker baseline.
        reps_baseline: usize = 20_000, Range::int(16, 10_000_000);
        /// Seed.
        seed: u64 = 1, Range::int(0, 1 << 53);
        /// Lowest accepted speed-up exponent γ.
        gamma_min: f64 = 0.84, Range::real(-1.0, 2.0);
        /// Highest accepted speed-up exponent γ.
        gamma_max: f64 = 1.10, Range::real(-1.0, 2.0);
        /// Lowest accepted efficiency S(n_large)/n_large.
        min_efficiency: f64 = 0.35, Range::real(0.0, 1.0);
        /// Relative band of the OSA speed-up at `n_large`.
        tol_osa: f64 = 0.08, Range::real(0.0, 1.0);
        /// Highest accepted OSA exponent.
        osa_gamma_max: f64 = 0.5, Range::real(-1.0, 2.0);
        /// Relative band of T·err(1) around C1.
        tol_c1: f64 = 0.04, Range::real(0.0, 1.0);
        /// Relative band of `√T·E[x_T]` around m.
        tol_m: f64 = 0.08, Range::real(0.0, 1.0);
    }
}

impl CheckConfig for SpeedupConfig {
    fn validate(&self) -> Result<(), String> {
        if self.k_plus == self.k_minus {
            return Err("`k_plus` = `k_minus` makes F quadratic: no schedule can fail".into());
        }
        if self.n_small >= self.n_large {
            return Err("`n_small` must be below `n_large`".into());
        }
        if self.n_large > self.t {
            return Err("`n_large` communications need `t` >= `n_large`".into());
        }
        // Control OSA is judged by its speed-up exponent over [n_small, n_large]; the claim that it
        // saturates is only testable where the predicted OSA curve (derivation (a)) is already
        // flatter than `osa_gamma_max` there. With a nearly quadratic F (k_plus ≈ k_minus) its
        // saturation level S(∞) lies far beyond n_large and OSA scales linearly in the range.
        let obj = Speedup::objective(self);
        let osa = |n: usize| osa_speedup(&obj, self.alpha, self.sigma, n as f64);
        let ratio = self.n_large as f64 / self.n_small as f64;
        let gamma = (osa(self.n_large) / osa(self.n_small)).ln() / ratio.ln();
        if gamma.is_nan() || gamma > self.osa_gamma_max {
            return Err(format!(
                "the predicted OSA speed-up exponent over [`n_small`, `n_large`] is {gamma:.3}, \
                 above `osa_gamma_max` = {}: one-shot averaging has not saturated in this range \
                 (F is too close to quadratic), so the schedules cannot be told apart; make \
                 `k_plus`/`k_minus` more asymmetric or raise `n_small`, `n_large`",
                self.osa_gamma_max
            ));
        }
        // The positive case is judged by γ ≥ `gamma_min`; γ of the R = N schedule is below 1 at
        // finite N by the deficit derivation (c) predicts. Require the predicted deficit, doubled
        // (the measured deficit was 1.25–1.8× the predicted one at five configurations), to fit in
        // the room between 1 and `gamma_min` + 3 SE of the measured γ.
        let se = self.gamma_se();
        let room = 1.0 - self.gamma_min - 3.0 * se;
        let gamma = self.mean_field_gamma(Schedule::GrowingN);
        if gamma.is_nan() || 2.0 * (1.0 - gamma) > room {
            return Err(format!(
                "the R = N schedule is not yet in its linear regime over [`n_small`, `n_large`]: \
                 derivation (c) predicts a speed-up exponent {gamma:.3} (the local-step bias \
                 between communications still settling), and twice its deficit from 1 exceeds \
                 the room {room:.3} between 1 and `gamma_min` = {} plus 3 SE; make \
                 `k_plus`/`k_minus` less asymmetric, lower `alpha`, or raise `n_small`",
                self.gamma_min
            ));
        }
        // Controls SQRT and EARLY fail by γ < `gamma_min`: require derivation (c)'s γ for them
        // 3 SE below it (the mean field overestimated both, by 0.03–0.08, at three
        // configurations, so the measured values lie lower still).
        for (id, schedule) in [("SQRT", Schedule::GrowingSqrtN), ("EARLY", Schedule::Early)] {
            let g = self.mean_field_gamma(schedule);
            if g.is_nan() || g > self.gamma_min - 3.0 * se {
                return Err(format!(
                    "control {id} cannot fail: derivation (c) predicts its speed-up exponent at \
                     {g:.3}, not 3 SE ({se:.3} each) below `gamma_min` = {} (F too close to \
                     quadratic for a wrong schedule to lose its speed-up in [`n_small`, \
                     `n_large`]); make `k_plus`/`k_minus` more asymmetric",
                    self.gamma_min
                ));
            }
        }
        Ok(())
    }
}

impl SpeedupConfig {
    /// Derivation (c)'s speed-up exponent of `schedule` over [`n_small`, `n_large`].
    pub fn mean_field_gamma(&self, schedule: Schedule) -> f64 {
        let obj = Speedup::objective(self);
        let s = |n: usize| {
            let times = schedule.times(n, self.t);
            speedup_mean_field(&obj, self.alpha, self.sigma, self.x0, &times, n)
        };
        let ln_ratio = (self.n_large as f64 / self.n_small as f64).ln();
        (s(self.n_large) / s(self.n_small)).ln() / ln_ratio
    }

    /// SE of a measured exponent: each error's relative SE is about `1.2/√reps`, and the baseline
    /// cancels, so `SE(γ) = 1.2·√(1/reps_small + 1/reps_large)/ln(n_large/n_small)` (0.030 at the
    /// defaults).
    pub fn gamma_se(&self) -> f64 {
        let ln_ratio = (self.n_large as f64 / self.n_small as f64).ln();
        1.2 * (1.0 / self.reps_small as f64 + 1.0 / self.reps_large as f64).sqrt() / ln_ratio
    }
}

/// Final models of one schedule at `n_small` and `n_large`.
#[derive(Clone, Debug)]
pub struct Pair {
    /// x̄_T per repetition at `n_small`.
    pub small: Vec<f64>,
    /// x̄_T per repetition at `n_large`.
    pub large: Vec<f64>,
}

/// The schedules of LS-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// R = N growing intervals (the paper's).
    GrowingN,
    /// One-shot averaging (R = 1).
    OneShot,
    /// R = round(√N) growing intervals.
    GrowingSqrtN,
    /// R = N evenly spaced in t ≤ T/2, plus T.
    Early,
}

impl Schedule {
    /// Communication times for `n` workers up to `t`.
    pub fn times(self, n: usize, t: usize) -> Vec<usize> {
        match self {
            Schedule::GrowingN => increasing_schedule(n, t),
            Schedule::OneShot => vec![t],
            Schedule::GrowingSqrtN => {
                increasing_schedule(((n as f64).sqrt().round() as usize).max(1), t)
            }
            Schedule::Early => early_schedule(n, t),
        }
    }
}

/// `local-sgd/speedup` (design LS-1).
pub struct Speedup;

impl Speedup {
    fn objective(cfg: &SpeedupConfig) -> Objective {
        Objective {
            k_plus: cfg.k_plus,
            k_minus: cfg.k_minus,
            width: 0.0,
        }
    }

    fn setup(cfg: &SpeedupConfig) -> LocalSgd {
        LocalSgd {
            obj: Self::objective(cfg),
            sigma: cfg.sigma,
            x0: cfg.x0,
            alpha: cfg.alpha,
            t: cfg.t,
        }
    }

    /// Runs `schedule` at both worker counts with `sim`.
    pub fn run_schedule(
        cfg: &SpeedupConfig,
        schedule: Schedule,
        tag: u64,
        ctx: &Ctx,
        sim: &mut Simulator<'_>,
    ) -> Pair {
        let run = Self::setup(cfg);
        let seed = ctx.seed(cfg.seed);
        Pair {
            small: sim(
                &run,
                cfg.n_small,
                cfg.reps_small,
                &schedule.times(cfg.n_small, cfg.t),
                tagged(seed, 2 * tag + 1),
            ),
            large: sim(
                &run,
                cfg.n_large,
                cfg.reps_large,
                &schedule.times(cfg.n_large, cfg.t),
                tagged(seed, 2 * tag + 2),
            ),
        }
    }

    /// The verdict: the schedule under test against the single-worker baseline, and the OSA runs
    /// against their predicted saturation.
    pub fn score(cfg: &SpeedupConfig, baseline: &[f64], tested: &Pair, osa: &Pair) -> Scored {
        let obj = Self::objective(cfg);
        let lim = limits(&obj, cfg.alpha, cfg.sigma);
        let tf = cfg.t as f64;
        let err =
            |x: &[f64]| numerics::mean(&x.iter().map(|&v| obj.kinked_value(v)).collect::<Vec<_>>());
        let e1 = err(baseline);
        let speedups = |p: &Pair| (e1 / err(&p.small), e1 / err(&p.large));
        let ratio = cfg.n_large as f64 / cfg.n_small as f64;
        let (s_small, s_large) = speedups(tested);
        let gamma = (s_large / s_small).ln() / ratio.ln();
        let eff = s_large / cfg.n_large as f64;
        let (o_small, o_large) = speedups(osa);
        let osa_gamma = (o_large / o_small).ln() / ratio.ln();
        let osa_pred = osa_speedup(&obj, cfg.alpha, cfg.sigma, cfg.n_large as f64);
        let (xm, _) = mean_se(baseline);
        let criteria = vec![
            Criterion::at_least(
                criteria::SPEEDUP_EXPONENT_MIN,
                cfg.gamma_min,
                gamma,
                "linear speed-up is γ = 1 up to a constant still settling at finite T; SE(γ) ≈ 0.03 \
                 (err has relative SE ≈ 1.2/√reps), so 0.84 is ≥ 4 SE below the finite-T value and \
                 ≥ 10 SE above the failing schedules (OSA ≈ 0.2, √N ≈ 0.5)",
            ),
            Criterion::at_most(
                criteria::SPEEDUP_EXPONENT_MAX,
                cfg.gamma_max,
                gamma,
                "speed-up cannot exceed synchronous SGD's S = N (γ = 1) beyond sampling error: 1.10 is \
                 ≥ 3 SE above 1",
            ),
            Criterion::at_least(
                criteria::EFFICIENCY,
                cfg.min_efficiency,
                eff,
                "deliberately low floor: the O(1/(NT)) constant depends on κ and α, so the exponent is \
                 the gate; OSA's predicted saturation S(∞)/N is far below it",
            ),
            Criterion::new(
                criteria::OSA_SPEEDUP,
                osa_pred,
                o_large,
                cfg.tol_osa * osa_pred,
                "relative SE of S_OSA ≈ 2% (err at the larger N plus the baseline), so ±8% is 4 SE",
            ),
            Criterion::at_most(
                criteria::OSA_SPEEDUP_EXPONENT,
                cfg.osa_gamma_max,
                osa_gamma,
                "OSA saturates (γ → 0); the finite-N prediction gives ≈ 0.24 for N = 16 → 64",
            ),
            Criterion::new(
                criteria::SINGLE_ERROR_RATIO,
                1.0,
                tf * e1 / lim.c1,
                cfg.tol_c1,
                "relative SE ≈ 1.2/√20000 ≈ 0.9% plus an O(1/√T) pre-asymptotic term ≈ 1%",
            ),
            Criterion::new(
                criteria::SCALED_MEAN_RATIO,
                1.0,
                tf.sqrt() * xm / lim.m,
                cfg.tol_m,
                "SE of the mean ≈ 1.6% of m with 20000 repetitions plus the O(1/√T) transient",
            ),
        ];
        let ns = vec![1.0, cfg.n_small as f64, cfg.n_large as f64];
        let series = vec![
            Series::line("S = N", ns.clone(), ns.clone(), Role::Reference),
            Series::points(
                "tested schedule",
                ns.clone(),
                vec![1.0, s_small, s_large],
                Role::Measured,
            ),
            Series::points(
                "OSA",
                ns.clone(),
                vec![1.0, o_small, o_large],
                Role::Measured,
            ),
            Series::line(
                "OSA prediction",
                ns.clone(),
                ns.iter()
                    .map(|&n| osa_speedup(&obj, cfg.alpha, cfg.sigma, n))
                    .collect(),
                Role::Prediction,
            ),
        ];
        Scored {
            criteria,
            series,
            notes: vec![
                format!(
                    "tested: S({}) = {s_small:.3}, S({}) = {s_large:.3}, γ = {gamma:.3}, E = {eff:.3}",
                    cfg.n_small, cfg.n_large
                ),
                format!(
                    "OSA: S({}) = {o_small:.3} (pred {:.3}), S({}) = {o_large:.3} (pred {osa_pred:.3}), S(∞) pred {:.3}",
                    cfg.n_small,
                    osa_speedup(&obj, cfg.alpha, cfg.sigma, cfg.n_small as f64),
                    cfg.n_large,
                    lim.c1 / (0.5 * obj.mu() * lim.m * lim.m)
                ),
                format!(
                    "baseline: T·err(1) = {:.3} (C1 = {:.3}), √T·E[x_T] = {:.3} (m = {:.3})",
                    tf * e1,
                    lim.c1,
                    tf.sqrt() * xm,
                    lim.m
                ),
            ],
        }
    }
}

const L_OSA: Control = Control {
    id: "OSA",
    description: "one-shot averaging (R = 1) on the non-C² function: the bias survives averaging, speed-up saturates",
};
const L_SQRT: Control = Control {
    id: "SQRT",
    description: "R = √N growing intervals: too few communications for linear speed-up",
};
const L_EARLY: Control = Control {
    id: "EARLY",
    description:
        "R = N communications evenly spaced in t ≤ T/2 plus one at T: like OSA over the second half",
};

impl Check for Speedup {
    type Config = SpeedupConfig;
    const ID: CheckId = CheckId {
        name: "local-sgd/speedup",
        paper: PAPER,
        claim: "Local SGD with R = N growing communication intervals reaches linear speed-up in N (exponent ≈ 1) on a strongly convex, smooth, non-C² function, where one-shot averaging saturates at the predicted C1/(½k_flat m²) and R = √N fails.",
    };
    const CONTROLS: &'static [Control] = &[L_OSA, L_SQRT, L_EARLY];

    fn run(cfg: &SpeedupConfig, ctx: &Ctx) -> Vec<Record> {
        Self::run_with(cfg, ctx, &mut |run, n, reps, times, seed| {
            simulate(run, n, reps, times, seed, ctx)
        })
    }
}

impl Speedup {
    /// The check with the worker simulation done by `sim` (the threaded [`simulate`] in
    /// [`Check::run`]; `descent-mpi` passes one MPI process per group of workers). `sim` is called
    /// in a fixed order: the baseline, then OSA, growing R = N, R = √N, early, each at `n_small`
    /// then `n_large`.
    pub fn run_with(cfg: &SpeedupConfig, ctx: &Ctx, sim: &mut Simulator<'_>) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| {
            axes(
                format!("{} ({case}): speed-up S(N)", id.name),
                "workers N",
                "S(N)",
            )
        };
        let run = Self::setup(cfg);
        let ((baseline, osa), shared) = timed(|| {
            let b = sim(
                &run,
                1,
                cfg.reps_baseline,
                &[cfg.t],
                tagged(ctx.seed(cfg.seed), 0),
            );
            (b, Self::run_schedule(cfg, Schedule::OneShot, 1, ctx, sim))
        });
        let (r, s) = timed(|| {
            let p = Self::run_schedule(cfg, Schedule::GrowingN, 2, ctx, sim);
            Self::score(cfg, &baseline, &p, &osa)
        });
        let mut out = vec![r.into_record(
            id,
            Case::positive("R = N communications at growing intervals τ_r = ⌊a r(r+1)/2⌋"),
            s + shared,
            ax("positive"),
        )];
        let (r, s) = timed(|| Self::score(cfg, &baseline, &osa, &osa));
        out.push(r.into_record(id, Case::control(&L_OSA), s + shared, ax("OSA")));
        for (c, sched, tag) in [
            (&L_SQRT, Schedule::GrowingSqrtN, 3),
            (&L_EARLY, Schedule::Early, 4),
        ] {
            let (r, s) = timed(|| {
                let p = Self::run_schedule(cfg, sched, tag, ctx, sim);
                Self::score(cfg, &baseline, &p, &osa)
            });
            out.push(r.into_record(id, Case::control(c), s + shared, ax(c.id)));
        }
        out
    }
}

// =================================================================== LS-2: OSA and smoothness

check_config! {
    /// Configuration of `local-sgd/one-shot-smoothness` (design LS-2).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OneShotConfig {
        /// Largest curvature k₊ (x > 0 side).
        k_plus: f64 = 2.0, Range::real(1e-3, 1e3);
        /// Smallest curvature k₋ (x < 0 side).
        k_minus: f64 = 1.0, Range::real(1e-3, 1e3);
        /// Transition width w of the C² variant.
        width: f64 = 1.0, Range::real(1e-6, 1e3);
        /// Noise standard deviation σ.
        sigma: f64 = 8.0, Range::real(1e-6, 1e3);
        /// Start x₀.
        x0: f64 = 2.0, Range::real(-1e3, 1e3);
        /// Step constant α.
        alpha: f64 = 2.0, Range::real(0.5, 100.0);
        /// Horizon T.
        t: usize = 2000, Range::int(10, 1_000_000);
        /// Workers N of the one-shot average.
        n: usize = 64, Range::int(2, 4096);
        /// Single-worker repetitions.
        reps_single: usize = 20_000, Range::int(16, 10_000_000);
        /// Repetitions with N workers.
        reps_n: usize = 1000, Range::int(16, 10_000_000);
        /// Seed.
        seed: u64 = 3, Range::int(0, 1 << 53);
        /// Lowest accepted ρ.
        rho_min: f64 = 0.85, Range::real(0.0, 10.0);
        /// Highest accepted ρ.
        rho_max: f64 = 1.35, Range::real(0.0, 100.0);
        /// Relative band of `T·E[x₁²]` around the C² prediction.
        tol_second_moment: f64 = 0.05, Range::real(0.0, 1.0);
        /// Relative band of the kinked function's ρ around its prediction.
        tol_kinked_rho: f64 = 0.08, Range::real(0.0, 1.0);
    }
}

impl CheckConfig for OneShotConfig {
    fn validate(&self) -> Result<(), String> {
        if self.k_plus <= self.k_minus {
            return Err("`k_plus` must exceed `k_minus`".into());
        }
        if self.rho_min >= self.rho_max {
            return Err("`rho_min` must be below `rho_max`".into());
        }
        let a = self.alpha / self.k_minus;
        let h0 = 0.5 * (self.k_plus + self.k_minus);
        if a * h0 <= 1.0 {
            return Err(format!(
                "`alpha` = {} gives αh₀/μ = {:.3} <= 1: the C² variant's bias then decays more \
                 slowly than 1/T, so ρ − 1 does not vanish like N/T; raise `alpha` above μ/h₀ = {:.3}",
                self.alpha,
                a * h0,
                self.k_minus / h0
            ));
        }
        let b = self.budget();
        if b.second_moment.is_nan() || b.second_moment > self.tol_second_moment {
            return Err(format!(
                "T·E[x₁²] of the C² variant cannot be resolved within `tol_second_moment` = {}: \
                 its predicted distance from the limit is {:.4} (the bias at width w) + {:.4} \
                 (discrete steps) + {:.4} (the start not yet forgotten) + {:.4} (3 SE) = {:.4}; \
                 raise `t`, `width` or `reps_single`",
                self.tol_second_moment,
                b.smooth_second_moment_shift,
                b.discrete_shift,
                2.0 * b.start + b.start * b.start,
                3.0 * b.second_moment_se,
                b.second_moment
            ));
        }
        if b.rho_high.is_nan() || b.rho_high > self.rho_max || b.rho_low < self.rho_min {
            return Err(format!(
                "the C² variant is not yet smooth at the iterates' scale (or ρ is not resolved): \
                 its bias and start predict ρ in [{:.3}, {:.3}] and with 3 SE = {:.3} the band \
                 [{:.3}, {:.3}], not inside [`rho_min`, `rho_max`] = [{}, {}]; raise `width`, \
                 `t` or `reps_n`, or lower `sigma` or `n`",
                b.rho_low + 3.0 * b.rho_se,
                b.rho_high - 3.0 * b.rho_se,
                3.0 * b.rho_se,
                b.rho_low,
                b.rho_high,
                self.rho_min,
                self.rho_max
            ));
        }
        if b.kinked.is_nan() || b.kinked > self.tol_kinked_rho {
            let room = (self.tol_kinked_rho - b.kinked_start - b.kinked_discrete) / 3.0;
            let need = room * room - b.kinked_var_single;
            let advice = if room > 0.0 && need > 0.0 {
                format!(
                    "raise `reps_n` to at least {:.0}",
                    (b.kinked_var_n_unit / need).ceil()
                )
            } else {
                "raise `t` or `alpha` (the start and the discrete steps alone exceed the band), \
                 or `reps_single`"
                    .into()
            };
            return Err(format!(
                "the kinked function's ρ cannot be resolved within `tol_kinked_rho` = {}: its \
                 predicted relative distance from derivation (a) is {:.4} (the start not yet \
                 forgotten) + {:.4} (discrete steps) + {:.4} (3 SE at `reps_n` = {}) = {:.4}; {advice}",
                self.tol_kinked_rho,
                b.kinked_start,
                b.kinked_discrete,
                b.kinked - b.kinked_start - b.kinked_discrete,
                self.reps_n,
                b.kinked
            ));
        }
        let kinked_low = b.kinked_rho * (1.0 - b.kinked);
        if kinked_low.is_nan() || kinked_low <= self.rho_max {
            return Err(format!(
                "the KINK control cannot fail: derivation (a) predicts the kinked function's ρ = \
                 {:.3}, at least {:.3} with its band, not above `rho_max` = {}; raise the \
                 asymmetry `k_plus`/`k_minus` or `n`, or lower `rho_max`",
                b.kinked_rho, kinked_low, self.rho_max
            ));
        }
        Ok(())
    }
}

/// What validation predicts for `local-sgd/one-shot-smoothness` at one configuration: each
/// criterion's distance from its limit (finite-T terms plus 3 standard errors), derived in
/// `docs/checks/local-sgd-one-shot.md` ("Validation").
#[derive(Clone, Copy, Debug)]
pub struct OneShotBudget {
    /// `τ`: how much of the start is left at T, in units of the smallest stationary spread `√v₊`
    /// of `√T·x_T` (synchronous-coupling bound).
    pub start: f64,
    /// `δ₂`: the C² variant's relative shift of `T·E[x₁²]` from its curvature-h₀ limit, second
    /// order in the width.
    pub smooth_second_moment_shift: f64,
    /// `(1 + αh₀/μ)/(2T)`: the discrete steps' relative shift of `T·E[x²]` at curvature h₀.
    pub discrete_shift: f64,
    /// Relative SE of `T·E[x₁²]`: `√(2/reps_single)`.
    pub second_moment_se: f64,
    /// Predicted largest relative distance of `T·E[x₁²]` from its limit, 3 SE included.
    pub second_moment: f64,
    /// Relative SE of ρ for the C² variant: `√(2/reps_n + 2/reps_single)`.
    pub rho_se: f64,
    /// Lowest ρ of the C² variant the prediction allows, 3 SE included.
    pub rho_low: f64,
    /// Highest ρ of the C² variant the prediction allows, 3 SE included.
    pub rho_high: f64,
    /// Largest relative change of the kinked ρ a start of size τ can cause.
    pub kinked_start: f64,
    /// `(1 + αk₊/μ)/(2T)`: the discrete steps' relative shift on the steep side.
    pub kinked_discrete: f64,
    /// Variance of the kinked ρ's relative error from the N-worker runs, times `reps_n`.
    pub kinked_var_n_unit: f64,
    /// Variance of the kinked ρ's relative error from the single-worker runs.
    pub kinked_var_single: f64,
    /// Predicted largest relative distance of the kinked ρ from derivation (a), 3 SE included.
    pub kinked: f64,
    /// Derivation (a)'s kinked ρ: `1 + (N − 1)m²/E[y²]`.
    pub kinked_rho: f64,
}

impl OneShotConfig {
    /// `T·E[x_T²] → α²σ²/(μ²(2αh₀/μ − 1))` for the C² variant: the OU variance at its curvature
    /// `h₀ = (k₊ + k₋)/2`, with `μ = min(k₊, k₋)` in the step.
    pub fn c2_second_moment_limit(&self) -> f64 {
        let mu = self.k_plus.min(self.k_minus);
        let h0 = 0.5 * (self.k_plus + self.k_minus);
        self.alpha * self.alpha * self.sigma * self.sigma
            / (mu * mu * (2.0 * self.alpha * h0 / mu - 1.0))
    }

    /// `P_T = Π_{t<T} (1 − η_t k₋)`: every step maps `x ↦ x − η_t(F'(x) + noise)` monotonically
    /// with slope in `[1 − η_t k₊, 1 − η_t k₋] ⊂ [0, 1)` (F'' lies in `[k₋, k₊]` and the step cap
    /// gives `η_t k₊ <= 1`), so two runs fed the same noise end at most `P_T` times their initial
    /// distance apart.
    pub fn contraction(&self) -> f64 {
        let (mu, l) = (self.k_minus, self.k_plus);
        let log: f64 = (0..self.t)
            .map(|t| {
                let eta = (self.alpha / (mu * (t + 1) as f64)).min(1.0 / l);
                (-eta * self.k_minus).ln_1p()
            })
            .sum();
        log.exp()
    }

    /// The error budget validation checks (see [`OneShotBudget`]).
    pub fn budget(&self) -> OneShotBudget {
        let (kp, km, n, tf) = (self.k_plus, self.k_minus, self.n as f64, self.t as f64);
        let a = self.alpha / km;
        let h0 = 0.5 * (kp + km);
        let dk = 0.5 * (kp - km);
        let b2 = a * a * self.sigma * self.sigma;
        // The C² variant in log time: r = αh₀/μ − ½ is the relaxation rate of √t·x, v its limit
        // variance, β = bias²/E[x²] from its third derivative Δk/w at 0.
        let r = a * h0 - 0.5;
        let v = self.c2_second_moment_limit();
        let beta = (dk / (2.0 * self.width * h0)).powi(2) * v / tf;
        let gain = a * h0 / (a * h0 - 1.0);
        let smooth_second_moment_shift = beta * 2.0 * a * a * h0 * h0 * (9.0 + 6.0 * r / (r - 0.5))
            / ((3.0 * r - 0.5) * (2.0 * r - 1.0));
        let discrete_shift = (1.0 + a * h0) / (2.0 * tf);
        // The kinked function's half-Gaussian limits (derivation (a)).
        let obj = Objective {
            k_plus: kp,
            k_minus: km,
            width: 0.0,
        };
        let lim = limits(&obj, self.alpha, self.sigma);
        let (vp, vm) = (b2 / (2.0 * a * kp - 1.0), b2 / (2.0 * a * km - 1.0));
        let (sp, sm) = (vp.sqrt(), vm.sqrt());
        // The start x₀ against a draw from the limit law at the first step (spread √v₋ at most),
        // contracted by P_T and seen at the scale √T.
        let shift = tf.sqrt() * self.contraction() * (self.x0.abs() + sm);
        let start = shift / sp;
        let second_moment_se = (2.0 / self.reps_single as f64).sqrt();
        let second_moment = smooth_second_moment_shift
            + discrete_shift
            + 2.0 * start
            + start * start
            + 3.0 * second_moment_se;
        let rho_se = (2.0 / self.reps_n as f64 + 2.0 / self.reps_single as f64).sqrt();
        let bias = beta.sqrt() * gain;
        let rho_high = 1.0 + (n - 1.0) * (bias + start).powi(2) + 3.0 * rho_se;
        let rho_low = 1.0 + (n - 1.0) * (bias - start).max(0.0).powi(2) - 3.0 * rho_se;
        // The kinked ρ = 1 + (N − 1)m²/E[y²] with m and √E[y²] each moved by at most the shift.
        let rho_k = 1.0 + (n - 1.0) * lim.m * lim.m / lim.ey2;
        let mut kinked_start: f64 = 0.0;
        for m in [lim.m.abs() - shift, lim.m.abs() + shift] {
            for q in [lim.ey2.sqrt() - shift, lim.ey2.sqrt() + shift] {
                let moved = if q > 0.0 {
                    (1.0 + (n - 1.0) * m.max(0.0).powi(2) / (q * q)) / rho_k - 1.0
                } else {
                    f64::INFINITY
                };
                kinked_start = kinked_start.max(moved.abs());
            }
        }
        let kinked_discrete = (1.0 + a * kp) / (2.0 * tf);
        // SE of the kinked ρ: √T·x̄ ≈ N(m, s²) with s² = (E[y²] − m²)/N gives N·E[x̄²]'s relative
        // variance (4m²s² + 2s⁴)/(m² + s²)²; the single runs' E[y⁴] is the glued half-Gaussians'.
        let s2 = (lim.ey2 - lim.m * lim.m) / n;
        let mm = lim.m * lim.m;
        let kinked_var_n_unit = (4.0 * mm * s2 + 2.0 * s2 * s2) / (mm + s2).powi(2);
        let ey4 = (sp * 3.0 * vp * vp + sm * 3.0 * vm * vm) / (sp + sm);
        let kinked_var_single =
            (ey4 - lim.ey2 * lim.ey2) / (lim.ey2 * lim.ey2) / self.reps_single as f64;
        let kinked_se = (kinked_var_n_unit / self.reps_n as f64 + kinked_var_single).sqrt();
        OneShotBudget {
            start,
            smooth_second_moment_shift,
            discrete_shift,
            second_moment_se,
            second_moment,
            rho_se,
            rho_low,
            rho_high,
            kinked_start,
            kinked_discrete,
            kinked_var_n_unit,
            kinked_var_single,
            kinked: kinked_start + kinked_discrete + 3.0 * kinked_se,
            kinked_rho: rho_k,
        }
    }
}

/// Final iterates of one objective: single workers and N-worker one-shot averages.
#[derive(Clone, Debug)]
pub struct OneShotRuns {
    /// x_{1,T} per single-worker repetition.
    pub single: Vec<f64>,
    /// x̄_T per N-worker repetition.
    pub avg: Vec<f64>,
}

impl OneShotRuns {
    /// `ρ = N·E[x̄²]/E[x₁²]`.
    pub fn rho(&self, n: usize) -> f64 {
        let m2 = |x: &[f64]| numerics::mean(&x.iter().map(|v| v * v).collect::<Vec<_>>());
        n as f64 * m2(&self.avg) / m2(&self.single)
    }
}

/// `local-sgd/one-shot-smoothness` (design LS-2).
pub struct OneShotSmoothness;

impl OneShotSmoothness {
    /// Runs OSA on the objective with transition width `width` (0: kinked).
    pub fn runs(cfg: &OneShotConfig, width: f64, tag: u64, ctx: &Ctx) -> OneShotRuns {
        let run = LocalSgd {
            obj: Objective {
                k_plus: cfg.k_plus,
                k_minus: cfg.k_minus,
                width,
            },
            sigma: cfg.sigma,
            x0: cfg.x0,
            alpha: cfg.alpha,
            t: cfg.t,
        };
        let seed = ctx.seed(cfg.seed);
        OneShotRuns {
            single: simulate(
                &run,
                1,
                cfg.reps_single,
                &[cfg.t],
                tagged(seed, 2 * tag),
                ctx,
            ),
            avg: simulate(
                &run,
                cfg.n,
                cfg.reps_n,
                &[cfg.t],
                tagged(seed, 2 * tag + 1),
                ctx,
            ),
        }
    }

    /// The verdict: the objective under test must show OSA's full speed-up (ρ ≈ 1) and the C²
    /// second moment; the kinked runs must show the predicted saturation ρ.
    pub fn score(cfg: &OneShotConfig, tested: &OneShotRuns, kinked: &OneShotRuns) -> Scored {
        let kobj = Objective {
            k_plus: cfg.k_plus,
            k_minus: cfg.k_minus,
            width: 0.0,
        };
        let m2_pred = cfg.c2_second_moment_limit();
        let lim = limits(&kobj, cfg.alpha, cfg.sigma);
        let rho_kinked_pred = 1.0 + (cfg.n as f64 - 1.0) * lim.m * lim.m / lim.ey2;
        let rho = tested.rho(cfg.n);
        let rho_k = kinked.rho(cfg.n);
        let tf = cfg.t as f64;
        let m2 = tf * numerics::mean(&tested.single.iter().map(|v| v * v).collect::<Vec<_>>());
        let criteria = vec![
            Criterion::at_least(
                criteria::RHO_MIN,
                cfg.rho_min,
                rho,
                "ρ → 1 on a C² objective; relative SE √(2/reps_n + 2/reps_single) ≈ 4.6% at 1000/20000 repetitions, so 0.85 is ≥ 3 SE below 1; validation requires the predicted ρ minus 3 SE above it",
            ),
            Criterion::at_most(
                criteria::RHO_MAX,
                cfg.rho_max,
                rho,
                "ρ ≈ 1 + (N−1)β(αh₀/(αh₀−μ))² from the C² bias (1.10 at the defaults) plus sampling error; \
                 validation requires that plus 3 SE below 1.35; the kinked function's saturation gives \
                 ρ ≈ 1 + (N−1)m²/E[y²], far above",
            ),
            Criterion::new(
                criteria::SINGLE_SECOND_MOMENT_RATIO,
                1.0,
                m2 / m2_pred,
                cfg.tol_second_moment,
                "relative SE √(2/reps_single) = 1% at 20000 repetitions; validation requires the predicted finite-T shifts (C² bias, discrete steps, start) plus 3 SE inside the band",
            ),
            Criterion::new(
                criteria::KINKED_RHO_RATIO,
                1.0,
                rho_k / rho_kinked_pred,
                cfg.tol_kinked_rho,
                "relative SE of the kinked ρ ≈ 2.4% at the defaults (its x̄ is dominated by the bias); validation requires 3 SE plus the finite-T terms inside ±8%",
            ),
        ];
        let series = vec![
            Series::points("ρ, tested", vec![cfg.n as f64], vec![rho], Role::Measured),
            Series::points("ρ, kinked", vec![cfg.n as f64], vec![rho_k], Role::Measured),
            Series::line(
                "ρ = 1",
                vec![1.0, cfg.n as f64],
                vec![1.0, 1.0],
                Role::Prediction,
            ),
            Series::line(
                "kinked prediction",
                vec![1.0, cfg.n as f64],
                vec![1.0, rho_kinked_pred],
                Role::Prediction,
            ),
        ];
        Scored {
            criteria,
            series,
            notes: vec![format!(
                "ρ = {rho:.4}, T·E[x₁²] = {m2:.3} (pred {m2_pred:.3}); kinked ρ = {rho_k:.4} (pred {rho_kinked_pred:.4})"
            )],
        }
    }
}

const O_KINK: Control = Control {
    id: "KINK",
    description: "the kinked function (w = 0), not twice differentiable at its minimum: OSA keeps the bias, ρ saturates far above 1",
};

impl Check for OneShotSmoothness {
    type Config = OneShotConfig;
    const ID: CheckId = CheckId {
        name: "local-sgd/one-shot-smoothness",
        paper: PAPER,
        claim: "One-shot averaging of N workers reaches the full N-fold reduction (ρ = N·E[x̄²]/E[x₁²] → 1) when F is twice differentiable at its minimum, and saturates at ρ = 1 + (N−1)m²/E[y²] when it is not.",
    };
    const CONTROLS: &'static [Control] = &[O_KINK];

    fn run(cfg: &OneShotConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| axes(format!("{} ({case}): ρ(N)", id.name), "workers N", "ρ");
        let (kinked, sk) = timed(|| Self::runs(cfg, 0.0, 1, ctx));
        let (r, s) = timed(|| {
            let smooth = Self::runs(cfg, cfg.width, 0, ctx);
            Self::score(cfg, &smooth, &kinked)
        });
        let mut out = vec![r.into_record(
            id,
            Case::positive("C² variant F'(x) = h₀x + Δk(√(w² + x²) − w), one-shot averaging"),
            s + sk,
            ax("positive"),
        )];
        let (r, s) = timed(|| Self::score(cfg, &kinked, &kinked));
        out.push(r.into_record(id, Case::control(&O_KINK), s + sk, ax("KINK")));
        out
    }
}

// =================================================================== LS-3: exact moment recursion

check_config! {
    /// Configuration of `local-sgd/quadratic-exact` (design LS-3).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct QuadraticConfig {
        /// Dimension d (curvature of coordinate i is i).
        d: usize = 3, Range::int(1, 64);
        /// Multiplicative noise standard deviation c.
        c: f64 = 1.0, Range::real(0.0, 10.0);
        /// Additive noise standard deviation σ.
        sigma: f64 = 0.5, Range::real(0.0, 1e3);
        /// Start x₀ (every coordinate).
        x0: f64 = 1.0, Range::real(-1e3, 1e3);
        /// Step constant α in `η_t = α/(μ(t + β))`.
        alpha: f64 = 3.0, Range::real(0.1, 100.0);
        /// Step offset β.
        beta: f64 = 1.0, Range::real(0.0, 1e6);
        /// Workers N.
        n: usize = 20, Range::int(2, 4096);
        /// Horizon T.
        t: usize = 1000, Range::int(10, 1_000_000);
        /// Monte-Carlo repetitions per schedule.
        reps: usize = 400, Range::int(16, 10_000_000);
        /// Seed.
        seed: u64 = 4, Range::int(0, 1 << 53);
        /// Band of each Monte-Carlo mean around the exact value, in standard errors.
        sigmas: f64 = 4.0, Range::real(0.0, 100.0);
        /// Largest |S/N − 1| over the schedules (exact recursion) that counts as the asymptotic
        /// regime S = N; validation rejects configurations beyond it.
        max_speedup_gap: f64 = 0.01, Range::real(0.0, 10.0);
    }
}

impl CheckConfig for QuadraticConfig {
    fn validate(&self) -> Result<(), String> {
        if self.n > self.t {
            return Err("`n` communications need `t` >= `n`".into());
        }
        if self.beta == 0.0 {
            return Err("`beta` = 0 makes η₀ infinite".into());
        }
        let (gap, worst) = self.exact_speedup_gap();
        if gap.is_nan() || gap > self.max_speedup_gap {
            return Err(format!(
                "the claim S = N is asymptotic in T, and with these keys `t` = {} is not yet in its \
                 regime: the exact recursion gives max |S/N − 1| = {gap:.4} (schedule {worst}) \
                 > `max_speedup_gap` = {} (a large x₀² transient, or early steps with \
                 η_t·h·(1 + c²) ≥ 2 that amplify a single worker's multiplicative noise more \
                 than an average's); raise `t` or `beta`, or lower `x0`, `c` or `alpha`",
                self.t, self.max_speedup_gap
            ));
        }
        Ok(())
    }
}

impl QuadraticConfig {
    /// `max |S/N − 1|` over [`QUAD_SCHEDULES`] from the exact recursion (b), `S` = the single
    /// worker's `E[F(x_T)]` over the schedule's, and the schedule where it is largest (NaN when
    /// the recursion overflows).
    pub fn exact_speedup_gap(&self) -> (f64, &'static str) {
        let single = quad_exact(self, 1, &[self.t], false);
        let mut worst = (0.0f64, QUAD_SCHEDULES[0]);
        for (k, name) in QUAD_SCHEDULES.iter().enumerate() {
            let e = quad_exact(self, self.n, &quad_times(self, k), false);
            let gap = (single / e / self.n as f64 - 1.0).abs();
            if gap.is_nan() || gap > worst.0 {
                worst = (gap, name);
            }
        }
        worst
    }
}

/// The LS-3 schedules, in display order ([`quad_times`] gives their communication times).
pub const QUAD_SCHEDULES: [&str; 4] = ["synchronous", "R = N growing", "R = N constant", "OSA"];

/// The communication times of schedule `k` of [`QUAD_SCHEDULES`]: every step, R = N growing
/// intervals, R = N constant intervals `τ_r = ⌊rT/N⌋`, one shot.
pub fn quad_times(cfg: &QuadraticConfig, k: usize) -> Vec<usize> {
    match k {
        0 => (1..=cfg.t).collect(),
        1 => increasing_schedule(cfg.n, cfg.t),
        2 => constant_schedule(cfg.n, cfg.t),
        _ => vec![cfg.t],
    }
}

fn quad_eta(cfg: &QuadraticConfig, t: usize) -> f64 {
    // μ = 1: the smallest curvature is coordinate 1's.
    cfg.alpha / (t as f64 + cfg.beta)
}

/// Derivation (b): the exact `E[F(x̄_T)]` for `n` workers communicating at `times`. With
/// `buggy`, the cross-worker moment q is replaced by the square of the unconditional mean (the
/// design's "tempting bug").
pub fn quad_exact(cfg: &QuadraticConfig, n: usize, times: &[usize], buggy: bool) -> f64 {
    let mut comm = vec![false; cfg.t + 1];
    times.iter().for_each(|&t| comm[t] = true);
    let nf = n as f64;
    (1..=cfg.d)
        .map(|i| {
            let h = i as f64;
            let (mut s, mut q, mut m) = (cfg.x0 * cfg.x0, cfg.x0 * cfg.x0, cfg.x0);
            for t in 0..cfg.t {
                let eta = quad_eta(cfg, t);
                let a = (1.0 - eta * h).powi(2);
                s = (a + eta * eta * h * h * cfg.c * cfg.c) * s + eta * eta * cfg.sigma * cfg.sigma;
                q *= a;
                m *= 1.0 - eta * h;
                if comm[t + 1] {
                    let cross = if buggy { m * m } else { q };
                    s = s / nf + (1.0 - 1.0 / nf) * cross;
                    q = s;
                }
            }
            0.5 * h * s
        })
        .sum()
}

/// Monte Carlo of E1: per repetition, `F(x̄_T) = Σ (i/2) x̄_i²`. Block `j` of repetitions draws
/// from stream `j` of `seed`, so the result does not depend on the thread count.
pub fn quad_monte_carlo(cfg: &QuadraticConfig, times: &[usize], seed: u64, ctx: &Ctx) -> Vec<f64> {
    let mut comm = vec![false; cfg.t + 1];
    times.iter().for_each(|&t| comm[t] = true);
    assert!(comm[cfg.t], "every schedule communicates at T");
    let d = cfg.d;
    let parts = ctx.map(cfg.reps.div_ceil(BLOCK), |j| {
        let b = BLOCK.min(cfg.reps - j * BLOCK);
        let mut rng = numerics::stream(seed, j as u32);
        let mut workers = vec![vec![cfg.x0; b * d]; cfg.n];
        let (mut z1, mut g) = (vec![0.0; b * d], vec![0.0; b * d]);
        for t in 0..cfg.t {
            let gd = Gd::new(quad_eta(cfg, t));
            for w in workers.iter_mut() {
                fill_normal(&mut rng, &mut z1, 0.0, cfg.c);
                fill_normal(&mut rng, &mut g, 0.0, cfg.sigma);
                for (k, (gk, &xk)) in g.iter_mut().zip(w.iter()).enumerate() {
                    let h = (k % d + 1) as f64;
                    *gk += h * xk * (1.0 + z1[k]);
                }
                gd.step(1, w, &g, &mut []).expect("same lengths");
            }
            if comm[t + 1] {
                let mut refs: Vec<&mut [f64]> =
                    workers.iter_mut().map(|v| v.as_mut_slice()).collect();
                replica_mean(&mut refs).expect("same lengths");
            }
        }
        workers[0]
            .chunks(d)
            .map(|x| {
                x.iter()
                    .enumerate()
                    .map(|(i, v)| 0.5 * (i + 1) as f64 * v * v)
                    .sum::<f64>()
            })
            .collect::<Vec<f64>>()
    });
    parts.into_iter().flatten().collect()
}

/// `local-sgd/quadratic-exact` (design LS-3).
pub struct QuadraticExact;

impl QuadraticExact {
    /// The verdict: every schedule's Monte-Carlo error against the recursion's value (exact, or
    /// with the bug); the recursion's speed-ups are notes (validation already required them to be
    /// within `max_speedup_gap` of linear).
    pub fn score(cfg: &QuadraticConfig, mc: &[Vec<f64>], buggy: bool) -> Scored {
        let single = quad_exact(cfg, 1, &[cfg.t], buggy);
        let mut criteria = Vec::new();
        let mut notes = Vec::new();
        let (mut pred, mut meas) = (Vec::new(), Vec::new());
        for (k, name) in QUAD_SCHEDULES.iter().enumerate() {
            let exact = quad_exact(cfg, cfg.n, &quad_times(cfg, k), buggy);
            let (m, se) = mean_se(&mc[k]);
            criteria.push(Criterion::new(
                criteria::MONTE_CARLO_LOSS,
                exact,
                m,
                cfg.sigmas * se,
                "the recursion is exact; 4 Monte-Carlo standard errors (relative SE ≈ 4.5% at 400 repetitions)",
            ).qualified(name));
            notes.push(format!(
                "{name}: exact {exact:.5e}, Monte Carlo {m:.5e} ± {se:.2e}, S/N = {:.4}",
                single / exact / cfg.n as f64
            ));
            pred.push(exact);
            meas.push(m);
        }
        let x: Vec<f64> = (1..=QUAD_SCHEDULES.len()).map(|k| k as f64).collect();
        Scored {
            criteria,
            series: vec![
                Series::points("recursion", x.clone(), pred, Role::Prediction),
                Series::points("Monte Carlo", x, meas, Role::Measured),
            ],
            notes,
        }
    }
}

const Q_BUG: Control = Control {
    id: "MEANS",
    description: "the recursion with the cross-worker moment replaced by the product of unconditional means (the design's tempting bug)",
};

impl Check for QuadraticExact {
    type Config = QuadraticConfig;
    const ID: CheckId = CheckId {
        name: "local-sgd/quadratic-exact",
        paper: PAPER,
        claim: "On the paper's quadratic with multiplicative noise, the multi-worker SGD and averaging kernels match the exact second-moment recursion for every schedule; where the recursion is in its asymptotic regime (validation requires it) every schedule, OSA included, reaches S = N: quadratics cannot discriminate communication schedules.",
    };
    const CONTROLS: &'static [Control] = &[Q_BUG];

    fn run(cfg: &QuadraticConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |case: &str| Axes {
            title: format!("{} ({case}): E[F(x̄_T)] per schedule", id.name),
            x_label: "schedule (sync, growing, constant, OSA)".into(),
            y_label: "E[F(x̄_T)]".into(),
            log_x: false,
            log_y: true,
        };
        let (mc, sec) = timed(|| {
            (0..QUAD_SCHEDULES.len())
                .map(|k| {
                    quad_monte_carlo(
                        cfg,
                        &quad_times(cfg, k),
                        tagged(ctx.seed(cfg.seed), k as u64),
                        ctx,
                    )
                })
                .collect::<Vec<_>>()
        });
        let (r, s) = timed(|| Self::score(cfg, &mc, false));
        let mut out = vec![r.into_record(
            id,
            Case::positive("exact recursion (b) with the cross-worker moment q"),
            sec + s,
            ax("positive"),
        )];
        let (r, s) = timed(|| Self::score(cfg, &mc, true));
        out.push(r.into_record(id, Case::control(&Q_BUG), sec + s, ax("MEANS")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_the_design() {
        let obj = Objective {
            k_plus: 2.0,
            k_minus: 1.0,
            width: 0.0,
        };
        let l = limits(&obj, 2.0, 8.0);
        assert!((l.c1 - 40.25).abs() < 0.01, "{}", l.c1);
        assert!((l.m + 2.545).abs() < 0.002, "{}", l.m);
        assert!((l.ey2 - 66.04).abs() < 0.01, "{}", l.ey2);
        assert!((osa_speedup(&obj, 2.0, 8.0, 16.0) - 7.79).abs() < 0.01);
        assert!((osa_speedup(&obj, 2.0, 8.0, 64.0) - 10.87).abs() < 0.01);
    }

    #[test]
    fn mean_field_matches_an_independent_implementation() {
        // Derivation (c) integrated separately (Python, same ODE and closure, 400 steps per unit
        // of log-time) at the defaults and at a strongly asymmetric configuration.
        let cases = [
            ((2.0, 1.0, 8.0, 2.0, 2.0), [12.3307, 48.3360]),
            ((3.369, 0.823, 10.61, 2.818, 3.167), [6.8989, 24.5240]),
        ];
        for ((k_plus, k_minus, sigma, alpha, x0), want) in cases {
            let obj = Objective {
                k_plus,
                k_minus,
                width: 0.0,
            };
            for (n, w) in [16, 64].into_iter().zip(want) {
                let times = increasing_schedule(n, 1000);
                let got = speedup_mean_field(&obj, alpha, sigma, x0, &times, n);
                assert!((got / w - 1.0).abs() < 2e-3, "N = {n}: {got} vs {w}");
            }
        }
    }

    #[test]
    fn recursion_reproduces_the_design_table() {
        let cfg = QuadraticConfig::default();
        let rel = |a: f64, b: f64| (a / b - 1.0).abs();
        assert!(rel(quad_exact(&cfg, 1, &[cfg.t], false), 6.3188e-4) < 1e-4);
        for (k, v) in [3.1486e-5, 3.1538e-5, 3.1518e-5, 3.1594e-5]
            .iter()
            .enumerate()
        {
            let e = quad_exact(&cfg, cfg.n, &quad_times(&cfg, k), false);
            assert!(rel(e, *v) < 2e-4, "{k}: {e}");
        }
    }

    #[test]
    fn schedules_have_r_distinct_times_ending_at_t() {
        for (r, t) in [(64, 1000), (16, 1000), (8, 1000), (1, 10), (100, 100)] {
            let s = increasing_schedule(r, t);
            assert_eq!(s.len(), r);
            assert_eq!(*s.last().unwrap(), t);
            assert!(s[0] >= 1);
        }
    }

    #[test]
    fn constant_schedule_communicates_exactly_r_times_at_floor_rt_over_r() {
        for (r, t) in [
            (30, 1000),
            (7, 100),
            (64, 1000),
            (3, 10),
            (20, 1000),
            (1, 10),
            (10, 10),
        ] {
            let s = constant_schedule(r, t);
            assert_eq!(s.len(), r, "R = {r}, T = {t}");
            assert_eq!(*s.last().unwrap(), t);
            for (k, &tau) in s.iter().enumerate() {
                // τ_r = ⌊rT/R⌋ written as the defining inequality rT − R < R·τ_r ≤ rT.
                let rt = (k + 1) * t;
                assert!(r * tau <= rt && rt < r * (tau + 1), "τ_{} = {tau}", k + 1);
            }
            let (lo, hi) = (t / r, t.div_ceil(r));
            let mut prev = 0;
            for &tau in &s {
                assert!(
                    tau - prev == lo || tau - prev == hi,
                    "intervals ⌊T/R⌋ or ⌈T/R⌉"
                );
                prev = tau;
            }
        }
    }

    #[test]
    fn constant_schedule_with_n_not_dividing_t_matches_the_exact_recursion() {
        // N = 30 does not divide T = 310: intervals of 10 and 11.
        let cfg = QuadraticConfig {
            n: 30,
            t: 310,
            reps: 400,
            ..QuadraticConfig::default()
        };
        let times = quad_times(&cfg, 2);
        assert_eq!(times.len(), cfg.n, "exactly N communications");
        assert_eq!(times, constant_schedule(cfg.n, cfg.t));
        assert!(times.windows(2).any(|w| w[1] - w[0] == 11));
        let exact = quad_exact(&cfg, cfg.n, &times, false);
        let mc = quad_monte_carlo(&cfg, &times, 77, &Ctx::quiet());
        let (m, se) = mean_se(&mc);
        assert!(
            (m - exact).abs() <= 4.0 * se,
            "Monte Carlo {m} ± {se}, exact {exact}"
        );
        // The old rule (multiples of ⌊T/N⌋, then T) communicates N + 1 times here; the exact
        // recursion tells it apart from τ_r = ⌊rT/N⌋ (relative difference ≈ 1e-4, far inside the
        // Monte-Carlo band: on a quadratic only the recursion can discriminate schedules).
        let mut old: Vec<usize> = (1..=cfg.n).map(|r| r * (cfg.t / cfg.n)).collect();
        old.push(cfg.t);
        assert_eq!(old.len(), cfg.n + 1);
        let with_extra = quad_exact(&cfg, cfg.n, &old, false);
        assert!(
            (with_extra / exact - 1.0).abs() > 1e-6,
            "{with_extra} vs {exact}"
        );
    }

    #[test]
    fn worker_streams_of_a_range_are_the_same_streams_as_of_all_workers() {
        use rand_core::Rng as _;
        let all = worker_streams(5, 3, 0..9);
        let part = worker_streams(5, 3, 4..7);
        let mut first = numerics::stream(5, 3);
        let mut w0 = all[0].clone();
        assert_eq!(
            w0.next_u64(),
            first.next_u64(),
            "worker 0 draws the block's stream"
        );
        for (mut a, mut b) in all[4..7].iter().cloned().zip(part) {
            for _ in 0..10 {
                assert_eq!(a.next_u64(), b.next_u64());
            }
        }
        let mut w1 = all[1].clone();
        let mut w2 = all[2].clone();
        assert_ne!(w1.next_u64(), w2.next_u64());
    }

    #[test]
    fn simulation_is_bit_identical_for_any_thread_count() {
        let run = LocalSgd {
            obj: Objective {
                k_plus: 2.0,
                k_minus: 1.0,
                width: 0.0,
            },
            sigma: 8.0,
            x0: 2.0,
            alpha: 2.0,
            t: 100,
        };
        let times = increasing_schedule(8, 100);
        let xs: Vec<Vec<f64>> = [1, 2, 5]
            .iter()
            .map(|&th| {
                let mut ctx = Ctx::quiet();
                ctx.threads = th;
                simulate(&run, 8, 300, &times, 9, &ctx)
            })
            .collect();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&xs[0]), bits(&xs[1]));
        assert_eq!(bits(&xs[0]), bits(&xs[2]));
    }
}
