//! Checks of the update rules whose step is not one elementwise pass over `Rule`'s flat state:
//! LAMB (per-tensor trust ratio), Schedule-Free AdamW and SGD (through their `TrainView` /
//! `EvalView`), Adam with 8-bit blockwise state (`Adam8`), Adafactor (factored matrix and vector
//! state) and Muon (Newton–Schulz on matrix products). As in `rules.rs`, each rule runs on seeded
//! inputs against
//! - (a) the firmware's own `f32` reference of the documented equations, bit for bit, where the
//!   kernel documents bit-identity (every rule here except Muon's matrix products on a SIMD
//!   backend; Muon's `Backend::Scalar` sums each product in index order, one multiply then one
//!   add per term, and is compared bit for bit);
//! - (b) the crate's scalar backend, bit for bit, where the active backend is a SIMD one (NEON,
//!   wasm-simd128); for Muon, within the tolerance of (c), the momentum buffer bit for bit;
//! - (c) an `f64` reference over a few steps: `|x32 − x64| <= 1e-5·(1 + |x64|)`, except Muon,
//!   whose tolerance is derived on target from a first-order error bound (see [`muon_ref`]).
//!
//! Special values: where an element's result depends on that element only (Schedule-Free, the
//! Adafactor vector), the bit-exact check mixes ±0, subnormals, ±Inf, NaN and extremes into the
//! inputs; where a reduction spreads them (LAMB's norms, Adam8's blocks, Muon's norm), a separate
//! check asserts the documented spread.

use crate::real::{Bump, Real};
use crate::rules::{first_diff, ref_elem, Rule as RefRule, N_CHECK};
use crate::{fill_mixed, out, Suite};
use descent_kernels::random::{fill_uniform, seeded, uniform01};
use descent_kernels::rules::adam8::{Quantizer, BLOCK, SIGNED_MAP, UNSIGNED_MAP};
use descent_kernels::{
    Adafactor, Adam, Adam8, AdjustLr, Backend, Exec, Lamb, Muon, Rule as _, ScheduleFreeAdamW,
    ScheduleFreeRule, ScheduleFreeSgd, ScheduleFreeState, TrainView, WeightDecay,
};

/// The unit roundoff of `f32`, `2^-24`.
const U: f64 = f32::EPSILON as f64 / 2.0;

fn w<F: Real>(x: f32) -> F {
    F::from_f64(x as f64)
}

/// NaN-propagating maximum (`a` if `a > b` or `a` is NaN).
fn max_nan<F: Real>(a: F, b: F) -> F {
    if a > b || a.is_nan() {
        a
    } else {
        b
    }
}

/// Bit-exact comparison of buffer pairs (any NaN equals any NaN); reports the first difference.
fn exact(s: &mut Suite, name: &str, what: &str, ok: bool, pairs: &[(&[f32], &[f32])]) {
    let mut bad = None;
    for (k, (got, want)) in pairs.iter().enumerate() {
        if got.len() != want.len() {
            bad = Some((k, usize::MAX, 0.0, 0.0));
            break;
        }
        if let Some(i) = first_diff(got, want) {
            bad = Some((k, i, got[i], want[i]));
            break;
        }
    }
    s.check(name, what, ok && bad.is_none());
    if let Some((k, i, g, r)) = bad {
        out!(
            "    buffer {k} element {i}: kernel {g:e} ({:#010x}), reference {r:e} ({:#010x})\n",
            g.to_bits(),
            r.to_bits()
        );
    }
}

/// Worst `|got − want| / (1 + |want|)`; NaN if any element gives NaN.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    let mut worst = 0.0f64;
    for (g, r) in got.iter().zip(want) {
        let e = (*g as f64 - r).abs() / (1.0 + r.abs());
        if e.is_nan() {
            return f64::NAN;
        }
        worst = worst.max(e);
    }
    worst
}

/// The f64 check: every worst relative error <= 1e-5.
fn close(s: &mut Suite, name: &str, what: &str, ok: bool, worst: f64) {
    let good = ok && worst <= 1e-5;
    s.check(name, what, good);
    if !good {
        out!("    worst relative error {worst:.2e}\n");
    }
}

fn widen(src: &[f32], dst: &mut [f64]) {
    for (d, x) in dst.iter_mut().zip(src) {
        *d = *x as f64;
    }
}

/// `n` bytes (zeroed) from the f32 arena.
fn bytes<'a>(al: &mut Bump<'a, f32>, n: usize) -> &'a mut [u8] {
    let buf = al.take(n.div_ceil(4));
    // SAFETY: `buf` is n.div_ceil(4) zeroed f32s (at least n bytes), exclusively borrowed for 'a;
    // u8 has no invalid bit patterns and alignment 1.
    unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), n) }
}

// A closure parameter written `&mut Bump<'_, f32>` is higher-ranked, so the slices the closure
// takes from it could not be returned; these give the closures below the arena's own lifetime.
fn arena_fn<'a, R, F: Fn(&mut Bump<'a, f32>, Option<&Exec>) -> R>(f: F) -> F {
    f
}
fn arena_fn3<'a, R, F: Fn(&mut Bump<'a, f32>, Option<&Exec>, bool, usize) -> R>(f: F) -> F {
    f
}
fn arena_fn_gs<'a, R, F: Fn(&mut Bump<'a, f32>, Option<&Exec>, &[f32], usize) -> R>(f: F) -> F {
    f
}

// ------------------------------------------------------------------------------------ LAMB

/// One LAMB step from the documentation: moments, `r`, both norms in f64 (square of element `i`
/// into partial sum `i mod 8`, partials combined pairwise), ratio, `p ← p − (lr·φ)·r`.
fn lamb_ref<F: Real>(k: &Lamb<f32>, t: u64, p: &mut [F], m: &mut [F], v: &mut [F], g: &[f32]) {
    let n = p.len();
    let tf = t as f64;
    let bc1 = F::from_f64(1.0 - libm::pow(k.beta1 as f64, tf));
    let bc2 = F::from_f64(1.0 - libm::pow(k.beta2 as f64, tf));
    let (b1, b2, one) = (w::<F>(k.beta1), w::<F>(k.beta2), F::one());
    for i in 0..n {
        let gi = w::<F>(g[i]);
        m[i] = b1 * m[i] + (one - b1) * gi;
        v[i] = b2 * v[i] + (one - b2) * (gi * gi);
    }
    let dir = |p: F, m: F, v: F| {
        let r = (m / bc1) / ((v / bc2).sqrt() + w::<F>(k.eps));
        if k.weight_decay != 0.0 {
            r + w::<F>(k.weight_decay) * p
        } else {
            r
        }
    };
    let (mut p2, mut r2) = ([0.0f64; 8], [0.0f64; 8]);
    for i in 0..n {
        let (a, b) = (p[i].to_f64(), dir(p[i], m[i], v[i]).to_f64());
        p2[i % 8] += a * a;
        r2[i % 8] += b * b;
    }
    let sum = |a: [f64; 8]| ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    let (pn, rn) = (libm::sqrt(sum(p2)), libm::sqrt(sum(r2)));
    let ratio = if pn == 0.0 || rn == 0.0 { 1.0 } else { pn / rn };
    let scale = F::from_f64(k.lr as f64 * ratio);
    for i in 0..n {
        let r = dir(p[i], m[i], v[i]);
        p[i] = p[i] - scale * r;
    }
}

