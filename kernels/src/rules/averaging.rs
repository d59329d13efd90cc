//! Averaging of iterates and models: the uniform running mean (Polyak–Ruppert averaging, SWA),
//! the exponential moving average, and the replica mean of local SGD.
//!
//! Each comes as a function on [`Exec::active`] over `f32`/`f64` buffers and a `*_with` function
//! taking an [`Exec`] and any [`Storage`] format per buffer (the 16-bit formats widened to `f32`,
//! the written buffer rounded once when stored, as for the update rules).

use super::{run_step, unit_closed, Body};
use crate::arch::driver::Draw;
use crate::arch::{Kernel, Simd, MAX_LANES};
use crate::error::check_len;
use crate::storage::{Rounding, Storage};
use crate::{Element, Error, Exec};

/// Folds `params` into the uniform running mean `avg` of the iterates seen so far.
///
/// `count` is how many iterates `avg` already averages. As
/// `torch.optim.swa_utils.AveragedModel`'s default: for `count = 0` the mean becomes a copy of
/// `params`; otherwise, per element,
/// ```text
/// avg ← avg + (p − avg) / (count + 1)
/// ```
/// (one subtraction, one IEEE division by `count + 1`, one addition; `count` is rounded to `T`
/// once and `1` added in `T`). A NaN in `params` makes that element of the mean NaN.
pub fn running_mean<T: Element + Storage<T>>(
    avg: &mut [T],
    params: &[T],
    count: u64,
) -> Result<(), Error> {
    running_mean_with(&Exec::active(), avg, params, count)
}

/// [`running_mean`] with the context `exec`, the mean stored as `A` and the parameters as `P`;
/// `avg` is rounded on store (if 16-bit). `count = 0` makes `avg` the (rounded) copy of `params`.
pub fn running_mean_with<T: Element, A: Storage<T>, P: Storage<T>>(
    exec: &Exec,
    avg: &mut [A],
    params: &[P],
    count: u64,
) -> Result<(), Error> {
    check_len("params", avg.len(), params.len())?;
    let k = (count != 0).then(|| T::from_f64_round(count as f64) + T::one());
    run_step::<T, A, P, A, _, 1>(exec, avg, params, &mut [], LerpBody::DivideBy(k));
    Ok(())
}

/// Exponential moving average of the parameters: per element,
/// ```text
/// avg ← avg + (1 − decay)·(p − avg)
/// ```
/// the `lerp` form of `torch.optim.swa_utils.get_ema_multi_avg_fn` (mathematically
/// `decay·avg + (1 − decay)·p`). `decay` must lie in `[0, 1]`.
pub fn ema<T: Element + Storage<T>>(avg: &mut [T], params: &[T], decay: T) -> Result<(), Error> {
    ema_with(&Exec::active(), avg, params, decay)
}

