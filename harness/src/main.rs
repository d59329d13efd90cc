//! `descent`: run the paper checks. See `descent --help`.

use clap::Parser;

fn main() {
    let cli = descent_harness::cli::Cli::parse();
    std::process::exit(descent_harness::cli::main_with(cli));
}
