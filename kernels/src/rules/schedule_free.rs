//! Schedule-Free AdamW and SGD (Defazio et al. 2024, "The Road Less Scheduled"), matching
//! `schedulefree.AdamWScheduleFree` and `schedulefree.SGDScheduleFree` of
//! `facebookresearch/schedule_free` (`adamw_schedulefree.py`, `sgd_schedulefree.py`; the version
//! that folds Adam's second bias correction into the learning rate).
//!
//! ## Why not [`Rule`](crate::Rule)
//! Schedule-Free keeps, besides per-element state, three scalars that change every step (the step
//! count `k`, `lr_max`, `weight_sum`), and its parameters alternate between two points: `y` (where
//! gradients are taken, during training) and `x` (the averaged point, for evaluation and
//! checkpoints). [`Rule::step_with`](crate::Rule::step_with) takes `&self` and one state slice of
//! `state_buffers · n` elements in a storage format, so it can hold neither evolving `f64`
//! scalars nor the point the parameters are at. Here the parameters, the state and the scalars
//! ([`ScheduleFreeState`], a small `Copy` value) are held by one of two views:
//! - [`TrainView`]: the parameters hold `y`; only it has `step`;
//! - [`EvalView`]: the parameters hold `x`; it has no `step`.
//!
//! [`TrainView::eval`] consumes the training view and returns the evaluation view after moving the
//! parameters from `y` to `x` in place; [`EvalView::train`] goes back. Stepping at `x`, or evaluating
//! at `y` through a view, does not type-check: the reference's most common error (forgetting
//! `optimizer.eval()`) cannot be written. Both switches are one pass, allocation-free.
//! The views borrow the parameters and the state; dropping a view leaves the parameters at the
//! point it held (resume with [`TrainView::resume`] or [`EvalView::resume`], passing
//! [`TrainView::counters`]).
//!
//! ## Storage
//! As every [`Rule`](crate::Rule), the rules compute in `T` (`f32` or `f64`) over buffers in any
//! [`Storage`] format: the views take parameters stored as `P` and state as `S` (both default to
//! `T`), the step a gradient stored as `G`; each loaded value is widened exactly and each stored
//! value rounded, to nearest even, or stochastically when the context's rounding is
//! [`Rounding::Stochastic`]. Under stochastic rounding the view sets
//! the key's counter itself, so that successive calls draw fresh bits: step `k + 1` draws with
//! counter `2(k + 1)`, a point switch after `k` steps with counter `2k + 1` (seed, stream and
//! offset are the caller's). With 16-bit parameters every switch rounds the parameters once more,
//! so switch only to evaluate or save, as the reference intends.
//!
//! ## Per-step scalars (in `f64`, as the reference's Python floats)
//! With `k` the number of steps taken so far (`0` before the first):
//! ```text
//! sched      = (k + 1) / warmup_steps  if k < warmup_steps, else 1
//! lr_k       = lr · sched · √(1 − β2^(k+1))     (AdamW)      lr · sched   (SGD)
//! lr_max     ← max(lr_max, lr_k)                (lr_max starts at −1)
//! weight     = (k + 1)^r · lr_max^weight_lr_power
//! weight_sum ← weight_sum + weight
//! c          = weight / weight_sum, or 0 if weight_sum = 0
//! ```
//! `c`, `lr_k` and `lr_k·(β·(1 − c) − 1)` (β: `β1`, or SGD's momentum) are then rounded to the
//! element type, as PyTorch rounds its `alpha` and `weight` arguments.
//!
//! ## Per element, one pass
//! At the first step (`k = 0`) the rule first sets `z ← y` and (AdamW) `v ← 0`, as the reference
//! creates its state, so the state's content before the first step does not matter.
//! ```text
//! AdamW:  v ← β2·v + (1 − β2)·g·g
//!         d = g / (√v + ε)         d ← d + λ·y   (only if λ ≠ 0; decay taken at y)
//! SGD:    d = g                    d ← d + λ·y   (only if λ ≠ 0)
//! both:   y ← lerp(y, z, c)
//!         y ← y + (lr_k·(β·(1 − c) − 1))·d
//!         z ← z − lr_k·d
//! ```
//! `lerp(a, b, w)` is PyTorch's: `a + w·(b − a)` for `w < 0.5`, else `b − (b − a)·(1 − w)`.
//! The point switches are `x = lerp(y, z, 1 − 1/β)` ([`TrainView::eval`]) and `y = lerp(x, z, 1 − β)`
//! ([`EvalView::train`]); before the first step there is no `z` and both leave the parameters as they
//! are (as the reference does).
//!
//! The per-element operations are those of the reference in its order; PyTorch's `addcmul`
//! rounds `(1 − β2)·g·g` in another order, so results agree with the reference to rounding, not
//! bit for bit. Across this crate's backends they are bit-identical (no FMA contraction).
//! IEEE behaviour: a NaN gradient makes that element's `v`, `y` and `z` NaN; other elements are
//! unaffected (no per-tensor reduction).
//!
//! ```
//! use descent_kernels::{ScheduleFreeAdamW, TrainView};
//!
//! let rule = ScheduleFreeAdamW::new(1e-2_f32);
//! let (mut params, mut state) = (vec![1.0_f32; 8], vec![0.0_f32; 2 * 8]);
//! let mut train = TrainView::new(rule, &mut params, &mut state)?;
//! for _ in 0..10 {
//!     let grads: Vec<f32> = train.params().iter().map(|y| 2.0 * y).collect(); // at y
//!     train.step(&grads)?;
//! }
//! let eval = train.eval(); // parameters now hold x
//! let _loss: f32 = eval.params().iter().map(|x| x * x).sum();
//! let _train = eval.train(); // back to y
//! # Ok::<(), descent_kernels::Error>(())
//! ```
//!
//! Stepping at the evaluation point does not compile (`EvalView` has no `step`):
//! ```compile_fail
//! use descent_kernels::{ScheduleFreeSgd, TrainView};
//!
//! let (mut params, mut state) = (vec![1.0_f32; 4], vec![0.0_f32; 4]);
//! let train = TrainView::new(ScheduleFreeSgd::new(0.1_f32), &mut params, &mut state).unwrap();
//! let mut eval = train.eval();
//! eval.step(&[0.5; 4]).unwrap();
//! ```

