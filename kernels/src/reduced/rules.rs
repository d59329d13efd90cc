//! The update rules over 16-bit storage. Each kernel runs the `f32` rule's own per-vector function
//! (`crate::rules::*::*_vector`) between the widening loads and the rounding stores of the one
//! loop driver ([`zip_stored`]); see the module documentation of [`crate::reduced`] for what is
//! rounded when.

use core::marker::PhantomData;

use crate::arch::driver::{zip_stored, Draw};
use crate::arch::{run_on, Kernel, Simd, MAX_LANES};
use crate::error::check_len;
use crate::rules::adam::{adam_vector, AdamConsts};
use crate::rules::averaging::{
    lerp_div_vector, lerp_mul_vector, replica_div_vector, replica_sum_vector,
};
use crate::rules::gd::{gd_vector, sgd_vector};
use crate::rules::sign::{lion_vector, sign_vector, signum_vector};
use crate::rules::unit_closed;
use crate::storage::{Rounding, Storage};
use crate::{Adam, Backend, Error, Gd, Lion, Sgd, SignDescent, Signum};

impl Gd<f32> {
    /// [`Gd::step_on`] with parameters stored as `P` and gradients as `G` (`f32`, `bf16` or
    /// `f16`): the `f32` rule on the widened values, then `params` rounded with `rounding` (if
    /// 16-bit). Stochastic: `params` is the one rounded buffer. Validates before writing.
    pub fn step_reduced_on<P: Storage, G: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        params: &mut [P],
        grads: &[G],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        let (rule, n) = (*self, params.len());
        let (rw, ro, rng) = (
            [params.as_mut_ptr().cast()],
            [grads.as_ptr().cast()],
            rounding,
        );
        run_on(
            backend,
            K16::<P, P, G, _, 1, 1>::new(n, rw, ro, rng, GdK(rule)),
        )
    }
}

impl Sgd<f32> {
    /// [`Sgd::step_on`] with parameters stored as `P`, gradients as `G` and the momentum buffer
    /// as `B`; `params` and `momentum_buf` are rounded on store (if 16-bit; stochastic: in that
    /// order). Validates before writing.
    pub fn step_reduced_on<P: Storage, G: Storage, B: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        step: u64,
        params: &mut [P],
        grads: &[G],
        momentum_buf: &mut [B],
    ) -> Result<(), Error> {
        let first = self.prepare(step, params.len(), grads.len(), momentum_buf.len())?;
        let n = params.len();
        let rw = [params.as_mut_ptr().cast(), momentum_buf.as_mut_ptr().cast()];
        let (ro, rng) = ([grads.as_ptr().cast()], rounding);
        run_on(
            backend,
            K16::<P, B, G, _, 2, 1>::new(n, rw, ro, rng, SgdK(*self, first)),
        )
    }
}

impl Adam<f32> {
    /// [`Adam::step_on`] with parameters stored as `P`, gradients as `G` and the moments `m`, `v`
    /// as `M`; `params`, `m`, `v` are rounded on store (if 16-bit; stochastic: in that order).
    /// Validates before writing.
    #[allow(clippy::too_many_arguments)]
    pub fn step_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        step: u64,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
        v: &mut [M],
    ) -> Result<(), Error> {
        let c = self.prepare(step, params.len(), grads.len(), m.len(), v.len())?;
        let n = params.len();
        let rw = [
            params.as_mut_ptr().cast(),
            m.as_mut_ptr().cast(),
            v.as_mut_ptr().cast(),
        ];
        let (ro, rng) = ([grads.as_ptr().cast()], rounding);
        run_on(
            backend,
            K16::<P, M, G, _, 3, 1>::new(n, rw, ro, rng, AdamK(c)),
        )
    }

    /// [`Adam::step_amsgrad_on`] over 16-bit storage as [`Adam::step_reduced_on`]; `v_max` is
    /// stored as `M` too and rounded last.
    #[allow(clippy::too_many_arguments)]
    pub fn step_amsgrad_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        step: u64,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
        v: &mut [M],
        v_max: &mut [M],
    ) -> Result<(), Error> {
        let c = self.prepare(step, params.len(), grads.len(), m.len(), v.len())?;
        check_len("v_max", params.len(), v_max.len())?;
        let n = params.len();
        let rw = [
            params.as_mut_ptr().cast(),
            m.as_mut_ptr().cast(),
            v.as_mut_ptr().cast(),
            v_max.as_mut_ptr().cast(),
        ];
        let (ro, rng) = ([grads.as_ptr().cast()], rounding);
        run_on(
            backend,
            K16::<P, M, G, _, 4, 1>::new(n, rw, ro, rng, AmsGradK(c)),
        )
    }
}

