//! Criterion benchmarks of every update rule, the level-1 reductions and the model passes, each
//! beside the ceilings it is held against, measured in the same run on the same buffers: a
//! memory kernel with the same access pattern and no arithmetic, the instruction-throughput
//! ceiling where the rule is compute-bound (a square root and a division per element for exact
//! Adam; multiply-add peak for matrix products), and the plain scalar loop a user would write.
//! `bench-report` turns the results into `benches/REPORT.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use descent_benches::{native, native_isa, plain, sizes};
use descent_kernels::ceilings::{fma_peak_on, read_pattern_on, sqrt_div_on, stream_pattern_on};
use descent_kernels::models::{Activation, Conv2d, Dense, Mlp, PatchCnn, Pool};
use descent_kernels::random::{fill_uniform, seeded};
use descent_kernels::{
    ema, running_mean, vector, Adam, Backend, Element, Gd, Lion, Sgd, SignDescent, Signum,
};
use std::hint::black_box;
use std::time::Duration;

/// Buffers of one size: parameters, gradients and up to three state vectors.
struct Bufs<T> {
    p: Vec<T>,
    g: Vec<T>,
    s: [Vec<T>; 3],
}

impl<T: Element> Bufs<T> {
    fn new(n: usize) -> Self {
        let mut rng = seeded(n as u64);
        let mut v = || {
            let mut x = vec![T::zero(); n];
            fill_uniform(&mut rng, &mut x, 0.01, 1.0);
            x
        };
        Bufs {
            p: v(),
            g: v(),
            s: [v(), v(), v()],
        }
    }
}

fn configure(group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>, n: usize) {
    group.throughput(Throughput::Elements(n as u64));
    group.warm_up_time(Duration::from_millis(300));
    if n >= 1 << 22 {
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(3));
    } else {
        group
            .sample_size(30)
            .measurement_time(Duration::from_secs(1));
    }
}

/// No plain loop for this kernel.
fn no_plain<T>() -> Option<fn(&mut Bufs<T>)> {
    None
}

/// One update rule (or level-1 op) at every size: the kernel, its memory ceiling, the plain loop
/// in the default build (`plain`) and the same loop compiled for the host's best instruction set
/// (`plain_native`, see `descent_benches::native`). `plain` must be `#[inline(always)]`.
fn rule<T: Element, PF: Fn(&mut Bufs<T>)>(
    c: &mut Criterion,
    name: &str,
    kernel: impl Fn(&mut Bufs<T>),
    ceiling: impl Fn(&mut Bufs<T>),
    plain: Option<PF>,
) {
    for n in sizes() {
        let mut group = c.benchmark_group(name);
        configure(&mut group, n);
        let mut b = Bufs::<T>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| kernel(black_box(&mut b)))
        });
        group.bench_function(BenchmarkId::new("mem_ceiling", n), |bench| {
            bench.iter(|| ceiling(black_box(&mut b)))
        });
        if let Some(plain) = &plain {
            group.bench_function(BenchmarkId::new("plain", n), |bench| {
                bench.iter(|| plain(black_box(&mut b)))
            });
            group.bench_function(BenchmarkId::new("plain_native", n), |bench| {
                bench.iter(|| {
                    native(
                        #[inline(always)]
                        || plain(black_box(&mut b)),
                    )
                })
            });
        }
        group.finish();
    }
}

