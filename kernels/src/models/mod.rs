//! Forward and backward passes of small models, `no_std` and allocation-free: callers pass every
//! buffer, scratch included, and each model says how much it needs.
//!
//! - [`gemm`]: the register-blocked matrix-multiply micro-kernel everything else stands on;
//! - [`dense`]: `Y = X·W + b`;
//! - [`activation`]: ReLU, the soft-threshold (doubled ReLU with a learnable bias), tanh, and a
//!   degree-2 polynomial;
//! - [`softmax`]: numerically stable softmax cross-entropy with per-example and per-class losses;
//! - [`mlp`]: the two-layer perceptron composed from the above;
//! - [`conv`]: 1-D/2-D convolution with a shared filter over patches, pooling, and the small CNN;
//! - [`lowrank`]: matrix sensing with `U·Uᵀ` / `U·Vᵀ` factors, and least squares.
//!
//! Shapes are checked before anything is written; a wrong shape returns
//! [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) naming the buffer and its dimensions.

pub mod activation;
pub mod conv;
pub mod dense;
pub mod gemm;
pub mod lowrank;
pub mod mlp;
pub mod softmax;

pub use activation::{Activation, ActivationGrad};
pub use conv::{Conv2d, PatchCnn, Pool};
pub use dense::Dense;
pub use gemm::MatMul;
pub use lowrank::{least_squares_on, Sensing};
pub use mlp::Mlp;
pub use softmax::SoftmaxCrossEntropy;
