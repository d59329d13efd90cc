//! An optimizer over parameter groups: an update rule driven over tensors the caller owns, with
//! per-group settings, a learning-rate [`Schedule`], gradient clipping by global norm, a policy for
//! non-finite gradients, its own step counter, and checkpoints to bytes. `no_std`, no allocation.
//! The rule is any [`Rule`] (its state one slice of elements), [`Adam8`] (its state codes and
//! block scales, an [`Adam8State`]) or [`MuonWithFallback`] (Muon for weight matrices, a fallback
//! rule for vectors; its state each group's shape, buffers and a shared workspace, a
//! [`MuonState`]); see [State](#state).
//!
//! ```
//! use descent_kernels::train::{warmup_cosine, Group, GroupSettings, Optimizer};
//! use descent_kernels::Adam;
//!
//! let (mut w, mut b) = ([0.5f32; 6], [0.0f32; 2]);
//! let (mut gw, mut gb) = ([0.1f32; 6], [0.2f32; 2]);
//! let schedule = warmup_cosine(0.0, 1e-2, 10, 100, 1e-4)?;
//! let mut opt = Optimizer::new(Adam::adamw(1e-2f32, 0.01), schedule)?.with_clip_norm(1.0)?;
//! // State for the trainable parameters: Adam keeps 2 buffers per parameter.
//! let mut state = [0.0f32; 2 * 8];
//! for _ in 0..5 {
//!     // ... compute gw, gb ...
//!     let mut groups = [
//!         Group::new(&mut w, &mut gw),
//!         Group::new(&mut b, &mut gb).with(GroupSettings::NO_DECAY),
//!     ];
//!     opt.step(&mut groups, &mut state)?;
//! }
//! assert_eq!(opt.steps(), 5);
//! # Ok::<(), descent_kernels::Error>(())
//! ```
//!
//! ## One step
//! With `k` the number of completed steps (the optimizer's counter) and `t = k + 1`:
//! 1. everything is validated — the rule, each group's learning rate, every length — before
//!    anything is written;
//! 2. with [`NonFinite::Skip`], a NaN or ±Inf gradient anywhere skips the step: nothing is
//!    written, the counter stays at `k`, and the report says so (torch's `GradScaler`);
//! 3. with a clipping bound, all trainable gradients are scaled together as torch's
//!    `clip_grad_norm_` (see [`crate::train::clip`]);
//! 4. each trainable group runs the rule's step number `t` with learning rate
//!    `schedule.at(k) · lr_scale` (rounded to the compute type), without weight decay where the
//!    group says so, on its own part of the state;
//! 5. the counter becomes `t`.
//!
//! Under stochastic rounding (an [`Exec`] whose rounding is [`Rounding::Stochastic`]) the key of
//! group `g` at step `t` is the optimizer's key with stream `key.stream + g` and counter `t`, so
//! the bits depend only on (seed, group, step, element), and a restored run draws the same bits.
//!
//! ## State
//! Frozen groups are skipped entirely (no state, no update; TinyTL-style bias-only or last-layer
//! fine-tuning). The state holds, for each trainable group in order, that group's part:
//! - for a [`Rule`], one slice: each group's part is the rule's [`Rule::state_buffers`] buffers of
//!   that group's length, so its length is [`state_len`]`(buffers, trainable parameters)`, a
//!   `const fn` for sizing a `static` ([`Optimizer::state_len`] computes it from the groups);
//! - for [`Adam8`], an [`Adam8State`]: each group's part is [`Adam8::codes_len`]`(n)` codes and
//!   [`Adam8::scales_len`]`(n)` scales, exactly what [`Adam8::step_with`] takes for that group
//!   alone, so each group's blocks of 256 start at its first element and no block holds two
//!   groups' elements (sizes: [`Adam8State::codes_len`] and [`Adam8State::scales_len`] of the
//!   trainable lengths, `const fn`s, or [`Optimizer::codes_len`] and [`Optimizer::scales_len`]
//!   from the groups). Adam8's parameters may be stored in any format (its gradients are
//!   `f32`): 16-bit parameters are rounded with the context's rounding, as for a [`Rule`]; the
//!   codes and scales are the same 8-bit state whatever the parameters' format;
//! - for [`MuonWithFallback`] (`f32` or `f64`), a [`MuonState`] (its buffers stored in any
//!   format, as a [`Rule`]'s state): the caller's
//!   [`ParamShape`] of each trainable group (its [`ParamShape::len`] must be the group's length:
//!   [`ParamShape::Matrix`] goes to Muon, [`ParamShape::Vector`] to the fallback rule), each
//!   group's part of the buffers, [`MuonWithFallback::state_len`]`(shape)` elements (Muon's
//!   momentum buffer or the fallback's buffers, exactly what [`MuonWithFallback::step`] takes for
//!   that group alone), and one workspace that every group's step borrows in turn, of the
//!   largest [`MuonWithFallback::workspace_len`] (sizes: [`MuonState::buffers_len`] and
//!   [`MuonState::workspace_len`] of the shapes, `const fn`s, or
//!   [`Optimizer::muon_buffers_len`] from the rule). One learning rate drives both rules (the
//!   schedule's, times the group's `lr_scale`: give vector groups a scale of their own for a
//!   different fallback rate); a group without weight decay gets none from either rule. The
//!   fallback's step number is the optimizer's; written 16-bit parameters and buffers are
//!   rounded with the context's rounding, as for a [`Rule`].
//!
//! ```
//! use descent_kernels::train::{Adam8State, Cosine, Group, GroupSettings, Optimizer};
//! use descent_kernels::Adam8;
//!
//! let (mut w, mut b) = ([0.5f32; 300], [0.0f32; 4]);
//! let (mut gw, mut gb) = ([0.1f32; 300], [0.2f32; 4]);
//! let mut opt = Optimizer::new(Adam8::adamw(1e-3, 0.01), Cosine::new(1e-3, 0.0, 100)?)?;
//! // Codes and block scales of both groups: 300 = 2 blocks, 4 = 1 block.
//! let mut codes = [0u8; Adam8State::codes_len(&[300, 4])];
//! let mut scales = [0.0f32; Adam8State::scales_len(&[300, 4])];
//! let mut state = Adam8State::new(&mut codes, &mut scales);
//! for _ in 0..3 {
//!     // ... compute gw, gb ...
//!     let mut groups = [
//!         Group::new(&mut w, &mut gw),
//!         Group::new(&mut b, &mut gb).with(GroupSettings::NO_DECAY),
//!     ];
//!     opt.step(&mut groups, &mut state)?;
//! }
//! // A checkpoint of the optimizer, the parameters, the codes and the scales.
//! let groups = [
//!     Group::new(&mut w, &mut gw),
//!     Group::new(&mut b, &mut gb).with(GroupSettings::NO_DECAY),
//! ];
//! let mut bytes = [0u8; 4096];
//! let used = opt.save(&groups, &state, &mut bytes)?;
//! assert_eq!(used, opt.checkpoint_len(&groups));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use descent_kernels::train::{Group, GroupSettings, MuonState, Optimizer};
//! use descent_kernels::train::Cosine;
//! use descent_kernels::{Adam, Muon, MuonWithFallback, ParamShape};
//!
//! // A 16 × 8 weight matrix to Muon, its bias to AdamW at a tenth of the rate.
//! const SHAPES: [ParamShape; 2] = [ParamShape::Matrix { rows: 16, cols: 8 }, ParamShape::Vector(8)];
//! let (mut w, mut b) = ([0.1f32; 128], [0.0f32; 8]);
//! let (mut gw, mut gb) = ([0.01f32; 128], [0.5f32; 8]);
//! let rules = MuonWithFallback::new(Muon::new(0.02f32), Adam::adamw(2e-3f32, 0.01));
//! let mut opt = Optimizer::new(rules, Cosine::new(0.02, 0.0, 100)?)?;
//! let mut buffers = [0.0f32; MuonState::<f32>::buffers_len(&SHAPES, 2)];
//! let mut workspace = [0.0f32; MuonState::<f32>::workspace_len(&SHAPES)];
//! let mut state = MuonState::new(&SHAPES, &mut buffers, &mut workspace);
//! let bias = GroupSettings { lr_scale: 0.1, ..GroupSettings::NO_DECAY };
//! for _ in 0..3 {
//!     let mut groups = [Group::new(&mut w, &mut gw), Group::new(&mut b, &mut gb).with(bias)];
//!     opt.step(&mut groups, &mut state)?;
//! }
//! let groups = [Group::new(&mut w, &mut gw), Group::new(&mut b, &mut gb).with(bias)];
//! let mut bytes = [0u8; 4096];
//! let used = opt.save(&groups, &state, &mut bytes)?;
//! assert_eq!(used, opt.checkpoint_len::<f32, f32>(&groups, &SHAPES));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The three kinds of state go through one implementation of the step and of the checkpoint;
//! they differ only in how a trainable group's part of the state is found, checked (for a
//! [`MuonState`], also the group's shape against its length), stepped and written.
//! [`Optimizer::step`], [`Optimizer::save`] and [`Optimizer::restore`] take the state slice for a
//! [`Rule`], an [`Adam8State`] for [`Adam8`] and a [`MuonState`] for [`MuonWithFallback`]. The
//! rule's hyper-parameters reach the optimizer through [`RuleConfig`] (every [`Rule`] is one, and
//! so are [`Adam8`] and [`MuonWithFallback`]).
//!
//! ## Checkpoints
//! [`Optimizer::save`] writes a versioned, checksummed frame (see [`crate::train::bytes`]): the
//! storage formats, the rule's name and configuration (its `Debug` text), the schedule's and the
//! clipping configuration, the step counter, each group's length and settings, every parameter
//! and the state, little-endian. [`Optimizer::restore`] checks the frame (magic, version, length,
//! CRC-32), then that the rule, schedule, formats, group shapes and state lengths match this
//! optimizer, and only then writes the counter, the parameters and the state: a rejected
//! checkpoint changes nothing. Restoring into a fresh optimizer and training on gives the same
//! bits as never stopping.
//!
//! The header's three format tags are the compute, parameter and state formats: `1` `f32`, `2`
//! `f64`, `3` `bf16`, `4` `f16`, `5` Kahan-compensated `bf16`, and, as the state format only, `6`
//! for [`Adam8`]'s codes and scales and `7`–`10` for a [`MuonState`]'s shapes and buffers (`7`
//! with the buffers in the compute format, `8` in bf16, `9` in f16, `10` Kahan-compensated bf16).
//! The state section that ends the payload is
//!
//! | state | section |
//! |---|---|
//! | a [`Rule`]'s slice | `u64` state length, then every state element in its format |
//! | an [`Adam8State`] | `u64` codes length, the codes (one byte each), `u64` scales length, the scales (`f32`) |
//! | a [`MuonState`] | `u64` shape count, each trainable group's shape as a `u8` kind and two `u64`s (`0, n, 0` for [`ParamShape::Vector`]`(n)`, `1, rows, cols` for [`ParamShape::Matrix`]), `u64` buffers length, the buffers (in their format) |
//!
//! the codes and the scales each in the layout above (every trainable group's in order; for
//! each, `m`'s then `v`'s); a [`MuonState`]'s buffers as above, its workspace (scratch) not at
//! all. A restore checks the saved shapes against the state's, so a checkpoint is refused by
//! groups of other shapes even where every length agrees (a transposed matrix). The format
//! version is the same for all: the rule's name, its configuration and the state format tell
//! them apart.

