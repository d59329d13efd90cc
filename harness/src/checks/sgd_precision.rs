//! SGD with gradient precision `ρ` versus SQ and PAC learning (Abbe, Kamath, Malach, Sandon,
//! Srebro, NeurIPS 2021, arXiv:2108.04190); design in `docs/checks/sgd-precision-sq-pac.md`.
//!
//! Precision model (the design's harness convention; the paper's body was not read): per-sample
//! gradients are clipped coordinate-wise to `[−1, 1]`, `g_batch` is the mean of `b` fresh ones, and
//! a `ρ`-approximate oracle may return any `g` with `‖g − g_batch‖_∞ ≤ ρ`. The oracle answers are
//! formed with the kernels' bounded perturbation (`reduced::quantize::perturb_bounded`), which
//! clamps every change to `ρ` and counts the changes that would have exceeded it.
//!
//! # SQP-1 (`sgd-precision/sq-label-blind`, claim 4: `b ρ²` large ⇒ SGD is SQ)
//! A two-layer ReLU net on `{±1}^n` is trained with the label-blind answer
//! `g_null(w) = E_x[(q(x, +1) + q(x, −1))/2]` (`q` the clipped per-sample gradient). At every step
//! it must be a legal answer for the true minibatch labelled by a dense parity `χ_S`:
//! `D_t = ‖g_null − g_batch‖_∞ ≤ Δ_t + dev_t` with `Δ_t = ‖g_null − g_pop,S‖_∞` a Fourier
//! coefficient (`g_pop,S − g_null = ê_c(S)`, `e_c = (q_c(·,+1) − q_c(·,−1))/2`, Parseval
//! `Σ_S ê_c(S)² = E[e_c²] ≤ 1`) and `dev_t = ‖g_batch − g_pop,S‖_∞` bounded by Hoeffding /
//! Bernstein. A legal run never reads the labels, so its predictor `h` is the same for every
//! target and its accuracy on `χ_S` is `(1 + ĥ(S))/2` with `E_S[ĥ(S)²] ≤ 1/C(n, |S|)`.
//!
//! # SQP-2 (`sgd-precision/pac-extraction`, claim 2: `b ρ` small ⇒ SGD simulates PAC)
//! A memory gadget: row `t` receives the minibatch gradient `−(1/b) Σ_i h_t(x_i)(x_i, y_i)` with a
//! random filter `h_t` passing `x` iff `x_i = +1` on `log2 b` random coordinates. Entries lie in
//! `{0, ±1/b, ±2/b, …}`; `ρ`-intervals around them are disjoint iff `b ρ < 1/2`, so a row with
//! exactly one passing sample (probability `(1 − 1/b)^(b−1)`) decodes exactly under any adversary,
//! and Gaussian elimination over GF(2) recovers `S`. With `b ρ > 1/2` the adversary maps every entry
//! to magnitude `1/(2b)` and nothing decodes.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics;
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::models::Dense;
use descent_kernels::random::fill_normal;
use descent_kernels::reduced::quantize::{perturb_bounded, Perturbation};
use descent_kernels::Rule;
use descent_kernels::{vector, Gd};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// Steps whose perturbation exceeds the precision ρ.
    pub const ILLEGAL_STEPS: CriterionKey = CriterionKey::new("illegal steps (D_t > ρ)");
    /// Largest perturbation D_t over the run.
    pub const MAX_DISTANCE: CriterionKey = CriterionKey::new("max_t D_t");
    /// Largest gap between the label-blind and the population gradient.
    pub const NULL_GAP: CriterionKey = CriterionKey::new("Δ_S = max_t ‖g_null − g_pop,S‖_∞");
    /// Smallest distance moved by the end over targets.
    pub const MIN_MOVE: CriterionKey = CriterionKey::new("min ‖w_T − w_0‖");
    /// Targets whose final predictor differs from the label-blind one.
    pub const DIFFERENT_PREDICTORS: CriterionKey =
        CriterionKey::new("targets with a different final predictor");
    /// Largest distance of the accuracy from chance.
    pub const ACCURACY_GAP: CriterionKey = CriterionKey::new("max |accuracy − 1/2|");
    /// Largest gap between the accuracy and its Fourier formula.
    pub const ACCURACY_FOURIER_ERROR: CriterionKey =
        CriterionKey::new("max |accuracy − (1 + ĥ(S))/2|");
    /// Relative Parseval error of the fast Walsh–Hadamard transform.
    pub const PARSEVAL_ERROR: CriterionKey = CriterionKey::new("FWHT Parseval relative error");
    /// Largest gap between the Fourier coefficient and the gradient difference.
    pub const FOURIER_GRADIENT_ERROR: CriterionKey =
        CriterionKey::new("max |ê_c(S) − (g_pop,S − g_null)_c|");
    /// Runs that recover the memory exactly.
    pub const EXACT_RECOVERIES: CriterionKey = CriterionKey::new("exact recoveries");
    /// Mean number of decodable memory rows against its prediction.
    pub const MEAN_DECODABLE_ROWS: CriterionKey = CriterionKey::new("mean decodable rows");
    /// Memory rows decoded wrongly.
    pub const WRONG_ROWS: CriterionKey = CriterionKey::new("wrongly decoded rows");
}

/// Citation.
pub const PAPER: &str = "E. Abbe, P. Kamath, E. Malach, C. Sandon, N. Srebro, \"On the Power of \
Differentiable Learning versus PAC and SQ Learning\", NeurIPS 2021, arXiv:2108.04190";

// ------------------------------------------------------------------ shared helpers

