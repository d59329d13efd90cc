//! Schedule-Free AdamW and SGD: every backend against the scalar reference (lengths 0..=257,
//! offsets, special values, steps and point switches), an independent f64 transcription of the
//! paper's x/z form (Defazio et al. 2024, eq. (1)–(3) with the reference's `c_{t+1}` weights and
//! warm-up) replayed for 100 steps, and typed errors that change nothing.

use crate::common;

use common::*;
use descent_kernels::random::{fill_normal, seeded};
use descent_kernels::{
    Backend, Element, Error, Exec, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd,
    ScheduleFreeState, TrainView,
};
use proptest::prelude::*;

fn t<T: Element>(x: f64) -> T {
    T::from_f64_round(x)
}

fn adamw<T: Element>(
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    warm: u64,
    r: f64,
) -> ScheduleFreeAdamW<T> {
    ScheduleFreeAdamW {
        lr: t(lr),
        beta1: t(b1),
        beta2: t(b2),
        eps: t(eps),
        weight_decay: t(wd),
        warmup_steps: warm,
        r: t(r),
        weight_lr_power: t(2.0),
    }
}

fn sgd<T: Element>(lr: f64, mu: f64, wd: f64, warm: u64, r: f64) -> ScheduleFreeSgd<T> {
    ScheduleFreeSgd {
        lr: t(lr),
        momentum: t(mu),
        weight_decay: t(wd),
        warmup_steps: warm,
        r: t(r),
        weight_lr_power: t(2.0),
    }
}

/// Runs `steps` steps, then eval and back to train and one more step, on one backend; returns
/// the parameters at x (after the last eval), and the state.
fn run_on<T: Element, R: ScheduleFreeRule<T>>(
    b: Backend,
    rule: R,
    p: &mut [T],
    s: &mut [T],
    grads: &[Vec<T>],
) {
    let e = exec(b);
    let mut train = TrainView::new(rule, p, s).unwrap();
    let (first, rest) = grads.split_at(grads.len() - 1);
    for g in first {
        train.step_with(&e, g).unwrap();
    }
    let eval = train.eval_with(&e);
    let mut train = eval.train_with(&e);
    train.step_with(&e, &rest[0]).unwrap();
    let _ = train.eval_with(&e);
}

fn oracle<T: Element, R: ScheduleFreeRule<T>>(
    name: &str,
    rule: R,
    steps: usize,
    seed: u64,
    special: f64,
) {
    let simd = simd_backends();
    let mut rng = seeded(seed);
    for len in lengths() {
        for off in OFFSETS {
            let sl = R::state_len(len);
            let soff = (off * 5) % 8;
            let p0: Vec<T> = mixed(&mut rng, off + len + GUARD, 2.0, special);
            let s0: Vec<T> = mixed(&mut rng, soff + sl + GUARD, 2.0, special);
            let grads: Vec<Vec<T>> = (0..steps)
                .map(|_| mixed(&mut rng, len, 2.0, special))
                .collect();
            let run = |b: Backend| {
                let (mut p, mut s) = (p0.clone(), s0.clone());
                run_on(
                    b,
                    rule,
                    &mut p[off..off + len],
                    &mut s[soff..soff + sl],
                    &grads,
                );
                (p, s)
            };
            let (wp, ws) = run(Backend::Scalar);
            for &b in &simd {
                let (gp, gs) = run(b);
                let at = format!("{name} on {b}, len {len}, offset {off}");
                assert_same(&format!("{at}, params"), &gp, &wp);
                assert_same(&format!("{at}, state"), &gs, &ws);
            }
        }
    }
}

proptest! {
    #![proptest_config(common::proptest_config(4))]
    #[test]
    fn schedule_free_bit_exact_on_every_backend(
        lr in 0.0..0.1f64, b1 in 0.05..0.99f64, b2 in 0.5..0.9999f64, eps in 1e-8..1e-2f64,
        wd in prop_oneof![Just(0.0), 0.0..0.1f64], warm in 0u64..4, r in 0.0..2.0f64,
        seed in any::<u64>(),
    ) {
        for special in [0.0, 0.04] {
            oracle::<f32, _>("sf-adamw", adamw(lr, b1, b2, eps, wd, warm, r), 3, seed, special);
            oracle::<f64, _>("sf-adamw", adamw(lr, b1, b2, eps, wd, warm, r), 3, seed, special);
            oracle::<f32, _>("sf-sgd", sgd(lr, b1, wd, warm, r), 3, seed ^ 1, special);
            oracle::<f64, _>("sf-sgd", sgd(lr, b1, wd, warm, r), 3, seed ^ 1, special);
        }
    }
}

// ------------------------------------------------------------------ paper-literal f64 replay

const STEPS: usize = 100;
const N: usize = 37;