use core::fmt::{self, Debug, Write as _};
use core::marker::PhantomData;

use super::bytes::{frame_len, read_header, write_header, Reader, Writer};
use super::clip::{clip_factor, norm_of, NonFinite};
use super::error::CheckpointError;
use super::schedule::Schedule;
use crate::error::{check_len, check_shape};
use crate::rules::adam8::Adam8;
use crate::rules::muon::{Muon, MuonWithFallback, ParamShape};
use crate::rules::{Rule, RuleConfig};
use crate::storage::{Format, Rounding, Storage};
use crate::vector::{all_finite_with, scale_with};
use crate::{Element, Error, Exec};

/// The magic bytes of an optimizer checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"DSCO";
/// The checkpoint format version this code writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The state length for `buffers` state buffers per parameter and `trainable` trainable
/// parameters: `buffers · trainable` (a `const fn`, for `static` buffers).
pub const fn state_len(buffers: usize, trainable: usize) -> usize {
    buffers * trainable
}

/// Per-group settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupSettings {
    /// Multiplies the schedule's learning rate for this group (finite, `>= 0`).
    pub lr_scale: f64,
    /// Whether the rule's weight decay applies (off for biases and norms, as is usual).
    pub weight_decay: bool,
    /// Skip the group entirely: no update and no state.
    pub frozen: bool,
}

impl GroupSettings {
    /// Scale 1, with weight decay, trainable.
    pub const DEFAULT: GroupSettings = GroupSettings {
        lr_scale: 1.0,
        weight_decay: true,
        frozen: false,
    };
    /// Scale 1, without weight decay (biases), trainable.
    pub const NO_DECAY: GroupSettings = GroupSettings {
        weight_decay: false,
        ..GroupSettings::DEFAULT
    };
    /// Frozen: neither updated nor given state.
    pub const FROZEN: GroupSettings = GroupSettings {
        frozen: true,
        ..GroupSettings::DEFAULT
    };
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings::DEFAULT
    }
}

/// One parameter tensor, its gradient (in the compute type, scaled in place by clipping) and its
/// settings. The caller owns both slices.
#[derive(Debug)]
pub struct Group<'a, P, T> {
    /// The parameters, stored as `P`.
    pub params: &'a mut [P],
    /// The gradients, as many as parameters.
    pub grads: &'a mut [T],
    /// The group's settings.
    pub settings: GroupSettings,
}

impl<'a, P, T> Group<'a, P, T> {
    /// A group with [`GroupSettings::DEFAULT`].
    pub fn new(params: &'a mut [P], grads: &'a mut [T]) -> Self {
        Group {
            params,
            grads,
            settings: GroupSettings::DEFAULT,
        }
    }

    /// The same group with `settings`.
    pub fn with(self, settings: GroupSettings) -> Self {
        Group { settings, ..self }
    }
}

/// The state of [`Adam8`] over parameter groups, as [`Optimizer`] steps and checkpoints it: for
/// each trainable group in order, [`Adam8::codes_len`]`(n)` codes and [`Adam8::scales_len`]`(n)`
/// block scales of that group's `n` parameters, laid out as [`Adam8::step_with`] takes them for
/// that group alone (`m` codes, then `v` codes; `m` scales, then `v` scales). So each group's
/// blocks of [`BLOCK`](crate::rules::adam8::BLOCK) elements start at its first element, and no
/// block holds two groups' elements. All zeros is the state before step 1.
///
/// ```
/// use descent_kernels::train::Adam8State;
///
/// // Groups of 300 and 10 trainable parameters: 2 blocks and 1 block, 3 blocks in all.
/// const CODES: usize = Adam8State::codes_len(&[300, 10]);
/// const SCALES: usize = Adam8State::scales_len(&[300, 10]);
/// assert_eq!((CODES, SCALES), (2 * 310, 2 * 3));
/// ```
#[derive(Debug)]
pub struct Adam8State<'a> {
    /// The codes of every trainable group, one after the other.
    pub codes: &'a mut [u8],
    /// The block scales of every trainable group, one after the other.
    pub scales: &'a mut [f32],
}

