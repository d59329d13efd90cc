//! The optimizer-state experiment (issue 14): bf16 Adam with stochastic rounding and
//! Kahan-compensated bf16 Adam end within f32 Adam's seed-to-seed spread of final training loss,
//! 8-bit blockwise Adam not above it, and all three within binomial noise of its held-out
//! accuracy; the 2-bit linear state in the slot of 8-bit Adam is rejected by the same criteria.
//! 8-bit Adam's training loss is judged one-sided: the prediction that it matches f32 Adam's
//! within seed noise was refuted on the lower side, and a test below asserts the refutation. Design:
//! `docs/checks/optimizer-state-formats.md`.

use descent_harness::checks::optimizer_state::{criteria, task, train, FormatsConfig, Variant};
use descent_harness::numerics::{mean, std_dev};
use descent_harness::Verdict;
use proofs_check::{check, check_with};

const NAME: &str = "optimizer-state/formats";

#[test]
fn low_state_variants_match_f32_adam_and_the_two_bit_state_does_not() {
    let recs = check(NAME, &[("NC1", criteria::LOSS_NOT_WORSE)]);
    // Every judged variant is present in the positive record: two loss criteria (bf16 + SR,
    // Kahan bf16) and three accuracy criteria (with 8-bit Adam), plus the premise; Adafactor
    // appears in none.
    let pos = &recs[0];
    assert_eq!(pos.criteria_with(criteria::LOSS_PARITY).count(), 2);
    assert_eq!(pos.criteria_with(criteria::LOSS_NOT_WORSE).count(), 1);
    assert_eq!(pos.criteria_with(criteria::ACCURACY_PARITY).count(), 3);
    assert!(pos
        .criteria
        .iter()
        .all(|c| !c.name.ends_with("[Adafactor]")));
    assert_eq!(
        pos.criterion(criteria::REFERENCE_LEARNS).map(|c| c.verdict),
        Some(Verdict::Pass)
    );
    // In NC1 the failing criteria are the 2-bit state's, and only its.
    let failed: Vec<_> = recs[1]
        .criteria
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        failed,
        vec![
            format!("{} [2-bit linear Adam]", criteria::LOSS_NOT_WORSE.label()),
            format!("{} [2-bit linear Adam]", criteria::ACCURACY_PARITY.label()),
        ]
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
        &[("NC1", criteria::LOSS_NOT_WORSE)],
    );
}

#[test]
fn rejects_short_curves_and_too_few_filters_naming_the_key() {
    for (set, key) in [
        (&["curve_every=600", "steps=500"][..], "`curve_every`"),
        (&["model=cnn", "filters=4", "classes=5"][..], "`filters`"),
    ] {
        let e = descent_harness::run_check(NAME, set).expect_err("must be rejected");
        assert!(e.to_string().contains(key), "{set:?}: {e}");
    }
}

/// The refuted prediction, asserted: at large batches 8-bit Adam's mean final training loss ends
/// *below* f32 Adam's by more than 2 of f32 Adam's seed standard deviations (first found as 2.6
/// and 3.7 sd at these two configurations; at the defaults, batch 64, it stays within 0.5 sd).
/// Its cause, measured once (see the doc): the carried 8-bit second moment is biased low, so the
/// update is larger. The same configurations pass the check, whose 8-bit criteria are held-out
/// accuracy and the one-sided loss. If this test fails, the 8-bit state no longer drifts and the
/// doc's finding is stale.
#[test]
fn eight_bit_adam_training_loss_ends_below_f32_adam_at_large_batches() {
    let configs = [
        FormatsConfig {
            inputs: 7,
            teacher_hidden: 12,
            classes: 4,
            hidden: 220,
            train_n: 722,
            batch: 155,
            steps: 696,
            lr: 0.0030476432676555276,
            seed: 176972257,
            ..FormatsConfig::default()
        },
        FormatsConfig {
            inputs: 13,
            teacher_hidden: 6,
            classes: 6,
            hidden: 65,
            train_n: 6286,
            batch: 227,
            steps: 1167,
            lr: 0.002023347616129327,
            seed: 643077375,
            ..FormatsConfig::default()
        },
    ];
    for cfg in configs {
        let data = task(&cfg, cfg.seed);
        let losses = |v: Variant| {
            (0..cfg.seeds)
                .map(|s| train(&cfg, &data, v, cfg.seed.wrapping_add(1 + s as u64)).loss)
                .collect::<Vec<f64>>()
        };
        let (f32_loss, eight_bit) = (losses(Variant::AdamF32), losses(Variant::Adam8));
        let sd = std_dev(&f32_loss);
        let gap = (mean(&eight_bit) - mean(&f32_loss)) / sd;
        assert!(gap < -2.0, "batch {}: 8-bit − f32 = {gap:.2} sd", cfg.batch);
    }
    check_with(
        NAME,
        &[
            "inputs=13",
            "teacher_hidden=6",
            "classes=6",
            "hidden=65",
            "train_n=6286",
            "batch=227",
            "steps=1167",
            "lr=0.002023347616129327",
            "seed=643077375",
        ],
        &[("NC1", criteria::LOSS_NOT_WORSE)],
    );
}

/// The CNN (`model = cnn`: 3×3 filters, ReLU, mean pooling, dense layer, on noise images with a
/// planted 3×3 pattern per class), at the learning rate it needs to learn in 400 steps, with the
/// seed at which Adafactor's accuracy fell furthest behind (reported, not judged).
#[test]
fn cnn_adam_family_matches_f32_adam_and_the_two_bit_state_does_not() {
    let recs = check_with(
        NAME,
        &["model=cnn", "lr=0.01", "adafactor_lr=0.03", "seed=2"],
        &[("NC1", criteria::LOSS_NOT_WORSE)],
    );
    assert_eq!(
        recs[0].criteria.len(),
        7,
        "premise, two losses, one one-sided loss, three accuracies"
    );
}

/// Found by a manual draw over the declared ranges: a CNN on an easy two-class task, few test
/// examples (accuracy band ±0.051), where the 2-bit state's accuracy (−0.032) stayed inside the
/// band. Its loss (1.10 against f32 Adam's 0.41 ± 0.015) does not: the one-sided loss criterion
/// rejects it. With accuracy alone as the 8-bit slot's criterion, NC1 passed here.
#[test]
fn two_bit_state_rejected_by_its_loss_where_accuracy_cannot_see_it() {
    check_with(
        NAME,
        &[
            "model=cnn",
            "classes=2",
            "side=6",
            "filters=6",
            "amplitude=4.203",
            "train_n=6414",
            "test_n=1065",
            "batch=146",
            "steps=358",
            "lr=0.009020729515571193",
            "seeds=7",
            "seed=2969950270",
        ],
        &[("NC1", criteria::LOSS_NOT_WORSE)],
    );
}
