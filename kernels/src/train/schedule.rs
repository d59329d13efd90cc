//! Learning-rate schedules, evaluated per step in `f64`, without allocation.
//!
//! # Step convention
//!
//! Every schedule is a function of `count`, **the number of updates already applied**: `at(0)` is
//! the learning rate of the first update, `at(1)` of the second, and so on. This is optax's
//! `count` (a schedule receives the optimizer's update count, starting at 0) and torch's
//! `last_epoch` as seen by the optimizer step that follows it (a torch scheduler is created with
//! `last_epoch = 0`, the first `optimizer.step()` uses that rate, and each `scheduler.step()` adds
//! one). The crate's update rules number steps from 1 (for bias correction): update number
//! `step` uses `schedule.at(step - 1)`.
//!
//! # Schedules and what they match
//!
//! | type | formula at `t` | matches |
//! |---|---|---|
//! | [`Constant`] | `v` | optax `constant_schedule`; torch: no scheduler |
//! | [`Linear`] | `a + (b − a)·min(t, n)/n` | optax `linear_schedule`; torch `LinearLR` (factors times the base rate) |
//! | [`Cosine`] | `f + (p − f)·½(1 + cos(π·min(t, n)/n))` | optax `cosine_decay_schedule` (`alpha = f/p`); torch `CosineAnnealingLR` (`eta_min = f`) for `t ≤ n` |
//! | [`StepDecay`] | `v·γ^⌊t/s⌋` | torch `StepLR`; optax `exponential_decay(staircase=True)` |
//! | [`InverseSqrt`] | `p/√((t + τ)/τ)` | after a warm-up of `w` steps: Hugging Face `get_inverse_sqrt_schedule(timescale = τ)`; with `τ = w`, fairseq `inverse_sqrt` (`p·√(w/t)`) |
//! | [`OneCycle`] | two or three cosine (or linear) phases | torch `OneCycleLR` (learning rate only) |
//! | [`Warmup`] | linear from `a` to `inner.at(0)` over `w` steps, then `inner.at(t − w)` | optax `join_schedules([linear_schedule(a, inner(0), w), inner], [w])` |
//! | [`Join`] | `first.at(t)` for `t < b`, then `second.at(t − b)` | optax `join_schedules([first, second], [b])` |
//!
//! [`warmup_cosine`] builds optax's `warmup_cosine_decay_schedule` from these pieces.
//!
//! The compositions follow optax, where the second schedule sees its own count restart at 0 on
//! the boundary. torch's counterpart, `SequentialLR`, is not matched step for step: its documented
//! example (base rate 1, `ConstantLR(factor = 0.1, total_iters = 2)` then `ExponentialLR(gamma =
//! 0.9)`, milestone 2) lists 0.9 at epoch 2, i.e. the second scheduler enters at its own step 1.
//!
//! Steps past the end of a finite schedule hold its final value ([`Linear`], [`Cosine`],
//! [`OneCycle`]); this is optax's behaviour. torch differs there: `CosineAnnealingLR`'s closed form
//! keeps following the cosine back up past `T_max`, and `OneCycleLR` raises an error after
//! `total_steps`.
//!
//! "Matches" means the same value up to floating-point rounding (the tests compare every step of
//! a few thousand against the reference formula to `1e-12` relative): the evaluation order is the
//! reference's for [`OneCycle`] and [`Cosine`] (torch's), and may differ elsewhere.
//!
//! Every constructor validates its arguments and returns [`Error::InvalidHyperParameter`] for a
//! non-finite or negative rate, a zero length, or an out-of-range fraction; a constructed schedule
//! never panics and returns a finite, non-negative rate for every `count`.

use crate::Error;

/// A learning rate as a function of the number of updates already applied (see the
/// [module documentation](self) for the convention).
pub trait Schedule {
    /// The learning rate of the update that follows `count` completed updates (`at(0)` is the
    /// first update's rate).
    fn at(&self, count: u64) -> f64;
}

impl<S: Schedule + ?Sized> Schedule for &S {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        (**self).at(count)
    }
}

/// Checks that a rate is finite and non-negative.
fn check_rate(name: &'static str, value: f64) -> Result<(), Error> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be finite and non-negative",
        })
    }
}

