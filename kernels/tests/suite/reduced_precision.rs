//! Reduced precision (issue 6, kernel side): bf16/f16 conversions against the `half` crate,
//! stochastic rounding against its definition (exhaustively over the 16 random bits) and
//! statistically (unbiasedness within 5σ binomial bounds), every 16-bit update-rule variant on
//! every backend against "the f32 rule, then the same rounding" (all lengths 0..=257, offsets
//! 0..8, guard elements, special values), Schedule-Free's views over 16-bit buffers the same way,
//! gradient quantization, and rejected calls.

use crate::common;

use common::*;
use descent_kernels::random::{seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::reduced::quantize::{perturb_bounded, quantize_with, Perturbation};
use descent_kernels::reduced::scalar::{
    bf16_nearest, bf16_stochastic, f16_nearest, f16_stochastic, widen_bf16, widen_f16,
};
use descent_kernels::reduced::{convert_with, Format};
use descent_kernels::StochasticKey;
use descent_kernels::{
    ema, ema_with, replica_mean_with, running_mean, running_mean_with, Adam, Backend, Error, Exec,
    Gd, Lion, Rounding, Rule, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd,
    ScheduleFreeState, Sgd, SignDescent, Signum, Storage, TrainView, WeightDecay,
};
use half::{bf16, f16};
use rand_core::Rng;

// ---------------------------------------------------------------------------------------------
// Test-side storage helpers.

/// A buffer in one of the three storage formats.
#[derive(Clone, Debug)]
enum Buf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl Buf {
    /// `values` stored in `fmt`, narrowed by `half`'s round-to-nearest-even.
    fn new(fmt: Format, values: &[f32]) -> Buf {
        match fmt {
            Format::F32 => Buf::F32(values.to_vec()),
            Format::Bf16 => Buf::Bf16(values.iter().map(|&x| bf16::from_f32(x)).collect()),
            Format::F16 => Buf::F16(values.iter().map(|&x| f16::from_f32(x)).collect()),
            Format::F64 => unreachable!("the 16-bit sweeps compute in f32"),
            _ => unreachable!("compensated pairs are tested in tests/suite/kahan.rs"),
        }
    }
    fn fmt(&self) -> Format {
        match self {
            Buf::F32(_) => Format::F32,
            Buf::Bf16(_) => Format::Bf16,
            Buf::F16(_) => Format::F16,
        }
    }
    fn widen(&self) -> Vec<f32> {
        match self {
            Buf::F32(v) => v.clone(),
            Buf::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Buf::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }
    /// Stores `x` at `i`: RNE by `half` (`r = None`) or stochastically with `r`.
    fn set(&mut self, i: usize, x: f32, r: Option<u16>) {
        match self {
            Buf::F32(v) => v[i] = x,
            Buf::Bf16(v) => v[i] = r.map_or_else(|| bf16::from_f32(x), |r| bf16_stochastic(x, r)),
            Buf::F16(v) => v[i] = r.map_or_else(|| f16::from_f32(x), |r| f16_stochastic(x, r)),
        }
    }
    /// (is NaN, bits) of element `i`.
    fn at(&self, i: usize) -> (bool, u32) {
        match self {
            Buf::F32(v) => (v[i].is_nan(), v[i].to_bits()),
            Buf::Bf16(v) => (v[i].is_nan(), v[i].to_bits() as u32),
            Buf::F16(v) => (v[i].is_nan(), v[i].to_bits() as u32),
        }
    }
    fn len(&self) -> usize {
        match self {
            Buf::F32(v) => v.len(),
            Buf::Bf16(v) => v.len(),
            Buf::F16(v) => v.len(),
        }
    }
}

#[track_caller]
fn assert_same_buf(what: &str, got: &Buf, want: &Buf) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for i in 0..got.len() {
        let (gn, gb) = got.at(i);
        let (wn, wb) = want.at(i);
        assert!(
            (gn && wn) || gb == wb,
            "{what}: element {i} is {gb:#x}, reference {wb:#x}"
        );
    }
}

/// A storage type the typed kernel calls can borrow out of a [`Buf`].
/// Runs `f` on one flat state slice holding `bufs` one after the other (the rules' state layout)
/// and copies the results back into `bufs`.
fn packed<M: Copy>(bufs: &mut [&mut [M]], f: impl FnOnce(&mut [M])) {
    let mut flat: Vec<M> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
    f(&mut flat);
    let mut i = 0;
    for b in bufs.iter_mut() {
        let n = b.len();
        b.copy_from_slice(&flat[i..i + n]);
        i += n;
    }
}

/// The context of backend `b` with rounding `r`.
fn ex(b: Backend, r: Rounding) -> Exec {
    Exec::on(b).unwrap().with_rounding(r)
}

trait TSt: Storage {
    const FMT: Format;
    fn sl(b: &mut Buf, off: usize, len: usize) -> &mut [Self];
    fn sl_ro(b: &Buf, off: usize, len: usize) -> &[Self];
}

macro_rules! tst {
    ($t:ty, $v:ident, $f:ident) => {
        impl TSt for $t {
            const FMT: Format = Format::$f;
            fn sl(b: &mut Buf, off: usize, len: usize) -> &mut [Self] {
                match b {
                    Buf::$v(v) => &mut v[off..off + len],
                    _ => panic!("format mismatch"),
                }
            }
            fn sl_ro(b: &Buf, off: usize, len: usize) -> &[Self] {
                match b {
                    Buf::$v(v) => &v[off..off + len],
                    _ => panic!("format mismatch"),
                }
            }
        }
    };
}
tst!(f32, F32, F32);
tst!(bf16, Bf16, Bf16);
tst!(f16, F16, F16);

/// The documented counter-based bits, transcribed here from the `storage` module documentation
/// (independently of the crate's own implementation): `K` rounded buffers, `n` elements →
/// element `i` of rounded buffer `k` uses half of the word of (seed, stream, counter, pair k / 2,
/// offset + i): the high half for even `k`, the low half for odd `k`.
fn doc_bits(key: StochasticKey, n: usize, k_bufs: usize) -> Vec<Vec<u16>> {
    fn splitmix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn lowbias32(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x7feb352d);
        x ^= x >> 15;
        x = x.wrapping_mul(0x846ca68b);
        x ^ (x >> 16)
    }
    (0..k_bufs)
        .map(|k| {
            let mut h = splitmix(key.seed ^ 0x6a09e667f3bcc908);
            h = splitmix(h ^ key.stream);
            h = splitmix(h ^ key.counter);
            h = splitmix(h ^ (k / 2) as u64);
            let (lo, hi) = (h as u32, (h >> 32) as u32);
            (0..n)
                .map(|i| {
                    let idx = key.offset + i as u64;
                    let word = lowbias32(idx as u32 ^ lo ^ lowbias32(hi ^ (idx >> 32) as u32));
                    if k % 2 == 0 {
                        (word >> 16) as u16
                    } else {
                        word as u16
                    }
                })
                .collect()
        })
        .collect()
}

/// The `f32` rule on the widened written and read sub-slices.
type RefRule<'a> = dyn Fn(&mut [&mut [f32]], &[&[f32]]) + 'a;
/// The 16-bit variant on a backend, with a rounding, on the buffers' sub-slices `(offset, len)`.
type ReducedRule<'a> = dyn Fn(Backend, Rounding, &mut [Buf], &[Buf], usize, usize) + 'a;

