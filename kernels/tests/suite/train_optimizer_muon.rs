//! The optimizer driving Muon with a fallback rule (`MuonWithFallback`, state in a `MuonState`):
//! equal, bit for bit on every backend, to `MuonWithFallback::step` called by hand per group with
//! the schedule's rate and the groups' settings (wide and tall matrices, vectors, an empty vector,
//! a frozen group, groups without decay, at other rates); a wrong shape, shape count, buffers or
//! workspace length rejected with a typed error before anything is written; checkpoints that
//! resume bit-identically, are rejected whole when corrupted or restored into other shapes, and
//! are laid out as documented; bf16 parameters and buffers under stochastic rounding, by hand and
//! through a checkpoint. Small matrices and few steps: these tests also run emulated.

use crate::common;

use common::{backends, proptest_config};
use descent_kernels::random::{fill_normal, seeded, stream};
use descent_kernels::rules::RuleConfig;
use descent_kernels::train::{
    clip_grad_norm_with, crc32, warmup_cosine, CheckpointError, Group, GroupSettings, MuonState,
    NonFinite, Optimizer, Schedule,
};
use descent_kernels::{
    Adam, Element, Error, Exec, Muon, MuonWithFallback, ParamShape, Rounding, StochasticKey,
};
use half::bf16;
use proptest::prelude::*;

type Rules = MuonWithFallback<f32, Adam<f32>>;

/// Each group's shape (frozen ones included; they get no `MuonState` shape).
const SHAPES: [ParamShape; 7] = [
    ParamShape::Matrix { rows: 4, cols: 3 },
    ParamShape::Vector(3),
    ParamShape::Matrix { rows: 8, cols: 5 },
    ParamShape::Matrix { rows: 3, cols: 6 },
    ParamShape::Vector(5),
    ParamShape::Vector(0),
    ParamShape::Matrix { rows: 5, cols: 8 },
];

/// A tall matrix (decay), its bias (no decay), a larger tall matrix at half rate, a frozen wide
/// matrix, a bias at double rate without decay, an empty vector, a wide matrix.
const SETTINGS: [GroupSettings; 7] = [
    GroupSettings::DEFAULT,
    GroupSettings::NO_DECAY,
    GroupSettings {
        lr_scale: 0.5,
        ..GroupSettings::DEFAULT
    },
    GroupSettings::FROZEN,
    GroupSettings {
        lr_scale: 2.0,
        ..GroupSettings::NO_DECAY
    },
    GroupSettings::NO_DECAY,
    GroupSettings::DEFAULT,
];

fn rules() -> Rules {
    MuonWithFallback::new(
        Muon::new(0.0f32).with_weight_decay(0.1).with_nesterov(true),
        Adam::adamw(0.0f32, 0.01),
    )
}

fn schedule() -> impl Schedule + std::fmt::Debug + Copy {
    warmup_cosine(0.0, 0.05, 2, 20, 1e-3).unwrap()
}

fn optimizer(exec: Exec) -> Optimizer<Rules, impl Schedule + std::fmt::Debug + Copy> {
    Optimizer::new(rules(), schedule()).unwrap().with_exec(exec)
}

/// The shapes of the trainable groups.
fn trainable_shapes() -> Vec<ParamShape> {
    SHAPES
        .iter()
        .zip(&SETTINGS)
        .filter(|(_, s)| !s.frozen)
        .map(|(&shape, _)| shape)
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
struct Model {
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
}

impl Model {
    fn new(seed: u64) -> Self {
        let mut rng = seeded(seed);
        let params = SHAPES
            .iter()
            .map(|s| {
                let mut v = vec![0.0f32; s.len()];
                fill_normal(&mut rng, &mut v, 0.0, 1.0);
                v
            })
            .collect();
        Model {
            params,
            grads: SHAPES.iter().map(|s| vec![0.0; s.len()]).collect(),
        }
    }

    /// Gradients of step `t`: a pull towards 0.3 plus seeded noise (depends on `t` only).
    fn fill_grads(&mut self, t: u64) {
        let mut rng = stream(91, t as u32);
        for (g, p) in self.grads.iter_mut().zip(&self.params) {
            fill_normal(&mut rng, g, 0.0, 0.5);
            for (gi, &pi) in g.iter_mut().zip(p) {
                *gi += pi - 0.3;
            }
        }
    }

    fn groups(&mut self) -> Vec<Group<'_, f32, f32>> {
        self.params
            .iter_mut()
            .zip(self.grads.iter_mut())
            .zip(&SETTINGS)
            .map(|((p, g), &s)| Group::new(p, g).with(s))
            .collect()
    }

    fn bits(&self) -> Vec<Vec<u32>> {
        self.params
            .iter()
            .map(|p| p.iter().map(|x| x.to_bits()).collect())
            .collect()
    }
}

