//! Adam / AdamW with 8-bit blockwise state (Dettmers et al. 2022, "8-bit Optimizers via
//! Block-wise Quantization"; bitsandbytes `Adam8bit` / `AdamW8bit` with `block_wise=True`).
//!
//! ## Why a separate API (not [`Rule`](crate::Rule))
//! [`Rule`](crate::Rule) keeps its state as `state_buffers · n` elements of one
//! [`Storage`] format, each element decoded on its own. Here an element's moment
//! is a code *and* its block's scale: the state is `2·n` bytes of codes plus `2·⌈n/256⌉` `f32`
//! scales, and a block must be decoded and re-encoded as a whole (its new scale is the largest
//! new moment of the block). So [`Adam8::step_with`] takes the codes and the scales as two slices.
//!
//! Its hyper-parameters are a [`RuleConfig`] like every rule's, so
//! [`Optimizer`](crate::train::Optimizer) drives it over parameter groups (schedule, per-group
//! rate, decay and freezing, clipping, the non-finite policy, checkpoints) with the state in an
//! [`Adam8State`](crate::train::Adam8State): each trainable group has its own codes and scales,
//! its blocks starting at its first element.
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
//! requantisation, and the block scale is the new absolute maximum. "Nearest" is defined by
//! [`nearest_code_reference`]: a binary search over the sorted map and a comparison of the two
//! f32 differences to the neighbours (ties: the code of smaller value); a block whose scale is 0
//! stores the code of 0.
//!
//! ## Encoding in constant time
//! The kernel computes exactly the reference's code without searching ([`Codebook`]). For each
//! pair of neighbouring codes `k − 1`, `k`, the f32 `x` the reference codes `k` form an interval
//! ending at `map[k]` (one difference falls and the other rises with `x`), whose least value is
//! the threshold `t_k`; so the code of any non-NaN `x` is the number of thresholds `<= x`. The f32
//! are cut into buckets by the sign, the exponent and the top 7 mantissa bits (one bucket for
//! `|x| < 2^−23`, 128 per binade up to 1, one for `|x| >= 1`, per sign); no bucket holds more
//! than one threshold after its least value. One 32-bit entry per bucket holds the count at the
//! bucket's least value and the low 16 bits of the threshold inside it (if any); inside a bucket
//! the order of the f32 is the order of those low bits (complemented for negative numbers), so
//! the code is the count plus one integer comparison. The thresholds (by bisection with the
//! reference's own comparison) and the entries are built at compile time, and the build fails if
//! a bucket holds two thresholds or a threshold lies in a shared end bucket: 23 568 + 11 784
//! bytes of entries beside the two 1 KiB maps (the thresholds are separate statics, for the
//! tests: [`SIGNED_THRESHOLDS`], [`UNSIGNED_THRESHOLDS`]). A block is encoded in three passes
//! ([`Codebook::encode_block_on`]): the quotients by the block scale with their bucket indices,
//! then the table loads, then the final comparisons; the compiler vectorises the division and
//! the integer steps, and the table loads go through the backend's
//! [`gather_u32`](crate::arch::Simd::gather_u32). The kernel tests compare the encoder, value by value
//! and block by block, with the reference at every boundary and at random bit patterns, and a
//! one-off exhaustive run compared them on every f32 of `[−1, 1]` (an ignored test).
//!
//! ## Accuracy
//! Differences from f32 Adam: only the stored moments are rounded, each to a neighbouring code of
//! `x / scale`: the relative gap between neighbouring codes is at most 11.6% (`m`) and 6.4% (`v`)
//! in the top decade (`|x| ≥ 0.1·scale`), 19.8% / 11.6% in the next, and grows towards 0 (83% for
//! `m` in the lowest decade); `|m| < 2.75e-7·scale` rounds to 0. So a run drifts from f32 Adam by
//! the accumulated rounding of the moments, not by the update formula, which is f32 Adam's.
//! Differences from bitsandbytes: its CUDA kernels fold the bias corrections differently
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
//! The whole step runs inside the backend's entry (one dispatch per call), block by block on two
//! stack blocks of 256 `f32` (so the moments stay in L1 between passes): the codes' values read
//! from the code book by the backend's [`lookup_codes`](crate::arch::Simd::lookup_codes), then
//! the Adam arithmetic (the block scale's multiply first) with the new block maxima fused in,
//! through the SIMD driver (no FMA; the maximum is exact and order-free, NaN if any moment is
//! NaN), then the bucket encoding, whose first pass divides by the new scales (IEEE division
//! gives the same quotient in any lane; the integer results are exact; the entries are read by
//! the backend's [`gather_u32`](crate::arch::Simd::gather_u32)). Table reads are copies of the
//! entries, so results are bit-identical on every backend, and bit-identical to the earlier
//! implementation (a dispatch per block, scalar maxima and divisions, a binary search per
//! element), which the kernel tests transcribe and compare on every backend.
//!
//! Speed: the table reads are most of the time. AVX-512 reads 32 code values at a time with
//! 16-bit permutes from registers (the table's low and high halves as two planes of 256 words)
//! and the encoder's entries with `vpgatherdd`; the other backends read one entry at a time.
//! On the AMD Zen 4 it was measured on, the permutes read a code's value in about 0.1 ns where
//! the compiler's gather took 0.35 ns; the encoder's gathers, about 0.3 ns per element per
//! moment, are now half of the step (`benches/NOTES.md`).
//!
//! IEEE behaviour: a NaN or infinite moment makes its block's scale NaN or Inf, which poisons the
//! whole block's decoded moments at the next step (skip poisoned steps with
//! [`all_finite`](crate::vector::all_finite)).

