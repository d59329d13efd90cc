//! The update rules over 16-bit storage. Each kernel runs the `f32` rule's own per-vector function
//! (`crate::rules::*::*_vector`) between the widening loads and the rounding stores of
//! [`zip16`]; see the module documentation of [`crate::reduced`] for what is rounded when.

use super::simd16::{run16, zip16, Half16, Kernel16, RoBuf, RwBuf};
use super::{Rounding, Storage};
use crate::error::check_len;
use crate::rules::adam::{adam_vector, AdamConsts};
use crate::rules::averaging::{
    lerp_div_vector, lerp_mul_vector, replica_div_vector, replica_sum_vector,
};
use crate::rules::gd::{gd_vector, sgd_vector};
use crate::rules::sign::{lion_vector, sign_vector, signum_vector};
use crate::rules::unit_closed;
use crate::simd::MAX_LANES;
use crate::{Adam, Backend, Error, Gd, Lion, Sgd, SignDescent, Signum};
use rand_xoshiro::Xoshiro256PlusPlus;

impl Gd<f32> {
    /// [`Gd::step_on`] with parameters stored as `P` and gradients as `G` (`f32`, `bf16` or
    /// `f16`): the `f32` rule on the widened values, then `params` rounded with `rounding` (if
    /// 16-bit). Stochastic: `params` is the one rounded buffer. Validates before writing.
    pub fn step_reduced_on<P: Storage, G: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding<'_>,
        params: &mut [P],
        grads: &[G],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        let (rule, n) = (*self, params.len());
        let (rw, ro, rng) = ([RwBuf::of(params)], [RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: GdK(rule),
            },
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
        rounding: Rounding<'_>,
        step: u64,
        params: &mut [P],
        grads: &[G],
        momentum_buf: &mut [B],
    ) -> Result<(), Error> {
        let first = self.prepare(step, params.len(), grads.len(), momentum_buf.len())?;
        let n = params.len();
        let rw = [RwBuf::of(params), RwBuf::of(momentum_buf)];
        let (ro, rng) = ([RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: SgdK(*self, first),
            },
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
        rounding: Rounding<'_>,
        step: u64,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
        v: &mut [M],
    ) -> Result<(), Error> {
        let c = self.prepare(step, params.len(), grads.len(), m.len(), v.len())?;
        let n = params.len();
        let rw = [RwBuf::of(params), RwBuf::of(m), RwBuf::of(v)];
        let (ro, rng) = ([RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: AdamK(c),
            },
        )
    }

    /// [`Adam::step_amsgrad_on`] over 16-bit storage as [`Adam::step_reduced_on`]; `v_max` is
    /// stored as `M` too and rounded last.
    #[allow(clippy::too_many_arguments)]
    pub fn step_amsgrad_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding<'_>,
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
            RwBuf::of(params),
            RwBuf::of(m),
            RwBuf::of(v),
            RwBuf::of(v_max),
        ];
        let (ro, rng) = ([RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: AmsGradK(c),
            },
        )
    }
}

impl SignDescent<f32> {
    /// [`SignDescent::step_on`] with parameters stored as `P` and gradients as `G`; `params` is
    /// rounded on store (if 16-bit). Validates before writing.
    pub fn step_reduced_on<P: Storage, G: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding<'_>,
        params: &mut [P],
        grads: &[G],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        let (rule, n) = (*self, params.len());
        let (rw, ro, rng) = ([RwBuf::of(params)], [RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: SignK(rule),
            },
        )
    }
}

impl Signum<f32> {
    /// [`Signum::step_on`] with parameters stored as `P`, gradients as `G`, momentum as `M`;
    /// `params` and `m` are rounded on store (if 16-bit; stochastic: in that order).
    pub fn step_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding<'_>,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        let (rule, n) = (*self, params.len());
        let rw = [RwBuf::of(params), RwBuf::of(m)];
        let (ro, rng) = ([RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: SignumK(rule),
            },
        )
    }
}

