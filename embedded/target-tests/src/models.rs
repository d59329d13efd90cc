//! Model-pass checks against plain f64 references written here (naive loops, `libm`).
//!
//! Budgets, as in the host tests (`kernels/tests/suite/models.rs`):
//! - products (MatMul, Dense, Conv2d, Sensing residuals): each output within
//!   `(k + 4)·u·Σ|terms|` of the exact f64 value, `k` the number of terms it adds, `u = 2^-24`;
//!   Sensing gradients add the residuals' own budget propagated through `|A|·|V|`;
//! - ReLU: exact; tanh: `4u·|y| + 2^-149` of the f64 `tanh` (libm's `tanhf` is within 2 ulp);
//! - SoftmaxCrossEntropy: `2e-5·(1 + |x|)` relative; Mlp and PatchCnn (composed passes):
//!   `2e-4·(1 + |x|)` relative, the host tests' MLP budget.
//! Elementwise passes are also compared bit for bit with `Backend::Scalar` where the active
//! backend is a SIMD one.

use crate::real::{same, Bump};
use crate::Suite;
use descent_kernels::models::{
    Activation, Conv2d, Dense, MatMul, Mlp, PatchCnn, Pool, Sensing, SoftmaxCrossEntropy,
};
use descent_kernels::random::{fill_uniform, seeded, Xoshiro256PlusPlus};
use descent_kernels::Backend;

const U: f64 = f32::EPSILON as f64 / 2.0;

/// An exact-enough sum of products with its absolute-value sum and term count.
#[derive(Clone, Copy, Default)]
struct Acc {
    v: f64,
    abs: f64,
    k: u32,
}
impl Acc {
    fn add(&mut self, a: f64, b: f64) {
        self.v += a * b;
        self.abs += (a * b).abs();
        self.k += 1;
    }
    fn budget(&self) -> f64 {
        (self.k as f64 + 4.0) * U * self.abs
    }
    fn holds(&self, got: f32) -> bool {
        (got as f64 - self.v).abs() <= self.budget()
    }
}

fn rel_ok(got: f32, want: f64, rel: f64) -> bool {
    (got as f64 - want).abs() <= rel * (1.0 + want.abs())
}

fn uniform<'a>(al: &mut Bump<'a, f32>, rng: &mut Xoshiro256PlusPlus, n: usize) -> &'a mut [f32] {
    let v = al.take(n);
    fill_uniform(rng, v, -1.0, 1.0);
    v
}

fn matmul(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(300);
    let (m, n, k) = (7, 9, 13);
    for (ta, tb, acc) in [
        (false, false, false),
        (true, false, true),
        (false, true, false),
        (true, true, true),
    ] {
        let mut al = Bump::new(&mut *a32);
        let a = uniform(&mut al, &mut rng, m * k);
        let b = uniform(&mut al, &mut rng, k * n);
        let c0 = uniform(&mut al, &mut rng, m * n);
        let c = al.take(m * n);
        c.copy_from_slice(c0);
        let spec = MatMul {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            accumulate: acc,
        };
        let mut ok = spec.run(a, b, c).is_ok();
        for i in 0..m {
            for j in 0..n {
                let mut e = Acc::default();
                if acc {
                    e.add(c0[i * n + j] as f64, 1.0);
                }
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    e.add(av as f64, bv as f64);
                }
                ok &= e.holds(c[i * n + j]);
            }
        }
        let what = match (ta, tb) {
            (false, false) => "C = A·B vs f64, (k+4)u·Σ|terms|",
            (true, false) => "C += Aᵀ·B vs f64, (k+4)u·Σ|terms|",
            (false, true) => "C = A·Bᵀ vs f64, (k+4)u·Σ|terms|",
            (true, true) => "C += Aᵀ·Bᵀ vs f64, (k+4)u·Σ|terms|",
        };
        s.check("matmul", what, ok);
    }
}

