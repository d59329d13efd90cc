//! Spiridonoff, Olshevsky, Paschalidis (NeurIPS 2021, arXiv:2106.04759), derivations in
//! `docs/checks/local-sgd-one-shot.md`: each check passes with its default configuration and each
//! negative control is rejected by the same verdict, failing the named criterion.

use descent_harness::checks::local_sgd::criteria;
use descent_harness::checks::local_sgd::{quad_times, QuadraticConfig, QUAD_SCHEDULES};
use descent_harness::{run_check, Verdict};
use proofs_check::check;

#[test]
fn ls1_growing_intervals_give_linear_speedup_osa_and_sqrt_n_do_not() {
    check(
        "local-sgd/speedup",
        &[
            ("OSA", criteria::SPEEDUP_EXPONENT_MIN),
            ("SQRT", criteria::SPEEDUP_EXPONENT_MIN),
            ("EARLY", criteria::SPEEDUP_EXPONENT_MIN),
        ],
    );
}

#[test]
fn ls2_one_shot_averaging_is_optimal_iff_c2_at_the_minimum() {
    check(
        "local-sgd/one-shot-smoothness",
        &[("KINK", criteria::RHO_MAX)],
    );
}

#[test]
fn ls3_quadratic_matches_the_exact_recursion_for_every_schedule() {
    check(
        "local-sgd/quadratic-exact",
        &[("MEANS", criteria::MONTE_CARLO_LOSS)],
    );
}

/// Constant intervals with N not dividing T (N = 30, T = 1000): the schedule is τ_r = ⌊rT/N⌋, with
/// exactly N communications, and the check's Monte Carlo agrees with its exact moment recursion
/// for it (and for every other schedule) while the MEANS control still fails.
#[test]
fn ls3_constant_intervals_with_n_not_dividing_t() {
    let cfg = QuadraticConfig {
        n: 30,
        ..QuadraticConfig::default()
    };
    assert_ne!(cfg.t % cfg.n, 0);
    let times = quad_times(&cfg, 2);
    assert_eq!(QUAD_SCHEDULES[2], "R = N constant");
    assert_eq!(times.len(), cfg.n, "exactly N communications");
    let expected: Vec<usize> = (1..=cfg.n).map(|r| r * cfg.t / cfg.n).collect();
    assert_eq!(times, expected);
    let recs = run_check("local-sgd/quadratic-exact", &["n=30"]).expect("valid overrides");
    assert_eq!(
        recs[0].verdict,
        Verdict::Pass,
        "positive case: {:#?}",
        recs[0].failed()
    );
    // One Monte-Carlo criterion per schedule, in `QUAD_SCHEDULES` order.
    let c = recs[0]
        .criteria_with(criteria::MONTE_CARLO_LOSS)
        .nth(2)
        .expect("criterion of the constant schedule");
    assert!(c.name.contains(QUAD_SCHEDULES[2]), "{c:#?}");
    assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    assert_eq!(recs[1].case.id, "MEANS");
    assert_eq!(recs[1].verdict, Verdict::Fail, "{:#?}", recs[1].criteria);
}