use core::marker::PhantomData;

use super::{non_negative, positive, specialize_flag, unit_half_open};
use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::error::check_len;
use crate::storage::{Rounding, StochasticKey, Storage};
use crate::{Element, Error, Exec};

/// The most steps a Schedule-Free view counts: `2^63 − 1`, so that the counters of the views'
/// stochastic keys (`2·k` for step `k`, `2·k + 1` for a switch after it) stay inside `u64`. A
/// step past it, or resuming from counters above it, is [`Error::InvalidStep`] and writes nothing.
pub const MAX_STEPS: u64 = u64::MAX / 2;

/// The scalars Schedule-Free carries from step to step (the reference's `k`, `lr_max` and
/// `weight_sum` of a parameter group). Owned by the views; read it with [`TrainView::counters`] for a
/// checkpoint and pass it back to [`TrainView::resume`] / [`EvalView::resume`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleFreeState {
    /// Steps taken so far.
    pub k: u64,
    /// The largest scheduled learning rate so far (`−1` before the first step).
    pub lr_max: f64,
    /// The sum of the averaging weights so far.
    pub weight_sum: f64,
}

impl ScheduleFreeState {
    /// Before the first step: `k = 0`, `lr_max = −1`, `weight_sum = 0` (the reference's defaults).
    pub const fn new() -> Self {
        ScheduleFreeState {
            k: 0,
            lr_max: -1.0,
            weight_sum: 0.0,
        }
    }
}

impl Default for ScheduleFreeState {
    fn default() -> Self {
        Self::new()
    }
}

/// Schedule-Free AdamW (`schedulefree.AdamWScheduleFree`). State: `z`, then `v`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleFreeAdamW<T> {
    /// Learning rate, finite and `>= 0` (reference default `0.0025`).
    pub lr: T,
    /// Interpolation `β1` in `(0, 1)` (the point switch divides by it).
    pub beta1: T,
    /// Second-moment decay `β2` in `[0, 1)`.
    pub beta2: T,
    /// `ε`, finite and `> 0`, outside the square root.
    pub eps: T,
    /// Weight decay `λ`, finite and `>= 0`, added to the normalised gradient at `y`.
    pub weight_decay: T,
    /// Linear warm-up steps (`0`: none).
    pub warmup_steps: u64,
    /// Polynomial weighting power `r`, finite and `>= 0` (default `0`).
    pub r: T,
    /// Power of `lr_max` in the weights, finite and `>= 0` (default `2`).
    pub weight_lr_power: T,
}

