//! The theory-check harness: executable checks of optimization-theory papers, each training run
//! going through the `descent-kernels` kernels.
//!
//! - [`record`]: the result record of a check (criteria, verdict, data series).
//! - [`config`]: per-check configuration with defaults, ranges, `--set` and TOML overrides.
//! - [`check`]: the [`check::Check`] trait, the registry entry type and the run context.
//! - [`checks`]: one module per paper, each declaring its criterion keys in a `criteria`
//!   submodule, and the [`checks::registry`].
//! - [`numerics`]: shared numerics (fits, RK4, random streams, summaries, linear algebra).
//! - [`plot`]: one SVG per record.
//! - [`cli`]: the `descent` command line.

pub mod check;
pub mod checks;
pub mod cli;
pub mod config;
pub mod numerics;
pub mod plot;
pub mod record;

pub use check::{Check, Ctx, DynCheck};
pub use checks::registry;
pub use record::{Record, Verdict};

/// Runs the registered check `name` with its default configuration plus `overrides` (`key=value`
/// strings without the check prefix), no seed shift, two threads and no progress bar; what the
/// `proofs-check` tests call.
pub fn run_check(name: &str, overrides: &[&str]) -> Result<Vec<Record>, config::ConfigError> {
    run_check_with(name, overrides, &Ctx::quiet())
}

/// [`run_check`] with an explicit context (seed shift, thread count).
pub fn run_check_with(
    name: &str,
    overrides: &[&str],
    ctx: &Ctx,
) -> Result<Vec<Record>, config::ConfigError> {
    let reg = registry();
    let check = reg
        .iter()
        .find(|c| c.id().name == name)
        .ok_or_else(|| config::ConfigError(format!("unknown check `{name}`")))?;
    let names: Vec<&str> = reg.iter().map(|c| c.id().name).collect();
    let sets: Vec<String> = overrides.iter().map(|o| format!("{name}.{o}")).collect();
    let ov = config::parse_set(&sets, &names)?;
    let table = check.resolve(&ov)?;
    Ok(check.run(&table, ctx))
}
