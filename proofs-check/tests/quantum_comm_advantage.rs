//! Gilboa, Michaeli, Soudry, McClean (NeurIPS 2024, arXiv:2310.07136), design
//! `docs/checks/quantum-comm-advantage.md`: each check passes with its default configuration and
//! each negative control is rejected by the same verdict, failing the named criterion.

use descent_harness::checks::quantum_comm::criteria;
use proofs_check::{check, check_with};

#[test]
fn qc1a_parameter_shift_finite_differences_and_adjoint_agree() {
    check(
        "quantum-comm/gradients",
        &[
            ("NS", criteria::FD_VS_SHIFT),
            ("NA", criteria::ADJOINT_VS_SHIFT),
        ],
    );
}

#[test]
fn qc1bd_shot_noise_coverage_and_qubit_ledger() {
    check("quantum-comm/shots", &[("NC", criteria::SD_RATIO_ERROR)]);
}

#[test]
fn qc2_separation_on_vector_in_subspace_but_not_linear_classification() {
    check(
        "quantum-comm/separation",
        &[("QC3", criteria::SUCCESS_DROP)],
    );
}

/// Other circuit families: rotation axis, entangler and observable as keys (the constant
/// families are rejected by validation, see `reject_constant_family`).
#[test]
fn qc1a_gradient_identities_in_other_circuit_families() {
    for (axis, gate, obs) in [("x", "cnot", "y"), ("z", "cz", "x"), ("y", "cnot", "x")] {
        let a = format!("rotation_axis={axis}");
        let g = format!("entangler={gate}");
        let o = format!("observable={obs}");
        check_with(
            "quantum-comm/gradients",
            &[&a, &g, &o, "n=5", "layers=3"],
            &[
                ("NS", criteria::FD_VS_SHIFT),
                ("NA", criteria::ADJOINT_VS_SHIFT),
            ],
        );
    }
}

#[test]
fn qc1a_constant_families_are_rejected_with_the_reason() {
    for (axis, gate) in [("z", "cz"), ("z", "cnot"), ("x", "cnot")] {
        let a = format!("rotation_axis={axis}");
        let g = format!("entangler={gate}");
        let o = format!("observable={axis}");
        let e = descent_harness::run_check("quantum-comm/gradients", &[&a, &g, &o])
            .err()
            .unwrap_or_else(|| panic!("{axis} {gate} {axis} was accepted"))
            .to_string();
        assert!(e.contains("does not depend on the parameters"), "{e}");
    }
}

#[test]
fn qc1bd_shots_in_other_circuit_families() {
    for (axis, gate, obs) in [("x", "cnot", "y"), ("z", "cnot", "x")] {
        let a = format!("rotation_axis={axis}");
        let g = format!("entangler={gate}");
        let o = format!("observable={obs}");
        check_with(
            "quantum-comm/shots",
            &[&a, &g, &o, "n=6"],
            &[("NC", criteria::SD_RATIO_ERROR)],
        );
    }
}

/// Sketch sizes given explicitly per N (two sizes at each of two dimensions).
#[test]
fn qc2_separation_with_explicit_sketch_sizes_per_n() {
    check_with(
        "quantum-comm/separation",
        &[
            "dims=[64, 512]",
            "sketch_ms=[8, 20, 16, 64]",
            "instances=300",
        ],
        &[("QC3", criteria::SUCCESS_DROP)],
    );
}