fn dense(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(301);
    let (bt, i_n, o_n) = (5, 11, 7);
    let mut al = Bump::new(a32);
    let x = uniform(&mut al, &mut rng, bt * i_n);
    let w = uniform(&mut al, &mut rng, i_n * o_n);
    let b = uniform(&mut al, &mut rng, o_n);
    let dy = uniform(&mut al, &mut rng, bt * o_n);
    let y = al.take(bt * o_n);
    let (dx, dw, db) = (al.take(bt * i_n), al.take(i_n * o_n), al.take(o_n));
    let layer = Dense::new(bt, i_n, o_n);
    let mut ok = layer.forward(x, w, b, y).is_ok();
    for r in 0..bt {
        for o in 0..o_n {
            let mut e = Acc::default();
            e.add(b[o] as f64, 1.0);
            for i in 0..i_n {
                e.add(x[r * i_n + i] as f64, w[i * o_n + o] as f64);
            }
            ok &= e.holds(y[r * o_n + o]);
        }
    }
    s.check("dense", "forward y = x·w + b vs f64", ok);
    let mut ok = layer.backward(x, w, dy, Some(&mut *dx), dw, db).is_ok();
    for r in 0..bt {
        for i in 0..i_n {
            let mut e = Acc::default();
            for o in 0..o_n {
                e.add(dy[r * o_n + o] as f64, w[i * o_n + o] as f64);
            }
            ok &= e.holds(dx[r * i_n + i]);
        }
    }
    for i in 0..i_n {
        for o in 0..o_n {
            let mut e = Acc::default();
            for r in 0..bt {
                e.add(x[r * i_n + i] as f64, dy[r * o_n + o] as f64);
            }
            ok &= e.holds(dw[i * o_n + o]);
        }
    }
    for o in 0..o_n {
        let mut e = Acc::default();
        for r in 0..bt {
            e.add(dy[r * o_n + o] as f64, 1.0);
        }
        ok &= e.holds(db[o]);
    }
    s.check("dense", "backward dx, dw, db vs f64", ok);
}

fn activations(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(302);
    let n = 67;
    let mut al = Bump::new(a32);
    let x = al.take(n);
    fill_uniform(&mut rng, x, -3.0, 3.0);
    let dy = uniform(&mut al, &mut rng, n);
    let (y, g) = (al.take(n), al.take(n));
    let (ys, gs) = (al.take(n), al.take(n));
    for (name, act) in [("relu", Activation::Relu), ("tanh", Activation::Tanh)] {
        let mut ok = act.forward(x, y).is_ok();
        g.copy_from_slice(dy);
        ok &= act.backward_in_place_on(Backend::active(), x, g).is_ok();
        let (mut fwd, mut bwd) = (ok, ok);
        for i in 0..n {
            let xi = x[i] as f64;
            let (e, de) = match act {
                Activation::Relu => (xi.max(0.0), if xi > 0.0 { 1.0 } else { 0.0 }),
                _ => {
                    let t = libm::tanh(xi);
                    (t, 1.0 - t * t)
                }
            };
            let tol = |v: f64| 4.0 * U * v.abs() + 1.5e-45;
            fwd &= (y[i] as f64 - e).abs() <= tol(e);
            // dx = dy·φ'(x): φ' from the f32 forward value (≤ 4u) times dy, plus two roundings.
            let dx = dy[i] as f64 * de;
            bwd &= (g[i] as f64 - dx).abs() <= 16.0 * U * (dy[i] as f64).abs() + 1.5e-45;
        }
        s.check(name, "forward vs f64", fwd);
        s.check(name, "backward vs f64", bwd);
        if Backend::active() != Backend::Scalar {
            let mut ok = act.forward_on(Backend::Scalar, x, ys).is_ok();
            gs.copy_from_slice(dy);
            ok &= act.backward_in_place_on(Backend::Scalar, x, gs).is_ok();
            ok &= (0..n).all(|i| same(y[i], ys[i]) && same(g[i], gs[i]));
            s.check(name, "bit-exact: active backend vs Backend::Scalar", ok);
        }
    }
}

