//! The reduced-precision experiment (issue: f16/bf16 storage and stochastic rounding): bf16-stored
//! GD stalls under round-to-nearest and converges at the predicted rate under stochastic rounding;
//! each negative control is rejected by the same verdict.
//! Derivation: `docs/checks/bf16-rounding.md`.

use descent_harness::checks::bf16_rounding::criteria;
use proofs_check::check;

#[test]
fn bf16_gd_stalls_with_nearest_and_converges_with_stochastic_rounding() {
    check(
        "bf16-rounding/stall-vs-stochastic",
        &[
            ("NC1", criteria::STOCHASTIC_ERROR_END),
            ("NC2", criteria::NEAREST_DRIFT),
        ],
    );
}
