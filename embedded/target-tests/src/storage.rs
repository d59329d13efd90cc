//! 16-bit storage checks (bf16 / f16 buffers): the conversions of `reduced::convert_with` and the
//! 16-bit storage variant of every update rule (`Rule::step_with` and the averaging functions'
//! `*_with` with bf16/f16 buffers), with nearest-even and stochastic rounding, over
//! every length `0..=N16`, each buffer starting at an unaligned offset (`(n / 4) % 4` elements
//! past a 4-byte boundary, so every pair of tail length and offset modulo 4 occurs).
//!
//! - **References, on every target.** Narrowing on `Backend::Scalar` against `half`'s `from_f32`
//!   (nearest even) and against the documented per-element rule with the counter-based bits
//!   `storage::random_bits(key.pair_key(0), 0, offset + i)` (stochastic); widening against
//!   `half`'s `to_f32`; a stochastic conversion split into two calls at `at_offset` gives the
//!   bits of one call; AdamW (bf16 parameters, f32 gradients, f16 moments) on `Backend::Scalar`
//!   against "widen, run the f32 rule, round each written buffer" (the documented semantics of
//!   the 16-bit variants), 2 steps.
//! - **Active backend vs `Backend::Scalar`**, where the active backend is a SIMD one: every
//!   conversion and every rule's 16-bit variant (mixed formats, 2 steps), bit for bit.
//!
//! Bit for bit means equal bits, except that any NaN equals any NaN (NaN payloads are no part of
//! any contract, as in `rules.rs`). Inputs are `fill_mixed` values (specials included) scaled by
//! powers of two from 2^-30 to 2^20, so f16 subnormals, underflow and overflow occur.

use crate::real::Bump;
use crate::{fill_mixed, out, Suite};
use descent_kernels::random::{seeded, Xoshiro256PlusPlus};
use descent_kernels::reduced::convert_with;
use descent_kernels::reduced::scalar as sc;
use descent_kernels::storage::random_bits;
use descent_kernels::{
    ema_with, replica_mean_with, running_mean_with, Adam, Backend, Error, Exec, Gd, KahanBf16,
    Lion, Rounding, Rule as _, Sgd, SignDescent, Signum, StochasticKey, Storage, WeightDecay,
};
use half::{bf16, f16};

/// Largest length checked (every length from 0 up to it).
#[cfg(not(small_ram))]
pub const N16: usize = 257;
#[cfg(small_ram)]
pub const N16: usize = 67;

/// A buffer element type: `f32`, `bf16` or `f16`.
trait Elem: Storage + Copy {
    const NAME: &'static str;
    /// Round to nearest even (the crate's scalar reference).
    fn from_f32(x: f32) -> Self;
    /// Widen (exact).
    fn to_f32(self) -> f32;
    /// Raw bits, for messages.
    fn bits(self) -> u32;
}
impl Elem for f32 {
    const NAME: &'static str = "f32";
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
}
impl Elem for bf16 {
    const NAME: &'static str = "bf16";
    fn from_f32(x: f32) -> Self {
        sc::bf16_nearest(x)
    }
    fn to_f32(self) -> f32 {
        sc::widen_bf16(self)
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}
impl Elem for f16 {
    const NAME: &'static str = "f16";
    fn from_f32(x: f32) -> Self {
        sc::f16_nearest(x)
    }
    fn to_f32(self) -> f32 {
        sc::widen_f16(self)
    }
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
}

/// Kahan-compensated bf16 (`hi + lo`), stored by the documented split: `r(x)` rounds to 8
/// significant bits by Veltkamp's splitting (`γ = 65537·x`, `γ + (x − γ)`) for `|x| < 2^111`
/// (else `x`) and truncates to bf16; `hi = r(v)`, `lo = r(v − hi)` (`r(0)` when `hi` is ±Inf).
impl Elem for KahanBf16 {
    const NAME: &'static str = "kahan-bf16";
    fn from_f32(v: f32) -> Self {
        let r = |x: f32| {
            let y = if libm::fabsf(x) < f32::from_bits(0x7700_0000) {
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
            hi: bf16::from_bits((hi.to_bits() >> 16) as u16),
            lo: bf16::from_bits((lo.to_bits() >> 16) as u16),
        }
    }
    fn to_f32(self) -> f32 {
        sc::widen_bf16(self.hi) + sc::widen_bf16(self.lo)
    }
    fn bits(self) -> u32 {
        (self.lo.to_bits() as u32) << 16 | self.hi.to_bits() as u32
    }
}

/// `n` elements of `T` (zero bits) from the f32 arena, starting `off` elements past a 4-byte
/// boundary.
fn take<'a, T: Elem>(al: &mut Bump<'a, f32>, n: usize, off: usize) -> &'a mut [T] {
    let size = core::mem::size_of::<T>();
    assert!(size <= 4 && core::mem::align_of::<T>() <= 4);
    let words = ((n + off) * size).div_ceil(4);
    let buf = al.take(words);
    // SAFETY: `buf` is `words` zeroed f32s, exclusively borrowed for 'a, i.e. at least
    // (n + off)·size bytes; `T` is f32, a `#[repr(transparent)]` u16 (bf16, f16) or KahanBf16 (two
    // bf16, 4 bytes, align 4; `Elem` is implemented for nothing else), so every bit pattern is
    // valid and its alignment divides 4.
    let all = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<T>(), n + off) };
    &mut all[off..]
}

