//! Backend selection: which instruction set runs the kernels.
//!
//! The ladder, resolved once:
//! 1. compile time: a backend whose features are enabled by `cfg(target_feature)` (for example
//!    `-C target-cpu=native`, or NEON on every aarch64 target) is always available;
//! 2. with the `std` feature: CPU detection at run time, done once and cached in an atomic, so a
//!    default x86-64 build still gets AVX2+FMA where the CPU has it;
//! 3. otherwise the baseline of the target: SSE2 on x86-64, the scalar reference elsewhere.
//!
//! A `no_std` build therefore loses only step 2: it uses exactly what `cfg(target_feature)` says.

use crate::error::Error;
use crate::simd::{Scalar, Simd};
use crate::Element;

/// An instruction set the kernels can run on. Every variant exists on every target so that code
/// can name it; [`Backend::is_available`] says whether it can run here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable scalar code: the reference every other backend is tested against.
    Scalar,
    /// x86-64 SSE2: 4 × f32 or 2 × f64.
    Sse2,
    /// x86-64 AVX2 with FMA: 8 × f32 or 4 × f64.
    Avx2Fma,
    /// aarch64 Advanced SIMD: 4 × f32 or 2 × f64.
    Neon,
}

impl Backend {
    /// Every backend, in order of preference from lowest to highest.
    pub const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Sse2,
        Backend::Avx2Fma,
        Backend::Neon,
    ];

    /// The short name used in output and accepted by [`Backend::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Sse2 => "sse2",
            Backend::Avx2Fma => "avx2+fma",
            Backend::Neon => "neon",
        }
    }

    /// Parses a name as printed by [`Backend::name`] (`"avx2"` is accepted for `avx2+fma`).
    pub fn from_name(name: &str) -> Option<Backend> {
        match name {
            "scalar" => Some(Backend::Scalar),
            "sse2" => Some(Backend::Sse2),
            "avx2+fma" | "avx2" => Some(Backend::Avx2Fma),
            "neon" => Some(Backend::Neon),
            _ => None,
        }
    }

    /// Elements of `f32` per vector on this backend.
    pub fn lanes_f32(self) -> usize {
        match self {
            Backend::Scalar => 1,
            Backend::Sse2 | Backend::Neon => 4,
            Backend::Avx2Fma => 8,
        }
    }

    /// Whether this backend can run on this CPU (and was compiled for this target).
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar => true,
            Backend::Sse2 => cfg!(target_arch = "x86_64"),
            Backend::Avx2Fma => {
                cfg!(all(
                    target_arch = "x86_64",
                    target_feature = "avx2",
                    target_feature = "fma"
                )) || detected() & DETECTED_AVX2_FMA != 0
            }
            Backend::Neon => {
                cfg!(all(target_arch = "aarch64", target_feature = "neon"))
                    || detected() & DETECTED_NEON != 0
            }
        }
    }

    /// The backends available here, from the reference up.
    pub fn available() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(
            #[inline(always)]
            |b| b.is_available(),
        )
    }

    /// The fastest available backend: what the kernels use unless told otherwise.
    pub fn active() -> Backend {
        let mut best = Backend::Scalar;
        for b in [Backend::Sse2, Backend::Avx2Fma, Backend::Neon] {
            if b.is_available() {
                best = b;
            }
        }
        best
    }

    /// `Ok` if the backend can run here, else [`Error::BackendUnavailable`].
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

const DETECTED_AVX2_FMA: u8 = 1 << 1;
const DETECTED_NEON: u8 = 1 << 2;

/// Runtime-detected features, detected on first use and cached (bit 0 marks "done").
#[cfg(feature = "std")]
fn detected() -> u8 {
    use core::sync::atomic::{AtomicU8, Ordering};
    const DONE: u8 = 1;
    static CACHE: AtomicU8 = AtomicU8::new(0);
    let cached = CACHE.load(Ordering::Relaxed);
    if cached & DONE != 0 {
        return cached;
    }
    #[allow(unused_mut)]
    let mut bits = DONE;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        bits |= DETECTED_AVX2_FMA;
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        bits |= DETECTED_NEON;
    }
    // Racing first callers compute the same value; storing it twice is harmless.
    CACHE.store(bits, Ordering::Relaxed);
    bits
}

/// Without `std` there is no runtime detection: only compile-time features count.
#[cfg(not(feature = "std"))]
#[inline(always)]
fn detected() -> u8 {
    0
}

/// A kernel written once over [`Simd`]; [`Element::dispatch`] runs it on a chosen backend.
#[doc(hidden)]
pub trait Kernel<T: Element> {
    /// What the kernel returns.
    type Output;
    /// The kernel body, monomorphised per backend token.
    fn run<S: Simd<T>>(self, s: S) -> Self::Output;
}

macro_rules! dispatch_fn {
    ($name:ident, $t:ty) => {
        /// Runs `k` on `backend`, which the caller has checked with [`Backend::ensure_available`].
        #[inline]
        pub(crate) fn $name<K: Kernel<$t>>(backend: Backend, k: K) -> K::Output {
            debug_assert!(backend.is_available());
            match backend {
                #[cfg(target_arch = "x86_64")]
                Backend::Sse2 => k.run(crate::simd::x86::Sse2::new()),
                #[cfg(target_arch = "x86_64")]
                Backend::Avx2Fma => {
                    // SAFETY: the caller checked availability, i.e. the CPU has AVX2 and FMA.
                    unsafe {
                        crate::simd::x86::run_avx2(crate::simd::x86::Avx2Fma::new_unchecked(), k)
                    }
                }
                #[cfg(target_arch = "aarch64")]
                Backend::Neon => {
                    // SAFETY: the caller checked availability, i.e. the CPU has NEON.
                    k.run(unsafe { crate::simd::neon::Neon::new_unchecked() })
                }
                // Scalar, and (never reached after the availability check) backends of other targets.
                _ => k.run(Scalar),
            }
        }
    };
}

dispatch_fn!(dispatch_f32, f32);
dispatch_fn!(dispatch_f64, f64);

/// Validates `backend` and runs `k` on it.
#[inline]
pub(crate) fn run_on<T: Element, K: Kernel<T>>(backend: Backend, k: K) -> Result<K::Output, Error> {
    backend.ensure_available()?;
    Ok(T::dispatch(backend, k))
}
