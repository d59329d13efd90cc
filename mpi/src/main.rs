//! `descent-mpi`: local SGD on MPI processes. Run under `mpirun -n P descent-mpi ...`:
//! - `speedup`: the `local-sgd/speedup` check with its workers spread over the P ranks; prints the
//!   same table as `descent check local-sgd/speedup` (`--compare-threaded` also runs the threaded
//!   check on rank 0 and requires every measured value to be bit-identical);
//! - `verify`: the MPI simulation against the threaded one, bit for bit, over every schedule and
//!   several worker counts;
//! - `bench`: wall time of one communication round against the model size.

use clap::{Parser, Subcommand};
use descent_harness::checks::local_sgd::{
    constant_schedule, early_schedule, increasing_schedule, simulate as threaded, LocalSgd,
    Objective, Speedup, SpeedupConfig,
};
use descent_harness::cli::print_check;
use descent_harness::config::{self, ConfigError, Override};
use descent_harness::{Check, Ctx, Record};
use descent_mpi::{bench, bytes_per_round, check_counts, simulate, workers_of, ROOT};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::process::ExitCode;

const CHECK: &str = "local-sgd/speedup";

/// A schedule: `(n, t)` to the communication times.
type ScheduleFn = fn(usize, usize) -> Vec<usize>;

/// Local SGD across MPI processes, with the descent kernels doing the steps and the averaging.
#[derive(Parser, Debug)]
#[command(name = "descent-mpi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the `local-sgd/speedup` check with the workers spread over the MPI ranks.
    Speedup {
        /// Override one parameter of the check: `KEY=VALUE` or `local-sgd/speedup.KEY=VALUE`
        /// (repeatable), e.g. `t=400`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Added to the check's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also run the threaded check on rank 0 and require bit-identical records.
        #[arg(long)]
        compare_threaded: bool,
        /// Threads of the threaded comparison run.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
        threads: u64,
    },
    /// Compare the MPI simulation with the threaded one bit for bit (every schedule, several
    /// worker counts, block-unaligned repetition counts).
    Verify {
        /// Horizon T.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(8..=100_000))]
        t: u64,
        /// Repetitions (parameters per worker).
        #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        reps: u64,
    },
    /// Wall time per communication round against the model size (one worker per rank).
    Bench {
        /// Parameters per worker (repeatable).
        #[arg(long = "len", value_name = "N", required = true,
              value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
        len: Vec<u64>,
        /// Rounds timed per size.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        rounds: u64,
    },
}

fn main() -> ExitCode {
    let Some(universe) = mpi::initialize() else {
        eprintln!("descent-mpi: MPI is already initialized");
        return ExitCode::from(2);
    };
    let world = universe.world();
    let root = world.rank() == ROOT;
    let code = match Cli::try_parse() {
        Err(e) => {
            if root {
                let _ = e.print();
            }
            e.exit_code() as u8
        }
        Ok(cli) => match cli.command {
            Command::Speedup {
                set,
                seed,
                compare_threaded,
                threads,
            } => speedup(&world, &set, seed, compare_threaded, threads as usize),
            Command::Verify { t, reps } => verify(&world, t as usize, reps as usize),
            Command::Bench { len, rounds } => {
                let lens: Vec<usize> = len.iter().map(|&l| l as usize).collect();
                run_bench(&world, &lens, rounds as usize)
            }
        },
    };
    // Every rank leaves with rank 0's code, after MPI_Finalize (the universe's drop).
    let mut code = code;
    world.process_at_rank(ROOT).broadcast_into(&mut code);
    drop(universe);
    ExitCode::from(code)
}

fn resolve(set: &[String]) -> Result<(SpeedupConfig, toml::Table), ConfigError> {
    let sets: Vec<String> = set
        .iter()
        .map(|s| {
            if s.starts_with(CHECK) {
                s.clone()
            } else {
                format!("{CHECK}.{s}")
            }
        })
        .collect();
    let overrides: Vec<Override> = config::parse_set(&sets, &[CHECK])?;
    let refs: Vec<&Override> = overrides.iter().collect();
    let (cfg, table) = config::resolve::<SpeedupConfig>(CHECK, &refs)?;
    for (what, n, reps) in [
        ("n_small·reps_small", cfg.n_small, cfg.reps_small),
        ("n_large·reps_large", cfg.n_large, cfg.reps_large),
        ("reps_baseline", 1, cfg.reps_baseline),
    ] {
        check_counts(n, reps).map_err(|e| ConfigError(format!("{CHECK}: {what}: {e}")))?;
    }
    Ok((cfg, table))
}