#[derive(Clone, Copy, Debug)]
struct H {
    lr: f64,
    beta: f64,
    beta2: f64,
    eps: f64,
    wd: f64,
    warm: u64,
    r: f64,
    power: f64,
    adam: bool,
}

/// The paper's form, with explicit x and z (Defazio et al. 2024, Schedule-Free, eq. (1)–(3)):
/// ```text
/// y_t     = (1 − β)·z_t + β·x_t
/// z_{t+1} = z_t − γ_t·d_t,       d_t = ∇f(y_t) (SGD) or ∇f(y_t)/(√v_t + ε) (AdamW) (+ λ·y_t)
/// x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
/// ```
/// with `x_1 = z_1 = the initial point`, `γ_t` warm-up (and, for AdamW, `√(1 − β2^t)`) scaled,
/// and `c_{t+1} = w_t / Σ_{i≤t} w_i`, `w_t = t^r · (max_{i≤t} γ_i)^power`. Returns `(x, y)` after
/// all steps, where the gradient at step t is `grads[t]` (a fixed sequence, so rounding never feeds
/// back through it). `uniform` replaces the weights by `1/t` (a wrong formula under warm-up).
fn paper_literal(p0: &[f64], grads: &[Vec<f64>], h: H, uniform: bool) -> (Vec<f64>, Vec<f64>) {
    let n = p0.len();
    let mut x = p0.to_vec();
    let mut z = p0.to_vec();
    let mut v = vec![0.0; n];
    let mut gamma_max: f64 = -1.0;
    let mut wsum = 0.0;
    for (i, g) in grads.iter().enumerate() {
        let t = (i + 1) as f64;
        let y: Vec<f64> = (0..n)
            .map(|j| (1.0 - h.beta) * z[j] + h.beta * x[j])
            .collect();
        let warm = if (i as u64) < h.warm {
            t / h.warm as f64
        } else {
            1.0
        };
        let gamma = if h.adam {
            h.lr * warm * (1.0 - h.beta2.powf(t)).sqrt()
        } else {
            h.lr * warm
        };
        gamma_max = gamma_max.max(gamma);
        let w = t.powf(h.r) * gamma_max.powf(h.power);
        wsum += w;
        let c = if uniform {
            1.0 / t
        } else if wsum == 0.0 {
            0.0
        } else {
            w / wsum
        };
        for j in 0..n {
            let mut d = g[j];
            if h.adam {
                v[j] = h.beta2 * v[j] + (1.0 - h.beta2) * g[j] * g[j];
                d = g[j] / (v[j].sqrt() + h.eps);
            }
            d += h.wd * y[j];
            z[j] -= gamma * d;
            x[j] = (1.0 - c) * x[j] + c * z[j];
        }
    }
    let y = (0..n)
        .map(|j| (1.0 - h.beta) * z[j] + h.beta * x[j])
        .collect();
    (x, y)
}

fn inputs(seed: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut rng = seeded(seed);
    let mut p = vec![0.0; N];
    fill_normal(&mut rng, &mut p, 0.0, 2.0);
    let gs = (0..STEPS)
        .map(|_| {
            let mut g = vec![0.0; N];
            fill_normal(&mut rng, &mut g, 0.1, 1.0);
            g
        })
        .collect();
    (p, gs)
}

fn close(got: &[f64], want: &[f64], tol: f64) -> Result<(), String> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > tol * (1.0 + w.abs()) || g.is_nan() != w.is_nan() {
            return Err(format!("element {i}: kernel {g:e}, transcription {w:e}"));
        }
    }
    Ok(())
}

/// `(x, y)` from the kernel: 100 steps, then the eval view's parameters, then back to train.
fn replay<T: Element, R: ScheduleFreeRule<T>>(
    b: Backend,
    rule: R,
    p0: &[f64],
    gs: &[Vec<f64>],
) -> (Vec<f64>, Vec<f64>) {
    let e = exec(b);
    let mut p: Vec<T> = p0.iter().map(|&x| t(x)).collect();
    let mut s = vec![T::nan(); R::state_len(p0.len())]; // the first step initialises the state
    let mut train = TrainView::new(rule, &mut p, &mut s).unwrap();
    for g in gs {
        let g: Vec<T> = g.iter().map(|&x| t(x)).collect();
        train.step_with(&e, &g).unwrap();
    }
    let eval = train.eval_with(&e);
    let x = eval.params().iter().map(|a| a.widen()).collect();
    let train = eval.train_with(&e);
    let y = train.params().iter().map(|a| a.widen()).collect();
    (x, y)
}

