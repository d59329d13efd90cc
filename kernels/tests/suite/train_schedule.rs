//! Learning-rate schedules against their formulas, written here independently (in the form torch's
//! or optax's source writes them, with std's `f64` functions rather than `libm`), at every step of
//! a few thousand; hand values from the torch and optax documentation; composition; edge cases.

use std::f64::consts::PI;

use descent_kernels::train::{
    warmup_cosine, Anneal, Constant, Cosine, InverseSqrt, Join, Linear, OneCycle, OneCycleConfig,
    Schedule, StepDecay, Warmup,
};
use descent_kernels::Error;

/// Steps checked per schedule.
const STEPS: u64 = 5000;

/// `|got − want| ≤ 1e-12·scale`: the two sides evaluate the same formula in a different order and
/// with a different libm, a few ulps apart; a one-step shift or a wrong constant is off by far
/// more than this on every schedule below.
fn close(got: f64, want: f64, scale: f64, what: &str, t: u64) {
    assert!(
        (got - want).abs() <= 1e-12 * scale,
        "{what} at t = {t}: got {got:e}, formula gives {want:e}"
    );
}

fn every_step(s: &impl Schedule, scale: f64, what: &str, formula: impl Fn(u64) -> f64) {
    for t in 0..STEPS {
        let got = s.at(t);
        assert!(got.is_finite() && got >= 0.0, "{what} at t = {t}: {got}");
        close(got, formula(t), scale, what, t);
    }
}

fn invalid(r: Result<impl std::fmt::Debug, Error>, name: &str) {
    match r {
        Err(Error::InvalidHyperParameter { name: n, .. }) => assert_eq!(n, name),
        other => panic!("expected InvalidHyperParameter {{ name: {name} }}, got {other:?}"),
    }
}

#[test]
fn constant() {
    let s = Constant::new(3e-4).unwrap();
    every_step(&s, 3e-4, "constant", |_| 3e-4);
    // optax docs, constant_schedule(5): 5 at counts 0 and 100.
    let five = Constant::new(5.0).unwrap();
    assert_eq!((five.at(0), five.at(100)), (5.0, 5.0));
}

#[test]
fn linear_matches_torch_linear_lr() {
    // torch LinearLR closed form: base·(start + (end − start)·min(t, n)/n).
    let (base, start, end, n) = (0.1, 0.2, 1.0, 1234u64);
    let s = Linear::new(base * start, base * end, n).unwrap();
    every_step(&s, base, "linear", |t| {
        base * (start + (end - start) * (t.min(n) as f64) / n as f64)
    });
    // Decreasing, as optax's linear_schedule docs: init 1.0, end 0.01, 100 steps.
    let d = Linear::new(1.0, 0.01, 100).unwrap();
    every_step(&d, 1.0, "linear down", |t| {
        1.0 + (0.01 - 1.0) * t.min(100) as f64 / 100.0
    });
    assert_eq!(d.at(0), 1.0); // optax docs: schedule_fn(0) = 1.
    assert_eq!(d.at(100), 0.01); // optax docs: schedule_fn(100) = 0.01.
    assert_eq!(d.at(u64::MAX), 0.01);
}

#[test]
fn linear_torch_doc_example() {
    // torch 2.1 docs, LinearLR(start_factor = 0.5, total_iters = 4) with lr = 0.05:
    // 0.025, 0.03125, 0.0375, 0.04375, then 0.05.
    let s = Linear::new(0.025, 0.05, 4).unwrap();
    for (t, want) in [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05, 0.05]
        .into_iter()
        .enumerate()
    {
        close(s.at(t as u64), want, 0.05, "LinearLR doc example", t as u64);
    }
}

