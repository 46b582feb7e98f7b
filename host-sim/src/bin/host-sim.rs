//! `host-sim`: a vblade-compatible AoE target. See `host-sim --help` and host-sim/README.md.

use aoe_host_sim::cli::{self, Command};
use aoe_host_sim::daemon;
use std::io::Write;
use std::process::ExitCode;

/// Writes to stdout or stderr, ignoring a closed stream (the print macros would panic).
fn say(mut stream: impl Write, text: &str) {
    let _ = stream.write_all(text.as_bytes());
}

fn main() -> ExitCode {
    match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            say(std::io::stdout(), cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            let version = env!("CARGO_PKG_VERSION");
            say(
                std::io::stdout(),
                &format!("host-sim {version} (vblade-rs, AoE r11)\n"),
            );
            ExitCode::SUCCESS
        }
        Ok(Command::Run(settings)) => match daemon::run(settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                say(std::io::stderr(), &format!("host-sim: {message}\n"));
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            say(std::io::stderr(), &format!("host-sim: {error}\n"));
            ExitCode::FAILURE
        }
    }
}
