//! The execution context of a kernel call: which backend runs it, proven available, and how
//! written 16-bit buffers are rounded.

use crate::arch::Kernel;
use crate::{Backend, Element, Error, Rounding};

/// Where and how a kernel call runs: a [`Backend`] that was checked to run on this CPU when the
/// context was made, and the [`Rounding`] of written 16-bit buffers.
///
/// The default context ([`Exec::active`], also `Exec::default()`) runs on the fastest available
/// backend and rounds to nearest-even; [`Exec::on`] picks a backend and is the one place an
/// unavailable backend is reported. Because a context can only hold an available backend,
/// operations that take one fail only for reasons of their own (lengths, hyper-parameters), and
/// the reductions of [`crate::vector`] do not return `Result` at all.
///
/// ```
/// use descent_kernels::{Backend, Exec, Rounding};
///
/// let exec = Exec::on(Backend::Scalar)?.with_rounding(Rounding::stochastic(7, 1));
/// assert_eq!(exec.backend(), Backend::Scalar);
/// assert!(Exec::active().backend().is_available());
/// # Ok::<(), descent_kernels::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exec {
    backend: Backend,
    rounding: Rounding,
}

impl Exec {
    /// The fastest available backend ([`Backend::active`]), round-to-nearest-even.
    #[inline]
    pub fn active() -> Exec {
        Exec {
            backend: Backend::active(),
            rounding: Rounding::NearestEven,
        }
    }

    /// The portable scalar reference (available everywhere), round-to-nearest-even.
    #[inline]
    pub const fn scalar() -> Exec {
        Exec {
            backend: Backend::Scalar,
            rounding: Rounding::NearestEven,
        }
    }

    /// `backend`, round-to-nearest-even, or [`Error::BackendUnavailable`] if it cannot run here.
    #[inline]
    pub fn on(backend: Backend) -> Result<Exec, Error> {
        backend.ensure_available()?;
        Ok(Exec {
            backend,
            rounding: Rounding::NearestEven,
        })
    }

    /// The same backend with `rounding` for written 16-bit buffers (buffers stored as `f32` or
    /// `f64` are never rounded).
    #[inline]
    pub const fn with_rounding(self, rounding: Rounding) -> Exec {
        Exec { rounding, ..self }
    }

    /// The backend.
    #[inline]
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// The rounding of written 16-bit buffers.
    #[inline]
    pub const fn rounding(&self) -> Rounding {
        self.rounding
    }

    /// Runs `k` on the context's backend (available by construction).
    #[inline]
    pub(crate) fn run<T: Element, K: Kernel<T>>(&self, k: K) -> K::Output {
        T::dispatch(self.backend, k)
    }
}

impl Default for Exec {
    /// [`Exec::active`].
    fn default() -> Exec {
        Exec::active()
    }
}