/// One seeded value: `fill_mixed`'s distribution in `[-scale, scale]` (specials at rate 0.05)
/// times 2^k.
fn value(rng: &mut Xoshiro256PlusPlus, scale: f64, k: i32) -> f32 {
    let mut v = [0.0f32];
    fill_mixed(rng, &mut v, scale, 0.05);
    v[0] * f32::from_bits(((127 + k) as u32) << 23)
}

/// The power of two of element `i` of a conversion's source: cycles over -30..=20.
fn wide(i: usize) -> i32 {
    (i * 7 % 51) as i32 - 30
}

/// The result of one kind of check over every length: the first mismatch, if any.
struct Track {
    ok: bool,
    first: Option<(usize, usize, u32, u32)>,
}

impl Track {
    fn new() -> Self {
        Track {
            ok: true,
            first: None,
        }
    }
    /// A call that returned an error.
    fn call(&mut self, n: usize, r: Result<(), Error>) {
        if r.is_err() {
            self.ok = false;
            self.first.get_or_insert((n, usize::MAX, 0, 0));
        }
    }
    /// Element-wise comparison of two buffers of length `n`.
    fn cmp<T: Elem>(&mut self, n: usize, got: &[T], want: &[T]) {
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            let (x, y) = (a.to_f32(), b.to_f32());
            let eq = if x.is_nan() {
                y.is_nan()
            } else {
                a.bits() == b.bits()
            };
            if !eq {
                self.ok = false;
                self.first.get_or_insert((n, i, a.bits(), b.bits()));
                return;
            }
        }
    }
    fn report(&self, s: &mut Suite, name: &str, what: &str) {
        s.check(name, what, self.ok);
        match self.first {
            Some((n, usize::MAX, _, _)) => out!("    n = {n}: the call returned an error\n"),
            Some((n, i, got, want)) => {
                out!("    n = {n}, element {i}: got {got:#06x}, want {want:#06x}\n")
            }
            None => {}
        }
    }
}

/// The two roundings checked, with the key of a call (counter `t`).
fn rounding(stochastic: bool, t: u64) -> Rounding {
    if stochastic {
        Rounding::Stochastic(StochasticKey::new(0x5eed_16).with_stream(3).with_counter(t))
    } else {
        Rounding::NearestEven
    }
}

/// The 16 random bits of element `i` of the `k`-th rounded buffer of a call.
fn bits_of(r: Rounding, k: u32, i: usize) -> u16 {
    match r {
        Rounding::Stochastic(key) => {
            random_bits(key.pair_key(k / 2), k, key.offset + i as u64) as u16
        }
        Rounding::NearestEven => 0,
    }
}