fn check_lamb(s: &mut Suite, a32: &mut [f32], a64: &mut [f64], name: &str, k: Lamb<f32>) {
    let n = N_CHECK;
    let active = Exec::active();
    {
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(300 + name.len() as u64);
        let p0 = al.take(n);
        fill_uniform(&mut rng, p0, -1.0, 1.0);
        let s0 = al.take(2 * n);
        fill_uniform(&mut rng, &mut s0[..n], -0.1, 0.1);
        fill_uniform(&mut rng, &mut s0[n..], 0.0, 0.1);
        let gs = al.take(STEPS * n);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        // The kernel on `exec`, or the reference (None), from `p0` (or zero parameters) and `s0`.
        let run = arena_fn3(|al, exec: Option<&Exec>, p_init: bool, steps: usize| {
            let (p, st) = (al.take(n), al.take(2 * n));
            if p_init {
                p.copy_from_slice(p0);
            }
            st.copy_from_slice(s0);
            let mut ok = true;
            for t in 1..=steps {
                let g = &gs[(t - 1) * n..t * n];
                match exec {
                    Some(e) => ok &= k.step_with(e, t as u64, p, g, st).is_ok(),
                    None => {
                        let (m, v) = st.split_at_mut(n);
                        lamb_ref(&k, t as u64, p, m, v, g);
                    }
                }
            }
            (ok, p, st)
        });
        let (ok, p, st) = run(&mut al, Some(&active), true, STEPS);
        let (_, pr, sr) = run(&mut al, None, true, STEPS);
        exact(
            s,
            name,
            "3 steps bit-exact vs f32 reference (f64 norms in index order)",
            ok,
            &[(p, pr), (st, sr)],
        );
        if active.backend() != Backend::Scalar {
            let (ok2, ps, ss) = run(&mut al, Some(&Exec::scalar()), true, STEPS);
            exact(
                s,
                name,
                "bit-exact: active backend vs Backend::Scalar",
                ok2,
                &[(p, ps), (st, ss)],
            );
        }
        // Zero parameters: ‖p‖ = 0, trust ratio 1.
        let (ok, p, st) = run(&mut al, Some(&active), false, 1);
        let (_, pr, sr) = run(&mut al, None, false, 1);
        exact(
            s,
            name,
            "params 0 (trust ratio 1) bit-exact vs f32 reference",
            ok,
            &[(p, pr), (st, sr)],
        );
        // A NaN gradient makes ‖r‖ and so every parameter NaN.
        let (p, st) = (al.take(n), al.take(2 * n));
        p.copy_from_slice(p0);
        st.copy_from_slice(s0);
        let g = al.take(n);
        g.copy_from_slice(&gs[..n]);
        g[n / 2] = f32::NAN;
        let ok = k.step_with(&active, 1, p, g, st).is_ok();
        s.check(
            name,
            "one NaN gradient makes every parameter NaN",
            ok && p.iter().all(|x| x.is_nan()),
        );
    }
    {
        const STEPS: usize = 5;
        let mut al = Bump::new(&mut *a32);
        let mut al64 = Bump::new(&mut *a64);
        let mut rng = seeded(310 + name.len() as u64);
        let (p, st, gs) = (al.take(n), al.take(2 * n), al.take(STEPS * n));
        fill_uniform(&mut rng, p, -1.0, 1.0);
        fill_uniform(&mut rng, &mut st[..n], -0.1, 0.1);
        fill_uniform(&mut rng, &mut st[n..], 0.0, 0.1);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let (pr, sr) = (al64.take(n), al64.take(2 * n));
        widen(p, pr);
        widen(st, sr);
        let mut ok = true;
        let (m, v) = sr.split_at_mut(n);
        for t in 1..=STEPS {
            let g = &gs[(t - 1) * n..t * n];
            ok &= k.step_with(&active, t as u64, p, g, st).is_ok();
            lamb_ref(&k, t as u64, pr, m, v, g);
        }
        let worst = rel_err(p, pr).max(rel_err(st, sr));
        close(s, name, "vs f64 reference, 5 steps, rel 1e-5", ok, worst);
    }
}

// -------------------------------------------------------------------------- Schedule-Free

#[derive(Clone, Copy)]
enum Sf {
    AdamW(ScheduleFreeAdamW<f32>),
    Sgd(ScheduleFreeSgd<f32>),
}

impl Sf {
    fn beta(self) -> f32 {
        match self {
            Sf::AdamW(r) => r.beta1,
            Sf::Sgd(r) => r.momentum,
        }
    }
    fn states(self) -> usize {
        match self {
            Sf::AdamW(_) => 2,
            Sf::Sgd(_) => 1,
        }
    }
    /// `(lr, warmup_steps, r, weight_lr_power, weight_decay)`.
    fn params(self) -> (f32, u64, f32, f32, f32) {
        match self {
            Sf::AdamW(r) => (r.lr, r.warmup_steps, r.r, r.weight_lr_power, r.weight_decay),
            Sf::Sgd(r) => (r.lr, r.warmup_steps, r.r, r.weight_lr_power, r.weight_decay),
        }
    }
}

/// PyTorch's `lerp(a, b, w)`.
fn sf_lerp<F: Real>(low: bool, a: F, b: F, wt: F, omw: F) -> F {
    let d = b - a;
    if low {
        a + wt * d
    } else {
        b - d * omw
    }
}