use super::{non_negative, positive, unit_half_open, RuleConfig, WeightDecay};
use core::marker::PhantomData;
use core::mem::size_of;

use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{Kernel, Simd};
use crate::error::check_len;
use crate::{Error, Exec, Rounding, Storage};

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
///
/// For [`SIGNED_MAP`] and [`UNSIGNED_MAP`] (the statics themselves) this is the constant-time
/// bucket search the kernel uses ([`Codebook`]); for any other map it is
/// [`nearest_code_reference`]. The two give the same code for every non-NaN `x`.
pub fn nearest_code(map: &[f32; 256], x: f32) -> u8 {
    if core::ptr::eq(map, &SIGNED_MAP) {
        SIGNED_CODEBOOK.encode(x)
    } else if core::ptr::eq(map, &UNSIGNED_MAP) {
        UNSIGNED_CODEBOOK.encode(x)
    } else {
        nearest_code_reference(map, x)
    }
}

/// The definition of the encoding, kept as the reference the tables are built from and tested
/// against: the first index `lo` whose value is `>= x` (binary search over the sorted map); `0`
/// if `lo = 0`, `255` if there is none; otherwise `lo` if `map[lo] − x < x − map[lo − 1]` (both
/// differences rounded in `f32`), else `lo − 1` (ties: the smaller code). `x` must not be NaN.
pub fn nearest_code_reference(map: &[f32; 256], x: f32) -> u8 {
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

// ------------------------------------------------------------------ constant-time encoding
//
// For neighbouring codes `k − 1`, `k`, the reference picks `k` for `x` in `(map[k−1], map[k]]`
// exactly when `map[k] − x < x − map[k−1]` in f32. The left side never increases with `x` and the
// right side never decreases (rounding is monotone), so the set where `k` wins is an interval
// ending at `map[k]`: its least f32 is the threshold `t_k`, and `t_1 < … < t_255`. Hence the
// reference's code of any non-NaN `x` is the number of thresholds `<= x` (below `map[0]` none
// are, above `map[255]` all are).
//
// A bucket is the set of f32 sharing the sign, the exponent and the top `MANTISSA_BITS` mantissa
// bits (plus two shared end buckets per sign: `|x| < 2^−23` and `|x| >= 1`). Each bucket's table
// entry holds the count at the bucket's least value and, when one threshold lies inside the
// bucket (at most one does, checked at compile time), that threshold's remaining low mantissa
// bits. Inside a bucket the f32 order is the order of the low bits (reversed for negative
// numbers, so those are complemented first), so the code is the count plus one integer
// comparison: no float comparison and no second table.

/// Mantissa bits of `|x|` in the bucket index.
const MANTISSA_BITS: u32 = 7;
/// `|x| < 2^−LOW_BINADES` shares one bucket (no threshold of either map is that small, checked
/// at compile time), as does `|x| >= 1` (no threshold is larger than 1).
const LOW_BINADES: u32 = 23;
/// Buckets per sign: one for `|x| < 2^−23`, `2^7` per binade `[2^−23, 1)`, one for `|x| >= 1`.
const BUCKETS: usize = ((LOW_BINADES as usize) << MANTISSA_BITS) + 2;
/// `|x|`'s bits shifted right by this, minus [`FIRST_KEY`], index the binades' buckets; the
/// bits below it are the position inside a bucket.
const SHIFT: u32 = 23 - MANTISSA_BITS;
/// The bits of `x` that order it inside its bucket.
const LOW_MASK: u32 = (1 << SHIFT) - 1;
/// An entry's split when no threshold lies inside the bucket: above every low part.
const NO_SPLIT: u32 = 1 << SHIFT;
/// `(bits of 2^−23) >> SHIFT`, the key of the first binade bucket (bucket 1).
const FIRST_KEY: u32 = (127 - LOW_BINADES) << MANTISSA_BITS;

/// The constant-time encoder of one dynamic map: one 32-bit entry per bucket, the reference code
/// of the bucket's least value in bits 0..8 and, from bit 8, the ordered low bits of the
/// threshold inside the bucket, or `2^SHIFT` if none.
///
/// `B` is `2·BUCKETS` for the signed map (negative buckets by decreasing `|x|`, then positive
/// ones) and `BUCKETS` for the unsigned map, where every `x <= 0` goes to bucket 0 (its code is
/// 0: every threshold is positive).
pub struct Codebook<const B: usize> {
    entries: [u32; B],
}

/// The signed map's encoder: 23 568 bytes.
pub static SIGNED_CODEBOOK: Codebook<{ 2 * BUCKETS }> = Codebook::new(&SIGNED_MAP);
/// The unsigned map's encoder: 11 784 bytes.
pub static UNSIGNED_CODEBOOK: Codebook<BUCKETS> = Codebook::new(&UNSIGNED_MAP);

/// The thresholds of [`SIGNED_MAP`]: `[k]` is `t_k`, the least f32 coded `k` (`k = 1..=255`;
/// `[0]` is NaN). Not used by the kernel (a separate static, so firmware does not link it).
pub static SIGNED_THRESHOLDS: [f32; 256] = thresholds_of(&SIGNED_MAP);
/// The thresholds of [`UNSIGNED_MAP`], as [`SIGNED_THRESHOLDS`].
pub static UNSIGNED_THRESHOLDS: [f32; 256] = thresholds_of(&UNSIGNED_MAP);

/// The thresholds of `map` (sorted, distinct, finite), by bisection over the f32 between
/// neighbouring codes with the reference's own comparison; fails to compile if a threshold falls
/// into a shared end bucket.
const fn thresholds_of(map: &[f32; 256]) -> [f32; 256] {
    let mut thresholds = [f32::NAN; 256];
    let mut k = 1;
    while k < 256 {
        let (below, above) = (map[k - 1], map[k]);
        // Least key in (below, above] where `above − x < x − below`; true at `above`.
        let (mut lo, mut hi) = (order_key(below) + 1, order_key(above));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let x = from_order_key(mid);
            if above - x < x - below {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let t = from_order_key(lo);
        let a = t.abs();
        assert!(
            a >= f32::from_bits((127 - LOW_BINADES) << 23) && a < 1.0 || t == 1.0,
            "threshold in a shared end bucket"
        );
        thresholds[k] = t;
        k += 1;
    }
    thresholds
}

/// A total order of non-NaN f32 as u32 (`−0` just below `+0`).
const fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The inverse of [`order_key`].
const fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7FFF_FFFF } else { !k })
}

