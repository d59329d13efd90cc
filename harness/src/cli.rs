//! The `descent` command line: `list` and `check`.

use crate::check::{Ctx, DynCheck};
use crate::config::{self, ConfigError, Override};
use crate::record::{Bound, Record, Verdict};
use crate::{plot, registry};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

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
        /// Print the checks as the README's Markdown table (one table per paper, with its
        /// citation); CI compares the README against this output.
        #[arg(long, conflicts_with = "config")]
        markdown: bool,
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

/// The checks as Markdown: for each paper in registry order, its citation, then a table of its
/// checks with the claim and the negative controls (id and what is wrong with it). Generated
/// from the registry, so the README cannot drift from the code.
pub fn markdown_table(reg: &[Box<dyn DynCheck>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    let mut paper = "";
    for c in reg {
        let id = c.id();
        if id.paper != paper {
            paper = id.paper;
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("**{}**\n\n", cell(paper)));
            out.push_str("| check | claim | negative controls (each must FAIL) |\n|---|---|---|\n");
        }
        let controls: Vec<String> = c
            .controls()
            .iter()
            .map(|k| format!("`{}` {}", k.id, cell(k.description)))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            id.name,
            cell(id.claim),
            controls.join("; ")
        ));
    }
    out
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
        Command::List { markdown: true, .. } => {
            print!("{}", markdown_table(&reg));
            0
        }
        Command::List { config, .. } => {
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
                        let span = r.span();
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
            Ok((picked, tables)) => {
                let outputs = Outputs { json, plots };
                run_checks(&picked, &tables, seed, threads as usize, &outputs)
            }
        },
    }
}

/// Each selected check's name with its resolved configuration table.
pub type Tables = Vec<(String, toml::Table)>;

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

/// Where a run writes its results, besides standard output.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// `--json FILE`: rewritten (write-then-rename) after every check.
    pub json: Option<PathBuf>,
    /// `--plots DIR`: one SVG per record, written after each check.
    pub plots: Option<PathBuf>,
}

/// The JSON output file: every write is a complete document, written to a temporary file in the
/// same directory and renamed over the target, so a reader (or an interrupted run) never sees a
/// partial document.
struct JsonOut {
    path: PathBuf,
    tmp: PathBuf,
}

impl JsonOut {
    /// Checks that `path` can be written (not a directory, its directory exists) by writing
    /// `doc` to it; nothing has run yet when this is called.
    fn open(path: &Path, doc: &serde_json::Value) -> Result<JsonOut, String> {
        let shown = path.display();
        if path.is_dir() {
            return Err(format!(
                "--json {shown}: is a directory, expected a file path"
            ));
        }
        let name = path
            .file_name()
            .ok_or_else(|| format!("--json {shown}: no file name"))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "--json {shown}: {} is not an existing directory",
                dir.display()
            ));
        }
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let out = JsonOut {
            path: path.to_path_buf(),
            tmp: dir.join(tmp_name),
        };
        out.write(doc).map_err(|e| format!("--json {shown}: {e}"))?;
        Ok(out)
    }

    fn write(&self, doc: &serde_json::Value) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(doc).map_err(std::io::Error::other)?;
        let result = (|| {
            let mut f = std::fs::File::create(&self.tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&self.tmp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

/// Creates `dir` and checks a file can be created in it.
fn open_plots(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if dir.exists() && !dir.is_dir() {
        return Err(format!("--plots {shown}: exists and is not a directory"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("--plots {shown}: {e}"))?;
    let probe = dir.join(format!(".descent-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| format!("--plots {shown}: cannot write: {e}"))?;
    std::fs::remove_file(&probe).map_err(|e| format!("--plots {shown}: {e}"))
}

/// The message of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Runs `picked` (with their resolved `tables`, in the same order), prints every table and the
/// summary, and writes the outputs; returns the exit code: 0 if every record is as expected,
/// 1 if one is not (a check that panicked is an `error` record, never as expected), 2 if an
/// output path cannot be written (checked before anything runs).
///
/// The output paths are validated first: the JSON file is written once (no records) before the
/// first check runs, the plot directory is created and probed. After each check the JSON file is
/// replaced by a complete document holding every record so far (`"complete": false` until the
/// last check is done), and that check's plots are written, so an interrupted run keeps every
/// check that finished. A check that panics becomes an error record; the others still run.
pub fn run_checks(
    picked: &[&dyn DynCheck],
    tables: &Tables,
    seed: u64,
    threads: usize,
    outputs: &Outputs,
) -> i32 {
    let backend = descent_kernels::Backend::active().name();
    let config_json: serde_json::Map<String, serde_json::Value> = tables
        .iter()
        .map(|(n, t)| (n.clone(), serde_json::to_value(t).expect("toml to json")))
        .collect();
    let doc = |records: &[Record], done: usize| {
        let complete = done == picked.len();
        serde_json::json!({
            "backend": backend,
            "seed_shift": seed,
            "config": config_json,
            "checks_total": picked.len(),
            "checks_done": done,
            "complete": complete,
            "records": records,
            "all_as_expected": complete && records.iter().all(Record::as_expected),
        })
    };
    // Every output path is checked before anything runs, so no result is computed only to be
    // lost at the end.
    if let Some(dir) = &outputs.plots {
        if let Err(e) = open_plots(dir) {
            eprintln!("descent: {e}");
            return 2;
        }
    }
    let json = match &outputs.json {
        None => None,
        Some(path) => match JsonOut::open(path, &doc(&[], 0)) {
            Ok(j) => Some(j),
            Err(e) => {
                eprintln!("descent: {e}");
                return 2;
            }
        },
    };

    println!("descent: kernels backend {backend}, seed shift {seed}, {threads} thread(s)");
    println!("resolved configuration (accepted back by --config):\n");
    print!("{}", config::to_toml_text(tables));
    let mut code = 0;
    let mut records: Vec<Record> = Vec::new();
    for (done, (c, (_, table))) in picked.iter().zip(tables).enumerate() {
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
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| c.run(table, &ctx)));
        ctx.progress.finish_and_clear();
        let recs = match result {
            Ok(recs) => recs,
            Err(payload) => {
                let mut r = Record::error(c.id(), &panic_message(payload.as_ref()));
                r.seconds = started.elapsed().as_secs_f64();
                eprintln!("descent: {}: {}", r.check, r.case.description);
                vec![r]
            }
        };
        print_check(&recs);
        if let Some(dir) = &outputs.plots {
            for r in &recs {
                let p = dir.join(plot::file_name(r));
                if let Err(e) = std::fs::write(&p, plot::svg(r)) {
                    eprintln!("descent: --plots {}: {e}", p.display());
                    code = 2;
                }
            }
        }
        records.extend(recs);
        if let Some(j) = &json {
            if let Err(e) = j.write(&doc(&records, done + 1)) {
                eprintln!("descent: --json {}: {e}", j.path.display());
                code = 2;
            }
        }
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
    if let Some(dir) = &outputs.plots {
        println!("plots: {} SVG files in {}", records.len(), dir.display());
    }
    if let Some(j) = &json {
        println!("json: {}", j.path.display());
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
        return code.max(1);
    }
    if code == 0 {
        println!("\nall checks passed and every negative control failed, as expected");
    }
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