impl<'a> Adam8State<'a> {
    /// The state in `codes` and `scales`.
    pub fn new(codes: &'a mut [u8], scales: &'a mut [f32]) -> Self {
        Adam8State { codes, scales }
    }

    /// The codes for trainable groups of the lengths `trainable`: the sum of their
    /// [`Adam8::codes_len`] (a `const fn`, for `static` buffers).
    pub const fn codes_len(trainable: &[usize]) -> usize {
        let (mut total, mut k) = (0, 0);
        while k < trainable.len() {
            total += Adam8::codes_len(trainable[k]);
            k += 1;
        }
        total
    }

    /// The scales for trainable groups of the lengths `trainable`: the sum of their
    /// [`Adam8::scales_len`], one block count per group (a `const fn`, for `static` buffers).
    pub const fn scales_len(trainable: &[usize]) -> usize {
        let (mut total, mut k) = (0, 0);
        while k < trainable.len() {
            total += Adam8::scales_len(trainable[k]);
            k += 1;
        }
        total
    }
}

/// The state of [`MuonWithFallback`] over parameter groups, as [`Optimizer`] steps and
/// checkpoints it:
/// - `shapes`: each trainable group's [`ParamShape`], in order (frozen groups have none), which
///   routes it to Muon (a matrix) or the fallback (a vector); its [`ParamShape::len`] must be the
///   group's length;
/// - `buffers`: for each trainable group in order, its part of
///   [`MuonWithFallback::state_len`]`(shape)` elements (Muon's momentum buffer for a matrix, the
///   fallback's buffers for a vector), exactly what [`MuonWithFallback::step`] takes for that
///   group alone; all zeros is the state before step 1;
/// - `workspace`: one scratch slice every group's step borrows in turn, of the largest
///   [`MuonWithFallback::workspace_len`] of the shapes; its contents carry no meaning and are
///   not checkpointed.
///
/// ```
/// use descent_kernels::train::MuonState;
/// use descent_kernels::{Adam, ParamShape};
///
/// // A 16 × 8 weight matrix and its bias, with Adam (2 buffers) as the fallback.
/// const SHAPES: [ParamShape; 2] = [ParamShape::Matrix { rows: 16, cols: 8 }, ParamShape::Vector(8)];
/// const BUFFERS: usize = MuonState::<f32>::buffers_len(&SHAPES, 2);
/// const WORKSPACE: usize = MuonState::<f32>::workspace_len(&SHAPES);
/// assert_eq!((BUFFERS, WORKSPACE), (16 * 8 + 2 * 8, 2 * 8 * 16 + 2 * 8 * 8));
/// let (mut buffers, mut workspace) = ([0.0f32; BUFFERS], [0.0f32; WORKSPACE]);
/// let state = MuonState::new(&SHAPES, &mut buffers, &mut workspace);
/// assert_eq!(state.shapes.len(), 2);
/// ```
///
/// The buffers may be stored in a narrower format `S` than the compute type `T` (bf16 or f16
/// for `f32`): each group's step is then [`MuonWithFallback::step_with`], rounding every written
/// buffer once with the optimizer's context; the workspace is always `T`.
#[derive(Debug)]
pub struct MuonState<'a, T, S = T> {
    /// Each trainable group's shape, in order.
    pub shapes: &'a [ParamShape],
    /// The momentum and fallback buffers of every trainable group, one after the other.
    pub buffers: &'a mut [S],
    /// The workspace every group's step borrows (scratch; not checkpointed).
    pub workspace: &'a mut [T],
}

impl<'a, T, S> MuonState<'a, T, S> {
    /// The state of the trainable groups `shapes` in `buffers`, lending `workspace`.
    pub fn new(shapes: &'a [ParamShape], buffers: &'a mut [S], workspace: &'a mut [T]) -> Self {
        MuonState {
            shapes,
            buffers,
            workspace,
        }
    }

    /// The buffers' length for trainable groups of the shapes `shapes`, with a fallback rule
    /// keeping `fallback_buffers` buffers per parameter (its [`Rule::state_buffers`]; 2 for
    /// Adam): each matrix's [`Muon::matrix_state_len`] plus `fallback_buffers` times each
    /// vector's length, saturating (a `const fn`, for `static` buffers;
    /// [`Optimizer::muon_buffers_len`] computes it from the rule).
    pub const fn buffers_len(shapes: &[ParamShape], fallback_buffers: usize) -> usize {
        let (mut total, mut k) = (0usize, 0);
        while k < shapes.len() {
            let part = match shapes[k] {
                ParamShape::Vector(n) => fallback_buffers.saturating_mul(n),
                ParamShape::Matrix { rows, cols } => Muon::<f32>::matrix_state_len(rows, cols),
            };
            total = total.saturating_add(part);
            k += 1;
        }
        total
    }

    /// The workspace's length for trainable groups of the shapes `shapes`: the largest
    /// [`Muon::workspace_len`] of the matrices, 0 without one (a `const fn`, for `static`
    /// buffers).
    pub const fn workspace_len(shapes: &[ParamShape]) -> usize {
        let (mut most, mut k) = (0usize, 0);
        while k < shapes.len() {
            let need = shape_workspace_len(shapes[k]);
            if need > most {
                most = need;
            }
            k += 1;
        }
        most
    }
}

/// The workspace one tensor of `shape` needs (as [`MuonWithFallback::workspace_len`], for any
/// element type: the count does not depend on it).
const fn shape_workspace_len(shape: ParamShape) -> usize {
    match shape {
        ParamShape::Vector(_) => 0,
        ParamShape::Matrix { rows, cols } => Muon::<f32>::workspace_len(rows, cols),
    }
}

/// What a call to [`Optimizer::step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// The step number applied (or skipped), from 1.
    pub step: u64,
    /// The schedule's learning rate for it (before the groups' scales).
    pub lr: f64,
    /// The global gradient norm before clipping, when clipping by norm.
    pub grad_norm: Option<f64>,
    /// The factor the gradients were multiplied by (1 without clipping or below the bound).
    pub clip_factor: f64,
    /// Whether the step was skipped for a non-finite gradient (nothing written).
    pub skipped: bool,
}

/// An update rule driven over parameter groups with a schedule (see the
/// [module documentation](self)).
#[derive(Clone, Copy, Debug)]
pub struct Optimizer<R, Sch, T = f32> {
    rule: R,
    schedule: Sch,
    steps: u64,
    clip_norm: Option<f64>,
    nonfinite: NonFinite,
    exec: Exec,
    _compute: PhantomData<fn() -> T>,
}

impl<R, Sch, T> Optimizer<R, Sch, T> {
    /// Completed steps.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The rule (its learning rate is replaced by the schedule's at every step).
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The schedule.
    pub fn schedule(&self) -> &Sch {
        &self.schedule
    }

    /// The execution context (backend and rounding).
    pub fn exec(&self) -> &Exec {
        &self.exec
    }
}

