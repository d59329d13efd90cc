//! Prints which backends this machine runs, and says loudly which ones the test suites skip.
//!
//! `cargo run --release -p descent-kernels --example backends` (CI runs it right before the test
//! suites). Exit status 0 either way: a skipped backend is reported, not hidden and not failed.

use descent_kernels::Backend;

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() {
    let here = std::env::consts::ARCH;
    println!("CPU: {} ({here})", cpu_model());
    println!(
        "active backend (what the kernels use by default): {}",
        Backend::active()
    );
    let mut skipped = 0;
    for b in Backend::ALL {
        let arch = b.target_arch();
        if b.is_available() {
            println!(
                "  {:<14} {:>2} f32 lanes  RUN: the oracle suites test it",
                b.name(),
                b.lanes_f32()
            );
        } else if arch == here {
            skipped += 1;
            println!(
                "  {:<14} {:>2} f32 lanes  SKIPPED: compiled in, but this CPU lacks its features; \
                 no test on this machine exercises it",
                b.name(),
                b.lanes_f32()
            );
        } else {
            println!(
                "  {:<14} {:>2} f32 lanes  other target ({arch}): tested by its own CI step",
                b.name(),
                b.lanes_f32()
            );
        }
    }
    if skipped > 0 {
        println!("WARNING: {skipped} backend(s) of this target were SKIPPED on this machine (see above).");
    }
}
