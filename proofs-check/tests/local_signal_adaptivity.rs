//! Karp, Winston, Li, Singh (NeurIPS 2021), design `docs/checks/local-signal-adaptivity.md`:
//! the check passes with its default configuration and each negative control is rejected by the
//! same verdict, failing the named criterion.

use proofs_check::check;

#[test]
fn lsa1_thresholding_cnn_beats_its_ntk_cap() {
    check(
        "local-signal/cnn-vs-ntk",
        &[
            ("NC-low", "mean CNN − max(NTK A, NTK B)"),
            ("NC-high", "mean CNN accuracy"),
            ("NC-kernel", "kernel identity relative error"),
        ],
    );
}
