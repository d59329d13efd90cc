//! Update rules: one module per family, each written once over the internal vector abstraction,
//! all behind one interface, [`Rule`].
//!
//! Conventions shared by every rule:
//! - hyper-parameters are plain `pub` fields of a config struct with PyTorch-named constructors
//!   (`Adam::adamw(lr, λ)`, `Sgd::new(lr, μ)`, …); variants such as AMSGrad, Nesterov and the
//!   weight-decay form are fields of that struct, not separate entry points;
//! - a rule keeps [`Rule::state_buffers`] state buffers of `params.len()` elements each, passed as
//!   one slice, buffer after buffer (Adam: `m`, then `v`, then AMSGrad's `v̂`), zero before step 1;
//! - [`Rule::step`] runs on [`Exec::active`] with `f32`/`f64` buffers; [`Rule::step_with`] takes an
//!   [`Exec`] (backend and rounding) and stores parameters, gradients and state in any
//!   [`Storage`] format (`f32`, `bf16`, `f16` for `f32` rules);
//! - hyper-parameters, the step number and every length are checked on every call; a rejected call
//!   returns an [`Error`] before any element is written;
//! - results are bit-identical on every backend (the SIMD lanes perform exactly the scalar
//!   reference's operations in the same order, with no FMA contraction), and for a given input
//!   identical from run to run;
//! - NaN and ±Inf in gradients or state follow IEEE 754 through the stated equations; each rule's
//!   documentation says where they end up. Use [`all_finite`](crate::vector::all_finite) to skip a
//!   poisoned step.
//!
//! ## 16-bit storage
//! With a `bf16`/`f16` format for some buffers, every buffer is widened to `f32` (exact), the `f32`
//! rule runs unchanged (the same code), and each written 16-bit buffer is rounded once when it is
//! stored, with the context's [`Rounding`]: so the result equals, bit for bit on
//! every backend, "widen, run the `f32` rule, round each written 16-bit buffer". Intermediate
//! values inside one step (Adam's new `m` and `v` feeding the parameter update) are unrounded.
//! Under stochastic rounding the written 16-bit buffers draw bits in order: parameters first,
//! then the state buffers in their order (see [`crate::storage`]).

use core::marker::PhantomData;

use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::error::check_len;
use crate::storage::{Rounding, Storage};
use crate::{Element, Error, Exec};

pub mod adafactor;
pub mod adam;
pub mod adam8;
pub mod averaging;
pub mod gd;
pub mod lamb;
pub mod muon;
mod partials;
pub mod schedule_free;
pub mod sign;

/// The interface every update rule implements.
///
/// ```
/// use descent_kernels::{Adam, Exec, Rule, Rounding};
///
/// let adam = Adam::adamw(1e-3_f32, 0.01);
/// let n = 100;
/// let (mut params, grads) = (vec![1.0_f32; n], vec![0.5_f32; n]);
/// let mut state = vec![0.0_f32; adam.state_buffers() * n]; // m, then v
/// for step in 1..=10 {
///     adam.step(step, &mut params, &grads, &mut state)?;
/// }
///
/// // bf16 parameters and state, stochastic rounding keyed by (seed, step):
/// let mut p16 = vec![half::bf16::ONE; n];
/// let mut s16 = vec![half::bf16::ZERO; adam.state_buffers() * n];
/// for step in 1..=10 {
///     let exec = Exec::active().with_rounding(Rounding::stochastic(42, step));
///     adam.step_with(&exec, step, &mut p16, &grads, &mut s16)?;
/// }
/// # Ok::<(), descent_kernels::Error>(())
/// ```
pub trait Rule<T: Element = f32>: Copy + core::fmt::Debug {
    /// The rule's name as printed (for example `"adam"`).
    const NAME: &'static str;
    /// The most state buffers any configuration of the rule keeps (AMSGrad's three for Adam):
    /// `MAX_STATE_BUFFERS * n` elements hold the state of `n` parameters whatever the
    /// configuration, usable in array lengths of `static`s.
    const MAX_STATE_BUFFERS: usize;

    /// The state buffers this configuration keeps, each `params.len()` elements, in the order the
    /// rule documents.
    fn state_buffers(&self) -> usize;

    /// The length of the state slice for `n` parameters: `state_buffers() · n`.
    fn state_len(&self, n: usize) -> usize {
        self.state_buffers() * n
    }

    /// Checks the hyper-parameters.
    fn validate(&self) -> Result<(), Error>;

    /// The learning rate.
    fn lr(&self) -> T;

    /// The same rule with learning rate `lr` (a schedule's value for the step).
    fn with_lr(self, lr: T) -> Self;

