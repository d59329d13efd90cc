//! Shared helpers of the kernel tests: backends to test, seeded inputs with special values mixed
//! in, bitwise comparison, and the error-budget table.
#![allow(dead_code)]

use descent_kernels::random::{seeded, uniform01, Xoshiro256PlusPlus};
use descent_kernels::reduced::scalar::{bf16_stochastic, f16_stochastic};
use descent_kernels::storage::random_bits;
use descent_kernels::{Backend, Element, Exec, KahanBf16, Rule, StochasticKey, Storage};
use half::{bf16, f16};
use rand_core::Rng;

/// Every backend that can run on this machine (always includes the scalar reference).
pub fn backends() -> Vec<Backend> {
    let v: Vec<Backend> = Backend::available().collect();
    assert!(v.contains(&Backend::Scalar));
    // Silence on success, but say which backends a run covered when asked (`--nocapture`).
    println!("backends under test: {v:?}");
    v
}

/// Backends other than the reference.
pub fn simd_backends() -> Vec<Backend> {
    backends()
        .into_iter()
        .filter(|&b| b != Backend::Scalar)
        .collect()
}

/// Bitwise equality, except that any NaN equals any NaN (NaN payloads and signs are not part of
/// any contract: x86 and aarch64 produce different default NaNs).
pub fn same<T: Element>(a: T, b: T) -> bool {
    (a.is_nan() && b.is_nan()) || a.bits() == b.bits()
}

/// Asserts two buffers are equal under [`same`], naming the first differing element.
#[track_caller]
pub fn assert_same<T: Element>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            same(*g, *w),
            "{what}: element {i} is {g:?} ({:?}), reference {w:?} ({:?})",
            g.bits(),
            w.bits()
        );
    }
}

/// Special values mixed into inputs: signed zeros, subnormals, infinities, NaN, extremes.
pub fn specials<T: Element>() -> [T; 10] {
    let sub = T::min_positive_value() * T::epsilon(); // smallest positive subnormal
    [
        T::zero(),
        -T::zero(),
        sub,
        -sub * T::from_f64_round(3.0),
        T::infinity(),
        T::neg_infinity(),
        T::nan(),
        T::max_value(),
        T::min_positive_value(),
        -T::from_f64_round(1e-30),
    ]
}

/// Fills `out` from `rng`: mostly values in `[-scale, scale]`, and with probability `special_rate`
/// a value from [`specials`].
pub fn fill_mixed<T: Element>(
    rng: &mut Xoshiro256PlusPlus,
    out: &mut [T],
    scale: f64,
    special_rate: f64,
) {
    let sp = specials::<T>();
    for x in out {
        *x = if uniform01(rng) < special_rate {
            sp[(rng.next_u32() as usize) % sp.len()]
        } else {
            T::from_f64_round(scale * (2.0 * uniform01(rng) - 1.0))
        };
    }
}

/// A buffer of `len` mixed values.
pub fn mixed<T: Element>(
    rng: &mut Xoshiro256PlusPlus,
    len: usize,
    scale: f64,
    special_rate: f64,
) -> Vec<T> {
    let mut v = vec![T::zero(); len];
    fill_mixed(rng, &mut v, scale, special_rate);
    v
}

/// The lengths every kernel is tested at: all of 0..=257 (every tail of every backend, several
/// full unrolled blocks).
pub const LENGTHS: std::ops::RangeInclusive<usize> = 0..=257;

/// The lengths of the exhaustive sweeps: [`LENGTHS`]; or, with `DESCENT_TEST_LENGTHS=tails` (set
/// by the AddressSanitizer run, where every element costs several times more), the subset that
/// still reaches every tail of every backend: all of 0..=40 (every remainder of every vector
/// width up to 32 lanes, and the first whole vectors) and the neighbours of 64, 128, 192 and 256
/// (the unrolled main loops' ends). The native run always sweeps every length.
pub fn lengths() -> Vec<usize> {
    match std::env::var("DESCENT_TEST_LENGTHS").as_deref() {
        Ok("tails") => (0..=40)
            .chain([63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257])
            .collect(),
        Ok(other) => panic!("DESCENT_TEST_LENGTHS={other}: the only value is `tails`"),
        Err(_) => LENGTHS.collect(),
    }
}
/// Sub-slice start offsets: every misalignment of a 32-byte vector for f32, and 8 for f64.
pub const OFFSETS: std::ops::Range<usize> = 0..8;
/// Guard elements after each sub-slice, checked untouched.
pub const GUARD: usize = 9;