/// In-place fast Walsh–Hadamard transform normalised by `1/len`: `out[S] = E_x[f(x) χ_S(x)]` for
/// `f` given on the index encoding (bit `i` of the index is 1 iff `x_i = −1`).
pub fn fwht_normalized(v: &mut [f64]) {
    let n = v.len();
    assert!(n.is_power_of_two(), "fwht: length must be a power of two");
    let mut h = 1;
    while h < n {
        for block in v.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (x, y) = (*a, *b);
                *a = x + y;
                *b = x - y;
            }
        }
        h *= 2;
    }
    let inv = 1.0 / n as f64;
    for x in v.iter_mut() {
        *x *= inv;
    }
}

/// `χ_S` of the input with index `u`: `(−1)^{|u ∧ S|}`.
fn parity(u: u64, s: u64) -> f64 {
    if (u & s).count_ones().is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// `k` distinct coordinates of `0..n` as a bit mask (partial Fisher–Yates).
fn random_subset(rng: &mut numerics::Rng, n: usize, k: usize) -> u64 {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut mask = 0u64;
    for i in 0..k {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
        mask |= 1 << idx[i];
    }
    mask
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

// ------------------------------------------------------------------ SQP-1

check_config! {
    /// Configuration of `sgd-precision/sq-label-blind`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SqConfig {
        /// Input bits n (all 2^n inputs are enumerated).
        n: usize = 14, Range::int(4, 20);
        /// Parity degree |S| (dense: n/2).
        degree: usize = 7, Range::int(1, 20);
        /// Number of parity targets.
        targets: usize = 3, Range::int(2, 64);
        /// Hidden width.
        width: usize = 16, Range::int(1, 256);
        /// Learning rate.
        lr: f64 = 0.1, Range::real(1e-6, 10.0);
        /// Steps T of the positive case.
        steps: usize = 60, Range::int(1, 10_000);
        /// Minibatch size b of the positive case.
        batch: usize = 2048, Range::int(1, 1 << 20);
        /// Precision ρ.
        rho: f64 = 0.25, Range::real(1e-6, 2.0);
        /// Failure probability δ of the union concentration bounds.
        delta: f64 = 1e-6, Range::real(1e-300, 0.5);
        /// Required distance moved ‖w_T − w_0‖ (rules out a frozen, vacuous run).
        min_move: f64 = 0.5, Range::real(0.0, 1e6);
        /// Allowed |accuracy − 1/2| of the final predictor on each target.
        acc_band: f64 = 0.05, Range::real(0.0, 0.5);
        /// Seed (init, targets, minibatches).
        seed: u64 = 7, Range::int(0, 1 << 53);
        /// Control N1: minibatch size (b ρ² small).
        nc_batch: usize = 16, Range::int(1, 1 << 20);
        /// Controls: steps.
        nc_steps: usize = 20, Range::int(1, 10_000);
        /// Control N2: parity degree of a sparse target (large Fourier coefficient).
        nc_degree: usize = 1, Range::int(1, 20);
    }
}

impl CheckConfig for SqConfig {
    fn validate(&self) -> Result<(), String> {
        for (key, d) in [("degree", self.degree), ("nc_degree", self.nc_degree)] {
            if d > self.n {
                return Err(format!("`{key}` = {d} must be at most `n` = {}", self.n));
            }
        }
        Ok(())
    }
}

/// The network `f(x) = Σ_r a_r ReLU(<w_r, x> + c_r)` with flat parameters `[W (n × m) | c | a]`.
struct Net {
    n: usize,
    m: usize,
}

impl Net {
    fn len(&self) -> usize {
        self.n * self.m + 2 * self.m
    }
}

/// Per-input quantities of one step, over all 2^n inputs.
struct Pass {
    /// Pre-activations z (N × m).
    z: Vec<f64>,
    /// ReLU(z) (N × m).
    h: Vec<f64>,
    /// Outputs f (N).
    f: Vec<f64>,
}

/// Exact population work on the enumerated cube.
struct Cube {
    n: usize,
    /// Inputs (N × n), x_i = 1 − 2·bit_i(u).
    x: Vec<f64>,
}

impl Cube {
    fn new(n: usize) -> Cube {
        let big = 1usize << n;
        let mut x = vec![0.0; big * n];
        for u in 0..big {
            for i in 0..n {
                x[u * n + i] = if (u >> i) & 1 == 1 { -1.0 } else { 1.0 };
            }
        }
        Cube { n, x }
    }
    fn size(&self) -> usize {
        1 << self.n
    }

    fn forward(&self, net: &Net, p: &[f64]) -> Pass {
        let (n, m, big) = (net.n, net.m, self.size());
        let (w, rest) = p.split_at(n * m);
        let (c, a) = rest.split_at(m);
        let mut z = vec![0.0; big * m];
        Dense::new(big, n, m)
            .forward(&self.x, w, c, &mut z)
            .expect("shapes");
        let h: Vec<f64> = z.iter().map(|&v| v.max(0.0)).collect();
        let mut f = vec![0.0; big];
        Dense::new(big, m, 1)
            .forward(&h, a, &[0.0], &mut f)
            .expect("shapes");
        Pass { z, h, f }
    }

    /// Clipped per-sample gradient factors for label `y` at input `u`: `ua[r] = clip(r·h_r)` (the
    /// a-gradient) and `uz[r] = clip(r·a_r·1[z_r > 0])` (c-gradient; the w-gradient is `x_i·uz[r]`,
    /// exactly the clip of `x_i r a_r 1[z_r > 0]` since `|x_i| = 1`).
    fn factors(pass: &Pass, a: &[f64], u: usize, y: f64, ua: &mut [f64], uz: &mut [f64]) {
        let m = a.len();
        let r = pass.f[u] - y;
        for k in 0..m {
            ua[k] = (r * pass.h[u * m + k]).clamp(-1.0, 1.0);
            uz[k] = if pass.z[u * m + k] > 0.0 {
                (r * a[k]).clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
    }

    /// Mean clipped gradient over the inputs `rows` (indices into the cube, with repetition), the
    /// label of each given by `label(u)` as a mixture `[(weight, y)]`. Returns the flat gradient.
    fn mean_grad(
        &self,
        net: &Net,
        p: &[f64],
        pass: &Pass,
        rows: &[usize],
        label: &dyn Fn(usize) -> [(f64, f64); 2],
    ) -> Vec<f64> {
        let (n, m) = (net.n, net.m);
        let a = &p[n * m + m..];
        let b = rows.len();
        let mut xb = vec![0.0; b * n];
        let mut dz = vec![0.0; b * m];
        let mut da = vec![0.0; b * m];
        let (mut ua, mut uz) = (vec![0.0; m], vec![0.0; m]);
        for (j, &u) in rows.iter().enumerate() {
            xb[j * n..(j + 1) * n].copy_from_slice(&self.x[u * n..(u + 1) * n]);
            for (wt, y) in label(u) {
                if wt == 0.0 {
                    continue;
                }
                Cube::factors(pass, a, u, y, &mut ua, &mut uz);
                for k in 0..m {
                    dz[j * m + k] += wt * uz[k];
                    da[j * m + k] += wt * ua[k];
                }
            }
        }
        let mut g = vec![0.0; net.len()];
        let (gw, rest) = g.split_at_mut(n * m);
        let (gc, ga) = rest.split_at_mut(m);
        let w = &p[..n * m];
        Dense::new(b, n, m)
            .backward(&xb, w, &dz, None, gw, gc)
            .expect("shapes");
        descent_kernels::models::dense::column_sums_on(
            descent_kernels::Backend::active(),
            &da,
            m,
            ga,
        )
        .expect("shapes");
        vector::scale(1.0 / b as f64, &mut g);
        g
    }

    /// Largest per-coordinate standard deviation of the clipped per-sample gradient under the
    /// labels `χ_S`, exact over the cube.
    fn max_sd(&self, net: &Net, p: &[f64], pass: &Pass, s: u64, mean: &[f64]) -> f64 {
        let (n, m) = (net.n, net.m);
        let a = &p[n * m + m..];
        let (mut ua, mut uz) = (vec![0.0; m], vec![0.0; m]);
        let (mut ea2, mut ez2) = (vec![0.0; m], vec![0.0; m]);
        for u in 0..self.size() {
            Cube::factors(pass, a, u, parity(u as u64, s), &mut ua, &mut uz);
            for k in 0..m {
                ea2[k] += ua[k] * ua[k];
                ez2[k] += uz[k] * uz[k];
            }
        }
        let inv = 1.0 / self.size() as f64;
        let mut best: f64 = 0.0;
        for (c, &g) in mean.iter().enumerate() {
            // w_{i,k} and c_k share E[q²] = E[uz_k²]; a_k has E[ua_k²].
            let e2 = if c < n * m {
                ez2[c % m]
            } else if c < n * m + m {
                ez2[c - n * m]
            } else {
                ea2[c - n * m - m]
            } * inv;
            best = best.max((e2 - g * g).max(0.0).sqrt());
        }
        best
    }
}

/// The adversary that answers with a given vector (here the label-blind gradient): `δ_i =
/// target_i − g_i`. `perturb_bounded` clamps it to ρ and counts where it had to.
struct AnswerWith<'a>(&'a [f32]);

impl Perturbation for AnswerWith<'_> {
    fn delta(&mut self, index: usize, grad: f32, _rho: f32) -> f32 {
        self.0[index] - grad
    }
}

/// One label-blind run against one target.
#[derive(Clone, Debug)]
pub struct SqRun {
    /// Minibatch size.
    pub batch: usize,
    /// Target set S (bit mask).
    pub s: u64,
    /// |S|.
    pub degree: usize,
    /// D_t per step.
    pub d: Vec<f64>,
    /// Δ_t = ‖g_null − g_pop,S‖_∞ per step.
    pub delta: Vec<f64>,
    /// Largest per-coordinate sd of the clipped per-sample gradient per step.
    pub sd: Vec<f64>,
    /// Coordinates `perturb_bounded` had to clamp, per step.
    pub clamped: Vec<usize>,
    /// ‖w_T − w_0‖.
    pub moved: f64,
    /// Final parameters.
    pub params: Vec<f64>,
    /// Accuracy of sign f_T on χ_S (exact over the cube).
    pub accuracy: f64,
    /// ĥ(S) from the Walsh–Hadamard transform of sign f_T.
    pub h_hat: f64,
    /// Largest relative Parseval error of the transforms of e_c at w_T.
    pub parseval: f64,
    /// Largest |ê_c(S) − (g_pop,S − g_null)_c| at w_T.
    pub coef_err: f64,
}

/// Parameter count p = n·m + 2m.
fn sq_params(cfg: &SqConfig) -> usize {
    cfg.n * cfg.width + 2 * cfg.width
}

/// Runs SGD with the label-blind oracle for `steps` steps, checking legality for target `k`.
pub fn sq_run(
    cfg: &SqConfig,
    seed: u64,
    k: usize,
    (batch, steps, degree): (usize, usize, usize),
    sub: u32,
) -> SqRun {
    let net = Net {
        n: cfg.n,
        m: cfg.width,
    };
    let cube = Cube::new(cfg.n);
    let (n, m) = (net.n, net.m);
    // Shared init (stream 0): w ~ N(0, I/n), c = 0, a = ±1.
    let mut init = numerics::stream(seed, 0);
    let mut p = vec![0.0f64; net.len()];
    fill_normal(&mut init, &mut p[..n * m], 0.0, 1.0 / (n as f64).sqrt());
    for k in 0..m {
        p[n * m + m + k] = if init.next_u64() >> 63 == 1 {
            1.0
        } else {
            -1.0
        };
    }
    let p0 = p.clone();
    let s = random_subset(&mut numerics::stream(seed, 1 + k as u32), n, degree);
    let mut rng = numerics::stream(seed, sub);
    let gd = Gd::new(cfg.lr);
    let all: Vec<usize> = (0..cube.size()).collect();
    let blind = |_: usize| [(0.5, 1.0), (0.5, -1.0)];
    let truth = |u: usize| [(1.0, parity(u as u64, s)), (0.0, 0.0)];
    let (mut d, mut delta, mut sd, mut clamped) = (vec![], vec![], vec![], vec![]);
    let mut rows = vec![0usize; batch];
    let rho = cfg.rho as f32;
    for _ in 0..steps {
        let pass = cube.forward(&net, &p);
        let g_null = cube.mean_grad(&net, &p, &pass, &all, &blind);
        let g_pop = cube.mean_grad(&net, &p, &pass, &all, &truth);
        for r in rows.iter_mut() {
            *r = (rng.next_u64() >> (64 - n)) as usize;
        }
        let g_batch = cube.mean_grad(&net, &p, &pass, &rows, &truth);
        let dist = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max)
        };
        d.push(dist(&g_null, &g_batch));
        delta.push(dist(&g_null, &g_pop));
        sd.push(cube.max_sd(&net, &p, &pass, s, &g_pop));
        // The oracle answer: g_batch moved towards g_null by at most ρ per coordinate.
        let null32: Vec<f32> = g_null.iter().map(|&v| v as f32).collect();
        let mut answer: Vec<f32> = g_batch.iter().map(|&v| v as f32).collect();
        clamped.push(perturb_bounded(rho, &mut answer, &mut AnswerWith(&null32)).expect("ρ > 0"));
        // The update uses the label-blind answer (exactly g_null when nothing was clamped).
        gd.step(1, &mut p, &g_null, &mut []).expect("valid step");
    }
    let mut diff = vec![0.0; p.len()];
    vector::sub(&mut diff, &p, &p0).expect("shapes");
    let moved = vector::norm2(&diff);
    // Final predictor and its Fourier coefficient at S.
    let pass = cube.forward(&net, &p);
    let mut hs: Vec<f64> = pass
        .f
        .iter()
        .map(|&v| if v >= 0.0 { 1.0 } else { -1.0 })
        .collect();
    let accuracy = hs
        .iter()
        .enumerate()
        .filter(|(u, &h)| h == parity(*u as u64, s))
        .count() as f64
        / cube.size() as f64;
    fwht_normalized(&mut hs);
    let h_hat = hs[s as usize];
    // Fourier view of the signal: ê_c(S) = (g_pop,S − g_null)_c, Parseval on every coordinate.
    let g_null = cube.mean_grad(&net, &p, &pass, &all, &blind);
    let g_pop = cube.mean_grad(&net, &p, &pass, &all, &truth);
    let a = &p[n * m + m..];
    let big = cube.size();
    let (mut up, mut zp, mut un, mut zn) = (vec![0.0; m], vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    // Per input: ez_k = e of c_k (w_{i,k} has x_i·ez_k) and ea_k = e of a_k.
    let (mut ez, mut ea) = (vec![0.0; big * m], vec![0.0; big * m]);
    for u in 0..big {
        Cube::factors(&pass, a, u, 1.0, &mut up, &mut zp);
        Cube::factors(&pass, a, u, -1.0, &mut un, &mut zn);
        for kk in 0..m {
            ez[u * m + kk] = (zp[kk] - zn[kk]) / 2.0;
            ea[u * m + kk] = (up[kk] - un[kk]) / 2.0;
        }
    }
    let (mut parseval, mut coef_err) = (0.0f64, 0.0f64);
    let mut ec = vec![0.0; big];
    for c in 0..net.len() {
        for (u, v) in ec.iter_mut().enumerate() {
            *v = if c < n * m {
                cube.x[u * n + c / m] * ez[u * m + c % m]
            } else if c < n * m + m {
                ez[u * m + c - n * m]
            } else {
                ea[u * m + c - n * m - m]
            };
        }
        let energy = ec.iter().map(|v| v * v).sum::<f64>() / big as f64;
        fwht_normalized(&mut ec);
        let spectrum = ec.iter().map(|v| v * v).sum::<f64>();
        let rel = if energy > 0.0 {
            (spectrum - energy).abs() / energy
        } else {
            spectrum
        };
        parseval = parseval.max(rel);
        coef_err = coef_err.max((ec[s as usize] - (g_pop[c] - g_null[c])).abs());
    }
    SqRun {
        batch,
        s,
        degree,
        d,
        delta,
        sd,
        clamped,
        moved,
        params: p,
        accuracy,
        h_hat,
        parseval,
        coef_err,
    }
}