impl Lion<f32> {
    /// [`Lion::step_on`] with parameters stored as `P`, gradients as `G`, momentum as `M`;
    /// `params` and `m` are rounded on store (if 16-bit; stochastic: in that order).
    pub fn step_reduced_on<P: Storage, G: Storage, M: Storage>(
        &self,
        backend: Backend,
        rounding: Rounding<'_>,
        params: &mut [P],
        grads: &[G],
        m: &mut [M],
    ) -> Result<(), Error> {
        self.validate()?;
        check_len("grads", params.len(), grads.len())?;
        check_len("m", params.len(), m.len())?;
        let (rule, n) = (*self, params.len());
        let rw = [RwBuf::of(params), RwBuf::of(m)];
        let (ro, rng) = ([RoBuf::of(grads)], rounding.rng());
        run16(
            backend,
            K16 {
                n,
                rw,
                ro,
                rng,
                f: LionK(rule),
            },
        )
    }
}

/// [`crate::running_mean_on`] with the mean stored as `A` and the parameters as `P`; `avg` is
/// rounded on store (if 16-bit). `count = 0` makes `avg` the (rounded) copy of `params`.
pub fn running_mean_reduced_on<A: Storage, P: Storage>(
    backend: Backend,
    rounding: Rounding<'_>,
    avg: &mut [A],
    params: &[P],
    count: u64,
) -> Result<(), Error> {
    check_len("params", avg.len(), params.len())?;
    let n = avg.len();
    let (rw, ro, rng) = ([RwBuf::of(avg)], [RoBuf::of(params)], rounding.rng());
    // As the f32 rule: k = count + 1 rounded to f32 once; count = 0 is a copy.
    let k = (count != 0).then_some((count as f64) as f32 + 1.0);
    run16(
        backend,
        K16 {
            n,
            rw,
            ro,
            rng,
            f: LerpK { k, w: 0.0 },
        },
    )
}

/// [`crate::ema_on`] with the average stored as `A` and the parameters as `P`; `avg` is rounded
/// on store (if 16-bit). `decay` must lie in `[0, 1]`.
pub fn ema_reduced_on<A: Storage, P: Storage>(
    backend: Backend,
    rounding: Rounding<'_>,
    avg: &mut [A],
    params: &[P],
    decay: f32,
) -> Result<(), Error> {
    unit_closed("decay", decay)?;
    check_len("params", avg.len(), params.len())?;
    let n = avg.len();
    let (rw, ro, rng) = ([RwBuf::of(avg)], [RoBuf::of(params)], rounding.rng());
    let f = LerpK {
        k: None,
        w: 1.0 - decay,
    };
    run16(
        backend,
        K16 {
            n,
            rw,
            ro,
            rng,
            f: EmaK(f),
        },
    )
}

/// [`crate::replica_mean_on`] over replicas stored as `A`: the mean of the widened replicas, in
/// replica order, divided by `K`, is rounded **once** per element (stochastic: one rounded buffer,
/// `K = 1` in the stream) and the same bits are written to every replica.
pub fn replica_mean_reduced_on<A: Storage>(
    backend: Backend,
    rounding: Rounding<'_>,
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
    run16(
        backend,
        ReplicaK {
            replicas,
            n,
            k,
            rng: rounding.rng(),
        },
    )
}

/// A per-vector update of `RW` written and `RO` read buffers, the body of a [`K16`].
trait Body<const RW: usize, const RO: usize>: Copy {
    fn apply<S: Half16>(self, s: S, w: &mut [S::V; RW], r: [S::V; RO]);
}

/// A 16-bit kernel: [`zip16`] over the buffers with the body `f`.
struct K16<'r, F, const RW: usize, const RO: usize> {
    n: usize,
    rw: [RwBuf; RW],
    ro: [RoBuf; RO],
    rng: Option<&'r mut Xoshiro256PlusPlus>,
    f: F,
}

