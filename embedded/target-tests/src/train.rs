//! On-device training demo with the toolkit: the two-layer `Mlp` (2 → 32 ReLU → 2) trained on a
//! seeded XOR-quadrant task (label = [x0·x1 > 0]; not linearly separable, a linear model scores
//! ~50%) by `train::Optimizer` with AdamW over the MLP's four parameter groups (weights with decay,
//! biases without), a warm-up + cosine schedule and global-norm clipping; batch 64, 600 steps in
//! 12 epochs of 50, printing the mean loss per epoch.
//!
//! It trains twice from the same seed: once straight through, and once interrupted after epoch 6:
//! the optimizer, parameters and state are checkpointed into a static byte buffer, the optimizer
//! is replaced by a fresh one and the model and state are overwritten, then restored from the
//! bytes and trained to the end. The final weights must equal the uninterrupted run's bit for bit,
//! and the accuracy on 1024 fresh test points must be at least 95%. Every float buffer comes from
//! the f32 arena, the checkpoint from a static byte buffer, so the demo's RAM is part of the
//! static RAM `llvm-size` reports. Runs on hard-float targets (soft-float would take ~50× the
//! emulation time).

use crate::real::Bump;
use crate::{out, Suite};
use descent_kernels::models::{Activation, Mlp};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::train::{warmup_cosine, Group, GroupSettings, Optimizer, Schedule};
use descent_kernels::{Adam, Rule as _};

const BATCH: usize = 64;
const EPOCHS: usize = 12;
const STEPS_PER_EPOCH: usize = 50;
const TEST: usize = 1024;
const HIDDEN: usize = 32;
pub const MIN_ACCURACY: f64 = 0.95;

/// The checkpoint buffer (the demo's is about 2.3 KB).
static mut CHECKPOINT: [u8; 4096] = [0; 4096];

fn draw(rng: &mut Xoshiro256PlusPlus, x: &mut [f32], y: &mut [u32]) {
    for (p, l) in x.chunks_exact_mut(2).zip(y.iter_mut()) {
        p[0] = (2.0 * uniform01(rng) - 1.0) as f32;
        p[1] = (2.0 * uniform01(rng) - 1.0) as f32;
        *l = (p[0] * p[1] > 0.0) as u32;
    }
}

/// `[W1 | b1 | W2 | b2]` as four groups: decay on the weights only.
fn groups<'a>(params: &'a mut [f32], grads: &'a mut [f32]) -> [Group<'a, f32, f32>; 4] {
    let (w1, rest) = params.split_at_mut(2 * HIDDEN);
    let (b1, rest) = rest.split_at_mut(HIDDEN);
    let (w2, b2) = rest.split_at_mut(2 * HIDDEN);
    let (gw1, rest) = grads.split_at_mut(2 * HIDDEN);
    let (gb1, rest) = rest.split_at_mut(HIDDEN);
    let (gw2, gb2) = rest.split_at_mut(2 * HIDDEN);
    [
        Group::new(w1, gw1),
        Group::new(b1, gb1).with(GroupSettings::NO_DECAY),
        Group::new(w2, gw2),
        Group::new(b2, gb2).with(GroupSettings::NO_DECAY),
    ]
}

/// The model's buffers, borrowed from the arena.
struct Model<'a> {
    mlp: Mlp<f32>,
    params: &'a mut [f32],
    grads: &'a mut [f32],
    state: &'a mut [f32],
    ws: &'a mut [f32],
    x: &'a mut [f32],
    labels: [u32; BATCH],
}