/// Narrowing to `T`, widening back, and chunking, for one rounding: (Scalar vs reference, Scalar
/// vs half on widening, chunked vs whole, active vs Scalar (narrow and widen)).
fn conversion<T: Elem>(
    s: &mut Suite,
    a32: &mut [f32],
    stochastic: bool,
    reference: fn(f32, u16) -> T,
    half_to_f32: fn(T) -> f32,
) {
    let active = Backend::active();
    let (mut t_ref, mut t_widen, mut t_chunk, mut t_narrow_a, mut t_widen_a) = (
        Track::new(),
        Track::new(),
        Track::new(),
        Track::new(),
        Track::new(),
    );
    for n in 0..=N16 {
        let off = (n / 4) % 4;
        let mut al = Bump::new(&mut *a32);
        let mut rng = seeded(0x16_0000 + n as u64);
        let src = take::<f32>(&mut al, n, off);
        for (i, x) in src.iter_mut().enumerate() {
            *x = value(&mut rng, 2.0, wide(i));
        }
        let r = rounding(stochastic, n as u64);
        let (scalar, act) = (
            Exec::scalar().with_rounding(r),
            Exec::active().with_rounding(r),
        );
        // Scalar against the reference.
        let ds = take::<T>(&mut al, n, (off + 1) % 4);
        t_ref.call(n, convert_with(&scalar, src, ds));
        let want = take::<T>(&mut al, n, 0);
        for (i, (w, &x)) in want.iter_mut().zip(src.iter()).enumerate() {
            *w = reference(x, bits_of(r, 0, i));
        }
        t_ref.cmp(n, ds, want);
        // Widening (exact) against half.
        let ws = take::<f32>(&mut al, n, off);
        t_widen.call(n, convert_with(&scalar, ds, ws));
        let ww = take::<f32>(&mut al, n, 0);
        for (w, &h) in ww.iter_mut().zip(ds.iter()) {
            *w = half_to_f32(h);
        }
        t_widen.cmp(n, ws, ww);
        // Split into two calls at k (active backend): the same bits.
        if let Rounding::Stochastic(key) = r {
            let k = n / 3;
            let dc = take::<T>(&mut al, n, off);
            let (lo, hi) = dc.split_at_mut(k);
            t_chunk.call(n, convert_with(&act, &src[..k], lo));
            let r2 = Rounding::Stochastic(key.at_offset(k as u64));
            t_chunk.call(n, convert_with(&act.with_rounding(r2), &src[k..], hi));
            t_chunk.cmp(n, dc, ds);
        }
        if active != Backend::Scalar {
            let da = take::<T>(&mut al, n, (off + 3) % 4);
            t_narrow_a.call(n, convert_with(&act, src, da));
            t_narrow_a.cmp(n, da, ds);
            let wa = take::<f32>(&mut al, n, (off + 2) % 4);
            t_widen_a.call(n, convert_with(&act, ds, wa));
            t_widen_a.cmp(n, wa, ws);
        }
    }
    let kind = if stochastic { "stochastic" } else { "nearest" };
    let t = T::NAME;
    let name = if stochastic { "convert_sr" } else { "convert" };
    let mut w = Text::new();
    w.set(format_args!(
        "f32 -> {t} {kind}, Backend::Scalar vs {}, n = 0..={N16}",
        if stochastic {
            "per-element rule with storage::random_bits"
        } else {
            "half::from_f32"
        }
    ));
    t_ref.report(s, name, w.as_str());
    w.set(format_args!(
        "{t} -> f32, Backend::Scalar vs half::to_f32, n = 0..={N16}"
    ));
    t_widen.report(s, name, w.as_str());
    if stochastic {
        w.set(format_args!(
            "f32 -> {t} stochastic, two chunks (at_offset) = one call, active backend"
        ));
        t_chunk.report(s, name, w.as_str());
    }
    if active != Backend::Scalar {
        w.set(format_args!(
            "f32 -> {t} {kind}: active backend vs Backend::Scalar, bit-exact, n = 0..={N16}"
        ));
        t_narrow_a.report(s, name, w.as_str());
        w.set(format_args!(
            "{t} -> f32: active backend vs Backend::Scalar, bit-exact, n = 0..={N16}"
        ));
        t_widen_a.report(s, name, w.as_str());
    }
}

