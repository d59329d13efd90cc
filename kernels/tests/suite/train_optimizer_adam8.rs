//! The optimizer driving 8-bit blockwise Adam (`Adam8`, state in an `Adam8State`): equal, bit for
//! bit on every backend, to `Adam8::step_with` called by hand per group with the schedule's rate and
//! the groups' settings (groups of lengths across block boundaries, empty, frozen, without decay,
//! at other rates); every wrong length rejected with a typed error before anything is written;
//! checkpoints that resume bit-identically and are rejected whole when corrupted or mismatched;
//! clipping and the non-finite policy as for an elementwise rule; the context's rounding unused
//! for `f32` parameters and applied, by hand, to bf16 parameters.

use crate::common;

use common::{backends, proptest_config};
use descent_kernels::random::{fill_normal, seeded, stream};
use descent_kernels::rules::adam8::Quantizer;
use descent_kernels::train::{
    clip_grad_norm_with, crc32, warmup_cosine, Adam8State, CheckpointError, Group, GroupSettings,
    NonFinite, Optimizer, Schedule,
};
use descent_kernels::{Adam, Adam8, Error, Exec, Rounding, StochasticKey, WeightDecay};
use half::bf16;
use proptest::prelude::*;

/// Group lengths: block boundaries (256, 257, 513), an empty group, a frozen group, a short one.
const LENS: [usize; 6] = [256, 0, 257, 300, 513, 3];
/// Weights (decay), an empty bias, weights, a frozen tensor, a half-rate tensor, a double-rate
/// bias without decay.
const SETTINGS: [GroupSettings; 6] = [
    GroupSettings::DEFAULT,
    GroupSettings::NO_DECAY,
    GroupSettings::DEFAULT,
    GroupSettings::FROZEN,
    GroupSettings {
        lr_scale: 0.5,
        ..GroupSettings::DEFAULT
    },
    GroupSettings {
        lr_scale: 2.0,
        ..GroupSettings::NO_DECAY
    },
];

fn schedule() -> impl Schedule + std::fmt::Debug + Copy {
    warmup_cosine(0.0, 0.05, 3, 40, 1e-3).unwrap()
}

/// Parameters and gradients of groups of any lengths, with the settings of [`SETTINGS`] in turn.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    params: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    settings: Vec<GroupSettings>,
}

impl Model {
    fn new(seed: u64, lens: &[usize]) -> Self {
        let mut rng = seeded(seed);
        let params = lens
            .iter()
            .map(|&n| {
                let mut v = vec![0.0f32; n];
                fill_normal(&mut rng, &mut v, 0.0, 1.0);
                v
            })
            .collect();
        Model {
            params,
            grads: lens.iter().map(|&n| vec![0.0; n]).collect(),
            settings: (0..lens.len())
                .map(|k| SETTINGS[k % SETTINGS.len()])
                .collect(),
        }
    }

    /// Gradients of step `t`: a pull towards 0.3 plus seeded noise (depends on `t` only).
    fn fill_grads(&mut self, t: u64) {
        let mut rng = stream(77, t as u32);
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
            .zip(&self.settings)
            .map(|((p, g), &s)| Group::new(p, g).with(s))
            .collect()
    }

    /// The lengths of the trainable groups.
    fn trainable(&self) -> Vec<usize> {
        self.params
            .iter()
            .zip(&self.settings)
            .filter(|(_, s)| !s.frozen)
            .map(|(p, _)| p.len())
            .collect()
    }

    /// Zeroed codes and scales for the trainable groups.
    fn zero_state(&self) -> (Vec<u8>, Vec<f32>) {
        let t = self.trainable();
        (
            vec![0; Adam8State::codes_len(&t)],
            vec![0.0; Adam8State::scales_len(&t)],
        )
    }

    fn bits(&self) -> Vec<Vec<u32>> {
        self.params
            .iter()
            .map(|p| p.iter().map(|x| x.to_bits()).collect())
            .collect()
    }
}

/// Buffers of an `Adam8State`.
#[derive(Clone, Debug, PartialEq)]
struct State {
    codes: Vec<u8>,
    scales: Vec<f32>,
}

impl State {
    fn zero(model: &Model) -> Self {
        let (codes, scales) = model.zero_state();
        State { codes, scales }
    }

    fn view(&mut self) -> Adam8State<'_> {
        Adam8State::new(&mut self.codes, &mut self.scales)
    }

    fn bits(&self) -> (Vec<u8>, Vec<u32>) {
        (
            self.codes.clone(),
            self.scales.iter().map(|x| x.to_bits()).collect(),
        )
    }
}

