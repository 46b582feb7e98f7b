//! The `aoe` command line as data: [`Cli`], and the parsers of its values (the help texts are
//! in `help`). Pure code: every refusal is a [`Usage`] error with a message for the person who
//! typed it.

use super::help::{self, Needs};
use crate::control::MaskEdit;
use crate::engine::{MAX_WINDOW, Op};
use crate::work::Access;
use aoe_core::wire::EthernetAddress;
use aoe_net::LinkSpec;
use std::path::PathBuf;
use std::time::Duration;

/// A bad command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

/// Benchmark modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    /// Sequential reads.
    SeqRead,
    /// Sequential writes.
    SeqWrite,
    /// Random reads.
    RandRead,
    /// Random writes.
    RandWrite,
}

impl BenchMode {
    pub(super) fn name(self) -> &'static str {
        match self {
            BenchMode::SeqRead => "seq-read",
            BenchMode::SeqWrite => "seq-write",
            BenchMode::RandRead => "rand-read",
            BenchMode::RandWrite => "rand-write",
        }
    }

    pub(super) fn op(self) -> Op {
        match self {
            BenchMode::SeqRead | BenchMode::RandRead => Op::Read,
            BenchMode::SeqWrite | BenchMode::RandWrite => Op::Write,
        }
    }

    pub(super) fn access(self) -> Access {
        match self {
            BenchMode::SeqRead | BenchMode::SeqWrite => Access::Sequential,
            BenchMode::RandRead | BenchMode::RandWrite => Access::Random,
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `discover`.
    Discover,
    /// `identify`.
    Identify,
    /// `ping`.
    Ping,
    /// `config get`.
    ConfigGet,
    /// `config set STRING`.
    ConfigSet(String),
    /// `config test STRING`: targets whose config string is exactly this.
    ConfigTest(String),
    /// `config prefix STRING`: targets whose config string starts with this.
    ConfigPrefix(String),
    /// `mask list`.
    MaskList,
    /// `mask add|del MAC...`.
    MaskEdit(Vec<MaskEdit>),
    /// `reserve list`.
    ReserveList,
    /// `reserve [MAC...]`.
    Reserve(Vec<EthernetAddress>),
    /// `release`.
    Release,
    /// `read FILE`.
    Read(PathBuf),
    /// `write FILE`.
    Write(PathBuf),
    /// `verify`.
    Verify,
    /// `bench`.
    Bench,
    /// `write-log`.
    WriteLog,
    /// `check-log IMAGE`.
    CheckLog(PathBuf),
    /// `--help`.
    /// `kernel ...`: the Linux driver's devices.
    Kernel(KernelCommand),
    /// `--help` (also what no arguments at all parse to; `main` then exits 2).
    Help,
    /// `COMMAND --help`: the help of one command.
    CommandHelp(&'static str),
    /// `--help-man`: the man page.
    ManPage,
    /// `--version`.
    Version,
}

/// What `aoe kernel ...` does with the Linux driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCommand {
    /// `kernel stat`.
    Stat,
    /// `kernel flush [--all | eS.L...]`.
    Flush {
        /// `--all`: every device that is not open.
        all: bool,
        /// Devices named (`e1.2`).
        devices: Vec<String>,
    },
    /// `kernel revalidate eS.L...`.
    Revalidate(Vec<String>),
    /// `kernel discover`.
    Discover,
    /// `kernel interfaces [IFACE...]`.
    Interfaces(Vec<String>),
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    /// What to do.
    pub command: Command,
    /// The port (the first `-i` or `--tap`).
    pub link: Option<LinkSpec>,
    /// Every port given (discover uses them all; other commands take one).
    pub links: Vec<LinkSpec>,
    /// The target.
    pub target: Option<(u16, u8)>,
    /// `--lba`.
    pub lba: u64,
    /// `--count`.
    pub count: Option<u64>,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--wait`.
    pub wait: Duration,
    /// `--force`.
    pub force: bool,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--file`.
    pub file: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
    /// `--mode`.
    pub mode: BenchMode,
    /// `--bs`, in bytes.
    pub bs: Option<u64>,
    /// `--qd`.
    pub qd: usize,
    /// `--window`.
    pub window: Option<usize>,
    /// `--seconds`.
    pub seconds: Duration,
    /// `--requests`.
    pub requests: Option<u64>,
    /// `--log`.
    pub log: Option<PathBuf>,
    /// `--smart`.
    pub smart: bool,
    /// `--all`.
    pub all: bool,
}

/// Parses `SHELF.SLOT` (an `e` in front is allowed).
pub fn parse_target(text: &str) -> Result<(u16, u8), Usage> {
    let bad = || {
        Usage(format!(
            "bad target {text:?}: expected SHELF.SLOT, e.g. 7.1"
        ))
    };
    let body = text.strip_prefix('e').unwrap_or(text);
    let (shelf, slot) = body.split_once('.').ok_or_else(bad)?;
    let shelf: u16 = shelf.parse().map_err(|_| bad())?;
    let slot: u8 = slot.parse().map_err(|_| bad())?;
    if shelf == 0xffff || slot == 0xff {
        return Err(Usage(format!(
            "target {text}: shelf 65535 and slot 255 are broadcast addresses"
        )));
    }
    Ok((shelf, slot))
}

/// Reads a MAC argument in the project's one MAC text format (`aoe_net::mac`).
pub fn parse_mac(text: &str) -> Result<EthernetAddress, Usage> {
    aoe_net::parse_mac(text).map_err(|error| Usage(error.to_string()))
}

/// Parses a byte size: a number with an optional `k`, `m` or `g` suffix (powers of 1024,
/// `KiB` style also accepted).
pub fn parse_size(text: &str) -> Result<u64, Usage> {
    let bad = || Usage(format!("bad size {text:?}: expected e.g. 4096, 4k or 1m"));
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches("ib").trim_end_matches('b');
    let (number, shift) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 30),
        _ => (trimmed, 0),
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    value.checked_mul(1 << shift).ok_or_else(bad)
}