/// The low bits of `x` in the order of `x` inside its bucket: the bits below [`SHIFT`],
/// complemented for a negative `x` (whose larger magnitudes are smaller values).
#[inline(always)]
const fn ordered_low(bits: u32) -> u32 {
    (bits ^ ((bits as i32 >> 31) as u32)) & LOW_MASK
}

impl<const B: usize> Codebook<B> {
    const SIGNED: bool = B == 2 * BUCKETS;

    /// Builds the bucket entries by counting the map's thresholds ([`thresholds_of`]); fails to
    /// compile if a bucket holds more than one threshold after its least value.
    const fn new(map: &[f32; 256]) -> Self {
        assert!(B == 2 * BUCKETS || B == BUCKETS);
        let thresholds = thresholds_of(map);
        let mut entries = [0u32; B];
        let mut b = 0;
        while b < B {
            let (least, greatest) = Self::bucket_range(b);
            let first = count_le(&thresholds, least);
            let last = count_le(&thresholds, greatest);
            assert!(last - first <= 1, "more than one threshold inside a bucket");
            let split = if last > first {
                ordered_low(thresholds[first + 1].to_bits())
            } else {
                NO_SPLIT
            };
            entries[b] = first as u32 | split << 8;
            b += 1;
        }
        Codebook { entries }
    }