impl SignDescent<f32> {
    /// [`SignDescent::step_on`] with parameters stored as `P` and gradients as `G`; `params` is
    /// rounded on store (if 16-bit). Validates before writing.
    pub fn step_reduced_on<P: Storage, G: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        params: &mut [P],
        grads: &[G],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        let (rule, n) = (*self, params.len());
        let (rw, ro, rng) = (
            [params.as_mut_ptr().cast()],
            [grads.as_ptr().cast()],
            rounding,
        );
        run_on(
            backend,
            K16::<P, P, G, _, 1, 1>::new(n, rw, ro, rng, SignK(rule)),
        )
    }
}

impl Signum<f32> {
    /// [`Signum::step_on`] with parameters stored as `P`, gradients as `G`, momentum as `M`;
    /// `params` and `m` are rounded on store (if 16-bit; stochastic: in that order).
    pub fn step_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        let (rule, n) = (*self, params.len());
        let rw = [params.as_mut_ptr().cast(), m.as_mut_ptr().cast()];
        let (ro, rng) = ([grads.as_ptr().cast()], rounding);
        run_on(
            backend,
            K16::<P, M, G, _, 2, 1>::new(n, rw, ro, rng, SignumK(rule)),
        )
    }
}

impl Lion<f32> {
    /// [`Lion::step_on`] with parameters stored as `P`, gradients as `G`, momentum as `M`;
    /// `params` and `m` are rounded on store (if 16-bit; stochastic: in that order).
    pub fn step_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        let (rule, n) = (*self, params.len());
        let rw = [params.as_mut_ptr().cast(), m.as_mut_ptr().cast()];
        let (ro, rng) = ([grads.as_ptr().cast()], rounding);
        run_on(
            backend,
            K16::<P, M, G, _, 2, 1>::new(n, rw, ro, rng, LionK(rule)),
        )
    }
}

/// [`crate::running_mean_on`] with the mean stored as `A` and the parameters as `P`; `avg` is
/// rounded on store (if 16-bit). `count = 0` makes `avg` the (rounded) copy of `params`.
pub fn running_mean_reduced_on<A: Storage, P: Storage>(
    backend: Backend,
    rounding: Rounding,
    avg: &mut [A],
    params: &[P],
    count: u64,
) -> Result<(), Error> {
    check_len("params", avg.len(), params.len())?;
    let n = avg.len();
    let (rw, ro, rng) = (
        [avg.as_mut_ptr().cast()],
        [params.as_ptr().cast()],
        rounding,
    );
    // As the f32 rule: k = count + 1 rounded to f32 once; count = 0 is a copy.
    let k = (count != 0).then_some((count as f64) as f32 + 1.0);
    run_on(
        backend,
        K16::<A, A, P, _, 1, 1>::new(n, rw, ro, rng, LerpK { k, w: 0.0 }),
    )
}

/// [`crate::ema_on`] with the average stored as `A` and the parameters as `P`; `avg` is rounded
/// on store (if 16-bit). `decay` must lie in `[0, 1]`.
pub fn ema_reduced_on<A: Storage, P: Storage>(
    backend: Backend,
    rounding: Rounding,
    avg: &mut [A],
    params: &[P],
    decay: f32,
) -> Result<(), Error> {
    unit_closed("decay", decay)?;
    check_len("params", avg.len(), params.len())?;
    let n = avg.len();
    let (rw, ro, rng) = (
        [avg.as_mut_ptr().cast()],
        [params.as_ptr().cast()],
        rounding,
    );
    let f = LerpK {
        k: None,
        w: 1.0 - decay,
    };
    run_on(
        backend,
        K16::<A, A, P, _, 1, 1>::new(n, rw, ro, rng, EmaK(f)),
    )
}