#[test]
fn cosine_matches_optax_and_torch() {
    let (peak, floor, n) = (0.5, 0.02, 3000u64);
    let s = Cosine::new(peak, floor, n).unwrap();
    // optax cosine_decay_schedule: init·((1 − α)·½(1 + cos(π·min(t, n)/n)) + α), α = floor/peak.
    let alpha = floor / peak;
    every_step(&s, peak, "cosine (optax form)", |t| {
        let c = 0.5 * (1.0 + (PI * t.min(n) as f64 / n as f64).cos());
        peak * ((1.0 - alpha) * c + alpha)
    });
    // torch CosineAnnealingLR closed form, which agrees for t ≤ T_max.
    for t in 0..=n {
        let torch = floor + (peak - floor) * (1.0 + (PI * t as f64 / n as f64).cos()) / 2.0;
        close(s.at(t), torch, peak, "cosine (torch form)", t);
    }
    assert_eq!(s.at(0), peak);
    close(
        s.at(n / 2),
        (peak + floor) / 2.0,
        peak,
        "cosine midpoint",
        n / 2,
    );
    assert_eq!(s.at(n), floor);
    assert_eq!(s.at(n + 1), floor); // held, unlike torch's closed form
    assert_eq!(s.at(u64::MAX), floor);
}

#[test]
fn step_decay_matches_torch_step_lr() {
    let s = StepDecay::new(0.3, 7, 0.95).unwrap();
    // torch StepLR closed form: base·γ^(t // step_size).
    every_step(&s, 0.3, "step decay", |t| {
        0.3 * 0.95f64.powi((t / 7) as i32)
    });
    // torch docs, StepLR(step_size = 30, gamma = 0.1) with lr = 0.05: 0.05 for epoch < 30,
    // 0.005 for 30 ≤ epoch < 60, 0.0005 for 60 ≤ epoch < 90.
    let doc = StepDecay::new(0.05, 30, 0.1).unwrap();
    for (t, want) in [
        (0, 0.05),
        (29, 0.05),
        (30, 0.005),
        (59, 0.005),
        (60, 0.0005),
        (89, 0.0005),
    ] {
        close(doc.at(t), want, 0.05, "StepLR doc example", t);
    }
    // Growth past the f64 range stays finite.
    let grow = StepDecay::new(1.0, 1, 10.0).unwrap();
    assert_eq!(grow.at(400), f64::MAX);
    assert_eq!(StepDecay::new(0.0, 1, 10.0).unwrap().at(400), 0.0);
}

#[test]
fn inverse_sqrt_matches_hugging_face_and_fairseq() {
    let (peak, w, tau) = (1e-3, 400u64, 1000u64);
    // Hugging Face get_inverse_sqrt_schedule(num_warmup_steps = w, timescale = τ): factor t/w
    // during warm-up, then 1/√((t + τ − w)/τ).
    let hf = Warmup::new(0.0, w, InverseSqrt::new(peak, tau).unwrap()).unwrap();
    every_step(&hf, peak, "inverse sqrt (HF)", |t| {
        if t < w {
            peak * t as f64 / w as f64
        } else {
            let shift = tau as f64 - w as f64;
            peak / ((t as f64 + shift) / tau as f64).sqrt()
        }
    });
    // fairseq inverse_sqrt (warm-up from 0): lr = peak·√w / √t after warm-up.
    let fs = Warmup::new(0.0, w, InverseSqrt::new(peak, w).unwrap()).unwrap();
    every_step(&fs, peak, "inverse sqrt (fairseq)", |t| {
        if t < w {
            peak * t as f64 / w as f64
        } else {
            peak * (w as f64).sqrt() / (t as f64).sqrt()
        }
    });
    assert_eq!(fs.at(w), peak);
    close(fs.at(4 * w), peak / 2.0, peak, "√(w/4w) = 1/2", 4 * w);
}

/// torch OneCycleLR's learning rate, written out phase by phase.
fn torch_one_cycle(c: &OneCycleConfig, t: u64) -> f64 {
    let total = c.total_steps as f64;
    let initial = c.max_lr / c.div_factor;
    let min = initial / c.final_div_factor;
    let anneal = |start: f64, end: f64, pct: f64| match c.anneal {
        Anneal::Cos => end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0),
        Anneal::Linear => (end - start) * pct + start,
    };
    let t = t as f64;
    let e1 = c.pct_start * total - 1.0;
    if t <= e1 {
        return anneal(initial, c.max_lr, t / e1);
    }
    if c.three_phase {
        let e2 = 2.0 * c.pct_start * total - 2.0;
        if t <= e2 {
            return anneal(c.max_lr, initial, (t - e1) / (e2 - e1));
        }
        anneal(initial, min, (t - e2) / (total - 1.0 - e2))
    } else {
        anneal(c.max_lr, min, (t - e1) / (total - 1.0 - e1))
    }
}

