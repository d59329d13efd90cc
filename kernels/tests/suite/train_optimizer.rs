//! The optimizer over parameter groups: equal to the rule called by hand with the schedule's rate
//! and the groups' settings; clipping and the non-finite policy; validation before writing; and
//! checkpoints: bit-identical resume on every backend, and rejected (never partial) restores of
//! truncated, corrupted or mismatched bytes.

use crate::common;

use common::backends;
use descent_kernels::random::{fill_normal, seeded, stream};
use descent_kernels::train::{
    clip_grad_norm_with, state_len, warmup_cosine, CheckpointError, Cosine, Group, GroupSettings,
    NonFinite, Optimizer, Schedule, StateCodec,
};
use descent_kernels::{
    Adam, Error, Exec, Lion, Rounding, Rule, Sgd, StochasticKey, Storage, WeightDecay,
};
use half::bf16;
use proptest::prelude::*;

/// Group lengths: weights (decay), biases (no decay), a frozen tensor, a half-rate tensor.
const LENS: [usize; 4] = [37, 5, 11, 8];
const SETTINGS: [GroupSettings; 4] = [
    GroupSettings::DEFAULT,
    GroupSettings::NO_DECAY,
    GroupSettings::FROZEN,
    GroupSettings {
        lr_scale: 0.5,
        ..GroupSettings::DEFAULT
    },
];
const TRAINABLE: usize = 37 + 5 + 8;

/// Parameters and gradients of the four groups.
#[derive(Clone, Debug, PartialEq)]
struct Model<P> {
    params: Vec<Vec<P>>,
    grads: Vec<Vec<f32>>,
}

impl<P: Copy> Model<P> {
    fn new(seed: u64, to: impl Fn(f32) -> P) -> Self {
        let mut rng = seeded(seed);
        let params = LENS
            .iter()
            .map(|&n| {
                let mut v = vec![0.0f32; n];
                fill_normal(&mut rng, &mut v, 0.0, 1.0);
                v.into_iter().map(&to).collect()
            })
            .collect();
        Model {
            params,
            grads: LENS.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }

    /// Gradients of step `t`: a pull towards 0.3 plus seeded noise (depends on `t` only).
    fn fill_grads(&mut self, t: u64, widen: impl Fn(P) -> f32) {
        let mut rng = stream(99, t as u32);
        for (g, p) in self.grads.iter_mut().zip(&self.params) {
            fill_normal(&mut rng, g, 0.0, 0.5);
            for (gi, &pi) in g.iter_mut().zip(p) {
                *gi += widen(pi) - 0.3;
            }
        }
    }

    fn groups(&mut self) -> Vec<Group<'_, P, f32>> {
        self.params
            .iter_mut()
            .zip(self.grads.iter_mut())
            .zip(SETTINGS)
            .map(|((p, g), s)| Group::new(p, g).with(s))
            .collect()
    }
}

fn schedule() -> impl Schedule + std::fmt::Debug + Copy {
    warmup_cosine(0.0, 0.05, 5, 60, 1e-3).unwrap()
}

/// Trains `steps` steps from the optimizer's current state.
fn train<R: Rule + Copy, P: Storage + Copy, S: Storage>(
    opt: &mut Optimizer<R, impl Schedule + std::fmt::Debug, f32>,
    model: &mut Model<P>,
    state: &mut [S],
    steps: u64,
    widen: impl Fn(P) -> f32 + Copy,
) {
    for _ in 0..steps {
        model.fill_grads(opt.steps() + 1, widen);
        let mut groups = model.groups();
        let r = opt.step(&mut groups, state).unwrap();
        assert!(!r.skipped);
    }
}

