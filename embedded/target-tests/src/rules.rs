//! Update-rule checks: every rule on seeded inputs against (a) the firmware's own f32 reference of
//! the documented per-element equations, bit for bit, special values (±0, subnormals, ±Inf, NaN,
//! extremes) included; (b) the crate's scalar backend, bit for bit, where the active backend is a
//! SIMD one (NEON on aarch64); (c) an f64 reference over 5 steps on finite inputs within
//! `|x32 − x64| <= 1e-5·(1 + |x64|)` (≈170 u; sign rules skip elements whose sign argument is within
//! 1e-5 of zero in the f64 reference, where f32 and f64 may legitimately pick different signs).

use crate::real::{same, Bump, Real};
use crate::{fill_mixed, Suite};
use descent_kernels::random::{fill_uniform, seeded};
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, Adam, Backend, Error, Exec, Gd, Lion,
    Rule as _, Sgd, SignDescent, Signum, WeightDecay,
};

/// Elements per check: odd, so every backend's vector tail is exercised.
#[cfg(not(small_ram))]
pub const N_CHECK: usize = 259;
#[cfg(small_ram)]
pub const N_CHECK: usize = 67;

/// The rules under test with their hyper-parameters (the f32 values; the f64 reference widens them).
#[derive(Clone, Copy)]
pub enum Rule {
    Gd(Gd<f32>),
    Sgd(Sgd<f32>),
    /// Adam, AdamW or (with `amsgrad` set) AMSGrad.
    Adam(Adam<f32>),
    Sign(SignDescent<f32>),
    Signum(Signum<f32>),
    Lion(Lion<f32>),
    /// Running mean: the step number `t` is the count + 1.
    Mean,
    Ema(f32),
}

/// Number of state buffers a rule uses (the documented counts, not the kernel's `state_buffers`).
fn states(r: Rule) -> usize {
    match r {
        Rule::Adam(k) if k.amsgrad => 3,
        Rule::Adam(_) => 2,
        Rule::Sgd(_) | Rule::Signum(_) | Rule::Lion(_) => 1,
        _ => 0,
    }
}

/// Runs step `t` of the kernel on `exec`. `st` holds 3 buffers of `x.len()` elements one after
/// the other; the rule gets the first `states(r)` of them (its flat state slice).
fn run_kernel(
    r: Rule,
    exec: &Exec,
    t: u64,
    x: &mut [f32],
    st: &mut [f32],
    g: &[f32],
) -> Result<(), Error> {
    let st = &mut st[..states(r) * x.len()];
    match r {
        Rule::Gd(k) => k.step_with(exec, t, x, g, st),
        Rule::Sgd(k) => k.step_with(exec, t, x, g, st),
        Rule::Adam(k) => k.step_with(exec, t, x, g, st),
        Rule::Sign(k) => k.step_with(exec, t, x, g, st),
        Rule::Signum(k) => k.step_with(exec, t, x, g, st),
        Rule::Lion(k) => k.step_with(exec, t, x, g, st),
        Rule::Mean => running_mean_with(exec, x, g, t - 1),
        Rule::Ema(d) => ema_with(exec, x, g, d),
    }
}

fn sign<F: Real>(x: F) -> F {
    if x.is_nan() {
        x
    } else if x > F::zero() {
        F::one()
    } else if x < F::zero() {
        -F::one()
    } else {
        F::zero()
    }
}

fn w<F: Real>(x: f32) -> F {
    F::from_f64(x as f64)
}

/// Weight decay, in the kernels' order: decoupled scales `p` by `1 − lr·λ`, L2 adds `λ·p` to `g`.
fn decay<F: Real>(wd: WeightDecay<f32>, lr: f32, p: F, g: F) -> (F, F) {
    match wd {
        WeightDecay::None => (p, g),
        WeightDecay::L2(l) => (p, g + w::<F>(l) * p),
        WeightDecay::Decoupled(l) => (p * (F::one() - w::<F>(lr) * w::<F>(l)), g),
    }
}

