//! Chooses the square root `Element::sqrt_ieee` uses (see `src/element.rs`), as `cfg`s:
//! - `descent_sqrt_vsqrt`: Arm hard-float (`eabihf`) targets, whose VFP has `vsqrt.f32`;
//! - `descent_sqrt_fsqrt_s` / `descent_sqrt_fsqrt_d`: RISC-V with the F / D extension;
//! - `descent_sqrt_core`: the `unstable-float-math` feature (`core::f32::math::sqrt`);
//! - none of them: `libm` (also forced by the `libm-sqrt` feature).
//!
//!
//! Also `descent_avx512` when the compiler is Rust 1.89 or newer (the AVX-512 intrinsics were
//! stabilised in 1.89): the AVX-512 backend is compiled only then, so the crate still builds with
//! its declared minimum Rust version, where that backend is simply not available.
//!
//! On the stable channel rustc reports no unstable target features in `cfg(target_feature)`
//! (Arm's `fpregs`, RISC-V's `f` and `d` are unstable), so the FPU is also recognised from the
//! target: the `eabihf` ABI passes floats in VFP registers, and a RISC-V triple's ISA string
//! (`riscv32imafc`, `riscv64gc`) names its extensions.
use std::env;
use std::process::Command;

/// The minor version of the compiler cargo uses (`rustc 1.MINOR.patch ...`), if it can be read.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    println!(
        "cargo::rustc-check-cfg=cfg(descent_sqrt_vsqrt, descent_sqrt_fsqrt_s, \
         descent_sqrt_fsqrt_d, descent_sqrt_core, descent_avx512)"
    );
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    if rustc_minor().is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=descent_avx512");
    }
    let var = |k: &str| env::var(k).unwrap_or_default();
    if env::var_os("CARGO_FEATURE_LIBM_SQRT").is_some() {
        return;
    }
    let arch = var("CARGO_CFG_TARGET_ARCH");
    let features = var("CARGO_CFG_TARGET_FEATURE");
    let has = |f: &str| features.split(',').any(|x| x == f);
    if env::var_os("CARGO_FEATURE_UNSTABLE_FLOAT_MATH").is_some() {
        println!("cargo:rustc-cfg=descent_sqrt_core");
    } else if arch == "arm" && var("CARGO_CFG_TARGET_ABI") == "eabihf" {
        println!("cargo:rustc-cfg=descent_sqrt_vsqrt");
    }
    if arch == "riscv32" || arch == "riscv64" {
        let target = var("TARGET");
        let isa = target.split('-').next().unwrap_or("");
        let ext = isa
            .trim_start_matches("riscv32")
            .trim_start_matches("riscv64");
        let ext = ext.split('_').next().unwrap_or("");
        let f = has("f") || ext.contains('f') || ext.contains('g');
        let d = has("d") || ext.contains('d') || ext.contains('g');
        if f && env::var_os("CARGO_FEATURE_UNSTABLE_FLOAT_MATH").is_none() {
            println!("cargo:rustc-cfg=descent_sqrt_fsqrt_s");
        }
        if d {
            println!("cargo:rustc-cfg=descent_sqrt_fsqrt_d");
        }
    }
}
