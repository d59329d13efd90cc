//! Instructions per element of each update rule, from the guest's instruction counter (exact under
//! QEMU's `-icount shift=0`; SysTick on Cortex-M counts in steps of 25-62.5 instructions, so
//! n = 1024 keeps the error below 0.07 per element). Each rule runs through an `#[inline(never)]`,
//! `#[no_mangle]` wrapper named `rule_*` so `llvm-nm --print-size` can report its code size (the
//! wrapper holds the inlined kernel, validation and dispatch; `libm::pow` for Adam's bias
//! corrections is a separate function). One call, inputs finite, steady-state step (t = 2).
//!
//! The rules of `src/tensor.rs` (LAMB, Schedule-Free AdamW/SGD, 8-bit Adam, Adafactor's vector
//! form) and Adam over `KahanBf16` parameters are measured in the images that hold `tensor.rs`
//! (`tensor_checks`: every image but the micro:bit's default one, whose flash is full), the others
//! in the images with `other_checks`. Muon is not measured: its step is Newton–Schulz iterations of
//! matrix products, so its instructions per element grow with the matrix's smaller side and are
//! not a constant of the rule as for these elementwise (or one-reduction) rules.
//!
//! Each line also reports the state the caller keeps for the rule at this `n`, in bytes, from the
//! kernels' own length functions (`Rule::state_len`, `Lamb::state_len_for`, `Adam8::state_bytes`,
//! `ScheduleFreeRule::state_len`; Adafactor's vector state is documented as `n` elements).

use crate::real::Bump;
use crate::{out, plat, Suite};
use descent_kernels::random::{fill_uniform, seeded};
#[cfg(other_checks)]
use descent_kernels::{ema, replica_mean, running_mean, Gd, Lion, Sgd, SignDescent, Signum};
#[cfg(tensor_checks)]
use descent_kernels::{
    Adafactor, Adam8, Exec, KahanBf16, Lamb, ScheduleFreeAdamW, ScheduleFreeRule, ScheduleFreeSgd,
    TrainView,
};
use descent_kernels::{Adam, Rule as _};

#[cfg(not(small_ram))]
pub const N_BENCH: usize = 1024;
#[cfg(small_ram)]
pub const N_BENCH: usize = 256;

// Each wrapper takes the rule's flat state slice (`state_len(n)` elements: the momentum buffer,
// Adam's m then v, AMSGrad's m, v, v̂); rules without state get an empty one.

