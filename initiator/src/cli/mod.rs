//! The `aoe` command line: parsing (`args`, pure and unit-tested), the help text and man
//! page (`help`, one source for both), the commands (`commands`), the Linux driver's views
//! (`kernel`) and what they print (`output`).
//!
//! Exit status: 0 on success, 1 when the operation failed (no answer, an error from the target,
//! a data mismatch, a file error; discover and config test|prefix when no target answered, in
//! text and `--json` alike), 2 for a bad command line (also no arguments at all).

mod args;
mod commands;
mod help;
mod kernel;
mod output;
#[cfg(test)]
mod tests;

pub use args::{
    BenchMode, Cli, Command, KernelCommand, Usage, parse_mac, parse_size, parse_target,
};
pub use kernel::KernelPaths;
pub use output::mac_text;

use crate::control::{self, Retry, Session};
use crate::port::NetPort;
use crate::{Error, Transport};
use aoe_core::wire::aoe::ErrorCode;
use aoe_core::wire::cfg::ConfigCommand;
use aoe_net::LinkSpec;
use commands::{bench, config_match, discover, ping, read, verify, write, write_log};
use output::{show_config, show_identify, show_macs};
use std::io::Write as _;
use std::time::Duration;

/// The usage text of `aoe --help`.
pub fn usage() -> String {
    help::global()
}

/// The man page `aoe --help-man` prints (roff), made from [`usage`].
pub fn man_page() -> String {
    help::man_page()
}

/// Writes `text` to stdout, ignoring a closed pipe (`aoe --help | head -1`).
fn print(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Runs `aoe` with the process arguments and returns the exit status.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        let _ = std::io::stderr().write_all(usage().as_bytes());
        eprintln!("aoe: no command given");
        return 2;
    }
    let cli = match Cli::parse(args) {
        Ok(cli) => cli,
        Err(Usage(message)) => {
            eprintln!("aoe: {message}");
            return 2;
        }
    };
    match cli.command {
        Command::Help => {
            print(&usage());
            return 0;
        }
        Command::CommandHelp(name) => {
            if let Some(doc) = help::command_doc(name) {
                print(&help::for_command(doc));
            }
            return 0;
        }
        Command::ManPage => {
            print(&man_page());
            return 0;
        }
        Command::Version => {
            print(&format!("aoe {}\n", env!("CARGO_PKG_VERSION")));
            return 0;
        }
        Command::CheckLog(ref image) => {
            return match commands::check_log(&cli, image) {
                Ok(text) => {
                    print!("{text}");
                    0
                }
                Err(err) => {
                    eprintln!("aoe: {err}");
                    1
                }
            };
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

/// Runs a parsed command (not help or version) on real ports, or on the kernel driver's files.
///
/// # Errors
/// Whatever the command met; the message is for the person who ran it.
pub fn run(cli: &Cli) -> Result<(), Error> {
    if let Command::Kernel(command) = &cli.command {
        return kernel::run(
            &KernelPaths::default(),
            command,
            cli.json,
            &mut std::io::stdout(),
        );
    }
    if cli.command == Command::Discover {
        return discover_on_ports(cli, &mut std::io::stdout());
    }
    let Some(spec) = &cli.link else {
        return Err(Error::Invalid("no interface given".to_string()));
    };
    let mut port = NetPort::open(spec).map_err(|err| Error::Invalid(err.to_string()))?;
    run_on(cli, &mut port, &mut std::io::stdout())
}

/// Discovery on every interface the command line names, or on every AoE-capable one, at the
/// same time (one thread per port, so the wait is paid once).
fn discover_on_ports(cli: &Cli, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let specs: Vec<LinkSpec> = if cli.links.is_empty() {
        let names = kernel::aoe_capable_interfaces(&KernelPaths::default().sys_class_net);
        if names.is_empty() {
            return Err(Error::Invalid(
                "no AoE-capable interface (up, Ethernet, not loopback): give -i IFACE".to_string(),
            ));
        }
        names.iter().map(|name| LinkSpec::packet(name)).collect()
    } else {
        cli.links.clone()
    };
    let mut ports = Vec::new();
    let mut failures = Vec::new();
    for spec in &specs {
        match NetPort::open(spec) {
            Ok(port) => ports.push((spec.interface().to_owned(), port)),
            Err(err) => failures.push(err.to_string()),
        }
    }
    if ports.is_empty() {
        return Err(Error::Invalid(failures.join("; ")));
    }
    for failure in &failures {
        eprintln!("aoe: skipped: {failure}");
    }
    let retry = first_contact(cli);
    let results: Vec<Result<Vec<commands::Seen>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ports
            .iter_mut()
            .map(|(name, port)| {
                let name = name.clone();
                scope.spawn(move || commands::discover_port(cli, &name, port, retry))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::Invalid("discovery thread failed".into())))
            })
            .collect()
    });
    let mut seen = Vec::new();
    for result in results {
        seen.extend(result?);
    }
    discover(cli, seen, out)
}