/// Asserts `got == want`, naming the first differing element (the buffers are long).
#[track_caller]
fn first_difference<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: element {i} is {:?}, expected {:?}",
            got[i], want[i]
        );
    }
}

/// Asserts that two runs hold the same bits: parameters (all groups, in order), codes, scales.
#[track_caller]
fn assert_same_run(what: &str, (m, s): (&Model, &State), (wm, ws): (&Model, &State)) {
    let flat = |m: &Model| m.bits().concat();
    first_difference(&format!("{what}: parameters"), &flat(m), &flat(wm));
    let (codes, scales) = s.bits();
    let (want_codes, want_scales) = ws.bits();
    first_difference(&format!("{what}: codes"), &codes, &want_codes);
    first_difference(&format!("{what}: scales"), &scales, &want_scales);
}

/// The by-hand reference: each trainable group's own codes and scales, `Adam8::step_with` with
/// the schedule's rate times the group's scale, without decay where the group says so.
struct ByHand {
    model: Model,
    codes: Vec<Vec<u8>>,
    scales: Vec<Vec<f32>>,
}

impl ByHand {
    fn new(model: Model) -> Self {
        let codes = model
            .params
            .iter()
            .map(|p| vec![0; Adam8::codes_len(p.len())])
            .collect();
        let scales = model
            .params
            .iter()
            .map(|p| vec![0.0; Adam8::scales_len(p.len())])
            .collect();
        ByHand {
            model,
            codes,
            scales,
        }
    }

    /// Step `t` with the gradients already in the model.
    fn step(&mut self, rule: Adam8, sch: &impl Schedule, exec: &Exec, t: u64) {
        let m = &mut self.model;
        for k in 0..m.params.len() {
            let s = m.settings[k];
            if s.frozen {
                continue;
            }
            let mut r = Adam8 {
                lr: (sch.at(t - 1) * s.lr_scale) as f32,
                ..rule
            };
            if !s.weight_decay {
                r.weight_decay = WeightDecay::None;
            }
            r.step_with(
                exec,
                t,
                &mut m.params[k],
                &m.grads[k],
                &mut self.codes[k],
                &mut self.scales[k],
            )
            .unwrap();
        }
    }

    /// The trainable groups' codes and scales, one after the other.
    fn flat(&self) -> State {
        let trainable = |k: &usize| !self.model.settings[*k].frozen;
        let ks = 0..self.model.params.len();
        State {
            codes: ks
                .clone()
                .filter(trainable)
                .flat_map(|k| self.codes[k].clone())
                .collect(),
            scales: ks
                .filter(trainable)
                .flat_map(|k| self.scales[k].clone())
                .collect(),
        }
    }
}

/// `steps` optimizer steps against the same steps by hand, on `exec`; asserts bit equality of
/// the parameters and of the state laid out group after group.
fn compare_with_hand(rule: Adam8, lens: &[usize], seed: u64, steps: u64, exec: Exec) {
    let sch = schedule();
    let mut opt = Optimizer::new(rule, sch).unwrap().with_exec(exec);
    let mut model = Model::new(seed, lens);
    let mut state = State::zero(&model);
    let mut hand = ByHand::new(model.clone());
    for t in 1..=steps {
        model.fill_grads(t);
        hand.model.fill_grads(t);
        let report = opt.step(&mut model.groups(), &mut state.view()).unwrap();
        assert_eq!((report.step, report.lr), (t, sch.at(t - 1)));
        assert!(!report.skipped);
        hand.step(rule, &sch, &exec, t);
        let what = format!("{rule:?}, lengths {lens:?}, step {t} on {exec:?}");
        assert_same_run(&what, (&model, &state), (&hand.model, &hand.flat()));
    }
    assert_eq!(opt.steps(), steps);
    // Frozen groups never moved.
    let start = Model::new(seed, lens);
    for (k, s) in model.settings.iter().enumerate() {
        if s.frozen {
            assert_eq!(model.params[k], start.params[k]);
        }
    }
}

#[test]
fn adam8_steps_equal_adam8_by_hand_on_every_backend() {
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        compare_with_hand(Adam8::adamw(0.0, 0.1), &LENS, 1, 6, exec);
        compare_with_hand(
            Adam8 {
                weight_decay: WeightDecay::L2(0.05),
                quantizer: Quantizer::Linear { bits: 4 },
                ..Adam8::new(0.0)
            },
            &LENS,
            2,
            4,
            exec,
        );
    }
}

/// Group lengths around block boundaries, and empty groups.
fn group_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), 1usize..40, 250usize..=262, 500usize..=530]
}