    /// The least and greatest f32 of bucket `b`.
    const fn bucket_range(b: usize) -> (f32, f32) {
        // The magnitudes of bucket `j` of one sign: [lo, hi] as bits.
        const fn magnitudes(j: usize) -> (u32, u32) {
            if j == 0 {
                (0, (FIRST_KEY << SHIFT) - 1)
            } else if j == BUCKETS - 1 {
                (0x3F80_0000, 0x7F80_0000) // [1, inf]
            } else {
                let key = FIRST_KEY + (j as u32 - 1);
                (key << SHIFT, ((key + 1) << SHIFT) - 1)
            }
        }
        if Self::SIGNED {
            if b < BUCKETS {
                let (lo, hi) = magnitudes(BUCKETS - 1 - b);
                (-f32::from_bits(hi), -f32::from_bits(lo))
            } else {
                let (lo, hi) = magnitudes(b - BUCKETS);
                (f32::from_bits(lo), f32::from_bits(hi))
            }
        } else if b == 0 {
            (f32::NEG_INFINITY, f32::from_bits(magnitudes(0).1))
        } else {
            let (lo, hi) = magnitudes(b);
            (f32::from_bits(lo), f32::from_bits(hi))
        }
    }

    /// The bucket of the f32 with bits `bits` (not NaN): always below `B`. Integer arithmetic
    /// without branches, which the compiler vectorises.
    #[inline(always)]
    fn bucket(bits: u32) -> u32 {
        // All ones for a negative x (−0 included), else 0.
        let negative = ((bits as i32) >> 31) as u32;
        let key = (bits & 0x7FFF_FFFF) >> SHIFT;
        // 0 below the first binade, BUCKETS − 1 from 1 up (`max` then `−`, rather than a
        // saturating subtraction, so that it vectorises; then `min`).
        let j = (key.max(FIRST_KEY - 1) - (FIRST_KEY - 1)).min(BUCKETS as u32 - 1);
        if Self::SIGNED {
            // BUCKETS + j, or BUCKETS − 1 − j (= BUCKETS + !j) when negative.
            (BUCKETS as u32).wrapping_add(j ^ negative)
        } else {
            j & !negative
        }
    }

    /// The code from a bucket's entry and the bits of `x`.
    #[inline(always)]
    fn code(entry: u32, bits: u32) -> u8 {
        ((entry & 0xFF) + (ordered_low(bits) >= entry >> 8) as u32) as u8
    }

    /// The entry of bucket `b` (`b < B`, as [`Codebook::bucket`] returns).
    #[inline(always)]
    fn entry(&self, b: u32) -> u32 {
        debug_assert!((b as usize) < B);
        // SAFETY: `bucket` returns an index below B: `j` is clamped to 0..BUCKETS, and
        // BUCKETS + (j ^ all-ones) = BUCKETS − 1 − j (signed) or `j & 0` (unsigned, negative).
        unsafe { *self.entries.get_unchecked(b as usize) }
    }

