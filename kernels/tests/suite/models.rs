//! Model passes: the matrix multiply against a naive triple loop on every backend, each layer's
//! backward pass against central finite differences (f64), SIMD against scalar, shape errors,
//! and an end-to-end MLP training run.
//!
//! Budgets: matrix products `|C − exact| <= (k + 4)·u·(Σ_p |A_ip||B_pj| + |C0_ij|)`; gradient
//! checks `|fd − analytic| <= 1e-6·(1 + |analytic|)` with step `h = 1e-6` in f64 (truncation
//! ~h²·|L'''| and cancellation ~u·|L|/h are both below 1e-8 for these O(1) problems).

use crate::common;

use common::{backends, mixed, unit_roundoff};
use descent_kernels::models::{
    least_squares_on, Activation, ActivationGrad, Conv2d, Dense, MatMul, Mlp, PatchCnn, Pool,
    Sensing, SoftmaxCrossEntropy,
};
use descent_kernels::random::{fill_normal, seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::{Adam, Backend, Element, Error, Rule};
use proptest::prelude::*;

// ------------------------------------------------------------------ matrix multiply

/// op(A)(i,p) and op(B)(p,j) under the spec's transposes.
fn naive_gemm(spec: MatMul, a: &[f64], b: &[f64], c0: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let MatMul { m, n, k, .. } = spec;
    let at = |i: usize, p: usize| {
        if spec.trans_a {
            a[p * m + i]
        } else {
            a[i * k + p]
        }
    };
    let bt = |p: usize, j: usize| {
        if spec.trans_b {
            b[j * k + p]
        } else {
            b[p * n + j]
        }
    };
    let mut c = vec![0.0; m * n];
    let mut abs = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let base = if spec.accumulate { c0[i * n + j] } else { 0.0 };
            let mut s = base;
            let mut t = base.abs();
            for p in 0..k {
                s += at(i, p) * bt(p, j);
                t += (at(i, p) * bt(p, j)).abs();
            }
            c[i * n + j] = s;
            abs[i * n + j] = t;
        }
    }
    (c, abs)
}

fn check_gemm<T: Element>(b: Backend, spec: MatMul, rng: &mut Xoshiro256PlusPlus) {
    let a: Vec<T> = mixed(rng, spec.m * spec.k, 1.0, 0.0);
    let bm: Vec<T> = mixed(rng, spec.k * spec.n, 1.0, 0.0);
    let c0: Vec<T> = mixed(rng, spec.m * spec.n, 1.0, 0.0);
    let mut c = c0.clone();
    spec.run_on(b, &a, &bm, &mut c).unwrap();
    let w = |v: &[T]| v.iter().map(|x| x.widen()).collect::<Vec<f64>>();
    let (exact, abs) = naive_gemm(spec, &w(&a), &w(&bm), &w(&c0));
    let u = unit_roundoff::<T>();
    for (idx, ((got, want), t)) in c.iter().zip(&exact).zip(&abs).enumerate() {
        let budget = (spec.k as f64 + 4.0) * u * t;
        assert!(
            (got.widen() - want).abs() <= budget,
            "{spec:?} on {b}: C[{idx}] = {got:?}, exact {want}, budget {budget:e}"
        );
    }
}

/// Every dimension 1..=67 for each of m, n, k (the others drawn from edge-heavy sizes), all four
/// transpose combinations, overwrite and accumulate, every backend, f32 and f64.
#[test]
fn gemm_matches_naive_for_every_dimension() {
    let mut rng = seeded(11);
    let others = [1usize, 5, 6, 9, 17, 33];
    for b in backends() {
        for d in 1..=67usize {
            for (t, &o) in others.iter().enumerate() {
                let o2 = others[(t + d) % others.len()];
                for (m, n, k) in [(d, o, o2), (o, d, o2), (o, o2, d)] {
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        let spec = MatMul {
                            m,
                            n,
                            k,
                            trans_a: ta,
                            trans_b: tb,
                            accumulate: (d + t) % 2 == 0,
                        };
                        check_gemm::<f32>(b, spec, &mut rng);
                        check_gemm::<f64>(b, spec, &mut rng);
                    }
                }
            }
        }
        // Degenerate shapes: k = 0 zeroes C (or leaves it), empty outputs do nothing.
        let mut c = vec![3.0f32; 6];
        MatMul::new(2, 3, 0).run_on(b, &[], &[], &mut c).unwrap();
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![3.0f32; 6];
        MatMul {
            accumulate: true,
            ..MatMul::new(2, 3, 0)
        }
        .run_on(b, &[], &[], &mut c)
        .unwrap();
        assert_eq!(c, vec![3.0; 6]);
        MatMul::new(0, 3, 4)
            .run_on::<f32>(b, &[], &[0.0; 12], &mut [])
            .unwrap();
    }
}

