//! The theory checks as `cargo test`. Empty until the harness issue lands: see the README's status section.