/// A short formatted description (check names are printed, never stored).
struct Text {
    buf: [u8; 160],
    len: usize,
}
impl Text {
    fn new() -> Self {
        Text {
            buf: [0; 160],
            len: 0,
        }
    }
    fn set(&mut self, args: core::fmt::Arguments) {
        self.len = 0;
        let _ = core::fmt::Write::write_fmt(self, args);
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}
impl core::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let k = s.len().min(room);
        self.buf[self.len..self.len + k].copy_from_slice(&s.as_bytes()[..k]);
        self.len += k;
        Ok(())
    }
}

/// The buffers of one 16-bit rule run.
struct Run<'a, P, G, M> {
    p: &'a mut [P],
    g: &'a mut [G],
    /// The rule's flat state: `states` buffers of `n` elements one after the other.
    m: &'a mut [M],
}

/// Seeded buffers of length `n` (`states` state buffers, flat; the second and third are >= 0,
/// as second moments), parameters, gradients and state each at its own unaligned offset; the
/// same for the same (`seed`, `n`).
fn setup<'a, P: Elem, G: Elem, M: Elem>(
    al: &mut Bump<'a, f32>,
    n: usize,
    states: usize,
    seed: u64,
) -> Run<'a, P, G, M> {
    let off = (n / 4) % 4;
    let mut rng = seeded(seed ^ n as u64);
    let p = take::<P>(al, n, off);
    let g = take::<G>(al, 2 * n, (off + 1) % 4);
    let m = take::<M>(al, states * n, (off + 2) % 4);
    for (i, x) in p.iter_mut().enumerate() {
        *x = P::from_f32(value(&mut rng, 4.0, (i % 5) as i32 - 3));
    }
    for (i, x) in g.iter_mut().enumerate() {
        *x = G::from_f32(value(&mut rng, 2.0, (i % 11) as i32 - 8));
    }
    for (k, b) in m.chunks_exact_mut(n.max(1)).enumerate() {
        for (i, x) in b.iter_mut().enumerate() {
            let v = value(&mut rng, 1.0, (i % 9) as i32 - 8);
            *x = M::from_f32(if k > 0 { libm::fabsf(v) } else { v });
        }
    }
    Run { p, g, m }
}

/// A rule's 16-bit step: (context: backend and rounding, step t, params, grads, flat state).
type Step<P, G, M> = fn(&Exec, u64, &mut [P], &[G], &mut [M]) -> Result<(), Error>;

/// Two steps of a rule's 16-bit variant on the active backend and on `Backend::Scalar` from the
/// same buffers, every length, both roundings: bit-exact.
fn rule16<P: Elem, G: Elem, M: Elem>(
    s: &mut Suite,
    a32: &mut [f32],
    name: &str,
    states: usize,
    step: Step<P, G, M>,
) {
    for stochastic in [false, true] {
        let mut t = Track::new();
        for n in 0..=N16 {
            let mut al = Bump::new(&mut *a32);
            let seed = 0x1600 + name.len() as u64 * 977;
            let a = setup::<P, G, M>(&mut al, n, states, seed);
            let b = setup::<P, G, M>(&mut al, n, states, seed);
            for step_t in 1..=2u64 {
                let r = rounding(stochastic, step_t);
                let range = (step_t as usize - 1) * n..step_t as usize * n;
                let act = Exec::active().with_rounding(r);
                t.call(n, step(&act, step_t, a.p, &a.g[range.clone()], a.m));
                let scalar = Exec::scalar().with_rounding(r);
                t.call(n, step(&scalar, step_t, b.p, &b.g[range], b.m));
            }
            t.cmp(n, a.p, b.p);
            t.cmp(n, a.m, b.m);
        }
        let mut w = Text::new();
        w.set(format_args!(
            "params {}, grads {}, state {}, {}, 2 steps: active backend vs Backend::Scalar, bit-exact, n = 0..={N16}",
            P::NAME,
            G::NAME,
            M::NAME,
            if stochastic { "stochastic" } else { "nearest" }
        ));
        t.report(s, name, w.as_str());
    }
}

