//! Averaging of iterates and models: the uniform running mean (Polyak–Ruppert averaging, SWA),
//! the exponential moving average, and the replica mean of local SGD.

use super::unit_closed;
use crate::arch::driver::zip;
use crate::arch::{run_on, Kernel};
use crate::arch::{Simd, MAX_LANES};
use crate::error::check_len;
use crate::{Backend, Element, Error};

/// Folds `params` into the uniform running mean `avg` of the iterates seen so far.
///
/// `count` is how many iterates `avg` already averages. As
/// `torch.optim.swa_utils.AveragedModel`'s default: for `count = 0` the mean becomes a copy of
/// `params`; otherwise, per element,
/// ```text
/// avg ← avg + (p − avg) / (count + 1)
/// ```
/// (one subtraction, one IEEE division by the exact `count + 1`, one addition). A NaN in `params`
/// makes that element of the mean NaN.
pub fn running_mean<T: Element>(avg: &mut [T], params: &[T], count: u64) -> Result<(), Error> {
    running_mean_on(Backend::active(), avg, params, count)
}

/// [`running_mean`] on `backend`.
pub fn running_mean_on<T: Element>(
    backend: Backend,
    avg: &mut [T],
    params: &[T],
    count: u64,
) -> Result<(), Error> {
    check_len("params", avg.len(), params.len())?;
    backend.ensure_available()?;
    if count == 0 {
        avg.copy_from_slice(params);
        return Ok(());
    }
    let k = T::from_f64_round(count as f64) + T::one();
    run_on(
        backend,
        LerpKernel {
            avg,
            params,
            w: LerpWeight::DivideBy(k),
        },
    )
}

/// Exponential moving average of the parameters: per element,
/// ```text
/// avg ← avg + (1 − decay)·(p − avg)
/// ```
/// the `lerp` form of `torch.optim.swa_utils.get_ema_multi_avg_fn` (mathematically
/// `decay·avg + (1 − decay)·p`). `decay` must lie in `[0, 1]`.
pub fn ema<T: Element>(avg: &mut [T], params: &[T], decay: T) -> Result<(), Error> {
    ema_on(Backend::active(), avg, params, decay)
}

/// [`ema`] on `backend`.
pub fn ema_on<T: Element>(
    backend: Backend,
    avg: &mut [T],
    params: &[T],
    decay: T,
) -> Result<(), Error> {
    unit_closed("decay", decay)?;
    check_len("params", avg.len(), params.len())?;
    run_on(
        backend,
        LerpKernel {
            avg,
            params,
            w: LerpWeight::Times(T::one() - decay),
        },
    )
}

/// One vector of [`running_mean`] with `k = count + 1` splatted: `avg + (p − avg) / k`.
#[inline(always)]
pub(crate) fn lerp_div_vector<T: Element, S: Simd<T>>(s: S, avg: S::V, p: S::V, k: S::V) -> S::V {
    s.add(avg, s.div(s.sub(p, avg), k))
}

/// One vector of [`ema`] with `w = 1 − decay` splatted: `avg + w·(p − avg)`.
#[inline(always)]
pub(crate) fn lerp_mul_vector<T: Element, S: Simd<T>>(s: S, avg: S::V, p: S::V, w: S::V) -> S::V {
    s.add(avg, s.mul(w, s.sub(p, avg)))
}

/// [`replica_mean`]'s accumulation: the running sum plus the next replica.
#[inline(always)]
pub(crate) fn replica_sum_vector<T: Element, S: Simd<T>>(s: S, sum: S::V, r: S::V) -> S::V {
    s.add(sum, r)
}

/// [`replica_mean`]'s division of the sum by `k = K` splatted.
#[inline(always)]
pub(crate) fn replica_div_vector<T: Element, S: Simd<T>>(s: S, sum: S::V, k: S::V) -> S::V {
    s.div(sum, k)
}

#[derive(Clone, Copy)]
enum LerpWeight<T> {
    /// `avg + (p − avg) / k`
    DivideBy(T),
    /// `avg + w·(p − avg)`
    Times(T),
}

struct LerpKernel<'a, T> {
    avg: &'a mut [T],
    params: &'a [T],
    w: LerpWeight<T>,
}