/// Schedule-Free SGD (`schedulefree.SGDScheduleFree`). State: `z`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleFreeSgd<T> {
    /// Learning rate, finite and `>= 0` (reference default `1.0`).
    pub lr: T,
    /// Interpolation momentum in `(0, 1)` (default `0.9`).
    pub momentum: T,
    /// Weight decay `λ` (L2, added to the gradient at `y`), finite and `>= 0`.
    pub weight_decay: T,
    /// Linear warm-up steps (`0`: none).
    pub warmup_steps: u64,
    /// Polynomial weighting power `r`, finite and `>= 0` (default `0`).
    pub r: T,
    /// Power of `lr_max` in the weights, finite and `>= 0` (default `2`).
    pub weight_lr_power: T,
}

impl<T: Element> ScheduleFreeAdamW<T> {
    /// The reference's defaults: `β = (0.9, 0.999)`, `ε = 1e-8`, no decay, no warm-up, `r = 0`,
    /// `weight_lr_power = 2`.
    pub fn new(lr: T) -> Self {
        ScheduleFreeAdamW {
            lr,
            beta1: T::from_f64_round(0.9),
            beta2: T::from_f64_round(0.999),
            eps: T::from_f64_round(1e-8),
            weight_decay: T::zero(),
            warmup_steps: 0,
            r: T::zero(),
            weight_lr_power: T::from_f64_round(2.0),
        }
    }
}

impl<T: Element> ScheduleFreeSgd<T> {
    /// The reference's defaults: momentum `0.9`, no decay, no warm-up, `r = 0`,
    /// `weight_lr_power = 2`.
    pub fn new(lr: T) -> Self {
        ScheduleFreeSgd {
            lr,
            momentum: T::from_f64_round(0.9),
            weight_decay: T::zero(),
            warmup_steps: 0,
            r: T::zero(),
            weight_lr_power: T::from_f64_round(2.0),
        }
    }
}

/// `x` must lie in `(0, 1)`.
fn open_unit<T: Element>(name: &'static str, x: T) -> Result<(), Error> {
    if x > T::zero() && x < T::one() {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must lie in (0, 1)",
        })
    }
}

/// The per-call constants of one step, rounded to `T` (internal).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct StepConsts<T> {
    first: bool,
    c: T,
    one_minus_c: T,
    y_coef: T,
    lr: T,
    beta2: T,
    one_minus_beta2: T,
    eps: T,
    weight_decay: T,
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::ScheduleFreeAdamW<T> {}
    impl<T> Sealed for super::ScheduleFreeSgd<T> {}
}

/// The two Schedule-Free rules (sealed).
pub trait ScheduleFreeRule<T: Element>: Copy + core::fmt::Debug + sealed::Sealed {
    /// State buffers of `n` elements: `z`, then (AdamW) `v`.
    const STATE_BUFFERS: usize;
    /// The state length for `n` parameters.
    fn state_len(n: usize) -> usize {
        Self::STATE_BUFFERS * n
    }
    /// Checks the hyper-parameters.
    fn validate(&self) -> Result<(), Error>;
    /// The interpolation constant `β` of the point switch (`β1`, or the momentum).
    fn beta(&self) -> T;
    /// The scheduled learning rate `lr_k` of step `k + 1` (before rounding).
    #[doc(hidden)]
    fn scheduled_lr(&self, k: u64) -> f64;
    /// `(r, weight_lr_power, weight_decay)`.
    #[doc(hidden)]
    fn weighting(&self) -> (f64, f64, T);
    /// Runs the per-element update (`key`: stochastic rounding with this key, else nearest).
    #[doc(hidden)]
    fn run<P: Storage<T>, S: Storage<T>, G: Storage<T>>(
        &self,
        exec: &Exec,
        c: StepConsts<T>,
        y: &mut [P],
        state: &mut [S],
        g: &[G],
        key: Option<StochasticKey>,
    );
}

/// `(k + 1) / warmup_steps` during warm-up, else 1.
fn warmup(k: u64, warmup_steps: u64) -> f64 {
    if k < warmup_steps {
        (k + 1) as f64 / warmup_steps as f64
    } else {
        1.0
    }
}

