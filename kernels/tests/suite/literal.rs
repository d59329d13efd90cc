//! Each update rule against an independent, paper-literal transcription in f64, replayed for 100
//! steps. The transcriptions follow the papers' (or, where named, PyTorch's documented) algorithm
//! line by line, with their own operation order, so they share no code with the kernels.
//! Tolerance: `1e-12·(1 + |x|)` per element after 100 steps in f64 (rounding alone accounts for
//! ~1e-15 here; a wrong formula, say ε inside the square root, moves results by > 1e-9), and
//! `2e-4·(1 + |x|)` for the f32 kernels against the same f64 transcription.

use crate::common;

use common::{backends, exec};
use descent_kernels::random::{fill_normal, seeded};
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, Adam, Backend, Element, Gd, Lion, Rule, Sgd,
    SignDescent, Signum, WeightDecay,
};

const STEPS: usize = 100;
const N: usize = 37; // odd: exercises every backend's tail

/// A seeded gradient sequence, independent of the iterates (so rounding differences between the
/// kernel and the transcription never feed back through the gradient's sign).
fn gradients(seed: u64) -> Vec<Vec<f64>> {
    let mut rng = seeded(seed);
    (0..STEPS)
        .map(|_| {
            let mut g = vec![0.0; N];
            fill_normal(&mut rng, &mut g, 0.1, 1.0);
            g
        })
        .collect()
}

fn initial(seed: u64) -> Vec<f64> {
    let mut p = vec![0.0; N];
    fill_normal(&mut seeded(seed), &mut p, 0.0, 2.0);
    p
}

fn close(got: &[f64], want: &[f64], tol: f64) -> Result<(), String> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > tol * (1.0 + w.abs()) || g.is_nan() != w.is_nan() {
            return Err(format!("element {i}: kernel {g:e}, transcription {w:e}"));
        }
    }
    Ok(())
}

