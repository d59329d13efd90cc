//! Gradient clipping against a naive (exactly summed) f64 computation on every backend, torch's
//! factor bit for bit, and NaN/Inf gradients under each non-finite policy.

use crate::common;

use common::{backends, mixed, same, sum_dd, two_prod, unit_roundoff};
use descent_kernels::random::seeded;
use descent_kernels::train::{
    clip_grad_norm, clip_grad_norm_with, clip_grad_value, clip_grad_value_with, global_norm_with,
    NonFinite,
};
use descent_kernels::{Backend, Element, Error, Exec};

/// The exact 2-norm of all tensors together: scaled by a power of two into range, double-double
/// sum of exact squares.
fn exact_norm<T: Element>(grads: &[Vec<T>]) -> f64 {
    let amax = grads
        .iter()
        .flatten()
        .fold(0.0f64, |m, x| m.max(x.widen().abs()));
    if amax == 0.0 {
        return 0.0;
    }
    let e = amax.log2().floor() as i32;
    let (s1, s2) = (2f64.powi(-e / 2), 2f64.powi(-e + e / 2));
    let ss = sum_dd(grads.iter().flatten().map(|x| {
        let y = x.widen() * s1 * s2;
        two_prod(y, y)
    }));
    ss.sqrt() / s1 / s2
}

/// Relative error budget of the global norm: the crate's `norm2` budget for the longest tensor
/// (`((n/L + 8)·u + 2u)`), plus one rounding of the f64 combination to `T`.
fn norm_budget<T: Element>(b: Backend, grads: &[Vec<T>]) -> f64 {
    let n = grads.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let u = unit_roundoff::<T>();
    (n / b.lanes_f32() as f64 + 8.0) * u + 3.0 * u
}

/// Tensors of assorted lengths (some empty) with magnitudes near `scale`.
fn tensors<T: Element>(seed: u64, scale: f64) -> Vec<Vec<T>> {
    let mut rng = seeded(seed);
    [0usize, 1, 3, 17, 64, 129, 250]
        .iter()
        .map(|&n| mixed::<T>(&mut rng, n, scale, 0.0))
        .collect()
}

