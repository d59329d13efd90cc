//! Every kernel on every available backend against the scalar reference: all lengths 0..=257,
//! sub-slices at offsets 0..8, guard elements, special values (±0, subnormals, ±Inf, NaN) mixed
//! into every buffer, random hyper-parameters. Budgets: see `common::reduction_budget`.

use crate::common;

use common::*;
use descent_kernels::random::seeded;
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, vector, Adam, Element, Exec, Gd, Lion, Rule,
    Sgd, SignDescent, Signum, Storage, WeightDecay,
};
use proptest::prelude::*;

/// Share of special values in the inputs.
const SPECIAL_RATE: f64 = 0.04;

fn weight_decay<T: Element>(kind: u8, lambda: f64) -> WeightDecay<T> {
    match kind % 3 {
        0 => WeightDecay::None,
        1 => WeightDecay::L2(T::from_f64_round(lambda)),
        _ => WeightDecay::Decoupled(T::from_f64_round(lambda)),
    }
}

fn t<T: Element>(x: f64) -> T {
    T::from_f64_round(x)
}

/// Runs one generic check for both element types.
macro_rules! both {
    ($f:ident ( $($arg:expr),* )) => {{
        $f::<f32>($($arg),*);
        $f::<f64>($($arg),*);
    }};
}

fn gd<T: Element + Storage<T>>(lr: f64, wd: (u8, f64), seed: u64) {
    let rule = Gd {
        lr: t::<T>(lr),
        weight_decay: weight_decay(wd.0, wd.1),
    };
    check_rule::<T, _>("gd", seed, SPECIAL_RATE, rule, 1);
}

#[allow(clippy::too_many_arguments)]
fn sgd<T: Element + Storage<T>>(
    lr: f64,
    mu: f64,
    damp: f64,
    nesterov: bool,
    wd: (u8, f64),
    step: u64,
    seed: u64,
) {
    let rule = Sgd {
        lr: t::<T>(lr),
        momentum: t(mu),
        dampening: if nesterov { T::zero() } else { t(damp) },
        nesterov,
        weight_decay: weight_decay(wd.0, wd.1),
    };
    check_rule::<T, _>("sgd", seed, SPECIAL_RATE, rule, step);
}

fn adam<T: Element + Storage<T>>(
    h: (f64, f64, f64, f64),
    wd: (u8, f64),
    step: u64,
    amsgrad: bool,
    seed: u64,
) {
    let rule = Adam {
        lr: t::<T>(h.0),
        beta1: t(h.1),
        beta2: t(h.2),
        eps: t(h.3),
        weight_decay: weight_decay(wd.0, wd.1),
        amsgrad,
    };
    let name = if amsgrad { "amsgrad" } else { "adam" };
    check_rule::<T, _>(name, seed, SPECIAL_RATE, rule, step);
}

fn sign_rules<T: Element + Storage<T>>(lr: f64, b1: f64, b2: f64, wd: (u8, f64), seed: u64) {
    let wd = weight_decay::<T>(wd.0, wd.1);
    let sd = SignDescent {
        lr: t::<T>(lr),
        weight_decay: wd,
    };
    check_rule::<T, _>("sign descent", seed, SPECIAL_RATE, sd, 1);
    let signum = Signum {
        lr: t::<T>(lr),
        beta: t(b1),
        weight_decay: wd,
    };
    check_rule::<T, _>("signum", seed ^ 1, SPECIAL_RATE, signum, 1);
    let lion = Lion {
        lr: t::<T>(lr),
        beta1: t(b1),
        beta2: t(b2),
        weight_decay: wd,
    };
    check_rule::<T, _>("lion", seed ^ 2, SPECIAL_RATE, lion, 1);
}

fn averaging<T: Element>(count: u64, decay: f64, seed: u64) {
    check_bit_exact::<T, 1, 1>("running_mean", seed, SPECIAL_RATE, |b, [a], [p]| {
        running_mean_with(&exec(b), a, p, count).unwrap()
    });
    check_bit_exact::<T, 1, 1>("ema", seed ^ 1, SPECIAL_RATE, |b, [a], [p]| {
        ema_with(&exec(b), a, p, t::<T>(decay)).unwrap()
    });
    check_bit_exact::<T, 1, 0>("replica_mean k=1", seed ^ 2, SPECIAL_RATE, |b, [r0], []| {
        replica_mean_with(&exec(b), &mut [r0]).unwrap()
    });
    check_bit_exact::<T, 3, 0>(
        "replica_mean k=3",
        seed ^ 3,
        SPECIAL_RATE,
        |b, [r0, r1, r2], []| replica_mean_with(&exec(b), &mut [r0, r1, r2]).unwrap(),
    );
    check_bit_exact::<T, 4, 0>(
        "replica_mean k=4",
        seed ^ 4,
        SPECIAL_RATE,
        |b, [r0, r1, r2, r3], []| replica_mean_with(&exec(b), &mut [r0, r1, r2, r3]).unwrap(),
    );
}