/// AdamW over bf16 parameters, f32 gradients and f16 moments on `Backend::Scalar`, 2 steps,
/// against the documented semantics: widen, the f32 rule (`Rule::step_with` with f32 buffers on
/// `Exec::scalar()`), then round the written buffers (params, m, v: drawing buffers 0, 1, 2) with
/// the per-element references.
fn adam_reference(s: &mut Suite, a32: &mut [f32]) {
    let adam = Adam::adamw(1e-2f32, 0.01);
    for stochastic in [false, true] {
        let mut t = Track::new();
        for n in 0..=N16 {
            let mut al = Bump::new(&mut *a32);
            let run = setup::<bf16, f32, f16>(&mut al, n, 2, 0xada);
            let want = setup::<bf16, f32, f16>(&mut al, n, 2, 0xada);
            // The f32 parameters and state (m then v) of the reference.
            let (pf, sf) = (take::<f32>(&mut al, n, 1), take::<f32>(&mut al, 2 * n, 2));
            for step_t in 1..=2u64 {
                let r = rounding(stochastic, step_t);
                let g = &run.g[(step_t as usize - 1) * n..step_t as usize * n];
                let scalar = Exec::scalar().with_rounding(r);
                t.call(n, adam.step_with(&scalar, step_t, run.p, g, run.m));
                for i in 0..n {
                    pf[i] = want.p[i].to_f32();
                }
                for (f, h) in sf.iter_mut().zip(want.m.iter()) {
                    *f = h.to_f32();
                }
                t.call(n, adam.step_with(&Exec::scalar(), step_t, pf, g, sf));
                let (mf, vf) = sf.split_at(n);
                let (wm, wv) = want.m.split_at_mut(n);
                for i in 0..n {
                    let (b0, b1, b2) = (bits_of(r, 0, i), bits_of(r, 1, i), bits_of(r, 2, i));
                    if stochastic {
                        want.p[i] = sc::bf16_stochastic(pf[i], b0);
                        wm[i] = sc::f16_stochastic(mf[i], b1);
                        wv[i] = sc::f16_stochastic(vf[i], b2);
                    } else {
                        want.p[i] = sc::bf16_nearest(pf[i]);
                        wm[i] = sc::f16_nearest(mf[i]);
                        wv[i] = sc::f16_nearest(vf[i]);
                    }
                }
            }
            t.cmp(n, run.p, want.p);
            t.cmp(n, run.m, want.m);
        }
        let mut w = Text::new();
        w.set(format_args!(
            "bf16 params, f16 moments, {}, Backend::Scalar vs widen + f32 AdamW + round, 2 steps, n = 0..={N16}",
            if stochastic { "stochastic" } else { "nearest" }
        ));
        t.report(s, "adamw_16_reference", w.as_str());
    }
}