impl<T: Element, R: RuleConfig<T>, Sch: Schedule + Debug> Optimizer<R, Sch, T> {
    /// An optimizer with no steps taken, on [`Exec::active`], no clipping, non-finite gradients
    /// propagated (torch's default). Fails if the rule is invalid.
    pub fn new(rule: R, schedule: Sch) -> Result<Self, Error> {
        rule.validate()?;
        Ok(Optimizer {
            rule,
            schedule,
            steps: 0,
            clip_norm: None,
            nonfinite: NonFinite::Propagate,
            exec: Exec::active(),
            _compute: PhantomData,
        })
    }

    /// The same optimizer clipping the global gradient norm to `max_norm` (finite, `>= 0`).
    pub fn with_clip_norm(self, max_norm: f64) -> Result<Self, Error> {
        if !(max_norm.is_finite() && max_norm >= 0.0) {
            return Err(Error::InvalidHyperParameter {
                name: "max_norm",
                requirement: "must be finite and >= 0",
            });
        }
        Ok(Optimizer {
            clip_norm: Some(max_norm),
            ..self
        })
    }

    /// The same optimizer with the non-finite gradient policy `policy`.
    pub fn with_nonfinite(self, policy: NonFinite) -> Self {
        Optimizer {
            nonfinite: policy,
            ..self
        }
    }

    /// The same optimizer running with `exec` (backend, and the rounding of 16-bit parameters or
    /// state; see the module documentation for stochastic keys, and for [`Adam8`], which rounds
    /// nothing).
    pub fn with_exec(self, exec: Exec) -> Self {
        Optimizer { exec, ..self }
    }

    /// The rule of group `settings` at learning rate `lr` (validated).
    fn group_rule(&self, settings: &GroupSettings, lr: f64) -> Result<R, Error> {
        if !(settings.lr_scale.is_finite() && settings.lr_scale >= 0.0) {
            return Err(Error::InvalidHyperParameter {
                name: "lr_scale",
                requirement: "must be finite and >= 0",
            });
        }
        let mut rule = self.rule.with_lr(T::from_f64_round(lr * settings.lr_scale));
        if !settings.weight_decay {
            rule = rule.without_weight_decay();
        }
        rule.validate()?;
        Ok(rule)
    }

    /// The context of group `index` at step `t`: under stochastic rounding, the optimizer's key
    /// with stream `key.stream + index` and counter `t`.
    fn group_exec(&self, index: usize, t: u64) -> Exec {
        match self.exec.rounding() {
            Rounding::NearestEven => self.exec,
            Rounding::Stochastic(key) => self.exec.with_rounding(Rounding::Stochastic(
                key.with_stream(key.stream.wrapping_add(index as u64))
                    .with_counter(t),
            )),
        }
    }

