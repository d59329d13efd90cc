//! Amir, Carmon, Koren, Livni, "Never Go Full Batch (in Stochastic Convex Optimization)"
//! (NeurIPS 2021, arXiv:2107.00469); design in `docs/checks/never-full-batch.md`.
//!
//! # Instance (the design's small-scale instantiation of the AKL21 mechanism)
//! `w = (u, x)`, `u ∈ R^d`, `x ∈ R`, feasible set the unit ball (exact projection by rescaling).
//! A sample `z ∈ {0,1}^d` has i.i.d. Bernoulli(p) coordinates and
//! `f(w, z) = ‖z ⊙ max(u, 0)‖₂ + max{0, maxᵢ(−uᵢ)} + max{D − x, κ(x − D)}`, with `D ~ U[d_lo, d_hi]`
//! per replicate; the population optimum is `w★ = (0, D)`, `F★ = 0`.
//!
//! The subgradient oracle is valid everywhere and, on ties of Nemirovski's function, walks onto a
//! new coordinate: for full-batch GD the smallest coordinate of `I_S` (certified by no sample of
//! S) with `u_j = 0`, for one-pass SGD the smallest coordinate with `u_j = 0`. Every returned
//! piece is verified at every call against the subgradient inequality's sufficient conditions
//! ([`verify_g`], [`verify_n`], [`verify_hinge`]); a violation panics, which fails the run loudly,
//! and these are `assert!`s, never `debug_assert!`s, so they run in release builds too. The sets
//! of negative and zero coordinates the N oracle reads are audited against a full scan of u every
//! 256 steps.
//!
//! # Predictions (design, "Prediction for GD")
//! While the N tie-break finds free coordinates in `I_S`, each GD step adds `η` to a new one and
//! the empirical risk is blind to it; the averaged iterate has coordinates `η(T − s + 1)/T`,
//! `s = 1..K`, `K = min(T, |I_S|)`, so `E g(ū, z) ≈ η A_K` with
//! `A_K = √p · √(Σ_{s≤K} ((T − s + 1)/T)²)`, and the hinge lags by `B/η`, `B = E[D²]/(2T)`.
//! Tuned over η: `excess_min ≈ 2√(A_K B) ∝ T^(−1/4)` when `K = T`. One-pass SGD obeys the
//! online-to-batch bound `(E[D²]/(2c) + c(4 + κ²)/2)/√T` at `η = c/√T`, i.e. `T^(−1/2)`.
//!
//! # Probe options (`gd-rate` keys `last_iterate`, `l2`)
//! Last-iterate and L2-regularised full-batch GD: this instance is not hard for them (the derived
//! prediction is `T^(−1/2)`), so with either option the first record is a probe expected to FAIL
//! NF-1's criterion; `l2` is accepted only where that prediction holds. See the doc, "Probe
//! options".
//!
//! # Cost
//! `u` is stored sparsely (only touched coordinates, in the order touched) as `w = c·v` with a
//! global scale `c` (projection is O(1)), and the uniform iterate average is accumulated lazily
//! per coordinate from prefix sums of `c`. Each update applies the crate's `Gd` rule to the
//! gathered nonzero gradient entries. Population risk: `M` fresh samples on `supp(ū)`
//! (common random numbers across η and replicates), `E g` by the kernels' `dot`.

use crate::check::{timed, Check, Ctx};
use crate::check_config;
use crate::config::{CheckConfig, Range};
use crate::numerics::{self, loglog_fit, mean, Rng};
use crate::record::{Axes, Case, CheckId, Control, Criterion, Record, Role, Scored, Series};
use descent_kernels::random::uniform01;
use descent_kernels::Rule;
use descent_kernels::{vector, Gd};
use rand_core::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// The keys of this module's criteria: what tests and tools look a criterion up by; the
/// display name is the key's label plus any qualifiers.
pub mod criteria {
    use crate::record::CriterionKey;

    /// Log-log slope of the tuned population excess against T.
    pub const EXCESS_SLOPE: CriterionKey = CriterionKey::new("slope of log excess vs log T");
    /// Excess over the bound 2√(A_K·B), one per T or n (qualified `T=…` or `n=…`).
    pub const EXCESS_OVER_BOUND: CriterionKey = CriterionKey::new("excess / 2√(A_K·B)");
    /// How many T have the tuned η at an edge of the grid.
    pub const EDGE_ARGMINS: CriterionKey =
        CriterionKey::new("η argmin at a grid edge (count over T)");
    /// Largest one-pass excess over its online-to-batch bound.
    pub const ONLINE_TO_BATCH_RATIO: CriterionKey =
        CriterionKey::new("max over T of excess / online-to-batch bound");
    /// Exponent in T of the one-pass over full-batch excess.
    pub const ONE_PASS_OVER_FULL_BATCH_EXPONENT: CriterionKey =
        CriterionKey::new("exponent of (one-pass / full-batch) excess in T");
    /// Largest ratio of the excess at consecutive sample sizes.
    pub const EXCESS_GROWTH_IN_N: CriterionKey =
        CriterionKey::new("max excess(n_next)/excess(n) (non-increasing in n)");
}

/// Citation shared by the checks of this paper.
pub const PAPER: &str = "I. Amir, Y. Carmon, T. Koren, R. Livni, \"Never Go Full Batch (in \
Stochastic Convex Optimization)\", NeurIPS 2021, arXiv:2107.00469 (GD mechanism: Amir, Koren, \
Livni, COLT 2021; constants as restated in Livni, NeurIPS 2024)";

// =================================================================== oracle checks

/// Relative round-off slack of the inner-product identities checked below.
const ROUND: f64 = 1e-12;

/// Verifies `v ∈ ∂g(u)` for `g(u) = ‖z ⊙ u₊‖`, `v` given on the coordinates `idx` (zero
/// elsewhere) with `u` values `u_idx`, `g_val = g(u)`, and `z` equal to 1 on `zset`.
/// Sufficient: `v ≥ 0`, `supp v ⊆ {z = 1}`, `‖v‖ ≤ 1`, `<v, u> = g(u)`; then for every w,
/// `g(w) ≥ <v, (z⊙w)₊> ≥ <v, w>` and `g(u) = <v, u>`. Panics (in every build) if not.
pub fn verify_g(v: &[f64], u_idx: &[f64], in_z: &[bool], g_val: f64, step: usize) {
    let (mut nrm2, mut inner) = (0.0, 0.0);
    for ((&vi, &ui), &zi) in v.iter().zip(u_idx).zip(in_z) {
        assert!(
            vi >= 0.0 && (vi == 0.0 || zi),
            "never-full-batch: invalid g-subgradient at step {step}: entry {vi} outside z ⊙ u₊'s support or negative"
        );
        nrm2 += vi * vi;
        inner += vi * ui;
    }
    assert!(
        nrm2 <= 1.0 + ROUND,
        "never-full-batch: invalid g-subgradient at step {step}: ‖v‖² = {nrm2} > 1"
    );
    assert!(
        (inner - g_val).abs() <= ROUND * (1.0 + g_val),
        "never-full-batch: invalid g-subgradient at step {step}: <v,u> = {inner} ≠ g(u) = {g_val}"
    );
}

/// Verifies `−e_j ∈ ∂N(u)` (or `0 ∈ ∂N(u)` when `j` is `None`) for Nemirovski's function
/// `N(u) = max{0, maxᵢ(−uᵢ)}` with value `n_val`, given `u_j`. Sufficient: the vector is `−λ` with
/// `λ ≥ 0`, `Σλ ≤ 1` (true for `−e_j` and 0), and `<v, u> = N(u)` exactly; then
/// `N(w) ≥ <v, w>` for every w. For `−e_j` at `N(u) = 0` this is the design's assertion `u_j == 0`.
pub fn verify_n(ret: Option<f64>, n_val: f64, step: usize) {
    let inner = ret.map_or(0.0, |uj| -uj);
    assert!(
        inner == n_val,
        "never-full-batch: invalid N-subgradient at step {step}: <v,u> = {inner} ≠ N(u) = {n_val} (returned −e_j with u_j = {ret:?})"
    );
}

/// Verifies `s ∈ ∂ℓ_D(x)` for `ℓ_D(x) = max{D − x, κ(x − D)}`: `s ∈ [−1, κ]` and
/// `s (x − D) = ℓ_D(x)`.
pub fn verify_hinge(s: f64, x: f64, target: f64, kappa: f64, step: usize) {
    let val = (target - x).max(kappa * (x - target));
    assert!(
        (-1.0..=kappa).contains(&s) && (s * (x - target) - val).abs() <= ROUND * (1.0 + val),
        "never-full-batch: invalid hinge subgradient at step {step}: {s} at x = {x}, D = {target}"
    );
}

