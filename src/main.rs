//! The `trueconf2mqtt` command: a thin shell around the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = trueconf2mqtt::cli::Cli::parse();
    trueconf2mqtt::cli::main(cli)
}

/// `trueconf2mqtt catalog | head`: once the reader has gone, `println!` panics with "failed
/// printing to stdout: Broken pipe". That is the reader's choice, not an error: every
/// subcommand then ends quietly with status 0 (what was printed is all anybody wanted). Any
/// other panic is reported as usual.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
