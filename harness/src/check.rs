//! What a check is, how it registers, and the context it runs in.
//!
//! A new paper adds one module under `checks/` with, per check, a config struct implementing
//! [`CheckConfig`] and a unit type implementing [`Check`], and one line per check in
//! [`crate::checks::registry`].

use crate::config::{self, CheckConfig, ConfigError, Override, Range};
use crate::record::{CheckId, Control, Record};
use indicatif::ProgressBar;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What a check runs with besides its config.
pub struct Ctx {
    /// Added to every seed of every check (`--seed N`).
    pub seed_shift: u64,
    /// Worker threads for independent runs; results do not depend on it.
    pub threads: usize,
    /// Progress (hidden when stderr is not a terminal, or in tests).
    pub progress: ProgressBar,
}

impl Ctx {
    /// No seed shift, two threads, no progress bar: what the tests use.
    pub fn quiet() -> Ctx {
        Ctx {
            seed_shift: 0,
            threads: 2,
            progress: ProgressBar::hidden(),
        }
    }

    /// The seed a check with configured seed `seed` uses.
    pub fn seed(&self, seed: u64) -> u64 {
        seed.wrapping_add(self.seed_shift)
    }

    /// `f(0..count)` on up to `threads` threads; the result is in index order and, because every
    /// run draws from its own stream, bit-identical for any thread count. Each finished run ticks
    /// the progress bar.
    pub fn map<T: Send>(&self, count: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
        self.progress.inc_length(count as u64);
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count {
                break;
            }
            let r = f(i);
            slots.lock().expect("no panics while holding the lock")[i] = Some(r);
            self.progress.inc(1);
        };
        let threads = self.threads.clamp(1, count.max(1));
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        slots
            .into_inner()
            .expect("no poisoned lock")
            .into_iter()
            .map(|r| r.expect("every run finished"))
            .collect()
    }
}

/// One check: a claim of a paper, its configuration, and a run that returns the record of the
/// positive case followed by one record per negative control, in [`Check::CONTROLS`] order, every
/// one of them judged by the check's single verdict function.
pub trait Check: 'static {
    /// Its configuration (defaults are the design's values).
    type Config: CheckConfig;
    /// Registry name, citation and claim.
    const ID: CheckId;
    /// The negative controls it runs; each is expected to FAIL the same criteria.
    const CONTROLS: &'static [Control];
    /// Runs the positive case and every control.
    fn run(cfg: &Self::Config, ctx: &Ctx) -> Vec<Record>;
}

/// A registered check with its config type erased (what the CLI and the tests handle).
pub trait DynCheck: Sync + Send {
    /// Name, citation and claim.
    fn id(&self) -> CheckId;
    /// Its negative controls.
    fn controls(&self) -> &'static [Control];
    /// Default configuration.
    fn default_table(&self) -> toml::Table;
    /// Accepted ranges.
    fn ranges(&self) -> Vec<Range>;
    /// Resolves overrides (those whose `check` is this one) to a checked table.
    fn resolve(&self, overrides: &[Override]) -> Result<toml::Table, ConfigError>;
    /// Runs with a table returned by `resolve`.
    fn run(&self, table: &toml::Table, ctx: &Ctx) -> Vec<Record>;
}

struct Registered<C>(PhantomData<fn() -> C>);

impl<C: Check> DynCheck for Registered<C> {
    fn id(&self) -> CheckId {
        C::ID
    }
    fn controls(&self) -> &'static [Control] {
        C::CONTROLS
    }
    fn default_table(&self) -> toml::Table {
        config::default_table::<C::Config>()
    }
    fn ranges(&self) -> Vec<Range> {
        <C::Config as config::ConfigFields>::ranges()
    }
    fn resolve(&self, overrides: &[Override]) -> Result<toml::Table, ConfigError> {
        let mine: Vec<&Override> = overrides.iter().filter(|o| o.check == C::ID.name).collect();
        config::resolve::<C::Config>(C::ID.name, &mine).map(|(_, t)| t)
    }
    fn run(&self, table: &toml::Table, ctx: &Ctx) -> Vec<Record> {
        let cfg: C::Config = toml::Value::Table(table.clone())
            .try_into()
            .expect("a table returned by resolve deserializes");
        let records = C::run(&cfg, ctx);
        assert_eq!(
            records.len(),
            1 + C::CONTROLS.len(),
            "{}: one positive record and one per control",
            C::ID.name
        );
        assert_eq!(
            records[0].case.id,
            "positive",
            "{}: positive first",
            C::ID.name
        );
        for (r, c) in records[1..].iter().zip(C::CONTROLS) {
            assert_eq!(
                r.case.id,
                c.id,
                "{}: controls in declared order",
                C::ID.name
            );
        }
        records
    }
}

/// The registry entry of check `C`.
pub fn register<C: Check>() -> Box<dyn DynCheck> {
    Box::new(Registered::<C>(PhantomData))
}

/// Runs `f` and returns its value with the wall-clock seconds it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}
