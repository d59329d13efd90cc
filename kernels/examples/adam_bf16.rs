//! Profiling aid: many bf16-storage Adam steps with stochastic rounding on 16 Ki elements (for
//! `valgrind --tool=callgrind` or `perf`).
use descent_kernels::{Adam, Backend, Rounding};
use half::bf16;

fn main() {
    let n = 16 * 1024;
    let adam = Adam::new(1e-3f32);
    let g = vec![0.1f32; n];
    let (mut p, mut m, mut v) = (
        vec![bf16::from_f32(0.5); n],
        vec![bf16::ZERO; n],
        vec![bf16::ZERO; n],
    );
    for t in 1..=200u64 {
        let r = Rounding::stochastic(7, t);
        adam.step_reduced_on(Backend::active(), r, t, &mut p, &g, &mut m, &mut v)
            .unwrap();
    }
    println!("{}", p[0]);
}