/// One Schedule-Free step from the documentation: the per-step scalars in f64, then per element.
fn sf_step_ref<F: Real>(r: Sf, c: &mut ScheduleFreeState, y: &mut [F], st: &mut [F], g: &[f32]) {
    let n = y.len();
    let (lr0, warm, rp, power, wd) = r.params();
    let k = c.k;
    let sched = if k < warm {
        (k + 1) as f64 / warm as f64
    } else {
        1.0
    };
    let mut lr = lr0 as f64 * sched;
    if let Sf::AdamW(a) = r {
        lr *= libm::sqrt(1.0 - libm::pow(a.beta2 as f64, (k + 1) as f64));
    }
    c.lr_max = if lr > c.lr_max { lr } else { c.lr_max };
    let weight = libm::pow((k + 1) as f64, rp as f64) * libm::pow(c.lr_max, power as f64);
    c.weight_sum += weight;
    let cc = if c.weight_sum == 0.0 {
        0.0
    } else {
        weight / c.weight_sum
    };
    c.k = k + 1;
    let ct = F::from_f64(cc);
    let omc = F::one() - ct;
    let y_coef = F::from_f64(lr * (r.beta() as f64 * (1.0 - cc) - 1.0));
    let lrt = F::from_f64(lr);
    let low = ct < F::from_f64(0.5);
    let first = k == 0;
    let (z, v) = st.split_at_mut(n);
    for i in 0..n {
        let y0 = y[i];
        let z0 = if first { y0 } else { z[i] };
        let gi = w::<F>(g[i]);
        let mut d = gi;
        if let Sf::AdamW(a) = r {
            let v0 = if first { F::zero() } else { v[i] };
            let b2 = w::<F>(a.beta2);
            let v1 = b2 * v0 + (F::one() - b2) * (gi * gi);
            v[i] = v1;
            d = gi / (v1.sqrt() + w::<F>(a.eps));
        }
        if wd != 0.0 {
            d = d + w::<F>(wd) * y0;
        }
        y[i] = sf_lerp(low, y0, z0, ct, omc) + y_coef * d;
        z[i] = z0 - lrt * d;
    }
}

/// The point switch `p ← lerp(p, z, wt)`, `wt` rounded to the element type.
fn sf_switch_ref<F: Real>(p: &mut [F], z: &[F], wt: f64) {
    let wt = F::from_f64(wt);
    let omw = F::one() - wt;
    let low = wt < F::from_f64(0.5);
    for (p, z) in p.iter_mut().zip(z) {
        *p = sf_lerp(low, *p, *z, wt, omw);
    }
}

/// The kernel: `steps` steps through a `TrainView` on `exec`, then `eval_with` (the parameters,
/// `x`, copied to `x`), then `train_with` (back to `y`, left in `y`). Returns the counters after
/// the steps, or None if a call failed.
fn sf_run<R: ScheduleFreeRule<f32>>(
    rule: R,
    exec: &Exec,
    y: &mut [f32],
    st: &mut [f32],
    gs: &[f32],
    x: &mut [f32],
) -> Option<ScheduleFreeState> {
    let n = y.len();
    let mut view = TrainView::new(rule, y, st).ok()?;
    for g in gs.chunks_exact(n) {
        view.step_with(exec, g).ok()?;
    }
    let counters = view.counters();
    let eval = view.eval_with(exec);
    x.copy_from_slice(eval.params());
    let _ = eval.train_with(exec);
    Some(counters)
}

fn sf_kernel(
    r: Sf,
    exec: &Exec,
    y: &mut [f32],
    st: &mut [f32],
    gs: &[f32],
    x: &mut [f32],
) -> Option<ScheduleFreeState> {
    match r {
        Sf::AdamW(a) => sf_run(a, exec, y, st, gs, x),
        Sf::Sgd(g) => sf_run(g, exec, y, st, gs, x),
    }
}

/// The reference of [`sf_run`].
fn sf_reference<F: Real>(
    r: Sf,
    y: &mut [F],
    st: &mut [F],
    gs: &[f32],
    x: &mut [F],
) -> ScheduleFreeState {
    let n = y.len();
    let mut c = ScheduleFreeState::new();
    for g in gs.chunks_exact(n) {
        sf_step_ref(r, &mut c, y, st, g);
    }
    let beta = r.beta() as f64;
    x.copy_from_slice(y);
    sf_switch_ref(x, &st[..n], 1.0 - 1.0 / beta);
    y.copy_from_slice(x);
    sf_switch_ref(y, &st[..n], 1.0 - beta);
    c
}

fn check_sf(s: &mut Suite, a32: &mut [f32], a64: &mut [f64], name: &str, r: Sf) {
    let n = N_CHECK;
    let ns = r.states();
    let active = Exec::active();
    {
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(320 + name.len() as u64);
        let y0 = al.take(n);
        fill_mixed(&mut rng, y0, 4.0, 0.04);
        let s0 = al.take(ns * n);
        fill_mixed(&mut rng, s0, 1.0, 0.04); // overwritten by the first step (z ← y, v ← 0)
        let gs = al.take(STEPS * n);
        fill_mixed(&mut rng, gs, 2.0, 0.04);
        let run = arena_fn(|al, exec: Option<&Exec>| {
            let (y, st, x) = (al.take(n), al.take(ns * n), al.take(n));
            y.copy_from_slice(y0);
            st.copy_from_slice(s0);
            let c = sf_kernel(r, exec.unwrap(), y, st, gs, x);
            (c, y, st, x)
        });
        let (c, y, st, x) = run(&mut al, Some(&active));
        let (yr, sr, xr) = (al.take(n), al.take(ns * n), al.take(n));
        yr.copy_from_slice(y0);
        sr.copy_from_slice(s0);
        let cr = sf_reference(r, yr, sr, gs, xr);
        exact(
            s,
            name,
            "3 steps, eval, train: bit-exact vs f32 reference, counters equal (specials mixed in)",
            c == Some(cr),
            &[(x, xr), (y, yr), (st, sr)],
        );
        if active.backend() != Backend::Scalar {
            let (c2, ys, ss, xs) = run(&mut al, Some(&Exec::scalar()));
            exact(
                s,
                name,
                "bit-exact: active backend vs Backend::Scalar (steps, eval, train)",
                c2.is_some() && c2 == c,
                &[(x, xs), (y, ys), (st, ss)],
            );
        }
    }
    {
        const STEPS: usize = 5;
        let mut al = Bump::new(&mut *a32);
        let mut al64 = Bump::new(&mut *a64);
        let mut rng = seeded(330 + name.len() as u64);
        let (y, st, x, gs) = (al.take(n), al.take(ns * n), al.take(n), al.take(STEPS * n));
        fill_uniform(&mut rng, y, -1.0, 1.0);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let (yr, sr, xr) = (al64.take(n), al64.take(ns * n), al64.take(n));
        widen(y, yr);
        let ok = sf_kernel(r, &active, y, st, gs, x).is_some();
        sf_reference(r, yr, sr, gs, xr);
        let worst = rel_err(x, xr).max(rel_err(y, yr)).max(rel_err(st, sr));
        close(
            s,
            name,
            "vs f64 reference, 5 steps, eval, train, rel 1e-5",
            ok,
            worst,
        );
    }
}

// ---------------------------------------------------------------------------------- Adam8

/// The value of `code` (signed: `m`, else `v`), as documented for each quantizer.
fn q_decode(q: Quantizer, signed: bool, code: u8) -> f32 {
    match q {
        Quantizer::Dynamic if signed => SIGNED_MAP[code as usize],
        Quantizer::Dynamic => UNSIGNED_MAP[code as usize],
        Quantizer::Linear { bits } if signed => {
            let l = ((1u32 << (bits - 1)) - 1) as f32;
            (code as f32 - l) / l
        }
        Quantizer::Linear { bits } => code as f32 / ((1u32 << bits) - 1) as f32,
    }
}

