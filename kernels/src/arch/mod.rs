//! The instruction sets the kernels run on, and everything a kernel needs from one.
//!
//! ## Layout
//! - this file: the vector trait [`Simd`] every kernel is written against, the [`Kernel`] trait,
//!   and **the backend table** (the `backends!` invocation below), from which the [`Backend`]
//!   enum, [`Backend::ALL`], names, lanes, detection (one cache) and dispatch all follow;
//! - one file per instruction set ([`scalar`], `x86/{sse2,avx2,avx512}.rs`, `aarch64.rs`,
//!   `wasm32.rs`): its token, its [`Simd`] impls for `f32` and `f64` (16-bit conversions and
//!   random-bit lanes included) and its one `#[target_feature]` entry ([`Isa`]);
//! - `driver.rs`: the loop drivers ([`driver::zip`] and [`driver::fold`]), generic over the
//!   storage format of each buffer ([`crate::Storage`]).
//!
//! A new backend is one file implementing [`Isa`] and [`Simd`] plus one row of the table.
//!
//! ## Tokens
//! A backend is a zero-sized *token* whose existence proves that its instructions can run on this
//! CPU: [`Scalar`] always, the others only through [`Isa::new_unchecked`], whose contract is the
//! CPU feature check that [`Backend::is_available`] performs (and caches).
//!
//! ## Arithmetic contract
//! Shared by every implementation so that elementwise kernels agree bit for bit across backends:
//! - `add`, `sub`, `mul`, `div`, `sqrt` are single IEEE 754 operations, round-to-nearest-even, no
//!   flush-to-zero, so every lane equals the scalar operation on that lane;
//! - `mul_add_fast` may be fused (one rounding) or not, by backend: only reductions and the matrix
//!   multiply use it, and their error bounds account for it;
//! - comparisons are ordered (false when either side is NaN) and return all-ones or all-zeros
//!   lanes; the bitwise operations act on the raw IEEE bits;
//! - the 16-bit conversions and the random-bit lanes give, in every lane, exactly the scalar
//!   reference's bits (NaN: some quiet NaN).

// The module is `#[doc(hidden)]` (internal); its documentation links to its private parts on purpose.
#![allow(rustdoc::private_intra_doc_links)]

use crate::error::Error;
use crate::reduced::scalar::{bf16_bits_to_f32, bf16_rne_bits, bf16_stochastic_bits};
use crate::reduced::scalar::{f16_bits_to_f32, f16_rne_bits};
use crate::Element;

pub(crate) mod driver;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm32;

pub use scalar::Scalar;

/// The widest vector of any backend, in elements (AVX-512 with `f32`). Tail buffers have this size.
pub(crate) const MAX_LANES: usize = 16;

/// One backend's vector of `T`. Implemented by each backend token for `f32` and `f64`.
pub trait Simd<T: Element>: Copy {
    /// The vector register type.
    type V: Copy;
    /// Elements per vector (at most 16).
    const LANES: usize;
    /// Matrix-multiply register tile: rows of C per micro-kernel call (see `models::gemm`).
    const TILE_ROWS: usize;
    /// Matrix-multiply register tile: vectors of C per row (tile width = this × LANES).
    const TILE_VECTORS: usize;

