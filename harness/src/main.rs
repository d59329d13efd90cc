//! `descent`: the command-line front of the harness. Until the harness issue lands it only says so.

fn main() {
    eprintln!(
        "descent: no checks exist yet (the harness issue adds them); kernels backend: {}",
        descent_kernels::Backend::active().name()
    );
    std::process::exit(2);
}
