//! 8-bit blockwise Adam: the dynamic maps against values derived by hand from bitsandbytes'
//! `create_dynamic_map`, the nearest-code search against brute force, step 1 against f32 Adam,
//! every backend against the scalar reference (several blocks, tails, offsets, special values),
//! an independent scalar transcription replayed for 100 steps (bit for bit), convergence next to
//! f32 Adam, 16-bit parameters as the f32 step rounded once, and typed errors that write nothing.

use crate::common;

use common::*;
use descent_kernels::random::{seeded, uniform01};
use descent_kernels::rules::adam8::{
    dynamic_map, nearest_code, Quantizer, BLOCK, SIGNED_MAP, UNSIGNED_MAP,
};
use descent_kernels::{
    Adam, Adam8, Backend, Error, Exec, KahanBf16, Rounding, Rule, StochasticKey, WeightDecay,
};
use half::{bf16, f16};
use rand_core::Rng;

/// `|got − want| <= 2 ulp(want)` in f32.
fn near(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 2.0 * f32::EPSILON as f64 * want.abs()
}

#[test]
fn maps_match_the_generator() {
    let s = &SIGNED_MAP;
    let u = &UNSIGNED_MAP;
    assert_eq!(s, &dynamic_map(true));
    // Sorted, strictly increasing, ends and zero where the generator puts them.
    assert!(s.windows(2).all(|w| w[0] < w[1]));
    assert!(u.windows(2).all(|w| w[0] < w[1]));
    assert_eq!((s[127], s[255], u[0], u[255]), (0.0, 1.0, 0.0, 1.0));
    // Signed: symmetric apart from the extra 1.0 (s[0] = −s[254]).
    for k in 1..=127 {
        assert_eq!(s[127 - k], -s[127 + k], "k = {k}");
    }
    // Hand-derived entries. Signed, i = 0: linspace(0.1, 1, 2) = [0.1, 1], mean 0.55, ×1e-6.
    assert!(near(s[128], 0.55e-6), "{}", s[128]);
    // i = 1: linspace(0.1, 1, 3) = [0.1, 0.55, 1], means 0.325, 0.775, ×1e-5.
    assert!(
        near(s[129], 3.25e-6) && near(s[130], 7.75e-6),
        "{} {}",
        s[129],
        s[130]
    );
    // i = 6: 65 points, step 0.9/64; the last mean 1 − 0.9/128 = 0.99296875, ×1.
    assert!(
        near(s[254], 0.99296875) && near(s[0], -0.99296875),
        "{}",
        s[254]
    );
    // Unsigned, i = 0: linspace(0.1, 1, 3): means 0.325, 0.775, ×1e-6.
    assert!(
        near(u[1], 3.25e-7) && near(u[2], 7.75e-7),
        "{} {}",
        u[1],
        u[2]
    );
    // i = 6: 129 points, step 0.9/128; the last mean 1 − 0.9/256 = 0.996484375.
    assert!(near(u[254], 0.996484375), "{}", u[254]);
    // Codes per decade: 2^i signed (per sign), 2^(i+1) unsigned.
    for i in 0..7 {
        let (lo, hi) = (10f32.powi(i - 6) * 0.1, 10f32.powi(i - 6));
        let count = |m: &[f32; 256]| m.iter().filter(|&&x| x > lo && x < hi).count();
        assert_eq!(count(s), 1 << i, "signed decade {i}");
        assert_eq!(count(u), 2 << i, "unsigned decade {i}");
    }
}

