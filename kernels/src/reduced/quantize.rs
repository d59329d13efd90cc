//! Gradient quantization to a precision `ρ > 0`: to the nearest multiple of `ρ`, stochastically
//! (unbiased), and the bounded adversarial perturbation of the statistical-query model.
//!
//! All work on `f32` gradients in place. With `y = g/ρ` (one IEEE division):
//! - nearest: `g ← ρ·round(y)`, `round` to the nearest integer with **ties to even**;
//! - stochastic: `g ← ρ·(⌊|y|⌋ + B)·sign(y)`, `B = 1` with probability `frac(|y|)` (16
//!   counter-based random bits per element, as [`crate::storage`] describes, the gradient buffer
//!   being the call's one drawing buffer; `B = 1` iff
//!   `r < 2^16·frac`, so the probability is `⌈2^16·frac⌉/2^16`, exact when `frac` is a multiple
//!   of `2^-16`);
//! - every operation is exact when `ρ` is a power of two (the usual choice) and `|y| < 2^24`, so
//!   the result is then exactly the nearest (or a neighbouring) multiple of `ρ`; for other `ρ` the
//!   division and the product each round once. NaN stays NaN, ±Inf stays ±Inf, `|y|` beyond
//!   `f32::MAX` becomes ±Inf, and the sign of zero is kept.
//!
//! Results are bit-identical on every backend.

use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::rules::positive;
use crate::storage::{random_lanes_as_values, DrawnF32, Rounding};
use crate::{Error, Exec};

/// `round_ties_even(a)` for `a >= 0` (or NaN): `(a + 2^23) − 2^23` below `2^23`, `a` itself above
/// (already an integer).
#[inline(always)]
fn round_nonneg<S: Simd<f32>>(s: S, a: S::V) -> S::V {
    let magic = s.splat(8_388_608.0);
    let r = s.sub(s.add(a, magic), magic);
    s.select(s.lt(a, magic), r, a)
}

/// One vector of nearest quantization: `ρ·round(g/ρ)`.
#[inline(always)]
fn nearest_vector<S: Simd<f32>>(s: S, rho: S::V, g: S::V) -> S::V {
    let sign = s.splat(-0.0);
    let y = s.div(g, rho);
    let k = round_nonneg(s, s.andnot(sign, y));
    s.mul(s.or(k, s.and(y, sign)), rho)
}

/// One vector of stochastic quantization with random lanes `r` (integers in `[0, 2^16)`).
#[inline(always)]
fn stochastic_vector<S: Simd<f32>>(s: S, rho: S::V, g: S::V, r: S::V) -> S::V {
    let sign = s.splat(-0.0);
    let one = s.splat(1.0);
    let y = s.div(g, rho);
    let a = s.andnot(sign, y);
    let f = round_nonneg(s, a);
    let lo = s.select(s.gt(f, a), s.sub(f, one), f); // ⌊a⌋
    let frac = s.sub(a, lo); // exact: lo ≤ a < lo + 1 and lo ≥ a/2 or lo = 0
    let up = s.lt(r, s.mul(frac, s.splat(65536.0)));
    let k = s.select(up, s.add(lo, one), lo);
    s.mul(s.or(k, s.and(y, sign)), rho)
}

/// Rounds every gradient to the nearest multiple of `rho`, ties to even, on the active backend
/// (see the module docs). `rho` must be finite and `> 0`.
pub fn quantize(rho: f32, grads: &mut [f32]) -> Result<(), Error> {
    quantize_with(&Exec::active(), rho, grads)
}

/// Quantizes every gradient to a multiple of `rho` with the context's rounding: to the nearest
/// multiple (ties to even) under [`Rounding::NearestEven`], or stochastically to one of the two
/// neighbouring multiples, with expectation `g` (to the resolution of 16 random bits; see the
/// module docs), under [`Rounding::Stochastic`] with its key (advance its counter between
/// calls). `rho` must be finite and `> 0`.
pub fn quantize_with(exec: &Exec, rho: f32, grads: &mut [f32]) -> Result<(), Error> {
    positive("rho", rho)?;
    let draw = match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    };
    exec.run(Quantize {
        g: grads,
        rho,
        draw,
    });
    Ok(())
}

struct Quantize<'g> {
    g: &'g mut [f32],
    rho: f32,
    draw: Option<Draw<1>>,
}

impl Kernel<f32> for Quantize<'_> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let rho = s.splat(self.rho);
        let n = self.g.len();
        let g = [self.g.as_mut_ptr().cast::<u8>()];
        // SAFETY: `g` holds n f32 (the caller's exclusive slice of length n).
        unsafe {
            if self.draw.is_some() {
                // `DrawnF32`: stored as f32, but draws random bits (used by the body).
                zip_stored::<f32, S, DrawnF32, f32, f32, 1, 0>(
                    s,
                    n,
                    g,
                    [],
                    self.draw,
                    #[inline(always)]
                    |[g], [], [r]| {
                        *g = stochastic_vector(s, rho, *g, random_lanes_as_values(s, *r))
                    },
                )
            } else {
                zip_stored::<f32, S, f32, f32, f32, 1, 0>(
                    s,
                    n,
                    g,
                    [],
                    None,
                    #[inline(always)]
                    |[g], [], _| *g = nearest_vector(s, rho, *g),
                )
            }
        }
    }
}

/// An adversary of the statistical-query model: it may move each gradient by at most `ρ`.
pub trait Perturbation {
    /// The perturbation `δ` of element `index`, whose current value is `grad`. Should satisfy
    /// `|δ| ≤ ρ`; [`perturb_bounded`] clamps it into `[−ρ, ρ]` (NaN counts as `0`) and counts the
    /// violations.
    fn delta(&mut self, index: usize, grad: f32, rho: f32) -> f32;
}

/// Applies a `ρ`-bounded adversarial perturbation: `g_i ← g_i + clamp(δ_i, −ρ, ρ)` for every `i`
/// in order, with `δ_i = adversary.delta(i, g_i, ρ)` and a NaN `δ_i` replaced by `0`. Returns how
/// many `δ_i` violated `|δ_i| ≤ ρ` (and were clamped). The added amount is bounded by `ρ`
/// exactly; the stored sum is `g_i + δ_i` rounded once to `f32`. `rho` must be finite and `> 0`
/// (checked before anything is written). Scalar: the adversary is called per element.
pub fn perturb_bounded<P: Perturbation + ?Sized>(
    rho: f32,
    grads: &mut [f32],
    adversary: &mut P,
) -> Result<usize, Error> {
    positive("rho", rho)?;
    let mut violations = 0;
    for (i, g) in grads.iter_mut().enumerate() {
        let d = adversary.delta(i, *g, rho);
        let clamped = if d.is_nan() { 0.0 } else { d.clamp(-rho, rho) };
        if d.is_nan() || d.abs() > rho {
            violations += 1;
        }
        *g += clamped;
    }
    Ok(violations)
}