fn check_norm_clipping<T: Element>() {
    for b in backends() {
        for (seed, scale) in [(1u64, 1.0), (2, 1e-3), (3, 40.0), (4, 1e-20), (5, 1e20)] {
            let grads: Vec<Vec<T>> = tensors(seed, scale);
            let exact = exact_norm(&grads);
            let budget = norm_budget(b, &grads);
            let total = global_norm_with::<T, _>(&Exec::on(b).unwrap(), &grads).widen();
            assert!(
                (total - exact).abs() <= budget * exact,
                "{b}: global norm {total:e} vs exact {exact:e}"
            );
            // The norms are combined in one pass, rescaling as a larger one arrives: any order
            // gives the same norm within the budget.
            let mut reversed = grads.clone();
            reversed.reverse();
            let total_rev = global_norm_with::<T, _>(&Exec::on(b).unwrap(), &reversed).widen();
            assert!(
                (total_rev - exact).abs() <= budget * exact,
                "{b}: reversed order"
            );
            // max_norm below, at and above the norm.
            for ratio in [0.01, 0.5, 0.999, 1.0, 2.0] {
                let max_norm = T::from_f64_round(exact * ratio);
                let mut g = grads.clone();
                let r =
                    clip_grad_norm_with(&Exec::on(b).unwrap(), &mut g, max_norm, NonFinite::Skip)
                        .unwrap();
                assert!(!r.skipped && r.finite());
                assert_eq!(
                    r.total_norm.widen(),
                    total,
                    "{b}: reported norm is pre-clipping"
                );
                // torch's factor, in T: max_norm / (total + 1e-6), clamped to 1.
                let coef = max_norm / (r.total_norm + T::from_f64_round(1e-6));
                let want = if coef < T::one() { coef } else { T::one() };
                assert_eq!(r.factor.bits(), want.bits(), "{b}: factor");
                // Against the naive f64 factor.
                let naive = (max_norm.widen() / (exact + 1e-6)).min(1.0);
                assert!(
                    (r.factor.widen() - naive).abs() <= 2.0 * budget * naive + unit_roundoff::<T>(),
                    "{b}: factor {:e} vs naive {naive:e}",
                    r.factor.widen()
                );
                // Each element is its gradient times the factor (one IEEE multiply), or untouched.
                for (got, orig) in g.iter().zip(&grads) {
                    for (x, y) in got.iter().zip(orig) {
                        assert_eq!(x.bits(), (*y * r.factor).bits(), "{b}: scaled element");
                    }
                }
                if ratio <= 0.999 {
                    assert!(r.clipped(), "{b}: above max_norm: clipped");
                }
                if ratio >= 2.0 {
                    // torch's 1e-6 dominates a norm far below it: such gradients are scaled
                    // even under the bound, as torch scales them.
                    assert_eq!(r.clipped(), exact < 1e-6, "{b}: norm {exact:e}, bound 2x");
                }
                if !r.clipped() {
                    assert_eq!(g, grads, "{b}: within bounds: untouched");
                } else {
                    // The clipped norm is max_norm·total/(total + 1e-6), at most max_norm.
                    let after = exact_norm(&g);
                    let want = max_norm.widen() * exact / (exact + 1e-6);
                    assert!(
                        (after - want).abs() <= 3.0 * budget * want,
                        "{b}: clipped norm {after:e} vs {want:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn norm_clipping_f32() {
    check_norm_clipping::<f32>();
}

#[test]
fn norm_clipping_f64() {
    check_norm_clipping::<f64>();
}

#[test]
fn hand_example_and_slice_forms() {
    // ‖(3, 4, 12)‖ = 13: clipping to 6.5 halves everything (up to torch's 1e-6).
    let (mut a, mut b) = ([3.0f32, 4.0], [12.0f32]);
    let mut grads: [&mut [f32]; 2] = [&mut a, &mut b];
    let r = clip_grad_norm(&mut grads, 6.5, NonFinite::Propagate).unwrap();
    assert_eq!(r.total_norm, 13.0);
    assert_eq!(r.factor, 6.5f32 / (13.0f32 + 1e-6f32));
    assert!((r.factor - 0.5).abs() < 1e-7);
    assert_eq!(a, [3.0 * r.factor, 4.0 * r.factor]);
    assert_eq!(b, [12.0 * r.factor]);
    // Vec<Vec<f64>> works as well; norms beyond f64's square range do not overflow.
    let mut big = vec![vec![1e300f64, 1e300], vec![1e300]];
    let r = clip_grad_norm(&mut big, 1.0, NonFinite::Skip).unwrap();
    let want = 3f64.sqrt() * 1e300;
    assert!((r.total_norm - want).abs() <= 4.0 * f64::EPSILON * want);
    assert!((exact_norm(&big) - 1.0).abs() < 1e-12);
    // No tensors at all: norm 0, nothing to do.
    let mut none: [Vec<f32>; 0] = [];
    let r = clip_grad_norm(&mut none, 1.0, NonFinite::Skip).unwrap();
    assert_eq!((r.total_norm, r.factor, r.skipped), (0.0, 1.0, false));
}

/// Gradients with one poisoned element in the middle tensor.
fn poisoned(bad: f32) -> Vec<Vec<f32>> {
    let mut g: Vec<Vec<f32>> = tensors(9, 2.0);
    g[4][10] = bad;
    g
}

#[test]
fn nan_gradients_by_norm() {
    for b in backends() {
        // Skip: reported, nothing touched.
        let orig = poisoned(f32::NAN);
        let mut g = orig.clone();
        let r = clip_grad_norm_with(&Exec::on(b).unwrap(), &mut g, 1.0, NonFinite::Skip).unwrap();
        assert!(r.skipped && !r.finite() && r.total_norm.is_nan() && !r.clipped());
        assert!(g
            .iter()
            .flatten()
            .zip(orig.iter().flatten())
            .all(|(x, y)| same(*x, *y)));
        // Propagate (torch, error_if_nonfinite = False): factor NaN, every gradient NaN.
        let r =
            clip_grad_norm_with(&Exec::on(b).unwrap(), &mut g, 1.0, NonFinite::Propagate).unwrap();
        assert!(!r.skipped && r.total_norm.is_nan() && r.factor.is_nan());
        assert!(g.iter().flatten().all(|x| x.is_nan()), "{b}");
    }
}

#[test]
fn inf_gradients_by_norm() {
    for b in backends() {
        for bad in [f32::INFINITY, f32::NEG_INFINITY] {
            let orig = poisoned(bad);
            let mut g = orig.clone();
            let r =
                clip_grad_norm_with(&Exec::on(b).unwrap(), &mut g, 1.0, NonFinite::Skip).unwrap();
            assert!(r.skipped && r.total_norm == f32::INFINITY);
            assert_eq!(g, orig);
            // Propagate: factor 1/(Inf + 1e-6) = 0; finite elements become ±0, the Inf NaN.
            let r = clip_grad_norm_with(&Exec::on(b).unwrap(), &mut g, 1.0, NonFinite::Propagate)
                .unwrap();
            assert!(!r.skipped && r.total_norm == f32::INFINITY && r.factor == 0.0);
            for (i, t) in g.iter().enumerate() {
                for (j, x) in t.iter().enumerate() {
                    if (i, j) == (4, 10) {
                        assert!(x.is_nan());
                    } else {
                        assert_eq!(*x, 0.0, "{b}");
                    }
                }
            }
        }
    }
}

#[test]
fn value_clipping() {
    for b in backends() {
        let grads: Vec<Vec<f64>> = tensors(11, 3.0);
        let mut g = grads.clone();
        let r = clip_grad_value_with(&Exec::on(b).unwrap(), &mut g, 1.25, NonFinite::Skip).unwrap();
        let mut changed = 0;
        for (got, orig) in g.iter().flatten().zip(grads.iter().flatten()) {
            let want = orig.clamp(-1.25, 1.25);
            changed += usize::from(want != *orig);
            assert_eq!(got.to_bits(), want.to_bits());
        }
        assert!(changed > 0);
        assert_eq!((r.clipped, r.nonfinite, r.skipped), (changed, false, false));
        // A bound above every element changes nothing.
        let r = clip_grad_value_with(
            &Exec::on(b).unwrap(),
            &mut g,
            f64::INFINITY,
            NonFinite::Skip,
        )
        .unwrap();
        assert_eq!(r.clipped, 0);
    }
}

#[test]
fn non_finite_gradients_by_value() {
    for b in backends() {
        let mut orig = poisoned(f32::NAN);
        orig[6][0] = f32::NEG_INFINITY;
        let mut g = orig.clone();
        let r = clip_grad_value_with(&Exec::on(b).unwrap(), &mut g, 0.5, NonFinite::Skip).unwrap();
        assert!(r.skipped && r.nonfinite && r.clipped == 0);
        assert!(g
            .iter()
            .flatten()
            .zip(orig.iter().flatten())
            .all(|(x, y)| same(*x, *y)));
        // Propagate (torch's clamp): NaN stays NaN, -Inf becomes -0.5, the rest is clamped.
        let r =
            clip_grad_value_with(&Exec::on(b).unwrap(), &mut g, 0.5, NonFinite::Propagate).unwrap();
        assert!(!r.skipped && r.nonfinite);
        assert!(g[4][10].is_nan());
        assert_eq!(g[6][0], -0.5);
        let finite_clipped = orig
            .iter()
            .flatten()
            .filter(|x| x.is_finite() && x.abs() > 0.5)
            .count();
        assert_eq!(r.clipped, finite_clipped + 1);
        assert!(g.iter().flatten().all(|x| x.is_nan() || x.abs() <= 0.5));
    }
}

#[test]
fn bad_bounds_are_typed_errors_and_touch_nothing() {
    let orig = tensors::<f32>(13, 5.0);
    for bad in [-1.0f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut g = orig.clone();
        assert_eq!(
            clip_grad_norm(&mut g, bad, NonFinite::Propagate),
            Err(Error::InvalidHyperParameter {
                name: "max_norm",
                requirement: "must be finite and non-negative"
            })
        );
        assert_eq!(g, orig);
    }
    for bad in [-1e-30f32, f32::NAN, f32::NEG_INFINITY] {
        let mut g = orig.clone();
        assert!(matches!(
            clip_grad_value(&mut g, bad, NonFinite::Propagate),
            Err(Error::InvalidHyperParameter { name: "clip", .. })
        ));
        assert_eq!(g, orig);
    }
    // max_norm = 0 is allowed (torch too): every gradient becomes zero.
    let mut g = orig.clone();
    let r = clip_grad_norm(&mut g, 0.0, NonFinite::Skip).unwrap();
    assert_eq!(r.factor, 0.0);
    assert!(g.iter().flatten().all(|x| *x == 0.0));
}