/// The buffers of a `MuonState` (the shapes are [`trainable_shapes`]).
#[derive(Clone, Debug)]
struct State {
    shapes: Vec<ParamShape>,
    buffers: Vec<f32>,
    workspace: Vec<f32>,
}

impl State {
    fn zero() -> Self {
        let shapes = trainable_shapes();
        State {
            buffers: vec![0.0; MuonState::<f32>::buffers_len(&shapes, 2)],
            workspace: vec![0.0; MuonState::<f32>::workspace_len(&shapes)],
            shapes,
        }
    }

    fn view(&mut self) -> MuonState<'_, f32> {
        MuonState::new(&self.shapes, &mut self.buffers, &mut self.workspace)
    }

    fn bits(&self) -> Vec<u32> {
        self.buffers.iter().map(|x| x.to_bits()).collect()
    }
}

fn first_difference<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at {i}: {:?} != {:?}",
            got[i], want[i]
        );
    }
}

/// Parameters and buffers equal bit for bit.
fn assert_same_run(what: &str, (m, s): (&Model, &State), (wm, ws): (&Model, &State)) {
    for (k, (a, b)) in m.bits().iter().zip(wm.bits().iter()).enumerate() {
        first_difference(&format!("{what}: group {k}"), a, b);
    }
    first_difference(&format!("{what}: buffers"), &s.bits(), &ws.bits());
}

/// The rules of one trainable group at schedule rate `lr`, written out by hand (the oracle for
/// `with_lr` and `without_weight_decay`): both rates are the schedule's times the group's scale,
/// rounded to `T`; a group without decay gets none from either rule.
fn group_rules<T: Element>(
    base: MuonWithFallback<T, Adam<T>>,
    lr: f64,
    settings: GroupSettings,
) -> MuonWithFallback<T, Adam<T>> {
    let rate = T::from_f64_round(lr * settings.lr_scale);
    let mut r = MuonWithFallback::new(
        Muon {
            lr: rate,
            ..base.muon
        },
        Adam {
            lr: rate,
            ..base.fallback
        },
    );
    if !settings.weight_decay {
        r.muon.weight_decay = T::zero();
        r.fallback.weight_decay = descent_kernels::WeightDecay::None;
    }
    r
}

/// Steps every group by hand with `MuonWithFallback::step`: each trainable group's own buffers
/// (its own `Vec`) and its own workspace of exactly its `workspace_len`.
struct ByHand {
    model: Model,
    buffers: Vec<Vec<f32>>,
}

impl ByHand {
    fn new(model: Model) -> Self {
        let buffers = SHAPES
            .iter()
            .map(|&s| vec![0.0; rules().state_len(s)])
            .collect();
        ByHand { model, buffers }
    }

    fn step(&mut self, sch: &impl Schedule, exec: &Exec, t: u64) {
        let lr = sch.at(t - 1);
        for k in 0..SHAPES.len() {
            let settings = SETTINGS[k];
            if settings.frozen {
                continue;
            }
            let r = group_rules(rules(), lr, settings);
            let mut work = vec![0.0f32; Rules::workspace_len(SHAPES[k])];
            r.step(
                exec,
                t,
                SHAPES[k],
                &mut self.model.params[k],
                &self.model.grads[k],
                &mut self.buffers[k],
                &mut work,
            )
            .unwrap();
        }
    }

    /// The trainable groups' buffers in order, as the optimizer lays them out.
    fn flat(&self) -> State {
        let mut s = State::zero();
        s.buffers = self
            .buffers
            .iter()
            .zip(&SETTINGS)
            .filter(|(_, st)| !st.frozen)
            .flat_map(|(b, _)| b.iter().copied())
            .collect();
        s
    }
}

#[test]
fn muon_steps_equal_muon_with_fallback_by_hand_on_every_backend() {
    let sch = schedule();
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let mut opt = optimizer(exec);
        let mut model = Model::new(1);
        let mut state = State::zero();
        let mut hand = ByHand::new(model.clone());
        let frozen = model.params[3].clone();
        for t in 1..=4u64 {
            model.fill_grads(t);
            hand.model.fill_grads(t);
            let report = opt.step(&mut model.groups(), &mut state.view()).unwrap();
            assert_eq!((report.step, report.skipped), (t, false));
            hand.step(&sch, &exec, t);
            assert_same_run(
                &format!("{b}, step {t}"),
                (&model, &state),
                (&hand.model, &hand.flat()),
            );
        }
        assert_eq!(opt.steps(), 4);
        assert_eq!(model.params[3], frozen, "a frozen group moved");
        // Every trainable non-empty group moved, and its buffers are not all zero.
        for k in [0, 1, 2, 4, 6] {
            assert_ne!(
                model.params[k],
                Model::new(1).params[k],
                "group {k} did not move"
            );
        }
        assert!(state.buffers.iter().all(|x| x.is_finite()));
    }
}