    /// Where `state`'s parts for `groups` end: the parts of every trainable group, in order.
    /// Only `state`'s layout (a [`MuonState`]'s shapes) is read, never its lengths, so an empty
    /// state of the right kind gives the lengths a state must have.
    fn state_end<P, St: StateLayout<R, T> + ?Sized>(
        &self,
        groups: &[Group<'_, P, T>],
        state: &St,
    ) -> St::At {
        groups
            .iter()
            .filter(|g| !g.settings.frozen)
            .fold(St::START, |at, g| {
                state.after(&self.rule, at, g.params.len())
            })
    }

    /// Checks `state` against `groups`: each trainable group against its part
    /// ([`StateLayout::check_group`]), then the lengths of the whole; returns where it ends.
    fn check_state<P, St: StateLayout<R, T> + ?Sized>(
        &self,
        groups: &[Group<'_, P, T>],
        state: &St,
    ) -> Result<St::At, Error> {
        let mut at = St::START;
        for g in groups.iter().filter(|g| !g.settings.frozen) {
            state.check_group(at, g.params.len())?;
            at = state.after(&self.rule, at, g.params.len());
        }
        state.check(at)?;
        Ok(at)
    }

    /// One step over `groups` with `state`, whatever its layout (see the module documentation).
    /// Validates everything before writing anything.
    fn step_state<P, St: StepState<R, T, P> + ?Sized>(
        &mut self,
        groups: &mut [Group<'_, P, T>],
        state: &mut St,
    ) -> Result<StepReport, Error> {
        let t = self
            .steps
            .checked_add(1)
            .ok_or(Error::InvalidStep { step: u64::MAX })?;
        let lr = self.schedule.at(self.steps);
        for g in groups.iter() {
            check_len("grads", g.params.len(), g.grads.len())?;
            if !g.settings.frozen {
                self.group_rule(&g.settings, lr)?;
            }
        }
        self.check_state(groups, &*state)?;
        let mut report = StepReport {
            step: t,
            lr,
            grad_norm: None,
            clip_factor: 1.0,
            skipped: false,
        };
        // Clipping and the non-finite policy see the trainable gradients only.
        let trainable_grads = || {
            groups
                .iter()
                .filter(|g| !g.settings.frozen)
                .map(|g| &*g.grads)
        };
        let mut factor = T::one();
        if let Some(max_norm) = self.clip_norm {
            let total = norm_of(&self.exec, trainable_grads());
            report.grad_norm = Some(total.widen());
            report.skipped = !total.is_finite() && self.nonfinite == NonFinite::Skip;
            factor = clip_factor(T::from_f64_round(max_norm), total);
            report.clip_factor = factor.widen();
        } else if self.nonfinite == NonFinite::Skip {
            report.skipped = !trainable_grads().all(|g| all_finite_with(&self.exec, g));
        }
        if report.skipped {
            return Ok(report);
        }
        if factor != T::one() {
            for g in groups.iter_mut().filter(|g| !g.settings.frozen) {
                scale_with(&self.exec, factor, g.grads);
            }
        }
        let mut at = St::START;
        for (index, g) in groups.iter_mut().enumerate() {
            if g.settings.frozen {
                continue;
            }
            let rule = self.group_rule(&g.settings, lr)?;
            let exec = self.group_exec(index, t);
            state.step_group(&rule, &exec, t, at, g.params, g.grads)?;
            at = state.after(&self.rule, at, g.params.len());
        }
        self.steps = t;
        Ok(report)
    }

    /// The size in bytes of the checkpoint of `groups` with a state laid out as `state`.
    fn frame_len_of<P, St: StateLayout<R, T> + ?Sized>(
        &self,
        groups: &[Group<'_, P, T>],
        state: &St,
    ) -> usize {
        let text = |x: &dyn Debug| 4 + debug_len(x);
        let head = 3 + text(&R::NAME) + text(&self.rule) + text(&self.schedule) + 1 + 8 + 8 + 8;
        let per_group = 8 + 1 + 1 + 8;
        let params: usize = groups.iter().map(|g| g.params.len()).sum();
        frame_len(
            head + groups.len() * per_group
                + params * core::mem::size_of::<P>()
                + state.section_len(self.state_end(groups, state)),
        )
    }

    /// Writes a checkpoint of the optimizer, the groups' parameters and `state` into `out`.
    fn save_state<P: Storage<T> + StateCodec, St: SaveState<R, T> + ?Sized>(
        &self,
        groups: &[Group<'_, P, T>],
        state: &St,
        out: &mut [u8],
    ) -> Result<usize, CheckpointError> {
        let needed = self.frame_len_of(groups, state);
        if out.len() < needed {
            return Err(CheckpointError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        self.check_state(groups, state)?;
        let mut w = write_header(out, CHECKPOINT_MAGIC, CHECKPOINT_VERSION)?;
        w.put_u8(format_tag(T::FORMAT))?;
        w.put_u8(format_tag(P::FORMAT))?;
        w.put_u8(St::tag())?;
        put_text(&mut w, &R::NAME)?;
        put_text(&mut w, &self.rule)?;
        put_text(&mut w, &self.schedule)?;
        w.put_u8(self.nonfinite as u8)?;
        w.put_f64(self.clip_norm.unwrap_or(-1.0))?;
        w.put_u64(self.steps)?;
        w.put_u64(groups.len() as u64)?;
        for g in groups {
            w.put_u64(g.params.len() as u64)?;
            w.put_u8(g.settings.frozen as u8)?;
            w.put_u8(g.settings.weight_decay as u8)?;
            w.put_f64(g.settings.lr_scale)?;
        }
        for g in groups {
            P::put(&mut w, g.params)?;
        }
        state.put(&mut w)?;
        Ok(w.finish())
    }

    /// Restores a checkpoint into the counter, `groups` and `state`; checks everything first.
    fn restore_state<P: Storage<T> + StateCodec, St: SaveState<R, T> + ?Sized>(
        &mut self,
        bytes: &[u8],
        groups: &mut [Group<'_, P, T>],
        state: &mut St,
    ) -> Result<(), CheckpointError> {
        // Pass 1: the frame's integrity, then every field against this optimizer; reads values
        // past without keeping them.
        let steps = self.read_checkpoint(bytes, groups, state, false)?;
        // Pass 2 cannot fail: the same reads, now writing.
        self.read_checkpoint(bytes, groups, state, true)?;
        self.steps = steps;
        Ok(())
    }

    /// Reads (and with `write`, stores) a checkpoint; returns the saved step count.
    fn read_checkpoint<P: Storage<T> + StateCodec, St: SaveState<R, T> + ?Sized>(
        &self,
        bytes: &[u8],
        groups: &mut [Group<'_, P, T>],
        state: &mut St,
        write: bool,
    ) -> Result<u64, CheckpointError> {
        let mut r = read_header(bytes, CHECKPOINT_MAGIC, CHECKPOINT_VERSION)?;
        for (field, tag) in [
            ("compute format", format_tag(T::FORMAT)),
            ("parameter format", format_tag(P::FORMAT)),
            ("state format", St::tag()),
        ] {
            r.expect_u64_u8(field, tag)?;
        }
        expect_text(&mut r, "rule name", &R::NAME)?;
        expect_text(&mut r, "rule configuration", &self.rule)?;
        expect_text(&mut r, "schedule configuration", &self.schedule)?;
        r.expect_u64_u8("non-finite policy", self.nonfinite as u8)?;
        if r.get_f64()?.to_bits() != self.clip_norm.unwrap_or(-1.0).to_bits() {
            return Err(CheckpointError::InvalidValue {
                field: "clipping bound",
            });
        }
        let steps = r.get_u64()?;
        r.expect_u64("group count", groups.len() as u64)?;
        for g in groups.iter() {
            r.expect_u64("group length", g.params.len() as u64)?;
            r.expect_u64_u8("group frozen", g.settings.frozen as u8)?;
            r.expect_u64_u8("group weight decay", g.settings.weight_decay as u8)?;
            if r.get_f64()?.to_bits() != g.settings.lr_scale.to_bits() {
                return Err(CheckpointError::InvalidValue {
                    field: "group lr_scale",
                });
            }
        }
        for g in groups.iter_mut() {
            if write {
                P::get(&mut r, g.params)?;
            } else {
                r.get_bytes(core::mem::size_of_val(g.params))?;
            }
        }
        let end = self.check_state(groups, &*state)?;
        state.get(&mut r, end, write)?;
        r.finish()?;
        Ok(steps)
    }
}

impl<T: Element, R: Rule<T>, Sch: Schedule + Debug> Optimizer<R, Sch, T> {
    /// The state length these groups need: the rule's buffers times the trainable parameters.
    pub fn state_len<P>(&self, groups: &[Group<'_, P, T>]) -> usize {
        state_len(self.rule.state_buffers(), trainable(groups))
    }

    /// One step over `groups` with `state` (see the module documentation). Validates everything
    /// before writing anything.
    pub fn step<P: Storage<T>, S: Storage<T>>(
        &mut self,
        groups: &mut [Group<'_, P, T>],
        state: &mut [S],
    ) -> Result<StepReport, Error> {
        self.step_state(groups, state)
    }

    /// The size in bytes of [`Optimizer::save`]'s checkpoint of `groups` and their state.
    pub fn checkpoint_len<P: StateCodec, S: StateCodec>(
        &self,
        groups: &[Group<'_, P, T>],
    ) -> usize {
        let empty: &[S] = &[];
        self.frame_len_of(groups, empty)
    }

    /// Writes a checkpoint of the optimizer, the groups' parameters and `state` into `out`;
    /// returns the bytes used ([`Optimizer::checkpoint_len`]). On
    /// [`CheckpointError::BufferTooSmall`] the contents of `out` are unspecified (no valid frame).
    pub fn save<P: Storage<T> + StateCodec, S: Storage<T> + StateCodec>(
        &self,
        groups: &[Group<'_, P, T>],
        state: &[S],
        out: &mut [u8],
    ) -> Result<usize, CheckpointError> {
        self.save_state(groups, state, out)
    }

    /// Restores a checkpoint written by [`Optimizer::save`] for an optimizer configured like this
    /// one and groups of the same shapes and settings: the step counter, every group's parameters
    /// and `state`. Checks everything first; on any error nothing is written.
    pub fn restore<P: Storage<T> + StateCodec, S: Storage<T> + StateCodec>(
        &mut self,
        bytes: &[u8],
        groups: &mut [Group<'_, P, T>],
        state: &mut [S],
    ) -> Result<(), CheckpointError> {
        self.restore_state(bytes, groups, state)
    }
}

/// [`Adam8`] over parameter groups: the same step and checkpoints as for a [`Rule`], with the
/// state in an [`Adam8State`] (see the module documentation).
impl<Sch: Schedule + Debug> Optimizer<Adam8, Sch, f32> {
    /// The codes these groups need: [`Adam8::codes_len`] of each trainable group, summed.
    pub fn codes_len<P>(&self, groups: &[Group<'_, P, f32>]) -> usize {
        self.state_end(groups, &Adam8State::new(&mut [], &mut [])).0
    }

    /// The scales these groups need: [`Adam8::scales_len`] of each trainable group, summed.
    pub fn scales_len<P>(&self, groups: &[Group<'_, P, f32>]) -> usize {
        self.state_end(groups, &Adam8State::new(&mut [], &mut [])).1
    }

    /// One step over `groups` with `state`: as [`Optimizer::step`] for a [`Rule`], each
    /// trainable group running [`Adam8::step_with`] on its own codes and scales. Validates
    /// everything (the rule at every group's learning rate, every gradient length, the codes and
    /// the scales) before writing anything. Parameters stored as `P` (16-bit, or
    /// [`KahanBf16`](crate::KahanBf16)) are rounded with the context's rounding, as for a
    /// [`Rule`]; the codes and scales are the 8-bit state whatever it is.
    pub fn step<P: Storage<f32>>(
        &mut self,
        groups: &mut [Group<'_, P, f32>],
        state: &mut Adam8State<'_>,
    ) -> Result<StepReport, Error> {
        self.step_state(groups, state)
    }

    /// The size in bytes of the checkpoint [`Optimizer::save`] writes of `groups` and their
    /// [`Adam8State`].
    pub fn checkpoint_len<P>(&self, groups: &[Group<'_, P, f32>]) -> usize {
        self.frame_len_of(groups, &Adam8State::new(&mut [], &mut []))
    }

    /// Writes a checkpoint of the optimizer, the groups' parameters and `state` (its codes and
    /// scales) into `out`; returns the bytes used. On [`CheckpointError::BufferTooSmall`] the
    /// contents of `out` are unspecified (no valid frame).
    pub fn save<P: Storage<f32> + StateCodec>(
        &self,
        groups: &[Group<'_, P, f32>],
        state: &Adam8State<'_>,
        out: &mut [u8],
    ) -> Result<usize, CheckpointError> {
        self.save_state(groups, state, out)
    }

    /// Restores a checkpoint written by [`Optimizer::save`] for an Adam8 optimizer configured
    /// like this one and groups of the same shapes and settings: the step counter, every group's
    /// parameters, the codes and the scales. Checks everything first; on any error nothing is
    /// written.
    pub fn restore<P: Storage<f32> + StateCodec>(
        &mut self,
        bytes: &[u8],
        groups: &mut [Group<'_, P, f32>],
        state: &mut Adam8State<'_>,
    ) -> Result<(), CheckpointError> {
        self.restore_state(bytes, groups, state)
    }
}

// For `f32` and `f64` each (`$T`): one generic impl would overlap the methods of the impl for
// every `Rule`, which another crate could give a `MuonWithFallback<TheirType, _>`.
macro_rules! muon_optimizer {
    ($T:ty) => {
        /// [`MuonWithFallback`] over parameter groups: the same step and checkpoints as for a [`Rule`],
        /// with the state in a [`MuonState`] (see the module documentation).
        impl<F: Rule<$T>, Sch: Schedule + Debug> Optimizer<MuonWithFallback<$T, F>, Sch, $T> {
            /// The buffers' length for trainable groups of the shapes `shapes`:
            /// [`MuonWithFallback::state_len`] of each, summed (saturating).
            pub fn muon_buffers_len(&self, shapes: &[ParamShape]) -> usize {
                shapes.iter().fold(0usize, |total, &shape| {
                    total.saturating_add(self.rule.state_len(shape))
                })
            }

            /// One step over `groups` with `state`: as [`Optimizer::step`] for a [`Rule`], each
            /// trainable group running [`MuonWithFallback::step_with`] with its shape, its own
            /// buffers and the shared workspace, the parameters stored as `P` and the buffers as
            /// `S`. Validates everything (the rules at every group's learning rate, every gradient
            /// length, one shape per trainable group whose length is the group's, the buffers' and
            /// the workspace's lengths) before writing anything. Written 16-bit buffers are
            /// rounded with the optimizer's context ([`Optimizer::with_exec`]).
            pub fn step<P: Storage<$T>, S: Storage<$T>>(
                &mut self,
                groups: &mut [Group<'_, P, $T>],
                state: &mut MuonState<'_, $T, S>,
            ) -> Result<StepReport, Error> {
                self.step_state(groups, state)
            }

            /// The size in bytes of the checkpoint [`Optimizer::save`] writes of `groups` and a
            /// [`MuonState`] of the shapes `shapes` with buffers stored as `S` (the shapes are
            /// part of the checkpoint; the workspace is not).
            pub fn checkpoint_len<P: StateCodec, S: StateCodec>(
                &self,
                groups: &[Group<'_, P, $T>],
                shapes: &[ParamShape],
            ) -> usize {
                let empty: &mut [S] = &mut [];
                self.frame_len_of(groups, &MuonState::new(shapes, empty, &mut []))
            }

            /// Writes a checkpoint of the optimizer, the groups' parameters, and `state`'s shapes and
            /// buffers (not its workspace) into `out`; returns the bytes used. On
            /// [`CheckpointError::BufferTooSmall`] the contents of `out` are unspecified (no valid frame).
            pub fn save<P: Storage<$T> + StateCodec, S: Storage<$T> + StateCodec>(
                &self,
                groups: &[Group<'_, P, $T>],
                state: &MuonState<'_, $T, S>,
                out: &mut [u8],
            ) -> Result<usize, CheckpointError> {
                self.save_state(groups, state, out)
            }

            /// Restores a checkpoint written by [`Optimizer::save`] for a Muon optimizer configured like
            /// this one, groups of the same lengths and settings, and a state of the same shapes: the
            /// step counter, every group's parameters and the buffers (the workspace is untouched).
            /// Checks everything first; on any error nothing is written.
            pub fn restore<P: Storage<$T> + StateCodec, S: Storage<$T> + StateCodec>(
                &mut self,
                bytes: &[u8],
                groups: &mut [Group<'_, P, $T>],
                state: &mut MuonState<'_, $T, S>,
            ) -> Result<(), CheckpointError> {
                self.restore_state(bytes, groups, state)
            }
        }
    };
}
muon_optimizer!(f32);
muon_optimizer!(f64);

// ------------------------------------------------------------------ how a state is laid out
//
// The optimizer's step and checkpoint are written once, over these three traits; each kind of
// state says where a trainable group's part of it starts (`At`: the sizes of the parts before
// it), checks each group against its part and the whole state's lengths, steps one group with its
// part, and writes and reads itself. A group's part is found from `At` inside `step_group`, which
// borrows the whole state, so a kind of state may also hold what every group shares: a
// `MuonState` keeps its buffers, each trainable group's shape (`At` counts the groups too, to find
// it, and the largest workspace so far) and one workspace that every group's step borrows in
// turn. `after` reads the state's layout (the shapes), so the lengths a state must have come from
// an empty state of the same layout; `check_group` (the shape's length against the group's;
// nothing to check for a `Rule`'s slice or an `Adam8State`) runs for every trainable group in the
// validation pass, before `check`, so that a wrong shape is refused before anything is written.

/// The layout of an optimizer's state over the trainable groups, in order.
pub(crate) trait StateLayout<R, T> {
    /// Where a trainable group's part starts: the sizes of the parts before it.
    type At: Copy;
    /// Where the first trainable group's part starts.
    const START: Self::At;
    /// Where the part after that of a trainable group of `n` parameters at `at` starts (reads
    /// only the state's layout, never its buffers' lengths; a group without a layout adds
    /// nothing, and is refused by `check_group`).
    fn after(&self, rule: &R, at: Self::At, n: usize) -> Self::At;
    /// Checks a trainable group of `n` parameters against its part at `at` before anything is
    /// written (a typed error otherwise); called for every trainable group in order, before
    /// `check`.
    fn check_group(&self, at: Self::At, n: usize) -> Result<(), Error>;
    /// Checks that the state holds exactly the parts that end at `end` (a typed error naming the
    /// buffer otherwise).
    fn check(&self, end: Self::At) -> Result<(), Error>;
    /// The bytes of the checkpoint's state section for parts ending at `end`.
    fn section_len(&self, end: Self::At) -> usize;
}

/// Stepping one trainable group, parameters stored as `P`, with its part of the state.
pub(crate) trait StepState<R, T, P>: StateLayout<R, T> {
    /// Step `step` of the group `params`, `grads` with the group's rule `rule`, its part at `at`
    /// (the caller has checked the state's length).
    fn step_group(
        &mut self,
        rule: &R,
        exec: &Exec,
        step: u64,
        at: Self::At,
        params: &mut [P],
        grads: &[T],
    ) -> Result<(), Error>;
}

/// The state's section of a checkpoint.
pub(crate) trait SaveState<R, T>: StateLayout<R, T> {
    /// The state format's tag in the checkpoint header.
    fn tag() -> u8;
    /// Writes the state section.
    fn put(&self, w: &mut Writer<'_>) -> Result<(), CheckpointError>;
    /// Reads the state section of parts ending at `end` (the caller has checked the state
    /// against them), checking its lengths and layout against this state, and with `write`
    /// stores it; on error nothing was written.
    fn get(
        &mut self,
        r: &mut Reader<'_>,
        end: Self::At,
        write: bool,
    ) -> Result<(), CheckpointError>;
}

/// A [`Rule`]'s state: one slice, each trainable group's part its buffers of its length.
impl<T: Element, R: Rule<T>, S> StateLayout<R, T> for [S] {
    type At = usize;
    const START: usize = 0;

    fn after(&self, rule: &R, at: usize, n: usize) -> usize {
        at + rule.state_len(n)
    }

    /// Nothing to check: a group's part is set by its length alone.
    fn check_group(&self, _: usize, _: usize) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, end: usize) -> Result<(), Error> {
        check_len("state", end, self.len())
    }

    fn section_len(&self, end: usize) -> usize {
        8 + end * core::mem::size_of::<S>()
    }
}

impl<T: Element, R: Rule<T>, P: Storage<T>, S: Storage<T>> StepState<R, T, P> for [S] {
    fn step_group(
        &mut self,
        rule: &R,
        exec: &Exec,
        step: u64,
        at: usize,
        params: &mut [P],
        grads: &[T],
    ) -> Result<(), Error> {
        let part = &mut self[at..at + rule.state_len(params.len())];
        rule.step_with(exec, step, params, grads, part)
    }
}

impl<T: Element, R: Rule<T>, S: Storage<T> + StateCodec> SaveState<R, T> for [S] {
    fn tag() -> u8 {
        format_tag(S::FORMAT)
    }

    fn put(&self, w: &mut Writer<'_>) -> Result<(), CheckpointError> {
        w.put_u64(self.len() as u64)?;
        S::put(w, self)
    }

    fn get(&mut self, r: &mut Reader<'_>, end: usize, write: bool) -> Result<(), CheckpointError> {
        r.expect_u64("state length", end as u64)?;
        if write {
            S::get(r, self)
        } else {
            r.get_bytes(end * core::mem::size_of::<S>()).map(|_| ())
        }
    }
}

/// The state format tag of [`Adam8State`] in a checkpoint header.
const ADAM8_TAG: u8 = 6;

/// [`Adam8`]'s state: each trainable group's part is its codes and its scales.
impl StateLayout<Adam8, f32> for Adam8State<'_> {
    /// (codes, scales) before the part.
    type At = (usize, usize);
    const START: (usize, usize) = (0, 0);

    fn after(&self, _: &Adam8, (codes, scales): (usize, usize), n: usize) -> (usize, usize) {
        (codes + Adam8::codes_len(n), scales + Adam8::scales_len(n))
    }

    /// Nothing to check: a group's part is set by its length alone.
    fn check_group(&self, _: (usize, usize), _: usize) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, (codes, scales): (usize, usize)) -> Result<(), Error> {
        check_len("codes", codes, self.codes.len())?;
        check_len("scales", scales, self.scales.len())
    }

    fn section_len(&self, (codes, scales): (usize, usize)) -> usize {
        8 + codes + 8 + 4 * scales
    }
}

impl<P: Storage<f32>> StepState<Adam8, f32, P> for Adam8State<'_> {
    fn step_group(
        &mut self,
        rule: &Adam8,
        exec: &Exec,
        step: u64,
        (c, s): (usize, usize),
        params: &mut [P],
        grads: &[f32],
    ) -> Result<(), Error> {
        let n = params.len();
        let codes = &mut self.codes[c..c + Adam8::codes_len(n)];
        let scales = &mut self.scales[s..s + Adam8::scales_len(n)];
        rule.step_with(exec, step, params, grads, codes, scales)
    }
}

impl SaveState<Adam8, f32> for Adam8State<'_> {
    fn tag() -> u8 {
        ADAM8_TAG
    }

    fn put(&self, w: &mut Writer<'_>) -> Result<(), CheckpointError> {
        w.put_u64(self.codes.len() as u64)?;
        w.put_bytes(self.codes)?;
        w.put_u64(self.scales.len() as u64)?;
        w.put_f32s(self.scales)
    }

    fn get(
        &mut self,
        r: &mut Reader<'_>,
        (codes, scales): (usize, usize),
        write: bool,
    ) -> Result<(), CheckpointError> {
        r.expect_u64("codes length", codes as u64)?;
        let saved_codes = r.get_bytes(codes)?;
        r.expect_u64("scales length", scales as u64)?;
        if write {
            r.get_f32s(self.scales)?;
            self.codes.copy_from_slice(saved_codes);
            Ok(())
        } else {
            r.get_bytes(4 * scales).map(|_| ())
        }
    }
}

/// The state format tag of a [`MuonState`] whose buffers are stored as `format`: `7` in the
/// compute format (`f32` or `f64`), `8` bf16, `9` f16, `10` Kahan-compensated bf16.
fn muon_tag(format: Format) -> u8 {
    match format {
        Format::F32 | Format::F64 => 7,
        Format::Bf16 => 8,
        Format::F16 => 9,
        Format::KahanBf16 => 10,
    }
}

/// Where a trainable group's part of a [`MuonState`] starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MuonAt {
    /// The buffers' elements before it.
    buffers: usize,
    /// The trainable groups before it (its shape's index).
    group: usize,
    /// The largest workspace of the groups before it.
    workspace: usize,
}

/// [`MuonWithFallback`]'s state: each trainable group's part is its buffers; its shape is
/// `shapes[group]`, and every group shares the workspace.
impl<T, F, S> StateLayout<MuonWithFallback<T, F>, T> for MuonState<'_, T, S>
where
    T: Element + Storage<T>,
    F: Rule<T>,
{
    type At = MuonAt;
    const START: MuonAt = MuonAt {
        buffers: 0,
        group: 0,
        workspace: 0,
    };

    fn after(&self, rule: &MuonWithFallback<T, F>, at: MuonAt, _: usize) -> MuonAt {
        let (buffers, workspace) = match self.shapes.get(at.group) {
            Some(&shape) => {
                // Saturating: the shapes are not yet checked against the groups here (a length
                // that saturates fails the buffers' check, or sizes no checkpoint buffer).
                let part = match shape {
                    ParamShape::Vector(n) => rule.fallback.state_buffers().saturating_mul(n),
                    ParamShape::Matrix { rows, cols } => Muon::<T>::matrix_state_len(rows, cols),
                };
                (
                    at.buffers.saturating_add(part),
                    at.workspace.max(shape_workspace_len(shape)),
                )
            }
            None => (at.buffers, at.workspace),
        };
        MuonAt {
            buffers,
            group: at.group + 1,
            workspace,
        }
    }

    /// The group has a shape, and its length is the group's.
    fn check_group(&self, at: MuonAt, n: usize) -> Result<(), Error> {
        match self.shapes.get(at.group) {
            Some(shape) => check_shape("params", "the group's ParamShape", shape.len(), n),
            // One shape per trainable group: report the count these groups need.
            None => Err(Error::LengthMismatch {
                buffer: "shapes",
                expected: at.group + 1,
                found: self.shapes.len(),
            }),
        }
    }

    fn check(&self, end: MuonAt) -> Result<(), Error> {
        check_len("shapes", end.group, self.shapes.len())?;
        check_len("buffers", end.buffers, self.buffers.len())?;
        check_len("workspace", end.workspace, self.workspace.len())
    }

    /// Saturating at `isize::MAX` (shapes not matching the groups may give any length), so
    /// the frame's length does not overflow and `save` reports a buffer too small.
    fn section_len(&self, end: MuonAt) -> usize {
        let shapes = end.group.saturating_mul(SHAPE_BYTES);
        let buffers = end.buffers.saturating_mul(core::mem::size_of::<S>());
        shapes
            .saturating_add(buffers)
            .saturating_add(16)
            .min(isize::MAX as usize)
    }
}

impl<T, F, P, S> StepState<MuonWithFallback<T, F>, T, P> for MuonState<'_, T, S>
where
    T: Element + Storage<T>,
    F: Rule<T>,
    P: Storage<T>,
    S: Storage<T>,
{
    fn step_group(
        &mut self,
        rule: &MuonWithFallback<T, F>,
        exec: &Exec,
        step: u64,
        at: MuonAt,
        params: &mut [P],
        grads: &[T],
    ) -> Result<(), Error> {
        let shape = self.shapes[at.group];
        let part = &mut self.buffers[at.buffers..at.buffers + rule.state_len(shape)];
        let workspace = &mut self.workspace[..shape_workspace_len(shape)];
        rule.step_with(exec, step, shape, params, grads, part, workspace)
    }
}

/// The bytes of one shape in a checkpoint: a kind byte and two `u64`s.
const SHAPE_BYTES: usize = 1 + 8 + 8;

/// A shape as (kind, first, second): `(0, n, 0)` for a vector, `(1, rows, cols)` for a matrix.
fn shape_fields(shape: ParamShape) -> (u8, u64, u64) {
    match shape {
        ParamShape::Vector(n) => (0, n as u64, 0),
        ParamShape::Matrix { rows, cols } => (1, rows as u64, cols as u64),
    }
}

impl<T, F, S> SaveState<MuonWithFallback<T, F>, T> for MuonState<'_, T, S>
where
    T: Element + Storage<T>,
    F: Rule<T>,
    S: Storage<T> + StateCodec,
{
    fn tag() -> u8 {
        muon_tag(S::FORMAT)
    }

    fn put(&self, w: &mut Writer<'_>) -> Result<(), CheckpointError> {
        w.put_u64(self.shapes.len() as u64)?;
        for &shape in self.shapes {
            let (kind, a, b) = shape_fields(shape);
            w.put_u8(kind)?;
            w.put_u64(a)?;
            w.put_u64(b)?;
        }
        w.put_u64(self.buffers.len() as u64)?;
        S::put(w, self.buffers)
    }

    fn get(&mut self, r: &mut Reader<'_>, end: MuonAt, write: bool) -> Result<(), CheckpointError> {
        r.expect_u64("shape count", end.group as u64)?;
        for &shape in self.shapes {
            let (kind, a, b) = shape_fields(shape);
            r.expect_u64_u8("shape kind", kind)?;
            r.expect_u64("shape rows or length", a)?;
            r.expect_u64("shape columns", b)?;
        }
        r.expect_u64("buffers length", end.buffers as u64)?;
        if write {
            S::get(r, self.buffers)
        } else {
            r.get_bytes(end.buffers * core::mem::size_of::<S>())
                .map(|_| ())
        }
    }
}

/// The trainable parameter count.
fn trainable<P, T>(groups: &[Group<'_, P, T>]) -> usize {
    groups
        .iter()
        .filter(|g| !g.settings.frozen)
        .map(|g| g.params.len())
        .sum()
}

/// A storage format's tag in a checkpoint.
fn format_tag(f: Format) -> u8 {
    match f {
        Format::F32 => 1,
        Format::F64 => 2,
        Format::Bf16 => 3,
        Format::F16 => 4,
        Format::KahanBf16 => 5,
    }
}

/// How a storage format is written into and read from a checkpoint.
pub trait StateCodec: Sized + Copy {
    /// Writes `xs` little-endian.
    fn put(w: &mut Writer<'_>, xs: &[Self]) -> Result<(), CheckpointError>;
    /// Reads `out.len()` values; on error `out` is untouched.
    fn get(r: &mut Reader<'_>, out: &mut [Self]) -> Result<(), CheckpointError>;
}

macro_rules! codec {
    ($t:ty, $put:ident, $get:ident) => {
        impl StateCodec for $t {
            fn put(w: &mut Writer<'_>, xs: &[Self]) -> Result<(), CheckpointError> {
                w.$put(xs)
            }
            fn get(r: &mut Reader<'_>, out: &mut [Self]) -> Result<(), CheckpointError> {
                r.$get(out)
            }
        }
    };
}
codec!(f32, put_f32s, get_f32s);
codec!(f64, put_f64s, get_f64s);
codec!(half::bf16, put_bf16s, get_bf16s);
codec!(half::f16, put_f16s, get_f16s);

impl StateCodec for crate::storage::KahanBf16 {
    fn put(w: &mut Writer<'_>, xs: &[Self]) -> Result<(), CheckpointError> {
        let needed = 4 * xs.len();
        if w.remaining() < needed {
            return Err(CheckpointError::BufferTooSmall {
                needed: w.position() + needed,
                available: w.position() + w.remaining(),
            });
        }
        for x in xs {
            w.put_u32(x.hi.to_bits() as u32 | (x.lo.to_bits() as u32) << 16)?;
        }
        Ok(())
    }
    fn get(r: &mut Reader<'_>, out: &mut [Self]) -> Result<(), CheckpointError> {
        let bytes = r.get_bytes(4 * out.len())?;
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            x.hi = half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]]));
            x.lo = half::bf16::from_bits(u16::from_le_bytes([b[2], b[3]]));
        }
        Ok(())
    }
}

/// Counts the bytes of formatted text.
struct Count(usize);
impl fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// The length of `x`'s `Debug` text.
fn debug_len(x: &dyn Debug) -> usize {
    let mut c = Count(0);
    // Writing into a counter cannot fail.
    let _ = write!(c, "{x:?}");
    c.0
}

/// Streams formatted text into a checkpoint writer.
struct Put<'w, 'a>(&'w mut Writer<'a>, Result<(), CheckpointError>);
impl fmt::Write for Put<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.1.is_ok() {
            self.1 = self.0.put_bytes(s.as_bytes());
        }
        Ok(())
    }
}

/// Writes `x`'s `Debug` text with its length.
fn put_text(w: &mut Writer<'_>, x: &dyn Debug) -> Result<(), CheckpointError> {
    w.put_u32(debug_len(x) as u32)?;
    let mut p = Put(w, Ok(()));
    let _ = write!(p, "{x:?}");
    p.1
}

/// Compares formatted text with expected bytes.
struct Same<'a> {
    expected: &'a [u8],
    pos: usize,
    equal: bool,
}
impl fmt::Write for Same<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.pos + s.len();
        self.equal &= self.expected.get(self.pos..end) == Some(s.as_bytes());
        self.pos = end;
        Ok(())
    }
}

/// Reads a text and checks that it is `x`'s `Debug` text.
fn expect_text(
    r: &mut Reader<'_>,
    field: &'static str,
    x: &dyn Debug,
) -> Result<(), CheckpointError> {
    let n = r.get_u32()? as usize;
    let saved = r.get_bytes(n)?;
    let mut same = Same {
        expected: saved,
        pos: 0,
        equal: true,
    };
    let _ = write!(same, "{x:?}");
    if same.equal && same.pos == saved.len() {
        Ok(())
    } else {
        Err(CheckpointError::InvalidValue { field })
    }
}

trait ExpectU8 {
    fn expect_u64_u8(&mut self, field: &'static str, expected: u8) -> Result<(), CheckpointError>;
}
impl ExpectU8 for Reader<'_> {
    fn expect_u64_u8(&mut self, field: &'static str, expected: u8) -> Result<(), CheckpointError> {
        let found = self.get_u8()?;
        if found == expected {
            Ok(())
        } else {
            Err(CheckpointError::WrongShape {
                field,
                expected: expected as u64,
                found: found as u64,
            })
        }
    }
}
