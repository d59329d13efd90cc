//! Rejected calls return a typed error naming the problem and write nothing: every buffer is
//! compared bit for bit before and after each rejected call.

use crate::common;

use common::mixed;
use descent_kernels::random::seeded;
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, vector, Adam, Backend, Error, Exec, Gd, Lion,
    Rule, Sgd, SignDescent, Signum, WeightDecay,
};

const N: usize = 19;

/// Five buffers of N mixed values (one of them shorter, for length errors) and their snapshot.
struct Bufs {
    p: Vec<f32>,
    g: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    short: Vec<f32>,
    /// Room for two and three state buffers (Adam, AMSGrad), and one element short of two.
    s2: Vec<f32>,
    s3: Vec<f32>,
    s2_short: Vec<f32>,
    none: Vec<f32>,
}

impl Bufs {
    fn new() -> Bufs {
        let mut rng = seeded(7);
        Bufs {
            p: mixed(&mut rng, N, 3.0, 0.1),
            g: mixed(&mut rng, N, 3.0, 0.1),
            a: mixed(&mut rng, N, 3.0, 0.1),
            b: mixed(&mut rng, N, 3.0, 0.1),
            c: mixed(&mut rng, N, 3.0, 0.1),
            short: mixed(&mut rng, N - 1, 3.0, 0.1),
            s2: mixed(&mut rng, 2 * N, 3.0, 0.1),
            s3: mixed(&mut rng, 3 * N, 3.0, 0.1),
            s2_short: mixed(&mut rng, 2 * N - 1, 3.0, 0.1),
            none: Vec::new(),
        }
    }
    fn bits(&self) -> Vec<Vec<u32>> {
        [
            &self.p,
            &self.g,
            &self.a,
            &self.b,
            &self.c,
            &self.short,
            &self.s2,
            &self.s3,
            &self.s2_short,
        ]
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
    }
}

/// Runs `call` on fresh buffers, expects `want`, and checks that no buffer changed.
#[track_caller]
fn rejected(what: &str, want: Error, call: impl FnOnce(&mut Bufs) -> Result<(), Error>) {
    let mut bufs = Bufs::new();
    let before = bufs.bits();
    let got = call(&mut bufs);
    assert_eq!(got, Err(want), "{what}");
    assert_eq!(bufs.bits(), before, "{what}: a buffer was written");
    // The message names the culprit.
    let msg = want.to_string();
    match want {
        Error::LengthMismatch { buffer, .. } => assert!(msg.contains(buffer), "{msg}"),
        Error::InvalidHyperParameter { name, .. } => assert!(msg.contains(name), "{msg}"),
        _ => assert!(!msg.is_empty()),
    }
}

fn len(buffer: &'static str, expected: usize, found: usize) -> Error {
    Error::LengthMismatch {
        buffer,
        expected,
        found,
    }
}

fn hyper(name: &'static str, requirement: &'static str) -> Error {
    Error::InvalidHyperParameter { name, requirement }
}

const NON_NEG: &str = "must be finite and >= 0";
const POS: &str = "must be finite and > 0";
const UNIT: &str = "must lie in [0, 1)";
const UNIT_CLOSED: &str = "must lie in [0, 1]";

#[test]
fn gd_rejects_bad_input() {
    let ok = Gd::new(0.1f32);
    rejected("grads length", len("grads", N, N - 1), |b| {
        ok.step(1, &mut b.p, &b.short, &mut b.none)
    });
    for lr in [-0.1, f32::NAN, f32::INFINITY] {
        rejected("lr", hyper("lr", NON_NEG), |b| {
            Gd::new(lr).step(1, &mut b.p, &b.g, &mut b.none)
        });
    }
    for wd in [WeightDecay::L2(-1.0), WeightDecay::Decoupled(f32::NAN)] {
        let r = Gd {
            weight_decay: wd,
            ..ok
        };
        rejected("weight decay", hyper("weight_decay", NON_NEG), |b| {
            r.step(1, &mut b.p, &b.g, &mut b.none)
        });
    }
}

#[test]
fn sgd_rejects_bad_input() {
    let ok = Sgd::new(0.1f32, 0.9);
    rejected("grads", len("grads", N, N - 1), |b| {
        ok.step(2, &mut b.p, &b.short, &mut b.a)
    });
    rejected("buffer", len("state", N, N - 1), |b| {
        ok.step(2, &mut b.p, &b.g, &mut b.short)
    });
    rejected("step 0", Error::InvalidStep { step: 0 }, |b| {
        ok.step(0, &mut b.p, &b.g, &mut b.a)
    });
    for mu in [1.0, -0.1, f32::NAN] {
        let r = Sgd { momentum: mu, ..ok };
        rejected("momentum", hyper("momentum", UNIT), |b| {
            r.step(2, &mut b.p, &b.g, &mut b.a)
        });
    }
    let r = Sgd {
        dampening: 1.5,
        ..ok
    };
    rejected("dampening", hyper("dampening", UNIT_CLOSED), |b| {
        r.step(2, &mut b.p, &b.g, &mut b.a)
    });
    let need = "requires momentum > 0 and dampening = 0";
    for r in [
        Sgd {
            nesterov: true,
            dampening: 0.5,
            ..ok
        },
        Sgd {
            nesterov: true,
            momentum: 0.0,
            ..ok
        },
    ] {
        rejected("nesterov", hyper("nesterov", need), |b| {
            r.step(2, &mut b.p, &b.g, &mut b.a)
        });
    }
}