impl<T: Element> ScheduleFreeRule<T> for ScheduleFreeAdamW<T> {
    const STATE_BUFFERS: usize = 2;
    fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        open_unit("beta1", self.beta1)?;
        unit_half_open("beta2", self.beta2)?;
        positive("eps", self.eps)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("r", self.r)?;
        non_negative("weight_lr_power", self.weight_lr_power)
    }
    fn beta(&self) -> T {
        self.beta1
    }
    fn weighting(&self) -> (f64, f64, T) {
        (
            self.r.widen(),
            self.weight_lr_power.widen(),
            self.weight_decay,
        )
    }
    fn scheduled_lr(&self, k: u64) -> f64 {
        let bc2 = 1.0 - libm::pow(self.beta2.widen(), (k + 1) as f64);
        self.lr.widen() * warmup(k, self.warmup_steps) * libm::sqrt(bc2)
    }
    fn run<P: Storage<T>, S: Storage<T>, G: Storage<T>>(
        &self,
        exec: &Exec,
        c: StepConsts<T>,
        y: &mut [P],
        state: &mut [S],
        g: &[G],
        key: Option<StochasticKey>,
    ) {
        let c = StepConsts {
            beta2: self.beta2,
            one_minus_beta2: T::one() - self.beta2,
            eps: self.eps,
            ..c
        };
        let (z, v) = state.split_at_mut(y.len());
        exec.run(SfKernel::<T, P, S, G, 3> {
            n: y.len(),
            rw: [
                y.as_mut_ptr().cast(),
                z.as_mut_ptr().cast(),
                v.as_mut_ptr().cast(),
            ],
            g: g.as_ptr().cast(),
            draw: key.map(|k| Draw::new(&k)),
            c,
            _types: PhantomData,
        });
    }
}

impl<T: Element> ScheduleFreeRule<T> for ScheduleFreeSgd<T> {
    const STATE_BUFFERS: usize = 1;
    fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        open_unit("momentum", self.momentum)?;
        non_negative("weight_decay", self.weight_decay)?;
        non_negative("r", self.r)?;
        non_negative("weight_lr_power", self.weight_lr_power)
    }
    fn beta(&self) -> T {
        self.momentum
    }
    fn weighting(&self) -> (f64, f64, T) {
        (
            self.r.widen(),
            self.weight_lr_power.widen(),
            self.weight_decay,
        )
    }
    fn scheduled_lr(&self, k: u64) -> f64 {
        self.lr.widen() * warmup(k, self.warmup_steps)
    }
    fn run<P: Storage<T>, S: Storage<T>, G: Storage<T>>(
        &self,
        exec: &Exec,
        c: StepConsts<T>,
        y: &mut [P],
        state: &mut [S],
        g: &[G],
        key: Option<StochasticKey>,
    ) {
        exec.run(SfKernel::<T, P, S, G, 2> {
            n: y.len(),
            rw: [y.as_mut_ptr().cast(), state.as_mut_ptr().cast()],
            g: g.as_ptr().cast(),
            draw: key.map(|k| Draw::new(&k)),
            c,
            _types: PhantomData,
        });
    }
}

impl<T: Element> StepConsts<T> {
    /// Advances the scalars by one step and returns the step's constants.
    fn advance<R: ScheduleFreeRule<T>>(rule: &R, sf: &mut ScheduleFreeState) -> Self {
        let k = sf.k;
        let lr = rule.scheduled_lr(k);
        sf.lr_max = if lr > sf.lr_max { lr } else { sf.lr_max };
        let (r, power, weight_decay) = rule.weighting();
        let weight = libm::pow((k + 1) as f64, r) * libm::pow(sf.lr_max, power);
        sf.weight_sum += weight;
        let c = if sf.weight_sum == 0.0 {
            0.0
        } else {
            weight / sf.weight_sum
        };
        sf.k = k + 1;
        let c_t = T::from_f64_round(c);
        StepConsts {
            first: k == 0,
            c: c_t,
            one_minus_c: T::one() - c_t,
            y_coef: T::from_f64_round(lr * (rule.beta().widen() * (1.0 - c) - 1.0)),
            lr: T::from_f64_round(lr),
            beta2: T::zero(),
            one_minus_beta2: T::zero(),
            eps: T::one(),
            weight_decay,
        }
    }
}