/// `sgd-precision/sq-label-blind`.
pub struct SqLabelBlind;

impl SqLabelBlind {
    /// The verdict, for runs of one minibatch size and step count (one per target).
    pub fn score(cfg: &SqConfig, runs: &[SqRun]) -> Scored {
        let b = runs[0].batch as f64;
        let steps = runs[0].d.len();
        let p = sq_params(cfg) as f64;
        let k = runs.len() as f64;
        let rho = cfg.rho;
        let count = p * steps as f64 * k;
        let l = (2.0 * count / cfg.delta).ln();
        // Hoeffding (coordinates in [−1, 1]): ε_H with union failure probability δ.
        let eps_h = (2.0 * l / b).sqrt();
        // Bernstein with |q − E q| ≤ 2 and the exact per-step largest sd σ_t.
        let bern = |sd: f64| {
            let a = 2.0 * 2.0 * l / 3.0;
            (a + (a * a + 8.0 * b * sd * sd * l).sqrt()) / (2.0 * b)
        };
        // Hoeffding probability of any violation, from the exact Δ_t.
        let p_any: f64 = runs
            .iter()
            .flat_map(|r| r.delta.iter())
            .map(|&dl| {
                let e = (rho - dl).max(0.0);
                2.0 * p * (-b * e * e / 2.0).exp()
            })
            .sum::<f64>()
            .min(1.0);
        // Illegal steps as the kernels' bounded perturbation reports them (it clamps every
        // coordinate where the label-blind answer is more than ρ from the minibatch gradient).
        let violations = runs
            .iter()
            .flat_map(|r| r.clamped.iter())
            .filter(|&&c| c > 0)
            .count() as f64;
        let f64_violations = runs
            .iter()
            .flat_map(|r| r.d.iter())
            .filter(|&&x| x > rho)
            .count();
        let max_d = runs
            .iter()
            .flat_map(|r| r.d.iter())
            .fold(0.0f64, |a, &x| a.max(x));
        let limit_d = runs
            .iter()
            .flat_map(|r| r.delta.iter().zip(&r.sd).map(|(&dl, &s)| dl + bern(s)))
            .fold(0.0f64, f64::max);
        let delta_s = runs
            .iter()
            .flat_map(|r| r.delta.iter())
            .fold(0.0f64, |a, &x| a.max(x));
        let min_move = runs.iter().map(|r| r.moved).fold(f64::INFINITY, f64::min);
        let differing = runs
            .iter()
            .filter(|r| {
                r.params
                    .iter()
                    .zip(&runs[0].params)
                    .any(|(x, y)| x.to_bits() != y.to_bits())
            })
            .count() as f64;
        let acc_dev = runs
            .iter()
            .map(|r| (r.accuracy - 0.5).abs())
            .fold(0.0f64, f64::max);
        let fourier_err = runs
            .iter()
            .map(|r| (r.accuracy - (1.0 + r.h_hat) / 2.0).abs())
            .fold(0.0f64, f64::max);
        let parseval = runs.iter().map(|r| r.parseval).fold(0.0f64, f64::max);
        let coef_err = runs.iter().map(|r| r.coef_err).fold(0.0f64, f64::max);
        let degree = runs[0].degree;
        let sets = binomial(cfg.n, degree);
        let markov = 1.0 / (sets * 4.0 * cfg.acc_band * cfg.acc_band);
        let criteria = vec![
            Criterion::at_most(
                criteria::ILLEGAL_STEPS,
                0.0,
                violations,
                &format!(
                    "counted by perturb_bounded; the label-blind answer is legal at every step: Hoeffding over {count:.0} (target, step, coordinate) triples with the exact Δ_t bounds P(any violation) ≤ {p_any:.1e} at b = {b}, ρ = {rho}"
                ),
            ),
            Criterion::at_most(
                criteria::MAX_DISTANCE,
                limit_d,
                max_d,
                &format!(
                    "D_t ≤ Δ_t + dev_t; Bernstein with the exact per-step largest sd and range 2, union over the {count:.0} triples at failure probability δ = {:e}",
                    cfg.delta
                ),
            ),
            Criterion::at_most(
                criteria::NULL_GAP,
                rho - eps_h,
                delta_s,
                &format!(
                    "the coupling is guaranteed (probability ≥ 1 − δ) while Δ_S ≤ ρ − ε_H, ε_H = √(2 ln(2·{count:.0}/δ)/b) = {eps_h:.3}; Parseval leaves a degree-{} coefficient tiny",
                    degree
                ),
            ),
            Criterion::at_least(
                criteria::MIN_MOVE,
                cfg.min_move,
                min_move,
                "the model must really move, or not learning is vacuous (design: freezing pitfall)",
            ),
            Criterion::at_most(
                criteria::DIFFERENT_PREDICTORS,
                0.0,
                differing,
                "label-blind updates: the trajectory cannot depend on the target, so the parameters agree bit for bit",
            ),
            Criterion::at_most(
                criteria::ACCURACY_GAP,
                cfg.acc_band,
                acc_dev,
                &format!(
                    "accuracy = (1 + ĥ(S))/2 with E_S[ĥ(S)²] ≤ 1/C({}, {}) for a target-independent h: Markov gives P(|accuracy − 1/2| > band) ≤ {markov:.3} per target",
                    cfg.n, degree
                ),
            ),
            Criterion::at_most(
                criteria::ACCURACY_FOURIER_ERROR,
                1e-12,
                fourier_err,
                "exact identity; the FWHT in f64 over 2^n points rounds far below 1e-12",
            ),
            Criterion::at_most(
                criteria::PARSEVAL_ERROR,
                1e-10,
                parseval,
                "Σ_S ê_c(S)² = E[e_c²] exactly; f64 summation of 2^n terms rounds far below 1e-10",
            ),
            Criterion::at_most(
                criteria::FOURIER_GRADIENT_ERROR,
                1e-12,
                coef_err,
                "the signal the oracle hides is exactly a Fourier coefficient of e_c (identity, f64 round-off only)",
            ),
        ];
        let mut series = Vec::new();
        for (i, r) in runs.iter().enumerate() {
            let t: Vec<f64> = (0..r.d.len()).map(|x| x as f64).collect();
            series.push(Series::line(
                &format!("D_t, target {i}"),
                t.clone(),
                r.d.clone(),
                Role::Measured,
            ));
            series.push(Series::line(
                &format!("Δ_t + Bernstein bound, target {i}"),
                t,
                r.delta
                    .iter()
                    .zip(&r.sd)
                    .map(|(&dl, &s)| dl + bern(s))
                    .collect(),
                Role::Prediction,
            ));
        }
        let t: Vec<f64> = (0..steps).map(|x| x as f64).collect();
        series.push(Series::line(
            "ρ",
            t.clone(),
            vec![rho; steps],
            Role::Reference,
        ));
        let notes = vec![
            format!(
                "b = {b}, ρ = {rho}, b ρ² = {:.2}; violation rate {:.1}% of {} steps; steps with D_t > ρ in f64: {f64_violations}",
                b * rho * rho,
                100.0 * violations / (steps as f64 * k),
                steps as f64 * k
            ),
            format!(
                "accuracies {:?}; ĥ(S) {:?}",
                runs.iter().map(|r| r.accuracy).collect::<Vec<_>>(),
                runs.iter().map(|r| r.h_hat).collect::<Vec<_>>()
            ),
            format!(
                "targets S (bit masks) {:?}; ‖w_T − w_0‖ {:?}",
                runs.iter().map(|r| r.s).collect::<Vec<_>>(),
                runs.iter().map(|r| r.moved).collect::<Vec<_>>()
            ),
        ];
        Scored {
            criteria,
            series,
            notes,
        }
    }
}