    /// Loads `LANES` elements from `ptr` (no alignment beyond `T`'s required).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be readable and `ptr` aligned for `T` (every caller derives its
    /// pointers from a `&[T]` or an aligned stack buffer, which guarantees that).
    unsafe fn load(self, ptr: *const T) -> Self::V;
    /// Stores `LANES` elements at `ptr` (no alignment beyond `T`'s required).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be writable and `ptr` aligned for `T`.
    unsafe fn store(self, ptr: *mut T, v: Self::V);
    /// Every lane `x`.
    fn splat(self, x: T) -> Self::V;
    /// `a + b`, one rounding.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`, one rounding.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`, one rounding.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`, one rounding.
    fn div(self, a: Self::V, b: Self::V) -> Self::V;
    /// Correctly rounded square root.
    fn sqrt(self, a: Self::V) -> Self::V;
    /// `a * b + c`, fused where the backend has FMA, otherwise two roundings. Not for update
    /// rules (they must agree bit for bit across backends).
    fn mul_add_fast(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lanes where `a > b` (ordered).
    fn gt(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a < b` (ordered).
    fn lt(self, a: Self::V, b: Self::V) -> Self::V;
    /// Lanes where `a` is NaN.
    fn is_nan(self, a: Self::V) -> Self::V;
    /// Bitwise and.
    fn and(self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise or.
    fn or(self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise xor.
    fn xor(self, a: Self::V, b: Self::V) -> Self::V;
    /// Bitwise `!a & b`.
    fn andnot(self, a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes, in a fixed order per backend.
    fn reduce_add(self, v: Self::V) -> T;
    /// Largest lane; NaN if any lane is NaN.
    fn reduce_max(self, v: Self::V) -> T;

    /// `mask ? a : b` per lane; `mask` lanes are all-ones or all-zeros.
    #[inline(always)]
    fn select(self, mask: Self::V, a: Self::V, b: Self::V) -> Self::V {
        self.or(self.and(mask, a), self.andnot(mask, b))
    }
    /// `|a|` (clears the sign bit, so NaN stays NaN).
    #[inline(always)]
    fn abs(self, a: Self::V) -> Self::V {
        self.andnot(self.splat(-T::zero()), a)
    }
    /// `sign(a)`: `1` for `a > 0`, `-1` for `a < 0`, `+0` for `±0`, NaN for NaN (as `torch.sign`,
    /// except that `-0` maps to `+0`, which changes no update).
    ///
    /// Branch-free `copysign` form: the sign bit of `a` on `1.0` where `a ≠ 0`, so two bitwise
    /// operations and one compare instead of a chain of selects.
    #[inline(always)]
    fn sign(self, a: Self::V) -> Self::V {
        let zero = self.splat(T::zero());
        let sign_bit = self.and(a, self.splat(-T::zero()));
        let unit = self.or(self.splat(T::one()), sign_bit);
        // a ≠ 0 and not NaN: |a| > 0. NaN lanes keep `a`.
        let nonzero = self.gt(self.abs(a), zero);
        let signed = self.and(nonzero, unit);
        self.select(self.is_nan(a), a, signed)
    }
    /// `lr · sign(x)` for a finite `lr >= 0`, bit for bit, without the multiply: `x`'s sign bit
    /// on `lr` is exactly `lr · (±1)` (also `−0` for `lr = 0`), masked to `+0` where `x = ±0`
    /// (`lr · (+0) = +0`), and `x` itself where it is NaN (`lr · NaN` is that NaN). The scalar
    /// reference multiplies by its branchy `sign`, which FPU-only targets run faster than bit
    /// operations on floats.
    #[inline(always)]
    fn mul_sign(self, lr: Self::V, x: Self::V) -> Self::V {
        let signed = self.or(lr, self.and(x, self.splat(-T::zero())));
        let nonzero = self.gt(self.abs(x), self.splat(T::zero()));
        self.select(self.is_nan(x), x, self.and(nonzero, signed))
    }
    /// `max(a, b)` propagating NaN from either side (as `torch.maximum`).
    #[inline(always)]
    fn max_nan(self, a: Self::V, b: Self::V) -> Self::V {
        let pick_a = self.or(self.gt(a, b), self.is_nan(a));
        self.select(pick_a, a, b)
    }

    // ---- 16-bit storage conversions (used with `T = f32`). The defaults convert lane by lane
    // through the scalar reference; backends with vector conversions override them.

    /// Loads `LANES` bf16 values (raw bits) and widens them to `T` (exact).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    #[inline(always)]
    unsafe fn load_bf16(self, p: *const u16) -> Self::V {
        // SAFETY: forwarded caller contract.
        unsafe { lanewise_load(self, p, bf16_bits_to_f32) }
    }
    /// Loads `LANES` f16 values (raw bits) and widens them to `T` (exact).
    ///
    /// # Safety
    /// `p..p + LANES` must be readable.
    #[inline(always)]
    unsafe fn load_f16(self, p: *const u16) -> Self::V {
        // SAFETY: forwarded caller contract.
        unsafe { lanewise_load(self, p, f16_bits_to_f32) }
    }
    /// Rounds to bf16, nearest even, and stores `LANES` values.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    #[inline(always)]
    unsafe fn store_bf16_rne(self, p: *mut u16, v: Self::V) {
        // SAFETY: forwarded caller contract.
        unsafe { lanewise_store(self, p, v, None, |x, _| bf16_rne_bits(x)) }
    }
    /// Rounds to bf16 stochastically with the random lanes `r` (integers `< 2^16` in the lanes'
    /// low bits, halves of [`Simd::random_lanes`] words) and stores `LANES` values.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    #[inline(always)]
    unsafe fn store_bf16_sr(self, p: *mut u16, v: Self::V, r: Self::V) {
        // SAFETY: forwarded caller contract.
        unsafe { lanewise_store(self, p, v, Some(r), bf16_stochastic_bits) }
    }
    /// Rounds to f16, nearest even, and stores `LANES` values.
    ///
    /// # Safety
    /// `p..p + LANES` must be writable.
    #[inline(always)]
    unsafe fn store_f16_rne(self, p: *mut u16, v: Self::V) {
        // SAFETY: forwarded caller contract.
        unsafe { lanewise_store(self, p, v, None, |x, _| f16_rne_bits(x)) }
    }
    /// `widen(f16_rne(v))` in registers.
    #[inline(always)]
    fn f16_round_trip(self, v: Self::V) -> Self::V {
        let mut buf = [T::zero(); MAX_LANES];
        // SAFETY: `buf` holds MAX_LANES >= LANES elements, for the store and the load.
        unsafe {
            self.store(buf.as_mut_ptr(), v);
            for x in buf.iter_mut().take(Self::LANES) {
                let f = x.widen() as f32;
                *x = T::from_f64_round(f16_bits_to_f32(f16_rne_bits(f)) as f64);
            }
            self.load(buf.as_ptr())
        }
    }

    /// The random words of `LANES` consecutive elements: lane `j` holds the 32-bit word
    /// `mix32((first + j) ^ key)` (wrapping add; see [`crate::storage`]) in its low bits.
    #[inline(always)]
    fn random_lanes(self, key: u32, first: u32) -> Self::V {
        let mut buf = [T::zero(); MAX_LANES];
        for (j, x) in buf.iter_mut().enumerate().take(Self::LANES) {
            *x = T::from_low_bits(crate::storage::mix32(first.wrapping_add(j as u32) ^ key));
        }
        // SAFETY: `buf` holds MAX_LANES >= LANES elements.
        unsafe { self.load(buf.as_ptr()) }
    }
    /// Each lane's low 32 bits shifted left by 16: the low half moved to the high half (a
    /// bf16 pattern in the low half becomes that value as `f32`).
    #[inline(always)]
    fn shl16(self, v: Self::V) -> Self::V {
        let mut buf = [T::zero(); MAX_LANES];
        // SAFETY: `buf` holds MAX_LANES >= LANES elements, for the store and the load.
        unsafe {
            self.store(buf.as_mut_ptr(), v);
            for x in buf.iter_mut().take(Self::LANES) {
                *x = T::from_low_bits(x.low_bits() << 16);
            }
            self.load(buf.as_ptr())
        }
    }
    /// Each lane's low 32 bits shifted right by 16 (logical): the high half of a random word.
    #[inline(always)]
    fn shr16(self, v: Self::V) -> Self::V {
        let mut buf = [T::zero(); MAX_LANES];
        // SAFETY: `buf` holds MAX_LANES >= LANES elements, for the store and the load.
        unsafe {
            self.store(buf.as_mut_ptr(), v);
            for x in buf.iter_mut().take(Self::LANES) {
                *x = T::from_low_bits(x.low_bits() >> 16);
            }
            self.load(buf.as_ptr())
        }
    }

    // ---- Table reads by index (the 8-bit optimizer state's codes and code books). Plain copies
    // of table entries, so every backend gives the same bits. The defaults read one entry at a
    // time; backends with wide permutes or gathers override them.

    /// `out[i] = table[codes[i]]` for every `i < out.len()`.
    ///
    /// # Panics
    /// If `codes` is shorter than `out`.
    #[inline(always)]
    fn lookup_codes(self, table: &[f32; 256], codes: &[u8], out: &mut [f32]) {
        let codes = &codes[..out.len()];
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = table[c as usize];
        }
    }
    /// `index[i] ← table[index[i]]` for every `i`.
    ///
    /// # Safety
    /// Every `index[i]` must be below `table.len()`.
    #[inline(always)]
    unsafe fn gather_u32(self, table: &[u32], index: &mut [u32]) {
        for e in index.iter_mut() {
            debug_assert!((*e as usize) < table.len());
            // SAFETY: the caller guarantees `*e < table.len()`.
            *e = unsafe { *table.get_unchecked(*e as usize) };
        }
    }
}

/// Loads `LANES` 16-bit values lane by lane through `widen`.
///
/// # Safety
/// `p..p + LANES` must be readable.
#[inline(always)]
unsafe fn lanewise_load<T: Element, S: Simd<T>>(
    s: S,
    p: *const u16,
    widen: fn(u16) -> f32,
) -> S::V {
    let mut buf = [T::zero(); MAX_LANES];
    for (i, x) in buf.iter_mut().enumerate().take(S::LANES) {
        // SAFETY: i < LANES and the caller guarantees LANES readable elements.
        *x = T::from_f64_round(widen(unsafe { p.add(i).read_unaligned() }) as f64);
    }
    // SAFETY: `buf` holds MAX_LANES >= LANES elements.
    unsafe { s.load(buf.as_ptr()) }
}

/// Stores `LANES` values lane by lane through `narrow` (given the lane's random bits, if any).
///
/// # Safety
/// `p..p + LANES` must be writable.
#[inline(always)]
unsafe fn lanewise_store<T: Element, S: Simd<T>>(
    s: S,
    p: *mut u16,
    v: S::V,
    r: Option<S::V>,
    narrow: impl Fn(f32, u16) -> u16,
) {
    let mut buf = [T::zero(); MAX_LANES];
    let mut rbuf = [T::zero(); MAX_LANES];
    // SAFETY: both buffers hold MAX_LANES >= LANES elements.
    unsafe {
        s.store(buf.as_mut_ptr(), v);
        if let Some(r) = r {
            s.store(rbuf.as_mut_ptr(), r);
        }
    }
    for i in 0..S::LANES {
        let h = narrow(buf[i].widen() as f32, rbuf[i].low_bits() as u16);
        // SAFETY: i < LANES and the caller guarantees LANES writable elements.
        unsafe { p.add(i).write_unaligned(h) };
    }
}

/// A kernel written once over [`Simd`]; [`dispatch`] runs it on a chosen backend.
#[doc(hidden)]
pub trait Kernel<T: Element> {
    /// What the kernel returns.
    type Output;
    /// The kernel body, monomorphised per backend token.
    fn run<S: Simd<T>>(self, s: S) -> Self::Output;
}

/// What one instruction set's file provides to the backend table.
pub(crate) trait Isa: Copy + Simd<f32> + Simd<f64> {
    /// Whether this CPU can run the backend: `cfg(target_feature)` at compile time, and with `std`
    /// run-time detection. Called once; [`Backend::is_available`] caches the answer.
    fn detect() -> bool;
    /// The token without a check.
    ///
    /// # Safety
    /// [`Isa::detect`] must be true on this CPU.
    unsafe fn new_unchecked() -> Self;
    /// Runs `k` with the backend's target features enabled for everything inlined into it (the
    /// backend's one `#[target_feature]` entry).
    ///
    /// # Safety
    /// As [`Isa::new_unchecked`] (the token proves it).
    unsafe fn run<T: Element, K: Kernel<T>>(self, k: K) -> K::Output
    where
        Self: Simd<T>;
}

/// The backend table: one row per instruction set, in order of preference from lowest to
/// highest. Everything about backends that is not in a backend's own file follows from it.
macro_rules! backends {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $name:literal $(| $alias:literal)*, lanes_f32 $lanes:literal,
        arch $arch:literal, token $(#[cfg($cfg:meta)])? $token:ty;
    )*) => {
        /// An instruction set the kernels can run on. Every variant exists on every target so
        /// that code can name it; [`Backend::is_available`] says whether it can run here.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Backend {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Backend {
            /// Every backend, in order of preference from lowest to highest.
            pub const ALL: [Backend; [$($name),*].len()] = [$(Backend::$variant),*];

            /// The short name used in output and accepted by [`Backend::from_name`].
            pub const fn name(self) -> &'static str {
                match self {
                    $( Backend::$variant => $name, )*
                }
            }

            /// Parses a name as printed by [`Backend::name`] (or one of its aliases, such as
            /// `"avx2"` for `avx2+fma`).
            pub fn from_name(name: &str) -> Option<Backend> {
                match name {
                    $( $name $(| $alias)* => Some(Backend::$variant), )*
                    _ => None,
                }
            }

            /// Elements of `f32` per vector on this backend.
            pub const fn lanes_f32(self) -> usize {
                match self {
                    $( Backend::$variant => $lanes, )*
                }
            }

            /// The `target_arch` the backend belongs to (`"any"` for the scalar reference), to
            /// tell "compiled for another target" from "this CPU lacks the features".
            pub const fn target_arch(self) -> &'static str {
                match self {
                    $( Backend::$variant => $arch, )*
                }
            }