fn cases() -> Vec<H> {
    let a = H {
        lr: 0.01,
        beta: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        wd: 0.0,
        warm: 0,
        r: 0.0,
        power: 2.0,
        adam: true,
    };
    vec![
        a,
        H {
            wd: 0.01,
            warm: 10,
            ..a
        },
        H {
            beta: 0.8,
            beta2: 0.99,
            eps: 1e-3,
            warm: 25,
            r: 1.0,
            ..a
        },
        H {
            lr: 0.05,
            adam: false,
            ..a
        },
        H {
            lr: 0.02,
            beta: 0.7,
            wd: 0.05,
            warm: 20,
            r: 0.5,
            adam: false,
            ..a
        },
    ]
}

fn check_case(seed: u64, h: H) {
    let (p0, gs) = inputs(seed);
    let (wx, wy) = paper_literal(&p0, &gs, h, false);
    for b in backends() {
        let ((x64, y64), (x32, y32)) = if h.adam {
            (
                replay::<f64, _>(
                    b,
                    adamw(h.lr, h.beta, h.beta2, h.eps, h.wd, h.warm, h.r),
                    &p0,
                    &gs,
                ),
                replay::<f32, _>(
                    b,
                    adamw(h.lr, h.beta, h.beta2, h.eps, h.wd, h.warm, h.r),
                    &p0,
                    &gs,
                ),
            )
        } else {
            (
                replay::<f64, _>(b, sgd(h.lr, h.beta, h.wd, h.warm, h.r), &p0, &gs),
                replay::<f32, _>(b, sgd(h.lr, h.beta, h.wd, h.warm, h.r), &p0, &gs),
            )
        };
        close(&x64, &wx, 1e-11).unwrap_or_else(|e| panic!("{h:?} f64 x on {b}: {e}"));
        close(&y64, &wy, 1e-11).unwrap_or_else(|e| panic!("{h:?} f64 y on {b}: {e}"));
        close(&x32, &wx, 1e-4).unwrap_or_else(|e| panic!("{h:?} f32 x on {b}: {e}"));
        close(&y32, &wy, 1e-4).unwrap_or_else(|e| panic!("{h:?} f32 y on {b}: {e}"));
    }
}

#[test]
fn schedule_free_matches_paper_transcription() {
    for (i, h) in cases().into_iter().enumerate() {
        check_case(60 + i as u64, h);
    }
}

/// The comparison can fail: uniform `1/t` averaging weights (wrong under warm-up), and the
/// parameters at y where x is expected.
#[test]
fn transcription_comparison_rejects_wrong_formulas() {
    let h = cases()[1];
    let (p0, gs) = inputs(61);
    let (x, y) = replay::<f64, _>(
        Backend::Scalar,
        adamw(h.lr, h.beta, h.beta2, h.eps, h.wd, h.warm, h.r),
        &p0,
        &gs,
    );
    let (ux, _) = paper_literal(&p0, &gs, h, true);
    assert!(
        close(&x, &ux, 1e-11).is_err(),
        "uniform weights not rejected"
    );
    let (wx, _) = paper_literal(&p0, &gs, h, false);
    assert!(close(&y, &wx, 1e-11).is_err(), "y not told from x");
}

/// Before the first step there is no z: the switches change nothing; after steps, a round trip
/// y → x → y returns y to rounding.
#[test]
fn switches() {
    let p0: Vec<f64> = (0..29).map(|i| i as f64 * 0.3 - 4.0).collect();
    let mut p = p0.clone();
    let mut s = vec![7.0; 2 * p.len()];
    let rule = ScheduleFreeAdamW::new(0.1f64);
    let train = TrainView::new(rule, &mut p, &mut s).unwrap();
    let eval = train.eval();
    assert_eq!(eval.params(), &p0[..]);
    let mut train = eval.train();
    assert_eq!(train.params(), &p0[..]);
    for _ in 0..5 {
        let g: Vec<f64> = train.params().iter().map(|y| 2.0 * y).collect();
        train.step(&g).unwrap();
    }
    let y: Vec<f64> = train.params().to_vec();
    let eval = train.eval();
    assert!(
        close(eval.params(), &y, 1e-3).is_err(),
        "x equals y: the switch did nothing"
    );
    let train = eval.train();
    close(train.params(), &y, 1e-14).unwrap();
    assert_eq!(train.counters().k, 5);
}

// ------------------------------------------------------------------------------ typed errors