/// Checks that a length in steps is at least one.
fn check_steps(name: &'static str, steps: u64) -> Result<(), Error> {
    if steps >= 1 {
        Ok(())
    } else {
        Err(Error::InvalidHyperParameter {
            name,
            requirement: "must be at least 1",
        })
    }
}

/// `u64 → f64` (exact below 2⁵³, correctly rounded above).
#[inline]
fn f(count: u64) -> f64 {
    count as f64
}

// ---------------------------------------------------------------- constant

/// The same rate at every step: optax `constant_schedule(value)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Constant {
    value: f64,
}

impl Constant {
    /// A constant rate `value` (finite, `≥ 0`).
    pub fn new(value: f64) -> Result<Self, Error> {
        check_rate("value", value)?;
        Ok(Self { value })
    }

    /// The rate.
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl Schedule for Constant {
    #[inline]
    fn at(&self, _count: u64) -> f64 {
        self.value
    }
}

// ---------------------------------------------------------------- linear

/// A straight line from `init` (at `t = 0`) to `end` (at `t = steps`), then `end`:
/// `init + (end − init)·min(t, steps)/steps`.
///
/// Matches optax `linear_schedule(init_value, end_value, transition_steps)` and torch `LinearLR(start_factor, end_factor,
/// total_iters)` with `init = start_factor·lr`, `end = end_factor·lr`. optax turns
/// `transition_steps = 0` into a constant `init_value`; here zero steps is an error (use
/// [`Constant`], or a [`Warmup`] of zero steps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Linear {
    init: f64,
    end: f64,
    steps: u64,
}

impl Linear {
    /// A line from `init` to `end` over `steps ≥ 1` steps.
    pub fn new(init: f64, end: f64, steps: u64) -> Result<Self, Error> {
        check_rate("init", init)?;
        check_rate("end", end)?;
        check_steps("steps", steps)?;
        Ok(Self { init, end, steps })
    }

    /// The rate at `t = 0`.
    pub fn init(&self) -> f64 {
        self.init
    }

    /// The rate from `t = steps` on.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// The length of the transition.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

/// A linear transition from `init` to `end` over `steps ≥ 1`: exactly `init` at 0 and exactly
/// `end` from `steps` on.
#[inline]
fn linear(init: f64, end: f64, count: u64, steps: u64) -> f64 {
    if count >= steps {
        end
    } else {
        init + (end - init) * (f(count) / f(steps))
    }
}

impl Schedule for Linear {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        linear(self.init, self.end, count, self.steps)
    }
}

// ---------------------------------------------------------------- cosine

/// Cosine decay from `peak` to `floor` over `steps` steps, then `floor`:
/// `floor + (peak − floor)·½·(1 + cos(π·min(t, steps)/steps))`.
///
/// Matches optax `cosine_decay_schedule(init_value = peak, decay_steps = steps, alpha =
/// floor/peak)` (exponent 1) and, for `t ≤ steps`, torch `CosineAnnealingLR(T_max = steps,
/// eta_min = floor)` with base rate `peak`. Past `steps` torch's closed form rises again along the
/// cosine; this schedule, like optax's, stays at `floor`. For a warm-up before the decay, wrap it
/// in [`Warmup`] (or use [`warmup_cosine`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    peak: f64,
    floor: f64,
    steps: u64,
}

impl Cosine {
    /// Decay from `peak` to `floor` over `steps ≥ 1` steps (both rates finite and `≥ 0`).
    pub fn new(peak: f64, floor: f64, steps: u64) -> Result<Self, Error> {
        check_rate("peak", peak)?;
        check_rate("floor", floor)?;
        check_steps("steps", steps)?;
        Ok(Self { peak, floor, steps })
    }

    /// The rate at `t = 0`.
    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// The rate from `t = steps` on.
    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// The length of the decay.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Schedule for Cosine {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        let t = f(count.min(self.steps)) / f(self.steps);
        let c = 0.5 * (1.0 + libm::cos(core::f64::consts::PI * t));
        self.floor + (self.peak - self.floor) * c
    }
}

// ---------------------------------------------------------------- step decay

