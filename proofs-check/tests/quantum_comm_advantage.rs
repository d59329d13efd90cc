//! Gilboa, Michaeli, Soudry, McClean (NeurIPS 2024, arXiv:2310.07136), design
//! `docs/checks/quantum-comm-advantage.md`: each check passes with its default configuration and
//! each negative control is rejected by the same verdict, failing the named criterion.

use proofs_check::check;

#[test]
fn qc1a_parameter_shift_finite_differences_and_adjoint_agree() {
    check(
        "quantum-comm/gradients",
        &[
            ("NS", "max |finite difference − parameter shift|"),
            ("NA", "max |adjoint − parameter shift|"),
        ],
    );
}

#[test]
fn qc1bd_shot_noise_coverage_and_qubit_ledger() {
    check(
        "quantum-comm/shots",
        &[("NC", "empirical sd / predicted sd − 1")],
    );
}

#[test]
fn qc2_separation_on_vector_in_subspace_but_not_linear_classification() {
    check(
        "quantum-comm/separation",
        &[("QC3", "success drop at fixed m, N = 64 → 1024")],
    );
}