#[test]
fn nearest_code_is_the_argmin() {
    let mut rng = seeded(8);
    for map in [&SIGNED_MAP, &UNSIGNED_MAP] {
        let mut xs: Vec<f32> = map.to_vec();
        xs.extend(map.windows(2).map(|w| (w[0] + w[1]) / 2.0)); // midpoints (ties)
                                                                // Each code and each midpoint with its four nearest f32 neighbours on each side.
        let near: Vec<f32> = xs
            .iter()
            .flat_map(|&x| {
                (1..=4u32).flat_map(move |k| {
                    let up = if x >= 0.0 {
                        x.to_bits() + k
                    } else {
                        x.to_bits() - k
                    };
                    let down = if x > 0.0 {
                        x.to_bits() - k
                    } else {
                        x.to_bits() + k
                    };
                    [f32::from_bits(up), f32::from_bits(down)]
                })
            })
            .filter(|x| x.is_finite())
            .collect();
        xs.extend(near);
        for _ in 0..20_000 {
            let e = (rng.next_u32() % 8) as i32;
            xs.push(((2.0 * uniform01(&mut rng) - 1.0) * 10f64.powi(-e)) as f32);
        }
        xs.extend([-2.0, 2.0, -0.0, 1e-30, -1e-30]);
        for x in xs {
            let got = nearest_code(map, x) as usize;
            let best = (0..256)
                .min_by(|&a, &b| {
                    let (da, db) = ((map[a] - x).abs(), (map[b] - x).abs());
                    da.partial_cmp(&db).unwrap().then(a.cmp(&b))
                })
                .unwrap();
            assert_eq!(
                (map[got] - x).abs(),
                (map[best] - x).abs(),
                "x = {x:e}: code {got} ({}), best {best} ({})",
                map[got],
                map[best]
            );
            assert!(
                got <= best,
                "x = {x:e}: tie not broken towards the smaller code"
            );
        }
    }
}

/// From the zero state, step 1 decodes zeros, so the parameters equal f32 Adam's bit for bit.
#[test]
fn first_step_equals_f32_adam() {
    let n = 700;
    let mut rng = seeded(9);
    let p0: Vec<f32> = mixed(&mut rng, n, 2.0, 0.0);
    let g: Vec<f32> = mixed(&mut rng, n, 2.0, 0.0);
    for wd in [
        WeightDecay::None,
        WeightDecay::L2(0.01),
        WeightDecay::Decoupled(0.1),
    ] {
        let a8 = Adam8 {
            weight_decay: wd,
            ..Adam8::new(1e-2)
        };
        let a = Adam {
            weight_decay: wd,
            ..Adam::new(1e-2f32)
        };
        let (mut p8, mut p) = (p0.clone(), p0.clone());
        let mut codes = vec![0u8; Adam8::codes_len(n)];
        let mut scales = vec![0.0f32; Adam8::scales_len(n)];
        a8.step(1, &mut p8, &g, &mut codes, &mut scales).unwrap();
        let mut st = vec![0.0f32; 2 * n];
        a.step(1, &mut p, &g, &mut st).unwrap();
        assert_same(&format!("{wd:?}"), &p8, &p);
        // The scales are the blocks' new maxima, exactly.
        for b in 0..n.div_ceil(BLOCK) {
            let r = b * BLOCK..((b + 1) * BLOCK).min(n);
            let mmax = st[r.clone()].iter().fold(0f32, |x, y| x.max(y.abs()));
            let vmax = st[n..][r].iter().fold(0f32, |x, &y| x.max(y));
            assert_eq!((scales[b], scales[n.div_ceil(BLOCK) + b]), (mmax, vmax));
        }
    }
}