/// Runs the 16-bit variant `reduced` on every backend for every length and offset, in both
/// rounding modes, against: widen the inputs, run the `f32` rule `reference` on the scalar
/// backend, round each written 16-bit buffer (RNE by `half`, stochastic with the documented
/// counter-based bits). Written buffers are compared bit for bit, guards included.
fn sweep(
    name: &str,
    seed: u64,
    rw_fmts: &[Format],
    ro_fmts: &[Format],
    reference: &RefRule<'_>,
    reduced: &ReducedRule<'_>,
) {
    let mut rng = seeded(seed);
    let k_rounded = rw_fmts.iter().filter(|f| **f != Format::F32).count();
    for len in lengths() {
        for off in OFFSETS {
            let total = off + len + GUARD;
            let rw0: Vec<Buf> = rw_fmts
                .iter()
                .map(|&f| Buf::new(f, &mixed::<f32>(&mut rng, total, 4.0, 0.04)))
                .collect();
            let ro: Vec<Buf> = ro_fmts
                .iter()
                .map(|&f| Buf::new(f, &mixed::<f32>(&mut rng, total, 4.0, 0.04)))
                .collect();
            // The f32 rule on the widened sub-slices.
            let mut wide: Vec<Vec<f32>> = rw0
                .iter()
                .map(|b| b.widen()[off..off + len].to_vec())
                .collect();
            let ro_wide: Vec<Vec<f32>> = ro
                .iter()
                .map(|b| b.widen()[off..off + len].to_vec())
                .collect();
            {
                let mut w: Vec<&mut [f32]> = wide.iter_mut().map(|v| v.as_mut_slice()).collect();
                let r: Vec<&[f32]> = ro_wide.iter().map(|v| v.as_slice()).collect();
                reference(&mut w, &r);
            }
            for stochastic in [false, true] {
                let key = StochasticKey::new(rng.next_u64())
                    .with_stream(off as u64)
                    .with_counter(len as u64);
                let bits = doc_bits(key, len, k_rounded);
                let mut want = rw0.clone();
                let mut kk = 0;
                for (k, buf) in want.iter_mut().enumerate() {
                    let rounded = buf.fmt() != Format::F32;
                    for i in 0..len {
                        let r = (stochastic && rounded).then(|| bits[kk][i]);
                        buf.set(off + i, wide[k][i], r);
                    }
                    kk += rounded as usize;
                }
                for b in backends() {
                    let mut got = rw0.clone();
                    let rounding = if stochastic {
                        Rounding::Stochastic(key)
                    } else {
                        Rounding::NearestEven
                    };
                    reduced(b, rounding, &mut got, &ro, off, len);
                    for k in 0..got.len() {
                        assert_same_buf(
                            &format!(
                                "{name} on {b}, stochastic {stochastic}, len {len}, offset {off}, buffer {k} ({:?})",
                                got[k].fmt()
                            ),
                            &got[k],
                            &want[k],
                        );
                    }
                }
            }
        }
    }
}

