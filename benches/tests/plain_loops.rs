//! The plain loops the benchmarks compare against compute the same rules as the kernels: a
//! comparator that skipped a term would be faster for the wrong reason. The loops are written as
//! a user would (`powi` bias corrections, their own operation order), so they agree to rounding,
//! not bit for bit: every buffer after one step must equal the kernel's within
//! `4·ulp(max(|before|, |after|)) + 1e-4·|change|` per element (rounding of the stored value, plus
//! a relative error of the change far above f32's 6e-8 and far below a missing or wrong term).
//! The negative controls run the same comparison on a loop with one term wrong and must fail.

use descent_benches::plain;
use descent_kernels::{
    ema, running_mean, Adam, Exec, Gd, Lion, Rule, Sgd, SignDescent, Signum, WeightDecay,
};

/// Adam's `(lr, β1, β2, ε)` (the kernels' defaults at `lr = 1e-3`).
const HYPER: (f32, f32, f32, f32) = (1e-3, 0.9, 0.999, 1e-8);

/// 1003 elements: not a multiple of any backend's lanes, so tails are compared too.
const N: usize = 1003;

/// Deterministic values in `[lo, hi)` (a 64-bit LCG; any fixed sequence will do).
fn values(seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..N)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            lo + (hi - lo) * ((x >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Whether `plain` and `kernel` (both after one step from `before`) agree as the module says;
/// the first disagreement otherwise.
fn agree(before: &[f32], plain: &[f32], kernel: &[f32]) -> Result<(), String> {
    for (i, ((&b, &p), &k)) in before.iter().zip(plain).zip(kernel).enumerate() {
        let ulp = |x: f32| f32::from_bits(x.abs().to_bits() + 1) - x.abs();
        let bound = 4.0 * ulp(b.abs().max(k.abs())) + 1e-4 * (k - b).abs();
        // Written so that a NaN anywhere disagrees.
        let close = (p - k).abs() <= bound;
        if !close {
            return Err(format!(
                "element {i}: before {b:e}, plain {p:e}, kernel {k:e} (bound {bound:e})"
            ));
        }
    }
    Ok(())
}

/// Parameters, gradient and up to three state buffers (momentum-like, non-negative second
/// moments, and a running maximum at least as large).
struct Case {
    p: Vec<f32>,
    g: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    vmax: Vec<f32>,
}

impl Case {
    fn new() -> Case {
        let v = values(4, 0.0, 1e-2);
        let vmax = v
            .iter()
            .zip(values(5, 0.0, 2e-2))
            .map(|(&a, b)| a.max(b))
            .collect();
        Case {
            p: values(1, -1.0, 1.0),
            g: values(2, -1.0, 1.0),
            m: values(3, -0.1, 0.1),
            v,
            vmax,
        }
    }

    /// The flat state of `buffers` buffers, in the kernels' order.
    fn state(&self, buffers: usize) -> Vec<f32> {
        [&self.m[..], &self.v[..], &self.vmax[..]][..buffers].concat()
    }
}

/// One step of `rule` at step 3 through the kernel; returns parameters and flat state.
fn kernel<R: Rule<f32>>(rule: R, c: &Case, buffers: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut p, mut s) = (c.p.clone(), c.state(buffers));
    rule.step_with(&Exec::active(), 3, &mut p, &c.g, &mut s)
        .unwrap();
    (p, s)
}

/// Compares parameters and every state buffer.
fn compare(c: &Case, buffers: usize, plain: (&[f32], &[f32]), kernel: (&[f32], &[f32])) {
    agree(&c.p, plain.0, kernel.0).expect("parameters");
    agree(&c.state(buffers), plain.1, kernel.1).expect("state");
}

#[test]
fn adam_family_loops_compute_the_kernels_rules() {
    let c = Case::new();
    // Adam.
    let (kp, ks) = kernel(Adam::new(1e-3f32), &c, 2);
    let (mut p, mut m, mut v) = (c.p.clone(), c.m.clone(), c.v.clone());
    plain::adam(&mut p, &c.g, &mut m, &mut v, 1e-3, 0.9, 0.999, 1e-8, 3);
    compare(&c, 2, (&p, &[m, v].concat()), (&kp, &ks));
    // AdamW (decoupled decay 0.01).
    let (kp, ks) = kernel(Adam::adamw(1e-3f32, 0.01), &c, 2);
    let (mut p, mut m, mut v) = (c.p.clone(), c.m.clone(), c.v.clone());
    plain::adamw(&mut p, &c.g, &mut m, &mut v, HYPER, 0.01, 3);
    compare(&c, 2, (&p, &[m, v].concat()), (&kp, &ks));
    // AMSGrad.
    let (kp, ks) = kernel(Adam::new(1e-3f32).amsgrad(), &c, 3);
    let (mut p, mut m, mut v, mut x) = (c.p.clone(), c.m.clone(), c.v.clone(), c.vmax.clone());
    plain::amsgrad(&mut p, &c.g, &mut m, &mut v, &mut x, HYPER, 3);
    compare(&c, 3, (&p, &[m, v, x].concat()), (&kp, &ks));
}

#[test]
fn momentum_and_sign_loops_compute_the_kernels_rules() {
    let c = Case::new();
    let (kp, ks) = kernel(Sgd::new(1e-3f32, 0.9), &c, 1);
    let (mut p, mut m) = (c.p.clone(), c.m.clone());
    plain::sgd_momentum(&mut p, &c.g, &mut m, 1e-3, 0.9);
    compare(&c, 1, (&p, &m), (&kp, &ks));

    let (kp, _) = kernel(Gd::new(1e-3f32), &c, 0);
    let mut p = c.p.clone();
    plain::gd(&mut p, &c.g, 1e-3);
    agree(&c.p, &p, &kp).unwrap();

    let (kp, _) = kernel(SignDescent::new(1e-3f32), &c, 0);
    let mut p = c.p.clone();
    plain::sign_descent(&mut p, &c.g, 1e-3);
    agree(&c.p, &p, &kp).unwrap();

    let (kp, ks) = kernel(Signum::new(1e-3f32, 0.9), &c, 1);
    let (mut p, mut m) = (c.p.clone(), c.m.clone());
    plain::signum(&mut p, &c.g, &mut m, 1e-3, 0.9);
    compare(&c, 1, (&p, &m), (&kp, &ks));

    let (kp, ks) = kernel(Lion::new(1e-4f32), &c, 1);
    let (mut p, mut m) = (c.p.clone(), c.m.clone());
    plain::lion(&mut p, &c.g, &mut m, 1e-4, 0.9, 0.99);
    compare(&c, 1, (&p, &m), (&kp, &ks));
}

#[test]
fn averaging_loops_compute_the_kernels_functions() {
    let c = Case::new();
    let (mut k, mut a) = (c.p.clone(), c.p.clone());
    ema(&mut k, &c.g, 0.999).unwrap();
    plain::ema(&mut a, &c.g, 0.999);
    agree(&c.p, &a, &k).unwrap();

    let (mut k, mut a) = (c.p.clone(), c.p.clone());
    running_mean(&mut k, &c.g, 7).unwrap();
    plain::swa(&mut a, &c.g, 7);
    agree(&c.p, &a, &k).unwrap();
}

/// Negative controls: the same comparison rejects loops with one term wrong.
#[test]
fn the_comparison_rejects_a_loop_with_a_wrong_term() {
    let c = Case::new();
    // Adam without its bias corrections (the loop at step 1 has none; the kernel runs step 3).
    let (kp, ks) = kernel(Adam::new(1e-3f32), &c, 2);
    let (mut p, mut m, mut v) = (c.p.clone(), c.m.clone(), c.v.clone());
    plain::adam(&mut p, &c.g, &mut m, &mut v, 1e-3, 0.9, 0.999, 1e-8, 1);
    assert!(agree(&c.p, &p, &kp).is_err());
    // The moments themselves do not depend on the step: the parameters carry the difference.
    assert!(agree(&c.state(2), &[m, v].concat(), &ks).is_ok());
    // AdamW against Adam with L2 decay of the same strength: a different rule.
    let (kp, _) = kernel(
        Adam {
            weight_decay: WeightDecay::L2(0.01),
            ..Adam::new(1e-3f32)
        },
        &c,
        2,
    );
    let (mut p, mut m, mut v) = (c.p.clone(), c.m.clone(), c.v.clone());
    plain::adamw(&mut p, &c.g, &mut m, &mut v, HYPER, 0.01, 3);
    assert!(agree(&c.p, &p, &kp).is_err());
    // A running mean over one sample too many.
    let (mut k, mut a) = (c.p.clone(), c.p.clone());
    running_mean(&mut k, &c.g, 7).unwrap();
    plain::swa(&mut a, &c.g, 8);
    assert!(agree(&c.p, &a, &k).is_err());
}
