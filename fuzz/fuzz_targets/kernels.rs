//! Fuzzes the public kernel API, with the lengths, shapes, hyper-parameters, step counts and
//! element bits taken from the input (NaN, ±Inf, subnormals, mismatched lengths of every buffer,
//! the flat state included, step 0 all arise):
//! - every update rule (`Rule::step_with`: GD, SGD, Adam, AMSGrad, sign descent, Signum, Lion,
//!   LAMB) and averaging function (`*_with`) on `f32` and `f64`, the same (LAMB aside) with
//!   bf16/f16/f32 storage, and `reduced::convert_with`;
//! - Schedule-Free AdamW and SGD through their typed views (`TrainView::new`/`resume`,
//!   `EvalView::resume`, `step_with`, `eval_with`, `train_with`, `set_rule`; valid and invalid
//!   counters) with bf16 parameters, `KahanBf16` state and f16 gradients;
//! - 8-bit blockwise Adam (`Adam8::step_with`: codes, block scales, several blocks, the dynamic
//!   and the linear quantizer; `f32`, bf16 and `KahanBf16` parameters), and its encoder against
//!   its reference definition;
//! - Adafactor (`step_vector_with`, `step_matrix_with`: the factored state) on `f32` and `f64`,
//!   with `f32`, bf16 or `KahanBf16` parameters and `f32`, bf16 or f16 gradients;
//! - Muon (`step_matrix_with` with its workspace, `MuonWithFallback::step_with` on a matrix or a
//!   vector with Adam as the fallback rule) on `f32` and `f64`, and with bf16 parameters and
//!   buffers or `KahanBf16` parameters and f16 buffers;
//! - `KahanBf16` (Kahan-compensated bf16) parameters in a rule step, as an average, and in
//!   conversions from and to `f32` (against `KahanBf16::from_f32` / `to_f32` too).
//!
//! For every case, on every available backend (`Exec::on`), against `Exec::scalar()`:
//! - no panic, no out-of-bounds access (`cargo fuzz` builds with AddressSanitizer);
//! - the same `Ok`/`Err` (the same error) as the scalar reference;
//! - on `Err`, every buffer is unchanged, bit for bit;
//! - on `Ok`, every buffer is bit-identical to the scalar result (any NaN matches any NaN), with
//!   nearest and with (counter-based) stochastic rounding.
//!
//! One documented exception: Muon's Newton–Schulz matrix products fuse their multiply-adds on
//! FMA backends, so its parameters are compared bit for bit only where the crate's documentation
//! implies it (see `check_muon`), and otherwise checked for what it states (bit-reproducible on
//! one backend, NaN propagation); its momentum buffer is always compared bit for bit.
//!
//! The operations are tables (`F_OPS`, `R_OPS`, `K_OPS`): one line per public entry point,
//! written against the current API, so that a change of the API changes one line here; the
//! entry points with their own call sequences (Schedule-Free, `Adam8`, Adafactor, Muon) have one
//! function each.
#![no_main]

use descent_kernels::reduced::{self, Rounding, StochasticKey, Storage};
use descent_kernels::rules::adam8::{self, Quantizer};
use descent_kernels::rules::schedule_free::MAX_STEPS;
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, Adafactor, Adam, Adam8, AdjustLr, Backend,
    Element, Error, EvalView, Exec, Gd, KahanBf16, Lamb, Lion, Muon, MuonWithFallback, ParamShape,
    Rule, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd, ScheduleFreeState, Sgd,
    SignDescent, Signum, TrainView, WeightDecay,
};
use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;

/// Reads the input front to back; past its end every read returns zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | ((self.u32() as u64) << 32)
    }
}

/// Values the validation and the arithmetic care about; a selector byte picks one, or raw bits.
const SPECIAL: [f64; 16] = [
    0.0,
    -0.0,
    1e-3,
    0.1,
    0.5,
    0.9,
    0.999,
    1.0,
    2.0,
    -1.0,
    1e-8,
    1e-40, // subnormal in f32
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    3.0e38,
];

/// A float type under test (also its own storage format), with its bits.
trait Float: Element + Storage<Self> + Buf {
    fn from_input(inp: &mut Input) -> Self;
    fn raw_bits(self) -> u64;
}

impl Float for f32 {
    fn from_input(inp: &mut Input) -> Self {
        match inp.u8() {
            s @ 0..=15 => SPECIAL[s as usize] as f32,
            _ => f32::from_bits(inp.u32()),
        }
    }
    fn raw_bits(self) -> u64 {
        self.to_bits() as u64
    }
}

impl Float for f64 {
    fn from_input(inp: &mut Input) -> Self {
        match inp.u8() {
            s @ 0..=15 => SPECIAL[s as usize],
            _ => f64::from_bits(inp.u64()),
        }
    }
    fn raw_bits(self) -> u64 {
        self.to_bits()
    }
}

/// Hyper-parameters of every rule, from the input.
struct Hyper<T> {
    lr: T,
    beta1: T,
    beta2: T,
    eps: T,
    decay: WeightDecay<T>,
    /// The weight-decay coefficient of the rules that take a plain `λ` (LAMB and the newer
    /// rules): `λ` of `decay`, or 0 when `decay` is `None`.
    wd: T,
    dampening: T,
    nesterov: bool,
    step: u64,
}

impl<T: Float> Hyper<T> {
    fn from_input(inp: &mut Input) -> Self {
        let (lr, beta1, beta2, eps) = (
            T::from_input(inp),
            T::from_input(inp),
            T::from_input(inp),
            T::from_input(inp),
        );
        let wd = T::from_input(inp);
        let decay = match inp.u8() % 3 {
            0 => WeightDecay::None,
            1 => WeightDecay::L2(wd),
            _ => WeightDecay::Decoupled(wd),
        };
        let dampening = T::from_input(inp);
        let nesterov = inp.u8() % 2 == 1;
        let step = match inp.u8() % 4 {
            0 => 0,
            1 => 1,
            2 => inp.u16() as u64,
            _ => inp.u64(),
        };
        Hyper {
            lr,
            beta1,
            beta2,
            eps,
            decay,
            wd: match decay {
                WeightDecay::None => T::zero(),
                _ => wd,
            },
            dampening,
            nesterov,
            step,
        }
    }
    fn gd(&self) -> Gd<T> {
        let mut r = Gd::new(self.lr);
        r.weight_decay = self.decay;
        r
    }
    fn sgd(&self) -> Sgd<T> {
        let mut r = Sgd::new(self.lr, self.beta1);
        (r.dampening, r.nesterov, r.weight_decay) = (self.dampening, self.nesterov, self.decay);
        r
    }
    fn adam(&self) -> Adam<T> {
        let mut r = Adam::new(self.lr);
        (r.beta1, r.beta2, r.eps, r.weight_decay) = (self.beta1, self.beta2, self.eps, self.decay);
        r
    }
    fn sign(&self) -> SignDescent<T> {
        let mut r = SignDescent::new(self.lr);
        r.weight_decay = self.decay;
        r
    }
    fn signum(&self) -> Signum<T> {
        let mut r = Signum::new(self.lr, self.beta1);
        r.weight_decay = self.decay;
        r
    }
    fn lion(&self) -> Lion<T> {
        let mut r = Lion::new(self.lr);
        (r.beta1, r.beta2, r.weight_decay) = (self.beta1, self.beta2, self.decay);
        r
    }
    fn lamb(&self) -> Lamb<T> {
        Lamb {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.wd,
        }
    }
}