// =================================================================== instance and training

/// Where the gradients come from.
pub enum Data<'a> {
    /// Full batch on a fixed sample S (bitsets of d bits), with `I_S` sorted and as a bitset.
    FullBatch(&'a Sample),
    /// One pass: a fresh sample each step, drawn lazily on the support of u.
    OnePass {
        /// Dimension d.
        d: usize,
        /// Stream the fresh samples come from.
        rng: Rng,
    },
}

/// The N tie-break at `N(u) = 0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// Walk onto the smallest free coordinate with `u_j = 0` (the design's sample-dependent
    /// tie-break for GD; any coordinate for SGD).
    Adversarial,
    /// Return 0, the minimum-norm subgradient (control NC-b).
    Benign,
}

/// A drawn sample S.
pub struct Sample {
    /// Dimension d.
    pub d: usize,
    /// Sample bitsets, n × ⌈d/64⌉ words.
    pub bits: Vec<Vec<u64>>,
    /// `I_S`: coordinates certified by no sample, ascending.
    pub free: Vec<usize>,
}

impl Sample {
    /// Draws n samples of d Bernoulli(p) bits from `rng`.
    pub fn draw(n: usize, d: usize, p: f64, rng: &mut Rng) -> Sample {
        let words = d.div_ceil(64);
        let bits: Vec<Vec<u64>> = (0..n)
            .map(|_| {
                let mut b = vec![0u64; words];
                if p == 0.5 {
                    // Each bit of a uniform 64-bit word is an independent Bernoulli(1/2).
                    for w in b.iter_mut() {
                        *w = rng.next_u64();
                    }
                    if !d.is_multiple_of(64) {
                        b[words - 1] &= (1u64 << (d % 64)) - 1;
                    }
                } else {
                    for i in 0..d {
                        if uniform01(rng) < p {
                            b[i / 64] |= 1 << (i % 64);
                        }
                    }
                }
                b
            })
            .collect();
        let free = (0..d)
            .filter(|&i| bits.iter().all(|b| b[i / 64] >> (i % 64) & 1 == 0))
            .collect();
        Sample { d, bits, free }
    }
    fn bit(&self, s: usize, i: usize) -> bool {
        self.bits[s][i / 64] >> (i % 64) & 1 == 1
    }
}

/// Parameters of one run.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// Bernoulli parameter p.
    pub p: f64,
    /// Hinge slope κ.
    pub kappa: f64,
    /// Hinge location D.
    pub target: f64,
    /// N tie-break.
    pub oracle: Oracle,
    /// Step η.
    pub eta: f64,
    /// Iterations T.
    pub steps: usize,
    /// Output the last iterate `w_T` instead of the uniform average (full-batch probe option).
    pub last_iterate: bool,
    /// L2 regularisation `λ`: the step is `w ← Proj(w − η(g + λw))`, i.e. `(1 − ηλ)w − ηg`
    /// (needs `ηλ < 1`). 0 is plain GD.
    pub l2: f64,
}

/// The averaged output of a run.
#[derive(Clone, Debug)]
pub struct Output {
    /// ū on the touched coordinates, in the order touched.
    pub u_bar: Vec<f64>,
    /// x̄.
    pub x_bar: f64,
    /// Oracle calls verified (one per step, each with its g, N and hinge pieces).
    pub verified: usize,
}

/// Projected subgradient descent with uniform iterate averaging from `w₀ = 0` (full batch or one
/// pass, per `data`), with the design's oracle, every call verified.
pub fn train(s: &Setup, data: &mut Data) -> Output {
    let t_max = s.steps;
    let d = match data {
        Data::FullBatch(smp) => smp.d,
        Data::OnePass { d, .. } => *d,
    };
    // Compact storage: index 0 is x, index 1 + k the k-th touched coordinate.
    let mut coord: Vec<usize> = Vec::with_capacity(t_max + 1);
    let mut pos: HashMap<usize, usize> = HashMap::new();
    let mut v: Vec<f64> = vec![0.0];
    let mut acc: Vec<f64> = vec![0.0];
    let mut mark: Vec<f64> = vec![0.0];
    let (mut c, mut sumsq, mut cpref) = (1.0f64, 0.0f64, 0.0f64);
    // Touched coordinates with u < 0 (compact index), and with u == 0 (coordinate index).
    let mut neg: BTreeSet<usize> = BTreeSet::new();
    let mut zero: BTreeSet<usize> = BTreeSet::new();
    // Per sample of S: compact indices of touched coordinates it certifies.
    let n_s = match data {
        Data::FullBatch(smp) => smp.bits.len(),
        Data::OnePass { .. } => 1,
    };
    let mut zlist: Vec<Vec<usize>> = vec![Vec::new(); n_s];
    let mut next_free = 0usize; // pointer into I_S (GD) or 0..d (SGD)
    let mut grad: HashMap<usize, f64> = HashMap::new();
    let (mut buf_v, mut buf_g, mut vz, mut uz, mut inz) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut keys, mut pieces): (Vec<usize>, Vec<(usize, f64)>) = (Vec::new(), Vec::new());
    for t in 1..=t_max {
        grad.clear();
        // ---- g part: mean over the batch of z ⊙ u₊ / ‖z ⊙ u₊‖.
        if let Data::OnePass { rng, .. } = data {
            zlist[0].clear();
            for k in 1..v.len() {
                if uniform01(rng) < s.p {
                    zlist[0].push(k);
                }
            }
        }
        for (sidx, zl) in zlist.iter().enumerate() {
            let g2: f64 = zl.iter().map(|&k| (c * v[k]).max(0.0).powi(2)).sum();
            let g_val = g2.sqrt();
            // The returned piece is sparse: its entries on the touched coordinates of this
            // sample's support (zero elsewhere). Each entry carries u and z read back
            // independently (the sample's bit, or the drawn list), then the piece is checked.
            pieces.clear();
            if g_val > 0.0 {
                for &k in zl {
                    let u = c * v[k];
                    if u > 0.0 {
                        pieces.push((k, u / g_val));
                    }
                }
            }
            vz.clear();
            uz.clear();
            inz.clear();
            for &(k, g) in &pieces {
                vz.push(g);
                uz.push(c * v[k]);
                inz.push(match data {
                    Data::FullBatch(smp) => smp.bit(sidx, coord[k - 1]),
                    Data::OnePass { .. } => zl.binary_search(&k).is_ok(),
                });
            }
            verify_g(&vz, &uz, &inz, g_val, t);
            for &(k, g) in &pieces {
                *grad.entry(k).or_insert(0.0) += g / n_s as f64;
            }
        }
        // ---- N part.
        let n_val = neg.iter().map(|&k| -c * v[k]).fold(0.0f64, |m, x| m.max(x));
        let ret: Option<usize> = if n_val > 0.0 {
            // Smallest coordinate index among the maximizers.
            neg.iter()
                .filter(|&&k| -c * v[k] == n_val)
                .map(|&k| coord[k - 1])
                .min()
        } else if s.oracle == Oracle::Benign {
            None
        } else {
            // Smallest candidate with u_j = 0: a touched zero, or the next untouched one.
            let (in_c, untouched): (Box<dyn Fn(usize) -> bool>, Option<usize>) = match data {
                Data::FullBatch(smp) => {
                    while next_free < smp.free.len() && pos.contains_key(&smp.free[next_free]) {
                        next_free += 1;
                    }
                    (
                        Box::new(|j| smp.bits.iter().all(|b| b[j / 64] >> (j % 64) & 1 == 0)),
                        smp.free.get(next_free).copied(),
                    )
                }
                Data::OnePass { d, .. } => {
                    while next_free < *d && pos.contains_key(&next_free) {
                        next_free += 1;
                    }
                    (Box::new(|_| true), (next_free < *d).then_some(next_free))
                }
            };
            let touched = zero.iter().copied().find(|&j| in_c(j));
            match (touched, untouched) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        // The value u_j the returned −e_j sees (0 for an untouched coordinate), verified.
        let uj = ret.map(|j| pos.get(&j).map_or(0.0, |&k| c * v[k]));
        verify_n(uj, n_val, t);
        let new_k = ret.map(|j| match pos.get(&j) {
            Some(&k) => k,
            None => {
                assert!(j < d, "never-full-batch: coordinate {j} outside R^{d}");
                let k = v.len();
                coord.push(j);
                pos.insert(j, k);
                v.push(0.0);
                acc.push(0.0);
                mark.push(cpref);
                zero.insert(j);
                if let Data::FullBatch(smp) = data {
                    for (sidx, zl) in zlist.iter_mut().enumerate() {
                        if smp.bit(sidx, j) {
                            zl.push(k);
                        }
                    }
                }
                k
            }
        });
        if let Some(k) = new_k {
            *grad.entry(k).or_insert(0.0) -= 1.0;
        }
        // ---- hinge part.
        let x = c * v[0];
        let sx = if x < s.target {
            -1.0
        } else if x > s.target {
            s.kappa
        } else {
            0.0
        };
        verify_hinge(sx, x, s.target, s.kappa, t);
        if sx != 0.0 {
            *grad.entry(0).or_insert(0.0) += sx;
        }
        // ---- L2: w ← (1 − ηλ)w is a change of the global scale only (signs unchanged, so the
        // N-oracle index sets stay valid); the sparse step below then uses the new c.
        if s.l2 > 0.0 {
            let shrink = 1.0 - s.eta * s.l2;
            assert!(shrink > 0.0, "never-full-batch: ηλ = {} ≥ 1", s.eta * s.l2);
            c *= shrink;
        }
        // ---- the step, w ← w − η g, i.e. v ← v − (η/c) g, on the gathered entries.
        keys.clear();
        keys.extend(grad.keys().copied());
        keys.sort_unstable();
        buf_v.clear();
        buf_g.clear();
        for &k in &keys {
            buf_v.push(v[k]);
            buf_g.push(grad[&k]);
        }
        Gd::new(s.eta / c)
            .step(1, &mut buf_v, &buf_g, &mut [])
            .expect("valid step");
        for (&k, &nv) in keys.iter().zip(&buf_v) {
            let old = v[k];
            acc[k] += old * (cpref - mark[k]);
            mark[k] = cpref;
            sumsq += nv * nv - old * old;
            v[k] = nv;
            if k > 0 {
                let j = coord[k - 1];
                if nv < 0.0 {
                    neg.insert(k);
                } else {
                    neg.remove(&k);
                }
                if nv == 0.0 {
                    zero.insert(j);
                } else {
                    zero.remove(&j);
                }
            }
        }
        if t % 256 == 0 {
            sumsq = vector::sum_squares(&v);
            // Audit the index sets the N oracle reads N(u) and the zero ties from, against a
            // full scan of u (untouched coordinates are exactly 0).
            for k in 1..v.len() {
                assert!(
                    (v[k] < 0.0) == neg.contains(&k)
                        && (v[k] == 0.0) == zero.contains(&coord[k - 1]),
                    "never-full-batch: N-oracle index sets out of date at step {t}, coordinate {}",
                    coord[k - 1]
                );
            }
        }
        // ---- exact projection onto the unit ball.
        let norm2 = c * c * sumsq;
        if norm2 > 1.0 {
            c /= norm2.sqrt();
        }
        // Fold a small scale back into v (after flushing the lazy averages) so η/c stays finite.
        if c < 1e-6 {
            for k in 0..v.len() {
                acc[k] += v[k] * (cpref - mark[k]);
                mark[k] = cpref;
            }
            vector::scale(c, &mut v);
            // w = c·v is unchanged; every mark equals the prefix, so the lazy sums stay exact.
            c = 1.0;
            sumsq = vector::sum_squares(&v);
            for k in 1..v.len() {
                let j = coord[k - 1];
                if v[k] == 0.0 {
                    zero.insert(j);
                } else {
                    zero.remove(&j);
                }
                if v[k] < 0.0 {
                    neg.insert(k);
                } else {
                    neg.remove(&k);
                }
            }
        }
        cpref += c;
    }
    for k in 0..v.len() {
        acc[k] += v[k] * (cpref - mark[k]);
    }
    if s.last_iterate {
        return Output {
            x_bar: c * v[0],
            u_bar: v[1..].iter().map(|x| c * x).collect(),
            verified: t_max,
        };
    }
    let tf = t_max as f64;
    Output {
        x_bar: acc[0] / tf,
        u_bar: acc[1..].iter().map(|a| a / tf).collect(),
        verified: t_max,
    }
}