/// How long first contact with a target may take: `--timeout`, within 0.5 to 3 s.
fn first_contact(cli: &Cli) -> Retry {
    Retry {
        rto: Duration::from_millis(250),
        give_up: cli
            .timeout
            .min(Duration::from_secs(3))
            .max(Duration::from_millis(500)),
    }
}

/// Adds what to do next to the errors a person can act on.
fn with_hint(err: Error, command: &Command) -> Error {
    let hint = match (&err, command) {
        (
            Error::Aoe {
                code: ErrorCode::ConfigStringPresent,
                ..
            },
            Command::ConfigSet(_),
        ) => {
            "the target already has another config string (aoe config get shows it); \
              --force replaces it"
        }
        (
            Error::Aoe {
                code: ErrorCode::TargetReserved,
                ..
            },
            Command::Reserve(_) | Command::Release,
        ) => {
            "another initiator holds the reservation (aoe reserve list shows it); --force \
              takes it over"
        }
        (
            Error::Aoe {
                code: ErrorCode::TargetReserved,
                ..
            },
            _,
        ) => "the target is reserved for other initiators (aoe reserve list shows them)",
        _ => return err,
    };
    Error::Hint {
        error: Box::new(err),
        hint,
    }
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
    run_command(cli, link, out).map_err(|err| with_hint(err, &cli.command))
}

fn run_command<L: Transport + ?Sized>(
    cli: &Cli,
    link: &mut L,
    out: &mut dyn std::io::Write,
) -> Result<(), Error> {
    let retry = first_contact(cli);
    match &cli.command {
        Command::Discover => {
            let name = cli.link.as_ref().map_or("", |spec| spec.interface());
            let seen = commands::discover_port(cli, name, link, retry)?;
            return discover(cli, seen, out);
        }
        Command::ConfigTest(string) => {
            return config_match(cli, link, ConfigCommand::Test, string, out);
        }
        Command::ConfigPrefix(string) => {
            return config_match(cli, link, ConfigCommand::TestPrefix, string, out);
        }
        Command::Kernel(command) => {
            return kernel::run(&KernelPaths::default(), command, cli.json, out);
        }
        _ => {}
    }
    let (shelf, slot) = cli.target.unwrap_or((0, 0));
    let session = Session::open(link, shelf, slot, retry)?;
    let to = session.address();
    let text = match &cli.command {
        Command::Identify => show_identify(cli, &session),
        Command::Ping => ping(cli, link, &session, retry)?,
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
        Command::ReserveList => {
            let list = control::reserve(link, to, None, false, retry)?;
            show_macs(cli, "reserve", &list)
        }
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
        Command::Read(path) => read(cli, link, &session, path, out)?,
        Command::Write(path) => write(cli, link, &session, path)?,
        Command::Verify => verify(cli, link, &session)?,
        Command::Bench => bench(cli, link, &session)?,
        Command::WriteLog => write_log(cli, link, &session)?,
        Command::Discover
        | Command::ConfigTest(_)
        | Command::ConfigPrefix(_)
        | Command::Kernel(_)
        | Command::CheckLog(_)
        | Command::Help
        | Command::CommandHelp(_)
        | Command::ManPage
        | Command::Version => String::new(),
    };
    out.write_all(text.as_bytes())?;
    Ok(())
}