/// Buffers: `b[0]` params (or the average), `b[1]` grads (or the params averaged in), `b[2]` the
/// rule's flat state (its state buffers one after the other). Replica means use every buffer as a
/// replica.
type FOp<T> = fn(&Exec, &Hyper<T>, &mut [Vec<T>]) -> Result<(), Error>;

/// One rule step on `f32`/`f64` buffers `[params, grads, state]`.
fn f_step<T: Float, R: Rule<T>>(e: &Exec, r: R, step: u64, b: &mut [Vec<T>]) -> Result<(), Error> {
    match b {
        [p, g, s] => r.step_with(e, step, p.as_mut_slice(), g.as_slice(), s.as_mut_slice()),
        _ => unreachable!(),
    }
}

/// `(name, buffer lengths in units of n (empty: 0..=4 replicas of n), op)`: one line per public
/// entry point or rule configuration on `f32`/`f64`.
fn f_ops<T: Float>() -> Vec<(&'static str, &'static [usize], FOp<T>)> {
    vec![
        ("gd", &[1, 1, 0], |e, h, b| f_step(e, h.gd(), h.step, b)),
        ("sgd", &[1, 1, 1], |e, h, b| f_step(e, h.sgd(), h.step, b)),
        ("adam", &[1, 1, 2], |e, h, b| f_step(e, h.adam(), h.step, b)),
        ("amsgrad", &[1, 1, 3], |e, h, b| {
            f_step(e, h.adam().amsgrad(), h.step, b)
        }),
        ("sign", &[1, 1, 0], |e, h, b| f_step(e, h.sign(), h.step, b)),
        ("signum", &[1, 1, 1], |e, h, b| {
            f_step(e, h.signum(), h.step, b)
        }),
        ("lion", &[1, 1, 1], |e, h, b| f_step(e, h.lion(), h.step, b)),
        ("running_mean", &[1, 1], |e, h, b| match b {
            [a, p] => running_mean_with(e, a.as_mut_slice(), p.as_slice(), h.step),
            _ => unreachable!(),
        }),
        ("ema", &[1, 1], |e, h, b| match b {
            [a, p] => ema_with(e, a.as_mut_slice(), p.as_slice(), h.beta1),
            _ => unreachable!(),
        }),
        ("replica_mean", &[], |e, _, b| {
            let mut rs: Vec<&mut [T]> = b.iter_mut().map(|v| v.as_mut_slice()).collect();
            replica_mean_with(e, &mut rs)
        }),
        ("lamb", &[1, 1, 2], |e, h, b| f_step(e, h.lamb(), h.step, b)),
    ]
}

/// A bf16/f16/f32 storage op: the rule's hyper-parameters are `f32`; `S` is the storage of the
/// written buffers (`[params, flat state]`, the average, the replicas or the destination), `G` of
/// the read-only one (the gradients, the averaged params or the source). The context carries the
/// backend and the rounding.
type ROp<S, G> = fn(&Exec, &Hyper<f32>, &mut [Vec<S>], &[G]) -> Result<(), Error>;

/// One rule step on `[params, state]` stored as `S`, gradients as `G`.
fn r_step<S: Storage, G: Storage, R: Rule<f32>>(
    e: &Exec,
    r: R,
    step: u64,
    b: &mut [Vec<S>],
    g: &[G],
) -> Result<(), Error> {
    match b {
        [p, s] => r.step_with(e, step, p.as_mut_slice(), g, s.as_mut_slice()),
        _ => unreachable!(),
    }
}

/// `(name, written buffer lengths in units of n (empty: 0..=4 replicas of n), op)`; the read-only
/// buffer has `n` elements.
fn r_ops<S: Storage, G: Storage>() -> Vec<(&'static str, &'static [usize], ROp<S, G>)> {
    vec![
        ("gd", &[1, 0], |e, h, b, g| r_step(e, h.gd(), h.step, b, g)),
        ("sgd", &[1, 1], |e, h, b, g| {
            r_step(e, h.sgd(), h.step, b, g)
        }),
        ("adam", &[1, 2], |e, h, b, g| {
            r_step(e, h.adam(), h.step, b, g)
        }),
        ("amsgrad", &[1, 3], |e, h, b, g| {
            r_step(e, h.adam().amsgrad(), h.step, b, g)
        }),
        ("sign", &[1, 0], |e, h, b, g| {
            r_step(e, h.sign(), h.step, b, g)
        }),
        ("signum", &[1, 1], |e, h, b, g| {
            r_step(e, h.signum(), h.step, b, g)
        }),
        ("lion", &[1, 1], |e, h, b, g| {
            r_step(e, h.lion(), h.step, b, g)
        }),
        ("running_mean", &[1], |e, h, b, p| match b {
            [a] => running_mean_with(e, a.as_mut_slice(), p, h.step),
            _ => unreachable!(),
        }),
        ("ema", &[1], |e, h, b, p| match b {
            [a] => ema_with(e, a.as_mut_slice(), p, h.beta1),
            _ => unreachable!(),
        }),
        ("replica_mean", &[], |e, _, b, _| {
            let mut rs: Vec<&mut [S]> = b.iter_mut().map(|v| v.as_mut_slice()).collect();
            replica_mean_with(e, &mut rs)
        }),
        ("convert", &[1], |e, _, b, src| match b {
            [dst] => reduced::convert_with(e, src, dst.as_mut_slice()),
            _ => unreachable!(),
        }),
        // LAMB is not instantiated for these three pairs (build time): its 16-bit storage is
        // fuzzed by `check_kahan` (KahanBf16 parameters, bf16 state, stochastic or nearest).
    ]
}

/// Buffer lengths `units[k]·n`: all as stated, or (one time in four) one buffer off by `1..=4`
/// in either direction (a state slice for `0·n` elements may thus be non-empty).
fn lengths(inp: &mut Input, units: &[usize]) -> (usize, Vec<usize>) {
    let n = inp.u16() as usize % 300;
    let mut lens: Vec<usize> = units.iter().map(|u| u * n).collect();
    perturb(inp, &mut lens);
    (n, lens)
}

/// One time in four, one of `lens` off by `1..=4` in either direction.
fn perturb(inp: &mut Input, lens: &mut [usize]) {
    let count = lens.len();
    let sel = inp.u8();
    if sel.is_multiple_of(4) && count > 0 {
        let i = (sel as usize / 4) % count;
        let d = 1 + (inp.u8() as usize % 4);
        lens[i] = if inp.u8().is_multiple_of(2) {
            lens[i] + d
        } else {
            lens[i].saturating_sub(d)
        };
    }
}