#[test]
fn step_equals_the_rule_by_hand() {
    let adam = Adam::adamw(0.0f32, 0.1);
    let sch = schedule();
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let mut opt = Optimizer::new(adam, sch).unwrap().with_exec(exec);
        let mut model = Model::new(1, |x| x);
        let mut state = vec![0.0f32; state_len(2, TRAINABLE)];
        // By hand: per trainable group its own m, v; lr = schedule · scale; no decay on group 1.
        let mut hand = model.clone();
        let mut hand_state: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.0; 2 * n]).collect();
        for t in 1..=12u64 {
            model.fill_grads(t, |x| x);
            hand.fill_grads(t, |x| x);
            let report = opt.step(&mut model.groups(), &mut state).unwrap();
            assert_eq!(report.step, t);
            assert_eq!(report.lr, sch.at(t - 1));
            for k in 0..LENS.len() {
                let s = SETTINGS[k];
                if s.frozen {
                    continue;
                }
                let mut rule = adam.with_lr((sch.at(t - 1) * s.lr_scale) as f32);
                if !s.weight_decay {
                    rule.weight_decay = WeightDecay::None;
                }
                rule.step_with(
                    &exec,
                    t,
                    &mut hand.params[k],
                    &hand.grads[k],
                    &mut hand_state[k],
                )
                .unwrap();
            }
        }
        assert_eq!(model, hand, "{b}");
        let flat: Vec<f32> = (0..LENS.len())
            .filter(|&k| !SETTINGS[k].frozen)
            .flat_map(|k| hand_state[k].clone())
            .collect();
        assert_eq!(state, flat, "{b}: state layout");
        // The frozen group never moved.
        assert_eq!(model.params[2], Model::new(1, |x| x).params[2]);
    }
}

#[test]
fn clipping_scales_trainable_gradients_as_torch() {
    let mut opt = Optimizer::new(Sgd::new(0.0f32, 0.9), Cosine::new(0.1, 0.0, 50).unwrap())
        .unwrap()
        .with_clip_norm(0.25)
        .unwrap();
    let mut model = Model::new(2, |x| x);
    let mut hand = model.clone();
    let mut state = vec![0.0f32; state_len(1, TRAINABLE)];
    let mut hand_state: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.0; n]).collect();
    for t in 1..=6u64 {
        model.fill_grads(t, |x| x);
        hand.fill_grads(t, |x| x);
        let r = opt.step(&mut model.groups(), &mut state).unwrap();
        // By hand: clip the trainable gradients together, then the rule per group.
        let mut trainable: Vec<&mut [f32]> = hand
            .grads
            .iter_mut()
            .enumerate()
            .filter(|(k, _)| !SETTINGS[*k].frozen)
            .map(|(_, g)| g.as_mut_slice())
            .collect();
        let c = clip_grad_norm_with(
            &Exec::active(),
            &mut trainable,
            0.25f32,
            NonFinite::Propagate,
        )
        .unwrap();
        assert_eq!(r.grad_norm, Some(c.total_norm as f64));
        assert_eq!(r.clip_factor, c.factor as f64);
        assert!(c.factor < 1.0, "the bound is below the gradient norm");
        for k in (0..LENS.len()).filter(|&k| !SETTINGS[k].frozen) {
            let rule = Sgd::new(0.0f32, 0.9)
                .with_lr((opt.schedule().at(t - 1) * SETTINGS[k].lr_scale) as f32);
            let rule = if SETTINGS[k].weight_decay {
                rule
            } else {
                rule.without_weight_decay()
            };
            rule.step(t, &mut hand.params[k], &hand.grads[k], &mut hand_state[k])
                .unwrap();
        }
        assert_eq!(model, hand, "step {t}");
    }
    // The frozen group's gradients are not part of the norm and are left alone.
    assert_eq!(model.grads[2], hand.grads[2]);
}

