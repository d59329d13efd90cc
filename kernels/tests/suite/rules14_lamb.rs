//! LAMB: every backend against the scalar reference (lengths 0..=257, offsets, special values,
//! 16-bit storage with stochastic rounding, long tensors where a lane-order reduction would
//! differ), an independent f64 transcription of the paper's Algorithm 2 (with optax's
//! conventions) replayed for 100 steps, and typed errors that write nothing.

use crate::common;

use common::*;
use descent_kernels::random::{fill_normal, seeded};
use descent_kernels::{vector, Backend, Element, Error, Exec, Lamb, Rounding, Rule, Storage};
use half::{bf16, f16};
use proptest::prelude::*;

fn t<T: Element>(x: f64) -> T {
    T::from_f64_round(x)
}

fn lamb<T: Element>(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64) -> Lamb<T> {
    Lamb {
        lr: t(lr),
        beta1: t(b1),
        beta2: t(b2),
        eps: t(eps),
        weight_decay: t(wd),
    }
}

fn oracle<T: Element + Storage<T>>(h: (f64, f64, f64, f64, f64), step: u64, seed: u64) {
    let rule = lamb::<T>(h.0, h.1, h.2, h.3, h.4);
    // Specials make whole tensors NaN (documented), so also run without them.
    check_rule::<T, _>("lamb", seed, 0.0, rule, step);
    check_rule::<T, _>("lamb", seed ^ 1, 0.04, rule, step);
    check_rule::<T, _>(
        "lamb (no decay)",
        seed ^ 2,
        0.0,
        rule.without_weight_decay(),
        step,
    );
}

proptest! {
    #![proptest_config(common::proptest_config(6))]
    #[test]
    fn lamb_bit_exact_on_every_backend(
        lr in 0.0..0.1f64, b1 in 0.0..0.99f64, b2 in 0.5..0.9999f64, eps in 1e-8..1e-2f64,
        wd in 0.0..0.1f64, step in 1u64..2000, seed in any::<u64>(),
    ) {
        oracle::<f32>((lr, b1, b2, eps, wd), step, seed);
        oracle::<f64>((lr, b1, b2, eps, wd), step, seed);
    }
}

/// Long tensors (the SIMD main loops run many blocks): a norm accumulated in lane order would
/// differ between backends in the last bits; the rule's must not, nor the update.
#[test]
fn long_tensors_bit_exact() {
    let simd = simd_backends();
    let mut rng = seeded(99);
    for n in [1000usize, 4099, 65_537] {
        let p0: Vec<f32> = (0..n)
            .map(|i| {
                t::<f32>(((i * 7919) % 1013) as f64 * 1e-3 - 0.5) * 1.7f32.powi((i % 9) as i32)
            })
            .collect();
        let g: Vec<f32> = mixed::<f32>(&mut rng, n, 3.0, 0.0);
        let s0: Vec<f32> = mixed::<f32>(&mut rng, 2 * n, 1.0, 0.0)
            .iter()
            .map(|x| x.abs())
            .collect();
        let rule = Lamb::with_weight_decay(1e-2f32, 0.01);
        let run = |b: Backend| {
            let (mut p, mut s) = (p0.clone(), s0.clone());
            for step in 1..=3 {
                rule.step_with(&exec(b), step, &mut p, &g, &mut s).unwrap();
            }
            (p, s)
        };
        let (wp, ws) = run(Backend::Scalar);
        assert!(wp.iter().all(|x| x.is_finite()));
        assert!(
            wp.iter().zip(&p0).any(|(a, b)| a != b),
            "the step moved nothing"
        );
        for &b in &simd {
            let (gp, gs) = run(b);
            assert_same(&format!("lamb n={n} on {b}, params"), &gp, &wp);
            assert_same(&format!("lamb n={n} on {b}, state"), &gs, &ws);
        }
    }
}

