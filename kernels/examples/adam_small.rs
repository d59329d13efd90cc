//! Profiling aid: many Adam steps on 1 Ki elements (for `valgrind --tool=callgrind` or `perf`).
use descent_kernels::{Adam, Rule};

fn main() {
    let n = 1024;
    let adam = Adam::new(1e-3f32);
    let (mut p, g) = (vec![0.5f32; n], vec![0.1f32; n]);
    let mut state = vec![0.0f32; adam.state_len(n)];
    for t in 1..=2000u64 {
        adam.step(t, &mut p, &g, &mut state).unwrap();
    }
    println!("{}", p[0]);
}