const SQ_N1: Control = Control {
    id: "N1",
    description: "premise removed: b = nc_batch (b ρ² small), so the minibatch noise exceeds ρ and the label-blind answer is illegal",
};

const SQ_N2: Control = Control {
    id: "N2",
    description: "premise removed: a sparse target (|S| = nc_degree) carries a large Fourier coefficient ê_c(S), so even at large b the label-blind answer is more than ρ from the true gradient",
};

impl Check for SqLabelBlind {
    type Config = SqConfig;
    const ID: CheckId = CheckId {
        name: "sgd-precision/sq-label-blind",
        paper: PAPER,
        claim: "When b ρ² is large, the label-blind gradient is a legal ρ-approximate minibatch gradient at every step, so SGD's trajectory is independent of a dense parity target and cannot learn it.",
    };
    const CONTROLS: &'static [Control] = &[SQ_N1, SQ_N2];

    fn run(cfg: &SqConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let seed = ctx.seed(cfg.seed);
        let kk = cfg.targets;
        let ax = |c: &str| Axes {
            title: format!("{} ({c}): distance of the label-blind answer", id.name),
            x_label: "step t".into(),
            y_label: "‖g_null − g_batch‖_∞".into(),
            log_x: false,
            log_y: false,
        };
        let cases = [
            (cfg.batch, cfg.steps, cfg.degree),
            (cfg.nc_batch, cfg.nc_steps, cfg.degree),
            (cfg.batch, cfg.nc_steps, cfg.nc_degree),
        ];
        let (runs, sec) = timed(|| {
            ctx.map(3 * kk, |i| {
                let (c, k) = (i / kk, i % kk);
                sq_run(cfg, seed, k, cases[c], (100 * (c + 1) + k) as u32)
            })
        });
        let share = sec / 3.0;
        let (r, s) = timed(|| Self::score(cfg, &runs[..kk]));
        let mut out = vec![r.into_record(
            id,
            Case::positive("b ρ² large: label-blind SGD against dense parities"),
            s + share,
            ax("positive"),
        )];
        let (r, s) = timed(|| Self::score(cfg, &runs[kk..2 * kk]));
        out.push(r.into_record(id, Case::control(&SQ_N1), s + share, ax("N1")));
        let (r, s) = timed(|| Self::score(cfg, &runs[2 * kk..]));
        out.push(r.into_record(id, Case::control(&SQ_N2), s + share, ax("N2")));
        out
    }
}