            /// Detection without the cache.
            fn detect_uncached(self) -> bool {
                match self {
                    $( Backend::$variant => {
                        $(#[cfg($cfg)])?
                        {
                            return <$token as Isa>::detect();
                        }
                        #[allow(unreachable_code)]
                        false
                    } )*
                }
            }
        }

        backends!(@dispatch dispatch_f32, f32, $( $variant, $token, $($cfg)?; )*);
        backends!(@dispatch dispatch_f64, f64, $( $variant, $token, $($cfg)?; )*);
    };
    (@dispatch $fn:ident, $t:ty, $( $variant:ident, $token:ty, $($cfg:meta)?; )*) => {
        /// Runs `k` on `backend`, which the caller has checked with [`Backend::ensure_available`].
        #[inline]
        pub(crate) fn $fn<K: Kernel<$t>>(backend: Backend, k: K) -> K::Output {
            debug_assert!(backend.is_available());
            #[allow(unreachable_patterns)]
            match backend {
                $(
                    $(#[cfg($cfg)])?
                    Backend::$variant => {
                        // SAFETY: the caller checked `backend.is_available()`, i.e. the
                        // backend's `Isa::detect` holds on this CPU.
                        unsafe { <$token as Isa>::new_unchecked().run(k) }
                    }
                )*
                // Backends of other targets (never reached after the availability check).
                _ => k.run(Scalar),
            }
        }
    };
}

