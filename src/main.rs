//! The `sandboxctl` binary: parses arguments and hands them to the library.

use clap::Parser;

fn main() {
    let cli = sandboxctl::cli::Cli::parse();
    std::process::exit(sandboxctl::cli::run(cli));
}
