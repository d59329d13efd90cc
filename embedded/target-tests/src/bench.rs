//! Instructions per element of each update rule, from the guest's instruction counter (exact under
//! QEMU's `-icount shift=0`; SysTick on Cortex-M counts in steps of 25-62.5 instructions, so
//! n = 1024 keeps the error below 0.07 per element). Each rule runs through an `#[inline(never)]`,
//! `#[no_mangle]` wrapper named `rule_*` so `llvm-nm --print-size` can report its code size (the
//! wrapper holds the inlined kernel, validation and dispatch; `libm::pow` for Adam's bias
//! corrections is a separate function). One call, inputs finite, steady-state step (t = 2).

use crate::real::Bump;
use crate::{out, plat, Suite};
use descent_kernels::random::{fill_uniform, seeded};
use descent_kernels::{ema, replica_mean, running_mean, Adam, Gd, Lion, Sgd, SignDescent, Signum};

#[cfg(not(small_ram))]
pub const N_BENCH: usize = 1024;
#[cfg(small_ram)]
pub const N_BENCH: usize = 256;

#[no_mangle]
#[inline(never)]
pub fn rule_gd(k: &Gd<f32>, p: &mut [f32], g: &[f32]) -> bool {
    k.step(p, g).is_ok()
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
pub fn rule_adam(
    k: &Adam<f32>,
    t: u64,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> bool {
    k.step(t, p, g, m, v).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_adamw(
    k: &Adam<f32>,
    t: u64,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) -> bool {
    k.step(t, p, g, m, v).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_amsgrad(
    k: &Adam<f32>,
    t: u64,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vm: &mut [f32],
) -> bool {
    k.step_amsgrad(t, p, g, m, v, vm).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_sign_descent(k: &SignDescent<f32>, p: &mut [f32], g: &[f32]) -> bool {
    k.step(p, g).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_signum(k: &Signum<f32>, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(p, g, m).is_ok()
}
#[no_mangle]
#[inline(never)]
pub fn rule_lion(k: &Lion<f32>, p: &mut [f32], g: &[f32], m: &mut [f32]) -> bool {
    k.step(p, g, m).is_ok()
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
    let bufs: [&mut [f32]; 5] = core::array::from_fn(|_| al.take(n));
    let [p, g, m, v, vm] = bufs;
    for b in [&mut *p, &mut *g, &mut *m] {
        fill_uniform(&mut rng, b, -1.0, 1.0);
    }
    fill_uniform(&mut rng, v, 0.0, 0.1);
    vm.copy_from_slice(v);
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
    let sgd = Sgd::new(0.01f32, 0.9);
    let nest = Sgd {
        nesterov: true,
        ..sgd
    };
    measure("gd", &mut || rule_gd(bb(&Gd::new(0.01)), p, g));
    measure("sgd", &mut || rule_sgd(bb(&sgd), bb(2), p, g, m));
    measure("sgd_nesterov", &mut || {
        rule_sgd_nesterov(bb(&nest), bb(2), p, g, m)
    });
    measure("adam", &mut || rule_adam(bb(&adam), bb(2), p, g, m, v));
    measure("adamw", &mut || rule_adamw(bb(&adamw), bb(2), p, g, m, v));
    measure("amsgrad", &mut || {
        rule_amsgrad(bb(&adam), bb(2), p, g, m, v, vm)
    });
    measure("sign_descent", &mut || {
        rule_sign_descent(bb(&SignDescent::new(0.01)), p, g)
    });
    measure("signum", &mut || {
        rule_signum(bb(&Signum::new(0.01, 0.9)), p, g, m)
    });
    measure("lion", &mut || rule_lion(bb(&Lion::new(1e-3)), p, g, m));
    measure("running_mean", &mut || rule_running_mean(m, g, bb(3)));
    measure("ema", &mut || rule_ema(m, g, bb(0.99)));
    // 3 replicas of n elements; per element = per averaged element.
    measure("replica_mean", &mut || {
        rule_replica_mean(&mut [&mut *p, &mut *m, &mut *vm])
    });
    s.check("bench", "every measured rule call returned Ok", ok);
}
