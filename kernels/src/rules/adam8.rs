//! Adam / AdamW with 8-bit blockwise state (Dettmers et al. 2022, "8-bit Optimizers via
//! Block-wise Quantization"; bitsandbytes `Adam8bit` / `AdamW8bit` with `block_wise=True`).
//!
//! ## Why a separate API (not [`Rule`](crate::Rule))
//! [`Rule`](crate::Rule) keeps its state as `state_buffers · n` elements of one
//! [`Storage`](crate::Storage) format, each element decoded on its own. Here an element's moment
//! is a code *and* its block's scale: the state is `2·n` bytes of codes plus `2·⌈n/256⌉` `f32`
//! scales, and a block must be decoded and re-encoded as a whole (its new scale is the largest
//! new moment of the block). So [`Adam8::step_with`] takes the codes and the scales as two slices.
//!
//! ## State
//! - `codes`: `m` codes (`n` bytes), then `v` codes (`n` bytes);
//! - `scales`: the `m` block scales (`⌈n/256⌉` `f32`), then the `v` block scales.
//!
//! Block `b` covers elements `256·b .. min(256·(b+1), n)`. A moment is decoded as
//! `MAP[code] · scale`, with [`SIGNED_MAP`] for `m` and [`UNSIGNED_MAP`] for `v`. All-zero buffers
//! (every scale 0) are the zero state of step 1.
//!
//! ## One step, per block (256 elements)
//! ```text
//! m, v   ← SIGNED_MAP[cm]·sm, UNSIGNED_MAP[cv]·sv          (dequantise, f32)
//! Adam / AdamW in f32, exactly the equations of crate::Adam:
//!   L2(λ): g ← g + λ·p    Decoupled(λ): p ← p·(1 − lr·λ)
//!   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g·g
//!   p ← p − a · m / (√v · r + ε),  a = lr / (1 − β1^t),  r = 1 / √(1 − β2^t)
//! sm, sv ← max |m|, max v over the block                    (the new scales)
//! cm, cv ← nearest code to m / sm, v / sv                    (requantise)
//! ```
//! As in bitsandbytes' blockwise kernels, the parameter update uses the new moments *before*
//! requantisation, and the block scale is the new absolute maximum. "Nearest" is a binary search
//! over the sorted map and a comparison with both neighbours (ties: the code of smaller value);
//! a block whose scale is 0 stores the code of 0. Differences from f32 Adam: only the stored
//! moments are rounded, each to a neighbouring code of `x / scale`: the relative gap between
//! neighbouring codes is at most 11.6% (`m`) and 6.4% (`v`) in the top decade
//! (`|x| ≥ 0.1·scale`), 19.8% / 11.6% in the next, and grows towards 0 (83% for `m` in the lowest
//! decade); `|m| < 2.75e-7·scale` rounds to 0. So a run drifts from f32 Adam by the accumulated
//! rounding of the moments, not by the update formula, which is f32 Adam's. Differences from
//! bitsandbytes: its CUDA kernels fold the bias corrections differently
//! (`ε·√(1 − β2^t)` inside) and search the nearest code their own way; the equations are the
//! same, but no bitsandbytes output was compared here (it needs CUDA), so agreement is claimed
//! for the equations and the maps' generator, not bit for bit.
//!
//! ## A coarse baseline
//! [`Adam8::quantizer`] selects the code map: the dynamic maps above ([`Quantizer::Dynamic`], the
//! default and the paper's optimizer) or a uniform grid of 2 to 8 bits ([`Quantizer::Linear`]),
//! the linear quantisation the dynamic map replaces. The state layout is the same. The 2-bit grid
//! is deliberately too coarse (it is the negative control of the harness's
//! `optimizer-state/formats` experiment).
//!
//! ## Backends
//! The Adam arithmetic runs through the SIMD driver (bit-identical on every backend, no FMA);
//! the table decode, the block maximum (exact, order-free) and the binary search are scalar.
//! So results are bit-identical on every backend.
//!
//! IEEE behaviour: a NaN or infinite moment makes its block's scale NaN or Inf, which poisons the
//! whole block's decoded moments at the next step (skip poisoned steps with
//! [`all_finite`](crate::vector::all_finite)).

