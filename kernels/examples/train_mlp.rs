//! Training a model with the toolkit: a two-layer MLP on a synthetic task (label = whether the two
//! inputs have the same sign, which no linear model learns), trained with AdamW over two parameter
//! groups (weights with decay, biases without), a warm-up + cosine schedule and global-norm
//! clipping; halfway through, the optimizer, the parameters and the state are checkpointed to a
//! file, everything is thrown away, restored from the file, and training finishes. The result is
//! compared bit for bit with a run that never stopped.
//!
//! `cargo run --release -p descent-kernels --example train_mlp [checkpoint path]`

use descent_kernels::models::{Activation, Mlp};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::train::{warmup_cosine, Group, GroupSettings, Optimizer, Schedule};
use descent_kernels::{Adam, Rule};

const HIDDEN: usize = 32;
const BATCH: usize = 128;
const STEPS: u64 = 600;

/// A batch of points in [-1, 1]² and their labels.
fn batch(rng: &mut Xoshiro256PlusPlus, n: usize) -> (Vec<f32>, Vec<u32>) {
    let x: Vec<f32> = (0..2 * n)
        .map(|_| (2.0 * uniform01(rng) - 1.0) as f32)
        .collect();
    let y = x
        .chunks_exact(2)
        .map(|p| (p[0] * p[1] > 0.0) as u32)
        .collect();
    (x, y)
}

/// The four parameter blocks `[W1 | b1 | W2 | b2]` as groups: decay on weights only.
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

/// The model, its gradients, the optimizer state and the data stream.
struct Run<S> {
    mlp: Mlp<f32>,
    params: Vec<f32>,
    grads: Vec<f32>,
    state: Vec<f32>,
    ws: Vec<f32>,
    opt: Optimizer<Adam<f32>, S>,
}

impl<S: Schedule + core::fmt::Debug + Copy> Run<S> {
    fn new(schedule: S, seed: u64) -> Self {
        let mlp = Mlp::new(2, HIDDEN, 2, Activation::Relu);
        let mut params = vec![0.0f32; mlp.param_len()];
        let mut rng = seeded(seed);
        fill_normal(&mut rng, &mut params[..2 * HIDDEN], 0.0, 1.0);
        let w2 = 3 * HIDDEN;
        fill_normal(&mut rng, &mut params[w2..w2 + 2 * HIDDEN], 0.0, 0.25);
        let opt = Optimizer::new(Adam::adamw(0.0, 0.01), schedule)
            .expect("valid rule")
            .with_clip_norm(1.0)
            .expect("valid bound");
        let state = vec![0.0f32; opt.rule().state_len(params.len())];
        Run {
            ws: vec![0.0; mlp.workspace_len(BATCH)],
            grads: vec![0.0; params.len()],
            mlp,
            params,
            state,
            opt,
        }
    }

    /// Trains until the optimizer has taken `until` steps; the batch of step `t` is drawn from
    /// a stream keyed by `t`, so a resumed run sees the same data.
    fn train(&mut self, until: u64) {
        while self.opt.steps() < until {
            let mut rng = seeded(1000 + self.opt.steps());
            let (x, y) = batch(&mut rng, BATCH);
            self.mlp
                .forward(BATCH, &self.params, &x, &y, None, &mut self.ws)
                .expect("shapes");
            self.mlp
                .backward(BATCH, &self.params, &x, &y, &mut self.ws, &mut self.grads)
                .expect("shapes");
            let mut groups = groups(&mut self.params, &mut self.grads);
            self.opt
                .step(&mut groups, &mut self.state)
                .expect("valid step");
        }
    }

    fn accuracy(&self) -> f64 {
        let n = 2000;
        let (x, y) = batch(&mut seeded(7), n);
        let mut ws = vec![0.0f32; self.mlp.workspace_len(n)];
        self.mlp
            .forward(n, &self.params, &x, &y, None, &mut ws)
            .expect("shapes");
        let logits = self.mlp.logits(n, &ws);
        let right = logits
            .chunks_exact(2)
            .zip(&y)
            .filter(|(l, &t)| ((l[1] > l[0]) as u32) == t)
            .count();
        right as f64 / n as f64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("descent-train-mlp.ckpt"));
    let schedule = warmup_cosine(0.0, 0.02, 30, STEPS, 1e-4)?;

    // Uninterrupted.
    let mut straight = Run::new(schedule, 42);
    straight.train(STEPS);

    // Interrupted halfway: checkpoint to a file, drop everything, restore, finish.
    let mut first = Run::new(schedule, 42);
    first.train(STEPS / 2);
    let g = groups(&mut first.params, &mut first.grads);
    let mut bytes = vec![0u8; first.opt.checkpoint_len::<f32, f32>(&g)];
    let used = first.opt.save(&g, &first.state, &mut bytes)?;
    std::fs::write(&path, &bytes[..used])?;
    drop(first);

    let mut resumed = Run::new(schedule, 99); // other initial weights: all overwritten
    let saved = std::fs::read(&path)?;
    let mut g = groups(&mut resumed.params, &mut resumed.grads);
    resumed.opt.restore(&saved, &mut g, &mut resumed.state)?;
    resumed.train(STEPS);

    let same = straight
        .params
        .iter()
        .zip(&resumed.params)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let acc = resumed.accuracy();
    println!(
        "checkpoint: {used} bytes at step {} ({}); resumed run equals the uninterrupted one bit for bit: {same}; test accuracy {acc:.3}",
        STEPS / 2,
        path.display()
    );
    if !same || acc < 0.95 {
        return Err("resume was not bit-identical, or accuracy < 0.95".into());
    }
    Ok(())
}