/// The code of `x` (not NaN): dynamic maps, the first code `>= x` found by a linear scan and the
/// nearer of it and the one below (ties: the smaller); linear grids, `round(clamp(x)·L)`.
fn q_encode(q: Quantizer, signed: bool, x: f32) -> u8 {
    match q {
        Quantizer::Dynamic => {
            let map = if signed { &SIGNED_MAP } else { &UNSIGNED_MAP };
            let lo = map.iter().position(|&c| c >= x).unwrap_or(256);
            if lo == 0 {
                0
            } else if lo == 256 {
                255
            } else if map[lo] - x < x - map[lo - 1] {
                lo as u8
            } else {
                (lo - 1) as u8
            }
        }
        Quantizer::Linear { bits } if signed => {
            let l = ((1u32 << (bits - 1)) - 1) as f32;
            (libm::roundf(x.clamp(-1.0, 1.0) * l) + l) as u8
        }
        Quantizer::Linear { bits } => {
            libm::roundf(x.clamp(0.0, 1.0) * ((1u32 << bits) - 1) as f32) as u8
        }
    }
}

/// The code of `x` in a block of scale `sc` (the code of 0 if `sc` is 0 or `x / sc` is NaN).
fn q_code(q: Quantizer, signed: bool, x: f32, sc: f32) -> u8 {
    let r = x / sc;
    if sc == 0.0 || r.is_nan() {
        match q {
            _ if !signed => 0,
            Quantizer::Dynamic => 127,
            Quantizer::Linear { bits } => ((1u32 << (bits - 1)) - 1) as u8,
        }
    } else {
        q_encode(q, signed, r)
    }
}

fn adam8_as_adam(k: &Adam8) -> RefRule {
    RefRule::Adam(Adam {
        lr: k.lr,
        beta1: k.beta1,
        beta2: k.beta2,
        eps: k.eps,
        weight_decay: k.weight_decay,
        amsgrad: false,
    })
}

/// The largest value (of `|x|` with `abs`), NaN if any is NaN, 0 for none.
fn block_max(xs: &[f32], abs: bool) -> f32 {
    let mut m = 0.0f32;
    for &x in xs {
        let x = if abs { libm::fabsf(x) } else { x };
        if x.is_nan() {
            return f32::NAN;
        }
        if x > m {
            m = x;
        }
    }
    m
}

/// One Adam8 step from the documentation: per block, decode, f32 Adam (`rules::ref_elem`), new
/// scales, encode.
fn adam8_ref(k: &Adam8, t: u64, p: &mut [f32], g: &[f32], codes: &mut [u8], scales: &mut [f32]) {
    let n = p.len();
    let blocks = n.div_ceil(BLOCK);
    let (q, adam) = (k.quantizer, adam8_as_adam(k));
    let (cm, cv) = codes.split_at_mut(n);
    let (sm, sv) = scales.split_at_mut(blocks);
    let (mut m, mut v) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
    for b in 0..blocks {
        let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
        for i in lo..hi {
            let mut st = [
                q_decode(q, true, cm[i]) * sm[b],
                q_decode(q, false, cv[i]) * sv[b],
                0.0,
            ];
            ref_elem(adam, t, &mut p[i], &mut st, g[i]);
            (m[i - lo], v[i - lo]) = (st[0], st[1]);
        }
        sm[b] = block_max(&m[..hi - lo], true);
        sv[b] = block_max(&v[..hi - lo], false);
        for i in lo..hi {
            cm[i] = q_code(q, true, m[i - lo], sm[b]);
            cv[i] = q_code(q, false, v[i - lo], sv[b]);
        }
    }
}

fn codes_as_f32(c: &[u8], out: &mut [f32]) -> usize {
    for (o, c) in out.iter_mut().zip(c) {
        *o = *c as f32;
    }
    c.len()
}

fn check_adam8(s: &mut Suite, a32: &mut [f32], a64: &mut [f64], name: &str, k: Adam8) {
    let n = N_CHECK;
    let blocks = n.div_ceil(BLOCK);
    let (nc, nsc) = (Adam8::codes_len(n), Adam8::scales_len(n));
    let active = Exec::active();
    {
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(340 + name.len() as u64);
        let p0 = al.take(n);
        fill_uniform(&mut rng, p0, -1.0, 1.0);
        let gs = al.take(STEPS * n);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let c0 = bytes(&mut al, nc);
        for c in c0.iter_mut() {
            *c = (uniform01(&mut rng) * 256.0) as u8;
        }
        let sc0 = al.take(nsc);
        fill_uniform(&mut rng, &mut sc0[..blocks], 0.0, 0.1);
        fill_uniform(&mut rng, &mut sc0[blocks..], 0.0, 0.01);
        // The kernel (exec: Some) or the reference (None) from the initial state, `steps` steps
        // with the gradients `gs`.
        let run = arena_fn_gs(|al, exec: Option<&Exec>, gs: &[f32], steps: usize| {
            let (p, c, sc) = (al.take(n), bytes(al, nc), al.take(nsc));
            p.copy_from_slice(p0);
            c.copy_from_slice(c0);
            sc.copy_from_slice(sc0);
            let mut ok = true;
            for t in 1..=steps {
                let g = &gs[(t - 1) * n..t * n];
                match exec {
                    Some(e) => ok &= k.step_with(e, t as u64, p, g, c, sc).is_ok(),
                    None => adam8_ref(&k, t as u64, p, g, c, sc),
                }
            }
            let cf = al.take(nc);
            codes_as_f32(c, cf);
            (ok, p, cf, sc)
        });
        let (ok, p, c, sc) = run(&mut al, Some(&active), gs, STEPS);
        let (_, pr, cr, scr) = run(&mut al, None, gs, STEPS);
        exact(
            s,
            name,
            "3 steps bit-exact vs f32 reference (params, codes, scales)",
            ok,
            &[(p, pr), (c, cr), (sc, scr)],
        );
        if active.backend() != Backend::Scalar {
            let (ok2, ps, cs, ss) = run(&mut al, Some(&Exec::scalar()), gs, STEPS);
            exact(
                s,
                name,
                "bit-exact: active backend vs Backend::Scalar",
                ok2,
                &[(p, ps), (c, cs), (sc, ss)],
            );
        }
        // NaN and +Inf gradients in block 0 at step 1: bit-exact vs the reference, and the whole
        // block's parameters NaN after step 2 while other blocks stay finite.
        let g2 = al.take(2 * n);
        g2.copy_from_slice(&gs[..2 * n]);
        g2[1] = f32::NAN;
        g2[2] = f32::INFINITY;
        let (ok, p, c, sc) = run(&mut al, Some(&active), g2, 2);
        let (_, pr, cr, scr) = run(&mut al, None, g2, 2);
        exact(
            s,
            name,
            "NaN/Inf gradient, 2 steps: bit-exact vs f32 reference",
            ok,
            &[(p, pr), (c, cr), (sc, scr)],
        );
        let b0 = n.min(BLOCK);
        s.check(
            name,
            "NaN/Inf gradient poisons its block only",
            p[..b0].iter().all(|x| x.is_nan()) && p[b0..].iter().all(|x| x.is_finite()),
        );
    }
    {
        // f64: each step from the kernel's decoded state (exact in f64), the parameters carried
        // in f64; the parameters within rel 1e-5 after 3 steps, every new code within one code of
        // the code of the f64 moment.
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut al64 = Bump::new(&mut *a64);
        let mut rng = seeded(350 + name.len() as u64);
        let (p, gs, c, sc) = (
            al.take(n),
            al.take(STEPS * n),
            bytes(&mut al, nc),
            al.take(nsc),
        );
        fill_uniform(&mut rng, p, -1.0, 1.0);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let (pr, mr, vr) = (al64.take(n), al64.take(n), al64.take(n));
        widen(p, pr);
        let adam = adam8_as_adam(&k);
        let (mut ok, mut codes_ok) = (true, true);
        for t in 1..=STEPS {
            for i in 0..n {
                let b = i / BLOCK;
                mr[i] = q_decode(k.quantizer, true, c[i]) as f64 * sc[b] as f64;
                vr[i] = q_decode(k.quantizer, false, c[n + i]) as f64 * sc[blocks + b] as f64;
            }
            let g = &gs[(t - 1) * n..t * n];
            ok &= k.step_with(&active, t as u64, p, g, c, sc).is_ok();
            for i in 0..n {
                let mut st = [mr[i], vr[i], 0.0];
                ref_elem(adam, t as u64, &mut pr[i], &mut st, g[i] as f64);
                let b = i / BLOCK;
                let cm = q_code(k.quantizer, true, st[0] as f32, sc[b]);
                let cv = q_code(k.quantizer, false, st[1] as f32, sc[blocks + b]);
                codes_ok &= c[i].abs_diff(cm) <= 1 && c[n + i].abs_diff(cv) <= 1;
            }
        }
        close(
            s,
            name,
            "vs f64 reference, 3 steps, params rel 1e-5, codes within one code",
            ok && codes_ok,
            rel_err(p, pr),
        );
    }
}