backends! {
    /// Portable scalar code: the reference every other backend is tested against.
    Scalar = "scalar", lanes_f32 1, arch "any", token Scalar;
    /// x86-64 SSE2 (part of the x86-64 baseline): 4 × f32 or 2 × f64.
    Sse2 = "sse2", lanes_f32 4, arch "x86_64", token #[cfg(target_arch = "x86_64")] x86::sse2::Sse2;
    /// x86-64 AVX2 with FMA and F16C: 8 × f32 or 4 × f64.
    Avx2Fma = "avx2+fma" | "avx2", lanes_f32 8, arch "x86_64",
        token #[cfg(target_arch = "x86_64")] x86::avx2::Avx2Fma;
    /// x86-64 AVX-512 (F, VL, BW, DQ) with FMA and F16C: 16 × f32 or 8 × f64 (compiled with
    /// Rust 1.89 or newer, whose AVX-512 intrinsics are stable).
    Avx512 = "avx512" | "avx-512", lanes_f32 16, arch "x86_64",
        token #[cfg(all(target_arch = "x86_64", descent_avx512))] x86::avx512::Avx512;
    /// aarch64 Advanced SIMD: 4 × f32 or 2 × f64.
    Neon = "neon", lanes_f32 4, arch "aarch64", token #[cfg(target_arch = "aarch64")] aarch64::Neon;
    /// WebAssembly 128-bit SIMD (`simd128`, enabled at compile time): 4 × f32 or 2 × f64.
    Simd128 = "wasm-simd128" | "simd128", lanes_f32 4, arch "wasm32",
        token #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))] wasm32::Simd128;
}