impl<T: Element> Kernel<T> for LerpKernel<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let n = self.avg.len();
        let (rw, ro) = ([self.avg.as_mut_ptr()], [self.params.as_ptr()]);
        // SAFETY: both buffers have length n (checked by the caller); `avg` is exclusive.
        unsafe {
            match self.w {
                LerpWeight::DivideBy(k) => {
                    let k = s.splat(k);
                    zip(
                        s,
                        n,
                        rw,
                        ro,
                        #[inline(always)]
                        |[a], [p]| *a = lerp_div_vector(s, *a, p, k),
                    )
                }
                LerpWeight::Times(w) => {
                    let w = s.splat(w);
                    zip(
                        s,
                        n,
                        rw,
                        ro,
                        #[inline(always)]
                        |[a], [p]| *a = lerp_mul_vector(s, *a, p, w),
                    )
                }
            }
        }
    }
}

/// The local-SGD averaging step: replaces every replica by the mean of all `K` replicas.
///
/// Per element, `mean = (((r_0 + r_1) + r_2) + … + r_{K−1}) / K` (summed in replica order, one IEEE
/// division), then written to every replica. Every replica must have the same length; `K >= 1`.
/// A NaN in any replica makes that element NaN in all of them.
pub fn replica_mean<T: Element>(replicas: &mut [&mut [T]]) -> Result<(), Error> {
    replica_mean_on(Backend::active(), replicas)
}

/// [`replica_mean`] on `backend`.
pub fn replica_mean_on<T: Element>(
    backend: Backend,
    replicas: &mut [&mut [T]],
) -> Result<(), Error> {
    let Some(first) = replicas.first() else {
        return Err(Error::NoBuffers);
    };
    let n = first.len();
    for r in replicas.iter() {
        check_len("replica", n, r.len())?;
    }
    run_on(backend, ReplicaMeanKernel { replicas, n })
}

struct ReplicaMeanKernel<'a, 'b, T> {
    replicas: &'a mut [&'b mut [T]],
    n: usize,
}

impl<T: Element> ReplicaMeanKernel<'_, '_, T> {
    /// Averages `len <= LANES` elements at `offset`, through zero-padded buffers when
    /// `len < LANES`, with the same vector operations either way.
    ///
    /// # Safety
    /// `offset + len <= n`, and `len == S::LANES` or `len < S::LANES`.
    #[inline(always)]
    unsafe fn average_at<S: Simd<T>>(&mut self, s: S, k: S::V, offset: usize, len: usize) {
        let full = len == S::LANES;
        let mut buf = [T::zero(); MAX_LANES];
        let mut load = |r: &[T]| {
            // SAFETY: offset + len <= n = r.len(); `buf` holds MAX_LANES >= LANES elements.
            unsafe {
                if full {
                    s.load(r.as_ptr().add(offset))
                } else {
                    buf[..len].copy_from_slice(&r[offset..offset + len]);
                    s.load(buf.as_ptr())
                }
            }
        };
        let mut sum = load(self.replicas[0]);
        for r in self.replicas[1..].iter() {
            sum = replica_sum_vector(s, sum, load(r));
        }
        let mean = replica_div_vector(s, sum, k);
        let mut out = [T::zero(); MAX_LANES];
        // SAFETY: `out` holds MAX_LANES >= LANES elements.
        unsafe { s.store(out.as_mut_ptr(), mean) };
        for r in self.replicas.iter_mut() {
            if full {
                // SAFETY: offset + LANES <= n = r.len().
                unsafe { s.store(r.as_mut_ptr().add(offset), mean) };
            } else {
                r[offset..offset + len].copy_from_slice(&out[..len]);
            }
        }
    }
}

impl<T: Element> Kernel<T> for ReplicaMeanKernel<'_, '_, T> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(mut self, s: S) {
        let k = s.splat(T::from_f64_round(self.replicas.len() as f64));
        let (n, lanes) = (self.n, S::LANES);
        let mut i = 0;
        while i + lanes <= n {
            // SAFETY: i + LANES <= n.
            unsafe { self.average_at(s, k, i, lanes) };
            i += lanes;
        }
        if i < n {
            // SAFETY: i + (n - i) == n and n - i < LANES.
            unsafe { self.average_at(s, k, i, n - i) };
        }
    }
}
