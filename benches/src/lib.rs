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
    let cap = std::env::var("DESCENT_BENCH_MAX_N")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    [1usize << 10, 1 << 14, 1 << 18, 1 << 22, 1 << 26]
        .into_iter()
        .filter(|&n| n <= cap)
        .collect()
}

/// Bytes read and written per element by each benchmarked kernel.
pub fn bytes(kernel: &str) -> Option<(usize, usize)> {
    if kernel == "adam_bf16_sr" {
        // p, m, v in bf16 (read and written), g in f32 (read).
        return Some((2 + 2 + 2 + 4, 2 + 2 + 2));
    }
    if kernel == "adam8_f32" {
        // p (read and written), g (read), the m and v codes (1 byte each, read and written); the
        // block scales (8 bytes per 256 elements) left out.
        return Some((4 + 4 + 1 + 1, 4 + 1 + 1));
    }
    if kernel == "adam_kahan_bf16" {
        // The KahanBf16 pair (4 bytes), m and v in f32 (read and written), g in f32 (read).
        return Some((4 + 4 + 4 + 4, 4 + 4 + 4));
    }
    let size = if kernel.ends_with("_f64") { 8 } else { 4 };
    streams(kernel).map(|(r, w)| (r * size, w * size))
}

/// Streams read and written per element by each benchmarked kernel of one element type.
pub fn streams(kernel: &str) -> Option<(usize, usize)> {
    let base = kernel.trim_end_matches("_f32").trim_end_matches("_f64");
    Some(match base {
        "adam" | "adamw" | "lamb" | "sf_adamw" => (4, 3),
        "sf_sgd" | "adafactor_vec" => (3, 2),
        "amsgrad" => (5, 4),
        "sgd_momentum" | "signum" | "lion" => (3, 2),
        "gd" | "sign" | "ema" | "swa" | "axpy" => (2, 1),
        "dot" => (2, 0),
        "sum_squares" => (1, 0),
        _ => return None,
    })
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