/// Multiply the rate by `gamma` every `step_size` steps: `init·gamma^⌊t/step_size⌋`.
///
/// Matches torch `StepLR(step_size, gamma)` (closed form `base_lr·gamma^(last_epoch //
/// step_size)`) with base rate `init`, and optax `exponential_decay(init_value = init,
/// transition_steps = step_size, decay_rate = gamma, staircase = True)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    init: f64,
    step_size: u64,
    gamma: f64,
}

impl StepDecay {
    /// Start at `init` and multiply by `gamma` (finite, `≥ 0`) every `step_size ≥ 1` steps.
    pub fn new(init: f64, step_size: u64, gamma: f64) -> Result<Self, Error> {
        check_rate("init", init)?;
        check_steps("step_size", step_size)?;
        check_rate("gamma", gamma)?;
        Ok(Self {
            init,
            step_size,
            gamma,
        })
    }

    /// The rate at `t = 0`.
    pub fn init(&self) -> f64 {
        self.init
    }

    /// Steps between two decays.
    pub fn step_size(&self) -> u64 {
        self.step_size
    }

    /// The factor applied at each decay.
    pub fn gamma(&self) -> f64 {
        self.gamma
    }
}

impl Schedule for StepDecay {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        let v = self.init * libm::pow(self.gamma, f(count / self.step_size));
        // gamma > 1 may overflow after many decays (and 0·∞ is NaN): keep the rate finite.
        if v.is_finite() {
            v
        } else if self.init == 0.0 {
            0.0
        } else {
            f64::MAX
        }
    }
}

// ---------------------------------------------------------------- inverse square root

/// Inverse-square-root decay: `peak / √((t + timescale)/timescale)`, which is `peak` at `t = 0`
/// and `peak·√(timescale/t)` asymptotically.
///
/// Neither torch nor optax ships this schedule; it is the Transformer ("Noam") decay as the common
/// libraries define it. Behind a [`Warmup`] of `w` steps it matches Hugging Face transformers'
/// `get_inverse_sqrt_schedule(num_warmup_steps = w, timescale = τ)`, whose factor after warm-up
/// is `1/√((t − w + τ)/τ)`, exactly this schedule at `t − w`; with `τ = w` that is fairseq's
/// `inverse_sqrt` (`peak·√(w/t)` for `t ≥ w`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InverseSqrt {
    peak: f64,
    timescale: u64,
}

impl InverseSqrt {
    /// Decay from `peak` with time constant `timescale ≥ 1` steps.
    pub fn new(peak: f64, timescale: u64) -> Result<Self, Error> {
        check_rate("peak", peak)?;
        check_steps("timescale", timescale)?;
        Ok(Self { peak, timescale })
    }

    /// The rate at `t = 0`.
    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// The time constant `τ`.
    pub fn timescale(&self) -> u64 {
        self.timescale
    }
}

impl Schedule for InverseSqrt {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        let tau = f(self.timescale);
        self.peak / libm::sqrt((f(count) + tau) / tau)
    }
}

// ---------------------------------------------------------------- one-cycle

/// How a [`OneCycle`] phase moves between its two rates (torch's `anneal_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anneal {
    /// `end + (start − end)/2·(cos(π·pct) + 1)` (torch `"cos"`, the default).
    Cos,
    /// `(end − start)·pct + start` (torch `"linear"`).
    Linear,
}

