//! The optimizer-state experiment (issue 14): 8-bit blockwise Adam, bf16 Adam with stochastic
//! rounding and Kahan-compensated bf16 Adam end within f32 Adam's seed-to-seed spread of final
//! training loss, and every variant (Adafactor too) within binomial noise of its held-out
//! accuracy; the 2-bit linear state in the slot of 8-bit Adam is rejected by the same loss
//! criterion. Design: `docs/checks/optimizer-state-formats.md`.

use descent_harness::checks::optimizer_state::criteria;
use descent_harness::Verdict;
use proofs_check::{check, check_with};

const NAME: &str = "optimizer-state/formats";

#[test]
fn low_state_variants_match_f32_adam_and_the_two_bit_state_does_not() {
    let recs = check(NAME, &[("NC1", criteria::LOSS_PARITY)]);
    // Every judged variant is present in the positive record: three loss criteria (the Adam
    // family) and four accuracy criteria (with Adafactor), plus the premise.
    let pos = &recs[0];
    assert_eq!(pos.criteria_with(criteria::LOSS_PARITY).count(), 3);
    assert_eq!(pos.criteria_with(criteria::ACCURACY_PARITY).count(), 4);
    assert_eq!(
        pos.criterion(criteria::REFERENCE_LEARNS).map(|c| c.verdict),
        Some(Verdict::Pass)
    );
    // In NC1 the failing loss criterion is the 2-bit state's, and only it.
    let failed: Vec<_> = recs[1]
        .criteria_with(criteria::LOSS_PARITY)
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        failed,
        vec![format!(
            "{} [2-bit linear Adam]",
            criteria::LOSS_PARITY.label()
        )]
    );
}

#[test]
fn other_task_and_schedule() {
    check_with(
        NAME,
        &[
            "inputs=8",
            "classes=3",
            "teacher_hidden=6",
            "hidden=48",
            "batch=128",
            "steps=600",
            "lr=0.005",
            "adafactor_lr=0.02",
            "seeds=4",
            "seed=11",
        ],
        &[("NC1", criteria::LOSS_PARITY)],
    );
}

#[test]
fn rejects_mismatched_paces_short_curves_and_too_few_filters_naming_the_key() {
    for (set, key) in [
        (&["adafactor_lr=0.003"][..], "`adafactor_lr`"),
        (&["lr=0.01"][..], "`adafactor_lr`"),
        (&["curve_every=600", "steps=500"][..], "`curve_every`"),
        (&["model=cnn", "filters=4", "classes=5"][..], "`filters`"),
    ] {
        let e = descent_harness::run_check(NAME, set).expect_err("must be rejected");
        assert!(e.to_string().contains(key), "{set:?}: {e}");
    }
}

/// Open finding (wider manual draws over the declared ranges: 4 of 12 failed the same way, all with
/// large batches, 155 to 434, and 696 to 1421 steps): 8-bit Adam ends with a *lower* training loss
/// than f32 Adam, by 2.6 and 3.7 seed standard deviations here (−0.0043 against a band of ±0.0033
/// at a loss of 0.021; −0.0138 against ±0.0075), while bf16 + SR and Kahan-bf16 stay within a few
/// hundredths of a standard deviation and every accuracy criterion passes. Steps alone do not
/// cause it: at the defaults (batch 64) with 800 or 1600 steps 8-bit Adam stays at −0.4 sd. A
/// systematic effect of the 8-bit moments on the pace that the seed spread hides at small batches
/// (more minibatch noise) but not at large ones. Kept as reproducers; the ranges are not narrowed
/// to hide it.
#[test]
#[ignore = "open finding: 8-bit Adam's training loss ends below f32 Adam's beyond seed noise at large batches"]
fn open_finding_eight_bit_adam_ends_below_f32_adam_at_large_batches() {
    for set in [
        &[
            "inputs=7",
            "teacher_hidden=12",
            "classes=4",
            "hidden=220",
            "train_n=722",
            "batch=155",
            "steps=696",
            "lr=0.0030476432676555276",
            "adafactor_lr=0.010093495454013352",
            "seed=176972257",
        ][..],
        &[
            "inputs=13",
            "teacher_hidden=6",
            "classes=6",
            "hidden=65",
            "train_n=6286",
            "batch=227",
            "steps=1167",
            "lr=0.002023347616129327",
            "adafactor_lr=0.004074446422224276",
            "seed=643077375",
        ][..],
    ] {
        check_with(NAME, set, &[("NC1", criteria::LOSS_PARITY)]);
    }
}

/// The CNN (`model = cnn`: 3×3 filters, ReLU, mean pooling, dense layer, on noise images with a
/// planted 3×3 pattern per class), at the learning rates it needs, with the seed whose Adafactor
/// accuracy missed its band (see the next test): the Adam-family criteria, loss and accuracy,
/// pass, and NC1 fails on the 2-bit state's loss.
const CNN: [&str; 4] = ["model=cnn", "lr=0.01", "adafactor_lr=0.03", "seed=2"];

#[test]
fn cnn_adam_family_matches_f32_adam_and_the_two_bit_state_does_not() {
    let recs = descent_harness::run_check(NAME, &CNN).expect("valid");
    let (pos, nc1) = (&recs[0], &recs[1]);
    let judged: Vec<_> = pos
        .criteria
        .iter()
        .filter(|c| !c.name.ends_with("[Adafactor]"))
        .collect();
    assert_eq!(judged.len(), 7, "premise, three losses, three accuracies");
    for c in judged {
        assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    }
    let two_bit = nc1
        .criteria_with(criteria::LOSS_PARITY)
        .find(|c| c.name.ends_with("[2-bit linear Adam]"))
        .expect("NC1 judges the 2-bit state's loss");
    assert_eq!(two_bit.verdict, Verdict::Fail);
    assert_eq!(nc1.verdict, Verdict::Fail);
}

/// Open finding: on the CNN, Adafactor's held-out accuracy falls below f32 Adam's by more than the
/// band (here −0.025 against ±0.020; −0.013 against ±0.0075 at `amplitude = 12, filters = 16,
/// steps = 1000`), though its pace is inside the factor-2 window validation requires: the pace
/// argument does not carry the accuracy prediction for Adafactor on this network.
#[test]
#[ignore = "open finding: Adafactor's CNN accuracy misses f32 Adam's band"]
fn open_finding_adafactor_cnn_accuracy() {
    check_with(NAME, &CNN, &[("NC1", criteria::LOSS_PARITY)]);
}