proptest! {
    #![proptest_config(proptest_config(8))]

    /// Any group lengths (frozen, no-decay and rescaled groups among them), any decay form and
    /// quantiser: the optimizer equals the groups stepped by hand, on every backend.
    #[test]
    fn adam8_any_groups_equal_adam8_by_hand(
        lens in prop::collection::vec(group_len(), 1..8),
        seed in any::<u64>(),
        decay in prop_oneof![
            Just(WeightDecay::None),
            Just(WeightDecay::L2(0.02)),
            Just(WeightDecay::Decoupled(0.1)),
        ],
        bits in prop_oneof![Just(None), (2u8..=8).prop_map(Some)],
    ) {
        let rule = Adam8 {
            weight_decay: decay,
            quantizer: bits.map_or(Quantizer::Dynamic, |bits| Quantizer::Linear { bits }),
            ..Adam8::new(0.0)
        };
        for b in backends() {
            compare_with_hand(rule, &lens, seed, 3, Exec::on(b).unwrap());
        }
    }
}

/// bf16 parameters under stochastic rounding: each step equals `Adam8::step_with` by hand per
/// group on the bf16 parameters, with the group's key (the optimizer's seed, stream
/// `stream + group index`, counter `t`), on every backend.
#[test]
fn adam8_bf16_params_equal_adam8_by_hand_with_the_group_keys() {
    let key = StochasticKey::new(8).with_stream(3);
    let rule = Adam8::adamw(0.0, 0.01);
    let sch = schedule();
    let bits = |v: &[bf16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let mut opt = Optimizer::new(rule, sch)
            .unwrap()
            .with_exec(exec.with_rounding(Rounding::Stochastic(key)));
        let mut model = Model::new(4, &LENS);
        let mut params: Vec<Vec<bf16>> = model
            .params
            .iter()
            .map(|p| p.iter().map(|&x| bf16::from_f32(x)).collect())
            .collect();
        let (mut hand, start) = (params.clone(), params.clone());
        let mut state = State::zero(&model);
        let mut hand_codes: Vec<Vec<u8>> =
            LENS.iter().map(|&n| vec![0; Adam8::codes_len(n)]).collect();
        let mut hand_scales: Vec<Vec<f32>> = LENS
            .iter()
            .map(|&n| vec![0.0; Adam8::scales_len(n)])
            .collect();
        for t in 1..=3u64 {
            model.fill_grads(t);
            let mut groups: Vec<Group<'_, bf16, f32>> = params
                .iter_mut()
                .zip(model.grads.iter_mut())
                .zip(&SETTINGS)
                .map(|((p, g), &s)| Group::new(p, g).with(s))
                .collect();
            opt.step(&mut groups, &mut state.view()).unwrap();
            for k in (0..LENS.len()).filter(|&k| !SETTINGS[k].frozen) {
                let mut r = Adam8 {
                    lr: (sch.at(t - 1) * SETTINGS[k].lr_scale) as f32,
                    ..rule
                };
                if !SETTINGS[k].weight_decay {
                    r.weight_decay = WeightDecay::None;
                }
                let group_key = key.with_stream(key.stream + k as u64).with_counter(t);
                let e = exec.with_rounding(Rounding::Stochastic(group_key));
                let (c, s) = (&mut hand_codes[k], &mut hand_scales[k]);
                r.step_with(&e, t, &mut hand[k], &model.grads[k], c, s)
                    .unwrap();
            }
            for k in 0..LENS.len() {
                let what = format!("{b}, step {t}, group {k}");
                first_difference(&what, &bits(&params[k]), &bits(&hand[k]));
            }
            let trainable = |k: &usize| !SETTINGS[*k].frozen;
            let codes: Vec<u8> = (0..LENS.len())
                .filter(trainable)
                .flat_map(|k| hand_codes[k].clone())
                .collect();
            first_difference(&format!("{b}, step {t}, codes"), &state.codes, &codes);
        }
        assert_ne!(
            bits(&params[0]),
            bits(&start[0]),
            "{b}: the parameters did not move"
        );
    }
}

#[test]
fn adam8_ignores_the_rounding() {
    // f32 parameters and byte codes: nothing is rounded to a narrower format, so a stochastic
    // context gives the nearest-even bits.
    let run = |exec: Exec| {
        let mut opt = Optimizer::new(Adam8::adamw(0.0, 0.01), schedule())
            .unwrap()
            .with_exec(exec);
        let mut model = Model::new(3, &LENS);
        let mut state = State::zero(&model);
        for t in 1..=3 {
            model.fill_grads(t);
            opt.step(&mut model.groups(), &mut state.view()).unwrap();
        }
        (model.bits(), state.bits())
    };
    let exec = Exec::active();
    assert_eq!(
        run(exec),
        run(exec.with_rounding(Rounding::Stochastic(StochasticKey::new(5))))
    );
}

