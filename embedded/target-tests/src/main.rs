//! Test firmware for descent-kernels on microcontrollers and edge cores under QEMU.
//!
//! One source for every target: runs every update rule and model pass on seeded inputs against
//! references computed here (see `rules.rs`, `models.rs`), the 16-bit storage conversions and
//! rules against references and the active backend against `Backend::Scalar` (`storage.rs`),
//! LAMB, Schedule-Free, 8-bit Adam, Adafactor and Muon against references (`tensor.rs`),
//! checks the FPU square root against
//! libm, measures instructions per element of each update rule, and (on hard-float targets) trains
//! the two-layer MLP with Adam. Prints each case, then `N passed, M failed`, and exits through
//! semihosting with 0 (all passed) or 1. On wasm32 (a JS runtime, see `wasm/run.mjs`) the same
//! checks run without the instruction-count benchmark (no counter), and the exported entry
//! returns the exit status.
#![no_std]
#![no_main]

#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(other_checks)]
mod models;
mod plat;
mod real;
// `tensor` uses the element reference and the comparison only.
#[cfg_attr(not(other_checks), allow(dead_code))]
mod rules;
#[cfg(other_checks)]
mod storage;
#[cfg(tensor_checks)]
mod tensor;
#[cfg(other_checks)]
mod train;

use descent_kernels::random::{uniform01, Xoshiro256PlusPlus};
use descent_kernels::Backend;

#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::plat::print_fmt(format_args!($($t)*)) };
}

/// Static RAM: one f32 and one f64 arena, shared by every case and the training demo.
#[cfg(not(small_ram))]
const A32_LEN: usize = 10 * 1024;
#[cfg(not(small_ram))]
const A64_LEN: usize = 1280;
#[cfg(small_ram)]
const A32_LEN: usize = 1600;
#[cfg(small_ram)]
const A64_LEN: usize = 400;

static mut ARENA32: [f32; A32_LEN] = [0.0; A32_LEN];
static mut ARENA64: [f64; A64_LEN] = [0.0; A64_LEN];

pub struct Suite {
    passed: u32,
    failed: u32,
}

impl Suite {
    pub fn check(&mut self, name: &str, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
            out!("test {name}: {what} ... ok\n");
        } else {
            self.failed += 1;
            out!("test {name}: {what} ... FAILED\n");
        }
    }
}

/// Fills `out` with values in `[-scale, scale]`, and with probability `rate` a special value
/// (±0, subnormals, ±Inf, NaN, extremes), as the host tests' `fill_mixed`.
pub fn fill_mixed(rng: &mut Xoshiro256PlusPlus, out: &mut [f32], scale: f64, rate: f64) {
    let sub = f32::from_bits(1);
    let sp = [
        0.0,
        -0.0,
        sub,
        -3.0 * sub,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::MIN_POSITIVE,
        -1e-30,
    ];
    for x in out {
        *x = if uniform01(rng) < rate {
            sp[(uniform01(rng) * sp.len() as f64) as usize]
        } else {
            (scale * (2.0 * uniform01(rng) - 1.0)) as f32
        };
    }
}

/// The kernels' square root (`Element::sqrt_ieee`: `vsqrt.f32`/`fsqrt.s` where the FPU has one)
/// against `libm::sqrtf`, bit for bit, on special values, every subnormal exponent, and 200 000
/// seeded bit patterns over the whole f32 range.
fn check_sqrt(s: &mut Suite) {
    use core::hint::black_box;
    let ks = descent_kernels::sqrt_f32_backend;
    let mut ok = true;
    let mut bad = None;
    let mut test = |x: f32| {
        let (a, b) = (ks(black_box(x)), libm::sqrtf(x));
        if !real::same(a, b) {
            ok = false;
            bad.get_or_insert((x, a, b));
        }
    };
    for x in [
        0.0,
        -0.0,
        1.0,
        2.0,
        4.0,
        -1.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::EPSILON,
    ] {
        test(x);
    }
    for e in 0..32 {
        test(f32::from_bits(1 << e));
        test(f32::from_bits((1 << e) | 1));
    }
    let mut st = descent_kernels::random::seeded(7);
    let n = if cfg!(small_ram) { 20_000 } else { 200_000 };
    for _ in 0..n {
        let bits = (uniform01(&mut st) * 4294967296.0) as u32;
        test(f32::from_bits(bits));
    }
    let third = black_box(1.0f32) / black_box(3.0f32);
    s.check(
        "sqrt",
        "kernel sqrt bit-identical to libm::sqrtf (specials, subnormals, random bits)",
        ok,
    );
    if let Some((x, a, b)) = bad {
        out!(
            "    sqrt({x:e}) = {a:e} ({:#010x}), libm {b:e} ({:#010x})\n",
            a.to_bits(),
            b.to_bits()
        );
    }
    s.check(
        "ieee",
        "f32 division rounds to nearest (1/3 bits)",
        third.to_bits() == 0x3EAA_AAAB,
    );
}

/// Called by `plat`; returns the exit code.
pub fn run() -> i32 {
    // SAFETY: `run` is called once, from the single thread of execution, and these are the only
    // references ever made to the arenas.
    let (a32, a64) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(ARENA32),
            &mut *core::ptr::addr_of_mut!(ARENA64),
        )
    };
    out!(
        "target-tests on {} / board {} / backend {} / sqrt {}\n",
        plat::TARGET_NAME,
        plat::BOARD_NAME,
        Backend::active(),
        descent_kernels::SQRT_F32_IMPL
    );
    let mut s = Suite {
        passed: 0,
        failed: 0,
    };
    check_sqrt(&mut s);
    #[cfg(other_checks)]
    rules::all(&mut s, a32, a64);
    #[cfg(tensor_checks)]
    tensor::all(&mut s, a32, a64);
    #[cfg(not(tensor_checks))]
    out!(
        "tensor: not in this image (micro:bit flash); run by the image with feature tensor-only\n"
    );
    #[cfg(other_checks)]
    {
        storage::all(&mut s, a32);
        models::all(&mut s, a32);
    }
    // Each image measures the rules it holds (see bench.rs).
    #[cfg(not(target_arch = "wasm32"))]
    bench::all(&mut s, a32);
    #[cfg(target_arch = "wasm32")]
    out!("bench: skipped on wasm32 (no instruction counter)\n");
    #[cfg(other_checks)]
    train::run(&mut s, a32);
    #[cfg(not(other_checks))]
    out!("tensor-only image: rules, storage, models and training not built\n");
    #[cfg(feature = "fail-demo")]
    s.check("fail_demo", "deliberately failing check", false);
    out!("{} passed, {} failed\n", s.passed, s.failed);
    if s.failed == 0 {
        0
    } else {
        1
    }
}
