//! Spiridonoff, Olshevsky, Paschalidis (NeurIPS 2021, arXiv:2106.04759), design
//! `shared/papers/local-sgd-one-shot.md`: each check passes with its default configuration and each
//! negative control is rejected by the same verdict, failing the named criterion.

use proofs_check::check;

#[test]
fn ls1_growing_intervals_give_linear_speedup_osa_and_sqrt_n_do_not() {
    check(
        "local-sgd/speedup",
        &[
            ("OSA", "speed-up exponent γ ≥"),
            ("SQRT", "speed-up exponent γ ≥"),
            ("EARLY", "speed-up exponent γ ≥"),
        ],
    );
}

#[test]
fn ls2_one_shot_averaging_is_optimal_iff_c2_at_the_minimum() {
    check(
        "local-sgd/one-shot-smoothness",
        &[("KINK", "ρ = N·E[x̄²]/E[x₁²] ≤")],
    );
}

#[test]
fn ls3_quadratic_matches_the_exact_recursion_for_every_schedule() {
    check(
        "local-sgd/quadratic-exact",
        &[("MEANS", "max |S/N − 1| over schedules (recursion)")],
    );
}