/// The dynamic maps' documented structure: sorted, `SIGNED_MAP` symmetric with 0 at 127 and 1
/// at 255, `UNSIGNED_MAP` from 0 to 1.
fn check_maps(s: &mut Suite) {
    let sorted = |m: &[f32; 256]| m.windows(2).all(|p| p[0] < p[1]);
    let sym = (0..127).all(|j| SIGNED_MAP[126 - j] == -SIGNED_MAP[128 + j]);
    s.check(
        "adam8_maps",
        "dynamic maps sorted, signed map symmetric, 0 and 1.0 at the documented codes",
        sorted(&SIGNED_MAP)
            && sorted(&UNSIGNED_MAP)
            && sym
            && SIGNED_MAP[127] == 0.0
            && SIGNED_MAP[255] == 1.0
            && UNSIGNED_MAP[0] == 0.0
            && UNSIGNED_MAP[255] == 1.0,
    );
}

// ------------------------------------------------------------------------------ Adafactor

/// `Σ x² / n` in f64 in order.
fn mean_sq(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0u32);
    for x in xs {
        s += x * x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// `Σ x² / n` in f64 with element `i`'s square added to partial sum `i mod 8` in index order and
/// the eight partial sums combined pairwise (Adafactor's RMS values and row means); 0 for none.
fn mean_sq8(xs: impl Iterator<Item = f64>) -> f64 {
    let (mut a, mut n) = ([0.0f64; 8], 0usize);
    for x in xs {
        a[n % 8] += x * x;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))) / n as f64
    }
}

/// One Adafactor step from the documentation: `shape` = `Some((rows, cols))` for the factored
/// matrix form (state `R | C`), `None` for the vector form (state `V`).
fn adafactor_ref<F: Real>(
    k: &Adafactor<f32>,
    t: u64,
    shape: Option<(usize, usize)>,
    p: &mut [F],
    g: &[f32],
    st: &mut [F],
) {
    let n = p.len();
    let tf = t as f64;
    let wt = F::from_f64(libm::pow(tf, k.beta2_decay as f64));
    let rho = (k.lr as f64).min(1.0 / libm::sqrt(tf));
    let rms = libm::sqrt(mean_sq8(p.iter().map(|x| x.to_f64())));
    let alpha = (k.eps2 as f64).max(rms) * rho;
    let eps1 = w::<F>(k.eps1.unwrap_or(f32::EPSILON));
    let e2 = eps1 * eps1;
    let upd = |v: F, g: F| g * (F::one() / max_nan(v, e2).sqrt());
    let keep = F::one() - w::<F>(k.lr) * w::<F>(k.weight_decay);
    let (rows, cols) = shape.unwrap_or((1, n));
    let (r, c) = st.split_at_mut(if shape.is_some() { rows } else { 0 });
    let denom = if shape.is_some() {
        for i in 0..rows {
            let mean = F::from_f64(mean_sq8((0..cols).map(|j| g[i * cols + j] as f64)));
            r[i] = r[i] + wt * (mean - r[i]);
        }
        for j in 0..cols {
            let mean = F::from_f64(mean_sq((0..rows).map(|i| g[i * cols + j] as f64)));
            c[j] = c[j] + wt * (mean - c[j]);
        }
        let rm = r.iter().map(|x| x.to_f64()).fold(0.0, |a, b| a + b) / rows as f64;
        max_nan(F::from_f64(rm), eps1)
    } else {
        for (v, g) in c.iter_mut().zip(g) {
            let gi = w::<F>(*g);
            *v = *v + wt * (gi * gi - *v);
        }
        F::one()
    };
    let vv = |r: &[F], c: &[F], q: usize| {
        if shape.is_some() {
            r[q / cols] * c[q % cols] / denom
        } else {
            c[q]
        }
    };
    let u_rms = libm::sqrt(mean_sq8(
        (0..n).map(|q| upd(vv(r, c, q), w::<F>(g[q])).to_f64()),
    ));
    let step = F::from_f64(alpha / 1.0f64.max(u_rms / k.d as f64));
    for q in 0..n {
        p[q] = p[q] * keep - step * upd(vv(r, c, q), w::<F>(g[q]));
    }
}