#[test]
fn bit_exact_on_every_backend() {
    let simd = simd_backends();
    let mut rng = seeded(10);
    let lengths: Vec<usize> = (0..=257).chain([511, 512, 513, 700, 1030]).collect();
    for special in [0.0, 0.02] {
        for &len in &lengths {
            for off in [0usize, 1, 3, 5] {
                let p0: Vec<f32> = mixed(&mut rng, off + len + GUARD, 2.0, special);
                let gs: Vec<Vec<f32>> =
                    (0..3).map(|_| mixed(&mut rng, len, 2.0, special)).collect();
                let codes0: Vec<u8> = (0..Adam8::codes_len(len) + GUARD)
                    .map(|_| rng.next_u32() as u8)
                    .collect();
                let scales0: Vec<f32> =
                    mixed::<f32>(&mut rng, Adam8::scales_len(len) + GUARD, 1.0, 0.0)
                        .into_iter()
                        .map(f32::abs)
                        .collect();
                let rule = Adam8 {
                    weight_decay: [
                        WeightDecay::None,
                        WeightDecay::L2(0.01),
                        WeightDecay::Decoupled(0.02),
                    ][len % 3],
                    ..Adam8::new(3e-3)
                };
                let run = |b: Backend| {
                    let (mut p, mut c, mut s) = (p0.clone(), codes0.clone(), scales0.clone());
                    let (cl, sl) = (Adam8::codes_len(len), Adam8::scales_len(len));
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
                    (p, c, s)
                };
                let (wp, wc, ws) = run(Backend::Scalar);
                for &b in &simd {
                    let (gp, gc, gs_) = run(b);
                    let at = format!("adam8 on {b}, len {len}, offset {off}");
                    assert_same(&format!("{at}, params"), &gp, &wp);
                    assert_eq!(gc, wc, "{at}, codes");
                    assert_same(&format!("{at}, scales"), &gs_, &ws);
                }
            }
        }
    }
}

// --------------------------------------------------- 16-bit parameters

/// Adam8 over parameters stored as `P` equals, bit for bit on every backend, the documented
/// convention by hand: widen the parameters, step the `f32` parameters with the same codes and
/// scales, round the new parameters once (nearest, or stochastically with the high halves of
/// pair 0's words at each element's index in the tensor, the key's offset included); the codes and
/// scales equal the `f32` run's. Lengths across blocks and tails, three steps, with and without
/// a chunk offset. Under stochastic rounding some parameter must differ from its nearest
/// rounding (the bits were used).
fn sixteen_bit_params_are_the_f32_step_rounded_once<P: Stored>() {
    let mut rng = seeded(16);
    for b in backends() {
        for &len in &[0usize, 1, 7, 255, 256, 257, 600] {
            for (k, key) in [
                None,
                Some(StochasticKey::new(3)),
                Some(StochasticKey::new(4).at_offset(1000)),
            ]
            .into_iter()
            .enumerate()
            {
                let rule = Adam8 {
                    weight_decay: [WeightDecay::Decoupled(0.02), WeightDecay::L2(0.01)][k % 2],
                    ..Adam8::new(3e-3)
                };
                let mut p: Vec<P> = mixed::<f32>(&mut rng, len, 2.0, 0.0)
                    .into_iter()
                    .map(P::nearest)
                    .collect();
                let (mut c, mut s) = (
                    vec![0u8; Adam8::codes_len(len)],
                    vec![0.0f32; Adam8::scales_len(len)],
                );
                let mut differs = false;
                for step in 1..=3u64 {
                    let g: Vec<f32> = mixed(&mut rng, len, 1.0, 0.0);
                    let key = key.map(|k| k.with_counter(step));
                    // By hand.
                    let mut pw: Vec<f32> = p.iter().map(|x| x.to_f32()).collect();
                    let (mut cw, mut sw) = (c.clone(), s.clone());
                    rule.step_with(&exec(b), step, &mut pw, &g, &mut cw, &mut sw)
                        .unwrap();
                    let want = bits(&rounded::<P>(&pw, key, 0));
                    differs |= want != bits(&rounded::<P>(&pw, None, 0));
                    // The kernel.
                    let rounding = key.map_or(Rounding::NearestEven, Rounding::Stochastic);
                    rule.step_with(
                        &exec(b).with_rounding(rounding),
                        step,
                        &mut p,
                        &g,
                        &mut c,
                        &mut s,
                    )
                    .unwrap();
                    let at = format!("{b}, len {len}, key {key:?}, step {step}");
                    assert_eq!(bits(&p), want, "{at}: parameters");
                    assert_eq!(c, cw, "{at}: codes");
                    assert_same(&format!("{at}: scales"), &s, &sw);
                }
                if key.is_some() && P::NARROWS && len >= 7 {
                    assert!(differs, "{b}, len {len}: stochastic rounding drew no bits");
                }
            }
        }
    }
}