/// `M` fresh samples restricted to the first `k_max` touched coordinates, as 0/1 rows (common
/// random numbers: the same rows score every η and replicate).
pub fn fresh_masks(m: usize, k_max: usize, p: f64, rng: &mut Rng) -> Vec<f64> {
    (0..m * k_max)
        .map(|_| if uniform01(rng) < p { 1.0 } else { 0.0 })
        .collect()
}

/// Population excess `E_z g(ū, z) + N(ū) + ℓ_D(x̄)` (F★ = 0), `E_z` by the fresh rows.
pub fn excess(out: &Output, masks: &[f64], k_max: usize, target: f64, kappa: f64) -> f64 {
    let k = out.u_bar.len();
    assert!(
        k <= k_max,
        "more touched coordinates than fresh-sample columns"
    );
    let sq: Vec<f64> = out.u_bar.iter().map(|u| u.max(0.0).powi(2)).collect();
    let rows = masks.len() / k_max;
    let eg = if k == 0 {
        0.0
    } else {
        masks
            .chunks_exact(k_max)
            .map(|row| vector::dot(&row[..k], &sq).expect("lengths").sqrt())
            .sum::<f64>()
            / rows as f64
    };
    let nv = out.u_bar.iter().fold(0.0f64, |m, &u| m.max(-u));
    eg + nv + (target - out.x_bar).max(kappa * (out.x_bar - target))
}

/// `A_K = √p √(Σ_{s=1..K} ((T − s + 1)/T)²)`.
pub fn a_k(p: f64, k: usize, t: usize) -> f64 {
    let tf = t as f64;
    (p * (1..=k.min(t))
        .map(|s| ((tf - s as f64 + 1.0) / tf).powi(2))
        .sum::<f64>())
    .sqrt()
}

/// `E[D²]` for `D ~ U[lo, hi]`.
pub fn e_d2(lo: f64, hi: f64) -> f64 {
    (lo * lo + lo * hi + hi * hi) / 3.0
}

/// The η grid: `per_decade` points per decade on `[lo, hi]`, endpoints included.
pub fn eta_grid(lo: f64, hi: f64, per_decade: usize) -> Vec<f64> {
    let n = ((hi / lo).log10() * per_decade as f64).round() as usize;
    (0..=n)
        .map(|i| lo * 10f64.powf(i as f64 / per_decade as f64))
        .collect()
}

// =================================================================== tuned GD sweep

/// Shared instance parameters.
#[derive(Clone, Copy, Debug)]
struct Inst {
    p: f64,
    kappa: f64,
    d_lo: f64,
    d_hi: f64,
    mc: usize,
}

/// The full-batch method: averaged unregularised GD (the construction's target) or a probe
/// variant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Method {
    /// Output the last iterate instead of the average.
    pub last_iterate: bool,
    /// L2 regularisation λ.
    pub l2: f64,
}

impl Method {
    /// Whether this is a method the construction is not hard for (a probe).
    pub fn is_probe(&self) -> bool {
        self.last_iterate || self.l2 > 0.0
    }
    fn label(&self) -> String {
        match (self.last_iterate, self.l2 > 0.0) {
            (false, false) => "averaged GD".into(),
            (true, false) => "last-iterate GD".into(),
            (false, true) => format!("L2-regularised averaged GD (λ = {})", self.l2),
            (true, true) => format!("L2-regularised last-iterate GD (λ = {})", self.l2),
        }
    }
}

/// Tuned GD at one T for one sample size: mean excess over replicates at each η, with the
/// realized K of each replicate.
#[derive(Clone, Debug)]
pub struct Tuned {
    /// Iterations T.
    pub t: usize,
    /// Mean excess at each η of the grid.
    pub curve: Vec<f64>,
    /// Minimum over η.
    pub best: f64,
    /// Its grid index.
    pub arg: usize,
    /// Mean over replicates of `A_K` with the realized `K = min(T, |I_S|)`.
    pub a_mean: f64,
    /// Smallest realized |I_S|.
    pub min_free: usize,
    /// Mean over replicates of the realized D².
    pub d2_mean: f64,
    /// Oracle calls verified.
    pub verified: usize,
}