fn elementwise<T: Element>(alpha: f64, seed: u64) {
    let a = t::<T>(alpha);
    check_bit_exact::<T, 1, 1>("axpy", seed, SPECIAL_RATE, |b, [y], [x]| {
        vector::axpy_with(&exec(b), a, x, y).unwrap()
    });
    check_bit_exact::<T, 1, 0>("scale", seed ^ 1, SPECIAL_RATE, |b, [x], []| {
        vector::scale_with(&exec(b), a, x)
    });
    check_bit_exact::<T, 1, 2>("add", seed ^ 2, SPECIAL_RATE, |b, [o], [x, y]| {
        vector::add_with(&exec(b), o, x, y).unwrap()
    });
    check_bit_exact::<T, 1, 2>("sub", seed ^ 3, SPECIAL_RATE, |b, [o], [x, y]| {
        vector::sub_with(&exec(b), o, x, y).unwrap()
    });
    check_bit_exact::<T, 1, 2>("mul", seed ^ 4, SPECIAL_RATE, |b, [o], [x, y]| {
        vector::mul_with(&exec(b), o, x, y).unwrap()
    });
    check_bit_exact::<T, 1, 2>("div", seed ^ 5, SPECIAL_RATE, |b, [o], [x, y]| {
        vector::div_with(&exec(b), o, x, y).unwrap()
    });
}

/// The scalar reference of the elementwise operations is the plain IEEE expression.
fn elementwise_reference_is_ieee<T: Element>(alpha: f64, seed: u64) {
    let mut rng = seeded(seed);
    let a = t::<T>(alpha);
    for len in [0usize, 1, 7, 64, 257] {
        let x: Vec<T> = mixed(&mut rng, len, 4.0, SPECIAL_RATE);
        let y: Vec<T> = mixed(&mut rng, len, 4.0, SPECIAL_RATE);
        let mut out = y.clone();
        vector::axpy_with(&Exec::scalar(), a, &x, &mut out).unwrap();
        let want: Vec<T> = x.iter().zip(&y).map(|(&x, &y)| a * x + y).collect();
        assert_same("axpy reference", &out, &want);
        vector::div_with(&Exec::scalar(), &mut out, &x, &y).unwrap();
        let want: Vec<T> = x.iter().zip(&y).map(|(&x, &y)| x / y).collect();
        assert_same("div reference", &out, &want);
    }
}

