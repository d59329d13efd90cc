//! Micro-benchmarks of the kernels. Empty until the benchmark issue lands: see the README's status section.
