//! Amir, Carmon, Koren, Livni, "Never Go Full Batch" (NeurIPS 2021, arXiv:2107.00469), design
//! `docs/checks/never-full-batch.md`: each check passes with its default configuration and each
//! negative control is rejected by the same verdict, failing the named criterion. The subgradient
//! oracle is verified at every call inside the runs (a violation panics, failing the test).

use proofs_check::check;

#[test]
fn nf1_tuned_full_batch_gd_decays_as_t_to_minus_quarter() {
    check(
        "never-full-batch/gd-rate",
        &[
            ("NC-a", "slope of log excess vs log T"),
            ("NC-b", "slope of log excess vs log T"),
            ("NC-c", "slope of log excess vs log T"),
        ],
    );
}

#[test]
fn nf2_one_pass_sgd_decays_as_t_to_minus_half() {
    check(
        "never-full-batch/sgd-rate",
        &[("NC-d", "exponent of (one-pass / full-batch) excess in T")],
    );
}

#[test]
fn nf3_overfitting_switches_off_with_the_sample_size() {
    check(
        "never-full-batch/sample-size",
        &[("NC-e", "n=12: excess / 2√(A_K·B)")],
    );
}
