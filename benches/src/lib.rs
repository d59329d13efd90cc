//! Support for the benchmarks: the plain scalar loops a user would write by hand (compiled the
//! same way as the kernels, in a default build), the benchmark sizes, and the table of bytes moved
//! per element that turns times into bandwidth.
//!
//! Run the benchmarks with `cargo bench -p descent-benches`, then
//! `cargo run --release -p descent-benches --bin bench-report > benches/REPORT.md`.

/// Element counts every update rule and level-1 op is measured at: 1 Ki, 16 Ki, 256 Ki, 4 Mi,
/// 64 Mi, capped by the environment variable `DESCENT_BENCH_MAX_N` (CI runs each benchmark once
/// in test mode with a small cap).
pub fn sizes() -> Vec<usize> {
    let cap = max_n();
    [1usize << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 26]
        .into_iter()
        .filter(|&n| n <= cap)
        .collect()
}

/// The cap on the elements of one benchmarked buffer or matrix: `DESCENT_BENCH_MAX_N`, unlimited
/// if unset.
pub fn max_n() -> usize {
    std::env::var("DESCENT_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX)
}

/// Newton–Schulz iterations of the Muon benchmark (torch's default).
pub const MUON_NS_STEPS: u64 = 5;

/// The Muon benchmark's matrix shapes `(rows, cols)`: 64×64, 256×256, 512×512, those of at most
/// [`max_n`] elements.
pub fn muon_shapes() -> Vec<(usize, usize)> {
    let cap = max_n();
    [(64usize, 64usize), (256, 256), (512, 512)]
        .into_iter()
        .filter(|&(r, c)| r * c <= cap)
        .collect()
}

/// Floating-point operations of one MLP training pass (`Mlp::forward` then `Mlp::backward`) on a
/// batch of `b` inputs of `d` features, `h` hidden units and `c` classes, counting the matrix
/// products only (2 flops per multiply-add): forward `x·W1` and `h·W2`; backward `W2`'s gradient
/// `hᵀ·dlogits`, the hidden layer's `dlogits·W2ᵀ` and `W1`'s gradient `xᵀ·dz1`. No gradient with
/// respect to the inputs is formed, so the first layer's product appears twice, not three times.
pub fn mlp_flops(b: usize, d: usize, h: usize, c: usize) -> u64 {
    (2 * b * (d * h + h * c) + 2 * b * h * c + 2 * b * h * c + 2 * b * d * h) as u64
}

/// Floating-point operations of one Muon step's Newton–Schulz iterations on a `rows × cols`
/// matrix, 2 per multiply-add: with `r = min(rows, cols)`, `c = max(rows, cols)`, each iteration
/// forms the Gram matrix `X·Xᵀ` (`r·r·c` multiply-adds), its square (`r·r·r`) and the product with
/// `X` (`r·r·c`). The momentum, the norm and the elementwise combinations (`O(r·c)`) are not
/// counted, so the rate is a lower bound of the work done.
pub fn muon_flops(rows: usize, cols: usize, ns_steps: u64) -> u64 {
    let (r, c) = (rows.min(cols) as u64, rows.max(cols) as u64);
    2 * ns_steps * (2 * r * r * c + r * r * r)
}

/// Bytes read and written per element by each benchmarked kernel: every load and store of
/// every pass a step makes (a rule that makes three passes over its buffers counts them three
/// times; its memory ceiling makes the same passes).
pub fn bytes(kernel: &str) -> Option<(f64, f64)> {
    match kernel {
        // p, m, v in bf16 (read and written), g in f32 (read).
        "adam_bf16_sr" => return Some((2.0 + 2.0 + 2.0 + 4.0, 2.0 + 2.0 + 2.0)),
        // p as a KahanBf16 pair (4 bytes), m, v in bf16 (read and written), g in f32 (read).
        "adam_bf16_kahan" => return Some((4.0 + 2.0 + 2.0 + 4.0, 4.0 + 2.0 + 2.0)),
        // p (f32, read and written), g (f32, read), the u8 codes of m and v (read and written),
        // and per block of 256 elements two f32 scales (read and written).
        "adam8_f32" => {
            let scales = 2.0 * 4.0 / 256.0;
            return Some((4.0 + 4.0 + 1.0 + 1.0 + scales, 4.0 + 1.0 + 1.0 + scales));
        }
        _ => {}
    }
    let size = if kernel.ends_with("_f64") { 8.0 } else { 4.0 };
    streams(kernel).map(|(r, w)| (r as f64 * size, w as f64 * size))
}

/// Streams read and written per element by each benchmarked kernel of one element type, summed
/// over its passes.
pub fn streams(kernel: &str) -> Option<(usize, usize)> {
    let base = kernel.trim_end_matches("_f32").trim_end_matches("_f64");
    Some(match base {
        "adam" | "adamw" | "schedule_free_adamw" => (4, 3),
        "amsgrad" => (5, 4),
        "sgd_momentum" | "signum" | "lion" | "schedule_free_sgd" => (3, 2),
        "gd" | "sign" | "ema" | "swa" | "axpy" => (2, 1),
        "dot" => (2, 0),
        "sum_squares" => (1, 0),
        // With f32 state, two passes: the moments and the norms (p, g, m, v read; m, v
        // written), the update (p, m, v read; p written).
        "lamb" => (4 + 3, 2 + 1),
        // v ← v + w·(g² − v) with the RMS of p and of the update (p, g, v read; v written);
        // p ← p·keep − α·U (p, g, v read).
        "adafactor_vector" => (3 + 3, 1 + 1),
        // The row means with RMS(p) (p, g read); the column means (g); RMS of the update (g, and
        // each element's column accumulator, cache-resident); p ← p·keep − α·U (p, g and the
        // column accumulator read). The row accumulators are O(rows).
        "adafactor_matrix" => (2 + 1 + 2 + 3, 1),
        _ => return None,
    })
}

/// Square roots and divisions per element, `(sqrts, divs)`, that a benchmarked kernel performs at
/// least. Its compute ceiling is `sqrts` times the same-run `sqrt+div` ceiling plus `divs −
/// sqrts` times the same-run division ceiling (`(0, 0)`: none).
pub fn sqrt_divs(kernel: &str) -> (usize, usize) {
    let base = kernel.trim_end_matches("_f32").trim_end_matches("_f64");
    match base {
        "adam" | "adamw" | "amsgrad" | "adam_bf16_sr" | "adam_bf16_kahan" => (1, 1),
        "schedule_free_adamw" => (1, 1),
        // Adam's, and each moment divided by its block scale when encoded.
        "adam8" => (1, 3),
        // r is computed twice (for its norm and for the update): m/b1, v/b2, m̂/(√v̂ + ε).
        "lamb" => (2, 6),
        // U = g·(1/√v) twice (for its RMS and for the update); the matrix form's V = R·C/mean R
        // divides once more each time.
        "adafactor_vector" => (2, 2),
        "adafactor_matrix" => (2, 4),
        _ => (0, 0),
    }
}

/// Runs `f` compiled for the best instruction set this host has (AVX-512, else AVX2+FMA, else the
/// default build), detected at run time: the comparator "a plain loop compiled for the host's
/// best ISA" (what `-C target-cpu=native` would give the loop). `f` and what it calls must be
/// `#[inline(always)]` so that they are compiled inside the `#[target_feature]` function.
#[inline(always)]
pub fn native<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        // Detected once: the timed loop sees one cached load and a compare.
        static ISA: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
        let isa = *ISA.get_or_init(native_isa);
        if isa == "avx512" {
            // SAFETY: the CPU has every feature `run_avx512` enables (checked by `native_isa`).
            return unsafe { run_avx512(f) };
        }
        if isa == "avx2+fma" {
            // SAFETY: the CPU has AVX2 and FMA (checked by `native_isa`).
            return unsafe { run_avx2(f) };
        }
    }
    f()
}

