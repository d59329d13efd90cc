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
//!
//! A third run trains the same model from the same seeds (initialisation, batch stream) with the
//! same schedule, clipping and groups, but with 8-bit blockwise Adam state (`Adam8`, AdamW form,
//! decay on the weights only), stepped group by group as `Optimizer::step` steps its rule
//! (written before `train::Optimizer` took `Adam8`; the kernels' tests hold `Optimizer<Adam8, _>`
//! to exactly this group-by-group stepping).
//! It must meet the same criterion as the f32 demo, test accuracy >= 0.95 on the same 1024 test
//! points; the run prints both final losses and accuracies and the optimizer state of each, from
//! the kernels' length functions (`Rule::state_len` f32s, `Adam8::state_bytes` per group).

use crate::real::Bump;
use crate::{out, Suite};
use descent_kernels::models::{Activation, Mlp};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::train::{
    clip_grad_norm, warmup_cosine, Group, GroupSettings, NonFinite, Optimizer, Schedule,
};
use descent_kernels::{Adam, Adam8, Rule as _, WeightDecay};

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

    /// Forward and backward pass on the batch of step `t` (0-based; drawn from a stream keyed by
    /// `t`, so a resumed run sees the same data): (passes succeeded, mean batch loss).
    fn batch(&mut self, t: u64) -> (bool, f32) {
        let mut rng = seeded(1000 + t);
        draw(&mut rng, self.x, &mut self.labels);
        let (ok, loss) =
            match self
                .mlp
                .forward(BATCH, self.params, self.x, &self.labels, None, self.ws)
            {
                Ok(l) => (true, l),
                Err(_) => (false, 0.0),
            };
        let ok = ok
            && self
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
        (ok, loss)
    }

    /// Trains until `opt` has taken `until` steps; prints each finished epoch's mean loss if
    /// `print`. Returns (every call succeeded, the last finished epoch's mean loss).
    fn train<S: Schedule + core::fmt::Debug>(
        &mut self,
        opt: &mut Optimizer<Adam<f32>, S>,
        until: u64,
        print: bool,
    ) -> (bool, f32) {
        let mut ok = true;
        let (mut loss_sum, mut last) = (0.0f32, f32::NAN);
        while opt.steps() < until {
            let (good, l) = self.batch(opt.steps());
            ok &= good;
            loss_sum += l;
            let mut g = groups(self.params, self.grads);
            ok &= opt.step(&mut g, self.state).is_ok();
            if opt.steps() % STEPS_PER_EPOCH as u64 == 0 {
                last = loss_sum / STEPS_PER_EPOCH as f32;
                if print {
                    out!(
                        "train epoch {:2}: mean loss {:.4}\n",
                        opt.steps() / STEPS_PER_EPOCH as u64,
                        last
                    );
                }
                loss_sum = 0.0;
            }
        }
        (ok, last)
    }

    /// `steps` steps with 8-bit AdamW state, as `Optimizer::step` with `AdamW(0, 0.01)`, the
    /// schedule `sched`, clipping to global norm 1 and the four groups: the learning rate of step
    /// `t` is `sched.at(t − 1)`, the gradients of all groups are clipped together, then each
    /// group takes its own `Adam8` step (decoupled decay 0.01 on the weights, none on the biases)
    /// with its own codes and scales. Returns (every call succeeded, the last epoch's mean loss).
    fn train8<S: Schedule>(
        &mut self,
        sched: &S,
        steps: u64,
        codes: &mut [u8],
        scales: &mut [f32],
    ) -> (bool, f32) {
        let mut ok = true;
        let (mut loss_sum, mut last) = (0.0f32, f32::NAN);
        for t in 0..steps {
            let (good, l) = self.batch(t);
            ok &= good;
            loss_sum += l;
            let lr = sched.at(t);
            let mut g = groups(self.params, self.grads);
            {
                let [a, b, c, d] = &mut g;
                let mut gs = [&mut *a.grads, &mut *b.grads, &mut *c.grads, &mut *d.grads];
                ok &= clip_grad_norm(&mut gs, 1.0f32, NonFinite::Propagate).is_ok();
            }
            let (mut codes, mut scales) = (&mut *codes, &mut *scales);
            for grp in g.iter_mut() {
                let n = grp.params.len();
                let (c, rest) = codes.split_at_mut(Adam8::codes_len(n));
                codes = rest;
                let (sc, rest) = scales.split_at_mut(Adam8::scales_len(n));
                scales = rest;
                let k = Adam8 {
                    weight_decay: if grp.settings.weight_decay {
                        WeightDecay::Decoupled(0.01)
                    } else {
                        WeightDecay::None
                    },
                    ..Adam8::new(lr as f32)
                };
                ok &= k.step(t + 1, grp.params, grp.grads, c, sc).is_ok();
            }
            if (t + 1) % STEPS_PER_EPOCH as u64 == 0 {
                last = loss_sum / STEPS_PER_EPOCH as f32;
                loss_sum = 0.0;
            }
        }
        (ok, last)
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
    let (mut ok, loss) = m.train(&mut straight, steps, true);
    reference.copy_from_slice(m.params);
    // Interrupted after half the epochs: checkpoint, wipe, restore, finish.
    m.init(2024);
    ok &= m.train(&mut first, steps / 2, false).0;
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
    ok &= m.train(&mut second, steps, false).0;
    let same = m
        .params
        .iter()
        .zip(reference.iter())
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let (acc, correct) = m.accuracy(&mut ok);
    out!(
        "train accuracy {:.4} ({correct}/{TEST}) after {steps} AdamW steps over 4 groups; final epoch mean loss {loss:.4}\n",
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
    // 8-bit Adam state: the same training from the same seeds, the same accuracy criterion.
    let lens = [2 * HIDDEN, HIDDEN, 2 * HIDDEN, 2];
    let n_codes: usize = lens.iter().map(|&n| Adam8::codes_len(n)).sum();
    let n_scales: usize = lens.iter().map(|&n| Adam8::scales_len(n)).sum();
    let bytes8: usize = lens.iter().map(|&n| Adam8::state_bytes(n)).sum();
    let bytes32 = 4 * adam.state_len(np);
    let words = al.take(n_codes.div_ceil(4));
    // SAFETY: `words` is ⌈n_codes/4⌉ zeroed f32s (at least n_codes bytes), exclusively borrowed
    // for the arena's lifetime; u8 has no invalid bit patterns and alignment 1.
    let codes =
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), n_codes) };
    let scales = al.take(n_scales);
    m.init(2024);
    let (ok8, loss8) = m.train8(&schedule, steps, codes, scales);
    let mut ok8 = ok8;
    let (acc8, correct8) = m.accuracy(&mut ok8);
    out!(
        "train adam8 accuracy {:.4} ({correct8}/{TEST}) after {steps} 8-bit AdamW steps over 4 groups; final epoch mean loss {loss8:.4}\n",
        acc8
    );
    out!(
        "train optimizer state: f32 AdamW {bytes32} B, 8-bit AdamW {bytes8} B ({n_codes} B codes + {} B scales); saved {} B\n",
        4 * n_scales,
        bytes32 - bytes8
    );
    s.check(
        "train_mlp_adam8",
        "XOR quadrants with 8-bit AdamW state (same seeds, schedule, clipping): test accuracy >= 0.95",
        ok8 && acc8 >= MIN_ACCURACY,
    );
}