/// Runs `kernel` on every available backend, for every length and offset, on `RW` read-write and
/// `RO` read-only buffers filled from `seed`, and requires every backend's buffers (the sub-slice
/// *and* the guard elements around it) to equal the scalar reference's bit for bit.
pub fn check_bit_exact<T: Element, const RW: usize, const RO: usize>(
    name: &str,
    seed: u64,
    special_rate: f64,
    kernel: impl Fn(Backend, [&mut [T]; RW], [&[T]; RO]),
) {
    let simd = simd_backends();
    let mut rng = seeded(seed);
    for len in lengths() {
        for off in OFFSETS {
            let total = off + len + GUARD;
            let rw0: [Vec<T>; RW] =
                std::array::from_fn(|_| mixed(&mut rng, total, 4.0, special_rate));
            let ro: [Vec<T>; RO] =
                std::array::from_fn(|_| mixed(&mut rng, total, 4.0, special_rate));
            let ro_slices: [&[T]; RO] = std::array::from_fn(|k| &ro[k][off..off + len]);
            let mut want = rw0.clone();
            {
                let w: Vec<&mut [T]> = want.iter_mut().map(|b| &mut b[off..off + len]).collect();
                kernel(Backend::Scalar, w.try_into().unwrap(), ro_slices);
            }
            for &b in &simd {
                let mut got = rw0.clone();
                {
                    let g: Vec<&mut [T]> = got.iter_mut().map(|b| &mut b[off..off + len]).collect();
                    kernel(b, g.try_into().unwrap(), ro_slices);
                }
                for k in 0..RW {
                    assert_same(
                        &format!("{name} on {b}, len {len}, offset {off}, buffer {k}"),
                        &got[k],
                        &want[k],
                    );
                }
            }
        }
    }
}

/// The execution context of an available backend (nearest-even rounding).
pub fn exec(b: Backend) -> Exec {
    Exec::on(b).expect("backend under test is available")
}

/// [`check_bit_exact`] for an update rule: parameters (`len`), the one flat state slice
/// (`rule.state_len(len)`, its own offset and guard) and the gradients, step number `step`.
pub fn check_rule<T: Element + Storage<T>, R: Rule<T>>(
    name: &str,
    seed: u64,
    special_rate: f64,
    rule: R,
    step: u64,
) {
    let simd = simd_backends();
    let mut rng = seeded(seed);
    for len in lengths() {
        for off in OFFSETS {
            let sl = rule.state_len(len);
            let soff = (off * 3) % 8;
            let params: Vec<T> = mixed(&mut rng, off + len + GUARD, 4.0, special_rate);
            let state: Vec<T> = mixed(&mut rng, soff + sl + GUARD, 4.0, special_rate);
            let grads: Vec<T> = mixed(&mut rng, off + len + GUARD, 4.0, special_rate);
            let g = &grads[off..off + len];
            let run = |b: Backend| {
                let (mut p, mut st) = (params.clone(), state.clone());
                rule.step_with(
                    &exec(b),
                    step,
                    &mut p[off..off + len],
                    g,
                    &mut st[soff..soff + sl],
                )
                .unwrap();
                (p, st)
            };
            let (want_p, want_s) = run(Backend::Scalar);
            for &b in &simd {
                let (got_p, got_s) = run(b);
                let at = format!("{name} on {b}, len {len}, offset {off}");
                assert_same(&format!("{at}, params"), &got_p, &want_p);
                assert_same(&format!("{at}, state"), &got_s, &want_s);
            }
        }
    }
}

/// Unit roundoff `u = eps / 2`.
pub fn unit_roundoff<T: Element>() -> f64 {
    T::epsilon().widen() / 2.0
}