fn update_rules(c: &mut Criterion) {
    let be = Backend::active();
    eprintln!(
        "descent benchmarks: dispatched backend = {be}; plain_native compiled for {}",
        native_isa()
    );
    let adam = Adam::new(1e-3f32);
    rule::<f32, _>(
        c,
        "adam_f32",
        |b| {
            let [m, v, _] = &mut b.s;
            adam.step(3, &mut b.p, &b.g, m, v).unwrap()
        },
        |b| {
            let [m, v, _] = &mut b.s;
            stream_pattern_on(be, [&mut b.p[..], m, v], [&b.g[..]]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let [m, v, _] = &mut b.s;
                plain::adam(&mut b.p, &b.g, m, v, 1e-3, 0.9, 0.999, 1e-8, 3)
            },
        ),
    );
    let adamw = Adam::adamw(1e-3f32, 0.01);
    rule::<f32, _>(
        c,
        "adamw_f32",
        |b| {
            let [m, v, _] = &mut b.s;
            adamw.step(3, &mut b.p, &b.g, m, v).unwrap()
        },
        |b| {
            let [m, v, _] = &mut b.s;
            stream_pattern_on(be, [&mut b.p[..], m, v], [&b.g[..]]).unwrap()
        },
        no_plain(),
    );
    rule::<f32, _>(
        c,
        "amsgrad_f32",
        |b| {
            let [m, v, x] = &mut b.s;
            adam.step_amsgrad(3, &mut b.p, &b.g, m, v, x).unwrap()
        },
        |b| {
            let [m, v, x] = &mut b.s;
            stream_pattern_on(be, [&mut b.p[..], m, v, x], [&b.g[..]]).unwrap()
        },
        no_plain(),
    );
    let adam64 = Adam::new(1e-3f64);
    rule::<f64, _>(
        c,
        "adam_f64",
        |b| {
            let [m, v, _] = &mut b.s;
            adam64.step(3, &mut b.p, &b.g, m, v).unwrap()
        },
        |b| {
            let [m, v, _] = &mut b.s;
            stream_pattern_on(be, [&mut b.p[..], m, v], [&b.g[..]]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f64>| {
                let [m, v, _] = &mut b.s;
                plain::adam_f64(&mut b.p, &b.g, m, v, 1e-3, 0.9, 0.999, 1e-8, 3)
            },
        ),
    );
    let sgd = Sgd::new(1e-3f32, 0.9);
    rule::<f32, _>(
        c,
        "sgd_momentum_f32",
        |b| sgd.step(3, &mut b.p, &b.g, &mut b.s[0]).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..], &mut b.s[0]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::sgd_momentum(&mut b.p, &b.g, &mut b.s[0], 1e-3, 0.9),
        ),
    );
    let gd = Gd::new(1e-3f32);
    rule::<f32, _>(
        c,
        "gd_f32",
        |b| gd.step(&mut b.p, &b.g).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::gd(&mut b.p, &b.g, 1e-3),
        ),
    );
    let sign = SignDescent::new(1e-3f32);
    rule::<f32, _>(
        c,
        "sign_f32",
        |b| sign.step(&mut b.p, &b.g).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::sign_descent(&mut b.p, &b.g, 1e-3),
        ),
    );
    let signum = Signum::new(1e-3f32, 0.9);
    rule::<f32, _>(
        c,
        "signum_f32",
        |b| signum.step(&mut b.p, &b.g, &mut b.s[0]).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..], &mut b.s[0]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::signum(&mut b.p, &b.g, &mut b.s[0], 1e-3, 0.9),
        ),
    );
    let lion = Lion::new(1e-4f32);
    rule::<f32, _>(
        c,
        "lion_f32",
        |b| lion.step(&mut b.p, &b.g, &mut b.s[0]).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..], &mut b.s[0]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::lion(&mut b.p, &b.g, &mut b.s[0], 1e-4, 0.9, 0.99),
        ),
    );
    rule::<f32, _>(
        c,
        "ema_f32",
        |b| ema(&mut b.p, &b.g, 0.999).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::ema(&mut b.p, &b.g, 0.999),
        ),
    );
    rule::<f32, _>(
        c,
        "swa_f32",
        |b| running_mean(&mut b.p, &b.g, 7).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::swa(&mut b.p, &b.g, 7),
        ),
    );
    rule::<f32, _>(
        c,
        "axpy_f32",
        |b| vector::axpy(1e-3, &b.g, &mut b.p).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::axpy(1e-3, &b.g, &mut b.p),
        ),
    );
    rule::<f32, _>(
        c,
        "dot_f32",
        |b| {
            black_box(vector::dot(&b.p, &b.g).unwrap());
        },
        |b| {
            black_box(read_pattern_on(be, [&b.p[..], &b.g[..]]).unwrap());
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                black_box(plain::dot(&b.p, &b.g));
            },
        ),
    );
    rule::<f32, _>(
        c,
        "sum_squares_f32",
        |b| {
            black_box(vector::sum_squares(&b.p).unwrap());
        },
        |b| {
            black_box(read_pattern_on(be, [&b.p[..]]).unwrap());
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                black_box(plain::sum_squares(&b.p));
            },
        ),
    );
    bf16_adam(c);
}

/// Adam with parameters and moments stored in bf16, stochastic rounding, f32 gradients; the
/// ceiling moves the same bytes (10 read, 6 written per element) with bitwise operations only.
fn bf16_adam(c: &mut Criterion) {
    use descent_kernels::reduced::Rounding;
    use half::bf16;
    let be = Backend::active();
    let adam = Adam::new(1e-3f32);
    for n in sizes() {
        let mut group = c.benchmark_group("adam_bf16_sr");
        configure(&mut group, n);
        let b = Bufs::<f32>::new(n);
        let to16 = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
        let (mut p, mut m, mut v) = (to16(&b.p), to16(&b.s[0]), to16(&b.s[1]));
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| {
                counter += 1;
                adam.step_reduced_on(
                    be,
                    Rounding::stochastic(7, counter),
                    3,
                    &mut p,
                    &b.g,
                    &mut m,
                    &mut v,
                )
                .unwrap()
            })
        });
        // Same bytes: three rw streams of n/2 f32 (= n bf16 each), two ro streams of n/2 f32 (= g).
        let h = n / 2;
        let (mut a1, mut a2, mut a3) = (vec![0.5f32; h], vec![0.5f32; h], vec![0.5f32; h]);
        let (r1, r2) = (&b.g[..h], &b.g[h..2 * h]);
        group.bench_function(BenchmarkId::new("mem_ceiling", n), |bench| {
            bench.iter(|| {
                stream_pattern_on(be, [&mut a1[..], &mut a2[..], &mut a3[..]], [r1, r2]).unwrap()
            })
        });
        group.finish();
    }
}