/// The units of an op: its own, or (replica means) `0..=4` replicas from the input.
fn units_of(inp: &mut Input, units: &'static [usize]) -> Vec<usize> {
    if units.is_empty() {
        vec![1; inp.u8() as usize % 5]
    } else {
        units.to_vec()
    }
}

/// The context of `be`, which `Backend::available` listed.
fn exec_on(be: Backend) -> Exec {
    Exec::on(be).expect("Backend::available lists only available backends")
}

/// Element values: from the input while it lasts, then a cycle through `SPECIAL` and ordinary
/// numbers, so long buffers still hold every kind of value.
fn fill<T: Float>(inp: &mut Input, len: usize, salt: usize) -> Vec<T> {
    (0..len)
        .map(|i| {
            if inp.0.is_empty() {
                let k = (i * 7 + salt * 3) % 24;
                let x = if k < 16 {
                    SPECIAL[k]
                } else {
                    (k as f64 - 19.5) * 0.37
                };
                T::from(x).unwrap_or_else(T::zero)
            } else {
                T::from_input(inp)
            }
        })
        .collect()
}

fn same_bits<T: Float>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.is_nan() && y.is_nan()) || x.raw_bits() == y.raw_bits())
}

fn check_f<T: Float>(inp: &mut Input) {
    let ops = f_ops::<T>();
    let (name, units, op) = ops[inp.u8() as usize % ops.len()];
    let units = units_of(inp, units);
    let h = Hyper::<T>::from_input(inp);
    let (_, lens) = lengths(inp, &units);
    let bufs: Vec<Vec<T>> = lens
        .iter()
        .enumerate()
        .map(|(k, &l)| fill(inp, l, k))
        .collect();
    let mut want = bufs.clone();
    let want_r = op(&Exec::scalar(), &h, &mut want);
    for be in Backend::available() {
        let mut got = bufs.clone();
        let r = op(&exec_on(be), &h, &mut got);
        assert_eq!(r, want_r, "{name} on {be}: result differs from scalar");
        let expect = if r.is_ok() { &want } else { &bufs };
        for (k, (g, e)) in got.iter().zip(expect).enumerate() {
            assert!(
                same_bits(g, e),
                "{name} on {be} ({r:?}): buffer {k} differs from {}",
                if r.is_ok() { "scalar" } else { "its input" }
            );
        }
    }
}

/// Storage types with their bits.
trait Stored: Storage + PartialEq + core::fmt::Debug {
    fn from_bits_u32(b: u32) -> Self;
    fn nan(self) -> bool;
    fn bits(self) -> u32;
}

