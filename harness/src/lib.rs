//! The theory-check harness. Empty until the harness issue lands: see the README's status section.