#[test]
fn non_finite_gradients_skip_or_propagate() {
    for clip in [None, Some(1.0)] {
        for policy in [NonFinite::Skip, NonFinite::Propagate] {
            for bad in [f32::NAN, f32::INFINITY] {
                let mut opt = Optimizer::new(Adam::new(0.01f32), schedule())
                    .unwrap()
                    .with_nonfinite(policy);
                if let Some(c) = clip {
                    opt = opt.with_clip_norm(c).unwrap();
                }
                let mut model = Model::new(3, |x| x);
                let mut state = vec![0.0f32; state_len(2, TRAINABLE)];
                train(&mut opt, &mut model, &mut state, 3, |x| x);
                let (before, state_before) = (model.clone(), state.clone());
                model.fill_grads(4, |x| x);
                model.grads[0][7] = bad;
                let grads_before = model.grads.clone();
                let r = opt.step(&mut model.groups(), &mut state).unwrap();
                let what = format!("clip {clip:?} {policy:?} {bad}");
                match policy {
                    NonFinite::Skip => {
                        assert!(r.skipped, "{what}");
                        assert_eq!(opt.steps(), 3, "{what}: the counter stays");
                        assert_eq!(model.params, before.params, "{what}");
                        let bits = |g: &Vec<Vec<f32>>| -> Vec<u32> {
                            g.iter().flatten().map(|x| x.to_bits()).collect()
                        };
                        assert_eq!(
                            bits(&model.grads),
                            bits(&grads_before),
                            "{what}: gradients untouched"
                        );
                        assert_eq!(state, state_before, "{what}");
                    }
                    NonFinite::Propagate => {
                        assert!(!r.skipped, "{what}");
                        assert_eq!(opt.steps(), 4, "{what}");
                        assert!(
                            model.params[0][7].is_nan(),
                            "{what}: NaN reaches the parameter"
                        );
                    }
                }
                // A NaN in a frozen group is not looked at.
                let mut model = Model::new(3, |x| x);
                model.fill_grads(1, |x| x);
                model.grads[2][0] = f32::NAN;
                let mut opt = Optimizer::new(Adam::new(0.01f32), schedule())
                    .unwrap()
                    .with_nonfinite(NonFinite::Skip);
                let mut state = vec![0.0f32; state_len(2, TRAINABLE)];
                assert!(!opt.step(&mut model.groups(), &mut state).unwrap().skipped);
            }
        }
    }
}

#[test]
fn bad_input_is_rejected_before_writing() {
    let mut opt = Optimizer::new(Adam::new(0.01f32), schedule()).unwrap();
    let mut model = Model::new(4, |x| x);
    model.fill_grads(1, |x| x);
    let snapshot = model.clone();
    let mut short = vec![0.5f32; state_len(2, TRAINABLE) - 1];
    assert_eq!(
        opt.step(&mut model.groups(), &mut short),
        Err(Error::LengthMismatch {
            buffer: "state",
            expected: 2 * TRAINABLE,
            found: 2 * TRAINABLE - 1
        })
    );
    let mut state = vec![0.5f32; state_len(2, TRAINABLE)];
    let mut groups = model.groups();
    groups[3].settings.lr_scale = f64::NAN;
    assert!(matches!(
        opt.step(&mut groups, &mut state),
        Err(Error::InvalidHyperParameter {
            name: "lr_scale",
            ..
        })
    ));
    let mut groups = model.groups();
    groups[1].grads = &mut [];
    assert!(matches!(
        opt.step(&mut groups, &mut state),
        Err(Error::LengthMismatch {
            buffer: "grads",
            ..
        })
    ));
    assert_eq!(model, snapshot);
    assert!(short.iter().chain(&state).all(|&x| x == 0.5));
    assert_eq!(opt.steps(), 0);
    assert!(Optimizer::new(Adam::new(-1.0f32), schedule()).is_err());
    assert!(Optimizer::new(Adam::new(0.1f32), schedule())
        .unwrap()
        .with_clip_norm(f64::INFINITY)
        .is_err());
}

