//! Soak test (ignored by default): trains the kernels' two-layer MLP for many steps with every
//! update rule, on `f32` storage and on `bf16` storage (round-to-nearest and stochastic
//! rounding), and asserts that
//! - no parameter, optimizer state, average or loss ever becomes NaN or infinite;
//! - the step counter handed to the kernels advanced by exactly one per step and every call
//!   succeeded (no skipped or repeated step), and the learning-rate schedule computed from it
//!   ends at its closed-form value;
//! - two runs from the same seed are bit-identical (parameters, state, averages, loss sum).
//!
//! `DESCENT_SOAK_STEPS` sets the number of steps per run (default 10^6; CI runs fewer, see
//! README "Reliability"):
//!
//! ```sh
//! cargo test --release -p descent-harness --test soak -- --ignored --nocapture
//! ```

use descent_kernels::models::{Activation, Mlp};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::reduced::{self, Rounding, StochasticKey};
use descent_kernels::{Adam, Exec, Gd, Lion, Sgd, SignDescent, Signum, Storage};
use half::bf16;

const BATCH: usize = 16;
const HIDDEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    Gd,
    Sgd,
    Nesterov,
    Adam,
    AdamW,
    AmsGrad,
    Sign,
    Signum,
    Lion,
}

const RULES: [Rule; 9] = [
    Rule::Gd,
    Rule::Sgd,
    Rule::Nesterov,
    Rule::Adam,
    Rule::AdamW,
    Rule::AmsGrad,
    Rule::Sign,
    Rule::Signum,
    Rule::Lion,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Store {
    F32,
    Bf16Nearest,
    Bf16Stochastic,
}

/// Everything a run ends with, as bits.
#[derive(Debug, PartialEq)]
struct Outcome {
    params: Vec<u32>,
    state: Vec<u32>,
    ema: Vec<u32>,
    loss_sum: u64,
    steps: u64,
    calls_ok: u64,
    last_lr: f32,
}

/// Cosine schedule with warm-up over `total` steps, from the 1-based step number.
fn schedule(base: f32, step: u64, total: u64) -> f32 {
    let warm = (total / 100).max(1);
    let f = if step <= warm {
        step as f64 / warm as f64
    } else {
        let t = (step - warm) as f64 / (total - warm).max(1) as f64;
        0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    };
    (base as f64 * f) as f32
}

fn draw(rng: &mut Xoshiro256PlusPlus, x: &mut [f32], y: &mut [u32]) {
    for (p, l) in x.chunks_exact_mut(2).zip(y.iter_mut()) {
        p[0] = (2.0 * uniform01(rng) - 1.0) as f32;
        p[1] = (2.0 * uniform01(rng) - 1.0) as f32;
        *l = (p[0] * p[1] > 0.0) as u32;
    }
}

fn finite(what: &str, rule: Rule, store: Store, step: u64, v: &[f32]) {
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        panic!("{rule:?} {store:?} step {step}: {what}[{i}] = {}", v[i]);
    }
}

fn train(rule: Rule, store: Store, steps: u64, seed: u64) -> Outcome {
    let mlp = Mlp::new(2, HIDDEN, 2, Activation::Relu);
    let np = mlp.param_len();
    let mut rng = seeded(seed);
    let round_seed = seed ^ 0x5eed;
    let mut params = vec![0.0f32; np];
    fill_normal(&mut rng, &mut params[..2 * HIDDEN], 0.0, 1.0);
    let w2 = 3 * HIDDEN;
    fill_normal(
        &mut rng,
        &mut params[w2..w2 + 2 * HIDDEN],
        0.0,
        (2.0 / HIDDEN as f64).sqrt(),
    );
    let mut grads = vec![0.0f32; np];
    let mut ws = vec![0.0f32; mlp.workspace_len(BATCH)];
    let (mut x, mut y) = (vec![0.0f32; 2 * BATCH], vec![0u32; BATCH]);
    // Optimizer state (up to three buffers) and an EMA of the parameters, in f32 or bf16.
    let mut state = vec![0.0f32; 3 * np];
    let mut ema = params.clone();
    let to16 = |v: &[f32]| -> Vec<bf16> { v.iter().map(|&a| bf16::from_f32(a)).collect() };
    let mut p16 = to16(&params);
    let mut s16 = to16(&state);
    let mut ema16 = to16(&ema);
    let base = base_of(rule);
    let (mut loss_sum, mut calls_ok, mut step, mut lr) = (0.0f64, 0u64, 0u64, 0.0f32);
    for _ in 0..steps {
        step += 1;
        lr = schedule(base, step, steps);
        draw(&mut rng, &mut x, &mut y);
        if store != Store::F32 {
            // The f32 view of the bf16 parameters (widening is exact).
            reduced::convert(&p16, &mut params).unwrap();
        }
        let loss = mlp.forward(BATCH, &params, &x, &y, None, &mut ws).unwrap();
        mlp.backward(BATCH, &params, &x, &y, &mut ws, &mut grads)
            .unwrap();
        assert!(
            loss.is_finite(),
            "{rule:?} {store:?} step {step}: loss {loss}"
        );
        loss_sum += loss as f64;
        let r = match store {
            Store::F32 => {
                let exec = Exec::active();
                step_any(rule, &exec, lr, step, &mut params, &grads, &mut state)
                    .and_then(|()| descent_kernels::ema(&mut ema, &params, 0.999))
            }
            Store::Bf16Nearest | Store::Bf16Stochastic => {
                // Counter-based stochastic rounding: one key per step; the EMA is its own stream.
                let rr = StochasticKey::new(round_seed).with_counter(step);
                let exec = Exec::active().with_rounding(rounding(store, rr));
                let ema_exec = Exec::active().with_rounding(rounding(store, rr.with_stream(1)));
                step_any(rule, &exec, lr, step, &mut p16, &grads, &mut s16)
                    .and_then(|()| descent_kernels::ema_with(&ema_exec, &mut ema16, &p16, 0.999))
            }
        };
        r.unwrap_or_else(|e| panic!("{rule:?} {store:?} step {step}: {e}"));
        calls_ok += 1;
        if store == Store::F32 {
            finite("params", rule, store, step, &params);
            finite("state", rule, store, step, &state);
            finite("ema", rule, store, step, &ema);
        } else {
            let w = |v: &[bf16]| -> Vec<f32> { v.iter().map(|b| b.to_f32()).collect() };
            finite("params", rule, store, step, &w(&p16));
            finite("state", rule, store, step, &w(&s16));
            finite("ema", rule, store, step, &w(&ema16));
        }
    }
    let bits32 = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let bits16 = |v: &[bf16]| v.iter().map(|x| x.to_bits() as u32).collect::<Vec<_>>();
    let (params, state, ema) = if store == Store::F32 {
        (
            bits32(&params),
            state.iter().map(|x| x.to_bits()).collect(),
            bits32(&ema),
        )
    } else {
        (bits16(&p16), bits16(&s16), bits16(&ema16))
    };
    Outcome {
        params,
        state,
        ema,
        loss_sum: loss_sum.to_bits(),
        steps: step,
        calls_ok,
        last_lr: lr,
    }
}