/// Runs full-batch GD at every (replicate, η) for `T = t`, sample size n, dimension d. Seeds:
/// replicate r draws S and D from stream `2r` of `seed`, the fresh rows come from stream `2R+1`.
#[allow(clippy::too_many_arguments)]
fn tuned_gd(
    inst: Inst,
    n: usize,
    d: usize,
    t: usize,
    etas: &[f64],
    reps: usize,
    oracle: Oracle,
    method: Method,
    seed: u64,
    ctx: &Ctx,
) -> Tuned {
    let draws: Vec<(Sample, f64)> = ctx.map(reps, |r| {
        let mut rng = numerics::stream(seed, 2 * r as u32);
        let target = inst.d_lo + (inst.d_hi - inst.d_lo) * uniform01(&mut rng);
        (Sample::draw(n, d, inst.p, &mut rng), target)
    });
    let masks = fresh_masks(
        inst.mc,
        t,
        inst.p,
        &mut numerics::stream(seed, 2 * reps as u32 + 1),
    );
    let runs: Vec<(f64, usize)> = ctx.map(etas.len() * reps, |i| {
        let (e, r) = (i / reps, i % reps);
        let (smp, target) = &draws[r];
        let setup = Setup {
            p: inst.p,
            kappa: inst.kappa,
            target: *target,
            oracle,
            eta: etas[e],
            steps: t,
            last_iterate: method.last_iterate,
            l2: method.l2,
        };
        let out = train(&setup, &mut Data::FullBatch(smp));
        (excess(&out, &masks, t, *target, inst.kappa), out.verified)
    });
    let curve: Vec<f64> = runs
        .chunks(reps)
        .map(|c| mean(&c.iter().map(|r| r.0).collect::<Vec<_>>()))
        .collect();
    let (arg, best) = curve
        .iter()
        .copied()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |m, (i, v)| if v < m.1 { (i, v) } else { m },
        );
    Tuned {
        t,
        best,
        arg,
        curve,
        a_mean: mean(
            &draws
                .iter()
                .map(|(s, _)| a_k(inst.p, s.free.len(), t))
                .collect::<Vec<_>>(),
        ),
        min_free: draws.iter().map(|(s, _)| s.free.len()).min().unwrap_or(0),
        d2_mean: mean(&draws.iter().map(|(_, t)| t * t).collect::<Vec<_>>()),
        verified: runs.iter().map(|r| r.1).sum(),
    }
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

// =================================================================== NF-1: GD rate

check_config! {
    /// Configuration of `never-full-batch/gd-rate` (design NF-1) and its controls.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GdRateConfig {
        /// Sample size n.
        n: usize = 6, Range::int(1, 64);
        /// Bernoulli parameter p.
        p: f64 = 0.5, in inst;
        /// log₂ of the dimension d.
        log2_d: usize = 19, Range::int(1, 26);
        /// Hinge slope κ.
        kappa: f64 = 2.0, in inst;
        /// D ~ U[d_lo, d_hi].
        d_lo: f64 = 0.4, in inst;
        /// See `d_lo`.
        d_hi: f64 = 0.5, in inst;
        /// Replicates (values of D, each with its own S).
        replicates: usize = 16, in inst;
        /// Iteration counts T.
        ts: Vec<usize> = vec![64, 256, 1024, 4096], Range::int(2, 1 << 16).list(3);
        /// η grid: smallest value.
        eta_min: f64 = 1e-4, in inst;
        /// η grid: largest value.
        eta_max: f64 = 1.0, in inst;
        /// η grid: points per decade.
        eta_per_decade: usize = 20, in inst;
        /// Fresh samples M for the population risk.
        mc_samples: usize = 256, in inst;
        /// Half-width of the slope band.
        tol_slope: f64 = 0.05, Range::real(0.0, 1.0);
        /// Smallest accepted measured/predicted ratio.
        ratio_lo: f64 = 0.95, Range::real(0.0, 10.0);
        /// Largest accepted measured/predicted ratio.
        ratio_hi: f64 = 1.15, Range::real(0.0, 10.0);
        /// Control NC-a: log₂ of the low dimension.
        nca_log2_d: usize = 5, Range::int(1, 26);
        /// NC-c (SGD): step constants c, η = c/√T.
        sgd_cs: Vec<f64> = vec![0.1, 0.2, 0.4, 0.8], Range::real(1e-4, 100.0).list(1);
        /// NC-c (SGD): replicates.
        // The design uses 4; at 4 the fitted SGD slope scattered from −0.49 to −0.44 over
        // seeds 0, 7, 123 (noise: at 16 it is −0.50, −0.48, −0.51), so 16 halve its SE.
        sgd_replicates: usize = 16, Range::int(1, 256);
        /// Probe option: output the last iterate instead of the uniform average (applies to the
        /// first case and to NC-a, NC-b). The construction is not hard for this method: see
        /// `docs/checks/never-full-batch.md`, "Probe options".
        last_iterate: bool = false, Range::int(0, 1);
        /// Probe option: L2 regularisation λ of full-batch GD (0 = none); requires `λ·eta_max < 1`
        /// and, when positive, `λ·min(ts)^(1/4) ≥ 2` (the regime where the paper's argument gives
        /// a prediction on this instance).
        l2: f64 = 0.0, Range::real(0.0, 100.0);
        /// Seed.
        seed: u64 = 1, in inst;
    }
}

/// Smallest accepted `λ·min(ts)^(1/4)` for the L2 probe (see `GdRateConfig::l2`).
const L2_CAP: f64 = 2.0;

/// Ranges shared by several configs of this module.
#[allow(non_upper_case_globals)]
mod inst {
    use super::*;
    pub const p: Range = Range::real(0.01, 0.99);
    pub const kappa: Range = Range::real(1.0, 10.0);
    pub const d_lo: Range = Range::real(0.01, 0.9);
    pub const d_hi: Range = Range::real(0.01, 0.9);
    pub const replicates: Range = Range::int(1, 256);
    pub const eta_min: Range = Range::real(1e-8, 10.0);
    pub const eta_max: Range = Range::real(1e-8, 10.0);
    pub const eta_per_decade: Range = Range::int(1, 200);
    pub const mc_samples: Range = Range::int(1, 100_000);
    pub const seed: Range = Range::int(0, 1 << 53);
}

/// The premise of the `T^(−1/4)` prediction: full-batch GD's overfitting walk adds `η` to a new
/// coordinate of `I_S` at every step, so `|I_S| ≥ T` at every `T` (`K = T`). `|I_S|` is
/// Binomial(d, (1 − p)^n); require its mean minus 4 standard deviations to reach `max(ts)`.
fn check_free_coordinates(n: usize, p: f64, log2_d: usize, t_max: usize) -> Result<(), String> {
    let d = (1u64 << log2_d) as f64;
    let q = (1.0 - p).powi(n as i32);
    let (mean, sd) = (d * q, (d * q * (1.0 - q)).sqrt());
    if mean - 4.0 * sd < t_max as f64 {
        return Err(format!(
            "E|I_S| = d·(1 − `p`)^`n` = {mean:.1} (sd {sd:.1}) with d = 2^`log2_d`: fewer than \
             max(`ts`) = {t_max} free coordinates within 4 sd, so full-batch GD runs out of \
             coordinates to overfit on before T and the T^(-1/4) prediction (which needs |I_S| ≥ T) \
             does not apply; raise `log2_d` or lower `n`, `p` or `ts`"
        ));
    }
    Ok(())
}

fn check_inst(d_lo: f64, d_hi: f64, eta_min: f64, eta_max: f64) -> Result<(), String> {
    if d_lo > d_hi {
        return Err("`d_lo` must be at most `d_hi`".into());
    }
    if eta_min >= eta_max {
        return Err("`eta_min` must be below `eta_max`".into());
    }
    Ok(())
}

impl CheckConfig for GdRateConfig {
    fn validate(&self) -> Result<(), String> {
        check_inst(self.d_lo, self.d_hi, self.eta_min, self.eta_max)?;
        check_free_coordinates(
            self.n,
            self.p,
            self.log2_d,
            self.ts.iter().copied().max().unwrap_or(0),
        )?;
        if self.l2 * self.eta_max >= 1.0 {
            return Err(format!(
                "`l2` · `eta_max` = {} must be below 1 (the L2 step multiplies w by 1 − ηλ)",
                self.l2 * self.eta_max
            ));
        }
        if self.l2 > 0.0 && self.l2 * (self.ts[0] as f64).powf(0.25) < L2_CAP {
            return Err(format!(
                "`l2` = {}: with λ·min(ts)^(1/4) = {:.3} < {L2_CAP} the regulariser does not cap the \
                 overfitting walk at every T (η*λT ≈ λT^(1/4)), so the run crosses over between the \
                 T^(-1/4) and T^(-1/2) regimes and neither this check nor the paper's argument on this \
                 instance predicts the curve; use λ = 0 or λ ≥ {:.3}",
                self.l2,
                self.l2 * (self.ts[0] as f64).powf(0.25),
                L2_CAP / (self.ts[0] as f64).powf(0.25)
            ));
        }
        if self.ratio_lo > self.ratio_hi {
            return Err("`ratio_lo` must be at most `ratio_hi`".into());
        }
        if self.ts.windows(2).any(|w| w[0] >= w[1]) {
            return Err("`ts` must be strictly increasing".into());
        }
        Ok(())
    }
}