#[test]
fn muon_with_lr_sets_both_rates_and_without_decay_clears_both() {
    let r = rules().with_lr(0.25).without_weight_decay();
    assert_eq!((r.muon.lr, r.fallback.lr), (0.25, 0.25));
    assert_eq!(r.muon.weight_decay, 0.0);
    assert_eq!(r.fallback.weight_decay, descent_kernels::WeightDecay::None);
    assert_eq!(<Rules as RuleConfig<f32>>::NAME, "muon_with_fallback");
}

#[test]
fn muon_state_lengths_follow_the_shapes() {
    let shapes = trainable_shapes();
    let opt = optimizer(Exec::active());
    let by_rule: usize = shapes.iter().map(|&s| rules().state_len(s)).sum();
    assert_eq!(MuonState::<f32>::buffers_len(&shapes, 2), by_rule);
    assert_eq!(opt.muon_buffers_len(&shapes), by_rule);
    let most = shapes
        .iter()
        .map(|&s| Rules::workspace_len(s))
        .max()
        .unwrap();
    assert_eq!(MuonState::<f32>::workspace_len(&shapes), most);
    assert_eq!(MuonState::<f32>::workspace_len(&[ParamShape::Vector(9)]), 0);
}

/// Steps once with the given state pieces; asserts nothing was written on error.
fn rejected(shapes: &[ParamShape], buffers: usize, workspace: usize) -> Error {
    let mut opt = optimizer(Exec::active());
    let mut model = Model::new(2);
    model.fill_grads(1);
    let before = model.clone();
    let mut b = vec![0.5f32; buffers];
    let mut w = vec![0.75f32; workspace];
    let err = opt
        .step(
            &mut model.groups(),
            &mut MuonState::new(shapes, &mut b, &mut w),
        )
        .expect_err("a wrong state was accepted");
    assert_eq!(
        model, before,
        "a rejected step wrote parameters or gradients"
    );
    assert!(b.iter().all(|&x| x == 0.5), "a rejected step wrote buffers");
    assert!(
        w.iter().all(|&x| x == 0.75),
        "a rejected step wrote the workspace"
    );
    assert_eq!(opt.steps(), 0);
    err
}

#[test]
fn muon_wrong_shapes_and_lengths_are_rejected_before_writing() {
    let shapes = trainable_shapes();
    let nb = MuonState::<f32>::buffers_len(&shapes, 2);
    let nw = MuonState::<f32>::workspace_len(&shapes);
    // The right pieces step.
    {
        let mut opt = optimizer(Exec::active());
        let mut model = Model::new(2);
        model.fill_grads(1);
        let (mut b, mut w) = (vec![0.0f32; nb], vec![0.0f32; nw]);
        opt.step(
            &mut model.groups(),
            &mut MuonState::new(&shapes, &mut b, &mut w),
        )
        .unwrap();
    }
    // The last group (5 × 8) given a shape of another length (5 × 7): rejected. (A transposed
    // shape has the group's length and is accepted: the shape is the caller's to choose.)
    let mut wrong = shapes.clone();
    let last = wrong.len() - 1;
    wrong[last] = ParamShape::Matrix { rows: 5, cols: 7 };
    assert_eq!(
        rejected(&wrong, MuonState::<f32>::buffers_len(&wrong, 2), nw),
        Error::ShapeMismatch {
            buffer: "params",
            shape: "the group's ParamShape",
            expected: 35,
            found: 40,
        }
    );
    // A vector where the bias is one element longer.
    let mut wrong = shapes.clone();
    wrong[1] = ParamShape::Vector(4);
    assert_eq!(
        rejected(&wrong, MuonState::<f32>::buffers_len(&wrong, 2), nw),
        Error::ShapeMismatch {
            buffer: "params",
            shape: "the group's ParamShape",
            expected: 4,
            found: 3,
        }
    );
    // One shape too few, one too many.
    let fewer = &shapes[..shapes.len() - 1];
    assert_eq!(
        rejected(fewer, nb, nw),
        Error::LengthMismatch {
            buffer: "shapes",
            expected: shapes.len(),
            found: shapes.len() - 1,
        }
    );
    let mut more = shapes.clone();
    more.push(ParamShape::Vector(2));
    assert_eq!(
        rejected(&more, nb, nw),
        Error::LengthMismatch {
            buffer: "shapes",
            expected: shapes.len(),
            found: shapes.len() + 1,
        }
    );
    // Buffers one short, one long.
    for n in [nb - 1, nb + 1] {
        assert_eq!(
            rejected(&shapes, n, nw),
            Error::LengthMismatch {
                buffer: "buffers",
                expected: nb,
                found: n,
            }
        );
    }
    // Workspace one short, and none.
    for n in [nw - 1, 0] {
        assert_eq!(
            rejected(&shapes, nb, n),
            Error::LengthMismatch {
                buffer: "workspace",
                expected: nw,
                found: n,
            }
        );
    }
    // A wrong gradient length is reported before the state.
    let mut opt = optimizer(Exec::active());
    let mut model = Model::new(2);
    model.grads[4].push(0.0);
    let (mut b, mut w) = (vec![0.5f32; nb], vec![0.75f32; nw]);
    let err = opt
        .step(
            &mut model.groups(),
            &mut MuonState::new(&shapes, &mut b, &mut w),
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::LengthMismatch {
            buffer: "grads",
            expected: 5,
            found: 6,
        }
    );
    assert!(b.iter().all(|&x| x == 0.5) && w.iter().all(|&x| x == 0.75));
}

