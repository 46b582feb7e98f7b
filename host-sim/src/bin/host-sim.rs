//! `host-sim`: a vblade-compatible AoE target. See `host-sim --help` and host-sim/README.md.

use aoe_host_sim::cli::{self, Command};
use aoe_host_sim::{control, daemon};
use std::io::Write;
use std::process::ExitCode;

/// Writes to stdout or stderr, ignoring a closed stream (the print macros would panic).
fn say(mut stream: impl Write, text: &str) {
    let _ = stream.write_all(text.as_bytes());
}

fn main() -> ExitCode {
    let outcome = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => Ok(cli::USAGE.to_owned()),
        Ok(Command::ManPage) => Ok(cli::man_page()),
        Ok(Command::Version) => {
            let version = env!("CARGO_PKG_VERSION");
            Ok(format!("host-sim {version} (vblade-rs, AoE r11)\n"))
        }
        Ok(Command::CheckConfig(path)) => daemon::check_config(&path),
        Ok(Command::Stats {
            control,
            prometheus,
        }) => control::stats(&control, prometheus),
        Ok(Command::Run(settings)) => daemon::run(*settings).map(|()| String::new()),
        Err(error) => Err(error.0),
    };
    match outcome {
        Ok(text) => {
            say(std::io::stdout(), &text);
            ExitCode::SUCCESS
        }
        Err(message) => {
            say(std::io::stderr(), &format!("host-sim: {message}\n"));
            ExitCode::FAILURE
        }
    }
}