fn speedup(
    world: &SimpleCommunicator,
    set: &[String],
    seed: u64,
    compare: bool,
    threads: usize,
) -> u8 {
    let root = world.rank() == ROOT;
    let (cfg, table) = match resolve(set) {
        Ok(x) => x,
        Err(e) => {
            if root {
                eprintln!("descent-mpi: {e}");
            }
            return 2;
        }
    };
    let size = world.size() as usize;
    if root {
        println!(
            "descent-mpi: kernels backend {}, seed shift {seed}, {size} MPI process(es); workers \
             split contiguously over the ranks (N = {}: {} per rank; N = {}: {} per rank)",
            descent_kernels::Backend::active().name(),
            cfg.n_small,
            split(cfg.n_small, size),
            cfg.n_large,
            split(cfg.n_large, size),
        );
        println!("resolved configuration:\n");
        print!(
            "{}",
            config::to_toml_text(&[(CHECK.to_string(), table.clone())])
        );
    }
    let mut ctx = Ctx::quiet();
    ctx.seed_shift = seed;
    ctx.threads = threads;
    let recs = Speedup::run_with(&cfg, &ctx, &mut |run, n, reps, times, seed| {
        simulate(world, run, n, reps, times, seed)
    });
    let mut code = 0;
    if root {
        print_check(&recs);
        code = summary(&recs);
        if compare {
            let reference = <Speedup as Check>::run(&cfg, &ctx);
            match identical(&recs, &reference) {
                Ok(k) => println!(
                    "\nthreaded simulation ({threads} thread(s)): the same {k} measured values, \
                     bit for bit, and the same notes"
                ),
                Err(e) => {
                    println!("\nthreaded simulation differs: {e}");
                    code = 1;
                }
            }
        }
    }
    code
}

fn split(n: usize, size: usize) -> String {
    let sizes: Vec<String> = (0..size)
        .map(|r| workers_of(n, size, r).len().to_string())
        .collect();
    sizes.join("/")
}

fn summary(recs: &[Record]) -> u8 {
    println!("\nsummary");
    println!(
        "{:<32} {:<9} {:<7} {:<8} {:<11} {:>8}",
        "check", "case", "verdict", "expected", "as expected", "seconds"
    );
    for r in recs {
        println!(
            "{:<32} {:<9} {:<7} {:<8} {:<11} {:>8.2}",
            r.check,
            r.case.id,
            r.verdict.label(),
            r.case.expected.label(),
            if r.as_expected() { "yes" } else { "NO" },
            r.seconds
        );
    }
    let failed: Vec<String> = recs
        .iter()
        .filter(|r| !r.as_expected())
        .map(|r| format!("{} {}", r.check, r.case.id))
        .collect();
    if failed.is_empty() {
        println!("\nall checks passed and every negative control failed, as expected");
        0
    } else {
        println!(
            "\nFAILED: {} record(s) not as expected: {}",
            failed.len(),
            failed.join(", ")
        );
        1
    }
}

/// Every criterion's measured value equal bit for bit, and every note equal; the count of values.
fn identical(a: &[Record], b: &[Record]) -> Result<usize, String> {
    if a.len() != b.len() {
        return Err(format!("{} records against {}", a.len(), b.len()));
    }
    let mut k = 0;
    for (ra, rb) in a.iter().zip(b) {
        if ra.case.id != rb.case.id || ra.criteria.len() != rb.criteria.len() {
            return Err(format!("case {} against {}", ra.case.id, rb.case.id));
        }
        for (ca, cb) in ra.criteria.iter().zip(&rb.criteria) {
            if ca.measured.to_bits() != cb.measured.to_bits() || ca.verdict != cb.verdict {
                return Err(format!(
                    "{} {}: {:e} against {:e}",
                    ra.case.id, ca.name, ca.measured, cb.measured
                ));
            }
            k += 1;
        }
        if ra.notes != rb.notes {
            return Err(format!(
                "{} notes: {:?} against {:?}",
                ra.case.id, ra.notes, rb.notes
            ));
        }
    }
    Ok(k)
}