/// Trains `steps` steps from the optimizer's current state.
fn train(
    opt: &mut Optimizer<Rules, impl Schedule + std::fmt::Debug>,
    model: &mut Model,
    state: &mut State,
    steps: u64,
) {
    for _ in 0..steps {
        model.fill_grads(opt.steps() + 1);
        let r = opt.step(&mut model.groups(), &mut state.view()).unwrap();
        assert!(!r.skipped);
    }
}

fn save(
    opt: &Optimizer<Rules, impl Schedule + std::fmt::Debug>,
    model: &mut Model,
    state: &mut State,
) -> Vec<u8> {
    let mut bytes = vec![0u8; opt.checkpoint_len::<f32, f32>(&model.groups(), &state.shapes)];
    let used = opt
        .save(&model.groups(), &state.view(), &mut bytes)
        .unwrap();
    assert_eq!(used, bytes.len());
    bytes
}

#[test]
fn muon_checkpoint_resume_is_bit_identical_on_every_backend() {
    let (k, m) = (2u64, 2u64);
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        // Straight.
        let mut opt = optimizer(exec);
        let mut model = Model::new(6);
        let mut state = State::zero();
        train(&mut opt, &mut model, &mut state, k + m);
        // Interrupted after k steps.
        let mut opt1 = optimizer(exec);
        let mut model1 = Model::new(6);
        let mut state1 = State::zero();
        train(&mut opt1, &mut model1, &mut state1, k);
        let bytes = save(&opt1, &mut model1, &mut state1);
        // A fresh optimizer, other parameters, other buffers, a dirty workspace.
        let mut opt2 = optimizer(exec);
        let mut model2 = Model::new(7);
        let mut state2 = State::zero();
        state2.buffers.iter_mut().for_each(|x| *x = 9.0);
        state2.workspace.iter_mut().for_each(|x| *x = -3.0);
        opt2.restore(&bytes, &mut model2.groups(), &mut state2.view())
            .unwrap();
        assert_eq!(opt2.steps(), k);
        assert!(
            state2.workspace.iter().all(|&x| x == -3.0),
            "restore wrote the workspace"
        );
        assert_same_run(
            &format!("{b}, restored"),
            (&model2, &state2),
            (&model1, &state1),
        );
        train(&mut opt2, &mut model2, &mut state2, m);
        assert_same_run(
            &format!("{b}, resumed"),
            (&model2, &state2),
            (&model, &state),
        );
    }
}

/// A checkpoint of two steps over the model on the active backend.
fn saved() -> Vec<u8> {
    let mut opt = optimizer(Exec::active());
    let mut model = Model::new(8);
    let mut state = State::zero();
    train(&mut opt, &mut model, &mut state, 2);
    save(&opt, &mut model, &mut state)
}