/// Train k, checkpoint, restore into a fresh optimizer and fresh buffers, train m: the same bits as
/// k + m straight, for rule `rule` with parameters stored as `P` and state as `S`.
fn resume_case<
    R: Rule + Copy,
    P: Storage + StateCodec + Copy + PartialEq + std::fmt::Debug,
    S: Storage + StateCodec + Copy + PartialEq + std::fmt::Debug,
>(
    rule: R,
    exec: Exec,
    to: impl Fn(f32) -> P + Copy,
    widen: impl Fn(P) -> f32 + Copy,
    zero: S,
) {
    let (k, m) = (7u64, 9u64);
    let new_opt = || {
        Optimizer::new(rule, schedule())
            .unwrap()
            .with_exec(exec)
            .with_clip_norm(2.0)
            .unwrap()
    };
    let n_state = state_len(rule.state_buffers(), TRAINABLE);
    // Straight.
    let mut opt = new_opt();
    let mut model = Model::new(5, to);
    let mut state = vec![zero; n_state];
    train(&mut opt, &mut model, &mut state, k + m, widen);
    // Interrupted.
    let mut opt1 = new_opt();
    let mut model1 = Model::new(5, to);
    let mut state1 = vec![zero; n_state];
    train(&mut opt1, &mut model1, &mut state1, k, widen);
    let mut bytes = vec![0u8; opt1.checkpoint_len::<P, S>(&model1.groups())];
    let used = opt1.save(&model1.groups(), &state1, &mut bytes).unwrap();
    assert_eq!(used, bytes.len());
    // A fresh optimizer and a fresh, differently initialised model and state.
    let mut opt2 = new_opt();
    let mut model2 = Model::new(6, to);
    let mut state2 = vec![zero; n_state];
    opt2.restore(&bytes, &mut model2.groups(), &mut state2)
        .unwrap();
    assert_eq!(opt2.steps(), k);
    assert_eq!(model2.params, model1.params);
    assert_eq!(state2, state1);
    train(&mut opt2, &mut model2, &mut state2, m, widen);
    assert_eq!(model2.params, model.params, "{} on {:?}", R::NAME, exec);
    assert_eq!(state2, state);
}

#[test]
fn checkpoint_resume_is_bit_identical_on_every_backend() {
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let id = |x: f32| x;
        resume_case(Adam::adamw(0.0f32, 0.01), exec, id, id, 0.0f32);
        resume_case(Adam::new(0.0f32).amsgrad(), exec, id, id, 0.0f32);
        resume_case(
            Sgd {
                nesterov: true,
                ..Sgd::new(0.0f32, 0.9)
            },
            exec,
            id,
            id,
            0.0f32,
        );
        resume_case(Lion::new(0.0f32), exec, id, id, 0.0f32);
        // bf16 parameters and state, stochastic rounding keyed by (seed, group, step).
        let sr = exec.with_rounding(Rounding::Stochastic(StochasticKey::new(17)));
        resume_case(
            Adam::new(0.0f32),
            sr,
            bf16::from_f32,
            |x: bf16| x.to_f32(),
            bf16::ZERO,
        );
    }
}

/// A checkpoint of a few steps of Adam over the model, with its optimizer and buffers.
fn saved() -> (Vec<u8>, Model<f32>, Vec<f32>) {
    let mut opt = Optimizer::new(Adam::new(0.0f32), schedule()).unwrap();
    let mut model = Model::new(8, |x| x);
    let mut state = vec![0.0f32; state_len(2, TRAINABLE)];
    train(&mut opt, &mut model, &mut state, 3, |x| x);
    let mut bytes = vec![0u8; opt.checkpoint_len::<f32, f32>(&model.groups())];
    opt.save(&model.groups(), &state, &mut bytes).unwrap();
    (bytes, model, state)
}

/// Restores `bytes` into a fresh optimizer and buffers; asserts nothing changed on error.
fn try_restore(bytes: &[u8]) -> Result<(), CheckpointError> {
    try_restore_into(
        Optimizer::new(Adam::new(0.0f32), schedule()).unwrap(),
        bytes,
    )
}

