//! The scalar reference conversions between `f32` and the 16-bit formats, on raw bits. Every SIMD
//! path is tested against these, and these against the `half` crate.

use crate::arch::Scalar;
use crate::storage::f16_stochastic_vector;

/// `f32 → bf16` bits, round to nearest, ties to even. NaN becomes a quiet NaN with the sign and
/// the top payload bits kept (as `half::bf16::from_f32`); overflow gives ±Inf.
#[inline(always)]
pub(crate) fn bf16_rne_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// `f32 → bf16` bits, stochastic: adds the 16 random bits `r` to the 16 bits that bf16 drops and
/// truncates, so the magnitude rounds up with probability exactly `low16 / 2^16`, the fractional
/// distance to the lower neighbour. NaN as [`bf16_rne_bits`]; ±Inf stays ±Inf.
#[inline(always)]
pub(crate) fn bf16_stochastic_bits(x: f32, r: u16) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    (b.wrapping_add(r as u32) >> 16) as u16
}

/// `bf16 → f32` (exact).
#[inline(always)]
pub(crate) fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `f32 → f16` bits, round to nearest, ties to even, with f16 subnormals; overflow gives ±Inf;
/// NaN becomes a quiet NaN with the sign and the top payload bits kept (as `half::f16::from_f32`).
#[inline(always)]
pub(crate) fn f16_rne_bits(x: f32) -> u16 {
    let x = x.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = x & 0x7F80_0000;
    let man = x & 0x007F_FFFF;
    if exp == 0x7F80_0000 {
        return if man == 0 {
            sign | 0x7C00
        } else {
            sign | 0x7E00 | (man >> 13) as u16
        };
    }
    let half_exp = (exp >> 23) as i32 - 127 + 15;
    if half_exp >= 0x1F {
        return sign | 0x7C00;
    }
    if half_exp <= 0 {
        // Subnormal (or zero) result.
        if 14 - half_exp > 24 {
            return sign;
        }
        let man = man | 0x0080_0000;
        let shift = (14 - half_exp) as u32;
        let mut half_man = man >> shift;
        let round_bit = 1u32 << (shift - 1);
        if man & round_bit != 0 && man & (3 * round_bit - 1) != 0 {
            half_man += 1;
        }
        return sign | half_man as u16;
    }
    let bits = ((half_exp as u32) << 10) | (man >> 13);
    let round_bit = 0x1000;
    let bits = if man & round_bit != 0 && man & (3 * round_bit - 1) != 0 {
        bits + 1 // a carry into the exponent is the correct result, up to Inf
    } else {
        bits
    };
    sign | bits as u16
}

/// `f16 → f32` (exact; NaN stays NaN, quiet).
#[inline(always)]
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = h & 0x7C00;
    let man = h & 0x03FF;
    if exp == 0x7C00 {
        return f32::from_bits(if man == 0 {
            sign | 0x7F80_0000
        } else {
            sign | 0x7FC0_0000 | (man << 13)
        });
    }
    if exp == 0 {
        // Zero or subnormal: man · 2^-24, exact in f32.
        let mag = man as f32 * f32::from_bits(0x3380_0000);
        return f32::from_bits(sign | mag.to_bits());
    }
    f32::from_bits(sign | (((exp >> 10) + 112) << 23) | (man << 13))
}

/// `f32 → f16` bits, stochastic with the 16 random bits `r` (see [`super::Rounding`]).
#[inline(always)]
pub(crate) fn f16_stochastic_bits(x: f32, r: u16) -> u16 {
    f16_rne_bits(f16_stochastic_vector(Scalar, x, r as f32))
}

/// Round to nearest even, `f32 → bf16` (the scalar reference; equals `half::bf16::from_f32`).
pub fn bf16_nearest(x: f32) -> half::bf16 {
    half::bf16::from_bits(bf16_rne_bits(x))
}

/// Stochastic rounding `f32 → bf16` with the 16 random bits `r`: the magnitude rounds up iff
/// `r >= 2^16 − d`, where `d` is the 16 bits bf16 drops, i.e. with probability exactly the
/// fractional distance `d / 2^16` for uniform `r`.
pub fn bf16_stochastic(x: f32, r: u16) -> half::bf16 {
    half::bf16::from_bits(bf16_stochastic_bits(x, r))
}

/// Round to nearest even, `f32 → f16` (the scalar reference; equals `half::f16::from_f32` up to
/// NaN payloads).
pub fn f16_nearest(x: f32) -> half::f16 {
    half::f16::from_bits(f16_rne_bits(x))
}

/// Stochastic rounding `f32 → f16` with the 16 random bits `r`: with `lo ≤ |x| < lo + u` the f16
/// neighbours of `|x|` (`u` the f16 spacing there; above the largest f16 the upper neighbour is
/// 2^16, which stores as Inf), the magnitude becomes `lo + u` iff `r < 2^16·(|x| − lo)/u`.
pub fn f16_stochastic(x: f32, r: u16) -> half::f16 {
    half::f16::from_bits(f16_stochastic_bits(x, r))
}

/// `bf16 → f32`, exact.
pub fn widen_bf16(x: half::bf16) -> f32 {
    bf16_bits_to_f32(x.to_bits())
}

/// `f16 → f32`, exact.
pub fn widen_f16(x: half::f16) -> f32 {
    f16_bits_to_f32(x.to_bits())
}