/// [`crate::replica_mean_on`] over replicas stored as `A`: the mean of the widened replicas, in
/// replica order, divided by `K`, is rounded **once** per element (stochastic: one rounded buffer,
/// `K = 1` in the stream) and the same bits are written to every replica.
pub fn replica_mean_reduced_on<A: Storage>(
    backend: Backend,
    rounding: Rounding,
    replicas: &mut [&mut [A]],
) -> Result<(), Error> {
    let Some(first) = replicas.first() else {
        return Err(Error::NoBuffers);
    };
    let n = first.len();
    for r in replicas.iter() {
        check_len("replica", n, r.len())?;
    }
    let k = replicas.len() as f32;
    let draw = match rounding {
        Rounding::NearestEven => None,
        Rounding::Stochastic(key) => Some(Draw::new(&key)),
    };
    run_on(
        backend,
        ReplicaK {
            replicas,
            n,
            k,
            draw,
        },
    )
}

/// A per-vector update of `RW` written and `RO` read buffers, the body of a [`K16`].
trait Body<const RW: usize, const RO: usize>: Copy {
    fn apply<S: Simd<f32>>(self, s: S, w: &mut [S::V; RW], r: [S::V; RO]);
}

/// A mixed-storage kernel: [`zip_stored`] over the buffers (`rw[0]` stored as `P`, `rw[1..]` as
/// `M`, `ro` as `G`) with the body `f`.
struct K16<P, M, G, F, const RW: usize, const RO: usize> {
    n: usize,
    rw: [*mut u8; RW],
    ro: [*const u8; RO],
    draw: Option<Draw<RW>>,
    f: F,
    _types: PhantomData<(P, M, G)>,
}

impl<P: Storage, M: Storage, G: Storage, F, const RW: usize, const RO: usize>
    K16<P, M, G, F, RW, RO>
{
    /// The kernel; under stochastic rounding every written 16-bit buffer draws random bits.
    fn new(n: usize, rw: [*mut u8; RW], ro: [*const u8; RO], rounding: Rounding, f: F) -> Self {
        let draw = match rounding {
            Rounding::NearestEven => None,
            Rounding::Stochastic(key) => Some(Draw::new(&key)),
        };
        K16 {
            n,
            rw,
            ro,
            draw,
            f,
            _types: PhantomData,
        }
    }
}

impl<P, M, G, F, const RW: usize, const RO: usize> Kernel<f32> for K16<P, M, G, F, RW, RO>
where
    P: Storage,
    M: Storage,
    G: Storage,
    F: Body<RW, RO>,
{
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let f = self.f;
        // SAFETY: every buffer holds n elements of its type (checked by the public function that
        // built this kernel from slices); the written buffers come from distinct exclusive
        // borrows.
        unsafe {
            zip_stored::<f32, S, P, M, G, RW, RO>(
                s,
                self.n,
                self.rw,
                self.ro,
                self.draw,
                #[inline(always)]
                |w, r, _| f.apply(s, w, r),
            )
        }
    }
}

#[derive(Clone, Copy)]
struct GdK(Gd<f32>);
impl Body<1, 1> for GdK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p]: &mut [S::V; 1], [g]: [S::V; 1]) {
        let (lr, wd) = (
            s.splat(self.0.lr),
            self.0.weight_decay.vectors(s, self.0.lr),
        );
        *p = gd_vector(s, lr, wd, *p, g);
    }
}

#[derive(Clone, Copy)]
struct SgdK(Sgd<f32>, bool);
impl Body<2, 1> for SgdK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p, b]: &mut [S::V; 2], [g]: [S::V; 1]) {
        let c = self.0.vectors(s, self.1);
        (*p, *b) = sgd_vector(s, &c, *p, *b, g);
    }
}

#[derive(Clone, Copy)]
struct AdamK(AdamConsts<f32>);
impl Body<3, 1> for AdamK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p, m, v]: &mut [S::V; 3], [g]: [S::V; 1]) {
        let wd = self.0.decay_vectors(s);
        (*p, *m, *v) = adam_vector(
            s,
            &self.0,
            wd,
            *p,
            g,
            *m,
            *v,
            #[inline(always)]
            |v| v,
        );
    }
}