impl Backend {
    /// Whether this backend can run on this CPU (and was compiled for this target). Detected
    /// once per process with `std` and cached; without `std`, from `cfg(target_feature)` alone.
    #[inline]
    pub fn is_available(self) -> bool {
        available_mask() & (1 << self as u32) != 0
    }

    /// The backends available here, from the reference up.
    pub fn available() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(
            #[inline(always)]
            |b| b.is_available(),
        )
    }

    /// The fastest available backend: what the kernels use unless told otherwise (the last
    /// available row of the table).
    #[inline]
    pub fn active() -> Backend {
        let mask = available_mask();
        let mut best = Backend::Scalar;
        for b in Backend::ALL {
            if mask & (1 << b as u32) != 0 {
                best = b;
            }
        }
        best
    }

    /// `Ok` if the backend can run here, else [`Error::BackendUnavailable`].
    #[inline]
    pub fn ensure_available(self) -> Result<(), Error> {
        if self.is_available() {
            Ok(())
        } else {
            Err(Error::BackendUnavailable { backend: self })
        }
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bit `b` set: backend number `b` of the table is available.
fn detect_all() -> u32 {
    let mut bits = 0;
    for b in Backend::ALL {
        if b.detect_uncached() {
            bits |= 1 << b as u32;
        }
    }
    bits
}

/// The availability bits, detected on first use and cached (bit 31 marks "done"): the one
/// detection cache of the crate.
#[cfg(feature = "std")]
#[inline]
fn available_mask() -> u32 {
    use core::sync::atomic::{AtomicU32, Ordering};
    const DONE: u32 = 1 << 31;
    static CACHE: AtomicU32 = AtomicU32::new(0);
    let cached = CACHE.load(Ordering::Relaxed);
    if cached & DONE != 0 {
        return cached;
    }
    let bits = detect_all() | DONE;
    // Racing first callers compute the same value; storing it twice is harmless.
    CACHE.store(bits, Ordering::Relaxed);
    bits
}

/// Without `std` detection is `cfg(target_feature)` alone: constants the compiler folds.
#[cfg(not(feature = "std"))]
#[inline(always)]
fn available_mask() -> u32 {
    detect_all()
}

/// Validates `backend` and runs `k` on it.
#[inline]
pub(crate) fn run_on<T: Element, K: Kernel<T>>(backend: Backend, k: K) -> Result<K::Output, Error> {
    backend.ensure_available()?;
    Ok(T::dispatch(backend, k))
}

/// Pairwise sum of a vector's `N` lanes (`N` a power of two): `((l0 + l1) + (l2 + l3)) + ...`, the
/// fixed horizontal order. Computed level by level, each level adding adjacent pairs in place, which
/// is the same tree as halving the lanes recursively; a loop rather than a recursion so that it
/// compiles to straight-line adds (a recursive function is not inlined into itself).
#[allow(dead_code)]
#[inline(always)]
pub(crate) fn tree_sum<T: Element, const N: usize>(mut lanes: [T; N]) -> T {
    const { assert!(N.is_power_of_two()) };
    let mut width = N;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] = lanes[2 * i] + lanes[2 * i + 1];
        }
    }
    lanes[0]
}

