//! Reduced-precision training: gradient descent whose parameters are stored in bf16 stalls under
//! round-to-nearest once each step moves a parameter by less than half a bf16 ulp, and converges
//! under stochastic rounding at the full-precision rate (Gupta, Agrawal, Gopalakrishnan,
//! Narayanan, "Deep Learning with Limited Numerical Precision", ICML 2015, arXiv:1502.02551).
//! Derivation, tolerances and controls written up in `docs/checks/bf16-rounding.md`.
//!
//! # Derivation
//! Quadratic `f(p) = ½ a Σ_i (p_i − p★)²`, GD `p ← round(p − η a (p − p★))` with `p` stored as
//! bf16 and the arithmetic in f32 (the kernels' `Gd` through `Rule::step_with` with bf16 parameters).
//! - Round-to-nearest: if `η a |p − p★| < ulp(p)/2`, the rounded value is `p` again: the iterate
//!   never moves (predicted displacement exactly 0).
//! - Stochastic rounding is unbiased: `E[round(x)] = x`, so `E[e_{t+1}] = (1 − η a) E[e_t]` for
//!   the error `e = p − p★`, i.e. `E[e_t] = e₀ (1 − η a)^t`, the full-precision rate. Each step
//!   adds rounding noise of variance at most `u²/4` (`u` the largest ulp the iterate visits), so
//!   `Var e_t <= (u²/4) / (1 − (1 − η a)²)`, and the mean over `n` independent coordinates has
//!   standard deviation at most `σ = √(Var/n)`; the band is 5σ.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics::ols;
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::reduced::{convert, Rounding};
use descent_kernels::{vector, Gd};
use descent_kernels::{Exec, Rule};
use half::bf16;
use serde::{Deserialize, Serialize};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// Round-to-nearest: mean distance moved by the end (it stalls: 0).
    pub const NEAREST_DRIFT: CriterionKey = CriterionKey::new("nearest: mean |p_T − p_0|");
    /// Stochastic rounding: mean error at step T/2 against the exact-arithmetic decay.
    pub const STOCHASTIC_ERROR_HALF: CriterionKey =
        CriterionKey::new("stochastic: mean error at T/2");
    /// Stochastic rounding: mean error at step T against the exact-arithmetic decay.
    pub const STOCHASTIC_ERROR_END: CriterionKey = CriterionKey::new("stochastic: mean error at T");
    /// Stochastic rounding: fitted log decay rate of the mean error.
    pub const STOCHASTIC_DECAY_RATE: CriterionKey =
        CriterionKey::new("stochastic: decay rate ln(1 − ηa)");
}

/// Citation.
pub const PAPER: &str = "S. Gupta, A. Agrawal, K. Gopalakrishnan, P. Narayanan, \"Deep Learning \
with Limited Numerical Precision\", ICML 2015, arXiv:1502.02551 (stochastic rounding)";

check_config! {
    /// Configuration of `bf16-rounding/stall-vs-stochastic`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct StallConfig {
        /// Independent coordinates n.
        n: usize = 4096, Range::int(16, 1 << 22);
        /// GD steps T.
        steps: usize = 2000, Range::int(10, 1_000_000);
        /// Step size η.
        eta: f64 = 0.01, Range::real(1e-9, 1.0);
        /// Curvature a.
        curvature: f64 = 0.1, Range::real(1e-9, 100.0);
        /// Minimizer p★ (every coordinate).
        p_star: f64 = 1.0, Range::real(-1e4, 1e4);
        /// Initial error e₀ = p₀ − p★.
        e0: f64 = 0.5, Range::real(1e-3, 1e4);
        /// Seed of the stochastic-rounding stream.
        seed: u64 = 1, Range::int(0, 1 << 53);
        /// Band half-width in standard deviations of the mean error.
        sigmas: f64 = 5.0, Range::real(1.0, 20.0);
        /// Relative tolerance of the fitted decay rate.
        tol_rate: f64 = 0.05, Range::real(0.0, 1.0);
        /// Control NC2: the curvature that makes every update larger than half an ulp.
        nc2_curvature: f64 = 5.0, Range::real(1e-9, 100.0);
    }
}

