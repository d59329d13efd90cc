//! 8-bit blockwise Adam, the constant-time encoder: the bucket tables, one value at a time
//! (`encode`) and a block at a time on every backend (`encode_block_on`, the kernel's path, with
//! the backend's table gather), against the binary search
//! they replace (`nearest_code_reference`, the definition) at every boundary (each code value,
//! each midpoint and each threshold with the 4 f32 on each side, every bucket edge, ±0,
//! subnormals, values beyond ±1, the extremes) and at random bit patterns; and the whole step on
//! every backend against a scalar transcription of the earlier implementation (per-block scalar
//! decode and maximum, binary search per element) over lengths 0..=257, unaligned sub-slices and
//! special values, bit for bit.

use crate::common;

use common::*;
use descent_kernels::arch::Simd;
use descent_kernels::random::seeded;
use descent_kernels::rules::adam8::{
    nearest_code, nearest_code_reference, Quantizer, BLOCK, SIGNED_CODEBOOK, SIGNED_MAP,
    SIGNED_THRESHOLDS, UNSIGNED_CODEBOOK, UNSIGNED_MAP, UNSIGNED_THRESHOLDS,
};
use descent_kernels::{Adam8, Backend, Element, Kernel, WeightDecay};
use proptest::prelude::*;
use rand_core::Rng;

/// A map's name, the map, and its constant-time encoder.
type Codec = (&'static str, &'static [f32; 256], fn(f32) -> u8);

/// The two maps, each with its constant-time encoder.
fn codecs() -> [Codec; 2] {
    [
        ("signed", &SIGNED_MAP, |x| SIGNED_CODEBOOK.encode(x)),
        ("unsigned", &UNSIGNED_MAP, |x| UNSIGNED_CODEBOOK.encode(x)),
    ]
}

/// A map's name, the map, and whether it is the signed one ([`encode_block`]'s `signed`).
type BlockCodec = (&'static str, &'static [f32; 256], bool);

/// `Codebook::encode_block_on` a backend (the kernel's path: a hardware gather on AVX-512).
struct EncodeBlock<'a> {
    signed: bool,
    xs: &'a mut [f32],
    scale: f32,
    codes: &'a mut [u8],
}

impl Kernel<f32> for EncodeBlock<'_> {
    type Output = ();
    fn run<S: Simd<f32>>(self, s: S) {
        let scratch = &mut [0; BLOCK];
        let (xs, scale, codes) = (self.xs, self.scale, self.codes);
        if self.signed {
            SIGNED_CODEBOOK.encode_block_on(s, xs, scale, codes, scratch)
        } else {
            UNSIGNED_CODEBOOK.encode_block_on(s, xs, scale, codes, scratch)
        }
    }
}

/// The block encoder of the signed or the unsigned map on `backend`: the codes of
/// `xs[i] / scale`, the quotients left in `xs` (`xs.len() <= BLOCK`).
fn encode_block(signed: bool, backend: Backend, xs: &mut [f32], scale: f32, codes: &mut [u8]) {
    let kernel = EncodeBlock {
        signed,
        xs,
        scale,
        codes,
    };
    f32::dispatch(backend, kernel)
}

/// The two maps, each with its block encoder.
fn block_codecs() -> [BlockCodec; 2] {
    [
        ("signed", &SIGNED_MAP, true),
        ("unsigned", &UNSIGNED_MAP, false),
    ]
}

/// `xs` (no NaN) through every block encoder on every backend, in consecutive blocks of `len`
/// values (the last one shorter), divided by `scale` (positive and finite): each code against
/// the reference's code of the f32 quotient, and the quotient left in place.
fn check_blocks_scaled(xs: &[f32], len: usize, scale: f32) {
    for backend in backends() {
        for (name, map, signed) in block_codecs() {
            for chunk in xs.chunks(len.clamp(1, BLOCK)) {
                let mut codes = vec![0xAAu8; chunk.len()];
                let mut quotients = chunk.to_vec();
                encode_block(signed, backend, &mut quotients, scale, &mut codes);
                for ((&x, &q), &got) in chunk.iter().zip(&quotients).zip(&codes) {
                    let want_q = x / scale;
                    assert_eq!(
                        q.to_bits(),
                        want_q.to_bits(),
                        "{backend:?}: {name}: {x:e} / {scale:e} left {q:e}"
                    );
                    let want = nearest_code_reference(map, want_q);
                    assert_eq!(
                        got,
                        want,
                        "{backend:?}: {name} block of {}: x = {x:e} ({:#010x}) / {scale:e}: \
                         encode_block {got}, reference {want}",
                        chunk.len(),
                        x.to_bits()
                    );
                }
            }
        }
    }
}

