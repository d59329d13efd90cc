//! Storage formats of buffers, and how a written buffer is rounded to its format.
//!
//! A buffer is stored as `f32`, `f64`, `half::bf16` or `half::f16` ([`Storage`]); the arithmetic
//! of a kernel runs in its *compute type* (`f64` for `f64` buffers, `f32` for the others). The
//! format is a type parameter of the one loop driver, so a rule's math is written once and runs
//! on every (backend × storage) pair: loads widen (exactly), stores round with the call's
//! [`Rounding`].
//!
//! ## Stochastic rounding: counter-based random bits
//! The random bits come from a counter-based generator, not from a sequential stream. The drawing
//! buffers of a call (the written 16-bit buffers in argument order) are taken in pairs: drawing
//! buffers `2q` and `2q + 1` share one 32-bit word per element. Element `i` of a call (its index in
//! the logical tensor: `offset + i` for a chunk that starts at `offset`) of pair `q` has the word
//!
//! ```text
//! key_q   = the 64-bit mix of (seed, stream, counter, q)   (SplitMix64 finaliser, chained)
//! word    = mix32((i mod 2^32) xor key_q.lo xor mix32(key_q.hi xor (i div 2^32)))
//! bits    = word >> 16 for drawing buffer 2q,  word & 0xFFFF for drawing buffer 2q + 1
//! ```
//!
//! with `mix32` the 32-bit integer hash "lowbias32" (xor-shift 16, multiply `0x7feb352d`,
//! xor-shift 15, multiply `0x846ca68b`, xor-shift 16), a bijection of 32-bit words with
//! near-ideal avalanche. The inner `mix32` depends only on the key and the high index word, so a
//! vector of elements costs one `mix32` per pair of buffers. The bits of an element depend only on
//! (seed, stream, counter, buffer, element index): they are computed in SIMD lanes, identical on
//! every backend, and identical however a buffer is split into chunks or threads (give each chunk
//! its `offset`). Advance `counter` once per step (or per call) so that successive steps draw
//! fresh bits; use `stream` to separate tensors or parameter groups that share a seed. A rule that
//! writes its buffers in several passes of one step documents which drawing buffer each is
//! ([`Muon::step_matrix_with`](crate::Muon::step_matrix_with): the parameters 0, the momentum
//! buffer 2).

use crate::arch::Simd;
use crate::Element;

/// A storage format of a buffer (more may be added: match with a wildcard arm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// `f32`, never rounded.
    F32,
    /// `f64`, never rounded.
    F64,
    /// `half::bf16` (8-bit exponent, 7-bit mantissa).
    Bf16,
    /// `half::f16` (IEEE binary16: 5-bit exponent, 10-bit mantissa).
    F16,
    /// [`KahanBf16`]: a bf16 value and its bf16 compensation.
    KahanBf16,
}

impl Format {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Format::F64 => 8,
            Format::F32 | Format::KahanBf16 => 4,
            Format::Bf16 | Format::F16 => 2,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::DrawnF32 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for super::KahanBf16 {}
}

/// An element type a buffer can be stored as, for kernels computing in `T` (sealed): `f32`,
/// `half::bf16`, `half::f16` for `T = f32` (the default), `f64` for `T = f64`.
pub trait Storage<T = f32>: Copy + sealed::Sealed + 'static {
    /// The format of this type.
    const FORMAT: Format;
    /// Whether storing a `T` rounds (so that stochastic rounding draws random bits for it).
    const NARROWS: bool;
    /// Whether a rule's loop over buffers of this format is specialised per call choice
    /// ([`crate::rules`]): yes for the compute types, no for the narrow formats, whose loops are
    /// bound by the conversions (and would multiply code size by the number of format
    /// combinations).
    #[doc(hidden)]
    type Loops: crate::rules::LoopPolicy;
    /// Loads `LANES` values and widens them to `T` (exact).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable and `p` aligned for `Self`.
    #[doc(hidden)]
    unsafe fn load_vec<S: Simd<T>>(s: S, p: *const Self) -> S::V
    where
        T: Element;
    /// Rounds `LANES` values to this format (stochastically with the random lanes `r` when given
    /// and [`Storage::NARROWS`]; nearest even otherwise) and stores them.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable and `p` aligned for `Self`.
    #[doc(hidden)]
    unsafe fn store_vec<S: Simd<T>>(s: S, p: *mut Self, v: S::V, r: Option<S::V>)
    where
        T: Element;
}