    /// The same rule without weight decay (for parameter groups such as biases).
    fn without_weight_decay(self) -> Self;

    /// Step number `step` (from 1) with the context `exec`: parameters stored as `P`, gradients
    /// as `G`, the state buffers as `S` (see the module documentation for 16-bit formats).
    /// `state` holds [`Rule::state_buffers`] buffers of `params.len()` elements, one after the
    /// other. Validates everything before writing.
    fn step_with<P: Storage<T>, G: Storage<T>, S: Storage<T>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
        state: &mut [S],
    ) -> Result<(), Error>;

    /// [`Rule::step_with`] on [`Exec::active`] with every buffer in the compute type.
    fn step(&self, step: u64, params: &mut [T], grads: &[T], state: &mut [T]) -> Result<(), Error>
    where
        T: Storage<T>,
    {
        self.step_with(&Exec::active(), step, params, grads, state)
    }
}

/// The hyper-parameters of an update rule as [`Optimizer`](crate::train::Optimizer) sets them per
/// parameter group: the rule's name and validation, its learning rate, and the same rule without
/// weight decay. What the rule's state is and how a step uses it is not part of this trait.
///
/// Every [`Rule`] is one, with [`Rule`]'s items (a blanket implementation); so is
/// [`Adam8`](adam8::Adam8), whose state (codes and block scales) is not a [`Rule`]'s. The items
/// have [`Rule`]'s names, so with both traits in scope a call on a concrete [`Rule`] is ambiguous:
/// import this trait where a rule that is not a [`Rule`] is configured, and write
/// `Rule::with_lr(rule, lr)` where both are imported.
///
/// ```
/// use descent_kernels::rules::RuleConfig;
/// use descent_kernels::{Adam8, WeightDecay};
///
/// let bias = Adam8::adamw(1e-3, 0.01).with_lr(5e-4).without_weight_decay();
/// assert_eq!((bias.lr(), bias.weight_decay), (5e-4, WeightDecay::None));
/// assert_eq!(<Adam8 as RuleConfig>::NAME, "adam8");
/// ```
pub trait RuleConfig<T: Element = f32>: Copy + core::fmt::Debug {
    /// The rule's name as printed (for example `"adam"`).
    const NAME: &'static str;

    /// Checks the hyper-parameters.
    fn validate(&self) -> Result<(), Error>;

    /// The learning rate.
    fn lr(&self) -> T;

    /// The same rule with learning rate `lr` (a schedule's value for the step).
    fn with_lr(self, lr: T) -> Self;

    /// The same rule without weight decay (for parameter groups such as biases).
    fn without_weight_decay(self) -> Self;
}

impl<T: Element, R: Rule<T>> RuleConfig<T> for R {
    const NAME: &'static str = <R as Rule<T>>::NAME;

    fn validate(&self) -> Result<(), Error> {
        Rule::validate(self)
    }

    fn lr(&self) -> T {
        Rule::lr(self)
    }

    fn with_lr(self, lr: T) -> Self {
        Rule::with_lr(self, lr)
    }

    fn without_weight_decay(self) -> Self {
        Rule::without_weight_decay(self)
    }
}

/// The `lr`, `with_lr` and `without_weight_decay` methods of a rule whose config struct has the
/// fields `lr` and `weight_decay` (`$none`: the weight decay that means none).
macro_rules! rule_accessors {
    ($rule:ident, $none:expr) => {
        fn lr(&self) -> T {
            self.lr
        }
        fn with_lr(self, lr: T) -> Self {
            $rule { lr, ..self }
        }
        fn without_weight_decay(self) -> Self {
            $rule {
                weight_decay: $none,
                ..self
            }
        }
    };
}
pub(crate) use rule_accessors;

/// The checks every step makes before it writes: hyper-parameters, `step >= 1`, and the lengths
/// of the gradients and the state.
pub(crate) fn check_step<T: Element, R: Rule<T>>(
    rule: &R,
    step: u64,
    n: usize,
    grads_len: usize,
    state_len: usize,
) -> Result<(), Error> {
    rule.validate()?;
    if step == 0 {
        return Err(Error::InvalidStep { step });
    }
    check_len("grads", n, grads_len)?;
    check_len("state", rule.state_len(n), state_len)
}