#[test]
fn bf16_params_are_the_f32_step_rounded_once() {
    sixteen_bit_params_are_the_f32_step_rounded_once::<bf16>();
}

#[test]
fn f16_and_kahan_params_are_the_f32_step_rounded_once() {
    sixteen_bit_params_are_the_f32_step_rounded_once::<f16>();
    sixteen_bit_params_are_the_f32_step_rounded_once::<KahanBf16>();
}

// --------------------------------------------------- independent transcription, 100 steps

/// The algorithm written out plainly, element by element, in f32 (the kernel's arithmetic type),
/// with its own nearest search (linear scan): decode, Adam (torch's form with the reciprocal
/// bias correction), block maxima, encode.
fn transcription(
    rule: &Adam8,
    p: &mut [f32],
    gs: &[Vec<f32>],
    codes: &mut [u8],
    scales: &mut [f32],
) {
    let n = p.len();
    let nb = n.div_ceil(BLOCK);
    let nearest = |map: &[f32; 256], x: f32| -> u8 {
        let mut best = 0;
        for k in 1..256 {
            if (map[k] - x).abs() < (map[best] - x).abs() {
                best = k;
            }
        }
        best as u8
    };
    for (t, g) in gs.iter().enumerate() {
        let t = (t + 1) as f64;
        let step_size = (rule.lr as f64 / (1.0 - (rule.beta1 as f64).powf(t))) as f32;
        let r = (1.0 / (1.0 - (rule.beta2 as f64).powf(t)).sqrt()) as f32;
        for b in 0..nb {
            let range = b * BLOCK..((b + 1) * BLOCK).min(n);
            let mut m = vec![0f32; range.len()];
            let mut v = vec![0f32; range.len()];
            for (j, i) in range.clone().enumerate() {
                let mut pi = p[i];
                let mut gi = g[i];
                m[j] = SIGNED_MAP[codes[i] as usize] * scales[b];
                v[j] = UNSIGNED_MAP[codes[n + i] as usize] * scales[nb + b];
                match rule.weight_decay {
                    WeightDecay::Decoupled(l) => pi *= 1.0 - rule.lr * l,
                    WeightDecay::L2(l) => gi += l * pi,
                    WeightDecay::None => {}
                }
                m[j] = rule.beta1 * m[j] + (1.0 - rule.beta1) * gi;
                v[j] = rule.beta2 * v[j] + (1.0 - rule.beta2) * (gi * gi);
                p[i] = pi - step_size * (m[j] / (v[j].sqrt() * r + rule.eps));
            }
            let sm = m.iter().fold(0f32, |a, x| a.max(x.abs()));
            let sv = v.iter().fold(0f32, |a, &x| a.max(x));
            scales[b] = sm;
            scales[nb + b] = sv;
            for (j, i) in range.enumerate() {
                codes[i] = if sm == 0.0 {
                    127
                } else {
                    nearest(&SIGNED_MAP, m[j] / sm)
                };
                codes[n + i] = if sv == 0.0 {
                    0
                } else {
                    nearest(&UNSIGNED_MAP, v[j] / sv)
                };
            }
        }
    }
}

#[test]
fn matches_transcription_for_100_steps() {
    let n = 600;
    let mut rng = seeded(12);
    let p0: Vec<f32> = mixed(&mut rng, n, 2.0, 0.0);
    let gs: Vec<Vec<f32>> = (0..100).map(|_| mixed(&mut rng, n, 1.0, 0.0)).collect();
    for wd in [
        WeightDecay::None,
        WeightDecay::L2(0.01),
        WeightDecay::Decoupled(0.05),
    ] {
        let rule = Adam8 {
            weight_decay: wd,
            ..Adam8::new(1e-2)
        };
        let (mut wp, mut wc, mut ws) = (
            p0.clone(),
            vec![0u8; 2 * n],
            vec![0f32; Adam8::scales_len(n)],
        );
        transcription(&rule, &mut wp, &gs, &mut wc, &mut ws);
        for b in backends() {
            let (mut p, mut c, mut s) = (
                p0.clone(),
                vec![0u8; 2 * n],
                vec![0f32; Adam8::scales_len(n)],
            );
            for (k, g) in gs.iter().enumerate() {
                rule.step_with(&exec(b), k as u64 + 1, &mut p, g, &mut c, &mut s)
                    .unwrap();
            }
            assert_same(&format!("{wd:?} on {b}, params"), &p, &wp);
            assert_eq!(c, wc, "{wd:?} on {b}, codes");
            assert_same(&format!("{wd:?} on {b}, scales"), &s, &ws);
        }
    }
}