#[test]
fn adam_rejects_bad_input() {
    let ok = Adam::new(1e-3f32);
    rejected("grads", len("grads", N, N - 1), |b| {
        ok.step(1, &mut b.p, &b.short, &mut b.s2)
    });
    rejected("state", len("state", 2 * N, 2 * N - 1), |b| {
        ok.step(1, &mut b.p, &b.g, &mut b.s2_short)
    });
    rejected("state of three", len("state", 2 * N, 3 * N), |b| {
        ok.step(1, &mut b.p, &b.g, &mut b.s3)
    });
    rejected("amsgrad state", len("state", 3 * N, 2 * N), |b| {
        ok.amsgrad().step(1, &mut b.p, &b.g, &mut b.s2)
    });
    rejected("step 0", Error::InvalidStep { step: 0 }, |b| {
        ok.step(0, &mut b.p, &b.g, &mut b.s2)
    });
    for (r, name, req) in [
        (Adam { beta1: 1.0, ..ok }, "beta1", UNIT),
        (Adam { beta2: -0.5, ..ok }, "beta2", UNIT),
        (
            Adam {
                beta2: f32::NAN,
                ..ok
            },
            "beta2",
            UNIT,
        ),
        (Adam { eps: 0.0, ..ok }, "eps", POS),
        (Adam { eps: -1e-8, ..ok }, "eps", POS),
        (
            Adam {
                lr: f32::NEG_INFINITY,
                ..ok
            },
            "lr",
            NON_NEG,
        ),
        (Adam::adamw(1e-3, -0.01), "weight_decay", NON_NEG),
    ] {
        rejected(name, hyper(name, req), |b| {
            r.step(3, &mut b.p, &b.g, &mut b.s2)
        });
    }
}

#[test]
fn sign_rules_reject_bad_input() {
    rejected("sign lr", hyper("lr", NON_NEG), |b| {
        SignDescent::new(f32::NAN).step(1, &mut b.p, &b.g, &mut b.none)
    });
    rejected("sign grads", len("grads", N, N - 1), |b| {
        SignDescent::new(0.1f32).step(1, &mut b.p, &b.short, &mut b.none)
    });
    rejected("signum beta", hyper("beta", UNIT), |b| {
        Signum::new(0.1f32, 1.0).step(1, &mut b.p, &b.g, &mut b.a)
    });
    rejected("signum m", len("state", N, N - 1), |b| {
        Signum::new(0.1f32, 0.9).step(1, &mut b.p, &b.g, &mut b.short)
    });
    let lion = Lion::new(1e-4f32);
    rejected("lion beta2", hyper("beta2", UNIT), |b| {
        Lion { beta2: 1.0, ..lion }.step(1, &mut b.p, &b.g, &mut b.a)
    });
    rejected("lion m", len("state", N, N - 1), |b| {
        lion.step(1, &mut b.p, &b.g, &mut b.short)
    });
}

#[test]
fn averaging_rejects_bad_input() {
    let be = &Exec::active();
    rejected("running mean", len("params", N, N - 1), |b| {
        running_mean_with(be, &mut b.p, &b.short, 3)
    });
    rejected("running mean count 0", len("params", N, N - 1), |b| {
        running_mean_with(be, &mut b.p, &b.short, 0)
    });
    for d in [1.5, -0.1, f32::NAN] {
        rejected("ema decay", hyper("decay", UNIT_CLOSED), |b| {
            ema_with(be, &mut b.p, &b.g, d)
        });
    }
    rejected("ema length", len("params", N, N - 1), |b| {
        ema_with(be, &mut b.p, &b.short, 0.9)
    });
    rejected("no replicas", Error::NoBuffers, |_| {
        replica_mean_with::<f32, f32>(be, &mut [])
    });
    rejected("replica length", len("replica", N, N - 1), |b| {
        replica_mean_with(be, &mut [&mut b.p, &mut b.a, &mut b.short])
    });
}

#[test]
fn vector_ops_reject_bad_input() {
    let be = &Exec::active();
    rejected("axpy", len("x", N - 1, N), |b| {
        vector::axpy_with(be, 2.0, &b.p, &mut b.short)
    });
    rejected("add a", len("a", N, N - 1), |b| {
        vector::add_with(be, &mut b.p, &b.short, &b.g)
    });
    rejected("div b", len("b", N, N - 1), |b| {
        vector::div_with(be, &mut b.p, &b.g, &b.short)
    });
    rejected("dot", len("y", N, N - 1), |b| {
        vector::dot_with(be, &b.p, &b.short).map(|_| ())
    });
}

#[test]
fn unavailable_backend_is_rejected_before_writing() {
    let missing = Backend::ALL.into_iter().find(|b| !b.is_available());
    let Some(missing) = missing else {
        panic!("every backend is available here, which no real CPU allows (SSE2 and NEON exclude each other)")
    };
    let e = Error::BackendUnavailable { backend: missing };
    // The one place availability is checked: making the execution context.
    assert_eq!(Exec::on(missing), Err(e));
    for b in Backend::available() {
        assert_eq!(Exec::on(b).map(|x| x.backend()), Ok(b));
    }
    assert!(e.to_string().contains(missing.name()));
}