impl GdRateConfig {
    /// The full-batch method the first case and NC-a, NC-b run.
    pub fn method(&self) -> Method {
        Method {
            last_iterate: self.last_iterate,
            l2: self.l2,
        }
    }
    fn inst(&self) -> Inst {
        Inst {
            p: self.p,
            kappa: self.kappa,
            d_lo: self.d_lo,
            d_hi: self.d_hi,
            mc: self.mc_samples,
        }
    }
    /// `2√(A_T B)` with K = T (d large enough): the claim's curve.
    fn claim(&self, t: usize) -> f64 {
        2.0 * (a_k(self.p, t, t) * e_d2(self.d_lo, self.d_hi) / (2.0 * t as f64)).sqrt()
    }
}

/// A measured excess-vs-T curve, from tuned GD or from SGD, with its per-T predictions (the
/// realized-K formula `2√(Ā_K B)` for GD, NaN-free).
#[derive(Clone, Debug)]
pub struct RateCurve {
    /// T values.
    pub ts: Vec<f64>,
    /// Measured min-over-η mean excess.
    pub measured: Vec<f64>,
    /// Per-T prediction `2√(Ā_K B)` from the realized |I_S|.
    pub predicted: Vec<f64>,
    /// Whether the η argmin sat at a grid edge, per T.
    pub edge: Vec<bool>,
    /// Notes.
    pub notes: Vec<String>,
}

/// NF-1: tuned full-batch GD's population excess decays as T^(−1/4) with constant 2√(A_T B).
pub struct GdRate;

impl GdRate {
    /// The verdict function of NF-1 (also of NC-a, NC-b, NC-c).
    pub fn score(cfg: &GdRateConfig, c: &RateCurve) -> Scored {
        let claim: Vec<f64> = cfg.ts.iter().map(|&t| cfg.claim(t)).collect();
        let pred_slope = loglog_fit(&c.ts, &claim).slope;
        let slope = if c.measured.iter().all(|&m| m > 0.0) {
            loglog_fit(&c.ts, &c.measured).slope
        } else {
            f64::NAN
        };
        let mut criteria = vec![Criterion::new(
            criteria::EXCESS_SLOPE,
            pred_slope,
            slope,
            cfg.tol_slope,
            "T-independent terms: MC SE < 0.5% and 16 D values give slope SE < 0.01; the O(η) hinge term (≤ +10% at small T, shrinking with T) tilts it by ≤ 0.03; design band [−0.30, −0.20]; the controls sit at −0.42 to −0.52",
        )];
        let mid = (cfg.ratio_lo + cfg.ratio_hi) / 2.0;
        let half = (cfg.ratio_hi - cfg.ratio_lo) / 2.0;
        for ((t, m), p) in c.ts.iter().zip(&c.measured).zip(&c.predicted) {
            criteria.push(Criterion::new(
                criteria::EXCESS_OVER_BOUND,
                mid,
                m / p,
                half,
                "band [ratio_lo, ratio_hi] (design): the omitted O(η) hinge oscillation shifts x̄ by O(η) (design calibration +1.5-3%, ≤ +10% at small T), grid quantization < 0.5% at 20 points/decade, Jensen on E√ < 1% below, MC SE < 0.5%; B uses the realized mean D² of the replicates",
            ).qualified(format_args!("T={t}")));
        }
        criteria.push(Criterion::at_most(
            criteria::EDGE_ARGMINS,
            0.0,
            c.edge.iter().filter(|&&e| e).count() as f64,
            "an argmin at the edge means the tuned minimum is not resolved by the grid",
        ));
        Scored {
            criteria,
            series: vec![
                Series::points(
                    "measured min_η excess",
                    c.ts.clone(),
                    c.measured.clone(),
                    Role::Measured,
                ),
                Series::line(
                    "2√(A_K·B), realized K",
                    c.ts.clone(),
                    c.predicted.clone(),
                    Role::Prediction,
                ),
                Series::line(
                    "claim 2√(A_T·B) ∝ T^(−1/4)",
                    c.ts.clone(),
                    claim,
                    Role::Reference,
                ),
            ],
            notes: c.notes.clone(),
        }
    }
}

/// The GD rate curve at sample size n, dimension 2^log2_d, with `oracle`.
fn gd_curve(
    cfg: &GdRateConfig,
    log2_d: usize,
    oracle: Oracle,
    method: Method,
    ctx: &Ctx,
) -> RateCurve {
    let etas = eta_grid(cfg.eta_min, cfg.eta_max, cfg.eta_per_decade);
    let mut c = RateCurve {
        ts: Vec::new(),
        measured: Vec::new(),
        predicted: Vec::new(),
        edge: Vec::new(),
        notes: Vec::new(),
    };
    for (i, &t) in cfg.ts.iter().enumerate() {
        let seed = ctx.seed(cfg.seed).wrapping_add(1000 * i as u64);
        let r = tuned_gd(
            cfg.inst(),
            cfg.n,
            1 << log2_d,
            t,
            &etas,
            cfg.replicates,
            oracle,
            method,
            seed,
            ctx,
        );
        // B = mean realized D² / (2T): the formula on the drawn instances (like the realized K).
        let b = |t: usize| r.d2_mean / (2.0 * t as f64);
        c.ts.push(t as f64);
        c.measured.push(r.best);
        c.predicted.push(2.0 * (r.a_mean * b(t)).sqrt());
        c.edge.push(r.arg == 0 || r.arg + 1 == etas.len());
        c.notes.push(format!(
            "T={t}: min excess {:.4} at η = {:.3e} (averaged-GD η* = {:.3e}); min |I_S| = {}; {} oracle calls verified",
            r.best,
            etas[r.arg],
            (b(t) / r.a_mean).sqrt(),
            r.min_free,
            r.verified
        ));
    }
    c
}

/// One-pass SGD at `η = c/√T`: mean excess over replicates, per (T, c).
fn sgd_table(
    inst: Inst,
    log2_d: usize,
    ts: &[usize],
    cs: &[f64],
    reps: usize,
    seed: u64,
    ctx: &Ctx,
) -> Vec<Vec<f64>> {
    let (nt, nc) = (ts.len(), cs.len());
    let runs = ctx.map(nt * nc * reps, |i| {
        let (ti, ci, r) = (i / (nc * reps), (i / reps) % nc, i % reps);
        let t = ts[ti];
        let mut rng = numerics::stream(seed.wrapping_add(7919 * ti as u64), r as u32);
        let target = inst.d_lo + (inst.d_hi - inst.d_lo) * uniform01(&mut rng);
        let setup = Setup {
            p: inst.p,
            kappa: inst.kappa,
            target,
            oracle: Oracle::Adversarial,
            eta: cs[ci] / (t as f64).sqrt(),
            steps: t,
            last_iterate: false,
            l2: 0.0,
        };
        let out = train(
            &setup,
            &mut Data::OnePass {
                d: 1 << log2_d,
                rng: numerics::stream(seed.wrapping_add(7919 * ti as u64), (reps + 1 + r) as u32),
            },
        );
        let masks = fresh_masks(
            inst.mc,
            t,
            inst.p,
            &mut numerics::stream(seed.wrapping_add(7919 * ti as u64), reps as u32),
        );
        excess(&out, &masks, t, target, inst.kappa)
    });
    runs.chunks(nc * reps)
        .map(|per_t| per_t.chunks(reps).map(mean).collect())
        .collect()
}

/// Per T: the best c's index and excess.
fn best_c(table: &[Vec<f64>]) -> Vec<(usize, f64)> {
    table
        .iter()
        .map(|row| {
            row.iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |m, (i, v)| if v < m.1 { (i, v) } else { m },
                )
        })
        .collect()
}

const NCA: Control = Control {
    id: "NC-a",
    description: "low dimension d = 2^nca_log2_d < 2^n: |I_S| ≈ 0, GD cannot overfit, only the hinge term remains",
};
const NCB: Control = Control {
    id: "NC-b",
    description: "benign oracle: the N tie-break returns 0 (minimum-norm subgradient), so GD never leaves u = 0",
};
const NCC: Control = Control {
    id: "NC-c",
    description: "one-pass SGD (η = c/√T, best c) scored as full-batch GD: it decays as T^(−1/2)",
};