impl<F: Body<RW, RO>, const RW: usize, const RO: usize> Kernel16 for K16<'_, F, RW, RO> {
    type Output = ();
    #[inline(always)]
    fn run<S: Half16>(self, s: S) {
        let f = self.f;
        // SAFETY: every buffer holds n elements of its format (checked by the public function
        // that built this kernel); the written buffers come from distinct exclusive borrows.
        unsafe {
            zip16(
                s,
                self.n,
                self.rw,
                self.ro,
                self.rng,
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
    fn apply<S: Half16>(self, s: S, [p]: &mut [S::V; 1], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [p, b]: &mut [S::V; 2], [g]: [S::V; 1]) {
        let c = self.0.vectors(s, self.1);
        (*p, *b) = sgd_vector(s, &c, *p, *b, g);
    }
}

#[derive(Clone, Copy)]
struct AdamK(AdamConsts<f32>);
impl Body<3, 1> for AdamK {
    #[inline(always)]
    fn apply<S: Half16>(self, s: S, [p, m, v]: &mut [S::V; 3], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [p, m, v, vm]: &mut [S::V; 4], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [p]: &mut [S::V; 1], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [p, m]: &mut [S::V; 2], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [p, m]: &mut [S::V; 2], [g]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [a]: &mut [S::V; 1], [p]: [S::V; 1]) {
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
    fn apply<S: Half16>(self, s: S, [a]: &mut [S::V; 1], [p]: [S::V; 1]) {
        *a = lerp_mul_vector(s, *a, p, s.splat(self.0.w));
    }
}

struct ReplicaK<'a, 'b, 'r, A> {
    replicas: &'a mut [&'b mut [A]],
    n: usize,
    k: f32,
    rng: Option<&'r mut Xoshiro256PlusPlus>,
}

impl<A: Storage> Kernel16 for ReplicaK<'_, '_, '_, A> {
    type Output = ();
    #[inline(always)]
    fn run<S: Half16>(self, s: S) {
        use super::simd16::{load_fmt, store_fmt, Stream};
        let fmt = A::FORMAT;
        let sz = fmt.size();
        let k = s.splat(self.k);
        let stochastic = self.rng.is_some();
        let mut stream = self
            .rng
            .map(|r| Stream::new(r, [fmt != super::Format::F32]));
        let (mut ru, mut rf) = ([[0u32; MAX_LANES]; 1], [[0.0f32; MAX_LANES]; 1]);
        let lanes = S::LANES;
        let mut i = 0;
        while i < self.n {
            let count = lanes.min(self.n - i);
            let mut rv = s.splat(0.0);
            if let Some(st) = stream.as_mut() {
                st.fill(i, count, &mut ru, &mut rf);
                // SAFETY: `rf[0]` holds MAX_LANES >= LANES lanes.
                rv = unsafe { s.load(rf[0].as_ptr()) };
            }
            // Every vector goes through zero-padded stack buffers, so full vectors and the tail
            // see the same operations; the copies are `count` elements inside each replica.
            let mut buf = [0u8; 4 * MAX_LANES];
            // SAFETY: i + count <= n = every replica's length; `buf` holds MAX_LANES >= LANES
            // elements of any format; the replicas are distinct exclusive borrows.
            unsafe {
                let mut sum = s.splat(0.0);
                for (j, r) in self.replicas.iter().enumerate() {
                    let src = r.as_ptr().cast::<u8>().add(i * sz);
                    core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), count * sz);
                    let x = load_fmt(s, fmt, buf.as_ptr());
                    sum = if j == 0 {
                        x
                    } else {
                        replica_sum_vector(s, sum, x)
                    };
                }
                let mean = replica_div_vector(s, sum, k);
                store_fmt(s, fmt, buf.as_mut_ptr(), mean, stochastic, &ru[0], rv);
                for r in self.replicas.iter_mut() {
                    let dst = r.as_mut_ptr().cast::<u8>().add(i * sz);
                    core::ptr::copy_nonoverlapping(buf.as_ptr(), dst, count * sz);
                }
            }
            i += count;
        }
    }
}