    /// The code of `x`: exactly [`nearest_code_reference`] on this codebook's map, for every
    /// non-NaN `x` (for NaN: some code, without a panic).
    #[inline(always)]
    pub fn encode(&self, x: f32) -> u8 {
        let bits = x.to_bits();
        Self::code(self.entry(Self::bucket(bits)), bits)
    }

    /// [`Codebook::encode`] of the quotients `q = x / scale` (IEEE `f32` division) of every
    /// element of `x` into `codes` (equal lengths, at most [`BLOCK`]; panics otherwise), leaving
    /// the quotients in `x`. Three passes over `scratch`: the quotients and their buckets (IEEE
    /// division and integer arithmetic, which the compiler vectorises), the table loads (the
    /// backend's [`gather_u32`](Simd::gather_u32): one element at a time, or a hardware gather),
    /// the codes (vectorised again). The same codes as one `encode(x / scale)` at a time, on
    /// every backend.
    #[inline(always)]
    pub fn encode_block_on<S: Simd<f32>>(
        &self,
        s: S,
        x: &mut [f32],
        scale: f32,
        codes: &mut [u8],
        scratch: &mut [u32; BLOCK],
    ) {
        assert!(x.len() == codes.len() && x.len() <= BLOCK);
        let scratch = &mut scratch[..x.len()];
        // The division shares a pass with the bucket arithmetic, so the two overlap.
        for (b, x) in scratch.iter_mut().zip(x.iter_mut()) {
            *x /= scale;
            *b = Self::bucket(x.to_bits());
        }
        // SAFETY: `bucket` returns an index below B, the number of entries (see `entry`).
        unsafe { s.gather_u32(&self.entries, scratch) };
        for ((c, &q), &e) in codes.iter_mut().zip(&*x).zip(&*scratch) {
            *c = Self::code(e, q.to_bits());
        }
    }
}