/// The per-vector math of a rule with `RW` written buffers (the parameters, then the state
/// buffers) and the gradient, with its per-call constants.
pub(crate) trait Body<T: Element, const RW: usize>: Copy {
    /// Calls `f` with copies of `self` in which the choices fixed for the call (weight-decay form,
    /// flags) are constants at each call site, so that the loop compiled for each has no
    /// per-element branch on them. The default does not specialise.
    #[inline(always)]
    fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        f(self)
    }

    /// Updates one vector of the written buffers from the gradient `g`.
    fn apply<S: Simd<T>>(self, s: S, w: &mut [S::V; RW], g: S::V);
}

/// Runs a rule body over parameters, gradients and state on `exec`. The caller has checked every
/// length ([`check_step`]) and that `state` holds `RW − 1` buffers of `params.len()` elements.
pub(crate) fn run_step<T, P, G, S, B, const RW: usize>(
    exec: &Exec,
    params: &mut [P],
    grads: &[G],
    state: &mut [S],
    body: B,
) where
    T: Element,
    P: Storage<T>,
    G: Storage<T>,
    S: Storage<T>,
    B: Body<T, RW>,
{
    let n = params.len();
    debug_assert!(grads.len() == n && state.len() >= (RW - 1) * n);
    let st = state.as_mut_ptr();
    let rw: [*mut u8; RW] = core::array::from_fn(|k| {
        if k == 0 {
            params.as_mut_ptr().cast()
        } else {
            // SAFETY: state holds at least (RW − 1)·n elements, so buffer k − 1 starts inside it
            // (or one past its end when n = 0).
            unsafe { st.add((k - 1) * n).cast() }
        }
    });
    let draw = match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    };
    exec.run(StepKernel::<P, S, G, B, RW> {
        n,
        rw,
        g: grads.as_ptr().cast(),
        draw,
        body,
        _types: PhantomData,
    })
}

/// A rule body over `n` elements: `rw[0]` stored as `P`, `rw[1..]` as `S`, the gradient as `G`.
struct StepKernel<P, S, G, B, const RW: usize> {
    n: usize,
    rw: [*mut u8; RW],
    g: *const u8,
    draw: Option<Draw<RW>>,
    body: B,
    _types: PhantomData<(P, S, G)>,
}

impl<T, P, S, G, B, const RW: usize> Kernel<T> for StepKernel<P, S, G, B, RW>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
    B: Body<T, RW>,
{
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (n, rw, ro, draw) = (self.n, self.rw, [self.g], self.draw);
        // One loop per combination of the per-call choices when every buffer is in a compute
        // type; one general loop (the choices tested per element) when any is narrow, and
        // always with `small-code`.
        <Policy<T, P, S, G> as LoopPolicy>::apply(
            self.body,
            #[inline(always)]
            |b| one_loop::<T, V, P, S, G, B, RW>(s, n, rw, ro, draw, b),
        )
    }
}

/// The loop policy of a call with buffers in `P`, `S` and `G`: specialised only if all three are.
type Policy<T, P, S, G> =
    <<<P as Storage<T>>::Loops as LoopPolicy>::And<<S as Storage<T>>::Loops> as LoopPolicy>::And<
        <G as Storage<T>>::Loops,
    >;

/// Whether a rule's loop is specialised per call choice (see [`Storage::Loops`]); combined over
/// a call's formats with [`LoopPolicy::And`].
#[doc(hidden)]
pub trait LoopPolicy {
    /// Specialised only if both are.
    type And<O: LoopPolicy>: LoopPolicy;
    /// Runs `f` on `body`, specialised or not.
    #[doc(hidden)]
    #[allow(private_bounds)]
    fn apply<T: Element, B: Body<T, RW>, const RW: usize>(body: B, f: impl FnMut(B));
}

/// Loops specialised per call choice (unless the `small-code` feature is on).
#[doc(hidden)]
pub struct Specialized;
/// One general loop.
#[doc(hidden)]
pub struct General;

impl LoopPolicy for Specialized {
    type And<O: LoopPolicy> = O;
    #[inline(always)]
    #[allow(private_bounds)]
    fn apply<T: Element, B: Body<T, RW>, const RW: usize>(body: B, mut f: impl FnMut(B)) {
        if cfg!(feature = "small-code") {
            f(body)
        } else {
            body.specialize(f)
        }
    }
}

impl LoopPolicy for General {
    type And<O: LoopPolicy> = General;
    #[inline(always)]
    #[allow(private_bounds)]
    fn apply<T: Element, B: Body<T, RW>, const RW: usize>(body: B, mut f: impl FnMut(B)) {
        f(body)
    }
}

