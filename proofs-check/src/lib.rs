//! The theory checks as `cargo test`: one test file per paper under `tests/`. Each test runs a
//! registered check of `descent-harness` with its default configuration and asserts, through the
//! record's own verdict, that the positive case passes and every negative control fails the
//! same criteria. Run with `cargo test -p proofs-check --release`.

use descent_harness::{run_check, Record, Verdict};

/// Runs `name` with defaults; asserts the positive case passes, that the controls are the ones
/// listed, and that each control's verdict is FAIL with `criterion` among its failed criteria.
pub fn check(name: &str, controls: &[(&str, &str)]) -> Vec<Record> {
    check_with(name, &[], controls)
}

/// As [`check`], with `overrides` (`key=value`) on top of the defaults.
pub fn check_with(name: &str, overrides: &[&str], controls: &[(&str, &str)]) -> Vec<Record> {
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
    for (rec, (id, criterion)) in recs[1..].iter().zip(controls) {
        assert_eq!(rec.case.id, *id);
        assert_eq!(rec.case.expected, Verdict::Fail);
        assert_eq!(
            rec.verdict,
            Verdict::Fail,
            "{name} {overrides:?} {id}: control passed: {:#?}",
            rec.criteria
        );
        let c = rec
            .criterion(criterion)
            .unwrap_or_else(|| panic!("{name} {id}: no criterion {criterion}"));
        assert_eq!(
            c.verdict,
            Verdict::Fail,
            "{name} {overrides:?} {id}: {criterion} did not fail: {c:#?}"
        );
        // The same criterion, judged the same way, is what the positive case passed.
        assert_eq!(
            pos.criterion(criterion).map(|c| c.verdict),
            Some(Verdict::Pass)
        );
        assert!(rec.as_expected());
    }
    recs
}