/// f64 softmax cross-entropy of one row: returns (loss, lse).
fn ce_row(z: &[f64], y: usize) -> (f64, f64) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|v| libm::exp(v - max)).sum();
    let lse = max + libm::log(sum);
    (lse - z[y], lse)
}

fn softmax(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(303);
    let (bt, c) = (6, 4);
    let mut al = Bump::new(a32);
    let z = al.take(bt * c);
    fill_uniform(&mut rng, z, -4.0, 4.0);
    let labels: [u32; 6] = [0, 3, 1, 2, 2, 0];
    let (per, dz) = (al.take(bt), al.take(bt * c));
    let ce = SoftmaxCrossEntropy::new(bt, c);
    let res = ce.forward_backward(z, &labels, None, per, Some(&mut *dz));
    let mut ok = res.is_ok();
    let mut total = 0.0;
    for i in 0..bt {
        let mut row = [0.0f64; 4];
        for k in 0..c {
            row[k] = z[i * c + k] as f64;
        }
        let (l, lse) = ce_row(&row, labels[i] as usize);
        total += l / bt as f64;
        ok &= rel_ok(per[i], l, 2e-5);
        for k in 0..c {
            let p = libm::exp(row[k] - lse);
            let t = if k == labels[i] as usize { 1.0 } else { 0.0 };
            ok &= rel_ok(dz[i * c + k], (p - t) / bt as f64, 2e-5);
        }
    }
    ok &= res.map_or(false, |l| rel_ok(l, total, 2e-5));
    s.check(
        "softmax_cross_entropy",
        "loss, per-example losses, dlogits vs f64, rel 2e-5",
        ok,
    );
}

fn mlp(s: &mut Suite, a32: &mut [f32]) {
    const B: usize = 5;
    const D: usize = 4;
    const H: usize = 8;
    const C: usize = 3;
    let mut rng = seeded(304);
    let net = Mlp::new(D, H, C, Activation::Tanh);
    let mut al = Bump::new(a32);
    let p = uniform(&mut al, &mut rng, net.param_len());
    let x = uniform(&mut al, &mut rng, B * D);
    let labels: [u32; B] = [0, 2, 1, 1, 0];
    let ws = al.take(net.workspace_len(B));
    let grads = al.take(net.param_len());
    let loss = net.forward(B, p, x, &labels, None, ws);
    let mut ok = loss.is_ok() && net.backward(B, p, x, &labels, ws, grads).is_ok();
    // f64 reference: [W1 (D×H) | b1 (H) | W2 (H×C) | b2 (C)].
    let (w1, b1, w2, b2) = (0, D * H, D * H + H, D * H + H + H * C);
    let pf = |i: usize| p[i] as f64;
    let (mut z1, mut h) = ([[0.0f64; H]; B], [[0.0f64; H]; B]);
    let mut dlog = [[0.0f64; C]; B];
    let mut total = 0.0;
    for r in 0..B {
        for j in 0..H {
            let mut v = pf(b1 + j);
            for i in 0..D {
                v += x[r * D + i] as f64 * pf(w1 + i * H + j);
            }
            z1[r][j] = v;
            h[r][j] = libm::tanh(v);
        }
        let mut logits = [0.0f64; C];
        for k in 0..C {
            let mut v = pf(b2 + k);
            for j in 0..H {
                v += h[r][j] * pf(w2 + j * C + k);
            }
            logits[k] = v;
        }
        let (l, lse) = ce_row(&logits, labels[r] as usize);
        total += l / B as f64;
        for k in 0..C {
            let t = if k == labels[r] as usize { 1.0 } else { 0.0 };
            dlog[r][k] = (libm::exp(logits[k] - lse) - t) / B as f64;
        }
    }
    ok &= loss.map_or(false, |l| rel_ok(l, total, 2e-4));
    let mut g = [0.0f64; D * H + H + H * C + C];
    for r in 0..B {
        let mut dz1 = [0.0f64; H];
        for j in 0..H {
            let mut dh = 0.0;
            for k in 0..C {
                g[w2 + j * C + k] += h[r][j] * dlog[r][k];
                dh += dlog[r][k] * pf(w2 + j * C + k);
            }
            dz1[j] = dh * (1.0 - h[r][j] * h[r][j]);
            let _ = z1[r][j];
        }
        for k in 0..C {
            g[b2 + k] += dlog[r][k];
        }
        for j in 0..H {
            g[b1 + j] += dz1[j];
            for i in 0..D {
                g[w1 + i * H + j] += x[r * D + i] as f64 * dz1[j];
            }
        }
    }
    ok &= (0..g.len()).all(|i| rel_ok(grads[i], g[i], 2e-4));
    s.check(
        "mlp",
        "forward loss and backward gradients vs f64, rel 2e-4",
        ok,
    );
}