impl CheckConfig for StallConfig {
    fn validate(&self) -> Result<(), String> {
        for (name, a) in [
            ("curvature", self.curvature),
            ("nc2_curvature", self.nc2_curvature),
        ] {
            if self.eta * a >= 1.0 {
                return Err(format!(
                    "`eta` × `{name}` = {} must be below 1 (GD would not contract)",
                    self.eta * a
                ));
            }
        }
        // The positive case's premise: under round-to-nearest every update is below half an ulp,
        // so the parameters never move. The largest update is η·a·e₀ (at p₀ = p★ + e₀); half the
        // spacing below p₀ is at least ulp(p₀)/4 (the spacing halves below a power of two).
        let p0 = self.p_star + self.e0;
        let update = self.eta * self.curvature * self.e0;
        if p0 != 0.0 && update >= bf16_ulp(p0) / 4.0 {
            return Err(format!(
                "the largest update `eta`·`curvature`·`e0` = {update:.3e} is not below half a bf16 \
                 spacing at p₀ = `p_star` + `e0` = {p0} (at least {:.3e}): round-to-nearest would \
                 move, so the stall the check predicts is not its premise (that is control NC2); \
                 lower `eta`, `curvature` or `e0`, or raise |`p_star`|",
                bf16_ulp(p0) / 4.0
            ));
        }
        // The rate is fitted to ln(mean error); that is a measurement of the contraction only
        // while the mean error stays above the rounding noise. Require the predicted mean error at
        // T to be at least twice the noise band (so the measured one stays positive and within a
        // factor 2 of the prediction); below that, ln(mean error) is noise and no rate exists.
        let ea = self.eta * self.curvature;
        let e_end = self.e0 * (1.0 - ea).powi(self.steps as i32);
        let band = noise_band(self, ea);
        if e_end < 2.0 * band {
            return Err(format!(
                "the predicted mean error at T, `e0`·(1 − `eta`·`curvature`)^`steps` = {e_end:.3e}, \
                 is below twice the stochastic-rounding noise band {band:.3e} (`sigmas` σ of the \
                 mean, with the ulp at |`p_star`| + `e0`): the decay rate is not measurable; lower \
                 `steps` or |`p_star`|, or raise `e0` or `n`"
            ));
        }
        Ok(())
    }
}

/// Half-width of the pass band on the mean error: `sigmas` standard deviations of the mean over
/// `n` coordinates, with the stationary rounding-noise variance (u²/4)/(1 − (1 − ηa)²) per
/// coordinate and u the largest bf16 ulp visited.
fn noise_band(cfg: &StallConfig, ea: f64) -> f64 {
    noise_sigma(cfg, ea).1 * cfg.sigmas
}

/// (u, σ): the largest bf16 ulp visited and the standard deviation of the mean error.
fn noise_sigma(cfg: &StallConfig, ea: f64) -> (f64, f64) {
    let u = bf16_ulp(2.0 * (cfg.p_star.abs() + cfg.e0));
    let var = (u * u / 4.0) / (1.0 - (1.0 - ea) * (1.0 - ea));
    (u, (var / cfg.n as f64).sqrt())
}

/// A bf16 ulp bound for values of magnitude at most `x`: `2^(⌊log2 x⌋ − 7)`.
fn bf16_ulp(x: f64) -> f64 {
    2f64.powi(x.abs().log2().floor() as i32 - 7)
}

/// Mean error `mean_i (p_i − p★)` after every step (index 0 = initial) and the mean absolute
/// displacement `mean_i |p_i(T) − p_i(0)|`.
#[derive(Clone, Debug)]
pub struct Trace {
    /// ηa of the run (the predicted contraction per step is 1 − ηa).
    pub eta_a: f64,
    /// Mean error per step.
    pub mean_error: Vec<f64>,
    /// Mean |p_T − p_0|.
    pub displacement: f64,
}

/// Runs bf16-stored GD with the given rounding; all arithmetic through the kernels.
pub fn run(cfg: &StallConfig, curvature: f64, stochastic: bool, seed: u64) -> Trace {
    let n = cfg.n;
    let start = bf16::from_f64(cfg.p_star + cfg.e0);
    let mut p = vec![start; n];
    let p_star = vec![cfg.p_star as f32; n];
    let (mut p32, mut g) = (vec![0.0f32; n], vec![0.0f32; n]);
    let gd = Gd::new(cfg.eta as f32);
    let mut mean_error = Vec::with_capacity(cfg.steps + 1);
    let mean_of = |p32: &[f32]| p32.iter().map(|&v| v as f64 - cfg.p_star).sum::<f64>() / n as f64;
    for t in 0..=cfg.steps {
        convert(&p, &mut p32).expect("widening is exact");
        mean_error.push(mean_of(&p32));
        if t == cfg.steps {
            break;
        }
        // g = a (p − p★)
        vector::sub(&mut g, &p32, &p_star).expect("shapes");
        vector::scale(curvature as f32, &mut g);
        let rounding = if stochastic {
            Rounding::stochastic(seed, t as u64)
        } else {
            Rounding::NearestEven
        };
        let exec = Exec::active().with_rounding(rounding);
        gd.step_with(&exec, 1, &mut p, &g, &mut [] as &mut [bf16])
            .expect("valid step");
    }
    let s = start.to_f64();
    let displacement = p32.iter().map(|&v| (v as f64 - s).abs()).sum::<f64>() / n as f64;
    Trace {
        eta_a: cfg.eta * curvature,
        mean_error,
        displacement,
    }
}

/// The stall-versus-stochastic check.
pub struct StallVsStochastic;