macro_rules! plain_storage {
    ($t:ty, $fmt:ident) => {
        impl Storage<$t> for $t {
            const FORMAT: Format = Format::$fmt;
            const NARROWS: bool = false;
            type Loops = crate::rules::Specialized;
            #[inline(always)]
            unsafe fn load_vec<S: Simd<$t>>(s: S, p: *const $t) -> S::V {
                // SAFETY: forwarded caller contract.
                unsafe { s.load(p) }
            }
            #[inline(always)]
            unsafe fn store_vec<S: Simd<$t>>(s: S, p: *mut $t, v: S::V, _r: Option<S::V>) {
                // SAFETY: forwarded caller contract.
                unsafe { s.store(p, v) }
            }
        }
    };
}
plain_storage!(f32, F32);
plain_storage!(f64, F64);

/// An `f32` buffer that draws random bits under stochastic rounding although it is stored
/// unrounded: gradient quantization rounds in its body with the bits (crate-internal).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct DrawnF32(#[allow(dead_code)] f32);

impl Storage<f32> for DrawnF32 {
    const FORMAT: Format = Format::F32;
    const NARROWS: bool = true;
    type Loops = crate::rules::General;
    #[inline(always)]
    unsafe fn load_vec<S: Simd<f32>>(s: S, p: *const Self) -> S::V {
        // SAFETY: forwarded caller contract; `DrawnF32` is a transparent f32.
        unsafe { s.load(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_vec<S: Simd<f32>>(s: S, p: *mut Self, v: S::V, _r: Option<S::V>) {
        // SAFETY: forwarded caller contract; `DrawnF32` is a transparent f32.
        unsafe { s.store(p.cast(), v) }
    }
}

// `half::bf16` and `half::f16` are `#[repr(transparent)]` over `u16`: the kernels access them as
// `u16` bits.
impl Storage<f32> for half::bf16 {
    const FORMAT: Format = Format::Bf16;
    const NARROWS: bool = true;
    type Loops = crate::rules::General;
    #[inline(always)]
    unsafe fn load_vec<S: Simd<f32>>(s: S, p: *const Self) -> S::V {
        // SAFETY: forwarded caller contract; bf16 is a transparent u16.
        unsafe { s.load_bf16(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_vec<S: Simd<f32>>(s: S, p: *mut Self, v: S::V, r: Option<S::V>) {
        // SAFETY: forwarded caller contract; bf16 is a transparent u16.
        unsafe {
            match r {
                None => s.store_bf16_rne(p.cast(), v),
                Some(r) => s.store_bf16_sr(p.cast(), v, r),
            }
        }
    }
}

/// A bf16 parameter with a bf16 compensation term: the pair stands for `hi + lo`, about 16
/// significant bits, so that updates far below bf16's resolution accumulate instead of being
/// rounded away (Kahan-style compensated storage, the alternative to stochastic rounding; see
/// torchao's bf16 optimizers and "Revisiting BFloat16 Training", Zamirai et al.). 4 bytes per
/// parameter; `hi` alone is the bf16 parameter a bf16 model reads.
///
/// Loading widens to `hi + lo` (one `f32` addition). Storing `v` splits it: `hi = r(v)` and
/// `lo = r(v − hi)` (`v − hi` is exact), where `r` rounds to 8 significant bits by Veltkamp's
/// splitting (`γ = 65537·x`, `r(x) = γ + (x − γ)`: round to nearest, ties not necessarily to
/// even) and then truncates to bf16 (a no-op except in bf16's subnormal range). Every operation is
/// IEEE, so every backend gives the same bits (the sign of a zero is not kept). The pair differs from `v` by at most `2⁻¹⁷·|v|`
/// (half an 8-bit unit of `lo`, `|lo| ≤ 2⁻⁸·|v|`), plus `2⁻¹³³` in the subnormal range. For
/// `|x| ≥ 2¹¹¹` (where `65537·x` could overflow), ±Inf and NaN, `r` truncates; `lo` is 0 for
/// ±Inf. It never draws random bits: with stochastic rounding the other 16-bit buffers of a call
/// still round stochastically.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C, align(4))]
pub struct KahanBf16 {
    /// The bf16 value.
    pub hi: half::bf16,
    /// The compensation: what `hi` misses of the `f32` value, rounded toward zero to bf16.
    pub lo: half::bf16,
}

impl KahanBf16 {
    /// The pair for `v`, split as the kernels store it (the scalar reference of the split).
    pub fn from_f32(v: f32) -> KahanBf16 {
        let r = |x: f32| {
            let y = if x.abs() < f32::from_bits(0x7700_0000) {
                let g = 65537.0 * x;
                g + (x - g)
            } else {
                x
            };
            f32::from_bits(y.to_bits() & 0xFFFF_0000)
        };
        let hi = r(v);
        let lo = r(if hi.is_infinite() { 0.0 } else { v - hi });
        KahanBf16 {
            hi: half::bf16::from_bits((hi.to_bits() >> 16) as u16),
            lo: half::bf16::from_bits((lo.to_bits() >> 16) as u16),
        }
    }

    /// `hi + lo` in `f32`.
    pub fn to_f32(self) -> f32 {
        self.hi.to_f32() + self.lo.to_f32()
    }
}

impl Storage<f32> for KahanBf16 {
    const FORMAT: Format = Format::KahanBf16;
    const NARROWS: bool = false;
    type Loops = crate::rules::General;
    #[inline(always)]
    unsafe fn load_vec<S: Simd<f32>>(s: S, p: *const Self) -> S::V {
        // SAFETY: forwarded caller contract; a pair is 4 bytes, 4-aligned, read as one 32-bit
        // lane whose low half is `hi` and high half `lo` (little-endian).
        let x = unsafe { s.load(p.cast::<f32>()) };
        let lo = s.and(x, s.splat(f32::from_bits(0xFFFF_0000)));
        s.add(s.shl16(x), lo)
    }
    #[inline(always)]
    unsafe fn store_vec<S: Simd<f32>>(s: S, p: *mut Self, v: S::V, _r: Option<S::V>) {
        let mask = s.splat(f32::from_bits(0xFFFF_0000));
        let r = |x: S::V| {
            let g = s.mul(s.splat(65537.0), x);
            let split = s.add(g, s.sub(x, g));
            let small = s.lt(s.abs(x), s.splat(f32::from_bits(0x7700_0000))); // 2^111
            s.and(s.select(small, split, x), mask)
        };
        let hi = r(v);
        let infinite = s.gt(s.abs(hi), s.splat(f32::MAX));
        let lo = r(s.andnot(infinite, s.sub(v, hi)));
        let packed = s.or(lo, s.shr16(hi));
        // SAFETY: forwarded caller contract (see `load_vec`).
        unsafe { s.store(p.cast::<f32>(), packed) }
    }
}

impl Storage<f32> for half::f16 {
    const FORMAT: Format = Format::F16;
    const NARROWS: bool = true;
    type Loops = crate::rules::General;
    #[inline(always)]
    unsafe fn load_vec<S: Simd<f32>>(s: S, p: *const Self) -> S::V {
        // SAFETY: forwarded caller contract; f16 is a transparent u16.
        unsafe { s.load_f16(p.cast()) }
    }
    #[inline(always)]
    unsafe fn store_vec<S: Simd<f32>>(s: S, p: *mut Self, v: S::V, r: Option<S::V>) {
        let v = match r {
            None => v,
            Some(r) => f16_stochastic_vector(s, v, random_lanes_as_values(s, r)),
        };
        // SAFETY: forwarded caller contract; f16 is a transparent u16. A stochastic `v` is an f16
        // value (or ±2^16), so the nearest-even store is exact.
        unsafe { s.store_f16_rne(p.cast(), v) }
    }
}

/// Random-bit lanes (integers `< 2^16` in the low bits) as the `f32` values `0.0 ..= 65535.0`:
/// `(2^23 | r) − 2^23`, exact.
#[inline(always)]
pub(crate) fn random_lanes_as_values<S: Simd<f32>>(s: S, r: S::V) -> S::V {
    let magic = s.splat(f32::from_bits(crate::arch::F32_INT_MAGIC));
    s.sub(s.or(r, magic), magic)
}

/// Stochastic rounding of `x` to f16, returned as the `f32` value of the chosen neighbour (exactly
/// representable in f16, or `±2^16`, which stores as ±Inf), so that a nearest-even store is exact.
/// `r` holds the random lanes as `f32` integers in `[0, 2^16)`.
///
/// With `a = |x|`, `u` the f16 spacing in `a`'s binade (`2^(max(e, −14) − 10)`), `t` the nearest
/// f16 (clamped to `2^16` where it overflows) and `lo` the lower neighbour (`t` or `t − u`):
/// the magnitude becomes `lo + u` iff `r < 2^16·(a − lo)/u`, else `lo`. Every operation is exact
/// (neighbour differences, power-of-two scalings), so all backends agree bit for bit. NaN stays
/// NaN; ±Inf stays ±Inf; the sign (also of zero) is kept.
#[inline(always)]
pub(crate) fn f16_stochastic_vector<S: Simd<f32>>(s: S, x: S::V, r: S::V) -> S::V {
    let sign = s.splat(-0.0);
    let a = s.andnot(sign, x);
    let big = s.splat(65536.0);
    let t = s.f16_round_trip(a);
    let t = s.select(s.gt(t, big), big, t);
    let exp = s.and(a, s.splat(f32::from_bits(0x7F80_0000)));
    let min_normal = s.splat(f32::from_bits(0x3880_0000)); // 2^-14
    let u = s.mul(
        s.select(s.gt(exp, min_normal), exp, min_normal),
        s.splat(f32::from_bits(0x3A80_0000)), // 2^-10
    );
    let zero = s.splat(0.0);
    let lo = s.select(s.lt(s.sub(a, t), zero), s.sub(t, u), t);
    let q = s.mul(s.div(s.sub(a, lo), u), s.splat(65536.0));
    let up = s.lt(r, q);
    let m = s.select(up, s.add(lo, u), lo);
    s.or(m, s.and(x, sign))
}

/// How written 16-bit buffers are rounded from the compute-type results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to nearest, ties to even (deterministic).
    NearestEven,
    /// Stochastic rounding with 16 counter-based random bits per value (see the module
    /// documentation).
    Stochastic(StochasticKey),
}

impl Rounding {
    /// Stochastic rounding keyed by `seed` and `counter` (stream 0, offset 0).
    pub const fn stochastic(seed: u64, counter: u64) -> Rounding {
        Rounding::Stochastic(StochasticKey::new(seed).with_counter(counter))
    }
}

/// What the random bits of a stochastic-rounding call depend on, besides the buffer and the
/// element (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StochasticKey {
    /// The seed.
    pub seed: u64,
    /// A stream number: separates tensors or parameter groups that share a seed.
    pub stream: u64,
    /// The step or call counter: advance it so that successive calls draw fresh bits.
    pub counter: u64,
    /// The index of the call's first element in the logical tensor (non-zero for a chunk).
    pub offset: u64,
}

impl StochasticKey {
    /// Stream 0, counter 0, offset 0.
    pub const fn new(seed: u64) -> StochasticKey {
        StochasticKey {
            seed,
            stream: 0,
            counter: 0,
            offset: 0,
        }
    }
    /// The same key with stream `stream`.
    pub const fn with_stream(self, stream: u64) -> StochasticKey {
        StochasticKey { stream, ..self }
    }
    /// The same key with counter `counter`.
    pub const fn with_counter(self, counter: u64) -> StochasticKey {
        StochasticKey { counter, ..self }
    }
    /// The same key for a chunk that starts at element `offset` of the logical tensor.
    pub const fn at_offset(self, offset: u64) -> StochasticKey {
        StochasticKey { offset, ..self }
    }

    /// The 64-bit key of the `q`-th pair of drawing buffers of a call, as two 32-bit words.
    pub const fn pair_key(&self, q: u32) -> [u32; 2] {
        let mut h = splitmix64(self.seed ^ 0x6a09_e667_f3bc_c908);
        h = splitmix64(h ^ self.stream);
        h = splitmix64(h ^ self.counter);
        h = splitmix64(h ^ q as u64);
        [h as u32, (h >> 32) as u32]
    }
}

/// The SplitMix64 finaliser (Steele, Lea & Flood 2014) of `x + golden gamma`.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 32-bit integer hash "lowbias32" (C. Wellons, 2018), a bijection.
#[inline(always)]
pub const fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// The per-vector part of the word: `key.lo xor mix32(key.hi xor (index div 2^32))`.
#[inline(always)]
pub const fn word_key(key: [u32; 2], index: u64) -> u32 {
    key[0] ^ mix32(key[1] ^ (index >> 32) as u32)
}

/// The random word of element `index` under the pair key `key` (the scalar reference every
/// backend's random lanes equal).
#[inline(always)]
pub const fn random_word(key: [u32; 2], index: u64) -> u32 {
    mix32(index as u32 ^ word_key(key, index))
}

/// The 16 random bits of element `index` of the drawing buffer with ordinal `d` under the pair
/// key `key` of pair `d / 2`.
#[inline(always)]
pub const fn random_bits(key: [u32; 2], d: u32, index: u64) -> u32 {
    let w = random_word(key, index);
    if d % 2 == 0 {
        w >> 16
    } else {
        w & 0xFFFF
    }
}
