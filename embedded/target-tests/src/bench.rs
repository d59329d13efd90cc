//! Instructions per element of each update rule, from the guest's instruction counter (exact under
//! QEMU's `-icount shift=0`; SysTick on Cortex-M counts in steps of 25-62.5 instructions, so
//! n = 1024 keeps the error below 0.07 per element). Each rule runs through an `#[inline(never)]`,
//! `#[no_mangle]` wrapper named `rule_*` so `llvm-nm --print-size` can report its code size (the
//! wrapper holds the inlined kernel, validation and dispatch; `libm::pow` for Adam's bias
//! corrections is a separate function). One call, inputs finite, steady-state step (t = 2).

use crate::real::Bump;
use crate::{out, plat, Suite};
use descent_kernels::random::{fill_uniform, seeded};
use descent_kernels::{
    ema, replica_mean, running_mean, Adam, Gd, Lion, Rule as _, Sgd, SignDescent, Signum,
};

#[cfg(not(small_ram))]
pub const N_BENCH: usize = 1024;
#[cfg(small_ram)]
pub const N_BENCH: usize = 256;

// Each wrapper takes the rule's flat state slice (`state_len(n)` elements: the momentum buffer,
// Adam's m then v, AMSGrad's m, v, v̂); rules without state get an empty one.

#[no_mangle]
#[inline(never)]
pub fn rule_gd(k: &Gd<f32>, t: u64, p: &mut [f32], g: &[f32]) -> bool {
    k.step(t, p, g, &mut []).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_sgd(k: &Sgd<f32>, t: u64, p: &mut [f32], g: &[f32], b: &mut [f32]) -> bool {
    k.step(t, p, g, b).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_sgd_nesterov(k: &Sgd<f32>, t: u64, p: &mut [f32], g: &[f32], b: &mut [f32]) -> bool {
    k.step(t, p, g, b).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_adam(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_adamw(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_amsgrad(k: &Adam<f32>, t: u64, p: &mut [f32], g: &[f32], state: &mut [f32]) -> bool {
    k.step(t, p, g, state).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_sign_descent(k: &SignDescent<f32>, t: u64, p: &mut [f32], g: &[f32]) -> bool {
    k.step(t, p, g, &mut []).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_signum(k: &Signum<f32>, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(t, p, g, m).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_lion(k: &Lion<f32>, t: u64, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(t, p, g, m).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_running_mean(avg: &mut [f32], p: &[f32], count: u64) -> bool {
    running_mean(avg, p, count).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_ema(avg: &mut [f32], p: &[f32], decay: f32) -> bool {
    ema(avg, p, decay).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_replica_mean(r: &mut [&mut [f32]]) -> bool {
    replica_mean(r).is_ok()
}

pub fn all(s: &mut Suite, a32: &mut [f32]) {
    use core::hint::black_box as bb;
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
    let mut al = Bump::new(a32);
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
    let mut measure = |name: &str, f: &mut dyn FnMut() -> bool| {
        let t0 = plat::counter::read();
        let good = f();
        let t1 = plat::counter::read();
        let insns = plat::counter::elapsed(t0, t1) * per_tick / 1000;
        let x100 = (insns * 100 + n as u64 / 2) / n as u64;
        out!(
            "bench {name}: {}.{:02} insn/elem (n={n}, {insns} insns)\n",
            x100 / 100,
            x100 % 100
        );
        ok &= good;
    };
    let adam = Adam::new(1e-3f32);
    let adamw = Adam::adamw(1e-3f32, 0.01);
    let amsgrad = adam.amsgrad();
    let sgd = Sgd::new(0.01f32, 0.9);
    let nest = Sgd {
        nesterov: true,
        ..sgd
    };
    measure("gd", &mut || rule_gd(bb(&Gd::new(0.01)), bb(2), p, g));
    measure("sgd", &mut || {
        rule_sgd(bb(&sgd), bb(2), p, g, &mut state[..n])
    });
    measure("sgd_nesterov", &mut || {
        rule_sgd_nesterov(bb(&nest), bb(2), p, g, &mut state[..n])
    });
    measure("adam", &mut || {
        rule_adam(bb(&adam), bb(2), p, g, &mut state[..2 * n])
    });
    measure("adamw", &mut || {
        rule_adamw(bb(&adamw), bb(2), p, g, &mut state[..2 * n])
    });
    measure("amsgrad", &mut || {
        rule_amsgrad(bb(&amsgrad), bb(2), p, g, state)
    });
    measure("sign_descent", &mut || {
        rule_sign_descent(bb(&SignDescent::new(0.01)), bb(2), p, g)
    });
    measure("signum", &mut || {
        rule_signum(bb(&Signum::new(0.01, 0.9)), bb(2), p, g, &mut state[..n])
    });
    measure("lion", &mut || {
        rule_lion(bb(&Lion::new(1e-3)), bb(2), p, g, &mut state[..n])
    });
    measure("running_mean", &mut || {
        rule_running_mean(&mut state[..n], g, bb(3))
    });
    measure("ema", &mut || rule_ema(&mut state[..n], g, bb(0.99)));
    // 3 replicas of n elements (p, m, v̂); per element = per averaged element.
    measure("replica_mean", &mut || {
        let (m, rest) = state.split_at_mut(n);
        rule_replica_mean(&mut [&mut *p, m, &mut rest[n..]])
    });
    s.check("bench", "every measured rule call returned Ok", ok);
}