/// One step of one element, from the rules' documentation. Returns the smallest |argument| of a
/// sign function (infinity if there is none), so the f64 check can skip ambiguous signs.
pub(crate) fn ref_elem<F: Real>(r: Rule, t: u64, x: &mut F, s: &mut [F; 3], g: F) -> f64 {
    let one = F::one();
    let mut sign_arg = f64::INFINITY;
    match r {
        Rule::Gd(k) => {
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            *x = p - w::<F>(k.lr) * g;
        }
        Rule::Sgd(k) => {
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            let mu = w::<F>(k.momentum);
            s[0] = if t == 1 || k.momentum == 0.0 {
                g
            } else {
                mu * s[0] + (one - w::<F>(k.dampening)) * g
            };
            let d = if k.nesterov { g + mu * s[0] } else { s[0] };
            *x = p - w::<F>(k.lr) * d;
        }
        Rule::Adam(k) => {
            let bc1 = 1.0 - libm::pow(k.beta1 as f64, t as f64);
            let bc2 = 1.0 - libm::pow(k.beta2 as f64, t as f64);
            let step_size = F::from_f64(k.lr as f64 / bc1);
            let inv = F::from_f64(1.0 / libm::sqrt(bc2));
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            let (b1, b2) = (w::<F>(k.beta1), w::<F>(k.beta2));
            s[0] = b1 * s[0] + (one - b1) * g;
            s[1] = b2 * s[1] + (one - b2) * (g * g);
            let vhat = if k.amsgrad {
                // NaN-propagating maximum (torch.maximum).
                if s[2] > s[1] || s[2].is_nan() {
                    s[2]
                } else {
                    s[2] = s[1];
                    s[1]
                }
            } else {
                s[1]
            };
            let denom = vhat.sqrt() * inv + w::<F>(k.eps);
            *x = p - step_size * (s[0] / denom);
        }
        Rule::Sign(k) => {
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            sign_arg = g.to_f64().abs();
            *x = p - w::<F>(k.lr) * sign(g);
        }
        Rule::Signum(k) => {
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            let b = w::<F>(k.beta);
            s[0] = b * s[0] + (one - b) * g;
            sign_arg = s[0].to_f64().abs();
            *x = p - w::<F>(k.lr) * sign(s[0]);
        }
        Rule::Lion(k) => {
            let (p, g) = decay(k.weight_decay, k.lr, *x, g);
            let (b1, b2) = (w::<F>(k.beta1), w::<F>(k.beta2));
            let c = b1 * s[0] + (one - b1) * g;
            sign_arg = c.to_f64().abs();
            *x = p - w::<F>(k.lr) * sign(c);
            s[0] = b2 * s[0] + (one - b2) * g;
        }
        Rule::Mean => {
            if t == 1 {
                *x = g;
            } else {
                let k = F::from_f64((t - 1) as f64) + one;
                *x = *x + (g - *x) / k;
            }
        }
        Rule::Ema(d) => {
            *x = *x + (one - w::<F>(d)) * (g - *x);
        }
    }
    sign_arg
}

pub(crate) fn first_diff(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| !same(*x, *y))
}