/// The number of `thresholds[1..=255]` (sorted) that are `<= x` (not NaN).
const fn count_le(thresholds: &[f32; 256], x: f32) -> usize {
    let (mut lo, mut hi) = (1usize, 256usize);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if thresholds[mid] <= x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo - 1
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
            Quantizer::Dynamic => SIGNED_CODEBOOK.encode(q),
            Quantizer::Linear { .. } => {
                let l = self.signed_levels();
                (libm::roundf(q.clamp(-1.0, 1.0) * l) + l) as u8
            }
        }
    }

    /// The code of `q = v / scale` (`q` in `[0, 1]`, not NaN).
    fn encode_v(self, q: f32) -> u8 {
        match self {
            Quantizer::Dynamic => UNSIGNED_CODEBOOK.encode(q),
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

    /// Step number `step` (from 1) on `exec`'s backend, the parameters stored as `P` and the
    /// gradient as `G` (`f32`, `bf16`, `f16`, or [`KahanBf16`](crate::KahanBf16) parameters).
    /// Checks the hyper-parameters, `step >= 1` and every length before writing anything.
    ///
    /// 16-bit parameters are widened to `f32` (exact), the step runs unchanged, and the new
    /// parameters are rounded once when stored, with the context's [`Rounding`]: bit for bit on
    /// every backend, "widen, step in `f32`, round" (the moments are the 8-bit state in either
    /// case). Under stochastic rounding the parameters are drawing buffer 0 (the high halves of
    /// pair 0's words, [`crate::storage`]), with each element's index in the tensor, whatever its
    /// block.
    pub fn step_with<P: Storage<f32>, G: Storage<f32>>(
        &self,
        exec: &Exec,
        step: u64,
        params: &mut [P],
        grads: &[G],
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
        let (sm, sv) = scales.split_at_mut(n.div_ceil(BLOCK));
        let draw = match exec.rounding() {
            Rounding::NearestEven => None,
            Rounding::Stochastic(key) => Some(Draw::new(&key)),
        };
        exec.run(Adam8Kernel::<P, G> {
            n,
            p: params.as_mut_ptr().cast(),
            g: grads.as_ptr().cast(),
            draw,
            _types: PhantomData,
            cm: cm.as_mut_ptr(),
            cv: cv.as_mut_ptr(),
            sm: sm.as_mut_ptr(),
            sv: sv.as_mut_ptr(),
            c,
            quant: self.quantizer,
        });
        Ok(())
    }
}

impl RuleConfig<f32> for Adam8 {
    const NAME: &'static str = "adam8";

    fn validate(&self) -> Result<(), Error> {
        Adam8::validate(self)
    }

    fn lr(&self) -> f32 {
        self.lr
    }

    fn with_lr(self, lr: f32) -> Self {
        Adam8 { lr, ..self }
    }

    fn without_weight_decay(self) -> Self {
        Adam8 {
            weight_decay: WeightDecay::None,
            ..self
        }
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

/// The code books of `m` and `v` (a code's value before the block scale): the dynamic maps
/// themselves, or the linear grid's values written into `grids`.
#[inline(always)]
fn code_books(quant: Quantizer, grids: &mut [[f32; 256]; 2]) -> (&[f32; 256], &[f32; 256]) {
    match quant {
        Quantizer::Dynamic => (&SIGNED_MAP, &UNSIGNED_MAP),
        Quantizer::Linear { .. } => {
            let [m, v] = grids;
            for (code, (m, v)) in (0..=255u8).zip(m.iter_mut().zip(v.iter_mut())) {
                *m = quant.decode_m(code);
                *v = quant.decode_v(code);
            }
            (m, v)
        }
    }
}

/// One moment of one block to requantise: the new moments `x` (overwritten with the quotients
/// `x / scale`), the new block scale and the codes to write.
struct Requantise<'a> {
    x: &'a mut [f32],
    scale: f32,
    codes: &'a mut [u8],
}

/// Requantises one block: the code of each quotient `m / m.scale`, `v / v.scale`, the zero code
/// where the scale is 0 or NaN (the whole block) or the quotient is NaN.
#[inline(always)]
fn encode<S: Simd<f32>>(
    s: S,
    quant: Quantizer,
    m: Requantise,
    v: Requantise,
    scratch: &mut [u32; BLOCK],
) {
    let encode_m = |q| quant.encode_m(q);
    let encode_v = |q| quant.encode_v(q);
    let zero = quant.signed_zero();
    encode_moment(s, quant, &SIGNED_CODEBOOK, encode_m, zero, m, scratch);
    encode_moment(s, quant, &UNSIGNED_CODEBOOK, encode_v, 0, v, scratch);
}

/// One moment's half of [`encode`], through `book` (dynamic map) or `linear` (linear
/// quantiser); `zero` is the moment's code of 0.
#[inline(always)]
fn encode_moment<S: Simd<f32>, const B: usize>(
    s: S,
    quant: Quantizer,
    book: &Codebook<B>,
    linear: impl Fn(f32) -> u8,
    zero: u8,
    Requantise { x, scale, codes }: Requantise,
    scratch: &mut [u32; BLOCK],
) {
    if scale == 0.0 || scale.is_nan() {
        codes.fill(zero);
        return;
    }
    match quant {
        // A finite scale is the largest magnitude of a block without NaN, so no quotient is NaN.
        Quantizer::Dynamic if scale.is_finite() => {
            book.encode_block_on(s, x, scale, codes, scratch)
        }
        // An infinite scale makes NaN quotients (Inf / Inf).
        _ => {
            for (c, &x) in codes.iter_mut().zip(&*x) {
                let q = x / scale;
                *c = match quant {
                    _ if q.is_nan() => zero,
                    Quantizer::Dynamic => book.encode(q),
                    Quantizer::Linear { .. } => linear(q),
                };
            }
        }
    }
}

/// The whole step, block by block (decode, Adam and the new scales in the SIMD driver, encode),
/// inside the backend's entry: `p`, `g`, `cm`, `cv` hold `n` elements, `sm`, `sv` `⌈n/256⌉`.
struct Adam8Kernel<P, G> {
    n: usize,
    /// The parameters, stored as `P`.
    p: *mut u8,
    /// The gradient, stored as `G`.
    g: *const u8,
    /// The parameters' random bits under stochastic rounding.
    draw: Option<Draw<3>>,
    _types: PhantomData<(P, G)>,
    cm: *mut u8,
    cv: *mut u8,
    sm: *mut f32,
    sv: *mut f32,
    c: Consts,
    quant: Quantizer,
}

impl<P: Storage<f32>, G: Storage<f32>> Kernel<f32> for Adam8Kernel<P, G> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let c = self.c;
        let mut m = [0.0f32; BLOCK];
        let mut v = [0.0f32; BLOCK];
        let mut scratch = [0u32; BLOCK];
        let mut grids = [[0.0f32; 256]; 2];
        let (book_m, book_v) = code_books(self.quant, &mut grids);
        for b in 0..self.n.div_ceil(BLOCK) {
            let lo = b * BLOCK;
            let len = (self.n - lo).min(BLOCK);
            // SAFETY: `step_with` checked that params, grads and each half of the codes hold n
            // elements and each half of the scales ⌈n/256⌉, and took them as exclusive (or shared,
            // for grads) borrows of distinct slices; block b covers lo..lo + len <= n.
            let (cm, cv, sm, sv) = unsafe {
                (
                    core::slice::from_raw_parts_mut(self.cm.add(lo), len),
                    core::slice::from_raw_parts_mut(self.cv.add(lo), len),
                    &mut *self.sm.add(b),
                    &mut *self.sv.add(b),
                )
            };
            let (m, v) = (&mut m[..len], &mut v[..len]);
            // The codes' values; the adam pass multiplies them by the scales.
            s.lookup_codes(book_m, cm, m);
            s.lookup_codes(book_v, cv, v);
            let (old_sm, old_sv) = (s.splat(*sm), s.splat(*sv));
            // The new scales: the largest |m| and v, NaN if any is NaN, 0 for none. `max_nan`
            // keeps the accumulator unless the new lane is larger or NaN, so a lane only ever
            // holds +0, a positive value or NaN; the driver's zero-padded tail lanes compute
            // m = v = +0, which changes no maximum.
            let zero = s.splat(0.0);
            let (mut mmax, mut vmax) = (zero, zero);
            // SAFETY: the parameter and gradient blocks hold `len` elements of their types
            // (above), `m`, `v` are stack buffers of `len` f32; the three written buffers are
            // distinct and none overlaps the gradient.
            unsafe {
                zip_stored::<f32, S, P, f32, G, 3, 1>(
                    s,
                    len,
                    [
                        self.p.add(lo * size_of::<P>()),
                        m.as_mut_ptr().cast(),
                        v.as_mut_ptr().cast(),
                    ],
                    [self.g.add(lo * size_of::<G>())],
                    self.draw.map(|d| d.shifted(lo)),
                    #[inline(always)]
                    |[p, m, v], [g], _| {
                        *m = s.mul(*m, old_sm);
                        *v = s.mul(*v, old_sv);
                        adam(s, &c, p, m, v, g);
                        mmax = s.max_nan(s.abs(*m), mmax);
                        vmax = s.max_nan(*v, vmax);
                    },
                )
            }
            // One NaN for any NaN lane, as the scalar maximum returned.
            let canonical = |x: f32| if x.is_nan() { f32::NAN } else { x };
            *sm = canonical(s.reduce_max(mmax));
            *sv = canonical(s.reduce_max(vmax));
            let m = Requantise {
                x: m,
                scale: *sm,
                codes: cm,
            };
            let v = Requantise {
                x: v,
                scale: *sv,
                codes: cv,
            };
            encode(s, self.quant, m, v, &mut scratch);
        }
    }
}

/// Adam on one vector of parameters, moments and gradients.
#[inline(always)]
fn adam<S: Simd<f32>>(s: S, c: &Consts, p: &mut S::V, m: &mut S::V, v: &mut S::V, g: S::V) {
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
}