/// The loop of a [`StepKernel`] with the body `b`.
#[inline(always)]
fn one_loop<T, V, P, S, G, B, const RW: usize>(
    s: V,
    n: usize,
    rw: [*mut u8; RW],
    ro: [*const u8; 1],
    draw: Option<Draw<RW>>,
    b: B,
) where
    T: Element,
    V: Simd<T>,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
    B: Body<T, RW>,
{
    // SAFETY: `run_step`'s caller checked that the parameters, the gradient and each of the
    // RW − 1 state buffers hold n elements of their types; the parameters and the disjoint state
    // ranges come from distinct exclusive borrows, so no written range overlaps another or the
    // gradient.
    unsafe {
        zip_stored::<T, V, P, S, G, RW, 1>(
            s,
            n,
            rw,
            ro,
            draw,
            #[inline(always)]
            |w, [g], _| b.apply(s, w, g),
        )
    }
}

/// How weight decay enters a rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightDecay<T> {
    /// No weight decay.
    None,
    /// L2 regularisation added to the gradient: `g ← g + λ·p` (PyTorch's `weight_decay` in `SGD`
    /// and `Adam`).
    L2(T),
    /// Decoupled decay applied to the parameters before the update: `p ← p·(1 − lr·λ)` (PyTorch's
    /// `AdamW`, Loshchilov & Hutter 2019).
    Decoupled(T),
}

impl<T: Element> WeightDecay<T> {
    pub(crate) fn validate(self) -> Result<(), Error> {
        match self {
            WeightDecay::None => Ok(()),
            WeightDecay::L2(l) | WeightDecay::Decoupled(l) => non_negative("weight_decay", l),
        }
    }

    /// The splatted constants of the two forms: `(Some(λ), None)` for L2, `(None, Some(1 − lr·λ))`
    /// for decoupled decay, `(None, None)` without decay.
    #[inline(always)]
    pub(crate) fn vectors<S: Simd<T>>(self, s: S, lr: T) -> (Option<S::V>, Option<S::V>) {
        match self {
            WeightDecay::None => (None, None),
            WeightDecay::L2(l) => (Some(s.splat(l)), None),
            WeightDecay::Decoupled(_) => (None, Some(s.splat(self.decoupled_factor(lr)))),
        }
    }

    /// Calls `f` with the weight decay rebuilt at one call site per form, so that which form
    /// applies is a compile-time constant inside each (see [`Body::specialize`]).
    #[inline(always)]
    pub(crate) fn specialize<R>(self, mut f: impl FnMut(Self) -> R) -> R {
        match self {
            WeightDecay::None => f(WeightDecay::None),
            WeightDecay::L2(l) => f(WeightDecay::L2(l)),
            WeightDecay::Decoupled(l) => f(WeightDecay::Decoupled(l)),
        }
    }

    /// The parameter multiplier `1 − lr·λ` of decoupled decay (`1` otherwise).
    pub(crate) fn decoupled_factor(self, lr: T) -> T {
        match self {
            WeightDecay::Decoupled(l) => T::one() - lr * l,
            _ => T::one(),
        }
    }
}

/// Applies weight decay to one vector of parameters `p` and gradients `g`, as returned by
/// [`WeightDecay::vectors`]: decoupled decay scales `p`, L2 adds `λ·p` to `g`. Returns `(p, g)`.
#[inline(always)]
pub(crate) fn apply_decay<T: Element, S: Simd<T>>(
    s: S,
    p: S::V,
    g: S::V,
    l2: Option<S::V>,
    decay: Option<S::V>,
) -> (S::V, S::V) {
    let p = match decay {
        Some(c) => s.mul(p, c),
        None => p,
    };
    let g = match l2 {
        Some(l) => s.add(g, s.mul(l, p)),
        None => g,
    };
    (p, g)
}

/// Calls `f` with `flag` as a compile-time constant at each of its two call sites (see
/// [`Body::specialize`]).
#[inline(always)]
pub(crate) fn specialize_flag<R>(flag: bool, mut f: impl FnMut(bool) -> R) -> R {
    if flag {
        f(true)
    } else {
        f(false)
    }
}

/// `x` must be finite and `>= 0`.
pub(crate) fn non_negative<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x.is_finite() && x >= T::zero() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be finite and >= 0",
        })
    }
}

/// `x` must be finite and `> 0`.
pub(crate) fn positive<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x.is_finite() && x > T::zero() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be finite and > 0",
        })
    }
}

/// `x` must lie in `[0, 1)`.
pub(crate) fn unit_half_open<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x >= T::zero() && x < T::one() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must lie in [0, 1)",
        })
    }
}

/// `x` must lie in `[0, 1]`.
pub(crate) fn unit_closed<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x >= T::zero() && x <= T::one() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must lie in [0, 1]",
        })
    }
}
