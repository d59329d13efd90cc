//! The checks, one module per paper, and the registry.
//!
//! To add a paper: write `checks/<paper>.rs` with, per check, a config struct declared with
//! [`crate::check_config!`] (one line per key: doc comment, name, type, default, range) plus an
//! `impl` of [`crate::config::CheckConfig`] (its cross-field `validate`, if any), and a type
//! implementing [`crate::check::Check`]; then add one `register::<...>()` line per check below.
//! Each module declares the keys of its criteria as `pub const` items of a `pub mod criteria`
//! ([`crate::record::CriterionKey`], one per distinct criterion); the verdict builds every
//! criterion from a key (with [`crate::record::Criterion::qualified`] for the per-seed,
//! per-coordinate, per-T ... variants) and tests look criteria up by key.

use crate::check::{register, DynCheck};

pub mod asymmetric_valleys;
pub mod bf16_rounding;
pub mod class_imbalance;
pub mod critical_step;
pub mod local_sgd;
pub mod local_signal;
pub mod never_full_batch;
pub mod optimizer_state;
pub mod quantum_comm;
pub mod sgd_precision;
pub mod small_init;

/// Every check, in the order `descent list` and `descent check all` use.
pub fn registry() -> Vec<Box<dyn DynCheck>> {
    vec![
        register::<class_imbalance::OneHot>(),
        register::<class_imbalance::Mixture>(),
        register::<critical_step::Trajectory>(),
        register::<critical_step::CorrectorLinear>(),
        register::<critical_step::CriticalSnr>(),
        register::<critical_step::Fluctuations>(),
        register::<small_init::PowerMethod>(),
        register::<small_init::EscapeTime>(),
        register::<small_init::ImplicitBias>(),
        register::<bf16_rounding::StallVsStochastic>(),
        register::<sgd_precision::SqLabelBlind>(),
        register::<sgd_precision::PacExtraction>(),
        register::<never_full_batch::GdRate>(),
        register::<never_full_batch::SgdRate>(),
        register::<never_full_batch::SampleSize>(),
        register::<asymmetric_valleys::AveragingBias>(),
        register::<asymmetric_valleys::ShiftGeneralization>(),
        register::<asymmetric_valleys::Logistic>(),
        register::<local_sgd::Speedup>(),
        register::<local_sgd::OneShotSmoothness>(),
        register::<local_sgd::QuadraticExact>(),
        register::<quantum_comm::GradientIdentities>(),
        register::<quantum_comm::Shots>(),
        register::<quantum_comm::Separation>(),
        register::<local_signal::CnnVsNtk>(),
        register::<optimizer_state::Formats>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::registry;

    /// Every field of every config has exactly one range, in declaration order, and the defaults
    /// resolve (they are in range and pass `validate`).
    #[test]
    fn every_field_has_one_range_and_the_defaults_resolve() {
        for c in registry() {
            let name = c.id().name;
            let fields: Vec<String> = c.default_table().keys().cloned().collect();
            let keys: Vec<String> = c.ranges().iter().map(|r| r.key.to_string()).collect();
            assert_eq!(fields, keys, "{name}");
            c.resolve(&[])
                .unwrap_or_else(|e| panic!("{name}: defaults rejected: {e}"));
        }
    }
}