/// `f(flag)`, specialised for both values of `flag` (one loop each) unless `narrow`: a call
/// with a narrow storage format gets one loop with the flag tested per vector (its loop is bound
/// by the conversions, and code size would multiply), as [`crate::Rule`]'s loops.
#[inline(always)]
fn specialize_unless<R>(narrow: bool, flag: bool, mut f: impl FnMut(bool) -> R) -> R {
    if narrow {
        f(flag)
    } else {
        specialize_flag(flag, f)
    }
}

/// One Schedule-Free step over `n` elements: `rw` = `y` (stored as `P`), `z` (and AdamW's `v`:
/// `RW = 3`, stored as `S`), `g` the gradient (stored as `G`).
struct SfKernel<T, P, S, G, const RW: usize> {
    n: usize,
    rw: [*mut u8; RW],
    g: *const u8,
    draw: Option<Draw<RW>>,
    c: StepConsts<T>,
    _types: PhantomData<(P, S, G)>,
}

impl<T, P, S, G, const RW: usize> Kernel<T> for SfKernel<T, P, S, G, RW>
where
    T: Element,
    P: Storage<T>,
    S: Storage<T>,
    G: Storage<T>,
{
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let c = self.c;
        let (n, rw, g, draw) = (self.n, self.rw, self.g, self.draw);
        let narrow = P::NARROWS || S::NARROWS || G::NARROWS;
        let low = c.c < T::from_f64_round(0.5);
        specialize_unless(
            narrow,
            c.weight_decay != T::zero(),
            #[inline(always)]
            |decay| {
                specialize_unless(
                    narrow,
                    low,
                    #[inline(always)]
                    |low| {
                        // SAFETY: the view checked that `y` (n elements of P), the gradient (n of
                        // G) and each state buffer (n of S) hold n elements; `y` and the disjoint
                        // state buffers come from distinct exclusive borrows, the gradient from a
                        // shared one, so no written range overlaps another or the gradient.
                        unsafe {
                            zip_stored::<T, V, P, S, G, RW, 1>(
                                s,
                                n,
                                rw,
                                [g],
                                draw,
                                #[inline(always)]
                                |w, [g], _| sf_vector(s, &c, decay, low, w, g),
                            )
                        }
                    },
                )
            },
        )
    }
}

/// `lerp(a, b, w)` as PyTorch: `a + w·(b − a)` if `low` (`w < 0.5`), else `b − (b − a)·(1 − w)`.
#[inline(always)]
fn lerp<T: Element, S: Simd<T>>(s: S, low: bool, a: S::V, b: S::V, w: T, one_minus_w: T) -> S::V {
    let d = s.sub(b, a);
    if low {
        s.add(a, s.mul(s.splat(w), d))
    } else {
        s.sub(b, s.mul(d, s.splat(one_minus_w)))
    }
}

/// One vector of a step: `w` = `[y, z]` or `[y, z, v]`.
#[inline(always)]
fn sf_vector<T: Element, S: Simd<T>, const RW: usize>(
    s: S,
    c: &StepConsts<T>,
    decay: bool,
    low: bool,
    w: &mut [S::V; RW],
    g: S::V,
) {
    let y = w[0];
    let z = if c.first { y } else { w[1] };
    let mut d = g;
    if RW == 3 {
        let v = if c.first { s.splat(T::zero()) } else { w[2] };
        let v = s.add(
            s.mul(s.splat(c.beta2), v),
            s.mul(s.splat(c.one_minus_beta2), s.mul(g, g)),
        );
        w[2] = v;
        d = s.div(g, s.add(s.sqrt(v), s.splat(c.eps)));
    }
    if decay {
        d = s.add(d, s.mul(s.splat(c.weight_decay), y));
    }
    let y = lerp(s, low, y, z, c.c, c.one_minus_c);
    w[0] = s.add(y, s.mul(s.splat(c.y_coef), d));
    w[1] = s.sub(z, s.mul(s.splat(c.lr), d));
}

/// The point switch `p ← lerp(p, z, w)` over `n` elements (`p` stored as `P`, `z` as `S`).
struct SwitchKernel<T, P, S> {
    n: usize,
    p: *mut u8,
    z: *const u8,
    draw: Option<Draw<1>>,
    w: T,
    one_minus_w: T,
    _types: PhantomData<(P, S)>,
}