/// One step of a fresh optimizer over a fresh model with codes and scales of the given lengths
/// filled with markers; asserts the typed error `want` and that nothing was written.
fn rejected(
    opt: &mut Optimizer<Adam8, impl Schedule + std::fmt::Debug>,
    model: &mut Model,
    codes: usize,
    scales: usize,
    want: Error,
) {
    model.fill_grads(1);
    let before = model.clone();
    let (mut c, mut s) = (vec![0xA5u8; codes], vec![0.25f32; scales]);
    let got = opt.step(&mut model.groups(), &mut Adam8State::new(&mut c, &mut s));
    assert_eq!(got, Err(want));
    assert_eq!(model.bits(), before.bits(), "parameters written");
    assert_eq!(model.grads, before.grads, "gradients written");
    assert!(c.iter().all(|&x| x == 0xA5), "codes written");
    assert!(s.iter().all(|&x| x == 0.25), "scales written");
    assert_eq!(opt.steps(), 0);
}

#[test]
fn adam8_wrong_lengths_are_rejected_before_writing() {
    let mut opt = Optimizer::new(Adam8::adamw(0.01, 0.01), schedule()).unwrap();
    let mut model = Model::new(4, &LENS);
    let t = model.trainable();
    let (nc, ns) = (Adam8State::codes_len(&t), Adam8State::scales_len(&t));
    assert_eq!(
        (
            opt.codes_len(&model.groups()),
            opt.scales_len(&model.groups())
        ),
        (nc, ns)
    );
    // Per group: 256 → 1 block, 0 → 0, 257 → 2, 513 → 3, 3 → 1: 7 blocks, 14 scales. The scales
    // of the 1029 trainable parameters as one tensor (5 blocks) are too few: no block holds two
    // groups' elements.
    assert_eq!(ns, 14);
    let one_tensor = Adam8::scales_len(t.iter().sum());
    assert_eq!(one_tensor, 10);
    let mismatch = |buffer, expected, found| Error::LengthMismatch {
        buffer,
        expected,
        found,
    };
    for codes in [0, nc - 1, nc + 1, 2 * nc] {
        rejected(
            &mut opt,
            &mut model,
            codes,
            ns,
            mismatch("codes", nc, codes),
        );
    }
    for scales in [0, one_tensor, ns - 1, ns + 1] {
        rejected(
            &mut opt,
            &mut model,
            nc,
            scales,
            mismatch("scales", ns, scales),
        );
    }
    // The frozen group owns no state: buffers sized for every group are too long.
    let all: Vec<usize> = LENS.to_vec();
    rejected(
        &mut opt,
        &mut model,
        Adam8State::codes_len(&all),
        ns,
        mismatch("codes", nc, Adam8State::codes_len(&all)),
    );
    // A gradient of the wrong length, in a trainable group and in the frozen one.
    for k in [4, 3] {
        let mut short = model.clone();
        short.grads[k].pop();
        rejected(
            &mut opt,
            &mut short,
            nc,
            ns,
            mismatch("grads", LENS[k], LENS[k] - 1),
        );
    }
    // An invalid group rate.
    let mut bad = model.clone();
    bad.settings[5].lr_scale = -1.0;
    rejected(
        &mut opt,
        &mut bad,
        nc,
        ns,
        Error::InvalidHyperParameter {
            name: "lr_scale",
            requirement: "must be finite and >= 0",
        },
    );
    // A schedule whose rate makes the rule invalid (NaN), caught at validation.
    let mut nan_lr = Optimizer::new(Adam8::new(0.0), NanSchedule).unwrap();
    rejected(
        &mut nan_lr,
        &mut model,
        nc,
        ns,
        Error::InvalidHyperParameter {
            name: "lr",
            requirement: "must be finite and >= 0",
        },
    );
    // Invalid rules are refused when the optimizer is made.
    assert!(Optimizer::new(Adam8::new(-1.0), schedule()).is_err());
    assert!(Optimizer::new(
        Adam8 {
            beta1: 1.0,
            ..Adam8::new(0.01)
        },
        schedule()
    )
    .is_err());
    assert!(Optimizer::new(
        Adam8 {
            quantizer: Quantizer::Linear { bits: 1 },
            ..Adam8::new(0.01)
        },
        schedule()
    )
    .is_err());
}