fn check_adafactor(
    s: &mut Suite,
    a32: &mut [f32],
    a64: &mut [f64],
    name: &str,
    k: Adafactor<f32>,
    shape: Option<(usize, usize)>,
) {
    let n = shape.map_or(N_CHECK, |(r, c)| r * c);
    let ns = shape.map_or(n, |(r, c)| r + c);
    let active = Exec::active();
    let kernel = |exec: &Exec, t: usize, p: &mut [f32], g: &[f32], st: &mut [f32]| match shape {
        Some((r, c)) => k.step_matrix(exec, t as u64, r, c, p, g, st),
        None => k.step_vector(exec, t as u64, p, g, st),
    };
    {
        const STEPS: usize = 3;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(360 + name.len() as u64);
        let (p0, gs) = (al.take(n), al.take(STEPS * n));
        match shape {
            // The vector form is elementwise but for the RMS: specials mixed in.
            None => {
                fill_mixed(&mut rng, p0, 4.0, 0.04);
                fill_mixed(&mut rng, gs, 2.0, 0.04);
            }
            // The matrix form, finite, one zero gradient row at step 1 (R_i = 0: V floored).
            Some((_, c)) => {
                fill_uniform(&mut rng, p0, -1.0, 1.0);
                fill_uniform(&mut rng, gs, -1.0, 1.0);
                gs[c..2 * c].fill(0.0);
            }
        }
        let run = arena_fn(|al, exec: Option<&Exec>| {
            let (p, st) = (al.take(n), al.take(ns));
            p.copy_from_slice(p0);
            let mut ok = true;
            for t in 1..=STEPS {
                let g = &gs[(t - 1) * n..t * n];
                match exec {
                    Some(e) => ok &= kernel(e, t, p, g, st).is_ok(),
                    None => adafactor_ref(&k, t as u64, shape, p, g, st),
                }
            }
            (ok, p, st)
        });
        let (ok, p, st) = run(&mut al, Some(&active));
        let (_, pr, sr) = run(&mut al, None);
        let what = if shape.is_some() {
            "3 steps bit-exact vs f32 reference (f64 row means by 8 partials, column means in order; a zero gradient row)"
        } else {
            "3 steps bit-exact vs f32 reference (f64 RMS in order; specials mixed in)"
        };
        exact(s, name, what, ok, &[(p, pr), (st, sr)]);
        if active.backend() != Backend::Scalar {
            let (ok2, ps, ss) = run(&mut al, Some(&Exec::scalar()));
            exact(
                s,
                name,
                "bit-exact: active backend vs Backend::Scalar",
                ok2,
                &[(p, ps), (st, ss)],
            );
        }
    }
    {
        const STEPS: usize = 5;
        let mut al = Bump::new(&mut *a32);
        let mut al64 = Bump::new(&mut *a64);
        let mut rng = seeded(370 + name.len() as u64);
        let (p, gs, st) = (al.take(n), al.take(STEPS * n), al.take(ns));
        fill_uniform(&mut rng, p, -1.0, 1.0);
        fill_uniform(&mut rng, gs, -1.0, 1.0);
        let (pr, sr) = (al64.take(n), al64.take(ns));
        widen(p, pr);
        let mut ok = true;
        for t in 1..=STEPS {
            let g = &gs[(t - 1) * n..t * n];
            ok &= kernel(&active, t, p, g, st).is_ok();
            adafactor_ref(&k, t as u64, shape, pr, g, sr);
        }
        let worst = rel_err(p, pr).max(rel_err(st, sr));
        close(s, name, "vs f64 reference, 5 steps, rel 1e-5", ok, worst);
    }
}

// ----------------------------------------------------------------------------------- Muon

/// `ATen`'s lerp with the form chosen by `|wt| < 0.5`; `1 − wt` rounded to f32 (the kernel's
/// constants).
fn muon_lerp<F: Real>(x: F, y: F, wt: f32) -> F {
    if libm::fabsf(wt) < 0.5 {
        x + w::<F>(wt) * (y - x)
    } else {
        y - (y - x) * w::<F>(1.0 - wt)
    }
}

/// First-order bound of the error of [`muon_lerp`] in f32 given bounds `ex`, `ey` of its inputs
/// (`x`, `y`, `res`: exact values): one rounding per operation.
fn lerp_bound(wt: f32, ex: f64, ey: f64, x: f64, y: f64, res: f64) -> f64 {
    let d = (y - x).abs();
    if libm::fabsf(wt) < 0.5 {
        let a = (wt as f64).abs();
        (1.0 + a) * ex + a * ey + U * (2.0 * a * d + res.abs())
    } else {
        let o = ((1.0 - wt) as f64).abs();
        (1.0 + o) * ey + o * ex + U * (2.0 * o * d + res.abs())
    }
}

/// The Frobenius norm.
fn fro(xs: &[f64]) -> f64 {
    libm::sqrt(xs.iter().map(|x| x * x).sum::<f64>())
}

/// `c = a·b` for `r × r` matrices (at most 4 × 4) in f64.
fn mm4(r: usize, a: &[f64; 16], b: &[f64; 16]) -> [f64; 16] {
    let mut c = [0.0; 16];
    for i in 0..r {
        for j in 0..r {
            c[i * r + j] = (0..r).map(|q| a[i * r + q] * b[q * r + j]).sum();
        }
    }
    c
}

/// The Lipschitz constant of one Newton–Schulz step `X ↦ aX + b(XXᵀ)X + c(XXᵀ)²X` at matrices
/// whose singular values lie in `[0, σ̄]`, in the Frobenius norm: in the singular-vector basis the
/// step's derivative acts on each pair of coefficients through divided differences of
/// `p(σ) = aσ + bσ³ + cσ⁵`, bounded by `max |p'(σ)| = max |a + 3bs + 5cs²|` and
/// `max |p(σ)/σ| = max |a + bs + cs²|` over `s = σ² ∈ [0, σ̄²]` (quadratics in `s`: their
/// extremes are at the ends or the vertex).
fn ns_lipschitz(a: f64, b: f64, c: f64, sbar: f64) -> f64 {
    let smax = sbar * sbar;
    let quad_max = |q0: f64, q1: f64, q2: f64| {
        let f = |s: f64| (q0 + q1 * s + q2 * s * s).abs();
        let mut m = f(0.0).max(f(smax));
        if q2 != 0.0 {
            let v = -q1 / (2.0 * q2);
            if v > 0.0 && v < smax {
                m = m.max(f(v));
            }
        }
        m
    };
    quad_max(a, 3.0 * b, 5.0 * c).max(quad_max(a, b, c))
}

