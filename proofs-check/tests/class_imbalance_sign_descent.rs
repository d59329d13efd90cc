//! Kunstner et al. (NeurIPS 2024, arXiv:2402.19449), design
//! `docs/checks/class-imbalance-sign-descent.md`: each check passes with its default
//! configuration and with non-default settings of its general case (inputs of dimension d > c
//! through a seeded injective class→coordinate map, so some coordinates have exactly zero
//! gradient; Adam's β1 ≠ 0), and each negative control is rejected by the same verdict, failing
//! the named criterion.

use descent_harness::checks::class_imbalance::criteria;
use descent_harness::run_check;
use proofs_check::{check, check_with};

#[test]
fn p1a_one_hot_gd_scales_with_frequency_sign_and_adam_do_not() {
    check(
        "class-imbalance/one-hot",
        &[("NC3", criteria::GD_SLOPE), ("NC4", criteria::ADAM_SPREAD)],
    );
}

#[test]
fn p1a_one_hot_general_settings() {
    for set in [
        &["extra_dims=16", "map_seed=7"][..],
        &[
            "extra_dims=40",
            "map_seed=11",
            "adam_beta1=0.9",
            "classes=24",
        ][..],
        &["adam_beta1=0.5", "zipf_alpha=1.5"][..],
        // ε not negligible against √v̂: scored against the exact per-class prediction (Adam with
        // ε/π_k), not against exact symmetry.
        &["adam_eps=1e-8"][..],
        &[
            "adam_eps=1e-5",
            "adam_beta1=0.9",
            "extra_dims=4",
            "map_seed=5",
        ][..],
    ] {
        let recs = run_check("class-imbalance/one-hot", set).expect("valid");
        if set.iter().any(|s| s.starts_with("extra_dims")) {
            let z = recs[0]
                .criterion(criteria::ZERO_INPUT_MAX_W)
                .expect("scored when d > c");
            assert_eq!(z.measured, 0.0, "{set:?}");
        }
        check_with(
            "class-imbalance/one-hot",
            set,
            &[("NC3", criteria::GD_SLOPE), ("NC4", criteria::ADAM_SPREAD)],
        );
    }
}

#[test]
fn p1b_mixture_gd_scales_with_frequency_sign_and_adam_do_not() {
    check(
        "class-imbalance/mixture",
        &[
            ("NC1", criteria::GD_SLOPE),
            ("NC2", criteria::GD_SLOPE),
            ("NC3", criteria::GD_SLOPE),
            ("NC4", criteria::ADAM_SLOPE),
        ],
    );
}

#[test]
fn p1b_mixture_general_settings() {
    for set in [
        &["extra_dims=16", "map_seed=7", "seeds=2"][..],
        &["adam_beta1=0.9", "extra_dims=8", "map_seed=3", "seeds=2"][..],
    ] {
        check_with(
            "class-imbalance/mixture",
            set,
            &[
                ("NC1", criteria::GD_SLOPE),
                ("NC2", criteria::GD_SLOPE),
                ("NC3", criteria::GD_SLOPE),
                ("NC4", criteria::ADAM_SLOPE),
            ],
        );
    }
}

#[test]
fn p1a_rejects_an_epsilon_outside_the_claim() {
    // ε = 1e-2: class k runs Adam with ε/π_k ≫ √v̂ on rare classes, the exact prediction's slope
    // is ≈ −0.37, and the claim does not hold: the configuration is rejected with the reason.
    let e = run_check("class-imbalance/one-hot", &["adam_eps=1e-2"]).unwrap_err();
    assert!(e.0.contains("adam_eps"), "{e}");
}
