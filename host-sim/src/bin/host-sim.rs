//! `host-sim`: a vblade-compatible AoE target. See `host-sim --help` and host-sim/README.md.

use aoe_host_sim::cli::{self, Command};
use aoe_host_sim::daemon;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!(
                "host-sim {} (vblade-rs, AoE r11)",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Ok(Command::Run(settings)) => match daemon::run(settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("host-sim: {message}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("host-sim: {error}");
            ExitCode::FAILURE
        }
    }
}