/// Instruction-throughput ceilings, on L1-resident data or registers.
fn compute_ceilings(c: &mut Criterion) {
    let be = Backend::active();
    {
        let n = 1024usize;
        let mut group = c.benchmark_group("ceiling_sqrt_div_f32");
        configure(&mut group, n);
        let mut b = Bufs::<f32>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| sqrt_div_on(be, black_box(&mut b.p), &b.s[0]).unwrap())
        });
        group.finish();
    }
    {
        let n = 512usize;
        let mut group = c.benchmark_group("ceiling_sqrt_div_f64");
        configure(&mut group, n);
        let mut b = Bufs::<f64>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| sqrt_div_on(be, black_box(&mut b.p), &b.s[0]).unwrap())
        });
        group.finish();
    }
    let iterations = 4096usize;
    let (_, fmas) = fma_peak_on(be, iterations, 0.5f32).unwrap();
    let mut group = c.benchmark_group("ceiling_fma_f32");
    group.throughput(Throughput::Elements(fmas));
    group.bench_function(BenchmarkId::new("kernel", fmas), |bench| {
        bench.iter(|| black_box(fma_peak_on(be, black_box(iterations), 0.5f32).unwrap()))
    });
    group.finish();
}

fn models(c: &mut Criterion) {
    let mut rng = seeded(5);
    let mut group = c.benchmark_group("dense_fwd_f32");
    group.sample_size(20);
    {
        let (batch, d, h) = (256usize, 784usize, 256usize);
        let layer = Dense::new(batch, d, h);
        let mut x = vec![0.0f32; batch * d];
        let mut w = vec![0.0f32; d * h];
        fill_uniform(&mut rng, &mut x, -1.0, 1.0);
        fill_uniform(&mut rng, &mut w, -0.1, 0.1);
        let bias = vec![0.0f32; h];
        let mut y = vec![0.0f32; batch * h];
        group.throughput(Throughput::Elements((2 * batch * d * h) as u64));
        group.bench_function(
            BenchmarkId::new("kernel", format!("{batch}x{d}x{h}")),
            |bench| bench.iter(|| layer.forward(black_box(&x), &w, &bias, &mut y).unwrap()),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("mlp_f32");
    group.sample_size(20);
    for (batch, d, h, classes) in [(256usize, 784usize, 256usize, 10usize), (32, 64, 128, 10)] {
        let mlp = Mlp::new(d, h, classes, Activation::Relu);
        let mut params = vec![0.0f32; mlp.param_len()];
        fill_uniform(&mut rng, &mut params, -0.05, 0.05);
        let mut x = vec![0.0f32; batch * d];
        fill_uniform(&mut rng, &mut x, -1.0, 1.0);
        let labels: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
        let mut ws = vec![0.0f32; mlp.workspace_len(batch)];
        let mut grads = vec![0.0f32; mlp.param_len()];
        // Forward 2·B·(D·H + H·C) flops, backward twice that (dW and dX products).
        let flops = 6 * batch * (d * h + h * classes);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(
            BenchmarkId::new("kernel", format!("{batch}x{d}x{h}x{classes}")),
            |bench| {
                bench.iter(|| {
                    mlp.forward(batch, &params, black_box(&x), &labels, None, &mut ws)
                        .unwrap();
                    mlp.backward(batch, &params, &x, &labels, &mut ws, &mut grads)
                        .unwrap();
                })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("cnn_f32");
    group.sample_size(20);
    let (batch, k, d) = (64usize, 256usize, 32usize);
    let cnn = PatchCnn {
        conv: Conv2d::conv1d(batch, 1, k * d, 1, d, d),
        activation: Activation::SoftThreshold { bias: -0.1f32 },
        pool: Pool::Sum,
    };
    let mut x = vec![0.0f32; batch * k * d];
    fill_uniform(&mut rng, &mut x, -1.0, 1.0);
    let mut w = vec![0.0f32; d];
    fill_uniform(&mut rng, &mut w, -1.0, 1.0);
    let (bias, mut out, dout) = (vec![0.0f32], vec![0.0f32; batch], vec![1.0f32; batch]);
    let (mut dw, mut db) = (vec![0.0f32; d], vec![0.0f32]);
    let mut ws = vec![0.0f32; cnn.workspace_len()];
    // Forward 2·B·k·d flops, backward (dW) the same again.
    group.throughput(Throughput::Elements((4 * batch * k * d) as u64));
    group.bench_function(
        BenchmarkId::new("kernel", format!("{batch}x{k}x{d}")),
        |bench| {
            bench.iter(|| {
                cnn.forward(black_box(&x), &w, &bias, &mut out, &mut ws)
                    .unwrap();
                cnn.backward(&x, &w, &dout, None, &mut dw, &mut db, &mut ws)
                    .unwrap();
            })
        },
    );
    group.finish();
}

criterion_group!(benches, compute_ceilings, update_rules, models);
criterion_main!(benches);