// ------------------------------------------------------------------ SQP-2

check_config! {
    /// Configuration of `sgd-precision/pac-extraction`.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PacConfig {
        /// Input bits n (at most 64).
        n: usize = 64, Range::int(1, 64);
        /// Minibatch size b (a power of two).
        batch: usize = 8, Range::int(1, 1 << 16);
        /// Precision ρ of the positive case.
        rho: f64 = 0.05, Range::real(1e-9, 1.0);
        /// Steps (memory rows) T.
        steps: usize = 300, Range::int(1, 1_000_000);
        /// Independent seeds (targets).
        seeds: usize = 20, Range::int(1, 10_000);
        /// Base seed.
        seed: u64 = 11, Range::int(0, 1 << 53);
        /// Seeds allowed to miss exact recovery.
        max_failures: usize = 1, Range::int(0, 10_000);
        /// Band of the mean decodable-row count, in standard errors.
        sigmas: f64 = 3.0, Range::real(0.5, 20.0);
        /// Control N1: precision with b ρ > 1/2.
        nc_rho: f64 = 0.075, Range::real(1e-9, 1.0);
    }
}

impl CheckConfig for PacConfig {
    fn validate(&self) -> Result<(), String> {
        if !self.batch.is_power_of_two() {
            return Err(format!(
                "`batch` = {} must be a power of two (the filter passes with probability 2^-k = 1/b)",
                self.batch
            ));
        }
        if self.batch.trailing_zeros() as usize > self.n {
            return Err(format!(
                "log2(`batch`) = {} must be at most `n` = {}",
                self.batch.trailing_zeros(),
                self.n
            ));
        }
        if self.batch as f64 * self.rho >= 0.5 {
            return Err(format!(
                "`batch` × `rho` = {} must be below 1/2 (the positive case's premise)",
                self.batch as f64 * self.rho
            ));
        }
        if self.batch as f64 * self.nc_rho <= 0.5 {
            return Err(format!(
                "`batch` × `nc_rho` = {} must exceed 1/2 (control N1 crosses the threshold)",
                self.batch as f64 * self.nc_rho
            ));
        }
        if self.max_failures > self.seeds {
            return Err("`max_failures` must be at most `seeds`".into());
        }
        Ok(())
    }
}