/// One Muon step from the documentation, every product summed in index order from 0 with one
/// multiply then one add per term (what `Backend::Scalar`'s `MatMul` micro-kernel computes).
/// `ws` = `X | Y` (parameter layout) `| A | A·A` (r × r). With `bd = Some([E_B | E_P | E_U | E_Y])`
/// (f64 instantiation), carries first-order bounds of the error of an f32 computation on any
/// backend: the elementwise steps one rounding per operation, each product within
/// `(k + 4)·u·Σ|a||b|` (the `MatMul` bound), the Newton–Schulz error in the Frobenius norm
/// (`E ← L·E + local`, `L` from [`ns_lipschitz`] at `σ̄ = ‖A^8‖_F^(1/16) >= σ_max(X)`), then
/// `E_P ← keep·E_P + η·E + 2u(|keep·P| + η|X|)` per element.
#[allow(clippy::too_many_arguments)]
fn muon_ref<F: Real>(
    k: &Muon<f32>,
    rows: usize,
    cols: usize,
    p: &mut [F],
    g: &[f32],
    b: &mut [F],
    ws: &mut [F],
    mut bd: Option<&mut [f64]>,
) {
    let n = rows * cols;
    let tall = rows > cols;
    let (r, c) = (rows.min(cols), rows.max(cols));
    assert!(r <= 4);
    let (x, rest) = ws.split_at_mut(n);
    let (y, rest) = rest.split_at_mut(n);
    let (a, aa) = rest.split_at_mut(r * r);
    // X[i][j] (r × c) in the parameters' layout.
    let at = |i: usize, j: usize| if tall { j * cols + i } else { i * cols + j };
    let w1 = (1.0 - k.momentum as f64) as f32;
    for i in 0..n {
        let gi = w::<F>(g[i]);
        let bo = b[i];
        b[i] = muon_lerp(bo, gi, w1);
        x[i] = if k.nesterov {
            muon_lerp(gi, b[i], k.momentum)
        } else {
            b[i]
        };
        if let Some(bd) = bd.as_deref_mut() {
            let (gf, bof, bf) = (g[i] as f64, bo.to_f64(), b[i].to_f64());
            let eb = lerp_bound(w1, bd[i], 0.0, bof, gf, bf);
            bd[i] = eb;
            bd[2 * n + i] = if k.nesterov {
                lerp_bound(k.momentum, 0.0, eb, gf, bf, x[i].to_f64())
            } else {
                eb
            };
        }
    }
    let ss: f64 = x.iter().map(|v| v.to_f64() * v.to_f64()).sum();
    let norm = F::from_f64(libm::sqrt(ss));
    let denom = max_nan(norm, w::<F>(k.eps));
    let mut e_x = 0.0;
    if let Some(bd) = bd.as_deref_mut() {
        // E_d = ‖E_U‖_F + u·‖U‖; then ‖E_X0‖_F from E_U/d + |U|·E_d/d² + u|X0|.
        let d = denom.to_f64();
        let ed = fro(&bd[2 * n..3 * n]) + U * d;
        let mut s2 = 0.0;
        for i in 0..n {
            let u = x[i].to_f64().abs();
            let e = bd[2 * n + i] / d + u * ed / (d * d) + U * u / d;
            s2 += e * e;
        }
        e_x = libm::sqrt(s2);
    }
    for v in x.iter_mut() {
        *v = *v / denom;
    }
    let (ca, cb, cc) = k.ns_coefficients;
    let (fa, fb, fc) = (w::<F>(ca), w::<F>(cb), w::<F>(cc));
    for _ in 0..k.ns_steps {
        for i in 0..r {
            for j in 0..r {
                let mut s = F::zero();
                for q in 0..c {
                    s = x[at(i, q)] * x[at(j, q)] + s;
                }
                a[i * r + j] = s;
            }
        }
        for i in 0..r {
            for j in 0..r {
                let mut s = F::zero();
                for q in 0..r {
                    s = a[i * r + q] * a[q * r + j] + s;
                }
                aa[i * r + j] = s;
            }
        }
        // Bounds that need A·A before it is overwritten.
        let (mut ea, mut egg, mut sbar) = ([0.0f64; 16], [0.0f64; 16], 0.0);
        if bd.is_some() {
            let ab = |m: &[F]| -> [f64; 16] {
                core::array::from_fn(|q| m.get(q).map_or(0.0, |v| v.to_f64()))
            };
            let (af, aaf) = (ab(a), ab(aa));
            let a4 = mm4(r, &aaf, &aaf);
            sbar = libm::pow(fro(&mm4(r, &a4, &a4)[..r * r]), 1.0 / 16.0);
            let mut eaa = [0.0f64; 16];
            for i in 0..r {
                for j in 0..r {
                    let s: f64 = (0..c)
                        .map(|q| (x[at(i, q)].to_f64() * x[at(j, q)].to_f64()).abs())
                        .sum();
                    ea[i * r + j] = (c + 4) as f64 * U * s;
                }
            }
            for i in 0..r {
                for j in 0..r {
                    let (mut e, mut s) = (0.0, 0.0);
                    for q in 0..r {
                        e += ea[i * r + q] * af[q * r + j].abs()
                            + af[i * r + q].abs() * ea[q * r + j];
                        s += (af[i * r + q] * af[q * r + j]).abs();
                    }
                    eaa[i * r + j] = e + (r + 4) as f64 * U * s;
                }
            }
            for q in 0..r * r {
                let (t1, t2) = ((cc as f64 * aaf[q]).abs(), (cb as f64 * af[q]).abs());
                egg[q] =
                    (cc as f64).abs() * eaa[q] + (cb as f64).abs() * ea[q] + 2.0 * U * (t1 + t2);
            }
        }
        for q in 0..r * r {
            aa[q] = fc * aa[q] + fb * a[q];
        }
        for i in 0..r {
            for j in 0..c {
                let mut s = F::zero();
                for q in 0..r {
                    s = aa[i * r + q] * x[at(q, j)] + s;
                }
                y[at(i, j)] = s;
            }
        }
        if let Some(bd) = bd.as_deref_mut() {
            let ey = &mut bd[3 * n..4 * n];
            for i in 0..r {
                for j in 0..c {
                    let (mut e, mut s) = (0.0, 0.0);
                    for q in 0..r {
                        let xq = x[at(q, j)].to_f64().abs();
                        e += egg[i * r + q] * xq;
                        s += aa[i * r + q].to_f64().abs() * xq;
                    }
                    let (xa, ya) = (x[at(i, j)].to_f64().abs(), y[at(i, j)].to_f64().abs());
                    ey[at(i, j)] =
                        e + (r + 4) as f64 * U * s + 2.0 * U * ((ca as f64).abs() * xa + ya);
                }
            }
            let l = ns_lipschitz(ca as f64, cb as f64, cc as f64, sbar);
            e_x = l * e_x + fro(ey);
        }
        for q in 0..n {
            x[q] = fa * x[q] + F::one() * y[q];
        }
    }
    let lr = k.lr as f64;
    let factor = match k.adjust_lr {
        AdjustLr::Original => libm::sqrt((rows as f64 / cols as f64).max(1.0)),
        AdjustLr::MatchRmsAdamw => 0.2 * libm::sqrt(rows.max(cols) as f64),
    };
    let keep = (1.0 - lr * k.weight_decay as f64) as f32;
    let eta = (lr * factor) as f32;
    for i in 0..n {
        let po = p[i];
        p[i] = w::<F>(keep) * po + w::<F>(-eta) * x[i];
        if let Some(bd) = bd.as_deref_mut() {
            let (kp, ex) = (
                (keep as f64 * po.to_f64()).abs(),
                (eta as f64 * x[i].to_f64()).abs(),
            );
            bd[n + i] = keep as f64 * bd[n + i] + eta as f64 * e_x + 2.0 * U * (kp + ex);
        }
    }
}