/// Reductions against an exact (double-double) reference within the budget, on every backend.
fn reductions<T: Element>(seed: u64, special_rate: f64) {
    let mut rng = seeded(seed);
    for b in backends() {
        for len in lengths() {
            for off in [0usize, 3, 5] {
                // No huge finite values here: their products overflow in T but not in the
                // reference, which would test overflow rather than rounding.
                let mut x: Vec<T> = mixed(&mut rng, off + len, 4.0, 0.0);
                let mut y: Vec<T> = mixed(&mut rng, off + len, 4.0, 0.0);
                if special_rate > 0.0 {
                    for v in x.iter_mut().chain(y.iter_mut()) {
                        if descent_kernels::random::uniform01(&mut rng) < special_rate {
                            let sp = [
                                T::zero(),
                                -T::zero(),
                                T::infinity(),
                                T::neg_infinity(),
                                T::nan(),
                                T::min_positive_value(),
                            ];
                            *v = sp[(descent_kernels::random::uniform01(&mut rng) * 6.0) as usize];
                        }
                    }
                }
                let (x, y) = (&x[off..], &y[off..]);
                let ctx = format!("{b}, len {len}, offset {off}");
                let xf: Vec<f64> = x.iter().map(|v| v.widen()).collect();
                let yf: Vec<f64> = y.iter().map(|v| v.widen()).collect();

                let dot = vector::dot_with(&exec(b), x, y).unwrap().widen();
                let exact = sum_dd(xf.iter().zip(&yf).map(|(&a, &c)| two_prod(a, c)));
                let abs: f64 = xf.iter().zip(&yf).map(|(a, c)| (a * c).abs()).sum();
                check_reduction("dot", &ctx, dot, exact, reduction_budget::<T>(b, len, abs));

                let sum = vector::sum_with(&exec(b), x).widen();
                let exact = sum_dd(xf.iter().map(|&a| (a, 0.0)));
                let abs: f64 = xf.iter().map(|a| a.abs()).sum();
                check_reduction("sum", &ctx, sum, exact, reduction_budget::<T>(b, len, abs));

                let ss = vector::sum_squares_with(&exec(b), x).widen();
                let exact = sum_dd(xf.iter().map(|&a| two_prod(a, a)));
                check_reduction(
                    "sum_squares",
                    &ctx,
                    ss,
                    exact,
                    reduction_budget::<T>(b, len, exact.abs()),
                );

                let max = vector::max_abs_with(&exec(b), x);
                let want = x.iter().fold(T::zero(), |m, v| {
                    if v.is_nan() || m.is_nan() {
                        T::nan()
                    } else {
                        m.max(v.abs())
                    }
                });
                assert!(same(max, want), "max_abs {ctx}: {max:?} vs {want:?}");

                let fin = vector::all_finite_with(&exec(b), x);
                assert_eq!(fin, x.iter().all(|v| v.is_finite()), "all_finite {ctx}");
            }
        }
    }
}

#[track_caller]
fn check_reduction(what: &str, ctx: &str, got: f64, exact: f64, budget: f64) {
    if exact.is_nan() {
        assert!(
            got.is_nan(),
            "{what} {ctx}: {got} but the exact result is NaN"
        );
    } else if exact.is_infinite() {
        assert_eq!(got, exact, "{what} {ctx}");
    } else {
        assert!(
            (got - exact).abs() <= budget,
            "{what} {ctx}: {got:e} vs exact {exact:e}, error {:e} > budget {budget:e}",
            (got - exact).abs()
        );
    }
}

/// norm2 on vectors whose squares overflow or underflow the type, against the exact norm.
fn norm2<T: Element>(seed: u64) {
    let mut rng = seeded(seed);
    let max_exp = T::max_value().widen().log2() as i32;
    let min_exp = (T::min_positive_value() * T::epsilon()).widen().log2() as i32;
    for b in backends() {
        for len in lengths() {
            // Magnitudes across the whole exponent range, including where x² over/underflows
            // (|x| <= 2^scale and n <= 257, so the norm itself stays below 2^(scale + 5)).
            for scale_exp in [
                0,
                max_exp - 6,
                max_exp / 2 + 2,
                min_exp / 2 - 2,
                min_exp + 30,
            ] {
                let scale = 2f64.powi(scale_exp);
                let x: Vec<T> = mixed::<T>(&mut rng, len, 1.0, 0.0)
                    .into_iter()
                    .map(|v| T::from_f64_round(v.widen() * scale))
                    .collect();
                let got = vector::norm2_with(&exec(b), &x).widen();
                // Exact reference: scale into range in f64 (exact power of two), double-double sum.
                // (Two power-of-two factors, each representable, applied exactly.)
                let (s1, s2) = (
                    2f64.powi(-scale_exp / 2),
                    2f64.powi(-scale_exp + scale_exp / 2),
                );
                let ss = sum_dd(
                    x.iter()
                        .map(|v| two_prod(v.widen() * s1 * s2, v.widen() * s1 * s2)),
                );
                let exact = ss.sqrt() / s1 / s2;
                let u = unit_roundoff::<T>();
                let rel = (len as f64 / b.lanes_f32() as f64 + 8.0) * u + 2.0 * u;
                // Elements that are themselves subnormal carry representation error of up to
                // half the smallest subnormal; allow that absolute slack per element.
                let sub = (T::min_positive_value() * T::epsilon()).widen();
                let budget = rel * exact + len as f64 * sub;
                assert!(
                    got.is_finite() && (got - exact).abs() <= budget,
                    "norm2 on {b}, len {len}, scale 2^{scale_exp}: {got:e} vs {exact:e}"
                );
            }
        }
        let mut inf = vec![T::one(); 9];
        inf[4] = T::neg_infinity();
        assert_eq!(vector::norm2_with(&exec(b), &inf), T::infinity());
        inf[5] = T::nan();
        assert!(vector::norm2_with(&exec(b), &inf).is_nan());
    }
}