/// On `f(p) = ½‖p − target‖²`, 8-bit Adam converges like f32 Adam: both reduce the loss by more
/// than 100× in 400 steps, and their final iterates agree to a small fraction of the distance
/// travelled (the quantised moments change the path, not the destination).
#[test]
fn converges_like_f32_adam() {
    let n = 1000;
    let mut rng = seeded(13);
    let target: Vec<f32> = mixed(&mut rng, n, 1.0, 0.0);
    let loss = |p: &[f32]| {
        p.iter()
            .zip(&target)
            .map(|(a, b)| 0.5 * (a - b) * (a - b))
            .sum::<f32>()
    };
    let grad = |p: &[f32]| {
        p.iter()
            .zip(&target)
            .map(|(a, b)| a - b)
            .collect::<Vec<f32>>()
    };
    let (mut p8, mut p) = (vec![0f32; n], vec![0f32; n]);
    let l0 = loss(&p);
    let (mut codes, mut scales) = (vec![0u8; 2 * n], vec![0f32; Adam8::scales_len(n)]);
    let mut st = vec![0f32; 2 * n];
    for t in 1..=400 {
        let (g8, g) = (grad(&p8), grad(&p));
        Adam8::new(0.02)
            .step(t, &mut p8, &g8, &mut codes, &mut scales)
            .unwrap();
        Adam::new(0.02f32).step(t, &mut p, &g, &mut st).unwrap();
    }
    let (l8, l) = (loss(&p8), loss(&p));
    println!("loss: start {l0:e}, f32 Adam {l:e}, 8-bit Adam {l8:e}");
    assert!(
        l < l0 / 100.0 && l8 < l0 / 100.0,
        "start {l0}, f32 {l}, 8-bit {l8}"
    );
    let gap = p8
        .iter()
        .zip(&p)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let travel = target.iter().map(|x| x.abs()).fold(0f32, f32::max);
    println!("max |p8 − p| = {gap:e}, max travel {travel:e}");
    assert!(gap < 0.05 * travel, "8-bit Adam ended {gap} from f32 Adam");
}

