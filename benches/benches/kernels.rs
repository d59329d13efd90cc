//! Criterion benchmarks of every update rule, the level-1 reductions and the model passes, each
//! beside the ceilings it is held against, measured in the same run on the same buffers: a
//! memory kernel with the same access pattern and no arithmetic, the instruction-throughput
//! ceiling where the rule is compute-bound (a square root and a division per element for exact
//! Adam; multiply-add peak for matrix products), and the plain scalar loop a user would write.
//! `bench-report` turns the results into `benches/REPORT.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use descent_benches::{
    mlp_flops, muon_flops, muon_shapes, native, native_isa, plain, sizes, MUON_NS_STEPS,
};
use descent_kernels::ceilings::{
    blockwise8_pattern_on, div_on, fma_peak_on, read_pattern_on, sqrt_div_on, stream_pattern_on,
};
use descent_kernels::models::{Activation, Conv2d, Dense, Mlp, PatchCnn, Pool};
use descent_kernels::random::{fill_uniform, seeded};
use descent_kernels::{
    ema, running_mean, vector, Adafactor, Adam, Adam8, Backend, Element, Exec, Gd, Lamb, Lion,
    Muon, Rule, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd, ScheduleFreeState, Sgd,
    SignDescent, Signum, TrainView,
};
use std::hint::black_box;
use std::time::Duration;

/// Buffers of one size `n`: parameters, gradients and up to three state vectors, held as one
/// flat state of `3n` elements (the rules' state layout: buffer after buffer).
struct Bufs<T> {
    p: Vec<T>,
    g: Vec<T>,
    s: Vec<T>,
}

impl<T: Element> Bufs<T> {
    fn new(n: usize) -> Self {
        let mut rng = seeded(n as u64);
        let mut v = |len: usize| {
            let mut x = vec![T::zero(); len];
            fill_uniform(&mut rng, &mut x, 0.01, 1.0);
            x
        };
        Bufs {
            p: v(n),
            g: v(n),
            s: v(3 * n),
        }
    }

    /// Parameters, gradients and the first `k` state buffers as one flat slice (a rule's
    /// arguments).
    fn args(&mut self, k: usize) -> (&mut [T], &[T], &mut [T]) {
        let n = self.p.len();
        (&mut self.p, &self.g, &mut self.s[..k * n])
    }