pub(super) fn parse_seconds(flag: &str, text: &str) -> Result<Duration, Usage> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Usage(format!(
                "{flag} {text:?}: expected a positive number of seconds"
            ))
        })
}

pub(super) fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, Usage> {
    text.parse()
        .map_err(|_| Usage(format!("{flag} {text:?}: expected a whole number")))
}

impl Cli {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    /// An unknown command or option, a missing or malformed value, or missing arguments.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, Usage> {
        let mut positional = Vec::new();
        let mut cli = Cli {
            command: Command::Help,
            link: None,
            links: Vec::new(),
            target: None,
            lba: 0,
            count: None,
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(1),
            force: false,
            seed: None,
            file: None,
            json: false,
            mode: BenchMode::SeqRead,
            bs: None,
            qd: 16,
            window: None,
            seconds: Duration::from_secs(5),
            requests: None,
            log: None,
            smart: false,
            all: false,
        };
        let mut args = args.into_iter();
        let mut help = false;
        let mut man = false;
        let mut version = false;
        while let Some(arg) = args.next() {
            if !arg.starts_with('-') || arg == "-" {
                positional.push(arg);
                continue;
            }
            if arg == "--" {
                positional.extend(args.by_ref());
                break;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_string(), Some(value.to_string()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| Usage(format!("{name} needs a value")))
            };
            match flag.as_str() {
                "-h" | "--help" => help = true,
                "--help-man" => man = true,
                "-V" | "--version" => version = true,
                "-i" | "--interface" => {
                    for name in value(&flag)?.split(',').filter(|n| !n.is_empty()) {
                        cli.links.push(LinkSpec::packet(name));
                    }
                }
                "--tap" => cli.links.push(LinkSpec::tap(&value(&flag)?)),
                "-t" | "--target" => cli.target = Some(parse_target(&value(&flag)?)?),
                "--lba" => cli.lba = parse_number(&flag, &value(&flag)?)?,
                "--count" => cli.count = Some(parse_number(&flag, &value(&flag)?)?),
                "--timeout" => cli.timeout = parse_seconds(&flag, &value(&flag)?)?,
                "--wait" => cli.wait = parse_seconds(&flag, &value(&flag)?)?,
                "--force" => cli.force = true,
                "--smart" => cli.smart = true,
                "--all" => cli.all = true,
                "--json" => cli.json = true,
                "--seed" => cli.seed = Some(parse_number(&flag, &value(&flag)?)?),
                "--file" => cli.file = Some(PathBuf::from(value(&flag)?)),
                "--log" => cli.log = Some(PathBuf::from(value(&flag)?)),
                "--mode" => {
                    let text = value(&flag)?;
                    cli.mode = match text.as_str() {
                        "seq-read" => BenchMode::SeqRead,
                        "seq-write" => BenchMode::SeqWrite,
                        "rand-read" => BenchMode::RandRead,
                        "rand-write" => BenchMode::RandWrite,
                        _ => {
                            return Err(Usage(format!(
                                "--mode {text:?}: expected seq-read, seq-write, rand-read or \
                                 rand-write"
                            )));
                        }
                    };
                }
                "--bs" => {
                    let bytes = parse_size(&value(&flag)?)?;
                    if bytes == 0 || bytes % 512 != 0 || bytes > 1 << 30 {
                        return Err(Usage(format!(
                            "--bs {bytes}: must be a multiple of 512, at most 1 GiB"
                        )));
                    }
                    cli.bs = Some(bytes);
                }
                "--qd" => {
                    cli.qd = parse_number(&flag, &value(&flag)?)?;
                    if cli.qd == 0 || cli.qd > 4096 {
                        return Err(Usage("--qd must be 1 to 4096".to_string()));
                    }
                }
                "--window" => {
                    let window: usize = parse_number(&flag, &value(&flag)?)?;
                    if window == 0 || window > MAX_WINDOW {
                        return Err(Usage(format!("--window must be 1 to {MAX_WINDOW}")));
                    }
                    cli.window = Some(window);
                }
                "--seconds" => cli.seconds = parse_seconds(&flag, &value(&flag)?)?,
                "--requests" => cli.requests = Some(parse_number(&flag, &value(&flag)?)?),
                _ => return Err(Usage(format!("unknown option {flag} (see aoe --help)"))),
            }
        }
        cli.link = cli.links.first().cloned();
        if version {
            cli.command = Command::Version;
            return Ok(cli);
        }
        if man {
            cli.command = Command::ManPage;
            return Ok(cli);
        }
        if help || positional.is_empty() {
            cli.command = match positional.first() {
                None => Command::Help,
                Some(word) => match help::command_doc(word) {
                    Some(doc) => Command::CommandHelp(doc.name),
                    None => {
                        return Err(Usage(format!("unknown command {word:?} (see aoe --help)")));
                    }
                },
            };
            return Ok(cli);
        }
        cli.command = Self::command(&positional, cli.all)?;
        cli.check_addresses()?;
        Ok(cli)
    }

    /// Refuses a command line without the interface or target its command needs.
    fn check_addresses(&self) -> Result<(), Usage> {
        let needs = match &self.command {
            Command::Discover => Needs::Interfaces,
            Command::ConfigTest(_) | Command::ConfigPrefix(_) => Needs::InterfaceMaybeTarget,
            Command::Kernel(_) => Needs::Kernel,
            Command::CheckLog(_) => Needs::Offline,
            _ => Needs::Target,
        };
        match needs {
            Needs::Offline => {
                if !self.links.is_empty() || self.target.is_some() {
                    return Err(Usage(
                        "check-log reads an image, not the network: give no -i, --tap or -t"
                            .to_string(),
                    ));
                }
                if self.log.is_none() {
                    return Err(Usage(
                        "check-log needs the write log: --log FILE".to_string(),
                    ));
                }
                return Ok(());
            }
            Needs::Kernel => {
                if !self.links.is_empty() || self.target.is_some() {
                    return Err(Usage(
                        "kernel commands talk to the aoe driver, not the network: give no -i, \
                         --tap or -t"
                            .to_string(),
                    ));
                }
                return Ok(());
            }
            Needs::Interfaces => return Ok(()),
            Needs::Target | Needs::InterfaceMaybeTarget => {}
        }
        if self.link.is_none() {
            return Err(Usage(
                "which interface? give -i IFACE (or --tap NAME)".to_string(),
            ));
        }
        if self.links.len() > 1 {
            return Err(Usage(
                "only discover takes several interfaces; give one -i IFACE".to_string(),
            ));
        }
        if self.target.is_none() && needs == Needs::Target {
            return Err(Usage("which target? give -t SHELF.SLOT".to_string()));
        }
        Ok(())
    }

    fn command(words: &[String], all: bool) -> Result<Command, Usage> {
        let word = |k: usize| words.get(k).map(String::as_str);
        let rest = || &words[words.len().min(2)..];
        let exactly = |n: usize, command: Command| {
            if words.len() == n {
                Ok(command)
            } else {
                Err(Usage(format!(
                    "unexpected argument {:?} after {}",
                    words[n.min(words.len() - 1)],
                    words[..n.min(words.len())].join(" ")
                )))
            }
        };
        let file = |name: &str| {
            if words.len() == 2 {
                Ok(PathBuf::from(&words[1]))
            } else {
                Err(Usage(format!(
                    "usage: aoe {name} FILE -i IFACE -t SHELF.SLOT"
                )))
            }
        };
        let macs = |list: &[String]| {
            list.iter()
                .map(|m| parse_mac(m))
                .collect::<Result<Vec<_>, _>>()
        };
        let string = |verb: &str, make: fn(String) -> Command| match words.len() {
            3 => Ok(make(words[2].clone())),
            _ => Err(Usage(format!("usage: aoe config {verb} STRING (quote it)"))),
        };
        match (word(0), word(1)) {
            (Some("discover"), _) => exactly(1, Command::Discover),
            (Some("identify"), _) => exactly(1, Command::Identify),
            (Some("ping"), _) => exactly(1, Command::Ping),
            (Some("config"), Some("get")) => exactly(2, Command::ConfigGet),
            (Some("config"), Some("set")) => string("set", Command::ConfigSet),
            (Some("config"), Some("test")) => string("test", Command::ConfigTest),
            (Some("config"), Some("prefix")) => string("prefix", Command::ConfigPrefix),
            (Some("config"), _) => Err(Usage("usage: aoe config get|set|test|prefix".to_string())),
            (Some("mask"), Some("list")) => exactly(2, Command::MaskList),
            (Some("mask"), Some(verb @ ("add" | "del"))) => {
                let list = macs(rest())?;
                if list.is_empty() {
                    return Err(Usage(format!("usage: aoe mask {verb} MAC...")));
                }
                Ok(Command::MaskEdit(
                    list.into_iter()
                        .map(|mac| {
                            if verb == "add" {
                                MaskEdit::Add(mac)
                            } else {
                                MaskEdit::Delete(mac)
                            }
                        })
                        .collect(),
                ))
            }
            (Some("mask"), _) => Err(Usage("usage: aoe mask list|add|del".to_string())),
            (Some("reserve"), Some("list")) => exactly(2, Command::ReserveList),
            (Some("reserve"), _) => Ok(Command::Reserve(macs(&words[1..])?)),
            (Some("release"), _) => exactly(1, Command::Release),
            (Some("read"), _) => Ok(Command::Read(file("read")?)),
            (Some("write"), _) => Ok(Command::Write(file("write")?)),
            (Some("verify"), _) => exactly(1, Command::Verify),
            (Some("bench"), _) => exactly(1, Command::Bench),
            (Some("write-log"), _) => exactly(1, Command::WriteLog),
            (Some("check-log"), _) => match words.len() {
                2 => Ok(Command::CheckLog(PathBuf::from(&words[1]))),
                _ => Err(Usage("usage: aoe check-log IMAGE --log FILE".to_string())),
            },
            (Some("kernel"), Some(verb)) => Self::kernel(verb, rest(), all),
            (Some("kernel"), None) => Err(Usage(
                "usage: aoe kernel stat|flush|revalidate|discover|interfaces".to_string(),
            )),
            (Some(other), _) => Err(Usage(format!("unknown command {other:?} (see aoe --help)"))),
            (None, _) => Err(Usage("no command (see aoe --help)".to_string())),
        }
    }

    fn kernel(verb: &str, args: &[String], all: bool) -> Result<Command, Usage> {
        let devices = |args: &[String]| {
            args.iter()
                .map(|name| {
                    let (shelf, slot) = parse_target(name)?;
                    Ok(format!("e{shelf}.{slot}"))
                })
                .collect::<Result<Vec<_>, Usage>>()
        };
        let none = |command: KernelCommand| {
            if args.is_empty() {
                Ok(Command::Kernel(command))
            } else {
                Err(Usage(format!(
                    "unexpected argument {:?} after kernel {verb}",
                    args[0]
                )))
            }
        };
        match verb {
            "stat" => none(KernelCommand::Stat),
            "discover" => none(KernelCommand::Discover),
            "flush" => {
                let devices = devices(args)?;
                if all && !devices.is_empty() {
                    return Err(Usage(
                        "kernel flush: give --all or device names, not both".to_string(),
                    ));
                }
                Ok(Command::Kernel(KernelCommand::Flush { all, devices }))
            }
            "revalidate" => {
                let devices = devices(args)?;
                if devices.is_empty() {
                    return Err(Usage("usage: aoe kernel revalidate eS.L...".to_string()));
                }
                Ok(Command::Kernel(KernelCommand::Revalidate(devices)))
            }
            "interfaces" => Ok(Command::Kernel(KernelCommand::Interfaces(args.to_vec()))),
            other => Err(Usage(format!(
                "unknown kernel command {other:?}: stat, flush, revalidate, discover or \
                 interfaces"
            ))),
        }
    }
}