use super::{non_negative, positive, unit_half_open, WeightDecay};
use crate::arch::driver::zip;
use crate::arch::{Kernel, Simd};
use crate::error::check_len;
use crate::{Error, Exec};

/// Elements per quantisation block.
pub const BLOCK: usize = 256;

/// The powers `10^(i − 6)`, `i = 0..7`, as Python computes `10 ** (-6 + i)` (correctly rounded
/// `f64`), before torch rounds them to `f32`.
const DECADES: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];

/// `torch.linspace(0.1, 1, steps)` in `f32`, entry `k`, as ATen computes it: `start + step·k` in
/// the first half, `end − step·(steps − 1 − k)` in the second, `step = (end − start)/(steps − 1)`.
const fn linspace(steps: usize, k: usize) -> f32 {
    let (start, end) = (0.1f32, 1.0f32);
    let step = (end - start) / (steps - 1) as f32;
    if k < steps / 2 {
        start + step * k as f32
    } else {
        end - step * (steps - 1 - k) as f32
    }
}

/// bitsandbytes' `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`: for
/// `i = 0..7`, the midpoints of `linspace(0.1, 1, f_i)` (`f_i = 2^i + 1` signed, `2^(i+1) + 1`
/// unsigned) scaled by `10^(i − 6)`, with their negatives when signed; then `0` and `1.0`; sorted.
/// Arithmetic in `f32`, as torch performs it.
pub const fn dynamic_map(signed: bool) -> [f32; 256] {
    let mut data = [0.0f32; 256];
    let mut len = 0;
    let mut i = 0;
    while i < 7 {
        let items = if signed {
            (1 << i) + 1
        } else {
            (1 << (i + 1)) + 1
        };
        let scale = DECADES[i] as f32;
        let mut k = 0;
        while k + 1 < items {
            let mean = (linspace(items, k) + linspace(items, k + 1)) / 2.0;
            data[len] = scale * mean;
            len += 1;
            if signed {
                data[len] = -(scale * mean);
                len += 1;
            }
            k += 1;
        }
        i += 1;
    }
    data[len] = 0.0;
    data[len + 1] = 1.0;
    // len + 2 == 256: sort (insertion sort; values are finite and distinct).
    let mut a = 1;
    while a < 256 {
        let x = data[a];
        let mut b = a;
        while b > 0 && data[b - 1] > x {
            data[b] = data[b - 1];
            b -= 1;
        }
        data[b] = x;
        a += 1;
    }
    data
}

/// The signed dynamic map (for `m`): 127 negative codes, `0` at index 127, 127 positive codes,
/// `1.0` at index 255.
pub static SIGNED_MAP: [f32; 256] = dynamic_map(true);
/// The unsigned dynamic map (for `v`): `0` at index 0, 254 positive codes, `1.0` at index 255.
pub static UNSIGNED_MAP: [f32; 256] = dynamic_map(false);

/// The index of the code of `map` nearest to `x` (ties: the smaller code; `x` outside the map:
/// the end code). `x` must not be NaN.
pub fn nearest_code(map: &[f32; 256], x: f32) -> u8 {
    // First index whose value is >= x (binary search over the sorted map).
    let (mut lo, mut hi) = (0usize, 256usize);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if map[mid] < x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo == 0 {
        return 0;
    }
    if lo == 256 {
        return 255;
    }
    let (below, above) = (map[lo - 1], map[lo]);
    if above - x < x - below {
        lo as u8
    } else {
        (lo - 1) as u8
    }
}