fn wd() -> impl Strategy<Value = (u8, f64)> {
    (0u8..3, 0.0..0.2f64)
}

proptest! {
    #![proptest_config(common::proptest_config(24))]

    #[test]
    fn gd_matches_reference(lr in 0.0..2.0f64, wd in wd(), seed in any::<u64>()) {
        both!(gd(lr, wd, seed));
    }

    #[test]
    fn sgd_matches_reference(
        lr in 0.0..2.0f64, mu in 0.0..0.999f64, damp in 0.0..=1.0f64, nesterov in any::<bool>(),
        wd in wd(), step in prop_oneof![Just(1u64), 2u64..1000], seed in any::<u64>(),
    ) {
        let mu = if nesterov && mu == 0.0 { 0.5 } else { mu };
        both!(sgd(lr, mu, damp, nesterov, wd, step, seed));
    }

    #[test]
    fn adam_matches_reference(
        lr in 0.0..0.5f64, b1 in 0.0..0.999f64, b2 in 0.0..0.9999f64, eps in 1e-12..1e-2f64,
        wd in wd(), step in 1u64..100_000, amsgrad in any::<bool>(), seed in any::<u64>(),
    ) {
        both!(adam((lr, b1, b2, eps), wd, step, amsgrad, seed));
    }

    #[test]
    fn sign_rules_match_reference(
        lr in 0.0..1.0f64, b1 in 0.0..0.999f64, b2 in 0.0..0.999f64, wd in wd(), seed in any::<u64>(),
    ) {
        both!(sign_rules(lr, b1, b2, wd, seed));
    }

    #[test]
    fn averaging_matches_reference(count in 0u64..10_000, decay in 0.0..=1.0f64, seed in any::<u64>()) {
        both!(averaging(count, decay, seed));
    }

    #[test]
    fn elementwise_match_reference(alpha in -4.0..4.0f64, seed in any::<u64>()) {
        both!(elementwise(alpha, seed));
        both!(elementwise_reference_is_ieee(alpha, seed));
    }
}

proptest! {
    #![proptest_config({ let mut c = common::proptest_config(24); c.cases = c.cases.div_ceil(4); c })]

    #[test]
    fn reductions_within_budget(seed in any::<u64>(), specials in prop_oneof![Just(0.0), Just(0.02)]) {
        both!(reductions(seed, specials));
    }

    #[test]
    fn norm2_has_no_overflow_or_underflow(seed in any::<u64>()) {
        both!(norm2(seed));
    }
}

/// Sign descent computes `lr·sign(g)` without a multiply; the result must equal the multiply
/// bit for bit (NaN: any NaN) for every special value of `p` and `g`, and `lr` = 0, tiny, 1, huge.
#[test]
fn sign_descent_equals_lr_times_sign_bitwise() {
    sign_bitwise::<f32>();
    sign_bitwise::<f64>();
}

fn sign_bitwise<T: Element + Storage<T>>() {
    fn torch_sign<T: Element>(x: T) -> T {
        if x.is_nan() {
            x
        } else if x > T::zero() {
            T::one()
        } else if x < T::zero() {
            -T::one()
        } else {
            T::zero()
        }
    }
    let specials = specials::<T>();
    let (ps, gs): (Vec<T>, Vec<T>) = specials
        .iter()
        .flat_map(|&p| specials.iter().map(move |&g| (p, g)))
        .unzip();
    for lr in [-0.0, 0.0, 1e-42, 1.0, 3.0e38].map(T::from_f64_round) {
        let want: Vec<T> = ps
            .iter()
            .zip(&gs)
            // A `-0` learning rate acts as `+0` (documented on the sign rules).
            .map(|(&p, &g)| p - (lr + T::zero()) * torch_sign(g))
            .collect();
        for b in backends() {
            let mut p = ps.clone();
            SignDescent::new(lr)
                .step_with(&exec(b), 1, &mut p, &gs, &mut [] as &mut [T])
                .unwrap();
            assert_same(&format!("sign descent lr {} on {b}", lr.widen()), &p, &want);
        }
    }
}