/// The error-budget table of the kernels, in one place.
///
/// | kernels | backends | budget vs. reference |
/// |---|---|---|
/// | every update rule; axpy, scale, add, sub, mul, div | all | 0 ulp: bit-identical to the scalar reference (NaN matches any NaN) |
/// | max_abs, all_finite | all | exact |
/// | dot, sum, sum_squares | all | `(n/L + 8)·u·Σ|terms| + n·2^emin_sub` against the exact sum |
/// | norm2 | all | `((n/L + 8)·u + 2u)·‖x‖` relative, for any finite input (no overflow/underflow) |
///
/// `L` is the backend's `f32` lane count (its accumulators interleave by lanes), `u` the unit
/// roundoff of the element type, `2^emin_sub` its smallest subnormal (product underflow).
pub fn reduction_budget<T: Element>(backend: Backend, n: usize, abs_terms: f64) -> f64 {
    let lanes = backend.lanes_f32() as f64;
    let sub = (T::min_positive_value() * T::epsilon()).widen();
    (n as f64 / lanes + 8.0) * unit_roundoff::<T>() * abs_terms + n as f64 * sub
}

/// Exact-enough sum of `terms` for the reference of a reduction: double-double accumulation
/// (TwoSum), so the reference's own error is ~2^-106 relative, far below any budget above.
pub fn sum_dd(terms: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    // Each item is an exact term split as hi + lo.
    let (mut s, mut c, mut naive) = (0.0f64, 0.0f64, 0.0f64);
    for (hi, lo) in terms {
        naive += hi;
        let t = s + hi;
        let bp = t - s;
        let err = (s - (t - bp)) + (hi - bp);
        s = t;
        c += err + lo;
    }
    // Infinite or NaN terms: IEEE says what the exact sum is (±Inf, or NaN for NaN or Inf − Inf),
    // and the plain sum gets exactly that; TwoSum's error terms would turn it into NaN.
    if !naive.is_finite() {
        return naive;
    }
    s + c
}

/// The product `a·b` split exactly as `hi + lo` (TwoProduct with FMA).
pub fn two_prod(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

/// The proptest configuration of a property whose every case covers every length and offset:
/// `default_cases` random cases, or fewer where `PROPTEST_CASES` is set lower (the ASan and
/// emulated aarch64 runs set it; a larger value does not raise a property's count, which is
/// raised here in the source).
pub fn proptest_config(default_cases: u32) -> proptest::prelude::ProptestConfig {
    let env = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    proptest::prelude::ProptestConfig {
        cases: env.map_or(default_cases, |e| e.min(default_cases)),
        ..proptest::prelude::ProptestConfig::default()
    }
}

/// A storage format as the tests round to it by hand, with the crate's public scalar references
/// (`half`'s nearest conversion, `bf16_stochastic`, `f16_stochastic`).
pub trait Stored: Storage<f32> + Copy {
    /// Round to nearest, ties to even (`half`'s conversion).
    fn nearest(x: f32) -> Self;
    /// Stochastic rounding with the 16 random bits `r` (a format that never draws: as `nearest`).
    fn stochastic(x: f32, r: u16) -> Self;
    fn to_f32(self) -> f32;
    /// The stored bits.
    fn bits(self) -> u32;
}

impl Stored for f32 {
    fn nearest(x: f32) -> Self {
        x
    }
    fn stochastic(x: f32, _: u16) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}

impl Stored for bf16 {
    fn nearest(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn stochastic(x: f32, r: u16) -> Self {
        bf16_stochastic(x, r)
    }
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
    fn bits(self) -> u32 {
        self.to_bits().into()
    }
}

impl Stored for f16 {
    fn nearest(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn stochastic(x: f32, r: u16) -> Self {
        f16_stochastic(x, r)
    }
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
    fn bits(self) -> u32 {
        self.to_bits().into()
    }
}

impl Stored for KahanBf16 {
    fn nearest(x: f32) -> Self {
        KahanBf16::from_f32(x)
    }
    fn stochastic(x: f32, _: u16) -> Self {
        KahanBf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
    fn bits(self) -> u32 {
        u32::from(self.hi.to_bits()) | u32::from(self.lo.to_bits()) << 16
    }
}

/// `x` rounded into `F` as a written buffer: nearest, or stochastically with the bits of drawing
/// buffer 0 of pair `pair` (the high halves of its words) at each element's index in the tensor
/// (the key's offset plus its index in `x`).
pub fn rounded<F: Stored>(x: &[f32], key: Option<StochasticKey>, pair: u32) -> Vec<F> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| match key {
            None => F::nearest(v),
            Some(k) => F::stochastic(
                v,
                random_bits(k.pair_key(pair), 0, k.offset.wrapping_add(i as u64)) as u16,
            ),
        })
        .collect()
}

pub fn bits<F: Stored>(v: &[F]) -> Vec<u32> {
    v.iter().map(|x| x.bits()).collect()
}