#[test]
fn rejected_calls_change_nothing() {
    let n = 19;
    let mut rng = seeded(4);
    let p0: Vec<f32> = mixed::<f32>(&mut rng, n, 3.0, 0.0);
    let s0: Vec<f32> = mixed::<f32>(&mut rng, 2 * n, 3.0, 0.0);
    let good = ScheduleFreeAdamW::new(1e-2f32);
    let hyper = |r: ScheduleFreeAdamW<f32>, name: &str| {
        let (mut p, mut s) = (p0.clone(), s0.clone());
        match TrainView::new(r, &mut p, &mut s) {
            Err(Error::InvalidHyperParameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: {other:?}"),
        }
    };
    hyper(ScheduleFreeAdamW { lr: -1.0, ..good }, "lr");
    hyper(ScheduleFreeAdamW { beta1: 0.0, ..good }, "beta1");
    hyper(ScheduleFreeAdamW { beta1: 1.0, ..good }, "beta1");
    hyper(ScheduleFreeAdamW { beta2: 1.0, ..good }, "beta2");
    hyper(ScheduleFreeAdamW { eps: 0.0, ..good }, "eps");
    hyper(
        ScheduleFreeAdamW {
            weight_decay: f32::NAN,
            ..good
        },
        "weight_decay",
    );
    hyper(ScheduleFreeAdamW { r: -1.0, ..good }, "r");
    hyper(
        ScheduleFreeAdamW {
            weight_lr_power: f32::INFINITY,
            ..good
        },
        "weight_lr_power",
    );
    let mut p = p0.clone();
    let mut s = s0.clone();
    assert!(matches!(
        TrainView::new(
            ScheduleFreeSgd {
                momentum: 1.0,
                ..ScheduleFreeSgd::new(1.0f32)
            },
            &mut p,
            &mut s[..n]
        ),
        Err(Error::InvalidHyperParameter {
            name: "momentum",
            ..
        })
    ));
    assert!(matches!(
        TrainView::new(good, &mut p, &mut s[..2 * n - 1]),
        Err(Error::LengthMismatch {
            buffer: "state",
            ..
        })
    ));
    assert!(matches!(
        TrainView::resume(
            good,
            &mut p,
            &mut s,
            ScheduleFreeState {
                weight_sum: f64::NAN,
                ..ScheduleFreeState::new()
            }
        ),
        Err(Error::InvalidHyperParameter { .. })
    ));
    // A short gradient: nothing changes, counters included.
    let mut train = TrainView::new(good, &mut p, &mut s).unwrap();
    train.step(&vec![0.5; n]).unwrap();
    let (pp, ss, cc) = (
        train.params().to_vec(),
        train.state().to_vec(),
        train.counters(),
    );
    let e = train
        .step_with(&Exec::scalar(), &vec![0.5; n - 1])
        .unwrap_err();
    assert!(matches!(
        e,
        Error::LengthMismatch {
            buffer: "grads",
            ..
        }
    ));
    assert_same("params", train.params(), &pp);
    assert_same("state", train.state(), &ss);
    assert_eq!(train.counters(), cc);
}

/// The step counter's bound: resuming above `MAX_STEPS` is rejected; from `MAX_STEPS − 1` one
/// step succeeds (the views' key counters `2·k` and `2·k + 1` stay inside `u64`), the switches
/// work, and the next step is rejected with nothing written, counters included.
#[test]
fn step_counter_bound_is_an_error_not_an_overflow() {
    use descent_kernels::rules::schedule_free::MAX_STEPS;
    use descent_kernels::{EvalView, Rounding};
    let n = 5;
    let rule = ScheduleFreeAdamW::new(1e-2f32);
    // bf16 parameters under stochastic rounding: the steps and switches draw random bits keyed by
    // the largest counters.
    let (mut p, mut s) = (vec![half::bf16::from_f32(0.25); n], vec![0.0f32; 2 * n]);
    let at = |k| ScheduleFreeState {
        k,
        lr_max: 1e-2,
        weight_sum: 1.0,
    };
    assert!(matches!(
        TrainView::resume(rule, &mut p, &mut s, at(MAX_STEPS + 1)),
        Err(Error::InvalidStep { step }) if step == MAX_STEPS + 1
    ));
    assert!(matches!(
        EvalView::resume(rule, &mut p, &mut s, at(u64::MAX)),
        Err(Error::InvalidStep { step: u64::MAX })
    ));
    let exec = Exec::active().with_rounding(Rounding::stochastic(7, 0));
    let mut train = TrainView::resume(rule, &mut p, &mut s, at(MAX_STEPS - 1)).unwrap();
    train.step_with(&exec, &vec![0.5f32; n]).unwrap();
    assert_eq!(train.counters().k, MAX_STEPS);
    let mut train = train.eval_with(&exec).train_with(&exec);
    let (pp, ss, cc) = (
        train.params().to_vec(),
        train.state().to_vec(),
        train.counters(),
    );
    assert!(matches!(
        train.step_with(&exec, &vec![0.5f32; n]),
        Err(Error::InvalidStep { step }) if step == MAX_STEPS.wrapping_add(1)
    ));
    let bits = |v: &[half::bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<u16>>();
    assert_eq!(bits(train.params()), bits(&pp));
    assert_same("state", train.state(), &ss);
    assert_eq!(train.counters(), cc);
}