/// The three checks of one rule.
pub fn check_rule(s: &mut Suite, a32: &mut [f32], a64: &mut [f64], name: &str, r: Rule, seed: u64) {
    let n = N_CHECK;
    let ns = states(r);
    let active = Exec::active();
    // (a) + (b): mixed inputs with special values, 3 steps.
    {
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(seed);
        let x0 = al.take(n);
        fill_mixed(&mut rng, x0, 4.0, 0.04);
        // The state: 3 buffers of n one after the other (the rule uses the first `ns`).
        let st0 = al.take(3 * n);
        for (i, b) in st0.chunks_exact_mut(n).enumerate().take(ns) {
            fill_mixed(&mut rng, b, 1.0, 0.04);
            if i > 0 {
                b.iter_mut().for_each(|v| *v = v.abs()); // second moments are >= 0 (NaN stays)
            }
        }
        let gs = al.take(STEPS * n);
        fill_mixed(&mut rng, gs, 2.0, 0.04);
        let x = al.take(n);
        x.copy_from_slice(x0);
        let st = al.take(3 * n);
        st.copy_from_slice(st0);
        let mut ok = true;
        for t in 1..=STEPS {
            ok &= run_kernel(r, &active, t as u64, x, st, &gs[(t - 1) * n..t * n]).is_ok();
        }
        // f32 reference, element by element.
        let (mut ref_ok, mut detail) = (true, None);
        for i in 0..n {
            let mut xr = x0[i];
            let mut sr = [st0[i], st0[n + i], st0[2 * n + i]];
            for t in 1..=STEPS {
                ref_elem(r, t as u64, &mut xr, &mut sr, gs[(t - 1) * n + i]);
            }
            let good = same(xr, x[i]) && (0..ns).all(|k| same(sr[k], st[k * n + i]));
            if !good && ref_ok {
                detail = Some((i, x[i], xr));
            }
            ref_ok &= good;
        }
        match detail {
            None => s.check(
                name,
                "bit-exact vs f32 reference (specials mixed in)",
                ok && ref_ok,
            ),
            Some((i, got, want)) => {
                s.check(
                    name,
                    "bit-exact vs f32 reference (specials mixed in)",
                    false,
                );
                crate::out!(
                    "    element {i}: kernel {got:e} ({:#010x}), reference {want:e} ({:#010x})\n",
                    got.to_bits(),
                    want.to_bits()
                );
            }
        }
        if active.backend() != Backend::Scalar {
            let xs = al.take(n);
            xs.copy_from_slice(x0);
            let ss = al.take(3 * n);
            ss.copy_from_slice(st0);
            let mut ok = true;
            for t in 1..=STEPS {
                ok &= run_kernel(
                    r,
                    &Exec::scalar(),
                    t as u64,
                    xs,
                    ss,
                    &gs[(t - 1) * n..t * n],
                )
                .is_ok();
            }
            ok &= first_diff(xs, x).is_none() && first_diff(&ss[..ns * n], &st[..ns * n]).is_none();
            s.check(name, "bit-exact: active backend vs Backend::Scalar", ok);
        }
    }
    // (c): finite inputs, 5 steps, against f64.
    {
        const STEPS: usize = 5;
        let mut al = Bump::new(&mut *a32);
        let mut al64 = Bump::new(&mut *a64);
        let mut rng = seeded(seed ^ 0x5eed);
        let x = al.take(n);
        fill_uniform(&mut rng, x, -1.0, 1.0);
        let st = al.take(3 * n);
        for (k, b) in st.chunks_exact_mut(n).enumerate().take(ns) {
            fill_uniform(&mut rng, b, if k == 0 { -0.1 } else { 0.0 }, 0.1);
        }
        let gs = al.take(STEPS * n);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let xr = al64.take(n);
        let sr: [&mut [f64]; 3] = core::array::from_fn(|_| al64.take(n));
        for i in 0..n {
            xr[i] = x[i] as f64;
            for k in 0..3 {
                sr[k][i] = st[k * n + i] as f64;
            }
        }
        let mut ok = true;
        for t in 1..=STEPS {
            ok &= run_kernel(r, &active, t as u64, x, st, &gs[(t - 1) * n..t * n]).is_ok();
        }
        let (mut worst, mut skipped) = (0.0f64, 0);
        for i in 0..n {
            let mut e = xr[i];
            let mut se = [sr[0][i], sr[1][i], sr[2][i]];
            let mut min_arg = f64::INFINITY;
            for t in 1..=STEPS {
                let a = ref_elem(r, t as u64, &mut e, &mut se, gs[(t - 1) * n + i] as f64);
                min_arg = min_arg.min(a);
            }
            if min_arg < 1e-5 {
                skipped += 1;
                continue;
            }
            let err = |got: f32, want: f64| (got as f64 - want).abs() / (1.0 + want.abs());
            worst = worst.max(err(x[i], e));
            for k in 0..ns {
                worst = worst.max(err(st[k * n + i], se[k]));
            }
        }
        let good = ok && worst <= 1e-5 && !worst.is_nan();
        s.check(name, "vs f64 reference, 5 steps, rel 1e-5", good);
        if !good || skipped > 0 {
            crate::out!(
                "    worst relative error {worst:.2e}, {skipped} ambiguous signs skipped\n"
            );
        }
    }
}