impl Check for GdRate {
    type Config = GdRateConfig;
    const ID: CheckId = CheckId {
        name: "never-full-batch/gd-rate",
        paper: PAPER,
        claim: "With n fixed and d large, η-tuned full-batch GD (averaged iterate) has population excess 2√(A_T·B) ∝ T^(−1/4) on the overfitting construction.",
    };
    const CONTROLS: &'static [Control] = &[NCA, NCB, NCC];

    fn run(cfg: &GdRateConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |c: &str| {
            axes(
                format!("{} ({c}): tuned population excess against T", id.name),
                "T",
                "min_η excess",
            )
        };
        let mut out = Vec::new();
        let method = cfg.method();
        let (mut pos, s) = timed(|| {
            Self::score(
                cfg,
                &gd_curve(cfg, cfg.log2_d, Oracle::Adversarial, method, ctx),
            )
        });
        let case = if method.is_probe() {
            pos.notes.insert(
                0,
                format!(
                    "probe: this instance is not hard for {}; derived prediction on it: tuned excess ∝ T^(−1/2) ({}), so NF-1's T^(−1/4) criterion is reported and expected to FAIL; the paper's lower bound for this method needs its own construction, which is not implemented",
                    method.label(),
                    if method.last_iterate && method.l2 == 0.0 {
                        "≈ d_hi·√(p/T): the last iterate sits on T coordinates of value η and within κη of D"
                    } else {
                        "the regulariser caps each walked coordinate of ū at 1/(λT), so E g(ū) ≤ √(p/T)/λ"
                    }
                ),
            );
            Case {
                // The framework requires the first record to be the `positive` one; its
                // expected verdict says this is a probe.
                id: "positive".into(),
                description: format!(
                    "PROBE (not the paper's claim): {}, adversarial-but-valid oracle, d = 2^log2_d; the construction is not hard for this method, NF-1's criterion is expected to fail",
                    method.label()
                ),
                expected: crate::record::Verdict::Fail,
            }
        } else {
            Case::positive("full-batch GD, adversarial-but-valid oracle, d = 2^log2_d")
        };
        out.push(pos.into_record(id, case, s, ax("positive")));
        let (a, s) = timed(|| {
            Self::score(
                cfg,
                &gd_curve(cfg, cfg.nca_log2_d, Oracle::Adversarial, method, ctx),
            )
        });
        out.push(a.into_record(id, Case::control(&NCA), s, ax("NC-a")));
        let (b, s) =
            timed(|| Self::score(cfg, &gd_curve(cfg, cfg.log2_d, Oracle::Benign, method, ctx)));
        out.push(b.into_record(id, Case::control(&NCB), s, ax("NC-b")));
        let (c, s) = timed(|| {
            let table = sgd_table(
                cfg.inst(),
                cfg.log2_d,
                &cfg.ts,
                &cfg.sgd_cs,
                cfg.sgd_replicates,
                ctx.seed(cfg.seed).wrapping_add(77),
                ctx,
            );
            let best = best_c(&table);
            let curve = RateCurve {
                ts: cfg.ts.iter().map(|&t| t as f64).collect(),
                measured: best.iter().map(|b| b.1).collect(),
                // The GD formula at K = T: what the SGD curve is held to.
                predicted: cfg.ts.iter().map(|&t| cfg.claim(t)).collect(),
                edge: vec![false; cfg.ts.len()],
                notes: best
                    .iter()
                    .zip(&cfg.ts)
                    .map(|(b, t)| {
                        format!("T={t}: SGD best c = {}, excess {:.4}", cfg.sgd_cs[b.0], b.1)
                    })
                    .collect(),
            };
            Self::score(cfg, &curve)
        });
        out.push(c.into_record(id, Case::control(&NCC), s, ax("NC-c")));
        out
    }
}

// =================================================================== NF-2: SGD rate

check_config! {
    /// Configuration of `never-full-batch/sgd-rate` (design NF-2).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SgdRateConfig {
        /// The instance and the full-batch GD curve the separation is measured against (NF-1's
        /// values; only its instance, T, η-grid and seed fields are used here).
        n: usize = GdRateConfig::default().n, Range::int(1, 64);
        /// Bernoulli parameter p.
        p: f64 = GdRateConfig::default().p, in inst;
        /// log₂ of the dimension d.
        log2_d: usize = GdRateConfig::default().log2_d, Range::int(1, 26);
        /// Hinge slope κ.
        kappa: f64 = GdRateConfig::default().kappa, in inst;
        /// D ~ U[d_lo, d_hi].
        d_lo: f64 = GdRateConfig::default().d_lo, in inst;
        /// See `d_lo`.
        d_hi: f64 = GdRateConfig::default().d_hi, in inst;
        /// GD replicates.
        replicates: usize = GdRateConfig::default().replicates, in inst;
        /// Iteration counts T (SGD uses n = T fresh samples).
        ts: Vec<usize> = GdRateConfig::default().ts, Range::int(2, 1 << 16).list(3);
        /// GD η grid: smallest value.
        eta_min: f64 = GdRateConfig::default().eta_min, in inst;
        /// GD η grid: largest value.
        eta_max: f64 = GdRateConfig::default().eta_max, in inst;
        /// GD η grid: points per decade.
        eta_per_decade: usize = GdRateConfig::default().eta_per_decade, in inst;
        /// Fresh samples M for the population risk.
        mc_samples: usize = GdRateConfig::default().mc_samples, in inst;
        /// SGD step constants c, η = c/√T (best c kept per T).
        sgd_cs: Vec<f64> = GdRateConfig::default().sgd_cs, Range::real(1e-4, 100.0).list(1);
        /// SGD replicates (values of D).
        sgd_replicates: usize = GdRateConfig::default().sgd_replicates, Range::int(1, 256);
        /// Half-width of the SGD slope band around −1/2.
        tol_slope: f64 = 0.10, Range::real(0.0, 1.0);
        /// Half-width of the band on the exponent of SGD/GD around −1/4.
        tol_separation: f64 = 0.15, Range::real(0.0, 1.0);
        /// Seed.
        seed: u64 = GdRateConfig::default().seed, in inst;
    }
}

impl CheckConfig for SgdRateConfig {
    fn validate(&self) -> Result<(), String> {
        check_inst(self.d_lo, self.d_hi, self.eta_min, self.eta_max)?;
        if self.ts.windows(2).any(|w| w[0] >= w[1]) {
            return Err("`ts` must be strictly increasing".into());
        }
        if (1usize << self.log2_d) <= *self.ts.last().expect("non-empty") {
            return Err("`log2_d`: SGD touches up to T coordinates, d must exceed max `ts`".into());
        }
        // The full-batch side of the separation is NF-1's T^(-1/4) curve, with its premise.
        check_free_coordinates(
            self.n,
            self.p,
            self.log2_d,
            *self.ts.last().expect("non-empty"),
        )?;
        Ok(())
    }
}

impl SgdRateConfig {
    fn gd(&self) -> GdRateConfig {
        GdRateConfig {
            n: self.n,
            p: self.p,
            log2_d: self.log2_d,
            kappa: self.kappa,
            d_lo: self.d_lo,
            d_hi: self.d_hi,
            replicates: self.replicates,
            ts: self.ts.clone(),
            eta_min: self.eta_min,
            eta_max: self.eta_max,
            eta_per_decade: self.eta_per_decade,
            mc_samples: self.mc_samples,
            seed: self.seed,
            ..GdRateConfig::default()
        }
    }
    /// Online-to-batch bound at `η = c/√T`: `(E[D²]/(2c) + c(4 + κ²)/2)/√T`.
    fn bound(&self, c: f64, t: usize) -> f64 {
        (e_d2(self.d_lo, self.d_hi) / (2.0 * c) + c * (4.0 + self.kappa * self.kappa) / 2.0)
            / (t as f64).sqrt()
    }
}

/// What NF-2's verdict judges: the one-pass curve and the tuned full-batch curve at the same T.
#[derive(Clone, Debug)]
pub struct Pair {
    /// T values.
    pub ts: Vec<usize>,
    /// The curve held to T^(−1/2) (SGD; for NC-d, full-batch GD).
    pub one_pass: Vec<f64>,
    /// Its c per T (the bound is evaluated at it).
    pub c: Vec<f64>,
    /// Tuned full-batch GD's excess.
    pub full_batch: Vec<f64>,
}

/// NF-2: one-pass SGD on the same instance family decays as T^(−1/2), below the online-to-batch
/// bound, and its ratio to tuned GD falls as T^(−1/4).
pub struct SgdRate;