/// Restores `bytes` into a fresh model and marked buffers for `shapes`; asserts nothing changed
/// on error.
fn try_restore_into(bytes: &[u8], shapes: &[ParamShape]) -> Result<(), CheckpointError> {
    let mut opt = optimizer(Exec::active());
    let mut model = Model::new(9);
    let before = model.clone();
    let mut b = vec![0.5f32; MuonState::<f32>::buffers_len(shapes, 2)];
    let mut w = vec![0.75f32; MuonState::<f32>::workspace_len(shapes)];
    let r = opt.restore(
        bytes,
        &mut model.groups(),
        &mut MuonState::new(shapes, &mut b, &mut w),
    );
    assert!(w.iter().all(|&x| x == 0.75), "restore wrote the workspace");
    if r.is_err() {
        assert_eq!(
            model.bits(),
            before.bits(),
            "a rejected restore wrote parameters"
        );
        assert!(
            b.iter().all(|&x| x == 0.5),
            "a rejected restore wrote buffers"
        );
        assert_eq!(opt.steps(), 0);
    } else {
        assert_eq!(opt.steps(), 2);
    }
    r
}

#[test]
fn muon_checkpoints_into_other_shapes_are_rejected_whole() {
    let bytes = saved();
    let shapes = trainable_shapes();
    assert!(try_restore_into(&bytes, &shapes).is_ok());
    // The first matrix transposed: same lengths everywhere, another shape.
    let mut t = shapes.clone();
    t[0] = ParamShape::Matrix { rows: 3, cols: 4 };
    assert_eq!(
        try_restore_into(&bytes, &t),
        Err(CheckpointError::WrongShape {
            field: "shape rows or length",
            expected: 3,
            found: 4,
        })
    );
    // A 4 × 3 matrix stepped as a vector of 12: its kind differs (and its buffers' length).
    let mut v = shapes.clone();
    v[0] = ParamShape::Vector(12);
    assert!(try_restore_into(&bytes, &v).is_err());
    // A vector as a 1 × 3 matrix.
    let mut m = shapes.clone();
    m[1] = ParamShape::Matrix { rows: 1, cols: 3 };
    assert!(try_restore_into(&bytes, &m).is_err());
    // A shape of the wrong length, and one shape too few: refused before reading the state.
    let mut l = shapes.clone();
    l[1] = ParamShape::Vector(4);
    assert!(matches!(
        try_restore_into(&bytes, &l),
        Err(CheckpointError::Kernel(Error::ShapeMismatch { .. }))
    ));
    assert!(try_restore_into(&bytes, &shapes[1..]).is_err());
}

proptest! {
    #![proptest_config(proptest_config(24))]

    /// Any single-byte change to a valid checkpoint is rejected, and nothing is written.
    #[test]
    fn muon_corrupted_checkpoints_never_restore(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = saved();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(try_restore_into(&bytes, &trainable_shapes()).is_err());
    }
}