#[test]
fn one_cycle_matches_torch() {
    for (total, pct, anneal, three) in [
        (STEPS, 0.3, Anneal::Cos, false),
        (1000, 0.3, Anneal::Cos, false),
        (997, 0.25, Anneal::Linear, false),
        (2500, 0.3, Anneal::Cos, true),
        (1001, 0.4, Anneal::Linear, true),
    ] {
        let cfg = OneCycleConfig {
            pct_start: pct,
            anneal,
            three_phase: three,
            ..OneCycleConfig::new(0.01, total)
        };
        let s = OneCycle::new(cfg).unwrap();
        let what = format!("one-cycle T = {total} pct = {pct} {anneal:?} three_phase = {three}");
        for t in 0..total {
            let got = s.at(t);
            close(got, torch_one_cycle(&cfg, t), 0.01, &what, t);
        }
        // Hand values: initial = max/25, min = initial/1e4, reached at step T − 1 and held.
        // (at(0) = max + (initial − max)/2·2 in torch's formula: initial up to rounding.)
        close(s.at(0), 0.01 / 25.0, 0.01, &what, 0);
        assert_eq!(s.initial_lr(), 0.0004);
        assert_eq!(s.min_lr(), 0.0004 / 1e4);
        assert_eq!(s.at(total - 1), s.min_lr());
        assert_eq!(s.at(total), s.min_lr());
        assert_eq!(s.at(u64::MAX), s.min_lr());
    }
    // T = 1000, pct 0.3: the peak is at step 0.3·1000 − 1 = 299 exactly.
    let s = OneCycle::new(OneCycleConfig::new(0.01, 1000)).unwrap();
    assert_eq!(s.at(299), 0.01);
    assert!(s.at(298) < 0.01 && s.at(300) < 0.01);
}

#[test]
fn warmup_cosine_matches_optax() {
    // optax warmup_cosine_decay_schedule(init, peak, warmup_steps, decay_steps, end):
    // linear_schedule(init, peak, w) joined at w with cosine_decay_schedule(peak, T − w, end/peak).
    let (init, peak, w, total, end) = (1e-5, 3e-3, 250u64, 4000u64, 1e-4);
    let s = warmup_cosine(init, peak, w, total, end).unwrap();
    let alpha = end / peak;
    every_step(&s, peak, "warmup cosine (optax)", |t| {
        if t < w {
            let frac = 1.0 - t as f64 / w as f64;
            (init - peak) * frac + peak
        } else {
            let n = (total - w) as f64;
            let c = 0.5 * (1.0 + (PI * ((t - w) as f64).min(n) / n).cos());
            peak * ((1.0 - alpha) * c + alpha)
        }
    });
    assert_eq!(s.at(0), init);
    assert_eq!(s.at(w), peak);
    assert_eq!(s.at(total), end);
    assert_eq!(s.at(total + 10_000), end);
    invalid(warmup_cosine(init, peak, 10, 10, end), "decay_steps");
}

#[test]
fn warmup_over_any_schedule_and_join() {
    // Warm-up then step decay; warm-up then one-cycle; a three-piece join.
    let inner = StepDecay::new(0.2, 100, 0.5).unwrap();
    let s = Warmup::new(0.02, 50, inner).unwrap();
    every_step(&s, 0.2, "warmup + step decay", |t| {
        if t < 50 {
            0.02 + (0.2 - 0.02) * t as f64 / 50.0
        } else {
            0.2 * 0.5f64.powi(((t - 50) / 100) as i32)
        }
    });
    let oc = OneCycle::new(OneCycleConfig::new(0.1, 2000)).unwrap();
    let s = Warmup::new(0.0, 30, oc).unwrap();
    every_step(&s, 0.1, "warmup + one-cycle", |t| {
        if t < 30 {
            oc.at(0) * t as f64 / 30.0
        } else {
            oc.at(t - 30)
        }
    });
    let three = Join::new(
        Constant::new(0.1).unwrap(),
        2,
        Join::new(
            Linear::new(1.0, 0.5, 10).unwrap(),
            20,
            Cosine::new(0.5, 0.0, 100).unwrap(),
        ),
    );
    every_step(&three, 1.0, "join", |t| match t {
        0..2 => 0.1,
        2..22 => 1.0 - 0.5 * ((t - 2).min(10)) as f64 / 10.0,
        _ => 0.25 * (1.0 + (PI * ((t - 22).min(100)) as f64 / 100.0).cos()),
    });
    // A schedule by reference composes too.
    let c = Cosine::new(1.0, 0.0, 10).unwrap();
    let by_ref = Warmup::new(0.0, 5, &c).unwrap();
    assert_eq!(by_ref.at(15), c.at(10));
}

