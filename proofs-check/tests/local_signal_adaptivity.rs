//! Karp, Winston, Li, Singh (NeurIPS 2021), design `docs/checks/local-signal-adaptivity.md`:
//! the check passes with its default configuration and each negative control is rejected by the
//! same verdict, failing the named criterion.

use descent_harness::checks::local_signal::criteria;
use proofs_check::{check, check_with};

#[test]
fn lsa1_thresholding_cnn_beats_its_ntk_cap() {
    check(
        "local-signal/cnn-vs-ntk",
        &[
            ("NC-low", criteria::CNN_NTK_GAP),
            ("NC-high", criteria::CNN_MEAN_ACCURACY),
            ("NC-kernel", criteria::KERNEL_IDENTITY_ERROR),
        ],
    );
}

/// The signal added to a noise patch instead of replacing it: all k patches are noisy, the caps
/// count k noisy patches (cap_lin = Φ(1/(σ√k)), comparator A re-derived), and the CNN still
/// thresholds. One seed per case keeps the test short.
#[test]
fn lsa1_additive_signal_patch() {
    check_with(
        "local-signal/cnn-vs-ntk",
        &["signal_mode=add", "seeds=1"],
        &[
            ("NC-low", criteria::CNN_NTK_GAP),
            ("NC-high", criteria::CNN_MEAN_ACCURACY),
            ("NC-kernel", criteria::KERNEL_IDENTITY_ERROR),
        ],
    );
}
