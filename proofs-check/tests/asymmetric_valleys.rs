//! He, Huang, Yuan (NeurIPS 2019, arXiv:1902.00744), design `docs/checks/asymmetric-valleys.md`:
//! each check passes with its default configuration and each negative control is rejected by the
//! same verdict, failing the named criterion.

use proofs_check::check;

#[test]
fn av1_average_sits_on_the_flat_side_with_exponent_one_half() {
    check(
        "asymmetric-valleys/averaging-bias",
        &[
            ("NC1a", "|mean w̄| / SE (min over η)"),
            ("NC1b", "chains with output on the flat side (min over η)"),
            ("NC1c", "exponent of w̄ in η"),
            ("NC1d", "w̄/μ at η=0.01"),
        ],
    );
}

#[test]
fn av2_average_generalizes_better_under_a_random_shift() {
    check(
        "asymmetric-valleys/shift-generalization",
        &[
            ("NC2a", "improvement I over the minimizer"),
            ("NC2b", "improvement I over the minimizer"),
        ],
    );
}

#[test]
fn av3_smooth_valley_bias_is_linear_in_eta() {
    check(
        "asymmetric-valleys/logistic",
        &[("LSQ", "|bias| / SE (min over η)")],
    );
}