/// One step as documented, element by element in `T`: moments, `r`, both squared norms in `f64`
/// with element `i`'s square added to partial sum `i mod 8` in index order and the partial sums
/// combined pairwise, the ratio, and `p ← p − (lr·φ)·r`. Independent of the kernel's grouping.
fn documented_step<T: Element>(rule: &Lamb<T>, t: u64, p: &mut [T], s: &mut [T], g: &[T]) {
    let n = p.len();
    let (m, v) = s.split_at_mut(n);
    let one = T::one();
    let bc = |beta: T| T::from_f64_round(1.0 - libm::pow(beta.widen(), t as f64));
    let (bc1, bc2) = (bc(rule.beta1), bc(rule.beta2));
    for i in 0..n {
        m[i] = rule.beta1 * m[i] + (one - rule.beta1) * g[i];
        v[i] = rule.beta2 * v[i] + (one - rule.beta2) * (g[i] * g[i]);
    }
    let dir = |p: T, m: T, v: T| {
        let r = (m / bc1) / ((v / bc2).sqrt_ieee() + rule.eps);
        if rule.weight_decay != T::zero() {
            r + rule.weight_decay * p
        } else {
            r
        }
    };
    let (mut p2, mut r2) = ([0.0f64; 8], [0.0f64; 8]);
    for i in 0..n {
        let (a, b) = (p[i].widen(), dir(p[i], m[i], v[i]).widen());
        p2[i % 8] += a * a;
        r2[i % 8] += b * b;
    }
    let sum = |a: [f64; 8]| ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    let (pn, rn) = (sum(p2).sqrt(), sum(r2).sqrt());
    let ratio = if pn == 0.0 || rn == 0.0 { 1.0 } else { pn / rn };
    let scale = T::from_f64_round(rule.lr.widen() * ratio);
    for i in 0..n {
        p[i] = p[i] - scale * dir(p[i], m[i], v[i]);
    }
}

/// The norms are summed in the documented order on every backend: three steps on tensors of
/// every length class (below one group, whole groups, groups plus vectors plus a tail) equal
/// [`documented_step`] bit for bit, in `f32` and in `f64`. In `f64` the ratio is applied
/// unrounded, so a different summation order (e.g. `i mod 4`, tried) shows in the parameters;
/// in `f32` the rounding of `lr·φ` hides most such differences.
#[test]
fn norms_in_the_documented_order() {
    fn run<T: Element + Storage<T>>(seed: u64) {
        let mut rng = seeded(seed);
        for n in [5usize, 8, 16, 29, 1000, 4099] {
            let p0: Vec<T> = (0..n)
                .map(|i| t::<T>(((i * 7919) % 1013) as f64 * 1e-3 - 0.5))
                .collect();
            let g: Vec<T> = mixed::<T>(&mut rng, n, 3.0, 0.0);
            for rule in [
                Lamb::with_weight_decay(t::<T>(1e-2), t::<T>(0.01)),
                Lamb::new(t::<T>(1e-2)),
            ] {
                let (mut wp, mut ws) = (p0.clone(), vec![T::zero(); 2 * n]);
                for step in 1..=3 {
                    documented_step(&rule, step, &mut wp, &mut ws, &g);
                }
                for b in backends() {
                    let (mut p, mut s) = (p0.clone(), vec![T::zero(); 2 * n]);
                    for step in 1..=3 {
                        rule.step_with(&exec(b), step, &mut p, &g, &mut s).unwrap();
                    }
                    assert_same(&format!("lamb n={n} on {b}, params"), &p, &wp);
                    assert_same(&format!("lamb n={n} on {b}, state"), &s, &ws);
                }
            }
        }
    }
    run::<f32>(7);
    run::<f64>(8);
}

/// bf16 / f16 parameters and state under stochastic rounding: bit-identical across backends, and
/// with `lr = 0` the parameters are left exactly as they were (the passes that rewrite unchanged
/// buffers round representable values to themselves).
#[test]
fn sixteen_bit_storage_bit_exact_and_untouched_at_lr_zero() {
    fn run16<S: Storage<f32> + PartialEq + core::fmt::Debug>(from: fn(f32) -> S, to: fn(S) -> f32) {
        let simd = simd_backends();
        let mut rng = seeded(5);
        for n in [0usize, 1, 7, 33, 257, 1031] {
            let p0: Vec<S> = mixed::<f32>(&mut rng, n, 2.0, 0.0)
                .into_iter()
                .map(from)
                .collect();
            let g: Vec<f32> = mixed::<f32>(&mut rng, n, 2.0, 0.0);
            let s0: Vec<S> = vec![from(0.0); 2 * n];
            for lr in [0.0f32, 1e-2] {
                let rule = Lamb::with_weight_decay(lr, 0.01);
                let run = |b: Backend| {
                    let (mut p, mut s) = (p0.clone(), s0.clone());
                    for step in 1..=3u64 {
                        let e = exec(b).with_rounding(Rounding::stochastic(11, step));
                        rule.step_with(&e, step, &mut p, &g, &mut s).unwrap();
                    }
                    (p, s)
                };
                let (wp, ws) = run(Backend::Scalar);
                if lr == 0.0 {
                    assert_eq!(wp, p0, "lr = 0 changed 16-bit parameters (n = {n})");
                    if n > 0 {
                        assert!(ws.iter().any(|x| to(*x) != 0.0), "state never written");
                    }
                }
                for &b in &simd {
                    let (gp, gs) = run(b);
                    let f = |v: &[S]| v.iter().map(|x| to(*x)).collect::<Vec<f32>>();
                    assert_same(&format!("n={n} lr={lr} on {b}, params"), &f(&gp), &f(&wp));
                    assert_same(&format!("n={n} lr={lr} on {b}, state"), &f(&gs), &f(&ws));
                }
            }
        }
    }
    run16::<bf16>(bf16::from_f32, bf16::to_f32);
    run16::<f16>(f16::from_f32, f16::to_f32);
}

