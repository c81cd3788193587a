//! The `trueconf2mqtt` command: a thin shell around the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trueconf2mqtt::cli::Cli::parse();
    trueconf2mqtt::cli::main(cli)
}