/// The instruction set [`native`] compiles for on this host.
pub fn native_isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f")
            && has!("avx512vl")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("fma")
        {
            return "avx512";
        }
        if has!("avx2") && has!("fma") {
            return "avx2+fma";
        }
    }
    "default"
}

/// # Safety
/// The CPU must support AVX-512 F/VL/BW/DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Plain loops: what a user writes without this crate. Idiomatic iterator code, no unsafe, no
/// intrinsics, compiled with the workspace's release profile (and, through [`native`], for the
/// host's best instruction set). `#[inline(always)]` so that [`native`] can recompile them.
pub mod plain {
    /// Adam with PyTorch's equations (no weight decay), the constants precomputed per call.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn adam(
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        lr: f32,
        b1: f32,
        b2: f32,
        eps: f32,
        step: i32,
    ) {
        let bc1 = 1.0 - b1.powi(step);
        let bc2 = 1.0 - b2.powi(step);
        let step_size = lr / bc1;
        let inv = 1.0 / bc2.sqrt();
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step_size * *m / (v.sqrt() * inv + eps);
        }
    }

    /// AdamW with PyTorch's equations: the decoupled decay `p·(1 − lr·wd)` first, then Adam.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn adamw(
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        (lr, b1, b2, eps): (f32, f32, f32, f32),
        wd: f32,
        step: i32,
    ) {
        let step_size = lr / (1.0 - b1.powi(step));
        let inv = 1.0 / (1.0 - b2.powi(step)).sqrt();
        let keep = 1.0 - lr * wd;
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p = *p * keep - step_size * *m / (v.sqrt() * inv + eps);
        }
    }

    /// AMSGrad with PyTorch's equations: the denominator from the running maximum of `v`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn amsgrad(
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        vmax: &mut [f32],
        (lr, b1, b2, eps): (f32, f32, f32, f32),
        step: i32,
    ) {
        let step_size = lr / (1.0 - b1.powi(step));
        let inv = 1.0 / (1.0 - b2.powi(step)).sqrt();
        let moments = m.iter_mut().zip(v.iter_mut()).zip(vmax.iter_mut());
        for ((p, &g), ((m, v), vmax)) in p.iter_mut().zip(g).zip(moments) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *vmax = vmax.max(*v);
            *p -= step_size * *m / (vmax.sqrt() * inv + eps);
        }
    }

    /// Adam in f64.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub fn adam_f64(
        p: &mut [f64],
        g: &[f64],
        m: &mut [f64],
        v: &mut [f64],
        lr: f64,
        b1: f64,
        b2: f64,
        eps: f64,
        step: i32,
    ) {
        let bc1 = 1.0 - b1.powi(step);
        let inv = 1.0 / (1.0 - b2.powi(step)).sqrt();
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr / bc1 * *m / (v.sqrt() * inv + eps);
        }
    }

    /// SGD with heavy-ball momentum (no dampening).
    #[inline(always)]
    pub fn sgd_momentum(p: &mut [f32], g: &[f32], b: &mut [f32], lr: f32, mu: f32) {
        for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
            *b = mu * *b + g;
            *p -= lr * *b;
        }
    }

    /// Gradient descent.
    #[inline(always)]
    pub fn gd(p: &mut [f32], g: &[f32], lr: f32) {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * g;
        }
    }

    #[inline(always)]
    fn sign(x: f32) -> f32 {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    }

    /// Sign descent.
    #[inline(always)]
    pub fn sign_descent(p: &mut [f32], g: &[f32], lr: f32) {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * sign(g);
        }
    }

    /// Signum.
    #[inline(always)]
    pub fn signum(p: &mut [f32], g: &[f32], m: &mut [f32], lr: f32, beta: f32) {
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            *m = beta * *m + (1.0 - beta) * g;
            *p -= lr * sign(*m);
        }
    }

    /// Lion.
    #[inline(always)]
    pub fn lion(p: &mut [f32], g: &[f32], m: &mut [f32], lr: f32, b1: f32, b2: f32) {
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            let c = b1 * *m + (1.0 - b1) * g;
            *p -= lr * sign(c);
            *m = b2 * *m + (1.0 - b2) * g;
        }
    }

    /// Exponential moving average.
    #[inline(always)]
    pub fn ema(avg: &mut [f32], p: &[f32], decay: f32) {
        for (a, &p) in avg.iter_mut().zip(p) {
            *a += (1.0 - decay) * (p - *a);
        }
    }

    /// Uniform running mean.
    #[inline(always)]
    pub fn swa(avg: &mut [f32], p: &[f32], count: u64) {
        let k = count as f32 + 1.0;
        for (a, &p) in avg.iter_mut().zip(p) {
            *a += (p - *a) / k;
        }
    }

    /// `y += a·x`.
    #[inline(always)]
    pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }

    /// Dot product, summed in order (the compiler may not reorder it).
    #[inline(always)]
    pub fn dot(x: &[f32], y: &[f32]) -> f32 {
        x.iter().zip(y).map(|(a, b)| a * b).sum()
    }

    /// Sum of squares, summed in order.
    #[inline(always)]
    pub fn sum_squares(x: &[f32]) -> f32 {
        x.iter().map(|a| a * a).sum()
    }
}