/// How a block's moments are stored as codes; the block scale is the block's largest `|m|` (or
/// `v`) either way, and the state layout ([`Adam8::codes_len`], [`Adam8::scales_len`]) is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantizer {
    /// bitsandbytes' dynamic maps, [`SIGNED_MAP`] for `m` and [`UNSIGNED_MAP`] for `v` (256 codes
    /// each): the 8-bit optimizer of the paper, and the default.
    Dynamic,
    /// A uniform grid with `bits` bits (`2..=8`): `m / scale` is rounded to the nearest of
    /// `k / L`, `k = −L..=L`, `L = 2^(bits−1) − 1` (`2^bits − 1` codes, `0` included), and
    /// `v / scale` to the nearest of `k / (2^bits − 1)`, `k = 0..=2^bits − 1` (ties away from 0).
    /// Codes are still stored one per byte. This is the linear quantisation the dynamic map is
    /// designed to replace, kept as a deliberately coarse baseline: with `bits = 2`, `m` is stored
    /// as `−1, 0, 1` times the block's largest `|m|` and `v` as `0, 1/3, 2/3, 1` times the block's
    /// largest `v`, so every `v` below a sixth of its block's maximum is stored as 0.
    Linear {
        /// Bits per code, `2..=8`.
        bits: u8,
    },
}

impl Quantizer {
    /// `L`: the largest `|k|` of the signed grid (`127` stands for the dynamic map, unused).
    fn signed_levels(self) -> f32 {
        match self {
            Quantizer::Dynamic => 127.0,
            Quantizer::Linear { bits } => ((1u32 << (bits - 1)) - 1) as f32,
        }
    }

    /// The largest `k` of the unsigned grid.
    fn unsigned_levels(self) -> f32 {
        match self {
            Quantizer::Dynamic => 255.0,
            Quantizer::Linear { bits } => ((1u32 << bits) - 1) as f32,
        }
    }

    /// The code of `m = 0` (and of a NaN or zero-scale block).
    fn signed_zero(self) -> u8 {
        match self {
            Quantizer::Dynamic => 127,
            Quantizer::Linear { .. } => self.signed_levels() as u8,
        }
    }

    fn decode_m(self, code: u8) -> f32 {
        match self {
            Quantizer::Dynamic => SIGNED_MAP[code as usize],
            Quantizer::Linear { .. } => {
                let l = self.signed_levels();
                (code as f32 - l) / l
            }
        }
    }

    fn decode_v(self, code: u8) -> f32 {
        match self {
            Quantizer::Dynamic => UNSIGNED_MAP[code as usize],
            Quantizer::Linear { .. } => code as f32 / self.unsigned_levels(),
        }
    }

    /// The code of `q = m / scale` (`q` in `[−1, 1]`, not NaN).
    fn encode_m(self, q: f32) -> u8 {
        match self {
            Quantizer::Dynamic => nearest_code(&SIGNED_MAP, q),
            Quantizer::Linear { .. } => {
                let l = self.signed_levels();
                (libm::roundf(q.clamp(-1.0, 1.0) * l) + l) as u8
            }
        }
    }

    /// The code of `q = v / scale` (`q` in `[0, 1]`, not NaN).
    fn encode_v(self, q: f32) -> u8 {
        match self {
            Quantizer::Dynamic => nearest_code(&UNSIGNED_MAP, q),
            Quantizer::Linear { .. } => {
                libm::roundf(q.clamp(0.0, 1.0) * self.unsigned_levels()) as u8
            }
        }
    }

    /// Checks `bits`.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            Quantizer::Linear { bits } if !(2..=8).contains(&bits) => {
                Err(Error::InvalidHyperParameter {
                    name: "quantizer",
                    requirement: "Linear bits must be in 2..=8",
                })
            }
            _ => Ok(()),
        }
    }
}