/// Large enough to cross the packed panel's k-blocking and several tile columns.
#[test]
fn gemm_matches_naive_across_k_blocks() {
    let mut rng = seeded(12);
    for b in backends() {
        for (m, n, k) in [(13, 37, 700), (64, 64, 300), (7, 100, 2100), (3, 88, 700)] {
            for (ta, tb) in [(false, false), (true, true)] {
                let spec = MatMul {
                    m,
                    n,
                    k,
                    trans_a: ta,
                    trans_b: tb,
                    accumulate: ta,
                };
                check_gemm::<f32>(b, spec, &mut rng);
                check_gemm::<f64>(b, spec, &mut rng);
            }
        }
    }
}

/// A product with fewer rows than a register tile reads `B` in place (whole tiles, then narrower
/// tiles of whole vectors) where a larger one packs it: the module documentation promises the
/// same multiply-adds in the same order, so each row must have the same bits as that row of a
/// product with 9 more rows (every tile is at most 8 rows). Not for `A·Bᵀ`, whose few-row form is
/// a documented different order (row dot products).
#[test]
fn gemm_few_rows_give_the_bits_of_many_rows() {
    let mut rng = seeded(15);
    let extra = 9;
    for b in backends() {
        for (m, k) in [(1usize, 1usize), (1, 33), (3, 700), (7, 90)] {
            for n in (1..=100).step_by(3) {
                for (ta, tb) in [(false, false), (true, false), (true, true)] {
                    let big = m + extra;
                    let a_big: Vec<f32> = mixed(&mut rng, big * k, 1.0, 0.0);
                    let bm: Vec<f32> = mixed(&mut rng, k * n, 1.0, 0.0);
                    // The first m rows of op(A): the first m rows of A, or (Aᵀ stored k × big)
                    // the first m entries of each stored row.
                    let a_small: Vec<f32> = if ta {
                        a_big
                            .chunks(big)
                            .flat_map(|row| row[..m].to_vec())
                            .collect()
                    } else {
                        a_big[..m * k].to_vec()
                    };
                    let spec = |m| MatMul {
                        trans_a: ta,
                        trans_b: tb,
                        ..MatMul::new(m, n, k)
                    };
                    let mut c_small = vec![0.0f32; m * n];
                    let mut c_big = vec![0.0f32; big * n];
                    spec(m).run_on(b, &a_small, &bm, &mut c_small).unwrap();
                    spec(big).run_on(b, &a_big, &bm, &mut c_big).unwrap();
                    common::assert_same(&format!("{b}: {:?}", spec(m)), &c_small, &c_big[..m * n]);
                }
            }
        }
    }
}

#[test]
fn gemm_is_reproducible_on_each_backend() {
    let mut rng = seeded(13);
    let spec = MatMul::new(29, 31, 257);
    let a: Vec<f32> = mixed(&mut rng, 29 * 257, 1.0, 0.0);
    let bm: Vec<f32> = mixed(&mut rng, 257 * 31, 1.0, 0.0);
    for b in backends() {
        let mut c1 = vec![0.0f32; 29 * 31];
        let mut c2 = vec![1.0f32; 29 * 31];
        spec.run_on(b, &a, &bm, &mut c1).unwrap();
        spec.run_on(b, &a, &bm, &mut c2).unwrap();
        assert_eq!(c1, c2, "{b}");
    }
}

// ------------------------------------------------------------------ finite differences

/// Central differences of `loss` at every coordinate of `theta` against `grad`.
#[track_caller]
fn fd_check(what: &str, theta: &[f64], grad: &[f64], mut loss: impl FnMut(&[f64]) -> f64) {
    assert_eq!(theta.len(), grad.len());
    let mut t = theta.to_vec();
    for i in 0..t.len() {
        let h = 1e-6;
        let x0 = t[i];
        t[i] = x0 + h;
        let up = loss(&t);
        t[i] = x0 - h;
        let down = loss(&t);
        t[i] = x0;
        let fd = (up - down) / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() <= 1e-6 * (1.0 + grad[i].abs()),
            "{what}: coordinate {i}: finite difference {fd:e}, analytic {:e}",
            grad[i]
        );
    }
}