fn sgn(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Runs `kernel` (given the backend, the params, the step's gradient and the 1-based step) for
/// STEPS steps in `T`, and returns the final parameters in f64.
fn replay<T: Element>(
    b: Backend,
    seed: u64,
    mut kernel: impl FnMut(Backend, &mut [T], &[T], u64),
) -> Vec<f64> {
    let mut p: Vec<T> = initial(seed)
        .iter()
        .map(|&x| T::from_f64_round(x))
        .collect();
    for (t, g) in gradients(seed).iter().enumerate() {
        let g: Vec<T> = g.iter().map(|&x| T::from_f64_round(x)).collect();
        kernel(b, &mut p, &g, t as u64 + 1);
    }
    p.iter().map(|x| x.widen()).collect()
}

/// Compares the f64 kernel on every backend (tight) and the f32 kernel (loose) with `literal`.
fn compare(
    name: &str,
    seed: u64,
    literal: Vec<f64>,
    mut k64: impl FnMut(Backend, &mut [f64], &[f64], u64),
    mut k32: impl FnMut(Backend, &mut [f32], &[f32], u64),
) {
    for b in backends() {
        let got = replay::<f64>(b, seed, &mut k64);
        close(&got, &literal, 1e-12).unwrap_or_else(|e| panic!("{name} f64 on {b}: {e}"));
        let got = replay::<f32>(b, seed, &mut k32);
        close(&got, &literal, 2e-4).unwrap_or_else(|e| panic!("{name} f32 on {b}: {e}"));
    }
}

/// Per-element state for the stateful rules, created on first use.
macro_rules! state {
    ($t:ty) => {
        vec![<$t>::default(); N]
    };
    ($t:ty, $buffers:expr) => {
        vec![<$t>::default(); $buffers * N]
    };
}

// ----------------------------------------------------------------------------- transcriptions

/// Gradient descent: θ ← θ − γ·∇; L2: ∇ ← ∇ + λθ; decoupled: θ ← θ − γλθ − γ∇.
fn gd_literal(seed: u64, lr: f64, wd: WeightDecay<f64>) -> Vec<f64> {
    let mut p = initial(seed);
    for g in gradients(seed) {
        for i in 0..N {
            match wd {
                WeightDecay::None => p[i] -= lr * g[i],
                WeightDecay::L2(l) => p[i] -= lr * (g[i] + l * p[i]),
                WeightDecay::Decoupled(l) => p[i] = p[i] - lr * l * p[i] - lr * g[i],
            }
        }
    }
    p
}

/// torch.optim.SGD's documented algorithm (heavy ball with dampening τ; Nesterov as
/// g ← g + μ·b), which is Polyak's heavy ball / Sutskever et al.'s Nesterov up to a change of
/// variables.
fn sgd_literal(seed: u64, lr: f64, mu: f64, tau: f64, nesterov: bool, l2: f64) -> Vec<f64> {
    let mut p = initial(seed);
    let mut b = vec![0.0; N];
    for (t, g) in gradients(seed).iter().enumerate() {
        for i in 0..N {
            let mut gi = g[i] + l2 * p[i];
            if t == 0 {
                b[i] = gi;
            } else {
                b[i] = mu * b[i] + (1.0 - tau) * gi;
            }
            gi = if nesterov { gi + mu * b[i] } else { b[i] };
            p[i] -= lr * gi;
        }
    }
    p
}

/// Kingma & Ba (2015), Algorithm 1, with bias-corrected moments m̂, v̂ and ε added to √v̂.
/// `l2`: g ← g + λθ (Adam with weight decay); `decoupled`: θ ← θ − αλθ first (AdamW as in
/// Loshchilov & Hutter 2019, Algorithm 2, with the schedule multiplier η folded into PyTorch's lr·λ).
/// `amsgrad`: v̂ uses the running maximum of v (Reddi et al. 2018), bias-corrected as PyTorch.
fn adam_literal(
    seed: u64,
    h: (f64, f64, f64, f64),
    wd: WeightDecay<f64>,
    amsgrad: bool,
) -> Vec<f64> {
    let (alpha, b1, b2, eps) = h;
    let mut p = initial(seed);
    let (mut m, mut v, mut vmax) = (vec![0.0; N], vec![0.0; N], vec![0.0f64; N]);
    for (k, g) in gradients(seed).iter().enumerate() {
        let t = (k + 1) as i32;
        for i in 0..N {
            let mut gi = g[i];
            match wd {
                WeightDecay::L2(l) => gi += l * p[i],
                WeightDecay::Decoupled(l) => p[i] -= alpha * l * p[i],
                WeightDecay::None => {}
            }
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            vmax[i] = vmax[i].max(v[i]);
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = if amsgrad { vmax[i] } else { v[i] } / (1.0 - b2.powi(t));
            p[i] -= alpha * m_hat / (v_hat.sqrt() + eps);
        }
    }
    p
}

/// Sign descent, Signum (Bernstein et al. 2018, Algorithm 3) and Lion (Chen et al. 2023,
/// Algorithm 2 with decoupled decay λ).
fn sign_literal(seed: u64, rule: &str, lr: f64, b1: f64, b2: f64, lambda: f64) -> Vec<f64> {
    let mut p = initial(seed);
    let mut m = vec![0.0; N];
    for g in gradients(seed) {
        for i in 0..N {
            match rule {
                "sign" => p[i] -= lr * sgn(g[i]),
                "signum" => {
                    m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                    p[i] -= lr * sgn(m[i]);
                }
                _ => {
                    let c = b1 * m[i] + (1.0 - b1) * g[i];
                    p[i] -= lr * (sgn(c) + lambda * p[i]);
                    m[i] = b2 * m[i] + (1.0 - b2) * g[i];
                }
            }
        }
    }
    p
}

// ----------------------------------------------------------------------------- tests

#[test]
fn gd_matches_transcription() {
    let wds = [
        WeightDecay::None,
        WeightDecay::L2(0.05),
        WeightDecay::Decoupled(0.05),
    ];
    for (s, wd) in wds.into_iter().enumerate() {
        let seed = 10 + s as u64;
        let wd32 = match wd {
            WeightDecay::None => WeightDecay::None,
            WeightDecay::L2(l) => WeightDecay::L2(l as f32),
            WeightDecay::Decoupled(l) => WeightDecay::Decoupled(l as f32),
        };
        let (r64, r32) = (
            Gd {
                lr: 0.03,
                weight_decay: wd,
            },
            Gd {
                lr: 0.03f32,
                weight_decay: wd32,
            },
        );
        compare(
            &format!("gd {wd:?}"),
            seed,
            gd_literal(seed, 0.03, wd),
            |b, p, g, _| {
                r64.step_with(&exec(b), 1, p, g, &mut [] as &mut [f64])
                    .unwrap()
            },
            |b, p, g, _| {
                r32.step_with(&exec(b), 1, p, g, &mut [] as &mut [f32])
                    .unwrap()
            },
        );
    }
}

#[test]
fn sgd_matches_transcription() {
    for (s, (mu, tau, nesterov, l2)) in [
        (0.9, 0.0, false, 0.0),
        (0.9, 0.3, false, 0.01),
        (0.8, 0.0, true, 0.02),
        (0.0, 0.0, false, 0.0),
    ]
    .into_iter()
    .enumerate()
    {
        let seed = 20 + s as u64;
        let wd = |l: f64| {
            if l > 0.0 {
                WeightDecay::L2(l)
            } else {
                WeightDecay::None
            }
        };
        let r64 = Sgd {
            lr: 0.02,
            momentum: mu,
            dampening: tau,
            nesterov,
            weight_decay: wd(l2),
        };
        let r32 = Sgd {
            lr: 0.02f32,
            momentum: mu as f32,
            dampening: tau as f32,
            nesterov,
            weight_decay: if l2 > 0.0 {
                WeightDecay::L2(l2 as f32)
            } else {
                WeightDecay::None
            },
        };
        let (mut b64, mut b32) = (state!(f64), state!(f32));
        compare(
            &format!("sgd mu={mu} tau={tau} nesterov={nesterov}"),
            seed,
            sgd_literal(seed, 0.02, mu, tau, nesterov, l2),
            |b, p, g, t| {
                if t == 1 {
                    b64.fill(0.0);
                }
                r64.step_with(&exec(b), t, p, g, &mut b64).unwrap()
            },
            |b, p, g, t| {
                if t == 1 {
                    b32.fill(0.0);
                }
                r32.step_with(&exec(b), t, p, g, &mut b32).unwrap()
            },
        );
    }
}

fn adam_case(seed: u64, wd: WeightDecay<f64>, amsgrad: bool) {
    let h = (0.01, 0.9, 0.99, 1e-3); // ε large enough that its placement matters
    let r64 = Adam {
        lr: h.0,
        beta1: h.1,
        beta2: h.2,
        eps: h.3,
        weight_decay: wd,
        amsgrad,
    };
    let wd32 = match wd {
        WeightDecay::None => WeightDecay::None,
        WeightDecay::L2(l) => WeightDecay::L2(l as f32),
        WeightDecay::Decoupled(l) => WeightDecay::Decoupled(l as f32),
    };
    let r32 = Adam {
        lr: 0.01f32,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-3,
        weight_decay: wd32,
        amsgrad,
    };
    let (mut s64, mut s32) = (state!(f64, 3), state!(f32, 3));
    compare(
        &format!("adam {wd:?} amsgrad={amsgrad}"),
        seed,
        adam_literal(seed, h, wd, amsgrad),
        |b, p, g, t| {
            if t == 1 {
                s64.fill(0.0);
            }
            let sl = r64.state_len(p.len());
            r64.step_with(&exec(b), t, p, g, &mut s64[..sl]).unwrap()
        },
        |b, p, g, t| {
            if t == 1 {
                s32.fill(0.0);
            }
            let sl = r32.state_len(p.len());
            r32.step_with(&exec(b), t, p, g, &mut s32[..sl]).unwrap()
        },
    );
}

#[test]
fn adam_matches_transcription() {
    adam_case(30, WeightDecay::None, false);
    adam_case(31, WeightDecay::L2(0.02), false);
}

#[test]
fn adamw_matches_transcription() {
    adam_case(32, WeightDecay::Decoupled(0.1), false);
}

#[test]
fn amsgrad_matches_transcription() {
    adam_case(33, WeightDecay::None, true);
}

/// The comparison above can fail: a transcription with ε inside the square root (a common
/// variant) or without bias correction is rejected by the same tolerance.
#[test]
fn transcription_comparison_rejects_wrong_formulas() {
    let seed = 34;
    let r = Adam {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-3,
        weight_decay: WeightDecay::None,
        amsgrad: false,
    };
    let mut st = state!(f64, 2);
    let got = replay::<f64>(Backend::Scalar, seed, |b, p, g, t| {
        r.step_with(&exec(b), t, p, g, &mut st).unwrap()
    });
    close(
        &got,
        &adam_literal(seed, (0.01, 0.9, 0.99, 1e-3), WeightDecay::None, false),
        1e-12,
    )
    .unwrap();
    // ε inside the root: same recursion, denominator √(v̂ + ε).
    let mut p = initial(seed);
    let (mut m, mut v) = (vec![0.0; N], vec![0.0; N]);
    for (k, g) in gradients(seed).iter().enumerate() {
        let t = (k + 1) as i32;
        for i in 0..N {
            m[i] = 0.9 * m[i] + 0.1 * g[i];
            v[i] = 0.99 * v[i] + 0.01 * g[i] * g[i];
            let (mh, vh) = (
                m[i] / (1.0 - 0.9f64.powi(t)),
                v[i] / (1.0 - 0.99f64.powi(t)),
            );
            p[i] -= 0.01 * mh / (vh + 1e-3).sqrt();
        }
    }
    assert!(
        close(&got, &p, 1e-12).is_err(),
        "ε placement must be detectable"
    );
    // A different β2 (0 instead of 0.99).
    let no_bc = adam_literal(seed, (0.01, 0.9, 0.0, 1e-3), WeightDecay::None, false);
    assert!(
        close(&got, &no_bc, 1e-12).is_err(),
        "a different β2 must be detectable"
    );
}

#[test]
fn sign_rules_match_transcription() {
    let (lr, b1, b2, lambda) = (0.01, 0.9, 0.99, 0.1);
    let seed = 40;
    let sd64 = SignDescent::new(lr);
    let sd32 = SignDescent::new(lr as f32);
    compare(
        "sign descent",
        seed,
        sign_literal(seed, "sign", lr, b1, b2, 0.0),
        |b, p, g, _| {
            sd64.step_with(&exec(b), 1, p, g, &mut [] as &mut [f64])
                .unwrap()
        },
        |b, p, g, _| {
            sd32.step_with(&exec(b), 1, p, g, &mut [] as &mut [f32])
                .unwrap()
        },
    );

    let (s64, s32) = (Signum::new(lr, b1), Signum::new(lr as f32, b1 as f32));
    let (mut m64, mut m32) = (state!(f64), state!(f32));
    compare(
        "signum",
        seed + 1,
        sign_literal(seed + 1, "signum", lr, b1, b2, 0.0),
        |b, p, g, t| {
            if t == 1 {
                m64.fill(0.0)
            }
            s64.step_with(&exec(b), 1, p, g, &mut m64).unwrap()
        },
        |b, p, g, t| {
            if t == 1 {
                m32.fill(0.0)
            }
            s32.step_with(&exec(b), 1, p, g, &mut m32).unwrap()
        },
    );

    let l64 = Lion {
        lr,
        beta1: b1,
        beta2: b2,
        weight_decay: WeightDecay::Decoupled(lambda),
    };
    let l32 = Lion {
        lr: lr as f32,
        beta1: b1 as f32,
        beta2: b2 as f32,
        weight_decay: WeightDecay::Decoupled(lambda as f32),
    };
    let (mut m64, mut m32) = (state!(f64), state!(f32));
    compare(
        "lion",
        seed + 2,
        sign_literal(seed + 2, "lion", lr, b1, b2, lambda),
        |b, p, g, t| {
            if t == 1 {
                m64.fill(0.0)
            }
            l64.step_with(&exec(b), 1, p, g, &mut m64).unwrap()
        },
        |b, p, g, t| {
            if t == 1 {
                m32.fill(0.0)
            }
            l32.step_with(&exec(b), 1, p, g, &mut m32).unwrap()
        },
    );
}

/// Averaging: after K iterates the running mean is their arithmetic mean Σθ_k / K (Polyak &
/// Juditsky 1992; SWA), the EMA is the recursion a ← δa + (1 − δ)θ, and the replica mean is
/// Σ r_k / K in every replica.
#[test]
fn averaging_matches_transcription() {
    let seed = 50;
    let iterates = gradients(seed); // any sequence of vectors will do
    for b in backends() {
        let (mut swa, mut ema_avg) = (vec![0.0f64; N], iterates[0].clone());
        let mut ema_lit = iterates[0].clone();
        for (k, it) in iterates.iter().enumerate() {
            running_mean_with(&exec(b), &mut swa, it, k as u64).unwrap();
            if k > 0 {
                ema_with(&exec(b), &mut ema_avg, it, 0.95).unwrap();
                for i in 0..N {
                    ema_lit[i] = 0.95 * ema_lit[i] + (1.0 - 0.95) * it[i];
                }
            }
        }
        let mean: Vec<f64> = (0..N)
            .map(|i| iterates.iter().map(|v| v[i]).sum::<f64>() / STEPS as f64)
            .collect();
        close(&swa, &mean, 1e-12).unwrap_or_else(|e| panic!("running mean on {b}: {e}"));
        close(&ema_avg, &ema_lit, 1e-12).unwrap_or_else(|e| panic!("ema on {b}: {e}"));

        let mut reps: Vec<Vec<f64>> = iterates[..5].to_vec();
        let want: Vec<f64> = (0..N)
            .map(|i| reps.iter().map(|r| r[i]).sum::<f64>() / 5.0)
            .collect();
        let mut views: Vec<&mut [f64]> = reps.iter_mut().map(|r| r.as_mut_slice()).collect();
        replica_mean_with(&exec(b), &mut views).unwrap();
        for r in &reps {
            close(r, &want, 1e-15).unwrap_or_else(|e| panic!("replica mean on {b}: {e}"));
        }
    }
}
