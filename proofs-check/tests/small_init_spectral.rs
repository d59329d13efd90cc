//! Stöger & Soltanolkotabi (NeurIPS 2021, arXiv:2106.15013), design
//! `docs/checks/small-init-spectral.md`: each check passes with its default configuration and
//! each negative control is rejected by the same verdict, failing the named criterion.

use descent_harness::checks::small_init::criteria;
use proofs_check::check;

#[test]
fn p3a_phase_one_is_the_power_method() {
    check("small-init/power-method", &[("NC2", criteria::MIN_T1)]);
}

#[test]
fn p3b_escape_time_slope_is_set_by_the_spectral_matrix() {
    check("small-init/escape-time", &[("NC3", criteria::ESCAPE_SLOPE)]);
}

#[test]
fn p3c_small_init_generalizes_large_init_does_not() {
    check(
        "small-init/implicit-bias",
        &[("NC1", criteria::FINAL_TEST_ERROR)],
    );
}