fn try_restore_into<R: Rule + Copy>(
    mut opt: Optimizer<R, impl Schedule + std::fmt::Debug, f32>,
    bytes: &[u8],
) -> Result<(), CheckpointError> {
    let mut model = Model::new(9, |x: f32| x);
    let before = model.clone();
    let mut state = vec![0.25f32; state_len(opt.rule().state_buffers(), TRAINABLE)];
    let r = opt.restore(bytes, &mut model.groups(), &mut state);
    if r.is_err() {
        assert_eq!(model, before, "a rejected restore wrote parameters");
        assert!(
            state.iter().all(|&x| x == 0.25),
            "a rejected restore wrote state"
        );
        assert_eq!(opt.steps(), 0);
    }
    r
}

#[test]
fn mismatched_checkpoints_are_rejected_whole() {
    let (bytes, _, _) = saved();
    assert!(try_restore(&bytes).is_ok());
    // Another rule configuration, another rule, another schedule.
    let other = Optimizer::new(Adam::new(0.0f32).amsgrad(), schedule()).unwrap();
    assert!(matches!(
        try_restore_into(other, &bytes),
        Err(CheckpointError::InvalidValue { .. })
    ));
    let other = Optimizer::new(Lion::new(0.0f32), schedule()).unwrap();
    assert!(try_restore_into(other, &bytes).is_err());
    let other = Optimizer::new(Adam::new(0.0f32), Cosine::new(0.1, 0.0, 10).unwrap()).unwrap();
    assert!(matches!(
        try_restore_into(other, &bytes),
        Err(CheckpointError::InvalidValue {
            field: "schedule configuration"
        })
    ));
    // Truncated anywhere.
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(try_restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Another group shape.
    let mut opt = Optimizer::new(Adam::new(0.0f32), schedule()).unwrap();
    let mut model = Model::new(9, |x: f32| x);
    let mut state = vec![0.0f32; state_len(2, TRAINABLE)];
    let mut groups = model.groups();
    groups[1].settings.weight_decay = true;
    assert!(matches!(
        opt.restore(&bytes, &mut groups, &mut state),
        Err(CheckpointError::WrongShape {
            field: "group weight decay",
            ..
        })
    ));
    // Another state format.
    let mut s16 = vec![bf16::ZERO; state_len(2, TRAINABLE)];
    assert!(matches!(
        opt.restore(&bytes, &mut model.groups(), &mut s16),
        Err(CheckpointError::WrongShape {
            field: "state format",
            ..
        })
    ));
    // Too small an output buffer.
    let (_, mut model, state) = saved();
    let opt = Optimizer::new(Adam::new(0.0f32), schedule()).unwrap();
    let mut small = vec![0u8; bytes.len() - 1];
    assert!(matches!(
        opt.save(&model.groups(), &state, &mut small),
        Err(CheckpointError::BufferTooSmall { .. })
    ));
}

fn cfg() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    /// Any single-byte change to a valid checkpoint is rejected, and nothing is written.
    #[test]
    fn corrupted_checkpoints_never_restore(pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (mut bytes, _, _) = saved();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(try_restore(&bytes).is_err());
    }

    /// Random bytes never panic and never restore.
    #[test]
    fn random_bytes_never_restore(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(try_restore(&bytes).is_err());
    }
}

#[test]
fn checkpoint_size_is_reported() {
    let (bytes, mut model, _) = saved();
    let opt = Optimizer::new(Adam::new(0.0f32), schedule()).unwrap();
    assert_eq!(bytes.len(), opt.checkpoint_len::<f32, f32>(&model.groups()));
    // Parameters and state dominate: 4 bytes per parameter, 8 per trainable one.
    let payload = 4 * LENS.iter().sum::<usize>() + 8 * TRAINABLE;
    assert!(
        bytes.len() > payload && bytes.len() < payload + 400,
        "{}",
        bytes.len()
    );
}
