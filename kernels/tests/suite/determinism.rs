//! Determinism: the same inputs (from the same seed) give bit-identical results on a backend, run
//! after run, for every kernel; the seeded streams repeat and independent streams differ.

use crate::common;

use common::{backends, mixed};
use descent_kernels::random::{seeded, stream};
use descent_kernels::{vector, Adam, Backend, Exec, Lion, Rule, Sgd, WeightDecay};
use rand_core::Rng;

/// Runs 20 steps of several rules and all reductions from `seed`; returns every output's bits.
fn run(b: Backend, seed: u64) -> Vec<u64> {
    let mut rng = seeded(seed);
    let n = 1003;
    let mut p: Vec<f64> = mixed(&mut rng, n, 2.0, 0.0);
    let (mut mv, mut buf, mut lm) = (vec![0.0; 2 * n], vec![0.0; n], vec![0.0; n]);
    let e = Exec::on(b).unwrap();
    let adam = Adam::adamw(1e-2, 0.01);
    let sgd = Sgd {
        nesterov: true,
        weight_decay: WeightDecay::L2(1e-3),
        ..Sgd::new(1e-2, 0.9)
    };
    let lion = Lion::new(1e-3);
    let mut out = Vec::new();
    for t in 1..=20 {
        let g: Vec<f64> = mixed(&mut rng, n, 1.0, 0.0);
        adam.step_with(&e, t, &mut p, &g, &mut mv).unwrap();
        sgd.step_with(&e, t, &mut p, &g, &mut buf).unwrap();
        lion.step_with(&e, t, &mut p, &g, &mut lm).unwrap();
        out.push(vector::dot_with(&e, &p, &g).unwrap().to_bits());
        out.push(vector::norm2_with(&e, &p).to_bits());
        out.push(vector::sum_with(&e, &mv[..n]).to_bits());
    }
    out.extend(p.iter().map(|x| x.to_bits()));
    out
}

#[test]
fn same_seed_same_bits_on_each_backend() {
    for b in backends() {
        let first = run(b, 2024);
        for _ in 0..3 {
            assert_eq!(run(b, 2024), first, "backend {b} is not reproducible");
        }
        assert_ne!(
            run(b, 2025),
            first,
            "a different seed must change the result"
        );
    }
}

#[test]
fn seeded_streams_repeat_and_differ() {
    let a: Vec<u64> = (0..8)
        .map(|_| 0)
        .scan(seeded(9), |r, _: u64| Some(r.next_u64()))
        .collect();
    let b: Vec<u64> = (0..8)
        .map(|_| 0)
        .scan(seeded(9), |r, _: u64| Some(r.next_u64()))
        .collect();
    assert_eq!(a, b);
    let mut s0 = stream(9, 0);
    let mut s1 = stream(9, 1);
    let x0: Vec<u64> = (0..8).map(|_| s0.next_u64()).collect();
    let x1: Vec<u64> = (0..8).map(|_| s1.next_u64()).collect();
    assert_eq!(x0, a, "stream 0 is the base generator");
    assert_ne!(x0, x1, "jumped streams differ");
    // A fixed value pins the generator and seeding across targets and versions.
    assert_eq!(seeded(0).next_u64(), PINNED_FIRST_OUTPUT);
}

/// First output of xoshiro256++ seeded with `seed_from_u64(0)` (SplitMix64 expansion), as the
/// rand_xoshiro crate defines it; computed independently below in `splitmix_xoshiro_first`.
const PINNED_FIRST_OUTPUT: u64 = splitmix_xoshiro_first(0);

/// An independent transcription of SplitMix64 seeding and the first xoshiro256++ output
/// (Blackman & Vigna), so the pin above is not copied from a run.
const fn splitmix_xoshiro_first(seed: u64) -> u64 {
    let mut state = seed;
    let mut s = [0u64; 4];
    let mut i = 0;
    while i < 4 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        s[i] = z ^ (z >> 31);
        i += 1;
    }
    s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0])
}

#[test]
fn active_backend_is_the_best_available() {
    let active = Backend::active();
    assert!(active.is_available());
    for b in Backend::ALL {
        assert_eq!(Backend::from_name(b.name()), Some(b));
    }
    // x86-64: AVX-512 where the CPU has it (and the compiler provides it), else AVX2+FMA, else
    // SSE2, the baseline. Named from the names, so the test builds on compilers without the
    // AVX-512 backend.
    #[cfg(target_arch = "x86_64")]
    {
        let named = |name| Backend::from_name(name).filter(|b| b.is_available());
        let want = named("avx512")
            .or(named("avx2+fma"))
            .or(named("sse2"))
            .unwrap();
        assert_eq!(active, want);
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(active, Backend::Neon);
}
