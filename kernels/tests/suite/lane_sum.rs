//! `Simd::reduce_add` on every backend against the documented lane order, transcribed here: the
//! lanes summed pairwise, `((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))` and so on, each
//! level adding neighbours. The matrix product's row dot products and every reduction's last
//! step use it, so a backend that summed its lanes in any other order would change their bits.

use crate::common::{self, mixed, same};
use descent_kernels::arch::Simd;
use descent_kernels::random::{seeded, uniform01};
use descent_kernels::{Element, Kernel};
use proptest::prelude::*;

/// The sum of the first `LANES` values by `reduce_add`, and by the transcribed tree.
struct LaneSum<'a, T>(&'a [T]);

impl<T: Element> Kernel<T> for LaneSum<'_, T> {
    type Output = (T, T);
    fn run<S: Simd<T>>(self, s: S) -> (T, T) {
        let lanes = &self.0[..S::LANES];
        // SAFETY: `lanes` holds LANES elements.
        let got = s.reduce_add(unsafe { s.load(lanes.as_ptr()) });
        let mut level = lanes.to_vec();
        while level.len() > 1 {
            level = level.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        }
        (got, level[0])
    }
}

fn check<T: Element>(seed: u64, scale: f64, specials: f64) {
    let mut rng = seeded(seed);
    for backend in common::backends() {
        for _ in 0..64 {
            // Magnitudes 2^-20 .. 2^20 apart, so that another order would round differently.
            let mut x: Vec<T> = mixed(&mut rng, 16, scale, specials);
            for v in &mut x {
                *v = *v * T::pow2((uniform01(&mut rng) * 40.0) as i32 - 20);
            }
            let (got, want) = T::dispatch(backend, LaneSum(&x));
            assert!(
                same(got, want),
                "{backend:?}: reduce_add({x:?}) = {got:?}, the documented order gives {want:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(common::proptest_config(24))]

    #[test]
    fn reduce_add_sums_lanes_in_the_documented_order(
        seed in any::<u64>(),
        scale in prop_oneof![Just(1.0), Just(1e6), Just(1e30)],
        specials in prop_oneof![Just(0.0), Just(0.1)],
    ) {
        check::<f32>(seed, scale, specials);
        check::<f64>(seed, scale, specials);
    }
}