fn conv(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(305);
    let (bt, ch, hh, ww, f, (kh, kw), (sh, sw)) = (2, 2, 6, 7, 3, (3, 2), (2, 1));
    let cv = Conv2d::new(bt, ch, hh, ww, f, (kh, kw), (sh, sw));
    let (oh, ow) = cv.out_size();
    let (pos, pl) = (cv.positions(), cv.patch_len());
    let mut al = Bump::new(a32);
    let x = uniform(&mut al, &mut rng, bt * ch * hh * ww);
    let w = uniform(&mut al, &mut rng, f * pl);
    let bias = uniform(&mut al, &mut rng, f);
    let dz = uniform(&mut al, &mut rng, bt * f * pos);
    let z = al.take(bt * f * pos);
    let scratch = al.take(2 * cv.scratch_len());
    let (dx, dw, db) = (al.take(x.len()), al.take(w.len()), al.take(f));
    let xi = |b: usize, c: usize, i: usize, j: usize| x[((b * ch + c) * hh + i) * ww + j] as f64;
    let wi = |fi: usize, c: usize, a: usize, e: usize| w[fi * pl + (c * kh + a) * kw + e] as f64;
    let mut ok = cv
        .forward(x, w, bias, z, &mut scratch[..cv.scratch_len()])
        .is_ok();
    for b in 0..bt {
        for fi in 0..f {
            for i in 0..oh {
                for j in 0..ow {
                    let mut e = Acc::default();
                    for c in 0..ch {
                        for a in 0..kh {
                            for q in 0..kw {
                                e.add(xi(b, c, i * sh + a, j * sw + q), wi(fi, c, a, q));
                            }
                        }
                    }
                    e.add(bias[fi] as f64, 1.0);
                    ok &= e.holds(z[(b * f + fi) * pos + i * ow + j]);
                }
            }
        }
    }
    s.check("conv2d", "forward vs f64", ok);
    let mut ok = cv
        .backward(x, w, dz, Some(&mut *dx), dw, db, scratch)
        .is_ok();
    let dzi = |b: usize, fi: usize, i: usize, j: usize| dz[(b * f + fi) * pos + i * ow + j] as f64;
    for fi in 0..f {
        let mut eb = Acc::default();
        for c in 0..ch {
            for a in 0..kh {
                for q in 0..kw {
                    let mut e = Acc::default();
                    for b in 0..bt {
                        for i in 0..oh {
                            for j in 0..ow {
                                e.add(dzi(b, fi, i, j), xi(b, c, i * sh + a, j * sw + q));
                            }
                        }
                    }
                    ok &= e.holds(dw[fi * pl + (c * kh + a) * kw + q]);
                }
            }
        }
        for b in 0..bt {
            for p in 0..pos {
                eb.add(dz[(b * f + fi) * pos + p] as f64, 1.0);
            }
        }
        ok &= eb.holds(db[fi]);
    }
    for b in 0..bt {
        for c in 0..ch {
            for r in 0..hh {
                for col in 0..ww {
                    let mut e = Acc::default();
                    for fi in 0..f {
                        for i in 0..oh {
                            for j in 0..ow {
                                let (a, q) = (
                                    r as isize - (i * sh) as isize,
                                    col as isize - (j * sw) as isize,
                                );
                                if (0..kh as isize).contains(&a) && (0..kw as isize).contains(&q) {
                                    e.add(dzi(b, fi, i, j), wi(fi, c, a as usize, q as usize));
                                }
                            }
                        }
                    }
                    ok &= e.holds(dx[((b * ch + c) * hh + r) * ww + col]);
                }
            }
        }
    }
    s.check("conv2d", "backward dx, dw, dbias vs f64", ok);

    // PatchCnn: 1-D conv, tanh, mean pooling.
    let mut al = Bump::new(a32);
    let (bt, len, f, patch, stride) = (3, 12, 2, 3, 3);
    let cnn = PatchCnn {
        conv: Conv2d::conv1d(bt, 1, len, f, patch, stride),
        activation: Activation::Tanh,
        pool: Pool::Mean,
    };
    let pos = cnn.conv.positions();
    let x = uniform(&mut al, &mut rng, bt * len);
    let w = uniform(&mut al, &mut rng, f * patch);
    let bias = uniform(&mut al, &mut rng, f);
    let dout = uniform(&mut al, &mut rng, bt * f);
    let (out, ws) = (al.take(bt * f), al.take(cnn.workspace_len()));
    let (dw, db) = (al.take(f * patch), al.take(f));
    let mut ok = cnn.forward(x, w, bias, out, ws).is_ok();
    ok &= cnn.backward(x, w, dout, None, dw, db, ws).is_ok();
    let (mut gw, mut gb) = ([0.0f64; 6], [0.0f64; 2]);
    for b in 0..bt {
        for fi in 0..f {
            let mut pooled = 0.0;
            for p in 0..pos {
                let mut zv = bias[fi] as f64;
                for q in 0..patch {
                    zv += x[b * len + p * stride + q] as f64 * w[fi * patch + q] as f64;
                }
                let t = libm::tanh(zv);
                pooled += t / pos as f64;
                let dzv = dout[b * f + fi] as f64 / pos as f64 * (1.0 - t * t);
                gb[fi] += dzv;
                for q in 0..patch {
                    gw[fi * patch + q] += dzv * x[b * len + p * stride + q] as f64;
                }
            }
            ok &= rel_ok(out[b * f + fi], pooled, 2e-4);
        }
    }
    ok &= (0..f * patch).all(|i| rel_ok(dw[i], gw[i], 2e-4))
        && (0..f).all(|i| rel_ok(db[i], gb[i], 2e-4));
    s.check("patch_cnn", "forward and backward vs f64, rel 2e-4", ok);
}