fn normals(rng: &mut Xoshiro256PlusPlus, n: usize) -> Vec<f64> {
    let mut v = vec![0.0; n];
    fill_normal(rng, &mut v, 0.0, 1.0);
    v
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(common::proptest_config(32))]

    #[test]
    fn dense_backward_matches_finite_differences(batch in 1usize..6, i in 1usize..8, o in 1usize..8, seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let (x, w, bias, c) = (normals(&mut rng, batch * i), normals(&mut rng, i * o), normals(&mut rng, o), normals(&mut rng, batch * o));
        let layer = Dense::new(batch, i, o);
        let loss = |x: &[f64], w: &[f64], bias: &[f64]| {
            let mut y = vec![0.0; batch * o];
            layer.forward(x, w, bias, &mut y).unwrap();
            dot(&y, &c)
        };
        let (mut dx, mut dw, mut db) = (vec![0.0; batch * i], vec![0.0; i * o], vec![0.0; o]);
        layer.backward(&x, &w, &c, Some(&mut dx), &mut dw, &mut db).unwrap();
        fd_check("dense dx", &x, &dx, |t| loss(t, &w, &bias));
        fd_check("dense dw", &w, &dw, |t| loss(&x, t, &bias));
        fd_check("dense db", &bias, &db, |t| loss(&x, &w, t));
    }

    #[test]
    fn activations_backward_match_finite_differences(n in 1usize..40, b in -1.0..1.0f64, seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let c = normals(&mut rng, n);
        // Inputs at least 1e-3 away from every kink (0 for ReLU, ±b for the soft threshold).
        let x: Vec<f64> = normals(&mut rng, n).into_iter().map(|v| {
            let mut v = v;
            while v.abs() < 1e-3 || (v + b).abs() < 1e-3 || (v - b).abs() < 1e-3 { v += 0.01; }
            v
        }).collect();
        let coeffs = [0.3, -0.7, 0.45];
        for act in [Activation::Relu, Activation::Tanh, Activation::SoftThreshold { bias: b }, Activation::Poly2 { coeffs }] {
            let forward = |a: Activation<f64>, x: &[f64]| {
                let mut y = vec![0.0; n];
                a.forward(x, &mut y).unwrap();
                dot(&y, &c)
            };
            let mut dx = vec![0.0; n];
            let pg = act.backward(&x, &c, &mut dx).unwrap();
            fd_check(&format!("{act:?} dx"), &x, &dx, |t| forward(act, t));
            match (act, pg) {
                (Activation::SoftThreshold { bias }, ActivationGrad::Bias(db)) => {
                    fd_check("soft threshold db", &[bias], &[db], |t| forward(Activation::SoftThreshold { bias: t[0] }, &x));
                }
                (Activation::Poly2 { coeffs }, ActivationGrad::Coeffs(dc)) => {
                    fd_check("poly2 dcoeffs", &coeffs, &dc, |t| forward(Activation::Poly2 { coeffs: [t[0], t[1], t[2]] }, &x));
                }
                (_, ActivationGrad::None) => {}
                other => panic!("unexpected parameter gradient {other:?}"),
            }
        }
    }

    #[test]
    fn softmax_cross_entropy_matches_finite_differences(batch in 1usize..6, classes in 1usize..7, weighted in any::<bool>(), seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let z: Vec<f64> = normals(&mut rng, batch * classes).iter().map(|v| 3.0 * v).collect();
        let labels: Vec<u32> = (0..batch).map(|_| (uniform01(&mut rng) * classes as f64) as u32).collect();
        let weights: Option<Vec<f64>> = weighted.then(|| (0..batch).map(|_| uniform01(&mut rng)).collect());
        let ce = SoftmaxCrossEntropy::new(batch, classes);
        let mut per = vec![0.0; batch];
        let mut dz = vec![0.0; batch * classes];
        let loss = ce.forward_backward(&z, &labels, weights.as_deref(), &mut per, Some(&mut dz)).unwrap();
        fd_check("softmax dlogits", &z, &dz, |t| {
            let mut per = vec![0.0; batch];
            ce.forward_backward(t, &labels, weights.as_deref(), &mut per, None).unwrap()
        });
        // The loss is the weighted sum of per-example losses, each −ln softmax(z)_y.
        for (i, &y) in labels.iter().enumerate() {
            let row = &z[i * classes..(i + 1) * classes];
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            prop_assert!((per[i] - (lse - row[y as usize])).abs() <= 1e-12 * (1.0 + per[i].abs()));
        }
        let w = |i: usize| weights.as_ref().map_or(1.0 / batch as f64, |w| w[i]);
        let total: f64 = per.iter().enumerate().map(|(i, l)| w(i) * l).sum();
        prop_assert!((loss - total).abs() <= 1e-12 * (1.0 + total.abs()));
    }

    #[test]
    fn mlp_backward_matches_finite_differences(batch in 1usize..5, d in 1usize..6, h in 1usize..6, classes in 1usize..4, smooth in any::<bool>(), seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let act = if smooth { Activation::Tanh } else { Activation::Poly2 { coeffs: [0.1, 0.9, 0.2] } };
        let mlp = Mlp::new(d, h, classes, act);
        let params = normals(&mut rng, mlp.param_len());
        let x = normals(&mut rng, batch * d);
        let labels: Vec<u32> = (0..batch).map(|_| (uniform01(&mut rng) * classes as f64) as u32).collect();
        let mut ws = vec![0.0; mlp.workspace_len(batch)];
        mlp.forward(batch, &params, &x, &labels, None, &mut ws).unwrap();
        let mut grads = vec![0.0; mlp.param_len()];
        mlp.backward(batch, &params, &x, &labels, &mut ws, &mut grads).unwrap();
        fd_check("mlp params", &params, &grads, |t| {
            let mut ws = vec![0.0; mlp.workspace_len(batch)];
            mlp.forward(batch, t, &x, &labels, None, &mut ws).unwrap()
        });
    }

    #[test]
    fn conv_backward_matches_finite_differences(
        batch in 1usize..3, channels in 1usize..3, height in 1usize..6, width in 1usize..8,
        filters in 1usize..4, kh in 1usize..4, kw in 1usize..4, sh in 1usize..3, sw in 1usize..4, seed in any::<u64>(),
    ) {
        prop_assume!(kh <= height && kw <= width);
        let mut rng = seeded(seed);
        let conv = Conv2d::new(batch, channels, height, width, filters, (kh, kw), (sh, sw));
        let x = normals(&mut rng, batch * channels * height * width);
        let w = normals(&mut rng, filters * conv.patch_len());
        let bias = normals(&mut rng, filters);
        let c = normals(&mut rng, batch * filters * conv.positions());
        let loss = |x: &[f64], w: &[f64], bias: &[f64]| {
            let mut z = vec![0.0; c.len()];
            let mut scratch = vec![0.0; conv.scratch_len()];
            conv.forward(x, w, bias, &mut z, &mut scratch).unwrap();
            dot(&z, &c)
        };
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; filters]);
        let mut scratch = vec![0.0; 2 * conv.scratch_len()];
        conv.backward(&x, &w, &c, Some(&mut dx), &mut dw, &mut db, &mut scratch).unwrap();
        fd_check("conv dx", &x, &dx, |t| loss(t, &w, &bias));
        fd_check("conv dw", &w, &dw, |t| loss(&x, t, &bias));
        fd_check("conv dbias", &bias, &db, |t| loss(&x, &w, t));
    }

    #[test]
    fn patch_cnn_backward_matches_finite_differences(
        batch in 1usize..4, patches in 1usize..6, d in 1usize..5, mean in any::<bool>(), tb in -0.5..0.5f64, seed in any::<u64>(),
    ) {
        let mut rng = seeded(seed);
        // The local-signal-adaptivity model: patches of d, stride d, one filter, soft threshold.
        let cnn = PatchCnn {
            conv: Conv2d::conv1d(batch, 1, patches * d, 1, d, d),
            activation: Activation::SoftThreshold { bias: tb },
            pool: if mean { Pool::Mean } else { Pool::Sum },
        };
        let x = normals(&mut rng, batch * patches * d);
        let w = normals(&mut rng, d);
        let bias = vec![0.0];
        let c = normals(&mut rng, batch);
        let run = |w: &[f64], tb: f64| -> Option<f64> {
            let cnn = PatchCnn { activation: Activation::SoftThreshold { bias: tb }, ..cnn };
            let mut ws = vec![0.0; cnn.workspace_len()];
            let mut out = vec![0.0; batch];
            cnn.forward(&x, w, &bias, &mut out, &mut ws).unwrap();
            // Skip draws where a pre-activation sits within 1e-4 of a kink (±tb).
            let pre = &ws[..batch * patches];
            if pre.iter().any(|z| (z + tb).abs() < 1e-4 || (z - tb).abs() < 1e-4) { return None; }
            Some(dot(&out, &c))
        };
        prop_assume!(run(&w, tb).is_some());
        let mut ws = vec![0.0; cnn.workspace_len()];
        let mut out = vec![0.0; batch];
        cnn.forward(&x, &w, &bias, &mut out, &mut ws).unwrap();
        let (mut dw, mut db) = (vec![0.0; d], vec![0.0; 1]);
        let g = cnn.backward(&x, &w, &c, None, &mut dw, &mut db, &mut ws).unwrap();
        fd_check("cnn dw", &w, &dw, |t| run(t, tb).unwrap());
        let ActivationGrad::Bias(dtb) = g else { panic!("soft threshold has a bias gradient") };
        fd_check("cnn threshold bias", &[tb], &[dtb], |t| run(&w, t[0]).unwrap());
    }

    #[test]
    fn sensing_gradients_match_finite_differences(n in 1usize..6, n2 in 1usize..6, r in 1usize..4, m in 1usize..12, seed in any::<u64>()) {
        let mut rng = seeded(seed);
        // Symmetric form with non-symmetric A_i (the gradient must use A_i + A_iᵀ).
        let s = Sensing::symmetric(n, r, m);
        let a = normals(&mut rng, m * n * n);
        let y = normals(&mut rng, m);
        let u = normals(&mut rng, n * r);
        let loss = |u: &[f64]| {
            let (mut res, mut scratch) = (vec![0.0; m], vec![0.0; n * n]);
            s.residuals(&a, &y, u, u, &mut res, &mut scratch).unwrap()
        };
        let (mut res, mut scratch, mut gu) = (vec![0.0; m], vec![0.0; n * n], vec![0.0; n * r]);
        s.residuals(&a, &y, &u, &u, &mut res, &mut scratch).unwrap();
        s.gradient_symmetric(&a, &u, &res, &mut gu, &mut scratch).unwrap();
        fd_check("sensing U (symmetric)", &u, &gu, loss);

        let s = Sensing::asymmetric(n, n2, r, m);
        let a = normals(&mut rng, m * n * n2);
        let v = normals(&mut rng, n2 * r);
        let loss = |u: &[f64], v: &[f64]| {
            let (mut res, mut scratch) = (vec![0.0; m], vec![0.0; n * n2]);
            s.residuals(&a, &y, u, v, &mut res, &mut scratch).unwrap()
        };
        let (mut res, mut scratch) = (vec![0.0; m], vec![0.0; n * n2]);
        let (mut gu, mut gv) = (vec![0.0; n * r], vec![0.0; n2 * r]);
        s.residuals(&a, &y, &u, &v, &mut res, &mut scratch).unwrap();
        s.gradient_asymmetric(&a, &u, &v, &res, &mut gu, &mut gv, &mut scratch).unwrap();
        fd_check("sensing U (asymmetric)", &u, &gu, |t| loss(t, &v));
        fd_check("sensing V (asymmetric)", &v, &gv, |t| loss(&u, t));
    }

    #[test]
    fn least_squares_matches_finite_differences(batch in 1usize..9, features in 1usize..7, seed in any::<u64>()) {
        let mut rng = seeded(seed);
        let (x, w, y) = (normals(&mut rng, batch * features), normals(&mut rng, features), normals(&mut rng, batch));
        let (mut res, mut g) = (vec![0.0; batch], vec![0.0; features]);
        least_squares_on(Backend::active(), batch, features, &x, &w, &y, &mut res, &mut g).unwrap();
        fd_check("least squares", &w, &g, |t| {
            let (mut res, mut g) = (vec![0.0; batch], vec![0.0; features]);
            least_squares_on(Backend::active(), batch, features, &x, t, &y, &mut res, &mut g).unwrap()
        });
    }
}