/// [`check_blocks_scaled`] with scale 1 (the quotient is `x` itself, so the boundary values
/// reach the encoder unchanged).
fn check_blocks(xs: &[f32], len: usize) {
    check_blocks_scaled(xs, len, 1.0)
}

/// `x` and the `k` f32 on each side of it (in the total order of non-NaN values, so across ±0).
fn around(x: f32, k: u32) -> Vec<f32> {
    let key = |x: f32| -> i64 {
        let b = x.to_bits();
        if b >> 31 == 1 {
            -((b & 0x7FFF_FFFF) as i64) - 1
        } else {
            b as i64
        }
    };
    let from = |k: i64| -> f32 {
        if k < 0 {
            f32::from_bits((-(k + 1)) as u32 | 0x8000_0000)
        } else {
            f32::from_bits(k as u32)
        }
    };
    let c = key(x);
    (-(k as i64)..=k as i64)
        .map(|d| from(c + d))
        .filter(|y| !y.is_nan())
        .collect()
}

fn check(name: &str, map: &[f32; 256], fast: fn(f32) -> u8, x: f32) {
    let want = nearest_code_reference(map, x);
    let got = fast(x);
    assert_eq!(
        got,
        want,
        "{name}: x = {x:e} ({:#010x}): codebook {got}, reference {want}",
        x.to_bits()
    );
    // The public entry takes the same path for the statics.
    assert_eq!(nearest_code(map, x), want, "{name}: nearest_code at {x:e}");
}

/// Every boundary of both maps.
#[test]
fn codebook_equals_reference_at_every_boundary() {
    for (name, map, fast) in codecs() {
        let mut xs = Vec::new();
        for &c in map {
            xs.extend(around(c, 4)); // each code value
            xs.extend(around(-c, 4));
        }
        for w in map.windows(2) {
            // Midpoints, rounded in f32 and in f64, and their neighbours.
            xs.extend(around((w[0] + w[1]) / 2.0, 4));
            xs.extend(around(((w[0] as f64 + w[1] as f64) / 2.0) as f32, 4));
        }
        let thresholds = match name {
            "signed" => &SIGNED_THRESHOLDS[1..],
            _ => &UNSIGNED_THRESHOLDS[1..],
        };
        assert_eq!(thresholds.len(), 255);
        for (i, &t) in thresholds.iter().enumerate() {
            xs.extend(around(t, 4));
            // A threshold is the least f32 coded k = i + 1.
            let below = around(t, 1)[0];
            assert_eq!(
                nearest_code_reference(map, t) as usize,
                i + 1,
                "{name} t_{}",
                i + 1
            );
            assert_eq!(
                nearest_code_reference(map, below) as usize,
                i,
                "{name} t_{}",
                i + 1
            );
        }
        // Every bucket edge: each power of two from 2^-30 to 2^1 and each 1/64 step inside its
        // binade, both signs, with neighbours.
        for e in -30..=1 {
            for j in 0..64 {
                let x = 2f32.powi(e) * (1.0 + j as f32 / 64.0);
                xs.extend(around(x, 2));
                xs.extend(around(-x, 2));
            }
        }
        // Zeros, subnormals, the smallest normals, beyond ±1, the extremes.
        let sub_min = f32::from_bits(1);
        let sub_max = f32::from_bits(0x007F_FFFF);
        for x in [
            0.0,
            sub_min,
            sub_max,
            f32::MIN_POSITIVE,
            2f32.powi(-23),
            1.0,
            1.5,
            2.0,
            1e30,
            f32::MAX,
            f32::INFINITY,
        ] {
            xs.extend(around(x, 4));
            xs.extend(around(-x, 4));
        }
        for &x in &xs {
            check(name, map, fast, x);
        }
        // The block path on the same values, in blocks of every length class.
        for len in [1, 7, 8, 31, 255, 256] {
            check_blocks(&xs, len);
        }
    }
}

/// Every f32 of [−1, 1] (`sign` bit random) or of [0, 1]: bits `0..=0x3F80_0000` cover every
/// non-negative f32 up to 1, in proportion to how many f32 each binade holds.
fn unit(signed: bool) -> impl Strategy<Value = f32> {
    (0u32..=0x3F80_0000, any::<bool>())
        .prop_map(move |(b, neg)| f32::from_bits(b | if signed && neg { 0x8000_0000 } else { 0 }))
}