fn sensing(s: &mut Suite, a32: &mut [f32]) {
    let mut rng = seeded(306);
    for sym in [true, false] {
        let (n1, n2, r, m) = if sym { (5, 5, 2, 7) } else { (4, 6, 2, 7) };
        let sp = if sym {
            Sensing::symmetric(n1, r, m)
        } else {
            Sensing::asymmetric(n1, n2, r, m)
        };
        let mut al = Bump::new(&mut *a32);
        let a = uniform(&mut al, &mut rng, m * n1 * n2);
        let y = uniform(&mut al, &mut rng, m);
        let u: &[f32] = uniform(&mut al, &mut rng, n1 * r);
        let v: &[f32] = if sym {
            u
        } else {
            uniform(&mut al, &mut rng, n2 * r)
        };
        let (res, scratch) = (al.take(m), al.take(sp.scratch_len()));
        let (gu, gv) = (al.take(n1 * r), al.take(n2 * r));
        let loss = sp.residuals(a, y, u, v, res, scratch);
        let mut ok = loss.is_ok();
        ok &= if sym {
            sp.gradient_symmetric(a, u, res, gu, scratch).is_ok()
        } else {
            sp.gradient_asymmetric(a, u, v, res, gu, gv, scratch)
                .is_ok()
        };
        let ai = |i: usize, p: usize, q: usize| a[(i * n1 + p) * n2 + q] as f64;
        // Residuals: k = n1·n2·(r + 1) roundings (the U·Vᵀ entries, then the dot product), + y.
        let mut r64 = [0.0f64; 7];
        let mut rb = [0.0f64; 7];
        let mut half = 0.0;
        for i in 0..m {
            let mut e = Acc::default();
            for p in 0..n1 {
                for q in 0..n2 {
                    let mut x = 0.0;
                    let mut xa = 0.0;
                    for c in 0..r {
                        x += u[p * r + c] as f64 * v[q * r + c] as f64;
                        xa += (u[p * r + c] as f64 * v[q * r + c] as f64).abs();
                    }
                    e.v += ai(i, p, q) * x;
                    e.abs += (ai(i, p, q)).abs() * xa;
                    e.k += r as u32 + 1;
                }
            }
            e.add(-(y[i] as f64), 1.0);
            r64[i] = e.v;
            rb[i] = e.budget();
            ok &= e.holds(res[i]);
            half += e.v * e.v / 2.0;
        }
        ok &= loss.map_or(false, |l| rel_ok(l, half, 2e-4));
        // ∇U[p][c] = Σ_i r_i Σ_q (A_i[p][q] V[q][c] (+ A_i[q][p] U[q][c] if symmetric)).
        let grad_ok = |g: &[f32], rows: usize, cols: usize, tr: bool, f: &[f32]| {
            let mut good = true;
            for p in 0..rows {
                for c in 0..r {
                    let (mut e, mut prop) = (Acc::default(), 0.0);
                    for i in 0..m {
                        for q in 0..cols {
                            let av = if tr { ai(i, q, p) } else { ai(i, p, q) };
                            let t = av * f[q * r + c] as f64;
                            e.v += r64[i] * t;
                            e.abs += (r64[i].abs() + rb[i]) * t.abs();
                            e.k += 2;
                            prop += rb[i] * t.abs();
                        }
                    }
                    good &= (g[p * r + c] as f64 - e.v).abs() <= e.budget() + prop;
                }
            }
            good
        };
        if sym {
            // S·U + Sᵀ·U
            let mut good = true;
            for p in 0..n1 {
                for c in 0..r {
                    let (mut e, mut prop) = (Acc::default(), 0.0);
                    for i in 0..m {
                        for q in 0..n1 {
                            let t = (ai(i, p, q) + ai(i, q, p)) * u[q * r + c] as f64;
                            let ta = (ai(i, p, q).abs() + ai(i, q, p).abs())
                                * (u[q * r + c] as f64).abs();
                            e.v += r64[i] * t;
                            e.abs += (r64[i].abs() + rb[i]) * ta;
                            e.k += 3;
                            prop += rb[i] * ta;
                        }
                    }
                    good &= (gu[p * r + c] as f64 - e.v).abs() <= e.budget() + prop;
                }
            }
            ok &= good;
        } else {
            ok &= grad_ok(gu, n1, n2, false, v);
            ok &= grad_ok(gv, n2, n1, true, u);
        }
        s.check(
            if sym {
                "sensing_symmetric"
            } else {
                "sensing_asymmetric"
            },
            "residuals, loss, gradients vs f64",
            ok,
        );
    }
}

pub fn all(s: &mut Suite, a32: &mut [f32]) {
    matmul(s, a32);
    dense(s, a32);
    activations(s, a32);
    softmax(s, a32);
    mlp(s, a32);
    conv(s, a32);
    sensing(s, a32);
}
