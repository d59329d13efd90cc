//! Picks the memory map for the board (EMB_BOARD, or the target's default board) and passes the
//! board and target names to the firmware.
use std::{env, fs, path::PathBuf};

fn main() {
    let target = env::var("TARGET").unwrap();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    // EMB_BOARD selects the memory map; qemu-run.sh reads the same variable to pick the machine.
    let board = env::var("EMB_BOARD")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| {
            match target.as_str() {
                "thumbv6m-none-eabi" => "microbit",
                "thumbv7em-none-eabihf" => "mps2-an386",
                t if t.starts_with("thumbv8m.main") => "mps3-an547",
                t if t.starts_with("riscv32") => "riscv-virt",
                "aarch64-unknown-none" => "aarch64-virt",
                t if t.starts_with("wasm32") => "node", // a JS runtime: wasm/run.mjs
                _ => "none",
            }
            .to_string()
        });
    println!("cargo:rerun-if-env-changed=EMB_BOARD");
    println!("cargo:rerun-if-changed=ld");
    println!("cargo:rustc-env=EMB_BOARD={board}");
    println!("cargo:rustc-env=EMB_TARGET={target}");
    println!("cargo::rustc-check-cfg=cfg(small_ram)");
    if board == "microbit" {
        println!("cargo:rustc-cfg=small_ram"); // 16 KiB RAM: shrink buffers
    }
    // Which checks this image holds: `tensor_checks` (src/tensor.rs) everywhere but in the
    // micro:bit's default image (256 KiB of flash hold one part or the other), `other_checks`
    // (everything else) unless the feature `tensor-only` is on.
    println!("cargo::rustc-check-cfg=cfg(tensor_checks)");
    println!("cargo::rustc-check-cfg=cfg(other_checks)");
    let tensor_only = env::var_os("CARGO_FEATURE_TENSOR_ONLY").is_some();
    if board != "microbit" || tensor_only {
        println!("cargo:rustc-cfg=tensor_checks");
    }
    if !tensor_only {
        println!("cargo:rustc-cfg=other_checks");
    }
    if board == "none" || board == "node" {
        return; // no memory map: wasm linear memory, or a host build
    }
    let src = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("ld")
        .join(format!("{board}.x"));
    let name = if target.starts_with("aarch64") {
        "memory.ld"
    } else {
        "memory.x"
    };
    fs::copy(&src, out.join(name)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    println!("cargo:rustc-link-search={}", out.display());
    if target.starts_with("thumb") {
        println!("cargo:rustc-link-arg=-Tlink.x"); // from cortex-m-rt
        println!("cargo:rustc-link-arg=--nmagic");
    } else if target.starts_with("riscv32") {
        println!("cargo:rustc-link-arg=-Tlink.x"); // from riscv-rt
    } else if target.starts_with("aarch64") {
        // aarch64-rt's code next to its vector table (see the file); before image.ld.
        let rt =
            PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("ld/aarch64-rt-text.x");
        fs::copy(&rt, out.join("rt-text.ld")).unwrap_or_else(|e| panic!("{}: {e}", rt.display()));
        println!("cargo:rustc-link-arg=-Trt-text.ld");
        println!("cargo:rustc-link-arg=-Timage.ld"); // from aarch64-rt
        println!("cargo:rustc-link-arg=-Tmemory.ld");
    }
}