impl Model<'_> {
    /// Seeded He-style init for W1 (fan-in 2) and W2 (fan-in 32), zero biases and state.
    fn init(&mut self, seed: u64) {
        let mut rng = seeded(seed);
        self.params.fill(0.0);
        self.state.fill(0.0);
        fill_normal(&mut rng, &mut self.params[..2 * HIDDEN], 0.0, 1.0);
        let w2 = 3 * HIDDEN;
        let std = libm::sqrt(2.0 / HIDDEN as f64);
        fill_normal(&mut rng, &mut self.params[w2..w2 + 2 * HIDDEN], 0.0, std);
    }

    /// Trains until `opt` has taken `until` steps (the batch of step `t` comes from a stream
    /// keyed by `t`, so a resumed run sees the same data); prints each finished epoch's mean loss.
    fn train<S: Schedule + core::fmt::Debug>(
        &mut self,
        opt: &mut Optimizer<Adam<f32>, S>,
        until: u64,
        print: bool,
    ) -> bool {
        let mut ok = true;
        let mut loss_sum = 0.0f32;
        while opt.steps() < until {
            let mut rng = seeded(1000 + opt.steps());
            draw(&mut rng, self.x, &mut self.labels);
            match self
                .mlp
                .forward(BATCH, self.params, self.x, &self.labels, None, self.ws)
            {
                Ok(l) => loss_sum += l,
                Err(_) => ok = false,
            }
            ok &= self
                .mlp
                .backward(
                    BATCH,
                    self.params,
                    self.x,
                    &self.labels,
                    self.ws,
                    self.grads,
                )
                .is_ok();
            let mut g = groups(self.params, self.grads);
            ok &= opt.step(&mut g, self.state).is_ok();
            if opt.steps() % STEPS_PER_EPOCH as u64 == 0 {
                if print {
                    out!(
                        "train epoch {:2}: mean loss {:.4}\n",
                        opt.steps() / STEPS_PER_EPOCH as u64,
                        loss_sum / STEPS_PER_EPOCH as f32
                    );
                }
                loss_sum = 0.0;
            }
        }
        ok
    }

    fn accuracy(&mut self, ok: &mut bool) -> (f64, usize) {
        let mut rng = seeded(7);
        let mut correct = 0;
        for _ in 0..TEST / BATCH {
            draw(&mut rng, self.x, &mut self.labels);
            *ok &= self
                .mlp
                .forward(BATCH, self.params, self.x, &self.labels, None, self.ws)
                .is_ok();
            let logits = self.mlp.logits(BATCH, self.ws);
            correct += logits
                .chunks_exact(2)
                .zip(&self.labels)
                .filter(|(l, &t)| ((l[1] > l[0]) as u32) == t)
                .count();
        }
        (correct as f64 / TEST as f64, correct)
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
    let steps = (EPOCHS * STEPS_PER_EPOCH) as u64;
    let Ok(schedule) = warmup_cosine(0.0, 0.02, 30, steps, 1e-4) else {
        s.check("train_mlp_optimizer", "schedule", false);
        return;
    };
    let new_opt =
        || Optimizer::new(Adam::adamw(0.0f32, 0.01), schedule).and_then(|o| o.with_clip_norm(1.0));
    let mut al = Bump::new(a32);
    let mlp = Mlp::new(2, HIDDEN, 2, Activation::Relu);
    let np = mlp.param_len();
    let adam = Adam::adamw(0.0f32, 0.01);
    let reference = al.take(np);
    let mut m = Model {
        mlp,
        params: al.take(np),
        grads: al.take(np),
        state: al.take(adam.state_len(np)),
        ws: al.take(mlp.workspace_len(BATCH)),
        x: al.take(2 * BATCH),
        labels: [0; BATCH],
    };
    let (Ok(mut straight), Ok(mut first), Ok(mut second)) = (new_opt(), new_opt(), new_opt())
    else {
        s.check("train_mlp_optimizer", "valid optimizer", false);
        return;
    };
    // Uninterrupted.
    m.init(2024);
    let mut ok = m.train(&mut straight, steps, true);
    reference.copy_from_slice(m.params);
    // Interrupted after half the epochs: checkpoint, wipe, restore, finish.
    m.init(2024);
    ok &= m.train(&mut first, steps / 2, false);
    // SAFETY: the demo is the only user of CHECKPOINT and runs once, single-threaded.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(CHECKPOINT) };
    let g = groups(m.params, m.grads);
    let saved = first.save(&g, m.state, buf);
    let used = saved.unwrap_or(0);
    ok &= saved.is_ok();
    m.init(99); // other weights and zero state: all overwritten by the restore
    let mut g = groups(m.params, m.grads);
    ok &= second.restore(&buf[..used], &mut g, m.state).is_ok();
    ok &= second.steps() == steps / 2;
    ok &= m.train(&mut second, steps, false);
    let same = m
        .params
        .iter()
        .zip(reference.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let (acc, correct) = m.accuracy(&mut ok);
    out!(
        "train accuracy {:.4} ({correct}/{TEST}) after {steps} AdamW steps over 4 groups\n",
        acc
    );
    out!(
        "train checkpoint {used} bytes at step {}; resume bit-identical: {same}\n",
        steps / 2
    );
    s.check(
        "train_mlp_optimizer",
        "XOR quadrants: resumed run = uninterrupted bit for bit, test accuracy >= 0.95",
        ok && same && acc >= MIN_ACCURACY,
    );
}
