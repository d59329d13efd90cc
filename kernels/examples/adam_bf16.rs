//! Profiling aid: many bf16-storage Adam steps with stochastic rounding on 16 Ki elements (for
//! `valgrind --tool=callgrind` or `perf`).
use descent_kernels::{Adam, Exec, Rounding, Rule};
use half::bf16;

fn main() {
    let n = 16 * 1024;
    let adam = Adam::new(1e-3f32);
    let g = vec![0.1f32; n];
    let mut p = vec![bf16::from_f32(0.5); n];
    let mut state = vec![bf16::ZERO; adam.state_len(n)];
    for t in 1..=200u64 {
        let exec = Exec::active().with_rounding(Rounding::stochastic(7, t));
        adam.step_with(&exec, t, &mut p, &g, &mut state).unwrap();
    }
    println!("{}", p[0]);
}
