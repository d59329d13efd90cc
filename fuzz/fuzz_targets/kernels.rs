//! Fuzzes the public kernel API: every update rule and averaging function on `f32` and `f64`, and
//! their bf16/f16 storage variants (`*_reduced_on`) and `reduced::convert_on`, with the lengths,
//! hyper-parameters, step counts and element bits taken from the input (NaN, ±Inf, subnormals,
//! mismatched lengths, step 0 all arise).
//!
//! For every case, on every available backend, against `Backend::Scalar`:
//! - no panic, no out-of-bounds access (`cargo fuzz` builds with AddressSanitizer);
//! - the same `Ok`/`Err` (the same error) as the scalar reference;
//! - on `Err`, every buffer is unchanged, bit for bit;
//! - on `Ok`, every buffer is bit-identical to the scalar result (any NaN matches any NaN), with
//!   nearest and with (counter-based) stochastic rounding.
//!
//! The operations are tables (`F_OPS`, `R_OPS`): one line per public entry point, written against
//! the current API, so that a change of the API changes one line here.
#![no_main]

use descent_kernels::reduced::{self, Rounding, StochasticKey, Storage};
use descent_kernels::{
    ema_on, replica_mean_on, running_mean_on, Adam, Backend, Element, Error, Gd, Lion, Sgd,
    SignDescent, Signum, WeightDecay,
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

/// A float type under test, with its bits.
trait Float: Element {
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
}

/// Buffers: `b[0]` params (or the average), `b[1]` grads (or the params averaged in), the rest
/// state. Replica means use every buffer as a replica.
type FOp<T> = fn(Backend, &Hyper<T>, &mut [Vec<T>]) -> Result<(), Error>;

/// `(name, buffer count, op)`: one line per public entry point on `f32`/`f64`.
fn f_ops<T: Float>() -> Vec<(&'static str, usize, FOp<T>)> {
    vec![
        ("gd", 2, |be, h, b| match b {
            [p, g, ..] => h.gd().step_on(be, p, g),
            _ => unreachable!(),
        }),
        ("sgd", 3, |be, h, b| match b {
            [p, g, m, ..] => h.sgd().step_on(be, h.step, p, g, m),
            _ => unreachable!(),
        }),
        ("adam", 4, |be, h, b| match b {
            [p, g, m, v, ..] => h.adam().step_on(be, h.step, p, g, m, v),
            _ => unreachable!(),
        }),
        ("amsgrad", 5, |be, h, b| match b {
            [p, g, m, v, vm, ..] => h.adam().step_amsgrad_on(be, h.step, p, g, m, v, vm),
            _ => unreachable!(),
        }),
        ("sign", 2, |be, h, b| match b {
            [p, g, ..] => h.sign().step_on(be, p, g),
            _ => unreachable!(),
        }),
        ("signum", 3, |be, h, b| match b {
            [p, g, m, ..] => h.signum().step_on(be, p, g, m),
            _ => unreachable!(),
        }),
        ("lion", 3, |be, h, b| match b {
            [p, g, m, ..] => h.lion().step_on(be, p, g, m),
            _ => unreachable!(),
        }),
        ("running_mean", 2, |be, h, b| match b {
            [a, p, ..] => running_mean_on(be, a, p, h.step),
            _ => unreachable!(),
        }),
        ("ema", 2, |be, h, b| match b {
            [a, p, ..] => ema_on(be, a, p, h.beta1),
            _ => unreachable!(),
        }),
        ("replica_mean", 0, |be, _, b| {
            let mut rs: Vec<&mut [T]> = b.iter_mut().map(|v| v.as_mut_slice()).collect();
            replica_mean_on(be, &mut rs)
        }),
    ]
}

/// A bf16/f16/f32 storage op: the rule's hyper-parameters are `f32`; `S` is the storage of the
/// written buffers, `G` of the gradients (or the averaged params).
type ROp<S, G> = fn(Backend, Rounding, &Hyper<f32>, &mut [Vec<S>], &[G]) -> Result<(), Error>;

fn r_ops<S: Storage, G: Storage>() -> Vec<(&'static str, usize, ROp<S, G>)> {
    vec![
        ("gd", 1, |be, r, h, b, g| match b {
            [p, ..] => h.gd().step_reduced_on(be, r, p, g),
            _ => unreachable!(),
        }),
        ("sgd", 2, |be, r, h, b, g| match b {
            [p, m, ..] => h.sgd().step_reduced_on(be, r, h.step, p, g, m),
            _ => unreachable!(),
        }),
        ("adam", 3, |be, r, h, b, g| match b {
            [p, m, v, ..] => h.adam().step_reduced_on(be, r, h.step, p, g, m, v),
            _ => unreachable!(),
        }),
        ("amsgrad", 4, |be, r, h, b, g| match b {
            [p, m, v, vm, ..] => h
                .adam()
                .step_amsgrad_reduced_on(be, r, h.step, p, g, m, v, vm),
            _ => unreachable!(),
        }),
        ("sign", 1, |be, r, h, b, g| match b {
            [p, ..] => h.sign().step_reduced_on(be, r, p, g),
            _ => unreachable!(),
        }),
        ("signum", 2, |be, r, h, b, g| match b {
            [p, m, ..] => h.signum().step_reduced_on(be, r, p, g, m),
            _ => unreachable!(),
        }),
        ("lion", 2, |be, r, h, b, g| match b {
            [p, m, ..] => h.lion().step_reduced_on(be, r, p, g, m),
            _ => unreachable!(),
        }),
        ("running_mean", 1, |be, r, h, b, p| match b {
            [a, ..] => reduced::running_mean_reduced_on(be, r, a, p, h.step),
            _ => unreachable!(),
        }),
        ("ema", 1, |be, r, h, b, p| match b {
            [a, ..] => reduced::ema_reduced_on(be, r, a, p, h.beta1),
            _ => unreachable!(),
        }),
        ("replica_mean", 0, |be, r, _, b, _| {
            let mut rs: Vec<&mut [S]> = b.iter_mut().map(|v| v.as_mut_slice()).collect();
            reduced::replica_mean_reduced_on(be, r, &mut rs)
        }),
        ("convert", 1, |be, r, _, b, src| match b {
            [dst, ..] => reduced::convert_on(be, r, src, dst),
            _ => unreachable!(),
        }),
    ]
}

/// Buffer lengths: all `n`, or (one time in four) one buffer off by `1..=4` in either direction.
fn lengths(inp: &mut Input, count: usize) -> (usize, Vec<usize>) {
    let n = inp.u16() as usize % 300;
    let mut lens = vec![n; count];
    let sel = inp.u8();
    if sel % 4 == 0 && count > 0 {
        let i = (sel as usize / 4) % count;
        let d = 1 + (inp.u8() as usize % 4);
        lens[i] = if inp.u8() % 2 == 0 {
            n + d
        } else {
            n.saturating_sub(d)
        };
    }
    (n, lens)
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
    let (name, count, op) = ops[inp.u8() as usize % ops.len()];
    let count = if count == 0 {
        inp.u8() as usize % 5
    } else {
        count
    };
    let h = Hyper::<T>::from_input(inp);
    let (_, lens) = lengths(inp, count);
    let bufs: Vec<Vec<T>> = lens
        .iter()
        .enumerate()
        .map(|(k, &l)| fill(inp, l, k))
        .collect();
    let mut want = bufs.clone();
    let want_r = op(Backend::Scalar, &h, &mut want);
    for be in Backend::available() {
        let mut got = bufs.clone();
        let r = op(be, &h, &mut got);
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
        reduced::convert_on(Backend::Scalar, Rounding::NearestEven, &[x], &mut out[..])
            .expect("one element");
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
    let (name, count, op) = ops[inp.u8() as usize % ops.len()];
    let count = if count == 0 {
        inp.u8() as usize % 5
    } else {
        count
    };
    let h = Hyper::<f32>::from_input(inp);
    let stochastic = inp.u8() % 2 == 1;
    let seed = inp.u64();
    // One more length for the read-only buffer (grads, the params averaged in, or the source).
    let (_, lens) = lengths(inp, count + 1);
    let ro: Vec<G> = fill_stored(inp, lens[count], count);
    let bufs: Vec<Vec<S>> = lens[..count]
        .iter()
        .enumerate()
        .map(|(k, &l)| fill_stored(inp, l, k))
        .collect();
    let run = |be: Backend| {
        let mut b = bufs.clone();
        // Counter-based stochastic rounding: the key is the whole random state (nothing is
        // consumed), so equal bits across backends follow from equal results.
        let r = if stochastic {
            let key = StochasticKey::new(seed).with_counter(seed >> 32).at_offset(seed & 0xFF);
            op(be, Rounding::Stochastic(key), &h, &mut b, &ro)
        } else {
            op(be, Rounding::NearestEven, &h, &mut b, &ro)
        };
        (r, b)
    };
    let (want_r, want) = run(Backend::Scalar);
    for be in Backend::available() {
        let (r, got) = run(be);
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

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    match inp.u8() % 8 {
        0 => check_f::<f32>(&mut inp),
        1 => check_f::<f64>(&mut inp),
        2 => check_r::<bf16, bf16>(&mut inp),
        3 => check_r::<bf16, f32>(&mut inp),
        4 => check_r::<f16, f16>(&mut inp),
        5 => check_r::<f16, f32>(&mut inp),
        6 => check_r::<f32, bf16>(&mut inp),
        _ => check_r::<bf16, f16>(&mut inp),
    }
});