impl Anneal {
    #[inline]
    fn between(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => {
                end + (start - end) / 2.0 * (libm::cos(core::f64::consts::PI * pct) + 1.0)
            }
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// The settings of a [`OneCycle`] schedule, named as torch's `OneCycleLR` arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycleConfig {
    /// The peak rate (`max_lr`).
    pub max_lr: f64,
    /// The length of the cycle in steps (`total_steps`).
    pub total_steps: u64,
    /// The fraction of the cycle spent rising (`pct_start`, torch default 0.3).
    pub pct_start: f64,
    /// `initial_lr = max_lr / div_factor` (torch default 25).
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor` (torch default 10⁴).
    pub final_div_factor: f64,
    /// The shape of each phase (torch default [`Anneal::Cos`]).
    pub anneal: Anneal,
    /// Three phases (rise, fall back to `initial_lr`, anneal to `min_lr`) instead of two (torch
    /// default `false`).
    pub three_phase: bool,
}

impl OneCycleConfig {
    /// torch's defaults: `pct_start = 0.3`, `div_factor = 25`, `final_div_factor = 10⁴`, cosine
    /// annealing, two phases.
    pub fn new(max_lr: f64, total_steps: u64) -> Self {
        Self {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            anneal: Anneal::Cos,
            three_phase: false,
        }
    }
}

/// The 1cycle policy (Smith & Topin, "Super-Convergence", 2017) exactly as torch `OneCycleLR`
/// computes the learning rate (its momentum cycling is not part of a learning-rate schedule).
///
/// With `T = total_steps`, `p = pct_start`, `initial = max_lr/div_factor` and
/// `min = initial/final_div_factor`, the phases end at (fractional) steps
///
/// - two phases: `e₁ = p·T − 1` (initial → max), `e₂ = T − 1` (max → min);
/// - three phases: `e₁ = p·T − 1` (initial → max), `e₂ = 2p·T − 2` (max → initial),
///   `e₃ = T − 1` (initial → min);
///
/// and step `t` lies in the first phase with `t ≤ eᵢ` (or the last), where the rate is
/// [`Anneal`] between the phase's two rates at `pct = (t − eᵢ₋₁)/(eᵢ − eᵢ₋₁)` (with `e₀ = 0`).
/// So `at(0)` is `initial` (up to the rounding of torch's cosine formula, which this follows
/// operation for operation) and `at(T − 1)` is exactly `min`. torch raises an error for `t > T`; this schedule
/// holds `min` for every `t ≥ T − 1` (torch's value at `t = T` slightly overshoots the cycle).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycle {
    config: OneCycleConfig,
    initial: f64,
    min: f64,
}

impl OneCycle {
    /// Validates `config`: `max_lr` finite and `≥ 0`; `div_factor` and `final_div_factor` finite
    /// and `> 0`; `pct_start` in `(0, 1)`; and every phase at least one step long (`p·T − 1 > 0`,
    /// and with three phases `2p·T − 2 < T − 1`), which needs `total_steps ≥ 2`.
    pub fn new(config: OneCycleConfig) -> Result<Self, Error> {
        check_rate("max_lr", config.max_lr)?;
        let positive = |name, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::InvalidHyperParameter {
                    name,
                    requirement: "must be finite and positive",
                })
            }
        };
        positive("div_factor", config.div_factor)?;
        positive("final_div_factor", config.final_div_factor)?;
        if !(config.pct_start > 0.0 && config.pct_start < 1.0) {
            return Err(Error::InvalidHyperParameter {
                name: "pct_start",
                requirement: "must lie in (0, 1)",
            });
        }
        let t = f(config.total_steps);
        let e1 = config.pct_start * t - 1.0;
        let last = t - 1.0;
        let phases_ok = if config.three_phase {
            let e2 = 2.0 * config.pct_start * t - 2.0;
            e1 > 0.0 && e2 > e1 && last > e2
        } else {
            e1 > 0.0 && last > e1
        };
        if !phases_ok {
            return Err(Error::InvalidHyperParameter {
                name: "total_steps",
                requirement: "is too small for pct_start: every phase needs a positive length",
            });
        }
        let initial = config.max_lr / config.div_factor;
        let min = initial / config.final_div_factor;
        Ok(Self {
            config,
            initial,
            min,
        })
    }

    /// The settings.
    pub fn config(&self) -> &OneCycleConfig {
        &self.config
    }

    /// The rate at `t = 0` (`max_lr / div_factor`).
    pub fn initial_lr(&self) -> f64 {
        self.initial
    }

    /// The rate at the end of the cycle (`initial_lr / final_div_factor`).
    pub fn min_lr(&self) -> f64 {
        self.min
    }
}

impl Schedule for OneCycle {
    fn at(&self, count: u64) -> f64 {
        let c = &self.config;
        let total = f(c.total_steps);
        let last = total - 1.0;
        if f(count) >= last {
            return self.min;
        }
        let t = f(count);
        let e1 = c.pct_start * total - 1.0;
        let mut phases = [(0.0, 0.0, 0.0); 3];
        let n = if c.three_phase {
            phases[0] = (e1, self.initial, c.max_lr);
            phases[1] = (2.0 * c.pct_start * total - 2.0, c.max_lr, self.initial);
            phases[2] = (last, self.initial, self.min);
            3
        } else {
            phases[0] = (e1, self.initial, c.max_lr);
            phases[1] = (last, c.max_lr, self.min);
            2
        };
        let mut start = 0.0;
        for (i, &(end, from, to)) in phases[..n].iter().enumerate() {
            if t <= end || i == n - 1 {
                let pct = (t - start) / (end - start);
                return c.anneal.between(from, to, pct);
            }
            start = end;
        }
        self.min // unreachable: the last phase always returns
    }
}

// ---------------------------------------------------------------- combinators

/// A linear warm-up in front of any schedule: `init + (inner.at(0) − init)·t/steps` for
/// `t < steps`, then `inner.at(t − steps)`.
///
/// The warm-up ends at the inner schedule's first value, so the peak is set by `inner`. This is
/// optax `join_schedules([linear_schedule(init, peak, steps), inner], [steps])` (see the
/// [module documentation](self) on torch's `SequentialLR`). Zero warm-up steps give `inner`
/// unchanged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup<S> {
    init: f64,
    steps: u64,
    inner: S,
}

impl<S: Schedule> Warmup<S> {
    /// Warm up from `init` (finite, `≥ 0`) over `steps` steps (0 allowed), then follow `inner`.
    pub fn new(init: f64, steps: u64, inner: S) -> Result<Self, Error> {
        check_rate("init", init)?;
        Ok(Self { init, steps, inner })
    }

    /// The rate at `t = 0` (when `steps > 0`).
    pub fn init(&self) -> f64 {
        self.init
    }

    /// The length of the warm-up.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The schedule that follows the warm-up.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Schedule> Schedule for Warmup<S> {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        if count < self.steps {
            linear(self.init, self.inner.at(0), count, self.steps)
        } else {
            self.inner.at(count - self.steps)
        }
    }
}

/// Two schedules in sequence: `first.at(t)` for `t < boundary`, then `second.at(t − boundary)`
/// (the second schedule restarts its count at the boundary).
///
/// optax `join_schedules([first, second], [boundary])` (see the [module documentation](self) on
/// torch's `SequentialLR`). Nest `Join`s for more than two pieces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Join<A, B> {
    first: A,
    boundary: u64,
    second: B,
}

impl<A: Schedule, B: Schedule> Join<A, B> {
    /// `first` for the first `boundary` steps, then `second`.
    pub fn new(first: A, boundary: u64, second: B) -> Self {
        Self {
            first,
            boundary,
            second,
        }
    }

    /// The step at which `second` takes over.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// The schedule before the boundary.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The schedule from the boundary on.
    pub fn second(&self) -> &B {
        &self.second
    }
}

impl<A: Schedule, B: Schedule> Schedule for Join<A, B> {
    #[inline]
    fn at(&self, count: u64) -> f64 {
        if count < self.boundary {
            self.first.at(count)
        } else {
            self.second.at(count - self.boundary)
        }
    }
}

/// optax's `warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
/// end_value)` (exponent 1): a linear warm-up from `init` to `peak` over `warmup_steps`, then a
/// cosine decay from `peak` to `end` over `decay_steps − warmup_steps` steps. As in optax,
/// `decay_steps` counts the whole schedule including the warm-up, and must exceed `warmup_steps`.
pub fn warmup_cosine(
    init: f64,
    peak: f64,
    warmup_steps: u64,
    decay_steps: u64,
    end: f64,
) -> Result<Warmup<Cosine>, Error> {
    if decay_steps <= warmup_steps {
        return Err(Error::InvalidHyperParameter {
            name: "decay_steps",
            requirement: "must exceed warmup_steps (it counts the warm-up too)",
        });
    }
    Warmup::new(
        init,
        warmup_steps,
        Cosine::new(peak, end, decay_steps - warmup_steps)?,
    )
}
