//! Kunstner et al. (NeurIPS 2024, arXiv:2402.19449), design
//! `docs/checks/class-imbalance-sign-descent.md`: each check passes with its default
//! configuration and each negative control is rejected by the same verdict, failing the named
//! criterion.

use proofs_check::check;

#[test]
fn p1a_one_hot_gd_scales_with_frequency_sign_and_adam_do_not() {
    check(
        "class-imbalance/one-hot",
        &[("NC3", "GD slope"), ("NC4", "Adam spread")],
    );
}

#[test]
fn p1b_mixture_gd_scales_with_frequency_sign_and_adam_do_not() {
    check(
        "class-imbalance/mixture",
        &[
            ("NC1", "seed 1: GD slope"),
            ("NC2", "seed 1: GD slope"),
            ("NC3", "seed 1: GD slope"),
            ("NC4", "seed 1: Adam slope"),
        ],
    );
}