impl SgdRate {
    /// The verdict function of NF-2 (also of NC-d).
    pub fn score(cfg: &SgdRateConfig, pr: &Pair) -> Scored {
        let ts: Vec<f64> = pr.ts.iter().map(|&t| t as f64).collect();
        let slope = loglog_fit(&ts, &pr.one_pass).slope;
        let ratio: Vec<f64> = pr
            .one_pass
            .iter()
            .zip(&pr.full_batch)
            .map(|(a, b)| a / b)
            .collect();
        let sep = loglog_fit(&ts, &ratio).slope;
        let gd_claim_slope = loglog_fit(
            &ts,
            &pr.ts.iter().map(|&t| cfg.gd().claim(t)).collect::<Vec<_>>(),
        )
        .slope;
        let over = pr
            .ts
            .iter()
            .zip(&pr.one_pass)
            .zip(&pr.c)
            .map(|((&t, &e), &c)| e / cfg.bound(c, t))
            .fold(0.0f64, f64::max);
        let criteria = vec![
            Criterion::new(
                criteria::EXCESS_SLOPE,
                -0.5,
                slope,
                cfg.tol_slope,
                "design band [−0.60, −0.40]: the bound is ∝ T^(−1/2) for any valid oracle; fresh one-pass samples and D values per T make the fitted slope noisier than GD's (observed −0.48 to −0.51 over three seeds at 16 replicates); GD's −0.25 stays 2.5 half-widths out",
            ),
            Criterion::at_most(
                criteria::ONLINE_TO_BATCH_RATIO,
                1.0,
                over,
                "the bound ‖w★‖²/(2ηT) + ηG²/2 holds in expectation for any valid subgradient oracle and any d",
            ),
            Criterion::new(
                criteria::ONE_PASS_OVER_FULL_BATCH_EXPONENT,
                -0.5 - gd_claim_slope,
                sep,
                cfg.tol_separation,
                "design band [−0.40, −0.10]: difference of two fitted slopes (GD ±0.05, SGD ±0.1 bands, partly cancelling); a fixed ratio threshold is not used since the constants depend on p, κ and D; no separation (ratio exponent 0) lies outside",
            ),
        ];
        Scored {
            criteria,
            series: vec![
                Series::points(
                    "one-pass excess",
                    ts.clone(),
                    pr.one_pass.clone(),
                    Role::Measured,
                ),
                Series::points(
                    "tuned full-batch excess",
                    ts.clone(),
                    pr.full_batch.clone(),
                    Role::Measured,
                ),
                Series::line(
                    "online-to-batch bound at the chosen c",
                    ts.clone(),
                    pr.ts
                        .iter()
                        .zip(&pr.c)
                        .map(|(&t, &c)| cfg.bound(c, t))
                        .collect(),
                    Role::Prediction,
                ),
            ],
            notes: pr
                .ts
                .iter()
                .zip(&ratio)
                .zip(&pr.c)
                .map(|((t, r), c)| format!("T={t}: one-pass/full-batch = {r:.3} (c = {c:.3})"))
                .collect(),
        }
    }
}

const NCD: Control = Control {
    id: "NC-d",
    description: "tuned full-batch GD (η from NF-1's grid) scored as one-pass SGD: its T^(−1/4) decay and a constant ratio fail",
};

impl Check for SgdRate {
    type Config = SgdRateConfig;
    const ID: CheckId = CheckId {
        name: "never-full-batch/sgd-rate",
        paper: PAPER,
        claim: "On the same instance family, one-pass SGD with η = c/√T has population excess ∝ T^(−1/2) below the online-to-batch bound, so its ratio to tuned full-batch GD falls as T^(−1/4).",
    };
    const CONTROLS: &'static [Control] = &[NCD];

    fn run(cfg: &SgdRateConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let ax = |c: &str| {
            axes(
                format!("{} ({c}): population excess against T", id.name),
                "T",
                "excess",
            )
        };
        let gcfg = cfg.gd();
        let (gd, s_gd) = timed(|| {
            gd_curve(
                &gcfg,
                cfg.log2_d,
                Oracle::Adversarial,
                Method::default(),
                ctx,
            )
            .measured
        });
        let (pos, s) = timed(|| {
            let table = sgd_table(
                gcfg.inst(),
                cfg.log2_d,
                &cfg.ts,
                &cfg.sgd_cs,
                cfg.sgd_replicates,
                ctx.seed(cfg.seed).wrapping_add(77),
                ctx,
            );
            let best = best_c(&table);
            Self::score(
                cfg,
                &Pair {
                    ts: cfg.ts.clone(),
                    one_pass: best.iter().map(|b| b.1).collect(),
                    c: best.iter().map(|b| cfg.sgd_cs[b.0]).collect(),
                    full_batch: gd.clone(),
                },
            )
        });
        let mut out = vec![pos.into_record(
            id,
            Case::positive("one-pass SGD, η = c/√T, best c per T"),
            s + s_gd / 2.0,
            ax("positive"),
        )];
        // NC-d: GD in the one-pass slot; the bound is evaluated at the c of its tuned η.
        let (d, s) = timed(|| {
            // The bound is evaluated at its minimizing c (the most lenient choice for the control).
            let c_star = (e_d2(cfg.d_lo, cfg.d_hi) / (4.0 + cfg.kappa * cfg.kappa)).sqrt();
            let c = vec![c_star; cfg.ts.len()];
            Self::score(
                cfg,
                &Pair {
                    ts: cfg.ts.clone(),
                    one_pass: gd.clone(),
                    c,
                    full_batch: gd.clone(),
                },
            )
        });
        let mut r = d.into_record(id, Case::control(&NCD), s + s_gd / 2.0, ax("NC-d"));
        r.notes
            .push("shares the positive case's GD runs; seconds split between them".into());
        out.push(r);
        out
    }
}

// =================================================================== NF-3: sample size

check_config! {
    /// Configuration of `never-full-batch/sample-size` (design NF-3).
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SampleSizeConfig {
        /// Sample sizes n.
        ns: Vec<usize> = vec![4, 6, 8, 10, 12], Range::int(1, 64).list(2);
        /// Bernoulli parameter p.
        p: f64 = 0.5, in inst;
        /// log₂ of the dimension d.
        log2_d: usize = 16, Range::int(1, 26);
        /// Iterations T.
        t: usize = 1024, Range::int(2, 1 << 16);
        /// Hinge slope κ.
        kappa: f64 = 2.0, in inst;
        /// D ~ U[d_lo, d_hi].
        d_lo: f64 = 0.4, in inst;
        /// See `d_lo`.
        d_hi: f64 = 0.5, in inst;
        /// Replicates (values of D, each with its own S).
        replicates: usize = 16, in inst;
        /// η grid: smallest value.
        eta_min: f64 = 1e-4, in inst;
        /// η grid: largest value.
        eta_max: f64 = 1.0, in inst;
        /// η grid: points per decade.
        eta_per_decade: usize = 20, in inst;
        /// Fresh samples M.
        mc_samples: usize = 256, in inst;
        /// Smallest accepted measured/predicted ratio.
        ratio_lo: f64 = 0.95, Range::real(0.0, 10.0);
        /// Largest accepted measured/predicted ratio.
        ratio_hi: f64 = 1.15, Range::real(0.0, 10.0);
        /// Seed.
        seed: u64 = 1, in inst;
    }
}

impl CheckConfig for SampleSizeConfig {
    fn validate(&self) -> Result<(), String> {
        check_inst(self.d_lo, self.d_hi, self.eta_min, self.eta_max)?;
        if self.ratio_lo > self.ratio_hi {
            return Err("`ratio_lo` must be at most `ratio_hi`".into());
        }
        if self.ns.windows(2).any(|w| w[0] >= w[1]) {
            return Err("`ns` must be strictly increasing".into());
        }
        // The prediction 2√(A_K·B) omits the hinge block's O(η) oscillation; relative to the
        // prediction it scales like 1/A_K ∝ 1/√(p·K), and it stayed ≤ 10% (inside the band) at
        // the design's smallest p·K = ½·16 = 8 (n = 12, d = 2^16). Below that the walk has too few
        // free coordinates for the prediction to hold.
        let d = (1u64 << self.log2_d) as f64;
        for &n in &self.ns {
            let k = (d * (1.0 - self.p).powi(n as i32)).min(self.t as f64);
            if self.p * k < MIN_P_TIMES_K {
                return Err(format!(
                    "at n = {n} (`ns`) the walk has E[K] = min(`t`, 2^`log2_d`·(1 − `p`)^n) = \
                     {k:.2} free coordinates, and p·K = {:.2} < {MIN_P_TIMES_K}: the omitted \
                     O(η) hinge term is no longer small against 2√(A_K·B); lower the largest \
                     `ns` or `p`, or raise `log2_d`",
                    self.p * k
                ));
            }
        }
        Ok(())
    }
}