    /// Parameters, gradients and the three state buffers as separate slices (for the ceilings and
    /// the plain loops).
    fn split(&mut self) -> (&mut [T], &[T], [&mut [T]; 3]) {
        let n = self.p.len();
        let (m, rest) = self.s.split_at_mut(n);
        let (v, x) = rest.split_at_mut(n);
        (&mut self.p, &self.g, [m, v, x])
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
/// (`plain_native`, see `descent_benches::native`). `plain` must be `#[inline(always)]`, and its
/// hyper-parameters and step go through `black_box`: in training they are run-time values, and a
/// literal would let the compiler fold them into the loop (a running mean's divisor 8 becomes a
/// multiplication by 0.125, Adam's bias corrections constants), which the kernels, behind their
/// dispatch, never get.
fn rule<T: Element, PF: Fn(&mut Bufs<T>)>(
    c: &mut Criterion,
    name: &str,
    kernel: impl Fn(&mut Bufs<T>),
    ceiling: impl Fn(&mut Bufs<T>),
    plain: Option<PF>,
) {
    rule_at(c, name, sizes(), kernel, ceiling, plain)
}

/// [`rule`] at the sizes `ns`.
fn rule_at<T: Element, PF: Fn(&mut Bufs<T>)>(
    c: &mut Criterion,
    name: &str,
    ns: Vec<usize>,
    kernel: impl Fn(&mut Bufs<T>),
    ceiling: impl Fn(&mut Bufs<T>),
    plain: Option<PF>,
) {
    for n in ns {
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
            let (p, g, s) = b.args(2);
            adam.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, [m, v, _]) = b.split();
            stream_pattern_on(be, [p, m, v], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, [m, v, _]) = b.split();
                plain::adam(
                    p,
                    g,
                    m,
                    v,
                    black_box(1e-3),
                    black_box(0.9),
                    black_box(0.999),
                    black_box(1e-8),
                    black_box(3),
                )
            },
        ),
    );
    let adamw = Adam::adamw(1e-3f32, 0.01);
    rule::<f32, _>(
        c,
        "adamw_f32",
        |b| {
            let (p, g, s) = b.args(2);
            adamw.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, [m, v, _]) = b.split();
            stream_pattern_on(be, [p, m, v], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, [m, v, _]) = b.split();
                plain::adamw(
                    p,
                    g,
                    m,
                    v,
                    black_box((1e-3, 0.9, 0.999, 1e-8)),
                    black_box(0.01),
                    black_box(3),
                )
            },
        ),
    );
    let amsgrad = adam.amsgrad();
    rule::<f32, _>(
        c,
        "amsgrad_f32",
        |b| {
            let (p, g, s) = b.args(3);
            amsgrad.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, [m, v, x]) = b.split();
            stream_pattern_on(be, [p, m, v, x], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, [m, v, x]) = b.split();
                plain::amsgrad(
                    p,
                    g,
                    m,
                    v,
                    x,
                    black_box((1e-3, 0.9, 0.999, 1e-8)),
                    black_box(3),
                )
            },
        ),
    );
    let adam64 = Adam::new(1e-3f64);
    rule::<f64, _>(
        c,
        "adam_f64",
        |b| {
            let (p, g, s) = b.args(2);
            adam64.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, [m, v, _]) = b.split();
            stream_pattern_on(be, [p, m, v], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f64>| {
                let (p, g, [m, v, _]) = b.split();
                plain::adam_f64(
                    p,
                    g,
                    m,
                    v,
                    black_box(1e-3),
                    black_box(0.9),
                    black_box(0.999),
                    black_box(1e-8),
                    black_box(3),
                )
            },
        ),
    );
    let sgd = Sgd::new(1e-3f32, 0.9);
    rule::<f32, _>(
        c,
        "sgd_momentum_f32",
        |b| {
            let (p, g, s) = b.args(1);
            sgd.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, s) = b.args(1);
            stream_pattern_on(be, [p, s], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, s) = b.args(1);
                plain::sgd_momentum(p, g, s, black_box(1e-3), black_box(0.9))
            },
        ),
    );
    let gd = Gd::new(1e-3f32);
    rule::<f32, _>(
        c,
        "gd_f32",
        |b| gd.step(3, &mut b.p, &b.g, &mut []).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::gd(&mut b.p, &b.g, black_box(1e-3)),
        ),
    );
    let sign = SignDescent::new(1e-3f32);
    rule::<f32, _>(
        c,
        "sign_f32",
        |b| sign.step(3, &mut b.p, &b.g, &mut []).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::sign_descent(&mut b.p, &b.g, black_box(1e-3)),
        ),
    );
    let signum = Signum::new(1e-3f32, 0.9);
    rule::<f32, _>(
        c,
        "signum_f32",
        |b| {
            let (p, g, s) = b.args(1);
            signum.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, s) = b.args(1);
            stream_pattern_on(be, [p, s], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, s) = b.args(1);
                plain::signum(p, g, s, black_box(1e-3), black_box(0.9))
            },
        ),
    );
    let lion = Lion::new(1e-4f32);
    rule::<f32, _>(
        c,
        "lion_f32",
        |b| {
            let (p, g, s) = b.args(1);
            lion.step(3, p, g, s).unwrap()
        },
        |b| {
            let (p, g, s) = b.args(1);
            stream_pattern_on(be, [p, s], [g]).unwrap()
        },
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| {
                let (p, g, s) = b.args(1);
                plain::lion(p, g, s, black_box(1e-4), black_box(0.9), black_box(0.99))
            },
        ),
    );
    rule::<f32, _>(
        c,
        "ema_f32",
        |b| ema(&mut b.p, &b.g, 0.999).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::ema(&mut b.p, &b.g, black_box(0.999)),
        ),
    );
    rule::<f32, _>(
        c,
        "swa_f32",
        |b| running_mean(&mut b.p, &b.g, 7).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::swa(&mut b.p, &b.g, black_box(7)),
        ),
    );
    rule::<f32, _>(
        c,
        "axpy_f32",
        |b| vector::axpy(1e-3, &b.g, &mut b.p).unwrap(),
        |b| stream_pattern_on(be, [&mut b.p[..]], [&b.g[..]]).unwrap(),
        Some(
            #[inline(always)]
            |b: &mut Bufs<f32>| plain::axpy(black_box(1e-3), &b.g, &mut b.p),
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
            black_box(vector::sum_squares(&b.p));
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
    bf16_adam_kahan(c);
    rules14(c);
    adam8(c);
    adafactor_matrix(c);
}

/// The counters of a Schedule-Free run after two steps: each benchmarked call resumes from them
/// and takes step 3 (the first step initialises the state, the others do not).
fn schedule_free_counters<R: ScheduleFreeRule<f32>>(rule: R) -> ScheduleFreeState {
    let (mut p, mut s) = (vec![1.0f32], vec![0.0f32; R::STATE_BUFFERS]);
    let mut view = TrainView::new(rule, &mut p, &mut s).unwrap();
    view.step(&[0.5]).unwrap();
    view.step(&[0.5]).unwrap();
    view.counters()
}

/// The largest size of the rules added with issue 14 (LAMB, Schedule-Free, Adam8, Adafactor, the
/// Kahan-compensated bf16 parameters): 4 Mi elements, where each already moves 40 MB or more per
/// step, beyond a 32 MiB last-level cache. The 64 Mi point would add about ten minutes to the
/// suite (an Adam8 step takes about 10 s there) and no new regime.
const RULES14_MAX_N: usize = 1 << 22;

/// [`sizes`] up to [`RULES14_MAX_N`].
fn rules14_sizes() -> Vec<usize> {
    sizes()
        .into_iter()
        .filter(|&n| n <= RULES14_MAX_N)
        .collect()
}

/// The rules of issue 14 whose buffers are `params.len()` elements each (f32): LAMB, Schedule-Free
/// AdamW and SGD, Adafactor's vector form. A rule that makes several passes over its buffers is
/// held against a memory ceiling making the same passes.
fn rules14(c: &mut Criterion) {
    let be = Backend::active();
    let exec = Exec::active();
    let lamb = Lamb::new(1e-3f32);
    rule_at::<f32, _>(
        c,
        "lamb_f32",
        rules14_sizes(),
        |b| {
            let (p, g, s) = b.args(2);
            lamb.step(3, p, g, s).unwrap()
        },
        |b| {
            // LAMB's two passes with f32 state: the moments with the two norms (m, v rewritten;
            // p, g read), then the update (p rewritten; m, v read).
            let (p, g, [m, v, _]) = b.split();
            stream_pattern_on(be, [&mut *m, &mut *v], [&*p, g]).unwrap();
            stream_pattern_on(be, [p], [&*m, &*v]).unwrap()
        },
        no_plain(),
    );
    let sf_adamw = ScheduleFreeAdamW::new(2.5e-3f32);
    let sf_adamw_at = schedule_free_counters(sf_adamw);
    rule_at::<f32, _>(
        c,
        "schedule_free_adamw_f32",
        rules14_sizes(),
        |b| {
            let (p, g, s) = b.args(2);
            let mut view = TrainView::resume(sf_adamw, p, s, sf_adamw_at).unwrap();
            view.step(g).unwrap()
        },
        |b| {
            let (y, g, [z, v, _]) = b.split();
            stream_pattern_on(be, [y, z, v], [g]).unwrap()
        },
        no_plain(),
    );
    let sf_sgd = ScheduleFreeSgd::new(1e-2f32);
    let sf_sgd_at = schedule_free_counters(sf_sgd);
    rule_at::<f32, _>(
        c,
        "schedule_free_sgd_f32",
        rules14_sizes(),
        |b| {
            let (p, g, s) = b.args(1);
            let mut view = TrainView::resume(sf_sgd, p, s, sf_sgd_at).unwrap();
            view.step(g).unwrap()
        },
        |b| {
            let (y, g, z) = b.args(1);
            stream_pattern_on(be, [y, z], [g]).unwrap()
        },
        no_plain(),
    );
    let adafactor = Adafactor::new(1e-2f32);
    rule_at::<f32, _>(
        c,
        "adafactor_vector_f32",
        rules14_sizes(),
        |b| {
            let (p, g, s) = b.args(1);
            adafactor.step_vector(&exec, 3, p, g, s).unwrap()
        },
        |b| {
            // The second moment with the RMS of p and of the update (p, g read; v rewritten);
            // the update: Adafactor's two passes.
            let (p, g, [v, _, _]) = b.split();
            stream_pattern_on(be, [&mut *v], [&*p, g]).unwrap();
            stream_pattern_on(be, [p], [g, &*v]).unwrap()
        },
        no_plain(),
    );
}

/// Adafactor's factored form on square `√n × √n` matrices (every size is a power of 4), state
/// `2·√n` elements. Its memory ceiling makes the same passes: the row means of g² with RMS(p)
/// (p and g read), the column means of g² (g read again; the kernel sums 64 columns at a time
/// down the rows, the ceiling reads in storage order), the update's RMS (g and each element's
/// column accumulator), then the update row by row (p rewritten, g and the column accumulators
/// read), as the kernel calls it.
fn adafactor_matrix(c: &mut Criterion) {
    let be = Backend::active();
    let exec = Exec::active();
    let adafactor = Adafactor::new(1e-2f32);
    for n in rules14_sizes() {
        let side = (n as f64).sqrt() as usize;
        assert_eq!(side * side, n, "adafactor_matrix: {n} is not a square");
        let mut group = c.benchmark_group("adafactor_matrix_f32");
        configure(&mut group, n);
        let mut b = Bufs::<f32>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| {
                let s = &mut black_box(&mut b.s)[..2 * side];
                adafactor
                    .step_matrix(&exec, 3, side, side, &mut b.p, &b.g, s)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("mem_ceiling", n), |bench| {
            bench.iter(|| {
                let (p, g) = (&mut black_box(&mut b.p)[..], &b.g[..]);
                let cols = &b.s[side..2 * side];
                black_box(read_pattern_on(be, [&*p, g]).unwrap());
                black_box(read_pattern_on(be, [g]).unwrap());
                for row in g.chunks_exact(side) {
                    black_box(read_pattern_on(be, [row, cols]).unwrap());
                }
                for (pr, gr) in p.chunks_exact_mut(side).zip(g.chunks_exact(side)) {
                    stream_pattern_on(be, [pr], [gr, cols]).unwrap();
                }
            })
        });
        group.finish();
    }
}

/// Adam with 8-bit blockwise moments ([`Adam8`]): f32 parameters and gradients, the `u8` codes of
/// `m` and `v`, one f32 scale per block of 256 for each. The ceiling
/// ([`blockwise8_pattern_on`]) moves those bytes on the same buffers: 10 + 1/32 read and
/// 6 + 1/32 written per element.
fn adam8(c: &mut Criterion) {
    let be = Backend::active();
    let adam8 = Adam8::new(1e-3f32);
    for n in rules14_sizes() {
        let mut group = c.benchmark_group("adam8_f32");
        configure(&mut group, n);
        let mut rng = seeded(n as u64);
        let mut p = vec![0.0f32; n];
        let mut g = vec![0.0f32; n];
        fill_uniform(&mut rng, &mut p, 0.01, 1.0);
        fill_uniform(&mut rng, &mut g, 0.01, 1.0);
        let mut codes = vec![0u8; Adam8::codes_len(n)];
        let mut scales = vec![0.0f32; Adam8::scales_len(n)];
        // Steps 1 and 2 fill the state with the codes of real moments.
        for step in 1..=2 {
            adam8
                .step(step, &mut p, &g, &mut codes, &mut scales)
                .unwrap();
        }
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| {
                adam8
                    .step(3, black_box(&mut p), &g, &mut codes, &mut scales)
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("mem_ceiling", n), |bench| {
            bench.iter(|| {
                blockwise8_pattern_on(be, black_box(&mut p), &g, &mut codes, &mut scales).unwrap()
            })
        });
        group.finish();
    }
}

/// Adam with parameters and moments stored in bf16, stochastic rounding, f32 gradients; the
/// ceiling moves the same bytes (10 read, 6 written per element) with bitwise operations only.
fn bf16_adam(c: &mut Criterion) {
    use descent_kernels::reduced::Rounding;
    use half::bf16;
    let be = Backend::active();
    let exec = Exec::active();
    let adam = Adam::new(1e-3f32);
    for n in sizes() {
        let mut group = c.benchmark_group("adam_bf16_sr");
        configure(&mut group, n);
        let b = Bufs::<f32>::new(n);
        let to16 = |v: &[f32]| v.iter().map(|&x| bf16::from_f32(x)).collect::<Vec<_>>();
        // Parameters and the flat state (m then v) in bf16.
        let (mut p, mut state) = (to16(&b.p), to16(&b.s[..2 * n]));
        let mut counter = 0u64;
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| {
                counter += 1;
                let exec = exec.with_rounding(Rounding::stochastic(7, counter));
                adam.step_with(&exec, 3, &mut p, &b.g, &mut state).unwrap()
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

/// Adam with parameters stored as [`KahanBf16`](descent_kernels::KahanBf16) pairs (bf16 and its
/// bf16 compensation, 4 bytes) and moments in bf16 rounded to nearest even, f32 gradients: the
/// compensated alternative to `adam_bf16_sr`, which draws no random bits. The ceiling moves the
/// same bytes (12 read, 8 written per element) with bitwise operations only.
fn bf16_adam_kahan(c: &mut Criterion) {
    use descent_kernels::KahanBf16;
    use half::bf16;
    let be = Backend::active();
    let exec = Exec::active();
    let adam = Adam::new(1e-3f32);
    for n in rules14_sizes() {
        let mut group = c.benchmark_group("adam_bf16_kahan");
        configure(&mut group, n);
        let b = Bufs::<f32>::new(n);
        let mut p: Vec<KahanBf16> = b.p.iter().map(|&x| KahanBf16::from_f32(x)).collect();
        let mut state: Vec<bf16> = b.s[..2 * n].iter().map(|&x| bf16::from_f32(x)).collect();
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| {
                adam.step_with(&exec, 3, black_box(&mut p), &b.g, &mut state)
                    .unwrap()
            })
        });
        // Same bytes: four rw streams of n/2 f32 (= p's 4n bytes, then m and v's 2n each), two ro
        // streams of n/2 f32 (= g).
        let h = n / 2;
        let (mut a1, mut a2) = (vec![0.5f32; h], vec![0.5f32; h]);
        let (mut a3, mut a4) = (vec![0.5f32; h], vec![0.5f32; h]);
        let (r1, r2) = (&b.g[..h], &b.g[h..2 * h]);
        group.bench_function(BenchmarkId::new("mem_ceiling", n), |bench| {
            bench.iter(|| {
                stream_pattern_on(
                    be,
                    [&mut a1[..], &mut a2[..], &mut a3[..], &mut a4[..]],
                    [r1, r2],
                )
                .unwrap()
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
            bench.iter(|| sqrt_div_on(be, black_box(&mut b.p), &b.s[..n]).unwrap())
        });
        group.finish();
    }
    {
        let n = 512usize;
        let mut group = c.benchmark_group("ceiling_sqrt_div_f64");
        configure(&mut group, n);
        let mut b = Bufs::<f64>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| sqrt_div_on(be, black_box(&mut b.p), &b.s[..n]).unwrap())
        });
        group.finish();
    }
    {
        let n = 1024usize;
        let mut group = c.benchmark_group("ceiling_div_f32");
        configure(&mut group, n);
        let mut b = Bufs::<f32>::new(n);
        group.bench_function(BenchmarkId::new("kernel", n), |bench| {
            bench.iter(|| div_on(be, black_box(&mut b.p), &b.s[..n]).unwrap())
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
        group.throughput(Throughput::Elements(mlp_flops(batch, d, h, classes)));
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

/// Muon ([`Muon::step_matrix`], torch's defaults: 5 Newton–Schulz iterations) on square
/// matrices: bound by its matrix products, so its throughput is counted in the iterations'
/// floating-point operations ([`muon_flops`]) and held against the FMA peak
/// (`ceiling_fma_f32`), as the model passes are.
fn muon(c: &mut Criterion) {
    let exec = Exec::active();
    let muon = Muon::new(0.02f32);
    assert_eq!(u64::from(muon.ns_steps), MUON_NS_STEPS);
    let mut rng = seeded(14);
    let mut group = c.benchmark_group("muon_f32");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (rows, cols) in muon_shapes() {
        let n = rows * cols;
        let mut w = vec![0.0f32; n];
        let mut g = vec![0.0f32; n];
        fill_uniform(&mut rng, &mut w, -0.1, 0.1);
        fill_uniform(&mut rng, &mut g, -1.0, 1.0);
        let mut buf = vec![0.0f32; Muon::<f32>::matrix_state_len(rows, cols)];
        let mut work = vec![0.0f32; Muon::<f32>::workspace_len(rows, cols)];
        group.throughput(Throughput::Elements(muon_flops(rows, cols, MUON_NS_STEPS)));
        group.bench_function(
            BenchmarkId::new("kernel", format!("{rows}x{cols}")),
            |bench| {
                bench.iter(|| {
                    muon.step_matrix(
                        &exec,
                        rows,
                        cols,
                        black_box(&mut w),
                        &g,
                        &mut buf,
                        &mut work,
                    )
                    .unwrap()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, compute_ceilings, update_rules, models, muon);
criterion_main!(benches);