impl Stored for f32 {
    fn from_bits_u32(b: u32) -> Self {
        f32::from_bits(b)
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}
impl Stored for bf16 {
    fn from_bits_u32(b: u32) -> Self {
        bf16::from_bits(b as u16)
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}
impl Stored for f16 {
    fn from_bits_u32(b: u32) -> Self {
        f16::from_bits(b as u16)
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}

fn fill_stored<S: Stored>(inp: &mut Input, len: usize, salt: usize) -> Vec<S> {
    fill::<f32>(inp, len, salt)
        .into_iter()
        .map(|x| {
            // Half the values are the input's raw 16/32 bits (every bf16/f16 pattern arises).
            if x.to_bits() & 1 == 1 {
                S::from_bits_u32(x.to_bits() >> 1)
            } else {
                S::from_bits_u32(x.to_bits()).max_of_f32(x)
            }
        })
        .collect()
}

/// `S` from an `f32`, via nearest rounding (what the value means in that format).
trait FromF32 {
    fn max_of_f32(self, x: f32) -> Self;
}
impl<S: Stored> FromF32 for S {
    fn max_of_f32(self, x: f32) -> Self {
        let mut out = [self];
        // A nearest-even scalar conversion of one value; it cannot fail (equal lengths).
        reduced::convert_with(&Exec::scalar(), &[x], &mut out[..]).expect("one element");
        out[0]
    }
}

fn same_stored<S: Stored>(a: &[S], b: &[S]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.nan() && y.nan()) || x.bits() == y.bits())
}

fn check_r<S: Stored, G: Stored>(inp: &mut Input) {
    let ops = r_ops::<S, G>();
    let (name, units, op) = ops[inp.u8() as usize % ops.len()];
    let mut units = units_of(inp, units);
    let count = units.len();
    let h = Hyper::<f32>::from_input(inp);
    let stochastic = inp.u8() % 2 == 1;
    let seed = inp.u64();
    // One more length for the read-only buffer (grads, the params averaged in, or the source).
    units.push(1);
    let (_, lens) = lengths(inp, &units);
    let ro: Vec<G> = fill_stored(inp, lens[count], count);
    let bufs: Vec<Vec<S>> = lens[..count]
        .iter()
        .enumerate()
        .map(|(k, &l)| fill_stored(inp, l, k))
        .collect();
    let run = |exec: Exec| {
        let mut b = bufs.clone();
        // Counter-based stochastic rounding: the key is the whole random state (nothing is
        // consumed), so equal bits across backends follow from equal results.
        let exec = if stochastic {
            let key = StochasticKey::new(seed)
                .with_counter(seed >> 32)
                .at_offset(seed & 0xFF);
            exec.with_rounding(Rounding::Stochastic(key))
        } else {
            exec.with_rounding(Rounding::NearestEven)
        };
        (op(&exec, &h, &mut b, &ro), b)
    };
    let (want_r, want) = run(Exec::scalar());
    for be in Backend::available() {
        let (r, got) = run(exec_on(be));
        assert_eq!(r, want_r, "{name} on {be}: result differs from scalar");
        let expect = if r.is_ok() { &want } else { &bufs };
        for (k, (g, e)) in got.iter().zip(expect).enumerate() {
            assert!(
                same_stored(g, e),
                "{name} on {be} ({r:?}): buffer {k} differs"
            );
        }
    }
}

// ------------------------------------------------------------------ the newer rules
//
// Schedule-Free, 8-bit Adam, Adafactor and Muon have entry points of their own (not `Rule`), and
// `KahanBf16` parameters pair with a state in another format: each family below decodes one call
// sequence from the input and replays it on the scalar context and on every available backend.

impl Stored for KahanBf16 {
    fn from_bits_u32(b: u32) -> Self {
        // Any pair of bf16 patterns, canonical split or not.
        KahanBf16 {
            hi: bf16::from_bits(b as u16),
            lo: bf16::from_bits((b >> 16) as u16),
        }
    }
    fn nan(self) -> bool {
        self.hi.is_nan() && self.lo.is_nan()
    }
    fn bits(self) -> u32 {
        self.hi.to_bits() as u32 | (self.lo.to_bits() as u32) << 16
    }
}

/// A buffer element of the newer ops: its values from the input, and bit equality (any NaN
/// matches any NaN; a `KahanBf16` pair half by half).
trait Buf: Copy + core::fmt::Debug {
    fn gen(inp: &mut Input, len: usize, salt: usize) -> Vec<Self>;
    fn same(a: &[Self], b: &[Self]) -> bool;
}

macro_rules! buf_via {
    ($t:ty, $gen:ident, $same:ident) => {
        impl Buf for $t {
            fn gen(inp: &mut Input, len: usize, salt: usize) -> Vec<Self> {
                $gen(inp, len, salt)
            }
            fn same(a: &[Self], b: &[Self]) -> bool {
                $same(a, b)
            }
        }
    };
}
buf_via!(f32, fill, same_bits);
buf_via!(f64, fill, same_bits);
buf_via!(bf16, fill_stored, same_stored);
buf_via!(f16, fill_stored, same_stored);

impl Buf for KahanBf16 {
    fn gen(inp: &mut Input, len: usize, salt: usize) -> Vec<Self> {
        fill_stored(inp, len, salt)
    }
    fn same(a: &[Self], b: &[Self]) -> bool {
        let half = |v: &[Self], f: fn(&KahanBf16) -> bf16| v.iter().map(f).collect::<Vec<_>>();
        a.len() == b.len()
            && same_stored(&half(a, |k| k.hi), &half(b, |k| k.hi))
            && same_stored(&half(a, |k| k.lo), &half(b, |k| k.lo))
    }
}

/// Asserts that buffer `what` of `op` on `be` equals `want` bit for bit (any NaN matches any NaN).
fn expect_same<B: Buf>(op: &str, be: Backend, what: &str, got: &[B], want: &[B]) {
    assert!(
        B::same(got, want),
        "{op} on {be}: {what} differs from scalar"
    );
}

/// Asserts that a rejected call left buffer `what` as it was.
fn expect_unchanged<B: Buf>(
    op: &str,
    e: &Exec,
    r: &Result<(), Error>,
    what: &str,
    after: &[B],
    before: &[B],
) {
    assert!(
        B::same(after, before),
        "{op} on {} ({r:?}): buffer {what} changed by a rejected call",
        e.backend()
    );
}

/// The rounding of a call sequence: nearest, or stochastic with a counter-based key from the
/// input (the key is the whole random state, so equal bits follow from equal results).
#[derive(Clone, Copy)]
struct Rnd(Option<u64>);

impl Rnd {
    fn from_input(inp: &mut Input) -> Self {
        let stochastic = inp.u8() % 2 == 1;
        let seed = inp.u64();
        Rnd(stochastic.then_some(seed))
    }
    fn on(self, exec: Exec) -> Exec {
        match self.0 {
            Some(seed) => exec.with_rounding(Rounding::Stochastic(
                StochasticKey::new(seed)
                    .with_stream(seed >> 48)
                    .with_counter(seed >> 32)
                    .at_offset(seed & 0xFF),
            )),
            None => exec.with_rounding(Rounding::NearestEven),
        }
    }
}

// --------------------------------------------------------------- Schedule-Free AdamW and SGD

/// One action of a Schedule-Free run inside an open view.
#[derive(Clone, Copy, Debug)]
enum SfAct {
    /// `TrainView::step_with` with gradient `k` (skipped at the evaluation point, where the type
    /// has no `step`).
    Step(usize),
    /// `TrainView::eval_with` or `EvalView::train_with`, whichever the view is.
    Switch,
    /// `TrainView::set_rule` with rule `k` of the pool (skipped at the evaluation point).
    SetRule(usize),
}

/// How a segment of a run opens its view.
#[derive(Clone, Copy, Debug)]
enum SfOpen {
    /// `TrainView::new`.
    New,
    /// `TrainView::resume` (`false`) or `EvalView::resume` (`true`) with the counters the previous
    /// segment's view ended with.
    Carried(bool),
    /// The same with counters from the input (invalid ones included).
    Given(bool, ScheduleFreeState),
}

/// What a Schedule-Free run recorded after each call: the result, the counters and both buffers.
struct SfRec<P, S> {
    what: &'static str,
    r: Result<(), Error>,
    counters: [u64; 3],
    p: Vec<P>,
    s: Vec<S>,
}

/// A view at either point.
enum SfView<'a, T, R, P, S> {
    Train(TrainView<'a, T, R, P, S>),
    Eval(EvalView<'a, T, R, P, S>),
}

fn counter_bits(c: ScheduleFreeState) -> [u64; 3] {
    // Any NaN as one pattern (a NaN matches a NaN, as for the buffers).
    let f = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
    [c.k, f(c.lr_max), f(c.weight_sum)]
}

/// The parameters of a Schedule-Free rule from the input.
fn sf_rules<T: Float>(inp: &mut Input) -> (ScheduleFreeAdamW<T>, ScheduleFreeSgd<T>) {
    let h = Hyper::<T>::from_input(inp);
    let (r, power) = (T::from_input(inp), T::from_input(inp));
    let warmup_steps = match inp.u8() % 4 {
        0 => 0,
        1 => inp.u8() as u64 % 8,
        2 => inp.u16() as u64,
        _ => inp.u64(),
    };
    (
        ScheduleFreeAdamW {
            lr: h.lr,
            beta1: h.beta1,
            beta2: h.beta2,
            eps: h.eps,
            weight_decay: h.wd,
            warmup_steps,
            r,
            weight_lr_power: power,
        },
        ScheduleFreeSgd {
            lr: h.lr,
            momentum: h.beta1,
            weight_decay: h.wd,
            warmup_steps,
            r,
            weight_lr_power: power,
        },
    )
}

/// Schedule-Free on `T` with parameters stored as `P`, state as `S`, gradients as `G`: a run of
/// one to three segments, each opening a view (new, resumed with the carried counters, or with
/// counters from the input, at either point) and taking up to five actions (steps with gradients
/// of the right or a wrong length, point switches, rule changes).
fn check_sf<T, P, S, G>(inp: &mut Input)
where
    T: Float,
    P: Buf + Storage<T>,
    S: Buf + Storage<T>,
    G: Buf + Storage<T>,
{
    let adamw = inp.u8().is_multiple_of(2);
    let pool: Vec<_> = (0..3).map(|_| sf_rules::<T>(inp)).collect();
    if adamw {
        let pool: Vec<_> = pool.iter().map(|r| r.0).collect();
        sf_run::<T, _, P, S, G>(inp, "schedule_free_adamw", &pool)
    } else {
        let pool: Vec<_> = pool.iter().map(|r| r.1).collect();
        sf_run::<T, _, P, S, G>(inp, "schedule_free_sgd", &pool)
    }
}

fn sf_run<T, R, P, S, G>(inp: &mut Input, name: &str, pool: &[R])
where
    T: Float,
    R: ScheduleFreeRule<T> + PartialEq,
    P: Buf + Storage<T>,
    S: Buf + Storage<T>,
    G: Buf + Storage<T>,
{
    let rnd = Rnd::from_input(inp);
    let n = inp.u16() as usize % 300;
    let mut lens = [n, R::state_len(n)];
    perturb(inp, &mut lens);
    let mut plan = Vec::new();
    let mut grads: Vec<Vec<G>> = Vec::new();
    for _ in 0..1 + inp.u8() % 3 {
        let sel = inp.u8();
        let open = match sel % 4 {
            0 => SfOpen::New,
            1 | 2 => SfOpen::Carried(sel & 0x10 != 0),
            _ => {
                // Any `k`, and often one within 20 of the views' bound `MAX_STEPS`: resuming
                // above it, or stepping past it, must be the same `InvalidStep` everywhere and
                // write nothing (an overflow of the key counters `2(k + 1)`, `2k + 1` panics in
                // this build, which has overflow checks).
                let k = match inp.u8() % 5 {
                    0 => 0,
                    1 => inp.u8() as u64,
                    2 => inp.u32() as u64,
                    3 => MAX_STEPS - 10 + (inp.u8() % 20) as u64,
                    _ => inp.u64(),
                };
                let lr_max = f64::from_input(inp);
                let weight_sum = f64::from_input(inp);
                SfOpen::Given(
                    sel & 0x10 != 0,
                    ScheduleFreeState {
                        k,
                        lr_max,
                        weight_sum,
                    },
                )
            }
        };
        let mut acts = Vec::new();
        for _ in 0..inp.u8() % 6 {
            let a = inp.u8();
            acts.push(match a % 4 {
                0 | 1 => {
                    let mut len = [n];
                    perturb(inp, &mut len);
                    grads.push(G::gen(inp, len[0], grads.len() + 2));
                    SfAct::Step(grads.len() - 1)
                }
                2 => SfAct::Switch,
                _ => SfAct::SetRule(a as usize / 4 % pool.len()),
            });
        }
        plan.push((open, acts));
    }
    let p0: Vec<P> = P::gen(inp, lens[0], 0);
    let s0: Vec<S> = S::gen(inp, lens[1], 1);

    let run = |exec: Exec| {
        let e = rnd.on(exec);
        let (mut p, mut s) = (p0.clone(), s0.clone());
        let mut rule = pool[0];
        let mut counters = ScheduleFreeState::new();
        let mut trace: Vec<SfRec<P, S>> = Vec::new();
        for (open, acts) in &plan {
            let opened = match *open {
                SfOpen::New => TrainView::new(rule, &mut p, &mut s).map(SfView::Train),
                SfOpen::Carried(false) => {
                    TrainView::resume(rule, &mut p, &mut s, counters).map(SfView::Train)
                }
                SfOpen::Carried(true) => {
                    EvalView::resume(rule, &mut p, &mut s, counters).map(SfView::Eval)
                }
                SfOpen::Given(false, c) => {
                    TrainView::resume(rule, &mut p, &mut s, c).map(SfView::Train)
                }
                SfOpen::Given(true, c) => {
                    EvalView::resume(rule, &mut p, &mut s, c).map(SfView::Eval)
                }
            };
            let mut view = match opened {
                Ok(v) => v,
                Err(err) => {
                    // A rejected view borrowed nothing for long: the buffers are as they were.
                    trace.push(SfRec {
                        what: "open",
                        r: Err(err),
                        counters: counter_bits(counters),
                        p: p.clone(),
                        s: s.clone(),
                    });
                    continue;
                }
            };
            for act in acts {
                let (what, r) = match (*act, &mut view) {
                    (SfAct::Step(k), SfView::Train(t)) => {
                        let before = (t.params().to_vec(), t.state().to_vec(), t.counters());
                        let r = t.step_with(&e, &grads[k]);
                        if r.is_err() {
                            expect_unchanged(name, &e, &r, "params", t.params(), &before.0);
                            expect_unchanged(name, &e, &r, "state", t.state(), &before.1);
                            assert_eq!(
                                counter_bits(t.counters()),
                                counter_bits(before.2),
                                "{name}: a rejected step changed the counters"
                            );
                        }
                        ("step", r)
                    }
                    (SfAct::SetRule(k), SfView::Train(t)) => {
                        let before = t.rule();
                        let r = t.set_rule(pool[k]);
                        if r.is_err() {
                            assert_eq!(t.rule(), before, "{name}: a rejected rule was set");
                        }
                        ("set_rule", r)
                    }
                    (SfAct::Switch, _) => {
                        view = match view {
                            SfView::Train(t) => SfView::Eval(t.eval_with(&e)),
                            SfView::Eval(v) => SfView::Train(v.train_with(&e)),
                        };
                        ("switch", Ok(()))
                    }
                    _ => continue,
                };
                let (c, vp, vs) = match &view {
                    SfView::Train(t) => (t.counters(), t.params().to_vec(), t.state().to_vec()),
                    SfView::Eval(v) => (v.counters(), v.params().to_vec(), v.state().to_vec()),
                };
                trace.push(SfRec {
                    what,
                    r,
                    counters: counter_bits(c),
                    p: vp,
                    s: vs,
                });
            }
            (counters, rule) = match &view {
                SfView::Train(t) => (t.counters(), t.rule()),
                SfView::Eval(v) => (v.counters(), rule),
            };
        }
        (trace, p, s)
    };
    let (want, want_p, want_s) = run(Exec::scalar());
    for be in Backend::available() {
        let (got, got_p, got_s) = run(exec_on(be));
        assert_eq!(got.len(), want.len(), "{name} on {be}: trace length");
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let what = format!("call {k} ({})", w.what);
            assert_eq!(
                g.r, w.r,
                "{name} on {be}: {what}: result differs from scalar"
            );
            assert_eq!(
                g.counters, w.counters,
                "{name} on {be}: {what}: counters differ"
            );
            expect_same(name, be, &format!("{what}: params"), &g.p, &w.p);
            expect_same(name, be, &format!("{what}: state"), &g.s, &w.s);
        }
        expect_same(name, be, "final params", &got_p, &want_p);
        expect_same(name, be, "final state", &got_s, &want_s);
    }
}

// --------------------------------------------------------------- 8-bit blockwise Adam

impl Buf for u8 {
    fn gen(inp: &mut Input, len: usize, salt: usize) -> Vec<Self> {
        (0..len)
            .map(|i| {
                if inp.0.is_empty() {
                    (i * 37 + salt * 11) as u8
                } else {
                    inp.u8()
                }
            })
            .collect()
    }
    fn same(a: &[Self], b: &[Self]) -> bool {
        a == b
    }
}

/// `Adam8::step_with` (codes `&mut [u8]`, scales `&mut [f32]`) for one to three steps, with the
/// dynamic quantizer or a linear one of 0..=9 bits (only 2..=8 are valid), `n < 600` (up to three
/// blocks of 256, tails included), codes and scales from the input or the all-zero step-1 state.
/// Also: the constant-time encoder equals its reference definition (`nearest_code` against
/// `nearest_code_reference`, both dynamic maps) at every non-NaN value and quotient of the case.
/// 8-bit Adam with parameters stored as `P` (`f32`, or bf16 / `KahanBf16` under the input's
/// rounding).
fn check_adam8<P: Buf + Storage + 'static>(inp: &mut Input) {
    let name = "adam8";
    let rnd = if P::FORMAT == reduced::Format::F32 {
        Rnd(None)
    } else {
        Rnd::from_input(inp)
    };
    let h = Hyper::<f32>::from_input(inp);
    let q = inp.u8();
    let quantizer = if q < 128 {
        Quantizer::Dynamic
    } else {
        Quantizer::Linear { bits: q % 10 }
    };
    let rule = Adam8 {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weight_decay: h.decay,
        quantizer,
    };
    let steps = 1 + inp.u8() as u64 % 3;
    let zero_state = inp.u8().is_multiple_of(4);
    let n = inp.u16() as usize % 600;
    let mut lens = [n, n, Adam8::codes_len(n), Adam8::scales_len(n)];
    perturb(inp, &mut lens);
    let p0: Vec<P> = Buf::gen(inp, lens[0], 0);
    let grads: Vec<f32> = Buf::gen(inp, lens[1], 1);
    let (c0, s0): (Vec<u8>, Vec<f32>) = if zero_state {
        (vec![0; lens[2]], vec![0.0; lens[3]])
    } else {
        (Buf::gen(inp, lens[2], 2), Buf::gen(inp, lens[3], 3))
    };
    let run = |e: Exec| {
        let e = rnd.on(e);
        let (mut p, mut c, mut s) = (p0.clone(), c0.clone(), s0.clone());
        let mut rs = Vec::new();
        for k in 0..steps {
            let before = (p.clone(), c.clone(), s.clone());
            let r = rule.step_with(&e, h.step.wrapping_add(k), &mut p, &grads, &mut c, &mut s);
            if r.is_err() {
                expect_unchanged(name, &e, &r, "params", &p, &before.0);
                expect_unchanged(name, &e, &r, "codes", &c, &before.1);
                expect_unchanged(name, &e, &r, "scales", &s, &before.2);
            }
            rs.push(r);
        }
        (rs, p, c, s)
    };
    let (want_r, want_p, want_c, want_s) = run(Exec::scalar());
    for be in Backend::available() {
        let (r, p, c, s) = run(exec_on(be));
        assert_eq!(r, want_r, "{name} on {be}: results differ from scalar");
        expect_same(name, be, "params", &p, &want_p);
        expect_same(name, be, "codes", &c, &want_c);
        expect_same(name, be, "scales", &s, &want_s);
    }
    // The encoder: quotients in [-1, 1] (each value over the largest magnitude) and raw values
    // (the gradients and, for f32 parameters, the new parameters).
    let big = grads
        .iter()
        .fold(0.0f32, |m, x| if x.abs() > m { x.abs() } else { m });
    let params: &[f32] = match (&want_p as &dyn std::any::Any).downcast_ref::<Vec<f32>>() {
        Some(p) => p,
        None => &[],
    };
    for &x in grads.iter().chain(params) {
        for x in [x, x / big] {
            if x.is_nan() {
                continue;
            }
            for map in [&adam8::SIGNED_MAP, &adam8::UNSIGNED_MAP] {
                assert_eq!(
                    adam8::nearest_code(map, x),
                    adam8::nearest_code_reference(map, x),
                    "adam8 encoder at {x:e} ({:#010x})",
                    x.to_bits()
                );
            }
        }
    }
}