fn wd(kind: u64, lambda: f32) -> WeightDecay<f32> {
    match kind % 3 {
        0 => WeightDecay::None,
        1 => WeightDecay::L2(lambda),
        _ => WeightDecay::Decoupled(lambda),
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions.

/// Random f32 bit patterns plus specials and values at every f16/bf16 rounding boundary.
fn conversion_inputs() -> Vec<f32> {
    let mut rng = seeded(61);
    let mut v: Vec<f32> = (0..200_000)
        .map(|_| f32::from_bits(rng.next_u32()))
        .collect();
    v.extend(specials::<f32>());
    v.extend([
        f32::MAX,
        -f32::MAX,
        65504.0,
        65519.99,
        65520.0,
        65536.0,
        bf16::MAX.to_f32(),
        f32::from_bits(bf16::MAX.to_bits() as u32 * 65536 + 0x7FFF),
        f32::from_bits(bf16::MAX.to_bits() as u32 * 65536 + 0x8000),
        f32::from_bits(0x7F80_0001), // signalling NaN
        f32::from_bits(0xFFC1_2345),
        2.0f32.powi(-24),
        2.0f32.powi(-25),
        2.0f32.powi(-25) * 1.000001,
        2.0f32.powi(-14),
        2.0f32.powi(-14) * (1.0 - 2.0f32.powi(-12)),
    ]);
    // For every f16 value: the midpoint to its successor and one f32 ulp either side.
    for h in 0..0x7C00u16 {
        let a = f16::from_bits(h).to_f32() as f64;
        let b = f16::from_bits(h + 1).to_f32() as f64;
        let mid = ((a + b) / 2.0) as f32;
        for x in [
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ] {
            v.push(x);
            v.push(-x);
        }
    }
    // For bf16: every tie pattern of the dropped bits, over a spread of high halves.
    for hi in (0..0x7F80u32).step_by(97) {
        for lo in [0x7FFFu32, 0x8000, 0x8001, 0x0001, 0xFFFF] {
            v.push(f32::from_bits((hi << 16) | lo));
        }
    }
    v
}

#[test]
fn nearest_even_matches_half_bit_for_bit() {
    for x in conversion_inputs() {
        let (a, b) = (bf16_nearest(x), bf16::from_f32(x));
        assert!(
            (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
            "bf16 {x:e} ({:#x}): {:#x} vs half {:#x}",
            x.to_bits(),
            a.to_bits(),
            b.to_bits()
        );
        let (a, b) = (f16_nearest(x), f16::from_f32(x));
        assert!(
            (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
            "f16 {x:e} ({:#x}): {:#x} vs half {:#x}",
            x.to_bits(),
            a.to_bits(),
            b.to_bits()
        );
        assert!(!x.is_nan() || (a.is_nan() && bf16_nearest(x).is_nan()));
    }
}

#[test]
fn widening_is_exact_for_every_16_bit_value() {
    for h in 0..=u16::MAX {
        let (a, b) = (widen_bf16(bf16::from_bits(h)), bf16::from_bits(h).to_f32());
        assert!(
            (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
            "bf16 {h:#x}"
        );
        let (a, b) = (widen_f16(f16::from_bits(h)), f16::from_bits(h).to_f32());
        assert!(
            (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits(),
            "f16 {h:#x}"
        );
    }
}

/// Converts through `convert_with` on backend `b` and compares with the scalar functions.
fn check_convert_on(b: Backend, xs: &[f32], seed: u64) {
    let key = StochasticKey::new(seed).with_counter(3);
    let bits = doc_bits(key, xs.len(), 1);
    for stochastic in [false, true] {
        let mut out = vec![bf16::ZERO; xs.len()];
        let r = if stochastic {
            Rounding::Stochastic(key)
        } else {
            Rounding::NearestEven
        };
        convert_with(&ex(b, r), xs, &mut out).unwrap();
        for (i, (&x, &y)) in xs.iter().zip(&out).enumerate() {
            let want = if stochastic {
                bf16_stochastic(x, bits[0][i])
            } else {
                bf16::from_f32(x)
            };
            assert!(
                (y.is_nan() && want.is_nan()) || y.to_bits() == want.to_bits(),
                "bf16 on {b}, stochastic {stochastic}: {x:e} -> {:#x}, want {:#x}",
                y.to_bits(),
                want.to_bits()
            );
        }
        let mut out = vec![f16::ZERO; xs.len()];
        let r = if stochastic {
            Rounding::Stochastic(key)
        } else {
            Rounding::NearestEven
        };
        convert_with(&ex(b, r), xs, &mut out).unwrap();
        for (i, (&x, &y)) in xs.iter().zip(&out).enumerate() {
            let want = if stochastic {
                f16_stochastic(x, bits[0][i])
            } else {
                f16::from_f32(x)
            };
            assert!(
                (y.is_nan() && want.is_nan()) || y.to_bits() == want.to_bits(),
                "f16 on {b}, stochastic {stochastic}: {x:e} ({:#x}) -> {:#x}, want {:#x}",
                x.to_bits(),
                y.to_bits(),
                want.to_bits()
            );
        }
        // Widening back.
        let mut wide = vec![0.0f32; xs.len()];
        convert_with(&ex(b, Rounding::NearestEven), &out, &mut wide).unwrap();
        for (h, w) in out.iter().zip(&wide) {
            assert!(
                (h.is_nan() && w.is_nan()) || h.to_f32().to_bits() == w.to_bits(),
                "widen f16 on {b}"
            );
        }
    }
}

#[test]
fn conversions_agree_on_every_backend() {
    let xs = conversion_inputs();
    for b in backends() {
        check_convert_on(b, &xs, 99);
        // Every tail and offset too.
        for len in 0..40 {
            check_convert_on(b, &xs[3..3 + len], len as u64);
        }
    }
    // Every 16-bit value widens exactly on every backend.
    let all_bf: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
    let all_h: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    for b in backends() {
        let mut w = vec![0.0f32; 65536];
        convert_with(&ex(b, Rounding::NearestEven), &all_bf, &mut w).unwrap();
        for (h, x) in all_bf.iter().zip(&w) {
            assert!((h.is_nan() && x.is_nan()) || h.to_f32().to_bits() == x.to_bits());
        }
        convert_with(&ex(b, Rounding::NearestEven), &all_h, &mut w).unwrap();
        for (h, x) in all_h.iter().zip(&w) {
            assert!((h.is_nan() && x.is_nan()) || h.to_f32().to_bits() == x.to_bits());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stochastic rounding: definition and statistics.

/// The two f16/bf16 neighbours of `x` (finite, as f64, toward zero first) and the exact
/// fractional distance of `|x|` between them, from `half` in f64.
fn neighbours(x: f32, fmt: Format) -> (f64, f64, f64) {
    let a = x.abs() as f64;
    type Conv = (fn(f64) -> u16, fn(u16) -> f64);
    let (to, from): Conv = match fmt {
        Format::Bf16 => (
            |v| bf16::from_f64(v).to_bits(),
            |h| bf16::from_bits(h).to_f64(),
        ),
        _ => (
            |v| f16::from_f64(v).to_bits(),
            |h| f16::from_bits(h).to_f64(),
        ),
    };
    let mut h = to(a);
    if from(h) > a {
        h -= 1;
    }
    let lo = from(h);
    let hi = if from(h + 1).is_infinite() {
        // Above the largest finite value: the next power of two.
        let max_exp = if fmt == Format::Bf16 { 128 } else { 16 };
        2f64.powi(max_exp)
    } else {
        from(h + 1)
    };
    (lo, hi, (a - lo) / (hi - lo))
}

/// Inputs for the stochastic-rounding tests: random values over many binades, subnormals of
/// both formats, values near overflow, exact representables, specials.
fn sr_inputs(fmt: Format, count: usize) -> Vec<f32> {
    let mut rng = seeded(17);
    let (lo_e, hi_e) = if fmt == Format::Bf16 {
        (-140, 127)
    } else {
        (-30, 15)
    };
    let mut v: Vec<f32> = (0..count)
        .map(|_| {
            let e = lo_e + (rng.next_u32() % (hi_e - lo_e + 1) as u32) as i32;
            let m = 1.0 + uniform01(&mut rng);
            let s = if rng.next_u32() & 1 == 0 { 1.0 } else { -1.0 };
            (s * m * 2f64.powi(e)) as f32
        })
        .filter(|x: &f32| x.is_finite())
        .collect();
    v.extend([
        0.0,
        -0.0,
        1.0,
        -3.0,
        1.0 + 2f32.powi(-20),
        65505.0,
        65530.0,
        65535.9,
        3.0e38,
    ]);
    // Beyond the f16 range everything is Inf: no neighbours to test between.
    v.retain(|x| fmt == Format::Bf16 || x.abs() < 65536.0);
    v
}

/// Exhaustively over the 16 random bits: the number of `r` that round up equals
/// `⌈2^16·frac⌉`, which is `2^16·frac` exactly for bf16 and for f16 with `|x| ≥ 2^-17`.
#[test]
fn stochastic_round_up_count_equals_fractional_distance() {
    for fmt in [Format::Bf16, Format::F16] {
        for x in sr_inputs(fmt, 3000) {
            let (lo, hi, frac) = neighbours(x, fmt);
            let mut ups = 0u32;
            for r in 0..=u16::MAX {
                let y = match fmt {
                    Format::Bf16 => bf16_stochastic(x, r).to_f64(),
                    _ => f16_stochastic(x, r).to_f64(),
                };
                let m = y.abs();
                let up_val = if hi >= 2f64.powi(if fmt == Format::Bf16 { 128 } else { 16 }) {
                    f64::INFINITY
                } else {
                    hi
                };
                assert!(
                    m == lo || m == up_val,
                    "{fmt:?} {x:e} r {r}: {y} not in {{{lo}, {hi}}}"
                );
                assert_eq!(
                    y.is_sign_negative(),
                    x.is_sign_negative(),
                    "{fmt:?} sign of {x:e}"
                );
                ups += (m == up_val && m != lo) as u32;
            }
            let want = (frac * 65536.0).ceil() as u32;
            assert_eq!(
                ups, want,
                "{fmt:?} {x:e}: round-ups over all r vs ⌈2^16·frac⌉ (frac {frac})"
            );
            if fmt == Format::Bf16 || x.abs() >= 2f32.powi(-17) {
                assert_eq!(
                    ups as f64,
                    frac * 65536.0,
                    "{fmt:?} {x:e}: P(up) is exactly frac"
                );
            }
        }
    }
    // Specials: NaN stays NaN, ±Inf stays ±Inf, for every r.
    for r in [0u16, 1, 0x7FFF, 0x8000, 0xFFFF] {
        for x in [f32::NAN, -f32::NAN, f32::from_bits(0x7F80_0001)] {
            assert!(bf16_stochastic(x, r).is_nan() && f16_stochastic(x, r).is_nan());
        }
        assert_eq!(bf16_stochastic(f32::INFINITY, r), bf16::INFINITY);
        assert_eq!(f16_stochastic(f32::NEG_INFINITY, r), f16::NEG_INFINITY);
    }
}

/// Over many seeded draws (one call, `N` copies of each value, so every copy uses its own 16
/// bits of the stream), the round-up frequency and the mean of the rounded value match the
/// fractional distance and `x` within 5σ of the binomial distribution (plus the 2^-16
/// resolution term for tiny f16 inputs). Prints the largest |z| observed.
#[test]
fn stochastic_rounding_is_unbiased() {
    const N: usize = 20_000;
    let mut worst: f64 = 0.0;
    for fmt in [Format::Bf16, Format::F16] {
        for (j, x) in sr_inputs(fmt, 150).into_iter().enumerate() {
            let (lo, hi, frac) = neighbours(x, fmt);
            let xs = vec![x; N];
            let key = StochasticKey::new(1000 + j as u64);
            let mut sum_abs = 0.0f64;
            let mut ups = 0usize;
            let b = Backend::active();
            match fmt {
                Format::Bf16 => {
                    let mut out = vec![bf16::ZERO; N];
                    convert_with(&ex(b, Rounding::Stochastic(key)), &xs, &mut out).unwrap();
                    for y in out {
                        let m = if y.is_infinite() {
                            hi
                        } else {
                            y.to_f64().abs()
                        };
                        ups += (m != lo) as usize;
                        sum_abs += m;
                    }
                }
                _ => {
                    let mut out = vec![f16::ZERO; N];
                    convert_with(&ex(b, Rounding::Stochastic(key)), &xs, &mut out).unwrap();
                    for y in out {
                        let m = if y.is_infinite() {
                            hi
                        } else {
                            y.to_f64().abs()
                        };
                        ups += (m != lo) as usize;
                        sum_abs += m;
                    }
                }
            }
            let p = frac;
            let sigma = (N as f64 * p * (1.0 - p)).sqrt();
            let resolution = N as f64 / 65536.0; // ⌈2^16·frac⌉ vs 2^16·frac
            let dev = (ups as f64 - N as f64 * p).abs();
            assert!(
                dev <= 5.0 * sigma + resolution + 1e-9,
                "{fmt:?} {x:e}: {ups} round-ups of {N}, expected {} ± 5·{sigma:.1}",
                N as f64 * p
            );
            // The mean of the rounded magnitude is lo + (hi − lo)·ups/N: the same bound in units.
            let mean = sum_abs / N as f64;
            let exact = (x as f64).abs();
            let mean_bound = (hi - lo) * (5.0 * sigma + resolution) / N as f64 + 1e-300;
            assert!(
                (mean - exact).abs() <= mean_bound * (1.0 + 1e-9),
                "{fmt:?} {x:e}: mean {mean:e} vs {exact:e}, bound {mean_bound:e}"
            );
            if sigma > 0.0 {
                worst = worst.max(dev / sigma);
            }
        }
    }
    println!(
        "stochastic rounding: largest |round-ups − N·frac| / σ = {worst:.2} (bound 5, N = {N})"
    );
}

#[test]
fn same_key_same_bits_and_counters_give_fresh_bits() {
    let mut rng = seeded(3);
    let xs = mixed::<f32>(&mut rng, 1001, 10.0, 0.05);
    let run = |b: Backend, counter: u64| {
        let key = StochasticKey::new(77).with_counter(counter);
        let mut a = vec![bf16::ZERO; 1001];
        let mut h = vec![f16::ZERO; 1001];
        convert_with(&ex(b, Rounding::Stochastic(key)), &xs, &mut a).unwrap();
        convert_with(&ex(b, Rounding::Stochastic(key)), &xs, &mut h).unwrap();
        (a, h)
    };
    let want = run(Backend::Scalar, 0);
    for b in backends() {
        let got = run(b, 0);
        for (x, y) in got.0.iter().zip(&want.0) {
            assert!(
                (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
                "{b}"
            );
        }
        for (x, y) in got.1.iter().zip(&want.1) {
            assert!(
                (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits(),
                "{b}"
            );
        }
        let again = run(b, 0).0;
        assert!(
            again
                .iter()
                .zip(&got.0)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{b}: rerun"
        );
    }
    // The next counter, another stream, another seed: different bits.
    let differs = |key: StochasticKey| {
        let mut a = vec![bf16::ZERO; 1001];
        convert_with(&ex(Backend::Scalar, Rounding::Stochastic(key)), &xs, &mut a).unwrap();
        a.iter()
            .zip(&want.0)
            .any(|(x, y)| x.to_bits() != y.to_bits())
    };
    assert!(differs(StochasticKey::new(77).with_counter(1)), "counter");
    assert!(differs(StochasticKey::new(77).with_stream(1)), "stream");
    assert!(differs(StochasticKey::new(78)), "seed");
}

/// Splitting a buffer into chunks (each call given its chunk's `offset`) gives the same bits as
/// one call over the whole buffer, on every backend, for a rule with three rounded buffers and
/// for a conversion; chunk boundaries at every position modulo every vector width.
#[test]
fn stochastic_bits_do_not_depend_on_chunking() {
    let mut rng = seeded(5);
    let n = 515;
    let p0: Vec<bf16> = mixed::<f32>(&mut rng, n, 2.0, 0.05)
        .iter()
        .map(|&x| bf16::from_f32(x))
        .collect();
    let g: Vec<f32> = mixed::<f32>(&mut rng, n, 1.0, 0.05);
    let m0: Vec<f16> = mixed::<f32>(&mut rng, n, 0.1, 0.05)
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    let v0: Vec<f16> = mixed::<f32>(&mut rng, n, 0.1, 0.05)
        .iter()
        .map(|&x| f16::from_f32(x.abs()))
        .collect();
    let adam = Adam::adamw(1e-2f32, 0.1);
    let key = StochasticKey::new(11).with_stream(2).with_counter(9);
    let (mut pw, mut mw, mut vw) = (p0.clone(), m0.clone(), v0.clone());
    packed(&mut [&mut mw[..], &mut vw[..]], |st| {
        adam.step_with(
            &ex(Backend::Scalar, Rounding::Stochastic(key)),
            4,
            &mut pw,
            &g,
            st,
        )
        .unwrap()
    });
    let mut cw = vec![bf16::ZERO; n];
    convert_with(&ex(Backend::Scalar, Rounding::Stochastic(key)), &g, &mut cw).unwrap();
    for b in backends() {
        for trial in 0..20 {
            // Random cut points (including empty chunks).
            let mut cuts: Vec<usize> = (0..1 + trial % 5)
                .map(|_| (rng.next_u64() % (n as u64 + 1)) as usize)
                .collect();
            cuts.push(0);
            cuts.push(n);
            cuts.sort();
            let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
            let mut c = vec![bf16::ZERO; n];
            for w in cuts.windows(2) {
                let (a, z) = (w[0], w[1]);
                let k = Rounding::Stochastic(key.at_offset(a as u64));
                packed(&mut [&mut m[a..z], &mut v[a..z]], |st| {
                    adam.step_with(&ex(b, k), 4, &mut p[a..z], &g[a..z], st)
                        .unwrap()
                });
                convert_with(&ex(b, k), &g[a..z], &mut c[a..z]).unwrap();
            }
            let same16 = |x: &[u16], y: &[u16]| x == y;
            let bits = |x: &[bf16]| x.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            let hbits = |x: &[f16]| x.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
            assert!(same16(&bits(&p), &bits(&pw)), "{b}: params, cuts {cuts:?}");
            assert!(same16(&hbits(&m), &hbits(&mw)), "{b}: m, cuts {cuts:?}");
            assert!(same16(&hbits(&v), &hbits(&vw)), "{b}: v, cuts {cuts:?}");
            assert!(same16(&bits(&c), &bits(&cw)), "{b}: convert, cuts {cuts:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every 16-bit rule variant on every backend = the f32 rule, then the same rounding.

use Format::{Bf16 as B, F16 as H, F32 as F};

/// Storage combinations swept for each rule: (params, grads, state).
const COMBOS: [(Format, Format, Format); 4] = [(B, B, B), (H, H, H), (H, F, B), (F, B, H)];

/// Calls `$body` with the types `P`, `G`, `M` named by a combination of [`COMBOS`].
macro_rules! with_types {
    ($combo:expr, |$P:ident, $G:ident, $M:ident| $body:block) => {{
        macro_rules! inner {
            ($p:ty, $g:ty, $m:ty) => {{
                type $P = $p;
                type $G = $g;
                type $M = $m;
                $body
            }};
        }
        match $combo {
            (B, B, B) => inner!(bf16, bf16, bf16),
            (H, H, H) => inner!(f16, f16, f16),
            (H, F, B) => inner!(f16, f32, bf16),
            (F, B, H) => inner!(f32, bf16, f16),
            _ => unreachable!(),
        }
    }};
}

#[test]
fn gd_and_sign_descent_reduced_match_f32_rule_then_rounding() {
    for (c, combo) in COMBOS.into_iter().enumerate() {
        let gd = Gd {
            lr: 0.05f32,
            weight_decay: wd(c as u64, 0.1),
        };
        let sd = SignDescent {
            lr: 0.01f32,
            weight_decay: wd(c as u64 + 1, 0.2),
        };
        with_types!(combo, |P, G, M| {
            let _ = core::marker::PhantomData::<M>;
            sweep(
                "gd",
                100 + c as u64,
                &[P::FMT],
                &[G::FMT],
                &|w, r| gd.step(1, w[0], r[0], &mut []).unwrap(),
                &|b, rd, w, r, off, len| {
                    gd.step_with(
                        &ex(b, rd),
                        1,
                        P::sl(&mut w[0], off, len),
                        G::sl_ro(&r[0], off, len),
                        &mut [] as &mut [M],
                    )
                    .unwrap()
                },
            );
            sweep(
                "sign descent",
                200 + c as u64,
                &[P::FMT],
                &[G::FMT],
                &|w, r| sd.step(1, w[0], r[0], &mut []).unwrap(),
                &|b, rd, w, r, off, len| {
                    sd.step_with(
                        &ex(b, rd),
                        1,
                        P::sl(&mut w[0], off, len),
                        G::sl_ro(&r[0], off, len),
                        &mut [] as &mut [M],
                    )
                    .unwrap()
                },
            );
        });
    }
}

#[test]
fn sgd_reduced_matches_f32_rule_then_rounding() {
    for (c, combo) in COMBOS.into_iter().enumerate() {
        for (step, nesterov) in [(1u64, false), (3, true), (5, false)] {
            let rule = Sgd {
                lr: 0.05f32,
                momentum: 0.9,
                dampening: if nesterov { 0.0 } else { 0.1 },
                nesterov,
                weight_decay: wd(c as u64 + step, 0.01),
            };
            with_types!(combo, |P, G, M| {
                sweep(
                    "sgd",
                    300 + step + c as u64,
                    &[P::FMT, M::FMT],
                    &[G::FMT],
                    &|w, r| {
                        let [p, b] = w else { unreachable!() };
                        rule.step_with(&Exec::scalar(), step, p, r[0], b).unwrap()
                    },
                    &|be, rd, w, r, off, len| {
                        let [p, m] = w else { unreachable!() };
                        rule.step_with(
                            &ex(be, rd),
                            step,
                            P::sl(p, off, len),
                            G::sl_ro(&r[0], off, len),
                            M::sl(m, off, len),
                        )
                        .unwrap()
                    },
                );
            });
        }
    }
}

#[test]
fn adam_reduced_matches_f32_rule_then_rounding() {
    for (c, combo) in COMBOS.into_iter().enumerate() {
        for (step, amsgrad) in [(1u64, false), (7, true), (1000, false)] {
            let rule = Adam {
                weight_decay: wd(c as u64 + step, 0.01),
                amsgrad,
                ..Adam::new(1e-2f32)
            };
            with_types!(combo, |P, G, M| {
                if amsgrad {
                    sweep(
                        "amsgrad",
                        400 + step + c as u64,
                        &[P::FMT, M::FMT, M::FMT, M::FMT],
                        &[G::FMT],
                        &|w, r| {
                            let [p, st @ ..] = w else { unreachable!() };
                            packed(st, |st| rule.step(step, p, r[0], st).unwrap())
                        },
                        &|be, rd, w, r, off, len| {
                            let [p, m, v, vm] = w else { unreachable!() };
                            let mut st =
                                [M::sl(m, off, len), M::sl(v, off, len), M::sl(vm, off, len)];
                            packed(&mut st, |st| {
                                rule.step_with(
                                    &ex(be, rd),
                                    step,
                                    P::sl(p, off, len),
                                    G::sl_ro(&r[0], off, len),
                                    st,
                                )
                                .unwrap()
                            })
                        },
                    );
                } else {
                    sweep(
                        "adam",
                        500 + step + c as u64,
                        &[P::FMT, M::FMT, M::FMT],
                        &[G::FMT],
                        &|w, r| {
                            let [p, st @ ..] = w else { unreachable!() };
                            packed(st, |st| rule.step(step, p, r[0], st).unwrap())
                        },
                        &|be, rd, w, r, off, len| {
                            let [p, m, v] = w else { unreachable!() };
                            let mut st = [M::sl(m, off, len), M::sl(v, off, len)];
                            packed(&mut st, |st| {
                                rule.step_with(
                                    &ex(be, rd),
                                    step,
                                    P::sl(p, off, len),
                                    G::sl_ro(&r[0], off, len),
                                    st,
                                )
                                .unwrap()
                            })
                        },
                    );
                }
            });
        }
    }
}

#[test]
fn signum_and_lion_reduced_match_f32_rule_then_rounding() {
    for (c, combo) in COMBOS.into_iter().enumerate() {
        let signum = Signum {
            lr: 0.01f32,
            beta: 0.9,
            weight_decay: wd(c as u64, 0.1),
        };
        let lion = Lion {
            weight_decay: wd(c as u64 + 2, 0.1),
            ..Lion::new(1e-3f32)
        };
        with_types!(combo, |P, G, M| {
            sweep(
                "signum",
                600 + c as u64,
                &[P::FMT, M::FMT],
                &[G::FMT],
                &|w, r| {
                    let [p, m] = w else { unreachable!() };
                    signum.step(1, p, r[0], m).unwrap()
                },
                &|be, rd, w, r, off, len| {
                    let [p, m] = w else { unreachable!() };
                    signum
                        .step_with(
                            &ex(be, rd),
                            1,
                            P::sl(p, off, len),
                            G::sl_ro(&r[0], off, len),
                            M::sl(m, off, len),
                        )
                        .unwrap()
                },
            );
            sweep(
                "lion",
                700 + c as u64,
                &[P::FMT, M::FMT],
                &[G::FMT],
                &|w, r| {
                    let [p, m] = w else { unreachable!() };
                    lion.step(1, p, r[0], m).unwrap()
                },
                &|be, rd, w, r, off, len| {
                    let [p, m] = w else { unreachable!() };
                    lion.step_with(
                        &ex(be, rd),
                        1,
                        P::sl(p, off, len),
                        G::sl_ro(&r[0], off, len),
                        M::sl(m, off, len),
                    )
                    .unwrap()
                },
            );
        });
    }
}

#[test]
fn averaging_reduced_matches_f32_rule_then_rounding() {
    for (c, combo) in COMBOS.into_iter().enumerate() {
        with_types!(combo, |P, G, M| {
            let _ = core::marker::PhantomData::<M>;
            for count in [0u64, 1, 9] {
                sweep(
                    "running mean",
                    800 + count + c as u64,
                    &[P::FMT],
                    &[G::FMT],
                    &|w, r| running_mean(w[0], r[0], count).unwrap(),
                    &|be, rd, w, r, off, len| {
                        running_mean_with(
                            &ex(be, rd),
                            P::sl(&mut w[0], off, len),
                            G::sl_ro(&r[0], off, len),
                            count,
                        )
                        .unwrap()
                    },
                );
            }
            sweep(
                "ema",
                900 + c as u64,
                &[P::FMT],
                &[G::FMT],
                &|w, r| ema(w[0], r[0], 0.99).unwrap(),
                &|be, rd, w, r, off, len| {
                    ema_with(
                        &ex(be, rd),
                        P::sl(&mut w[0], off, len),
                        G::sl_ro(&r[0], off, len),
                        0.99,
                    )
                    .unwrap()
                },
            );
        });
    }
}

fn replica_case<A: TSt>(seed: u64) {
    let mut rng = seeded(seed);
    for k in [1usize, 2, 5] {
        for len in LENGTHS.step_by(3) {
            let reps0: Vec<Buf> = (0..k)
                .map(|_| Buf::new(A::FMT, &mixed::<f32>(&mut rng, len + GUARD, 4.0, 0.04)))
                .collect();
            let mut wide: Vec<Vec<f32>> = reps0.iter().map(|b| b.widen()[..len].to_vec()).collect();
            {
                let mut w: Vec<&mut [f32]> = wide.iter_mut().map(|v| v.as_mut_slice()).collect();
                replica_mean_with(&Exec::scalar(), &mut w).unwrap();
            }
            for stochastic in [false, true] {
                let key = StochasticKey::new(rng.next_u64());
                let bits = doc_bits(key, len, 1);
                let mut want = reps0.clone();
                for buf in want.iter_mut() {
                    for i in 0..len {
                        let r = (stochastic && A::FMT != Format::F32).then(|| bits[0][i]);
                        buf.set(i, wide[0][i], r);
                    }
                }
                for b in backends() {
                    let mut got = reps0.clone();
                    let rd = if stochastic {
                        Rounding::Stochastic(key)
                    } else {
                        Rounding::NearestEven
                    };
                    {
                        let mut sl: Vec<&mut [A]> =
                            got.iter_mut().map(|x| A::sl(x, 0, len)).collect();
                        replica_mean_with(&ex(b, rd), &mut sl).unwrap();
                    }
                    for (j, (x, y)) in got.iter().zip(&want).enumerate() {
                        assert_same_buf(&format!("replica mean {:?} on {b}, K {k}, len {len}, replica {j}, stochastic {stochastic}", A::FMT), x, y);
                    }
                }
            }
        }
    }
}

#[test]
fn replica_mean_reduced_matches_f32_rule_then_rounding() {
    replica_case::<bf16>(1);
    replica_case::<f16>(2);
    replica_case::<f32>(3);
}

// ---------------------------------------------------------------------------------------------
// Quantization.

#[test]
fn nearest_quantization_is_exact() {
    let mut rng = seeded(11);
    for rho in [0.125f32, 2f32.powi(-10), 0.3, 1.7] {
        let g0 = mixed::<f32>(&mut rng, 5000, 3.0, 0.03);
        // Ties: exact half-multiples, both parities.
        let mut g0 = g0;
        for k in -6..6 {
            g0.push((k as f32 + 0.5) * rho);
        }
        let want: Vec<f32> = g0
            .iter()
            .map(|&g| (g / rho).round_ties_even() * rho)
            .collect();
        for b in backends() {
            let mut g = g0.clone();
            quantize_with(&ex(b, Rounding::NearestEven), rho, &mut g).unwrap();
            assert_same(&format!("nearest ρ = {rho} on {b}"), &g, &want);
        }
        if rho.log2().fract() == 0.0 {
            // Power-of-two ρ: the exact nearest multiple (f64 check), ties to an even multiple.
            for (&x, &y) in g0.iter().zip(&want) {
                if !y.is_finite() {
                    continue;
                }
                let k = y as f64 / rho as f64;
                assert_eq!(k.fract(), 0.0);
                let dist = (y as f64 - x as f64).abs();
                assert!(dist <= rho as f64 / 2.0, "{x} -> {y}");
                if dist == rho as f64 / 2.0 {
                    assert_eq!(k % 2.0, 0.0, "tie {x} -> {y} is not even");
                }
            }
        }
    }
}

#[test]
fn stochastic_quantization_is_unbiased_and_backend_independent() {
    const N: usize = 20_000;
    let rho = 0.25f32;
    let mut worst: f64 = 0.0;
    for (j, &x) in [0.3f32, -0.3, 1.0, 0.01, -2.9, 0.125, 7.77]
        .iter()
        .enumerate()
    {
        let mut g = vec![x; N];
        quantize_with(
            &ex(
                Backend::active(),
                Rounding::Stochastic(StochasticKey::new(j as u64)),
            ),
            rho,
            &mut g,
        )
        .unwrap();
        let y = x as f64 / rho as f64;
        let lo = y.abs().floor();
        let p = y.abs() - lo;
        let ups = g
            .iter()
            .filter(|&&v| (v as f64 / rho as f64).abs() != lo)
            .count();
        for &v in &g {
            let k = (v as f64 / rho as f64).abs();
            assert!(k == lo || k == lo + 1.0, "{x} -> {v}");
        }
        let sigma = (N as f64 * p * (1.0 - p)).sqrt();
        let dev = (ups as f64 - N as f64 * p).abs();
        assert!(
            dev <= 5.0 * sigma + N as f64 / 65536.0,
            "{x}: {ups} ups of {N}, p {p}"
        );
        let mean = g.iter().map(|&v| v as f64).sum::<f64>() / N as f64;
        assert!(
            (mean - x as f64).abs()
                <= rho as f64 * (5.0 * sigma + N as f64 / 65536.0) / N as f64 + 1e-12
        );
        if sigma > 0.0 {
            worst = worst.max(dev / sigma);
        }
    }
    println!("stochastic quantization: largest |ups − N·p| / σ = {worst:.2} (bound 5, N = {N})");
    // Same seed, same bits on every backend, every length and offset.
    let mut rng = seeded(4);
    let g0 = mixed::<f32>(&mut rng, 300, 3.0, 0.05);
    for len in lengths() {
        for off in [0, 3] {
            let mut want = g0.clone();
            let r = StochasticKey::new(len as u64);
            quantize_with(
                &ex(Backend::Scalar, Rounding::Stochastic(r)),
                0.1,
                &mut want[off..off + len.min(290)],
            )
            .unwrap();
            for b in simd_backends() {
                let mut got = g0.clone();
                let r = StochasticKey::new(len as u64);
                quantize_with(
                    &ex(b, Rounding::Stochastic(r)),
                    0.1,
                    &mut got[off..off + len.min(290)],
                )
                .unwrap();
                assert_same(
                    &format!("stochastic quantization on {b}, len {len}"),
                    &got,
                    &want,
                );
            }
        }
    }
}

struct Adversary;
impl Perturbation for Adversary {
    fn delta(&mut self, i: usize, grad: f32, rho: f32) -> f32 {
        match i % 5 {
            0 => rho,                  // allowed, the bound itself
            1 => -rho * 0.5,           // allowed
            2 => 10.0 * rho,           // too large: clamped to ρ
            3 => f32::NAN,             // invalid: treated as 0
            _ => -grad.signum() * 1e9, // too large: clamped to −ρ·sign
        }
    }
}

#[test]
fn adversarial_perturbation_is_bounded() {
    let rho = 0.0625f32;
    let mut rng = seeded(9);
    let g0 = mixed::<f32>(&mut rng, 1000, 3.0, 0.0);
    let mut g = g0.clone();
    let violations = perturb_bounded(rho, &mut g, &mut Adversary).unwrap();
    assert_eq!(violations, 600);
    for (i, (&a, &b)) in g0.iter().zip(&g).enumerate() {
        let d = match i % 5 {
            0 | 2 => rho,
            1 => -rho * 0.5,
            3 => 0.0,
            _ => (-a.signum() * 1e9).clamp(-rho, rho),
        };
        assert_eq!(b.to_bits(), (a + d).to_bits(), "element {i}");
        // The stored sum moved by at most ρ plus the sum's own rounding.
        assert!(
            ((b as f64) - (a as f64)).abs() <= rho as f64 + (b.abs() as f64) * f32::EPSILON as f64
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rejected calls write nothing.

type Bufs = (
    Vec<bf16>,
    Vec<bf16>,
    Vec<bf16>,
    Vec<bf16>,
    Vec<bf16>,
    Vec<f32>,
);

/// Every buffer's raw bits.
fn snapshot(b: &Bufs) -> Vec<Vec<u32>> {
    let h = |v: &Vec<bf16>| v.iter().map(|x| x.to_bits() as u32).collect::<Vec<u32>>();
    vec![
        h(&b.0),
        h(&b.1),
        h(&b.2),
        h(&b.3),
        h(&b.4),
        b.5.iter().map(|x| x.to_bits()).collect(),
    ]
}

#[track_caller]
fn rejected(
    what: &str,
    want: Error,
    bufs: &mut Bufs,
    call: impl FnOnce(&mut Bufs) -> Result<(), Error>,
) {
    let before = snapshot(bufs);
    assert_eq!(call(bufs), Err(want), "{what}");
    assert_eq!(snapshot(bufs), before, "{what}: a buffer was written");
}

#[test]
fn reduced_variants_reject_bad_input_before_writing() {
    let mut rng = seeded(8);
    let n = 19;
    let v = |rng: &mut Xoshiro256PlusPlus, n: usize| -> Vec<bf16> {
        mixed::<f32>(rng, n, 3.0, 0.1)
            .into_iter()
            .map(bf16::from_f32)
            .collect()
    };
    let mut bufs: Bufs = (
        v(&mut rng, n),
        v(&mut rng, n),
        v(&mut rng, n),
        v(&mut rng, n),
        v(&mut rng, n - 1),
        mixed(&mut rng, n, 3.0, 0.1),
    );
    let len = |buffer, expected, found| Error::LengthMismatch {
        buffer,
        expected,
        found,
    };
    let hyper = |name, requirement| Error::InvalidHyperParameter { name, requirement };
    let ne = || Rounding::NearestEven;
    let be = Backend::active();
    let st = Rounding::stochastic(1, 0);
    rejected("gd grads", len("grads", n, n - 1), &mut bufs, |b| {
        Gd::new(0.1f32).step_with(&ex(be, ne()), 1, &mut b.0, &b.4, &mut [] as &mut [bf16])
    });
    rejected(
        "gd lr",
        hyper("lr", "must be finite and >= 0"),
        &mut bufs,
        |b| Gd::new(f32::NAN).step_with(&ex(be, st), 1, &mut b.0, &b.1, &mut [] as &mut [bf16]),
    );
    rejected("sgd step", Error::InvalidStep { step: 0 }, &mut bufs, |b| {
        Sgd::new(0.1f32, 0.9).step_with(&ex(be, ne()), 0, &mut b.0, &b.1, &mut b.2)
    });
    rejected("sgd buf", len("state", n, n - 1), &mut bufs, |b| {
        Sgd::new(0.1f32, 0.9).step_with(&ex(be, ne()), 2, &mut b.0, &b.1, &mut b.4)
    });
    rejected("adam state", len("state", 2 * n, n), &mut bufs, |b| {
        Adam::new(1e-3f32).step_with(&ex(be, st), 1, &mut b.0, &b.1, &mut b.2)
    });
    rejected("amsgrad state", len("state", 3 * n, n), &mut bufs, |b| {
        Adam::new(1e-3f32)
            .amsgrad()
            .step_with(&ex(be, ne()), 1, &mut b.0, &b.1, &mut b.3)
    });
    rejected(
        "adam eps",
        hyper("eps", "must be finite and > 0"),
        &mut bufs,
        |b| {
            Adam {
                eps: 0.0,
                ..Adam::new(1e-3f32)
            }
            .step_with(&ex(be, ne()), 1, &mut b.0, &b.1, &mut b.2)
        },
    );
    rejected("sign grads", len("grads", n, n - 1), &mut bufs, |b| {
        SignDescent::new(0.1f32).step_with(&ex(be, ne()), 1, &mut b.0, &b.4, &mut [] as &mut [bf16])
    });
    rejected("signum m", len("state", n, n - 1), &mut bufs, |b| {
        Signum::new(0.1f32, 0.9).step_with(&ex(be, ne()), 1, &mut b.0, &b.1, &mut b.4)
    });
    rejected(
        "lion beta",
        hyper("beta2", "must lie in [0, 1)"),
        &mut bufs,
        |b| {
            Lion {
                beta2: 1.0,
                ..Lion::new(1e-3f32)
            }
            .step_with(&ex(be, ne()), 1, &mut b.0, &b.1, &mut b.2)
        },
    );
    rejected("running mean", len("params", n, n - 1), &mut bufs, |b| {
        running_mean_with(&ex(be, ne()), &mut b.0, &b.4, 0)
    });
    rejected(
        "ema decay",
        hyper("decay", "must lie in [0, 1]"),
        &mut bufs,
        |b| ema_with(&ex(be, ne()), &mut b.0, &b.1, 1.5),
    );
    rejected("replica", len("replica", n, n - 1), &mut bufs, |b| {
        replica_mean_with(&ex(be, ne()), &mut [&mut b.0[..], &mut b.4[..]])
    });
    rejected("no replicas", Error::NoBuffers, &mut bufs, |_| {
        replica_mean_with::<f32, bf16>(&ex(be, ne()), &mut [])
    });
    rejected("convert", len("dst", n, n - 1), &mut bufs, |b| {
        convert_with(&ex(be, ne()), &b.5, &mut b.4)
    });
    rejected(
        "rho 0",
        hyper("rho", "must be finite and > 0"),
        &mut bufs,
        |b| quantize_with(&ex(be, ne()), 0.0, &mut b.5),
    );
    rejected(
        "rho NaN",
        hyper("rho", "must be finite and > 0"),
        &mut bufs,
        |b| quantize_with(&ex(be, st), f32::NAN, &mut b.5),
    );
    rejected(
        "perturb rho",
        hyper("rho", "must be finite and > 0"),
        &mut bufs,
        |b| perturb_bounded(-1.0, &mut b.5, &mut Adversary).map(|_| ()),
    );
    // An unavailable backend is rejected once, when the context is made (tests/suite/bad_input.rs).
}

// ---------------------------------------------------------------------------------------------
// Schedule-Free over 16-bit buffers.

/// One Schedule-Free call (`switch`: the point switch to `x` after the counters' steps, else a
/// step) on 16-bit parameters (`P`) and state (`S`), every backend, every length and offset, both
/// roundings, against: widen, run the `f32` view on the scalar backend, round each written buffer
/// (RNE by `half`, or stochastically with the documented bits of the key whose counter the view
/// sets: `2(k + 1)` for step `k + 1`, `2k + 1` for a switch after `k` steps).
fn schedule_free_case<R, P, S>(
    name: &str,
    rule: R,
    seed: u64,
    counters: ScheduleFreeState,
    switch: bool,
) where
    R: ScheduleFreeRule<f32>,
    P: TSt + Storage<f32>,
    S: TSt + Storage<f32>,
{
    let mut rng = seeded(seed);
    let nb = R::STATE_BUFFERS;
    for len in lengths() {
        for off in OFFSETS {
            let y0 = Buf::new(
                P::FMT,
                &mixed::<f32>(&mut rng, off + len + GUARD, 4.0, 0.04),
            );
            let s0 = Buf::new(
                S::FMT,
                &mixed::<f32>(&mut rng, off + nb * len + GUARD, 4.0, 0.04),
            );
            let g: Vec<f32> = mixed(&mut rng, len, 4.0, 0.04);
            // The f32 view on the widened values.
            let mut wy = y0.widen()[off..off + len].to_vec();
            let mut ws = s0.widen()[off..off + nb * len].to_vec();
            {
                let e = exec(Backend::Scalar);
                let view = TrainView::resume(rule, &mut wy, &mut ws, counters).unwrap();
                if switch {
                    let _ = view.eval_with(&e);
                } else {
                    let mut view = view;
                    view.step_with(&e, &g).unwrap();
                }
            }
            let counter = if switch {
                2 * counters.k + 1
            } else {
                2 * (counters.k + 1)
            };
            // Written buffers in argument order: y, then (a step only) z and v.
            let written = if switch { 1 } else { 1 + nb };
            for stochastic in [false, true] {
                let key = StochasticKey::new(rng.next_u64()).with_stream(off as u64);
                let narrow = |k: usize| {
                    if k == 0 {
                        P::FMT != Format::F32
                    } else {
                        S::FMT != Format::F32
                    }
                };
                let k_rounded = (0..written).filter(|&k| narrow(k)).count();
                let bits = doc_bits(key.with_counter(counter), len, k_rounded);
                let (mut want_y, mut want_s) = (y0.clone(), s0.clone());
                let mut kk = 0;
                for k in 0..written {
                    for i in 0..len {
                        let r = (stochastic && narrow(k)).then(|| bits[kk][i]);
                        if k == 0 {
                            want_y.set(off + i, wy[i], r);
                        } else {
                            let j = (k - 1) * len + i;
                            want_s.set(off + j, ws[j], r);
                        }
                    }
                    kk += narrow(k) as usize;
                }
                let rounding = if stochastic {
                    Rounding::Stochastic(key.with_counter(987_654_321))
                } else {
                    Rounding::NearestEven
                };
                for b in backends() {
                    let e = ex(b, rounding);
                    let (mut y, mut s) = (y0.clone(), s0.clone());
                    {
                        let view = TrainView::<f32, R, P, S>::resume(
                            rule,
                            P::sl(&mut y, off, len),
                            S::sl(&mut s, off, nb * len),
                            counters,
                        )
                        .unwrap();
                        if switch {
                            let _ = view.eval_with(&e);
                        } else {
                            let mut view = view;
                            view.step_with(&e, &g).unwrap();
                        }
                    }
                    let at = format!(
                        "{name} on {b}, switch {switch}, k {}, stochastic {stochastic}, len {len}, offset {off}",
                        counters.k
                    );
                    assert_same_buf(&format!("{at}, params"), &y, &want_y);
                    assert_same_buf(&format!("{at}, state"), &s, &want_s);
                }
            }
        }
    }
}

#[test]
fn schedule_free_reduced_matches_f32_view_then_rounding() {
    let adamw = ScheduleFreeAdamW {
        weight_decay: 0.01,
        warmup_steps: 2,
        ..ScheduleFreeAdamW::new(0.05f32)
    };
    let sgd = ScheduleFreeSgd {
        weight_decay: 0.01,
        ..ScheduleFreeSgd::new(0.1f32)
    };
    // Before the first step (z ← y, v ← 0), and after four steps (with lr_max and the weight
    // sum of a run).
    let later = ScheduleFreeState {
        k: 4,
        lr_max: 0.05,
        weight_sum: 0.0123,
    };
    for (k, counters) in [ScheduleFreeState::new(), later].into_iter().enumerate() {
        let seed = 40 + k as u64;
        schedule_free_case::<_, bf16, bf16>("sf-adamw bf16/bf16", adamw, seed, counters, false);
        schedule_free_case::<_, f16, f32>("sf-adamw f16/f32", adamw, seed, counters, false);
        schedule_free_case::<_, f32, bf16>("sf-sgd f32/bf16", sgd, seed, counters, false);
        schedule_free_case::<_, bf16, f16>("sf-sgd bf16/f16", sgd, seed, counters, false);
    }
    schedule_free_case::<_, bf16, bf16>("sf-adamw bf16/bf16", adamw, 50, later, true);
    schedule_free_case::<_, f16, f32>("sf-sgd f16/f32", sgd, 51, later, true);
}

/// Why stochastic rounding: SGD Schedule-Free with a constant gradient and a step far below half
/// a bf16 ulp of the parameters. Round-to-nearest never moves a bf16 `y` (the update is lost,
/// every step); stochastic rounding moves the mean of many elements as the f32 run does, within
/// a 5σ bound of the rounding noise (each stored value is off by at most one ulp, independently,
/// and unbiased).
#[test]
fn schedule_free_bf16_stochastic_rounding_follows_f32_where_nearest_stalls() {
    let n = 4096;
    let steps = 50u64;
    let rule = ScheduleFreeSgd::new(1e-4f32);
    let g = vec![1.0f32; n];
    let y0 = vec![1.0f32; n]; // bf16 ulp at 1 is 2^-7; the step is 1e-4 ≈ 0.013 ulp
    let run = |rounding: Option<Rounding>| -> f64 {
        let mut yb: Vec<bf16> = y0.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut sb = vec![bf16::ZERO; n];
        let mut view = TrainView::<f32, _, bf16, bf16>::new(rule, &mut yb, &mut sb).unwrap();
        let e = Exec::active().with_rounding(rounding.unwrap_or(Rounding::NearestEven));
        for _ in 0..steps {
            view.step_with(&e, &g).unwrap();
        }
        let eval = view.eval_with(&e);
        eval.params().iter().map(|x| x.to_f64()).sum::<f64>() / n as f64
    };
    let (mut y32, mut s32) = (y0.clone(), vec![0.0f32; n]);
    let mut view = TrainView::new(rule, &mut y32, &mut s32).unwrap();
    for _ in 0..steps {
        view.step(&g).unwrap();
    }
    let f32_mean = view.eval().params()[0] as f64;
    let nearest = run(None);
    let stochastic = run(Some(Rounding::stochastic(7, 0)));
    assert!(f32_mean < 1.0 - 1e-3, "the f32 run moved: {f32_mean}");
    assert_eq!(nearest, 1.0, "round-to-nearest stalls");
    // Every stored value is within one ulp (2^-7 below 1) of its exact value; the errors are
    // unbiased, so the mean over n elements is within 5·2^-7/√n (a loose bound: the errors
    // of successive steps are not independent of each other, but each step's error is bounded
    // by one ulp and has mean zero given the past, a martingale over `steps + 1` roundings).
    let bound = 5.0 * 2f64.powi(-7) * ((steps + 1) as f64).sqrt() / (n as f64).sqrt();
    assert!(
        (stochastic - f32_mean).abs() <= bound,
        "stochastic {stochastic} vs f32 {f32_mean}, bound {bound}"
    );
}