/// Largest lane; NaN if any lane is NaN.
#[allow(dead_code)]
#[inline(always)]
pub(crate) fn tree_max<T: Element>(lanes: &[T]) -> T {
    lanes.iter().copied().fold(
        lanes[0],
        #[inline(always)]
        |m, x| if x > m || x.is_nan() { x } else { m },
    )
}

/// Implements [`Simd::reduce_add`] and [`Simd::reduce_max`] by spilling the lanes (the fixed
/// pairwise order of [`tree_sum`]), or `reduce_max` alone (`max` first). Unused on targets whose
/// only backend is the scalar one.
#[allow(unused_macros)]
macro_rules! spill_reductions {
    ($t:ty, $v:ty, $lanes:expr, $store:expr) => {
        #[inline(always)]
        fn reduce_add(self, v: $v) -> $t {
            let mut lanes = [0.0 as $t; $lanes];
            // SAFETY: `lanes` holds exactly LANES elements; the token proves the CPU feature.
            unsafe { $store(lanes.as_mut_ptr(), v) };
            $crate::arch::tree_sum(lanes)
        }
        $crate::arch::spill_reductions!(max $t, $v, $lanes, $store);
    };
    // `reduce_max` alone, for backends with their own `reduce_add`.
    (max $t:ty, $v:ty, $lanes:expr, $store:expr) => {
        #[inline(always)]
        fn reduce_max(self, v: $v) -> $t {
            let mut lanes = [0.0 as $t; $lanes];
            // SAFETY: `lanes` holds exactly LANES elements; the token proves the CPU feature.
            unsafe { $store(lanes.as_mut_ptr(), v) };
            $crate::arch::tree_max(&lanes)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use spill_reductions;

/// The magic constant whose low mantissa bits hold a small integer: `f32::from_bits(0x4B00_0000
/// | r) − 2^23 = r` exactly for `r < 2^23` (used to turn random-bit lanes into values).
pub(crate) const F32_INT_MAGIC: u32 = 0x4B00_0000;
