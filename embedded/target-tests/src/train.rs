//! On-device training demo: the two-layer `Mlp` (2 → 32 ReLU → 2) trained with `Adam` on a seeded
//! XOR-quadrant task (label = [x0·x1 > 0]; not linearly separable, a linear model scores ~50%),
//! batch 64, 600 steps in 12 epochs of 50, printing the mean loss per epoch, then the accuracy on
//! 1024 fresh test points, which must be at least 95%. Every buffer comes from the f32 arena
//! (parameters, gradients, Adam's m and v: 4 × 162; workspace 101 × 64; one batch 3 × 64), so the
//! demo's RAM is part of the firmware's static RAM that `llvm-size` reports.
//! Runs on hard-float targets (soft-float would take ~50× the emulation time).

use crate::real::Bump;
use crate::{out, Suite};
use descent_kernels::models::{Activation, Mlp};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::{Adam, Rule as _};

const BATCH: usize = 64;
const EPOCHS: usize = 12;
const STEPS_PER_EPOCH: usize = 50;
const TEST: usize = 1024;
pub const MIN_ACCURACY: f64 = 0.95;

fn draw(rng: &mut Xoshiro256PlusPlus, x: &mut [f32], y: &mut [u32]) {
    for (p, l) in x.chunks_exact_mut(2).zip(y.iter_mut()) {
        p[0] = (2.0 * uniform01(rng) - 1.0) as f32;
        p[1] = (2.0 * uniform01(rng) - 1.0) as f32;
        *l = (p[0] * p[1] > 0.0) as u32;
    }
}

pub fn run(s: &mut Suite, a32: &mut [f32]) {
    let hard_float = cfg!(any(
        target_abi = "eabihf",
        all(target_arch = "riscv32", target_feature = "f"),
        target_arch = "aarch64",
        target_arch = "wasm32"
    ));
    if !hard_float {
        out!("train: skipped on this soft-float target\n");
        return;
    }
    let mut al = Bump::new(a32);
    let mut rng = seeded(2024);
    let mlp = Mlp::new(2, 32, 2, Activation::Relu);
    let np = mlp.param_len();
    let adam = Adam::new(0.01f32);
    // Adam's state: m then v, np elements each.
    let (params, grads, state) = (al.take(np), al.take(np), al.take(adam.state_len(np)));
    let ws = al.take(mlp.workspace_len(BATCH));
    let x = al.take(2 * BATCH);
    let mut labels = [0u32; BATCH];
    // He-style init for W1 (fan-in 2) and W2 (fan-in 32); zero biases.
    fill_normal(&mut rng, &mut params[..64], 0.0, 1.0);
    fill_normal(&mut rng, &mut params[96..160], 0.0, libm::sqrt(2.0 / 32.0));
    let mut ok = true;
    let mut step = 0u64;
    for epoch in 1..=EPOCHS {
        let mut loss_sum = 0.0f32;
        for _ in 0..STEPS_PER_EPOCH {
            step += 1;
            draw(&mut rng, x, &mut labels);
            match mlp.forward(BATCH, params, x, &labels, None, ws) {
                Ok(l) => loss_sum += l,
                Err(_) => ok = false,
            }
            ok &= mlp.backward(BATCH, params, x, &labels, ws, grads).is_ok();
            ok &= adam.step(step, params, grads, state).is_ok();
        }
        out!(
            "train epoch {epoch:2}: mean loss {:.4}\n",
            loss_sum / STEPS_PER_EPOCH as f32
        );
    }
    let mut correct = 0;
    for _ in 0..TEST / BATCH {
        draw(&mut rng, x, &mut labels);
        ok &= mlp.forward(BATCH, params, x, &labels, None, ws).is_ok();
        let logits = mlp.logits(BATCH, ws);
        correct += logits
            .chunks_exact(2)
            .zip(&labels)
            .filter(|(l, &t)| ((l[1] > l[0]) as u32) == t)
            .count();
    }
    let acc = correct as f64 / TEST as f64;
    out!(
        "train accuracy {:.4} ({correct}/{TEST}) after {step} Adam steps\n",
        acc
    );
    s.check(
        "train_mlp_adam",
        "XOR quadrants: test accuracy >= 0.95",
        ok && acc >= MIN_ACCURACY,
    );
}