#[derive(Clone, Copy)]
struct AmsGradK(AdamConsts<f32>);
impl Body<4, 1> for AmsGradK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p, m, v, vm]: &mut [S::V; 4], [g]: [S::V; 1]) {
        let wd = self.0.decay_vectors(s);
        let mut new_max = *vm;
        (*p, *m, *v) = adam_vector(
            s,
            &self.0,
            wd,
            *p,
            g,
            *m,
            *v,
            #[inline(always)]
            |v| {
                new_max = s.max_nan(new_max, v);
                new_max
            },
        );
        *vm = new_max;
    }
}

#[derive(Clone, Copy)]
struct SignK(SignDescent<f32>);
impl Body<1, 1> for SignK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p]: &mut [S::V; 1], [g]: [S::V; 1]) {
        let (lr, wd) = (
            s.splat(self.0.lr),
            self.0.weight_decay.vectors(s, self.0.lr),
        );
        *p = sign_vector(s, lr, wd, *p, g);
    }
}

#[derive(Clone, Copy)]
struct SignumK(Signum<f32>);
impl Body<2, 1> for SignumK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p, m]: &mut [S::V; 2], [g]: [S::V; 1]) {
        let r = self.0;
        let (lr, wd) = (s.splat(r.lr), r.weight_decay.vectors(s, r.lr));
        let b = (s.splat(r.beta), s.splat(1.0 - r.beta));
        (*p, *m) = signum_vector(s, lr, wd, b, *p, *m, g);
    }
}

#[derive(Clone, Copy)]
struct LionK(Lion<f32>);
impl Body<2, 1> for LionK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [p, m]: &mut [S::V; 2], [g]: [S::V; 1]) {
        let r = self.0;
        let (lr, wd) = (s.splat(r.lr), r.weight_decay.vectors(s, r.lr));
        let b = [
            s.splat(r.beta1),
            s.splat(1.0 - r.beta1),
            s.splat(r.beta2),
            s.splat(1.0 - r.beta2),
        ];
        (*p, *m) = lion_vector(s, lr, wd, b, *p, *m, g);
    }
}

/// Running mean (`k = Some(count + 1)`, or `None` for the copy of `count = 0`).
#[derive(Clone, Copy)]
struct LerpK {
    k: Option<f32>,
    w: f32,
}
impl Body<1, 1> for LerpK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [a]: &mut [S::V; 1], [p]: [S::V; 1]) {
        *a = match self.k {
            Some(k) => lerp_div_vector(s, *a, p, s.splat(k)),
            None => p,
        };
    }
}

/// Exponential moving average with weight `w = 1 − decay`.
#[derive(Clone, Copy)]
struct EmaK(LerpK);
impl Body<1, 1> for EmaK {
    #[inline(always)]
    fn apply<S: Simd<f32>>(self, s: S, [a]: &mut [S::V; 1], [p]: [S::V; 1]) {
        *a = lerp_mul_vector(s, *a, p, s.splat(self.0.w));
    }
}

struct ReplicaK<'a, 'b, A> {
    replicas: &'a mut [&'b mut [A]],
    n: usize,
    k: f32,
    draw: Option<Draw<1>>,
}

impl<A: Storage> Kernel<f32> for ReplicaK<'_, '_, A> {
    type Output = ();
    #[inline(always)]
    fn run<S: Simd<f32>>(self, s: S) {
        let k = s.splat(self.k);
        let lanes = S::LANES;
        let sz = core::mem::size_of::<A>();
        let mut i = 0;
        while i < self.n {
            let count = lanes.min(self.n - i);
            let r = self.draw.as_ref().map(|d| d.lanes(s, i, [A::NARROWS])[0]);
            // Every vector goes through zero-padded stack buffers, so full vectors and the tail
            // see the same operations; the copies are `count` elements inside each replica.
            let mut buf = Aligned([0u8; 8 * MAX_LANES]);
            // SAFETY: i + count <= n = every replica's length; `buf` holds MAX_LANES >= LANES
            // elements of any format, aligned for all; the replicas are distinct exclusive
            // borrows.
            unsafe {
                let mut sum = s.splat(0.0);
                for (j, rep) in self.replicas.iter().enumerate() {
                    let src = rep.as_ptr().cast::<u8>().add(i * sz);
                    core::ptr::copy_nonoverlapping(src, buf.0.as_mut_ptr(), count * sz);
                    let x = A::load_vec(s, buf.0.as_ptr().cast::<A>());
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