/// A little-endian reader over a checkpoint, for parsing it by its documentation.
struct Parse<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parse<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn text(&mut self) -> String {
        let n = self.u32() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.take(4 * n)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

#[test]
fn muon_checkpoint_layout_is_the_documented_one() {
    let mut opt = optimizer(Exec::active());
    let mut model = Model::new(10);
    let mut state = State::zero();
    train(&mut opt, &mut model, &mut state, 2);
    let bytes = save(&opt, &mut model, &mut state);
    let mut p = Parse {
        bytes: &bytes,
        at: 0,
    };
    // The frame: magic, version 1, payload length, ..., CRC-32.
    assert_eq!(p.take(4), b"DSCO");
    assert_eq!(p.u32(), 1);
    let n = p.u64() as usize;
    assert_eq!(bytes.len(), 16 + n + 4);
    // Formats: compute f32 (1), parameters f32 (1), state 7 (Muon's shapes and buffers).
    assert_eq!([p.u8(), p.u8(), p.u8()], [1, 1, 7]);
    // The name and the configurations as their `Debug` texts.
    assert_eq!(p.text(), format!("{:?}", "muon_with_fallback"));
    assert_eq!(p.text(), format!("{:?}", opt.rule()));
    assert_eq!(p.text(), format!("{:?}", opt.schedule()));
    p.u8(); // the non-finite policy
    assert_eq!(p.f64(), -1.0, "no clipping bound");
    assert_eq!(p.u64(), 2, "steps");
    assert_eq!(p.u64() as usize, SHAPES.len());
    for (k, s) in SETTINGS.iter().enumerate() {
        assert_eq!(p.u64() as usize, SHAPES[k].len());
        assert_eq!(p.u8(), s.frozen as u8);
        assert_eq!(p.u8(), s.weight_decay as u8);
        assert_eq!(p.f64(), s.lr_scale);
    }
    for (shape, params) in SHAPES.iter().zip(&model.params) {
        assert_eq!(&p.f32s(shape.len()), params);
    }
    // The state section: u64 shape count, each shape as u8 kind (0 vector, 1 matrix) and two
    // u64s ((n, 0) or (rows, cols)), u64 buffers length, the buffers (f32).
    let shapes = trainable_shapes();
    assert_eq!(p.u64() as usize, shapes.len());
    for s in &shapes {
        let (kind, a, b) = (p.u8(), p.u64() as usize, p.u64() as usize);
        let parsed = match kind {
            0 => {
                assert_eq!(b, 0);
                ParamShape::Vector(a)
            }
            1 => ParamShape::Matrix { rows: a, cols: b },
            other => panic!("shape kind {other}"),
        };
        assert_eq!(parsed, *s);
    }
    assert_eq!(p.u64() as usize, state.buffers.len());
    assert_eq!(p.f32s(state.buffers.len()), state.buffers);
    // Then the CRC-32 of everything before it, and nothing else (the workspace is not saved).
    let end = p.at;
    assert_eq!(end, 16 + n);
    assert_eq!(crc32(&bytes[..end]).to_le_bytes(), bytes[end..]);
}

#[test]
fn muon_clipping_scales_trainable_gradients_and_non_finite_skips() {
    let sch = schedule();
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let mut opt = optimizer(exec).with_clip_norm(0.5).unwrap();
        let mut model = Model::new(11);
        let mut state = State::zero();
        let mut hand = ByHand::new(model.clone());
        for t in 1..=2u64 {
            model.fill_grads(t);
            hand.model.fill_grads(t);
            let r = opt.step(&mut model.groups(), &mut state.view()).unwrap();
            // By hand: clip the trainable gradients together, then each group's step.
            let mut trainable: Vec<&mut [f32]> = hand
                .model
                .grads
                .iter_mut()
                .zip(&SETTINGS)
                .filter(|(_, s)| !s.frozen)
                .map(|(g, _)| g.as_mut_slice())
                .collect();
            let c =
                clip_grad_norm_with(&exec, &mut trainable, 0.5f32, NonFinite::Propagate).unwrap();
            assert!(c.factor < 1.0, "the bound is below the gradient norm");
            assert_eq!(r.grad_norm, Some(c.total_norm as f64));
            hand.step(&sch, &exec, t);
            assert_same_run(
                &format!("{b}, clipped step {t}"),
                (&model, &state),
                (&hand.model, &hand.flat()),
            );
            // The frozen group's gradients are neither part of the norm nor scaled.
            assert_eq!(model.grads[3], hand.model.grads[3]);
        }
        // A NaN gradient in a vector group under `Skip`: nothing written, the counter stays.
        let mut opt = opt.with_nonfinite(NonFinite::Skip);
        model.fill_grads(3);
        model.grads[4][1] = f32::NAN;
        let (before, buffers) = (model.clone(), state.bits());
        let r = opt.step(&mut model.groups(), &mut state.view()).unwrap();
        assert!(r.skipped);
        assert_eq!(opt.steps(), 2);
        assert_eq!(model.bits(), before.bits());
        assert_eq!(state.bits(), buffers);
    }
}

#[test]
fn muon_save_with_absurd_shapes_is_a_typed_error() {
    let mut model = Model::new(12);
    let opt = optimizer(Exec::active());
    let mut shapes = trainable_shapes();
    shapes[1] = ParamShape::Vector(usize::MAX);
    let (mut b, mut w) = (vec![0.0f32; 4], vec![0.0f32; 4]);
    let mut out = vec![0u8; 8192];
    let err = opt
        .save(
            &model.groups(),
            &MuonState::new(&shapes, &mut b, &mut w),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::BufferTooSmall { .. }),
        "{err:?}"
    );
    // With room enough for the real groups, the shape itself is refused.
    shapes[1] = ParamShape::Vector(4);
    let err = opt
        .save(
            &model.groups(),
            &MuonState::new(&shapes, &mut b, &mut w),
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::Kernel(Error::ShapeMismatch { .. })),
        "{err:?}"
    );
}