#[test]
fn rejected_calls_write_nothing() {
    let n = 300;
    let mut rng = seeded(14);
    let p0: Vec<f32> = mixed(&mut rng, n, 2.0, 0.0);
    let g: Vec<f32> = mixed(&mut rng, n, 2.0, 0.0);
    let c0: Vec<u8> = (0..2 * n).map(|i| i as u8).collect();
    let s0: Vec<f32> = vec![0.5; Adam8::scales_len(n)];
    let check = |rule: Adam8,
                 step: u64,
                 glen: usize,
                 clen: usize,
                 slen: usize,
                 want: &dyn Fn(&Error) -> bool| {
        let (mut p, mut c, mut s) = (p0.clone(), c0[..clen].to_vec(), s0[..slen].to_vec());
        let e = rule
            .step_with(&Exec::active(), step, &mut p, &g[..glen], &mut c, &mut s)
            .unwrap_err();
        assert!(want(&e), "{e:?}");
        assert_same("params", &p, &p0);
        assert_eq!(c, &c0[..clen]);
        assert_same("scales", &s, &s0[..slen]);
    };
    let good = Adam8::new(1e-3);
    let (cl, sl) = (2 * n, Adam8::scales_len(n));
    let hyper = |e: &Error| matches!(e, Error::InvalidHyperParameter { .. });
    check(Adam8 { lr: -1.0, ..good }, 1, n, cl, sl, &hyper);
    check(Adam8 { beta1: 1.0, ..good }, 1, n, cl, sl, &hyper);
    check(
        Adam8 {
            beta2: f32::NAN,
            ..good
        },
        1,
        n,
        cl,
        sl,
        &hyper,
    );
    check(Adam8 { eps: 0.0, ..good }, 1, n, cl, sl, &hyper);
    check(
        Adam8 {
            weight_decay: WeightDecay::L2(-1.0),
            ..good
        },
        1,
        n,
        cl,
        sl,
        &hyper,
    );
    check(good, 0, n, cl, sl, &|e| {
        matches!(e, Error::InvalidStep { step: 0 })
    });
    check(good, 1, n - 1, cl, sl, &|e| {
        matches!(
            e,
            Error::LengthMismatch {
                buffer: "grads",
                ..
            }
        )
    });
    check(good, 1, n, cl - 1, sl, &|e| {
        matches!(
            e,
            Error::LengthMismatch {
                buffer: "codes",
                ..
            }
        )
    });
    check(good, 1, n, cl, sl - 1, &|e| {
        matches!(
            e,
            Error::LengthMismatch {
                buffer: "scales",
                ..
            }
        )
    });
    assert_eq!(Adam8::state_bytes(n), 2 * n + 4 * 2 * 2);
    let _ = Adam::new(1e-3f32).state_len(n);
}

/// The 2-bit linear grid, by hand: after step 1 from the zero state, `m = (1 − β1)·g` and
/// `v = (1 − β2)·g²`; with `g = (4, 2, 1, −4, −1.5, 0)` the block scales are `0.4` and
/// `0.016` (in f32), `m / sm = (1, 0.5, 0.25, −1, −0.375, 0)` rounds (ties away from 0) to the codes of
/// `(1, 1, 0, −1, 0, 0)` (`k + 1`: 2, 2, 1, 0, 1, 1) and `v / sv = (1, 0.25, 0.0625, 1, 0.140625,
/// 0)` times 3 rounds to `(3, 1, 0, 3, 0, 0)`. The parameter update is f32 Adam's (same bits as
/// the dynamic map: only the stored state differs). Bits outside 2..=8 are rejected, naming the
/// field, before anything is written.
#[test]
fn linear_two_bit_grid_by_hand() {
    let g = [4.0f32, 2.0, 1.0, -4.0, -1.5, 0.0];
    let n = g.len();
    let coarse = Adam8 {
        quantizer: Quantizer::Linear { bits: 2 },
        ..Adam8::new(1e-2)
    };
    let (mut p, mut codes, mut scales) = (vec![1.0f32; n], vec![0u8; 2 * n], vec![0f32; 2]);
    coarse.step(1, &mut p, &g, &mut codes, &mut scales).unwrap();
    assert_eq!(&codes[..n], &[2, 2, 1, 0, 1, 1]);
    assert_eq!(&codes[n..], &[3, 1, 0, 3, 0, 0]);
    // The scales are the f32 moments of the largest |g| = 4: (1 − β1)·4 and (1 − β2)·16 in f32.
    assert_eq!(
        scales,
        [(1.0 - 0.9f32) * 4.0, (1.0 - 0.999f32) * (4.0 * 4.0)]
    );
    let (mut p8, mut c8, mut s8) = (vec![1.0f32; n], vec![0u8; 2 * n], vec![0f32; 2]);
    Adam8::new(1e-2)
        .step(1, &mut p8, &g, &mut c8, &mut s8)
        .unwrap();
    assert_eq!(p, p8, "step 1 moves the parameters as the dynamic map does");
    for bits in [0u8, 1, 9] {
        let bad = Adam8 {
            quantizer: Quantizer::Linear { bits },
            ..Adam8::new(1e-2)
        };
        let before = p.clone();
        let e = bad
            .step(2, &mut p, &g, &mut codes, &mut scales)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidHyperParameter {
                    name: "quantizer",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(p, before);
    }
}