/// Smallest `p·E[K]` at which NF-3's prediction was calibrated (the design's `n = 12`).
const MIN_P_TIMES_K: f64 = 8.0;

/// Tuned GD per sample size.
#[derive(Clone, Debug)]
pub struct SizeSweep {
    /// Sample sizes.
    pub ns: Vec<usize>,
    /// Measured min-over-η mean excess.
    pub measured: Vec<f64>,
    /// Mean realized A_K per n.
    pub a_mean: Vec<f64>,
    /// Mean realized D² per n.
    pub d2_mean: Vec<f64>,
    /// Notes.
    pub notes: Vec<String>,
}

/// Which K the prediction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KModel {
    /// The realized `K = min(T, |I_S|)` (the design's prediction).
    Realized,
    /// `K = T` whatever n (control NC-e: no sample-size dependence).
    Full,
}

/// NF-3: the tuned excess follows `2√(A_K B)` with `K = min(T, |I_S|)`, falling once n ≳ log₂(d/T).
pub struct SampleSize;

impl SampleSize {
    /// The verdict function of NF-3 (also of NC-e).
    pub fn score(cfg: &SampleSizeConfig, sw: &SizeSweep, model: KModel) -> Scored {
        let pred: Vec<f64> = sw
            .a_mean
            .iter()
            .zip(&sw.d2_mean)
            .map(|(&a, &d2)| {
                let b = d2 / (2.0 * cfg.t as f64);
                let a = match model {
                    KModel::Realized => a,
                    KModel::Full => a_k(cfg.p, cfg.t, cfg.t),
                };
                2.0 * (a * b).sqrt()
            })
            .collect();
        let mid = (cfg.ratio_lo + cfg.ratio_hi) / 2.0;
        let half = (cfg.ratio_hi - cfg.ratio_lo) / 2.0;
        let mut criteria: Vec<Criterion> = sw
            .ns
            .iter()
            .zip(&sw.measured)
            .zip(&pred)
            .map(|((n, m), p)| {
                Criterion::new(
                    criteria::EXCESS_OVER_BOUND,
                    mid,
                    m / p,
                    half,
                    "band [ratio_lo, ratio_hi]: the omitted O(η) hinge term only adds (≤ +10%, larger at small K where η* is larger), grid quantization < 0.5%, MC SE < 0.5%",
                ).qualified(format_args!("n={n}"))
            })
            .collect();
        let worst_rise = sw
            .measured
            .windows(2)
            .map(|w| w[1] / w[0])
            .fold(0.0f64, f64::max);
        criteria.push(Criterion::at_most(
            criteria::EXCESS_GROWTH_IN_N,
            1.0,
            worst_rise,
            "more samples certify more coordinates, so K and A_K can only shrink; common random numbers across n keep noise below the steps",
        ));
        let x: Vec<f64> = sw.ns.iter().map(|&n| n as f64).collect();
        Scored {
            criteria,
            series: vec![
                Series::points(
                    "measured min_η excess",
                    x.clone(),
                    sw.measured.clone(),
                    Role::Measured,
                ),
                Series::line("2√(A_K·B)", x, pred, Role::Prediction),
            ],
            notes: sw.notes.clone(),
        }
    }
}

const NCE: Control = Control {
    id: "NC-e",
    description: "prediction without the sample-size dependence (K = T for every n): the large-n excess falls below it",
};

impl Check for SampleSize {
    type Config = SampleSizeConfig;
    const ID: CheckId = CheckId {
        name: "never-full-batch/sample-size",
        paper: PAPER,
        claim: "At fixed T and d, tuned full-batch GD's excess stays at the T^(−1/4) level until n ≈ log₂(d/T) and then falls as 2√(A_K·B) with K = |I_S| ≈ d(1−p)^n: the sample size must grow with the dimension.",
    };
    const CONTROLS: &'static [Control] = &[NCE];

    fn run(cfg: &SampleSizeConfig, ctx: &Ctx) -> Vec<Record> {
        let id = Self::ID;
        let etas = eta_grid(cfg.eta_min, cfg.eta_max, cfg.eta_per_decade);
        let inst = Inst {
            p: cfg.p,
            kappa: cfg.kappa,
            d_lo: cfg.d_lo,
            d_hi: cfg.d_hi,
            mc: cfg.mc_samples,
        };
        let (sw, sec) = timed(|| {
            let mut sw = SizeSweep {
                ns: cfg.ns.clone(),
                measured: Vec::new(),
                a_mean: Vec::new(),
                d2_mean: Vec::new(),
                notes: Vec::new(),
            };
            for &n in &cfg.ns {
                // Same seed for every n: common random numbers across n.
                let r = tuned_gd(
                    inst,
                    n,
                    1 << cfg.log2_d,
                    cfg.t,
                    &etas,
                    cfg.replicates,
                    Oracle::Adversarial,
                    Method::default(),
                    ctx.seed(cfg.seed),
                    ctx,
                );
                sw.measured.push(r.best);
                sw.a_mean.push(r.a_mean);
                sw.d2_mean.push(r.d2_mean);
                sw.notes.push(format!(
                    "n={n}: min excess {:.4} at η = {:.3e}; min |I_S| = {}; argmin at grid edge: {}; {} oracle calls verified",
                    r.best,
                    etas[r.arg],
                    r.min_free,
                    r.arg == 0 || r.arg + 1 == etas.len(),
                    r.verified
                ));
            }
            sw
        });
        let ax = |c: &str| Axes {
            log_x: false,
            ..axes(
                format!("{} ({c}): tuned excess against sample size n", id.name),
                "n",
                "min_η excess",
            )
        };
        let (pos, s) = timed(|| Self::score(cfg, &sw, KModel::Realized));
        let mut out = vec![pos.into_record(
            id,
            Case::positive("prediction with the realized K = min(T, |I_S|)"),
            sec + s,
            ax("positive"),
        )];
        let (e, s) = timed(|| Self::score(cfg, &sw, KModel::Full));
        let mut r = e.into_record(id, Case::control(&NCE), s, ax("NC-e"));
        r.notes
            .push("reuses the positive case's runs; seconds are scoring only".into());
        out.push(r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "invalid N-subgradient")]
    fn n_oracle_check_rejects_a_nonzero_coordinate() {
        // −e_j with u_j = 0.3 at N(u) = 0 is not a subgradient.
        verify_n(Some(0.3), 0.0, 1);
    }

    #[test]
    #[should_panic(expected = "invalid g-subgradient")]
    fn g_oracle_check_rejects_an_entry_outside_the_support() {
        verify_g(&[0.5], &[0.2], &[false], 0.0, 1);
    }

    #[test]
    #[should_panic(expected = "invalid hinge subgradient")]
    fn hinge_check_rejects_the_wrong_side() {
        verify_hinge(2.0, 0.1, 0.45, 2.0, 1);
    }

    #[test]
    fn valid_pieces_pass() {
        verify_n(Some(0.0), 0.0, 1);
        verify_n(None, 0.0, 1);
        verify_n(Some(-0.2), 0.2, 1);
        verify_g(&[0.6, 0.8], &[0.3, 0.4], &[true, true], 0.5, 1);
        verify_hinge(-1.0, 0.1, 0.45, 2.0, 1);
    }

    #[test]
    fn full_batch_gd_walks_one_new_free_coordinate_per_step() {
        let smp = Sample::draw(3, 1 << 12, 0.5, &mut numerics::stream(3, 0));
        let (eta, t) = (0.01, 50);
        let s = Setup {
            p: 0.5,
            kappa: 2.0,
            target: 0.45,
            oracle: Oracle::Adversarial,
            eta,
            steps: t,
            last_iterate: false,
            l2: 0.0,
        };
        let out = train(&s, &mut Data::FullBatch(&smp));
        assert_eq!(out.u_bar.len(), t);
        for (i, u) in out.u_bar.iter().enumerate() {
            let want = eta * (t - i) as f64 / t as f64;
            assert!((u - want).abs() < 1e-12, "{i}: {u} vs {want}");
        }
        let benign = train(
            &Setup {
                oracle: Oracle::Benign,
                ..s
            },
            &mut Data::FullBatch(&smp),
        );
        assert!(benign.u_bar.is_empty());
    }
}