/// [`ema`] with the context `exec`, the average stored as `A` and the parameters as `P`; `avg` is
/// rounded on store (if 16-bit).
pub fn ema_with<T: Element, A: Storage<T>, P: Storage<T>>(
    exec: &Exec,
    avg: &mut [A],
    params: &[P],
    decay: T,
) -> Result<(), Error> {
    unit_closed("decay", decay)?;
    check_len("params", avg.len(), params.len())?;
    let w = T::one() - decay;
    run_step::<T, A, P, A, _, 1>(exec, avg, params, &mut [], LerpBody::Times(w));
    Ok(())
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

/// The two averaging weights: `avg + (p − avg) / k` (`None`: the copy of `count = 0`) and
/// `avg + w·(p − avg)`.
#[derive(Clone, Copy)]
enum LerpBody<T> {
    DivideBy(Option<T>),
    Times(T),
}

impl<T: Element> Body<T, 1> for LerpBody<T> {
    #[inline(always)]
    fn apply<S: Simd<T>>(self, s: S, [a]: &mut [S::V; 1], p: S::V) {
        *a = match self {
            LerpBody::DivideBy(Some(k)) => lerp_div_vector(s, *a, p, s.splat(k)),
            LerpBody::DivideBy(None) => p,
            LerpBody::Times(w) => lerp_mul_vector(s, *a, p, s.splat(w)),
        };
    }
}

/// The local-SGD averaging step: replaces every replica by the mean of all `K` replicas.
///
/// Per element, `mean = (((r_0 + r_1) + r_2) + … + r_{K−1}) / K` (summed in replica order, one IEEE
/// division), then written to every replica. Every replica must have the same length; `K >= 1`.
/// A NaN in any replica makes that element NaN in all of them.
pub fn replica_mean<T: Element + Storage<T>>(replicas: &mut [&mut [T]]) -> Result<(), Error> {
    replica_mean_with(&Exec::active(), replicas)
}

/// [`replica_mean`] with the context `exec` over replicas stored as `A`: the mean of the widened
/// replicas is rounded **once** per element (stochastic: one drawing buffer) and the same bits
/// are written to every replica.
pub fn replica_mean_with<T: Element, A: Storage<T>>(
    exec: &Exec,
    replicas: &mut [&mut [A]],
) -> Result<(), Error> {
    let Some(first) = replicas.first() else {
        return Err(Error::NoBuffers);
    };
    let n = first.len();
    for r in replicas.iter() {
        check_len("replica", n, r.len())?;
    }
    let k = T::from_f64_round(replicas.len() as f64);
    let draw = match exec.rounding() {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    };
    exec.run(ReplicaKernel {
        replicas,
        n,
        k,
        draw,
    });
    Ok(())
}

struct ReplicaKernel<'a, 'b, T, A> {
    replicas: &'a mut [&'b mut [A]],
    n: usize,
    k: T,
    draw: Option<Draw<1>>,
}

impl<T: Element, A: Storage<T>> Kernel<T> for ReplicaKernel<'_, '_, T, A> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<T>>(self, s: S) {
        let k = s.splat(self.k);
        let (n, lanes) = (self.n, S::LANES);
        let sz = core::mem::size_of::<A>();
        let mut i = 0;
        while i < n {
            let count = lanes.min(n - i);
            let full = count == lanes;
            let r = self.draw.as_ref().map(|d| d.lanes(s, i, [A::NARROWS])[0]);
            // A short tail goes through zero-padded stack buffers, so it sees the same vector
            // operations as a full vector; only `count` elements are copied in and out.
            let mut buf = Aligned([0u8; 8 * MAX_LANES]);
            // SAFETY: i + count <= n = every replica's length; full vectors read and write LANES
            // elements at i; `buf` holds MAX_LANES >= LANES elements of any format, aligned for
            // all; the replicas are distinct exclusive borrows.
            unsafe {
                let mut sum = s.splat(T::zero());
                for (j, rep) in self.replicas.iter().enumerate() {
                    let x = if full {
                        A::load_vec(s, rep.as_ptr().add(i))
                    } else {
                        let src = rep.as_ptr().cast::<u8>().add(i * sz);
                        core::ptr::copy_nonoverlapping(src, buf.0.as_mut_ptr(), count * sz);
                        A::load_vec(s, buf.0.as_ptr().cast::<A>())
                    };
                    sum = if j == 0 {
                        x
                    } else {
                        replica_sum_vector(s, sum, x)
                    };
                }
                let mean = replica_div_vector(s, sum, k);
                A::store_vec(s, buf.0.as_mut_ptr().cast::<A>(), mean, r);
                for rep in self.replicas.iter_mut() {
                    let dst = rep.as_mut_ptr().cast::<u8>().add(i * sz);
                    core::ptr::copy_nonoverlapping(buf.0.as_ptr(), dst, count * sz);
                }
            }
            i += count;
        }
    }
}

/// A stack buffer aligned for every storage format.
#[repr(C, align(64))]
struct Aligned([u8; 8 * MAX_LANES]);