// ------------------------------------------------------------------ paper-literal f64 replay

const STEPS: usize = 100;
const N: usize = 37;

/// Algorithm 2 of You et al. 2020, line by line, with bias correction, `φ(z) = z`, decoupled
/// decay inside `r` and ratio 1 for a zero norm; `trust` = false drops the ratio (plain AdamW-like
/// direction), used to show the comparison can fail.
fn lamb_literal(
    p0: &[f64],
    gs: &[Vec<f64>],
    (lr, b1, b2, eps, wd): (f64, f64, f64, f64, f64),
    trust: bool,
) -> Vec<f64> {
    let mut x = p0.to_vec();
    let mut m = vec![0.0; x.len()];
    let mut v = vec![0.0; x.len()];
    for (k, g) in gs.iter().enumerate() {
        let t = (k + 1) as i32;
        let mut r = vec![0.0; x.len()];
        for i in 0..x.len() {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = m[i] / (1.0 - b1.powi(t));
            let vh = v[i] / (1.0 - b2.powi(t));
            r[i] = mh / (vh.sqrt() + eps) + wd * x[i];
        }
        let xn = x.iter().map(|a| a * a).sum::<f64>().sqrt();
        let rn = r.iter().map(|a| a * a).sum::<f64>().sqrt();
        let ratio = if !trust || xn == 0.0 || rn == 0.0 {
            1.0
        } else {
            xn / rn
        };
        for i in 0..x.len() {
            x[i] -= lr * ratio * r[i];
        }
    }
    x
}

fn close(got: &[f64], want: &[f64], tol: f64) -> Result<(), String> {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if (g - w).abs() > tol * (1.0 + w.abs()) || g.is_nan() != w.is_nan() {
            return Err(format!("element {i}: kernel {g:e}, transcription {w:e}"));
        }
    }
    Ok(())
}

fn inputs(seed: u64) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut rng = seeded(seed);
    let mut p = vec![0.0; N];
    fill_normal(&mut rng, &mut p, 0.0, 2.0);
    let gs = (0..STEPS)
        .map(|_| {
            let mut g = vec![0.0; N];
            fill_normal(&mut rng, &mut g, 0.1, 1.0);
            g
        })
        .collect();
    (p, gs)
}

fn replay<T: Element + Storage<T>>(
    b: Backend,
    p0: &[f64],
    gs: &[Vec<f64>],
    r: Lamb<T>,
) -> Vec<f64> {
    let mut p: Vec<T> = p0.iter().map(|&x| t(x)).collect();
    let mut s = vec![T::zero(); r.state_len(N)];
    for (k, g) in gs.iter().enumerate() {
        let g: Vec<T> = g.iter().map(|&x| t(x)).collect();
        r.step_with(&exec(b), k as u64 + 1, &mut p, &g, &mut s)
            .unwrap();
    }
    p.iter().map(|x| x.widen()).collect()
}

#[test]
fn lamb_matches_transcription() {
    for (seed, h) in [
        (40, (0.01, 0.9, 0.999, 1e-6, 0.0)),
        (41, (0.02, 0.8, 0.99, 1e-3, 0.01)),
        (42, (0.005, 0.0, 0.9, 1e-8, 0.1)),
    ] {
        let (p0, gs) = inputs(seed);
        let want = lamb_literal(&p0, &gs, h, true);
        // The trust ratio matters here: without it the result is far away.
        let no_trust = lamb_literal(&p0, &gs, h, false);
        assert!(close(&no_trust, &want, 1e-3).is_err());
        for b in backends() {
            let got = replay(b, &p0, &gs, lamb::<f64>(h.0, h.1, h.2, h.3, h.4));
            close(&got, &want, 1e-12).unwrap_or_else(|e| panic!("lamb f64 {h:?} on {b}: {e}"));
            let got = replay(b, &p0, &gs, lamb::<f32>(h.0, h.1, h.2, h.3, h.4));
            close(&got, &want, 2e-4).unwrap_or_else(|e| panic!("lamb f32 {h:?} on {b}: {e}"));
        }
    }
}