// --------------------------------------------------------------- Adafactor

/// A matrix shape: `0..=24` each way, or (one time in sixteen) one dimension huge, so that the
/// products and sums that overflow `usize` are rejected.
fn dims(inp: &mut Input) -> (usize, usize) {
    const HUGE: [usize; 4] = [
        usize::MAX,
        usize::MAX / 2 + 1,
        1 << 32,
        1 << (usize::BITS / 2),
    ];
    let (mut rows, mut cols) = (inp.u8() as usize % 25, inp.u8() as usize % 25);
    let sel = inp.u8();
    if sel.is_multiple_of(16) {
        let huge = HUGE[(sel as usize / 16) % 4];
        if sel & 0x40 == 0 {
            rows = huge
        } else {
            cols = huge
        }
    }
    (rows, cols)
}

/// A buffer length for a shape's element count: the count if small, else a short length (the
/// call must reject it).
fn small(len: usize) -> usize {
    if len <= 4096 {
        len
    } else {
        len % 7
    }
}

/// `Adafactor::step_vector_with` or `step_matrix_with` (factored state `R | C`) for one or two
/// steps, with the parameters stored as `P` and the gradient as `G` (under the input's rounding
/// when either is not `T`): shapes `0..=24` each way or a huge dimension, every hyper-parameter
/// from the input (`eps1` `None` or given), every length possibly off.
fn check_adafactor<T: Float, P: Buf + Storage<T>, G: Buf + Storage<T>>(inp: &mut Input) {
    let rnd = if P::FORMAT == T::FORMAT && G::FORMAT == T::FORMAT {
        Rnd(None)
    } else {
        Rnd::from_input(inp)
    };
    let h = Hyper::<T>::from_input(inp);
    let b2d = T::from_input(inp);
    // Mostly the valid sign (`beta2_decay <= 0`).
    let beta2_decay = if !inp.u8().is_multiple_of(4) {
        -b2d.abs()
    } else {
        b2d
    };
    let eps1 = match inp.u8() % 3 {
        0 => None,
        _ => Some(T::from_input(inp)),
    };
    let (eps2, d) = (T::from_input(inp), T::from_input(inp));
    let rule = Adafactor {
        lr: h.lr,
        beta2_decay,
        eps1,
        eps2,
        d,
        weight_decay: h.wd,
    };
    let matrix = inp.u8().is_multiple_of(2);
    let name = if matrix {
        "adafactor_matrix"
    } else {
        "adafactor_vector"
    };
    let (rows, cols) = dims(inp);
    let n = inp.u16() as usize % 300;
    let mut lens = if matrix {
        let rc = small(rows.saturating_mul(cols));
        [rc, rc, small(rows.saturating_add(cols))]
    } else {
        [n, n, n]
    };
    perturb(inp, &mut lens);
    let steps = 1 + inp.u8() as u64 % 2;
    let p0: Vec<P> = Buf::gen(inp, lens[0], 0);
    let grads: Vec<G> = Buf::gen(inp, lens[1], 1);
    let s0: Vec<T> = fill(inp, lens[2], 2);
    let run = |e: Exec| {
        let e = rnd.on(e);
        let (mut p, mut s) = (p0.clone(), s0.clone());
        let mut rs = Vec::new();
        for k in 0..steps {
            let before = (p.clone(), s.clone());
            let step = h.step.wrapping_add(k);
            let r = if matrix {
                rule.step_matrix_with(&e, step, rows, cols, &mut p, &grads, &mut s)
            } else {
                rule.step_vector_with(&e, step, &mut p, &grads, &mut s)
            };
            if r.is_err() {
                expect_unchanged(name, &e, &r, "params", &p, &before.0);
                expect_unchanged(name, &e, &r, "state", &s, &before.1);
            }
            rs.push(r);
        }
        (rs, p, s)
    };
    let (want_r, want_p, want_s) = run(Exec::scalar());
    for be in Backend::available() {
        let (r, p, s) = run(exec_on(be));
        assert_eq!(r, want_r, "{name} on {be}: results differ from scalar");
        expect_same(name, be, "params", &p, &want_p);
        expect_same(name, be, "state", &s, &want_s);
    }
}