impl StallVsStochastic {
    /// The verdict function: `nearest` is the run scored as round-to-nearest, `stochastic` the run
    /// scored as stochastic rounding.
    pub fn score(cfg: &StallConfig, nearest: &Trace, stochastic: &Trace) -> Scored {
        let ea = stochastic.eta_a;
        let steps = stochastic.mean_error.len() - 1;
        let predicted = |t: usize| cfg.e0 * (1.0 - ea).powi(t as i32);
        let (u, sigma) = noise_sigma(cfg, ea);
        let band = noise_band(cfg, ea);
        let why = format!(
            "{}σ of the mean over n = {} coordinates, σ = √((u²/4)/(1 − (1 − ηa)²)/n) = {sigma:.2e} with u = {u:e} the largest bf16 ulp visited",
            cfg.sigmas, cfg.n
        );
        let (half, end) = (steps / 2, steps);
        let t: Vec<f64> = (0..=steps).map(|x| x as f64).collect();
        let logs: Vec<f64> = stochastic.mean_error.iter().map(|e| e.ln()).collect();
        let rate = if logs.iter().all(|v| v.is_finite()) {
            ols(&t, &logs).slope
        } else {
            f64::NAN
        };
        let pred_rate = (1.0 - ea).ln();
        let criteria = vec![
            Criterion::at_most(
                criteria::NEAREST_DRIFT,
                0.0,
                nearest.displacement,
                "every update η a |e| is below half an ulp, so round-to-nearest returns the same value: exactly no movement",
            ),
            Criterion::new(criteria::STOCHASTIC_ERROR_HALF, predicted(half), stochastic.mean_error[half], band, &why),
            Criterion::new(criteria::STOCHASTIC_ERROR_END, predicted(end), stochastic.mean_error[end], band, &why),
            Criterion::new(
                criteria::STOCHASTIC_DECAY_RATE,
                pred_rate,
                rate,
                cfg.tol_rate * pred_rate.abs(),
                "unbiased rounding keeps the full-precision rate; the 5σ band on ln(mean error) at the end, spread over T steps, moves the fitted slope by well under 5%",
            ),
        ];
        let step = (steps / 200).max(1);
        let ts: Vec<f64> = (0..=steps).step_by(step).map(|x| x as f64).collect();
        let pick = |v: &[f64]| (0..=steps).step_by(step).map(|i| v[i]).collect::<Vec<_>>();
        Scored {
            criteria,
            series: vec![
                Series::line(
                    "stochastic rounding: mean error",
                    ts.clone(),
                    pick(&stochastic.mean_error),
                    Role::Measured,
                ),
                Series::line(
                    "round to nearest: mean error",
                    ts.clone(),
                    pick(&nearest.mean_error),
                    Role::Measured,
                ),
                Series::line(
                    "e₀(1 − ηa)^t (prediction)",
                    ts.clone(),
                    ts.iter().map(|&x| predicted(x as usize)).collect(),
                    Role::Prediction,
                ),
            ],
            notes: vec![format!(
                "largest update η a e₀ = {:.2e} against half an ulp at p₀ = {:.2e}",
                ea * cfg.e0,
                bf16_ulp(cfg.p_star + cfg.e0) / 2.0
            )],
        }
    }
}

const NC1: Control = Control {
    id: "NC1",
    description: "round-to-nearest run scored as the stochastic one: a stalled iterate cannot follow the full-precision rate",
};
const NC2: Control = Control {
    id: "NC2",
    description: "premise removed: curvature large enough that every update exceeds half an ulp, so round-to-nearest moves",
};

impl Check for StallVsStochastic {
    type Config = StallConfig;
    const ID: CheckId = CheckId {
        name: "bf16-rounding/stall-vs-stochastic",
        paper: PAPER,
        claim: "GD with bf16-stored parameters stalls under round-to-nearest when each update is below half an ulp, and converges at the full-precision rate e₀(1 − ηa)^t under stochastic rounding.",
    };
    const CONTROLS: &'static [Control] = &[NC1, NC2];

    fn run(cfg: &StallConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let seed = ctx.seed(cfg.seed);
        let specs = [
            (cfg.curvature, false),
            (cfg.curvature, true),
            (cfg.nc2_curvature, false),
            (cfg.nc2_curvature, true),
        ];
        let (traces, sec) = timed(|| ctx.map(4, |i| run(cfg, specs[i].0, specs[i].1, seed)));
        let ax = |c: &str| Axes {
            title: format!("{} ({c}): mean error of bf16-stored GD", id.name),
            x_label: "step t".into(),
            y_label: "mean (p − p★)".into(),
            log_x: false,
            log_y: false,
        };
        let (pos, s) = timed(|| Self::score(cfg, &traces[0], &traces[1]));
        let mut out = vec![pos.into_record(
            id,
            Case::positive("updates below half an ulp: nearest vs stochastic rounding"),
            s + sec / 2.0,
            ax("positive"),
        )];
        let (r, s) = timed(|| Self::score(cfg, &traces[0], &traces[0]));
        out.push(r.into_record(id, Case::control(&NC1), s, ax("NC1")));
        let (r, s) = timed(|| Self::score(cfg, &traces[2], &traces[3]));
        out.push(r.into_record(id, Case::control(&NC2), s + sec / 2.0, ax("NC2")));
        out
    }
}
