//! bf16 parameters with a bf16 compensation term (`KahanBf16`): the split's error bound, every
//! backend against the scalar split bit for bit inside the rules, the rules over `KahanBf16` equal
//! "widen, f32 rule, split", and a long run of tiny updates that round-to-nearest bf16 loses
//! entirely and the compensated pair keeps (Schedule-Free SGD too).

use crate::common;

use common::{backends, exec, mixed, specials, OFFSETS};
use descent_kernels::random::seeded;
use descent_kernels::{Adam, Gd, KahanBf16, Rule, Sgd, WeightDecay};
use half::bf16;

/// |pair − v| ≤ 2⁻¹⁷·|v| + 2⁻¹³³ for finite |v| < 2¹¹¹; ±Inf and NaN kept.
#[test]
fn split_error_bound() {
    let mut rng = seeded(1);
    let mut values: Vec<f32> = mixed(&mut rng, 200_000, 30.0, 0.0);
    values.extend(mixed::<f32>(&mut rng, 20_000, 1e-30, 0.0));
    values.extend(specials::<f32>());
    values.extend([1.0, -1.0, 3.0e38, -2.0e33, 1.0e-40, f32::MIN_POSITIVE]);
    for v in values {
        let k = KahanBf16::from_f32(v);
        let back = k.to_f32();
        if v.is_nan() {
            assert!(back.is_nan());
        } else if v.is_infinite() {
            assert_eq!(back, v);
        } else if v.abs() < 2f32.powi(111) {
            let err = (back as f64 - v as f64).abs();
            let bound = 2f64.powi(-17) * (v as f64).abs() + 2f64.powi(-133);
            assert!(err <= bound, "{v:e}: {back:e}, error {err:e} > {bound:e}");
            // hi is v to bf16 precision (nearest or the neighbour).
            let hi = k.hi.to_f32() as f64;
            assert!((hi - v as f64).abs() <= 2f64.powi(-8) * (v as f64).abs() + 2f64.powi(-133));
        }
    }
}

/// Adam and SGD with parameters as `KahanBf16`, state bf16: every backend gives the scalar bits,
/// and the scalar result is "widen (hi + lo), run the f32 rule, split".
#[test]
fn rules_over_kahan_pairs_match_the_reference_composition() {
    let mut rng = seeded(2);
    let adam = Adam::adamw(1e-2f32, 0.1);
    let sgd = Sgd {
        weight_decay: WeightDecay::L2(0.01),
        ..Sgd::new(0.05f32, 0.9)
    };
    for len in [0usize, 1, 7, 8, 9, 31, 64, 100, 257] {
        for off in OFFSETS {
            let p0: Vec<KahanBf16> = mixed::<f32>(&mut rng, off + len, 3.0, 0.03)
                .into_iter()
                .map(KahanBf16::from_f32)
                .collect();
            let g: Vec<f32> = mixed(&mut rng, off + len, 1.0, 0.03);
            let call =
                |name: &str, e: &descent_kernels::Exec, p: &mut [KahanBf16], st: &mut [bf16]| {
                    let g = &g[off..];
                    if name == "adam" {
                        adam.step_with(e, 3, p, g, st).unwrap()
                    } else {
                        sgd.step_with(e, 3, p, g, &mut st[..len]).unwrap()
                    }
                };
            let run = |b, name: &str| {
                let mut p = p0.clone();
                let mut st = vec![bf16::from_f32(0.01); 2 * len];
                call(name, &exec(b), &mut p[off..], &mut st);
                (p, st)
            };
            for name in ["adam", "sgd"] {
                let (wp, ws) = run(descent_kernels::Backend::Scalar, name);
                // The reference composition on the scalar backend, element by element.
                let mut wide: Vec<f32> = p0[off..].iter().map(|k| k.to_f32()).collect();
                let mut st32 = vec![bf16::from_f32(0.01).to_f32(); 2 * len];
                if name == "adam" {
                    adam.step(3, &mut wide, &g[off..], &mut st32).unwrap();
                } else {
                    sgd.step(3, &mut wide, &g[off..], &mut st32[..len]).unwrap();
                }
                for (i, (&w, k)) in wide.iter().zip(&wp[off..]).enumerate() {
                    let want = KahanBf16::from_f32(w);
                    let same = (want.hi.to_bits() == k.hi.to_bits()
                        && want.lo.to_bits() == k.lo.to_bits())
                        || (w.is_nan() && k.to_f32().is_nan());
                    assert!(
                        same,
                        "{name} len {len} off {off} element {i}: {k:?} vs {want:?} of {w:e}"
                    );
                }
                for b in backends() {
                    let (gp, gs) = run(b, name);
                    let bits = |p: &[KahanBf16]| -> Vec<u32> {
                        p.iter()
                            .map(|k| {
                                if k.to_f32().is_nan() {
                                    u32::MAX
                                } else {
                                    k.hi.to_bits() as u32 | (k.lo.to_bits() as u32) << 16
                                }
                            })
                            .collect()
                    };
                    assert_eq!(
                        bits(&gp),
                        bits(&wp),
                        "{name} on {b}, len {len}, offset {off}"
                    );
                    let sb = |s: &[bf16]| -> Vec<u16> {
                        s.iter()
                            .map(|x| if x.is_nan() { u16::MAX } else { x.to_bits() })
                            .collect()
                    };
                    assert_eq!(sb(&gs), sb(&ws), "{name} state on {b}");
                }
            }
        }
    }
}

