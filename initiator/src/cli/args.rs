//! The `aoe` command line as data: the usage text, [`Cli`], and the parsers of its values.
//! Pure code: every refusal is a [`Usage`] error with a message for the person who typed it.

use crate::control::MaskEdit;
use crate::engine::{MAX_WINDOW, Op};
use crate::work::Access;
use aoe_core::wire::EthernetAddress;
use aoe_net::LinkSpec;
use std::path::PathBuf;
use std::time::Duration;

/// The usage text.
pub const USAGE: &str = "\
aoe: check and drive ATA over Ethernet targets from userspace, without a kernel driver

usage: aoe COMMAND -i IFACE [-t SHELF.SLOT] [OPTIONS]

commands:
  discover                    list every target answering on IFACE (-t narrows the search)
  identify                    IDENTIFY DEVICE: capacity, model, serial, firmware
  config get                  read the config string
  config set STRING           set it if empty (AoE error 4 otherwise); --force replaces it
  mask list                   the MAC mask list (empty: everyone may talk to the target)
  mask add MAC...             add MACs to the mask list
  mask del MAC...             remove MACs from it
  reserve [MAC...]            reserve the target for these MACs (default: ours); --force
                              takes it from another initiator
  release                     empty the reserve list (--force if someone else holds it)
  read FILE                   copy sectors [--lba, --count] of the target into FILE
  write FILE                  copy FILE to the target from --lba (last sector zero-padded),
                              then flush (FLUSH CACHE EXT, or FLUSH CACHE)
  verify                      write a pattern over [--lba, --count], flush, read it back and
                              compare; with --file FILE, only compare the target with FILE
  bench                       measure MB/s, IOPS, p50/p99 latency and retransmits
  write-log                   random non-overlapping writes of unique content over [--lba,
                              --count], one line 'ACK seq lba sectors' per acknowledged write
                              to --log FILE (or stdout), unbuffered; runs --seconds or until
                              the region is used up (the power-cut test's initiator)
  check-log IMAGE             check that every write --log FILE acknowledged is in IMAGE (the
                              export's sectors from 0); exit 1 if one is lost (no -i, -t)

options:
  -i, --interface IFACE       network interface (AF_PACKET; needs CAP_NET_RAW)
      --tap NAME              use a TAP device instead of -i
  -t, --target SHELF.SLOT     the target, e.g. 7.1 or e7.1
      --lba N                 first sector [0]
      --count N               sectors [to the end of the target, or the file's size]
      --timeout SECONDS       give up when a request is unanswered this long [10]
      --wait SECONDS          discover: how long to collect answers [1]
      --force                 config set, reserve, release: override
      --seed N                verify: pattern seed [from the clock]
      --file FILE             verify: compare with FILE instead of writing a pattern
      --json                  machine-readable output (one JSON value on stdout)
  bench:
      --mode MODE             seq-read, seq-write, rand-read or rand-write [seq-read]
      --bs SIZE               request size in bytes, a multiple of 512 (k, m suffixes)
                              [one full frame for seq, 4k for rand]
      --qd N                  requests in flight [16]
      --window N              frames in flight [the target's buffer count]
      --seconds S             duration [5]
      --requests N            stop after N requests
  write-log: --bs (one frame), --qd (window), --seconds, --requests, --seed, and
      --log FILE              where the log goes [stdout]
  -h, --help                  this text
  -V, --version               the version

Requests carry min((MTU - 36) / 512, target's limit) sectors; the window of frames in flight
never exceeds the target's advertised buffer count; a frame unanswered within the adaptive
timeout is sent again with a new tag.
";

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
    /// `config get`.
    ConfigGet,
    /// `config set STRING`.
    ConfigSet(String),
    /// `mask list`.
    MaskList,
    /// `mask add|del MAC...`.
    MaskEdit(Vec<MaskEdit>),
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
    Help,
    /// `--version`.
    Version,
}

/// Everything the command line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    /// What to do.
    pub command: Command,
    /// The port.
    pub link: Option<LinkSpec>,
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
        };
        let mut args = args.into_iter();
        let mut help = false;
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
                "-V" | "--version" => version = true,
                "-i" | "--interface" => cli.link = Some(LinkSpec::packet(&value(&flag)?)),
                "--tap" => cli.link = Some(LinkSpec::tap(&value(&flag)?)),
                "-t" | "--target" => cli.target = Some(parse_target(&value(&flag)?)?),
                "--lba" => cli.lba = parse_number(&flag, &value(&flag)?)?,
                "--count" => cli.count = Some(parse_number(&flag, &value(&flag)?)?),
                "--timeout" => cli.timeout = parse_seconds(&flag, &value(&flag)?)?,
                "--wait" => cli.wait = parse_seconds(&flag, &value(&flag)?)?,
                "--force" => cli.force = true,
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
        if version {
            cli.command = Command::Version;
            return Ok(cli);
        }
        if help || positional.is_empty() {
            cli.command = Command::Help;
            return Ok(cli);
        }
        cli.command = Self::command(&positional)?;
        if let Command::CheckLog(_) = cli.command {
            if cli.log.is_none() {
                return Err(Usage(
                    "check-log needs the write log: --log FILE".to_string(),
                ));
            }
            return Ok(cli);
        }
        if cli.link.is_none() {
            return Err(Usage(
                "which interface? give -i IFACE (or --tap NAME)".to_string(),
            ));
        }
        if cli.target.is_none() && cli.command != Command::Discover {
            return Err(Usage("which target? give -t SHELF.SLOT".to_string()));
        }
        Ok(cli)
    }

    fn command(words: &[String]) -> Result<Command, Usage> {
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
        match (word(0), word(1)) {
            (Some("discover"), _) => exactly(1, Command::Discover),
            (Some("identify"), _) => exactly(1, Command::Identify),
            (Some("config"), Some("get")) => exactly(2, Command::ConfigGet),
            (Some("config"), Some("set")) => match words.len() {
                3 => Ok(Command::ConfigSet(words[2].clone())),
                _ => Err(Usage("usage: aoe config set STRING (quote it)".to_string())),
            },
            (Some("config"), _) => Err(Usage("usage: aoe config get|set".to_string())),
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
            (Some(other), _) => Err(Usage(format!("unknown command {other:?} (see aoe --help)"))),
            (None, _) => Err(Usage("no command (see aoe --help)".to_string())),
        }
    }
}