/// A schedule whose every rate is NaN.
#[derive(Clone, Copy, Debug)]
struct NanSchedule;
impl Schedule for NanSchedule {
    fn at(&self, _: u64) -> f64 {
        f64::NAN
    }
}

proptest! {
    #![proptest_config(proptest_config(32))]

    /// Any codes or scales length other than the groups' own is rejected, and nothing is written.
    #[test]
    fn adam8_any_wrong_state_length_writes_nothing(
        lens in prop::collection::vec(group_len(), 1..6),
        dc in -40isize..40,
        ds in -4isize..4,
    ) {
        prop_assume!(dc != 0 || ds != 0);
        let mut model = Model::new(5, &lens);
        let t = model.trainable();
        let (nc, ns) = (Adam8State::codes_len(&t), Adam8State::scales_len(&t));
        let codes = nc.saturating_add_signed(dc);
        let scales = ns.saturating_add_signed(ds);
        prop_assume!(codes != nc || scales != ns);
        let (buffer, expected, found) = if codes != nc {
            ("codes", nc, codes)
        } else {
            ("scales", ns, scales)
        };
        let mut opt = Optimizer::new(Adam8::adamw(0.01, 0.01), schedule()).unwrap();
        rejected(&mut opt, &mut model, codes, scales, Error::LengthMismatch { buffer, expected, found });
    }
}

/// An optimizer with clipping, as the checkpoint tests use it.
fn clipped(rule: Adam8, exec: Exec) -> Optimizer<Adam8, impl Schedule + std::fmt::Debug + Copy> {
    Optimizer::new(rule, schedule())
        .unwrap()
        .with_exec(exec)
        .with_clip_norm(2.0)
        .unwrap()
}

/// Trains `steps` steps from the optimizer's current state.
fn train(
    opt: &mut Optimizer<Adam8, impl Schedule + std::fmt::Debug>,
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

/// Saves a checkpoint of `opt`, `model` and `state`.
fn save(
    opt: &Optimizer<Adam8, impl Schedule + std::fmt::Debug>,
    model: &mut Model,
    state: &mut State,
) -> Vec<u8> {
    let mut bytes = vec![0u8; opt.checkpoint_len(&model.groups())];
    let used = opt
        .save(&model.groups(), &state.view(), &mut bytes)
        .unwrap();
    assert_eq!(used, bytes.len());
    bytes
}

#[test]
fn adam8_checkpoint_resume_is_bit_identical_on_every_backend() {
    let (k, m) = (5u64, 7u64);
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        for rule in [
            Adam8::adamw(0.0, 0.01),
            Adam8 {
                quantizer: Quantizer::Linear { bits: 3 },
                ..Adam8::new(0.0)
            },
        ] {
            // Straight.
            let mut opt = clipped(rule, exec);
            let mut model = Model::new(6, &LENS);
            let mut state = State::zero(&model);
            train(&mut opt, &mut model, &mut state, k + m);
            // Interrupted: save after k steps.
            let mut opt1 = clipped(rule, exec);
            let mut model1 = Model::new(6, &LENS);
            let mut state1 = State::zero(&model1);
            train(&mut opt1, &mut model1, &mut state1, k);
            let bytes = save(&opt1, &mut model1, &mut state1);
            // A fresh optimizer, other parameters, zeroed codes and scales.
            let mut opt2 = clipped(rule, exec);
            let mut model2 = Model::new(7, &LENS);
            let mut state2 = State::zero(&model2);
            opt2.restore(&bytes, &mut model2.groups(), &mut state2.view())
                .unwrap();
            assert_eq!(opt2.steps(), k);
            let what = format!("{rule:?} on {b}");
            assert_same_run(
                &format!("{what}, restored"),
                (&model2, &state2),
                (&model1, &state1),
            );
            train(&mut opt2, &mut model2, &mut state2, m);
            assert_same_run(
                &format!("{what}, resumed"),
                (&model2, &state2),
                (&model, &state),
            );
        }
    }
}

/// A checkpoint of three clipped steps of AdamW8 over the model on the active backend.
fn saved() -> Vec<u8> {
    let mut opt = clipped(Adam8::adamw(0.0, 0.01), Exec::active());
    let mut model = Model::new(8, &LENS);
    let mut state = State::zero(&model);
    train(&mut opt, &mut model, &mut state, 3);
    save(&opt, &mut model, &mut state)
}