// ------------------------------------------------------------------ SIMD against the references

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

/// `got` (f32) against `exact` (f64) with the matrix-product budget, where `terms` is the same
/// bilinear layer evaluated on absolute values (so it is Σ|terms| per output).
#[track_caller]
fn within_product_budget(what: &str, got: &[f32], exact: &[f64], terms: &[f64], k: usize) {
    let u = unit_roundoff::<f32>();
    for (i, ((g, e), t)) in got.iter().zip(exact).zip(terms).enumerate() {
        let budget = (k as f64 + 4.0) * u * t;
        assert!(
            (*g as f64 - e).abs() <= budget,
            "{what}[{i}]: {g} vs {e}, budget {budget:e}"
        );
    }
}

#[test]
fn layers_on_every_backend_match_references() {
    let mut rng = seeded(21);
    for b in backends() {
        // Dense forward and backward (bilinear: the absolute-value run gives the budget).
        let (batch, i, o) = (13, 37, 19);
        let x: Vec<f32> = mixed(&mut rng, batch * i, 1.0, 0.0);
        let w: Vec<f32> = mixed(&mut rng, i * o, 1.0, 0.0);
        let bias: Vec<f32> = mixed(&mut rng, o, 1.0, 0.0);
        let dy: Vec<f32> = mixed(&mut rng, batch * o, 1.0, 0.0);
        let layer = Dense::new(batch, i, o).on(b);
        let ref64 = Dense::new(batch, i, o).on(Backend::Scalar);
        let mut y = vec![0.0f32; batch * o];
        layer.forward(&x, &w, &bias, &mut y).unwrap();
        let (mut ye, mut yt) = (vec![0.0; batch * o], vec![0.0; batch * o]);
        ref64
            .forward(&widen(&x), &widen(&w), &widen(&bias), &mut ye)
            .unwrap();
        ref64
            .forward(
                &abs(&widen(&x)),
                &abs(&widen(&w)),
                &abs(&widen(&bias)),
                &mut yt,
            )
            .unwrap();
        within_product_budget(&format!("dense y on {b}"), &y, &ye, &yt, i + 1);
        let (mut dx, mut dw, mut db) = (
            vec![0.0f32; batch * i],
            vec![0.0f32; i * o],
            vec![0.0f32; o],
        );
        layer
            .backward(&x, &w, &dy, Some(&mut dx), &mut dw, &mut db)
            .unwrap();
        let (mut dxe, mut dwe, mut dbe) = (vec![0.0; batch * i], vec![0.0; i * o], vec![0.0; o]);
        let (mut dxt, mut dwt, mut dbt) = (vec![0.0; batch * i], vec![0.0; i * o], vec![0.0; o]);
        ref64
            .backward(
                &widen(&x),
                &widen(&w),
                &widen(&dy),
                Some(&mut dxe),
                &mut dwe,
                &mut dbe,
            )
            .unwrap();
        ref64
            .backward(
                &abs(&widen(&x)),
                &abs(&widen(&w)),
                &abs(&widen(&dy)),
                Some(&mut dxt),
                &mut dwt,
                &mut dbt,
            )
            .unwrap();
        within_product_budget(&format!("dense dx on {b}"), &dx, &dxe, &dxt, o);
        within_product_budget(&format!("dense dw on {b}"), &dw, &dwe, &dwt, batch);
        within_product_budget(&format!("dense db on {b}"), &db, &dbe, &dbt, batch);

        // 2-D convolution forward and backward.
        let conv = Conv2d::new(3, 2, 9, 11, 5, (3, 2), (2, 3)).on(b);
        let c64 = conv.on(Backend::Scalar);
        let x: Vec<f32> = mixed(&mut rng, 3 * 2 * 9 * 11, 1.0, 0.0);
        let w: Vec<f32> = mixed(&mut rng, 5 * conv.patch_len(), 1.0, 0.0);
        let bias: Vec<f32> = mixed(&mut rng, 5, 1.0, 0.0);
        let nz = 3 * 5 * conv.positions();
        let dz: Vec<f32> = mixed(&mut rng, nz, 1.0, 0.0);
        let mut z = vec![0.0f32; nz];
        conv.forward(&x, &w, &bias, &mut z, &mut vec![0.0; conv.scratch_len()])
            .unwrap();
        let (mut ze, mut zt) = (vec![0.0; nz], vec![0.0; nz]);
        c64.forward(
            &widen(&x),
            &widen(&w),
            &widen(&bias),
            &mut ze,
            &mut vec![0.0; conv.scratch_len()],
        )
        .unwrap();
        c64.forward(
            &abs(&widen(&x)),
            &abs(&widen(&w)),
            &abs(&widen(&bias)),
            &mut zt,
            &mut vec![0.0; conv.scratch_len()],
        )
        .unwrap();
        within_product_budget(
            &format!("conv z on {b}"),
            &z,
            &ze,
            &zt,
            conv.patch_len() + 1,
        );
        let (mut dx, mut dw, mut db) = (
            vec![0.0f32; x.len()],
            vec![0.0f32; w.len()],
            vec![0.0f32; 5],
        );
        conv.backward(
            &x,
            &w,
            &dz,
            Some(&mut dx),
            &mut dw,
            &mut db,
            &mut vec![0.0; 2 * conv.scratch_len()],
        )
        .unwrap();
        let (mut dxe, mut dwe, mut dbe) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 5]);
        let (mut dxt, mut dwt, mut dbt) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 5]);
        let mut s64 = vec![0.0; 2 * conv.scratch_len()];
        c64.backward(
            &widen(&x),
            &widen(&w),
            &widen(&dz),
            Some(&mut dxe),
            &mut dwe,
            &mut dbe,
            &mut s64,
        )
        .unwrap();
        c64.backward(
            &abs(&widen(&x)),
            &abs(&widen(&w)),
            &abs(&widen(&dz)),
            Some(&mut dxt),
            &mut dwt,
            &mut dbt,
            &mut s64,
        )
        .unwrap();
        // dx adds up to (filters · overlapping patches) products; dw and db sum over batch·positions.
        within_product_budget(&format!("conv dx on {b}"), &dx, &dxe, &dxt, 5 * 6);
        within_product_budget(
            &format!("conv dw on {b}"),
            &dw,
            &dwe,
            &dwt,
            3 * conv.positions(),
        );
        within_product_budget(
            &format!("conv db on {b}"),
            &db,
            &dbe,
            &dbt,
            3 * conv.positions(),
        );

        // Elementwise activations: bit-identical to the scalar reference.
        let xa: Vec<f32> = mixed(&mut rng, 257, 3.0, 0.05);
        for act in [
            Activation::Relu,
            Activation::Tanh,
            Activation::SoftThreshold { bias: -0.4 },
            Activation::Poly2 {
                coeffs: [0.1, 0.5, 0.3],
            },
        ] {
            let (mut y, mut yr) = (vec![0.0f32; 257], vec![0.0f32; 257]);
            act.forward_on(b, &xa, &mut y).unwrap();
            act.forward_on(Backend::Scalar, &xa, &mut yr).unwrap();
            common::assert_same(&format!("{act:?} forward on {b}"), &y, &yr);
            let (mut g, mut gr) = (xa.clone(), xa.clone());
            act.backward_in_place_on(b, &xa, &mut g).unwrap();
            act.backward_in_place_on(Backend::Scalar, &xa, &mut gr)
                .unwrap();
            common::assert_same(&format!("{act:?} backward on {b}"), &g, &gr);
        }

        // The composed MLP: loss and gradients within 2e-4 relative of the f64 reference.
        let mlp = Mlp::new(10, 24, 3, Activation::Tanh);
        let m32 = Mlp {
            backend: b,
            ..Mlp::<f32>::new(10, 24, 3, Activation::Tanh)
        };
        let p: Vec<f32> = mixed(&mut rng, mlp.param_len(), 0.5, 0.0);
        let x: Vec<f32> = mixed(&mut rng, 17 * 10, 1.0, 0.0);
        let labels: Vec<u32> = (0..17).map(|i| (i % 3) as u32).collect();
        let (mut ws, mut ws64) = (
            vec![0.0f32; m32.workspace_len(17)],
            vec![0.0; mlp.workspace_len(17)],
        );
        let l32 = m32.forward(17, &p, &x, &labels, None, &mut ws).unwrap();
        let l64 = mlp
            .forward(17, &widen(&p), &widen(&x), &labels, None, &mut ws64)
            .unwrap();
        assert!(
            (l32 as f64 - l64).abs() <= 2e-4 * (1.0 + l64.abs()),
            "mlp loss on {b}: {l32} vs {l64}"
        );
        let (mut g32, mut g64) = (vec![0.0f32; mlp.param_len()], vec![0.0; mlp.param_len()]);
        m32.backward(17, &p, &x, &labels, &mut ws, &mut g32)
            .unwrap();
        mlp.backward(17, &widen(&p), &widen(&x), &labels, &mut ws64, &mut g64)
            .unwrap();
        for (i, (a, e)) in g32.iter().zip(&g64).enumerate() {
            assert!(
                (*a as f64 - e).abs() <= 2e-4 * (1.0 + e.abs()),
                "mlp grad[{i}] on {b}: {a} vs {e}"
            );
        }
    }
}