/// The adversary of SQP-2: moves every entry towards magnitude `1/(2b)` (the midpoint between "no
/// sample" and "one sample"), by at most ρ.
struct Midpoint {
    half: f32,
}

impl Perturbation for Midpoint {
    fn delta(&mut self, _index: usize, grad: f32, rho: f32) -> f32 {
        let target = if grad < 0.0 { -self.half } else { self.half };
        (target - grad).clamp(-rho, rho)
    }
}

/// Solves `A s = y` over GF(2) (rows: (bits of x, label bit)); `Some(s)` iff the rank is `n`.
fn gf2_solve(rows: &[(u64, bool)], n: usize) -> Option<u64> {
    let mut m: Vec<(u64, bool)> = rows.to_vec();
    // Full rank needs a pivot in every column; pivot `col` then sits in row `col`.
    for col in 0..n {
        let bit = 1u64 << col;
        let pr = (col..m.len()).find(|&i| m[i].0 & bit != 0)?;
        m.swap(col, pr);
        let (pv, py) = m[col];
        for (i, row) in m.iter_mut().enumerate() {
            if i != col && row.0 & bit != 0 {
                row.0 ^= pv;
                row.1 ^= py;
            }
        }
    }
    let mut s = 0u64;
    for (col, row) in m.iter().take(n).enumerate() {
        if row.1 {
            s |= 1 << col;
        }
    }
    Some(s)
}

