//! The `descent` command line: `list` and `check`.

use crate::check::{Ctx, DynCheck};
use crate::config::{self, ConfigError, Override};
use crate::record::{Bound, Record, Verdict};
use crate::{plot, registry};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Executable checks of optimization-theory papers on the descent kernels.
#[derive(Parser, Debug)]
#[command(name = "descent", version, about)]
pub struct Cli {
    #[command(subcommand)]
    /// What to do.
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Name every check (with `--config`, also its default configuration and accepted ranges).
    List {
        /// Print every check's default configuration and accepted ranges.
        #[arg(long)]
        config: bool,
    },
    /// Run checks and print predicted against measured.
    Check {
        /// A check name, a paper prefix (e.g. `critical-step`), or `all`.
        name: String,
        /// Added to every seed of every check.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Override one parameter: `CHECK.KEY=VALUE` (repeatable), e.g.
        /// `critical-step/trajectory.n=1000`.
        #[arg(long = "set", value_name = "CHECK.KEY=VALUE")]
        set: Vec<String>,
        /// TOML file with one table per check, e.g. `[critical-step.trajectory]` then `n = 1000`.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Write the resolved configuration and every record as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write one SVG per record into this directory.
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
        /// Worker threads for independent runs (results are identical for any count).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
        threads: u64,
    },
}

/// Selects checks by exact name, paper prefix, or `all`.
pub fn select<'a>(
    reg: &'a [Box<dyn DynCheck>],
    name: &str,
) -> Result<Vec<&'a dyn DynCheck>, ConfigError> {
    let picked: Vec<&dyn DynCheck> = reg
        .iter()
        .map(|c| c.as_ref())
        .filter(|c| {
            let n = c.id().name;
            name == "all" || n == name || n.starts_with(&format!("{name}/"))
        })
        .collect();
    if picked.is_empty() {
        let names: Vec<&str> = reg.iter().map(|c| c.id().name).collect();
        return Err(ConfigError(format!(
            "unknown check `{name}`; valid names: all, {}, or a paper prefix such as `critical-step`",
            names.join(", ")
        )));
    }
    Ok(picked)
}

/// Runs the CLI; returns the process exit code.
pub fn main_with(cli: Cli) -> i32 {
    let reg = registry();
    match cli.command {
        Command::List { config } => {
            for c in &reg {
                let id = c.id();
                let controls: Vec<&str> = c.controls().iter().map(|k| k.id).collect();
                println!("{:<32} {}", id.name, id.claim);
                println!("{:<32} controls: {}", "", controls.join(", "));
                if config {
                    let ranges = c.ranges();
                    for (k, v) in c.default_table() {
                        let r = ranges
                            .iter()
                            .find(|r| r.key == k)
                            .expect("every key has a range");
                        let span = if r.integer {
                            format!("[{}, {}]", r.min as i64, r.max as i64)
                        } else {
                            format!("[{}, {}]", r.min, r.max)
                        };
                        println!("{:<32}   {}.{k} = {v}   (range {span})", "", id.name);
                    }
                }
            }
            0
        }
        Command::Check {
            name,
            seed,
            set,
            config,
            json,
            plots,
            threads,
        } => match prepare(&reg, &name, &set, config.as_ref()) {
            Err(e) => {
                eprintln!("descent: {e}");
                2
            }
            Ok((picked, tables)) => run(&picked, &tables, seed, threads as usize, json, plots),
        },
    }
}

type Tables = Vec<(String, toml::Table)>;

fn prepare<'a>(
    reg: &'a [Box<dyn DynCheck>],
    name: &str,
    set: &[String],
    config: Option<&PathBuf>,
) -> Result<(Vec<&'a dyn DynCheck>, Tables), ConfigError> {
    let picked = select(reg, name)?;
    let names: Vec<&str> = reg.iter().map(|c| c.id().name).collect();
    let mut overrides: Vec<Override> = Vec::new();
    if let Some(path) = config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("--config {}: {e}", path.display())))?;
        overrides.extend(config::parse_toml(
            &text,
            &path.display().to_string(),
            &names,
        )?);
    }
    overrides.extend(config::parse_set(set, &names)?);
    // Every check's overrides are validated, selected or not, so a typo never passes silently.
    let mut tables = Vec::new();
    for c in reg {
        let t = c.resolve(&overrides)?;
        if picked.iter().any(|p| p.id().name == c.id().name) {
            tables.push((c.id().name.to_string(), t));
        }
    }
    Ok((picked, tables))
}