/// Kahan-compensated bf16 parameters (`KahanBf16`): the conversion f32 -> pair against the
/// documented split (`Elem::from_f32` above) and back against `hi + lo`, on `Backend::Scalar` and
/// the active backend, both roundings (the pair never draws bits); the split's documented bound
/// `|hi + lo − v| <= 2^-17·|v| + 2^-133` (finite `|v| < 2^111`); AdamW with pair parameters and
/// f32 gradients and moments, 2 steps, against "widen, f32 AdamW, split" (both backends, both
/// roundings); and 100 gradient-descent steps of `lr·g = 1e-4` from 1.0, which bf16 alone rounds
/// away, within `100·(2^-17 + 2^-23 + 2^-133)` of f32 (the split's bound plus one f32 rounding
/// of each path per step).
fn kahan(s: &mut Suite, a32: &mut [f32]) {
    let (mut t_conv, mut t_widen, mut bound_ok) = (Track::new(), Track::new(), true);
    let mut t_adam = Track::new();
    let adam = Adam::adamw(1e-2f32, 0.01);
    for n in 0..=N16 {
        let off = (n / 4) % 4;
        for stochastic in [false, true] {
            for exec in [Exec::scalar(), Exec::active()] {
                let exec = exec.with_rounding(rounding(stochastic, n as u64));
                let mut al = Bump::new(&mut *a32);
                let mut rng = seeded(0x4a_0000 + n as u64);
                let src = take::<f32>(&mut al, n, off);
                for (i, x) in src.iter_mut().enumerate() {
                    *x = value(&mut rng, 2.0, wide(i));
                }
                let d = take::<KahanBf16>(&mut al, n, (off + 1) % 4);
                t_conv.call(n, convert_with(&exec, src, d));
                let want = take::<KahanBf16>(&mut al, n, 0);
                for (w, &x) in want.iter_mut().zip(src.iter()) {
                    *w = <KahanBf16 as Elem>::from_f32(x);
                }
                t_conv.cmp(n, d, want);
                let back = take::<f32>(&mut al, n, off);
                t_widen.call(n, convert_with(&exec, d, back));
                let wb = take::<f32>(&mut al, n, 0);
                for (w, k) in wb.iter_mut().zip(want.iter()) {
                    *w = Elem::to_f32(*k);
                }
                t_widen.cmp(n, back, wb);
                for (&v, &b) in src.iter().zip(back.iter()) {
                    if v.is_finite() && libm::fabsf(v) < f32::from_bits(0x7700_0000) {
                        let err = (b as f64 - v as f64).abs();
                        bound_ok &=
                            err <= libm::ldexp((v as f64).abs(), -17) + libm::ldexp(1.0, -133);
                    }
                }
                // AdamW, pair parameters, 2 steps, against widen + f32 AdamW + split.
                let mut al = Bump::new(&mut *a32);
                let run = setup::<KahanBf16, f32, f32>(&mut al, n, 2, 0x4a);
                let want = setup::<KahanBf16, f32, f32>(&mut al, n, 2, 0x4a);
                let pf = take::<f32>(&mut al, n, 1);
                for t in 1..=2u64 {
                    let g = &run.g[(t as usize - 1) * n..t as usize * n];
                    t_adam.call(n, adam.step_with(&exec, t, run.p, g, run.m));
                    for (f, k) in pf.iter_mut().zip(want.p.iter()) {
                        *f = Elem::to_f32(*k);
                    }
                    t_adam.call(n, adam.step_with(&Exec::scalar(), t, pf, g, want.m));
                    for (k, &f) in want.p.iter_mut().zip(pf.iter()) {
                        *k = <KahanBf16 as Elem>::from_f32(f);
                    }
                }
                t_adam.cmp(n, run.p, want.p);
                t_adam.cmp(n, run.m, want.m);
            }
        }
    }
    let name = "kahan_bf16";
    t_conv.report(s, name, "f32 -> pair, Backend::Scalar and active, both roundings, vs the documented split, n = 0..=N16");
    t_widen.report(
        s,
        name,
        "pair -> f32, Backend::Scalar and active, vs hi + lo, n = 0..=N16",
    );
    s.check(
        name,
        "split within 2^-17·|v| + 2^-133 of v (finite |v| < 2^111)",
        bound_ok,
    );
    t_adam.report(s, "adamw_kahan", "pair params, f32 grads and moments, Backend::Scalar and active, both roundings, 2 steps, vs widen + f32 AdamW + split, n = 0..=N16");
    // Accumulation far below bf16's resolution.
    let mut al = Bump::new(&mut *a32);
    let (pk, pf, pb, g) = (
        take::<KahanBf16>(&mut al, 8, 0),
        take::<f32>(&mut al, 8, 0),
        take::<bf16>(&mut al, 8, 0),
        take::<f32>(&mut al, 8, 0),
    );
    pk.fill(<KahanBf16 as Elem>::from_f32(1.0));
    pf.fill(1.0);
    pb.fill(bf16::ONE);
    g.fill(1.0);
    let gd = Gd::new(1e-4f32);
    let mut ok = true;
    for t in 1..=100 {
        ok &= gd
            .step_with(&Exec::active(), t, pk, g, &mut [] as &mut [f32])
            .is_ok();
        ok &= gd
            .step_with(&Exec::active(), t, pf, g, &mut [] as &mut [f32])
            .is_ok();
        ok &= gd
            .step_with(&Exec::active(), t, pb, g, &mut [] as &mut [f32])
            .is_ok();
    }
    // Per step, both paths round `p − lr·g` once in f32 (at most 2^-24·|p| each, |p| <= 1 here)
    // and the pair's split adds at most 2^-17·|p| + 2^-133; the errors add over 100 steps.
    let tol =
        100.0 * (libm::ldexp(1.0, -17) + 2.0 * libm::ldexp(1.0, -24) + libm::ldexp(1.0, -133));
    ok &= pk
        .iter()
        .zip(pf.iter())
        .all(|(k, f)| ((Elem::to_f32(*k) - *f) as f64).abs() <= tol);
    ok &= pb.iter().all(|b| *b == bf16::ONE);
    s.check(
        "kahan_bf16",
        "100 steps of 1e-4 from 1.0: pair within 100·(2^-17 + 2^-23 + 2^-133) of f32 (0.99); bf16 alone stays 1.0",
        ok,
    );
}