/// Any non-NaN f32.
fn any_f32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("not NaN", |x| !x.is_nan())
}

/// Uniform reals of [−1, 1] (the typical `q = x / scale`), as opposed to uniform bit patterns.
fn uniform_real() -> impl Strategy<Value = f32> {
    -1.0f32..=1.0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    #[test]
    fn codebook_equals_reference_in_unit_interval(x in unit(true), y in unit(false)) {
        for (name, map, fast) in codecs() {
            check(name, map, fast, x);
            check(name, map, fast, y);
        }
    }

    #[test]
    fn codebook_equals_reference_anywhere(x in any_f32(), y in uniform_real()) {
        for (name, map, fast) in codecs() {
            check(name, map, fast, x);
            check(name, map, fast, y);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Whole blocks (any length up to [`BLOCK`]) of any mix of bit patterns, unit-interval
    /// values and uniform reals, divided by 1 or by a positive normal scale: 400 cases of up to
    /// 256 values.
    #[test]
    fn encode_block_equals_reference(
        xs in proptest::collection::vec(prop_oneof![any_f32(), unit(true), uniform_real()], 0..=BLOCK),
        scale in prop_oneof![Just(1.0f32), (0x0080_0000u32..0x7F80_0000).prop_map(f32::from_bits)],
    ) {
        check_blocks_scaled(&xs, BLOCK, scale);
    }
}

/// Every f32 of [−1, 1] (2 130 706 434 bit patterns, ±0 both) through both maps, one at a time
/// and in blocks: a one-off check (a few tens of
/// seconds in a release build), not part of the regular runs:
/// `cargo test --release -p descent-kernels --test suite exhaustive -- --ignored`.
#[test]
#[ignore]
fn codebook_equals_reference_exhaustively_in_unit_interval() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let top = 0x3F80_0000u32; // bits of 1.0
    let chunk = top.div_ceil(threads);
    let mismatches: u64 = std::thread::scope(|scope| {
        (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut bad = 0u64;
                    let (lo, hi) = (t * chunk, ((t + 1) * chunk).min(top + 1));
                    let mut xs = Vec::with_capacity(BLOCK);
                    let mut codes = [0u8; BLOCK];
                    for bits in lo..hi {
                        for x in [f32::from_bits(bits), f32::from_bits(bits | 0x8000_0000)] {
                            for (_, map, fast) in codecs() {
                                bad += (fast(x) != nearest_code_reference(map, x)) as u64;
                            }
                            xs.push(x);
                        }
                        if xs.len() == BLOCK || bits + 1 == hi {
                            // The block path too, on the same values.
                            for (_, map, signed) in block_codecs() {
                                let codes = &mut codes[..xs.len()];
                                let mut quotients = xs.clone();
                                let backend = Backend::active();
                                encode_block(signed, backend, &mut quotients, 1.0, codes);
                                for (&x, &c) in xs.iter().zip(codes.iter()) {
                                    bad += (c != nearest_code_reference(map, x)) as u64;
                                }
                            }
                            xs.clear();
                        }
                    }
                    bad
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum()
    });
    assert_eq!(mismatches, 0);
}

// ------------------------------------------- the step against the earlier implementation

/// The earlier implementation, transcribed: per block, scalar decode, the Adam equations in f32
/// (the SIMD body's order of operations), the scalar block maximum (NaN at the first NaN), and
/// the binary search per element.
fn earlier_step(
    rule: &Adam8,
    step: u64,
    p: &mut [f32],
    g: &[f32],
    codes: &mut [u8],
    scales: &mut [f32],
) {
    let n = p.len();
    let nb = n.div_ceil(BLOCK);
    let t = step as f64;
    let bc1 = 1.0 - libm::pow(rule.beta1 as f64, t);
    let bc2 = 1.0 - libm::pow(rule.beta2 as f64, t);
    let step_size = (rule.lr as f64 / bc1) as f32;
    let r = (1.0 / bc2.sqrt()) as f32;
    let q = rule.quantizer;
    assert_eq!(q, Quantizer::Dynamic);
    let block_max = |xs: &[f32], abs: bool| -> f32 {
        let mut m = 0.0f32;
        for &x in xs {
            let x = if abs { x.abs() } else { x };
            if x.is_nan() {
                return f32::NAN;
            }
            if x > m {
                m = x;
            }
        }
        m
    };
    let (cm, cv) = codes.split_at_mut(n);
    let (sm, sv) = scales.split_at_mut(nb);
    for b in 0..nb {
        let range = b * BLOCK..((b + 1) * BLOCK).min(n);
        let mut m: Vec<f32> = range
            .clone()
            .map(|i| SIGNED_MAP[cm[i] as usize] * sm[b])
            .collect();
        let mut v: Vec<f32> = range
            .clone()
            .map(|i| UNSIGNED_MAP[cv[i] as usize] * sv[b])
            .collect();
        for (j, i) in range.clone().enumerate() {
            let mut pi = p[i];
            let mut gi = g[i];
            match rule.weight_decay {
                WeightDecay::Decoupled(l) => pi *= 1.0 - rule.lr * l,
                WeightDecay::L2(l) => gi += l * pi,
                WeightDecay::None => {}
            }
            m[j] = rule.beta1 * m[j] + (1.0 - rule.beta1) * gi;
            v[j] = rule.beta2 * v[j] + (1.0 - rule.beta2) * (gi * gi);
            p[i] = pi - step_size * (m[j] / (v[j].sqrt() * r + rule.eps));
        }
        sm[b] = block_max(&m, true);
        sv[b] = block_max(&v, false);
        for (j, i) in range.enumerate() {
            let (qm, qv) = (m[j] / sm[b], v[j] / sv[b]);
            cm[i] = if sm[b] == 0.0 || qm.is_nan() {
                127
            } else {
                nearest_code_reference(&SIGNED_MAP, qm)
            };
            cv[i] = if sv[b] == 0.0 || qv.is_nan() {
                0
            } else {
                nearest_code_reference(&UNSIGNED_MAP, qv)
            };
        }
    }
}

fn step_matches_earlier(seed: u64, special: f64, wd: u8) {
    let mut rng = seeded(seed);
    let rule = Adam8 {
        weight_decay: [
            WeightDecay::None,
            WeightDecay::L2(0.01),
            WeightDecay::Decoupled(0.02),
        ][wd as usize % 3],
        ..Adam8::new(3e-3)
    };
    for len in lengths().into_iter().chain([511, 700]) {
        let off = (rng.next_u32() % 8) as usize;
        let p0: Vec<f32> = mixed(&mut rng, off + len + GUARD, 2.0, special);
        let gs: Vec<Vec<f32>> = (0..3).map(|_| mixed(&mut rng, len, 2.0, special)).collect();
        let codes0: Vec<u8> = (0..Adam8::codes_len(len) + GUARD)
            .map(|_| rng.next_u32() as u8)
            .collect();
        let scales0: Vec<f32> =
            mixed::<f32>(&mut rng, Adam8::scales_len(len) + GUARD, 1.0, special)
                .into_iter()
                .map(f32::abs)
                .collect();
        let (cl, sl) = (Adam8::codes_len(len), Adam8::scales_len(len));
        let (mut wp, mut wc, mut ws) = (p0.clone(), codes0.clone(), scales0.clone());
        for (k, g) in gs.iter().enumerate() {
            earlier_step(
                &rule,
                k as u64 + 1,
                &mut wp[off..off + len],
                g,
                &mut wc[..cl],
                &mut ws[..sl],
            );
        }
        for b in backends() {
            let (mut p, mut c, mut s) = (p0.clone(), codes0.clone(), scales0.clone());
            for (k, g) in gs.iter().enumerate() {
                rule.step_with(
                    &exec(b),
                    k as u64 + 1,
                    &mut p[off..off + len],
                    g,
                    &mut c[..cl],
                    &mut s[..sl],
                )
                .unwrap();
            }
            let at = format!("adam8 on {b}, len {len}, offset {off}, seed {seed}");
            assert_same(&format!("{at}, params"), &p, &wp);
            assert_eq!(c, wc, "{at}, codes");
            assert_same(&format!("{at}, scales"), &s, &ws);
        }
    }
}

proptest! {
    #![proptest_config(common::proptest_config(6))]

    #[test]
    fn step_equals_earlier_implementation(
        seed in any::<u64>(),
        special in prop_oneof![Just(0.0), Just(0.02)],
        wd in 0u8..3,
    ) {
        step_matches_earlier(seed, special, wd);
    }
}