fn check_muon(
    s: &mut Suite,
    a32: &mut [f32],
    a64: &mut [f64],
    name: &str,
    k: Muon<f32>,
    rows: usize,
    cols: usize,
) {
    const STEPS: usize = 3;
    let n = rows * cols;
    let wl = Muon::<f32>::workspace_len(rows, cols);
    let active = Exec::active();
    let mut al = Bump::new(&mut *a32);
    let mut al64 = Bump::new(&mut *a64);
    let mut rng = seeded(380 + name.len() as u64);
    let (p0, b0, gs) = (al.take(n), al.take(n), al.take(STEPS * n));
    fill_uniform(&mut rng, p0, -1.0, 1.0);
    fill_uniform(&mut rng, b0, -0.1, 0.1);
    fill_uniform(&mut rng, gs, -1.0, 1.0);
    let run = arena_fn(|al, exec: Option<&Exec>| {
        let (p, b, ws) = (al.take(n), al.take(n), al.take(wl));
        p.copy_from_slice(p0);
        b.copy_from_slice(b0);
        let mut ok = true;
        for t in 0..STEPS {
            let g = &gs[t * n..(t + 1) * n];
            match exec {
                Some(e) => ok &= k.step_matrix(e, rows, cols, p, g, b, ws).is_ok(),
                None => muon_ref(&k, rows, cols, p, g, b, ws, None),
            }
        }
        (ok, p, b)
    });
    // (a) Backend::Scalar vs the f32 reference.
    let (ok, ps, bs) = run(&mut al, Some(&Exec::scalar()));
    let (_, pr, br) = run(&mut al, None);
    exact(
        s,
        name,
        "3 steps, Backend::Scalar bit-exact vs f32 reference (products in index order)",
        ok,
        &[(ps, pr), (bs, br)],
    );
    // (c) The active backend vs f64 with the derived bound, doubled (first order).
    let (ok, p, b): (bool, &[f32], &[f32]) = if active.backend() != Backend::Scalar {
        let (ok, p, b) = run(&mut al, Some(&active));
        (ok, p, b)
    } else {
        (ok, ps, bs)
    };
    let (p64, b64, ws64, bd) = (al64.take(n), al64.take(n), al64.take(wl), al64.take(4 * n));
    widen(p0, p64);
    widen(b0, b64);
    for t in 0..STEPS {
        let g = &gs[t * n..(t + 1) * n];
        muon_ref(&k, rows, cols, p64, g, b64, ws64, Some(&mut *bd));
    }
    let (mut ratio, mut rel_tol) = (0.0f64, 0.0f64);
    let mut within = ok;
    for i in 0..n {
        for (got, want, tol) in [(p[i], p64[i], 2.0 * bd[n + i]), (b[i], b64[i], 2.0 * bd[i])] {
            let e = (got as f64 - want).abs();
            within &= e <= tol;
            ratio = ratio.max(e / tol);
            rel_tol = rel_tol.max(tol / (1.0 + want.abs()));
        }
    }
    s.check(
        name,
        "active backend vs f64 reference, 3 steps, within 2x the first-order bound",
        within,
    );
    out!("    worst error / tolerance {ratio:.2e}; largest tolerance {rel_tol:.2e}·(1 + |x|)\n");
    // (b) The active backend vs Backend::Scalar: momentum bit for bit, params within 2·tol.
    if active.backend() != Backend::Scalar {
        let close = (0..n).all(|i| (p[i] as f64 - ps[i] as f64).abs() <= 4.0 * bd[n + i]);
        exact(
            s,
            name,
            "active backend vs Backend::Scalar: momentum bit-exact, params within 2x tolerance",
            close,
            &[(b, bs)],
        );
    }
    // A NaN gradient reaches the norm: every parameter NaN.
    let (p, b, ws, g) = (al.take(n), al.take(n), al.take(wl), al.take(n));
    p.copy_from_slice(p0);
    g.copy_from_slice(&gs[..n]);
    g[n / 2] = f32::NAN;
    let ok = k.step_matrix(&active, rows, cols, p, g, b, ws).is_ok();
    s.check(
        name,
        "one NaN gradient makes every parameter NaN",
        ok && p.iter().all(|x| x.is_nan()),
    );
}

/// All checks of this module.
pub fn all(s: &mut Suite, a32: &mut [f32], a64: &mut [f64]) {
    check_lamb(s, a32, a64, "lamb", Lamb::with_weight_decay(1e-2f32, 0.01));
    check_lamb(s, a32, a64, "lamb_no_decay", Lamb::new(1e-3f32));
    check_sf(
        s,
        a32,
        a64,
        "sf_adamw",
        Sf::AdamW(ScheduleFreeAdamW {
            warmup_steps: 2,
            weight_decay: 0.01,
            r: 0.5,
            ..ScheduleFreeAdamW::new(1e-2f32)
        }),
    );
    check_sf(
        s,
        a32,
        a64,
        "sf_sgd",
        Sf::Sgd(ScheduleFreeSgd {
            weight_decay: 1e-3,
            ..ScheduleFreeSgd::new(0.1f32)
        }),
    );
    check_maps(s);
    check_adam8(s, a32, a64, "adam8w", Adam8::adamw(1e-2, 0.01));
    check_adam8(
        s,
        a32,
        a64,
        "adam8_linear4_l2",
        Adam8 {
            weight_decay: WeightDecay::L2(0.01),
            quantizer: Quantizer::Linear { bits: 4 },
            ..Adam8::new(1e-2)
        },
    );
    let af = Adafactor {
        weight_decay: 0.1,
        ..Adafactor::new(1e-2f32)
    };
    let shape = if cfg!(small_ram) { (5, 13) } else { (7, 37) };
    check_adafactor(s, a32, a64, "adafactor_matrix", af, Some(shape));
    check_adafactor(s, a32, a64, "adafactor_vector", af, None);
    check_muon(s, a32, a64, "muon_4x6", Muon::new(0.5f32), 4, 6);
    check_muon(
        s,
        a32,
        a64,
        "muon_6x4",
        Muon::new(0.5f32)
            .with_nesterov(false)
            .with_adjust_lr(AdjustLr::MatchRmsAdamw),
        6,
        4,
    );
}