#[test]
fn zero_warmup_is_the_inner_schedule() {
    let inner = Cosine::new(0.3, 0.01, 777).unwrap();
    let s = Warmup::new(0.0, 0, inner).unwrap();
    for t in 0..STEPS {
        assert_eq!(s.at(t).to_bits(), inner.at(t).to_bits(), "t = {t}");
    }
    let s = warmup_cosine(0.0, 0.3, 0, 777, 0.01).unwrap();
    for t in 0..STEPS {
        assert_eq!(s.at(t).to_bits(), inner.at(t).to_bits(), "t = {t}");
    }
    let j = Join::new(Constant::new(9.0).unwrap(), 0, inner);
    assert_eq!(j.at(0), inner.at(0));
}

#[test]
fn bad_parameters_are_typed_errors() {
    invalid(Constant::new(f64::NAN), "value");
    invalid(Constant::new(-1.0), "value");
    invalid(Constant::new(f64::INFINITY), "value");
    invalid(Linear::new(0.1, 0.2, 0), "steps");
    invalid(Linear::new(-0.1, 0.2, 5), "init");
    invalid(Linear::new(0.1, f64::NAN, 5), "end");
    invalid(Cosine::new(0.1, 0.0, 0), "steps");
    invalid(Cosine::new(0.1, -0.01, 10), "floor");
    invalid(Cosine::new(f64::INFINITY, 0.0, 10), "peak");
    invalid(StepDecay::new(0.1, 0, 0.5), "step_size");
    invalid(StepDecay::new(0.1, 3, -0.5), "gamma");
    invalid(InverseSqrt::new(0.1, 0), "timescale");
    invalid(
        Warmup::new(f64::NAN, 3, Constant::new(1.0).unwrap()),
        "init",
    );
    let base = OneCycleConfig::new(0.1, 100);
    invalid(
        OneCycle::new(OneCycleConfig {
            max_lr: -1.0,
            ..base
        }),
        "max_lr",
    );
    invalid(
        OneCycle::new(OneCycleConfig {
            pct_start: 0.0,
            ..base
        }),
        "pct_start",
    );
    invalid(
        OneCycle::new(OneCycleConfig {
            pct_start: 1.0,
            ..base
        }),
        "pct_start",
    );
    invalid(
        OneCycle::new(OneCycleConfig {
            div_factor: 0.0,
            ..base
        }),
        "div_factor",
    );
    invalid(
        OneCycle::new(OneCycleConfig {
            final_div_factor: f64::NAN,
            ..base
        }),
        "final_div_factor",
    );
    // pct·T − 1 = 0: a rising phase of zero length (torch would divide by zero).
    invalid(OneCycle::new(OneCycleConfig::new(0.1, 1)), "total_steps");
    invalid(
        OneCycle::new(OneCycleConfig {
            pct_start: 0.1,
            ..OneCycleConfig::new(0.1, 10)
        }),
        "total_steps",
    );
    // Three phases need the falling phase to end before the last step.
    invalid(
        OneCycle::new(OneCycleConfig {
            pct_start: 0.6,
            three_phase: true,
            ..base
        }),
        "total_steps",
    );
    assert!(OneCycle::new(OneCycleConfig {
        pct_start: 0.6,
        ..base
    })
    .is_ok());
}