/// One extraction run.
#[derive(Clone, Debug)]
pub struct PacRun {
    /// Rows that decoded.
    pub decoded: usize,
    /// Decoded rows that are not exactly the one passing sample.
    pub wrong: usize,
    /// Rows with exactly one passing sample.
    pub single: usize,
    /// S-hat = S.
    pub exact: bool,
    /// Entries the adversary would have moved by more than ρ (must be 0).
    pub clamped: usize,
}

/// Runs the gadget with precision `rho` on seed index `i`.
pub fn pac_run(cfg: &PacConfig, seed: u64, i: usize, rho: f64) -> PacRun {
    let (n, b) = (cfg.n, cfg.batch);
    let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    let mut rng = numerics::stream(seed, i as u32);
    let s = rng.next_u64() & mask;
    let k = b.trailing_zeros() as usize;
    let lr = Gd::new(1.0f32);
    let mut adv = Midpoint {
        half: (0.5 / b as f64) as f32,
    };
    let (mut rows, mut wrong, mut single, mut clamped) = (Vec::new(), 0, 0, 0);
    let mut memory = vec![0.0f32; n + 1];
    let mut g = vec![0.0f32; n + 1];
    for _ in 0..cfg.steps {
        let filter = random_subset(&mut rng, n, k);
        g.iter_mut().for_each(|v| *v = 0.0);
        let mut passed = Vec::new();
        for _ in 0..b {
            let x = rng.next_u64() & mask;
            if x & filter == 0 {
                let y = parity(x, s);
                passed.push(x);
                for (j, gj) in g[..n].iter_mut().enumerate() {
                    *gj -= if (x >> j) & 1 == 1 { -1.0 } else { 1.0 };
                }
                g[n] -= y as f32;
            }
        }
        vector::scale(1.0 / b as f32, &mut g);
        clamped += perturb_bounded(rho as f32, &mut g, &mut adv).expect("ρ > 0");
        // SGD with learning rate 1 on a fresh memory row (starts at 0).
        memory.iter_mut().for_each(|v| *v = 0.0);
        lr.step(1, &mut memory, &g, &mut []).expect("valid step");
        // Read-out: v = b M_t; decodable iff every ||v_j| − 1| < 1/2.
        let v: Vec<f64> = memory.iter().map(|&m| b as f64 * m as f64).collect();
        if passed.len() == 1 {
            single += 1;
        }
        if v.iter().all(|&e| (e.abs() - 1.0).abs() < 0.5) {
            let mut x = 0u64;
            for (j, &e) in v[..n].iter().enumerate() {
                if e < 0.0 {
                    x |= 1 << j;
                }
            }
            let y = v[n] < 0.0;
            if passed.len() != 1 || passed[0] != x || (parity(x, s) < 0.0) != y {
                wrong += 1;
            }
            rows.push((x, y));
        }
    }
    let exact = gf2_solve(&rows, n) == Some(s);
    PacRun {
        decoded: rows.len(),
        wrong,
        single,
        exact,
        clamped,
    }
}

