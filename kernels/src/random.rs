//! Seeded random streams for tests, examples and experiments: the same seed gives the same stream
//! on every target (xoshiro256++ uses only 64-bit integer arithmetic, no floating point in the
//! generator itself).

use crate::Element;
use rand_core::{Rng, SeedableRng};
pub use rand_xoshiro::Xoshiro256PlusPlus;

/// A generator seeded from one `u64` (expanded with SplitMix64, as `SeedableRng::seed_from_u64`).
pub fn seeded(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// The `i`-th independent stream of `seed`: the base generator advanced by `i` jumps of 2^128
/// steps, so streams never overlap in any feasible run.
pub fn stream(seed: u64, i: u32) -> Xoshiro256PlusPlus {
    let mut rng = seeded(seed);
    for _ in 0..i {
        rng.jump();
    }
    rng
}

/// A uniform draw in `[0, 1)` with 53 random bits.
#[inline]
pub fn uniform01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fills `out` with uniform draws in `[lo, hi)`.
pub fn fill_uniform<T: Element, R: Rng + ?Sized>(rng: &mut R, out: &mut [T], lo: f64, hi: f64) {
    for x in out {
        *x = T::from_f64_round(lo + (hi - lo) * uniform01(rng));
    }
}

/// Fills `out` with normal draws of mean `mean` and standard deviation `std` (Box–Muller).
pub fn fill_normal<T: Element, R: Rng + ?Sized>(rng: &mut R, out: &mut [T], mean: f64, std: f64) {
    let mut chunks = out.chunks_mut(2);
    for pair in &mut chunks {
        // 1 − U lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - uniform01(rng);
        let u2 = uniform01(rng);
        let r = libm::sqrt(-2.0 * libm::log(u1));
        let (s, c) = libm::sincos(2.0 * core::f64::consts::PI * u2);
        pair[0] = T::from_f64_round(mean + std * r * c);
        if let Some(x) = pair.get_mut(1) {
            *x = T::from_f64_round(mean + std * r * s);
        }
    }
}