/// Adam / AdamW over `f32` parameters with 8-bit blockwise moments (see the
/// [module documentation](self)). Hyper-parameters as [`crate::Adam`] (no AMSGrad).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam8 {
    /// Learning rate, finite and `>= 0`.
    pub lr: f32,
    /// First-moment decay `β1` in `[0, 1)`.
    pub beta1: f32,
    /// Second-moment decay `β2` in `[0, 1)`.
    pub beta2: f32,
    /// `ε`, finite and `> 0`.
    pub eps: f32,
    /// Weight decay (L2: `Adam8bit(weight_decay)`-style added to `g`; decoupled: `AdamW8bit`).
    pub weight_decay: WeightDecay<f32>,
    /// How moments are stored ([`Quantizer::Dynamic`] unless set otherwise).
    pub quantizer: Quantizer,
}

impl Adam8 {
    /// PyTorch's Adam defaults: `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-8`, no weight decay.
    pub fn new(lr: f32) -> Self {
        Adam8 {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WeightDecay::None,
            quantizer: Quantizer::Dynamic,
        }
    }

    /// AdamW defaults with decoupled weight decay `λ`.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Adam8 {
            weight_decay: WeightDecay::Decoupled(weight_decay),
            ..Self::new(lr)
        }
    }

    /// Bytes of codes for `n` parameters: `2·n`.
    pub const fn codes_len(n: usize) -> usize {
        2 * n
    }

    /// Number of `f32` scales for `n` parameters: `2·⌈n/256⌉`.
    pub const fn scales_len(n: usize) -> usize {
        2 * n.div_ceil(BLOCK)
    }

    /// Total state bytes for `n` parameters (`2·n + 8·⌈n/256⌉`, about 2.03 bytes per parameter).
    pub const fn state_bytes(n: usize) -> usize {
        Self::codes_len(n) + 4 * Self::scales_len(n)
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("lr", self.lr)?;
        unit_half_open("beta1", self.beta1)?;
        unit_half_open("beta2", self.beta2)?;
        positive("eps", self.eps)?;
        self.quantizer.validate()?;
        self.weight_decay.validate()
    }

    /// [`Adam8::step_with`] on [`Exec::active`].
    pub fn step(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        codes: &mut [u8],
        scales: &mut [f32],
    ) -> Result<(), Error> {
        self.step_with(&Exec::active(), step, params, grads, codes, scales)
    }

    /// Step number `step` (from 1) on `exec`'s backend (its rounding is unused). Checks the
    /// hyper-parameters, `step >= 1` and every length before writing anything.
    pub fn step_with(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        codes: &mut [u8],
        scales: &mut [f32],
    ) -> Result<(), Error> {
        self.validate()?;
        if step == 0 {
            return Err(Error::InvalidStep { step });
        }
        let n = params.len();
        check_len("grads", n, grads.len())?;
        check_len("codes", Self::codes_len(n), codes.len())?;
        check_len("scales", Self::scales_len(n), scales.len())?;
        let t = step as f64;
        let bc1 = 1.0 - libm::pow(self.beta1 as f64, t);
        let bc2 = 1.0 - libm::pow(self.beta2 as f64, t);
        let c = Consts {
            beta1: self.beta1,
            one_minus_beta1: 1.0 - self.beta1,
            beta2: self.beta2,
            one_minus_beta2: 1.0 - self.beta2,
            step_size: (self.lr as f64 / bc1) as f32,
            inv_sqrt_bc2: (1.0 / libm::sqrt(bc2)) as f32,
            eps: self.eps,
            l2: match self.weight_decay {
                WeightDecay::L2(l) => Some(l),
                _ => None,
            },
            decay: match self.weight_decay {
                WeightDecay::Decoupled(_) => Some(self.weight_decay.decoupled_factor(self.lr)),
                _ => None,
            },
        };
        let (cm, cv) = codes.split_at_mut(n);
        let blocks = n.div_ceil(BLOCK);
        let (sm, sv) = scales.split_at_mut(blocks);
        for b in 0..blocks {
            let lo = b * BLOCK;
            let hi = (lo + BLOCK).min(n);
            block_step(
                exec,
                &c,
                self.quantizer,
                &mut params[lo..hi],
                &grads[lo..hi],
                &mut cm[lo..hi],
                &mut cv[lo..hi],
                &mut sm[b],
                &mut sv[b],
            );
        }
        Ok(())
    }
}