fn run(
    picked: &[&dyn DynCheck],
    tables: &Tables,
    seed: u64,
    threads: usize,
    json: Option<PathBuf>,
    plots: Option<PathBuf>,
) -> i32 {
    println!(
        "descent: kernels backend {}, seed shift {seed}, {threads} thread(s)",
        descent_kernels::Backend::active().name()
    );
    println!("resolved configuration (accepted back by --config):\n");
    print!("{}", config::to_toml_text(tables));
    if let Some(dir) = &plots {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("descent: --plots {}: {e}", dir.display());
            return 2;
        }
    }
    let mut records: Vec<Record> = Vec::new();
    for (c, (_, table)) in picked.iter().zip(tables) {
        let progress = if std::io::stderr().is_terminal() {
            let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} runs {elapsed}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            pb.set_message(c.id().name);
            pb
        } else {
            ProgressBar::hidden()
        };
        let ctx = Ctx {
            seed_shift: seed,
            threads,
            progress,
        };
        let recs = c.run(table, &ctx);
        ctx.progress.finish_and_clear();
        print_check(&recs);
        records.extend(recs);
    }
    let failed: Vec<&Record> = records.iter().filter(|r| !r.as_expected()).collect();
    println!("\nsummary");
    println!(
        "{:<32} {:<9} {:<7} {:<8} {:<11} {:>8}",
        "check", "case", "verdict", "expected", "as expected", "seconds"
    );
    for r in &records {
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
    let mut code = 0;
    if let Some(path) = &json {
        let doc = serde_json::json!({
            "backend": descent_kernels::Backend::active().name(),
            "seed_shift": seed,
            "config": tables.iter().map(|(n, t)| (n.clone(), serde_json::to_value(t).expect("toml to json"))).collect::<serde_json::Map<_, _>>(),
            "records": records,
            "all_as_expected": failed.is_empty(),
        });
        let text = serde_json::to_string_pretty(&doc).expect("serializable");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("descent: --json {}: {e}", path.display());
            code = 2;
        }
    }
    if let Some(dir) = &plots {
        for r in &records {
            let p = dir.join(plot::file_name(r));
            if let Err(e) = std::fs::write(&p, plot::svg(r)) {
                eprintln!("descent: --plots {}: {e}", p.display());
                code = 2;
            }
        }
        println!("plots: {} SVG files in {}", records.len(), dir.display());
    }
    if !failed.is_empty() {
        println!(
            "\nFAILED: {} record(s) not as expected: {}",
            failed.len(),
            failed
                .iter()
                .map(|r| format!("{} {}", r.check, r.case.id))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 1;
    }
    println!("\nall checks passed and every negative control failed, as expected");
    code
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Prints the table of one check's records.
pub fn print_check(recs: &[Record]) {
    let Some(first) = recs.first() else { return };
    println!("\n== {}: {}", first.check, first.claim);
    println!("   paper: {}", first.paper);
    println!(
        "   {:<9} {:<26} {:>10} {:>10} {:>10} {:<5} | {:<7} {:<8} {:<11} {:>7}",
        "case",
        "criterion",
        "predicted",
        "measured",
        "tolerance",
        "",
        "verdict",
        "expected",
        "as expected",
        "seconds"
    );
    for r in recs {
        for (i, c) in r.criteria.iter().enumerate() {
            let (case, rec_cols) = if i == 0 {
                (
                    r.case.id.as_str(),
                    format!(
                        "{:<7} {:<8} {:<11} {:>7.2}",
                        r.verdict.label(),
                        r.case.expected.label(),
                        if r.as_expected() { "yes" } else { "NO" },
                        r.seconds
                    ),
                )
            } else {
                ("", String::new())
            };
            println!(
                "   {:<9} {:<26} {:>10} {:>10} {:>10} {:<5} | {}",
                case,
                c.name,
                num(c.predicted),
                num(c.measured),
                match c.bound {
                    Bound::Band => format!("±{}", num(c.tolerance.value)),
                    Bound::AtMost => "≤ limit".to_string(),
                    Bound::AtLeast => "≥ limit".to_string(),
                },
                if c.verdict == Verdict::Pass {
                    "ok"
                } else {
                    "FAIL"
                },
                rec_cols
            );
        }
        if r.case.id != "positive" {
            println!("   {:<9} ({})", "", r.case.description);
        }
        for n in &r.notes {
            println!("   {:<9} note: {n}", "");
        }
    }
    for c in &first.criteria {
        println!("   tolerance of {}: {}", c.name, c.tolerance.why);
    }
}
