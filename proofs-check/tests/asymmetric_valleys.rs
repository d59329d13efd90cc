//! He, Huang, Yuan (NeurIPS 2019, arXiv:1902.00744), design `docs/checks/asymmetric-valleys.md`:
//! each check passes with its default configuration and with non-default settings of its general
//! case (flat side on either side, separable d-dimensional valleys with a symmetric coordinate,
//! heavy-ball momentum, a smooth valley biased to the left), and each negative control is rejected
//! by the same verdict, failing the named criterion.

use descent_harness::checks::asymmetric_valleys::criteria;
use descent_harness::run_check;
use proofs_check::{check, check_with};

#[test]
fn av1_average_sits_on_the_flat_side_with_exponent_one_half() {
    check(
        "asymmetric-valleys/averaging-bias",
        &[
            ("NC1a", criteria::MEAN_W_OVER_SE),
            ("NC1b", criteria::FLAT_SIDE_CHAINS),
            ("NC1c", criteria::W_EXPONENT),
            ("NC1d", criteria::W_OVER_MU),
        ],
    );
}

#[test]
fn av1_flat_side_on_the_left_with_heavy_ball_momentum() {
    // a < b: the flat side is w < 0 and μ < 0; β = 0.9 with η_eff = η/(1 − β) = 0.005…0.02.
    check_with(
        "asymmetric-valleys/averaging-bias",
        &["a=1", "b=4", "momentum=0.9", "etas=[0.0005,0.001,0.002]"],
        &[
            ("NC1a", criteria::MEAN_W_OVER_SE),
            ("NC1b", criteria::FLAT_SIDE_CHAINS),
            ("NC1c", criteria::W_EXPONENT),
            ("NC1d", criteria::W_OVER_MU),
        ],
    );
}

#[test]
fn av1_separable_valley_with_a_symmetric_coordinate() {
    // Three coordinates: flat side right, symmetric (scored as zero bias), flat side left.
    check_with(
        "asymmetric-valleys/averaging-bias",
        &["a=[4,2,1]", "b=[1,2,4]"],
        &[
            ("NC1a", criteria::MEAN_W_OVER_SE),
            ("NC1b", criteria::FLAT_SIDE_CHAINS),
            ("NC1c", criteria::W_EXPONENT),
            ("NC1d", criteria::W_OVER_MU),
        ],
    );
}

#[test]
fn av1_rejects_configurations_it_cannot_judge() {
    let name = "asymmetric-valleys/averaging-bias";
    for bad in [
        &["a=2", "b=2"][..],        // no asymmetric coordinate
        &["a=[4,1]", "b=[1]"][..],  // one curvature pair per coordinate
        &["steps=2000"][..],        // the 5% band would hold < 4 SE
        &["momentum=0.9"][..],      // η_eff·a = 0.8 > 0.08: outside the Gibbs regime
        &["tol_exponent=0.01"][..], // below the exponent's discretisation shift + 4 SE
    ] {
        assert!(run_check(name, bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn av2_average_generalizes_better_under_a_random_shift() {
    check(
        "asymmetric-valleys/shift-generalization",
        &[
            ("NC2a", criteria::IMPROVEMENT),
            ("NC2b", criteria::IMPROVEMENT),
        ],
    );
}

#[test]
fn av2_flat_side_on_the_left() {
    for set in [&["a=1", "b=4"][..], &["a=1", "b=3"][..]] {
        check_with(
            "asymmetric-valleys/shift-generalization",
            set,
            &[
                ("NC2a", criteria::IMPROVEMENT),
                ("NC2b", criteria::IMPROVEMENT),
            ],
        );
    }
}

#[test]
fn av3_smooth_valley_bias_is_linear_in_eta() {
    check(
        "asymmetric-valleys/logistic",
        &[("LSQ", criteria::BIAS_OVER_SE)],
    );
}

#[test]
fn av3_smooth_valley_biased_to_the_left() {
    // Mirrored labels: ŵ < 0, L3 > 0, the bias is negative; the exponent is fitted on |bias| and
    // the sign is its own criterion.
    for set in [
        &["label_slope=-1.5"][..],
        &[
            "x_shift=-0.5",
            "label_slope=-1.5",
            "lsq_slope=-0.8",
            "lsq_noise=2",
        ][..],
    ] {
        check_with(
            "asymmetric-valleys/logistic",
            set,
            &[("LSQ", criteria::BIAS_OVER_SE)],
        );
    }
}