/// The per-call scalars.
#[derive(Clone, Copy)]
struct Consts {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    l2: Option<f32>,
    decay: Option<f32>,
}

/// The largest value of `xs` (of `|x|` with `abs`), NaN if any is NaN; 0 for none.
fn block_max(xs: &[f32], abs: bool) -> f32 {
    let mut m = 0.0f32;
    for &x in xs {
        let x = if abs { x.abs() } else { x };
        if x.is_nan() {
            return f32::NAN;
        }
        if x > m {
            m = x;
        }
    }
    m
}

/// Requantises `xs` with `code` (of `x / s`) and the block scale `s`.
fn encode(code: impl Fn(f32) -> u8, zero_code: u8, xs: &[f32], s: f32, codes: &mut [u8]) {
    for (c, &x) in codes.iter_mut().zip(xs) {
        let q = x / s;
        *c = if s == 0.0 || q.is_nan() {
            zero_code
        } else {
            code(q)
        };
    }
}

/// One block: decode, Adam (SIMD), new scales, encode.
#[allow(clippy::too_many_arguments)]
fn block_step(
    exec: &Exec,
    c: &Consts,
    quant: Quantizer,
    p: &mut [f32],
    g: &[f32],
    cm: &mut [u8],
    cv: &mut [u8],
    sm: &mut f32,
    sv: &mut f32,
) {
    let len = p.len();
    let mut m = [0.0f32; BLOCK];
    let mut v = [0.0f32; BLOCK];
    for i in 0..len {
        m[i] = quant.decode_m(cm[i]) * *sm;
        v[i] = quant.decode_v(cv[i]) * *sv;
    }
    exec.run(AdamBlock {
        n: len,
        rw: [p.as_mut_ptr(), m.as_mut_ptr(), v.as_mut_ptr()],
        g: g.as_ptr(),
        c: *c,
    });
    *sm = block_max(&m[..len], true);
    *sv = block_max(&v[..len], false);
    encode(
        |q| quant.encode_m(q),
        quant.signed_zero(),
        &m[..len],
        *sm,
        cm,
    );
    encode(|q| quant.encode_v(q), 0, &v[..len], *sv, cv);
}

/// Adam over one block: `rw` = parameters, `m`, `v` (f32), `g` the gradient.
struct AdamBlock {
    n: usize,
    rw: [*mut f32; 3],
    g: *const f32,
    c: Consts,
}

impl Kernel<f32> for AdamBlock {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let c = self.c;
        // SAFETY: `block_step` passes a parameter block and a gradient block of n elements and two
        // stack buffers of BLOCK >= n elements; the three written buffers are distinct and none
        // overlaps the gradient.
        unsafe {
            zip::<f32, S, 3, 1>(
                s,
                self.n,
                self.rw,
                [self.g],
                #[inline(always)]
                |[p, m, v], [g]| {
                    let mut pp = *p;
                    let mut gg = g;
                    if let Some(d) = c.decay {
                        pp = s.mul(pp, s.splat(d));
                    }
                    if let Some(l) = c.l2 {
                        gg = s.add(gg, s.mul(s.splat(l), pp));
                    }
                    *m = s.add(
                        s.mul(s.splat(c.beta1), *m),
                        s.mul(s.splat(c.one_minus_beta1), gg),
                    );
                    *v = s.add(
                        s.mul(s.splat(c.beta2), *v),
                        s.mul(s.splat(c.one_minus_beta2), s.mul(gg, gg)),
                    );
                    let denom = s.add(s.mul(s.sqrt(*v), s.splat(c.inv_sqrt_bc2)), s.splat(c.eps));
                    *p = s.sub(pp, s.mul(s.splat(c.step_size), s.div(*m, denom)));
                },
            )
        }
    }
}
