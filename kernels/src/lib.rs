//! # descent-kernels
//!
//! `no_std`, allocation-free kernels for gradient methods: update rules (gradient descent, SGD with
//! momentum and Nesterov, Adam/AdamW/AMSGrad, sign descent, Signum, Lion, iterate and model
//! averaging) and level-1 vector operations, for `f32` and `f64`.
//!
//! Every kernel is written once over a small internal vector abstraction and runs on one of several
//! [`Backend`]s: the scalar reference, x86-64 SSE2, AVX2+FMA and AVX-512, aarch64 NEON, wasm32
//! `simd128`. With the `std`
//! feature (on by default) the fastest backend is detected at run time, once; without it (the
//! embedded build) the choice is made at compile time from `cfg(target_feature)`.
//!
//! ```
//! use descent_kernels::{Adam, Rule};
//!
//! let adam = Adam::new(1e-3_f32);
//! let (mut params, grads) = (vec![1.0_f32; 1000], vec![0.5_f32; 1000]);
//! let mut state = vec![0.0_f32; adam.state_len(1000)]; // m, then v
//! for step in 1..=10 {
//!     adam.step(step, &mut params, &grads, &mut state)?;
//! }
//! // Adam's first steps move each parameter by about lr against the gradient's sign.
//! assert!((params[0] - (1.0 - 10.0 * 1e-3)).abs() < 1e-4);
//! # Ok::<(), descent_kernels::Error>(())
//! ```
//!
//! ## Guarantees
//! - **Validation first.** Mismatched lengths, invalid hyper-parameters, step 0 or an unavailable
//!   backend return an [`Error`] before any element is written.
//! - **Bit-identical update rules across backends.** Update rules and elementwise vector operations
//!   perform, in every SIMD lane, exactly the IEEE operations of the scalar reference in the same
//!   order (no FMA contraction, no reciprocal estimates), so every backend gives the same bits.
//! - **Reductions** (`dot`, `sum`, `sum_squares`, `norm2`) use several accumulators and, where the
//!   backend has it, FMA: they are bit-reproducible on one backend and within a stated error bound
//!   of the exact result on all (see [`vector`]).
//! - **Determinism.** The same inputs give the same bits on the same backend, every run.

#![no_std]
#![cfg_attr(descent_sqrt_core, feature(core_float_math))]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// `small-code` leaves the per-call loop specialisations unused.
#![cfg_attr(feature = "small-code", allow(dead_code))]

#[cfg(feature = "std")]
extern crate std;

// The instruction sets: the vector trait, the backend table, the loop drivers (internal).
#[doc(hidden)]
pub mod arch;
/// Ceiling kernels for the benchmarks: not part of the supported API.
#[doc(hidden)]
pub mod ceilings;
mod element;
mod error;
mod exec;
pub mod models;
pub mod random;
pub mod reduced;
pub mod rules;
pub mod storage;
pub mod train;
pub mod vector;

pub use arch::Backend;
#[doc(hidden)]
pub use arch::Kernel;
pub use element::Element;
#[doc(hidden)]
pub use element::{sqrt_f32_backend, SQRT_F32_IMPL};
pub use error::Error;
pub use exec::Exec;
pub use rules::adafactor::Adafactor;
pub use rules::adam::Adam;
pub use rules::adam8::Adam8;
pub use rules::averaging::{
    ema, ema_with, replica_mean, replica_mean_with, running_mean, running_mean_with,
};
pub use rules::gd::{Gd, Sgd};
pub use rules::lamb::Lamb;
pub use rules::muon::{AdjustLr, Muon, MuonWithFallback, ParamShape};
pub use rules::schedule_free::{
    EvalView, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd, ScheduleFreeState, TrainView,
};
pub use rules::sign::{Lion, SignDescent, Signum};
pub use rules::{Rule, WeightDecay};
pub use storage::{Format, KahanBf16, Rounding, StochasticKey, Storage};

/// The README's example runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