/// Restores `bytes` with `opt` into a fresh model and marked codes and scales of the given
/// lengths; asserts nothing changed on error.
fn try_restore_with(
    mut opt: Optimizer<Adam8, impl Schedule + std::fmt::Debug>,
    model: &mut Model,
    codes: usize,
    scales: usize,
    bytes: &[u8],
) -> Result<(), CheckpointError> {
    let before = model.clone();
    let (mut c, mut s) = (vec![0xA5u8; codes], vec![0.25f32; scales]);
    let r = opt.restore(
        bytes,
        &mut model.groups(),
        &mut Adam8State::new(&mut c, &mut s),
    );
    if r.is_err() {
        assert_eq!(
            model.bits(),
            before.bits(),
            "a rejected restore wrote parameters"
        );
        assert!(
            c.iter().all(|&x| x == 0xA5),
            "a rejected restore wrote codes"
        );
        assert!(
            s.iter().all(|&x| x == 0.25),
            "a rejected restore wrote scales"
        );
        assert_eq!(opt.steps(), 0);
    }
    r
}

/// [`try_restore_with`] with the optimizer, groups and buffers that saved `bytes`.
fn try_restore(bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut model = Model::new(9, &LENS);
    let t = model.trainable();
    let (nc, ns) = (Adam8State::codes_len(&t), Adam8State::scales_len(&t));
    let opt = clipped(Adam8::adamw(0.0, 0.01), Exec::active());
    try_restore_with(opt, &mut model, nc, ns, bytes)
}

#[test]
fn adam8_checkpoint_layout_is_the_documented_one() {
    let mut opt = clipped(Adam8::adamw(0.0, 0.01), Exec::active());
    let mut model = Model::new(10, &LENS);
    let mut state = State::zero(&model);
    train(&mut opt, &mut model, &mut state, 2);
    let bytes = save(&opt, &mut model, &mut state);
    // Formats: compute f32, parameters f32, state 6 (Adam8's codes and scales).
    assert_eq!(&bytes[..4], b"DSCO");
    assert_eq!(bytes[16..19], [1, 1, 6]);
    // The state section ends the payload: u64 codes length, the codes, u64 scales length, the
    // scales as f32, little-endian; then the CRC-32 of everything before it.
    let (nc, ns) = (state.codes.len(), state.scales.len());
    let end = bytes.len() - 4;
    let scales_at = end - 4 * ns;
    let codes_at = scales_at - 8 - nc;
    let le64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(le64(codes_at - 8), nc as u64);
    assert_eq!(&bytes[codes_at..codes_at + nc], &state.codes[..]);
    assert_eq!(le64(scales_at - 8), ns as u64);
    let scales: Vec<f32> = bytes[scales_at..end]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(scales, state.scales);
    assert_eq!(crc32(&bytes[..end]).to_le_bytes(), bytes[end..]);
    // The parameters just before: every group's, f32.
    let np: usize = LENS.iter().sum();
    let params_at = codes_at - 8 - 4 * np;
    let params: Vec<f32> = bytes[params_at..codes_at - 8]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(params, model.params.concat());
    // The size is the elementwise frame with the state section 8 + codes + 8 + 4 · scales.
    let adam = Optimizer::new(Adam::adamw(0.0f32, 0.01), schedule())
        .unwrap()
        .with_clip_norm(2.0)
        .unwrap();
    let text = |x: &dyn std::fmt::Debug| format!("{x:?}").len() as isize;
    let elementwise = adam.checkpoint_len::<f32, f32>(&model.groups()) as isize;
    let rule_text = text(opt.rule()) + text(&"adam8") - text(adam.rule()) - text(&"adam");
    let trainable = model.trainable().iter().sum::<usize>() as isize;
    assert_eq!(
        bytes.len() as isize,
        elementwise + rule_text - 8 * trainable + (nc + 8 + 4 * ns) as isize
    );
}