// ------------------------------------------------------------------ shape errors

#[test]
fn wrong_shapes_are_rejected_before_writing() {
    let (x, w, b) = (vec![1.0f32; 6], vec![1.0f32; 6], vec![1.0f32; 3]);
    let mut y = vec![7.0f32; 6];
    let err = Dense::new(2, 3, 3).forward(&x, &w, &b, &mut y).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            buffer: "w",
            shape: "inputs × outputs",
            expected: 9,
            found: 6
        }
    );
    assert!(err.to_string().contains("inputs × outputs"));
    assert_eq!(y, vec![7.0; 6]);

    let mut c = vec![7.0f32; 5];
    let err = MatMul::new(2, 3, 3).run(&x, &[1.0; 9], &mut c).unwrap_err();
    assert_eq!(
        err,
        Error::ShapeMismatch {
            buffer: "c",
            shape: "m × n",
            expected: 6,
            found: 5
        }
    );
    assert_eq!(c, vec![7.0; 5]);

    let conv = Conv2d::conv1d(1, 1, 4, 1, 5, 1);
    let mut z = vec![7.0f32; 1];
    let err = conv
        .forward(&[1.0; 4], &[1.0; 5], &[0.0], &mut z, &mut [0.0; 5])
        .unwrap_err();
    assert_eq!(
        err,
        Error::InvalidDimension {
            name: "kernel",
            requirement: "must fit inside the input (height × width)"
        }
    );
    assert_eq!(z, vec![7.0]);
    let err = Conv2d::conv1d(1, 1, 4, 1, 2, 0)
        .forward(&[1.0f32; 4], &[1.0; 2], &[0.0], &mut z, &mut [])
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidDimension { name: "stride", .. }
    ));

    let ce = SoftmaxCrossEntropy::new(2, 3);
    let mut per = vec![7.0f32; 2];
    let mut dz = vec![7.0f32; 6];
    let err = ce
        .forward_backward(&[0.0; 6], &[0, 3], None, &mut per, Some(&mut dz))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidDimension { name: "labels", .. }
    ));
    assert_eq!((per, dz), (vec![7.0; 2], vec![7.0; 6]));

    let mlp = Mlp::new(4, 5, 2, Activation::Relu);
    let mut ws = vec![7.0f32; mlp.workspace_len(3) - 1];
    let err = mlp
        .forward(
            3,
            &vec![0.0; mlp.param_len()],
            &[0.0; 12],
            &[0, 1, 0],
            None,
            &mut ws,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ShapeMismatch {
            buffer: "workspace",
            ..
        }
    ));
    assert!(ws.iter().all(|&v| v == 7.0));
}

