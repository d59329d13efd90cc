//! The 16-bit conversions of each backend ([`Half16`]), the stochastic-rounding bit stream, the
//! mixed-storage loop driver [`zip16`] and the dispatch of 16-bit kernels ([`run16`]).

use super::scalar::{bf16_bits_to_f32, bf16_rne_bits, bf16_stochastic_bits};
use super::scalar::{f16_bits_to_f32, f16_rne_bits};
use super::Format;
use crate::simd::{Scalar, Simd, MAX_LANES};
use crate::{Backend, Error};
use rand_core::Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// A backend's conversions between its `f32` vectors and `LANES` 16-bit values in memory.
/// Every method gives, in every lane, exactly the scalar reference's bits (NaN: some quiet NaN).
pub trait Half16: Simd<f32> {
    /// Loads `LANES` bf16 values and widens them (exact).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load_bf16(self, p: *const u16) -> Self::V;
    /// Loads `LANES` f16 values and widens them (exact).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    unsafe fn load_f16(self, p: *const u16) -> Self::V;
    /// Rounds to bf16, nearest even, and stores `LANES` values.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn store_bf16_rne(self, p: *mut u16, v: Self::V);
    /// Rounds to bf16 stochastically with the random lanes `r[0..LANES]` (each `< 2^16`), stores.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable and `r..r + LANES` readable.
    unsafe fn store_bf16_sr(self, p: *mut u16, v: Self::V, r: *const u32);
    /// Rounds to f16, nearest even, and stores `LANES` values.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    unsafe fn store_f16_rne(self, p: *mut u16, v: Self::V);
    /// `widen(f16_rne(v))` in registers.
    fn f16_round_trip(self, v: Self::V) -> Self::V;
}

impl Half16 for Scalar {
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> f32 {
        // SAFETY: the caller guarantees one readable element.
        bf16_bits_to_f32(unsafe { p.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> f32 {
        // SAFETY: the caller guarantees one readable element.
        f16_bits_to_f32(unsafe { p.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: f32) {
        // SAFETY: the caller guarantees one writable element.
        unsafe { p.write_unaligned(bf16_rne_bits(v)) }
    }
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: f32, r: *const u32) {
        // SAFETY: the caller guarantees one writable element and one readable random lane.
        unsafe { p.write_unaligned(bf16_stochastic_bits(v, r.read() as u16)) }
    }
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: f32) {
        // SAFETY: the caller guarantees one writable element.
        unsafe { p.write_unaligned(f16_rne_bits(v)) }
    }
    #[inline(always)]
    fn f16_round_trip(self, v: f32) -> f32 {
        f16_bits_to_f32(f16_rne_bits(v))
    }
}

/// f16 loads through the scalar reference, lane by lane (backends without f16 instructions).
///
/// # Safety
/// `p..p + LANES` must be readable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn load_f16_lanewise<S: Simd<f32>>(s: S, p: *const u16) -> S::V {
    let mut buf = [0.0f32; MAX_LANES];
    for (i, x) in buf.iter_mut().enumerate().take(S::LANES) {
        // SAFETY: i < LANES and the caller guarantees LANES readable elements.
        *x = f16_bits_to_f32(unsafe { p.add(i).read_unaligned() });
    }
    // SAFETY: `buf` holds MAX_LANES >= LANES elements.
    unsafe { s.load(buf.as_ptr()) }
}

/// f16 stores through the scalar reference, lane by lane.
///
/// # Safety
/// `p..p + LANES` must be writable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn store_f16_lanewise<S: Simd<f32>>(s: S, p: *mut u16, v: S::V) {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: `buf` holds MAX_LANES >= LANES elements.
    unsafe { s.store(buf.as_mut_ptr(), v) };
    for (i, x) in buf.iter().enumerate().take(S::LANES) {
        // SAFETY: i < LANES and the caller guarantees LANES writable elements.
        unsafe { p.add(i).write_unaligned(f16_rne_bits(*x)) };
    }
}

/// `widen(f16_rne(v))` through the scalar reference, lane by lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn f16_round_trip_lanewise<S: Simd<f32>>(s: S, v: S::V) -> S::V {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: `buf` holds MAX_LANES >= LANES elements, for the store and the load.
    unsafe {
        s.store(buf.as_mut_ptr(), v);
        for x in buf.iter_mut().take(S::LANES) {
            *x = f16_bits_to_f32(f16_rne_bits(*x));
        }
        s.load(buf.as_ptr())
    }
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
pub(crate) fn f16_stochastic_vector<S: Half16>(s: S, x: S::V, r: S::V) -> S::V {
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

/// The stochastic-rounding bit stream: element `i` of the `k`-th drawing buffer of a call uses
/// bits `16·(i mod 4) .. 16·(i mod 4) + 16` of `next_u64()` number `(i / 4)·K + k` (`K` drawing
/// buffers), whatever the backend's vector width. A call on `n` elements consumes exactly
/// `K·⌈n/4⌉` words; the unused bits of a last partial group are discarded.
pub(crate) struct Stream<'r, const K: usize> {
    rng: &'r mut Xoshiro256PlusPlus,
    words: [u64; K],
    draw: [bool; K],
}

impl<'r, const K: usize> Stream<'r, K> {
    pub(crate) fn new(rng: &'r mut Xoshiro256PlusPlus, draw: [bool; K]) -> Self {
        Stream {
            rng,
            words: [0; K],
            draw,
        }
    }