// --------------------------------------------------------------- Muon

/// Whether the backend's matrix products may round differently from the scalar backend's: every
/// SIMD backend. `MatMul` fuses its multiply-adds where the backend has FMA, and on every SIMD
/// backend sums a product with fewer rows than one tile and a transposed `B` in `LANES` partial
/// sums (the `MatMul` documentation); only the scalar backend itself is the scalar order.
/// Whether a stored value is NaN, or finite, as the kernels widen it (a `KahanBf16` pair as
/// `hi + lo` in `f32`).
trait Value: Copy {
    fn nan(&self) -> bool;
    fn finite(&self) -> bool;
}

macro_rules! value_via {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn nan(&self) -> bool {
                self.is_nan()
            }
            fn finite(&self) -> bool {
                self.is_finite()
            }
        }
    )*};
}
value_via!(f32, f64, bf16, f16);

impl Value for KahanBf16 {
    fn nan(&self) -> bool {
        self.to_f32().is_nan()
    }
    fn finite(&self) -> bool {
        self.to_f32().is_finite()
    }
}

fn products_may_differ(be: Backend) -> bool {
    be != Backend::Scalar
}

/// Muon for one or two steps, called directly (`Muon::step_matrix` with a workspace of exactly
/// `workspace_len`) or through `MuonWithFallback` (a matrix with a workspace up to 3 longer, or a
/// vector stepped by the fallback rule, Adam/AdamW, with any workspace): shapes `0..=24` each
/// way or a huge dimension, every hyper-parameter from the input (`ns_steps` `0..=6` mostly, and
/// 99, 100, 1000, `u32::MAX`), every length possibly off.
///
/// What is asserted follows Muon's documentation ("Numerics"): the elementwise parts are
/// bit-identical on every backend, but the Newton–Schulz matrix products run on the `MatMul`
/// micro-kernel, fused on FMA backends, so the parameters are not bit-identical across backends
/// when `ns_steps > 0`; the crate states an error bound per product, carried through the
/// iteration by an analysis (`kernels/tests/suite/muon.rs`) that needs the singular values, and
/// no tolerance that holds for arbitrary inputs. So, on every backend:
/// - the same `Ok`/`Err` as scalar; on `Err` every buffer unchanged (the workspace included);
/// - the momentum buffer bit-identical to scalar (elementwise);
/// - the parameters bit-identical to scalar when no product runs (`ns_steps = 0`, or the vector
///   route, which is the fallback `Rule`);
/// - on SIMD backends with `ns_steps > 0` (see [`products_may_differ`]): the parameters
///   bit-reproducible (two runs on the
///   backend agree, as documented), and, as documented, NaN or ±Inf in a gradient or the buffer
///   makes every parameter NaN (asserted for `ns_steps >= 1` only: with no iteration an Inf
///   element only turns itself into NaN, the others divide to 0);
/// - the workspace's contents after an accepted matrix step carry no meaning and are not
///   compared, but a vector step leaves it untouched, and a longer one is used only up to
///   `workspace_len`.
///
/// The parameters are stored as `P` and the buffers as `S` (`step_matrix_with`,
/// `MuonWithFallback::step_with`), under the input's rounding when either is narrower than `T`.
fn check_muon<T: Float, P: Buf + Value + Storage<T>, S: Buf + Value + Storage<T>>(inp: &mut Input) {
    let rnd = if P::FORMAT == T::FORMAT && S::FORMAT == T::FORMAT {
        Rnd(None)
    } else {
        Rnd::from_input(inp)
    };
    let h = Hyper::<T>::from_input(inp);
    let ns_coefficients = match inp.u8() % 4 {
        0 => (T::from_input(inp), T::from_input(inp), T::from_input(inp)),
        1 => (
            T::from_f64_round(1.875),
            T::from_f64_round(-1.25),
            T::from_f64_round(0.375),
        ),
        _ => Muon::<T>::new(h.lr).ns_coefficients,
    };
    let s = inp.u8();
    let ns_steps = if s < 240 {
        s as u32 % 7
    } else {
        [99, 100, 1000, u32::MAX][s as usize % 4]
    };
    let rule = Muon {
        lr: h.lr,
        weight_decay: h.wd,
        momentum: h.beta1,
        nesterov: h.nesterov,
        ns_coefficients,
        ns_steps,
        eps: h.eps,
        adjust_lr: if inp.u8().is_multiple_of(2) {
            AdjustLr::Original
        } else {
            AdjustLr::MatchRmsAdamw
        },
    };
    let both = MuonWithFallback::new(rule, h.adam());
    // 0, 1: `step_matrix`; 2: the wrapper on a matrix; 3: the wrapper on a vector.
    let route = inp.u8() % 4;
    let (rows, cols) = dims(inp);
    let n = inp.u16() as usize % 300;
    let shape = if route == 3 {
        ParamShape::Vector(n)
    } else {
        ParamShape::Matrix { rows, cols }
    };
    let need = Muon::<T>::workspace_len(rows, cols);
    let extra = inp.u8() as usize % 4;
    let mut lens = match shape {
        ParamShape::Vector(n) => [n, n, both.state_len(shape), extra * 3],
        ParamShape::Matrix { .. } => {
            let rc = small(rows.saturating_mul(cols));
            let work = small(need) + if route == 2 { extra } else { 0 };
            [rc, rc, rc, work]
        }
    };
    perturb(inp, &mut lens);
    let name = [
        "muon",
        "muon",
        "muon_fallback_matrix",
        "muon_fallback_vector",
    ][route as usize];
    let steps = 1 + inp.u8() as u64 % 2;
    let p0: Vec<P> = Buf::gen(inp, lens[0], 0);
    let grads: Vec<T> = fill(inp, lens[1], 1);
    let b0: Vec<S> = Buf::gen(inp, lens[2], 2);
    let w0: Vec<T> = fill(inp, lens[3], 3);
    let run = |e: &Exec| {
        let e = &rnd.on(*e);
        let (mut p, mut b, mut w) = (p0.clone(), b0.clone(), w0.clone());
        let mut rs = Vec::new();
        for k in 0..steps {
            let before = (p.clone(), b.clone(), w.clone());
            let r = match route {
                0 | 1 => rule.step_matrix_with(e, rows, cols, &mut p, &grads, &mut b, &mut w),
                _ => both.step_with(
                    e,
                    h.step.wrapping_add(k),
                    shape,
                    &mut p,
                    &grads,
                    &mut b,
                    &mut w,
                ),
            };
            if r.is_err() {
                expect_unchanged(name, e, &r, "params", &p, &before.0);
                expect_unchanged(name, e, &r, "momentum/state", &b, &before.1);
                expect_unchanged(name, e, &r, "workspace", &w, &before.2);
            } else if route == 3 {
                expect_unchanged(name, e, &r, "workspace (vector step)", &w, &before.2);
            } else {
                let used = need.min(w.len());
                expect_unchanged(
                    name,
                    e,
                    &r,
                    "workspace past its length",
                    &w[used..],
                    &before.2[used..],
                );
            }
            rs.push(r);
        }
        (rs, p, b)
    };
    let (want_r, want_p, want_b) = run(&Exec::scalar());
    // The documented NaN rule, which holds on every backend.
    let poisoned = grads.iter().any(|x| !x.is_finite()) || b0.iter().any(|x| !x.finite());
    let nan_rule = |be: Backend, r: &[Result<(), Error>], p: &[P]| {
        if route != 3 && ns_steps >= 1 && poisoned && r[0].is_ok() {
            assert!(
                p.iter().all(|x| x.nan()),
                "{name} on {be}: a non-finite gradient or buffer must make every parameter NaN"
            );
        }
    };
    nan_rule(Backend::Scalar, &want_r, &want_p);
    for be in Backend::available() {
        let e = exec_on(be);
        let (r, p, b) = run(&e);
        assert_eq!(r, want_r, "{name} on {be}: results differ from scalar");
        expect_same(name, be, "momentum buffer / state", &b, &want_b);
        if route == 3 || ns_steps == 0 || !products_may_differ(be) {
            expect_same(name, be, "params", &p, &want_p);
        } else {
            let (_, again, _) = run(&e);
            assert!(
                P::same(&p, &again),
                "{name} on {be}: params not bit-reproducible on one backend"
            );
            nan_rule(be, &r, &p);
        }
    }
}

