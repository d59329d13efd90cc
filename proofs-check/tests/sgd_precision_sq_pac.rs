//! SGD precision versus SQ and PAC learning (Abbe, Kamath, Malach, Sandon, Srebro, NeurIPS 2021):
//! the label-blind oracle is legal when b ρ² is large (SQ side), samples are extracted exactly when
//! b ρ < 1/2 (PAC side); each negative control crosses the threshold and is rejected by the same
//! verdict.
//! Derivation: `docs/checks/sgd-precision-sq-pac.md`.

use descent_harness::checks::sgd_precision::criteria;
use proofs_check::check;

#[test]
fn label_blind_oracle_is_legal_when_b_rho_squared_is_large() {
    check(
        "sgd-precision/sq-label-blind",
        &[
            ("N1", criteria::ILLEGAL_STEPS),
            ("N2", criteria::ILLEGAL_STEPS),
        ],
    );
}

#[test]
fn samples_are_extracted_and_the_parity_recovered_when_b_rho_is_small() {
    check(
        "sgd-precision/pac-extraction",
        &[("N1", criteria::EXACT_RECOVERIES)],
    );
}