// ------------------------------------------------------------------ end to end

/// Train the MLP with Adam, using only the crate's kernels, on a seeded XOR-quadrant problem
/// (label = [x0·x1 > 0], not linearly separable: a linear model scores about 50%), and require
/// at least 95% accuracy on 2,000 fresh test points.
#[test]
fn mlp_learns_xor_quadrants_with_adam() {
    let mut rng = seeded(2024);
    let draw = |rng: &mut Xoshiro256PlusPlus, n: usize| {
        let mut x = vec![0.0f32; 2 * n];
        for v in x.iter_mut() {
            *v = (2.0 * uniform01(rng) - 1.0) as f32;
        }
        let y: Vec<u32> = x
            .chunks_exact(2)
            .map(|p| (p[0] * p[1] > 0.0) as u32)
            .collect();
        (x, y)
    };
    let (batch, steps) = (256, 600);
    let mlp = Mlp::new(2, 32, 2, Activation::Relu);
    let mut params = vec![0.0f32; mlp.param_len()];
    // He-style init for W1 (fan-in 2) and W2 (fan-in 32); zero biases.
    fill_normal(&mut rng, &mut params[..64], 0.0, 1.0);
    fill_normal(&mut rng, &mut params[96..160], 0.0, (2.0f64 / 32.0).sqrt());
    let (mut grads, mut state) = (vec![0.0f32; params.len()], vec![0.0f32; 2 * params.len()]);
    let mut ws = vec![0.0f32; mlp.workspace_len(batch)];
    let adam = Adam::new(0.01f32);
    for step in 1..=steps {
        let (x, y) = draw(&mut rng, batch);
        mlp.forward(batch, &params, &x, &y, None, &mut ws).unwrap();
        mlp.backward(batch, &params, &x, &y, &mut ws, &mut grads)
            .unwrap();
        adam.step(step, &mut params, &grads, &mut state).unwrap();
    }
    let test_n = 2000;
    let (x, y) = draw(&mut rng, test_n);
    let mut ws = vec![0.0f32; mlp.workspace_len(test_n)];
    mlp.forward(test_n, &params, &x, &y, None, &mut ws).unwrap();
    let logits = mlp.logits(test_n, &ws);
    let correct = logits
        .chunks_exact(2)
        .zip(&y)
        .filter(|(l, &t)| ((l[1] > l[0]) as u32) == t)
        .count();
    let accuracy = correct as f64 / test_n as f64;
    assert!(accuracy >= 0.95, "test accuracy {accuracy}");
}