// --------------------------------------------------------------- Kahan-compensated bf16

/// A `KahanBf16` op: buffers `[pairs, bf16, f32]`, written or read as the op says.
type KOp =
    fn(&Exec, &Hyper<f32>, &mut Vec<KahanBf16>, &mut Vec<bf16>, &mut Vec<f32>) -> Result<(), Error>;

/// `(name, buffer lengths in units of n: pairs, bf16, f32, op)`: rules with `KahanBf16`
/// parameters, bf16 state and `f32` gradients (the combination the storage documents),
/// averages stored as pairs, and the conversions to and from pairs.
fn k_ops() -> Vec<(&'static str, [usize; 3], KOp)> {
    vec![
        ("kahan_sgd", [1, 1, 1], |e, h, p, s, g| {
            h.sgd().step_with(e, h.step, p, g, s)
        }),
        ("kahan_ema", [1, 0, 1], |e, h, a, _, p| {
            ema_with(e, a, p, h.beta1)
        }),
        ("kahan_from_f32", [1, 0, 1], |e, _, dst, _, src| {
            reduced::convert_with(e, src, dst)
        }),
        ("kahan_to_f32", [1, 0, 1], |e, _, src, _, dst| {
            reduced::convert_with(e, src, dst)
        }),
    ]
}