/// All 16-bit storage checks.
pub fn all(s: &mut Suite, a32: &mut [f32]) {
    for stochastic in [false, true] {
        conversion::<bf16>(
            s,
            a32,
            stochastic,
            if stochastic {
                sc::bf16_stochastic
            } else {
                |x, _| bf16::from_f32(x)
            },
            bf16::to_f32,
        );
        conversion::<f16>(
            s,
            a32,
            stochastic,
            if stochastic {
                sc::f16_stochastic
            } else {
                |x, _| f16::from_f32(x)
            },
            f16::to_f32,
        );
    }
    adam_reference(s, a32);
    kahan(s, a32);
    if Backend::active() == Backend::Scalar {
        out!("storage: active backend is Backend::Scalar; no backend comparison of the 16-bit rules\n");
        return;
    }
    rule16::<f16, bf16, f32>(s, a32, "gd_16", 0, |e, t, p, g, m| {
        Gd {
            weight_decay: WeightDecay::Decoupled(0.1),
            ..Gd::new(0.1f32)
        }
        .step_with(e, t, p, g, m)
    });
    rule16::<bf16, f32, f16>(s, a32, "sgd_nesterov_16", 1, |e, t, p, g, m| {
        let sgd = Sgd {
            nesterov: true,
            weight_decay: WeightDecay::L2(0.01),
            ..Sgd::new(0.05f32, 0.9)
        };
        sgd.step_with(e, t, p, g, m)
    });
    rule16::<bf16, f32, f16>(s, a32, "adam_16", 2, |e, t, p, g, m| {
        Adam::new(1e-3f32).step_with(e, t, p, g, m)
    });
    rule16::<bf16, bf16, bf16>(s, a32, "adamw_16", 2, |e, t, p, g, m| {
        Adam::adamw(1e-3f32, 0.01).step_with(e, t, p, g, m)
    });
    rule16::<f16, f32, f16>(s, a32, "amsgrad_16", 3, |e, t, p, g, m| {
        Adam::new(1e-3f32).amsgrad().step_with(e, t, p, g, m)
    });
    rule16::<bf16, f16, f32>(s, a32, "sign_descent_16", 0, |e, t, p, g, m| {
        SignDescent::new(0.01f32).step_with(e, t, p, g, m)
    });
    rule16::<bf16, f32, bf16>(s, a32, "signum_16", 1, |e, t, p, g, m| {
        Signum {
            weight_decay: WeightDecay::Decoupled(0.1),
            ..Signum::new(0.01f32, 0.9)
        }
        .step_with(e, t, p, g, m)
    });
    rule16::<f16, f32, bf16>(s, a32, "lion_16", 1, |e, t, p, g, m| {
        Lion {
            weight_decay: WeightDecay::Decoupled(0.1),
            ..Lion::new(1e-3f32)
        }
        .step_with(e, t, p, g, m)
    });
    rule16::<bf16, f32, f32>(s, a32, "running_mean_16", 0, |e, t, p, g, _| {
        running_mean_with(e, p, g, t - 1)
    });
    rule16::<KahanBf16, f32, f32>(s, a32, "adamw_kahan", 2, |e, t, p, g, m| {
        Adam::adamw(1e-3f32, 0.01).step_with(e, t, p, g, m)
    });
    rule16::<f16, bf16, f32>(s, a32, "ema_16", 0, |e, _, p, g, _| ema_with(e, p, g, 0.9));
    rule16::<bf16, f32, bf16>(s, a32, "replica_mean_16", 2, |e, _, p, _, m| {
        let (m0, m1) = m.split_at_mut(p.len());
        replica_mean_with(e, &mut [p, m0, m1])
    });
}