/// The `f64` implementation (a separate impl from the `f32` one): a matrix with decay and a
/// vector at half rate without decay, 3 steps, equal bit for bit on every backend to
/// `MuonWithFallback::step` by hand with the schedule's rate.
#[test]
fn muon_f64_steps_equal_muon_with_fallback_by_hand_on_every_backend() {
    const SHAPES64: [ParamShape; 2] = [
        ParamShape::Matrix { rows: 4, cols: 3 },
        ParamShape::Vector(3),
    ];
    let half = GroupSettings {
        lr_scale: 0.5,
        ..GroupSettings::NO_DECAY
    };
    let settings = [GroupSettings::DEFAULT, half];
    let base = MuonWithFallback::new(
        Muon::new(0.0f64).with_weight_decay(0.1),
        Adam::adamw(0.0f64, 0.01),
    );
    let sch = schedule();
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let mut opt = Optimizer::new(base, sch).unwrap().with_exec(exec);
        let mut rng = seeded(64);
        let mut params: Vec<Vec<f64>> = SHAPES64
            .iter()
            .map(|s| {
                let mut v = vec![0.0f64; s.len()];
                fill_normal(&mut rng, &mut v, 0.0, 1.0);
                v
            })
            .collect();
        let mut hand_params = params.clone();
        let mut buffers = vec![0.0f64; MuonState::<f64>::buffers_len(&SHAPES64, 2)];
        let mut workspace = vec![0.0f64; MuonState::<f64>::workspace_len(&SHAPES64)];
        let mut hand_buffers: Vec<Vec<f64>> = SHAPES64
            .iter()
            .map(|&s| vec![0.0; base.state_len(s)])
            .collect();
        for t in 1..=3u64 {
            let grads: Vec<Vec<f64>> = params
                .iter()
                .map(|p| {
                    let mut g = vec![0.0f64; p.len()];
                    fill_normal(&mut stream(64, t as u32), &mut g, 0.0, 0.5);
                    g
                })
                .collect();
            let mut gs = grads.clone();
            {
                let (w, bias) = params.split_at_mut(1);
                let (gw, gb) = gs.split_at_mut(1);
                let mut groups = [
                    Group::new(&mut w[0], &mut gw[0]).with(settings[0]),
                    Group::new(&mut bias[0], &mut gb[0]).with(settings[1]),
                ];
                let mut state = MuonState::new(&SHAPES64, &mut buffers, &mut workspace);
                opt.step(&mut groups, &mut state).unwrap();
            }
            let lr = sch.at(t - 1);
            for k in 0..2 {
                let r = group_rules(base, lr, settings[k]);
                let mut work =
                    vec![0.0f64; MuonWithFallback::<f64, Adam<f64>>::workspace_len(SHAPES64[k])];
                r.step(
                    &exec,
                    t,
                    SHAPES64[k],
                    &mut hand_params[k],
                    &grads[k],
                    &mut hand_buffers[k],
                    &mut work,
                )
                .unwrap();
            }
            let bits = |xs: &[Vec<f64>]| -> Vec<Vec<u64>> {
                xs.iter()
                    .map(|v| v.iter().map(|x| x.to_bits()).collect())
                    .collect()
            };
            assert_eq!(bits(&params), bits(&hand_params), "{b}, step {t}: params");
            assert_eq!(
                buffers.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                hand_buffers
                    .concat()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect::<Vec<_>>(),
                "{b}, step {t}: buffers"
            );
        }
        assert_ne!(params[0], {
            let mut v = vec![0.0f64; 12];
            fill_normal(&mut seeded(64), &mut v, 0.0, 1.0);
            v
        });
    }
}

/// The groups of bf16 parameters `params` with the gradients `grads` and [`SETTINGS`].
fn bf16_groups<'a>(
    params: &'a mut [Vec<bf16>],
    grads: &'a mut [Vec<f32>],
) -> Vec<Group<'a, bf16, f32>> {
    params
        .iter_mut()
        .zip(grads.iter_mut())
        .zip(&SETTINGS)
        .map(|((p, g), &s)| Group::new(p, g).with(s))
        .collect()
}