/// `replica_mean` over 3 replicas: bit-exact vs `((r0 + r1) + r2) / 3`, vs the scalar backend,
/// and within 4 u relative of the f64 mean.
pub fn check_replica_mean(s: &mut Suite, a32: &mut [f32], seed: u64) {
    let n = N_CHECK;
    let mut al = Bump::new(a32);
    let mut rng = seeded(seed);
    let orig = al.take(3 * n);
    fill_mixed(&mut rng, orig, 4.0, 0.04);
    fn run<'a>(
        al: &mut Bump<'a, f32>,
        orig: &[f32],
        n: usize,
        exec: &Exec,
    ) -> (bool, &'a mut [f32]) {
        let buf = al.take(3 * n);
        buf.copy_from_slice(orig);
        let (r0, rest) = buf.split_at_mut(n);
        let (r1, r2) = rest.split_at_mut(n);
        let ok = replica_mean_with(exec, &mut [r0, r1, r2]).is_ok();
        (ok, buf)
    }
    let (ok, got) = run(&mut al, orig, n, &Exec::active());
    let mut exact = ok;
    let mut close = ok;
    for i in 0..n {
        let (a, b, c) = (orig[i], orig[n + i], orig[2 * n + i]);
        let want = ((a + b) + c) / 3.0;
        exact &= (0..3).all(|k| same(got[k * n + i], want));
        let e = (a as f64 + b as f64 + c as f64) / 3.0;
        if e.is_finite() && want.is_finite() {
            let tol = 4.0 * f32::EPSILON as f64 * (a.abs() + b.abs() + c.abs()) as f64 + 1e-45;
            close &= (got[i] as f64 - e).abs() <= tol;
        }
    }
    s.check(
        "replica_mean",
        "bit-exact vs f32 reference (specials mixed in)",
        exact,
    );
    s.check("replica_mean", "vs f64 mean, 4u·Σ|r|", close);
    if Backend::active() != Backend::Scalar {
        let (ok2, sc) = run(&mut al, orig, n, &Exec::scalar());
        s.check(
            "replica_mean",
            "bit-exact: active backend vs Backend::Scalar",
            ok2 && first_diff(sc, got).is_none(),
        );
    }
}

/// All rule checks.
pub fn all(s: &mut Suite, a32: &mut [f32], a64: &mut [f64]) {
    let gd = Gd::new(0.1f32);
    let sgd = Sgd {
        dampening: 0.1,
        ..Sgd::new(0.05f32, 0.9)
    };
    let nesterov = Sgd {
        nesterov: true,
        weight_decay: WeightDecay::L2(0.01),
        ..Sgd::new(0.05f32, 0.9)
    };
    let adam = Adam::new(1e-3f32);
    let adam_l2 = Adam {
        weight_decay: WeightDecay::L2(0.01),
        ..Adam::new(1e-2f32)
    };
    let adamw = Adam::adamw(1e-3f32, 0.01);
    let cases: [(&str, Rule); 14] = [
        ("gd", Rule::Gd(gd)),
        (
            "gd_l2",
            Rule::Gd(Gd {
                weight_decay: WeightDecay::L2(0.1),
                ..gd
            }),
        ),
        (
            "gd_decoupled",
            Rule::Gd(Gd {
                weight_decay: WeightDecay::Decoupled(0.1),
                ..gd
            }),
        ),
        ("sgd_momentum", Rule::Sgd(sgd)),
        ("sgd_nesterov", Rule::Sgd(nesterov)),
        ("adam", Rule::Adam(adam)),
        ("adam_l2", Rule::Adam(adam_l2)),
        ("adamw", Rule::Adam(adamw)),
        ("amsgrad", Rule::Adam(adam.amsgrad())),
        ("sign_descent", Rule::Sign(SignDescent::new(0.01f32))),
        (
            "signum",
            Rule::Signum(Signum {
                weight_decay: WeightDecay::Decoupled(0.1),
                ..Signum::new(0.01f32, 0.9)
            }),
        ),
        (
            "lion",
            Rule::Lion(Lion {
                weight_decay: WeightDecay::Decoupled(0.1),
                ..Lion::new(1e-3f32)
            }),
        ),
        ("running_mean", Rule::Mean),
        ("ema", Rule::Ema(0.9)),
    ];
    for (i, (name, r)) in cases.into_iter().enumerate() {
        check_rule(s, a32, a64, name, r, 100 + i as u64);
    }
    check_replica_mean(s, a32, 200);
}