#[test]
fn adam8_mismatched_checkpoints_are_rejected_whole() {
    let bytes = saved();
    assert!(try_restore(&bytes).is_ok());
    let lens8 = |model: &Model| {
        let t = model.trainable();
        (Adam8State::codes_len(&t), Adam8State::scales_len(&t))
    };
    let mut model = Model::new(9, &LENS);
    let (nc, ns) = lens8(&model);
    // Another configuration: quantiser, decay, no clipping, another schedule.
    for (rule, field) in [
        (
            Adam8 {
                quantizer: Quantizer::Linear { bits: 8 },
                ..Adam8::adamw(0.0, 0.01)
            },
            "rule configuration",
        ),
        (Adam8::new(0.0), "rule configuration"),
    ] {
        let other = clipped(rule, Exec::active());
        assert_eq!(
            try_restore_with(other, &mut model, nc, ns, &bytes),
            Err(CheckpointError::InvalidValue { field })
        );
    }
    let unclipped = Optimizer::new(Adam8::adamw(0.0, 0.01), schedule()).unwrap();
    assert_eq!(
        try_restore_with(unclipped, &mut model, nc, ns, &bytes),
        Err(CheckpointError::InvalidValue {
            field: "clipping bound"
        })
    );
    let other_schedule = Optimizer::new(Adam8::adamw(0.0, 0.01), NanSchedule)
        .unwrap()
        .with_clip_norm(2.0)
        .unwrap();
    assert_eq!(
        try_restore_with(other_schedule, &mut model, nc, ns, &bytes),
        Err(CheckpointError::InvalidValue {
            field: "schedule configuration"
        })
    );
    // Wrong state lengths for these groups.
    let opt = || clipped(Adam8::adamw(0.0, 0.01), Exec::active());
    for (codes, scales, buffer, expected, found) in [
        (nc - 1, ns, "codes", nc, nc - 1),
        (nc + 2, ns, "codes", nc, nc + 2),
        (nc, ns - 1, "scales", ns, ns - 1),
        (nc, Adam8::scales_len(nc / 2), "scales", ns, 10),
    ] {
        assert_eq!(
            try_restore_with(opt(), &mut model, codes, scales, &bytes),
            Err(CheckpointError::Kernel(Error::LengthMismatch {
                buffer,
                expected,
                found
            }))
        );
    }
    // Other group shapes or settings.
    let mut longer = Model::new(9, &[256, 0, 258, 300, 513, 3]);
    let (lc, ls) = lens8(&longer);
    assert!(matches!(
        try_restore_with(opt(), &mut longer, lc, ls, &bytes),
        Err(CheckpointError::WrongShape {
            field: "group length",
            ..
        })
    ));
    let mut thawed = Model::new(9, &LENS);
    thawed.settings[3] = GroupSettings::DEFAULT;
    let (tc, ts) = lens8(&thawed);
    assert!(matches!(
        try_restore_with(opt(), &mut thawed, tc, ts, &bytes),
        Err(CheckpointError::WrongShape {
            field: "group frozen",
            ..
        })
    ));
    // An elementwise rule's checkpoint (state format f32) is not Adam8's, and the other way.
    let mut adam = Optimizer::new(Adam::adamw(0.0f32, 0.01), schedule())
        .unwrap()
        .with_clip_norm(2.0)
        .unwrap();
    let mut adam_model = Model::new(9, &LENS);
    let mut adam_state = vec![0.0f32; adam.state_len(&adam_model.groups())];
    adam.step(&mut adam_model.groups(), &mut adam_state)
        .unwrap();
    let mut adam_bytes = vec![0u8; adam.checkpoint_len::<f32, f32>(&adam_model.groups())];
    adam.save(&adam_model.groups(), &adam_state, &mut adam_bytes)
        .unwrap();
    assert_eq!(
        try_restore(&adam_bytes),
        Err(CheckpointError::WrongShape {
            field: "state format",
            expected: 6,
            found: 1
        })
    );
    let mut fresh = Optimizer::new(Adam::adamw(0.0f32, 0.01), schedule())
        .unwrap()
        .with_clip_norm(2.0)
        .unwrap();
    let before = adam_model.bits();
    let mut marked = vec![0.25f32; adam_state.len()];
    assert_eq!(
        fresh.restore(&bytes, &mut adam_model.groups(), &mut marked),
        Err(CheckpointError::WrongShape {
            field: "state format",
            expected: 1,
            found: 6
        })
    );
    assert_eq!(adam_model.bits(), before);
    assert!(marked.iter().all(|&x| x == 0.25));
    // Truncated anywhere.
    for cut in [0, 1, 19, bytes.len() / 2, bytes.len() - 5, bytes.len() - 1] {
        assert!(try_restore(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // Too small an output buffer.
    let mut opt = opt();
    let mut model = Model::new(9, &LENS);
    let mut state = State::zero(&model);
    train(&mut opt, &mut model, &mut state, 1);
    let mut small = vec![0u8; opt.checkpoint_len(&model.groups()) - 1];
    assert!(matches!(
        opt.save(&model.groups(), &state.view(), &mut small),
        Err(CheckpointError::BufferTooSmall { .. })
    ));
    // Saving checks the state's lengths too.
    let mut short = vec![0u8; nc - 1];
    let mut big = vec![0u8; bytes.len()];
    assert_eq!(
        opt.save(
            &model.groups(),
            &Adam8State::new(&mut short, &mut state.scales),
            &mut big
        ),
        Err(CheckpointError::Kernel(Error::LengthMismatch {
            buffer: "codes",
            expected: nc,
            found: nc - 1
        }))
    );
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// Any single-byte change to a valid checkpoint is rejected, and nothing is written.
    #[test]
    fn adam8_corrupted_checkpoints_never_restore(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = saved();
        let i = pos.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(try_restore(&bytes).is_err());
    }
}

#[test]
fn adam8_clipping_scales_trainable_gradients_as_torch() {
    for b in backends() {
        let exec = Exec::on(b).unwrap();
        let rule = Adam8::adamw(0.0, 0.01);
        let sch = schedule();
        let mut opt = Optimizer::new(rule, sch)
            .unwrap()
            .with_exec(exec)
            .with_clip_norm(0.5)
            .unwrap();
        let mut model = Model::new(11, &LENS);
        let mut state = State::zero(&model);
        let mut hand = ByHand::new(model.clone());
        for t in 1..=4u64 {
            model.fill_grads(t);
            hand.model.fill_grads(t);
            let r = opt.step(&mut model.groups(), &mut state.view()).unwrap();
            // By hand: clip the trainable gradients together, then each group's Adam8 step.
            let m = &mut hand.model;
            let mut trainable: Vec<&mut [f32]> = m
                .grads
                .iter_mut()
                .zip(&m.settings)
                .filter(|(_, s)| !s.frozen)
                .map(|(g, _)| g.as_mut_slice())
                .collect();
            let c =
                clip_grad_norm_with(&exec, &mut trainable, 0.5f32, NonFinite::Propagate).unwrap();
            assert!(c.factor < 1.0, "the bound is below the gradient norm");
            assert_eq!(r.grad_norm, Some(c.total_norm as f64));
            assert_eq!(r.clip_factor, c.factor as f64);
            hand.step(rule, &sch, &exec, t);
            let what = format!("step {t} on {b}");
            assert_same_run(&what, (&model, &state), (&hand.model, &hand.flat()));
            // The frozen group's gradients are neither part of the norm nor scaled.
            assert_eq!(model.grads[3], hand.model.grads[3]);
        }
    }
}

#[test]
fn adam8_non_finite_gradients_skip_or_propagate() {
    for clip in [None, Some(1.0)] {
        for policy in [NonFinite::Skip, NonFinite::Propagate] {
            for bad in [f32::NAN, f32::INFINITY] {
                let what = format!("clip {clip:?} {policy:?} {bad}");
                let mut opt = Optimizer::new(Adam8::adamw(0.0, 0.01), schedule())
                    .unwrap()
                    .with_nonfinite(policy);
                if let Some(c) = clip {
                    opt = opt.with_clip_norm(c).unwrap();
                }
                let mut model = Model::new(12, &LENS);
                let mut state = State::zero(&model);
                train(&mut opt, &mut model, &mut state, 3);
                let (before, state_before) = (model.clone(), state.clone());
                model.fill_grads(4);
                model.grads[2][200] = bad;
                let grads_before = model.clone();
                let r = opt.step(&mut model.groups(), &mut state.view()).unwrap();
                match policy {
                    NonFinite::Skip => {
                        assert!(r.skipped, "{what}");
                        assert_eq!(opt.steps(), 3, "{what}: the counter stays");
                        assert_eq!(model.bits(), before.bits(), "{what}");
                        let bits = |m: &Model| -> Vec<u32> {
                            m.grads.iter().flatten().map(|x| x.to_bits()).collect()
                        };
                        assert_eq!(bits(&model), bits(&grads_before), "{what}: gradients");
                        assert_eq!(state.bits(), state_before.bits(), "{what}: codes, scales");
                    }
                    NonFinite::Propagate => {
                        assert!(!r.skipped, "{what}");
                        assert_eq!(opt.steps(), 4, "{what}");
                        // The poisoned block's scales become non-finite or the parameter NaN.
                        assert!(
                            model.params[2][200].is_nan(),
                            "{what}: NaN reaches the parameter"
                        );
                    }
                }
            }
        }
    }
    // A NaN in a frozen group is not looked at.
    let mut model = Model::new(12, &LENS);
    model.fill_grads(1);
    model.grads[3][0] = f32::NAN;
    let mut opt = Optimizer::new(Adam8::adamw(0.0, 0.01), schedule())
        .unwrap()
        .with_nonfinite(NonFinite::Skip);
    let mut state = State::zero(&model);
    assert!(
        !opt.step(&mut model.groups(), &mut state.view())
            .unwrap()
            .skipped
    );
}