impl<T: Element, P: Storage<T>, S: Storage<T>> Kernel<T> for SwitchKernel<T, P, S> {
    type Output = ();
    #[inline(always)]
    fn run<V: Simd<T>>(self, s: V) {
        let (w, omw, draw) = (self.w, self.one_minus_w, self.draw);
        specialize_unless(
            P::NARROWS || S::NARROWS,
            w < T::from_f64_round(0.5),
            #[inline(always)]
            |low| {
                // SAFETY: the view holds `p` (n elements of P) and `z` (n elements of S), from an
                // exclusive borrow of the parameters and a disjoint part of the state.
                unsafe {
                    zip_stored::<T, V, P, P, S, 1, 1>(
                        s,
                        self.n,
                        [self.p],
                        [self.z],
                        draw,
                        #[inline(always)]
                        |[p], [z], _| *p = lerp(s, low, *p, z, w, omw),
                    )
                }
            },
        )
    }
}

/// The stochastic-rounding key of a view's call with counter `counter`, or none under
/// round-to-nearest.
fn view_key(exec: &Exec, counter: u64) -> Option<StochasticKey> {
    match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(key.with_counter(counter)),
    }
}

/// The parameters, the state and the scalars of a Schedule-Free run, at one of the two points.
#[derive(Debug)]
struct Parts<'a, T, R, P, S> {
    rule: R,
    params: &'a mut [P],
    state: &'a mut [S],
    sf: ScheduleFreeState,
    _compute: PhantomData<T>,
}

impl<'a, T: Element, R: ScheduleFreeRule<T>, P: Storage<T>, S: Storage<T>> Parts<'a, T, R, P, S> {
    fn new(
        rule: R,
        params: &'a mut [P],
        state: &'a mut [S],
        sf: ScheduleFreeState,
    ) -> Result<Self, Error> {
        rule.validate()?;
        check_len("state", R::state_len(params.len()), state.len())?;
        if !(sf.lr_max.is_finite() && sf.weight_sum.is_finite() && sf.weight_sum >= 0.0) {
            return Err(Error::InvalidHyperParameter {
                name: "ScheduleFreeState",
                requirement: "lr_max and weight_sum must be finite, weight_sum >= 0",
            });
        }
        if sf.k > MAX_STEPS {
            return Err(Error::InvalidStep { step: sf.k });
        }
        Ok(Parts {
            rule,
            params,
            state,
            sf,
            _compute: PhantomData,
        })
    }

    /// `p ← lerp(p, z, w)` (nothing before the first step: there is no `z` yet).
    fn switch(&mut self, exec: &Exec, w: f64) {
        if self.sf.k == 0 {
            return;
        }
        let w = T::from_f64_round(w);
        let key = view_key(exec, 2 * self.sf.k + 1);
        exec.run(SwitchKernel::<T, P, S> {
            n: self.params.len(),
            p: self.params.as_mut_ptr().cast(),
            z: self.state.as_ptr().cast(),
            draw: key.map(|k| Draw::new(&k)),
            w,
            one_minus_w: T::one() - w,
            _types: PhantomData,
        });
    }
}

/// The training view: the parameters hold `y`, the point where gradients are taken. See the
/// [module documentation](self).
/// `P` and `S` are the storage formats of the parameters and of the state (default `T`).
#[derive(Debug)]
pub struct TrainView<'a, T, R, P = T, S = T>(Parts<'a, T, R, P, S>);

/// The evaluation view: the parameters hold `x`, the averaged point (evaluate and checkpoint
/// here). See the [module documentation](self).
/// `P` and `S` as in [`TrainView`].
#[derive(Debug)]
pub struct EvalView<'a, T, R, P = T, S = T>(Parts<'a, T, R, P, S>);