/// 5000 steps of `p ← p − lr·g` with `lr·g = 1e-4` from `p = 1`: each step is a twentieth of
/// bf16's half-unit at 1 (2⁻⁸ = 3.9e-3), so round-to-nearest bf16 never moves; f32 reaches 0.5.
/// The compensated pair must stay within the sum of its split's error bound over the steps,
/// `Σ 2⁻¹⁷·|p_t| ≤ 5000·2⁻¹⁷ ≈ 0.038` (each step's arithmetic is f32's, so the pair's only extra
/// error is the split's), of the f32 run, which moved by 0.5: the updates are kept, where
/// round-to-nearest bf16 keeps none. (The errors of a constant update do not cancel like random
/// ones: the run measures about 3e-3, a twelfth of the worst case.)
#[test]
fn tiny_updates_accumulate_where_round_to_nearest_stalls() {
    let (n, steps) = (64, 5000u64);
    let gd = Gd::new(1e-4f32);
    let g = vec![1.0f32; n];
    let mut p32 = vec![1.0f32; n];
    let mut pk = vec![KahanBf16::from_f32(1.0); n];
    let mut p16 = vec![bf16::ONE; n];
    for b in backends() {
        p32.fill(1.0);
        pk.fill(KahanBf16::from_f32(1.0));
        p16.fill(bf16::ONE);
        let e = exec(b);
        for t in 1..=steps {
            gd.step_with(&e, t, &mut p32, &g, &mut [] as &mut [f32])
                .unwrap();
            gd.step_with(&e, t, &mut pk, &g, &mut [] as &mut [f32])
                .unwrap();
            gd.step_with(&e, t, &mut p16, &g, &mut [] as &mut [f32])
                .unwrap();
        }
        let (f, k, h) = (p32[0] as f64, pk[0].to_f32() as f64, p16[0].to_f64());
        assert!((f - 0.5).abs() < 1e-3, "f32 keeps the updates: {f}");
        assert_eq!(
            h, 1.0,
            "round-to-nearest bf16 stalls (the negative control)"
        );
        let worst = steps as f64 * 2f64.powi(-17);
        assert!(
            (k - f).abs() <= worst,
            "Kahan pair {k} vs f32 {f}: beyond the worst case {worst}"
        );
        println!(
            "{b}: f32 {f}, Kahan bf16 {k} (|diff| {:e}), bf16 RNE {h}",
            (k - f).abs()
        );
    }
}

/// Schedule-Free SGD over Kahan-compensated bf16 parameters (state f32), the same long run of
/// tiny steps: the pair follows the f32 run within the worst case of one split error
/// (2⁻¹⁷·|y|, |y| ≤ 1) per stored `y`, carried with factor `1 − c ≤ 1` by the next step's
/// interpolation (and `z`, f32 and independent of `y` here, is the f32 run's), on every backend;
/// round-to-nearest bf16 stalls.
#[test]
fn schedule_free_over_kahan_pairs_keeps_tiny_updates() {
    use descent_kernels::{ScheduleFreeSgd, TrainView};
    let (n, steps) = (64, 5000u64);
    let rule = ScheduleFreeSgd::new(1e-4f32);
    let g = vec![1.0f32; n];
    for b in backends() {
        let e = exec(b);
        let (mut p32, mut s32) = (vec![1.0f32; n], vec![0.0f32; n]);
        let (mut pk, mut sk) = (vec![KahanBf16::from_f32(1.0); n], vec![0.0f32; n]);
        let (mut p16, mut s16) = (vec![bf16::ONE; n], vec![0.0f32; n]);
        {
            let mut v32 = TrainView::new(rule, &mut p32, &mut s32).unwrap();
            let mut vk = TrainView::<f32, _, KahanBf16, f32>::new(rule, &mut pk, &mut sk).unwrap();
            let mut v16 = TrainView::<f32, _, bf16, f32>::new(rule, &mut p16, &mut s16).unwrap();
            for _ in 0..steps {
                v32.step_with(&e, &g).unwrap();
                vk.step_with(&e, &g).unwrap();
                v16.step_with(&e, &g).unwrap();
            }
        }
        let (f, k, h) = (p32[0] as f64, pk[0].to_f32() as f64, p16[0].to_f64());
        assert!(
            f < 0.9,
            "f32 keeps the updates (z moves by 0.5, y part-way): y = {f}"
        );
        assert_eq!(
            h, 1.0,
            "round-to-nearest bf16 stalls (the negative control)"
        );
        let worst = steps as f64 * 2f64.powi(-17);
        assert!(
            (k - f).abs() <= worst,
            "{b}: Kahan pair {k} vs f32 {f}: beyond the worst case {worst}"
        );
    }
}