/// The comparison rejects near-miss formulas: another ε, no weight decay inside `r` (and, in
/// `lamb_matches_transcription`, no trust ratio).
#[test]
fn transcription_comparison_rejects_wrong_formulas() {
    let (p0, gs) = inputs(43);
    let h = (0.01, 0.9, 0.99, 1e-3, 0.05);
    let got = replay(
        Backend::Scalar,
        &p0,
        &gs,
        lamb::<f64>(h.0, h.1, h.2, h.3, h.4),
    );
    // ε changed (as ε inside the root moves it), no weight decay inside r.
    for wrong in [(h.0, h.1, h.2, 2e-3, h.4), (h.0, h.1, h.2, h.3, 0.0)] {
        let w = lamb_literal(&p0, &gs, wrong, true);
        assert!(close(&got, &w, 1e-12).is_err(), "{wrong:?} not rejected");
    }
}

/// `p = 0` makes ‖p‖ = 0: the ratio is 1, so the step is the plain direction `lr·r`.
#[test]
fn zero_parameters_take_ratio_one() {
    let n = 21;
    let mut p = vec![0.0f64; n];
    let g: Vec<f64> = (0..n).map(|i| i as f64 - 10.0).collect();
    let mut s = vec![0.0; 2 * n];
    let rule = Lamb::new(0.1f64);
    rule.step(1, &mut p, &g, &mut s).unwrap();
    for i in 0..n {
        // Step 1: m̂ = g, v̂ = g², r = g / (|g| + ε).
        let r = g[i] / (g[i].abs() + 1e-6);
        assert_eq!(p[i], -0.1 * r, "element {i}");
    }
    // All-zero gradient: r = 0, ‖r‖ = 0: nothing moves, nothing is NaN.
    let mut p = vec![1.5f64; n];
    let mut s = vec![0.0; 2 * n];
    rule.step(1, &mut p, &vec![0.0; n], &mut s).unwrap();
    assert!(p.iter().all(|&x| x == 1.5));
}

/// A NaN gradient poisons the whole tensor (documented), and `all_finite` detects it.
#[test]
fn nan_gradient_poisons_the_tensor() {
    let n = 9;
    let mut p = vec![1.0f32; n];
    let mut g = vec![0.5f32; n];
    g[3] = f32::NAN;
    assert!(!vector::all_finite(&g));
    let mut s = vec![0.0; 2 * n];
    Lamb::new(0.1f32).step(1, &mut p, &g, &mut s).unwrap();
    assert!(p.iter().all(|x| x.is_nan()));
}

// ------------------------------------------------------------------------------ typed errors

#[test]
fn rejected_calls_write_nothing() {
    let n = 19;
    let mut rng = seeded(3);
    let p0: Vec<f32> = mixed::<f32>(&mut rng, n, 3.0, 0.0);
    let g: Vec<f32> = mixed::<f32>(&mut rng, n, 3.0, 0.0);
    let s0: Vec<f32> = mixed::<f32>(&mut rng, 2 * n, 3.0, 0.0);
    let good = Lamb::new(1e-2f32);
    let check = |rule: Lamb<f32>, step: u64, glen: usize, slen: usize, want: fn(&Error) -> bool| {
        let (mut p, mut s) = (p0.clone(), s0[..slen].to_vec());
        let e = rule
            .step_with(&Exec::active(), step, &mut p, &g[..glen], &mut s)
            .unwrap_err();
        assert!(want(&e), "unexpected error {e:?}");
        assert_same("params", &p, &p0);
        assert_same("state", &s, &s0[..slen]);
    };
    let hyper = |e: &Error| matches!(e, Error::InvalidHyperParameter { .. });
    let name = |want: &'static str| move |e: &Error| matches!(e, Error::InvalidHyperParameter { name, .. } if *name == want);
    check(Lamb { lr: -1.0, ..good }, 1, n, 2 * n, hyper);
    check(
        Lamb {
            lr: f32::NAN,
            ..good
        },
        1,
        n,
        2 * n,
        hyper,
    );
    check(Lamb { beta1: 1.0, ..good }, 1, n, 2 * n, hyper);
    check(
        Lamb {
            beta2: -0.1,
            ..good
        },
        1,
        n,
        2 * n,
        hyper,
    );
    check(Lamb { eps: 0.0, ..good }, 1, n, 2 * n, hyper);
    check(
        Lamb {
            weight_decay: f32::INFINITY,
            ..good
        },
        1,
        n,
        2 * n,
        hyper,
    );
    assert!(name("weight_decay")(
        &Lamb {
            weight_decay: -1.0,
            ..good
        }
        .validate()
        .unwrap_err()
    ));
    check(good, 0, n, 2 * n, |e| {
        matches!(e, Error::InvalidStep { step: 0 })
    });
    check(good, 1, n - 1, 2 * n, |e| {
        matches!(e, Error::LengthMismatch { .. })
    });
    check(good, 1, n, 2 * n - 1, |e| {
        matches!(e, Error::LengthMismatch { .. })
    });
    check(good, 1, n, n, |e| matches!(e, Error::LengthMismatch { .. }));
    assert_eq!(Lamb::<f32>::state_len_for(n), good.state_len(n));
}