/// `sgd-precision/pac-extraction`.
pub struct PacExtraction;

impl PacExtraction {
    /// The verdict over the seeds of one precision `rho`.
    pub fn score(cfg: &PacConfig, runs: &[PacRun], rho: f64) -> Scored {
        let b = cfg.batch as f64;
        let t = cfg.steps as f64;
        let q = (1.0 - 1.0 / b).powf(b - 1.0);
        let mean_pred = t * q;
        let se = (t * q * (1.0 - q) / runs.len() as f64).sqrt();
        let exact = runs.iter().filter(|r| r.exact).count() as f64;
        let mean_rows = runs.iter().map(|r| r.decoded as f64).sum::<f64>() / runs.len() as f64;
        let wrong = runs.iter().map(|r| r.wrong).sum::<usize>() as f64;
        let criteria = vec![
            Criterion::at_least(
                criteria::EXACT_RECOVERIES,
                (runs.len() - cfg.max_failures.min(runs.len())) as f64,
                exact,
                &format!(
                    "with b ρ < 1/2 every single-sample row decodes; ~{mean_pred:.0} such rows make a rank deficiency in {} unknowns very unlikely (≈ 2^-(rows − n)); {} seed(s) of slack",
                    cfg.n, cfg.max_failures
                ),
            ),
            Criterion::new(
                criteria::MEAN_DECODABLE_ROWS,
                mean_pred,
                mean_rows,
                cfg.sigmas * se,
                &format!(
                    "rows with exactly one passing sample ~ Binomial(T, (1 − 1/b)^(b−1) = {q:.4}); {}σ of the mean over {} seeds",
                    cfg.sigmas,
                    runs.len()
                ),
            ),
            Criterion::at_most(
                criteria::WRONG_ROWS,
                0.0,
                wrong,
                "a decoded row is exactly the one passing sample: ρ-intervals around entries 0, ±1/b, ±2/b, … are disjoint iff b ρ < 1/2, and two or more passing samples give |v| ≥ 2 − b ρ on the filter coordinates",
            ),
        ];
        let x: Vec<f64> = (0..runs.len()).map(|i| i as f64).collect();
        let series = vec![
            Series::points(
                "decoded rows per seed",
                x.clone(),
                runs.iter().map(|r| r.decoded as f64).collect(),
                Role::Measured,
            ),
            Series::points(
                "single-sample rows per seed",
                x.clone(),
                runs.iter().map(|r| r.single as f64).collect(),
                Role::Reference,
            ),
            Series::line(
                "T (1 − 1/b)^(b−1)",
                x,
                vec![mean_pred; runs.len()],
                Role::Prediction,
            ),
        ];
        let notes = vec![
            format!(
                "b = {b}, ρ = {rho}, b ρ = {:.3}; exact recoveries {exact}/{}; mean single-sample rows {:.1}",
                b * rho,
                runs.len(),
                runs.iter().map(|r| r.single as f64).sum::<f64>() / runs.len() as f64
            ),
            format!(
                "adversary moves that perturb_bounded had to clamp: {} (the adversary stays within ρ)",
                runs.iter().map(|r| r.clamped).sum::<usize>()
            ),
        ];
        Scored {
            criteria,
            series,
            notes,
        }
    }
}

const PAC_N1: Control = Control {
    id: "N1",
    description: "precision too coarse: b ρ = b·nc_rho > 1/2, the adversary maps every entry to magnitude 1/(2b) and no sample can be read back",
};

impl Check for PacExtraction {
    type Config = PacConfig;
    const ID: CheckId = CheckId {
        name: "sgd-precision/pac-extraction",
        paper: PAPER,
        claim: "When b ρ < 1/2, single samples can be read exactly out of ρ-approximate minibatch gradients under any adversary, and Gaussian elimination on them recovers a dense 64-bit parity exactly.",
    };
    const CONTROLS: &'static [Control] = &[PAC_N1];

    fn run(cfg: &PacConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let seed = ctx.seed(cfg.seed);
        let ax = |c: &str| Axes {
            title: format!("{} ({c}): decoded memory rows", id.name),
            x_label: "seed".into(),
            y_label: "rows".into(),
            log_x: false,
            log_y: false,
        };
        let mut out = Vec::new();
        for (rho, case) in [
            (
                cfg.rho,
                Case::positive("b ρ < 1/2: sample extraction through ρ-approximate gradients"),
            ),
            (cfg.nc_rho, Case::control(&PAC_N1)),
        ] {
            let (r, s) = timed(|| {
                let runs = ctx.map(cfg.seeds, |i| pac_run(cfg, seed, i, rho));
                Self::score(cfg, &runs, rho)
            });
            let label = case.id.clone();
            out.push(r.into_record(id, case, s, ax(&label)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fwht_of_a_parity_is_a_delta() {
        let s = 0b1011u64;
        let mut v: Vec<f64> = (0..16u64).map(|u| parity(u, s)).collect();
        fwht_normalized(&mut v);
        for (i, c) in v.iter().enumerate() {
            assert_eq!(*c, if i as u64 == s { 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn gf2_recovers_a_parity() {
        let mut rng = numerics::stream(3, 0);
        let s = rng.next_u64() & 0xffff;
        let rows: Vec<(u64, bool)> = (0..40)
            .map(|_| {
                let x = rng.next_u64() & 0xffff;
                (x, parity(x, s) < 0.0)
            })
            .collect();
        assert_eq!(gf2_solve(&rows, 16), Some(s));
        assert_eq!(gf2_solve(&rows[..8], 16), None);
    }
}
