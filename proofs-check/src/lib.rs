//! The theory checks as `cargo test`: one test file per paper under `tests/`. Each test runs a
//! registered check of `descent-harness` with its default configuration and asserts, through the
//! record's own verdict, that the positive case passes and every negative control fails the
//! same criteria. Run with `cargo test -p proofs-check --release`.

use descent_harness::record::CriterionKey;
use descent_harness::{run_check, Record, Verdict};

/// Runs `name` with defaults; asserts the positive case passes, that the controls are the ones
/// listed (`(control id, criterion key)`), and that each control's verdict is FAIL with at least
/// one criterion of that key among its failed criteria, while every criterion of that key passed
/// in the positive case.
pub fn check(name: &str, controls: &[(&str, CriterionKey)]) -> Vec<Record> {
    check_with(name, &[], controls)
}

/// As [`check`], with `overrides` (`key=value`) on top of the defaults.
pub fn check_with(
    name: &str,
    overrides: &[&str],
    controls: &[(&str, CriterionKey)],
) -> Vec<Record> {
    let recs = run_check(name, overrides)
        .unwrap_or_else(|e| panic!("{name} {overrides:?}: rejected: {e}"));
    let pos = &recs[0];
    assert_eq!(pos.case.id, "positive");
    assert_eq!(
        pos.verdict,
        Verdict::Pass,
        "{name} {overrides:?}: positive case failed: {:#?}",
        pos.failed()
    );
    assert_eq!(
        recs.len(),
        1 + controls.len(),
        "{name}: controls {:?}",
        recs.iter().map(|r| &r.case.id).collect::<Vec<_>>()
    );
    for (rec, (id, key)) in recs[1..].iter().zip(controls) {
        let label = key.label();
        assert_eq!(rec.case.id, *id);
        assert_eq!(rec.case.expected, Verdict::Fail);
        assert_eq!(
            rec.verdict,
            Verdict::Fail,
            "{name} {overrides:?} {id}: control passed: {:#?}",
            rec.criteria
        );
        let judged: Vec<_> = rec.criteria_with(*key).collect();
        assert!(
            !judged.is_empty(),
            "{name} {overrides:?} {id}: no criterion {label}"
        );
        assert!(
            judged.iter().any(|c| c.verdict == Verdict::Fail),
            "{name} {overrides:?} {id}: no criterion {label} failed: {judged:#?}"
        );
        // The same criteria, judged the same way, are what the positive case passed.
        let passed: Vec<_> = pos.criteria_with(*key).collect();
        assert!(
            !passed.is_empty(),
            "{name} {overrides:?}: positive case has no criterion {label}"
        );
        assert!(
            passed.iter().all(|c| c.verdict == Verdict::Pass),
            "{name} {overrides:?}: positive case failed {label}: {passed:#?}"
        );
        assert!(rec.as_expected());
    }
    recs
}
