//! The `aoe` command line: parsing (`args`, pure and unit-tested), the commands
//! (`commands`) and what they print (`output`).
//!
//! Exit status: 0 on success, 1 when the operation failed (no answer, an error from the target,
//! a data mismatch, a file error), 2 for a bad command line.

mod args;
mod commands;
mod output;
#[cfg(test)]
mod tests;

pub use args::{BenchMode, Cli, Command, USAGE, Usage, parse_mac, parse_size, parse_target};
pub use output::mac_text;

use crate::control::{self, Retry, Session};
use crate::port::NetPort;
use crate::{Error, Transport};
use aoe_core::wire::cfg::ConfigCommand;
use commands::{bench, discover, read, verify, write};
use output::{show_config, show_identify, show_macs};
use std::time::Duration;

/// Runs `aoe` with the process arguments and returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(Usage(message)) => {
            eprintln!("aoe: {message}");
            return 2;
        }
    };
    match cli.command {
        Command::Help => {
            print!("{USAGE}");
            return 0;
        }
        Command::Version => {
            println!("aoe {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        _ => {}
    }
    match run(&cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("aoe: {err}");
            1
        }
    }
}

/// Runs a parsed command (not help or version) on a real port.
///
/// # Errors
/// Whatever the command met; the message is for the person who ran it.
pub fn run(cli: &Cli) -> Result<(), Error> {
    let Some(spec) = &cli.link else {
        return Err(Error::Invalid("no interface given".to_string()));
    };
    let mut port = NetPort::open(spec).map_err(|err| Error::Invalid(err.to_string()))?;
    run_on(cli, &mut port, &mut std::io::stdout())
}

/// Runs a parsed command over any link, writing results to `out`.
///
/// # Errors
/// As [`run`].
pub fn run_on<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let retry = Retry {
        rto: Duration::from_millis(250),
        give_up: cli
            .timeout
            .min(Duration::from_secs(3))
            .max(Duration::from_millis(500)),
    };
    if cli.command == Command::Discover {
        return discover(cli, link, retry, out);
    }
    let (shelf, slot) = cli.target.unwrap_or((0, 0));
    let session = Session::open(link, shelf, slot, retry)?;
    let to = session.address();
    let text = match &cli.command {
        Command::Identify => show_identify(cli, &session),
        Command::ConfigGet => show_config(cli, &session.info),
        Command::ConfigSet(string) => {
            let command = if cli.force {
                ConfigCommand::ForceSet
            } else {
                ConfigCommand::Set
            };
            let info = control::query_config(link, to, command, string.as_bytes(), retry)?;
            show_config(cli, &info)
        }
        Command::MaskList => show_macs(cli, "mask", &control::mask(link, to, &[], retry)?),
        Command::MaskEdit(edits) => show_macs(cli, "mask", &control::mask(link, to, edits, retry)?),
        Command::Reserve(macs) => {
            let macs = if macs.is_empty() {
                vec![link.mac()]
            } else {
                macs.clone()
            };
            let list = control::reserve(link, to, Some(&macs), cli.force, retry)?;
            show_macs(cli, "reserve", &list)
        }
        Command::Release => {
            let list = control::reserve(link, to, Some(&[]), cli.force, retry)?;
            show_macs(cli, "reserve", &list)
        }
        Command::Read(path) => read(cli, link, &session, path)?,
        Command::Write(path) => write(cli, link, &session, path)?,
        Command::Verify => verify(cli, link, &session)?,
        Command::Bench => bench(cli, link, &session)?,
        Command::Discover | Command::Help | Command::Version => String::new(),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
