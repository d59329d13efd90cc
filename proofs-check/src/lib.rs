//! The theory checks as `cargo test`: one test file per paper under `tests/`. Each test runs a
//! registered check of `descent-harness` with its default configuration and asserts, through the
//! record's own verdict, that the positive case passes and every negative control fails the
//! same criteria. Run with `cargo test -p proofs-check --release`.