fn verify(world: &SimpleCommunicator, t: usize, reps: usize) -> u8 {
    let root = world.rank() == ROOT;
    let size = world.size() as usize;
    let run = LocalSgd {
        obj: Objective {
            k_plus: 2.0,
            k_minus: 1.0,
            width: 0.0,
        },
        sigma: 8.0,
        x0: 2.0,
        alpha: 2.0,
        t,
    };
    let mut ns = vec![1, 2, 3, size, 2 * size + 1, 7];
    ns.sort_unstable();
    ns.dedup();
    ns.retain(|&n| n <= t);
    let schedules: [(&str, ScheduleFn); 6] = [
        ("one-shot", |_, t| vec![t]),
        ("constant ⌊rT/N⌋", constant_schedule),
        ("growing R = N", increasing_schedule),
        ("growing R = √N", |n, t| {
            increasing_schedule(((n as f64).sqrt().round() as usize).max(1), t)
        }),
        ("early", early_schedule),
        ("every step", |_, t| (1..=t).collect()),
    ];
    if root {
        println!(
            "descent-mpi verify: {size} MPI process(es), T = {t}, {reps} repetitions per worker \
             (blocks of {}), kernels backend {}",
            descent_harness::checks::local_sgd::BLOCK,
            descent_kernels::Backend::active().name()
        );
    }
    let ctx = Ctx::quiet();
    let (mut passed, mut failed) = (0, 0);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    for &n in &ns {
        for (k, (name, times)) in schedules.iter().enumerate() {
            let times = times(n, t);
            let seed = 1000 + (n * 10 + k) as u64;
            let got = simulate(world, &run, n, reps, &times, seed);
            if root {
                let want = threaded(&run, n, reps, &times, seed, &ctx);
                let same = bits(&got) == bits(&want);
                // The comparison can fail: another seed must give other bits.
                let other = threaded(&run, n, reps, &times, seed + 1, &ctx);
                let discriminates = bits(&other) != bits(&want);
                let ok = same && discriminates;
                if ok {
                    passed += 1;
                } else {
                    failed += 1;
                }
                let diff = got
                    .iter()
                    .zip(&want)
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                println!(
                    "  N = {n:>2} on {size} ranks ({}), {name:<16} {:>3} communications: {}",
                    split(n, size),
                    times.len(),
                    if ok {
                        format!("{} values bit-identical", got.len())
                    } else if !discriminates {
                        "seed + 1 gives the same bits: the comparison cannot fail".to_string()
                    } else {
                        format!("{diff} of {} values DIFFER", got.len())
                    }
                );
            }
        }
    }
    if root {
        println!("{passed} passed, {failed} failed");
    }
    u8::from(failed > 0)
}

fn run_bench(world: &SimpleCommunicator, lens: &[usize], rounds: usize) -> u8 {
    let root = world.rank() == ROOT;
    let size = world.size() as usize;
    if root {
        println!(
            "descent-mpi bench: {size} MPI process(es), one worker per rank, {rounds} rounds per \
             size, kernels backend {}",
            descent_kernels::Backend::active().name()
        );
        println!(
            "| parameters L | payload bytes per round | round: gather + mean + bcast, median (µs) | fastest round (µs) | allreduce sum, median (µs) | one local step, median (µs) |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
    }
    for &len in lens {
        if let Err(e) = check_counts(size, len) {
            if root {
                eprintln!("descent-mpi: --len {len}: {e}");
            }
            return 2;
        }
        let r = bench(world, len, rounds);
        if root {
            println!(
                "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                r.len,
                bytes_per_round(size, len, size),
                r.average * 1e6,
                r.average_min * 1e6,
                r.allreduce * 1e6,
                r.step * 1e6
            );
        }
    }
    0
}