#[test]
#[ignore = "soak: minutes; run with --ignored (DESCENT_SOAK_STEPS sets the length)"]
fn soak_every_rule_f32_and_bf16() {
    let steps: u64 = std::env::var("DESCENT_SOAK_STEPS")
        .map(|s| s.parse().expect("DESCENT_SOAK_STEPS: a step count"))
        .unwrap_or(1_000_000);
    assert!(steps >= 100, "DESCENT_SOAK_STEPS: at least 100");
    let start = std::time::Instant::now();
    for (i, rule) in RULES.into_iter().enumerate() {
        for store in [Store::F32, Store::Bf16Nearest, Store::Bf16Stochastic] {
            let t = std::time::Instant::now();
            let a = train(rule, store, steps, 100 + i as u64);
            let b = train(rule, store, steps, 100 + i as u64);
            assert_eq!(a.steps, steps, "{rule:?} {store:?}: step counter");
            assert_eq!(a.calls_ok, steps, "{rule:?} {store:?}: optimizer calls");
            assert_eq!(
                a.last_lr,
                (base_of(rule) as f64 * 0.1) as f32,
                "{rule:?} {store:?}: the schedule's closed form at the last step"
            );
            assert!(a == b, "{rule:?} {store:?}: two runs differ");
            println!(
                "soak {rule:?} {store:?}: {steps} steps twice, mean loss {:.4}, {:.1} s",
                f64::from_bits(a.loss_sum) / steps as f64,
                t.elapsed().as_secs_f64()
            );
        }
    }
    println!("soak: {:.1} s in all", start.elapsed().as_secs_f64());
}

/// How a bf16 run rounds (stochastic: keyed by the run's seed and the step).
/// One step of `rule` with learning rate `lr` through the kernels' rule interface, on the first
/// `state_len(n)` elements of `state`.
fn step_any<P: Storage, S: Storage>(
    rule: Rule,
    exec: &Exec,
    lr: f32,
    step: u64,
    p: &mut [P],
    grads: &[f32],
    state: &mut [S],
) -> Result<(), descent_kernels::Error> {
    fn go<R: descent_kernels::Rule, P: Storage, S: Storage>(
        r: R,
        exec: &Exec,
        step: u64,
        p: &mut [P],
        g: &[f32],
        state: &mut [S],
    ) -> Result<(), descent_kernels::Error> {
        let sl = r.state_len(p.len());
        r.step_with(exec, step, p, g, &mut state[..sl])
    }
    let sgd = Sgd::new(lr, 0.9);
    match rule {
        Rule::Gd => go(Gd::new(lr), exec, step, p, grads, state),
        Rule::Sgd => go(sgd, exec, step, p, grads, state),
        Rule::Nesterov => go(
            Sgd {
                nesterov: true,
                ..sgd
            },
            exec,
            step,
            p,
            grads,
            state,
        ),
        Rule::Adam => go(Adam::new(lr), exec, step, p, grads, state),
        Rule::AdamW => go(Adam::adamw(lr, 0.01), exec, step, p, grads, state),
        Rule::AmsGrad => go(Adam::new(lr).amsgrad(), exec, step, p, grads, state),
        Rule::Sign => go(SignDescent::new(lr), exec, step, p, grads, state),
        Rule::Signum => go(Signum::new(lr, 0.9), exec, step, p, grads, state),
        Rule::Lion => go(Lion::new(lr), exec, step, p, grads, state),
    }
}

fn rounding(store: Store, key: StochasticKey) -> Rounding {
    match store {
        Store::Bf16Stochastic => Rounding::Stochastic(key),
        _ => Rounding::NearestEven,
    }
}

/// Base learning rate of each rule.
fn base_of(rule: Rule) -> f32 {
    match rule {
        Rule::Gd | Rule::Sgd | Rule::Nesterov => 0.05,
        Rule::Sign | Rule::Signum | Rule::Lion => 0.002,
        _ => 0.005,
    }
}