impl<'a, T: Element, R: ScheduleFreeRule<T>, P: Storage<T>, S: Storage<T>>
    TrainView<'a, T, R, P, S>
{
    /// Starts a run at `params` (the initial point; no step taken). `state` holds
    /// `R::STATE_BUFFERS · params.len()` elements (any content: the first step initialises it).
    /// Checks the hyper-parameters and the length.
    pub fn new(rule: R, params: &'a mut [P], state: &'a mut [S]) -> Result<Self, Error> {
        Parts::new(rule, params, state, ScheduleFreeState::new()).map(TrainView)
    }

    /// Resumes training: `params` hold `y`, `state` and `counters` as saved from a training view.
    pub fn resume(
        rule: R,
        params: &'a mut [P],
        state: &'a mut [S],
        counters: ScheduleFreeState,
    ) -> Result<Self, Error> {
        Parts::new(rule, params, state, counters).map(TrainView)
    }

    /// The parameters at `y` (take gradients here).
    pub fn params(&self) -> &[P] {
        self.0.params
    }

    /// The state (`z`, then AdamW's `v`).
    pub fn state(&self) -> &[S] {
        self.0.state
    }

    /// The scalars carried between steps.
    pub fn counters(&self) -> ScheduleFreeState {
        self.0.sf
    }

    /// The rule.
    pub fn rule(&self) -> R {
        self.0.rule
    }

    /// Replaces the rule's hyper-parameters (for example a new base learning rate); checked.
    pub fn set_rule(&mut self, rule: R) -> Result<(), Error> {
        rule.validate()?;
        self.0.rule = rule;
        Ok(())
    }

    /// One step on [`Exec::active`] with the gradient `grads` taken at [`TrainView::params`].
    pub fn step(&mut self, grads: &[T]) -> Result<(), Error>
    where
        T: Storage<T>,
    {
        self.step_with(&Exec::active(), grads)
    }

    /// One step on `exec`'s backend and with its rounding (the counter of a stochastic key is
    /// set by the view: see the module documentation), the gradient stored as `G`. Checks the
    /// gradient length before anything changes.
    pub fn step_with<G: Storage<T>>(&mut self, exec: &Exec, grads: &[G]) -> Result<(), Error> {
        let p = &mut self.0;
        check_len("grads", p.params.len(), grads.len())?;
        if p.sf.k >= MAX_STEPS {
            return Err(Error::InvalidStep { step: p.sf.k + 1 });
        }
        let key = view_key(exec, 2 * (p.sf.k + 1));
        let c = StepConsts::advance(&p.rule, &mut p.sf);
        p.rule.run(exec, c, p.params, p.state, grads, key);
        Ok(())
    }

    /// Moves the parameters to `x = lerp(y, z, 1 − 1/β)` ([`Exec::active`]) and returns the
    /// evaluation view.
    pub fn eval(self) -> EvalView<'a, T, R, P, S> {
        self.eval_with(&Exec::active())
    }

    /// [`TrainView::eval`] on `exec`'s backend and with its rounding (for 16-bit parameters).
    pub fn eval_with(mut self, exec: &Exec) -> EvalView<'a, T, R, P, S> {
        let beta = self.0.rule.beta().widen();
        self.0.switch(exec, 1.0 - 1.0 / beta);
        EvalView(self.0)
    }
}

impl<'a, T: Element, R: ScheduleFreeRule<T>, P: Storage<T>, S: Storage<T>>
    EvalView<'a, T, R, P, S>
{
    /// Resumes at the evaluation point: `params` hold `x` (as after [`TrainView::eval`]).
    pub fn resume(
        rule: R,
        params: &'a mut [P],
        state: &'a mut [S],
        counters: ScheduleFreeState,
    ) -> Result<Self, Error> {
        Parts::new(rule, params, state, counters).map(EvalView)
    }

    /// The parameters at `x` (evaluate and save these).
    pub fn params(&self) -> &[P] {
        self.0.params
    }

    /// The state (`z`, then AdamW's `v`).
    pub fn state(&self) -> &[S] {
        self.0.state
    }

    /// The scalars carried between steps.
    pub fn counters(&self) -> ScheduleFreeState {
        self.0.sf
    }

    /// Moves the parameters back to `y = lerp(x, z, 1 − β)` ([`Exec::active`]) and returns the
    /// training view.
    pub fn train(self) -> TrainView<'a, T, R, P, S> {
        self.train_with(&Exec::active())
    }

    /// [`EvalView::train`] on `exec`'s backend and with its rounding (for 16-bit parameters).
    pub fn train_with(mut self, exec: &Exec) -> TrainView<'a, T, R, P, S> {
        let beta = self.0.rule.beta().widen();
        self.0.switch(exec, 1.0 - beta);
        TrainView(self.0)
    }
}