/// bf16 parameters and bf16 buffers under stochastic rounding: every step equals
/// `MuonWithFallback::step_with` by hand per group with the documented key (the optimizer's seed,
/// stream `stream + group index`, counter `t`), on every backend; the checkpoint carries state
/// format 8 (bf16 buffers), resumes bit-identically, and is refused by a state of `f32` buffers.
#[test]
fn muon_bf16_storage_steps_by_hand_and_resumes_bit_identically() {
    let key = StochasticKey::new(5).with_stream(40);
    let shapes = trainable_shapes();
    let sch = schedule();
    let bits = |v: &[bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for b in backends() {
        let exec = Exec::on(b)
            .unwrap()
            .with_rounding(Rounding::Stochastic(key));
        // An optimizer, the model's gradients, its parameters in bf16, zero bf16 buffers.
        let new_run = || {
            let model = Model::new(12);
            let params: Vec<Vec<bf16>> = model
                .params
                .iter()
                .map(|p| p.iter().map(|&x| bf16::from_f32(x)).collect())
                .collect();
            let buffers = vec![bf16::ZERO; MuonState::<f32>::buffers_len(&shapes, 2)];
            (optimizer(exec), model, params, buffers)
        };
        let mut workspace = vec![0.0f32; MuonState::<f32>::workspace_len(&shapes)];
        let mut step_workspace = workspace.clone();
        let mut step = |opt: &mut Optimizer<Rules, _>,
                        model: &mut Model,
                        params: &mut [Vec<bf16>],
                        buffers: &mut [bf16]| {
            model.fill_grads(opt.steps() + 1);
            let mut state = MuonState::new(&shapes, buffers, &mut step_workspace[..]);
            let report = opt
                .step(&mut bf16_groups(params, &mut model.grads), &mut state)
                .unwrap();
            assert!(!report.skipped);
        };

        // Three steps, each against the same step by hand.
        let (mut opt, mut model, mut params, mut buffers) = new_run();
        let mut hand_params = params.clone();
        let mut hand_buffers: Vec<Vec<bf16>> = SHAPES
            .iter()
            .map(|&s| vec![bf16::ZERO; rules().state_len(s)])
            .collect();
        for t in 1..=3u64 {
            step(&mut opt, &mut model, &mut params, &mut buffers);
            for k in (0..SHAPES.len()).filter(|&k| !SETTINGS[k].frozen) {
                let r = group_rules(rules(), sch.at(t - 1), SETTINGS[k]);
                let group_key = key.with_stream(key.stream + k as u64).with_counter(t);
                let e = Exec::on(b)
                    .unwrap()
                    .with_rounding(Rounding::Stochastic(group_key));
                let mut work = vec![0.0f32; Rules::workspace_len(SHAPES[k])];
                let (p, g) = (&mut hand_params[k], &model.grads[k]);
                r.step_with(&e, t, SHAPES[k], p, g, &mut hand_buffers[k], &mut work)
                    .unwrap();
            }
            for k in 0..SHAPES.len() {
                let what = format!("{b}, step {t}, group {k}");
                first_difference(&what, &bits(&params[k]), &bits(&hand_params[k]));
            }
            let trainable: Vec<bf16> = (0..SHAPES.len())
                .filter(|&k| !SETTINGS[k].frozen)
                .flat_map(|k| hand_buffers[k].clone())
                .collect();
            let what = format!("{b}, step {t}, buffers");
            first_difference(&what, &bits(&buffers), &bits(&trainable));
        }

        // Saved after 3 steps, restored into a fresh run, 2 more steps: as 5 steps straight.
        let bytes = {
            let groups = bf16_groups(&mut params, &mut model.grads);
            let mut bytes = vec![0u8; opt.checkpoint_len::<bf16, bf16>(&groups, &shapes)];
            let state = MuonState::new(&shapes, &mut buffers[..], &mut workspace[..]);
            assert_eq!(opt.save(&groups, &state, &mut bytes).unwrap(), bytes.len());
            bytes
        };
        // The formats after magic, version and length: compute f32, parameters bf16, state 8.
        assert_eq!(bytes[16..19], [1, 3, 8], "{b}: format tags");
        let (mut opt2, mut model2, mut params2, mut buffers2) = new_run();
        // A state of f32 buffers is refused (it expects state format 7) and nothing is written.
        let mut f32_buffers = vec![0.5f32; buffers2.len()];
        let mut wrong = MuonState::new(&shapes, &mut f32_buffers[..], &mut workspace[..]);
        let mut groups = bf16_groups(&mut params2, &mut model2.grads);
        assert!(
            opt2.restore(&bytes, &mut groups, &mut wrong).is_err(),
            "{b}: a state of f32 buffers accepted a bf16 checkpoint"
        );
        assert!(f32_buffers.iter().all(|&x| x == 0.5));
        let mut state = MuonState::new(&shapes, &mut buffers2[..], &mut workspace[..]);
        opt2.restore(&bytes, &mut groups, &mut state).unwrap();
        drop(groups);
        for _ in 0..2 {
            step(&mut opt, &mut model, &mut params, &mut buffers);
            step(&mut opt2, &mut model2, &mut params2, &mut buffers2);
        }
        assert_eq!(opt2.steps(), 5);
        for k in 0..SHAPES.len() {
            let what = format!("{b}, resumed, group {k}");
            first_difference(&what, &bits(&params2[k]), &bits(&params[k]));
        }
        first_difference(
            &format!("{b}, resumed, buffers"),
            &bits(&buffers2),
            &bits(&buffers),
        );
    }
}