#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_gd(k: &Gd<f32>, t: u64, p: &mut [f32], g: &[f32]) -> bool {
    k.step(t, p, g, &mut []).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_sgd(k: &Sgd<f32>, t: u64, p: &mut [f32], g: &[f32], b: &mut [f32]) -> bool {
    k.step(t, p, g, b).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_sgd_nesterov(k: &Sgd<f32>, t: u64, p: &mut [f32], g: &[f32], b: &mut [f32]) -> bool {
    k.step(t, p, g, b).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_adam(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_adamw(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_amsgrad(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_sign_descent(k: &SignDescent<f32>, t: u64, p: &mut [f32], g: &[f32]) -> bool {
    k.step(t, p, g, &mut []).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_signum(k: &Signum<f32>, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(t, p, g, m).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_lion(k: &Lion<f32>, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(t, p, g, m).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_running_mean(avg: &mut [f32], p: &[f32], count: u64) -> bool {
    running_mean(avg, p, count).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_ema(avg: &mut [f32], p: &[f32], decay: f32) -> bool {
    ema(avg, p, decay).is_ok()
}
#[cfg(other_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_replica_mean(r: &mut [&mut [f32]]) -> bool {
    replica_mean(r).is_ok()
}

#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_lamb(k: &Lamb<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_schedule_free_adamw(
    view: &mut TrainView<'_, f32, ScheduleFreeAdamW<f32>>,
    g: &[f32],
) -> bool {
    view.step(g).is_ok()
}
#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_schedule_free_sgd(
    view: &mut TrainView<'_, f32, ScheduleFreeSgd<f32>>,
    g: &[f32],
) -> bool {
    view.step(g).is_ok()
}
#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_adam8(
    k: &Adam8,
    t: u64,
    p: &mut [f32],
    g: &[f32],
    codes: &mut [u8],
    scales: &mut [f32],
) -> bool {
    k.step(t, p, g, codes, scales).is_ok()
}
#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_adafactor_vector(
    k: &Adafactor<f32>,
    t: u64,
    p: &mut [f32],
    g: &[f32],
    v: &mut [f32],
) -> bool {
    k.step_vector(&Exec::active(), t, p, g, v).is_ok()
}
#[cfg(tensor_checks)]
#[no_mangle]
#[inline(never)]
pub fn rule_adam_kahan_bf16(
    k: &Adam<f32>,
    t: u64,
    p: &mut [KahanBf16],
    g: &[f32],
    state: &mut [f32],
) -> bool {
    k.step_with(&Exec::active(), t, p, g, state).is_ok()
}

/// Runs `f` once between two counter reads and prints its instructions per element (and the
/// rule's state in bytes, if it has a state); returns what `f` returned.
fn measure(
    per_tick: u64,
    n: usize,
    name: &str,
    state: Option<usize>,
    f: &mut dyn FnMut() -> bool,
) -> bool {
    let t0 = plat::counter::read();
    let good = f();
    let t1 = plat::counter::read();
    let insns = plat::counter::elapsed(t0, t1) * per_tick / 1000;
    let x100 = (insns * 100 + n as u64 / 2) / n as u64;
    out!(
        "bench {name}: {}.{:02} insn/elem (n={n}, {insns} insns)",
        x100 / 100,
        x100 % 100
    );
    match state {
        Some(b) => out!(", state {b} B\n"),
        None => out!("\n"),
    }
    good
}

pub fn all(s: &mut Suite, a32: &mut [f32]) {
    let n = N_BENCH;
    let Some(per_tick) = plat::insns_per_tick_x1000() else {
        out!("bench: no instruction counter (QEMU without -icount?)\n");
        return;
    };
    out!(
        "bench: {}.{:03} instructions per counter tick\n",
        per_tick / 1000,
        per_tick % 1000
    );
    // p, g and 3n of state here; the rest of the arena for the newer rules' buffers of other
    // types (Adam8's codes and scales, KahanBf16 parameters).
    let (head, rest) = a32.split_at_mut(5 * n);
    let mut al = Bump::new(head);
    let mut rng = seeded(400);
    let (p, g) = (al.take(n), al.take(n));
    // The state: m, v, v̂ one after the other (Adam uses m and v, AMSGrad all three, the
    // one-buffer rules m).
    let state = al.take(3 * n);
    fill_uniform(&mut rng, p, -1.0, 1.0);
    fill_uniform(&mut rng, g, -1.0, 1.0);
    {
        let (m, rest) = state.split_at_mut(n);
        let (v, vm) = rest.split_at_mut(n);
        fill_uniform(&mut rng, m, -1.0, 1.0);
        fill_uniform(&mut rng, v, 0.0, 0.1);
        vm.copy_from_slice(v);
    }
    let mut ok = true;
    #[cfg(other_checks)]
    {
        ok &= classic(per_tick, p, g, state);
    }
    #[cfg(not(tensor_checks))]
    let _ = rest;
    #[cfg(tensor_checks)]
    {
        ok &= newer(per_tick, rest, p, g, state);
    }
    s.check("bench", "every measured rule call returned Ok", ok);
}

/// The rules of `Rule` (f32) and the averaging functions.
#[cfg(other_checks)]
fn classic(per_tick: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    use core::hint::black_box as bb;
    let n = p.len();
    let mut ok = true;
    let mut measure = |name: &str, st: Option<usize>, f: &mut dyn FnMut() -> bool| {
        ok &= measure(per_tick, n, name, st.map(|e| 4 * e), f);
    };
    let adam = Adam::new(1e-3f32);
    let adamw = Adam::adamw(1e-3f32, 0.01);
    let amsgrad = adam.amsgrad();
    let sgd = Sgd::new(0.01f32, 0.9);
    let nest = Sgd {
        nesterov: true,
        ..sgd
    };
    let gd = Gd::new(0.01f32);
    let (sd, signum, lion) = (
        SignDescent::new(0.01f32),
        Signum::new(0.01f32, 0.9),
        Lion::new(1e-3f32),
    );
    measure("gd", Some(gd.state_len(n)), &mut || {
        rule_gd(bb(&gd), bb(2), p, g)
    });
    measure("sgd", Some(sgd.state_len(n)), &mut || {
        rule_sgd(bb(&sgd), bb(2), p, g, &mut state[..n])
    });
    measure("sgd_nesterov", Some(nest.state_len(n)), &mut || {
        rule_sgd_nesterov(bb(&nest), bb(2), p, g, &mut state[..n])
    });
    measure("adam", Some(adam.state_len(n)), &mut || {
        rule_adam(bb(&adam), bb(2), p, g, &mut state[..2 * n])
    });
    measure("adamw", Some(adamw.state_len(n)), &mut || {
        rule_adamw(bb(&adamw), bb(2), p, g, &mut state[..2 * n])
    });
    measure("amsgrad", Some(amsgrad.state_len(n)), &mut || {
        rule_amsgrad(bb(&amsgrad), bb(2), p, g, state)
    });
    measure("sign_descent", Some(sd.state_len(n)), &mut || {
        rule_sign_descent(bb(&sd), bb(2), p, g)
    });
    measure("signum", Some(signum.state_len(n)), &mut || {
        rule_signum(bb(&signum), bb(2), p, g, &mut state[..n])
    });
    measure("lion", Some(lion.state_len(n)), &mut || {
        rule_lion(bb(&lion), bb(2), p, g, &mut state[..n])
    });
    // The averages: the average is the caller's buffer (n elements).
    measure("running_mean", Some(n), &mut || {
        rule_running_mean(&mut state[..n], g, bb(3))
    });
    measure("ema", Some(n), &mut || {
        rule_ema(&mut state[..n], g, bb(0.99))
    });
    // 3 replicas of n elements (p, m, v̂); per element = per averaged element. No state.
    measure("replica_mean", None, &mut || {
        let (m, rest) = state.split_at_mut(n);
        rule_replica_mean(&mut [&mut *p, m, &mut rest[n..]])
    });
    ok
}

/// The rules of `src/tensor.rs` that are elementwise or elementwise after one reduction, and Adam
/// over `KahanBf16` parameters; each on `p` and `state` as the previous rule left them (finite),
/// buffers of another type from `arena` (on the micro:bit's tensor-only image a quarter of the
/// state's room is left), steady state: one step (t = 1) before the measured one (t = 2).
#[cfg(tensor_checks)]
fn newer(per_tick: u64, arena: &mut [f32], p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    use core::hint::black_box as bb;
    let n = p.len();
    let mut ok = true;
    // LAMB: state m, v (2n).
    {
        let lamb = Lamb::with_weight_decay(1e-3f32, 0.01);
        let (q, st) = (&mut *p, &mut state[..Lamb::<f32>::state_len_for(n)]);
        ok &= rule_lamb(&lamb, 1, q, g, st);
        ok &= measure(per_tick, n, "lamb", Some(4 * st.len()), &mut || {
            rule_lamb(bb(&lamb), bb(2), q, g, st)
        });
    }
    // Schedule-Free AdamW: state z, v (2n), plus the view's counters.
    {
        let sf = ScheduleFreeAdamW {
            weight_decay: 0.01,
            ..ScheduleFreeAdamW::new(1e-3f32)
        };
        let len = <ScheduleFreeAdamW<f32> as ScheduleFreeRule<f32>>::state_len(n);
        let (y, st) = (&mut *p, &mut state[..len]);
        match TrainView::new(sf, y, st) {
            Ok(mut v) => {
                ok &= v.step(g).is_ok();
                ok &= measure(
                    per_tick,
                    n,
                    "schedule_free_adamw",
                    Some(4 * len),
                    &mut || rule_schedule_free_adamw(bb(&mut v), g),
                );
            }
            Err(_) => ok = false,
        }
    }
    // Schedule-Free SGD: state z (n).
    {
        let sf = ScheduleFreeSgd::new(0.1f32);
        let len = <ScheduleFreeSgd<f32> as ScheduleFreeRule<f32>>::state_len(n);
        let (y, st) = (&mut *p, &mut state[..len]);
        match TrainView::new(sf, y, st) {
            Ok(mut v) => {
                ok &= v.step(g).is_ok();
                ok &= measure(per_tick, n, "schedule_free_sgd", Some(4 * len), &mut || {
                    rule_schedule_free_sgd(bb(&mut v), g)
                });
            }
            Err(_) => ok = false,
        }
    }
    // 8-bit Adam: 2n code bytes and 2·⌈n/256⌉ f32 scales, from zero (step 1 sets them).
    {
        let al = &mut Bump::new(&mut *arena);
        let k = Adam8::adamw(1e-3, 0.01);
        let q = &mut *p;
        let words = al.take(Adam8::codes_len(n).div_ceil(4));
        // SAFETY: `words` is ⌈2n/4⌉ zeroed f32s (at least 2n bytes), exclusively borrowed for the
        // arena's lifetime; u8 has no invalid bit patterns and alignment 1.
        let codes = unsafe {
            core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), Adam8::codes_len(n))
        };
        let scales = al.take(Adam8::scales_len(n));
        ok &= rule_adam8(&k, 1, q, g, codes, scales);
        ok &= measure(
            per_tick,
            n,
            "adam8",
            Some(Adam8::state_bytes(n)),
            &mut || rule_adam8(bb(&k), bb(2), q, g, codes, scales),
        );
    }
    // Adafactor, vector form: state V (n).
    {
        let k = Adafactor {
            weight_decay: 0.01,
            ..Adafactor::new(1e-2f32)
        };
        let (q, v) = (&mut *p, &mut state[..n]);
        ok &= rule_adafactor_vector(&k, 1, q, g, v);
        ok &= measure(per_tick, n, "adafactor_vector", Some(4 * n), &mut || {
            rule_adafactor_vector(bb(&k), bb(2), q, g, v)
        });
    }
    // Adam over KahanBf16 parameters (bf16 value + bf16 compensation, 4 B each), f32 m, v.
    {
        let al = &mut Bump::new(&mut *arena);
        let adam = Adam::new(1e-3f32);
        let words = al.take(n);
        // SAFETY: `words` is n zeroed f32s (4n bytes, align 4), exclusively borrowed for the
        // arena's lifetime; KahanBf16 is two bf16 (4 bytes, align 4, `repr(C)`), valid for every
        // bit pattern.
        let q =
            unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<KahanBf16>(), n) };
        for (k, &x) in q.iter_mut().zip(p.iter()) {
            *k = KahanBf16::from_f32(x);
        }
        let st = &mut state[..adam.state_len(n)];
        ok &= rule_adam_kahan_bf16(&adam, 1, q, g, st);
        ok &= measure(
            per_tick,
            n,
            "adam_kahan_bf16",
            Some(4 * st.len()),
            &mut || rule_adam_kahan_bf16(bb(&adam), bb(2), q, g, st),
        );
    }
    ok
}