/// `KahanBf16` buffers, nearest or stochastic rounding (pairs never draw; the bf16 state does).
/// Besides every backend against scalar: a conversion to pairs equals `KahanBf16::from_f32` (the
/// documented scalar reference of the split) under either rounding, and a conversion from pairs
/// equals `KahanBf16::to_f32` (`hi + lo`).
fn check_kahan(inp: &mut Input) {
    let ops = k_ops();
    let (name, units, op) = ops[inp.u8() as usize % ops.len()];
    let h = Hyper::<f32>::from_input(inp);
    let rnd = Rnd::from_input(inp);
    let n = inp.u16() as usize % 300;
    let mut lens = units.map(|u| u * n);
    perturb(inp, &mut lens);
    let k0: Vec<KahanBf16> = Buf::gen(inp, lens[0], 0);
    let b0: Vec<bf16> = Buf::gen(inp, lens[1], 1);
    let f0: Vec<f32> = Buf::gen(inp, lens[2], 2);
    let run = |exec: Exec| {
        let e = rnd.on(exec);
        let (mut k, mut b, mut f) = (k0.clone(), b0.clone(), f0.clone());
        let r = op(&e, &h, &mut k, &mut b, &mut f);
        if r.is_err() {
            expect_unchanged(name, &e, &r, "pairs", &k, &k0);
            expect_unchanged(name, &e, &r, "bf16", &b, &b0);
            expect_unchanged(name, &e, &r, "f32", &f, &f0);
        } else if name == "kahan_from_f32" {
            let split: Vec<KahanBf16> = f0.iter().map(|&x| KahanBf16::from_f32(x)).collect();
            assert!(
                KahanBf16::same(&k, &split),
                "{name} on {}: differs from KahanBf16::from_f32",
                e.backend()
            );
        } else if name == "kahan_to_f32" {
            let wide: Vec<f32> = k0.iter().map(|k| k.to_f32()).collect();
            assert!(
                f32::same(&f, &wide),
                "{name} on {}: differs from KahanBf16::to_f32",
                e.backend()
            );
        }
        (r, k, b, f)
    };
    let (want_r, want_k, want_b, want_f) = run(Exec::scalar());
    for be in Backend::available() {
        let (r, k, b, f) = run(exec_on(be));
        assert_eq!(r, want_r, "{name} on {be}: result differs from scalar");
        expect_same(name, be, "pairs", &k, &want_k);
        expect_same(name, be, "bf16", &b, &want_b);
        expect_same(name, be, "f32", &f, &want_f);
    }
}

// Three storage pairs, not every one: each pair instantiates every rule on every backend under
// the sanitizer, which is what the build time pays for. Together they load and store both 16-bit
// formats in each role (parameters/state and gradients) and mix them with f32; the proptest
// suite (`kernels/tests/suite/reduced_precision.rs`) sweeps more pairs. The same budget keeps the
// newer rules to few instantiations: Schedule-Free on one narrow combination (every narrow format,
// stochastic draws in parameters and state; its specialised `f32`/`f64` loops are left to the
// test suite), LAMB on `f32`/`f64` only (its 16-bit storage is left to the test suite), and
// `KahanBf16` through SGD, EMA and the conversions.
// The first byte picks the family; the corpus files are named `<byte>-<op>-<variant>`; the older
// files `5-*` to `7-*` were written for an earlier layout and now select other families.
fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    match inp.u8() % 12 {
        0 => check_f::<f32>(&mut inp),
        1 => check_f::<f64>(&mut inp),
        2 => check_r::<bf16, f32>(&mut inp),
        3 => check_r::<f16, bf16>(&mut inp),
        4 => check_r::<f32, f16>(&mut inp),
        5 => check_sf::<f32, bf16, KahanBf16, f16>(&mut inp),
        6 => match inp.u8() % 4 {
            0 => check_adam8::<bf16>(&mut inp),
            1 => check_adam8::<KahanBf16>(&mut inp),
            _ => check_adam8::<f32>(&mut inp),
        },
        7 => match inp.u8() % 4 {
            0 => check_adafactor::<f32, bf16, bf16>(&mut inp),
            1 => check_adafactor::<f32, KahanBf16, f16>(&mut inp),
            _ => check_adafactor::<f32, f32, f32>(&mut inp),
        },
        8 => check_adafactor::<f64, f64, f64>(&mut inp),
        9 => match inp.u8() % 4 {
            0 => check_muon::<f32, bf16, bf16>(&mut inp),
            1 => check_muon::<f32, KahanBf16, f16>(&mut inp),
            _ => check_muon::<f32, f32, f32>(&mut inp),
        },
        10 => check_muon::<f64, f64, f64>(&mut inp),
        _ => check_kahan(&mut inp),
    }
});