    /// Fills lanes `0..count` of each drawing buffer's random lanes for elements
    /// `start..start + count` (as integers and as `f32`); other lanes are left as they are.
    #[inline(always)]
    pub(crate) fn fill(
        &mut self,
        start: usize,
        count: usize,
        ru: &mut [[u32; MAX_LANES]; K],
        rf: &mut [[f32; MAX_LANES]; K],
    ) {
        for j in 0..count {
            let e = start + j;
            if e % 4 == 0 {
                for k in 0..K {
                    if self.draw[k] {
                        self.words[k] = self.rng.next_u64();
                    }
                }
            }
            let shift = 16 * (e % 4);
            for k in 0..K {
                let r = ((self.words[k] >> shift) & 0xFFFF) as u32;
                ru[k][j] = r;
                rf[k][j] = r as f32;
            }
        }
    }
}

/// A read-only buffer of a 16-bit kernel: its address and storage format.
#[derive(Clone, Copy)]
pub(crate) struct RoBuf {
    pub(crate) ptr: *const u8,
    pub(crate) fmt: Format,
}

/// A read-write buffer of a 16-bit kernel; `draw`: whether it consumes random bits in stochastic
/// mode (every 16-bit buffer does; an `f32` buffer only when its kernel asks, as quantization).
#[derive(Clone, Copy)]
pub(crate) struct RwBuf {
    pub(crate) ptr: *mut u8,
    pub(crate) fmt: Format,
    pub(crate) draw: bool,
}

impl RoBuf {
    pub(crate) fn of<T: super::Storage>(x: &[T]) -> RoBuf {
        RoBuf {
            ptr: x.as_ptr().cast(),
            fmt: T::FORMAT,
        }
    }
}

impl RwBuf {
    pub(crate) fn of<T: super::Storage>(x: &mut [T]) -> RwBuf {
        RwBuf {
            ptr: x.as_mut_ptr().cast(),
            fmt: T::FORMAT,
            draw: T::FORMAT != Format::F32,
        }
    }
}

/// Loads one vector of format `fmt` at `p`, widened to `f32`.
///
/// # Safety
/// `p` must be readable for `LANES` elements of `fmt`.
#[inline(always)]
pub(crate) unsafe fn load_fmt<S: Half16>(s: S, fmt: Format, p: *const u8) -> S::V {
    // SAFETY: forwarded caller contract; the casts match the element type of `fmt`.
    unsafe {
        match fmt {
            Format::F32 => s.load(p.cast()),
            Format::Bf16 => s.load_bf16(p.cast()),
            Format::F16 => s.load_f16(p.cast()),
        }
    }
}

/// Rounds one vector to `fmt` (stochastically with random lanes `ru`/`rf` when `stochastic`)
/// and stores it at `p`. `f32` is stored as is.
///
/// # Safety
/// `p` must be writable for `LANES` elements of `fmt`.
#[inline(always)]
pub(crate) unsafe fn store_fmt<S: Half16>(
    s: S,
    fmt: Format,
    p: *mut u8,
    v: S::V,
    stochastic: bool,
    ru: &[u32; MAX_LANES],
    rf: S::V,
) {
    // SAFETY: forwarded caller contract; `ru` holds MAX_LANES >= LANES lanes.
    unsafe {
        match (fmt, stochastic) {
            (Format::F32, _) => s.store(p.cast(), v),
            (Format::Bf16, false) => s.store_bf16_rne(p.cast(), v),
            (Format::Bf16, true) => s.store_bf16_sr(p.cast(), v, ru.as_ptr()),
            (Format::F16, false) => s.store_f16_rne(p.cast(), v),
            (Format::F16, true) => s.store_f16_rne(p.cast(), f16_stochastic_vector(s, v, rf)),
        }
    }
}

/// [`crate::simd::zip`] over buffers of mixed storage: each vector is loaded and widened to `f32`,
/// run through `body` (which also gets each written buffer's random lanes as `f32`, zero in
/// nearest-even mode), and each written buffer is rounded to its format and stored. The tail goes
/// through zero-padded stack buffers and the *same* body; random bits are drawn only for real
/// elements (see [`Stream`]). `rng`: `Some` for stochastic rounding.
///
/// # Safety
/// Every pointer must be valid for `n` elements of its format (reads for `ro`, reads and writes
/// for `rw`), and the `rw` ranges must not overlap each other or any `ro` range.
#[inline(always)]
pub(crate) unsafe fn zip16<S: Half16, const RW: usize, const RO: usize>(
    s: S,
    n: usize,
    rw: [RwBuf; RW],
    ro: [RoBuf; RO],
    rng: Option<&mut Xoshiro256PlusPlus>,
    mut body: impl FnMut(&mut [S::V; RW], [S::V; RO], [S::V; RW]),
) {
    let lanes = S::LANES;
    let stochastic = rng.is_some();
    let mut draw = [false; RW];
    for k in 0..RW {
        draw[k] = rw[k].draw;
    }
    let mut stream = rng.map(|r| Stream::new(r, draw));
    let mut ru = [[0u32; MAX_LANES]; RW];
    let mut rf = [[0.0f32; MAX_LANES]; RW];
    let zero = s.splat(0.0);
    let mut i = 0;
    while i < n {
        let count = if i + lanes <= n { lanes } else { n - i };
        let mut rv = [zero; RW];
        if let Some(st) = stream.as_mut() {
            st.fill(i, count, &mut ru, &mut rf);
            for k in 0..RW {
                // SAFETY: `rf[k]` holds MAX_LANES >= LANES lanes.
                rv[k] = unsafe { s.load(rf[k].as_ptr()) };
            }
        }
        let mut r = [zero; RO];
        let mut w = [zero; RW];
        if count == lanes {
            // SAFETY: i + LANES <= n, and every pointer is valid for n elements (caller contract).
            unsafe {
                for k in 0..RO {
                    r[k] = load_fmt(s, ro[k].fmt, ro[k].ptr.add(i * ro[k].fmt.size()));
                }
                for k in 0..RW {
                    w[k] = load_fmt(s, rw[k].fmt, rw[k].ptr.add(i * rw[k].fmt.size()));
                }
                body(&mut w, r, rv);
                for k in 0..RW {
                    let p = rw[k].ptr.add(i * rw[k].fmt.size());
                    store_fmt(s, rw[k].fmt, p, w[k], stochastic, &ru[k], rv[k]);
                }
            }
        } else {
            let mut rbuf = [[0u8; 4 * MAX_LANES]; RO];
            let mut wbuf = [[0u8; 4 * MAX_LANES]; RW];
            // SAFETY: i + count == n, so the copies stay inside the caller's buffers; the stack
            // buffers hold MAX_LANES >= LANES elements of any format.
            unsafe {
                for k in 0..RO {
                    let sz = ro[k].fmt.size();
                    let src = ro[k].ptr.add(i * sz);
                    core::ptr::copy_nonoverlapping(src, rbuf[k].as_mut_ptr(), count * sz);
                    r[k] = load_fmt(s, ro[k].fmt, rbuf[k].as_ptr());
                }
                for k in 0..RW {
                    let sz = rw[k].fmt.size();
                    let src = rw[k].ptr.add(i * sz);
                    core::ptr::copy_nonoverlapping(src, wbuf[k].as_mut_ptr(), count * sz);
                    w[k] = load_fmt(s, rw[k].fmt, wbuf[k].as_ptr());
                }
                body(&mut w, r, rv);
                for k in 0..RW {
                    let sz = rw[k].fmt.size();
                    let b = wbuf[k].as_mut_ptr();
                    store_fmt(s, rw[k].fmt, b, w[k], stochastic, &ru[k], rv[k]);
                    core::ptr::copy_nonoverlapping(b, rw[k].ptr.add(i * sz), count * sz);
                }
            }
        }
        i += count;
    }
}

/// A kernel over 16-bit storage, written once over [`Half16`].
pub(crate) trait Kernel16 {
    /// What the kernel returns.
    type Output;
    /// The kernel body, monomorphised per backend token.
    fn run<S: Half16>(self, s: S) -> Self::Output;
}

/// Checks `backend` and runs `k` on it. On the AVX2+FMA backend, f16 conversions use F16C when
/// [`f16c_available`]; otherwise they go through the scalar reference lane by lane (same bits).
#[inline]
pub(crate) fn run16<K: Kernel16>(backend: Backend, k: K) -> Result<K::Output, Error> {
    backend.ensure_available()?;
    Ok(match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::Sse2 => k.run(crate::simd::x86::Sse2::new()),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2Fma => {
            // SAFETY: availability was checked: the CPU has AVX2 and FMA.
            let t = unsafe { crate::simd::x86::Avx2Fma::new_unchecked() };
            if f16c_available() {
                // SAFETY: AVX2 and FMA (checked above) and F16C (just checked) are present.
                unsafe { super::x86::run16_avx2_f16c(super::x86::Avx2F16c(t), k) }
            } else {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                unsafe { super::x86::run16_avx2(t, k) }
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: availability was checked: the CPU has NEON.
        Backend::Neon => k.run(unsafe { crate::simd::neon::Neon::new_unchecked() }),
        _ => k.run(Scalar),
    })
}

#[cfg(target_arch = "x86_64")]
static F16C_DISABLED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Whether the AVX2+FMA backend converts f16 with F16C (`vcvtph2ps`/`vcvtps2ph`): F16C enabled at
/// compile time, or (with `std`) detected at run time, once. Always `false` off x86-64.
pub fn f16c_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use core::sync::atomic::Ordering;
        if F16C_DISABLED.load(Ordering::Relaxed) {
            return false;
        }
        if cfg!(target_feature = "f16c") {
            return true;
        }
        #[cfg(feature = "std")]
        {
            use core::sync::atomic::AtomicU8;
            static CACHE: AtomicU8 = AtomicU8::new(0);
            match CACHE.load(Ordering::Relaxed) {
                1 => return false,
                2 => return true,
                _ => {
                    let yes = std::arch::is_x86_feature_detected!("f16c");
                    CACHE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                    return yes;
                }
            }
        }
    }
    #[allow(unreachable_code)]
    false
}

/// Test hook: with `true`, the AVX2+FMA backend converts f16 without F16C (the lane-wise scalar
/// path), so tests can compare both paths on one machine. Results are identical either way.
#[doc(hidden)]
pub fn disable_f16c_for_tests(disabled: bool) {
    #[cfg(target_arch = "x86_64")]
    F16C_DISABLED.store(disabled, core::sync::atomic::Ordering::Relaxed);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = disabled;
}
