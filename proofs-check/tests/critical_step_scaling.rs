//! Ben Arous, Gheissari, Jagannath (NeurIPS 2022, arXiv:2206.04030), design
//! `docs/checks/critical-step-scaling.md`: each check passes with its default configuration
//! and each negative control is rejected by the same verdict, failing the named criterion.

use descent_harness::checks::critical_step::criteria;
use descent_harness::{run_check, run_check_with, Ctx, Record};
use proofs_check::{check, check_with};

#[test]
fn p2a_trajectory_follows_the_ode_with_corrector() {
    check(
        "critical-step/trajectory",
        &[
            ("N1", criteria::PLATEAU_R_PERP2),
            ("N2", criteria::PLATEAU_R_PERP2),
            ("N3", criteria::PLATEAU_R_PERP2),
        ],
    );
}

#[test]
fn p2b_corrector_is_linear_in_c_delta() {
    check(
        "critical-step/corrector-linear",
        &[
            ("N1", criteria::R_PERP2_SLOPE),
            ("N2", criteria::R_PERP2_SLOPE),
            ("N3", criteria::R_PERP2_SLOPE),
        ],
    );
}

#[test]
fn p2c_critical_snr_moves_to_c_delta() {
    check(
        "critical-step/critical-snr",
        &[
            ("N1", criteria::PLATEAU_M2),
            ("N2", criteria::PLATEAU_M2),
            ("N3", criteria::PLATEAU_M2),
        ],
    );
}

#[test]
fn p2d_fluctuations_scale_as_n_to_the_minus_half() {
    check(
        "critical-step/fluctuations",
        &[
            ("N1", criteria::FLUCTUATION_SLOPE),
            ("N2", criteria::FLUCTUATION_SLOPE),
        ],
    );
}

/// Same seed, same numbers, whatever the thread count; a seed shift changes them.
#[test]
fn runs_are_deterministic_and_thread_count_independent() {
    let small = ["n=200", "seeds=3", "t=1", "grid=20"];
    let strip = |mut v: Vec<Record>| {
        for r in &mut v {
            r.seconds = 0.0;
        }
        v
    };
    let one = Ctx {
        threads: 1,
        ..Ctx::quiet()
    };
    let a = strip(run_check_with("critical-step/trajectory", &small, &one).unwrap());
    let b = strip(run_check("critical-step/trajectory", &small).unwrap());
    assert_eq!(a, b);
    let shifted = Ctx {
        seed_shift: 5,
        ..Ctx::quiet()
    };
    let c = strip(run_check_with("critical-step/trajectory", &small, &shifted).unwrap());
    assert_ne!(a[0].criteria[0].measured, c[0].criteria[0].measured);
}

/// Predictions follow the configuration: with λ = 2 and c_δ = 0.5 the plateau is (1.5, 0.5).
#[test]
fn predictions_are_recomputed_from_the_configuration() {
    let recs = run_check(
        "critical-step/trajectory",
        &[
            "lambda=2",
            "c_delta=0.5",
            "n=1000",
            "seeds=2",
            "t=2",
            "grid=20",
        ],
    )
    .unwrap();
    let p = &recs[0];
    assert!((p.criterion(criteria::PLATEAU_M2).unwrap().predicted - 1.5).abs() < 1e-3);
    assert!((p.criterion(criteria::PLATEAU_R_PERP2).unwrap().predicted - 0.5).abs() < 1e-3);
}

#[test]
fn bad_overrides_are_rejected_naming_the_key() {
    let e = run_check("critical-step/trajectory", &["n=3"])
        .unwrap_err()
        .0;
    assert!(
        e.contains("critical-step/trajectory.n") && e.contains("[16, 200000]"),
        "{e}"
    );
    let e = run_check("critical-step/trajectory", &["nn=3"])
        .unwrap_err()
        .0;
    assert!(e.contains("unknown key"), "{e}");
    let e = run_check("critical-step/critical-snr", &["c_deltas=[0.1, 0.2]"])
        .unwrap_err()
        .0;
    assert!(e.contains("both sides"), "{e}");
}

/// Spherically constrained SGD (loss −⟨Y, xxᵀ⟩, renormalised each step): plateau
/// m² = 1 − c_δ/(2λ), critical SNR c_δ/2.
#[test]
fn p2a_p2c_spherical_variant() {
    check_with(
        "critical-step/trajectory",
        &["spherical=true", "seeds=4"],
        &[
            ("N1", criteria::PLATEAU_R_PERP2),
            ("N2", criteria::PLATEAU_R_PERP2),
            ("N3", criteria::PLATEAU_R_PERP2),
        ],
    );
    check_with(
        "critical-step/critical-snr",
        &["spherical=true", "lambda=0.8", "c_deltas=[2.0, 1.0]"],
        &[
            ("N1", criteria::PLATEAU_M2),
            ("N2", criteria::PLATEAU_M2),
            ("N3", criteria::PLATEAU_M2),
        ],
    );
}

/// Spiked tensor PCA of order 3: the ODE u̇₁ = 6u₁(λu₁ − R⁴), u̇₂ = −12R⁴(u₂ − c_δ); at λ = 4,
/// c_δ = 1 the plateau is m★ = 1 (gradient flow: λ^{1/3}); λ_c(3) = (16√3/9)c_δ^{3/2}.
#[test]
fn p2a_p2c_tensor_order_three() {
    check_with(
        "critical-step/trajectory",
        &["order=3", "lambda=4", "seeds=4"],
        &[
            ("N1", criteria::PLATEAU_R_PERP2),
            ("N2", criteria::PLATEAU_R_PERP2),
            ("N3", criteria::PLATEAU_R_PERP2),
        ],
    );
    check_with(
        "critical-step/critical-snr",
        &["order=3", "lambda=2", "c_deltas=[1.0, 0.5]"],
        &[
            ("N1", criteria::PLATEAU_M2),
            ("N2", criteria::PLATEAU_M2),
            ("N3", criteria::PLATEAU_M2),
        ],
    );
}

/// Regions where the claim cannot be checked as configured are rejected with the reason.
#[test]
fn general_settings_outside_the_checkable_region_are_rejected() {
    let cases: [(&str, &[&str], &str); 5] = [
        ("critical-step/trajectory", &["order=4"], "out of range"),
        (
            "critical-step/trajectory",
            &["order=3", "lambda=4", "n=500"],
            "δ·ρ",
        ),
        (
            "critical-step/trajectory",
            &["order=3", "lambda=4", "m0=0.2"],
            "barrier",
        ),
        (
            "critical-step/trajectory",
            &["order=3", "lambda=4", "m0=-0.5"],
            "odd",
        ),
        (
            "critical-step/critical-snr",
            &["spherical=true"],
            "both sides",
        ),
    ];
    for (name, set, msg) in cases {
        let e = run_check(name, set)
            .err()
            .unwrap_or_else(|| panic!("{name} {set:?} accepted"));
        assert!(e.to_string().contains(msg), "{name} {set:?}: {e}");
    }
}
