//! Training toolkit pieces that do not depend on a particular update rule, all `no_std` and
//! allocation-free:
//!
//! - [`schedule`]: learning-rate schedules (constant, linear, cosine, step decay, inverse square
//!   root, one-cycle) and their composition (warm-up, sequence), matching torch's
//!   `lr_scheduler` and optax's schedules step for step;
//! - [`clip`]: gradient clipping over several tensors, by global norm and by value, with a chosen
//!   policy for NaN/Inf gradients;
//! - [`crc`]: CRC-32 (IEEE, the zlib/PNG one);
//! - [`optimizer`]: any update rule driven over parameter groups with a schedule, clipping, a
//!   non-finite policy, its own step counter, and bit-exact checkpoints to bytes;
//! - [`bytes`]: the little-endian, checksummed, versioned byte codec checkpoints are written with,
//!   and its error type [`CheckpointError`].

pub mod bytes;
pub mod clip;
pub mod crc;
mod error;
pub mod optimizer;
pub mod schedule;

pub use bytes::{read_header, verify, write_header, Frame, Reader, Writer};
pub use clip::{
    clip_grad_norm, clip_grad_norm_with, clip_grad_value, clip_grad_value_with, global_norm,
    global_norm_with, NonFinite, NormClip, ValueClip,
};
pub use crc::{crc32, Crc32};
pub use error::CheckpointError;
pub use optimizer::{
    state_len, Adam8State, Group, GroupSettings, MuonState, Optimizer, StateCodec, StepReport,
};
pub use schedule::{
    warmup_cosine, Anneal, Constant, Cosine, InverseSqrt, Join, Linear, OneCycle, OneCycleConfig,
    Schedule, StepDecay, Warmup,
};
